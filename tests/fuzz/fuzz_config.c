/* fuzz_config.c - the config loader (engine/config.c: XML parse, the
 * RelaxNG schema, the semantic checks) on any file. A file is either loaded
 * or refused with at least one problem reported, each naming the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ipmirror.h"
#include "config.h"

#ifndef FUZZ_SCHEMA
#define FUZZ_SCHEMA NULL
#endif

static char path[512];
static const char *schema;

struct diags {
	unsigned n;
	bool bad;
};

static void diag(void *opaque, const char *file, int line, const char *msg)
{
	struct diags *d = opaque;

	d->n++;
	if (!file || strcmp(file, path) || line < 0 || !msg || !*msg)
		d->bad = true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *env = getenv("IPMIRROR_SCHEMA");

	schema = env && *env ? env : FUZZ_SCHEMA;
	if (fuzz_path(path, sizeof(path), "ipmirror.xml") < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct diags d = { 0 };
	ipm_config *cfg = NULL, *copy;
	int rc;

	if (fuzz_write_file(path, data, size) < 0)
		abort();
	rc = ipm_config_load(path, schema, diag, &d, &cfg);
	if (rc < 0) {
		fprintf(stderr, "fuzz_config: internal failure %d\n", rc);
		abort();
	}
	if (d.bad || (rc > 0) != (d.n > 0) || (rc == 0) != (cfg != NULL))
		abort();
	if (cfg) {
		copy = ipm_config_dup(cfg);
		ipm_config_free(copy);
		(void)ipm_config_log_level(cfg);
		ipm_config_free(cfg);
	}
	return 0;
}
