/* replicator_int.h - the replicator's state, shared by the primary's files:
 * replicator.c (in-flight table, submission, completion, life cycle),
 * worker.c (connections: dial, send, answers) and link.c (the link state
 * machine). resync.c and activity_log.c have their own state and headers
 * (resync.h, activity_log.h) and do not see this one.
 *
 * Locks, in precedence order: a lock further down may be taken while one
 * above is held, never the reverse.
 *   r->lock                      the replicator: queue, in-flight table, link,
 *                                and the resync's state (r->rs)
 *     rl->al.lock                the activity log (al_clear, al_marked, al_fold);
 *                                al_note and al_sync take it alone, with
 *                                r->lock dropped (outside_locked)
 *     lun->g.lock                generation.c
 *     ca->lock                   connection_array.c (a leaf)
 *     log_lock                   log.c (a leaf; any lock may be held)
 *   w->send_lock                 one sender per socket; taken with r->lock
 *                                dropped (send_batch_locked), never with it
 * What blocks under r->lock, on purpose: journal appends and syncs while
 * the peer is unreachable or a resync runs (the journal's order is the
 * order requests are admitted under r->lock, and the resync counts its
 * records under it), and the generation file's save (write, fsync, rename)
 * where its order against the link's changes matters: when a resync goes
 * live (lun_gen_shared, before any later go_down's diverge) and at a clean
 * stop (with nothing outstanding, checked under the lock). The run's first
 * save, an outage's new generation and the activity log's marks are made
 * with r->lock dropped (outside_locked). No network wait happens under it. */
#ifndef IPM_REPLICATOR_INT_H
#define IPM_REPLICATOR_INT_H

#include <pthread.h>
#include "activity_log.h"
#include "heartbeat.h"
#include "remote_read.h"
#include "replicator.h"
#include "resync.h"
#include "verify.h"

#define BATCH_FRAMES 64
#define BATCH_BYTES (1u << 20)
/* Requests up to this size are sent by the host's own thread when a
 * connection is idle; larger ones go to a worker so that sending them
 * overlaps with the local write. */
#define DIRECT_SEND_MAX (64u << 10)
/* The resync's payload in flight (journal replays, copied extents): the
 * mirror applies a few at once per connection and the sockets hold some
 * more, so more buys no speed; without a bound the resync read the whole
 * journal ahead (up to WIRE_MAX_INFLIGHT_BYTES), the daemon's RSS grew by
 * as much, and every buffer was a fresh one to fault in. */
#define RESYNC_INFLIGHT_BYTES (32u << 20)

/* Where host writes go. */
enum rep_link {
	LINK_LIVE,     /* to the peer through the workers */
	LINK_DOWN,     /* peer unreachable: into each LUN's journal */
	LINK_RESYNC,   /* connected again: journal replayed, new writes still journaled */
};

struct mreq {
	struct wire_frame f;
	uint8_t hdr[WIRE_FRAME_LEN];
	const void *data;
	void *owned;             /* async: our copy of the payload */
	void (*release)(void *); /* gives owned back; NULL: free() */
	struct rep_lun *rl;
	bool no_crc;             /* a host WRITE whose f.csum was left out (the
				  * record's connections take none: wire_no_crc) */
	int conn;                /* worker it was sent on; -1 while queued */
	bool done;
	int status;              /* the mirror's answer (positive errno) */
	bool sync;               /* a host thread waits on cond */
	int refs;                /* async: host thread + in flight */
	pthread_cond_t cond;
	struct mreq *qnext;      /* outbound queue, sorted by seq */
	struct mreq *hnext;      /* in-flight hash chain */
	struct mreq *anext, *aprev; /* the LUN's active (not host-completed) list */
	bool active;
	bool replay;             /* sent by the resync, no host waits */
	bool verify;             /* verify.c's VERIFY (owned: nonce, then digests) */
	bool digests;            /* its VERIFY_REPLY's digests are in owned */
	bool read;               /* remote_read.c's READ: changes nothing */
	bool answered;           /* its READ_REPLY came (bytes in read_dst, or status) */
	uint64_t live_us;        /* a live request: when it entered the window
				  * (ipm_now_us), for the mirror latency; 0 others */
	void *read_dst;          /* where its bytes go (the host's buffer) */
	bool resize;             /* resize_send.c's RESIZE: not journaled */
	uint64_t peer_backing;   /* its RESIZE_REPLY's: the mirror's backing size */
	struct worker *rx;       /* sync: the host thread receives the answers
				  * on this connection itself (worker.c) */
	const void *chunk;       /* the sync writes of one write_chunk: its
				  * mark (NULL: a request alone), and in the
				  * first one how many they are */
	unsigned chunk_n;
	unsigned in_send;        /* sync: inside a send (send_batch_locked); its
				  * host waits for it to end before the memory
				  * goes (an answer may come first) */
};

struct rep_lun {
	struct ipm_lun *lun;
	uint32_t index;
	struct mreq *active;
	uint64_t mirrored_bytes;
	enum ipm_lun_state state;
	struct activity_log al;       /* extents with live writes */
	struct verify_state verify;   /* verify.c's online verify */
};

struct worker {
	struct replicator *r;
	unsigned index;
	pthread_t thread;
	pthread_t reader;
	int fd;
	struct ipm_tls *tls;     /* <tls mode> != off: fd's TLS session (common/tls.h) */
	pthread_mutex_t send_lock; /* one sender at a time: requests, HBSLOT frames */
	bool failed;             /* the reader saw the connection break */
	bool sending;            /* in sendmsg_full with request data: keep it alive */
	bool serving;            /* connected: host threads may send on it too */
	bool quiet;              /* connect failures already logged */
	/* The receive side (under r->lock): one owner at a time reads fd into
	 * rbuf. The reader thread owns it while answers are expected; with none
	 * it parks on rx_cond (not on the socket), so that a host thread that
	 * sent the connection's one request can receive its answer itself: the
	 * reader's wake-up and the host's second one are saved (rx_wait_locked). */
	enum { RX_NONE, RX_READER, RX_HOST } rx_owner;
	unsigned outstanding;    /* requests sent on fd, not answered yet */
	bool rx_stop;            /* worker_disconnect: the reader must end */
	pthread_cond_t rx_cond;  /* the parked reader: answers expected, or stop */
	size_t rhave;            /* bytes in rbuf (the owner's, unlocked) */
	uint8_t rbuf[WIRE_FRAME_LEN * 128]; /* a batch of ACKs, or an HBSLOT frame */
};

struct replicator {
	wire_hbslot_fn on_hbslot;      /* HBSLOT frames received, or NULL */
	void *hbslot_opaque;
	rep_version_fn on_version;     /* a connection's version, or NULL */
	void *version_opaque;
	ipm_engine *e;
	const struct auth_secret *secret;
	struct rep_lun *luns;
	struct wire_lun *wire_luns;
	unsigned n_luns;
	struct connection_array ca;
	unsigned n_conns;
	uint32_t window;             /* under lock once started (a reload sets it) */
	uint32_t window_told;        /* announced at the handshake: window <= it */
	uint64_t session;

	pthread_mutex_t lock;
	pthread_cond_t queue_cond;   /* workers: work arrived, or stop */
	pthread_cond_t space_cond;   /* hosts: window space / conflict cleared */
	unsigned space_waiters;
	unsigned window_waiters;     /* of them, waiting for window space alone:
				      * woken when a quarter of it is free, not at
				      * every answer (32 hosts woken per answer
				      * cost more than the mirror's work) */
	struct mreq *qhead, *qtail;
	struct mreq **hash;
	unsigned hash_mask;
	unsigned inflight;
	uint64_t inflight_bytes;     /* their payload: <= WIRE_MAX_INFLIGHT_BYTES,
				      * which the mirror holds us to */
	uint64_t next_seq;           /* last sequence number assigned */
	uint64_t host_done_max;      /* highest seq the host saw completed */
	bool running;
	bool started;
	struct worker workers[IPM_CONN_MAX];

	enum rep_link link;
	bool connect_allowed;        /* workers may dial the peer */
	uint64_t landed_floor;       /* every seq <= it is applied on the mirror */
	unsigned sending;            /* workers inside sendmsg_full */
	pthread_cond_t link_cond;    /* monitor: link changes; sends finished */
	bool resync_hold;            /* the resync's closing pass: host writes wait
				      * (else a load faster than the replay keeps
				      * the journal growing and it never ends) */
	struct resync rs;            /* the journals and the resync (resync.h) */
	unsigned replays;            /* replayed requests not yet answered */
	uint64_t replay_bytes;       /* their payload: <= RESYNC_INFLIGHT_BYTES
				      * (one always fits) */
	struct heartbeat *hb;        /* NULL: judge by the connections alone */
	pthread_t monitor;
	unsigned outside;            /* threads working with r->lock dropped:
				      * submitters in outside_locked (a
				      * generation save, an activity-log mark)
				      * and al_flush_locked's local syncs */
	int64_t last_live_ms;        /* when the last live request was submitted */
	bool al_flushed;             /* both copies were flushed after the last
				      * live write: the activity logs may go */
	unsigned next_direct;        /* where the search for an idle connection starts */
	bool force_resync;           /* live, but a LUN needs a full resync */
	const char *force_why;       /* why force_resync, when not a handshake's
				      * verdict (NULL) */
	int64_t redial_after_ms;     /* the peer failed a change: not dialled
				      * again before then (monotonic ms) */
	bool renaming;               /* from a resync's end that found a data
				      * generation the mirror has not heard of
				      * (force_resync) to the end of a resync
				      * after a handshake that named it */
	char names[128];             /* rep_names(): for log lines */
	uint16_t wire_version;       /* spoken with peer_record's engine: frames
				      * name LUNs by id from version 5 on */
	bool wire_no_crc;            /* peer_record's connections carry WRITE payloads
				      * without CRC32C (TLS, agreed: mirror_tls.h) */
	int crc_late;                /* atomic hint for host writes: leave the CRC
				      * out (link live and wire_no_crc); encode_locked
				      * and the journal add it where it is missing */
	uint64_t peer_record;        /* the mirror's ordering record our numbered
				      * requests went to; 0 until the first
				      * connection after a go_down */
	uint64_t downs;              /* resets of peer_record so far (every go_down
				      * is one): a handshake that spans one belongs
				      * to the time before it */
};


/* replicator.c */
void mreq_put_locked(struct mreq *m);
/* The request is over for the host (answered, journaled or failed). */
void finish_locked(struct replicator *r, struct mreq *m, int status);
/* The mirror answered an in-flight request. */
void complete_locked(struct replicator *r, struct mreq *m, int status);
void enqueue_locked(struct replicator *r, struct mreq *m);
/* Set crc_late from the link's state and wire_no_crc. */
void crc_late_update_locked(struct replicator *r);
/* Wait up to ms on space_cond, which answers and host releases broadcast
 * while someone waits there (a worker is kicked first if something is
 * queued): the bounded wait of verify.c, remote_read.c, resize_send.c. */
void space_wait_slice_locked(struct replicator *r, int ms);
void set_states_locked(struct replicator *r, enum ipm_lun_state s);
/* No room in flight for len more payload bytes: the window is full, or the
 * bytes would pass WIRE_MAX_INFLIGHT_BYTES (one request always fits). */
bool window_full_locked(const struct replicator *r, uint32_t len);

/* inflight.c: the requests in flight as data, no locks, no I/O (the caller
 * holds r->lock). The table by sequence number: */
void hash_insert(struct replicator *r, struct mreq *m);
struct mreq *hash_remove(struct replicator *r, uint64_t seq);
/* the lowest sequence number not answered yet (next_seq + 1 when none) */
uint64_t lowest_unacked(struct replicator *r);
/* The send queue: appended in order; a re-send after a lost connection goes
 * back in sequence order, ahead of newer requests. */
void queue_append(struct replicator *r, struct mreq *m);
void queue_insert_sorted(struct replicator *r, struct mreq *m);
/* Per LUN, the writes whose ranges are in flight: does f overlap one? */
bool overlaps(const struct rep_lun *rl, const struct wire_frame *f);
void active_add(struct rep_lun *rl, struct mreq *m);
void active_remove(struct rep_lun *rl, struct mreq *m);

/* worker.c */
void *rep_worker_main(void *arg);          /* one per connection */
/* A small live request goes out from the host's own thread when a
 * connection is idle (r->lock held, dropped while sending). */
void send_now_locked(struct replicator *r, size_t len);
/* The same for the caller's own sync request mine (or its chunk: mine is
 * the first, mine->chunk marks the others): when they go out together on a
 * connection nothing else waits on, the caller receives their answers
 * itself (mine->rx; rx_wait_locked). */
void send_mine_locked(struct replicator *r, size_t len, struct mreq *mine);
/* A host waiting for v[0..n) (r->lock held): when one of them has rx set,
 * receive on that connection until all are answered or the connection
 * fails, then give the receive side back. */
void rx_wait_locked(struct replicator *r, struct mreq **v, unsigned n);
/* The mirror's ordering record is no longer ours (r->lock held). */
void forget_record_locked(struct replicator *r);

/* link.c */
void *rep_monitor_main(void *arg);         /* the link state machine's thread */
/* The link broke: journal what is unanswered, go LINK_DOWN. */
void go_down_locked(struct replicator *r, const char *why);
/* In resync, and the peer still reachable: the resync's waits go on. */
bool resync_link_ok_locked(struct replicator *r);
/* "lun vol0" / "luns vol0,vol1": whose session this is, for log lines. */
const char *rep_names(struct replicator *r);
/* A new data generation's name is still to be told to the reachable peer. */
bool rename_pending_locked(struct replicator *r);
/* Stopping live with nothing outstanding: the copies are equal. */
void mark_clean_stop_locked(struct replicator *r);
/* The replicator as the resync sees it (resync.h). */
extern const struct resync_ops replicator_resync_ops;

/* Idle: clear the activity logs once both copies hold their writes
 * durably; true when it sent the mirror a FLUSH first (call again once it
 * is answered). */
bool al_settle_locked(struct replicator *r);
/* resync_ops.submit: queue a replayed request (ctx: the replicator). */
int replay_submit(void *ctx, const struct wire_frame *f, const void *data, uint64_t *seq);
int replay_submit_owned(void *ctx, const struct wire_frame *f, void *data,
			void (*release)(void *), uint64_t *seq);

/* resize_send.c: the answer f (a RESIZE_REPLY, or a duplicate's ACK) to a
 * RESIZE came. r->lock held. */
void resize_answer_locked(struct mreq *m, const struct wire_frame *f);

#endif
