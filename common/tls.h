/* tls.h - TLS (GnuTLS) over a connected stream socket, for the NBD server's
 * STARTTLS and the mirror connections: credentials (a PSK file in psktool's
 * format, a fixed PSK, or X.509 files) and a session object whose send and
 * receive calls look like the socket calls they replace (tls.c). After the
 * handshake the receiving side may open the records itself
 * (ipm_tls_rx_direct), saving GnuTLS's copies.
 *
 * One thread may send while another receives on the same session (GnuTLS
 * allows it; there is no renegotiation in TLS 1.3 and none is started in
 * 1.2). Sends are serialised by the caller, and so are receives. */
#ifndef IPM_TLS_H
#define IPM_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ipmirror.h"

struct ipm_tls_creds;
struct ipm_tls;

enum ipm_tls_side { IPM_TLS_SERVER, IPM_TLS_CLIENT };

/* What a side authenticates with; unset fields are NULL / 0. */
struct ipm_tls_config {
	const char *psk_file;       /* server: psktool format, "identity:hexkey" per line */
	const uint8_t *psk_key;     /* a fixed key (both sides), psk_len bytes */
	size_t psk_len;
	const char *psk_identity;   /* the identity sent with psk_key */
	const char *cert, *key;     /* X.509: PEM certificate (chain) and its key */
	const char *ca;             /* PEM CA: the peer must present a certificate it signed */
	bool tls13_only;            /* else TLS 1.2 is allowed too (NBD clients) */
	const char *alpn;           /* an application protocol (ALPN) to offer (client)
				     * or accept (server), not required: a peer that
				     * does not know it still connects (ipm_tls_alpn) */
};

/* Load credentials. Files are read (and checked) now, so a bad path or
 * file is an error at start-up with its name, not a failed handshake. */
int ipm_tls_creds_new(enum ipm_tls_side side, const struct ipm_tls_config *cfg,
		      struct ipm_tls_creds **out, ipm_error *err);
void ipm_tls_creds_free(struct ipm_tls_creds *c);

/* A session over fd (not owned: closing it stays the caller's). */
int ipm_tls_new(const struct ipm_tls_creds *c, int fd, struct ipm_tls **out, ipm_error *err);
/* Run the handshake within timeout_ms (blocking socket). 0, or -ETIMEDOUT,
 * -ECONNRESET, -EACCES (the peer's credentials were refused) or -EPROTO
 * with the reason in err. */
int ipm_tls_handshake(struct ipm_tls *t, unsigned timeout_ms, ipm_error *err);
/* Receive up to len bytes: the first record (waiting for it unless
 * nonblock), then every record already received that fits, as recv(2)
 * returns all that is there. > 0, 0 at a clean end, -EAGAIN (the socket's
 * receive timeout, or nothing there with nonblock: then nothing is left
 * buffered either), -EBADMSG (a record that fails authentication:
 * tampering), another -errno. An end or error behind returned bytes is the
 * next call's result. */
ssize_t ipm_tls_recv(struct ipm_tls *t, void *buf, size_t len, bool nonblock);
/* From now on open the peer's records here, straight from the read-ahead
 * into the caller's buffer (GnuTLS copies each byte twice more on the way:
 * doc/performance.md, "TLS"): after a TLS 1.3 handshake with an AEAD
 * cipher, and only where GnuTLS holds no received byte (after a message
 * read whole). 1: done, 0: GnuTLS goes on reading. The session's
 * sending side stays GnuTLS's. A record other than application data (an
 * alert, a KeyUpdate: GnuTLS sends one by itself after 2^24 records) goes
 * back to GnuTLS, which reads on from it. */
int ipm_tls_rx_direct(struct ipm_tls *t);
/* Update our sending key (TLS 1.3 KeyUpdate), as GnuTLS does by itself
 * after 2^24 records (tests). 0 or -EPROTO. */
int ipm_tls_key_update(struct ipm_tls *t);
/* Decrypted bytes already buffered: poll() on the socket does not see them. */
bool ipm_tls_pending(struct ipm_tls *t);
/* Blocking send of the whole vector, packed into full records (16 KiB)
 * sent three at a time (one send(2) per 48 KiB): 0, -EAGAIN at the
 * socket's send timeout, or another -errno. */
int ipm_tls_sendv(struct ipm_tls *t, const struct iovec *iov, int cnt);
/* Non-blocking send: takes (copies) up to max bytes of the vector and
 * returns how many, or -EAGAIN when the socket is full with bytes of an
 * earlier call still unsent (ipm_tls_send_pending), or another -errno.
 * Taken bytes are the session's to deliver: call again (with cnt 0 to only
 * flush) while ipm_tls_send_pending. */
ssize_t ipm_tls_sendv_nb(struct ipm_tls *t, const struct iovec *iov, int cnt, size_t max);
bool ipm_tls_send_pending(const struct ipm_tls *t);
/* Tell the peer we end (close_notify), without waiting. */
void ipm_tls_bye(struct ipm_tls *t);
void ipm_tls_free(struct ipm_tls *t);
/* The negotiated protocol and key exchange, for log lines ("TLS1.3 PSK"). */
const char *ipm_tls_describe(struct ipm_tls *t, char *buf, size_t len);
/* Both sides agreed on the configuration's alpn in the handshake (which
 * authenticates it); false when either side has none. */
bool ipm_tls_alpn(struct ipm_tls *t);
/* The last GnuTLS error of t, for log lines. */
const char *ipm_tls_error(const struct ipm_tls *t);

/* The calls a connection's code makes whether it has TLS (t) or not:
 * recv(2)'s contract (-1 and errno; MSG_DONTWAIT honoured), and a send of
 * the whole vector (0 or -errno; iov may be consumed). */
ssize_t ipm_conn_recv(int fd, struct ipm_tls *t, void *buf, size_t len, int flags);
int ipm_conn_sendv(int fd, struct ipm_tls *t, struct iovec *iov, int cnt);

/* HKDF-SHA256 (RFC 5869): len bytes of key for label from ikm. */
int ipm_tls_hkdf(const uint8_t *ikm, size_t ikm_len, const char *label, uint8_t *out,
		 size_t len);

#endif /* IPM_TLS_H */
