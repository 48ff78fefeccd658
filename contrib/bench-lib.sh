# Shared by the bench-*.sh scripts (sourced): timing and the arithmetic of
# their tables.
#
#   secs CMD...        wall seconds of one run of CMD, its output discarded
#   ms CMD...          the same in milliseconds, one decimal
#   medsecs N CMD...   the median of N such runs
#   median             the median of the numbers on stdin, one a line
#   ratio A B          A / B with two decimals

now() { date +%s%N; }
# ns CMD...: wall nanoseconds of one run of CMD, its output discarded.
ns() {
	local t0 t1
	t0=$(now)
	"$@" >/dev/null
	t1=$(now)
	echo $((t1 - t0))
}
secs() { awk -v n="$(ns "$@")" 'BEGIN { printf "%.4f", n / 1e9 }'; }
ms() { awk -v n="$(ns "$@")" 'BEGIN { printf "%.1f", n / 1e6 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
medsecs() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do secs "$@"; echo; done | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
