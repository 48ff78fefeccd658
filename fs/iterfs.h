/* iterfs.h - the daemon's private interfaces: the mount context, the
 * invalidation notifier and the operation table.
 *
 * Lifetime (main.c): store_open -> fuse_session_new(&ifs_ops, ifs) ->
 * fuse_session_mount -> fuse_daemonize -> vcache_new, incoming_new,
 * tree_new, notifier_start, watch_start -> session loop -> watch_stop,
 * incoming_free, notifier_stop, tree_free, vcache_free ->
 * fuse_session_unmount/destroy -> store_close.
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
#include "tree.h"
#include "vcache.h"

struct notifier;

/* One per mount; the fields are set before the session loop starts and
 * are read-only afterwards, so workers read them without a lock. */
struct ifs {
	struct store *store;
	struct incoming *in;      /* NULL with -o ro: no incoming/ */
	struct vcache *vc;
	struct tree *tree;        /* what is where: tree.h */
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
