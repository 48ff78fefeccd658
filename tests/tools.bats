#!/usr/bin/env bats
# iterfs-commit and iterfs-check, end to end with the built binaries.
# Real histories are read in place; commits go into copies under
# $BATS_TEST_TMPDIR.

load helpers

setup() {
	STORE=$BATS_TEST_TMPDIR/hist.jsonl
	D=$BATS_TEST_TMPDIR
}

sum() {
	sha256sum <"$1" | cut -d' ' -f1
}

# Three records in the "iteration" dialect, the last without LF.
seed() {
	printf '%s\n%s\n%s' \
		'{"iteration": 0, "code": "x = 0\n", "timestamp": "2025-10-11T15:46:30.605350"}' \
		'{"iteration": 1, "code": "x = 1\n", "timestamp": "2025-10-11T15:46:31.605350"}' \
		'{"iteration": 2, "code": null, "timestamp": "2025-10-11T15:46:32.605350"}' >"$1"
}

# LeakSanitizer cannot run under ptrace: strace runs of a sanitizer build
# keep ASan and UBSan but skip the leak check.
traced() {
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -o /dev/null "$@"
}

no_temps() {
	! ls -A "$(dirname "$1")" | grep -F ".$(basename "$1").iterfs-tmp."
}

TS='"timestamp":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}"'

@test "iterfs-commit --help and --version print and exit 0" {
	run "$ITERFS_COMMIT" --help
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "usage: iterfs-commit [-m SIZE] [-w SECONDS] STORE [FILE...]" ]]
	run "$ITERFS_COMMIT" --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^iterfs-commit\ [0-9]+\.[0-9]+ ]]
}

@test "iterfs-commit without a store or with a bad option is a usage error" {
	run "$ITERFS_COMMIT"
	[ "$status" -eq 2 ]
	[[ "$output" == *"usage: iterfs-commit"* ]]
	run "$ITERFS_COMMIT" --frobnicate "$STORE"
	[ "$status" -eq 2 ]
	run "$ITERFS_COMMIT" -m 12Q "$STORE"
	[ "$status" -eq 2 ]
	[[ "$output" == "iterfs-commit: bad size: 12Q" ]]
	[ ! -e "$STORE" ]
}

@test "a record in a file is committed into a new store with number 0 and a timestamp" {
	printf '{\n  "code": "print(1)\\n",\n  "metrics": {"s": 1E-5, "n": NaN}\n}\n' >"$D/r.json"
	run "$ITERFS_COMMIT" "$STORE" "$D/r.json"
	[ "$status" -eq 0 ]
	[ "$output" = "committed iteration 0 from $D/r.json" ]
	[ "$(wc -l <"$STORE")" -eq 1 ]
	[[ "$(cat "$STORE")" =~ ^\{\"iteration\":0,\"code\":\"print\(1\)\\n\",\"metrics\":\{\"s\":1E-5,\"n\":NaN\},$TS\}$ ]]
	[ "$(stat -c %a "$STORE")" = 644 ]
	no_temps "$STORE"
}

@test "a record on stdin is committed after the highest number" {
	seed "$STORE"
	run "$ITERFS_COMMIT" "$STORE" <<<'{"code": "y = 2"}'
	[ "$status" -eq 0 ]
	[ "$output" = "committed iteration 3 from stdin" ]
	# The old last line had no LF: it got one, every old byte is kept.
	seed "$D/old"
	cmp -n "$(stat -c %s "$D/old")" "$D/old" "$STORE"
	[ "$(tail -c +"$(($(stat -c %s "$D/old") + 1))" "$STORE" | head -c 1 | od -An -c | tr -d ' ')" = '\n' ]
	[[ "$(sed -n 4p "$STORE")" =~ ^\{\"iteration\":3,\"code\":\"y\ =\ 2\",$TS\}$ ]]
	run "$ITERFS_COMMIT" "$STORE" - <<<'{"code": null}'
	[ "$status" -eq 0 ]
	[ "$output" = "committed iteration 4 from stdin" ]
}

@test "several files are committed in one run, numbered in argument order" {
	seed "$STORE"
	printf '{"code": null, "a": 1}' >"$D/a.json"
	printf '{"code": null, "b": 1}\n{"code": null, "b": 2}\n' >"$D/b.json"
	printf '{"iteration": 10, "code": null, "c": 1}' >"$D/c.json"
	printf '{"code": null, "d": 1}' >"$D/d.json"
	run "$ITERFS_COMMIT" "$STORE" "$D/a.json" "$D/b.json" "$D/c.json" "$D/d.json"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "committed iteration 3 from $D/a.json" ]
	[ "${lines[1]}" = "committed 2 records, iterations 4 to 5 from $D/b.json" ]
	[ "${lines[2]}" = "committed iteration 10 from $D/c.json" ]
	[ "${lines[3]}" = "committed iteration 11 from $D/d.json" ]
	run "$ITERFS_CHECK" "$STORE"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "records: 8" ]
}

@test "a record of the wrong type is rejected with exit 1, a reason, and nothing committed" {
	seed "$STORE"
	before=$(sum "$STORE")
	run "$ITERFS_COMMIT" "$STORE" <<<'{"iteration": "7"}'
	[ "$status" -eq 1 ]
	[ "$output" = 'iterfs-commit: stdin: Invalid argument: record 1: "iteration" must be an integer >= 0' ]
	run "$ITERFS_COMMIT" "$STORE" <<<'{"feedback": 3}'
	[ "$status" -eq 1 ]
	[ "$output" = 'iterfs-commit: stdin: Invalid argument: record 1: "feedback" must be a string or null' ]
	run "$ITERFS_COMMIT" "$STORE" <<<'[{"a": 1}]'
	[ "$status" -eq 1 ]
	[ "$output" = 'iterfs-commit: stdin: Invalid argument: record 1: not a JSON object (at byte 0)' ]
	run "$ITERFS_COMMIT" "$STORE" <<<'{"a": 1'
	[ "$status" -eq 1 ]
	[[ "$output" == 'iterfs-commit: stdin: Invalid argument: not JSON: syntax error at byte '* ]]
	[ "$(sum "$STORE")" = "$before" ]
	no_temps "$STORE"
}

@test "several objects in one drop commit all or none" {
	seed "$STORE"
	before=$(sum "$STORE")
	run "$ITERFS_COMMIT" "$STORE" <<<$'{"code": null, "a": 1}\n{"code": null, "a": 2}\n{"code": {}}'
	[ "$status" -eq 1 ]
	[ "$output" = 'iterfs-commit: stdin: Invalid argument: record 3: "code" must be a string or null' ]
	[ "$(sum "$STORE")" = "$before" ]
}

@test "a taken number with different content is EEXIST with exit 1 and nothing committed" {
	seed "$STORE"
	before=$(sum "$STORE")
	run "$ITERFS_COMMIT" "$STORE" <<<'{"iteration": 1, "code": "x = 9\n"}'
	[ "$status" -eq 1 ]
	[ "$output" = "iterfs-commit: stdin: File exists: record 1: iteration 1 already exists with different content" ]
	[ "$(sum "$STORE")" = "$before" ]
}

@test "a byte-identical re-send succeeds and adds nothing" {
	seed "$STORE"
	before=$(sum "$STORE")
	ino=$(stat -c %i "$STORE")
	# The same record, pretty-printed: same compact bytes.
	printf '{\n  "iteration": 1,\n  "code": "x = 1\\n",\n  "timestamp": "2025-10-11T15:46:31.605350"\n}\n' >"$D/again.json"
	run "$ITERFS_COMMIT" "$STORE" "$D/again.json"
	[ "$status" -eq 0 ]
	[ "$output" = "$D/again.json: already committed (identical)" ]
	[ "$(sum "$STORE")" = "$before" ]
	[ "$(stat -c %i "$STORE")" = "$ino" ]
}

@test "a drop over the size limit is EFBIG with exit 1 and nothing committed" {
	seed "$STORE"
	before=$(sum "$STORE")
	printf '{"code": "%s"}' "$(head -c 2000 /dev/zero | tr '\0' x)" >"$D/big.json"
	run "$ITERFS_COMMIT" -m 1k "$STORE" "$D/big.json"
	[ "$status" -eq 1 ]
	[ "$output" = "iterfs-commit: $D/big.json: File too large: the drop is 2012 bytes, over the limit of 1024" ]
	[ "$(sum "$STORE")" = "$before" ]
	run "$ITERFS_COMMIT" --max-record 2012 "$STORE" "$D/big.json"
	[ "$status" -eq 0 ]
}

@test "a rejected file among good ones: the good ones are committed, exit 1" {
	seed "$STORE"
	printf '{"code": null, "a": 1}' >"$D/good.json"
	printf '{"iteration": 0, "code": null}' >"$D/taken.json"
	run "$ITERFS_COMMIT" "$STORE" "$D/taken.json" "$D/good.json"
	[ "$status" -eq 1 ]
	[ "${lines[0]}" = "iterfs-commit: $D/taken.json: File exists: record 1: iteration 0 already exists with different content" ]
	[ "${lines[1]}" = "committed iteration 3 from $D/good.json" ]
	[ "$(wc -l <"$STORE")" -eq 4 ]
}

@test "an unreadable input file commits nothing and exits 2" {
	seed "$STORE"
	before=$(sum "$STORE")
	printf '{"a": 1}' >"$D/good.json"
	run "$ITERFS_COMMIT" "$STORE" "$D/good.json" "$D/missing.json"
	[ "$status" -eq 2 ]
	[ "$output" = "iterfs-commit: $D/missing.json: No such file or directory" ]
	[ "$(sum "$STORE")" = "$before" ]
}

@test "iterfs-commit -w gives up on a lock another tool holds and commits nothing" {
	seed "$STORE"
	before=$(sum "$STORE")
	# This shell holds the flock (as the Python client would) on fd 5.
	exec 5>"$STORE.lock"
	flock -x 5
	run "$ITERFS_COMMIT" -w 0.2 "$STORE" <<<'{"code": null, "a": 1}'
	exec 5>&-
	[ "$status" -eq 3 ]
	[[ "${lines[0]}" == "iterfs-commit: commit: lock $STORE.lock: Connection timed out after 200 ms"* ]]
	[ "${lines[1]}" = "iterfs-commit: $STORE.lock: Connection timed out" ]
	[ "$(sum "$STORE")" = "$before" ]
	run "$ITERFS_COMMIT" -w 0 "$STORE" <<<'{"code": null, "a": 1}'
	[ "$status" -eq 0 ]
	[ "$output" = "committed iteration 3 from stdin" ]
	run "$ITERFS_COMMIT" -w soon "$STORE" <<<'{"code": null, "a": 1}'
	[ "$status" -eq 2 ]
	[ "$output" = "iterfs-commit: bad wait: soon" ]
}

@test "iterfs-commit into a FIFO or a directory fails at once and says what it is" {
	mkfifo "$D/fifo.jsonl"
	run "$ITERFS_COMMIT" "$D/fifo.jsonl" <<<'{"code": null, "a": 1}'
	[ "$status" -eq 3 ]
	[ "${lines[-1]}" = "iterfs-commit: $D/fifo.jsonl: is a FIFO, not a regular file" ]
	mkdir "$D/dir.jsonl"
	run "$ITERFS_COMMIT" "$D/dir.jsonl" <<<'{"code": null, "a": 1}'
	[ "$status" -eq 3 ]
	[ "${lines[-1]}" = "iterfs-commit: $D/dir.jsonl: is a directory, not a regular file" ]
	[ ! -e "$D/fifo.jsonl.lock" ] && [ ! -e "$D/dir.jsonl.lock" ]
}

@test "iterfs-commit through a symlink updates the real file and keeps the link" {
	mkdir "$D/real"
	seed "$D/real/h.jsonl"
	ln -s real/h.jsonl "$D/link.jsonl"
	run "$ITERFS_COMMIT" "$D/link.jsonl" <<<'{"code": null, "a": 1}'
	[ "$status" -eq 0 ]
	[ "$output" = "committed iteration 3 from stdin" ]
	[ -L "$D/link.jsonl" ]
	[ "$(readlink "$D/link.jsonl")" = real/h.jsonl ]
	[ "$(wc -l <"$D/real/h.jsonl")" -eq 4 ]
	[ -e "$D/real/h.jsonl.lock" ] && [ ! -e "$D/link.jsonl.lock" ]
	no_temps "$D/real/h.jsonl"
	no_temps "$D/link.jsonl"
}

@test "an fsync failing with EIO is reported with exit 3 and the store is unchanged" {
	command -v strace >/dev/null || skip "strace not installed"
	seed "$STORE"
	before=$(sum "$STORE")
	run traced -e trace=fsync -e inject=fsync:error=EIO \
		"$ITERFS_COMMIT" "$STORE" <<<'{"code": null, "a": 1}'
	[ "$status" -eq 3 ]
	[[ "${lines[0]}" == "iterfs-commit: commit: fsync_temp $D/.hist.jsonl.iterfs-tmp."*": Input/output error" ]]
	[ "${lines[1]}" = "iterfs-commit: stdin: Input/output error: the commit failed at fsync_temp; the store is unchanged" ]
	[ "$(sum "$STORE")" = "$before" ]
	no_temps "$STORE"
	# Nothing is left half-done: the next commit takes number 3.
	run "$ITERFS_COMMIT" "$STORE" <<<'{"code": null, "a": 1}'
	[ "$status" -eq 0 ]
	[ "$output" = "committed iteration 3 from stdin" ]
}

@test "a write failing with ENOSPC and a failing rename leave the store unchanged" {
	command -v strace >/dev/null || skip "strace not installed"
	seed "$STORE"
	before=$(sum "$STORE")
	run traced -e trace=pwrite64 -e inject=pwrite64:error=ENOSPC \
		"$ITERFS_COMMIT" "$STORE" <<<'{"code": null, "a": 1}'
	[ "$status" -eq 3 ]
	[[ "$output" == *"stdin: No space left on device: the commit failed at append; the store is unchanged" ]]
	[ "$(sum "$STORE")" = "$before" ]
	run traced -e trace=rename,renameat,renameat2 \
		-e inject=rename,renameat,renameat2:error=EIO \
		"$ITERFS_COMMIT" "$STORE" <<<'{"code": null, "a": 1}'
	[ "$status" -eq 3 ]
	[[ "$output" == *"stdin: Input/output error: the commit failed at rename; the store is unchanged" ]]
	[ "$(sum "$STORE")" = "$before" ]
	no_temps "$STORE"
}

@test "a commit into a copy of each real history takes the next number under its key" {
	need_real llm_only_50.jsonl
	local f n key
	for f in llm_only_50:50:iteration_num json_mode_test:20:iteration_num \
		unified_factor_graph:21:iteration_num migrated_no_code:20:iteration; do
		IFS=: read -r f n key <<<"$f"
		cp "$REAL/$f.jsonl" "$D/$f.jsonl"
		chmod u+w "$D/$f.jsonl"
		orig=$(sum "$REAL/$f.jsonl")
		# Incomplete (the fields every record has are missing): refused.
		run "$ITERFS_COMMIT" "$D/$f.jsonl" <<<'{"strategy_code": "pass", "metrics": {"sharpe_ratio": 1.5}}'
		[ "$status" -eq 1 ]
		[[ "$output" == *"Invalid argument: record 1: missing fields: "* ]]
		[ "$(sum "$D/$f.jsonl")" = "$orig" ]
		# Complete: the fields of the last record, new code and metrics.
		python3 - "$D/$f.jsonl" >"$D/$f.new" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1], encoding="utf-8").read().splitlines()[-1])
for k in ("iteration", "iteration_num", "timestamp"):
    r.pop(k, None)
r["strategy_code"] = "pass"
r["metrics"] = {"sharpe_ratio": 1.5}
print(json.dumps(r, separators=(",", ":"), ensure_ascii=False))
EOF
		run "$ITERFS_COMMIT" "$D/$f.jsonl" "$D/$f.new"
		[ "$status" -eq 0 ]
		[ "$output" = "committed iteration $n from $D/$f.new" ]
		[ "$(head -n "$n" "$D/$f.jsonl" | sum /dev/stdin)" = "$orig" ]
		[ "$(tail -n 1 "$D/$f.jsonl")" = "{\"$key\":$n,$(head -c -2 "$D/$f.new" | tail -c +2),$(tail -n 1 "$D/$f.jsonl" | grep -Eo "$TS")}" ]
		run "$ITERFS_CHECK" "$D/$f.jsonl"
		[ "$status" -eq 0 ]
		[ "${lines[1]}" = "iterations: $((n + 1))" ]
		python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$D/$f.jsonl"
	done
}

@test "iterfs-check --help, --version and usage errors" {
	run "$ITERFS_CHECK" --help
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "usage: iterfs-check STORE" ]
	run "$ITERFS_CHECK" --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^iterfs-check\ [0-9]+\.[0-9]+ ]]
	run "$ITERFS_CHECK"
	[ "$status" -eq 2 ]
	run "$ITERFS_CHECK" a b
	[ "$status" -eq 2 ]
}

@test "iterfs-check of a missing store or a directory exits 3" {
	run "$ITERFS_CHECK" "$D/nope.jsonl"
	[ "$status" -eq 3 ]
	[ "$output" = "iterfs-check: $D/nope.jsonl: No such file or directory" ]
	run "$ITERFS_CHECK" "$D"
	[ "$status" -eq 3 ]
	[ "$output" = "iterfs-check: $D: not a regular file" ]
}

@test "iterfs-check reads each real history in place and finds it clean" {
	need_real llm_only_50.jsonl
	local spec f rec codes nots
	for spec in llm_only_50:50:50:0 json_mode_test:20:14:0 \
		unified_factor_graph:21:9:0 migrated_no_code:20:0:20; do
		IFS=: read -r f rec codes nots <<<"$spec"
		before=$(stat -c '%s %Y' "$REAL/$f.jsonl")
		run "$ITERFS_CHECK" "$REAL/$f.jsonl"
		[ "$status" -eq 0 ]
		[ "$output" = "records: $rec
iterations: $rec
distinct codes: $codes
skipped lines: 0
duplicate numbers: 0
code_hash mismatches: 0
timestamps missing: $nots" ]
		[ "$(stat -c '%s %Y' "$REAL/$f.jsonl")" = "$before" ]
		[ ! -e "$REAL/$f.jsonl.lock" ]
	done
}

@test "iterfs-check lists garbage lines, a torn tail and duplicates with exit 1" {
	{
		printf '{"iteration": 0, "code": "a"}\n'
		printf 'garbage\n'
		printf '{"iteration": 1, "code": "a"}\n'
		printf '\n'
		printf '[1, 2]\n'
		printf '{"no_number": true}\n'
		printf '{"iteration": 1, "code": "b"}\n'
		printf '{"iteration": 2, "code": "tor'
	} >"$STORE"
	before=$(sum "$STORE")
	run "$ITERFS_CHECK" "$STORE"
	[ "$status" -eq 1 ]
	[ "$output" = "records: 3
iterations: 2
distinct codes: 2
skipped lines: 4 (lines 2, 5, 6, 8)
duplicate numbers: 1
code_hash mismatches: 0
timestamps missing: 2" ]
	[ "$(sum "$STORE")" = "$before" ]
	# A commit keeps every byte of the bad lines and adds its own line.
	cp "$STORE" "$D/old"
	run "$ITERFS_COMMIT" "$STORE" <<<'{"code": "c"}'
	[ "$status" -eq 0 ]
	[ "$output" = "committed iteration 2 from stdin" ]
	cmp -n "$(stat -c %s "$D/old")" "$D/old" "$STORE"
	[ "$(sed -n 8p "$STORE")" = '{"iteration": 2, "code": "tor' ]
	[[ "$(sed -n 9p "$STORE")" =~ ^\{\"iteration\":2,\"code\":\"c\",$TS\}$ ]]
}

@test "iterfs-check shows the first 20 skipped line numbers, then ..." {
	for i in $(seq 1 25); do
		printf 'bad %d\n{"iteration": %d}\n' "$i" "$i"
	done >"$STORE"
	run "$ITERFS_CHECK" "$STORE"
	[ "$status" -eq 1 ]
	[ "${lines[3]}" = "skipped lines: 25 (lines 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35, 37, 39, ...)" ]
}

@test "iterfs-check counts code_hash mismatches" {
	good=$(printf 'print(1)\n' | sha256sum | cut -d' ' -f1)
	bad=$(printf 'print(2)\n' | sha256sum | cut -d' ' -f1)
	{
		printf '{"iteration": 0, "code": "print(1)\\n", "code_hash": "%s", "timestamp": "2025-01-01T00:00:00"}\n' "$good"
		printf '{"iteration": 1, "code": "print(1)\\n", "code_hash": "%s", "timestamp": "2025-01-01T00:00:00"}\n' "$bad"
		printf '{"iteration": 2, "code": "print(1)\\n", "code_hash": "xyz", "timestamp": "2025-01-01T00:00:00"}\n'
	} >"$STORE"
	run "$ITERFS_CHECK" "$STORE"
	[ "$status" -eq 1 ]
	[ "${lines[5]}" = "code_hash mismatches: 2 (iterations 1, 2)" ]
	# A store that uses code_hash gets it filled in, and checks clean.
	sed -i 2,3d "$STORE"
	run "$ITERFS_COMMIT" "$STORE" <<<'{"code": "print(2)\n"}'
	[ "$status" -eq 0 ]
	[[ "$(tail -n 1 "$STORE")" =~ ^\{\"iteration\":1,\"code\":\"print\(2\)\\n\",\"code_hash\":\"$bad\",$TS\}$ ]]
	run "$ITERFS_CHECK" "$STORE"
	[ "$status" -eq 0 ]
	# A given code_hash that does not match is rejected.
	before=$(sum "$STORE")
	run "$ITERFS_COMMIT" "$STORE" <<<"{\"code\": \"print(3)\\n\", \"code_hash\": \"$good\"}"
	[ "$status" -eq 1 ]
	[[ "$output" == 'iterfs-commit: stdin: Invalid argument: record 1: "code_hash" does not match the code'* ]]
	[ "$(sum "$STORE")" = "$before" ]
}

@test "iterfs-check says how many skipped lines carry a number the tree cannot show" {
	printf '%s\n' '{"iteration": 0}' '{"iteration": 4398046511102}' \
		'{"iteration": 4398046511103}' '{"iteration": 99999999999999999999}' \
		'garbage' >"$STORE"
	run "$ITERFS_CHECK" "$STORE"
	[ "$status" -eq 1 ]
	[ "${lines[3]}" = "skipped lines: 3 (lines 3, 4, 5)" ]
	[ "${lines[4]}" = "of them numbered above 4398046511102 (not shown): 2" ]
	[ "${lines[1]}" = "iterations: 2" ]
}
