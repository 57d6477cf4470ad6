#!/bin/sh
# run.sh BUILDDIR [RUNS] - build and run vmm-bench where KVM works (natively, or in the
# nested harness), print its table and leave the JSON in BUILDDIR/bench/vmm/.
# Everything under nested emulation is 30-80x slower than on hardware: the ratio to QEMU
# in the same run is the meaningful number there, not the absolute times.
set -eu
b=$(cd "${1:?usage: run.sh BUILDDIR [RUNS]}" && pwd)
runs=${2:-5}
src=$(cd "$(dirname "$0")/../.." && pwd)
ninja -C "$b" bench/vmm/vmm-bench vmm/nucleus-vmm vmm/nucleus-jailer guest/vmlinux \
  guest/initramfs.cpio.gz tests/vm/nt-initrd.cpio.gz >&2
out=$b/bench/vmm
# Only the L1 kernel's emergencies on the console: its KVM's notes would garble the table.
NESTED_LOGLEVEL=${NESTED_LOGLEVEL:-1} exec "$src/tests/harness/nested.sh" --share "$out" -- "$out/vmm-bench" \
  --vmm "$b/vmm/nucleus-vmm" --kernel "$b/guest/vmlinux" \
  --initrd "$b/guest/initramfs.cpio.gz" --runs "$runs" --json "$out/vmm-bench.json" \
  --cycle-initrd "$b/tests/vm/nt-initrd.cpio.gz" --jailer "$b/vmm/nucleus-jailer"
