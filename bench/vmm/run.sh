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
# The cycle runs on the project's kernel and on a tinyconfig-class one as well
# (guest/kernel/tiny.config, built and cached like the project's; CYCLE_KERNEL=VMLINUX
# picks another). Knobs (environment; docs/vmm.md "Benchmark"):
#   VMM_BENCH_STAGE=on|off (on)  boot copies of the kernels and initramfs files made under
#                                /tmp (in the harness: its RAM), not the originals (9p)
#   VMM_BENCH_QEMU_TRACE=on|off (on)  a traced QEMU cycle per run: QEMU's phases
#   VMM_BENCH_INITCALLS=N (3)    N initcall_debug cycles of each VMM per kernel (0: none)
#   VMM_BENCH_BOOTS=N (50)       N nucleus-vmm cycles in a row per kernel, each killed
#                                after VMM_BENCH_BOOT_TIMEOUT s (60): hung or failed ones
#                                are counted and shown; 0 skips them (about 4 of the 9
#                                minutes of a 5-run bench in the nested harness)
# None of these extra boots is one of the timed ones.
tiny=${CYCLE_KERNEL:-$("$src/guest/kernel/build.sh" --config "$src/guest/kernel/tiny.config")}
out=$b/bench/vmm
# Only the L1 kernel's emergencies on the console: its KVM's notes would garble the table.
NESTED_LOGLEVEL=${NESTED_LOGLEVEL:-1} exec "$src/tests/harness/nested.sh" --share "$out" -- "$out/vmm-bench" \
  --vmm "$b/vmm/nucleus-vmm" --kernel "$b/guest/vmlinux" \
  --initrd "$b/guest/initramfs.cpio.gz" --runs "$runs" --json "$out/vmm-bench.json" \
  --cycle-initrd "$b/tests/vm/nt-initrd.cpio.gz" --cycle-kernel "$tiny" \
  --jailer "$b/vmm/nucleus-jailer" --stage "${VMM_BENCH_STAGE:-on}" \
  --qemu-trace "${VMM_BENCH_QEMU_TRACE:-on}" --initcalls "${VMM_BENCH_INITCALLS:-3}" \
  --boots "${VMM_BENCH_BOOTS:-50}" --boot-timeout "${VMM_BENCH_BOOT_TIMEOUT:-60}"
