/* handshake.h - the mirror connection handshake over a connected socket
 * (HELLO, CHALLENGE, AUTH, WELCOME; see doc/wire.md).
 *
 * Blocking I/O; every message must arrive or leave within the timeout
 * (SO_RCVTIMEO/SO_SNDTIMEO are set for the handshake and restored after).
 */
#ifndef IPM_HANDSHAKE_H
#define IPM_HANDSHAKE_H

#include "tls.h"
#include "wire.h"

#define HS_DEFAULT_TIMEOUT_MS 5000

/* TLS on the connection (doc/wire.md): both sides announce their mode in
 * HELLO/CHALLENGE (version 5) and must have the same; with one, TLS starts
 * right after CHALLENGE, so AUTH, WELCOME and every frame go through it. */
struct hs_tls {
	enum ipm_tls_mode mode;
	const struct ipm_tls_creds *creds;  /* mode != off: our side's */
	struct ipm_tls *session;            /* out: the caller's on success */
};

struct hs_client_params {
	const char *self, *peer;            /* node names */
	uint16_t conn_index, conn_count;
	const struct auth_secret *secret;
	uint64_t session, base_seq;
	uint32_t window;
	uint32_t n_luns;
	const struct wire_lun *luns;
	unsigned timeout_ms;                /* per message; 0 = HS_DEFAULT_TIMEOUT_MS */
	uint8_t *verdicts;                  /* WIRE_MAX_LUNS bytes for WELCOME's per-LUN
					     * verdicts (enum wire_lun_verdict), or NULL */
	uint64_t *fills;                    /* WIRE_MAX_LUNS for WELCOME's per-LUN fill
					     * ids (version 6; 0 before), or NULL */
	uint64_t *record;                   /* out: WELCOME's ordering record, or NULL */
	uint16_t version_max;               /* the highest version to offer; 0: ours */
	uint16_t *version;                  /* out, or NULL: the version spoken; with
					     * -EPROTONOSUPPORT, the one an older server
					     * speaks (dial again offering it) */
	struct hs_tls *tls;                 /* NULL: off */
};

/* Run the client side. 0 when the server sent WELCOME status 0;
 * -EPROTONOSUPPORT when the server is of a release that refuses our
 * version (it answered in an older one, *p->version); otherwise a
 * negative errno and err says why (including the server's reason text, e.g.
 * "refused by node2: unknown lun \"vol9\""). The client verifies the
 * server's proof before it proves itself; a server without the secret is
 * refused with -EACCES. */
int handshake_client(int fd, const struct hs_client_params *p, ipm_error *err);

/* Called by the server once the client is authenticated: return 0 to accept,
 * or a positive errno and fill reason (sent in WELCOME and logged). Either
 * way verdicts[i] and fills[i] (zeroed, one per LUN of auth) go back in
 * WELCOME (fills from version 6 on); when accepting, so does *record
 * (zeroed: the mirror's ordering record). */
typedef int (*hs_check_fn)(void *opaque, const struct wire_hello *hello,
			   const struct wire_auth *auth, uint8_t *verdicts, uint64_t *fills,
			   uint64_t *record, char *reason, size_t reason_len);

/* Run the server side: read HELLO (check `to` == self and `from` ==
 * expect_peer), send CHALLENGE (with server MAC over the client's nonce),
 * read AUTH (verify the client's MAC over the server's nonce), call check,
 * send WELCOME. 0 when accepted (hello/auth filled for the caller);
 * otherwise a negative errno, err says why, and a WELCOME with the reason
 * was sent when the peer got that far. check may be NULL (accept all). */
int handshake_server(int fd, const char *self, const char *expect_peer,
		     const struct auth_secret *secret, hs_check_fn check, void *opaque,
		     struct wire_hello *hello, struct wire_auth *auth, ipm_error *err);
/* The same with a per-message timeout (0 = HS_DEFAULT_TIMEOUT_MS). */
int handshake_server_ms(int fd, unsigned timeout_ms, const char *self,
			const char *expect_peer, const struct auth_secret *secret,
			hs_check_fn check, void *opaque, struct wire_hello *hello,
			struct wire_auth *auth, ipm_error *err);
/* The same with TLS (tls NULL: off). */
int handshake_server_tls(int fd, unsigned timeout_ms, const char *self,
			 const char *expect_peer, const struct auth_secret *secret,
			 struct hs_tls *tls, hs_check_fn check, void *opaque,
			 struct wire_hello *hello, struct wire_auth *auth, ipm_error *err);

#endif
