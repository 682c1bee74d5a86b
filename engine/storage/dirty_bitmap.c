/* dirty_bitmap.c - the persistent dirty-extent bitmap; format in doc/journal.md.
 *
 * The file is a 4 KiB header and then 4 KiB blocks, each with its own CRC32C,
 * so a block torn by a crash is recognised and taken as all dirty rather
 * than trusted. In memory there are two copies: `bits` (what the resync still
 * has to copy) and `disk` (what the file holds); a sync writes disk |= bits,
 * so a clear becomes durable only through dirty_bitmap_clear_all() or
 * dirty_bitmap_commit() (a checkpoint of a full copy: the caller knows the
 * peer holds what was cleared, durably).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <qb/qblog.h>

#include "crc32c.h"
#include "dirty_bitmap.h"
#include "endian.h"
#include "fileio.h"

#define BH_MAGIC "IPMDBMP1"
#define BH_VERSION 1
#define BH_LEN 4096            /* header block */
#define BH_CRC_OFF 60
#define BLK_LEN 4096
#define BLK_WORDS 511          /* 64-bit words of bits per block, after crc + index */

struct dirty_bitmap {
	int fd;
	char *path;
	uint64_t lun_size;
	uint32_t extent;
	uint64_t nbits;              /* extents */
	uint64_t nblocks;
	uint64_t *bits;              /* nblocks * BLK_WORDS words, wanted state */
	uint64_t *disk;              /* what the file holds */
	uint8_t *changed;            /* per block: bits has something disk lacks */
	uint64_t dirty;              /* set bits in `bits` */
	uint64_t tag;                /* the fill the file is the to-do list of (0: none) */
};

/* ---- bit ranges ---------------------------------------------------------- */

/* Set or clear extents first..last (inclusive, < nbits). */
static void set_range(struct dirty_bitmap *b, uint64_t first, uint64_t last, bool on)
{
	uint64_t i = first, w, n, mask, old, new;

	while (i <= last) {
		w = i / 64;
		n = 64 - i % 64;
		if (n > last - i + 1)
			n = last - i + 1;
		mask = (n == 64 ? ~0ull : (1ull << n) - 1) << (i % 64);
		old = b->bits[w];
		new = on ? old | mask : old & ~mask;
		if (new != old) {
			b->dirty = b->dirty + (uint64_t)__builtin_popcountll(new) -
				   (uint64_t)__builtin_popcountll(old);
			b->bits[w] = new;
			if (new & ~b->disk[w])
				b->changed[w / BLK_WORDS] = 1;
		}
		i += n;
	}
}

/* Extents touched by [off, off+len), clipped to the LUN. false: none. */
static bool extents_of(const struct dirty_bitmap *b, uint64_t off, uint64_t len,
		       uint64_t *first, uint64_t *last)
{
	uint64_t end;

	if (!len || off >= b->lun_size)
		return false;
	end = len > b->lun_size - off ? b->lun_size : off + len;
	*first = off / b->extent;
	*last = (end - 1) / b->extent;
	return true;
}

static bool bit_at(const struct dirty_bitmap *b, uint64_t i)
{
	return b->bits[i / 64] >> (i % 64) & 1;
}

/* First set bit >= i, or nbits. */
static uint64_t next_set(const struct dirty_bitmap *b, uint64_t i)
{
	uint64_t w, v;

	while (i < b->nbits) {
		w = i / 64;
		v = b->bits[w] & (~0ull << (i % 64));
		if (v)
			return w * 64 + (uint64_t)__builtin_ctzll(v);
		i = (w + 1) * 64;
	}
	return b->nbits;
}

/* ---- file layout ----------------------------------------------------------- */

static void header_encode(const struct dirty_bitmap *b, uint8_t h[BH_LEN])
{
	memset(h, 0, BH_LEN);
	memcpy(h, BH_MAGIC, 8);
	le_put32(h + 8, BH_VERSION);
	le_put32(h + 12, BH_LEN);
	le_put32(h + 16, BLK_LEN);
	le_put32(h + 20, b->extent);
	le_put64(h + 24, b->lun_size);
	le_put64(h + 32, b->nbits);
	le_put64(h + 40, b->tag);
	le_put32(h + BH_CRC_OFF, crc32c(0, h, BH_CRC_OFF));
}

/* Block k: crc32c of the rest, block index, then BLK_WORDS words of bits
 * (bit i of the LUN is bit i%8 of byte i/8 of the bit area). */
static void block_encode(const uint64_t *words, uint64_t k, uint8_t blk[BLK_LEN])
{
	unsigned i;

	le_put32(blk + 4, (uint32_t)k);
	for (i = 0; i < BLK_WORDS; i++)
		le_put64(blk + 8 + i * 8, words[k * BLK_WORDS + i]);
	le_put32(blk, crc32c(0, blk + 4, BLK_LEN - 4));
}

static bool block_decode(const uint8_t blk[BLK_LEN], uint64_t k, uint64_t *words)
{
	unsigned i;

	if (le_get32(blk) != crc32c(0, blk + 4, BLK_LEN - 4) || le_get32(blk + 4) != (uint32_t)k)
		return false;
	for (i = 0; i < BLK_WORDS; i++)
		words[k * BLK_WORDS + i] = le_get64(blk + 8 + i * 8);
	return true;
}

static uint64_t block_off(uint64_t k)
{
	return BH_LEN + k * BLK_LEN;
}

/* Write the header and every block from `disk`, then fdatasync. */
static int write_all(struct dirty_bitmap *b, const uint64_t *words, ipm_error *err)
{
	uint8_t *buf = malloc(BH_LEN);
	uint64_t k;
	int rc;

	if (!buf)
		return ipm_fail(err, -ENOMEM, "out of memory");
	header_encode(b, buf);
	rc = pwrite_full(b->fd, buf, BH_LEN, 0);
	for (k = 0; rc == 0 && k < b->nblocks; k++) {
		block_encode(words, k, buf);
		rc = pwrite_full(b->fd, buf, BLK_LEN, block_off(k));
	}
	if (rc == 0 && fdatasync(b->fd) < 0)
		rc = -errno;
	free(buf);
	if (rc < 0)
		return ipm_fail(err, rc, "dirty bitmap %s: cannot write: %s", b->path, strerror(-rc));
	return 0;
}

static int header_check(struct dirty_bitmap *b, uint64_t *file_size, ipm_error *err)
{
	uint8_t h[BH_LEN];
	ssize_t n = pread_full(b->fd, h, BH_LEN, 0);
	uint64_t size, nbits;
	uint32_t extent;

	if (n < 0)
		return ipm_fail(err, (int)n, "dirty bitmap %s: cannot read: %s", b->path,
			    strerror((int)-n));
	if (n < 8 || memcmp(h, BH_MAGIC, 8) != 0)
		return ipm_fail(err, -EINVAL, "%s is not an ipmirror dirty bitmap (bad magic); refusing to use or overwrite it",
			    b->path);
	if (le_get32(h + 8) != BH_VERSION)
		return ipm_fail(err, -EINVAL, "dirty bitmap %s has format version %u; this ipmirror reads version %u",
			    b->path, le_get32(h + 8), BH_VERSION);
	if (n < BH_LEN || le_get32(h + BH_CRC_OFF) != crc32c(0, h, BH_CRC_OFF))
		return ipm_fail(err, -EUCLEAN, "dirty bitmap %s: header is corrupt (%s); the extents it tracks are unknown - resync the LUN in full, then remove the file",
			    b->path, n < BH_LEN ? "truncated" : "checksum mismatch");
	size = le_get64(h + 24);
	extent = le_get32(h + 20);
	nbits = le_get64(h + 32);
	if (le_get32(h + 12) != BH_LEN || le_get32(h + 16) != BLK_LEN || !extent ||
	    nbits != (size + extent - 1) / extent)
		return ipm_fail(err, -EUCLEAN, "dirty bitmap %s: header is corrupt (inconsistent layout)",
			    b->path);
	/* a LUN grown since (doc/resize.md): the caller grows the file */
	if (size > b->lun_size || extent != b->extent)
		return ipm_fail(err, -EINVAL, "dirty bitmap %s was written for a LUN of %llu bytes in %u-byte extents, not %llu bytes in %u-byte extents",
			    b->path, (unsigned long long)size, extent,
			    (unsigned long long)b->lun_size, b->extent);
	*file_size = size;
	b->tag = le_get64(h + 40);
	return 0;
}

/* Load the blocks; one that cannot be read back intact is all dirty. */
static int load(struct dirty_bitmap *b, ipm_error *err)
{
	uint8_t *blk = malloc(BLK_LEN);
	uint64_t k, w, bad = 0;
	ssize_t n;

	if (!blk)
		return ipm_fail(err, -ENOMEM, "out of memory");
	for (k = 0; k < b->nblocks; k++) {
		n = pread_full(b->fd, blk, BLK_LEN, block_off(k));
		if (n < 0) {
			free(blk);
			return ipm_fail(err, (int)n, "dirty bitmap %s: cannot read: %s", b->path,
				    strerror((int)-n));
		}
		if (n == BLK_LEN && block_decode(blk, k, b->disk))
			continue;
		bad++;
		for (w = k * BLK_WORDS; w < (k + 1) * BLK_WORDS; w++)
			b->disk[w] = ~0ull;
		b->changed[k] = 1;	/* rewrite it intact at the next sync */
	}
	free(blk);
	/* bits past the LUN mean nothing */
	for (w = 0; w < b->nblocks * BLK_WORDS; w++) {
		if (w * 64 >= b->nbits)
			b->disk[w] = 0;
		else if (b->nbits - w * 64 < 64)
			b->disk[w] &= (1ull << (b->nbits - w * 64)) - 1;
		b->bits[w] = b->disk[w];
		b->dirty += (uint64_t)__builtin_popcountll(b->bits[w]);
	}
	if (bad)
		qb_log(LOG_WARNING, "dirty bitmap %s: %llu of %llu block(s) unreadable or corrupt; every extent they cover is taken as dirty and will be copied by the resync",
		       b->path, (unsigned long long)bad, (unsigned long long)b->nblocks);
	return 0;
}

/* The file was written for a smaller LUN (grown since, doc/resize.md):
 * load its extents, mark the new ones (the whole extent the old end was
 * in, on) when dirty_new, and rewrite it in the new size. A crash in the
 * middle leaves a header of the new size over blocks that are short or
 * stale: those are taken as dirty at the next open. */
static int grow(struct dirty_bitmap *b, uint64_t old_size, bool dirty_new, ipm_error *err)
{
	uint64_t nbits = b->nbits, nblocks = b->nblocks, w;
	int rc;

	b->nbits = old_size / b->extent + (old_size % b->extent != 0);
	b->nblocks = (b->nbits + BLK_WORDS * 64 - 1) / (BLK_WORDS * 64);
	rc = load(b, err);
	b->nbits = nbits;
	b->nblocks = nblocks;
	if (rc < 0)
		return rc;
	if (dirty_new && nbits > old_size / b->extent)
		set_range(b, old_size / b->extent, nbits - 1, true);
	for (w = 0; w < nblocks * BLK_WORDS; w++)
		b->disk[w] = b->bits[w];
	memset(b->changed, 0, nblocks ? nblocks : 1);
	qb_log(LOG_NOTICE, "dirty bitmap %s: grown from a LUN of %llu bytes to %llu%s", b->path,
	       (unsigned long long)old_size, (unsigned long long)b->lun_size,
	       dirty_new ? ", the new extents dirty" : "");
	return write_all(b, b->disk, err);
}

/* ---- public ------------------------------------------------------------------ */

static int alloc(struct dirty_bitmap *b, const char *path, uint64_t lun_size, uint32_t extent)
{
	size_t words;

	b->fd = -1;
	b->path = strdup(path);
	b->lun_size = lun_size;
	b->extent = extent;
	b->nbits = lun_size / extent + (lun_size % extent != 0);
	b->nblocks = (b->nbits + BLK_WORDS * 64 - 1) / (BLK_WORDS * 64);
	words = (size_t)b->nblocks * BLK_WORDS;
	b->bits = calloc(words ? words : 1, sizeof(uint64_t));
	b->disk = calloc(words ? words : 1, sizeof(uint64_t));
	b->changed = calloc(b->nblocks ? b->nblocks : 1, 1);
	return b->path && b->bits && b->disk && b->changed ? 0 : -ENOMEM;
}

static int open_grow(const char *path, uint64_t lun_size, uint32_t extent, bool dirty_new,
		     struct dirty_bitmap **out, ipm_error *err)
{
	uint64_t file_size = 0;
	struct dirty_bitmap *b;
	bool created = false;
	struct stat st;
	int rc;

	*out = NULL;
	if (!extent)
		return ipm_fail(err, -EINVAL, "dirty bitmap %s: extent size 0", path);
	b = calloc(1, sizeof(*b));
	if (!b)
		return ipm_fail(err, -ENOMEM, "out of memory");
	rc = alloc(b, path, lun_size, extent);
	if (rc < 0) {
		rc = ipm_fail(err, rc, "out of memory");
		goto out;
	}
	b->fd = open_own_file(path, O_RDWR | O_CREAT, "dirty bitmap", &created, err);
	if (b->fd < 0) {
		rc = b->fd;
		goto out;
	}
	if (flock(b->fd, LOCK_EX | LOCK_NB) < 0) {
		rc = ipm_fail(err, errno == EWOULDBLOCK ? -EBUSY : -errno,
			  "dirty bitmap %s is in use by another process (%s)", path, strerror(errno));
		goto out;
	}
	if (fstat(b->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = ipm_fail(err, -EINVAL, "dirty bitmap %s is not a regular file", path);
		goto out;
	}
	/* empty: ours, or a crash came before the first write */
	if (created || st.st_size == 0) {
		rc = write_all(b, b->disk, err);
		if (rc == 0 && (rc = fsync_dir_of(path)) < 0)
			ipm_fail(err, rc, "dirty bitmap %s: cannot sync its directory: %s", path,
			     strerror(-rc));
		goto out;
	}
	rc = header_check(b, &file_size, err);
	if (rc == 0 && file_size < lun_size)
		rc = grow(b, file_size, dirty_new, err);
	else if (rc == 0)
		rc = load(b, err);
out:
	if (rc < 0) {
		dirty_bitmap_close(b);
		return rc;
	}
	*out = b;
	return 0;
}

int dirty_bitmap_open(const char *path, uint64_t lun_size, uint32_t extent,
		      struct dirty_bitmap **out, ipm_error *err)
{
	return open_grow(path, lun_size, extent, true, out, err);
}

/* The extent size a bitmap file was written with: 0 and *extent, -ENOENT
 * when there is no file, or another -errno with err set. */
static int file_extent(const char *path, uint32_t *extent, ipm_error *err)
{
	uint8_t h[BH_LEN];
	ssize_t n;
	int fd = open_own_file(path, O_RDONLY, "dirty bitmap", NULL, err);

	if (fd == -ENOENT)
		return -ENOENT;
	if (fd < 0)
		return fd;
	n = pread_full(fd, h, BH_LEN, 0);
	close(fd);
	if (n == 0)
		return -ENOENT;  /* a crash before its first write: made at open */
	if (n < BH_LEN || memcmp(h, BH_MAGIC, 8) != 0 || !le_get32(h + 20))
		return ipm_fail(err, -EUCLEAN, "dirty bitmap %s: header is corrupt", path);
	*extent = le_get32(h + 20);
	return 0;
}

int dirty_bitmap_grow_file(const char *path, uint64_t lun_size, bool dirty_new, ipm_error *err)
{
	struct dirty_bitmap *b;
	uint32_t extent;
	int rc = file_extent(path, &extent, err);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	rc = open_grow(path, lun_size, extent, dirty_new, &b, err);
	if (rc == 0)
		dirty_bitmap_close(b);
	return rc;
}

void dirty_bitmap_close(struct dirty_bitmap *b)
{
	if (!b)
		return;
	if (b->fd >= 0)
		close(b->fd);
	free(b->path);
	free(b->bits);
	free(b->disk);
	free(b->changed);
	free(b);
}

int dirty_bitmap_mark(struct dirty_bitmap *b, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (extents_of(b, off, len, &first, &last))
		set_range(b, first, last, true);
	return 0;
}

void dirty_bitmap_clear_range(struct dirty_bitmap *b, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (extents_of(b, off, len, &first, &last))
		set_range(b, first, last, false);
}

int dirty_bitmap_sync(struct dirty_bitmap *b, ipm_error *err)
{
	uint8_t *blk = NULL;
	uint64_t k, w;
	bool any = false;
	int rc = 0;

	for (k = 0; k < b->nblocks && rc == 0; k++) {
		if (!b->changed[k])
			continue;
		if (!blk && !(blk = malloc(BLK_LEN)))
			return ipm_fail(err, -ENOMEM, "out of memory");
		for (w = k * BLK_WORDS; w < (k + 1) * BLK_WORDS; w++)
			b->disk[w] |= b->bits[w];
		block_encode(b->disk, k, blk);
		rc = pwrite_full(b->fd, blk, BLK_LEN, block_off(k));
		any = true;
	}
	free(blk);
	if (rc == 0 && any && fdatasync(b->fd) < 0)
		rc = -errno;
	if (rc < 0)
		return ipm_fail(err, rc, "dirty bitmap %s: cannot write: %s", b->path, strerror(-rc));
	/* only now: a failed sync is retried in full by the next one */
	memset(b->changed, 0, b->nblocks);
	return 0;
}

bool dirty_bitmap_next(struct dirty_bitmap *b, uint64_t from, uint64_t *off, uint64_t *len)
{
	uint64_t i, n, cap = DIRTY_RUN_MAX / b->extent;

	if (from >= b->lun_size)
		return false;
	i = next_set(b, from / b->extent + (from % b->extent != 0));
	if (i >= b->nbits)
		return false;
	if (!cap)
		cap = 1;
	for (n = 1; n < cap && i + n < b->nbits && bit_at(b, i + n); n++)
		;
	*off = i * b->extent;
	*len = n * b->extent;
	if (*len > b->lun_size - *off)
		*len = b->lun_size - *off;
	return true;
}

uint64_t dirty_bitmap_dirty_bytes(const struct dirty_bitmap *b)
{
	uint64_t bytes = b->dirty * b->extent;

	/* the last extent may stick out past the LUN */
	if (b->nbits && bit_at(b, b->nbits - 1))
		bytes -= b->nbits * b->extent - b->lun_size;
	return bytes;
}

int dirty_bitmap_clear_all(struct dirty_bitmap *b, ipm_error *err)
{
	uint64_t *zero;
	size_t words = (size_t)b->nblocks * BLK_WORDS;
	int rc;

	memset(b->bits, 0, words * sizeof(uint64_t));
	b->dirty = 0;
	b->tag = 0;	/* the header goes first: no tag over stale blocks */
	zero = calloc(words ? words : 1, sizeof(uint64_t));
	if (!zero)
		return ipm_fail(err, -ENOMEM, "out of memory");
	rc = write_all(b, zero, err);
	free(zero);
	if (rc < 0)
		return rc;
	memset(b->disk, 0, words * sizeof(uint64_t));
	memset(b->changed, 0, b->nblocks);
	return 0;
}

uint64_t dirty_bitmap_tag(const struct dirty_bitmap *b)
{
	return b->tag;
}

int dirty_bitmap_set_tag(struct dirty_bitmap *b, uint64_t tag, ipm_error *err)
{
	uint8_t *h;
	int rc;

	if (b->tag == tag)
		return 0;
	h = malloc(BH_LEN);
	if (!h)
		return ipm_fail(err, -ENOMEM, "out of memory");
	b->tag = tag;
	header_encode(b, h);
	rc = pwrite_full(b->fd, h, BH_LEN, 0);
	if (rc == 0 && fdatasync(b->fd) < 0)
		rc = -errno;
	free(h);
	if (rc < 0)
		return ipm_fail(err, rc, "dirty bitmap %s: cannot write: %s", b->path, strerror(-rc));
	return 0;
}

/* The blocks whose file content differs from what is marked now are
 * rewritten as marked: the clears since the last commit become durable. */
int dirty_bitmap_commit(struct dirty_bitmap *b, ipm_error *err)
{
	uint8_t *blk = NULL;
	uint64_t k, w;
	bool any = false;
	int rc = 0;

	for (k = 0; k < b->nblocks && rc == 0; k++) {
		uint64_t first = k * BLK_WORDS, n = BLK_WORDS;

		if (!b->changed[k] && !memcmp(b->disk + first, b->bits + first, n * sizeof(uint64_t)))
			continue;
		if (!blk && !(blk = malloc(BLK_LEN)))
			return ipm_fail(err, -ENOMEM, "out of memory");
		for (w = first; w < first + n; w++)
			b->disk[w] = b->bits[w];
		block_encode(b->disk, k, blk);
		rc = pwrite_full(b->fd, blk, BLK_LEN, block_off(k));
		any = true;
	}
	free(blk);
	if (rc == 0 && any && fdatasync(b->fd) < 0)
		rc = -errno;
	if (rc < 0) {
		/* what the file holds now is unknown: every block again next time */
		memset(b->changed, 1, b->nblocks);
		return ipm_fail(err, rc, "dirty bitmap %s: cannot write: %s", b->path, strerror(-rc));
	}
	memset(b->changed, 0, b->nblocks);
	return 0;
}

void dirty_bitmap_restore(struct dirty_bitmap *b)
{
	uint64_t w, old;

	for (w = 0; w < b->nblocks * BLK_WORDS; w++) {
		old = b->bits[w];
		b->bits[w] |= b->disk[w];
		b->dirty += (uint64_t)__builtin_popcountll(b->bits[w]) -
			    (uint64_t)__builtin_popcountll(old);
	}
}
