/* incoming.c - the drop box behind incoming/.
 *
 * Contents: the states of a drop; the table; kept files (keep.h); requests
 * and the pump that answers them; the committer's callback; setup and
 * teardown; the entry points in incoming.h's order.
 *
 * A drop's states.  `pending` is the bytes past `committed`; "err@gen" is a
 * failure recorded for the bytes as they are now (any write bumps gen and
 * clears it); every row may also be `busy` (a commit or a keep of it is in
 * flight: requests queue on it, overlapping writes wait).
 *
 *   state       listed  lookup  flush/fsync does              last release
 *   ----------  ------  ------  ---------------------------   -------------
 *   WRITING     yes     yes     commit pending (plain name);   keep pending
 *                               nothing (staging name)         (plain name)
 *   UNFINISHED  yes     yes     -EINVAL, stays WRITING         keep pending
 *   REJECTED    no (*)  no (*)  the same error again           -
 *   COMMITTED   no      grace   0 (nothing new)                -
 *   DISCARDED   no      no      0                              -
 *
 *   (*) the kept copy is listed as <k>.rejected / <k>.reason instead; a
 *       staging drop whose rename failed stays listed under its own name.
 *
 * Transitions: a write or truncate makes any state but DISCARDED WRITING
 * again (O_TRUNC or truncate to 0 start over from committed = 0); a commit
 * that succeeds makes it COMMITTED (its kept copy, if any, is removed); one
 * that fails makes it REJECTED (kept at once: RELEASE is asynchronous, so a
 * writer that just saw close() fail must already find <k>.reason); unlink
 * makes it DISCARDED; a committed name leaves lookup when its grace period
 * ends or it is unlinked.
 *
 * Why requests queue on the drop and not on a thread: a flush may wait
 * seconds for a lock another tool holds.  The FUSE thread that brought it
 * returns at once; the committer's callback answers it and then looks at
 * the next request of that drop (a second descriptor's flush, the release).
 * So no thread waits for a commit, and the answers of one drop keep their
 * order.
 *
 * The table is a small array in creation order (incoming/ holds what is
 * being written right now plus rejected drops); lookups are linear.
 */
#include "incoming.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "committer.h"
#include "dropbuf.h"
#include "fileio.h"
#include "jtext.h"
#include "keep.h"
#include "log.h"
#include "writer.h"

#define REASON_LEN (COMMIT_WHY_LEN + 64)
#define SUFFIX_REJECTED ".rejected"
#define SUFFIX_REASON ".reason"

enum ent_kind {
	ENT_DROP,
	ENT_KEPT,     /* "<k>.rejected": the kept bytes */
	ENT_REASON,   /* "<k>.reason": the kept reason */
};

enum req_kind { RQ_FLUSH, RQ_FSYNC, RQ_RENAME, RQ_RELEASE };

/* A request waiting for its answer (guarded by in->lock). */
struct req {
	enum req_kind kind;
	incoming_reply_fn *reply;
	void *arg;
	char newname[NAME_MAX + 1]; /* RQ_RENAME */
	struct req *next;
};

/* An answer to send once in->lock is released. */
struct answer {
	incoming_reply_fn *reply;
	void *arg;
	int result;
};

struct answers {
	struct answer *v;
	size_t n, cap;
};

/* Every field is guarded by in->lock. */
struct ent {
	struct incoming *in;      /* owner (constant) */
	uint64_t ino;
	enum ent_kind kind;
	char name[NAME_MAX + 1];  /* as shown in incoming/ */
	bool listed;              /* in readdir and lookup */
	uint64_t grace_until;     /* CLOCK_MONOTONIC ns; lookup only */
	unsigned opens;
	mode_t mode;              /* permission bits shown */
	uid_t uid;
	gid_t gid;
	struct timespec mtime;

	/* ENT_KEPT, ENT_REASON */
	char *file;               /* absolute path in the kept directory */
	uint64_t size;

	/* ENT_DROP */
	struct dropbuf *db;
	uint64_t committed;       /* [0, committed) is in the store */
	uint64_t gen;             /* bumped by every change of the bytes */
	bool staging;             /* name starts with '.' */
	bool discarded;           /* rm'd: never committed nor kept */
	bool efbig;               /* a write went past max_record */
	int err;                  /* last failure, valid while err_gen == gen */
	uint64_t err_gen;
	char reason[REASON_LEN];  /* the one-line reason of err */
	struct keep_id kept;      /* kept copy; kept.name[0] == 0: none */
	uint64_t kept_gen;        /* gen whose bytes the kept copy holds */
	bool busy;                /* a commit or keep is in flight */
	struct req *waiting;      /* FIFO of requests */
	struct req *cur;          /* the request whose commit is in flight */
	struct committer_job job; /* in flight while busy && cur */
	struct dropbuf_view view; /* the bytes job.data points into */
	uint64_t job_end;         /* committed after the job succeeds */
};

struct incoming {
	struct store *store;
	struct incoming_opts o;
	struct keepdir *kd;       /* "<store>.rejected" */
	struct dropbuf_pool *pool;/* guarded by in->lock */
	struct committer *c;

	pthread_mutex_t lock;
	pthread_cond_t idle;      /* a drop stopped being busy */
	struct ent **ents;        /* guarded by in->lock */
	size_t n, cap;            /* guarded by in->lock */
	uint64_t counter;         /* guarded by in->lock: inode numbers */
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

void incoming_stats(struct incoming *in, size_t *waiting,
		    uint64_t *last_commit_ns)
{
	committer_stats(in->c, waiting, last_commit_ns);
}

/* --- answers ------------------------------------------------------------ */

static void answer_add(struct answers *as, incoming_reply_fn *reply, void *arg,
		       int result)
{
	struct answer *v;
	size_t cap;

	if (as->n == as->cap) {
		cap = as->cap ? as->cap * 2 : 4;
		v = realloc(as->v, cap * sizeof(*v));
		if (!v) {
			/* Cannot be queued: answer now, lock or not (the
			 * reply functions never take in->lock). */
			reply(arg, result);
			return;
		}
		as->v = v;
		as->cap = cap;
	}
	as->v[as->n++] = (struct answer){ reply, arg, result };
}

static void answers_send(struct answers *as)
{
	size_t i;

	for (i = 0; i < as->n; i++)
		as->v[i].reply(as->v[i].arg, as->v[i].result);
	free(as->v);
	memset(as, 0, sizeof(*as));
}

static void answer_req(struct answers *as, struct req *rq, int result)
{
	answer_add(as, rq->reply, rq->arg, result);
	free(rq);
}

/* --- the table (in->lock held) ------------------------------------------ */

static bool resolvable(const struct ent *e, uint64_t t)
{
	return e->listed || e->grace_until > t;
}

static struct ent *find_ino(struct incoming *in, uint64_t ino)
{
	size_t i;

	for (i = 0; i < in->n; i++)
		if (in->ents[i]->ino == ino)
			return in->ents[i];
	return NULL;
}

/* The entry `name` resolves to: a listed one first, else a committed name
 * in its grace period. */
static struct ent *find_name(struct incoming *in, const char *name)
{
	struct ent *grace = NULL;
	uint64_t t = mono_ns();
	size_t i;

	for (i = 0; i < in->n; i++) {
		struct ent *e = in->ents[i];

		if (!resolvable(e, t) || strcmp(e->name, name) != 0)
			continue;
		if (e->listed)
			return e;
		grace = e;
	}
	return grace;
}

static int ent_add(struct incoming *in, enum ent_kind kind, const char *name,
		   struct ent **out)
{
	struct ent **v, *e;
	size_t cap;

	if (in->n == in->cap) {
		cap = in->cap ? in->cap * 2 : 16;
		v = realloc(in->ents, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		in->ents = v;
		in->cap = cap;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->in = in;
	e->ino = INCOMING_INO_BASE + ++in->counter;
	e->kind = kind;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->listed = true;
	e->mode = kind == ENT_DROP ? 0644 : 0444;
	e->uid = in->o.uid;
	e->gid = in->o.gid;
	now(&e->mtime);
	in->ents[in->n++] = e;
	*out = e;
	return 0;
}

static void ent_free(struct ent *e)
{
	struct req *rq, *next;

	for (rq = e->waiting; rq; rq = next) {
		next = rq->next;
		free(rq);
	}
	dropbuf_view_release(&e->view);
	dropbuf_free(e->db);
	free(e->file);
	free(e);
}

/* Remove `e` from the table once nothing can reach it any more. */
static void ent_maybe_free(struct incoming *in, struct ent *e)
{
	size_t i;

	if (e->listed || e->grace_until > mono_ns() || e->opens || e->busy ||
	    e->waiting)
		return;
	for (i = 0; i < in->n; i++) {
		if (in->ents[i] == e) {
			memmove(in->ents + i, in->ents + i + 1,
				(in->n - i - 1) * sizeof(*in->ents));
			in->n--;
			break;
		}
	}
	ent_free(e);
}

/* Forget committed names whose grace period is over. */
static void expire(struct incoming *in)
{
	uint64_t t = mono_ns();
	size_t i;

	for (i = in->n; i-- > 0;) {
		struct ent *e = in->ents[i];

		if (!e->listed && e->grace_until && e->grace_until <= t) {
			e->grace_until = 0;
			ent_maybe_free(in, e);
		}
	}
}

/* Take `e` out of lookup and readdir. */
static void ent_hide(struct incoming *in, struct ent *e)
{
	e->listed = false;
	e->grace_until = 0;
	ent_maybe_free(in, e);
}

static void ent_hide_name(struct incoming *in, const char *name)
{
	struct ent *e = find_name(in, name);

	if (e)
		ent_hide(in, e);
}

static void ent_attr(const struct ent *e, struct incoming_attr *a)
{
	a->ino = e->ino;
	a->mode = S_IFREG | e->mode;
	a->uid = e->uid;
	a->gid = e->gid;
	a->size = e->kind == ENT_DROP ? dropbuf_size(e->db) : e->size;
	a->mtime = e->mtime;
}

/* Show a kept file in incoming/ as `name`, replacing an older entry of
 * that name (a new inode, so no cached page of the old bytes survives). */
static int ent_add_file(struct incoming *in, enum ent_kind kind,
			const char *name, const char *file, uint64_t size,
			const struct timespec *mtime)
{
	struct ent *e;
	char *path;
	int r;

	if (asprintf(&path, "%s/%s", keepdir_path(in->kd), file) < 0)
		return -ENOMEM;
	ent_hide_name(in, name);
	r = ent_add(in, kind, name, &e);
	if (r < 0) {
		free(path);
		return r;
	}
	e->file = path;
	e->size = size;
	e->mtime = *mtime;
	return 0;
}

/* The entries of the kept drop `k`: "<k>.rejected", and "<k>.reason"
 * when it has a reason of `reason_size` bytes (< 0: none). */
static int show_kept(struct incoming *in, const char *k, uint64_t size,
		     int64_t reason_size, const struct timespec *mtime)
{
	char name[NAME_MAX + 1], file[NAME_MAX + 1];
	int r;

	snprintf(name, sizeof(name), "%s" SUFFIX_REJECTED, k);
	r = ent_add_file(in, ENT_KEPT, name, k, size, mtime);
	if (r < 0 || reason_size < 0)
		return r;
	snprintf(name, sizeof(name), "%s" SUFFIX_REASON, k);
	snprintf(file, sizeof(file), "%s" SUFFIX_REASON, k);
	return ent_add_file(in, ENT_REASON, name, file, (uint64_t)reason_size,
			    mtime);
}

static void hide_kept(struct incoming *in, const char *k)
{
	char name[NAME_MAX + 1];

	snprintf(name, sizeof(name), "%s" SUFFIX_REJECTED, k);
	ent_hide_name(in, name);
	snprintf(name, sizeof(name), "%s" SUFFIX_REASON, k);
	ent_hide_name(in, name);
}

/* --- drops (in->lock held; the I/O ones drop and retake it) -------------- */

static void set_busy(struct incoming *in, struct ent *d, bool busy)
{
	d->busy = busy;
	if (!busy)
		pthread_cond_broadcast(&in->idle);
}

static void wait_idle(struct incoming *in, struct ent *d)
{
	while (d->busy)
		pthread_cond_wait(&in->idle, &in->lock);
}

static int drop_fail(struct ent *d, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int drop_fail(struct ent *d, int err, const char *fmt, ...)
{
	va_list ap;

	d->err = err;
	d->err_gen = d->gen;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
	return err;
}

static bool failed_now(const struct ent *d)
{
	return d->err && d->err_gen == d->gen;
}

static uint64_t pending_len(const struct ent *d)
{
	return dropbuf_size(d->db) - d->committed;
}

/* Bytes changed: any recorded failure and any committed name are stale. */
static void touched(struct ent *d)
{
	d->gen++;
	now(&d->mtime);
}

static int keep_err(const struct ent *d, const char *base, int r)
{
	log_err("incoming: drop %s rejected (%s) and could not be kept as "
		"%s in the rejected directory: %s", d->name, d->reason, base,
		strerror(-r));
	return r;
}

/* Keep the pending bytes of a failed drop as rejected, under a name from
 * `base`, unless the kept copy already holds them.  A plain drop leaves the
 * listing (it lives on as <k>.rejected: a re-send under its name is a new
 * drop); a staging one stays, its writer still owns the name. */
static void drop_keep(struct incoming *in, struct ent *d, const char *base)
{
	struct dropbuf_view v;
	struct keep_id id = d->kept;
	char reason[REASON_LEN], b[NAME_MAX + 1], old[NAME_MAX + 1];
	char name[NAME_MAX + 1];
	uint64_t gen = d->gen;
	struct timespec t;
	size_t len;
	int r;

	if (!failed_now(d) || (d->kept.name[0] && d->kept_gen == gen))
		return;
	r = dropbuf_view(d->db, d->committed, (size_t)pending_len(d), &v);
	if (r < 0) {
		keep_err(d, base, r);
		return;
	}
	snprintf(reason, sizeof(reason), "%s", d->reason);
	snprintf(b, sizeof(b), "%s", base);
	snprintf(old, sizeof(old), "%s", d->kept.name);
	snprintf(name, sizeof(name), "%s", d->name);
	len = v.len;
	set_busy(in, d, true);
	pthread_mutex_unlock(&in->lock);

	r = keepdir_put(in->kd, b, v.p, len, reason, &id);
	dropbuf_view_release(&v);
	if (r == 0)
		log_warn("incoming: drop %s rejected (%s), kept as %s/%s",
			 name, reason, keepdir_path(in->kd), id.name);

	pthread_mutex_lock(&in->lock);
	set_busy(in, d, false);
	if (r < 0) {
		keep_err(d, b, r);
		return;
	}
	if (old[0] && strcmp(old, id.name) != 0)
		hide_kept(in, old);
	d->kept = id;
	d->kept_gen = gen;
	if (!d->staging) {
		d->listed = false;
		d->grace_until = 0;
	}
	now(&t);
	r = show_kept(in, id.name, len, (int64_t)strlen(reason) + 1, &t);
	if (r < 0)
		log_err("incoming: listing %s: %s", id.name, strerror(-r));
}

/* The drop committed after all: its kept copy is stale. */
static void drop_unkeep(struct incoming *in, struct ent *d)
{
	struct keep_id id = d->kept;
	int r;

	if (!id.name[0])
		return;
	d->kept.name[0] = '\0';
	hide_kept(in, id.name);
	set_busy(in, d, true);
	pthread_mutex_unlock(&in->lock);
	r = keepdir_remove(in->kd, &id);
	if (r < 0 && r != -ENOENT)
		log_warn("incoming: removing the stale kept copy %s/%s: %s",
			 keepdir_path(in->kd), id.name, strerror(-r));
	pthread_mutex_lock(&in->lock);
	set_busy(in, d, false);
}

/* A commit landed on "<k>.rejected": the user fixed that kept drop. */
static void unkeep_target(struct incoming *in, const char *target)
{
	struct ent *t = find_name(in, target);
	char k[NAME_MAX + 1];
	int r;

	if (!t || t->kind != ENT_KEPT)
		return;
	snprintf(k, sizeof(k), "%.*s",
		 (int)(strlen(target) - strlen(SUFFIX_REJECTED)), target);
	hide_kept(in, k);
	pthread_mutex_unlock(&in->lock);
	r = keepdir_unlink_name(in->kd, k);
	pthread_mutex_lock(&in->lock);
	if (r < 0 && r != -ENOENT)
		log_warn("incoming: removing %s/%s after its fix committed: %s",
			 keepdir_path(in->kd), k, strerror(-r));
}

/* The kept base for a drop failing under `name`: a target "<k>.rejected"
 * stands for k. */
static void base_of(const char *name, char out[NAME_MAX + 1])
{
	size_t n = strlen(name);

	if (ends_with(name, SUFFIX_REJECTED))
		n -= strlen(SUFFIX_REJECTED);
	snprintf(out, NAME_MAX + 1, "%.*s", (int)n, name);
}

static int count_value(struct jtext_span v, void *arg)
{
	(void)v;
	(void)arg;
	return 0;
}

/* --- the pump: answer a drop's requests in order (in->lock held) --------- */

static void job_done(struct committer_job *job);

/* Give `d` the name `to` (hiding any other entry of that name) and, for
 * a plain name after a commit, the grace period instead of the listing. */
static void drop_rename(struct incoming *in, struct ent *d, const char *to,
			bool committed)
{
	struct ent *old = find_name(in, to);

	if (old && old != d) {
		if (old->kind == ENT_DROP)
			old->discarded = true;
		ent_hide(in, old);
	}
	snprintf(d->name, sizeof(d->name), "%s", to);
	d->staging = to[0] == '.';
	if (committed && !d->staging) {
		d->listed = false;
		d->grace_until = mono_ns() + (uint64_t)in->o.grace_ms * 1000000u;
	} else {
		d->listed = true;
		d->grace_until = 0;
	}
}

/* Start the commit for `rq` of the pending bytes precheck left in
 * d->view; the pump stops until job_done. */
static void start_job(struct incoming *in, struct ent *d, struct req *rq)
{
	memset(&d->job, 0, sizeof(d->job));
	d->job.data = d->view.p;
	d->job.len = d->view.len;
	d->job.done = job_done;
	d->job.arg = d;
	d->job_end = d->committed + d->view.len;
	d->cur = rq;
	set_busy(in, d, true);
	committer_submit(in->c, &d->job);
}

/* What a commit request (flush, fsync, rename to a plain name) finds before
 * any commit: > 0 to go on and commit (d->view then holds the pending
 * bytes, for start_job), else the answer.  On a failure that is final for
 * these bytes the drop is kept under `base`. */
static int precheck(struct incoming *in, struct ent *d, enum req_kind kind,
		    const char *base)
{
	size_t errpos = 0, bom;
	int r;

	if (d->discarded)
		return kind == RQ_RENAME ? -ENOENT : 0;
	if (failed_now(d))
		return d->err;
	if (d->efbig) {
		r = drop_fail(d, -EFBIG, "%s: larger than max_record (%zu "
			      "bytes)", strerror(EFBIG), in->o.max_record);
		drop_keep(in, d, base);
		return r;
	}
	if (pending_len(d) == 0)
		return 0;
	r = dropbuf_view(d->db, d->committed, (size_t)pending_len(d),
			 &d->view);
	if (r < 0)
		return r;
	/* A UTF-8 BOM is no JSON, but editors write one; commit skips it. */
	bom = d->view.len >= 3 && memcmp(d->view.p, "\xef\xbb\xbf", 3) == 0 ?
	      3 : 0;
	r = jtext_split_values(d->view.p + bom, d->view.len - bom, count_value,
			       NULL, &errpos);
	if (r == 0)
		return 1;
	errpos += bom;
	dropbuf_view_release(&d->view);
	if (errpos >= pending_len(d)) {
		/* More bytes may come through another descriptor: fail this
		 * close, keep the drop open; the last release keeps it. */
		r = drop_fail(d, -EINVAL, "%s: the JSON is unfinished (the "
			      "drop was closed before the record was "
			      "complete)", strerror(EINVAL));
		if (kind == RQ_RENAME)
			drop_keep(in, d, base);
		return r;
	}
	r = drop_fail(d, -EINVAL, "%s: not JSON: syntax error at byte %zu",
		      strerror(EINVAL), errpos);
	drop_keep(in, d, base);
	return r;
}

/* The last release of a drop: whatever never committed is kept. */
static void release_last(struct incoming *in, struct ent *d)
{
	if (d->discarded || d->staging)
		return;
	if (pending_len(d) == 0 && !d->efbig) {
		/* Empty, or all of it committed: nothing to show. */
		d->listed = false;
		return;
	}
	if (!failed_now(d))
		drop_fail(d, -EINVAL, "%s: closed without a commit (the writer "
			  "was interrupted or never closed it for writing)",
			  strerror(EINVAL));
	drop_keep(in, d, d->name);
	if (!d->staging)
		d->listed = false;
}

static void pump(struct incoming *in, struct ent *d, struct answers *as)
{
	char base[NAME_MAX + 1];
	struct req *rq;
	int r;

	while (!d->busy && d->waiting) {
		rq = d->waiting;
		d->waiting = rq->next;
		rq->next = NULL;
		switch (rq->kind) {
		case RQ_RELEASE:
			if (d->opens)
				d->opens--;
			if (!d->opens && d->kind == ENT_DROP)
				release_last(in, d);
			answer_req(as, rq, 0);
			continue;
		case RQ_RENAME:
			base_of(rq->newname, base);
			if (!d->discarded &&
			    (rq->newname[0] == '.' ||
			     (pending_len(d) == 0 && !d->efbig))) {
				drop_rename(in, d, rq->newname, false);
				answer_req(as, rq, 0);
				continue;
			}
			break;
		case RQ_FLUSH:
		case RQ_FSYNC:
			if (d->staging) {
				answer_req(as, rq, 0);
				continue;
			}
			snprintf(base, sizeof(base), "%s", d->name);
			break;
		}
		r = precheck(in, d, rq->kind, base);
		if (r > 0) {
			start_job(in, d, rq);
			return;
		}
		answer_req(as, rq, r);
	}
}

/* The committer's callback: record the outcome, answer, go on. */
static void job_done(struct committer_job *job)
{
	struct ent *d = job->arg;
	struct incoming *in = d->in;
	struct answers as = { 0 };
	char base[NAME_MAX + 1];
	struct req *rq;
	int r = job->result;

	pthread_mutex_lock(&in->lock);
	rq = d->cur;
	d->cur = NULL;
	dropbuf_view_release(&d->view);
	set_busy(in, d, false);
	if (r == 0) {
		d->committed = d->job_end;
		d->err = 0;
		log_debug("incoming: %s committed (%zu new records)", d->name,
			  job->count);
		if (rq->kind == RQ_RENAME) {
			unkeep_target(in, rq->newname);
			drop_rename(in, d, rq->newname, true);
		} else if (!d->staging) {
			d->listed = false;
			d->grace_until = mono_ns() +
					 (uint64_t)in->o.grace_ms * 1000000u;
		}
		drop_unkeep(in, d);
	} else {
		drop_fail(d, r, "%s: %s", strerror(-r), job->reason);
		if (rq->kind == RQ_RENAME)
			base_of(rq->newname, base);
		else
			snprintf(base, sizeof(base), "%s", d->name);
		drop_keep(in, d, base);
	}
	answer_req(&as, rq, r);
	pump(in, d, &as);
	ent_maybe_free(in, d);
	pthread_mutex_unlock(&in->lock);
	answers_send(&as);
}

/* Queue `rq` on the drop `ino` and answer what can be answered. */
static void submit(struct incoming *in, uint64_t ino, struct req *rq)
{
	struct answers as = { 0 };
	struct req **tail;
	struct ent *d;

	pthread_mutex_lock(&in->lock);
	d = find_ino(in, ino);
	if (!d || d->kind != ENT_DROP) {
		/* Kept files commit nothing; their release only counts. */
		if (d && rq->kind == RQ_RELEASE) {
			if (d->opens)
				d->opens--;
			ent_maybe_free(in, d);
		}
		answer_req(&as, rq, d || rq->kind == RQ_RELEASE ? 0 : -ENOENT);
		goto out_unlock;
	}
	for (tail = &d->waiting; *tail; tail = &(*tail)->next)
		;
	*tail = rq;
	pump(in, d, &as);
	ent_maybe_free(in, d);
out_unlock:
	pthread_mutex_unlock(&in->lock);
	answers_send(&as);
}

static struct req *req_new(enum req_kind kind, incoming_reply_fn *reply,
			   void *arg)
{
	struct req *rq = calloc(1, sizeof(*rq));

	if (!rq) {
		reply(arg, -ENOMEM);
		return NULL;
	}
	rq->kind = kind;
	rq->reply = reply;
	rq->arg = arg;
	return rq;
}

/* --- setup --------------------------------------------------------------- */

/* Rejected drops of earlier mounts, so that they stay visible. */
static int load_kept(struct incoming *in)
{
	struct keep_entry *v;
	struct stat st;
	char *path;
	int64_t rsize;
	size_t n, i;
	int r;

	r = keepdir_list(in->kd, &v, &n);
	if (r < 0)
		return r;
	for (i = 0; i < n && r == 0; i++) {
		rsize = -1;
		if (v[i].has_reason) {
			if (asprintf(&path, "%s/%s" SUFFIX_REASON,
				     keepdir_path(in->kd), v[i].name) < 0) {
				r = -ENOMEM;
				break;
			}
			if (stat(path, &st) == 0)
				rsize = (int64_t)st.st_size;
			free(path);
		}
		r = show_kept(in, v[i].name, v[i].size, rsize, &v[i].mtime);
	}
	free(v);
	return r;
}

static int cmp_ent(const void *a, const void *b)
{
	const struct ent *x = *(struct ent *const *)a;
	const struct ent *y = *(struct ent *const *)b;

	return strcmp(x->name, y->name);
}

static void free_table(struct incoming *in)
{
	size_t i;

	for (i = 0; i < in->n; i++)
		ent_free(in->ents[i]);
	free(in->ents);
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == path)
		return strdup("/");
	if (slash)
		return strndup(path, (size_t)(slash - path));
	return strdup(".");
}

int incoming_new(struct store *s, const struct incoming_opts *o,
		 struct incoming **out)
{
	struct dropbuf_opts dop;
	struct committer_opts cop;
	struct incoming *in;
	char *dir;
	int r;

	in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->store = s;
	in->o = *o;
	if (!in->o.max_record)
		in->o.max_record = WRITER_MAX_RECORD_DEFAULT;
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->idle, NULL);
	r = keepdir_open(store_path(s), SUFFIX_REJECTED, &in->kd);
	if (r < 0)
		goto out_free;
	dir = dir_of(store_path(s));
	if (!dir) {
		r = -ENOMEM;
		goto out_free;
	}
	dop = (struct dropbuf_opts){ o->spill_at, o->mem_budget };
	r = dropbuf_pool_new(dir, &dop, &in->pool);
	free(dir);
	if (r < 0)
		goto out_free;
	r = load_kept(in);
	if (r < 0)
		goto out_free;
	if (in->n)
		qsort(in->ents, in->n, sizeof(*in->ents), cmp_ent);
	cop = (struct committer_opts){
		.max_record = in->o.max_record,
		.lock_timeout_ms = o->lock_timeout_ms,
		.changed = o->changed,
		.arg = o->arg,
		.backend = o->backend,
	};
	r = committer_start(s, &cop, &in->c);
	if (r < 0)
		goto out_free;
	*out = in;
	return 0;

out_free:
	free_table(in);
	dropbuf_pool_free(in->pool);
	keepdir_close(in->kd);
	pthread_cond_destroy(&in->idle);
	pthread_mutex_destroy(&in->lock);
	free(in);
	return r;
}

void incoming_free(struct incoming *in)
{
	struct ent *d;
	size_t i;

	if (!in)
		return;
	/* Commits what is queued; their callbacks answer into a session
	 * that is going away, which is harmless. */
	committer_stop(in->c);

	pthread_mutex_lock(&in->lock);
	for (i = 0; i < in->n; i++) {
		d = in->ents[i];
		if (d->kind != ENT_DROP || d->discarded)
			continue;
		if (pending_len(d) == 0 && !d->efbig)
			continue;
		if (!failed_now(d))
			drop_fail(d, -ENOTCONN, "unmounted before the drop was "
				  "%s", d->staging ? "renamed to a plain name" :
				  "closed");
		drop_keep(in, d, d->staging ? d->name + 1 : d->name);
	}
	pthread_mutex_unlock(&in->lock);

	free_table(in);
	dropbuf_pool_free(in->pool);
	keepdir_close(in->kd);
	pthread_cond_destroy(&in->idle);
	pthread_mutex_destroy(&in->lock);
	free(in);
}

/* --- requests ------------------------------------------------------------ */

static int name_check(const char *name)
{
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	if (!name[0] || !strcmp(name, ".") || !strcmp(name, "..") ||
	    strchr(name, '/'))
		return -EINVAL;
	return 0;
}

/* Names a drop may take: not those of kept files. */
static int drop_name_check(const char *name)
{
	int r = name_check(name);

	if (r < 0)
		return r;
	if (ends_with(name, SUFFIX_REJECTED) || ends_with(name, SUFFIX_REASON))
		return -EINVAL;
	return 0;
}

/* Takes in->lock: the entry `name` resolves to now.  Returns 0 (lock
 * held), or -ENOENT / -ENAMETOOLONG (lock released). */
static int resolve_locked(struct incoming *in, const char *name,
			  struct ent **e)
{
	int r = name_check(name);

	if (r < 0)
		return r == -ENAMETOOLONG ? r : -ENOENT;
	pthread_mutex_lock(&in->lock);
	expire(in);
	*e = find_name(in, name);
	if (*e)
		return 0;
	pthread_mutex_unlock(&in->lock);
	return -ENOENT;
}

int incoming_lookup(struct incoming *in, const char *name,
		    struct incoming_attr *a)
{
	struct ent *e;
	int r = resolve_locked(in, name, &e);

	if (r < 0)
		return r;
	ent_attr(e, a);
	pthread_mutex_unlock(&in->lock);
	return 0;
}

int incoming_getattr(struct incoming *in, uint64_t ino,
		     struct incoming_attr *a)
{
	struct ent *e;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	e = find_ino(in, ino);
	if (e)
		ent_attr(e, a);
	else
		r = -ENOENT;
	pthread_mutex_unlock(&in->lock);
	return r;
}

int incoming_list(struct incoming *in, size_t start,
		  struct incoming_dirent *out, size_t max, size_t *n)
{
	size_t i, rank = 0;

	*n = 0;
	pthread_mutex_lock(&in->lock);
	expire(in);
	for (i = 0; i < in->n && *n < max; i++) {
		if (!in->ents[i]->listed)
			continue;
		if (rank++ < start)
			continue;
		snprintf(out[*n].name, sizeof(out[*n].name), "%s",
			 in->ents[i]->name);
		ent_attr(in->ents[i], &out[*n].attr);
		(*n)++;
	}
	pthread_mutex_unlock(&in->lock);
	return 0;
}

int incoming_create(struct incoming *in, const char *name, mode_t mode,
		    struct incoming_attr *a)
{
	struct ent *e;
	int r = drop_name_check(name);

	if (r < 0)
		return r;
	pthread_mutex_lock(&in->lock);
	expire(in);
	e = find_name(in, name);
	if (e && e->listed) {
		r = -EEXIST;
		goto out_unlock;
	}
	if (e)
		ent_hide(in, e);
	r = ent_add(in, ENT_DROP, name, &e);
	if (r < 0)
		goto out_unlock;
	r = dropbuf_new(in->pool, &e->db);
	if (r < 0) {
		e->listed = false;
		ent_maybe_free(in, e);
		goto out_unlock;
	}
	e->staging = name[0] == '.';
	e->mode = mode & 07777;
	e->opens = 1;
	ent_attr(e, a);
out_unlock:
	pthread_mutex_unlock(&in->lock);
	return r;
}

/* Start a drop over: nothing committed, nothing failed. */
static int drop_restart(struct ent *d)
{
	int r = dropbuf_truncate(d->db, 0);

	if (r < 0)
		return r;
	d->committed = 0;
	d->efbig = false;
	touched(d);
	return 0;
}

int incoming_open(struct incoming *in, uint64_t ino, int flags)
{
	bool writes = (flags & O_ACCMODE) != O_RDONLY;
	struct ent *e;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	e = find_ino(in, ino);
	if (!e) {
		r = -ENOENT;
		goto out_unlock;
	}
	if (e->kind != ENT_DROP) {
		if (writes || (flags & O_TRUNC))
			r = -EACCES;
		else
			e->opens++;
		goto out_unlock;
	}
	if (writes && (flags & O_TRUNC)) {
		wait_idle(in, e);
		r = drop_restart(e);
		if (r < 0)
			goto out_unlock;
	}
	if (writes && !e->listed && !e->discarded && e->grace_until) {
		/* A committed name opened for writing again: a new drop. */
		e->listed = true;
		e->grace_until = 0;
	}
	e->opens++;
out_unlock:
	pthread_mutex_unlock(&in->lock);
	return r;
}

/* With in->lock held: the drop `ino` names, once no commit or keep of it
 * is under way, for a request that changes its bytes.  -ENOENT, or -EPERM
 * for a kept file, which is read-only. */
static int drop_for_change(struct incoming *in, uint64_t ino, struct ent **out)
{
	struct ent *d = find_ino(in, ino);

	if (!d)
		return -ENOENT;
	if (d->kind != ENT_DROP)
		return -EACCES;
	wait_idle(in, d);
	*out = d;
	return 0;
}

int incoming_write(struct incoming *in, uint64_t ino, const char *data,
		   size_t n, uint64_t off)
{
	struct ent *d;
	int r;

	pthread_mutex_lock(&in->lock);
	r = drop_for_change(in, ino, &d);
	if (r < 0)
		goto out_unlock;
	if (off < d->committed) {
		r = -EINVAL;
		goto out_unlock;
	}
	r = dropbuf_write(d->db, data, n, off);
	if (r < 0)
		goto out_unlock;
	touched(d);
	if (off + n - d->committed > in->o.max_record) {
		/* Taken all the same: a rejected drop is kept whole. */
		d->efbig = true;
		r = -EFBIG;
	}
out_unlock:
	pthread_mutex_unlock(&in->lock);
	return r;
}

static int read_file(const char *path, uint64_t off, size_t size,
		     struct buf *out)
{
	size_t got;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = buf_reserve(out, size);
	if (!r)
		r = fileio_pread_upto(fd, out->data + out->len, size, off, &got);
	if (!r) {
		out->len += got;
		out->data[out->len] = '\0';
	}
	close(fd);
	return r;
}

int incoming_read(struct incoming *in, uint64_t ino, uint64_t off,
		  size_t size, struct buf *out)
{
	struct ent *e;
	char *path = NULL;
	size_t got;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	e = find_ino(in, ino);
	if (!e) {
		r = -ENOENT;
	} else if (e->kind == ENT_DROP) {
		r = buf_reserve(out, size);
		if (!r)
			r = dropbuf_read(e->db, off, size, out->data + out->len,
					 &got);
		if (!r) {
			out->len += got;
			out->data[out->len] = '\0';
		}
	} else {
		path = strdup(e->file);
		if (!path)
			r = -ENOMEM;
	}
	pthread_mutex_unlock(&in->lock);
	if (path) {
		r = read_file(path, off, size, out);
		free(path);
	}
	return r;
}

static int drop_truncate(struct incoming *in, struct ent *d, uint64_t size)
{
	int r;

	if (size == 0)
		return drop_restart(d);
	if (size < d->committed)
		return -EINVAL;
	if (size - d->committed > in->o.max_record)
		return -EFBIG;
	r = dropbuf_truncate(d->db, size);
	if (r < 0)
		return r;
	d->efbig = false;
	touched(d);
	return 0;
}

int incoming_setattr(struct incoming *in, uint64_t ino,
		     const struct incoming_setattr *sa)
{
	struct ent *e;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	e = find_ino(in, ino);
	if (!e) {
		r = -ENOENT;
		goto out_unlock;
	}
	if (e->kind != ENT_DROP) {
		/* Kept files are records of what happened: read-only. */
		if (sa->set_mode || sa->set_uid || sa->set_gid || sa->set_size)
			r = -EPERM;
		goto out_unlock;
	}
	if (sa->set_size) {
		r = drop_for_change(in, ino, &e);
		if (!r)
			r = drop_truncate(in, e, sa->size);
		if (r < 0)
			goto out_unlock;
	}
	/* Modes and owners are shown, never committed: cp -p, install and
	 * rsync set them and must not fail for it. */
	if (sa->set_mode)
		e->mode = sa->mode & 07777;
	if (sa->set_uid)
		e->uid = sa->uid;
	if (sa->set_gid)
		e->gid = sa->gid;
	if (sa->set_mtime)
		e->mtime = sa->mtime;
out_unlock:
	pthread_mutex_unlock(&in->lock);
	return r;
}

void incoming_flush(struct incoming *in, uint64_t ino, incoming_reply_fn *reply,
		    void *arg)
{
	struct req *rq = req_new(RQ_FLUSH, reply, arg);

	if (rq)
		submit(in, ino, rq);
}

void incoming_fsync(struct incoming *in, uint64_t ino, incoming_reply_fn *reply,
		    void *arg)
{
	struct req *rq = req_new(RQ_FSYNC, reply, arg);

	if (rq)
		submit(in, ino, rq);
}

void incoming_release(struct incoming *in, uint64_t ino,
		      incoming_reply_fn *reply, void *arg)
{
	struct req *rq = req_new(RQ_RELEASE, reply, arg);

	if (rq)
		submit(in, ino, rq);
}

void incoming_rename(struct incoming *in, const char *name,
		     const char *newname, unsigned flags,
		     incoming_reply_fn *reply, void *arg)
{
	struct ent *src, *dst;
	struct req *rq;
	uint64_t ino;
	int r;

	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		reply(arg, -EINVAL);
		return;
	}
	r = name_check(newname);
	if (r == 0 && name_check(name) < 0)
		r = -ENOENT;
	if (r == 0 && ends_with(newname, SUFFIX_REASON))
		r = -EINVAL;
	if (r < 0) {
		reply(arg, r);
		return;
	}
	pthread_mutex_lock(&in->lock);
	expire(in);
	src = find_name(in, name);
	dst = find_name(in, newname);
	if (!src)
		r = -ENOENT;
	else if (src->kind != ENT_DROP)
		r = -EXDEV;
	else if (dst && (flags & RENAME_NOREPLACE))
		r = -EEXIST;
	else if (ends_with(newname, SUFFIX_REJECTED) &&
		 (!dst || dst->kind != ENT_KEPT))
		r = -EINVAL;
	else if (dst && dst->kind != ENT_DROP && dst->kind != ENT_KEPT)
		r = -EINVAL;
	if (r == 0 && src == dst) {
		pthread_mutex_unlock(&in->lock);
		reply(arg, 0);
		return;
	}
	if (r == 0 && !src->listed) {
		/* Committed already (cp or tempfile closed it first): the
		 * name's record is in the store; there is nothing to move. */
		if (dst && dst->kind == ENT_KEPT)
			unkeep_target(in, newname);
		pthread_mutex_unlock(&in->lock);
		reply(arg, 0);
		return;
	}
	ino = src ? src->ino : 0;
	pthread_mutex_unlock(&in->lock);
	if (r < 0) {
		reply(arg, r);
		return;
	}
	rq = req_new(RQ_RENAME, reply, arg);
	if (!rq)
		return;
	snprintf(rq->newname, sizeof(rq->newname), "%s", newname);
	submit(in, ino, rq);
}

void incoming_interrupt(struct incoming *in, void *arg)
{
	struct answers as = { 0 };
	struct req **pp, *rq;
	struct ent *d;
	size_t i;

	pthread_mutex_lock(&in->lock);
	for (i = 0; i < in->n; i++) {
		d = in->ents[i];
		for (pp = &d->waiting; *pp; pp = &(*pp)->next) {
			if ((*pp)->arg != arg)
				continue;
			rq = *pp;
			*pp = rq->next;
			answer_req(&as, rq, -EINTR);
			goto out_unlock;
		}
		if (d->cur && d->cur->arg == arg &&
		    committer_cancel(in->c, &d->job)) {
			rq = d->cur;
			d->cur = NULL;
			dropbuf_view_release(&d->view);
			set_busy(in, d, false);
			drop_fail(d, -EINTR, "%s: the writer was interrupted "
				  "before the commit started; nothing was "
				  "committed", strerror(EINTR));
			log_info("incoming: %s: %s", d->name, d->reason);
			answer_req(&as, rq, -EINTR);
			pump(in, d, &as);
			goto out_unlock;
		}
	}
out_unlock:
	pthread_mutex_unlock(&in->lock);
	answers_send(&as);
}

int incoming_unlink(struct incoming *in, const char *name)
{
	char k[NAME_MAX + 1];
	struct ent *e;
	int r = resolve_locked(in, name, &e);

	if (r < 0)
		return r;
	if (e->kind == ENT_DROP) {
		/* A committed name: its record stays in the store. */
		if (e->listed)
			e->discarded = true;
		ent_hide(in, e);
		goto out_unlock;
	}
	/* The reason alone may go; the kept bytes take their reason along,
	 * whose name then lingers like a committed one, so that `rm
	 * x.rejected x.reason` succeeds whichever comes first. */
	snprintf(k, sizeof(k), "%s", strrchr(e->file, '/') + 1);
	if (e->kind == ENT_REASON) {
		k[strlen(k) - strlen(SUFFIX_REASON)] = '\0';
		r = keepdir_unlink_reason(in->kd, k);
	} else {
		r = keepdir_unlink_name(in->kd, k);
	}
	if (r == -ENOENT)
		r = 0;
	if (r < 0)
		goto out_unlock;
	if (e->kind == ENT_KEPT) {
		snprintf(k + strlen(k), sizeof(k) - strlen(k), SUFFIX_REASON);
		e = find_name(in, k);
		if (e && e->listed) {
			e->listed = false;
			e->grace_until = mono_ns() +
					 (uint64_t)in->o.grace_ms * 1000000u;
		}
		snprintf(k, sizeof(k), "%s", name);
		e = find_name(in, k);
	}
	ent_hide(in, e);
out_unlock:
	pthread_mutex_unlock(&in->lock);
	return r;
}
