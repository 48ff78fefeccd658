/* bymetric.c - the by-metric view: one ranking per numeric metric
 * (store.h's store_metric_names, store_metric_rank; the hook in derived.h).
 *
 * What is ranked: for every shown record that did not fail (its success
 * meaning is not false; record_success), every top-level member of its
 * `metrics` object whose value is a JSON number other than NaN (Infinity
 * and -Infinity rank first and last); with duplicate keys the last member
 * counts, as in Python.  A metric is a key ranked in at least one record.
 * Order: highest value first (compared as doubles), ties by lower
 * iteration first.  Names are the decoded keys, sorted bytewise; a key
 * that decodes to a NUL byte is not a metric (no file name can hold it).
 *
 * State: the metrics sorted by name, each with its ranking as (value,
 * iteration) pairs: 16 bytes per ranked (record, metric).  A batch builds
 * new rankings by merging (the old minus `gone`, plus the added records'
 * values sorted), so readers keep the old state until apply swaps it in:
 * a batch costs a copy of every ranking.
 *
 * Contents: state; reading one record; prepare (merge); apply; public.
 */
#include "derived.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
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

/* One (metric, value) of one record; `seq` keeps member order for the
 * last-duplicate-wins rule. */
struct mval {
	char *name;
	double v;
	int64_t iter;
	size_t seq;
	bool num;
};

struct mlist {
	struct mval *v;
	size_t n, cap;
};

static int member_cb(struct jtext_span key, struct jtext_span val, void *arg)
{
	struct mlist *l = arg;
	struct buf name = BUF_INIT;
	bool num = jtext_type(val) == JTEXT_NUMBER;
	double d = 0;
	int r;

	r = jtext_string_decode(key, &name);
	if (r == -EINVAL)
		return 0;
	if (!r && name.len && memchr(name.data, '\0', name.len)) {
		buf_free(&name);
		return 0;
	}
	if (!r && !name.data)
		r = buf_putc(&name, '\0'); /* "": an empty C string */
	if (!r)
		r = store_grow((void **)&l->v, &l->cap, l->n + 1,
			       sizeof(*l->v));
	if (r < 0) {
		buf_free(&name);
		return r;
	}
	if (num) {
		/* jtext spans are not NUL-terminated; numbers are short. */
		char tmp[64];

		if (val.len < sizeof(tmp)) {
			memcpy(tmp, val.p, val.len);
			tmp[val.len] = '\0';
			d = strtod(tmp, NULL);
		} else {
			struct buf t = BUF_INIT;

			if (buf_append(&t, val.p, val.len) < 0) {
				buf_free(&name);
				return -ENOMEM;
			}
			d = strtod(t.data, NULL);
			buf_free(&t);
		}
		num = !isnan(d);
	}
	l->v[l->n] = (struct mval){ name.data, d, 0, l->n, num };
	l->n++;
	return 0;
}

static int cmp_mval_name(const void *a, const void *b)
{
	const struct mval *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void mlist_free(struct mlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* The ranked values of one record, one per name, into *out (an mlist). */
static int read_metrics(const char *line, size_t len, const struct ent *e,
			void *out, void *arg)
{
	struct mlist *l = out;
	struct jtext_span v;
	bool ok, found;
	size_t i, k;
	int r;

	(void)arg;
	memset(l, 0, sizeof(*l));
	r = record_success(line, len, &ok, &found);
	if (r == -EINVAL || (!r && found && !ok))
		return 0;
	if (!r)
		r = record_field(line, len, FIELD_METRICS, &v, NULL, &found);
	if (r == -EINVAL || (!r && (!found || jtext_type(v) != JTEXT_OBJECT)))
		return 0;
	if (!r)
		r = jtext_members(v, member_cb, l);
	if (r == -EINVAL)
		r = 0;
	if (r < 0) {
		mlist_free(l);
		return r;
	}
	/* Keep the last member of each name, and only numbers. */
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_mval_name);
	for (i = k = 0; i < l->n; i++) {
		bool last = i + 1 == l->n ||
			    strcmp(l->v[i].name, l->v[i + 1].name) != 0;

		if (last && l->v[i].num) {
			l->v[i].iter = e->iter;
			l->v[k++] = l->v[i];
		} else {
			free(l->v[i].name);
		}
	}
	l->n = k;
	return 0;
}

/* --- prepare -------------------------------------------------------------- */

static int cmp_triple(const void *a, const void *b)
{
	const struct mval *x = a, *y = b;
	struct rk p = { x->v, x->iter }, q = { y->v, y->iter };
	int c = strcmp(x->name, y->name);

	return c ? c : cmp_rk(&p, &q);
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

/* One new ranking: old minus gone, merged with add[0..na) (sorted). */
static int merge_metric(const struct metric *old, const struct mval *add,
			size_t na, const struct derived_batch *b,
			struct metric *out)
{
	size_t no = old ? old->n : 0, i = 0, j = 0, k = 0;

	out->r = malloc((no + na + 1) * sizeof(*out->r));
	if (!out->r)
		return -ENOMEM;
	while (i < no || j < na) {
		struct rk x;

		if (i < no && is_gone(b, old->r[i].iter)) {
			i++;
			continue;
		}
		x = (struct rk){ j < na ? add[j].v : 0,
				 j < na ? add[j].iter : 0 };
		if (j < na && (i >= no || cmp_rk(&x, &old->r[i]) < 0)) {
			out->r[k++] = x;
			j++;
		} else {
			out->r[k++] = old->r[i++];
		}
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

static int bm_prepare(const void *st, const struct derived_batch *b,
		      void **plan)
{
	const struct bymetric *old = st;
	struct mlist *per = NULL, all = { 0 };
	struct mplan *pl = NULL;
	size_t i, j, o, a, total = 0;
	int r = -ENOMEM;

	per = calloc(b->nadd + 1, sizeof(*per));
	pl = calloc(1, sizeof(*pl));
	if (!per || !pl)
		goto out;
	r = derived_map(b->fd, b->add, b->nadd, per, sizeof(*per),
			read_metrics, NULL);
	if (r < 0)
		goto out;
	for (i = 0; i < b->nadd; i++)
		total += per[i].n;
	r = -ENOMEM;
	all.v = malloc((total + 1) * sizeof(*all.v));
	if (!all.v)
		goto out;
	/* The names move into `all`. */
	for (i = 0; i < b->nadd; i++) {
		if (per[i].n)
			memcpy(all.v + all.n, per[i].v,
			       per[i].n * sizeof(*all.v));
		all.n += per[i].n;
		free(per[i].v);
		per[i].v = NULL;
		per[i].n = 0;
	}
	qsort(all.v, all.n, sizeof(*all.v), cmp_triple);
	for (i = 0, j = 0; i < all.n; i++)
		if (i == 0 || strcmp(all.v[i - 1].name, all.v[i].name) != 0)
			j++;
	pl->nb.m = calloc(old->n + j + 1, sizeof(*pl->nb.m));
	if (!pl->nb.m)
		goto out;
	/* Walk the old names and the added names together. */
	o = a = 0;
	while (o < old->n || a < all.n) {
		const struct metric *om = NULL;
		struct metric *nm = &pl->nb.m[pl->nb.n];
		size_t a1 = a;
		int c;

		c = o >= old->n ? 1 : a >= all.n ? -1 :
		    strcmp(old->m[o].name, all.v[a].name);
		if (c <= 0)
			om = &old->m[o++];
		if (c >= 0)
			while (a1 < all.n &&
			       strcmp(all.v[a1].name, all.v[a].name) == 0)
				a1++;
		nm->name = strdup(om ? om->name : all.v[a].name);
		if (!nm->name)
			goto out;
		pl->nb.n++;
		r = merge_metric(om, all.v + a, a1 - a, b, nm);
		if (r < 0)
			goto out;
		r = -ENOMEM;
		a = a1;
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
	for (j = 0; per && j < b->nadd; j++)
		mlist_free(&per[j]);
	free(per);
	mlist_free(&all);
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
