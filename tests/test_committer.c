/* test_committer - the committing thread with a fake store writer: group
 * commit, a lock held elsewhere (timeouts, later jobs waiting on), and
 * cancellation before a commit starts. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "committer.h"
#include "testutil.h"

/* The fake writer: a lock the test can hold, a log of what was committed. */
struct fake {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool held;          /* "another process" holds the lock */
	int lock_calls;
	int batches;
	size_t committed;   /* drops committed */
	char log[4096];     /* their bytes, in order, ';'-separated */
};

static struct fake F;

static int fake_lock(void *ctx, int timeout_ms, bool (*give_up)(void *),
		     void *arg, void **lk)
{
	(void)give_up;
	(void)arg;
	struct timespec ts;
	int r = 0;

	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&F.mu);
	F.lock_calls++;
	pthread_cond_broadcast(&F.cv);
	while (F.held && r == 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&F.cv, &F.mu);
		else if (pthread_cond_timedwait(&F.cv, &F.mu, &ts) != 0)
			r = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&F.mu);
	*lk = &F;
	return r;
}

static int fake_commit(void *lk, struct writer_req *reqs, size_t n,
		       size_t max_record)
{
	size_t i;

	(void)lk;
	(void)max_record;
	pthread_mutex_lock(&F.mu);
	F.batches++;
	for (i = 0; i < n; i++) {
		if (reqs[i].len && reqs[i].data[0] == '!') {
			reqs[i].result = -EINVAL;
			snprintf(reqs[i].reason, COMMIT_WHY_LEN, "bad");
			continue;
		}
		reqs[i].result = 0;
		reqs[i].count = 1;
		F.committed++;
		strncat(F.log, reqs[i].data, reqs[i].len);
		strcat(F.log, ";");
	}
	pthread_mutex_unlock(&F.mu);
	return 0;
}

static void fake_unlock(void *lk)
{
	(void)lk;
}

static const struct committer_backend fake_be = {
	fake_lock, fake_commit, fake_unlock, NULL,
};

static void fake_reset(bool held)
{
	pthread_mutex_lock(&F.mu);
	F.held = held;
	F.lock_calls = F.batches = 0;
	F.committed = 0;
	F.log[0] = '\0';
	pthread_mutex_unlock(&F.mu);
}

static void fake_release(void)
{
	pthread_mutex_lock(&F.mu);
	F.held = false;
	pthread_cond_broadcast(&F.cv);
	pthread_mutex_unlock(&F.mu);
}

static void wait_lock_calls(int n)
{
	pthread_mutex_lock(&F.mu);
	while (F.lock_calls < n)
		pthread_cond_wait(&F.cv, &F.mu);
	pthread_mutex_unlock(&F.mu);
}

/* Jobs and their answers. */
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;

struct tjob {
	struct committer_job j;
	bool answered;
	int answers;
};

static void on_done(struct committer_job *job)
{
	struct tjob *t = (struct tjob *)job;

	pthread_mutex_lock(&done_mu);
	t->answered = true;
	t->answers++;
	pthread_cond_broadcast(&done_cv);
	pthread_mutex_unlock(&done_mu);
}

static void tjob_init(struct tjob *t, const char *data)
{
	memset(t, 0, sizeof(*t));
	t->j.data = data;
	t->j.len = strlen(data);
	t->j.done = on_done;
}

static void wait_answered(struct tjob *t)
{
	pthread_mutex_lock(&done_mu);
	while (!t->answered)
		pthread_cond_wait(&done_cv, &done_mu);
	pthread_mutex_unlock(&done_mu);
}

static struct committer *start(int timeout_ms)
{
	struct committer_opts o = {
		.lock_timeout_ms = timeout_ms,
		.backend = &fake_be,
	};
	struct committer *c;

	if (committer_start(NULL, &o, &c) < 0)
		abort();
	return c;
}

static void test_jobs_waiting_for_the_lock_commit_in_one_batch(void)
{
	uint64_t last_ns;
	size_t queued;
	struct committer *c;
	struct tjob t[5];
	char data[5][8];
	int i;

	fake_reset(true);
	c = start(-1);
	for (i = 0; i < 5; i++) {
		snprintf(data[i], sizeof(data[i]), "d%d", i);
		tjob_init(&t[i], data[i]);
		committer_submit(c, &t[i].j);
	}
	wait_lock_calls(1);
	committer_stats(c, &queued, &last_ns);
	T_CHECK(queued == 5 && last_ns == 0, "queued %zu, last %llu", queued,
		(unsigned long long)last_ns);
	fake_release();
	for (i = 0; i < 5; i++) {
		wait_answered(&t[i]);
		T_CHECK(t[i].j.result == 0, "job %d: %d", i, t[i].j.result);
	}
	T_CHECK(F.batches == 1, "%d batches for 5 waiting jobs", F.batches);
	T_CHECK(strcmp(F.log, "d0;d1;d2;d3;d4;") == 0, "order: %s", F.log);
	committer_stop(c);
}

static void test_a_job_cancelled_while_waiting_never_commits(void)
{
	struct committer *c;
	struct tjob a, b;

	fake_reset(true);
	c = start(-1);
	tjob_init(&a, "a");
	tjob_init(&b, "b");
	committer_submit(c, &a.j);
	committer_submit(c, &b.j);
	wait_lock_calls(1);
	T_CHECK(committer_cancel(c, &a.j), "a was not cancellable");
	fake_release();
	wait_answered(&b);
	T_CHECK(strcmp(F.log, "b;") == 0, "committed: %s", F.log);
	T_CHECK(!a.answered, "a cancelled job was answered");
	T_CHECK(!committer_cancel(c, &b.j), "a finished job was cancelled");
	committer_stop(c);
}

static void test_lock_held_too_long_times_out_and_commits_nothing(void)
{
	struct committer *c;
	struct tjob a;

	fake_reset(true);
	c = start(200);
	tjob_init(&a, "a");
	committer_submit(c, &a.j);
	wait_answered(&a);
	T_CHECK(a.j.result == -ETIMEDOUT, "result %d", a.j.result);
	T_CHECK(strstr(a.j.reason, "lock") != NULL, "reason: %s", a.j.reason);
	T_CHECK(F.committed == 0, "committed %zu", F.committed);
	fake_release();
	committer_stop(c);
}

static void test_each_job_is_answered_once_with_its_own_result(void)
{
	struct committer *c;
	struct tjob t[3];

	fake_reset(true);
	c = start(-1);
	tjob_init(&t[0], "ok1");
	tjob_init(&t[1], "!bad");
	tjob_init(&t[2], "ok2");
	for (int i = 0; i < 3; i++)
		committer_submit(c, &t[i].j);
	wait_lock_calls(1);
	fake_release();
	for (int i = 0; i < 3; i++)
		wait_answered(&t[i]);
	committer_stop(c);
	T_CHECK(t[0].j.result == 0 && t[2].j.result == 0, "good ones failed");
	T_CHECK(t[1].j.result == -EINVAL && !strcmp(t[1].j.reason, "bad"),
		"bad one: %d %s", t[1].j.result, t[1].j.reason);
	for (int i = 0; i < 3; i++)
		T_CHECK(t[i].answers == 1, "job %d answered %d times", i,
			t[i].answers);
}

static void test_stop_commits_what_is_queued(void)
{
	struct committer *c;
	struct tjob a;

	fake_reset(false);
	c = start(-1);
	tjob_init(&a, "last");
	committer_submit(c, &a.j);
	committer_stop(c);
	T_CHECK(a.answered && a.j.result == 0, "not committed at stop");
	T_CHECK(strcmp(F.log, "last;") == 0, "log %s", F.log);
}

int main(void)
{
	pthread_mutex_init(&F.mu, NULL);
	pthread_cond_init(&F.cv, NULL);
	T_RUN(test_jobs_waiting_for_the_lock_commit_in_one_batch);
	T_RUN(test_a_job_cancelled_while_waiting_never_commits);
	T_RUN(test_lock_held_too_long_times_out_and_commits_nothing);
	T_RUN(test_each_job_is_answered_once_with_its_own_result);
	T_RUN(test_stop_commits_what_is_queued);
	return t_done();
}
