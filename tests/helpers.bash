# Shared by every .bats file: where the binaries are, and a mount helper.
#
# iterfs_mount STORE [ARGS...]   mounts STORE at $MNT (under $BATS_TEST_TMPDIR).
#   iterfs daemonises only once the mount is ready, so its return is the
#   readiness signal: no sleeps.  FD 3 (bats' own) is closed for the daemon,
#   otherwise bats would wait for it.  $IFS_PID is the daemon's pid.
# iterfs_unmount                 unmounts $MNT and waits for the daemon to exit.
# teardown calls iterfs_unmount_all, so a failing test never leaves a mount.

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
