/* extent_scan.c - holes (SEEK_DATA/SEEK_HOLE) and all-zero buffers, for the
 * resync's zero detection (extent_scan.h). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "extent_scan.h"

uint64_t extent_hole_end(int fd, uint64_t off, uint64_t end)
{
	off_t d;

	if (off >= end)
		return end;
	d = lseek(fd, (off_t)off, SEEK_DATA);
	if (d < 0)
		/* ENXIO: no data from off to the end of the file */
		return errno == ENXIO ? end : off;
	return (uint64_t)d < end ? (uint64_t)d : end;
}

uint64_t extent_data_end(int fd, uint64_t off, uint64_t end)
{
	off_t h;

	if (off >= end)
		return end;
	h = lseek(fd, (off_t)off, SEEK_HOLE);
	if (h < 0 || (uint64_t)h > end)
		return end;
	/* SEEK_HOLE at a hole returns off itself: that is a hole, not data */
	return (uint64_t)h;
}

bool extent_all_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	static const unsigned char zeros[4096];
	size_t n;

	/* the first bytes alone settle most buffers that hold data */
	while (len && ((uintptr_t)p & 7)) {
		if (*p++)
			return false;
		len--;
	}
	while (len) {
		n = len < sizeof(zeros) ? len : sizeof(zeros);
		if (memcmp(p, zeros, n) != 0)
			return false;
		p += n;
		len -= n;
	}
	return true;
}
