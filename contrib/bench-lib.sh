# Shared by the bench-*.sh scripts (sourced): timing and the arithmetic of
# their tables.
#
#   secs CMD...        wall seconds of one run of CMD, its output discarded
#   medsecs N CMD...   the median of N such runs
#   median             the median of the numbers on stdin, one a line
#   ratio A B          A / B with two decimals

now() { date +%s%N; }
secs() {
	local t0 t1
	t0=$(now)
	"$@" >/dev/null
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
medsecs() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do secs "$@"; echo; done | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
