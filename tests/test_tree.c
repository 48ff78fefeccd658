/* test_tree.c - the tree without a mount: names, attributes, listings,
 * link texts and bytes for small stores and the real histories, snapshots
 * and new inodes for replaced records, lost+found and .iterfs/status. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "hash.h"
#include "ino.h"
#include "store.h"
#include "tree.h"
#include "vcache.h"

/* --- helpers ------------------------------------------------------------- */

struct fixture {
	char *path;
	struct store *s;
	struct vcache *vc;
	struct tree *t;
};

static char *fresh_path(const char *name)
{
	static int seq;
	char n[128];

	snprintf(n, sizeof(n), "%s-%d.jsonl", name, ++seq);
	return t_path(n);
}

/* Replace `path` by a new file holding `s`, the way the Python loop saves. */
static void replace_str(const char *path, const char *s)
{
	char tmp[4096];

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	t_write_file(tmp, s, strlen(s));
	if (rename(tmp, path) < 0)
		abort();
}

static void fx_open(struct fixture *fx, const char *path)
{
	struct tree_opts o = { 0 };

	memset(fx, 0, sizeof(*fx));
	fx->path = strdup(path);
	if (!fx->path || store_open(path, STORE_TIMES | STORE_VALIDATE,
				    &fx->s) < 0 ||
	    vcache_new(8, true, &fx->vc) < 0)
		abort();
	o.store = fx->s;
	o.vc = fx->vc;
	o.uid = getuid();
	o.gid = getgid();
	o.mount_opts = "ro";
	if (tree_new(&o, &fx->t) < 0)
		abort();
}

static struct fixture fx_new(const char *name, const char *text)
{
	struct fixture fx;
	char *p = fresh_path(name);

	t_write_file(p, text, strlen(text));
	fx_open(&fx, p);
	free(p);
	return fx;
}

static void fx_close(struct fixture *fx)
{
	tree_free(fx->t);
	vcache_free(fx->vc);
	store_close(fx->s);
	free(fx->path);
}

/* Resolve a path below the root, "" being the root.  Returns 0 or -errno. */
static int walk(struct tree *t, const char *path, struct tree_node *nd)
{
	char buf[1024], *p, *save = NULL;
	uint64_t ino = INO_ROOT;
	int r;

	r = tree_getattr(t, INO_ROOT, nd);
	snprintf(buf, sizeof(buf), "%s", path);
	for (p = strtok_r(buf, "/", &save); p && r == 0;
	     p = strtok_r(NULL, "/", &save)) {
		r = tree_lookup(t, ino, p, nd);
		if (r == 0)
			ino = nd->st.st_ino;
	}
	return r;
}

static uint64_t ino_of(struct tree *t, const char *path)
{
	struct tree_node nd;
	int r = walk(t, path, &nd);

	T_CHECK(r == 0, "%s: %s", path, strerror(-r));
	return r == 0 ? nd.st.st_ino : 0;
}

/* The whole content of an open file. */
static char *slurp_file(struct tree_file *f, size_t *len)
{
	struct buf b = BUF_INIT;
	char *s;

	/* Two reads, so that offsets are exercised. */
	if (tree_file_read(f, 0, 3, &b) < 0 ||
	    tree_file_read(f, 3, SIZE_MAX, &b) < 0)
		abort();
	*len = b.len;
	s = malloc(b.len + 1);
	if (!s)
		abort();
	memcpy(s, b.data ? b.data : "", b.len);
	s[b.len] = '\0';
	buf_free(&b);
	return s;
}

/* The content of `path` (NULL when it cannot be opened). */
static char *cat(struct tree *t, const char *path, size_t *len)
{
	struct tree_file *f;
	char *s;
	int r;

	r = tree_open(t, ino_of(t, path), &f);
	T_CHECK(r == 0, "open %s: %s", path, strerror(-r));
	if (r < 0)
		return NULL;
	s = slurp_file(f, len);
	tree_file_free(f);
	return s;
}

struct listing {
	char text[8192];      /* "name:type:ino " ... */
	char names[8192];     /* "name " ... */
	int count;
	int stop_after;       /* > 0: say full after that many */
	bool attrs_ok;
};

static int collect(void *arg, const char *name, const struct tree_node *nd,
		   bool has_attrs, off_t next)
{
	struct listing *l = arg;
	size_t used = strlen(l->text), nused = strlen(l->names);
	char type = S_ISDIR(nd->st.st_mode) ? 'd' :
		    S_ISLNK(nd->st.st_mode) ? 'l' : 'f';

	(void)next;
	if (l->stop_after && l->count == l->stop_after)
		return 1;
	if (has_attrs && nd->st.st_nlink == 0)
		l->attrs_ok = false;
	snprintf(l->text + used, sizeof(l->text) - used, "%s:%c ", name, type);
	snprintf(l->names + nused, sizeof(l->names) - nused, "%s ", name);
	l->count++;
	return 0;
}

static void ls(struct tree *t, const char *path, bool attrs,
	       struct listing *l)
{
	int r;

	memset(l, 0, sizeof(*l));
	l->attrs_ok = true;
	r = tree_list(t, ino_of(t, path), 0, attrs, collect, l);
	T_CHECK(r == 0, "list %s: %s", path, strerror(-r));
}

static char *hex_of(const char *code)
{
	unsigned char d[HASH_LEN];
	static char hex[HASH_HEX_LEN + 1];

	if (hash_sha256(code, strlen(code), d) < 0)
		abort();
	hash_to_hex(d, hex);
	return hex;
}

/* --- a small store -------------------------------------------------------- */

static const char small[] =
	"{\"iteration\": 0, \"code\": \"x = 0\\n\", \"metrics\": {\"sharpe\": 1.5},"
	" \"timestamp\": \"2025-01-01T00:00:00Z\"}\n"
	"{\"iteration\": 2, \"code\": \"y\\n\", \"feedback\": \"ok\", "
	"\"error\": \"boom\", \"timestamp\": \"2025-01-01T00:00:01.5Z\"}\n"
	"not json\n"
	"{\"iteration\": 5, \"code\": \"x = 0\\n\"}\n";

static void test_small_listings(void)
{
	struct fixture fx = fx_new("small", small);
	struct listing l;
	char want[512];

	ls(fx.t, "", false, &l);
	T_CHECK(strcmp(l.text, ".:d ..:d iterations:d latest:l by-hash:d by-metric:d failed:d ") == 0,
		"root lists '%s'", l.text);
	ls(fx.t, "", true, &l);
	T_CHECK(strcmp(l.text, ".:d ..:d iterations:d latest:l by-hash:d by-metric:d failed:d ") == 0 &&
		l.attrs_ok, "readdirplus of the root lists '%s'", l.text);
	ls(fx.t, "iterations", true, &l);
	T_CHECK(strcmp(l.names, ". .. 0 2 5 ") == 0, "iterations/ lists '%s'",
		l.names);
	ls(fx.t, "iterations/0", false, &l);
	T_CHECK(strcmp(l.names, ". .. code.py metrics.json record.json ") == 0,
		"iterations/0 lists '%s'", l.names);
	ls(fx.t, "iterations/2", true, &l);
	T_CHECK(strcmp(l.names, ". .. code.py feedback.txt error.txt "
			       "record.json ") == 0,
		"iterations/2 lists '%s'", l.names);
	ls(fx.t, "by-hash", false, &l);
	T_CHECK(l.count == 4, "by-hash lists two codes: '%s'", l.names);
	snprintf(want, sizeof(want), "by-hash/%s", hex_of("x = 0\n"));
	ls(fx.t, want, true, &l);
	T_CHECK(strcmp(l.text, ".:d ..:d code.py:f 0:l 5:l ") == 0,
		"%s lists '%s'", want, l.text);
	fx_close(&fx);
}

static void test_small_resumes(void)
{
	struct fixture fx = fx_new("resume", small);
	struct listing l;
	int r;

	/* A full buffer after two entries; the next call resumes at 2. */
	memset(&l, 0, sizeof(l));
	l.stop_after = 3;
	r = tree_list(fx.t, INO_ITERATIONS, 0, false, collect, &l);
	T_CHECK(r == 0 && strcmp(l.names, ". .. 0 ") == 0,
		"first part '%s' (%d)", l.names, r);
	memset(&l, 0, sizeof(l));
	r = tree_list(fx.t, INO_ITERATIONS, 3, false, collect, &l);
	T_CHECK(r == 0 && strcmp(l.names, "2 5 ") == 0, "rest '%s'", l.names);
	memset(&l, 0, sizeof(l));
	r = tree_list(fx.t, INO_ROOT, 3, false, collect, &l);
	T_CHECK(r == 0 && strcmp(l.names, "latest by-hash by-metric failed ") == 0,
		"root from 3: '%s'", l.names);
	fx_close(&fx);
}

static void test_small_attributes(void)
{
	struct fixture fx = fx_new("attrs", small);
	struct tree_node nd;
	char *s;
	size_t len;

	T_CHECK(walk(fx.t, "", &nd) == 0 && nd.st.st_mode == (S_IFDIR | 0555) &&
		nd.st.st_nlink == 6, "root 0555 with 6 links (%o %ju)",
		(unsigned)nd.st.st_mode, (uintmax_t)nd.st.st_nlink);
	T_CHECK(walk(fx.t, "iterations", &nd) == 0 && nd.st.st_nlink == 5,
		"iterations/ counts its subdirectories");
	T_CHECK(walk(fx.t, "iterations/0", &nd) == 0 &&
		nd.st.st_ino == ino_make(0, IK_ITER_DIR) &&
		nd.st.st_mtim.tv_sec == 1735689600 && nd.cache_dir,
		"iterations/0: inode, mtime, cached listing");
	T_CHECK(walk(fx.t, "iterations/0/code.py", &nd) == 0 &&
		nd.st.st_ino == ino_make(0, IK_VIEW + VIEW_CODE) &&
		nd.st.st_mode == (S_IFREG | 0444) && nd.st.st_size == 6 &&
		nd.st.st_blocks == 1 && nd.keep_cache &&
		nd.attr_timeout == TREE_TTL_FOREVER,
		"code.py: inode, mode, size, blocks, caching");
	T_CHECK(walk(fx.t, "iterations/2/error.txt", &nd) == 0 &&
		nd.st.st_mtim.tv_sec == 1735689601 &&
		nd.st.st_mtim.tv_nsec == 500000000,
		"mtime to the microsecond");
	T_CHECK(walk(fx.t, "iterations/5/record.json", &nd) == 0 &&
		nd.st.st_mtim.tv_sec == 0, "no timestamp: mtime 0");
	T_CHECK(walk(fx.t, "latest", &nd) == 0 &&
		nd.st.st_ino == ino_make(5, IK_LATEST) &&
		S_ISLNK(nd.st.st_mode) && nd.st.st_size == 12 &&
		nd.entry_timeout == TREE_TTL_NONE, "latest -> 5");

	s = cat(fx.t, "iterations/0/code.py", &len);
	T_CHECK_MEM(s, len, "x = 0\n", 6, "code.py");
	free(s);
	s = cat(fx.t, "iterations/0/metrics.json", &len);
	T_CHECK_MEM(s, len, "{\n  \"sharpe\": 1.5\n}\n", 20, "metrics.json");
	free(s);
	s = cat(fx.t, "iterations/2/feedback.txt", &len);
	T_CHECK_MEM(s, len, "ok", 2, "feedback.txt");
	free(s);
	fx_close(&fx);
}

static void test_small_links_and_errors(void)
{
	struct fixture fx = fx_new("links", small);
	struct tree_node nd;
	struct tree_file *f;
	char target[64], path[128];
	uint64_t ino;

	T_CHECK(tree_readlink(fx.t, ino_of(fx.t, "latest"), target,
			      sizeof(target)) == 0 &&
		strcmp(target, "iterations/5") == 0, "latest text '%s'", target);
	snprintf(path, sizeof(path), "by-hash/%s/5", hex_of("x = 0\n"));
	T_CHECK(tree_readlink(fx.t, ino_of(fx.t, path), target,
			      sizeof(target)) == 0 &&
		strcmp(target, "../../iterations/5") == 0, "by-hash link '%s'",
		target);
	T_CHECK(walk(fx.t, "iterations/07", &nd) == -ENOENT, "07 is no name");
	T_CHECK(walk(fx.t, "iterations/3", &nd) == -ENOENT, "no iteration 3");
	T_CHECK(walk(fx.t, "iterations/0/error.txt", &nd) == -ENOENT,
		"no error, no error.txt");
	T_CHECK(walk(fx.t, "incoming", &nd) == -ENOENT,
		"no incoming/ without a drop box");
	T_CHECK(walk(fx.t, "lost+found", &nd) == -ENOENT,
		"no lost+found/ while nothing was lost");
	ino = ino_of(fx.t, "iterations/0/code.py");
	T_CHECK(tree_lookup(fx.t, ino, "x", &nd) == -ENOTDIR, "lookup in a file");
	T_CHECK(tree_readlink(fx.t, ino, target, sizeof(target)) == -EINVAL,
		"readlink of a file");
	T_CHECK(tree_open(fx.t, INO_ITERATIONS, &f) == -EISDIR,
		"open of a directory");
	T_CHECK(tree_getattr(fx.t, ino_make(3, IK_VIEW), &nd) == -ENOENT,
		"an inode of no record");
	snprintf(path, sizeof(path), "by-hash/%s/2", hex_of("x = 0\n"));
	T_CHECK(walk(fx.t, path, &nd) == -ENOENT,
		"a link only for iterations with that code");
	fx_close(&fx);
}

/* --- by-metric/ and failed/ -------------------------------------------- */

static const char ranked[] =
	"{\"iteration\": 0, \"metrics\": {\"sharpe\": 1.5, \"dd\": -2}, "
	"\"success\": true, \"timestamp\": \"2025-01-01T00:00:00Z\"}\n"
	"{\"iteration\": 1, \"metrics\": {\"sharpe\": 2.5}, \"success\": false}\n"
	"{\"iteration\": 2, \"metrics\": {\"sharpe\": 1.5, \"x\": NaN}, "
	"\"error\": \"boom\"}\n"
	"{\"iteration\": 3, \"metrics\": {\"sharpe\": 0.1, \"x\": \"no\"}}\n"
	"{\"iteration\": 4, \"metrics\": {\"sharpe\": 1e1}}\n"
	"{\"iteration\": 5, \"metrics\": {\"sharpe\": 0}}\n"
	"{\"iteration\": 6, \"metrics\": {\"sharpe\": -1}}\n"
	"{\"iteration\": 7, \"metrics\": {\"sharpe\": -2}}\n"
	"{\"iteration\": 8, \"metrics\": {\"sharpe\": -3}}\n"
	"{\"iteration\": 9, \"metrics\": {\"sharpe\": -4}}\n";

static void test_by_metric_and_failed(void)
{
	struct fixture fx = fx_new("ranked", ranked);
	struct tree_node nd;
	struct listing l;
	char target[64];
	uint64_t a, b;

	ls(fx.t, "by-metric", true, &l);
	T_CHECK(strcmp(l.text, ".:d ..:d dd:d sharpe:d ") == 0 && l.attrs_ok,
		"one directory per numeric metric: '%s'", l.text);
	ls(fx.t, "by-metric/sharpe", true, &l);
	T_CHECK(strcmp(l.names, ". .. 1 2 3 4 5 6 7 8 9 ") == 0,
		"ranks of sharpe: '%s'", l.names);
	T_CHECK(tree_readlink(fx.t, ino_of(fx.t, "by-metric/sharpe/1"), target,
			      sizeof(target)) == 0 &&
		strcmp(target, "../../iterations/4") == 0,
		"the highest first: '%s'", target);
	T_CHECK(tree_readlink(fx.t, ino_of(fx.t, "by-metric/sharpe/2"), target,
			      sizeof(target)) == 0 &&
		strcmp(target, "../../iterations/0") == 0,
		"a tie: the lower iteration first: '%s'", target);
	T_CHECK(walk(fx.t, "by-metric/sharpe/01", &nd) == -ENOENT &&
		walk(fx.t, "by-metric/sharpe/10", &nd) == -ENOENT &&
		walk(fx.t, "by-metric/x", &nd) == -ENOENT,
		"no such rank, no such metric");
	T_CHECK(walk(fx.t, "by-metric/sharpe/3", &nd) == 0 &&
		S_ISLNK(nd.st.st_mode) && nd.st.st_size == 18,
		"a rank is a symlink");
	a = ino_of(fx.t, "by-metric/sharpe/2");
	b = ino_of(fx.t, "by-metric/dd/1");
	T_CHECK(a != b, "links of two metrics to one iteration differ");
	ls(fx.t, "failed", true, &l);
	T_CHECK(strcmp(l.text, ".:d ..:d 1:l 2:l ") == 0,
		"failed or with an error: '%s'", l.text);
	T_CHECK(tree_readlink(fx.t, ino_of(fx.t, "failed/2"), target,
			      sizeof(target)) == 0 &&
		strcmp(target, "../iterations/2") == 0, "failed/2 -> '%s'",
		target);
	T_CHECK(walk(fx.t, "failed/0", &nd) == -ENOENT, "0 did not fail");
	fx_close(&fx);
}

/* Two iterations whose links in one ranking hash to the same 39 bits: found
 * by search (about a million numbers are tried), then both looked up.
 * Sharing an inode, both names would show the target of the later. */
struct lh {
	uint64_t h;
	int64_t n;
};

static int cmp_lh(const void *a, const void *b)
{
	const struct lh *x = a, *y = b;

	return x->h < y->h ? -1 : x->h > y->h;
}

static void test_metric_link_collision(void)
{
	const uint64_t mask = (UINT64_C(1) << INO_HASH_BITS) - 1;
	const size_t tries = (size_t)4 << 20;
	struct fixture fx = fx_new("collide", "{\"iteration\": 0, "
					      "\"metrics\": {\"m\": 1}}\n");
	struct lh *v = malloc(tries * sizeof(*v));
	int64_t n1 = -1, n2 = -1;
	char text[256], target[64], want[64];
	uint64_t key, a, b;
	size_t i;

	if (!v)
		abort();
	key = (ino_of(fx.t, "by-metric/m") >> 4) & mask;
	fx_close(&fx);
	for (i = 0; i < tries; i++)
		v[i] = (struct lh){ ino_pair_hash(key, (int64_t)i) & mask,
				    (int64_t)i };
	qsort(v, tries, sizeof(*v), cmp_lh);
	for (i = 1; i < tries && n1 < 0; i++)
		if (v[i].h == v[i - 1].h) {
			n1 = v[i - 1].n < v[i].n ? v[i - 1].n : v[i].n;
			n2 = v[i - 1].n < v[i].n ? v[i].n : v[i - 1].n;
		}
	free(v);
	T_CHECK(n1 >= 0, "no collision among %zu numbers", tries);
	if (n1 < 0)
		return;
	/* n1 ranks first (2 > 1). */
	snprintf(text, sizeof(text),
		 "{\"iteration\": %lld, \"metrics\": {\"m\": 2}}\n"
		 "{\"iteration\": %lld, \"metrics\": {\"m\": 1}}\n",
		 (long long)n1, (long long)n2);
	fx = fx_new("collide", text);
	T_CHECK(((ino_of(fx.t, "by-metric/m") >> 4) & mask) == key,
		"the metric's key is the same");
	a = ino_of(fx.t, "by-metric/m/1");
	b = ino_of(fx.t, "by-metric/m/2");
	T_CHECK(a && b && a != b, "colliding links share inode %#llx",
		(unsigned long long)a);
	snprintf(want, sizeof(want), "../../iterations/%lld", (long long)n1);
	T_CHECK(tree_readlink(fx.t, a, target, sizeof(target)) == 0 &&
		strcmp(target, want) == 0, "rank 1 -> '%s', want '%s'",
		target, want);
	snprintf(want, sizeof(want), "../../iterations/%lld", (long long)n2);
	T_CHECK(tree_readlink(fx.t, b, target, sizeof(target)) == 0 &&
		strcmp(target, want) == 0, "rank 2 -> '%s', want '%s'",
		target, want);
	/* Looked up again, each keeps its number. */
	T_CHECK(ino_of(fx.t, "by-metric/m/1") == a &&
		ino_of(fx.t, "by-metric/m/2") == b, "numbers are stable");
	fx_close(&fx);
}

/* --- .iterfs/status ------------------------------------------------------- */

static void test_status(void)
{
	struct fixture fx = fx_new("status", small);
	struct tree_node nd, nd2;
	struct listing l;
	cJSON *o, *lines;
	size_t len;
	char *s;

	ls(fx.t, "", false, &l);
	T_CHECK(!strstr(l.names, ".iterfs"), "hidden from the root's listing");
	T_CHECK(walk(fx.t, ".iterfs", &nd) == 0 && S_ISDIR(nd.st.st_mode),
		".iterfs resolves");
	T_CHECK(walk(fx.t, ".iterfs/status", &nd) == 0 &&
		S_ISREG(nd.st.st_mode) && nd.direct_io &&
		nd.attr_timeout == TREE_TTL_NONE, "status: a generated file");
	s = cat(fx.t, ".iterfs/status", &len);
	T_CHECK(s && (off_t)len == nd.st.st_size,
		"the size at getattr is the size read (%zu, %jd)", len,
		(intmax_t)nd.st.st_size);
	o = s ? cJSON_ParseWithLengthOpts(s, len, NULL, false) : NULL;
	T_CHECK(o != NULL, "status is JSON: %s", s ? s : "");
	if (o) {
		T_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "records")) == 3,
			"three records");
		T_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(o, "skipped")) == 1,
			"one skipped line");
		lines = cJSON_GetObjectItem(o, "skipped_lines");
		T_CHECK(cJSON_GetArraySize(lines) == 1 &&
			cJSON_GetNumberValue(cJSON_GetArrayItem(lines, 0)) == 3,
			"the skipped line is line 3");
		T_CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(o, "store")),
			       fx.path) == 0, "the store's path");
		T_CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "last_commit")),
			"no commit yet");
		T_CHECK(cJSON_GetStringValue(cJSON_GetObjectItem(o, "version")) &&
			strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(
				       o, "mount_options")), "ro") == 0,
			"version and options");
	}
	cJSON_Delete(o);
	free(s);
	tree_note_commit(fx.t, &(struct timespec){ 1735689600, 250000000 });
	T_CHECK(walk(fx.t, ".iterfs/status", &nd2) == 0 &&
		nd2.st.st_size > nd.st.st_size, "a commit shows in the size");
	s = cat(fx.t, ".iterfs/status", &len);
	T_CHECK(s && strstr(s, "\"2025-01-01T00:00:00.250000Z\""),
		"the last commit's time: %s", s ? s : "");
	free(s);
	fx_close(&fx);
}

/* --- lost+found ------------------------------------------------------------ */

static void test_lost_found(void)
{
	struct fixture fx = fx_new("lost", small);
	struct listing l;
	struct tree_node nd;
	char dir[4096], file[4200];
	bool changed;
	size_t len;
	char *s;

	snprintf(dir, sizeof(dir), "%s.lost", fx.path);
	if (mkdir(dir, 0700) < 0)
		abort();
	snprintf(file, sizeof(file), "%s/20250101T000000.jsonl", dir);
	t_write_file(file, "{\"iteration\": 9}\n", 17);
	T_CHECK(walk(fx.t, "lost+found", &nd) == -ENOENT,
		"not seen before the store changes");
	tree_changed(fx.t, &changed);
	T_CHECK(changed, "a new lost file is a change");
	ls(fx.t, "", false, &l);
	T_CHECK(strcmp(l.names, ". .. iterations latest by-hash by-metric failed lost+found ") == 0,
		"root lists '%s'", l.names);
	T_CHECK(walk(fx.t, "", &nd) == 0 && nd.st.st_nlink == 7,
		"lost+found counts in the root's links");
	ls(fx.t, "lost+found", true, &l);
	T_CHECK(strcmp(l.text, ".:d ..:d 20250101T000000.jsonl:f ") == 0,
		"lost+found lists '%s'", l.text);
	T_CHECK(walk(fx.t, "lost+found/20250101T000000.jsonl", &nd) == 0 &&
		nd.st.st_size == 17 && nd.st.st_mode == (S_IFREG | 0444) &&
		ino_is_hashed(nd.st.st_ino), "attributes of a lost file");
	s = cat(fx.t, "lost+found/20250101T000000.jsonl", &len);
	T_CHECK_MEM(s, len, "{\"iteration\": 9}\n", 17, "lost file");
	free(s);
	tree_changed(fx.t, &changed);
	T_CHECK(!changed, "nothing new, no change");
	unlink(file);
	tree_changed(fx.t, &changed);
	T_CHECK(changed && walk(fx.t, "lost+found", &nd) == -ENOENT,
		"absent again once empty");
	fx_close(&fx);
}

/* --- replaced records ----------------------------------------------------- */

static const char ver_a[] =
	"{\"iteration\": 1, \"code\": \"a = 1\\n\"}\n"
	"{\"iteration\": 2, \"code\": \"b\\n\"}\n";
static const char ver_b[] =
	"{\"iteration\": 1, \"code\": \"a = 22\\n\"}\n"
	"{\"iteration\": 2, \"code\": \"b\\n\"}\n";

static void test_replaced_records(void)
{
	struct fixture fx = fx_new("versions", ver_a);
	uint64_t base, ino_b, ino_b2, ino_a2, other;
	struct buf b = BUF_INIT;
	struct tree_file *old, *f;
	struct tree_node nd;
	struct listing l;
	size_t len;
	char *s;

	base = ino_of(fx.t, "iterations/1/code.py");
	other = ino_of(fx.t, "iterations/2/code.py");
	T_CHECK(base == ino_make(1, IK_VIEW + VIEW_CODE), "never replaced: "
		"the computed number");
	T_CHECK(tree_open(fx.t, base, &old) == 0, "open before the replace");

	replace_str(fx.path, ver_b);
	T_CHECK(store_refresh(fx.s) == 0, "refresh");
	T_CHECK(tree_open(fx.t, base, &f) == -ESTALE,
		"the old version's inode cannot be opened: a new open sees the "
		"new record");
	T_CHECK(tree_getattr(fx.t, base, &nd) == 0 && nd.st.st_size == 6,
		"but it still has its attributes while it is open");
	ino_b = ino_of(fx.t, "iterations/1/code.py");
	T_CHECK(ino_b != base && ino_is_hashed(ino_b) &&
		ino_region_of(ino_b) == IR_VERSION, "a new inode for new content");
	T_CHECK(ino_of(fx.t, "iterations/2/code.py") == other,
		"the other record keeps its inode");
	T_CHECK(walk(fx.t, "iterations/1/code.py", &nd) == 0 &&
		nd.st.st_size == 7, "the new size");
	s = slurp_file(old, &len);
	T_CHECK_MEM(s, len, "a = 1\n", 6, "the open file reads the old version");
	free(s);
	tree_file_free(old);
	s = cat(fx.t, "iterations/1/code.py", &len);
	T_CHECK_MEM(s, len, "a = 22\n", 7, "a new open reads the new version");
	free(s);
	memset(&l, 0, sizeof(l));
	ls(fx.t, "iterations/1", false, &l);
	T_CHECK(strcmp(l.names, ". .. code.py record.json ") == 0, "listing");

	replace_str(fx.path, ver_a);
	T_CHECK(store_refresh(fx.s) == 0, "refresh");
	ino_a2 = ino_of(fx.t, "iterations/1/code.py");
	T_CHECK(ino_a2 != base && ino_a2 != ino_b,
		"back to the first content: yet another inode");
	T_CHECK(tree_open(fx.t, ino_b, &f) == -ESTALE, "b is stale now");
	T_CHECK(tree_getattr(fx.t, ino_b, &nd) == 0 && nd.st.st_size == 7 &&
		tree_read(fx.t, ino_b, 0, 100, &b) == 0 && b.len == 7,
		"though its bytes are answered while the view cache holds them");
	buf_reset(&b);
	vcache_clear(fx.vc);
	T_CHECK(tree_getattr(fx.t, ino_b, &nd) == -ESTALE &&
		tree_read(fx.t, ino_b, 0, 100, &b) == -ESTALE,
		"and no longer once it does not");
	replace_str(fx.path, ver_b);
	T_CHECK(store_refresh(fx.s) == 0, "refresh");
	ino_b2 = ino_of(fx.t, "iterations/1/code.py");
	T_CHECK(ino_b2 == ino_b, "the same content, the same inode");
	T_CHECK(tree_read(fx.t, ino_b2, 4, 100, &b) == 0 &&
		b.len == 3 && memcmp(b.data, "22\n", 3) == 0,
		"reads without an open");
	buf_reset(&b);
	vcache_clear(fx.vc);
	T_CHECK(tree_read(fx.t, base, 0, 100, &b) == -ESTALE,
		"an old version no longer cached cannot be read");
	buf_free(&b);
	fx_close(&fx);
}

/* --- lazy, shared snapshots ---------------------------------------------- */

/* Ten records, iteration `changed` carrying `code` instead of "c = <n>\n". */
static char *lazy_store(int changed, const char *code)
{
	struct buf b = BUF_INIT;
	char *s;
	int i;

	for (i = 0; i < 10; i++) {
		if (i == changed)
			buf_printf(&b, "{\"iteration\": %d, \"code\": \"%s\"}\n",
				   i, code);
		else
			buf_printf(&b, "{\"iteration\": %d, \"code\": "
				   "\"c = %d\\n\"}\n", i, i);
	}
	s = strdup(b.data ? b.data : "");
	if (!s)
		abort();
	buf_free(&b);
	return s;
}

static uint64_t renders(struct fixture *fx)
{
	struct vcache_stats st;

	vcache_stats(fx->vc, &st);
	return st.renders;
}

static void test_lazy_snapshots(void)
{
	char *text = lazy_store(-1, ""), *s, path[128];
	struct fixture fx = fx_new("lazy", text);
	struct tree_file *f1, *f2, *f3;
	uint64_t ino0, ino1, before;
	size_t len;
	int i;

	/* Every code.py looked up (so its size is known), the view cache
	 * (8 slots) keeping only the last ones: iteration 0's bytes are
	 * evicted, as in a pass over more files than the cache holds. */
	for (i = 0; i < 10; i++) {
		snprintf(path, sizeof(path), "iterations/%d/code.py", i);
		ino_of(fx.t, path);
	}
	/* by-hash/<h>/code.py too: its size known, its bytes evicted. */
	snprintf(path, sizeof(path), "by-hash/%s/code.py", hex_of("c = 1\n"));
	ino1 = ino_of(fx.t, path);
	before = renders(&fx);
	T_CHECK(tree_open(fx.t, ino1, &f3) == 0, "open %s", path);
	T_CHECK(renders(&fx) == before && tree_file_node(f3)->st.st_size == 6,
		"by-hash code.py: no render at open, the exact size");
	s = slurp_file(f3, &len);
	T_CHECK_MEM(s, len, "c = 1\n", 6, "its bytes at the first read");
	free(s);
	T_CHECK(renders(&fx) == before + 1, "rendered then");
	tree_file_free(f3);

	ino0 = ino_of(fx.t, "iterations/0/code.py");
	before = renders(&fx);
	T_CHECK(tree_open(fx.t, ino0, &f1) == 0 &&
		tree_open(fx.t, ino0, &f2) == 0, "two opens of iteration 0");
	T_CHECK(renders(&fx) == before,
		"an open renders nothing (%" PRIu64 " renders)",
		renders(&fx) - before);
	T_CHECK(tree_file_node(f1)->st.st_size == 6,
		"the exact size before the first read");

	/* Another writer replaces iteration 0 between open and first read. */
	free(text);
	text = lazy_store(0, "c = 100\\n");
	replace_str(fx.path, text);
	T_CHECK(store_refresh(fx.s) == 0, "refresh");
	s = cat(fx.t, "iterations/0/code.py", &len);
	T_CHECK_MEM(s, len, "c = 100\n", 8, "a new open sees the new record");
	free(s);
	before = renders(&fx);
	s = slurp_file(f1, &len);
	T_CHECK_MEM(s, len, "c = 0\n", 6,
		    "the first read after the replace reads the version opened");
	free(s);
	T_CHECK(renders(&fx) == before + 1, "rendered at that first read");
	s = slurp_file(f2, &len);
	T_CHECK_MEM(s, len, "c = 0\n", 6, "so does the other handle");
	free(s);
	T_CHECK(renders(&fx) == before + 1,
		"sharing the bytes the first one rendered");

	/* The bytes outlive the cache that made them. */
	vcache_clear(fx.vc);
	s = slurp_file(f2, &len);
	T_CHECK_MEM(s, len, "c = 0\n", 6, "read again after the cache let go");
	free(s);
	tree_file_free(f1);
	s = slurp_file(f2, &len);
	T_CHECK_MEM(s, len, "c = 0\n", 6, "and after the other handle closed");
	free(s);
	tree_file_free(f2);

	/* Bytes cached at open are taken by reference: no render later, and
	 * the same guarantee across a replace. */
	s = cat(fx.t, "iterations/0/code.py", &len);
	free(s);
	before = renders(&fx);
	T_CHECK(tree_open(fx.t, ino_of(fx.t, "iterations/0/code.py"), &f3) == 0,
		"open of cached bytes");
	free(text);
	text = lazy_store(0, "c = 3000\\n");
	replace_str(fx.path, text);
	T_CHECK(store_refresh(fx.s) == 0, "refresh");
	vcache_clear(fx.vc);
	s = slurp_file(f3, &len);
	T_CHECK_MEM(s, len, "c = 100\n", 8, "the version opened");
	free(s);
	T_CHECK(renders(&fx) == before, "without a render");
	tree_file_free(f3);
	free(text);
	fx_close(&fx);
}

struct reader {
	struct tree_file *f;
	char *text;
	size_t len;
};

static void *read_all(void *arg)
{
	struct reader *rd = arg;

	rd->text = slurp_file(rd->f, &rd->len);
	return NULL;
}

/* Threads that read one handle at once all meet its first read: one
 * render, every one of them reading its bytes. */
static void test_lazy_first_read_race(void)
{
	char *text = lazy_store(-1, ""), path[64];
	struct fixture fx = fx_new("lazyrace", text);
	struct reader rd[4];
	pthread_t th[4];
	struct tree_file *f;
	uint64_t before;
	int i;

	for (i = 0; i < 10; i++) {
		snprintf(path, sizeof(path), "iterations/%d/code.py", i);
		ino_of(fx.t, path);
	}
	T_CHECK(tree_open(fx.t, ino_of(fx.t, "iterations/0/code.py"), &f) == 0,
		"open");
	before = renders(&fx);
	for (i = 0; i < 4; i++) {
		rd[i] = (struct reader){ .f = f };
		if (pthread_create(&th[i], NULL, read_all, &rd[i]) != 0)
			abort();
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		T_CHECK_MEM(rd[i].text, rd[i].len, "c = 0\n", 6, "reader's bytes");
		free(rd[i].text);
	}
	T_CHECK(renders(&fx) == before + 1, "one render for all (%" PRIu64 ")",
		renders(&fx) - before);
	tree_file_free(f);
	free(text);
	fx_close(&fx);
}

/* --- the real histories --------------------------------------------------- */

static const char *alias(cJSON *o, const char *a, const char *b)
{
	cJSON *v = cJSON_GetObjectItem(o, a);

	if (!v)
		v = cJSON_GetObjectItem(o, b);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void check_real(const char *name)
{
	char *path = t_real_data(name), *text, *line, *save = NULL, *s;
	char p[256], target[64];
	int64_t n, highest = -1, checked = 0;
	struct tree_node nd;
	struct fixture fx;
	const char *code;
	struct listing l;
	size_t len;
	cJSON *o, *v;

	if (!path) {
		printf("  (skipped: %s not present)\n", name);
		return;
	}
	fx_open(&fx, path);
	text = t_read_file(path, &len);
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		/* cJSON reads no NaN: such lines are checked by the mount
		 * tests against Python instead. */
		o = cJSON_Parse(line);
		if (!o)
			continue;
		v = cJSON_GetObjectItem(o, "iteration");
		if (!v)
			v = cJSON_GetObjectItem(o, "iteration_num");
		if (!cJSON_IsNumber(v)) {
			cJSON_Delete(o);
			continue;
		}
		n = (int64_t)v->valuedouble;
		highest = n > highest ? n : highest;
		snprintf(p, sizeof(p), "iterations/%" PRId64 "/code.py", n);
		code = alias(o, "code", "strategy_code");
		if (code) {
			s = cat(fx.t, p, &len);
			T_CHECK(s && len == strlen(code) &&
				memcmp(s, code, len) == 0, "%s %s", name, p);
			free(s);
			T_CHECK(walk(fx.t, p, &nd) == 0 &&
				nd.st.st_size == (off_t)strlen(code),
				"%s %s size", name, p);
			snprintf(p, sizeof(p), "by-hash/%s/%" PRId64,
				 hex_of(code), n);
			T_CHECK(tree_readlink(fx.t, ino_of(fx.t, p), target,
					      sizeof(target)) == 0, "%s", p);
		} else {
			T_CHECK(walk(fx.t, p, &nd) == -ENOENT,
				"%s: no code, no %s", name, p);
		}
		snprintf(p, sizeof(p), "iterations/%" PRId64 "/record.json", n);
		s = cat(fx.t, p, &len);
		cJSON_Delete(o);
		o = s ? cJSON_ParseWithLengthOpts(s, len, NULL, false) : NULL;
		T_CHECK(o && cJSON_IsObject(o) && s[len - 1] == '\n' &&
			walk(fx.t, p, &nd) == 0 && nd.st.st_size == (off_t)len,
			"%s %s parses, with its size", name, p);
		cJSON_Delete(o);
		free(s);
		checked++;
	}
	T_CHECK(checked > 0, "%s: some records checked", name);
	snprintf(p, sizeof(p), "iterations/%" PRId64, highest);
	T_CHECK(tree_readlink(fx.t, ino_of(fx.t, "latest"), target,
			      sizeof(target)) == 0 && strcmp(target, p) == 0,
		"%s: latest -> %s ('%s')", name, p, target);
	ls(fx.t, "iterations", true, &l);
	T_CHECK(l.attrs_ok, "%s: every entry has attributes", name);
	free(text);
	fx_close(&fx);
	free(path);
}

static void test_real_histories(void)
{
	check_real("llm_only_50.jsonl");
	check_real("unified_factor_graph.jsonl");
	check_real("json_mode_test.jsonl");
	check_real("migrated_no_code.jsonl");
}

int main(void)
{
	T_RUN(test_small_listings);
	T_RUN(test_small_resumes);
	T_RUN(test_small_attributes);
	T_RUN(test_small_links_and_errors);
	T_RUN(test_by_metric_and_failed);
	T_RUN(test_metric_link_collision);
	T_RUN(test_status);
	T_RUN(test_lost_found);
	T_RUN(test_replaced_records);
	T_RUN(test_lazy_snapshots);
	T_RUN(test_lazy_first_read_race);
	T_RUN(test_real_histories);
	return t_done();
}
