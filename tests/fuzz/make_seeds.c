/* make_seeds.c - writes the seed corpora of tests/fuzz/ with the project's
 * own encoders (nbd_proto builders' peer formats, wire.c, hb_packet.c,
 * hb_slot.c, the journal writer, the bitmap, the generation file writer)
 * and the config examples: `make fuzz-seeds` runs it into
 * tests/fuzz/corpus/HARNESS/. Usage: make_seeds OUTDIR SRCDIR */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "endian.h"
#include "dirty_bitmap.h"
#include "generation.h"
#include "hb_packet.h"
#include "hb_slot.h"
#include "journal.h"
#include "nbd/proto.h"
#include "wire.h"

static const char *outdir;
static uint8_t buf[1 << 20];
static size_t pos;

static void die(const char *what, const char *why)
{
	fprintf(stderr, "make_seeds: %s: %s\n", what, why);
	exit(1);
}

static void emit(const char *harness, const char *name, const void *data, size_t len)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", outdir, harness);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die(path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s/seed-%s", outdir, harness, name);
	if (fuzz_write_file(path, data, len) < 0)
		die(path, "cannot write");
}

static void emit_file(const char *harness, const char *name, const char *src, int prefix)
{
	static uint8_t fb[1 << 20];
	size_t n = 0;
	FILE *f = fopen(src, "rb");

	if (!f)
		die(src, strerror(errno));
	if (prefix >= 0)
		fb[n++] = (uint8_t)prefix;
	n += fread(fb + n, 1, sizeof(fb) - n, f);
	fclose(f);
	emit(harness, name, fb, n);
}

/* ---- NBD client streams ----------------------------------------------- */

static void b8(uint8_t v) { buf[pos++] = v; }
static void b16(uint16_t v) { be_put16(buf + pos, v); pos += 2; }
static void b32(uint32_t v) { be_put32(buf + pos, v); pos += 4; }
static void b64(uint64_t v) { be_put64(buf + pos, v); pos += 8; }
static void bytes(const void *p, size_t n) { memcpy(buf + pos, p, n); pos += n; }

static void opt(uint32_t o, const void *data, uint32_t len)
{
	b64(NBD_MAGIC_OPT);
	b32(o);
	b32(len);
	bytes(data, len);
}

/* INFO/GO data: name, then the info requests */
static void opt_go(uint32_t o, const char *name, uint16_t n_info, const uint16_t *info)
{
	uint32_t len = 4 + (uint32_t)strlen(name) + 2 + 2u * n_info;

	b64(NBD_MAGIC_OPT);
	b32(o);
	b32(len);
	b32((uint32_t)strlen(name));
	bytes(name, strlen(name));
	b16(n_info);
	for (uint16_t i = 0; i < n_info; i++)
		b16(info[i]);
}

static void req(uint16_t type, uint16_t flags, uint64_t off, uint32_t len)
{
	b32(NBD_MAGIC_REQUEST);
	b16(flags);
	b16(type);
	b64(0x1000 + pos);    /* cookie */
	b64(off);
	b32(len);
	if (type == NBD_CMD_WRITE)
		for (uint32_t i = 0; i < len; i++)
			b8((uint8_t)(i * 7));
}

static void nbd_server_seeds(void)
{
	static const uint16_t infos[] = { NBD_INFO_EXPORT, NBD_INFO_NAME,
					  NBD_INFO_DESCRIPTION, NBD_INFO_BLOCK_SIZE };
	uint32_t flags = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;

	pos = 0;
	b32(flags);
	opt_go(NBD_OPT_GO, "vol0", 1, infos);
	req(NBD_CMD_WRITE, 0, 0, 4096);
	req(NBD_CMD_READ, 0, 0, 4096);
	req(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 8192, 512);
	req(NBD_CMD_FLUSH, 0, 0, 0);
	req(NBD_CMD_TRIM, 0, 65536, 65536);
	req(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 4096, 4096);
	req(NBD_CMD_DISC, 0, 0, 0);
	emit("nbd_server", "go-io", buf, pos);

	pos = 0;
	b32(flags);
	opt(NBD_OPT_STRUCTURED_REPLY, NULL, 0);
	opt(NBD_OPT_LIST, NULL, 0);
	opt_go(NBD_OPT_INFO, "v1", 4, infos);
	opt_go(NBD_OPT_GO, "v1", 4, infos);
	req(NBD_CMD_READ, 0, 60 << 10, 4096);
	req(NBD_CMD_READ, 0, 64 << 10, 1);          /* past the end */
	req(NBD_CMD_WRITE, 0, 64 << 10, 16);        /* ENOSPC, payload consumed */
	req(NBD_CMD_READ, 0x8000, 0, 512);          /* unknown flag */
	req(9, 0, 0, 0);                            /* unknown command */
	req(NBD_CMD_DISC, 0, 0, 0);
	emit("nbd_server", "info-go-errors", buf, pos);

	pos = 0;
	b32(NBD_FLAG_C_FIXED_NEWSTYLE);             /* with the zeroes */
	opt(NBD_OPT_EXPORT_NAME, "vol0", 4);
	req(NBD_CMD_READ, 0, 1 << 19, 65536);
	req(NBD_CMD_DISC, 0, 0, 0);
	emit("nbd_server", "export-name", buf, pos);

	pos = 0;
	b32(flags);
	opt_go(NBD_OPT_GO, "nosuch", 0, NULL);
	opt(NBD_OPT_STARTTLS, NULL, 0);
	opt(77, "xyz", 3);
	opt(NBD_OPT_ABORT, NULL, 0);
	emit("nbd_server", "refusals-abort", buf, pos);

	/* the decoder harness: an option with GO data, then requests */
	pos = 0;
	opt_go(NBD_OPT_GO, "vol0", 2, infos);
	emit("nbd_proto", "opt-go", buf, pos);
	pos = 0;
	b32(flags);
	opt(NBD_OPT_EXPORT_NAME, "vol0", 4);
	emit("nbd_proto", "flags-export-name", buf, pos);
	pos = 0;
	req(NBD_CMD_READ, 0, 0, 4096);
	req(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 4096, 0);
	req(NBD_CMD_TRIM, 0, 1 << 20, 4096);
	req(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 0, 1 << 20);
	req(NBD_CMD_FLUSH, 0, 0, 0);
	req(NBD_CMD_READ, 0, UINT64_MAX - 10, 100);
	req(NBD_CMD_DISC, 0, 0, 0);
	emit("nbd_proto", "requests", buf, pos);
}

/* ---- the mirror protocol ----------------------------------------------- */

static void wire_seeds(void)
{
	static struct wire_auth a;
	struct wire_hello h = { .from = "node1", .to = "node2", .conn_index = 1,
				.conn_count = 4 };
	struct wire_challenge c = { .from = "node2" };
	struct wire_welcome w = { .status = 0, .message = "", .record = 42, .n_luns = 2,
				  .lun_flags = { 0, WIRE_LV_FULL } };
	struct wire_frame f = { .magic = WIRE_FRAME_MAGIC };
	uint32_t i;

	memset(h.nonce, 0xa5, sizeof(h.nonce));
	buf[0] = 0;
	buf[1] = WIRE_HELLO;
	emit("wire", "hdr", buf, 1 + 1 + wire_hs_hdr_encode(buf + 2, WIRE_HELLO, 136));
	buf[0] = 1;
	emit("wire", "hello", buf, 1 + wire_hello_encode(buf + 1, &h));
	buf[0] = 2;
	emit("wire", "challenge", buf, 1 + wire_challenge_encode(buf + 1, &c));
	a.session = 7;
	a.base_seq = 100;
	a.window = 1024;
	a.n_luns = 2;
	for (i = 0; i < a.n_luns; i++) {
		snprintf(a.luns[i].name, sizeof(a.luns[i].name), "vol%u", i);
		a.luns[i].size = 1ull << 30;
		a.luns[i].mode = (uint8_t)i;
		a.luns[i].generation = 0x1234 + i;
		a.luns[i].n_history = (uint8_t)(i * 3);
		for (unsigned k = 0; k < a.luns[i].n_history; k++)
			a.luns[i].history[k] = 0x100 + k;
	}
	/* AUTH: a byte for the layout (fuzz_wire.c), then the message */
	buf[0] = 3;
	buf[1] = 0;
	a.version = 4;
	emit("wire", "auth", buf, 2 + wire_auth_encode(buf + 2, &a));
	buf[1] = 1;
	a.version = 5;
	for (i = 0; i < a.n_luns; i++)
		a.luns[i].id = (uint16_t)(3 + i);
	emit("wire", "auth-v5", buf, 2 + wire_auth_encode(buf + 2, &a));
	buf[0] = 4;
	emit("wire", "welcome", buf, 1 + wire_welcome_encode(buf + 1, &w));
	w = (struct wire_welcome){ .status = 13, .message = "refused: unknown lun \"vol9\"" };
	emit("wire", "welcome-refused", buf, 1 + wire_welcome_encode(buf + 1, &w));

	buf[0] = 5;
	buf[1] = 2;   /* LUNs in the handshake */
	pos = 2;
	f.type = WIRE_WRITE;
	f.flags = WIRE_F_FUA;
	f.len = 4096;
	f.length = 4096;
	f.seq = 1;
	f.csum = 0xdeadbeef;
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_TRIM, .lun = 1,
				 .seq = 2, .dep = 1, .offset = 1 << 20, .length = 65536 };
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_FLUSH,
				 .flags = WIRE_F_REPLAY | WIRE_F_INSYNC, .seq = 3, .dep = 2 };
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_ACK, .seq = 3,
				 .status = 5 };
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_HBSLOT, .lun = 1,
				 .len = WIRE_HBSLOT_LEN, .length = WIRE_HBSLOT_LEN };
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_PING };
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	emit("wire", "frames", buf, pos);
	/* version 5's: verify, read, resize and their replies */
	pos = 2;
	f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_VERIFY, .lun = 1,
				 .seq = 4, .dep = 3, .offset = 1 << 20, .length = 1 << 20,
				 .len = WIRE_VERIFY_NONCE_LEN };
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_VERIFY_REPLY, .lun = 1,
				 .seq = 4, .offset = 1 << 20, .length = 1 << 20,
				 .len = WIRE_VERIFY_DIGESTS_LEN(1 << 20) };
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_READ, .seq = 5,
				 .offset = 8192, .length = WIRE_READ_MAX };
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_READ_REPLY, .seq = 5,
				 .offset = 8192, .length = WIRE_READ_MAX, .len = WIRE_READ_MAX };
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_RESIZE, .seq = 6,
				 .dep = 5, .len = WIRE_RESIZE_LEN };
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	f = (struct wire_frame){ .magic = WIRE_FRAME_MAGIC, .type = WIRE_RESIZE_REPLY, .seq = 6,
				 .status = 27, .offset = 64 << 20, .length = 96 << 20 };
	wire_frame_encode(buf + pos, &f), pos += WIRE_FRAME_LEN;
	emit("wire", "frames-v5", buf, pos);
}

/* HELLO and AUTH (or a WELCOME of the client's) as the primary sends them;
 * the first byte tells fuzz_handshake to sign the AUTH (bit 0) and the
 * mirror's check to refuse (bit 1). */
static void handshake_seed(const char *name, uint8_t mode, uint16_t second,
			   const struct wire_hello *h, const struct wire_auth *a)
{
	static struct wire_welcome w = { .status = 13, .message = "bad proof" };
	size_t n;

	pos = 0;
	b8(mode);
	n = wire_hello_encode(buf + pos + WIRE_HS_HDR_LEN, h);
	pos += wire_hs_hdr_encode(buf + pos, WIRE_HELLO, (uint32_t)n) + n;
	if (second == WIRE_AUTH)
		n = wire_auth_encode(buf + pos + WIRE_HS_HDR_LEN, a);
	else
		n = wire_welcome_encode(buf + pos + WIRE_HS_HDR_LEN, &w);
	pos += wire_hs_hdr_encode(buf + pos, second, (uint32_t)n) + n;
	emit("handshake", name, buf, pos);
}

static void handshake_seeds(void)
{
	static struct wire_auth a = { .session = 9, .base_seq = 0, .window = 64, .n_luns = 2 };
	struct wire_hello h = { .from = "node1", .to = "node2", .conn_index = 0,
				.conn_count = 2 };

	memset(h.nonce, 0x3c, sizeof(h.nonce));
	for (unsigned i = 0; i < a.n_luns; i++) {
		snprintf(a.luns[i].name, sizeof(a.luns[i].name), "vol%u", i);
		a.luns[i].size = 1u << 20;
		a.luns[i].generation = 0x4242 + i;
		a.luns[i].n_history = 1;
		a.luns[i].history[0] = 0x4141;
	}
	handshake_seed("accepted", 1, WIRE_AUTH, &h, &a);
	handshake_seed("refused-by-check", 3, WIRE_AUTH, &h, &a);
	handshake_seed("bad-mac", 0, WIRE_AUTH, &h, &a);
	handshake_seed("client-gives-up", 1, WIRE_WELCOME, &h, &a);
	snprintf(h.to, sizeof(h.to), "node3");
	handshake_seed("wrong-node", 1, WIRE_AUTH, &h, &a);
}

/* ---- heartbeats ---------------------------------------------------------- */

static void heartbeat_seeds(void)
{
	static const struct auth_secret s = { .key = "fuzz-secret-0123456789", .len = 22 };
	struct hb_packet p = { .from = "node2", .to = "node1", .serial = 1, .boot_id = 99,
			       .timestamp_ms = 1700000000000ull, .generation = 0x77 };
	struct hb_record r = { .slot = 1, .node = "node2", .boot_id = 5, .serial = 3,
			       .time_ms = 1700000000000ull };

	buf[0] = 0;
	emit("heartbeat", "packet", buf, 1 + hb_packet_encode(buf + 1, &p, &s));
	buf[0] = 1;
	p.serial = 2;
	emit("heartbeat", "packet-signed", buf, 1 + hb_packet_encode(buf + 1, &p, &s));
	buf[0] = 2;
	if (hb_record_encode(buf + 1, &r) < 0)
		die("hb_record_encode", "refused");
	emit("heartbeat", "slot", buf, 1 + HBS_SLOT_LEN);
	buf[0] = 3;
	r.flags = HBS_F_RETIRED;
	r.serial = 4;
	hb_record_encode(buf + 1, &r);
	emit("heartbeat", "slot-retired", buf, 1 + HBS_SLOT_LEN);
}

/* ---- files ------------------------------------------------------------- */

static void file_to_seed(const char *harness, const char *name, const char *path,
			 int prefix, size_t cut)
{
	static uint8_t fb[1 << 20];
	size_t n = 0;
	FILE *f = fopen(path, "rb");

	if (!f)
		die(path, strerror(errno));
	if (prefix >= 0)
		fb[n++] = (uint8_t)prefix;
	n += fread(fb + n, 1, sizeof(fb) - n, f);
	fclose(f);
	emit(harness, name, fb, n > cut ? n - cut : n);
}

static void journal_seeds(void)
{
	static const uint8_t data[8192] = { 1, 2, 3 };
	struct journal_rec recs[] = {
		{ .type = WIRE_WRITE, .flags = WIRE_F_FUA, .offset = 0, .length = 4096, .data = data },
		{ .type = WIRE_TRIM, .offset = 65536, .length = 65536 },
		{ .type = WIRE_ZERO, .offset = 8192, .length = 8192 },
		{ .type = WIRE_WRITE, .offset = 12288, .length = 512, .data = data },
		{ .type = WIRE_FLUSH },
	};
	char path[512];
	struct journal *j;
	ipm_error err;

	fuzz_path(path, sizeof(path), "vol0.journal");
	if (journal_open(path, "vol0", 1u << 20, 64u << 20, &j, NULL, &err) < 0)
		die("journal_open", err.msg);
	journal_close(j);
	file_to_seed("journal", "empty", path, -1, 0);
	if (journal_open(path, "vol0", 1u << 20, 64u << 20, &j, NULL, &err) < 0)
		die("journal_open", err.msg);
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++)
		if (journal_append(j, &recs[i], &err) < 0)
			die("journal_append", err.msg);
	journal_close(j);
	file_to_seed("journal", "records", path, -1, 0);
	file_to_seed("journal", "torn-tail", path, -1, 20);
}

static void bitmap_seeds(void)
{
	static const struct { uint64_t size; uint32_t extent; const char *name; } g[] = {
		{ 64ull << 20, 1u << 20, "bitmap" },
		{ (1ull << 30) + 4096, 4u << 20, "activity-log" },
		{ 3u << 20, 1u << 20, "small" },
	};
	struct dirty_bitmap *b;
	char path[512], name[64];
	ipm_error err;

	for (unsigned i = 0; i < 3; i++) {
		fuzz_path(path, sizeof(path), "vol0.bitmap");
		remove(path);
		if (dirty_bitmap_open(path, g[i].size, g[i].extent, &b, &err) < 0)
			die("dirty_bitmap_open", err.msg);
		dirty_bitmap_mark(b, 0, 1);
		dirty_bitmap_mark(b, 2 * (uint64_t)g[i].extent, 3 * (uint64_t)g[i].extent);
		dirty_bitmap_mark(b, g[i].size - 1, 1);
		if (dirty_bitmap_sync(b, &err) < 0)
			die("dirty_bitmap_sync", err.msg);
		dirty_bitmap_close(b);
		snprintf(name, sizeof(name), "%s", g[i].name);
		file_to_seed("bitmap", name, path, (int)i, 0);
	}
}

static void generation_seeds(void)
{
	struct generation g = { .current = gen_initial("vol0", 1ull << 30) };
	char path[512];
	ipm_error err;

	fuzz_path(path, sizeof(path), "vol0.gen");
	if (gen_save(path, &g, &err) < 0)
		die("gen_save", err.msg);
	file_to_seed("generation", "new", path, 0, 0);
	g.shared = g.consistent = true;
	gen_rotate(&g);
	gen_rotate(&g);
	g.was_primary = true;
	gen_save(path, &g, &err);
	file_to_seed("generation", "history", path, 1, 0);
	for (int i = 0; i < 8; i++)
		gen_rotate(&g);
	g.splitbrain = g.discard = true;
	gen_save(path, &g, &err);
	file_to_seed("generation", "full-history", path, 0, 0);
}

static void config_seeds(const char *srcdir)
{
	char dir[1024], src[2048];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/tests/unit/configs", srcdir);
	d = opendir(dir);
	if (!d)
		die(dir, strerror(errno));
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (l < 5 || strcmp(e->d_name + l - 4, ".xml"))
			continue;
		snprintf(src, sizeof(src), "%s/%s", dir, e->d_name);
		emit_file("config", e->d_name, src, -1);
	}
	closedir(d);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: make_seeds OUTDIR SRCDIR\n");
		return 2;
	}
	outdir = argv[1];
	if (mkdir(outdir, 0755) < 0 && errno != EEXIST)
		die(outdir, strerror(errno));
	nbd_server_seeds();
	wire_seeds();
	handshake_seeds();
	heartbeat_seeds();
	journal_seeds();
	bitmap_seeds();
	generation_seeds();
	config_seeds(argv[2]);
	return 0;
}
