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
  exec "$(dirname "$0")/nested.sh" --share "$results" -- "$exe" --tap="$tap" --short-filename -j1 "$@" ;;
*) echo "suite.sh: unknown kind '$kind'" >&2; exit 2 ;;
esac
