/* fuzz_generation.c - a LUN's generation file (engine/generation.c) as it
 * may be found on disk. The first byte says whether the harness fixes the
 * CRC first (to reach the fields behind it). What loads must save and load
 * back equal, and compare as GEN_SAME with itself. */
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "fuzz.h"
#include "endian.h"
#include "generation.h"
#include "wire.h"

#define GEN_FILE_LEN 128   /* engine/generation.c */
#define GEN_CRC_OFF 124

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[512], path2[512];
	struct generation g, g2;
	uint8_t buf[GEN_FILE_LEN];
	ipm_error err;

	if (!size)
		return 0;
	if (!path[0] && (fuzz_path(path, sizeof(path), "vol0.gen") < 0 ||
			 fuzz_path(path2, sizeof(path2), "copy.gen") < 0))
		abort();
	if (data[0] & 1 && size - 1 >= GEN_FILE_LEN) {
		memcpy(buf, data + 1, GEN_FILE_LEN);
		be_put32(buf + GEN_CRC_OFF, crc32c(0, buf, GEN_CRC_OFF));
		if (fuzz_write_file(path, buf, GEN_FILE_LEN) < 0)
			abort();
	} else if (fuzz_write_file(path, data + 1, size - 1) < 0) {
		abort();
	}
	err.msg[0] = '\0';
	if (gen_load(path, &g, &err) != 0) {
		/* refused with a reason that names the file */
		if (!strstr(err.msg, path))
			abort();
		return 0;
	}
	if (g.n_history > GEN_HISTORY)
		abort();
	if (gen_compare(&g, g.current, g.history, g.n_history) != GEN_SAME)
		abort();
	(void)gen_relation_name(gen_compare(&g, ~g.current, NULL, 0));
	if (gen_save(path2, &g, &err) < 0 || gen_load(path2, &g2, &err) < 0)
		abort();
	if (g2.current != g.current || g2.n_history != g.n_history ||
	    memcmp(g2.history, g.history, sizeof(g.history[0]) * g.n_history) ||
	    g2.shared != g.shared || g2.splitbrain != g.splitbrain || g2.discard != g.discard ||
	    g2.was_primary != g.was_primary || g2.consistent != g.consistent ||
	    g2.invalid != g.invalid || g2.never_synced != g.never_synced ||
	    g2.fill_asked != g.fill_asked || g2.peer_invalid != g.peer_invalid)
		abort();
	{
		enum gen_relation rel;
		unsigned v = gen_verdict(&g, ~g.current, g.history, g.n_history, &rel);

		/* a verdict is FULL or SPLITBRAIN or nothing, never both */
		if (v & ~(unsigned)(WIRE_LV_FULL | WIRE_LV_SPLITBRAIN) ||
		    v == (WIRE_LV_FULL | WIRE_LV_SPLITBRAIN))
			abort();
	}
	gen_rotate(&g2);
	return 0;
}
