/* test_writer - the durable writer: what the store holds after commits,
 * faults and crashes at every step, and many writers at once. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "store.h"
#include "testutil.h"
#include "writer.h"

#define MAXREC WRITER_MAX_RECORD_DEFAULT

static char last_log[1024];

static void capture_log(enum log_level lvl, const char *line)
{
	(void)lvl;
	snprintf(last_log, sizeof(last_log), "%s", line);
}

/* A store file with `content` (NULL: no file), its path malloc'd. */
static char *mkstore(const char *name, const char *content)
{
	char *path = t_path(name);

	if (content)
		t_write_file(path, content, strlen(content));
	else
		unlink(path);
	return path;
}

static struct store *open_or_die(const char *path, unsigned flags)
{
	struct store *s;
	int r = store_open(path, flags, &s);

	if (r < 0) {
		fprintf(stderr, "store_open %s: %s\n", path, strerror(-r));
		abort();
	}
	return s;
}

/* One drop through a fresh store handle, as a tool would do it. */
static int commit1(const char *path, const char *drop, struct writer_req *q)
{
	struct store *s = open_or_die(path, 0);
	int r;

	memset(q, 0, sizeof(*q));
	q->data = drop;
	q->len = strlen(drop);
	r = writer_commit(s, q, 1, MAXREC);
	store_close(s);
	return r;
}

/* Temp files of the store `name` in the test directory. */
static size_t count_temps(const char *name)
{
	char prefix[256];
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(t_tmpdir());

	if (!d)
		abort();
	snprintf(prefix, sizeof(prefix), ".%s.iterfs-tmp.", name);
	while ((de = readdir(d)))
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static char *read_or_empty(const char *path, size_t *len)
{
	char *p = t_read_file(path, len);

	if (!p) {
		p = calloc(1, 1);
		if (!p)
			abort();
		*len = 0;
	}
	return p;
}

/* old + (LF if old does not end in one) + line. */
static char *joined(const char *old, const char *line)
{
	size_t n = strlen(old);
	bool lf = n && old[n - 1] != '\n';
	char *p = malloc(n + strlen(line) + 2);

	if (!p)
		abort();
	sprintf(p, "%s%s%s", old, lf ? "\n" : "", line);
	return p;
}

#define REC(n) "{\"iteration\":" #n ",\"a\":\"x y\",\"timestamp\":\"2026-01-01T00:00:00.000000\"}"

static void test_commit_into_a_missing_store(void)
{
	char *path = mkstore("missing.jsonl", NULL);
	char *lock = t_path("missing.jsonl.lock");
	struct writer_req q;
	struct stat st;
	mode_t old = umask(077);
	size_t len;
	char *got;
	int r;

	r = commit1(path, "{ \"iteration\": 0, \"a\": \"x y\", \"timestamp\": "
		    "\"2026-01-01T00:00:00.000000\" }", &q);
	umask(old);
	T_CHECK(r == 0 && q.result == 0 && q.count == 1 && q.first == 0,
		"r=%d result=%d (%s)", r, q.result, q.reason);
	got = read_or_empty(path, &len);
	T_CHECK_MEM(got, len, REC(0) "\n", strlen(REC(0) "\n"), "new store");
	T_CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644,
		"mode %o, want 0644 whatever the umask", st.st_mode & 07777);
	T_CHECK(access(lock, F_OK) == 0, "no lock file beside the store");
	T_CHECK(count_temps("missing.jsonl") == 0, "temp left");
	free(got);
	free(lock);
	free(path);
}

static void test_commit_into_an_empty_store_keeps_its_mode(void)
{
	char *path = mkstore("empty.jsonl", "");
	struct writer_req q;
	struct stat st;
	size_t len;
	char *got;
	int r;

	if (chmod(path, 0600) < 0)
		abort();
	r = commit1(path, "{\"a\": \"x y\", \"timestamp\": "
		    "\"2026-01-01T00:00:00.000000\"}", &q);
	T_CHECK(r == 0 && q.result == 0 && q.first == 0, "r=%d result=%d", r,
		q.result);
	got = read_or_empty(path, &len);
	T_CHECK_MEM(got, len, REC(0) "\n", strlen(REC(0) "\n"), "store");
	T_CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600,
		"mode %o, want the old 0600", st.st_mode & 07777);
	free(got);
	free(path);
}

static void test_commit_into_a_real_history(void)
{
	char *real = t_real_data("json_mode_test.jsonl");
	char *path, *old, *got, *want;
	struct store_stats st;
	struct writer_req q;
	struct store *s;
	size_t olen, len;
	int r;

	if (!real) {
		printf("# json_mode_test.jsonl not present, skipped\n");
		return;
	}
	old = t_read_file(real, &olen);
	path = mkstore("real.jsonl", old);
	/* Complete: every field each of its records carries. */
	r = commit1(path, "{\"generation_method\": \"llm\", "
		    "\"strategy_code\": \"pass\", \"strategy_id\": null, "
		    "\"strategy_generation\": null, \"execution_result\": "
		    "{\"success\": true}, \"metrics\": {}, "
		    "\"classification_level\": \"LEVEL_0\", \"timestamp\": "
		    "\"2026-01-01T00:00:00.000000\", \"champion_updated\": "
		    "false, \"feedback_used\": \"\", \"template_name\": null, "
		    "\"json_mode\": true}", &q);
	T_CHECK(r == 0 && q.result == 0 && q.first == 20, "r=%d first %lld "
		"(%s)", r, (long long)q.first, q.reason);
	want = joined(old, "{\"iteration_num\":20,\"generation_method\":"
		      "\"llm\",\"strategy_code\":\"pass\",\"strategy_id\":"
		      "null,\"strategy_generation\":null,\"execution_result\":"
		      "{\"success\":true},\"metrics\":{},"
		      "\"classification_level\":\"LEVEL_0\",\"timestamp\":"
		      "\"2026-01-01T00:00:00.000000\",\"champion_updated\":false,"
		      "\"feedback_used\":\"\",\"template_name\":null,"
		      "\"json_mode\":true}\n");
	got = read_or_empty(path, &len);
	T_CHECK_MEM(got, len, want, strlen(want), "real + new");
	s = open_or_die(path, STORE_VALIDATE);
	store_stats(s, &st);
	T_CHECK(st.records == 21 && st.iterations == 21 && st.skipped == 0,
		"records %" PRIu64 " iterations %" PRIu64 " skipped %" PRIu64,
		st.records, st.iterations, st.skipped);
	store_close(s);
	free(got);
	free(want);
	free(old);
	free(path);
	free(real);
}

/* Garbage in the middle and a torn tail: every original byte stays, the
 * new record gets a line of its own. */
static void test_commit_into_a_corrupted_store(void)
{
	const char *old = "{\"iteration\": 0}\n"
			  "this is not json\n"
			  "{\"iteration\": 1}\n"
			  "[1, 2]\n"
			  "{\"iteration\": 2, \"code\": \"pri";
	char *path = mkstore("bad.jsonl", old), *got, *want;
	uint64_t skipped[4];
	struct store_stats st;
	struct writer_req q;
	struct store *s;
	size_t len, ns;
	int r;

	r = commit1(path, "{\"a\": \"x y\", \"timestamp\": "
		    "\"2026-01-01T00:00:00.000000\"}", &q);
	/* The torn record 2 is not a record: 2 is the next number. */
	T_CHECK(r == 0 && q.result == 0 && q.first == 2, "r=%d first %lld",
		r, (long long)q.first);
	want = joined(old, REC(2) "\n");
	got = read_or_empty(path, &len);
	T_CHECK_MEM(got, len, want, strlen(want), "corrupted + new");
	s = open_or_die(path, STORE_VALIDATE);
	store_stats(s, &st);
	store_skipped(s, skipped, 4, &ns);
	T_CHECK(st.records == 3 && st.skipped == 3 && ns == 3 &&
		skipped[0] == 2 && skipped[1] == 4 && skipped[2] == 5,
		"records %" PRIu64 " skipped %" PRIu64, st.records, st.skipped);
	store_close(s);
	free(got);
	free(want);
	free(path);
}

static void test_commit_after_a_last_line_without_lf(void)
{
	const char *old = "{\"iteration\": 0}";
	char *path = mkstore("nolf.jsonl", old), *got, *want;
	struct writer_req q;
	size_t len;
	int r;

	r = commit1(path, REC(1), &q);
	T_CHECK(r == 0 && q.result == 0, "r=%d result %d", r, q.result);
	want = joined(old, REC(1) "\n");
	got = read_or_empty(path, &len);
	T_CHECK_MEM(got, len, want, strlen(want), "LF added before the record");
	free(got);
	free(want);
	free(path);
}

/* A rejected or identical drop rewrites nothing: same inode, same bytes. */
static void test_nothing_to_append_rewrites_nothing(void)
{
	const char *old = REC(0) "\n";
	char *path = mkstore("same.jsonl", old), *got;
	struct writer_req q;
	struct stat a, b;
	size_t len;
	int r;

	stat(path, &a);
	r = commit1(path, "{\"iteration\": 0, \"a\": \"x y\", \"timestamp\": "
		    "\"2026-01-01T00:00:00.000000\"}", &q);
	T_CHECK(r == 0 && q.result == 0 && q.count == 0, "re-send: r=%d "
		"result %d count %zu", r, q.result, q.count);
	r = commit1(path, "{\"iteration\": 0, \"a\": \"z\"}", &q);
	T_CHECK(r == 0 && q.result == -EEXIST, "EEXIST: r=%d result %d", r,
		q.result);
	T_CHECK(strcmp(q.reason, "record 1: iteration 0 already exists with "
			       "different content") == 0, "reason %s", q.reason);
	r = commit1(path, "{\"code\": 3}", &q);
	T_CHECK(r == 0 && q.result == -EINVAL, "EINVAL: r=%d result %d", r,
		q.result);
	stat(path, &b);
	T_CHECK(a.st_ino == b.st_ino, "the store was rewritten");
	got = read_or_empty(path, &len);
	T_CHECK_MEM(got, len, old, strlen(old), "store");
	free(got);
	free(path);
}

static void test_group_commit(void)
{
	enum { N = 60 };
	char *path = mkstore("group.jsonl", "{\"iteration\": 0}\n");
	static char drops[N][128];
	struct writer_req q[N];
	struct store_stats st;
	struct store *s = open_or_die(path, 0);
	struct stat a, b;
	int64_t hi;
	bool found;
	int i, r;

	memset(q, 0, sizeof(q));
	for (i = 0; i < N; i++) {
		if (i % 10 == 9)
			snprintf(drops[i], sizeof(drops[i]), "{\"code\": %d}",
				 i);
		else
			snprintf(drops[i], sizeof(drops[i]), "{\"n\": %d}\n"
				 "{\"n\": %d}", i, i);
		q[i].data = drops[i];
		q[i].len = strlen(drops[i]);
	}
	stat(path, &a);
	r = writer_commit(s, q, N, MAXREC);
	T_CHECK(r == 0, "r=%d", r);
	for (i = 0; i < N; i++) {
		if (i % 10 == 9) {
			T_CHECK(q[i].result == -EINVAL, "req %d: result %d", i,
				q[i].result);
			continue;
		}
		/* Two records per accepted drop, numbered in request order. */
		T_CHECK(q[i].result == 0 && q[i].count == 2 &&
			q[i].first == 1 + 2 * (i - i / 10) &&
			q[i].last == q[i].first + 1,
			"req %d: result %d count %zu first %lld", i, q[i].result,
			q[i].count, (long long)q[i].first);
	}
	/* The handle saw its own commit without a refresh. */
	store_highest(s, &hi, &found);
	T_CHECK(found && hi == 2 * (N - N / 10), "highest %lld", (long long)hi);
	store_close(s);
	stat(path, &b);
	T_CHECK(a.st_ino != b.st_ino, "not renamed over");
	s = open_or_die(path, STORE_VALIDATE);
	store_stats(s, &st);
	T_CHECK(st.records == 1 + 2 * (N - N / 10) && st.skipped == 0 &&
		st.duplicates == 0, "records %" PRIu64, st.records);
	store_close(s);
	free(path);
}

/* One injected fault: the error reaches the caller, the log names the
 * step, the store keeps its bytes, no temp stays behind. */
static void fault_case(const char *step, const char *err, int want)
{
	const char *old = "{\"iteration\": 0, \"x\": 1}\n{\"iteration\": 1}";
	char name[64], fault[64], *path, *got;
	struct writer_req q[2];
	struct store *s;
	size_t len;
	int r;

	snprintf(name, sizeof(name), "fault-%s-%s.jsonl", step, err);
	path = mkstore(name, old);
	s = open_or_die(path, 0);
	memset(q, 0, sizeof(q));
	q[0].data = "{\"a\": 1}";
	q[0].len = strlen(q[0].data);
	q[1].data = "{\"code\": 1}";
	q[1].len = strlen(q[1].data);
	snprintf(fault, sizeof(fault), "%s:%s", step, err);
	setenv("ITERFS_FAULT", fault, 1);
	last_log[0] = '\0';
	r = writer_commit(s, q, 2, MAXREC);
	unsetenv("ITERFS_FAULT");
	T_CHECK(r == -want, "%s: r=%d, want %d", fault, r, -want);
	T_CHECK(q[0].result == -want, "%s: accepted drop got %d", fault,
		q[0].result);
	/* Before the lock no drop has been judged: all get the errno. */
	T_CHECK(q[1].result == (strcmp(step, "lock") ? -EINVAL : -want),
		"%s: rejected drop got %d", fault, q[1].result);
	T_CHECK(strncmp(last_log, "commit: ", 8) == 0 &&
		strncmp(last_log + 8, step, strlen(step)) == 0 &&
		strstr(last_log, strerror(want)) != NULL,
		"%s: log line '%s'", fault, last_log);
	got = read_or_empty(path, &len);
	T_CHECK_MEM(got, len, old, strlen(old), fault);
	T_CHECK(count_temps(name) == 0, "%s: temp left", fault);
	/* The same handle commits once the fault is gone. */
	q[0].result = 1;
	r = writer_commit(s, q, 1, MAXREC);
	T_CHECK(r == 0 && q[0].result == 0 && q[0].first == 2,
		"%s: commit after the fault: r=%d result %d", fault, r,
		q[0].result);
	store_close(s);
	free(got);
	free(path);
}

static void test_faults_reach_the_caller_and_leave_the_store(void)
{
	static const char *const steps[] = {
		"lock", "temp", "copy", "append", "fsync_temp", "before_rename",
		"rename",
	};
	size_t i;

	log_set_sink(capture_log);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		fault_case(steps[i], "ENOSPC", ENOSPC);
		fault_case(steps[i], "EIO", EIO);
	}
	fault_case("append", "EDQUOT", EDQUOT);
	fault_case("fsync_temp", "28", ENOSPC);
	log_set_sink(NULL);
}

/* After rename the new content is in place; a failed directory fsync is
 * still reported (durability unknown), and the handle shows the records. */
static void test_fsync_dir_failure_is_reported_after_the_rename(void)
{
	const char *old = "{\"iteration\": 0}\n";
	char *path = mkstore("fsyncdir.jsonl", old), *got, *want;
	struct writer_req q = { .data = REC(1), .len = strlen(REC(1)) };
	struct store *s = open_or_die(path, 0);
	int64_t hi;
	bool found;
	size_t len;
	int r;

	log_set_sink(capture_log);
	setenv("ITERFS_FAULT", "fsync_dir:EIO", 1);
	r = writer_commit(s, &q, 1, MAXREC);
	unsetenv("ITERFS_FAULT");
	log_set_sink(NULL);
	T_CHECK(r == -EIO && q.result == -EIO, "r=%d result %d", r, q.result);
	T_CHECK(strstr(q.reason, "may not survive a crash") != NULL,
		"reason: %s", q.reason);
	T_CHECK(strstr(last_log, "fsync_dir") != NULL, "log: %s", last_log);
	want = joined(old, REC(1) "\n");
	got = read_or_empty(path, &len);
	T_CHECK_MEM(got, len, want, strlen(want), "renamed content");
	T_CHECK(count_temps("fsyncdir.jsonl") == 0, "temp left");
	store_highest(s, &hi, &found);
	T_CHECK(found && hi == 1, "handle highest %lld", (long long)hi);
	/* The writer's retry of the same drop is a no-op. */
	r = writer_commit(s, &q, 1, MAXREC);
	T_CHECK(r == 0 && q.result == 0 && q.count == 0, "retry: r=%d "
		"result %d count %zu", r, q.result, q.count);
	store_close(s);
	free(got);
	free(want);
	free(path);
}

static void test_stale_temps_removed_others_kept(void)
{
	char *path = mkstore("stale.jsonl", "{\"iteration\": 0}\n");
	char *stale1 = t_path(".stale.jsonl.iterfs-tmp.123.00ff");
	char *stale2 = t_path(".stale.jsonl.iterfs-tmp.9.abcdef0123456789");
	char *other1 = t_path(".stale.jsonl.iterfs-tmp.notes");
	char *other2 = t_path(".other.jsonl.iterfs-tmp.123.00ff");
	struct writer_req q;
	int r;

	t_write_file(stale1, "x", 1);
	t_write_file(stale2, "x", 1);
	t_write_file(other1, "x", 1);
	t_write_file(other2, "x", 1);
	r = commit1(path, REC(1), &q);
	T_CHECK(r == 0 && q.result == 0, "r=%d", r);
	T_CHECK(access(stale1, F_OK) < 0 && access(stale2, F_OK) < 0,
		"stale temps kept");
	T_CHECK(access(other1, F_OK) == 0, "a file that only looks like a "
		"temp was removed");
	T_CHECK(access(other2, F_OK) == 0, "another store's temp was removed");
	free(stale1);
	free(stale2);
	free(other1);
	free(other2);
	free(path);
}

/* Kill the committer just before each step: the store is the old or the
 * new file, never anything between, and the next commit cleans up. */
static void crash_case(const char *step, bool want_new, bool want_temp)
{
	const char *old = "{\"iteration\": 0, \"x\": [1, 2]}\n"
			  "garbage\n"
			  "{\"iteration\": 7}";
	char name[64], fault[64], *path, *got, *want;
	struct writer_req q;
	size_t len;
	pid_t pid;
	int st, r;

	snprintf(name, sizeof(name), "crash-%s.jsonl", step);
	path = mkstore(name, old);
	snprintf(fault, sizeof(fault), "%s:crash", step);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		setenv("ITERFS_FAULT", fault, 1);
		commit1(path, REC(8), &q);
		_exit(0);
	}
	T_CHECK(waitpid(pid, &st, 0) == pid, "waitpid");
	T_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		"%s: the child was not killed (status %#x)", fault, st);
	want = want_new ? joined(old, REC(8) "\n") : strdup(old);
	got = read_or_empty(path, &len);
	T_CHECK_MEM(got, len, want, strlen(want), fault);
	T_CHECK(count_temps(name) == (want_temp ? 1 : 0),
		"%s: %zu temps, want %d", fault, count_temps(name), want_temp);
	free(got);
	/* The next commit removes the stale temp and, after a crash before
	 * the rename, commits the record. */
	r = commit1(path, REC(8), &q);
	T_CHECK(r == 0 && q.result == 0 && q.count == (want_new ? 0u : 1u),
		"%s: next commit r=%d result %d count %zu", fault, r, q.result,
		q.count);
	T_CHECK(count_temps(name) == 0, "%s: stale temp not removed", fault);
	free(want);
	want = joined(old, REC(8) "\n");
	got = read_or_empty(path, &len);
	T_CHECK_MEM(got, len, want, strlen(want), "after the next commit");
	free(got);
	free(want);
	free(path);
}

static void test_crash_at_every_step(void)
{
	crash_case("lock", false, false);
	crash_case("temp", false, false);
	crash_case("copy", false, true);
	crash_case("append", false, true);
	crash_case("fsync_temp", false, true);
	crash_case("before_rename", false, true);
	crash_case("rename", false, true);
	crash_case("fsync_dir", true, false);
	crash_case("done", true, false);
}

/* The child's log lines go to the pipe `log_pipe`. */
static int log_pipe = -1;

static void pipe_log(enum log_level lvl, const char *line)
{
	char b[1100];
	int n;

	(void)lvl;
	n = snprintf(b, sizeof(b), "%s\n", line);
	if (n > 0 && write(log_pipe, b, (size_t)n) < 0)
		abort();
}

/* Read lines from fd until one contains `what`; false at end of file. */
static bool wait_for_line(int fd, const char *what)
{
	char b[4096];
	size_t len = 0;
	ssize_t n;

	for (;;) {
		n = read(fd, b + len, sizeof(b) - 1 - len);
		if (n <= 0)
			return false;
		len += (size_t)n;
		b[len] = '\0';
		if (strstr(b, what))
			return true;
		if (len > sizeof(b) / 2) {
			memmove(b, b + len / 2, len - len / 2 + 1);
			len -= len / 2;
		}
	}
}

/* The lock is the lock file's flock: another tool holding it holds off
 * the writer. */
static void test_writer_waits_for_the_flock(void)
{
	char *path = mkstore("flock.jsonl", "{\"iteration\": 0}\n");
	char *lock = t_path("flock.jsonl.lock");
	struct writer_req q;
	bool waiting;
	size_t len;
	char *got;
	pid_t pid;
	int fd, st = 0, p[2];

	fd = open(lock, O_RDWR | O_CREAT, 0644);
	if (fd < 0 || flock(fd, LOCK_EX) < 0 || pipe(p) < 0)
		abort();
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		/* Our copy of the holder's descriptor would keep the lock. */
		close(fd);
		close(p[0]);
		log_pipe = p[1];
		log_set_level(LOG_LVL_DEBUG);
		log_set_sink(pipe_log);
		_exit(commit1(path, REC(1), &q) == 0 && q.result == 0 ? 0 : 1);
	}
	close(p[1]);
	/* The writer says when it found the lock taken. */
	waiting = wait_for_line(p[0], "waiting for another writer");
	T_CHECK(waiting, "the writer did not wait for the lock");
	got = read_or_empty(path, &len);
	T_CHECK(strcmp(got, "{\"iteration\": 0}\n") == 0,
		"committed while the lock was held");
	free(got);
	close(fd);
	close(p[0]);
	T_CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
		WEXITSTATUS(st) == 0, "child status %#x", st);
	got = read_or_empty(path, &len);
	T_CHECK(strcmp(got, "{\"iteration\": 0}\n" REC(1) "\n") == 0,
		"after the lock: %s", got);
	free(got);
	free(lock);
	free(path);
}

/* A child that takes the lock of `lock` and holds it until `release` is
 * closed; returns once it holds it. */
static pid_t hold_lock(const char *lock, int *release)
{
	int ready[2], go[2];
	pid_t pid;
	char c;

	if (pipe(ready) < 0 || pipe(go) < 0)
		abort();
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		int fd = open(lock, O_RDONLY | O_CREAT, 0600);

		close(ready[0]);
		close(go[1]);
		if (fd < 0 || flock(fd, LOCK_EX) < 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		while (read(go[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	if (read(ready[0], &c, 1) != 1)
		abort();
	close(ready[0]);
	*release = go[1];
	return pid;
}

static bool give_up_third(void *arg)
{
	int *asked = arg;

	return ++*asked == 3;
}

static void test_a_held_lock_times_out_and_names_its_holder(void)
{
	const char *old = "{\"iteration\": 0}\n";
	char *path = mkstore("timeout.jsonl", old);
	char *lock = t_path("timeout.jsonl.lock"), want[64], *got;
	struct writer_req q = { .data = REC(1), .len = strlen(REC(1)) };
	struct store *s = open_or_die(path, 0);
	struct writer_lock *lk = NULL;
	int release, st, r, asked = 0;
	size_t len;
	pid_t pid;

	pid = hold_lock(lock, &release);
	log_set_sink(capture_log);
	last_log[0] = '\0';
	r = writer_lock(s, 30, &lk);
	T_CHECK(r == -ETIMEDOUT && !lk, "writer_lock: %d", r);
	snprintf(want, sizeof(want), "held by pid %ld", (long)pid);
	T_CHECK(strstr(last_log, lock) && strstr(last_log, want),
		"log: '%s', want the path and '%s'", last_log, want);
	last_log[0] = '\0';
	r = writer_lock(s, 0, &lk);
	T_CHECK(r == -ETIMEDOUT && !last_log[0], "one try: %d, log '%s'", r,
		last_log);
	/* Waiting forever, the caller can still stop between tries. */
	r = writer_lock_wait(s, -1, give_up_third, &asked, &lk);
	T_CHECK(r == -ECANCELED && asked == 3 && !lk && !last_log[0],
		"give up: %d after %d questions, log '%s'", r, asked, last_log);
	log_set_sink(NULL);
	got = read_or_empty(path, &len);
	T_CHECK_MEM(got, len, old, strlen(old), "store while locked");
	free(got);
	close(release);
	T_CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
		WEXITSTATUS(st) == 0, "holder status %#x", st);
	/* Free again: one lock, two commits. */
	r = writer_lock(s, 0, &lk);
	T_CHECK(r == 0 && lk, "after release: %d", r);
	if (lk) {
		r = writer_commit_locked(lk, &q, 1, MAXREC);
		T_CHECK(r == 0 && q.result == 0 && q.first == 1, "commit 1");
		q.data = "{\"n\": 2}";
		q.len = strlen(q.data);
		r = writer_commit_locked(lk, &q, 1, MAXREC);
		T_CHECK(r == 0 && q.result == 0 && q.first == 2, "commit 2");
		writer_unlock(lk);
	}
	store_close(s);
	free(lock);
	free(path);
}

static void test_the_lock_file_mode_follows_the_store(void)
{
	char *path = mkstore("lockmode.jsonl", "{\"iteration\": 0}\n");
	char *lock = t_path("lockmode.jsonl.lock");
	struct writer_req q;
	struct stat st;
	mode_t old;
	int r;

	if (chmod(path, 0600) < 0)
		abort();
	old = umask(0);
	r = commit1(path, REC(1), &q);
	umask(old);
	T_CHECK(r == 0 && q.result == 0, "commit %d", r);
	T_CHECK(stat(lock, &st) == 0 && (st.st_mode & 07777) == 0600,
		"lock mode %o, want 0600 like the store", st.st_mode & 07777);
	free(lock);
	free(path);
}

enum { PROCS = 8, PER_PROC = 200, THREADS = 4, PER_THREAD = 50 };

static int commit_many(const char *path, int who, int n)
{
	struct store *s = open_or_die(path, 0);
	struct writer_req q;
	char drop[64];
	int i, bad = 0;

	for (i = 0; i < n; i++) {
		snprintf(drop, sizeof(drop), "{\"worker\": %d, \"seq\": %d}",
			 who, i);
		memset(&q, 0, sizeof(q));
		q.data = drop;
		q.len = strlen(drop);
		if (writer_commit(s, &q, 1, MAXREC) < 0 || q.result != 0 ||
		    q.count != 1)
			bad++;
	}
	store_close(s);
	return bad;
}

/* Every (worker, seq) exactly once, numbers 0..total-1, every line valid. */
static void check_all_there(const char *path, int workers, int per)
{
	int total = workers * per, i, w, k;
	struct buf line = BUF_INIT;
	struct store_stats st;
	struct store *s = open_or_die(path, STORE_VALIDATE);
	char *seen = calloc((size_t)total, 1);
	long long it;

	if (!seen)
		abort();
	store_stats(s, &st);
	T_CHECK(st.records == (uint64_t)total &&
		st.iterations == (uint64_t)total && st.skipped == 0 &&
		st.duplicates == 0,
		"records %" PRIu64 " iterations %" PRIu64 " skipped %" PRIu64
		" duplicates %" PRIu64, st.records, st.iterations, st.skipped,
		st.duplicates);
	for (i = 0; i < total; i++) {
		buf_reset(&line);
		if (store_read(s, i, &line) < 0) {
			T_CHECK(false, "iteration %d missing", i);
			continue;
		}
		if (sscanf(line.data, "{\"iteration\":%lld,\"worker\":%d,"
			   "\"seq\":%d", &it, &w, &k) != 3 || it != i ||
		    w < 0 || w >= workers || k < 0 || k >= per) {
			T_CHECK(false, "line %d: %s", i, line.data);
			continue;
		}
		T_CHECK(!seen[w * per + k], "worker %d seq %d twice", w, k);
		seen[w * per + k] = 1;
	}
	for (i = 0; i < total; i++)
		T_CHECK(seen[i], "worker %d seq %d lost", i / per, i % per);
	free(seen);
	buf_free(&line);
	store_close(s);
}

static void test_eight_processes_at_once(void)
{
	char *path = mkstore("conc.jsonl", NULL);
	char cmd[512];
	pid_t pids[PROCS];
	int i, st;

	fflush(NULL);
	for (i = 0; i < PROCS; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			abort();
		if (pids[i] == 0)
			_exit(commit_many(path, i, PER_PROC) ? 1 : 0);
	}
	for (i = 0; i < PROCS; i++)
		T_CHECK(waitpid(pids[i], &st, 0) == pids[i] && WIFEXITED(st) &&
			WEXITSTATUS(st) == 0, "worker %d status %#x", i, st);
	check_all_there(path, PROCS, PER_PROC);
	T_CHECK(count_temps("conc.jsonl") == 0, "temp left");
	/* And Python's json module reads every line. */
	snprintf(cmd, sizeof(cmd), "command -v python3 >/dev/null || exit 0; "
		 "python3 -c 'import json,sys; n=sum(1 for l in open(sys.argv[1])"
		 " if json.loads(l)); sys.exit(n != %d)' '%s'",
		 PROCS * PER_PROC, path);
	T_CHECK(system(cmd) == 0, "python3 json.loads failed on %s", path);
	free(path);
}

struct thr {
	struct store *s;
	int who;
	int bad;
};

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	struct writer_req q;
	char drop[64];
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		snprintf(drop, sizeof(drop), "{\"worker\": %d, \"seq\": %d}",
			 t->who, i);
		memset(&q, 0, sizeof(q));
		q.data = drop;
		q.len = strlen(drop);
		if (writer_commit(t->s, &q, 1, MAXREC) < 0 || q.result != 0)
			t->bad++;
	}
	return NULL;
}

/* Threads sharing one store handle, as the mount's do. */
static void test_threads_share_one_handle(void)
{
	char *path = mkstore("threads.jsonl", "");
	struct store *s = open_or_die(path, 0);
	pthread_t tid[THREADS];
	struct thr t[THREADS];
	int i;

	for (i = 0; i < THREADS; i++) {
		t[i] = (struct thr){ s, i, 0 };
		if (pthread_create(&tid[i], NULL, thread_main, &t[i]) != 0)
			abort();
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		T_CHECK(t[i].bad == 0, "thread %d: %d failed commits", i,
			t[i].bad);
	}
	store_close(s);
	check_all_there(path, THREADS, PER_THREAD);
	free(path);
}

/* Another process replaces iteration 1 (a later line with the same
 * number) just before our commit: the writer's refresh absorbs it, and
 * store_changes_take must still report it along with the new record. */
static void test_changes_absorbed_by_a_commit_are_reported(void)
{
	char *path = mkstore("absorb.jsonl", "{\"iteration\": 0}\n"
					     "{\"iteration\": 1}\n");
	struct store *s = open_or_die(path, 0);
	struct store_change chg;
	struct writer_req q = { .data = "{\"code\": \"x\"}", .len = 13 };
	char *now;
	size_t len;
	bool saw1 = false, saw2 = false;

	store_changes_take(s, &chg);
	store_change_free(&chg);
	now = joined("{\"iteration\": 0}\n{\"iteration\": 1}\n",
		     "{\"iteration\": 1, \"v\": 2}");
	t_write_file(path, now, strlen(now));
	T_CHECK(writer_commit(s, &q, 1, MAXREC) == 0 && q.result == 0,
		"commit failed: %s", q.reason);
	T_CHECK(q.first == 2, "new record got %lld", (long long)q.first);
	store_changes_take(s, &chg);
	T_CHECK(chg.changed && !chg.reset, "changed %d reset %d", chg.changed,
		chg.reset);
	for (len = 0; len < chg.n; len++) {
		saw1 |= chg.iters[len] == 1;
		saw2 |= chg.iters[len] == 2;
	}
	T_CHECK(saw1 && saw2, "the replaced 1 (%d) and the new 2 (%d) reported",
		saw1, saw2);
	store_change_free(&chg);
	store_changes_take(s, &chg);
	T_CHECK(!chg.changed && chg.n == 0, "taken twice");
	store_change_free(&chg);
	store_close(s);
	free(now);
	free(path);
}

/* An outside writer (Python's temp + os.replace, no lock) that saves
 * between our copy and our rename, `left` times. */
struct outside {
	const char *path;
	int left;
	int calls;
};

static void outside_save(const char *step, void *arg)
{
	struct outside *o = arg;
	char tmp[4096], line[128];
	size_t len;
	char *old, *now;

	(void)step;
	o->calls++;
	if (o->left == 0)
		return;
	o->left--;
	old = read_or_empty(o->path, &len);
	snprintf(line, sizeof(line), "{\"iteration\": %d, \"outside\": true}\n",
		 100 + o->calls);
	now = joined(old, line);
	snprintf(tmp, sizeof(tmp), "%s.outside-tmp", o->path);
	t_write_file(tmp, now, strlen(now));
	if (rename(tmp, o->path) < 0)
		abort();
	free(now);
	free(old);
}

static void test_an_outside_save_before_our_rename_is_never_undone(void)
{
	const char *old = "{\"iteration\": 0}\n{\"iteration\": 1}\n";
	char *path = mkstore("outside.jsonl", old), *got;
	struct outside o = { .path = path, .left = 1 };
	struct writer_req q = { .data = "{\"code\": \"ours\"}", .len = 16 };
	struct store *s = open_or_die(path, 0);
	size_t len;
	int r;

	fault_set_call(outside_save, &o);
	setenv("ITERFS_FAULT", "before_rename:call", 1);
	r = writer_commit(s, &q, 1, MAXREC);
	unsetenv("ITERFS_FAULT");
	fault_set_call(NULL, NULL);
	T_CHECK(r == 0 && q.result == 0, "r=%d result %d (%s)", r, q.result,
		q.reason);
	T_CHECK(o.calls == 2, "%d attempts, want 2", o.calls);
	/* Ours is numbered after the outside record it now knows of. */
	T_CHECK(q.first == 102, "ours got %lld", (long long)q.first);
	got = read_or_empty(path, &len);
	T_CHECK(strstr(got, "{\"iteration\": 101, \"outside\": true}\n") &&
		strstr(got, "{\"iteration\":102,\"code\":\"ours\""),
		"both records must survive: %s", got);
	T_CHECK(count_temps("outside.jsonl") == 0, "temp left");
	free(got);
	store_close(s);
	free(path);
}

static void test_a_store_that_keeps_changing_gives_up_with_eagain(void)
{
	char *path = mkstore("busy.jsonl", "{\"iteration\": 0}\n"), *got;
	struct outside o = { .path = path, .left = 1000 };
	struct writer_req q = { .data = "{\"code\": \"ours\"}", .len = 16 };
	struct store *s = open_or_die(path, 0);
	size_t len;
	int r;

	fault_set_call(outside_save, &o);
	setenv("ITERFS_FAULT", "before_rename:call", 1);
	r = writer_commit(s, &q, 1, MAXREC);
	unsetenv("ITERFS_FAULT");
	fault_set_call(NULL, NULL);
	T_CHECK(r == -EAGAIN && q.result == -EAGAIN, "r=%d result %d", r,
		q.result);
	T_CHECK(strstr(q.reason, "replaced") != NULL, "reason: %s", q.reason);
	got = read_or_empty(path, &len);
	T_CHECK(!strstr(got, "ours"), "committed: %s", got);
	T_CHECK(strstr(got, "\"iteration\": 101") &&
		strstr(got, "\"iteration\": 105"), "outside saves undone: %s", got);
	T_CHECK(count_temps("busy.jsonl") == 0, "temp left");
	free(got);
	store_close(s);
	free(path);
}

static void test_a_symlinked_store_is_updated_where_it_points(void)
{
	char *dir = t_path("realdir"), *real = t_path("realdir/h.jsonl");
	char *link = t_path("link.jsonl"), *dangling = t_path("new.jsonl");
	char *newreal = t_path("realdir/new.jsonl");
	char *lock_real = t_path("realdir/h.jsonl.lock");
	char *lock_link = t_path("link.jsonl.lock");
	struct writer_req q;
	struct stat st;
	size_t len;
	char *got;
	int r;

	if (mkdir(dir, 0755) < 0 || symlink("realdir/h.jsonl", link) < 0 ||
	    symlink("realdir/new.jsonl", dangling) < 0)
		abort();
	t_write_file(real, "{\"iteration\": 0}\n", 17);
	r = commit1(link, REC(1), &q);
	T_CHECK(r == 0 && q.result == 0 && q.first == 1, "r=%d (%s)", r,
		q.reason);
	got = read_or_empty(real, &len);
	T_CHECK(strcmp(got, "{\"iteration\": 0}\n" REC(1) "\n") == 0,
		"real file: %s", got);
	free(got);
	T_CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode),
		"the link was replaced by a file");
	T_CHECK(access(lock_real, F_OK) == 0, "no lock beside the real file");
	T_CHECK(access(lock_link, F_OK) < 0, "a lock beside the link");
	T_CHECK(count_temps("link.jsonl") == 0, "temp beside the link");
	/* A link to a store that does not exist yet creates it there. */
	r = commit1(dangling, REC(0), &q);
	T_CHECK(r == 0 && q.result == 0, "dangling: r=%d (%s)", r, q.reason);
	T_CHECK(lstat(dangling, &st) == 0 && S_ISLNK(st.st_mode),
		"the dangling link was replaced");
	got = read_or_empty(newreal, &len);
	T_CHECK(strcmp(got, REC(0) "\n") == 0, "new real file: %s", got);
	free(got);
	free(lock_link);
	free(lock_real);
	free(newreal);
	free(dangling);
	free(link);
	free(real);
	free(dir);
}

/* Opening a FIFO for reading blocks until a writer comes: a hang here
 * shows as the test's timeout. */
static void test_a_store_that_is_not_a_regular_file_is_einval(void)
{
	char *fifo = t_path("fifo.jsonl"), *dir = t_path("dir.jsonl");
	char *lock = t_path("fifo.jsonl.lock");
	struct writer_req q = { .data = REC(0), .len = strlen(REC(0)) };
	struct store *s;
	int r;

	if (mkfifo(fifo, 0644) < 0 || mkdir(dir, 0755) < 0)
		abort();
	r = store_open(fifo, 0, &s);
	T_CHECK(r == -EINVAL, "store_open of a FIFO: %d", r);
	/* Replaced by a FIFO after the store was opened. */
	unlink(fifo);
	s = open_or_die(fifo, 0);
	if (mkfifo(fifo, 0644) < 0)
		abort();
	log_set_sink(capture_log);
	last_log[0] = '\0';
	r = writer_commit(s, &q, 1, MAXREC);
	log_set_sink(NULL);
	T_CHECK(r == -EINVAL && q.result == -EINVAL, "writer: r=%d result %d",
		r, q.result);
	T_CHECK(strstr(last_log, fifo) && strstr(last_log, "FIFO"),
		"log: %s", last_log);
	T_CHECK(strstr(q.reason, "FIFO") != NULL, "reason: %s", q.reason);
	T_CHECK(access(lock, F_OK) < 0, "a lock file beside a FIFO");
	store_close(s);
	r = store_open(dir, 0, &s);
	T_CHECK(r < 0, "store_open of a directory: %d", r);
	free(lock);
	free(dir);
	free(fifo);
}

/* In a private mount namespace, a 2 MiB tmpfs (no FICLONE there). */
static void test_too_little_free_space_is_enospc_with_the_sizes(void)
{
	char *mnt = t_path("small"), *path, *got, *big;
	struct writer_req q;
	size_t i, n, len;
	pid_t pid;
	int st, r;

	if (mkdir(mnt, 0755) < 0)
		abort();
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		t_failed_checks = 0;
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("none", mnt, "tmpfs", 0, "size=2m") < 0)
			_exit(77);
		if (asprintf(&path, "%s/h.jsonl", mnt) < 0)
			_exit(1);
		/* A store that fits; a commit needing a second copy cannot. */
		n = 1200 * 1024 / 65;
		big = malloc(n * 65 + 1);
		for (i = 0; i < n; i++)
			snprintf(big + i * 65, 66, "{\"iteration\": %8zu, "
				 "\"x\": \"%032d\"}\n", i, 0);
		t_write_file(path, big, n * 65);
		/* Complete for this store: its records all carry "x". */
		r = commit1(path, "{\"iteration\": 99999, \"x\": \"y\"}", &q);
		T_CHECK(r == -ENOSPC && q.result == -ENOSPC, "r=%d result %d (%s)",
			r, q.result, q.reason);
		T_CHECK(strstr(q.reason, "needs 2.") &&
			strstr(q.reason, " MB free beside the store, 0."),
			"reason: %s", q.reason);
		got = read_or_empty(path, &len);
		T_CHECK(len == n * 65 && memcmp(got, big, len) == 0,
			"store changed");
		T_CHECK(count_temps("h.jsonl") == 0, "temp left");
		_exit(t_failed_checks ? 1 : 0);
	}
	T_CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st), "child %#x", st);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
		printf("# no private tmpfs mount here (needs CAP_SYS_ADMIN), "
		       "skipped\n");
	else
		T_CHECK(WEXITSTATUS(st) == 0, "child failed (%#x)", st);
	free(mnt);
}

int main(void)
{
	T_RUN(test_commit_into_a_missing_store);
	T_RUN(test_commit_into_an_empty_store_keeps_its_mode);
	T_RUN(test_commit_into_a_real_history);
	T_RUN(test_commit_into_a_corrupted_store);
	T_RUN(test_commit_after_a_last_line_without_lf);
	T_RUN(test_nothing_to_append_rewrites_nothing);
	T_RUN(test_group_commit);
	T_RUN(test_faults_reach_the_caller_and_leave_the_store);
	T_RUN(test_fsync_dir_failure_is_reported_after_the_rename);
	T_RUN(test_stale_temps_removed_others_kept);
	T_RUN(test_crash_at_every_step);
	T_RUN(test_writer_waits_for_the_flock);
	T_RUN(test_a_held_lock_times_out_and_names_its_holder);
	T_RUN(test_the_lock_file_mode_follows_the_store);
	T_RUN(test_eight_processes_at_once);
	T_RUN(test_threads_share_one_handle);
	T_RUN(test_changes_absorbed_by_a_commit_are_reported);
	T_RUN(test_an_outside_save_before_our_rename_is_never_undone);
	T_RUN(test_a_store_that_keeps_changing_gives_up_with_eagain);
	T_RUN(test_a_symlinked_store_is_updated_where_it_points);
	T_RUN(test_a_store_that_is_not_a_regular_file_is_einval);
	T_RUN(test_too_little_free_space_is_enospc_with_the_sizes);
	return t_done();
}
