/* fault.c - ITERFS_FAULT: see fault.h. */
#include "fault.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const struct {
	const char *name;
	int err;
} fault_errnos[] = {
	{ "ENOSPC", ENOSPC }, { "EIO", EIO },       { "EDQUOT", EDQUOT },
	{ "EROFS", EROFS },   { "EACCES", EACCES }, { "EPERM", EPERM },
	{ "ENOMEM", ENOMEM }, { "EFBIG", EFBIG },   { "EXDEV", EXDEV },
	{ "EBUSY", EBUSY },   { "ENOENT", ENOENT }, { "EAGAIN", EAGAIN },
	{ "EEXIST", EEXIST },
};

static fault_call_fn call_fn;
static void *call_arg;

void fault_set_call(fault_call_fn fn, void *arg)
{
	call_fn = fn;
	call_arg = arg;
}

void fault_read(struct fault *f)
{
	const char *env = getenv("ITERFS_FAULT"), *colon, *what;
	size_t n, i;

	memset(f, 0, sizeof(*f));
	if (!env || !*env)
		return;
	colon = strrchr(env, ':');
	n = colon ? (size_t)(colon - env) : 0;
	if (n == 0 || n >= sizeof(f->step)) {
		log_warn("fault: ITERFS_FAULT=%s: not <step>:<what>, ignored",
			 env);
		return;
	}
	what = colon + 1;
	if (strcmp(what, "crash") == 0) {
		f->kind = FAULT_CRASH;
	} else if (strcmp(what, "call") == 0) {
		f->kind = FAULT_CALL;
	} else {
		for (i = 0; i < sizeof(fault_errnos) / sizeof(fault_errnos[0]);
		     i++)
			if (strcmp(what, fault_errnos[i].name) == 0)
				f->err = fault_errnos[i].err;
		if (!f->err)
			f->err = atoi(what);
		if (f->err <= 0) {
			log_warn("fault: ITERFS_FAULT=%s: unknown errno, "
				 "ignored", env);
			f->err = 0;
			return;
		}
		f->kind = FAULT_ERRNO;
	}
	memcpy(f->step, env, n);
	f->step[n] = '\0';
}

static bool step_is(const struct fault *f, const char *scope, const char *name)
{
	size_t sl = strlen(scope);

	if (sl == 0)
		return strcmp(f->step, name) == 0;
	return strncmp(f->step, scope, sl) == 0 && f->step[sl] == '.' &&
	       strcmp(f->step + sl + 1, name) == 0;
}

int fault_at(const struct fault *f, const char *scope, const char *name)
{
	if (f->kind == FAULT_NONE || !step_is(f, scope, name))
		return 0;
	switch (f->kind) {
	case FAULT_CRASH:
		kill(getpid(), SIGKILL);
		/* SIGKILL to ourselves is delivered before kill() returns;
		 * this is only reached if it somehow was not. */
		abort();
	case FAULT_CALL:
		if (call_fn)
			call_fn(f->step, call_arg);
		return 0;
	case FAULT_ERRNO:
		return strcmp(name, "done") == 0 ||
		       strcmp(name, "before_adopt") == 0 ? 0 : -f->err;
	case FAULT_NONE:
		break;
	}
	return 0;
}
