#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# KVM-backed IOMMU domains: demo, run inside the test VM (make run).
#
# Shows, from the booted kernel: the framework library (debugfs), an IOMMU
# driver that owns KVM-backed domains loading (the mock), the DMA-capable
# device the VM has (edu on x86_64, a zPCI NVMe function on s390x) with its
# IOMMU group, and what KVM can do here.  Exits non-zero if the framework is not there.

D=/sys/kernel/debug/iommu-kvm
rc=0

say() { printf '\n== %s\n' "$*"; }
show() { echo "\$ $*"; "$@" 2>&1 | sed 's/^/  /'; }

grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug

say "kernel"
show uname -a

say "KVM-backed IOMMU domains: framework"
if [ -d "$D" ]; then
	show ls "$D"
	show cat "$D/domains"
else
	echo "  $D does not exist: the framework is not built into this kernel"
	rc=1
fi

say "an IOMMU driver with KVM-backed domains loads: modprobe iommu_kvm_mock"
if find /lib/modules -name 'iommu_kvm_mock.ko*' | grep -q .; then
	show modprobe iommu_kvm_mock
	show ls /sys/class/iommu
	dmesg | grep -iE 'iommu[_-]kvm' | grep -vE 'kunit|^ *(# |ok |not ok )' |
		tail -n 5 | sed 's/^/  dmesg: /'
else
	echo "  iommu_kvm_mock.ko is not built"
	rc=1
fi

say "IOMMUs"
for i in /sys/class/iommu/*; do
	[ -e "$i" ] && echo "  $(basename "$i")"
done

say "PCI devices and their IOMMU groups"
for d in /sys/bus/pci/devices/*; do
	[ -e "$d" ] || continue
	ven=$(cat "$d/vendor") dev=$(cat "$d/device")
	grp=-
	[ -e "$d/iommu_group" ] && grp=$(basename "$(readlink "$d/iommu_group")")
	what=
	case "$ven:$dev" in
	0x1234:0x11e8)	what="  <- edu DMA engine" ;;
	esac
	if [ -e "$d/function_id" ]; then
		what="  <- zPCI function fid=$(cat "$d/function_id") uid=$(cat "$d/uid" 2>/dev/null)"
	fi
	echo "  $(basename "$d") $ven:$dev group $grp$what"
	if [ -n "$what" ] && [ "$grp" != - ]; then
		echo "    group $grp: $(ls "$d/iommu_group/devices" | tr '\n' ' ')"
		t=$(cat "$d/iommu_group/type" 2>/dev/null)
		[ -n "$t" ] && echo "    default domain type: $t"
	fi
done

say "KVM"
case $(uname -m) in
x86_64)
	modprobe kvm_amd 2>&1 | sed 's/^/  /'
	if [ -c /dev/kvm ]; then
		echo "  /dev/kvm present (kvm_amd: nested=$(cat /sys/module/kvm_amd/parameters/nested 2>/dev/null) npt=$(cat /sys/module/kvm_amd/parameters/npt 2>/dev/null))"
	else
		echo "  no /dev/kvm"
	fi ;;
s390x)
	echo "  s390x: KVM not available under TCG (no SIE): KVM_RUN not tested"
	modprobe kvm 2>&1 | sed 's/^/  modprobe kvm: /' ;;
esac

# A VMM's walk through the uAPI: a KVM VM, a mock device, a KVM-backed HWPT,
# invalidations, the VM going away, teardown; and what the edu device's
# IOMMU (VT-d, no KVM-backed domains yet) offers, through VFIO's cdev.
if [ -x /kvmdom/bin/kvm_domain_demo ] && [ -c /dev/kvm ]; then
	say "a VMM's view: tools/kvm-domain/kvm_domain_demo"
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor"):$(cat "$d/device")" = 0x1234:0x11e8 ] || continue
		[ -e "$d/driver" ] && echo "$(basename "$d")" >"$d/driver/unbind"
		echo vfio-pci >"$d/driver_override"
		echo "$(basename "$d")" >/sys/bus/pci/drivers_probe
		echo "  edu $(basename "$d") bound to $(basename "$(readlink "$d/driver")")"
	done
	# Mock devices have no MSI isolation; iommufd refuses them without this
	p=/sys/module/iommufd/parameters/allow_unsafe_interrupts
	old=$(cat $p)
	echo 1 >$p
	/kvmdom/bin/kvm_domain_demo || rc=1
	echo "$old" >$p
fi

say "demo done (rc=$rc)"
exit $rc
