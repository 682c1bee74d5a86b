/* test_crc32c.c - CRC32C (common/crc32c.c): known vectors, incremental use,
 * the hardware and table paths agreeing, large buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "crc32c.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_crc32c_incremental),
		cmocka_unit_test(test_crc32c_paths_agree),
		cmocka_unit_test(test_crc32c_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
