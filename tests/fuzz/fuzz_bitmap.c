/* fuzz_bitmap.c - the dirty-extent bitmap file and the activity log (the
 * same file format, engine/storage/dirty_bitmap.c, with the resync's 1 MiB extents
 * or the activity log's 4 MiB ones) as they may be found on disk. The first
 * byte picks the geometry. Whatever opens must list its dirty runs inside
 * the LUN, keep a mark across a sync and a reopen, and clear. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "dirty_bitmap.h"

struct geometry {
	uint64_t lun_size;
	uint32_t extent;
};

static const struct geometry geometries[] = {
	{ 64ull << 20, 1u << 20 },         /* resync.c's BITMAP_EXTENT */
	{ (1ull << 30) + 4096, 4u << 20 }, /* activity_log.c's AL_EXTENT, a ragged end */
	{ 3u << 20, 1u << 20 },
};

static void runs(struct dirty_bitmap *b, const struct geometry *g)
{
	uint64_t from = 0, off, len, total = 0;

	while (dirty_bitmap_next(b, from, &off, &len)) {
		if (off < from || !len || len > DIRTY_RUN_MAX || off > g->lun_size ||
		    len > g->lun_size - off)
			abort();
		total += len;
		from = off + len;
	}
	if (total != dirty_bitmap_dirty_bytes(b))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[512];
	const struct geometry *g;
	struct dirty_bitmap *b;
	uint64_t off, len;
	ipm_error err;

	if (!size)
		return 0;
	if (!path[0] && fuzz_path(path, sizeof(path), "vol0.bitmap") < 0)
		abort();
	g = &geometries[data[0] % (sizeof(geometries) / sizeof(geometries[0]))];
	if (fuzz_write_file(path, data + 1, size - 1) < 0)
		abort();
	err.msg[0] = '\0';
	if (dirty_bitmap_open(path, g->lun_size, g->extent, &b, &err) < 0) {
		if (!strstr(err.msg, path))
			abort();
		return 0;
	}
	runs(b, g);
	dirty_bitmap_mark(b, g->lun_size - 1, 1);
	if (dirty_bitmap_sync(b, &err) < 0)
		abort();
	dirty_bitmap_close(b);
	/* the mark is on disk */
	if (dirty_bitmap_open(path, g->lun_size, g->extent, &b, &err) < 0)
		abort();
	if (!dirty_bitmap_next(b, (g->lun_size - 1) / g->extent * g->extent, &off, &len))
		abort();
	runs(b, g);
	if (dirty_bitmap_clear_all(b, &err) < 0 || dirty_bitmap_dirty_bytes(b))
		abort();
	dirty_bitmap_close(b);
	return 0;
}
