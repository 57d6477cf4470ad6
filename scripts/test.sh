#!/bin/sh
# test.sh - set up, build and run every Nucleus test suite, then print one report.
#   1. scripts/setup.sh (packages, build dirs; idempotent)
#   2. build/ and build-asan/ (ASan + UBSan), and the fuzz targets of build-fuzz/ (clang)
#   3. unit suites in both builds; VM suites in build/, each in one nested boot where
#      this machine has no /dev/kvm (slow: the tools say so), natively where it has;
#      the fuzz regression step: every libFuzzer target for a fixed number of runs over
#      its seed corpus and mutations of it (docs/fuzzing.md), one report each.
# The last line is 'N passed, N failed, N skipped' over all suites; exit 1 on any
# failure, including a suite that could not run.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
start=$(date +%s)
status=0
step() { echo "== $* ($(( $(date +%s) - start )) s)"; }

step setup
if ! scripts/setup.sh; then
  echo "setup failed: see above"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
builds_failed=0
for b in build build-asan build-fuzz; do
  step "compile $b"
  target=""
  [ "$b" = build-fuzz ] && target=fuzz # only the fuzz targets and what they link
  # shellcheck disable=SC2086
  if ! meson compile -C "$b" $target; then
    echo "compile of $b failed"
    builds_failed=$((builds_failed + 1))
  fi
done

run() { # BUILD SUITE...
  b=$1; shift
  rm -rf "$b/tests/results" "$b/meson-logs/testlog.json"
  step "tests: $b $*"
  args=""; for su in "$@"; do args="$args --suite $su"; done
  # shellcheck disable=SC2086
  meson test -C "$b" $args --no-rebuild --print-errorlogs || status=1
}
run build unit vm
run build-asan unit
run build-fuzz fuzz

step report
python3 tests/harness/report.py build:host:unit,vm build-asan:asan:unit build-fuzz:fuzz:fuzz \
  > build/report.txt
rc=$?
cat build/report.txt | sed '$d'
echo "total time $(( $(date +%s) - start )) s"
if [ "$builds_failed" -gt 0 ]; then
  line=$(tail -n 1 build/report.txt)
  p=${line%% passed*}; rest=${line#*passed, }; f=${rest%% failed*}; s=${line##*failed, }; s=${s%% skipped}
  echo "$p passed, $((f + builds_failed)) failed, $s skipped"
  exit 1
fi
tail -n 1 build/report.txt
[ $rc -eq 0 ] && [ $status -eq 0 ] || exit 1
exit 0
