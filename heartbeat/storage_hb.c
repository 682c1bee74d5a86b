/* storage_hb.c - storage-path heartbeat: the volume and its thread
 * (see storage_hb.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <qb/qblog.h>

#include "clock.h"
#include "crc32c.h"
#include "connection_array.h"
#include "fileio.h"
#include "heartbeat.h"
#include "storage_hb.h"

#define TICK_MS 100          /* how often the peer's slot is read */
#define STALL_MS 1000        /* a frame cut short may wait this long */

struct storage_hb {
	char path[4096];
	char self[IPM_NAME_MAX], peer[IPM_NAME_MAX];
	unsigned self_slot, peer_slot;
	int fd;
	int64_t interval_ms;              /* atomic: a reload sets it */
	struct heartbeat *hb;
	int (*send)(void *opaque, unsigned slot, const uint8_t *data);
	void *opaque;

	pthread_mutex_t lock;        /* everything below */
	pthread_cond_t wake;
	bool running, started;
	pthread_t thread;
	struct hb_status table;      /* the peer's entry */
	int read_errno;              /* last reported problem with the peer's slot */
	int send_errno;              /* last reported problem sending ours */
};

/* One serial sequence per process, like the UDP heartbeat's: a role change
 * re-creates the engine, and the peer must not see the serial go back. */
static uint64_t process_serial;

/* ---- the volume ---------------------------------------------------------- */

static int volume_size(int fd, const struct stat *st, uint64_t *size)
{
	if (S_ISREG(st->st_mode)) {
		*size = (uint64_t)st->st_size;
		return 0;
	}
	if (S_ISBLK(st->st_mode))
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	return -EINVAL;
}

static int open_volume(struct storage_hb *s, ipm_error *err)
{
	struct stat st;
	uint64_t size;
	bool created = false;
	int rc;

	s->fd = open_own_file(s->path, O_RDWR | O_CREAT, "heartbeat volume", &created, err);
	if (s->fd < 0)
		return s->fd;
	if (fstat(s->fd, &st) < 0)
		return ipm_fail(err, -errno, "heartbeat volume %s: %s", s->path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return ipm_fail(err, -EINVAL,
				"heartbeat volume %s is neither a regular file nor a block device",
				s->path);
	if (created && ftruncate(s->fd, IPM_HBVOL_SIZE) < 0)
		return ipm_fail(err, -errno, "heartbeat volume %s: cannot size it: %s", s->path,
				strerror(errno));
	if (created && fstat(s->fd, &st) < 0)
		return ipm_fail(err, -errno, "heartbeat volume %s: %s", s->path, strerror(errno));
	rc = volume_size(s->fd, &st, &size);
	if (rc < 0)
		return ipm_fail(err, rc, "heartbeat volume %s: size unknown: %s", s->path,
				strerror(-rc));
	if (size < IPM_HBVOL_MIN)
		return ipm_fail(err, -EINVAL,
				"heartbeat volume %s is too small: %llu bytes, need at least %u (%u slots of %u bytes)",
				s->path, (unsigned long long)size, IPM_HBVOL_MIN, HBS_SLOTS,
				HBS_SLOT_LEN);
	if (created)
		qb_log(LOG_NOTICE, "heartbeat volume %s created (%u bytes)", s->path, IPM_HBVOL_SIZE);
	return 0;
}

int storage_hb_open(const struct shb_params *p, struct storage_hb **out, ipm_error *err)
{
	struct storage_hb *s;
	int rc;

	if (p->self_slot >= HBS_SLOTS || p->peer_slot >= HBS_SLOTS || p->self_slot == p->peer_slot)
		return ipm_fail(err, -EINVAL, "heartbeat volume: bad slots %u/%u", p->self_slot,
				p->peer_slot);
	if (!p->path || p->path[0] != '/')
		return ipm_fail(err, -EINVAL, "heartbeat volume \"%s\" must be an absolute path",
				p->path ? p->path : "");
	s = calloc(1, sizeof(*s));
	if (!s)
		return ipm_fail(err, -ENOMEM, "out of memory");
	s->fd = -1;
	snprintf(s->path, sizeof(s->path), "%s", p->path);
	snprintf(s->self, sizeof(s->self), "%s", p->self);
	snprintf(s->peer, sizeof(s->peer), "%s", p->peer);
	s->self_slot = p->self_slot;
	s->peer_slot = p->peer_slot;
	s->interval_ms = (int64_t)(p->interval * 1000.0 + 0.5);
	s->hb = p->hb;
	s->send = p->send;
	s->opaque = p->opaque;
	pthread_mutex_init(&s->lock, NULL);
	ipm_cond_init_mono(&s->wake);
	rc = open_volume(s, err);
	if (rc < 0) {
		storage_hb_destroy(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ---- the thread ------------------------------------------------------------ */

static int64_t realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Report a problem once, not every tick; 0 reports that it is over. */
static void report_change(struct storage_hb *s, int *last, int rc, const char *what,
			  const char *why)
{
	if (rc == *last)
		return;
	if (rc)
		qb_log(LOG_WARNING, "peer %s: storage heartbeat: %s: %s", s->peer, what, why);
	else
		qb_log(LOG_NOTICE, "peer %s: storage heartbeat: %s again", s->peer, what);
	*last = rc;
}

/* Our record into our slot, then to the peer. */
static void write_own(struct storage_hb *s, uint32_t flags)
{
	struct hb_record r = { .slot = (uint16_t)s->self_slot, .flags = flags };
	uint8_t slot[HBS_SLOT_LEN];
	int rc;

	snprintf(r.node, sizeof(r.node), "%s", s->self);
	r.boot_id = heartbeat_boot_id();
	r.serial = __atomic_add_fetch(&process_serial, 1, __ATOMIC_RELAXED);
	r.time_ms = (uint64_t)realtime_ms();
	if (hb_record_encode(slot, &r) < 0)
		return;
	if (pwrite(s->fd, slot, sizeof(slot), (off_t)s->self_slot * HBS_SLOT_LEN) != sizeof(slot))
		qb_log(LOG_WARNING, "heartbeat volume %s: writing slot %u: %s", s->path,
		       s->self_slot, strerror(errno));
	rc = s->send ? s->send(s->opaque, s->self_slot, slot) : -ENOTCONN;
	report_change(s, &s->send_errno, rc == -ENOTCONN ? 0 : rc, "sending our record",
		      rc < 0 ? strerror(-rc) : "");
}

/* The peer's slot from our local copy into the status table. */
static void read_peer(struct storage_hb *s)
{
	uint8_t slot[HBS_SLOT_LEN];
	struct hb_record r;
	ipm_error err = { "" };
	enum hb_update u;
	int rc;

	if (pread(s->fd, slot, sizeof(slot), (off_t)s->peer_slot * HBS_SLOT_LEN) != sizeof(slot))
		rc = ipm_fail(&err, -EIO, "reading slot %u: %s", s->peer_slot, strerror(errno));
	else
		rc = hb_record_decode(slot, s->peer, s->peer_slot, &r, &err);
	/* an empty slot is normal until the peer's first record arrives */
	report_change(s, &s->read_errno, rc == -ENODATA ? 0 : rc, "the peer's slot", err.msg);
	if (rc < 0)
		return;
	pthread_mutex_lock(&s->lock);
	u = hb_status_update(&s->table, &r, ipm_now_ms());
	pthread_mutex_unlock(&s->lock);
	if (u == HBS_ADVANCED && (r.flags & HBS_F_RETIRED))
		heartbeat_storage_peer_retired(s->hb);
	else if (u == HBS_ADVANCED)
		heartbeat_storage_record(s->hb, r.boot_id);
}

static void *thread_main(void *arg)
{
	struct storage_hb *s = arg;
	int64_t next_write = ipm_now_ms(), now, interval;
	struct timespec dl;

	pthread_mutex_lock(&s->lock);
	while (s->running) {
		pthread_mutex_unlock(&s->lock);
		now = ipm_now_ms();
		if (now >= next_write) {
			write_own(s, 0);
			/* a fixed schedule, like the UDP sender's */
			interval = __atomic_load_n(&s->interval_ms, __ATOMIC_RELAXED);
			next_write += interval;
			if (next_write < now)
				next_write = now + interval;
		}
		read_peer(s);
		now = ipm_now_ms() + TICK_MS;
		dl.tv_sec = now / 1000;
		dl.tv_nsec = (long)(now % 1000) * 1000000;
		pthread_mutex_lock(&s->lock);
		if (s->running)
			pthread_cond_timedwait(&s->wake, &s->lock, &dl);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int storage_hb_start(struct storage_hb *s, ipm_error *err)
{
	int rc;

	pthread_mutex_lock(&s->lock);
	if (s->started) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	s->running = true;
	rc = pthread_create(&s->thread, NULL, thread_main, s);
	s->started = rc == 0;
	s->running = s->started;
	pthread_mutex_unlock(&s->lock);
	if (rc)
		return ipm_fail(err, -rc, "storage heartbeat thread: %s", strerror(rc));
	qb_log(LOG_INFO, "peer %s: storage heartbeat on %s (slot %u, the peer's %u) every %.1f s",
	       s->peer, s->path, s->self_slot, s->peer_slot, s->interval_ms / 1000.0);
	return 0;
}

void storage_hb_stop(struct storage_hb *s)
{
	bool started;

	pthread_mutex_lock(&s->lock);
	started = s->started;
	s->running = false;
	s->started = false;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
	if (started)
		pthread_join(s->thread, NULL);
}

void storage_hb_retire(struct storage_hb *s)
{
	storage_hb_stop(s);
	write_own(s, HBS_F_RETIRED);
}

void storage_hb_destroy(struct storage_hb *s)
{
	if (!s)
		return;
	storage_hb_stop(s);
	if (s->fd >= 0)
		close(s->fd);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- from the network ---------------------------------------------------- */

int storage_hb_apply(struct storage_hb *s, unsigned slot, const uint8_t *data, ipm_error *err)
{
	struct hb_record r;
	int rc;

	/* never let the peer overwrite our own slot */
	if (slot != s->peer_slot)
		return ipm_fail(err, -EACCES,
				"peer %s sent slot %u, its slot here is %u (different slot layout?)",
				s->peer, slot, s->peer_slot);
	rc = hb_record_decode(data, s->peer, s->peer_slot, &r, err);
	if (rc < 0)
		return rc;
	if (pwrite(s->fd, data, HBS_SLOT_LEN, (off_t)slot * HBS_SLOT_LEN) != HBS_SLOT_LEN)
		return ipm_fail(err, -errno, "heartbeat volume %s: writing slot %u: %s", s->path,
				slot, strerror(errno));
	return 0;
}

/* ---- queries ------------------------------------------------------------- */

void storage_hb_set_interval(struct storage_hb *s, double interval)
{
	__atomic_store_n(&s->interval_ms, (int64_t)(interval * 1000.0 + 0.5), __ATOMIC_RELAXED);
}

const char *storage_hb_path(const struct storage_hb *s)
{
	return s->path;
}

void storage_hb_peer(struct storage_hb *s, struct hb_status *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->table;
	pthread_mutex_unlock(&s->lock);
}

/* ---- the frame ------------------------------------------------------------- */

/* Finish a frame already partly in the socket, waiting at most STALL_MS. */
static int send_rest(int fd, const uint8_t *p, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int64_t deadline = ipm_now_ms() + STALL_MS;
	ssize_t n;

	while (len > 0) {
		if (ipm_now_ms() >= deadline || poll(&pfd, 1, STALL_MS) <= 0)
			return -ETIMEDOUT;
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		}
	}
	return 0;
}

/* The same through TLS: nothing is taken unless the socket has room; the
 * session then holds what the socket did not take, sent within STALL_MS. */
static int send_tls(int fd, struct ipm_tls *tls, const uint8_t *buf, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	struct iovec iov = { (void *)buf, len };
	int64_t deadline = ipm_now_ms() + STALL_MS;
	ssize_t n;

	if (poll(&pfd, 1, 0) <= 0 || !(pfd.revents & POLLOUT))
		return -EAGAIN;
	n = ipm_tls_sendv_nb(tls, &iov, 1, len);
	while (n >= 0 && ipm_tls_send_pending(tls)) {
		if (ipm_now_ms() >= deadline || poll(&pfd, 1, STALL_MS) <= 0) {
			n = -ETIMEDOUT;
			break;
		}
		n = ipm_tls_sendv_nb(tls, NULL, 0, 0);
		if (n == -EAGAIN)
			n = 0;
	}
	if (n < 0 && n != -EAGAIN)
		shutdown(fd, SHUT_RDWR);
	return n < 0 ? (int)n : 0;
}

int storage_hb_send_frame(int fd, struct ipm_tls *tls, unsigned slot, const uint8_t *data)
{
	struct wire_frame f = {
		.magic = WIRE_FRAME_MAGIC, .type = WIRE_HBSLOT, .lun = slot,
		.len = HBS_SLOT_LEN, .offset = (uint64_t)slot * HBS_SLOT_LEN,
		.length = HBS_SLOT_LEN, .csum = crc32c(0, data, HBS_SLOT_LEN),
	};
	uint8_t buf[WIRE_FRAME_LEN + HBS_SLOT_LEN];
	ssize_t n;
	int rc;

	wire_frame_encode(buf, &f);
	memcpy(buf + WIRE_FRAME_LEN, data, HBS_SLOT_LEN);
	if (tls)
		return send_tls(fd, tls, buf, sizeof(buf));
	n = send(fd, buf, sizeof(buf), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n == (ssize_t)sizeof(buf))
		return 0;
	if (n < 0)
		return errno == EAGAIN ? -EAGAIN : -errno;
	rc = send_rest(fd, buf + n, sizeof(buf) - (size_t)n);
	if (rc < 0)
		shutdown(fd, SHUT_RDWR);
	return rc;
}
