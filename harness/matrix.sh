#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   harness/matrix.sh x86_64|s390x
#
# The Kconfig matrix of configs/matrix.tsv for one architecture.  Each
# requested combination is configured (tinyconfig + the test kernel's
# fragments + the combination, merge_config.sh + olddefconfig) and the
# resulting .config is compared with the request:
#   - every symbol as requested: build vmlinux + modules in
#     $CACHE/build/matrix-<arch> (kbuild rebuilds only what the change
#     touches) and count the build as one check;
#   - otherwise: "n/a (Kconfig: X forced to Y)", not built, not counted.

. "$(dirname "$0")/lib.sh"

arch=$1
C=$REPO/configs
table=${KVMDOM_MATRIX:-$C/matrix.tsv}
out=$BUILD/matrix-$arch
cfg=$out.kconfig
mkdir -p "$out" "$cfg" "$LOGS"
log=$LOGS/matrix-$arch.log
: >"$log"
case $arch in
x86_64)	karch=x86 ;;
s390x)	karch=s390 ;;
*)	die "matrix: unknown arch $arch" ;;
esac
# The test kernel's own fragments, so the combination equal to the test
# kernel (the first one, see the table) is already built: the matrix build
# directory starts as a copy of the test kernel's.
case $arch in
x86_64)	frags=("$C/common.config" "$C/x86_64.config" "$C/debug.config" "$C/kvm-domain.config") ;;
s390x)	frags=("$C/common.config" "$C/s390x.config" "$C/kvm-domain.config") ;;
esac
if [ ! -f "$out/.config" ] && [ -f "$BUILD/$arch/vmlinux" ]; then
	info "matrix $arch: seeding $out from $BUILD/$arch"
	rm -rf "$out"
	cp -a "$BUILD/$arch" "$out"
	rm -rf "$out/mods" "$out/hdr" "$out/user"
fi

# symbols and values of this arch, in table order
syms=() vals=()
while read -r sym arches values; do
	case $sym in ''|'#'*) continue ;; esac
	case ",$arches," in *",$arch,"*) ;; *) continue ;; esac
	syms+=("$sym")
	vals+=("$values")
done <"$table"
[ ${#syms[@]} -gt 0 ] || die "matrix: no symbols for $arch in $table"

# Every combination, first symbol outermost, in "snake" order: an inner
# symbol runs its values forwards, then backwards, so consecutive builds
# differ in one symbol and kbuild rebuilds little.
combos=("")
for i in "${!syms[@]}"; do
	next=()
	k=0
	for c in "${combos[@]}"; do
		vs=(${vals[$i]})
		if [ $((k % 2)) = 1 ]; then
			vs=($(printf '%s\n' "${vs[@]}" | tac))
		fi
		for v in "${vs[@]}"; do
			next+=("$c ${syms[$i]}=$v")
		done
		k=$((k + 1))
	done
	combos=("${next[@]}")
done

echo "base: $(base_version "$SRC")"
info "matrix $arch: ${#combos[@]} combinations of ${syms[*]} (table: $table)"
kmake "$arch" "$cfg" tinyconfig >>"$log" 2>&1 || { show_tail "$log"; die "tinyconfig failed"; }
cp "$cfg/.config" "$cfg/tiny.config"

got() {
	local v
	v=$(sed -n -e "s/^CONFIG_$1=\(.*\)/\1/p" -e "s/^# CONFIG_$1 is not set/n/p" "$cfg/.config")
	echo "${v:-n}"
}

rc=0 built=0 na=0
for c in "${combos[@]}"; do
	c=${c# }
	name="matrix $arch: $c"
	printf '%s\n' $c | sed 's/^/CONFIG_/' >"$cfg/combo.config"
	cp "$cfg/tiny.config" "$cfg/.config"
	{
		(cd "$SRC" && ARCH=$karch scripts/kconfig/merge_config.sh -m -O "$cfg" "$cfg/.config" "${frags[@]}" "$cfg/combo.config")
		KCONFIG_WARN_UNKNOWN_SYMBOLS=1 kmake "$arch" "$cfg" olddefconfig
	} >"$cfg/log" 2>&1 || { cat "$cfg/log" >>"$log"; result FAIL "$name" "kconfig failed"; rc=1; continue; }
	forced= produced=
	for kv in $c; do
		s=${kv%%=*} want=${kv#*=} have=$(got "${kv%%=*}")
		produced="$produced $s=$have"
		if grep -q "unknown symbol: $s\$" "$cfg/log"; then
			[ "$want" = n ] || forced="$forced $s unknown"
		elif [ "$have" != "$want" ]; then
			forced="$forced $s forced to $have,"
		fi
	done
	extra="IOMMUFD=$(got IOMMUFD) VFIO=$(got VFIO)"
	if [ -n "$forced" ]; then
		result NA "$name" "Kconfig:${forced%,}; olddefconfig produced${produced}"
		na=$((na + 1))
		continue
	fi
	cmp -s "$cfg/.config" "$out/.config" || cp "$cfg/.config" "$out/.config"
	start=$SECONDS
	echo "=== $c" >>"$log"
	if kmake "$arch" "$out" vmlinux modules >>"$log" 2>&1; then
		result PASS "$name" "$((SECONDS - start))s; $extra"
	else
		grep -E '(error|Error|ERROR)[: ]' "$log" | tail -n 20
		show_tail "$log" 15
		result FAIL "$name" "build failed ($extra), see $log"
		rc=1
	fi
	built=$((built + 1))
done
info "matrix $arch: $built built, $na n/a"
exit $rc
