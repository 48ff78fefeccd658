#!/usr/bin/env bash
# Install what is missing (Debian 12, as root), build, and run every test.
# Usage: bash contrib/test.sh [--sanitize]
#   --sanitize   build in build-san/ with ASan+UBSan and run the unit tests there
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential meson ninja-build pkg-config libfuse3-dev fuse3 libcjson-dev
      libssl-dev bats python3 rsync tar strace e2fsprogs xfsprogs util-linux)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

dir=build suite=()
if [ "${1:-}" = --sanitize ]; then
	dir=build-san
	suite=(--suite unit)
fi
if [ -d "$dir" ]; then
	meson setup --reconfigure "$dir" $([ "$dir" = build-san ] && echo -Dsanitize=true)
else
	meson setup "$dir" $([ "$dir" = build-san ] && echo -Dsanitize=true)
fi
ninja -C "$dir"

set +e
meson test -C "$dir" --print-errorlogs "${suite[@]}"
rc=$?
set -e
# One closing line any reader understands, from meson's own log.
python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, sys
ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): ok += 1
    elif r == "SKIP": skip += 1
    else: fail += 1
print(f"{ok} passed, {fail} failed, {skip} skipped")
sys.exit(1 if fail or ok == 0 or skip else 0)
PY
exit $rc
