#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   harness/static.sh
#
# Static checks of everything the project adds; each one is a counted check
# that passes only with 0 findings:
#   checkpatch --strict   every patch of the generated series ($CACHE/series,
#                         make series), which covers every added line: the new
#                         files as patches plus patches/series
#   W=1, sparse           every kbuild directory that compiles a new .c file,
#                         in a build directory of its own for its
#                         architecture (x86_64, or s390x for arch/s390/ and
#                         drivers/iommu/s390/; same .config as that test
#                         kernel); the new files' objects are deleted first
#                         so they are always recompiled.  Only findings in
#                         the project's new files count.  A .c file that
#                         another one #includes (a KUnit suite) is checked
#                         as part of it.
#   coccicheck            MODE=report, on each directory that is entirely the
#                         project's and on each new file in a shared directory
#                         (one spatch run per semantic patch for them all)
#   kernel-doc -none -Wall  the new .c/.h files, per directory
#
# checkpatch and coccicheck are deterministic in their inputs, so their
# findings are kept under a hash of those inputs ($CACHE/static-cache) and
# reused while none of them changed: for checkpatch the patch without its
# commit id and date (they change with every commit of the series), for
# coccicheck the target's files and every header the project adds or
# patches (other headers are pristine, named by the base version).  The
# tools and this script are part of every key.

. "$(dirname "$0")/lib.sh"

mkdir -p "$BUILD/x86_64-static" "$LOGS"
ovl=$CACHE/overlay.list
rc=0

# Is the path in a compiler/sparse/spatch message one of our new files?
ours_filter() {
	# stdin: messages; prints those about overlay files, path made relative
	awk -v src="$SRC/" -v list="$ovl" '
		BEGIN { while ((getline f < list) > 0) ours[f] = 1 }
		{
			line = $0; tag = ""
			if (sub(/^\[sparse\] /, "", line)) tag = "[sparse] "
			split(line, a, ":"); p = a[1]
			sub("^" src, "", p); sub(/^(\.\.\/)+/, "", p); sub(/^\.\//, "", p)
			# arch/x86/kvm/../../../virt/kvm/x.c -> virt/kvm/x.c
			while (match(p, /[^\/.][^\/]*\/\.\.\//))
				p = substr(p, 1, RSTART - 1) substr(p, RSTART + RLENGTH)
			# O= builds print "../src/..." or absolute paths
			n = index(p, "/src/"); if (n && !(p in ours)) p = substr(p, n + 5)
			if ((p in ours) && line ~ /: (warning|error|WARNING|ERROR)/) print tag p substr(line, length(a[1]) + 1)
		}'
}

count_findings() {
	# count_findings NAME FINDINGS [NOTE]: one check, failed by any line
	local name=$1 findings=$2 note=${3:+; $3}
	if [ -s "$findings" ]; then
		sed 's/^/    /' "$findings"
		result FAIL "static: $name" "$(wc -l <"$findings") findings$note"
		rc=1
	else
		result PASS "static: $name" "0 findings$note"
	fi
}

# Results of earlier runs, by hash of their inputs.
SC=$CACHE/static-cache
mkdir -p "$SC"
REUSED="inputs unchanged, result of an earlier run"
tools_key=$( {
	base_version "$SRC"
	spatch --version 2>&1 | head -n1
	gcc --version | head -n1
	cat "$0"
} | digest)

# ---- checkpatch -------------------------------------------------------------
# FILE_PATH_CHANGES ("does MAINTAINERS need updating?") is ignored: the new
# files are added in commits of their own and MAINTAINERS is a patch of the
# series; every other message counts.
"$HARNESS_DIR/series.sh" >"$LOGS/series-for-static.log" 2>&1 ||
	{ show_tail "$LOGS/series-for-static.log"; result FAIL "static: checkpatch" "could not generate the series"; rc=1; }
for p in "$CACHE"/series/*.patch; do
	[ -e "$p" ] || break
	name="checkpatch --strict $(basename "$p")"
	key=cp-$( { echo "$tools_key"; sed -e '1{/^From [0-9a-f]* /d}' -e '/^Date: /d' "$p"; } | digest)
	if [ -f "$SC/$key" ]; then
		count_findings "$name" "$SC/$key" "$REUSED"
		continue
	fi
	out=$(cd "$SRC" && perl scripts/checkpatch.pl --strict --ignore FILE_PATH_CHANGES --showfile "$p" 2>&1 || true)
	tot=$(echo "$out" | sed -n 's/^total: \([0-9]*\) errors, \([0-9]*\) warnings, \([0-9]*\) checks.*/\1 \2 \3/p' | tail -n1)
	if [ -z "$tot" ]; then
		echo "$out" | sed 's/^/    /'
		result FAIL "static: $name" "no summary from checkpatch"
		rc=1
	elif [ "$tot" = "0 0 0" ]; then
		: >"$SC/$key"
		result PASS "static: $name" "0 findings"
	else
		echo "$out" | grep -E -A3 ': (ERROR|WARNING|CHECK):' | sed 's/^/    /' || true
		set -- $tot
		result FAIL "static: $name" "$1 errors, $2 warnings, $3 checks"
		rc=1
	fi
done

# ---- W=1 and sparse ----------------------------------------------------------
# drop_modinfo_findings FILE: with a sparse that predates 7.3 (see
# sparse-wrap.sh), every MODULE_*() line of every module is "error: bad
# constant expression", since MODULE_INFO() has a static_assert on
# __builtin_strlen().  Remove exactly those findings (the source line must
# start with MODULE_) from FILE; print how many.
drop_modinfo_findings() {
	local f=$1 line file lno n=0
	: >"$f.keep"
	while IFS= read -r line; do
		if [[ $line =~ ^([^:]+):([0-9]+):[0-9]+:\ error:\ bad\ constant\ expression$ ]]; then
			file=${BASH_REMATCH[1]} lno=${BASH_REMATCH[2]}
			if sed -n "${lno}p" "$SRC/$file" 2>/dev/null | grep -q '^MODULE_[A-Z_]*('; then
				n=$((n + 1))
				continue
			fi
		fi
		printf '%s\n' "$line" >>"$f.keep"
	done <"$f"
	mv "$f.keep" "$f"
	echo "$n"
}

# The .c files the build compiles: not those another new .c file #includes
# (kvm_shadow.c includes its KUnit suite), which are checked inside it.
compiled_c() {
	local f inc
	grep '\.c$' "$ovl" | grep -v '^tools/' | while read -r f; do
		inc=$(basename "$f")
		if ! grep -lsF "#include \"$inc\"" $(grep '\.c$' "$ovl" | grep -v '^tools/' | sed "s|^|$SRC/|") |
		     grep -q .; then
			echo "$f"
		fi
	done
}

# The architecture that builds a new file: s390 code only builds for s390x.
file_arch() {
	case $1 in
	arch/s390/*|drivers/iommu/s390/*) echo s390x ;;
	*) echo x86_64 ;;
	esac
}

# w1_sparse ARCH: W=1 and sparse on the kbuild directories of ARCH's new .c
# files.  The kbuild directory that compiles a new .c file: virt/kvm/ is
# built as part of arch/<arch>/kvm/.
w1_sparse() {
	local arch=$1 st=$BUILD/$1-static files kdirs d pat f missing note n log
	files=$(compiled_c | while read -r f; do
			if [ "$(file_arch "$f")" = "$arch" ]; then echo "$f"; fi
		done)
	kdirs=$(for f in $files; do
			case $f in
			virt/kvm/*)	echo arch/x86/kvm/ ;;
			*)		echo "$(dirname "$f")/" ;;
			esac
		done | LC_ALL=C sort -u)
	[ -n "$kdirs" ] || return 0
	mkdir -p "$st"
	cmp -s "$BUILD/$arch/.config" "$st/.config" || cp "$BUILD/$arch/.config" "$st/.config"
	# Force recompilation of our objects: compiler warnings only show
	# when a file is compiled.
	grep '\.c$' "$ovl" | sed 's/\.c$/.o/' | while read -r o; do rm -f "$st/$o"; done
	log=$LOGS/static-w1-sparse-$arch.log
	info "W=1 + sparse ($arch): make C=1 W=1 $(echo $kdirs) (log: $log)"
	if ! kmake "$arch" "$st" W=1 C=1 CHECK="$HARNESS_DIR/sparse-wrap.sh" olddefconfig $kdirs >"$log" 2>&1; then
		grep -E 'error' "$log" | head -n 20 || true
		show_tail "$log" 20
		result FAIL "static: W=1/sparse build ($arch)" "make failed, see $log"
		rc=1
	fi
	for d in $kdirs; do
		# files compiled from this directory
		case $d in
		arch/x86/kvm/)	pat='^(virt/kvm/|arch/x86/kvm/)' ;;
		*)		pat="^${d}[^/]*$" ;;
		esac
		ours_filter <"$log" | grep -v '^\[sparse\] ' | grep -E "$pat" | LC_ALL=C sort -u >"$LOGS/static.tmp" || true
		count_findings "W=1 $d" "$LOGS/static.tmp"
		ours_filter <"$log" | sed -n 's/^\[sparse\] //p' | grep -E "$pat" | LC_ALL=C sort -u >"$LOGS/static.tmp" || true
		# sparse ran on each of our files of this directory?
		missing=
		for f in $(echo "$files" | grep -E "$pat"); do
			grep -q "CHECK .*/${f#*/}\$" "$log" || missing="$missing $f"
		done
		if [ -n "$missing" ]; then
			result FAIL "static: sparse $d" "not compiled in this config:$missing"
			rc=1
		else
			note=$sparse_note
			if [ -n "$sparse_note" ]; then
				n=$(drop_modinfo_findings "$LOGS/static.tmp")
				[ "$n" = 0 ] || note="$note; $n MODULE_*() lines not counted: sparse 0.6.4 cannot evaluate the __builtin_strlen() in MODULE_INFO()'s static_assert"
			fi
			count_findings "sparse $d" "$LOGS/static.tmp" "$note"
		fi
	done
}

# A sparse that predates __typeof_unqual__ (see sparse-wrap.sh)
sparse_note=
if [ "$(sh "$SRC/scripts/checker-valid.sh" sparse -m64)" != 1 ]; then
	export KVMDOM_SPARSE_TYPEOF_UNQUAL=1
	sparse_note="sparse $(sparse --version) lacks __typeof_unqual__: mapped to __typeof__"
	info "$sparse_note"
fi
ST=$BUILD/x86_64-static
w1_sparse x86_64
w1_sparse s390x

# ---- coccicheck --------------------------------------------------------------
command -v spatch >/dev/null || die "spatch missing: harness/setup.sh static"
targets=()
for d in $(grep -E '\.(c|h)$' "$ovl" | grep -v '^tools/' | xargs -r -n1 dirname | LC_ALL=C sort -u); do
	if [ "$(find "$SRC/$d" -maxdepth 1 -type f -name '*.[ch]' | wc -l)" = \
	     "$(grep -cE "^$d/[^/]*\.[ch]$" "$ovl")" ]; then
		targets+=("$d")		# the whole directory is ours
	else
		targets+=($(grep -E "^$d/[^/]*\.[ch]$" "$ovl"))
	fi
done
# cocci_batch TARGET...: what "make coccicheck MODE=report M=TARGET" runs
# (scripts/coccicheck: every semantic patch with "virtual report" whose
# Requires: this spatch meets, with its Options:), for all TARGETs in one
# spatch run per semantic patch instead of one per patch and target: a run
# on a file or two is mostly spatch starting up.  Each file is a group of
# its own (--file-groups), so spatch matches it alone, as --dir does.  The
# files are those --dir would take: a directory's .c files, and its .h
# files only for a semantic patch with --include-headers; a file named as
# the target is taken whatever it is.  Since 6.13 M= must be a directory
# the build can write to, so this is run with the include flags kbuild
# gives coccicheck ($cocci_inc).
cocci_batch() {
	local all=$LOGS/cocci.files c=$LOGS/cocci.groups-c ch=$LOGS/cocci.groups-ch
	local cocci opt req ver inc groups t
	{
		[ $# = 0 ] || (cd "$SRC" && find "$@" -type f -name '*.[ch]') | sed "s|^|$SRC/|"
		echo "$cocci_canary"
	} | LC_ALL=C sort -u >"$all"
	{
		grep '\.c$' "$all" || true
		for t; do
			case $t in *.h) echo "$SRC/$t" ;; esac
		done
	} | LC_ALL=C sort -u | sed G >"$c"
	sed G "$all" >"$ch"
	ver=$(spatch --version | head -n1 | awk '{print $3}')
	inc=${cocci_inc//-I/-I }
	inc=${inc// -include/ --include}
	for cocci in $(find "$SRC/scripts/coccinelle/" -name '*.cocci' -type f | LC_ALL=C sort); do
		grep -q "virtual[[:space:]]\+report" "$cocci" || continue
		opt=$(grep "Options:" "$cocci" | cut -d: -f2)
		req=$(grep "Requires:" "$cocci" | cut -d: -f2 | sed "s| ||")
		if [ -n "$req" ] && ! { echo "$req"; echo "$ver"; } | sort -CV; then
			echo "Skipping ${cocci#$SRC/}: needs coccinelle $req, have $ver"
			continue
		fi
		groups=$c
		case " $opt " in *" --include-headers "*) groups=$ch ;; esac
		echo "spatch ${cocci#$SRC/}"
		# shellcheck disable=SC2086 # word splitting of $opt and $inc intended
		spatch -D report --no-show-diff --very-quiet --cocci-file "$cocci" $opt \
			--file-groups "$groups" $inc --jobs 2 --chunksize 1 2>&1 ||
			{ echo "spatch failed on ${cocci#$SRC/}"; return 1; }
	done
}

# Every header the project adds or patches: --all-includes rules may read
# any of them.
hdr_key=$(managed_files '\.h$' | file_digests | digest)
cocci_pending=()
declare -A cocci_key
for t in "${targets[@]}"; do
	key=cocci-$( {
		echo "$tools_key $hdr_key $t"
		(cd "$SRC" && find "$t" -type f -name '*.[ch]') | LC_ALL=C sort | file_digests
	} | digest)
	if [ -f "$SC/$key" ]; then
		count_findings "coccicheck $t" "$SC/$key" "$REUSED"
		continue
	fi
	cocci_pending+=("$t")
	cocci_key[$t]=$key
done

# The canary: a file with one finding every run must report (a NULL check
# before kfree(), free/ifnullfree.cocci), run with the targets, so that a
# runner that finds nothing at all fails.  Its result depends on the tools
# alone, which are part of every target's key: when it is not known, every
# target is run.
cocci_canary=$LOGS/cocci-canary.c
canary_key=cocci-canary-$(echo "$tools_key" | digest)
canary_known=
if [ -f "$SC/$canary_key" ]; then
	count_findings "coccicheck canary" "$SC/$canary_key" "$REUSED"
	canary_known=1
fi

# The targets that need a run go together, under the build lock.
if [ ${#cocci_pending[@]} -gt 0 ] || [ -z "$canary_known" ]; then
	cat >"$cocci_canary" <<-'EOF'
	// SPDX-License-Identifier: GPL-2.0
	#include <linux/slab.h>

	void kvmdom_cocci_canary(void *p)
	{
		if (p)
			kfree(p);
	}
	EOF
	log=$LOGS/static-cocci.log
	info "coccicheck MODE=report on ${cocci_pending[*]} (log: $log)"
	cocci_inc=$(cd "$SRC" && make -s O="$ST" --eval='kvmdom-print-linuxinclude: ; @echo $(LINUXINCLUDE)' \
		kvmdom-print-linuxinclude 2>/dev/null | tail -n 1)
	crc=0
	case $cocci_inc in
	*"-I$SRC/include "*)
		holding_lock cocci_batch ${cocci_pending[@]+"${cocci_pending[@]}"} >"$log" 2>&1 || crc=$? ;;
	*)	echo "no LINUXINCLUDE from kbuild: '$cocci_inc'" >"$log"
		crc=1 ;;
	esac
	# All findings about our files, path relative: spatch prints
	# "path:line:col-col: message".
	{
		ours_filter <"$log"
		grep -E "^$SRC/|^[a-z].*:[0-9]+:[0-9]+-[0-9]+: " "$log" | sed "s|^$SRC/||" |
			grep -F -f "$ovl"
	} | LC_ALL=C sort -u >"$LOGS/static-cocci.findings" || true
	if [ -z "$canary_known" ]; then
		if [ "$crc" = 0 ] && grep -q "^$cocci_canary:7:[0-9]*-[0-9]*: WARNING: NULL check before some freeing functions is not needed" "$log"; then
			: >"$SC/$canary_key"
			result PASS "static: coccicheck canary" "the finding planted in $cocci_canary was reported"
		else
			result FAIL "static: coccicheck canary" "the finding planted in $cocci_canary was not reported, see $log"
			rc=1
		fi
	fi
	for t in "${cocci_pending[@]}"; do
		if [ "$crc" != 0 ]; then
			show_tail "$log" 20
			result FAIL "static: coccicheck $t" "coccicheck failed, see $log"
			rc=1
			continue
		fi
		# the findings in this target's files
		(cd "$SRC" && find "$t" -type f -name '*.[ch]') >"$LOGS/static.files"
		awk -v list="$LOGS/static.files" '
			BEGIN { while ((getline f < list) > 0) mine[f] = 1 }
			{ split($0, a, ":"); if (a[1] in mine) print }' \
			"$LOGS/static-cocci.findings" >"$LOGS/static.tmp"
		cp "$LOGS/static.tmp" "$SC/${cocci_key[$t]}"
		count_findings "coccicheck $t" "$LOGS/static.tmp"
	done
fi

# ---- kernel-doc ----------------------------------------------------------------
for d in $(grep -E '\.(c|h)$' "$ovl" | grep -v '^tools/' | xargs -r -n1 dirname | LC_ALL=C sort -u); do
	files=$(grep -E "^$d/[^/]*\.[ch]$" "$ovl")
	(cd "$SRC" && perl scripts/kernel-doc -none -Wall $files) >"$LOGS/static.tmp" 2>&1 || true
	count_findings "kernel-doc -Wall $d/" "$LOGS/static.tmp"
done
exit $rc
