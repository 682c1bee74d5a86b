/* test_nbd_proto.c - the NBD wire codec: request and option decoding and
 * validation on good and malformed input, and the reply builders. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "nbd/proto.h"

#define EXPORT_SIZE (256ULL << 20)

static void be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = (uint8_t)v; }
static void be32(uint8_t *p, uint32_t v) { be16(p, v >> 16); be16(p + 2, (uint16_t)v); }
static void be64(uint8_t *p, uint64_t v) { be32(p, v >> 32); be32(p + 4, (uint32_t)v); }

static void make_req(uint8_t b[NBD_REQUEST_LEN], uint16_t flags, uint16_t type, uint64_t cookie,
		     uint64_t off, uint32_t len)
{
	be32(b, NBD_MAGIC_REQUEST);
	be16(b + 4, flags);
	be16(b + 6, type);
	be64(b + 8, cookie);
	be64(b + 16, off);
	be32(b + 24, len);
}

/* Decode and check one request; returns the verdict, *err the NBD error. */
static enum nbd_verdict verdict(uint16_t flags, uint16_t type, uint64_t off, uint32_t len,
				uint32_t *err)
{
	uint8_t b[NBD_REQUEST_LEN];
	struct nbd_request r;
	const char *why;
	enum nbd_verdict v;

	make_req(b, flags, type, 7, off, len);
	assert_int_equal(nbd_request_decode(b, sizeof(b), &r), 0);
	v = nbd_request_check(&r, EXPORT_SIZE, err, &why);
	if (v == NBD_V_ERROR || v == NBD_V_FATAL)
		assert_non_null(why);
	return v;
}

static void test_request_decode(void **state)
{
	uint8_t b[NBD_REQUEST_LEN];
	struct nbd_request r;

	(void)state;
	make_req(b, NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 0x0102030405060708ULL, 0x1122334455667788ULL,
		 0xdeadbeef);
	assert_int_equal(nbd_request_decode(b, sizeof(b), &r), 0);
	assert_int_equal(r.flags, NBD_CMD_FLAG_FUA);
	assert_int_equal(r.type, NBD_CMD_WRITE);
	assert_true(r.cookie == 0x0102030405060708ULL);
	assert_true(r.offset == 0x1122334455667788ULL);
	assert_int_equal(r.len, 0xdeadbeef);
}

static void test_request_bad_magic(void **state)
{
	uint8_t b[NBD_REQUEST_LEN];
	struct nbd_request r;

	(void)state;
	make_req(b, 0, NBD_CMD_READ, 1, 0, 512);
	b[0] ^= 0x01;
	assert_int_equal(nbd_request_decode(b, sizeof(b), &r), -EBADMSG);
	/* the reply magic is not a request magic either */
	be32(b, NBD_MAGIC_SIMPLE);
	assert_int_equal(nbd_request_decode(b, sizeof(b), &r), -EBADMSG);
}

static void test_request_truncated(void **state)
{
	uint8_t b[NBD_REQUEST_LEN];
	struct nbd_request r;

	(void)state;
	make_req(b, 0, NBD_CMD_READ, 1, 0, 512);
	for (size_t n = 0; n < NBD_REQUEST_LEN; n++)
		assert_int_equal(nbd_request_decode(b, n, &r), -EINVAL);
}

static void test_request_valid(void **state)
{
	uint32_t err = 99;

	(void)state;
	assert_int_equal(verdict(0, NBD_CMD_READ, 0, 4096, &err), NBD_V_OK);
	assert_int_equal(err, 0);
	assert_int_equal(verdict(NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, EXPORT_SIZE - 4096, 4096, &err),
			 NBD_V_OK);
	assert_int_equal(verdict(0, NBD_CMD_FLUSH, 0, 0, &err), NBD_V_OK);
	assert_int_equal(verdict(0, NBD_CMD_TRIM, 0, EXPORT_SIZE, &err), NBD_V_OK);
	assert_int_equal(verdict(NBD_CMD_FLAG_NO_HOLE | NBD_CMD_FLAG_FUA, NBD_CMD_WRITE_ZEROES,
				 1 << 20, 1 << 20, &err), NBD_V_OK);
	/* exactly the limit */
	assert_int_equal(verdict(0, NBD_CMD_WRITE, 0, NBD_MAX_PAYLOAD, &err), NBD_V_OK);
	assert_int_equal(verdict(0, NBD_CMD_READ, 0, NBD_MAX_PAYLOAD, &err), NBD_V_OK);
	/* TRIM/WRITE_ZEROES carry no payload: no 32 MiB limit */
	assert_int_equal(verdict(0, NBD_CMD_WRITE_ZEROES, 0, 64U << 20, &err), NBD_V_OK);
	assert_int_equal(verdict(0, NBD_CMD_DISC, 0, 0, &err), NBD_V_DISC);
}

static void test_request_zero_length(void **state)
{
	uint32_t err;

	(void)state;
	/* unspecified by the spec; the server must not disconnect: accept */
	assert_int_equal(verdict(0, NBD_CMD_READ, 0, 0, &err), NBD_V_OK);
	assert_int_equal(verdict(0, NBD_CMD_WRITE, 4096, 0, &err), NBD_V_OK);
	assert_int_equal(verdict(0, NBD_CMD_READ, EXPORT_SIZE, 0, &err), NBD_V_OK);
	assert_int_equal(verdict(0, NBD_CMD_READ, EXPORT_SIZE + 1, 0, &err), NBD_V_ERROR);
	assert_int_equal(err, NBD_EINVAL);
}

static void test_request_out_of_range(void **state)
{
	uint32_t err;

	(void)state;
	assert_int_equal(verdict(0, NBD_CMD_READ, EXPORT_SIZE - 4095, 4096, &err), NBD_V_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	assert_int_equal(verdict(0, NBD_CMD_READ, EXPORT_SIZE, 1, &err), NBD_V_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	/* offset + length wraps past 2^64 */
	assert_int_equal(verdict(0, NBD_CMD_READ, UINT64_MAX - 100, 4096, &err), NBD_V_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	assert_int_equal(verdict(0, NBD_CMD_TRIM, EXPORT_SIZE - 512, 1024, &err), NBD_V_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	assert_int_equal(verdict(0, NBD_CMD_WRITE_ZEROES, UINT64_MAX, 1, &err), NBD_V_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	/* a write past the end is ENOSPC, as the spec asks; its payload is
	 * consumed (ERROR, not FATAL) */
	assert_int_equal(verdict(0, NBD_CMD_WRITE, EXPORT_SIZE, 4096, &err), NBD_V_ERROR);
	assert_int_equal(err, NBD_ENOSPC);
}

static void test_request_too_long(void **state)
{
	uint32_t err;

	(void)state;
	assert_int_equal(verdict(0, NBD_CMD_READ, 0, NBD_MAX_PAYLOAD + 1, &err), NBD_V_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	/* a write's payload that large cannot be consumed safely */
	assert_int_equal(verdict(0, NBD_CMD_WRITE, 0, NBD_MAX_PAYLOAD + 1, &err), NBD_V_FATAL);
	assert_int_equal(verdict(0, NBD_CMD_WRITE, 0, UINT32_MAX, &err), NBD_V_FATAL);
}

static void test_request_unknown(void **state)
{
	uint32_t err;

	(void)state;
	assert_int_equal(verdict(0, 5 /* CACHE: not offered */, 0, 4096, &err), NBD_V_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	assert_int_equal(verdict(0, 7 /* BLOCK_STATUS */, 0, 4096, &err), NBD_V_ERROR);
	assert_int_equal(verdict(0, 0xffff, 0, 0, &err), NBD_V_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	/* flags not valid for the command */
	assert_int_equal(verdict(NBD_CMD_FLAG_NO_HOLE, NBD_CMD_WRITE, 0, 512, &err), NBD_V_ERROR);
	assert_int_equal(err, NBD_EINVAL);
	assert_int_equal(verdict(1 << 2 /* DF */, NBD_CMD_READ, 0, 512, &err), NBD_V_ERROR);
	assert_int_equal(verdict(1 << 4 /* FAST_ZERO */, NBD_CMD_WRITE_ZEROES, 0, 512, &err),
			 NBD_V_ERROR);
	assert_int_equal(err, NBD_EINVAL);
}

static void make_opt(uint8_t b[NBD_OPT_HDR_LEN], uint32_t opt, uint32_t len)
{
	be64(b, NBD_MAGIC_OPT);
	be32(b + 8, opt);
	be32(b + 12, len);
}

static void test_option_decode(void **state)
{
	uint8_t b[NBD_OPT_HDR_LEN];
	struct nbd_option o;

	(void)state;
	make_opt(b, NBD_OPT_GO, 13);
	assert_int_equal(nbd_option_decode(b, sizeof(b), &o), 0);
	assert_int_equal(o.opt, NBD_OPT_GO);
	assert_int_equal(o.len, 13);
	make_opt(b, NBD_OPT_LIST, NBD_MAX_OPT_LEN);
	assert_int_equal(nbd_option_decode(b, sizeof(b), &o), 0);
	make_opt(b, NBD_OPT_LIST, NBD_MAX_OPT_LEN + 1);
	assert_int_equal(nbd_option_decode(b, sizeof(b), &o), -EMSGSIZE);
	make_opt(b, 0x12345678, UINT32_MAX);
	assert_int_equal(nbd_option_decode(b, sizeof(b), &o), -EMSGSIZE);
	make_opt(b, NBD_OPT_GO, 0);
	b[7] = 'X';
	assert_int_equal(nbd_option_decode(b, sizeof(b), &o), -EBADMSG);
	make_opt(b, NBD_OPT_GO, 0);
	assert_int_equal(nbd_option_decode(b, NBD_OPT_HDR_LEN - 1, &o), -EINVAL);
}

static void test_client_flags(void **state)
{
	(void)state;
	assert_int_equal(nbd_client_flags_check(0), 0);
	assert_int_equal(nbd_client_flags_check(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES), 0);
	assert_int_equal(nbd_client_flags_check(1U << 2), -EINVAL);
	assert_int_equal(nbd_client_flags_check(0x80000000U), -EINVAL);
}

/* Build NBD_OPT_GO data: name, then the info list. */
static uint32_t make_go(uint8_t *b, const char *name, const uint16_t *info, uint16_t n)
{
	uint32_t nl = (uint32_t)strlen(name), len;

	be32(b, nl);
	memcpy(b + 4, name, nl);
	be16(b + 4 + nl, n);
	for (uint16_t i = 0; i < n; i++)
		be16(b + 6 + nl + 2 * i, info[i]);
	len = 6 + nl + 2U * n;
	return len;
}

static void test_go_parse(void **state)
{
	uint16_t info[] = { NBD_INFO_NAME, NBD_INFO_BLOCK_SIZE };
	uint8_t b[128];
	struct nbd_go g;
	uint32_t len;

	(void)state;
	len = make_go(b, "vol0", info, 2);
	assert_int_equal(nbd_go_parse(b, len, &g), 0);
	assert_int_equal(g.name_len, 4);
	assert_memory_equal(g.name, "vol0", 4);
	assert_int_equal(g.n_info, 2);
	assert_true(nbd_go_wants(&g, NBD_INFO_BLOCK_SIZE));
	assert_true(nbd_go_wants(&g, NBD_INFO_NAME));
	assert_false(nbd_go_wants(&g, NBD_INFO_DESCRIPTION));

	len = make_go(b, "", NULL, 0);
	assert_int_equal(len, 6);
	assert_int_equal(nbd_go_parse(b, len, &g), 0);
	assert_int_equal(g.name_len, 0);
	assert_false(nbd_go_wants(&g, NBD_INFO_EXPORT));
}

static void test_go_malformed(void **state)
{
	uint16_t info[] = { NBD_INFO_BLOCK_SIZE };
	uint8_t b[128];
	struct nbd_go g;
	uint32_t len;

	(void)state;
	len = make_go(b, "vol0", info, 1);
	/* truncated anywhere */
	for (uint32_t n = 0; n < len; n++)
		assert_int_equal(nbd_go_parse(b, n, &g), -EINVAL);
	/* trailing garbage */
	assert_int_equal(nbd_go_parse(b, len + 1, &g), -EINVAL);
	/* name length beyond the data, including one that wraps */
	be32(b, 100);
	assert_int_equal(nbd_go_parse(b, len, &g), -EINVAL);
	be32(b, UINT32_MAX);
	assert_int_equal(nbd_go_parse(b, len, &g), -EINVAL);
	be32(b, UINT32_MAX - 5);
	assert_int_equal(nbd_go_parse(b, len, &g), -EINVAL);
	/* info count larger than what follows */
	len = make_go(b, "vol0", info, 1);
	be16(b + 8, 2);
	assert_int_equal(nbd_go_parse(b, len, &g), -EINVAL);
	be16(b + 8, 0xffff);
	assert_int_equal(nbd_go_parse(b, len, &g), -EINVAL);
}

static void test_errno_map(void **state)
{
	(void)state;
	assert_int_equal(nbd_errno(0), 0);
	assert_int_equal(nbd_errno(-EIO), NBD_EIO);
	assert_int_equal(nbd_errno(-EPERM), NBD_EPERM);
	assert_int_equal(nbd_errno(-ENOMEM), NBD_ENOMEM);
	assert_int_equal(nbd_errno(-EINVAL), NBD_EINVAL);
	assert_int_equal(nbd_errno(-ENOSPC), NBD_ENOSPC);
	assert_int_equal(nbd_errno(-EDQUOT), NBD_ENOSPC);
	assert_int_equal(nbd_errno(-EFBIG), NBD_ENOSPC);
	assert_int_equal(nbd_errno(-EOVERFLOW), NBD_EOVERFLOW);
	assert_int_equal(nbd_errno(-ESHUTDOWN), NBD_ESHUTDOWN);
	/* anything else is an I/O error */
	assert_int_equal(nbd_errno(-ETIMEDOUT), NBD_EIO);
	assert_int_equal(nbd_errno(-EBADF), NBD_EIO);
}

static void test_builders(void **state)
{
	static const uint8_t hs[] = { 'N', 'B', 'D', 'M', 'A', 'G', 'I', 'C',
				      'I', 'H', 'A', 'V', 'E', 'O', 'P', 'T', 0x00, 0x03 };
	static const uint8_t rep[] = { 0x00, 0x03, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9,
				       0, 0, 0, 7, 0x80, 0, 0, 6, 0, 0, 0, 5 };
	static const uint8_t simple[] = { 0x67, 0x44, 0x66, 0x98, 0, 0, 0, 22,
					  1, 2, 3, 4, 5, 6, 7, 8 };
	static const uint8_t exp[] = { 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x01, 0x6d };
	static const uint8_t bs[] = { 0, 3, 0, 0, 0, 1, 0, 0, 0x10, 0, 0x02, 0, 0, 0 };
	uint8_t b[NBD_EXPORT_NAME_REPLY_MAX];

	(void)state;
	assert_int_equal(nbd_build_handshake(b), sizeof(hs));
	assert_memory_equal(b, hs, sizeof(hs));
	assert_int_equal(nbd_build_opt_reply(b, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, 5), sizeof(rep));
	assert_memory_equal(b, rep, sizeof(rep));
	assert_int_equal(nbd_build_simple_reply(b, NBD_EINVAL, 0x0102030405060708ULL),
			 sizeof(simple));
	assert_memory_equal(b, simple, sizeof(simple));
	assert_int_equal(nbd_build_info_export(b, 256ULL << 20, NBD_EXPORT_FLAGS), sizeof(exp));
	assert_memory_equal(b, exp, sizeof(exp));
	assert_int_equal(nbd_build_info_block_size(b, NBD_MIN_BLOCK, NBD_PREF_BLOCK,
						   NBD_MAX_PAYLOAD), sizeof(bs));
	assert_memory_equal(b, bs, sizeof(bs));

	memset(b, 0xff, sizeof(b));
	assert_int_equal(nbd_build_export_name_reply(b, 1, NBD_EXPORT_FLAGS, true), 10);
	assert_int_equal(b[10], 0xff);
	assert_int_equal(nbd_build_export_name_reply(b, 1, NBD_EXPORT_FLAGS, false), 134);
	assert_int_equal(b[7], 1);
	for (int i = 10; i < 134; i++)
		assert_int_equal(b[i], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_decode),
		cmocka_unit_test(test_request_bad_magic),
		cmocka_unit_test(test_request_truncated),
		cmocka_unit_test(test_request_valid),
		cmocka_unit_test(test_request_zero_length),
		cmocka_unit_test(test_request_out_of_range),
		cmocka_unit_test(test_request_too_long),
		cmocka_unit_test(test_request_unknown),
		cmocka_unit_test(test_option_decode),
		cmocka_unit_test(test_client_flags),
		cmocka_unit_test(test_go_parse),
		cmocka_unit_test(test_go_malformed),
		cmocka_unit_test(test_errno_map),
		cmocka_unit_test(test_builders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
