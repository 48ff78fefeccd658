/* scan.c - lines of a history file -> index entries (see scan.h).
 *
 * Contents:
 *   store_grow            the arrays' growth rule
 *   shape                 the fields every record carries (store_shape),
 *                         folded in line by line as lines are indexed
 *   scanning              lines -> entries; one member walk per record line
 *                         finds its number and its shape
 *   quick scan            numbers from the first bytes of a line, over
 *                         every CPU; scan_check for one line later
 *   dedup                 sort by number, the later line wins
 */
#include "scan.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "record.h"

#define SCAN_CHUNK ((size_t)1 << 20)

/* Grow an array of `size`-byte elements to hold at least `need`. */
int store_grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t c = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return 0;
	while (c < need) {
		if (c > SIZE_MAX / 2 / size)
			return -ENOMEM;
		c = c < 16 ? 16 : c + c / 2;
	}
	q = realloc(*p, c * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = c;
	return 0;
}
/* --- shape ---------------------------------------------------------------- */

void shape_free(struct shape *sh)
{
	size_t i;

	for (i = 0; i < sh->n; i++)
		free(sh->f[i].key);
	free(sh->f);
	buf_free(&sh->last);
	memset(sh, 0, sizeof(*sh));
}

static int shape_cb(struct jtext_span key, struct jtext_span val, void *arg)
{
	struct shape_line *sl = arg;
	unsigned type = record_type_bit(val);
	int r;

	r = store_grow((void **)&sl->m, &sl->cap, sl->n + 1, sizeof(*sl->m));
	if (!r)
		r = buf_append(&sl->sig, key.p, key.len);
	if (!r)
		r = buf_putc(&sl->sig, (char)('0' + type));
	if (r < 0)
		return r;
	sl->m[sl->n++] = (struct shape_mem){ key, val, type, -1, 0 };
	return 0;
}

/* Read the members of one record line into sl (`validate`: with the
 * validating walk, which also reads the timestamp into *usec when usec is
 * not NULL) and find the member that carries its number: the last "iteration", else the last "iteration_num"
 * (first alias present wins, the last duplicate counts).  A line laid out
 * like the previous record line has it where that one had it.  Returns 0,
 * -EINVAL (the line does not hold together as an object), -ENOMEM. */
static int shape_read(const struct shape *sh, struct shape_line *sl,
		      const char *p, size_t len, bool validate, int64_t *usec,
		      bool *has_ts)
{
	enum record_field f;
	unsigned a, best = 2, codes = 0;
	size_t i;
	int r;

	sl->n = 0;
	sl->iter = -1;
	sl->code_dup = false;
	buf_reset(&sl->sig);
	if (validate)
		r = record_members(p, len, shape_cb, sl, usec, has_ts);
	else
		r = record_members_fast(p, len, shape_cb, sl);
	if (r < 0)
		return r;
	sl->same = sh->records && sl->sig.len == sh->last.len &&
		   (!sl->sig.len ||
		    memcmp(sl->sig.data, sh->last.data, sl->sig.len) == 0);
	if (sl->same) {
		sl->iter = sh->iter;
		sl->code_dup = sh->code_dup;
		return 0;
	}
	for (i = 0; i < sl->n; i++) {
		if (!record_dialect_key(sl->m[i].key, &f, &a))
			continue;
		sl->m[i].field = (int)f;
		sl->m[i].alias = a;
		if (f == FIELD_CODE)
			sl->code_dup = codes++ > 0;
		if (f == FIELD_ITERATION && a <= best) {
			best = a;
			sl->iter = (long)i;
		}
	}
	return 0;
}

static bool shape_key_is(const struct store_shape_field *f,
			 const struct shape_mem *m)
{
	size_t n = m->key.len - 2;

	if (f->field >= 0 || m->field >= 0)
		return f->field == m->field;
	if (!memchr(m->key.p + 1, '\\', n))
		return strlen(f->key) == n && memcmp(f->key, m->key.p + 1, n) == 0;
	return jtext_key_is(m->key, f->key);
}

static int shape_add_field(struct shape *sh, const struct shape_mem *m)
{
	struct buf name = BUF_INIT;
	int r;

	r = store_grow((void **)&sh->f, &sh->cap, sh->n + 1, sizeof(*sh->f));
	if (r < 0)
		return r;
	if (m->field < 0) {
		r = jtext_string_decode(m->key, &name);
		if (!r && !name.data)
			r = buf_putc(&name, '\0');
		if (r < 0) {
			buf_free(&name);
			return r == -EINVAL ? 0 : r;
		}
	}
	sh->f[sh->n++] = (struct store_shape_field){ name.data, m->field,
						     m->type };
	return 0;
}

/* Fold one record line (read by shape_read) into the shape.  A line laid
 * out like the previous one changes nothing. */
static int shape_take(struct shape *sh, struct shape_line *sl)
{
	struct buf t;
	size_t i, j, k;
	bool *seen = NULL;
	int r = 0;

	if (sl->same) {
		sh->records++;
		return 0;
	}
	for (i = 0; i < sl->n; i++)
		if (sl->m[i].field >= 0)
			sh->alias[sl->m[i].field] =
				(unsigned char)(sl->m[i].alias + 1);
	if (!sh->records) {
		for (i = 0; i < sl->n && !r; i++) {
			for (j = 0; j < sh->n; j++)
				if (shape_key_is(&sh->f[j], &sl->m[i]))
					break;
			if (j < sh->n)
				sh->f[j].types |= sl->m[i].type;
			else
				r = shape_add_field(sh, &sl->m[i]);
		}
		if (r < 0)
			return r;
	} else if (sh->n) {
		seen = calloc(sh->n, sizeof(*seen));
		if (!seen)
			return -ENOMEM;
		for (i = 0; i < sl->n; i++) {
			for (j = 0; j < sh->n; j++) {
				if (shape_key_is(&sh->f[j], &sl->m[i])) {
					seen[j] = true;
					sh->f[j].types |= sl->m[i].type;
					break;
				}
			}
		}
		for (j = k = 0; j < sh->n; j++) {
			if (seen[j])
				sh->f[k++] = sh->f[j];
			else
				free(sh->f[j].key);
		}
		sh->n = k;
		free(seen);
	}
	sh->records++;
	sh->iter = sl->iter;
	sh->code_dup = sl->code_dup;
	t = sh->last;
	sh->last = sl->sig;
	sl->sig = t;
	return 0;
}

/* The shape over a's records, then b's, into out (a and b unchanged). */
int shape_merge(const struct shape *a, const struct shape *b,
		struct shape *out)
{
	const struct shape *keys = a->records ? a : b;
	size_t i, j;
	unsigned f;
	int r = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < keys->n && !r; i++) {
		const struct store_shape_field *x = &keys->f[i];
		unsigned types = x->types;

		if (a->records && b->records) {
			for (j = 0; j < b->n; j++) {
				if (b->f[j].field == x->field &&
				    (x->field >= 0 ||
				     strcmp(b->f[j].key, x->key) == 0))
					break;
			}
			if (j == b->n)
				continue;
			types |= b->f[j].types;
		}
		r = store_grow((void **)&out->f, &out->cap, out->n + 1,
			 sizeof(*out->f));
		if (r < 0)
			break;
		out->f[out->n] = (struct store_shape_field){ NULL, x->field,
							     types };
		if (x->key) {
			out->f[out->n].key = strdup(x->key);
			if (!out->f[out->n].key)
				r = -ENOMEM;
		}
		out->n++;
	}
	for (f = 0; f < FIELD_COUNT; f++)
		out->alias[f] = b->alias[f] ? b->alias[f] : a->alias[f];
	out->records = a->records + b->records;
	out->iter = b->records ? b->iter : a->iter;
	out->code_dup = b->records ? b->code_dup : a->code_dup;
	if (!r)
		r = buf_append(&out->last, b->records ? b->last.data : a->last.data,
			       b->records ? b->last.len : a->last.len);
	if (r < 0)
		shape_free(out);
	return r;
}

/* --- scanning ------------------------------------------------------------ */

void scan_free(struct scan *sc)
{
	free(sc->e);
	free(sc->t);
	free(sc->skip);
	shape_free(&sc->sh);
	free(sc->cur.m);
	buf_free(&sc->cur.sig);
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int scan_skip(struct scan *sc, uint64_t lineno)
{
	int r = store_grow((void **)&sc->skip, &sc->skipcap, sc->nskip + 1,
		     sizeof(*sc->skip));

	if (r < 0)
		return r;
	sc->skip[sc->nskip++] = lineno;
	return 0;
}

static bool digits_only(struct jtext_span v)
{
	size_t i;

	for (i = 0; i < v.len; i++)
		if (v.p[i] < '0' || v.p[i] > '9')
			return false;
	return v.len > 0;
}

/* What the validated walk of sl makes of a line's number: LINE_RECORD
 * with *n, LINE_BEYOND (a number past STORE_ITER_MAX), LINE_SKIP. */
enum line_kind { LINE_RECORD, LINE_SKIP, LINE_BEYOND };

static enum line_kind line_number(const struct shape_line *sl, int64_t *n)
{
	struct jtext_span num;

	if (sl->iter < 0)
		return LINE_SKIP;
	num = sl->m[sl->iter].val;
	if (!record_parse_count(num, n)) {
		/* Plain digits past int64 are a number to Python too: beyond
		 * the limit, not garbage. */
		if (!digits_only(num))
			return LINE_SKIP;
		*n = INT64_MAX;
	}
	return *n > STORE_ITER_MAX ? LINE_BEYOND : LINE_RECORD;
}

/* The line read as the validating scan reads it, its shape not folded
 * in.  Returns a line_kind or -ENOMEM. */
static int line_classify(struct shape_line *sl, const char *p, size_t len,
			 int64_t *n, int64_t *usec, bool *has_ts)
{
	static const struct shape none;
	int r = shape_read(&none, sl, p, len, true, usec, has_ts);

	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return LINE_SKIP;
	return (int)line_number(sl, n);
}

/* Every line's start: a BOM at the file's start and the CR before LF go,
 * the unterminated tail's bookkeeping begins, and a line that is not
 * blank is counted.  Returns its length without trailing whitespace (0:
 * blank). */
static size_t line_start(struct scan *sc, const char **p, size_t *len,
			 uint64_t *off, bool has_lf)
{
	size_t end;

	if (*off == 0 && *len >= 3 && memcmp(*p, "\xef\xbb\xbf", 3) == 0) {
		*p += 3;
		*len -= 3;
		*off += 3;
	}
	if (*len && (*p)[*len - 1] == '\r')
		(*len)--;
	end = *len;
	while (end && is_ws((*p)[end - 1]))
		end--;
	if (!has_lf) {
		sc->tail_off = *off;
		sc->tail = TAIL_BLANK;
		sc->tail_beyond = false;
	}
	if (end)
		sc->lines++;
	return end;
}

/* A record line found: its entry, and the tail's bookkeeping.  `code_dup`
 * as struct ent's. */
static int scan_add(struct scan *sc, int64_t n, uint64_t off, uint64_t lineno,
		    size_t len, bool has_lf, bool code_dup)
{
	int r = store_grow((void **)&sc->e, &sc->cap, sc->n + 1,
			   sizeof(*sc->e));

	if (r < 0)
		return r;
	sc->e[sc->n++] = (struct ent){ n, off, lineno, (uint32_t)len, false,
				       code_dup };
	sc->records++;
	if (!has_lf) {
		sc->tail = TAIL_RECORD;
		sc->tail_iter = n;
		sc->tail_len = (uint32_t)len;
	}
	return 0;
}

/* A line that is no record (`beyond`: numbered past the limit): counted,
 * and the tail's bookkeeping. */
static int line_skipped(struct scan *sc, uint64_t lineno, bool has_lf,
			bool beyond)
{
	if (beyond) {
		sc->beyond++;
		if (!has_lf)
			sc->tail_beyond = true;
	}
	if (!has_lf)
		sc->tail = TAIL_SKIPPED;
	return scan_skip(sc, lineno);
}

/* The number of a line laid out like {"iteration": 12, ... } (or
 * iteration_num, as json.dumps writes both dialects): a plain decimal
 * right after the first key, then "," or "}", and "}" as the line's last
 * byte.  False for any other line, which then takes the walk. */
static bool quick_number(const char *p, size_t end, int64_t *n)
{
	static const char k1[] = "{\"iteration\":", k2[] = "{\"iteration_num\":";
	size_t i, d;
	int64_t v = 0;

	if (p[end - 1] != '}')
		return false;
	if (end > sizeof(k1) && memcmp(p, k1, sizeof(k1) - 1) == 0)
		i = sizeof(k1) - 1;
	else if (end > sizeof(k2) && memcmp(p, k2, sizeof(k2) - 1) == 0)
		i = sizeof(k2) - 1;
	else
		return false;
	while (i < end && p[i] == ' ')
		i++;
	/* 18 digits cannot overflow; STORE_ITER_MAX has fewer. */
	for (d = i; i < end && i - d < 18 && p[i] >= '0' && p[i] <= '9'; i++)
		v = v * 10 + (p[i] - '0');
	if (i == d || (p[d] == '0' && i - d > 1) || v > STORE_ITER_MAX)
		return false;
	while (i < end && p[i] == ' ')
		i++;
	if (i == end || (p[i] != ',' && p[i] != '}'))
		return false;
	*n = v;
	return true;
}

/* One line of the quick scan (line_start done). */
static int quick_line(struct scan *sc, const char *p, size_t len, size_t end,
		      uint64_t off, uint64_t lineno, bool has_lf)
{
	int64_t n;
	int kind;

	if (len > UINT32_MAX)
		return line_skipped(sc, lineno, has_lf, false);
	if (has_lf && quick_number(p, end, &n))
		return scan_add(sc, n, off, lineno, len, true, false);
	kind = line_classify(&sc->cur, p, len, &n, NULL, NULL);
	if (kind < 0)
		return kind;
	if (kind == LINE_RECORD)
		return scan_add(sc, n, off, lineno, len, has_lf,
				sc->cur.code_dup);
	return line_skipped(sc, lineno, has_lf, kind == LINE_BEYOND);
}

/* One line, without its LF.  `has_lf` false: the unterminated last line,
 * which is trusted only after full validation.  Every record line is also
 * read for the shape: on the fast path that member walk is what catches a
 * trusted line whose strings or brackets do not hold together. */
static int scan_line(struct scan *sc, const char *p, size_t len, uint64_t off,
		     bool has_lf)
{
	uint64_t lineno = ++sc->lineno;
	struct jtext_span v, num;
	enum line_kind kind;
	size_t end;
	int64_t n, t = 0;
	bool found = false, trust, times, validated;
	int r;

	end = line_start(sc, &p, &len, &off, has_lf);
	if (end == 0)
		return 0;
	if (sc->quick)
		return quick_line(sc, p, len, end, off, lineno, has_lf);
	if (len > UINT32_MAX)
		goto skip;
	trust = has_lf && !(sc->flags & STORE_VALIDATE);
	times = sc->flags & STORE_TIMES;
	if (trust && p[end - 1] != '}')
		goto skip;
	/* One member walk finds the number and the shape, and, validating,
	 * the timestamp: validated lines and STORE_TIMES take the validating
	 * walk, trusted lines the fast one.  A trusted line that does not
	 * validate keeps no timestamp. */
	validated = !trust || times;
	r = shape_read(&sc->sh, &sc->cur, p, len, validated,
		       times ? &t : NULL, &found);
	if (r == -ENOMEM)
		return r;
	if (r < 0 && trust && times) {
		validated = false;
		r = shape_read(&sc->sh, &sc->cur, p, len, false, NULL, NULL);
		if (r == -ENOMEM)
			return r;
	}
	if (r < 0 || sc->cur.iter < 0)
		goto skip;
	if (!times || !validated || !found)
		t = 0;
	num = sc->cur.m[sc->cur.iter].val;
	/* Trusted only in the usual layout, {"iteration": 12, ...; a number
	 * elsewhere, or not in plain digits, gets the line validated. */
	if (!validated &&
	    (sc->cur.iter != 0 || (num.len > 1 && num.p[0] == '0')) &&
	    (jtext_parse_value(p, len, &v) < 0 ||
	     jtext_type(v) != JTEXT_OBJECT))
		goto skip;
	kind = line_number(&sc->cur, &n);
	if (kind == LINE_SKIP)
		goto skip;
	if (kind == LINE_BEYOND)
		goto beyond;
	r = shape_take(&sc->sh, &sc->cur);
	if (r < 0)
		return r;
	if (sc->flags & STORE_TIMES) {
		r = store_grow((void **)&sc->t, &sc->tcap, sc->n + 1, sizeof(*sc->t));
		if (r < 0)
			return r;
		sc->t[sc->n] = t;
	}
	return scan_add(sc, n, off, lineno, len, has_lf, sc->cur.code_dup);
beyond:
	return line_skipped(sc, lineno, has_lf, true);
skip:
	return line_skipped(sc, lineno, has_lf, false);
}

/* Scan fd from `start` (a line start) to `end`.  sc->lineno must hold the
 * number of lines before `start`. */
int scan_file(struct scan *sc, int fd, uint64_t start, uint64_t end,
	      const char *path)
{
	size_t cap = SCAN_CHUNK, have = 0, lstart = 0, searched = 0;
	uint64_t pos = start; /* file offset of buf[0] */
	char *buf, *nb;
	int r = 0;

	sc->end = end;
	sc->tail_off = end;
	sc->tail = TAIL_NONE;
	if (start >= end)
		return 0;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		char *lf;

		while ((lf = memchr(buf + searched, '\n', have - searched))) {
			size_t i = (size_t)(lf - buf);

			sc->last_off = pos + lstart;
			sc->any = true;
			r = scan_line(sc, buf + lstart, i - lstart,
				      pos + lstart, true);
			if (r < 0)
				goto out;
			lstart = searched = i + 1;
		}
		searched = have;
		if (pos + have == end) {
			if (lstart < have) {
				sc->last_off = pos + lstart;
				sc->any = true;
				r = scan_line(sc, buf + lstart, have - lstart,
					      pos + lstart, false);
			}
			goto out;
		}
		if (lstart) {
			memmove(buf, buf + lstart, have - lstart);
			pos += lstart;
			have -= lstart;
			searched -= lstart;
			lstart = 0;
		}
		if (have == cap) {
			nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
			if (!nb) {
				r = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		if (sc->cancel && atomic_load(sc->cancel)) {
			r = -ECANCELED;
			goto out;
		}
		{
			size_t want = cap - have;
			ssize_t got;

			if (want > end - pos - have)
				want = (size_t)(end - pos - have);
			got = pread(fd, buf + have, want, (off_t)(pos + have));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				r = got < 0 ? -errno : -EIO;
				log_err("store: read %s at %llu: %s", path,
					(unsigned long long)(pos + have),
					got < 0 ? strerror(errno)
						: "file shrank while indexing");
				goto out;
			}
			have += (size_t)got;
		}
	}
out:
	free(buf);
	return r;
}

#define QUICK_PARTS 4
#define QUICK_PART_MIN ((uint64_t)8 << 20)

struct quick_part {
	struct scan sc;
	int fd;
	uint64_t start, end;
	const char *path;
	int r;
};

static void *quick_part_run(void *arg)
{
	struct quick_part *q = arg;

	q->r = scan_file(&q->sc, q->fd, q->start, q->end, q->path);
	return NULL;
}

/* The first line start at or after `off` (just past a LF), or `end`. */
static int next_line_start(int fd, uint64_t off, uint64_t end, uint64_t *out)
{
	char b[4096];
	ssize_t got;
	char *lf;

	while (off < end) {
		size_t want = end - off < sizeof(b) ? (size_t)(end - off)
						    : sizeof(b);

		got = pread(fd, b, want, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		lf = memchr(b, '\n', (size_t)got);
		if (lf) {
			*out = off + (uint64_t)(lf - b) + 1;
			return 0;
		}
		off += (uint64_t)got;
	}
	*out = end;
	return 0;
}

/* Append part q's results to sc, its line numbers moved past sc's. */
static int quick_join(struct scan *sc, struct scan *q)
{
	size_t i;
	int r;

	r = store_grow((void **)&sc->e, &sc->cap, sc->n + q->n, sizeof(*sc->e));
	if (!r)
		r = store_grow((void **)&sc->skip, &sc->skipcap,
			       sc->nskip + q->nskip, sizeof(*sc->skip));
	if (r < 0)
		return r;
	for (i = 0; i < q->n; i++) {
		sc->e[sc->n + i] = q->e[i];
		sc->e[sc->n + i].lineno += sc->lineno;
	}
	for (i = 0; i < q->nskip; i++)
		sc->skip[sc->nskip + i] = q->skip[i] + sc->lineno;
	sc->n += q->n;
	sc->nskip += q->nskip;
	sc->lines += q->lines;
	sc->records += q->records;
	sc->beyond += q->beyond;
	sc->lineno += q->lineno;
	if (q->any) {
		sc->any = true;
		sc->last_off = q->last_off;
	}
	sc->end = q->end;
	sc->tail_off = q->tail_off;
	sc->tail = q->tail;
	sc->tail_beyond = q->tail_beyond;
	sc->tail_iter = q->tail_iter;
	sc->tail_len = q->tail_len;
	return 0;
}

int scan_quick(struct scan *sc, int fd, uint64_t end, const char *path)
{
	struct quick_part q[QUICK_PARTS];
	pthread_t th[QUICK_PARTS];
	bool started[QUICK_PARTS] = { false };
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t np = 1, i;
	uint64_t at = 0;
	int r = 0;

	if (cpus > 1 && end >= 2 * QUICK_PART_MIN)
		np = (size_t)cpus < QUICK_PARTS ? (size_t)cpus : QUICK_PARTS;
	if (np > end / QUICK_PART_MIN)
		np = (size_t)(end / QUICK_PART_MIN);
	if (np < 1)
		np = 1;
	memset(q, 0, sizeof(q));
	for (i = 0; i < np; i++) {
		q[i].sc.quick = true;
		q[i].sc.cancel = sc->cancel;
		q[i].fd = fd;
		q[i].path = path;
		q[i].start = at;
		q[i].end = end;
		if (i + 1 < np && !r)
			r = next_line_start(fd, end / np * (i + 1) > at ?
						end / np * (i + 1) : at,
					    end, &q[i].end);
		at = q[i].end;
	}
	if (r < 0) {
		log_err("store: read %s: %s", path, strerror(-r));
		return r;
	}
	/* Part 0 runs here; a part whose thread cannot be had runs here too. */
	for (i = 1; i < np; i++)
		started[i] = pthread_create(&th[i], NULL, quick_part_run,
					    &q[i]) == 0;
	quick_part_run(&q[0]);
	for (i = 1; i < np; i++) {
		if (started[i])
			pthread_join(th[i], NULL);
		else
			quick_part_run(&q[i]);
	}
	sc->lineno = 0;
	sc->end = end;
	sc->tail_off = end;
	sc->tail = TAIL_NONE;
	for (i = 0; i < np; i++) {
		if (!r)
			r = q[i].r;
		if (!r && i == 0) {
			/* The first part's arrays become sc's. */
			struct scan t = *sc;

			*sc = q[0].sc;
			sc->flags = t.flags;
			sc->cancel = t.cancel;
			sc->quick = false;
			memset(&q[0].sc, 0, sizeof(q[0].sc));
			scan_free(&t);
		} else if (!r) {
			r = quick_join(sc, &q[i].sc);
		}
		scan_free(&q[i].sc);
	}
	return r;
}

int scan_check(const char *p, size_t len, int64_t iter, bool times, bool *ok,
	       int64_t *usec)
{
	struct shape_line sl = { 0 };
	bool has_ts = false;
	int64_t n;
	int kind;

	*ok = false;
	*usec = 0;
	kind = line_classify(&sl, p, len, &n, times ? usec : NULL, &has_ts);
	free(sl.m);
	buf_free(&sl.sig);
	if (kind < 0)
		return kind;
	*ok = kind == LINE_RECORD && n == iter;
	if (!*ok || !has_ts)
		*usec = 0;
	return 0;
}

static int cmp_u32_by_ent(const void *a, const void *b, void *arg)
{
	const struct ent *e = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	if (e[x].iter != e[y].iter)
		return e[x].iter < e[y].iter ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* --- dedup --------------------------------------------------------------- */

/* File order is the common case and costs one pass. */
int scan_dedup(struct scan *sc, uint64_t *hidden)
{
	struct ent *ne = NULL;
	int64_t *nt = NULL;
	uint32_t *perm;
	size_t i, k = 0;

	*hidden = 0;
	for (i = 1; i < sc->n; i++)
		if (sc->e[i - 1].iter >= sc->e[i].iter)
			break;
	if (i >= sc->n)
		return 0;
	if (sc->n > UINT32_MAX)
		return -ENOMEM;
	perm = malloc(sc->n * sizeof(*perm));
	ne = malloc(sc->n * sizeof(*ne));
	if (sc->t)
		nt = malloc(sc->n * sizeof(*nt));
	if (!perm || !ne || (sc->t && !nt)) {
		free(perm);
		free(ne);
		free(nt);
		return -ENOMEM;
	}
	for (i = 0; i < sc->n; i++)
		perm[i] = (uint32_t)i;
	qsort_r(perm, sc->n, sizeof(*perm), cmp_u32_by_ent, sc->e);
	for (i = 0; i < sc->n; i++) {
		if (i + 1 < sc->n && sc->e[perm[i + 1]].iter == sc->e[perm[i]].iter) {
			(*hidden)++;
			continue;
		}
		ne[k] = sc->e[perm[i]];
		ne[k].replaced = i > 0 &&
				 sc->e[perm[i - 1]].iter == ne[k].iter;
		if (nt)
			nt[k] = sc->t[perm[i]];
		k++;
	}
	free(perm);
	free(sc->e);
	free(sc->t);
	sc->e = ne;
	sc->t = nt;
	sc->n = sc->cap = sc->tcap = k;
	if (!nt)
		sc->tcap = 0;
	return 0;
}
