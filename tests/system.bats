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
	[ "$(sha256sum <"$STORE")" = "$SUM" ]
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
	[ "$(sha256sum <"$STORE")" = "$SUM" ]
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
	[ "$output" = "$(printf 'by-hash\nby-metric\nfailed\niterations\nlatest')" ]
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
	[ "$(sha256sum <"$STORE")" = "$SUM" ]
}

@test "meson install puts the three tools, their man pages, the unit and completions in place" {
	local src=$BATS_TEST_DIRNAME/..
	DESTDIR=$D/root meson install -C "$ITERFS_BUILD" --quiet
	local prefix
	prefix=$(meson introspect "$ITERFS_BUILD" --buildoptions |
		python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
	local root=$D/root$prefix t
	for t in iterfs iterfs-commit iterfs-check; do
		[ -x "$root/bin/$t" ]
		[ -f "$root/share/man/man1/$t.1" ]
		[ -f "$root/share/bash-completion/completions/$t" ]
		"$root/bin/$t" --version
	done
	grep -q "^ExecStart=$prefix/bin/iterfs " "$root/lib/systemd/system/iterfs@.service"
	# The installed daemon mounts.
	ITERFS=$root/bin/iterfs iterfs_mount "$STORE" -o ro
	[ "$(cat "$MNT/latest/code.py")" = "x = 0" ]
}

@test "each man page renders with man -l and groff -ww without a warning" {
	local t
	for t in iterfs iterfs-commit iterfs-check; do
		run groff -man -ww -Tutf8 -z "$ITERFS_BUILD/doc/$t.1"
		[ "$status" -eq 0 ]
		[ -z "$output" ]
		run sh -c "MANWIDTH=80 man --warnings=w -l '$ITERFS_BUILD/doc/$t.1' 2>&1 >/dev/null"
		[ "$status" -eq 0 ]
		[ -z "$output" ]
		MANWIDTH=80 man -l "$ITERFS_BUILD/doc/$t.1" | grep -q "EXIT STATUS"
	done
	MANWIDTH=80 man -l "$ITERFS_BUILD/doc/iterfs.1" | grep -q "STORE.lock"
	MANWIDTH=80 man -l "$ITERFS_BUILD/doc/iterfs.1" | grep -q "STORE.rejected/"
	MANWIDTH=80 man -l "$ITERFS_BUILD/doc/iterfs.1" | grep -q "STORE.lost/"
	MANWIDTH=80 man -l "$ITERFS_BUILD/doc/iterfs.1" | grep -q "fuse.iterfs"
}

@test "--help and the man page list the same options, for each tool" {
	local t bin
	for bin in fs/iterfs core/iterfs-commit core/iterfs-check; do
		t=$(basename "$bin")
		"$ITERFS_BUILD/$bin" --help >"$D/$t.help"
		python3 "$BATS_TEST_DIRNAME/optlist.py" help "$D/$t.help" >"$D/$t.h"
		python3 "$BATS_TEST_DIRNAME/optlist.py" man "$ITERFS_BUILD/doc/$t.1" >"$D/$t.m"
		[ "$(wc -l <"$D/$t.h")" -ge 4 ]
		diff -u "$D/$t.h" "$D/$t.m"
	done
	# The comparison sees a drift.
	grep -v '^\.B \\-s$' "$ITERFS_BUILD/doc/iterfs.1" >"$D/drift.1"
	python3 "$BATS_TEST_DIRNAME/optlist.py" man "$D/drift.1" >"$D/drift.m"
	! diff -q "$D/iterfs.h" "$D/drift.m"
}

# complete LINE: what bash completion offers for LINE (cursor at its end).
complete_line() {
	bash -c '. /usr/share/bash-completion/bash_completion
		. "$1"
		read -ra COMP_WORDS <<<"$2"
		[[ $2 == *" " ]] && COMP_WORDS+=("")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE=$2 COMP_POINT=${#2}
		fn=$(complete -p "${COMP_WORDS[0]}" | sed "s/.*-F \([^ ]*\) .*/\1/")
		"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$BATS_TEST_DIRNAME/../contrib/completion/iterfs" "$1"
}

@test "bash completion offers exactly the options --help documents" {
	[ -r /usr/share/bash-completion/bash_completion ] || skip "bash-completion missing"
	local t bin
	for bin in fs/iterfs core/iterfs-commit core/iterfs-check; do
		t=$(basename "$bin")
		"$ITERFS_BUILD/$bin" --help >"$D/$t.help"
		python3 "$BATS_TEST_DIRNAME/optlist.py" help "$D/$t.help" | grep '^-' >"$D/$t.dash"
		complete_line "$t -" | sort >"$D/$t.comp"
		diff -u "$D/$t.dash" "$D/$t.comp"
	done
	python3 "$BATS_TEST_DIRNAME/optlist.py" help "$D/iterfs.help" | grep -v '^-' >"$D/mount.opts"
	complete_line "iterfs -o " | sort >"$D/mount.comp"
	diff -u "$D/mount.opts" "$D/mount.comp"
	[ "$(complete_line "iterfs -o ro,max_r")" = "ro,max_record=" ]
	[ "$(complete_line "iterfs-check --j")" = "--json" ]
}

# The unit's commands with the build directory for @BINDIR@ and %i = NAME.
unit() {
	sed "s|@BINDIR@|$ITERFS_BUILD/fs|" "$BATS_TEST_DIRNAME/../contrib/systemd/iterfs@.service.in"
}

@test "the systemd unit template passes systemd-analyze verify" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze missing"
	mkdir -p "$D/unit" "$D/man/man1"
	unit >"$D/unit/iterfs@.service"
	cp "$ITERFS_BUILD/doc/iterfs.1" "$D/man/man1/"
	run env MANPATH="$D/man" systemd-analyze verify "$D/unit/iterfs@loop1.service"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "the unit's start mounts once ready and its stop unmounts cleanly" {
	local start stop
	start=$(unit | sed -n 's/^ExecStart=//p')
	stop=$(unit | sed -n 's/^ExecStop=//p')
	[[ "$start" == "$ITERFS_BUILD/fs/iterfs "* ]]
	# Its directories, where systemd would create them, are under $D here.
	start=${start//\/var\/log\/iterfs\/%i.log/$D/loop1.log}
	start=${start//\/var\/lib\/iterfs\/%i.jsonl/$STORE}
	start=${start//\/run\/iterfs\/%i/$MNT}
	stop=${stop//\/run\/iterfs\/%i/$MNT}
	eval "$start" 3>&-
	track
	# Type=forking: active when ExecStart returns, and the mount is ready.
	mountpoint -q "$MNT"
	echo '{"code": "z = 2"}' >"$D/r.json"
	cp "$D/r.json" "$MNT/incoming/"
	eval "$stop"
	iterfs_wait_exit "$IFS_PID"
	! mountpoint -q "$MNT"
	grep -q "$MNT unmounted" "$D/loop1.log"
	[ "$(wc -l <"$STORE")" -eq 2 ]
}
