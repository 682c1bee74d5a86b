/* test_tls.c - the TLS session layer (common/tls.c) over a socket pair: a
 * stream of frames of every size (headers, 4 KiB and 1 MiB payloads) comes
 * out byte for byte, whatever the reader's read sizes; records already
 * received come out of one receive; a tampered record, and the peer's end,
 * are reported after the good bytes before them, never in their place;
 * an application protocol (ALPN) is agreed only when both sides offer it.
 * The same again with the receiver opening the records itself
 * (ipm_tls_rx_direct) after a message read through GnuTLS, and the peer's
 * KeyUpdate handed back to GnuTLS. */
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
#include <unistd.h>
#include <cmocka.h>

#include "tls.h"

#define REC_MAX 16384   /* a TLS 1.3 record's plaintext at most */

struct tpair {
	int fd[2];      /* 0: client, 1: server */
	struct ipm_tls_creds *creds[2];
	struct ipm_tls *t[2];
	int hs_rc;
};

static void *server_hs(void *arg)
{
	struct tpair *p = arg;
	ipm_error err;

	p->hs_rc = ipm_tls_handshake(p->t[1], 5000, &err);
	return NULL;
}

/* A connected pair; alpn[0] the client's application protocol, alpn[1]
 * the server's (NULL: none). */
static struct tpair *pair_new(const char *const alpn[2])
{
	struct tpair *p = calloc(1, sizeof(*p));
	uint8_t key[32];
	struct ipm_tls_config tc = { .psk_key = key, .psk_len = sizeof(key),
				     .psk_identity = "ipmirror", .tls13_only = true };
	ipm_error err;
	pthread_t th;

	assert_non_null(p);
	memset(key, 0x42, sizeof(key));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
	tc.alpn = alpn[0];
	assert_int_equal(ipm_tls_creds_new(IPM_TLS_CLIENT, &tc, &p->creds[0], &err), 0);
	tc.alpn = alpn[1];
	assert_int_equal(ipm_tls_creds_new(IPM_TLS_SERVER, &tc, &p->creds[1], &err), 0);
	assert_int_equal(ipm_tls_new(p->creds[0], p->fd[0], &p->t[0], &err), 0);
	assert_int_equal(ipm_tls_new(p->creds[1], p->fd[1], &p->t[1], &err), 0);
	assert_int_equal(pthread_create(&th, NULL, server_hs, p), 0);
	assert_int_equal(ipm_tls_handshake(p->t[0], 5000, &err), 0);
	pthread_join(th, NULL);
	assert_int_equal(p->hs_rc, 0);
	return p;
}

static void pair_free(struct tpair *p)
{
	for (int i = 0; i < 2; i++) {
		ipm_tls_free(p->t[i]);
		ipm_tls_creds_free(p->creds[i]);
		if (p->fd[i] >= 0)
			close(p->fd[i]);
	}
	free(p);
}

static int setup(void **state)
{
	static const char *const none[2] = { NULL, NULL };

	*state = pair_new(none);
	return 0;
}

/* The same, the receiving side (t[1]) opening records itself from the
 * start of the stream's frames on (ipm_tls_rx_direct): first a message
 * through GnuTLS, as the handshake's AUTH and WELCOME go, so that the
 * record numbers carry on from GnuTLS's. */
static int setup_direct(void **state)
{
	static const char *const none[2] = { NULL, NULL };
	struct tpair *p = pair_new(none);
	uint8_t msg[100], in[100];
	struct iovec iov = { msg, sizeof(msg) };

	memset(msg, 0x5a, sizeof(msg));
	assert_int_equal(ipm_tls_sendv(p->t[0], &iov, 1), 0);
	assert_int_equal(ipm_tls_recv(p->t[1], in, sizeof(in), false), sizeof(in));
	assert_memory_equal(in, msg, sizeof(in));
	assert_int_equal(ipm_tls_rx_direct(p->t[1]), 1);
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	pair_free(*state);
	return 0;
}

/* The stream's byte at offset o: a pattern that shows any shift or loss. */
static uint8_t pat(uint64_t o)
{
	uint64_t x = (o >> 3) * 0x9e3779b97f4a7c15ull;

	return (uint8_t)((x >> 32) ^ (x >> (8 * (o & 7))) ^ o);
}

static void fill(uint8_t *b, uint64_t from, size_t len)
{
	for (size_t i = 0; i < len; i++)
		b[i] = pat(from + i);
}

/* ---- a stream of frames, sent as vectors, read back in odd sizes ---------- */

#define N_FRAMES 400

/* frame i: a 64-byte header and a payload of one of these sizes */
static size_t payload_len(int i)
{
	static const size_t sizes[] = { 0, 4096, 1 << 20, 512, 4096, 65536 + 17, 4096,
					REC_MAX - 64, REC_MAX, 1, 300000, 4096 };

	return sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
}

struct sender {
	struct ipm_tls *t;
	uint64_t total;
	int rc;
};

/* Batches of 1 to 32 frames per ipm_tls_sendv, as the primary's workers
 * send them (iov: header, payload, header, payload...). */
static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct iovec iov[64];
	uint64_t off = 0;
	int i = 0;

	while (i < N_FRAMES && s->rc == 0) {
		int n = 1 + (i * 7) % 32, cnt = 0;

		for (int k = 0; k < n && i < N_FRAMES; k++, i++) {
			size_t len = payload_len(i);
			uint8_t *h = malloc(64), *d = len ? malloc(len) : NULL;

			fill(h, off, 64);
			off += 64;
			iov[cnt++] = (struct iovec){ h, 64 };
			if (len) {
				fill(d, off, len);
				off += len;
				iov[cnt++] = (struct iovec){ d, len };
			}
		}
		s->rc = ipm_tls_sendv(s->t, iov, cnt);
		for (int k = 0; k < cnt; k++)
			free(iov[k].iov_base);
	}
	s->total = off;
	return NULL;
}

static void test_stream_intact(void **state)
{
	struct tpair *p = *state;
	struct sender s = { .t = p->t[0] };
	static const size_t reads[] = { 64, 4096, 1 << 20, 7, 256 << 10, REC_MAX + 1, 100 };
	size_t bufsize = 1 << 20;
	uint8_t *buf = malloc(bufsize), *want = malloc(bufsize);
	uint64_t off = 0, expect = 0;
	pthread_t th;
	int r = 0;

	assert_non_null(buf);
	assert_non_null(want);
	for (int i = 0; i < N_FRAMES; i++)
		expect += 64 + payload_len(i);
	assert_int_equal(pthread_create(&th, NULL, sender_main, &s), 0);
	while (off < expect) {
		size_t len = reads[r++ % (sizeof(reads) / sizeof(reads[0]))];
		bool nonblock = r % 3 == 0;
		ssize_t n;

		if (len > expect - off)
			len = expect - off;
		n = ipm_tls_recv(p->t[1], buf, len, nonblock);
		if (n == -EAGAIN && nonblock) {
			/* nothing decodable is left behind an EAGAIN */
			assert_false(ipm_tls_pending(p->t[1]));
			continue;
		}
		if (n <= 0)
			print_error("recv at %llu of %llu: %zd\n", (unsigned long long)off,
				    (unsigned long long)expect, n);
		assert_true(n > 0 && (size_t)n <= len);
		fill(want, off, (size_t)n);
		if (memcmp(buf, want, (size_t)n) != 0)
			print_error("bytes differ in [%llu, +%zd)\n", (unsigned long long)off, n);
		assert_memory_equal(buf, want, (size_t)n);
		off += (size_t)n;
	}
	pthread_join(th, NULL);
	assert_int_equal(s.rc, 0);
	assert_int_equal(s.total, expect);
	assert_false(ipm_tls_pending(p->t[1]));
	assert_int_equal(ipm_tls_recv(p->t[1], buf, 1, true), -EAGAIN);
	free(buf);
	free(want);
}

/* ---- records already received come out of one call ------------------------ */

static void test_one_call_many_records(void **state)
{
	struct tpair *p = *state;
	size_t len = 6 * REC_MAX + 1000;   /* seven records */
	uint8_t *out = malloc(len), *in = malloc(2 * len);
	struct iovec iov = { out, len };
	ssize_t n;

	fill(out, 0, len);
	assert_int_equal(ipm_tls_sendv(p->t[0], &iov, 1), 0);  /* all in the socket now */
	n = ipm_tls_recv(p->t[1], in, 2 * len, true);
	if (n != (ssize_t)len)
		print_error("one receive returned %zd of the %zu bytes sent\n", n, len);
	assert_int_equal(n, len);
	assert_memory_equal(in, out, len);
	assert_int_equal(ipm_tls_recv(p->t[1], in, len, true), -EAGAIN);
	free(out);
	free(in);
}

/* ---- a tampered record behind good ones; the peer's end ------------------- */

/* Take what the client sent off the server's socket. */
static size_t take_wire(struct tpair *p, uint8_t *wire, size_t size)
{
	ssize_t n = recv(p->fd[1], wire, size, MSG_DONTWAIT);

	assert_true(n > 0);
	return (size_t)n;
}

/* Put bytes where the server's session reads them. */
static void put_wire(struct tpair *p, const uint8_t *wire, size_t len)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(dup2(sv[1], p->fd[1]), p->fd[1]);
	close(sv[1]);
	assert_int_equal(write(sv[0], wire, len), (ssize_t)len);
	close(sv[0]);  /* and then the stream ends */
}

static void test_tampered_after_good(void **state)
{
	struct tpair *p = *state;
	uint8_t good[1000], bad[1000], wire[4096], in[4096];
	struct iovec g = { good, sizeof(good) }, b = { bad, sizeof(bad) };
	size_t n1, n2;
	ssize_t n;

	fill(good, 0, sizeof(good));
	memset(bad, 0x77, sizeof(bad));
	assert_int_equal(ipm_tls_sendv(p->t[0], &g, 1), 0);
	n1 = take_wire(p, wire, sizeof(wire));
	assert_int_equal(ipm_tls_sendv(p->t[0], &b, 1), 0);
	n2 = take_wire(p, wire + n1, sizeof(wire) - n1);
	wire[n1 + n2 - 30] ^= 0x10;  /* in the second record's ciphertext */
	put_wire(p, wire, n1 + n2);
	n = ipm_tls_recv(p->t[1], in, sizeof(in), false);
	assert_int_equal(n, sizeof(good));
	assert_memory_equal(in, good, sizeof(good));
	assert_int_equal(ipm_tls_recv(p->t[1], in, sizeof(in), false), -EBADMSG);
}

static void test_end_after_good(void **state)
{
	struct tpair *p = *state;
	uint8_t good[3000], in[8192];
	struct iovec g = { good, sizeof(good) };

	fill(good, 5, sizeof(good));
	assert_int_equal(ipm_tls_sendv(p->t[0], &g, 1), 0);
	ipm_tls_bye(p->t[0]);
	shutdown(p->fd[0], SHUT_WR);
	assert_int_equal(ipm_tls_recv(p->t[1], in, sizeof(in), false), sizeof(good));
	assert_memory_equal(in, good, sizeof(good));
	assert_int_equal(ipm_tls_recv(p->t[1], in, sizeof(in), false), 0);
}

/* The mirror's "no payload CRC" (mirror_tls.c) rides on ALPN: agreed only
 * when both sides offer it, and a side without it still connects (a build
 * before it) and both then see it not agreed. */
static void test_alpn(void **state)
{
	static const char *const cases[][2] = {
		{ "ipm-test/1", "ipm-test/1" }, { "ipm-test/1", NULL },
		{ NULL, "ipm-test/1" }, { NULL, NULL }, { "ipm-test/1", "ipm-other/1" },
	};
	uint8_t b = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tpair *p = pair_new(cases[i]);
		struct iovec iov = { &b, 1 };
		bool want = i == 0;

		assert_int_equal(ipm_tls_alpn(p->t[0]), want);
		assert_int_equal(ipm_tls_alpn(p->t[1]), want);
		b = (uint8_t)i;
		assert_int_equal(ipm_tls_sendv(p->t[0], &iov, 1), 0);
		b = 0xff;
		assert_int_equal(ipm_tls_recv(p->t[1], &b, 1, false), 1);
		assert_int_equal(b, i);
		pair_free(p);
	}
}

/* The peer updates its key (as GnuTLS does by itself after 2^24 records):
 * the receiver reads on under the new key, not a byte lost or changed, and
 * no -EAGAIN for the KeyUpdate GnuTLS took in between (a receive timeout
 * to the caller); one that opens records itself hands it to GnuTLS. */
static void test_key_update(void **state)
{
	struct tpair *p = *state;
	uint8_t out[3 * 20000], in[sizeof(out)];
	struct iovec a = { out, 20000 }, b = { out + 20000, 40000 };
	size_t got = 0;

	fill(out, 0, sizeof(out));
	assert_int_equal(ipm_tls_sendv(p->t[0], &a, 1), 0);
	assert_int_equal(ipm_tls_key_update(p->t[0]), 0);
	assert_int_equal(ipm_tls_sendv(p->t[0], &b, 1), 0);
	/* the first part alone: the KeyUpdate then starts a receive */
	while (got < sizeof(in)) {
		size_t want = got < a.iov_len ? a.iov_len - got : sizeof(in) - got;
		ssize_t n = ipm_tls_recv(p->t[1], in + got, want, false);

		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(in, out, sizeof(in));
}

/* The same tests with the receiver opening records itself. */
static void test_direct_key_update(void **state) { test_key_update(state); }
static void test_direct_stream_intact(void **state) { test_stream_intact(state); }
static void test_direct_one_call_many_records(void **state) { test_one_call_many_records(state); }
static void test_direct_tampered_after_good(void **state) { test_tampered_after_good(state); }
static void test_direct_end_after_good(void **state) { test_end_after_good(state); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stream_intact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_call_many_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tampered_after_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_end_after_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_update, setup, teardown),
		cmocka_unit_test(test_alpn),
		cmocka_unit_test_setup_teardown(test_direct_stream_intact, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_direct_one_call_many_records, setup_direct,
						teardown),
		cmocka_unit_test_setup_teardown(test_direct_tampered_after_good, setup_direct,
						teardown),
		cmocka_unit_test_setup_teardown(test_direct_end_after_good, setup_direct, teardown),
		cmocka_unit_test_setup_teardown(test_direct_key_update, setup_direct, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
