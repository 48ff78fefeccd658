#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fileio_pread_upto(int fd, void *buf, size_t len, uint64_t off,
		      size_t *got)
{
	char *p = buf;

	*got = 0;
	while (len) {
		ssize_t r = pread(fd, p, len, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
		*got += (size_t)r;
	}
	return 0;
}

int fileio_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got;
	int r = fileio_pread_upto(fd, buf, len, off, &got);

	if (r < 0)
		return r;
	return got == len ? 0 : -EIO;
}

int fileio_pwrite_full(int fd, const void *p, size_t len, uint64_t off)
{
	const char *q = p;

	while (len) {
		ssize_t w = pwrite(fd, q, len, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		q += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

int fileio_fsync_dir(const char *dir)
{
	int fd, r = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

size_t fileio_utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

int fileio_split(const char *path, char **dir, char **base)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		*dir = strdup(".");
	else if (slash == path)
		*dir = strdup("/");
	else
		*dir = strndup(path, (size_t)(slash - path));
	*base = strdup(slash ? slash + 1 : path);
	if (*dir && *base)
		return 0;
	free(*dir);
	free(*base);
	*dir = *base = NULL;
	return -ENOMEM;
}

/* `target` read from the link `link`, as a path from here. */
static char *link_join(const char *link, const char *target)
{
	const char *slash = strrchr(link, '/');
	char *out;

	if (target[0] == '/' || !slash)
		return strdup(target);
	if (asprintf(&out, "%.*s/%s", (int)(slash - link), link, target) < 0)
		return NULL;
	return out;
}

int fileio_resolve(const char *path, char **out)
{
	char *cur = strdup(path), *next, *dir, *base, *real, target[PATH_MAX];
	struct stat st;
	ssize_t n;
	int hops, r;

	*out = NULL;
	if (!cur)
		return -ENOMEM;
	for (hops = 0;; hops++) {
		if (hops > 40) {
			r = -ELOOP;
			goto out;
		}
		if (lstat(cur, &st) < 0) {
			if (errno != ENOENT) {
				r = -errno;
				goto out;
			}
			break;
		}
		if (!S_ISLNK(st.st_mode))
			break;
		n = readlink(cur, target, sizeof(target) - 1);
		if (n < 0) {
			r = -errno;
			goto out;
		}
		target[n] = '\0';
		next = link_join(cur, target);
		if (!next) {
			r = -ENOMEM;
			goto out;
		}
		free(cur);
		cur = next;
	}
	r = fileio_split(cur, &dir, &base);
	if (r < 0)
		goto out;
	real = realpath(dir, NULL);
	r = real ? 0 : -errno;
	if (!r && asprintf(out, "%s%s%s", real, strcmp(real, "/") ? "/" : "",
			   base) < 0) {
		*out = NULL;
		r = -ENOMEM;
	}
	free(real);
	free(dir);
	free(base);
out:
	free(cur);
	return r;
}

const char *fileio_kind(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG:
		return "a regular file";
	case S_IFDIR:
		return "a directory";
	case S_IFIFO:
		return "a FIFO";
	case S_IFCHR:
		return "a character device";
	case S_IFBLK:
		return "a block device";
	case S_IFSOCK:
		return "a socket";
	case S_IFLNK:
		return "a symbolic link";
	default:
		return "not a file of a known kind";
	}
}
