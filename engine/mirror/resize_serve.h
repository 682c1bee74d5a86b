/* resize_serve.h - the mirror's side of an online grow (doc/resize.md). */
#ifndef IPM_RESIZE_SERVE_H
#define IPM_RESIZE_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include "wire.h"

struct ipm_lun;

/* A RESIZE ordered after every request before it (the receiver applies it
 * in order): grow l to the size in *msg (its payload on entry, freed) if
 * this node's backing holds it. *msg becomes the RESIZE_REPLY to send
 * (the status, this backing's size), or NULL when out of memory (answer
 * with an ACK of the status then). Returns 0 or -errno. */
int resize_serve(struct ipm_lun *l, const struct wire_frame *f, void **msg);

/* A handshake announces size for l, more than ours: the primary grew it
 * and we missed its RESIZE (it crashed, or the link broke before our
 * answer). Grow here if the backing holds it: 0, else -errno and the
 * reason (naming the backing) in reason. */
int resize_at_handshake(struct ipm_lun *l, uint64_t size, char *reason, size_t len);

#endif
