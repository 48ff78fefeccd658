/* watch.h - notice when another process changes the store.
 *
 * A thread watches the store's directory with inotify (the store is often
 * replaced by rename, so the file itself cannot be watched) and, because
 * inotify is blind on network filesystems such as NFS, also compares the
 * store's stat once a second.  On a change it calls store_refresh and hands
 * what changed to `fn` (from the watch thread, with no lock held).  A change
 * therefore shows within about a second.
 *
 * Calling sequence: watch_start -> ... -> watch_stop (joins the thread).
 */
#ifndef ITERFS_WATCH_H
#define ITERFS_WATCH_H

#include "store.h"

struct watch;

typedef void (*watch_fn)(const struct store_change *chg, void *arg);

/* Start watching.  The store is borrowed and must outlive the watch.
 * Returns 0, -ENOMEM, or -errno from inotify/pipe/pthread_create. */
int watch_start(struct store *s, watch_fn fn, void *arg, struct watch **out);
void watch_stop(struct watch *w);

#endif
