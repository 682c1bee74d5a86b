/* hb_packet.c - encode and check UDP heartbeat datagrams.
 *
 * The MAC is checked before any field is believed; names and serials are
 * only compared once the datagram is known to come from a secret holder.
 */
#include <errno.h>
#include <string.h>
#include <nettle/hmac.h>

#include "auth.h"
#include "engine.h"
#include "hb_packet.h"
#include "endian.h"

static void hb_mac(const struct auth_secret *s, const uint8_t *body, uint8_t mac[HB_MAC_LEN])
{
	struct hmac_sha256_ctx ctx;

	hmac_sha256_set_key(&ctx, s->len, s->key);
	hmac_sha256_update(&ctx, HB_BODY_LEN, body);
	hmac_sha256_digest(&ctx, HB_MAC_LEN, mac);
	explicit_bzero(&ctx, sizeof(ctx));
}

size_t hb_packet_encode(uint8_t *buf, const struct hb_packet *p, const struct auth_secret *s)
{
	uint8_t *q = buf;

	if (strnlen(p->from, HB_NAME_LEN) >= HB_NAME_LEN ||
	    strnlen(p->to, HB_NAME_LEN) >= HB_NAME_LEN)
		return 0;
	q = be_put32(q, HB_MAGIC);
	q = be_put16(q, HB_VERSION);
	q = be_put16(q, 0);
	memset(q, 0, 2 * HB_NAME_LEN);
	memcpy(q, p->from, strlen(p->from));
	q += HB_NAME_LEN;
	memcpy(q, p->to, strlen(p->to));
	q += HB_NAME_LEN;
	q = be_put64(q, p->serial);
	q = be_put64(q, p->boot_id);
	q = be_put64(q, p->timestamp_ms);
	q = be_put64(q, p->generation);
	q = be_put64(q, p->boot);
	hb_mac(s, buf, q);
	return HB_PACKET_LEN;
}

/* A name field must hold a NUL (no over-long names). */
static bool get_name(char *dst, const uint8_t *field)
{
	if (!memchr(field, 0, HB_NAME_LEN))
		return false;
	memcpy(dst, field, HB_NAME_LEN);
	return true;
}

static int check_replay(const struct hb_replay *rp, const struct hb_packet *p, ipm_error *err)
{
	if (!rp || !rp->have || p->boot > rp->boot)
		return 0;
	if (p->boot < rp->boot)
		return ipm_fail(err, -EALREADY,
				"replayed datagram of an earlier peer boot (boot %llu; the peer is at boot %llu)",
				(unsigned long long)p->boot, (unsigned long long)rp->boot);
	if (rp->have_serial && p->serial <= rp->serial)
		return ipm_fail(err, -EALREADY, "replayed serial %llu (last accepted %llu)",
				(unsigned long long)p->serial, (unsigned long long)rp->serial);
	if (p->timestamp_ms <= rp->timestamp_ms)
		return ipm_fail(err, -EALREADY,
				"replayed datagram: timestamp %llu not after the last accepted %llu of boot %llu",
				(unsigned long long)p->timestamp_ms,
				(unsigned long long)rp->timestamp_ms, (unsigned long long)rp->boot);
	return 0;
}

int hb_packet_decode(const uint8_t *buf, size_t len, const struct auth_secret *s,
		     const char *expect_from, const char *expect_to,
		     const struct hb_replay *rp, struct hb_packet *out, ipm_error *err)
{
	uint8_t mac[HB_MAC_LEN];
	const uint8_t *q = buf + 8;
	struct hb_packet p;

	if (len != HB_PACKET_LEN)
		return ipm_fail(err, -EMSGSIZE, "datagram of %zu bytes, expected %d", len,
				HB_PACKET_LEN);
	if (be_get32(buf) != HB_MAGIC)
		return ipm_fail(err, -EPROTO, "bad magic 0x%08x", be_get32(buf));
	if (be_get16(buf + 4) != HB_VERSION || be_get16(buf + 6) != 0)
		return ipm_fail(err, -EPROTO, "unsupported version %u", be_get16(buf + 4));
	hb_mac(s, buf, mac);
	if (!auth_mac_equal(mac, buf + HB_BODY_LEN))
		return ipm_fail(err, -EBADMSG, "bad HMAC (wrong secret or corrupted)");
	if (!get_name(p.from, q) || !get_name(p.to, q + HB_NAME_LEN))
		return ipm_fail(err, -EPROTO, "unterminated node name");
	q += 2 * HB_NAME_LEN;
	if (strcmp(p.from, expect_from) != 0)
		return ipm_fail(err, -EACCES, "sent by node \"%s\", not by peer \"%s\"", p.from,
				expect_from);
	if (strcmp(p.to, expect_to) != 0)
		return ipm_fail(err, -EACCES, "addressed to node \"%s\", not to \"%s\"", p.to,
				expect_to);
	p.serial = be_get64(q);
	p.boot_id = be_get64(q + 8);
	p.timestamp_ms = be_get64(q + 16);
	p.generation = be_get64(q + 24);
	p.boot = be_get64(q + 32);
	if (check_replay(rp, &p, err) < 0)
		return -EALREADY;
	*out = p;
	return 0;
}

void hb_replay_accept(struct hb_replay *rp, const struct hb_packet *p)
{
	*rp = (struct hb_replay){
		.have = true,
		.boot = p->boot,
		.timestamp_ms = p->timestamp_ms,
		.have_serial = true,
		.serial = p->serial,
	};
}
