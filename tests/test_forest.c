/* test_forest.c - the forest (fs/forest.h) without a mount: which
 * histories a directory shows, where, under which inode numbers, and that
 * each is opened only at its first lookup. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forest.h"
#include "ino.h"
#include "store.h"
#include "testutil.h"
#include "tree.h"
#include "vcache.h"

/* What the opener made for one history. */
struct opened {
	struct store *s;
	struct vcache *vc;
	struct tree *t;
};

static int opens;

static int open_cb(void *arg, const char *path, uint16_t id,
		   struct forest_hist *h)
{
	struct opened *o = calloc(1, sizeof(*o));
	struct tree_opts to = { 0 };

	(void)arg;
	(void)id;
	if (!o || store_open(path, STORE_TIMES | STORE_VALIDATE, &o->s) < 0 ||
	    vcache_new(8, true, &o->vc) < 0)
		abort();
	to.store = o->s;
	to.vc = o->vc;
	if (tree_new(&to, &o->t) < 0)
		abort();
	h->tree = o->t;
	h->in = NULL;
	h->owner = o;
	opens++;
	return 0;
}

static void close_cb(void *arg, struct forest_hist *h)
{
	struct opened *o = h->owner;

	(void)arg;
	tree_free(o->t);
	vcache_free(o->vc);
	store_close(o->s);
	free(o);
}

static char *dir_seq(void)
{
	static int seq;
	char name[32];
	char *d;

	snprintf(name, sizeof(name), "d%d", seq++);
	d = t_path(name);
	if (mkdir(d, 0700) < 0)
		abort();
	return d;
}

static void put(const char *dir, const char *rel, const char *text)
{
	char path[4096];
	char *slash;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	for (slash = strchr(path + strlen(dir) + 1, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	t_write_file(path, text, strlen(text));
}

static struct forest *forest_of(const char *dir)
{
	struct forest_opts o = {
		.dir = dir,
		.open = open_cb,
		.close = close_cb,
	};
	struct forest *f;

	if (forest_new(&o, &f) < 0)
		abort();
	return f;
}

/* The names a listing gives, space-separated, without "." and "..". */
struct names {
	char text[1024];
	uint64_t ino[32];
	bool attrs[32];
	size_t n;
};

static int collect(void *arg, const char *name, const struct tree_node *nd,
		   bool has_attrs, off_t next)
{
	struct names *v = arg;

	(void)next;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0;
	if (v->n < 32) {
		v->ino[v->n] = (uint64_t)nd->st.st_ino;
		v->attrs[v->n] = has_attrs;
	}
	v->n++;
	strncat(v->text, name, sizeof(v->text) - strlen(v->text) - 2);
	strcat(v->text, " ");
	return 0;
}

static struct names list(struct forest *f, uint64_t dir, bool attrs)
{
	struct names v;

	memset(&v, 0, sizeof(v));
	T_CHECK(forest_list(f, dir, 0, attrs, collect, &v) == 0,
		"listing %llu", (unsigned long long)dir);
	return v;
}

static const char rec0[] = "{\"iteration\": 0, \"code\": \"x = 0\\n\"}\n";
static const char rec01[] = "{\"iteration\": 0, \"code\": \"x = 0\\n\"}\n"
			    "{\"iteration\": 1, \"code\": \"x = 1\\n\"}\n";

static void test_walk_shows_histories_only(void)
{
	char *d = dir_seq();
	struct tree_node nd;
	struct forest *f;
	struct names v;

	put(d, "b_run.jsonl", rec0);
	put(d, "a_run.jsonl", rec01);
	put(d, "exp/deep/c.jsonl", rec0);
	put(d, "exp/notes.jsonl", "no json here\n");
	put(d, "empty/readme.txt", "x\n");
	put(d, ".hidden.jsonl", rec0);
	put(d, "a_run.jsonl.lost/20260101T000000Z.jsonl", rec0);
	put(d, "a_run.jsonl.rejected/x.jsonl", rec0);
	put(d, "cfg.jsonl", "{\"name\": \"no number\"}\n");
	opens = 0;
	f = forest_of(d);
	v = list(f, INO_ROOT, false);
	T_CHECK(strcmp(v.text, "a_run b_run exp ") == 0, "root: '%s'", v.text);
	T_CHECK(forest_lookup(f, INO_ROOT, "exp", &nd) == 0, "exp");
	T_CHECK(S_ISDIR(nd.st.st_mode) && ino_hist(nd.st.st_ino) == 0,
		"exp is a folder of the forest");
	v = list(f, nd.st.st_ino, false);
	T_CHECK(strcmp(v.text, "deep ") == 0, "exp: '%s'", v.text);
	T_CHECK(forest_lookup(f, INO_ROOT, "cfg", &nd) == -ENOENT, "cfg");
	T_CHECK(forest_lookup(f, INO_ROOT, "empty", &nd) == -ENOENT, "empty");
	T_CHECK(forest_lookup(f, INO_ROOT, "a_run.jsonl", &nd) == -ENOENT,
		"the file's own name");
	T_CHECK(opens == 0, "nothing opened by walks and listings: %d", opens);
	forest_free(f);
	free(d);
}

static void test_histories_open_at_first_lookup(void)
{
	char *d = dir_seq();
	struct tree_node root, it, one;
	struct forest_place p;
	struct forest *f;
	struct names v;
	char link[64];

	put(d, "a.jsonl", rec01);
	put(d, "b.jsonl", rec0);
	opens = 0;
	f = forest_of(d);
	v = list(f, INO_ROOT, true);
	T_CHECK(v.n == 2 && !v.attrs[0] && !v.attrs[1],
		"a history not opened is listed without attributes");
	T_CHECK(opens == 0, "listing opens nothing: %d", opens);
	T_CHECK(forest_lookup(f, INO_ROOT, "a", &root) == 0, "lookup a");
	T_CHECK(opens == 1, "one history opened: %d", opens);
	T_CHECK(S_ISDIR(root.st.st_mode) && ino_hist(root.st.st_ino) != 0 &&
		ino_local(root.st.st_ino) == INO_ROOT,
		"a's root carries its part: %llx",
		(unsigned long long)root.st.st_ino);
	T_CHECK(root.st.st_ino == v.ino[0], "listed and looked-up numbers");
	T_CHECK(forest_lookup(f, root.st.st_ino, "iterations", &it) == 0,
		"iterations");
	T_CHECK(ino_hist(it.st.st_ino) == ino_hist(root.st.st_ino) &&
		ino_local(it.st.st_ino) == INO_ITERATIONS, "iterations' number");
	T_CHECK(forest_lookup(f, it.st.st_ino, "1", &one) == 0, "1/");
	T_CHECK(forest_readlink(f, forest_lookup(f, root.st.st_ino, "latest",
						 &one) == 0 ?
					   one.st.st_ino : 0,
				link, sizeof(link)) == 0 &&
		strcmp(link, "iterations/1") == 0, "latest");
	T_CHECK(forest_place(f, root.st.st_ino, &p) == 0 && p.tree &&
		p.local == INO_ROOT && !p.in, "place of a's root");
	T_CHECK(forest_place(f, INO_ROOT, &p) == -ENOENT,
		"the root is the forest's own");
	T_CHECK(opens == 1, "b still closed: %d", opens);
	v = list(f, INO_ROOT, true);
	T_CHECK(v.attrs[0] && !v.attrs[1], "opened ones carry attributes");
	forest_free(f);
	free(d);
}

static void test_numbers_are_stable_and_distinct(void)
{
	char *d = dir_seq();
	struct forest *f;
	struct names v1, v2;
	struct tree_node nd;
	uint16_t id[20];
	size_t i, j;

	for (i = 0; i < 20; i++) {
		char rel[32];

		snprintf(rel, sizeof(rel), "run_%02zu/h.jsonl", i);
		put(d, rel, rec0);
	}
	f = forest_of(d);
	v1 = list(f, INO_ROOT, false);
	forest_free(f);
	f = forest_of(d);
	v2 = list(f, INO_ROOT, false);
	T_CHECK(v1.n == 20 && v2.n == 20, "20 folders: %zu %zu", v1.n, v2.n);
	T_CHECK(memcmp(v1.ino, v2.ino, sizeof(v1.ino)) == 0,
		"the same numbers on a second forest");
	for (i = 0; i < 20; i++) {
		for (j = i + 1; j < 20; j++)
			T_CHECK(v1.ino[i] != v1.ino[j], "folders %zu, %zu", i,
				j);
		T_CHECK(forest_lookup(f, v1.ino[i], "h", &nd) == 0, "h");
		id[i] = ino_hist(nd.st.st_ino);
		for (j = 0; j < i; j++)
			T_CHECK(id[i] != id[j], "histories %zu, %zu", i, j);
	}
	forest_free(f);
	free(d);
}

static void test_changes_show_at_next_walk(void)
{
	char *d = dir_seq();
	struct tree_node nd;
	struct forest *f;
	struct names v;
	char path[4096];

	put(d, "a.jsonl", rec0);
	put(d, "later.jsonl", "not yet\n");
	f = forest_of(d);
	T_CHECK(forest_lookup(f, INO_ROOT, "later", &nd) == -ENOENT,
		"not a history yet");
	put(d, "later.jsonl", rec0);
	put(d, "new/n.jsonl", rec0);
	T_CHECK(forest_lookup(f, INO_ROOT, "later", &nd) == 0,
		"a history now");
	T_CHECK(forest_lookup(f, INO_ROOT, "new", &nd) == 0, "a new folder");
	snprintf(path, sizeof(path), "%s/a.jsonl", d);
	unlink(path);
	v = list(f, INO_ROOT, false);
	T_CHECK(strcmp(v.text, "later new ") == 0, "root: '%s'", v.text);
	forest_free(f);
	free(d);
}

static void test_history_wins_over_folder_of_its_name(void)
{
	char *d = dir_seq();
	struct tree_node nd;
	struct forest *f;
	struct names v;

	put(d, "a.jsonl", rec0);
	put(d, "a/inner.jsonl", rec0);
	f = forest_of(d);
	v = list(f, INO_ROOT, false);
	T_CHECK(strcmp(v.text, "a ") == 0, "root: '%s'", v.text);
	T_CHECK(forest_lookup(f, INO_ROOT, "a", &nd) == 0 &&
		ino_hist(nd.st.st_ino) != 0, "a is the history");
	forest_free(f);
	free(d);
}

static void test_single_history_is_part_zero(void)
{
	char *path = t_path("single.jsonl");
	struct forest_opts o = { .open = open_cb, .close = close_cb };
	struct forest_place p;
	struct tree_node nd;
	struct forest *f;

	t_write_file(path, rec01, strlen(rec01));
	T_CHECK(open_cb(NULL, path, 0, &o.single) == 0, "open");
	T_CHECK(forest_new(&o, &f) == 0, "forest");
	T_CHECK(forest_lookup(f, INO_ROOT, "iterations", &nd) == 0 &&
		nd.st.st_ino == INO_ITERATIONS, "numbers as a tree's");
	T_CHECK(forest_place(f, INO_ROOT, &p) == 0 && p.tree, "root");
	T_CHECK(forest_place(f, ino_global(7, INO_ROOT), &p) == -ENOENT,
		"no other history");
	forest_free(f);
	free(path);
}

int main(void)
{
	T_RUN(test_walk_shows_histories_only);
	T_RUN(test_histories_open_at_first_lookup);
	T_RUN(test_numbers_are_stable_and_distinct);
	T_RUN(test_changes_show_at_next_walk);
	T_RUN(test_history_wins_over_folder_of_its_name);
	T_RUN(test_single_history_is_part_zero);
	return t_done();
}
