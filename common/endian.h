/* endian.h - fixed-width fields in byte buffers: big-endian (be_*) for the
 * network formats (mirror frames, heartbeat datagrams, NBD), little-endian
 * (le_*) for the on-disk formats (journal, bitmaps). Each put returns the
 * position after the field. */
#ifndef IPM_ENDIAN_H
#define IPM_ENDIAN_H

#include <stdint.h>

static inline uint8_t *be_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static inline uint8_t *be_put32(uint8_t *p, uint32_t v)
{
	p = be_put16(p, (uint16_t)(v >> 16));
	return be_put16(p, (uint16_t)v);
}

static inline uint8_t *be_put64(uint8_t *p, uint64_t v)
{
	p = be_put32(p, (uint32_t)(v >> 32));
	return be_put32(p, (uint32_t)v);
}

static inline uint16_t be_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t be_get32(const uint8_t *p)
{
	return ((uint32_t)be_get16(p) << 16) | be_get16(p + 2);
}

static inline uint64_t be_get64(const uint8_t *p)
{
	return ((uint64_t)be_get32(p) << 32) | be_get32(p + 4);
}

static inline uint8_t *le_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	return p + 2;
}

static inline uint8_t *le_put32(uint8_t *p, uint32_t v)
{
	p = le_put16(p, (uint16_t)v);
	return le_put16(p, (uint16_t)(v >> 16));
}

static inline uint8_t *le_put64(uint8_t *p, uint64_t v)
{
	p = le_put32(p, (uint32_t)v);
	return le_put32(p, (uint32_t)(v >> 32));
}

static inline uint16_t le_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t le_get32(const uint8_t *p)
{
	return le_get16(p) | ((uint32_t)le_get16(p + 2) << 16);
}

static inline uint64_t le_get64(const uint8_t *p)
{
	return le_get32(p) | ((uint64_t)le_get32(p + 4) << 32);
}

#endif
