/* wire_samples.h - sample handshake messages and a secret shared by the
 * wire, auth and handshake unit tests. Include after <cmocka.h>, "auth.h"
 * and "wire.h". */
#ifndef IPM_WIRE_SAMPLES_H
#define IPM_WIRE_SAMPLES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline struct wire_hello sample_hello(void)
{
	struct wire_hello m = { .from = "node1", .to = "node2", .conn_index = 3,
				.conn_count = 4 };
	int i;

	for (i = 0; i < WIRE_NONCE_LEN; i++)
		m.nonce[i] = (uint8_t)(i * 7 + 1);
	return m;
}

static inline struct wire_auth *sample_auth(uint32_t n_luns)
{
	struct wire_auth *a = calloc(1, sizeof(*a));
	uint32_t i;

	assert_non_null(a);
	memset(a->mac, 0x5a, sizeof(a->mac));
	a->session = 0xfeedface12345678ull;
	a->base_seq = 1000000007ull;
	a->window = 128;
	a->n_luns = n_luns;
	for (i = 0; i < n_luns; i++) {
		snprintf(a->luns[i].name, WIRE_NAME_LEN, "vol%u", i);
		a->luns[i].id = (uint16_t)i;
		a->luns[i].size = (uint64_t)(i + 1) << 30;
		a->luns[i].mode = (uint8_t)(i & 1);
		a->luns[i].generation = 0xabcdef0000000000ull + i;
		a->luns[i].n_history = (uint8_t)(i % (WIRE_GEN_HISTORY + 1));
		for (uint32_t k = 0; k < a->luns[i].n_history; k++)
			a->luns[i].history[k] = 0x1234000000000000ull + i * 16 + k;
	}
	return a;
}

static inline void make_secret(struct auth_secret *s, const char *text)
{
	memset(s, 0, sizeof(*s));
	s->len = strlen(text);
	memcpy(s->key, text, s->len);
}

#endif
