/* test_wire.c - the mirror protocol codec (engine/proto/wire.c): frames and
 * handshake messages, their byte layout and every malformed input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "auth.h"
#include "verify_digest.h"
#include "wire.h"
#include "unit_util.h"
#include "wire_samples.h"

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
	/* an empty WRITE (older primaries sent them) decodes: the mirror
	 * answers it as a no-op instead of dropping the connection */
	f.len = f.length = 0;
	assert_int_equal(decode_modified(f, 2, &err), 0);
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

/* ---- a read of the mirror's copy (frames 14-15, version 5) ----------------------- */

static struct wire_frame read_frame(uint16_t type, uint64_t length)
{
	struct wire_frame f = {
		.magic = WIRE_FRAME_MAGIC, .type = type, .lun = 1, .seq = 21, .dep = 20,
		.offset = 1ull << 20, .length = length,
	};

	f.len = type == WIRE_READ ? 0 : (uint32_t)length;
	return f;
}

static void test_read_frames(void **state)
{
	uint8_t buf[WIRE_FRAME_LEN];
	struct wire_frame f, g;
	ipm_error err = { "" };

	(void)state;
	f = read_frame(WIRE_READ, 4096);
	wire_frame_encode(buf, &f);
	assert_int_equal(buf[5], 14);	/* the type's number is the contract */
	assert_int_equal(wire_frame_decode(buf, 2, &g, &err), 0);
	assert_true(g.type == WIRE_READ && g.len == 0 && g.length == 4096 &&
		    g.offset == 1ull << 20 && g.seq == 21 && g.dep == 20);
	f = read_frame(WIRE_READ_REPLY, 512);
	f.csum = 0xdeadbeef;
	wire_frame_encode(buf, &f);
	assert_int_equal(buf[5], 15);
	assert_int_equal(wire_frame_decode(buf, 2, &g, &err), 0);
	assert_true(g.type == WIRE_READ_REPLY && g.len == 512 && g.csum == 0xdeadbeef);
	/* the largest: it fits the primary's buffer of answers */
	f = read_frame(WIRE_READ_REPLY, WIRE_READ_MAX);
	assert_int_equal(decode_modified(f, 2, &err), 0);
	f = read_frame(WIRE_READ, WIRE_READ_MAX + 1ull);
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err,
		   "READ frame for 4097 bytes, expected 1..4096");
	f = read_frame(WIRE_READ, 0);
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "READ frame for 0 bytes");
	/* a READ carries nothing */
	f = read_frame(WIRE_READ, 4096);
	f.len = 4096;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err,
		   "READ frame of 4096 bytes carries 4096 payload bytes, expected 0");
	f = read_frame(WIRE_READ, 4096);
	f.flags = WIRE_F_FUA;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "READ frame has flags 0x0001");
	f = read_frame(WIRE_READ, 4096);
	f.lun = 2;
	check_fail(decode_modified(f, 2, &err), -EINVAL, &err, "READ frame for lun 2, only 2");
	/* a reply carries the whole range, or nothing with an errno */
	f = read_frame(WIRE_READ_REPLY, 4096);
	f.len = 4095;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err,
		   "READ_REPLY frame of 4096 bytes carries 4095 payload bytes, expected 4096");
	f.len = 0;
	f.status = 5;
	assert_int_equal(decode_modified(f, 2, &err), 0);
	f.len = 4096;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err,
		   "READ_REPLY frame of 4096 bytes carries 4096 payload bytes, expected 0");
	f.len = 0;
	f.status = WIRE_MAX_ERRNO + 1;
	check_fail(decode_modified(f, 2, &err), -EINVAL, &err, "READ_REPLY status 4096");
	/* the reply echoes the id, unbounded like an ACK's */
	f = read_frame(WIRE_READ_REPLY, 4096);
	f.lun = 300;
	assert_int_equal(decode_modified(f, 2, &err), 0);
	/* 18 is not a frame type (16-17: RESIZE, RESIZE_REPLY) */
	f = read_frame(WIRE_READ, 4096);
	f.type = 18;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "unknown frame type 18");
}

/* ---- an online grow (frames 16-17, version 5, doc/resize.md) --------------------- */

static struct wire_frame resize_frame(uint16_t type)
{
	struct wire_frame f = {
		.magic = WIRE_FRAME_MAGIC, .type = type, .lun = 1, .seq = 31, .dep = 30,
	};

	if (type == WIRE_RESIZE) {
		f.len = WIRE_RESIZE_LEN;
	} else {
		f.offset = 64ull << 20;   /* the mirror's backing */
		f.length = 96ull << 20;   /* the size asked */
	}
	return f;
}

static void test_resize_frames(void **state)
{
	uint8_t buf[WIRE_FRAME_LEN];
	struct wire_frame f, g;
	ipm_error err = { "" };

	(void)state;
	f = resize_frame(WIRE_RESIZE);
	wire_frame_encode(buf, &f);
	assert_int_equal(buf[5], 16);	/* the type's number is the contract */
	assert_int_equal(wire_frame_decode(buf, 2, &g, &err), 0);
	assert_true(g.type == WIRE_RESIZE && g.len == WIRE_RESIZE_LEN && g.offset == 0 &&
		    g.length == 0 && g.seq == 31 && g.dep == 30);
	f = resize_frame(WIRE_RESIZE_REPLY);
	f.status = 27;	/* EFBIG: the mirror's backing is smaller */
	wire_frame_encode(buf, &f);
	assert_int_equal(buf[5], 17);
	assert_int_equal(wire_frame_decode(buf, 2, &g, &err), 0);
	assert_true(g.type == WIRE_RESIZE_REPLY && g.status == 27 && g.offset == 64ull << 20 &&
		    g.length == 96ull << 20 && g.len == 0);
	/* the size travels in the payload; the frame names no range */
	f = resize_frame(WIRE_RESIZE);
	f.len = 0;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err,
		   "RESIZE frame carries 0 payload bytes, expected 8");
	f = resize_frame(WIRE_RESIZE);
	f.length = 4096;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "RESIZE frame names a range");
	f = resize_frame(WIRE_RESIZE);
	f.flags = WIRE_F_FUA;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "RESIZE frame has flags 0x0001");
	f = resize_frame(WIRE_RESIZE);
	f.lun = 2;
	check_fail(decode_modified(f, 2, &err), -EINVAL, &err, "RESIZE frame for lun 2, only 2");
	/* the reply carries nothing, an errno at most, and echoes the id */
	f = resize_frame(WIRE_RESIZE_REPLY);
	f.len = 8;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err,
		   "RESIZE_REPLY frame carries 8 payload bytes, expected 0");
	f = resize_frame(WIRE_RESIZE_REPLY);
	f.status = WIRE_MAX_ERRNO + 1;
	check_fail(decode_modified(f, 2, &err), -EINVAL, &err, "RESIZE_REPLY status 4096");
	f = resize_frame(WIRE_RESIZE_REPLY);
	f.lun = 300;
	assert_int_equal(decode_modified(f, 2, &err), 0);
}

/* ---- the online verify's frames and digests (version 5) ------------------------- */

static struct wire_frame verify_frame(uint16_t type, uint64_t length)
{
	struct wire_frame f = {
		.magic = WIRE_FRAME_MAGIC, .type = type, .lun = 1, .seq = 9, .dep = 8,
		.offset = 3ull << 20, .length = length, .csum = 0x01020304,
	};

	f.len = type == WIRE_VERIFY ? WIRE_VERIFY_NONCE_LEN : WIRE_VERIFY_DIGESTS_LEN(length);
	return f;
}

static void test_verify_frames(void **state)
{
	uint8_t buf[WIRE_FRAME_LEN];
	struct wire_frame f, g;
	ipm_error err = { "" };

	/* one digest per started block: 2.5 MiB -> 3 */
	assert_int_equal(WIRE_VERIFY_DIGESTS_LEN((5ull << 20) / 2), 3 * WIRE_VERIFY_DIGEST_LEN);
	assert_int_equal(WIRE_VERIFY_DIGESTS_LEN(1), WIRE_VERIFY_DIGEST_LEN);
	assert_int_equal(WIRE_VERIFY_DIGESTS_LEN(WIRE_VERIFY_MAX),
			 WIRE_VERIFY_MAX / WIRE_VERIFY_BLOCK * WIRE_VERIFY_DIGEST_LEN);

	f = verify_frame(WIRE_VERIFY, WIRE_VERIFY_MAX);
	wire_frame_encode(buf, &f);
	assert_int_equal(buf[5], 12);	/* the type's number is the contract */
	assert_int_equal(wire_frame_decode(buf, 2, &g, &err), 0);
	assert_int_equal(g.type, WIRE_VERIFY);
	assert_int_equal(g.len, WIRE_VERIFY_NONCE_LEN);
	assert_true(g.length == WIRE_VERIFY_MAX && g.offset == 3ull << 20 && g.dep == 8);
	f = verify_frame(WIRE_VERIFY_REPLY, (5ull << 20) / 2);
	wire_frame_encode(buf, &f);
	assert_int_equal(buf[5], 13);
	assert_int_equal(wire_frame_decode(buf, 2, &g, &err), 0);
	assert_int_equal(g.len, 3 * WIRE_VERIFY_DIGEST_LEN);
	/* a failed one carries no digests, and its status is an errno */
	f.status = 5;
	f.len = 0;
	assert_int_equal(decode_modified(f, 2, &err), 0);
	f.len = 3 * WIRE_VERIFY_DIGEST_LEN;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err,
		   "VERIFY_REPLY frame of 2621440 bytes carries 48 payload bytes, expected 0");
	f.len = 0;
	f.status = WIRE_MAX_ERRNO + 1;
	check_fail(decode_modified(f, 2, &err), -EINVAL, &err, "VERIFY_REPLY status 4096");

	f = verify_frame(WIRE_VERIFY_REPLY, 1ull << 20);
	f.len = 2 * WIRE_VERIFY_DIGEST_LEN;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err,
		   "VERIFY_REPLY frame of 1048576 bytes carries 32 payload bytes, expected 16");
	f = verify_frame(WIRE_VERIFY, 4096);
	f.len = 0;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err,
		   "VERIFY frame of 4096 bytes carries 0 payload bytes, expected 16");
	f = verify_frame(WIRE_VERIFY, 0);
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err,
		   "VERIFY frame for 0 bytes, expected 1..8388608");
	f = verify_frame(WIRE_VERIFY, WIRE_VERIFY_MAX + 1ull);
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "VERIFY frame for 8388609 bytes");
	f = verify_frame(WIRE_VERIFY, 4096);
	f.flags = WIRE_F_FUA;
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "VERIFY frame has flags 0x0001");
	/* a VERIFY names a negotiated lun */
	f = verify_frame(WIRE_VERIFY, 4096);
	f.lun = 2;
	check_fail(decode_modified(f, 2, &err), -EINVAL, &err, "VERIFY frame for lun 2, only 2");
	/* a reply echoes the id, unbounded like an ACK's (the primary's
	 * config index, version 5) */
	f = verify_frame(WIRE_VERIFY_REPLY, 4096);
	f.lun = 7;
	assert_int_equal(decode_modified(f, 2, &err), 0);
	f.type = 18;	/* 14-15 are READ, READ_REPLY, 16-17 RESIZE, RESIZE_REPLY */
	check_fail(decode_modified(f, 2, &err), -EPROTO, &err, "unknown frame type 18");
}

/* Keyed digests: the same on both sides for equal data under one run's
 * key, different for a flipped bit, another block offset, another nonce
 * or another secret. */
static void test_verify_digests(void **state)
{
	struct auth_secret s1 = { .key = "secret one", .len = 10 }, s2 = { .key = "secret two", .len = 10 };
	uint8_t nonce[WIRE_VERIFY_NONCE_LEN] = { 1, 2, 3 }, nonce2[WIRE_VERIFY_NONCE_LEN] = { 4 };
	size_t len = 2 * WIRE_VERIFY_BLOCK + 4096, dl = WIRE_VERIFY_DIGESTS_LEN(len);
	uint8_t *buf = malloc(len), a[64], b[64];
	struct verify_key k1, k2;
	size_t i;

	assert_non_null(buf);
	assert_int_equal(dl, 3 * WIRE_VERIFY_DIGEST_LEN);
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	verify_key_init(&k1, &s1, nonce);
	verify_key_init(&k2, &s1, nonce);   /* the mirror's, from the same frame */
	verify_digests(&k1, 5ull << 20, buf, len, a);
	verify_digests(&k2, 5ull << 20, buf, len, b);
	assert_memory_equal(a, b, dl);
	/* one bit in the second block: only its digest differs */
	buf[WIRE_VERIFY_BLOCK + 77] ^= 0x10;
	verify_digests(&k2, 5ull << 20, buf, len, b);
	assert_memory_equal(a, b, WIRE_VERIFY_DIGEST_LEN);
	assert_memory_not_equal(a + WIRE_VERIFY_DIGEST_LEN, b + WIRE_VERIFY_DIGEST_LEN,
				WIRE_VERIFY_DIGEST_LEN);
	assert_memory_equal(a + 2 * WIRE_VERIFY_DIGEST_LEN, b + 2 * WIRE_VERIFY_DIGEST_LEN,
			    WIRE_VERIFY_DIGEST_LEN);
	buf[WIRE_VERIFY_BLOCK + 77] ^= 0x10;
	/* the same bytes at another offset */
	verify_digests(&k2, 6ull << 20, buf, len, b);
	assert_memory_not_equal(a, b, WIRE_VERIFY_DIGEST_LEN);
	/* another run, another secret */
	verify_key_init(&k2, &s1, nonce2);
	verify_digests(&k2, 5ull << 20, buf, len, b);
	assert_memory_not_equal(a, b, WIRE_VERIFY_DIGEST_LEN);
	verify_key_init(&k2, &s2, nonce);
	verify_digests(&k2, 5ull << 20, buf, len, b);
	assert_memory_not_equal(a, b, WIRE_VERIFY_DIGEST_LEN);
	free(buf);
}

/* ---- handshake messages -------------------------------------------------------- */

static void test_hs_hdr(void **state)
{
	uint8_t buf[WIRE_HS_HDR_LEN];
	struct wire_hs_hdr h;
	ipm_error err = { "" };

	assert_int_equal(wire_hs_hdr_encode(buf, WIRE_AUTH, 1234), WIRE_HS_HDR_LEN);
	assert_memory_equal(buf, "IPMH\0\6\0\3\0\0\x04\xd2", WIRE_HS_HDR_LEN);
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
		   "peer speaks protocol version 1, we speak 4 to 6");
	buf[5] = 7;	/* a later version: only its HELLO is read (for the range) */
	check_fail(wire_hs_hdr_decode(buf, WIRE_AUTH, &h, &err), -EPROTO, &err,
		   "peer speaks protocol version 7, we speak 4 to 6");
	wire_hs_hdr_encode_v(buf, 7, WIRE_HELLO, 168);
	assert_int_equal(wire_hs_hdr_decode(buf, WIRE_HELLO, &h, &err), 0);
	assert_int_equal(h.version, 7);

	wire_hs_hdr_encode(buf, 9, 0);
	check_fail(wire_hs_hdr_decode(buf, 0, &h, &err), -EPROTO, &err,
		   "unknown handshake message type 9");

	wire_hs_hdr_encode(buf, WIRE_AUTH, WIRE_HS_MAX_BODY);
	assert_int_equal(wire_hs_hdr_decode(buf, WIRE_AUTH, &h, &err), 0);
	wire_hs_hdr_encode(buf, WIRE_AUTH, WIRE_HS_MAX_BODY + 1);
	check_fail(wire_hs_hdr_decode(buf, WIRE_AUTH, &h, &err), -EMSGSIZE, &err,
		   "exceeds limit");
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
		g->version = a->version;	/* the layout: the caller's to set */
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
	g->version = a->version;	/* the layout: the caller's to set */
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
	struct wire_welcome m = { .status = 2, .message = "unknown lun \"vol9\"" }, g = { 0 };
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

	/* version 6: each verdict's fill id after the verdicts */
	m.version = g.version = 6;
	m.fill[1] = 0x0102030405060708ull;
	n = wire_welcome_encode(buf, &m);
	assert_int_equal(n, 4 + WIRE_MSG_LEN + 8 + 4 + 3 + 3 * 8);
	assert_int_equal(buf[4 + WIRE_MSG_LEN + 8 + 4 + 3 + 8], 1);	/* big-endian */
	assert_int_equal(wire_welcome_decode(buf, n, &g, &err), 0);
	assert_true(g.fill[0] == 0 && g.fill[1] == 0x0102030405060708ull && g.fill[2] == 0);
	check_fail(wire_welcome_decode(buf, n - 1, &g, &err), -EPROTO, &err,
		   "WELCOME body is 170 bytes, expected 171");
	g.version = 5;	/* a version 5 reader: the fills are too much */
	check_fail(wire_welcome_decode(buf, n, &g, &err), -EPROTO, &err,
		   "WELCOME body is 171 bytes, expected 147");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_round_trip),
		cmocka_unit_test(test_frame_layout),
		cmocka_unit_test(test_frame_malformed),
		cmocka_unit_test(test_verify_frames),
		cmocka_unit_test(test_read_frames),
		cmocka_unit_test(test_resize_frames),
		cmocka_unit_test(test_verify_digests),
		cmocka_unit_test(test_hs_hdr),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_challenge),
		cmocka_unit_test(test_auth_round_trip),
		cmocka_unit_test(test_auth_malformed),
		cmocka_unit_test(test_welcome),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
