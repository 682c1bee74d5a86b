/* ipmirror.h - public API of libipmirror, the block mirroring engine.
 *
 * All handles are opaque. Functions return 0 (or a count/size) on success and
 * a negative errno on failure; where a human-readable reason exists it is
 * written into an ipm_error supplied by the caller. The engine never prints:
 * it logs through libqb (see ipm_log_init).
 *
 * I/O calls (ipm_lun_read/write/...) are blocking and thread-safe: callers
 * that want many requests in flight call them from many threads.
 */
#ifndef IPMIRROR_H
#define IPMIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IPM_NAME_MAX 64

typedef struct ipm_config ipm_config;
typedef struct ipm_engine ipm_engine;
typedef struct ipm_lun ipm_lun;

typedef struct ipm_error {
	char msg[512];
} ipm_error;

/* Format a message into err (NULL allowed) and return rc: the one way
 * errors are reported in the engine and the agent. */
int ipm_fail(ipm_error *err, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Format a message that is not an error (what a command did, why a check
 * passed) into err (NULL allowed); returns 0. */
int ipm_note(ipm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- logging ---------------------------------------------------------- */

enum ipm_log_target {
	IPM_LOG_STDERR = 1 << 0,
	IPM_LOG_SYSLOG = 1 << 1,
};

/* Set up libqb logging. level is a syslog priority (LOG_ERR..LOG_DEBUG);
 * file may be NULL. Safe to call again to change level or file. */
int ipm_log_init(const char *ident, int level, unsigned targets, const char *file);
/* Reopen the log file under the same name (after logrotate moved it away):
 * 0 with what was done in err (also when there is no log file), or a
 * negative errno when it cannot be opened (logging to it stops). */
int ipm_log_reopen(ipm_error *err);
void ipm_log_fini(void);

/* ---- configuration ------------------------------------------------------ */

/* Which heartbeats decide that the peer is down (doc/heartbeat.md). */
enum ipm_hb_method { IPM_HB_UDP, IPM_HB_STORAGE, IPM_HB_BOTH };
/* "udp" etc. -> method; -EINVAL for anything else. */
int ipm_method_parse(const char *s, enum ipm_hb_method *out);

/* Called once per problem found in a config file. line is 0 when the
 * problem has no line (e.g. the file cannot be opened). */
typedef void (*ipm_diag_fn)(void *opaque, const char *file, int line, const char *msg);

/* Parse, validate against the RelaxNG schema (schema_path NULL = the
 * installed one) and check semantics. Every problem is reported through
 * diag. Returns 0 and *out on success, the number of problems (> 0) when the
 * file is invalid, or a negative errno for an internal failure. */
int ipm_config_load(const char *path, const char *schema_path, ipm_diag_fn diag,
		    void *opaque, ipm_config **out);
void ipm_config_free(ipm_config *cfg);
/* Deep copy (the engine keeps its own; the daemon the file as read). NULL
 * on ENOMEM. */
ipm_config *ipm_config_dup(const ipm_config *cfg);

bool ipm_config_has_node(const ipm_config *cfg, const char *node);

typedef struct ipm_listen {
	char address[64];   /* "" when no TCP listener */
	uint16_t port;
	char unix_path[108]; /* "" when no Unix listener */
	char unix_group[64]; /* group of the socket (mode 0660); "": the daemon's */
	/* client limits of <nbd> (doc/nbd.md); ipm_config_nbd_listen fills in
	 * the defaults, a zeroed struct means the same defaults */
	unsigned handshake_timeout; /* s from accept to transmission */
	unsigned idle_timeout;      /* s without a request; 0 = never */
	unsigned send_timeout;      /* s of replies without progress */
	unsigned max_clients;
	unsigned max_clients_per_address;
	/* NBD_OPT_STARTTLS (doc/nbd.md): enum ipm_nbd_tls and the credentials,
	 * a psktool-format PSK file and/or an X.509 certificate and key (and a
	 * CA to require client certificates); "" when unset */
	int tls;
	char tls_psk_file[256];
	char tls_cert[256], tls_key[256], tls_ca[256];
} ipm_listen;

/* <nbd tls=...>: off (STARTTLS refused), on (offered), require (every TCP
 * client must start TLS before anything else). */
enum ipm_nbd_tls { IPM_NBD_TLS_OFF, IPM_NBD_TLS_ON, IPM_NBD_TLS_REQUIRE };
/* <tls mode=...>: the mirror connections. */
enum ipm_tls_mode { IPM_TLS_OFF, IPM_TLS_PSK, IPM_TLS_X509 };
const char *ipm_tls_mode_name(enum ipm_tls_mode m);

/* Defaults and bounds of the <nbd> client limits (doc/config.md). */
#define IPM_NBD_HANDSHAKE_TIMEOUT 10
#define IPM_NBD_SEND_TIMEOUT      30
#define IPM_NBD_MAX_CLIENTS       256
#define IPM_NBD_MAX_PER_ADDRESS   32
#define IPM_NBD_CLIENTS_LIMIT     1024  /* highest max-clients */

/* The NBD listeners of node and their client limits. -ENOENT when the node
 * is unknown. */
int ipm_config_nbd_listen(const ipm_config *cfg, const char *node, ipm_listen *out);

/* The Prometheus listener of node (<metrics address port/>, served by
 * ipmirrord): 0 with address (len bytes) and port; -ENOENT when the node
 * has none or is unknown. */
int ipm_config_metrics_listen(const ipm_config *cfg, const char *node, char *address,
			      size_t len, uint16_t *port);

/* <handlers> (doc/events.md): the program run on each event. */
#define IPM_HANDLER_EVENTS 7
#define IPM_HANDLER_TIMEOUT 30     /* seconds, the default */
/* The events' names, in the order of the index below ("split-brain"...). */
extern const char *const ipm_handler_events[IPM_HANDLER_EVENTS];
/* The program of event (a name above), NULL when none is configured or
 * the event is unknown. */
const char *ipm_config_handler(const ipm_config *cfg, const char *event);
/* Seconds a handler may run before it is killed. */
unsigned ipm_config_handler_timeout(const ipm_config *cfg);

/* Make node the primary of lun in cfg (the daemon's promote/demote: the
 * engine is then re-created from cfg). -ENOENT for an unknown lun or node. */
int ipm_config_set_primary(ipm_config *cfg, const char *lun, const char *node);

/* Set (path) or clear (NULL) node's heartbeat volume in cfg, so that a
 * run-time install outlives the engine's re-creation on a role change.
 * -ENOENT for an unknown node, -ENOMEM. */
int ipm_config_set_hb_volume(ipm_config *cfg, const char *node, const char *path);
/* Set the heartbeat method in cfg (the run-time `heartbeat method`). */
void ipm_config_set_hb_method(ipm_config *cfg, enum ipm_hb_method m);

/* Log settings from <log level=".." file=".."/>; level is a syslog
 * priority, -1 when unset. file is NULL when unset. */
int ipm_config_log_level(const ipm_config *cfg);
const char *ipm_config_log_file(const ipm_config *cfg);

/* ---- engine ------------------------------------------------------------ */

/* Create the engine for node `node` (must be named in cfg): opens and sizes
 * every backing file of that node. The engine keeps its own copy of cfg. */
int ipm_engine_create(const ipm_config *cfg, const char *node, ipm_engine **out,
		      ipm_error *err);
/* Start background threads (mirror connections, heartbeats). */
int ipm_engine_start(ipm_engine *e, ipm_error *err);
/* Stop background threads; pending mirror requests complete or fail. */
void ipm_engine_stop(ipm_engine *e);
void ipm_engine_destroy(ipm_engine *e);

const char *ipm_engine_node(const ipm_engine *e);
size_t ipm_engine_lun_count(const ipm_engine *e);
ipm_lun *ipm_engine_lun_at(ipm_engine *e, size_t i);
ipm_lun *ipm_engine_lun_by_name(ipm_engine *e, const char *name);

/* ---- reload (doc/config.md, "Reload") ------------------------------------ */

/* One line of what a reload does, would do, or refuses. */
typedef void (*ipm_adjust_fn)(void *opaque, const char *line);
enum ipm_adjust_flags {
	IPM_ADJUST_DRY_RUN = 1 << 0, /* only say what would change */
};

/* Make the running engine follow what changed between old and cur, two
 * loads of its config file: per-LUN mode and journal max-size, the async
 * window, the resync rate, the heartbeat's times and method, the log
 * settings (listed; the caller owns the log and applies them), LUNs added
 * (ipm_engine_lun_add) and removed (ipm_engine_lun_remove: down here, else
 * refused naming `ipmirrorctl down LUN`), a LUN's size grown (ipm_lun_resize
 * on its primary; a shrink is refused). Each change is one line
 * "FILE:LINE: what" through fn. When any change cannot be made live
 * (addresses, ports, node names, a LUN's backing or journal path,
 * ...) each is named "FILE:LINE: what: needs a restart", nothing is
 * applied and -EINVAL is returned. The other LUNs' connections and NBD
 * clients are not touched. err gets the summary. */
int ipm_engine_adjust(ipm_engine *e, const ipm_config *old, const ipm_config *cur,
		      unsigned flags, ipm_adjust_fn fn, void *opaque, ipm_error *err);
/* Copy into dst what a reload from old to cur applies live (the daemon's
 * own config, which role changes edit): the values the file changed, and
 * only those, so run-time changes of the others are kept. 0 or -ENOMEM. */
int ipm_config_adjust(ipm_config *dst, const ipm_config *old, const ipm_config *cur,
		      const char *node);
/* Something an admin sees may have changed (a LUN's state or role, a
 * connection, a heartbeat path, a handshake refusal): fn is called from
 * the engine's threads, possibly with engine locks held, so it must only
 * note the fact and wake whoever takes a status snapshot (it must not
 * call back into the engine, block or take a lock it may hold long).
 * fn NULL: none. May be set on a running engine. */
typedef void (*ipm_notify_fn)(void *opaque);
void ipm_engine_set_notify(ipm_engine *e, ipm_notify_fn fn, void *opaque);

/* ---- storage-path heartbeat (doc/heartbeat.md) --------------------------- */

/* Install the heartbeat volume at path on a running engine (file or block
 * device, at least IPM_HBVOL_MIN bytes; a missing file is created with
 * IPM_HBVOL_SIZE). Refused (-EEXIST, -EINVAL, -EBUSY...) with a reason. */
#define IPM_HBVOL_MIN (8u << 10)
#define IPM_HBVOL_SIZE (1u << 20)
int ipm_engine_hb_install(ipm_engine *e, const char *path, ipm_error *err);
int ipm_engine_hb_uninstall(ipm_engine *e, ipm_error *err);
int ipm_engine_hb_set_method(ipm_engine *e, enum ipm_hb_method m, ipm_error *err);

/* ---- LUN I/O ------------------------------------------------------------ */

enum ipm_io_flags {
	IPM_IO_FUA = 1 << 0, /* durable before return (both nodes in sync mode) */
};

const char *ipm_lun_name(const ipm_lun *l);
uint64_t ipm_lun_size(const ipm_lun *l);

/* 0 when this node may serve the LUN to hosts. Otherwise -EPERM and err
 * names the node that is primary. */
int ipm_lun_check_open(ipm_lun *l, ipm_error *err);

/* Out-of-range requests return -EINVAL without touching data. */
int ipm_lun_read(ipm_lun *l, void *buf, size_t len, uint64_t off);
int ipm_lun_write(ipm_lun *l, const void *buf, size_t len, uint64_t off, unsigned flags);
int ipm_lun_flush(ipm_lun *l);
int ipm_lun_trim(ipm_lun *l, uint64_t len, uint64_t off, unsigned flags);
int ipm_lun_zero(ipm_lun *l, uint64_t len, uint64_t off, unsigned flags);

/* One write of a batch. */
typedef struct ipm_write {
	const void *buf;
	size_t len;
	uint64_t off;
	unsigned flags;            /* IPM_IO_FUA */
	int rc;                    /* out: as ipm_lun_write returns */
} ipm_write;

#define IPM_WRITE_BATCH_MAX 16

/* Writes the host has in flight together (none waited for another), at
 * most IPM_WRITE_BATCH_MAX: as ipm_lun_write on each, but they go to the
 * disk and to the mirror together, one wait for all. Overlapping ones are
 * taken in the order given. Returns once all are complete. */
void ipm_lun_write_batch(ipm_lun *l, ipm_write *w, unsigned n);

/* Resolve a split brain on this node's side: its changes since the nodes
 * parted are dropped and the whole LUN is copied from the primary at the
 * next connection. Only on a node that is mirror for the LUN and in split
 * brain; otherwise a negative errno and err says why. */
int ipm_lun_resolve_discard(ipm_lun *l, ipm_error *err);

/* Record (persistently) that this node's copy is whole: called by a clean
 * demotion, when the primary hands over with nothing left unconfirmed, so
 * the demoted node stays promotable after its engine restarts. Only on the
 * LUN's primary; otherwise a negative errno and err says why. */
int ipm_lun_mark_consistent(ipm_lun *l, ipm_error *err);

/* Invalidate this node's copy: it is inconsistent (not promotable) until
 * copied whole from the peer. On the mirror the primary must be connected
 * (else this copy may be the only good one), and its connections are
 * re-made so that the copy starts at once. On the primary only with force,
 * and only while the peer is up to date; it takes effect once this node is
 * the mirror. Refusals: a negative errno, err says why. */
int ipm_lun_invalidate(ipm_lun *l, bool force, ipm_error *err);
/* Declare a never-synced copy (this node the mirror of a new LUN, before
 * the initial sync has begun) equal to the primary's: the initial sync is
 * skipped. Logged at critical level. */
int ipm_lun_assume_clean(ipm_lun *l, ipm_error *err);
/* Start an online verify of the LUN (this node its primary, the peer
 * connected and up to date): both copies compared while hosts write;
 * differing blocks are logged, counted in the status (verify_*) and
 * marked for the next resync, and with repair copied from this node at
 * once. Returns at once; refusals: a negative errno, err says why. */
int ipm_lun_verify(ipm_lun *l, bool repair, ipm_error *err);
/* Grow the LUN online to size bytes (doc/resize.md), on its primary, once
 * the admin grew the backing on both nodes: the mirror grows first (a
 * peer of protocol version 5, connected and up to date), then this node,
 * and the new range is resynced (holes and zeros cost no transfer). Host
 * requests pause meanwhile; NBD clients see the size at their next
 * connection. The size is kept in a file beside the journal, so a restart
 * keeps it. Refusals (a shrink, a backing too small on either node,
 * named with its size, the peer away or of version 4): a negative errno,
 * nothing changed, err says why. */
int ipm_lun_resize(ipm_lun *l, uint64_t size, ipm_error *err);
/* A forced promotion of an inconsistent copy: make it a source of its own
 * (a new line no peer knows). 0 and nothing done for any other copy. */
int ipm_lun_take_source(ipm_lun *l, ipm_error *err);

/* ---- status snapshot ---------------------------------------------------- */

enum ipm_role { IPM_ROLE_PRIMARY, IPM_ROLE_MIRROR };
enum ipm_mode { IPM_MODE_SYNC, IPM_MODE_ASYNC };
enum ipm_lun_state {
	IPM_STATE_UPTODATE,
	IPM_STATE_JOURNALING,
	IPM_STATE_PROBATION,
	IPM_STATE_RESYNCING,
	IPM_STATE_OUTDATED,
	IPM_STATE_INCONSISTENT,
	IPM_STATE_SPLITBRAIN,
	IPM_STATE_DOWN,            /* out of service on this node (ipm_engine_lun_down) */
};
enum ipm_link_state { IPM_LINK_UP, IPM_LINK_DOWN, IPM_LINK_PROBATION, IPM_LINK_OFF };

const char *ipm_role_name(enum ipm_role r);
const char *ipm_mode_name(enum ipm_mode m);
const char *ipm_state_name(enum ipm_lun_state s);
const char *ipm_link_name(enum ipm_link_state s);
const char *ipm_method_name(enum ipm_hb_method m);

/* ---- a LUN at run time (doc/roles.md) ----------------------------------------- */

/* Make this node the LUN's primary or its mirror, that LUN alone: its
 * host requests under way end first (new ones wait, then see the new
 * role), its session with the peer is closed (a primary's drains what is
 * in flight) and one for the new role opened. The other LUNs keep their
 * connections, journals, states and host requests. The safety checks
 * (the peer, the journal, quorum) are the caller's. 0 (err says so when
 * it already was), or a negative errno and err says why. */
int ipm_engine_lun_set_role(ipm_engine *e, const char *lun, enum ipm_role role,
			    ipm_error *err);
/* Take the LUN out of service on this node, that LUN alone: new host
 * requests are refused (-EPERM; ipm_lun_check_open names the reason),
 * those under way end first; its session with the peer is closed (a
 * primary drains what is in flight, else journals it), its backing files
 * are closed; its generation, journal and role are kept. The peer's side
 * of it journals (its primary) or goes outdated (its mirror). Status shows
 * IPM_STATE_DOWN. 0 (err says so when it already was), or a negative
 * errno and err says why. */
int ipm_engine_lun_down(ipm_engine *e, const char *lun, ipm_error *err);
/* Back into service: files opened again, its session with the peer made
 * again, with the resync its state needs (the journal replayed, or the
 * whole LUN when the peer's verdict says so). */
int ipm_engine_lun_up(ipm_engine *e, const char *lun, ipm_error *err);
/* Serve lun of cfg (a newer load of the config file) from now on: its
 * backing opened and sized, its session with the peer made (a new LUN's
 * initial sync, doc/generations.md). Refused when the engine serves one of
 * that name, when it is the first mirrored LUN (no peer, secret or
 * heartbeat yet: a restart), or with a version 4 peer while LUNs share its
 * session. The engine keeps its own copy of cfg for it. */
int ipm_engine_lun_add(ipm_engine *e, const ipm_config *cfg, const char *lun, ipm_error *err);
/* Forget a LUN that is down (ipm_engine_lun_down first, else -EBUSY):
 * lookups and status no longer show it; its files on disk stay. */
int ipm_engine_lun_remove(ipm_engine *e, const char *lun, ipm_error *err);

typedef struct ipm_conn_status {
	int index;
	enum ipm_link_state status; /* UP or DOWN */
	int64_t age_ms;             /* since the element's timestamp; -1 never */
	bool outgoing;              /* true: we are primary (sending) on it */
} ipm_conn_status;

/* Upper bounds (µs) of the write latency histogram's buckets; one more
 * bucket counts the slower ones (+Inf). */
#define IPM_LAT_BUCKETS 14
#define IPM_LAT_BOUNDS_US { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, \
			    50000, 100000, 250000, 1000000, 5000000 }

typedef struct ipm_lun_status {
	char name[IPM_NAME_MAX];
	enum ipm_role role;
	enum ipm_mode mode;
	bool mirrored;
	bool consistent;           /* a whole image, not mid-resync (persisted) */
	enum ipm_lun_state state;
	uint64_t size;
	uint64_t journal_bytes;
	uint64_t journal_records;
	uint64_t resync_done_bytes;
	uint64_t resync_total_bytes;
	int64_t resync_elapsed_ms; /* since the running resync started (0: none) */
	uint64_t resync_rate;      /* bytes/s of the running resync so far (0: none) */
	int64_t resync_eta_s;      /* seconds left at that rate; -1: unknown */
	bool peer_inconsistent;    /* primary: the peer's copy never held this
				    * LUN's data (the initial sync runs or is due) */
	uint64_t mirrored_bytes;   /* bytes sent to the peer since start */
	char generation[40];
	bool direct_io;            /* aligned requests bypass the page cache */
	/* host requests on this node since the engine started (a role change
	 * re-creates it): bytes completed without error, requests in flight */
	uint64_t written_bytes;
	uint64_t read_bytes;
	unsigned inflight;
	/* the online verify (primary; the last run's figures until the next) */
	bool verify_running;
	uint64_t verify_done_bytes;      /* compared so far */
	uint64_t verify_total_bytes;
	uint64_t verify_out_of_sync_bytes; /* found different */
	uint64_t inflight_bytes;   /* bytes of the host requests in flight */
	uint64_t local_io_errors;  /* reads, writes, syncs of the backing failed
				    * (EIO, ENOSPC...) since the engine started */
	bool disk_failed;          /* a write failed: the local disk is out of
				    * service (doc/io-errors.md) */
	uint64_t remote_reads;     /* host reads served from the peer's copy */
	/* host writes completed (ok or not) by latency, entry to return: in
	 * sync mode that includes the mirror's answer. Bucket i counts those
	 * up to bound i (not cumulative); the last one the rest. */
	uint64_t write_lat[IPM_LAT_BUCKETS + 1];
	uint64_t write_lat_sum_us;
	/* primary: live mirror requests (writes, trims, flushes; not resync
	 * replays) by round trip, from entering the in-flight window to the
	 * mirror's answer; the same buckets */
	uint64_t mirror_lat[IPM_LAT_BUCKETS + 1];
	uint64_t mirror_lat_sum_us;
	/* the last handshake refused for this LUN (either side), "" none */
	char refusal[192];
	int64_t refusal_age_ms;    /* since that refusal; -1 none */
} ipm_lun_status;

typedef struct ipm_status {
	char node[IPM_NAME_MAX];
	char peer[IPM_NAME_MAX];          /* "" when there is no peer */
	enum ipm_link_state peer_heartbeat; /* the verdict of `method` */
	int64_t udp_age_ms;               /* -1: never heard */
	int64_t storage_age_ms;           /* -1: never heard / off */
	enum ipm_hb_method method;
	enum ipm_link_state udp_state;    /* each path on its own */
	enum ipm_link_state storage_state; /* OFF: no heartbeat volume here */
	char hb_volume[256];              /* "" when none is installed */
	uint64_t storage_serial;          /* the peer's last storage record */
	size_t n_conns;
	ipm_conn_status *conns;
	size_t n_luns;
	ipm_lun_status *luns;
} ipm_status;

int ipm_engine_status(ipm_engine *e, ipm_status **out);
/* The storage path's state in st: OFF unless a heartbeat volume is installed. */
enum ipm_link_state ipm_status_storage(const ipm_status *st);
/* Which heartbeat path failed: "none", "heartbeat-network" (UDP lost, the
 * storage heartbeat advances: the peer is alive), "replication-network"
 * (the storage heartbeat stopped, UDP arrives), "both" (peer dead or
 * isolated), or "unknown" (UDP lost and no storage heartbeat to tell). */
const char *ipm_status_failure(const ipm_status *st);
void ipm_status_free(ipm_status *st);

#ifdef __cplusplus
}
#endif
#endif /* IPMIRROR_H */
