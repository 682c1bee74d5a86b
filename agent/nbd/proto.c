/* proto.c - NBD wire format: decode, validate, build. No I/O. */
#include <errno.h>
#include <string.h>

#include "proto.h"

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	return put32(put32(p, (uint32_t)(v >> 32)), (uint32_t)v);
}

int nbd_client_flags_check(uint32_t flags)
{
	return flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES) ? -EINVAL : 0;
}

int nbd_option_decode(const void *buf, size_t len, struct nbd_option *out)
{
	const uint8_t *p = buf;

	if (len < NBD_OPT_HDR_LEN)
		return -EINVAL;
	if (get64(p) != NBD_MAGIC_OPT)
		return -EBADMSG;
	out->opt = get32(p + 8);
	out->len = get32(p + 12);
	return out->len > NBD_MAX_OPT_LEN ? -EMSGSIZE : 0;
}

int nbd_go_parse(const void *data, uint32_t len, struct nbd_go *out)
{
	const uint8_t *p = data;
	uint32_t rest;

	if (len < 6)
		return -EINVAL;
	out->name_len = get32(p);
	if (out->name_len > len - 6)
		return -EINVAL;
	out->name = (const char *)p + 4;
	rest = len - 4 - out->name_len;
	out->n_info = get16(p + 4 + out->name_len);
	/* the info list must fill the rest of the option exactly */
	if (rest - 2 != (uint32_t)out->n_info * 2)
		return -EINVAL;
	out->info = p + 4 + out->name_len + 2;
	return 0;
}

bool nbd_go_wants(const struct nbd_go *g, uint16_t info_type)
{
	for (uint16_t i = 0; i < g->n_info; i++)
		if (get16(g->info + 2 * i) == info_type)
			return true;
	return false;
}

int nbd_request_decode(const void *buf, size_t len, struct nbd_request *out)
{
	const uint8_t *p = buf;

	if (len < NBD_REQUEST_LEN)
		return -EINVAL;
	if (get32(p) != NBD_MAGIC_REQUEST)
		return -EBADMSG;
	out->flags = get16(p + 4);
	out->type = get16(p + 6);
	out->cookie = get64(p + 8);
	out->offset = get64(p + 16);
	out->len = get32(p + 24);
	return 0;
}

static bool in_range(const struct nbd_request *r, uint64_t size)
{
	return r->offset <= size && r->len <= size - r->offset;
}

static enum nbd_verdict fail(uint32_t err, uint32_t *nbd_err, const char **why, const char *msg)
{
	*nbd_err = err;
	*why = msg;
	return NBD_V_ERROR;
}

enum nbd_verdict nbd_request_check(const struct nbd_request *r, uint64_t export_size,
				   uint32_t *nbd_err, const char **why)
{
	uint16_t allowed = NBD_CMD_FLAG_FUA;

	*nbd_err = 0;
	*why = NULL;
	switch (r->type) {
	case NBD_CMD_DISC:
		return NBD_V_DISC;
	case NBD_CMD_WRITE:
		/* its payload cannot be skipped safely: the stream is lost */
		if (r->len > NBD_MAX_PAYLOAD) {
			*why = "write longer than 32 MiB";
			return NBD_V_FATAL;
		}
		break;
	case NBD_CMD_READ:
		if (r->len > NBD_MAX_PAYLOAD)
			return fail(NBD_EINVAL, nbd_err, why, "read longer than 32 MiB");
		break;
	case NBD_CMD_WRITE_ZEROES:
		allowed |= NBD_CMD_FLAG_NO_HOLE;
		break;
	case NBD_CMD_FLUSH:
	case NBD_CMD_TRIM:
		break;
	default:
		return fail(NBD_EINVAL, nbd_err, why, "unknown command");
	}
	if (r->flags & ~allowed)
		return fail(NBD_EINVAL, nbd_err, why, "unsupported command flags");
	if (r->type != NBD_CMD_FLUSH && !in_range(r, export_size))
		/* the spec asks for ENOSPC on writes past the end, EINVAL else */
		return fail(r->type == NBD_CMD_WRITE ? NBD_ENOSPC : NBD_EINVAL, nbd_err, why,
			    "request beyond the end of the export");
	return NBD_V_OK;
}

uint32_t nbd_errno(int neg_errno)
{
	switch (-neg_errno) {
	case 0:
		return 0;
	case EPERM:
	case EROFS:
	case EACCES:
		return NBD_EPERM;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return NBD_EOVERFLOW;
	case ENOTSUP:
		return NBD_ENOTSUP;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}

const char *nbd_cmd_name(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ: return "read";
	case NBD_CMD_WRITE: return "write";
	case NBD_CMD_DISC: return "disconnect";
	case NBD_CMD_FLUSH: return "flush";
	case NBD_CMD_TRIM: return "trim";
	case NBD_CMD_WRITE_ZEROES: return "write-zeroes";
	default: return "unknown";
	}
}

const char *nbd_opt_name(uint32_t opt)
{
	switch (opt) {
	case NBD_OPT_EXPORT_NAME: return "EXPORT_NAME";
	case NBD_OPT_ABORT: return "ABORT";
	case NBD_OPT_LIST: return "LIST";
	case NBD_OPT_STARTTLS: return "STARTTLS";
	case NBD_OPT_INFO: return "INFO";
	case NBD_OPT_GO: return "GO";
	case NBD_OPT_STRUCTURED_REPLY: return "STRUCTURED_REPLY";
	default: return "unknown";
	}
}

size_t nbd_build_handshake(uint8_t out[NBD_HANDSHAKE_LEN])
{
	uint8_t *p = put64(out, NBD_MAGIC_INIT);

	p = put64(p, NBD_MAGIC_OPT);
	p = put16(p, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	return (size_t)(p - out);
}

size_t nbd_build_opt_reply(uint8_t out[NBD_OPT_REPLY_HDR_LEN], uint32_t opt, uint32_t type,
			   uint32_t data_len)
{
	uint8_t *p = put64(out, NBD_MAGIC_REP);

	p = put32(p, opt);
	p = put32(p, type);
	p = put32(p, data_len);
	return (size_t)(p - out);
}

size_t nbd_build_info_export(uint8_t out[NBD_INFO_EXPORT_LEN], uint64_t size, uint16_t tflags)
{
	uint8_t *p = put16(out, NBD_INFO_EXPORT);

	p = put64(p, size);
	p = put16(p, tflags);
	return (size_t)(p - out);
}

size_t nbd_build_info_block_size(uint8_t out[NBD_INFO_BLOCK_SIZE_LEN], uint32_t min,
				 uint32_t pref, uint32_t max)
{
	uint8_t *p = put16(out, NBD_INFO_BLOCK_SIZE);

	p = put32(p, min);
	p = put32(p, pref);
	p = put32(p, max);
	return (size_t)(p - out);
}

size_t nbd_build_export_name_reply(uint8_t out[NBD_EXPORT_NAME_REPLY_MAX], uint64_t size,
				   uint16_t tflags, bool no_zeroes)
{
	uint8_t *p = put64(out, size);

	p = put16(p, tflags);
	if (!no_zeroes) {
		memset(p, 0, 124);
		p += 124;
	}
	return (size_t)(p - out);
}

size_t nbd_build_simple_reply(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t nbd_err,
			      uint64_t cookie)
{
	uint8_t *p = put32(out, NBD_MAGIC_SIMPLE);

	p = put32(p, nbd_err);
	p = put64(p, cookie);
	return (size_t)(p - out);
}
