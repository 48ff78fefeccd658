/* notify.c - turn store changes into kernel cache invalidations (see
 * iterfs.h).
 *
 * The thread keeps the list of iteration numbers the kernel may have seen
 * (`known`), so that it can tell which ones vanished after a re-index and
 * drop their cached entries.  Changes queued while it works are coalesced
 * into one pass.
 */
#include "iterfs.h"
#include "ino.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct notifier {
	struct notifier_opts o;
	pthread_t thread;
	pthread_mutex_t lock; /* guards the fields up to `iters` */
	pthread_cond_t cond;  /* signalled on push and stop */
	bool stop;
	bool pending;
	bool reset;
	int64_t *iters;       /* replaced or new iterations, unsorted */
	size_t niters;
	size_t capiters;
	int64_t *known;       /* the thread's own: ascending */
	size_t nknown;
};

/* The whole iteration list, ascending, in a new array. */
static int list_all(struct store *s, int64_t **out, size_t *n)
{
	size_t cap = 1024, len = 0, got;
	int64_t *v = malloc(cap * sizeof(*v)), *nv;
	int r;

	if (!v)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			nv = realloc(v, 2 * cap * sizeof(*v));
			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap *= 2;
		}
		r = store_list(s, len, v + len, cap - len, &got);
		if (r < 0) {
			free(v);
			return r;
		}
		if (got == 0)
			break;
		len += got;
	}
	*out = v;
	*n = len;
	return 0;
}

/* Both take the history's own (local) numbers. */
static void inval_inode(struct notifier *nt, uint64_t ino)
{
	int r = fuse_lowlevel_notify_inval_inode(nt->o.se,
						 ino_global(nt->o.id, ino), 0, 0);

	/* -ENOENT: the kernel does not hold that inode, nothing to drop. */
	if (r < 0 && r != -ENOENT)
		log_debug("invalidate inode %" PRIu64 ": %s", ino,
			  strerror(-r));
}

static void inval_entry(struct notifier *nt, uint64_t parent, const char *name)
{
	int r = fuse_lowlevel_notify_inval_entry(nt->o.se,
						 ino_global(nt->o.id, parent),
						 name, strlen(name));

	if (r < 0 && r != -ENOENT)
		log_debug("invalidate entry %s in %" PRIu64 ": %s", name,
			  parent, strerror(-r));
}

/* Everything cached about iterations/<n>/: its pages, attributes, listing
 * and the names in it (a replacing record may lack a file). */
static void inval_iteration(struct notifier *nt, int64_t n, bool gone)
{
	char name[32];
	int k;

	if (!ino_iter_ok(n))
		return;
	for (k = 0; k < VIEW_COUNT; k++) {
		inval_inode(nt, ino_make(n, (enum ino_kind)(IK_VIEW + k)));
		inval_entry(nt, ino_make(n, IK_ITER_DIR),
			    view_name((enum view_kind)k));
	}
	inval_inode(nt, ino_make(n, IK_ITER_DIR));
	inval_inode(nt, ino_make(n, IK_HASH_CODE));
	if (gone) {
		snprintf(name, sizeof(name), "%" PRId64, n);
		inval_entry(nt, INO_ITERATIONS, name);
	}
}

static bool contains(const int64_t *v, size_t n, int64_t x)
{
	size_t lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (v[mid] == x)
			return true;
		if (v[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void apply(struct notifier *nt, bool reset, const int64_t *iters,
		  size_t niters)
{
	bool lost_changed;
	int64_t *now;
	size_t nnow, i, j;
	int r;

	r = list_all(nt->o.store, &now, &nnow);
	if (r < 0) {
		log_err("invalidating caches after a store change: %s",
			strerror(-r));
		return;
	}
	/* The view cache needs no clearing: its bytes are keyed by the
	 * line's tag and its sizes checked against the store's generation
	 * (vcache.h); the versions it still holds serve reads without an
	 * open of a record just replaced (tree.h). */
	/* Lost lines are written beside the store when it changes. */
	tree_changed(nt->o.tree, &lost_changed);
	if (lost_changed) {
		inval_inode(nt, INO_LOSTFOUND);
		inval_entry(nt, INO_ROOT, "lost+found");
	}

	/* The directories that list iterations, and latest's name. */
	inval_inode(nt, INO_ROOT);
	inval_inode(nt, INO_ITERATIONS);
	inval_inode(nt, INO_BYHASH);
	inval_inode(nt, INO_BYMETRIC);
	inval_inode(nt, INO_FAILED);
	inval_entry(nt, INO_ROOT, "latest");

	/* Both lists ascend: one merge finds the vanished numbers. */
	for (i = 0, j = 0; i < nt->nknown; i++) {
		while (j < nnow && now[j] < nt->known[i])
			j++;
		if (j < nnow && now[j] == nt->known[i]) {
			if (reset)
				inval_iteration(nt, now[j], false);
			continue;
		}
		inval_iteration(nt, nt->known[i], true);
	}
	/* Replaced by a later line: the names now lead to new inodes (tree.h). */
	for (i = 0; !reset && i < niters; i++)
		if (contains(nt->known, nt->nknown, iters[i]))
			inval_iteration(nt, iters[i], false);

	free(nt->known);
	nt->known = now;
	nt->nknown = nnow;
}

static void *notifier_main(void *arg)
{
	struct notifier *nt = arg;
	int64_t *iters;
	size_t niters;
	bool reset;

	pthread_mutex_lock(&nt->lock);
	for (;;) {
		if (!nt->pending) {
			if (nt->stop)
				break;
			pthread_cond_wait(&nt->cond, &nt->lock);
			continue;
		}
		reset = nt->reset;
		iters = nt->iters;
		niters = nt->niters;
		nt->pending = nt->reset = false;
		nt->iters = NULL;
		nt->niters = nt->capiters = 0;
		pthread_mutex_unlock(&nt->lock);

		apply(nt, reset, iters, niters);
		free(iters);

		pthread_mutex_lock(&nt->lock);
	}
	pthread_mutex_unlock(&nt->lock);
	return NULL;
}

int notifier_start(const struct notifier_opts *o, struct notifier **out)
{
	struct notifier *nt = calloc(1, sizeof(*nt));
	int r;

	if (!nt)
		return -ENOMEM;
	nt->o = *o;
	r = list_all(o->store, &nt->known, &nt->nknown);
	if (r < 0)
		goto out_free;
	r = -pthread_mutex_init(&nt->lock, NULL);
	if (r < 0)
		goto out_known;
	r = -pthread_cond_init(&nt->cond, NULL);
	if (r < 0)
		goto out_mutex;
	r = -pthread_create(&nt->thread, NULL, notifier_main, nt);
	if (r < 0)
		goto out_cond;
	*out = nt;
	return 0;

out_cond:
	pthread_cond_destroy(&nt->cond);
out_mutex:
	pthread_mutex_destroy(&nt->lock);
out_known:
	free(nt->known);
out_free:
	free(nt);
	return r;
}

void notifier_push(struct notifier *nt, const struct store_change *chg)
{
	size_t need, cap;
	int64_t *v;

	pthread_mutex_lock(&nt->lock);
	nt->pending = true;
	if (chg && chg->reset)
		nt->reset = true;
	if (chg && chg->n && !nt->reset) {
		need = nt->niters + chg->n;
		if (need > nt->capiters) {
			cap = need < 64 ? 64 : 2 * need;
			v = realloc(nt->iters, cap * sizeof(*v));
			if (!v) {
				/* Cannot list them: invalidate everything. */
				nt->reset = true;
				goto out;
			}
			nt->iters = v;
			nt->capiters = cap;
		}
		memcpy(nt->iters + nt->niters, chg->iters,
		       chg->n * sizeof(*chg->iters));
		nt->niters = need;
	}
out:
	pthread_cond_signal(&nt->cond);
	pthread_mutex_unlock(&nt->lock);
}

void notifier_stop(struct notifier *nt)
{
	if (!nt)
		return;
	pthread_mutex_lock(&nt->lock);
	nt->stop = true;
	pthread_cond_signal(&nt->cond);
	pthread_mutex_unlock(&nt->lock);
	pthread_join(nt->thread, NULL);
	pthread_cond_destroy(&nt->cond);
	pthread_mutex_destroy(&nt->lock);
	free(nt->iters);
	free(nt->known);
	free(nt);
}
