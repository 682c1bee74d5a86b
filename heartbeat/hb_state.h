/* hb_state.h - the heartbeat's persistent state of one node (layout:
 * doc/heartbeat.md): this node's boot counter, and the highest boot of the
 * peer accepted so far with the newest timestamp accepted of it. What the
 * replay check must remember across restarts of either node. */
#ifndef IPM_HB_STATE_H
#define IPM_HB_STATE_H

#include <stddef.h>
#include <stdint.h>
#include "ipmirror.h"
#include "hb_packet.h"

#define HB_STATE_LEN 128

struct hb_state {
	uint64_t boot;               /* this node's boot counter, last used */
	char peer[HB_NAME_LEN];      /* whose boot the next two fields are */
	uint64_t peer_boot;          /* highest accepted; 0: none */
	uint64_t peer_timestamp_ms;  /* newest accepted of peer_boot */
};

void hb_state_encode(const struct hb_state *st, uint8_t buf[HB_STATE_LEN]);
/* -EINVAL with err naming path and the damage. */
int hb_state_decode(const uint8_t *buf, size_t len, const char *path, struct hb_state *st,
		    ipm_error *err);
/* 0 with *st all zero when the file does not exist; -errno when it cannot
 * be read (a symlink is refused) or is damaged. */
int hb_state_load(const char *path, struct hb_state *st, ipm_error *err);
/* Crash-safe: a fresh PATH.tmp (never through a symlink), fsync, rename,
 * fsync of the directory. */
int hb_state_save(const char *path, const struct hb_state *st, ipm_error *err);
/* The boot counter of a new process: above the last one used, and not below
 * the realtime clock's seconds, so that it still moves forward when the file
 * was lost. */
uint64_t hb_state_next_boot(uint64_t last, int64_t realtime_s);

#endif
