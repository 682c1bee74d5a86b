/* test_wire.c - the mirror protocol codec, CRC32C, authentication and the
 * handshake over a real socket pair. */
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
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "wire.h"
#include "handshake.h"
#include "unit_util.h"

/* ---- frames ---------------------------------------------------------------- */

static struct wire_frame sample_frame(uint16_t type)
{
	struct wire_frame f = {
		.magic = WIRE_FRAME_MAGIC, .type = type, .lun = 1,
		.seq = 0x0102030405060708ull, .dep = 0x1112131415161718ull,
		.offset = 0x2122232425262728ull,
	};

	switch (type) {
	case WIRE_WRITE:
		f.flags = WIRE_F_FUA | WIRE_F_REPLAY;
		f.len = 4096;
		f.length = 4096;
		f.csum = 0xdeadbeef;
		break;
	case WIRE_TRIM:
	case WIRE_ZERO:
		f.flags = WIRE_F_FUA;
		f.length = 1ull << 40;
		break;
	case WIRE_ACK:
		f.status = 28;	/* ENOSPC */
		f.lun = 77;	/* not bounded for ACK */
		break;
	case WIRE_PING:
		f.lun = 0;
		break;
	}
	return f;
}

static void test_frame_round_trip(void **state)
{
	uint8_t buf[WIRE_FRAME_LEN];
	struct wire_frame f, g;
	ipm_error err = { "" };
	uint16_t t;

	for (t = WIRE_WRITE; t <= WIRE_PING; t++) {
		f = sample_frame(t);
		memset(&g, 0xa5, sizeof(g));
		wire_frame_encode(buf, &f);
		assert_int_equal(wire_frame_decode(buf, 2, &g, &err), 0);
		assert_int_equal(g.magic, WIRE_FRAME_MAGIC);
		assert_int_equal(g.type, f.type);
		assert_int_equal(g.flags, f.flags);
		assert_int_equal(g.lun, f.lun);
		assert_int_equal(g.len, f.len);
		assert_true(g.seq == f.seq);
		assert_true(g.dep == f.dep);
		assert_true(g.offset == f.offset);
		assert_true(g.length == f.length);
		assert_int_equal(g.status, f.status);
		assert_int_equal(g.csum, f.csum);
	}
}

/* The byte layout is the contract with the peer: pin it down. */
static void test_frame_layout(void **state)
{
	static const uint8_t want[WIRE_FRAME_LEN] = {
		'I', 'P', 'M', 'F', 0, 1, 0, 3, 0, 0, 0, 1, 0, 0, 0x10, 0,
		1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
		0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0, 0, 0, 0, 0, 0, 0x10, 0,
		0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef,
	};
	struct wire_frame f = sample_frame(WIRE_WRITE);
	uint8_t buf[WIRE_FRAME_LEN];

	wire_frame_encode(buf, &f);
	assert_memory_equal(buf, want, sizeof(want));
}

static int decode_modified(struct wire_frame f, uint32_t n_luns, ipm_error *err)
{
	uint8_t buf[WIRE_FRAME_LEN];
	struct wire_frame g;

	wire_frame_encode(buf, &f);
	return wire_frame_decode(buf, n_luns, &g, err);
}

static void test_frame_malformed(void **state)
{
	uint8_t buf[WIRE_FRAME_LEN];
	struct wire_frame f, g;
	ipm_error err = { "" };
	uint16_t t;

	f = sample_frame(WIRE_WRITE);
	wire_frame_encode(buf, &f);
	buf[0] = 'X';
	check_fail(wire_frame_decode(buf, 2, &g, &err), -EPROTO, &err,
		   "bad frame magic 0x58504d46");

	f.type = 0;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "unknown frame type 0");
	f.type = 8;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "unknown frame type 8");

	/* HBSLOT: exactly one slot, its offset follows from its index */
	f = sample_frame(WIRE_WRITE);
	f.type = WIRE_HBSLOT;
	f.lun = 1;
	f.offset = WIRE_HBSLOT_LEN;
	f.len = f.length = WIRE_HBSLOT_LEN;
	assert_int_equal(decode_modified(f, 0, &err), 0);
	f.len = f.length = 512;
	check_fail(decode_modified(f, 0, &err), -EPROTO, &err,
		   "HBSLOT frame of 512 bytes, expected 4096");
	f.len = f.length = WIRE_HBSLOT_LEN;
	f.lun = 2;
	check_fail(decode_modified(f, 0, &err), -EINVAL, &err, "HBSLOT frame for slot 2");

	f = sample_frame(WIRE_WRITE);
	f.flags |= 1 << 3;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "unknown flags 0x000b");

	f = sample_frame(WIRE_WRITE);
	f.length = 8192;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "length 8192 != payload 4096");
	f.len = f.length = 0;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "WRITE frame without payload");
	f.len = f.length = 40000000;
	check_fail(decode_modified(f, 2, &err), -EMSGSIZE, &err,
		   "frame payload 40000000 bytes exceeds limit 33554432");
	f.len = f.length = WIRE_MAX_PAYLOAD;
	assert_int_equal(decode_modified(f, 2, &err), 0);

	/* only WRITE carries a payload */
	for (t = WIRE_TRIM; t <= WIRE_PING; t++) {
		f = sample_frame(t);
		f.len = 512;
		check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "carries 512 payload bytes");
	}

	/* request types name a negotiated lun */
	for (t = WIRE_WRITE; t <= WIRE_FLUSH; t++) {
		f = sample_frame(t);
		f.lun = 2;
		check_fail(decode_modified(f, 2, &err), -EINVAL, &err, "lun 2, only 2 negotiated");
		assert_int_equal(decode_modified(f, 3, &err), 0);
	}

	f = sample_frame(WIRE_ACK);
	f.status = -5;
	check_fail(decode_modified(f, 2, &err), -EINVAL, &err, "ACK status -5 is not 0 or an errno");
	f.status = WIRE_MAX_ERRNO + 1;	/* would travel up as a -errno */
	check_fail(decode_modified(f, 2, &err), -EINVAL, &err, "ACK status 4096 is not");
	f.status = WIRE_MAX_ERRNO;
	assert_int_equal(decode_modified(f, 2, &err), 0);
}

/* ---- handshake messages -------------------------------------------------------- */

static void test_hs_hdr(void **state)
{
	uint8_t buf[WIRE_HS_HDR_LEN];
	struct wire_hs_hdr h;
	ipm_error err = { "" };

	assert_int_equal(wire_hs_hdr_encode(buf, WIRE_AUTH, 1234), WIRE_HS_HDR_LEN);
	assert_memory_equal(buf, "IPMH\0\4\0\3\0\0\x04\xd2", WIRE_HS_HDR_LEN);
	assert_int_equal(wire_hs_hdr_decode(buf, WIRE_AUTH, &h, &err), 0);
	assert_int_equal(h.magic, WIRE_HELLO_MAGIC);
	assert_int_equal(h.version, WIRE_VERSION);
	assert_int_equal(h.type, WIRE_AUTH);
	assert_int_equal(h.len, 1234);
	assert_int_equal(wire_hs_hdr_decode(buf, 0, &h, &err), 0);

	check_fail(wire_hs_hdr_decode(buf, WIRE_HELLO, &h, &err), -EPROTO, &err,
		   "expected handshake message HELLO, got AUTH");

	buf[3] = 'X';
	check_fail(wire_hs_hdr_decode(buf, WIRE_AUTH, &h, &err), -EPROTO, &err,
		   "bad handshake magic 0x49504d58");
	buf[3] = 'H';
	buf[5] = 1;
	check_fail(wire_hs_hdr_decode(buf, WIRE_AUTH, &h, &err), -EPROTO, &err,
		   "peer speaks protocol version 1, we speak 4");

	wire_hs_hdr_encode(buf, 9, 0);
	check_fail(wire_hs_hdr_decode(buf, 0, &h, &err), -EPROTO, &err,
		   "unknown handshake message type 9");

	wire_hs_hdr_encode(buf, WIRE_AUTH, WIRE_HS_MAX_BODY);
	assert_int_equal(wire_hs_hdr_decode(buf, WIRE_AUTH, &h, &err), 0);
	wire_hs_hdr_encode(buf, WIRE_AUTH, WIRE_HS_MAX_BODY + 1);
	check_fail(wire_hs_hdr_decode(buf, WIRE_AUTH, &h, &err), -EMSGSIZE, &err,
		   "exceeds limit");
}

static struct wire_hello sample_hello(void)
{
	struct wire_hello m = { .from = "node1", .to = "node2", .conn_index = 3,
				.conn_count = 4 };
	int i;

	for (i = 0; i < WIRE_NONCE_LEN; i++)
		m.nonce[i] = (uint8_t)(i * 7 + 1);
	return m;
}

static void test_hello(void **state)
{
	uint8_t buf[WIRE_HS_MAX_BODY];
	struct wire_hello m = sample_hello(), g;
	ipm_error err = { "" };
	size_t n;

	n = wire_hello_encode(buf, &m);
	assert_int_equal(n, 2 * WIRE_NAME_LEN + 4 + WIRE_NONCE_LEN);
	assert_int_equal(wire_hello_decode(buf, n, &g, &err), 0);
	assert_string_equal(g.from, "node1");
	assert_string_equal(g.to, "node2");
	assert_int_equal(g.conn_index, 3);
	assert_int_equal(g.conn_count, 4);
	assert_memory_equal(g.nonce, m.nonce, WIRE_NONCE_LEN);

	check_fail(wire_hello_decode(buf, n - 1, &g, &err), -EPROTO, &err,
		   "HELLO body is 163 bytes, expected 164");
	check_fail(wire_hello_decode(buf, n + 1, &g, &err), -EPROTO, &err, "expected 164");

	memset(buf, 'a', WIRE_NAME_LEN);	/* no NUL within the field */
	check_fail(wire_hello_decode(buf, n, &g, &err), -EPROTO, &err,
		   "HELLO sender name is not NUL-terminated");
	wire_hello_encode(buf, &m);
	memset(buf + WIRE_NAME_LEN, 0, WIRE_NAME_LEN);
	check_fail(wire_hello_decode(buf, n, &g, &err), -EPROTO, &err,
		   "HELLO receiver name is empty");

	/* a name from the peer goes into log lines: no control characters */
	wire_hello_encode(buf, &m);
	buf[3] = '\n';
	check_fail(wire_hello_decode(buf, n, &g, &err), -EPROTO, &err,
		   "HELLO sender name has a control character at byte 3");

	m.conn_index = 4;
	wire_hello_encode(buf, &m);
	check_fail(wire_hello_decode(buf, n, &g, &err), -EINVAL, &err,
		   "connection index 4 of 4");
}

static void test_challenge(void **state)
{
	uint8_t buf[WIRE_HS_MAX_BODY];
	struct wire_challenge m = { .from = "node2" }, g;
	ipm_error err = { "" };
	size_t n;

	memset(m.nonce, 0x11, sizeof(m.nonce));
	memset(m.mac, 0x22, sizeof(m.mac));
	n = wire_challenge_encode(buf, &m);
	assert_int_equal(n, WIRE_NAME_LEN + WIRE_NONCE_LEN + WIRE_MAC_LEN);
	assert_int_equal(wire_challenge_decode(buf, n, &g, &err), 0);
	assert_string_equal(g.from, "node2");
	assert_memory_equal(g.nonce, m.nonce, WIRE_NONCE_LEN);
	assert_memory_equal(g.mac, m.mac, WIRE_MAC_LEN);

	check_fail(wire_challenge_decode(buf, n - 1, &g, &err), -EPROTO, &err, "CHALLENGE body");
	buf[0] = 0;
	check_fail(wire_challenge_decode(buf, n, &g, &err), -EPROTO, &err,
		   "CHALLENGE sender name is empty");
}

static struct wire_auth *sample_auth(uint32_t n_luns)
{
	struct wire_auth *a = calloc(1, sizeof(*a));
	uint32_t i;

	assert_non_null(a);
	memset(a->mac, 0x5a, sizeof(a->mac));
	a->session = 0xfeedface12345678ull;
	a->base_seq = 1000000007ull;
	a->window = 128;
	a->n_luns = n_luns;
	for (i = 0; i < n_luns; i++) {
		snprintf(a->luns[i].name, WIRE_NAME_LEN, "vol%u", i);
		a->luns[i].size = (uint64_t)(i + 1) << 30;
		a->luns[i].mode = (uint8_t)(i & 1);
		a->luns[i].generation = 0xabcdef0000000000ull + i;
		a->luns[i].n_history = (uint8_t)(i % (WIRE_GEN_HISTORY + 1));
		for (uint32_t k = 0; k < a->luns[i].n_history; k++)
			a->luns[i].history[k] = 0x1234000000000000ull + i * 16 + k;
	}
	return a;
}

static void assert_auth_equal(const struct wire_auth *a, const struct wire_auth *b)
{
	uint32_t i;

	assert_memory_equal(a->mac, b->mac, WIRE_MAC_LEN);
	assert_true(a->session == b->session);
	assert_true(a->base_seq == b->base_seq);
	assert_int_equal(a->window, b->window);
	assert_int_equal(a->n_luns, b->n_luns);
	for (i = 0; i < a->n_luns; i++) {
		assert_string_equal(a->luns[i].name, b->luns[i].name);
		assert_true(a->luns[i].size == b->luns[i].size);
		assert_int_equal(a->luns[i].mode, b->luns[i].mode);
		assert_true(a->luns[i].generation == b->luns[i].generation);
		assert_int_equal(a->luns[i].n_history, b->luns[i].n_history);
		for (uint32_t k = 0; k < a->luns[i].n_history; k++)
			assert_true(a->luns[i].history[k] == b->luns[i].history[k]);
	}
}

static void test_auth_round_trip(void **state)
{
	static const uint32_t counts[] = { 0, 1, 3, WIRE_MAX_LUNS };
	uint8_t *buf = malloc(WIRE_HS_MAX_BODY);
	struct wire_auth *g = malloc(sizeof(*g));
	ipm_error err = { "" };
	size_t i, n;

	assert_non_null(buf);
	assert_non_null(g);
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		struct wire_auth *a = sample_auth(counts[i]);

		n = wire_auth_encode(buf, a);
		assert_int_equal(n, 56 + 152 * counts[i]);
		assert_true(n <= WIRE_HS_MAX_BODY);
		assert_int_equal(wire_auth_decode(buf, n, g, &err), 0);
		assert_auth_equal(a, g);
		free(a);
	}
	free(g);
	free(buf);
}

static void test_auth_malformed(void **state)
{
	uint8_t *buf = malloc(WIRE_HS_MAX_BODY);
	struct wire_auth *a = sample_auth(2), *g = malloc(sizeof(*g));
	ipm_error err = { "" };
	size_t n;

	assert_non_null(buf);
	assert_non_null(g);
	n = wire_auth_encode(buf, a);
	check_fail(wire_auth_decode(buf, 20, g, &err), -EPROTO, &err, "expected at least 56");
	check_fail(wire_auth_decode(buf, n - 152, g, &err), -EPROTO, &err,
		   "AUTH body is 208 bytes, expected 360");
	check_fail(wire_auth_decode(buf, n + 1, g, &err), -EPROTO, &err, "expected 360");

	/* n_luns field (offset 52) beyond the limit */
	buf[52] = 0; buf[53] = 0; buf[54] = 1; buf[55] = 1;
	check_fail(wire_auth_decode(buf, n, g, &err), -EMSGSIZE, &err, "257 luns, limit 256");

	a->window = 0;
	n = wire_auth_encode(buf, a);
	check_fail(wire_auth_decode(buf, n, g, &err), -EINVAL, &err, "window 0 outside 1..65536");
	a->window = WIRE_MAX_WINDOW + 1;
	n = wire_auth_encode(buf, a);
	check_fail(wire_auth_decode(buf, n, g, &err), -EINVAL, &err, "window 65537");
	a->window = WIRE_MAX_WINDOW;
	n = wire_auth_encode(buf, a);
	assert_int_equal(wire_auth_decode(buf, n, g, &err), 0);

	/* second lun's name: not terminated, then empty */
	memset(buf + 56 + 152, 'v', WIRE_NAME_LEN);
	check_fail(wire_auth_decode(buf, n, g, &err), -EPROTO, &err,
		   "AUTH lun 1 name is not NUL-terminated");
	memset(buf + 56 + 152, 0, WIRE_NAME_LEN);
	check_fail(wire_auth_decode(buf, n, g, &err), -EPROTO, &err, "AUTH lun 1 name is empty");

	n = wire_auth_encode(buf, a);
	buf[56 + 87] = 1;	/* last reserved byte of lun 0 */
	check_fail(wire_auth_decode(buf, n, g, &err), -EPROTO, &err, "reserved bytes");
	n = wire_auth_encode(buf, a);
	buf[56 + 81] = WIRE_GEN_HISTORY + 1;	/* lun 0's history count */
	check_fail(wire_auth_decode(buf, n, g, &err), -EPROTO, &err,
		   "AUTH lun 0: 9 earlier generations, at most 8");
	free(a);
	free(g);
	free(buf);
}

static void test_welcome(void **state)
{
	uint8_t buf[WIRE_HS_MAX_BODY];
	struct wire_welcome m = { .status = 2, .message = "unknown lun \"vol9\"" }, g;
	ipm_error err = { "" };
	size_t n;

	n = wire_welcome_encode(buf, &m);
	assert_int_equal(n, 4 + WIRE_MSG_LEN + 8 + 4);
	assert_int_equal(wire_welcome_decode(buf, n, &g, &err), 0);
	assert_int_equal(g.status, 2);
	assert_true(g.record == 0);

	m.record = 0x0102030405060708ull;
	n = wire_welcome_encode(buf, &m);
	assert_int_equal(buf[4 + WIRE_MSG_LEN], 1);	/* big-endian */
	assert_int_equal(buf[4 + WIRE_MSG_LEN + 7], 8);
	assert_int_equal(wire_welcome_decode(buf, n, &g, &err), 0);
	assert_true(g.record == 0x0102030405060708ull);
	assert_string_equal(g.message, "unknown lun \"vol9\"");

	m = (struct wire_welcome){ 0 };
	n = wire_welcome_encode(buf, &m);
	assert_int_equal(wire_welcome_decode(buf, n, &g, &err), 0);
	assert_int_equal(g.status, 0);
	assert_string_equal(g.message, "");

	check_fail(wire_welcome_decode(buf, n - 1, &g, &err), -EPROTO, &err, "WELCOME body");
	memset(buf + 4, 'x', WIRE_MSG_LEN);
	check_fail(wire_welcome_decode(buf, n, &g, &err), -EPROTO, &err,
		   "WELCOME message is not NUL-terminated");
	m.status = -1;
	wire_welcome_encode(buf, &m);
	check_fail(wire_welcome_decode(buf, n, &g, &err), -EINVAL, &err,
		   "WELCOME status -1 is not 0 or an errno");
	m.status = 1003515641;	/* from fuzzing: it came back as rc -1003515641 */
	wire_welcome_encode(buf, &m);
	check_fail(wire_welcome_decode(buf, n, &g, &err), -EINVAL, &err,
		   "WELCOME status 1003515641 is not");
	/* the peer's reason is logged without its control characters */
	m = (struct wire_welcome){ .status = 5, .message = "gave up\n\033[2Jfake line" };
	n = wire_welcome_encode(buf, &m);
	assert_int_equal(wire_welcome_decode(buf, n, &g, &err), 0);
	assert_string_equal(g.message, "gave up??[2Jfake line");

	/* per-LUN verdicts */
	m = (struct wire_welcome){ .status = 18, .n_luns = 3,
				   .lun_flags = { 0, WIRE_LV_FULL, WIRE_LV_SPLITBRAIN } };
	n = wire_welcome_encode(buf, &m);
	assert_int_equal(n, 4 + WIRE_MSG_LEN + 8 + 4 + 3);
	assert_int_equal(wire_welcome_decode(buf, n, &g, &err), 0);
	assert_int_equal(g.n_luns, 3);
	assert_memory_equal(g.lun_flags, m.lun_flags, 3);
	check_fail(wire_welcome_decode(buf, n - 1, &g, &err), -EPROTO, &err,
		   "WELCOME body is 146 bytes, expected 147");
	buf[n - 1] = 0x40;
	check_fail(wire_welcome_decode(buf, n, &g, &err), -EPROTO, &err,
		   "WELCOME lun 2: unknown verdict 0x40");
	buf[4 + WIRE_MSG_LEN + 8 + 2] = 1;	/* n_luns 259 */
	check_fail(wire_welcome_decode(buf, n, &g, &err), -EMSGSIZE, &err,
		   "WELCOME has 259 lun verdicts, limit 256");
}

/* ---- crc32c -------------------------------------------------------------------- */

static void test_crc32c_vectors(void **state)
{
	uint8_t buf[32];
	int i;

	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283);
	assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283);
	assert_int_equal(crc32c(0, "", 0), 0);
	/* RFC 3720 B.4 */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(crc32c(0, buf, 32), 0x8A9136AA);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(crc32c(0, buf, 32), 0x62A8AB43);
	for (i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(crc32c(0, buf, 32), 0x46DD794E);
	assert_int_equal(crc32c_sw(0, buf, 32), 0x46DD794E);
	for (i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	assert_int_equal(crc32c(0, buf, 32), 0x113FDB5C);
}

static void fill_random(uint8_t *p, size_t n, unsigned *seed)
{
	while (n--)
		*p++ = (uint8_t)rand_r(seed);
}

static void test_crc32c_incremental(void **state)
{
	size_t len = 100003, cut;
	uint8_t *buf = malloc(len);
	unsigned seed = 42;
	uint32_t whole;

	assert_non_null(buf);
	fill_random(buf, len, &seed);
	whole = crc32c(0, buf, len);
	for (cut = 0; cut < 70; cut += 3) {
		assert_int_equal(crc32c(crc32c(0, buf, cut), buf + cut, len - cut), whole);
		assert_int_equal(crc32c_sw(crc32c_sw(0, buf, cut), buf + cut, len - cut), whole);
	}
	cut = len / 2 + 5;
	assert_int_equal(crc32c(crc32c(0, buf, cut), buf + cut, len - cut), whole);
	buf[len / 3] ^= 0x10;	/* a flipped bit shows */
	assert_int_not_equal(crc32c(0, buf, len), whole);
	free(buf);
}

/* Both implementations agree at every alignment and length. On a CPU without
 * SSE4.2 crc32c() is the table and this compares it with itself through the
 * public entry point. */
static void test_crc32c_paths_agree(void **state)
{
	uint8_t buf[4200];
	unsigned seed = 7;
	size_t off, len;
	uint32_t sw;

	fill_random(buf, sizeof(buf), &seed);
	for (off = 0; off < 9; off++) {
		for (len = 0; len + off <= sizeof(buf); len += len < 64 ? 1 : 37) {
			sw = crc32c_sw(0x12345678, buf + off, len);
			assert_int_equal(crc32c(0x12345678, buf + off, len), sw);
			if (crc32c_hw_available())
				assert_int_equal(crc32c_hw(0x12345678, buf + off, len), sw);
		}
	}
}

/* The three-chain path for large buffers (blocks of 8 KiB and 256 bytes)
 * agrees with the table at the lengths where its blocks begin and end. */
static void test_crc32c_large(void **state)
{
	static const size_t lens[] = { 767, 768, 769, 24575, 24576, 24577, 24576 + 768,
				       24576 + 767, 3 * 24576 + 5, 100003, 1u << 20 };
	size_t n = (1u << 20) + 16, off, i;
	uint8_t *buf = malloc(n);
	unsigned seed = 11;

	assert_non_null(buf);
	fill_random(buf, n, &seed);
	for (off = 0; off < 9; off += 4) {
		for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			uint32_t sw = crc32c_sw(0xdeadbeef, buf + off, lens[i]);

			assert_int_equal(crc32c(0xdeadbeef, buf + off, lens[i]), sw);
		}
	}
	free(buf);
}

/* ---- auth ---------------------------------------------------------------------- */

static void make_secret(struct auth_secret *s, const char *text)
{
	memset(s, 0, sizeof(*s));
	s->len = strlen(text);
	memcpy(s->key, text, s->len);
}

static void test_auth_mac(void **state)
{
	uint8_t na[WIRE_NONCE_LEN], nb[WIRE_NONCE_LEN], m1[WIRE_MAC_LEN], m2[WIRE_MAC_LEN];
	struct auth_secret s1, s2;

	make_secret(&s1, "correct horse battery staple");
	make_secret(&s2, "correct horse battery stapler");
	auth_random(na, sizeof(na));
	auth_random(nb, sizeof(nb));
	assert_memory_not_equal(na, nb, sizeof(na));

	auth_mac(&s1, "server", na, nb, "node1", "node2", m1);
	auth_mac(&s1, "server", na, nb, "node1", "node2", m2);
	assert_true(auth_mac_equal(m1, m2));

	auth_mac(&s2, "server", na, nb, "node1", "node2", m2);
	assert_false(auth_mac_equal(m1, m2));
	auth_mac(&s1, "client", na, nb, "node1", "node2", m2);
	assert_false(auth_mac_equal(m1, m2));
	auth_mac(&s1, "server", nb, na, "node1", "node2", m2);
	assert_false(auth_mac_equal(m1, m2));
	nb[31] ^= 1;
	auth_mac(&s1, "server", na, nb, "node1", "node2", m2);
	assert_false(auth_mac_equal(m1, m2));
	nb[31] ^= 1;
	auth_mac(&s1, "server", na, nb, "node2", "node1", m2);
	assert_false(auth_mac_equal(m1, m2));
	auth_mac(&s1, "server", na, nb, "node1", "node3", m2);
	assert_false(auth_mac_equal(m1, m2));

	memcpy(m2, m1, sizeof(m1));
	m2[WIRE_MAC_LEN - 1] ^= 0x80;
	assert_false(auth_mac_equal(m1, m2));
}

/* The MAC input is a documented byte string (doc/wire.md); this digest was
 * computed independently with Python's hmac module:
 * HMAC-SHA256("key", "server\0" || 00..1f || 20..3f || "node1" padded to 64
 * || "node2" padded to 64). */
static void test_auth_mac_known(void **state)
{
	static const uint8_t want[WIRE_MAC_LEN] = {
		0x94, 0xdb, 0xf6, 0xd4, 0x2a, 0x6a, 0x97, 0xf0, 0xd1, 0x06, 0x1b, 0xde,
		0x89, 0x63, 0x0d, 0x84, 0x00, 0xf2, 0xc0, 0xc6, 0xcb, 0xec, 0xf5, 0x32,
		0x78, 0x23, 0xab, 0x65, 0xaf, 0x8c, 0x78, 0xa7,
	};
	uint8_t na[WIRE_NONCE_LEN], nb[WIRE_NONCE_LEN], mac[WIRE_MAC_LEN];
	struct auth_secret s;
	int i;

	make_secret(&s, "key");
	for (i = 0; i < WIRE_NONCE_LEN; i++) {
		na[i] = (uint8_t)i;
		nb[i] = (uint8_t)(32 + i);
	}
	auth_mac(&s, "server", na, nb, "node1", "node2", mac);
	assert_memory_equal(mac, want, WIRE_MAC_LEN);
}

struct tmpdir {
	char path[64];
	char file[128];
};

static void write_secret_file(struct tmpdir *d, const void *data, size_t len, mode_t mode)
{
	FILE *f;

	snprintf(d->file, sizeof(d->file), "%s/secret", d->path);
	unlink(d->file);
	f = fopen(d->file, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	assert_int_equal(chmod(d->file, mode), 0);
}

static void test_secret_load(void **state)
{
	struct auth_secret *s = calloc(1, sizeof(*s));
	char *big = malloc(AUTH_SECRET_MAX + 2);
	struct tmpdir d;
	ipm_error err = { "" };

	assert_non_null(s);
	assert_non_null(big);
	strcpy(d.path, "/tmp/ipm-test-wire.XXXXXX");
	assert_non_null(mkdtemp(d.path));

	write_secret_file(&d, "s3cret\n", 7, 0600);
	assert_int_equal(auth_secret_load(d.file, s, &err), 0);
	assert_int_equal(s->len, 6);
	assert_memory_equal(s->key, "s3cret", 6);

	write_secret_file(&d, "", 0, 0600);
	check_fail(auth_secret_load(d.file, s, &err), -EINVAL, &err, "is empty");
	write_secret_file(&d, "\n", 1, 0600);
	check_fail(auth_secret_load(d.file, s, &err), -EINVAL, &err, "is empty");

	memset(big, 'k', AUTH_SECRET_MAX + 1);
	big[AUTH_SECRET_MAX] = '\n';
	write_secret_file(&d, big, AUTH_SECRET_MAX + 1, 0400);
	assert_int_equal(auth_secret_load(d.file, s, &err), 0);
	assert_int_equal(s->len, AUTH_SECRET_MAX);
	big[AUTH_SECRET_MAX] = 'k';
	write_secret_file(&d, big, AUTH_SECRET_MAX + 1, 0600);
	check_fail(auth_secret_load(d.file, s, &err), -EMSGSIZE, &err, "larger than 4096 bytes");

	write_secret_file(&d, "s3cret\n", 7, 0644);
	check_fail(auth_secret_load(d.file, s, &err), -EACCES, &err, "(mode 0644)");
	write_secret_file(&d, "s3cret\n", 7, 0640);
	check_fail(auth_secret_load(d.file, s, &err), -EACCES, &err, "group or others");

	unlink(d.file);
	check_fail(auth_secret_load(d.file, s, &err), -ENOENT, &err, d.file);
	rmdir(d.path);
	free(big);
	free(s);
}

/* ---- handshake over a socket pair ----------------------------------------------- */

static const struct wire_lun test_luns[2] = {
	{ .name = "vol0", .size = 1 << 20, .mode = 0, .generation = 11 },
	{ .name = "vol1", .size = 1ull << 34, .mode = 1, .generation = 0x8000000000000001ull },
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
};

static int check_cb(void *opaque, const struct wire_hello *hello, const struct wire_auth *auth,
		    uint8_t *verdicts, uint64_t *record, char *reason, size_t reason_len)
{
	struct server *s = opaque;
	uint32_t i;

	s->checked++;
	*record = 0x5eedf00d12345678ull;
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

	s->rc = handshake_server_ms(s->fd, s->timeout_ms, s->self, s->expect_peer, &s->secret,
				    check_cb, s, &s->hello, s->auth, &s->err);
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

static void test_hs_wrong_node(void **state)
{
	struct pair *t = *state;

	t->p.peer = "node3";
	check_fail(run_pair(t, &t->srv.secret), -EINVAL, &t->err,
		   "refused by node3: this is node \"node2\", not \"node3\"");
	check_fail(t->srv.rc, -EINVAL, &t->srv.err, "this is node \"node2\"");
}

static void test_hs_unknown_peer(void **state)
{
	struct pair *t = *state;

	t->p.self = "intruder";
	check_fail(run_pair(t, &t->srv.secret), -EACCES, &t->err,
		   "node \"intruder\" is not our peer \"node1\"");
	check_fail(t->srv.rc, -EACCES, &t->srv.err, "is not our peer");
	assert_int_equal(t->srv.checked, 0);
}

/* Write a raw handshake message from the test's side of the pair. */
static void raw_send(int fd, uint16_t type, const uint8_t *body, size_t len)
{
	uint8_t hdr[WIRE_HS_HDR_LEN];

	wire_hs_hdr_encode(hdr, type, (uint32_t)len);
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
	struct wire_welcome w;
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
	hdr[5] = 5;
	assert_int_equal(write(t->srv.fd, hdr, sizeof(hdr)), sizeof(hdr));
	check_fail(handshake_client(t->cfd, &t->p, &t->err), -EPROTO, &t->err,
		   "peer speaks protocol version 5, we speak 4");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_round_trip),
		cmocka_unit_test(test_frame_layout),
		cmocka_unit_test(test_frame_malformed),
		cmocka_unit_test(test_hs_hdr),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_challenge),
		cmocka_unit_test(test_auth_round_trip),
		cmocka_unit_test(test_auth_malformed),
		cmocka_unit_test(test_welcome),
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_crc32c_incremental),
		cmocka_unit_test(test_crc32c_paths_agree),
		cmocka_unit_test(test_crc32c_large),
		cmocka_unit_test(test_auth_mac),
		cmocka_unit_test(test_auth_mac_known),
		cmocka_unit_test(test_secret_load),
		cmocka_unit_test_setup_teardown(test_hs_accept, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_wrong_secret, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_check_refuses, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_wrong_node, pair_setup, pair_teardown),
		cmocka_unit_test_setup_teardown(test_hs_unknown_peer, pair_setup, pair_teardown),
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
