/* read_serve.h - the mirror's answer to a READ: its copy's bytes for a
 * primary whose own backing failed a read (doc/io-errors.md). */
#ifndef IPM_READ_SERVE_H
#define IPM_READ_SERVE_H

#include <stddef.h>
#include "wire.h"

struct ipm_lun;

/* A READ ordered after every request before it (the receiver applies it
 * in order). *msg (NULL on entry) becomes the whole READ_REPLY to send,
 * header and bytes (or header and errno), or stays NULL when out of
 * memory (answer with an ACK of the status). Returns 0 or -errno. */
int read_serve(struct ipm_lun *l, const struct wire_frame *f, void **msg);

#endif
