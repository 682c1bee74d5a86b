/* fake_peer.c - a misbehaving primary for tests: connects to a mirror's data
 * port and runs the real client handshake with whatever identity, secret and
 * LUN list it is given, then reports what the mirror said.
 *
 *   fake_peer HOST PORT SELF PEER SECRET_FILE LUN:SIZE:MODE...
 *
 * Exit 0 when the mirror accepted, 1 when it refused (reason on stdout),
 * 2 on usage or local errors. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handshake.h"

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

static int parse_lun(const char *spec, struct wire_lun *l)
{
	char name[WIRE_NAME_LEN], mode[8];
	unsigned long long size;

	if (sscanf(spec, "%63[^:]:%llu:%7s", name, &size, mode) != 3)
		return -1;
	memset(l, 0, sizeof(*l));
	strcpy(l->name, name);
	l->size = size;
	l->mode = strcmp(mode, "async") == 0 ? IPM_MODE_ASYNC : IPM_MODE_SYNC;
	return 0;
}

int main(int argc, char **argv)
{
	struct wire_lun luns[8];
	struct auth_secret secret;
	ipm_error err = { "" };
	uint64_t session;
	int fd, i, n, rc;

	if (argc < 7 || argc - 6 > 8) {
		fprintf(stderr, "usage: fake_peer HOST PORT SELF PEER SECRET LUN:SIZE:MODE...\n");
		return 2;
	}
	for (i = 6, n = 0; i < argc; i++, n++)
		if (parse_lun(argv[i], &luns[n]) < 0) {
			fprintf(stderr, "fake_peer: bad lun \"%s\"\n", argv[i]);
			return 2;
		}
	if (auth_secret_load(argv[5], &secret, &err) < 0) {
		fprintf(stderr, "fake_peer: %s\n", err.msg);
		return 2;
	}
	fd = dial(argv[1], argv[2]);
	if (fd < 0) {
		fprintf(stderr, "fake_peer: cannot connect to %s:%s\n", argv[1], argv[2]);
		return 2;
	}
	auth_random((uint8_t *)&session, sizeof(session));
	struct hs_client_params p = {
		.self = argv[3], .peer = argv[4], .conn_index = 0, .conn_count = 4, /* the pair default */
		.secret = &secret, .session = session, .window = 64,
		.n_luns = (uint32_t)n, .luns = luns,
	};
	rc = handshake_client(fd, &p, &err);
	close(fd);
	if (rc < 0) {
		printf("refused: %s\n", err.msg);
		return 1;
	}
	printf("accepted\n");
	return 0;
}
