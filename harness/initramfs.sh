#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   harness/initramfs.sh x86_64|s390x
#
# Assemble the initramfs of one architecture: static busybox, the kernel's
# modules (with modules.dep from depmod), the test programs, the guest
# scripts.  The cpio archive is only rewritten when its content changed.

. "$(dirname "$0")/lib.sh"

arch=$1
out=$BUILD/$arch
dir=$CACHE/initramfs/$arch
root=$dir/root
cpio=$dir/initramfs.cpio
busybox=$CACHE/busybox/$(debian_arch "$arch")/bin/busybox

[ -x "$busybox" ] || die "$busybox missing: run harness/setup.sh busybox-$(debian_arch "$arch")"
[ -d "$out/mods/lib/modules" ] || die "$out/mods missing: build the kernel first"

rm -rf "$root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,lib,kvmdom/bin}
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$HARNESS_DIR/guest/init" "$root/init"
cp "$HARNESS_DIR/guest/check.sh" "$root/kvmdom/check.sh"
cp "$REPO/tools/kvm-domain/demo.sh" "$root/kvmdom/demo.sh"
cp -a "$out/mods/lib/modules" "$root/lib/"
for p in kvm_smoke kvm_vtd_dma kvm_vtd_bench kvm_domain_demo kvm_domain iommufd \
	 iommufd_fail_nth; do
	[ -x "$out/user/$p" ] && cp "$out/user/$p" "$root/kvmdom/bin/"
done
chmod 755 "$root/init" "$root/kvmdom/"*.sh

# Content manifest: rewrite the archive only if something changed.
sum=$(cd "$root" && find . -printf '%p %y %m %l\n' | LC_ALL=C sort | sha256sum | cut -d' ' -f1)
sum=$sum-$(cd "$root" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
if [ -f "$cpio" ] && [ "$(cat "$dir/manifest" 2>/dev/null)" = "$sum" ]; then
	info "$arch: initramfs unchanged ($cpio)"
	exit 0
fi
(cd "$root" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc --owner=0:0 --quiet) >"$cpio.tmp"
mv "$cpio.tmp" "$cpio"
echo "$sum" >"$dir/manifest"
info "$arch: initramfs $cpio ($(du -h "$cpio" | cut -f1))"
