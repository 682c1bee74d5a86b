/* fileio.h - plain file I/O for the engine's own files (journal, bitmaps):
 * opens that never follow a planted symbolic link,
 * and crash-safe creation. */
#ifndef IPM_FILEIO_H
#define IPM_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fullio.h"
#include "ipmirror.h"

/* fsync the directory that holds path. 0 or -errno. */
int fsync_dir_of(const char *path);
/* Open one of the engine's own files (journal, bitmaps, generation, heartbeat
 * volume; never a LUN's backing, which may be a link to a device) with
 * O_NOFOLLOW: the daemon runs as root, and a link planted where our file
 * belongs would aim its writes at any file of the system. With O_CREAT in
 * flags an absent file is created 0600 with O_EXCL and *created is set
 * (created may be NULL); O_CREAT | O_EXCL opens only a file it creates.
 * what names the file in messages ("journal"). The fd, or -errno with err
 * set. */
int open_own_file(const char *path, int flags, const char *what, bool *created,
		  ipm_error *err);
/* Write len bytes to a new temporary tmp (O_EXCL, 0600, a stale one from a
 * crash removed first), fsync it and rename it over path, then sync the
 * directory: path holds the old or the new bytes, never a mix, and is never
 * written through a link. 0 or -errno with err set. */
int replace_file(const char *path, const char *tmp, const void *buf, size_t len,
		 const char *what, ipm_error *err);

#endif
