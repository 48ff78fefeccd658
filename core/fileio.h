/* fileio.h - the read, write and fsync loops and the path helpers every
 * module needs once.
 *
 * Each loops over short transfers and EINTR, checks every result, and
 * returns 0 or -errno; none logs (the caller knows the step and the path and
 * logs them).  Thread-safe: they use only positioned I/O on the caller's fd.
 */
#ifndef ITERFS_FILEIO_H
#define ITERFS_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read exactly `len` bytes at `off`.  -EIO when the file ends first (it
 * shrank under us). */
int fileio_pread_full(int fd, void *buf, size_t len, uint64_t off);

/* Read up to `len` bytes at `off`, stopping early at end of file; *got is
 * how many were read. */
int fileio_pread_upto(int fd, void *buf, size_t len, uint64_t off,
		      size_t *got);

/* Write all `len` bytes at `off`.  A write that makes no progress is -EIO. */
int fileio_pwrite_full(int fd, const void *p, size_t len, uint64_t off);

/* fsync a directory, so that a rename or create in it is durable. */
int fileio_fsync_dir(const char *dir);

/* How many leading bytes of `s` fit in `max` bytes without cutting a UTF-8
 * sequence (strlen(s) when it fits). */
size_t fileio_utf8_cut(const char *s, size_t max);

/* Split `path` into its directory ("." when it has no slash, "/" for a
 * file in the root) and its last component, both malloc'd.  Returns 0 or
 * -ENOMEM (then both are NULL). */
int fileio_split(const char *path, char **dir, char **base);

/* The real file `path` names: symlinks followed (also a dangling last one,
 * so a store that does not exist yet is created where its link points),
 * then the directory made absolute with realpath.  *out is malloc'd.
 * Returns 0, -ENOMEM, -ELOOP, or the -errno of lstat/readlink/realpath. */
int fileio_resolve(const char *path, char **out);

/* What a file of mode `m` is, for messages: "a regular file", "a directory",
 * "a FIFO", "a character device", ... (a static string). */
const char *fileio_kind(mode_t m);

#endif
