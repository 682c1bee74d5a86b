/* mirror_tls.c - the credentials of <tls mode> for the mirror connections
 * (doc/wire.md, "TLS"): TLS 1.3 keyed from the shared secret, or X.509;
 * and whether WRITE payloads still carry a CRC32C under it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/gnutls.h>

#include "auth.h"
#include "engine.h"
#include "mirror_tls.h"
#include "tls.h"

/* The PSK is not the secret itself: a key of its own, for this use only. */
#define PSK_LABEL "ipmirror mirror-connection TLS 1.3 PSK v1"
#define PSK_IDENTITY "ipmirror"
#define PSK_LEN 32
/* The application protocol (ALPN) both sides offer: "WRITE payloads
 * without CRC32C" (doc/wire.md, "TLS"). A build before it offers none and
 * keeps the CRC. */
#define NOCRC_ALPN "ipmirror-nocrc/1"

static int creds(const ipm_config *cfg, enum ipm_tls_side side, const uint8_t *psk,
		 struct ipm_tls_creds **out, ipm_error *err)
{
	struct ipm_tls_config tc = { .tls13_only = true };
	const char *keep = getenv("IPM_TLS_PAYLOAD_CRC");

	/* tests: IPM_TLS_PAYLOAD_CRC=1 behaves as a build before the skip */
	if (!keep || strcmp(keep, "1") != 0)
		tc.alpn = NOCRC_ALPN;

	if (cfg->tls_mode == IPM_TLS_PSK) {
		tc.psk_key = psk;
		tc.psk_len = PSK_LEN;
		tc.psk_identity = PSK_IDENTITY;
	} else {
		tc.cert = cfg->tls_cert;
		tc.key = cfg->tls_key;
		tc.ca = cfg->tls_ca;
	}
	return ipm_tls_creds_new(side, &tc, out, err);
}

int mirror_tls_setup(ipm_engine *e, ipm_error *err)
{
	uint8_t psk[PSK_LEN];
	int rc = 0;

	if (e->cfg->tls_mode == IPM_TLS_OFF)
		return 0;
	if (e->cfg->tls_mode == IPM_TLS_PSK &&
	    ipm_tls_hkdf(e->secret->key, e->secret->len, PSK_LABEL, psk, sizeof(psk)) < 0)
		return ipm_fail(err, -EINVAL, "tls mode psk: cannot derive the key");
	rc = creds(e->cfg, IPM_TLS_CLIENT, psk, &e->tls_client, err);
	if (rc == 0)
		rc = creds(e->cfg, IPM_TLS_SERVER, psk, &e->tls_server, err);
	gnutls_memset(psk, 0, sizeof(psk));
	if (rc < 0 && err) {
		ipm_error why = *err;

		rc = ipm_fail(err, rc, "<tls mode=\"%s\">: %s", ipm_tls_mode_name(e->cfg->tls_mode),
			      why.msg);
	}
	return rc;
}

void mirror_tls_free(ipm_engine *e)
{
	ipm_tls_creds_free(e->tls_client);
	ipm_tls_creds_free(e->tls_server);
	e->tls_client = e->tls_server = NULL;
}

bool mirror_tls_payload_crc(struct ipm_tls *t)
{
	return !t || !ipm_tls_alpn(t);
}

const char *mirror_tls_describe(struct ipm_tls *t, char *buf, size_t len)
{
	char how[96];

	snprintf(buf, len, "%s, payload CRC %s", ipm_tls_describe(t, how, sizeof(how)),
		 mirror_tls_payload_crc(t) ? "on" : "off");
	return buf;
}
