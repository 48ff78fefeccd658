# Shared by every .bats file: where the binaries are, and a mount helper.
#
# iterfs_mount STORE [ARGS...]   mounts STORE at $MNT (under $BATS_TEST_TMPDIR).
#   iterfs daemonises only once the mount is ready, so its return is the
#   readiness signal: no sleeps.  FD 3 (bats' own) is closed for the daemon,
#   otherwise bats would wait for it.  $IFS_PID is the daemon's pid.
# iterfs_unmount                 unmounts $MNT and waits for the daemon to exit.
# teardown calls iterfs_unmount_all, so a failing test never leaves a mount.
#
# Store fixtures and probes shared by the incoming/ tests:
#   seed STORE                 three complete records (iteration, code, metrics,
#                              timestamp); drops into it must carry code and
#                              metrics to be complete.
#   sum FILE                   sha256 of FILE: "the store did not change".
#   listing                    `ls -A incoming/` on one line.
#   iter_count                 how many iterations the mount shows.
#   kept_drops                 names of the drops kept in $STORE.rejected/.
#   hold_lock                  a foreign flock on $STORE.lock, held by $HOLDER.
#   wait_in_close PID...       returns once each PID sits in close(2).
#   bg_track PID...            processes teardown_tracked kills (teardown).

: "${ITERFS_BUILD:?ITERFS_BUILD must point at the meson build directory}"
ITERFS="$ITERFS_BUILD/fs/iterfs"
ITERFS_COMMIT="$ITERFS_BUILD/core/iterfs-commit"
ITERFS_CHECK="$ITERFS_BUILD/core/iterfs-check"
REAL="${ITERFS_REAL_DATA:-}"

iterfs_mount() {
	local store=$1
	shift
	MNT=${MNT:-$BATS_TEST_TMPDIR/mnt}
	mkdir -p "$MNT"
	"$ITERFS" "$@" "$store" "$MNT" 3>&-
	mountpoint -q "$MNT"
	IFS_PID=$(pgrep -n -f -- "^$ITERFS .*$MNT\$")
	echo "$MNT $IFS_PID" >>"$BATS_TEST_TMPDIR/.mounts"
}

iterfs_wait_exit() {
	local pid=$1
	[ -n "$pid" ] || return 0
	# tail --pid returns when the process is gone; no polling sleeps.
	timeout 30 tail --pid="$pid" -f /dev/null
}

iterfs_unmount() {
	local mnt=${1:-$MNT} pid=${2:-$IFS_PID}
	if mountpoint -q "$mnt"; then
		fusermount3 -u "$mnt" || fusermount3 -uz "$mnt"
	fi
	iterfs_wait_exit "$pid"
}

iterfs_unmount_all() {
	local mnt pid
	[ -f "$BATS_TEST_TMPDIR/.mounts" ] || return 0
	while read -r mnt pid; do
		iterfs_unmount "$mnt" "$pid" || true
	done <"$BATS_TEST_TMPDIR/.mounts"
	rm -f "$BATS_TEST_TMPDIR/.mounts"
}

# need_real NAME: sets $HIST to the real history, or skips when the shared
# data is absent (a failure under CI, where it must be present).
need_real() {
	HIST="$REAL/$1"
	if [ ! -r "$HIST" ]; then
		[ -z "${CI:-}" ] || { echo "real history $HIST missing in CI" >&2; return 1; }
		skip "real history $1 not present"
	fi
}

# Three records, numbers 0..2, in the "iteration" dialect.
seed() {
	local i
	for i in 0 1 2; do
		printf '{"iteration": %d, "code": "x = %d\\n", "metrics": {"sharpe": 0.%d}, "timestamp": "2025-10-11T15:46:3%d.605350"}\n' \
			"$i" "$i" "$i" "$i"
	done >"$1"
}

sum() {
	sha256sum <"$1" | cut -d' ' -f1
}

listing() {
	LC_ALL=C ls -A "$MNT/incoming" | tr '\n' ' '
}

iter_count() {
	ls "$MNT/iterations" | wc -l
}

kept_drops() {
	[ -d "$STORE.rejected" ] || return 0
	LC_ALL=C ls -A "$STORE.rejected" | grep -v '\.reason$' | tr '\n' ' '
}

# Disowned: the shell would report each one teardown kills.  Wait for them
# with iterfs_wait_exit.
bg_track() {
	printf '%s\n' "$@" >>"$BATS_TEST_TMPDIR/.pids"
	disown "$@"
}

# Kill what the test left running (writers, lock holders) before unmounting:
# a writer blocked in close() would keep the mount busy.
teardown_tracked() {
	local pid
	[ -f "$BATS_TEST_TMPDIR/.pids" ] || return 0
	while read -r pid; do
		kill -KILL "$pid" 2>/dev/null || true
	done <"$BATS_TEST_TMPDIR/.pids"
	while read -r pid; do
		iterfs_wait_exit "$pid" || true
	done <"$BATS_TEST_TMPDIR/.pids"
	rm -f "$BATS_TEST_TMPDIR/.pids"
}

# Take $STORE.lock the way other tools do (flock(1) on the same file) and
# keep it in a background sleep; returns once the lock is held.
hold_lock() {
	local line
	mkfifo "$BATS_TEST_TMPDIR/locked"
	(exec 7>>"$STORE.lock" && flock 7 && echo locked >"$BATS_TEST_TMPDIR/locked" &&
		exec sleep 600) 3>&- &
	HOLDER=$!
	bg_track "$HOLDER"
	read -r -t 30 line <"$BATS_TEST_TMPDIR/locked"
	[ "$line" = locked ]
}

release_lock() {
	kill "$HOLDER"
	iterfs_wait_exit "$HOLDER"
}

# The kernel shows the system call a blocked process sits in; 3 is close
# on x86_64, on aarch64 57.  Polled: nothing else tells when a writer has
# entered close().  `timeout` guards against a hang, it is not a measure.
wait_in_close() {
	local nr
	case "$(uname -m)" in
	x86_64) nr=3 ;;
	aarch64) nr=57 ;;
	*) skip "close(2) number unknown on $(uname -m)" ;;
	esac
	timeout 30 bash -c '
		nr=$1; shift
		for pid; do
			until read -r s _ <"/proc/$pid/syscall" && [ "$s" = "$nr" ]; do
				sleep 0.05
			done
		done' - "$nr" "$@"
}
