/* fileio.c - plain file I/O for the engine's own files. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "fileio.h"

/* The new directory entry is durable only once its directory is synced. */
int fsync_dir_of(const char *path)
{
	char *dup = strdup(path), *slash;
	int fd, rc = 0;

	if (!dup)
		return -ENOMEM;
	slash = strrchr(dup, '/');
	if (!slash)
		strcpy(dup, ".");
	else if (slash == dup)
		dup[1] = '\0';
	else
		*slash = '\0';
	fd = open(dup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	free(dup);
	return rc;
}

/* ELOOP from O_NOFOLLOW: the last component is a link (else a loop further up). */
static int open_failed(const char *path, const char *what, int e, ipm_error *err)
{
	struct stat st;

	if (e == ELOOP && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
		return ipm_fail(err, -ELOOP, "%s %s is a symbolic link; refusing to follow it",
				what, path);
	return ipm_fail(err, -e, "cannot open %s %s: %s", what, path, strerror(e));
}

int open_own_file(const char *path, int flags, const char *what, bool *created,
		  ipm_error *err)
{
	int create = flags & O_CREAT, excl = flags & O_EXCL, fd = -1;

	flags = (flags & ~(O_CREAT | O_EXCL)) | O_NOFOLLOW | O_CLOEXEC;
	if (created)
		*created = false;
	errno = ENOENT;
	if (!excl)
		fd = open(path, flags);
	if (fd < 0 && errno == ENOENT && create) {
		/* O_EXCL: a link or file planted since the first open is not ours */
		fd = open(path, flags | O_CREAT | O_EXCL, 0600);
		if (fd >= 0 && created)
			*created = true;
	}
	if (fd < 0)
		return open_failed(path, what, errno, err);
	return fd;
}

int replace_file(const char *path, const char *tmp, const void *buf, size_t len,
		 const char *what, ipm_error *err)
{
	int fd, rc;

	/* unlink removes a stale temporary, or a link planted there, never its target */
	if (unlink(tmp) < 0 && errno != ENOENT)
		return ipm_fail(err, -errno, "cannot remove %s %s: %s", what, tmp, strerror(errno));
	fd = open_own_file(tmp, O_WRONLY | O_CREAT | O_EXCL, what, NULL, err);
	if (fd < 0)
		return fd;
	rc = write_full(fd, buf, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	/* rename replaces a link at path itself, never the file it points to */
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0)
		rc = fsync_dir_of(path);
	if (rc < 0) {
		unlink(tmp);
		return ipm_fail(err, rc, "cannot write %s %s: %s", what, path, strerror(-rc));
	}
	return 0;
}
