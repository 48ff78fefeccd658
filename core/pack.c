/* pack.c - the store's index of shown records, packed (see pack.h).
 *
 * Contents:
 *   fields       offset/length word, 48-bit timestamps, the flag bits
 *   runs         number and line number from the run an entry is in
 *   growing      what an append needs, reserve, append, build
 *   reading      get, iter, find, unpack, bytes
 */
#include "pack.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LEN_BITS 24
#define LEN_LONG ((UINT64_C(1) << LEN_BITS) - 1)   /* length in `longs` */
#define OFF_LIMIT PACK_SIZE_MAX
#define T_MIN (-(INT64_C(1) << 47))
#define T_NONE T_MIN            /* no timestamp (0) */
#define T_FAR (T_MIN + 1)       /* in `far` */
#define T_LOW (T_MIN + 2)
#define T_HIGH ((INT64_C(1) << 47) - 1)

/* --- fields ---------------------------------------------------------------- */

/* The flag bits: entry i's bit k is bit PACK_BITS * i + k of `bits`. */
#define PACK_BITS 2
enum { BIT_REPLACED, BIT_CODE_DUP };

static size_t bits_bytes(size_t n)
{
	return (n * PACK_BITS + 7) / 8;
}

static void bit_put(unsigned char *bits, size_t i, unsigned k, bool v)
{
	size_t b = i * PACK_BITS + k;

	if (v)
		bits[b / 8] |= (unsigned char)(1u << (b % 8));
	else
		bits[b / 8] &= (unsigned char)~(1u << (b % 8));
}

static bool bit_get(const unsigned char *bits, size_t i, unsigned k)
{
	size_t b = i * PACK_BITS + k;

	return bits[b / 8] >> (b % 8) & 1;
}

static void t6_put(unsigned char *d, int64_t v)
{
	uint64_t x = (uint64_t)v;
	int k;

	for (k = 0; k < 6; k++)
		d[k] = (unsigned char)(x >> (8 * k));
}

static int64_t t6_get(const unsigned char *d)
{
	uint64_t x = 0;
	int k;

	for (k = 0; k < 6; k++)
		x |= (uint64_t)d[k] << (8 * k);
	/* Sign-extend the 48 bits. */
	return (int64_t)(x << 16) >> 16;
}

/* The 48-bit form of timestamp t against base; T_FAR when out of reach. */
static int64_t t_rel(int64_t t, int64_t base)
{
	int64_t v;

	if (t == 0)
		return T_NONE;
	if (__builtin_sub_overflow(t, base, &v) || v < T_LOW || v > T_HIGH)
		return T_FAR;
	return v;
}

/* --- runs ------------------------------------------------------------------ */

/* The run entry i is in (p->nrun > 0, i < p->n). */
static const struct pack_run *run_of(const struct pack *p, size_t i)
{
	size_t lo = 0, hi = p->nrun;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->run[mid].rank <= i)
			lo = mid;
		else
			hi = mid;
	}
	return &p->run[lo];
}

/* Does entry e at `rank` continue run r? */
static bool run_continues(const struct pack_run *r, size_t rank,
			  const struct ent *e)
{
	uint64_t d = rank - r->rank;

	return e->iter - r->iter == (int64_t)d && e->lineno - r->lineno == d;
}

/* --- growing --------------------------------------------------------------- */

struct needs {
	size_t runs, longs, fars;
	int64_t tbase;
};

/* What appending e[0..n) (and t) to p takes in the side tables. */
static int count_needs(const struct pack *p, const struct ent *e,
		       const int64_t *t, size_t n, struct needs *nd)
{
	struct pack_run last = { 0 };
	bool have = p->nrun > 0;
	size_t i;

	memset(nd, 0, sizeof(*nd));
	nd->tbase = p->tbase;
	if (have)
		last = p->run[p->nrun - 1];
	for (i = 0; i < n; i++) {
		if (e[i].off >= OFF_LIMIT)
			return -EFBIG;
		if (!have || !run_continues(&last, p->n + i, &e[i])) {
			last = (struct pack_run){ p->n + i, e[i].iter,
						  e[i].lineno };
			have = true;
			nd->runs++;
		}
		if (e[i].len >= LEN_LONG)
			nd->longs++;
		if (t && t[i] && !nd->tbase)
			nd->tbase = t[i];
		if (t && t_rel(t[i], nd->tbase) == T_FAR)
			nd->fars++;
	}
	return 0;
}

static int grow_exact(void **a, size_t *cap, size_t need, size_t size)
{
	void *q;

	if (need <= *cap)
		return 0;
	q = realloc(*a, need * size);
	if (!q)
		return -ENOMEM;
	*a = q;
	*cap = need;
	return 0;
}

/* Room for what nd counts, the per-entry arrays to `cap` (side tables
 * exactly; per-entry arrays as the caller asks). */
static int reserve_to(struct pack *p, size_t cap, const struct needs *nd)
{
	size_t c;
	void *q;
	int r;

	r = store_grow((void **)&p->run, &p->runcap, p->nrun + nd->runs,
		       sizeof(*p->run));
	if (!r)
		r = store_grow((void **)&p->longs, &p->longcap,
			       p->nlong + nd->longs, sizeof(*p->longs));
	if (!r)
		r = store_grow((void **)&p->far, &p->farcap, p->nfar + nd->fars,
			       sizeof(*p->far));
	if (r < 0 || cap <= p->cap)
		return r;
	q = realloc(p->ol, cap * sizeof(*p->ol));
	if (!q)
		return -ENOMEM;
	p->ol = q;
	c = bits_bytes(cap);
	q = realloc(p->bits, c);
	if (!q)
		return -ENOMEM;
	p->bits = q;
	memset(p->bits + bits_bytes(p->cap), 0, c - bits_bytes(p->cap));
	if (p->times) {
		q = realloc(p->t6, cap * 6);
		if (!q)
			return -ENOMEM;
		p->t6 = q;
	}
	p->cap = cap;
	return 0;
}

int pack_reserve(struct pack *p, size_t more)
{
	struct needs nd = { 0, 0, 0, 0 };
	size_t c = p->cap ? p->cap : 64;

	if (p->n + more <= p->cap)
		return 0;
	while (c < p->n + more) {
		if (c > SIZE_MAX / 2 / sizeof(*p->ol))
			return -ENOMEM;
		c = c < 16 ? 16 : c + c / 2;
	}
	/* The side tables may take one row an entry at worst. */
	nd.runs = nd.longs = more;
	nd.fars = p->times ? more : 0;
	return reserve_to(p, c, &nd);
}

/* Append without checks: room is there, offsets are in reach. */
static void append_one(struct pack *p, const struct ent *e, const int64_t *t)
{
	size_t i = p->n;
	uint64_t len = e->len >= LEN_LONG ? LEN_LONG : e->len;

	if (!p->nrun || !run_continues(&p->run[p->nrun - 1], i, e))
		p->run[p->nrun++] = (struct pack_run){ i, e->iter, e->lineno };
	if (len == LEN_LONG)
		p->longs[p->nlong++] = (struct pack_side){ i, e->len };
	p->ol[i] = e->off << LEN_BITS | len;
	bit_put(p->bits, i, BIT_REPLACED, e->replaced);
	bit_put(p->bits, i, BIT_CODE_DUP, e->code_dup);
	if (p->times) {
		int64_t v;

		if (t && *t && !p->tbase)
			p->tbase = *t;
		v = t ? t_rel(*t, p->tbase) : T_NONE;
		if (v == T_FAR)
			p->far[p->nfar++] = (struct pack_side){ i, *t };
		t6_put(p->t6 + 6 * i, v);
	}
	p->n++;
}

int pack_append(struct pack *p, const struct ent *e, const int64_t *t,
		size_t n)
{
	struct needs nd;
	size_t i;
	int r;

	r = count_needs(p, e, p->times ? t : NULL, n, &nd);
	if (r < 0)
		return r;
	/* pack_reserve's worst case covers nd; a caller that skipped it
	 * broke the contract. */
	if (p->n + n > p->cap || p->nrun + nd.runs > p->runcap ||
	    p->nlong + nd.longs > p->longcap || p->nfar + nd.fars > p->farcap)
		abort();
	for (i = 0; i < n; i++)
		append_one(p, &e[i], t ? &t[i] : NULL);
	return 0;
}

int pack_build(const struct ent *e, const int64_t *t, size_t n, bool times,
	       struct pack *out)
{
	struct needs nd;
	size_t i;
	int r;

	memset(out, 0, sizeof(*out));
	out->times = times;
	if (!times)
		t = NULL;
	r = count_needs(out, e, t, n, &nd);
	if (r < 0)
		return r;
	if (!n)
		return 0;
	r = grow_exact((void **)&out->run, &out->runcap, nd.runs,
		       sizeof(*out->run));
	if (!r && nd.longs)
		r = grow_exact((void **)&out->longs, &out->longcap, nd.longs,
			       sizeof(*out->longs));
	if (!r && nd.fars)
		r = grow_exact((void **)&out->far, &out->farcap, nd.fars,
			       sizeof(*out->far));
	if (!r)
		r = reserve_to(out, n, &(struct needs){ 0, 0, 0, 0 });
	if (r < 0) {
		pack_free(out);
		return r;
	}
	for (i = 0; i < n; i++)
		append_one(out, &e[i], t ? &t[i] : NULL);
	return 0;
}

void pack_free(struct pack *p)
{
	bool times = p->times;

	free(p->ol);
	free(p->bits);
	free(p->t6);
	free(p->run);
	free(p->longs);
	free(p->far);
	memset(p, 0, sizeof(*p));
	p->times = times;
}

/* --- reading --------------------------------------------------------------- */

int64_t pack_iter(const struct pack *p, size_t i)
{
	const struct pack_run *r = run_of(p, i);

	return r->iter + (int64_t)(i - r->rank);
}

size_t pack_iters(const struct pack *p, size_t start, int64_t *out,
		  size_t max)
{
	const struct pack_run *r = run_of(p, start), *end = p->run + p->nrun;
	size_t i, k;

	for (i = start, k = 0; k < max && i < p->n; i++, k++) {
		if (r + 1 < end && r[1].rank == i)
			r++;
		out[k] = r->iter + (int64_t)(i - r->rank);
	}
	return k;
}

void pack_set_replaced(struct pack *p, size_t i)
{
	bit_put(p->bits, i, BIT_REPLACED, true);
}

/* The value side table `s` (n rows) holds for entry i, or `none`. */
static int64_t side_get(const struct pack_side *s, size_t n, size_t i,
			int64_t none)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s[mid].rank < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && s[lo].rank == i ? s[lo].v : none;
}

void pack_get(const struct pack *p, size_t i, struct ent *e, int64_t *t)
{
	const struct pack_run *r = run_of(p, i);
	uint64_t w = p->ol[i], len = w & LEN_LONG;

	e->iter = r->iter + (int64_t)(i - r->rank);
	e->lineno = r->lineno + (i - r->rank);
	e->off = w >> LEN_BITS;
	if (len == LEN_LONG)
		len = (uint64_t)side_get(p->longs, p->nlong, i, LEN_LONG);
	e->len = (uint32_t)len;
	e->replaced = bit_get(p->bits, i, BIT_REPLACED);
	e->code_dup = bit_get(p->bits, i, BIT_CODE_DUP);
	if (!t)
		return;
	*t = 0;
	if (p->times) {
		int64_t v = t6_get(p->t6 + 6 * i);

		*t = v == T_NONE ? 0 :
		     v == T_FAR  ? side_get(p->far, p->nfar, i, 0) :
				   p->tbase + v;
	}
}

size_t pack_find(const struct pack *p, int64_t iter, bool *found)
{
	size_t lo = 0, hi = p->nrun, end, rank;
	const struct pack_run *r;

	*found = false;
	/* The last run starting at or below iter. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->run[mid].iter <= iter)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return 0;
	r = &p->run[lo - 1];
	end = lo < p->nrun ? p->run[lo].rank : p->n;
	if ((uint64_t)(iter - r->iter) >= end - r->rank)
		return end;
	rank = r->rank + (size_t)(iter - r->iter);
	*found = true;
	return rank;
}

int pack_unpack(const struct pack *p, struct ent **e, int64_t **t)
{
	size_t i;

	*e = malloc((p->n ? p->n : 1) * sizeof(**e));
	if (t)
		*t = p->times ? malloc((p->n ? p->n : 1) * sizeof(**t)) : NULL;
	if (!*e || (t && p->times && !*t)) {
		free(*e);
		*e = NULL;
		if (t) {
			free(*t);
			*t = NULL;
		}
		return -ENOMEM;
	}
	for (i = 0; i < p->n; i++)
		pack_get(p, i, &(*e)[i], t && *t ? &(*t)[i] : NULL);
	return 0;
}

uint64_t pack_bytes(const struct pack *p)
{
	uint64_t b = p->cap * sizeof(*p->ol) + bits_bytes(p->cap);

	if (p->times)
		b += p->cap * 6;
	b += p->runcap * sizeof(*p->run) + p->longcap * sizeof(*p->longs) +
	     p->farcap * sizeof(*p->far);
	return b;
}
