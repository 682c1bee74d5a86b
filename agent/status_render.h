/* status_render.h - ipm_status as JSON (for scripts, keys fixed by
 * doc/ipmirrorctl.8) or as a human table. Pure functions over a growable
 * buffer so they can be tested without a daemon. */
#ifndef IPM_STATUS_RENDER_H
#define IPM_STATUS_RENDER_H

#include <stddef.h>
#include "ipmirror.h"

/* A growable NUL-terminated string. After an allocation failure every
 * further append is a no-op and err stays -ENOMEM. */
struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
	int err;
};

#define STRBUF_INIT { NULL, 0, 0, 0 }

void sb_free(struct strbuf *sb);
void sb_printf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* s as a quoted JSON string literal (escapes ", \ and control bytes) */
void sb_json_string(struct strbuf *sb, const char *s);

/* NULL when st has no LUN of that name */
const ipm_lun_status *status_find_lun(const ipm_status *st, const char *name);

/* Append st to out. lun NULL or "" = every LUN, else only that one.
 * Return 0, -ENOENT when lun is not in st (out untouched), -ENOMEM. */
int status_render_json(const ipm_status *st, const char *lun, struct strbuf *out);
/* The JSON's schema version ("schema"): raised when a key changes its
 * meaning or goes away, not when one is added. */
#define STATUS_SCHEMA 1

/* keys "role,state": each one's plain value on a line of its own (node
 * keys: node peer heartbeat udp storage schema; LUN keys as in the JSON,
 * with lun). -ENOENT unknown lun; -EINVAL with out saying which key is
 * unknown. */
int status_render_get(const ipm_status *st, const char *lun, const char *keys,
		      struct strbuf *out);
int status_render_text(const ipm_status *st, const char *lun, struct strbuf *out);

#endif /* IPM_STATUS_RENDER_H */
