/* fuzz_journal.c - a LUN's journal file (engine/storage/journal.c) as it may be
 * found after a crash or damage: opened (the torn tail dropped, or refused
 * with a reason naming the file), every record iterated, one appended and
 * seen by a new iterator. */
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "fuzz.h"
#include "journal.h"
#include "wire.h"

#define LUN_SIZE (1u << 20)

static void iterate(struct journal *j, uint64_t *n)
{
	struct journal_iter *it;
	struct journal_rec rec;
	ipm_error err;
	int rc;

	*n = 0;
	if (journal_iter_open(j, &it, &err) < 0)
		return;
	while ((rc = journal_iter_next(it, &rec, &err)) == 1) {
		/* what the resync replays lies inside the LUN */
		if (rec.offset > LUN_SIZE || rec.length > LUN_SIZE - rec.offset)
			abort();
		if (rec.type == WIRE_WRITE && rec.length && !rec.data)
			abort();
		if (rec.type == WIRE_WRITE && rec.length)
			(void)crc32c(0, rec.data, rec.length); /* touch every byte */
		(*n)++;
	}
	journal_iter_close(it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[512];
	static const uint8_t payload[512];
	struct journal_rec rec = { .type = WIRE_WRITE, .offset = 4096, .length = 512,
				   .data = payload };
	struct journal *j;
	uint64_t dropped, before, after;
	ipm_error err;

	if (!path[0] && fuzz_path(path, sizeof(path), "vol0.journal") < 0)
		abort();
	if (fuzz_write_file(path, data, size) < 0)
		abort();
	err.msg[0] = '\0';
	if (journal_open(path, "vol0", LUN_SIZE, 64u << 20, &j, &dropped, &err) < 0) {
		if (!strstr(err.msg, path))
			abort();
		return 0;
	}
	iterate(j, &before);
	if (before != journal_records(j))
		abort();
	if (journal_append(j, &rec, &err) == 0) {
		iterate(j, &after);
		if (after != before + 1)
			abort();
	}
	journal_close(j);
	return 0;
}
