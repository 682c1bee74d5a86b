/* auth.h - the shared secret and HMAC-SHA256 proofs of the handshake and
 * heartbeats (auth.c, nettle). */
#ifndef IPM_AUTH_H
#define IPM_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ipmirror.h"

#define AUTH_SECRET_MAX 4096
#define AUTH_MAC_LEN 32  /* HMAC-SHA256; = WIRE_MAC_LEN */

struct auth_secret {
	uint8_t key[AUTH_SECRET_MAX];
	size_t len;
};

/* Read the secret file (trailing newline stripped). Refuses an empty file,
 * one larger than AUTH_SECRET_MAX, and one readable by group/others. */
int auth_secret_load(const char *path, struct auth_secret *s, ipm_error *err);
void auth_random(uint8_t *buf, size_t len);
/* mac = HMAC(secret, role || nonce_a || nonce_b || name_a || name_b); role is
 * "server" or "client" so one side's answer cannot be replayed as the other's. */
void auth_mac(const struct auth_secret *s, const char *role, const uint8_t *nonce_a,
	      const uint8_t *nonce_b, const char *name_a, const char *name_b,
	      uint8_t mac[AUTH_MAC_LEN]);
/* Constant-time comparison. */
bool auth_mac_equal(const uint8_t *a, const uint8_t *b);

#endif
