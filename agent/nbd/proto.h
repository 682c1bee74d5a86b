/* proto.h - NBD wire format (fixed newstyle): decoding and validation of
 * what clients send, builders for what the server sends. No I/O here, so
 * every rule can be unit-tested on byte buffers. Reference: the NBD project's
 * doc/proto.md. All integers on the wire are big-endian. */
#ifndef IPM_NBD_PROTO_H
#define IPM_NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- magics ------------------------------------------------------------- */
#define NBD_MAGIC_INIT     0x4e42444d41474943ULL  /* "NBDMAGIC" */
#define NBD_MAGIC_OPT      0x49484156454F5054ULL  /* "IHAVEOPT" */
#define NBD_MAGIC_REP      0x0003e889045565a9ULL  /* option reply */
#define NBD_MAGIC_REQUEST  0x25609513U
#define NBD_MAGIC_SIMPLE   0x67446698U

/* ---- handshake ---------------------------------------------------------- */
#define NBD_FLAG_FIXED_NEWSTYLE   (1U << 0)
#define NBD_FLAG_NO_ZEROES        (1U << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1U << 0)
#define NBD_FLAG_C_NO_ZEROES      (1U << 1)

/* transmission flags */
#define NBD_FLAG_HAS_FLAGS          (1U << 0)
#define NBD_FLAG_READ_ONLY          (1U << 1)
#define NBD_FLAG_SEND_FLUSH         (1U << 2)
#define NBD_FLAG_SEND_FUA           (1U << 3)
#define NBD_FLAG_SEND_TRIM          (1U << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES  (1U << 6)
#define NBD_FLAG_CAN_MULTI_CONN     (1U << 8)

#define NBD_OPT_EXPORT_NAME       1
#define NBD_OPT_ABORT             2
#define NBD_OPT_LIST              3
#define NBD_OPT_STARTTLS          5
#define NBD_OPT_INFO              6
#define NBD_OPT_GO                7
#define NBD_OPT_STRUCTURED_REPLY  8

#define NBD_REP_ACK               1U
#define NBD_REP_SERVER            2U
#define NBD_REP_INFO              3U
#define NBD_REP_ERR_UNSUP         (0x80000000U + 1)
#define NBD_REP_ERR_POLICY        (0x80000000U + 2)
#define NBD_REP_ERR_INVALID       (0x80000000U + 3)
#define NBD_REP_ERR_TLS_REQD      (0x80000000U + 5)
#define NBD_REP_ERR_UNKNOWN       (0x80000000U + 6)
#define NBD_REP_ERR_SHUTDOWN      (0x80000000U + 7)
#define NBD_REP_ERR_TOO_BIG       (0x80000000U + 9)

#define NBD_INFO_EXPORT      0
#define NBD_INFO_NAME        1
#define NBD_INFO_DESCRIPTION 2
#define NBD_INFO_BLOCK_SIZE  3

/* ---- transmission ------------------------------------------------------- */
#define NBD_CMD_READ          0
#define NBD_CMD_WRITE         1
#define NBD_CMD_DISC          2
#define NBD_CMD_FLUSH         3
#define NBD_CMD_TRIM          4
#define NBD_CMD_WRITE_ZEROES  6

#define NBD_CMD_FLAG_FUA      (1U << 0)
#define NBD_CMD_FLAG_NO_HOLE  (1U << 1)

#define NBD_EPERM     1
#define NBD_EIO       5
#define NBD_ENOMEM    12
#define NBD_EINVAL    22
#define NBD_ENOSPC    28
#define NBD_EOVERFLOW 75
#define NBD_ENOTSUP   95
#define NBD_ESHUTDOWN 108

/* ---- sizes and limits --------------------------------------------------- */
#define NBD_HANDSHAKE_LEN     18   /* NBDMAGIC, IHAVEOPT, 16-bit flags */
#define NBD_OPT_HDR_LEN       16
#define NBD_OPT_REPLY_HDR_LEN 20
#define NBD_REQUEST_LEN       28
#define NBD_SIMPLE_REPLY_LEN  16
#define NBD_INFO_EXPORT_LEN   12
#define NBD_INFO_BLOCK_SIZE_LEN 14
#define NBD_EXPORT_NAME_REPLY_MAX (8 + 2 + 124)

#define NBD_MAX_PAYLOAD   (32U << 20)  /* READ/WRITE length limit */
#define NBD_MAX_OPT_LEN   (64U << 10)  /* longer option data: close */
#define NBD_MIN_BLOCK     1U
#define NBD_PREF_BLOCK    4096U

/* transmission flags every export of ours carries */
#define NBD_EXPORT_FLAGS (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA | \
			  NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES | \
			  NBD_FLAG_CAN_MULTI_CONN)

struct nbd_option {
	uint32_t opt;
	uint32_t len;
};

struct nbd_request {
	uint16_t flags;
	uint16_t type;
	uint64_t cookie;
	uint64_t offset;
	uint32_t len;
};

/* The parsed data of NBD_OPT_INFO / NBD_OPT_GO: pointers into the caller's
 * buffer, the name is not NUL-terminated. */
struct nbd_go {
	const char *name;
	uint32_t name_len;
	uint16_t n_info;
	const uint8_t *info;  /* n_info big-endian 16-bit info types */
};

/* What the server does with a decoded request. */
enum nbd_verdict {
	NBD_V_OK,         /* execute it */
	NBD_V_DISC,       /* the client ends the session */
	NBD_V_ERROR,      /* reply with *nbd_err (consume a WRITE's payload first) */
	NBD_V_FATAL,      /* cannot resynchronise with the stream: close */
};

/* Client flags from the handshake: 0, or -EINVAL when a bit is set that we
 * did not offer (the spec says to drop the connection then). */
int nbd_client_flags_check(uint32_t flags);

/* 0, -EBADMSG (not IHAVEOPT) or -EMSGSIZE (data longer than NBD_MAX_OPT_LEN). */
int nbd_option_decode(const void *buf, size_t len, struct nbd_option *out);

/* Parse NBD_OPT_INFO/GO data: 0 or -EINVAL when malformed. */
int nbd_go_parse(const void *data, uint32_t len, struct nbd_go *out);
bool nbd_go_wants(const struct nbd_go *g, uint16_t info_type);

/* 0, -EINVAL (buffer shorter than a request) or -EBADMSG (bad magic). */
int nbd_request_decode(const void *buf, size_t len, struct nbd_request *out);

/* Validate a decoded request against an export of export_size bytes. On
 * NBD_V_ERROR *nbd_err is the error to reply with; on ERROR and FATAL *why
 * says what was wrong (a static string). */
enum nbd_verdict nbd_request_check(const struct nbd_request *r, uint64_t export_size,
				   uint32_t *nbd_err, const char **why);

/* Negative errno from the engine to an NBD error value. */
uint32_t nbd_errno(int neg_errno);

const char *nbd_cmd_name(uint16_t type);
const char *nbd_opt_name(uint32_t opt);

/* ---- builders: each returns the number of bytes written to out ---------- */
size_t nbd_build_handshake(uint8_t out[NBD_HANDSHAKE_LEN]);
size_t nbd_build_opt_reply(uint8_t out[NBD_OPT_REPLY_HDR_LEN], uint32_t opt, uint32_t type,
			   uint32_t data_len);
size_t nbd_build_info_export(uint8_t out[NBD_INFO_EXPORT_LEN], uint64_t size, uint16_t tflags);
size_t nbd_build_info_block_size(uint8_t out[NBD_INFO_BLOCK_SIZE_LEN], uint32_t min,
				 uint32_t pref, uint32_t max);
/* Reply to NBD_OPT_EXPORT_NAME: size, flags and 124 zeroes unless no_zeroes. */
size_t nbd_build_export_name_reply(uint8_t out[NBD_EXPORT_NAME_REPLY_MAX], uint64_t size,
				   uint16_t tflags, bool no_zeroes);
size_t nbd_build_simple_reply(uint8_t out[NBD_SIMPLE_REPLY_LEN], uint32_t nbd_err,
			      uint64_t cookie);

#endif /* IPM_NBD_PROTO_H */
