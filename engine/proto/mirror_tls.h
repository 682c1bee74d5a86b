/* mirror_tls.h - TLS credentials of the mirror connections (mirror_tls.c). */
#ifndef IPM_MIRROR_TLS_H
#define IPM_MIRROR_TLS_H

#include "ipmirror.h"

/* After the secret is loaded: e->tls_client and e->tls_server for <tls
 * mode> (none when off). */
int mirror_tls_setup(ipm_engine *e, ipm_error *err);
void mirror_tls_free(ipm_engine *e);

#endif
