/* buf.h - a growable byte buffer.
 *
 * The one way the core hands variable-length bytes to its callers.  A
 * zero-initialised `struct buf` is an empty buffer; `data` is always
 * NUL-terminated when non-NULL (the NUL is not counted in `len`), so text can be
 * printed directly, but contents may hold embedded NULs.
 *
 * Ownership: the buffer owns `data`; `buf_free()` releases it.
 * Not thread-safe: one owner at a time.
 */
#ifndef ITERFS_BUF_H
#define ITERFS_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

/* Make room for `extra` more bytes.  Returns 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);
/* Append bytes.  Returns 0 or -ENOMEM (the buffer is unchanged then). */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_putc(struct buf *b, char c);
int buf_puts(struct buf *b, const char *s);
/* printf-style append.  Returns 0, -ENOMEM or -EINVAL (bad format). */
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Forget the contents, keep the allocation. */
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* Hand the allocation to the caller; the buffer becomes empty. */

#endif
