/* ipmirrord - the ipmirror daemon: the engine, its NBD server and admin IPC. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <syslog.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "ipmirror.h"
#include "cluster/attributes.h"
#include "cluster/fencing.h"
#include "cluster/quorum.h"
#include "ipc_proto.h"
#include "ipc_server.h"
#include "nbd/server.h"

#define DEFAULT_CONFIG IPM_SYSCONFDIR "/ipmirror/ipmirror.xml"
#define DEFAULT_FENCE_HANDLER IPM_SBINDIR "/ipmirror-fence-peer"
#define FENCE_RETRY_MS 5000

struct options {
	const char *config;
	const char *node;
	const char *socket;
	bool foreground;
	bool check_config;
	bool attributes; /* publish node attributes (also IPMIRROR_ATTRIBUTES=1) */
	bool no_fencing; /* cluster mode without resource-level fencing */
	int verbose;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ipmirrord [--config FILE] [--node NAME] [--socket NAME] [--foreground]\n"
		"                 [--attributes [--no-fencing]] [-v]...\n"
		"       ipmirrord --check-config [--config FILE] [--node NAME]\n"
		"  -c, --config FILE   configuration (default %s)\n"
		"  -n, --node NAME     this node's name in the config (default: uname -n)\n"
		"  -s, --socket NAME   admin IPC service name (default ipmirror)\n"
		"  -f, --foreground    do not detach; log to stderr\n"
		"      --attributes    publish Pacemaker node attributes with attrd_updater\n"
		"                      (also when IPMIRROR_ATTRIBUTES=1); this is cluster mode,\n"
		"                      with resource-level fencing of the peer\n"
		"      --no-fencing    cluster mode without resource-level fencing\n"
		"      --check-config  validate the configuration and exit\n"
		"  -v, --verbose       more logging (repeat for debug)\n",
		DEFAULT_CONFIG);
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "node", required_argument, NULL, 'n' },
		{ "socket", required_argument, NULL, 's' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "attributes", no_argument, NULL, 'A' },
		{ "no-fencing", no_argument, NULL, 'F' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:n:s:fvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'n': o->node = optarg; break;
		case 's': o->socket = optarg; break;
		case 'f': o->foreground = true; break;
		case 'C': o->check_config = true; break;
		case 'A': o->attributes = true; break;
		case 'F': o->no_fencing = true; break;
		case 'v': o->verbose++; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ipmirrord: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	return 0;
}

static void print_diag(void *opaque, const char *file, int line, const char *msg)
{
	(void)opaque;
	if (line > 0)
		fprintf(stderr, "%s:%d: %s\n", file, line, msg);
	else
		fprintf(stderr, "%s: %s\n", file, msg);
}

static int load_config(const struct options *o, ipm_config **cfg)
{
	int rc = ipm_config_load(o->config, NULL, print_diag, NULL, cfg);

	if (rc < 0)
		fprintf(stderr, "%s: cannot load configuration: %s\n", o->config, strerror(-rc));
	if (rc != 0)
		return -1;
	/* --check-config without --node checks the file only */
	if (o->node && !ipm_config_has_node(*cfg, o->node)) {
		fprintf(stderr, "%s: node \"%s\" is not defined (use --node)\n", o->config,
			o->node);
		ipm_config_free(*cfg);
		*cfg = NULL;
		return -1;
	}
	return 0;
}

static int log_level(const struct options *o, const ipm_config *cfg)
{
	int level = ipm_config_log_level(cfg);

	if (level < 0)
		level = LOG_NOTICE;
	level += o->verbose;
	return level > LOG_DEBUG ? LOG_DEBUG : level;
}

/* Detach, keeping a pipe to the child: the parent exits only once the child
 * says it is serving, so "ipmirrord && nbdinfo ..." works. */
static int daemonize(int *ready_fd)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		exit(read(p[0], &c, 1) == 1 && c == 0 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	if (chdir("/") < 0)
		return -errno;
	int null = open("/dev/null", O_RDWR);

	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
	*ready_fd = p[1];
	return 0;
}

static void report_ready(int fd, bool ok)
{
	char c = ok ? 0 : 1;

	if (fd < 0)
		return;
	if (write(fd, &c, 1) < 0)
		qb_log(LOG_WARNING, "cannot tell the parent process we are ready");
	close(fd);
}

struct daemon {
	ipm_config *cfg;            /* role changes edit it, then re-create the engine */
	const struct options *o;
	ipm_engine *engine;
	struct nbd_server *nbd;
	struct ipc_server *ipc;
	struct ipm_attributes *attrs;
	struct ipm_fencing *fencing; /* cluster mode only; NULL otherwise */
	const char *fence_handler;
};

/* Engine and NBD server for d->cfg, running. */
static int engine_up(struct daemon *d, ipm_error *err)
{
	ipm_listen listen;
	int rc;

	rc = ipm_engine_create(d->cfg, d->o->node, &d->engine, err);
	if (rc < 0)
		return rc;
	rc = ipm_config_nbd_listen(d->cfg, d->o->node, &listen);
	if (rc < 0) {
		snprintf(err->msg, sizeof(err->msg), "node \"%s\" has no NBD listener", d->o->node);
		return rc;
	}
	rc = nbd_server_create(d->engine, &listen, 0, &d->nbd, err);
	if (rc < 0)
		return rc;
	rc = ipm_engine_start(d->engine, err);
	if (rc < 0)
		return rc;
	return nbd_server_start(d->nbd, err);
}

static void engine_down(struct daemon *d)
{
	if (d->nbd)
		nbd_server_stop(d->nbd);
	if (d->engine)
		ipm_engine_stop(d->engine);
	nbd_server_destroy(d->nbd);
	ipm_engine_destroy(d->engine);
	d->nbd = NULL;
	d->engine = NULL;
}

/* ---- promote / demote: re-create the engine with the LUN's role switched --- */

#define DEMOTE_WAIT_MS 5000

static const ipm_lun_status *find_lun(const ipm_status *st, const char *lun)
{
	size_t i;

	for (i = 0; i < st->n_luns; i++)
		if (strcmp(st->luns[i].name, lun) == 0)
			return &st->luns[i];
	return NULL;
}

/* The peer has everything: no journaled request it has not confirmed. */
static bool demote_safe(const ipm_lun_status *l)
{
	if (!l->mirrored)
		return true;
	if (l->journal_bytes || l->journal_records)
		return false;
	return l->state == IPM_STATE_UPTODATE || l->state == IPM_STATE_JOURNALING ||
	       l->state == IPM_STATE_PROBATION;
}

/* 0 with a fresh snapshot of lun in *st, *l. */
static int lun_snapshot(struct daemon *d, const char *lun, ipm_status **st,
			const ipm_lun_status **l, ipm_error *err)
{
	int rc = ipm_engine_status(d->engine, st);

	if (rc < 0)
		return ipm_fail(err, rc, "cannot read status: %s", strerror(-rc));
	*l = find_lun(*st, lun);
	if (!*l) {
		ipm_status_free(*st);
		*st = NULL;
		return ipm_fail(err, -ENOENT, "no lun \"%s\" on %s", lun, d->o->node);
	}
	return 0;
}

static int check_promote(struct daemon *d, const ipm_lun_status *l, const ipm_status *st,
			 ipm_error *err)
{
	ipm_error q = { "" };
	int rc;

	/* a partition without quorum must not take the role: the other side
	 * may be doing the same */
	rc = ipm_quorum_check(&q);
	if (rc < 0)
		return ipm_fail(err, rc, "lun \"%s\": %s", l->name, q.msg);
	qb_log(LOG_DEBUG, "lun %s: quorum check: %s", l->name, q.msg);
	/* item 4 of the storage heartbeat: a lost heartbeat network alone is
	 * never a reason to take over from a live peer */
	if (l->mirrored && strcmp(ipm_status_failure(st), "heartbeat-network") == 0)
		return ipm_fail(err, -EBUSY,
				    "lun \"%s\": node \"%s\" is alive (its storage heartbeat advanced %lld ms ago) although its UDP heartbeat is lost: a heartbeat-network failure is no reason to promote (--force overrides)",
				    l->name, st->peer, (long long)st->storage_age_ms);
	if (l->state == IPM_STATE_UPTODATE && l->mirrored)
		return ipm_fail(err, -EBUSY,
				    "lun \"%s\": node \"%s\" is still its primary and connected; demote it there first",
				    l->name, st->peer);
	if (!ipm_attributes_consistent(d->attrs, l->name))
		return ipm_fail(err, -EPERM,
				    "lun \"%s\" is %s here and was not up to date when its primary went away: promoting would lose writes (--force overrides)",
				    l->name, ipm_state_name(l->state));
	return 0;
}

static int check_demote(struct daemon *d, const char *lun, ipm_status **st,
			const ipm_lun_status **l, ipm_error *err)
{
	int waited = 0, rc;

	/* async mode: give the journal a moment to drain */
	while (!demote_safe(*l) && waited < DEMOTE_WAIT_MS) {
		ipm_status_free(*st);
		usleep(200 * 1000);
		waited += 200;
		rc = lun_snapshot(d, lun, st, l, err);
		if (rc < 0)
			return rc;
	}
	if (demote_safe(*l))
		return 0;
	return ipm_fail(err, -EBUSY,
			    "lun \"%s\" is %s with %llu journal bytes its peer has not confirmed: demoting now would leave them only here (--force overrides)",
			    (*l)->name, ipm_state_name((*l)->state),
			    (unsigned long long)(*l)->journal_bytes);
}

/* Switch lun's primary to node; on failure put the old engine back. */
/* A new engine from d->cfg under the running NBD server. */
static int engine_replace(struct daemon *d, ipm_error *err)
{
	int rc;

	if (d->engine) {
		ipm_engine_stop(d->engine);
		ipm_engine_destroy(d->engine);
		d->engine = NULL;
	}
	rc = ipm_engine_create(d->cfg, d->o->node, &d->engine, err);
	if (rc == 0)
		rc = ipm_engine_start(d->engine, err);
	if (rc < 0 && d->engine) {
		ipm_engine_stop(d->engine);
		ipm_engine_destroy(d->engine);
		d->engine = NULL;
	}
	return rc;
}

/* The engine is re-created with the LUN's new role; NBD clients of the
 * other LUNs wait a moment and go on (only the LUN's own clients on a node
 * that stops serving it are disconnected). */
static int switch_primary(struct daemon *d, const char *lun, const char *node,
			  const char *old, ipm_error *err)
{
	ipm_error err2 = { "" };
	int rc;

	ipm_attributes_set_engine(d->attrs, NULL);
	nbd_server_pause(d->nbd);
	rc = ipm_config_set_primary(d->cfg, lun, node);
	if (rc == 0)
		rc = engine_replace(d, err);
	if (rc < 0) {
		qb_log(LOG_ERR, "lun %s: cannot restart with %s as primary: %s", lun, node, err->msg);
		ipm_config_set_primary(d->cfg, lun, old);
		if (engine_replace(d, &err2) < 0) {
			qb_log(LOG_CRIT, "cannot restart the engine: %s; shutting down", err2.msg);
			nbd_server_resume(d->nbd, NULL);
			kill(getpid(), SIGTERM);
			return rc;
		}
	}
	nbd_server_resume(d->nbd, d->engine);
	ipm_attributes_set_engine(d->attrs, d->engine);
	return rc;
}

static int role_change(void *opaque, const char *lun, bool promote, unsigned flags,
		       ipm_engine **engine, ipm_error *err)
{
	struct daemon *d = opaque;
	const bool force = flags & IPC_F_FORCE;
	const ipm_lun_status *l;
	ipm_status *st = NULL;
	char peer[IPM_NAME_MAX];
	bool safe;
	int rc;

	if (!d->engine)
		return ipm_fail(err, -EIO, "the engine is down");
	rc = lun_snapshot(d, lun, &st, &l, err);
	if (rc < 0)
		return rc;
	snprintf(peer, sizeof(peer), "%s", st->peer);
	if (l->role == (promote ? IPM_ROLE_PRIMARY : IPM_ROLE_MIRROR)) {
		rc = ipm_fail(err, 0, "lun \"%s\" is already %s here", lun,
				  ipm_role_name(l->role));
		goto out;
	}
	if (!peer[0] && !promote) {
		rc = ipm_fail(err, -EINVAL, "lun \"%s\": no peer to hand it to", lun);
		goto out;
	}
	rc = promote ? check_promote(d, l, st, err) : check_demote(d, lun, &st, &l, err);
	if (rc < 0 && (!force || rc == -ENOENT || !st))
		goto out;
	safe = rc == 0;
	if (flags & IPC_F_DRY_RUN) {
		if (safe)
			ipm_fail(err, 0, "lun \"%s\" can be %s", lun,
				     promote ? "promoted" : "demoted");
		goto out;
	}
	if (!safe)
		qb_log(LOG_CRIT, "lun %s: FORCED %s against the safety check: %s", lun,
		       promote ? "promotion" : "demotion", err->msg);
	/* a fresh primary that never wrote has no record of being whole: a
	 * clean hand-over must leave it promotable after the engine restart
	 * (its view of the LUN is then "outdated", judged by that record) */
	if (!promote && safe && l->mirrored) {
		ipm_lun *lp = ipm_engine_lun_by_name(d->engine, lun);

		rc = lp ? ipm_lun_mark_consistent(lp, err) : ipm_fail(err, -ENOENT, "no lun \"%s\"", lun);
		if (rc < 0)
			goto out;
	}
	rc = switch_primary(d, lun, promote ? d->o->node : peer, promote ? peer : d->o->node,
			    err);
	if (rc == 0) {
		if (!promote && safe)
			ipm_attributes_mark_consistent(d->attrs, lun);
		if (d->fencing && promote)
			ipm_fencing_promoted(d->fencing, lun);
		else if (d->fencing)
			ipm_fencing_demoted(d->fencing, lun, safe);
		qb_log(LOG_NOTICE, "lun %s: %s%s", lun, promote ? "promoted (primary)" : "demoted (mirror)",
		       safe ? "" : " by force");
		ipm_fail(err, 0, "lun \"%s\" %s on %s%s", lun,
			     promote ? "promoted" : "demoted", d->o->node, safe ? "" : " (forced)");
	}
out:
	ipm_status_free(st);
	*engine = d->engine;
	return rc;
}

/* ---- storage heartbeat: the engine acts, d->cfg remembers (a role change
 * re-creates the engine from it; a restart reads the config file) ---------- */

static int hb_admin(void *opaque, int cmd, const char *arg, ipm_engine *engine, ipm_error *err)
{
	struct daemon *d = opaque;
	enum ipm_hb_method m;
	int rc;

	if (!engine)
		return ipm_fail(err, -EIO, "the engine is down");
	switch (cmd) {
	case IPC_CMD_HB_INSTALL:
		if (arg[0] != '/')
			return ipm_fail(err, -EINVAL, "heartbeat volume \"%s\" must be an absolute path",
					arg);
		rc = ipm_engine_hb_install(engine, arg, err);
		if (rc == 0)
			rc = ipm_config_set_hb_volume(d->cfg, d->o->node, arg);
		if (rc == 0)
			ipm_fail(err, 0, "heartbeat volume %s installed on %s (add <heartbeat-volume path=\"%s\"/> to node %s in %s to keep it across restarts)",
				 arg, d->o->node, arg, d->o->node, d->o->config);
		return rc;
	case IPC_CMD_HB_UNINSTALL:
		rc = ipm_engine_hb_uninstall(engine, err);
		if (rc == 0)
			rc = ipm_config_set_hb_volume(d->cfg, d->o->node, NULL);
		if (rc == 0)
			ipm_fail(err, 0, "heartbeat volume uninstalled on %s", d->o->node);
		return rc;
	case IPC_CMD_HB_METHOD:
		if (ipm_method_parse(arg, &m) < 0)
			return ipm_fail(err, -EINVAL, "unknown heartbeat method \"%s\" (use udp, storage or both)",
					arg);
		rc = ipm_engine_hb_set_method(engine, m, err);
		if (rc == 0) {
			ipm_config_set_hb_method(d->cfg, m);
			ipm_fail(err, 0, "heartbeat method %s on %s", arg, d->o->node);
		}
		return rc;
	default:
		return ipm_fail(err, -EOPNOTSUPP, "unknown heartbeat command %d", cmd);
	}
}

static void fencing_observe(void *opaque, const ipm_status *st)
{
	ipm_fencing_update(opaque, st);
}

/* Cluster mode: fence the peer through the handler (doc/pacemaker.md). */
static int fencing_start(struct daemon *d, ipm_error *err)
{
	const char *h = getenv("IPMIRROR_FENCE_HANDLER");
	int rc;

	d->fence_handler = h && h[0] ? h : DEFAULT_FENCE_HANDLER;
	if (access(d->fence_handler, X_OK) < 0)
		qb_log(LOG_ERR, "resource-level fencing: handler %s is not executable (%s): fencing will fail until it is",
		       d->fence_handler, strerror(errno));
	rc = ipm_fencing_start(ipm_fence_run_handler, (void *)d->fence_handler, FENCE_RETRY_MS,
			       &d->fencing, err);
	if (rc < 0)
		return rc;
	ipm_attributes_set_observer(d->attrs, fencing_observe, d->fencing);
	qb_log(LOG_NOTICE, "resource-level fencing on (handler %s)", d->fence_handler);
	return 0;
}

static int daemon_start(struct daemon *d, const ipm_config *cfg, const struct options *o)
{
	ipm_error err = { "" };
	int rc;

	(void)cfg;
	rc = engine_up(d, &err);
	if (rc < 0)
		goto out;
	/* always tracked (promotion checks); published only when asked */
	rc = ipm_attributes_start(d->engine, o->attributes ? ipm_attr_publish_attrd : NULL,
				  NULL, &d->attrs, &err);
	if (rc < 0)
		goto out;
	if (o->attributes && !o->no_fencing) {
		rc = fencing_start(d, &err);
		if (rc < 0)
			goto out;
	}
	rc = ipc_server_start(d->engine, o->socket, &d->ipc, &err);
	if (rc < 0)
		goto out;
	ipc_server_set_role_handler(d->ipc, role_change, d);
	ipc_server_set_hb_handler(d->ipc, hb_admin, d);
out:
	if (rc < 0)
		qb_log(LOG_ERR, "cannot start: %s", err.msg[0] ? err.msg : strerror(-rc));
	return rc;
}

static void daemon_stop(struct daemon *d)
{
	/* the IPC thread first: it may be re-creating the engine */
	if (d->ipc)
		ipc_server_stop(d->ipc);
	/* the poller first: it feeds the fencing thread */
	ipm_attributes_stop(d->attrs);
	ipm_fencing_stop(d->fencing);
	engine_down(d);
}

/* All threads inherit a blocked signal mask; the main thread waits here. */
static int wait_for_signal(const sigset_t *set)
{
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			return -1;
		if (sig == SIGHUP) {
			qb_log(LOG_NOTICE, "SIGHUP: configuration reload is not supported; restart to apply changes");
			continue;
		}
		qb_log(LOG_NOTICE, "signal %d: shutting down", sig);
		return 0;
	}
}

int main(int argc, char **argv)
{
	struct options o = { .config = DEFAULT_CONFIG, .socket = "ipmirror" };
	struct daemon d = { 0 };
	struct utsname un;
	ipm_config *cfg = NULL;
	int ready_fd = -1;
	sigset_t set;
	int rc = 1;

	/* request buffers (up to 32 MiB) come and go at a high rate: keep them
	 * on the heap instead of fresh mmap()s that fault in every page */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);

	/* whatever we create (log, journals, generation, bitmaps, sockets) is
	 * ours alone unless we widen it on purpose (the NBD socket: 0660) */
	umask(077);
	if (parse_args(argc, argv, &o) < 0)
		return 2;
	if (getenv("IPMIRROR_ATTRIBUTES") && strcmp(getenv("IPMIRROR_ATTRIBUTES"), "1") == 0)
		o.attributes = true;
	if (!o.node && !o.check_config) {
		uname(&un);
		o.node = strdup(un.nodename);
	}
	ipm_log_init("ipmirrord", LOG_WARNING, IPM_LOG_STDERR, NULL);
	if (load_config(&o, &cfg) < 0)
		return 1;
	if (o.check_config) {
		printf("%s: configuration is valid\n", o.config);
		rc = 0;
		goto out;
	}
	if (ipm_log_init("ipmirrord", log_level(&o, cfg),
			 o.foreground ? IPM_LOG_STDERR : IPM_LOG_SYSLOG,
			 ipm_config_log_file(cfg)) < 0)
		fprintf(stderr, "ipmirrord: cannot open log file %s\n", ipm_config_log_file(cfg));
	if (!o.foreground && daemonize(&ready_fd) < 0) {
		fprintf(stderr, "ipmirrord: cannot detach: %s\n", strerror(errno));
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	d.cfg = cfg;
	d.o = &o;
	if (daemon_start(&d, cfg, &o) < 0) {
		report_ready(ready_fd, false);
		goto stop;
	}
	qb_log(LOG_NOTICE, "node %s serving (config %s, admin socket %s)", o.node, o.config,
	       o.socket);
	report_ready(ready_fd, true);
	rc = wait_for_signal(&set) < 0 ? 1 : 0;
stop:
	daemon_stop(&d);
out:
	ipm_config_free(cfg);
	ipm_log_fini();
	return rc;
}
