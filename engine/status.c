/* status.c - a consistent snapshot of the engine's state for admins. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lun.h"

static void lun_snapshot(struct ipm_lun *l, ipm_lun_status *s)
{
	snprintf(s->name, sizeof(s->name), "%s", l->cfg->name);
	pthread_rwlock_rdlock(&l->role_lock);
	s->role = l->role;
	s->state = l->state;
	pthread_rwlock_unlock(&l->role_lock);
	s->mode = l->cfg->mode;
	s->mirrored = l->cfg->mirrored;
	s->size = l->size;
	snprintf(s->generation, sizeof(s->generation), "%s", "0");
}

int ipm_engine_status(ipm_engine *e, ipm_status **out)
{
	ipm_status *st = calloc(1, sizeof(*st));
	size_t i;

	if (!st)
		return -ENOMEM;
	snprintf(st->node, sizeof(st->node), "%s", e->node);
	if (e->peer)
		snprintf(st->peer, sizeof(st->peer), "%s", e->peer->name);
	st->peer_heartbeat = e->peer ? IPM_LINK_DOWN : IPM_LINK_OFF;
	st->udp_age_ms = -1;
	st->storage_age_ms = -1;
	st->method = e->cfg->hb_method;
	st->luns = calloc(e->n_luns ? e->n_luns : 1, sizeof(*st->luns));
	if (!st->luns) {
		ipm_status_free(st);
		return -ENOMEM;
	}
	for (i = 0; i < e->n_luns; i++)
		lun_snapshot(e->luns[i], &st->luns[i]);
	st->n_luns = e->n_luns;
	*out = st;
	return 0;
}

void ipm_status_free(ipm_status *st)
{
	if (!st)
		return;
	free(st->conns);
	free(st->luns);
	free(st);
}
