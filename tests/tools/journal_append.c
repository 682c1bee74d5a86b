/* journal_append.c - appends records to a LUN's journal the way an older
 * ipmirror could have, for tests of what a resync makes of them:
 *
 *   journal_append PATH LUN SIZE TYPE:OFFSET:LENGTH[:BYTE]...
 *
 * TYPE is write, trim, zero or flush; a write's data is LENGTH bytes of BYTE
 * (hex, default 00). The daemon owning the journal must not be running.
 * Exit 0 when every record was appended and synced, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"

static int parse_rec(const char *spec, struct journal_rec *r, unsigned *byte)
{
	static const char *names[] = { [JR_WRITE] = "write", [JR_TRIM] = "trim",
				       [JR_ZERO] = "zero", [JR_FLUSH] = "flush" };
	char type[8];
	unsigned long long off, len;
	uint16_t t;

	*byte = 0;
	if (sscanf(spec, "%7[a-z]:%llu:%llu:%x", type, &off, &len, byte) < 3)
		return -1;
	for (t = JR_WRITE; t <= JR_FLUSH; t++)
		if (strcmp(type, names[t]) == 0)
			break;
	if (t > JR_FLUSH)
		return -1;
	*r = (struct journal_rec){ .type = t, .offset = off, .length = len };
	return 0;
}

int main(int argc, char **argv)
{
	struct journal *j;
	ipm_error err = { "" };
	uint64_t dropped;
	int i, rc = 1;

	if (argc < 5) {
		fprintf(stderr, "usage: journal_append PATH LUN SIZE TYPE:OFFSET:LENGTH[:BYTE]...\n");
		return 2;
	}
	if (journal_open(argv[1], argv[2], strtoull(argv[3], NULL, 0), 1ull << 40, &j, &dropped,
			 &err) < 0) {
		fprintf(stderr, "journal_append: %s\n", err.msg);
		return 1;
	}
	for (i = 4; i < argc; i++) {
		struct journal_rec r;
		unsigned byte;
		void *data = NULL;

		if (parse_rec(argv[i], &r, &byte) < 0) {
			fprintf(stderr, "journal_append: bad record \"%s\"\n", argv[i]);
			goto out;
		}
		if (r.type == JR_WRITE && r.length) {
			data = malloc(r.length);
			if (!data)
				goto out;
			memset(data, (int)byte, r.length);
			r.data = data;
		}
		if (journal_append(j, &r, &err) < 0) {
			free(data);
			fprintf(stderr, "journal_append: %s\n", err.msg);
			goto out;
		}
		free(data);
	}
	rc = journal_sync(j, &err) < 0 ? 1 : 0;
	if (rc)
		fprintf(stderr, "journal_append: %s\n", err.msg);
out:
	journal_close(j);
	return rc;
}
