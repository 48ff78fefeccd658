/* store.c - the index of one JSONL history file.
 *
 * Two locks (see store.h for the public rules):
 *   update_mu  serialises everything that changes the index: store_refresh,
 *              store_adopt and the lazy by-hash build.  Its holder does the
 *              slow I/O (scans, prefix compares, hashing) with only this mutex
 *              held, so readers keep going on the old index meanwhile, and it
 *              may read the index without `lock` (nobody else writes it).
 *   lock       (rwlock) guards the index and the fd; readers share it, the
 *              update_mu holder takes it exclusively only to install results.
 * Lock order: writer's flock, then update_mu, then lock.
 *
 * Contents:
 *   shape                 the fields every record carries (store_shape),
 *                         folded in line by line as lines are indexed
 *   scanning              lines -> entries; one member walk per record line
 *                         finds its number and its shape
 *   by-hash               code digests, built on first use
 *   installing scan results   full re-index, extension, merge
 *   public, shape public, by-hash public
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "jtext.h"
#include "log.h"
#include "record.h"

#define SCAN_CHUNK ((size_t)1 << 20)
#define CMP_CHUNK ((size_t)1 << 20)
#define HASH_THREADS 8
/* Past this many unread iterations, "everything changed" says as much. */
#define UNREAD_MAX ((size_t)1 << 16)
#define HASH_PARALLEL_MIN 2048
#define HASH_PATCH_MAX 64

/* One shown or pending record: what finds its line again. */
struct ent {
	int64_t iter;
	uint64_t off;
	uint64_t lineno;
	uint32_t len;
};

/* Code digest of one entry, parallel to idx.e once by-hash is built. */
struct hslot {
	unsigned char d[HASH_LEN];
	bool has;
};

/* (digest, iteration) for every shown iteration with code, sorted. */
struct hpair {
	unsigned char d[HASH_LEN];
	int64_t iter;
};

/* What the last line looked like when it had no LF yet; it is scanned again
 * when the file grows. */
enum tail_kind {
	TAIL_NONE,    /* the indexed content ends in LF (or is empty) */
	TAIL_BLANK,   /* whitespace only: not counted anywhere */
	TAIL_SKIPPED, /* the last entry of skip[] */
	TAIL_RECORD,  /* a record, at tail_off, tail_len bytes, tail_iter */
};

/* The shape of the records read so far (store.h): the fields all of them
 * carry.  `last` holds the previous line's keys and value types, so that a
 * line laid out like the one before costs a memcmp and no matching. */
struct shape {
	uint64_t records;
	struct store_shape_field *f; /* key: the decoded name (NULL for a */
	size_t n, cap;               /* dialect field), as in store.h */
	unsigned char alias[FIELD_COUNT]; /* dialect rows: 1 + alias; 0 none */
	struct buf last;
	long iter;            /* the member of `last` carrying the number */
};

/* The members of the line being indexed, as record_members_fast gives
 * them, and `sig`: their keys and value types as bytes.  `same`: laid out
 * like the previous record line (then `field` is not filled in).  `iter`:
 * the member carrying the number, -1 none. */
struct shape_mem {
	struct jtext_span key, val;
	unsigned type;
	int field;
	unsigned alias;
};

struct shape_line {
	struct shape_mem *m;
	size_t n, cap;
	struct buf sig;
	bool same;
	long iter;
};

struct idx {
	struct ent *e;        /* ascending by iter, unique */
	size_t n, cap;
	int64_t *t;           /* STORE_TIMES only: parallel to e, cap long */
	uint64_t *skip;       /* line numbers of skipped lines, ascending */
	size_t nskip, skipcap;
	uint64_t lines, records, dups, beyond;
	uint64_t size;        /* bytes indexed */
	uint64_t plines;      /* LF-terminated lines in the indexed bytes */
	uint64_t tail_off;    /* start of the unterminated last line, or size */
	enum tail_kind tail;
	bool tail_beyond;     /* TAIL_SKIPPED for a number past the limit */
	int64_t tail_iter;
	uint32_t tail_len;
	struct shape sh;
	/* by-hash, valid when hashed */
	bool hashed;
	struct hslot *slot;   /* parallel to e, cap long */
	struct hpair *pair;
	size_t npair, pcap;
	size_t *cstart;       /* code k owns pair[cstart[k] .. cstart[k+1]) */
	size_t ncode, ccap;
};

/* Fields marked "guarded by store->lock" are read under it (shared) and
 * written under it (exclusive) by update_mu holders only. */
struct store {
	char *path;              /* immutable */
	unsigned flags;          /* immutable */
	pthread_mutex_t update_mu;
	pthread_rwlock_t lock;
	int fd;                  /* guarded by store->lock; -1: no file */
	dev_t dev;               /* guarded by store->lock */
	ino_t ino;               /* guarded by store->lock */
	struct timespec mtim;    /* guarded by store->lock */
	struct idx ix;           /* guarded by store->lock */
	uint64_t generation;     /* guarded by store->lock */
	/* Changes since the last store_changes_take, whoever refreshed. */
	struct store_change unread; /* guarded by update_mu */
};

/* A lock that fails is a bug in this file, not a runtime condition. */
static void rd_lock(struct store *s)
{
	if (pthread_rwlock_rdlock(&s->lock) != 0)
		abort();
}

static void wr_lock(struct store *s)
{
	if (pthread_rwlock_wrlock(&s->lock) != 0)
		abort();
}

static void un_lock(struct store *s)
{
	if (pthread_rwlock_unlock(&s->lock) != 0)
		abort();
}

static void up_lock(struct store *s)
{
	if (pthread_mutex_lock(&s->update_mu) != 0)
		abort();
}

static void up_unlock(struct store *s)
{
	if (pthread_mutex_unlock(&s->update_mu) != 0)
		abort();
}

static void idx_free_hash(struct idx *ix)
{
	free(ix->slot);
	free(ix->pair);
	free(ix->cstart);
	ix->slot = NULL;
	ix->pair = NULL;
	ix->cstart = NULL;
	ix->npair = ix->pcap = ix->ncode = ix->ccap = 0;
	ix->hashed = false;
}

static void shape_free(struct shape *sh);

static void idx_free(struct idx *ix)
{
	free(ix->e);
	free(ix->t);
	free(ix->skip);
	shape_free(&ix->sh);
	idx_free_hash(ix);
	memset(ix, 0, sizeof(*ix));
}

/* Grow an array of `size`-byte elements to hold at least `need`. */
static int grow(void **p, size_t *cap, size_t need, size_t size)
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

static size_t find_iter(const struct idx *ix, int64_t iter, bool *found)
{
	size_t lo = 0, hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->e[mid].iter < iter)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < ix->n && ix->e[lo].iter == iter;
	return lo;
}

/* --- shape ---------------------------------------------------------------- */

static void shape_free(struct shape *sh)
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

	r = grow((void **)&sl->m, &sl->cap, sl->n + 1, sizeof(*sl->m));
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
 * not NULL) and find the member that carries its number: the last
 * "iteration", else the last "iteration_num" (first alias present wins, the
 * last duplicate counts).  A line laid out
 * like the previous record line has it where that one had it.  Returns 0,
 * -EINVAL (the line does not hold together as an object), -ENOMEM. */
static int shape_read(const struct shape *sh, struct shape_line *sl,
		      const char *p, size_t len, bool validate, int64_t *usec,
		      bool *has_ts)
{
	enum record_field f;
	unsigned a, best = 2;
	size_t i;
	int r;

	sl->n = 0;
	sl->iter = -1;
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
		return 0;
	}
	for (i = 0; i < sl->n; i++) {
		if (!record_dialect_key(sl->m[i].key, &f, &a))
			continue;
		sl->m[i].field = (int)f;
		sl->m[i].alias = a;
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

	r = grow((void **)&sh->f, &sh->cap, sh->n + 1, sizeof(*sh->f));
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
	t = sh->last;
	sh->last = sl->sig;
	sl->sig = t;
	return 0;
}

/* The shape over a's records, then b's, into out (a and b unchanged). */
static int shape_merge(const struct shape *a, const struct shape *b,
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
		r = grow((void **)&out->f, &out->cap, out->n + 1,
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
	if (!r)
		r = buf_append(&out->last, b->records ? b->last.data : a->last.data,
			       b->records ? b->last.len : a->last.len);
	if (r < 0)
		shape_free(out);
	return r;
}

/* --- scanning ------------------------------------------------------------ */

/* The result of scanning [start, end) of a file: records in file order. */
struct scan {
	unsigned flags;
	struct ent *e;
	size_t n, cap;
	int64_t *t;
	size_t tcap;
	uint64_t *skip;
	size_t nskip, skipcap;
	uint64_t lines, records, beyond;
	uint64_t lineno;      /* physical lines seen so far, from file start */
	uint64_t end, tail_off;
	enum tail_kind tail;
	bool tail_beyond;
	int64_t tail_iter;
	uint32_t tail_len;
	struct shape sh;
	struct shape_line cur;
};

static void scan_free(struct scan *sc)
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
	int r = grow((void **)&sc->skip, &sc->skipcap, sc->nskip + 1,
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

/* One line, without its LF.  `has_lf` false: the unterminated last line,
 * which is trusted only after full validation.  Every record line is also
 * read for the shape: on the fast path that member walk is what catches a
 * trusted line whose strings or brackets do not hold together. */
static int scan_line(struct scan *sc, const char *p, size_t len, uint64_t off,
		     bool has_lf)
{
	uint64_t lineno = ++sc->lineno;
	struct jtext_span v, num;
	size_t end;
	int64_t n, t = 0;
	bool found = false, trust, times, validated;
	int r;

	if (off == 0 && len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
		p += 3;
		len -= 3;
		off += 3;
	}
	if (len && p[len - 1] == '\r')
		len--;
	end = len;
	while (end && is_ws(p[end - 1]))
		end--;
	if (!has_lf) {
		sc->tail_off = off;
		sc->tail = TAIL_BLANK;
		sc->tail_beyond = false;
	}
	if (end == 0)
		return 0;
	sc->lines++;
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
	if (!record_parse_count(num, &n)) {
		/* Plain digits past int64 are a number to Python too: beyond
		 * the limit, not garbage. */
		if (!digits_only(num))
			goto skip;
		n = INT64_MAX;
	}
	if (n > STORE_ITER_MAX) {
		sc->beyond++;
		if (!has_lf)
			sc->tail_beyond = true;
		goto skip;
	}
	r = shape_take(&sc->sh, &sc->cur);
	if (r < 0)
		return r;
	if (sc->flags & STORE_TIMES) {
		r = grow((void **)&sc->t, &sc->tcap, sc->n + 1, sizeof(*sc->t));
		if (r < 0)
			return r;
		sc->t[sc->n] = t;
	}
	r = grow((void **)&sc->e, &sc->cap, sc->n + 1, sizeof(*sc->e));
	if (r < 0)
		return r;
	sc->e[sc->n++] = (struct ent){ n, off, lineno, (uint32_t)len };
	sc->records++;
	if (!has_lf) {
		sc->tail = TAIL_RECORD;
		sc->tail_iter = n;
		sc->tail_len = (uint32_t)len;
	}
	return 0;
skip:
	if (!has_lf)
		sc->tail = TAIL_SKIPPED;
	return scan_skip(sc, lineno);
}

/* Scan fd from `start` (a line start) to `end`.  sc->lineno must hold the
 * number of lines before `start`. */
static int scan_file(struct scan *sc, int fd, uint64_t start, uint64_t end,
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

			r = scan_line(sc, buf + lstart, i - lstart,
				      pos + lstart, true);
			if (r < 0)
				goto out;
			lstart = searched = i + 1;
		}
		searched = have;
		if (pos + have == end) {
			if (lstart < have)
				r = scan_line(sc, buf + lstart, have - lstart,
					      pos + lstart, false);
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

static int cmp_u32_by_ent(const void *a, const void *b, void *arg)
{
	const struct ent *e = arg;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	if (e[x].iter != e[y].iter)
		return e[x].iter < e[y].iter ? -1 : 1;
	return x < y ? -1 : x > y;
}

/* Sort the scanned records by iteration, keeping only the last line of each
 * number; *hidden counts the dropped ones.  File order is the common case
 * and costs one pass. */
static int scan_dedup(struct scan *sc, uint64_t *hidden)
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

/* --- by-hash ------------------------------------------------------------- */

static int hash_line(int fd, const struct ent *e, struct buf *line,
		     struct buf *code, struct hslot *slot)
{
	bool present;
	int r;

	buf_reset(line);
	buf_reset(code);
	slot->has = false;
	r = buf_reserve(line, e->len);
	if (r < 0)
		return r;
	r = fileio_pread_full(fd, line->data, e->len, e->off);
	if (r < 0)
		return r;
	line->len = e->len;
	line->data[line->len] = '\0';
	r = view_render(line->data, line->len, VIEW_CODE, code, &present);
	if (r == -EINVAL)
		return 0; /* a trusted line that is not JSON after all: no code */
	if (r < 0)
		return r;
	if (!present)
		return 0;
	r = hash_sha256(code->data ? code->data : "", code->len, slot->d);
	if (r < 0)
		return r;
	slot->has = true;
	return 0;
}

struct hash_job {
	int fd;
	const struct ent *e;
	size_t n;
	struct hslot *slot;
	int r;
};

static void *hash_job_run(void *arg)
{
	struct hash_job *j = arg;
	struct buf line = BUF_INIT, code = BUF_INIT;
	size_t i;

	j->r = 0;
	for (i = 0; i < j->n && !j->r; i++)
		j->r = hash_line(j->fd, &j->e[i], &line, &code, &j->slot[i]);
	buf_free(&line);
	buf_free(&code);
	return NULL;
}

/* Hash the code of n records.  Decoding and hashing a whole history is CPU
 * bound (seconds at 100,000 records), so large batches are split over the
 * online CPUs. */
static int hash_slots(int fd, const struct ent *e, size_t n,
		      struct hslot *slot)
{
	struct hash_job job[HASH_THREADS];
	pthread_t th[HASH_THREADS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nt = 1, started = 0, i, per;
	int r = 0;

	/* An empty store has no entry array at all: e + 0 on NULL is UB. */
	if (!n)
		return 0;
	if (n >= HASH_PARALLEL_MIN && cpus > 1)
		nt = cpus < HASH_THREADS ? (size_t)cpus : HASH_THREADS;
	per = (n + nt - 1) / nt;
	for (i = 0; i < nt; i++) {
		size_t lo = i * per < n ? i * per : n;
		size_t hi = lo + per < n ? lo + per : n;

		job[i] = (struct hash_job){ fd, e + lo, hi - lo, slot + lo, 0 };
	}
	/* Job 0 runs here; the others get threads while they can be had. */
	for (i = 1; i < nt; i++) {
		if (pthread_create(&th[i], NULL, hash_job_run, &job[i]) != 0)
			break;
		started++;
	}
	hash_job_run(&job[0]);
	r = job[0].r;
	for (i = 1; i <= started; i++) {
		pthread_join(th[i], NULL);
		if (!r)
			r = job[i].r;
	}
	for (i = started + 1; i < nt && !r; i++) {
		hash_job_run(&job[i]);
		r = job[i].r;
	}
	return r;
}

static int cmp_pair(const void *a, const void *b)
{
	const struct hpair *x = a, *y = b;
	int c = memcmp(x->d, y->d, HASH_LEN);

	if (c)
		return c;
	return x->iter < y->iter ? -1 : x->iter > y->iter;
}

/* Group sorted pairs into codes. */
static int hash_codes(const struct hpair *pair, size_t npair, size_t **cstart,
		      size_t *ncode)
{
	size_t i, k = 0;
	size_t *cs = malloc((npair + 1) * sizeof(*cs));

	if (!cs)
		return -ENOMEM;
	for (i = 0; i < npair; i++)
		if (i == 0 || memcmp(pair[i - 1].d, pair[i].d, HASH_LEN) != 0)
			cs[k++] = i;
	cs[k] = npair;
	*cstart = cs;
	*ncode = k;
	return 0;
}

/* Build the by-hash tables for the current index (update_mu held). */
static int hash_build_locked(struct store *s)
{
	struct idx *ix = &s->ix;
	struct hslot *slot = NULL;
	struct hpair *pair = NULL;
	size_t *cstart = NULL, npair = 0, ncode = 0, i;
	int r;

	if (ix->hashed)
		return 0;
	slot = calloc(ix->cap ? ix->cap : 1, sizeof(*slot));
	pair = malloc((ix->n ? ix->n : 1) * sizeof(*pair));
	if (!slot || !pair) {
		r = -ENOMEM;
		goto out_free;
	}
	r = hash_slots(s->fd, ix->e, ix->n, slot);
	if (r < 0) {
		log_err("store: hashing code of %s: %s", s->path, strerror(-r));
		goto out_free;
	}
	for (i = 0; i < ix->n; i++) {
		if (!slot[i].has)
			continue;
		memcpy(pair[npair].d, slot[i].d, HASH_LEN);
		pair[npair++].iter = ix->e[i].iter;
	}
	qsort(pair, npair, sizeof(*pair), cmp_pair);
	r = hash_codes(pair, npair, &cstart, &ncode);
	if (r < 0)
		goto out_free;
	wr_lock(s);
	ix->slot = slot;
	ix->pair = pair;
	ix->npair = npair;
	ix->pcap = ix->n ? ix->n : 1;
	ix->cstart = cstart;
	ix->ncode = ncode;
	ix->ccap = npair + 1;
	ix->hashed = true;
	un_lock(s);
	return 0;
out_free:
	free(slot);
	free(pair);
	return r;
}

/* Take store->lock shared with the by-hash tables built. */
static int hash_rdlock(struct store *s)
{
	int r;

	for (;;) {
		rd_lock(s);
		if (s->ix.hashed)
			return 0;
		un_lock(s);
		up_lock(s);
		r = hash_build_locked(s);
		up_unlock(s);
		if (r < 0)
			return r;
	}
}

/* --- installing scan results --------------------------------------------- */

/* A fresh index from a scan of a whole file. */
static int idx_from_scan(struct scan *sc, struct idx *ix)
{
	uint64_t hidden;
	int r;

	memset(ix, 0, sizeof(*ix));
	r = scan_dedup(sc, &hidden);
	if (r < 0)
		return r;
	/* Shrink to fit: the index stays this size for a long time. */
	if (sc->n && sc->cap > sc->n) {
		void *p = realloc(sc->e, sc->n * sizeof(*sc->e));

		if (p) {
			sc->e = p;
			sc->cap = sc->n;
		}
		if (sc->t) {
			p = realloc(sc->t, sc->n * sizeof(*sc->t));
			if (p) {
				sc->t = p;
				sc->tcap = sc->n;
			}
		}
	}
	ix->e = sc->e;
	ix->n = sc->n;
	ix->cap = sc->t && sc->tcap < sc->cap ? sc->tcap : sc->cap;
	ix->t = sc->t;
	ix->skip = sc->skip;
	ix->nskip = sc->nskip;
	ix->skipcap = sc->skipcap;
	ix->lines = sc->lines;
	ix->records = sc->records;
	ix->beyond = sc->beyond;
	ix->tail_beyond = sc->tail_beyond;
	ix->sh = sc->sh;
	memset(&sc->sh, 0, sizeof(sc->sh));
	ix->dups = hidden;
	ix->size = sc->end;
	ix->tail_off = sc->tail_off;
	ix->tail = sc->tail;
	ix->tail_iter = sc->tail_iter;
	ix->tail_len = sc->tail_len;
	ix->plines = sc->tail == TAIL_NONE ? sc->lineno : sc->lineno - 1;
	sc->e = NULL;
	sc->t = NULL;
	sc->skip = NULL;
	return 0;
}

static int change_set(struct store_change *chg, bool reset,
		      const struct ent *e, size_t n)
{
	size_t i;

	if (!chg)
		return 0;
	memset(chg, 0, sizeof(*chg));
	chg->reset = reset;
	chg->changed = true;
	if (!n)
		return 0;
	chg->iters = malloc(n * sizeof(*chg->iters));
	if (!chg->iters)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		chg->iters[i] = e[i].iter;
	chg->n = n;
	return 0;
}

/* Index the whole file at fd and install it (update_mu held).  Takes
 * ownership of fd on success. */
static int reindex_locked(struct store *s, int fd, const struct stat *st,
			  bool reset, struct store_change *chg)
{
	struct scan sc = { .flags = s->flags };
	struct idx nix, old;
	int r, oldfd;

	r = scan_file(&sc, fd, 0, (uint64_t)st->st_size, s->path);
	if (r < 0)
		goto out_scan;
	r = idx_from_scan(&sc, &nix);
	if (r < 0)
		goto out_scan;
	r = change_set(chg, reset, reset ? NULL : nix.e, reset ? 0 : nix.n);
	if (r < 0) {
		idx_free(&nix);
		goto out_scan;
	}
	wr_lock(s);
	old = s->ix;
	s->ix = nix;
	oldfd = s->fd;
	s->fd = fd;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->mtim = st->st_mtim;
	s->generation++;
	un_lock(s);
	idx_free(&old);
	if (oldfd >= 0 && oldfd != fd)
		close(oldfd);
out_scan:
	scan_free(&sc);
	return r;
}

/* Drop everything: the file is gone (update_mu held). */
static void empty_locked(struct store *s, struct store_change *chg)
{
	struct idx old;
	int oldfd;

	if (chg) {
		memset(chg, 0, sizeof(*chg));
		chg->reset = chg->changed = true;
	}
	wr_lock(s);
	old = s->ix;
	memset(&s->ix, 0, sizeof(s->ix));
	oldfd = s->fd;
	s->fd = -1;
	s->generation++;
	un_lock(s);
	idx_free(&old);
	if (oldfd >= 0)
		close(oldfd);
}

/* The union of the index and the sorted, unique scan records, in new
 * arrays (scanned lines come later in the file, so they win). */
struct merged {
	struct ent *e;
	int64_t *t;
	struct hslot *slot;
	size_t n;
	struct hpair *gone; /* (digest, iter) of hidden old entries with code */
	size_t ngone;
	uint64_t replaced;  /* old entries hidden */
};

static void merged_free(struct merged *m)
{
	free(m->e);
	free(m->t);
	free(m->slot);
	free(m->gone);
}

/* `nslot` (slots of the scan records) non-NULL: merge the hash slots too. */
static int merge_build(const struct idx *ix, const struct scan *sc,
		       bool times, const struct hslot *nslot, struct merged *m)
{
	size_t i = 0, j = 0, k = 0, cap = ix->n + sc->n;

	memset(m, 0, sizeof(*m));
	m->e = malloc(cap * sizeof(*m->e));
	if (times)
		m->t = malloc(cap * sizeof(*m->t));
	if (nslot) {
		m->slot = malloc(cap * sizeof(*m->slot));
		m->gone = malloc(sc->n * sizeof(*m->gone));
	}
	if (!m->e || (times && !m->t) || (nslot && (!m->slot || !m->gone))) {
		merged_free(m);
		return -ENOMEM;
	}
	while (i < ix->n || j < sc->n) {
		bool take_new = j < sc->n &&
				(i >= ix->n || sc->e[j].iter <= ix->e[i].iter);

		if (!take_new) {
			m->e[k] = ix->e[i];
			if (times)
				m->t[k] = ix->t[i];
			if (nslot)
				m->slot[k] = ix->slot[i];
			i++;
			k++;
			continue;
		}
		if (i < ix->n && sc->e[j].iter == ix->e[i].iter) {
			m->replaced++;
			if (nslot && ix->slot[i].has) {
				memcpy(m->gone[m->ngone].d, ix->slot[i].d,
				       HASH_LEN);
				m->gone[m->ngone++].iter = ix->e[i].iter;
			}
			i++;
		}
		m->e[k] = sc->e[j];
		if (times)
			m->t[k] = sc->t[j];
		if (nslot)
			m->slot[k] = nslot[j];
		j++;
		k++;
	}
	m->n = k;
	return 0;
}

/* The (digest, iter) pairs of the scan records that have code, sorted. */
static int hash_adds(const struct scan *sc, const struct hslot *nslot,
		     struct hpair **oadd, size_t *onadd)
{
	struct hpair *add = malloc(sc->n * sizeof(*add));
	size_t j, nadd = 0;

	if (!add)
		return -ENOMEM;
	for (j = 0; j < sc->n; j++) {
		if (!nslot[j].has)
			continue;
		memcpy(add[nadd].d, nslot[j].d, HASH_LEN);
		add[nadd++].iter = sc->e[j].iter;
	}
	if (nadd)
		qsort(add, nadd, sizeof(*add), cmp_pair);
	*oadd = add;
	*onadd = nadd;
	return 0;
}

/* New pair and code tables: the old pairs minus `gone`, plus `add` (both
 * sorted).  For many changes at once; hash_patch does a few in place. */
static int hash_merge(const struct idx *ix, const struct hpair *gone,
		      size_t ngone, const struct hpair *add, size_t nadd,
		      struct hpair **opair, size_t *onpair, size_t **ocstart,
		      size_t *oncode)
{
	struct hpair *pair;
	size_t i = 0, g = 0, a = 0, k = 0;
	int r;

	pair = malloc((ix->npair + nadd + 1) * sizeof(*pair));
	if (!pair)
		return -ENOMEM;
	while (i < ix->npair || a < nadd) {
		if (i < ix->npair) {
			while (g < ngone && cmp_pair(&gone[g], &ix->pair[i]) < 0)
				g++;
			if (g < ngone && cmp_pair(&gone[g], &ix->pair[i]) == 0) {
				i++;
				continue;
			}
		}
		if (a < nadd &&
		    (i >= ix->npair || cmp_pair(&add[a], &ix->pair[i]) < 0))
			pair[k++] = add[a++];
		else
			pair[k++] = ix->pair[i++];
	}
	r = hash_codes(pair, k, ocstart, oncode);
	if (r < 0) {
		free(pair);
		return r;
	}
	*opair = pair;
	*onpair = k;
	return 0;
}

/* First pair not less than x. */
static size_t pair_lower(const struct idx *ix, const struct hpair *x)
{
	size_t lo = 0, hi = ix->npair;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (cmp_pair(&ix->pair[mid], x) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* First code whose start is >= pos (ix->ncode when none). */
static size_t code_lower(const struct idx *ix, size_t pos)
{
	size_t lo = 0, hi = ix->ncode;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->cstart[mid] < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The code holding pair `pos`. */
static size_t code_at(const struct idx *ix, size_t pos)
{
	size_t k = code_lower(ix, pos + 1);

	return k - 1;
}

/* Room for hash_patch to add `nadd` pairs (store->lock held exclusively).
 * On failure the tables are unchanged. */
static int hash_patch_reserve(struct idx *ix, size_t nadd)
{
	size_t pc = ix->pcap, cc = ix->ccap;
	int r;

	r = grow((void **)&ix->pair, &pc, ix->npair + nadd, sizeof(*ix->pair));
	if (r < 0)
		return r;
	ix->pcap = pc;
	r = grow((void **)&ix->cstart, &cc, ix->ncode + nadd + 1,
		 sizeof(*ix->cstart));
	if (r < 0)
		return r;
	ix->ccap = cc;
	return 0;
}

/* Remove `gone` and insert `add` in place: a commit adds a record or a few,
 * and rebuilding every table for them would make its latency grow with the
 * history.  Needs hash_patch_reserve(nadd) first; cannot fail. */
static void hash_patch(struct idx *ix, const struct hpair *gone, size_t ngone,
		       const struct hpair *add, size_t nadd)
{
	size_t i, j, p, k;

	for (i = 0; i < ngone; i++) {
		p = pair_lower(ix, &gone[i]);
		if (p >= ix->npair || cmp_pair(&ix->pair[p], &gone[i]) != 0)
			continue;
		k = code_at(ix, p);
		memmove(&ix->pair[p], &ix->pair[p + 1],
			(ix->npair - p - 1) * sizeof(*ix->pair));
		ix->npair--;
		for (j = k + 1; j <= ix->ncode; j++)
			ix->cstart[j]--;
		if (ix->cstart[k] == ix->cstart[k + 1]) {
			memmove(&ix->cstart[k], &ix->cstart[k + 1],
				(ix->ncode - k) * sizeof(*ix->cstart));
			ix->ncode--;
		}
	}
	for (i = 0; i < nadd; i++) {
		bool prev, next;

		p = pair_lower(ix, &add[i]);
		prev = p > 0 && memcmp(ix->pair[p - 1].d, add[i].d,
				       HASH_LEN) == 0;
		next = p < ix->npair && memcmp(ix->pair[p].d, add[i].d,
					       HASH_LEN) == 0;
		if (prev) {
			k = code_at(ix, p - 1);
		} else if (next) {
			k = code_at(ix, p); /* p starts it and still will */
		} else {
			/* A new code, starting at p. */
			k = code_lower(ix, p);
			memmove(&ix->cstart[k + 1], &ix->cstart[k],
				(ix->ncode + 1 - k) * sizeof(*ix->cstart));
			ix->cstart[k] = p;
			ix->ncode++;
		}
		memmove(&ix->pair[p + 1], &ix->pair[p],
			(ix->npair - p) * sizeof(*ix->pair));
		ix->pair[p] = add[i];
		ix->npair++;
		for (j = k + 1; j <= ix->ncode; j++)
			ix->cstart[j]++;
	}
}

/* Make every per-entry array hold `need` entries (store->lock held
 * exclusively: realloc may move what readers look at).  On failure the
 * index is unchanged (some arrays may just be larger than ix->cap). */
static int idx_reserve(struct idx *ix, size_t need, bool times, bool slots)
{
	size_t c = ix->cap ? ix->cap : 64;
	void *p;

	if (need <= ix->cap)
		return 0;
	while (c < need) {
		if (c > SIZE_MAX / 2 / sizeof(struct hslot))
			return -ENOMEM;
		c = c < 16 ? 16 : c + c / 2;
	}
	p = realloc(ix->e, c * sizeof(*ix->e));
	if (!p)
		return -ENOMEM;
	ix->e = p;
	if (times) {
		p = realloc(ix->t, c * sizeof(*ix->t));
		if (!p)
			return -ENOMEM;
		ix->t = p;
	}
	if (slots) {
		p = realloc(ix->slot, c * sizeof(*ix->slot));
		if (!p)
			return -ENOMEM;
		ix->slot = p;
	}
	ix->cap = c;
	return 0;
}

/* Index [ix.tail_off, end) of fd and add it to the index (update_mu held).
 * On success fd becomes the store's fd (the old one is closed if it
 * differs); on failure the caller still owns fd.  *need_full: the old
 * unterminated last line was a record and is not the same record now, so
 * only a full re-index is right (returns -EAGAIN then). */
static int extend_locked(struct store *s, int fd, const struct stat *st,
			 struct store_change *chg, bool *need_full)
{
	struct idx *ix = &s->ix;
	struct scan sc = { .flags = s->flags };
	bool times = s->flags & STORE_TIMES;
	struct hslot *nslot = NULL;
	struct merged m = { 0 };
	struct hpair *pair = NULL, *add = NULL;
	size_t *cstart = NULL, npair = 0, ncode = 0, nadd = 0;
	size_t nskip = ix->nskip;
	uint64_t hidden, lines = ix->lines, records = ix->records;
	uint64_t beyond = ix->beyond;
	struct shape sh = { 0 };
	bool append, changed, patch = true, hash_keep = ix->hashed;
	int r, oldfd = -1;

	*need_full = false;
	sc.lineno = ix->plines;
	r = scan_file(&sc, fd, ix->tail_off, (uint64_t)st->st_size, s->path);
	if (r < 0)
		goto out;
	/* Take back what the old unterminated last line contributed. */
	if (ix->tail == TAIL_SKIPPED) {
		lines--;
		nskip--;
		if (ix->tail_beyond)
			beyond--;
	} else if (ix->tail == TAIL_RECORD) {
		if (!sc.n || sc.e[0].lineno != ix->plines + 1 ||
		    sc.e[0].off != ix->tail_off ||
		    sc.e[0].len != ix->tail_len ||
		    sc.e[0].iter != ix->tail_iter) {
			*need_full = true;
			r = -EAGAIN;
			goto out;
		}
		/* The same record, now terminated: already in the index. */
		memmove(sc.e, sc.e + 1, (sc.n - 1) * sizeof(*sc.e));
		if (sc.t)
			memmove(sc.t, sc.t + 1, (sc.n - 1) * sizeof(*sc.t));
		sc.n--;
		sc.lines--;
		sc.records--;
		/* Its shape is in already; reading it twice changes nothing
		 * but the count. */
		sc.sh.records--;
	}
	r = shape_merge(&ix->sh, &sc.sh, &sh);
	if (r < 0)
		goto out;
	r = scan_dedup(&sc, &hidden);
	if (r < 0)
		goto out;
	if (hash_keep && sc.n) {
		nslot = malloc(sc.n * sizeof(*nslot));
		/* On failure the tables are dropped and rebuilt on next use. */
		if (!nslot || hash_slots(fd, sc.e, sc.n, nslot) < 0)
			hash_keep = false;
	}
	append = !ix->n || !sc.n || sc.e[0].iter > ix->e[ix->n - 1].iter;
	if (!append) {
		r = merge_build(ix, &sc, times, hash_keep ? nslot : NULL, &m);
		if (r < 0)
			goto out;
	}
	if (hash_keep && sc.n) {
		if (hash_adds(&sc, nslot, &add, &nadd) < 0) {
			hash_keep = false;
		} else if (nadd + m.ngone > HASH_PATCH_MAX) {
			patch = false;
			if (m.ngone)
				qsort(m.gone, m.ngone, sizeof(*m.gone),
				      cmp_pair);
			if (hash_merge(ix, m.gone, m.ngone, add, nadd, &pair,
				       &npair, &cstart, &ncode) < 0)
				hash_keep = false;
		}
	}
	changed = sc.n || sc.end != ix->size;
	if (changed) {
		r = change_set(chg, false, sc.e, sc.n);
		if (r < 0)
			goto out;
	}

	wr_lock(s);
	if (hash_keep && sc.n && patch && hash_patch_reserve(ix, nadd) < 0)
		hash_keep = false;
	if (append)
		r = idx_reserve(ix, ix->n + sc.n, times, hash_keep);
	if (!r && nskip + sc.nskip > ix->skipcap)
		r = grow((void **)&ix->skip, &ix->skipcap, nskip + sc.nskip,
			 sizeof(*ix->skip));
	if (r < 0) {
		un_lock(s);
		goto out;
	}
	/* From here on nothing fails. */
	if (append) {
		if (sc.n) {
			memcpy(ix->e + ix->n, sc.e, sc.n * sizeof(*sc.e));
			if (times)
				memcpy(ix->t + ix->n, sc.t,
				       sc.n * sizeof(*sc.t));
			if (hash_keep)
				memcpy(ix->slot + ix->n, nslot,
				       sc.n * sizeof(*nslot));
		}
		ix->n += sc.n;
	} else {
		free(ix->e);
		free(ix->t);
		ix->e = m.e;
		ix->t = m.t;
		ix->n = ix->cap = m.n;
		m.e = NULL;
		m.t = NULL;
		if (hash_keep) {
			free(ix->slot);
			ix->slot = m.slot;
			m.slot = NULL;
		}
	}
	if (hash_keep && sc.n && patch) {
		hash_patch(ix, m.gone, m.ngone, add, nadd);
	} else if (hash_keep && sc.n) {
		free(ix->pair);
		free(ix->cstart);
		ix->pair = pair;
		ix->npair = ix->pcap = npair;
		ix->cstart = cstart;
		ix->ncode = ncode;
		ix->ccap = npair + 1;
		pair = NULL;
		cstart = NULL;
	} else if (!hash_keep && ix->hashed) {
		idx_free_hash(ix);
	}
	if (sc.nskip)
		memcpy(ix->skip + nskip, sc.skip, sc.nskip * sizeof(*sc.skip));
	ix->nskip = nskip + sc.nskip;
	ix->lines = lines + sc.lines;
	ix->records = records + sc.records;
	ix->beyond = beyond + sc.beyond;
	ix->tail_beyond = sc.tail_beyond;
	{
		struct shape t = ix->sh;

		ix->sh = sh;
		sh = t;
	}
	ix->dups += hidden + m.replaced;
	ix->plines = sc.tail == TAIL_NONE ? sc.lineno : sc.lineno - 1;
	ix->tail_off = sc.tail_off;
	ix->tail = sc.tail;
	ix->tail_iter = sc.tail_iter;
	ix->tail_len = sc.tail_len;
	ix->size = sc.end;
	if (changed)
		s->generation++;
	if (s->fd != fd)
		oldfd = s->fd;
	s->fd = fd;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->mtim = st->st_mtim;
	un_lock(s);
	if (oldfd >= 0)
		close(oldfd);
out:
	if (r < 0)
		store_change_free(chg);
	shape_free(&sh);
	merged_free(&m);
	free(pair);
	free(cstart);
	free(add);
	free(nslot);
	scan_free(&sc);
	return r;
}

/* Do the first `len` bytes of a and b agree? */
static int same_prefix(int a, int b, uint64_t len, bool *same)
{
	char *x = malloc(CMP_CHUNK), *y = malloc(CMP_CHUNK);
	uint64_t off = 0;
	int r = 0;

	*same = true;
	if (!x || !y) {
		r = -ENOMEM;
		goto out;
	}
	while (off < len && *same) {
		size_t n = len - off < CMP_CHUNK ? (size_t)(len - off) : CMP_CHUNK;

		r = fileio_pread_full(a, x, n, off);
		if (r == 0)
			r = fileio_pread_full(b, y, n, off);
		if (r < 0)
			goto out;
		*same = memcmp(x, y, n) == 0;
		off += n;
	}
out:
	free(x);
	free(y);
	return r;
}

static int open_path(const char *path, int *fd, struct stat *st)
{
	int r;

	/* O_NONBLOCK: a FIFO at the path must be an error, not a hang. */
	*fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (*fd < 0)
		return -errno;
	if (fstat(*fd, st) < 0) {
		r = -errno;
		close(*fd);
		*fd = -1;
		errno = -r;
		return r;
	}
	if (!S_ISREG(st->st_mode)) {
		close(*fd);
		*fd = -1;
		return S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
	}
	return 0;
}

/* --- public -------------------------------------------------------------- */

int store_open(const char *path, unsigned flags, struct store **out)
{
	pthread_rwlockattr_t attr;
	struct store *s;
	struct stat st;
	int r, fd;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->flags = flags;
	s->path = strdup(path);
	if (!s->path) {
		r = -ENOMEM;
		goto out_free;
	}
	if (pthread_mutex_init(&s->update_mu, NULL) != 0) {
		r = -ENOMEM;
		goto out_path;
	}
	/* glibc's default lets a stream of readers starve the refresher, so
	 * writers go first (no function here takes the lock recursively). */
	if (pthread_rwlockattr_init(&attr) != 0) {
		r = -ENOMEM;
		goto out_mutex;
	}
	if (pthread_rwlockattr_setkind_np(&attr,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP) != 0 ||
	    pthread_rwlock_init(&s->lock, &attr) != 0) {
		pthread_rwlockattr_destroy(&attr);
		r = -ENOMEM;
		goto out_mutex;
	}
	pthread_rwlockattr_destroy(&attr);
	r = open_path(path, &fd, &st);
	if (r == -ENOENT) {
		*out = s;
		return 0;
	}
	if (r < 0) {
		log_err("store: open %s: %s", path, strerror(-r));
		goto out_rwlock;
	}
	r = reindex_locked(s, fd, &st, true, NULL);
	if (r < 0) {
		close(fd);
		goto out_rwlock;
	}
	s->generation = 1;
	*out = s;
	return 0;
out_rwlock:
	pthread_rwlock_destroy(&s->lock);
out_mutex:
	pthread_mutex_destroy(&s->update_mu);
out_path:
	free(s->path);
out_free:
	free(s);
	return r;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	idx_free(&s->ix);
	if (s->fd >= 0)
		close(s->fd);
	pthread_rwlock_destroy(&s->lock);
	pthread_mutex_destroy(&s->update_mu);
	store_change_free(&s->unread);
	free(s->path);
	free(s);
}

const char *store_path(const struct store *s)
{
	return s->path;
}

static uint64_t index_bytes(const struct store *s)
{
	const struct idx *ix = &s->ix;
	uint64_t b = sizeof(*s);

	b += ix->cap * sizeof(*ix->e);
	if (ix->t)
		b += ix->cap * sizeof(*ix->t);
	b += ix->skipcap * sizeof(*ix->skip);
	if (ix->hashed) {
		b += ix->cap * sizeof(*ix->slot);
		b += ix->pcap * sizeof(*ix->pair);
		b += ix->ccap * sizeof(*ix->cstart);
	}
	return b;
}

int store_stats(struct store *s, struct store_stats *st)
{
	rd_lock(s);
	st->lines = s->ix.lines;
	st->records = s->ix.records;
	st->iterations = s->ix.n;
	st->skipped = s->ix.nskip;
	st->beyond = s->ix.beyond;
	st->duplicates = s->ix.dups;
	st->file_size = s->ix.size;
	st->index_bytes = index_bytes(s);
	st->generation = s->generation;
	un_lock(s);
	return 0;
}

int store_skipped(struct store *s, uint64_t *linenos, size_t max,
		  size_t *total)
{
	rd_lock(s);
	*total = s->ix.nskip;
	if (max > s->ix.nskip)
		max = s->ix.nskip;
	if (max)
		memcpy(linenos, s->ix.skip, max * sizeof(*linenos));
	un_lock(s);
	return 0;
}

int store_lookup(struct store *s, int64_t iter, struct store_rec *rec)
{
	bool found;
	size_t i;

	rd_lock(s);
	i = find_iter(&s->ix, iter, &found);
	if (found) {
		rec->iter = iter;
		rec->mtime = s->ix.t ? s->ix.t[i] : 0;
		rec->lineno = s->ix.e[i].lineno;
		rec->offset = s->ix.e[i].off;
		rec->len = s->ix.e[i].len;
	}
	un_lock(s);
	return found ? 0 : -ENOENT;
}

int store_highest(struct store *s, int64_t *iter, bool *found)
{
	rd_lock(s);
	*found = s->ix.n > 0;
	if (*found)
		*iter = s->ix.e[s->ix.n - 1].iter;
	un_lock(s);
	return 0;
}

int store_list(struct store *s, size_t start, int64_t *out, size_t max,
	       size_t *n)
{
	size_t i;

	rd_lock(s);
	for (i = 0; i < max && start + i < s->ix.n; i++)
		out[i] = s->ix.e[start + i].iter;
	*n = i;
	un_lock(s);
	return 0;
}

int store_read(struct store *s, int64_t iter, struct buf *line)
{
	struct ent e;
	bool found;
	size_t i;
	int r;

	rd_lock(s);
	i = find_iter(&s->ix, iter, &found);
	if (!found) {
		r = -ENOENT;
		goto out;
	}
	e = s->ix.e[i];
	r = buf_reserve(line, e.len);
	if (r < 0)
		goto out;
	r = fileio_pread_full(s->fd, line->data + line->len, e.len, e.off);
	if (r < 0)
		goto out;
	line->len += e.len;
	line->data[line->len] = '\0';
out:
	un_lock(s);
	if (line->data)
		line->data[line->len] = '\0';
	return r;
}

/* Add what one refresh or adopt found to s->unread (update_mu held), then
 * hand it to the caller's chg or free it.  A merge that cannot allocate
 * widens to "everything changed", never to "nothing". */
static void change_note(struct store *s, struct store_change *found,
			struct store_change *chg)
{
	struct store_change *u = &s->unread;
	int64_t *v;

	if (found->changed) {
		u->changed = true;
		if (found->reset || u->n + found->n > UNREAD_MAX)
			u->reset = true;
		if (u->reset) {
			free(u->iters);
			u->iters = NULL;
			u->n = 0;
		} else if (found->n) {
			v = realloc(u->iters,
				    (u->n + found->n) * sizeof(*v));
			if (v) {
				memcpy(v + u->n, found->iters,
				       found->n * sizeof(*v));
				u->iters = v;
				u->n += found->n;
			} else {
				free(u->iters);
				u->iters = NULL;
				u->n = 0;
				u->reset = true;
			}
		}
	}
	if (chg)
		*chg = *found;
	else
		store_change_free(found);
}

int store_changes_take(struct store *s, struct store_change *chg)
{
	up_lock(s);
	*chg = s->unread;
	memset(&s->unread, 0, sizeof(s->unread));
	up_unlock(s);
	return 0;
}

int store_refresh(struct store *s, struct store_change *chg)
{
	struct store_change found = { 0 };
	struct stat st;
	bool same_file, prefix = false, need_full = false;
	int r, fd;

	up_lock(s);
	r = open_path(s->path, &fd, &st);
	if (r == -ENOENT) {
		if (s->fd >= 0 || s->ix.size)
			empty_locked(s, &found);
		r = 0;
		goto out;
	}
	if (r < 0) {
		log_err("store: open %s: %s", s->path, strerror(-r));
		goto out;
	}
	same_file = s->fd >= 0 && st.st_dev == s->dev && st.st_ino == s->ino;
	if (same_file) {
		/* Keep the fd we indexed; it is the same file. */
		close(fd);
		fd = s->fd;
		if ((uint64_t)st.st_size == s->ix.size &&
		    st.st_mtim.tv_sec == s->mtim.tv_sec &&
		    st.st_mtim.tv_nsec == s->mtim.tv_nsec)
			goto out;
		/* Grown in place: trusted to be an extension.  Same size with
		 * a new mtime, or shrunk: rewritten in place. */
		prefix = (uint64_t)st.st_size > s->ix.size;
	} else if (s->fd < 0) {
		prefix = true;
	} else if ((uint64_t)st.st_size >= s->ix.size) {
		r = same_prefix(s->fd, fd, s->ix.size, &prefix);
		if (r < 0) {
			log_err("store: compare %s with the indexed file: %s",
				s->path, strerror(-r));
			close(fd);
			goto out;
		}
	}
	if (prefix) {
		r = extend_locked(s, fd, &st, &found, &need_full);
		if (!need_full) {
			if (r < 0 && fd != s->fd)
				close(fd);
			goto out;
		}
	}
	r = reindex_locked(s, fd, &st, true, &found);
	if (r < 0 && fd != s->fd)
		close(fd);
out:
	change_note(s, &found, chg);
	up_unlock(s);
	return r;
}

void store_change_free(struct store_change *chg)
{
	if (!chg)
		return;
	free(chg->iters);
	memset(chg, 0, sizeof(*chg));
}

int store_adopt(struct store *s, struct store_change *chg)
{
	struct store_change found = { 0 };
	struct stat st;
	bool need_full = false;
	int r, fd;

	up_lock(s);
	r = open_path(s->path, &fd, &st);
	if (r < 0) {
		log_err("store: open %s after commit: %s", s->path,
			strerror(-r));
		goto out;
	}
	if ((uint64_t)st.st_size < s->ix.size) {
		log_err("store: %s is shorter than the indexed content after "
			"commit", s->path);
		close(fd);
		r = -EIO;
		goto out;
	}
	r = extend_locked(s, fd, &st, &found, &need_full);
	if (need_full)
		r = reindex_locked(s, fd, &st, true, &found);
	if (r < 0 && fd != s->fd)
		close(fd);
out:
	change_note(s, &found, chg);
	up_unlock(s);
	return r;
}

/* --- shape public --------------------------------------------------------- */

int store_shape(struct store *s, struct store_shape *out)
{
	const struct shape *sh;
	const struct record_field_def *d;
	size_t i;
	unsigned f;
	int r = 0;

	memset(out, 0, sizeof(*out));
	rd_lock(s);
	sh = &s->ix.sh;
	out->records = sh->records;
	for (f = 0; f < FIELD_COUNT; f++) {
		d = record_field_def((enum record_field)f);
		if (sh->alias[f])
			out->dialect[f] = d->key[sh->alias[f] - 1];
	}
	if (sh->n) {
		out->f = calloc(sh->n, sizeof(*out->f));
		if (!out->f)
			r = -ENOMEM;
	}
	for (i = 0; i < sh->n && !r; i++) {
		const struct store_shape_field *x = &sh->f[i];
		const char *key = x->key;

		if (x->field >= 0)
			key = out->dialect[x->field];
		out->f[i] = *x;
		out->f[i].key = strdup(key ? key : "");
		out->n++;
		if (!out->f[i].key)
			r = -ENOMEM;
	}
	un_lock(s);
	if (r < 0)
		store_shape_free(out);
	return r;
}

void store_shape_free(struct store_shape *sh)
{
	size_t i;

	for (i = 0; i < sh->n; i++)
		free(sh->f[i].key);
	free(sh->f);
	memset(sh, 0, sizeof(*sh));
}

/* --- by-hash public ------------------------------------------------------ */

int store_code_of(struct store *s, int64_t iter, unsigned char d[HASH_LEN],
		  bool *has_code)
{
	bool found;
	size_t i;
	int r;

	r = hash_rdlock(s);
	if (r < 0)
		return r;
	i = find_iter(&s->ix, iter, &found);
	if (found) {
		*has_code = s->ix.slot[i].has;
		if (*has_code)
			memcpy(d, s->ix.slot[i].d, HASH_LEN);
	}
	un_lock(s);
	return found ? 0 : -ENOENT;
}

static void code_fill(const struct idx *ix, size_t k, struct store_code *c)
{
	const struct hpair *p = &ix->pair[ix->cstart[k]];

	memcpy(c->digest, p->d, HASH_LEN);
	c->first_iter = p->iter;
	c->count = ix->cstart[k + 1] - ix->cstart[k];
}

int store_codes(struct store *s, size_t start, struct store_code *out,
		size_t max, size_t *n)
{
	size_t i;
	int r;

	r = hash_rdlock(s);
	if (r < 0)
		return r;
	for (i = 0; i < max && start + i < s->ix.ncode; i++)
		code_fill(&s->ix, start + i, &out[i]);
	*n = i;
	un_lock(s);
	return 0;
}

int store_code_lookup(struct store *s, const unsigned char d[HASH_LEN],
		      struct store_code *code, int64_t *iters, size_t max)
{
	const struct idx *ix = &s->ix;
	size_t lo = 0, hi, i;
	int r;

	r = hash_rdlock(s);
	if (r < 0)
		return r;
	hi = ix->ncode;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(ix->pair[ix->cstart[mid]].d, d, HASH_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= ix->ncode ||
	    memcmp(ix->pair[ix->cstart[lo]].d, d, HASH_LEN) != 0) {
		r = -ENOENT;
		goto out;
	}
	code_fill(ix, lo, code);
	for (i = 0; i < max && i < code->count; i++)
		iters[i] = ix->pair[ix->cstart[lo] + i].iter;
out:
	un_lock(s);
	return r;
}
