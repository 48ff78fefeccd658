/* iterfs.h - the daemon's private interfaces: the mount context, the cache
 * of rendered views, the invalidation notifier and the operation table.
 *
 * Lifetime (main.c): store_open -> fuse_session_new(&ifs_ops, ifs) ->
 * fuse_session_mount -> fuse_daemonize -> vcache_new, notifier_start,
 * incoming_new, watch_start -> session loop -> watch_stop, incoming_free,
 * notifier_stop, vcache_free -> fuse_session_unmount/destroy -> store_close.
 * Threads are started only after fuse_daemonize (fork keeps one thread).
 */
#ifndef ITERFS_FS_H
#define ITERFS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "buf.h"
#include "incoming.h"
#include "record.h"
#include "store.h"

struct vcache;
struct notifier;

/* One per mount; the fields are set before the session loop starts and
 * are read-only afterwards, so workers read them without a lock. */
struct ifs {
	struct store *store;
	struct incoming *in;      /* NULL with -o ro: no incoming/ */
	struct vcache *vc;
	struct notifier *nt;
	struct fuse_session *se;
	char *dir;                /* the store's directory, absolute (statfs) */
	uid_t uid;                /* owner of every entry: the mounting user */
	gid_t gid;
	bool ro;
	size_t max_record;
	int lock_timeout_ms;
	/* Set by init, before the kernel sends any other request: the mount
	 * is read-only and the kernel can open files without asking us. */
	bool no_open;
};

extern const struct fuse_lowlevel_ops ifs_ops;

/* --- vcache: the last rendered views -------------------------------------
 * getattr must report the exact size, so a view is rendered before it is
 * read; lookup, getattr, open and read of one file then hit the same entry.
 * Entries are keyed by (iteration, line offset, line length, view), so a
 * record replaced by a later line is a different entry.  Sizes are also kept
 * in a larger direct-mapped table, because the kernel asks for attributes
 * again after reads long after the bytes were evicted.  vc->lock (a mutex)
 * guards both; rendering happens outside it.  Thread-safe. */

int vcache_new(size_t slots, struct vcache **out);
void vcache_free(struct vcache *vc);
/* View `k` of the record `rec`: *present says whether the record has that
 * file, *size its length; when `out` is non-NULL, bytes [off, off + max) of
 * it are appended.  Returns 0, -ENOENT (the record is gone), -EIO (also
 * when the line is not a record after all: logged), -ENOMEM. */
int vcache_get(struct vcache *vc, struct store *s, const struct store_rec *rec,
	       enum view_kind k, bool *present, uint64_t *size, uint64_t off,
	       size_t max, struct buf *out);
/* Forget everything (after the store was re-indexed). */
void vcache_clear(struct vcache *vc);

/* --- notifier: store changes -> kernel cache invalidations ---------------
 * The kernel caches entries, attributes, directory listings and file pages
 * for a long time; when the store changes they must be dropped.  The
 * fuse_lowlevel_notify_* calls may block on kernel locks held by a request
 * in flight, so they are made from the notifier's own thread, fed by a
 * queue: notifier_push never blocks on the kernel.  Thread-safe. */

int notifier_start(struct ifs *fs, struct notifier **out);
/* Report a change.  `chg` (copied) as filled by store_changes_take; NULL when
 * only "something was committed" is known (incoming/'s callback).  */
void notifier_push(struct notifier *nt, const struct store_change *chg);
/* Process what is queued, stop the thread, free. */
void notifier_stop(struct notifier *nt);

#endif
