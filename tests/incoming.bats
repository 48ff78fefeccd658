#!/usr/bin/env bats
# incoming/: records dropped by cp, the shell and Python, their errors, the
# rejected drops kept beside the store, concurrency and unmount mid-drop.

load helpers

setup() {
	STORE=$BATS_TEST_TMPDIR/hist.jsonl
}

teardown() {
	# A failed mid-drop test leaves its Python writer waiting for "go".
	[ -z "${PY:-}" ] || kill "$PY" 2>/dev/null || true
	teardown_tracked
	iterfs_unmount_all
	# The permissions test's user and directory outside $BATS_TEST_TMPDIR.
	if [ -f "$BATS_TEST_TMPDIR/.user" ]; then
		userdel "$(cat "$BATS_TEST_TMPDIR/.user")" || true
	fi
	if [ -f "$BATS_TEST_TMPDIR/.dir" ]; then
		rm -rf "$(cat "$BATS_TEST_TMPDIR/.dir")"
	fi
}

# py_drop PATH TEXT: Python writes TEXT to PATH and closes it; prints "ok",
# or the step that raised and the exception text.
py_drop() {
	python3 - "$1" "$2" <<'EOF'
import sys
path, text = sys.argv[1], sys.argv[2]
try:
    f = open(path, "wb")
except OSError as e:
    print("open:", e)
    sys.exit(0)
try:
    f.write(text.encode())
except OSError as e:
    print("write:", e)
try:
    f.close()
    print("ok")
except OSError as e:
    print("close:", e)
EOF
}

# Lines of the store, as Python sees them: "<number> <key>" per record.
numbers() {
	python3 - "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    key = "iteration" if "iteration" in r else "iteration_num"
    print(r[key], key)
EOF
}

@test "a record copied in with cp commits and shows under iterations, latest and by-hash at once" {
	seed "$STORE"
	iterfs_mount "$STORE"
	printf '{"metrics": {}, "code": "print(42)\\n", "metrics": {"sharpe": 1.5}}\n' >"$BATS_TEST_TMPDIR/rec.json"
	cp "$BATS_TEST_TMPDIR/rec.json" "$MNT/incoming/rec.json"
	[ "$(wc -l <"$STORE")" -eq 4 ]
	[ "$(cat "$MNT/iterations/3/code.py")" = "print(42)" ]
	[ "$(readlink "$MNT/latest")" = "iterations/3" ]
	hash=$(printf 'print(42)\n' | sha256sum | cut -d' ' -f1)
	[ "$(readlink "$MNT/by-hash/$hash/3")" = "../../iterations/3" ]
	[ "$(listing)" = "" ]
	# Not listed, but the name still resolves for a while, so that a
	# tool's follow-up stat, chmod or utime after close() succeeds.
	run stat -c %s "$MNT/incoming/rec.json"
	[ "$status" -eq 0 ]
}

@test "a record written by echo redirection commits under the number it gives" {
	seed "$STORE"
	iterfs_mount "$STORE"
	echo '{"iteration": 10, "code": "y = 2", "metrics": {}}' >"$MNT/incoming/ten"
	[ "$(cat "$MNT/iterations/10/code.py")" = "y = 2" ]
	[[ "$(tail -n 1 "$STORE")" == '{"iteration":10,"code":"y = 2","metrics":{},"timestamp":"'* ]]
	[ "$(readlink "$MNT/latest")" = "iterations/10" ]
	[ "$(listing)" = "" ]
}

@test "a pretty record written by a cat heredoc is stored as one compact line" {
	seed "$STORE"
	iterfs_mount "$STORE"
	cat <<'EOF' >"$MNT/incoming/pretty.json"
{
  "iteration": 7,
  "code": "z = 3",
  "metrics": {"sharpe": 1E-5, "n": 12345678901234567890},
  "timestamp": "2025-10-12T10:00:00"
}
EOF
	[ "$(tail -n 1 "$STORE")" = '{"iteration":7,"code":"z = 3","metrics":{"sharpe":1E-5,"n":12345678901234567890},"timestamp":"2025-10-12T10:00:00"}' ]
	[ "$(wc -l <"$STORE")" -eq 4 ]
	[ "$(cat "$MNT/iterations/7/code.py")" = "z = 3" ]
}

@test "a record written in pieces through one shell descriptor commits once at close" {
	seed "$STORE"
	iterfs_mount "$STORE"
	exec 4>"$MNT/incoming/pieces"
	printf '{"metrics": {}, "code": ' >&4
	printf '"w = 4"}\n' >&4
	exec 4>&-
	[ "$(wc -l <"$STORE")" -eq 4 ]
	[ "$(cat "$MNT/iterations/3/code.py")" = "w = 4" ]
}

@test "children of a shell writing one drop commit its record once" {
	seed "$STORE"
	iterfs_mount "$STORE"
	# Each child closes its copy of the descriptor: the first flush sees
	# unfinished JSON and fails that child's close with EINVAL (the drop
	# stays open), the second commits the whole record, the shell's is a
	# no-op.
	run sh -c "{ /usr/bin/printf '{\"metrics\": {}, \"code\": '; echo first=\$? >&2; /usr/bin/printf '\"v = 5\"}\n'; echo second=\$? >&2; } >'$MNT/incoming/kids'"
	[ "$status" -eq 0 ]
	[[ "$output" == *"write error: Invalid argument"*"first=1"*"second=0"* ]]
	[ "$(wc -l <"$STORE")" -eq 4 ]
	[ "$(cat "$MNT/iterations/3/code.py")" = "v = 5" ]
	[ "$(listing)" = "" ]
}

@test "Python close returns after the record is durable and visible, and the name vanishes" {
	seed "$STORE"
	iterfs_mount "$STORE"
	run python3 - "$MNT" "$STORE" <<'EOF'
import json, os, sys
mnt, store = sys.argv[1], sys.argv[2]
with open(os.path.join(mnt, "incoming", "py.json"), "w") as f:
    f.write(json.dumps({"metrics": {}, "code": "def f():\n    return 'é'\n", "feedback": "ok"}))
last = json.loads(open(store, encoding="utf-8").read().splitlines()[-1])
assert last["iteration"] == 3, last
assert open(os.path.join(mnt, "iterations", "3", "code.py"), encoding="utf-8").read() == "def f():\n    return 'é'\n"
assert open(os.path.join(mnt, "iterations", "3", "feedback.txt")).read() == "ok"
assert os.readlink(os.path.join(mnt, "latest")) == "iterations/3"
assert os.listdir(os.path.join(mnt, "incoming")) == []
print("done")
EOF
	[ "$status" -eq 0 ]
	[ "$output" = "done" ]
}

@test "invalid JSON fails close with EINVAL, commits nothing and is kept with its reason" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/bad" '{"metrics": {}, "code": "x",, }'
	[ "$output" = "close: [Errno 22] Invalid argument" ]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(cat "$MNT/incoming/bad.rejected")" = '{"metrics": {}, "code": "x",, }' ]
	grep -q '^Invalid argument: .*syntax error' "$MNT/incoming/bad.reason"
	[ "$(cat "$STORE.rejected/bad")" = '{"metrics": {}, "code": "x",, }' ]
	cmp "$STORE.rejected/bad.reason" "$MNT/incoming/bad.reason"
	[ "$(stat -c %a "$MNT/incoming/bad.rejected")" = 444 ]
	run stat "$MNT/incoming/bad"
	[ "$status" -ne 0 ]
	[ "$(ls "$MNT/iterations" | wc -l)" -eq 3 ]
}

@test "a JSON value that is not an object fails with EINVAL and commits nothing" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/arr" '[1, 2, 3]'
	[ "$output" = "close: [Errno 22] Invalid argument" ]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(cat "$MNT/incoming/arr.rejected")" = '[1, 2, 3]' ]
	grep -q 'not a JSON object' "$MNT/incoming/arr.reason"
	[ -f "$STORE.rejected/arr.reason" ]
}

@test "a field of the wrong type fails with EINVAL and commits nothing" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/typed" '{"metrics": {}, "code": 42}'
	[ "$output" = "close: [Errno 22] Invalid argument" ]
	[ "$(sum "$STORE")" = "$before" ]
	grep -q '"code" must be a string' "$MNT/incoming/typed.reason"
	[ "$(cat "$STORE.rejected/typed")" = '{"metrics": {}, "code": 42}' ]
}

@test "an incomplete record fails with EINVAL naming the missing fields and commits nothing" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/part" '{"code": "c = 1"}'
	[ "$output" = "close: [Errno 22] Invalid argument" ]
	[ "$(sum "$STORE")" = "$before" ]
	grep -q 'missing fields: metrics' "$MNT/incoming/part.reason"
	run py_drop "$MNT/incoming/typed2" '{"code": "c = 1", "metrics": [1]}'
	[ "$output" = "close: [Errno 22] Invalid argument" ]
	grep -q '"metrics" must be an object' "$MNT/incoming/typed2.reason"
	run py_drop "$MNT/incoming/when" '{"code": "c = 1", "metrics": {}, "timestamp": "yesterday"}'
	[ "$output" = "close: [Errno 22] Invalid argument" ]
	grep -q '"timestamp" must be an ISO 8601' "$MNT/incoming/when.reason"
	[ "$(sum "$STORE")" = "$before" ]
}

@test "a taken iteration number with different content fails with EEXIST and commits nothing" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/dup" '{"iteration": 1, "code": "other", "metrics": {}}'
	[ "$output" = "close: [Errno 17] File exists" ]
	[ "$(sum "$STORE")" = "$before" ]
	grep -q '^File exists: ' "$MNT/incoming/dup.reason"
	[ "$(cat "$MNT/incoming/dup.rejected")" = '{"iteration": 1, "code": "other", "metrics": {}}' ]
	[ "$(cat "$STORE.rejected/dup")" = '{"iteration": 1, "code": "other", "metrics": {}}' ]
	[ "$(cat "$MNT/iterations/1/code.py")" = "x = 1" ]
}

@test "a byte-identical re-send succeeds and adds nothing" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/again" "$(sed -n 2p "$STORE")"
	[ "$output" = "ok" ]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(listing)" = "" ]
	[ ! -e "$STORE.rejected" ]
}

@test "a drop over max_record fails with EFBIG, commits nothing and is kept with its reason" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE" -o max_record=1000
	big=$(python3 -c 'print("{\"code\": \"" + "a" * 1985 + "\"}", end="")')
	[ "${#big}" -eq 1997 ]
	run py_drop "$MNT/incoming/big" "$big"
	[[ "$output" == *"[Errno 27] File too large"* ]]
	[ "$output" != "ok" ]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(cat "$MNT/incoming/big.reason")" = "File too large: larger than max_record (1000 bytes)" ]
	[ -e "$MNT/incoming/big.rejected" ]
	cmp "$STORE.rejected/big.reason" "$MNT/incoming/big.reason"
	# Under the limit the same mount takes records.
	echo '{"metrics": {}, "code": "small"}' >"$MNT/incoming/small"
	[ "$(cat "$MNT/iterations/3/code.py")" = "small" ]
}

@test "a full disk fails close with ENOSPC, leaves the store unchanged and keeps the drop" {
	seed "$STORE"
	before=$(sum "$STORE")
	ITERFS_FAULT=fsync_temp:ENOSPC iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/full" '{"metrics": {}, "code": "lost?"}'
	[ "$output" = "close: [Errno 28] No space left on device" ]
	[ "$(sum "$STORE")" = "$before" ]
	grep -q '^No space left on device: ' "$MNT/incoming/full.reason"
	[ "$(cat "$STORE.rejected/full")" = '{"metrics": {}, "code": "lost?"}' ]
	[ -z "$(ls -A "$(dirname "$STORE")" | grep iterfs-tmp)" ]
}

@test "an I/O error at rename fails close with EIO and leaves the store unchanged" {
	seed "$STORE"
	before=$(sum "$STORE")
	ITERFS_FAULT=rename:EIO iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/eio" '{"metrics": {}, "code": "e"}'
	[ "$output" = "close: [Errno 5] Input/output error" ]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(ls "$MNT/iterations" | wc -l)" -eq 3 ]
	[ -e "$MNT/incoming/eio.rejected" ]
}

@test "several records in one drop commit together with consecutive numbers" {
	seed "$STORE"
	iterfs_mount "$STORE"
	printf '{"metrics": {}, "code": "a"}\n{"metrics": {}, "code": "b"}\n{"iteration": 9, "code": "c", "metrics": {}}\n' >"$MNT/incoming/three"
	[ "$(numbers "$STORE" | tail -n 3 | tr '\n' ' ')" = "3 iteration 4 iteration 9 iteration " ]
	[ "$(cat "$MNT/iterations/3/code.py")$(cat "$MNT/iterations/4/code.py")$(cat "$MNT/iterations/9/code.py")" = "abc" ]
}

@test "one bad record rejects the whole drop and commits none of it" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/mixed" $'{"metrics": {}, "code": "a"}\n{"metrics": {}, "code": "b"}\n{"iteration": 2, "code": "taken", "metrics": {}}\n'
	[ "$output" = "close: [Errno 17] File exists" ]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(ls "$MNT/iterations" | wc -l)" -eq 3 ]
	[ "$(wc -l <"$MNT/incoming/mixed.rejected")" -eq 3 ]
}

@test "os.fsync commits the record before close and close then adds nothing" {
	seed "$STORE"
	iterfs_mount "$STORE"
	run python3 - "$MNT" "$STORE" <<'EOF'
import os, sys
mnt, store = sys.argv[1], sys.argv[2]
f = open(os.path.join(mnt, "incoming", "synced"), "w")
f.write('{"metrics": {}, "code": "s = 1"}')
f.flush()
os.fsync(f.fileno())
assert open(os.path.join(mnt, "iterations", "3", "code.py")).read() == "s = 1"
assert len(open(store).read().splitlines()) == 4
f.close()
assert len(open(store).read().splitlines()) == 4
print("done")
EOF
	[ "$status" -eq 0 ]
	[ "$output" = "done" ]
}

@test "os.fsync of an unfinished record fails with EINVAL and commits nothing" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	run python3 - "$MNT" <<'EOF'
import os, sys
f = open(os.path.join(sys.argv[1], "incoming", "half"), "w")
f.write('{"metrics": {}, "code": "s')
f.flush()
try:
    os.fsync(f.fileno())
    print("fsync ok")
except OSError as e:
    print("fsync:", e)
f.write(' = 2"}')
f.close()
print("closed")
EOF
	[ "${lines[0]}" = "fsync: [Errno 22] Invalid argument" ]
	[ "${lines[1]}" = "closed" ]
	# Completed afterwards, the same drop commits at close.
	[ "$(cat "$MNT/iterations/3/code.py")" = "s = 2" ]
	[ "$(wc -l <"$STORE")" -eq 4 ]
	[ ! -e "$STORE.rejected" ]
	[ "$before" != "$(sum "$STORE")" ]
}

@test "eight processes dropping a hundred records each at once lose and duplicate nothing" {
	seed "$STORE"
	iterfs_mount "$STORE"
	for p in 0 1 2 3 4 5 6 7; do
		python3 - "$MNT" "$p" <<'EOF' 3>&- &
import json, os, sys
mnt, p = sys.argv[1], int(sys.argv[2])
for j in range(100):
    with open(os.path.join(mnt, "incoming", f"p{p}-{j}.json"), "w") as f:
        f.write(json.dumps({"metrics": {}, "code": f"p = {p}; j = {j}\n"}))
EOF
	done
	fail=0
	for p in 0 1 2 3 4 5 6 7; do
		wait -n || fail=1
	done
	[ "$fail" -eq 0 ]
	run python3 - "$STORE" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
nums = [r["iteration"] for r in recs]
codes = [r["code"] for r in recs[3:]]
want = {f"p = {p}; j = {j}\n" for p in range(8) for j in range(100)}
assert len(recs) == 803, len(recs)
assert len(set(nums)) == 803, "duplicate numbers"
assert sorted(nums) == list(range(803)), "numbers not consecutive"
assert len(codes) == 800 and set(codes) == want, "lost or duplicated records"
print("ok")
EOF
	[ "$output" = "ok" ]
	[ "$(ls "$MNT/iterations" | wc -l)" -eq 803 ]
	[ "$(readlink "$MNT/latest")" = "iterations/802" ]
	[ "$(listing)" = "" ]
}

@test "two mounts of one store committing at once lose and duplicate nothing" {
	seed "$STORE"
	iterfs_mount "$STORE"
	first=$MNT
	MNT=$BATS_TEST_TMPDIR/mnt2
	iterfs_mount "$STORE"
	for m in "$first" "$MNT"; do
		python3 - "$m" <<'EOF' 3>&- &
import json, os, sys
mnt = sys.argv[1]
for j in range(50):
    with open(os.path.join(mnt, "incoming", f"d{j}"), "w") as f:
        f.write(json.dumps({"metrics": {}, "code": f"{mnt} {j}"}))
EOF
	done
	wait -n
	wait -n
	run python3 - "$STORE" "$first" "$MNT" <<'EOF'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
nums = sorted(r["iteration"] for r in recs)
want = {f"{m} {j}" for m in sys.argv[2:4] for j in range(50)}
assert nums == list(range(103)), nums
assert {r["code"] for r in recs[3:]} == want
print("ok")
EOF
	[ "$output" = "ok" ]
}

@test "an empty drop closed without content leaves nothing behind" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	touch "$MNT/incoming/empty"
	: >"$MNT/incoming/empty2"
	[ "$(listing)" = "" ]
	[ "$(sum "$STORE")" = "$before" ]
	[ ! -e "$STORE.rejected" ]
}

@test "drop names ending in .rejected or .reason are refused" {
	seed "$STORE"
	iterfs_mount "$STORE"
	run touch "$MNT/incoming/x.rejected"
	[ "$status" -ne 0 ]
	run touch "$MNT/incoming/x.reason"
	[ "$status" -ne 0 ]
	[ "$(listing)" = "" ]
}

@test "a drop removed with rm before close is discarded, not committed" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	exec 4>"$MNT/incoming/gone"
	# Unfinished so far: the subshells below inherit FD 4 and flush it.
	printf '{"metrics": {}, "code": ' >&4
	[ "$(listing)" = "gone " ]
	rm "$MNT/incoming/gone"
	[ "$(listing)" = "" ]
	printf '"never"}\n' >&4
	exec 4>&-
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(listing)" = "" ]
	[ ! -e "$STORE.rejected" ]
}

@test "rejected drops survive a remount, take free names, and rm removes them beside the store" {
	seed "$STORE"
	iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/bad" 'not json'
	[ "$output" = "close: [Errno 22] Invalid argument" ]
	run py_drop "$MNT/incoming/bad" '{"iteration": 0, "code": "clash", "metrics": {}}'
	[ "$output" = "close: [Errno 17] File exists" ]
	[ "$(listing)" = "bad.1.reason bad.1.rejected bad.reason bad.rejected " ]
	iterfs_unmount
	iterfs_mount "$STORE"
	[ "$(listing)" = "bad.1.reason bad.1.rejected bad.reason bad.rejected " ]
	[ "$(cat "$MNT/incoming/bad.rejected")" = "not json" ]
	[ "$(cat "$MNT/incoming/bad.1.rejected")" = '{"iteration": 0, "code": "clash", "metrics": {}}' ]
	run sh -c "echo x >'$MNT/incoming/bad.rejected'"
	[ "$status" -ne 0 ]
	rm "$MNT/incoming/bad.rejected" "$MNT/incoming/bad.reason"
	[ ! -e "$STORE.rejected/bad" ]
	[ ! -e "$STORE.rejected/bad.reason" ]
	[ -e "$STORE.rejected/bad.1" ]
	[ "$(listing)" = "bad.1.reason bad.1.rejected " ]
}

@test "a drop closed before its JSON is complete commits nothing and its bytes are kept" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	printf '{"metrics": {}, "code": "unfinished' >"$MNT/incoming/half"
	# Release is asynchronous; unmounting settles it (kept at release or at
	# unmount, either way before the daemon exits).
	iterfs_unmount
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(cat "$STORE.rejected/half")" = '{"metrics": {}, "code": "unfinished' ]
	grep -Eq 'closed before the record was complete|unmounted before the drop was closed' "$STORE.rejected/half.reason"
}

# mid_drop [TEXT [MORE]]: start Python writing TEXT (by default part of a
# record) into incoming/part and holding it open; returns once the bytes are
# written.  mid_drop_finish lets it write MORE and close the file; what the
# close gave ("ok" or the exception) is then in $BATS_TEST_TMPDIR/py.out.
mid_drop() {
	local text='{"iteration": 3, "code": "x = ' more=${2-}
	[ $# -eq 0 ] || text=$1
	mkfifo "$BATS_TEST_TMPDIR/ready" "$BATS_TEST_TMPDIR/go"
	exec 5<>"$BATS_TEST_TMPDIR/ready" 6<>"$BATS_TEST_TMPDIR/go"
	python3 - "$MNT/incoming/part" "$BATS_TEST_TMPDIR" "$text" "$more" <<'EOF' 3>&- 5>&- 6>&- &
import os, sys
path, tmp, text, more = sys.argv[1:5]
f = open(path, "w")
f.write(text)
f.flush()
with open(os.path.join(tmp, "ready"), "w") as r:
    r.write("ready\n")
with open(os.path.join(tmp, "go")) as g:
    g.readline()
with open(os.path.join(tmp, "py.out"), "w") as out:
    try:
        f.write(more)
        f.close()
        out.write("ok\n")
    except OSError as e:
        out.write(f"close: {e}\n")
EOF
	PY=$!
	read -r -t 30 -u 5 line
	[ "$line" = ready ]
}

mid_drop_finish() {
	echo go >&6
	wait "$PY" || true
	exec 5>&- 6>&-
}

@test "SIGTERM in the middle of a drop commits nothing and keeps the partial bytes" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	mid_drop
	kill -TERM "$IFS_PID"
	iterfs_wait_exit "$IFS_PID"
	mid_drop_finish
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(cat "$STORE.rejected/part")" = '{"iteration": 3, "code": "x = ' ]
	[ "$(cat "$STORE.rejected/part.reason")" = "unmounted before the drop was closed" ]
}

@test "a lazy unmount in the middle of a drop commits nothing and keeps the partial bytes" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	mid_drop
	fusermount3 -u -z "$MNT"
	mid_drop_finish
	iterfs_wait_exit "$IFS_PID"
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(cat "$STORE.rejected/part")" = '{"iteration": 3, "code": "x = ' ]
	grep -Eq 'closed before the record was complete|unmounted before the drop was closed' "$STORE.rejected/part.reason"
}

@test "reading a drop while it is being written commits none of it" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	mid_drop $'{"metrics": {}, "code": "one"}\n' $'{"metrics": {}, "code": "two"}\n'
	# A complete first record is there; cat's close must not commit it.
	[ "$(cat "$MNT/incoming/part")" = '{"metrics": {}, "code": "one"}' ]
	[ "$(sum "$STORE")" = "$before" ]
	mid_drop_finish
	[ "$(cat "$BATS_TEST_TMPDIR/py.out")" = ok ]
	[ "$(numbers "$STORE" | tail -n 2 | tr '\n' ' ')" = "3 iteration 4 iteration " ]
	[ "$(cat "$MNT/iterations/3/code.py")$(cat "$MNT/iterations/4/code.py")" = onetwo ]
}

# real_commit NAME: copy a real history, drop a record into the copy through
# the mount; prints the new record's number and key as Python reads them.
real_commit() {
	need_real "$1"
	cp "$HIST" "$STORE"
	before=$(wc -l <"$STORE")
	iterfs_mount "$STORE"
	# A complete record: the fields of the last one, new code under the
	# other alias (stored under the history's own key), no number.
	python3 - "$HIST" >"$BATS_TEST_TMPDIR/new.json" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1], encoding="utf-8").read().splitlines()[-1])
for k in ("iteration", "iteration_num", "timestamp", "strategy_code"):
    r.pop(k, None)
r["code"] = "def strategy(data):\n    return None\n"
print(json.dumps(r, ensure_ascii=False))
EOF
	cp "$BATS_TEST_TMPDIR/new.json" "$MNT/incoming/new"
	[ "$(wc -l <"$STORE")" -eq $((before + 1)) ]
	# The old content is untouched: the copy still starts with the original.
	cmp -n "$(stat -c %s "$HIST")" "$HIST" "$STORE"
	NEW=$(numbers "$STORE" | tail -n 1)
	N=${NEW%% *}
	[ "$(cat "$MNT/iterations/$N/code.py")" = "$(printf 'def strategy(data):\n    return None')" ]
	[ "$(readlink "$MNT/latest")" = "iterations/$N" ]
}

@test "a record committed into a copy of llm_only_50 is numbered 50 under iteration_num" {
	real_commit llm_only_50.jsonl
	[ "$NEW" = "50 iteration_num" ]
	[ "$(tail -n 1 "$STORE" | cut -c1-19)" = '{"iteration_num":50' ]
	[[ "$(tail -n 1 "$STORE")" == *'"strategy_code":"def strategy(data):\n    return None\n"'* ]]
	[[ "$(tail -n 1 "$STORE")" != *'"code":'* ]]
}

@test "a record committed into a copy of json_mode_test follows its dialect" {
	real_commit json_mode_test.jsonl
	[ "$NEW" = "20 iteration_num" ]
}

@test "a record committed into a copy of unified_factor_graph follows its dialect" {
	real_commit unified_factor_graph.jsonl
	[ "$NEW" = "21 iteration_num" ]
}

@test "a record committed into a copy of migrated_no_code follows its dialect" {
	real_commit migrated_no_code.jsonl
	[ "$NEW" = "20 iteration" ]
}

# A complete record for the seeded store (it carries code and metrics).
rec() {
	printf '{"code": "%s", "metrics": {"sharpe": %s}}' "$1" "${2:-1}"
}

@test "fsync on a read-only descriptor does not commit a drop another process is writing" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	mid_drop "$(rec one)"$'\n' "$(rec two)"$'\n'
	# The first record is complete; a reader's fsync must not cut the drop.
	run python3 - "$MNT/incoming/part" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.close(fd)
print("fsync ok")
PY
	[ "$output" = "fsync ok" ]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(iter_count)" -eq 3 ]
	mid_drop_finish
	[ "$(cat "$BATS_TEST_TMPDIR/py.out")" = ok ]
	[ "$(numbers "$STORE" | tail -n 2 | tr '\n' ' ')" = "3 iteration 4 iteration " ]
	[ "$(cat "$MNT/iterations/3/code.py")$(cat "$MNT/iterations/4/code.py")" = onetwo ]
	[ "$(wc -l <"$STORE")" -eq 5 ]
}

@test "a drop starting with a UTF-8 BOM commits without the BOM" {
	seed "$STORE"
	iterfs_mount "$STORE"
	run python3 - "$MNT/incoming/bom" "$(rec bom)" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    f.write(b"\xef\xbb\xbf" + sys.argv[2].encode())
print("ok")
PY
	echo "$output"
	[ "$output" = ok ]
	[ "$(iter_count)" -eq 4 ]
	[ "$(cat "$MNT/iterations/3/code.py")" = bom ]
	[ "$(tail -n 1 "$STORE" | head -c 1)" = "{" ]
	[ "$(listing)" = "" ]
	[ ! -e "$STORE.rejected" ]
}

@test "a drop whose JSON is unfinished at close fails with EINVAL and is kept" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/unfinished" '{"code": "x", '
	[ "$output" = "close: [Errno 22] Invalid argument" ]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(iter_count)" -eq 3 ]
	# Kept when its last descriptor is released, which is asynchronous:
	# the unmount settles it.
	iterfs_unmount
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(cat "$STORE.rejected/unfinished")" = '{"code": "x", ' ]
	[ -s "$STORE.rejected/unfinished.reason" ]
}

# 5000 bytes of one complete record, in $BATS_TEST_TMPDIR/sent.
big_record() {
	python3 - "$BATS_TEST_TMPDIR/sent" <<'PY'
import sys
head, tail = '{"code": "', '", "metrics": {"sharpe": 1}}'
body = "".join(chr(ord("a") + i // 100 % 26) for i in range(5000 - len(head) - len(tail)))
open(sys.argv[1], "wb").write((head + body + tail).encode())
PY
}

@test "a drop over max_record fails at write with EFBIG and is kept with every byte sent" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE" -o max_record=1000
	big_record
	# cp sends it in one write(), which fails; all 5000 bytes are kept.
	run cp "$BATS_TEST_TMPDIR/sent" "$MNT/incoming/big"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"File too large"* ]]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(iter_count)" -eq 3 ]
	cmp "$BATS_TEST_TMPDIR/sent" "$STORE.rejected/big"
	cmp "$BATS_TEST_TMPDIR/sent" "$MNT/incoming/big.rejected"
	[ "$(cat "$MNT/incoming/big.reason")" = "File too large: larger than max_record (1000 bytes)" ]
	# 500 bytes at a time, going on after EFBIG: the third write crosses
	# the limit, and every chunk is kept in its place.
	run python3 - "$MNT/incoming/chunked" "$BATS_TEST_TMPDIR/sent" <<'PY'
import errno, os, sys
path, sent = sys.argv[1:3]
data = open(sent, "rb").read()
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
res = []
# pwrite: a failed write does not move the file offset, so each chunk
# names its own place.
for off in range(0, len(data), 500):
    try:
        n = os.pwrite(fd, data[off:off + 500], off)
        res.append("ok" if n == 500 else f"short {n}")
    except OSError as e:
        res.append(errno.errorcode[e.errno])
try:
    os.close(fd)
    res.append("close ok")
except OSError as e:
    res.append("close " + errno.errorcode[e.errno])
print(" ".join(res))
PY
	echo "$output"
	[[ "$output" =~ ^ok\ ok\ EFBIG(\ (ok|EFBIG)){7}\ close\ EFBIG$ ]]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(iter_count)" -eq 3 ]
	cmp "$BATS_TEST_TMPDIR/sent" "$STORE.rejected/chunked"
	cmp "$BATS_TEST_TMPDIR/sent" "$MNT/incoming/chunked.rejected"
}

@test "a drop name longer than 255 bytes is refused with ENAMETOOLONG" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	long=$(printf 'n%.0s' $(seq 256))
	run python3 - "$MNT/incoming/$long" "$(rec long)" <<'PY'
import errno, sys
try:
    with open(sys.argv[1], "w") as f:
        f.write(sys.argv[2])
    print("created")
except OSError as e:
    print(errno.errorcode[e.errno])
PY
	[ "$output" = ENAMETOOLONG ]
	run touch "$MNT/incoming/$long"
	[ "$status" -ne 0 ]
	[[ "$output" == *"File name too long"* ]]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(listing)" = "" ]
	[ ! -e "$STORE.rejected" ]
	# 255 bytes is a name like any other.
	run py_drop "$MNT/incoming/${long:1}" "$(rec max)"
	[ "$output" = ok ]
	[ "$(cat "$MNT/iterations/3/code.py")" = max ]
}

@test "a staging name never commits at close; renaming it commits, and a failed rename keeps the source" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/.good" "$(rec staged)"
	[ "$output" = ok ]
	run py_drop "$MNT/incoming/.bad" '{"code": 42, "metrics": {"sharpe": 1}}'
	[ "$output" = ok ]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(listing)" = ".bad .good " ]
	[ ! -e "$STORE.rejected" ]
	mv "$MNT/incoming/.good" "$MNT/incoming/good"
	[ "$(iter_count)" -eq 4 ]
	[ "$(cat "$MNT/iterations/3/code.py")" = staged ]
	[ "$(listing)" = ".bad " ]
	before=$(sum "$STORE")
	run python3 -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' \
		"$MNT/incoming/.bad" "$MNT/incoming/bad"
	[ "$status" -ne 0 ]
	[[ "$output" == *"OSError: [Errno 22] Invalid argument"* ]]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(iter_count)" -eq 4 ]
	[ "$(cat "$MNT/incoming/.bad")" = '{"code": 42, "metrics": {"sharpe": 1}}' ]
	[ "$(cat "$STORE.rejected/bad")" = '{"code": 42, "metrics": {"sharpe": 1}}' ]
	grep -q '"code"' "$MNT/incoming/bad.reason"
	rm "$MNT/incoming/.bad"
	[ "$(listing)" = "bad.reason bad.rejected " ]
	[ "$(sum "$STORE")" = "$before" ]
}

@test "a staging file its writer closes and removes leaves nothing behind" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	# Not JSON at all, like an editor's swap file.
	run py_drop "$MNT/incoming/.x.swp" $'b0VIM 9.0\n\x01 swap'
	[ "$output" = ok ]
	[ "$(listing)" = ".x.swp " ]
	[ "$(cat "$MNT/incoming/.x.swp")" = $'b0VIM 9.0\n\x01 swap' ]
	rm "$MNT/incoming/.x.swp"
	# Removed while still open, too.
	exec 4>"$MNT/incoming/.y.tmp"
	printf 'partial' >&4
	rm "$MNT/incoming/.y.tmp"
	exec 4>&-
	[ "$(listing)" = "" ]
	iterfs_unmount
	[ "$(sum "$STORE")" = "$before" ]
	[ ! -e "$STORE.rejected" ]
}

@test "a name that just committed can still be stat'ed, chmod'ed, chown'ed, touched, renamed and removed" {
	seed "$STORE"
	iterfs_mount "$STORE"
	# One process, right after close: inside the short grace period.
	run python3 - "$MNT/incoming" "$(rec grace)" "$(rec gone)" <<'PY'
import os, sys
inc, text, text2 = sys.argv[1:4]
p, q = os.path.join(inc, "g"), os.path.join(inc, "h")
with open(p, "w") as f:
    f.write(text)
listed = os.listdir(inc)
st = os.stat(p)
os.chmod(p, 0o600)
os.chown(p, st.st_uid, st.st_gid)
os.utime(p, (1700000000, 1700000000))
os.rename(p, os.path.join(inc, "g2"))
with open(q, "w") as f:
    f.write(text2)
os.unlink(q)
print("listed", listed)
PY
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "listed []" ]
	[ "$(iter_count)" -eq 5 ]
	[ "$(wc -l <"$STORE")" -eq 5 ]
	[ "$(cat "$MNT/iterations/3/code.py")" = grace ]
	[ "$(cat "$MNT/iterations/4/code.py")" = gone ]
	[ "$(listing)" = "" ]
	[ ! -e "$STORE.rejected" ]
}

# start_drops N: N Python writers each write a complete record w<i> into
# incoming/w<i> and close it; returns once every one has written and is in
# close().  $DROPS holds their pids; what close gave each ("ok" or the
# exception) goes to $BATS_TEST_TMPDIR/w<i>.out.
start_drops() {
	local i line
	DROPS=()
	mkfifo "$BATS_TEST_TMPDIR/written"
	exec 5<>"$BATS_TEST_TMPDIR/written"
	for i in $(seq "$1"); do
		python3 - "$MNT/incoming/w$i" "$(rec "w$i" "$i")" "$BATS_TEST_TMPDIR/written" \
			>"$BATS_TEST_TMPDIR/w$i.out" 2>&1 3>&- 5>&- <<'PY' &
import sys
path, text, written = sys.argv[1:4]
f = open(path, "w")
f.write(text)
f.flush()
with open(written, "w") as w:
    w.write("written\n")
try:
    f.close()
    print("ok")
except OSError as e:
    print("close:", e)
PY
		DROPS+=($!)
	done
	bg_track "${DROPS[@]}"
	for i in $(seq "$1"); do
		read -r -t 30 -u 5 line
		[ "$line" = written ]
	done
	exec 5>&-
	wait_in_close "${DROPS[@]}"
}

drops_done() {
	local pid
	for pid in "${DROPS[@]}"; do
		iterfs_wait_exit "$pid"
	done
}

@test "kill -9 of a writer blocked in close on a held lock does not commit its drop" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	hold_lock
	start_drops 1
	kill -KILL "${DROPS[0]}"
	[ "$(sum "$STORE")" = "$before" ]
	release_lock
	drops_done
	# Dropped after the killed one, through the same committer: once this
	# one is durable, the killed drop has had its answer.
	run py_drop "$MNT/incoming/after" "$(rec after)"
	[ "$output" = ok ]
	[ "$(iter_count)" -eq 4 ]
	[ "$(wc -l <"$STORE")" -eq 4 ]
	[ "$(cat "$MNT/iterations/3/code.py")" = after ]
	[ "$(grep -c '"w1"' "$STORE")" -eq 0 ]
	# Nothing is lost: the interrupted drop is kept (at its release,
	# which the unmount settles).
	iterfs_unmount
	[ "$(cat "$STORE.rejected/w1")" = "$(rec w1 1)" ]
	[ -s "$STORE.rejected/w1.reason" ]
}

@test "a foreign flock on the store while a dozen drops wait does not stop ls and cat" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE"
	hold_lock
	start_drops 12
	# timeout only guards against a hang.
	run timeout 20 ls "$MNT/iterations"
	[ "$status" -eq 0 ]
	[ "$output" = $'0\n1\n2' ]
	run timeout 20 cat "$MNT/iterations/1/code.py" "$MNT/iterations/2/metrics.json"
	[ "$status" -eq 0 ]
	[ "$output" = $'x = 1\n{\n  "sharpe": 0.2\n}' ]
	run timeout 20 stat -c %F "$MNT/latest"
	[ "$output" = "symbolic link" ]
	[ "$(sum "$STORE")" = "$before" ]
	release_lock
	drops_done
	for i in $(seq 12); do
		[ "$(cat "$BATS_TEST_TMPDIR/w$i.out")" = ok ]
	done
	[ "$(iter_count)" -eq 15 ]
	run python3 - "$STORE" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
assert sorted(r["iteration"] for r in recs) == list(range(15))
assert sorted(r["code"] for r in recs[3:]) == sorted(f"w{i}" for i in range(1, 13))
print("ok")
PY
	[ "$output" = ok ]
}

@test "with lock_timeout=2 drops waiting on a foreign flock fail with ETIMEDOUT and are kept" {
	seed "$STORE"
	before=$(sum "$STORE")
	iterfs_mount "$STORE" -o lock_timeout=2
	hold_lock
	start_drops 12
	drops_done
	for i in $(seq 12); do
		[ "$(cat "$BATS_TEST_TMPDIR/w$i.out")" = "close: [Errno 110] Connection timed out" ]
	done
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(iter_count)" -eq 3 ]
	for i in $(seq 12); do
		[ "$(cat "$STORE.rejected/w$i")" = "$(rec "w$i" "$i")" ]
		cmp "$STORE.rejected/w$i" "$MNT/incoming/w$i.rejected"
		grep -q '^Connection timed out' "$MNT/incoming/w$i.reason"
	done
	release_lock
	# The lock free again, the same mount commits.
	run py_drop "$MNT/incoming/later" "$(rec later)"
	[ "$output" = ok ]
	[ "$(cat "$MNT/iterations/3/code.py")" = later ]
}

@test "kept drops of a 0600 store are readable by its owner and not by another user" {
	command -v useradd >/dev/null || skip "useradd missing (package passwd)"
	# The bats directories are 0700: a directory others may enter, so that
	# only the kept files' own modes decide.
	D=$(mktemp -d /tmp/iterfs-perm.XXXXXX)
	echo "$D" >"$BATS_TEST_TMPDIR/.dir"
	chmod 755 "$D"
	STORE=$D/hist.jsonl
	seed "$STORE"
	chmod 600 "$STORE"
	OTHER=iterfs-t$$
	useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$OTHER"
	echo "$OTHER" >"$BATS_TEST_TMPDIR/.user"
	iterfs_mount "$STORE"
	run py_drop "$MNT/incoming/x" '{"code": 42, "metrics": {"sharpe": 1}}'
	[ "$output" = "close: [Errno 22] Invalid argument" ]
	[ "$(stat -c %a "$STORE.rejected")" = 700 ]
	[ "$(stat -c %a "$STORE.rejected/x")" = 600 ]
	[ "$(stat -c %a "$STORE.rejected/x.reason")" = 600 ]
	# The other user can read a public file beside the store...
	printf probe >"$D/public"
	chmod 644 "$D/public"
	[ "$(runuser -u "$OTHER" -- cat "$D/public")" = probe ]
	# ...but neither the kept drop nor its reason.
	run runuser -u "$OTHER" -- cat "$STORE.rejected/x"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
	run runuser -u "$OTHER" -- cat "$STORE.rejected/x.reason"
	[ "$status" -ne 0 ]
	[ "$(stat -c %U "$STORE.rejected/x")" = "$(stat -c %U "$STORE")" ]
	[ "$(cat "$STORE.rejected/x")" = '{"code": 42, "metrics": {"sharpe": 1}}' ]
	grep -q '"code"' "$STORE.rejected/x.reason"
}

@test "records committed within one second list newest first under ls -t, by microsecond" {
	seed "$STORE"
	iterfs_mount "$STORE"
	# Numbers 3..6, timestamps in the order 4 6 3 5 within one second.
	for n in 3 4 5 6; do
		case $n in
		3) us=000300 ;; 4) us=000100 ;; 5) us=000500 ;; 6) us=000200 ;;
		esac
		printf '{"iteration": %d, "code": "t%d", "metrics": {"sharpe": 1}, "timestamp": "2025-10-12T10:00:00.%s"}\n' \
			"$n" "$n" "$us"
	done >"$BATS_TEST_TMPDIR/four"
	cp "$BATS_TEST_TMPDIR/four" "$MNT/incoming/four"
	[ "$(iter_count)" -eq 7 ]
	[ "$(ls -t "$MNT/iterations" | tr '\n' ' ')" = "5 3 6 4 2 1 0 " ]
	[[ "$(stat -c %y "$MNT/iterations/5")" == *":00.000500000 "* ]]
	[ "$(cd "$MNT/iterations" && ls -t 6/code.py 4/code.py 3/code.py 5/code.py | tr '\n' ' ')" = "5/code.py 3/code.py 6/code.py 4/code.py " ]
}
