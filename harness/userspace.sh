#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   harness/userspace.sh x86_64|s390x
#
# Build the static userspace tests for the VM into $CACHE/build/<arch>/user:
#   kvm_smoke   tools/kvm-domain/kvm_smoke.c (x86_64 only: real-mode guest)
#   kvm_vtd_dma  tools/kvm-domain/kvm_vtd_dma.c (x86_64 only: edu's DMA
#               through a VT-d domain that walks KVM's table)
#   kvm_vtd_bench  tools/kvm-domain/kvm_vtd_bench.c (x86_64 only: make
#               bench's VT-d part, the KVM-backed domain against an IOAS)
#   kvm_domain_demo  tools/kvm-domain/kvm_domain_demo.c (x86_64 only: the
#               demo's walk through the uAPI with KVM and the mock IOMMU driver)
#   kvm_domain  tools/testing/selftests/iommu/kvm_domain.c, the kselftest,
#               built like tools/testing/selftests/iommu/Makefile builds the
#               iommufd tests, against the uapi headers of the prepared tree.
#   iommufd, iommufd_fail_nth  upstream's own iommufd selftests (x86_64
#               only: they need CONFIG_IOMMUFD_TEST, in the x86_64 test
#               kernel), built from the prepared tree the same way.
# Counted checks: "<arch>: build kvm_smoke", "<arch>: build kselftest ...".

. "$(dirname "$0")/lib.sh"

arch=$1
out=$BUILD/$arch
user=$out/user
hdr=$out/hdr
cc=$(cross_prefix "$arch")gcc
mkdir -p "$user"
log=$LOGS/userspace-$arch.log
: >"$log"
rc=0

[ -d "$hdr/include/linux" ] || die "$hdr missing: build the kernel first"

if [ "$arch" = x86_64 ]; then
	# -B: two small programs; their sources' mtimes are those of whichever
	# checkout ran last, which says nothing about what the cached
	# binaries were built from.
	if make -B -s -C "$REPO/tools/kvm-domain" CC="$cc" OUT="$user" HDR="$hdr" >>"$log" 2>&1; then
		result PASS "$arch: build kvm_smoke"
	else
		cat "$log"
		result FAIL "$arch: build kvm_smoke" "see $log"
		rc=1
	fi
fi

# The kselftest.  Same flags as selftests/lib.mk + iommu/Makefile, static.
kst=$SRC/tools/testing/selftests/iommu/kvm_domain.c
rm -f "$user/kvm_domain"
if [ -f "$kst" ]; then
	if (cd "$(dirname "$kst")" &&
	    $cc -Wall -O2 -Wno-unused-function -Wno-address-of-packed-member \
		-D_GNU_SOURCE= -isystem "$hdr/include" -static -pthread \
		-o "$user/kvm_domain" kvm_domain.c) >>"$log" 2>&1; then
		result PASS "$arch: build kselftest kvm_domain"
	else
		cat "$log"
		rm -f "$user/kvm_domain"
		result FAIL "$arch: build kselftest kvm_domain" "see $log"
		rc=1
	fi
elif core_present "$out"; then
	result FAIL "$arch: build kselftest kvm_domain" "missing: tools/testing/selftests/iommu/kvm_domain.c does not exist"
	rc=1
else
	result INFO "$arch: kselftest kvm_domain" "not written yet and framework not configured: nothing to build"
fi
# Upstream's iommufd selftests, a peer suite: tools/testing/selftests/iommu/
# Makefile builds them with -lcap.  Under TCG a case runs one to two orders
# of magnitude slower than on hardware, and the fail_nth sweeps come close
# to the kselftest harness's 30 s per-case timeout (basic_fail_nth.
# map_two_domains went either way): build them with a copy of
# kselftest_harness.h whose default timeout is 300 s, the stock baseline
# (harness/baseline.sh) too.
if [ "$arch" = x86_64 ]; then
	inc=$user/upstream-inc
	mkdir -p "$inc"
	sed 's/^#define TEST_TIMEOUT_DEFAULT 30$/#define TEST_TIMEOUT_DEFAULT 300/' \
		"$SRC/tools/testing/selftests/kselftest_harness.h" >"$inc/kselftest_harness.h"
	grep -q '^#define TEST_TIMEOUT_DEFAULT 300$' "$inc/kselftest_harness.h" ||
		die "kselftest_harness.h has no '#define TEST_TIMEOUT_DEFAULT 30' to raise"
	for t in iommufd iommufd_fail_nth; do
		rm -f "$user/$t"
		if (cd "$SRC/tools/testing/selftests/iommu" &&
		    $cc -Wall -O2 -Wno-unused-function -D_GNU_SOURCE= -I"$inc" -I.. \
			-isystem "$hdr/include" -static -pthread \
			-o "$user/$t" "$t.c" -lcap) >>"$log" 2>&1; then
			result PASS "$arch: build upstream selftest $t"
		else
			cat "$log"
			rm -f "$user/$t"
			result FAIL "$arch: build upstream selftest $t" "see $log"
			rc=1
		fi
	done
fi
exit $rc
