/* hb_slot.c - the storage heartbeat record and status table (hb_slot.h). */
#include <errno.h>
#include <string.h>

#include "crc32c.h"
#include "endian.h"
#include "hb_slot.h"

int hb_record_encode(uint8_t *slot, const struct hb_record *r)
{
	uint8_t *p = slot;
	size_t n = strnlen(r->node, sizeof(r->node));

	if (n == 0 || n >= HBS_NAME_LEN || r->slot >= HBS_SLOTS)
		return -EINVAL;
	memset(slot, 0, HBS_SLOT_LEN);
	p = be_put32(p, HBS_MAGIC);
	p = be_put16(p, HBS_VERSION);
	p = be_put16(p, r->slot);
	memcpy(p, r->node, n);
	p += HBS_NAME_LEN;
	p = be_put64(p, r->boot_id);
	p = be_put64(p, r->serial);
	p = be_put64(p, r->time_ms);
	be_put32(p, r->flags);
	be_put32(slot + HBS_CSUM_OFF, crc32c(0, slot, HBS_CSUM_OFF));
	return 0;
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

int hb_record_decode(const uint8_t *slot, const char *expect_node, unsigned expect_slot,
		     struct hb_record *out, ipm_error *err)
{
	const uint8_t *name = slot + 8;

	if (all_zero(slot, HBS_SLOT_LEN))
		return ipm_fail(err, -ENODATA, "slot is empty (never written)");
	if (be_get32(slot) != HBS_MAGIC)
		return ipm_fail(err, -EPROTO, "bad slot magic 0x%08x", be_get32(slot));
	if (be_get16(slot + 4) != HBS_VERSION)
		return ipm_fail(err, -EPROTO, "slot record version %u, we speak %u",
				be_get16(slot + 4), HBS_VERSION);
	if (crc32c(0, slot, HBS_CSUM_OFF) != be_get32(slot + HBS_CSUM_OFF))
		return ipm_fail(err, -EBADMSG, "slot checksum mismatch");
	out->slot = be_get16(slot + 6);
	if (out->slot >= HBS_SLOTS)
		return ipm_fail(err, -EINVAL, "slot index %u out of range", out->slot);
	if (!memchr(name, 0, HBS_NAME_LEN) || !name[0])
		return ipm_fail(err, -EINVAL, "slot node name is empty or not terminated");
	memcpy(out->node, name, HBS_NAME_LEN);
	out->boot_id = be_get64(slot + 72);
	out->serial = be_get64(slot + 80);
	out->time_ms = be_get64(slot + 88);
	out->flags = be_get32(slot + 96);
	if (out->flags & ~HBS_F_RETIRED)
		return ipm_fail(err, -EPROTO, "slot record has unknown flags 0x%x", out->flags);
	if (expect_node && (strcmp(out->node, expect_node) != 0 || out->slot != expect_slot))
		return ipm_fail(err, -EACCES,
				"slot written by \"%s\" as slot %u, expected \"%s\" in slot %u",
				out->node, out->slot, expect_node, expect_slot);
	return 0;
}

enum hb_update hb_status_update(struct hb_status *s, const struct hb_record *r, int64_t now)
{
	if (s->heard && r->boot_id == s->last.boot_id) {
		if (r->serial == s->last.serial)
			return HBS_SAME;
		if (r->serial < s->last.serial)
			return HBS_STALE;
	}
	s->heard = true;
	s->last = *r;
	s->changed_ms = now;
	return HBS_ADVANCED;
}

int64_t hb_status_age_ms(const struct hb_status *s, int64_t now)
{
	return s->heard ? now - s->changed_ms : -1;
}
