/* fuzz_heartbeat.c - the heartbeat decoders: the UDP datagram
 * (heartbeat/hb_packet.c) and the storage-path slot record
 * (heartbeat/hb_slot.c), with the replay and status tables they feed. The
 * first byte picks the decoder and whether the harness signs the datagram
 * (or checksums the slot) first, so that the fuzzer gets past the MAC and
 * the CRC to the fields behind them. */
#include <stdlib.h>
#include <string.h>
#include <nettle/hmac.h>

#include "crc32c.h"
#include "fuzz.h"
#include "endian.h"
#include "hb_packet.h"
#include "hb_slot.h"

static struct auth_secret secret = { .key = "fuzz-secret-0123456789", .len = 22 };
static struct hb_replay replay;   /* carried across inputs, as the receiver does */
static struct hb_status status;
static int64_t clock_ms;

static void sign(uint8_t *pkt)
{
	struct hmac_sha256_ctx ctx;

	hmac_sha256_set_key(&ctx, secret.len, secret.key);
	hmac_sha256_update(&ctx, HB_BODY_LEN, pkt);
	hmac_sha256_digest(&ctx, HB_MAC_LEN, pkt + HB_BODY_LEN);
}

static void fuzz_packet(const uint8_t *d, size_t n, bool do_sign)
{
	struct hb_packet p, p2;
	uint8_t *buf, enc[HB_PACKET_LEN];
	ipm_error err;

	buf = malloc(n ? n : 1);
	if (!buf)
		return;
	memcpy(buf, d, n);
	if (do_sign && n == HB_PACKET_LEN)
		sign(buf);
	if (hb_packet_decode(buf, n, &secret, "node2", "node1", &replay, &p, &err) == 0) {
		hb_replay_accept(&replay, &p);
		/* what was accepted encodes back to a datagram that says the same
		 * (bytes after a name's NUL are not kept) */
		if (hb_packet_encode(enc, &p, &secret) != HB_PACKET_LEN ||
		    hb_packet_decode(enc, HB_PACKET_LEN, &secret, "node2", "node1", NULL, &p2,
				     &err) < 0 ||
		    strcmp(p.from, p2.from) || strcmp(p.to, p2.to) || p.serial != p2.serial ||
		    p.boot_id != p2.boot_id || p.timestamp_ms != p2.timestamp_ms ||
		    p.generation != p2.generation)
			abort();
		/* and is a replay from now on */
		if (hb_packet_decode(buf, n, &secret, "node2", "node1", &replay, &p, &err) == 0)
			abort();
	}
	free(buf);
}

static void fuzz_slot(const uint8_t *d, size_t n, bool do_csum)
{
	static uint8_t slot[HBS_SLOT_LEN];
	struct hb_record r;
	ipm_error err;

	memset(slot, 0, sizeof(slot));
	memcpy(slot, d, n < HBS_SLOT_LEN ? n : HBS_SLOT_LEN);
	if (do_csum)
		be_put32(slot + HBS_CSUM_OFF, crc32c(0, slot, HBS_CSUM_OFF));
	if (hb_record_decode(slot, NULL, 0, &r, &err) == 0) {
		clock_ms += 100;
		(void)hb_status_update(&status, &r, clock_ms);
		if (hb_status_age_ms(&status, clock_ms) < 0)
			abort();
		(void)hb_record_decode(slot, "node2", 1, &r, &err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_packet(data + 1, size - 1, false);
		break;
	case 1:
		fuzz_packet(data + 1, size - 1, true);
		break;
	case 2:
		fuzz_slot(data + 1, size - 1, false);
		break;
	default:
		fuzz_slot(data + 1, size - 1, true);
		break;
	}
	return 0;
}
