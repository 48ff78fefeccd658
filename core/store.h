/* store.h - the index of one JSONL history file.
 *
 * Calling sequence:
 *   store_open(path, flags, &s)        scan once, build the index
 *   store_validate_start(s, fn, arg)   STORE_LAZY: the full scan, behind
 *                                      the mount (store_validate_stop)
 *   store_lookup / store_read / store_list / store_by_hash ...   any thread
 *   store_refresh(s)                   after the file changed on disk
 *   store_changes_take(s, &chg)        what changed, for cache invalidation
 *   store_close(s)
 *
 * Per record the index keeps only what finds it again: offset, length and
 * iteration number (plus the timestamp with STORE_TIMES, and the code digest
 * once by-hash is first asked for), packed (pack.h: about 8 bytes a record,
 * 14 with timestamps, where numbers follow each other).  Over all records it keeps their shape
 * (store_shape), read from every record line as it is indexed.  Record
 * bytes are read back from the file with pread.  Lines that are not a JSON
 * object, or carry no iteration number, are skipped and counted; their
 * 1-based line numbers are kept for reporting.  When two lines carry the
 * same number the later one is shown.  A UTF-8 BOM at the start and CR
 * before LF are tolerated.  A last line without LF is a record if it is a
 * complete JSON object, otherwise a torn tail (skipped).
 *
 * A missing file is an empty history (not an error): the writer creates it.
 *
 * Outside writers (ones that ignore the lock and replace the file): the
 * index never trusts a prefix it did not check (the last indexed line is
 * re-read from the new file), and a full re-index compares the new file
 * with the old one, kept open until then.  Numbers that are gone, or whose
 * line now holds another record, have their old lines kept durably in
 * "<store>.lost/<UTC time>.jsonl" (keep.h), logged, and reported in the
 * change log (`lost`).  Records whose line changed are marked `replaced`.
 * The derived views (by-hash, by-metric, failed) are built on first use and
 * then kept up to date by every refresh (derived.h).
 *
 * Locking: every function may be called from any thread.  store->lock (a
 * rwlock) guards the index and the open file descriptor; readers share it,
 * store_refresh and the writer's adoption of a new file take it exclusively.
 * No callback is ever called with it held.  store->update_mu (a mutex)
 * serialises the functions that change the index (store_refresh,
 * store_adopt, store_validate, the validation thread's install, and the
 * build of a derived view that its first use runs); they do their file I/O
 * holding only it, so readers are blocked only while results are
 * installed.  While a
 * STORE_LAZY store is pending, store_lookup and store_read may take it
 * too (a line that is no record waits for the validation).  Lock order:
 * writer's flock file first, then store->update_mu, then store->lock.
 */
#ifndef ITERFS_STORE_H
#define ITERFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "hash.h"
#include "record.h"

/* The highest iteration number a store shows, 2^42 - 2: the tree's inode
 * numbers hold an iteration number in 42 bits, so that a directory mount
 * can give each history 16 bits of its own (fs/ino.h); a line with a larger
 * number is not a record: it is skipped, counted (store_stats.beyond) and
 * reported with the other skipped lines, and a commit refuses it. */
#define STORE_ITER_MAX ((INT64_C(1) << 42) - 2)

struct store;

enum store_flags {
	/* Keep each record's timestamp, to the microsecond (8 bytes a
	 * record); store_lookup then fills mtime, otherwise mtime is 0. */
	STORE_TIMES = 1u << 0,
	/* Validate every line fully; without it a newline-terminated line that
	 * starts like {"iteration": 12, and ends with } is trusted. */
	STORE_VALIDATE = 1u << 1,
	/* Open fast: store_open builds only the quick index (scan_quick in
	 * scan.h: numbers, offsets, lengths; a line that starts like
	 * {"iteration": 12, and ends with } is taken at its word) and the
	 * store is *pending* until the full scan by the other flags has run
	 * (store_validate, store_validate_start).  While pending:
	 *   - store_lookup and store_read check the one line they answer with
	 *     (a validating walk; store_lookup reads its timestamp from it):
	 *     a line that is no record, or not the record of that number,
	 *     and a number the quick index lacks (a later duplicate
	 *     "iteration" key the fast path did not see may give a line
	 *     it), run the full validation there and then, and the answer
	 *     comes from the exact index.  So no line that is not a record is
	 *     ever shown or read, and no record is missed.
	 *   - store_list, store_highest and store_stats (`pending` set) answer
	 *     from the quick index: it may list a number whose only line turns
	 *     out to be no record, and its skipped counts may still grow.
	 *   - the derived views are built on the quick index, reading its
	 *     lines as it took them (at their word, as store_list lists
	 *     them), so that their first use never waits for the full scan.
	 *   - store_shape, store_refresh and store_adopt run the full
	 *     validation first (they need the exact index).
	 * The validation swaps in the exact index and puts what differs (the
	 * numbers that vanished, appeared, or now show another line, such as
	 * the earlier line of a number whose later line was no record) in the
	 * change log, and hands it to the built views as one batch, as a
	 * refresh does: a line that is no record leaves every view with it. */
	STORE_LAZY = 1u << 2,
	/* STORE_LAZY for a file of STORE_LAZY_MIN bytes or more; a smaller
	 * one is validated whole at open, where that costs little, so that
	 * what the caller reports right after the open (skipped lines) is
	 * already exact. */
	STORE_LAZY_LARGE = 1u << 3,
};

#define STORE_LAZY_MIN ((uint64_t)8 << 20)

struct store_rec {
	int64_t iter;
	/* Record timestamp in microseconds since the epoch; 0 when none or
	 * !STORE_TIMES. */
	int64_t mtime;
	uint64_t lineno;    /* 1-based line number in the file */
	uint64_t offset;    /* byte offset of the line */
	uint32_t len;       /* line length without LF (and without CR) */
	/* This number had another line before the shown one in the file, or
	 * a refresh saw its shown line change (sticky while the number is
	 * shown).  Then `tag` is a 64-bit hash of the shown line's bytes
	 * (hash_tag), read when looked up; 0 when not replaced.  A reader
	 * that must not mix two versions of a record keys on it. */
	bool replaced;
	uint64_t tag;
};

struct store_stats {
	uint64_t lines;       /* non-empty lines seen */
	uint64_t records;     /* lines that are records (have a number) */
	uint64_t iterations;  /* distinct iteration numbers */
	uint64_t skipped;     /* lines that are not records */
	uint64_t beyond;      /* of those, lines numbered above STORE_ITER_MAX */
	uint64_t duplicates;  /* records hidden by a later line, same number */
	uint64_t file_size;   /* bytes indexed */
	uint64_t index_bytes; /* memory the index holds */
	uint64_t generation;  /* bumps on every change of the index */
	/* STORE_LAZY: the full validation has not run yet; the counts are
	 * the quick index's (skipped and beyond may still grow). */
	bool pending;
};

/* What store_refresh and store_adopt changed, for cache invalidation
 * (store_changes_take).  `reset` means the file was not an extension of the
 * indexed one: everything may have changed.  Otherwise `iters` lists the
 * iteration numbers that appeared or were replaced by a later line.  Owned
 * by the caller: store_change_free(). */
struct store_change {
	bool reset;
	bool changed;       /* anything at all changed */
	/* Lines vanished in a replace and were kept in "<store>.lost/"
	 * (lost+found/ changed). */
	bool lost;
	int64_t *iters;
	size_t n;
};

/* Open and index `path`.  The path is copied.  A whole-store pass (the
 * open, the validation, a view's first build) allocates and frees arrays of
 * tens of MB: a long-lived caller that wants them given back fixes glibc's
 * mmap threshold itself (the daemon's main does).  Returns 0, -ENOMEM, or
 * the -errno of open/read (not -ENOENT: a missing file is an empty
 * store). */
int store_open(const char *path, unsigned flags, struct store **out);
void store_close(struct store *s);

/* --- the full validation of a STORE_LAZY store -----------------------------
 * Calling sequence (the daemon): store_open(STORE_LAZY | ...), mount,
 * then, in the daemon's own process (after any fork), store_validate_start
 * with a callback that hands the change log to the cache invalidation;
 * before that machinery stops, store_validate_stop.  Without a thread the
 * validation still runs when first needed (see STORE_LAZY). */

/* Called once the validation swapped in an index that differs from the
 * quick one (the change is in the change log: store_changes_take).  Runs in
 * the validation thread, with no store lock held. */
typedef void (*store_validated_fn)(void *arg);

/* Run the full validation now, in this thread, unless it ran already
 * (then, and on a store opened without STORE_LAZY, it returns 0 at once).
 * *changed (may be NULL): the exact index differs from the quick one.
 * Holds update_mu throughout: refreshes and commits wait for it.  Returns
 * 0, -ENOMEM, or the -errno of a read (logged; the store stays pending and
 * the next call tries again). */
int store_validate(struct store *s, bool *changed);

/* Start a thread that runs the validation and then, if the index changed,
 * fn(arg).  Unlike store_validate it scans holding no lock, on its own
 * duplicate of the store's descriptor, at SCHED_IDLE priority (only CPU
 * time nothing else wants), and takes update_mu only to install the
 * result; if a refresh or a lookup validated meanwhile, its result is
 * dropped.  Nothing to do (0, no thread) when the store is not pending.
 * At most one such thread per store.  Returns 0, -EBUSY (one was started
 * already), or pthread_create's -errno (the validation then runs when
 * first needed). */
int store_validate_start(struct store *s, store_validated_fn fn, void *arg);

/* Stop that thread (a validation under way is abandoned and runs again
 * when first needed) and wait for it: fn is not called after this returns.
 * No-op when none runs.  store_close calls it. */
void store_validate_stop(struct store *s);

/* The path given to store_open (owned by the store). */
const char *store_path(const struct store *s);

int store_stats(struct store *s, struct store_stats *st);

/* Copy up to `max` skipped line numbers (ascending) into `linenos`; *total is
 * how many there are.  Returns 0. */
int store_skipped(struct store *s, uint64_t *linenos, size_t max,
		  size_t *total);

/* Find iteration `iter`.  Returns 0, -ENOENT, or (a replaced record, whose
 * line is read for its tag) -EIO / -ENOMEM. */
int store_lookup(struct store *s, int64_t iter, struct store_rec *rec);

/* Highest iteration number (never above STORE_ITER_MAX: larger ones are
 * not records); *found false on an empty history.  Returns 0. */
int store_highest(struct store *s, int64_t *iter, bool *found);

/* Iterations in ascending order starting at rank `start` (0-based), at most
 * `max`, into `out`; *n is how many were written.  Returns 0. */
int store_list(struct store *s, size_t start, int64_t *out, size_t max,
	       size_t *n);

/* Append the line of iteration `iter` (without LF/CR) to `line`.
 * Returns 0, -ENOENT, -EIO (short read: the file changed under us), -ENOMEM. */
int store_read(struct store *s, int64_t iter, struct buf *line);

/* Was the store opened with STORE_VALIDATE?  Then every line store_read
 * hands out passed the full validation (a pending store checks the line it
 * reads), and a reader may walk it trusted (view_render_trusted). */
bool store_validates(const struct store *s);

/* Re-check the file.  Grown in place, or replaced by a file whose first
 * bytes equal everything indexed so far (checked byte for byte): only the new
 * tail is indexed.  Otherwise a full re-index (reported as `reset`).  What
 * changed goes to the change log (store_changes_take).  Returns 0 or -errno
 * (the old index is kept on error). */
int store_refresh(struct store *s);
void store_change_free(struct store_change *chg);

/* Everything store_refresh and store_adopt changed since the last call,
 * whoever called them (the writer refreshes under its lock before every
 * commit and so may absorb another process's change that a watcher would
 * otherwise never hear of).  Moves the accumulated change into `chg`
 * (caller frees with store_change_free); past 65536 iterations it says
 * `reset` instead of listing them.  Returns 0. */
int store_changes_take(struct store *s, struct store_change *chg);

/* --- shape: what every record carries ------------------------------------
 * Kept up to date as lines are indexed (a full re-index recomputes it), over
 * every record line of the file (lines hidden by a later duplicate
 * included).  Keys are compared after folding the dialect aliases of
 * record.h (iteration/iteration_num, code/strategy_code,
 * feedback/feedback_used are one field each); other keys by name. */

struct store_shape_field {
	char *key;       /* the key; for a dialect field the name the latest
			  * record with it used */
	int field;       /* enum record_field of a dialect field, else -1 */
	unsigned types;  /* RECORD_T_* bits the field has had */
};

struct store_shape {
	uint64_t records;                /* record lines read; 0: no record */
	struct store_shape_field *f;     /* fields every record carries, in */
	size_t n;                        /* the first record's order */
	/* Dialect fields: the alias key the latest record carrying the field
	 * used (static strings of the record table); NULL: no record has it. */
	const char *dialect[FIELD_COUNT];
};

/* A copy of the store's shape, owned by the caller: store_shape_free().
 * Returns 0 or -ENOMEM (then *out is empty). */
int store_shape(struct store *s, struct store_shape *out);
void store_shape_free(struct store_shape *sh);

/* --- by-hash: distinct code -> iterations --------------------------------
 * Built on first use (reads every record with code once, on every CPU),
 * kept up to date by refresh.  Memory: 44 bytes per record with code plus 4
 * per distinct code.  The build holds store->update_mu, not store->lock:
 * readers of anything else go on meanwhile; refreshes and commits wait. */

struct store_code {
	unsigned char digest[HASH_LEN];
	int64_t first_iter;  /* lowest iteration with this code */
	size_t count;        /* iterations with this code */
};

/* Digest of the code of iteration `iter`; *has_code false when it has no
 * code.  Returns 0, -ENOENT (no such iteration), -EIO, -ENOMEM. */
int store_code_of(struct store *s, int64_t iter, unsigned char d[HASH_LEN],
		  bool *has_code);

/* Distinct codes ordered by digest, from rank `start`, at most `max`; *n
 * written.  Returns 0, -EIO, -ENOMEM. */
int store_codes(struct store *s, size_t start, struct store_code *out,
		size_t max, size_t *n);

/* One code: its summary and its iterations ascending (up to `max` into
 * `iters`, which may be NULL when max is 0; the total is code->count).
 * Returns 0, -ENOENT (no record has this code), -EIO, -ENOMEM. */
int store_code_lookup(struct store *s, const unsigned char d[HASH_LEN],
		      struct store_code *code, int64_t *iters, size_t max);

/* --- by-metric: one ranking per numeric metric -----------------------------
 * Built on first use (reads every record once), kept up to date by refresh.
 * Ranked: every shown record whose success meaning is not false, by each
 * top-level member of its `metrics` object that holds a JSON number other
 * than NaN (with duplicate keys the last one counts).  A metric is a key
 * ranked in at least one record; one whose decoded name holds a NUL byte is
 * none.  Order: highest value first (as doubles: integers beyond 2^53 may
 * tie where Python would not), ties by lower iteration first.  Memory: 16
 * bytes per ranked (record, metric) plus the names. */

/* Metric names sorted bytewise, from rank `start`, at most `max`, into
 * `names`: each a malloc'd copy the caller frees (free()); *n written.
 * Returns 0, -ENOMEM (then nothing is handed out), -EIO. */
int store_metric_names(struct store *s, size_t start, char **names,
		       size_t max, size_t *n);

/* The ranking of metric `name`: iterations from rank `start` (0 is the
 * highest value), at most `max` into `iters`; *n written, *total the length
 * of the ranking.  Returns 0, -ENOENT (no such metric), -ENOMEM, -EIO. */
int store_metric_rank(struct store *s, const char *name, size_t start,
		      int64_t *iters, size_t max, size_t *n, size_t *total);

/* --- failed: iterations that failed or have an error ----------------------
 * Failed: the success meaning is false, or the record has an error text (an
 * error.txt: record.h's error meaning, a string, the empty one included).
 * Built on first use, kept up to date by refresh; 8 bytes per failed
 * record. */

/* Failed iterations ascending, from rank `start`, at most `max`; *n
 * written.  Returns 0, -ENOMEM, -EIO. */
int store_failed(struct store *s, size_t start, int64_t *iters, size_t max,
		 size_t *n);

/* Did iteration `iter` fail?  Returns 0, -ENOENT (no such iteration),
 * -ENOMEM, -EIO. */
int store_is_failed(struct store *s, int64_t iter, bool *failed);

/* --- for the writer only --------------------------------------------------
 * The writer has just renamed over the store a file whose first bytes are
 * exactly the indexed content (plus, if the indexed content did not end in
 * LF, one LF) followed by new lines.  Switch to the file now at the path and
 * index only its tail, without re-reading the prefix.  What changed goes to
 * the change log.  Returns 0 or -errno (then the next store_refresh
 * re-indexes). */
int store_adopt(struct store *s, int fd);

#endif
