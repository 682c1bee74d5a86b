/* hb_packet.h - the UDP heartbeat datagram (layout: doc/heartbeat.md).
 *
 * Big-endian, fixed size, authenticated by HMAC-SHA256 with the shared
 * secret over every byte before the MAC. Pure encode/decode.
 */
#ifndef IPM_HB_PACKET_H
#define IPM_HB_PACKET_H

#include <stddef.h>
#include <stdint.h>
#include "auth.h"
#include "wire.h"

#define HB_MAGIC 0x49504842u      /* "IPHB" */
#define HB_VERSION 2       /* 2: the boot counter */
#define HB_NAME_LEN WIRE_NAME_LEN  /* NUL-padded; names are < 64 bytes */
#define HB_MAC_LEN WIRE_MAC_LEN
#define HB_BODY_LEN (4 + 2 + 2 + 2 * HB_NAME_LEN + 5 * 8)
#define HB_PACKET_LEN (HB_BODY_LEN + HB_MAC_LEN)   /* 208 */

struct hb_packet {
	char from[HB_NAME_LEN];   /* sender node */
	char to[HB_NAME_LEN];     /* receiver node */
	uint64_t serial;          /* strictly increasing per boot id, from 1 */
	uint64_t boot_id;         /* random per sender process */
	uint64_t timestamp_ms;    /* sender's realtime clock, strictly increasing per boot */
	uint64_t generation;      /* reserved: sent as 0, ignored on receipt */
	uint64_t boot;            /* sender's boot counter: persistent, increasing */
};

/* What was accepted from the peer so far: its highest boot counter and the
 * newest timestamp of that boot (both kept across restarts, hb_state.h), and
 * the last serial (this process only). A lower boot is a replay of a boot the
 * peer has left; in the same boot, a timestamp or serial not above the last
 * accepted one is a replay too. */
struct hb_replay {
	bool have;                /* boot and timestamp_ms are set */
	uint64_t boot;
	uint64_t timestamp_ms;
	bool have_serial;
	uint64_t serial;
};

/* Writes HB_PACKET_LEN bytes; returns HB_PACKET_LEN, or 0 when a name does
 * not fit its field. */
size_t hb_packet_encode(uint8_t *buf, const struct hb_packet *p, const struct auth_secret *s);

/* Checks, in order: length (-EMSGSIZE), magic and version (-EPROTO), MAC
 * (-EBADMSG), that it comes from expect_from and is meant for expect_to
 * (-EACCES), and, when rp is not NULL, replay (-EALREADY). err says why. */
int hb_packet_decode(const uint8_t *buf, size_t len, const struct auth_secret *s,
		     const char *expect_from, const char *expect_to,
		     const struct hb_replay *rp, struct hb_packet *out, ipm_error *err);

/* Record p (already decoded against rp) as accepted. */
void hb_replay_accept(struct hb_replay *rp, const struct hb_packet *p);

#endif
