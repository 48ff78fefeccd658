/* commit.h - validate and normalise drops against a store (no I/O but reads
 * of the store).
 *
 * A drop is the bytes a writer put in incoming/ or gave iterfs-commit: one
 * JSON object (pretty or compact), or several separated by whitespace (one per
 * line), which commit together, all or none.  Each object becomes one line:
 * insignificant whitespace removed, every other byte kept, then
 *   - no iteration number: highest + 1 (counting records accepted earlier in
 *     the same plan), under the key the store already uses ("iteration" for
 *     an empty store), inserted as the first member;
 *   - no "timestamp": now, ISO 8601 local time with microseconds, appended;
 *   - a store whose records carry "code_hash": filled in for records with
 *     code, appended; a given code_hash that does not match is -EINVAL.
 * Errors (with a one-line reason in `why`):
 *   -EINVAL  not JSON, not an object, a field of the wrong type, bad code_hash
 *   -EEXIST  the number is taken by a different record; a byte-identical
 *            re-send (same compact bytes as the stored line) is accepted as a
 *            no-op and adds nothing
 *   -EFBIG   the drop is larger than max_record bytes
 *   -ENOMEM
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

/* Read the store's dialect (iteration key, code_hash use, highest number).
 * The store must stay unchanged while the plan lives.  Returns 0, -ENOMEM,
 * -EIO. */
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
