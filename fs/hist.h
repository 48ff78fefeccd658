/* hist.h - one history served: its store, view cache, drop box, tree,
 * invalidation notifier and watch, started together and stopped together.
 *
 * A single-file mount starts one at mount, with part 0 of the inode
 * numbers; a directory mount starts one per history at its first lookup
 * (forest.h), with the history's own part.
 *
 * Calling sequence: hist_start(store, &opts, &h) (takes the store: closed by
 * hist_stop, also when hist_start fails) -> ... -> hist_stop(h): stops the
 * watch, commits what the drop box still queues, stops the notifier,
 * frees.  Threads are started with the session loop's signals blocked, so
 * that only the loop's thread sees them.
 */
#ifndef ITERFS_HIST_H
#define ITERFS_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "forest.h"
#include "store.h"

struct hist_opts {
	struct fuse_session *se;  /* for the kernel cache invalidations */
	uint16_t id;              /* the part of its inode numbers (ino.h) */
	bool ro;                  /* no incoming/ */
	size_t max_record;
	int lock_timeout_ms;
	uid_t uid;
	gid_t gid;
	const char *mount_opts;   /* shown in .iterfs/status */
};

struct hist;

/* Returns 0, -ENOMEM, or the -errno of a thread that could not start
 * (logged). */
int hist_start(struct store *s, const struct hist_opts *o, struct hist **out);
void hist_stop(struct hist *h);

/* What the forest routes to (owner: h). */
void hist_parts(struct hist *h, struct forest_hist *fh);

#endif
