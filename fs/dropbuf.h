/* dropbuf.h - the bytes of one drop: in memory while small, in an anonymous
 * file beside the store once large, so that many large open drops cost
 * bounded memory.
 *
 * Calling sequence:
 *   dropbuf_pool_new(dir, opts, &pool)     one per drop box
 *   dropbuf_new(pool, &db)                 one per drop
 *   dropbuf_write / _truncate / _read / _size
 *   dropbuf_view(db, off, len, &v) ... dropbuf_view_release(&v)
 *   dropbuf_free(db); dropbuf_pool_free(pool)
 *
 * A drop lives in memory until it grows past `spill_at` bytes, or until the
 * bytes all drops of the pool hold in memory would pass `mem_budget`; then
 * its bytes move to an unnamed file (O_TMPFILE, mode 0600) in the pool's
 * directory, which is the store's: the same privacy and the same disk as the
 * store, and nothing is left behind by a crash.  A filesystem without
 * O_TMPFILE gets a named file that is unlinked at once.
 *
 * A view is a stable pointer to a range, for a reader that runs without the
 * owner's lock (the committer thread, a keep): a private copy of an
 * in-memory range, a read-only mapping of a spilled one.  The owner must not
 * rewrite or truncate that range while a view of it exists (appending past
 * it is fine).
 *
 * Thread-safety: a dropbuf and its pool are guarded by the owner's lock
 * (incoming's in->lock); views may be read and released from any thread.
 */
#ifndef ITERFS_DROPBUF_H
#define ITERFS_DROPBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dropbuf_pool;
struct dropbuf;

struct dropbuf_opts {
	size_t spill_at;   /* a drop larger than this goes to disk */
	size_t mem_budget; /* bytes all in-memory drops may hold together */
};

#define DROPBUF_SPILL_AT_DEFAULT ((size_t)1 << 20)
#define DROPBUF_MEM_BUDGET_DEFAULT ((size_t)64 << 20)

struct dropbuf_view {
	const char *p;     /* the bytes; "" for an empty range */
	size_t len;
	void *map;         /* private: mapping to unmap, or copy to free */
	size_t map_len;
};

/* `dir` is copied.  Returns 0 or -ENOMEM. */
int dropbuf_pool_new(const char *dir, const struct dropbuf_opts *o,
		     struct dropbuf_pool **out);
/* Every dropbuf of the pool must have been freed. */
void dropbuf_pool_free(struct dropbuf_pool *pool);
/* Bytes the pool's drops hold in memory now (for the status and tests). */
size_t dropbuf_pool_mem(const struct dropbuf_pool *pool);

int dropbuf_new(struct dropbuf_pool *pool, struct dropbuf **out);
void dropbuf_free(struct dropbuf *db);

uint64_t dropbuf_size(const struct dropbuf *db);
/* True once the bytes live in a file. */
bool dropbuf_spilled(const struct dropbuf *db);

/* Write n bytes at off; a hole before off reads as zeros.  Returns 0,
 * -ENOMEM, or the -errno of creating or writing the spill file (-ENOSPC,
 * -EIO, ...; the logged line names the directory). */
int dropbuf_write(struct dropbuf *db, const void *p, size_t n, uint64_t off);
/* Cut or extend (with zeros) to `size`.  Returns 0 or -errno as above. */
int dropbuf_truncate(struct dropbuf *db, uint64_t size);
/* Copy up to n bytes from off into out; *got is how many (0 at the end).
 * Returns 0 or -errno. */
int dropbuf_read(const struct dropbuf *db, uint64_t off, size_t n, void *out,
		 size_t *got);

/* A stable view of [off, off + len), which must lie within the size.
 * Returns 0, -ENOMEM, or the -errno of mmap. */
int dropbuf_view(const struct dropbuf *db, uint64_t off, size_t len,
		 struct dropbuf_view *v);
void dropbuf_view_release(struct dropbuf_view *v);

#endif
