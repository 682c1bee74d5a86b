/* test_service.c - systemd's notify protocol as ipmirrord speaks it
 * (agent/service.c), against a socket of the test's own: an abstract
 * $NOTIFY_SOCKET ("@name") receives what is sent, the environment is
 * cleared for the daemon's children, WATCHDOG_PID of another process turns
 * the watchdog off, a bad address is refused; and the watchdog's verdict on
 * the I/O path's health, with the NBD server replaced by stubs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "service.h"

/* ---- the NBD server, as the watchdog sees it ------------------------------ */

static struct nbd_health stub_health;
static int stub_status_rc;

void nbd_server_health(struct nbd_server *s, struct nbd_health *h)
{
	(void)s;
	*h = stub_health;
}

int nbd_server_status(struct nbd_server *s, ipm_status **st)
{
	(void)s;
	*st = NULL;
	if (stub_status_rc < 0)
		return stub_status_rc;
	*st = calloc(1, sizeof(**st));  /* freed by ipm_status_free */
	snprintf((*st)->node, sizeof((*st)->node), "n1");
	return *st ? 0 : -ENOMEM;
}

/* ---- a listener on an abstract socket ----------------------------------- */

static int listener(char *name, size_t len)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 300 * 1000 };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(name, len, "@ipm-test-service-%d", (int)getpid());
	memcpy(a.sun_path + 1, name + 1, strlen(name) - 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&a,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* The next datagram, "" after 300 ms without one. */
static const char *next_msg(int fd)
{
	static char buf[600];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void test_notify_abstract_socket(void **state)
{
	struct service *sv;
	ipm_error err = { "" };
	char name[64];
	int fd = listener(name, sizeof(name));

	(void)state;
	setenv("NOTIFY_SOCKET", name, 1);
	setenv("WATCHDOG_USEC", "200000", 1);
	assert_int_equal(service_init(&sv, &err), 0);
	assert_null(getenv("NOTIFY_SOCKET"));
	assert_null(getenv("WATCHDOG_USEC"));
	assert_int_equal(service_notify(sv, "READY=1\nSTATUS=node %s serving", "n1"), 0);
	assert_string_equal(next_msg(fd), "READY=1\nSTATUS=node n1 serving");
	service_free(sv);
	close(fd);
}

static void test_no_manager_sends_nothing(void **state)
{
	struct service *sv;
	ipm_error err = { "" };

	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(service_init(&sv, &err), 0);
	assert_int_equal(service_notify(sv, "READY=1"), 0);
	assert_int_equal(service_watch(sv, NULL, &err), 0);  /* no thread */
	service_free(sv);
	assert_int_equal(service_notify(NULL, "READY=1"), 0);
}

static void test_bad_notify_socket_refused(void **state)
{
	struct service *sv;
	ipm_error err = { "" };

	(void)state;
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(service_init(&sv, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "relative/path"));
	unsetenv("NOTIFY_SOCKET");
}

/* Count WATCHDOG=1 datagrams in about a second of a running watch thread. */
static int pings(const char *watchdog_pid, bool healthy)
{
	struct service *sv;
	ipm_error err = { "" };
	char name[64], pid[16];
	int fd = listener(name, sizeof(name)), n = 0;

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("NOTIFY_SOCKET", name, 1);
	setenv("WATCHDOG_USEC", "200000", 1);  /* a round every 100 ms */
	setenv("WATCHDOG_PID", watchdog_pid ? watchdog_pid : pid, 1);
	memset(&stub_health, 0, sizeof(stub_health));
	stub_health.acceptor_idle_ms = 500;
	stub_health.oldest_busy_ms = healthy ? 0 : 5000;
	stub_health.busy = healthy ? 0 : 1;
	stub_status_rc = 0;
	assert_int_equal(service_init(&sv, &err), 0);
	assert_int_equal(service_watch(sv, (struct nbd_server *)&stub_health, &err), 0);
	for (int i = 0; i < 20; i++) {
		const char *m = next_msg(fd);

		if (strcmp(m, "WATCHDOG=1") == 0)
			n++;
		else if (!m[0])
			break;
	}
	service_free(sv);
	close(fd);
	return n;
}

static void test_watchdog_pings_while_healthy(void **state)
{
	(void)state;
	assert_true(pings(NULL, true) >= 5);
}

static void test_watchdog_silent_while_stuck(void **state)
{
	(void)state;
	assert_int_equal(pings(NULL, false), 0);
}

static void test_watchdog_of_another_pid_is_off(void **state)
{
	(void)state;
	assert_int_equal(pings("1", true), 0);
}

static void test_health_verdict(void **state)
{
	struct nbd_health h = { .acceptor_idle_ms = 900 };
	char why[200];

	(void)state;
	assert_true(service_io_healthy(&h, 0, 15000, why, sizeof(why)));
	assert_false(service_io_healthy(&h, -EIO, 15000, why, sizeof(why)));
	assert_non_null(strstr(why, "status query"));
	h.oldest_busy_ms = 15000;  /* at the limit: still healthy */
	h.busy = 3;
	assert_true(service_io_healthy(&h, 0, 15000, why, sizeof(why)));
	h.oldest_busy_ms = 15001;
	assert_false(service_io_healthy(&h, 0, 15000, why, sizeof(why)));
	assert_non_null(strstr(why, "15001 ms (limit 15000 ms; 3 workers busy)"));
	h.oldest_busy_ms = 0;
	h.acceptor_idle_ms = 2500;  /* the acceptor gets 3 s at least */
	assert_true(service_io_healthy(&h, 0, 1000, why, sizeof(why)));
	h.acceptor_idle_ms = 3500;
	assert_false(service_io_healthy(&h, 0, 1000, why, sizeof(why)));
	assert_non_null(strstr(why, "acceptor"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_abstract_socket),
		cmocka_unit_test(test_no_manager_sends_nothing),
		cmocka_unit_test(test_bad_notify_socket_refused),
		cmocka_unit_test(test_watchdog_pings_while_healthy),
		cmocka_unit_test(test_watchdog_silent_while_stuck),
		cmocka_unit_test(test_watchdog_of_another_pid_is_off),
		cmocka_unit_test(test_health_verdict),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
