/* pidfile.c - ipmirrord's pidfile: an flock held for the daemon's whole
 * life, so that a second daemon for the same admin socket refuses to start
 * and names the first, while the file of a daemon killed with -9 (no lock
 * holder) is simply taken over. The lock, not the file's existence (O_EXCL),
 * decides: a stale file never blocks a restart. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pidfile.h"

int pidfile_default(const char *socket, char *buf, size_t len)
{
	int n;

	if (strchr(socket, '/'))
		return -EINVAL;
	if (strcmp(socket, "ipmirror") == 0)
		n = snprintf(buf, len, "%s/ipmirrord.pid", IPM_RUNDIR);
	else
		n = snprintf(buf, len, "%s/ipmirrord-%s.pid", IPM_RUNDIR, socket);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The pidfile's directory, when missing (no tmpfiles.d, as in a lab). */
static void make_dir(const char *path)
{
	char dir[sizeof(((struct pidfile *)0)->path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0755) == 0)
		chmod(dir, 0755);  /* past the daemon's umask 077 */
}

/* Who holds it, as the file says. */
static void holder(int fd, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (!buf[0])
		snprintf(buf, len, "?");
}

/* One attempt: 1 when the locked fd is still the file at path (not one
 * a daemon that just ended unlinked), 0 to try again. */
static int lock_once(struct pidfile *pf, ipm_error *err)
{
	struct stat a, b;
	char who[32];
	int fd;

	fd = open(pf->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0 && errno == ENOENT) {
		make_dir(pf->path);
		fd = open(pf->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	}
	if (fd < 0)
		return ipm_fail(err, -errno, "pidfile %s: %s", pf->path, strerror(errno));
	if (fstat(fd, &a) < 0 || !S_ISREG(a.st_mode)) {
		close(fd);
		return ipm_fail(err, -EINVAL, "pidfile %s is not a regular file", pf->path);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		holder(fd, who, sizeof(who));
		close(fd);
		if (e == EWOULDBLOCK)
			return ipm_fail(err, -EEXIST,
					"pidfile %s is in use by pid %s: another ipmirrord runs for this admin socket",
					pf->path, who);
		return ipm_fail(err, -e, "pidfile %s: cannot lock: %s", pf->path, strerror(e));
	}
	if (stat(pf->path, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		close(fd);
		return 0;
	}
	fchmod(fd, 0644);  /* readable by all, as pidfiles are (umask 077) */
	pf->fd = fd;
	return 1;
}

int pidfile_lock(struct pidfile *pf, const char *path, ipm_error *err)
{
	int rc = 0;

	pf->fd = -1;
	if (snprintf(pf->path, sizeof(pf->path), "%s", path) >= (int)sizeof(pf->path))
		return ipm_fail(err, -ENAMETOOLONG, "pidfile path too long");
	for (int i = 0; i < 5 && rc == 0; i++)
		rc = lock_once(pf, err);
	if (rc == 0)
		return ipm_fail(err, -EAGAIN, "pidfile %s keeps being replaced", path);
	return rc < 0 ? rc : 0;
}

int pidfile_write(struct pidfile *pf, pid_t pid, ipm_error *err)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)pid);

	if (pf->fd < 0)
		return 0;
	if (ftruncate(pf->fd, 0) < 0 || pwrite(pf->fd, buf, (size_t)n, 0) != n)
		return ipm_fail(err, -errno, "pidfile %s: cannot write: %s", pf->path,
				strerror(errno));
	return 0;
}

void pidfile_release(struct pidfile *pf)
{
	if (pf->fd < 0)
		return;
	unlink(pf->path);  /* while locked: a newcomer's check sees it gone */
	close(pf->fd);
	pf->fd = -1;
}
