#!/usr/bin/env bats
# The mount as users and their tools see it: ls, cat, grep, diff, find, du,
# stat, rsync, tar against the tree tests/expect.py computes independently
# from the same JSONL; the command line; changes made by other processes.

load helpers

EXPECT="$BATS_TEST_DIRNAME/expect.py"
GEN="$BATS_TEST_DIRNAME/../contrib/gen-history.py"

teardown() {
	iterfs_unmount_all
}

# Every real history present, or skip (a failure under CI).
real_histories() {
	REALS=()
	local f
	for f in "$REAL"/*.jsonl; do
		[ -r "$f" ] && REALS+=("$f")
	done
	if [ "${#REALS[@]}" -eq 0 ]; then
		[ -z "${CI:-}" ] || { echo "no real histories in $REAL under CI" >&2; return 1; }
		skip "no real histories in '$REAL'"
	fi
}

# The mount at $MNT equals the expected tree of STORE: contents and symlink
# targets (diff -r), then type, mode, size, mtime and target of every entry.
assert_tree() {
	local store=$1 exp=$BATS_TEST_TMPDIR/expected
	shift
	rm -rf "$exp"
	python3 "$EXPECT" tree "$store" "$exp" "$@"
	diff -r --no-dereference "$exp" "$MNT"
	diff <(python3 "$EXPECT" manifest "$exp") <(python3 "$EXPECT" manifest "$MNT")
}

gen() {
	python3 "$GEN" "$@"
}

@test "every real history mounts as exactly the tree python computes from it" {
	real_histories
	local f
	for f in "${REALS[@]}"; do
		echo "# $f"
		iterfs_mount "$f"
		assert_tree "$f"
		iterfs_unmount
	done
}

@test "generated histories in both dialects mount as python computes them" {
	local d
	for d in iteration iteration_num; do
		gen "$BATS_TEST_TMPDIR/$d.jsonl" --records 200 --dialect "$d" --seed 7 --code-bytes 600
		iterfs_mount "$BATS_TEST_TMPDIR/$d.jsonl"
		assert_tree "$BATS_TEST_TMPDIR/$d.jsonl"
		iterfs_unmount
	done
}

@test "a history with code_hash and late iteration keys mounts as python computes it" {
	gen "$BATS_TEST_TMPDIR/h.jsonl" --records 120 --dialect iteration_num --seed 11 --code-bytes 400 --code-hash --key-late --start 5
	iterfs_mount "$BATS_TEST_TMPDIR/h.jsonl"
	assert_tree "$BATS_TEST_TMPDIR/h.jsonl"
}

@test "ls lists one directory per iteration number and cat shows the exact code" {
	real_histories
	local f want got n
	for f in "${REALS[@]}"; do
		iterfs_mount "$f"
		want=$(python3 - "$f" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    n = r.get("iteration", r.get("iteration_num")) if isinstance(r, dict) else None
    if isinstance(n, int) and not isinstance(n, bool) and n >= 0:
        seen.add(n)
print(" ".join(str(n) for n in sorted(seen)))
PY
)
		got=$(ls "$MNT/iterations" | sort -n | tr '\n' ' ' | sed 's/ $//')
		[ "$got" = "$want" ]
		# The code of every iteration, as plain json gives it.
		rm -rf "$BATS_TEST_TMPDIR/code"
		mkdir "$BATS_TEST_TMPDIR/code"
		python3 - "$f" "$BATS_TEST_TMPDIR/code" <<'PY'
import json, os, sys
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    n = r.get("iteration", r.get("iteration_num"))
    c = r.get("code", r.get("strategy_code"))
    path = os.path.join(sys.argv[2], str(n))
    if isinstance(c, str):
        with open(path, "wb") as out:
            out.write(c.encode())
    elif os.path.exists(path):
        os.unlink(path)
PY
		for n in $got; do
			if [ -e "$BATS_TEST_TMPDIR/code/$n" ]; then
				cmp <(cat "$MNT/iterations/$n/code.py") "$BATS_TEST_TMPDIR/code/$n"
			else
				[ ! -e "$MNT/iterations/$n/code.py" ]
			fi
		done
		iterfs_unmount
	done
}

@test "grep -r finds exactly the files that contain the text" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 150 --seed 3 --code-bytes 500
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	python3 "$EXPECT" tree "$BATS_TEST_TMPDIR/g.jsonl" "$BATS_TEST_TMPDIR/exp"
	local pat
	for pat in 'rolling(' '收盤價' 'KeyError' 'NaN' 'sharpe'; do
		diff <(cd "$MNT" && grep -rlF -- "$pat" iterations by-hash | sort) \
		     <(cd "$BATS_TEST_TMPDIR/exp" && grep -rlF -- "$pat" iterations by-hash | sort)
		[ -n "$(cd "$MNT" && grep -rlF -- "$pat" iterations | head -1)" ]
	done
	# Counting matches reads every byte of every file.
	[ "$(grep -r -c rolling "$MNT/iterations" | sort)" = \
	  "$(cd "$BATS_TEST_TMPDIR/exp" && grep -r -c rolling iterations | sed "s|^|$MNT/|" | sort)" ]
}

@test "diff between two iterations shows the same change as between the expected files" {
	real_histories
	iterfs_mount "${REALS[1]:-${REALS[0]}}"
	python3 "$EXPECT" tree "${REALS[1]:-${REALS[0]}}" "$BATS_TEST_TMPDIR/exp"
	local a b
	a=$(ls "$MNT/iterations" | sort -n | sed -n 2p)
	b=$(ls "$MNT/iterations" | sort -n | sed -n 3p)
	[ -n "$a" ] && [ -n "$b" ]
	run diff "$MNT/iterations/$a/record.json" "$MNT/iterations/$b/record.json"
	[ "$status" -eq 1 ]
	local got=$output
	run diff "$BATS_TEST_TMPDIR/exp/iterations/$a/record.json" "$BATS_TEST_TMPDIR/exp/iterations/$b/record.json"
	[ "$status" -eq 1 ]
	[ "$got" = "$output" ]
	run diff -r "$MNT/iterations/$a" "$MNT/iterations/$a"
	[ "$status" -eq 0 ]
}

@test "find, du and stat see sizes, blocks and link counts that agree" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 80 --seed 5 --code-bytes 3000
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	python3 "$EXPECT" tree "$BATS_TEST_TMPDIR/g.jsonl" "$BATS_TEST_TMPDIR/exp"
	# Same files, same sizes.
	diff <(cd "$MNT" && find . -type f -printf '%P %s\n' | sort) \
	     <(cd "$BATS_TEST_TMPDIR/exp" && find . -type f -printf '%P %s\n' | sort)
	# st_blocks is the size in 512-byte units, rounded up; files have one link.
	run bash -c "find '$MNT' -type f -printf '%s %b %n\n' | awk '\$2 != int((\$1 + 511) / 512) || \$3 != 1'"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	# du adds those blocks up; directories and symlinks hold none.
	local blocks
	blocks=$(find "$MNT" -type f -printf '%b\n' | awk '{ s += $1 } END { print s }')
	[ "$blocks" -gt 0 ]
	[ "$(du -s --block-size=512 "$MNT" | cut -f1)" -eq "$blocks" ]
	[ -z "$(find "$MNT" ! -type f -printf '%b\n' | grep -vx 0)" ]
	[ "$(du -sb --apparent-size "$MNT/iterations" | cut -f1)" -eq \
	  "$(find "$MNT/iterations" -printf '%s\n' | awk '{ s += $1 } END { print s }')" ]
	# iterations/ links to itself, its parent and one per iteration.
	[ "$(stat -c %h "$MNT/iterations")" -eq $((2 + 80)) ]
	[ "$(stat -c %h "$MNT/iterations/7")" -eq 2 ]
	[ "$(find "$MNT/iterations" -mindepth 1 -maxdepth 1 -type d | wc -l)" -eq 80 ]
}

@test "stat shows the record timestamp as the mtime of an iteration and its files" {
	real_histories
	local f ns
	for f in "${REALS[@]}"; do
		iterfs_mount "$f"
		ns=$(ls "$MNT/iterations" | sort -n)
		diff <(python3 "$EXPECT" mtime "$f" $ns) <(cd "$MNT/iterations" && stat -c %Y $ns)
		diff <(python3 "$EXPECT" mtime "$f" $ns) <(cd "$MNT/iterations" && for n in $ns; do stat -c %Y "$n/record.json"; done)
		python3 "$EXPECT" mtime "$f" $ns >>"$BATS_TEST_TMPDIR/all"
		iterfs_unmount
	done
	# Some history has timestamps: the comparison was not all zeros.
	grep -qvx 0 "$BATS_TEST_TMPDIR/all"
}

@test "files are 0444, directories 0555 and incoming/ 0755, all owned by the mounting user" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 10 --seed 1 --code-bytes 200
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	[ "$(stat -c %a "$MNT/iterations/3/code.py")" = 444 ]
	[ "$(stat -c %a "$MNT/iterations/3")" = 555 ]
	[ "$(stat -c %a "$MNT/iterations")" = 555 ]
	[ "$(stat -c %a "$MNT")" = 555 ]
	[ "$(stat -c %a "$MNT/incoming")" = 755 ]
	[ "$(stat -c %u:%g "$MNT/iterations/3/code.py")" = "$(id -u):$(id -g)" ]
	[ "$(stat -c %u:%g "$MNT/incoming")" = "$(id -u):$(id -g)" ]
}

@test "latest points at the highest iteration and by-hash links lead back to iterations" {
	real_histories
	local f top h n
	for f in "${REALS[@]}"; do
		iterfs_mount "$f"
		top=$(python3 "$EXPECT" latest "$f")
		[ "$(readlink "$MNT/latest")" = "iterations/$top" ]
		cmp "$MNT/latest/record.json" "$MNT/iterations/$top/record.json"
		for h in $(ls "$MNT/by-hash" | head -5); do
			[ "$(printf '%s' "$(cat "$MNT/by-hash/$h/code.py")" | sha256sum | cut -c1-64)" = "$h" ] ||
				[ "$(sha256sum <"$MNT/by-hash/$h/code.py" | cut -c1-64)" = "$h" ]
			for n in $(ls "$MNT/by-hash/$h" | grep -v code.py); do
				[ "$(readlink "$MNT/by-hash/$h/$n")" = "../../iterations/$n" ]
				cmp "$MNT/by-hash/$h/$n/code.py" "$MNT/by-hash/$h/code.py"
			done
		done
		iterfs_unmount
	done
}

@test "inode numbers are the same after a remount" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 60 --seed 2 --code-bytes 300
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	find "$MNT" -printf '%i %P\n' | sort -k2 >"$BATS_TEST_TMPDIR/before"
	ls -i "$MNT/iterations/5/code.py" >"$BATS_TEST_TMPDIR/ls-before"
	iterfs_unmount
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	find "$MNT" -printf '%i %P\n' | sort -k2 >"$BATS_TEST_TMPDIR/after"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/before")" -gt 300 ]
	diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
	diff "$BATS_TEST_TMPDIR/ls-before" <(ls -i "$MNT/iterations/5/code.py")
	# And no two entries share one.
	[ -z "$(cut -d' ' -f1 "$BATS_TEST_TMPDIR/after" | sort | uniq -d)" ]
}

@test "a second rsync -a of an unchanged mount copies nothing" {
	real_histories
	iterfs_mount "${REALS[0]}"
	rsync -a "$MNT/" "$BATS_TEST_TMPDIR/copy/"
	run rsync -a --itemize-changes "$MNT/" "$BATS_TEST_TMPDIR/copy/"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	run rsync -a --stats "$MNT/" "$BATS_TEST_TMPDIR/copy/"
	[[ "$output" == *"Number of regular files transferred: 0"* ]]
	# The copy is the tree itself.
	diff -r --no-dereference "$MNT" "$BATS_TEST_TMPDIR/copy"
}

@test "tar of the mount twice gives the same bytes, across a remount too" {
	real_histories
	iterfs_mount "${REALS[0]}"
	local a b c
	a=$(tar --sort=name -cf - -C "$MNT" . | sha256sum)
	b=$(tar --sort=name -cf - -C "$MNT" . | sha256sum)
	[ "$a" = "$b" ]
	iterfs_unmount
	iterfs_mount "${REALS[0]}"
	c=$(tar --sort=name -cf - -C "$MNT" . | sha256sum)
	[ "$a" = "$c" ]
	# tar itself finds nothing odd ("file changed as we read it" and such).
	run tar --sort=name -cf /dev/null -C "$MNT" .
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "reading the whole mount leaves the store byte for byte unchanged" {
	real_histories
	cp "${REALS[0]}" "$BATS_TEST_TMPDIR/s.jsonl"
	local before
	before=$(sha256sum <"$BATS_TEST_TMPDIR/s.jsonl")
	iterfs_mount "$BATS_TEST_TMPDIR/s.jsonl"
	tar -cf /dev/null -C "$MNT" .
	iterfs_unmount
	[ "$(sha256sum <"$BATS_TEST_TMPDIR/s.jsonl")" = "$before" ]
}

@test "a record committed by another process shows in the mount within a second" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 30 --seed 4 --code-bytes 200
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	[ "$(readlink "$MNT/latest")" = iterations/29 ]
	ls "$MNT/iterations" >/dev/null
	stat "$MNT/iterations" >/dev/null
	# Complete for the generated history: every field its records carry.
	printf '{"code": "print(\\"from outside\\")\\n", "metrics": {"sharpe": 2.5}, "generation_method": "llm", "strategy_id": null, "strategy_generation": null, "execution_result": {"success": true}, "classification_level": "LEVEL_1", "champion_updated": false, "feedback_used": "none"}\n' |
		"$ITERFS_COMMIT" "$BATS_TEST_TMPDIR/g.jsonl"
	# Bounded wait on the condition itself, no sleep.
	timeout 2 bash -c "until [ -e '$MNT/iterations/30' ]; do :; done"
	[ "$(readlink "$MNT/latest")" = iterations/30 ]
	[ "$(cat "$MNT/latest/code.py")" = 'print("from outside")' ]
	[ "$(ls "$MNT/iterations" | wc -l)" -eq 31 ]
	timeout 2 bash -c "until [ \$(stat -c %h '$MNT/iterations') -eq 33 ]; do :; done"
	h=$(printf 'print("from outside")\n' | sha256sum | cut -c1-64)
	[ "$(readlink "$MNT/by-hash/$h/30")" = ../../iterations/30 ]
}

@test "a store rewritten by temp and rename, as the Python loop saves it, is re-read" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 20 --seed 6 --code-bytes 200
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	cat "$MNT/iterations/19/code.py" >/dev/null
	[ ! -e "$MNT/iterations/20" ]
	gen "$BATS_TEST_TMPDIR/more.jsonl" --records 5 --start 20 --seed 9 --code-bytes 200
	cat "$BATS_TEST_TMPDIR/g.jsonl" "$BATS_TEST_TMPDIR/more.jsonl" >"$BATS_TEST_TMPDIR/.g.tmp"
	mv "$BATS_TEST_TMPDIR/.g.tmp" "$BATS_TEST_TMPDIR/g.jsonl"
	timeout 2 bash -c "until [ -e '$MNT/iterations/24' ]; do :; done"
	[ "$(readlink "$MNT/latest")" = iterations/24 ]
	assert_tree "$BATS_TEST_TMPDIR/g.jsonl"
}

@test "a store replaced by a different history drops the iterations that are gone" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 20 --seed 6 --code-bytes 200
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	cat "$MNT/iterations/15/code.py" "$MNT/iterations/3/record.json" >/dev/null
	ls -l "$MNT/iterations/15" >/dev/null
	cp "$BATS_TEST_TMPDIR/g.jsonl" "$BATS_TEST_TMPDIR/old.jsonl"
	gen "$BATS_TEST_TMPDIR/other.jsonl" --records 10 --seed 99 --code-bytes 250
	mv "$BATS_TEST_TMPDIR/other.jsonl" "$BATS_TEST_TMPDIR/g.jsonl"
	timeout 2 bash -c "until [ ! -e '$MNT/iterations/15' ]; do :; done"
	[ "$(readlink "$MNT/latest")" = iterations/9 ]
	# Every number the mount showed now holds another record or none: all
	# 20 original lines are kept, in one file under lost+found/.
	timeout 2 bash -c "until [ -d '$MNT/lost+found' ]; do :; done"
	[ "$(ls "$MNT/lost+found" | wc -l)" -eq 1 ]
	diff <(sort "$BATS_TEST_TMPDIR/old.jsonl") <(sort "$MNT"/lost+found/*)
	# The rest is the new history's tree, byte for byte; expect.py shows
	# STORE.lost/ as lost+found/.
	assert_tree "$BATS_TEST_TMPDIR/g.jsonl"
}

@test "a missing store mounts as an empty history without latest" {
	iterfs_mount "$BATS_TEST_TMPDIR/none.jsonl"
	[ -d "$MNT/iterations" ]
	[ -d "$MNT/by-hash" ]
	[ -d "$MNT/incoming" ]
	[ ! -e "$MNT/latest" ]
	[ ! -L "$MNT/latest" ]
	[ -z "$(ls -A "$MNT/iterations")" ]
	[ -z "$(ls -A "$MNT/by-hash")" ]
	[ "$(ls "$MNT")" = "$(printf 'by-hash\nby-metric\nfailed\nincoming\niterations')" ]
	# Mounting creates nothing.
	[ ! -e "$BATS_TEST_TMPDIR/none.jsonl" ]
}

@test "the tree is read-only outside incoming/ and says so with EROFS" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 5 --seed 1 --code-bytes 100
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	run bash -c "echo x >'$MNT/iterations/1/code.py'"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Read-only file system"* ]]
	run bash -c "echo x >'$MNT/iterations/new.txt'"
	[[ "$output" == *"Read-only file system"* ]]
	run mkdir "$MNT/iterations/99"
	[[ "$output" == *"Read-only file system"* ]]
	run rm "$MNT/iterations/1/code.py"
	[[ "$output" == *"Read-only file system"* ]]
	run mv "$MNT/iterations/1" "$MNT/iterations/9"
	[[ "$output" == *"Read-only file system"* ]]
	run touch "$MNT/iterations/1/code.py"
	[ "$status" -ne 0 ]
	run ln -s x "$MNT/iterations/l"
	[[ "$output" == *"Read-only file system"* ]]
	run python3 -c "import os; os.access('$MNT/iterations/1/code.py', os.W_OK) and exit(1)"
	[ "$status" -eq 0 ]
	[ "$(ls "$MNT/iterations" | wc -l)" -eq 5 ]
	assert_tree "$BATS_TEST_TMPDIR/g.jsonl"
}

@test "-o ro hides incoming/ and the kernel refuses every write" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 5 --seed 1 --code-bytes 100
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl" -o ro
	[ ! -e "$MNT/incoming" ]
	[ "$(ls "$MNT")" = "$(printf 'by-hash\nby-metric\nfailed\niterations\nlatest')" ]
	run bash -c "echo '{}' >'$MNT/incoming/x.json'"
	[ "$status" -ne 0 ]
	grep -q " $MNT fuse.iterfs ro," /proc/mounts
	assert_tree "$BATS_TEST_TMPDIR/g.jsonl" --ro
}

@test "the mount table names the store and the filesystem type" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 3 --seed 1 --code-bytes 100
	cd "$BATS_TEST_TMPDIR"
	iterfs_mount g.jsonl
	[ "$(findmnt -no SOURCE "$MNT")" = "$BATS_TEST_TMPDIR/g.jsonl" ]
	[ "$(findmnt -no FSTYPE "$MNT")" = fuse.iterfs ]
}

@test "allow_other always comes with default_permissions" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 3 --seed 1 --code-bytes 100
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl" -o allow_other
	local opts
	opts=$(findmnt -no OPTIONS "$MNT")
	[[ "$opts" == *allow_other* ]]
	[[ "$opts" == *default_permissions* ]]
	assert_tree "$BATS_TEST_TMPDIR/g.jsonl"
}

@test "without allow_other other users are kept out" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 3 --seed 1 --code-bytes 100
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	[[ "$(findmnt -no OPTIONS "$MNT")" != *allow_other* ]]
	[ "$(id -u)" -eq 0 ] || skip "needs root to act as another user"
	command -v setpriv >/dev/null || skip "setpriv missing"
	run setpriv --reuid=65534 --regid=65534 --clear-groups ls "$MNT"
	[ "$status" -ne 0 ]
}

@test "the same store can be mounted twice at once" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 12 --seed 8 --code-bytes 100
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	local first=$MNT first_pid=$IFS_PID
	MNT=$BATS_TEST_TMPDIR/mnt2
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	[ "$IFS_PID" != "$first_pid" ]
	diff -r --no-dereference "$first" "$MNT"
	iterfs_unmount "$MNT" "$IFS_PID"
	[ -e "$first/iterations/11/code.py" ]
}

@test "fusermount3 -u unmounts and the daemon exits" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 3 --seed 1 --code-bytes 100
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	[ -n "$IFS_PID" ]
	fusermount3 -u "$MNT"
	iterfs_wait_exit "$IFS_PID"
	! kill -0 "$IFS_PID" 2>/dev/null
	! mountpoint -q "$MNT"
}

@test "SIGTERM and SIGINT unmount cleanly" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 3 --seed 1 --code-bytes 100
	local sig
	for sig in TERM INT; do
		iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
		ls "$MNT/iterations" >/dev/null
		kill -"$sig" "$IFS_PID"
		iterfs_wait_exit "$IFS_PID"
		! mountpoint -q "$MNT"
		! grep -q " $MNT " /proc/mounts
	done
}

@test "in the foreground iterfs logs to stderr and exits 0 when unmounted" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 3 --seed 1 --code-bytes 100
	printf 'not json\n' >>"$BATS_TEST_TMPDIR/g.jsonl"
	MNT=$BATS_TEST_TMPDIR/mnt
	mkdir -p "$MNT"
	"$ITERFS" -f "$BATS_TEST_TMPDIR/g.jsonl" "$MNT" 3>&- 2>"$BATS_TEST_TMPDIR/log" &
	local pid=$!
	echo "$MNT $pid" >>"$BATS_TEST_TMPDIR/.mounts"
	timeout 10 bash -c "until mountpoint -q '$MNT'; do :; done"
	[ "$(ls "$MNT/iterations" | wc -l)" -eq 3 ]
	# A background job of a script ignores SIGINT, and libfuse keeps an
	# ignored signal ignored: TERM is the one to send here.
	kill -TERM "$pid"
	iterfs_wait_exit "$pid"
	local rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ]
	! mountpoint -q "$MNT"
	grep -q "line.*not shown.*line 4" "$BATS_TEST_TMPDIR/log"
	grep -q "mounted at $MNT" "$BATS_TEST_TMPDIR/log"
}

@test "--help documents the tree, every option and the exit codes" {
	run "$ITERFS" --help
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "Usage: iterfs [options] STORE MOUNTPOINT" ]]
	local word
	for word in iterations/ latest by-hash/ incoming/ code.py metrics.json \
		    feedback.txt error.txt record.json ' -f ' ' -d ' ' -s ' ' -o ' \
		    ' ro ' max_record= allow_other default_permissions \
		    EINVAL EEXIST EFBIG 'EXIT STATUS' fusermount3 EXAMPLES; do
		[[ "$output" == *"$word"* ]] || { echo "missing: $word"; false; }
	done
	[[ "$output" == *"1  usage"* ]]
	[[ "$output" == *"2  STORE"* ]]
	[[ "$output" == *"3  mounting failed"* ]]
	run "$ITERFS" -h
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == Usage:* ]]
}

@test "--version names iterfs, libfuse, cJSON and OpenSSL with their versions" {
	run "$ITERFS" --version
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" =~ ^iterfs\ [0-9]+\.[0-9]+ ]]
	[[ "$output" == *"libfuse $(pkg-config --modversion fuse3)"* ]]
	[[ "$output" == *"cJSON $(pkg-config --modversion libcjson)"* ]]
	[[ "$output" == *"OpenSSL 3."* ]]
}

@test "usage errors exit 1 with a one-line reason and mount nothing" {
	mkdir -p "$BATS_TEST_TMPDIR/m"
	run "$ITERFS"
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "iterfs: missing STORE and MOUNTPOINT" ]
	run "$ITERFS" "$BATS_TEST_TMPDIR/s.jsonl"
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "iterfs: missing MOUNTPOINT" ]
	run "$ITERFS" a b c
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "iterfs: too many arguments" ]
	run "$ITERFS" -o no_such_option "$BATS_TEST_TMPDIR/s.jsonl" "$BATS_TEST_TMPDIR/m"
	[ "$status" -eq 1 ]
	[[ "${lines[0]}" == "iterfs: "*no_such_option* ]]
	run "$ITERFS" --no-such-flag "$BATS_TEST_TMPDIR/s.jsonl" "$BATS_TEST_TMPDIR/m"
	[ "$status" -eq 1 ]
	run "$ITERFS" -o max_record=lots "$BATS_TEST_TMPDIR/s.jsonl" "$BATS_TEST_TMPDIR/m"
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "iterfs: invalid max_record 'lots' (bytes, optional k/M/G)" ]
	! mountpoint -q "$BATS_TEST_TMPDIR/m"
	[ ! -e "$BATS_TEST_TMPDIR/s.jsonl" ]
}

@test "a store that cannot be read exits 2 naming the store" {
	mkdir -p "$BATS_TEST_TMPDIR/m"
	echo '{"iteration": 0}' >"$BATS_TEST_TMPDIR/file"
	run "$ITERFS" "$BATS_TEST_TMPDIR/nodir/s.jsonl" "$BATS_TEST_TMPDIR/m"
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "${lines[0]}" == "iterfs: $BATS_TEST_TMPDIR/nodir/s.jsonl: "*"No such file or directory" ]]
	run "$ITERFS" "$BATS_TEST_TMPDIR/file/s.jsonl" "$BATS_TEST_TMPDIR/m"
	[ "$status" -eq 2 ]
	[[ "${lines[0]}" == "iterfs: $BATS_TEST_TMPDIR/file/s.jsonl: "*"Not a directory" ]]
	run "$ITERFS" /dev/null "$BATS_TEST_TMPDIR/m"
	[ "$status" -eq 2 ]
	[ "${lines[0]}" = "iterfs: /dev/null: not a regular file or directory" ]
	! mountpoint -q "$BATS_TEST_TMPDIR/m"
}

@test "an unreadable store exits 2 for a user without permission" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to act as another user"
	command -v setpriv >/dev/null || skip "setpriv missing"
	# bats' own directories are private: the other user needs a public one.
	local d
	d=$(mktemp -d /tmp/iterfs-perm.XXXXXX)
	mkdir "$d/m"
	echo '{"iteration": 0}' >"$d/s.jsonl"
	chmod 000 "$d/s.jsonl"
	chmod 755 "$d" "$d/m"
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$ITERFS" "$d/s.jsonl" "$d/m"
	rm -rf "$d"
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	[ "${lines[0]}" = "iterfs: $d/s.jsonl: Permission denied" ]
}

@test "a missing or unusable mountpoint exits 3 naming it" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 3 --seed 1 --code-bytes 100
	run "$ITERFS" "$BATS_TEST_TMPDIR/g.jsonl" "$BATS_TEST_TMPDIR/nomnt"
	[ "$status" -eq 3 ]
	[ "${lines[0]}" = "iterfs: $BATS_TEST_TMPDIR/nomnt: No such file or directory" ]
	run "$ITERFS" "$BATS_TEST_TMPDIR/g.jsonl" "$BATS_TEST_TMPDIR/g.jsonl"
	[ "$status" -eq 3 ]
	[ "${lines[0]}" = "iterfs: $BATS_TEST_TMPDIR/g.jsonl: Not a directory" ]
}

@test "mounting again on a dead mount names it and how to unmount it" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 3 --seed 1 --code-bytes 100
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	kill -KILL "$IFS_PID"
	iterfs_wait_exit "$IFS_PID"
	run stat "$MNT"
	[[ "$output" == *"Transport endpoint is not connected"* ]]
	run "$ITERFS" "$BATS_TEST_TMPDIR/g.jsonl" "$MNT"
	fusermount3 -u "$MNT"
	[ "$status" -eq 3 ]
	[ "${lines[0]}" = "iterfs: $MNT: a dead mount is still there (Transport endpoint is not connected); unmount it with fusermount3 -u $MNT" ]
	# Once unmounted, the same command mounts.
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	[ "$(ls "$MNT/iterations" | wc -l)" -eq 3 ]
}

@test "readdir and readdirplus survive directories larger than one reply" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 3000 --seed 12 --code-bytes 60
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	[ "$(ls "$MNT/iterations" | wc -l)" -eq 3000 ]
	[ "$(ls -l "$MNT/iterations" | grep -c '^d')" -eq 3000 ]
	[ "$(ls -f "$MNT/iterations" | sort -n | uniq | wc -l)" -eq 3002 ]
	[ "$(ls "$MNT/by-hash" | wc -l)" -eq "$(python3 "$EXPECT" tree "$BATS_TEST_TMPDIR/g.jsonl" "$BATS_TEST_TMPDIR/exp" && ls "$BATS_TEST_TMPDIR/exp/by-hash" | wc -l)" ]
	diff <(ls "$MNT/by-hash") <(ls "$BATS_TEST_TMPDIR/exp/by-hash")
}

@test "eight readers at once all read the exact bytes" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 400 --seed 13 --code-bytes 2000
	iterfs_mount "$BATS_TEST_TMPDIR/g.jsonl"
	python3 "$EXPECT" tree "$BATS_TEST_TMPDIR/g.jsonl" "$BATS_TEST_TMPDIR/exp"
	local want i
	want=$(cd "$BATS_TEST_TMPDIR/exp" && cat iterations/*/record.json iterations/*/code.py | sha256sum)
	for i in 1 2 3 4 5 6 7 8; do
		(cd "$MNT" && cat iterations/*/record.json iterations/*/code.py | sha256sum >"$BATS_TEST_TMPDIR/r$i") &
	done
	wait
	for i in 1 2 3 4 5 6 7 8; do
		[ "$(cat "$BATS_TEST_TMPDIR/r$i")" = "$want" ]
	done
}

@test "lines that are no record, even ones that start like one, are skipped and reported" {
	printf '%s\n' '{"iteration": 0, "code": "a"}' '{"iteration": 1, "code": "b" oops}' \
		'{"iteration": 2, "code": "c"}' 'not json' >"$BATS_TEST_TMPDIR/bad.jsonl"
	printf '%s' '{"iteration": 3, "code": "torn' >>"$BATS_TEST_TMPDIR/bad.jsonl"
	run "$ITERFS" -f -o ro "$BATS_TEST_TMPDIR/bad.jsonl" "$BATS_TEST_TMPDIR/nomnt"
	[ "$status" -eq 3 ]
	[[ "${lines[0]}" == *"3 lines not shown"*"(line 2, 4, 5)" ]]
	iterfs_mount "$BATS_TEST_TMPDIR/bad.jsonl"
	[ "$(ls "$MNT/iterations" | tr '\n' ' ')" = "0 2 " ]
	[ "$(readlink "$MNT/latest")" = iterations/2 ]
	assert_tree "$BATS_TEST_TMPDIR/bad.jsonl"
	# Completing the torn line makes it a record.
	printf '"}\n' >>"$BATS_TEST_TMPDIR/bad.jsonl"
	timeout 2 bash -c "until [ -e '$MNT/iterations/3' ]; do :; done"
	[ "$(cat "$MNT/iterations/3/code.py")" = torn ]
}

@test "a large store mounts on a quick index, and lines that only look like records vanish once validated" {
	local big=$BATS_TEST_TMPDIR/big.jsonl
	# Over 8 MiB: the mount answers before validating every line.
	gen "$big" --records 3000 --seed 5 --code-bytes 3000 --dialect iteration
	[ "$(stat -c %s "$big")" -gt $((8 << 20)) ]
	# Iteration 3 again, broken after its number; 7000 only broken.
	printf '%s\n' '{"iteration": 3, "code": "x" oops}' '{"iteration": 7000, "code": "y" oops}' >>"$big"
	iterfs_mount "$big" -o log="$BATS_TEST_TMPDIR/log"
	# A lookup checks its own line: never the broken ones.
	[ ! -e "$MNT/iterations/7000" ]
	assert_tree "$big"
	[ "$(readlink "$MNT/latest")" = iterations/2999 ]
	# The listing may name 7000 until the validation behind the mount
	# ends, which .iterfs/status tells.
	timeout 10 bash -c "until grep -q '\"validating\":[[:space:]]*false' '$MNT/.iterfs/status'; do :; done"
	[ "$(ls "$MNT/iterations" | wc -l)" -eq 3000 ]
	grep -q '2 more lines not shown, found by the full validation' "$BATS_TEST_TMPDIR/log"
}

@test "with -o ro files are opened and closed without a request to the daemon" {
	gen "$BATS_TEST_TMPDIR/g.jsonl" --records 50 --seed 14 --code-bytes 300
	python3 "$EXPECT" tree "$BATS_TEST_TMPDIR/g.jsonl" "$BATS_TEST_TMPDIR/exp" --ro
	MNT=$BATS_TEST_TMPDIR/mnt
	mkdir -p "$MNT"
	"$ITERFS" -d -o ro "$BATS_TEST_TMPDIR/g.jsonl" "$MNT" 3>&- 2>"$BATS_TEST_TMPDIR/log" &
	local pid=$!
	echo "$MNT $pid" >>"$BATS_TEST_TMPDIR/.mounts"
	timeout 10 bash -c "until mountpoint -q '$MNT'; do :; done"
	diff -r --no-dereference "$BATS_TEST_TMPDIR/exp" "$MNT"
	cat "$MNT"/iterations/*/record.json >/dev/null
	# The first open is answered "not needed", the kernel asks no more.
	[ "$(grep -ac 'opcode: OPEN ' "$BATS_TEST_TMPDIR/log")" -eq 1 ]
	[ "$(grep -ac 'opcode: RELEASE ' "$BATS_TEST_TMPDIR/log")" -eq 0 ]
	[ "$(grep -ac 'opcode: FLUSH ' "$BATS_TEST_TMPDIR/log")" -le 1 ]
	[ "$(grep -ac 'opcode: READ ' "$BATS_TEST_TMPDIR/log")" -gt 100 ]
}

@test "ls -t and find -newer order iterations written within one second by their timestamps" {
	printf '%s\n' \
		'{"iteration": 0, "code": "a", "timestamp": "2025-10-11T15:46:35.900000Z"}' \
		'{"iteration": 1, "code": "b", "timestamp": "2025-10-11T15:46:35.100000Z"}' \
		'{"iteration": 2, "code": "c", "timestamp": "2025-10-11T15:46:35.500001+00:00"}' \
		>"$BATS_TEST_TMPDIR/t.jsonl"
	iterfs_mount "$BATS_TEST_TMPDIR/t.jsonl"
	[ "$(ls -t "$MNT/iterations" | tr '\n' ' ')" = "0 2 1 " ]
	[ "$(stat -c %.6Y "$MNT/iterations/1" "$MNT/iterations/2/code.py" | tr '\n' ' ')" = "1760197595.100000 1760197595.500001 " ]
	[ "$(cd "$MNT/iterations" && find . -mindepth 1 -maxdepth 1 -newer 2 | tr '\n' ' ')" = "./0 " ]
}
