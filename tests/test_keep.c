/* test_keep - kept files beside a store: modes, names, replace-only-if-
 * same-inode, faults at every step, stale temps, large fd-backed drops. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomicfile.h"
#include "keep.h"
#include "log.h"
#include "testutil.h"

static char last_log[1024];

static void capture_log(enum log_level lvl, const char *line)
{
	if (lvl <= LOG_LVL_WARN)
		snprintf(last_log, sizeof(last_log), "%s", line);
}

/* "<dir>/<name>" in a static buffer: for one use at a time. */
static const char *in(const char *dir, const char *name)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static char *cat(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s%s", a, b) < 0)
		abort();
	return p;
}

/* A store in its own directory: <tmp>/<dir>/h.jsonl, malloc'd. */
static char *mkstore(const char *dir, mode_t mode)
{
	char *d = t_path(dir), *p = cat(d, "/h.jsonl");

	if (mkdir(d, 0755) < 0)
		abort();
	t_write_file(p, "{\"iteration\": 0}\n", 17);
	if (chmod(p, mode) < 0)
		abort();
	free(d);
	return p;
}

static struct keepdir *open_or_die(const char *store, const char *suffix)
{
	struct keepdir *kd;
	int r = keepdir_open(store, suffix, &kd);

	if (r < 0) {
		fprintf(stderr, "keepdir_open %s: %s\n", store, strerror(-r));
		abort();
	}
	return kd;
}

static size_t count_entries(const char *dir)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

static void check_file(const char *dir, const char *name, const char *want,
		       size_t wlen)
{
	char *p = cat(dir, "/"), *q = cat(p, name), *got;
	size_t len;

	got = t_read_file(q, &len);
	T_CHECK(got != NULL, "%s missing", q);
	if (got)
		T_CHECK_MEM(got, len, want, wlen, name);
	free(got);
	free(q);
	free(p);
}

static void perm_case(const char *dirname, mode_t store_mode, bool exists,
		      mode_t want_dir, mode_t want_file)
{
	char *store = mkstore(dirname, store_mode), *kdir, *f, *rf;
	struct keep_id id = { .name = "" };
	struct keepdir *kd;
	mode_t old;
	int r;

	if (!exists)
		unlink(store);
	kd = open_or_die(store, ".rejected");
	kdir = cat(store, ".rejected");
	T_CHECK(strcmp(keepdir_path(kd), kdir) == 0, "path %s",
		keepdir_path(kd));
	T_CHECK(access(kdir, F_OK) < 0, "open created the directory");
	old = umask(0);
	r = keepdir_put(kd, "drop", "{}", 2, "why", &id);
	umask(old);
	T_CHECK(r == 0 && strcmp(id.name, "drop") == 0, "put %d %s", r,
		id.name);
	f = cat(kdir, "/drop");
	rf = cat(kdir, "/drop.reason");
	T_CHECK(mode_of(kdir) == want_dir, "store %o: dir %o, want %o",
		store_mode, mode_of(kdir), want_dir);
	T_CHECK(mode_of(f) == want_file && mode_of(rf) == want_file,
		"store %o: files %o %o, want %o", store_mode, mode_of(f),
		mode_of(rf), want_file);
	check_file(kdir, "drop", "{}", 2);
	check_file(kdir, "drop.reason", "why\n", 4);
	keepdir_close(kd);
	free(rf);
	free(f);
	free(kdir);
	free(store);
}

static void test_kept_files_carry_the_store_permissions_no_wider(void)
{
	perm_case("perm600", 0600, true, 0700, 0600);
	perm_case("perm644", 0644, true, 0755, 0644);
	perm_case("perm640", 0640, true, 0750, 0640);
	perm_case("permnone", 0644, false, 0700, 0600);
}

static void test_open_removes_temps_of_dead_keepers(void)
{
	char *store = mkstore("stale", 0644), *kdir = cat(store, ".lost");
	char name[256], *dead_tmp, *live_tmp;
	struct keep_entry *v;
	struct keepdir *kd;
	size_t n;
	pid_t pid;
	int st;

	if (mkdir(kdir, 0755) < 0)
		abort();
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(0);
	waitpid(pid, &st, 0);
	snprintf(name, sizeof(name), "/.x" ATOMICFILE_TAG "%ld.abc", (long)pid);
	dead_tmp = cat(kdir, name);
	snprintf(name, sizeof(name), "/.x" ATOMICFILE_TAG "%ld.abc",
		 (long)getpid());
	live_tmp = cat(kdir, name);
	t_write_file(dead_tmp, "x", 1);
	t_write_file(live_tmp, "x", 1);
	kd = open_or_die(store, ".lost");
	T_CHECK(access(dead_tmp, F_OK) < 0, "a dead keeper's temp stays");
	T_CHECK(access(live_tmp, F_OK) == 0, "a live keeper's temp went");
	T_CHECK(keepdir_list(kd, &v, &n) == 0 && n == 0, "temps listed: %zu",
		n);
	free(v);
	keepdir_close(kd);
	free(live_tmp);
	free(dead_tmp);
	free(kdir);
	free(store);
}

/* keepdir_open_entry gives exactly `want`. */
static bool open_entry_reads(struct keepdir *kd, const char *name,
			     bool reason, const char *want)
{
	char b[64];
	ssize_t n;
	int fd;

	if (keepdir_open_entry(kd, name, reason, &fd) < 0)
		return false;
	n = read(fd, b, sizeof(b));
	close(fd);
	return n == (ssize_t)strlen(want) && memcmp(b, want, (size_t)n) == 0;
}

static void test_names_never_start_with_a_dot_and_never_clash(void)
{
	char *store = mkstore("names", 0644), *kdir = cat(store, ".rejected");
	static const struct {
		const char *base, *want;
	} cases[] = {
		{ ".iterfs-tmp.1.ab", "_.iterfs-tmp.1.ab" },
		{ ".hidden", "_.hidden" },
		{ "..", "_.." },
		{ "", "_" },
		{ "x.reason", "x.reason_" },
		{ "a", "a" },
		{ "a", "a.1" },
		{ "a", "a.2" },
	};
	struct keep_id id;
	struct keep_entry *v;
	struct keepdir *kd = open_or_die(store, ".rejected");
	size_t i, n;
	int r, fd;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&id, 0, sizeof(id));
		r = keepdir_put(kd, cases[i].base, cases[i].base,
				strlen(cases[i].base), "r", &id);
		T_CHECK(r == 0 && strcmp(id.name, cases[i].want) == 0,
			"'%s': %d '%s', want '%s'", cases[i].base, r, id.name,
			cases[i].want);
		check_file(kdir, cases[i].want, cases[i].base,
			   strlen(cases[i].base));
	}
	memset(&id, 0, sizeof(id));
	T_CHECK(keepdir_put(kd, "a/b", "x", 1, NULL, &id) == -EINVAL,
		"a name with '/'");
	/* An orphan reason file takes its name. */
	t_write_file(in(kdir, "o.reason"), "x", 1);
	T_CHECK(keepdir_put(kd, "o", "x", 1, NULL, &id) == 0 &&
		strcmp(id.name, "o.1") == 0, "beside an orphan reason: %s",
		id.name);
	T_CHECK(keepdir_list(kd, &v, &n) == 0 && n == 9, "listed %zu", n);
	for (i = 0; i < n; i++) {
		T_CHECK(v[i].name[0] != '.', "listed %s", v[i].name);
		T_CHECK(v[i].has_reason == (strcmp(v[i].name, "o.1") != 0),
			"%s: has_reason %d", v[i].name, v[i].has_reason);
	}
	T_CHECK(n >= 2 && strcmp(v[0].name, "_") == 0 &&
		strcmp(v[n - 1].name, "x.reason_") == 0, "not sorted");
	T_CHECK(open_entry_reads(kd, "a.1", false, "a") &&
		open_entry_reads(kd, "a.1", true, "r\n"), "open_entry");
	T_CHECK(keepdir_open_entry(kd, "nope", false, &fd) == -ENOENT &&
		fd == -1, "open_entry of a missing name");
	T_CHECK(keepdir_open_entry(kd, ".hidden", false, &fd) == -EINVAL &&
		keepdir_open_entry(kd, "a.reason", false, &fd) == -EINVAL,
		"open_entry of a non-name");
	free(v);
	keepdir_close(kd);
	free(kdir);
	free(store);
}

static bool valid_utf8_prefix_of(const char *s, const char *base)
{
	size_t n = strlen(s);

	/* Every 'é' (2 bytes) whole: an odd count after the leading 'a'. */
	return strncmp(s, base, n) == 0 && n % 2 == 1;
}

static void test_long_names_are_cut_at_a_utf8_boundary(void)
{
	char *store = mkstore("long", 0644), base[600], reason_path[4096];
	struct keep_id id1 = { .name = "" }, id2 = { .name = "" };
	struct keepdir *kd = open_or_die(store, ".rejected");
	size_t i, n;
	int r;

	base[0] = 'a';
	for (i = 1; i + 2 < sizeof(base); i += 2)
		memcpy(base + i, "\xc3\xa9", 2);
	base[i] = '\0';
	r = keepdir_put(kd, base, "1", 1, "why", &id1);
	n = strlen(id1.name);
	T_CHECK(r == 0 && n <= KEEP_NAME_MAX && n >= KEEP_NAME_MAX - 1 &&
		valid_utf8_prefix_of(id1.name, base), "first: %d, %zu bytes",
		r, n);
	r = keepdir_put(kd, base, "2", 1, "why", &id2);
	n = strlen(id2.name);
	T_CHECK(r == 0 && n <= KEEP_NAME_MAX &&
		strcmp(id2.name + n - 2, ".1") == 0, "second: %d %zu", r, n);
	id2.name[n - 2] = '\0';
	T_CHECK(valid_utf8_prefix_of(id2.name, base), "second cut badly");
	snprintf(reason_path, sizeof(reason_path), "%s/%s.reason",
		 keepdir_path(kd), id1.name);
	T_CHECK(access(reason_path, F_OK) == 0, "reason of a long name");
	keepdir_close(kd);
	free(store);
}

static void test_replace_only_while_the_name_holds_that_inode(void)
{
	char *store = mkstore("repl", 0644), *kdir = cat(store, ".rejected");
	struct keep_id mine = { .name = "" }, theirs = { .name = "" };
	struct keep_id old;
	struct keepdir *kd = open_or_die(store, ".rejected");
	int r;

	r = keepdir_put(kd, "d", "v1", 2, "first", &mine);
	T_CHECK(r == 0 && strcmp(mine.name, "d") == 0, "put %d", r);
	old = mine;
	r = keepdir_put(kd, "d", "v2!", 3, NULL, &mine);
	T_CHECK(r == 0 && strcmp(mine.name, "d") == 0 && mine.ino != old.ino &&
		mine.size == 3, "replace %d %s", r, mine.name);
	check_file(kdir, "d", "v2!", 3);
	T_CHECK(access(in(kdir, "d.reason"), F_OK) < 0,
		"the old reason stayed with new bytes");
	/* The user removes it, another drop takes the name... */
	T_CHECK(keepdir_unlink_name(kd, "d") == 0, "rm");
	/* The same size as v1 on purpose: only the inode tells them apart. */
	r = keepdir_put(kd, "d", "ot", 2, "theirs", &theirs);
	T_CHECK(r == 0 && strcmp(theirs.name, "d") == 0, "other %d", r);
	/* ...then a late failure of the first drop must not replace it
	 * (whether or not the inode number was reused). */
	r = keepdir_put(kd, "d", "v3", 2, "late", &mine);
	T_CHECK(r == 0 && strcmp(mine.name, "d.1") == 0, "late %d %s", r,
		mine.name);
	check_file(kdir, "d", "ot", 2);
	check_file(kdir, "d.reason", "theirs\n", 7);
	check_file(kdir, "d.1", "v3", 2);
	/* Nor remove it. */
	T_CHECK(keepdir_remove(kd, &old) == -ENOENT, "stale remove");
	check_file(kdir, "d", "ot", 2);
	T_CHECK(keepdir_remove(kd, &mine) == 0, "remove");
	T_CHECK(access(in(kdir, "d.1"), F_OK) < 0, "not removed");
	T_CHECK(access(in(kdir, "d.1.reason"), F_OK) < 0, "reason kept");
	T_CHECK(keepdir_unlink_name(kd, "d.1") == -ENOENT, "rm twice");
	T_CHECK(keepdir_unlink_name(kd, "d.reason") == -EINVAL &&
		keepdir_unlink_name(kd, ".x") == -EINVAL, "rm of a non-name");
	keepdir_close(kd);
	free(kdir);
	free(store);
}

static void fault_case(const char *step, const char *err, int want,
		       bool replacing)
{
	char name[64], fault[64], *store, *kdir;
	struct keep_id id = { .name = "" }, before;
	struct keep_entry *v;
	struct keepdir *kd;
	size_t n;
	int r;

	snprintf(name, sizeof(name), "f-%s-%s-%d", step, err, replacing);
	store = mkstore(name, 0644);
	kdir = cat(store, ".rejected");
	kd = open_or_die(store, ".rejected");
	if (replacing && keepdir_put(kd, "drop", "old", 3, "old", &id) < 0)
		abort();
	before = id;
	snprintf(fault, sizeof(fault), "%s:%s", step, err);
	setenv("ITERFS_FAULT", fault, 1);
	last_log[0] = '\0';
	log_set_sink(capture_log);
	r = keepdir_put(kd, "drop", "new bytes", 9, "why", &id);
	log_set_sink(NULL);
	unsetenv("ITERFS_FAULT");
	T_CHECK(r == -want, "%s: r=%d", fault, r);
	T_CHECK(strstr(last_log, strerror(want)) && strstr(last_log, kdir),
		"%s: log '%s'", fault, last_log);
	T_CHECK(keepdir_list(kd, &v, &n) == 0, "list");
	if (replacing && strncmp(step, "keep_reason", 11) != 0 &&
	    strcmp(step, "keep.fsync_dir") != 0) {
		/* Failed before its rename: the earlier copy is intact. */
		T_CHECK(n == 1 && strcmp(id.name, "drop") == 0 &&
			id.ino == before.ino, "%s: earlier copy: %zu %s",
			fault, n, id.name);
		check_file(kdir, "drop", "old", 3);
		check_file(kdir, "drop.reason", "old\n", 4);
		T_CHECK(count_entries(kdir) == 2, "%s: %zu files", fault,
			count_entries(kdir));
	} else {
		T_CHECK(n == 0 && !id.name[0], "%s: %zu kept, id '%s'", fault,
			n, id.name);
		T_CHECK(count_entries(kdir) == 0, "%s: %zu files left", fault,
			count_entries(kdir));
	}
	free(v);
	/* Once the fault is gone the same keepdir keeps. */
	r = keepdir_put(kd, "drop", "new bytes", 9, "why", &id);
	T_CHECK(r == 0 && strcmp(id.name, "drop") == 0, "%s: after: %d %s",
		fault, r, id.name);
	check_file(kdir, "drop", "new bytes", 9);
	check_file(kdir, "drop.reason", "why\n", 4);
	keepdir_close(kd);
	free(kdir);
	free(store);
}

static void test_a_fault_at_every_step_keeps_nothing_partial(void)
{
	static const char *const steps[] = {
		"keep.mkdir", "keep.temp", "keep.append", "keep.fsync_temp",
		"keep.rename", "keep.fsync_dir", "keep_reason.temp",
		"keep_reason.append", "keep_reason.fsync_temp",
		"keep_reason.rename", "keep_reason.fsync_dir",
	};
	size_t i;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		fault_case(steps[i], "ENOSPC", ENOSPC, false);
		fault_case(steps[i], "EIO", EIO, false);
		if (strcmp(steps[i], "keep.mkdir"))
			fault_case(steps[i], "EIO", EIO, true);
	}
}

static void test_the_fd_variant_keeps_a_large_drop_byte_for_byte(void)
{
	char *store = mkstore("big", 0600), *src = t_path("big.src"), *got;
	size_t len = ((size_t)17 << 20) + 12345, i, glen;
	struct keep_id id = { .name = "" };
	struct keepdir *kd = open_or_die(store, ".rejected");
	unsigned char *data = malloc(len);
	uint32_t x = 12345;
	int fd, r;

	if (!data)
		abort();
	for (i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (unsigned char)(x >> 16);
	}
	t_write_file(src, data, len);
	/* A longer spill file: only the first len bytes are the drop. */
	fd = open(src, O_RDWR | O_APPEND);
	if (fd < 0 || write(fd, "tail", 4) != 4)
		abort();
	r = keepdir_put_fd(kd, "big", fd, len, "too large", &id);
	T_CHECK(r == 0 && id.size == len, "put_fd %d size %llu", r,
		(unsigned long long)id.size);
	got = t_read_file(in(keepdir_path(kd), "big"), &glen);
	T_CHECK(got && glen == len && memcmp(got, data, len) == 0,
		"kept bytes differ (%zu vs %zu)", glen, len);
	free(got);
	/* The source shorter than claimed: an error, nothing kept. */
	memset(&id, 0, sizeof(id));
	log_set_sink(capture_log);
	r = keepdir_put_fd(kd, "short", fd, len + 100, NULL, &id);
	log_set_sink(NULL);
	T_CHECK(r == -EIO && !id.name[0], "short source: %d", r);
	T_CHECK(count_entries(keepdir_path(kd)) == 2, "files: %zu",
		count_entries(keepdir_path(kd)));
	close(fd);
	free(data);
	keepdir_close(kd);
	free(src);
	free(store);
}

enum { THREADS = 4, PER = 25 };

static void *put_many(void *arg)
{
	struct keepdir *kd = arg;
	struct keep_id id;
	int i;

	for (i = 0; i < PER; i++) {
		memset(&id, 0, sizeof(id));
		if (keepdir_put(kd, "same", "x", 1, "r", &id) < 0)
			return (void *)1;
	}
	return NULL;
}

static void test_threads_get_distinct_names(void)
{
	char *store = mkstore("threads", 0644);
	struct keepdir *kd = open_or_die(store, ".rejected");
	struct keep_entry *v;
	pthread_t t[THREADS];
	void *ret;
	size_t n;
	int i;

	for (i = 0; i < THREADS; i++)
		if (pthread_create(&t[i], NULL, put_many, kd) != 0)
			abort();
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], &ret);
		T_CHECK(ret == NULL, "thread %d failed", i);
	}
	T_CHECK(keepdir_list(kd, &v, &n) == 0 && n == THREADS * PER,
		"%zu kept", n);
	free(v);
	keepdir_close(kd);
	free(store);
}

static void test_a_removed_directory_is_created_again(void)
{
	char *store = mkstore("rmdir", 0644), cmd[4096];
	struct keep_id id = { .name = "" };
	struct keepdir *kd = open_or_die(store, ".rejected");

	T_CHECK(keepdir_put(kd, "a", "1", 1, NULL, &id) == 0, "put");
	snprintf(cmd, sizeof(cmd), "rm -r '%s'", keepdir_path(kd));
	if (system(cmd) != 0)
		abort();
	memset(&id, 0, sizeof(id));
	T_CHECK(keepdir_put(kd, "a", "2", 1, NULL, &id) == 0, "put again");
	check_file(keepdir_path(kd), "a", "2", 1);
	keepdir_close(kd);
	free(store);
}

int main(void)
{
	T_RUN(test_kept_files_carry_the_store_permissions_no_wider);
	T_RUN(test_open_removes_temps_of_dead_keepers);
	T_RUN(test_names_never_start_with_a_dot_and_never_clash);
	T_RUN(test_long_names_are_cut_at_a_utf8_boundary);
	T_RUN(test_replace_only_while_the_name_holds_that_inode);
	T_RUN(test_a_fault_at_every_step_keeps_nothing_partial);
	T_RUN(test_the_fd_variant_keeps_a_large_drop_byte_for_byte);
	T_RUN(test_threads_get_distinct_names);
	T_RUN(test_a_removed_directory_is_created_again);
	return t_done();
}
