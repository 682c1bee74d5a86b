/* connection_array.c - n elements {socket, timestamp, status} per direction. */
#include <errno.h>
#include <time.h>

#include "connection_array.h"

int ca_init(struct connection_array *ca, unsigned n)
{
	unsigned i;

	if (n == 0 || n > IPM_CONN_MAX)
		return -EINVAL;
	pthread_mutex_init(&ca->lock, NULL);
	/* waits are measured on the monotonic clock, like the timestamps */
	ipm_cond_init_mono(&ca->changed);
	ca->n = n;
	ca->notify = NULL;
	ca->notify_opaque = NULL;
	for (i = 0; i < n; i++)
		ca->e[i] = (struct ca_elem){ .fd = -1, .status = IPM_LINK_DOWN };
	return 0;
}

void ca_destroy(struct connection_array *ca)
{
	pthread_cond_destroy(&ca->changed);
	pthread_mutex_destroy(&ca->lock);
}

void ca_set_notify(struct connection_array *ca, void (*fn)(void *), void *opaque)
{
	pthread_mutex_lock(&ca->lock);
	ca->notify = fn;
	ca->notify_opaque = opaque;
	pthread_mutex_unlock(&ca->lock);
}

static void set_status(struct connection_array *ca, unsigned i, enum ipm_link_state s)
{
	if (ca->e[i].status != s) {
		ca->e[i].status = s;
		pthread_cond_broadcast(&ca->changed);
		if (ca->notify)
			ca->notify(ca->notify_opaque);
	}
}

void ca_set_up(struct connection_array *ca, unsigned i, int fd)
{
	pthread_mutex_lock(&ca->lock);
	ca->e[i].fd = fd;
	ca->e[i].timestamp_ms = ca->e[i].up_ms = ipm_now_ms();
	set_status(ca, i, IPM_LINK_UP);
	pthread_mutex_unlock(&ca->lock);
}

void ca_set_down(struct connection_array *ca, unsigned i)
{
	pthread_mutex_lock(&ca->lock);
	ca->e[i].fd = -1;
	set_status(ca, i, IPM_LINK_DOWN);
	pthread_mutex_unlock(&ca->lock);
}

void ca_release(struct connection_array *ca, unsigned i, int fd)
{
	pthread_mutex_lock(&ca->lock);
	if (ca->e[i].fd == fd) {
		ca->e[i].fd = -1;
		set_status(ca, i, IPM_LINK_DOWN);
	}
	pthread_mutex_unlock(&ca->lock);
}

void ca_refresh(struct connection_array *ca, unsigned i)
{
	int64_t now = ipm_now_ms();

	pthread_mutex_lock(&ca->lock);
	ca->e[i].timestamp_ms = now;
	pthread_mutex_unlock(&ca->lock);
}

void ca_refresh_all(struct connection_array *ca)
{
	int64_t now = ipm_now_ms();
	unsigned i;

	pthread_mutex_lock(&ca->lock);
	for (i = 0; i < ca->n; i++)
		ca->e[i].timestamp_ms = now;
	pthread_mutex_unlock(&ca->lock);
}

void ca_refresh_since(struct connection_array *ca, int64_t since_ms)
{
	int64_t now = ipm_now_ms();
	unsigned i;

	pthread_mutex_lock(&ca->lock);
	for (i = 0; i < ca->n; i++)
		if (ca->e[i].status == IPM_LINK_UP && ca->e[i].up_ms >= since_ms)
			ca->e[i].timestamp_ms = now;
	pthread_mutex_unlock(&ca->lock);
}

unsigned ca_mark_stale_down(struct connection_array *ca, int64_t timeout_ms)
{
	int64_t now = ipm_now_ms();
	unsigned i, marked = 0;

	pthread_mutex_lock(&ca->lock);
	for (i = 0; i < ca->n; i++) {
		if (ca->e[i].status == IPM_LINK_UP && now - ca->e[i].timestamp_ms > timeout_ms) {
			set_status(ca, i, IPM_LINK_DOWN);
			marked++;
		}
	}
	pthread_mutex_unlock(&ca->lock);
	return marked;
}

enum ipm_link_state ca_status(struct connection_array *ca, unsigned i)
{
	enum ipm_link_state s;

	pthread_mutex_lock(&ca->lock);
	s = ca->e[i].status;
	pthread_mutex_unlock(&ca->lock);
	return s;
}

unsigned ca_count_up(struct connection_array *ca)
{
	unsigned i, up = 0;

	pthread_mutex_lock(&ca->lock);
	for (i = 0; i < ca->n; i++)
		up += ca->e[i].status == IPM_LINK_UP;
	pthread_mutex_unlock(&ca->lock);
	return up;
}

enum ipm_link_state ca_wait_change(struct connection_array *ca, unsigned i,
				   enum ipm_link_state from, int timeout_ms)
{
	struct timespec dl = ipm_mono_deadline(timeout_ms);
	enum ipm_link_state s;

	pthread_mutex_lock(&ca->lock);
	while (ca->e[i].status == from &&
	       pthread_cond_timedwait(&ca->changed, &ca->lock, &dl) != ETIMEDOUT)
		;
	s = ca->e[i].status;
	pthread_mutex_unlock(&ca->lock);
	return s;
}

void ca_snapshot(struct connection_array *ca, ipm_conn_status *out, bool outgoing)
{
	int64_t now = ipm_now_ms();
	unsigned i;

	pthread_mutex_lock(&ca->lock);
	for (i = 0; i < ca->n; i++) {
		out[i].index = (int)i;
		out[i].status = ca->e[i].status;
		out[i].age_ms = ca->e[i].timestamp_ms ? now - ca->e[i].timestamp_ms : -1;
		out[i].outgoing = outgoing;
	}
	pthread_mutex_unlock(&ca->lock);
}
