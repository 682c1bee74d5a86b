/* nbd_int.h - the NBD server's insides, shared by conn.c (one client: the
 * handshake and the reader), work.c (requests in flight: the pool, the work
 * queue and workers, replies, the sender) and listen.c (listeners, the
 * acceptor, the server's lifetime); server.h is its outside.
 *
 * One acceptor thread polls the listeners. Each client gets a reader thread
 * that does the handshake, then decodes requests (and reads WRITE payloads)
 * and queues them for the worker pool, so one connection can have many
 * requests in flight. Workers call the blocking engine I/O and queue the
 * reply; whoever owns the client's reply queue sends it without blocking, and
 * when the socket is full the sender thread takes the queue over, so a client
 * that stops reading never holds a worker (it is disconnected after
 * send-timeout without progress). Clients are reference counted (the
 * server's list, each queued request) so a client vanishing with requests in
 * flight is harmless: its fd closes when the last reply is done.
 *
 * Abuse limits (doc/nbd.md): a total handshake deadline, max-clients and
 * max-clients-per-address at accept, idle-timeout, a per-client budget of
 * bytes in flight (request payloads and queued replies) of which the part
 * beyond a small free share is drawn from one pool shared by all clients,
 * and rate-limited log lines for refusals, timeouts and stalls.
 *
 * Locks, in precedence order (never take an earlier one while holding a
 * later one): s->elock (read by workers around engine I/O, never while
 * sending) > s->clock > c->lock. c->rlock, s->plock, s->slock, s->qlock and
 * s->rl_lock are leaves. c->send_lock serialises the handshake's blocking
 * sends (the reader's only; workers do not exist for the client yet). */
#ifndef IPM_NBD_INT_H
#define IPM_NBD_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "clock.h"
#include "ipmirror.h"
#include "proto.h"
#include "server.h"
#include "tls.h"

#define RBUF_SIZE          (64U << 10)  /* the reader's buffer */

/* Log lines an attacker can cause at will, one limit per kind. */
enum rl_kind { RL_REFUSED, RL_HANDSHAKE, RL_IDLE, RL_STALLED, RL_KINDS };

struct nbd_work {
	struct nbd_work *next;  /* work queue, then reply queue, then cache */
	struct nbd_client *c;
	struct nbd_request req;
	size_t need;   /* payload bytes accounted to the client */
	size_t pooled; /* of which drawn from the server's pool */
	void *buf;
	size_t cap;
	size_t data_len;        /* reply payload bytes (a successful READ) */
	uint8_t hdr[NBD_SIMPLE_REPLY_LEN];
};

struct nbd_client {
	struct nbd_server *s;
	struct nbd_client *next;
	pthread_t reader;
	int fd;
	bool is_unix;
	/* after NBD_OPT_STARTTLS: every byte goes through it. Set by the reader
	 * in the handshake, before any worker sends (see conn.c) */
	struct ipm_tls *tls;
	char peer[64];
	char host[INET6_ADDRSTRLEN];  /* the address max-clients-per-address counts */
	int64_t accepted_ms;
	int64_t deadline_ms;    /* reader only: end of the handshake; 0 after it */
	atomic_int refs;
	atomic_bool dead;       /* connection unusable: stop sending */
	bool done;              /* reader finished (under s->clock) */
	ipm_lun *lun;           /* under s->elock */
	char export_name[IPM_NAME_MAX]; /* to find the LUN again after a role change */
	uint64_t size;
	unsigned bad_logged;
	pthread_mutex_t send_lock;  /* one writer on the socket at a time */
	pthread_mutex_t lock;   /* in-flight accounting and the item cache */
	pthread_cond_t room;
	unsigned inflight;
	size_t inflight_bytes;
	struct nbd_work *cache; /* finished items, buffers kept for reuse */
	size_t cache_bytes;
	/* replies waiting to be sent (under rlock). One owner at a time
	 * (`sending`) sends them all (flat combining: fewer syscalls): a worker,
	 * or the sender thread while the socket is full */
	pthread_mutex_t rlock;
	struct nbd_work *rhead, *rtail;
	bool sending;
	/* the owner's: replies being sent, bytes of the first one already sent */
	struct nbd_work *out;
	size_t out_off;
	int64_t out_progress_ms;  /* last time the socket took bytes */
	struct nbd_client *snext; /* on the sender's list */
	/* reader only: requests decoded but not yet handed to the workers */
	struct nbd_work *bhead, *btail;
	unsigned bcount;
	/* since when the reader executes a request itself (work_run_here), or
	 * 0: for nbd_server_health, like a worker's busy_since_ms */
	_Atomic int64_t run_since_ms;
	size_t rstart, rend;    /* buffered reader */
	uint8_t rbuf[RBUF_SIZE];
};

struct nbd_server {
	/* the engine and the clients' LUNs: read-locked while used, write-locked
	 * by a role change, which replaces the engine under the clients */
	pthread_rwlock_t elock;
	ipm_engine *e;
	unsigned swap_gen;      /* engine replacements so far (under elock) */
	ipm_listen listen;
	unsigned n_threads;
	unsigned max_inflight;  /* per client */
	/* limits from <nbd> (doc/nbd.md) */
	int64_t handshake_ms, send_ms;
	unsigned idle_s, max_clients, max_per_addr;
	int tls_mode;                    /* enum ipm_nbd_tls */
	struct ipm_tls_creds *tls;       /* NULL when tls is off */
	int tcp_fd, unix_fd, wake_fd;
	bool unix_bound, started;
	pthread_t acceptor;
	bool acceptor_started;
	pthread_t *workers;
	unsigned n_workers;
	/* for nbd_server_health (the service watchdog): when the acceptor last
	 * went round its loop, and per worker since when it executes its
	 * current request (0: idle) */
	_Atomic int64_t acceptor_tick_ms;
	_Atomic int64_t *busy_since_ms;
	atomic_uint next_slot;
	/* work queue and recycled work items */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct nbd_work *qhead, *qtail;
	unsigned n_idle;        /* workers waiting on qcond */
	unsigned n_waking;      /* of them, signalled and not yet back: a
				 * second flush before it runs must not wake
				 * another worker for what the first one takes */
	bool q_stop;
	/* the pool of in-flight bytes beyond the clients' free shares */
	pthread_mutex_t plock;
	pthread_cond_t pool_room;
	size_t pool_used;
	/* the sender thread and the clients whose socket was full */
	pthread_t sender;
	bool sender_started;
	pthread_mutex_t slock;
	struct nbd_client *stalled;  /* handed over, not yet taken (under slock) */
	bool s_stop;                 /* under slock */
	int swake_fd;
	/* rate-limited log lines (under rl_lock) */
	pthread_mutex_t rl_lock;
	struct { int64_t window_ms; unsigned logged, dropped; } rl[RL_KINDS];
	/* clients */
	pthread_mutex_t clock;
	struct nbd_client *clients;
	unsigned n_clients;
	bool stopping;
};

/* ---- client.c: the leaves of one client ------------------------------- */

/* A line naming the client's peer. */
void client_log(struct nbd_client *c, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same, rate-limited per kind (lines an attacker can cause at will). */
void client_log_limited(struct nbd_client *c, enum rl_kind k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void client_unref(struct nbd_client *c);
/* Make the connection unusable: wakes the reader and any blocked sender. */
void client_kill(struct nbd_client *c);
/* Request buffers (cap a power of 2; large ones mapped) and their items. */
void *buf_alloc(size_t cap);
void buf_free(void *p, size_t cap);
void item_free(struct nbd_work *w);

/* ---- conn.c: one client ------------------------------------------------ */

/* A client for an accepted fd, one reference (the server's list). */
struct nbd_client *client_new(struct nbd_server *s, int fd, bool is_unix);
/* The client's reader thread: handshake, then requests until the end. */
void *reader_main(void *arg);

/* ---- work.c: requests in flight ---------------------------------------- */

/* An item with room for need payload bytes, once the budgets allow. NULL
 * when the client died or memory ran out (*rc says which). */
struct nbd_work *work_get(struct nbd_client *c, size_t need, int *rc);
/* Give back a list of one client's items (the caller holds a reference). */
void work_release(struct nbd_client *c, struct nbd_work *list);
/* Reader: queue a decoded request; hand the batch to the workers. */
void batch_add(struct nbd_client *c, struct nbd_work *w);
void batch_flush(struct nbd_client *c);
/* Reader: execute a request and send its reply on this thread (a lone
 * request: handing it to a worker would cost a wake-up and nothing else). */
void work_run_here(struct nbd_work *w);
/* Reader: an error reply for a refused request, through the reply queue. */
int simple_reply(struct nbd_client *c, uint32_t err, uint64_t cookie);
void *worker_main(void *arg);
void *sender_main(void *arg);

#endif /* IPM_NBD_INT_H */
