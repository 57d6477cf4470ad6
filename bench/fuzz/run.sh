#!/bin/sh
# bench/fuzz/run.sh [SECONDS] [TARGET...] - runs each libFuzzer target of tests/fuzz for
# SECONDS (default 60) on a scratch copy of its seed corpus (one process: no -jobs, no
# -workers, so targets can be run side by side, one per core), then
# prints per target: executions, executions/s, corpus size (seeds -> after), crashes (with
# the paths of the crash files, kept in the output dir), and a total line. Targets: the
# names under tests/fuzz/corpus/ (default: all). Needs the fuzz build: BUILD (default
# build-fuzz) configured as in docs/fuzzing.md; it is (re)built first. Exit 1 if any
# target crashed or did not run. OUT (default a fresh /tmp dir) keeps logs, corpora and
# crash files; copy interesting new inputs into tests/fuzz/corpus/NAME/ by hand.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
build=${BUILD:-$top/build-fuzz}
case $secs in *[!0-9]*|'') echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;; esac
if [ ! -f "$build/build.ninja" ]; then
  echo "no fuzz build in $build: CC=clang-14 meson setup $build -Dfuzz=true -Dtests=false" \
    "-Dguest=false -Dwerror=false (docs/fuzzing.md)" >&2
  exit 2
fi
meson compile -C "$build" fuzz >/dev/null || { echo "building the fuzz targets failed" >&2; exit 1; }
targets=${*:-$(ls "$top/tests/fuzz/corpus")}
out=${OUT:-$(mktemp -d /tmp/nucleus-fuzz-bench.XXXXXX)}
mkdir -p "$out"
printf '%-12s %12s %9s %15s %8s\n' target execs execs/s corpus crashes
total=0 bad=0
for t in $targets; do
  exe=$build/tests/fuzz/fuzz-$t
  seeds=$top/tests/fuzz/corpus/$t
  if [ ! -x "$exe" ] || [ ! -d "$seeds" ]; then
    printf '%-12s %s\n' "$t" "no such target ($exe, $seeds)"
    bad=$((bad + 1)); continue
  fi
  d=$out/$t
  rm -rf "$d"; mkdir -p "$d/corpus" "$d/crashes"
  cp "$seeds"/* "$d/corpus/"
  n0=$(ls "$d/corpus" | wc -l)
  ml=$(python3 -c 'import re,sys; s=open(sys.argv[1]).read(); m=re.search(r"\[\x27"+sys.argv[2]+r"\x27,.*?\],\s*(\d+),\s*\d+\]", s, re.S); print(m.group(1) if m else 4096)' \
    "$top/tests/fuzz/meson.build" "$t")
  TMPDIR=$d ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$exe" -max_total_time="$secs" -max_len="${ml:-4096}" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$d/crashes/" "$d/corpus" \
    > "$d/log" 2>&1
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log" | tail -n 1)
  if [ -z "$execs" ]; then
    execs=$(grep -E '^Done [0-9]+ runs' "$d/log" | tail -n 1 | sed 's/^Done \([0-9]*\) runs.*/\1/')
  fi
  secs_run=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$d/log" | tail -n 1 |
    sed 's/.* in \([0-9]*\) second.*/\1/')
  [ -n "$secs_run" ] && [ "$secs_run" -gt 0 ] || secs_run=$secs
  n1=$(ls "$d/corpus" | wc -l)
  nc=$(ls "$d/crashes" | wc -l)
  if [ -z "$execs" ]; then
    printf '%-12s %s\n' "$t" "did not run: see $d/log"
    bad=$((bad + 1)); continue
  fi
  printf '%-12s %12s %9s %15s %8s\n' "$t" "$execs" "$((execs / secs_run))" "$n0 -> $n1" "$nc"
  for f in "$d"/crashes/*; do [ -f "$f" ] && echo "    crash: $f"; done
  [ "$nc" -eq 0 ] || bad=$((bad + 1))
  total=$((total + execs))
done
echo "total: $total executions in $(echo $targets | wc -w) targets, $bad with crashes or not run (logs in $out)"
[ "$bad" -eq 0 ]
