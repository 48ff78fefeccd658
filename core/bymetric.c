/* bymetric.c - the by-metric view: one ranking per numeric metric
 * (store.h's store_metric_names, store_metric_rank; the hook in derived.h).
 *
 * What is ranked: for every shown record that did not fail (its success
 * meaning, record.h's success row, is not false), every top-level member
 * of its `metrics` object whose value is a JSON number other than NaN
 * (Infinity and -Infinity rank first and last); with duplicate keys the
 * last member counts, as in Python.  A metric is a key ranked in at least
 * one record.  Order: highest value first (compared as doubles), ties by
 * lower iteration first.  Names are the decoded keys, sorted bytewise; a
 * key that decodes to a NUL byte is not a metric (no file name can hold
 * it).
 *
 * State: the metrics sorted by name, each with its ranking as (value,
 * iteration) pairs: 16 bytes per ranked (record, metric).  A batch builds
 * new rankings by merging (the old minus `gone`, plus the added records'
 * values sorted), so readers keep the old state until apply swaps it in:
 * a batch costs a copy of every ranking.
 *
 * Building: the first look builds every ranking from every record, so
 * prepare is where the time goes.  Each record is read on derived_map's
 * threads with one walk of its line (read_metrics), its metrics' names
 * copied once per record into one buffer and its numbers turned into
 * doubles by jtext_number's fast path.  Then, on one thread, each name is
 * interned (a hash table: one allocation and one compare per distinct
 * name, not per value; none when a record names the same metrics as the
 * one before, as records of one history do), each value appended to its
 * metric's pairs, and each metric's pairs sorted apart by a radix sort of
 * the value's bits: no string compare and no comparison callback touches
 * the ranked values.
 *
 * Contents: state; reading one record; interning names; prepare (sort,
 * merge); apply; public.
 */
#include "derived.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hash.h"
#include "jtext.h"
#include "record.h"

struct rk {
	double v;
	int64_t iter;
};

struct metric {
	char *name;
	struct rk *r;
	size_t n;
};

struct bymetric {
	struct metric *m;     /* by name, bytewise */
	size_t n;
	uint64_t bytes;
};

static void metrics_free(struct metric *m, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].r);
	}
	free(m);
}

static void *bm_create(void)
{
	return calloc(1, sizeof(struct bymetric));
}

static void bm_destroy(void *p)
{
	struct bymetric *b = p;

	if (!b)
		return;
	metrics_free(b->m, b->n);
	free(b);
}

static uint64_t bm_bytes(const void *p)
{
	const struct bymetric *b = p;

	return sizeof(*b) + b->bytes;
}

/* Higher value first, then lower iteration. */
static int cmp_rk(const struct rk *a, const struct rk *b)
{
	if (a->v != b->v)
		return a->v > b->v ? -1 : 1;
	return a->iter < b->iter ? -1 : a->iter > b->iter;
}

/* --- reading one record --------------------------------------------------- */

/* One member of one record's metrics, in member order: its decoded name at
 * names[off, off + len) of its record, and its value when `num` (a number
 * other than NaN).  Members that are no number are kept too: a later
 * duplicate key hides an earlier number. */
struct mval {
	uint32_t off, len; /* a line is under 4 GiB (scan.c) */
	double v;
	bool num;
};

/* Room in *p for element n, doubling from 16: store_grow's first 64 would
 * be most of the memory of one record's few members.  Returns 0 or
 * -ENOMEM. */
static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	size_t c = *cap ? 2 * *cap : 16;
	void *q;

	if (n < *cap)
		return 0;
	if (c > SIZE_MAX / size)
		return -ENOMEM;
	q = realloc(*p, c * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}

/* What one record contributes; filled on derived_map's threads. */
struct rec {
	struct mval *v;
	size_t n, cap;
	struct buf names;
};

static void rec_free(struct rec *rc)
{
	free(rc->v);
	buf_free(&rc->names);
	memset(rc, 0, sizeof(*rc));
}

static int member_cb(struct jtext_span key, struct jtext_span val, void *arg)
{
	struct rec *rc = arg;
	size_t off = rc->names.len;
	bool num = jtext_type(val) == JTEXT_NUMBER;
	double d = 0;
	int r;

	/* A key without a backslash is its own decoded name. */
	if (memchr(key.p + 1, '\\', key.len - 2)) {
		r = jtext_string_decode(key, &rc->names);
		if (r == -ENOMEM)
			return r;
		/* A name no file can carry is no metric. */
		if (r < 0 || (rc->names.len > off &&
			      memchr(rc->names.data + off, '\0',
				     rc->names.len - off))) {
			rc->names.len = off;
			return 0;
		}
	} else if (key.len > 2) {
		r = buf_append(&rc->names, key.p + 1, key.len - 2);
		if (r < 0)
			return r;
	}
	r = grow((void **)&rc->v, &rc->cap, rc->n, sizeof(*rc->v));
	if (r < 0)
		return r;
	if (num) {
		r = jtext_number(val, &d);
		if (r < 0)
			return r;
		num = !isnan(d);
	}
	rc->v[rc->n++] = (struct mval){ (uint32_t)off,
					(uint32_t)(rc->names.len - off), d,
					num };
	return 0;
}

/* The members of one record's metrics into *out (a struct rec): one walk
 * of the line finds its success and metrics fields, validating unless the
 * store has validated the line already (*arg: derived_batch.valid); the
 * metrics object itself is always walked validating.  A run that failed, a
 * line that is not JSON and a record without a metrics object add
 * nothing. */
static int read_metrics(const char *line, size_t len, const struct ent *e,
			void *out, void *arg)
{
	static const enum record_field want[2] = { FIELD_SUCCESS,
						   FIELD_METRICS };
	const bool *valid = arg;
	struct rec *rc = out;
	struct jtext_span v[2];
	bool found[2];
	int r;

	(void)e;
	r = record_fields(line, len, *valid, want, 2, v, found);
	if (r < 0)
		return 0;
	if ((found[0] && v[0].p[0] == 'f') || !found[1] ||
	    jtext_type(v[1]) != JTEXT_OBJECT)
		return 0;
	r = jtext_members(v[1], member_cb, rc);
	if (r < 0) {
		rec_free(rc);
		return r == -EINVAL ? 0 : r;
	}
	return 0;
}

/* --- interning names ------------------------------------------------------ */

/* A metric of one batch: its name and its ranked pairs, in the order the
 * records came (ascending iteration) until sorted. */
struct nmetric {
	char *name;
	size_t len;
	uint64_t hash;
	struct rk *r;
	size_t n, cap;
	size_t seen; /* 1 + the last record that named it */
};

/* The batch's metrics by name: an open-addressing table of indices into
 * m[], so that each distinct name is allocated and compared once, not once
 * per value. */
struct names {
	struct nmetric *m;
	size_t n, cap;
	size_t *slot; /* index + 1; 0: empty */
	size_t nslot; /* a power of two, at most half full */
};

static void names_free(struct names *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->m[i].name);
		free(t->m[i].r);
	}
	free(t->m);
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

static int names_rehash(struct names *t)
{
	size_t nslot = t->nslot ? 2 * t->nslot : 64, i, k;
	size_t *slot = calloc(nslot, sizeof(*slot));

	if (!slot)
		return -ENOMEM;
	for (i = 0; i < t->n; i++) {
		for (k = t->m[i].hash & (nslot - 1); slot[k];
		     k = (k + 1) & (nslot - 1))
			;
		slot[k] = i + 1;
	}
	free(t->slot);
	t->slot = slot;
	t->nslot = nslot;
	return 0;
}

/* *idx is the metric named p[0, len), added if new.  Returns 0 or
 * -ENOMEM. */
static int names_intern(struct names *t, const char *p, size_t len,
			size_t *idx)
{
	uint64_t h = hash_tag(p, len);
	struct nmetric *nm;
	size_t k;
	int r;

	if (2 * (t->n + 1) > t->nslot) {
		r = names_rehash(t);
		if (r < 0)
			return r;
	}
	for (k = h & (t->nslot - 1); t->slot[k]; k = (k + 1) & (t->nslot - 1)) {
		nm = &t->m[t->slot[k] - 1];
		if (nm->hash == h && nm->len == len &&
		    (!len || memcmp(nm->name, p, len) == 0)) {
			*idx = t->slot[k] - 1;
			return 0;
		}
	}
	r = store_grow((void **)&t->m, &t->cap, t->n + 1, sizeof(*t->m));
	if (r < 0)
		return r;
	nm = &t->m[t->n];
	memset(nm, 0, sizeof(*nm));
	nm->name = malloc(len + 1);
	if (!nm->name)
		return -ENOMEM;
	if (len)
		memcpy(nm->name, p, len);
	nm->name[len] = '\0';
	nm->len = len;
	nm->hash = h;
	t->slot[k] = ++t->n;
	*idx = t->n - 1;
	return 0;
}

/* The interned indices of the last record's names (names_add): records
 * of one history mostly carry the same metrics in the same order, and then
 * a memcmp of the names replaces a hash lookup per name. */
struct names_memo {
	const struct rec *last;
	size_t *idx;
	size_t cap;
};

/* Are a's names b's, member for member? */
static bool same_names(const struct rec *a, const struct rec *b)
{
	size_t j;

	if (a->n != b->n || a->names.len != b->names.len ||
	    (a->names.len &&
	     memcmp(a->names.data, b->names.data, a->names.len) != 0))
		return false;
	for (j = 0; j < a->n; j++)
		if (a->v[j].len != b->v[j].len)
			return false;
	return true;
}

/* Record i's values into their metrics: walking its members from the last,
 * the first one met of each name is the one that counts.  rc must stay
 * alive until the next call with the same memo. */
static int names_add(struct names *t, struct names_memo *mm,
		     const struct rec *rc, size_t i, int64_t iter)
{
	const char *names = rc->names.data ? rc->names.data : "";
	bool same = mm->last && same_names(rc, mm->last);
	struct nmetric *nm;
	size_t j, idx;
	int r;

	mm->last = NULL;
	r = store_grow((void **)&mm->idx, &mm->cap, rc->n, sizeof(*mm->idx));
	if (r < 0)
		return r;
	for (j = rc->n; j--;) {
		const struct mval *mv = &rc->v[j];

		if (!same) {
			r = names_intern(t, names + mv->off, mv->len,
					 &mm->idx[j]);
			if (r < 0)
				return r;
		}
		idx = mm->idx[j];
		nm = &t->m[idx];
		if (nm->seen == i + 1)
			continue;
		nm->seen = i + 1;
		if (!mv->num)
			continue;
		r = grow((void **)&nm->r, &nm->cap, nm->n, sizeof(*nm->r));
		if (r < 0)
			return r;
		nm->r[nm->n++] = (struct rk){ mv->v, iter };
	}
	mm->last = rc;
	return 0;
}

/* --- prepare -------------------------------------------------------------- */

/* A key whose ascending order is cmp_rk's order of values: highest value
 * first, -0 equal to 0 (as == has it); never NaN. */
static uint64_t rank_key(double v)
{
	uint64_t u;

	if (v == 0)
		v = 0;
	memcpy(&u, &v, sizeof(u));
	/* IEEE 754 bits as an unsigned total order, then reversed. */
	u = u >> 63 ? ~u : u | (1ULL << 63);
	return ~u;
}

/* Sort r[0..n) into cmp_rk's order, given pairs in ascending iteration:
 * a stable LSD radix sort by rank_key, a byte at a time, skipping the bytes
 * where every key agrees (most of the high ones), keeps equal values in
 * iteration order.  No comparisons: the first look sorts every ranked value
 * of the history.  Returns 0 or -ENOMEM. */
static int sort_ranking(struct rk *r, size_t n)
{
	struct rk *tmp, *src = r, *dst;
	size_t count[256], pos, i;
	unsigned shift, d;

	if (n < 2)
		return 0;
	tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	dst = tmp;
	for (shift = 0; shift < 64; shift += 8) {
		memset(count, 0, sizeof(count));
		for (i = 0; i < n; i++)
			count[rank_key(src[i].v) >> shift & 0xff]++;
		if (count[rank_key(src[0].v) >> shift & 0xff] == n)
			continue;
		for (d = 0, pos = 0; d < 256; d++) {
			size_t c = count[d];

			count[d] = pos;
			pos += c;
		}
		for (i = 0; i < n; i++)
			dst[count[rank_key(src[i].v) >> shift & 0xff]++] =
				src[i];
		dst = src;
		src = src == r ? tmp : r;
	}
	if (src != r)
		memcpy(r, src, n * sizeof(*r));
	free(tmp);
	return 0;
}

static int cmp_by_name(const void *a, const void *b)
{
	const struct nmetric *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static bool is_gone(const struct derived_batch *b, int64_t iter)
{
	size_t lo = 0, hi = b->ngone;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (b->gone[mid] < iter)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < b->ngone && b->gone[lo] == iter;
}

/* One new ranking: old minus gone, merged with add (sorted).  Without an
 * old ranking, add's pairs are taken over as they are. */
static int merge_metric(const struct metric *old, struct nmetric *add,
			const struct derived_batch *b, struct metric *out)
{
	size_t no = old ? old->n : 0, na = add ? add->n : 0;
	size_t i = 0, j = 0, k = 0;

	if (!old) {
		/* Shrink to what the state's size accounting counts. */
		out->r = realloc(add->r, (add->n + 1) * sizeof(*out->r));
		if (!out->r)
			return -ENOMEM;
		out->n = add->n;
		add->r = NULL;
		add->n = add->cap = 0;
		return 0;
	}
	out->r = malloc((no + na + 1) * sizeof(*out->r));
	if (!out->r)
		return -ENOMEM;
	while (i < no || j < na) {
		if (i < no && is_gone(b, old->r[i].iter)) {
			i++;
			continue;
		}
		if (j < na && (i >= no || cmp_rk(&add->r[j], &old->r[i]) < 0))
			out->r[k++] = add->r[j++];
		else
			out->r[k++] = old->r[i++];
	}
	out->n = k;
	return 0;
}

struct mplan {
	struct bymetric nb;
};

static void bm_plan_free(void *p)
{
	struct mplan *pl = p;

	if (!pl)
		return;
	metrics_free(pl->nb.m, pl->nb.n);
	free(pl);
}

/* The records of the batch into `t`, each metric's pairs sorted, and
 * *order the metrics of `t` sorted by name. */
static int collect(const struct derived_batch *b, struct names *t,
		   struct nmetric ***order)
{
	struct names_memo memo = { NULL, NULL, 0 };
	struct rec *per;
	size_t i;
	int r;

	per = calloc(b->nadd + 1, sizeof(*per));
	if (!per)
		return -ENOMEM;
	r = derived_map(b->fd, b->add, b->nadd, per, sizeof(*per),
			read_metrics, (void *)&b->valid);
	for (i = 0; !r && i < b->nadd; i++) {
		r = names_add(t, &memo, &per[i], i, b->add[i].iter);
		if (i)
			rec_free(&per[i - 1]);
	}
	for (i = 0; i < b->nadd; i++)
		rec_free(&per[i]);
	free(memo.idx);
	free(per);
	/* The records' scratch (a few hundred bytes each, from the reading
	 * threads' arenas) would stay in the heap: 30 MB at 100,000
	 * records. */
	malloc_trim(0);
	if (r < 0)
		return r;
	for (i = 0; i < t->n; i++) {
		r = sort_ranking(t->m[i].r, t->m[i].n);
		if (r < 0)
			return r;
	}
	*order = malloc((t->n + 1) * sizeof(**order));
	if (!*order)
		return -ENOMEM;
	for (i = 0; i < t->n; i++)
		(*order)[i] = &t->m[i];
	qsort(*order, t->n, sizeof(**order), cmp_by_name);
	return 0;
}

static int bm_prepare(const void *st, const struct derived_batch *b,
		      void **plan)
{
	const struct bymetric *old = st;
	struct names t = { 0 };
	struct mplan *pl = NULL;
	struct nmetric **order = NULL;
	size_t o, a;
	int r = -ENOMEM;

	pl = calloc(1, sizeof(*pl));
	if (!pl)
		goto out;
	r = collect(b, &t, &order);
	if (r < 0)
		goto out;
	r = -ENOMEM;
	pl->nb.m = calloc(old->n + t.n + 1, sizeof(*pl->nb.m));
	if (!pl->nb.m)
		goto out;
	/* Walk the old names and the batch's names together. */
	o = a = 0;
	while (o < old->n || a < t.n) {
		const struct metric *om = NULL;
		struct nmetric *am = NULL;
		struct metric *nm = &pl->nb.m[pl->nb.n];
		int c;

		c = o >= old->n ? 1 : a >= t.n ? -1 :
		    strcmp(old->m[o].name, order[a]->name);
		if (c <= 0)
			om = &old->m[o++];
		if (c >= 0)
			am = order[a++];
		if (!om && !am->n)
			continue;
		if (om) {
			nm->name = strdup(om->name);
			if (!nm->name)
				goto out;
		} else {
			nm->name = am->name;
			am->name = NULL;
		}
		pl->nb.n++;
		r = merge_metric(om, am, b, nm);
		if (r < 0)
			goto out;
		r = -ENOMEM;
		if (!nm->n) {
			free(nm->name);
			free(nm->r);
			pl->nb.n--;
			continue;
		}
		pl->nb.bytes += (nm->n + 1) * sizeof(*nm->r) +
				strlen(nm->name) + 1 + sizeof(*nm);
	}
	r = 0;
out:
	free(order);
	names_free(&t);
	if (r < 0) {
		bm_plan_free(pl);
		return r;
	}
	*plan = pl;
	return 0;
}

static int bm_apply(void *st, void *plan)
{
	struct bymetric *b = st;
	struct mplan *pl = plan;

	metrics_free(b->m, b->n);
	*b = pl->nb;
	memset(&pl->nb, 0, sizeof(pl->nb));
	bm_plan_free(pl);
	return 0;
}

const struct derived_ops derived_bymetric_ops = {
	.name = "by-metric",
	.create = bm_create,
	.destroy = bm_destroy,
	.prepare = bm_prepare,
	.apply = bm_apply,
	.plan_free = bm_plan_free,
	.bytes = bm_bytes,
};

/* --- public --------------------------------------------------------------- */

int store_metric_names(struct store *s, size_t start, char **names,
		       size_t max, size_t *n)
{
	const struct bymetric *b;
	size_t i;
	int r;

	*n = 0;
	r = store_view_rdlock(s, DERIVED_BYMETRIC, (const void **)&b);
	if (r < 0)
		return r;
	for (i = 0; i < max && start + i < b->n; i++) {
		names[i] = strdup(b->m[start + i].name);
		if (!names[i]) {
			r = -ENOMEM;
			break;
		}
	}
	store_view_unlock(s);
	if (r < 0) {
		while (i--)
			free(names[i]);
		return r;
	}
	*n = i;
	return 0;
}

int store_metric_rank(struct store *s, const char *name, size_t start,
		      int64_t *iters, size_t max, size_t *n, size_t *total)
{
	const struct bymetric *b;
	const struct metric *m;
	size_t lo = 0, hi, i;
	int r;

	*n = 0;
	r = store_view_rdlock(s, DERIVED_BYMETRIC, (const void **)&b);
	if (r < 0)
		return r;
	hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(b->m[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= b->n || strcmp(b->m[lo].name, name) != 0) {
		store_view_unlock(s);
		return -ENOENT;
	}
	m = &b->m[lo];
	for (i = 0; i < max && start + i < m->n; i++)
		iters[i] = m->r[start + i].iter;
	*n = i;
	*total = m->n;
	store_view_unlock(s);
	return 0;
}
