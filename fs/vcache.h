/* vcache.h - the last rendered views of records (no FUSE).
 *
 * getattr must report the exact size, so a view is rendered before it is
 * read; lookup, getattr and open of one file then hit the same entry.
 * Rendered bytes are keyed by (iteration, tag of the line, view): a record
 * replaced by another line is a different entry, whatever its offset.
 * Sizes are also kept in a larger direct-mapped table keyed by (iteration,
 * line offset, line length, view), because the kernel asks for attributes
 * again long after the bytes were evicted; it keeps the line's tag too.
 *
 * Thread-safety: vc->lock (a mutex) guards both tables; rendering and file
 * reads happen outside it.  It is a leaf lock.
 */
#ifndef ITERFS_VCACHE_H
#define ITERFS_VCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "record.h"
#include "store.h"

struct vcache;

/* `slots` rendered views are kept.  Returns 0 or -ENOMEM. */
int vcache_new(size_t slots, struct vcache **out);
void vcache_free(struct vcache *vc);
/* Forget everything.  Never needed for correctness (bytes are keyed by
 * tag, sizes checked by generation); frees the memory. */
void vcache_clear(struct vcache *vc);

/* A 64-bit hash of a record line's bytes: equal lines, equal tags. */
uint64_t vcache_tag(const char *line, size_t len);

/* Attributes of view `k` of the record `rec`, found at store generation
 * `gen` (store_stats): a size noted at another generation is checked
 * against the line again, since a store rewritten in place may hold other
 * bytes at the same offset and length. *present says whether the
 * record has that file, *size its length, *tag the tag of the line it was
 * rendered from.  Returns 0, -ENOENT (the record is gone), -EIO (also when
 * the line is not a record after all: logged), -ENOMEM. */
int vcache_attr(struct vcache *vc, struct store *s, const struct store_rec *rec,
		uint64_t gen, enum view_kind k, bool *present, uint64_t *size,
		uint64_t *tag);

/* Append the whole view `k` of `line` (the line of iteration `iter`, whose
 * tag is `tag`) to `out`; *present as above (nothing appended when false).
 * Returns 0, -EIO (not a JSON object: logged with `path`), -ENOMEM. */
int vcache_render(struct vcache *vc, const char *path, int64_t iter,
		  uint64_t tag, const char *line, size_t len, enum view_kind k,
		  bool *present, struct buf *out);

/* The rendered view `k` of the line of iteration `iter` with tag `tag`, if
 * it is still cached (appended to `out`, *present as above).  Returns 0,
 * -ENOENT (not cached), -ENOMEM. */
int vcache_peek(struct vcache *vc, int64_t iter, uint64_t tag,
		enum view_kind k, bool *present, struct buf *out);

#endif
