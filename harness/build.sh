#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   harness/build.sh x86_64|s390x|arm64
#
# Configure (configs/ fragments, verified) and build one architecture in
# $CACHE/build/<arch>.  x86_64 and s390x also install modules and uapi
# headers for the initramfs and the userspace tests; arm64 is a compile
# check of the framework directories only.
# Counted checks: "<arch>: config", "<arch>: build".

. "$(dirname "$0")/lib.sh"

arch=$1
out=$BUILD/$arch
mkdir -p "$LOGS"
log=$LOGS/build-$arch.log

case $arch in
x86_64|s390x)
	targets=(bzImage modules) ;;
arm64)	# Only the directories the project adds code to, plus KVM (which
	# hosts virt/kvm/ on every architecture).
	targets=(drivers/iommu/ arch/arm64/kvm/) ;;
*)	die "unknown arch $arch" ;;
esac
mapfile -t frags < <(test_kernel_frags "$arch")

echo "base: $(base_version "$SRC")"
info "$arch: configuring $out"
if "$HARNESS_DIR/kconfig.sh" "$arch" "$out" "${frags[@]}"; then
	result PASS "$arch: config" "fragments: ${frags[*]##*/}"
else
	result FAIL "$arch: config" "requested symbols missing, see above"
fi

info "$arch: make ${targets[*]} (log: $log)"
start=$SECONDS
if ! kmake "$arch" "$out" "${targets[@]}" >"$log" 2>&1; then
	grep -E '(error|Error|ERROR)[: ]' "$log" | head -n 30 || true
	show_tail "$log" 30
	result FAIL "$arch: build" "make ${targets[*]} failed, see $log"
	exit 1
fi
result PASS "$arch: build" "$((SECONDS - start))s, $(grep -c '^  CC' "$log" || true) files compiled"

[ "$arch" = arm64 ] && exit 0

# Modules and headers for the initramfs and the userspace tests.
rm -rf "$out/mods.tmp"
if ! kmake "$arch" "$out" modules_install INSTALL_MOD_PATH="$out/mods.tmp" INSTALL_MOD_STRIP=1 >>"$log" 2>&1 ||
   ! kmake "$arch" "$out" headers_install INSTALL_HDR_PATH="$out/hdr" >>"$log" 2>&1; then
	show_tail "$log" 30
	result FAIL "$arch: build" "modules_install/headers_install failed"
	exit 1
fi
rm -rf "$out/mods"
mv "$out/mods.tmp" "$out/mods"
