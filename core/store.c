/* store.c - the index of one JSONL history file: install scan results,
 * refresh, adopt, the change log, and the derived views' life cycle.
 *
 * Two locks (see store.h for the public rules):
 *   update_mu  serialises everything that changes the index: store_refresh,
 *              store_adopt, the lazy build of a derived view and the install
 *              of the validation thread's result (its scan holds no lock and
 *              reads a duplicate descriptor).  Its holder
 *              does the slow I/O (scans, prefix compares, reading records
 *              for a view) with only this mutex held, so readers keep going
 *              on the old index meanwhile, and it may read the index without
 *              `lock` (nobody else writes it).
 *   lock       (rwlock) guards the index, the fd and the views' states;
 *              readers share it, the update_mu holder takes it exclusively
 *              only to install results.
 * Lock order: writer's flock, then update_mu, then lock.
 *
 * Contents:
 *   locks, index basics
 *   derived views         build on first use, one batch per change, reset
 *   checking and keeping  the last line's tag, old against new, lost lines
 *   installing scan results   full re-index, extension, merge
 *   refresh and adopt     what the file at the path is now
 *   public, shape public
 * Line scanning is in scan.c, the views in their own files (derived.h).
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "derived.h"
#include "fileio.h"
#include "hash.h"
#include "keep.h"
#include "log.h"
#include "pack.h"
#include "record.h"
#include "scan.h"

#define CMP_CHUNK ((size_t)1 << 20)
/* Past this many unread iterations, "everything changed" says as much. */
#define UNREAD_MAX ((size_t)1 << 16)

struct idx {
	struct pack p;        /* the shown records (pack.h) */
	uint64_t *skip;       /* line numbers of skipped lines, ascending */
	size_t nskip, skipcap;
	uint64_t lines, records, dups, beyond;
	uint64_t size;        /* bytes indexed */
	uint64_t plines;      /* LF-terminated lines in the indexed bytes */
	uint64_t tail_off;    /* start of the unterminated last line, or size */
	enum tail_kind tail;
	bool tail_beyond;     /* TAIL_SKIPPED for a number past the limit */
	int64_t tail_iter;
	uint32_t tail_len;
	/* The last line of the indexed bytes, [last_off, size), and its
	 * hash_tag: what a refresh or adopt re-reads from the new file before
	 * it trusts the indexed bytes to be its prefix. */
	uint64_t last_off;
	uint64_t last_tag;
	struct shape sh;
};

/* One derived view's state; NULL while not built. */
struct view {
	void *st;
};

/* Fields marked "guarded by store->lock" are read under it (shared) and
 * written under it (exclusive) by update_mu holders only. */
struct store {
	char *path;              /* immutable */
	unsigned flags;          /* immutable */
	pthread_mutex_t update_mu;
	pthread_rwlock_t lock;
	int fd;                  /* guarded by store->lock; -1: no file */
	dev_t dev;               /* guarded by store->lock */
	ino_t ino;               /* guarded by store->lock */
	struct timespec mtim;    /* guarded by store->lock */
	struct idx ix;           /* guarded by store->lock */
	uint64_t generation;     /* guarded by store->lock */
	struct view views[DERIVED_COUNT]; /* guarded by store->lock */
	/* Changes since the last store_changes_take, whoever refreshed. */
	struct store_change unread; /* guarded by update_mu */
	/* "<store>.lost/", opened when lines first vanish. */
	struct keepdir *lost;       /* guarded by update_mu */
	/* STORE_LAZY: ix is the quick index until validate_locked swaps in
	 * the exact one (store.h). */
	bool pending;               /* guarded by store->lock */
	/* The validation thread (store_validate_start/stop, called by one
	 * thread, the store's owner). */
	pthread_t vthread;
	bool vthread_on;
	_Atomic bool vstop;         /* stops the thread's scan */
	store_validated_fn vfn;
	void *varg;
};

/* --- locks, index basics -------------------------------------------------- */

/* A lock that fails is a bug in this file, not a runtime condition. */
static void rd_lock(struct store *s)
{
	if (pthread_rwlock_rdlock(&s->lock) != 0)
		abort();
}

static void wr_lock(struct store *s)
{
	if (pthread_rwlock_wrlock(&s->lock) != 0)
		abort();
}

static void un_lock(struct store *s)
{
	if (pthread_rwlock_unlock(&s->lock) != 0)
		abort();
}

static void up_lock(struct store *s)
{
	if (pthread_mutex_lock(&s->update_mu) != 0)
		abort();
}

static void up_unlock(struct store *s)
{
	if (pthread_mutex_unlock(&s->update_mu) != 0)
		abort();
}

static void idx_free(struct idx *ix)
{
	pack_free(&ix->p);
	free(ix->skip);
	shape_free(&ix->sh);
	memset(ix, 0, sizeof(*ix));
}

static size_t find_iter(const struct idx *ix, int64_t iter, bool *found)
{
	return pack_find(&ix->p, iter, found);
}

/* Entry i of ix into *e, or NULL past its end: the cursor of the walks
 * that merge two indexes by number. */
static struct ent *ent_at(const struct idx *ix, size_t i, struct ent *e)
{
	if (i >= ix->p.n)
		return NULL;
	pack_get(&ix->p, i, e, NULL);
	return e;
}

/* --- derived views -------------------------------------------------------- */

/* Drop every view (store->lock held exclusively); each is built again on
 * its next use. */
static void views_reset(struct store *s)
{
	unsigned k;

	for (k = 0; k < DERIVED_COUNT; k++) {
		if (s->views[k].st)
			derived_views[k]->destroy(s->views[k].st);
		s->views[k].st = NULL;
	}
}

/* Prepare one batch for every built view (update_mu held).  A view whose
 * prepare fails gets a NULL plan: views_apply drops it. */
static void views_prepare(struct store *s, const struct derived_batch *b,
			  void *plan[DERIVED_COUNT])
{
	unsigned k;
	int r;

	for (k = 0; k < DERIVED_COUNT; k++) {
		plan[k] = NULL;
		if (!s->views[k].st)
			continue;
		r = derived_views[k]->prepare(s->views[k].st, b, &plan[k]);
		if (r < 0) {
			log_warn("store: updating %s of %s: %s (rebuilt on "
				 "next use)", derived_views[k]->name, s->path,
				 strerror(-r));
			plan[k] = NULL;
		}
	}
}

/* Install the plans (store->lock held exclusively). */
static void views_apply(struct store *s, void *plan[DERIVED_COUNT])
{
	unsigned k;

	for (k = 0; k < DERIVED_COUNT; k++) {
		if (!s->views[k].st)
			continue;
		if (plan[k] && derived_views[k]->apply(s->views[k].st,
						       plan[k]) == 0)
			continue;
		derived_views[k]->destroy(s->views[k].st);
		s->views[k].st = NULL;
	}
}

/* Build view k from the whole index (update_mu held).  A pending store's
 * view is built on the quick index, its lines read as the quick index took
 * them (derived.h: derived_batch.valid); the validation's swap hands it
 * the difference (exact_install_locked) as a refresh does, so the first
 * look never waits for the full scan. */
static int view_build_locked(struct store *s, enum derived_kind k)
{
	const struct derived_ops *ops = derived_views[k];
	struct derived_batch b;
	struct ent *all;
	void *st, *plan = NULL;
	int r;

	if (s->views[k].st)
		return 0;
	st = ops->create();
	if (!st)
		return -ENOMEM;
	/* The views take entries whole, for the build only. */
	r = pack_unpack(&s->ix.p, &all, NULL);
	if (r < 0) {
		ops->destroy(st);
		return r;
	}
	b = (struct derived_batch){ s->fd, NULL, 0, all, s->ix.p.n,
				    (s->flags & STORE_VALIDATE) != 0 };
	r = ops->prepare(st, &b, &plan);
	free(all);
	if (r < 0) {
		log_err("store: building %s of %s: %s", ops->name, s->path,
			strerror(-r));
		ops->destroy(st);
		return r;
	}
	wr_lock(s);
	r = ops->apply(st, plan);
	if (!r)
		s->views[k].st = st;
	un_lock(s);
	if (r < 0)
		ops->destroy(st);
	return r;
}

int store_view_rdlock(struct store *s, enum derived_kind k, const void **st)
{
	int r;

	for (;;) {
		rd_lock(s);
		if (s->views[k].st) {
			*st = s->views[k].st;
			return 0;
		}
		un_lock(s);
		up_lock(s);
		r = view_build_locked(s, k);
		up_unlock(s);
		if (r < 0)
			return r;
	}
}

void store_view_unlock(struct store *s)
{
	un_lock(s);
}

bool store_has_locked(const struct store *s, int64_t iter)
{
	bool found;

	find_iter(&s->ix, iter, &found);
	return found;
}

/* --- checking and keeping ------------------------------------------------ */

/* hash_tag of bytes [off, end) of fd. */
static int range_tag(int fd, uint64_t off, uint64_t end, uint64_t *tag)
{
	size_t n = (size_t)(end - off);
	char *p;
	int r;

	*tag = hash_tag("", 0);
	if (end <= off)
		return 0;
	p = malloc(n);
	if (!p)
		return -ENOMEM;
	r = fileio_pread_full(fd, p, n, off);
	if (!r)
		*tag = hash_tag(p, n);
	free(p);
	return r;
}

/* Does the file at fd (`size` bytes) still hold the last indexed line where
 * the index has it?  Never trust a prefix on its size alone: a writer that
 * rewrote the file may have made it just as long. */
static int tail_holds(const struct idx *ix, int fd, uint64_t size, bool *ok)
{
	uint64_t tag;
	int r;

	*ok = ix->size == 0;
	if (*ok || size < ix->size)
		return 0;
	r = range_tag(fd, ix->last_off, ix->size, &tag);
	if (r < 0)
		return r;
	*ok = tag == ix->last_tag;
	return 0;
}

/* What a full re-index changed against the index it replaces. */
struct diff {
	struct ent *gone;     /* old entries whose number is gone, or whose
			       * line now holds another record */
	size_t ngone;
	int64_t *del;         /* numbers gone or changed, ascending */
	size_t ndel;
	struct ent *add;      /* new entries added or changed, ascending */
	size_t nadd;
};

static void diff_free(struct diff *d)
{
	free(d->gone);
	free(d->del);
	free(d->add);
	memset(d, 0, sizeof(*d));
}

/* The line of e in fd, into b (replacing its content). */
static int read_line(int fd, const struct ent *e, struct buf *b)
{
	int r;

	buf_reset(b);
	r = buf_reserve(b, e->len);
	if (r < 0)
		return r;
	r = fileio_pread_full(fd, b->data, e->len, e->off);
	if (r < 0)
		return r;
	b->len = e->len;
	b->data[b->len] = '\0';
	return 0;
}

/* Two different lines: do they hold another record, not just the same one
 * re-spaced?  The seeds' save rewrites every line with json.dumps: that is
 * no loss.  A line that does not parse counts as another record. */
static int another_record(const struct buf *x, const struct buf *y,
			  bool *other)
{
	struct buf cx = BUF_INIT, cy = BUF_INIT;
	struct jtext_span vx, vy;
	int r = 0;

	*other = true;
	if (jtext_parse_value(x->data, x->len, &vx) < 0 ||
	    jtext_parse_value(y->data, y->len, &vy) < 0)
		return 0;
	r = jtext_compact(vx, &cx);
	if (!r)
		r = jtext_compact(vy, &cy);
	if (r == -EINVAL)
		r = 0;
	else if (!r)
		*other = cx.len != cy.len ||
			 memcmp(cx.data, cy.data, cx.len) != 0;
	buf_free(&cx);
	buf_free(&cy);
	return r;
}

/* Compare the index with a new one of the file at fd (update_mu held).
 * `other`: fd is another file than the indexed one, whose old lines are
 * still readable through s->fd; then a number's line changed when its
 * bytes differ, and its old line is kept (d->gone) when the new one holds
 * another record.  Rewritten in place the old bytes are gone, and a line
 * changed when its place or length did.  Marks changed (and already
 * replaced) entries of nix replaced. */
static int diff_build(struct store *s, int fd, bool other, struct idx *nix,
		      struct diff *d)
{
	const struct idx *ix = &s->ix;
	struct buf x = BUF_INIT, y = BUF_INIT;
	size_t i = 0, j = 0;
	int r = 0;

	memset(d, 0, sizeof(*d));
	d->gone = malloc((ix->p.n + 1) * sizeof(*d->gone));
	d->del = malloc((ix->p.n + 1) * sizeof(*d->del));
	d->add = malloc((nix->p.n + 1) * sizeof(*d->add));
	if (!d->gone || !d->del || !d->add) {
		r = -ENOMEM;
		goto out;
	}
	while (i < ix->p.n || j < nix->p.n) {
		struct ent oe, ne, *o = ent_at(ix, i, &oe),
				   *n = ent_at(nix, j, &ne);
		bool changed, lost;

		if (o && (!n || o->iter < n->iter)) {
			d->gone[d->ngone++] = *o;
			d->del[d->ndel++] = o->iter;
			i++;
			continue;
		}
		if (!o || n->iter < o->iter) {
			d->add[d->nadd++] = *n;
			j++;
			continue;
		}
		lost = false;
		if (other) {
			r = read_line(s->fd, o, &x);
			if (!r)
				r = read_line(fd, n, &y);
			changed = !r && (x.len != y.len ||
					 memcmp(x.data, y.data, x.len) != 0);
			if (changed)
				r = another_record(&x, &y, &lost);
			if (r < 0)
				goto out;
		} else {
			changed = o->off != n->off || o->len != n->len;
		}
		if (o->replaced || changed) {
			n->replaced = true;
			pack_set_replaced(&nix->p, j);
		}
		if (lost)
			d->gone[d->ngone++] = *o;
		if (changed) {
			d->del[d->ndel++] = o->iter;
			d->add[d->nadd++] = *n;
		}
		i++;
		j++;
	}
out:
	buf_free(&x);
	buf_free(&y);
	if (r < 0)
		diff_free(d);
	return r;
}

/* "12, 15, 20-23" style list of numbers for a log line, cut short. */
static void iters_text(const struct ent *e, size_t n, char *out, size_t max)
{
	size_t i, o = 0;

	out[0] = '\0';
	for (i = 0; i < n && o + 48 < max; i++)
		o += (size_t)snprintf(out + o, max - o, "%s%" PRId64,
				      i ? ", " : "", e[i].iter);
	if (i < n)
		snprintf(out + o, max - o, " ... (%zu in all)", n);
}

/* Keep the old lines of `gone` durably in "<store>.lost/"
 * (update_mu held; s->fd still reads the old file).  Returns 0 or -errno
 * (logged): then the caller keeps the old index and the next refresh tries
 * again, so that nothing vanishes without a copy. */
static int keep_lost(struct store *s, const struct ent *gone, size_t n)
{
	struct buf lines = BUF_INIT;
	struct keep_id id = { 0 };
	char base[64], nums[1024];
	struct timespec now;
	struct tm tm;
	size_t i;
	int r = 0;

	for (i = 0; i < n && !r; i++) {
		r = buf_reserve(&lines, (size_t)gone[i].len + 1);
		if (r < 0)
			break;
		r = fileio_pread_full(s->fd, lines.data + lines.len,
				      gone[i].len, gone[i].off);
		if (r < 0)
			break;
		lines.len += gone[i].len;
		lines.data[lines.len++] = '\n';
	}
	if (!r && !s->lost)
		r = keepdir_open(s->path, ".lost", &s->lost);
	if (!r) {
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		snprintf(base, sizeof(base),
			 "%04d-%02d-%02dT%02d-%02d-%02d.%06ld.jsonl",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec,
			 now.tv_nsec / 1000);
		r = keepdir_put(s->lost, base, lines.data, lines.len, NULL,
				&id);
	}
	iters_text(gone, n, nums, sizeof(nums));
	if (r < 0)
		log_err("store: %s was replaced without the records of "
			"iterations %s, and their lines could not be kept: %s "
			"(the mount keeps showing them and tries again)",
			s->path, nums, strerror(-r));
	else
		log_warn("store: %s was replaced without the records of "
			 "iterations %s; their lines are kept in %s/%s",
			 s->path, nums, keepdir_path(s->lost), id.name);
	buf_free(&lines);
	return r;
}

/* --- installing scan results ---------------------------------------------- */

/* A fresh index from a scan of a whole file. */
static int idx_from_scan(struct scan *sc, struct idx *ix)
{
	uint64_t hidden;
	int r;

	memset(ix, 0, sizeof(*ix));
	r = scan_dedup(sc, &hidden);
	if (r < 0)
		return r;
	r = pack_build(sc->e, sc->t, sc->n, sc->flags & STORE_TIMES, &ix->p);
	if (r < 0)
		return r;
	ix->skip = sc->skip;
	ix->nskip = sc->nskip;
	ix->skipcap = sc->skipcap;
	ix->lines = sc->lines;
	ix->records = sc->records;
	ix->beyond = sc->beyond;
	ix->tail_beyond = sc->tail_beyond;
	ix->sh = sc->sh;
	memset(&sc->sh, 0, sizeof(sc->sh));
	ix->dups = hidden;
	ix->size = sc->end;
	ix->tail_off = sc->tail_off;
	ix->tail = sc->tail;
	ix->tail_iter = sc->tail_iter;
	ix->tail_len = sc->tail_len;
	ix->plines = sc->tail == TAIL_NONE ? sc->lineno : sc->lineno - 1;
	ix->last_off = sc->any ? sc->last_off : 0;
	sc->skip = NULL;
	return 0;
}

/* What one refresh found: `reset`, or the numbers of e[0..n). */
static int change_set(struct store_change *chg, bool reset,
		      const struct ent *e, size_t n)
{
	size_t i;

	memset(chg, 0, sizeof(*chg));
	chg->reset = reset;
	chg->changed = true;
	if (!n)
		return 0;
	chg->iters = malloc(n * sizeof(*chg->iters));
	if (!chg->iters)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		chg->iters[i] = e[i].iter;
	chg->n = n;
	return 0;
}

/* Index the whole file at fd and install it (update_mu held).  Takes
 * ownership of fd on success.  Against the index it replaces: numbers gone
 * from another file have their old lines kept (keep_lost; if that fails,
 * nothing is installed), changed lines are marked replaced, and the
 * derived views take the difference as one batch when it is small, else
 * they are rebuilt on next use. */
static int reindex_locked(struct store *s, int fd, const struct stat *st,
			  struct store_change *chg)
{
	struct scan sc = { .flags = s->flags };
	void *plan[DERIVED_COUNT] = { 0 };
	struct diff d = { 0 };
	struct idx nix, old;
	bool other, views_keep = false, lost = false;
	unsigned k;
	int r, oldfd;

	r = scan_file(&sc, fd, 0, (uint64_t)st->st_size, s->path);
	if (r < 0)
		goto out_scan;
	r = idx_from_scan(&sc, &nix);
	if (r < 0)
		goto out_scan;
	r = range_tag(fd, nix.last_off, nix.size, &nix.last_tag);
	if (r < 0)
		goto out_nix;
	if (s->fd >= 0) {
		other = st->st_dev != s->dev || st->st_ino != s->ino;
		r = diff_build(s, fd, other, &nix, &d);
		if (r < 0)
			goto out_nix;
		if (d.ngone && other) {
			r = keep_lost(s, d.gone, d.ngone);
			if (r < 0)
				goto out_nix;
			lost = true;
		} else if (d.ngone) {
			char nums[1024];

			iters_text(d.gone, d.ngone, nums, sizeof(nums));
			log_warn("store: %s was rewritten in place without "
				 "iterations %s; their lines were overwritten "
				 "and cannot be kept", s->path, nums);
		}
		views_keep = other && d.ndel + d.nadd <= nix.p.n / 4 + 64;
		if (views_keep) {
			struct derived_batch b = { fd, d.del, d.ndel, d.add,
						   d.nadd,
						   s->flags & STORE_VALIDATE };

			views_prepare(s, &b, plan);
		}
	}
	r = change_set(chg, true, NULL, 0);
	if (r < 0)
		goto out_nix;
	chg->lost = lost;
	wr_lock(s);
	old = s->ix;
	s->ix = nix;
	oldfd = s->fd;
	s->fd = fd;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->mtim = st->st_mtim;
	s->generation++;
	s->pending = false;
	if (views_keep)
		views_apply(s, plan);
	else
		views_reset(s);
	memset(plan, 0, sizeof(plan));
	un_lock(s);
	idx_free(&old);
	if (oldfd >= 0 && oldfd != fd)
		close(oldfd);
	goto out_scan;
out_nix:
	idx_free(&nix);
out_scan:
	for (k = 0; k < DERIVED_COUNT; k++)
		if (plan[k])
			derived_views[k]->plan_free(plan[k]);
	diff_free(&d);
	scan_free(&sc);
	return r;
}

/* Drop everything: the file is gone (update_mu held). */
static void empty_locked(struct store *s, struct store_change *chg)
{
	struct idx old;
	int oldfd;

	memset(chg, 0, sizeof(*chg));
	chg->reset = chg->changed = true;
	wr_lock(s);
	old = s->ix;
	memset(&s->ix, 0, sizeof(s->ix));
	oldfd = s->fd;
	s->fd = -1;
	s->generation++;
	s->pending = false;
	views_reset(s);
	un_lock(s);
	idx_free(&old);
	if (oldfd >= 0)
		close(oldfd);
}

/* The union of the index and the sorted, unique scan records, in new
 * arrays (scanned lines come later in the file, so they win and are marked
 * replaced); `gone` lists the numbers whose old line was hidden. */
struct merged {
	struct pack p;
	int64_t *gone;
	size_t ngone;
};

static void merged_free(struct merged *m)
{
	pack_free(&m->p);
	free(m->gone);
}

static int merge_build(const struct idx *ix, struct scan *sc, bool times,
		       struct merged *m)
{
	size_t i = 0, j = 0, k = 0, cap = ix->p.n + sc->n;
	struct ent *e, cur;
	int64_t *t = NULL;
	int r;

	memset(m, 0, sizeof(*m));
	e = malloc(cap * sizeof(*e));
	m->gone = malloc(sc->n * sizeof(*m->gone));
	if (times)
		t = malloc(cap * sizeof(*t));
	if (!e || !m->gone || (times && !t)) {
		r = -ENOMEM;
		goto out;
	}
	while (i < ix->p.n || j < sc->n) {
		bool take_new;

		if (i < ix->p.n)
			pack_get(&ix->p, i, &cur, times ? &t[k] : NULL);
		take_new = j < sc->n &&
			   (i >= ix->p.n || sc->e[j].iter <= cur.iter);
		if (!take_new) {
			e[k++] = cur;
			i++;
			continue;
		}
		if (i < ix->p.n && sc->e[j].iter == cur.iter) {
			m->gone[m->ngone++] = cur.iter;
			sc->e[j].replaced = true;
			i++;
		}
		e[k] = sc->e[j];
		if (times)
			t[k] = sc->t ? sc->t[j] : 0;
		j++;
		k++;
	}
	r = pack_build(e, t, k, times, &m->p);
out:
	free(e);
	free(t);
	if (r < 0)
		merged_free(m);
	return r;
}

/* Index [ix.tail_off, end) of fd and add it to the index (update_mu held).
 * On success fd becomes the store's fd (the old one is closed if it
 * differs); on failure the caller still owns fd.  *need_full: the old
 * unterminated last line was a record and is not the same record now, so
 * only a full re-index is right (returns -EAGAIN then). */
static int extend_locked(struct store *s, int fd, const struct stat *st,
			 struct store_change *chg, bool *need_full)
{
	struct idx *ix = &s->ix;
	struct scan sc = { .flags = s->flags };
	bool times = s->flags & STORE_TIMES;
	struct merged m = { 0 };
	struct derived_batch b;
	void *plan[DERIVED_COUNT] = { 0 };
	size_t nskip = ix->nskip;
	uint64_t hidden, lines = ix->lines, records = ix->records;
	uint64_t beyond = ix->beyond;
	uint64_t last_off = ix->last_off, last_tag = ix->last_tag;
	struct shape sh = { 0 };
	bool append, changed;
	unsigned k;
	int r, oldfd = -1;

	*need_full = false;
	sc.lineno = ix->plines;
	r = scan_file(&sc, fd, ix->tail_off, (uint64_t)st->st_size, s->path);
	if (r < 0)
		goto out;
	/* Take back what the old unterminated last line contributed. */
	if (ix->tail == TAIL_SKIPPED) {
		lines--;
		nskip--;
		if (ix->tail_beyond)
			beyond--;
	} else if (ix->tail == TAIL_RECORD) {
		if (!sc.n || sc.e[0].lineno != ix->plines + 1 ||
		    sc.e[0].off != ix->tail_off ||
		    sc.e[0].len != ix->tail_len ||
		    sc.e[0].iter != ix->tail_iter) {
			*need_full = true;
			r = -EAGAIN;
			goto out;
		}
		/* The same record, now terminated: already in the index. */
		memmove(sc.e, sc.e + 1, (sc.n - 1) * sizeof(*sc.e));
		if (sc.t)
			memmove(sc.t, sc.t + 1, (sc.n - 1) * sizeof(*sc.t));
		sc.n--;
		sc.lines--;
		sc.records--;
		/* Its shape is in already; reading it twice changes nothing
		 * but the count. */
		sc.sh.records--;
	}
	r = shape_merge(&ix->sh, &sc.sh, &sh);
	if (r < 0)
		goto out;
	r = scan_dedup(&sc, &hidden);
	if (r < 0)
		goto out;
	append = !ix->p.n || !sc.n ||
		 sc.e[0].iter > pack_iter(&ix->p, ix->p.n - 1);
	if (!append) {
		r = merge_build(ix, &sc, times, &m);
		if (r < 0)
			goto out;
	}
	changed = sc.n || sc.end != ix->size;
	if (changed) {
		r = change_set(chg, false, sc.e, sc.n);
		if (r < 0)
			goto out;
	}
	if (sc.any) {
		last_off = sc.last_off;
		r = range_tag(fd, last_off, sc.end, &last_tag);
		if (r < 0)
			goto out;
	}
	if (sc.n) {
		b = (struct derived_batch){ fd, m.gone, m.ngone, sc.e, sc.n,
					    s->flags & STORE_VALIDATE };
		views_prepare(s, &b, plan);
	}

	/* The one way pack_append fails, ruled out before the lock. */
	if (sc.end > PACK_SIZE_MAX) {
		r = -EFBIG;
		log_err("store: %s: over %llu bytes, too large to index",
			s->path, (unsigned long long)PACK_SIZE_MAX);
		goto out;
	}
	wr_lock(s);
	if (append)
		r = pack_reserve(&ix->p, sc.n);
	if (!r && nskip + sc.nskip > ix->skipcap)
		r = store_grow((void **)&ix->skip, &ix->skipcap,
			       nskip + sc.nskip, sizeof(*ix->skip));
	if (r < 0) {
		un_lock(s);
		goto out;
	}
	/* From here on nothing fails (a view that cannot take the batch is
	 * dropped and rebuilt on its next use). */
	if (append) {
		pack_append(&ix->p, sc.e, sc.t, sc.n);
	} else {
		struct pack t = ix->p;

		ix->p = m.p;
		m.p = t;
	}
	if (sc.n) {
		views_apply(s, plan);
		memset(plan, 0, sizeof(plan));
	}
	if (sc.nskip)
		memcpy(ix->skip + nskip, sc.skip, sc.nskip * sizeof(*sc.skip));
	ix->nskip = nskip + sc.nskip;
	ix->lines = lines + sc.lines;
	ix->records = records + sc.records;
	ix->beyond = beyond + sc.beyond;
	ix->tail_beyond = sc.tail_beyond;
	{
		struct shape t = ix->sh;

		ix->sh = sh;
		sh = t;
	}
	ix->dups += hidden + m.ngone;
	ix->plines = sc.tail == TAIL_NONE ? sc.lineno : sc.lineno - 1;
	ix->tail_off = sc.tail_off;
	ix->tail = sc.tail;
	ix->tail_iter = sc.tail_iter;
	ix->tail_len = sc.tail_len;
	ix->size = sc.end;
	ix->last_off = last_off;
	ix->last_tag = last_tag;
	if (changed)
		s->generation++;
	if (s->fd != fd)
		oldfd = s->fd;
	s->fd = fd;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->mtim = st->st_mtim;
	un_lock(s);
	if (oldfd >= 0)
		close(oldfd);
out:
	for (k = 0; k < DERIVED_COUNT; k++)
		if (plan[k])
			derived_views[k]->plan_free(plan[k]);
	if (r < 0)
		store_change_free(chg);
	shape_free(&sh);
	merged_free(&m);
	scan_free(&sc);
	return r;
}

/* --- refresh and adopt ---------------------------------------------------- */

/* Do the first `len` bytes of a and b agree? */
static int same_prefix(int a, int b, uint64_t len, bool *same)
{
	char *x = malloc(CMP_CHUNK), *y = malloc(CMP_CHUNK);
	uint64_t off = 0;
	int r = 0;

	*same = true;
	if (!x || !y) {
		r = -ENOMEM;
		goto out;
	}
	while (off < len && *same) {
		size_t n = len - off < CMP_CHUNK ? (size_t)(len - off) : CMP_CHUNK;

		r = fileio_pread_full(a, x, n, off);
		if (r == 0)
			r = fileio_pread_full(b, y, n, off);
		if (r < 0)
			goto out;
		*same = memcmp(x, y, n) == 0;
		off += n;
	}
out:
	free(x);
	free(y);
	return r;
}

static int open_path(const char *path, int *fd, struct stat *st)
{
	int r;

	/* O_NONBLOCK: a FIFO at the path must be an error, not a hang. */
	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (*fd < 0)
		return -errno;
	if (fstat(*fd, st) < 0) {
		r = -errno;
		close(*fd);
		*fd = -1;
		errno = -r;
		return r;
	}
	if (!S_ISREG(st->st_mode)) {
		close(*fd);
		*fd = -1;
		return S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
	}
	return 0;
}

/* Add what one refresh or adopt found to s->unread (update_mu held) and
 * free it.  A merge that cannot allocate widens to "everything changed",
 * never to "nothing". */
static void change_note(struct store *s, struct store_change *found)
{
	struct store_change *u = &s->unread;
	int64_t *v;

	if (found->changed) {
		u->changed = true;
		u->lost |= found->lost;
		if (found->reset || u->n + found->n > UNREAD_MAX)
			u->reset = true;
		if (u->reset) {
			free(u->iters);
			u->iters = NULL;
			u->n = 0;
		} else if (found->n) {
			v = realloc(u->iters,
				    (u->n + found->n) * sizeof(*v));
			if (v) {
				memcpy(v + u->n, found->iters,
				       found->n * sizeof(*v));
				u->iters = v;
				u->n += found->n;
			} else {
				free(u->iters);
				u->iters = NULL;
				u->n = 0;
				u->reset = true;
			}
		}
	}
	store_change_free(found);
}

int store_changes_take(struct store *s, struct store_change *chg)
{
	up_lock(s);
	*chg = s->unread;
	memset(&s->unread, 0, sizeof(s->unread));
	up_unlock(s);
	return 0;
}

/* --- the quick index and its validation ----------------------------------- */

/* Index fd quickly (STORE_LAZY) and install it as pending; the store is
 * new, so nothing is compared, kept or reported.  Takes fd on success. */
static int quick_locked(struct store *s, int fd, const struct stat *st)
{
	struct scan sc = { 0 };
	struct idx nix;
	int r;

	r = scan_quick(&sc, fd, (uint64_t)st->st_size, s->path);
	if (!r)
		r = idx_from_scan(&sc, &nix);
	scan_free(&sc);
	if (r < 0)
		return r;
	wr_lock(s);
	s->ix = nix;
	s->fd = fd;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->mtim = st->st_mtim;
	s->pending = true;
	un_lock(s);
	return 0;
}

/* Do entries a and b show the same line the same way?  A line the quick
 * index trusted with one code key that has two is not the same: views
 * read it again, to its end. */
static bool ent_same(const struct ent *a, const struct ent *b)
{
	return a->off == b->off && a->len == b->len &&
	       a->replaced == b->replaced && a->code_dup == b->code_dup;
}

/* What differs between the quick index q and the exact one x: the numbers
 * whose shown line differs (gone, new, or another line), ascending, into
 * chg, and the same as the derived views' batch: d->del the numbers q
 * shows, d->add x's entries of the numbers x shows (d->gone unused). */
static int pending_diff(const struct idx *q, const struct idx *x,
			struct store_change *chg, struct diff *d)
{
	size_t i, j, n, ndel, nadd, pass;
	int64_t *v = NULL;

	memset(chg, 0, sizeof(*chg));
	memset(d, 0, sizeof(*d));
	/* Pass 0 counts, pass 1 fills: the usual answer is none. */
	for (pass = 0; pass < 2; pass++) {
		for (i = j = n = ndel = nadd = 0; i < q->p.n || j < x->p.n;) {
			struct ent ae, be, *a = ent_at(q, i, &ae),
					   *b = ent_at(x, j, &be);

			if (a && b && a->iter == b->iter && ent_same(a, b)) {
				i++;
				j++;
				continue;
			}
			if (a && b && a->iter > b->iter)
				a = NULL;
			else if (a && b && a->iter < b->iter)
				b = NULL;
			if (v) {
				v[n] = a ? a->iter : b->iter;
				if (a)
					d->del[ndel] = a->iter;
				if (b)
					d->add[nadd] = *b;
			}
			n++;
			ndel += a != NULL;
			nadd += b != NULL;
			i += a != NULL;
			j += b != NULL;
		}
		if (!n || v)
			break;
		v = malloc(n * sizeof(*v));
		d->del = malloc((ndel + 1) * sizeof(*d->del));
		d->add = malloc((nadd + 1) * sizeof(*d->add));
		if (!v || !d->del || !d->add) {
			free(v);
			diff_free(d);
			return -ENOMEM;
		}
	}
	chg->changed = n > 0;
	chg->iters = v;
	chg->n = v ? n : 0;
	d->ndel = v ? ndel : 0;
	d->nadd = v ? nadd : 0;
	return 0;
}

/* The exact index of [0, size) of fd by the store's flags (no lock needed:
 * it reads only fd and s's immutable fields).  `cancel` (may be NULL): the
 * validation thread's stop flag, -ECANCELED. */
static int exact_scan(struct store *s, int fd, uint64_t size,
		      const _Atomic bool *cancel, struct idx *nix)
{
	struct scan sc = { .flags = s->flags, .cancel = cancel };
	int r;

	r = scan_file(&sc, fd, 0, size, s->path);
	if (!r)
		r = idx_from_scan(&sc, nix);
	scan_free(&sc);
	if (r < 0)
		return r;
	r = range_tag(fd, nix->last_off, nix->size, &nix->last_tag);
	if (r < 0)
		idx_free(nix);
	return r;
}

/* Replace the pending quick index with nix, its exact index (update_mu
 * held; takes nix).  Views built on the quick index take the difference
 * as one batch; the change log gets it too. */
static int exact_install_locked(struct store *s, struct idx *nix,
				bool *changed)
{
	struct store_change chg;
	struct diff d;
	struct idx old;
	void *plan[DERIVED_COUNT] = { NULL };
	size_t more;
	int r;

	r = pending_diff(&s->ix, nix, &chg, &d);
	if (r < 0) {
		idx_free(nix);
		return r;
	}
	if (chg.changed) {
		struct derived_batch b = { s->fd, d.del, d.ndel, d.add,
					   d.nadd, s->flags & STORE_VALIDATE };

		views_prepare(s, &b, plan);
	}
	wr_lock(s);
	old = s->ix;
	s->ix = *nix;
	s->pending = false;
	if (chg.changed) {
		s->generation++;
		views_apply(s, plan);
	}
	un_lock(s);
	diff_free(&d);
	more = s->ix.nskip > old.nskip ? s->ix.nskip - old.nskip : 0;
	idx_free(&old);
	if (changed)
		*changed = chg.changed;
	/* The open reported the quick index's skipped lines. */
	if (more)
		log_warn("%s: %zu more line%s not shown, found by the full "
			 "validation: not a JSON object with an iteration "
			 "number", s->path, more, more == 1 ? "" : "s");
	change_note(s, &chg);
	return 0;
}

/* The full scan of a pending store's indexed bytes, installed (update_mu
 * held): what everything that needs the exact index calls first. */
static int validate_locked(struct store *s, bool *changed)
{
	struct idx nix;
	int r;

	if (changed)
		*changed = false;
	if (!s->pending)
		return 0;
	r = exact_scan(s, s->fd, s->ix.size, NULL, &nix);
	if (!r)
		r = exact_install_locked(s, &nix, changed);
	if (r < 0)
		log_err("store: validating %s: %s", s->path, strerror(-r));
	return r;
}

int store_validate(struct store *s, bool *changed)
{
	int r;

	up_lock(s);
	r = validate_locked(s, changed);
	up_unlock(s);
	return r;
}

/* The validation thread's scan, on a thread of its own at SCHED_IDLE: it
 * takes only CPU time no request wants, so a view built on the quick index
 * meanwhile runs at full speed.  A thread of its own because an
 * unprivileged thread may enter SCHED_IDLE but never leave it (RLIMIT_NICE
 * is 0 by default), and the install that follows takes update_mu: a
 * starved holder would hold up commits. */
struct vscan {
	struct store *s;
	int fd;
	uint64_t size;
	struct idx nix;
	int r;
};

static void *vscan_main(void *arg)
{
	struct sched_param sp = { .sched_priority = 0 };
	struct vscan *v = arg;
	int r;

	r = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	if (r)
		log_debug("store: %s: validating at normal priority (%s)",
			  v->s->path, strerror(r));
	v->r = exact_scan(v->s, v->fd, v->size, &v->s->vstop, &v->nix);
	return NULL;
}

/* The validation thread: the scan reads a duplicate of the store's fd
 * with no lock held (a refresh or a lookup that needs the exact index
 * meanwhile validates on its own, and this result is then dropped). */
static void *validate_main(void *arg)
{
	struct store *s = arg;
	struct vscan v = { .s = s, .fd = -1 };
	bool changed = false, pending;
	pthread_t th;
	int r;

	up_lock(s);
	pending = s->pending;
	if (pending) {
		v.fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
		v.size = s->ix.size;
	}
	up_unlock(s);
	if (!pending)
		return NULL;
	if (v.fd < 0) {
		r = -errno;
		goto out;
	}
	if (pthread_create(&th, NULL, vscan_main, &v) == 0)
		pthread_join(th, NULL);
	else
		v.r = exact_scan(s, v.fd, v.size, &s->vstop, &v.nix);
	close(v.fd);
	r = v.r;
	if (r < 0)
		goto out;
	up_lock(s);
	if (s->pending)
		r = exact_install_locked(s, &v.nix, &changed);
	else
		idx_free(&v.nix);
	up_unlock(s);
out:
	if (r < 0 && r != -ECANCELED)
		log_err("store: validating %s: %s", s->path, strerror(-r));
	if (!r && changed && s->vfn)
		s->vfn(s->varg);
	return NULL;
}

int store_validate_start(struct store *s, store_validated_fn fn, void *arg)
{
	bool pending;
	int r;

	if (s->vthread_on)
		return -EBUSY;
	rd_lock(s);
	pending = s->pending;
	un_lock(s);
	if (!pending)
		return 0;
	s->vfn = fn;
	s->varg = arg;
	atomic_store(&s->vstop, false);
	r = -pthread_create(&s->vthread, NULL, validate_main, s);
	if (r < 0)
		log_warn("store: %s: no validation thread (%s); validating "
			 "when first needed", s->path, strerror(-r));
	else
		s->vthread_on = true;
	return r;
}

void store_validate_stop(struct store *s)
{
	if (!s->vthread_on)
		return;
	atomic_store(&s->vstop, true);
	pthread_join(s->vthread, NULL);
	s->vthread_on = false;
	atomic_store(&s->vstop, false);
}

/* What the file at the path is now, against the index (update_mu held). */
static int refresh_locked(struct store *s, struct store_change *found)
{
	struct stat st;
	bool same_file, prefix = false, need_full = false, full;
	int r, fd;

	/* Extensions build on the exact index; one that cannot be had makes
	 * this a full re-index. */
	full = validate_locked(s, NULL) < 0;
	r = open_path(s->path, &fd, &st);
	if (r == -ENOENT) {
		if (s->fd >= 0 || s->ix.size)
			empty_locked(s, found);
		return 0;
	}
	if (r < 0) {
		log_err("store: open %s: %s", s->path, strerror(-r));
		return r;
	}
	same_file = s->fd >= 0 && st.st_dev == s->dev && st.st_ino == s->ino;
	if (same_file) {
		/* Keep the fd we indexed; it is the same file. */
		close(fd);
		fd = s->fd;
		if (!full && (uint64_t)st.st_size == s->ix.size &&
		    st.st_mtim.tv_sec == s->mtim.tv_sec &&
		    st.st_mtim.tv_nsec == s->mtim.tv_nsec)
			return 0;
		/* Grown in place: an extension if the last indexed line is
		 * still there.  Same size with a new mtime, or shrunk:
		 * rewritten in place. */
		if ((uint64_t)st.st_size > s->ix.size) {
			r = tail_holds(&s->ix, fd, (uint64_t)st.st_size,
				       &prefix);
			if (r < 0) {
				log_err("store: read %s: %s", s->path,
					strerror(-r));
				return r;
			}
		}
	} else if (s->fd < 0) {
		prefix = true;
	} else if ((uint64_t)st.st_size >= s->ix.size) {
		r = same_prefix(s->fd, fd, s->ix.size, &prefix);
		if (r < 0) {
			log_err("store: compare %s with the indexed file: %s",
				s->path, strerror(-r));
			close(fd);
			return r;
		}
	}
	if (prefix && !full) {
		r = extend_locked(s, fd, &st, found, &need_full);
		if (!need_full) {
			if (r < 0 && fd != s->fd)
				close(fd);
			return r;
		}
	}
	r = reindex_locked(s, fd, &st, found);
	if (r < 0 && fd != s->fd)
		close(fd);
	return r;
}

int store_refresh(struct store *s)
{
	struct store_change found = { 0 };
	int r;

	up_lock(s);
	r = refresh_locked(s, &found);
	change_note(s, &found);
	up_unlock(s);
	return r;
}

void store_change_free(struct store_change *chg)
{
	if (!chg)
		return;
	free(chg->iters);
	memset(chg, 0, sizeof(*chg));
}

int store_adopt(struct store *s, int newfd)
{
	struct store_change found = { 0 };
	struct stat st;
	bool ok = false, need_full = false, full;
	int r, fd;

	up_lock(s);
	full = validate_locked(s, NULL) < 0;
	fd = fcntl(newfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		log_err("store: adopt the file renamed over %s: %s", s->path,
			strerror(-r));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	r = tail_holds(&s->ix, fd, (uint64_t)st.st_size, &ok);
	if (r < 0) {
		log_err("store: read the file renamed over %s: %s", s->path,
			strerror(-r));
		close(fd);
		goto out;
	}
	if (ok && !full) {
		r = extend_locked(s, fd, &st, &found, &need_full);
		if (r < 0 && !need_full) {
			if (fd != s->fd)
				close(fd);
			goto out;
		}
	} else if (!ok) {
		log_warn("store: the file renamed over %s does not start with "
			 "the indexed content; indexing it whole", s->path);
	}
	if (!ok || full || need_full) {
		r = reindex_locked(s, fd, &st, &found);
		if (r < 0) {
			if (fd != s->fd)
				close(fd);
			goto out;
		}
	}
	/* A writer that ignores the lock may have replaced the store since
	 * the rename: compare it with what was just adopted. */
	change_note(s, &found);
	r = refresh_locked(s, &found);
out:
	change_note(s, &found);
	up_unlock(s);
	return r;
}

/* --- public --------------------------------------------------------------- */

int store_open(const char *path, unsigned flags, struct store **out)
{
	struct store_change found;
	pthread_rwlockattr_t attr;
	struct store *s;
	struct stat st;
	int r, fd;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->flags = flags;
	s->path = strdup(path);
	if (!s->path) {
		r = -ENOMEM;
		goto out_free;
	}
	if (pthread_mutex_init(&s->update_mu, NULL) != 0) {
		r = -ENOMEM;
		goto out_path;
	}
	/* glibc's default lets a stream of readers starve the refresher, so
	 * writers go first (no function here takes the lock recursively). */
	if (pthread_rwlockattr_init(&attr) != 0) {
		r = -ENOMEM;
		goto out_mutex;
	}
	if (pthread_rwlockattr_setkind_np(&attr,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP) != 0 ||
	    pthread_rwlock_init(&s->lock, &attr) != 0) {
		pthread_rwlockattr_destroy(&attr);
		r = -ENOMEM;
		goto out_mutex;
	}
	pthread_rwlockattr_destroy(&attr);
	r = open_path(path, &fd, &st);
	if (r == -ENOENT) {
		*out = s;
		return 0;
	}
	if (r < 0) {
		log_err("store: open %s: %s", path, strerror(-r));
		goto out_rwlock;
	}
	if ((flags & STORE_LAZY) ||
	    ((flags & STORE_LAZY_LARGE) &&
	     (uint64_t)st.st_size >= STORE_LAZY_MIN)) {
		r = quick_locked(s, fd, &st);
	} else {
		r = reindex_locked(s, fd, &st, &found);
		store_change_free(&found);
	}
	if (r < 0) {
		close(fd);
		goto out_rwlock;
	}
	s->generation = 1;
	*out = s;
	return 0;
out_rwlock:
	pthread_rwlock_destroy(&s->lock);
out_mutex:
	pthread_mutex_destroy(&s->update_mu);
out_path:
	free(s->path);
out_free:
	free(s);
	return r;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_validate_stop(s);
	views_reset(s);
	idx_free(&s->ix);
	keepdir_close(s->lost);
	if (s->fd >= 0)
		close(s->fd);
	pthread_rwlock_destroy(&s->lock);
	pthread_mutex_destroy(&s->update_mu);
	store_change_free(&s->unread);
	free(s->path);
	free(s);
}

bool store_validates(const struct store *s)
{
	return (s->flags & STORE_VALIDATE) != 0;
}

const char *store_path(const struct store *s)
{
	return s->path;
}

static uint64_t index_bytes(const struct store *s)
{
	const struct idx *ix = &s->ix;
	uint64_t b = sizeof(*s);
	unsigned k;

	b += pack_bytes(&ix->p);
	b += ix->skipcap * sizeof(*ix->skip);
	for (k = 0; k < DERIVED_COUNT; k++)
		if (s->views[k].st)
			b += derived_views[k]->bytes(s->views[k].st);
	return b;
}

int store_stats(struct store *s, struct store_stats *st)
{
	rd_lock(s);
	st->lines = s->ix.lines;
	st->records = s->ix.records;
	st->iterations = s->ix.p.n;
	st->skipped = s->ix.nskip;
	st->beyond = s->ix.beyond;
	st->duplicates = s->ix.dups;
	st->file_size = s->ix.size;
	st->index_bytes = index_bytes(s);
	st->generation = s->generation;
	st->pending = s->pending;
	un_lock(s);
	return 0;
}

int store_skipped(struct store *s, uint64_t *linenos, size_t max,
		  size_t *total)
{
	rd_lock(s);
	*total = s->ix.nskip;
	if (max > s->ix.nskip)
		max = s->ix.nskip;
	if (max)
		memcpy(linenos, s->ix.skip, max * sizeof(*linenos));
	un_lock(s);
	return 0;
}

/* A pending store's line of e, read and checked as the full scan would
 * (store->lock held shared): *ok when it is the record of e->iter; then
 * *usec is its timestamp (STORE_TIMES) and *tag its hash_tag. */
static int pending_check(struct store *s, const struct ent *e, bool *ok,
			 int64_t *usec, uint64_t *tag)
{
	char *p = malloc(e->len ? e->len : 1);
	int r;

	if (!p)
		return -ENOMEM;
	r = fileio_pread_full(s->fd, p, e->len, e->off);
	if (!r)
		r = scan_check(p, e->len, e->iter, s->flags & STORE_TIMES, ok,
			       usec);
	if (!r && tag)
		*tag = hash_tag(p, e->len);
	free(p);
	return r;
}

int store_lookup(struct store *s, int64_t iter, struct store_rec *rec)
{
	struct ent ent, *e = &ent;
	bool found, ok;
	size_t i;
	int r;

again:
	r = 0;
	rd_lock(s);
	i = find_iter(&s->ix, iter, &found);
	if (!found && s->pending)
		goto exact;
	if (!found) {
		r = -ENOENT;
		goto out;
	}
	pack_get(&s->ix.p, i, e, &rec->mtime);
	rec->iter = iter;
	rec->lineno = e->lineno;
	rec->offset = e->off;
	rec->len = e->len;
	rec->replaced = e->replaced;
	rec->tag = 0;
	if (s->pending) {
		/* The quick index may hold a line that is no record, or read
		 * a line's number wrong (a later duplicate key): the exact
		 * index decides then, and for a number it lacks. */
		r = pending_check(s, e, &ok, &rec->mtime,
				  e->replaced ? &rec->tag : NULL);
		if (!r && !ok)
			goto exact;
		goto out;
	}
	/* Read under the same lock as the place: the tag is of the line
	 * this lookup found. */
	if (e->replaced)
		r = range_tag(s->fd, e->off, e->off + e->len, &rec->tag);
out:
	un_lock(s);
	return r;
exact:
	un_lock(s);
	r = store_validate(s, NULL);
	if (r < 0)
		return r;
	goto again;
}

int store_highest(struct store *s, int64_t *iter, bool *found)
{
	rd_lock(s);
	*found = s->ix.p.n > 0;
	if (*found)
		*iter = pack_iter(&s->ix.p, s->ix.p.n - 1);
	un_lock(s);
	return 0;
}

int store_list(struct store *s, size_t start, int64_t *out, size_t max,
	       size_t *n)
{
	rd_lock(s);
	*n = start < s->ix.p.n ? pack_iters(&s->ix.p, start, out, max) : 0;
	un_lock(s);
	return 0;
}

int store_read(struct store *s, int64_t iter, struct buf *line)
{
	struct ent e;
	bool found, ok;
	int64_t usec;
	size_t i;
	int r;

again:
	rd_lock(s);
	i = find_iter(&s->ix, iter, &found);
	if (!found && s->pending)
		goto exact;
	if (!found) {
		r = -ENOENT;
		goto out;
	}
	pack_get(&s->ix.p, i, &e, NULL);
	r = buf_reserve(line, e.len);
	if (r < 0)
		goto out;
	r = fileio_pread_full(s->fd, line->data + line->len, e.len, e.off);
	if (r < 0)
		goto out;
	if (s->pending) {
		/* As store_lookup: the exact index decides a line the quick
		 * one may have misread. */
		r = scan_check(line->data + line->len, e.len, iter, false, &ok,
			       &usec);
		if (!r && !ok)
			goto exact;
		if (r < 0)
			goto out;
	}
	line->len += e.len;
	line->data[line->len] = '\0';
out:
	un_lock(s);
	if (line->data)
		line->data[line->len] = '\0';
	return r;
exact:
	un_lock(s);
	r = store_validate(s, NULL);
	if (r < 0)
		return r;
	goto again;
}

/* --- shape public --------------------------------------------------------- */

int store_shape(struct store *s, struct store_shape *out)
{
	const struct shape *sh;
	const struct record_field_def *d;
	size_t i;
	unsigned f;
	int r;

	memset(out, 0, sizeof(*out));
	/* Commits check drops against it: only the exact index will do. */
	r = store_validate(s, NULL);
	if (r < 0)
		return r;
	rd_lock(s);
	sh = &s->ix.sh;
	out->records = sh->records;
	for (f = 0; f < FIELD_COUNT; f++) {
		d = record_field_def((enum record_field)f);
		if (sh->alias[f])
			out->dialect[f] = d->key[sh->alias[f] - 1];
	}
	if (sh->n) {
		out->f = calloc(sh->n, sizeof(*out->f));
		if (!out->f)
			r = -ENOMEM;
	}
	for (i = 0; i < sh->n && !r; i++) {
		const struct store_shape_field *x = &sh->f[i];
		const char *key = x->key;

		if (x->field >= 0)
			key = out->dialect[x->field];
		out->f[i] = *x;
		out->f[i].key = strdup(key ? key : "");
		out->n++;
		if (!out->f[i].key)
			r = -ENOMEM;
	}
	un_lock(s);
	if (r < 0)
		store_shape_free(out);
	return r;
}

void store_shape_free(struct store_shape *sh)
{
	size_t i;

	for (i = 0; i < sh->n; i++)
		free(sh->f[i].key);
	free(sh->f);
	memset(sh, 0, sizeof(*sh));
}
