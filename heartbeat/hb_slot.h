/* hb_slot.h - the storage-path heartbeat record and the status table kept
 * of the peer's records (layout: doc/heartbeat.md).
 *
 * Each node owns one 4 KiB slot of the heartbeat volume (slot index = its
 * position in the config). Pure encode/decode and table logic: every call
 * takes the time, so tests drive it with synthetic times.
 */
#ifndef IPM_HB_SLOT_H
#define IPM_HB_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "wire.h"

#define HBS_MAGIC 0x49504853u     /* "IPHS" */
#define HBS_VERSION 1
#define HBS_SLOT_LEN WIRE_HBSLOT_LEN
#define HBS_SLOTS WIRE_HBSLOT_MAX
#define HBS_NAME_LEN WIRE_NAME_LEN
#define HBS_CSUM_OFF (HBS_SLOT_LEN - 4)

struct hb_record {
	uint16_t slot;            /* the writer's slot index */
	char node[HBS_NAME_LEN];  /* identifier: the writer's node name */
	uint64_t boot_id;         /* random per writer process */
	uint64_t serial;          /* strictly increasing per boot id, from 1 */
	uint64_t time_ms;         /* writer's realtime clock, informational */
	uint32_t flags;           /* HBS_F_* */
};
#define HBS_F_RETIRED 1u          /* the writer's last record: it uninstalled the volume */

/* Fill a whole slot (HBS_SLOT_LEN bytes). 0, or -EINVAL when the name does
 * not fit or the slot index is out of range. */
int hb_record_encode(uint8_t *slot, const struct hb_record *r);
/* Checks, in order: an empty (all-zero) slot (-ENODATA), magic and version
 * (-EPROTO), CRC32C (-EBADMSG), slot index and name field (-EINVAL), and
 * when expect_node is not NULL, that the writer is that node in slot
 * expect_slot (-EACCES). err says why. */
int hb_record_decode(const uint8_t *slot, const char *expect_node, unsigned expect_slot,
		     struct hb_record *out, ipm_error *err);

/* The status table's entry for one peer. */
struct hb_status {
	bool heard;               /* any valid record since start */
	struct hb_record last;    /* serial, time, identifier of the last one */
	int64_t changed_ms;       /* local monotonic time the serial last advanced */
};

enum hb_update {
	HBS_ADVANCED,             /* new serial (or a new boot of the writer) */
	HBS_SAME,                 /* the record has not changed since */
	HBS_STALE,                /* an older serial of the same boot: ignored */
};

/* Take a record read at now (monotonic ms). */
enum hb_update hb_status_update(struct hb_status *s, const struct hb_record *r, int64_t now);
/* ms since the serial last advanced; -1 when never heard. */
int64_t hb_status_age_ms(const struct hb_status *s, int64_t now);

#endif
