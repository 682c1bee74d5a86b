/* fuzz_wire.c - the mirror protocol's decoders (engine/proto/wire.c): the
 * handshake header and messages (HELLO, CHALLENGE, AUTH in version 4's and
 * 5's layouts, WELCOME in 5's and 6's) and a stream of frames. The first byte picks the
 * decoder. Whatever decodes must
 * survive a round trip: encode(decode(x)) decodes to the same encoding. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "wire.h"

enum { K_HDR, K_HELLO, K_CHALLENGE, K_AUTH, K_WELCOME, K_FRAMES, K_COUNT };

static uint8_t enc[2][WIRE_HS_MAX_BODY + WIRE_HS_HDR_LEN];

/* Encode m, decode that, encode again: both encodings must be equal. */
/* (m2 starts as m: the fields that are not encoded, AUTH's layout version,
 * are the decoder's input) */
#define ROUND_TRIP(type, m) do { \
	type m2 = (m); \
	ipm_error e2; \
	size_t l1 = wire_##type##_encode(enc[0], &(m)); \
	if (wire_##type##_decode(enc[0], l1, &m2, &e2) < 0) \
		abort(); \
	if (wire_##type##_encode(enc[1], &m2) != l1 || memcmp(enc[0], enc[1], l1)) \
		abort(); \
} while (0)

typedef struct wire_hello hello;
typedef struct wire_challenge challenge;
typedef struct wire_auth auth;
typedef struct wire_welcome welcome;

static void fuzz_hs(unsigned kind, const uint8_t *d, size_t n)
{
	static struct wire_auth a;   /* 30 KiB: not on the stack */
	struct wire_hello h;
	struct wire_challenge c;
	struct wire_welcome w;
	struct wire_hs_hdr hdr;
	ipm_error err;

	switch (kind) {
	case K_HDR:
		if (n >= WIRE_HS_HDR_LEN + 1 &&
		    wire_hs_hdr_decode(d + 1, d[0] % 5, &hdr, &err) == 0 &&
		    hdr.len > WIRE_HS_MAX_BODY)
			abort();
		break;
	case K_HELLO:
		if (wire_hello_decode(d, n, &h, &err) == 0) {
			if (strpbrk(h.from, "\n\r\033") || strpbrk(h.to, "\n\r\033"))
				abort();
			ROUND_TRIP(hello, h);
		}
		break;
	case K_CHALLENGE:
		if (wire_challenge_decode(d, n, &c, &err) == 0)
			ROUND_TRIP(challenge, c);
		break;
	case K_AUTH:
		/* its first byte picks the layout: version 4's, or 5's (ids) */
		if (!n)
			break;
		a.version = d[0] & 1 ? 5 : 4;
		if (wire_auth_decode(d + 1, n - 1, &a, &err) == 0) {
			if (a.n_luns > WIRE_MAX_LUNS)
				abort();
			ROUND_TRIP(auth, a);
		}
		break;
	case K_WELCOME:
		/* both layouts: version 5's, and 6's with fill ids */
		for (uint16_t v = 5; v <= 6; v++) {
			w = (struct wire_welcome){ .version = v };
			if (wire_welcome_decode(d, n, &w, &err) < 0)
				continue;
			/* the status becomes a -errno, the message a log line */
			if (w.n_luns > WIRE_MAX_LUNS || w.status < 0 || w.status > WIRE_MAX_ERRNO ||
			    strpbrk(w.message, "\n\r\033"))
				abort();
			ROUND_TRIP(welcome, w);
		}
		break;
	}
}

/* The first byte bounds the LUN index; then 56-byte frames. */
static void fuzz_frames(const uint8_t *d, size_t n)
{
	struct wire_frame f, f2;
	uint8_t buf[WIRE_FRAME_LEN];
	uint32_t n_luns;
	ipm_error err;

	if (!n)
		return;
	n_luns = d[0];
	for (d++, n--; n >= WIRE_FRAME_LEN; d += WIRE_FRAME_LEN, n -= WIRE_FRAME_LEN) {
		if (wire_frame_decode(d, n_luns, &f, &err) < 0)
			continue;
		if (f.len > WIRE_MAX_PAYLOAD ||
		    (f.type == WIRE_ACK && (f.status < 0 || f.status > WIRE_MAX_ERRNO)))
			abort();
		wire_frame_encode(buf, &f);
		if (wire_frame_decode(buf, n_luns, &f2, &err) < 0)
			abort();
		wire_frame_encode(enc[0], &f2);
		if (memcmp(buf, enc[0], WIRE_FRAME_LEN))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	unsigned kind;

	if (!size)
		return 0;
	kind = data[0] % K_COUNT;
	/* an exact-size copy so that an overread past the message shows */
	copy = malloc(size - 1 ? size - 1 : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (kind == K_FRAMES)
		fuzz_frames(copy, size - 1);
	else
		fuzz_hs(kind, copy, size - 1);
	free(copy);
	return 0;
}
