/* derived.h - views derived from the index (private to the store's files).
 *
 * A derived view answers a question over all shown records that the index
 * alone cannot (which records share a code, how they rank by a metric,
 * which failed).  Each lives in its own file (byhash.c, bymetric.c,
 * failed.c) behind one update hook, this vtable; a new view is a sibling
 * file, a row in enum derived_kind and one in derived_views[] (derived.c).
 *
 * Life of a view (store.c drives it; the view never sees the store's
 * locks):
 *   - not built: nothing held.  The first public call that needs it builds
 *     it from the whole index: prepare(empty state, batch of every record)
 *     then apply.
 *   - built: every refresh or adopt that changes the shown records hands
 *     it one batch: the numbers that left or were replaced (`gone`) and
 *     the records that appeared or replaced one (`add`, whose lines are in
 *     batch->fd).  A replaced number is in both.
 *   - reset: a full re-index whose changes are unknown, or any failure of
 *     prepare/apply, frees the state; the next use builds it again.  A view
 *     is a cache of the file: dropping it is always correct.
 * prepare does all file I/O and allocation with only the store's update
 * mutex held (readers go on with the old state, which prepare may read but
 * not change); apply installs with the store's lock held exclusively, may
 * fail only before it changes anything, and consumes the plan either way.
 */
#ifndef ITERFS_DERIVED_H
#define ITERFS_DERIVED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scan.h"
#include "store.h"

enum derived_kind {
	DERIVED_BYHASH,
	DERIVED_BYMETRIC,
	DERIVED_FAILED,
	DERIVED_COUNT,
};

struct derived_batch {
	int fd;               /* holds the lines of add[] */
	const int64_t *gone;  /* ascending */
	size_t ngone;
	const struct ent *add; /* ascending by iter, unique */
	size_t nadd;
	/* The store validates its lines (STORE_VALIDATE), so a view may walk
	 * them with record_members_fast: each passed the full validation, or,
	 * while a STORE_LAZY store is pending, is a line the quick index took
	 * at its word, shown as the listing shows it until the validation's
	 * batch takes out any that is no record (store.h).  The walk is
	 * bounded on any bytes; a view still validates what it decodes.
	 * false: a line may be no JSON at all; walk validating. */
	bool valid;
};

struct derived_ops {
	const char *name;
	/* A new, empty state; NULL on -ENOMEM. */
	void *(*create)(void);
	void (*destroy)(void *st);
	/* Everything slow for one batch; *plan owned by the caller until
	 * apply or plan_free.  Returns 0, -ENOMEM, -EIO, ... */
	int (*prepare)(const void *st, const struct derived_batch *b,
		       void **plan);
	/* Install the plan.  Returns 0, or -ENOMEM with st unchanged. */
	int (*apply)(void *st, void *plan);
	void (*plan_free)(void *plan);
	/* Heap bytes the state holds. */
	uint64_t (*bytes)(const void *st);
};

extern const struct derived_ops derived_byhash_ops;
extern const struct derived_ops derived_bymetric_ops;
extern const struct derived_ops derived_failed_ops;

/* The ops of every kind, indexed by enum derived_kind. */
extern const struct derived_ops *const derived_views[DERIVED_COUNT];

/* Run fn over the lines of e[0..n) read from fd, on every online CPU (up
 * to 8) for large batches (decoding every record of a large history is CPU
 * bound): the threads take chunks of records from a shared counter and read
 * runs of records that follow one another in the file with one pread of up
 * to 1 MiB.  fn gets the line (NUL-terminated, without LF), its entry, and
 * `out + i * size` for entry i; it runs on several threads at once, each
 * with its own i.  The first error stops the others and is returned. */
int derived_map(int fd, const struct ent *e, size_t n, void *out,
		size_t size,
		int (*fn)(const char *line, size_t len, const struct ent *e,
			  void *out, void *arg),
		void *arg);

/* --- what the views' public functions need from store.c ------------------
 * store_view_rdlock builds view k if need be and returns with store->lock
 * held shared and *st its state; store_view_unlock releases the lock.
 * Returns 0 or the build's -errno (lock not held then). */
int store_view_rdlock(struct store *s, enum derived_kind k, const void **st);
void store_view_unlock(struct store *s);
/* Is `iter` shown?  store->lock held (shared). */
bool store_has_locked(const struct store *s, int64_t iter);

#endif
