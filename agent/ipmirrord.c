/* ipmirrord - the ipmirror daemon: the engine, its NBD server and admin IPC. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <syslog.h>
#include <unistd.h>
#include <qb/qblog.h>

#include "ipmirror.h"
#include "ipc_server.h"
#include "nbd_server.h"

#define DEFAULT_CONFIG IPM_SYSCONFDIR "/ipmirror/ipmirror.xml"

struct options {
	const char *config;
	const char *node;
	const char *socket;
	bool foreground;
	bool check_config;
	int verbose;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ipmirrord [--config FILE] [--node NAME] [--socket NAME] [--foreground] [-v]...\n"
		"       ipmirrord --check-config [--config FILE] [--node NAME]\n"
		"  -c, --config FILE   configuration (default %s)\n"
		"  -n, --node NAME     this node's name in the config (default: uname -n)\n"
		"  -s, --socket NAME   admin IPC service name (default ipmirror)\n"
		"  -f, --foreground    do not detach; log to stderr\n"
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
	ipm_engine *engine;
	struct nbd_server *nbd;
	struct ipc_server *ipc;
};

static int daemon_start(struct daemon *d, const ipm_config *cfg, const struct options *o)
{
	ipm_listen listen;
	ipm_error err = { "" };
	int rc;

	rc = ipm_engine_create(cfg, o->node, &d->engine, &err);
	if (rc < 0)
		goto out;
	rc = ipm_config_nbd_listen(cfg, o->node, &listen);
	if (rc < 0) {
		snprintf(err.msg, sizeof(err.msg), "node \"%s\" has no NBD listener", o->node);
		goto out;
	}
	rc = nbd_server_create(d->engine, &listen, 0, &d->nbd, &err);
	if (rc < 0)
		goto out;
	rc = ipc_server_start(d->engine, o->socket, &d->ipc, &err);
	if (rc < 0)
		goto out;
	rc = ipm_engine_start(d->engine, &err);
	if (rc < 0)
		goto out;
	rc = nbd_server_start(d->nbd, &err);
out:
	if (rc < 0)
		qb_log(LOG_ERR, "cannot start: %s", err.msg[0] ? err.msg : strerror(-rc));
	return rc;
}

static void daemon_stop(struct daemon *d)
{
	if (d->nbd)
		nbd_server_stop(d->nbd);
	if (d->engine)
		ipm_engine_stop(d->engine);
	if (d->ipc)
		ipc_server_stop(d->ipc);
	nbd_server_destroy(d->nbd);
	ipm_engine_destroy(d->engine);
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

	if (parse_args(argc, argv, &o) < 0)
		return 2;
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
