/* fullio.c - whole reads and writes despite EINTR and short transfers. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fullio.h"

void iov_advance(struct iovec **iov, int *cnt, size_t n)
{
	while (*cnt > 0 && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt > 0) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

/* off < 0: read() at the file position, else pread() at off. */
static ssize_t read_loop(int fd, void *buf, size_t len, int64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		if (off < 0)
			n = read(fd, (char *)buf + done, len - done);
		else
			n = pread(fd, (char *)buf + done, len - done, (off_t)off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int write_loop(int fd, const void *buf, size_t len, int64_t off)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		if (off < 0)
			n = write(fd, (const char *)buf + done, len - done);
		else
			n = pwrite(fd, (const char *)buf + done, len - done,
				   (off_t)off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return 0;
}

ssize_t read_full(int fd, void *buf, size_t len)
{
	return read_loop(fd, buf, len, -1);
}

ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	return read_loop(fd, buf, len, (int64_t)off);
}

int write_full(int fd, const void *buf, size_t len)
{
	return write_loop(fd, buf, len, -1);
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	return write_loop(fd, buf, len, (int64_t)off);
}

int pwritev_full(int fd, struct iovec *iov, int cnt, uint64_t off)
{
	ssize_t n;

	while (cnt > 0) {
		n = pwritev(fd, iov, cnt, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (uint64_t)n;
		iov_advance(&iov, &cnt, (size_t)n);
	}
	return 0;
}

int sendmsg_full(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		iov_advance(&iov, &cnt, (size_t)n);
	}
	return 0;
}
