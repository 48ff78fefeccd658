#!/usr/bin/env bats
# incoming/ as the tools people use see it: each writer puts a valid record
# (committed exactly once, exit 0, nothing left behind) and an invalid one
# (non-zero exit where the tool reports close or rename errors, nothing
# committed, the drop kept with its reason).

load helpers

# A drop into the seeded store must carry code and metrics; BAD has the
# wrong type for code.  GOOD_CODE and GOOD_METRICS are what the mount shows
# for GOOD.
GOOD=$'{"code": "w = 1\\n", "metrics": {"sharpe": 1.25}}\n'
GOOD_CODE=$'w = 1\n'
GOOD_METRICS=$'{\n  "sharpe": 1.25\n}\n'
BAD=$'{"code": 42, "metrics": {"sharpe": 1.25}}\n'

setup() {
	STORE=$BATS_TEST_TMPDIR/hist.jsonl
	# Under /tmp: another filesystem than the mount (checked by the mv tests).
	SRC=$BATS_TEST_TMPDIR/src/rec.json
	mkdir -p "${SRC%/*}"
	seed "$STORE"
	iterfs_mount "$STORE"
}

teardown() {
	iterfs_unmount_all
}

# The writers.  Each puts the file $1 into incoming/ under its base name the
# way its users do; the exit status is the tool's.
w_cp() { cp "$1" "$MNT/incoming/"; }
w_cp_p() { cp -p "$1" "$MNT/incoming/"; }
w_cp_a() { cp -a "$1" "$MNT/incoming/"; }
w_install() { install -m 644 "$1" "$MNT/incoming/"; }
w_mv() { mv "$1" "$MNT/incoming/"; }
w_rsync() { rsync "$1" "$MNT/incoming/"; }
w_rsync_inplace() { rsync --inplace "$1" "$MNT/incoming/"; }
w_shell() { echo "$(<"$1")" >"$MNT/incoming/${1##*/}"; }

# vim (or vi from vim-tiny) in silent Ex mode writes a new file: its swap
# file .rec.json.swp sits beside it in incoming/ until it quits.
w_vim() {
	local vim
	vim=$(command -v vim || command -v vi)
	"$vim" -es -u NONE -i NONE -c "read $1" -c wq "$MNT/incoming/${1##*/}" </dev/null
}

w_python() {
	python3 - "$1" "$MNT/incoming" <<'EOF'
import os, sys
src, incoming = sys.argv[1:3]
data = open(src, "rb").read()
f = open(os.path.join(incoming, os.path.basename(src)), "wb")
f.write(data)
f.close()
EOF
}

# The usual atomic save: a hidden temp beside the target, os.replace, and
# the temp removed when anything fails.
w_os_replace() {
	python3 - "$1" "$MNT/incoming" <<'EOF'
import os, sys
src, incoming = sys.argv[1:3]
name = os.path.basename(src)
tmp = os.path.join(incoming, "." + name + ".tmp")
data = open(src, "rb").read()
try:
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, os.path.join(incoming, name))
except BaseException:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    raise
EOF
}

# NamedTemporaryFile names its file tmpXXXXXXXX: a plain name, committed at
# close; delete=True then unlinks it.
w_tempfile() {
	python3 - "$1" "$MNT/incoming" <<'EOF'
import sys, tempfile
src, incoming = sys.argv[1:3]
data = open(src, "rb").read()
with tempfile.NamedTemporaryFile(dir=incoming) as f:
    f.write(data)
EOF
}

# delete=False, then renamed to the final name.
w_tempfile_replace() {
	python3 - "$1" "$MNT/incoming" <<'EOF'
import os, sys, tempfile
src, incoming = sys.argv[1:3]
data = open(src, "rb").read()
with tempfile.NamedTemporaryFile(dir=incoming, delete=False) as f:
    f.write(data)
os.replace(f.name, os.path.join(incoming, os.path.basename(src)))
EOF
}

# committed WRITER: the valid record, written by WRITER, is committed once.
committed() {
	local n before
	printf '%s' "$GOOD" >"$SRC"
	n=$(iter_count)
	before=$(wc -l <"$STORE")
	run "$1" "$SRC"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(iter_count)" -eq $((n + 1)) ]
	[ "$(wc -l <"$STORE")" -eq $((before + 1)) ]
	cmp <(printf '%s' "$GOOD_CODE") "$MNT/iterations/3/code.py"
	cmp <(printf '%s' "$GOOD_METRICS") "$MNT/iterations/3/metrics.json"
	[ "$(readlink "$MNT/latest")" = iterations/3 ]
	nothing_left
}

# Right after the writer exits: the committed name is not listed, no swap or
# temp file is left, and nothing was kept as rejected.
nothing_left() {
	[ "$(listing)" = "" ]
	[ "$(kept_drops)" = "" ]
	[ -z "$(ls -A "$STORE.rejected" 2>/dev/null)" ]
}

# rejected WRITER KEPT [STATUS]: the invalid record, written by WRITER,
# makes it exit non-zero (or with STATUS), commits nothing, and is kept (as
# KEPT, a glob) byte for byte with a reason that names the field.
rejected() {
	local n before
	printf '%s' "$BAD" >"$SRC"
	n=$(iter_count)
	before=$(sum "$STORE")
	run "$1" "$SRC"
	echo "$output"
	if [ -n "${3:-}" ]; then
		[ "$status" -eq "$3" ]
	else
		[ "$status" -ne 0 ]
	fi
	[ "$(iter_count)" -eq "$n" ]
	[ "$(sum "$STORE")" = "$before" ]
	kept_as "$2" "$BAD"
}

# kept_as GLOB BYTES: exactly one drop is kept, its name matches GLOB, it
# holds BYTES beside the store and under incoming/, its reason names the
# code field, and incoming/ shows nothing else.
kept_as() {
	local kept
	kept=$(kept_drops)
	kept=${kept% }
	[[ "$kept" != *" "* ]]
	# shellcheck disable=SC2053 # $1 is a glob
	[[ "$kept" == $1 ]]
	cmp <(printf '%s' "$2") "$STORE.rejected/$kept"
	cmp <(printf '%s' "$2") "$MNT/incoming/$kept.rejected"
	cmp "$STORE.rejected/$kept.reason" "$MNT/incoming/$kept.reason"
	grep -q '"code"' "$MNT/incoming/$kept.reason"
	[ "$(LC_ALL=C ls -A "$STORE.rejected" | tr '\n' ' ')" = "$kept $kept.reason " ]
	[ "$(listing)" = "$kept.reason $kept.rejected " ]
}

@test "cp of a valid record exits 0 and commits it once" {
	committed w_cp
}

@test "cp of an invalid record fails, commits nothing and keeps it" {
	rejected w_cp rec.json
}

@test "cp -p of a valid record exits 0 and commits it once" {
	committed w_cp_p
}

@test "cp -p of an invalid record fails, commits nothing and keeps it" {
	rejected w_cp_p rec.json
}

@test "cp -a of a valid record exits 0 and commits it once" {
	committed w_cp_a
}

@test "cp -a of an invalid record fails, commits nothing and keeps it" {
	rejected w_cp_a rec.json
}

@test "install -m 644 of a valid record exits 0 and commits it once" {
	committed w_install
}

@test "install -m 644 of an invalid record fails, commits nothing and keeps it" {
	rejected w_install rec.json
}

@test "mv of a valid record from /tmp exits 0, commits it once and removes the source" {
	[ "$(stat -c %d "$SRC")" != "$(stat -c %d "$MNT/incoming")" ]
	committed w_mv
	[ ! -e "$SRC" ]
}

@test "mv of an invalid record from /tmp fails, commits nothing, keeps it and the source" {
	[ "$(stat -c %d "$SRC")" != "$(stat -c %d "$MNT/incoming")" ]
	rejected w_mv rec.json
	cmp <(printf '%s' "$BAD") "$SRC"
}

@test "rsync of a valid record exits 0 and commits it once" {
	committed w_rsync
}

@test "rsync of an invalid record fails, commits nothing and keeps it under its name" {
	rejected w_rsync rec.json
}

@test "rsync retried after a failure commits a valid record exactly once" {
	printf '%s' "$GOOD" >"$SRC"
	n=$(iter_count)
	rsync "$SRC" "$MNT/incoming/" || rsync "$SRC" "$MNT/incoming/"
	[ "$(iter_count)" -eq $((n + 1)) ]
	[ "$(wc -l <"$STORE")" -eq 4 ]
	cmp <(printf '%s' "$GOOD_CODE") "$MNT/iterations/3/code.py"
	nothing_left
}

@test "rsync --inplace of a valid record exits 0 and commits it once" {
	committed w_rsync_inplace
}

@test "rsync --inplace of an invalid record fails, commits nothing and keeps it" {
	rejected w_rsync_inplace rec.json
}

# A rejected drop fixed in place: sed writes a temp file beside it, then
# renames the temp over incoming/rec.json.rejected.
reject_for_sed() {
	printf '%s' "$BAD" >"$SRC"
	run w_python "$SRC"
	[ "$status" -ne 0 ]
	[[ "$output" == *"[Errno 22] Invalid argument"* ]]
	[ "$(kept_drops)" = "rec.json " ]
}

@test "sed -i fixing a rejected drop exits 0, commits it once and clears the rejection" {
	reject_for_sed
	n=$(iter_count)
	run sed -i 's/"code": 42/"code": "w = 1\\n"/' "$MNT/incoming/rec.json.rejected"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(iter_count)" -eq $((n + 1)) ]
	[ "$(wc -l <"$STORE")" -eq 4 ]
	cmp <(printf '%s' "$GOOD_CODE") "$MNT/iterations/3/code.py"
	cmp <(printf '%s' "$GOOD_METRICS") "$MNT/iterations/3/metrics.json"
	# Fixed and committed, the drop is no longer a rejected one: its kept
	# copy and reason go (sed renamed its committed temp onto it).
	nothing_left
}

@test "sed -i leaving a rejected drop invalid fails, commits nothing and keeps both versions" {
	reject_for_sed
	n=$(iter_count)
	before=$(sum "$STORE")
	run sed -i 's/42/43/' "$MNT/incoming/rec.json.rejected"
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$(iter_count)" -eq "$n" ]
	[ "$(sum "$STORE")" = "$before" ]
	# The file sed edited is untouched; its attempt is kept under the
	# temp name sed gave it.
	cmp <(printf '%s' "$BAD") "$MNT/incoming/rec.json.rejected"
	kept=$(kept_drops)
	[[ "$kept" == "rec.json "* ]]
	other=${kept#rec.json }
	other=${other% }
	[[ "$other" == sed* ]]
	[[ "$other" != *" "* ]]
	cmp <(printf '%s' "${BAD/42/43}") "$STORE.rejected/$other"
	grep -q '"code"' "$MNT/incoming/$other.reason"
	[ "$(listing)" = "rec.json.reason rec.json.rejected $other.reason $other.rejected " ]
}

@test "vim -es writing a valid record exits 0, commits it once and leaves no swap file" {
	committed w_vim
}

@test "vim -es writing an invalid record fails, commits nothing and keeps it" {
	rejected w_vim rec.json
}

@test "Python open, write and close of a valid record exits 0 and commits it once" {
	committed w_python
}

@test "Python open, write and close of an invalid record raises at close and keeps it" {
	rejected w_python rec.json
	[[ "$output" == *"OSError: [Errno 22] Invalid argument" ]]
}

@test "os.replace of a hidden temp onto a valid record name exits 0 and commits it once" {
	committed w_os_replace
}

@test "os.replace of a hidden temp holding an invalid record raises and keeps it under the target name" {
	rejected w_os_replace rec.json
	[[ "$output" == *"[Errno 22] Invalid argument: '$MNT/incoming/.rec.json.tmp' -> '$MNT/incoming/rec.json'" ]]
}

@test "NamedTemporaryFile in incoming/ holding a valid record exits 0 and commits it once" {
	committed w_tempfile
}

@test "NamedTemporaryFile in incoming/ holding an invalid record raises and keeps it" {
	rejected w_tempfile 'tmp*'
	[[ "$output" == *"[Errno 22] Invalid argument"* ]]
}

@test "NamedTemporaryFile with delete=False renamed onto a valid record name exits 0 and commits it once" {
	committed w_tempfile_replace
}

@test "NamedTemporaryFile with delete=False holding an invalid record raises and keeps it" {
	rejected w_tempfile_replace 'tmp*'
	[[ "$output" == *"[Errno 22] Invalid argument"* ]]
}

@test "shell redirection of a valid record exits 0 and commits it once" {
	committed w_shell
}

# The shell ignores the result of closing a redirection: it exits 0 though
# the record was rejected (the reason is all the writer gets).
@test "shell redirection of an invalid record exits 0, commits nothing and keeps it" {
	rejected w_shell rec.json 0
}
