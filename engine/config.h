/* config.h - the parsed configuration (internal to the engine).
 * The file format is fixed by engine/ipmirror.rng (doc/config.md). */
#ifndef IPM_CONFIG_H
#define IPM_CONFIG_H

#include "ipmirror.h"

#define IPM_MAX_NODES 2
#define IPM_MAX_BACKINGS 4
#define IPM_CONN_MAX 64

struct ipm_endpoint {
	char *address;   /* NULL when the element is absent */
	uint16_t port;
	int line;
};

struct ipm_node_cfg {
	char *name;
	struct ipm_endpoint data;       /* TCP mirror connections */
	struct ipm_endpoint heartbeat;  /* UDP heartbeats */
	struct ipm_endpoint nbd;        /* hosts */
	char *nbd_unix;                 /* optional Unix socket path */
	char *nbd_unix_group;           /* its group (mode 0660); NULL: the daemon's */
	/* <nbd> client limits; 0 = unset (default), except idle 0 = never */
	unsigned nbd_handshake_timeout, nbd_idle_timeout, nbd_send_timeout;
	unsigned nbd_max_clients, nbd_max_per_address;
	/* <nbd tls=...>: enum ipm_nbd_tls, and its credentials (NULL: none) */
	int nbd_tls;
	char *nbd_tls_psk_file, *nbd_tls_cert, *nbd_tls_key, *nbd_tls_ca;
	char *hb_volume;                /* <heartbeat-volume path>; NULL: none */
	int hb_volume_line;
	struct ipm_endpoint metrics;    /* Prometheus /metrics (the daemon's) */
	int line;
};

/* How the engine does the backing store's I/O. */
enum ipm_backing_io {
	IPM_IO_AUTO,      /* direct where an O_DIRECT probe works (default) */
	IPM_IO_DIRECT,    /* O_DIRECT for small aligned requests */
	IPM_IO_BUFFERED,  /* through the page cache */
};

struct ipm_backing_cfg {
	char *node;   /* NULL: applies to every node without its own entry */
	char *path;
	enum ipm_backing_io io;
	int line;
};

struct ipm_lun_cfg {
	char *name;
	uint64_t size;
	enum ipm_mode mode;
	bool mirrored;
	char *primary;             /* node name */
	struct ipm_backing_cfg backing[IPM_MAX_BACKINGS];
	unsigned n_backing;
	char *journal_path;        /* NULL: none configured */
	uint64_t journal_max;      /* bytes; 0 = default */
	int journal_line;          /* of <journal>; 0 when absent */
	int line;
};

struct ipm_config {
	char *path;
	char *secret_file;
	double hb_interval;        /* seconds, default 1.5 */
	double hb_timeout;         /* seconds, default 4.0 */
	double hb_probation;       /* seconds, default 10 */
	enum ipm_hb_method hb_method;
	char *hb_state_dir;        /* <heartbeat state-dir>; NULL: beside a backing */
	unsigned conn_count;       /* default 4, 1..64 */
	unsigned async_window;     /* max async requests in flight, default 1024 */
	uint64_t resync_rate;      /* bytes/s, 0 = unlimited */
	char *handlers[IPM_HANDLER_EVENTS]; /* <handlers>: ipm_handler_events order */
	unsigned handler_timeout;  /* seconds, default 30 */
	int log_level;             /* syslog priority, -1 unset */
	char *log_file;
	/* <tls mode cert key ca/>: the mirror connections (doc/wire.md) */
	enum ipm_tls_mode tls_mode;
	char *tls_cert, *tls_key, *tls_ca;
	int tls_line;
	/* lines of the top-level elements (a reload names them); 0: absent */
	int secret_line, hb_line, conn_line, log_line, mirror_line, resync_line, handlers_line;
	struct ipm_node_cfg nodes[IPM_MAX_NODES];
	unsigned n_nodes;
	struct ipm_lun_cfg *luns;
	unsigned n_luns;
};

/* The backing path of lun on node (a per-node entry wins over the shared
 * one); NULL when none applies. */
const char *ipm_lun_cfg_backing(const struct ipm_lun_cfg *lun, const char *node);
const struct ipm_backing_cfg *ipm_lun_cfg_backing_entry(const struct ipm_lun_cfg *lun,
							 const char *node);
const struct ipm_node_cfg *ipm_config_node(const ipm_config *cfg, const char *name);
/* The other node of the pair; NULL with a single-node config. */
const struct ipm_node_cfg *ipm_config_peer(const ipm_config *cfg, const char *name);

/* The node's slot in the heartbeat volume: its position in the config. */
int ipm_config_node_index(const ipm_config *cfg, const char *node);

/* One element of engine/ipmirror.rng as the loader checks it by hand
 * (config.c); tests/unit/test_schema.c proves the table and the schema
 * agree. */
#define IPM_RULE_REQUIRED 3
#define IPM_RULE_OPTIONAL 14
struct ipm_config_rule {
	const char *parent;        /* NULL: the root */
	const char *name;
	unsigned min, max;         /* occurrences in the parent; max 0 = any */
	const char *required[IPM_RULE_REQUIRED];
	const char *optional[IPM_RULE_OPTIONAL];
};

/* The loader's structure table, root first; *n is set to its length. */
const struct ipm_config_rule *ipm_config_rules(unsigned *n);

/* "1G" -> bytes (K/M/G/T are powers of two; no suffix = bytes).
 * Returns 0 or -EINVAL. */
int ipm_parse_size(const char *s, uint64_t *out);

#endif
