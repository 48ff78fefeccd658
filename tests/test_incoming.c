/* test_incoming - the drop box without FUSE: what a flush, rename, release
 * and interrupt are answered, what reaches the store (a fake writer records
 * it) and what is kept beside it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "committer.h"
#include "incoming.h"
#include "store.h"
#include "testutil.h"

/* --- a fake writer whose lock the test can hold --------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool held;
static int lock_calls;
static char committed[8192];   /* drops, ';'-separated */
static int commits;

static int fake_lock(void *ctx, int timeout_ms, bool (*give_up)(void *),
		     void *arg, void **lk)
{
	(void)give_up;
	(void)arg;
	(void)ctx;
	(void)timeout_ms;
	pthread_mutex_lock(&mu);
	lock_calls++;
	pthread_cond_broadcast(&cv);
	while (held)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	*lk = NULL;
	return 0;
}

/* Drops whose text contains "bad" are rejected as a real commit would. */
static int fake_commit(void *lk, struct writer_req *reqs, size_t n,
		       size_t max_record)
{
	(void)lk;
	(void)max_record;
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < n; i++) {
		if (memmem(reqs[i].data, reqs[i].len, "bad", 3)) {
			reqs[i].result = -EINVAL;
			snprintf(reqs[i].reason, COMMIT_WHY_LEN,
				 "record 1: missing fields: metrics");
			continue;
		}
		reqs[i].result = 0;
		reqs[i].count = 1;
		commits++;
		strncat(committed, reqs[i].data, reqs[i].len);
		strcat(committed, ";");
	}
	pthread_mutex_unlock(&mu);
	return 0;
}

static void fake_unlock(void *lk)
{
	(void)lk;
}

static const struct committer_backend fake_be = {
	fake_lock, fake_commit, fake_unlock, NULL,
};

static void hold(bool h)
{
	pthread_mutex_lock(&mu);
	held = h;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* --- answers --------------------------------------------------------------- */

struct ans {
	bool got;
	int r;
	int count;
};

static void on_reply(void *arg, int r)
{
	struct ans *a = arg;

	pthread_mutex_lock(&mu);
	a->got = true;
	a->r = r;
	a->count++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static int wait_ans(struct ans *a)
{
	pthread_mutex_lock(&mu);
	while (!a->got)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	return a->r;
}

/* --- a drop box on a fresh store ------------------------------------------- */

static struct store *S;
static char *store_file;

static struct incoming *box(size_t max_record)
{
	struct incoming_opts o = {
		.max_record = max_record,
		.lock_timeout_ms = -1,
		.grace_ms = 60000,
		.backend = &fake_be,
	};
	struct incoming *in;
	static int n;
	char name[64];

	pthread_mutex_lock(&mu);
	committed[0] = '\0';
	commits = 0;
	lock_calls = 0;
	pthread_mutex_unlock(&mu);
	snprintf(name, sizeof(name), "h%d.jsonl", ++n);
	free(store_file);
	store_file = t_path(name);
	t_write_file(store_file, "", 0);
	if (store_open(store_file, 0, &S) < 0 || incoming_new(S, &o, &in) < 0)
		abort();
	return in;
}

static void unbox(struct incoming *in)
{
	incoming_free(in);
	store_close(S);
}

static uint64_t create(struct incoming *in, const char *name)
{
	struct incoming_attr a;
	int r = incoming_create(in, name, 0644, &a);

	T_CHECK(r == 0, "create %s: %d", name, r);
	return a.ino;
}

static void put(struct incoming *in, uint64_t ino, const char *s)
{
	struct incoming_attr a;
	int r = incoming_getattr(in, ino, &a);

	T_CHECK(r == 0, "getattr");
	r = incoming_write(in, ino, s, strlen(s), a.size);
	T_CHECK(r == 0, "write: %d", r);
}

static int flush(struct incoming *in, uint64_t ino)
{
	struct ans a = { 0 };

	incoming_flush(in, ino, on_reply, &a);
	return wait_ans(&a);
}

static void release(struct incoming *in, uint64_t ino)
{
	struct ans a = { 0 };

	incoming_release(in, ino, on_reply, &a);
	T_CHECK(wait_ans(&a) == 0, "release answered %d", a.r);
}

static int rename_(struct incoming *in, const char *from, const char *to)
{
	struct ans a = { 0 };

	incoming_rename(in, from, to, 0, on_reply, &a);
	return wait_ans(&a);
}

static bool listed(struct incoming *in, const char *name)
{
	struct incoming_dirent d[64];
	size_t n, i;

	incoming_list(in, 0, d, 64, &n);
	for (i = 0; i < n; i++)
		if (strcmp(d[i].name, name) == 0)
			return true;
	return false;
}

static bool resolves(struct incoming *in, const char *name)
{
	struct incoming_attr a;

	return incoming_lookup(in, name, &a) == 0;
}

static char *kept(const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s.rejected/%s", store_file, name);
	return t_read_file(path, NULL);
}

/* --- cases ----------------------------------------------------------------- */

static void test_a_plain_drop_commits_at_close_and_its_name_lingers(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, "a.json");

	put(in, ino, "{\"x\": 1}\n");
	T_CHECK(flush(in, ino) == 0, "flush");
	T_CHECK(strcmp(committed, "{\"x\": 1}\n;") == 0, "store got %s",
		committed);
	T_CHECK(!listed(in, "a.json"), "a committed drop is still listed");
	T_CHECK(resolves(in, "a.json"), "a just-committed name is gone");
	T_CHECK(flush(in, ino) == 0 && commits == 1, "a second close "
		"committed again");
	T_CHECK(rename_(in, "a.json", "b.json") == 0, "rename of a "
		"committed name");
	T_CHECK(!resolves(in, "b.json"), "the no-op rename moved the name");
	T_CHECK(incoming_unlink(in, "a.json") == 0, "unlink of a committed "
		"name");
	T_CHECK(commits == 1, "commits %d", commits);
	release(in, ino);
	unbox(in);
}

static void test_a_staging_name_commits_only_when_renamed(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, ".a.json.XyZ");

	put(in, ino, "{\"x\": 2}");
	T_CHECK(flush(in, ino) == 0, "flush of a staging name");
	release(in, ino);
	T_CHECK(commits == 0, "a staging name committed on close");
	T_CHECK(listed(in, ".a.json.XyZ"), "the staging name vanished");
	T_CHECK(rename_(in, ".a.json.XyZ", "a.json") == 0, "rename");
	T_CHECK(strcmp(committed, "{\"x\": 2};") == 0, "store got %s",
		committed);
	T_CHECK(!listed(in, ".a.json.XyZ") && !listed(in, "a.json"),
		"names still listed after the commit");
	T_CHECK(resolves(in, "a.json"), "the target does not resolve");
	unbox(in);
}

static void test_a_failed_rename_keeps_the_drop_and_the_source(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, ".t");
	char *k, *why;

	put(in, ino, "{\"bad\": 1}");
	release(in, ino);
	T_CHECK(rename_(in, ".t", "r.json") == -EINVAL, "rename succeeded");
	T_CHECK(commits == 0, "committed");
	T_CHECK(listed(in, ".t"), "the source of a failed rename vanished");
	T_CHECK(listed(in, "r.json.rejected") && listed(in, "r.json.reason"),
		"not kept under the target's name");
	k = kept("r.json");
	why = kept("r.json.reason");
	T_CHECK(k && strcmp(k, "{\"bad\": 1}") == 0, "kept: %s", k);
	T_CHECK(why && strstr(why, "missing fields"), "reason: %s", why);
	free(k);
	free(why);
	T_CHECK(incoming_unlink(in, ".t") == 0, "rm of the source");
	T_CHECK(!listed(in, ".t"), "the source is still listed");
	unbox(in);
}

static void test_unfinished_json_fails_each_close_until_completed(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, "u.json");

	T_CHECK(incoming_open(in, ino, O_WRONLY) == 0, "second handle");
	put(in, ino, "{\"code\": \"x\", ");
	T_CHECK(flush(in, ino) == -EINVAL, "an unfinished drop was accepted");
	T_CHECK(!listed(in, "u.json.rejected"), "kept while still open");
	T_CHECK(listed(in, "u.json"), "an open unfinished drop vanished");
	release(in, ino);
	put(in, ino, "\"y\": 1}");
	T_CHECK(flush(in, ino) == 0, "the completed drop failed");
	T_CHECK(commits == 1, "commits %d", commits);
	release(in, ino);
	unbox(in);
}

static void test_unfinished_json_at_the_last_close_is_kept(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, "u.json");
	char *k;

	put(in, ino, "{\"code\": \"x\", ");
	T_CHECK(flush(in, ino) == -EINVAL, "accepted");
	release(in, ino);
	k = kept("u.json");
	T_CHECK(k && strcmp(k, "{\"code\": \"x\", ") == 0, "kept: %s", k);
	T_CHECK(listed(in, "u.json.rejected"), "not listed as rejected");
	T_CHECK(!listed(in, "u.json"), "still listed under its name");
	free(k);
	unbox(in);
}

static void test_a_bom_drop_commits(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, "bom.json");

	put(in, ino, "\xef\xbb\xbf{\"x\": 3}");
	T_CHECK(flush(in, ino) == 0, "a drop with a BOM failed");
	T_CHECK(commits == 1, "commits %d", commits);
	release(in, ino);
	unbox(in);
}

static void test_an_oversize_drop_fails_at_write_and_is_kept_whole(void)
{
	struct incoming *in = box(100);
	uint64_t ino = create(in, "big.json");
	char data[300], *k;
	size_t len;
	char path[PATH_MAX];

	memset(data, 'x', sizeof(data));
	T_CHECK(incoming_write(in, ino, data, 80, 0) == 0, "first write");
	T_CHECK(incoming_write(in, ino, data + 80, 220, 80) == -EFBIG,
		"a write past max_record succeeded");
	T_CHECK(flush(in, ino) == -EFBIG, "flush");
	release(in, ino);
	snprintf(path, sizeof(path), "%s.rejected/big.json", store_file);
	k = t_read_file(path, &len);
	T_CHECK(k && len == 300, "kept %zu bytes, want 300", k ? len : 0);
	T_CHECK(commits == 0, "committed");
	free(k);
	unbox(in);
}

static void test_an_interrupted_close_is_never_committed(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, "i.json");
	struct ans a = { 0 };

	put(in, ino, "{\"x\": 4}");
	hold(true);
	incoming_flush(in, ino, on_reply, &a);
	pthread_mutex_lock(&mu);
	while (lock_calls == 0)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	T_CHECK(!a.got, "answered while the lock is held");
	incoming_interrupt(in, &a);
	T_CHECK(wait_ans(&a) == -EINTR, "interrupt answered %d", a.r);
	hold(false);
	release(in, ino);
	T_CHECK(commits == 0, "an interrupted drop was committed");
	T_CHECK(listed(in, "i.json.rejected"), "the interrupted drop was "
		"not kept");
	T_CHECK(a.count == 1, "answered %d times", a.count);
	unbox(in);
}

static void test_modes_owners_and_times_are_accepted_on_drops(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, "m.json");
	struct incoming_setattr sa = {
		.set_mode = true, .mode = 0600,
		.set_uid = true, .uid = 123,
		.set_mtime = true, .mtime = { 1000, 5 },
	};
	struct incoming_attr a;

	T_CHECK(incoming_setattr(in, ino, &sa) == 0, "setattr");
	T_CHECK(incoming_getattr(in, ino, &a) == 0 &&
		(a.mode & 07777) == 0600 && a.uid == 123 &&
		a.mtime.tv_sec == 1000, "attributes not shown");
	release(in, ino);
	unbox(in);
}

static void test_names_over_255_bytes_are_enametoolong(void)
{
	struct incoming *in = box(1 << 20);
	struct incoming_attr a;
	char name[300];

	memset(name, 'n', 256);
	name[256] = '\0';
	T_CHECK(incoming_create(in, name, 0644, &a) == -ENAMETOOLONG,
		"create");
	T_CHECK(incoming_lookup(in, name, &a) == -ENAMETOOLONG, "lookup");
	name[255] = '\0';
	T_CHECK(incoming_create(in, name, 0644, &a) == 0, "255 bytes");
	release(in, a.ino);
	unbox(in);
}

static void test_a_fix_renamed_onto_the_rejected_file_replaces_it(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, "f.json");
	char *k;

	put(in, ino, "{\"bad\": 1}");
	T_CHECK(flush(in, ino) == -EINVAL, "accepted");
	release(in, ino);
	T_CHECK(listed(in, "f.json.rejected"), "not kept");
	/* sed -i: a temp with the fixed record, renamed over the file. */
	ino = create(in, "sedAbC123");
	put(in, ino, "{\"fixed\": 1}");
	T_CHECK(flush(in, ino) == 0, "the fix failed");
	release(in, ino);
	T_CHECK(rename_(in, "sedAbC123", "f.json.rejected") == 0, "rename");
	T_CHECK(!listed(in, "f.json.rejected") && !listed(in, "f.json.reason"),
		"the fixed rejected drop is still listed");
	k = kept("f.json");
	T_CHECK(k == NULL, "the fixed drop is still kept: %s", k);
	free(k);
	T_CHECK(commits == 1, "commits %d", commits);
	unbox(in);
}

static void test_removing_a_staging_file_leaves_nothing(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, ".x.json.swp");

	put(in, ino, "swap bytes");
	release(in, ino);
	T_CHECK(incoming_unlink(in, ".x.json.swp") == 0, "rm");
	unbox(in);
	T_CHECK(kept("_.x.json.swp") == NULL && kept(".x.json.swp") == NULL,
		"a removed staging file was kept at unmount");
	T_CHECK(commits == 0, "committed");
}

static void test_a_staging_file_left_at_unmount_is_kept(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, ".left");
	char *k;

	put(in, ino, "{\"x\": 5}");
	release(in, ino);
	unbox(in);
	k = kept("left");
	T_CHECK(k && strcmp(k, "{\"x\": 5}") == 0, "kept: %s", k);
	free(k);
	T_CHECK(commits == 0, "committed");
}

static void test_rm_of_kept_files_in_either_order(void)
{
	struct incoming *in = box(1 << 20);
	uint64_t ino = create(in, "k.json");
	char *b;

	put(in, ino, "{\"bad\": 1}");
	T_CHECK(flush(in, ino) == -EINVAL, "accepted");
	release(in, ino);
	T_CHECK(incoming_unlink(in, "k.json.reason") == 0, "rm reason");
	T_CHECK(!listed(in, "k.json.reason") && listed(in, "k.json.rejected"),
		"rm of the reason took the kept bytes along");
	b = kept("k.json");
	T_CHECK(b && kept("k.json.reason") == NULL, "files beside the store");
	free(b);
	ino = create(in, "k.json");
	put(in, ino, "{\"bad\": 2}");
	T_CHECK(flush(in, ino) == -EINVAL, "accepted");
	release(in, ino);
	T_CHECK(incoming_unlink(in, "k.json.1.rejected") == 0, "rm rejected");
	T_CHECK(incoming_unlink(in, "k.json.1.reason") == 0, "rm of the "
		"reason after its bytes");
	T_CHECK(!listed(in, "k.json.1.reason") && !listed(in, "k.json.1.rejected"),
		"still listed");
	T_CHECK(kept("k.json.1") == NULL && kept("k.json.1.reason") == NULL,
		"files left beside the store");
	unbox(in);
}

int main(void)
{
	T_RUN(test_a_plain_drop_commits_at_close_and_its_name_lingers);
	T_RUN(test_a_staging_name_commits_only_when_renamed);
	T_RUN(test_a_failed_rename_keeps_the_drop_and_the_source);
	T_RUN(test_unfinished_json_fails_each_close_until_completed);
	T_RUN(test_unfinished_json_at_the_last_close_is_kept);
	T_RUN(test_a_bom_drop_commits);
	T_RUN(test_an_oversize_drop_fails_at_write_and_is_kept_whole);
	T_RUN(test_an_interrupted_close_is_never_committed);
	T_RUN(test_modes_owners_and_times_are_accepted_on_drops);
	T_RUN(test_names_over_255_bytes_are_enametoolong);
	T_RUN(test_a_fix_renamed_onto_the_rejected_file_replaces_it);
	T_RUN(test_removing_a_staging_file_leaves_nothing);
	T_RUN(test_a_staging_file_left_at_unmount_is_kept);
	T_RUN(test_rm_of_kept_files_in_either_order);
	free(store_file);
	return t_done();
}
