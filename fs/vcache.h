/* vcache.h - the last rendered views of records (no FUSE).
 *
 * getattr must report the exact size, so a view is rendered before it is
 * read; lookup, getattr and open of one file then hit the same entry.
 * Rendered bytes are keyed by (iteration, tag of the line, view): a record
 * replaced by another line is a different entry, whatever its offset.  The
 * tag of a line is hash_tag (hash.h) of its bytes.
 * Sizes are also kept in a larger direct-mapped table keyed by (iteration,
 * line offset, line length, view), because the kernel asks for attributes
 * again long after the bytes were evicted; it keeps the line's tag too.
 *
 * Rendered bytes are a `struct vview`: immutable once made, and shared by
 * reference between the cache and every open file reading them, so an open
 * takes no copy and an eviction frees nothing a reader still holds.
 *
 * Thread-safety: vc->lock (a mutex) guards both tables and the counters;
 * rendering and file reads happen outside it.  It is a leaf lock.  A
 * vview's reference count is atomic; its bytes are never written after it
 * is handed out, so any number of threads may read them.
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

/* One rendered view (or any fixed bytes, vview_new).  Read-only to its
 * holders: `present` false means the record has no such file (bytes
 * empty). */
struct vview {
	unsigned refs;      /* atomic: the cache's one, and one per holder */
	bool present;
	struct buf bytes;
};

/* A view holding `bytes` (taken over: *bytes is left empty), with one
 * reference for the caller.  Returns 0 or -ENOMEM (*bytes untouched). */
int vview_new(struct buf *bytes, bool present, struct vview **out);
/* Another reference to `v`. */
struct vview *vview_get(struct vview *v);
/* Drop a reference (NULL: nothing); the last one frees the bytes. */
void vview_put(struct vview *v);

/* What the cache did since it was made: views rendered (view_render
 * calls), and lookups of rendered bytes answered without one. */
struct vcache_stats {
	uint64_t renders;
	uint64_t hits;
};

/* `slots` rendered views are kept.  `valid`: every line handed to the
 * cache passed the full validation (store_validates), so views are
 * rendered with view_render_trusted.  Returns 0 or -ENOMEM. */
int vcache_new(size_t slots, bool valid, struct vcache **out);
void vcache_free(struct vcache *vc);
/* Forget everything.  Never needed for correctness (bytes are keyed by
 * tag, sizes checked by generation); frees the memory no open file
 * holds. */
void vcache_clear(struct vcache *vc);
void vcache_stats(struct vcache *vc, struct vcache_stats *st);

/* FNV-1a of `len` bytes.  Only the hashed inode numbers of names
 * (tree.c's name_hash) use it, and they must stay what they were: record
 * lines are tagged by hash_tag. */
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

/* A reference to view `k` of `line` (the line of iteration `iter`, whose
 * tag is `tag`): the cached one, or rendered now and cached.  The caller
 * drops it with vview_put.  Returns 0, -EIO (not a JSON object: logged
 * with `path`), -ENOMEM. */
int vcache_get(struct vcache *vc, const char *path, int64_t iter,
	       uint64_t tag, const char *line, size_t len, enum view_kind k,
	       struct vview **out);

/* A reference to the rendered view `k` of the line of iteration `iter`
 * with tag `tag`, if it is still cached.  Returns 0 or -ENOENT (not
 * cached). */
int vcache_find(struct vcache *vc, int64_t iter, uint64_t tag,
		enum view_kind k, struct vview **out);

/* As vcache_get and vcache_find, appending a copy of the bytes to `out`
 * instead (*present: whether the record has the file; nothing appended
 * when not).  Return as those, and -ENOMEM. */
int vcache_render(struct vcache *vc, const char *path, int64_t iter,
		  uint64_t tag, const char *line, size_t len, enum view_kind k,
		  bool *present, struct buf *out);
int vcache_peek(struct vcache *vc, int64_t iter, uint64_t tag,
		enum view_kind k, bool *present, struct buf *out);

#endif
