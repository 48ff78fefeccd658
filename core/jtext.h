/* jtext.h - JSON as text: scanning, compacting and pretty-printing without
 * turning numbers into doubles (jtext_number does that, for the rankings).
 *
 * cJSON decodes strings for us, but it rounds numbers and rejects NaN; the
 * contract wants number text kept byte for byte and Python's `NaN`,
 * `Infinity`, `-Infinity` accepted.  So everything that must keep the original
 * text works on spans of the input here.
 *
 * Grammar accepted: RFC 8259 plus the three Python literals as numbers.
 * Strings must be valid JSON strings (escapes checked); raw bytes >= 0x80 are
 * passed through unchecked.  Nesting deeper than JTEXT_MAX_DEPTH is -EINVAL:
 * 1000, Python's default recursion limit, so that every line Python's json
 * module can read (it stops a few levels short of 1000) is read here too.
 *
 * All functions are pure and thread-safe; spans point into the caller's input
 * and live as long as it does.
 */
#ifndef ITERFS_JTEXT_H
#define ITERFS_JTEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define JTEXT_MAX_DEPTH 1000

struct jtext_span {
	const char *p;
	size_t len;
};

enum jtext_type {
	JTEXT_OBJECT,
	JTEXT_ARRAY,
	JTEXT_STRING,
	JTEXT_NUMBER, /* includes NaN, Infinity, -Infinity */
	JTEXT_TRUE,
	JTEXT_FALSE,
	JTEXT_NULL,
};

/* Type of a value span produced by this module (looks at the first byte). */
enum jtext_type jtext_type(struct jtext_span v);

/* Validate exactly one value in [p, p+len), surrounded by optional JSON
 * whitespace.  On success *val (may be NULL) is the value without the
 * whitespace.  Returns 0 or -EINVAL. */
int jtext_parse_value(const char *p, size_t len, struct jtext_span *val);

/* Split text holding one or more values separated by whitespace (a pretty
 * object, or several compact objects one per line) into values; values that
 * touch ("{}{}") are a syntax error at the second one.  Calls
 * cb(value, arg) for each in order; a non-zero return from cb stops and is
 * returned.  Returns 0, -EINVAL (syntax; *errpos, if non-NULL, is the byte
 * offset of the first bad byte) or cb's value.  Empty or whitespace-only text
 * gives zero callbacks and 0. */
int jtext_split_values(const char *p, size_t len,
		       int (*cb)(struct jtext_span v, void *arg), void *arg,
		       size_t *errpos);

/* Walk the members of an object value (as returned by jtext_parse_value).
 * cb gets the raw key span (with its quotes) and the value span.
 * Returns 0, -EINVAL (not an object / syntax) or cb's non-zero value. */
int jtext_members(struct jtext_span obj,
		  int (*cb)(struct jtext_span key, struct jtext_span val, void *arg),
		  void *arg);

/* Find a top-level member of `obj` by (decoded) key name.  With duplicate
 * keys the last one wins, as Python's json module does.  *found tells
 * whether it is there.  Returns 0 or -EINVAL (obj is not a valid object). */
int jtext_get(struct jtext_span obj, const char *key, struct jtext_span *val,
	      bool *found);

/* Does the raw key span (with quotes) decode to `name`? */
bool jtext_key_is(struct jtext_span key, const char *name);

/* Decode a string value (span includes the quotes) to raw UTF-8 bytes,
 * appended to `out`.  \u escapes, surrogate pairs included, become UTF-8.
 * cJSON does the decoding; what it cannot give back is handled around it:
 * \u0000 becomes a real NUL byte in `out` (count on out->len, not strlen),
 * and a lone surrogate escape (valid JSON, unrepresentable in UTF-8) becomes
 * U+FFFD.  Returns 0, -EINVAL (not a valid string), -ENOMEM. */
int jtext_string_decode(struct jtext_span str, struct buf *out);

/* jtext_string_decode of a string span already known to be valid JSON (a
 * validated line's): the same bytes appended, the two-byte escapes
 * decoded in place without checking the string again; one with a \u
 * escape goes through jtext_string_decode.  Returns 0, -ENOMEM. */
int jtext_string_decode_valid(struct jtext_span str, struct buf *out);

/* Decode a string span already known to be valid JSON (the quotes
 * included) whose escapes are all two-byte ones (\n, \", ...) into `out`,
 * which has room for str.len bytes; *n is the decoded length.  False,
 * with `out` clobbered, when it holds a \u escape: jtext_string_decode
 * then.  No allocation, no validation. */
bool jtext_string_decode_short(struct jtext_span str, char *out, size_t *n);

/* Append `s` encoded as a JSON string the way Python's
 * json.dumps(s, ensure_ascii=False) does: escape only '"', '\\' and bytes
 * below 0x20 (\n \r \t \b \f by name, others as \u00XX).  Returns 0 or
 * -ENOMEM. */
int jtext_string_encode(const char *s, size_t len, struct buf *out);

/* A number span's value as the nearest double, exactly as strtod gives it
 * (so as Python's float(): NaN, Infinity and -Infinity included).  Most
 * numbers a history holds take a fast path (at most 19 significant digits,
 * a power of ten within 10^27 of them); the rest go to strtod.  Returns 0,
 * -EINVAL (v is not a number) or -ENOMEM. */
int jtext_number(struct jtext_span v, double *d);

/* Append the value with insignificant whitespace removed and every other
 * byte kept (key order, number text, string escapes).  Returns 0, -EINVAL,
 * -ENOMEM. */
int jtext_compact(struct jtext_span v, struct buf *out);

/* Append the contract's pretty form of the value: two-space indent,
 * "key": value, one member/element per line, {} and [] for empty
 * containers, number and literal text kept, strings decoded and re-encoded
 * with jtext_string_encode, and a final newline.  Duplicate keys fold as
 * Python's json.loads does: one member, at the first one's place, with the
 * last one's value.  Returns 0, -EINVAL, -ENOMEM. */
int jtext_pretty(struct jtext_span v, struct buf *out);

#endif
