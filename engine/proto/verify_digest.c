/* verify_digest.c - keyed digests of a LUN's blocks for the online verify. */
#include <string.h>
#include <nettle/hmac.h>

#include "endian.h"
#include "verify_digest.h"

void verify_key_init(struct verify_key *k, const struct auth_secret *s,
		     const uint8_t nonce[WIRE_VERIFY_NONCE_LEN])
{
	static const char label[] = "ipmirror verify";
	struct hmac_sha256_ctx h;
	uint8_t key[SHA256_DIGEST_SIZE];

	hmac_sha256_set_key(&h, s->len, s->key);
	hmac_sha256_update(&h, sizeof(label), (const uint8_t *)label);
	hmac_sha256_update(&h, WIRE_VERIFY_NONCE_LEN, nonce);
	hmac_sha256_digest(&h, sizeof(key), key);
	umac128_set_key(&k->umac, key); /* its first UMAC_KEY_SIZE bytes */
	memset(key, 0, sizeof(key));
}

void verify_digests(struct verify_key *k, uint64_t off, const uint8_t *buf, size_t len,
		    uint8_t *out)
{
	uint8_t nonce[8];
	size_t n;

	for (; len > 0; buf += n, off += n, len -= n, out += WIRE_VERIFY_DIGEST_LEN) {
		n = len < WIRE_VERIFY_BLOCK ? len : WIRE_VERIFY_BLOCK;
		/* a block's offset is unique within a run: UMAC's nonce */
		be_put64(nonce, off);
		umac128_set_nonce(&k->umac, sizeof(nonce), nonce);
		umac128_update(&k->umac, n, buf);
		umac128_digest(&k->umac, WIRE_VERIFY_DIGEST_LEN, out);
	}
}
