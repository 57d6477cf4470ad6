#!/bin/sh
# nested.sh [--share DIR]... -- CMD [ARGS...]
#
# Run CMD where KVM works and exit with its status.
#  - hardware KVM usable here (kvm-native.sh): CMD runs natively (unless
#    NUCLEUS_FORCE_NESTED=1).
#  - otherwise (no /dev/kvm, or a PVM one): CMD runs as root inside one QEMU (TCG) machine that emulates AMD
#    SVM with nested paging ("L1"), so KVM exists there. L1's root is this machine's
#    root over virtio-9p, read-only, with a tmpfs overlay; each --share DIR is mounted
#    read-write at the same path so results come back. Everything in L1 runs 30-80x
#    slower than on hardware: never assert a time inside it.
# The environment does not cross into L1 by itself: NUCLEUS_*, CRITERION_*, PATH,
# ASAN_OPTIONS and UBSAN_OPTIONS are written into the wrapper script.
# Exit 95: the L1 kernel locked up or fell silent (an emulation fault, not a result;
# suite.sh retries once), 99: no status came back (timeout, crash).
# Knobs: NESTED_CPUS (1: with 2, the L1 kernel's KVM locked up now and then under
# multi-threaded TCG, a nested-SVM emulation fault; the suites run about as fast on 1),
# NESTED_MEM (MiB, 4096), NESTED_TIMEOUT (s, 2400),
# NESTED_SILENCE (s without a console line before L1 counts as dead, 1200),
# NESTED_LOGLEVEL (L1 kernel console loglevel, 4: errors and worse, e.g. RCU stalls).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
shares=""
while [ $# -gt 0 ]; do
  case $1 in
  --share) d=$(cd "$2" && pwd); shares="$shares $d"; shift 2 ;;
  --) shift; break ;;
  *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "usage: nested.sh [--share DIR]... -- CMD [ARGS...]" >&2; exit 2; }
log() { echo "nested: $*" >&2; }

why=$("$here/kvm-native.sh") && exec "$@"
log "$why: running under nested emulation (QEMU TCG + SVM), 30-80x slower"
for t in qemu-system-x86_64 busybox cpio depmod modprobe gzip; do
  command -v $t >/dev/null 2>&1 || { log "missing $t: run scripts/setup.sh"; exit 97; }
done
case "$*$shares$(pwd)" in *[\ \'\"\\]*) ;; esac

root=$("$here/l1-kernel.sh")
kernel=$(ls -1 "$root"/boot/vmlinuz-* | sort -V | tail -n 1)
kver=${kernel##*/vmlinuz-}

# L1 initramfs: busybox and the modules needed to reach the host root over 9p.
cache=${NUCLEUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nucleus}/l1
ikey=$(cat "$0" | sha256sum | cut -c1-12)
initrd=$cache/initrd-$kver-$ikey.cpio.gz
if [ ! -s "$initrd" ]; then
  t=$(mktemp -d)
  mkdir -p "$t/bin" "$t/proc" "$t/sys" "$t/dev" "$t/mods" "$t/ro" "$t/rw" "$t/newroot"
  cp "$(command -v busybox)" "$t/bin/busybox"
  for a in sh mount insmod switch_root mkdir poweroff cat echo; do ln -s busybox "$t/bin/$a"; done
  order=""
  for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
           netfs fscache 9pnet 9pnet_virtio 9p overlay; do
    f=$(modprobe -d "$root" -S "$kver" --show-depends "$m" 2>/dev/null |
        awk '/^insmod/ { print $2 }' | tail -n 1)
    [ -n "$f" ] || continue   # built into the kernel
    cp "$f" "$t/mods/$m.ko"
    order="$order $m"
  done
  cat > "$t/init" <<EOI
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $order; do insmod /mods/\$m.ko; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /ro || { echo "nested: 9p mount failed"; poweroff -f; }
mount -t tmpfs tmpfs /rw; mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work /newroot
exec switch_root /newroot /bin/sh "\$nested_stage2"
EOI
  chmod +x "$t/init"
  (cd "$t" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  rm -rf "$t"
fi

# The wrapper carries the command, its directory and environment into L1.
wrap=$(mktemp /tmp/nested-wrap.XXXXXX)
out=$(mktemp /tmp/nested-out.XXXXXX)
trap 'rm -f "$wrap" "$out"' EXIT INT TERM
q() { printf "'%s'" "$(printf %s "$1" | sed "s/'/'\\\\''/g")"; }
{
  echo '#!/bin/sh'
  env | grep -E '^(NUCLEUS_[A-Z0-9_]*|CRITERION_[A-Z0-9_]*|ASAN_OPTIONS|UBSAN_OPTIONS|PATH|HOME|LANG)=' |
    while IFS= read -r kv; do printf 'export %s=%s\n' "${kv%%=*}" "$(q "${kv#*=}")"; done
  printf 'export NUCLEUS_NESTED=1\n'
  printf 'cd %s || exit 98\n' "$(q "$(pwd)")"
  printf 'exec'; for a in "$@"; do printf ' %s' "$(q "$a")"; done; echo
} > "$wrap"
chmod +x "$wrap"

fsargs="" n=0 tags=""
for d in $shares; do
  fsargs="$fsargs -fsdev local,id=s$n,path=$d,security_model=none,multidevs=remap -device virtio-9p-pci,fsdev=s$n,mount_tag=s$n"
  tags="$tags s$n:$d"; n=$((n + 1))
done
tags=$(echo "$tags" | sed 's/^ //; s/ /,/g')

rc=0
pidf=$(mktemp /tmp/nested-pid.XXXXXX)
trap 'rm -f "$wrap" "$out" "$pidf"' EXIT INT TERM
: > "$pidf"
# Silence watchdog: a healthy L1 prints a line at least every test (criterion runs
# --verbose there and every VM test has its own timeout); an L1 that says nothing
# for NESTED_SILENCE seconds is dead, so stop it rather than wait for the timeout.
(
  last=0 quiet=0
  while sleep 15; do
    [ -s "$pidf" ] || continue
    kill -0 "$(cat "$pidf")" 2>/dev/null || exit 0
    size=$(stat -c %s "$out" 2>/dev/null || echo 0)
    if [ "$size" != "$last" ]; then last=$size quiet=0; continue; fi
    quiet=$((quiet + 15))
    if [ "$quiet" -ge "${NESTED_SILENCE:-1200}" ]; then
      echo "NESTED-SILENT" >> "$out"
      kill "$(cat "$pidf")" 2>/dev/null
      exit 0
    fi
  done
) &
dog=$!
# shellcheck disable=SC2086
timeout "${NESTED_TIMEOUT:-2400}" qemu-system-x86_64 -machine q35,accel=tcg -cpu max \
  -smp "${NESTED_CPUS:-1}" -m "${NESTED_MEM:-4096}" -nographic -no-reboot -nodefaults \
  -pidfile "$pidf" -serial stdio -kernel "$kernel" -initrd "$initrd" \
  -fsdev local,id=r,path=/,security_model=none,readonly=on,multidevs=remap \
  -device virtio-9p-pci,fsdev=r,mount_tag=hostroot $fsargs \
  -append "console=ttyS0 quiet loglevel=${NESTED_LOGLEVEL:-4} panic=-1 nested_stage2=$here/l1-stage2.sh nested_wrap=$wrap nested_mods=$root nested_kver=$kver nested_shares=$tags" \
  </dev/null | tee -a "$out" | awk -v pidf="$pidf" '
    # Line by line, unbuffered (a tr in between would hold a lockup report back).
    { sub(/\r$/, "") }
    /^NESTED-EXIT=/ { next }
    { gsub(/\033(c|\[[0-9;?]*[A-Za-z])/, ""); print; fflush() }
    # The L1 kernel (nested SVM under TCG) can lock up; waiting for the timeout
    # would only burn CI time. QEMU ignores a closed pipe, so stop it here.
    /watchdog: BUG: soft lockup/ {
      if (++n >= 2) { system("kill $(cat " pidf ") 2>/dev/null"); exit 3 }
    }' || rc=$?
kill "$dog" 2>/dev/null || :
wait "$dog" 2>/dev/null || :
status=$(tr -d '\r' < "$out" | sed -n 's/^NESTED-EXIT=//p' | tail -n 1)
if [ -z "$status" ]; then
  if grep -q 'watchdog: BUG: soft lockup' "$out"; then
    log "the L1 machine's kernel locked up (soft lockup): no result from this boot"
    exit 95
  fi
  if grep -q '^NESTED-SILENT' "$out"; then
    log "the L1 machine printed nothing for ${NESTED_SILENCE:-1200} s: stopped it, no result from this boot"
    exit 95
  fi
  log "the nested machine ended without reporting a status (timeout or crash, rc $rc)"
  exit 99
fi
exit "$status"
