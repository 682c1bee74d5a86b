/* nodirect.c - an LD_PRELOAD shim that plays a file system which accepts
 * O_DIRECT at open but fails every read and write made through such a
 * descriptor with EINVAL (as some FUSE and network file systems do), to
 * show that io="auto" probes before it trusts O_DIRECT:
 *
 *     LD_PRELOAD=tests/tools/.libs/nodirect.so ipmirrord ...
 *
 * pread, pwrite and their vector forms on a descriptor opened with O_DIRECT
 * fail; everything else passes through. io_uring requests are not touched
 * (the daemon only submits them on a descriptor that passed the probe).
 * NODIRECT_LOG=1 prints the count of refused calls at exit. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static unsigned long refused;

static void report(void) __attribute__((destructor));
static void report(void)
{
	if (getenv("NODIRECT_LOG"))
		fprintf(stderr, "nodirect: %lu O_DIRECT calls refused\n", refused);
}

static int direct(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || !(fl & O_DIRECT))
		return 0;
	__atomic_add_fetch(&refused, 1, __ATOMIC_RELAXED);
	errno = EINVAL;
	return 1;
}

#define NEXT(name) static __typeof__(name) *next; \
	if (!next) next = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	NEXT(pread);
	return direct(fd) ? -1 : next(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	NEXT(pread64);
	return direct(fd) ? -1 : next(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	NEXT(pwrite);
	return direct(fd) ? -1 : next(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	NEXT(pwrite64);
	return direct(fd) ? -1 : next(fd, buf, n, off);
}

ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	NEXT(preadv);
	return direct(fd) ? -1 : next(fd, iov, cnt, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	NEXT(pwritev);
	return direct(fd) ? -1 : next(fd, iov, cnt, off);
}

ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	NEXT(preadv2);
	return direct(fd) ? -1 : next(fd, iov, cnt, off, flags);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	NEXT(pwritev2);
	return direct(fd) ? -1 : next(fd, iov, cnt, off, flags);
}
