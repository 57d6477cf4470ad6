#!/bin/sh
# l1-kernel.sh - make a Debian generic kernel with its modules available for the
# nested-KVM level ("L1"), without installing it as this machine's kernel.
# Prints the directory that holds boot/vmlinuz-KVER and lib/modules/KVER (depmod'ed).
# Cached under $NUCLEUS_CACHE/l1/PACKAGE; reuses the newest cached one when apt
# cannot answer (offline).
set -eu
cache=${NUCLEUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nucleus}/l1
log() { echo "l1-kernel: $*" >&2; }
mkdir -p "$cache"

pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
      sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | grep -v unsigned | head -n 1 || true)
if [ -z "$pkg" ]; then
  dir=$(ls -1d "$cache"/linux-image-*/ 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$dir" ] || { log "cannot find linux-image-amd64 in apt (run apt-get update, see scripts/setup.sh)"; exit 1; }
  echo "${dir%/}"; exit 0
fi
dir=$cache/$pkg
if [ ! -f "$dir/.ready" ]; then
  log "fetching $pkg for the nested L1 level (once)"
  tmp=$(mktemp -d "$cache/dl.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT INT TERM
  chmod 0755 "$tmp"
  (cd "$tmp" && apt-get download -q "$pkg" >&2)
  rm -rf "$dir"; mkdir -p "$dir"
  dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dir"
  kver=${pkg#linux-image-}
  depmod -b "$dir" "$kver"
  touch "$dir/.ready"
fi
echo "$dir"
