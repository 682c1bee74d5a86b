/* test_auth.c - authentication (engine/proto/auth.c): MACs over the documented
 * input, and loading the secret file (size, mode, ownership checks). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"
#include "wire.h"
#include "unit_util.h"
#include "wire_samples.h"

static void test_auth_mac(void **state)
{
	uint8_t na[WIRE_NONCE_LEN], nb[WIRE_NONCE_LEN], m1[WIRE_MAC_LEN], m2[WIRE_MAC_LEN];
	struct auth_secret s1, s2;

	make_secret(&s1, "correct horse battery staple");
	make_secret(&s2, "correct horse battery stapler");
	auth_random(na, sizeof(na));
	auth_random(nb, sizeof(nb));
	assert_memory_not_equal(na, nb, sizeof(na));

	auth_mac(&s1, "server", na, nb, "node1", "node2", m1);
	auth_mac(&s1, "server", na, nb, "node1", "node2", m2);
	assert_true(auth_mac_equal(m1, m2));

	auth_mac(&s2, "server", na, nb, "node1", "node2", m2);
	assert_false(auth_mac_equal(m1, m2));
	auth_mac(&s1, "client", na, nb, "node1", "node2", m2);
	assert_false(auth_mac_equal(m1, m2));
	auth_mac(&s1, "server", nb, na, "node1", "node2", m2);
	assert_false(auth_mac_equal(m1, m2));
	nb[31] ^= 1;
	auth_mac(&s1, "server", na, nb, "node1", "node2", m2);
	assert_false(auth_mac_equal(m1, m2));
	nb[31] ^= 1;
	auth_mac(&s1, "server", na, nb, "node2", "node1", m2);
	assert_false(auth_mac_equal(m1, m2));
	auth_mac(&s1, "server", na, nb, "node1", "node3", m2);
	assert_false(auth_mac_equal(m1, m2));

	memcpy(m2, m1, sizeof(m1));
	m2[WIRE_MAC_LEN - 1] ^= 0x80;
	assert_false(auth_mac_equal(m1, m2));
}

/* The MAC input is a documented byte string (doc/wire.md); this digest was
 * computed independently with Python's hmac module:
 * HMAC-SHA256("key", "server\0" || 00..1f || 20..3f || "node1" padded to 64
 * || "node2" padded to 64). */
static void test_auth_mac_known(void **state)
{
	static const uint8_t want[WIRE_MAC_LEN] = {
		0x94, 0xdb, 0xf6, 0xd4, 0x2a, 0x6a, 0x97, 0xf0, 0xd1, 0x06, 0x1b, 0xde,
		0x89, 0x63, 0x0d, 0x84, 0x00, 0xf2, 0xc0, 0xc6, 0xcb, 0xec, 0xf5, 0x32,
		0x78, 0x23, 0xab, 0x65, 0xaf, 0x8c, 0x78, 0xa7,
	};
	uint8_t na[WIRE_NONCE_LEN], nb[WIRE_NONCE_LEN], mac[WIRE_MAC_LEN];
	struct auth_secret s;
	int i;

	make_secret(&s, "key");
	for (i = 0; i < WIRE_NONCE_LEN; i++) {
		na[i] = (uint8_t)i;
		nb[i] = (uint8_t)(32 + i);
	}
	auth_mac(&s, "server", na, nb, "node1", "node2", mac);
	assert_memory_equal(mac, want, WIRE_MAC_LEN);
}

struct tmpdir {
	char path[64];
	char file[128];
};

static void write_secret_file(struct tmpdir *d, const void *data, size_t len, mode_t mode)
{
	FILE *f;

	snprintf(d->file, sizeof(d->file), "%s/secret", d->path);
	unlink(d->file);
	f = fopen(d->file, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	assert_int_equal(chmod(d->file, mode), 0);
}

static void test_secret_load(void **state)
{
	struct auth_secret *s = calloc(1, sizeof(*s));
	char *big = malloc(AUTH_SECRET_MAX + 2);
	struct tmpdir d;
	ipm_error err = { "" };

	assert_non_null(s);
	assert_non_null(big);
	strcpy(d.path, "/tmp/ipm-test-wire.XXXXXX");
	assert_non_null(mkdtemp(d.path));

	write_secret_file(&d, "s3cret\n", 7, 0600);
	assert_int_equal(auth_secret_load(d.file, s, &err), 0);
	assert_int_equal(s->len, 6);
	assert_memory_equal(s->key, "s3cret", 6);

	write_secret_file(&d, "", 0, 0600);
	check_fail(auth_secret_load(d.file, s, &err), -EINVAL, &err, "is empty");
	write_secret_file(&d, "\n", 1, 0600);
	check_fail(auth_secret_load(d.file, s, &err), -EINVAL, &err, "is empty");

	memset(big, 'k', AUTH_SECRET_MAX + 1);
	big[AUTH_SECRET_MAX] = '\n';
	write_secret_file(&d, big, AUTH_SECRET_MAX + 1, 0400);
	assert_int_equal(auth_secret_load(d.file, s, &err), 0);
	assert_int_equal(s->len, AUTH_SECRET_MAX);
	big[AUTH_SECRET_MAX] = 'k';
	write_secret_file(&d, big, AUTH_SECRET_MAX + 1, 0600);
	check_fail(auth_secret_load(d.file, s, &err), -EMSGSIZE, &err, "larger than 4096 bytes");

	write_secret_file(&d, "s3cret\n", 7, 0644);
	check_fail(auth_secret_load(d.file, s, &err), -EACCES, &err, "(mode 0644)");
	write_secret_file(&d, "s3cret\n", 7, 0640);
	check_fail(auth_secret_load(d.file, s, &err), -EACCES, &err, "group or others");
	/* another user could change or read the key: refused, naming the owner */
	write_secret_file(&d, "s3cret\n", 7, 0600);
	assert_int_equal(chown(d.file, geteuid() + 1, (gid_t)-1), 0);
	check_fail(auth_secret_load(d.file, s, &err), -EACCES, &err, "is owned by uid");
	assert_non_null(strstr(err.msg, d.file));

	unlink(d.file);
	check_fail(auth_secret_load(d.file, s, &err), -ENOENT, &err, d.file);
	rmdir(d.path);
	free(big);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_mac),
		cmocka_unit_test(test_auth_mac_known),
		cmocka_unit_test(test_secret_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
