/* record.c - one record read through the table of record fields.
 *
 * Contents: the view names; THE table of record fields (defs[]) and its
 * type words; the alias walk every reader uses (keys_collect, keys_field);
 * a commit's checks through the table (record_member_ok); the index's fast
 * member walk (record_members_fast); ISO 8601 times to the microsecond;
 * the views.
 */
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const view_names[VIEW_COUNT] = {
	[VIEW_CODE] = "code.py",
	[VIEW_METRICS] = "metrics.json",
	[VIEW_FEEDBACK] = "feedback.txt",
	[VIEW_ERROR] = "error.txt",
	[VIEW_RECORD] = "record.json",
};

const char *view_name(enum view_kind k)
{
	return (unsigned)k < VIEW_COUNT ? view_names[k] : NULL;
}

int view_by_name(const char *name, enum view_kind *k)
{
	unsigned i;

	for (i = 0; i < VIEW_COUNT; i++) {
		if (strcmp(name, view_names[i]) == 0) {
			*k = (enum view_kind)i;
			return 0;
		}
	}
	return -ENOENT;
}

/* THE table of record fields: the contract's alias table.  Readers,
 * commit's checks and the dialect renaming all go through it. */
static const struct record_field_def defs[FIELD_COUNT] = {
	[FIELD_ITERATION] = { "iteration number",
			      { "iteration", "iteration_num" }, 2, NULL,
			      RECORD_T_NUMBER, false, true,
			      "an integer >= 0" },
	[FIELD_CODE] = { "strategy code", { "code", "strategy_code" }, 2, NULL,
			 RECORD_T_STRING, true, true, "a string or null" },
	[FIELD_METRICS] = { "metrics", { "metrics" }, 1, NULL,
			    RECORD_T_ANY & ~RECORD_T_NULL, true, false,
			    "any JSON value" },
	[FIELD_FEEDBACK] = { "feedback", { "feedback", "feedback_used" }, 2,
			     NULL, RECORD_T_STRING, true, true,
			     "a string or null" },
	[FIELD_ERROR] = { "error", { "error", "execution_result" }, 2,
			  "error_message", RECORD_T_STRING, true, false,
			  "a string or null" },
	[FIELD_TIMESTAMP] = { "timestamp", { "timestamp" }, 1, NULL,
			      RECORD_T_STRING, false, false,
			      "an ISO 8601 date and time, as a string" },
	[FIELD_CODE_HASH] = { "code hash", { "code_hash" }, 1, NULL,
			      RECORD_T_STRING, true, false,
			      "a string of 64 hex digits" },
	[FIELD_SUCCESS] = { "success", { "success", "execution_result" }, 2,
			    "success", RECORD_T_BOOL, true, false,
			    "true, false or null" },
};

const struct record_field_def *record_field_def(enum record_field f)
{
	return (unsigned)f < FIELD_COUNT ? &defs[f] : NULL;
}

static unsigned type_bit_of(char c)
{
	switch (c) {
	case '"':
		return RECORD_T_STRING;
	case '{':
		return RECORD_T_OBJECT;
	case '[':
		return RECORD_T_ARRAY;
	case 't':
	case 'f':
		return RECORD_T_BOOL;
	case 'n':
		return RECORD_T_NULL;
	default:
		return RECORD_T_NUMBER;
	}
}

unsigned record_type_bit(struct jtext_span v)
{
	return v.len ? type_bit_of(v.p[0]) : RECORD_T_NUMBER;
}

void record_type_text(unsigned types, char *out, size_t size)
{
	static const char *const names[] = {
		"a string", "a number", "an object", "an array", "a boolean",
		"null",
	};
	unsigned i, n = 0, total = (unsigned)__builtin_popcount(types);
	size_t w = 0;
	int k;

	if (!size)
		return;
	out[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(types & (1u << i)))
			continue;
		n++;
		k = snprintf(out + w, size - w, "%s%s",
			     n == 1 ? "" : n == total ? " or " : ", ",
			     names[i]);
		if (k < 0 || (size_t)k >= size - w)
			return;
		w += (size_t)k;
	}
}

/* Last occurrence of each alias key of each row (duplicates: last wins).
 * execution_result is an alias of two rows and is kept in both. */
struct keys {
	struct jtext_span v[FIELD_COUNT][2];
	bool have[FIELD_COUNT][2];
};

/* Does the raw key span spell `name`?  Compares raw text by length first
 * and decodes only keys that hold an escape. */
static bool key_is(struct jtext_span key, bool plain, const char *name)
{
	size_t n = key.len - 2;

	/* The first byte rules out most keys of most rows before strlen. */
	if (plain)
		return n && key.p[1] == name[0] && n == strlen(name) &&
		       memcmp(key.p + 1, name, n) == 0;
	return jtext_key_is(key, name);
}

/* Called for every member of every line the index validates. */
static int keys_cb(struct jtext_span key, struct jtext_span val, void *arg)
{
	bool plain = !memchr(key.p + 1, '\\', key.len - 2);
	struct keys *ks = arg;
	unsigned f, i;

	for (f = 0; f < FIELD_COUNT; f++) {
		for (i = 0; i < defs[f].nkey; i++) {
			if (key_is(key, plain, defs[f].key[i])) {
				ks->v[f][i] = val;
				ks->have[f][i] = true;
			}
		}
	}
	return 0;
}

/* The line as an object span: without surrounding whitespace (the CR of
 * CRLF included). */
static int line_object(const char *line, size_t len, struct jtext_span *obj)
{
	while (len && (*line == ' ' || *line == '\t' || *line == '\r' ||
		       *line == '\n')) {
		line++;
		len--;
	}
	while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' ||
		       line[len - 1] == '\r' || line[len - 1] == '\n'))
		len--;
	if (!len || *line != '{')
		return -EINVAL;
	obj->p = line;
	obj->len = len;
	return 0;
}

static int keys_collect(const char *line, size_t len, struct keys *ks,
			struct jtext_span *obj)
{
	memset(ks, 0, sizeof(*ks));
	if (line_object(line, len, obj) < 0)
		return -EINVAL;
	return jtext_members(*obj, keys_cb, ks) ? -EINVAL : 0;
}

/* keys_collect, or for a line that passed the full validation (`trusted`)
 * the same keys from record_members_fast's walk, which checks nothing. */
static int keys_of(const char *line, size_t len, bool trusted,
		   struct keys *ks, struct jtext_span *obj)
{
	if (!trusted)
		return keys_collect(line, len, ks, obj);
	memset(ks, 0, sizeof(*ks));
	if (line_object(line, len, obj) < 0 ||
	    record_members_fast(line, len, keys_cb, ks))
		return -EINVAL;
	return 0;
}

bool record_parse_count(struct jtext_span v, int64_t *n)
{
	const char *p = v.p, *end = v.p + v.len;
	int64_t x = 0;
	bool neg = false;

	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	if (p == end)
		return false;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return false;
		if (x > (INT64_MAX - (*p - '0')) / 10)
			return false;
		x = x * 10 + (*p - '0');
	}
	if (neg && x != 0)
		return false;
	*n = x;
	return true;
}

/* Is `v` (not null) readable as field f?  The type, and for the number
 * its form; the timestamp's text is checked by its readers. */
static bool value_type_ok(enum record_field f, struct jtext_span v)
{
	int64_t n;

	if (!(record_type_bit(v) & defs[f].types))
		return false;
	return f != FIELD_ITERATION || record_parse_count(v, &n);
}

/* The value of alias i of row f, through its nested member if any. */
static bool alias_value(enum record_field f, unsigned i, struct jtext_span v,
			struct jtext_span *out)
{
	bool has;

	if (!defs[f].nested || i + 1 < defs[f].nkey) {
		*out = v;
		return true;
	}
	return jtext_type(v) == JTEXT_OBJECT &&
	       jtext_get(v, defs[f].nested, out, &has) == 0 && has;
}

/* Resolve a field from the collected keys: the first alias present wins,
 * and a wrong-typed value there hides the later aliases. */
static void keys_field(const struct keys *ks, enum record_field f,
		       struct jtext_span *val, const char **key, bool *found)
{
	struct jtext_span v;
	unsigned i;

	*found = false;
	for (i = 0; i < defs[f].nkey; i++)
		if (ks->have[f][i])
			break;
	if (i == defs[f].nkey || !alias_value(f, i, ks->v[f][i], &v) ||
	    !value_type_ok(f, v))
		return;
	*val = v;
	if (key)
		*key = defs[f].key[i];
	*found = true;
}

int record_field(const char *line, size_t len, enum record_field f,
		 struct jtext_span *val, const char **key, bool *found)
{
	struct jtext_span obj;
	struct keys ks;

	*found = false;
	if ((unsigned)f >= FIELD_COUNT)
		return -EINVAL;
	if (keys_collect(line, len, &ks, &obj) < 0)
		return -EINVAL;
	keys_field(&ks, f, val, key, found);
	return 0;
}

int record_fields(const char *line, size_t len, bool trusted,
		  const enum record_field *f, size_t n,
		  struct jtext_span *val, bool *found)
{
	struct jtext_span obj;
	struct keys ks;
	size_t i;

	for (i = 0; i < n; i++) {
		found[i] = false;
		if ((unsigned)f[i] >= FIELD_COUNT)
			return -EINVAL;
	}
	if (keys_of(line, len, trusted, &ks, &obj) < 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		keys_field(&ks, f[i], &val[i], NULL, &found[i]);
	return 0;
}


bool record_dialect_key(struct jtext_span key, enum record_field *f,
			unsigned *alias)
{
	bool plain = !memchr(key.p + 1, '\\', key.len - 2);
	unsigned k, i;

	for (k = 0; k < FIELD_COUNT; k++) {
		if (!defs[k].dialect)
			continue;
		for (i = 0; i < defs[k].nkey; i++) {
			if (key_is(key, plain, defs[k].key[i])) {
				*f = (enum record_field)k;
				*alias = i;
				return true;
			}
		}
	}
	return false;
}

/* A commit's rule for one value of field f: null where the row allows it,
 * else readable, and a timestamp must parse. */
static bool value_ok(enum record_field f, struct jtext_span v)
{
	struct buf s = BUF_INIT;
	int64_t us;
	bool ok;

	if (record_type_bit(v) == RECORD_T_NULL)
		return defs[f].nullable;
	if (!value_type_ok(f, v))
		return false;
	if (f != FIELD_TIMESTAMP)
		return true;
	ok = jtext_string_decode(v, &s) == 0 && s.data &&
	     record_parse_time(s.data, s.len, &us) == 0;
	buf_free(&s);
	return ok;
}

bool record_member_ok(struct jtext_span key, struct jtext_span val,
		      char *bad, size_t badlen, const char **want)
{
	bool plain = !memchr(key.p + 1, '\\', key.len - 2);
	struct jtext_span v;
	unsigned f, i;

	for (f = 0; f < FIELD_COUNT; f++) {
		for (i = 0; i < defs[f].nkey; i++) {
			if (!key_is(key, plain, defs[f].key[i]) ||
			    !alias_value(f, i, val, &v) ||
			    value_ok((enum record_field)f, v))
				continue;
			if (defs[f].nested && i + 1 == defs[f].nkey)
				snprintf(bad, badlen, "%s.%s", defs[f].key[i],
					 defs[f].nested);
			else
				snprintf(bad, badlen, "%s", defs[f].key[i]);
			*want = defs[f].want;
			return false;
		}
	}
	return true;
}

typedef unsigned char vu8 __attribute__((vector_size(16)));
typedef signed char vs8 __attribute__((vector_size(16)));

/* Past the string whose opening quote is just before p, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
	const char *q, *b;

	while ((q = memchr(p, '"', (size_t)(end - p)))) {
		for (b = q; b > p && b[-1] == '\\'; b--)
			;
		if (((q - b) & 1) == 0)
			return q + 1;
		p = q + 1;
	}
	return NULL;
}

/* Past the container whose opening bracket is just before p, or NULL.
 * Sixteen bytes at a time while none of them is a quote or a bracket
 * (metrics are mostly digits). */
static const char *skip_container(const char *p, const char *end)
{
	size_t depth = 1;
	uint64_t lo, hi;
	vu8 a;
	vs8 m;

	while (p < end) {
		if (end - p >= 16) {
			memcpy(&a, p, 16);
			m = (a == '"') | (a == '{') | (a == '}') | (a == '[') |
			    (a == ']');
			memcpy(&lo, &m, 8);
			memcpy(&hi, (const char *)&m + 8, 8);
			if (!(lo | hi)) {
				p += 16;
				continue;
			}
			p += lo ? __builtin_ctzll(lo) / 8 :
				  8 + __builtin_ctzll(hi) / 8;
		}
		switch (*p++) {
		case '"':
			p = skip_string(p, end);
			if (!p)
				return NULL;
			break;
		case '{':
		case '[':
			depth++;
			break;
		case '}':
		case ']':
			if (--depth == 0)
				return p;
			break;
		default:
			break;
		}
	}
	return NULL;
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

int record_members_fast(const char *line, size_t len,
			int (*cb)(struct jtext_span key, struct jtext_span val,
				  void *arg),
			void *arg)
{
	const char *p = line, *end = line + len;
	struct jtext_span key, val;
	int r;

	p = skip_ws(p, end);
	if (p == end || *p++ != '{')
		return -EINVAL;
	p = skip_ws(p, end);
	if (p < end && *p == '}')
		return skip_ws(p + 1, end) == end ? 0 : -EINVAL;
	for (;;) {
		if (p == end || *p != '"')
			return -EINVAL;
		key.p = p;
		p = skip_string(p + 1, end);
		if (!p)
			return -EINVAL;
		key.len = (size_t)(p - key.p);
		p = skip_ws(p, end);
		if (p == end || *p++ != ':')
			return -EINVAL;
		p = skip_ws(p, end);
		if (p == end)
			return -EINVAL;
		val.p = p;
		if (*p == '"')
			p = skip_string(p + 1, end);
		else if (*p == '{' || *p == '[')
			p = skip_container(p + 1, end);
		else
			while (p < end && *p != ',' && *p != '}' && *p != ' ' &&
			       *p != '\t' && *p != '\r' && *p != '\n')
				p++;
		if (!p || p == val.p)
			return -EINVAL;
		val.len = (size_t)(p - val.p);
		r = cb(key, val, arg);
		if (r)
			return r;
		p = skip_ws(p, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}')
			return skip_ws(p + 1, end) == end ? 0 : -EINVAL;
		return -EINVAL;
	}
}


int record_iteration(const char *line, size_t len, int64_t *n, bool *found)
{
	struct jtext_span obj, v;
	struct keys ks;

	*found = false;
	if (keys_collect(line, len, &ks, &obj) < 0)
		return -EINVAL;
	keys_field(&ks, FIELD_ITERATION, &v, NULL, found);
	if (*found)
		record_parse_count(v, n);
	return 0;
}

static int digits(const char **p, const char *end, unsigned n, int *out)
{
	int x = 0;

	for (; n; n--, (*p)++) {
		if (*p == end || **p < '0' || **p > '9')
			return -EINVAL;
		x = x * 10 + (**p - '0');
	}
	*out = x;
	return 0;
}

static int expect(const char **p, const char *end, char c)
{
	if (*p == end || **p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* The local wall time at instant u, as seconds read as if it were UTC. */
static int wall_at(time_t u, time_t *w)
{
	struct tm tm;

	if (!localtime_r(&u, &tm))
		return -EINVAL;
	*w = timegm(&tm);
	return 0;
}

/* The instant whose local wall time is t (t: the wall time read as UTC),
 * solved the way Python's datetime.timestamp() does for a naive datetime
 * with fold=0: in a repeated hour the earlier instant, in a skipped hour
 * the offset from before the change.  Not mktime(): its tm_isdst=-1 choice
 * differs from Python in the repeated hour, and glibc's mktime stats
 * /etc/localtime on every call, once per record while indexing. */
static int local_to_utc(time_t t, time_t *out)
{
	const time_t max_fold = 24 * 3600;
	time_t a, b, u1, u2, t1, t2, w;

	if (wall_at(t, &w) < 0)
		return -EINVAL;
	a = w - t;
	u1 = t - a;
	if (wall_at(u1, &t1) < 0)
		return -EINVAL;
	if (t1 == t) {
		u2 = u1 - max_fold;
		if (wall_at(u2, &w) < 0)
			return -EINVAL;
		b = w - u2;
		if (a == b) {
			*out = u1;
			return 0;
		}
	} else {
		b = t1 - u1;
	}
	u2 = t - b;
	if (wall_at(u2, &t2) < 0)
		return -EINVAL;
	if (t2 == t)
		*out = u2;
	else if (t1 == t)
		*out = u1;
	else
		*out = u1 > u2 ? u1 : u2;
	return 0;
}

int record_parse_time(const char *s, size_t len, int64_t *usec)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30,
				       31, 31, 30, 31, 30, 31 };
	const char *p = s, *end = s + len;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int32_t frac = 0, scale = 100000;
	struct tm tm;
	time_t r, t;

	if (digits(&p, end, 4, &y) || expect(&p, end, '-') ||
	    digits(&p, end, 2, &mo) || expect(&p, end, '-') ||
	    digits(&p, end, 2, &d))
		return -EINVAL;
	if (p == end || (*p != 'T' && *p != ' '))
		return -EINVAL;
	p++;
	if (digits(&p, end, 2, &h) || expect(&p, end, ':') ||
	    digits(&p, end, 2, &mi) || expect(&p, end, ':') ||
	    digits(&p, end, 2, &sec))
		return -EINVAL;
	if (p < end && *p == '.') {
		p++;
		if (p == end || *p < '0' || *p > '9')
			return -EINVAL;
		/* Python keeps six digits and drops the rest. */
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			frac += scale * (*p - '0');
			scale /= 10;
		}
	}
	if (p < end && *p == 'Z') {
		sign = 1;
		p++;
	} else if (p < end && (*p == '+' || *p == '-')) {
		sign = *p == '+' ? 1 : -1;
		p++;
		if (digits(&p, end, 2, &oh))
			return -EINVAL;
		if (p < end && *p == ':')
			p++;
		if (digits(&p, end, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
	}
	if (p != end || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] + (mo == 2 && leap(y)) || h > 23 || mi > 59 ||
	    sec > 59)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	r = timegm(&tm);
	if (sign)
		t = r - sign * (time_t)(oh * 3600 + om * 60);
	else if (local_to_utc(r, &t) < 0)
		return -EINVAL;
	*usec = (int64_t)t * 1000000 + frac;
	return 0;
}

/* The timestamp from collected keys (record_timestamp's rules). */
static int keys_timestamp(const struct keys *ks, int64_t *usec, bool *found)
{
	struct jtext_span v;
	struct buf s = BUF_INIT;
	int r;

	keys_field(ks, FIELD_TIMESTAMP, &v, NULL, found);
	if (!*found)
		return 0;
	r = jtext_string_decode(v, &s);
	if (r == -ENOMEM)
		goto out;
	*found = r == 0 && s.data && record_parse_time(s.data, s.len, usec) == 0;
	r = 0;
out:
	buf_free(&s);
	return r;
}

int record_timestamp(const char *line, size_t len, int64_t *usec,
		     bool *found)
{
	struct jtext_span obj;
	struct keys ks;

	*found = false;
	if (keys_collect(line, len, &ks, &obj) < 0)
		return -EINVAL;
	return keys_timestamp(&ks, usec, found);
}

struct walk {
	struct keys ks;
	int (*cb)(struct jtext_span key, struct jtext_span val, void *arg);
	void *arg;
};

static int walk_cb(struct jtext_span key, struct jtext_span val, void *arg)
{
	struct walk *w = arg;

	keys_cb(key, val, &w->ks);
	return w->cb(key, val, w->arg);
}

int record_members(const char *line, size_t len,
		   int (*cb)(struct jtext_span key, struct jtext_span val,
			     void *arg),
		   void *arg, int64_t *usec, bool *found)
{
	struct jtext_span obj;
	struct walk w;
	int r;

	memset(&w, 0, sizeof(w));
	w.cb = cb;
	w.arg = arg;
	if (found)
		*found = false;
	if (line_object(line, len, &obj) < 0)
		return -EINVAL;
	r = jtext_members(obj, walk_cb, &w);
	if (r)
		return r;
	return usec ? keys_timestamp(&w.ks, usec, found) : 0;
}

static const enum record_field view_field[VIEW_COUNT] = {
	[VIEW_CODE] = FIELD_CODE,
	[VIEW_METRICS] = FIELD_METRICS,
	[VIEW_FEEDBACK] = FIELD_FEEDBACK,
	[VIEW_ERROR] = FIELD_ERROR,
};

static int mask_of(const char *line, size_t len, bool trusted,
		   unsigned *mask)
{
	struct jtext_span obj, v;
	struct keys ks;
	unsigned k;
	bool found;

	*mask = 0;
	if (keys_of(line, len, trusted, &ks, &obj) < 0)
		return -EINVAL;
	for (k = 0; k < VIEW_COUNT; k++) {
		if (k == VIEW_RECORD) {
			found = true;
		} else {
			keys_field(&ks, view_field[k], &v, NULL, &found);
		}
		if (found)
			*mask |= 1u << k;
	}
	return 0;
}

int view_mask(const char *line, size_t len, unsigned *mask)
{
	return mask_of(line, len, false, mask);
}

int view_mask_trusted(const char *line, size_t len, unsigned *mask)
{
	return mask_of(line, len, true, mask);
}

static int render_of(const char *line, size_t len, enum view_kind k,
		     bool trusted, struct buf *out, bool *present)
{
	struct jtext_span obj, v;
	struct keys ks;

	*present = false;
	if ((unsigned)k >= VIEW_COUNT)
		return -EINVAL;
	if (keys_of(line, len, trusted, &ks, &obj) < 0)
		return -EINVAL;
	if (k == VIEW_RECORD) {
		*present = true;
		return jtext_pretty(obj, out);
	}
	keys_field(&ks, view_field[k], &v, NULL, present);
	if (!*present)
		return 0;
	if (k == VIEW_METRICS)
		return jtext_pretty(v, out);
	return trusted ? jtext_string_decode_valid(v, out) :
			 jtext_string_decode(v, out);
}

int view_render(const char *line, size_t len, enum view_kind k,
		struct buf *out, bool *present)
{
	return render_of(line, len, k, false, out, present);
}

int view_render_trusted(const char *line, size_t len, enum view_kind k,
			struct buf *out, bool *present)
{
	return render_of(line, len, k, true, out, present);
}
