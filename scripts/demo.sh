#!/bin/sh
# demo.sh - Nucleus on a fresh machine, end to end:
#   1. scripts/setup.sh (packages, build dirs), 2. meson compile -C build,
#   3. where /dev/kvm works natively, else inside the nested-KVM harness
#      (tests/harness/nested.sh, much slower; said on stderr):
#      start nucleusd on its embedded defaults (temp data dir and socket; as root with
#      --user nobody: privilege separation), create a
#      sandbox with nucleusctl, run one policy-gated tool call that the policy allows
#      (`uname -a` in the microVM) and one that it refuses (reading /etc/shadow),
#      show both results, delete the sandbox, stop the daemon.
# Exit 0 on success.
# Knobs: NUCLEUS_BUILD (build dir, default ./build; setup and compile are skipped when
# set), NUCLEUS_DEMO_PROFILE (default permissive-local).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "demo: $*" >&2; }

if [ "${1:-}" != --inner ]; then
  if [ -z "${NUCLEUS_BUILD:-}" ]; then
    "$top/scripts/setup.sh"
    meson compile -C "$top/build"
    NUCLEUS_BUILD=$top/build
  fi
  export NUCLEUS_BUILD
  if why=$("$top/tests/harness/kvm-native.sh"); then
    log "/dev/kvm works: running natively"
    exec "$0" --inner
  fi
  log "$why: running the demo inside the nested-KVM harness (QEMU TCG," \
      "30-80x slower; takes a few minutes)"
  # Only the L1 kernel's emergencies on the console: its KVM's notes would garble the demo.
  NESTED_LOGLEVEL=${NESTED_LOGLEVEL:-1} exec "$top/tests/harness/nested.sh" -- "$0" --inner
fi

# ---- inner part: where KVM works ----
b=$NUCLEUS_BUILD
profile=${NUCLEUS_DEMO_PROFILE:-permissive-local}
tmp=$(mktemp -d /tmp/nucleus-demo-XXXXXX)
export NUCLEUS_SOCKET=$tmp/nucleusd.sock
ctl() { "$b/api/nucleusctl" "$@"; }
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# As root, the way to run it: privilege separation (docs/daemon.md), the daemon as
# 'nobody' beside its root monitor.
user=""
if [ "$(id -u)" = 0 ]; then
  user="--user nobody"
  chmod 0711 "$tmp"
fi
log "starting nucleusd (data $tmp/data, socket $NUCLEUS_SOCKET${user:+, $user})"
# shellcheck disable=SC2086 # $user: no option, or the option and its value
"$b/api/daemon/nucleusd" --data-dir "$tmp/data" $user 2>"$tmp/nucleusd.log" &
pid=$!
i=0
until ctl health >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 600 ] || ! kill -0 "$pid" 2>/dev/null; then
    log "nucleusd did not come up:"; cat "$tmp/nucleusd.log" >&2; exit 1
  fi
  sleep 0.5
done

budget='{"cpu_ms": 600000, "tokens": 100000, "usd": "1.00"}'
echo "\$ nucleusctl create --profile $profile --name demo --budget '$budget'"
ctl create --profile "$profile" --name demo --budget "$budget"
id=$(ctl --json show demo | sed -n 's/^  "id": "\([^"]*\)".*/\1/p')
[ -n "$id" ] || { log "no sandbox id"; exit 1; }

echo
echo "\$ nucleusctl run $id -- uname -a      # allowed by the policy, runs in the microVM"
ctl run "$id" -- uname -a
echo "(exit $?)"

echo
echo "\$ nucleusctl read $id /etc/shadow     # refused by the policy, never reaches the guest"
if ctl read "$id" /etc/shadow; then
  log "the policy should have refused that"; exit 1
fi
echo "(refused, as it should be)"

echo
echo "\$ nucleusctl budget $id                # what the sandbox has spent so far"
ctl budget "$id"

echo
echo "\$ nucleusctl audit $id verify"
ctl audit "$id" verify
echo
echo "\$ nucleusctl rm $id"
ctl rm "$id"
kill "$pid"
wait "$pid" || { log "nucleusd exited with an error:"; cat "$tmp/nucleusd.log" >&2; exit 1; }
pid=""
log "done: daemon stopped"
