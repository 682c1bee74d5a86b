/* wire.c - encoders and decoders of the mirror protocol (layouts: doc/wire.md).
 *
 * Decoders trust nothing: every length, count, name and enum is checked
 * before the caller sees it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine.h"
#include "wire.h"
#include "endian.h"

#define HELLO_LEN (2 * WIRE_NAME_LEN + 4 + WIRE_NONCE_LEN)
#define HELLO_V5_LEN (HELLO_LEN + 8)          /* + version_min, version_max, tls, 3 zero */
#define CHALLENGE_LEN (WIRE_NAME_LEN + WIRE_NONCE_LEN + WIRE_MAC_LEN)
#define CHALLENGE_V5_LEN (CHALLENGE_LEN + 8)
#define AUTH_FIXED_LEN (WIRE_MAC_LEN + 8 + 8 + 4 + 4)
#define AUTH_LUN_LEN (WIRE_NAME_LEN + 8 + 8 + 1 + 1 + 6 + 8 * WIRE_GEN_HISTORY)
#define WELCOME_LEN (4 + WIRE_MSG_LEN + 8) /* to n_luns */

_Static_assert(AUTH_FIXED_LEN + WIRE_MAX_LUNS * AUTH_LUN_LEN <= WIRE_HS_MAX_BODY,
	       "the largest AUTH must fit a handshake body");

/* ---- byte order ------------------------------------------------------------ */

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t len)
{
	memcpy(p, src, len);
	return p + len;
}

/* A name as a NUL-padded field; always NUL-terminated on the wire. */
static uint8_t *put_name(uint8_t *p, const char *name, size_t field)
{
	size_t n = strnlen(name, field - 1);

	memcpy(p, name, n);
	memset(p + n, 0, field - n);
	return p + field;
}

/* Copy a text field, refusing one without a NUL inside it. */
static bool is_control(uint8_t c)
{
	return c < 0x20 || c == 0x7f;
}

/* A name from the peer goes into our log lines: a control character in it
 * (a newline forging a line, a terminal escape) refuses the message. */
static int get_text(const uint8_t *p, size_t field, char *out, bool allow_empty,
		    const char *what, ipm_error *err)
{
	size_t i, n = strnlen((const char *)p, field);

	if (n == field)
		return ipm_fail(err, -EPROTO, "%s is not NUL-terminated within %zu bytes",
				what, field);
	if (n == 0 && !allow_empty)
		return ipm_fail(err, -EPROTO, "%s is empty", what);
	for (i = 0; i < n; i++)
		if (is_control(p[i]))
			return ipm_fail(err, -EPROTO, "%s has a control character at byte %zu",
					what, i);
	memcpy(out, p, n);
	memset(out + n, 0, field - n);
	return 0;
}

/* The peer's reason text is logged as it came, less its control characters. */
static int get_message(const uint8_t *p, size_t field, char *out, const char *what,
		       ipm_error *err)
{
	size_t i, n = strnlen((const char *)p, field);

	if (n == field)
		return ipm_fail(err, -EPROTO, "%s is not NUL-terminated within %zu bytes",
				what, field);
	for (i = 0; i < n; i++)
		out[i] = is_control(p[i]) ? '?' : (char)p[i];
	memset(out + n, 0, field - n);
	return 0;
}

static int check_len(size_t len, size_t want, const char *what, ipm_error *err)
{
	if (len != want)
		return ipm_fail(err, -EPROTO, "%s body is %zu bytes, expected %zu", what, len,
				want);
	return 0;
}

/* ---- handshake ------------------------------------------------------------- */

static const char *hs_type_name(unsigned type)
{
	static const char *const names[] = {
		[WIRE_HELLO] = "HELLO", [WIRE_CHALLENGE] = "CHALLENGE",
		[WIRE_AUTH] = "AUTH", [WIRE_WELCOME] = "WELCOME",
	};

	return type < sizeof(names) / sizeof(names[0]) && names[type] ? names[type] : "unknown";
}

uint16_t wire_version_max(void)
{
	static int max;
	const char *env;

	if (!__atomic_load_n(&max, __ATOMIC_RELAXED)) {
		env = getenv("IPM_WIRE_VERSION_MAX");
		/* 4 or 5: behave as the release that spoke it */
		__atomic_store_n(&max, env && atoi(env) >= WIRE_VERSION_MIN &&
				 atoi(env) < WIRE_VERSION_MAX ? atoi(env) : WIRE_VERSION_MAX,
				 __ATOMIC_RELAXED);
	}
	return (uint16_t)max;
}

size_t wire_hs_hdr_encode(uint8_t *buf, uint16_t type, uint32_t body_len)
{
	return wire_hs_hdr_encode_v(buf, wire_version_max(), type, body_len);
}

size_t wire_hs_hdr_encode_v(uint8_t *buf, uint16_t version, uint16_t type, uint32_t body_len)
{
	uint8_t *p = buf;

	p = be_put32(p, WIRE_HELLO_MAGIC);
	p = be_put16(p, version);
	p = be_put16(p, type);
	p = be_put32(p, body_len);
	return (size_t)(p - buf);
}

/* expect_type 0 accepts any handshake type (a peer may answer with WELCOME
 * to refuse early). */
int wire_hs_hdr_decode(const uint8_t *buf, uint16_t expect_type, struct wire_hs_hdr *h,
		       ipm_error *err)
{
	h->magic = be_get32(buf);
	h->version = be_get16(buf + 4);
	h->type = be_get16(buf + 6);
	h->len = be_get32(buf + 8);
	if (h->magic != WIRE_HELLO_MAGIC)
		return ipm_fail(err, -EPROTO, "bad handshake magic 0x%08x", h->magic);
	/* a later version's HELLO starts with version 5's: we can pick ours.
	 * As the previous release, only its version 4. */
	if (h->version < WIRE_VERSION_MIN ||
	    (h->version > wire_version_max() &&
	     (h->type != WIRE_HELLO || wire_version_max() < 5))) {
		if (wire_version_max() == WIRE_VERSION_MIN)
			return ipm_fail(err, -EPROTO, "peer speaks protocol version %u, we speak %d",
					h->version, WIRE_VERSION_MIN);
		return ipm_fail(err, -EPROTO, "peer speaks protocol version %u, we speak %d to %u",
				h->version, WIRE_VERSION_MIN, wire_version_max());
	}
	if (h->type < WIRE_HELLO || h->type > WIRE_WELCOME)
		return ipm_fail(err, -EPROTO, "unknown handshake message type %u", h->type);
	if (expect_type && h->type != expect_type)
		return ipm_fail(err, -EPROTO, "expected handshake message %s, got %s",
				hs_type_name(expect_type), hs_type_name(h->type));
	if (h->len > WIRE_HS_MAX_BODY)
		return ipm_fail(err, -EMSGSIZE, "handshake body %u bytes exceeds limit %d",
				h->len, WIRE_HS_MAX_BODY);
	return 0;
}

/* Version 5's tail of HELLO and CHALLENGE: the range and the TLS mode. */
static uint8_t *put_v5_tail(uint8_t *p, uint16_t min, uint16_t max, uint8_t tls)
{
	p = be_put16(p, min);
	p = be_put16(p, max);
	*p++ = tls;
	memset(p, 0, 3);
	return p + 3;
}

static int get_tls_mode(const uint8_t *p, uint8_t *tls, const char *what, ipm_error *err)
{
	if (p[0] > IPM_TLS_X509)
		return ipm_fail(err, -EPROTO, "%s: unknown TLS mode %u", what, p[0]);
	if (p[1] || p[2] || p[3])
		return ipm_fail(err, -EPROTO, "%s: reserved bytes are not zero", what);
	*tls = p[0];
	return 0;
}

size_t wire_hello_encode(uint8_t *buf, const struct wire_hello *m)
{
	uint8_t *p = buf;

	p = put_name(p, m->from, WIRE_NAME_LEN);
	p = put_name(p, m->to, WIRE_NAME_LEN);
	p = be_put16(p, m->conn_index);
	p = be_put16(p, m->conn_count);
	p = put_bytes(p, m->nonce, WIRE_NONCE_LEN);
	if (m->version_max >= 5)
		p = put_v5_tail(p, m->version_min, m->version_max, m->tls);
	return (size_t)(p - buf);
}

/* A version range as announced: min <= max, and version 4 on. */
static int check_range(uint16_t min, uint16_t max, const char *what, ipm_error *err)
{
	if (min < WIRE_VERSION_MIN || min > max || max < 5)
		return ipm_fail(err, -EPROTO, "%s announces versions %u to %u", what, min, max);
	return 0;
}

int wire_hello_decode(const uint8_t *buf, size_t len, struct wire_hello *m, ipm_error *err)
{
	const uint8_t *p = buf;
	int rc;

	m->version_min = m->version_max = 0;
	m->tls = IPM_TLS_OFF;
	if (len == HELLO_V5_LEN) {
		m->version_min = be_get16(buf + HELLO_LEN);
		m->version_max = be_get16(buf + HELLO_LEN + 2);
		rc = check_range(m->version_min, m->version_max, "HELLO", err);
		if (rc == 0)
			rc = get_tls_mode(buf + HELLO_LEN + 4, &m->tls, "HELLO", err);
		if (rc < 0)
			return rc;
	} else {
		rc = check_len(len, HELLO_LEN, "HELLO", err);
		if (rc < 0)
			return rc;
	}
	rc = get_text(p, WIRE_NAME_LEN, m->from, false, "HELLO sender name", err);
	if (rc < 0)
		return rc;
	p += WIRE_NAME_LEN;
	rc = get_text(p, WIRE_NAME_LEN, m->to, false, "HELLO receiver name", err);
	if (rc < 0)
		return rc;
	p += WIRE_NAME_LEN;
	m->conn_index = be_get16(p);
	m->conn_count = be_get16(p + 2);
	p += 4;
	memcpy(m->nonce, p, WIRE_NONCE_LEN);
	if (m->conn_count == 0 || m->conn_index >= m->conn_count)
		return ipm_fail(err, -EINVAL, "HELLO connection index %u of %u", m->conn_index,
				m->conn_count);
	return 0;
}

size_t wire_challenge_encode(uint8_t *buf, const struct wire_challenge *m)
{
	uint8_t *p = buf;

	p = put_name(p, m->from, WIRE_NAME_LEN);
	p = put_bytes(p, m->nonce, WIRE_NONCE_LEN);
	p = put_bytes(p, m->mac, WIRE_MAC_LEN);
	if (m->version_max >= 5)
		p = put_v5_tail(p, m->version_min, m->version_max, m->tls);
	return (size_t)(p - buf);
}

int wire_challenge_decode(const uint8_t *buf, size_t len, struct wire_challenge *m,
			  ipm_error *err)
{
	int rc;

	m->version_min = m->version_max = 0;
	m->tls = IPM_TLS_OFF;
	if (len == CHALLENGE_V5_LEN) {
		m->version_min = be_get16(buf + CHALLENGE_LEN);
		m->version_max = be_get16(buf + CHALLENGE_LEN + 2);
		rc = check_range(m->version_min, m->version_max, "CHALLENGE", err);
		if (rc == 0)
			rc = get_tls_mode(buf + CHALLENGE_LEN + 4, &m->tls, "CHALLENGE", err);
		if (rc < 0)
			return rc;
	} else {
		rc = check_len(len, CHALLENGE_LEN, "CHALLENGE", err);
		if (rc < 0)
			return rc;
	}
	rc = get_text(buf, WIRE_NAME_LEN, m->from, false, "CHALLENGE sender name", err);
	if (rc < 0)
		return rc;
	memcpy(m->nonce, buf + WIRE_NAME_LEN, WIRE_NONCE_LEN);
	memcpy(m->mac, buf + WIRE_NAME_LEN + WIRE_NONCE_LEN, WIRE_MAC_LEN);
	return 0;
}

/* n_luns beyond WIRE_MAX_LUNS are not encoded (callers check first). */
size_t wire_auth_encode(uint8_t *buf, const struct wire_auth *m)
{
	uint32_t i, n = m->n_luns < WIRE_MAX_LUNS ? m->n_luns : WIRE_MAX_LUNS;
	uint8_t *p = buf;
	int k;

	p = put_bytes(p, m->mac, WIRE_MAC_LEN);
	p = be_put64(p, m->session);
	p = be_put64(p, m->base_seq);
	p = be_put32(p, m->window);
	p = be_put32(p, n);
	for (i = 0; i < n; i++) {
		const struct wire_lun *l = &m->luns[i];

		p = put_name(p, l->name, WIRE_NAME_LEN);
		p = be_put64(p, l->size);
		p = be_put64(p, l->generation);
		*p++ = l->mode;
		*p++ = l->n_history;
		memset(p, 0, 6);	/* reserved; version 5: the id first */
		if (m->version >= 5)
			be_put16(p, l->id);
		p += 6;
		for (k = 0; k < WIRE_GEN_HISTORY; k++)
			p = be_put64(p, k < l->n_history ? l->history[k] : 0);
	}
	return (size_t)(p - buf);
}

static int lun_decode(const uint8_t *p, uint32_t i, uint16_t version, struct wire_lun *l,
		      ipm_error *err)
{
	char what[48];
	int rc, k;

	snprintf(what, sizeof(what), "AUTH lun %u name", i);
	rc = get_text(p, WIRE_NAME_LEN, l->name, false, what, err);
	if (rc < 0)
		return rc;
	p += WIRE_NAME_LEN;
	l->size = be_get64(p);
	l->generation = be_get64(p + 8);
	l->mode = p[16];
	l->n_history = p[17];
	l->id = version >= 5 ? be_get16(p + 18) : (uint16_t)i;
	if (l->id >= WIRE_MAX_LUNS)
		return ipm_fail(err, -EINVAL, "AUTH lun %u: id %u, limit %d", i, l->id,
				WIRE_MAX_LUNS - 1);
	for (k = version >= 5 ? 20 : 18; k < 24; k++)
		if (p[k])
			return ipm_fail(err, -EPROTO, "AUTH lun %u: reserved bytes are not zero", i);
	if (l->n_history > WIRE_GEN_HISTORY)
		return ipm_fail(err, -EPROTO, "AUTH lun %u: %u earlier generations, at most %d", i,
				l->n_history, WIRE_GEN_HISTORY);
	for (k = 0; k < WIRE_GEN_HISTORY; k++)
		l->history[k] = be_get64(p + 24 + 8 * k);
	return 0;
}

/* Two LUNs of one AUTH with the same id would share their frames. */
static int check_ids(const struct wire_auth *m, ipm_error *err)
{
	uint8_t seen[WIRE_MAX_LUNS] = { 0 };
	uint32_t i;

	for (i = 0; i < m->n_luns; i++) {
		if (seen[m->luns[i].id]++)
			return ipm_fail(err, -EINVAL, "AUTH lun %u: id %u is taken by another lun",
					i, m->luns[i].id);
	}
	return 0;
}

int wire_auth_decode(const uint8_t *buf, size_t len, struct wire_auth *m, ipm_error *err)
{
	const uint8_t *p = buf;
	uint32_t i;
	int rc;

	if (len < AUTH_FIXED_LEN)
		return ipm_fail(err, -EPROTO, "AUTH body is %zu bytes, expected at least %d", len,
				AUTH_FIXED_LEN);
	memcpy(m->mac, p, WIRE_MAC_LEN);
	p += WIRE_MAC_LEN;
	m->session = be_get64(p);
	m->base_seq = be_get64(p + 8);
	m->window = be_get32(p + 16);
	m->n_luns = be_get32(p + 20);
	p += 24;
	if (m->n_luns > WIRE_MAX_LUNS)
		return ipm_fail(err, -EMSGSIZE, "AUTH lists %u luns, limit %d", m->n_luns,
				WIRE_MAX_LUNS);
	rc = check_len(len, AUTH_FIXED_LEN + (size_t)m->n_luns * AUTH_LUN_LEN, "AUTH", err);
	if (rc < 0)
		return rc;
	if (m->window < 1 || m->window > WIRE_MAX_WINDOW)
		return ipm_fail(err, -EINVAL, "AUTH window %u outside 1..%d", m->window,
				WIRE_MAX_WINDOW);
	for (i = 0; i < m->n_luns; i++, p += AUTH_LUN_LEN) {
		rc = lun_decode(p, i, m->version, &m->luns[i], err);
		if (rc < 0)
			return rc;
	}
	return check_ids(m, err);
}

size_t wire_welcome_encode(uint8_t *buf, const struct wire_welcome *m)
{
	uint32_t i, n = m->n_luns < WIRE_MAX_LUNS ? m->n_luns : WIRE_MAX_LUNS;
	uint8_t *p = buf;

	p = be_put32(p, (uint32_t)m->status);
	p = put_name(p, m->message, WIRE_MSG_LEN);
	p = be_put64(p, m->record);
	p = be_put32(p, n);
	p = put_bytes(p, m->lun_flags, n);
	for (i = 0; m->version >= 6 && i < n; i++)
		p = be_put64(p, m->fill[i]);
	return (size_t)(p - buf);
}

int wire_welcome_decode(const uint8_t *buf, size_t len, struct wire_welcome *m,
			ipm_error *err)
{
	uint32_t i;
	int rc;

	if (len < WELCOME_LEN + 4)
		return ipm_fail(err, -EPROTO, "WELCOME body is %zu bytes, expected at least %d", len,
				WELCOME_LEN + 4);
	m->status = (int32_t)be_get32(buf);
	/* it becomes our -errno: a value no errno has would travel up as one */
	if (m->status < 0 || m->status > WIRE_MAX_ERRNO)
		return ipm_fail(err, -EINVAL, "WELCOME status %d is not 0 or an errno", m->status);
	rc = get_message(buf + 4, WIRE_MSG_LEN, m->message, "WELCOME message", err);
	if (rc < 0)
		return rc;
	m->record = be_get64(buf + 4 + WIRE_MSG_LEN);
	m->n_luns = be_get32(buf + WELCOME_LEN);
	if (m->n_luns > WIRE_MAX_LUNS)
		return ipm_fail(err, -EMSGSIZE, "WELCOME has %u lun verdicts, limit %d", m->n_luns,
				WIRE_MAX_LUNS);
	rc = check_len(len, WELCOME_LEN + 4 + (size_t)m->n_luns * (m->version >= 6 ? 9 : 1),
		       "WELCOME", err);
	if (rc < 0)
		return rc;
	for (i = 0; i < m->n_luns; i++) {
		m->lun_flags[i] = buf[WELCOME_LEN + 4 + i];
		if (m->lun_flags[i] & ~(WIRE_LV_FULL | WIRE_LV_SPLITBRAIN))
			return ipm_fail(err, -EPROTO, "WELCOME lun %u: unknown verdict 0x%x", i,
					m->lun_flags[i]);
		m->fill[i] = m->version >= 6 ?
			be_get64(buf + WELCOME_LEN + 4 + m->n_luns + 8 * i) : 0;
	}
	return 0;
}

/* ---- frames ---------------------------------------------------------------- */

const char *wire_type_name(unsigned type)
{
	static const char *const names[] = {
		[WIRE_WRITE] = "WRITE", [WIRE_TRIM] = "TRIM", [WIRE_ZERO] = "ZERO",
		[WIRE_FLUSH] = "FLUSH", [WIRE_ACK] = "ACK", [WIRE_PING] = "PING",
		[WIRE_HBSLOT] = "HBSLOT", [WIRE_VERIFY] = "VERIFY",
		[WIRE_VERIFY_REPLY] = "VERIFY_REPLY", [WIRE_READ] = "READ",
		[WIRE_READ_REPLY] = "READ_REPLY", [WIRE_RESIZE] = "RESIZE",
		[WIRE_RESIZE_REPLY] = "RESIZE_REPLY",
	};

	return type < sizeof(names) / sizeof(names[0]) && names[type] ? names[type] : "unknown";
}

static bool is_verify_type(unsigned type)
{
	return type == WIRE_VERIFY || type == WIRE_VERIFY_REPLY;
}

/* A VERIFY names a range of 1..WIRE_VERIFY_MAX bytes and carries the
 * run's nonce; its reply one digest per block of that range, or nothing
 * when it failed. */
static int verify_frame_check(const struct wire_frame *f, const char *t, ipm_error *err)
{
	uint32_t want;

	if (f->flags)
		return ipm_fail(err, -EPROTO, "%s frame has flags 0x%04x", t, f->flags);
	if (f->length == 0 || f->length > WIRE_VERIFY_MAX)
		return ipm_fail(err, -EPROTO, "%s frame for %llu bytes, expected 1..%u", t,
				(unsigned long long)f->length, WIRE_VERIFY_MAX);
	if (f->type == WIRE_VERIFY)
		want = WIRE_VERIFY_NONCE_LEN;
	else
		want = f->status ? 0 : WIRE_VERIFY_DIGESTS_LEN(f->length);
	if (f->len != want)
		return ipm_fail(err, -EPROTO, "%s frame of %llu bytes carries %u payload bytes, expected %u",
				t, (unsigned long long)f->length, f->len, want);
	return 0;
}

static bool is_read_type(unsigned type)
{
	return type == WIRE_READ || type == WIRE_READ_REPLY;
}

/* A READ names a range of 1..WIRE_READ_MAX bytes and carries nothing; its
 * reply carries those bytes, or nothing when it failed. */
static int read_frame_check(const struct wire_frame *f, const char *t, ipm_error *err)
{
	uint64_t want;

	if (f->flags)
		return ipm_fail(err, -EPROTO, "%s frame has flags 0x%04x", t, f->flags);
	if (f->length == 0 || f->length > WIRE_READ_MAX)
		return ipm_fail(err, -EPROTO, "%s frame for %llu bytes, expected 1..%u", t,
				(unsigned long long)f->length, WIRE_READ_MAX);
	want = f->type == WIRE_READ || f->status ? 0 : f->length;
	if (f->len != want)
		return ipm_fail(err, -EPROTO, "%s frame of %llu bytes carries %u payload bytes, expected %llu",
				t, (unsigned long long)f->length, f->len, (unsigned long long)want);
	return 0;
}

static bool is_resize_type(unsigned type)
{
	return type == WIRE_RESIZE || type == WIRE_RESIZE_REPLY;
}

/* A RESIZE carries the new size (WIRE_RESIZE_LEN bytes) and names no range;
 * its reply carries nothing, the mirror's backing size in offset. */
static int resize_frame_check(const struct wire_frame *f, const char *t, ipm_error *err)
{
	uint32_t want = f->type == WIRE_RESIZE ? WIRE_RESIZE_LEN : 0;

	if (f->flags)
		return ipm_fail(err, -EPROTO, "%s frame has flags 0x%04x", t, f->flags);
	if (f->type == WIRE_RESIZE && (f->offset || f->length))
		return ipm_fail(err, -EPROTO, "%s frame names a range (offset %llu, length %llu)",
				t, (unsigned long long)f->offset, (unsigned long long)f->length);
	if (f->len != want)
		return ipm_fail(err, -EPROTO, "%s frame carries %u payload bytes, expected %u", t,
				f->len, want);
	return 0;
}

void wire_frame_encode(uint8_t buf[WIRE_FRAME_LEN], const struct wire_frame *f)
{
	uint8_t *p = buf;

	p = be_put32(p, WIRE_FRAME_MAGIC);
	p = be_put16(p, f->type);
	p = be_put16(p, f->flags);
	p = be_put32(p, f->lun);
	p = be_put32(p, f->len);
	p = be_put64(p, f->seq);
	p = be_put64(p, f->dep);
	p = be_put64(p, f->offset);
	p = be_put64(p, f->length);
	p = be_put32(p, (uint32_t)f->status);
	be_put32(p, f->csum);
}

static void frame_fields(const uint8_t *p, struct wire_frame *f)
{
	f->magic = be_get32(p);
	f->type = be_get16(p + 4);
	f->flags = be_get16(p + 6);
	f->lun = be_get32(p + 8);
	f->len = be_get32(p + 12);
	f->seq = be_get64(p + 16);
	f->dep = be_get64(p + 24);
	f->offset = be_get64(p + 32);
	f->length = be_get64(p + 40);
	f->status = (int32_t)be_get32(p + 48);
	f->csum = be_get32(p + 52);
}

int wire_frame_decode(const uint8_t buf[WIRE_FRAME_LEN], uint32_t n_luns,
		      struct wire_frame *f, ipm_error *err)
{
	const char *t;

	frame_fields(buf, f);
	if (f->magic != WIRE_FRAME_MAGIC)
		return ipm_fail(err, -EPROTO, "bad frame magic 0x%08x", f->magic);
	if (f->type < WIRE_WRITE || (f->type > WIRE_HBSLOT && !is_verify_type(f->type) &&
					  !is_read_type(f->type) && !is_resize_type(f->type)))
		return ipm_fail(err, -EPROTO, "unknown frame type %u", f->type);
	t = wire_type_name(f->type);
	if (f->flags & ~(WIRE_F_FUA | WIRE_F_REPLAY | WIRE_F_INSYNC))
		return ipm_fail(err, -EPROTO, "%s frame has unknown flags 0x%04x", t, f->flags);
	if (f->type == WIRE_WRITE) {
		if (f->len > WIRE_MAX_PAYLOAD)
			return ipm_fail(err, -EMSGSIZE, "frame payload %u bytes exceeds limit %u",
					f->len, WIRE_MAX_PAYLOAD);
		if (f->length != f->len)
			return ipm_fail(err, -EPROTO, "WRITE frame length %llu != payload %u bytes",
					(unsigned long long)f->length, f->len);
	} else if (f->type == WIRE_HBSLOT) {
		if (f->len != WIRE_HBSLOT_LEN || f->length != WIRE_HBSLOT_LEN)
			return ipm_fail(err, -EPROTO, "HBSLOT frame of %u bytes, expected %u",
					f->len, WIRE_HBSLOT_LEN);
		if (f->lun >= WIRE_HBSLOT_MAX || f->offset != (uint64_t)f->lun * WIRE_HBSLOT_LEN)
			return ipm_fail(err, -EINVAL, "HBSLOT frame for slot %u at offset %llu",
					f->lun, (unsigned long long)f->offset);
	} else if (is_verify_type(f->type)) {
		int rc = verify_frame_check(f, t, err);

		if (rc < 0)
			return rc;
	} else if (is_read_type(f->type)) {
		int rc = read_frame_check(f, t, err);

		if (rc < 0)
			return rc;
	} else if (is_resize_type(f->type)) {
		int rc = resize_frame_check(f, t, err);

		if (rc < 0)
			return rc;
	} else if (f->len) {
		return ipm_fail(err, -EPROTO, "%s frame carries %u payload bytes", t, f->len);
	}
	if ((f->type <= WIRE_FLUSH || f->type == WIRE_VERIFY || f->type == WIRE_READ ||
	     f->type == WIRE_RESIZE) && f->lun >= n_luns)
		return ipm_fail(err, -EINVAL, "%s frame for lun %u, only %u negotiated", t, f->lun,
				n_luns);
	if ((f->type == WIRE_ACK || f->type == WIRE_VERIFY_REPLY || f->type == WIRE_READ_REPLY ||
	     f->type == WIRE_RESIZE_REPLY) &&
	    (f->status < 0 || f->status > WIRE_MAX_ERRNO))
		return ipm_fail(err, -EINVAL, "%s status %d is not 0 or an errno", t, f->status);
	return 0;
}
