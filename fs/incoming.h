/* incoming.h - the drop box behind incoming/: buffers, the committer thread
 * and the rejected drops.
 *
 * A drop is one file a writer creates in incoming/.  Its bytes are buffered
 * per inode (not per handle: dup'd descriptors and shell redirections flush
 * several times).  incoming_flush commits the buffer when it holds a complete
 * drop: it queues the drop for the committer thread, which takes every drop
 * waiting at that moment into one writer_commit (group commit), and returns
 * only once the drop is durable or rejected.  Rules:
 *   - empty buffer, or a buffer whose JSON is merely unfinished: no-op, 0;
 *   - already committed (a later flush of the same bytes): 0;
 *   - invalid drop: the error (-EINVAL, -EEXIST, -EFBIG, -ENOSPC, -EIO).
 * At the last release a drop that never committed (never flushed, or
 * rejected) is kept as a rejected drop: its bytes and a one-line reason are
 * written durably to "<store>.rejected/<name>" and "<name>.reason" beside the
 * store, and both show up in incoming/ as "<name>.rejected" and
 * "<name>.reason" (0444) until the user removes them with rm.
 *
 * A failed commit keeps the drop right away (before flush returns the
 * error), so the writer finds the reason as soon as close() fails, and the
 * drop's own name vanishes (a re-send under that name is a new drop); a
 * drop that is changed through an open handle and then commits after all
 * has its kept copy removed.
 * After a successful commit the name vanishes from incoming/ (lookup
 * -ENOENT) but open handles keep working: bytes written past the committed
 * ones form a new drop that commits at the next flush; rewriting committed
 * bytes is -EINVAL (truncate to 0 starts over).  An empty drop closed
 * without content is discarded.  Kept names are "<name>" (cut to 231
 * bytes), then "<name>.1", "<name>.2"... when taken.
 *
 * The caller (ops.c) calls incoming_flush and incoming_fsync only for
 * handles opened for writing (a cat of a drop being written must not commit
 * it), and incoming_release once per successful create/open.  Entries
 * change under the kernel's feet (a commit removes a name), so their entry
 * and attribute timeouts must be 0 and their opens direct_io.
 *
 * Inode numbers of incoming/ entries are >= INCOMING_INO_BASE and are not
 * stable across mounts (drops are transient).
 *
 * Threads: any FUSE worker thread may call any function; in->lock guards the
 * drop table; the committer thread owns the writer.  Lock order:
 * in->lock, then (inside writer_commit) the store flock and store->lock.
 * Callbacks are invoked with no lock held.
 */
#ifndef ITERFS_INCOMING_H
#define ITERFS_INCOMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "store.h"

#define INCOMING_INO_BASE ((uint64_t)1 << 62)

struct incoming;

struct incoming_opts {
	size_t max_record;        /* drops larger than this: -EFBIG */
	uid_t uid;                /* owner shown for entries */
	gid_t gid;
	/* Called by the committer thread after a commit changed the store
	 * (chg as filled by writer's store_adopt); it must not call back into
	 * incoming_*.  May be NULL. */
	void (*changed)(void *arg);
	void *arg;
};

struct incoming_attr {
	uint64_t ino;
	mode_t mode;              /* S_IFREG | 0644 drop, 0444 rejected/reason */
	uint64_t size;
	struct timespec mtime;
};

struct incoming_dirent {
	char name[256];
	struct incoming_attr attr;
};

/* Start the drop box and its committer thread.  The store and opts are
 * borrowed; the store must outlive the drop box.  Returns 0, -ENOMEM, or
 * -errno from pthread_create / reading the rejected directory. */
int incoming_new(struct store *s, const struct incoming_opts *o,
		 struct incoming **out);
/* Stop the committer (after answering every queued drop), keep every drop
 * that never committed as rejected ("unmounted before the drop was
 * closed"), free everything. */
void incoming_free(struct incoming *in);

bool incoming_owns(uint64_t ino);

/* Name -> attributes.  Returns 0 or -ENOENT. */
int incoming_lookup(struct incoming *in, const char *name,
		    struct incoming_attr *a);
int incoming_getattr(struct incoming *in, uint64_t ino,
		     struct incoming_attr *a);
/* Entries from rank `start`, at most `max`; *n written.  Returns 0. */
int incoming_list(struct incoming *in, size_t start,
		  struct incoming_dirent *out, size_t max, size_t *n);

/* Create a new empty drop and open it once.  Returns 0, -EEXIST, -EINVAL
 * (name not allowed: "." / ".." / too long / ends in .rejected or .reason),
 * -ENOMEM. */
int incoming_create(struct incoming *in, const char *name,
		    struct incoming_attr *a);
/* Open an existing entry (a drop for writing, or a rejected file for
 * reading); O_TRUNC empties a drop.  Returns 0, -ENOENT, -EACCES (writing a
 * rejected file). */
int incoming_open(struct incoming *in, uint64_t ino, int flags);
/* Write at `off` (a hole is filled with zeros).  Returns 0 when all n
 * bytes were taken, -ENOENT, -EACCES (not a drop), -EINVAL (would change
 * committed bytes), -EFBIG (past max_record: the drop then fails with
 * EFBIG until truncated), -ENOMEM. */
int incoming_write(struct incoming *in, uint64_t ino, const char *data,
		   size_t n, uint64_t off);
/* Append up to `size` bytes from `off` to out.  Returns 0 or -ENOENT. */
int incoming_read(struct incoming *in, uint64_t ino, uint64_t off,
		  size_t size, struct buf *out);
int incoming_truncate(struct incoming *in, uint64_t ino, uint64_t size);
int incoming_flush(struct incoming *in, uint64_t ino);
/* Commit now, whatever the state of the JSON: an unfinished drop is
 * -EINVAL. */
int incoming_fsync(struct incoming *in, uint64_t ino);
int incoming_release(struct incoming *in, uint64_t ino);
/* rm of a drop (discarded, nothing committed) or of a rejected file (the
 * file beside the store is removed).  Returns 0 or -ENOENT. */
int incoming_unlink(struct incoming *in, const char *name);

#endif
