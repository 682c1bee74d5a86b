/* durable.c - making the creation of a file survive a crash: the new
 * directory entry is durable only once its directory is synced. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "durable.h"

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
