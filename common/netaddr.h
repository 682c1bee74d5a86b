/* netaddr.h - address resolution and listening sockets (netaddr.c): the one
 * home of the getaddrinfo, socket, bind and listen sequences of the data
 * path, the NBD listener and the UDP heartbeat. Knows nothing of the engine;
 * errors come back through ipm_fail, naming what the address is for. */
#ifndef IPM_NETADDR_H
#define IPM_NETADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "ipmirror.h"   /* ipm_error */

/* address:port (a numeric port) of socktype, in family (AF_UNSPEC: any)
 * into *ss; passive: a local address to bind (NULL: the wildcard). The first
 * result. 0, or getaddrinfo's error code (gai_strerror names it). */
int net_resolve(const char *address, uint16_t port, int socktype, int family, bool passive,
		struct sockaddr_storage *ss, socklen_t *len);
/* A TCP socket listening on address:port with SO_REUSEADDR, trying each
 * address the name resolves to; flags: SOCK_NONBLOCK or 0 (CLOEXEC always).
 * The socket, or -errno with "what address: ..." / "cannot listen on what
 * address:port: ..." in err. */
int net_listen_tcp(const char *address, uint16_t port, int backlog, int flags,
		   const char *what, ipm_error *err);
/* A UDP socket bound to address:port; *local (may be NULL) gets the bound
 * address, whose family the peer's address must share. The socket or
 * -errno, errors named like net_listen_tcp's. */
int net_bind_udp(const char *address, uint16_t port, struct sockaddr_storage *local,
		 const char *what, ipm_error *err);

#endif
