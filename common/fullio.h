/* fullio.h - whole reads and writes despite EINTR and short transfers: the
 * one home of these loops (fullio.c). Writes return 0 or -errno; reads the
 * byte count, short only at end of file, or -errno. */
#ifndef IPM_FULLIO_H
#define IPM_FULLIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

ssize_t read_full(int fd, void *buf, size_t len);
ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off);
int write_full(int fd, const void *buf, size_t len);
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
/* iov is consumed (advanced) as the data goes out. */
int pwritev_full(int fd, struct iovec *iov, int cnt, uint64_t off);
/* sendmsg with MSG_NOSIGNAL until everything went out; iov is consumed. */
int sendmsg_full(int fd, struct iovec *iov, int cnt);
/* Drop n bytes from the front of the vector (iov, cnt): after a short transfer. */
void iov_advance(struct iovec **iov, int *cnt, size_t n);

#endif
