#!/usr/bin/env bash
# Crash-image test (by hand, as root; not run in CI): does an acknowledged
# commit survive a crash right after its acknowledgement, on ext4 and XFS?
#
#   contrib/crash-image.sh [COMMITS]        (default 10 per filesystem)
#
# For each filesystem: a fresh image on a loop device (direct I/O, so the
# device holds exactly what the filesystem has submitted, with no page cache
# of the image file in between), mounted, a store seeded with three records.
# Then COMMITS times: iterfs-commit adds one record with a unique code and
# exits 0 (acknowledged); at once, with no sync, the device is copied with
# O_DIRECT reads: the image a power cut at that instant would leave behind,
# as far as submitted writes go.  Afterwards each snapshot is replayed: the
# journal/log recovered and checked (e2fsck -fy; for XFS a mount to replay
# the log, then xfs_repair -n), mounted, and checked: iterfs-check finds the
# store clean (every line parses, no skipped lines) and every record
# acknowledged before the snapshot is in it.
#
# What it proves: iterfs's fsync of the temp, rename and fsync of the
# directory have put each record on the device before iterfs-commit
# returns, and the filesystem comes back from that device state with a
# store that parses and holds it.  What it does not prove: a snapshot holds
# everything submitted, also writes not yet flushed, which a real power cut
# may drop or reorder (dm-log-writes replaying every flush point would test
# that); the disk's own cache is not modelled; one writer, no concurrency.
#
# CRASH_WRITER=seed commits with the seeds' own save instead (read all,
# write all, os.replace, no fsync): it should fail, which shows the check can.
#
# Needs: root, losetup, mkfs.ext4, e2fsck, mkfs.xfs, xfs_repair, python3, and
# iterfs-commit / iterfs-check built in $ITERFS_BUILD (default build/).
# Uses $CRASH_DIR (default /tmp/iterfs-crash; sparse images, a few hundred
# MB of real space at most).  Prints one line per snapshot and a summary;
# exits non-zero if any snapshot fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${ITERFS_BUILD:-$root/build}
dir=${CRASH_DIR:-/tmp/iterfs-crash}
commits=${1:-10}
commit=$build/core/iterfs-commit
check=$build/core/iterfs-check
size_mb=320 # mkfs.xfs wants 300 MB at least

for tool in losetup mkfs.ext4 e2fsck mkfs.xfs xfs_repair python3; do
	command -v "$tool" >/dev/null || { echo "crash-image: $tool missing" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "crash-image: run as root (loop devices, mount)" >&2; exit 2; }
[ -x "$commit" ] && [ -x "$check" ] || { echo "crash-image: build $build first" >&2; exit 2; }

loops=() mounts=()
cleanup() {
	local m l
	for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || true; done
	for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
}
trap cleanup EXIT

attach() { # image -> loop device (direct I/O)
	local dev
	dev=$(losetup -f --show --direct-io=on "$1")
	loops+=("$dev")
	echo "$dev"
}

detach() {
	losetup -d "$1"
}

mount_at() {
	mount "$1" "$2"
	mounts+=("$2")
}

# Every code in `want` (one per line) is a record of the store `$1`, which
# iterfs-check finds clean.
store_ok() {
	local store=$1 want=$2 json
	json=$("$check" --json "$store") || return 1
	python3 - "$store" "$want" "$json" <<'PY'
import json, sys
store, want, report = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if not report["clean"] or report["skipped_lines"]:
    sys.exit("not clean: %s" % report)
have = {json.loads(l).get("code") for l in open(store, encoding="utf-8") if l.strip()}
missing = [c for c in open(want).read().split() if c not in have]
if missing:
    sys.exit("missing acknowledged records: %s" % missing)
PY
}

run_fs() {
	local fs=$1 img=$dir/$1.img mnt=$dir/$1.mnt dev i snap code
	local acked=$dir/$1.acked
	rm -rf "$dir/$fs".*
	mkdir -p "$mnt"
	truncate -s ${size_mb}M "$img"
	case $fs in
	ext4) mkfs.ext4 -q -F "$img" ;;
	xfs) mkfs.xfs -q -f "$img" ;;
	esac
	dev=$(attach "$img")
	mount_at "$dev" "$mnt"
	for i in 0 1 2; do
		printf '{"iteration": %d, "code": "seed-%d", "metrics": {"sharpe": 0.%d}, "timestamp": "2026-01-01T00:00:0%d.000000"}\n' \
			"$i" "$i" "$i" "$i"
	done >"$mnt/h.jsonl"
	sync -f "$mnt/h.jsonl"
	printf 'seed-0\nseed-1\nseed-2\n' >"$acked"
	for ((i = 0; i < commits; i++)); do
		code=crash-$fs-$i
		if [ "${CRASH_WRITER:-}" = seed ]; then
			python3 - "$mnt/h.jsonl" "$code" <<'PY'
import json, os, sys
store, code = sys.argv[1], sys.argv[2]
recs = [json.loads(l) for l in open(store, encoding="utf-8") if l.strip()]
recs.append({"iteration": recs[-1]["iteration"] + 1, "code": code,
             "metrics": {"sharpe": 1}, "timestamp": "2026-01-01T00:00:00.000000"})
with open(store + ".tmp", "w", encoding="utf-8") as f:
    f.writelines(json.dumps(r) + "\n" for r in recs)
os.replace(store + ".tmp", store)
PY
		else
			printf '{"code": "%s", "metrics": {"sharpe": %d}}\n' "$code" "$i" |
				"$commit" "$mnt/h.jsonl" >/dev/null
		fi
		echo "$code" >>"$acked"
		# No sync: what is on the device right after the acknowledgement.
		dd if="$dev" of="$dir/$fs.snap.$i" bs=4M iflag=direct conv=sparse status=none
		cp "$acked" "$dir/$fs.snap.$i.want"
	done
	umount "$mnt"
	mounts=("${mounts[@]/$mnt}")
	detach "$dev"
	loops=("${loops[@]/$dev}")

	for ((i = 0; i < commits; i++)); do
		snap=$dir/$fs.snap.$i
		dev=$(attach "$snap")
		local how=ok rc=0
		case $fs in
		ext4)
			e2fsck -fy "$dev" >"$snap.fsck" 2>&1 || rc=$?
			# 0: clean, 1: errors corrected (a replayed journal counts).
			[ "$rc" -le 1 ] || how="e2fsck exit $rc"
			;;
		xfs)
			mount_at "$dev" "$mnt" && umount "$mnt" || how="log replay failed"
			mounts=("${mounts[@]/$mnt}")
			xfs_repair -n "$dev" >"$snap.fsck" 2>&1 || how="xfs_repair -n exit $?"
			;;
		esac
		if [ "$how" = ok ]; then
			mount_at "$dev" "$mnt"
			store_ok "$mnt/h.jsonl" "$snap.want" >"$snap.check" 2>&1 ||
				how="store: $(tail -1 "$snap.check")"
			umount "$mnt"
			mounts=("${mounts[@]/$mnt}")
		fi
		detach "$dev"
		loops=("${loops[@]/$dev}")
		echo "$fs snapshot $i ($((i + 4)) records acknowledged): $how"
		[ "$how" = ok ] || failed=$((failed + 1))
		rm -f "$snap"
	done
	rm -f "$img"
}

mkdir -p "$dir"
failed=0
for fs in ext4 xfs; do
	run_fs "$fs"
done
echo "$((2 * commits - failed)) of $((2 * commits)) snapshots recovered with every acknowledged record"
[ "$failed" -eq 0 ]
