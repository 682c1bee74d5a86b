/* fuzz_handshake.c - the handshake state machine (engine/proto/handshake.c) of
 * the mirror side, handshake_server, with a hostile primary through a
 * socketpair: the input is the client's message stream (HELLO, then AUTH or
 * a WELCOME of its own, then anything). The harness plays that client: it
 * reads the server's CHALLENGE and, when the first input byte says so,
 * writes the right MAC into the AUTH (the server's nonce is random), so the
 * fuzzer reaches the LUN list and the acceptance check behind it. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "fuzz.h"
#include "endian.h"
#include "handshake.h"

#define SELF "node2"
#define PEER "node1"
#define STEP_MS 2000

static struct auth_secret secret = { .key = "fuzz-secret-0123456789", .len = 22 };

struct server {
	int fd;
	int rc;
	uint8_t refuse;   /* the check's answer */
	struct wire_hello hello;
	struct wire_auth auth;
	ipm_error err;
};

/* The mirror's check: verdicts for every LUN, a record, or a refusal. */
static int check(void *opaque, const struct wire_hello *hello, const struct wire_auth *auth,
		 uint8_t *verdicts, uint64_t *fills, uint64_t *record, char *reason, size_t reason_len)
{
	struct server *s = opaque;

	if (auth->n_luns > WIRE_MAX_LUNS || strcmp(hello->from, PEER))
		abort();
	for (uint32_t i = 0; i < auth->n_luns; i++)
		verdicts[i] = (uint8_t)(auth->luns[i].generation & 3);
	*record = auth->session ^ 0x5a5a;
	if (s->refuse & 1) {
		snprintf(reason, reason_len, "unknown lun \"%s\"", auth->n_luns ? auth->luns[0].name : "");
		return EINVAL;
	}
	return 0;
}

static void *server_main(void *arg)
{
	struct server *s = arg;

	s->rc = handshake_server_ms(s->fd, STEP_MS, SELF, PEER, &secret, check, s, &s->hello,
				    &s->auth, &s->err);
	/* the frames would follow: this conversation ends here */
	shutdown(s->fd, SHUT_RDWR);
	return NULL;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, uint8_t *p, size_t n)
{
	while (n) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Length of the message at d (header + body as its header says), clipped. */
static size_t msg_len(const uint8_t *d, size_t n)
{
	size_t len;

	if (n < WIRE_HS_HDR_LEN)
		return n;
	len = WIRE_HS_HDR_LEN + (size_t)be_get32(d + 8);
	return len < n ? len : n;
}

/* Read the CHALLENGE; 0 with its nonce, -1 when the server said otherwise. */
static int read_challenge(int fd, uint8_t nonce[WIRE_NONCE_LEN])
{
	static uint8_t body[WIRE_HS_MAX_BODY];
	struct wire_challenge ch;
	struct wire_hs_hdr h;
	uint8_t hdr[WIRE_HS_HDR_LEN];
	ipm_error err;

	if (read_all(fd, hdr, sizeof(hdr)) < 0 || wire_hs_hdr_decode(hdr, 0, &h, &err) < 0 ||
	    read_all(fd, body, h.len) < 0)
		return -1;
	if (h.type != WIRE_CHALLENGE || wire_challenge_decode(body, h.len, &ch, &err) < 0)
		return -1;
	memcpy(nonce, ch.nonce, WIRE_NONCE_LEN);
	return 0;
}

/* Play the client: HELLO, the CHALLENGE, AUTH (its MAC made right when
 * sign), the rest; then read whatever the server sends until it closes. */
static void client(int fd, const uint8_t *d, size_t n, bool sign)
{
	static uint8_t msg[WIRE_HS_HDR_LEN + WIRE_HS_MAX_BODY];
	uint8_t nonce[WIRE_NONCE_LEN], sink[4096];
	const uint8_t *hello_msg = d;
	struct wire_hello hello;
	size_t hello_len = msg_len(d, n), l;
	ipm_error err;

	/* a HELLO shorter than its header says: no CHALLENGE will come */
	if (write_all(fd, d, hello_len) < 0 || hello_len < WIRE_HS_HDR_LEN ||
	    hello_len < WIRE_HS_HDR_LEN + be_get32(d + 8))
		goto out;
	d += hello_len;
	n -= hello_len;
	if (read_challenge(fd, nonce) < 0)
		goto out;
	l = msg_len(d, n);
	memcpy(msg, d, l);
	/* the MAC over the server's nonce and the HELLO it accepted */
	if (sign && l >= WIRE_HS_HDR_LEN + WIRE_MAC_LEN && be_get16(msg + 6) == WIRE_AUTH &&
	    hello_len >= WIRE_HS_HDR_LEN &&
	    wire_hello_decode(hello_msg + WIRE_HS_HDR_LEN, hello_len - WIRE_HS_HDR_LEN, &hello,
			      &err) == 0)
		auth_mac(&secret, "client", nonce, hello.nonce, hello.from, SELF,
			 msg + WIRE_HS_HDR_LEN);
	if (write_all(fd, msg, l) < 0 || write_all(fd, d + l, n - l) < 0)
		goto out;
out:
	shutdown(fd, SHUT_WR);
	while (read(fd, sink, sizeof(sink)) > 0)
		;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct server s;
	pthread_t t;
	int sv[2];

	if (size < 1)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	memset(&s, 0, sizeof(s));
	s.fd = sv[0];
	s.refuse = data[0] >> 1;
	if (pthread_create(&t, NULL, server_main, &s) != 0)
		abort();
	client(sv[1], data + 1, size - 1, data[0] & 1);
	pthread_join(t, NULL);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "handshake_server: %d %s\n", s.rc, s.rc ? s.err.msg : "accepted");
	/* a refusal is a -errno and says why */
	if (s.rc < 0 && (s.rc < -4095 || !s.err.msg[0]))
		abort();
	if (s.rc == 0 && (strcmp(s.hello.from, PEER) || strcmp(s.hello.to, SELF)))
		abort();
	close(sv[0]);
	close(sv[1]);
	return 0;
}
