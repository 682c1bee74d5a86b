/* names.c - the strings of the status enums, as status spells them
 * (doc/ipmirrorctl.8). */
#include <errno.h>
#include <string.h>
#include "ipmirror.h"

#define NAME_OF(table, v) \
	((unsigned)(v) < sizeof(table) / sizeof(table[0]) && table[v] ? table[v] : "unknown")

static const char *const roles[] = { "primary", "mirror" };
static const char *const modes[] = { "sync", "async" };
static const char *const states[] = {
	[IPM_STATE_UPTODATE] = "uptodate",       [IPM_STATE_JOURNALING] = "journaling",
	[IPM_STATE_PROBATION] = "probation",     [IPM_STATE_RESYNCING] = "resyncing",
	[IPM_STATE_OUTDATED] = "outdated",       [IPM_STATE_INCONSISTENT] = "inconsistent",
	[IPM_STATE_SPLITBRAIN] = "splitbrain",   [IPM_STATE_DOWN] = "down",
};
static const char *const links[] = { "up", "down", "probation", "off" };
static const char *const methods[] = { "udp", "storage", "both" };

const char *ipm_role_name(enum ipm_role r) { return NAME_OF(roles, r); }
const char *ipm_mode_name(enum ipm_mode m) { return NAME_OF(modes, m); }
const char *ipm_state_name(enum ipm_lun_state s) { return NAME_OF(states, s); }
const char *ipm_link_name(enum ipm_link_state s) { return NAME_OF(links, s); }
const char *ipm_method_name(enum ipm_hb_method m) { return NAME_OF(methods, m); }

int ipm_method_parse(const char *s, enum ipm_hb_method *out)
{
	for (unsigned i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(s, methods[i]) == 0) {
			*out = (enum ipm_hb_method)i;
			return 0;
		}
	}
	return -EINVAL;
}

enum ipm_link_state ipm_status_storage(const ipm_status *st)
{
	return st->peer[0] && st->hb_volume[0] ? st->storage_state : IPM_LINK_OFF;
}

const char *ipm_status_failure(const ipm_status *st)
{
	enum ipm_link_state sto = ipm_status_storage(st);
	bool udp_up = st->udp_state == IPM_LINK_UP;

	if (!st->peer[0])
		return "none";
	if (sto == IPM_LINK_OFF)
		return udp_up ? "none" : "unknown";
	if (sto == IPM_LINK_UP)
		return udp_up ? "none" : "heartbeat-network";
	return udp_up ? "replication-network" : "both";
}
