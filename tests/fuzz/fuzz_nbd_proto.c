/* fuzz_nbd_proto.c - the NBD decoders (agent/nbd/proto.c) on what a client
 * may send: client flags, an option header and its INFO/GO data, and a
 * stream of transmission requests checked against exports of several sizes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "endian.h"
#include "nbd/proto.h"

static void fuzz_option(const uint8_t *d, size_t n)
{
	struct nbd_option o;
	struct nbd_go g;
	size_t len;

	if (nbd_option_decode(d, n, &o) < 0 || n < NBD_OPT_HDR_LEN)
		return;
	(void)nbd_opt_name(o.opt);
	len = n - NBD_OPT_HDR_LEN < o.len ? n - NBD_OPT_HDR_LEN : o.len;
	if (nbd_go_parse(d + NBD_OPT_HDR_LEN, (uint32_t)len, &g) < 0)
		return;
	/* the parsed pointers must stay inside the data */
	if (g.name_len > len || (g.n_info && (g.info < d || g.info + 2 * g.n_info > d + n)))
		abort();
	for (uint16_t t = 0; t < 4; t++)
		(void)nbd_go_wants(&g, t);
}

static void fuzz_requests(const uint8_t *d, size_t n)
{
	static const uint64_t sizes[] = { 0, 1, 4096, 1ull << 20, UINT64_MAX };
	struct nbd_request r;
	const char *why;
	uint32_t err;

	for (; n >= NBD_REQUEST_LEN; d += NBD_REQUEST_LEN, n -= NBD_REQUEST_LEN) {
		if (nbd_request_decode(d, n, &r) < 0)
			continue;
		(void)nbd_cmd_name(r.type);
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			enum nbd_verdict v = nbd_request_check(&r, sizes[i], &err, &why);

			/* an accepted data request lies inside the export */
			if (v == NBD_V_OK && (r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE) &&
			    (r.len > NBD_MAX_PAYLOAD || r.offset > sizes[i] ||
			     r.len > sizes[i] - r.offset))
				abort();
			if ((v == NBD_V_ERROR || v == NBD_V_FATAL) && !why)
				abort();
		}
	}
	/* a short tail is refused, never read past */
	if (n && nbd_request_decode(d, n, &r) != -EINVAL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= 4)
		(void)nbd_client_flags_check(be_get32(data));
	fuzz_option(data, size);
	fuzz_requests(data, size);
	(void)nbd_errno(size ? -(int)data[0] : 0);
	return 0;
}
