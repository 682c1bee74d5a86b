/* storage_hb.h - the storage-path heartbeat (doc/heartbeat.md).
 *
 * A small volume on each node holds one 4 KiB slot per node. A thread
 * writes this node's record {serial, time, identifier} into its own slot
 * every interval and hands the same slot to `send` (the engine ships it to
 * the peer over the mirror connections as an HBSLOT frame, where the peer's
 * storage_hb_apply writes it into its local copy). The thread also reads
 * the peer's slot from the local copy every 100 ms and keeps the status
 * table; each advance of the peer's serial is reported to the heartbeat.
 */
#ifndef IPM_STORAGE_HB_H
#define IPM_STORAGE_HB_H

#include <stdint.h>
#include "hb_slot.h"
#include "ipmirror.h"
#include "tls.h"

struct storage_hb;
struct heartbeat;

struct shb_params {
	const char *path;          /* file or block device */
	const char *self, *peer;   /* node names */
	unsigned self_slot, peer_slot;
	double interval;           /* seconds between our records */
	struct heartbeat *hb;      /* told of the peer's advances */
	/* ship our slot to the peer; 0 when sent, negative when no connection */
	int (*send)(void *opaque, unsigned slot, const uint8_t *data);
	void *opaque;
};

/* Open (or create, IPM_HBVOL_SIZE bytes) the volume and check it: a regular
 * file or block device of at least IPM_HBVOL_MIN bytes. */
int storage_hb_open(const struct shb_params *p, struct storage_hb **out, ipm_error *err);
int storage_hb_start(struct storage_hb *s, ipm_error *err);
/* Stop, then send a last record flagged retired: the peer then knows the
 * silence that follows is an uninstall, not a broken replication path. */
void storage_hb_retire(struct storage_hb *s);
/* Stop and join the thread (safe when not started). */
void storage_hb_stop(struct storage_hb *s);
/* Stop the thread and close the volume. NULL allowed. */
void storage_hb_destroy(struct storage_hb *s);

/* The peer's slot arrived over the network: check it is the peer's record
 * for its slot, then write it into our copy. */
int storage_hb_apply(struct storage_hb *s, unsigned slot, const uint8_t *data, ipm_error *err);

/* Seconds between our records, from the next one (a reload). */
void storage_hb_set_interval(struct storage_hb *s, double interval);
const char *storage_hb_path(const struct storage_hb *s);
/* The status table entry of the peer. */
void storage_hb_peer(struct storage_hb *s, struct hb_status *out);

/* Send one HBSLOT frame on a mirror connection whose sends the caller
 * serialises (through tls when not NULL). Never blocks on a peer that does not read: -EAGAIN when the
 * socket has no room for it; a frame cut short (socket stalled for 1 s
 * mid-frame) shuts the connection down, as its stream is then broken. */
int storage_hb_send_frame(int fd, struct ipm_tls *tls, unsigned slot, const uint8_t *data);

#endif
