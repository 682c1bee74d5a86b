/* handshake.c - mutual HMAC challenge-response and LUN negotiation at the
 * start of every mirror connection (protocol: doc/wire.md).
 *
 * Order matters for security: the server proves itself first (CHALLENGE
 * carries its MAC over the client's nonce), and the client only sends its
 * own MAC after checking that proof, so an impostor server cannot use a
 * client as an oracle for answers to a real server's challenges.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include "clock.h"
#include "auth.h"
#include "engine.h"
#include "handshake.h"

#define HS_BUF_LEN (WIRE_HS_HDR_LEN + WIRE_HS_MAX_BODY)

struct hs_conn {
	int fd;
	unsigned timeout_ms;
	int64_t deadline;		/* server, until authenticated: the whole
					 * exchange's (ms, monotonic), else 0 */
	const char *peer;		/* for messages; "peer" until known */
	struct timeval old_rcv, old_snd;
	bool saved;			/* old_rcv/old_snd hold the caller's timeouts */
	bool io_failed;			/* the socket broke: no WELCOME possible */
	const char *peer_reason;	/* told the peer instead of e.msg */
	uint8_t *buf;			/* HS_BUF_LEN */
	ipm_error e;
	uint32_t n_verdicts;		/* server: per-LUN verdicts for WELCOME */
	uint8_t *verdicts;		/* client: where WELCOME's verdicts go (or NULL) */
	uint64_t *fills;		/* client: where WELCOME's fill ids go (or NULL) */
	uint64_t *record;		/* client: where WELCOME's record goes (or NULL) */
	struct ipm_tls *tls;		/* after CHALLENGE with a TLS mode */
	enum ipm_tls_mode tls_mode;	/* ours */
	uint16_t version;		/* of our messages: offered, then agreed */
	bool agreed;			/* the peer's messages must be in version too */
	uint8_t lun_flags[WIRE_MAX_LUNS];
	uint64_t lun_fills[WIRE_MAX_LUNS];
};

/* ---- timed socket I/O -------------------------------------------------------- */

static int set_timeout(int fd, int opt, int64_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	return setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

static int io_begin(struct hs_conn *c, int fd, unsigned timeout_ms, const char *peer)
{
	socklen_t l1 = sizeof(c->old_rcv), l2 = sizeof(c->old_snd);

	c->fd = fd;
	c->timeout_ms = timeout_ms ? timeout_ms : HS_DEFAULT_TIMEOUT_MS;
	c->peer = peer;
	c->io_failed = true;	/* until the buffer and socket are ready */
	c->e.msg[0] = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &c->old_rcv, &l1) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &c->old_snd, &l2) < 0)
		return ipm_fail(&c->e, -errno, "handshake socket: %s", strerror(errno));
	c->saved = true;
	c->buf = malloc(HS_BUF_LEN);
	if (!c->buf)
		return ipm_fail(&c->e, -ENOMEM, "out of memory");
	c->io_failed = false;
	return 0;
}

static void io_end(struct hs_conn *c, ipm_error *err)
{
	if (c->saved) {
		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &c->old_rcv, sizeof(c->old_rcv));
		setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &c->old_snd, sizeof(c->old_snd));
	}
	free(c->buf);
	c->buf = NULL;
	if (err)
		*err = c->e;
}

/* Send or receive all of buf before deadline (ms, monotonic). */
static int io_full(struct hs_conn *c, bool out, uint8_t *buf, size_t len, int64_t deadline,
		   const char *what)
{
	size_t done = 0;
	int64_t left;
	ssize_t n;

	while (done < len) {
		left = deadline - ipm_now_ms();
		if (left <= 0 || set_timeout(c->fd, out ? SO_SNDTIMEO : SO_RCVTIMEO, left) < 0)
			goto timeout;
		if (out && c->tls) {
			struct iovec iov = { buf + done, len - done };
			int r = ipm_tls_sendv(c->tls, &iov, 1);

			n = r < 0 ? -1 : (ssize_t)(len - done);
			errno = -r;
		} else if (out) {
			n = send(c->fd, buf + done, len - done, MSG_NOSIGNAL);
		} else {
			n = ipm_conn_recv(c->fd, c->tls, buf + done, len - done, 0);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			goto timeout;
		c->io_failed = n <= 0;
		if (n < 0)
			return ipm_fail(&c->e, -errno, "%s %s: %s", out ? "sending" : "receiving",
					what, strerror(errno));
		if (n == 0)
			return ipm_fail(&c->e, -ECONNRESET,
					"connection closed by %s while waiting for %s", c->peer,
					what);
		done += (size_t)n;
	}
	return 0;
timeout:
	c->io_failed = true;
	return ipm_fail(&c->e, -ETIMEDOUT, "timed out after %u ms %s %s", c->timeout_ms,
			out ? "sending" : "waiting for", what);
}

/* One message's deadline: its own timeout, within the exchange's. */
static int64_t msg_deadline(const struct hs_conn *c)
{
	int64_t d = ipm_now_ms() + c->timeout_ms;

	return c->deadline && c->deadline < d ? c->deadline : d;
}

/* The TLS mode the peer announced must be ours: a node without TLS
 * talking to one with it is a misconfiguration (or a downgrade). */
static int tls_agree(struct hs_conn *c, uint8_t peer_mode, const char *peer_name)
{
	if (c->tls_mode != IPM_TLS_OFF && c->version < 5) {
		c->peer_reason = "TLS mode mismatch: this node needs TLS, which protocol version 4 lacks";
		return ipm_fail(&c->e, -EPROTO, "TLS mode mismatch: %s speaks protocol version %u "
				"only, which has no TLS (our tls mode is %s)", peer_name, c->version,
				ipm_tls_mode_name(c->tls_mode));
	}
	if (peer_mode == c->tls_mode)
		return 0;
	c->peer_reason = "TLS mode mismatch: both nodes need the same <tls mode>";
	return ipm_fail(&c->e, -EPROTO, "TLS mode mismatch: %s has tls mode %s, this node %s",
			peer_name, ipm_tls_mode_name(peer_mode), ipm_tls_mode_name(c->tls_mode));
}

/* Start TLS on the connection (both sides, right after CHALLENGE). */
static int tls_start(struct hs_conn *c, const struct hs_tls *t)
{
	struct ipm_tls *s = NULL;
	int64_t left = msg_deadline(c) - ipm_now_ms();
	int rc;

	if (c->tls_mode == IPM_TLS_OFF)
		return 0;
	c->io_failed = true;	/* no plaintext refusal in the middle of TLS */
	rc = ipm_tls_new(t->creds, c->fd, &s, &c->e);
	if (rc == 0 && (left <= 0 || set_timeout(c->fd, SO_RCVTIMEO, left) < 0 ||
			set_timeout(c->fd, SO_SNDTIMEO, left) < 0))
		rc = ipm_fail(&c->e, -ETIMEDOUT, "timed out before the TLS handshake");
	if (rc == 0)
		rc = ipm_tls_handshake(s, (unsigned)left, &c->e);
	if (rc < 0) {
		ipm_tls_free(s);
		return rc;
	}
	c->tls = s;
	c->io_failed = false;
	return 0;
}

/* Hand the session to the caller, or drop it. */
static void tls_end(struct hs_conn *c, struct hs_tls *t, int rc)
{
	/* every message was read whole: GnuTLS holds no received byte, the
	 * frames' records can be opened straight into their buffers */
	if (t && rc == 0 && c->tls)
		ipm_tls_rx_direct(c->tls);
	if (t)
		t->session = rc == 0 ? c->tls : NULL;
	if (rc < 0 || !t)
		ipm_tls_free(c->tls);
	c->tls = NULL;
}

static int send_msg(struct hs_conn *c, uint16_t type, size_t body_len, const char *what)
{
	wire_hs_hdr_encode_v(c->buf, c->version, type, (uint32_t)body_len);
	return io_full(c, true, c->buf, WIRE_HS_HDR_LEN + body_len, msg_deadline(c), what);
}

/* Receive one message of type expect (0 = any) into c->buf; the body starts
 * at c->buf + WIRE_HS_HDR_LEN. */
static int recv_msg(struct hs_conn *c, uint16_t expect, struct wire_hs_hdr *h, const char *what)
{
	int64_t deadline = msg_deadline(c);
	int rc;

	rc = io_full(c, false, c->buf, WIRE_HS_HDR_LEN, deadline, what);
	if (rc < 0)
		return rc;
	rc = wire_hs_hdr_decode(c->buf, expect, h, &c->e);
	if (rc < 0)
		return rc;
	if (c->agreed && h->version != c->version)
		return ipm_fail(&c->e, -EPROTO, "%s sent %s in protocol version %u, agreed on %u",
				c->peer, what, h->version, c->version);
	return io_full(c, false, c->buf + WIRE_HS_HDR_LEN, h->len, deadline, what);
}

/* Tell the peer why we stop (best effort) and return -status. */
static int send_refusal(struct hs_conn *c, int status, const char *reason)
{
	struct wire_welcome w = { .version = c->version, .status = status,
				  .n_luns = c->n_verdicts };
	ipm_error keep = c->e;
	size_t n;

	memcpy(w.lun_flags, c->lun_flags, c->n_verdicts);
	memcpy(w.fill, c->lun_fills, c->n_verdicts * sizeof(w.fill[0]));
	memcpy(w.message, reason, strnlen(reason, sizeof(w.message) - 1));
	n = wire_welcome_encode(c->buf + WIRE_HS_HDR_LEN, &w);
	send_msg(c, WIRE_WELCOME, n, "WELCOME");
	c->e = keep;
	return -status;
}

static const uint8_t *body(const struct hs_conn *c)
{
	return c->buf + WIRE_HS_HDR_LEN;
}

/* ---- client ------------------------------------------------------------------ */

static int check_params(const struct hs_client_params *p, ipm_error *e)
{
	if (!p->self || !*p->self || strlen(p->self) >= WIRE_NAME_LEN ||
	    !p->peer || !*p->peer || strlen(p->peer) >= WIRE_NAME_LEN)
		return ipm_fail(e, -EINVAL, "node names must be 1..%d bytes", WIRE_NAME_LEN - 1);
	if (p->n_luns > WIRE_MAX_LUNS)
		return ipm_fail(e, -EINVAL, "%u luns, limit %d", p->n_luns, WIRE_MAX_LUNS);
	if (p->window < 1 || p->window > WIRE_MAX_WINDOW)
		return ipm_fail(e, -EINVAL, "window %u outside 1..%d", p->window, WIRE_MAX_WINDOW);
	if (p->conn_index >= p->conn_count)
		return ipm_fail(e, -EINVAL, "connection index %u of %u", p->conn_index,
				p->conn_count);
	return 0;
}

/* WELCOME from the server: its verdict. */
static int client_welcome(struct hs_conn *c, const struct wire_hs_hdr *h)
{
	struct wire_welcome w = { .version = h->version };
	int rc;

	rc = wire_welcome_decode(body(c), h->len, &w, &c->e);
	if (rc < 0)
		return rc;
	if (c->verdicts)
		memcpy(c->verdicts, w.lun_flags, w.n_luns);
	if (c->fills)
		memcpy(c->fills, w.fill, w.n_luns * sizeof(w.fill[0]));
	if (w.status == 0) {
		if (c->record)
			*c->record = w.record;
		return 0;
	}
	return ipm_fail(&c->e, -w.status, "refused by %s: %s", c->peer,
			w.message[0] ? w.message : strerror(w.status));
}

/* A server of an older release refused our HELLO in its own version
 * (doc/wire.md, version negotiation): the caller dials again offering it. */
static int older_server(struct hs_conn *c, const struct wire_hs_hdr *h,
			const struct hs_client_params *p)
{
	client_welcome(c, h);
	if (p->version)
		*p->version = h->version;
	return ipm_fail(&c->e, -EPROTONOSUPPORT,
			"%s speaks protocol version %u only (it refused our %u): dialling again in %u",
			c->peer, h->version, c->version, h->version);
}

/* CHALLENGE's version is the server's pick: one we offered, and from
 * version 5 on it announces its range too. */
static int client_agree(struct hs_conn *c, const struct wire_hs_hdr *h,
			const struct wire_challenge *ch)
{
	if (h->version > c->version)
		return ipm_fail(&c->e, -EPROTO, "%s picked protocol version %u, we offered up to %u",
				c->peer, h->version, c->version);
	if ((h->version >= 5) != (ch->version_max != 0))
		return ipm_fail(&c->e, -EPROTO, "%s sent a CHALLENGE of version %u with a body of another",
				c->peer, h->version);
	c->version = h->version;
	c->agreed = true;
	return 0;
}

/* Read CHALLENGE (or an early refusal) and check the server's proof. */
static int client_challenge(struct hs_conn *c, const struct hs_client_params *p,
			    const struct wire_hello *hello, struct wire_challenge *ch)
{
	uint8_t mac[WIRE_MAC_LEN];
	struct wire_hs_hdr h;
	int rc;

	rc = recv_msg(c, 0, &h, "CHALLENGE");
	if (rc < 0)
		return rc;
	if (h.type == WIRE_WELCOME && h.version < c->version)
		return older_server(c, &h, p);
	if (h.type == WIRE_WELCOME) {
		rc = client_welcome(c, &h);
		return rc ? rc : ipm_fail(&c->e, -EPROTO, "%s accepted before authentication",
					  c->peer);
	}
	if (h.type != WIRE_CHALLENGE)
		return ipm_fail(&c->e, -EPROTO, "expected CHALLENGE from %s, got message type %u",
				c->peer, h.type);
	rc = wire_challenge_decode(body(c), h.len, ch, &c->e);
	if (rc < 0)
		return rc;
	rc = client_agree(c, &h, ch);
	if (rc < 0)
		return rc;
	if (strcmp(ch->from, p->peer))
		return ipm_fail(&c->e, -EPROTO, "reached node \"%s\", expected \"%s\"", ch->from,
				p->peer);
	auth_mac(p->secret, "server", hello->nonce, ch->nonce, p->self, p->peer, mac);
	if (!auth_mac_equal(mac, ch->mac)) {
		/* say why we hang up, but give no answer to its nonce */
		send_refusal(c, EACCES, "authentication failed: you do not know the shared secret");
		return ipm_fail(&c->e, -EACCES,
				"authentication failed: peer %s does not know the shared secret",
				p->peer);
	}
	return 0;
}

static int client_run(struct hs_conn *c, const struct hs_client_params *p,
		      struct wire_auth *a)
{
	struct wire_hello hello = { .conn_index = p->conn_index, .conn_count = p->conn_count };
	struct wire_challenge ch;
	struct wire_hs_hdr h;
	size_t n;
	int rc;

	snprintf(hello.from, sizeof(hello.from), "%s", p->self);
	snprintf(hello.to, sizeof(hello.to), "%s", p->peer);
	if (c->version >= 5) {
		hello.version_min = WIRE_VERSION_MIN;
		hello.version_max = c->version;
		hello.tls = (uint8_t)c->tls_mode;
	}
	if (c->tls_mode != IPM_TLS_OFF && c->version < 5)
		return tls_agree(c, IPM_TLS_OFF, c->peer);
	auth_random(hello.nonce, sizeof(hello.nonce));
	n = wire_hello_encode(c->buf + WIRE_HS_HDR_LEN, &hello);
	rc = send_msg(c, WIRE_HELLO, n, "HELLO");
	if (rc < 0)
		return rc;
	rc = client_challenge(c, p, &hello, &ch);
	if (rc < 0)
		return rc;
	rc = tls_agree(c, ch.tls, c->peer);
	if (rc < 0) {
		send_refusal(c, EPROTO, c->peer_reason);
		return rc;
	}
	rc = tls_start(c, p->tls);
	if (rc < 0)
		return rc;

	auth_mac(p->secret, "client", ch.nonce, hello.nonce, p->self, p->peer, a->mac);
	a->version = c->version;
	a->session = p->session;
	a->base_seq = p->base_seq;
	a->window = p->window;
	a->n_luns = p->n_luns;
	if (p->n_luns)
		memcpy(a->luns, p->luns, p->n_luns * sizeof(*p->luns));
	n = wire_auth_encode(c->buf + WIRE_HS_HDR_LEN, a);
	rc = send_msg(c, WIRE_AUTH, n, "AUTH");
	if (rc < 0)
		return rc;
	rc = recv_msg(c, WIRE_WELCOME, &h, "WELCOME");
	if (rc < 0)
		return rc;
	rc = client_welcome(c, &h);
	if (p->version)
		*p->version = c->version;
	return rc;
}

int handshake_client(int fd, const struct hs_client_params *p, ipm_error *err)
{
	struct wire_auth *a = calloc(1, sizeof(*a));
	struct hs_conn c = { .fd = fd, .verdicts = p->verdicts, .fills = p->fills,
			     .record = p->record };
	int rc;

	rc = check_params(p, err);
	if (rc < 0)
		goto out;
	if (!a) {
		rc = ipm_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = io_begin(&c, fd, p->timeout_ms, p->peer);
	c.version = wire_version_max();
	if (p->version_max && p->version_max < c.version)
		c.version = p->version_max < WIRE_VERSION_MIN ? WIRE_VERSION_MIN : p->version_max;
	c.tls_mode = p->tls ? p->tls->mode : IPM_TLS_OFF;
	if (rc == 0)
		rc = client_run(&c, p, a);
	tls_end(&c, p->tls, rc);
	io_end(&c, err);
out:
	free(a);
	return rc;
}

/* ---- server ------------------------------------------------------------------ */

/* The version both speak: the highest of the client's range we know.
 * A HELLO of version 4 has no range: 4 it is. */
static int server_agree(struct hs_conn *c, const struct wire_hs_hdr *h, struct wire_hello *hello)
{
	uint16_t ours = wire_version_max(), pick;

	if (!hello->version_max) {
		if (h->version != WIRE_VERSION_MIN)
			return ipm_fail(&c->e, -EPROTO, "HELLO of protocol version %u has a version %d body",
					h->version, WIRE_VERSION_MIN);
		pick = WIRE_VERSION_MIN;
	} else {
		if (h->version != hello->version_max)
			return ipm_fail(&c->e, -EPROTO, "HELLO of protocol version %u announces up to %u",
					h->version, hello->version_max);
		pick = hello->version_max < ours ? hello->version_max : ours;
		if (pick < hello->version_min)
			return ipm_fail(&c->e, -EPROTO,
					"no common protocol version: peer speaks %u to %u, we speak %d to %u",
					hello->version_min, hello->version_max, WIRE_VERSION_MIN, ours);
	}
	hello->version = pick;
	c->version = pick;
	c->agreed = true;
	return 0;
}

static int server_hello(struct hs_conn *c, const char *self, const char *expect_peer,
			struct wire_hello *hello)
{
	struct wire_hs_hdr h;
	int rc;

	rc = recv_msg(c, WIRE_HELLO, &h, "HELLO");
	if (rc < 0)
		return rc;
	/* an early refusal goes out in a version the client knows */
	if (h.version < c->version)
		c->version = h.version;
	rc = wire_hello_decode(body(c), h.len, hello, &c->e);
	if (rc < 0)
		return rc;
	rc = server_agree(c, &h, hello);
	if (rc < 0)
		return rc;
	/* the log names the nodes; an unauthenticated peer learns none */
	if (strcmp(hello->to, self)) {
		c->peer_reason = "HELLO names another node than this one";
		return ipm_fail(&c->e, -EINVAL, "this is node \"%s\", not \"%s\"", self,
				hello->to);
	}
	if (strcmp(hello->from, expect_peer)) {
		c->peer_reason = "HELLO names a node that is not this node's peer";
		return ipm_fail(&c->e, -EACCES, "node \"%s\" is not our peer \"%s\"", hello->from,
				expect_peer);
	}
	return tls_agree(c, hello->tls, hello->from);
}

/* The client hung up with a WELCOME of its own instead of AUTH. */
static int server_client_refusal(struct hs_conn *c, const struct wire_hs_hdr *h)
{
	struct wire_welcome w = { .version = h->version };
	int rc;

	c->io_failed = true;	/* it is gone: nothing more to send */
	rc = wire_welcome_decode(body(c), h->len, &w, &c->e);
	if (rc < 0)
		return rc;
	if (w.status == EACCES)
		return ipm_fail(&c->e, -EACCES,
				"authentication failed: peer does not know the shared secret "
				"(%s rejected our proof)", c->peer);
	return ipm_fail(&c->e, w.status ? -w.status : -EPROTO, "%s gave up: %s", c->peer,
			w.message);
}

static int server_auth(struct hs_conn *c, const char *self, const struct auth_secret *secret,
		       const struct wire_hello *hello, const uint8_t *nonce, struct wire_auth *a)
{
	uint8_t mac[WIRE_MAC_LEN];
	struct wire_hs_hdr h;
	int rc;

	rc = recv_msg(c, 0, &h, "AUTH");
	if (rc < 0)
		return rc;
	if (h.type == WIRE_WELCOME)
		return server_client_refusal(c, &h);
	if (h.type != WIRE_AUTH)
		return ipm_fail(&c->e, -EPROTO, "expected AUTH from %s, got message type %u",
				c->peer, h.type);
	a->version = c->version;
	rc = wire_auth_decode(body(c), h.len, a, &c->e);
	if (rc < 0)
		return rc;
	auth_mac(secret, "client", nonce, hello->nonce, hello->from, self, mac);
	if (!auth_mac_equal(mac, a->mac)) {
		c->peer_reason = "authentication failed: you do not know the shared secret";
		return ipm_fail(&c->e, -EACCES,
				"authentication failed: peer does not know the shared secret");
	}
	/* our peer: named from now on, and WELCOME gets a timeout of its own
	 * after check (which may write generation files) */
	c->peer = hello->from;
	c->deadline = 0;
	return 0;
}

static int server_run(struct hs_conn *c, const char *self, const char *expect_peer,
		      const struct auth_secret *secret, const struct hs_tls *tls,
		      hs_check_fn check, void *opaque, struct wire_hello *hello,
		      struct wire_auth *a)
{
	struct wire_challenge ch = { 0 };
	char reason[WIRE_MSG_LEN] = "";
	struct wire_welcome w = { 0 };
	size_t n;
	int rc;

	rc = server_hello(c, self, expect_peer, hello);
	if (rc < 0)
		return rc;
	snprintf(ch.from, sizeof(ch.from), "%s", self);
	if (c->version >= 5) {
		ch.version_min = WIRE_VERSION_MIN;
		ch.version_max = wire_version_max();
		ch.tls = (uint8_t)c->tls_mode;
	}
	auth_random(ch.nonce, sizeof(ch.nonce));
	auth_mac(secret, "server", hello->nonce, ch.nonce, hello->from, self, ch.mac);
	n = wire_challenge_encode(c->buf + WIRE_HS_HDR_LEN, &ch);
	rc = send_msg(c, WIRE_CHALLENGE, n, "CHALLENGE");
	if (rc < 0)
		return rc;
	rc = tls_start(c, tls);
	if (rc < 0)
		return rc;
	rc = server_auth(c, self, secret, hello, ch.nonce, a);
	if (rc < 0)
		return rc;
	c->n_verdicts = a->n_luns;
	rc = check ? check(opaque, hello, a, c->lun_flags, c->lun_fills, &w.record, reason,
			   sizeof(reason)) : 0;
	if (rc) {
		rc = rc < 0 ? rc : -rc;
		return ipm_fail(&c->e, rc, "%s", reason[0] ? reason : strerror(-rc));
	}
	w.version = c->version;
	w.n_luns = c->n_verdicts;
	memcpy(w.lun_flags, c->lun_flags, c->n_verdicts);
	memcpy(w.fill, c->lun_fills, c->n_verdicts * sizeof(w.fill[0]));
	n = wire_welcome_encode(c->buf + WIRE_HS_HDR_LEN, &w);
	return send_msg(c, WIRE_WELCOME, n, "WELCOME");
}

int handshake_server_tls(int fd, unsigned timeout_ms, const char *self,
			 const char *expect_peer, const struct auth_secret *secret,
			 struct hs_tls *tls, hs_check_fn check, void *opaque,
			 struct wire_hello *hello, struct wire_auth *auth, ipm_error *err)
{
	struct hs_conn c = { .fd = fd };
	int rc;

	rc = io_begin(&c, fd, timeout_ms, "peer");
	c.version = wire_version_max();
	c.tls_mode = tls ? tls->mode : IPM_TLS_OFF;
	/* one deadline for everything an unauthenticated client sends */
	c.deadline = ipm_now_ms() + c.timeout_ms;
	if (rc == 0)
		rc = server_run(&c, self, expect_peer, secret, tls, check, opaque, hello, auth);
	if (rc < 0 && !c.io_failed)
		send_refusal(&c, -rc, c.peer_reason ? c.peer_reason : c.e.msg);
	tls_end(&c, tls, rc);
	io_end(&c, err);
	return rc;
}

int handshake_server_ms(int fd, unsigned timeout_ms, const char *self,
			const char *expect_peer, const struct auth_secret *secret,
			hs_check_fn check, void *opaque, struct wire_hello *hello,
			struct wire_auth *auth, ipm_error *err)
{
	return handshake_server_tls(fd, timeout_ms, self, expect_peer, secret, NULL, check,
				    opaque, hello, auth, err);
}

int handshake_server(int fd, const char *self, const char *expect_peer,
		     const struct auth_secret *secret, hs_check_fn check, void *opaque,
		     struct wire_hello *hello, struct wire_auth *auth, ipm_error *err)
{
	return handshake_server_ms(fd, 0, self, expect_peer, secret, check, opaque, hello, auth,
				   err);
}
