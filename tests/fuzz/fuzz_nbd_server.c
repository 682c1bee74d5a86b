/* fuzz_nbd_server.c - the whole NBD server (handshake, options, request
 * loop, worker pool, replies) of ipmirrord on a real engine with two
 * unmirrored LUNs, one client connection per input through a socketpair:
 * the input is everything the client sends, the replies are drained until
 * the server closes. A connection that does not end is a hang (abort). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"
#include "ipmirror.h"
#include "nbd/server.h"

#define END_TIMEOUT_MS 20000   /* the server's own timeouts are 10 s */

static ipm_config *cfg;
static ipm_engine *engine;
static struct nbd_server *server;

static void die(const char *what, const ipm_error *err)
{
	fprintf(stderr, "fuzz_nbd_server: %s: %s\n", what, err ? err->msg : strerror(errno));
	exit(1);
}

static void backing(const char *name, off_t size)
{
	char path[512];
	int fd;

	if (fuzz_path(path, sizeof(path), name) < 0)
		die("scratch directory", NULL);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, size) < 0)
		die(path, NULL);
	close(fd);
}

static void write_config(const char *path, const char *dir)
{
	char xml[2048];
	int n;

	n = snprintf(xml, sizeof(xml),
		     "<ipmirror version=\"1\">\n"
		     " <node name=\"fuzz\"><nbd unix=\"%s/nbd.sock\"/></node>\n"
		     " <lun name=\"vol0\" size=\"1M\"><backing path=\"%s/vol0.img\"/></lun>\n"
		     " <lun name=\"v1\" size=\"64K\"><backing path=\"%s/v1.img\"/></lun>\n"
		     "</ipmirror>\n", dir, dir, dir);
	if (fuzz_write_file(path, xml, (size_t)n) < 0)
		die(path, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *dir = fuzz_scratch();
	char path[512];
	ipm_listen listen;
	ipm_error err;

	if (!dir)
		die("scratch directory", NULL);
	signal(SIGPIPE, SIG_IGN);
	backing("vol0.img", 1 << 20);
	backing("v1.img", 64 << 10);
	fuzz_path(path, sizeof(path), "ipmirror.xml");
	write_config(path, dir);
	if (ipm_config_load(path, NULL, NULL, NULL, &cfg) != 0)
		die("the harness's config does not load", NULL);
	if (ipm_config_nbd_listen(cfg, "fuzz", &listen) < 0)
		die("nbd listener", NULL);
	if (ipm_engine_create(cfg, "fuzz", &engine, &err) < 0)
		die("engine", &err);
	if (nbd_server_create(engine, &listen, 4, &server, &err) < 0)
		die("nbd server", &err);
	if (ipm_engine_start(engine, &err) < 0 || nbd_server_start(server, &err) < 0)
		die("start", &err);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Send data on fd while reading whatever comes back, then half-close and
 * read until the server closes. */
static void pump(int fd, const uint8_t *data, size_t size)
{
	int64_t deadline = now_ms() + END_TIMEOUT_MS;
	static uint8_t sink[1 << 16];
	bool wr_open = true;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (wr_open ? POLLOUT : 0) };
		int64_t left = deadline - now_ms();
		ssize_t n;

		if (left <= 0) {
			fprintf(stderr, "fuzz_nbd_server: the connection did not end\n");
			abort();
		}
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			abort();
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = read(fd, sink, sizeof(sink));
			if (n == 0 || (n < 0 && errno == ECONNRESET))
				return;
		}
		if (wr_open && p.revents & POLLOUT) {
			n = size ? write(fd, data, size) : 0;
			if (n > 0) {
				data += n;
				size -= (size_t)n;
			}
			/* the server may stop reading (and close) early */
			if (!size || (n < 0 && errno == EPIPE)) {
				shutdown(fd, SHUT_WR);
				wr_open = false;
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ipm_error err;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (nbd_server_adopt(server, sv[0], &err) < 0) {
		fprintf(stderr, "fuzz_nbd_server: %s\n", err.msg);
		abort();
	}
	pump(sv[1], data, size);
	close(sv[1]);
	return 0;
}
