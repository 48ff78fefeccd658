/* watch.c - see watch.h. */
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | \
		    IN_MODIFY | IN_DELETE)

/* What the once-a-second check compares; `exists` false for a missing
 * store. */
struct fileid {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};

struct watch {
	struct store *s;
	watch_fn fn;
	void *arg;
	char *dir;          /* the store's directory and file name */
	char *name;
	int ifd;            /* inotify, -1 when unavailable */
	int stop[2];        /* a byte on stop[1] ends the thread */
	struct fileid last; /* thread-owned */
	int last_err;       /* thread-owned: last refresh error logged */
	pthread_t thread;
};

static void fileid_get(const char *path, struct fileid *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(path, &st) < 0)
		return;
	id->exists = true;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
	id->ctime = st.st_ctim;
}

static bool ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool fileid_eq(const struct fileid *a, const struct fileid *b)
{
	if (a->exists != b->exists)
		return false;
	if (!a->exists)
		return true;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       ts_eq(a->mtime, b->mtime) && ts_eq(a->ctime, b->ctime);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void refresh(struct watch *w)
{
	struct store_change chg = { 0 };
	int r;

	/* Stat first: a change landing during the refresh is seen next
	 * time rather than lost. */
	fileid_get(store_path(w->s), &w->last);
	r = store_refresh(w->s);
	if (r < 0) {
		if (r != w->last_err)
			log_err("%s: re-reading the store: %s",
				store_path(w->s), strerror(-r));
		w->last_err = r;
		return;
	}
	w->last_err = 0;
	/* Also what a commit's own refresh absorbed since the last look. */
	store_changes_take(w->s, &chg);
	if (chg.changed)
		w->fn(&chg, w->arg);
	store_change_free(&chg);
}

/* Drain the inotify queue; true when an event concerns the store. */
static bool events_hit(struct watch *w)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	bool hit = false;
	ssize_t n;
	char *p;

	for (;;) {
		n = read(w->ifd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_warn("%s: reading inotify events: %s",
					 w->dir, strerror(errno));
			return hit;
		}
		if (n == 0)
			return hit;
		for (p = buf; p < buf + n;
		     p += sizeof(struct inotify_event) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW)
				hit = true;
			else if (ev->len && strcmp(ev->name, w->name) == 0)
				hit = true;
		}
	}
}

static void *watch_main(void *arg)
{
	struct watch *w = arg;
	struct pollfd pfd[2];
	struct fileid id;
	double checked = now_s();
	nfds_t nfd;
	bool hit;
	int r;

	fileid_get(store_path(w->s), &w->last);
	for (;;) {
		pfd[0].fd = w->stop[0];
		pfd[0].events = POLLIN;
		pfd[1].fd = w->ifd;
		pfd[1].events = POLLIN;
		nfd = w->ifd >= 0 ? 2 : 1;
		r = poll(pfd, nfd, 1000);
		if (r < 0 && errno != EINTR) {
			log_err("watching %s: poll: %s", w->dir,
				strerror(errno));
			break;
		}
		if (r > 0 && pfd[0].revents)
			break;
		hit = r > 0 && nfd == 2 && (pfd[1].revents & POLLIN) &&
		      events_hit(w);
		/* Other files in the directory may keep inotify busy: the
		 * stat check runs on time regardless. */
		if (!hit && now_s() - checked >= 1.0) {
			checked = now_s();
			fileid_get(store_path(w->s), &id);
			hit = !fileid_eq(&id, &w->last);
		}
		if (hit)
			refresh(w);
	}
	return NULL;
}

static int split_path(const char *path, char **dir, char **name)
{
	const char *slash = strrchr(path, '/');

	if (!slash) {
		*dir = strdup(".");
		*name = strdup(path);
	} else {
		*dir = slash == path ? strdup("/") :
				       strndup(path, (size_t)(slash - path));
		*name = strdup(slash + 1);
	}
	if (!*dir || !*name) {
		free(*dir);
		free(*name);
		return -ENOMEM;
	}
	return 0;
}

int watch_start(struct store *s, watch_fn fn, void *arg, struct watch **out)
{
	struct watch *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	w->s = s;
	w->fn = fn;
	w->arg = arg;
	r = split_path(store_path(s), &w->dir, &w->name);
	if (r < 0)
		goto out_free;
	if (pipe2(w->stop, O_CLOEXEC) < 0) {
		r = -errno;
		goto out_path;
	}
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0) {
		log_warn("%s: inotify unavailable (%s), checking once a second",
			 w->dir, strerror(errno));
	} else if (inotify_add_watch(w->ifd, w->dir, WATCH_MASK | IN_ONLYDIR) <
		   0) {
		log_warn("%s: cannot watch (%s), checking once a second",
			 w->dir, strerror(errno));
		close(w->ifd);
		w->ifd = -1;
	}
	r = -pthread_create(&w->thread, NULL, watch_main, w);
	if (r < 0)
		goto out_fds;
	*out = w;
	return 0;

out_fds:
	if (w->ifd >= 0)
		close(w->ifd);
	close(w->stop[0]);
	close(w->stop[1]);
out_path:
	free(w->dir);
	free(w->name);
out_free:
	free(w);
	return r;
}

void watch_stop(struct watch *w)
{
	char c = 1;

	if (!w)
		return;
	while (write(w->stop[1], &c, 1) < 0 && errno == EINTR)
		;
	pthread_join(w->thread, NULL);
	if (w->ifd >= 0)
		close(w->ifd);
	close(w->stop[0]);
	close(w->stop[1]);
	free(w->dir);
	free(w->name);
	free(w);
}
