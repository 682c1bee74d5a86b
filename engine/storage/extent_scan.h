/* extent_scan.h - where a backing store holds data, and whether a buffer
 * holds anything but zeros: what the resync sends as a ZERO request (no
 * payload) instead of a copy (doc/generations.md, initial sync).
 *
 * No locks, no state: the caller decides what to do with the answer. */
#ifndef IPM_EXTENT_SCAN_H
#define IPM_EXTENT_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The hole that starts at off in fd (SEEK_DATA): returns the offset of the
 * first data at or after off, clipped to end; off itself when off holds
 * data; end when nothing after off holds data. A file system or device
 * that cannot tell (no SEEK_DATA: EINVAL, or a block device, which reports
 * everything as data) gives off: "data, read it". Never fails. */
uint64_t extent_hole_end(int fd, uint64_t off, uint64_t end);

/* The data that starts at off (SEEK_HOLE): the offset of the next hole at
 * or after off, clipped to end (end when none, or when it cannot tell). */
uint64_t extent_data_end(int fd, uint64_t off, uint64_t end);

/* True when every byte of buf[0..len) is zero (true for len 0). */
bool extent_all_zero(const void *buf, size_t len);

#endif
