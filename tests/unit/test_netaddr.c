/* test_netaddr.c - common/netaddr.c: resolving, a TCP listener a client
 * reaches, a bound UDP socket, and bad addresses refused with a message
 * naming what the address is for. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "netaddr.h"

static uint16_t port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void test_resolve(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;

	(void)state;
	assert_int_equal(net_resolve("127.0.0.1", 7788, SOCK_STREAM, AF_UNSPEC, false, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 7788);
	assert_int_equal(net_resolve("::1", 1, SOCK_DGRAM, AF_UNSPEC, false, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	/* the peer must share the local address's family */
	assert_int_not_equal(net_resolve("::1", 1, SOCK_DGRAM, AF_INET, false, &ss, &len), 0);
	assert_int_not_equal(net_resolve("no such host.invalid", 1, SOCK_STREAM, AF_UNSPEC, false,
					 &ss, &len), 0);
}

static void test_listen_tcp(void **state)
{
	ipm_error err = { "" };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd, c;

	(void)state;
	fd = net_listen_tcp("127.0.0.1", 0, 4, SOCK_NONBLOCK, "data address", &err);
	assert_true(fd >= 0);
	sa.sin_port = htons(port_of(fd));
	c = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(c);
	/* the same port again: in use */
	assert_int_equal(net_listen_tcp("127.0.0.1", port_of(fd), 4, 0, "NBD address", &err),
			 -EADDRINUSE);
	assert_non_null(strstr(err.msg, "cannot listen on NBD address 127.0.0.1:"));
	close(fd);
	assert_int_equal(net_listen_tcp("bad host.invalid", 1, 4, 0, "data address", &err), -EINVAL);
	assert_non_null(strstr(err.msg, "data address bad host.invalid"));
}

static void test_bind_udp(void **state)
{
	struct sockaddr_storage local;
	ipm_error err = { "" };
	int fd;

	(void)state;
	fd = net_bind_udp("127.0.0.1", 0, &local, "heartbeat address", &err);
	assert_true(fd >= 0);
	assert_int_equal(local.ss_family, AF_INET);
	assert_int_equal(net_bind_udp("127.0.0.1", port_of(fd), NULL, "heartbeat address", &err),
			 -EADDRINUSE);
	assert_non_null(strstr(err.msg, "heartbeat address 127.0.0.1:"));
	close(fd);
	assert_int_equal(net_bind_udp("bad host.invalid", 1, NULL, "heartbeat address", &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "heartbeat address bad host.invalid:1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_listen_tcp),
		cmocka_unit_test(test_bind_udp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
