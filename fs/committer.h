/* committer.h - the thread that commits drops: one store lock and one
 * rewrite for every drop waiting at that moment (group commit), answers
 * delivered by callback, so that nobody holds a thread while a commit waits.
 *
 * Calling sequence:
 *   committer_start(store, opts, &c)
 *   committer_submit(c, job)        any thread; job->done is called once,
 *                                   later, from the committer thread
 *   committer_cancel(c, job)        any thread: true when the job was taken
 *                                   back before its commit started (then
 *                                   done is never called)
 *   committer_stop(c)               commits what is queued, joins, frees
 *
 * When a job's commit starts: once the committer holds the store's lock and
 * takes the job into a batch.  Until then it can be cancelled (a writer
 * interrupted or killed in close()) and nothing of it reaches the store;
 * after that it completes whatever happens to its writer.
 *
 * The lock: jobs wait for the store's flock in the committer thread, so
 * another tool holding it stalls commits but no request of the mount.  A
 * job that has waited `lock_timeout_ms` fails with -ETIMEDOUT (a log line
 * names the lock); later jobs keep waiting for their own time.
 *
 * Jobs are owned by the submitter; the committer only links them into its
 * queue, and reads `data` without any lock between submit and done (the
 * submitter keeps those bytes unchanged until then).
 *
 * Threads: c->lock guards the queue.  It is never held while `done` or the
 * backend runs, and may be taken under the caller's own lock (incoming's
 * in->lock), never the other way round.
 */
#ifndef ITERFS_COMMITTER_H
#define ITERFS_COMMITTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "writer.h"

struct committer;

struct committer_job {
	/* in: set by the submitter */
	const char *data;
	size_t len;
	void (*done)(struct committer_job *job);
	void *arg;                   /* for done */

	/* out: valid in done */
	int result;                  /* 0 or -errno */
	char reason[COMMIT_WHY_LEN]; /* one line when result != 0 */
	size_t count;                /* records added (0: a re-send) */

	/* private to the committer (guarded by c->lock) */
	struct committer_job *next;
	uint64_t queued_ns;
};

/* How the committer reaches the store.  The default is the store writer
 * (writer_lock / writer_commit_locked / writer_unlock); tests pass their
 * own to drive timeouts and cancellation deterministically. */
struct committer_backend {
	/* As writer_lock_wait: -ETIMEDOUT, -ECANCELED once give_up(arg) says
	 * so (every waiting job was cancelled), or another -errno. */
	int (*lock)(void *ctx, int timeout_ms, bool (*give_up)(void *arg),
		    void *arg, void **lk);
	int (*commit)(void *lk, struct writer_req *reqs, size_t n,
		      size_t max_record);
	void (*unlock)(void *lk);
	void *ctx;
};

struct committer_opts {
	size_t max_record;
	int lock_timeout_ms;         /* < 0: wait for ever */
	/* Called from the committer thread after a batch added records, before
	 * any of its jobs is answered, so that a writer whose close() returned
	 * finds the mount up to date.  May be NULL. */
	void (*changed)(void *arg);
	void *arg;
	const struct committer_backend *backend; /* NULL: the store writer */
};

/* The store and opts are borrowed (the store must outlive the committer).
 * Returns 0, -ENOMEM or the -errno of pthread_create. */
int committer_start(struct store *s, const struct committer_opts *o,
		    struct committer **out);
void committer_submit(struct committer *c, struct committer_job *job);
bool committer_cancel(struct committer *c, struct committer_job *job);
/* For the status file: jobs waiting now, and how long the last batch took
 * from taking the lock to its answers (0: none yet). */
void committer_stats(struct committer *c, size_t *queued, uint64_t *last_ns);
void committer_stop(struct committer *c);

#endif
