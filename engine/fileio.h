/* fileio.h - plain file I/O for the engine's own files (journal, bitmaps):
 * full reads despite EINTR, and crash-safe creation. */
#ifndef IPM_FILEIO_H
#define IPM_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bytes read; fewer than len only at end of file. -errno on failure. */
ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off);
/* fsync the directory that holds path. 0 or -errno. */
int fsync_dir_of(const char *path);

#endif
