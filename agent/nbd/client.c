/* client.c - the leaves of one NBD client that conn.c and work.c both use:
 * its log lines (rate-limited where a client can cause them at will), its
 * end (kill, last reference) and the buffers of its requests. It calls
 * neither of them. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "nbd_int.h"

#define RL_WINDOW_MS       10000       /* rate-limited log lines: at most */
#define RL_BURST           5           /* RL_BURST per kind per window */
#define BUF_MMAP_MIN       (1U << 20)  /* buffers this large are mapped */

void client_log(struct nbd_client *c, int prio, const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	qb_log(prio, "nbd client %s: %s", c->peer, msg);
}


/* May a line of this kind go out now? *dropped: lines held back since the
 * last one that went out. */
static bool rl_allow(struct nbd_server *s, enum rl_kind k, unsigned *dropped)
{
	int64_t now = ipm_now_ms();
	bool ok;

	pthread_mutex_lock(&s->rl_lock);
	if (now - s->rl[k].window_ms >= RL_WINDOW_MS) {
		s->rl[k].window_ms = now;
		s->rl[k].logged = 0;
	}
	ok = s->rl[k].logged < RL_BURST;
	if (ok) {
		s->rl[k].logged++;
		*dropped = s->rl[k].dropped;
		s->rl[k].dropped = 0;
	} else {
		s->rl[k].dropped++;
	}
	pthread_mutex_unlock(&s->rl_lock);
	return ok;
}


void client_log_limited(struct nbd_client *c, enum rl_kind k, const char *fmt, ...)
{
	unsigned dropped;
	char msg[320];
	va_list ap;

	if (!rl_allow(c->s, k, &dropped))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (dropped)
		client_log(c, LOG_WARNING, "%s (%u similar lines suppressed)", msg, dropped);
	else
		client_log(c, LOG_WARNING, "%s", msg);
}


void client_unref(struct nbd_client *c)
{
	struct nbd_work *w;

	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	if (c->tls && !atomic_load(&c->dead))
		ipm_tls_bye(c->tls);  /* a clean end: close_notify, best effort */
	ipm_tls_free(c->tls);
	close(c->fd);
	while ((w = c->cache)) {
		c->cache = w->next;
		item_free(w);
	}
	pthread_mutex_destroy(&c->rlock);
	pthread_mutex_destroy(&c->send_lock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->room);
	free(c);
}


/* Make the connection unusable: wakes the reader (also when it waits for
 * room in the pool) and any blocked sender. */
void client_kill(struct nbd_client *c)
{
	atomic_store(&c->dead, true);
	shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_lock(&c->lock);
	pthread_cond_broadcast(&c->room);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_lock(&c->s->plock);
	pthread_cond_broadcast(&c->s->pool_room);
	pthread_mutex_unlock(&c->s->plock);
}


/* Large buffers are mapped, so that freeing one gives its memory back at
 * once: from malloc, freed 32 MiB buffers stayed in the threads' arenas and
 * the RSS grew well past the pool's bound. cap is a power of 2. */
void *buf_alloc(size_t cap)
{
	void *p;

	if (cap >= BUF_MMAP_MIN) {
		p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	return posix_memalign(&p, 4096, cap) == 0 ? p : NULL;
}


void buf_free(void *p, size_t cap)
{
	if (p && cap >= BUF_MMAP_MIN)
		munmap(p, cap);
	else
		free(p);
}


void item_free(struct nbd_work *w)
{
	buf_free(w->buf, w->cap);
	free(w);
}

