/* nofsync.c - an LD_PRELOAD shim that makes a program's syncs no-ops, to
 * show that the power-loss tests fail when the daemon does not make its
 * data durable:
 *
 *     LD_PRELOAD=tests/tools/nofsync.so ipmirrord ...
 *
 * fsync, fdatasync, syncfs, sync_file_range and sync return success and do
 * nothing; pwritev2 drops RWF_DSYNC/RWF_SYNC (a FUA write becomes an
 * ordinary one). io_uring requests are not touched: the daemon's batched
 * O_DIRECT writes carry RWF_DSYNC only for FUA writes, which then stay
 * durable. NOFSYNC_LOG=1 prints the count of skipped calls at exit. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static unsigned long skipped;

static void report(void) __attribute__((destructor));
static void report(void)
{
	if (getenv("NOFSYNC_LOG"))
		fprintf(stderr, "nofsync: %lu syncs skipped\n", skipped);
}

int fsync(int fd)
{
	(void)fd;
	__atomic_add_fetch(&skipped, 1, __ATOMIC_RELAXED);
	return 0;
}

int fdatasync(int fd)
{
	(void)fd;
	__atomic_add_fetch(&skipped, 1, __ATOMIC_RELAXED);
	return 0;
}

int syncfs(int fd)
{
	(void)fd;
	__atomic_add_fetch(&skipped, 1, __ATOMIC_RELAXED);
	return 0;
}

void sync(void)
{
	__atomic_add_fetch(&skipped, 1, __ATOMIC_RELAXED);
}

int sync_file_range(int fd, off64_t off, off64_t len, unsigned int flags)
{
	(void)fd; (void)off; (void)len; (void)flags;
	__atomic_add_fetch(&skipped, 1, __ATOMIC_RELAXED);
	return 0;
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	static ssize_t (*real)(int, const struct iovec *, int, off_t, int);

	if (!real)
		real = (ssize_t (*)(int, const struct iovec *, int, off_t, int))dlsym(RTLD_NEXT, "pwritev2");
	if (flags & (RWF_DSYNC | RWF_SYNC))
		__atomic_add_fetch(&skipped, 1, __ATOMIC_RELAXED);
	return real(fd, iov, cnt, off, flags & ~(RWF_DSYNC | RWF_SYNC));
}
