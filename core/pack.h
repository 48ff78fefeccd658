/* pack.h - the store's index of shown records, packed (private to the
 * store: store.c includes it, nothing else).
 *
 * What a shown record costs the long-lived index, against the 32 + 8 bytes
 * of a scan entry (struct ent) and its timestamp:
 *   offset and length   8 bytes: the offset in 40 bits (a history up to
 *                       1 TiB; pack refuses a larger one with -EFBIG), the
 *                       length in 24; a line of 16 MiB or more keeps its
 *                       length in a side table (`longs`)
 *   timestamp           6 bytes (with times): microseconds from `tbase`,
 *                       signed, 48 bits (+-4.4 years); one further away
 *                       goes to a side table (`tfar`)
 *   replaced, code_dup  2 bits
 *   number, line number nothing where numbers and lines follow each other
 *                       (iteration i + 1 on the line after i's): a run
 *                       table holds where each such run starts, 24 bytes a
 *                       run, so a history with a gap or a skipped line
 *                       every record pays 24 bytes there (never more than
 *                       the 16 of struct ent's two fields plus padding).
 * Entries are ascending by number and unique, as the index keeps them.
 * Pure: no locks; the store guards it like the rest of its index.
 */
#ifndef ITERFS_PACK_H
#define ITERFS_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scan.h"

/* The largest history pack can index: offsets are 40 bits. */
#define PACK_SIZE_MAX (UINT64_C(1) << 40)

/* Where a run of entries starts: entry `rank` has number `iter` and line
 * number `lineno`, and each next entry of the run has both one higher. */
struct pack_run {
	size_t rank;
	int64_t iter;
	uint64_t lineno;
};

/* A value an entry's fixed-width field cannot hold: a line length of 2^24
 * bytes or more (`longs`), a timestamp beyond 2^47 us of the base (`far`). */
struct pack_side {
	size_t rank;
	int64_t v;
};

struct pack {
	bool times;               /* keeps timestamps (t6) */
	size_t n, cap;            /* entries; room in the per-entry arrays */
	uint64_t *ol;             /* offset << 24 | length (or PACK_LONG) */
	unsigned char *bits;      /* PACK_BITS an entry: replaced, code_dup */
	unsigned char *t6;        /* times: 6 bytes an entry */
	int64_t tbase;
	struct pack_run *run;
	size_t nrun, runcap;
	struct pack_side *longs;  /* ascending by rank */
	size_t nlong, longcap;
	struct pack_side *far;    /* ascending by rank */
	size_t nfar, farcap;
};

/* The entries e[0..n) (ascending by iter, unique) into a new pack; with
 * `times` it keeps timestamps, t[0..n) (t NULL: none has one).  Returns 0,
 * -ENOMEM or -EFBIG (an offset past 1 TiB); *out is empty then (keeping
 * `times`). */
int pack_build(const struct ent *e, const int64_t *t, size_t n, bool times,
	       struct pack *out);

/* Make room to append `more` entries that all come after the last one, so
 * that pack_append of them cannot fail.  Returns 0 or -ENOMEM (nothing
 * changed but capacities). */
int pack_reserve(struct pack *p, size_t more);

/* Append e[0..n) (and t[0..n) when the pack keeps times; t may be NULL),
 * room reserved by pack_reserve.  -EFBIG (an offset past 1 TiB) before anything
 * changes, else 0. */
int pack_append(struct pack *p, const struct ent *e, const int64_t *t,
		size_t n);

/* Free everything; the pack is empty (keeping `times`). */
void pack_free(struct pack *p);

/* Entry i: its fields (lineno included) into *e, its timestamp into *t
 * (may be NULL; 0 without times). */
void pack_get(const struct pack *p, size_t i, struct ent *e, int64_t *t);

/* The number of entry i. */
int64_t pack_iter(const struct pack *p, size_t i);

/* The numbers of entries start.. (start < p->n), at most max, into out;
 * returns how many. */
size_t pack_iters(const struct pack *p, size_t start, int64_t *out,
		  size_t max);

/* Mark entry i replaced. */
void pack_set_replaced(struct pack *p, size_t i);

/* The rank of number `iter`; *found false when it is not there. */
size_t pack_find(const struct pack *p, int64_t iter, bool *found);

/* All entries as a new array of struct ent (and timestamps into a new
 * array when `t` is not NULL and the pack keeps them, else *t NULL); the
 * caller frees both.  Returns 0 or -ENOMEM. */
int pack_unpack(const struct pack *p, struct ent **e, int64_t **t);

/* Heap bytes held. */
uint64_t pack_bytes(const struct pack *p);

#endif
