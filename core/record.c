#include "record.h"

#include <errno.h>
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

/* Every top-level key any alias reads, in alias order per field. */
enum key_id {
	K_ITERATION,
	K_ITERATION_NUM,
	K_CODE,
	K_STRATEGY_CODE,
	K_METRICS,
	K_FEEDBACK,
	K_FEEDBACK_USED,
	K_ERROR,
	K_EXECUTION_RESULT,
	K_TIMESTAMP,
	K_CODE_HASH,
	K_COUNT,
};

static const char *const key_names[K_COUNT] = {
	[K_ITERATION] = "iteration",
	[K_ITERATION_NUM] = "iteration_num",
	[K_CODE] = "code",
	[K_STRATEGY_CODE] = "strategy_code",
	[K_METRICS] = "metrics",
	[K_FEEDBACK] = "feedback",
	[K_FEEDBACK_USED] = "feedback_used",
	[K_ERROR] = "error",
	[K_EXECUTION_RESULT] = "execution_result",
	[K_TIMESTAMP] = "timestamp",
	[K_CODE_HASH] = "code_hash",
};

/* The alias chain of each field: first key present wins. */
static const struct {
	enum key_id key[2];
	unsigned nkey;
	enum jtext_type type; /* JTEXT_NULL: any non-null value */
} fields[] = {
	[FIELD_ITERATION] = { { K_ITERATION, K_ITERATION_NUM }, 2,
			      JTEXT_NUMBER },
	[FIELD_CODE] = { { K_CODE, K_STRATEGY_CODE }, 2, JTEXT_STRING },
	[FIELD_METRICS] = { { K_METRICS }, 1, JTEXT_NULL },
	[FIELD_FEEDBACK] = { { K_FEEDBACK, K_FEEDBACK_USED }, 2, JTEXT_STRING },
	[FIELD_ERROR] = { { K_ERROR, K_EXECUTION_RESULT }, 2, JTEXT_STRING },
	[FIELD_TIMESTAMP] = { { K_TIMESTAMP }, 1, JTEXT_STRING },
	[FIELD_CODE_HASH] = { { K_CODE_HASH }, 1, JTEXT_STRING },
};

/* Last occurrence of each key of interest (duplicates: last wins). */
struct keys {
	struct jtext_span v[K_COUNT];
	bool have[K_COUNT];
};

/* Called for every member of every line the index reads: compare raw key
 * text by length first, and decode only keys that hold an escape. */
static int keys_cb(struct jtext_span key, struct jtext_span val, void *arg)
{
	const char *raw = key.p + 1;
	size_t n = key.len - 2;
	bool plain = !memchr(raw, '\\', n);
	struct keys *ks = arg;
	unsigned i;
	bool is;

	for (i = 0; i < K_COUNT; i++) {
		if (plain)
			is = n == strlen(key_names[i]) &&
			     memcmp(raw, key_names[i], n) == 0;
		else
			is = jtext_key_is(key, key_names[i]);
		if (is) {
			ks->v[i] = val;
			ks->have[i] = true;
			break;
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

/* A JSON integer >= 0 that fits int64_t ("-0" is Python's 0). */
static bool parse_count(struct jtext_span v, int64_t *n)
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

/* Resolve a field from the collected keys. */
static void keys_field(const struct keys *ks, enum record_field f,
		       struct jtext_span *val, const char **key, bool *found)
{
	struct jtext_span v, nested;
	enum key_id k = K_COUNT;
	enum jtext_type t;
	unsigned i;
	bool has;
	int64_t n;

	*found = false;
	for (i = 0; i < fields[f].nkey; i++) {
		if (ks->have[fields[f].key[i]]) {
			k = fields[f].key[i];
			break;
		}
	}
	if (k == K_COUNT)
		return;
	v = ks->v[k];
	if (k == K_EXECUTION_RESULT) {
		if (jtext_type(v) != JTEXT_OBJECT ||
		    jtext_get(v, "error_message", &nested, &has) < 0 || !has)
			return;
		v = nested;
	}
	t = jtext_type(v);
	if (fields[f].type == JTEXT_NULL ? t == JTEXT_NULL :
					   t != fields[f].type)
		return;
	if (f == FIELD_ITERATION && !parse_count(v, &n))
		return;
	*val = v;
	if (key)
		*key = key_names[k];
	*found = true;
}

int record_field(const char *line, size_t len, enum record_field f,
		 struct jtext_span *val, const char **key, bool *found)
{
	struct jtext_span obj;
	struct keys ks;

	*found = false;
	if ((unsigned)f >= sizeof(fields) / sizeof(fields[0]))
		return -EINVAL;
	if (keys_collect(line, len, &ks, &obj) < 0)
		return -EINVAL;
	keys_field(&ks, f, val, key, found);
	return 0;
}

typedef unsigned char vu8 __attribute__((vector_size(16)));
typedef signed char vs8 __attribute__((vector_size(16)));

/* Could [p, end) hold another iteration key?  True at any "iteration (the
 * key itself, or iteration_num) and at any \\u (an escape could spell the key
 * in disguise).  Looks for the pairs "i and \\u sixteen bytes at a time (two
 * memmem passes ran at a fifth of memchr's speed), then checks the rare
 * candidates byte by byte. */
static bool iteration_key_later(const char *p, const char *end)
{
	static const char key[] = "\"iteration";
	const char *q, *stop;
	uint64_t lo, hi;
	vu8 a, b;
	vs8 m;

	while (p < end) {
		stop = end;
		if (end - p >= 17) {
			memcpy(&a, p, 16);
			memcpy(&b, p + 1, 16);
			m = ((a == '"') & (b == 'i')) |
			    ((a == '\\') & (b == 'u'));
			memcpy(&lo, &m, 8);
			memcpy(&hi, (const char *)&m + 8, 8);
			if (!(lo | hi)) {
				p += 16;
				continue;
			}
			stop = p + 16;
		}
		for (q = p; q < stop; q++) {
			if (q[0] == '\\' && q + 1 < end && q[1] == 'u')
				return true;
			if (q[0] == '"' &&
			    (size_t)(end - q) >= sizeof(key) - 1 &&
			    memcmp(q, key, sizeof(key) - 1) == 0)
				return true;
		}
		p = stop;
	}
	return false;
}

/* The fast path for the usual layout, {"iteration": 12, ... or
 * {"iteration_num": 12, ...: read the number without walking the members.
 * It is only taken when nothing later in the line could be another
 * iteration key: no further "iteration... and no \u escape (which could
 * spell a key in disguise); otherwise the caller walks the members.
 * The rest of the line is not validated here (see record.h). */
static bool iteration_fast(struct jtext_span obj, int64_t *n)
{
	static const char k1[] = "{\"iteration\"", k2[] = "{\"iteration_num\"";
	const char *p = obj.p, *end = obj.p + obj.len, *num;
	struct jtext_span v;

	if (end[-1] != '}')
		return false;
	if ((size_t)(end - p) > sizeof(k1) - 1 &&
	    memcmp(p, k1, sizeof(k1) - 1) == 0)
		p += sizeof(k1) - 1;
	else if ((size_t)(end - p) > sizeof(k2) - 1 &&
		 memcmp(p, k2, sizeof(k2) - 1) == 0)
		p += sizeof(k2) - 1;
	else
		return false;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p == end || *p != ':')
		return false;
	p++;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	num = p;
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	if (p == num || p == end || (*p != ',' && *p != '}' && *p != ' '))
		return false;
	v.p = num;
	v.len = (size_t)(p - num);
	if ((v.len > 1 && *num == '0') || !parse_count(v, n))
		return false;
	return !iteration_key_later(p, end);
}

int record_iteration(const char *line, size_t len, int64_t *n, bool *found)
{
	struct jtext_span obj, v;
	struct keys ks;

	*found = false;
	if (line_object(line, len, &obj) < 0)
		return -EINVAL;
	if (iteration_fast(obj, n)) {
		*found = true;
		return 0;
	}
	if (keys_collect(line, len, &ks, &obj) < 0)
		return -EINVAL;
	keys_field(&ks, FIELD_ITERATION, &v, NULL, found);
	if (*found)
		parse_count(v, n);
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

int record_parse_time(const char *s, size_t len, time_t *t)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30,
				       31, 31, 30, 31, 30, 31 };
	const char *p = s, *end = s + len;
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	struct tm tm;
	time_t r;

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
		while (p < end && *p >= '0' && *p <= '9')
			p++;
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
	if (sign) {
		*t = r - sign * (time_t)(oh * 3600 + om * 60);
		return 0;
	}
	return local_to_utc(r, t);
}

int record_timestamp(const char *line, size_t len, time_t *t, bool *found)
{
	struct jtext_span obj, v;
	struct buf s = BUF_INIT;
	struct keys ks;
	int r;

	*found = false;
	if (keys_collect(line, len, &ks, &obj) < 0)
		return -EINVAL;
	keys_field(&ks, FIELD_TIMESTAMP, &v, NULL, found);
	if (!*found)
		return 0;
	r = jtext_string_decode(v, &s);
	if (r == -ENOMEM)
		goto out;
	*found = r == 0 && s.data && record_parse_time(s.data, s.len, t) == 0;
	r = 0;
out:
	buf_free(&s);
	return r;
}

static const enum record_field view_field[VIEW_COUNT] = {
	[VIEW_CODE] = FIELD_CODE,
	[VIEW_METRICS] = FIELD_METRICS,
	[VIEW_FEEDBACK] = FIELD_FEEDBACK,
	[VIEW_ERROR] = FIELD_ERROR,
};

int view_mask(const char *line, size_t len, unsigned *mask)
{
	struct jtext_span obj, v;
	struct keys ks;
	unsigned k;
	bool found;

	*mask = 0;
	if (keys_collect(line, len, &ks, &obj) < 0)
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

int view_render(const char *line, size_t len, enum view_kind k,
		struct buf *out, bool *present)
{
	struct jtext_span obj, v;
	struct keys ks;

	*present = false;
	if ((unsigned)k >= VIEW_COUNT)
		return -EINVAL;
	if (keys_collect(line, len, &ks, &obj) < 0)
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
	return jtext_string_decode(v, out);
}
