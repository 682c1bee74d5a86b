/* mirror_tls.h - TLS credentials of the mirror connections (mirror_tls.c). */
#ifndef IPM_MIRROR_TLS_H
#define IPM_MIRROR_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include "ipmirror.h"
#include "tls.h"

/* After the secret is loaded: e->tls_client and e->tls_server for <tls
 * mode> (none when off). */
int mirror_tls_setup(ipm_engine *e, ipm_error *err);
void mirror_tls_free(ipm_engine *e);
/* Whether WRITE payloads on this connection carry a CRC32C that the
 * mirror checks: yes without TLS (t NULL) and with a peer of a build that
 * did not agree to drop it; no when both agreed in the TLS handshake (the
 * records' AEAD authenticates every byte; doc/wire.md, "TLS"). */
bool mirror_tls_payload_crc(struct ipm_tls *t);
/* ipm_tls_describe and the payload CRC's state, for the connection's log
 * line: "TLS1.3 PSK+DHE, AES-128-GCM, payload CRC off". */
const char *mirror_tls_describe(struct ipm_tls *t, char *buf, size_t len);

#endif
