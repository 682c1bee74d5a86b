/* metrics.h - ipmirrord's Prometheus exporter: GET /metrics on the node's
 * <metrics address port/> (doc/metrics.md), rendered from the latest status
 * snapshot the attributes poller hands over, never from the engine itself,
 * so a scrape cannot hold up host I/O. */
#ifndef IPM_METRICS_H
#define IPM_METRICS_H

#include <stdint.h>
#include "ipmirror.h"
#include "status_render.h"

struct metrics;

/* Listen on address:port and start the server thread. version goes into
 * ipmirror_build_info. 0, or a negative errno with the reason in err. */
int metrics_start(const char *address, uint16_t port, const char *version,
		  struct metrics **out, ipm_error *err);
/* Keep a copy of st for the next scrapes (any thread). m NULL: nothing. */
void metrics_update(struct metrics *m, const ipm_status *st);
/* Stop the thread, close the socket, free m. NULL is fine. */
void metrics_stop(struct metrics *m);

/* The exposition text (format 0.0.4) of st (NULL: only build info) taken
 * at_ms ago: pure, for the server and tests. */
void metrics_render(struct strbuf *sb, const ipm_status *st, int64_t at_ms,
		    const char *version);

#endif
