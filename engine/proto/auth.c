/* auth.c - the shared secret, nonces and HMAC-SHA256 proofs of the handshake. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <qb/qblog.h>
#include "auth.h"
#include "engine.h"
#include "fullio.h"
#include "wire.h"

int auth_secret_load(const char *path, struct auth_secret *s, ipm_error *err)
{
	/* room for the largest secret, its newline and one byte more */
	uint8_t *buf = malloc(AUTH_SECRET_MAX + 2);
	struct stat st;
	ssize_t n;
	int fd, rc;

	if (!buf)
		return ipm_fail(err, -ENOMEM, "out of memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = ipm_fail(err, -errno, "secret file %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = ipm_fail(err, -errno, "secret file %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = ipm_fail(err, -EINVAL, "secret file %s is not a regular file", path);
		goto out;
	}
	/* another user who owns it could change the key under us or read it */
	if (st.st_uid != geteuid()) {
		rc = ipm_fail(err, -EACCES,
			      "secret file %s is owned by uid %u, not by the daemon's user (uid %u); chown it",
			      path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = ipm_fail(err, -EACCES,
			      "secret file %s is accessible by group or others (mode %04o); chmod 600 it",
			      path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	n = read_full(fd, buf, AUTH_SECRET_MAX + 2);
	if (n < 0) {
		rc = ipm_fail(err, (int)n, "secret file %s: %s", path, strerror((int)-n));
		goto out;
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0) {
		rc = ipm_fail(err, -EINVAL, "secret file %s is empty", path);
		goto out;
	}
	if (n > AUTH_SECRET_MAX) {
		rc = ipm_fail(err, -EMSGSIZE, "secret file %s is larger than %d bytes", path,
			      AUTH_SECRET_MAX);
		goto out;
	}
	memcpy(s->key, buf, (size_t)n);
	s->len = (size_t)n;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	explicit_bzero(buf, AUTH_SECRET_MAX + 2);
	free(buf);
	return rc;
}

void auth_random(uint8_t *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = getrandom(buf + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* a predictable nonce would make the handshake replayable */
			qb_log(LOG_CRIT, "getrandom: %s", strerror(errno));
			abort();
		}
		got += (size_t)n;
	}
}

/* Names enter the MAC as their NUL-padded wire fields so that the
 * concatenation is unambiguous. */
static void mac_name(struct hmac_sha256_ctx *ctx, const char *name)
{
	uint8_t field[WIRE_NAME_LEN] = { 0 };

	memcpy(field, name, strnlen(name, WIRE_NAME_LEN - 1));
	hmac_sha256_update(ctx, sizeof(field), field);
}

void auth_mac(const struct auth_secret *s, const char *role, const uint8_t *nonce_a,
	      const uint8_t *nonce_b, const char *name_a, const char *name_b,
	      uint8_t mac[WIRE_MAC_LEN])
{
	struct hmac_sha256_ctx ctx;

	hmac_sha256_set_key(&ctx, s->len, s->key);
	hmac_sha256_update(&ctx, strlen(role) + 1, (const uint8_t *)role);
	hmac_sha256_update(&ctx, WIRE_NONCE_LEN, nonce_a);
	hmac_sha256_update(&ctx, WIRE_NONCE_LEN, nonce_b);
	mac_name(&ctx, name_a);
	mac_name(&ctx, name_b);
	hmac_sha256_digest(&ctx, WIRE_MAC_LEN, mac);
	explicit_bzero(&ctx, sizeof(ctx));
}

bool auth_mac_equal(const uint8_t *a, const uint8_t *b)
{
	return memeql_sec(a, b, WIRE_MAC_LEN) != 0;
}
