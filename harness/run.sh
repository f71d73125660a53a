#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make run: build the x86_64 test kernel with the framework, boot it in QEMU
# (VT-d first-stage, edu DMA device, nested KVM) and run the demo,
# tools/kvm-domain/demo.sh, inside.  KVMDOM_MODE=shell gives a shell instead.

. "$(dirname "$0")/lib.sh"

mode=${KVMDOM_MODE:-demo}
"$HARNESS_DIR/setup.sh" run
"$HARNESS_DIR/prepare.sh"
"$HARNESS_DIR/build.sh" x86_64
"$HARNESS_DIR/userspace.sh" x86_64 || warn "userspace tests did not build (see above); the demo runs anyway"
"$HARNESS_DIR/initramfs.sh" x86_64
log=$LOGS/run-x86_64.log
rc=0
"$HARNESS_DIR/boot.sh" x86_64 flts "$mode" "$log" || rc=$?
[ "$mode" = demo ] || exit "$rc"
echo
echo "base: $(base_version "$SRC")"
echo "console log: $log"
if grep -q 'KVMDOM-DONE' "$log"; then
	demo_rc=$(sed -n 's/.*KVMDOM-DONE rc=\([0-9]*\).*/\1/p' "$log" | tail -n1)
	[ "$demo_rc" = 0 ] && info "demo: ok" || info "demo: failed (rc=$demo_rc)"
	exit "$demo_rc"
fi
die "the VM did not finish the demo (QEMU exit status $rc): see $log"
