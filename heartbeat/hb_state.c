/* hb_state.c - load and save the heartbeat's state file (see hb_state.h).
 *
 * File format (big-endian, 128 bytes):
 *   0  magic "IPMHBS01"   8 version u32 (1)   12 reserved u32 (0)
 *   16 boot u64           24 peer_boot u64    32 peer_timestamp_ms u64
 *   40 peer name (64, NUL-padded)             104 reserved (20 bytes of 0)
 *   124 crc32c of bytes 0..123
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "endian.h"
#include "fileio.h"
#include "hb_state.h"
#include "wire.h"

#define ST_MAGIC "IPMHBS01"
#define ST_VERSION 1
#define ST_CRC_OFF 124

void hb_state_encode(const struct hb_state *st, uint8_t buf[HB_STATE_LEN])
{
	uint8_t *p = buf;

	memset(buf, 0, HB_STATE_LEN);
	memcpy(p, ST_MAGIC, 8);
	p = be_put32(p + 8, ST_VERSION);
	p = be_put32(p, 0);
	p = be_put64(p, st->boot);
	p = be_put64(p, st->peer_boot);
	p = be_put64(p, st->peer_timestamp_ms);
	memcpy(p, st->peer, strnlen(st->peer, HB_NAME_LEN - 1));
	be_put32(buf + ST_CRC_OFF, crc32c(0, buf, ST_CRC_OFF));
}

int hb_state_decode(const uint8_t *buf, size_t len, const char *path, struct hb_state *st,
		    ipm_error *err)
{
	if (len != HB_STATE_LEN)
		return ipm_fail(err, -EINVAL, "%s: %zu bytes, a heartbeat state file has %d",
				path, len, HB_STATE_LEN);
	if (memcmp(buf, ST_MAGIC, 8) != 0)
		return ipm_fail(err, -EINVAL, "%s: not a heartbeat state file (bad magic)", path);
	if (be_get32(buf + ST_CRC_OFF) != crc32c(0, buf, ST_CRC_OFF))
		return ipm_fail(err, -EINVAL, "%s: checksum mismatch: the file is damaged", path);
	if (be_get32(buf + 8) != ST_VERSION)
		return ipm_fail(err, -EINVAL, "%s: version %u, this ipmirror reads %d", path,
				be_get32(buf + 8), ST_VERSION);
	if (!memchr(buf + 40, 0, HB_NAME_LEN))
		return ipm_fail(err, -EINVAL, "%s: unterminated peer name", path);
	*st = (struct hb_state){
		.boot = be_get64(buf + 16),
		.peer_boot = be_get64(buf + 24),
		.peer_timestamp_ms = be_get64(buf + 32),
	};
	memcpy(st->peer, buf + 40, HB_NAME_LEN);
	return 0;
}

int hb_state_load(const char *path, struct hb_state *st, ipm_error *err)
{
	/* one byte more: a longer file is damaged, not read in part */
	uint8_t b[HB_STATE_LEN + 1];
	ssize_t n;
	int fd;

	*st = (struct hb_state){ .boot = 0 };
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return ipm_fail(err, -errno, "%s: cannot open: %s", path, strerror(errno));
	n = pread_full(fd, b, sizeof(b), 0);
	close(fd);
	if (n < 0)
		return ipm_fail(err, (int)n, "%s: cannot read: %s", path, strerror((int)-n));
	return hb_state_decode(b, (size_t)n, path, st, err);
}

int hb_state_save(const char *path, const struct hb_state *st, ipm_error *err)
{
	uint8_t b[HB_STATE_LEN];
	char tmp[4200];

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return ipm_fail(err, -ENAMETOOLONG, "%s: path too long", path);
	hb_state_encode(st, b);
	/* O_EXCL temporary, fsync, rename, directory sync: never a torn file,
	 * never written through a planted link */
	return replace_file(path, tmp, b, HB_STATE_LEN, "heartbeat state", err);
}

uint64_t hb_state_next_boot(uint64_t last, int64_t realtime_s)
{
	uint64_t next = last + 1;

	if (realtime_s > 0 && (uint64_t)realtime_s > next)
		next = (uint64_t)realtime_s;
	return next;
}
