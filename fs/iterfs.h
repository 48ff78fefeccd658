/* iterfs.h - the daemon's private interfaces: the mount context, the
 * invalidation notifier and the operation table.
 *
 * Lifetime (main.c): fuse_session_new(&ifs_ops, ifs) -> store_open (a
 * single file) -> fuse_session_mount -> fuse_daemonize -> hist_start (a
 * single file) and forest_new -> session loop -> forest_free (stops every
 * history: hist_stop) -> fuse_session_unmount/destroy.  Threads are started
 * only after fuse_daemonize (fork keeps one thread); a directory mount
 * starts each history's when the history is first looked up (hist.h).
 */
#ifndef ITERFS_FS_H
#define ITERFS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "buf.h"
#include "forest.h"
#include "store.h"
#include "tree.h"

struct notifier;

/* One per mount; the fields are set before the session loop starts and
 * are read-only afterwards, so workers read them without a lock. */
struct ifs {
	struct forest *forest;    /* which history is where: forest.h */
	struct fuse_session *se;
	char *dir;                /* the store's directory, or the mounted
				   * directory, absolute (statfs) */
	char *mount_opts;         /* as .iterfs/status shows them */
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

struct notifier_opts {
	struct fuse_session *se;
	struct store *store;      /* borrowed: outlive the notifier */
	struct tree *tree;
	uint16_t id;              /* the history's part of inode numbers */
};

int notifier_start(const struct notifier_opts *o, struct notifier **out);
/* Report a change.  `chg` (copied) as filled by store_changes_take; NULL when
 * only "something was committed" is known (incoming/'s callback).  */
void notifier_push(struct notifier *nt, const struct store_change *chg);
/* Process what is queued, stop the thread, free. */
void notifier_stop(struct notifier *nt);

#endif
