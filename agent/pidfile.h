/* pidfile.h - ipmirrord's pidfile, locked for the daemon's whole life. */
#ifndef IPM_PIDFILE_H
#define IPM_PIDFILE_H

#include <sys/types.h>

#include "ipmirror.h"

#define IPM_RUNDIR "/run/ipmirror"

struct pidfile {
	int fd;          /* -1: none */
	char path[4096];
};

/* The default for admin socket `socket`: IPM_RUNDIR/ipmirrord.pid for the
 * default socket, IPM_RUNDIR/ipmirrord-SOCKET.pid for another (two daemons
 * on one machine, as in tests, need two). -ENAMETOOLONG, -EINVAL ('/'). */
int pidfile_default(const char *socket, char *buf, size_t len);
/* Create (its directory too, mode 0755) and lock path; -EEXIST with the
 * holder named in err when another process holds it. A stale file of a
 * dead daemon is taken over. */
int pidfile_lock(struct pidfile *pf, const char *path, ipm_error *err);
/* Write pid into the locked file (after detaching: the child's). */
int pidfile_write(struct pidfile *pf, pid_t pid, ipm_error *err);
/* Remove the file and drop the lock. */
void pidfile_release(struct pidfile *pf);

#endif /* IPM_PIDFILE_H */
