/* test_heartbeat.c - the probation state machine with synthetic times, the
 * datagram codec, and two real heartbeat instances talking over 127.0.0.1. */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <qb/qblog.h>

#include "auth.h"
#include "config.h"
#include "connection_array.h"
#include "wire.h"
#include "hb_packet.h"
#include "hb_state.h"
#include "probation.h"
#include "heartbeat.h"

/* ---- probation state machine ---------------------------------------------- */

/* interval 1.5 s, timeout 4 s, probation 10 s: the defaults */
static void init_default(struct probation *p)
{
	prob_init(p, "node2", 1.5, 4.0, 10.0);
}

/* Valid datagrams every interval_ms in [from, to]; returns the last time. */
static int64_t feed(struct probation *p, int64_t from, int64_t to, int64_t interval_ms,
		    uint64_t boot)
{
	int64_t t, last = from;

	for (t = from; t <= to; t += interval_ms) {
		prob_datagram(p, t, boot);
		last = t;
	}
	return last;
}

static void test_prob_first_contact_is_up(void **state)
{
	struct probation p;

	init_default(&p);
	assert_int_equal(prob_tick(&p, 0), IPM_LINK_DOWN);
	assert_int_equal(prob_age_ms(&p, 500), -1);
	/* a long silence before the first contact does not matter */
	assert_int_equal(prob_tick(&p, 60000), IPM_LINK_DOWN);
	assert_int_equal(prob_datagram(&p, 60000, 7), IPM_LINK_UP);
	assert_int_equal(prob_age_ms(&p, 60400), 400);
	assert_int_equal(prob_left_ms(&p, 60400), 0);
}

static void test_prob_timeout_goes_down(void **state)
{
	struct probation p;
	int64_t last;

	init_default(&p);
	last = feed(&p, 1000, 10000, 1500, 7);
	assert_int_equal(prob_tick(&p, last + 4000), IPM_LINK_UP);  /* not yet > timeout */
	assert_int_equal(prob_tick(&p, last + 4001), IPM_LINK_DOWN);
	assert_int_equal(prob_age_ms(&p, last + 5000), 5000);
}

static void test_prob_return_needs_unbroken_probation(void **state)
{
	struct probation p;
	int64_t last;

	init_default(&p);
	feed(&p, 0, 3000, 1500, 7);
	assert_int_equal(prob_tick(&p, 9000), IPM_LINK_DOWN);
	/* heartbeats come back: probation, not up */
	assert_int_equal(prob_datagram(&p, 10000, 7), IPM_LINK_PROBATION);
	assert_int_equal(prob_left_ms(&p, 10000), 10000);
	last = feed(&p, 11500, 19000, 1500, 7);
	assert_int_equal(prob_tick(&p, 19999), IPM_LINK_PROBATION);
	assert_int_equal(prob_left_ms(&p, 19999), 1);
	assert_true(20000 - last <= 1500);
	assert_int_equal(prob_tick(&p, 20000), IPM_LINK_UP);
	assert_int_equal(prob_left_ms(&p, 20000), 0);
}

static void test_prob_silence_during_probation_goes_down(void **state)
{
	struct probation p;

	init_default(&p);
	prob_datagram(&p, 0, 7);
	prob_tick(&p, 5000);
	assert_int_equal(prob_datagram(&p, 6000, 7), IPM_LINK_PROBATION);
	assert_int_equal(prob_tick(&p, 10000), IPM_LINK_PROBATION);
	assert_int_equal(prob_tick(&p, 10001), IPM_LINK_DOWN);
	/* and the next return starts a fresh probation */
	assert_int_equal(prob_datagram(&p, 12000, 7), IPM_LINK_PROBATION);
	assert_int_equal(prob_left_ms(&p, 12000), 10000);
}

static void test_prob_missed_heartbeat_restarts(void **state)
{
	struct probation p;

	init_default(&p);
	prob_datagram(&p, 0, 7);
	prob_tick(&p, 5000);
	assert_int_equal(prob_datagram(&p, 10000, 7), IPM_LINK_PROBATION);
	prob_datagram(&p, 11500, 7);
	/* 2250 ms (1.5 x interval) is still jitter ... */
	assert_int_equal(prob_datagram(&p, 13750, 7), IPM_LINK_PROBATION);
	assert_int_equal(prob_left_ms(&p, 13750), 6250);
	/* ... 2251 ms is a missed heartbeat: probation starts over there */
	assert_int_equal(prob_datagram(&p, 16001, 7), IPM_LINK_PROBATION);
	assert_int_equal(prob_left_ms(&p, 16001), 10000);
	feed(&p, 17501, 25001, 1500, 7);
	assert_int_equal(prob_tick(&p, 26000), IPM_LINK_PROBATION);
	assert_int_equal(prob_tick(&p, 26001), IPM_LINK_UP);
}

static void test_prob_not_up_while_a_heartbeat_is_missing(void **state)
{
	struct probation p;

	init_default(&p);
	prob_datagram(&p, 0, 7);
	prob_tick(&p, 5000);
	prob_datagram(&p, 10000, 7);
	feed(&p, 11500, 17500, 1500, 7);
	/* probation time is over but the last datagram is 2.5 s old: the
	 * run is broken, whatever comes next restarts it */
	assert_int_equal(prob_tick(&p, 20000), IPM_LINK_PROBATION);
	assert_int_equal(prob_datagram(&p, 20100, 7), IPM_LINK_PROBATION);
	assert_int_equal(prob_left_ms(&p, 20100), 10000);
}

static void test_prob_zero_probation(void **state)
{
	struct probation p;

	prob_init(&p, "node2", 1.5, 4.0, 0);
	prob_datagram(&p, 0, 7);
	assert_int_equal(prob_tick(&p, 4001), IPM_LINK_DOWN);
	assert_int_equal(prob_datagram(&p, 9000, 7), IPM_LINK_UP);
	assert_int_equal(prob_datagram(&p, 9100, 8), IPM_LINK_UP);  /* reboot too */
}

static void test_prob_peer_reboot(void **state)
{
	struct probation p;

	init_default(&p);
	assert_int_equal(prob_datagram(&p, 0, 7), IPM_LINK_UP);
	assert_int_equal(prob_datagram(&p, 1500, 7), IPM_LINK_UP);
	/* a new boot id without any gap: the peer restarted, it is a return */
	assert_int_equal(prob_datagram(&p, 3000, 8), IPM_LINK_PROBATION);
	assert_int_equal(prob_left_ms(&p, 3000), 10000);
	prob_datagram(&p, 4500, 8);
	/* restarting again during probation starts it over */
	assert_int_equal(prob_datagram(&p, 6000, 9), IPM_LINK_PROBATION);
	assert_int_equal(prob_left_ms(&p, 6000), 10000);
	feed(&p, 7500, 15000, 1500, 9);
	assert_int_equal(prob_tick(&p, 16000), IPM_LINK_UP);
}

/* ---- datagram codec -------------------------------------------------------- */

static const struct auth_secret *secret_of(const char *s)
{
	static struct auth_secret sec[2];
	static int which;
	struct auth_secret *r = &sec[which++ & 1];

	r->len = strlen(s);
	memcpy(r->key, s, r->len);
	return r;
}

/* A datagram of peer boot `boot` (boot id alike), its serial-th; the
 * timestamp grows with both, as the sender's does. */
static struct hb_packet sample(uint64_t boot, uint64_t serial)
{
	struct hb_packet p = {
		.from = "node2", .to = "node1", .serial = serial, .boot_id = boot,
		.timestamp_ms = 1700000000123ull + boot * 1000000 + serial * 100,
		.generation = 0x0102030405060708ull, .boot = boot,
	};
	return p;
}

static int decode(const uint8_t *buf, size_t len, const char *secret,
		  const struct hb_replay *rp, struct hb_packet *out, ipm_error *err)
{
	return hb_packet_decode(buf, len, secret_of(secret), "node2", "node1", rp, out, err);
}

static void test_packet_round_trip(void **state)
{
	struct hb_packet p = sample(0xdeadbeefcafef00dull, 42), q;
	uint8_t buf[HB_PACKET_LEN];
	ipm_error err = { "" };

	assert_int_equal(HB_PACKET_LEN, 208);
	assert_int_equal(hb_packet_encode(buf, &p, secret_of("s3cret")), HB_PACKET_LEN);
	assert_int_equal(buf[0], 'I');
	assert_int_equal(buf[3], 'B');
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", NULL, &q, &err), 0);
	assert_string_equal(q.from, "node2");
	assert_string_equal(q.to, "node1");
	assert_true(q.serial == 42);
	assert_true(q.boot_id == p.boot_id);
	assert_true(q.timestamp_ms == p.timestamp_ms);
	assert_true(q.generation == p.generation);
	assert_true(q.boot == p.boot);
	/* version 2 (the boot counter): a version-1 peer is refused by name */
	assert_int_equal(buf[5], 2);
	buf[5] = 1;
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", NULL, &q, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "version 1"));
}

static void test_packet_every_tampered_byte_fails(void **state)
{
	struct hb_packet p = sample(1, 1), q;
	uint8_t buf[HB_PACKET_LEN];
	ipm_error err;
	size_t i;
	int rc;

	hb_packet_encode(buf, &p, secret_of("s3cret"));
	for (i = 0; i < sizeof(buf); i++) {
		buf[i] ^= 0x20;
		rc = decode(buf, sizeof(buf), "s3cret", NULL, &q, &err);
		buf[i] ^= 0x20;
		/* the header is checked first; everything else by the MAC */
		if (rc != (i < 8 ? -EPROTO : -EBADMSG))
			print_error("byte %zu: rc %d (%s)\n", i, rc, err.msg);
		assert_int_equal(rc, i < 8 ? -EPROTO : -EBADMSG);
	}
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", NULL, &q, &err), 0);
	assert_int_equal(decode(buf, sizeof(buf), "other", NULL, &q, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "HMAC"));
}

static void test_packet_wrong_names(void **state)
{
	struct hb_packet p = sample(1, 1), q;
	uint8_t buf[HB_PACKET_LEN];
	ipm_error err;

	strcpy(p.from, "node3");
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", NULL, &q, &err), -EACCES);
	assert_non_null(strstr(err.msg, "node3"));
	p = sample(1, 1);
	strcpy(p.to, "node2");  /* our own datagram echoed back */
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", NULL, &q, &err), -EACCES);
	/* a name that does not fit its field is not encoded */
	memset(p.from, 'x', sizeof(p.from));
	assert_int_equal(hb_packet_encode(buf, &p, secret_of("s3cret")), 0);
}

static void test_packet_replay(void **state)
{
	struct hb_replay rp = { 0 };
	struct hb_packet p, q;
	uint8_t buf[HB_PACKET_LEN], old[HB_PACKET_LEN];
	ipm_error err;

	p = sample(100, 5);
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	memcpy(old, buf, sizeof(old));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", &rp, &q, &err), 0);
	hb_replay_accept(&rp, &q);
	/* the same datagram again, and an older serial */
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", &rp, &q, &err), -EALREADY);
	assert_non_null(strstr(err.msg, "replay"));
	p = sample(100, 4);
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", &rp, &q, &err), -EALREADY);
	p = sample(100, 6);
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", &rp, &q, &err), 0);
	hb_replay_accept(&rp, &q);
	/* the peer restarted: serials begin again */
	p = sample(200, 1);
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", &rp, &q, &err), 0);
	hb_replay_accept(&rp, &q);
	/* a recording of the previous boot stays refused */
	assert_int_equal(decode(old, sizeof(old), "s3cret", &rp, &q, &err), -EALREADY);
	assert_non_null(strstr(err.msg, "earlier peer boot (boot 100; the peer is at boot 200)"));
	p = sample(100, 1000);
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", &rp, &q, &err), -EALREADY);
}

/* Datagrams recorded over 10 earlier boots (more than any list of retired
 * boots would hold), replayed once the peer is at boot 11: none accepted. */
static void test_packet_replay_many_boots(void **state)
{
	uint8_t rec[50][HB_PACKET_LEN], buf[HB_PACKET_LEN];
	struct hb_replay rp = { 0 };
	struct hb_packet p, q;
	ipm_error err;
	unsigned b, i, accepted = 0;

	for (b = 1; b <= 10; b++) {
		for (i = 1; i <= 5; i++) {
			p = sample(b, i);
			hb_packet_encode(rec[(b - 1) * 5 + i - 1], &p, secret_of("s3cret"));
			assert_int_equal(decode(rec[(b - 1) * 5 + i - 1], HB_PACKET_LEN, "s3cret",
						&rp, &q, &err), 0);
			hb_replay_accept(&rp, &q);
		}
	}
	p = sample(11, 1);
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", &rp, &q, &err), 0);
	hb_replay_accept(&rp, &q);
	for (i = 0; i < 50; i++)
		accepted += decode(rec[i], HB_PACKET_LEN, "s3cret", &rp, &q, &err) == 0;
	assert_int_equal(accepted, 0);
}

/* After a restart of the receiver the replay state comes from the file:
 * the peer's highest boot and the newest timestamp of it. */
static void test_packet_replay_after_restart(void **state)
{
	struct hb_replay rp = { .have = true, .boot = 7,
				.timestamp_ms = sample(7, 20).timestamp_ms };
	uint8_t buf[HB_PACKET_LEN];
	struct hb_packet p, q;
	ipm_error err;

	p = sample(6, 100);  /* an earlier boot, whatever its serial */
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", &rp, &q, &err), -EALREADY);
	p = sample(7, 20);   /* the current boot, not newer than the file's */
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", &rp, &q, &err), -EALREADY);
	assert_non_null(strstr(err.msg, "timestamp"));
	p = sample(7, 21);
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", &rp, &q, &err), 0);
	p = sample(8, 1);    /* the peer restarted meanwhile */
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, sizeof(buf), "s3cret", &rp, &q, &err), 0);
}

/* ---- the state file ------------------------------------------------------------ */

static void state_dir(char *dir, size_t size)
{
	snprintf(dir, size, "/tmp/test_heartbeat.XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void test_state_file(void **state)
{
	struct hb_state st = { .boot = 1700000001, .peer = "node2", .peer_boot = 42,
			       .peer_timestamp_ms = 1700000000999ull }, got;
	char dir[64], path[128], tmp[140], victim[128], cmd[160];
	uint8_t b[HB_STATE_LEN];
	ipm_error err = { "" };
	struct stat sb;
	FILE *f;

	state_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/heartbeat-node1.state", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	/* missing: a fresh start */
	assert_int_equal(hb_state_load(path, &got, &err), 0);
	assert_true(got.boot == 0 && got.peer_boot == 0);
	/* a symlink planted at the temporary name is not followed */
	f = fopen(victim, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(hb_state_save(path, &st, &err), 0);
	assert_int_equal(stat(victim, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode) && (sb.st_mode & 077) == 0);
	assert_int_equal(hb_state_load(path, &got, &err), 0);
	assert_true(got.boot == st.boot && got.peer_boot == 42 &&
		    got.peer_timestamp_ms == st.peer_timestamp_ms);
	assert_string_equal(got.peer, "node2");
	/* damaged: refused with the path and the reason */
	hb_state_encode(&st, b);
	b[20] ^= 1;
	assert_int_equal(hb_state_decode(b, sizeof(b), path, &got, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "checksum mismatch"));
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(hb_state_decode(b, 12, path, &got, &err), -EINVAL);
	/* the file itself a symlink: refused */
	assert_int_equal(rename(path, victim), 0);
	assert_int_equal(symlink(victim, path), 0);
	assert_true(hb_state_load(path, &got, &err) < 0);
	assert_non_null(strstr(err.msg, path));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_state_next_boot(void **state)
{
	/* above the last one, and not below the clock's seconds */
	assert_true(hb_state_next_boot(0, 1700000000) == 1700000000);
	assert_true(hb_state_next_boot(1700000000, 1700000000) == 1700000001);
	assert_true(hb_state_next_boot(1800000000, 1700000000) == 1800000001);
	assert_true(hb_state_next_boot(5, -1) == 6);
}

static void test_packet_bad_sizes(void **state)
{
	struct hb_packet p = sample(1, 1), q;
	uint8_t buf[HB_PACKET_LEN + 1] = { 0 };
	ipm_error err;

	hb_packet_encode(buf, &p, secret_of("s3cret"));
	assert_int_equal(decode(buf, HB_PACKET_LEN - 1, "s3cret", NULL, &q, &err), -EMSGSIZE);
	assert_int_equal(decode(buf, HB_PACKET_LEN + 1, "s3cret", NULL, &q, &err), -EMSGSIZE);
	assert_int_equal(decode(buf, 0, "s3cret", NULL, &q, &err), -EMSGSIZE);
	assert_int_equal(decode(buf, 8, "s3cret", NULL, &q, &err), -EMSGSIZE);
}

/* ---- two real instances ------------------------------------------------------ */

static uint16_t free_udp_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

struct pair {
	struct ipm_endpoint ea, eb;
	struct auth_secret secret;
};

static int make(struct pair *pr, bool a, double probation, struct heartbeat **out,
		ipm_error *err)
{
	struct hb_params p = {
		.self = a ? "nodeA" : "nodeB", .peer = a ? "nodeB" : "nodeA",
		.local = a ? &pr->ea : &pr->eb, .remote = a ? &pr->eb : &pr->ea,
		.secret = &pr->secret, .interval = 0.1, .timeout = 0.4,
		.probation = probation,
	};
	return heartbeat_create(&p, out, err);
}

static int64_t wait_state(struct heartbeat *hb, enum ipm_link_state want, int64_t max_ms)
{
	int64_t t0 = ipm_now_ms();

	while (heartbeat_state(hb) != want) {
		if (ipm_now_ms() - t0 > max_ms)
			return -1;
		usleep(5000);
	}
	return ipm_now_ms();
}

static void start(struct heartbeat *hb)
{
	ipm_error err = { "" };
	int rc = heartbeat_start(hb, &err);

	if (rc < 0)
		print_error("start: %s\n", err.msg);
	assert_int_equal(rc, 0);
	assert_int_equal(heartbeat_start(hb, &err), -EALREADY);
}

static void send_raw(uint16_t port, const void *buf, size_t len)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *)&sa, sizeof(sa)),
			 (ssize_t)len);
	close(fd);
}

static void wait_dropped(struct heartbeat *hb, uint64_t want)
{
	int64_t t0 = ipm_now_ms();

	while (heartbeat_dropped(hb) < want && ipm_now_ms() - t0 < 2000)
		usleep(5000);
	assert_true(heartbeat_dropped(hb) == want);
}

static void test_two_nodes(void **state)
{
	struct pair pr = {
		.ea = { .address = (char *)"127.0.0.1", .port = free_udp_port() },
		.eb = { .address = (char *)"127.0.0.1", .port = free_udp_port() },
	};
	struct connection_array ca_in, ca_out;
	struct heartbeat *a, *b, *c;
	ipm_conn_status snap[2];
	uint8_t buf[HB_PACKET_LEN];
	struct hb_packet fake = { .from = "nodeB", .to = "nodeA", .serial = 1, .boot_id = 9 };
	ipm_error err = { "" };
	int64_t t, t_stop, t_start;

	pr.secret.len = 6;
	memcpy(pr.secret.key, "s3cret", 6);
	assert_int_equal(ca_init(&ca_in, 2), 0);
	assert_int_equal(ca_init(&ca_out, 2), 0);
	assert_int_equal(make(&pr, true, 0.5, &a, &err), 0);
	assert_int_equal(heartbeat_attach(a, &ca_in), 0);
	assert_int_equal(heartbeat_attach(a, &ca_out), 0);
	assert_int_equal(make(&pr, false, 0.5, &b, &err), 0);
	/* a busy port is named in the error */
	assert_true(make(&pr, true, 0.5, &c, &err) < 0);
	assert_non_null(strstr(err.msg, "127.0.0.1:"));
	assert_int_equal(heartbeat_state(a), IPM_LINK_DOWN);
	assert_int_equal(heartbeat_age_ms(a), -1);
	ca_set_up(&ca_in, 0, 100);
	ca_set_up(&ca_out, 0, 101);
	start(a);
	start(b);

	/* first contact: both up without probation */
	assert_true(wait_state(a, IPM_LINK_UP, 2000) > 0);
	assert_true(wait_state(b, IPM_LINK_UP, 2000) > 0);
	assert_true(heartbeat_may_connect(a));
	/* heartbeats keep the elements fresh well past the timeout */
	usleep(800000);
	assert_int_equal(ca_status(&ca_in, 0), IPM_LINK_UP);
	assert_int_equal(ca_status(&ca_out, 0), IPM_LINK_UP);
	ca_snapshot(&ca_in, snap, false);
	/* refreshed recently (bounds loose: a loaded machine is slow) */
	assert_true(snap[0].age_ms >= 0 && snap[0].age_ms < 1500);
	assert_true(heartbeat_age_ms(a) >= 0 && heartbeat_age_ms(a) < 1500);
	assert_true(heartbeat_dropped(a) == 0);

	/* a datagram with the wrong secret, and garbage, are counted */
	fake.timestamp_ms = 1;
	hb_packet_encode(buf, &fake, secret_of("wrong"));
	send_raw(pr.ea.port, buf, sizeof(buf));
	wait_dropped(a, 1);
	send_raw(pr.ea.port, "hello", 5);
	wait_dropped(a, 2);
	assert_int_equal(heartbeat_state(a), IPM_LINK_UP);

	/* B goes away: A goes down within about the timeout and marks the
	 * connections down */
	t = ipm_now_ms();
	heartbeat_stop(b);
	t_stop = ipm_now_ms() - t;
	assert_true(t_stop < 1500);  /* prompt, not a full poll timeout chain */
	heartbeat_destroy(b);
	t = wait_state(a, IPM_LINK_DOWN, 2000) - t;
	assert_true(t >= 250 && t < 5000);
	assert_true(heartbeat_age_ms(a) > 400);
	assert_int_equal(ca_wait_change(&ca_in, 0, IPM_LINK_UP, 1000), IPM_LINK_DOWN);
	assert_int_equal(ca_wait_change(&ca_out, 0, IPM_LINK_UP, 1000), IPM_LINK_DOWN);
	assert_false(heartbeat_may_connect(a));

	/* B restarts (a new boot on the same port): A needs 0.5 s of
	 * probation before UP */
	t_start = ipm_now_ms();
	assert_int_equal(make(&pr, false, 0.5, &b, &err), 0);
	start(b);
	t = wait_state(a, IPM_LINK_PROBATION, 2000);
	assert_true(t > 0);
	assert_false(heartbeat_may_connect(a));
	assert_true(heartbeat_probation_left_ms(a) > 0);
	/* no refresh during probation of what was up before it (test
	 * probation_keeps_new_connections: what comes up in it is kept) */
	assert_int_equal(ca_status(&ca_in, 0), IPM_LINK_DOWN);
	t = wait_state(a, IPM_LINK_UP, 3000);
	assert_true(t > 0);
	assert_true(t - t_start >= 500);
	assert_int_equal(heartbeat_probation_left_ms(a), 0);
	/* a refresh never revives a connection that is down */
	assert_int_equal(ca_status(&ca_in, 0), IPM_LINK_DOWN);
	/* once up again, elements are refreshed */
	ca_set_up(&ca_out, 1, 103);
	usleep(600000);
	assert_int_equal(ca_status(&ca_out, 1), IPM_LINK_UP);

	heartbeat_destroy(b);
	heartbeat_destroy(a);
	ca_destroy(&ca_in);
	ca_destroy(&ca_out);
}

/* The peer comes back: probation. A connection from before it ages out;
 * one the peer opens in it (a restarted peer dials at once: first contact,
 * no probation on its side) is kept fresh by its heartbeats during the
 * probation and is still up when the probation ends (it was marked down
 * then: the link flapped once after each peer restart). */
static void test_probation_keeps_new_connections(void **state)
{
	struct pair pr = {
		.ea = { .address = (char *)"127.0.0.1", .port = free_udp_port() },
		.eb = { .address = (char *)"127.0.0.1", .port = free_udp_port() },
	};
	struct hb_params p = {
		.self = "nodeA", .peer = "nodeB", .local = &pr.ea, .remote = &pr.eb,
		.secret = &pr.secret, .interval = 0.2, .timeout = 0.6, .probation = 2.5,
	};
	struct connection_array ca;
	struct heartbeat *a, *b;
	ipm_error err = { "" };
	int64_t t;

	pr.secret.len = 6;
	memcpy(pr.secret.key, "s3cret", 6);
	assert_int_equal(ca_init(&ca, 2), 0);
	assert_int_equal(heartbeat_create(&p, &a, &err), 0);
	assert_int_equal(heartbeat_attach(a, &ca), 0);
	assert_int_equal(make(&pr, false, 0.5, &b, &err), 0);
	start(a);
	start(b);
	assert_true(wait_state(a, IPM_LINK_UP, 2000) > 0);

	/* B goes and comes back (one process: the same boot id, so A sees
	 * heartbeats back, not a restart: the same probation) */
	heartbeat_stop(b);
	heartbeat_destroy(b);
	assert_true(wait_state(a, IPM_LINK_DOWN, 3000) > 0);
	ca_set_up(&ca, 0, 100);  /* one from before the probation */
	usleep(20000);           /* (not in the same millisecond) */
	assert_int_equal(make(&pr, false, 0.5, &b, &err), 0);
	start(b);
	t = wait_state(a, IPM_LINK_PROBATION, 2000);
	assert_true(t > 0);
	ca_set_up(&ca, 1, 101);  /* B's new connection */
	/* past timeout + interval: the old one is marked down, not the new */
	assert_int_equal(ca_wait_change(&ca, 0, IPM_LINK_UP, 1500), IPM_LINK_DOWN);
	usleep(1000000);
	assert_true(ipm_now_ms() - t >= 1000);
	assert_int_equal(ca_status(&ca, 1), IPM_LINK_UP);
	assert_true(wait_state(a, IPM_LINK_UP, 5000) > 0);
	/* heartbeats refresh it from now on as before */
	usleep(1000000);
	assert_int_equal(ca_status(&ca, 1), IPM_LINK_UP);

	heartbeat_destroy(b);
	heartbeat_destroy(a);
	ca_destroy(&ca);
}

/* Storage records (a heartbeat volume's, fed here by hand) every 100 ms. */
struct feeder {
	struct heartbeat *hb;
	pthread_t thread;
	bool run;               /* __atomic: the feeding thread reads it */
};

static void *feed_main(void *arg)
{
	struct feeder *f = arg;

	while (__atomic_load_n(&f->run, __ATOMIC_ACQUIRE)) {
		heartbeat_storage_record(f->hb, 7);
		usleep(100000);
	}
	return NULL;
}

static void records(struct feeder *f, bool on)
{
	__atomic_store_n(&f->run, on, __ATOMIC_RELEASE);
	if (on)
		assert_int_equal(pthread_create(&f->thread, NULL, feed_main, f), 0);
	else
		pthread_join(f->thread, NULL);
}

/* The same under method="storage" with no UDP heartbeat at all: the
 * storage records of the storage path's probation keep a connection
 * opened in it, not one from before it. */
static void test_storage_probation_keeps_new_connections(void **state)
{
	struct pair pr = {
		.ea = { .address = (char *)"127.0.0.1", .port = free_udp_port() },
		.eb = { .address = (char *)"127.0.0.1", .port = free_udp_port() },
	};
	struct feeder f = { 0 };
	struct connection_array ca;
	struct heartbeat *a;
	ipm_error err = { "" };
	int64_t t;

	pr.secret.len = 6;
	memcpy(pr.secret.key, "s3cret", 6);
	assert_int_equal(ca_init(&ca, 2), 0);
	assert_int_equal(make(&pr, true, 2.5, &a, &err), 0);
	heartbeat_set_method(a, IPM_HB_STORAGE);
	heartbeat_storage_enable(a, true);
	assert_int_equal(heartbeat_attach(a, &ca), 0);
	start(a);
	f.hb = a;
	records(&f, true);
	assert_true(wait_state(a, IPM_LINK_UP, 2000) > 0);

	records(&f, false);
	assert_true(wait_state(a, IPM_LINK_DOWN, 3000) > 0);
	ca_set_up(&ca, 0, 100);  /* one from before the probation */
	usleep(20000);
	records(&f, true);
	t = wait_state(a, IPM_LINK_PROBATION, 2000);
	assert_true(t > 0);
	ca_set_up(&ca, 1, 101);  /* one opened in it */
	/* past timeout + interval: the old one is marked down, not the new */
	assert_int_equal(ca_wait_change(&ca, 0, IPM_LINK_UP, 1000), IPM_LINK_DOWN);
	usleep(600000);
	assert_true(ipm_now_ms() - t >= 1000);
	assert_int_equal(heartbeat_state(a), IPM_LINK_PROBATION);
	assert_int_equal(ca_status(&ca, 1), IPM_LINK_UP);
	assert_true(wait_state(a, IPM_LINK_UP, 4000) > 0);
	usleep(600000);
	assert_int_equal(ca_status(&ca, 1), IPM_LINK_UP);

	records(&f, false);
	heartbeat_destroy(a);
	ca_destroy(&ca);
}

static void send_sample(uint16_t port, uint64_t boot, uint64_t serial)
{
	struct hb_packet p = sample(boot, serial);
	uint8_t buf[HB_PACKET_LEN];

	strcpy(p.from, "nodeB");
	strcpy(p.to, "nodeA");
	hb_packet_encode(buf, &p, secret_of("s3cret"));
	send_raw(port, buf, sizeof(buf));
}

static struct heartbeat *make_with_state(struct pair *pr, const char *path)
{
	struct hb_params p = {
		.self = "nodeA", .peer = "nodeB", .local = &pr->ea, .remote = &pr->eb,
		.secret = &pr->secret, .interval = 0.1, .timeout = 0.4, .probation = 0.5,
		.state_path = path,
	};
	struct heartbeat *hb = NULL;
	ipm_error err = { "" };

	if (heartbeat_create(&p, &hb, &err) < 0)
		print_error("create: %s\n", err.msg);
	assert_non_null(hb);
	start(hb);
	return hb;
}

/* A real receiver with a state file: what it accepted before a restart is
 * refused after it, earlier peer boots included; newer datagrams still count. */
static void test_restart_keeps_replays_out(void **state)
{
	struct pair pr = {
		.ea = { .address = (char *)"127.0.0.1", .port = free_udp_port() },
		.eb = { .address = (char *)"127.0.0.1", .port = free_udp_port() },
	};
	char dir[64], path[128], cmd[160];
	struct hb_state st;
	struct heartbeat *a;
	ipm_error err = { "" };

	pr.secret.len = 6;
	memcpy(pr.secret.key, "s3cret", 6);
	state_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/heartbeat-nodeA.state", dir);
	a = make_with_state(&pr, path);
	/* our boot counter is on disk before any datagram carries it */
	assert_int_equal(hb_state_load(path, &st, &err), 0);
	assert_true(st.boot == heartbeat_boot() && st.boot > 0);
	send_sample(pr.ea.port, 5, 1);
	assert_true(wait_state(a, IPM_LINK_UP, 2000) > 0);
	send_sample(pr.ea.port, 6, 1);   /* the peer restarted */
	assert_true(wait_state(a, IPM_LINK_PROBATION, 2000) > 0);
	assert_true(heartbeat_dropped(a) == 0);
	heartbeat_destroy(a);
	assert_int_equal(hb_state_load(path, &st, &err), 0);
	assert_true(st.peer_boot == 6 && st.peer_timestamp_ms == sample(6, 1).timestamp_ms);
	assert_string_equal(st.peer, "nodeB");

	/* this node restarts: the recordings are refused, the peer stays unheard */
	a = make_with_state(&pr, path);
	send_sample(pr.ea.port, 5, 1);
	send_sample(pr.ea.port, 5, 2);
	send_sample(pr.ea.port, 6, 1);
	wait_dropped(a, 3);
	assert_int_equal(heartbeat_state(a), IPM_LINK_DOWN);
	assert_int_equal(heartbeat_age_ms(a), -1);
	send_sample(pr.ea.port, 6, 2);
	assert_true(wait_state(a, IPM_LINK_UP, 2000) > 0);
	heartbeat_destroy(a);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* A state file that cannot be written is logged, never an outage. */
static void test_state_unwritable(void **state)
{
	struct pair pr = {
		.ea = { .address = (char *)"127.0.0.1", .port = free_udp_port() },
		.eb = { .address = (char *)"127.0.0.1", .port = free_udp_port() },
	};
	struct heartbeat *a;

	pr.secret.len = 6;
	memcpy(pr.secret.key, "s3cret", 6);
	a = make_with_state(&pr, "/nonexistent-ipmirror-dir/heartbeat-nodeA.state");
	send_sample(pr.ea.port, 30, 1);
	assert_true(wait_state(a, IPM_LINK_UP, 2000) > 0);
	send_sample(pr.ea.port, 29, 1);   /* still refused, from memory */
	wait_dropped(a, 1);
	heartbeat_destroy(a);
}

static void test_bad_params(void **state)
{
	struct ipm_endpoint e = { .address = (char *)"127.0.0.1", .port = 1 };
	struct auth_secret s = { .key = "k", .len = 1 };
	struct hb_params p = {
		.self = "a", .peer = "b", .local = &e, .remote = &e, .secret = &s,
		.interval = 1.5, .timeout = 1.5, .probation = 10,
	};
	struct heartbeat *hb;
	ipm_error err = { "" };

	assert_int_equal(heartbeat_create(&p, &hb, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "timeout > interval"));
	p.timeout = 4;
	p.secret = NULL;
	assert_int_equal(heartbeat_create(&p, &hb, &err), -EINVAL);
	heartbeat_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prob_first_contact_is_up),
		cmocka_unit_test(test_prob_timeout_goes_down),
		cmocka_unit_test(test_prob_return_needs_unbroken_probation),
		cmocka_unit_test(test_prob_silence_during_probation_goes_down),
		cmocka_unit_test(test_prob_missed_heartbeat_restarts),
		cmocka_unit_test(test_prob_not_up_while_a_heartbeat_is_missing),
		cmocka_unit_test(test_prob_zero_probation),
		cmocka_unit_test(test_prob_peer_reboot),
		cmocka_unit_test(test_packet_round_trip),
		cmocka_unit_test(test_packet_every_tampered_byte_fails),
		cmocka_unit_test(test_packet_wrong_names),
		cmocka_unit_test(test_packet_replay),
		cmocka_unit_test(test_packet_replay_many_boots),
		cmocka_unit_test(test_packet_replay_after_restart),
		cmocka_unit_test(test_state_file),
		cmocka_unit_test(test_state_next_boot),
		cmocka_unit_test(test_packet_bad_sizes),
		cmocka_unit_test(test_bad_params),
		cmocka_unit_test(test_two_nodes),
		cmocka_unit_test(test_probation_keeps_new_connections),
		cmocka_unit_test(test_storage_probation_keeps_new_connections),
		cmocka_unit_test(test_restart_keeps_replays_out),
		cmocka_unit_test(test_state_unwritable),
	};

	/* transitions on stderr, for whoever reads the test log */
	qb_log_init("test_heartbeat", LOG_USER, LOG_NOTICE);
	qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_ENABLED, QB_FALSE);
	qb_log_filter_ctl(QB_LOG_STDERR, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", LOG_NOTICE);
	qb_log_ctl(QB_LOG_STDERR, QB_LOG_CONF_ENABLED, QB_TRUE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
