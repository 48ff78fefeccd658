/* byhash.c - the by-hash view: distinct code -> iterations (store.h's
 * store_code_of, store_codes, store_code_lookup; the hook in derived.h).
 *
 * State: `rec`, the digest of every shown record with code, by number (for
 * store_code_of and for taking a replaced record out); `pair`, the same
 * (digest, number) pairs by digest then number; `cstart`, where each
 * distinct code's run of pairs starts.  A commit adds a record or a few:
 * those are patched in place (rebuilding every table for them would make a
 * commit's latency grow with the history); larger batches, and the first
 * build, make new tables by merging.
 *
 * Contents: state and plan; prepare (hashing); patching; apply; public.
 */
#include "derived.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hash.h"
#include "log.h"
#include "record.h"

#define PATCH_MAX 64

/* (digest, iteration): sorted by number in rec[], by digest in pair[]. */
struct hpair {
	unsigned char d[HASH_LEN];
	int64_t iter;
};

struct byhash {
	struct hpair *rec;
	size_t nrec, rcap;
	struct hpair *pair;
	size_t npair, pcap;
	size_t *cstart;       /* code k owns pair[cstart[k] .. cstart[k+1]) */
	size_t ncode, ccap;
};

/* Code digest of one added record. */
struct hslot {
	unsigned char d[HASH_LEN];
	bool has;
};

struct hplan {
	struct hpair *gone, *add;  /* sorted by digest */
	size_t ngone, nadd;
	/* Large batches: the new tables, swapped in by apply. */
	bool merged;
	struct byhash nt;
};

static void tables_free(struct byhash *h)
{
	free(h->rec);
	free(h->pair);
	free(h->cstart);
	memset(h, 0, sizeof(*h));
}

static void *bh_create(void)
{
	return calloc(1, sizeof(struct byhash));
}

static void bh_destroy(void *st)
{
	if (!st)
		return;
	tables_free(st);
	free(st);
}

static void bh_plan_free(void *p)
{
	struct hplan *pl = p;

	if (!pl)
		return;
	free(pl->gone);
	free(pl->add);
	tables_free(&pl->nt);
	free(pl);
}

static uint64_t bh_bytes(const void *p)
{
	const struct byhash *h = p;

	return sizeof(*h) + h->rcap * sizeof(*h->rec) +
	       h->pcap * sizeof(*h->pair) + h->ccap * sizeof(*h->cstart);
}

static int cmp_pair(const void *a, const void *b)
{
	const struct hpair *x = a, *y = b;
	int c = memcmp(x->d, y->d, HASH_LEN);

	if (c)
		return c;
	return x->iter < y->iter ? -1 : x->iter > y->iter;
}

static int cmp_rec(const void *a, const void *b)
{
	const struct hpair *x = a, *y = b;

	return x->iter < y->iter ? -1 : x->iter > y->iter;
}

/* Index of the first rec[] entry with number >= iter. */
static size_t rec_lower(const struct byhash *h, int64_t iter)
{
	size_t lo = 0, hi = h->nrec;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->rec[mid].iter < iter)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* --- prepare -------------------------------------------------------------- */

static int hash_line(const char *line, size_t len, const struct ent *e,
		     void *out, void *arg)
{
	struct hslot *slot = out;
	struct buf code = BUF_INIT;
	bool present;
	int r;

	(void)e;
	(void)arg;
	slot->has = false;
	r = view_render(line, len, VIEW_CODE, &code, &present);
	if (r == -EINVAL)
		return 0; /* a trusted line that is not JSON after all: no code */
	if (r == 0 && present) {
		r = hash_sha256(code.data ? code.data : "", code.len, slot->d);
		slot->has = r == 0;
	}
	buf_free(&code);
	return r;
}

/* Group sorted pairs into codes. */
static int group_codes(struct byhash *h)
{
	size_t i, k = 0;
	size_t *cs = malloc((h->npair + 1) * sizeof(*cs));

	if (!cs)
		return -ENOMEM;
	for (i = 0; i < h->npair; i++)
		if (i == 0 ||
		    memcmp(h->pair[i - 1].d, h->pair[i].d, HASH_LEN) != 0)
			cs[k++] = i;
	cs[k] = h->npair;
	h->cstart = cs;
	h->ncode = k;
	h->ccap = h->npair + 1;
	return 0;
}

/* a minus `gone` plus `add` (all sorted by cmp), into a new array. */
static int merge_sorted(const struct hpair *a, size_t na,
			const struct hpair *gone, size_t ngone,
			const struct hpair *add, size_t nadd,
			int (*cmp)(const void *, const void *),
			struct hpair **out, size_t *nout)
{
	struct hpair *o = malloc((na + nadd + 1) * sizeof(*o));
	size_t i = 0, g = 0, k = 0, j = 0;

	if (!o)
		return -ENOMEM;
	while (i < na || j < nadd) {
		if (i < na) {
			while (g < ngone && cmp(&gone[g], &a[i]) < 0)
				g++;
			if (g < ngone && cmp(&gone[g], &a[i]) == 0) {
				i++;
				continue;
			}
		}
		if (j < nadd && (i >= na || cmp(&add[j], &a[i]) < 0))
			o[k++] = add[j++];
		else
			o[k++] = a[i++];
	}
	*out = o;
	*nout = k;
	return 0;
}

static int bh_merge(const struct byhash *h, struct hplan *pl)
{
	struct hpair *g = NULL, *a = NULL;
	int r = -ENOMEM;

	/* rec[] is by number: the same pairs in that order. */
	g = malloc((pl->ngone + 1) * sizeof(*g));
	a = malloc((pl->nadd + 1) * sizeof(*a));
	if (!g || !a)
		goto out;
	memcpy(g, pl->gone, pl->ngone * sizeof(*g));
	memcpy(a, pl->add, pl->nadd * sizeof(*a));
	qsort(g, pl->ngone, sizeof(*g), cmp_rec);
	qsort(a, pl->nadd, sizeof(*a), cmp_rec);
	r = merge_sorted(h->rec, h->nrec, g, pl->ngone, a, pl->nadd, cmp_rec,
			 &pl->nt.rec, &pl->nt.nrec);
	if (!r)
		r = merge_sorted(h->pair, h->npair, pl->gone, pl->ngone,
				 pl->add, pl->nadd, cmp_pair, &pl->nt.pair,
				 &pl->nt.npair);
	if (!r)
		r = group_codes(&pl->nt);
	pl->nt.rcap = pl->nt.nrec + 1;
	pl->nt.pcap = pl->nt.npair + 1;
	pl->merged = true;
out:
	free(g);
	free(a);
	return r;
}

static int bh_prepare(const void *st, const struct derived_batch *b,
		      void **plan)
{
	const struct byhash *h = st;
	struct hslot *slot = NULL;
	struct hplan *pl;
	size_t i, k;
	int r = -ENOMEM;

	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return -ENOMEM;
	pl->gone = malloc((b->ngone + 1) * sizeof(*pl->gone));
	pl->add = malloc((b->nadd + 1) * sizeof(*pl->add));
	slot = calloc(b->nadd + 1, sizeof(*slot));
	if (!pl->gone || !pl->add || !slot)
		goto out;
	for (i = 0; i < b->ngone; i++) {
		k = rec_lower(h, b->gone[i]);
		if (k < h->nrec && h->rec[k].iter == b->gone[i])
			pl->gone[pl->ngone++] = h->rec[k];
	}
	r = derived_map(b->fd, b->add, b->nadd, slot, sizeof(*slot),
			hash_line, NULL);
	if (r < 0)
		goto out;
	for (i = 0; i < b->nadd; i++) {
		if (!slot[i].has)
			continue;
		memcpy(pl->add[pl->nadd].d, slot[i].d, HASH_LEN);
		pl->add[pl->nadd++].iter = b->add[i].iter;
	}
	qsort(pl->gone, pl->ngone, sizeof(*pl->gone), cmp_pair);
	qsort(pl->add, pl->nadd, sizeof(*pl->add), cmp_pair);
	if (pl->ngone + pl->nadd > PATCH_MAX || !h->pcap)
		r = bh_merge(h, pl);
out:
	free(slot);
	if (r < 0) {
		bh_plan_free(pl);
		return r;
	}
	*plan = pl;
	return 0;
}

/* --- patching ------------------------------------------------------------- */

/* First pair not less than x. */
static size_t pair_lower(const struct byhash *h, const struct hpair *x)
{
	size_t lo = 0, hi = h->npair;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cmp_pair(&h->pair[mid], x) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* First code whose start is >= pos (h->ncode when none). */
static size_t code_lower(const struct byhash *h, size_t pos)
{
	size_t lo = 0, hi = h->ncode;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->cstart[mid] < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The code holding pair `pos`. */
static size_t code_at(const struct byhash *h, size_t pos)
{
	return code_lower(h, pos + 1) - 1;
}

/* Room for patch to add `nadd` pairs.  On failure nothing changed that a
 * reader could see (arrays may just be larger). */
static int patch_reserve(struct byhash *h, size_t nadd)
{
	size_t rc = h->rcap, pc = h->pcap, cc = h->ccap;
	int r;

	r = store_grow((void **)&h->rec, &rc, h->nrec + nadd,
		       sizeof(*h->rec));
	if (r < 0)
		return r;
	h->rcap = rc;
	r = store_grow((void **)&h->pair, &pc, h->npair + nadd,
		       sizeof(*h->pair));
	if (r < 0)
		return r;
	h->pcap = pc;
	r = store_grow((void **)&h->cstart, &cc, h->ncode + nadd + 1,
		       sizeof(*h->cstart));
	if (r < 0)
		return r;
	h->ccap = cc;
	return 0;
}

static void patch(struct byhash *h, const struct hplan *pl)
{
	size_t i, j, p, k;

	for (i = 0; i < pl->ngone; i++) {
		p = rec_lower(h, pl->gone[i].iter);
		memmove(&h->rec[p], &h->rec[p + 1],
			(h->nrec - p - 1) * sizeof(*h->rec));
		h->nrec--;
		p = pair_lower(h, &pl->gone[i]);
		k = code_at(h, p);
		memmove(&h->pair[p], &h->pair[p + 1],
			(h->npair - p - 1) * sizeof(*h->pair));
		h->npair--;
		for (j = k + 1; j <= h->ncode; j++)
			h->cstart[j]--;
		if (h->cstart[k] == h->cstart[k + 1]) {
			memmove(&h->cstart[k], &h->cstart[k + 1],
				(h->ncode - k) * sizeof(*h->cstart));
			h->ncode--;
		}
	}
	for (i = 0; i < pl->nadd; i++) {
		bool prev, next;

		p = rec_lower(h, pl->add[i].iter);
		memmove(&h->rec[p + 1], &h->rec[p],
			(h->nrec - p) * sizeof(*h->rec));
		h->rec[p] = pl->add[i];
		h->nrec++;
		p = pair_lower(h, &pl->add[i]);
		prev = p > 0 &&
		       memcmp(h->pair[p - 1].d, pl->add[i].d, HASH_LEN) == 0;
		next = p < h->npair &&
		       memcmp(h->pair[p].d, pl->add[i].d, HASH_LEN) == 0;
		if (prev) {
			k = code_at(h, p - 1);
		} else if (next) {
			k = code_at(h, p); /* p starts it and still will */
		} else {
			/* A new code, starting at p. */
			k = code_lower(h, p);
			memmove(&h->cstart[k + 1], &h->cstart[k],
				(h->ncode + 1 - k) * sizeof(*h->cstart));
			h->cstart[k] = p;
			h->ncode++;
		}
		memmove(&h->pair[p + 1], &h->pair[p],
			(h->npair - p) * sizeof(*h->pair));
		h->pair[p] = pl->add[i];
		h->npair++;
		for (j = k + 1; j <= h->ncode; j++)
			h->cstart[j]++;
	}
}

static int bh_apply(void *st, void *plan)
{
	struct byhash *h = st;
	struct hplan *pl = plan;
	int r = 0;

	if (pl->merged) {
		tables_free(h);
		*h = pl->nt;
		memset(&pl->nt, 0, sizeof(pl->nt));
	} else {
		r = patch_reserve(h, pl->nadd);
		if (!r)
			patch(h, pl);
	}
	bh_plan_free(pl);
	return r;
}

const struct derived_ops derived_byhash_ops = {
	.name = "by-hash",
	.create = bh_create,
	.destroy = bh_destroy,
	.prepare = bh_prepare,
	.apply = bh_apply,
	.plan_free = bh_plan_free,
	.bytes = bh_bytes,
};

/* --- public --------------------------------------------------------------- */

int store_code_of(struct store *s, int64_t iter, unsigned char d[HASH_LEN],
		  bool *has_code)
{
	const struct byhash *h;
	size_t k;
	int r;

	r = store_view_rdlock(s, DERIVED_BYHASH, (const void **)&h);
	if (r < 0)
		return r;
	if (!store_has_locked(s, iter)) {
		r = -ENOENT;
		goto out;
	}
	k = rec_lower(h, iter);
	*has_code = k < h->nrec && h->rec[k].iter == iter;
	if (*has_code)
		memcpy(d, h->rec[k].d, HASH_LEN);
out:
	store_view_unlock(s);
	return r;
}

static void code_fill(const struct byhash *h, size_t k, struct store_code *c)
{
	const struct hpair *p = &h->pair[h->cstart[k]];

	memcpy(c->digest, p->d, HASH_LEN);
	c->first_iter = p->iter;
	c->count = h->cstart[k + 1] - h->cstart[k];
}

int store_codes(struct store *s, size_t start, struct store_code *out,
		size_t max, size_t *n)
{
	const struct byhash *h;
	size_t i;
	int r;

	r = store_view_rdlock(s, DERIVED_BYHASH, (const void **)&h);
	if (r < 0)
		return r;
	for (i = 0; i < max && start + i < h->ncode; i++)
		code_fill(h, start + i, &out[i]);
	*n = i;
	store_view_unlock(s);
	return 0;
}

int store_code_lookup(struct store *s, const unsigned char d[HASH_LEN],
		      struct store_code *code, int64_t *iters, size_t max)
{
	const struct byhash *h;
	size_t lo = 0, hi, i;
	int r;

	r = store_view_rdlock(s, DERIVED_BYHASH, (const void **)&h);
	if (r < 0)
		return r;
	hi = h->ncode;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(h->pair[h->cstart[mid]].d, d, HASH_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= h->ncode ||
	    memcmp(h->pair[h->cstart[lo]].d, d, HASH_LEN) != 0) {
		r = -ENOENT;
		goto out;
	}
	code_fill(h, lo, code);
	for (i = 0; i < max && i < code->count; i++)
		iters[i] = h->pair[h->cstart[lo] + i].iter;
out:
	store_view_unlock(s);
	return r;
}
