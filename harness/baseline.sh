#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   harness/baseline.sh       (make iommufd-baseline)
#
# Record which cases of upstream's iommufd selftests (iommufd,
# iommufd_fail_nth) pass on the stock base kernel: Linux $KSRC_VERSION with
# neither the overlay nor the patch series, built from the same config
# fragments as the x86_64 test kernel (the framework's symbols stay unknown
# to it), booted the same way (x86_64, VT-d first stage, the same huge
# pages).  Writes harness/baseline/iommufd-$KSRC_VERSION.tsv, which make
# check judges the patched kernel's results against.
#
# The stock tree and build live in $CACHE/stock, a cache of their own.

. "$(dirname "$0")/lib.sh"

stock=$CACHE/stock
out=$REPO/harness/baseline/iommufd-$KSRC_VERSION.tsv
"$HARNESS_DIR/setup.sh" run
mkdir -p "$stock"
# busybox is downloaded once, for both caches.
"$HARNESS_DIR/setup.sh" busybox-amd64
ln -sfn "$CACHE/busybox" "$stock/busybox"

export KVMDOM_CACHE=$stock KVMDOM_OVERLAY= KVMDOM_PATCHES=
"$HARNESS_DIR/prepare.sh"
"$HARNESS_DIR/build.sh" x86_64
# The project's own test programs do not build without the overlay's uAPI;
# only upstream's selftests matter here.
"$HARNESS_DIR/userspace.sh" x86_64 || true
[ -x "$stock/build/x86_64/user/iommufd" ] && [ -x "$stock/build/x86_64/user/iommufd_fail_nth" ] ||
	die "upstream's iommufd selftests did not build for the stock kernel"
"$HARNESS_DIR/initramfs.sh" x86_64
log=$stock/logs/boot-x86_64-flts-baseline.log
"$HARNESS_DIR/boot.sh" x86_64 flts check "$log" || true

hdr="# Upstream iommufd selftest results on the stock base kernel, the
# reference make check judges the patched kernel's against.
# base: $(base_version "$stock/src"), no overlay, no patches
# config: $(test_kernel_frags x86_64 | xargs -n1 basename | tr '\n' ' ')
# boot: x86_64, VT-d first stage, hugepages on the kernel command line
# regenerate: make iommufd-baseline (harness/baseline.sh), $(date -u +%F)
"
mkdir -p "$(dirname "$out")"
KVMDOM_RESULTS= "$HARNESS_DIR/results.py" --log "$log" --label stock \
	--kunit-py "$stock/src/tools/testing/kunit/kunit.py" \
	--upstream iommufd --upstream iommufd_fail_nth \
	--write-baseline "$out.tmp" --header "$hdr" || true
[ -s "$out.tmp" ] && grep -q $'\tPASS' "$out.tmp" ||
	die "no upstream selftest results in $log"
mv "$out.tmp" "$out"
info "wrote $out: $(grep -c $'\tPASS' "$out") cases pass on stock, $(grep -vc -e '^#' -e $'\tPASS' "$out") do not"
