/* forest.c - which history answers for an inode (see forest.h).
 *
 * Contents:
 *   1. nodes                  struct fnode, node_add, names and numbers
 *   2. the walk               probe, walk_dir, rescan
 *   3. opening histories      hist_open_locked, place_of
 *   4. folders                folder_node, folder_list, folder_lookup
 *   5. the public functions   forest_new ... forest_read
 *
 * A node is a folder or a history found by some walk.  Nodes are never
 * freed before forest_free (a removed history's node stays, marked not
 * present), so the trees of opened histories outlive every request that
 * found them.
 */
#include "forest.h"
#include "ino.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "record.h"
#include "store.h"

#define SUFFIX ".jsonl"
#define SUFFIX_LEN 6
#define MAX_DEPTH 32
#define ID_COUNT 65536

/* --- 1. nodes --------------------------------------------------------------- */

enum fkind { FN_FOLDER, FN_HIST };

struct fnode {
	enum fkind kind;
	char *rel;              /* shown path below the root, "" for the root */
	const char *name;       /* its last component (inside rel) */
	char *path;             /* on disk: the folder, or the history file */
	uint64_t ino;           /* mount-wide */
	uint64_t parent;        /* mount-wide inode of the folder above */
	uint16_t id;            /* histories: the inode part */
	bool present;           /* found by the last walk */
	bool open;              /* histories: h is filled */
	int open_err;           /* histories: last open error logged */
	struct timespec mtime;  /* folders: of the newest history below, so
				 * that our lock and kept files beside a
				 * history do not change it */
	struct forest_hist h;
};

/* What a walk learnt of a "*.jsonl" file, so that each is read and logged
 * once until it changes. */
struct probe {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	bool history;
};

struct forest {
	struct forest_opts o;
	char *dir;
	pthread_mutex_t open_mu;
	pthread_mutex_t lock;
	struct fnode **nodes;   /* guarded by lock */
	size_t nnodes;          /* guarded by lock */
	struct fnode **by_id;   /* guarded by lock: ID_COUNT slots */
	struct probe *probes;   /* guarded by lock */
	size_t nprobes;         /* guarded by lock */
};

static uint64_t hash_text(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(0x100000001b3);
	}
	h ^= h >> 31;
	h *= UINT64_C(0x94d049bb133111eb);
	h ^= h >> 29;
	return h;
}

static struct fnode *node_find(struct forest *f, enum fkind k,
			       const char *rel)
{
	size_t i;

	for (i = 0; i < f->nnodes; i++)
		if (f->nodes[i]->kind == k && strcmp(f->nodes[i]->rel, rel) == 0)
			return f->nodes[i];
	return NULL;
}

static struct fnode *node_by_ino(struct forest *f, uint64_t ino)
{
	size_t i;

	for (i = 0; i < f->nnodes; i++)
		if (f->nodes[i]->ino == ino)
			return f->nodes[i];
	return NULL;
}

/* The folder `ino` if the last walk found it.  Called with f->lock. */
static struct fnode *folder_at(struct forest *f, uint64_t ino)
{
	struct fnode *n = node_by_ino(f, ino);

	return n && n->kind == FN_FOLDER && n->present ? n : NULL;
}

/* Is c shown in folder `dir`?  (The root is its own parent.) */
static bool is_child(const struct fnode *c, uint64_t dir)
{
	return c->present && c->parent == dir && c->ino != dir;
}

/* A free inode part for `rel`: its hash, or the next free one after it. */
static int id_for(struct forest *f, const char *rel, uint16_t *id)
{
	uint32_t start = (uint32_t)(hash_text(rel) % (ID_COUNT - 1)) + 1, i;
	uint32_t c;

	for (i = 0; i < ID_COUNT - 1; i++) {
		c = (start - 1 + i) % (ID_COUNT - 1) + 1;
		if (!f->by_id[c]) {
			*id = (uint16_t)c;
			return 0;
		}
	}
	return -ENOSPC;
}

/* Add a node (or find it again).  Called with f->lock. */
static int node_add(struct forest *f, enum fkind k, const char *rel,
		    const char *path, uint64_t parent, struct fnode **out)
{
	struct fnode *n = node_find(f, k, rel), **nv;
	const char *slash;
	int r;

	if (n) {
		*out = n;
		return 0;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->kind = k;
	n->rel = strdup(rel);
	n->path = strdup(path);
	if (!n->rel || !n->path) {
		r = -ENOMEM;
		goto out_free;
	}
	slash = strrchr(n->rel, '/');
	n->name = slash ? slash + 1 : n->rel;
	n->parent = parent;
	if (k == FN_HIST) {
		r = id_for(f, rel, &n->id);
		if (r < 0) {
			log_err("%s: more than %d histories in one mount", path,
				ID_COUNT - 1);
			goto out_free;
		}
		n->ino = ino_global(n->id, INO_ROOT);
	} else {
		n->ino = *rel ? ino_hashed(IR_FOLDER, hash_text(rel), 0) :
				INO_ROOT;
	}
	nv = realloc(f->nodes, (f->nnodes + 1) * sizeof(*nv));
	if (!nv) {
		r = -ENOMEM;
		goto out_free;
	}
	f->nodes = nv;
	f->nodes[f->nnodes++] = n;
	if (k == FN_HIST)
		f->by_id[n->id] = n;
	*out = n;
	return 0;

out_free:
	free(n->rel);
	free(n->path);
	free(n);
	return r;
}

/* --- 2. the walk ------------------------------------------------------------ */

/* Does a line of the first FOREST_PROBE_BYTES of `fd` carry an iteration
 * number?  A line cut by that limit is not looked at. */
static bool probe_file(int fd)
{
	char *buf = malloc(FOREST_PROBE_BYTES);
	size_t len = 0, start = 0;
	ssize_t got;
	char *nl;
	int64_t n;
	bool found = false, yes = false;

	if (!buf)
		return false;
	while (len < FOREST_PROBE_BYTES) {
		got = read(fd, buf + len, FOREST_PROBE_BYTES - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	while (!yes && start < len) {
		nl = memchr(buf + start, '\n', len - start);
		/* A last line without LF counts when the file ended there. */
		if (!nl && len == FOREST_PROBE_BYTES)
			break;
		if (record_iteration(buf + start,
				     (nl ? (size_t)(nl - buf) : len) - start,
				     &n, &found) == 0 &&
		    found && n >= 0 && n <= STORE_ITER_MAX)
			yes = true;
		start = nl ? (size_t)(nl - buf) + 1 : len;
	}
	free(buf);
	return yes;
}

/* Is the file at `path` (stat `st`) a history?  Remembered per path until
 * the file changes; a file that is not is logged when first seen so.
 * Called with f->lock (the reads are of the first MiB only). */
static bool is_history(struct forest *f, const char *path,
		       const struct stat *st)
{
	struct probe *p = NULL, *np;
	size_t i;
	int fd;

	for (i = 0; i < f->nprobes; i++)
		if (strcmp(f->probes[i].path, path) == 0)
			p = &f->probes[i];
	if (p && p->dev == st->st_dev && p->ino == st->st_ino &&
	    p->size == st->st_size &&
	    p->mtime.tv_sec == st->st_mtim.tv_sec &&
	    p->mtime.tv_nsec == st->st_mtim.tv_nsec)
		return p->history;
	if (!p) {
		np = realloc(f->probes, (f->nprobes + 1) * sizeof(*np));
		if (!np)
			return false;
		f->probes = np;
		p = &f->probes[f->nprobes];
		memset(p, 0, sizeof(*p));
		p->path = strdup(path);
		if (!p->path)
			return false;
		f->nprobes++;
		/* Not yet logged: as if it had been a history. */
		p->history = true;
	}
	p->dev = st->st_dev;
	p->ino = st->st_ino;
	p->size = st->st_size;
	p->mtime = st->st_mtim;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (p->history)
			log_warn("%s: not shown: %s", path, strerror(errno));
		p->history = false;
		return false;
	}
	if (probe_file(fd)) {
		p->history = true;
	} else {
		if (p->history)
			log_warn("%s: not shown: no line with an iteration "
				 "number in its first MiB", path);
		p->history = false;
	}
	close(fd);
	return p->history;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Our own files beside a history, and hidden names, are never histories:
 * "<x>.jsonl.rejected/" and "<x>.jsonl.lost/" hold kept drops and lost
 * lines (keep.h), temps start with '.'. */
static bool skipped_name(const char *name, bool dir)
{
	size_t len = strlen(name);

	if (name[0] == '.')
		return true;
	if (!dir)
		return false;
	return (len > 15 && strcmp(name + len - 15, ".jsonl.rejected") == 0) ||
	       (len > 11 && strcmp(name + len - 11, ".jsonl.lost") == 0);
}

static char *join(const char *a, const char *b, size_t blen)
{
	size_t alen = strlen(a);
	char *p = malloc(alen + 1 + blen + 1);

	if (!p)
		return NULL;
	memcpy(p, a, alen);
	p[alen] = alen ? '/' : '\0';
	memcpy(p + alen + (alen ? 1 : 0), b, blen);
	p[alen + (alen ? 1 : 0) + blen] = '\0';
	return p;
}

struct walked {
	size_t found;             /* histories at or below */
	struct timespec newest;   /* their newest mtime */
};

static void newer(struct timespec *a, const struct timespec *b)
{
	if (b->tv_sec > a->tv_sec ||
	    (b->tv_sec == a->tv_sec && b->tv_nsec > a->tv_nsec))
		*a = *b;
}

static int walk_dir(struct forest *f, const char *path, const char *rel,
		    uint64_t self, int depth, struct walked *w);

/* One name of a walked directory, added to what *w says of it.  Called
 * with f->lock. */
static int walk_entry(struct forest *f, const char *dirpath, const char *rel,
		      uint64_t self, int depth, const char *name,
		      struct walked *w)
{
	struct walked below = { 0, { 0, 0 } };
	struct fnode *n;
	struct stat st;
	char *path, *crel;
	size_t len = strlen(name);
	bool dir;
	int r = 0;

	path = join(dirpath, name, len);
	if (!path)
		return -ENOMEM;
	if (stat(path, &st) < 0)
		goto out_path;
	dir = S_ISDIR(st.st_mode);
	if (skipped_name(name, dir) ||
	    (!dir && (!S_ISREG(st.st_mode) || len <= SUFFIX_LEN ||
		      strcmp(name + len - SUFFIX_LEN, SUFFIX) != 0)))
		goto out_path;
	crel = join(rel, name, dir ? len : len - SUFFIX_LEN);
	if (!crel) {
		r = -ENOMEM;
		goto out_path;
	}
	if (dir) {
		/* A history of the same name is shown instead. */
		n = node_find(f, FN_HIST, crel);
		if (n && n->present) {
			log_debug("%s: not shown: a history has its name", path);
		} else if (depth < MAX_DEPTH) {
			r = walk_dir(f, path, crel, ino_hashed(IR_FOLDER,
				     hash_text(crel), 0), depth + 1, &below);
			w->found += below.found;
			newer(&w->newest, &below.newest);
		}
	} else if (is_history(f, path, &st)) {
		r = node_add(f, FN_HIST, crel, path, self, &n);
		if (r == 0) {
			n->present = true;
			n->parent = self;
			/* The folder walked first under this name loses it. */
			n = node_find(f, FN_FOLDER, crel);
			if (n)
				n->present = false;
			w->found++;
			newer(&w->newest, &st.st_mtim);
		}
	}
	free(crel);
out_path:
	free(path);
	return r;
}

/* Walk one directory: its histories become present nodes, and the folder
 * itself when it holds any. */
static int walk_dir(struct forest *f, const char *path, const char *rel,
		    uint64_t self, int depth, struct walked *w)
{
	char **names = NULL, **nv;
	size_t n = 0, i;
	struct dirent *de;
	struct fnode *node;
	uint64_t parent = INO_ROOT;
	const char *slash;
	DIR *d;
	int r = 0;

	d = opendir(path);
	if (!d) {
		if (depth == 0)
			return -errno;
		log_debug("%s: not walked: %s", path, strerror(errno));
		return 0;
	}
	/* Sorted, so that inode parts are handed out in the same order on
	 * every mount. */
	while ((de = readdir(d))) {
		nv = realloc(names, (n + 1) * sizeof(*nv));
		if (!nv) {
			r = -ENOMEM;
			goto out_names;
		}
		names = nv;
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			r = -ENOMEM;
			goto out_names;
		}
		n++;
	}
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n && r == 0; i++)
		r = walk_entry(f, path, rel, self, depth, names[i], w);
	if (r == 0 && (w->found > 0 || depth == 0)) {
		slash = strrchr(rel, '/');
		if (slash) {
			char *prel = strndup(rel, (size_t)(slash - rel));

			if (!prel) {
				r = -ENOMEM;
				goto out_names;
			}
			parent = ino_hashed(IR_FOLDER, hash_text(prel), 0);
			free(prel);
		}
		r = node_add(f, FN_FOLDER, rel, path, parent, &node);
		if (r == 0) {
			node->present = true;
			node->mtime = w->newest;
		}
	}
out_names:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return r;
}

/* Walk DIR again: names and stats only, and the first MiB of files not
 * probed before or changed since (is_history).  Called with f->lock. */
static int rescan(struct forest *f)
{
	struct walked w = { 0, { 0, 0 } };
	size_t i;
	int r;

	if (!f->dir)
		return 0;
	for (i = 0; i < f->nnodes; i++)
		f->nodes[i]->present = false;
	r = walk_dir(f, f->dir, "", INO_ROOT, 0, &w);
	if (r < 0)
		log_err("%s: listing histories: %s", f->dir, strerror(-r));
	return r;
}

/* --- 3. opening histories ----------------------------------------------- */

/* Open history n if it is not yet.  One open at a time (f->open_mu);
 * requests to histories already open do not get here (place_of), so they
 * never wait for another history's open. */
static int hist_open(struct forest *f, struct fnode *n)
{
	struct forest_hist h = { 0 };
	bool open;
	int r = 0;

	pthread_mutex_lock(&f->open_mu);
	pthread_mutex_lock(&f->lock);
	open = n->open;
	pthread_mutex_unlock(&f->lock);
	if (!open)
		r = f->o.open(f->o.arg, n->path, n->id, &h);
	pthread_mutex_lock(&f->lock);
	if (!open && r == 0) {
		n->h = h;
		n->open = true;
		n->open_err = 0;
	} else if (r < 0 && n->open_err != r) {
		n->open_err = r;
		log_err("%s: cannot show it: %s", n->path, strerror(-r));
	}
	pthread_mutex_unlock(&f->lock);
	pthread_mutex_unlock(&f->open_mu);
	return r < 0 ? -EIO : 0;
}

/* Where `ino` lives; a history found by a walk is opened. */
static int place_of(struct forest *f, uint64_t ino, struct forest_place *p)
{
	uint16_t id = ino_hist(ino);
	struct fnode *n;
	int r;

	memset(p, 0, sizeof(*p));
	p->id = id;
	p->local = ino_local(ino);
	if (!f->dir) {
		if (id != 0)
			return -ENOENT;
		p->tree = f->o.single.tree;
		p->in = f->o.single.in;
		return 0;
	}
	if (id == 0)
		return 0;
	pthread_mutex_lock(&f->lock);
	n = f->by_id[id];
	if (n && n->open) {
		p->tree = n->h.tree;
		p->in = n->h.in;
	}
	pthread_mutex_unlock(&f->lock);
	if (p->tree)
		return 0;
	if (!n)
		return -ENOENT;
	r = hist_open(f, n);
	if (r < 0)
		return r;
	pthread_mutex_lock(&f->lock);
	p->tree = n->h.tree;
	p->in = n->h.in;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* tree answers -> mount-wide numbers */
static void node_global(const struct forest_place *p, struct tree_node *nd)
{
	nd->st.st_ino = (ino_t)forest_ino(p, (uint64_t)nd->st.st_ino);
}

/* --- 4. folders ------------------------------------------------------------- */

static void folder_node(struct forest *f, const struct fnode *n,
			struct tree_node *nd)
{
	struct stat *st = &nd->st;
	nlink_t nlink = 2;
	size_t i;

	for (i = 0; i < f->nnodes; i++)
		if (is_child(f->nodes[i], n->ino))
			nlink++;
	memset(nd, 0, sizeof(*nd));
	st->st_ino = (ino_t)n->ino;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = nlink;
	st->st_uid = f->o.uid;
	st->st_gid = f->o.gid;
	st->st_blksize = 4096;
	st->st_atim = n->mtime;
	st->st_mtim = n->mtime;
	st->st_ctim = n->mtime;
	/* Histories come and go with the walk, and a commit below changes the
	 * mtime with nothing to tell the kernel: attributes are asked for
	 * each time (folders are few). */
	nd->attr_timeout = TREE_TTL_NONE;
	nd->entry_timeout = TREE_TTL_SHORT;
}

/* A history's root as seen from its folder: its tree's root, mount-wide. */
static int hist_root(struct forest *f, struct fnode *n, struct tree_node *nd)
{
	struct forest_place p;
	int r;

	r = place_of(f, n->ino, &p);
	if (r < 0)
		return r;
	r = tree_getattr(p.tree, INO_ROOT, nd);
	if (r == 0)
		node_global(&p, nd);
	return r;
}

static int folder_lookup(struct forest *f, uint64_t dir, const char *name,
			 struct tree_node *nd)
{
	struct fnode *n = NULL;
	size_t i;
	int pass;

	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	for (pass = 0; pass < 2 && !n; pass++) {
		pthread_mutex_lock(&f->lock);
		if (pass)
			rescan(f);
		if (!folder_at(f, dir)) {
			pthread_mutex_unlock(&f->lock);
			return -ENOENT;
		}
		for (i = 0; i < f->nnodes; i++) {
			if (is_child(f->nodes[i], dir) &&
			    strcmp(f->nodes[i]->name, name) == 0) {
				n = f->nodes[i];
				break;
			}
		}
		if (n && n->kind == FN_FOLDER)
			folder_node(f, n, nd);
		pthread_mutex_unlock(&f->lock);
	}
	if (!n)
		return -ENOENT;
	return n->kind == FN_HIST ? hist_root(f, n, nd) : 0;
}

struct child {
	char *name;
	uint64_t ino;
	bool hist;
};

static int cmp_child(const void *a, const void *b)
{
	return strcmp(((const struct child *)a)->name,
		      ((const struct child *)b)->name);
}

/* The present children of folder `dir`, sorted by name, in a new array.
 * Called with f->lock. */
static int children(struct forest *f, uint64_t dir, struct child **out,
		    size_t *count)
{
	struct child *v = NULL, *nv;
	size_t n = 0, i;

	for (i = 0; i < f->nnodes; i++) {
		struct fnode *c = f->nodes[i];

		if (!is_child(c, dir))
			continue;
		nv = realloc(v, (n + 1) * sizeof(*nv));
		if (!nv)
			goto out_nomem;
		v = nv;
		v[n].name = strdup(c->name);
		if (!v[n].name)
			goto out_nomem;
		v[n].ino = c->ino;
		v[n].hist = c->kind == FN_HIST;
		n++;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_child);
	*out = v;
	*count = n;
	return 0;

out_nomem:
	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return -ENOMEM;
}

/* Positions as in tree.c: "." 0, ".." 1, children from 2.  A history not
 * opened yet is listed without attributes, so that listing a folder opens
 * none. */
static int folder_list(struct forest *f, uint64_t dir, off_t off, bool attrs,
		       tree_fill_fn *fill, void *arg)
{
	struct tree_node nd, pnd;
	struct child *v = NULL;
	struct fnode *d, *c;
	size_t n = 0, i;
	bool have;
	int r;

	pthread_mutex_lock(&f->lock);
	if (off == 0)
		rescan(f);
	d = folder_at(f, dir);
	if (!d) {
		pthread_mutex_unlock(&f->lock);
		return -ENOENT;
	}
	folder_node(f, d, &nd);
	memset(&pnd, 0, sizeof(pnd));
	pnd.st.st_ino = (ino_t)d->parent;
	pnd.st.st_mode = S_IFDIR;
	r = children(f, dir, &v, &n);
	pthread_mutex_unlock(&f->lock);
	if (r < 0)
		return r;
	if (off <= 0)
		r = fill(arg, ".", &nd, false, 1);
	if (r == 0 && off <= 1)
		r = fill(arg, "..", &pnd, false, 2);
	for (i = off > 2 ? (size_t)off - 2 : 0; r == 0 && i < n; i++) {
		memset(&nd, 0, sizeof(nd));
		nd.st.st_ino = (ino_t)v[i].ino;
		nd.st.st_mode = S_IFDIR;
		have = false;
		if (attrs) {
			pthread_mutex_lock(&f->lock);
			c = node_by_ino(f, v[i].ino);
			if (c && !v[i].hist)
				folder_node(f, c, &nd);
			have = c && (!v[i].hist || c->open);
			pthread_mutex_unlock(&f->lock);
			if (have && v[i].hist && hist_root(f, c, &nd) < 0)
				have = false;
		}
		r = fill(arg, v[i].name, &nd, have, (off_t)i + 3);
	}
	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return r < 0 ? r : 0;
}

/* --- 5. the public functions --------------------------------------------- */

static void nodes_free(struct forest *f)
{
	size_t i;

	for (i = 0; i < f->nnodes; i++) {
		if (f->nodes[i]->open && f->o.close)
			f->o.close(f->o.arg, &f->nodes[i]->h);
		free(f->nodes[i]->rel);
		free(f->nodes[i]->path);
		free(f->nodes[i]);
	}
	free(f->nodes);
	for (i = 0; i < f->nprobes; i++)
		free(f->probes[i].path);
	free(f->probes);
	free(f->by_id);
	free(f->dir);
}

int forest_new(const struct forest_opts *o, struct forest **out)
{
	struct forest *f = calloc(1, sizeof(*f));
	int r = -ENOMEM;

	if (!f)
		return -ENOMEM;
	f->o = *o;
	f->o.single.tree = NULL;
	if (o->dir) {
		f->dir = strdup(o->dir);
		f->by_id = calloc(ID_COUNT, sizeof(*f->by_id));
		if (!f->dir || !f->by_id)
			goto out_nodes;
	} else {
		f->o.single = o->single;
	}
	r = -pthread_mutex_init(&f->lock, NULL);
	if (r < 0)
		goto out_nodes;
	r = -pthread_mutex_init(&f->open_mu, NULL);
	if (r < 0)
		goto out_lock;
	if (f->dir) {
		pthread_mutex_lock(&f->lock);
		r = rescan(f);
		pthread_mutex_unlock(&f->lock);
		if (r < 0)
			goto out_open_mu;
	}
	*out = f;
	return 0;

out_open_mu:
	pthread_mutex_destroy(&f->open_mu);
out_lock:
	pthread_mutex_destroy(&f->lock);
out_nodes:
	nodes_free(f);
	free(f);
	return r;
}

void forest_free(struct forest *f)
{
	if (!f)
		return;
	nodes_free(f);
	if (!f->dir && f->o.close)
		f->o.close(f->o.arg, &f->o.single);
	pthread_mutex_destroy(&f->open_mu);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int forest_place(struct forest *f, uint64_t ino, struct forest_place *p)
{
	int r = place_of(f, ino, p);

	return r == 0 && !p->tree ? -ENOENT : r;
}

int forest_getattr(struct forest *f, uint64_t ino, struct tree_node *nd)
{
	struct forest_place p;
	struct fnode *n;
	int r;

	r = place_of(f, ino, &p);
	if (r < 0)
		return r;
	if (!p.tree) {
		pthread_mutex_lock(&f->lock);
		/* A folder's mtime is its newest history's, which any commit
		 * below moves: walk again to know it now. */
		rescan(f);
		n = folder_at(f, ino);
		r = n ? 0 : -ENOENT;
		if (r == 0)
			folder_node(f, n, nd);
		pthread_mutex_unlock(&f->lock);
		return r;
	}
	r = tree_getattr(p.tree, p.local, nd);
	if (r == 0)
		node_global(&p, nd);
	return r;
}

int forest_lookup(struct forest *f, uint64_t parent, const char *name,
		  struct tree_node *nd)
{
	struct forest_place p;
	int r;

	r = place_of(f, parent, &p);
	if (r < 0)
		return r;
	if (!p.tree)
		return folder_lookup(f, parent, name, nd);
	r = tree_lookup(p.tree, p.local, name, nd);
	if (r == 0)
		node_global(&p, nd);
	return r;
}

/* A history's listing with mount-wide numbers; its root's ".." is the
 * folder above it. */
struct gfill {
	tree_fill_fn *fill;
	void *arg;
	const struct forest_place *p;
	uint64_t dotdot;           /* 0: keep the tree's */
};

static int gfill_add(void *arg, const char *name, const struct tree_node *nd,
		     bool has_attrs, off_t next)
{
	struct gfill *g = arg;
	struct tree_node gnd = *nd;

	node_global(g->p, &gnd);
	if (g->dotdot && strcmp(name, "..") == 0)
		gnd.st.st_ino = (ino_t)g->dotdot;
	return g->fill(g->arg, name, &gnd, has_attrs, next);
}

int forest_list(struct forest *f, uint64_t dir, off_t off, bool attrs,
		tree_fill_fn *fill, void *arg)
{
	struct gfill g = { .fill = fill, .arg = arg };
	struct forest_place p;
	struct fnode *n;
	int r;

	r = place_of(f, dir, &p);
	if (r < 0)
		return r;
	if (!p.tree)
		return folder_list(f, dir, off, attrs, fill, arg);
	g.p = &p;
	if (f->dir && p.local == INO_ROOT) {
		pthread_mutex_lock(&f->lock);
		n = f->by_id[p.id];
		g.dotdot = n ? n->parent : 0;
		pthread_mutex_unlock(&f->lock);
	}
	return tree_list(p.tree, p.local, off, attrs, gfill_add, &g);
}

int forest_readlink(struct forest *f, uint64_t ino, char *out, size_t len)
{
	struct forest_place p;
	int r = place_of(f, ino, &p);

	if (r < 0)
		return r;
	return p.tree ? tree_readlink(p.tree, p.local, out, len) : -EINVAL;
}

int forest_open(struct forest *f, uint64_t ino, struct tree_file **out)
{
	struct forest_place p;
	int r = place_of(f, ino, &p);

	if (r < 0)
		return r;
	return p.tree ? tree_open(p.tree, p.local, out) : -EISDIR;
}

int forest_read(struct forest *f, uint64_t ino, uint64_t off, size_t max,
		struct buf *out)
{
	struct forest_place p;
	int r = place_of(f, ino, &p);

	if (r < 0)
		return r;
	return p.tree ? tree_read(p.tree, p.local, off, max, out) : -EISDIR;
}
