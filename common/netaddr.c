/* netaddr.c - address resolution and listening sockets (netaddr.h). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "netaddr.h"

int net_resolve(const char *address, uint16_t port, int socktype, int family, bool passive,
		struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = {
		.ai_family = family,
		.ai_socktype = socktype,
		.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0),
	};
	struct addrinfo *ai;
	char ps[8];
	int rc;

	snprintf(ps, sizeof(ps), "%u", port);
	rc = getaddrinfo(address, ps, &hints, &ai);
	if (rc)
		return rc;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

int net_listen_tcp(const char *address, uint16_t port, int backlog, int flags,
		   const char *what, ipm_error *err)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *res, *ai;
	char ps[8];
	int rc, fd = -1, one = 1, saved = 0;

	snprintf(ps, sizeof(ps), "%u", port);
	rc = getaddrinfo(address, ps, &hints, &res);
	if (rc)
		return ipm_fail(err, -EINVAL, "%s %s: %s", what, address ? address : "*",
				gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | flags, ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return ipm_fail(err, -saved, "cannot listen on %s %s:%u: %s", what,
				address ? address : "*", port, strerror(saved));
	return fd;
}

int net_bind_udp(const char *address, uint16_t port, struct sockaddr_storage *local,
		 const char *what, ipm_error *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, rc;

	rc = net_resolve(address, port, SOCK_DGRAM, AF_UNSPEC, true, &ss, &len);
	if (rc)
		return ipm_fail(err, -EINVAL, "%s %s:%u: %s", what, address ? address : "*", port,
				gai_strerror(rc));
	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ipm_fail(err, -errno, "socket for %s %s:%u: %s", what,
				address ? address : "*", port, strerror(errno));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		rc = ipm_fail(err, -errno, "cannot bind a UDP socket to %s %s:%u: %s", what,
			      address ? address : "*", port, strerror(errno));
		close(fd);
		return rc;
	}
	if (local)
		*local = ss;
	return fd;
}
