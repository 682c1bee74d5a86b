/* journal.h - the persistent per-LUN journal (see doc/journal.md).
 *
 * While the peer is unreachable the primary appends every mirror request of a
 * LUN here, in the order the host saw them complete; the resync replays them
 * in that order. Records are CRC32C-protected; a record torn by a crash at the
 * tail is dropped on open, corruption in the middle refuses the open.
 *
 * Thread-compatible: the caller serialises calls on one journal, with two
 * exceptions - an iterator may run (journal_iter_next, journal_records,
 * journal_bytes) while another thread appends; it sees the new records.
 * And journal_mark/journal_sync_to/journal_sync may be called by any
 * thread at any time (while another appends): concurrent syncs share
 * one fdatasync (group commit).
 */
#ifndef IPM_JOURNAL_H
#define IPM_JOURNAL_H

#include <stdint.h>
#include "ipmirror.h"   /* ipm_error */

struct journal;
struct journal_iter;

/* A record's type: the journal's own numbers, fixed by its file format
 * (doc/journal.md), whatever the wire protocol calls these requests. */
enum journal_type {
	JR_WRITE = 1,        /* carries length bytes of data */
	JR_TRIM = 2,
	JR_ZERO = 3,
	JR_FLUSH = 4,        /* a barrier; offset and length 0 */
};

struct journal_rec {
	uint64_t seq;        /* assigned by journal_append (1,2,3.. since the last reset) */
	uint16_t type;       /* enum journal_type */
	uint16_t flags;      /* WIRE_F_FUA etc., opaque to the journal */
	uint64_t offset, length;
	const void *data;    /* WRITE only: length bytes; from the iterator valid until the next call */
	/* CRC32C of data: from the iterator (checked); to journal_append when
	 * the caller has it (a mirror request's), else 0: computed (and set) */
	uint32_t data_crc;
};

/* Open or create the journal at path for LUN lun of lun_size bytes.
 * An existing journal must name the same LUN and size (-EINVAL otherwise).
 * A torn record at the tail is truncated away and its size returned in
 * *dropped_tail_bytes; a bad record with valid records after it fails with
 * -EUCLEAN and leaves the file untouched. max_bytes limits the file size. */
int journal_open(const char *path, const char *lun, uint64_t lun_size, uint64_t max_bytes,
		 struct journal **out, uint64_t *dropped_tail_bytes, ipm_error *err);
/* A new size limit (a reload): the next append past it is refused. The
 * caller serialises it with appends, as it does appends. */
void journal_set_max(struct journal *j, uint64_t max_bytes);
/* Append rec (rec->seq is set). -ENOSPC when the record would take the file
 * past max_bytes or the file system is full: nothing is kept then. */
int journal_append(struct journal *j, struct journal_rec *rec, ipm_error *err);
/* A position past every record appended so far (a count of bytes that
 * never goes back, not even at a reset), for journal_sync_to. */
uint64_t journal_mark(const struct journal *j);
/* Make every record appended before mark was taken durable: returns once
 * an fdatasync that began after those appends succeeded. Callers that come
 * while one runs wait and share the next (group commit); a caller whose
 * records an fdatasync failed to write gets its error. */
int journal_sync_to(struct journal *j, uint64_t mark, ipm_error *err);
int journal_sync(struct journal *j, ipm_error *err);    /* journal_sync_to(now) */
uint64_t journal_bytes(const struct journal *j);        /* record bytes, without the header */
uint64_t journal_records(const struct journal *j);
/* Random id written into the header when the file was created. */
uint64_t journal_id(const struct journal *j);

/* Iterate from the first record. next() returns 1 with a record, 0 at the
 * current end (records appended later are seen by later calls), <0 on error
 * (-EUCLEAN for a corrupt record, naming the file, record index and offset).
 * The iterator reads ahead in large chunks: a journal of small records costs
 * one pread per chunk, not two per record. */
int journal_iter_open(struct journal *j, struct journal_iter **out, ipm_error *err);
int journal_iter_next(struct journal_iter *it, struct journal_rec *rec, ipm_error *err);
/* The same; a WRITE whose data is large (256 KiB or more) is read with
 * one pread into a buffer of its own, handed to the caller in *owned (to
 * free; rec->data points into it), not copied out of the read-ahead; else
 * *owned is NULL and rec->data is valid until the next call. */
int journal_iter_next_owned(struct journal_iter *it, struct journal_rec *rec, void **owned,
			    ipm_error *err);
/* Record bytes consumed so far, comparable to journal_bytes(). */
uint64_t journal_iter_offset(const struct journal_iter *it);
/* Free the read-ahead buffer (the position is kept): for an iterator that
 * waits at the end of its journal for a while. */
void journal_iter_idle(struct journal_iter *it);
void journal_iter_close(struct journal_iter *it);

/* Everything was replayed and acknowledged: drop all records, durably. */
int journal_reset(struct journal *j, ipm_error *err);
void journal_close(struct journal *j);

#endif
