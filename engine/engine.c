/* engine.c - create, start and stop the engine of one node. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <qb/qblog.h>

#include "auth.h"
#include "connection_array.h"
#include "heartbeat.h"
#include "lun.h"
#include "mirror_tls.h"
#include "receiver.h"
#include "replicator.h"

static int open_luns(ipm_engine *e, ipm_error *err)
{
	unsigned i;
	int rc;

	/* room for LUNs added at run time: the table never moves under its
	 * readers (ipm_engine_lun_add) */
	e->max_luns = e->cfg->n_luns > WIRE_MAX_LUNS ? e->cfg->n_luns : WIRE_MAX_LUNS;
	e->luns = calloc(e->max_luns, sizeof(*e->luns));
	if (!e->luns)
		return ipm_fail(err, -ENOMEM, "out of memory");
	for (i = 0; i < e->cfg->n_luns; i++) {
		rc = lun_open(e, &e->cfg->luns[i], &e->luns[i], err);
		if (rc < 0)
			return rc;
		e->luns[i]->cfg_index = (uint16_t)i;
		e->n_luns++;
	}
	return 0;
}

/* The heartbeat's state file (doc/heartbeat.md): in <heartbeat state-dir>,
 * else in the directory of this node's first mirrored backing, where the
 * generation files are; named by node, as both nodes may share a directory. */
static int hb_state_path(const ipm_engine *e, char *buf, size_t size, ipm_error *err)
{
	const char *dir = e->cfg->hb_state_dir, *backing = NULL, *slash;
	size_t dlen;
	unsigned i;

	for (i = 0; !dir && !backing && i < e->cfg->n_luns; i++)
		if (e->cfg->luns[i].mirrored)
			backing = ipm_lun_cfg_backing(&e->cfg->luns[i], e->node);
	if (!dir && !backing)
		return ipm_fail(err, -EINVAL, "no place for the heartbeat state: set <heartbeat state-dir>");
	if (dir) {
		dlen = strlen(dir);
	} else {
		slash = strrchr(backing, '/');
		dir = backing;
		dlen = slash && slash != backing ? (size_t)(slash - backing) : 1;
	}
	if (snprintf(buf, size, "%.*s/heartbeat-%s.state", (int)dlen, dir, e->node) >= (int)size)
		return ipm_fail(err, -ENAMETOOLONG, "heartbeat state path in %.*s is too long",
				(int)dlen, dir);
	return 0;
}

static int setup_heartbeat(ipm_engine *e, ipm_error *err)
{
	char state[4096];
	struct hb_params p = {
		.self = e->node, .peer = e->peer->name,
		.local = &e->self->heartbeat, .remote = &e->peer->heartbeat,
		.secret = e->secret,
		.interval = e->cfg->hb_interval, .timeout = e->cfg->hb_timeout,
		.probation = e->cfg->hb_probation, .method = e->cfg->hb_method,
		.state_path = state,
	};
	int rc;

	if (!e->self->heartbeat.address || !e->peer->heartbeat.address)
		return ipm_fail(err, -EINVAL, "mirrored luns need <heartbeat> addresses on both nodes");
	rc = hb_state_path(e, state, sizeof(state), err);
	if (rc < 0)
		return rc;
	rc = heartbeat_create(&p, &e->hb, err);
	if (rc == 0) /* its paths, and every connection array attached to it */
		heartbeat_set_notify(e->hb, engine_notify_cb, e);
	return rc;
}

/* Replication needs a peer and the secret; each mirrored LUN gets its
 * session's objects (lun_admin.c). */
static int setup_mirroring(ipm_engine *e, ipm_error *err)
{
	unsigned n = 0;
	size_t i;
	int rc;

	for (i = 0; i < e->n_luns; i++)
		n += e->luns[i]->cfg->mirrored;
	if (!n)
		return 0;
	if (!e->peer || !e->cfg->secret_file)
		return ipm_fail(err, -EINVAL, "mirrored luns need a peer node and a <secret>");
	e->secret = calloc(1, sizeof(*e->secret));
	if (!e->secret)
		return ipm_fail(err, -ENOMEM, "out of memory");
	rc = auth_secret_load(e->cfg->secret_file, e->secret, err);
	if (rc == 0)
		rc = mirror_tls_setup(e, err);
	if (rc < 0)
		return rc;
	rc = setup_heartbeat(e, err);
	for (i = 0; rc == 0 && i < e->n_luns; i++)
		if (e->luns[i]->cfg->mirrored)
			rc = lun_mirror_attach(e, e->luns[i], err);
	return rc;
}

int ipm_engine_create(const ipm_config *cfg, const char *node, ipm_engine **out,
		      ipm_error *err)
{
	ipm_engine *e;
	int rc;

	if (!ipm_config_has_node(cfg, node))
		return ipm_fail(err, -ENOENT, "node \"%s\" is not defined in %s", node,
				cfg->path);
	e = calloc(1, sizeof(*e));
	if (!e)
		return ipm_fail(err, -ENOMEM, "out of memory");
	snprintf(e->node, sizeof(e->node), "%s", node);
	pthread_rwlock_init(&e->hb_lock, NULL);
	pthread_mutex_init(&e->admin, NULL);
	pthread_mutex_init(&e->route, NULL);
	e->cfg = ipm_config_dup(cfg);
	if (!e->cfg) {
		rc = ipm_fail(err, -ENOMEM, "out of memory");
		goto fail;
	}
	e->self = ipm_config_node(e->cfg, node);
	e->peer = ipm_config_peer(e->cfg, node);
	rc = open_luns(e, err);
	if (rc < 0)
		goto fail;
	rc = setup_mirroring(e, err);
	if (rc < 0)
		goto fail;
	rc = hbvol_setup(e, err);
	if (rc < 0)
		goto fail;
	*out = e;
	return 0;
fail:
	ipm_engine_destroy(e);
	return rc;
}

static void stop_luns(ipm_engine *e)
{
	size_t i;

	/* the listener first: it routes new sessions to the LUNs' receivers */
	if (e->rcv)
		receiver_stop(e->rcv);
	for (i = 0; i < e->n_luns; i++)
		lun_mirror_stop(e, e->luns[i]);
}

static int start_luns(ipm_engine *e, ipm_error *err)
{
	size_t i;
	int rc = 0;

	if (e->rcv)
		rc = receiver_start(e->rcv, err);
	for (i = 0; rc == 0 && i < e->n_luns; i++)
		rc = lun_mirror_start(e, e->luns[i], err);
	return rc;
}

int ipm_engine_start(ipm_engine *e, ipm_error *err)
{
	if (e->started)
		return ipm_fail(err, -EALREADY, "engine already started");
	int rc;

	if (e->hb) {
		rc = heartbeat_start(e->hb, err);
		if (rc < 0)
			return rc;
	}
	pthread_mutex_lock(&e->admin);
	rc = start_luns(e, err);
	if (rc < 0) {
		stop_luns(e);
		pthread_mutex_unlock(&e->admin);
		goto fail_hb;
	}
	pthread_rwlock_wrlock(&e->hb_lock);
	rc = hbvol_start(e, err);
	e->started = rc == 0;
	pthread_rwlock_unlock(&e->hb_lock);
	if (rc < 0)
		stop_luns(e);
	pthread_mutex_unlock(&e->admin);
	if (rc < 0)
		goto fail_hb;
	qb_log(LOG_NOTICE, "node %s: engine started with %zu lun(s)", e->node, e->n_luns);
	return 0;
fail_hb:
	if (e->hb)
		heartbeat_stop(e->hb);
	return rc;
}

void ipm_engine_stop(ipm_engine *e)
{
	if (!e->started)
		return;
	pthread_rwlock_wrlock(&e->hb_lock);
	/* it sends on the connections stopped below */
	hbvol_stop(e);
	pthread_rwlock_unlock(&e->hb_lock);
	engine_regroup_wait(e);
	pthread_mutex_lock(&e->admin);
	e->started = false;
	stop_luns(e);
	pthread_mutex_unlock(&e->admin);
	if (e->hb)
		heartbeat_stop(e->hb);
	qb_log(LOG_NOTICE, "node %s: engine stopped", e->node);
}

void ipm_engine_destroy(ipm_engine *e)
{
	size_t i;

	if (!e)
		return;
	ipm_engine_stop(e);
	engine_regroup_wait(e);
	hbvol_destroy(e);
	primaries_detach(e);
	for (i = 0; i < e->n_luns; i++)
		lun_mirror_detach(e, e->luns[i]);
	receiver_destroy(e->rcv);
	heartbeat_destroy(e->hb);
	mirror_tls_free(e);
	free(e->secret);
	for (i = 0; i < e->n_luns; i++)
		lun_close(e->luns[i]);
	free(e->luns);
	ipm_config_free(e->cfg);
	pthread_mutex_destroy(&e->route);
	pthread_mutex_destroy(&e->admin);
	pthread_rwlock_destroy(&e->hb_lock);
	free(e);
}

const char *ipm_engine_node(const ipm_engine *e)
{
	return e->node;
}
