/* fake_peer.c - a misbehaving primary for tests: connects to a mirror's data
 * port and runs the real client handshake with whatever identity, secret and
 * LUN list it is given, then reports what the mirror said.
 *
 *   fake_peer [--send-empty] HOST PORT SELF PEER SECRET_FILE LUN:SIZE:MODE[:GEN]...
 *
 * GEN (hex, as `status` shows it) is the generation the LUN claims.
 *
 * Exit 0 when the mirror accepted, 1 when it refused (reason on stdout),
 * 2 on usage or local errors. --send-empty then plays an older primary that
 * sent empty requests: a zero-length WRITE, TRIM and ZERO, then a 4 KiB
 * WRITE of 0x5a at offset 0 after them, on LUN 0; exit 0 only when all
 * four are answered with status 0 on the same connection.
 *
 * FAKE_PEER_WAITING=WINDOW:COUNT:LEN makes it a buggy primary: it announces
 * WINDOW, sends COUNT WRITE frames of LEN bytes to lun 0 that all wait for
 * request 1 (never sent), and reports how many the mirror held before it
 * closed the connection; then it connects again with the same session and
 * says whether the mirror's ordering record changed (it forgot the session).
 * FAKE_PEER_GEN=HEX (the mirror's generation) makes our data its
 * descendant, so a known LUN is accepted. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "crc32c.h"
#include "handshake.h"
#include "wire.h"

static int dial(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	int fd;

	if (getaddrinfo(host, port, &hints, &ai))
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static int io_full(int fd, void *buf, size_t len, bool out)
{
	size_t done = 0;

	while (done < len) {
		struct pollfd p = { .fd = fd, .events = out ? POLLOUT : POLLIN };
		ssize_t n;

		if (poll(&p, 1, 5000) != 1)
			return -1;
		n = out ? send(fd, (char *)buf + done, len - done, MSG_NOSIGNAL)
			: recv(fd, (char *)buf + done, len - done, 0);
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int send_frame(int fd, uint16_t type, uint64_t seq, uint64_t len, const void *data)
{
	struct wire_frame f = { .magic = WIRE_FRAME_MAGIC, .type = type, .seq = seq,
				.dep = seq - 1, .length = len };
	uint8_t b[WIRE_FRAME_LEN];

	if (type == WIRE_WRITE) {
		f.len = (uint32_t)len;
		f.csum = crc32c(0, data, len);
	}
	wire_frame_encode(b, &f);
	if (io_full(fd, b, sizeof(b), true) < 0)
		return -1;
	return type == WIRE_WRITE && len ? io_full(fd, (void *)data, len, true) : 0;
}

/* The empty requests of an older primary, then one real write. */
static int send_empty(int fd)
{
	static const uint16_t types[] = { WIRE_WRITE, WIRE_TRIM, WIRE_ZERO };
	uint8_t data[4096], b[WIRE_FRAME_LEN];
	struct wire_frame f;
	ipm_error err = { "" };
	unsigned i, acked = 0;

	memset(data, 0x5a, sizeof(data));
	for (i = 0; i < 3; i++)
		if (send_frame(fd, types[i], i + 1, 0, NULL) < 0)
			goto out;
	if (send_frame(fd, WIRE_WRITE, 4, sizeof(data), data) < 0)
		goto out;
	while (acked < 4) {
		if (io_full(fd, b, sizeof(b), false) < 0)
			goto out;
		if (wire_frame_decode(b, 1, &f, &err) < 0) {
			printf("bad frame from the mirror: %s\n", err.msg);
			return 1;
		}
		if (f.type != WIRE_ACK)
			continue;
		if (f.status != 0) {
			printf("request %llu answered with status %d\n", (unsigned long long)f.seq,
			       f.status);
			return 1;
		}
		acked++;
	}
out:
	printf("%u of 4 requests answered\n", acked);
	return acked == 4 ? 0 : 1;
}

static int parse_lun(const char *spec, struct wire_lun *l)
{
	char name[WIRE_NAME_LEN], mode[8];
	unsigned long long size, gen = 0;

	if (sscanf(spec, "%63[^:]:%llu:%7[a-z]:%llx", name, &size, mode, &gen) < 3)
		return -1;
	memset(l, 0, sizeof(*l));
	strcpy(l->name, name);
	l->size = size;
	l->generation = gen;
	l->mode = strcmp(mode, "async") == 0 ? IPM_MODE_ASYNC : IPM_MODE_SYNC;
	return 0;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Did the mirror close fd within ms? (It answers nothing to waiting
 * requests, so anything readable is the end.) */
static bool closed_within(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;

	return poll(&pfd, 1, ms) == 1 && recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

/* Frames 2, 3, ... all depending on 1: they wait, one after the other. */
static int send_waiting(int fd, unsigned count, uint32_t len)
{
	uint8_t hdr[WIRE_FRAME_LEN], *data = calloc(1, len);
	struct wire_frame f = { .magic = WIRE_FRAME_MAGIC, .type = WIRE_WRITE, .len = len,
				.length = len, .dep = 1 };
	unsigned i;

	if (!data)
		return -1;
	memset(data, 0x5a, len);
	f.csum = crc32c(0, data, len);
	for (i = 0; i < count; i++) {
		f.seq = 2 + i;
		wire_frame_encode(hdr, &f);
		/* time for the mirror to read and admit it before the next */
		if (send_all(fd, hdr, sizeof(hdr)) < 0 || send_all(fd, data, len) < 0 ||
		    closed_within(fd, 200))
			break;
	}
	free(data);
	if (i == count)
		printf("the mirror holds all %u waiting requests\n", count);
	else
		printf("the mirror closed the connection at waiting request %u of %u\n", i + 1,
		       count);
	return 0;
}

int main(int argc, char **argv)
{
	struct wire_lun luns[8];
	struct auth_secret secret;
	ipm_error err = { "" };
	const char *waiting = getenv("FAKE_PEER_WAITING");
	unsigned window = 64, count = 0, len = 0;
	uint64_t session, record = 0, record2 = 0;
	bool empty = argc > 1 && strcmp(argv[1], "--send-empty") == 0;
	int fd, i, n, rc;

	if (empty) {
		argv++;
		argc--;
	}
	if (argc < 7 || argc - 6 > 8) {
		fprintf(stderr, "usage: fake_peer [--send-empty] HOST PORT SELF PEER SECRET LUN:SIZE:MODE...\n");
		return 2;
	}
	for (i = 6, n = 0; i < argc; i++, n++)
		if (parse_lun(argv[i], &luns[n]) < 0) {
			fprintf(stderr, "fake_peer: bad lun \"%s\"\n", argv[i]);
			return 2;
		} else {
			luns[n].id = (uint16_t)n;	/* its frames' lun (version 5) */
		}
	if (auth_secret_load(argv[5], &secret, &err) < 0) {
		fprintf(stderr, "fake_peer: %s\n", err.msg);
		return 2;
	}
	if (waiting && sscanf(waiting, "%u:%u:%u", &window, &count, &len) != 3) {
		fprintf(stderr, "fake_peer: FAKE_PEER_WAITING=WINDOW:COUNT:LEN\n");
		return 2;
	}
	if (getenv("FAKE_PEER_GEN")) {
		luns[0].generation = 0x6661b3ull << 40 | (uint64_t)getpid();
		luns[0].history[0] = strtoull(getenv("FAKE_PEER_GEN"), NULL, 16);
		luns[0].n_history = 1;
	}
	fd = dial(argv[1], argv[2]);
	if (fd < 0) {
		fprintf(stderr, "fake_peer: cannot connect to %s:%s\n", argv[1], argv[2]);
		return 2;
	}
	auth_random((uint8_t *)&session, sizeof(session));
	struct hs_client_params p = {
		.self = argv[3], .peer = argv[4], .conn_index = 0, .conn_count = 4, /* the pair default */
		.secret = &secret, .session = session, .window = window,
		.n_luns = (uint32_t)n, .luns = luns, .record = &record,
	};
	rc = handshake_client(fd, &p, &err);
	if (rc < 0) {
		close(fd);
		printf("refused: %s\n", err.msg);
		return 1;
	}
	printf("accepted\n");
	if (waiting) {
		send_waiting(fd, count, len);
		close(fd);
		fd = dial(argv[1], argv[2]);
		p.record = &record2;
		if (fd < 0 || handshake_client(fd, &p, &err) < 0) {
			printf("reconnect refused: %s\n", err.msg);
		} else {
			printf("the mirror's ordering record %s\n",
			       record2 == record ? "is the same" : "changed: the session was forgotten");
		}
		rc = 0;
	} else {
		rc = empty ? send_empty(fd) : 0;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}
