/* eio.c - an LD_PRELOAD shim that plays a failing disk: while the file
 * EIO_FLAG exists, reads (and with EIO_OPS=w or rw, writes) of a file
 * whose path contains EIO_PATH fail with EIO, everywhere or, with
 * EIO_RANGE=OFFSET:LENGTH (bytes), where they touch that range
 * (tests/integration/handlers.sh, local_io_error.sh):
 *
 *     EIO_PATH=node1-vol0.img EIO_FLAG=/tmp/x/eio-on EIO_OPS=rw \
 *         EIO_RANGE=1048576:65536 LD_PRELOAD=tests/tools/.libs/eio.so ipmirrord ...
 *
 * pread, pwrite and their vector forms are covered; io_uring requests are
 * not (give the LUN io="buffered": the daemon then submits none). Everything
 * else passes through; without EIO_PATH and EIO_FLAG it does nothing. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static size_t iov_len(const struct iovec *iov, int n)
{
	size_t len = 0;
	int i;

	for (i = 0; i < n; i++)
		len += iov[i].iov_len;
	return len;
}

/* [off, off+len) touches EIO_RANGE (or there is none) */
static int in_range(off_t off, size_t len)
{
	const char *r = getenv("EIO_RANGE");
	unsigned long long ro, rl;

	if (!r || sscanf(r, "%llu:%llu", &ro, &rl) != 2)
		return 1;
	return (unsigned long long)off < ro + rl && ro < (unsigned long long)off + len;
}

static int failing(int fd, int write, off_t off, size_t len)
{
	const char *want = getenv("EIO_PATH"), *flag = getenv("EIO_FLAG");
	const char *ops = getenv("EIO_OPS");
	char link[64], path[PATH_MAX];
	ssize_t n;

	if (!want || !flag || access(flag, F_OK) != 0)
		return 0;
	if (!ops)
		ops = "r";
	if (!strchr(ops, write ? 'w' : 'r') || !in_range(off, len))
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	if (!strstr(path, want))
		return 0;
	errno = EIO;
	return 1;
}

#define NEXT(name) static __typeof__(name) *next; \
	if (!next) next = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	NEXT(pread);
	return failing(fd, 0, off, n) ? -1 : next(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	NEXT(pread64);
	return failing(fd, 0, off, n) ? -1 : next(fd, buf, n, off);
}

ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	NEXT(preadv);
	return failing(fd, 0, off, iov_len(iov, cnt)) ? -1 : next(fd, iov, cnt, off);
}

ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	NEXT(preadv2);
	return failing(fd, 0, off, iov_len(iov, cnt)) ? -1 : next(fd, iov, cnt, off, flags);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	NEXT(pwrite);
	return failing(fd, 1, off, n) ? -1 : next(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	NEXT(pwrite64);
	return failing(fd, 1, off, n) ? -1 : next(fd, buf, n, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	NEXT(pwritev);
	return failing(fd, 1, off, iov_len(iov, cnt)) ? -1 : next(fd, iov, cnt, off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	NEXT(pwritev2);
	return failing(fd, 1, off, iov_len(iov, cnt)) ? -1 : next(fd, iov, cnt, off, flags);
}

ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	NEXT(pwritev64v2);
	return failing(fd, 1, off, iov_len(iov, cnt)) ? -1 : next(fd, iov, cnt, off, flags);
}

ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	NEXT(preadv64v2);
	return failing(fd, 0, off, iov_len(iov, cnt)) ? -1 : next(fd, iov, cnt, off, flags);
}
