#!/bin/sh
# kvm-native.sh - exit 0 when this machine's /dev/kvm can run Nucleus guests natively,
# else print why on stdout and exit 1 (callers then use the nested harness).
# Natively means hardware-assisted KVM (kvm_intel or kvm_amd). A /dev/kvm served by
# PVM (the kvm_pvm module: KVM without VMX/SVM, seen on cloud VMs) runs only guest
# kernels built for PVM; a stock guest kernel dies in its first privileged
# instruction there, so it does not count.
[ "${NUCLEUS_FORCE_NESTED:-0}" = 1 ] && { echo "NUCLEUS_FORCE_NESTED=1"; exit 1; }
[ -c /dev/kvm ] || { echo "no /dev/kvm here"; exit 1; }
{ [ -r /dev/kvm ] && [ -w /dev/kvm ]; } || { echo "/dev/kvm is not readable and writable by $(id -un)"; exit 1; }
[ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ] && exit 0
if [ -d /sys/module/kvm_pvm ]; then
  echo "this /dev/kvm is PVM (kvm_pvm), which runs only PVM-enabled guest kernels"
  exit 1
fi
# Unknown provider (e.g. a kernel with KVM built in without module parameters): trust it.
exit 0
