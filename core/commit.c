/* commit.c - validate and normalise drops against a store.
 *
 * A plan owns the normalised lines accepted so far (`lines`) and, for each of
 * them, where it sits there and its number (`ent`), so that later drops of
 * the same group commit see the numbers earlier ones took.  A drop is first
 * built into scratch space past the end of `lines` and `ent`; only when all
 * of its objects are good do the counters move to include it (all or none).
 *
 * Each object: one member walk checks every member against the table of
 * record fields (record.h) and notes the dialect keys; then the aliases must
 * agree, the number fit under STORE_ITER_MAX, the record be complete for the
 * store's shape (store_shape, copied once per plan); then it is written
 * compact in the store's dialect, numbered, stamped and hashed.
 */
#include "commit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hash.h"
#include "jtext.h"
#include "record.h"

/* How many of the highest records tell whether the store uses code_hash. */
#define HASH_PROBE 8

struct pent {
	int64_t iter;
	size_t off, len; /* in lines, without the LF */
};

struct commit_plan {
	struct store *s;
	struct store_shape shape; /* what every record of the store carries */
	/* Dialect fields: the key this plan writes (the store's, else the one
	 * the plan's first record with the field used); NULL: not known. */
	const char *name[FIELD_COUNT];
	bool use_hash;       /* the store's records carry code_hash */
	bool have_highest;
	int64_t highest;     /* over the store and the accepted lines */
	struct buf lines;
	struct pent *ent;
	size_t nent, cap;
};

/* The values of one drop, in order. */
struct vals {
	struct jtext_span *v;
	size_t n, cap;
};

/* One member of a drop's object. */
struct mem {
	struct jtext_span key, val;
	int field;           /* dialect field of the key, else -1 */
	unsigned alias;
};

/* What the member walk found in one object (last duplicate key wins, as
 * jtext_get and Python do). */
struct fields {
	struct mem *m;
	size_t n, cap;
	bool has_ts, has_hash;
	struct jtext_span hash; /* the code_hash string, when has_hash */
	/* Dialect fields: the value under each alias (last duplicate). */
	bool has_alias[FIELD_COUNT][2];
	struct jtext_span alias[FIELD_COUNT][2];
	char bad[64];           /* first key with a wrong value, "" none */
	const char *want;       /* what it should have been */
};

static int vals_push(struct jtext_span v, void *arg)
{
	struct vals *vs = arg;
	struct jtext_span *p;

	if (vs->n == vs->cap) {
		vs->cap = vs->cap ? vs->cap * 2 : 4;
		p = realloc(vs->v, vs->cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		vs->v = p;
	}
	vs->v[vs->n++] = v;
	return 0;
}

/* Every member goes through the table of record fields (record.h). */
static int check_member(struct jtext_span key, struct jtext_span val,
			void *arg)
{
	struct fields *f = arg;
	enum record_field fld;
	struct mem *m;
	unsigned a;
	char bad[sizeof(f->bad)];
	const char *want;

	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 16;
		m = realloc(f->m, f->cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		f->m = m;
	}
	m = &f->m[f->n++];
	*m = (struct mem){ key, val, -1, 0 };
	if (!record_member_ok(key, val, bad, sizeof(bad), &want) &&
	    !f->bad[0]) {
		memcpy(f->bad, bad, sizeof(bad));
		f->want = want;
	}
	if (record_dialect_key(key, &fld, &a)) {
		m->field = (int)fld;
		m->alias = a;
		f->has_alias[fld][a] = true;
		f->alias[fld][a] = val;
	} else if (jtext_key_is(key, "timestamp")) {
		f->has_ts = true;
	} else if (jtext_key_is(key, "code_hash")) {
		/* null is "no hash", as for a record without code. */
		f->has_hash = jtext_type(val) != JTEXT_NULL;
		f->hash = val;
	}
	return 0;
}

/* Whether the store's records carry code_hash: its highest records say. */
static int read_hash_habit(struct commit_plan *p)
{
	int64_t iters[HASH_PROBE];
	struct store_stats st;
	struct buf line = BUF_INIT;
	struct jtext_span v;
	size_t start, n, i;
	bool found;
	int r;

	r = store_stats(p->s, &st);
	if (r < 0)
		return r;
	start = st.iterations > HASH_PROBE ? st.iterations - HASH_PROBE : 0;
	r = store_list(p->s, start, iters, HASH_PROBE, &n);
	if (r < 0)
		return r;
	for (i = 0; i < n && !p->use_hash; i++) {
		buf_reset(&line);
		r = store_read(p->s, iters[i], &line);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			goto out;
		if (record_field(line.data, line.len, FIELD_CODE_HASH, &v, NULL,
				 &found) == 0 && found)
			p->use_hash = true;
	}
	r = 0;
out:
	buf_free(&line);
	return r;
}

int commit_plan_new(struct store *s, struct commit_plan **out)
{
	struct commit_plan *p = calloc(1, sizeof(*p));
	unsigned f;
	int r;

	if (!p)
		return -ENOMEM;
	p->s = s;
	r = store_highest(s, &p->highest, &p->have_highest);
	if (!r)
		r = store_shape(s, &p->shape);
	if (!r && p->have_highest)
		r = read_hash_habit(p);
	if (r < 0) {
		store_shape_free(&p->shape);
		free(p);
		return r;
	}
	for (f = 0; f < FIELD_COUNT; f++)
		p->name[f] = p->shape.dialect[f];
	*out = p;
	return 0;
}

void commit_plan_free(struct commit_plan *p)
{
	if (!p)
		return;
	store_shape_free(&p->shape);
	buf_free(&p->lines);
	free(p->ent);
	free(p);
}

const char *commit_plan_lines(const struct commit_plan *p, size_t *len)
{
	*len = p->lines.len;
	return p->lines.data ? p->lines.data : "";
}

/* Python's datetime.now().isoformat(), always with microseconds. */
static int now_iso(char *out, size_t size)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0 ||
	    !localtime_r(&ts.tv_sec, &tm))
		return -EINVAL;
	n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0)
		return -EINVAL;
	snprintf(out + n, size - n, ".%06ld", ts.tv_nsec / 1000);
	return 0;
}

/* Append the normalised line of one compact object to `out` (no LF):
 * `key` (NULL: the object has its number) with `n` first, then code_hash
 * `hex` and timestamp `ts` (NULL: not added) as the last members.  `ts` is
 * JSON text, quotes included. */
static int build_line(struct buf *out, const char *obj, size_t len,
		      const char *key, int64_t n, const char *hex,
		      struct jtext_span ts)
{
	bool empty = len == 2;
	int r;

	r = buf_putc(out, '{');
	if (!r && key)
		r = buf_printf(out, "\"%s\":%" PRId64 "%s", key, n,
			       empty ? "" : ",");
	if (!r)
		r = buf_append(out, obj + 1, len - 2);
	if (!r && hex) {
		r = buf_printf(out, "%s\"code_hash\":\"%s\"",
			       empty && !key ? "" : ",", hex);
		empty = false;
	}
	if (!r && ts.p) {
		r = buf_printf(out, "%s\"timestamp\":",
			       empty && !key ? "" : ",");
		if (!r)
			r = buf_append(out, ts.p, ts.len);
	}
	if (!r)
		r = buf_putc(out, '}');
	return r;
}

/* The code's SHA-256, if the record has code. */
static int code_digest(const char *line, size_t len, unsigned char d[HASH_LEN],
		       bool *has)
{
	struct buf code = BUF_INIT;
	struct jtext_span v;
	int r;

	r = record_field(line, len, FIELD_CODE, &v, NULL, has);
	if (r < 0 || !*has)
		return r;
	r = jtext_string_decode(v, &code);
	if (!r)
		r = hash_sha256(code.data ? code.data : "", code.len, d);
	buf_free(&code);
	return r;
}

/* One record of a drop being added. */
struct rec {
	size_t idx;            /* 1-based position in the drop */
	struct buf compact;    /* in the store's dialect */
	struct buf own;        /* in the drop's own words, when they differ */
	struct fields f;
	bool has_iter;
	int64_t iter;
	const char *used[FIELD_COUNT]; /* dialect keys as written, or NULL */
	char hex[HASH_HEX_LEN + 1];
	bool fill_hash;
};

static void rec_free(struct rec *rc)
{
	buf_free(&rc->compact);
	buf_free(&rc->own);
	free(rc->f.m);
}

static int reject(char why[COMMIT_WHY_LEN], int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int reject(char why[COMMIT_WHY_LEN], int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, COMMIT_WHY_LEN, fmt, ap);
	va_end(ap);
	return err;
}

/* Append `piece` to the reason if it fits with room for ", ..." after it;
 * once one does not, end the reason with "..." and take no more. */
static void why_add(char why[COMMIT_WHY_LEN], bool *full, const char *piece)
{
	size_t w = strlen(why), n = strlen(piece);

	if (*full)
		return;
	if (w + n + sizeof(", ...") > COMMIT_WHY_LEN) {
		*full = true;
		if (w + sizeof("...") <= COMMIT_WHY_LEN)
			memcpy(why + w, "...", sizeof("..."));
		return;
	}
	memcpy(why + w, piece, n + 1);
}

/* The last member of the drop that is field x of the store's shape. */
static const struct mem *find_member(const struct fields *f,
				     const struct store_shape_field *x)
{
	size_t i;

	for (i = f->n; i-- > 0;) {
		const struct mem *m = &f->m[i];

		if (x->field >= 0 ? m->field == x->field :
				    m->field < 0 && jtext_key_is(m->key, x->key))
			return m;
	}
	return NULL;
}

/* Is the record complete: every field every record of the store carries
 * (number, timestamp and code_hash excepted: they are filled in), each with
 * a type that field has had in the store? */
/* The types a drop may give field `x`: those it already has in the store;
 * also, for a meaning of the contract, what the loop reads there (null is
 * "absent" to it: a store whose records all say "error": null takes an
 * error text); and any type at all where the store has only ever held
 * null, which tells nothing about what the loop expects. */
static unsigned allowed_types(const struct store_shape_field *x)
{
	const struct record_field_def *def;
	unsigned t = x->types;

	if (x->field >= 0) {
		def = record_field_def((enum record_field)x->field);
		t |= def->types | (def->nullable ? RECORD_T_NULL : 0);
	}
	if (t == RECORD_T_NULL)
		t = RECORD_T_ANY;
	return t;
}

static int check_complete(const struct commit_plan *p, const struct rec *rc,
			  char why[COMMIT_WHY_LEN])
{
	const struct store_shape *sh = &p->shape;
	char piece[COMMIT_WHY_LEN], types[96];
	const struct mem *m;
	bool full = false, any = false;
	size_t i;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < sh->n; i++) {
			const struct store_shape_field *x = &sh->f[i];

			if (x->field == FIELD_ITERATION ||
			    (x->field < 0 && (strcmp(x->key, "timestamp") == 0 ||
					      strcmp(x->key, "code_hash") == 0)))
				continue;
			m = find_member(&rc->f, x);
			if (pass == 0 && !m) {
				if (!any)
					snprintf(why, COMMIT_WHY_LEN,
						 "record %zu: ", rc->idx);
				snprintf(piece, sizeof(piece), "%s%s",
					 any ? ", " : "missing fields: ",
					 x->key);
				why_add(why, &full, piece);
				any = true;
			} else if (pass == 1 && m &&
				   !(record_type_bit(m->val) &
				     allowed_types(x))) {
				if (!any)
					snprintf(why, COMMIT_WHY_LEN,
						 "record %zu: ", rc->idx);
				record_type_text(allowed_types(x), types,
						 sizeof(types));
				snprintf(piece, sizeof(piece),
					 "%s\"%.*s\" must be %s",
					 any ? "; " : "", (int)m->key.len - 2,
					 m->key.p + 1, types);
				why_add(why, &full, piece);
				any = true;
			}
		}
	}
	return any ? -EINVAL : 0;
}

/* Write the object compact, each dialect key under the plan's name for it
 * (`names`; NULL: the drop's own), a second alias of one meaning (same
 * value: checked before) left out. */
static int write_compact(const struct rec *rc, const char *const *names,
			 struct buf *out, bool *renamed)
{
	int emitted[FIELD_COUNT];
	size_t i;
	int r;

	for (i = 0; i < FIELD_COUNT; i++)
		emitted[i] = -1;
	r = buf_putc(out, '{');
	for (i = 0; i < rc->f.n && !r; i++) {
		const struct mem *m = &rc->f.m[i];
		const char *name;

		if (m->field >= 0) {
			if (emitted[m->field] >= 0 &&
			    emitted[m->field] != (int)m->alias) {
				*renamed = true;
				continue;
			}
			emitted[m->field] = (int)m->alias;
			name = record_field_def((enum record_field)m->field)
				->key[m->alias];
			if (names[m->field] && strcmp(names[m->field], name)) {
				name = names[m->field];
				*renamed = true;
			}
			r = buf_printf(out, "%s\"%s\":", out->len > 1 ? "," : "",
				       name);
		} else {
			r = out->len > 1 ? buf_putc(out, ',') : 0;
			if (!r)
				r = buf_append(out, m->key.p, m->key.len);
			if (!r)
				r = buf_putc(out, ':');
		}
		if (!r)
			r = jtext_compact(m->val, out);
	}
	if (!r)
		r = buf_putc(out, '}');
	return r;
}

/* Two aliases of one meaning must agree (byte for byte, once compact). */
static int check_aliases(struct rec *rc, char why[COMMIT_WHY_LEN])
{
	const struct record_field_def *d;
	struct buf a = BUF_INIT, b = BUF_INIT;
	unsigned f;
	int r = 0;

	for (f = 0; f < FIELD_COUNT && !r; f++) {
		if (!rc->f.has_alias[f][0] || !rc->f.has_alias[f][1])
			continue;
		buf_reset(&a);
		buf_reset(&b);
		r = jtext_compact(rc->f.alias[f][0], &a);
		if (!r)
			r = jtext_compact(rc->f.alias[f][1], &b);
		if (r < 0)
			break;
		if (a.len == b.len && memcmp(a.data, b.data, a.len) == 0)
			continue;
		d = record_field_def((enum record_field)f);
		r = reject(why, -EINVAL, "record %zu: \"%s\" and \"%s\" are "
			   "two names of one field with different values",
			   rc->idx, d->key[0], d->key[1]);
	}
	buf_free(&a);
	buf_free(&b);
	return r;
}

/* Type rules, dialect, completeness and code_hash of one object; fills
 * rec.  `names` as for write_compact. */
static int check_record(struct commit_plan *p, const char *const *names,
			struct jtext_span v, struct rec *rc,
			char why[COMMIT_WHY_LEN])
{
	unsigned char d[HASH_LEN], given[HASH_LEN];
	bool has_code, found, renamed;
	size_t i;
	int r;

	r = jtext_members(v, check_member, &rc->f);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return reject(why, -EINVAL, "record %zu: not a valid JSON object",
			      rc->idx);
	if (rc->f.bad[0])
		return reject(why, -EINVAL, "record %zu: \"%s\" must be %s",
			      rc->idx, rc->f.bad, rc->f.want);
	r = check_aliases(rc, why);
	if (r < 0)
		return r;
	r = record_iteration(v.p, v.len, &rc->iter, &found);
	if (r < 0)
		return reject(why, -EINVAL, "record %zu: not a valid JSON object",
			      rc->idx);
	rc->has_iter = found;
	if (found && rc->iter > STORE_ITER_MAX)
		return reject(why, -EINVAL, "record %zu: iteration %" PRId64
			      " is above the limit of %" PRId64, rc->idx,
			      rc->iter, (int64_t)STORE_ITER_MAX);
	r = check_complete(p, rc, why);
	if (r < 0)
		return r;
	for (i = 0; i < rc->f.n; i++) {
		const struct mem *m = &rc->f.m[i];

		if (m->field >= 0 && !rc->used[m->field])
			rc->used[m->field] = names[m->field] ? names[m->field] :
				record_field_def((enum record_field)m->field)
					->key[m->alias];
	}
	renamed = false;
	r = write_compact(rc, names, &rc->compact, &renamed);
	/* A re-send of an older line in another dialect is still a re-send. */
	if (!r && renamed)
		r = jtext_compact(v, &rc->own);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return reject(why, -EINVAL, "record %zu: not a valid JSON object",
			      rc->idx);
	/* Hashing megabytes of code is only worth it when a hash is wanted. */
	has_code = false;
	if (p->use_hash || rc->f.has_hash)
		r = code_digest(rc->compact.data, rc->compact.len, d,
				&has_code);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return reject(why, -EINVAL, "record %zu: the code cannot be "
			      "decoded", rc->idx);
	if (has_code)
		hash_to_hex(d, rc->hex);
	if (rc->f.has_hash) {
		struct buf hx = BUF_INIT;

		r = jtext_string_decode(rc->f.hash, &hx);
		if (!r && hash_from_hex(hx.data ? hx.data : "", hx.len,
					given) < 0)
			r = -EINVAL;
		buf_free(&hx);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return reject(why, -EINVAL, "record %zu: \"code_hash\" "
				      "must be a string of 64 hex digits",
				      rc->idx);
		if (!has_code)
			return reject(why, -EINVAL, "record %zu: \"code_hash\" "
				      "given but the record has no code",
				      rc->idx);
		if (memcmp(d, given, HASH_LEN) != 0)
			return reject(why, -EINVAL, "record %zu: \"code_hash\" "
				      "does not match the code (sha256 %s)",
				      rc->idx, rc->hex);
	}
	rc->fill_hash = p->use_hash && has_code && !rc->f.has_hash;
	return 0;
}

/* The line already holding number `n`, in the plan (including the part of
 * the current drop built so far) or in the store.  *found false if none. */
static int existing_line(struct commit_plan *p, size_t nent, int64_t n,
			 struct buf *out, bool *found)
{
	struct jtext_span v;
	struct buf line = BUF_INIT;
	const char *t;
	size_t i, len;
	int r;

	*found = false;
	for (i = nent; i-- > 0;) {
		if (p->ent[i].iter == n) {
			*found = true;
			return buf_append(out, p->lines.data + p->ent[i].off,
					  p->ent[i].len);
		}
	}
	r = store_read(p->s, n, &line);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		goto out;
	*found = true;
	t = line.data;
	len = line.len;
	if (len >= 3 && memcmp(t, "\xef\xbb\xbf", 3) == 0) {
		t += 3;
		len -= 3;
	}
	/* A stored line that does not parse differs from any valid drop. */
	if (jtext_parse_value(t, len, &v) < 0)
		goto out;
	r = jtext_compact(v, out);
	if (r == -EINVAL)
		r = 0;
out:
	buf_free(&line);
	return r;
}

/* Is the record with explicit number `n` a re-send of the line stored
 * under n?  Identical compact bytes, or identical once the fields this
 * module fills in are filled in as they were then (a drop without timestamp
 * sent again after a commit whose outcome the writer did not learn). */
static int same_as_existing(struct commit_plan *p, size_t nent,
			    const struct rec *rc, int64_t n, bool *exists,
			    bool *same)
{
	struct buf old = BUF_INIT, cand = BUF_INIT;
	struct jtext_span ts = { NULL, 0 };
	bool found;
	int r;

	*same = false;
	r = existing_line(p, nent, n, &old, exists);
	if (r < 0 || !*exists)
		goto out;
	if ((old.len == rc->compact.len &&
	     memcmp(old.data, rc->compact.data, old.len) == 0) ||
	    (rc->own.len && old.len == rc->own.len &&
	     memcmp(old.data, rc->own.data, old.len) == 0)) {
		*same = true;
		goto out;
	}
	if (!rc->f.has_ts) {
		r = record_field(old.data, old.len, FIELD_TIMESTAMP, &ts, NULL,
				 &found);
		if (r < 0 || !found) {
			r = 0;
			goto out;
		}
	}
	r = build_line(&cand, rc->compact.data, rc->compact.len, NULL, 0,
		       rc->fill_hash ? rc->hex : NULL, ts);
	if (r < 0)
		goto out;
	*same = cand.len == old.len && memcmp(cand.data, old.data, old.len) == 0;
out:
	buf_free(&cand);
	buf_free(&old);
	return r;
}

static int reserve_ent(struct commit_plan *p, size_t need)
{
	struct pent *e;
	size_t cap;

	if (need <= p->cap)
		return 0;
	cap = p->cap ? p->cap : 16;
	while (cap < need)
		cap *= 2;
	e = realloc(p->ent, cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	p->ent = e;
	p->cap = cap;
	return 0;
}

/* Number, check against what exists and append one record to the scratch
 * part of the plan (past nent / lines.len of the committed part).  `names`
 * as for write_compact; the number it assigns goes under
 * names[FIELD_ITERATION], which it sets when still unknown. */
static int add_record(struct commit_plan *p, struct rec *rc, size_t *nent,
		      int64_t *highest, bool *have_highest,
		      const char **names, bool *added, int64_t *num,
		      char why[COMMIT_WHY_LEN])
{
	struct jtext_span ts = { NULL, 0 };
	const char *newkey = NULL;
	char now[48];
	bool exists, same;
	size_t off;
	int64_t n;
	int r;

	*added = false;
	if (rc->has_iter) {
		n = rc->iter;
		if (*have_highest && n <= *highest) {
			r = same_as_existing(p, *nent, rc, n, &exists, &same);
			if (r < 0)
				return r;
			if (exists && same) {
				*num = n;
				return 0;
			}
			if (exists)
				return reject(why, -EEXIST, "record %zu: "
					      "iteration %" PRId64 " already "
					      "exists with different content",
					      rc->idx, n);
		}
	} else {
		if (*have_highest && *highest >= STORE_ITER_MAX)
			return reject(why, -EINVAL, "record %zu: no iteration "
				      "number left after %" PRId64 " (the limit)",
				      rc->idx, *highest);
		n = *have_highest ? *highest + 1 : 0;
		/* An empty store takes the drop's dialect. */
		if (!names[FIELD_ITERATION])
			names[FIELD_ITERATION] =
				rc->used[FIELD_CODE] &&
				strcmp(rc->used[FIELD_CODE], "strategy_code") == 0 ?
				"iteration_num" : "iteration";
		newkey = names[FIELD_ITERATION];
	}
	if (!rc->f.has_ts) {
		r = now_iso(now + 1, sizeof(now) - 2);
		if (r < 0)
			return reject(why, -EINVAL, "record %zu: cannot read the "
				      "clock", rc->idx);
		now[0] = '"';
		ts.len = strlen(now);
		now[ts.len++] = '"';
		ts.p = now;
	}
	off = p->lines.len;
	r = build_line(&p->lines, rc->compact.data, rc->compact.len, newkey, n,
		       rc->fill_hash ? rc->hex : NULL, ts);
	if (!r)
		r = buf_putc(&p->lines, '\n');
	if (!r)
		r = reserve_ent(p, *nent + 1);
	if (r < 0)
		return r;
	p->ent[*nent] = (struct pent){ n, off, p->lines.len - off - 1 };
	(*nent)++;
	if (!*have_highest || n > *highest)
		*highest = n;
	*have_highest = true;
	*added = true;
	*num = n;
	return 0;
}

int commit_plan_add(struct commit_plan *p, const char *drop, size_t len,
		    size_t max_record, size_t *count, int64_t *first,
		    int64_t *last, char why[COMMIT_WHY_LEN])
{
	struct vals vs = { NULL, 0, 0 };
	size_t old_len = p->lines.len, nent = p->nent, i, errpos = 0, skip = 0;
	size_t added_n = 0;
	int64_t highest = p->highest, num = 0, lo = 0, hi = 0;
	bool have_highest = p->have_highest, added = false;
	const char *names[FIELD_COUNT];
	unsigned f;
	int r;

	why[0] = '\0';
	*count = 0;
	*first = *last = -1;
	memcpy(names, p->name, sizeof(names));
	if (len > max_record)
		return reject(why, -EFBIG, "the drop is %zu bytes, over the "
			      "limit of %zu", len, max_record);
	/* Some editors start a file with a UTF-8 BOM; it is not JSON. */
	if (len >= 3 && memcmp(drop, "\xef\xbb\xbf", 3) == 0)
		skip = 3;
	r = jtext_split_values(drop + skip, len - skip, vals_push, &vs,
			       &errpos);
	errpos += skip;
	if (r == -EINVAL) {
		r = reject(why, -EINVAL, "not JSON: syntax error at byte %zu",
			   errpos);
		goto out;
	}
	if (r < 0)
		goto out;
	if (vs.n == 0) {
		r = reject(why, -EINVAL, "no JSON object in the drop");
		goto out;
	}
	for (i = 0; i < vs.n; i++) {
		if (jtext_type(vs.v[i]) != JTEXT_OBJECT) {
			r = reject(why, -EINVAL, "record %zu: not a JSON object "
				   "(at byte %zu)", i + 1,
				   (size_t)(vs.v[i].p - drop));
			goto out;
		}
	}
	for (i = 0; i < vs.n; i++) {
		struct rec rc = { .idx = i + 1 };

		r = check_record(p, names, vs.v[i], &rc, why);
		if (!r)
			r = add_record(p, &rc, &nent, &highest, &have_highest,
				       names, &added, &num, why);
		if (!r) {
			/* Later records speak the dialect this one set. */
			for (f = 0; f < FIELD_COUNT; f++)
				if (!names[f])
					names[f] = rc.used[f];
		}
		rec_free(&rc);
		if (r < 0)
			goto out;
		if (added) {
			if (!added_n)
				lo = num;
			hi = num;
			added_n++;
		}
	}
	p->nent = nent;
	p->highest = highest;
	p->have_highest = have_highest;
	memcpy(p->name, names, sizeof(names));
	*count = added_n;
	if (added_n) {
		*first = lo;
		*last = hi;
	}
out:
	if (r < 0) {
		/* All or none: forget the scratch lines of this drop. */
		p->lines.len = old_len;
		if (p->lines.data)
			p->lines.data[old_len] = '\0';
	}
	free(vs.v);
	return r;
}
