#!/bin/sh
# mkinitramfs-test.sh OUT BUSYBOX NT_STATUS - the initramfs of the vm-boot suite:
# a static busybox and an /init script whose behaviour the test picks with the
# kernel parameter nt=ACTION (unknown parameters reach init as environment).
set -eu
out=$1 busybox=$2 status=$3
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/bin" "$t/proc" "$t/sys" "$t/dev" "$t/tmp"
cp "$busybox" "$t/bin/busybox"
cp "$status" "$t/bin/nt-status"
for a in sh mount echo cat grep sleep reboot poweroff wc uname mkdir; do ln -s busybox "$t/bin/$a"; done
cat > "$t/init" <<'EOI'
#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "NT-BOOTED action=$nt"
case "$nt" in
reboot) reboot -f ;;
shutdown) nt-status 2; reboot -f ;;
cpus) echo "NT-CPUS $(grep -c ^processor /proc/cpuinfo)"; nt-status 2; reboot -f ;;
panic) echo "NT-EXITING"; exit 3 ;;
sigsys)
	# 0x5c: nucleus-vmm-trigger dies of SIGSYS here (its vCPU
	# thread makes a forbidden call); any other ignores it and sees the reboot.
	nt-status 0x5c
	echo "NT-SURVIVED"
	reboot -f ;;
ticks)
	nt-status 1
	i=0
	while :; do i=$((i + 1)); echo "NT-TICK $i"; sleep 1; done ;;
*) echo "NT-UNKNOWN"; reboot -f ;;
esac
EOI
chmod 755 "$t/init"
(cd "$t" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$out.tmp"
mv "$out.tmp" "$out"
