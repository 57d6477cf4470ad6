#!/bin/sh
# mkinitramfs.sh OUT INIT [EXTRA_STATIC_BINARIES...] - the default Nucleus initramfs.
#
# Packs, as a gzip'ed cpio (newc) archive written without root privileges:
#   /sbin/nucleus-init  INIT (static), with /init -> sbin/nucleus-init
#   /bin/busybox        busybox-static ($BUSYBOX, default /bin/busybox), and one symlink
#                       per applet where `busybox --list-full` puts it (what
#                       `busybox --install -s` would make at boot, made here instead)
#   /usr/bin/NAME       each extra static binary
#   /dev/console, /dev/null device nodes (init has a console before devtmpfs is up),
#   the mount points and a minimal /etc.
# Reproducible: entries sorted by path, mtime 0, owner root, inode numbers by position,
# gzip header without name or time. Dynamic binaries are refused (no libc in the image).
set -eu
[ $# -ge 2 ] || { echo "usage: mkinitramfs.sh OUT INIT [EXTRA_STATIC_BINARIES...]" >&2; exit 2; }
out=$1
shift
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "mkinitramfs: $busybox missing (apt-get install busybox-static)" >&2; exit 1; }
applets=$("$busybox" --list-full) || { echo "mkinitramfs: $busybox --list-full failed" >&2; exit 1; }

tmp="$out.tmp.$$"
work=$(mktemp -d)
trap 'rm -rf "$tmp" "$work"' EXIT
# Stripped copies: a smaller image unpacks faster at every boot.
i=0
for b in "$@"; do
  i=$((i + 1))
  mkdir "$work/$i"
  cp "$b" "$work/$i/$(basename "$b")"
  if command -v strip >/dev/null 2>&1; then strip --strip-all "$work/$i/$(basename "$b")"; fi
  set -- "$@" "$work/$i/$(basename "$b")"
done
shift $i
APPLETS=$applets BUSYBOX_BIN=$busybox python3 - "$tmp" "$@" <<'PY'
import gzip, os, struct, sys

out, init, extras = sys.argv[1], sys.argv[2], sys.argv[3:]
entries = {}  # path (no leading /) -> (mode, data, rdev)

S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR = 0o040000, 0o100000, 0o120000, 0o020000


def is_static(path):
    with open(path, 'rb') as f:
        head = f.read(64)
        if head[:4] != b'\x7fELF' or head[4] != 2:
            return False  # only 64-bit ELF binaries go in
        phoff, = struct.unpack_from('<Q', head, 0x20)
        phentsize, phnum = struct.unpack_from('<HH', head, 0x36)
        f.seek(phoff)
        ph = f.read(phentsize * phnum)
    return all(struct.unpack_from('<I', ph, i * phentsize)[0] != 3 for i in range(phnum))


def add_dir(p, mode=0o755):
    entries[p] = (S_IFDIR | mode, b'', (0, 0))


def add_file(p, src, mode=0o755):
    if not is_static(src):
        sys.exit('mkinitramfs: %s is not a static 64-bit ELF binary' % src)
    with open(src, 'rb') as f:
        entries[p] = (S_IFREG | mode, f.read(), (0, 0))


def add_text(p, text, mode=0o644):
    entries[p] = (S_IFREG | mode, text.encode(), (0, 0))


def add_link(p, target):
    entries[p] = (S_IFLNK | 0o777, target.encode(), (0, 0))


for d in ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'run',
          'etc', 'var', 'workspace']:
    add_dir(d)
add_dir('root', 0o700)
add_dir('tmp', 0o1777)
entries['dev/console'] = (S_IFCHR | 0o600, b'', (5, 1))
entries['dev/null'] = (S_IFCHR | 0o666, b'', (1, 3))
add_file('bin/busybox', os.environ['BUSYBOX_BIN'])
for line in os.environ['APPLETS'].split():
    p = line.strip('/')
    # The kernel starts /init; busybox's own init and linuxrc must not take over.
    if not p or p in ('bin/busybox', 'linuxrc', 'sbin/init') or '..' in p:
        continue
    add_link(p, '/bin/busybox')
add_file('sbin/nucleus-init', init)
add_link('init', 'sbin/nucleus-init')
for x in extras:
    add_file('usr/bin/' + os.path.basename(x), x)
add_text('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n')
add_text('etc/group', 'root:x:0:\n')
add_text('etc/hosts', '127.0.0.1 localhost\n')


def pad4(n):
    return b'\0' * ((4 - n % 4) % 4)


def record(ino, name, mode, data, rdev):
    nlink = 2 if mode & 0o170000 == S_IFDIR else 1
    fields = [ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    hdr = b'070701' + b''.join(b'%08X' % v for v in fields)
    blob = hdr + name.encode() + b'\0'
    return blob + pad4(len(blob)) + data + pad4(len(data))


parts = []
for ino, p in enumerate(sorted(entries), start=1):
    mode, data, rdev = entries[p]
    parts.append(record(ino, p, mode, data, rdev))
parts.append(record(0, 'TRAILER!!!', 0, b'', (0, 0)))
with open(out, 'wb') as raw:
    with gzip.GzipFile(filename='', mode='wb', compresslevel=9, fileobj=raw, mtime=0) as gz:
        gz.write(b''.join(parts))
PY
mv "$tmp" "$out"
