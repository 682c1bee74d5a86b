/* read_serve.c - the mirror's side of a remote read: the range of a READ,
 * read from the local copy once every earlier request is applied, sent
 * back in a READ_REPLY (doc/io-errors.md). A copy that is not a whole
 * image of the primary's (invalid, or behind in a resync) answers EIO
 * rather than old bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <qb/qblog.h>

#include "backing.h"
#include "crc32c.h"
#include "lun.h"
#include "read_serve.h"

/* Only bytes equal to the primary's may go back to a host. */
static bool copy_whole(struct ipm_lun *l)
{
	return __atomic_load_n(&l->insync, __ATOMIC_RELAXED) && !lun_gen_invalid(l);
}

int read_serve(struct ipm_lun *l, const struct wire_frame *f, void **msg)
{
	struct wire_frame r = {
		.magic = WIRE_FRAME_MAGIC, .type = WIRE_READ_REPLY, .lun = f->lun,
		.seq = f->seq, .offset = f->offset, .length = f->length,
	};
	uint8_t *out = NULL;
	int rc;

	if (posix_memalign((void **)&out, 4096, WIRE_FRAME_LEN + f->length) != 0)
		return -ENOMEM;
	if (!copy_whole(l)) {
		qb_log(LOG_WARNING, "lun %s: the primary asked to read offset %llu length %llu from this copy, which is not up to date: refused (EIO)",
		       ipm_lun_name(l), (unsigned long long)f->offset,
		       (unsigned long long)f->length);
		rc = -EIO;
	} else {
		rc = lun_local_read(l, out + WIRE_FRAME_LEN, f->length, f->offset);
	}
	if (rc == 0) {
		r.len = (uint32_t)f->length;
		r.csum = crc32c(0, out + WIRE_FRAME_LEN, r.len);
	} else {
		r.status = -rc;
	}
	wire_frame_encode(out, &r);
	*msg = out;
	return rc;
}
