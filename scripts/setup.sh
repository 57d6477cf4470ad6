#!/bin/sh
# setup.sh - install what Nucleus needs from Debian and configure the build dirs.
# Idempotent: when everything is there it only checks, in a second or two.
#   build/       the normal build (daemon, VMM, guest kernel + initramfs, all suites)
#   build-asan/  ASan + UBSan build of the host-side code and its unit suites
#   build-fuzz/  clang libFuzzer build of tests/fuzz (the fuzz regression step)
# Needs root (or sudo) only when a package is missing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
log() { echo "setup: $*" >&2; }

# Build: compiler, meson, the libraries. Tests: criterion. Guest: kernel source and
# its build tools, busybox, cpio, e2fsprogs. Nested-KVM harness: QEMU, kmod.
# Bench peer: QEMU (microvm). Tools: python3 (report), sqlite3 (inspection).
# Fuzzing: clang and libFuzzer's runtime (libclang_rt.fuzzer), docs/fuzzing.md.
pkgs="gcc libc6-dev make meson ninja-build pkg-config python3 clang-14 libclang-rt-14-dev
libevent-dev libjansson-dev libseccomp-dev libnl-3-dev libnl-route-3-dev libsqlite3-dev
libsodium-dev libcriterion-dev sqlite3
linux-source-6.1 bc flex bison libelf-dev libssl-dev xz-utils
busybox-static cpio e2fsprogs
qemu-system-x86 kmod"

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  log "this machine has no dpkg/apt-get. Nucleus is set up from Debian packages (bookworm):"
  log "install the equivalents of: $(echo $pkgs)"
  log "then run: meson setup build && meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dguest=false"
  log "and: CC=clang-14 meson setup build-fuzz -Dfuzz=true -Dtests=false -Dguest=false"
  exit 1
fi

missing=""
for p in $pkgs; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
      log "missing packages:$missing"
      log "installing them needs root: run 'sudo $0' (or as root: apt-get install$missing)"
      exit 1
    fi
  else SUDO=""; fi
  log "installing:$missing"
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing >&2
fi

# The nested-KVM harness fetches a Debian kernel with apt-get download: it needs the
# package lists even when nothing was missing.
native=1; why=$("$top/tests/harness/kvm-native.sh") || native=0
if [ $native = 0 ] && ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -q >&2; else
    log "$why and no apt lists: VM tests need 'sudo apt-get update' once"; fi
fi

cd "$top"
if [ ! -f build/build.ninja ]; then
  meson setup build >&2
fi
if [ ! -f build-asan/build.ninja ]; then
  meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dguest=false >&2
fi
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang-14 meson setup build-fuzz -Dfuzz=true -Dtests=false -Dguest=false >&2
fi
[ $native = 1 ] || log "note: $why - VM work runs under nested emulation (QEMU TCG), 30-80x slower"
log "ready"
