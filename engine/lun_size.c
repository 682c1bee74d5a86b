/* lun_size.c - a LUN's size beyond its config (doc/resize.md): the checks
 * of a grow (pure) and the small file a grow records beside the journal,
 * read at every open. A leaf: no calls into the engine. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "endian.h"
#include "fileio.h"
#include "lun_size.h"

#define SIZE_MAGIC "IPMSIZE1"
#define SIZE_FILE_LEN 20            /* magic, le64 size, le32 crc32c of both */
#define SIZE_MAX_LUN (256ull << 40) /* config.c's largest LUN */

int resize_check(const char *lun, uint64_t cur, uint64_t want, const char *path,
		 uint64_t backing, ipm_error *err)
{
	if (want == cur) {
		ipm_note(err, "lun \"%s\" has %llu bytes already", lun, (unsigned long long)cur);
		return 1;
	}
	if (want < cur)
		return ipm_fail(err, -EINVAL, "lun \"%s\": %llu bytes is smaller than its size, %llu: shrinking a LUN is not supported (the data past the new end would be lost; copy it to a smaller LUN instead)",
				lun, (unsigned long long)want, (unsigned long long)cur);
	if (want % 512)
		return ipm_fail(err, -EINVAL, "lun \"%s\": %llu bytes is not a multiple of 512",
				lun, (unsigned long long)want);
	if (want > SIZE_MAX_LUN)
		return ipm_fail(err, -EINVAL, "lun \"%s\": %llu bytes is past the largest LUN (256T)",
				lun, (unsigned long long)want);
	if (want > backing)
		return ipm_fail(err, -EFBIG, "lun \"%s\": backing %s is %llu bytes, smaller than %llu: grow it first (truncate -s, lvextend)",
				lun, path, (unsigned long long)backing, (unsigned long long)want);
	return 0;
}

static void size_path(const char *journal_path, char *out, size_t len)
{
	snprintf(out, len, "%s.size", journal_path);
}

int resize_recorded(const char *journal_path, uint64_t *size, ipm_error *err)
{
	uint8_t b[SIZE_FILE_LEN];
	char path[4300];
	ssize_t n;
	int fd;

	size_path(journal_path, path, sizeof(path));
	fd = open_own_file(path, O_RDONLY, "size file", NULL, err);
	if (fd < 0)
		return fd;
	n = pread_full(fd, b, sizeof(b), 0);
	close(fd);
	if (n < 0)
		return ipm_fail(err, (int)n, "size file %s: cannot read: %s", path, strerror((int)-n));
	if (n != SIZE_FILE_LEN || memcmp(b, SIZE_MAGIC, 8) != 0 ||
	    le_get32(b + 16) != crc32c(0, b, 16) || !le_get64(b + 8))
		return ipm_fail(err, -EUCLEAN, "size file %s is damaged: it holds the size an online grow gave the LUN; set size= in the config to the LUN's size and remove the file",
				path);
	*size = le_get64(b + 8);
	return 0;
}

int resize_record(const char *journal_path, uint64_t size, ipm_error *err)
{
	uint8_t b[SIZE_FILE_LEN];
	char path[4300], tmp[4310];

	memcpy(b, SIZE_MAGIC, 8);
	le_put64(b + 8, size);
	le_put32(b + 16, crc32c(0, b, 16));
	size_path(journal_path, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	return replace_file(path, tmp, b, sizeof(b), "size file", err);
}

int resize_unrecord(const char *journal_path, bool had, uint64_t prev, ipm_error *err)
{
	char path[4300];

	if (had)
		return resize_record(journal_path, prev, err);
	size_path(journal_path, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT)
		return ipm_fail(err, -errno, "size file %s: cannot remove it: %s", path,
				strerror(errno));
	return 0;
}
