#!/usr/bin/env bats
# iterfs in the system's world: mount.fuse3, mount -t, /etc/fstab lines,
# options in any position, -o log=FILE, the systemd unit, meson install,
# the man pages against --help, and bash completion.

load helpers

setup() {
	D=$BATS_TEST_TMPDIR
	STORE=$D/hist.jsonl
	MNT=$D/mnt
	mkdir -p "$MNT"
	printf '%s\n' '{"iteration": 0, "code": "x = 0\n", "timestamp": "2025-10-11T15:46:30.605350"}' >"$STORE"
	SUM=$(sha256sum <"$STORE")
}

teardown() {
	iterfs_unmount_all
}

# The daemon's pid, for iterfs_unmount, when something else started it.
track() {
	IFS_PID=$(pgrep -n -f -- "iterfs.*$MNT") || true
	echo "$MNT $IFS_PID" >>"$BATS_TEST_TMPDIR/.mounts"
}

@test "an unknown option is refused by name, before or after the arguments" {
	run "$ITERFS" "$STORE" "$MNT" -o ro,nonempty
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "iterfs: unknown option 'nonempty'" ]
	run "$ITERFS" -o nonempty "$STORE" "$MNT"
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "iterfs: unknown option 'nonempty'" ]
	run "$ITERFS" "$STORE" "$MNT" --frobnicate
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "iterfs: unknown option '--frobnicate'" ]
	! mountpoint -q "$MNT"
}

@test "options after STORE and MOUNTPOINT work as before them" {
	"$ITERFS" "$STORE" "$MNT" -o ro 3>&-
	track
	mountpoint -q "$MNT"
	[ ! -e "$MNT/incoming" ]
	[ "$(cat "$MNT/latest/code.py")" = "x = 0" ]
	grep -E "^[^ ]+ $MNT fuse.iterfs ro[, ]" /proc/mounts
}

@test "every generic mount flag --help lists is accepted, defaults is ignored" {
	local flags
	flags=$("$ITERFS" --help | sed -n 's/^     \(rw, dev.*\),$/\1/p; s/^     \(sync, dirsync\) .*/\1/p' | tr -d ' ' | paste -sd, -)
	[[ "$flags" == rw,dev,*,dirsync ]]
	"$ITERFS" "$STORE" "$MNT" -o "$flags,defaults" 3>&-
	track
	mountpoint -q "$MNT"
	iterfs_unmount
}

@test "mount.fuse3 passes options after the arguments and mounts read-only" {
	PATH=$ITERFS_BUILD/fs:$PATH mount.fuse3 "iterfs#$STORE" "$MNT" -o ro,noauto,nofail 3>&-
	track
	grep -E "^$STORE $MNT fuse.iterfs ro," /proc/mounts
	[ "$(cat "$MNT/iterations/0/code.py")" = "x = 0" ]
	run touch "$MNT/incoming/x"
	[ "$status" -ne 0 ]
	iterfs_unmount
	[ "$(sha256sum <"$STORE")" = "$SUM" ]
}

@test "mount.fuse3 with an unknown option fails with iterfs's message" {
	PATH=$ITERFS_BUILD/fs:$PATH run mount.fuse3 "iterfs#$STORE" "$MNT" -o ro,nonempty
	[ "$status" -ne 0 ]
	[[ "$output" == *"iterfs: unknown option 'nonempty'"* ]]
	! mountpoint -q "$MNT"
}

# mount(8) runs helpers with its own PATH (/usr/local/sbin first): in a
# private mount namespace the build directory stands in for it there.
in_installed_ns() {
	mkdir -p "$D/bin"
	ln -sf "$ITERFS" "$D/bin/iterfs"
	unshare -m --propagation private sh -ec "mount --bind '$D/bin' /usr/local/sbin; $1" 3>&-
}

@test "an /etc/fstab line with type fuse.iterfs mounts with mount MOUNTPOINT" {
	command -v unshare >/dev/null || skip "unshare missing"
	printf '%s %s fuse.iterfs ro,noauto,log=%s 0 0\n' "$STORE" "$MNT" "$D/log" >"$D/fstab"
	run in_installed_ns "mount -T '$D/fstab' '$MNT'; grep ' $MNT ' /proc/self/mounts; cat '$MNT/latest/code.py'; echo; fusermount3 -u '$MNT'"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "$STORE $MNT fuse.iterfs ro,"* ]]
	[ "${lines[1]}" = "x = 0" ]
	grep -q "mounted at $MNT read-only" "$D/log"
}

@test "mount -t fuse.iterfs STORE MOUNTPOINT -o ro mounts read-only" {
	command -v unshare >/dev/null || skip "unshare missing"
	run in_installed_ns "mount -t fuse.iterfs '$STORE' '$MNT' -o ro; ls '$MNT'; fusermount3 -u '$MNT'"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'by-hash\niterations\nlatest')" ]
}

@test "-o log=FILE appends timestamped daemon messages, relative to the start directory" {
	cd "$D"
	"$ITERFS" -o log=iterfs.log "$STORE" "$MNT" 3>&-
	track
	echo '{"code": "y = 1"}' >"$D/r.json"
	cp "$D/r.json" "$MNT/incoming/r.json"
	echo '{"iteration": 0, "code": "taken"}' >"$D/again.json"
	run cp "$D/again.json" "$MNT/incoming/again.json"
	[ "$status" -ne 0 ]
	iterfs_unmount
	cat "$D/iterfs.log"
	local ts='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}[+-][0-9]{4} iterfs\[[0-9]+\]'
	grep -Eq "^$ts info: $STORE mounted at $MNT\$" "$D/iterfs.log"
	grep -Eq "^$ts (error|warning|info): .*again.json" "$D/iterfs.log"
	grep -Eq "^$ts info: $MNT unmounted\$" "$D/iterfs.log"
	# Every line carries the timestamp.
	! grep -Ev "^$ts " "$D/iterfs.log"
}

@test "a log file that cannot be opened is a usage error and mounts nothing" {
	run "$ITERFS" -o log="$D/no/such/dir/log" "$STORE" "$MNT"
	[ "$status" -eq 1 ]
	[ "$output" = "iterfs: log file $D/no/such/dir/log: No such file or directory" ]
	! mountpoint -q "$MNT"
}
