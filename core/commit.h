/* commit.h - validate and normalise drops against a store (no I/O but reads
 * of the store).
 *
 * A drop is the bytes a writer put in incoming/ or gave iterfs-commit: one
 * JSON object (pretty or compact), or several separated by whitespace (one per
 * line), which commit together, all or none; a UTF-8 BOM before it is
 * ignored.  Each object becomes one line: insignificant whitespace removed,
 * every other byte kept, and
 *   - the dialect of the store: a key that is an alias of a dialect field
 *     (iteration/iteration_num, code/strategy_code, feedback/feedback_used;
 *     record.h) is written under the name the store's records use (the
 *     latest record carrying the field), into an empty store under the
 *     drop's own (and then the plan's first);
 *   - no iteration number: highest + 1 (counting records accepted earlier in
 *     the same plan), inserted as the first member under the store's key
 *     (empty store: "iteration_num" when the drop uses "strategy_code",
 *     else "iteration");
 *   - no "timestamp": now, ISO 8601 local time with microseconds, appended;
 *   - a store whose records carry "code_hash": filled in for records with
 *     code, appended; a given code_hash that does not match is -EINVAL.
 * Errors (with a one-line reason in `why`, at most COMMIT_WHY_LEN - 1 bytes):
 *   -EINVAL  not JSON, not an object; a member of the wrong type for the
 *            table of record fields (record_member_ok: "timestamp" not ISO
 *            8601, "error": 3, ...); two aliases of one field with different
 *            values (both keys named); an explicit number above
 *            STORE_ITER_MAX, or no number left below it; an incomplete
 *            record: it lacks a field every record of the store carries, or
 *            gives one a JSON type that field never had there (number,
 *            timestamp and code_hash excepted; the reason lists the missing
 *            fields, then the mistyped ones, ending in "..." when they do
 *            not all fit); bad code_hash
 *   -EEXIST  the number is taken by a different record; a byte-identical
 *            re-send (same compact bytes as the stored line) is accepted as a
 *            no-op and adds nothing
 *   -EFBIG   the drop is larger than max_record bytes
 *   -ENOMEM
 * What the store requires comes from its index (store_shape), read once by
 * commit_plan_new: the store is not re-read per commit.
 *
 * Calling sequence (the writer does this under the store's flock, after a
 * store_refresh):  commit_plan_new -> commit_plan_add per drop ->
 * commit_plan_lines -> commit_plan_free.  A plan is used by one thread.
 */
#ifndef ITERFS_COMMIT_H
#define ITERFS_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define COMMIT_WHY_LEN 256

struct commit_plan;

/* Read the store's dialect and shape (store_shape), its code_hash use and
 * highest number.  The store must stay unchanged while the plan lives.
 * Returns 0, -ENOMEM, -EIO. */
int commit_plan_new(struct store *s, struct commit_plan **out);

/* Validate one drop and, if all of it is good, add its lines to the plan.
 * *count is the number of new records (0 for a pure re-send), *first and
 * *last their iteration numbers (-1 when *count is 0).  On error the plan
 * is unchanged and `why` says what was wrong.  Returns 0, -EINVAL,
 * -EEXIST, -EFBIG, -ENOMEM. */
int commit_plan_add(struct commit_plan *p, const char *drop, size_t len,
		    size_t max_record, size_t *count, int64_t *first,
		    int64_t *last, char why[COMMIT_WHY_LEN]);

/* The normalised lines accepted so far, each ending in LF (owned by the
 * plan). */
const char *commit_plan_lines(const struct commit_plan *p, size_t *len);

void commit_plan_free(struct commit_plan *p);

#endif
