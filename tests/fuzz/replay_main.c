/* replay_main.c - a harness as a plain program for `make check`: feeds every
 * file of the committed corpus (tests/fuzz/corpus/NAME) and of the past
 * crashes (tests/fuzz/crashes/NAME) to LLVMFuzzerTestOneInput once, no
 * fuzzing, and prints TAP. With arguments it replays those files or
 * directories instead (to reproduce one crash). A crash or a sanitizer
 * report ends the process: the test fails. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error "FUZZ_NAME must name the harness"
#endif

/* libFuzzer calls it when a harness defines it; so do we */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int replay_file(const char *path)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	FILE *f = fopen(path, "rb");
	int rc = -1;

	if (!f || fstat(fileno(f), &st) < 0)
		goto out;
	/* an exact-size heap copy, as libFuzzer passes it: overreads show */
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		goto out;
	got = fread(buf, 1, (size_t)st.st_size, f);
	if (got != (size_t)st.st_size)
		goto out;
	LLVMFuzzerTestOneInput(buf, got);
	rc = 0;
out:
	if (rc < 0)
		fprintf(stderr, "# cannot read %s: %s\n", path, strerror(errno));
	free(buf);
	if (f)
		fclose(f);
	return rc;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Inputs replayed from path (a file or a directory), -1 when unreadable;
 * a missing directory counts 0 when may_be_missing. */
static long replay_path(const char *path, int may_be_missing)
{
	struct dirent **ents;
	struct stat st;
	char file[4096];
	long n = 0;
	int i, count;

	if (stat(path, &st) < 0)
		return may_be_missing && errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return replay_file(path) < 0 ? -1 : 1;
	count = scandir(path, &ents, NULL, by_name);
	if (count < 0)
		return -1;
	for (i = 0; i < count; i++) {
		snprintf(file, sizeof(file), "%s/%s", path, ents[i]->d_name);
		if (ents[i]->d_name[0] != '.' && stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
			if (replay_file(file) < 0)
				n = -1;
			else if (n >= 0)
				n++;
		}
		free(ents[i]);
	}
	free(ents);
	return n;
}

int main(int argc, char **argv)
{
	const char *srcdir = getenv("top_srcdir");
	const char *kinds[2] = { "corpus", "crashes" };
	char dir[4096];
	int i, failed = 0;
	long n;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	if (argc > 1) {
		for (i = 1; i < argc; i++)
			if (replay_path(argv[i], 0) < 0)
				failed = 1;
		return failed;
	}
	if (!srcdir || !*srcdir)
		srcdir = FUZZ_SRCDIR;
	printf("1..2\n");
	for (i = 0; i < 2; i++) {
		snprintf(dir, sizeof(dir), "%s/tests/fuzz/%s/%s", srcdir, kinds[i], FUZZ_NAME);
		/* the seeds must be there; a harness may have no past crash */
		n = replay_path(dir, i == 1);
		if (n < 0 || (i == 0 && n == 0)) {
			printf("not ok %d - %s: cannot replay %s\n", i + 1, FUZZ_NAME, dir);
			failed = 1;
		} else {
			printf("ok %d - %s: %ld %s inputs replayed\n", i + 1, FUZZ_NAME, n, kinds[i]);
		}
		fflush(stdout);
	}
	return failed;
}
