/* replicator.h - the primary's side of mirroring: every write to a mirrored
 * LUN this node is primary for becomes a mirror request with a sequence
 * number, sent by one of n worker threads over its own TCP connection.
 *
 * Ordering: each request carries `dep`, the highest sequence number the host
 * had seen completed when the request was issued; the mirror applies a
 * request only after every request <= dep, so it never shows a write before
 * one the host saw completed earlier (crash consistency). Overlapping writes
 * are serialised here so both nodes apply them in the same order. */
#ifndef IPM_REPLICATOR_H
#define IPM_REPLICATOR_H

#include "connection_array.h"
#include "lun_ops.h"
#include "wire.h"

struct replicator;
struct ipm_lun;

/* luns: the mirrored LUNs this node is primary for; their index in this
 * array is their wire index. */
int replicator_create(ipm_engine *e, const struct auth_secret *secret,
		      struct ipm_lun **luns, unsigned n_luns, struct replicator **out,
		      ipm_error *err);
int replicator_start(struct replicator *r, ipm_error *err);
/* Waits a bounded time for requests in flight, then fails the rest. */
void replicator_stop(struct replicator *r);
void replicator_destroy(struct replicator *r);

int replicator_write(struct replicator *r, struct ipm_lun *l, const void *buf, size_t len,
		     uint64_t off, unsigned flags);
/* ipm_lun_write_batch for a mirrored LUN (n <= IPM_WRITE_BATCH_MAX). */
void replicator_write_batch(struct replicator *r, struct ipm_lun *l, ipm_write *w, unsigned n);
/* WIRE_TRIM, WIRE_ZERO or WIRE_FLUSH (len/off ignored for FLUSH). */
int replicator_op(struct replicator *r, struct ipm_lun *l, uint16_t type, uint64_t len,
		  uint64_t off, unsigned flags);
/* The above as a LUN's operations (lun_ops.h), for LUNs mirrored from here. */
extern const struct lun_ops replicator_ops;

struct heartbeat;
/* Judge the peer by this heartbeat (call before start). */
void replicator_set_heartbeat(struct replicator *r, struct heartbeat *hb);
struct connection_array *replicator_connections(struct replicator *r);
/* Send our heartbeat-volume slot on the first up connection: 0, -ENOTCONN
 * when none is up, or the send's error. */
int replicator_send_hbslot(struct replicator *r, unsigned slot, const uint8_t *data);
/* Fill the mirroring fields of a LUN's status (state, journal, resync). */
void replicator_lun_status(struct replicator *r, struct ipm_lun *l, ipm_lun_status *s);

/* Live settings (a reload, engine/adjust.c). The LUN's mode as its next
 * handshake announces it (host requests read it from the LUN's config). */
void replicator_set_mode(struct replicator *r, struct ipm_lun *l, enum ipm_mode mode);
/* Requests in flight: at most the window the mirror was told at the
 * session's handshake (its budget for us); returns the window now in force. */
uint32_t replicator_set_window(struct replicator *r, uint32_t window);
/* bytes/s, 0 = unlimited; from the next paced request. */
void replicator_set_resync_rate(struct replicator *r, uint64_t rate);
/* The LUN's journal size limit (0: the default); past it, the bitmap. */
void replicator_set_journal_max(struct replicator *r, struct ipm_lun *l, uint64_t max);

/* Start an online verify of l, mirrored from here (verify.c,
 * doc/verify.md): refused (-errno, err says why) when the link is not
 * live, the peer speaks an older protocol version, or a verify of l runs
 * already; with repair the differing blocks are copied from here. */
int replicator_verify(struct replicator *r, struct ipm_lun *l, bool repair, ipm_error *err);

/* An online grow of l (resize_send.c, doc/resize.md): 0 when the mirror
 * can be asked now (the link live, the peer of version 5 on and up to
 * date), else -ENOTCONN or -EPROTO with the reason. */
int replicator_resize_ready(struct replicator *r, struct ipm_lun *l, ipm_error *err);
/* Ask the mirror to grow l to size, after every request sent before, and
 * wait for its answer: 0 grown; the mirror's refusal (-EFBIG: its backing
 * is smaller, *peer_backing bytes; -EINVAL...); -ETIMEDOUT when no answer
 * came (the link broke: it may have grown), the reason in err. The
 * caller holds l's gate (no host request runs on l). */
int replicator_resize(struct replicator *r, struct ipm_lun *l, uint64_t size,
		      uint64_t *peer_backing, ipm_error *err);

/* The sink of the HBSLOT frames this side receives (before start). */
void replicator_set_hbslot_sink(struct replicator *r, wire_hbslot_fn fn, void *opaque);
/* Told the protocol version each new connection speaks (the engine groups
 * the LUNs of a version 4 peer into one session), or NULL. */
typedef void (*rep_version_fn)(void *opaque, uint16_t version);
void replicator_set_version_sink(struct replicator *r, rep_version_fn fn, void *opaque);

#endif
