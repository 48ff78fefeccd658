/* iterfs-commit - commit records into a history through the same path the
 * drop box uses (commit.h + writer.h), all drops in one group commit. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "fileio.h"
#include "log.h"
#include "store.h"
#include "writer.h"

#define EXIT_REJECTED 1
#define EXIT_USAGE 2
#define EXIT_IO 3

static const char usage_text[] =
	"usage: iterfs-commit [-m SIZE] [-w SECONDS] STORE [FILE...]\n"
	"\n"
	"Commit the records in each FILE (standard input when there is none,\n"
	"or for \"-\") into the JSONL history STORE, durably and atomically,\n"
	"all files in one rewrite.  Each FILE is one drop: one JSON object,\n"
	"or several, one per line, which commit together or not at all.\n"
	"Missing iteration numbers, timestamps and code hashes are filled in.\n"
	"\n"
	"  -m, --max-record SIZE  reject drops larger than SIZE bytes\n"
	"                         (suffixes k, M, G; default 16M)\n"
	"  -w, --wait SECONDS     wait at most SECONDS for the store's lock\n"
	"                         (STORE.lock, held by another commit or tool;\n"
	"                         default 30, 0: one try, -1: forever); then\n"
	"                         exit 3 with \"Connection timed out\"\n"
	"  -h, --help             show this help\n"
	"  -V, --version          show the version\n"
	"\n"
	"Exit status: 0 all committed (or already there, identical);\n"
	"1 some drop rejected (invalid, number taken, too large), the others\n"
	"committed; 2 usage error or unreadable FILE, nothing committed;\n"
	"3 the store could not be read or written (ENOSPC, EIO, ...).\n";

static int parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K':
		shift = 10;
		break;
	case 'm': case 'M':
		shift = 20;
		break;
	case 'g': case 'G':
		shift = 30;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1])
		return -EINVAL;
	if (v > (SIZE_MAX >> shift))
		return -EINVAL;
	*out = (size_t)v << shift;
	return 0;
}

/* SECONDS (a decimal, may have a fraction) into milliseconds; -1 is
 * forever. */
static int parse_wait(const char *s, int *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v != v)
		return -EINVAL;
	if (v == -1) {
		*ms = -1;
		return 0;
	}
	if (v < 0 || v > INT_MAX / 1000)
		return -EINVAL;
	*ms = (int)(v * 1000);
	return 0;
}

static int read_fd(int fd, struct buf *b)
{
	for (;;) {
		ssize_t n;
		int r = buf_reserve(b, 65536);

		if (r < 0)
			return r;
		n = read(fd, b->data + b->len, b->cap - b->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		b->len += (size_t)n;
		b->data[b->len] = '\0';
	}
}

static int read_drop(const char *name, struct buf *b)
{
	int fd, r;

	if (strcmp(name, "-") == 0)
		return read_fd(STDIN_FILENO, b);
	fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = read_fd(fd, b);
	close(fd);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "max-record", required_argument, NULL, 'm' },
		{ "wait", required_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const stdin_only[] = { "-" };
	size_t max_record = WRITER_MAX_RECORD_DEFAULT, ndrops, i;
	const char *const *names;
	struct writer_req *reqs = NULL;
	struct buf *bufs = NULL;
	struct store *s = NULL;
	struct writer_lock *lk;
	int c, r, status = EXIT_SUCCESS, wait_ms = WRITER_LOCK_TIMEOUT_MS_DEFAULT;

	log_set_prog("iterfs-commit");
	while ((c = getopt_long(argc, argv, "m:w:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (parse_size(optarg, &max_record) < 0) {
				fprintf(stderr, "iterfs-commit: bad size: %s\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'w':
			if (parse_wait(optarg, &wait_ms) < 0) {
				fprintf(stderr, "iterfs-commit: bad wait: %s\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("iterfs-commit %s\n", ITERFS_VERSION);
			return EXIT_SUCCESS;
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (optind + 1 < argc) {
		names = (const char *const *)argv + optind + 1;
		ndrops = (size_t)(argc - optind - 1);
	} else {
		names = stdin_only;
		ndrops = 1;
	}
	reqs = calloc(ndrops, sizeof(*reqs));
	bufs = calloc(ndrops, sizeof(*bufs));
	if (!reqs || !bufs) {
		fprintf(stderr, "iterfs-commit: %s\n", strerror(ENOMEM));
		status = EXIT_IO;
		goto out;
	}
	/* Read every drop first: a typo in a file name commits nothing. */
	for (i = 0; i < ndrops; i++) {
		r = read_drop(names[i], &bufs[i]);
		if (r < 0) {
			fprintf(stderr, "iterfs-commit: %s: %s\n",
				strcmp(names[i], "-") ? names[i] : "stdin",
				strerror(-r));
			status = r == -ENOMEM ? EXIT_IO : EXIT_USAGE;
			goto out;
		}
		reqs[i].data = bufs[i].data ? bufs[i].data : "";
		reqs[i].len = bufs[i].len;
	}
	r = store_open(argv[optind], 0, &s);
	if (r < 0) {
		struct stat st;

		if (stat(argv[optind], &st) == 0 && !S_ISREG(st.st_mode))
			fprintf(stderr, "iterfs-commit: %s: is %s, not a "
				"regular file\n", argv[optind],
				fileio_kind(st.st_mode));
		else
			fprintf(stderr, "iterfs-commit: %s: %s\n",
				argv[optind], strerror(-r));
		status = EXIT_IO;
		goto out;
	}
	r = writer_lock(s, wait_ms, &lk);
	if (r < 0) {
		fprintf(stderr, "iterfs-commit: %s.lock: %s\n", argv[optind],
			strerror(-r));
		status = EXIT_IO;
		goto out;
	}
	r = writer_commit_locked(lk, reqs, ndrops, max_record);
	writer_unlock(lk);
	if (r < 0)
		status = EXIT_IO;
	for (i = 0; i < ndrops; i++) {
		const char *name = strcmp(names[i], "-") ? names[i] : "stdin";
		const struct writer_req *q = &reqs[i];

		if (q->result < 0) {
			fprintf(stderr, "iterfs-commit: %s: %s: %s\n", name,
				strerror(-q->result), q->reason);
			if (status == EXIT_SUCCESS)
				status = EXIT_REJECTED;
		} else if (q->count == 0) {
			printf("%s: already committed (identical)\n", name);
		} else if (q->count == 1) {
			printf("committed iteration %" PRId64 " from %s\n",
			       q->first, name);
		} else {
			printf("committed %zu records, iterations %" PRId64
			       " to %" PRId64 " from %s\n", q->count, q->first,
			       q->last, name);
		}
	}
	if (fflush(stdout) != 0 && status == EXIT_SUCCESS)
		status = EXIT_IO;
out:
	store_close(s);
	if (bufs)
		for (i = 0; i < ndrops; i++)
			buf_free(&bufs[i]);
	free(bufs);
	free(reqs);
	return status;
}
