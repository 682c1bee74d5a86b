/* hb_volume.c - the engine's storage-path heartbeat: the heartbeat volume
 * configured or installed at run time, its slots carried by the mirror
 * connections, and the run-time method (doc/heartbeat.md). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <qb/qblog.h>

#include "heartbeat.h"
#include "lun.h"
#include "receiver.h"
#include "replicator.h"
#include "storage_hb.h"

/* Our slot to the peer on whichever connection set is up (the storage
 * heartbeat's sender). Not under a role change (it may hold admin for a
 * few seconds): the next slot goes out a moment later. */
static int send_slot(void *opaque, unsigned slot, const uint8_t *data)
{
	ipm_engine *e = opaque;
	int rc = -ENOTCONN;
	size_t i;

	if (pthread_mutex_trylock(&e->admin) != 0)
		return -EAGAIN;
	for (i = 0; rc < 0 && i < e->n_luns; i++) {
		if (e->luns[i]->rep)
			rc = replicator_send_hbslot(e->luns[i]->rep, slot, data);
		if (rc < 0 && e->luns[i]->rcv)
			rc = receiver_send_hbslot(e->luns[i]->rcv, slot, data);
	}
	if (rc < 0 && e->rcv)
		rc = receiver_send_hbslot(e->rcv, slot, data);
	pthread_mutex_unlock(&e->admin);
	return rc;
}

static bool same_file(const struct stat *a, const char *path)
{
	struct stat b;

	return stat(path, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

/* The heartbeat volume must not be a data LUN's backing or journal files:
 * our slot writes would corrupt them. */
static int check_not_data(ipm_engine *e, const char *path, ipm_error *err)
{
	static const char *const suffixes[] = { "", ".bitmap", ".al" };
	char jpath[4200];
	struct stat st, lst;
	size_t i, j;

	if (stat(path, &st) < 0)
		return 0; /* created later: cannot be anything else */
	for (i = 0; i < e->n_luns; i++) {
		struct ipm_lun *l = e->luns[i];

		if (fstat(l->fd, &lst) == 0 && lst.st_dev == st.st_dev && lst.st_ino == st.st_ino)
			return ipm_fail(err, -EBUSY, "%s is the backing of lun \"%s\"", path,
					l->cfg->name);
		for (j = 0; j < sizeof(suffixes) / sizeof(suffixes[0]); j++) {
			if (l->cfg->journal_path)
				snprintf(jpath, sizeof(jpath), "%s%s", l->cfg->journal_path, suffixes[j]);
			else
				snprintf(jpath, sizeof(jpath), "%s.journal%s", l->path, suffixes[j]);
			if (same_file(&st, jpath))
				return ipm_fail(err, -EBUSY, "%s is a journal file of lun \"%s\"",
						path, l->cfg->name);
		}
	}
	return 0;
}

static int open_volume(ipm_engine *e, const char *path, struct storage_hb **out,
		       ipm_error *err)
{
	struct shb_params p = {
		.path = path, .self = e->node, .peer = e->peer->name,
		.self_slot = (unsigned)ipm_config_node_index(e->cfg, e->node),
		.peer_slot = (unsigned)ipm_config_node_index(e->cfg, e->peer->name),
		.interval = e->cfg->hb_interval, .hb = e->hb,
		.send = send_slot, .opaque = e,
	};
	int rc = check_not_data(e, path, err);

	return rc < 0 ? rc : storage_hb_open(&p, out, err);
}

int hbvol_setup(ipm_engine *e, ipm_error *err)
{
	const char *path = e->self->hb_volume;

	if (!path)
		return 0;
	if (!e->hb) {
		qb_log(LOG_WARNING, "heartbeat volume %s ignored: node %s mirrors no lun with a peer",
		       path, e->node);
		return 0;
	}
	return open_volume(e, path, &e->shb, err);
}

int hbvol_start(ipm_engine *e, ipm_error *err)
{
	int rc;

	if (!e->shb)
		return 0;
	heartbeat_storage_enable(e->hb, true);
	rc = storage_hb_start(e->shb, err);
	if (rc < 0)
		heartbeat_storage_enable(e->hb, false);
	return rc;
}

void hbvol_stop(ipm_engine *e)
{
	if (e->shb)
		storage_hb_stop(e->shb);
}

void hbvol_destroy(ipm_engine *e)
{
	storage_hb_destroy(e->shb);
	e->shb = NULL;
}

void hbvol_received(void *engine, unsigned slot, const uint8_t *data)
{
	ipm_engine *e = engine;
	ipm_error err = { "" };
	int rc = -ENODEV;

	pthread_rwlock_rdlock(&e->hb_lock);
	if (e->shb)
		rc = storage_hb_apply(e->shb, slot, data, &err);
	pthread_rwlock_unlock(&e->hb_lock);
	if (rc == -ENODEV && !e->shb_unexpected_logged) {
		e->shb_unexpected_logged = true;
		qb_log(LOG_NOTICE, "peer %s sends storage heartbeats, but no heartbeat volume is installed here",
		       e->peer->name);
	} else if (rc < 0 && rc != -ENODEV) {
		qb_log(LOG_WARNING, "peer %s: storage heartbeat slot refused: %s", e->peer->name,
		       err.msg);
	}
}

void hbvol_status(ipm_engine *e, ipm_status *st)
{
	struct hb_status t;

	if (!e->hb)
		return;
	st->method = heartbeat_method(e->hb);
	st->udp_state = heartbeat_udp_state(e->hb);
	st->storage_state = heartbeat_storage_state(e->hb);
	st->storage_age_ms = heartbeat_storage_age_ms(e->hb);
	pthread_rwlock_rdlock(&e->hb_lock);
	if (e->shb) {
		snprintf(st->hb_volume, sizeof(st->hb_volume), "%s", storage_hb_path(e->shb));
		storage_hb_peer(e->shb, &t);
		st->storage_serial = t.heard ? t.last.serial : 0;
	}
	pthread_rwlock_unlock(&e->hb_lock);
}

/* ---- run-time administration ------------------------------------------------ */

int ipm_engine_hb_install(ipm_engine *e, const char *path, ipm_error *err)
{
	struct storage_hb *s = NULL;
	int rc;

	if (!e->hb)
		return ipm_fail(err, -EINVAL,
				"node %s mirrors no lun with a peer: the storage heartbeat travels on the mirror connections",
				e->node);
	pthread_rwlock_wrlock(&e->hb_lock);
	if (e->shb) {
		rc = ipm_fail(err, -EEXIST, "a heartbeat volume is already installed: %s",
			      storage_hb_path(e->shb));
		goto out;
	}
	rc = open_volume(e, path, &s, err);
	if (rc < 0)
		goto out;
	e->shb = s;
	rc = e->started ? hbvol_start(e, err) : 0;
	if (rc < 0) {
		hbvol_destroy(e);
		goto out;
	}
	ipm_config_set_hb_volume(e->cfg, e->node, path);
	qb_log(LOG_NOTICE, "heartbeat volume %s installed", path);
out:
	pthread_rwlock_unlock(&e->hb_lock);
	return rc;
}

int ipm_engine_hb_uninstall(ipm_engine *e, ipm_error *err)
{
	char path[4096];
	int rc = 0;

	pthread_rwlock_wrlock(&e->hb_lock);
	if (!e->shb) {
		rc = ipm_fail(err, -ENOENT, "no heartbeat volume is installed on %s", e->node);
		goto out;
	}
	if (heartbeat_method(e->hb) == IPM_HB_STORAGE) {
		rc = ipm_fail(err, -EBUSY,
			      "the heartbeat method is storage: without the volume the peer would be declared dead; switch to udp or both first");
		goto out;
	}
	if (heartbeat_method(e->hb) == IPM_HB_BOTH &&
	    heartbeat_udp_state(e->hb) != IPM_LINK_UP &&
	    heartbeat_storage_state(e->hb) == IPM_LINK_UP) {
		rc = ipm_fail(err, -EBUSY,
			      "the UDP heartbeat is %s and only the storage heartbeat shows peer %s alive: removing it would declare the peer dead",
			      ipm_link_name(heartbeat_udp_state(e->hb)), e->peer->name);
		goto out;
	}
	snprintf(path, sizeof(path), "%s", storage_hb_path(e->shb));
	storage_hb_retire(e->shb);
	heartbeat_storage_enable(e->hb, false);
	hbvol_destroy(e);
	ipm_config_set_hb_volume(e->cfg, e->node, NULL);
	qb_log(LOG_NOTICE, "heartbeat volume %s uninstalled", path);
out:
	pthread_rwlock_unlock(&e->hb_lock);
	return rc;
}

int ipm_engine_hb_set_method(ipm_engine *e, enum ipm_hb_method m, ipm_error *err)
{
	enum ipm_link_state st;

	if (!e->hb)
		return ipm_fail(err, -EINVAL,
				"node %s mirrors no lun with a peer: there is no heartbeat to judge it by",
				e->node);
	st = heartbeat_storage_state(e->hb);
	if (m != IPM_HB_UDP && st == IPM_LINK_OFF)
		return ipm_fail(err, -EINVAL,
				"method %s needs the storage heartbeat: no heartbeat volume is installed (ipmirrorctl heartbeat install PATH)",
				ipm_method_name(m));
	if (m == IPM_HB_STORAGE && st != IPM_LINK_UP && heartbeat_state(e->hb) == IPM_LINK_UP)
		return ipm_fail(err, -EBUSY,
				"the storage heartbeat is %s: method storage would declare peer %s dead",
				ipm_link_name(st), e->peer->name);
	heartbeat_set_method(e->hb, m);
	ipm_config_set_hb_method(e->cfg, m);
	return 0;
}
