/* durable.h - crash-safe file creation helpers. */
#ifndef IPM_DURABLE_H
#define IPM_DURABLE_H

/* fsync the directory that holds path. 0 or -errno. */
int fsync_dir_of(const char *path);

#endif
