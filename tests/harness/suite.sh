#!/bin/sh
# suite.sh NAME RESULTS KIND EXE [ARGS...] - run one criterion suite and keep its
# TAP report as RESULTS/NAME.tap. KIND is 'unit' (run here) or 'vm' (needs KVM:
# run natively where /dev/kvm works, else inside one nested boot, nested.sh).
# Exits with the suite's status; a missing report is what scripts/test.sh counts
# as a suite that did not run.
set -eu
[ $# -ge 4 ] || { echo "usage: suite.sh NAME RESULTS unit|vm EXE [ARGS...]" >&2; exit 2; }
name=$1 results=$2 kind=$3 exe=$4
shift 4
mkdir -p "$results"
results=$(cd "$results" && pwd)
tap=$results/$name.tap
rm -f "$tap"
case $kind in
unit) exec "$exe" --tap="$tap" --short-filename "$@" ;;
vm)
  # VM tests run one at a time: each may boot guests, and nested guests are slow.
  # --verbose: one line per test start and end, so a log shows where time went.
  # Status 95 = the nested L1 kernel locked up or fell silent before the suite
  # reported: that boot gave no result, so the suite runs once more (said in the
  # log); a second lock-up fails.
  for try in 1 2; do
    rm -f "$tap"
    rc=0
    "$(dirname "$0")/nested.sh" --share "$results" -- "$exe" --tap="$tap" --short-filename -j1 \
      --verbose "$@" || rc=$?
    [ "$rc" = 95 ] && [ "$try" = 1 ] || exit "$rc"
    echo "suite.sh: $name: the nested machine locked up (no result); running the suite again" >&2
  done ;;
*) echo "suite.sh: unknown kind '$kind'" >&2; exit 2 ;;
esac
