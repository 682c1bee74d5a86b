/* crc32c.c - CRC32C (Castagnoli) of mirrored payloads.
 *
 * Reflected polynomial 0x82F63B78, init and final xor ~0, so that
 * crc32c(0, "123456789", 9) == 0xE3069283 and crc32c(crc32c(0, a), b) is the
 * checksum of a followed by b. Uses the SSE4.2 crc32 instruction when the CPU
 * has it, else a slicing-by-8 table.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include "crc32c.h"

#define CRC32C_POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	uint32_t c;
	int i, j, k;

	for (i = 0; i < 256; i++) {
		c = (uint32_t)i;
		for (j = 0; j < 8; j++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
		table[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (k = 1; k < 8; k++)
			table[k][i] = (table[k - 1][i] >> 8) ^ table[0][table[k - 1][i] & 0xff];
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t c = ~crc;
	uint64_t w;

	pthread_once(&table_once, table_init);
	while (len && ((uintptr_t)p & 7)) {
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
		len--;
	}
	/* the table layout assumes little-endian words */
	while (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && len >= 8) {
		memcpy(&w, p, 8);
		w ^= c;
		c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^
		    table[5][(w >> 16) & 0xff] ^ table[4][(w >> 24) & 0xff] ^
		    table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
		    table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
	return ~c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

/* The crc32 instruction has a latency of 3 cycles but issues one per
 * cycle: one chain of it runs at a third of the speed the CPU could give.
 * Large buffers are cut into three blocks whose CRCs run side by side and
 * are then joined: shifting a CRC register over n zero bytes is linear in
 * its 32 bits, so a table per byte of the register does it (Mark Adler's
 * method; a 1 MiB payload costs about a third as much). */
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

static uint32_t shift_long[4][256], shift_short[4][256];
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

/* The register after n zero bytes, from register c (no inversions). */
static uint32_t zeros_sw(uint32_t c, size_t n)
{
	while (n--)
		c = (c >> 8) ^ table[0][c & 0xff];
	return c;
}

static void shift_table(uint32_t t[4][256], size_t n)
{
	uint32_t bit[32];
	int b, k, v;

	for (b = 0; b < 32; b++)
		bit[b] = zeros_sw(1u << b, n);
	for (k = 0; k < 4; k++) {
		for (v = 0; v < 256; v++) {
			uint32_t r = 0;

			for (b = 0; b < 8; b++)
				if (v & (1 << b))
					r ^= bit[8 * k + b];
			t[k][v] = r;
		}
	}
}

static void shift_init(void)
{
	pthread_once(&table_once, table_init);
	shift_table(shift_long, LONG_BLOCK);
	shift_table(shift_short, SHORT_BLOCK);
}

static uint32_t shift(uint32_t t[4][256], uint32_t c)
{
	return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

/* Whole blocks of 3 x block bytes, three chains at once. */
__attribute__((target("sse4.2")))
static uint64_t crc_3way(uint64_t c0, const uint8_t **pp, size_t *lenp, size_t block,
			 uint32_t t[4][256])
{
	const uint8_t *p = *pp;
	size_t len = *lenp;

	while (len >= 3 * block) {
		uint64_t c1 = 0, c2 = 0, w0, w1, w2;
		const uint8_t *end = p + block;

		do {
			memcpy(&w0, p, 8);
			memcpy(&w1, p + block, 8);
			memcpy(&w2, p + 2 * block, 8);
			c0 = _mm_crc32_u64(c0, w0);
			c1 = _mm_crc32_u64(c1, w1);
			c2 = _mm_crc32_u64(c2, w2);
			p += 8;
		} while (p < end);
		c0 = shift(t, (uint32_t)c0) ^ c1;
		c0 = shift(t, (uint32_t)c0) ^ c2;
		p += 2 * block;
		len -= 3 * block;
	}
	*pp = p;
	*lenp = len;
	return c0;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc;
	uint64_t w;

	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	if (len >= 3 * SHORT_BLOCK) {
		pthread_once(&shift_once, shift_init);
		c = crc_3way(c, &p, &len, LONG_BLOCK, shift_long);
		c = crc_3way(c, &p, &len, SHORT_BLOCK, shift_short);
	}
	while (len >= 8) {
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

bool crc32c_hw_available(void)
{
	return __builtin_cpu_supports("sse4.2");
}

uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	return crc32c_sse42(crc, buf, len);
}
#else
bool crc32c_hw_available(void)
{
	return false;
}

uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	return crc32c_sw(crc, buf, len);
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	/* a load and a bit test: cheap enough to ask every time */
	return crc32c_hw_available() ? crc32c_hw(crc, buf, len) : crc32c_sw(crc, buf, len);
}
