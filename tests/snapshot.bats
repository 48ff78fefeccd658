#!/usr/bin/env bats
# An open file is a snapshot (contract): readers of iterations/<n>/ while
# another writer keeps replacing the store, as the Python loop saves it.

load helpers

teardown() {
	teardown_tracked
	iterfs_unmount_all
}

# The writer: iteration 1's code is version K, a different length for each
# K, every line naming K, so that a read mixing two versions shows.
WRITER='
import json, os, sys, time
store, stop = sys.argv[1], sys.argv[2]
def code(k):
    return "".join("v%d line %d %s\n" % (k, i, "x" * (k % 7)) for i in range(300 + 40 * (k % 5))) + "# end v%d\n" % k
k = 0
while not os.path.exists(stop):
    k += 1
    recs = [{"iteration": i, "code": code(k) if i == 1 else "x = %d\n" % i,
             "metrics": {"sharpe": 0.5}, "timestamp": "2025-10-11T15:46:3%d.605350" % i}
            for i in range(3)]
    tmp = store + ".tmp"
    with open(tmp, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    os.replace(tmp, store)
    with open(stop + ".count", "w") as f:
        f.write(str(k))
    time.sleep(0.03)
'

# One whole version: every line names the same K and the last line ends it.
CHECK='
import re
def whole(text):
    lines = text.split("\n")
    m = re.fullmatch(r"# end v(\d+)", lines[-2]) if len(lines) > 2 else None
    if not m or lines[-1] != "":
        return None
    k = m.group(1)
    n = len(lines) - 2
    want = 300 + 40 * (int(k) % 5)
    if n != want:
        return None
    for i, l in enumerate(lines[:-2]):
        if l != "v%s line %d %s" % (k, i, "x" * (int(k) % 7)):
            return None
    return int(k)
'

READER="$CHECK"'
import json, os, sys, time
d, rounds = sys.argv[1], int(sys.argv[2])
# Page by page, without readahead: one read request per page, so that a
# read served from two versions would show.
def pages(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        out = os.read(fd, 4096)
        # A replace may land between the pages of one open.
        time.sleep(0.002)
        while True:
            b = os.read(fd, 4096)
            if not b:
                return out.decode()
            out += b
    finally:
        os.close(fd)
seen = set()
for i in range(rounds):
    t = pages(d + "/code.py")
    k = whole(t)
    if k is None:
        sys.exit("code.py read %d is no whole version: %r" % (i, t[:80] + " ... " + t[-80:]))
    seen.add(k)
    r = json.loads(pages(d + "/record.json"))
    if whole(r["code"]) is None:
        sys.exit("record.json read %d holds no whole version" % i)
print(len(seen))
'

HOLDER="$CHECK"'
import os, sys, time
d, count = sys.argv[1], sys.argv[2]
def writes():
    with open(count) as f:
        return int(f.read() or 0)
with open(d + "/code.py", "rb") as f:
    head = f.read(100)
    start = writes()
    # The writer replaces the store every 30 ms: wait for a few replaces
    # and for the mount to show another version to a new open.
    while True:
        with open(d + "/code.py") as g:
            other = whole(g.read())
        if writes() >= start + 3 and other is not None and head.decode() and not head.decode().startswith("v%d " % other):
            break
        time.sleep(0.01)
    rest = f.read()
text = (head + rest).decode()
if whole(text) is None:
    sys.exit("a file held open across replaces read %r ... %r" % (text[:60], text[-60:]))
print("held", whole(text), "while the mount showed", other)
'

# As HOLDER, but nothing is read before the replaces: the first read of
# the descriptor comes after the mount shows a newer version to new opens.
# At open the store held version `start` or `start` + 1 (the count file is
# written just after each replace), so the bytes read must be one of those
# (or older, if the mount had not seen them yet).
HOLDER_UNREAD="$CHECK"'
import os, sys, time
d, count = sys.argv[1], sys.argv[2]
def writes():
    with open(count) as f:
        return int(f.read() or 0)
start = writes()
with open(d + "/code.py", "rb") as f:
    while True:
        with open(d + "/code.py") as g:
            other = whole(g.read())
        if other is not None and other > start + 1:
            break
        time.sleep(0.01)
    text = f.read().decode()
k = whole(text)
if k is None or k > start + 1:
    sys.exit("a file opened at version <= %d and read after the mount showed %d read %r ... %r" % (start + 1, other, text[:60], text[-60:]))
print("held", k, "while the mount showed", other)
'

start_writer() {
	STOP=$BATS_TEST_TMPDIR/stop
	python3 -c "$WRITER" "$STORE" "$STOP" 3>&- &
	WRITER_PID=$!
	bg_track "$WRITER_PID"
	# The first save exists before the mount reads the store.
	timeout 30 bash -c 'until [ -s "$1.count" ]; do sleep 0.01; done' - "$STOP"
}

stop_writer() {
	touch "$STOP"
	iterfs_wait_exit "$WRITER_PID"
}

readers_whole() {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	start_writer
	iterfs_mount "$STORE" "$@"
	local pids=() p failed=0
	for p in 1 2 3; do
		python3 -c "$READER" "$MNT/iterations/1" 2000 >"$BATS_TEST_TMPDIR/r$p" 2>&1 3>&- &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p" || failed=1
	done
	stop_writer
	cat "$BATS_TEST_TMPDIR"/r1 "$BATS_TEST_TMPDIR"/r2 "$BATS_TEST_TMPDIR"/r3
	[ "$failed" -eq 0 ]
	# The readers saw the record change while they read.
	[ "$(cat "$BATS_TEST_TMPDIR/r1")" -gt 1 ]
}

holder_whole() {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	start_writer
	iterfs_mount "$STORE" "$@"
	run timeout 120 python3 -c "$HOLDER" "$MNT/iterations/1" "$STOP.count"
	stop_writer
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == held* ]]
}

@test "readers see whole versions of a record while another writer keeps replacing it" {
	readers_whole
}

@test "a reader holding code.py open across replaces reads the version it opened" {
	holder_whole
}

@test "a reader that opened code.py and read nothing until after replaces reads the version it opened" {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	start_writer
	iterfs_mount "$STORE"
	run timeout 120 python3 -c "$HOLDER_UNREAD" "$MNT/iterations/1" "$STOP.count"
	stop_writer
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == held* ]]
}

# With -o ro the kernel opens files alone: no snapshot is taken at open.
# Its cached pages of an inode stay valid (each version has its own), and
# a page it reads later comes from the version the inode names while the
# daemon's view cache still holds it (tree.h).
@test "with -o ro too, readers see whole versions while the record is replaced" {
	readers_whole -o ro
}

@test "with -o ro too, a reader holding code.py open reads the version it opened" {
	holder_whole -o ro
}

@test "a new inode for each new content of a record, the same inode for the same content" {
	STORE=$BATS_TEST_TMPDIR/h.jsonl
	seed "$STORE"
	iterfs_mount "$STORE"
	local first second again
	first=$(stat -c %i "$MNT/iterations/1/code.py")
	sed 's/x = 1/x = 11/' "$STORE" >"$STORE.tmp" && mv "$STORE.tmp" "$STORE"
	timeout 10 bash -c 'until grep -q "x = 11" "$1"; do sleep 0.05; done' - "$MNT/iterations/1/code.py"
	second=$(stat -c %i "$MNT/iterations/1/code.py")
	[ "$second" != "$first" ]
	# Unchanged records keep their numbers.
	[ "$(stat -c %i "$MNT/iterations/2/code.py")" = $(( (3 << 4) | 1 )) ]
	sed 's/x = 11/x = 1/' "$STORE" >"$STORE.tmp" && mv "$STORE.tmp" "$STORE"
	timeout 10 bash -c 'until ! grep -q "x = 11" "$1"; do sleep 0.05; done' - "$MNT/iterations/1/code.py"
	sed 's/x = 1$/x = 11/; s/x = 1\\n/x = 11\\n/' "$STORE" >"$STORE.tmp" && mv "$STORE.tmp" "$STORE"
	timeout 10 bash -c 'until grep -q "x = 11" "$1"; do sleep 0.05; done' - "$MNT/iterations/1/code.py"
	again=$(stat -c %i "$MNT/iterations/1/code.py")
	[ "$again" = "$second" ]
}
