#!/bin/sh
# Stage 2 of nested.sh, run as PID 1 of the L1 machine after switch_root into the
# overlay of the host root. Loads KVM, mounts the writable shares, runs the wrapper,
# reports its status on the console and powers off.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs shm /dev/shm
mount -t tmpfs tmp /run 2>/dev/null
# cgroup v2 as a host with systemd has it: the daemon's jails get a leaf per VM with
# memory.max, cpu.max and pids.max (the suites run as the root cgroup's processes).
mkdir -p /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup ||
  echo "nested: no cgroup v2 in L1: the jails run without cgroup limits"
modprobe -d "$nested_mods" -S "$nested_kver" kvm_amd 2>/dev/null ||
  modprobe -d "$nested_mods" -S "$nested_kver" kvm_intel 2>/dev/null
modprobe -d "$nested_mods" -S "$nested_kver" vhost_vsock 2>/dev/null
modprobe -d "$nested_mods" -S "$nested_kver" tun 2>/dev/null
ok=1
for s in $(echo "$nested_shares" | tr ',' ' '); do
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none "${s%%:*}" "${s#*:}" ||
    { echo "nested: cannot mount share ${s#*:}"; ok=0; }
done
if [ ! -c /dev/kvm ]; then
  echo "nested: /dev/kvm did not appear in L1 (kvm_amd failed to load)"
  ok=0
fi
if [ $ok = 1 ]; then
  "$nested_wrap"
  rc=$?
else
  rc=96
fi
sync
for s in $(echo "$nested_shares" | tr ',' ' '); do umount "${s#*:}" 2>/dev/null; done
echo "NESTED-EXIT=$rc"
/bin/busybox poweroff -f
