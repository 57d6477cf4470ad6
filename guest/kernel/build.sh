#!/bin/sh
# build.sh [--config FILE [--cache NAME]] [OUT] - build the Nucleus guest kernel
# (uncompressed vmlinux, PVH entry) from Debian's linux-source-6.1 package and
# nucleus.config, and copy it to OUT.
#
# The result is cached outside the work tree, keyed by the config, this script and
# the source package version, so a second run only copies a file:
#   $NUCLEUS_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/nucleus)/kernel/KEY/vmlinux
# Prints the cached vmlinux path on stdout; progress goes to stderr.
#
# --config FILE builds another kernel the same way (tinyconfig, then FILE merged on top
# and checked line by line), e.g. tiny.config for bench/vmm; it is cached in
# .../nucleus/kernel-NAME/KEY/, NAME being --cache NAME or FILE's name without
# ".config". Without --config nothing changes: nucleus.config, .../kernel/KEY/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cfg=$here/nucleus.config
cname=kernel
while [ $# -gt 0 ]; do
  case $1 in
  --config) cfg=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
            [ "$cname" != kernel ] || cname=kernel-$(basename "$2" .config); shift 2 ;;
  --cache) cname=kernel-$2; shift 2 ;;
  *) break ;;
  esac
done
src=/usr/src/linux-source-6.1.tar.xz
out=${1:-}
log() { echo "guest-kernel: $*" >&2; }

[ -f "$src" ] || { log "missing $src: install linux-source-6.1 (scripts/setup.sh does)"; exit 1; }
ver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || stat -c %s "$src")
# Bump recipe when a change to this script changes the kernel it produces.
recipe=1
key=$( (cat "$cfg"; echo "recipe=$recipe") | sha256sum | cut -c1-16)-$ver
cache=${NUCLEUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nucleus}/$cname
dir=$cache/$key

mkdir -p "$cache"
if [ ! -s "$dir/vmlinux" ]; then
  # One build at a time per machine: a second caller waits, then finds the cache warm.
  exec 9>"$cache/.lock"
  flock 9
fi
if [ ! -s "$dir/vmlinux" ]; then
  log "no cached kernel for $key: building (about 9 min on 2 cores)"
  work=$(mktemp -d "$cache/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT INT TERM
  start=$(date +%s)
  tar -C "$work" -xJf "$src" --exclude='linux-source-6.1/tools/testing'
  k=$work/linux-source-6.1
  make -s -C "$k" ARCH=x86_64 tinyconfig >&2
  "$k/scripts/kconfig/merge_config.sh" -m -O "$k" "$k/.config" "$cfg" >/dev/null
  make -s -C "$k" ARCH=x86_64 olddefconfig >&2
  # Every line of nucleus.config must have survived dependency resolution.
  bad=0
  grep -E '^CONFIG_' "$cfg" | while IFS= read -r line; do
    opt=${line%%=*}; val=${line#*=}
    if [ "$val" = n ]; then
      grep -q "^$opt=" "$k/.config" && { log "option lost: $line"; echo x; }
    else
      grep -qx "$line" "$k/.config" || { log "option lost: $line"; echo x; }
    fi
  done > "$work/lost"
  [ ! -s "$work/lost" ] || { log "$(basename "$cfg") does not apply cleanly"; exit 1; }
  make -s -C "$k" ARCH=x86_64 -j"$(nproc)" vmlinux >&2
  mkdir -p "$dir"
  cp "$k/vmlinux" "$dir/vmlinux.tmp"
  cp "$k/.config" "$dir/config"
  mv "$dir/vmlinux.tmp" "$dir/vmlinux"
  log "built in $(( $(date +%s) - start )) s"
else
  log "cached: $dir/vmlinux"
fi
if [ -n "$out" ]; then
  cp "$dir/vmlinux" "$out.tmp" && mv "$out.tmp" "$out"
fi
echo "$dir/vmlinux"
