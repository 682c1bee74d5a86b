/* service.h - ipmirrord under a service manager: systemd's notify protocol
 * (READY, STATUS, STOPPING, WATCHDOG) and the watchdog thread that pings
 * only while the I/O path is healthy (doc/systemd.md). */
#ifndef IPM_SERVICE_H
#define IPM_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "nbd/server.h"

struct service;

/* Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID and remove them from
 * the environment (the daemon's children are not the service). Call before
 * any thread starts. *out is NULL-safe to use: without a manager every call
 * below does nothing. */
int service_init(struct service **out, ipm_error *err);
/* One notify datagram ("READY=1\nSTATUS=..."); 0 when there is no manager. */
int service_notify(struct service *sv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The watchdog thread over nbd: STATUS lines on change and, with
 * $WATCHDOG_USEC, WATCHDOG=1 every half interval while healthy. */
int service_watch(struct service *sv, struct nbd_server *nbd, ipm_error *err);
/* Stop the thread (before the NBD server goes away). */
void service_unwatch(struct service *sv);
void service_free(struct service *sv);

/* The verdict of one watchdog round (pure, unit-testable): healthy, or
 * false with the reason in why. status_rc is the engine status query's;
 * limit_ms the longest a request may execute. */
bool service_io_healthy(const struct nbd_health *h, int status_rc, int64_t limit_ms,
			char *why, size_t why_len);

#endif /* IPM_SERVICE_H */
