/* verify_serve.h - the mirror's side of an online verify (doc/verify.md). */
#ifndef IPM_VERIFY_SERVE_H
#define IPM_VERIFY_SERVE_H

#include <stddef.h>
#include "auth.h"
#include "wire.h"

struct ipm_lun;

/* A VERIFY ordered after every request before it (the receiver applies it
 * like a write): read its range of the local copy and digest it. *msg (the
 * request's nonce on entry, freed) becomes the whole VERIFY_REPLY to send,
 * header and digests, or NULL when out of memory (answer with an ACK of
 * the status then). Returns 0 or the local read's -errno (the reply says
 * it too). */
int verify_serve(struct ipm_lun *l, const struct auth_secret *s, const struct wire_frame *f,
		 void **msg);
/* The length of a message verify_serve made. */
size_t verify_reply_len(const void *msg);

#endif
