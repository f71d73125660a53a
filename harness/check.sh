#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: the whole matrix.  Every KUnit case, every userspace test case,
# every build, boot and static check is one counted result.  Prints a timing
# table per stage and, as its very last line, "N passed, N failed".  Exits
# non-zero on any failure.
#
# KVMDOM_STAGES="x86 s390 ..." runs a subset (see the list below).  The
# stages run in that order, except the two x86_64 boots: they run one after
# the other in the background, beside the s390x, arm64, series, static and
# matrix stages, and their output is printed when the matrix is done.

. "$(dirname "$0")/lib.sh"

mkdir -p "$CACHE" "$LOGS"
export KVMDOM_RESULTS=$CACHE/results.txt
: >"$KVMDOM_RESULTS"
RESULTS=$KVMDOM_RESULTS
TIMES=$CACHE/times.txt
: >"$TIMES"
KUNIT_PY=$SRC/tools/testing/kunit/kunit.py
IOMMUFD_BASELINE=$REPO/harness/baseline/iommufd-$KSRC_VERSION.tsv
ALL_STAGES="setup prepare x86_64 x86_64-boot-flts x86_64-boot-sl x86_64-boot-la57 s390x s390x-boot arm64 series static matrix-x86_64 matrix-s390x"
# setup and prepare always run: every other stage reads the prepared tree,
# and a stale one would test old code (they take seconds when nothing changed).
STAGES="setup prepare ${KVMDOM_STAGES:-$ALL_STAGES}"
t0=$SECONDS

fails() { grep -c '^FAIL' "$RESULTS" || true; }
declare -A STATUS

# stage NAME [needs STAGE...] -- command...: run a timed stage.  A stage
# whose prerequisite failed is skipped and counted as one failure; a stage
# that fails without reporting a failure of its own counts as one.
stage() {
	local name=$1 dep
	shift
	case " $STAGES " in *" $name "*) ;; *) return 0 ;; esac
	while [ "$1" != -- ]; do
		dep=$1
		shift
		if [ "${STATUS[$dep]:-ok}" != ok ]; then
			printf '\n%s=== %s: skipped (%s failed) ===%s\n' "$C_BLD" "$name" "$dep" "$C_OFF"
			result FAIL "$name" "skipped: $dep failed"
			STATUS[$name]=skipped
			printf '%s\t%s\t%s\n' "$name" 0 skipped >>"$TIMES"
			return 0
		fi
	done
	shift
	printf '\n%s=== %s ===%s\n' "$C_BLD" "$name" "$C_OFF"
	local start=$SECONDS f0 st=ok
	f0=$(fails)
	if ! ( "$@" ); then
		st=FAIL
		[ "$(fails)" != "$f0" ] || result FAIL "$name" "stage failed"
	fi
	[ "$(fails)" = "$f0" ] || st=FAIL
	STATUS[$name]=$st
	printf '%s\t%s\t%s\n' "$name" $((SECONDS - start)) "$st${IN_BACKGROUND:+ (in the background)}" >>"$TIMES"
}

# arch_build ARCH: the kernel, the userspace tests and the initramfs.
arch_build() {
	"$HARNESS_DIR/build.sh" "$1" || return 1
	local rc=0
	"$HARNESS_DIR/userspace.sh" "$1" || rc=1
	"$HARNESS_DIR/initramfs.sh" "$1"
	return $rc
}

# boot_check ARCH VARIANT: one test boot, results from its console log.
boot_check() {
	local arch=$1 variant=$2 out=$BUILD/$1
	local log=$LOGS/boot-$arch-$variant-check.log
	local -a args=(--log "$log" --label "$arch/$variant" --kunit-py "$KUNIT_PY" --rc demo)
	# The second-stage boot runs what depends on VT-d's mode (boot, the
	# KVM smoke test, kvm_vtd_dma on an EPT table, the demo with edu
	# behind VT-d, kmemleak, no splats); KUnit and the mock's kselftest
	# run on the first-stage boot (boot.sh passes kunit.enable=0
	# kvmdom.mock=0 on the others).
	local all=1
	case $arch/$variant in x86_64/sl|x86_64/la57) all=0 ;; esac
	[ $all = 1 ] && grep -q '^CONFIG_IOMMU_KVM_DOMAIN_KUNIT_TEST=y' "$out/.config" && args+=(--expect-kunit)
	[ "$arch" = x86_64 ] && args+=(--tap kvm-smoke)
	[ "$arch" = x86_64 ] && args+=(--tap vtd-dma)
	[ $all = 1 ] && grep -q '^CONFIG_KVM_IOMMU_TDP_KUNIT_TEST=y' "$out/.config" &&
		args+=(--tap kunit-kvm_iommu_tdp)
	[ $all = 1 ] && [ -x "$out/user/kvm_domain" ] && args+=(--tap kselftest-kvm_domain)
	grep -q '^CONFIG_DEBUG_KMEMLEAK=y' "$out/.config" && args+=(--tap kmemleak)
	# Upstream's iommufd selftests, judged against the stock kernel's results.
	if [ "$arch/$variant" = x86_64/flts ] && [ -x "$out/user/iommufd" ]; then
		args+=(--upstream iommufd --upstream iommufd_fail_nth)
		if [ -f "$IOMMUFD_BASELINE" ]; then
			args+=(--baseline "$IOMMUFD_BASELINE")
		else
			result FAIL "$arch/$variant: upstream iommufd selftests" \
				"no stock baseline $IOMMUFD_BASELINE: run make iommufd-baseline"
		fi
	fi
	"$HARNESS_DIR/boot.sh" "$arch" "$variant" check "$log" || true
	if ! "$HARNESS_DIR/results.py" "${args[@]}"; then
		show_tail "$log" 40
		return 1
	fi
	[ "$arch" = s390x ] && grep -h '^s390x: KVM not available' "$log" | head -n1
	[ "$arch/$variant" = x86_64/sl ] && grep -h '^x86_64: VT-d walks' "$log" | head -n1
	return 0
}

# in_background NAME FUNCTION: run the stages of FUNCTION beside the stages
# that follow, with their output and results kept aside until
# wait_background prints them.  The x86_64 boots go there: QEMU runs the
# tests mostly on one vCPU thread, so the builds after them (which take the
# build lock as always, one at a time) use the core it leaves.
BG_PIDS=() BG_NAMES=() IN_BACKGROUND=
in_background() {
	local name=$1 fn=$2
	(
		RESULTS=$CACHE/results-$name.txt
		KVMDOM_RESULTS=$RESULTS
		IN_BACKGROUND=1
		: >"$RESULTS"
		"$fn"
	) >"$CACHE/output-$name.txt" 2>&1 </dev/null &
	BG_PIDS+=($!)
	BG_NAMES+=("$name")
	printf '\n%s=== %s: running in the background, output below when done ===%s\n' \
		"$C_BLD" "$name" "$C_OFF"
}
wait_background() {
	local i rc name
	for i in "${!BG_PIDS[@]}"; do
		name=${BG_NAMES[$i]}
		rc=0
		wait "${BG_PIDS[$i]}" || rc=$?
		cat "$CACHE/output-$name.txt" 2>/dev/null || true
		cat "$CACHE/results-$name.txt" >>"$RESULTS" 2>/dev/null || true
		# Its stages report their own failures; one that died did not
		[ "$rc" = 0 ] || result FAIL "$name" "background stages ended with status $rc"
	done
	BG_PIDS=()
}
trap '[ ${#BG_PIDS[@]} = 0 ] || kill "${BG_PIDS[@]}" 2>/dev/null' EXIT

x86_64_boots() {
	stage x86_64-boot-flts x86_64 -- boot_check x86_64 flts
	stage x86_64-boot-sl x86_64 -- boot_check x86_64 sl
	stage x86_64-boot-la57 x86_64 -- boot_check x86_64 la57
}

echo "kvm-domain make check, cache: $CACHE"
stage setup -- "$HARNESS_DIR/setup.sh" check
stage prepare setup -- "$HARNESS_DIR/prepare.sh"
stage x86_64 prepare -- arch_build x86_64
case " $STAGES " in
*" x86_64-boot-"*) in_background x86_64-boots x86_64_boots ;;
esac
stage s390x prepare -- arch_build s390x
stage s390x-boot s390x -- boot_check s390x zpci
stage arm64 prepare -- "$HARNESS_DIR/build.sh" arm64
stage series prepare -- "$HARNESS_DIR/series.sh" --check
stage static x86_64 s390x -- "$HARNESS_DIR/static.sh"
stage matrix-x86_64 prepare -- "$HARNESS_DIR/matrix.sh" x86_64
stage matrix-s390x prepare -- "$HARNESS_DIR/matrix.sh" s390x
wait_background

# ---- summary ---------------------------------------------------------------
npass=$(grep -c '^PASS' "$RESULTS" || true)
nfail=$(grep -c '^FAIL' "$RESULTS" || true)
nna=$(grep -c '^NA' "$RESULTS" || true)
echo
echo "base: $(base_version "$SRC" 2>/dev/null || echo unknown)"
if [ "$nfail" -gt 0 ]; then
	echo "Failures:"
	grep '^FAIL' "$RESULTS" | cut -f2- | sed 's/\t/  -- /; s/^/  /'
fi
[ "$nna" -gt 0 ] && echo "Not counted (n/a): $nna, see $RESULTS"
echo
echo "Timing:"
printf '  %-20s %8s  %s\n' stage time result
while IFS=$'\t' read -r n s st; do
	printf '  %-20s %5d:%02d  %s\n' "$n" $((s / 60)) $((s % 60)) "$st"
done <"$TIMES"
tot=$((SECONDS - t0))
printf '  %-20s %5d:%02d\n' total $((tot / 60)) $((tot % 60))
echo "$npass passed, $nfail failed"
[ "$nfail" = 0 ]
