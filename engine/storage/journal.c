/* journal.c - the persistent per-LUN journal; the format is in doc/journal.md.
 *
 * The file is a header followed by records appended with pwrite at the
 * tracked end. A record counts only when its header and data CRC32C match and
 * its seq follows the previous one, so a crash mid-append leaves a bad record
 * with nothing valid after it: open() truncates that tail. A bad record with
 * valid records after it is damage, not a crash: open() refuses and leaves
 * the file alone, because the writes journaled after it must not be lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "crc32c.h"
#include "endian.h"
#include "fileio.h"
#include "journal.h"

#define JH_MAGIC "IPMJRNL1"
#define JH_VERSION 1
#define JH_LEN 128             /* header bytes written by this version */
#define JH_MAX_LEN 4096        /* a later version may grow it, up to this */
#define JH_CRC_OFF 124

#define JR_MAGIC 0x524a5049u   /* "IPJR" as little-endian bytes */
#define JR_LEN 40
#define JR_CRC_OFF 36
#define JR_MAX_DATA (32u << 20)   /* = the largest request, WIRE_MAX_PAYLOAD */

#define SCAN_CHUNK (1u << 20)
#define ITER_CHUNK (4u << 20)     /* the iterator's read-ahead */
#define ITER_OWN_MIN (256u << 10) /* journal_iter_next_owned: data this big is read into its own buffer */

struct journal {
	int fd;
	char *path;
	char lun[IPM_NAME_MAX];
	uint64_t lun_size;
	uint64_t max_bytes;
	uint64_t id;
	uint32_t hdr_len;
	/* written by append/reset, read by an iterator in another thread */
	uint64_t end;                /* file offset after the last record */
	uint64_t records;
	/* group commit (journal_sync_to): bytes ever appended (never goes
	 * back, not even at a reset) and how many of them are durable; one
	 * fdatasync at a time, those who come meanwhile wait for the next */
	uint64_t appended;           /* atomic: written by append, read by syncers */
	pthread_mutex_t sync_lock;   /* guards durable, failed, syncing */
	pthread_cond_t sync_cond;
	uint64_t durable;
	uint64_t failed;             /* a failed fdatasync covered up to here */
	int fail_rc;
	bool syncing;
};

struct journal_iter {
	struct journal *j;
	uint64_t pos;                /* file offset of the next record */
	uint64_t index;              /* records returned so far */
	uint8_t *buf;                /* file bytes [win, win + win_len) */
	size_t cap;
	uint64_t win;
	size_t win_len;
	/* journal_iter_next_owned: big data goes straight into a buffer of
	 * its own (one pread, no copy), and after such a record the next
	 * header is read alone, so that no read-ahead takes the next data */
	bool own;
	bool last_big;
	void *owned;                 /* the last record's, until handed over */
};

struct rec_hdr {
	uint16_t type, flags;
	uint64_t seq, offset, length;
	uint32_t data_crc;
};

/* ---- header ---------------------------------------------------------------- */

static void header_encode(const struct journal *j, uint8_t b[JH_LEN])
{
	memset(b, 0, JH_LEN);
	memcpy(b, JH_MAGIC, 8);
	le_put32(b + 8, JH_VERSION);
	le_put32(b + 12, JH_LEN);
	memcpy(b + 16, j->lun, strlen(j->lun));
	le_put64(b + 80, j->lun_size);
	le_put64(b + 88, j->id);
	le_put64(b + 96, (uint64_t)time(NULL));
	le_put32(b + JH_CRC_OFF, crc32c(0, b, JH_CRC_OFF));
}

static uint64_t random_id(void)
{
	uint64_t id = 0;
	struct timespec ts;

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != (ssize_t)sizeof(id)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		id = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
		     (uint64_t)getpid() << 32;
	}
	return id ? id : 1;
}

/* A fresh journal: header only, durable, directory entry included. */
static int write_header(struct journal *j, ipm_error *err)
{
	uint8_t b[JH_LEN];
	int rc;

	j->id = random_id();
	j->hdr_len = JH_LEN;
	header_encode(j, b);
	rc = pwritev_full(j->fd, &(struct iovec){ b, JH_LEN }, 1, 0);
	if (rc == 0 && (ftruncate(j->fd, JH_LEN) < 0 || fdatasync(j->fd) < 0))
		rc = -errno;
	if (rc < 0)
		return ipm_fail(err, rc, "journal %s: cannot write its header: %s", j->path,
			    strerror(-rc));
	rc = fsync_dir_of(j->path);
	if (rc < 0)
		return ipm_fail(err, rc, "journal %s: cannot sync its directory: %s", j->path,
			    strerror(-rc));
	return 0;
}

static int header_check(struct journal *j, uint64_t file_size, ipm_error *err)
{
	uint8_t b[JH_LEN];
	char name[IPM_NAME_MAX + 1];
	ssize_t n;
	uint32_t version, hdr_len;
	uint64_t size;

	n = pread_full(j->fd, b, JH_LEN, 0);
	if (n < 0)
		return ipm_fail(err, (int)n, "journal %s: cannot read its header: %s", j->path,
			    strerror((int)-n));
	if (n < 8 || memcmp(b, JH_MAGIC, 8) != 0)
		return ipm_fail(err, -EINVAL, "%s is not an ipmirror journal (bad magic); refusing to use or overwrite it",
			    j->path);
	version = le_get32(b + 8);
	if (version != JH_VERSION)
		return ipm_fail(err, -EINVAL, "journal %s has format version %u; this ipmirror reads version %u",
			    j->path, version, JH_VERSION);
	if (n < JH_LEN)
		return ipm_fail(err, -EUCLEAN, "journal %s: header truncated (%zd of %d bytes)", j->path, n,
			    JH_LEN);
	if (le_get32(b + JH_CRC_OFF) != crc32c(0, b, JH_CRC_OFF))
		return ipm_fail(err, -EUCLEAN, "journal %s: header is corrupt (checksum mismatch)", j->path);
	hdr_len = le_get32(b + 12);
	if (hdr_len < JH_LEN || hdr_len > JH_MAX_LEN || hdr_len % 8 || hdr_len > file_size)
		return ipm_fail(err, -EUCLEAN, "journal %s: header is corrupt (header size %u)", j->path,
			    hdr_len);
	memcpy(name, b + 16, IPM_NAME_MAX);
	name[IPM_NAME_MAX] = '\0';
	if (strcmp(name, j->lun) != 0)
		return ipm_fail(err, -EINVAL, "journal %s belongs to LUN \"%s\", not \"%s\"; check the <journal path> of the LUNs",
			    j->path, name, j->lun);
	size = le_get64(b + 80);
	/* records of a LUN grown since (doc/resize.md) are all in range */
	if (size > j->lun_size)
		return ipm_fail(err, -EINVAL, "journal %s was written for LUN %s of %llu bytes, but the LUN now has %llu bytes; if it was resized on purpose, resync first and then remove the journal",
			    j->path, j->lun, (unsigned long long)size,
			    (unsigned long long)j->lun_size);
	j->id = le_get64(b + 88);
	j->hdr_len = hdr_len;
	return 0;
}

/* ---- records ----------------------------------------------------------- */

static uint64_t data_len(uint16_t type, uint64_t length)
{
	return type == JR_WRITE ? (length + 7) & ~7ull : 0;
}

/* Magic and header CRC: the record header was written by a journal. */
static bool rec_hdr_decode(const uint8_t b[JR_LEN], struct rec_hdr *h)
{
	if (le_get32(b) != JR_MAGIC || le_get32(b + JR_CRC_OFF) != crc32c(0, b, JR_CRC_OFF))
		return false;
	h->type = le_get16(b + 4);
	h->flags = le_get16(b + 6);
	h->seq = le_get64(b + 8);
	h->offset = le_get64(b + 16);
	h->length = le_get64(b + 24);
	h->data_crc = le_get32(b + 32);
	return true;
}

static bool range_ok(const struct journal *j, uint16_t type, uint64_t off, uint64_t len)
{
	if (type < JR_WRITE || type > JR_FLUSH)
		return false;
	if (type == JR_WRITE && len > JR_MAX_DATA)
		return false;
	return type == JR_FLUSH || (off <= j->lun_size && len <= j->lun_size - off);
}

/* Read and check the record at pos, which must end by limit and carry seq.
 * 0 valid (data in *buf for WRITE), 1 bad (*why says how), <0 I/O error. */
static int read_record(struct journal *j, uint64_t pos, uint64_t limit, uint64_t seq,
		       struct rec_hdr *h, uint8_t **buf, size_t *cap, const char **why)
{
	uint8_t b[JR_LEN];
	uint64_t dlen;
	ssize_t n;
	void *nb;

	if (limit - pos < JR_LEN) {
		*why = "record header cut short";
		return 1;
	}
	n = pread_full(j->fd, b, JR_LEN, pos);
	if (n < 0)
		return (int)n;
	if (n < JR_LEN) {
		*why = "record header cut short";
		return 1;
	}
	if (!rec_hdr_decode(b, h)) {
		*why = le_get32(b) != JR_MAGIC ? "bad record magic" : "record header checksum mismatch";
		return 1;
	}
	if (h->seq != seq) {
		*why = "sequence number out of order";
		return 1;
	}
	if (!range_ok(j, h->type, h->offset, h->length)) {
		*why = "invalid type or range";
		return 1;
	}
	dlen = data_len(h->type, h->length);
	if (limit - pos - JR_LEN < dlen) {
		*why = "record data cut short";
		return 1;
	}
	if (h->type != JR_WRITE) {
		if (h->data_crc != 0) {
			*why = "data checksum mismatch";
			return 1;
		}
		return 0;
	}
	if (*cap < dlen || !*buf) {
		nb = realloc(*buf, dlen ? dlen : 8);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = dlen ? dlen : 8;
	}
	n = pread_full(j->fd, *buf, dlen, pos + JR_LEN);
	if (n < 0)
		return (int)n;
	if ((uint64_t)n < dlen) {
		*why = "record data cut short";
		return 1;
	}
	if (crc32c(0, *buf, h->length) != h->data_crc) {
		*why = "data checksum mismatch";
		return 1;
	}
	return 0;
}

/* Is there a record header (magic, CRC, seq >= seq) at an 8-byte aligned
 * offset in [from, limit)? Sets *at. <0 on I/O error. */
static int find_valid_after(struct journal *j, uint64_t from, uint64_t limit, uint64_t seq,
			    uint64_t *at)
{
	uint8_t *buf = malloc(SCAN_CHUNK + JR_LEN);
	struct rec_hdr h;
	uint64_t base;
	ssize_t n;
	size_t i;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (base = from; base + JR_LEN <= limit; base += SCAN_CHUNK) {
		n = pread_full(j->fd, buf, SCAN_CHUNK + JR_LEN, base);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		for (i = 0; i + JR_LEN <= (size_t)n && i < SCAN_CHUNK; i += 8) {
			if (le_get32(buf + i) == JR_MAGIC && rec_hdr_decode(buf + i, &h) &&
			    h.seq >= seq) {
				*at = base + i;
				rc = 1;
				goto out;
			}
		}
	}
out:
	free(buf);
	return rc;
}

static int corrupt_msg(struct journal *j, ipm_error *err, uint64_t index, uint64_t pos,
		       const char *why)
{
	return ipm_fail(err, -EUCLEAN, "journal %s: record %llu at byte offset %llu is corrupt (%s)",
		    j->path, (unsigned long long)index, (unsigned long long)pos, why);
}

/* A bad record at pos: a torn tail is cut off, damage before valid records
 * is refused without touching the file. */
static int bad_record(struct journal *j, uint64_t pos, uint64_t size, uint64_t seq,
		      const char *why, uint64_t *dropped, ipm_error *err)
{
	uint8_t b[JR_LEN];
	struct rec_hdr h;
	uint64_t from = pos + 8, at = 0;
	int rc;

	/* a record whose own header is intact: do not look for records inside
	 * its payload (a host may well have written a journal onto the LUN) */
	if (size - pos >= JR_LEN && pread_full(j->fd, b, JR_LEN, pos) == JR_LEN &&
	    rec_hdr_decode(b, &h) && h.seq == seq && range_ok(j, h.type, h.offset, h.length) &&
	    size - pos - JR_LEN >= data_len(h.type, h.length))
		from = pos + JR_LEN + data_len(h.type, h.length);
	rc = find_valid_after(j, from, size, seq, &at);
	if (rc < 0)
		return ipm_fail(err, rc, "journal %s: cannot read: %s", j->path, strerror(-rc));
	if (rc > 0)
		return ipm_fail(err, -EUCLEAN,
			    "journal %s: record %llu at byte offset %llu is corrupt (%s) but valid records follow (at byte offset %llu); refusing to use the journal, the file is left untouched (moving it aside loses the journaled writes: the mirror then needs a full resync)",
			    j->path, (unsigned long long)seq, (unsigned long long)pos, why,
			    (unsigned long long)at);
	if (ftruncate(j->fd, (off_t)pos) < 0 || fdatasync(j->fd) < 0)
		return ipm_fail(err, -errno, "journal %s: cannot truncate the torn record at byte offset %llu: %s",
			    j->path, (unsigned long long)pos, strerror(errno));
	*dropped = size - pos;
	return 0;
}

/* Walk every record: count them, find the end, deal with a bad one. */
static int scan(struct journal *j, uint64_t size, uint64_t *dropped, ipm_error *err)
{
	uint64_t pos = j->hdr_len, seq = 1;
	struct rec_hdr h;
	const char *why = NULL;
	uint8_t *buf = NULL;
	size_t cap = 0;
	int rc = 0;

	while (pos < size) {
		rc = read_record(j, pos, size, seq, &h, &buf, &cap, &why);
		if (rc < 0) {
			rc = ipm_fail(err, rc, "journal %s: cannot read record %llu at byte offset %llu: %s",
				  j->path, (unsigned long long)seq, (unsigned long long)pos,
				  strerror(-rc));
			break;
		}
		if (rc > 0) {
			rc = bad_record(j, pos, size, seq, why, dropped, err);
			break;
		}
		pos += JR_LEN + data_len(h.type, h.length);
		seq++;
	}
	free(buf);
	j->end = pos;
	j->records = seq - 1;
	return rc;
}

/* ---- open / close -------------------------------------------------------- */

static int open_file(struct journal *j, bool *created, ipm_error *err)
{
	j->fd = open_own_file(j->path, O_RDWR | O_CREAT, "journal", created, err);
	if (j->fd < 0)
		return j->fd;
	/* two daemons appending to one journal would interleave garbage */
	if (flock(j->fd, LOCK_EX | LOCK_NB) < 0)
		return ipm_fail(err, errno == EWOULDBLOCK ? -EBUSY : -errno,
			    "journal %s is in use by another process (%s)", j->path, strerror(errno));
	return 0;
}

int journal_open(const char *path, const char *lun, uint64_t lun_size, uint64_t max_bytes,
		 struct journal **out, uint64_t *dropped_tail_bytes, ipm_error *err)
{
	struct journal *j;
	bool created = false;
	struct stat st;
	uint64_t dropped = 0;
	int rc;

	*out = NULL;
	if (dropped_tail_bytes)
		*dropped_tail_bytes = 0;
	if (!lun || !*lun || strlen(lun) >= IPM_NAME_MAX)
		return ipm_fail(err, -EINVAL, "journal %s: invalid LUN name", path);
	j = calloc(1, sizeof(*j));
	if (!j || !(j->path = strdup(path))) {
		free(j);
		return ipm_fail(err, -ENOMEM, "out of memory");
	}
	j->fd = -1;
	pthread_mutex_init(&j->sync_lock, NULL);
	pthread_cond_init(&j->sync_cond, NULL);
	strcpy(j->lun, lun);
	j->lun_size = lun_size;
	j->max_bytes = max_bytes;
	rc = open_file(j, &created, err);
	if (rc < 0)
		goto out;
	if (fstat(j->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = ipm_fail(err, -EINVAL, "journal %s is not a regular file", path);
		goto out;
	}
	/* empty: we created it, or a crash came before its header was written */
	if (created || st.st_size == 0) {
		rc = write_header(j, err);
		j->end = j->hdr_len;
		goto out;
	}
	rc = header_check(j, (uint64_t)st.st_size, err);
	if (rc < 0)
		goto out;
	rc = scan(j, (uint64_t)st.st_size, &dropped, err);
out:
	if (rc < 0) {
		journal_close(j);
		return rc;
	}
	if (dropped_tail_bytes)
		*dropped_tail_bytes = dropped;
	*out = j;
	return 0;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	pthread_cond_destroy(&j->sync_cond);
	pthread_mutex_destroy(&j->sync_lock);
	free(j->path);
	free(j);
}

/* ---- append ------------------------------------------------------------ */

void journal_set_max(struct journal *j, uint64_t max_bytes)
{
	j->max_bytes = max_bytes;
}

int journal_append(struct journal *j, struct journal_rec *rec, ipm_error *err)
{
	static const uint8_t zeros[8];
	uint8_t b[JR_LEN];
	struct iovec iov[3];
	uint64_t seq = j->records + 1, size;
	uint32_t dcrc = 0;
	int cnt = 1, rc;

	if (!range_ok(j, rec->type, rec->offset, rec->length) ||
	    (rec->type == JR_WRITE && rec->length && !rec->data))
		return ipm_fail(err, -EINVAL, "journal %s: invalid request (type %u, offset %llu, length %llu)",
			    j->path, rec->type, (unsigned long long)rec->offset,
			    (unsigned long long)rec->length);
	size = JR_LEN + data_len(rec->type, rec->length);
	if (j->end + size > j->max_bytes)
		return ipm_fail(err, -ENOSPC, "journal %s is full (%llu bytes, limit %llu)", j->path,
			    (unsigned long long)j->end, (unsigned long long)j->max_bytes);
	memset(b, 0, sizeof(b));
	le_put32(b, JR_MAGIC);
	le_put16(b + 4, rec->type);
	le_put16(b + 6, rec->flags);
	le_put64(b + 8, seq);
	le_put64(b + 16, rec->offset);
	le_put64(b + 24, rec->length);
	if (rec->type == JR_WRITE) /* 0: the caller does not have it */
		dcrc = rec->data_crc ? rec->data_crc : crc32c(0, rec->data, rec->length);
	le_put32(b + 32, dcrc);
	le_put32(b + JR_CRC_OFF, crc32c(0, b, JR_CRC_OFF));
	iov[0] = (struct iovec){ b, JR_LEN };
	if (rec->type == JR_WRITE && rec->length) {
		iov[cnt++] = (struct iovec){ (void *)rec->data, rec->length };
		if (rec->length & 7)
			iov[cnt++] = (struct iovec){ (void *)zeros, 8 - (rec->length & 7) };
	}
	rc = pwritev_full(j->fd, iov, cnt, j->end);
	if (rc < 0) {
		/* drop what reached the file so the next append starts clean */
		if (ftruncate(j->fd, (off_t)j->end) < 0) {
			/* best effort: open() would cut it as a torn tail */
		}
		if (rc == -EDQUOT)
			rc = -ENOSPC;
		return ipm_fail(err, rc, "journal %s: cannot append: %s", j->path, strerror(-rc));
	}
	__atomic_store_n(&j->end, j->end + size, __ATOMIC_RELEASE);
	__atomic_store_n(&j->records, seq, __ATOMIC_RELEASE);
	__atomic_store_n(&j->appended, j->appended + size, __ATOMIC_RELEASE);
	rec->seq = seq;
	return 0;
}

uint64_t journal_mark(const struct journal *j)
{
	return __atomic_load_n(&j->appended, __ATOMIC_ACQUIRE);
}

/* Group commit: whoever finds no fdatasync running starts one for
 * everything appended by then; a caller whose records came after that one
 * started waits for it and then starts (or joins) the next. An fdatasync
 * covers every byte written to the file before it began, so a caller is
 * done once a sync that began after its append succeeded. */
int journal_sync_to(struct journal *j, uint64_t mark, ipm_error *err)
{
	uint64_t target;
	int rc = 0;

	pthread_mutex_lock(&j->sync_lock);
	while (j->durable < mark && rc == 0) {
		/* the error went to one fdatasync; a later one would succeed
		 * without those bytes: whoever they covered fails too */
		if (j->failed >= mark) {
			rc = j->fail_rc;
			break;
		}
		if (j->syncing) {
			pthread_cond_wait(&j->sync_cond, &j->sync_lock);
			continue;
		}
		j->syncing = true;
		target = journal_mark(j);
		pthread_mutex_unlock(&j->sync_lock);
		if (fdatasync(j->fd) < 0)
			rc = -errno;
		pthread_mutex_lock(&j->sync_lock);
		j->syncing = false;
		if (rc < 0 && target > j->failed) {
			j->failed = target;
			j->fail_rc = rc;
		}
		if (rc == 0 && target > j->durable)
			j->durable = target;
		pthread_cond_broadcast(&j->sync_cond);
	}
	pthread_mutex_unlock(&j->sync_lock);
	if (rc < 0)
		return ipm_fail(err, rc, "journal %s: fdatasync: %s", j->path, strerror(-rc));
	return 0;
}

int journal_sync(struct journal *j, ipm_error *err)
{
	return journal_sync_to(j, journal_mark(j), err);
}

uint64_t journal_bytes(const struct journal *j)
{
	return __atomic_load_n(&j->end, __ATOMIC_ACQUIRE) - j->hdr_len;
}

uint64_t journal_records(const struct journal *j)
{
	return __atomic_load_n(&j->records, __ATOMIC_ACQUIRE);
}

uint64_t journal_id(const struct journal *j)
{
	return j->id;
}

int journal_reset(struct journal *j, ipm_error *err)
{
	if (ftruncate(j->fd, (off_t)j->hdr_len) < 0)
		return ipm_fail(err, -errno, "journal %s: cannot truncate: %s", j->path, strerror(errno));
	__atomic_store_n(&j->end, (uint64_t)j->hdr_len, __ATOMIC_RELEASE);
	__atomic_store_n(&j->records, 0, __ATOMIC_RELEASE);
	/* the truncation itself must be durable: an fdatasync of its own,
	 * whatever the records' syncs covered */
	if (fdatasync(j->fd) < 0)
		return ipm_fail(err, -errno, "journal %s: fdatasync: %s", j->path, strerror(errno));
	return 0;
}

/* ---- iteration ------------------------------------------------------------ */

int journal_iter_open(struct journal *j, struct journal_iter **out, ipm_error *err)
{
	struct journal_iter *it = calloc(1, sizeof(*it));

	*out = NULL;
	if (!it)
		return ipm_fail(err, -ENOMEM, "out of memory");
	it->j = j;
	it->pos = j->hdr_len;
	*out = it;
	return 0;
}

/* File bytes [pos, pos + len) (pos + len <= limit) in it->buf, read ahead
 * up to ITER_CHUNK or limit: 0 with *p set, 1 when the file is shorter than
 * it claims, <0 on error. */
static int iter_bytes(struct journal_iter *it, uint64_t pos, uint64_t len, uint64_t limit,
		      const uint8_t **p)
{
	uint64_t want = len > ITER_CHUNK ? len : ITER_CHUNK;
	ssize_t n;

	if (it->own && it->last_big)
		want = len;

	if (pos >= it->win && pos + len <= it->win + it->win_len) {
		*p = it->buf + (pos - it->win);
		return 0;
	}
	if (want > limit - pos)
		want = limit - pos;
	if (it->cap < want) {
		uint8_t *nb = realloc(it->buf, want);

		if (!nb)
			return -ENOMEM;
		it->buf = nb;
		it->cap = want;
	}
	it->win_len = 0;
	n = pread_full(it->j->fd, it->buf, want, pos);
	if (n < 0)
		return (int)n;
	it->win = pos;
	it->win_len = (size_t)n;
	if ((uint64_t)n < len)
		return 1;
	*p = it->buf;
	return 0;
}

/* len bytes of a record's data at pos (inside the file) read into a
 * buffer of their own, it->owned: 0, 1 cut short, <0 error. */
static int iter_own(struct journal_iter *it, uint64_t pos, uint64_t len, const uint8_t **p)
{
	ssize_t n;

	free(it->owned);
	it->owned = malloc(len);
	if (!it->owned)
		return -ENOMEM;
	n = pread_full(it->j->fd, it->owned, len, pos);
	if (n < 0)
		return (int)n;
	if ((uint64_t)n < len)
		return 1;
	*p = it->owned;
	return 0;
}

/* The record at it->pos, which must end by limit: 0 valid (*data for a
 * WRITE), 1 bad (*why), <0 I/O error. The checks are read_record's. */
static int iter_record(struct journal_iter *it, uint64_t limit, struct rec_hdr *h,
		       const uint8_t **data, const char **why)
{
	struct journal *j = it->j;
	const uint8_t *b;
	uint64_t dlen;
	int rc;

	*data = NULL;
	if (limit - it->pos < JR_LEN) {
		*why = "record header cut short";
		return 1;
	}
	rc = iter_bytes(it, it->pos, JR_LEN, limit, &b);
	if (rc != 0) {
		*why = "record header cut short";
		return rc;
	}
	if (!rec_hdr_decode(b, h)) {
		*why = le_get32(b) != JR_MAGIC ? "bad record magic" : "record header checksum mismatch";
		return 1;
	}
	if (h->seq != it->index + 1) {
		*why = "sequence number out of order";
		return 1;
	}
	if (!range_ok(j, h->type, h->offset, h->length)) {
		*why = "invalid type or range";
		return 1;
	}
	dlen = data_len(h->type, h->length);
	if (limit - it->pos - JR_LEN < dlen) {
		*why = "record data cut short";
		return 1;
	}
	if (h->type != JR_WRITE) {
		it->last_big = false;
		if (h->data_crc != 0) {
			*why = "data checksum mismatch";
			return 1;
		}
		return 0;
	}
	it->last_big = h->length >= ITER_OWN_MIN;
	if (it->own && it->last_big && it->pos + JR_LEN + h->length > it->win + it->win_len)
		rc = iter_own(it, it->pos + JR_LEN, h->length, data);
	else
		rc = iter_bytes(it, it->pos + JR_LEN, dlen, limit, data);
	if (rc != 0) {
		*why = "record data cut short";
		return rc;
	}
	if (crc32c(0, *data, h->length) != h->data_crc) {
		*why = "data checksum mismatch";
		return 1;
	}
	return 0;
}

int journal_iter_next_owned(struct journal_iter *it, struct journal_rec *rec, void **owned,
			    ipm_error *err)
{
	int rc;

	it->own = true;
	rc = journal_iter_next(it, rec, err);
	*owned = NULL;
	if (rc == 1 && it->owned && rec->data == it->owned) {
		*owned = it->owned;
		it->owned = NULL;
	}
	return rc;
}

int journal_iter_next(struct journal_iter *it, struct journal_rec *rec, ipm_error *err)
{
	struct journal *j = it->j;
	uint64_t end = __atomic_load_n(&j->end, __ATOMIC_ACQUIRE);
	const uint8_t *data;
	const char *why = NULL;
	struct rec_hdr h;
	int rc;

	if (it->pos >= end)
		return 0;
	rc = iter_record(it, end, &h, &data, &why);
	if (rc < 0)
		return ipm_fail(err, rc, "journal %s: cannot read record %llu at byte offset %llu: %s",
			    j->path, (unsigned long long)(it->index + 1),
			    (unsigned long long)it->pos, strerror(-rc));
	if (rc > 0)
		return corrupt_msg(j, err, it->index + 1, it->pos, why);
	*rec = (struct journal_rec){
		.seq = h.seq, .type = h.type, .flags = h.flags,
		.offset = h.offset, .length = h.length,
		.data = data, .data_crc = h.data_crc,
	};
	it->pos += JR_LEN + data_len(h.type, h.length);
	it->index++;
	return 1;
}

void journal_iter_idle(struct journal_iter *it)
{
	free(it->buf);
	it->buf = NULL;
	it->cap = 0;
	it->win_len = 0;
}

uint64_t journal_iter_offset(const struct journal_iter *it)
{
	return it->pos - it->j->hdr_len;
}

void journal_iter_close(struct journal_iter *it)
{
	if (!it)
		return;
	free(it->buf);
	free(it->owned);
	free(it);
}
