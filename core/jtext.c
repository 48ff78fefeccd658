#include "jtext.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A cursor over the text.  On -EINVAL, p is left at the first bad byte. */
struct cur {
	const char *p;
	const char *end;
};

/* Escapes found while checking a string; they decide how it is decoded. */
#define STR_ESCAPED 1u /* at least one backslash */
#define STR_NOCJSON 2u /* \u0000 or a lone surrogate: cJSON cannot decode it */
#define STR_UNICODE 4u /* a \u escape: decoded by cJSON */

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_ws(struct cur *c)
{
	while (c->p < c->end && is_ws(*c->p))
		c->p++;
}

/* Bytes that end a run of plain string content. */
static bool is_stop(unsigned char ch)
{
	return ch == '"' || ch == '\\' || ch < 0x20;
}

/* Sixteen bytes at a time through GCC's generic vectors: SSE2 on x86-64,
 * NEON on arm64, plain integer code elsewhere. */
typedef unsigned char vu8 __attribute__((vector_size(16)));
typedef signed char vs8 __attribute__((vector_size(16)));

/* Does "\" followed by ch make a two-byte escape?  A table: this is asked
 * for every escape of every string. */
static bool is_short_escape(char ch)
{
	static const bool t[256] = {
		['"'] = true, ['\\'] = true, ['/'] = true, ['b'] = true,
		['f'] = true, ['n'] = true, ['r'] = true, ['t'] = true,
	};

	return t[(unsigned char)ch];
}

/* Bit k set: byte p[k] of the sixteen at p ends a run of plain string
 * content. */
static unsigned stop_mask(const char *p)
{
	/* Bit 7 of byte k lands on bit 56 + k; no two products meet. */
	const uint64_t gather = 0x0002040810204081ULL;
	const uint64_t top = 0x8080808080808080ULL;
	uint64_t lo, hi;
	vu8 v;
	vs8 m;

	memcpy(&v, p, 16);
	m = (v == '"') | (v == '\\') | (v < 0x20);
	memcpy(&lo, &m, 8);
	memcpy(&hi, (const char *)&m + 8, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	lo = __builtin_bswap64(lo);
	hi = __builtin_bswap64(hi);
#endif
	return (unsigned)((lo & top) * gather >> 56) |
	       (unsigned)((hi & top) * gather >> 56) << 8;
}

/* Skip plain string content up to the next '"', '\\' or control byte (or
 * `end`). */
static const char *string_stop(const char *p, const char *end)
{
	unsigned m;

	while (end - p >= 16) {
		m = stop_mask(p);
		if (m)
			return p + __builtin_ctz(m);
		p += 16;
	}
	while (p < end && !is_stop((unsigned char)*p))
		p++;
	return p;
}

/* string_stop that also steps over the two-byte escapes (\n, \", ...),
 * setting STR_ESCAPED: it stops at the closing quote, a control byte, or a
 * backslash that opens anything else (\u, a bad escape, one cut by `end`),
 * for scan_string to judge.  Code strings hold such an escape every few
 * dozen bytes; taking each of them from the mask of its block, instead of
 * going back to scan_string and loading the block again, is what makes a
 * validating walk of a history cost about what reading it does. */
static const char *string_skip(const char *p, const char *end,
			       unsigned *flags)
{
	const char *q;
	unsigned m, k;

	while (end - p >= 16) {
		m = stop_mask(p);
		if (!m) {
			p += 16;
			continue;
		}
		for (;;) {
			k = (unsigned)__builtin_ctz(m);
			q = p + k;
			if (*q != '\\' || end - q < 2 || !is_short_escape(q[1]))
				return q;
			*flags |= STR_ESCAPED;
			k += 2;
			/* The escaped byte may be a stop byte itself. */
			if (k >= 16 || !(m &= ~0u << k)) {
				p += k < 16 ? 16 : k;
				break;
			}
		}
	}
	for (;;) {
		p = string_stop(p, end);
		if (p == end || *p != '\\' || end - p < 2 ||
		    !is_short_escape(p[1]))
			return p;
		*flags |= STR_ESCAPED;
		p += 2;
	}
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Read the four hex digits after "\u" at p (p points at the backslash). */
static int read_u16(const char *p, const char *end, unsigned *u)
{
	int i, h;

	if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
		return -EINVAL;
	*u = 0;
	for (i = 2; i < 6; i++) {
		h = hexval(p[i]);
		if (h < 0)
			return -EINVAL;
		*u = *u << 4 | (unsigned)h;
	}
	return 0;
}

/* c->p at the backslash of a \u escape: consume it (and a following low
 * surrogate when it opens a pair) and note what cJSON cannot decode. */
static int scan_u_escape(struct cur *c, unsigned *flags)
{
	unsigned u, lo;

	if (read_u16(c->p, c->end, &u) < 0) {
		c->p++;
		return -EINVAL;
	}
	c->p += 6;
	*flags |= STR_UNICODE;
	if (u == 0 || (u >= 0xdc00 && u <= 0xdfff)) {
		*flags |= STR_NOCJSON;
	} else if (u >= 0xd800 && u <= 0xdbff) {
		if (read_u16(c->p, c->end, &lo) == 0 && lo >= 0xdc00 &&
		    lo <= 0xdfff)
			c->p += 6;
		else
			*flags |= STR_NOCJSON;
	}
	return 0;
}

/* c->p at the opening quote; leaves it after the closing one. */
static int scan_string(struct cur *c, unsigned *flags)
{
	*flags = 0;
	c->p++;
	for (;;) {
		c->p = string_skip(c->p, c->end, flags);
		if (c->p == c->end)
			return -EINVAL;
		switch (*c->p) {
		case '"':
			c->p++;
			return 0;
		case '\\':
			*flags |= STR_ESCAPED;
			if (c->end - c->p < 2) {
				c->p = c->end;
				return -EINVAL;
			}
			switch (c->p[1]) {
			case '"': case '\\': case '/': case 'b':
			case 'f': case 'n': case 'r': case 't':
				c->p += 2;
				break;
			case 'u':
				if (scan_u_escape(c, flags) < 0)
					return -EINVAL;
				break;
			default:
				c->p++;
				return -EINVAL;
			}
			break;
		default: /* raw control character */
			return -EINVAL;
		}
	}
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static int scan_word(struct cur *c, const char *w, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (c->p == c->end || *c->p != w[i])
			return -EINVAL;
		c->p++;
	}
	return 0;
}

static int scan_digits(struct cur *c)
{
	if (c->p == c->end || !is_digit(*c->p))
		return -EINVAL;
	while (c->p < c->end && is_digit(*c->p))
		c->p++;
	return 0;
}

static int scan_number(struct cur *c)
{
	if (*c->p == 'N')
		return scan_word(c, "NaN", 3);
	if (*c->p == '-')
		c->p++;
	if (c->p < c->end && *c->p == 'I')
		return scan_word(c, "Infinity", 8);
	if (c->p < c->end && *c->p == '0')
		c->p++;
	else if (scan_digits(c) < 0)
		return -EINVAL;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (scan_digits(c) < 0)
			return -EINVAL;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (scan_digits(c) < 0)
			return -EINVAL;
	}
	return 0;
}

static int scan_value(struct cur *c, int depth);

/* After a member or element: ',' (then more) or the closing bracket. */
static int scan_next(struct cur *c, char close, bool *more)
{
	skip_ws(c);
	if (c->p == c->end)
		return -EINVAL;
	if (*c->p == ',') {
		c->p++;
		skip_ws(c);
		*more = true;
		return 0;
	}
	if (*c->p == close) {
		c->p++;
		*more = false;
		return 0;
	}
	return -EINVAL;
}

/* c->p at a '"' expected as a key; leaves c->p at the member's value. */
static int scan_key(struct cur *c, struct jtext_span *key)
{
	unsigned flags;

	if (c->p == c->end || *c->p != '"')
		return -EINVAL;
	key->p = c->p;
	if (scan_string(c, &flags) < 0)
		return -EINVAL;
	key->len = (size_t)(c->p - key->p);
	skip_ws(c);
	if (c->p == c->end || *c->p != ':')
		return -EINVAL;
	c->p++;
	skip_ws(c);
	return 0;
}

static int scan_object(struct cur *c, int depth)
{
	struct jtext_span key;
	bool more = true;

	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		return 0;
	}
	while (more) {
		if (scan_key(c, &key) < 0 || scan_value(c, depth + 1) < 0 ||
		    scan_next(c, '}', &more) < 0)
			return -EINVAL;
	}
	return 0;
}

static int scan_array(struct cur *c, int depth)
{
	bool more = true;

	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == ']') {
		c->p++;
		return 0;
	}
	while (more) {
		if (scan_value(c, depth + 1) < 0 ||
		    scan_next(c, ']', &more) < 0)
			return -EINVAL;
	}
	return 0;
}

/* One value at c->p (no leading whitespace); depth counts the containers
 * around it. */
static int scan_value(struct cur *c, int depth)
{
	unsigned flags;

	if (c->p == c->end)
		return -EINVAL;
	switch (*c->p) {
	case '{':
	case '[':
		if (depth >= JTEXT_MAX_DEPTH)
			return -EINVAL;
		if (*c->p == '{')
			return scan_object(c, depth);
		return scan_array(c, depth);
	case '"':
		return scan_string(c, &flags);
	case 't':
		return scan_word(c, "true", 4);
	case 'f':
		return scan_word(c, "false", 5);
	case 'n':
		return scan_word(c, "null", 4);
	case '-': case 'N': case 'I':
	case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return scan_number(c);
	default:
		return -EINVAL;
	}
}

enum jtext_type jtext_type(struct jtext_span v)
{
	switch (v.len ? *v.p : 0) {
	case '{':
		return JTEXT_OBJECT;
	case '[':
		return JTEXT_ARRAY;
	case '"':
		return JTEXT_STRING;
	case 't':
		return JTEXT_TRUE;
	case 'f':
		return JTEXT_FALSE;
	case 'n':
		return JTEXT_NULL;
	default:
		return JTEXT_NUMBER;
	}
}

int jtext_parse_value(const char *p, size_t len, struct jtext_span *val)
{
	struct cur c = { p, p + len };
	const char *start;

	skip_ws(&c);
	start = c.p;
	if (scan_value(&c, 0) < 0)
		return -EINVAL;
	if (val) {
		val->p = start;
		val->len = (size_t)(c.p - start);
	}
	skip_ws(&c);
	return c.p == c.end ? 0 : -EINVAL;
}

int jtext_split_values(const char *p, size_t len,
		       int (*cb)(struct jtext_span v, void *arg), void *arg,
		       size_t *errpos)
{
	struct cur c = { p, p + len };
	struct jtext_span v;
	int r;

	for (;;) {
		skip_ws(&c);
		if (c.p == c.end)
			return 0;
		v.p = c.p;
		if (scan_value(&c, 0) < 0)
			goto bad;
		/* "1 2" is two values but "12" is one: demand a separator. */
		if (c.p < c.end && !is_ws(*c.p))
			goto bad;
		v.len = (size_t)(c.p - v.p);
		r = cb(v, arg);
		if (r)
			return r;
	}
bad:
	if (errpos)
		*errpos = (size_t)(c.p - p);
	return -EINVAL;
}

int jtext_members(struct jtext_span obj,
		  int (*cb)(struct jtext_span key, struct jtext_span val, void *arg),
		  void *arg)
{
	struct cur c = { obj.p, obj.p + obj.len };
	struct jtext_span key, val;
	bool more = true;
	int r;

	if (c.p == c.end || *c.p != '{')
		return -EINVAL;
	c.p++;
	skip_ws(&c);
	if (c.p < c.end && *c.p == '}') {
		c.p++;
		more = false;
	}
	while (more) {
		if (scan_key(&c, &key) < 0)
			return -EINVAL;
		val.p = c.p;
		if (scan_value(&c, 1) < 0)
			return -EINVAL;
		val.len = (size_t)(c.p - val.p);
		r = cb(key, val, arg);
		if (r)
			return r;
		if (scan_next(&c, '}', &more) < 0)
			return -EINVAL;
	}
	skip_ws(&c);
	return c.p == c.end ? 0 : -EINVAL;
}

struct get_ctx {
	const char *key;
	struct jtext_span *val;
	bool *found;
};

static int get_cb(struct jtext_span key, struct jtext_span val, void *arg)
{
	struct get_ctx *g = arg;

	if (jtext_key_is(key, g->key)) {
		*g->val = val;
		*g->found = true;
	}
	return 0;
}

int jtext_get(struct jtext_span obj, const char *key, struct jtext_span *val,
	      bool *found)
{
	struct get_ctx g = { key, val, found };

	*found = false;
	return jtext_members(obj, get_cb, &g);
}

bool jtext_key_is(struct jtext_span key, const char *name)
{
	struct buf b = BUF_INIT;
	size_t n = strlen(name);
	bool eq;

	if (key.len < 2)
		return false;
	if (!memchr(key.p + 1, '\\', key.len - 2))
		return key.len - 2 == n && memcmp(key.p + 1, name, n) == 0;
	eq = jtext_string_decode(key, &b) == 0 && b.len == n &&
	     memcmp(b.data ? b.data : "", name, n) == 0;
	buf_free(&b);
	return eq;
}

/* Let cJSON decode one string literal; `q` includes the quotes. */
static int cjson_decode(const char *q, size_t n, struct buf *out)
{
	cJSON *item;
	int r;

	item = cJSON_ParseWithLengthOpts(q, n, NULL, 0);
	/* The text was checked before, so a refusal can only be memory. */
	if (!item)
		return -ENOMEM;
	r = cJSON_IsString(item) ? buf_puts(out, item->valuestring) : -EINVAL;
	cJSON_Delete(item);
	return r;
}

/* Decode string content [p, p+n) (no quotes, no escape cJSON cannot
 * take) by quoting it into `piece` for cJSON. */
static int decode_piece(const char *p, size_t n, struct buf *piece,
			struct buf *out)
{
	int r;

	buf_reset(piece);
	r = buf_putc(piece, '"');
	if (!r)
		r = buf_append(piece, p, n);
	if (!r)
		r = buf_putc(piece, '"');
	if (!r)
		r = cjson_decode(piece->data, piece->len, out);
	return r;
}

/* Strings holding \u0000 or a lone surrogate: cJSON hands back C strings
 * and refuses lone surrogates, so cut the string at those escapes, let
 * cJSON decode each piece, and put U+0000 (or U+FFFD) in between. */
static int decode_pieces(struct jtext_span str, struct buf *out)
{
	const char *p = str.p + 1, *end = str.p + str.len - 1, *start = p;
	struct buf piece = BUF_INIT;
	unsigned u, lo;
	int r;

	while (p < end) {
		if (*p != '\\') {
			p++;
			continue;
		}
		if (p[1] != 'u' || read_u16(p, end, &u) < 0) {
			p += 2;
			continue;
		}
		if (u >= 0xd800 && u <= 0xdbff &&
		    read_u16(p + 6, end, &lo) == 0 && lo >= 0xdc00 &&
		    lo <= 0xdfff) {
			p += 12;
			continue;
		}
		if (u != 0 && (u < 0xd800 || u > 0xdfff)) {
			p += 6;
			continue;
		}
		r = decode_piece(start, (size_t)(p - start), &piece, out);
		if (!r && u)
			r = buf_append(out, "\xef\xbf\xbd", 3);
		else if (!r)
			r = buf_putc(out, '\0');
		if (r)
			goto out_piece;
		p += 6;
		start = p;
	}
	r = decode_piece(start, (size_t)(end - start), &piece, out);
out_piece:
	buf_free(&piece);
	return r;
}

bool jtext_string_decode_short(struct jtext_span str, char *out, size_t *n)
{
	const char *p = str.p + 1, *end = str.p + str.len - 1, *bs;
	char *o = out;

	while ((bs = memchr(p, '\\', (size_t)(end - p)))) {
		memcpy(o, p, (size_t)(bs - p));
		o += bs - p;
		switch (bs[1]) {
		case '"':
		case '\\':
		case '/':
			*o++ = bs[1];
			break;
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		default:
			return false;
		}
		p = bs + 2;
	}
	memcpy(o, p, (size_t)(end - p));
	o += end - p;
	*n = (size_t)(o - out);
	return true;
}

int jtext_string_decode(struct jtext_span str, struct buf *out)
{
	struct cur c = { str.p, str.p + str.len };
	unsigned flags;

	if (!str.len || *str.p != '"' || scan_string(&c, &flags) < 0 ||
	    c.p != c.end)
		return -EINVAL;
	if (!(flags & STR_ESCAPED))
		return buf_append(out, str.p + 1, str.len - 2);
	if (flags & STR_NOCJSON)
		return decode_pieces(str, out);
	if (flags & STR_UNICODE)
		return cjson_decode(str.p, str.len, out);
	/* Only two-byte escapes (code strings: \n, \", ...). */
	return jtext_string_decode_valid(str, out);
}

int jtext_string_decode_valid(struct jtext_span str, struct buf *out)
{
	size_t n;
	int r;

	/* Decoded in place, without cJSON's parse and copy. */
	r = buf_reserve(out, str.len);
	if (r < 0)
		return r;
	if (!jtext_string_decode_short(str, out->data + out->len, &n))
		return jtext_string_decode(str, out);
	out->len += n;
	out->data[out->len] = '\0';
	return 0;
}

int jtext_string_encode(const char *s, size_t len, struct buf *out)
{
	static const char hex[] = "0123456789abcdef";
	const char *end = s + len, *run;
	char esc[6];
	size_t n;
	int r;

	r = buf_reserve(out, len + 2);
	if (r < 0)
		return r;
	out->data[out->len++] = '"';
	while (s < end) {
		run = string_stop(s, end);
		r = buf_append(out, s, (size_t)(run - s));
		if (r < 0)
			return r;
		if (run == end)
			break;
		esc[0] = '\\';
		n = 2;
		switch (*run) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[(unsigned char)*run >> 4];
			esc[5] = hex[*run & 0xf];
			n = 6;
		}
		r = buf_append(out, esc, n);
		if (r < 0)
			return r;
		s = run + 1;
	}
	return buf_putc(out, '"');
}

/* --- numbers as doubles ----------------------------------------------------
 * strtod is most of what ranking a history's metrics costs, so a number of
 * at most 19 significant digits m and a power of ten 10^k with |k| <= 27
 * is computed as m * 10^k or m / 10^k in x86's long double: both operands
 * are exact there (10^27 = 2^27 * 5^27, 5^27 < 2^64), so the result is the
 * exact value rounded once to 64 bits.  Rounding that to double is right
 * unless the first rounding landed exactly halfway between two doubles,
 * which is checked; then, and for every other form or long double format,
 * strtod decides. */

/* Digit ch into the significand m, leading zeros skipped; false past the
 * 19 significant digits a uint64_t holds. */
static bool take_digit(char ch, uint64_t *m, unsigned *nd)
{
	if (*nd || ch != '0') {
		if (++*nd > 19)
			return false;
		*m = *m * 10 + (uint64_t)(ch - '0');
	}
	return true;
}

static bool number_fast(const char *p, const char *end, double *d)
{
	static const long double p10[28] = {
		1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,
		1e7L,  1e8L,  1e9L,  1e10L, 1e11L, 1e12L, 1e13L,
		1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L,
		1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L,
	};
	uint64_t m = 0;
	unsigned nd = 0;
	long k = 0, e = 0;
	bool neg = false, eneg = false;
	long double x;
	uint64_t sig;
	double r;

	if (LDBL_MANT_DIG != 64)
		return false;
	if (p < end && *p == '-') {
		neg = true;
		p++;
	}
	if (p == end || !is_digit(*p))
		return false;
	for (; p < end && is_digit(*p); p++)
		if (!take_digit(*p, &m, &nd))
			return false;
	if (p < end && *p == '.') {
		for (p++; p < end && is_digit(*p); p++, k--)
			if (!take_digit(*p, &m, &nd))
				return false;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			eneg = *p++ == '-';
		for (; p < end && is_digit(*p); p++)
			if ((e = e * 10 + (*p - '0')) > 1000)
				return false;
		k += eneg ? -e : e;
	}
	if (p != end || k < -27 || k > 27)
		return false;
	x = k >= 0 ? (long double)m * p10[k] : (long double)m / p10[-k];
	/* x87's format keeps the significand, explicit leading bit included,
	 * in its first eight bytes; doubles keep its top 53 bits, and the
	 * other 11 reading 100 0000 0000 is exactly halfway. */
	memcpy(&sig, &x, sizeof(sig));
	if ((sig & 0x7ff) == 0x400)
		return false;
	r = (double)x;
	*d = neg ? -r : r;
	return true;
}

int jtext_number(struct jtext_span v, double *d)
{
	char tmp[64];
	struct buf t = BUF_INIT;

	if (jtext_type(v) != JTEXT_NUMBER)
		return -EINVAL;
	if (number_fast(v.p, v.p + v.len, d))
		return 0;
	/* strtod wants a NUL; numbers are short. */
	if (v.len < sizeof(tmp)) {
		memcpy(tmp, v.p, v.len);
		tmp[v.len] = '\0';
		*d = strtod(tmp, NULL);
		return 0;
	}
	if (buf_append(&t, v.p, v.len) < 0 || buf_putc(&t, '\0') < 0) {
		buf_free(&t);
		return -ENOMEM;
	}
	*d = strtod(t.data, NULL);
	buf_free(&t);
	return 0;
}

int jtext_compact(struct jtext_span v, struct buf *out)
{
	struct cur c = { v.p, v.p + v.len };
	const char *p;
	unsigned flags;
	int r;

	if (jtext_parse_value(v.p, v.len, NULL) < 0)
		return -EINVAL;
	r = buf_reserve(out, v.len);
	if (r < 0)
		return r;
	skip_ws(&c);
	while (c.p < c.end) {
		p = c.p;
		if (*p == '"') {
			if (scan_string(&c, &flags) < 0)
				return -EINVAL;
		} else {
			while (c.p < c.end && *c.p != '"' && !is_ws(*c.p))
				c.p++;
		}
		r = buf_append(out, p, (size_t)(c.p - p));
		if (r < 0)
			return r;
		skip_ws(&c);
	}
	return 0;
}

/* Pretty printing, on text already checked by jtext_parse_value: the
 * scanner's errors below are kept only as a guard. */

static int put_indent(struct buf *out, int depth)
{
	static const char sp[] = "                                ";
	size_t n = (size_t)depth * 2;
	int r = 0;

	while (n && !r) {
		size_t k = n < sizeof(sp) - 1 ? n : sizeof(sp) - 1;

		r = buf_append(out, sp, k);
		n -= k;
	}
	return r;
}

/* A string literal the way Python prints it: text without escapes is
 * already in that form (no quote, backslash or control byte can be raw). */
static int put_string(struct jtext_span s, struct buf *out)
{
	struct buf dec = BUF_INIT;
	int r;

	if (!memchr(s.p, '\\', s.len))
		return buf_append(out, s.p, s.len);
	r = jtext_string_decode(s, &dec);
	if (!r)
		r = jtext_string_encode(dec.data ? dec.data : "", dec.len, out);
	buf_free(&dec);
	return r;
}

struct member {
	struct jtext_span key;
	struct jtext_span val;
	const char *name; /* decoded key, for finding duplicates */
	size_t nlen;
	size_t order;
	bool dropped;
};

static int by_name(const void *a, const void *b)
{
	const struct member *x = *(const struct member *const *)a;
	const struct member *y = *(const struct member *const *)b;
	size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
	int d = memcmp(x->name, y->name, n);

	if (d)
		return d;
	if (x->nlen != y->nlen)
		return x->nlen < y->nlen ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Python's json.loads keeps one member per key: the first one's place with
 * the last one's value.  Rewrite m[] that way. */
static int merge_duplicates(struct member *m, size_t n)
{
	struct buf names = BUF_INIT;
	struct member **ix;
	size_t i, j, *off;
	int r = -ENOMEM;

	ix = calloc(n, sizeof(*ix));
	off = calloc(n, sizeof(*off));
	if (!ix || !off)
		goto out;
	for (i = 0; i < n; i++) {
		ix[i] = &m[i];
		off[i] = names.len;
		r = jtext_string_decode(m[i].key, &names);
		if (r < 0)
			goto out;
		m[i].nlen = names.len - off[i];
	}
	for (i = 0; i < n; i++)
		m[i].name = names.data ? names.data + off[i] : "";
	qsort(ix, n, sizeof(*ix), by_name);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && ix[j]->nlen == ix[i]->nlen &&
		     memcmp(ix[j]->name, ix[i]->name, ix[i]->nlen) == 0; j++)
			ix[j]->dropped = true;
		ix[i]->val = ix[j - 1]->val;
	}
	r = 0;
out:
	buf_free(&names);
	free(off);
	free(ix);
	return r;
}

static int pretty_value(struct cur *c, int depth, struct buf *out);

static int pretty_object(struct cur *c, int depth, struct buf *out)
{
	struct member *m = NULL, *nm;
	size_t n = 0, cap = 0, i;
	bool more = true, first = true;
	struct cur vc;
	int r;

	c->p++;
	skip_ws(c);
	if (*c->p == '}') {
		c->p++;
		return buf_append(out, "{}", 2);
	}
	while (more) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			nm = realloc(m, cap * sizeof(*m));
			if (!nm) {
				r = -ENOMEM;
				goto out;
			}
			m = nm;
		}
		memset(&m[n], 0, sizeof(*m));
		m[n].order = n;
		if (scan_key(c, &m[n].key) < 0)
			goto bad;
		m[n].val.p = c->p;
		if (scan_value(c, depth + 1) < 0)
			goto bad;
		m[n].val.len = (size_t)(c->p - m[n].val.p);
		n++;
		if (scan_next(c, '}', &more) < 0)
			goto bad;
	}
	r = n > 1 ? merge_duplicates(m, n) : 0;
	if (!r)
		r = buf_append(out, "{\n", 2);
	for (i = 0; i < n && !r; i++) {
		if (m[i].dropped)
			continue;
		if (!first)
			r = buf_append(out, ",\n", 2);
		first = false;
		if (!r)
			r = put_indent(out, depth + 1);
		if (!r)
			r = put_string(m[i].key, out);
		if (!r)
			r = buf_append(out, ": ", 2);
		vc = (struct cur){ m[i].val.p, m[i].val.p + m[i].val.len };
		if (!r)
			r = pretty_value(&vc, depth + 1, out);
	}
	if (!r)
		r = buf_putc(out, '\n');
	if (!r)
		r = put_indent(out, depth);
	if (!r)
		r = buf_putc(out, '}');
	goto out;
bad:
	r = -EINVAL;
out:
	free(m);
	return r;
}

static int pretty_array(struct cur *c, int depth, struct buf *out)
{
	bool more = true;
	int r;

	c->p++;
	skip_ws(c);
	if (*c->p == ']') {
		c->p++;
		return buf_append(out, "[]", 2);
	}
	r = buf_append(out, "[\n", 2);
	while (more && !r) {
		r = put_indent(out, depth + 1);
		if (!r)
			r = pretty_value(c, depth + 1, out);
		if (!r && scan_next(c, ']', &more) < 0)
			r = -EINVAL;
		if (!r && more)
			r = buf_append(out, ",\n", 2);
	}
	if (!r)
		r = buf_putc(out, '\n');
	if (!r)
		r = put_indent(out, depth);
	if (!r)
		r = buf_putc(out, ']');
	return r;
}

static int pretty_value(struct cur *c, int depth, struct buf *out)
{
	struct jtext_span v = { c->p, 0 };
	unsigned flags;

	switch (*c->p) {
	case '{':
		return pretty_object(c, depth, out);
	case '[':
		return pretty_array(c, depth, out);
	case '"':
		if (scan_string(c, &flags) < 0)
			return -EINVAL;
		v.len = (size_t)(c->p - v.p);
		return put_string(v, out);
	default:
		if (scan_value(c, depth) < 0)
			return -EINVAL;
		v.len = (size_t)(c->p - v.p);
		return buf_append(out, v.p, v.len);
	}
}

int jtext_pretty(struct jtext_span v, struct buf *out)
{
	struct jtext_span val;
	struct cur c;
	int r;

	if (jtext_parse_value(v.p, v.len, &val) < 0)
		return -EINVAL;
	c = (struct cur){ val.p, val.p + val.len };
	r = pretty_value(&c, 0, out);
	if (!r)
		r = buf_putc(out, '\n');
	return r;
}
