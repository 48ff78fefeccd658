/* commit.c - validate and normalise drops against a store.
 *
 * A plan owns the normalised lines accepted so far (`lines`) and, for each of
 * them, where it sits there and its number (`ent`), so that later drops of
 * the same group commit see the numbers earlier ones took.  A drop is first
 * built into scratch space past the end of `lines` and `ent`; only when all
 * of its objects are good do the counters move to include it (all or none).
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

/* How many of the highest records tell the store's dialect. */
#define DIALECT_PROBE 8

struct pent {
	int64_t iter;
	size_t off, len; /* in lines, without the LF */
};

struct commit_plan {
	struct store *s;
	const char *key;     /* iteration key of the store, NULL: not known yet */
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

/* What the type check found in one object (last duplicate key wins, as
 * jtext_get and Python do). */
struct fields {
	bool has_iter, has_iter_num, has_ts, has_hash;
	int64_t iter, iter_num;
	struct jtext_span hash; /* the code_hash string, when has_hash */
	const char *bad;        /* first key with a wrong type */
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

/* An integer >= 0 written as plain digits that fits int64_t. */
static bool parse_uint(struct jtext_span v, int64_t *n)
{
	int64_t x = 0;
	size_t i;

	if (jtext_type(v) != JTEXT_NUMBER || v.len == 0)
		return false;
	for (i = 0; i < v.len; i++) {
		int d = v.p[i] - '0';

		if (d < 0 || d > 9)
			return false;
		if (x > (INT64_MAX - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*n = x;
	return true;
}

static bool is_str_or_null(struct jtext_span v)
{
	enum jtext_type t = jtext_type(v);

	return t == JTEXT_STRING || t == JTEXT_NULL;
}

static void field_bad(struct fields *f, const char *key, const char *want)
{
	if (!f->bad) {
		f->bad = key;
		f->want = want;
	}
}

static int check_member(struct jtext_span key, struct jtext_span val,
			void *arg)
{
	static const char *const str_or_null[] = {
		"code", "strategy_code", "feedback", "feedback_used",
	};
	struct fields *f = arg;
	size_t i;

	if (jtext_key_is(key, "iteration")) {
		f->has_iter = true;
		if (!parse_uint(val, &f->iter))
			field_bad(f, "iteration", "an integer >= 0");
		return 0;
	}
	if (jtext_key_is(key, "iteration_num")) {
		f->has_iter_num = true;
		if (!parse_uint(val, &f->iter_num))
			field_bad(f, "iteration_num", "an integer >= 0");
		return 0;
	}
	if (jtext_key_is(key, "timestamp")) {
		f->has_ts = true;
		if (jtext_type(val) != JTEXT_STRING)
			field_bad(f, "timestamp", "a string");
		return 0;
	}
	if (jtext_key_is(key, "code_hash")) {
		/* null is "no hash", as for a record without code. */
		f->has_hash = jtext_type(val) != JTEXT_NULL;
		f->hash = val;
		if (!is_str_or_null(val))
			field_bad(f, "code_hash", "a string of 64 hex digits");
		return 0;
	}
	for (i = 0; i < sizeof(str_or_null) / sizeof(str_or_null[0]); i++) {
		if (jtext_key_is(key, str_or_null[i])) {
			if (!is_str_or_null(val))
				field_bad(f, str_or_null[i], "a string or null");
			return 0;
		}
	}
	return 0;
}

/* Read the iteration key and the code_hash habit from the highest records. */
static int read_dialect(struct commit_plan *p)
{
	int64_t iters[DIALECT_PROBE];
	struct store_stats st;
	struct buf line = BUF_INIT;
	size_t start, n, i;
	int r;

	r = store_highest(p->s, &p->highest, &p->have_highest);
	if (r < 0)
		return r;
	if (!p->have_highest)
		return 0;
	r = store_stats(p->s, &st);
	if (r < 0)
		return r;
	start = st.iterations > DIALECT_PROBE ? st.iterations - DIALECT_PROBE : 0;
	r = store_list(p->s, start, iters, DIALECT_PROBE, &n);
	if (r < 0)
		return r;
	/* Highest first: its key is the one the next number takes. */
	for (i = n; i-- > 0;) {
		struct jtext_span v;
		const char *key;
		bool found;

		buf_reset(&line);
		r = store_read(p->s, iters[i], &line);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			goto out;
		if (record_field(line.data, line.len, FIELD_ITERATION, &v, &key,
				 &found) == 0 && found && !p->key)
			p->key = key;
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
	int r;

	if (!p)
		return -ENOMEM;
	p->s = s;
	r = read_dialect(p);
	if (r < 0) {
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

void commit_plan_free(struct commit_plan *p)
{
	if (!p)
		return;
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
	struct buf compact;
	struct fields f;
	char hex[HASH_HEX_LEN + 1];
	bool fill_hash;
};

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

/* Type rules and code_hash of one object; fills rec. */
static int check_record(struct commit_plan *p, struct jtext_span v,
			struct rec *rc, char why[COMMIT_WHY_LEN])
{
	unsigned char d[HASH_LEN], given[HASH_LEN];
	bool has_code;
	int r;

	r = jtext_members(v, check_member, &rc->f);
	if (r < 0)
		return reject(why, -EINVAL, "record %zu: not a valid JSON object",
			      rc->idx);
	if (rc->f.bad)
		return reject(why, -EINVAL, "record %zu: \"%s\" must be %s",
			      rc->idx, rc->f.bad, rc->f.want);
	r = jtext_compact(v, &rc->compact);
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
	if (old.len == rc->compact.len &&
	    memcmp(old.data, rc->compact.data, old.len) == 0) {
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
 * part of the plan (past nent / lines.len of the committed part). */
static int add_record(struct commit_plan *p, struct rec *rc, size_t *nent,
		      int64_t *highest, bool *have_highest, const char **key,
		      bool *added, int64_t *num, char why[COMMIT_WHY_LEN])
{
	struct jtext_span ts = { NULL, 0 };
	const char *newkey = NULL;
	char now[48];
	bool exists, same;
	size_t off;
	int64_t n;
	int r;

	*added = false;
	if (rc->f.has_iter || rc->f.has_iter_num) {
		n = rc->f.has_iter ? rc->f.iter : rc->f.iter_num;
		if (!*key)
			*key = rc->f.has_iter ? "iteration" : "iteration_num";
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
		if (*have_highest && *highest == INT64_MAX)
			return reject(why, -EINVAL, "record %zu: no iteration "
				      "number left after %" PRId64, rc->idx,
				      *highest);
		n = *have_highest ? *highest + 1 : 0;
		if (!*key)
			*key = "iteration";
		newkey = *key;
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
	const char *key = p->key;
	int r;

	why[0] = '\0';
	*count = 0;
	*first = *last = -1;
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

		r = check_record(p, vs.v[i], &rc, why);
		if (!r)
			r = add_record(p, &rc, &nent, &highest, &have_highest,
				       &key, &added, &num, why);
		buf_free(&rc.compact);
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
	p->key = key;
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
