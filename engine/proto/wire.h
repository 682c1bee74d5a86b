/* wire.h - the mirror protocol between two ipmirrord nodes (see doc/wire.md).
 *
 * All integers are big-endian on the wire. A connection starts with a
 * handshake (HELLO, CHALLENGE, AUTH, WELCOME) that names both nodes, proves
 * both know the shared secret (HMAC-SHA256 challenge-response) and lists the
 * mirrored LUNs; then it carries frames: a fixed header, then `len` payload
 * bytes (WRITE only) protected by a CRC32C.
 */
#ifndef IPM_WIRE_H
#define IPM_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include "ipmirror.h"

/* Versions: 2 HBSLOT frames; 3 generations in AUTH, per-LUN verdicts in
 * WELCOME; 4 the mirror's ordering record in WELCOME; 5 a negotiated
 * version range in HELLO/CHALLENGE, stable LUN ids in AUTH and frames;
 * 6 per-LUN fill ids in WELCOME (a full copy resumes after a restart).
 * A pair speaks the highest version both know (doc/wire.md). */
#define WIRE_VERSION_MIN 4             /* the previous release's */
#define WIRE_VERSION_MAX 6
#define WIRE_VERSION WIRE_VERSION_MAX
#define WIRE_HELLO_MAGIC 0x49504d48u   /* "IPMH" handshake messages */
#define WIRE_FRAME_MAGIC 0x49504d46u   /* "IPMF" request/ack frames */
#define WIRE_NONCE_LEN 32
#define WIRE_MAC_LEN 32                /* HMAC-SHA256 */
#define WIRE_NAME_LEN 64               /* NUL-padded names */
#define WIRE_MAX_LUNS 256
#define WIRE_MAX_PAYLOAD (32u << 20)   /* = the NBD server's max request */
#define WIRE_MAX_WINDOW 65536          /* max requests in flight per direction */
#define WIRE_MAX_INFLIGHT_BYTES (1ull << 30) /* max payload in flight per direction:
					       * what the mirror holds waiting */
#define WIRE_MSG_LEN 128               /* reason text in WELCOME */
#define WIRE_GEN_HISTORY 8             /* earlier generations sent per LUN */
#define WIRE_MAX_ERRNO 4095            /* WELCOME/ACK status: 0 or a positive errno */

enum wire_hs_type {
	WIRE_HELLO = 1,      /* client -> server */
	WIRE_CHALLENGE = 2,  /* server -> client */
	WIRE_AUTH = 3,       /* client -> server */
	WIRE_WELCOME = 4,    /* server -> client: status 0 = accepted, else errno + reason */
};

/* Every handshake message: this header, then `len` bytes of body. */
struct wire_hs_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t len;        /* body length, <= WIRE_HS_MAX_BODY */
};
#define WIRE_HS_HDR_LEN 12
#define WIRE_HS_MAX_BODY (WIRE_MAX_LUNS * 160 + 512)

struct wire_hello {
	char from[WIRE_NAME_LEN];      /* the connecting (primary) node */
	char to[WIRE_NAME_LEN];        /* the node it expects to reach */
	uint16_t conn_index;           /* 0..conn_count-1 */
	uint16_t conn_count;
	uint8_t nonce[WIRE_NONCE_LEN];
	/* version 5 on: the versions the client speaks (a body of
	 * HELLO_V5_LEN); both 0 in a version 4 HELLO. Not encoded: */
	uint16_t version_min, version_max;
	uint8_t tls;                   /* version 5: the sender's <tls mode> (enum
					* ipm_tls_mode); both must have the same */
	uint16_t version;              /* the server's pick, for its check callback */
};

struct wire_challenge {
	char from[WIRE_NAME_LEN];      /* the accepting (mirror) node */
	uint8_t nonce[WIRE_NONCE_LEN];
	uint8_t mac[WIRE_MAC_LEN];     /* proves the server knows the secret */
	/* version 5 on: the versions the server speaks (0 in version 4) */
	uint16_t version_min, version_max;
	uint8_t tls;                   /* version 5: the server's <tls mode> */
};

struct wire_lun {
	char name[WIRE_NAME_LEN];
	uint16_t id;                   /* version 5: the LUN's id in frames (the
					* primary's config index); version 4:
					* its position in AUTH's list */
	uint64_t size;
	uint8_t mode;                  /* enum ipm_mode */
	uint64_t generation;           /* the primary's current data generation */
	uint8_t n_history;             /* <= WIRE_GEN_HISTORY */
	uint64_t history[WIRE_GEN_HISTORY]; /* its earlier generations, newest first */
};

struct wire_auth {
	uint16_t version;              /* not encoded: the layout (set before
					* encoding or decoding; < 5 is version 4's) */
	uint8_t mac[WIRE_MAC_LEN];     /* proves the client knows the secret */
	uint64_t session;              /* random per primary process lifetime */
	uint64_t base_seq;             /* every seq <= base_seq is already applied */
	uint32_t window;               /* max requests in flight, <= WIRE_MAX_WINDOW */
	uint32_t n_luns;
	struct wire_lun luns[WIRE_MAX_LUNS];
};

/* Per-LUN verdicts of the mirror in WELCOME (doc/generations.md). */
enum wire_lun_verdict {
	WIRE_LV_FULL = 1 << 0,        /* copy the whole LUN: our data is no ancestor */
	WIRE_LV_SPLITBRAIN = 1 << 1,  /* both sides wrote without the other */
};

struct wire_welcome {
	uint16_t version;              /* not encoded: the layout (set before
					* encoding or decoding; < 6: no fills) */
	int32_t status;                /* 0 or a positive errno */
	char message[WIRE_MSG_LEN];
	uint64_t record;               /* accepted: names the mirror's ordering record
					* of the session (0 when refused) */
	uint32_t n_luns;               /* verdicts that follow (0 when refused early) */
	uint8_t lun_flags[WIRE_MAX_LUNS];
	/* version 6 on, after the verdicts: per LUN with WIRE_LV_FULL the id of
	 * the mirror's full copy (doc/generations.md), else 0 */
	uint64_t fill[WIRE_MAX_LUNS];
};

/* Frames after the handshake. */
enum wire_type {
	WIRE_WRITE = 1,
	WIRE_TRIM = 2,
	WIRE_ZERO = 3,
	WIRE_FLUSH = 4,
	WIRE_ACK = 5,        /* mirror -> primary: status of request `seq` */
	WIRE_PING = 6,       /* keeps an idle connection's timestamp fresh */
	WIRE_HBSLOT = 7,     /* either way: the sender's heartbeat-volume slot */
	/* 8-11: reserved for per-LUN control frames (unused: each LUN has a
	 * session of its own, doc/roles.md) */
	WIRE_VERIFY = 12,    /* primary -> mirror (version 5): digest [offset,
			      * +length) once every seq <= dep is applied;
			      * payload: the run's nonce (WIRE_VERIFY_NONCE_LEN) */
	WIRE_VERIFY_REPLY = 13, /* mirror -> primary: status of VERIFY `seq`, its
			      * offset and length echoed; payload (status 0):
			      * one WIRE_VERIFY_DIGEST_LEN digest per block */
	WIRE_READ = 14,      /* primary -> mirror (version 5): the mirror's bytes of
			      * [offset, +length) once every seq <= dep is applied
			      * (a read of the primary's backing failed:
			      * doc/io-errors.md); no payload */
	WIRE_READ_REPLY = 15, /* mirror -> primary: status of READ `seq`, its range
			      * echoed; payload (status 0): the length bytes */
	WIRE_RESIZE = 16,    /* primary -> mirror (version 5): grow the LUN to the
			      * size in the payload (WIRE_RESIZE_LEN bytes, big-
			      * endian) once every seq <= dep is applied
			      * (doc/resize.md); offset and length 0 */
	WIRE_RESIZE_REPLY = 17, /* mirror -> primary: status of RESIZE `seq` (0:
			      * grown, EFBIG: its backing is smaller, ...);
			      * offset: the mirror's backing size, length: the
			      * size asked; no payload */
};
/* "WRITE", "TRIM"...: a frame type for log lines ("unknown" for others). */
const char *wire_type_name(unsigned type);
#define WIRE_RESIZE_LEN 8
/* The largest range of one READ: its reply must fit the primary's buffer
 * of answers (worker.c); a longer read is asked in pieces, all in flight. */
#define WIRE_READ_MAX 4096u
#define WIRE_VERIFY_NONCE_LEN 16
#define WIRE_VERIFY_DIGEST_LEN 16     /* UMAC-128 (engine/proto/verify_digest.h) */
#define WIRE_VERIFY_BLOCK (1u << 20)  /* one digest per block from offset on */
#define WIRE_VERIFY_MAX (8u << 20)    /* largest range of one VERIFY */
/* The digests' payload of a VERIFY_REPLY for a range of length bytes. */
#define WIRE_VERIFY_DIGESTS_LEN(length) \
	((uint32_t)(((length) + WIRE_VERIFY_BLOCK - 1) / WIRE_VERIFY_BLOCK) * \
	 WIRE_VERIFY_DIGEST_LEN)
#define WIRE_HBSLOT_LEN 4096 /* payload of an HBSLOT frame: one slot */
/* Where a side hands the HBSLOT frames it receives (set by its creator). */
typedef void (*wire_hbslot_fn)(void *opaque, unsigned slot, const uint8_t *data);
#define WIRE_HBSLOT_MAX 2    /* slot index (`lun` field) < this: one per node */

enum wire_flags {
	WIRE_F_FUA = 1 << 0,
	WIRE_F_REPLAY = 1 << 1,   /* replayed from the journal by a resync */
	WIRE_F_INSYNC = 1 << 2,   /* on a replayed FLUSH that ends a resync pass: once
				   * applied, the mirror's copy equals the primary's */
};

struct wire_frame {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint32_t lun;        /* the LUN's wire id (struct wire_lun.id) */
	uint32_t len;        /* payload bytes that follow (WRITE only) */
	uint64_t seq;        /* request id, increasing per direction */
	uint64_t dep;        /* apply only after every seq <= dep is applied */
	uint64_t offset;
	uint64_t length;     /* byte range; == len for WRITE */
	int32_t status;      /* ACK: 0 or a positive errno */
	uint32_t csum;       /* CRC32C of the payload (0 when none) */
};
#define WIRE_FRAME_LEN 56

/* Encoders write exactly the encoded length and return it. Decoders return 0,
 * or a negative errno with a reason in err (-EPROTO malformed, -EMSGSIZE too
 * large, -EBADMSG bad checksum / MAC, -EINVAL bad value). */
/* The highest version this process speaks: WIRE_VERSION_MAX, or 4 (5)
 * when IPM_WIRE_VERSION_MAX=4 (5) is in the environment (tests: the process
 * then behaves as the previous release, which knew version 4 alone, or as
 * one that spoke up to 5). */
uint16_t wire_version_max(void);
/* The header in version wire_version_max(), or in version v. */
size_t wire_hs_hdr_encode(uint8_t *buf, uint16_t type, uint32_t body_len);
size_t wire_hs_hdr_encode_v(uint8_t *buf, uint16_t version, uint16_t type, uint32_t body_len);
/* expect_type 0 accepts any handshake type (a refusal comes as WELCOME).
 * Versions WIRE_VERSION_MIN..wire_version_max() are accepted, and a HELLO
 * of any later version (its body starts with version 5's layout). */
int wire_hs_hdr_decode(const uint8_t *buf, uint16_t expect_type, struct wire_hs_hdr *h,
		       ipm_error *err);

/* HELLO and CHALLENGE: version 5's body (with the version range) when
 * m->version_max >= 5, else version 4's; decoders tell them by length. */
size_t wire_hello_encode(uint8_t *buf, const struct wire_hello *m);
int wire_hello_decode(const uint8_t *buf, size_t len, struct wire_hello *m, ipm_error *err);
size_t wire_challenge_encode(uint8_t *buf, const struct wire_challenge *m);
int wire_challenge_decode(const uint8_t *buf, size_t len, struct wire_challenge *m,
			  ipm_error *err);
size_t wire_auth_encode(uint8_t *buf, const struct wire_auth *m);
int wire_auth_decode(const uint8_t *buf, size_t len, struct wire_auth *m, ipm_error *err);
size_t wire_welcome_encode(uint8_t *buf, const struct wire_welcome *m);
int wire_welcome_decode(const uint8_t *buf, size_t len, struct wire_welcome *m,
			ipm_error *err);

void wire_frame_encode(uint8_t buf[WIRE_FRAME_LEN], const struct wire_frame *f);
/* Checks magic, type, flags, len/length consistency and the payload limit;
 * n_luns bounds f->lun for request types. */
int wire_frame_decode(const uint8_t buf[WIRE_FRAME_LEN], uint32_t n_luns,
		      struct wire_frame *f, ipm_error *err);


#endif
