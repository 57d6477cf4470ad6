#!/bin/sh
# mkext4.sh OUT SIZE_MIB [DIR] - an ext4 image for a Nucleus guest, built without root
# privileges (mke2fs -d copies DIR's tree into the new file system). Usable as the
# workspace disk (nucleus.workspace=/dev/vdX) or as a root disk for a DIR that holds a
# whole root file system.
#
# Choices: a journal is kept (the VM may be stopped from outside at any time; replaying
# the journal keeps the workspace consistent), 4 KiB blocks, no lazy init (the guest does
# no background zeroing), the root directory owned by root:0 and every file owned by
# root (the invoking user's uid means nothing in the guest). Reproducible for the same
# DIR: fixed UUID and hash seed, timestamps taken from SOURCE_DATE_EPOCH (default 0).
set -eu
[ $# -ge 2 ] && [ $# -le 3 ] || { echo "usage: mkext4.sh OUT SIZE_MIB [DIR]" >&2; exit 2; }
out=$1 size=$2 dir=${3:-}
case $size in ''|*[!0-9]*) echo "mkext4: SIZE_MIB must be a number" >&2; exit 2 ;; esac
[ "$size" -ge 8 ] || { echo "mkext4: SIZE_MIB must be at least 8" >&2; exit 2; }
[ -z "$dir" ] || [ -d "$dir" ] || { echo "mkext4: $dir is not a directory" >&2; exit 2; }
mke2fs=$(command -v mke2fs || echo /sbin/mke2fs)

tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
rm -f "$tmp"
truncate -s "${size}M" "$tmp"
export E2FSPROGS_FAKE_TIME="${SOURCE_DATE_EPOCH:-0}"
set -- -q -F -t ext4 -b 4096 -L nucleus -U 6e75636c-6575-4073-8000-000000000001 \
  -E root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0,hash_seed=6e75636c-6575-4073-8000-000000000002
[ -z "$dir" ] || set -- "$@" -d "$dir"
"$mke2fs" "$@" "$tmp" "${size}M"
# mke2fs -d keeps the source owners; make them root's with debugfs (no root needed).
if [ -n "$dir" ] && [ "$(id -u)" != 0 ]; then
  debugfs=$(command -v debugfs || echo /sbin/debugfs)
  (cd "$dir" && find . -mindepth 1 | sed 's|^\./||') | while IFS= read -r p; do
    printf 'set_inode_field "/%s" uid 0\nset_inode_field "/%s" gid 0\n' "$p" "$p"
  done | "$debugfs" -w -f - "$tmp" >/dev/null 2>&1
fi
mv "$tmp" "$out"
trap - EXIT
