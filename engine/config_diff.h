/* config_diff.h - what changed between two loads of the configuration file,
 * as one node sees it: each change either live (a reload applies it to the
 * running engine, engine/adjust.c) or one that needs a restart. Pure: no
 * engine, no I/O; tests/unit/test_config_diff.c. */
#ifndef IPM_CONFIG_DIFF_H
#define IPM_CONFIG_DIFF_H

#include "config.h"

enum cfg_change_kind {
	CHG_RESTART,       /* cannot change live: the reload is refused */
	CHG_LUN_ADD,       /* a LUN new in the file */
	CHG_LUN_REMOVE,    /* a LUN gone from the file */
	CHG_LUN_MODE,      /* <lun mode> sync <-> async */
	CHG_JOURNAL_MAX,   /* <journal max-size> */
	CHG_LUN_SIZE,      /* <lun size>: a grow (doc/resize.md); a shrink is refused */
	CHG_ASYNC_WINDOW,  /* <mirror async-window> */
	CHG_RESYNC_RATE,   /* <resync rate> */
	CHG_HB_TIMES,      /* <heartbeat interval timeout probation> */
	CHG_HB_METHOD,     /* <heartbeat method> */
	CHG_LOG,           /* <log level file> (the daemon applies it) */
};

struct cfg_change {
	enum cfg_change_kind kind;
	char lun[IPM_NAME_MAX]; /* per-LUN changes: its name; "" otherwise */
	int line;               /* where in the new file; 0: none (removed) */
	char text[320];         /* "lun \"vol0\": mode sync -> async" */
};

struct cfg_diff {
	struct cfg_change *v;
	unsigned n;
	unsigned n_restart;     /* of them CHG_RESTART */
};

/* The changes from old to cur (two loads of one file) that matter on node,
 * in file order. 0, or -ENOMEM (d is then empty). */
int cfg_diff(const ipm_config *old, const ipm_config *cur, const char *node,
	     struct cfg_diff *d);
void cfg_diff_free(struct cfg_diff *d);

/* Copy change c's value from cur into dst (a config with the same LUN
 * names, or a subset). 0, -ENOENT (LUN not in dst), -ENOMEM. Restarts,
 * additions and removals are not copied (-EINVAL). */
int cfg_change_apply(const struct cfg_change *c, ipm_config *dst, const ipm_config *cur);

#endif
