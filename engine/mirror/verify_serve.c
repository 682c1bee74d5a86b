/* verify_serve.c - the mirror's side of an online verify: the range of a
 * VERIFY, read from the local copy once every earlier request is applied,
 * and its keyed digests sent back in a VERIFY_REPLY (doc/verify.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backing.h"
#include "crc32c.h"
#include "endian.h"
#include "verify_digest.h"
#include "verify_serve.h"

static int digest_range(struct ipm_lun *l, const struct auth_secret *s,
			const struct wire_frame *f, const uint8_t *nonce, uint8_t *out)
{
	struct verify_key k;
	void *buf;
	int rc;

	if (posix_memalign(&buf, 4096, f->length) != 0)
		return -ENOMEM;
	/* every byte is read once: not through the page cache (the primary
	 * keeps two ranges in flight, so the disk has the next one to read) */
	rc = lun_bulk_read(l, buf, f->length, f->offset);
	if (rc == 0) {
		verify_key_init(&k, s, nonce);
		verify_digests(&k, f->offset, buf, f->length, out);
	}
	free(buf);
	return rc;
}

int verify_serve(struct ipm_lun *l, const struct auth_secret *s, const struct wire_frame *f,
		 void **msg)
{
	uint32_t dlen = WIRE_VERIFY_DIGESTS_LEN(f->length);
	struct wire_frame r = {
		.magic = WIRE_FRAME_MAGIC, .type = WIRE_VERIFY_REPLY, .lun = f->lun,
		.seq = f->seq, .offset = f->offset, .length = f->length,
	};
	uint8_t *out = malloc(WIRE_FRAME_LEN + dlen);
	int rc = -ENOMEM;

	if (out)
		rc = digest_range(l, s, f, *msg, out + WIRE_FRAME_LEN);
	free(*msg);
	*msg = out;
	if (!out)
		return rc;
	if (rc == 0) {
		r.len = dlen;
		r.csum = crc32c(0, out + WIRE_FRAME_LEN, dlen);
	} else {
		r.status = -rc;
	}
	wire_frame_encode(out, &r);
	return rc;
}

size_t verify_reply_len(const void *msg)
{
	return WIRE_FRAME_LEN + be_get32((const uint8_t *)msg + 12);
}
