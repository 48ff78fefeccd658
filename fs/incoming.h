/* incoming.h - the drop box behind incoming/: a directory whose plain files
 * commit when they are closed.
 *
 * Names (the contract, ../shared/spec/tree.md, "The commit"):
 *   - a plain name (not starting with '.') is a drop: every close() of a
 *     descriptor opened for writing (FLUSH) commits the bytes written since
 *     the last commit, and is answered only once they are durable or
 *     rejected; fsync() of such a descriptor commits now;
 *   - a name starting with '.' is a staging name (rsync's, vim's, Python
 *     tempfile's temps): it never commits on close or fsync; renaming it to
 *     a plain name commits it, and the rename is answered with the commit's
 *     result;
 *   - "<k>.rejected" and "<k>.reason" are kept rejected drops (0444), files
 *     of "<store>.rejected/" (keep.h), until the user removes them.
 * Bytes are buffered per inode, not per handle (dup'd descriptors and shell
 * redirections close several times), in memory or spilled to disk past a
 * threshold (dropbuf.h).  A flush that finds JSON merely unfinished answers
 * -EINVAL and keeps the drop open for other descriptors; the last release
 * keeps whatever never committed as rejected.  A drop that committed stops
 * being listed, but its name still resolves for `grace_ms` (stat, chmod,
 * utimensat, rename and unlink of it succeed and change nothing), because
 * cp, install and rsync touch the name again after close().
 *
 * Answers: incoming_flush, _fsync, _rename and _release answer through
 * `reply(arg, result)` exactly once, either before they return or later
 * from the committer thread; no caller's thread waits for a commit.
 * incoming_interrupt(arg) answers -EINTR for a request whose commit has not
 * started (committer.h says when it starts); its drop is then kept as
 * rejected at the last release, never committed behind the writer's back.
 *
 * Inode numbers of incoming/ entries are >= INCOMING_INO_BASE and are not
 * stable across mounts (drops are transient).  Entries change under the
 * kernel's feet, so their entry and attribute timeouts must be 0 and their
 * opens direct_io.
 *
 * Threads: any thread may call any function.  in->lock guards the table;
 * lock order: in->lock, then the committer's lock, then (inside the keep
 * and writer modules) their own.  `reply` and `changed` are called with no
 * lock held.
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

#include "ino.h"
#define INCOMING_GRACE_MS_DEFAULT 10000

struct incoming;
struct committer_backend;

struct incoming_opts {
	size_t max_record;        /* drops larger than this: -EFBIG */
	int lock_timeout_ms;      /* store lock wait; < 0: for ever */
	int grace_ms;             /* a committed name resolves this long */
	size_t spill_at;          /* 0: dropbuf's defaults */
	size_t mem_budget;
	uid_t uid;                /* owner shown for entries */
	gid_t gid;
	/* Called by the committer thread after a commit changed the store; it
	 * must not call back into incoming_*.  May be NULL. */
	void (*changed)(void *arg);
	void *arg;
	/* Tests replace the store writer (committer.h); NULL in the daemon. */
	const struct committer_backend *backend;
};

struct incoming_attr {
	uint64_t ino;
	mode_t mode;              /* S_IFREG | perm */
	uid_t uid;
	gid_t gid;
	uint64_t size;
	struct timespec mtime;
};

struct incoming_dirent {
	char name[256];
	struct incoming_attr attr;
};

/* What setattr may change; a field is used when its `set_` flag is. */
struct incoming_setattr {
	bool set_mode, set_uid, set_gid, set_size, set_mtime;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	uint64_t size;
	struct timespec mtime;
};

typedef void incoming_reply_fn(void *arg, int result);

/* Start the drop box and its committer.  The store and opts are borrowed;
 * the store must outlive the drop box.  Rejected drops of earlier mounts are
 * listed again (and stale temps beside them removed).  Returns 0, -ENOMEM,
 * or the -errno of reading "<store>.rejected/" or starting the thread. */
int incoming_new(struct store *s, const struct incoming_opts *o,
		 struct incoming **out);
/* Stop the committer (after committing what is queued), keep every drop
 * that never committed as rejected ("unmounted before ..."), free. */
void incoming_free(struct incoming *in);

/* For .iterfs/status: drops waiting for their commit now, and how long
 * the last group commit took (ns; 0: none yet). */
void incoming_stats(struct incoming *in, size_t *waiting,
		    uint64_t *last_commit_ns);

/* Name -> attributes (listed entries, and committed names in their grace
 * period).  Returns 0, -ENOENT, -ENAMETOOLONG. */
int incoming_lookup(struct incoming *in, const char *name,
		    struct incoming_attr *a);
int incoming_getattr(struct incoming *in, uint64_t ino,
		     struct incoming_attr *a);
/* Listed entries from rank `start`, at most `max`; *n written.  Returns 0. */
int incoming_list(struct incoming *in, size_t start,
		  struct incoming_dirent *out, size_t max, size_t *n);

/* Create a new empty drop and open it once (a committed name in its grace
 * period is replaced).  Returns 0, -EEXIST, -ENAMETOOLONG, -EINVAL ("." /
 * ".." / ends in .rejected or .reason), -ENOMEM. */
int incoming_create(struct incoming *in, const char *name, mode_t mode,
		    struct incoming_attr *a);
/* Open an entry (a drop, or a kept file for reading); O_TRUNC on a drop
 * opened for writing starts it over.  Returns 0, -ENOENT, -EACCES (writing
 * a kept file). */
int incoming_open(struct incoming *in, uint64_t ino, int flags);
/* Write at `off` (a hole reads as zeros).  Returns 0 when all n bytes were
 * taken, -ENOENT, -EACCES (a kept file), -EINVAL (would change committed
 * bytes), -EFBIG (past max_record: the bytes are still taken, so that the
 * kept copy is whole, and the drop fails with EFBIG until truncated),
 * -ENOMEM, -ENOSPC/-EIO (spill file). */
int incoming_write(struct incoming *in, uint64_t ino, const char *data,
		   size_t n, uint64_t off);
/* Append up to `size` bytes from `off` to out.  Returns 0 or -errno. */
int incoming_read(struct incoming *in, uint64_t ino, uint64_t off,
		  size_t size, struct buf *out);
/* chmod, chown, utimensat, truncate.  Drops take all of them; kept files
 * only times (ignored), others -EPERM.  Returns 0, -ENOENT, -EPERM,
 * -EINVAL (a size below committed bytes), -EFBIG. */
int incoming_setattr(struct incoming *in, uint64_t ino,
		     const struct incoming_setattr *sa);

/* close() of a descriptor opened for writing: commit what is new.  The
 * answer: 0 (committed, or nothing to commit, or a staging name), -EINVAL,
 * -EEXIST, -EFBIG, -ENOSPC, -EIO, -ETIMEDOUT, -EINTR. */
void incoming_flush(struct incoming *in, uint64_t ino, incoming_reply_fn *reply,
		    void *arg);
/* fsync() of a descriptor opened for writing: as flush. */
void incoming_fsync(struct incoming *in, uint64_t ino, incoming_reply_fn *reply,
		    void *arg);
/* The last close of a handle (the answer is always 0: nobody waits for
 * it).  At the last one a drop's uncommitted bytes are kept as rejected. */
void incoming_release(struct incoming *in, uint64_t ino,
		      incoming_reply_fn *reply, void *arg);
/* rename(2) within incoming/ (flags: RENAME_NOREPLACE; RENAME_EXCHANGE is
 * -EINVAL).  Staging -> plain commits; plain or staging -> staging only
 * moves the name; a committed name in its grace period: no-op, 0; a kept
 * file: -EXDEV (mv then copies it, which commits it).  A commit that lands
 * on "<k>.rejected" removes that kept drop (sed -i fixed it). */
void incoming_rename(struct incoming *in, const char *name,
		     const char *newname, unsigned flags,
		     incoming_reply_fn *reply, void *arg);
/* The request `arg` was interrupted: answer it -EINTR if its commit has
 * not started. */
void incoming_interrupt(struct incoming *in, void *arg);
/* rm: a drop is discarded (nothing committed nor kept), a committed name in
 * its grace period forgotten, a kept file removed.  Returns 0 or -ENOENT. */
int incoming_unlink(struct incoming *in, const char *name);

#endif
