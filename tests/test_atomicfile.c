/* test_atomicfile - the one durable "write a file beside another": content,
 * modes, no-replace, faults and crashes at every step, stale temps. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomicfile.h"
#include "log.h"
#include "testutil.h"

static char last_log[1024];

static void capture_log(enum log_level lvl, const char *line)
{
	if (lvl <= LOG_LVL_WARN)
		snprintf(last_log, sizeof(last_log), "%s", line);
}

/* A fresh directory under the test directory, malloc'd. */
static char *mkdir_fresh(const char *name)
{
	char *d = t_path(name);

	if (mkdir(d, 0755) < 0)
		abort();
	return d;
}

static char *join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	return p;
}

static size_t count_temps(const char *dir)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (!d)
		abort();
	while ((de = readdir(d)))
		if (strstr(de->d_name, ATOMICFILE_TAG))
			n++;
	closedir(d);
	return n;
}

static void check_file(const char *path, const char *want, const char *what)
{
	size_t len;
	char *got = t_read_file(path, &len);

	if (!want) {
		T_CHECK(!got, "%s: %s exists", what, path);
	} else {
		T_CHECK(got != NULL, "%s: %s missing", what, path);
		if (got)
			T_CHECK_MEM(got, len, want, strlen(want), what);
	}
	free(got);
}

static void test_commit_writes_the_file_with_its_exact_mode(void)
{
	char *dir = mkdir_fresh("basic"), *path = join(dir, "f.txt");
	struct atomicfile *af;
	struct stat st;
	mode_t old = umask(077);
	bool renamed = false;
	int r;

	r = atomicfile_begin(dir, "f.txt", 0644, NULL, &af);
	umask(old);
	T_CHECK(r == 0, "begin: %d", r);
	if (r < 0)
		goto out;
	T_CHECK(strncmp(strrchr(atomicfile_temp_path(af), '/'), "/.f.txt"
			ATOMICFILE_TAG, 7 + strlen(ATOMICFILE_TAG)) == 0,
		"temp %s", atomicfile_temp_path(af));
	T_CHECK(atomicfile_is_temp(strrchr(atomicfile_temp_path(af), '/') + 1),
		"its own temp is not recognised");
	T_CHECK(atomicfile_write(af, "hello ", 6) == 0 &&
		atomicfile_write(af, "world\n", 6) == 0 &&
		atomicfile_size(af) == 12, "write");
	check_file(path, NULL, "before commit");
	r = atomicfile_commit(af, NULL, 0, &renamed);
	T_CHECK(r == 0 && renamed, "commit: %d", r);
	check_file(path, "hello world\n", "after commit");
	T_CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644,
		"mode %o, want 0644 whatever the umask", st.st_mode & 07777);
	T_CHECK(count_temps(dir) == 0, "temp left");
out:
	free(path);
	free(dir);
}

static void test_commit_replaces_and_copy_appends(void)
{
	char *dir = mkdir_fresh("copy"), *path = join(dir, "f");
	char *src = join(dir, "src");
	struct atomicfile *af;
	int fd, r;

	t_write_file(path, "old", 3);
	t_write_file(src, "0123456789", 10);
	fd = open(src, O_RDONLY);
	if (fd < 0 || lseek(fd, 4, SEEK_SET) != 4)
		abort();
	r = atomicfile_begin(dir, "f", 0600, NULL, &af);
	T_CHECK(r == 0, "begin %d", r);
	if (r < 0)
		goto out;
	/* From offset 0 whatever the file position; into an empty temp
	 * (FICLONE where it works) and then at the end (never cloned). */
	T_CHECK(atomicfile_copy_from(af, fd, 7, 0) == 0, "copy 1");
	T_CHECK(atomicfile_write(af, "|", 1) == 0, "write");
	T_CHECK(atomicfile_copy_from(af, fd, 10, 0) == 0, "copy 2");
	T_CHECK(atomicfile_size(af) == 18, "size %llu",
		(unsigned long long)atomicfile_size(af));
	last_log[0] = '\0';
	log_set_sink(capture_log);
	r = atomicfile_copy_from(af, fd, 11, 0);
	log_set_sink(NULL);
	T_CHECK(r == -EIO, "copying more than the source holds: %d", r);
	T_CHECK(strstr(last_log, "copy ") && strstr(last_log, strerror(EIO)),
		"log: %s", last_log);
	check_file(path, "old", "before commit");
	r = atomicfile_commit(af, NULL, 0, NULL);
	T_CHECK(r == 0, "commit %d", r);
	check_file(path, "0123456|0123456789", "after commit");
	T_CHECK(count_temps(dir) == 0, "temp left");
out:
	close(fd);
	free(src);
	free(path);
	free(dir);
}

static void test_noreplace_keeps_the_taken_name(void)
{
	char *dir = mkdir_fresh("norepl"), *a = join(dir, "a");
	char *b = join(dir, "b");
	struct atomicfile *af;
	bool renamed = true;
	int r;

	t_write_file(a, "theirs", 6);
	if (atomicfile_begin(dir, "a", 0644, NULL, &af) < 0)
		abort();
	T_CHECK(atomicfile_write(af, "ours", 4) == 0, "write");
	r = atomicfile_commit(af, NULL, ATOMICFILE_NOREPLACE, &renamed);
	T_CHECK(r == -EEXIST && !renamed, "taken: %d", r);
	check_file(a, "theirs", "the taken name");
	T_CHECK(count_temps(dir) == 1, "the temp stays for another try");
	r = atomicfile_commit(af, "b", ATOMICFILE_NOREPLACE, &renamed);
	T_CHECK(r == 0 && renamed, "free name: %d", r);
	check_file(b, "ours", "the free name");
	check_file(a, "theirs", "the taken name after");
	T_CHECK(count_temps(dir) == 0, "temp left");
	/* And an abort after -EEXIST removes the temp. */
	if (atomicfile_begin(dir, "a", 0644, NULL, &af) < 0)
		abort();
	r = atomicfile_commit(af, "b", ATOMICFILE_NOREPLACE, NULL);
	T_CHECK(r == -EEXIST, "taken b: %d", r);
	atomicfile_abort(af);
	T_CHECK(count_temps(dir) == 0, "temp left after abort");
	free(a);
	free(b);
	free(dir);
}

/* Everything a writer does, start to end; 0 or the first error. */
static int run_all(const char *dir, const char *name, int src, bool *renamed)
{
	struct atomicfile *af;
	int r;

	*renamed = false;
	r = atomicfile_begin(dir, name, 0640, NULL, &af);
	if (r < 0)
		return r;
	r = atomicfile_copy_from(af, src, 4, 0);
	if (!r)
		r = atomicfile_write(af, "+new", 4);
	if (r < 0) {
		atomicfile_abort(af);
		return r;
	}
	return atomicfile_commit(af, NULL, 0, renamed);
}

static void fault_case(const char *step, const char *err, int want)
{
	char fault[64], *dir, *path, *src;
	bool renamed, after = strcmp(step, "fsync_dir") == 0;
	int fd, r;

	snprintf(fault, sizeof(fault), "%s:%s", step, err);
	snprintf(last_log, sizeof(last_log), "f-%s-%s", step, err);
	dir = mkdir_fresh(last_log);
	path = join(dir, "target");
	src = join(dir, "src");
	t_write_file(path, "old\n", 4);
	t_write_file(src, "abcd", 4);
	fd = open(src, O_RDONLY);
	if (fd < 0)
		abort();
	setenv("ITERFS_FAULT", fault, 1);
	last_log[0] = '\0';
	log_set_sink(capture_log);
	r = run_all(dir, "target", fd, &renamed);
	log_set_sink(NULL);
	unsetenv("ITERFS_FAULT");
	T_CHECK(r == -want, "%s: r=%d", fault, r);
	T_CHECK(renamed == after, "%s: renamed %d", fault, renamed);
	T_CHECK(strstr(last_log, step) && strstr(last_log, strerror(want)) &&
		strstr(last_log, dir), "%s: log '%s'", fault, last_log);
	check_file(path, after ? "abcd+new" : "old\n", fault);
	T_CHECK(count_temps(dir) == 0, "%s: temp left", fault);
	close(fd);
	free(src);
	free(path);
	free(dir);
}

static void test_a_fault_at_every_step_leaves_the_target_and_no_temp(void)
{
	static const char *const steps[] = {
		"temp", "copy", "append", "fsync_temp", "rename", "fsync_dir",
	};
	size_t i;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		fault_case(steps[i], "ENOSPC", ENOSPC);
		fault_case(steps[i], "EIO", EIO);
	}
}

static void test_a_fault_in_another_scope_does_not_fire(void)
{
	char *dir = mkdir_fresh("scope"), *path = join(dir, "f");
	struct atomicfile_opts o = { .log_tag = "x", .fault_scope = "keep" };
	struct atomicfile *af;
	int r;

	setenv("ITERFS_FAULT", "keep.rename:EIO", 1);
	if (atomicfile_begin(dir, "f", 0644, NULL, &af) < 0)
		abort();
	r = atomicfile_commit(af, NULL, 0, NULL);
	T_CHECK(r == 0, "the empty scope was hit: %d", r);
	if (atomicfile_begin(dir, "f", 0644, &o, &af) < 0)
		abort();
	log_set_sink(capture_log);
	r = atomicfile_commit(af, NULL, 0, NULL);
	log_set_sink(NULL);
	unsetenv("ITERFS_FAULT");
	T_CHECK(r == -EIO, "keep.rename: %d", r);
	T_CHECK(strncmp(last_log, "x: rename ", 10) == 0, "log: %s", last_log);
	T_CHECK(count_temps(dir) == 0, "temp left");
	free(path);
	free(dir);
}

/* Killed before each step: the target is old or new, and the temp a crash
 * leaves is removed by remove_stale once its process is gone. */
static void crash_case(const char *step, bool want_new, bool want_temp)
{
	char fault[64], name[64], *dir, *path, *src;
	bool renamed;
	pid_t pid;
	int st, fd;

	snprintf(fault, sizeof(fault), "%s:crash", step);
	snprintf(name, sizeof(name), "crash-%s", step);
	dir = mkdir_fresh(name);
	path = join(dir, "target");
	src = join(dir, "src");
	t_write_file(path, "old\n", 4);
	t_write_file(src, "abcd", 4);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		fd = open(src, O_RDONLY);
		setenv("ITERFS_FAULT", fault, 1);
		run_all(dir, "target", fd, &renamed);
		_exit(0);
	}
	T_CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st) &&
		WTERMSIG(st) == SIGKILL, "%s: not killed (%#x)", fault, st);
	check_file(path, want_new ? "abcd+new" : "old\n", fault);
	T_CHECK(count_temps(dir) == (want_temp ? 1u : 0u), "%s: %zu temps",
		fault, count_temps(dir));
	T_CHECK(atomicfile_remove_stale(dir, "target", 0) == 0, "remove");
	T_CHECK(count_temps(dir) == 0, "%s: stale temp kept", fault);
	check_file(path, want_new ? "abcd+new" : "old\n", fault);
	free(src);
	free(path);
	free(dir);
}

static void test_a_crash_at_every_step_leaves_old_or_new(void)
{
	crash_case("temp", false, false);
	crash_case("copy", false, true);
	crash_case("append", false, true);
	crash_case("fsync_temp", false, true);
	crash_case("rename", false, true);
	crash_case("fsync_dir", true, false);
	crash_case("done", true, false);
}

static void test_remove_stale_spares_live_writers_and_other_files(void)
{
	char *dir = mkdir_fresh("stale"), name[512], *p;
	struct atomicfile *live, *longf;
	char long_name[NAME_MAX + 1];
	size_t i;
	static const char *const others[] = {
		".f" ATOMICFILE_TAG "notes", ".f" ATOMICFILE_TAG "12.xyz",
		"f" ATOMICFILE_TAG "12.ab", ".g" ATOMICFILE_TAG "999999999.ab",
		"f",
	};
	pid_t dead;
	int st;

	/* A pid that is certainly not running: a child that has exited. */
	fflush(NULL);
	dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, &st, 0);
	for (i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		p = join(dir, others[i]);
		t_write_file(p, "x", 1);
		free(p);
	}
	snprintf(name, sizeof(name), "%s/.f" ATOMICFILE_TAG "%ld.00ff", dir,
		 (long)dead);
	t_write_file(name, "x", 1);
	memset(long_name, 0, sizeof(long_name));
	/* 'a' then 2-byte UTF-8 sequences up to NAME_MAX bytes. */
	long_name[0] = 'a';
	for (i = 1; i + 2 <= NAME_MAX; i += 2)
		memcpy(long_name + i, "\xc3\xa9", 2);
	T_CHECK(atomicfile_begin(dir, long_name, 0644, NULL, &longf) == 0,
		"a name of NAME_MAX bytes gets a temp");
	T_CHECK(atomicfile_begin(dir, "f", 0644, NULL, &live) == 0, "begin");
	T_CHECK(atomicfile_remove_stale(dir, "f", 0) == 0, "remove_stale");
	T_CHECK(access(name, F_OK) < 0, "the dead writer's temp stays");
	T_CHECK(access(atomicfile_temp_path(live), F_OK) == 0,
		"a live writer's temp was removed");
	for (i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		p = join(dir, others[i]);
		T_CHECK(access(p, F_OK) == 0, "%s was removed", others[i]);
		free(p);
	}
	T_CHECK(atomicfile_remove_stale(dir, long_name, ATOMICFILE_STALE_ALL)
		== 0, "remove_stale all");
	T_CHECK(access(atomicfile_temp_path(longf), F_OK) < 0,
		"the long name's temp (name cut) was not matched");
	T_CHECK(access(atomicfile_temp_path(live), F_OK) == 0,
		"another name's temp was removed");
	T_CHECK(atomicfile_remove_stale(dir, NULL, ATOMICFILE_STALE_ALL) == 0,
		"remove_stale any");
	T_CHECK(access(atomicfile_temp_path(live), F_OK) < 0,
		"STALE_ALL kept a temp");
	/* ".g...999999999.ab" has the shape and no live pid: it goes too. */
	T_CHECK(count_temps(dir) == 3, "only the look-alikes remain: %zu",
		count_temps(dir));
	atomicfile_abort(live);
	atomicfile_abort(longf);
	p = join(dir, "missing");
	T_CHECK(atomicfile_remove_stale(p, NULL, 0) == -ENOENT, "missing dir");
	free(p);
	free(dir);
}

int main(void)
{
	T_RUN(test_commit_writes_the_file_with_its_exact_mode);
	T_RUN(test_commit_replaces_and_copy_appends);
	T_RUN(test_noreplace_keeps_the_taken_name);
	T_RUN(test_a_fault_at_every_step_leaves_the_target_and_no_temp);
	T_RUN(test_a_fault_in_another_scope_does_not_fire);
	T_RUN(test_a_crash_at_every_step_leaves_old_or_new);
	T_RUN(test_remove_stale_spares_live_writers_and_other_files);
	return t_done();
}
