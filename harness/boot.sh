#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   harness/boot.sh ARCH VARIANT MODE [LOG]
#
# Boot the kernel of $CACHE/build/ARCH with its initramfs in QEMU.
#   x86_64 flts  VT-d scalable mode, first-stage translation (x-flts=on)
#   x86_64 sl    VT-d scalable mode, second-stage translation
#   x86_64 la57  first-stage translation, and 5-level paging in the guest
#   s390x  zpci  s390-ccw-virtio with one zPCI NVMe function
# MODE is check, demo, bench or shell (kvmdom.mode= for the guest's init).
# The console goes to LOG (default $CACHE/logs/boot-ARCH-VARIANT-MODE.log);
# in demo and shell mode it is also shown.  QEMU runs under a timeout
# (KVMDOM_BOOT_TIMEOUT, default 600 s); exit status is QEMU's (124: timeout).

. "$(dirname "$0")/lib.sh"

arch=$1 variant=$2 mode=$3
log=${4:-$LOGS/boot-$arch-$variant-$mode.log}
out=$BUILD/$arch
initrd=$CACHE/initramfs/$arch/initramfs.cpio
tmo=${KVMDOM_BOOT_TIMEOUT:-600}
mkdir -p "$LOGS"

# make run shows the demo, not the boot messages.
quiet=
[ "$mode" = demo ] && quiet=quiet

# 2 MiB huge pages for upstream's iommufd selftests (first-stage boot
# only): their hugepage fixtures and huge dirty-tracking cases (up to
# 128 MiB buffers) fail without them.
HUGEPAGES=256

case $arch-$variant in
x86_64-flts|x86_64-sl|x86_64-la57)
	# Snoop control: a device's DMA can be made coherent, which VFIO
	# then tells KVM (kvm_vtd_dma checks that the KVM-backed domain
	# enforces it: PGSNP on the first stage, SNP leaves on the second)
	iommu=intel-iommu,intremap=on,x-scalable-mode=on,snoop-control=on
	# The table VT-d walks must have the 4 levels of QEMU's first stage
	cpu=max,la57=off
	if [ "$variant" = la57 ]; then
		# 5-level paging, so KVM's table has 5 levels: VT-d must refuse
		# it (kvm_vtd_dma checks); the rest runs on the other boots
		iommu=$iommu,x-flts=on
		cpu=max
		suites="kvmdom.mock=0 kunit.enable=0"
	elif [ "$variant" = flts ]; then
		iommu=$iommu,x-flts=on
		# Upstream's iommufd selftests run on this boot (make check)
		suites="kvmdom.upstream=1 hugepages=$HUGEPAGES"
	else
		# KUnit and the mock's kselftest do not touch VT-d: they run
		# on the first-stage boot only (make check). kvm_vtd_dma's
		# VM has 16 MiB of hugetlb pages.
		suites="kvmdom.mock=0 kunit.enable=0 hugepages=16"
	fi
	qemu=(qemu-system-x86_64 -accel tcg -cpu "$cpu"
	      -M q35,kernel-irqchip=split -device "$iommu"
	      -device edu,dma_mask=0xffffffffffffffff
	      -m 3G -smp 2 -nographic -no-reboot -nic none
	      -kernel "$out/arch/x86/boot/bzImage" -initrd "$initrd"
	      -append "console=ttyS0 panic=-1 intel_iommu=on,sm_on $quiet kvmdom.mode=$mode $suites ${KVMDOM_APPEND:-}")
	;;
s390x-zpci)
	qemu=(qemu-system-s390x -M s390-ccw-virtio -nographic -no-reboot -m 1G
	      -smp 2
	      -device zpci,uid=1,fid=0,target=nvme0
	      -device nvme,id=nvme0,serial=kvmdom
	      -kernel "$out/arch/s390/boot/bzImage" -initrd "$initrd"
	      -append "panic=-1 $quiet kvmdom.mode=$mode ${KVMDOM_APPEND:-}")
	;;
*)	die "boot: unknown arch/variant $arch $variant" ;;
esac

[ -f "$initrd" ] || die "$initrd missing: run harness/initramfs.sh $arch"
echo "boot: ${qemu[*]}" >"$log"
info "booting $arch ($variant, $mode), console log: $log"
idle_max=${KVMDOM_IDLE_TIMEOUT:-300}
set +e
if [ "$mode" = shell ]; then
	timeout -k 10 "$tmo" "${qemu[@]}" 2>&1 | tee -a "$log"
	exit "${PIPESTATUS[0]}"
fi
# Watchdog: a guest that prints nothing for idle_max seconds hangs (KUnit's
# own per-case timeout is 300 s); kill it instead of waiting for the
# overall timeout.
timeout -k 10 "$tmo" "${qemu[@]}" </dev/null >>"$log" 2>&1 &
pid=$!
if [ "$mode" != check ]; then
	tail -n +2 -f --pid="$pid" "$log" &
	tailpid=$!
fi
last=-1 idle=0
while kill -0 "$pid" 2>/dev/null; do
	sleep 2
	size=$(stat -c %s "$log")
	if [ "$size" = "$last" ]; then
		idle=$((idle + 2))
	else
		idle=0 last=$size
	fi
	if [ "$idle" -ge "$idle_max" ]; then
		echo "boot: no console output for ${idle_max}s: guest hangs, killing QEMU" >>"$log"
		[ "$mode" = check ] && echo "boot: no console output for ${idle_max}s: guest hangs, killing QEMU"
		kill -TERM "$pid" 2>/dev/null	# timeout(1) passes it to QEMU
		break
	fi
done
wait "$pid"
rc=$?
[ -n "${tailpid:-}" ] && wait "$tailpid"
set -e
if [ "$rc" = 124 ] && ! grep -q '^boot: no console output' "$log"; then
	echo "boot: QEMU timed out after ${tmo}s" >>"$log"
	echo "boot: QEMU timed out after ${tmo}s"
fi
exit "$rc"
