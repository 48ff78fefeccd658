/* hist.c - one history served (see hist.h). */
#include "hist.h"
#include "iterfs.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "watch.h"

#define VCACHE_SLOTS 256

struct hist {
	struct store *store;
	struct vcache *vc;
	struct incoming *in;      /* NULL with ro */
	struct tree *tree;
	struct notifier *nt;
	struct watch *w;
};

static void on_store_change(const struct store_change *chg, void *arg)
{
	struct hist *h = arg;

	notifier_push(h->nt, chg);
}

/* What the store's change log holds, to the notifier.  The validation
 * thread's callback when the full validation behind the quick index
 * (store.h) found lines that differ; also the end of on_commit. */
static void push_changes(void *arg)
{
	struct hist *h = arg;
	struct store_change chg;

	store_changes_take(h->store, &chg);
	notifier_push(h->nt, chg.changed ? &chg : NULL);
	store_change_free(&chg);
}

static void on_commit(void *arg)
{
	struct hist *h = arg;
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	tree_note_commit(h->tree, &now);
	/* The commit itself, and whatever another process had changed that
	 * the writer's refresh absorbed before it. */
	push_changes(h);
}

int hist_start(struct store *s, const struct hist_opts *o, struct hist **out)
{
	struct hist *h = calloc(1, sizeof(*h));
	struct incoming_opts io = {
		.max_record = o->max_record,
		.lock_timeout_ms = o->lock_timeout_ms,
		.grace_ms = INCOMING_GRACE_MS_DEFAULT,
		.uid = o->uid,
		.gid = o->gid,
		.changed = on_commit,
	};
	struct tree_opts to = {
		.store = s,
		.uid = o->uid,
		.gid = o->gid,
		.mount_opts = o->mount_opts,
	};
	struct notifier_opts no = { .se = o->se, .store = s, .id = o->id };
	sigset_t block, old;
	int r;

	if (!h) {
		store_close(s);
		return -ENOMEM;
	}
	h->store = s;
	io.arg = h;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &block, &old);

	r = vcache_new(VCACHE_SLOTS, store_validates(s), &h->vc);
	if (r < 0) {
		log_err("%s: view cache: %s", store_path(s), strerror(-r));
		goto out_stop;
	}
	if (!o->ro) {
		r = incoming_new(s, &io, &h->in);
		if (r < 0) {
			log_err("%s: incoming/: %s", store_path(s),
				strerror(-r));
			goto out_stop;
		}
	}
	to.vc = h->vc;
	to.in = h->in;
	r = tree_new(&to, &h->tree);
	if (r < 0) {
		log_err("%s: the tree: %s", store_path(s), strerror(-r));
		goto out_stop;
	}
	no.tree = h->tree;
	r = notifier_start(&no, &h->nt);
	if (r < 0) {
		log_err("%s: notifier thread: %s", store_path(s),
			strerror(-r));
		goto out_stop;
	}
	/* On failure (logged) it runs when first needed. */
	store_validate_start(s, push_changes, h);
	r = watch_start(s, on_store_change, h, &h->w);
	if (r < 0) {
		log_err("%s: watching the store: %s", store_path(s),
			strerror(-r));
		goto out_stop;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	*out = h;
	return 0;

out_stop:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	hist_stop(h);
	return r;
}

void hist_stop(struct hist *h)
{
	if (!h)
		return;
	store_validate_stop(h->store);
	watch_stop(h->w);
	/* Drops still queued commit now and feed the notifier. */
	if (h->in)
		incoming_free(h->in);
	h->in = NULL;
	notifier_stop(h->nt);
	h->nt = NULL;
	tree_free(h->tree);
	vcache_free(h->vc);
	store_close(h->store);
	free(h);
}

void hist_parts(struct hist *h, struct forest_hist *fh)
{
	fh->tree = h->tree;
	fh->in = h->in;
	fh->owner = h;
}
