#!/bin/sh
# regress.sh NAME RESULTS EXE CORPUS RUNS MAX_LEN - the CI regression step of one
# libFuzzer target (docs/fuzzing.md): its seed corpus, then mutations of it, RUNS
# executions in all (a fixed seed, so a CI run is repeatable; NUCLEUS_FUZZ_SEED picks
# another), in a scratch copy of the corpus. Writes RESULTS/NAME.tap: one test that
# passes only when libFuzzer said "Done N runs" with no crash, leak, timeout or failed
# invariant; a target that did not run at all fails too.
set -u
[ $# -eq 6 ] || { echo "usage: regress.sh NAME RESULTS EXE CORPUS RUNS MAX_LEN" >&2; exit 2; }
name=$1 results=$2 exe=$3 corpus=$4 runs=$5 maxlen=$6
mkdir -p "$results"
tap=$results/$name.tap
rm -f "$tap"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nucleus-$name.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/corpus" "$tmp/artifacts"
n_seeds=0
if [ -d "$corpus" ]; then
  cp "$corpus"/* "$tmp/corpus/" 2>/dev/null
  n_seeds=$(ls "$tmp/corpus" | wc -l)
fi
start=$(date +%s)
# -max_total_time only guards against a hang: a target is sized to end by -runs.
# TMPDIR: the harnesses' own scratch files (sockets, the api target's database) go here.
TMPDIR=$tmp ASAN_OPTIONS=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  "$exe" -runs="$runs" -seed="${NUCLEUS_FUZZ_SEED:-1}" -max_len="$maxlen" -timeout=10 \
  -rss_limit_mb=2048 -max_total_time=240 -print_final_stats=1 \
  -artifact_prefix="$tmp/artifacts/" "$tmp/corpus" > "$tmp/log" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
done_line=$(grep -E '^Done [0-9]+ runs' "$tmp/log" | tail -n 1)
execs=$(echo "$done_line" | sed -n 's/^Done \([0-9]*\) runs.*/\1/p')
crashes=$(ls "$tmp/artifacts" | wc -l)
echo "TAP version 13" > "$tap"
echo "1..1" >> "$tap"
if [ $rc -eq 0 ] && [ -n "$execs" ] && [ "$crashes" -eq 0 ] && [ "$n_seeds" -gt 0 ]; then
  echo "ok 1 - $name: $execs executions from $n_seeds seeds in ${secs} s" >> "$tap"
  cat "$tap"
  exit 0
fi
why="exit $rc"
[ -n "$execs" ] || [ "$crashes" -gt 0 ] || why="$why, no 'Done N runs' line (did not run)"
[ "$n_seeds" -gt 0 ] || why="$why, no seed corpus in $corpus"
[ "$crashes" -eq 0 ] || why="$why, $crashes crash file(s)"
echo "not ok 1 - $name: $why" >> "$tap"
{
  echo "# last lines of the libFuzzer log:"
  tail -n 60 "$tmp/log" | sed 's/^/# /'
  for f in "$tmp"/artifacts/*; do
    [ -f "$f" ] || continue
    echo "# $(basename "$f") (base64; reproduce: base64 -d > f && $exe f):"
    base64 -w 76 "$f" | head -n 200 | sed 's/^/#   /'
  done
} >> "$tap"
cat "$tap"
exit 1
