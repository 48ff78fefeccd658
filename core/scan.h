/* scan.h - lines of a history file -> index entries (private to the store:
 * store.c, scan.c and the derived views include it; nothing else does).
 *
 * A scan reads [start, end) of a file once, line by line, validates each
 * line as far as the store's flags ask (store.h: STORE_VALIDATE,
 * STORE_TIMES), and collects the record lines as entries in file order,
 * the skipped lines' numbers, and the shape of the records read
 * (store_shape).  scan_dedup then sorts the entries by iteration number,
 * keeping the last line of each.  Pure: no locks, no store; the caller owns
 * the struct scan and frees it with scan_free.
 */
#ifndef ITERFS_SCAN_H
#define ITERFS_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "jtext.h"
#include "store.h"

/* One shown or pending record: what finds its line again.  The flags live
 * in what would be padding.  `replaced`: the number had another line
 * before this one in the file, or a refresh saw this line change
 * (store_rec).  `code_dup`: two or more of the line's top-level keys are
 * code aliases, so the code is known only after the last member; false
 * for a line the quick index trusts (scan_quick), until its validation. */
struct ent {
	int64_t iter;
	uint64_t off;
	uint64_t lineno;
	uint32_t len;
	bool replaced;
	bool code_dup;
};

/* What the last line looked like when it had no LF yet; it is scanned again
 * when the file grows. */
enum tail_kind {
	TAIL_NONE,    /* the indexed content ends in LF (or is empty) */
	TAIL_BLANK,   /* whitespace only: not counted anywhere */
	TAIL_SKIPPED, /* the last entry of skip[] */
	TAIL_RECORD,  /* a record, at tail_off, tail_len bytes, tail_iter */
};

/* The shape of the records read so far (store.h): the fields all of them
 * carry.  `last` holds the previous line's keys and value types, so that a
 * line laid out like the one before costs a memcmp and no matching. */
struct shape {
	uint64_t records;
	struct store_shape_field *f; /* key: the decoded name (NULL for a */
	size_t n, cap;               /* dialect field), as in store.h */
	unsigned char alias[FIELD_COUNT]; /* dialect rows: 1 + alias; 0 none */
	struct buf last;
	long iter;            /* the member of `last` carrying the number */
	bool code_dup;        /* `last` has two or more code alias keys */
};

/* The members of the line being indexed, as record_members_fast gives
 * them, and `sig`: their keys and value types as bytes.  `same`: laid out
 * like the previous record line (then `field` is not filled in).  `iter`:
 * the member carrying the number, -1 none.  `code_dup`: as struct ent's. */
struct shape_mem {
	struct jtext_span key, val;
	unsigned type;
	int field;
	unsigned alias;
};

struct shape_line {
	struct shape_mem *m;
	size_t n, cap;
	struct buf sig;
	bool same;
	long iter;
	bool code_dup;
};

/* The result of scanning [start, end) of a file: records in file order
 * (after scan_dedup: ascending by number, unique). */
struct scan {
	unsigned flags;       /* in: the store's flags */
	/* in: read only numbers, trusting a line that starts like
	 * {"iteration": 12, and ends with } (scan_quick sets it) */
	bool quick;
	/* in, may be NULL: set from another thread to stop the scan
	 * (-ECANCELED) */
	const _Atomic bool *cancel;
	struct ent *e;
	size_t n, cap;
	int64_t *t;           /* STORE_TIMES: parallel to e */
	size_t tcap;
	uint64_t *skip;
	size_t nskip, skipcap;
	uint64_t lines, records, beyond;
	uint64_t lineno;      /* in: lines before start; out: lines seen */
	uint64_t end, tail_off;
	uint64_t last_off;    /* start of the last line scanned (any kind) */
	bool any;             /* a line was scanned */
	enum tail_kind tail;
	bool tail_beyond;
	int64_t tail_iter;
	uint32_t tail_len;
	struct shape sh;
	struct shape_line cur;
};

/* Grow an array of `size`-byte elements to hold at least `need`.  0 or
 * -ENOMEM (then *p and *cap are unchanged). */
int store_grow(void **p, size_t *cap, size_t need, size_t size);

/* Scan fd from `start` (a line start) to `end`; sc->flags and sc->lineno
 * set by the caller.  Returns 0, -ENOMEM, or the -errno of a read (logged
 * with `path`; -EIO when the file shrank). */
int scan_file(struct scan *sc, int fd, uint64_t start, uint64_t end,
	      const char *path);

/* The quick index of [0, end) of fd (store.h STORE_LAZY): numbers,
 * offsets and lengths only.  A line with LF that starts like
 * {"iteration": 12, or {"iteration_num": 12, and ends with } is trusted
 * with that number (no member walk, no shape, no timestamp); every other
 * line is checked as the validating scan checks it, so that a line the
 * quick index skips is skipped by the full scan too.  Over the online CPUs
 * (up to 4) for large files, each part starting after a LF.  sc->flags
 * unused; the shape stays empty.  Returns as scan_file. */
int scan_quick(struct scan *sc, int fd, uint64_t end, const char *path);

/* Check one indexed line (without LF and CR, as an entry spans it) the way
 * the validating scan reads it: *ok when it is a record numbered `iter`;
 * then, with `times`, *usec is its timestamp (0 when it has none).
 * Returns 0 or -ENOMEM. */
int scan_check(const char *p, size_t len, int64_t iter, bool times, bool *ok,
	       int64_t *usec);

/* Sort the scanned records by iteration, keeping only the last line of each
 * number (marked `replaced`); *hidden counts the dropped ones.  Returns 0 or
 * -ENOMEM. */
int scan_dedup(struct scan *sc, uint64_t *hidden);

void scan_free(struct scan *sc);

/* The shape over a's records, then b's, into out (a and b unchanged).
 * Returns 0 or -ENOMEM (then out is empty). */
int shape_merge(const struct shape *a, const struct shape *b,
		struct shape *out);
void shape_free(struct shape *sh);

#endif
