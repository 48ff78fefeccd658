#!/usr/bin/env bash
# Install what is missing (Debian 12, as root), build, and run every test.
# Usage: bash contrib/test.sh [--sanitize | --tsan]
#   --sanitize   build in build-san/ with ASan+UBSan and run the unit tests there
#   --tsan       build in build-tsan/ with ThreadSanitizer and run the unit
#                tests there (the drop box's committer and callbacks are threads)
set -euo pipefail
cd "$(dirname "$0")/.."

. contrib/deps.sh
iterfs_install_deps

dir=build suite=() san=none
case "${1:-}" in
--sanitize) dir=build-san san=address suite=(--suite unit) ;;
--tsan) dir=build-tsan san=thread suite=(--suite unit) ;;
"") ;;
*) echo "usage: bash contrib/test.sh [--sanitize | --tsan]" >&2; exit 1 ;;
esac
if [ -d "$dir" ]; then
	meson setup --reconfigure "$dir" -Dsanitize=$san
else
	meson setup "$dir" -Dsanitize=$san
fi
ninja -C "$dir"

set +e
meson test -C "$dir" --print-errorlogs "${suite[@]}"
rc=$?
set -e
# One closing line any reader understands: the test cases (every "ok" /
# "not ok" line of the unit tests and of bats' TAP), from meson's own log.
# A run where nothing ran, or (under CI) anything was skipped, fails.
python3 - "$dir/meson-logs/testlog.json" <<'PY'
import json, os, re, sys
suites_bad = ok = fail = skip = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["result"] not in ("OK", "EXPECTEDFAIL"):
        suites_bad += 1
    for case in r.get("stdout", "").splitlines():
        if re.match(r"not ok\b", case):
            fail += 1
        elif re.match(r"ok\b", case):
            if re.search(r"#\s*skip", case, re.I):
                skip += 1
            else:
                ok += 1
print(f"{ok} passed, {fail} failed, {skip} skipped")
bad = suites_bad or fail or ok == 0 or (skip and os.environ.get("CI"))
sys.exit(1 if bad else 0)
PY
exit $rc
