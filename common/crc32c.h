/* crc32c.h - the Castagnoli CRC of payloads and records (crc32c.c). */
#ifndef IPM_CRC32C_H
#define IPM_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The two implementations behind crc32c(), for tests: the slicing-by-8
 * table, and the SSE4.2 instruction (call only when crc32c_hw_available();
 * on other architectures it is the table). */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);
bool crc32c_hw_available(void);

#endif
