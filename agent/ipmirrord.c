/* ipmirrord - the ipmirror daemon: the engine, its NBD server and admin IPC.
 * Here: main, arguments, detaching, start-up and signals; promote/demote
 * is roles.c, the heartbeat's admin hb_admin.c, cluster policy cluster/,
 * systemd's notify protocol and watchdog service.c, the pidfile pidfile.c. */
#ifdef HAVE_CONFIG_H
#include "ac_config.h"
#endif
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
#include "daemon.h"
#include "events.h"
#include "handlers.h"
#include "ipc_server.h"
#include "metrics.h"
#include "nbd/server.h"
#include "pidfile.h"
#include "service.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define DEFAULT_CONFIG IPM_SYSCONFDIR "/ipmirror/ipmirror.xml"
#define DEFAULT_FENCE_HANDLER IPM_SBINDIR "/ipmirror-fence-peer"
#define FENCE_RETRY_MS 5000

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ipmirrord [--config FILE] [--node NAME] [--socket NAME] [--foreground [--syslog]]\n"
		"                 [--pidfile FILE] [--attributes [--no-fencing]] [-v]...\n"
		"       ipmirrord --check-config [--config FILE] [--node NAME]\n"
		"       ipmirrord --version\n"
		"  -c, --config FILE   configuration (default %s)\n"
		"  -n, --node NAME     this node's name in the config (default: uname -n)\n"
		"  -s, --socket NAME   admin IPC service name (default ipmirror)\n"
		"  -f, --foreground    do not detach; log to stderr\n"
		"      --syslog        in the foreground, log to syslog (the journal) all the same\n"
		"  -p, --pidfile FILE  locked while the daemon runs (default " IPM_RUNDIR "/ipmirrord.pid,\n"
		"                      ipmirrord-SOCKET.pid for another --socket; \"\" = none)\n"
		"      --attributes    publish Pacemaker node attributes with attrd_updater\n"
		"                      (also when IPMIRROR_ATTRIBUTES=1); this is cluster mode,\n"
		"                      with resource-level fencing of the peer\n"
		"      --no-fencing    cluster mode without resource-level fencing\n"
		"      --check-config  validate the configuration and exit\n"
		"  -v, --verbose       more logging (repeat for debug)\n"
		"  -V, --version       print the version and exit\n",
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
		{ "syslog", no_argument, NULL, 'L' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:n:s:fp:vVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'n': o->node = optarg; break;
		case 's': o->socket = optarg; break;
		case 'f': o->foreground = true; break;
		case 'C': o->check_config = true; break;
		case 'A': o->attributes = true; break;
		case 'F': o->no_fencing = true; break;
		case 'v': o->verbose++; break;
		case 'L': o->syslog = true; break;
		case 'p': o->pidfile = optarg; break;
		case 'V': printf("ipmirrord (ipmirror) %s\n", PACKAGE_VERSION); exit(0);
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

static int log_setup(const struct options *o, const ipm_config *cfg)
{
	return ipm_log_init("ipmirrord", log_level(o, cfg),
			    o->foreground && !o->syslog ? IPM_LOG_STDERR : IPM_LOG_SYSLOG,
			    ipm_config_log_file(cfg));
}

void daemon_log_apply(struct daemon *d)
{
	if (log_setup(d->o, d->cfg) < 0)
		qb_log(LOG_ERR, "cannot open log file %s", ipm_config_log_file(d->cfg));
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

/* Every snapshot of the attributes poller: fencing watches the states,
 * the metrics server keeps a copy. */
static void daemon_observe(void *opaque, const ipm_status *st)
{
	struct daemon *d = opaque;

	if (d->fencing)
		ipm_fencing_update(d->fencing, st);
	metrics_update(d->metrics, st);
}

/* The node's <metrics> listener, if it has one (doc/metrics.md). */
static int metrics_up(struct daemon *d, ipm_error *err)
{
	char address[64];
	uint16_t port;

	if (ipm_config_metrics_listen(d->cfg, d->o->node, address, sizeof(address), &port) < 0)
		return 0;
	return metrics_start(address, port, PACKAGE_VERSION, &d->metrics, err);
}

/* What the events stream shows beside the engine's status. */
static bool daemon_consistent(void *opaque, const char *lun)
{
	struct daemon *d = opaque;

	return d->attrs && ipm_attributes_consistent(d->attrs, lun);
}

static int daemon_fenced(void *opaque, const char *lun)
{
	struct daemon *d = opaque;

	return d->fencing ? ipm_fencing_fenced(d->fencing, lun) : -1;
}

/* A change: the attribute poller (consistency memory, fencing) looks now
 * rather than at its next tick, so a promotion check soon after sees it. */
static void daemon_changed(void *opaque)
{
	struct daemon *d = opaque;

	if (d->attrs)
		ipm_attributes_wake(d->attrs);
}

/* The change stream and the <handlers> it drives (doc/events.md). */
static int events_up(struct daemon *d, ipm_error *err)
{
	struct events_hooks h = { daemon_consistent, daemon_fenced, daemon_changed, d };
	int rc;

	rc = handlers_start(d->cfg, d->o->node, &d->handlers, err);
	if (rc < 0)
		return rc;
	rc = events_start(d->engine, &h, &d->events, err);
	if (rc < 0)
		return rc;
	if (d->handlers)
		events_set_handler_sink(d->events, handlers_fire, d->handlers);
	return 0;
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
	rc = metrics_up(d, &err);
	if (rc < 0)
		goto out;
	ipm_attributes_set_observer(d->attrs, daemon_observe, d);
	ipm_attributes_wake(d->attrs);
	rc = events_up(d, &err);
	if (rc < 0)
		goto out;
	rc = ipc_server_start(d->engine, o->socket, &d->ipc, &err);
	if (rc < 0)
		goto out;
	ipc_server_set_events(d->ipc, d->events);
	ipc_server_set_role_handler(d->ipc, role_change, d);
	ipc_server_set_service_handler(d->ipc, lun_service, d);
	ipc_server_set_hb_handler(d->ipc, hb_admin, d);
	ipc_server_set_reload_handler(d->ipc, daemon_reload, d);
out:
	if (rc < 0)
		qb_log(LOG_ERR, "cannot start: %s", err.msg[0] ? err.msg : strerror(-rc));
	return rc;
}

static void daemon_stop(struct daemon *d)
{
	/* the IPC thread first: it may be re-creating the engine (and the
	 * events thread must not wake it once gone) */
	if (d->events)
		events_set_waker(d->events, NULL, NULL);
	if (d->ipc)
		ipc_server_stop(d->ipc);
	/* its subscribers went with the IPC server; handlers after it */
	events_stop(d->events);
	handlers_stop(d->handlers);
	d->events = NULL;
	d->handlers = NULL;
	/* the poller first: it feeds the fencing thread */
	ipm_attributes_stop(d->attrs);
	ipm_fencing_stop(d->fencing);
	metrics_stop(d->metrics);
	d->fencing = NULL;
	d->metrics = NULL;
	engine_down(d);
}

/* All threads inherit a blocked signal mask; the main thread waits here. */
static int wait_for_signal(struct daemon *d, const sigset_t *set)
{
	ipm_error err;
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			return -1;
		if (sig == SIGHUP) {  /* as ipmirrorctl reload, in the IPC thread */
			qb_log(LOG_NOTICE, "SIGHUP: reloading the configuration");
			ipc_server_kick_reload(d->ipc);
			continue;
		}
		if (sig == SIGUSR1) {  /* logrotate's postrotate */
			err.msg[0] = '\0';
			if (ipm_log_reopen(&err) < 0)
				fprintf(stderr, "ipmirrord: SIGUSR1: %s\n", err.msg);
			continue;
		}
		qb_log(LOG_NOTICE, "signal %d: shutting down", sig);
		return 0;
	}
}

/* The pidfile named by --pidfile, or the socket's default; none for "". */
static int pidfile_take(const struct options *o, struct pidfile *pf)
{
	char path[sizeof(pf->path)];
	ipm_error err = { "" };
	int rc;

	pf->fd = -1;
	if (o->pidfile && !o->pidfile[0])
		return 0;
	if (o->pidfile) {
		snprintf(path, sizeof(path), "%s", o->pidfile);
	} else if (pidfile_default(o->socket, path, sizeof(path)) < 0) {
		fprintf(stderr, "ipmirrord: no default pidfile for --socket \"%s\": use --pidfile\n",
			o->socket);
		return -1;
	}
	rc = pidfile_lock(pf, path, &err);
	if (rc < 0)
		fprintf(stderr, "ipmirrord: %s\n", err.msg);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = { .config = DEFAULT_CONFIG, .socket = "ipmirror" };
	struct daemon d = { 0 };
	struct pidfile pf = { .fd = -1 };
	struct service *sv = NULL;
	ipm_error err = { "" };
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
	/* a reload compares the file with this, while role changes edit cfg */
	d.file_cfg = ipm_config_dup(cfg);
	if (!d.file_cfg) {
		fprintf(stderr, "ipmirrord: out of memory\n");
		goto out;
	}
	/* before any thread: it edits the environment */
	if (service_init(&sv, &err) < 0) {
		fprintf(stderr, "ipmirrord: %s\n", err.msg);
		goto out;
	}
	if (log_setup(&o, cfg) < 0)
		fprintf(stderr, "ipmirrord: cannot open log file %s\n", ipm_config_log_file(cfg));
	/* before detaching, so that a second daemon says so on the terminal */
	if (pidfile_take(&o, &pf) < 0)
		goto out;
	if (!o.foreground && daemonize(&ready_fd) < 0) {
		fprintf(stderr, "ipmirrord: cannot detach: %s\n", strerror(errno));
		goto out;
	}
	if (pidfile_write(&pf, getpid(), &err) < 0)
		qb_log(LOG_WARNING, "%s", err.msg);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	d.cfg = cfg;
	d.o = &o;
	service_notify(sv, "STATUS=starting (config %s)", o.config);
	if (daemon_start(&d, cfg, &o) < 0) {
		report_ready(ready_fd, false);
		service_notify(sv, "STATUS=cannot start (see the log)");
		goto stop;
	}
	qb_log(LOG_NOTICE, "node %s serving (config %s, admin socket %s)", o.node, o.config,
	       o.socket);
	report_ready(ready_fd, true);
	service_notify(sv, "READY=1\nSTATUS=node %s serving", o.node);
	if (service_watch(sv, d.nbd, &err) < 0) {
		qb_log(LOG_ERR, "%s", err.msg);
		goto stop;
	}
	rc = wait_for_signal(&d, &set) < 0 ? 1 : 0;
stop:
	service_notify(sv, "STOPPING=1\nSTATUS=stopping");
	service_unwatch(sv);
	daemon_stop(&d);
out:
	pidfile_release(&pf);
	service_free(sv);
	ipm_config_free(d.file_cfg);
	ipm_config_free(cfg);
	ipm_log_fini();
	return rc;
}
