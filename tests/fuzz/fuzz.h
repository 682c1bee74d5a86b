/* fuzz.h - what every harness in tests/fuzz/ shares: the libFuzzer entry
 * points, and a scratch directory for the harnesses that decode files. */
#ifndef IPM_FUZZ_H
#define IPM_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A per-process directory (under $TMPDIR, else /dev/shm, else /tmp),
 * removed at exit; NULL when it cannot be made. */
const char *fuzz_scratch(void);
/* scratch/name in out; 0, or -1 when there is no scratch directory. */
int fuzz_path(char *out, size_t len, const char *name);
/* Replace path with exactly data[0..size): 0 or -errno. */
int fuzz_write_file(const char *path, const void *data, size_t size);

#endif
