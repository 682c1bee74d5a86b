/* ipc_proto.h - the admin protocol between ipmirrorctl and ipmirrord over
 * libqb IPC. Both programs are built from the same tree, so the layout is
 * shared by this header rather than versioned; an unknown command id is
 * answered with -EOPNOTSUPP.
 *
 * Request:  struct ipc_request (fixed size), hdr.id = enum ipc_cmd.
 * Response: struct ipc_response followed by `len` bytes of text (no NUL):
 *           the rendered status, a state name, or an error message when
 *           status < 0 (a negative errno).
 */
#ifndef IPM_IPC_PROTO_H
#define IPM_IPC_PROTO_H

#include <stdint.h>
#include <qb/qbipc_common.h>

#define IPC_DEFAULT_SERVICE "ipmirror"
/* Largest message either way; the client connects with this buffer size. */
#define IPC_MAX_MSG (1024 * 1024)
#define IPC_LUN_MAX 64 /* = IPM_NAME_MAX, NUL included */
#define IPC_ARG_MAX 4096 /* a path, NUL included */

enum ipc_cmd {
	IPC_CMD_STATUS = 1,    /* text: the status table or JSON */
	IPC_CMD_LUN_STATE = 2, /* text: the state name of one LUN */
	IPC_CMD_PROMOTE = 3,   /* text: what was done, or why it was refused */
	IPC_CMD_DEMOTE = 4,
	IPC_CMD_HB_INSTALL = 5,   /* arg: heartbeat volume path; text: done / why not */
	IPC_CMD_HB_UNINSTALL = 6,
	IPC_CMD_HB_METHOD = 7,    /* arg: udp|storage|both */
	IPC_CMD_RESOLVE = 8,      /* lun; flags IPC_F_DISCARD_LOCAL; text: done / why not */
	IPC_CMD_LOG_REOPEN = 9,   /* text: the log file reopened, or that there is none */
	IPC_CMD_INVALIDATE = 10,  /* lun; flags IPC_F_FORCE; text: done / why not */
	IPC_CMD_ASSUME_CLEAN = 11, /* lun; text: done / why not */
	IPC_CMD_DOWN = 12,        /* lun: out of service here; text: done / why not */
	IPC_CMD_UP = 13,          /* lun: back into service here; text: done / why not */
	IPC_CMD_RELOAD = 20,      /* flags IPC_F_DRY_RUN; text: one line per change */
	IPC_CMD_VERIFY = 24,      /* lun; flags IPC_F_REPAIR; text: started / why not */
	IPC_CMD_RESIZE = 25,      /* lun; arg: the new size in bytes (decimal);
				   * text: done / why not */
	/* events: flags IPC_F_JSON, IPC_F_NOW; the reply says whether the
	 * connection is subscribed; then each change comes as a libqb event,
	 * a struct ipc_response (hdr.id IPC_CMD_EVENTS) and one line of text */
	IPC_CMD_EVENTS = 30,
};

enum ipc_flags {
	IPC_F_JSON = 1 << 0,    /* IPC_CMD_STATUS: JSON instead of the table */
	IPC_F_FORCE = 1 << 1,   /* PROMOTE/DEMOTE/INVALIDATE: even when unsafe (logged) */
	IPC_F_DRY_RUN = 1 << 2, /* PROMOTE/DEMOTE: only check whether allowed;
				 * RELOAD: only say what would change */
	IPC_F_DISCARD_LOCAL = 1 << 3, /* RESOLVE: this node's changes are dropped */
	IPC_F_REPAIR = 1 << 8,  /* VERIFY: copy the differing blocks from the primary */
	IPC_F_NOW = 1 << 9,     /* EVENTS: the current state first */
	IPC_F_GET = 1 << 10,    /* STATUS: arg "key,key": their plain values, one a line */
};

struct ipc_request {
	struct qb_ipc_request_header hdr;
	uint32_t flags;
	char lun[IPC_LUN_MAX]; /* "" = all LUNs (STATUS only) */
	char arg[IPC_ARG_MAX]; /* HB_INSTALL: path; HB_METHOD: method name;
				* STATUS with IPC_F_GET: the keys;
				* RESIZE: the size in bytes */
} __attribute__((aligned(8)));

struct ipc_response {
	struct qb_ipc_response_header hdr;
	int32_t status;
	uint32_t len;
	/* followed by len bytes of text */
} __attribute__((aligned(8)));

#define IPC_MAX_TEXT (IPC_MAX_MSG - sizeof(struct ipc_response))

#endif /* IPM_IPC_PROTO_H */
