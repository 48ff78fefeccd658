#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
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
