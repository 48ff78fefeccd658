/* byhash.c - the by-hash view: distinct code -> iterations (store.h's
 * store_code_of, store_codes, store_code_lookup; the hook in derived.h).
 *
 * State, for the shown records that have code:
 *   dig[], iter[]  each one's code digest and number, ascending by number
 *                  (40 bytes a record: store_code_of, and taking a replaced
 *                  record out);
 *   ord[]          their indexes into dig[]/iter[] ordered by (digest,
 *                  index), so by (digest, number): 4 bytes a record instead
 *                  of a second copy of the digest and number;
 *   cstart[]       where each distinct code's run of ord[] starts (4 bytes a
 *                  code).
 * Indexes are 32 bits: a view of 2^32 records or more is -EFBIG (a 4 TB
 * history at the smallest records seen).
 *
 * A commit adds a record or a few: those are patched in place (rebuilding
 * every table for them would make a commit's latency grow with the
 * history); larger batches, and the first build, make new tables: merged by
 * number, ord[] by a counting sort on the digest's first two bytes (digests
 * are uniform) and a sort of each bucket.
 *
 * The first build reads every record: in a store that validates its lines
 * (derived_batch.valid) they are walked with record_members_fast up to
 * their code key (to the end only for a line with two: ent.code_dup), the
 * code decoded in place when it has only two-byte escapes
 * (jtext_string_decode_short; cJSON's decode was a quarter of the build at
 * a million small records, and more with 7 KB codes); anything else goes
 * through view_render, the reference.
 *
 * Contents: state and plan; reading codes; building tables; patching;
 * prepare and apply; public.
 */
#include "derived.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fault.h"
#include "hash.h"
#include "jtext.h"
#include "record.h"

#define PATCH_MAX 64
/* Codes up to this many bytes (escaped) are decoded on the stack, longer
 * ones in a buffer of their own. */
#define DECODE_STACK 4096

/* --- state and plan ------------------------------------------------------- */

struct byhash {
	unsigned char (*dig)[HASH_LEN];
	int64_t *iter;
	uint32_t *ord;
	uint32_t *cstart;     /* code k owns ord[cstart[k] .. cstart[k+1]) */
	size_t nrec, ncode;
	size_t dcap, icap, ocap, ccap;
};

struct hplan {
	int64_t *gone;        /* numbers that leave the view, ascending */
	size_t ngone;
	/* The records with code that enter it, ascending by number. */
	unsigned char (*add_d)[HASH_LEN];
	int64_t *add_iter;
	size_t nadd, add_dcap;
	/* Large batches: the new tables, swapped in by apply. */
	bool merged;
	struct byhash nt;
};

static void tables_free(struct byhash *h)
{
	free(h->dig);
	free(h->iter);
	free(h->ord);
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
	free(pl->add_d);
	free(pl->add_iter);
	tables_free(&pl->nt);
	free(pl);
}

static uint64_t bh_bytes(const void *p)
{
	const struct byhash *h = p;

	return sizeof(*h) + h->dcap * sizeof(*h->dig) +
	       h->icap * sizeof(*h->iter) + h->ocap * sizeof(*h->ord) +
	       h->ccap * sizeof(*h->cstart);
}

/* Index of the first record with number >= iter. */
static size_t rec_lower(const struct byhash *h, int64_t iter)
{
	size_t lo = 0, hi = h->nrec;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->iter[mid] < iter)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The first 8 bytes of a digest as a number that orders as they do. */
static uint64_t dig_head(const unsigned char d[HASH_LEN])
{
	uint64_t x = 0;
	unsigned i;

	for (i = 0; i < 8; i++)
		x = x << 8 | d[i];
	return x;
}

/* --- reading codes -------------------------------------------------------- */

struct hash_arg {
	const struct ent *base;   /* the batch's add[] */
	bool *has;                /* per add[] entry: has code */
	bool valid;
};

/* The code's members of a line: the last value of each alias key.
 * `once`: the line has at most one alias key, so the walk stops there. */
struct code_keys {
	const struct record_field_def *def;
	size_t klen[2];
	struct jtext_span v[2];
	bool have[2];
	bool once;
};

static int code_keys_cb(struct jtext_span key, struct jtext_span val,
			void *arg)
{
	struct code_keys *ck = arg;
	size_t n = key.len - 2;
	unsigned i;

	for (i = 0; i < ck->def->nkey; i++) {
		/* An escaped key is longer than the name it spells. */
		if ((n == ck->klen[i] &&
		     memcmp(key.p + 1, ck->def->key[i], n) == 0) ||
		    (n > ck->klen[i] && memchr(key.p + 1, '\\', n) &&
		     jtext_key_is(key, ck->def->key[i]))) {
			ck->v[i] = val;
			ck->have[i] = true;
			if (ck->once)
				return 1;
		}
	}
	return 0;
}

/* SHA-256 of the decoded string span v: decoded here (on the stack when
 * short) unless it holds a \u escape, which jtext_string_decode handles. */
static int hash_string(struct jtext_span v, unsigned char d[HASH_LEN])
{
	char stack[DECODE_STACK], *tmp = stack;
	struct buf b = BUF_INIT;
	size_t n;
	int r;

	if (!memchr(v.p + 1, '\\', v.len - 2))
		return hash_sha256(v.p + 1, v.len - 2, d);
	if (v.len > sizeof(stack)) {
		tmp = malloc(v.len);
		if (!tmp)
			return -ENOMEM;
	}
	if (jtext_string_decode_short(v, tmp, &n)) {
		r = hash_sha256(tmp, n, d);
	} else {
		r = jtext_string_decode(v, &b);
		if (!r)
			r = hash_sha256(b.data ? b.data : "", b.len, d);
		buf_free(&b);
	}
	if (tmp != stack)
		free(tmp);
	return r;
}

/* The code of a validated line, as record_field finds it: the first alias
 * present wins, the last of duplicate keys counts, and only a string is
 * code.  `once` (no ent.code_dup): the line names its code at most once,
 * and the walk ends at that key instead of the line's end -- at a million
 * records of 900 bytes, most of a build's walking was past the code.
 * Returns 0 or -EINVAL. */
static int code_fast(const char *line, size_t len, bool once,
		     struct jtext_span *v, bool *found)
{
	struct code_keys ck;
	unsigned i;
	int r;

	memset(&ck, 0, sizeof(ck));
	ck.def = record_field_def(FIELD_CODE);
	ck.once = once;
	for (i = 0; i < ck.def->nkey; i++)
		ck.klen[i] = strlen(ck.def->key[i]);
	r = record_members_fast(line, len, code_keys_cb, &ck);
	if (r < 0)
		return -EINVAL;
	*found = false;
	for (i = 0; i < ck.def->nkey; i++) {
		if (ck.have[i]) {
			*v = ck.v[i];
			*found = (record_type_bit(*v) & ck.def->types) != 0;
			break;
		}
	}
	return 0;
}

/* derived_map's fn: the digest of one line's code into `out`. */
static int hash_line(const char *line, size_t len, const struct ent *e,
		     void *out, void *arg)
{
	struct hash_arg *a = arg;
	bool *has = &a->has[e - a->base];
	struct buf code = BUF_INIT;
	struct jtext_span v;
	bool present;
	int r;

	*has = false;
	/* The fast walk knows top-level aliases only. */
	if (a->valid && !record_field_def(FIELD_CODE)->nested) {
		if (code_fast(line, len, !e->code_dup, &v, &present) < 0 ||
		    !present)
			return 0;
		r = hash_string(v, out);
		*has = r == 0;
		return r == -EINVAL ? 0 : r;
	}
	r = view_render(line, len, VIEW_CODE, &code, &present);
	if (r == -EINVAL)
		return 0; /* a trusted line that is not JSON after all: no code */
	if (r == 0 && present) {
		r = hash_sha256(code.data ? code.data : "", code.len, out);
		*has = r == 0;
	}
	buf_free(&code);
	return r;
}

/* The digests and numbers of the batch's records with code, ascending by
 * number, into pl->add_d and pl->add_iter. */
static int read_codes(const struct derived_batch *b, struct hplan *pl)
{
	struct hash_arg a = { b->add, NULL, b->valid };
	size_t i, k = 0;
	int r = -ENOMEM;

	pl->add_d = malloc((b->nadd + 1) * sizeof(*pl->add_d));
	pl->add_dcap = b->nadd + 1;
	a.has = calloc(b->nadd + 1, sizeof(*a.has));
	if (!pl->add_d || !a.has)
		goto out;
	r = derived_map(b->fd, b->add, b->nadd, pl->add_d,
			sizeof(*pl->add_d), hash_line, &a);
	if (r < 0)
		goto out;
	for (i = 0; i < b->nadd; i++)
		k += a.has[i];
	pl->add_iter = malloc((k + 1) * sizeof(*pl->add_iter));
	if (!pl->add_iter) {
		r = -ENOMEM;
		goto out;
	}
	for (i = 0, k = 0; i < b->nadd; i++) {
		if (!a.has[i])
			continue;
		if (k != i)
			memcpy(pl->add_d[k], pl->add_d[i], HASH_LEN);
		pl->add_iter[k++] = b->add[i].iter;
	}
	pl->nadd = k;
out:
	free(a.has);
	return r;
}

/* --- building tables ------------------------------------------------------ */

/* A record's place in the digest order: its digest's head, then (rarely
 * needed) the whole digest, then its index. */
struct okey {
	uint64_t head;
	uint32_t idx;
};

static int cmp_okey(const struct byhash *h, const struct okey *a,
		    const struct okey *b)
{
	int c;

	if (a->head != b->head)
		return a->head < b->head ? -1 : 1;
	c = memcmp(h->dig[a->idx], h->dig[b->idx], HASH_LEN);
	if (c)
		return c;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int cmp_okey_r(const void *a, const void *b, void *h)
{
	return cmp_okey(h, a, b);
}

/* ord[] and cstart[] for h->dig.  A counting sort on the digests' first two
 * bytes (digests are uniform) puts (head, index) keys in buckets of about
 * 16, each then sorted in place: the keys are contiguous, where sorting
 * ord[] itself would look up a random digest at every comparison.  One
 * code's records share a bucket, and anyone can make codes whose digests
 * share two bytes, so a large bucket is sorted by qsort_r, not by
 * insertion. */
static int build_ord(struct byhash *h)
{
	size_t *cnt = calloc(65536 + 1, sizeof(*cnt));
	struct okey *key = malloc((h->nrec + 1) * sizeof(*key));
	uint32_t *cs = NULL;
	size_t i, j, b, k = 0;
	struct okey x;
	int r = -ENOMEM;

	h->ord = malloc((h->nrec + 1) * sizeof(*h->ord));
	h->ocap = h->nrec + 1;
	cs = malloc((h->nrec + 1) * sizeof(*cs));
	if (!cnt || !key || !h->ord || !cs)
		goto out;
	for (i = 0; i < h->nrec; i++)
		cnt[(dig_head(h->dig[i]) >> 48) + 1]++;
	for (b = 0; b < 65536; b++)
		cnt[b + 1] += cnt[b];
	for (i = 0; i < h->nrec; i++) {
		x.head = dig_head(h->dig[i]);
		x.idx = (uint32_t)i;
		key[cnt[x.head >> 48]++] = x;
	}
	/* cnt[b] is now the end of bucket b, the start of bucket b + 1. */
	for (b = 0; b < 65536; b++) {
		size_t lo = b ? cnt[b - 1] : 0, hi = cnt[b];

		if (hi - lo > 32) {
			qsort_r(key + lo, hi - lo, sizeof(*key), cmp_okey_r,
				h);
			continue;
		}
		for (i = lo + 1; i < hi; i++) {
			x = key[i];
			for (j = i; j > lo && cmp_okey(h, &key[j - 1], &x) > 0;
			     j--)
				key[j] = key[j - 1];
			key[j] = x;
		}
	}
	for (i = 0; i < h->nrec; i++) {
		h->ord[i] = key[i].idx;
		if (i == 0 || key[i - 1].head != key[i].head ||
		    memcmp(h->dig[key[i - 1].idx], h->dig[key[i].idx],
			   HASH_LEN) != 0)
			cs[k++] = (uint32_t)i;
	}
	cs[k] = (uint32_t)h->nrec;
	/* Shrinking never fails in glibc; keep the larger block if it does. */
	h->cstart = realloc(cs, (k + 1) * sizeof(*cs));
	if (!h->cstart)
		h->cstart = cs;
	cs = NULL;
	h->ncode = k;
	h->ccap = k + 1;
	r = 0;
out:
	free(cs);
	free(key);
	free(cnt);
	return r;
}

/* New tables into pl->nt: h's records minus pl->gone plus pl->add_*. */
static int bh_merge(const struct byhash *h, struct hplan *pl)
{
	struct byhash *t = &pl->nt;
	size_t i = 0, g = 0, j = 0, n = h->nrec + pl->nadd;

	pl->merged = true;
	if (n >= UINT32_MAX)
		return -EFBIG;
	if (!h->nrec) {
		/* The first build: the batch's arrays are the tables, the
		 * digests' shrunk to the records that have code. */
		t->dig = realloc(pl->add_d, (pl->nadd + 1) * sizeof(*t->dig));
		t->dcap = pl->nadd + 1;
		if (!t->dig) {
			t->dig = pl->add_d;
			t->dcap = pl->add_dcap;
		}
		t->iter = pl->add_iter;
		t->icap = pl->nadd + 1;
		t->nrec = pl->nadd;
		pl->add_d = NULL;
		pl->add_iter = NULL;
		goto order;
	}
	t->dig = malloc((n + 1) * sizeof(*t->dig));
	t->iter = malloc((n + 1) * sizeof(*t->iter));
	if (!t->dig || !t->iter)
		return -ENOMEM;
	t->dcap = t->icap = n + 1;
	while (i < h->nrec || j < pl->nadd) {
		if (i < h->nrec) {
			while (g < pl->ngone && pl->gone[g] < h->iter[i])
				g++;
			if (g < pl->ngone && pl->gone[g] == h->iter[i]) {
				i++;
				continue;
			}
		}
		if (j < pl->nadd &&
		    (i >= h->nrec || pl->add_iter[j] < h->iter[i])) {
			memcpy(t->dig[t->nrec], pl->add_d[j], HASH_LEN);
			t->iter[t->nrec++] = pl->add_iter[j++];
		} else {
			memcpy(t->dig[t->nrec], h->dig[i], HASH_LEN);
			t->iter[t->nrec++] = h->iter[i++];
		}
	}
order:
	return build_ord(t);
}

/* --- patching ------------------------------------------------------------- */

/* First position of ord[] whose (digest, index) is not less than (d, x). */
static size_t ord_lower(const struct byhash *h, size_t n,
			const unsigned char d[HASH_LEN], uint32_t x)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t y = h->ord[mid];
		int c = memcmp(h->dig[y], d, HASH_LEN);

		if (c < 0 || (c == 0 && y < x))
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

/* The code holding ord position `pos`. */
static size_t code_at(const struct byhash *h, size_t pos)
{
	return code_lower(h, pos + 1) - 1;
}

/* Room for patch to add `nadd` records.  On failure nothing changed that a
 * reader could see (arrays may just be larger). */
static int patch_reserve(struct byhash *h, size_t nadd)
{
	int r;

	if (h->nrec + nadd >= UINT32_MAX)
		return -EFBIG;
	r = store_grow((void **)&h->dig, &h->dcap, h->nrec + nadd,
		       sizeof(*h->dig));
	if (!r)
		r = store_grow((void **)&h->iter, &h->icap, h->nrec + nadd,
			       sizeof(*h->iter));
	if (!r)
		r = store_grow((void **)&h->ord, &h->ocap, h->nrec + nadd,
			       sizeof(*h->ord));
	if (!r)
		r = store_grow((void **)&h->cstart, &h->ccap,
			       h->ncode + nadd + 1, sizeof(*h->cstart));
	return r;
}

/* Take record p out. */
static void patch_remove(struct byhash *h, size_t p)
{
	size_t q = ord_lower(h, h->nrec, h->dig[p], (uint32_t)p), k, j;

	k = code_at(h, q);
	memmove(&h->ord[q], &h->ord[q + 1],
		(h->nrec - q - 1) * sizeof(*h->ord));
	for (j = k + 1; j <= h->ncode; j++)
		h->cstart[j]--;
	if (h->cstart[k] == h->cstart[k + 1]) {
		memmove(&h->cstart[k], &h->cstart[k + 1],
			(h->ncode - k) * sizeof(*h->cstart));
		h->ncode--;
	}
	memmove(&h->dig[p], &h->dig[p + 1],
		(h->nrec - p - 1) * sizeof(*h->dig));
	memmove(&h->iter[p], &h->iter[p + 1],
		(h->nrec - p - 1) * sizeof(*h->iter));
	h->nrec--;
	if (p < h->nrec)
		for (j = 0; j < h->nrec; j++)
			h->ord[j] -= h->ord[j] > p;
}

/* Put digest d of number iter in at record index p (patch_reserve done). */
static void patch_insert(struct byhash *h, size_t p,
			 const unsigned char d[HASH_LEN], int64_t iter)
{
	size_t q, k, j;
	bool prev, next;

	if (p < h->nrec)
		for (j = 0; j < h->nrec; j++)
			h->ord[j] += h->ord[j] >= p;
	memmove(&h->dig[p + 1], &h->dig[p],
		(h->nrec - p) * sizeof(*h->dig));
	memmove(&h->iter[p + 1], &h->iter[p],
		(h->nrec - p) * sizeof(*h->iter));
	memcpy(h->dig[p], d, HASH_LEN);
	h->iter[p] = iter;
	/* ord[] still has nrec entries, none of them p. */
	q = ord_lower(h, h->nrec, d, (uint32_t)p);
	prev = q > 0 && memcmp(h->dig[h->ord[q - 1]], d, HASH_LEN) == 0;
	next = q < h->nrec && memcmp(h->dig[h->ord[q]], d, HASH_LEN) == 0;
	if (prev) {
		k = code_at(h, q - 1);
	} else if (next) {
		k = code_at(h, q); /* q starts it and still will */
	} else {
		/* A new code, starting at q. */
		k = code_lower(h, q);
		memmove(&h->cstart[k + 1], &h->cstart[k],
			(h->ncode + 1 - k) * sizeof(*h->cstart));
		h->cstart[k] = (uint32_t)q;
		h->ncode++;
	}
	memmove(&h->ord[q + 1], &h->ord[q], (h->nrec - q) * sizeof(*h->ord));
	h->ord[q] = (uint32_t)p;
	h->nrec++;
	for (j = k + 1; j <= h->ncode; j++)
		h->cstart[j]++;
}

static void patch(struct byhash *h, const struct hplan *pl)
{
	size_t i, p;

	for (i = 0; i < pl->ngone; i++) {
		p = rec_lower(h, pl->gone[i]);
		if (p < h->nrec && h->iter[p] == pl->gone[i])
			patch_remove(h, p);
	}
	for (i = 0; i < pl->nadd; i++)
		patch_insert(h, rec_lower(h, pl->add_iter[i]), pl->add_d[i],
			     pl->add_iter[i]);
}

/* --- prepare and apply ---------------------------------------------------- */

static int bh_prepare(const void *st, const struct derived_batch *b,
		      void **plan)
{
	const struct byhash *h = st;
	struct fault f;
	struct hplan *pl;
	size_t i, k;
	int r;

	/* Tests look at the store from another thread while a build runs. */
	fault_read(&f);
	r = fault_at(&f, "byhash", "prepare");
	if (r)
		return r;
	r = -ENOMEM;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return -ENOMEM;
	pl->gone = malloc((b->ngone + 1) * sizeof(*pl->gone));
	if (!pl->gone)
		goto out;
	for (i = 0; i < b->ngone; i++) {
		k = rec_lower(h, b->gone[i]);
		if (k < h->nrec && h->iter[k] == b->gone[i])
			pl->gone[pl->ngone++] = b->gone[i];
	}
	r = read_codes(b, pl);
	if (r < 0)
		goto out;
	/* A state never built has no cstart[0] to patch. */
	if (pl->ngone + pl->nadd > PATCH_MAX || !h->ccap) {
		r = bh_merge(h, pl);
		/* The build's scratch (the per-record flags, the sort keys,
		 * the threads' read buffers) would stay in the heap: 4 MB at
		 * a million records.  Here, before the exclusive lock. */
		malloc_trim(0);
	}
out:
	if (r < 0) {
		bh_plan_free(pl);
		return r;
	}
	*plan = pl;
	return 0;
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
	*has_code = k < h->nrec && h->iter[k] == iter;
	if (*has_code)
		memcpy(d, h->dig[k], HASH_LEN);
out:
	store_view_unlock(s);
	return r;
}

static void code_fill(const struct byhash *h, size_t k, struct store_code *c)
{
	uint32_t first = h->ord[h->cstart[k]];

	memcpy(c->digest, h->dig[first], HASH_LEN);
	c->first_iter = h->iter[first];
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

		if (memcmp(h->dig[h->ord[h->cstart[mid]]], d, HASH_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= h->ncode ||
	    memcmp(h->dig[h->ord[h->cstart[lo]]], d, HASH_LEN) != 0) {
		r = -ENOENT;
		goto out;
	}
	code_fill(h, lo, code);
	for (i = 0; i < max && i < code->count; i++)
		iters[i] = h->iter[h->ord[h->cstart[lo] + i]];
out:
	store_view_unlock(s);
	return r;
}
