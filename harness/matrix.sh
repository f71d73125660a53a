#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   harness/matrix.sh x86_64|s390x
#
# The Kconfig matrix of configs/matrix.tsv for one architecture.  Each
# requested combination is configured (tinyconfig + the test kernel's
# fragments + the combination, merge_config.sh + olddefconfig) and the
# resulting .config is compared with the request:
#   - a symbol not as requested: "n/a (Kconfig: X forced to Y)", not built,
#     not counted;
#   - every symbol as requested: the combination is allowed.
# Of the allowed combinations a pairwise cover is built (harness/pairwise.py:
# the test kernel's own combination, then enough others that every value of
# each symbol is built together with every value of each other symbol);
# the rest are reported "n/a (not built: ... pairwise)" and not counted.
# KVMDOM_MATRIX_FULL=1 builds every allowed combination.  A built
# combination is vmlinux + modules in its own directory
# $CACHE/build/matrix-<arch>/<combination>, counted as one check.  A new
# directory starts as a copy of the built directory whose .config is
# nearest, so kbuild rebuilds only what the difference touches (and ccache
# has many of those objects from another directory); a re-run rebuilds only
# what changed since the directory's last build.
#
# Configuring is deterministic in its inputs: the Kconfig files of the tree
# (pristine, named by the base version, plus the project's own and patched
# Kconfig files, by content), the fragments, the combination and the
# compiler.  Its result is kept under a hash of those inputs, so a re-run
# that changed none of them does not run merge_config.sh again.

. "$(dirname "$0")/lib.sh"

arch=$1
C=$REPO/configs
table=${KVMDOM_MATRIX:-$C/matrix.tsv}
out=$BUILD/matrix-$arch		# one directory per combination
cfg=$BUILD/matrix-$arch.kconfig	# configuring; cache/ keeps the results
mkdir -p "$out" "$cfg/cache" "$LOGS"
log=$LOGS/matrix-$arch.log
: >"$log"
case $arch in
x86_64|s390x) ;;
*)	die "matrix: unknown arch $arch" ;;
esac
# The test kernel's own fragments, so the combination equal to the test
# kernel (the first one, see the table) is already built: its directory
# starts as a copy of the test kernel's.
mapfile -t frags < <(test_kernel_frags "$arch")

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

# Inputs of configuring, except the fragments and the combination.
kconfig_inputs() {
	base_version "$SRC"
	echo "$arch"
	"$(cross_prefix "$arch")gcc" --version | head -n1
	"$(cross_prefix "$arch")ld" --version | head -n1
	managed_files '(^|/)Kconfig[^/]*$' | file_digests
	cat "$0"
}
kfp=$(kconfig_inputs | digest)
# (No file named tiny.config in $cfg: "make tinyconfig" makes the target
# tiny.config, and would take such a file for an up-to-date target and give
# plain allnoconfig.)
rm -f "$cfg/tiny.config"
if [ ! -f "$cfg/cache/$kfp.tiny" ]; then
	rm -rf "$cfg/cache"
	mkdir -p "$cfg/cache"
	kmake "$arch" "$cfg" tinyconfig >>"$log" 2>&1 || { show_tail "$log"; die "tinyconfig failed"; }
	cp "$cfg/.config" "$cfg/cache/$kfp.tiny"
fi

got() {
	local v
	v=$(sed -n -e "s/^CONFIG_$1=\(.*\)/\1/p" -e "s/^# CONFIG_$1 is not set/n/p" "$cfg/.config")
	echo "${v:-n}"
}

# nearest_seed CONFIG DIR...: the DIR with a vmlinux that rebuilds least
# for CONFIG.  kbuild rebuilds an object when a symbol it reads changed:
# fixdep lists those as include/config/<SYMBOL> in the object's .cmd file.
# The cost of a seed is the number of its objects that read a symbol whose
# value differs from CONFIG's (KVM or IOMMUFD is read by half the kernel's
# objects, through arch headers), then the number of differing lines (the
# first of equals).  The number of lines alone picks badly: a symbol that
# hides others (IOMMU_KVM_DOMAIN=n) differs in many lines and rebuilds a
# dozen objects.
nearest_seed() {
	local want=$1 d best= n cost lines syms bestn= bestcost=
	shift
	for d; do
		[ -f "$d/vmlinux" ] && [ -f "$d/.config" ] || continue
		# The lines of either .config that the other lacks
		lines=$({ diff <(grep '^CONFIG_' "$want" | sort) \
			       <(grep '^CONFIG_' "$d/.config" | sort) || true; } |
			{ grep '^[<>]' || true; })
		n=$(printf '%s' "$lines" | grep -c . || true)
		syms=$(printf '%s\n' "$lines" |
			sed -n 's/^[<>] CONFIG_\([A-Za-z0-9_]*\)=.*/\1/p' | sort -u |
			paste -sd'|')
		cost=0
		if [ -n "$syms" ]; then
			cost=$(find "$d" -name '*.o.cmd' -print0 |
				{ xargs -0 -r grep -l -E "include/config/($syms)\)" || true; } |
				wc -l)
		fi
		if [ -z "$bestn" ] || [ "$cost" -lt "$bestcost" ] ||
		   { [ "$cost" = "$bestcost" ] && [ "$n" -lt "$bestn" ]; }; then
			best=$d bestn=$n bestcost=$cost
		fi
	done
	echo "$best"
}

# combo_key COMBINATION: its configuration's key in $cfg/cache
combo_key() {
	{ cat "${frags[@]}"; printf 'CONFIG_%s\n' $1; } | digest
}

# configure_job N: configure every combination of the list $cfg/todo whose
# line number is N modulo 2, in the directory $cfg/job-N (kbuild builds
# its own Kconfig tools there once).  A result goes to the cache under its
# key, moved in place when complete; a failure leaves $key.failed.
configure_job() {
	local n=$1 d=$cfg/job-$1 c key i=0
	mkdir -p "$d"
	while read -r c; do
		i=$((i + 1))
		[ $((i % 2)) = "$n" ] || continue
		key=${keys[$c]}
		printf 'CONFIG_%s\n' $c >"$d/combo.config"
		cp "$cfg/cache/$kfp.tiny" "$d/.config"
		if merge_fragments "$arch" "$d" "${frags[@]}" "$d/combo.config" >"$d/log" 2>&1; then
			cp "$d/log" "$cfg/cache/$key.log"
			cp "$d/.config" "$cfg/cache/$key.config.tmp"
			mv "$cfg/cache/$key.config.tmp" "$cfg/cache/$key.config"
		else
			cp "$d/log" "$cfg/cache/$key.failed"
		fi
	done <"$cfg/todo"
}

rc=0 built=0 na=0 cached=0 skipped=0
keep=() built_dirs=() allowed=()
declare -A keys
# 1. Configure every combination; those Kconfig does not allow are n/a.
# Configuring is kconfig running the compiler for each of its toolchain
# tests, one process at a time: the combinations not in the cache are
# configured two at a time, under the build lock taken once.
: >"$cfg/todo"
for c in "${combos[@]}"; do
	c=${c# }
	key=$(combo_key "$c")
	keys[$c]=$key
	rm -f "$cfg/cache/$key.failed"
	if [ -f "$cfg/cache/$key.config" ] && [ -f "$cfg/cache/$key.log" ]; then
		cached=$((cached + 1))
	else
		echo "$c" >>"$cfg/todo"
	fi
done
configure_jobs() {
	configure_job 0 &
	configure_job 1 &
	wait
}
if [ -s "$cfg/todo" ]; then
	holding_lock configure_jobs
fi
for c in "${combos[@]}"; do
	c=${c# }
	name="matrix $arch: $c"
	key=${keys[$c]}
	if [ ! -f "$cfg/cache/$key.config" ]; then
		cat "$cfg/cache/$key.failed" >>"$log" 2>/dev/null || true
		result FAIL "$name" "kconfig failed, see $log"
		rc=1
		continue
	fi
	cp "$cfg/cache/$key.config" "$cfg/.config"
	forced= produced=
	for kv in $c; do
		s=${kv%%=*} want=${kv#*=} have=$(got "${kv%%=*}")
		produced="$produced $s=$have"
		if grep -q "unknown symbol: $s\$" "$cfg/cache/$key.log"; then
			[ "$want" = n ] || forced="$forced $s unknown"
		elif [ "$have" != "$want" ]; then
			forced="$forced $s forced to $have,"
		fi
	done
	if [ -n "$forced" ]; then
		result NA "$name" "Kconfig:${forced%,}; olddefconfig produced${produced}"
		na=$((na + 1))
		continue
	fi
	allowed+=("$c")
done

# 2. Of the allowed ones, build a pairwise cover (harness/pairwise.py):
# every value of every symbol meets every value of every other symbol in
# at least one built combination.  KVMDOM_MATRIX_FULL=1 builds them all.
if [ "${KVMDOM_MATRIX_FULL:-0}" = 1 ]; then
	build=("${allowed[@]}")
else
	mapfile -t build < <(printf '%s\n' "${allowed[@]}" | "$HARNESS_DIR/pairwise.py")
fi
info "matrix $arch: ${#allowed[@]} combinations allowed, ${#build[@]} to build${KVMDOM_MATRIX_FULL:+ (KVMDOM_MATRIX_FULL)}"
declare -A to_build
for c in "${build[@]}"; do
	to_build[$c]=1
done

# 3. Build, in table order.
for c in "${allowed[@]}"; do
	seed=
	name="matrix $arch: $c"
	if [ -z "${to_build[$c]:-}" ]; then
		result NA "$name" "not built: each pair of its values is built in another combination (pairwise; KVMDOM_MATRIX_FULL=1 builds it)"
		skipped=$((skipped + 1))
		continue
	fi
	slug=$(echo "$c" | tr " =" --)
	dir=$out/$slug
	cp "$cfg/cache/${keys[$c]}.config" "$cfg/.config"
	extra="IOMMUFD=$(got IOMMUFD) VFIO=$(got VFIO)"
	keep+=("$slug")
	if [ ! -f "$dir/.config" ]; then
		# Seed: of the directories built so far (the test kernel's and
		# this run's combinations), the one whose .config is nearest:
		# a symbol that forces others (IOMMUFD=m makes VFIO a module)
		# changes much more than the one requested.
		# Copy aside and move in place: a copy cut short (the run was
		# stopped) must not leave a directory with a .config and files
		# whose mtimes say they are up to date.
		seed=$(nearest_seed "$cfg/.config" "$BUILD/$arch" "${built_dirs[@]}")
		rm -rf "$dir" "$dir.tmp"
		if [ -f "$seed/vmlinux" ]; then
			cp -a "$seed" "$dir.tmp"
			rm -rf "$dir.tmp/mods" "$dir.tmp/hdr" "$dir.tmp/user"
			mv "$dir.tmp" "$dir"
		fi
		mkdir -p "$dir"
	fi
	cmp -s "$cfg/.config" "$dir/.config" || cp "$cfg/.config" "$dir/.config"
	start=$SECONDS
	echo "=== $c" >>"$log"
	if kmake "$arch" "$dir" vmlinux modules >>"$log" 2>&1; then
		result PASS "$name" "$((SECONDS - start))s; $extra${seed:+; seeded from ${seed##*/}}"
		built_dirs+=("$dir")
	else
		grep -E '(error|Error|ERROR)[: ]' "$log" | tail -n 20
		show_tail "$log" 15
		result FAIL "$name" "build failed ($extra), see $log"
		rc=1
	fi
	built=$((built + 1))
done
# Everything else in $out: combinations no longer in the table (or no longer
# allowed), and what an older layout (one shared build directory) left.
find "$out" -mindepth 1 -maxdepth 1 -print0 | while IFS= read -r -d '' d; do
	case " ${keep[*]} " in *" ${d##*/} "*) ;; *) rm -rf "$d" ;; esac
done
info "matrix $arch: $built built, $skipped covered pairwise, $na n/a; $cached of ${#combos[@]} configurations reused (Kconfig inputs unchanged)"
exit $rc
