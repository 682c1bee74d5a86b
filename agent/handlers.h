/* handlers.h - the <handlers> programs (doc/events.md): run for the
 * events the change stream (events.c) detects, one at a time in a thread
 * of their own with a time limit, so that neither the stream nor any I/O
 * waits for them. Their environment names the event, the LUN, this node,
 * the peer and the state; a failure (exit status not 0, killed at the
 * time limit, cannot run) is logged at warning level. */
#ifndef IPM_HANDLERS_H
#define IPM_HANDLERS_H

#include "events.h"
#include "ipmirror.h"

#define HANDLERS_QUEUE_MAX 64 /* events waiting beyond it are dropped (logged) */

struct handlers;

/* *out NULL (and 0) when cfg configures no handler. */
int handlers_start(const ipm_config *cfg, const char *node, struct handlers **out,
		   ipm_error *err);
/* Let the running handler finish (or its time limit pass), drop the rest. */
void handlers_stop(struct handlers *h);
/* The events sink (events_handler_fn): queue the item's handler, if set. */
void handlers_fire(void *h, const struct ev_item *it, const ipm_status *st);
/* Runs so far, failed ones included (tests). */
unsigned handlers_runs(struct handlers *h);

#endif
