/* test_hb_slot.c - the storage heartbeat record (layout, checks), the
 * status table per peer, and how a status names the failed path. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "crc32c.h"
#include "ipmirror.h"
#include "endian.h"
#include "hb_slot.h"
#include "unit_util.h"

static struct hb_record sample(uint64_t serial)
{
	struct hb_record r = { .slot = 1, .node = "node2", .boot_id = 0x1122334455667788ull,
			       .serial = serial, .time_ms = 1700000000123ull };
	return r;
}

static void test_round_trip_and_layout(void **state)
{
	uint8_t slot[HBS_SLOT_LEN];
	struct hb_record r = sample(42), g;
	ipm_error err = { "" };

	(void)state;
	assert_int_equal(hb_record_encode(slot, &r), 0);
	/* the layout doc/heartbeat.md gives */
	assert_int_equal(be_get32(slot), HBS_MAGIC);
	assert_int_equal(be_get16(slot + 4), HBS_VERSION);
	assert_int_equal(be_get16(slot + 6), 1);
	assert_string_equal((char *)slot + 8, "node2");
	assert_int_equal(be_get64(slot + 72), r.boot_id);
	assert_int_equal(be_get64(slot + 80), 42);
	assert_int_equal(be_get64(slot + 88), r.time_ms);
	assert_int_equal(be_get32(slot + HBS_CSUM_OFF), crc32c(0, slot, HBS_CSUM_OFF));
	assert_int_equal(hb_record_decode(slot, "node2", 1, &g, &err), 0);
	assert_int_equal(g.serial, 42);
	assert_int_equal(g.boot_id, r.boot_id);
	assert_int_equal(g.time_ms, r.time_ms);
	assert_string_equal(g.node, "node2");
}

static void test_decode_refusals(void **state)
{
	uint8_t slot[HBS_SLOT_LEN];
	struct hb_record r = sample(7), g;
	ipm_error err = { "" };

	(void)state;
	memset(slot, 0, sizeof(slot));
	check_fail(hb_record_decode(slot, "node2", 1, &g, &err), -ENODATA, &err, "slot is empty");

	hb_record_encode(slot, &r);
	slot[100] ^= 1; /* a torn or corrupt slot */
	check_fail(hb_record_decode(slot, "node2", 1, &g, &err), -EBADMSG, &err,
		   "checksum mismatch");

	hb_record_encode(slot, &r);
	slot[0] = 'X';
	check_fail(hb_record_decode(slot, "node2", 1, &g, &err), -EPROTO, &err, "bad slot magic");

	hb_record_encode(slot, &r);
	check_fail(hb_record_decode(slot, "node1", 1, &g, &err), -EACCES, &err,
		   "written by \"node2\" as slot 1, expected \"node1\" in slot 1");
	check_fail(hb_record_decode(slot, "node2", 0, &g, &err), -EACCES, &err,
		   "expected \"node2\" in slot 0");

	r.slot = HBS_SLOTS;
	assert_int_equal(hb_record_encode(slot, &r), -EINVAL);
	r = sample(1);
	memset(r.node, 'a', sizeof(r.node));
	assert_int_equal(hb_record_encode(slot, &r), -EINVAL);
}

/* A serial that stops advancing ages; a new boot counts as an advance; an
 * older serial of the same boot is ignored. */
static void test_status_table(void **state)
{
	struct hb_status s = { 0 };
	struct hb_record r = sample(10);

	(void)state;
	assert_int_equal(hb_status_age_ms(&s, 5000), -1);
	assert_int_equal(hb_status_update(&s, &r, 1000), HBS_ADVANCED);
	assert_int_equal(hb_status_age_ms(&s, 1500), 500);
	/* the same record read again: not an advance, the age grows */
	assert_int_equal(hb_status_update(&s, &r, 2000), HBS_SAME);
	assert_int_equal(hb_status_age_ms(&s, 5200), 4200);
	r.serial = 9;
	assert_int_equal(hb_status_update(&s, &r, 5300), HBS_STALE);
	assert_int_equal(s.last.serial, 10);
	r.serial = 11;
	assert_int_equal(hb_status_update(&s, &r, 6000), HBS_ADVANCED);
	assert_int_equal(hb_status_age_ms(&s, 6000), 0);
	assert_int_equal(s.changed_ms, 6000);
	/* the writer restarted: serial 1 of a new boot is news */
	r.serial = 1;
	r.boot_id++;
	assert_int_equal(hb_status_update(&s, &r, 7000), HBS_ADVANCED);
	assert_int_equal(s.last.boot_id, r.boot_id);
}

/* What status, attributes and the agent say about the two paths. */
static void test_failure_names(void **state)
{
	ipm_status st = { .node = "node1", .peer = "node2", .udp_state = IPM_LINK_UP,
			  .storage_state = IPM_LINK_UP };

	(void)state;
	/* no volume installed: the storage path is off whatever its state */
	assert_int_equal(ipm_status_storage(&st), IPM_LINK_OFF);
	assert_string_equal(ipm_status_failure(&st), "none");
	st.udp_state = IPM_LINK_DOWN;
	assert_string_equal(ipm_status_failure(&st), "unknown");
	strcpy(st.hb_volume, "/var/lib/ipmirror/hb.img");
	assert_int_equal(ipm_status_storage(&st), IPM_LINK_UP);
	assert_string_equal(ipm_status_failure(&st), "heartbeat-network");
	st.storage_state = IPM_LINK_DOWN;
	assert_string_equal(ipm_status_failure(&st), "both");
	st.udp_state = IPM_LINK_UP;
	assert_string_equal(ipm_status_failure(&st), "replication-network");
	st.storage_state = IPM_LINK_UP;
	assert_string_equal(ipm_status_failure(&st), "none");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_and_layout),
		cmocka_unit_test(test_decode_refusals),
		cmocka_unit_test(test_status_table),
		cmocka_unit_test(test_failure_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
