/* slowsync.c - an LD_PRELOAD shim that makes the syncs of one file slow (a
 * disk with much to write back), to hold a program inside its fdatasync:
 *
 *     SLOWSYNC_PATH=node1-vol0.img SLOWSYNC_FLAG=/tmp/x/slow SLOWSYNC_MS=2500 \
 *         LD_PRELOAD=tests/tools/.libs/slowsync.so ipmirrord ...
 *
 * While the file SLOWSYNC_FLAG exists, fsync and fdatasync of a descriptor
 * whose path ends with SLOWSYNC_PATH sleep SLOWSYNC_MS (default 2000) ms
 * before syncing; each such sync first creates SLOWSYNC_FLAG.busy (a test
 * waits for it to know the program is inside one). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

/* Is fd the file to slow down, and is it to be slowed now? */
static int slow_now(int fd)
{
	const char *want = getenv("SLOWSYNC_PATH"), *flag = getenv("SLOWSYNC_FLAG");
	char link[64], path[PATH_MAX], busy[PATH_MAX];
	size_t wl;
	ssize_t n;
	int bfd;

	if (!want || !flag || access(flag, F_OK) != 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return 0;
	path[n] = '\0';
	wl = strlen(want);
	if ((size_t)n < wl || strcmp(path + n - wl, want) != 0)
		return 0;
	snprintf(busy, sizeof(busy), "%s.busy", flag);
	bfd = open(busy, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (bfd >= 0)
		close(bfd);
	return 1;
}

static void pause_ms(void)
{
	const char *ms = getenv("SLOWSYNC_MS");
	long v = ms ? atol(ms) : 2000;
	struct timespec ts = { v / 1000, (v % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

int fsync(int fd)
{
	if (!real_fsync)
		real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	if (slow_now(fd))
		pause_ms();
	return real_fsync(fd);
}

int fdatasync(int fd)
{
	if (!real_fdatasync)
		real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (slow_now(fd))
		pause_ms();
	return real_fdatasync(fd);
}
