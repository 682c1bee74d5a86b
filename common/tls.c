/* tls.c - GnuTLS sessions over stream sockets (tls.h): credentials, the
 * handshake, and socket-like send/receive with our own transport functions
 * (MSG_NOSIGNAL, per-call MSG_DONTWAIT). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "fullio.h"
#include "tls.h"

/* AES-GCM first, and the server's order decides: GnuTLS put ChaCha20 first
 * on this machine's CPU, which has AES-NI (AES-128-GCM 4.9 GB/s, ChaCha20
 * 0.4 GB/s in gnutls-cli --benchmark-ciphers) */
#define PRIO_CIPHERS "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:%SERVER_PRECEDENCE"
#define PRIO_TLS13 "NORMAL:-VERS-ALL:+VERS-TLS1.3:+ECDHE-PSK:+DHE-PSK:+PSK:" PRIO_CIPHERS
#define PRIO_TLS12 "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:+ECDHE-PSK:+DHE-PSK:+PSK:" \
	PRIO_CIPHERS
#define PSK_LINE_MAX 1024

struct ipm_tls_creds {
	enum ipm_tls_side side;
	gnutls_psk_server_credentials_t psk_srv;
	gnutls_psk_client_credentials_t psk_cli;
	gnutls_certificate_credentials_t x509;
	gnutls_priority_t prio;
	bool verify_peer;   /* a CA was given: the peer must show a certificate */
	/* a fixed server key: its identity and key (the callback's) */
	char *identity;
	gnutls_datum_t key;
	char *alpn;         /* the application protocol offered/accepted, or NULL */
};

/* GnuTLS reads a record's header, then its body: two recv(2) a record of at
 * most 16 KiB. The session reads ahead instead (RA_SIZE at a time) and hands
 * GnuTLS what it asks for from there; a blocking ipm_tls_sendv gathers its
 * records (WBUF_MAX at most) and sends them with one send(2), where GnuTLS
 * would send each record by itself. WBUF_MAX holds three full records (48
 * KiB): sends within 64 KiB (loopback's MTU, GSO's limit) measured cheaper
 * than 15 or 4 records a send, and the mirror starts on a large payload
 * sooner (doc/performance.md, "TLS"). */
#define RA_SIZE (128u << 10)
/* TLS 1.3 records (RFC 8446, 5.2): a 5-byte header, then at most 2^14 + 256
 * bytes of AEAD output: the plaintext, its content type byte, padding, a
 * 16-byte tag. The nonce: the 12-byte IV xor the record's number. */
#define REC_HDR 5
#define REC_TAG 16
#define REC_CT_MAX (16384u + 256u)
#define REC_PT_MAX 16384u
#define RX_IV_LEN 12
#define CT_APPDATA 23
#define WBUF_MIN (32u << 10)
#define WBUF_MAX (64u << 10)

struct ipm_tls {
	gnutls_session_t s;
	int fd;
	int recv_flags;     /* the receiving thread's, MSG_DONTWAIT per call */
	int send_flags;     /* the sending thread's */
	bool corked;        /* bytes taken by ipm_tls_sendv_nb wait in the cork */
	int last;           /* last GnuTLS error */
	/* receiving thread: ciphertext read ahead, not yet taken by GnuTLS */
	uint8_t *ra;
	size_t ra_pos, ra_end;
	bool ra_only;       /* no recv(2): what is read ahead, else EAGAIN */
	bool pull_again;    /* the pull function said EAGAIN (not GnuTLS itself) */
	bool has_deferred;  /* an end or error met after bytes were returned: */
	ssize_t deferred;   /* the next receive's result */
	/* receiving thread, once ipm_tls_rx_direct: records opened here, from
	 * the read-ahead straight into the caller's buffer */
	bool rx_direct;
	gnutls_aead_cipher_hd_t rx_aead;
	uint8_t rx_iv[RX_IV_LEN];
	uint64_t rx_seq;
	uint8_t *pt;        /* a record's plaintext the caller had no room for */
	size_t pt_pos, pt_end;
	ssize_t rx_end;     /* the error that ended reading */
	bool rx_ended;
	/* sending thread: records of one ipm_tls_sendv, not sent yet */
	uint8_t *wbuf;
	size_t wlen, wcap;
	bool gather;
};

/* ---- credentials ------------------------------------------------------- */

static int gfail(ipm_error *err, int rc, int g, const char *what)
{
	return ipm_fail(err, rc, "%s: %s", what, gnutls_strerror(g));
}

/* A secret file: a regular file only its owner may read. */
static int check_private(const char *path, const char *what, ipm_error *err)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return ipm_fail(err, -errno, "%s %s: %s", what, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return ipm_fail(err, -EINVAL, "%s %s is not a regular file", what, path);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return ipm_fail(err, -EACCES, "%s %s is readable by others (mode %03o); "
				"chmod 600 it", what, path, st.st_mode & 0777);
	return 0;
}

/* psktool's format: "identity:hexkey" per line; at least one valid line,
 * and no line that is not one (a typo would fail every handshake). */
static int check_psk_file(const char *path, ipm_error *err)
{
	char line[PSK_LINE_MAX];
	int n = 0, lineno = 0, rc;
	FILE *f;

	rc = check_private(path, "tls-psk-file", err);
	if (rc < 0)
		return rc;
	f = fopen(path, "re");
	if (!f)
		return ipm_fail(err, -errno, "tls-psk-file %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':'), *p;
		size_t hex = 0;

		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0])
			continue;
		for (p = colon ? colon + 1 : NULL; p && isxdigit((unsigned char)*p); p++)
			hex++;
		if (!colon || colon == line || !p || *p || hex == 0 || hex % 2) {
			fclose(f);
			return ipm_fail(err, -EINVAL, "tls-psk-file %s line %d: not "
					"\"identity:hexkey\" (psktool's format)", path, lineno);
		}
		n++;
	}
	fclose(f);
	if (n == 0)
		return ipm_fail(err, -EINVAL, "tls-psk-file %s holds no key", path);
	return 0;
}

/* The server's fixed key: any identity gets it (the key proves the peer). */
static int psk_server_cb(gnutls_session_t s, const char *username, gnutls_datum_t *key)
{
	const struct ipm_tls_creds *c = gnutls_session_get_ptr(s);

	(void)username;
	key->data = gnutls_malloc(c->key.size);
	if (!key->data)
		return -1;
	memcpy(key->data, c->key.data, c->key.size);
	key->size = c->key.size;
	return 0;
}

static int creds_psk(struct ipm_tls_creds *c, const struct ipm_tls_config *cfg, ipm_error *err)
{
	gnutls_datum_t key = { (unsigned char *)cfg->psk_key, (unsigned)cfg->psk_len };
	int g, rc;

	if (c->side == IPM_TLS_SERVER) {
		g = gnutls_psk_allocate_server_credentials(&c->psk_srv);
		if (g < 0)
			return gfail(err, -ENOMEM, g, "TLS PSK credentials");
		if (cfg->psk_file) {
			rc = check_psk_file(cfg->psk_file, err);
			if (rc < 0)
				return rc;
			g = gnutls_psk_set_server_credentials_file(c->psk_srv, cfg->psk_file);
			if (g < 0)
				return gfail(err, -EINVAL, g, cfg->psk_file);
			return 0;
		}
		c->key.data = malloc(cfg->psk_len);
		if (!c->key.data)
			return ipm_fail(err, -ENOMEM, "out of memory");
		memcpy(c->key.data, cfg->psk_key, cfg->psk_len);
		c->key.size = (unsigned)cfg->psk_len;
		gnutls_psk_set_server_credentials_function(c->psk_srv, psk_server_cb);
		return 0;
	}
	if (!cfg->psk_key)
		return ipm_fail(err, -EINVAL, "a TLS PSK client needs a key");
	g = gnutls_psk_allocate_client_credentials(&c->psk_cli);
	if (g >= 0)
		g = gnutls_psk_set_client_credentials(c->psk_cli, cfg->psk_identity, &key,
						      GNUTLS_PSK_KEY_RAW);
	return g < 0 ? gfail(err, -EINVAL, g, "TLS PSK credentials") : 0;
}

static int creds_x509(struct ipm_tls_creds *c, const struct ipm_tls_config *cfg, ipm_error *err)
{
	int g, rc;

	g = gnutls_certificate_allocate_credentials(&c->x509);
	if (g < 0)
		return gfail(err, -ENOMEM, g, "TLS certificate credentials");
	if (cfg->cert || cfg->key) {
		if (!cfg->cert || !cfg->key)
			return ipm_fail(err, -EINVAL, "TLS needs both a certificate and its key");
		rc = check_private(cfg->key, "tls-key", err);
		if (rc < 0)
			return rc;
		g = gnutls_certificate_set_x509_key_file(c->x509, cfg->cert, cfg->key,
							 GNUTLS_X509_FMT_PEM);
		if (g < 0)
			return ipm_fail(err, -EINVAL, "tls-cert %s / tls-key %s: %s", cfg->cert,
					cfg->key, gnutls_strerror(g));
	}
	if (cfg->ca) {
		g = gnutls_certificate_set_x509_trust_file(c->x509, cfg->ca, GNUTLS_X509_FMT_PEM);
		if (g <= 0)
			return ipm_fail(err, -EINVAL, "tls-ca %s: %s", cfg->ca,
					g < 0 ? gnutls_strerror(g) : "no certificate in it");
		c->verify_peer = true;
	}
	return 0;
}

int ipm_tls_creds_new(enum ipm_tls_side side, const struct ipm_tls_config *cfg,
		      struct ipm_tls_creds **out, ipm_error *err)
{
	struct ipm_tls_creds *c = calloc(1, sizeof(*c));
	bool psk = cfg->psk_file || cfg->psk_key;
	bool x509 = cfg->cert || cfg->key || cfg->ca;
	int rc = 0, g;

	if (!c)
		return ipm_fail(err, -ENOMEM, "out of memory");
	c->side = side;
	if (!psk && !x509)
		rc = ipm_fail(err, -EINVAL, "TLS needs a PSK or a certificate");
	if (rc == 0 && psk)
		rc = creds_psk(c, cfg, err);
	if (rc == 0 && x509)
		rc = creds_x509(c, cfg, err);
	if (rc == 0 && side == IPM_TLS_SERVER && x509 && !(cfg->cert && cfg->key))
		rc = ipm_fail(err, -EINVAL, "a TLS server needs tls-cert and tls-key");
	if (rc == 0 && cfg->alpn && !(c->alpn = strdup(cfg->alpn)))
		rc = ipm_fail(err, -ENOMEM, "out of memory");
	if (rc == 0) {
		g = gnutls_priority_init(&c->prio, cfg->tls13_only ? PRIO_TLS13 : PRIO_TLS12, NULL);
		if (g < 0)
			rc = gfail(err, -EINVAL, g, "TLS priorities");
	}
	if (rc < 0) {
		ipm_tls_creds_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void ipm_tls_creds_free(struct ipm_tls_creds *c)
{
	if (!c)
		return;
	if (c->psk_srv)
		gnutls_psk_free_server_credentials(c->psk_srv);
	if (c->psk_cli)
		gnutls_psk_free_client_credentials(c->psk_cli);
	if (c->x509)
		gnutls_certificate_free_credentials(c->x509);
	if (c->prio)
		gnutls_priority_deinit(c->prio);
	if (c->key.data) {
		gnutls_memset(c->key.data, 0, c->key.size);
		free(c->key.data);
	}
	free(c->identity);
	free(c->alpn);
	free(c);
}

/* ---- transport --------------------------------------------------------- */

/* Send the gathered records: 0, or -1 with errno. */
static int wflush(struct ipm_tls *t)
{
	size_t done = 0;

	while (done < t->wlen) {
		ssize_t n = send(t->fd, t->wbuf + done, t->wlen - done, MSG_NOSIGNAL | t->send_flags);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			t->wlen = 0;  /* the stream is broken: the caller fails the session */
			return -1;
		}
		done += (size_t)n;
	}
	t->wlen = 0;
	return 0;
}

/* Append a record to the gathered ones (sending them first when it would
 * not fit): its size, or -1 with errno; 0 when it is to be sent directly. */
static ssize_t gather(struct ipm_tls *t, const giovec_t *iov, int cnt)
{
	size_t size = 0;

	for (int i = 0; i < cnt; i++)
		size += iov[i].iov_len;
	if (size > WBUF_MAX)
		return wflush(t) < 0 ? -1 : 0;
	if (t->wlen + size > WBUF_MAX && wflush(t) < 0)
		return -1;
	if (t->wlen + size > t->wcap) {
		size_t cap = t->wcap ? t->wcap : WBUF_MIN;
		uint8_t *p;

		while (cap < t->wlen + size)
			cap *= 2;
		p = realloc(t->wbuf, cap);
		if (!p) {
			errno = ENOMEM;
			return -1;
		}
		t->wbuf = p;
		t->wcap = cap;
	}
	for (int i = 0; i < cnt; i++) {
		memcpy(t->wbuf + t->wlen, iov[i].iov_base, iov[i].iov_len);
		t->wlen += iov[i].iov_len;
	}
	return (ssize_t)size;
}

static ssize_t t_push(gnutls_transport_ptr_t p, const giovec_t *iov, int cnt)
{
	struct ipm_tls *t = p;
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt };
	ssize_t n = 0;

	if (t->gather)
		n = gather(t, iov, cnt);
	while (n == 0) {
		n = sendmsg(t->fd, &m, MSG_NOSIGNAL | t->send_flags);
		if (n < 0 && errno == EINTR)
			n = 0;
	}
	if (n < 0)
		gnutls_transport_set_errno(t->s, errno == EWOULDBLOCK ? EAGAIN : errno);
	return n;
}

/* GnuTLS asks for len bytes: from the read-ahead, else one recv(2) into
 * buf and the read-ahead after it. */
static ssize_t t_pull(gnutls_transport_ptr_t p, void *buf, size_t len)
{
	struct ipm_tls *t = p;
	struct iovec iov[2] = { { buf, len }, { t->ra, RA_SIZE } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
	size_t k;
	ssize_t n;

	if (t->ra_pos < t->ra_end) {
		k = t->ra_end - t->ra_pos < len ? t->ra_end - t->ra_pos : len;
		memcpy(buf, t->ra + t->ra_pos, k);
		t->ra_pos += k;
		return (ssize_t)k;
	}
	if (t->ra_only) {
		t->pull_again = true;
		gnutls_transport_set_errno(t->s, EAGAIN);
		return -1;
	}
	t->ra_pos = t->ra_end = 0;
	do
		n = recvmsg(t->fd, &m, t->recv_flags);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		t->pull_again = errno == EWOULDBLOCK || errno == EAGAIN;
		gnutls_transport_set_errno(t->s, errno == EWOULDBLOCK ? EAGAIN : errno);
		return n;
	}
	if ((size_t)n <= len)
		return n;
	t->ra_end = (size_t)n - len;
	return (ssize_t)len;
}

static int t_pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	struct ipm_tls *t = p;
	struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
	int n;

	if (t->ra_pos < t->ra_end)
		return 1;
	do
		n = poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
	while (n < 0 && errno == EINTR);
	return n;
}

/* ---- sessions ---------------------------------------------------------- */

static ssize_t direct_recv(struct ipm_tls *t, uint8_t *buf, size_t len, bool nonblock);
static bool direct_pending(const struct ipm_tls *t);

int ipm_tls_new(const struct ipm_tls_creds *c, int fd, struct ipm_tls **out, ipm_error *err)
{
	struct ipm_tls *t = calloc(1, sizeof(*t));
	unsigned flags = (c->side == IPM_TLS_SERVER ? GNUTLS_SERVER : GNUTLS_CLIENT) |
			 GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS;
	int g;

	if (t)
		t->ra = malloc(RA_SIZE);
	if (!t || !t->ra) {
		free(t);
		return ipm_fail(err, -ENOMEM, "out of memory");
	}
	t->fd = fd;
	g = gnutls_init(&t->s, flags);
	if (g < 0) {
		free(t->ra);
		free(t);
		return gfail(err, -ENOMEM, g, "TLS session");
	}
	gnutls_session_set_ptr(t->s, (void *)c);
	g = gnutls_priority_set(t->s, c->prio);
	if (g >= 0 && (c->psk_srv || c->psk_cli))
		g = gnutls_credentials_set(t->s, GNUTLS_CRD_PSK,
					   c->psk_srv ? (void *)c->psk_srv : (void *)c->psk_cli);
	if (g >= 0 && c->x509)
		g = gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, c->x509);
	if (g >= 0 && c->alpn) {
		gnutls_datum_t proto = { (unsigned char *)c->alpn, (unsigned)strlen(c->alpn) };

		/* not GNUTLS_ALPN_MANDATORY: a peer without it still connects */
		g = gnutls_alpn_set_protocols(t->s, &proto, 1, 0);
	}
	if (g < 0) {
		gnutls_deinit(t->s);
		free(t->ra);
		free(t);
		return gfail(err, -EINVAL, g, "TLS session");
	}
	if (c->verify_peer) {
		if (c->side == IPM_TLS_SERVER)
			gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
		gnutls_session_set_verify_cert(t->s, NULL, 0);
	}
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_vec_push_function(t->s, t_push);
	gnutls_transport_set_pull_function(t->s, t_pull);
	gnutls_transport_set_pull_timeout_function(t->s, t_pull_timeout);
	*out = t;
	return 0;
}

int ipm_tls_handshake(struct ipm_tls *t, unsigned timeout_ms, ipm_error *err)
{
	int g;

	gnutls_handshake_set_timeout(t->s, timeout_ms);
	do
		g = gnutls_handshake(t->s);
	while (g < 0 && !gnutls_error_is_fatal(g) && g != GNUTLS_E_AGAIN);
	t->last = g;
	switch (g) {
	case GNUTLS_E_SUCCESS:
		return 0;
	case GNUTLS_E_AGAIN:
	case GNUTLS_E_TIMEDOUT:
		return ipm_fail(err, -ETIMEDOUT, "TLS handshake timed out");
	case GNUTLS_E_PREMATURE_TERMINATION:
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		return ipm_fail(err, -ECONNRESET, "TLS handshake: %s", gnutls_strerror(g));
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
	case GNUTLS_E_CERTIFICATE_ERROR:
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_DECRYPTION_FAILED:
	case GNUTLS_E_KEYFILE_ERROR:
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
	case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
		return ipm_fail(err, -EACCES, "TLS handshake refused: %s%s%s", gnutls_strerror(g),
				g == GNUTLS_E_FATAL_ALERT_RECEIVED ? ": " : "",
				g == GNUTLS_E_FATAL_ALERT_RECEIVED ?
				gnutls_alert_get_name(gnutls_alert_get(t->s)) : "");
	default:
		return ipm_fail(err, -EPROTO, "TLS handshake: %s", gnutls_strerror(g));
	}
}

static ssize_t g_to_errno(struct ipm_tls *t, ssize_t g)
{
	t->last = (int)g;
	switch (g) {
	case GNUTLS_E_AGAIN:
		return -EAGAIN;
	case GNUTLS_E_DECRYPTION_FAILED:
	case GNUTLS_E_MAC_VERIFY_FAILED:
	case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
	case GNUTLS_E_RECORD_OVERFLOW:
	case GNUTLS_E_UNEXPECTED_PACKET:
		return -EBADMSG;
	case GNUTLS_E_PREMATURE_TERMINATION:
		return -ECONNRESET;
	case GNUTLS_E_PUSH_ERROR:
		return -EPIPE;
	default:
		return -EPROTO;
	}
}

/* GnuTLS answers GNUTLS_E_AGAIN also after a post-handshake message it
 * took (the peer's KeyUpdate, which GnuTLS sends by itself after 2^24
 * records): that is no timeout, read on. */
static ssize_t record_recv(struct ipm_tls *t, void *buf, size_t len)
{
	ssize_t g;

	do {
		t->pull_again = false;
		g = gnutls_record_recv(t->s, buf, len);
	} while (g == GNUTLS_E_INTERRUPTED || (g == GNUTLS_E_AGAIN && !t->pull_again));
	return g;
}

/* The first record as asked (waiting or not), then every one already here,
 * as far as len goes: a reader sees what came in one go, as with recv(2),
 * not one record per call. An end or error behind returned bytes is the
 * next call's result. */
ssize_t ipm_tls_recv(struct ipm_tls *t, void *buf, size_t len, bool nonblock)
{
	size_t got;
	ssize_t g;

	if (t->rx_direct)
		return direct_recv(t, buf, len, nonblock);
	if (t->has_deferred) {
		t->has_deferred = false;
		return t->deferred;
	}
	t->recv_flags = nonblock ? MSG_DONTWAIT : 0;
	g = record_recv(t, buf, len);
	if (g <= 0)
		return g == 0 ? 0 : g_to_errno(t, g);
	got = (size_t)g;
	t->ra_only = true;
	while (got < len && ipm_tls_pending(t)) {
		g = record_recv(t, (uint8_t *)buf + got, len - got);
		if (g == GNUTLS_E_AGAIN)
			break;  /* a record's rest is still on its way */
		if (g <= 0) {
			t->has_deferred = true;
			t->deferred = g == 0 ? 0 : g_to_errno(t, g);
			break;
		}
		got += (size_t)g;
	}
	t->ra_only = false;
	return (ssize_t)got;
}

bool ipm_tls_pending(struct ipm_tls *t)
{
	if (t->rx_direct)
		return direct_pending(t);
	return t->ra_pos < t->ra_end || gnutls_record_check_pending(t->s) > 0;
}

/* ---- direct receive ------------------------------------------------------ */

int ipm_tls_rx_direct(struct ipm_tls *t)
{
	gnutls_cipher_algorithm_t alg = gnutls_cipher_get(t->s);
	gnutls_datum_t mac, iv, key;
	unsigned char seq[8];
	int g;

	if (t->rx_direct || t->has_deferred || gnutls_protocol_get_version(t->s) != GNUTLS_TLS1_3 ||
	    gnutls_record_check_pending(t->s) > 0 ||
	    (alg != GNUTLS_CIPHER_AES_128_GCM && alg != GNUTLS_CIPHER_AES_256_GCM &&
	     alg != GNUTLS_CIPHER_CHACHA20_POLY1305))
		return 0;  /* GnuTLS goes on reading */
	g = gnutls_record_get_state(t->s, 1, &mac, &iv, &key, seq);
	if (g < 0 || iv.size != RX_IV_LEN)
		return 0;
	t->pt = malloc(REC_CT_MAX);
	if (!t->pt)
		return 0;
	g = gnutls_aead_cipher_init(&t->rx_aead, alg, &key);
	if (g < 0) {
		t->rx_aead = NULL;
		free(t->pt);
		t->pt = NULL;
		return 0;
	}
	memcpy(t->rx_iv, iv.data, RX_IV_LEN);
	t->rx_seq = 0;
	for (int i = 0; i < 8; i++)
		t->rx_seq = t->rx_seq << 8 | seq[i];
	t->rx_direct = true;
	return 1;
}

/* The reading ended (a bad record, the socket's end): every later call says so. */
static ssize_t rx_end(struct ipm_tls *t, ssize_t why, int g)
{
	t->rx_ended = true;
	t->rx_end = why;
	if (g)
		t->last = g;
	return why;
}

/* A record that is not application data (an alert, the peer's KeyUpdate,
 * which GnuTLS sends by itself after 2^24 records): GnuTLS reads on from
 * it, told the number it has reached; -EXDEV tells the caller. */
static ssize_t direct_off(struct ipm_tls *t)
{
	unsigned char seq[8];
	int g;

	for (int i = 0; i < 8; i++)
		seq[i] = (unsigned char)(t->rx_seq >> (56 - 8 * i));
	g = gnutls_record_set_state(t->s, 1, seq);
	if (g < 0)
		return rx_end(t, -EPROTO, g);
	gnutls_aead_cipher_deinit(t->rx_aead);
	t->rx_aead = NULL;
	t->rx_direct = false;
	return -EXDEV;
}

/* Open the record at the read-ahead's start, if it is all there: into dst
 * when its plaintext fits room, else into t->pt. Its application bytes put
 * in dst (0 when they went to t->pt, or it had none), -EAGAIN when the
 * record is not complete yet, -EXDEV when it is for GnuTLS (direct_off),
 * or the end of reading (-EBADMSG, -EPROTO). */
static ssize_t open_record(struct ipm_tls *t, uint8_t *dst, size_t room)
{
	const uint8_t *h = t->ra + t->ra_pos;
	size_t have = t->ra_end - t->ra_pos, len, ptlen;
	uint8_t nonce[RX_IV_LEN], *out, type;
	int g;

	if (have < REC_HDR)
		return -EAGAIN;
	len = (size_t)h[3] << 8 | h[4];
	if (h[0] != CT_APPDATA || h[1] != 3 || h[2] != 3)
		return rx_end(t, -EBADMSG, GNUTLS_E_UNEXPECTED_PACKET);
	if (len <= REC_TAG || len > REC_CT_MAX)
		return rx_end(t, -EBADMSG, GNUTLS_E_RECORD_OVERFLOW);
	if (have < REC_HDR + len)
		return -EAGAIN;
	if (t->rx_seq == UINT64_MAX)  /* no nonce left: reconnect */
		return rx_end(t, -EPROTO, GNUTLS_E_INTERNAL_ERROR);
	memcpy(nonce, t->rx_iv, RX_IV_LEN);
	for (int i = 0; i < 8; i++)
		nonce[RX_IV_LEN - 1 - i] ^= (uint8_t)(t->rx_seq >> (8 * i));
	ptlen = len - REC_TAG;
	out = ptlen <= room ? dst : t->pt;
	g = gnutls_aead_cipher_decrypt(t->rx_aead, nonce, RX_IV_LEN, h, REC_HDR, REC_TAG,
				       h + REC_HDR, len, out, &ptlen);
	if (g < 0)
		return rx_end(t, -EBADMSG, GNUTLS_E_DECRYPTION_FAILED);
	while (ptlen && !out[ptlen - 1])  /* padding */
		ptlen--;
	if (!ptlen)
		return rx_end(t, -EBADMSG, GNUTLS_E_UNEXPECTED_PACKET);
	type = out[--ptlen];
	if (ptlen > REC_PT_MAX)
		return rx_end(t, -EBADMSG, GNUTLS_E_RECORD_OVERFLOW);
	if (type != CT_APPDATA)
		return direct_off(t);
	t->ra_pos += REC_HDR + len;
	t->rx_seq++;
	if (out == dst)
		return (ssize_t)ptlen;
	t->pt_pos = 0;
	t->pt_end = ptlen;
	return 0;
}

/* Something to return without reading the socket: plaintext, a whole
 * record, or the end. */
static bool direct_pending(const struct ipm_tls *t)
{
	const uint8_t *h = t->ra + t->ra_pos;
	size_t have = t->ra_end - t->ra_pos;

	return t->pt_pos < t->pt_end || t->rx_ended ||
	       (have >= REC_HDR && have >= REC_HDR + ((size_t)h[3] << 8 | h[4]));
}

/* Read the socket behind what is read ahead (a record's start kept at the
 * front): > 0, 0 at the end of the stream, or -errno. */
static ssize_t ra_fill(struct ipm_tls *t, bool nonblock)
{
	ssize_t n;

	if (t->ra_pos) {
		memmove(t->ra, t->ra + t->ra_pos, t->ra_end - t->ra_pos);
		t->ra_end -= t->ra_pos;
		t->ra_pos = 0;
	}
	do
		n = recv(t->fd, t->ra + t->ra_end, RA_SIZE - t->ra_end, nonblock ? MSG_DONTWAIT : 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	t->ra_end += (size_t)n;
	return n;
}

/* ipm_tls_recv once direct: the same contract. */
static ssize_t direct_recv(struct ipm_tls *t, uint8_t *buf, size_t len, bool nonblock)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		if (t->pt_pos < t->pt_end) {
			size_t k = t->pt_end - t->pt_pos < len - got ? t->pt_end - t->pt_pos : len - got;

			memcpy(buf + got, t->pt + t->pt_pos, k);
			t->pt_pos += k;
			got += k;
			continue;
		}
		if (t->rx_ended)
			break;
		n = open_record(t, buf + got, len - got);
		if (n >= 0) {
			got += (size_t)n;
			continue;
		}
		if (n == -EXDEV && !got)
			return ipm_tls_recv(t, buf, len, nonblock);  /* GnuTLS's from here */
		if (n != -EAGAIN || got)
			break;  /* the end is the next call's; records still on their way */
		n = ra_fill(t, nonblock);
		if (n == 0)
			rx_end(t, -ECONNRESET, GNUTLS_E_PREMATURE_TERMINATION);
		else if (n < 0 && n != -EAGAIN)
			rx_end(t, n, GNUTLS_E_PULL_ERROR);
		else if (n < 0)
			return -EAGAIN;
	}
	return got ? (ssize_t)got : t->rx_end;
}

/* Flush the cork: 0, or a negative errno (-EAGAIN: the socket is full). */
static int uncork(struct ipm_tls *t)
{
	int g;

	if (!t->corked)
		return 0;
	do
		g = gnutls_record_uncork(t->s, 0);
	while (g == GNUTLS_E_INTERRUPTED);
	if (g < 0)
		return (int)g_to_errno(t, g);
	t->corked = false;
	return 0;
}

/* Copy up to max bytes of the vector into the cork. */
static ssize_t cork_in(struct ipm_tls *t, const struct iovec *iov, int cnt, size_t max)
{
	size_t taken = 0;

	gnutls_record_cork(t->s);
	t->corked = true;
	for (int i = 0; i < cnt && taken < max; i++) {
		size_t k = iov[i].iov_len < max - taken ? iov[i].iov_len : max - taken;
		ssize_t g;

		if (!k)
			continue;
		g = gnutls_record_send(t->s, iov[i].iov_base, k);
		if (g < 0)
			return g_to_errno(t, g);
		taken += (size_t)g;
	}
	return (ssize_t)taken;
}

/* The vector in full records: whole records of a large piece are encrypted
 * where the piece lies; the bytes around them (frame headers, small
 * payloads) are packed into records through the cork. 0 or -errno. */
static int send_records(struct ipm_tls *t, const struct iovec *iov, int cnt)
{
	size_t rec = gnutls_record_get_max_size(t->s), corked = 0;
	int rc;

	for (int i = 0; i < cnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t len = iov[i].iov_len;

		while (len > 0) {
			size_t k = len < rec - corked ? len : rec - corked;
			ssize_t g;

			if (corked == 0 && len >= rec) {
				do  /* uncorked: one record, sent (gathered) now */
					g = gnutls_record_send(t->s, p, rec);
				while (g == GNUTLS_E_INTERRUPTED);
			} else {
				if (!t->corked)
					gnutls_record_cork(t->s);
				t->corked = true;
				g = gnutls_record_send(t->s, p, k);
				if (g > 0)
					corked += (size_t)g;
			}
			if (g < 0)
				return (int)g_to_errno(t, g);
			p += g;
			len -= (size_t)g;
			if (corked == rec) {
				rc = uncork(t);
				if (rc < 0)
					return rc;
				corked = 0;
			}
		}
	}
	return uncork(t);
}

int ipm_tls_sendv(struct ipm_tls *t, const struct iovec *iov, int cnt)
{
	int rc;

	t->send_flags = 0;
	t->gather = true;
	rc = send_records(t, iov, cnt);
	t->gather = false;
	if (rc == 0 && wflush(t) < 0)
		rc = -errno;
	t->wlen = 0;
	return rc;
}

ssize_t ipm_tls_sendv_nb(struct ipm_tls *t, const struct iovec *iov, int cnt, size_t max)
{
	ssize_t n;
	int rc;

	t->send_flags = MSG_DONTWAIT;
	rc = uncork(t);
	if (rc < 0)
		return rc;
	if (cnt == 0)
		return 0;
	n = cork_in(t, iov, cnt, max);
	if (n < 0)
		return n;
	rc = uncork(t);
	return rc < 0 && rc != -EAGAIN ? rc : n;
}

bool ipm_tls_send_pending(const struct ipm_tls *t)
{
	return t->corked;
}

void ipm_tls_bye(struct ipm_tls *t)
{
	t->send_flags = MSG_DONTWAIT;
	if (!t->corked)
		gnutls_bye(t->s, GNUTLS_SHUT_WR);
}

void ipm_tls_free(struct ipm_tls *t)
{
	if (!t)
		return;
	if (t->rx_aead)
		gnutls_aead_cipher_deinit(t->rx_aead);
	free(t->pt);
	gnutls_deinit(t->s);
	free(t->ra);
	free(t->wbuf);
	free(t);
}

const char *ipm_tls_describe(struct ipm_tls *t, char *buf, size_t len)
{
	gnutls_kx_algorithm_t kx = gnutls_kx_get(t->s);
	const char *auth;

	switch (gnutls_auth_get_type(t->s)) {
	case GNUTLS_CRD_PSK: auth = "PSK"; break;
	case GNUTLS_CRD_CERTIFICATE: auth = "X.509"; break;
	default: auth = "?"; break;
	}
	snprintf(buf, len, "%s %s%s, %s", gnutls_protocol_get_name(gnutls_protocol_get_version(t->s)),
		 auth, kx == GNUTLS_KX_ECDHE_PSK || kx == GNUTLS_KX_DHE_PSK ? "+DHE" : "",
		 gnutls_cipher_get_name(gnutls_cipher_get(t->s)));
	return buf;
}

int ipm_tls_key_update(struct ipm_tls *t)
{
	int g;

	t->send_flags = 0;
	do
		g = gnutls_session_key_update(t->s, 0);
	while (g == GNUTLS_E_INTERRUPTED || g == GNUTLS_E_AGAIN);
	t->last = g;
	return g < 0 ? -EPROTO : 0;
}

bool ipm_tls_alpn(struct ipm_tls *t)
{
	const struct ipm_tls_creds *c = gnutls_session_get_ptr(t->s);
	gnutls_datum_t sel;

	return c->alpn && gnutls_alpn_get_selected_protocol(t->s, &sel) == 0 &&
	       sel.size == strlen(c->alpn) && memcmp(sel.data, c->alpn, sel.size) == 0;
}

const char *ipm_tls_error(const struct ipm_tls *t)
{
	return gnutls_strerror(t->last);
}

ssize_t ipm_conn_recv(int fd, struct ipm_tls *t, void *buf, size_t len, int flags)
{
	ssize_t n;

	if (!t)
		return recv(fd, buf, len, flags);
	n = ipm_tls_recv(t, buf, len, flags & MSG_DONTWAIT);
	if (n >= 0)
		return n;
	errno = (int)-n;
	return -1;
}

int ipm_conn_sendv(int fd, struct ipm_tls *t, struct iovec *iov, int cnt)
{
	return t ? ipm_tls_sendv(t, iov, cnt) : sendmsg_full(fd, iov, cnt);
}

int ipm_tls_hkdf(const uint8_t *ikm, size_t ikm_len, const char *label, uint8_t *out,
		 size_t len)
{
	uint8_t prk[32];
	gnutls_datum_t k = { (unsigned char *)ikm, (unsigned)ikm_len };
	gnutls_datum_t salt = { (unsigned char *)"ipmirror", 8 };
	gnutls_datum_t info = { (unsigned char *)label, (unsigned)strlen(label) };
	gnutls_datum_t p = { prk, sizeof(prk) };
	int g;

	g = gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &k, &salt, prk);
	if (g >= 0)
		g = gnutls_hkdf_expand(GNUTLS_MAC_SHA256, &p, &info, out, len);
	gnutls_memset(prk, 0, sizeof(prk));
	return g < 0 ? -EINVAL : 0;
}
