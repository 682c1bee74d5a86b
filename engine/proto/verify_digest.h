/* verify_digest.h - the digests an online verify compares (doc/verify.md):
 * UMAC-128 (nettle) under a key that only holders of the shared secret can
 * derive, one per WIRE_VERIFY_BLOCK, nonce-separated by the block's offset.
 * Keyed, so that no host writing crafted data can make two different
 * blocks collide; UMAC, because it digests ~5x faster than SHA-256 here. */
#ifndef IPM_VERIFY_DIGEST_H
#define IPM_VERIFY_DIGEST_H

#include <stddef.h>
#include <stdint.h>
#include <nettle/umac.h>

#include "auth.h"
#include "wire.h"

struct verify_key {
	struct umac128_ctx umac;
};

/* The key of one verify run: HMAC-SHA256(secret, "ipmirror verify" ||
 * nonce), the run's random nonce travelling in each VERIFY frame. */
void verify_key_init(struct verify_key *k, const struct auth_secret *s,
		     const uint8_t nonce[WIRE_VERIFY_NONCE_LEN]);
/* The digests of buf (len bytes of the LUN from off): one per block of
 * WIRE_VERIFY_BLOCK from buf on, WIRE_VERIFY_DIGESTS_LEN(len) bytes in out. */
void verify_digests(struct verify_key *k, uint64_t off, const uint8_t *buf, size_t len,
		    uint8_t *out);

#endif
