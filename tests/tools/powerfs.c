/* powerfs.c - a FUSE passthrough file system that loses, on command, what
 * was not made durable: a power cut for the files beneath it.
 *
 *     powerfs LOWER MOUNTPOINT [-f] [FUSE options]
 *
 * Files live in LOWER (the "disk"). Written data stays in this process's
 * memory (4 KiB pages per inode, with the inode's size and any pending
 * truncation) until fsync/fdatasync of the file, or a write with
 * O_DSYNC/O_SYNC/RWF_DSYNC (its pages only), writes it to LOWER. Creating,
 * renaming and unlinking are done in LOWER at once but kept in an undo log
 * (a replaced or unlinked file waits in LOWER/.powerfs-stash) until the
 * directory is fsynced. fallocate's PUNCH_HOLE and ZERO_RANGE are volatile
 * too (zero pages). mkdir, rmdir, chmod, chown and utimens are durable at
 * once. Every file is opened with direct_io, so the kernel caches nothing:
 * O_DIRECT opens and io_uring work, and after a cut nothing dropped is read
 * back from a kernel cache.
 *
 * Control file MOUNTPOINT/.powerfs (invisible to readdir):
 *   echo powercut > .powerfs           drop everything not durable: undo
 *                                      the uncommitted namespace changes
 *                                      (newest first), forget every page
 *   echo "powercut keep=P seed=S" > .powerfs
 *                                      the same, but first each dirty page
 *                                      reaches the disk with probability
 *                                      P % (write-back before the cut),
 *                                      chosen by seed S
 *   echo sync > .powerfs               make everything durable
 *   cat .powerfs                       counters (dirty bytes, syncs, cuts,
 *                                      bytes and namespace changes dropped)
 * The write returns once the command is done. Stop the daemons using the
 * files before a cut: their open descriptors stay valid, but what they
 * had not synced is gone, as after a reboot. */
#define FUSE_USE_VERSION 35
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>
#include <dirent.h>

#include "fullio.h"

#define PG 4096u
#define BUCKETS 16384u
#define CTL_NAME ".powerfs"
#define STASH ".powerfs-stash"
#define NO_TRUNC UINT64_MAX

struct page {
	uint64_t idx;
	uint8_t *data;                /* NULL: a page of zeroes */
	struct page *next;
};

/* The volatile state of one inode of LOWER (renames keep the inode). */
struct ov {
	ino_t ino;
	int fd;                       /* a read-write descriptor of its own */
	uint64_t size;                /* the size the file system shows */
	uint64_t trunc_low;           /* LOWER's bytes from here on are gone */
	uint64_t npages;
	struct page **pages;          /* BUCKETS chains */
	struct ov *next;
};

enum undo_type { U_CREATE, U_RENAME, U_UNLINK };
struct undo {
	enum undo_type type;
	char *a, *b;                  /* create: a; rename: a -> b; unlink: a */
	char *stash;                  /* what rename replaced / unlink removed */
	struct undo *prev;
};

struct handle {
	int fd;
	bool ctl;
};

static struct {
	pthread_mutex_t lock;
	int lower;                    /* LOWER's directory descriptor */
	struct ov *ovs;
	struct undo *undo;            /* newest first */
	unsigned long stash_seq;
	uint64_t syncs, dirsyncs, cuts, dropped_bytes, kept_bytes, undone, dsync_writes;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* "/a/b" -> "a/b", "/" -> "." (relative to g.lower) */
static const char *rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static bool is_ctl(const char *path)
{
	return path && !strcmp(rel(path), CTL_NAME);
}

static bool is_hidden(const char *path)
{
	const char *r = rel(path);

	return !strncmp(r, STASH, strlen(STASH)) && (r[strlen(STASH)] == '\0' || r[strlen(STASH)] == '/');
}

/* ---- pages ----------------------------------------------------------------- */

static struct ov *ov_find(ino_t ino)
{
	struct ov *o;

	for (o = g.ovs; o; o = o->next)
		if (o->ino == ino)
			return o;
	return NULL;
}

/* The inode's state, made on its first volatile change. */
static struct ov *ov_get(int fd, int *err)
{
	struct stat st;
	struct ov *o;

	if (fstat(fd, &st) < 0) {
		*err = -errno;
		return NULL;
	}
	o = ov_find(st.st_ino);
	if (o)
		return o;
	o = calloc(1, sizeof(*o));
	if (o)
		o->pages = calloc(BUCKETS, sizeof(*o->pages));
	if (!o || !o->pages) {
		free(o);
		*err = -ENOMEM;
		return NULL;
	}
	o->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	o->ino = st.st_ino;
	o->size = (uint64_t)st.st_size;
	o->trunc_low = NO_TRUNC;
	o->next = g.ovs;
	g.ovs = o;
	return o;
}

static struct page **page_slot(struct ov *o, uint64_t idx)
{
	struct page **p = &o->pages[idx % BUCKETS];

	while (*p && (*p)->idx != idx)
		p = &(*p)->next;
	return p;
}

static void page_free(struct ov *o, struct page **slot)
{
	struct page *p = *slot;

	*slot = p->next;
	free(p->data);
	free(p);
	o->npages--;
}

/* LOWER's bytes [off, off+len) as this file shows them: zeroes past the
 * pending truncation or LOWER's end. */
static int lower_read(struct ov *o, int fd, uint8_t *buf, size_t len, uint64_t off)
{
	uint64_t limit = o ? o->trunc_low : NO_TRUNC;
	ssize_t n;

	memset(buf, 0, len);
	if (off >= limit)
		return 0;
	if (limit - off < len)
		len = (size_t)(limit - off);
	n = pread_full(fd, buf, len, off);
	return n < 0 ? (int)n : 0;
}

/* The page, made from LOWER's bytes when new; data allocated. */
static struct page *page_get(struct ov *o, uint64_t idx, int *err)
{
	struct page **slot = page_slot(o, idx), *p = *slot;

	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p) {
			*err = -ENOMEM;
			return NULL;
		}
		p->idx = idx;
		p->data = malloc(PG);
		if (!p->data || (*err = lower_read(o, o->fd, p->data, PG, idx * PG)) < 0) {
			if (!p->data)
				*err = -ENOMEM;
			free(p->data);
			free(p);
			return NULL;
		}
		p->next = o->pages[idx % BUCKETS];
		o->pages[idx % BUCKETS] = p;
		o->npages++;
	} else if (!p->data) {
		p->data = calloc(1, PG);
		if (!p->data) {
			*err = -ENOMEM;
			return NULL;
		}
	}
	return p;
}

/* One page to LOWER (clipped to the file's size). */
static int page_commit(struct ov *o, struct page *p)
{
	uint64_t off = p->idx * PG;
	size_t len;

	if (off >= o->size)
		return 0;
	len = o->size - off < PG ? (size_t)(o->size - off) : PG;
	if (p->data)
		return pwrite_full(o->fd, p->data, len, off);
	if (fallocate(o->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	{
		static const uint8_t zeros[PG];

		return pwrite_full(o->fd, zeros, len, off);
	}
}

static uint64_t lower_size(struct ov *o)
{
	struct stat st;

	return fstat(o->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* fsync: the pending truncation, every page, then the size reach LOWER. */
static int ov_sync(struct ov *o)
{
	unsigned b;
	int rc = 0;

	if (o->trunc_low != NO_TRUNC && o->trunc_low < lower_size(o) &&
	    ftruncate(o->fd, (off_t)o->trunc_low) < 0)
		return -errno;
	o->trunc_low = NO_TRUNC;
	for (b = 0; b < BUCKETS && rc == 0; b++)
		while (o->pages[b] && rc == 0) {
			rc = page_commit(o, o->pages[b]);
			if (rc == 0)
				page_free(o, &o->pages[b]);
		}
	if (rc == 0 && lower_size(o) != o->size && ftruncate(o->fd, (off_t)o->size) < 0)
		rc = -errno;
	return rc;
}

/* O_DSYNC write: its own pages reach LOWER (all of the file's changes
 * when a truncation is pending: its pages cannot go alone). */
static int ov_sync_range(struct ov *o, uint64_t off, uint64_t len)
{
	uint64_t idx;
	int rc = 0;

	if (o->trunc_low != NO_TRUNC)
		return ov_sync(o);
	for (idx = off / PG; idx * PG < off + len && rc == 0; idx++) {
		struct page **slot = page_slot(o, idx);

		if (!*slot)
			continue;
		rc = page_commit(o, *slot);
		if (rc == 0)
			page_free(o, slot);
	}
	if (rc == 0 && lower_size(o) < o->size && off + len >= o->size &&
	    ftruncate(o->fd, (off_t)o->size) < 0)
		rc = -errno;
	return rc;
}

static void ov_drop(struct ov *o)
{
	unsigned b;

	for (b = 0; b < BUCKETS; b++)
		while (o->pages[b]) {
			g.dropped_bytes += PG;
			page_free(o, &o->pages[b]);
		}
}

static void ov_free(struct ov **link)
{
	struct ov *o = *link;

	*link = o->next;
	ov_drop(o);
	close(o->fd);
	free(o->pages);
	free(o);
}

/* A file gone from LOWER for good: its state goes (the inode number may
 * come back). Our own descriptor keeps it alive while we hold the state,
 * so only a file that nobody has open may go: */
static void forget_if_unlinked(ino_t ino)
{
	struct ov **l;
	struct stat st;

	for (l = &g.ovs; *l; l = &(*l)->next)
		if ((*l)->ino == ino) {
			if (fstat((*l)->fd, &st) == 0 && st.st_nlink == 0)
				ov_free(l);
			return;
		}
}

/* ---- the undo log of namespace changes -------------------------------------- */

static void undo_push(enum undo_type t, const char *a, const char *b, const char *stash)
{
	struct undo *u = calloc(1, sizeof(*u));

	if (!u)
		return; /* then this change is durable at once */
	u->type = t;
	u->a = strdup(a);
	u->b = b ? strdup(b) : NULL;
	u->stash = stash ? strdup(stash) : NULL;
	u->prev = g.undo;
	g.undo = u;
}

static void undo_free(struct undo *u)
{
	free(u->a);
	free(u->b);
	free(u->stash);
	free(u);
}

/* A fresh name in the stash for a file that may have to come back. */
static int stash_away(const char *name, char *stash, size_t len)
{
	struct stat st;

	if (fstatat(g.lower, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (mkdirat(g.lower, STASH, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(stash, len, STASH "/%lu", ++g.stash_seq);
	return renameat(g.lower, name, g.lower, stash) < 0 ? -errno : 0;
}

static void stash_delete(const char *stash)
{
	struct stat st;

	if (fstatat(g.lower, stash, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (S_ISDIR(st.st_mode))
		unlinkat(g.lower, stash, AT_REMOVEDIR);
	else if (unlinkat(g.lower, stash, 0) == 0)
		forget_if_unlinked(st.st_ino);
}

/* The directory of a relative name ("." for the top). */
static void dir_of(const char *name, char *dir, size_t len)
{
	const char *slash = strrchr(name, '/');

	if (!slash)
		snprintf(dir, len, ".");
	else
		snprintf(dir, len, "%.*s", (int)(slash - name), name);
}

static bool touches(const struct undo *u, const char *dir)
{
	char d[PATH_MAX];

	dir_of(u->a, d, sizeof(d));
	if (!strcmp(d, dir))
		return true;
	if (u->b) {
		dir_of(u->b, d, sizeof(d));
		if (!strcmp(d, dir))
			return true;
	}
	return false;
}

/* fsync of a directory: its changes are durable. */
static void undo_commit(const char *dir)
{
	struct undo **l = &g.undo, *u;

	while ((u = *l)) {
		if (!touches(u, dir)) {
			l = &u->prev;
			continue;
		}
		*l = u->prev;
		if (u->stash)
			stash_delete(u->stash);
		undo_free(u);
	}
}

/* The cut: every uncommitted change undone, newest first. */
static void undo_all(void)
{
	struct undo *u;

	while ((u = g.undo)) {
		g.undo = u->prev;
		switch (u->type) {
		case U_CREATE: {
			struct stat st;

			if (fstatat(g.lower, u->a, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    unlinkat(g.lower, u->a, 0) == 0)
				forget_if_unlinked(st.st_ino);
			break;
		}
		case U_RENAME:
			renameat(g.lower, u->b, g.lower, u->a);
			if (u->stash)
				renameat(g.lower, u->stash, g.lower, u->b);
			break;
		case U_UNLINK:
			renameat(g.lower, u->stash, g.lower, u->a);
			break;
		}
		g.undone++;
		undo_free(u);
	}
}

/* ---- commands of the control file ------------------------------------------- */

static int sync_all(void)
{
	struct ov *o;
	int rc = 0;

	for (o = g.ovs; o && rc == 0; o = o->next)
		rc = ov_sync(o);
	undo_commit(".");
	return rc;
}

/* keep %: some dirty pages reached the disk before the power went */
static void write_back_some(unsigned keep, unsigned seed)
{
	struct ov *o;
	unsigned b;

	srandom(seed);
	for (o = g.ovs; o; o = o->next) {
		for (b = 0; b < BUCKETS; b++) {
			struct page **slot = &o->pages[b];

			while (*slot) {
				/* only pages inside what LOWER keeps of the file */
				if ((unsigned)(random() % 100) < keep && o->trunc_low == NO_TRUNC &&
				    (*slot)->idx * PG < lower_size(o) &&
				    page_commit(o, *slot) == 0) {
					g.kept_bytes += PG;
					page_free(o, slot);
				} else {
					slot = &(*slot)->next;
				}
			}
		}
	}
}

static void powercut(unsigned keep, unsigned seed)
{
	struct ov *o;

	if (keep)
		write_back_some(keep, seed);
	undo_all();
	for (o = g.ovs; o; o = o->next) {
		ov_drop(o);
		o->trunc_low = NO_TRUNC;
		o->size = lower_size(o);
	}
	g.cuts++;
}

static int command(const char *buf, size_t len)
{
	char cmd[256];
	unsigned keep = 0, seed = 1;
	const char *p;

	if (len >= sizeof(cmd))
		return -EINVAL;
	memcpy(cmd, buf, len);
	cmd[len] = '\0';
	cmd[strcspn(cmd, "\n")] = '\0';
	if (!strcmp(cmd, "sync"))
		return sync_all();
	if (strncmp(cmd, "powercut", 8) || (cmd[8] && cmd[8] != ' '))
		return -EINVAL;
	for (p = cmd + 8; *p == ' '; ) {
		while (*p == ' ')
			p++;
		if (sscanf(p, "keep=%u", &keep) == 1 || sscanf(p, "seed=%u", &seed) == 1)
			p += strcspn(p, " ");
		else if (*p)
			return -EINVAL;
	}
	if (keep > 100)
		return -EINVAL;
	powercut(keep, seed);
	return 0;
}

static int stats(char *buf, size_t len)
{
	uint64_t dirty = 0;
	struct ov *o;
	unsigned changes = 0;
	struct undo *u;

	for (o = g.ovs; o; o = o->next)
		dirty += o->npages * PG;
	for (u = g.undo; u; u = u->prev)
		changes++;
	return snprintf(buf, len,
			"dirty_bytes %" PRIu64 "\nuncommitted_changes %u\nsyncs %" PRIu64
			"\ndirsyncs %" PRIu64 "\ndsync_writes %" PRIu64 "\ncuts %" PRIu64
			"\ndropped_bytes %" PRIu64 "\nkept_bytes %" PRIu64 "\nundone_changes %" PRIu64 "\n",
			dirty, changes, g.syncs, g.dirsyncs, g.dsync_writes, g.cuts, g.dropped_bytes,
			g.kept_bytes, g.undone);
}

/* ---- file system operations --------------------------------------------------- */

static struct handle *H(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static void *pf_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;
	cfg->direct_io = 1;         /* nothing cached by the kernel */
	cfg->kernel_cache = 0;
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 1;
	return NULL;
}

static int pf_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct ov *o;
	int rc = 0;

	if ((fi && H(fi) && H(fi)->ctl) || (!fi && is_ctl(path))) {
		memset(st, 0, sizeof(*st));
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		return 0;
	}
	if (!fi && is_hidden(path))
		return -ENOENT;
	pthread_mutex_lock(&g.lock);
	if (fi && H(fi))
		rc = fstat(H(fi)->fd, st) < 0 ? -errno : 0;
	else
		rc = fstatat(g.lower, rel(path), st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	if (rc == 0 && S_ISREG(st->st_mode) && (o = ov_find(st->st_ino))) {
		st->st_size = (off_t)o->size;
		st->st_blocks = (blkcnt_t)((o->size + 511) / 512);
	}
	pthread_mutex_unlock(&g.lock);
	return rc;
}

/* A directory handle keeps its name: with nullpath_ok, readdir and
 * fsyncdir get none. */
static int pf_opendir(const char *path, struct fuse_file_info *fi)
{
	char *name = strdup(rel(path));

	if (!name)
		return -ENOMEM;
	fi->fh = (uint64_t)(uintptr_t)name;
	return 0;
}

static int pf_releasedir(const char *path, struct fuse_file_info *fi)
{
	free((char *)(uintptr_t)fi->fh);
	return 0;
}

static int pf_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	const char *name = (const char *)(uintptr_t)fi->fh;
	struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(g.lower, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (!strcmp(name, ".") && !strcmp(de->d_name, STASH))
			continue;
		if (fill(buf, de->d_name, NULL, 0, 0))
			break;
	}
	closedir(d);
	return 0;
}

static int open_lower(const char *path, int flags, mode_t mode, bool *created)
{
	/* our own I/O decides what is durable: no O_DIRECT or O_*SYNC below */
	int fd, base = (flags & ~(O_DIRECT | O_DSYNC | O_SYNC | O_ACCMODE | O_TRUNC | O_APPEND)) |
		       O_CLOEXEC;

	*created = false;
	fd = openat(g.lower, rel(path), base | O_RDWR, mode);
	if (fd < 0 && errno == EACCES)
		fd = openat(g.lower, rel(path), base | (flags & O_ACCMODE), mode);
	if (fd >= 0 && (flags & O_CREAT))
		*created = true; /* create: the kernel asked only for a new name */
	return fd < 0 ? -errno : fd;
}

static int new_handle(struct fuse_file_info *fi, int fd, bool ctl)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h) {
		if (fd >= 0)
			close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	h->ctl = ctl;
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	return 0;
}

static int truncate_locked(int fd, uint64_t size);

static int pf_open(const char *path, struct fuse_file_info *fi)
{
	bool created;
	int fd, rc;

	if (is_ctl(path))
		return new_handle(fi, -1, true);
	pthread_mutex_lock(&g.lock);
	fd = open_lower(path, fi->flags & ~O_CREAT, 0, &created);
	rc = fd;
	if (fd >= 0 && (fi->flags & O_TRUNC))
		rc = truncate_locked(fd, 0);
	pthread_mutex_unlock(&g.lock);
	if (rc < 0) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	return new_handle(fi, fd, false);
}

static int pf_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	bool created;
	int fd;

	if (is_ctl(path) || is_hidden(path))
		return -EEXIST;
	pthread_mutex_lock(&g.lock);
	fd = open_lower(path, fi->flags | O_CREAT | O_EXCL, mode, &created);
	if (fd == -EEXIST && !(fi->flags & O_EXCL))
		fd = open_lower(path, fi->flags & ~O_CREAT, 0, &created);
	if (fd >= 0 && created) {
		undo_push(U_CREATE, rel(path), NULL, NULL);
		/* a new file: its (empty) inode state, so a cut knows its size */
	}
	pthread_mutex_unlock(&g.lock);
	if (fd < 0)
		return fd;
	return new_handle(fi, fd, false);
}

static int pf_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	struct ov *o;
	struct stat st;
	uint64_t end, idx;
	int rc;

	if (h->ctl) {
		char s[1024];
		int n;

		pthread_mutex_lock(&g.lock);
		n = stats(s, sizeof(s));
		pthread_mutex_unlock(&g.lock);
		if (off >= n)
			return 0;
		if ((size_t)(n - off) < size)
			size = (size_t)(n - off);
		memcpy(buf, s + off, size);
		return (int)size;
	}
	pthread_mutex_lock(&g.lock);
	if (fstat(h->fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	o = ov_find(st.st_ino);
	end = o ? o->size : (uint64_t)st.st_size;
	if ((uint64_t)off >= end) {
		rc = 0;
		goto out;
	}
	if (end - (uint64_t)off < size)
		size = (size_t)(end - (uint64_t)off);
	rc = lower_read(o, h->fd, (uint8_t *)buf, size, (uint64_t)off);
	if (rc < 0 || !o)
		goto done;
	for (idx = (uint64_t)off / PG; idx * PG < (uint64_t)off + size; idx++) {
		struct page *p = *page_slot(o, idx);
		uint64_t a, b;

		if (!p)
			continue;
		a = idx * PG > (uint64_t)off ? idx * PG : (uint64_t)off;
		b = (idx + 1) * PG < (uint64_t)off + size ? (idx + 1) * PG : (uint64_t)off + size;
		if (p->data)
			memcpy(buf + (a - (uint64_t)off), p->data + (a - idx * PG), b - a);
		else
			memset(buf + (a - (uint64_t)off), 0, b - a);
	}
done:
	if (rc == 0)
		rc = (int)size;
out:
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int pf_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	struct ov *o;
	uint64_t pos = (uint64_t)off, end = (uint64_t)off + size;
	int rc = 0;

	if (h->ctl) {
		pthread_mutex_lock(&g.lock);
		rc = command(buf, size);
		pthread_mutex_unlock(&g.lock);
		return rc < 0 ? rc : (int)size;
	}
	pthread_mutex_lock(&g.lock);
	o = ov_get(h->fd, &rc);
	if (!o)
		goto out;
	if (fi->flags & O_APPEND) {
		pos = o->size;
		end = pos + size;
	}
	while (pos < end && rc == 0) {
		uint64_t idx = pos / PG, in = pos % PG;
		size_t n = PG - in < end - pos ? (size_t)(PG - in) : (size_t)(end - pos);
		struct page *p = page_get(o, idx, &rc);

		if (!p)
			break;
		memcpy(p->data + in, buf + (pos - (uint64_t)off), n);
		pos += n;
	}
	if (rc == 0 && end > o->size)
		o->size = end;
	/* O_DSYNC, O_SYNC or RWF_DSYNC: this write is durable when it returns */
	if (rc == 0 && (fi->flags & O_DSYNC)) {
		g.dsync_writes++;
		rc = ov_sync_range(o, end - size, size);
	}
out:
	pthread_mutex_unlock(&g.lock);
	return rc < 0 ? rc : (int)size;
}

static int truncate_locked(int fd, uint64_t size)
{
	uint64_t idx;
	unsigned b;
	int rc = 0;
	struct ov *o = ov_get(fd, &rc);

	if (!o)
		return rc;
	if (size < o->size) {
		for (b = 0; b < BUCKETS; b++) {
			struct page **slot = &o->pages[b];

			while (*slot) {
				if ((*slot)->idx * PG >= size)
					page_free(o, slot);
				else
					slot = &(*slot)->next;
			}
		}
		idx = size / PG;
		if (size % PG) {
			struct page *p = *page_slot(o, idx);

			if (p && p->data)
				memset(p->data + size % PG, 0, PG - size % PG);
		}
		if (size < o->trunc_low)
			o->trunc_low = size;
	}
	o->size = size;
	return 0;
}

static int pf_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	int fd, rc;

	if (fi && H(fi) && H(fi)->ctl)
		return 0;
	if (!fi && is_ctl(path))
		return 0;
	pthread_mutex_lock(&g.lock);
	if (fi && H(fi)) {
		rc = truncate_locked(H(fi)->fd, (uint64_t)size);
	} else {
		fd = openat(g.lower, rel(path), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		rc = fd < 0 ? -errno : truncate_locked(fd, (uint64_t)size);
		if (fd >= 0)
			close(fd);
	}
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int pf_fallocate(const char *path, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	uint64_t pos = (uint64_t)off, end = (uint64_t)off + (uint64_t)len;
	struct ov *o;
	int rc = 0;

	if (h->ctl)
		return -EOPNOTSUPP;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
		return -EINVAL;
	pthread_mutex_lock(&g.lock);
	o = ov_get(h->fd, &rc);
	if (!o)
		goto out;
	if (!(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))) {
		/* plain allocation: only the size can change */
		if (!(mode & FALLOC_FL_KEEP_SIZE) && end > o->size)
			o->size = end;
		goto out;
	}
	if (mode & FALLOC_FL_KEEP_SIZE) {
		if (pos >= o->size)
			goto out;
		if (end > o->size)
			end = o->size;
	}
	while (pos < end && rc == 0) {
		uint64_t idx = pos / PG, in = pos % PG;
		size_t n = PG - in < end - pos ? (size_t)(PG - in) : (size_t)(end - pos);

		if (n == PG) {
			struct page **slot = page_slot(o, idx), *p = *slot;

			if (!p) {
				p = calloc(1, sizeof(*p));
				if (!p) {
					rc = -ENOMEM;
					break;
				}
				p->idx = idx;
				p->next = o->pages[idx % BUCKETS];
				o->pages[idx % BUCKETS] = p;
				o->npages++;
			}
			free(p->data);
			p->data = NULL;
		} else {
			struct page *p = page_get(o, idx, &rc);

			if (!p)
				break;
			memset(p->data + in, 0, n);
		}
		pos += n;
	}
	if (rc == 0 && end > o->size)
		o->size = end;
out:
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int pf_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	struct stat st;
	struct ov *o;
	int rc = 0;

	if (h->ctl)
		return 0;
	pthread_mutex_lock(&g.lock);
	g.syncs++;
	if (fstat(h->fd, &st) < 0)
		rc = -errno;
	else if ((o = ov_find(st.st_ino)))
		rc = ov_sync(o);
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int pf_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	pthread_mutex_lock(&g.lock);
	g.dirsyncs++;
	undo_commit((const char *)(uintptr_t)fi->fh);
	pthread_mutex_unlock(&g.lock);
	return 0;
}

static int pf_release(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = H(fi);
	struct stat st;

	pthread_mutex_lock(&g.lock);
	if (h->fd >= 0) {
		if (fstat(h->fd, &st) == 0 && st.st_nlink == 0)
			forget_if_unlinked(st.st_ino);
		close(h->fd);
	}
	pthread_mutex_unlock(&g.lock);
	free(h);
	return 0;
}

static int pf_unlink(const char *path)
{
	char stash[64];
	int rc;

	if (is_ctl(path) || is_hidden(path))
		return -EPERM;
	pthread_mutex_lock(&g.lock);
	rc = stash_away(rel(path), stash, sizeof(stash));
	if (rc == 0)
		undo_push(U_UNLINK, rel(path), NULL, stash);
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int pf_rename(const char *from, const char *to, unsigned int flags)
{
	char stash[64];
	struct stat st;
	bool replaced = false;
	int rc = 0;

	if (is_ctl(from) || is_ctl(to) || is_hidden(from) || is_hidden(to))
		return -EPERM;
	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	pthread_mutex_lock(&g.lock);
	if (fstatat(g.lower, rel(from), &st, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = -errno;
		goto out;
	}
	if (fstatat(g.lower, rel(to), &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (flags & RENAME_NOREPLACE) {
			rc = -EEXIST;
			goto out;
		}
		rc = stash_away(rel(to), stash, sizeof(stash));
		if (rc < 0)
			goto out;
		replaced = true;
	}
	if (renameat(g.lower, rel(from), g.lower, rel(to)) < 0) {
		rc = -errno;
		if (replaced)
			renameat(g.lower, stash, g.lower, rel(to));
		goto out;
	}
	undo_push(U_RENAME, rel(from), rel(to), replaced ? stash : NULL);
out:
	pthread_mutex_unlock(&g.lock);
	return rc;
}

static int pf_mkdir(const char *path, mode_t mode)
{
	return mkdirat(g.lower, rel(path), mode) < 0 ? -errno : 0;
}

static int pf_rmdir(const char *path)
{
	if (is_hidden(path))
		return -EPERM;
	return unlinkat(g.lower, rel(path), AT_REMOVEDIR) < 0 ? -errno : 0;
}

static int pf_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if ((fi && H(fi) && H(fi)->ctl) || (!fi && is_ctl(path)))
		return 0;
	if (fi && H(fi))
		return fchmod(H(fi)->fd, mode) < 0 ? -errno : 0;
	return fchmodat(g.lower, rel(path), mode, 0) < 0 ? -errno : 0;
}

static int pf_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	if ((fi && H(fi) && H(fi)->ctl) || (!fi && is_ctl(path)))
		return 0;
	if (fi && H(fi))
		return fchown(H(fi)->fd, uid, gid) < 0 ? -errno : 0;
	return fchownat(g.lower, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int pf_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	if ((fi && H(fi) && H(fi)->ctl) || (!fi && is_ctl(path)))
		return 0;
	if (fi && H(fi))
		return futimens(H(fi)->fd, tv) < 0 ? -errno : 0;
	return utimensat(g.lower, rel(path), tv, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int pf_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n = readlinkat(g.lower, rel(path), buf, size - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int pf_symlink(const char *target, const char *path)
{
	return symlinkat(target, g.lower, rel(path)) < 0 ? -errno : 0;
}

static int pf_statfs(const char *path, struct statvfs *sv)
{
	return fstatvfs(g.lower, sv) < 0 ? -errno : 0;
}

static const struct fuse_operations ops = {
	.init = pf_init,
	.getattr = pf_getattr,
	.opendir = pf_opendir,
	.readdir = pf_readdir,
	.releasedir = pf_releasedir,
	.open = pf_open,
	.create = pf_create,
	.read = pf_read,
	.write = pf_write,
	.truncate = pf_truncate,
	.fallocate = pf_fallocate,
	.fsync = pf_fsync,
	.fsyncdir = pf_fsyncdir,
	.release = pf_release,
	.unlink = pf_unlink,
	.rename = pf_rename,
	.mkdir = pf_mkdir,
	.rmdir = pf_rmdir,
	.chmod = pf_chmod,
	.chown = pf_chown,
	.utimens = pf_utimens,
	.readlink = pf_readlink,
	.symlink = pf_symlink,
	.statfs = pf_statfs,
};

int main(int argc, char **argv)
{
	char **fargv;
	int i;

	if (argc < 3) {
		fprintf(stderr, "usage: %s LOWER MOUNTPOINT [-f] [FUSE options]\n", argv[0]);
		return 2;
	}
	g.lower = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g.lower < 0) {
		fprintf(stderr, "%s: cannot open %s: %s\n", argv[0], argv[1], strerror(errno));
		return 1;
	}
	/* fuse_main sees: prog MOUNTPOINT [options...] */
	fargv = calloc((size_t)argc, sizeof(*fargv));
	if (!fargv)
		return 1;
	fargv[0] = argv[0];
	for (i = 2; i < argc; i++)
		fargv[i - 1] = argv[i];
	return fuse_main(argc - 1, fargv, &ops, NULL);
}
