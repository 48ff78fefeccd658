#!/usr/bin/env bats
# Directory mounts: `iterfs DIR MNT` shows every history under DIR at its
# relative path without .jsonl, each subtree exactly as tests/expect.py
# computes it for that history alone.

load helpers

EXPECT="$BATS_TEST_DIRNAME/expect.py"
GEN="$BATS_TEST_DIRNAME/../contrib/gen-history.py"

teardown() {
	iterfs_unmount_all
}

# The subtree SUB of the mount equals the expected tree of STORE.
assert_subtree() {
	local store=$1 sub=$2 exp=$BATS_TEST_TMPDIR/expected
	shift 2
	rm -rf "$exp"
	python3 "$EXPECT" tree "$store" "$exp" "$@"
	diff -r --no-dereference "$exp" "$MNT/$sub"
	diff <(python3 "$EXPECT" manifest "$exp") <(python3 "$EXPECT" manifest "$MNT/$sub")
}

# Three generated histories, one of them in a sub-directory, and files
# that are not histories.
runs() {
	D=$BATS_TEST_TMPDIR/runs
	mkdir -p "$D/exp"
	python3 "$GEN" "$D/hybrid_50.jsonl" --records 30 --seed 1 --code-bytes 200
	python3 "$GEN" "$D/llm_only_50.jsonl" --records 20 --seed 2 --code-bytes 200 --dialect iteration_num
	python3 "$GEN" "$D/exp/fg_only.jsonl" --records 10 --seed 3 --code-bytes 200
	echo 'not json' >"$D/notes.jsonl"
	echo '{"name": "a config, no iteration number"}' >"$D/exp/config.jsonl"
	echo 'readme' >"$D/README.md"
}

# complete_drop STORE CODE: a record complete for STORE (its last one, with
# CODE and a newline as its code, without number, timestamp and hash).
complete_drop() {
	python3 - "$1" "$2" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1], encoding="utf-8").read().splitlines()[-1])
for k in ("iteration", "iteration_num", "timestamp", "code_hash"):
    r.pop(k, None)
r["strategy_code" if "strategy_code" in r else "code"] = sys.argv[2] + "\n"
print(json.dumps(r))
PY
}

shown_log() {
	grep -c ': shown$' "$LOG" || true
}

@test "every real history mounts at once, each at its name, as python computes it alone" {
	local f n=0
	[ -n "$REAL" ] && [ -d "$REAL" ] || { [ -z "${CI:-}" ] || return 1; skip "no real histories"; }
	# Read-only: the shared data is used in place and never written.
	iterfs_mount "$REAL" -o ro
	for f in "$REAL"/*.jsonl; do
		echo "# $f"
		assert_subtree "$f" "$(basename "$f" .jsonl)" --ro
		n=$((n + 1))
	done
	[ "$n" -ge 1 ]
	[ "$(ls "$MNT" | wc -l)" -eq "$n" ]
}

@test "diff -r of two runs' latest/ and grep -r over all runs see every history" {
	runs
	iterfs_mount "$D"
	[ "$(ls "$MNT" | tr '\n' ' ')" = "exp hybrid_50 llm_only_50 " ]
	[ "$(ls "$MNT/exp")" = fg_only ]
	run diff -r "$MNT/hybrid_50/latest/" "$MNT/llm_only_50/latest/"
	[ "$status" -eq 1 ]
	diff -r "$MNT/hybrid_50/latest/" "$MNT/hybrid_50/iterations/29/"
	# One code.py per iteration of every history: 30 + 20 + 10.
	[ "$(grep -rl --include=code.py . "$MNT" | grep -c '/iterations/')" -eq 60 ]
	assert_subtree "$D/exp/fg_only.jsonl" exp/fg_only
	assert_subtree "$D/llm_only_50.jsonl" llm_only_50
}

@test "histories are read at their first lookup, not at mount, and files that are no history are logged once" {
	runs
	LOG=$BATS_TEST_TMPDIR/log
	iterfs_mount "$D" -o log="$LOG"
	ls "$MNT" "$MNT/exp" >/dev/null
	[ "$(shown_log)" -eq 0 ]
	ls "$MNT/hybrid_50/iterations" >/dev/null
	[ "$(shown_log)" -eq 1 ]
	grep -q "hybrid_50.jsonl: shown" "$LOG"
	ls "$MNT" "$MNT/exp" >/dev/null
	[ ! -e "$MNT/notes" ] && [ ! -e "$MNT/exp/config" ] && [ ! -e "$MNT/README" ]
	[ "$(grep -c 'notes.jsonl: not shown' "$LOG")" -eq 1 ]
	[ "$(grep -c 'config.jsonl: not shown' "$LOG")" -eq 1 ]
}

@test "a history added while mounted shows without remounting, and a removed one is no longer listed" {
	runs
	iterfs_mount "$D"
	ls "$MNT" >/dev/null
	python3 "$GEN" "$D/exp/new_run.jsonl" --records 5 --seed 9 --code-bytes 100
	[ "$(ls "$MNT/exp/new_run/iterations" | wc -l)" -eq 5 ]
	mkdir "$D/later"
	python3 "$GEN" "$D/later/deep.jsonl" --records 3 --seed 4 --code-bytes 100
	[ "$(readlink "$MNT/later/deep/latest")" = iterations/2 ]
	# A file that becomes a history shows once it has a record.
	echo '{"iteration": 0, "code": "x = 1\n"}' >>"$D/notes.jsonl"
	[ "$(cat "$MNT/notes/iterations/0/code.py")" = "x = 1" ]
	rm "$D/llm_only_50.jsonl"
	[ "$(ls "$MNT" | tr '\n' ' ')" = "exp hybrid_50 later notes " ]
}

@test "our own side files beside a history are never taken for histories" {
	runs
	iterfs_mount "$D"
	# A rejected drop keeps its bytes in hybrid_50.jsonl.rejected/.
	run cp /dev/stdin "$MNT/hybrid_50/incoming/bad.jsonl" <<<'{"iteration": 3, "code": 5}'
	[ "$status" -ne 0 ]
	[ -d "$D/hybrid_50.jsonl.rejected" ]
	mkdir -p "$D/hybrid_50.jsonl.lost"
	python3 "$GEN" "$D/hybrid_50.jsonl.lost/20260101T000000Z.jsonl" --records 2 --seed 5 --code-bytes 50
	python3 "$GEN" "$D/.hidden.jsonl" --records 2 --seed 5 --code-bytes 50
	[ "$(ls -A "$MNT" | tr '\n' ' ')" = "exp hybrid_50 llm_only_50 " ]
	[ -e "$D/hybrid_50.jsonl.lock" ]
}

@test "inode numbers are the same on every mount and distinct across histories" {
	runs
	iterfs_mount "$D" -o ro
	find "$MNT" -printf '%i %P\n' | sort -k2 >"$BATS_TEST_TMPDIR/before"
	iterfs_unmount
	iterfs_mount "$D" -o ro
	find "$MNT" -printf '%i %P\n' | sort -k2 >"$BATS_TEST_TMPDIR/after"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/before")" -gt 300 ]
	diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
	[ -z "$(cut -d' ' -f1 "$BATS_TEST_TMPDIR/after" | sort | uniq -d)" ]
}

@test "a drop commits into its own history only, and a rename between two drop boxes is refused" {
	runs
	iterfs_mount "$D"
	local before
	before=$(sum "$D/llm_only_50.jsonl")
	complete_drop "$D/hybrid_50.jsonl" 'y = 2' >"$BATS_TEST_TMPDIR/rec.json"
	run cp "$BATS_TEST_TMPDIR/rec.json" "$MNT/hybrid_50/incoming/r.json"
	if [ "$status" -ne 0 ]; then
		cat "$D/hybrid_50.jsonl.rejected/"*.reason >&2 || true
		false
	fi
	[ "$(ls "$MNT/hybrid_50/iterations" | wc -l)" -eq 31 ]
	[ "$(readlink "$MNT/hybrid_50/latest")" = iterations/30 ]
	[ "$(cat "$MNT/hybrid_50/latest/code.py")" = "y = 2" ]
	[ "$(wc -l <"$D/hybrid_50.jsonl")" -eq 31 ]
	[ "$(sum "$D/llm_only_50.jsonl")" = "$before" ]
	cp "$BATS_TEST_TMPDIR/rec.json" "$MNT/hybrid_50/incoming/.stage"
	run python3 -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' \
		"$MNT/hybrid_50/incoming/.stage" "$MNT/llm_only_50/incoming/x.json"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Invalid cross-device link"* ]]
	[ "$(sum "$D/llm_only_50.jsonl")" = "$before" ]
}

@test "tar of a directory mount twice gives the same bytes, and a rejected drop beside a history changes no folder" {
	runs
	touch -d '2020-01-02 03:04:05' "$D"/*.jsonl "$D"/exp/*.jsonl
	iterfs_mount "$D"
	tar -C "$MNT" --exclude=incoming -cf - . | sha256sum >"$BATS_TEST_TMPDIR/t1"
	# Keeping the drop makes exp/fg_only.jsonl.rejected/ and a lock file
	# beside the history: the folders' times follow the histories only.
	run cp /dev/stdin "$MNT/exp/fg_only/incoming/bad.json" <<<'{"iteration": 1, "code": 5}'
	[ "$status" -ne 0 ]
	[ -d "$D/exp/fg_only.jsonl.rejected" ]
	tar -C "$MNT" --exclude=incoming -cf - . | sha256sum >"$BATS_TEST_TMPDIR/t2"
	diff "$BATS_TEST_TMPDIR/t1" "$BATS_TEST_TMPDIR/t2"
	[ "$(stat -c %Y "$MNT/exp")" -eq "$(date -d '2020-01-02 03:04:05' +%s)" ]
	[ "$(stat -c %Y "$MNT")" -eq "$(date -d '2020-01-02 03:04:05' +%s)" ]
	# A commit below moves the folders' mtime at once, so a tar that
	# starts after it sees nothing change while it reads.
	complete_drop "$D/exp/fg_only.jsonl" 'z = 3' >"$BATS_TEST_TMPDIR/rec.json"
	cp "$BATS_TEST_TMPDIR/rec.json" "$MNT/exp/fg_only/incoming/good.json"
	[ "$(stat -c %Y "$MNT/exp")" -eq "$(stat -c %Y "$D/exp/fg_only.jsonl")" ]
	tar -C "$MNT" --exclude=incoming -cf /dev/null .
}
