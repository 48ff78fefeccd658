/* record.h - one history record (one JSONL line) read through the
 * contract's aliases, and the files the tree shows for it.
 *
 * Aliases, first key present wins:
 *   iteration  : "iteration", "iteration_num"         (integer >= 0)
 *   code       : "code", "strategy_code"              (string)
 *   metrics    : "metrics"                            (any non-null value)
 *   feedback   : "feedback", "feedback_used"          (string)
 *   error      : "error", then execution_result.error_message (string)
 *   timestamp  : "timestamp"                          (ISO 8601 string)
 *   code hash  : "code_hash"                          (hex string)
 *   success    : "success", then execution_result.success (boolean)
 * The table of these (keys in order, JSON types, what a commit accepts) is
 * in record.c and read through record_field_def(); nothing else lists them.
 * A field whose value has the wrong type (null where a string is wanted, say)
 * counts as absent.  When "iteration" is present but not an integer >= 0 the
 * record has no iteration number; "iteration_num" is not consulted then
 * (first key present wins).  The same holds for every alias chain: a
 * present "code": null hides "strategy_code", a present "error" of any type
 * hides execution_result.error_message.  Iteration numbers are JSON
 * integers without fraction or exponent ("-0" is 0, as in Python); 12.0,
 * "12", -1 and values beyond INT64_MAX are none.  With duplicate keys the
 * last one counts, as in Python.
 *
 * Functions take the line without its terminating newline (a trailing CR is
 * tolerated) and are pure and thread-safe.  They return -EINVAL when the line
 * is not a JSON object.
 */
#ifndef ITERFS_RECORD_H
#define ITERFS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "jtext.h"

enum record_field {
	FIELD_ITERATION,
	FIELD_CODE,
	FIELD_METRICS,
	FIELD_FEEDBACK,
	FIELD_ERROR,
	FIELD_TIMESTAMP,
	FIELD_CODE_HASH,
	FIELD_SUCCESS,
	FIELD_COUNT,
};

/* JSON types as bits: the types a field may have, and the types a field
 * has had in a store (store_shape). */
#define RECORD_T_STRING (1u << 0)
#define RECORD_T_NUMBER (1u << 1) /* NaN, Infinity, -Infinity included */
#define RECORD_T_OBJECT (1u << 2)
#define RECORD_T_ARRAY (1u << 3)
#define RECORD_T_BOOL (1u << 4)
#define RECORD_T_NULL (1u << 5)
#define RECORD_T_ANY ((1u << 6) - 1)

/* One row of the table of record fields. */
struct record_field_def {
	const char *name;    /* the meaning, for messages: "iteration number" */
	const char *key[2];  /* top-level alias keys, first present wins */
	unsigned nkey;
	/* Non-NULL: the last alias key names an object that holds the value
	 * under this member (execution_result.error_message). */
	const char *nested;
	unsigned types;      /* RECORD_T_* a value must have to be read */
	bool nullable;       /* a drop may give null (read as absent) */
	/* The alias keys are dialect names: a commit writes the store's. */
	bool dialect;
	const char *want;    /* how a commit's reason describes a good value */
};

/* The table row of `f`; NULL for an out-of-range field. */
const struct record_field_def *record_field_def(enum record_field f);

/* The RECORD_T_* bit of a value span (by its first byte). */
unsigned record_type_bit(struct jtext_span v);

/* "a string", "an object or null", ... for a RECORD_T_* mask, into `out`
 * (always NUL-terminated). */
void record_type_text(unsigned types, char *out, size_t size);

/* The files of iterations/<n>/, in the order readdir lists them. */
enum view_kind {
	VIEW_CODE,     /* code.py */
	VIEW_METRICS,  /* metrics.json */
	VIEW_FEEDBACK, /* feedback.txt */
	VIEW_ERROR,    /* error.txt */
	VIEW_RECORD,   /* record.json */
	VIEW_COUNT,
};

/* "code.py", ...; NULL for an out-of-range kind. */
const char *view_name(enum view_kind k);
/* Inverse of view_name: -ENOENT when `name` is no view. */
int view_by_name(const char *name, enum view_kind *k);

/* Locate a field through its aliases.  *val is the raw value span (only set
 * when *found); *key (may be NULL) the key name used, a static string such as
 * "iteration_num" (for the nested error alias: "execution_result").
 * Type rules above apply: a present key with a wrong-typed value makes
 * *found false.  Returns 0 or -EINVAL. */
int record_field(const char *line, size_t len, enum record_field f,
		 struct jtext_span *val, const char **key, bool *found);

/* record_field for several fields at once, from one walk of the line (a
 * reader that needs two fields of every record walks each line once, not
 * twice).  For field f[i], found[i] tells whether it is there and val[i]
 * is its value span, exactly as record_field answers.  `trusted`: the line
 * is already known to be one JSON object (the store's lines once
 * validated: derived_batch.valid), and the walk skips over values without
 * validating them (record_members_fast), several times faster on long
 * strings; same answers on such lines, on others anything but a crash.
 * Returns 0, or -EINVAL when the line is not one JSON object or a field is
 * out of range. */
int record_fields(const char *line, size_t len, bool trusted,
		  const enum record_field *f, size_t n,
		  struct jtext_span *val, bool *found);

/* The iteration number.  Returns 0 (with *found) or -EINVAL.  A full,
 * validating member walk; the index reads numbers with its own fast walk
 * (record_members_fast). */
int record_iteration(const char *line, size_t len, int64_t *n, bool *found);

/* Is top-level key `key` (raw span with quotes) an alias of a dialect field
 * (iteration, code, feedback)?  Then *f is the field and *alias the index of
 * the key in its row; otherwise returns false. */
bool record_dialect_key(struct jtext_span key, enum record_field *f,
			unsigned *alias);

/* Check one top-level member of a drop against the table.  When the key is
 * an alias of a field (a nested alias: when the value is an object holding
 * the nested member), the value must be readable as that field -- iteration
 * an integer >= 0 ("-0" is 0), timestamp ISO 8601 (record_parse_time) --
 * or null where the row allows it.  Otherwise returns false with the
 * offending key in `bad` ("execution_result.success", NUL-terminated) and
 * *want the row's description.  A key that is no alias is fine. */
bool record_member_ok(struct jtext_span key, struct jtext_span val,
		      char *bad, size_t badlen, const char **want);

/* The top-level members of a line trusted to hold one JSON object, walked
 * fast and without validating it: cb(key, val) gets the raw key span (with
 * quotes) and the value span, in order; strings are skipped with memchr,
 * containers by counting brackets outside strings.  Returns 0, -EINVAL when
 * the structure does not hold together (no object, a string or container
 * left open, bytes after the object), or cb's non-zero value.  The store
 * reads every record line with it while indexing. */
int record_members_fast(const char *line, size_t len,
			int (*cb)(struct jtext_span key, struct jtext_span val,
				  void *arg),
			void *arg);

/* record_members_fast's walk, validating: -EINVAL unless the line is one
 * JSON object (jtext).  With `usec` non-NULL it also reads the timestamp as
 * record_timestamp does (*found), in the same pass.  Returns 0, -EINVAL,
 * -ENOMEM, or cb's non-zero value. */
int record_members(const char *line, size_t len,
		   int (*cb)(struct jtext_span key, struct jtext_span val,
			     void *arg),
		   void *arg, int64_t *usec, bool *found);

/* An iteration number as the table reads it: a JSON integer >= 0 that fits
 * int64_t ("-0" is 0, as in Python).  False for anything else. */
bool record_parse_count(struct jtext_span v, int64_t *n);

/* The timestamp as microseconds since the epoch; a timestamp without offset is
 * local time, read as Python's datetime.timestamp() reads a naive datetime
 * (fold=0: the earlier instant of a repeated hour; a time in a skipped hour
 * takes the offset from before the change), with "Z" or "+HH:MM" it is
 * converted.  A fraction of a second is kept to the microsecond (digits
 * past the sixth are dropped, as Python does).  An unparsable timestamp
 * counts as absent.  Returns 0 or -EINVAL.  The local zone is read once
 * (localtime_r); a process that changes TZ calls tzset() afterwards. */
int record_timestamp(const char *line, size_t len, int64_t *usec,
		     bool *found);

/* Parse ISO 8601 text: "YYYY-MM-DDTHH:MM:SS" (or a space for the T), an
 * optional fraction of any length, then nothing, "Z", "+HH:MM" or "+HHMM"
 * (or "-"); *usec is microseconds since the epoch.  Returns 0 or
 * -EINVAL. */
int record_parse_time(const char *s, size_t len, int64_t *usec);

/* Bitmask (1u << view_kind) of the views this record has: VIEW_RECORD always;
 * the others when their field is present.  Returns 0 or -EINVAL. */
int view_mask(const char *line, size_t len, unsigned *mask);
/* view_mask of a line that passed the full validation, walked trusted (as
 * view_render_trusted). */
int view_mask_trusted(const char *line, size_t len, unsigned *mask);

/* Append the exact bytes of one view to `out`: code.py / feedback.txt /
 * error.txt are the decoded string, metrics.json and record.json the
 * jtext_pretty form.  *present is false (and nothing appended) when the record
 * has no such file.  Returns 0, -EINVAL (not an object), -ENOMEM. */
int view_render(const char *line, size_t len, enum view_kind k,
		struct buf *out, bool *present);

/* view_render of a line that passed the full validation (store.h's
 * store_validates): the same bytes, without walking the line validating
 * it again (record_members_fast) and with strings holding only two-byte
 * escapes decoded in place.  On other bytes the walk stays in bounds, but
 * what comes out is unspecified. */
int view_render_trusted(const char *line, size_t len, enum view_kind k,
			struct buf *out, bool *present);

#endif
