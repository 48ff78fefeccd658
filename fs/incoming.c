/* incoming.c - the drop box behind incoming/.
 *
 * Why the design looks like this:
 *  - The kernel sends FLUSH on every close() of every descriptor, RELEASE
 *    only after the last one, and RELEASE errors never reach the writer.  So
 *    the error a writer sees must come out of flush: flush commits and waits.
 *    Because one drop may be closed several times (a shell's children,
 *    dup'd descriptors), a flush of JSON that is merely unfinished (the
 *    syntax error is at the very end, more bytes may come) is a no-op, and a
 *    flush of bytes already committed is a no-op too.
 *  - The bytes committed are remembered as a prefix (`committed`): a later
 *    write past it (a second child writing through the same descriptor)
 *    starts a new drop in the same file that commits at the next flush;
 *    changing committed bytes is refused with -EINVAL (truncate to 0 starts
 *    over).
 *  - A drop whose commit failed is kept beside the store right away, before
 *    flush returns the error: RELEASE is asynchronous, so a writer that just
 *    saw close() fail must already find <name>.rejected and <name>.reason.
 *    If the same drop is changed and then commits, the kept copy is removed;
 *    if it fails again, the kept copy is replaced.  A drop closed for the
 *    last time with bytes that never committed (unfinished JSON) is kept at
 *    release.
 *  - One committer thread owns the writer; flushes queue a job and sleep.
 *    Whatever is queued when the committer wakes goes into one
 *    writer_commit: many writers share one rewrite and one fsync.
 *  - While a commit or a keep of a drop is in flight (`busy`), writes and
 *    other commits of that drop wait, so the bytes committed are the bytes
 *    in the buffer.
 *
 * The table is a small array in creation order (incoming/ holds what is
 * being written right now plus rejected drops); lookups are linear.
 */
#include "incoming.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "jtext.h"
#include "log.h"
#include "writer.h"

#define REASON_LEN (COMMIT_WHY_LEN + 64)
#define TMP_PREFIX ".iterfs-tmp."
#define SUFFIX_REJECTED ".rejected"
#define SUFFIX_REASON ".reason"
/* A kept name is at most BASE_MAX bytes of the drop's name plus ".<n>", so
 * that "<kept>.rejected" still fits in NAME_MAX. */
#define BASE_MAX (NAME_MAX - 24)
#define KEPT_MAX (BASE_MAX + 11)
#define KEPT_TRIES 100000

enum ent_kind {
	ENT_DROP,
	ENT_REJECTED, /* "<k>.rejected": the file <rejdir>/<k> */
	ENT_REASON,   /* "<k>.reason": the file <rejdir>/<k>.reason */
};

enum commit_mode { MODE_FLUSH, MODE_FSYNC, MODE_CLOSE };

/* Every field is guarded by in->lock. */
struct ent {
	uint64_t ino;
	enum ent_kind kind;
	char name[NAME_MAX + 1];  /* as shown in incoming/ */
	bool listed;              /* reachable by name (else only by ino) */
	unsigned opens;
	bool busy;                /* drop: a commit or keep is in flight */
	struct timespec mtime;

	/* ENT_REJECTED, ENT_REASON */
	char *file;               /* absolute path beside the store */
	uint64_t size;

	/* ENT_DROP */
	struct buf data;
	size_t committed;         /* data[0, committed) is in the store */
	uint64_t gen;             /* bumped by every change of data */
	bool discarded;           /* rm'd: never committed nor kept */
	bool efbig;               /* a write went past max_record */
	int err;                  /* last failure, valid while err_gen == gen */
	uint64_t err_gen;
	char reason[REASON_LEN];  /* the one-line reason of err */
	char kept[KEPT_MAX + 1];  /* name in the rejected dir, "" when none */
	uint64_t kept_gen;        /* gen whose bytes the kept copy holds */
};

/* A commit request; it lives on the stack of the thread that waits for it.
 * The waiter fills data and len before queuing it; the committer fills the
 * results without the lock (nobody reads them yet), then sets `done` under
 * in->lock, after which they belong to the waiter again. */
struct job {
	char *data;
	size_t len;
	int result;
	char reason[COMMIT_WHY_LEN];
	size_t count;
	bool done;
	struct job *next;
};

struct incoming {
	struct store *store;
	struct incoming_opts o;
	char *rejdir;             /* "<store>.rejected" */
	char *parent;             /* the store's directory */

	pthread_mutex_t lock;
	pthread_cond_t work;      /* committer: a job was queued, or stop */
	pthread_cond_t done;      /* a job finished or a drop stopped being busy */
	struct ent **ents;        /* guarded by in->lock */
	size_t n, cap;            /* guarded by in->lock */
	uint64_t counter;         /* guarded by in->lock: inode numbers */
	struct job *queue;        /* guarded by in->lock */
	struct job **tail;        /* guarded by in->lock */
	size_t queued;            /* guarded by in->lock: jobs in queue */
	bool stop;                /* guarded by in->lock */
	pthread_t committer;

	/* Serialises writing and removing files in the rejected directory, so
	 * that choosing a free name and taking it are one step.  Never taken
	 * with in->lock held. */
	pthread_mutex_t keep_lock;
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static bool is_blank(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
			return false;
	return true;
}

/* The bytes of a drop past what is committed. */
static const char *pending(const struct ent *d, size_t *len)
{
	*len = d->data.len - d->committed;
	return *len ? d->data.data + d->committed : "";
}

static void now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

bool incoming_owns(uint64_t ino)
{
	return ino >= INCOMING_INO_BASE;
}

/* --- the table (in->lock held) ------------------------------------------ */

static struct ent *find_ino(struct incoming *in, uint64_t ino)
{
	size_t i;

	for (i = 0; i < in->n; i++)
		if (in->ents[i]->ino == ino)
			return in->ents[i];
	return NULL;
}

static struct ent *find_name(struct incoming *in, const char *name)
{
	size_t i;

	for (i = 0; i < in->n; i++)
		if (in->ents[i]->listed && strcmp(in->ents[i]->name, name) == 0)
			return in->ents[i];
	return NULL;
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
	e->ino = INCOMING_INO_BASE + ++in->counter;
	e->kind = kind;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->listed = true;
	now(&e->mtime);
	in->ents[in->n++] = e;
	*out = e;
	return 0;
}

static void ent_free(struct ent *e)
{
	buf_free(&e->data);
	free(e->file);
	free(e);
}

/* Remove `e` from the table once nothing can reach it any more. */
static void ent_maybe_free(struct incoming *in, struct ent *e)
{
	size_t i;

	if (e->listed || e->opens || e->busy)
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

static void ent_unlist(struct incoming *in, const char *name)
{
	struct ent *e = find_name(in, name);

	if (e) {
		e->listed = false;
		ent_maybe_free(in, e);
	}
}

static void ent_attr(const struct ent *e, struct incoming_attr *a)
{
	a->ino = e->ino;
	if (e->kind == ENT_DROP) {
		a->mode = S_IFREG | 0644;
		a->size = e->data.len;
	} else {
		a->mode = S_IFREG | 0444;
		a->size = e->size;
	}
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

	if (asprintf(&path, "%s/%s", in->rejdir, file) < 0)
		return -ENOMEM;
	ent_unlist(in, name);
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

/* --- the rejected directory (no in->lock) -------------------------------- */

static int fsync_dir(const char *dir)
{
	int r = fileio_fsync_dir(dir);

	if (r < 0)
		log_err("incoming: fsync directory %s: %s", dir, strerror(-r));
	return r;
}

/* Cleanup after a failed step: the failure is already reported, a temp
 * left behind is only logged. */
static void remove_tmp(int dfd, const char *dir, const char *tmp)
{
	if (unlinkat(dfd, tmp, 0) < 0)
		log_warn("incoming: unlink %s/%s: %s", dir, tmp,
			 strerror(errno));
}

/* Write `n` bytes durably into a new temporary file `tmp` in dfd. */
static int write_tmp(int dfd, const char *dir, const char *tmp, const char *p,
		     size_t n)
{
	const char *step = "write";
	int fd, r = 0;

	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		log_err("incoming: create %s/%s: %s", dir, tmp, strerror(-r));
		return r;
	}
	r = fileio_pwrite_full(fd, p, n, 0);
	if (r < 0)
		goto out_close;
	step = "fsync";
	if (fsync(fd) < 0)
		r = -errno;
out_close:
	if (close(fd) < 0 && !r) {
		step = "close";
		r = -errno;
	}
	if (r < 0) {
		log_err("incoming: %s %s/%s: %s", step, dir, tmp, strerror(-r));
		remove_tmp(dfd, dir, tmp);
	}
	return r;
}

static void tmp_name(char *out, size_t size)
{
	unsigned rnd;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (unsigned)rand();
	snprintf(out, size, TMP_PREFIX "%ld.%08x", (long)getpid(), rnd);
}

static bool exists_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	       errno != ENOENT;
}

/* rename tmp -> name unless name exists.  Returns 0, -EEXIST or -errno. */
static int rename_noreplace(int dfd, const char *tmp, const char *name)
{
	if (renameat2(dfd, tmp, dfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* The filesystem cannot do it atomically; keep_lock still makes it
	 * safe against this process. */
	if (exists_at(dfd, name))
		return -EEXIST;
	return renameat(dfd, tmp, dfd, name) == 0 ? 0 : -errno;
}

/* The base of a kept name: the drop's name cut to BASE_MAX bytes, not
 * inside a UTF-8 sequence. */
static void kept_base(const char *name, char *out, size_t size)
{
	size_t n = strlen(name);

	if (n > BASE_MAX) {
		n = BASE_MAX;
		while (n > 0 && ((unsigned char)name[n] & 0xc0) == 0x80)
			n--;
	}
	snprintf(out, size, "%.*s", (int)n, name);
}

/* Write the bytes and the reason line durably into the rejected directory.
 * With reuse non-empty the kept files of that name are replaced; otherwise
 * a free name is chosen from `base`: base, base.1, base.2, ...  The chosen
 * name goes to kept. */
static int keep_files(struct incoming *in, const char *base, const char *reuse,
		      const char *data, size_t len, const char *reason,
		      char kept[KEPT_MAX + 1])
{
	char tmp[64], cand[KEPT_MAX + 1], rname[NAME_MAX + 1], *line = NULL;
	bool created = false;
	unsigned i;
	int dfd, r, len_line;

	len_line = asprintf(&line, "%s\n", reason);
	if (len_line < 0)
		return -ENOMEM;
	pthread_mutex_lock(&in->keep_lock);
	if (mkdir(in->rejdir, 0755) == 0) {
		created = true;
	} else if (errno != EEXIST) {
		r = -errno;
		log_err("incoming: mkdir %s: %s", in->rejdir, strerror(-r));
		goto out_unlock;
	}
	if (created) {
		r = fsync_dir(in->parent);
		if (r < 0)
			goto out_unlock;
	}
	dfd = open(in->rejdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		log_err("incoming: open %s: %s", in->rejdir, strerror(-r));
		goto out_unlock;
	}
	tmp_name(tmp, sizeof(tmp));
	r = write_tmp(dfd, in->rejdir, tmp, data, len);
	if (r < 0)
		goto out_close;
	if (reuse[0]) {
		snprintf(cand, sizeof(cand), "%s", reuse);
		r = renameat(dfd, tmp, dfd, cand) == 0 ? 0 : -errno;
	} else {
		r = -EEXIST;
		for (i = 0; i < KEPT_TRIES && r == -EEXIST; i++) {
			if (i == 0)
				snprintf(cand, sizeof(cand), "%s", base);
			else
				snprintf(cand, sizeof(cand), "%s.%u", base, i);
			snprintf(rname, sizeof(rname), "%s" SUFFIX_REASON, cand);
			if (ends_with(cand, SUFFIX_REASON) ||
			    ends_with(cand, SUFFIX_REJECTED) ||
			    strncmp(cand, TMP_PREFIX, strlen(TMP_PREFIX)) == 0 ||
			    exists_at(dfd, rname))
				continue;
			r = rename_noreplace(dfd, tmp, cand);
		}
	}
	if (r < 0) {
		log_err("incoming: rename %s/%s: %s", in->rejdir, tmp,
			strerror(-r));
		remove_tmp(dfd, in->rejdir, tmp);
		goto out_close;
	}
	snprintf(rname, sizeof(rname), "%s" SUFFIX_REASON, cand);
	tmp_name(tmp, sizeof(tmp));
	r = write_tmp(dfd, in->rejdir, tmp, line, (size_t)len_line);
	if (r < 0)
		goto out_close;
	if (renameat(dfd, tmp, dfd, rname) < 0) {
		r = -errno;
		log_err("incoming: rename %s/%s: %s", in->rejdir, tmp,
			strerror(-r));
		remove_tmp(dfd, in->rejdir, tmp);
		goto out_close;
	}
	if (fsync(dfd) < 0) {
		r = -errno;
		log_err("incoming: fsync directory %s: %s", in->rejdir,
			strerror(-r));
		goto out_close;
	}
	snprintf(kept, KEPT_MAX + 1, "%s", cand);
out_close:
	close(dfd);
out_unlock:
	pthread_mutex_unlock(&in->keep_lock);
	free(line);
	return r;
}

static void unkeep_files(struct incoming *in, const char *kept)
{
	char rname[NAME_MAX + 1];
	int dfd;

	snprintf(rname, sizeof(rname), "%s" SUFFIX_REASON, kept);
	pthread_mutex_lock(&in->keep_lock);
	dfd = open(in->rejdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		log_warn("incoming: open %s: %s", in->rejdir, strerror(errno));
		goto out_unlock;
	}
	if (unlinkat(dfd, kept, 0) < 0 && errno != ENOENT)
		log_warn("incoming: unlink %s/%s: %s", in->rejdir, kept,
			 strerror(errno));
	if (unlinkat(dfd, rname, 0) < 0 && errno != ENOENT)
		log_warn("incoming: unlink %s/%s: %s", in->rejdir, rname,
			 strerror(errno));
	close(dfd);
out_unlock:
	pthread_mutex_unlock(&in->keep_lock);
}

/* --- drops (in->lock held; these may drop and retake it) ----------------- */

static void wait_idle(struct incoming *in, struct ent *d)
{
	while (d->busy)
		pthread_cond_wait(&in->done, &in->lock);
}

static void set_busy(struct incoming *in, struct ent *d, bool busy)
{
	d->busy = busy;
	if (!busy)
		pthread_cond_broadcast(&in->done);
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

static void drop_reset(struct ent *d)
{
	buf_reset(&d->data);
	d->committed = 0;
	d->efbig = false;
	d->gen++;
	now(&d->mtime);
}

/* Keep the uncommitted bytes of a failed drop beside the store, unless the
 * kept copy already holds them. */
static void drop_keep(struct incoming *in, struct ent *d)
{
	char base[BASE_MAX + 1], reuse[KEPT_MAX + 1], kept[KEPT_MAX + 1];
	char reason[REASON_LEN], name[NAME_MAX + 1], fname[NAME_MAX + 1];
	struct timespec t;
	uint64_t gen = d->gen;
	const char *p;
	size_t len;
	char *copy;
	int r;

	if (!d->err || d->err_gen != gen || (d->kept[0] && d->kept_gen == gen))
		return;
	p = pending(d, &len);
	copy = malloc(len + 1);
	if (!copy) {
		log_err("incoming: keeping %s: %s", d->name, strerror(ENOMEM));
		return;
	}
	memcpy(copy, p, len);
	kept_base(d->name, base, sizeof(base));
	snprintf(reuse, sizeof(reuse), "%s", d->kept);
	snprintf(reason, sizeof(reason), "%s", d->reason);
	snprintf(name, sizeof(name), "%s", d->name);
	set_busy(in, d, true);
	pthread_mutex_unlock(&in->lock);

	r = keep_files(in, base, reuse, copy, len, reason, kept);
	if (r == 0)
		log_warn("incoming: drop %s rejected (%s), kept as %s/%s", name,
			 reason, in->rejdir, kept);
	else
		log_err("incoming: drop %s rejected (%s) and could not be kept "
			"in %s: %s", name, reason, in->rejdir, strerror(-r));
	free(copy);

	pthread_mutex_lock(&in->lock);
	if (r == 0) {
		/* The drop now lives on as <kept>.rejected: a writer re-sending
		 * under the same name gets a new drop, not this failed one. */
		d->listed = false;
		snprintf(d->kept, sizeof(d->kept), "%s", kept);
		d->kept_gen = gen;
		now(&t);
		snprintf(name, sizeof(name), "%s" SUFFIX_REJECTED, kept);
		r = ent_add_file(in, ENT_REJECTED, name, kept, len, &t);
		snprintf(name, sizeof(name), "%s" SUFFIX_REASON, kept);
		snprintf(fname, sizeof(fname), "%s" SUFFIX_REASON, kept);
		if (!r)
			r = ent_add_file(in, ENT_REASON, name, fname,
					 strlen(reason) + 1, &t);
		if (r < 0)
			log_err("incoming: listing %s: %s", kept, strerror(-r));
	}
	set_busy(in, d, false);
}

/* The drop committed after all: its kept copy is stale. */
static void drop_unkeep(struct incoming *in, struct ent *d)
{
	char kept[KEPT_MAX + 1], name[NAME_MAX + 1];

	snprintf(kept, sizeof(kept), "%s", d->kept);
	d->kept[0] = '\0';
	snprintf(name, sizeof(name), "%s" SUFFIX_REJECTED, kept);
	ent_unlist(in, name);
	snprintf(name, sizeof(name), "%s" SUFFIX_REASON, kept);
	ent_unlist(in, name);
	set_busy(in, d, true);
	pthread_mutex_unlock(&in->lock);
	unkeep_files(in, kept);
	pthread_mutex_lock(&in->lock);
	set_busy(in, d, false);
}

static int count_value(struct jtext_span v, void *arg)
{
	(void)v;
	(void)arg;
	return 0;
}

/* Commit the bytes past `committed`, if there are any and they are
 * complete; see the top of the file for the rules of each mode.  On failure
 * d->err / d->reason are set (the caller keeps the drop). */
static int drop_commit(struct incoming *in, struct ent *d, enum commit_mode m)
{
	struct job job;
	size_t start, len, errpos = 0;
	const char *p;
	int r;

	wait_idle(in, d);
	if (d->discarded)
		return 0;
	if (d->efbig)
		return drop_fail(d, -EFBIG, "%s: larger than max_record (%zu "
				 "bytes)", strerror(EFBIG), in->o.max_record);
	if (d->err && d->err_gen == d->gen)
		return d->err;
	start = d->committed;
	p = pending(d, &len);
	if (is_blank(p, len))
		return 0;
	r = jtext_split_values(p, len, count_value, NULL, &errpos);
	if (r < 0 && errpos >= len) {
		if (m == MODE_FLUSH)
			return 0;
		if (m == MODE_FSYNC)
			return -EINVAL;
		return drop_fail(d, -EINVAL,
				 "closed before the record was complete");
	}
	if (r < 0)
		return drop_fail(d, -EINVAL, "%s: not JSON: syntax error at "
				 "byte %zu", strerror(EINVAL), errpos);

	memset(&job, 0, sizeof(job));
	job.data = malloc(len + 1);
	if (!job.data)
		return -ENOMEM;
	memcpy(job.data, p, len);
	job.data[len] = '\0';
	job.len = len;
	set_busy(in, d, true);
	*in->tail = &job;
	in->tail = &job.next;
	in->queued++;
	pthread_cond_signal(&in->work);
	while (!job.done)
		pthread_cond_wait(&in->done, &in->lock);
	set_busy(in, d, false);
	free(job.data);
	if (job.result < 0)
		return drop_fail(d, job.result, "%s: %s", strerror(-job.result),
				 job.reason);
	d->committed = start + len;
	d->err = 0;
	d->listed = false;
	log_debug("incoming: %s committed (%zu new records)", d->name,
		  job.count);
	if (d->kept[0])
		drop_unkeep(in, d);
	return 0;
}

/* --- the committer thread ----------------------------------------------- */

static void run_batch(struct incoming *in, struct job *batch)
{
	struct writer_req *reqs;
	struct job *j;
	size_t n = 0, i, added = 0;
	int r;

	for (j = batch; j; j = j->next)
		n++;
	reqs = calloc(n, sizeof(*reqs));
	if (!reqs) {
		for (j = batch; j; j = j->next) {
			j->result = -ENOMEM;
			snprintf(j->reason, sizeof(j->reason), "out of memory");
		}
		return;
	}
	for (i = 0, j = batch; j; j = j->next, i++) {
		reqs[i].data = j->data;
		reqs[i].len = j->len;
	}
	r = writer_commit(in->store, reqs, n, in->o.max_record);
	if (r < 0)
		log_err("incoming: group commit of %zu drops: %s", n,
			strerror(-r));
	for (i = 0, j = batch; j; j = j->next, i++) {
		j->result = reqs[i].result;
		j->count = reqs[i].result ? 0 : reqs[i].count;
		memcpy(j->reason, reqs[i].reason, sizeof(j->reason));
		j->reason[sizeof(j->reason) - 1] = '\0';
		added += j->count;
	}
	free(reqs);
	/* Before the writers are answered: by the time close() returns, the
	 * mount has been told about the new records. */
	if (added && in->o.changed)
		in->o.changed(in->o.arg);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Called with in->lock held after a batch of `last` drops that took
 * `took_ns`.  The writers just answered come back with their next drop a
 * moment later; starting the next rewrite at once would leave them for the
 * one after, so batches alternate in size and group commit wins only half
 * of what it can.  Wait for them a little, bounded by a quarter of a commit
 * (at most 5 ms), and never after a lone writer's commit: its latency is
 * what a single loop sees. */
static void linger(struct incoming *in, size_t last, uint64_t took_ns)
{
	uint64_t wait_ns = took_ns / 4, deadline;
	struct timespec ts;

	if (last < 2 || wait_ns == 0)
		return;
	if (wait_ns > 5000000u)
		wait_ns = 5000000u;
	clock_gettime(CLOCK_REALTIME, &ts);
	deadline = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
		   wait_ns;
	ts.tv_sec = (time_t)(deadline / 1000000000u);
	ts.tv_nsec = (long)(deadline % 1000000000u);
	while (in->queued < last && !in->stop)
		if (pthread_cond_timedwait(&in->work, &in->lock, &ts) != 0)
			break;
}

static void *committer_main(void *arg)
{
	struct incoming *in = arg;
	struct job *batch, *j;
	size_t last = 0;
	uint64_t t0, took = 0;

	pthread_mutex_lock(&in->lock);
	for (;;) {
		while (!in->queue && !in->stop)
			pthread_cond_wait(&in->work, &in->lock);
		if (!in->queue)
			break;
		linger(in, last, took);
		batch = in->queue;
		last = in->queued;
		in->queue = NULL;
		in->tail = &in->queue;
		in->queued = 0;
		pthread_mutex_unlock(&in->lock);
		t0 = mono_ns();
		run_batch(in, batch);
		took = mono_ns() - t0;
		pthread_mutex_lock(&in->lock);
		for (j = batch; j; j = j->next)
			j->done = true;
		pthread_cond_broadcast(&in->done);
	}
	pthread_mutex_unlock(&in->lock);
	return NULL;
}

/* --- setup --------------------------------------------------------------- */

static int load_one(struct incoming *in, int dfd, const char *fname)
{
	char name[NAME_MAX + 1];
	enum ent_kind kind;
	struct stat st;

	if (strncmp(fname, TMP_PREFIX, strlen(TMP_PREFIX)) == 0 ||
	    strcmp(fname, ".") == 0 || strcmp(fname, "..") == 0)
		return 0;
	if (fstatat(dfd, fname, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		log_warn("incoming: stat %s/%s: %s", in->rejdir, fname,
			 strerror(errno));
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return 0;
	if (ends_with(fname, SUFFIX_REASON)) {
		kind = ENT_REASON;
		snprintf(name, sizeof(name), "%s", fname);
	} else {
		kind = ENT_REJECTED;
		if (strlen(fname) + strlen(SUFFIX_REJECTED) > NAME_MAX)
			return 0;
		snprintf(name, sizeof(name), "%s" SUFFIX_REJECTED, fname);
	}
	return ent_add_file(in, kind, name, fname, (uint64_t)st.st_size,
			    &st.st_mtim);
}

static int cmp_ent(const void *a, const void *b)
{
	const struct ent *x = *(struct ent *const *)a;
	const struct ent *y = *(struct ent *const *)b;

	return strcmp(x->name, y->name);
}

/* Rejected drops of earlier mounts, so that they stay visible. */
static int load_rejected(struct incoming *in)
{
	struct dirent *de;
	DIR *dir;
	int r = 0;

	dir = opendir(in->rejdir);
	if (!dir) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		log_err("incoming: opendir %s: %s", in->rejdir, strerror(-r));
		return r;
	}
	for (;;) {
		errno = 0;
		de = readdir(dir);
		if (!de)
			break;
		r = load_one(in, dirfd(dir), de->d_name);
		if (r < 0)
			break;
	}
	if (!de && errno) {
		r = -errno;
		log_err("incoming: readdir %s: %s", in->rejdir, strerror(-r));
	}
	closedir(dir);
	if (!r && in->n)
		qsort(in->ents, in->n, sizeof(*in->ents), cmp_ent);
	return r;
}

static void free_table(struct incoming *in)
{
	size_t i;

	for (i = 0; i < in->n; i++)
		ent_free(in->ents[i]);
	free(in->ents);
}

int incoming_new(struct store *s, const struct incoming_opts *o,
		 struct incoming **out)
{
	struct incoming *in;
	const char *path = store_path(s), *slash;
	int r;

	in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	in->store = s;
	in->o = *o;
	if (!in->o.max_record)
		in->o.max_record = WRITER_MAX_RECORD_DEFAULT;
	in->tail = &in->queue;
	slash = strrchr(path, '/');
	if (asprintf(&in->rejdir, "%s" SUFFIX_REJECTED, path) < 0) {
		in->rejdir = NULL;
		r = -ENOMEM;
		goto out_free;
	}
	if (slash == path)
		in->parent = strdup("/");
	else if (slash)
		in->parent = strndup(path, (size_t)(slash - path));
	else
		in->parent = strdup(".");
	if (!in->parent) {
		r = -ENOMEM;
		goto out_free;
	}
	r = load_rejected(in);
	if (r < 0)
		goto out_free;
	pthread_mutex_init(&in->lock, NULL);
	pthread_mutex_init(&in->keep_lock, NULL);
	pthread_cond_init(&in->work, NULL);
	pthread_cond_init(&in->done, NULL);
	r = -pthread_create(&in->committer, NULL, committer_main, in);
	if (r < 0) {
		log_err("incoming: starting the committer: %s", strerror(-r));
		goto out_sync;
	}
	*out = in;
	return 0;

out_sync:
	pthread_cond_destroy(&in->done);
	pthread_cond_destroy(&in->work);
	pthread_mutex_destroy(&in->keep_lock);
	pthread_mutex_destroy(&in->lock);
out_free:
	free_table(in);
	free(in->parent);
	free(in->rejdir);
	free(in);
	return r;
}

void incoming_free(struct incoming *in)
{
	struct ent *d;
	const char *p;
	size_t i, len;

	if (!in)
		return;
	pthread_mutex_lock(&in->lock);
	in->stop = true;
	pthread_cond_signal(&in->work);
	pthread_mutex_unlock(&in->lock);
	pthread_join(in->committer, NULL);

	/* No request is in flight any more; the lock is taken because
	 * drop_keep expects it. */
	pthread_mutex_lock(&in->lock);
	for (i = 0; i < in->n; i++) {
		d = in->ents[i];
		if (d->kind != ENT_DROP || d->discarded)
			continue;
		p = pending(d, &len);
		if (is_blank(p, len) && !d->efbig)
			continue;
		if (!d->err || d->err_gen != d->gen)
			drop_fail(d, -ENOTCONN,
				  "unmounted before the drop was closed");
		drop_keep(in, d);
	}
	pthread_mutex_unlock(&in->lock);

	free_table(in);
	pthread_cond_destroy(&in->done);
	pthread_cond_destroy(&in->work);
	pthread_mutex_destroy(&in->keep_lock);
	pthread_mutex_destroy(&in->lock);
	free(in->parent);
	free(in->rejdir);
	free(in);
}

/* --- requests ------------------------------------------------------------ */

/* Attributes of the entry named `name`, or (name NULL) numbered `ino`. */
static int attr_of(struct incoming *in, const char *name, uint64_t ino,
		   struct incoming_attr *a)
{
	struct ent *e;
	int r = -ENOENT;

	pthread_mutex_lock(&in->lock);
	e = name ? find_name(in, name) : find_ino(in, ino);
	if (e) {
		ent_attr(e, a);
		r = 0;
	}
	pthread_mutex_unlock(&in->lock);
	return r;
}

int incoming_lookup(struct incoming *in, const char *name,
		    struct incoming_attr *a)
{
	return attr_of(in, name, 0, a);
}

int incoming_getattr(struct incoming *in, uint64_t ino,
		     struct incoming_attr *a)
{
	return attr_of(in, NULL, ino, a);
}

int incoming_list(struct incoming *in, size_t start,
		  struct incoming_dirent *out, size_t max, size_t *n)
{
	size_t i, rank = 0;

	*n = 0;
	pthread_mutex_lock(&in->lock);
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

static bool name_ok(const char *name)
{
	return name[0] && strlen(name) <= NAME_MAX && strcmp(name, ".") &&
	       strcmp(name, "..") && !strchr(name, '/') &&
	       !ends_with(name, SUFFIX_REJECTED) &&
	       !ends_with(name, SUFFIX_REASON);
}

int incoming_create(struct incoming *in, const char *name,
		    struct incoming_attr *a)
{
	struct ent *e;
	int r;

	if (!name_ok(name))
		return -EINVAL;
	pthread_mutex_lock(&in->lock);
	if (find_name(in, name)) {
		r = -EEXIST;
		goto out_unlock;
	}
	r = ent_add(in, ENT_DROP, name, &e);
	if (r < 0)
		goto out_unlock;
	e->opens = 1;
	ent_attr(e, a);
out_unlock:
	pthread_mutex_unlock(&in->lock);
	return r;
}

int incoming_open(struct incoming *in, uint64_t ino, int flags)
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
		if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
			r = -EACCES;
		else
			e->opens++;
		goto out_unlock;
	}
	e->opens++;
	if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
		wait_idle(in, e);
		drop_reset(e);
	}
out_unlock:
	pthread_mutex_unlock(&in->lock);
	return r;
}

/* With in->lock held: the drop `ino` names, once no commit of it is under
 * way, for a request that changes its bytes.  -ENOENT, or -EACCES for a
 * kept (rejected) file, which is read-only. */
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
	size_t end;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	r = drop_for_change(in, ino, &d);
	if (r < 0)
		goto out_unlock;
	if (off < d->committed) {
		r = -EINVAL;
		goto out_unlock;
	}
	if (off > in->o.max_record || n > in->o.max_record - off) {
		d->efbig = true;
		d->gen++;
		r = -EFBIG;
		goto out_unlock;
	}
	end = (size_t)off + n;
	if (end > d->data.len) {
		r = buf_reserve(&d->data, end - d->data.len);
		if (r < 0)
			goto out_unlock;
		if (off > d->data.len)
			memset(d->data.data + d->data.len, 0,
			       (size_t)off - d->data.len);
		d->data.len = end;
		d->data.data[end] = '\0';
	}
	memcpy(d->data.data + off, data, n);
	d->gen++;
	now(&d->mtime);
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
	size_t n;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	e = find_ino(in, ino);
	if (!e) {
		r = -ENOENT;
	} else if (e->kind == ENT_DROP) {
		if (off < e->data.len) {
			n = e->data.len - (size_t)off;
			r = buf_append(out, e->data.data + off,
				       n < size ? n : size);
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

int incoming_truncate(struct incoming *in, uint64_t ino, uint64_t size)
{
	struct ent *d;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	r = drop_for_change(in, ino, &d);
	if (r < 0)
		goto out_unlock;
	if (size == 0) {
		drop_reset(d);
		goto out_unlock;
	}
	if (size > in->o.max_record) {
		r = -EFBIG;
		goto out_unlock;
	}
	if (size < d->committed) {
		r = -EINVAL;
		goto out_unlock;
	}
	if (size > d->data.len) {
		r = buf_reserve(&d->data, (size_t)size - d->data.len);
		if (r < 0)
			goto out_unlock;
		memset(d->data.data + d->data.len, 0,
		       (size_t)size - d->data.len);
	}
	d->data.len = (size_t)size;
	d->data.data[size] = '\0';
	d->efbig = false;
	d->gen++;
	now(&d->mtime);
out_unlock:
	pthread_mutex_unlock(&in->lock);
	return r;
}

static int commit_request(struct incoming *in, uint64_t ino,
			  enum commit_mode m)
{
	struct ent *d;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	d = find_ino(in, ino);
	if (!d) {
		r = -ENOENT;
		goto out_unlock;
	}
	if (d->kind != ENT_DROP)
		goto out_unlock;
	r = drop_commit(in, d, m);
	if (r < 0)
		drop_keep(in, d);
out_unlock:
	pthread_mutex_unlock(&in->lock);
	return r;
}

int incoming_flush(struct incoming *in, uint64_t ino)
{
	return commit_request(in, ino, MODE_FLUSH);
}

int incoming_fsync(struct incoming *in, uint64_t ino)
{
	return commit_request(in, ino, MODE_FSYNC);
}

int incoming_release(struct incoming *in, uint64_t ino)
{
	struct ent *e;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	e = find_ino(in, ino);
	if (!e) {
		r = -ENOENT;
		goto out_unlock;
	}
	if (e->opens)
		e->opens--;
	if (e->opens)
		goto out_unlock;
	if (e->kind == ENT_DROP) {
		/* A complete drop that no flush committed (a flush lost to an
		 * error, say) is committed now; anything else unsent is kept. */
		if (drop_commit(in, e, MODE_CLOSE) < 0)
			drop_keep(in, e);
		if (e->opens)
			goto out_unlock;
		e->listed = false;
	}
	ent_maybe_free(in, e);
out_unlock:
	pthread_mutex_unlock(&in->lock);
	return r;
}

int incoming_unlink(struct incoming *in, const char *name)
{
	struct ent *e;
	int r = 0;

	pthread_mutex_lock(&in->lock);
	e = find_name(in, name);
	if (!e) {
		r = -ENOENT;
		goto out_unlock;
	}
	if (e->kind == ENT_DROP) {
		e->discarded = true;
	} else if (unlink(e->file) < 0 && errno != ENOENT) {
		r = -errno;
		log_err("incoming: unlink %s: %s", e->file, strerror(-r));
		goto out_unlock;
	}
	e->listed = false;
	ent_maybe_free(in, e);
out_unlock:
	pthread_mutex_unlock(&in->lock);
	return r;
}
