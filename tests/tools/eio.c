/* eio.c - an LD_PRELOAD shim that plays a failing disk for reads: while
 * the file EIO_FLAG exists, pread on a descriptor whose path contains
 * EIO_PATH fails with EIO (tests/integration/handlers.sh, local-io-error):
 *
 *     EIO_PATH=node1-vol0.img EIO_FLAG=/tmp/x/eio-on \
 *         LD_PRELOAD=tests/tools/.libs/eio.so ipmirrord ...
 *
 * Everything else passes through; without both variables it does nothing. */
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
#include <unistd.h>

static int failing(int fd)
{
	const char *want = getenv("EIO_PATH"), *flag = getenv("EIO_FLAG");
	char link[64], path[PATH_MAX];
	ssize_t n;

	if (!want || !flag || access(flag, F_OK) != 0)
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
	return failing(fd) ? -1 : next(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	NEXT(pread64);
	return failing(fd) ? -1 : next(fd, buf, n, off);
}
