/* tree.c - the one description of the tree (see tree.h).
 *
 * Contents:
 *   1. the tree, attributes, names            struct tree, node_fill, parse_*
 *   2. versions of records                    version_note, view_ino_now
 *   3. by-hash helpers                        hash_dir_code, hash_iters
 *   4. lost+found and .iterfs/status          lost_relist, tree_status
 *      by-metric names and links              metric_dir_ino, metric_link_ino
 *   5. decoding an inode                      struct nid, decode
 *   6. listing helpers                        struct lister, list_add
 *   7. the top level                          top[]
 *   8. handlers per kind                      kind_ops[]
 *   9. the public functions                   tree_getattr ... tree_read
 *
 * Caching policy (the speed of a read-mostly tree comes from the kernel):
 * the files of iterations/<n>/ never change under one inode number (a new
 * version of a record is a new inode, section 2), so their entries and
 * attributes live for a day and their pages are kept; the listing of <n>/
 * is cached too (the notifier drops it when the record changes).  What
 * changes with a commit (/, iterations/, by-hash/ and below, latest,
 * incoming/, lost+found/) gets short or zero timeouts and no listing cache,
 * and the notifier pushes invalidations.
 */
#include "tree.h"
#include "ino.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fileio.h"
#include "hash.h"
#include "keep.h"
#include "log.h"

/* --- 1. the tree, attributes, names -------------------------------------- */

/* One record version: the first tag this mount showed for iteration n
 * (key n + 1), or an IR_VERSION inode handed out (key: the inode without
 * its low 4 bits). */
struct ver {
	uint64_t key;       /* 0: free */
	int64_t n;
	uint64_t tag;
	int64_t mtime;      /* the record's timestamp in that version */
	bool replaced;
};

struct vtab {
	struct ver *v;
	size_t cap;         /* a power of two, or 0 */
	size_t len;
};

struct mname {
	uint64_t key;              /* the name's hash, as in its inode */
	char *name;
};

struct lost_ent {
	struct keep_entry e;
	uint64_t ino;
};

struct tree {
	struct store *store;
	struct vcache *vc;
	struct incoming *in;
	uid_t uid;
	gid_t gid;
	char *mount_opts;
	pthread_mutex_t lock;
	struct vtab seen;          /* guarded by lock */
	struct vtab versions;      /* guarded by lock */
	struct keepdir *lost_kd;   /* guarded by lock; NULL until the store's
				    * path resolves */
	struct lost_ent *lost;     /* guarded by lock, sorted by name */
	size_t nlost;              /* guarded by lock */
	struct tree_file *open;    /* guarded by lock: open snapshots */
	struct mname *mnames;      /* guarded by lock: metric names handed out */
	size_t nmnames;            /* guarded by lock */
	struct vtab mlinks;        /* guarded by lock: by-metric links handed
				    * out: n, and the name's hash as tag */
	uint64_t commits;          /* guarded by lock */
	struct timespec last_commit; /* guarded by lock */
};

static void node_fill(struct tree *t, struct tree_node *nd, uint64_t ino,
		      mode_t mode, nlink_t nlink, uint64_t size,
		      struct timespec mtime)
{
	struct stat *st = &nd->st;

	memset(nd, 0, sizeof(*nd));
	st->st_ino = ino;
	st->st_mode = mode;
	st->st_nlink = nlink;
	st->st_uid = t->uid;
	st->st_gid = t->gid;
	st->st_size = (off_t)size;
	st->st_blksize = 4096;
	/* Directories and symlinks occupy no blocks, as fast symlinks and
	 * this tree's directories hold no data of their own. */
	st->st_blocks = S_ISREG(mode) ? (blkcnt_t)((size + 511) / 512) : 0;
	st->st_atim = mtime;
	st->st_mtim = mtime;
	st->st_ctim = mtime;
}

static struct timespec ts_of(int64_t us)
{
	int64_t sec = us / 1000000 - (us % 1000000 < 0);
	struct timespec ts = { .tv_sec = (time_t)sec,
			       .tv_nsec = (long)(us - sec * 1000000) * 1000 };

	return ts;
}

static struct timespec store_mtime(struct tree *t)
{
	struct timespec ts = { 0, 0 };
	struct stat st;

	/* A missing store (empty history) has the epoch as its time. */
	if (stat(store_path(t->store), &st) == 0)
		ts = st.st_mtim;
	return ts;
}

static uint64_t store_gen(struct tree *t)
{
	struct store_stats ss;

	store_stats(t->store, &ss);
	return ss.generation;
}

/* Iteration names are canonical decimals: "7", never "07" or "+7". */
static int parse_iter(const char *name, int64_t *n)
{
	size_t len = strlen(name), i;
	int64_t v = 0;

	if (len == 0 || len > 18 || (len > 1 && name[0] == '0'))
		return -ENOENT;
	for (i = 0; i < len; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -ENOENT;
		v = v * 10 + (name[i] - '0');
	}
	if (!ino_iter_ok(v))
		return -ENOENT;
	*n = v;
	return 0;
}

static int parse_hash(const char *name, unsigned char d[HASH_LEN])
{
	size_t i;

	if (strlen(name) != HASH_HEX_LEN)
		return -ENOENT;
	for (i = 0; i < HASH_HEX_LEN; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'f')))
			return -ENOENT;
	return hash_from_hex(name, HASH_HEX_LEN, d) < 0 ? -ENOENT : 0;
}

/* --- 2. versions of records ----------------------------------------------
 * A record is "replaced" once this mount has shown one tag for its line and
 * then finds another: from then on each of its versions names its files
 * with an IR_VERSION inode derived from (n, tag), and the inode of another
 * version answers -ESTALE.  Records never replaced keep ino_make's numbers.
 * The tags come from the line bytes (hash_tag); version_note is the one
 * place that would read the store's own notion of a replaced record. */

/* The entry for `key`, added when `add` (NULL: absent, or no memory to
 * add it).  Called with t->lock. */
static struct ver *vtab_get(struct vtab *vt, uint64_t key, bool add)
{
	struct ver *nv;
	size_t i, j, cap;

	if (vt->cap) {
		for (i = ino_mix64(key) & (vt->cap - 1);;
		     i = (i + 1) & (vt->cap - 1)) {
			if (vt->v[i].key == key)
				return &vt->v[i];
			if (vt->v[i].key == 0)
				break;
		}
	}
	if (!add)
		return NULL;
	if (2 * (vt->len + 1) > vt->cap) {
		cap = vt->cap ? 2 * vt->cap : 64;
		nv = calloc(cap, sizeof(*nv));
		if (!nv)
			return NULL;
		for (j = 0; j < vt->cap; j++) {
			if (!vt->v[j].key)
				continue;
			for (i = ino_mix64(vt->v[j].key) & (cap - 1); nv[i].key;
			     i = (i + 1) & (cap - 1))
				;
			nv[i] = vt->v[j];
		}
		free(vt->v);
		vt->v = nv;
		vt->cap = cap;
	}
	for (i = ino_mix64(key) & (vt->cap - 1); vt->v[i].key;
	     i = (i + 1) & (vt->cap - 1))
		;
	vt->v[i].key = key;
	vt->len++;
	return &vt->v[i];
}

/* Note that iteration n's line has tag `tag` now; true when the record was
 * replaced while this mount showed it.  Without memory to remember, a
 * record counts as replaced: a new inode is always safe. */
static bool version_note(struct tree *t, int64_t n, uint64_t tag,
			 int64_t mtime)
{
	struct ver *e;
	bool replaced;

	pthread_mutex_lock(&t->lock);
	e = vtab_get(&t->seen, (uint64_t)n + 1, false);
	if (!e) {
		e = vtab_get(&t->seen, (uint64_t)n + 1, true);
		if (e) {
			e->n = n;
			e->tag = tag;
			e->mtime = mtime;
		}
	} else if (e->tag != tag) {
		e->replaced = true;
	}
	replaced = !e || e->replaced;
	pthread_mutex_unlock(&t->lock);
	return replaced;
}

/* The inode of view k of iteration n while its line has tag `tag` (and
 * the record the timestamp `mtime`). */
static uint64_t view_ino_now(struct tree *t, int64_t n, enum view_kind k,
			     uint64_t tag, int64_t mtime)
{
	uint64_t ino;
	struct ver *e;

	if (!version_note(t, n, tag, mtime))
		return ino_make(n, (enum ino_kind)(IK_VIEW + k));
	ino = ino_hashed(IR_VERSION, ino_pair_hash(tag, n), IK_VIEW + k);
	pthread_mutex_lock(&t->lock);
	e = vtab_get(&t->versions, ino & ~(uint64_t)15, true);
	if (e) {
		e->n = n;
		e->tag = tag;
		e->mtime = mtime;
	}
	pthread_mutex_unlock(&t->lock);
	return ino;
}

/* The version view inode `ino` of iteration n names: the tag of its line
 * and the record's timestamp then.  -ESTALE when unknown. */
static int version_named(struct tree *t, uint64_t ino, int64_t n,
			 uint64_t *tag, int64_t *mtime)
{
	struct ver *e;
	int r = -ESTALE;

	pthread_mutex_lock(&t->lock);
	if (ino_is_hashed(ino))
		e = vtab_get(&t->versions, ino & ~(uint64_t)15, false);
	else
		e = vtab_get(&t->seen, (uint64_t)n + 1, false);
	if (e) {
		*tag = e->tag;
		*mtime = e->mtime;
		r = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* Which iteration an IR_VERSION inode belongs to.  -ESTALE when this
 * mount never handed it out. */
static int version_iter(struct tree *t, uint64_t ino, int64_t *n)
{
	struct ver *e;
	int r = -ESTALE;

	pthread_mutex_lock(&t->lock);
	e = vtab_get(&t->versions, ino & ~(uint64_t)15, false);
	if (e) {
		*n = e->n;
		r = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* --- 3. by-hash helpers --------------------------------------------------- */

/* The code behind by-hash/<h>/ whose lowest iteration is f; -ENOENT when
 * f is no longer the lowest iteration of its code (a stale inode). */
static int hash_dir_code(struct tree *t, int64_t f, unsigned char d[HASH_LEN],
			 struct store_code *code)
{
	bool has;
	int r;

	r = store_code_of(t->store, f, d, &has);
	if (r < 0)
		return r;
	if (!has)
		return -ENOENT;
	r = store_code_lookup(t->store, d, code, NULL, 0);
	if (r < 0)
		return r;
	return code->first_iter == f ? 0 : -ENOENT;
}

/* Iterations with code d, ascending, in a new array (*iters, free()) of
 * *n entries. */
static int hash_iters(struct tree *t, const unsigned char d[HASH_LEN],
		      int64_t **iters, size_t *n)
{
	struct store_code code;
	size_t cap;
	int64_t *v;
	int r;

	r = store_code_lookup(t->store, d, &code, NULL, 0);
	if (r < 0)
		return r;
	cap = code.count ? code.count : 1;
	v = malloc(cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	r = store_code_lookup(t->store, d, &code, v, cap);
	if (r < 0) {
		free(v);
		return r;
	}
	/* The count may have grown in between: take what fits. */
	*n = code.count < cap ? code.count : cap;
	*iters = v;
	return 0;
}

static int hash_dir_mtime(struct tree *t, const unsigned char d[HASH_LEN],
			  int64_t *mtime)
{
	struct store_rec rec;
	int64_t *iters;
	size_t i, n;
	int r;

	r = hash_iters(t, d, &iters, &n);
	if (r < 0)
		return r;
	/* Like any directory, it changes when an entry is added. */
	*mtime = 0;
	for (i = 0; i < n; i++)
		if (store_lookup(t->store, iters[i], &rec) == 0 &&
		    rec.mtime > *mtime)
			*mtime = rec.mtime;
	free(iters);
	return 0;
}

/* --- 4. lost+found and .iterfs/status ------------------------------------- */

static uint64_t name_hash(const char *name)
{
	return vcache_tag(name, strlen(name));
}

/* Read "<store>.lost/" again.  Called without t->lock. */
static int lost_relist(struct tree *t, bool *changed)
{
	struct keep_entry *ents = NULL;
	struct lost_ent *nl = NULL;
	struct keepdir *kd = NULL;
	size_t n = 0, i;
	bool same;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (!t->lost_kd) {
		/* The store's path resolves only once the store exists. */
		if (keepdir_open(store_path(t->store), ".lost", &kd) == 0)
			t->lost_kd = kd;
	}
	kd = t->lost_kd;
	pthread_mutex_unlock(&t->lock);
	if (kd) {
		r = keepdir_list(kd, &ents, &n);
		if (r < 0) {
			log_err("%s: listing lost+found: %s",
				store_path(t->store), strerror(-r));
			return r;
		}
	}
	if (n) {
		nl = calloc(n, sizeof(*nl));
		if (!nl) {
			free(ents);
			return -ENOMEM;
		}
	}
	for (i = 0; i < n; i++) {
		nl[i].e = ents[i];
		nl[i].ino = ino_hashed(IR_LOST, name_hash(ents[i].name), 0);
	}
	free(ents);

	pthread_mutex_lock(&t->lock);
	same = n == t->nlost;
	for (i = 0; same && i < n; i++)
		same = strcmp(nl[i].e.name, t->lost[i].e.name) == 0 &&
		       nl[i].e.size == t->lost[i].e.size &&
		       nl[i].e.ino == t->lost[i].e.ino;
	free(t->lost);
	t->lost = nl;
	t->nlost = n;
	pthread_mutex_unlock(&t->lock);
	if (changed)
		*changed = !same;
	return 0;
}

/* A copy of the lost+found entry with inode `ino` or name `name`. */
static int lost_find(struct tree *t, uint64_t ino, const char *name,
		     struct lost_ent *out)
{
	size_t i;
	int r = -ENOENT;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < t->nlost; i++) {
		if (name ? strcmp(t->lost[i].e.name, name) == 0 :
			   t->lost[i].ino == ino) {
			*out = t->lost[i];
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

static size_t lost_count(struct tree *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->nlost;
	pthread_mutex_unlock(&t->lock);
	return n;
}

static size_t rejected_count(struct tree *t)
{
	static const char sfx[] = ".rejected";
	struct incoming_dirent ents[32];
	size_t n, i, rank = 0, count = 0, len;

	if (!t->in)
		return 0;
	while (incoming_list(t->in, rank, ents, 32, &n) == 0 && n) {
		for (i = 0; i < n; i++) {
			len = strlen(ents[i].name);
			if (len > sizeof(sfx) - 1 &&
			    strcmp(ents[i].name + len - (sizeof(sfx) - 1),
				   sfx) == 0)
				count++;
		}
		rank += n;
	}
	return count;
}

static char *iso_time(const struct timespec *ts, char *out, size_t len)
{
	struct tm tm;
	size_t w;

	gmtime_r(&ts->tv_sec, &tm);
	w = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + w, len - w, ".%06ldZ", ts->tv_nsec / 1000);
	return out;
}

#define STATUS_SKIPPED_MAX 1000

int tree_status(struct tree *t, struct buf *out)
{
	uint64_t lines[STATUS_SKIPPED_MAX];
	struct store_stats ss;
	struct timespec last;
	cJSON *o, *arr;
	uint64_t commits, last_ns;
	size_t total, i, waiting;
	char when[64], *text;
	int r = -ENOMEM;

	store_stats(t->store, &ss);
	store_skipped(t->store, lines, STATUS_SKIPPED_MAX, &total);
	pthread_mutex_lock(&t->lock);
	commits = t->commits;
	last = t->last_commit;
	pthread_mutex_unlock(&t->lock);

	o = cJSON_CreateObject();
	if (!o)
		return -ENOMEM;
	if (!cJSON_AddStringToObject(o, "version", ITERFS_VERSION) ||
	    !cJSON_AddStringToObject(o, "store", store_path(t->store)) ||
	    !cJSON_AddStringToObject(o, "mount_options",
				     t->mount_opts ? t->mount_opts : "") ||
	    !cJSON_AddNumberToObject(o, "records", (double)ss.records) ||
	    !cJSON_AddNumberToObject(o, "iterations", (double)ss.iterations) ||
	    !cJSON_AddNumberToObject(o, "skipped", (double)ss.skipped) ||
	    /* Counts are provisional until the validation behind a quick
	     * open has run (store.h). */
	    !cJSON_AddBoolToObject(o, "validating", ss.pending))
		goto out;
	arr = cJSON_AddArrayToObject(o, "skipped_lines");
	if (!arr)
		goto out;
	for (i = 0; i < total && i < STATUS_SKIPPED_MAX; i++)
		if (!cJSON_AddItemToArray(arr, cJSON_CreateNumber(
						       (double)lines[i])))
			goto out;
	if (!cJSON_AddBoolToObject(o, "skipped_lines_complete",
				   total <= STATUS_SKIPPED_MAX) ||
	    !cJSON_AddBoolToObject(o, "writable", t->in != NULL) ||
	    !cJSON_AddNumberToObject(o, "rejected",
				     (double)rejected_count(t)) ||
	    !cJSON_AddNumberToObject(o, "lost", (double)lost_count(t)) ||
	    !cJSON_AddNumberToObject(o, "commits", (double)commits))
		goto out;
	if (t->in) {
		incoming_stats(t->in, &waiting, &last_ns);
		if (!cJSON_AddNumberToObject(o, "drops_waiting",
					     (double)waiting) ||
		    !cJSON_AddNumberToObject(o, "last_commit_ms",
					     (double)last_ns / 1e6))
			goto out;
	}
	if (commits ? !cJSON_AddStringToObject(o, "last_commit",
					       iso_time(&last, when,
							sizeof(when))) :
		      !cJSON_AddNullToObject(o, "last_commit"))
		goto out;
	text = cJSON_Print(o);
	if (!text)
		goto out;
	r = buf_puts(out, text);
	if (r == 0)
		r = buf_putc(out, '\n');
	free(text);
out:
	cJSON_Delete(o);
	return r;
}

/* by-metric: a metric directory's inode holds a hash of its name, and its
 * links a hash of the name and the target; both are decoded through the
 * tables of what was handed out. */

static uint64_t hash_key(uint64_t h)
{
	return h & ((UINT64_C(1) << INO_HASH_BITS) - 1);
}

/* A metric name that can be a directory entry. */
static bool metric_name_ok(const char *name)
{
	return *name && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	       !strchr(name, '/') && strlen(name) <= NAME_MAX;
}

static int metric_dir_ino(struct tree *t, const char *name, uint64_t *ino)
{
	uint64_t key = hash_key(name_hash(name));
	struct mname *nm;
	size_t i;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < t->nmnames; i++)
		if (t->mnames[i].key == key)
			break;
	if (i == t->nmnames) {
		nm = realloc(t->mnames, (i + 1) * sizeof(*nm));
		if (nm) {
			t->mnames = nm;
			nm[i].key = key;
			nm[i].name = strdup(name);
		}
		if (!nm || !nm[i].name)
			r = -ENOMEM;
		else
			t->nmnames++;
	}
	pthread_mutex_unlock(&t->lock);
	*ino = ino_hashed(IR_METRIC_DIR, key, 0);
	return r;
}

/* The name behind a metric key, copied into a new string (*name, free()). */
static int metric_name_of(struct tree *t, uint64_t key, char **name)
{
	size_t i;
	int r = -ENOENT;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < t->nmnames; i++) {
		if (t->mnames[i].key == key) {
			*name = strdup(t->mnames[i].name);
			r = *name ? 0 : -ENOMEM;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* The inode of ranking `key`'s link to iteration n: its hash's number,
 * or, when a link handed out before holds that number, the next free one
 * (39 bits meet once about a million links have been handed out: two
 * links sharing an inode would show one target under both names).
 * `note`: remember it, so that tree_getattr and readlink can answer for
 * it; a lookup or an entry listed with attributes must, since the kernel
 * then holds the inode.  A plain listing's inode numbers are only shown to
 * the reader, and remembering them would cost 32 bytes per ranked record
 * per ranking listed. */
static uint64_t metric_link_ino(struct tree *t, uint64_t key, int64_t n,
				bool note)
{
	uint64_t h = ino_pair_hash(key, n), ino, i;
	struct ver *e;

	pthread_mutex_lock(&t->lock);
	for (i = 0;; i++) {
		ino = ino_hashed(IR_METRIC_LINK, h + i, 0);
		e = vtab_get(&t->mlinks, ino, false);
		if (!e || (e->n == n && e->tag == key))
			break;
	}
	if (!e && note) {
		e = vtab_get(&t->mlinks, ino, true);
		if (e) {
			e->n = n;
			e->tag = key;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return ino;
}

static int metric_link_of(struct tree *t, uint64_t ino, int64_t *n,
			  uint64_t *key)
{
	struct ver *e;
	int r = -ENOENT;

	pthread_mutex_lock(&t->lock);
	e = vtab_get(&t->mlinks, ino, false);
	if (e) {
		*n = e->n;
		*key = e->tag;
		r = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* Rank names are 1-based and zero-padded to the width of the largest. */
static int rank_width(size_t total)
{
	int w = 1;

	while (total >= 10) {
		total /= 10;
		w++;
	}
	return w;
}

static int parse_rank(const char *name, size_t total, size_t *rank)
{
	size_t len = strlen(name), i, v = 0;

	if ((int)len != rank_width(total))
		return -ENOENT;
	for (i = 0; i < len; i++) {
		if (name[i] < '0' || name[i] > '9')
			return -ENOENT;
		v = v * 10 + (size_t)(name[i] - '0');
	}
	if (v < 1 || v > total)
		return -ENOENT;
	*rank = v - 1;
	return 0;
}

/* --- 5. decoding an inode ------------------------------------------------- */

enum nk {
	NK_ROOT,
	NK_ITERATIONS,
	NK_BYHASH,
	NK_INCOMING,
	NK_LOSTFOUND,
	NK_DOTITERFS,
	NK_STATUS,
	NK_ITER_DIR,
	NK_VIEW,
	NK_HASH_DIR,
	NK_HASH_CODE,
	NK_HASH_LINK,
	NK_LATEST,
	NK_LOST_FILE,
	NK_DROP,
	NK_BYMETRIC,
	NK_METRIC_DIR,
	NK_METRIC_LINK,
	NK_FAILED,
	NK_FAILED_LINK,
	NK_COUNT,
};

struct nid {
	enum nk kind;
	uint64_t ino;
	int64_t n;                 /* iteration-tied kinds */
	enum view_kind view;       /* NK_VIEW */
	uint64_t key;              /* NK_METRIC_*: the metric name's hash */
	bool stale_ok;             /* content: a version no longer shown will
				    * do (reads without an open) */
};

static int decode(struct tree *t, uint64_t ino, struct nid *id)
{
	static const enum nk fixed[INO_FIXED_MAX + 1] = {
		[INO_ROOT] = NK_ROOT,
		[INO_ITERATIONS] = NK_ITERATIONS,
		[INO_BYHASH] = NK_BYHASH,
		[INO_INCOMING] = NK_INCOMING,
		[INO_LOSTFOUND] = NK_LOSTFOUND,
		[INO_DOTITERFS] = NK_DOTITERFS,
		[INO_STATUS] = NK_STATUS,
		[INO_BYMETRIC] = NK_BYMETRIC,
		[INO_FAILED] = NK_FAILED,
	};
	enum ino_kind k;
	int r;

	memset(id, 0, sizeof(*id));
	id->ino = ino;
	if (ino >= 1 && ino <= INO_FIXED_MAX) {
		if (ino != INO_ROOT && fixed[ino] == NK_ROOT)
			return -ENOENT;
		id->kind = fixed[ino];
		return 0;
	}
	if (ino_is_incoming(ino)) {
		id->kind = NK_DROP;
		return 0;
	}
	if (ino_is_hashed(ino)) {
		switch (ino_region_of(ino)) {
		case IR_VERSION:
			if ((ino & 15) < IK_VIEW ||
			    (ino & 15) >= IK_VIEW + VIEW_COUNT)
				return -ENOENT;
			r = version_iter(t, ino, &id->n);
			if (r < 0)
				return r;
			id->kind = NK_VIEW;
			id->view = (enum view_kind)((ino & 15) - IK_VIEW);
			return 0;
		case IR_LOST:
			id->kind = NK_LOST_FILE;
			return 0;
		case IR_METRIC_DIR:
			id->kind = NK_METRIC_DIR;
			id->key = (ino >> 4) & ((UINT64_C(1) << INO_HASH_BITS) - 1);
			return 0;
		case IR_METRIC_LINK:
			id->kind = NK_METRIC_LINK;
			return metric_link_of(t, ino, &id->n, &id->key);
		case IR_FOLDER:
			return -ENOENT;
		}
		return -ENOENT;
	}
	if (!ino_split(ino, &id->n, &k))
		return -ENOENT;
	switch (k) {
	case IK_ITER_DIR:
		id->kind = NK_ITER_DIR;
		return 0;
	case IK_HASH_DIR:
		id->kind = NK_HASH_DIR;
		return 0;
	case IK_HASH_CODE:
		id->kind = NK_HASH_CODE;
		return 0;
	case IK_HASH_LINK:
		id->kind = NK_HASH_LINK;
		return 0;
	case IK_LATEST:
		id->kind = NK_LATEST;
		return 0;
	case IK_FAILED_LINK:
		id->kind = NK_FAILED_LINK;
		return 0;
	default:
		id->kind = NK_VIEW;
		id->view = (enum view_kind)(k - IK_VIEW);
		return 0;
	}
}

/* --- 6. listing helpers -------------------------------------------------- */

/* Positions: "." is 0, ".." is 1, a directory's own entries 2 and up; an
 * entry's `next` is its position + 1, so a listing resumes at `off`. */
struct lister {
	struct tree *t;
	off_t off;
	bool attrs;
	tree_fill_fn *fill;
	void *arg;
};

/* Offer the entry at position `pos` (ignored below l->off).  `known` (may
 * be NULL) carries attributes the caller already has.  Returns 0, 1 when
 * full, -errno. */
static int list_add(struct lister *l, off_t pos, const char *name,
		    uint64_t ino, mode_t type, const struct tree_node *known)
{
	struct tree_node nd;
	bool dots = pos < 2;
	int r;

	if (pos < l->off)
		return 0;
	if (known) {
		nd = *known;
	} else if (l->attrs && !dots) {
		r = tree_getattr(l->t, ino, &nd);
		/* Vanished since it was listed. */
		if (r == -ENOENT || r == -ESTALE)
			return 0;
		if (r < 0)
			return r;
	} else {
		memset(&nd, 0, sizeof(nd));
		nd.st.st_ino = ino;
		nd.st.st_mode = type;
	}
	return l->fill(l->arg, name, &nd, (l->attrs && !dots) || known,
		       pos + 1);
}

static int list_dots(struct lister *l, uint64_t self, uint64_t parent)
{
	int r = list_add(l, 0, ".", self, S_IFDIR, NULL);

	return r ? r : list_add(l, 1, "..", parent, S_IFDIR, NULL);
}

/* The rank of the first own entry to list. */
static size_t list_start(const struct lister *l)
{
	return l->off > 2 ? (size_t)l->off - 2 : 0;
}

/* The text of a link to iterations/<n> from a directory `depth` levels
 * below the root. */
static int link_text(int depth, int64_t n, char *out, size_t len)
{
	static const char *const up[] = { "", "../", "../../" };
	int w;

	w = snprintf(out, len, "%siterations/%" PRId64, up[depth], n);
	return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : w;
}

static void drop_node(struct tree *t, const struct incoming_attr *a,
		      struct tree_node *nd)
{
	node_fill(t, nd, a->ino, a->mode, 1, a->size, a->mtime);
	nd->st.st_uid = a->uid;
	nd->st.st_gid = a->gid;
	nd->attr_timeout = TREE_TTL_NONE;
	nd->entry_timeout = TREE_TTL_NONE;
	/* Drops change under the reader; never serve stale pages. */
	nd->direct_io = true;
}

/* --- 7. the top level ----------------------------------------------------
 * One row per name in /, in listing order.  `where` gives the inode now,
 * or -ENOENT while the entry is absent. */

struct top {
	const char *name;
	uint64_t ino;
	bool listed;      /* hidden names resolve but are not listed */
	bool dir;         /* counted in the root's link count */
	int (*where)(struct tree *t, const struct top *e, uint64_t *ino);
};

static int top_always(struct tree *t, const struct top *e, uint64_t *ino)
{
	(void)t;
	*ino = e->ino;
	return 0;
}

static int top_latest(struct tree *t, const struct top *e, uint64_t *ino)
{
	bool found;
	int64_t n;
	int r;

	(void)e;
	r = store_highest(t->store, &n, &found);
	if (r < 0)
		return r;
	if (!found || !ino_iter_ok(n))
		return -ENOENT;
	*ino = ino_make(n, IK_LATEST);
	return 0;
}

static int top_lost(struct tree *t, const struct top *e, uint64_t *ino)
{
	if (lost_count(t) == 0)
		return -ENOENT;
	*ino = e->ino;
	return 0;
}

static int top_incoming(struct tree *t, const struct top *e, uint64_t *ino)
{
	if (!t->in)
		return -ENOENT;
	*ino = e->ino;
	return 0;
}

static const struct top top[] = {
	{ "iterations", INO_ITERATIONS, true, true, top_always },
	{ "latest", 0, true, false, top_latest },
	{ "by-hash", INO_BYHASH, true, true, top_always },
	{ "by-metric", INO_BYMETRIC, true, true, top_always },
	{ "failed", INO_FAILED, true, true, top_always },
	{ "lost+found", INO_LOSTFOUND, true, true, top_lost },
	{ "incoming", INO_INCOMING, true, true, top_incoming },
	{ ".iterfs", INO_DOTITERFS, false, true, top_always },
};

#define NTOP (sizeof(top) / sizeof(top[0]))

/* --- 8. handlers per kind ------------------------------------------------ */

struct kind_ops {
	mode_t type;
	int (*attr)(struct tree *t, const struct nid *id, struct tree_node *nd);
	/* Directories. */
	int (*lookup)(struct tree *t, const struct nid *id, const char *name,
		      struct tree_node *nd);
	int (*list)(struct tree *t, const struct nid *id, struct lister *l);
	/* Links. */
	int (*link)(struct tree *t, const struct nid *id, char *out,
		    size_t len);
	/* Files: the whole content now. */
	int (*content)(struct tree *t, const struct nid *id, struct buf *out);
};

/* / */

static int root_attr(struct tree *t, const struct nid *id,
		     struct tree_node *nd)
{
	nlink_t nlink = 2;
	uint64_t ino;
	size_t i;

	for (i = 0; i < NTOP; i++)
		if (top[i].listed && top[i].dir &&
		    top[i].where(t, &top[i], &ino) == 0)
			nlink++;
	node_fill(t, nd, id->ino, S_IFDIR | 0555, nlink, 0, store_mtime(t));
	nd->entry_timeout = TREE_TTL_FOREVER;
	nd->attr_timeout = TREE_TTL_SHORT;
	return 0;
}

static int root_lookup(struct tree *t, const struct nid *id, const char *name,
		       struct tree_node *nd)
{
	uint64_t ino;
	size_t i;
	int r;

	(void)id;
	for (i = 0; i < NTOP; i++) {
		if (strcmp(name, top[i].name) != 0)
			continue;
		r = top[i].where(t, &top[i], &ino);
		return r < 0 ? r : tree_getattr(t, ino, nd);
	}
	return -ENOENT;
}

static int root_list(struct tree *t, const struct nid *id, struct lister *l)
{
	uint64_t ino;
	size_t i;
	int r;

	r = list_dots(l, id->ino, INO_ROOT);
	for (i = list_start(l); r == 0 && i < NTOP; i++) {
		if (!top[i].listed)
			continue;
		r = top[i].where(t, &top[i], &ino);
		if (r == -ENOENT) {
			r = 0;
			continue;
		}
		if (r == 0)
			r = list_add(l, (off_t)i + 2, top[i].name, ino,
				     ino_split(ino, &(int64_t){ 0 },
					       &(enum ino_kind){ 0 }) ?
					     S_IFLNK : S_IFDIR,
				     NULL);
	}
	return r;
}

/* iterations/ */

static int iterations_attr(struct tree *t, const struct nid *id,
			   struct tree_node *nd)
{
	struct store_stats ss;
	int r;

	r = store_stats(t->store, &ss);
	if (r < 0)
		return r;
	node_fill(t, nd, id->ino, S_IFDIR | 0555, (nlink_t)(2 + ss.iterations),
		  0, store_mtime(t));
	nd->entry_timeout = TREE_TTL_FOREVER;
	nd->attr_timeout = TREE_TTL_SHORT;
	return 0;
}

/* `name` in a directory named by iteration numbers, an inode of kind k. */
static int lookup_number(struct tree *t, const char *name, enum ino_kind k,
			 struct tree_node *nd)
{
	int64_t n;
	int r;

	r = parse_iter(name, &n);
	return r < 0 ? r : tree_getattr(t, ino_make(n, k), nd);
}

static int iterations_lookup(struct tree *t, const struct nid *id,
			     const char *name, struct tree_node *nd)
{
	(void)id;
	return lookup_number(t, name, IK_ITER_DIR, nd);
}

/* The entries of a directory named by iteration numbers, from `src`
 * (store_list, store_failed: ascending, paged), each an inode of kind `k`. */
static int list_numbers(struct tree *t, const struct nid *id, struct lister *l,
			int (*src)(struct store *, size_t, int64_t *, size_t,
				   size_t *),
			enum ino_kind k, mode_t type)
{
	int64_t iters[256];
	char name[32];
	size_t n, i, rank;
	int r;

	r = list_dots(l, id->ino, INO_ROOT);
	rank = list_start(l);
	while (r == 0) {
		r = src(t->store, rank, iters, 256, &n);
		if (r < 0 || n == 0)
			break;
		for (i = 0; r == 0 && i < n; i++, rank++) {
			if (!ino_iter_ok(iters[i]))
				continue;
			snprintf(name, sizeof(name), "%" PRId64, iters[i]);
			r = list_add(l, (off_t)rank + 2, name,
				     ino_make(iters[i], k), type, NULL);
		}
	}
	return r;
}

static int iterations_list(struct tree *t, const struct nid *id,
			   struct lister *l)
{
	return list_numbers(t, id, l, store_list, IK_ITER_DIR, S_IFDIR);
}

/* by-hash/ */

static int byhash_attr(struct tree *t, const struct nid *id,
		       struct tree_node *nd)
{
	/* Counting the codes means hashing every record; 1 is what find(1)
	 * and others understand as "subdirectories not counted", so listing
	 * / stays cheap on a large history. */
	node_fill(t, nd, id->ino, S_IFDIR | 0555, 1, 0, store_mtime(t));
	nd->entry_timeout = TREE_TTL_FOREVER;
	nd->attr_timeout = TREE_TTL_SHORT;
	return 0;
}

static int byhash_lookup(struct tree *t, const struct nid *id,
			 const char *name, struct tree_node *nd)
{
	unsigned char d[HASH_LEN];
	struct store_code code;
	int r;

	(void)id;
	r = parse_hash(name, d);
	if (r == 0)
		r = store_code_lookup(t->store, d, &code, NULL, 0);
	if (r == 0 && !ino_iter_ok(code.first_iter))
		r = -ENOENT;
	return r < 0 ? r :
		       tree_getattr(t, ino_make(code.first_iter, IK_HASH_DIR),
				    nd);
}

static int byhash_list(struct tree *t, const struct nid *id, struct lister *l)
{
	struct store_code codes[64];
	char name[HASH_HEX_LEN + 1];
	size_t n, i, rank;
	int r;

	r = list_dots(l, id->ino, INO_ROOT);
	rank = list_start(l);
	while (r == 0) {
		r = store_codes(t->store, rank, codes, 64, &n);
		if (r < 0 || n == 0)
			break;
		for (i = 0; r == 0 && i < n; i++, rank++) {
			if (!ino_iter_ok(codes[i].first_iter))
				continue;
			hash_to_hex(codes[i].digest, name);
			r = list_add(l, (off_t)rank + 2, name,
				     ino_make(codes[i].first_iter,
					      IK_HASH_DIR),
				     S_IFDIR, NULL);
		}
	}
	return r;
}

/* by-hash/<h>/ */

static int hashdir_attr(struct tree *t, const struct nid *id,
			struct tree_node *nd)
{
	unsigned char d[HASH_LEN];
	struct store_code code;
	int64_t mtime = 0;
	int r;

	r = hash_dir_code(t, id->n, d, &code);
	if (r == 0)
		r = hash_dir_mtime(t, d, &mtime);
	if (r < 0)
		return r;
	node_fill(t, nd, id->ino, S_IFDIR | 0555, 2, 0, ts_of(mtime));
	nd->attr_timeout = nd->entry_timeout = TREE_TTL_SHORT;
	return 0;
}

static int hashdir_lookup(struct tree *t, const struct nid *id,
			  const char *name, struct tree_node *nd)
{
	unsigned char d[HASH_LEN], dn[HASH_LEN];
	struct store_code code;
	bool has;
	int64_t n;
	int r;

	r = hash_dir_code(t, id->n, d, &code);
	if (r < 0)
		return r;
	if (strcmp(name, "code.py") == 0)
		return tree_getattr(t, ino_make(id->n, IK_HASH_CODE), nd);
	r = parse_iter(name, &n);
	if (r < 0)
		return r;
	r = store_code_of(t->store, n, dn, &has);
	if (r < 0)
		return r;
	if (!has || memcmp(d, dn, HASH_LEN) != 0)
		return -ENOENT;
	return tree_getattr(t, ino_make(n, IK_HASH_LINK), nd);
}

static int hashdir_list(struct tree *t, const struct nid *id, struct lister *l)
{
	unsigned char d[HASH_LEN];
	struct store_code code;
	int64_t *iters;
	char name[32];
	size_t i, count;
	int r;

	r = hash_dir_code(t, id->n, d, &code);
	if (r < 0)
		return r;
	r = list_dots(l, id->ino, INO_BYHASH);
	if (r == 0)
		r = list_add(l, 2, "code.py", ino_make(id->n, IK_HASH_CODE),
			     S_IFREG, NULL);
	if (r)
		return r;
	r = hash_iters(t, d, &iters, &count);
	if (r < 0)
		return r;
	for (i = l->off > 3 ? (size_t)l->off - 3 : 0; r == 0 && i < count;
	     i++) {
		if (!ino_iter_ok(iters[i]))
			continue;
		snprintf(name, sizeof(name), "%" PRId64, iters[i]);
		r = list_add(l, (off_t)i + 3, name,
			     ino_make(iters[i], IK_HASH_LINK), S_IFLNK, NULL);
	}
	free(iters);
	return r;
}

/* by-hash/<h>/code.py: the record of the code's lowest iteration, and the
 * size and tag of its code view.  -ENOENT when stale or without code. */
static int hashcode_view(struct tree *t, const struct nid *id,
			 struct store_rec *rec, uint64_t *size, uint64_t *tag)
{
	unsigned char d[HASH_LEN];
	struct store_code code;
	bool present;
	int r;

	r = hash_dir_code(t, id->n, d, &code);
	if (r == 0)
		r = store_lookup(t->store, id->n, rec);
	if (r == 0)
		r = vcache_attr(t->vc, t->store, rec, store_gen(t), VIEW_CODE,
				&present, size, tag);
	if (r == 0 && !present)
		r = -ENOENT;
	return r;
}

static int hashcode_attr(struct tree *t, const struct nid *id,
			 struct tree_node *nd)
{
	struct store_rec rec;
	uint64_t size, tag;
	int r;

	r = hashcode_view(t, id, &rec, &size, &tag);
	if (r < 0)
		return r;
	node_fill(t, nd, id->ino, S_IFREG | 0444, 1, size, ts_of(rec.mtime));
	/* Its content is fixed; which inode the name leads to is not (a
	 * lower iteration with the same code may arrive). */
	nd->attr_timeout = TREE_TTL_FOREVER;
	nd->entry_timeout = TREE_TTL_SHORT;
	nd->keep_cache = true;
	return 0;
}

static int hashcode_content(struct tree *t, const struct nid *id,
			    struct buf *out)
{
	unsigned char d[HASH_LEN];
	struct store_code code;
	struct buf line = BUF_INIT;
	bool present;
	int r;

	r = hash_dir_code(t, id->n, d, &code);
	if (r == 0)
		r = store_read(t->store, id->n, &line);
	if (r == 0)
		r = vcache_render(t->vc, store_path(t->store), id->n,
				  hash_tag(line.data, line.len), line.data,
				  line.len, VIEW_CODE, &present, out);
	if (r == 0 && !present)
		r = -ENOENT;
	buf_free(&line);
	return r;
}

/* What an open of by-hash/<h>/code.py keeps, as view_snap: the cached
 * bytes, or the line of the code's lowest iteration to render at the first
 * read.  A line that changed since its size was noted still holds this
 * code (hash_dir_code said so): it is rendered now, and the size is what
 * it renders to. */
static int hashcode_snap(struct tree *t, const struct nid *id,
			 struct vview **view, struct buf *line, uint64_t *tag,
			 uint64_t *size)
{
	struct store_rec rec;
	uint64_t now;
	int r;

	r = hashcode_view(t, id, &rec, size, tag);
	if (r < 0 || vcache_find(t->vc, id->n, *tag, VIEW_CODE, view) == 0)
		return r;
	r = store_read(t->store, id->n, line);
	if (r < 0)
		return r;
	now = hash_tag(line->data, line->len);
	if (now == *tag)
		return 0;
	*tag = now;
	r = vcache_get(t->vc, store_path(t->store), id->n, *tag, line->data,
		       line->len, VIEW_CODE, view);
	buf_free(line);
	if (r == 0 && !(*view)->present)
		r = -ENOENT;
	return r;
}

/* Links: by-hash/<h>/<n> and latest. */

static int link_attr(struct tree *t, const struct nid *id,
		     struct tree_node *nd)
{
	enum ino_kind k = id->kind == NK_LATEST ? IK_LATEST : IK_HASH_LINK;
	unsigned char d[HASH_LEN];
	struct store_rec rec;
	char target[64];
	bool has;
	int r;

	r = store_lookup(t->store, id->n, &rec);
	if (r < 0)
		return r;
	if (k == IK_HASH_LINK) {
		r = store_code_of(t->store, id->n, d, &has);
		if (r < 0)
			return r;
		if (!has)
			return -ENOENT;
	}
	r = link_text(k == IK_LATEST ? 0 : 2, id->n, target, sizeof(target));
	if (r < 0)
		return r;
	node_fill(t, nd, id->ino, S_IFLNK | 0777, 1, (uint64_t)r,
		  ts_of(rec.mtime));
	nd->attr_timeout = TREE_TTL_FOREVER;
	/* latest must follow every commit at once. */
	nd->entry_timeout = k == IK_LATEST ? TREE_TTL_NONE : TREE_TTL_SHORT;
	return 0;
}

static int link_link(struct tree *t, const struct nid *id, char *out,
		     size_t len)
{
	struct tree_node nd;
	int r;

	r = link_attr(t, id, &nd);
	if (r < 0)
		return r;
	r = link_text(id->kind == NK_LATEST ? 0 : 2, id->n, out, len);
	return r < 0 ? r : 0;
}

/* iterations/<n>/ */

static int iterdir_attr(struct tree *t, const struct nid *id,
			struct tree_node *nd)
{
	struct store_rec rec;
	int r;

	r = store_lookup(t->store, id->n, &rec);
	if (r < 0)
		return r;
	node_fill(t, nd, id->ino, S_IFDIR | 0555, 2, 0, ts_of(rec.mtime));
	nd->attr_timeout = nd->entry_timeout = TREE_TTL_FOREVER;
	/* Fixed while its record is; the notifier drops it otherwise. */
	nd->cache_dir = nd->keep_cache = true;
	return 0;
}

/* The current inode of view k of iteration n: -ENOENT when the record
 * has no such file. */
static int view_ino(struct tree *t, int64_t n, enum view_kind k, uint64_t *ino)
{
	struct store_rec rec;
	uint64_t size, tag;
	bool present;
	int r;

	r = store_lookup(t->store, n, &rec);
	if (r == 0)
		r = vcache_attr(t->vc, t->store, &rec, store_gen(t), k,
				&present, &size, &tag);
	if (r < 0)
		return r;
	if (!present)
		return -ENOENT;
	*ino = view_ino_now(t, n, k, tag, rec.mtime);
	return 0;
}

static int iterdir_lookup(struct tree *t, const struct nid *id,
			  const char *name, struct tree_node *nd)
{
	enum view_kind k;
	uint64_t ino = 0;
	int r;

	r = view_by_name(name, &k);
	if (r == 0)
		r = view_ino(t, id->n, k, &ino);
	return r < 0 ? r : tree_getattr(t, ino, nd);
}

static int iterdir_list(struct tree *t, const struct nid *id, struct lister *l)
{
	struct buf line = BUF_INIT;
	struct store_rec rec;
	unsigned mask;
	uint64_t tag;
	int k, r;

	r = store_lookup(t->store, id->n, &rec);
	if (r == 0)
		r = store_read(t->store, id->n, &line);
	if (r < 0)
		goto out;
	r = store_validates(t->store) ?
		    view_mask_trusted(line.data, line.len, &mask) :
		    view_mask(line.data, line.len, &mask);
	if (r == -EINVAL) {
		log_err("%s: iteration %" PRId64 ": not a JSON object",
			store_path(t->store), id->n);
		r = -EIO;
	}
	if (r < 0)
		goto out;
	tag = hash_tag(line.data, line.len);
	r = list_dots(l, id->ino, INO_ITERATIONS);
	for (k = 0; r == 0 && k < VIEW_COUNT; k++) {
		if (!(mask & (1u << k)))
			continue;
		r = list_add(l, k + 2, view_name((enum view_kind)k),
			     view_ino_now(t, id->n, (enum view_kind)k, tag,
					  rec.mtime),
			     S_IFREG, NULL);
	}
out:
	buf_free(&line);
	return r;
}

/* iterations/<n>/<view>
 * A version that is no longer shown is still answered while the view cache
 * holds its bytes, to getattr and to reads without an open (-o ro, where
 * the kernel opens alone); an open must see the record shown now, so
 * tree_open never takes it (nid.stale_ok). */

static int view_stale(struct tree *t, const struct nid *id, uint64_t *size,
		      int64_t *mtime, struct buf *out)
{
	struct buf b = BUF_INIT;
	bool present;
	uint64_t tag;
	int r;

	r = version_named(t, id->ino, id->n, &tag, mtime);
	if (r == 0)
		r = vcache_peek(t->vc, id->n, tag, id->view, &present,
				out ? out : &b);
	if (r == 0 && !present)
		r = -ENOENT;
	if (r == 0 && size)
		*size = (out ? out : &b)->len;
	buf_free(&b);
	return r;
}

static int view_attr(struct tree *t, const struct nid *id,
		     struct tree_node *nd)
{
	struct store_rec rec;
	uint64_t size, tag;
	bool present;
	int r;

	r = store_lookup(t->store, id->n, &rec);
	if (r == 0)
		r = vcache_attr(t->vc, t->store, &rec, store_gen(t), id->view,
				&present, &size, &tag);
	if (r == 0 && !present)
		r = -ENOENT;
	if (r == 0 && view_ino_now(t, id->n, id->view, tag, rec.mtime) !=
			      id->ino)
		r = -ESTALE;
	if ((r == -ESTALE || r == -ENOENT) &&
	    view_stale(t, id, &size, &rec.mtime, NULL) == 0)
		r = 0;
	if (r < 0)
		return r;
	node_fill(t, nd, id->ino, S_IFREG | 0444, 1, size, ts_of(rec.mtime));
	nd->attr_timeout = nd->entry_timeout = TREE_TTL_FOREVER;
	nd->keep_cache = true;
	return 0;
}

/* The content is rendered from the line read here, and only if that line
 * is the version this inode names. */
static int view_content(struct tree *t, const struct nid *id, struct buf *out)
{
	struct buf line = BUF_INIT;
	struct store_rec rec;
	uint64_t tag, size;
	bool present;
	int r;

	/* Fast path: the tag checked at this generation, the bytes cached. */
	r = store_lookup(t->store, id->n, &rec);
	if (r == 0 && vcache_attr(t->vc, t->store, &rec, store_gen(t),
				  id->view, &present, &size, &tag) == 0 &&
	    present &&
	    view_ino_now(t, id->n, id->view, tag, rec.mtime) == id->ino &&
	    vcache_peek(t->vc, id->n, tag, id->view, &present, out) == 0 &&
	    present)
		return 0;
	if (r == 0)
		r = store_read(t->store, id->n, &line);
	if (r < 0)
		goto out;
	tag = hash_tag(line.data, line.len);
	if (view_ino_now(t, id->n, id->view, tag, rec.mtime) != id->ino) {
		r = -ESTALE;
		goto out;
	}
	r = vcache_render(t->vc, store_path(t->store), id->n, tag, line.data,
			  line.len, id->view, &present, out);
	if (r == 0 && !present)
		r = -ENOENT;
out:
	buf_free(&line);
	if ((r == -ESTALE || r == -ENOENT) && id->stale_ok &&
	    view_stale(t, id, NULL, &rec.mtime, out) == 0)
		r = 0;
	return r;
}

/* What an open of a view keeps (tree_open): a reference to its rendered
 * bytes while the cache holds them, else the record's line, rendered at
 * the first read (tree_file_read), so that an open the kernel never reads
 * through (its pages are cached: keep_cache) renders nothing.  Either way
 * the version this inode names, checked now: the line's tag must be the
 * one *size was noted for.  Returns as view_content. */
static int view_snap(struct tree *t, const struct nid *id,
		     struct vview **view, struct buf *line, uint64_t *tag,
		     uint64_t *size)
{
	struct store_rec rec;
	bool present;
	int r;

	r = store_lookup(t->store, id->n, &rec);
	if (r == 0)
		r = vcache_attr(t->vc, t->store, &rec, store_gen(t), id->view,
				&present, size, tag);
	if (r == 0 && !present)
		r = -ENOENT;
	if (r == 0 &&
	    view_ino_now(t, id->n, id->view, *tag, rec.mtime) != id->ino)
		r = -ESTALE;
	if (r < 0 || vcache_find(t->vc, id->n, *tag, id->view, view) == 0)
		return r;
	r = store_read(t->store, id->n, line);
	/* Another line since the size was noted: not this inode's version. */
	if (r == 0 && hash_tag(line->data, line->len) != *tag)
		r = -ESTALE;
	return r;
}

/* incoming/ and its entries */

static int incoming_attr(struct tree *t, const struct nid *id,
			 struct tree_node *nd)
{
	if (!t->in)
		return -ENOENT;
	node_fill(t, nd, id->ino, S_IFDIR | 0755, 2, 0, store_mtime(t));
	nd->entry_timeout = TREE_TTL_FOREVER;
	nd->attr_timeout = TREE_TTL_NONE;
	return 0;
}

static int incoming_lookup_h(struct tree *t, const struct nid *id,
			     const char *name, struct tree_node *nd)
{
	struct incoming_attr a;
	int r;

	(void)id;
	if (!t->in)
		return -ENOENT;
	r = incoming_lookup(t->in, name, &a);
	if (r < 0)
		return r;
	drop_node(t, &a, nd);
	return 0;
}

static int incoming_list_h(struct tree *t, const struct nid *id,
			   struct lister *l)
{
	struct incoming_dirent ents[32];
	struct tree_node nd;
	size_t n, i, rank;
	int r;

	if (!t->in)
		return -ENOENT;
	r = list_dots(l, id->ino, INO_ROOT);
	rank = list_start(l);
	while (r == 0) {
		r = incoming_list(t->in, rank, ents, 32, &n);
		if (r < 0 || n == 0)
			break;
		for (i = 0; r == 0 && i < n; i++, rank++) {
			drop_node(t, &ents[i].attr, &nd);
			r = list_add(l, (off_t)rank + 2, ents[i].name,
				     ents[i].attr.ino, S_IFREG, &nd);
		}
	}
	return r;
}

static int drop_attr(struct tree *t, const struct nid *id,
		     struct tree_node *nd)
{
	struct incoming_attr a;
	int r;

	if (!t->in)
		return -ENOENT;
	r = incoming_getattr(t->in, id->ino, &a);
	if (r < 0)
		return r;
	drop_node(t, &a, nd);
	return 0;
}

/* lost+found/ and its files */

static int lostdir_attr(struct tree *t, const struct nid *id,
			struct tree_node *nd)
{
	if (lost_count(t) == 0)
		return -ENOENT;
	node_fill(t, nd, id->ino, S_IFDIR | 0555, 2, 0, store_mtime(t));
	nd->attr_timeout = nd->entry_timeout = TREE_TTL_SHORT;
	return 0;
}

static int lostdir_lookup(struct tree *t, const struct nid *id,
			  const char *name, struct tree_node *nd)
{
	struct lost_ent le;
	int r;

	(void)id;
	r = lost_find(t, 0, name, &le);
	return r < 0 ? r : tree_getattr(t, le.ino, nd);
}

static int lostdir_list(struct tree *t, const struct nid *id, struct lister *l)
{
	struct lost_ent le;
	bool more;
	size_t i;
	int r;

	if (lost_count(t) == 0)
		return -ENOENT;
	r = list_dots(l, id->ino, INO_ROOT);
	for (i = list_start(l); r == 0; i++) {
		/* One look under the lock decides both: the entry and whether
		 * there is one (the list may change between two looks). */
		pthread_mutex_lock(&t->lock);
		more = i < t->nlost;
		if (more)
			le = t->lost[i];
		pthread_mutex_unlock(&t->lock);
		if (!more)
			break;
		r = list_add(l, (off_t)i + 2, le.e.name, le.ino, S_IFREG,
			     NULL);
	}
	return r;
}

static int lostfile_attr(struct tree *t, const struct nid *id,
			 struct tree_node *nd)
{
	struct lost_ent le;
	int r;

	r = lost_find(t, id->ino, NULL, &le);
	if (r < 0)
		return r;
	node_fill(t, nd, id->ino, S_IFREG | 0444, 1, le.e.size, le.e.mtime);
	nd->attr_timeout = nd->entry_timeout = TREE_TTL_SHORT;
	return 0;
}

static int lostfile_content(struct tree *t, const struct nid *id,
			    struct buf *out)
{
	struct lost_ent le;
	struct keepdir *kd;
	uint64_t off = 0;
	size_t got;
	int fd, r;

	r = lost_find(t, id->ino, NULL, &le);
	if (r < 0)
		return r;
	pthread_mutex_lock(&t->lock);
	kd = t->lost_kd;
	pthread_mutex_unlock(&t->lock);
	if (!kd)
		return -ENOENT;
	r = keepdir_open_entry(kd, le.e.name, false, &fd);
	if (r < 0)
		return r;
	/* Kept files never change once written (atomicfile.h). */
	do {
		r = buf_reserve(out, 65536);
		if (r < 0)
			break;
		r = fileio_pread_upto(fd, out->data + out->len, 65536, off,
				      &got);
		if (r < 0) {
			log_err("%s/%s: read: %s", keepdir_path(kd), le.e.name,
				strerror(-r));
			break;
		}
		out->len += got;
		out->data[out->len] = '\0';
		off += got;
	} while (got);
	close(fd);
	return r;
}

/* .iterfs/ and .iterfs/status */

static int dotdir_attr(struct tree *t, const struct nid *id,
		       struct tree_node *nd)
{
	node_fill(t, nd, id->ino, S_IFDIR | 0555, 2, 0, store_mtime(t));
	nd->attr_timeout = nd->entry_timeout = TREE_TTL_SHORT;
	return 0;
}

static int dotdir_lookup(struct tree *t, const struct nid *id,
			 const char *name, struct tree_node *nd)
{
	(void)id;
	if (strcmp(name, "status") != 0)
		return -ENOENT;
	return tree_getattr(t, INO_STATUS, nd);
}

static int dotdir_list(struct tree *t, const struct nid *id, struct lister *l)
{
	int r;

	(void)t;
	r = list_dots(l, id->ino, INO_ROOT);
	return r ? r : list_add(l, 2, "status", INO_STATUS, S_IFREG, NULL);
}

static int status_content(struct tree *t, const struct nid *id,
			  struct buf *out)
{
	(void)id;
	return tree_status(t, out);
}

static int status_attr(struct tree *t, const struct nid *id,
		       struct tree_node *nd)
{
	struct buf b = BUF_INIT;
	int r;

	/* The size is exact: what an open now would read. */
	r = tree_status(t, &b);
	if (r < 0)
		return r;
	node_fill(t, nd, id->ino, S_IFREG | 0444, 1, b.len, store_mtime(t));
	buf_free(&b);
	nd->attr_timeout = TREE_TTL_NONE;
	nd->entry_timeout = TREE_TTL_SHORT;
	nd->direct_io = true;
	return 0;
}

/* by-metric/ */

/* A directory whose entries change with any commit: by-metric/, its
 * metric directories, failed/. */
static void derived_dir(struct tree *t, uint64_t ino, nlink_t nlink,
			struct tree_node *nd)
{
	node_fill(t, nd, ino, S_IFDIR | 0555, nlink, 0, store_mtime(t));
	nd->attr_timeout = nd->entry_timeout = TREE_TTL_SHORT;
}

static int bymetric_attr(struct tree *t, const struct nid *id,
			 struct tree_node *nd)
{
	/* Subdirectories not counted, as for by-hash/. */
	derived_dir(t, id->ino, 1, nd);
	nd->entry_timeout = TREE_TTL_FOREVER;
	return 0;
}

static int bymetric_lookup(struct tree *t, const struct nid *id,
			   const char *name, struct tree_node *nd)
{
	size_t n, total;
	uint64_t ino;
	int r;

	(void)id;
	if (!metric_name_ok(name))
		return -ENOENT;
	r = store_metric_rank(t->store, name, 0, NULL, 0, &n, &total);
	if (r == 0)
		r = metric_dir_ino(t, name, &ino);
	return r < 0 ? r : tree_getattr(t, ino, nd);
}

static int bymetric_list(struct tree *t, const struct nid *id,
			 struct lister *l)
{
	char *names[64];
	size_t n, i, rank;
	uint64_t ino;
	int r;

	r = list_dots(l, id->ino, INO_ROOT);
	rank = list_start(l);
	while (r == 0) {
		r = store_metric_names(t->store, rank, names, 64, &n);
		if (r < 0 || n == 0)
			break;
		for (i = 0; i < n; i++, rank++) {
			if (r == 0 && metric_name_ok(names[i])) {
				r = metric_dir_ino(t, names[i], &ino);
				if (r == 0)
					r = list_add(l, (off_t)rank + 2,
						     names[i], ino, S_IFDIR,
						     NULL);
			}
			free(names[i]);
		}
	}
	return r;
}

/* by-metric/<metric>/ */

static int metricdir_attr(struct tree *t, const struct nid *id,
			  struct tree_node *nd)
{
	size_t n, total;
	char *name;
	int r;

	r = metric_name_of(t, id->key, &name);
	if (r < 0)
		return r;
	r = store_metric_rank(t->store, name, 0, NULL, 0, &n, &total);
	free(name);
	if (r < 0)
		return r;
	derived_dir(t, id->ino, 2, nd);
	return 0;
}

static int metricdir_lookup(struct tree *t, const struct nid *id,
			    const char *rname, struct tree_node *nd)
{
	size_t n, total, rank;
	int64_t iter;
	char *name;
	int r;

	r = metric_name_of(t, id->key, &name);
	if (r < 0)
		return r;
	r = store_metric_rank(t->store, name, 0, NULL, 0, &n, &total);
	if (r == 0)
		r = parse_rank(rname, total, &rank);
	if (r == 0)
		r = store_metric_rank(t->store, name, rank, &iter, 1, &n,
				      &total);
	free(name);
	if (r == 0 && (n == 0 || !ino_iter_ok(iter)))
		r = -ENOENT;
	return r < 0 ? r :
		       tree_getattr(t, metric_link_ino(t, id->key, iter, true),
				    nd);
}

static int metricdir_list(struct tree *t, const struct nid *id,
			  struct lister *l)
{
	size_t n, i, rank, total;
	int64_t iters[256];
	char *name, rname[32];
	int r;

	r = metric_name_of(t, id->key, &name);
	if (r < 0)
		return r;
	r = list_dots(l, id->ino, INO_BYMETRIC);
	rank = list_start(l);
	while (r == 0) {
		r = store_metric_rank(t->store, name, rank, iters, 256, &n,
				      &total);
		if (r < 0 || n == 0)
			break;
		for (i = 0; r == 0 && i < n; i++, rank++) {
			if (!ino_iter_ok(iters[i]))
				continue;
			snprintf(rname, sizeof(rname), "%0*zu",
				 rank_width(total), rank + 1);
			r = list_add(l, (off_t)rank + 2, rname,
				     metric_link_ino(t, id->key, iters[i],
						     l->attrs),
				     S_IFLNK, NULL);
		}
	}
	free(name);
	return r;
}

/* failed/ */

static int failed_attr(struct tree *t, const struct nid *id,
		       struct tree_node *nd)
{
	derived_dir(t, id->ino, 2, nd);
	nd->entry_timeout = TREE_TTL_FOREVER;
	return 0;
}

static int failed_lookup(struct tree *t, const struct nid *id,
			 const char *name, struct tree_node *nd)
{
	(void)id;
	return lookup_number(t, name, IK_FAILED_LINK, nd);
}

static int failed_list(struct tree *t, const struct nid *id, struct lister *l)
{
	return list_numbers(t, id, l, store_failed, IK_FAILED_LINK, S_IFLNK);
}

/* by-metric/<metric>/<rank> and failed/<n>: links whose inode names the
 * target, so their text never changes under an inode. */

static int ranklink_attr(struct tree *t, const struct nid *id,
			 struct tree_node *nd)
{
	int depth = id->kind == NK_FAILED_LINK ? 1 : 2;
	struct store_rec rec;
	char target[64];
	bool failed;
	int r;

	r = store_lookup(t->store, id->n, &rec);
	if (r == 0 && id->kind == NK_FAILED_LINK) {
		r = store_is_failed(t->store, id->n, &failed);
		if (r == 0 && !failed)
			r = -ENOENT;
	}
	if (r == 0)
		r = link_text(depth, id->n, target, sizeof(target));
	if (r < 0)
		return r;
	node_fill(t, nd, id->ino, S_IFLNK | 0777, 1, (uint64_t)r,
		  ts_of(rec.mtime));
	nd->attr_timeout = TREE_TTL_FOREVER;
	/* Which iteration a rank leads to changes with any commit, at once
	 * as latest does. */
	nd->entry_timeout = id->kind == NK_METRIC_LINK ? TREE_TTL_NONE :
							 TREE_TTL_SHORT;
	return 0;
}

static int ranklink_link(struct tree *t, const struct nid *id, char *out,
			 size_t len)
{
	struct tree_node nd;
	int r;

	r = ranklink_attr(t, id, &nd);
	if (r == 0)
		r = link_text(id->kind == NK_FAILED_LINK ? 1 : 2, id->n, out,
			      len);
	return r < 0 ? r : 0;
}

static const struct kind_ops kind_ops[NK_COUNT] = {
	[NK_ROOT] = { S_IFDIR, root_attr, root_lookup, root_list, NULL, NULL },
	[NK_ITERATIONS] = { S_IFDIR, iterations_attr, iterations_lookup,
			    iterations_list, NULL, NULL },
	[NK_BYHASH] = { S_IFDIR, byhash_attr, byhash_lookup, byhash_list,
			NULL, NULL },
	[NK_INCOMING] = { S_IFDIR, incoming_attr, incoming_lookup_h,
			  incoming_list_h, NULL, NULL },
	[NK_LOSTFOUND] = { S_IFDIR, lostdir_attr, lostdir_lookup, lostdir_list,
			   NULL, NULL },
	[NK_DOTITERFS] = { S_IFDIR, dotdir_attr, dotdir_lookup, dotdir_list,
			   NULL, NULL },
	[NK_STATUS] = { S_IFREG, status_attr, NULL, NULL, NULL,
			status_content },
	[NK_ITER_DIR] = { S_IFDIR, iterdir_attr, iterdir_lookup, iterdir_list,
			  NULL, NULL },
	[NK_VIEW] = { S_IFREG, view_attr, NULL, NULL, NULL, view_content },
	[NK_HASH_DIR] = { S_IFDIR, hashdir_attr, hashdir_lookup, hashdir_list,
			  NULL, NULL },
	[NK_HASH_CODE] = { S_IFREG, hashcode_attr, NULL, NULL, NULL,
			   hashcode_content },
	[NK_HASH_LINK] = { S_IFLNK, link_attr, NULL, NULL, link_link, NULL },
	[NK_LATEST] = { S_IFLNK, link_attr, NULL, NULL, link_link, NULL },
	[NK_LOST_FILE] = { S_IFREG, lostfile_attr, NULL, NULL, NULL,
			   lostfile_content },
	[NK_DROP] = { S_IFREG, drop_attr, NULL, NULL, NULL, NULL },
	[NK_BYMETRIC] = { S_IFDIR, bymetric_attr, bymetric_lookup,
			  bymetric_list, NULL, NULL },
	[NK_METRIC_DIR] = { S_IFDIR, metricdir_attr, metricdir_lookup,
			    metricdir_list, NULL, NULL },
	[NK_METRIC_LINK] = { S_IFLNK, ranklink_attr, NULL, NULL, ranklink_link,
			     NULL },
	[NK_FAILED] = { S_IFDIR, failed_attr, failed_lookup, failed_list, NULL,
			NULL },
	[NK_FAILED_LINK] = { S_IFLNK, ranklink_attr, NULL, NULL, ranklink_link,
			     NULL },
};

/* --- 9. the public functions --------------------------------------------- */

/* An open file: its bytes and attributes as they were at open.  Linked
 * into t->open while open, so that the attributes of a version that was
 * replaced (or of a record that is gone) are still answered to whoever
 * holds it open, as for an unlinked file (fstat after open).
 *
 * The bytes are `view`, shared with the view cache and every other handle
 * of the same version.  A view (iterations/<n>/<file>, by-hash/<h>/code.py)
 * whose bytes were not cached at open holds the record's line instead
 * (`line`, `iter`, `tag`, `kind`) and gets `view` at its first read: what
 * it reads is the same either way, fixed at open.
 *
 *   view    line    state
 *   set     empty   bytes known (any kind of file)
 *   NULL    held    a view not read yet: rendered from line at first read
 */
struct tree_file {
	struct tree *t;
	struct tree_node nd;
	pthread_mutex_t lock;           /* serialises the first render */
	struct vview *view;             /* set once, under lock; read with
					 * an atomic load */
	struct buf line;                /* guarded by lock */
	int64_t iter;
	uint64_t tag;
	enum view_kind kind;
	struct tree_file *prev, *next;  /* guarded by t->lock */
};

int tree_new(const struct tree_opts *o, struct tree **out)
{
	struct tree *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	t->store = o->store;
	t->vc = o->vc;
	t->in = o->in;
	t->uid = o->uid;
	t->gid = o->gid;
	if (o->mount_opts) {
		t->mount_opts = strdup(o->mount_opts);
		if (!t->mount_opts) {
			r = -ENOMEM;
			goto out_free;
		}
	}
	r = -pthread_mutex_init(&t->lock, NULL);
	if (r < 0)
		goto out_opts;
	/* A lost+found that cannot be listed now is listed at the next
	 * change (logged). */
	lost_relist(t, NULL);
	*out = t;
	return 0;

out_opts:
	free(t->mount_opts);
out_free:
	free(t);
	return r;
}

void tree_free(struct tree *t)
{
	if (!t)
		return;
	/* Handles the kernel never released (an unmount in the middle). */
	while (t->open)
		tree_file_free(t->open);
	keepdir_close(t->lost_kd);
	free(t->lost);
	free(t->seen.v);
	free(t->versions.v);
	free(t->mlinks.v);
	while (t->nmnames)
		free(t->mnames[--t->nmnames].name);
	free(t->mnames);
	free(t->mount_opts);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

void tree_changed(struct tree *t, bool *lost_changed)
{
	bool changed = false;

	lost_relist(t, &changed);
	if (lost_changed)
		*lost_changed = changed;
}

void tree_note_commit(struct tree *t, const struct timespec *when)
{
	pthread_mutex_lock(&t->lock);
	t->commits++;
	t->last_commit = *when;
	pthread_mutex_unlock(&t->lock);
}

/* The attributes an open snapshot of `ino` had at open.  Returns 0 or
 * -ENOENT. */
static int open_attr(struct tree *t, uint64_t ino, struct tree_node *nd)
{
	struct tree_file *f;
	int r = -ENOENT;

	pthread_mutex_lock(&t->lock);
	for (f = t->open; f; f = f->next) {
		if (f->nd.st.st_ino == ino) {
			*nd = f->nd;
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

int tree_getattr(struct tree *t, uint64_t ino, struct tree_node *nd)
{
	struct nid id;
	int r;

	r = decode(t, ino, &id);
	if (r == 0)
		r = kind_ops[id.kind].attr(t, &id, nd);
	if ((r == -ESTALE || r == -ENOENT) && open_attr(t, ino, nd) == 0)
		return 0;
	return r;
}

int tree_lookup(struct tree *t, uint64_t parent, const char *name,
		struct tree_node *nd)
{
	struct nid id;
	int r;

	r = decode(t, parent, &id);
	if (r < 0)
		return r;
	if (!kind_ops[id.kind].lookup)
		return -ENOTDIR;
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	return kind_ops[id.kind].lookup(t, &id, name, nd);
}

int tree_list(struct tree *t, uint64_t dir, off_t off, bool attrs,
	      tree_fill_fn *fill, void *arg)
{
	struct lister l = { .t = t, .off = off, .attrs = attrs, .fill = fill,
			    .arg = arg };
	struct nid id;
	int r;

	r = decode(t, dir, &id);
	if (r < 0)
		return r;
	if (!kind_ops[id.kind].list)
		return -ENOTDIR;
	r = kind_ops[id.kind].list(t, &id, &l);
	return r < 0 ? r : 0;
}

int tree_readlink(struct tree *t, uint64_t ino, char *out, size_t len)
{
	struct nid id;
	int r;

	r = decode(t, ino, &id);
	if (r < 0)
		return r;
	if (!kind_ops[id.kind].link)
		return -EINVAL;
	return kind_ops[id.kind].link(t, &id, out, len);
}

static int content_of(struct tree *t, uint64_t ino, bool stale_ok,
		      struct buf *out)
{
	struct nid id;
	int r;

	r = decode(t, ino, &id);
	if (r < 0)
		return r;
	id.stale_ok = stale_ok;
	if (!kind_ops[id.kind].content)
		return kind_ops[id.kind].type == S_IFDIR ? -EISDIR : -EINVAL;
	return kind_ops[id.kind].content(t, &id, out);
}

int tree_open(struct tree *t, uint64_t ino, struct tree_file **out)
{
	struct tree_file *f = calloc(1, sizeof(*f));
	struct buf data = BUF_INIT;
	uint64_t size = 0;
	struct stat *st;
	struct nid id;
	int r;

	if (!f)
		return -ENOMEM;
	f->t = t;
	r = -pthread_mutex_init(&f->lock, NULL);
	if (r < 0)
		goto out_free;
	r = tree_getattr(t, ino, &f->nd);
	if (r == 0 && !S_ISREG(f->nd.st.st_mode))
		r = S_ISDIR(f->nd.st.st_mode) ? -EISDIR : -EINVAL;
	if (r == 0)
		r = decode(t, ino, &id);
	if (r == 0 && id.kind == NK_VIEW) {
		f->iter = id.n;
		f->kind = id.view;
		r = view_snap(t, &id, &f->view, &f->line, &f->tag, &size);
	} else if (r == 0 && id.kind == NK_HASH_CODE) {
		f->iter = id.n;
		f->kind = VIEW_CODE;
		r = hashcode_snap(t, &id, &f->view, &f->line, &f->tag, &size);
	} else if (r == 0) {
		r = content_of(t, ino, false, &data);
		if (r == 0)
			r = vview_new(&data, true, &f->view);
	}
	if (r < 0)
		goto out_snap;
	/* Generated files may have grown since getattr: the snapshot's size
	 * is what a reader of this handle gets. */
	if (f->view)
		size = f->view->bytes.len;
	st = &f->nd.st;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	pthread_mutex_lock(&t->lock);
	f->next = t->open;
	if (t->open)
		t->open->prev = f;
	t->open = f;
	pthread_mutex_unlock(&t->lock);
	*out = f;
	return 0;

out_snap:
	buf_free(&data);
	buf_free(&f->line);
	vview_put(f->view);
	pthread_mutex_destroy(&f->lock);
out_free:
	free(f);
	return r;
}

const struct tree_node *tree_file_node(const struct tree_file *f)
{
	return &f->nd;
}

/* The bytes of a view opened before they were rendered: rendered from the
 * line kept at open (or found in the cache, rendered by another reader of
 * the same version), once per handle. */
static int file_view(struct tree_file *f, struct vview **out)
{
	struct tree *t = f->t;
	struct vview *v;
	int r = 0;

	pthread_mutex_lock(&f->lock);
	v = __atomic_load_n(&f->view, __ATOMIC_RELAXED);
	if (!v) {
		r = vcache_get(t->vc, store_path(t->store), f->iter, f->tag,
			       f->line.data, f->line.len, f->kind, &v);
		/* The line was checked at open to be the one the size was
		 * noted for: anything else is a tag collision. */
		if (r == 0 && (!v->present ||
			       v->bytes.len != (size_t)f->nd.st.st_size)) {
			log_err("%s: iteration %" PRId64 ": %s rendered to "
				"another size than noted", store_path(t->store),
				f->iter, view_name(f->kind));
			vview_put(v);
			r = -EIO;
		}
		if (r == 0) {
			__atomic_store_n(&f->view, v, __ATOMIC_RELEASE);
			buf_free(&f->line);
		}
	}
	pthread_mutex_unlock(&f->lock);
	*out = v;
	return r;
}

int tree_file_read(struct tree_file *f, uint64_t off, size_t max,
		   struct buf *out)
{
	struct vview *v = __atomic_load_n(&f->view, __ATOMIC_ACQUIRE);
	int r;

	if (!v) {
		r = file_view(f, &v);
		if (r < 0)
			return r;
	}
	if (off >= v->bytes.len)
		return 0;
	if (max > v->bytes.len - off)
		max = (size_t)(v->bytes.len - off);
	return buf_append(out, v->bytes.data + off, max);
}

void tree_file_free(struct tree_file *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->t->lock);
	if (f->prev)
		f->prev->next = f->next;
	else
		f->t->open = f->next;
	if (f->next)
		f->next->prev = f->prev;
	pthread_mutex_unlock(&f->t->lock);
	vview_put(f->view);
	buf_free(&f->line);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int tree_read(struct tree *t, uint64_t ino, uint64_t off, size_t max,
	      struct buf *out)
{
	struct buf data = BUF_INIT;
	int r;

	r = content_of(t, ino, true, &data);
	if (r == 0 && off < data.len)
		r = buf_append(out, data.data + off,
			       max < data.len - off ? max :
						      (size_t)(data.len - off));
	buf_free(&data);
	return r;
}
