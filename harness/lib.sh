# SPDX-License-Identifier: GPL-2.0
# Common helpers for the kvm-domain test harness.  Sourced, not executed.
#
# Every script sets -euo pipefail; everything expensive lives in the cache
# directory outside the checkout so that re-runs only redo what changed.

set -euo pipefail

HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HARNESS_DIR/.." && pwd)

CACHE=${KVMDOM_CACHE:-$HOME/.cache/kvm-domain}
PRISTINE=$CACHE/pristine/linux	# unpacked linux-source tarball, never modified
SRC=$CACHE/src			# pristine + overlay + patches/series
STAGE=$CACHE/stage		# candidate content of the managed files
BUILD=$CACHE/build		# O= build directories, one per purpose
LOGS=$CACHE/logs
# Directory holding the overlay (files at kernel paths).  KVMDOM_OVERLAY=
# (empty) or an empty directory tests the harness without any kernel code.
OVERLAY=${KVMDOM_OVERLAY-$REPO}
OVERLAY_DIRS="drivers include virt tools Documentation arch"
# Harness-owned helpers that live at a kernel-like path but are not part of
# the series.
OVERLAY_EXCLUDE="tools/kvm-domain/"
# Patch series; KVMDOM_PATCHES= (empty) disables it like the overlay.
PATCHES=${KVMDOM_PATCHES-$REPO/patches}

# The base: one variable.  Debian's linux-source-$KSRC_VERSION, from the
# suite KSRC_SUITE (derived from the machine's own apt sources, never named
# by host).
KSRC_VERSION=${KVMDOM_BASE:-7.3}
KSRC_PKG=linux-source-$KSRC_VERSION
KSRC_TARBALL=/usr/src/linux-source-$KSRC_VERSION.tar.xz
KSRC_SUITE=trixie-backports
QEMU_MIN_MAJOR=10
BUILD_LOCK=/tmp/kvmdom-build.lock
JOBS=${KVMDOM_JOBS:-2}

if [ -t 1 ] && [ -z "${CI:-}" ]; then
	C_RED=$'\e[31m' C_GRN=$'\e[32m' C_YEL=$'\e[33m' C_BLD=$'\e[1m' C_OFF=$'\e[0m'
else
	C_RED= C_GRN= C_YEL= C_BLD= C_OFF=
fi

info() { printf '%s==>%s %s\n' "$C_BLD" "$C_OFF" "$*"; }
warn() { printf '%sWARNING:%s %s\n' "$C_YEL" "$C_OFF" "$*" >&2; }
die() { printf '%sERROR:%s %s\n' "$C_RED" "$C_OFF" "$*" >&2; exit 1; }

# Run a command that builds in a kernel tree.  One kernel build at a time on
# this machine: everybody who builds takes the same lock.
# locked CMD...: CMD under the build lock, unless the caller holds it for
# CMD already (KVMDOM_LOCK_HELD=1: the matrix's configuring jobs).
locked() {
	if [ "${KVMDOM_LOCK_HELD:-0}" = 1 ]; then
		"$@"
	else
		flock "$BUILD_LOCK" "$@"
	fi
}

# holding_lock CMD...: CMD (a shell function too) under the build lock taken
# once, for work that runs several builds or heavy jobs side by side; its
# own kmake calls do not take the lock again.
holding_lock() {
	local fd rc=0
	exec {fd}>>"$BUILD_LOCK"
	flock "$fd"
	KVMDOM_LOCK_HELD=1 "$@" || rc=$?
	flock -u "$fd"
	exec {fd}>&-
	return $rc
}

# kmake <arch> <O=dir> make-args...: make in the prepared tree, locked.
kmake() {
	local arch=$1 out=$2
	shift 2
	local -a cross=()
	case $arch in
	x86_64)	;;
	s390x)	cross=(ARCH=s390 CROSS_COMPILE=s390x-linux-gnu-) ;;
	arm64)	cross=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-) ;;
	*)	die "kmake: unknown arch $arch" ;;
	esac
	mkdir -p "$out"
	local -a cc=()
	use_ccache && cc=("CC=ccache $(cross_prefix "$arch")gcc")
	locked make -C "$SRC" O="$out" -j"$JOBS" "${cross[@]}" "${cc[@]}" "$@"
}

# Does kmake compile through ccache?  With it (KVMDOM_CCACHE=1, the default)
# every build directory shares one compiler cache in $CACHE/ccache: the
# matrix's combinations, the static checks' build and a directory rebuilt
# after a configuration change compile many objects whose preprocessed
# source and flags are the same as in another directory, and take them from
# the cache (compiler messages included, so W=1 findings are not lost).
use_ccache() {
	[ "${KVMDOM_CCACHE:-1}" = 1 ] && command -v ccache >/dev/null
}
export CCACHE_DIR=${CCACHE_DIR:-$CACHE/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-4G}

# The kernel's ARCH= for an architecture.
kernel_arch() {
	case $1 in
	x86_64)	echo x86 ;;
	s390x)	echo s390 ;;
	*)	echo "$1" ;;
	esac
}

# The config fragments of the test kernel of an architecture, one per line
# (build.sh; the Kconfig matrix puts its combinations on top of them).
test_kernel_frags() {
	local C=$REPO/configs
	case $1 in
	x86_64)	printf '%s\n' "$C/common.config" "$C/x86_64.config" "$C/debug.config" "$C/iommufd-selftest.config" "$C/kvm-domain.config" ;;
	s390x)	printf '%s\n' "$C/common.config" "$C/s390x.config" "$C/kvm-domain.config" ;;
	arm64)	printf '%s\n' "$C/arm64.config" ;;
	*)	die "no config fragments for arch $1" ;;
	esac
}

# merge_fragments <arch> <dir> fragment...: merge the fragments into
# <dir>/.config and complete it with olddefconfig, warning about symbols
# Kconfig does not know.
merge_fragments() {
	local arch=$1 dir=$2
	shift 2
	(cd "$SRC" && ARCH=$(kernel_arch "$arch") scripts/kconfig/merge_config.sh -m -O "$dir" "$dir/.config" "$@") &&
		KCONFIG_WARN_UNKNOWN_SYMBOLS=1 kmake "$arch" "$dir" olddefconfig
}

# ---- cache keys -------------------------------------------------------------
# A cache key: 16 hex digits of the SHA-256 of stdin.
digest() { sha256sum | cut -c1-16; }

# stdin: paths relative to $SRC; stdout: "path sha256" for each that exists.
file_digests() {
	local f
	while read -r f; do
		if [ -f "$SRC/$f" ]; then
			echo "$f $(sha256sum <"$SRC/$f")"
		fi
	done
}

# The files the project adds or patches whose path matches an ERE, sorted
# (the lists prepare.sh writes).
managed_files() {
	cat "$CACHE/overlay.list" "$CACHE/patched.list" 2>/dev/null |
		{ grep -E "$1" || true; } | LC_ALL=C sort -u
}

# Tail of a log, for failure reports.
show_tail() {
	local log=$1 n=${2:-40}
	[ -f "$log" ] || return 0
	echo "---- last $n lines of $log ----"
	tail -n "$n" "$log"
	echo "---- end of $log ----"
}

# The base the tree was made from, e.g.
#   base: Linux 7.3.4 (linux-source-7.3 7.3.4-1~bpo13+1)
base_version() {
	local mk=${1:-$PRISTINE}/Makefile v p s e pkg
	v=$(sed -n 's/^VERSION = //p' "$mk")
	p=$(sed -n 's/^PATCHLEVEL = //p' "$mk")
	s=$(sed -n 's/^SUBLEVEL = //p' "$mk")
	e=$(sed -n 's/^EXTRAVERSION = *//p' "$mk")
	pkg=$(dpkg-query -W -f='${Version}' "$KSRC_PKG" 2>/dev/null || echo unknown)
	echo "Linux $v.$p.$s$e ($KSRC_PKG $pkg)"
}

# ---- the machine's own Debian archive -------------------------------------
# Print the archive URI and Signed-By of the stanza serving suite $2 from a
# deb822 file $1.
deb822_uri() {
	awk -v want="$2" '
		function flush() {
			if (uri != "" && match(" " suites " ", " " want " "))
				{ print uri "\t" key; found = 1; exit }
			uri = ""; suites = ""; key = ""
		}
		/^[ \t]*#/ { next }
		/^[ \t]*$/ { flush(); next }
		tolower($1) == "uris:" { uri = $2 }
		tolower($1) == "suites:" { $1 = ""; suites = $0 }
		tolower($1) == "signed-by:" { key = $2 }
		END { if (!found) flush() }
	' "$1"
}

# Same for one-line sources.list format: "deb [opts] URI suite comp..."
sources_list_uri() {
	awk -v want="$2" '
		$1 == "deb" {
			i = 2; key = ""
			if ($i ~ /^\[/) {
				while (i <= NF) {
					if ($i ~ /signed-by=/) { k = $i; sub(/.*signed-by=/, "", k); sub(/\]$/, "", k); key = k }
					if ($i ~ /\]$/) { i++; break }
					i++
				}
			}
			if ($(i + 1) == want) { print $i "\t" key; exit }
		}
	' "$1"
}

# ---- result bookkeeping (make check) -------------------------------------
# RESULTS is a file with one line per check: "PASS|FAIL|NA<TAB>name<TAB>detail".
RESULTS=${KVMDOM_RESULTS:-}

result() {
	local st=$1 name=$2 detail=${3:-}
	case $st in
	PASS) printf '  %sPASS%s %s%s\n' "$C_GRN" "$C_OFF" "$name" "${detail:+ ($detail)}" ;;
	FAIL) printf '  %sFAIL%s %s%s\n' "$C_RED" "$C_OFF" "$name" "${detail:+ ($detail)}" ;;
	NA)   printf '  %sn/a%s  %s%s\n' "$C_YEL" "$C_OFF" "$name" "${detail:+ ($detail)}" ;;
	INFO) printf '  info %s%s\n' "$name" "${detail:+ ($detail)}" ;;
	*) die "result: bad status $st" ;;
	esac
	if [ -n "$RESULTS" ]; then
		printf '%s\t%s\t%s\n' "$st" "$name" "$detail" >>"$RESULTS"
	fi
}

# Is the framework configured into the build in $1?
core_present() { grep -q '^CONFIG_IOMMU_KVM_DOMAIN=[ym]' "$1/.config" 2>/dev/null; }

cross_prefix() {
	case $1 in
	x86_64)	echo "" ;;
	s390x)	echo s390x-linux-gnu- ;;
	arm64)	echo aarch64-linux-gnu- ;;
	esac
}

debian_arch() {
	case $1 in
	x86_64)	echo amd64 ;;
	*)	echo "$1" ;;
	esac
}
