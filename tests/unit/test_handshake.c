/* test_handshake.c - the handshake (engine/proto/handshake.c) over a real
 * socket pair: accepted, refused, forged, stalled, truncated, hung up. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"
#include "wire.h"
#include "handshake.h"
#include "unit_util.h"
#include "wire_samples.h"

static const struct wire_lun test_luns[2] = {
	{ .name = "vol0", .id = 3, .size = 1 << 20, .mode = 0, .generation = 11 },
	{ .name = "vol1", .id = 7, .size = 1ull << 34, .mode = 1, .generation = 0x8000000000000001ull },
};

struct server {
	int fd;
	const char *self, *expect_peer;
	struct auth_secret secret;
	unsigned timeout_ms;
	const char *refuse_lun;		/* check refuses a lun of this name */
	int checked;
	pthread_t thread;
	int rc;
	ipm_error err;
	struct wire_hello hello;
	struct wire_auth *auth;
	struct hs_tls *tls;		/* NULL: off */
};

static int check_cb(void *opaque, const struct wire_hello *hello, const struct wire_auth *auth,
		    uint8_t *verdicts, uint64_t *fills, uint64_t *record, char *reason,
		    size_t reason_len)
{
	struct server *s = opaque;
	uint32_t i;

	s->checked++;
	*record = 0x5eedf00d12345678ull;
	for (i = 0; i < auth->n_luns; i++)
		fills[i] = 0xf111000000000000ull | auth->luns[i].id;
	for (i = 0; i < auth->n_luns; i++) {
		if (s->refuse_lun && !strcmp(auth->luns[i].name, s->refuse_lun)) {
			snprintf(reason, reason_len, "unknown lun \"%s\"", auth->luns[i].name);
			return ENOENT;
		}
	}
	return 0;
}

static void *server_main(void *arg)
{
	struct server *s = arg;

	s->rc = handshake_server_tls(s->fd, s->timeout_ms, s->self, s->expect_peer, &s->secret,
				     s->tls, check_cb, s, &s->hello, s->auth, &s->err);
	return NULL;
}

struct pair {
	int cfd;
	struct server srv;
	struct hs_client_params p;
	struct wire_lun luns[3];
	ipm_error err;
};

static int pair_setup(void **state)
{
	struct pair *t = calloc(1, sizeof(*t));
	int sv[2];

	assert_non_null(t);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	t->cfd = sv[0];
	t->srv.fd = sv[1];
	t->srv.self = "node2";
	t->srv.expect_peer = "node1";
	make_secret(&t->srv.secret, "shared secret of the pair");
	t->srv.timeout_ms = 2000;
	t->srv.auth = calloc(1, sizeof(*t->srv.auth));
	assert_non_null(t->srv.auth);
	memcpy(t->luns, test_luns, sizeof(test_luns));
	t->p = (struct hs_client_params){
		.self = "node1", .peer = "node2", .conn_index = 2, .conn_count = 4,
		.secret = &t->srv.secret, .session = 0x0123456789abcdefull,
		.base_seq = 41, .window = 256, .n_luns = 2, .luns = t->luns,
		.timeout_ms = 2000,
	};
	*state = t;
	return 0;
}

static int pair_teardown(void **state)
{
	struct pair *t = *state;

	if (t->cfd >= 0)
		close(t->cfd);
	close(t->srv.fd);
	free(t->srv.auth);
	free(t);
	return 0;
}

/* Run the client here against the server thread; the client's end is shut
 * down afterwards so that a server still reading cannot hang the test. */
static int run_pair(struct pair *t, const struct auth_secret *client_secret)
{
	int rc;

	t->p.secret = client_secret;
	assert_int_equal(pthread_create(&t->srv.thread, NULL, server_main, &t->srv), 0);
	rc = handshake_client(t->cfd, &t->p, &t->err);
	shutdown(t->cfd, SHUT_WR);
	pthread_join(t->srv.thread, NULL);
	return rc;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_hs_accept(void **state)
{
	struct pair *t = *state;
	struct timeval tv = { .tv_sec = 7 }, got;
	socklen_t gl = sizeof(got);
	uint32_t i;

	uint64_t record = 0;

	/* a timeout of the caller's own, to see that it comes back */
	assert_int_equal(setsockopt(t->cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	t->p.record = &record;
	assert_int_equal(run_pair(t, &t->srv.secret), 0);
	/* the mirror's ordering record reaches the primary */
	assert_true(record == 0x5eedf00d12345678ull);
	assert_int_equal(t->srv.rc, 0);
	assert_int_equal(t->srv.checked, 1);

	assert_string_equal(t->srv.hello.from, "node1");
	assert_string_equal(t->srv.hello.to, "node2");
	assert_int_equal(t->srv.hello.conn_index, 2);
	assert_int_equal(t->srv.hello.conn_count, 4);
	assert_true(t->srv.auth->session == 0x0123456789abcdefull);
	assert_true(t->srv.auth->base_seq == 41);
	assert_int_equal(t->srv.auth->window, 256);
	assert_int_equal(t->srv.auth->n_luns, 2);
	for (i = 0; i < 2; i++) {
		assert_string_equal(t->srv.auth->luns[i].name, test_luns[i].name);
		assert_true(t->srv.auth->luns[i].size == test_luns[i].size);
		assert_int_equal(t->srv.auth->luns[i].mode, test_luns[i].mode);
		assert_true(t->srv.auth->luns[i].generation == test_luns[i].generation);
	}

	assert_int_equal(getsockopt(t->cfd, SOL_SOCKET, SO_RCVTIMEO, &got, &gl), 0);
	assert_int_equal(got.tv_sec, 7);
	assert_int_equal(got.tv_usec, 0);
	gl = sizeof(got);
	assert_int_equal(getsockopt(t->srv.fd, SOL_SOCKET, SO_RCVTIMEO, &got, &gl), 0);
	assert_int_equal(got.tv_sec, 0);
	assert_int_equal(got.tv_usec, 0);
}

/* Each side's proof fails against the other's secret; the client notices
 * first and hangs up without answering the challenge. */
static void test_hs_wrong_secret(void **state)
{
	struct pair *t = *state;
	struct auth_secret other;

	make_secret(&other, "not the shared secret");
	check_fail(run_pair(t, &other), -EACCES, &t->err,
		   "authentication failed: peer node2 does not know the shared secret");
	check_fail(t->srv.rc, -EACCES, &t->srv.err,
		   "authentication failed: peer does not know the shared secret");
	assert_int_equal(t->srv.checked, 0);
}

static void test_hs_check_refuses(void **state)
{
	struct pair *t = *state;

	uint64_t record = 7;

	t->srv.refuse_lun = "vol9";
	strcpy(t->luns[2].name, "vol9");
	t->luns[2].size = 4096;
	t->p.n_luns = 3;
	t->p.record = &record;
	check_fail(run_pair(t, &t->srv.secret), -ENOENT, &t->err,
		   "refused by node2: unknown lun \"vol9\"");
	check_fail(t->srv.rc, -ENOENT, &t->srv.err, "unknown lun \"vol9\"");
	assert_int_equal(t->srv.checked, 1);
	/* a refusal names no record: the primary keeps what it knew */
	assert_true(record == 7);
}

/* Refused before authentication: the client learns no node's name (the
 * server's log has them). */
static void test_hs_wrong_node(void **state)
{
	struct pair *t = *state;

	t->p.peer = "node3";
	check_fail(run_pair(t, &t->srv.secret), -EINVAL, &t->err,
		   "refused by node3: HELLO names another node than this one");
	assert_null(strstr(t->err.msg, "node2"));
	check_fail(t->srv.rc, -EINVAL, &t->srv.err, "this is node \"node2\", not \"node3\"");
}

static void test_hs_unknown_peer(void **state)
{
	struct pair *t = *state;

	t->p.self = "intruder";
	check_fail(run_pair(t, &t->srv.secret), -EACCES, &t->err,
		   "refused by node2: HELLO names a node that is not this node's peer");
	assert_null(strstr(t->err.msg, "node1"));
	check_fail(t->srv.rc, -EACCES, &t->srv.err, "node \"intruder\" is not our peer \"node1\"");
	assert_int_equal(t->srv.checked, 0);
}

/* Write a raw handshake message from the test's side of the pair. */
static void raw_send(int fd, uint16_t type, const uint8_t *body, size_t len)
{
	uint8_t hdr[WIRE_HS_HDR_LEN];

	/* the raw messages are version 4's (sample_hello has no range) */
	wire_hs_hdr_encode_v(hdr, WIRE_VERSION_MIN, type, (uint32_t)len);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	if (len)
		assert_int_equal(write(fd, body, len), (ssize_t)len);
}

static void raw_recv(int fd, uint16_t type, uint8_t *body, size_t *len)
{
	uint8_t hdr[WIRE_HS_HDR_LEN];
	struct wire_hs_hdr h;
	ipm_error err;

	assert_int_equal(recv(fd, hdr, sizeof(hdr), MSG_WAITALL), sizeof(hdr));
	assert_int_equal(wire_hs_hdr_decode(hdr, type, &h, &err), 0);
	assert_int_equal(recv(fd, body, h.len, MSG_WAITALL), (ssize_t)h.len);
	*len = h.len;
}

/* A client that answers the challenge without the secret is refused by the
 * server's own check, and told so in WELCOME. */
static void test_hs_forged_client_mac(void **state)
{
	struct pair *t = *state;
	struct wire_hello hello = sample_hello();
	struct wire_auth *a = sample_auth(1);
	uint8_t *buf = malloc(WIRE_HS_MAX_BODY);
	struct wire_welcome w = { .version = WIRE_VERSION_MAX };
	size_t n;

	assert_non_null(buf);
	hello.conn_index = 0;
	assert_int_equal(pthread_create(&t->srv.thread, NULL, server_main, &t->srv), 0);
	n = wire_hello_encode(buf, &hello);
	raw_send(t->cfd, WIRE_HELLO, buf, n);
	raw_recv(t->cfd, WIRE_CHALLENGE, buf, &n);
	n = wire_auth_encode(buf, a);	/* mac is 0x5a... */
	raw_send(t->cfd, WIRE_AUTH, buf, n);
	raw_recv(t->cfd, WIRE_WELCOME, buf, &n);
	assert_int_equal(wire_welcome_decode(buf, n, &w, &t->err), 0);
	assert_int_equal(w.status, EACCES);
	assert_string_equal(w.message, "authentication failed: you do not know the shared secret");
	pthread_join(t->srv.thread, NULL);
	check_fail(t->srv.rc, -EACCES, &t->srv.err,
		   "authentication failed: peer does not know the shared secret");
	assert_int_equal(t->srv.checked, 0);
	free(a);
	free(buf);
}

/* An unauthenticated client that uses most of the timeout for HELLO and
 * then stalls gets the rest of it for AUTH, not a timeout of its own:
 * one deadline for the whole exchange. */
static void test_hs_total_deadline(void **state)
{
	struct pair *t = *state;
	struct wire_hello hello = sample_hello();
	uint8_t buf[WIRE_HS_MAX_BODY];
	int64_t t0, dt;
	size_t n;

	hello.conn_index = 0;
	t->srv.timeout_ms = 400;
	t0 = mono_ms();
	assert_int_equal(pthread_create(&t->srv.thread, NULL, server_main, &t->srv), 0);
	usleep(300 * 1000);
	n = wire_hello_encode(buf, &hello);
	raw_send(t->cfd, WIRE_HELLO, buf, n);
	raw_recv(t->cfd, WIRE_CHALLENGE, buf, &n);
	/* AUTH never comes */
	pthread_join(t->srv.thread, NULL);
	dt = mono_ms() - t0;
	check_fail(t->srv.rc, -ETIMEDOUT, &t->srv.err, "waiting for AUTH");
	print_message("server gave up after %lld ms (timeout 400 ms)\n", (long long)dt);
	assert_true(dt >= 390 && dt < 600);
}

/* Garbage instead of CHALLENGE: the client stops at once, it does not wait. */
static void test_hs_garbage_server(void **state)
{
	struct pair *t = *state;
	char junk[200];
	int64_t t0;

	memset(junk, 'G', sizeof(junk));
	assert_int_equal(write(t->srv.fd, junk, sizeof(junk)), sizeof(junk));
	t->p.timeout_ms = 0;	/* the default: a hang would show as 5 s */
	t0 = mono_ms();
	check_fail(handshake_client(t->cfd, &t->p, &t->err), -EPROTO, &t->err,
		   "bad handshake magic 0x47474747");
	assert_true(mono_ms() - t0 < 1000);
}

/* A server that speaks a later protocol version is named as such. */
static void test_hs_version_mismatch(void **state)
{
	struct pair *t = *state;
	uint8_t hdr[WIRE_HS_HDR_LEN];

	wire_hs_hdr_encode(hdr, WIRE_CHALLENGE, 0);
	hdr[5] = 7;
	assert_int_equal(write(t->srv.fd, hdr, sizeof(hdr)), sizeof(hdr));
	check_fail(handshake_client(t->cfd, &t->p, &t->err), -EPROTO, &t->err,
		   "peer speaks protocol version 7, we speak 4 to 6");
}

/* Both of this release: version 6, the LUNs' ids reach the server and the
 * mirror's fill ids the client. */
static void test_hs_negotiates_6(void **state)
{
	struct pair *t = *state;
	uint64_t fills[WIRE_MAX_LUNS] = { 0 };
	uint16_t spoken = 0;

	t->p.version = &spoken;
	t->p.fills = fills;
	assert_int_equal(run_pair(t, &t->srv.secret), 0);
	assert_int_equal(spoken, 6);
	assert_int_equal(t->srv.hello.version, 6);
	assert_int_equal(t->srv.hello.version_min, WIRE_VERSION_MIN);
	assert_int_equal(t->srv.hello.version_max, 6);
	assert_int_equal(t->srv.auth->luns[0].id, 3);
	assert_int_equal(t->srv.auth->luns[1].id, 7);
	assert_true(fills[0] == 0xf111000000000003ull && fills[1] == 0xf111000000000007ull);
}

/* A client of version 5 gets no fill ids (its copy restarts from zero). */
static void test_hs_fills_need_6(void **state)
{
	struct pair *t = *state;
	uint64_t fills[WIRE_MAX_LUNS] = { 0 };
	uint16_t spoken = 0;

	t->p.version = &spoken;
	t->p.version_max = 5;
	t->p.fills = fills;
	assert_int_equal(run_pair(t, &t->srv.secret), 0);
	assert_int_equal(spoken, 5);
	assert_true(fills[0] == 0 && fills[1] == 0);
}

/* A client that offers version 4 alone (the previous release's HELLO):
 * the server speaks 4, and LUN ids are the positions in AUTH. */
static void test_hs_client_offers_4(void **state)
{
	struct pair *t = *state;
	uint16_t spoken = 0;

	t->p.version = &spoken;
	t->p.version_max = 4;
	assert_int_equal(run_pair(t, &t->srv.secret), 0);
	assert_int_equal(spoken, 4);
	assert_int_equal(t->srv.hello.version, 4);
	assert_int_equal(t->srv.hello.version_max, 0);
	assert_int_equal(t->srv.auth->luns[0].id, 0);
	assert_int_equal(t->srv.auth->luns[1].id, 1);
}

/* A server of the previous release refuses our HELLO in its version 4
 * (as 049e082 does): the client says to dial again in 4. */
static void test_hs_older_server(void **state)
{
	struct pair *t = *state;
	struct wire_welcome w = { .status = EPROTO };
	uint8_t buf[WIRE_HS_HDR_LEN + 512];
	uint16_t spoken = 0;
	size_t n;

	snprintf(w.message, sizeof(w.message), "peer speaks protocol version 5, we speak 4");
	n = wire_welcome_encode(buf + WIRE_HS_HDR_LEN, &w);
	wire_hs_hdr_encode_v(buf, 4, WIRE_WELCOME, (uint32_t)n);
	assert_int_equal(write(t->srv.fd, buf, WIRE_HS_HDR_LEN + n), (ssize_t)(WIRE_HS_HDR_LEN + n));
	t->p.version = &spoken;
	check_fail(handshake_client(t->cfd, &t->p, &t->err), -EPROTONOSUPPORT, &t->err,
		   "node2 speaks protocol version 4 only (it refused our 6): dialling again in 4");
	assert_int_equal(spoken, 4);
}

/* A server that sends half a CHALLENGE and stalls: the client times out. */
static void test_hs_stalled_server(void **state)
{
	struct pair *t = *state;
	uint8_t hdr[WIRE_HS_HDR_LEN];
	int64_t t0, dt;

	wire_hs_hdr_encode(hdr, WIRE_CHALLENGE, 128);
	assert_int_equal(write(t->srv.fd, hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(write(t->srv.fd, "partial", 7), 7);
	t->p.timeout_ms = 200;
	t0 = mono_ms();
	check_fail(handshake_client(t->cfd, &t->p, &t->err), -ETIMEDOUT, &t->err,
		   "timed out after 200 ms waiting for CHALLENGE");
	dt = mono_ms() - t0;
	assert_true(dt >= 190 && dt < 1500);
}

/* A client that sends part of HELLO and stalls: the server times out. */
static void test_hs_truncated_client(void **state)
{
	struct pair *t = *state;
	struct wire_hello hello = sample_hello();
	uint8_t buf[WIRE_HS_HDR_LEN + 200];
	size_t n;
	int64_t t0, dt;

	n = wire_hello_encode(buf + WIRE_HS_HDR_LEN, &hello);
	wire_hs_hdr_encode(buf, WIRE_HELLO, (uint32_t)n);
	assert_int_equal(write(t->cfd, buf, WIRE_HS_HDR_LEN + 50), WIRE_HS_HDR_LEN + 50);
	t->srv.timeout_ms = 200;
	t0 = mono_ms();
	server_main(&t->srv);
	dt = mono_ms() - t0;
	check_fail(t->srv.rc, -ETIMEDOUT, &t->srv.err,
		   "timed out after 200 ms waiting for HELLO");
	assert_true(dt >= 190 && dt < 1500);
}

/* A client that hangs up mid-handshake is reported as such. */
static void test_hs_client_hangs_up(void **state)
{
	struct pair *t = *state;

	assert_int_equal(write(t->cfd, "IPMH", 4), 4);
	close(t->cfd);
	t->cfd = -1;
	server_main(&t->srv);
	check_fail(t->srv.rc, -ECONNRESET, &t->srv.err, "connection closed by peer");
}

static void test_hs_bad_params(void **state)
{
	struct pair *t = *state;

	t->p.n_luns = WIRE_MAX_LUNS + 1;
	check_fail(handshake_client(t->cfd, &t->p, &t->err), -EINVAL, &t->err, "limit 256");
	t->p.n_luns = 0;
	t->p.window = 0;
	check_fail(handshake_client(t->cfd, &t->p, &t->err), -EINVAL, &t->err, "window 0");
}

/* ---- TLS (<tls mode>) ------------------------------------------------------- */

static struct ipm_tls_creds *psk_creds(enum ipm_tls_side side, uint8_t fill)
{
	struct ipm_tls_creds *c = NULL;
	uint8_t key[32];
	struct ipm_tls_config tc = { .psk_key = key, .psk_len = sizeof(key),
				     .psk_identity = "ipmirror", .tls13_only = true };
	ipm_error err;

	memset(key, fill, sizeof(key));
	assert_int_equal(ipm_tls_creds_new(side, &tc, &c, &err), 0);
	return c;
}

/* psk on both sides: TLS 1.3 starts after CHALLENGE, both get a session,
 * and bytes sent through one come out of the other. */
static void test_hs_tls_psk(void **state)
{
	struct pair *t = *state;
	struct hs_tls ct = { .mode = IPM_TLS_PSK, .creds = psk_creds(IPM_TLS_CLIENT, 7) };
	struct hs_tls st = { .mode = IPM_TLS_PSK, .creds = psk_creds(IPM_TLS_SERVER, 7) };
	struct iovec iov = { (void *)"frame bytes", 11 };
	char buf[32] = "", how[96];
	ssize_t n;

	t->p.tls = &ct;
	t->srv.tls = &st;
	assert_int_equal(pthread_create(&t->srv.thread, NULL, server_main, &t->srv), 0);
	assert_int_equal(handshake_client(t->cfd, &t->p, &t->err), 0);
	pthread_join(t->srv.thread, NULL);
	assert_int_equal(t->srv.rc, 0);
	assert_non_null(ct.session);
	assert_non_null(st.session);
	assert_non_null(strstr(ipm_tls_describe(ct.session, how, sizeof(how)), "TLS1.3 PSK"));
	assert_int_equal(ipm_conn_sendv(t->cfd, ct.session, &iov, 1), 0);
	n = ipm_conn_recv(t->srv.fd, st.session, buf, sizeof(buf), 0);
	assert_int_equal(n, 11);
	assert_memory_equal(buf, "frame bytes", 11);
	/* what crossed the socket was not the plaintext: a byte changed on the
	 * way fails the record's authentication */
	ipm_tls_free(ct.session);
	ipm_tls_free(st.session);
	ipm_tls_creds_free((struct ipm_tls_creds *)ct.creds);
	ipm_tls_creds_free((struct ipm_tls_creds *)st.creds);
}

/* A record altered in transit: the reader gets EBADMSG, never the data. */
static void test_hs_tls_tampered(void **state)
{
	struct pair *t = *state;
	struct hs_tls ct = { .mode = IPM_TLS_PSK, .creds = psk_creds(IPM_TLS_CLIENT, 9) };
	struct hs_tls st = { .mode = IPM_TLS_PSK, .creds = psk_creds(IPM_TLS_SERVER, 9) };
	uint8_t payload[256], wire[1024], buf[256];
	struct iovec iov = { payload, sizeof(payload) };
	int sv[2];
	ssize_t n;

	memset(payload, 0x5a, sizeof(payload));
	t->p.tls = &ct;
	t->srv.tls = &st;
	assert_int_equal(pthread_create(&t->srv.thread, NULL, server_main, &t->srv), 0);
	assert_int_equal(handshake_client(t->cfd, &t->p, &t->err), 0);
	pthread_join(t->srv.thread, NULL);
	assert_int_equal(t->srv.rc, 0);
	/* the client's record goes out; we take it off the server's socket,
	 * flip a bit of its ciphertext and put it into a fresh pipe that the
	 * server's session then reads from */
	assert_int_equal(ipm_conn_sendv(t->cfd, ct.session, &iov, 1), 0);
	n = recv(t->srv.fd, wire, sizeof(wire), 0);
	assert_true(n > (ssize_t)sizeof(payload));
	assert_null(memmem(wire, (size_t)n, payload, 64));  /* not in the clear */
	wire[n - 20] ^= 1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(dup2(sv[1], t->srv.fd), t->srv.fd);
	assert_int_equal(write(sv[0], wire, (size_t)n), n);
	n = ipm_conn_recv(t->srv.fd, st.session, buf, sizeof(buf), 0);
	assert_int_equal(n, -1);
	assert_int_equal(errno, EBADMSG);
	close(sv[0]);
	close(sv[1]);
	ipm_tls_free(ct.session);
	ipm_tls_free(st.session);
	ipm_tls_creds_free((struct ipm_tls_creds *)ct.creds);
	ipm_tls_creds_free((struct ipm_tls_creds *)st.creds);
}

/* Another mode on the server: refused, both sides name the modes. */
static void test_hs_tls_mismatch(void **state)
{
	struct pair *t = *state;
	struct hs_tls ct = { .mode = IPM_TLS_PSK, .creds = psk_creds(IPM_TLS_CLIENT, 7) };

	t->p.tls = &ct;
	check_fail(run_pair(t, &t->srv.secret), -EPROTO, &t->err,
		   "refused by node2: TLS mode mismatch: both nodes need the same <tls mode>");
	assert_int_equal(t->srv.rc, -EPROTO);
	assert_non_null(strstr(t->srv.err.msg,
			       "TLS mode mismatch: node1 has tls mode psk, this node off"));
	assert_null(ct.session);
	ipm_tls_creds_free((struct ipm_tls_creds *)ct.creds);
}

/* Keys that differ (another secret): the TLS handshake fails on both sides. */
static void test_hs_tls_wrong_key(void **state)
{
	struct pair *t = *state;
	struct hs_tls ct = { .mode = IPM_TLS_PSK, .creds = psk_creds(IPM_TLS_CLIENT, 7) };
	struct hs_tls st = { .mode = IPM_TLS_PSK, .creds = psk_creds(IPM_TLS_SERVER, 8) };
	int rc;

	t->p.tls = &ct;
	t->srv.tls = &st;
	rc = run_pair(t, &t->srv.secret);
	assert_true(rc < 0);
	assert_non_null(strstr(t->err.msg, "TLS handshake"));
	assert_true(t->srv.rc < 0);
	assert_non_null(strstr(t->srv.err.msg, "TLS handshake"));
	assert_null(ct.session);
	assert_null(st.session);
	ipm_tls_creds_free((struct ipm_tls_creds *)ct.creds);
	ipm_tls_creds_free((struct ipm_tls_creds *)st.creds);
}

/* TLS needs version 5: offering 4 alone with a TLS mode is refused. */
static void test_hs_tls_needs_5(void **state)
{
	struct pair *t = *state;
	struct hs_tls ct = { .mode = IPM_TLS_PSK, .creds = psk_creds(IPM_TLS_CLIENT, 7) };

	t->p.tls = &ct;
	t->p.version_max = 4;
	check_fail(handshake_client(t->cfd, &t->p, &t->err), -EPROTO, &t->err,
		   "node2 speaks protocol version 4 only, which has no TLS (our tls mode is psk)");
	ipm_tls_creds_free((struct ipm_tls_creds *)ct.creds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hs_accept, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_tls_psk, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_tls_tampered, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_tls_mismatch, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_tls_wrong_key, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_tls_needs_5, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_negotiates_6, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_fills_need_6, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_client_offers_4, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_older_server, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_wrong_secret, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_check_refuses, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_wrong_node, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_unknown_peer, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_total_deadline, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_forged_client_mac, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_garbage_server, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_version_mismatch, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_stalled_server, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_truncated_client, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_client_hangs_up, pair_setup,
						pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_bad_params, pair_setup, pair_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
