/* ipmirrorctl - admin CLI of ipmirrord, over libqb IPC (see ipc_proto.h).
 * Exit codes: 0 ok, 1 refused/failed, 2 usage error, 3 no daemon answers,
 * 4 (status, wait) no such LUN. */
#ifdef HAVE_CONFIG_H
#include "ac_config.h"
#endif
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <qb/qbipcc.h>

#include "ipc_proto.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define EXIT_USAGE 2
#define EXIT_NO_DAEMON 3  /* like an LSB init script's status: not running */
#define EXIT_NO_LUN 4     /* status, wait: the daemon does not know the LUN */
#define POLL_MS 200          /* wait, with a daemon without events */
#define WAIT_RECHECK_MS 5000 /* wait: a look without an event */
#define REQUEST_TIMEOUT_MS 10000

/* the LUN states of status (ipmirrorctl(8)), to reject a misspelt --state up front */
static const char *const lun_states[] = {
	"uptodate", "journaling", "probation", "resyncing", "outdated", "inconsistent",
	"splitbrain", "down",
};

struct hb_subcommand;

struct ctl_args {
	const char *service;
	const char *command;
	const struct ctl_command *cmd; /* its row in commands[] */
	const char *lun;
	const char *state;
	double timeout; /* seconds; < 0 = none */
	bool json;
	bool has_timeout;
	bool force;
	bool dry_run;
	bool discard_local;
	bool repair;                    /* verify */
	char size[24];                  /* resize: the new size in bytes */
	bool now;         /* events --now */
	const char *get;  /* status --get KEYS */
	const struct hb_subcommand *hb; /* heartbeat subcommand */
	const char *hb_arg;             /* its PATH or METHOD */
};

struct reply {
	int32_t status;
	char *text; /* NUL-terminated */
	size_t len;
};

/* One row per command: its arguments' check, what it does, its lines in
 * the usage text. */
struct ctl_command {
	const char *name;
	int (*check)(struct ctl_args *a, int nargs, char **args);
	int (*run)(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf);
	enum ipc_cmd ipc;   /* the request it sends (heartbeat: its subcommand's) */
	const char *help;
};

static void usage(FILE *f);

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "ipmirrorctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	usage(stderr);
	return -1;
}

static bool known_state(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(lun_states) / sizeof(lun_states[0]); i++)
		if (strcmp(s, lun_states[i]) == 0)
			return true;
	return false;
}

static int parse_timeout(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e9)
		return -1;
	*out = v;
	return 0;
}

static const struct ctl_command *find_command(const char *name);

/* Options that only promote, demote and resolve take. */
static int stray_role_options(const struct ctl_args *a)
{
	if (a->discard_local)
		return usage_error("--discard-local belongs to resolve");
	if (a->force || a->dry_run)
		return usage_error("--force and --dry-run belong to promote and demote (--force also to invalidate, --dry-run to reload)");
	return 0;
}

/* status [LUN] */
static int check_status(struct ctl_args *a, int nargs, char **args)
{
	if (nargs > 2)
		return usage_error("status: unexpected argument \"%s\"", args[2]);
	if (a->state || a->has_timeout)
		return usage_error("status: --state and --timeout belong to wait");
	if (a->get && a->json)
		return usage_error("status: --get or --json, not both");
	if (a->get && (!*a->get || strlen(a->get) >= IPC_ARG_MAX))
		return usage_error("status: --get needs keys, e.g. --get role,state");
	a->lun = nargs == 2 ? args[1] : NULL;
	return 0;
}

/* events [--json] [--now] [--timeout SECONDS] */
static int check_events(struct ctl_args *a, int nargs, char **args)
{
	if (nargs > 1)
		return usage_error("events: unexpected argument \"%s\"", args[1]);
	if (stray_role_options(a) < 0)
		return -1;
	if (a->state || a->get)
		return usage_error("events: only --json, --now and --timeout apply");
	return 0;
}

/* wait LUN --state STATE */
static int check_wait(struct ctl_args *a, int nargs, char **args)
{
	if (nargs < 2)
		return usage_error("wait: missing LUN");
	if (nargs > 2)
		return usage_error("wait: unexpected argument \"%s\"", args[2]);
	if (!a->state)
		return usage_error("wait: missing --state STATE");
	if (!known_state(a->state))
		return usage_error("wait: unknown state \"%s\"", a->state);
	if (a->json)
		return usage_error("wait: --json belongs to status");
	a->lun = args[1];
	return 0;
}

/* promote|demote LUN */
static int check_role(struct ctl_args *a, int nargs, char **args)
{
	if (nargs != 2)
		return usage_error("%s: expected one LUN", a->command);
	if (a->state || a->has_timeout || a->json)
		return usage_error("%s: only --force and --dry-run apply", a->command);
	a->lun = args[1];
	return 0;
}

/* resolve LUN --discard-local */
static int check_resolve(struct ctl_args *a, int nargs, char **args)
{
	if (nargs != 2)
		return usage_error("resolve: expected one LUN");
	if (!a->discard_local)
		return usage_error("resolve: say --discard-local (this node's changes are dropped)");
	if (a->state || a->has_timeout || a->json || a->force || a->dry_run)
		return usage_error("resolve: only --discard-local applies");
	a->lun = args[1];
	return 0;
}

/* attach|detach LUN */
static int check_attach(struct ctl_args *a, int nargs, char **args)
{
	if (stray_role_options(a) < 0)
		return -1;
	if (nargs != 2)
		return usage_error("%s: expected one LUN", a->command);
	if (a->state || a->has_timeout || a->json)
		return usage_error("%s: no options apply", a->command);
	a->lun = args[1];
	return 0;
}

/* invalidate LUN [--force] | assume-clean LUN | down LUN | up LUN */
static int check_copy_admin(struct ctl_args *a, int nargs, char **args)
{
	bool invalidate = strcmp(a->command, "invalidate") == 0;

	if (nargs != 2)
		return usage_error("%s: expected one LUN", a->command);
	if (a->state || a->has_timeout || a->json || a->dry_run || a->discard_local ||
	    (a->force && !invalidate))
		return usage_error("%s: %s", a->command,
				   invalidate ? "only --force applies" : "no options apply");
	a->lun = args[1];
	return 0;
}

/* verify LUN [--repair] */
static int check_verify(struct ctl_args *a, int nargs, char **args)
{
	if (nargs != 2)
		return usage_error("verify: expected one LUN");
	if (a->state || a->has_timeout || a->json || a->force || a->dry_run || a->discard_local)
		return usage_error("verify: only --repair applies");
	a->lun = args[1];
	return 0;
}

/* SIZE of resize: bytes, or with K, M, G or T (powers of 2), as the
 * config's size=. 0 and *out, or -1. */
static int parse_size(const char *s, unsigned long long *out)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end && !end[1])
		switch (*end) {
		case 'K': case 'k': shift = 10; break;
		case 'M': case 'm': shift = 20; break;
		case 'G': case 'g': shift = 30; break;
		case 'T': case 't': shift = 40; break;
		default: return -1;
		}
	else if (*end)
		return -1;
	if (v > (~0ull >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

/* resize LUN SIZE */
static int check_resize(struct ctl_args *a, int nargs, char **args)
{
	unsigned long long size;

	if (nargs != 3)
		return usage_error("resize: expected a LUN and its new SIZE");
	if (a->state || a->has_timeout || a->json || a->force || a->dry_run || a->discard_local)
		return usage_error("resize: no options apply");
	if (parse_size(args[2], &size) < 0)
		return usage_error("resize: bad SIZE \"%s\" (bytes, or a number with K, M, G or T)",
				   args[2]);
	a->lun = args[1];
	snprintf(a->size, sizeof(a->size), "%llu", size);
	return 0;
}

/* The heartbeat's subcommands: what each sends, and its one argument. */
struct hb_subcommand {
	const char *name;
	enum ipc_cmd ipc;
	const char *arg;  /* NULL: none */
	int (*check_arg)(const char *arg);
};

static int check_hb_path(const char *path)
{
	if (path[0] != '/' || strlen(path) >= IPC_ARG_MAX)
		return usage_error("heartbeat install: \"%s\" is not an absolute path", path);
	return 0;
}

static int check_hb_method(const char *method)
{
	static const char *const methods[] = { "udp", "storage", "both" };
	size_t i;

	for (i = 0; i < 3 && strcmp(method, methods[i]) != 0; i++)
		;
	if (i == 3)
		return usage_error("heartbeat method: unknown method \"%s\" (udp, storage or both)",
				   method);
	return 0;
}

static const struct hb_subcommand hb_subcommands[] = {
	{ "install", IPC_CMD_HB_INSTALL, "PATH", check_hb_path },
	{ "uninstall", IPC_CMD_HB_UNINSTALL, NULL, NULL },
	{ "method", IPC_CMD_HB_METHOD, "METHOD", check_hb_method },
};

/* heartbeat install PATH | uninstall | method METHOD */
static int check_heartbeat(struct ctl_args *a, int nargs, char **args)
{
	const struct hb_subcommand *sub = NULL;
	size_t i;

	if (stray_role_options(a) < 0)
		return -1;
	if (a->state || a->has_timeout || a->json)
		return usage_error("heartbeat: no options apply");
	if (nargs < 2)
		return usage_error("heartbeat: missing install, uninstall or method");
	for (i = 0; i < sizeof(hb_subcommands) / sizeof(hb_subcommands[0]); i++)
		if (strcmp(args[1], hb_subcommands[i].name) == 0)
			sub = &hb_subcommands[i];
	if (!sub)
		return usage_error("heartbeat: unknown subcommand \"%s\"", args[1]);
	a->hb = sub;
	if (!sub->arg && nargs != 2)
		return usage_error("heartbeat %s: unexpected argument \"%s\"", sub->name, args[2]);
	if (!sub->arg)
		return 0;
	if (nargs != 3)
		return usage_error("heartbeat %s: expected one %s", sub->name, sub->arg);
	a->hb_arg = args[2];
	return sub->check_arg(a->hb_arg);
}

/* log-reopen: no arguments, no options */
static int check_no_args(struct ctl_args *a, int nargs, char **args)
{
	if (nargs > 1)
		return usage_error("%s: unexpected argument \"%s\"", a->command, args[1]);
	if (stray_role_options(a) < 0)
		return -1;
	if (a->state || a->has_timeout || a->json)
		return usage_error("%s: no options apply", a->command);
	return 0;
}

/* reload [--dry-run] */
static int check_reload(struct ctl_args *a, int nargs, char **args)
{
	if (nargs > 1)
		return usage_error("reload: unexpected argument \"%s\"", args[1]);
	if (a->state || a->has_timeout || a->json || a->force || a->discard_local)
		return usage_error("reload: only --dry-run applies");
	return 0;
}

/* Positional arguments after the options: COMMAND [ARGS], checked by the
 * command's row. */
static int check_command(struct ctl_args *a, int nargs, char **args)
{
	if (nargs < 1)
		return usage_error("missing command");
	a->command = args[0];
	a->cmd = find_command(a->command);
	if (!a->cmd) {
		if (stray_role_options(a) < 0)
			return -1;
		return usage_error("unknown command \"%s\"", a->command);
	}
	if (a->repair && a->cmd->ipc != IPC_CMD_VERIFY)
		return usage_error("--repair belongs to verify");
	if (a->now && strcmp(a->command, "events") != 0)
		return usage_error("--now belongs to events");
	if (a->get && strcmp(a->command, "status") != 0)
		return usage_error("--get belongs to status");
	return a->cmd->check(a, nargs, args);
}

/* Return 0 to go on, 1 when done (help/version), -1 on a usage error. */
static int parse_args(int argc, char **argv, struct ctl_args *a)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "state", required_argument, NULL, 'S' },
		{ "timeout", required_argument, NULL, 't' },
		{ "force", no_argument, NULL, 'F' },
		{ "dry-run", no_argument, NULL, 'D' },
		{ "discard-local", no_argument, NULL, 'L' },
		{ "repair", no_argument, NULL, 'R' },
		{ "now", no_argument, NULL, 'N' },
		{ "get", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 's': a->service = optarg; break;
		case 'j': a->json = true; break;
		case 'S': a->state = optarg; break;
		case 't':
			if (parse_timeout(optarg, &a->timeout) < 0)
				return usage_error("bad --timeout \"%s\" (seconds, >= 0)", optarg);
			a->has_timeout = true;
			break;
		case 'F': a->force = true; break;
		case 'D': a->dry_run = true; break;
		case 'L': a->discard_local = true; break;
		case 'R': a->repair = true; break;
		case 'N': a->now = true; break;
		case 'G': a->get = optarg; break;
		case 'h': usage(stdout); return 1;
		case 'V': printf("ipmirrorctl (ipmirror) %s\n", PACKAGE_VERSION); return 1;
		case ':':
			return usage_error("option \"%s\" needs an argument", argv[optind - 1]);
		default:
			if (optopt)
				return usage_error("unknown option \"-%c\"", optopt);
			return usage_error("unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (!*a->service || strlen(a->service) > 100)
		return usage_error("bad --socket name \"%s\"", a->service);
	return check_command(a, argc - optind, argv + optind);
}

/* ---- IPC ---------------------------------------------------------------- */

/* The kernel's credentials of the server at listen(): libqb reports uid 0
 * when a reply came without SCM_CREDENTIALS, so its word alone is no proof. */
static int32_t peer_uid(qb_ipcc_connection_t *c, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int32_t fd, rc = qb_ipcc_fd_get(c, &fd);

	if (rc < 0)
		return rc;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	*uid = cred.uid;
	return 0;
}

/* Any local user may claim the service name while the daemon is down: only a
 * root server (the kernel's credentials of its socket) gets our requests. */
static bool server_is_root(qb_ipcc_connection_t *c, const char *service)
{
	pid_t pid = 0;
	uid_t uid = (uid_t)-1, kuid = (uid_t)-1;
	gid_t gid;
	int32_t rc = qb_ipcc_auth_get(c, &pid, &uid, &gid);

	if (rc == 0)
		rc = peer_uid(c, &kuid);
	if (rc == 0 && kuid != uid)
		uid = kuid;
	if (rc == 0 && uid == 0)
		return true;
	if (rc < 0)
		fprintf(stderr, "ipmirrorctl: cannot learn who serves \"%s\": %s\n", service,
			strerror((int)-rc));
	else
		fprintf(stderr, "ipmirrorctl: service \"%s\" is served by pid %ld with uid %u, "
			"not root: not ipmirrord (an impostor?); refusing to talk to it\n",
			service, (long)pid, (unsigned)uid);
	return false;
}

/* NULL with *exit_code set when no root daemon answers on service. */
static qb_ipcc_connection_t *connect_daemon(const char *service, int *exit_code)
{
	qb_ipcc_connection_t *c = qb_ipcc_connect(service, IPC_MAX_MSG);
	int e = errno;

	*exit_code = 1;
	if (c && server_is_root(c, service))
		return c;
	if (c) {
		qb_ipcc_disconnect(c);
		return NULL;
	}
	if (e == EPERM || e == EACCES) {
		fprintf(stderr, "ipmirrorctl: ipmirrord (service \"%s\") refused the connection: "
			"root only (%s)\n", service, strerror(e));
	} else {
		fprintf(stderr, "ipmirrorctl: cannot reach ipmirrord (service \"%s\"): "
			"is the daemon running? (%s)\n", service, strerror(e));
		*exit_code = EXIT_NO_DAEMON;
	}
	return NULL;
}

/* The n bytes of a reply or an event in buf as r (its text NUL-terminated
 * in place): 0, or -EPROTO when they are not one. */
static int reply_decode(char *buf, ssize_t n, struct reply *r)
{
	struct ipc_response *res = (struct ipc_response *)buf;

	if ((size_t)n < sizeof(*res) || res->len > (size_t)n - sizeof(*res))
		return -EPROTO;
	r->status = res->status;
	r->text = buf + sizeof(*res);
	r->len = res->len;
	r->text[r->len] = '\0';
	return 0;
}

/* One request, one reply. A negative errno when the channel failed. */
static int request_arg(qb_ipcc_connection_t *c, enum ipc_cmd cmd, uint32_t flags,
		       const char *lun, const char *arg, char *buf, struct reply *r);

static int request(qb_ipcc_connection_t *c, enum ipc_cmd cmd, uint32_t flags,
		   const char *lun, char *buf, struct reply *r)
{
	return request_arg(c, cmd, flags, lun, NULL, buf, r);
}

static int request_arg(qb_ipcc_connection_t *c, enum ipc_cmd cmd, uint32_t flags,
		       const char *lun, const char *arg, char *buf, struct reply *r)
{
	struct ipc_request req;
	struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
	ssize_t n;

	memset(&req, 0, sizeof(req));
	req.hdr.id = cmd;
	req.hdr.size = sizeof(req);
	req.flags = flags;
	if (lun)
		snprintf(req.lun, sizeof(req.lun), "%s", lun);
	if (arg)
		snprintf(req.arg, sizeof(req.arg), "%s", arg);
	n = qb_ipcc_sendv_recv(c, &iov, 1, buf, IPC_MAX_MSG - 1, REQUEST_TIMEOUT_MS);
	if (n < 0)
		return (int)n;
	return reply_decode(buf, n, r);
}

static int channel_failed(const char *service, int rc)
{
	fprintf(stderr, "ipmirrorctl: lost the connection to ipmirrord (service \"%s\"): %s\n",
		service, strerror(-rc));
	return 1;
}

/* The daemon's error text, or errno's when it sent none. */
static int refused(const struct reply *r)
{
	fprintf(stderr, "ipmirrorctl: %s\n", r->len ? r->text : strerror(-r->status));
	return 1;
}

/* status and wait: an unknown LUN has an exit code of its own. */
static int lun_refused(const struct reply *r)
{
	refused(r);
	return r->status == -ENOENT ? EXIT_NO_LUN : 1;
}

static int cmd_status(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	struct reply r;
	int rc;

	rc = request_arg(c, a->cmd->ipc, a->get ? IPC_F_GET : a->json ? IPC_F_JSON : 0, a->lun,
			 a->get, buf, &r);
	if (rc < 0)
		return channel_failed(a->service, rc);
	if (r.status == -EINVAL && a->get)
		return refused(&r) + 1; /* an unknown key: a usage error */
	if (r.status < 0)
		return lun_refused(&r);
	fwrite(r.text, 1, r.len, stdout);
	return fflush(stdout) == 0 ? 0 : 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts = { .tv_sec = (time_t)s };

	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Subscribe this connection to the daemon's events (IPC_CMD_EVENTS); a
 * daemon that is just starting has no snapshot yet: asked again. 0 done,
 * 1 refused (r says why; -EOPNOTSUPP from an older daemon), < 0 the
 * channel failed (said). */
static int subscribe(qb_ipcc_connection_t *c, const struct ctl_args *a, uint32_t flags,
		     char *buf, struct reply *r)
{
	int rc, tries;

	for (tries = 0; tries < 50; tries++) {
		rc = request(c, IPC_CMD_EVENTS, flags, NULL, buf, r);
		if (rc < 0) {
			channel_failed(a->service, rc);
			return rc;
		}
		if (r->status != -EAGAIN)
			return r->status < 0 ? 1 : 0;
		sleep_s(0.1);
	}
	return 1;
}

/* Wait for the next event for at most ms (< 0: for ever): 1 one came (its
 * text in r), 0 none came in time, < 0 the daemon went. */
static int next_event(qb_ipcc_connection_t *c, char *buf, int ms, struct reply *r)
{
	ssize_t n;
	int rc;

	n = qb_ipcc_event_recv(c, buf, IPC_MAX_MSG - 1, ms < 0 ? 1000 : ms);
	if (n == -ETIMEDOUT || n == -EAGAIN)
		return 0;
	if (n < 0)
		return (int)n;
	rc = reply_decode(buf, n, r);
	return rc < 0 ? rc : 1;
}

/* The LUN's state now: 0 reached, 1 not yet, else an exit code. */
static int wait_check(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf,
		      char *state, size_t len)
{
	struct reply r;
	int rc = request(c, IPC_CMD_LUN_STATE, 0, a->lun, buf, &r);

	if (rc < 0)
		return channel_failed(a->service, rc) + 10;
	if (r.status < 0)
		return lun_refused(&r) + 10;
	snprintf(state, len, "%s", r.text);
	return strcmp(r.text, a->state) == 0 ? 0 : 1;
}

/* Told by the daemon's events when something changed; an older daemon
 * without events is asked every POLL_MS. */
static int cmd_wait(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	double deadline = now_s() + a->timeout, left;
	char state[64] = "";
	bool events;
	struct reply r;
	int rc, ms;

	rc = subscribe(c, a, 0, buf, &r);
	if (rc < 0)
		return 1;
	if (rc == 1 && r.status != -EOPNOTSUPP)
		return refused(&r);
	events = rc == 0;
	for (;;) {
		rc = wait_check(c, a, buf, state, sizeof(state));
		if (rc != 1)
			return rc >= 10 ? rc - 10 : rc;
		left = deadline - now_s();
		if (a->has_timeout && left <= 0) {
			fprintf(stderr, "ipmirrorctl: timeout after %g s: lun \"%s\" is %s, not %s\n",
				a->timeout, a->lun, state, a->state);
			return 1;
		}
		/* the events say when to look again; a look every WAIT_RECHECK_MS
		 * all the same is only a safety net */
		ms = a->has_timeout && left < WAIT_RECHECK_MS / 1000.0 ? (int)(left * 1000) + 1 :
		     WAIT_RECHECK_MS;
		if (!events) {
			sleep_s(ms < POLL_MS ? ms / 1000.0 : POLL_MS / 1000.0);
			continue;
		}
		/* drain what came meanwhile: one state check covers them all */
		while ((rc = next_event(c, buf, ms, &r)) == 1)
			ms = 0;
		if (rc < 0)
			return channel_failed(a->service, rc);
	}
}

/* events [--json] [--now]: print each line as it comes, until the daemon
 * goes (exit 1), --timeout passes (exit 0) or a signal. */
static int cmd_events(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	uint32_t flags = (a->json ? IPC_F_JSON : 0) | (a->now ? IPC_F_NOW : 0);
	double deadline = now_s() + a->timeout, left;
	struct reply r;
	int rc, ms;

	rc = subscribe(c, a, flags, buf, &r);
	if (rc != 0)
		return rc > 0 ? refused(&r) : 1;
	for (;;) {
		left = deadline - now_s();
		if (a->has_timeout && left <= 0)
			return 0;
		ms = a->has_timeout && left < 1.0 ? (int)(left * 1000) + 1 : 1000;
		rc = next_event(c, buf, ms, &r);
		if (rc < 0) {
			fprintf(stderr, "ipmirrorctl: the daemon closed the event stream: %s\n",
				strerror(-rc));
			return 1;
		}
		if (rc == 1 && (fwrite(r.text, 1, r.len, stdout) != r.len || fflush(stdout)))
			return 1;
	}
}

/* Print what the daemon did, or say why it refused (exit 1). */
static int answered(const struct ctl_args *a, int rc, const struct reply *r)
{
	if (rc < 0)
		return channel_failed(a->service, rc);
	if (r->status < 0)
		return refused(r);
	if (r->len)
		printf("%s\n", r->text);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* The daemon decides; it answers with what it did or why it refused. */
static int cmd_role(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	uint32_t flags = (a->force ? IPC_F_FORCE : 0) | (a->dry_run ? IPC_F_DRY_RUN : 0);
	struct reply r;
	int rc;

	rc = request(c, a->cmd->ipc, flags, a->lun, buf, &r);
	return answered(a, rc, &r);
}

static int cmd_resolve(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	struct reply r;
	int rc;

	rc = request(c, a->cmd->ipc, IPC_F_DISCARD_LOCAL, a->lun, buf, &r);
	return answered(a, rc, &r);
}

static int cmd_copy_admin(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	struct reply r;
	int rc;

	rc = request(c, a->cmd->ipc, a->force ? IPC_F_FORCE : 0, a->lun, buf, &r);
	return answered(a, rc, &r);
}

static int cmd_verify(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	struct reply r;
	int rc;

	rc = request(c, IPC_CMD_VERIFY, a->repair ? IPC_F_REPAIR : 0, a->lun, buf, &r);
	return answered(a, rc, &r);
}

static int cmd_resize(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	struct reply r;
	int rc;

	rc = request_arg(c, IPC_CMD_RESIZE, 0, a->lun, a->size, buf, &r);
	return answered(a, rc, &r);
}

static int cmd_heartbeat(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	struct reply r;
	int rc;

	rc = request_arg(c, a->hb->ipc, 0, NULL, a->hb_arg, buf, &r);
	return answered(a, rc, &r);
}

/* The daemon's lines (changes, or refusals with FILE:LINE), then its
 * summary; refused: all of it on stderr, exit 1. */
static int cmd_reload(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	struct reply r;
	int rc;

	rc = request(c, a->cmd->ipc, a->dry_run ? IPC_F_DRY_RUN : 0, NULL, buf, &r);
	return answered(a, rc, &r);
}

static int cmd_simple(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	struct reply r;
	int rc;

	rc = request(c, a->cmd->ipc, 0, NULL, buf, &r);
	return answered(a, rc, &r);
}

/* attach|detach: ipmirror-attach does it (the OCF agent ocf:ipmirror:attach
 * runs the same program), told which daemon and which ipmirrorctl to ask;
 * detach needs no daemon (it also cleans up after a crashed one).
 * IPMIRROR_ATTACH_HELPER names another program (an uninstalled tree). */
static int cmd_attach(qb_ipcc_connection_t *c, const struct ctl_args *a, char *buf)
{
	const char *helper = getenv("IPMIRROR_ATTACH_HELPER");
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (!helper || !*helper)
		helper = IPM_SBINDIR "/ipmirror-attach";
	if (n <= 0)
		snprintf(self, sizeof(self), "ipmirrorctl");
	else
		self[n] = '\0';
	fflush(stdout);
	execl(helper, "ipmirror-attach", "--socket", a->service, "--ipmirrorctl", self,
	      a->command, a->lun, (char *)NULL);
	fprintf(stderr, "ipmirrorctl: cannot run %s: %s\n", helper, strerror(errno));
	return 1;
}

/* ---- the commands -------------------------------------------------------- */

static const struct ctl_command commands[] = {
	{ "status", check_status, cmd_status, IPC_CMD_STATUS,
	  "  status [LUN] [--json]                      node, peer, LUNs and connections\n"
	  "  status [LUN] --get KEY[,KEY...]            plain values, one a line (role,state...)\n" },
	{ "wait", check_wait, cmd_wait, IPC_CMD_LUN_STATE,
	  "  wait LUN --state STATE [--timeout SECONDS] until LUN is in STATE\n" },
	{ "events", check_events, cmd_events, IPC_CMD_EVENTS,
	  "  events [--json] [--now] [--timeout SECONDS] one line per change as it happens\n"
	  "                                             (--now: the current state first)\n" },
	{ "promote", check_role, cmd_role, IPC_CMD_PROMOTE,
	  "  promote LUN [--force] [--dry-run]          make this node LUN's primary\n" },
	{ "demote", check_role, cmd_role, IPC_CMD_DEMOTE,
	  "  demote LUN [--force] [--dry-run]           make this node LUN's mirror\n" },
	{ "invalidate", check_copy_admin, cmd_copy_admin, IPC_CMD_INVALIDATE,
	  "  invalidate LUN [--force]                   this node's copy is bad: copy it whole\n"
	  "                                             from the peer (inconsistent meanwhile)\n" },
	{ "assume-clean", check_copy_admin, cmd_copy_admin, IPC_CMD_ASSUME_CLEAN,
	  "  assume-clean LUN                           a new LUN's copies are equal: skip the\n"
	  "                                             initial sync (on the mirror; logged)\n" },
	{ "verify", check_verify, cmd_verify, IPC_CMD_VERIFY,
	  "  verify LUN [--repair]                      compare both copies online (on the\n"
	  "                                             primary; progress in status); --repair\n"
	  "                                             copies differing blocks from it\n" },
	{ "resize", check_resize, cmd_resize, IPC_CMD_RESIZE,
	  "  resize LUN SIZE                            grow LUN online on both nodes (on the\n"
	  "                                             primary, after growing both backings;\n"
	  "                                             SIZE in bytes or with K, M, G, T)\n" },
	{ "down", check_copy_admin, cmd_copy_admin, IPC_CMD_DOWN,
	  "  down LUN                                   take LUN out of service here alone:\n"
	  "                                             clients disconnected, files closed,\n"
	  "                                             state kept (status: down)\n" },
	{ "up", check_copy_admin, cmd_copy_admin, IPC_CMD_UP,
	  "  up LUN                                     back into service, resynced as needed\n" },
	{ "heartbeat", check_heartbeat, cmd_heartbeat, 0,
	  "  heartbeat install PATH                     add the storage-path heartbeat volume\n"
	  "  heartbeat uninstall                        remove it\n"
	  "  heartbeat method udp|storage|both          which heartbeats decide the peer is down\n" },
	{ "resolve", check_resolve, cmd_resolve, IPC_CMD_RESOLVE,
	  "  resolve LUN --discard-local                end a split brain: drop this node's\n"
	  "                                             changes, copy the LUN from the primary\n" },
	{ "reload", check_reload, cmd_reload, IPC_CMD_RELOAD,
	  "  reload [--dry-run]                         read the config file again, apply what\n"
	  "                                             can change live (--dry-run: only show it)\n" },
	{ "log-reopen", check_no_args, cmd_simple, IPC_CMD_LOG_REOPEN,
	  "  log-reopen                                 reopen the log file (after logrotate)\n" },
	{ "attach", check_attach, cmd_attach, 0,
	  "  attach LUN                                 LUN as block device /dev/ipmirror/LUN here\n" },
	{ "detach", check_attach, cmd_attach, 0,
	  "  detach LUN                                 remove it (and what a crash left)\n" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct ctl_command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < N_COMMANDS; i++)
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: ipmirrorctl [--socket NAME] COMMAND [ARGS]\n"
		   "commands:\n");
	for (i = 0; i < N_COMMANDS; i++)
		fputs(commands[i].help, f);
	fprintf(f,
		"    (refused when unsafe; --force overrides and is logged)\n"
		"options:\n"
		"  -s, --socket NAME   IPC service name of ipmirrord (default %s)\n"
		"  -h, --help          this text\n"
		"  -V, --version       program version\n"
		"states: uptodate journaling probation resyncing outdated inconsistent splitbrain\n"
		"exit: 0 ok, 1 refused or failed, 2 usage error, 3 the daemon does not answer,\n"
		"      4 no such LUN (status, wait)\n",
		IPC_DEFAULT_SERVICE);
}

int main(int argc, char **argv)
{
	struct ctl_args a = { .service = IPC_DEFAULT_SERVICE, .timeout = -1 };
	qb_ipcc_connection_t *c;
	char *buf;
	int rc;

	rc = parse_args(argc, argv, &a);
	if (rc)
		return rc > 0 ? 0 : EXIT_USAGE;
	if (a.cmd->run == cmd_attach) /* its own program asks the daemon, if at all */
		return cmd_attach(NULL, &a, NULL);
	buf = malloc(IPC_MAX_MSG);
	if (!buf) {
		fprintf(stderr, "ipmirrorctl: out of memory\n");
		return 1;
	}
	c = connect_daemon(a.service, &rc);
	if (!c) {
		free(buf);
		return rc;
	}
	rc = a.cmd->run(c, &a, buf);
	qb_ipcc_disconnect(c);
	free(buf);
	return rc;
}
