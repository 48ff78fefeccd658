/* committer.c - the group-committing thread behind incoming/.
 *
 * Contents: the default backend (the store writer); the queue and its
 * timeouts; the batch; the thread; start and stop.
 *
 * Why the lock is taken before the batch: a job's commit "starts" when it
 * is taken into a batch, and a cancelled job must never reach the store.
 * Taking the jobs only once the flock is held lets every job that waits for
 * a lock held elsewhere still be cancelled, and lets jobs that arrive
 * during the wait join the same rewrite.
 */
#include "committer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

struct committer {
	struct store *store;
	struct committer_opts o;
	struct committer_backend be;

	pthread_mutex_t lock;
	pthread_cond_t work;           /* a job was queued, or stop */
	struct committer_job *queue;   /* guarded by c->lock, oldest first */
	struct committer_job **tail;   /* guarded by c->lock */
	size_t queued;                 /* guarded by c->lock */
	uint64_t last_ns;              /* guarded by c->lock: the last batch's
					* lock-to-answer time */
	bool stop;                     /* guarded by c->lock */
	pthread_t thread;
};

/* --- the default backend: the store writer ------------------------------- */

static int be_lock(void *ctx, int timeout_ms, bool (*give_up)(void *arg),
		   void *arg, void **lk)
{
	return writer_lock_wait(ctx, timeout_ms, give_up, arg,
				(struct writer_lock **)lk);
}

static int be_commit(void *lk, struct writer_req *reqs, size_t n,
		     size_t max_record)
{
	return writer_commit_locked(lk, reqs, n, max_record);
}

static void be_unlock(void *lk)
{
	writer_unlock(lk);
}

/* --- the queue (c->lock held) --------------------------------------------- */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void unlink_job(struct committer *c, struct committer_job *prev,
		       struct committer_job *j)
{
	if (prev)
		prev->next = j->next;
	else
		c->queue = j->next;
	if (c->tail == &j->next)
		c->tail = prev ? &prev->next : &c->queue;
	j->next = NULL;
	c->queued--;
}

/* Take every queued job (the batch) or, with `deadline_ns`, only those
 * queued before it; returns them as a list. */
static struct committer_job *take(struct committer *c, uint64_t before_ns)
{
	struct committer_job *out = NULL, **otail = &out, *j, *prev = NULL,
			     *next;

	for (j = c->queue; j; j = next) {
		next = j->next;
		if (before_ns && j->queued_ns > before_ns) {
			prev = j;
			continue;
		}
		unlink_job(c, prev, j);
		*otail = j;
		otail = &j->next;
	}
	return out;
}

/* How long the oldest job may still wait for the lock, in ms (-1: no
 * bound); 0 when it is already due. */
static int wait_left_ms(const struct committer *c, uint64_t now)
{
	uint64_t due;

	if (c->o.lock_timeout_ms < 0)
		return -1;
	due = c->queue->queued_ns + (uint64_t)c->o.lock_timeout_ms * 1000000u;
	if (due <= now)
		return 0;
	return (int)((due - now + 999999u) / 1000000u);
}

/* The lock wait's question: is anybody still waiting? */
static bool nobody_waits(void *arg)
{
	struct committer *c = arg;
	bool empty;

	pthread_mutex_lock(&c->lock);
	empty = c->queue == NULL;
	pthread_mutex_unlock(&c->lock);
	return empty;
}

/* --- answers (no lock held) ----------------------------------------------- */

static void deliver(struct committer_job *list)
{
	struct committer_job *j, *next;

	for (j = list; j; j = next) {
		next = j->next;
		j->next = NULL;
		j->done(j);
	}
}

static void fail_all(struct committer_job *list, int r, const char *why)
{
	struct committer_job *j;

	for (j = list; j; j = j->next) {
		j->result = r;
		j->count = 0;
		snprintf(j->reason, sizeof(j->reason), "%s", why);
	}
	deliver(list);
}

static void run_batch(struct committer *c, void *lk,
		      struct committer_job *batch)
{
	struct writer_req *reqs;
	struct committer_job *j;
	size_t n = 0, i, added = 0;
	int r;

	for (j = batch; j; j = j->next)
		n++;
	reqs = calloc(n, sizeof(*reqs));
	if (!reqs) {
		c->be.unlock(lk);
		fail_all(batch, -ENOMEM, "out of memory");
		return;
	}
	for (i = 0, j = batch; j; j = j->next, i++) {
		reqs[i].data = j->data;
		reqs[i].len = j->len;
	}
	r = c->be.commit(lk, reqs, n, c->o.max_record);
	c->be.unlock(lk);
	if (r < 0)
		log_err("incoming: group commit of %zu drops: %s", n,
			strerror(-r));
	for (i = 0, j = batch; j; j = j->next, i++) {
		j->result = reqs[i].result;
		j->count = reqs[i].result ? 0 : reqs[i].count;
		memcpy(j->reason, reqs[i].reason, sizeof(j->reason));
		j->reason[sizeof(j->reason) - 1] = '\0';
		added += j->count;
	}
	free(reqs);
	if (added && c->o.changed)
		c->o.changed(c->o.arg);
	deliver(batch);
}

/* Called with c->lock held after a batch of `last` jobs that took
 * `took_ns`.  The writers just answered come back with their next drop a
 * moment later; starting the next rewrite at once would leave them for the
 * one after, so batches alternate in size and group commit wins only half
 * of what it can.  Wait for them a little, bounded by a quarter of a commit
 * (at most 5 ms), and never after a lone writer's commit: its latency is
 * what a single loop sees. */
static void linger(struct committer *c, size_t last, uint64_t took_ns)
{
	uint64_t wait_ns = took_ns / 4, deadline;
	struct timespec ts;

	if (last < 2 || wait_ns == 0)
		return;
	if (wait_ns > 5000000u)
		wait_ns = 5000000u;
	clock_gettime(CLOCK_REALTIME, &ts);
	deadline = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
		   wait_ns;
	ts.tv_sec = (time_t)(deadline / 1000000000u);
	ts.tv_nsec = (long)(deadline % 1000000000u);
	while (c->queued < last && !c->stop)
		if (pthread_cond_timedwait(&c->work, &c->lock, &ts) != 0)
			break;
}

static void *committer_main(void *arg)
{
	struct committer *c = arg;
	struct committer_job *batch;
	char why[COMMIT_WHY_LEN];
	size_t last = 0;
	uint64_t t0, took = 0;
	void *lk;
	int left, r;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->queue && !c->stop)
			pthread_cond_wait(&c->work, &c->lock);
		if (!c->queue)
			break;
		left = wait_left_ms(c, mono_ns());
		pthread_mutex_unlock(&c->lock);
		r = left == 0 ? -ETIMEDOUT :
		    c->be.lock(c->be.ctx, left, nobody_waits, c, &lk);
		pthread_mutex_lock(&c->lock);
		if (r == -ECANCELED)
			continue;
		if (r == -ETIMEDOUT) {
			/* Only the jobs whose time is up; the others wait on. */
			batch = take(c, mono_ns() - (uint64_t)c->o.lock_timeout_ms
						       * 1000000u);
			snprintf(why, sizeof(why), "gave up after %d s waiting "
				 "for the store's lock, held by another process",
				 (c->o.lock_timeout_ms + 999) / 1000);
		} else if (r < 0) {
			batch = take(c, 0);
			snprintf(why, sizeof(why), "cannot lock the store: %s",
				 strerror(-r));
		}
		if (r < 0) {
			pthread_mutex_unlock(&c->lock);
			fail_all(batch, r, why);
			pthread_mutex_lock(&c->lock);
			continue;
		}
		linger(c, last, took);
		batch = take(c, 0);
		last = 0;
		pthread_mutex_unlock(&c->lock);
		if (batch) {
			for (struct committer_job *j = batch; j; j = j->next)
				last++;
			t0 = mono_ns();
			run_batch(c, lk, batch);
			took = mono_ns() - t0;
			pthread_mutex_lock(&c->lock);
			c->last_ns = took;
			pthread_mutex_unlock(&c->lock);
		} else {
			/* Every job was cancelled while we waited. */
			c->be.unlock(lk);
		}
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* --- the interface -------------------------------------------------------- */

int committer_start(struct store *s, const struct committer_opts *o,
		    struct committer **out)
{
	static const struct committer_backend writer_be = {
		be_lock, be_commit, be_unlock, NULL,
	};
	struct committer *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	c->store = s;
	c->o = *o;
	if (!c->o.max_record)
		c->o.max_record = WRITER_MAX_RECORD_DEFAULT;
	if (o->backend) {
		c->be = *o->backend;
	} else {
		c->be = writer_be;
		c->be.ctx = s;
	}
	c->tail = &c->queue;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->work, NULL);
	r = -pthread_create(&c->thread, NULL, committer_main, c);
	if (r < 0) {
		log_err("incoming: starting the committer: %s", strerror(-r));
		pthread_cond_destroy(&c->work);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return r;
	}
	*out = c;
	return 0;
}

void committer_submit(struct committer *c, struct committer_job *job)
{
	job->result = 0;
	job->count = 0;
	job->reason[0] = '\0';
	job->next = NULL;
	job->queued_ns = mono_ns();
	pthread_mutex_lock(&c->lock);
	*c->tail = job;
	c->tail = &job->next;
	c->queued++;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->lock);
}

bool committer_cancel(struct committer *c, struct committer_job *job)
{
	struct committer_job *j, *prev = NULL;
	bool found = false;

	pthread_mutex_lock(&c->lock);
	for (j = c->queue; j; prev = j, j = j->next) {
		if (j == job) {
			unlink_job(c, prev, j);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

void committer_stats(struct committer *c, size_t *queued, uint64_t *last_ns)
{
	pthread_mutex_lock(&c->lock);
	*queued = c->queued;
	*last_ns = c->last_ns;
	pthread_mutex_unlock(&c->lock);
}

void committer_stop(struct committer *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->work);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
