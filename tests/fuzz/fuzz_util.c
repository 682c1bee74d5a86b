/* fuzz_util.c - the scratch directory of the file-decoding harnesses. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static char scratch[256];

static void scratch_remove(void)
{
	char cmd[300];

	if (!scratch[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", scratch);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz: cannot remove %s\n", scratch);
}

const char *fuzz_scratch(void)
{
	const char *base = getenv("TMPDIR");

	if (scratch[0])
		return scratch;
	/* tmpfs where there is one: the decoders fsync what they repair */
	if (!base || !*base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(scratch, sizeof(scratch), "%s/ipm-fuzz-XXXXXX", base);
	if (!mkdtemp(scratch)) {
		scratch[0] = '\0';
		return NULL;
	}
	atexit(scratch_remove);
	return scratch;
}

int fuzz_path(char *out, size_t len, const char *name)
{
	const char *dir = fuzz_scratch();

	if (!dir)
		return -1;
	snprintf(out, len, "%s/%s", dir, name);
	return 0;
}

int fuzz_write_file(const char *path, const void *data, size_t size)
{
	const char *p = data;
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (size) {
		ssize_t n = write(fd, p, size);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		p += n;
		size -= (size_t)n;
	}
	close(fd);
	return rc;
}
