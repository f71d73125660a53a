#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The tests of "make check" inside the VM.  Each test's output is framed by
#   KVMDOM-BEGIN <name> ... KVMDOM-END <name> rc=<n>
# and is TAP unless the host says otherwise; the host parses it with
# tools/testing/kunit/kunit.py parse.  Kernel KTAP (KUnit) comes before init.

arch=$(uname -m)
begin() { echo "KVMDOM-BEGIN $1"; }
end() { echo "KVMDOM-END $1 rc=$2"; }

# Keep informational kernel messages off the console so they cannot split
# TAP lines; warnings and worse still show.  dmesg has everything.
dmesg -n 5

echo "# kernel: $(cat /proc/version)"
echo "# cmdline: $(cat /proc/cmdline)"

if [ "$arch" = x86_64 ]; then
	begin kvm-smoke
	modprobe kvm_amd 2>&1 | sed 's/^/# modprobe: /'
	dmesg | grep -iE 'kvm|svm|npt' | sed 's/^/# dmesg: /'
	/kvmdom/bin/kvm_smoke
	end kvm-smoke $?
	# KUnit suites built into kvm.ko ran when it loaded, their KTAP at
	# KERN_INFO (off the console); debugfs keeps it, unless KUnit is
	# disabled (kunit.enable=0), when the suite has no directory.
	r=/sys/kernel/debug/kunit/kvm_iommu_tdp/results
	if [ -r $r ]; then
		begin kunit-kvm_iommu_tdp
		cat $r
		end kunit-kvm_iommu_tdp 0
	fi
	if [ -x /kvmdom/bin/kvm_vtd_dma ]; then
		echo "x86_64: VT-d walks KVM's table for real on both VT-d boots, as x86-64 paging with the first stage (x-flts) and as EPT with the second; the vCPUs use NPT (kvm_amd) on both: KVM on VMX, whose vCPUs use EPT, never runs here (TCG has no VMX)"
		begin vtd-dma
		/kvmdom/bin/kvm_vtd_dma
		end vtd-dma $?
	fi
elif [ "$arch" = s390x ]; then
	echo "s390x: KVM not available under TCG (no SIE): KVM_RUN not tested"
	modprobe kvm 2>&1 | sed 's/^/# modprobe kvm: /'
fi

if [ "${KVMDOM_MOCK:-1}" = 1 ] && [ -x /kvmdom/bin/kvm_domain ]; then
	begin kselftest-kvm_domain
	if modprobe iommu_kvm_mock 2>&1 | sed 's/^/# modprobe: /'; then :; fi
	/kvmdom/bin/kvm_domain
	end kselftest-kvm_domain $?
fi

begin demo
/kvmdom/demo.sh
end demo $?

# Upstream's iommufd selftests, with the KVM-backed domain framework and its
# mock loaded: they must give exactly the results of stock 7.3.
# The host asks for them on one boot only (kvmdom.upstream=1, which init
# passes on as KVMDOM_UPSTREAM).
for t in iommufd iommufd_fail_nth; do
	[ "${KVMDOM_UPSTREAM:-0}" = 1 ] && [ -x /kvmdom/bin/$t ] || continue
	begin upstream-$t
	echo "# hugepages: $(cat /proc/sys/vm/nr_hugepages) reserved"
	lsmod | grep -q '^iommu_kvm_mock' && echo "# iommu_kvm_mock is loaded"
	/kvmdom/bin/$t
	end upstream-$t $?
done

if [ -e /sys/kernel/debug/kmemleak ]; then
	begin kmemleak
	echo "TAP version 13"
	echo "1..1"
	# Two scans: a fresh leak is only reported once it stayed unreferenced
	# for a full scan period.
	echo scan >/sys/kernel/debug/kmemleak
	sleep 1
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak >/tmp/kmemleak
	n=$(grep -c '^unreferenced object' /tmp/kmemleak)
	if [ "$n" = 0 ]; then
		echo "ok 1 kmemleak: no leaks"
	else
		sed 's/^/# /' /tmp/kmemleak
		echo "not ok 1 kmemleak: $n unreferenced objects"
	fi
	end kmemleak 0
fi
