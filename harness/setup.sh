#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what the harness needs, but only what is missing.
#
#   harness/setup.sh [run|check|<component>...]
#   harness/setup.sh --preflight [COMPONENT...]  (check only, install nothing)
#   harness/setup.sh --write-sources ROOT   (test hook: derive the extra apt
#                                            sources below ROOT and exit)
#
# Test hooks for the fresh-machine path on a machine that has everything:
#   KVMDOM_SETUP_DRYRUN=1            print what would run as root instead
#   KVMDOM_PRETEND_MISSING="p ..."   treat these packages (or "all") and
#                                    the tools they provide as missing
#
# Components: build kernel qemu-x86 qemu-s390 cross static busybox-amd64
# busybox-s390x disk fresh-root.  "run" and "check" are the sets the make
# targets need; both end with the preflight.
#
# Nothing is changed when everything is already there.  The package archive
# is never named in this repository: the extra suites (trixie-backports for
# linux-source-7.3; on bookworm also bookworm-backports and trixie for
# QEMU >= 10) are derived from the machine's own Debian source definition
# and pinned to priority 100 so that nothing else gets upgraded from them.

. "$(dirname "$0")/lib.sh"

EXTRA_SOURCES=etc/apt/sources.list.d/kvm-domain-extra.sources
EXTRA_PREFS=etc/apt/preferences.d/kvm-domain-extra

# The packages of each component, and the commands they must provide:
# harness/requirements.tsv.
REQS=$HARNESS_DIR/requirements.tsv

# Disk needed by a cold "make check", in GiB: the cache it leaves took
# 13 GB without ccache (measured on 7.3.4), plus ccache (at most 4 GB).
# With the source already unpacked, the matrix may still be built anew.
DISK_NEED_COLD=16
DISK_NEED_WARM=6

codename() { . /etc/os-release; echo "${VERSION_CODENAME:-unknown}"; }

DRYRUN=${KVMDOM_SETUP_DRYRUN:-}
exec 3>&1
PRETEND=${KVMDOM_PRETEND_MISSING:-}

as_root() {
	if [ -n "$DRYRUN" ]; then
		echo "[dry-run] would run as root: $*" >&3
		return 0
	fi
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
		sudo "$@"
	else
		die "need root to run: $*  (run it by hand, or re-run as root)"
	fi
}

pretend_missing() {
	[ "$PRETEND" = all ] && return 0
	case " $PRETEND " in *" $1 "*) return 0 ;; esac
	return 1
}

pkg_installed() {
	pretend_missing "$1" && return 1
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing_of() {
	local p out=
	for p in "$@"; do
		pkg_installed "$p" || out="$out $p"
	done
	echo $out
}

APT_UPDATED=
apt_update() {
	[ -n "$APT_UPDATED" ] && return 0
	local try
	# A mirror caught mid-sync fails an index's size or hash check, and
	# apt then drops the whole suite: wait and try again.
	for try in 1 2 3 4; do
		info "apt-get update"
		if as_root apt-get update -q >"$LOGS/apt-update.log" 2>&1 &&
		   ! grep -Eq '^(W|E): Failed to fetch' "$LOGS/apt-update.log"; then
			APT_UPDATED=1
			return 0
		fi
		sleep $((try * 15))
	done
	# Some index could not be fetched (e.g. a mirror sync in progress).
	# What we need may still be there: let the install decide.
	if grep -Eq '^(W|E): Failed to fetch' "$LOGS/apt-update.log" &&
	   ! grep -Eq '^E: (Could not|Unable to|The repository)' "$LOGS/apt-update.log"; then
		grep -E '^(W|E): ' "$LOGS/apt-update.log" | sed 's/^/    /' >&2
		warn "apt-get update could not fetch every index (above); trying anyway"
		APT_UPDATED=1
		return 0
	fi
	cat "$LOGS/apt-update.log" >&2
	die "no apt access: 'apt-get update' failed (see above).  Missing: $*.
       Fix the network/proxy, or install these packages by hand."
}

apt_install() {
	# apt_install <what for> apt-get-args...
	local why=$1
	shift
	info "installing ($why): $*"
	if ! as_root env DEBIAN_FRONTEND=noninteractive \
	     apt-get install -y -q --no-install-recommends "$@" \
	     >"$LOGS/apt-install.log" 2>&1; then
		tail -n 30 "$LOGS/apt-install.log" >&2
		local hint=
		grep -qs 'Failed to fetch' "$LOGS/apt-update.log" "$LOGS/apt-install.log" &&
			hint=" -- the package archive could not be reached: no apt access?"
		die "apt-get install $* failed (log: $LOGS/apt-install.log)$hint"
	fi
}

# ---- extra suites ---------------------------------------------------------

# The extra suites a release needs: the kernel source's suite, and on
# bookworm also QEMU >= 10 (bookworm-backports, trixie as the fallback).
extra_suites() {
	case $1 in
	bookworm)	echo "$KSRC_SUITE bookworm-backports trixie" ;;
	trixie)		echo "$KSRC_SUITE" ;;
	*)		die "Debian $1 is not supported: need bookworm or trixie" ;;
	esac
}

# write_sources ROOT CODENAME [OUTROOT]: derive the extra suites from the
# source definition below ROOT ("" = /) and write them below OUTROOT
# (default ROOT).
write_sources() {
	local root=$1 cn=$2 out=${3:-$1} line uri key suites s
	suites=$(extra_suites "$cn")
	if [ -f "$root/etc/apt/sources.list.d/debian.sources" ]; then
		line=$(deb822_uri "$root/etc/apt/sources.list.d/debian.sources" "$cn")
	elif [ -f "$root/etc/apt/sources.list" ]; then
		line=$(sources_list_uri "$root/etc/apt/sources.list" "$cn")
	else
		die "no Debian source definition found below ${root:-/}etc/apt"
	fi
	[ -n "$line" ] || die "could not find the archive serving '$cn' in ${root:-/}etc/apt"
	uri=${line%%$'\t'*}
	key=${line#*$'\t'}
	[ -n "$key" ] || key=/usr/share/keyrings/debian-archive-keyring.gpg
	mkdir -p "$out/etc/apt/sources.list.d" "$out/etc/apt/preferences.d"
	cat >"$out/$EXTRA_SOURCES" <<-EOS
	# Written by kvm-domain harness/setup.sh: $KSRC_PKG ($KSRC_SUITE)
	# and, on bookworm, QEMU >= $QEMU_MIN_MAJOR (bookworm-backports or trixie).
	# Pinned in /$EXTRA_PREFS.
	Types: deb
	URIs: $uri
	Suites: $suites
	Components: main
	Architectures: $(dpkg --print-architecture)
	Signed-By: $key
	EOS
	{
		echo "# Written by kvm-domain harness/setup.sh: never upgrade anything from"
		echo "# the extra suites unless asked for explicitly."
		for s in $suites; do
			printf '\nPackage: *\nPin: release n=%s\nPin-Priority: 100\n' "$s"
		done
	} >"$out/$EXTRA_PREFS"
	info "wrote ${out:-}/$EXTRA_SOURCES and ${out:-}/$EXTRA_PREFS ($suites)"
}

# Does apt already know release n=$1 (from our file or one written by hand)?
apt_knows() { apt-cache policy 2>/dev/null | grep -q "n=$1[,]"; }

apt_knows_all() {
	local s
	for s in "$@"; do
		apt_knows "$s" || return 1
	done
}

EXTRA_DONE=
ensure_extra_suites() {
	local cn suites
	[ -n "$EXTRA_DONE" ] && return 0
	EXTRA_DONE=1
	cn=$(codename)
	suites=$(extra_suites "$cn")
	if [ -z "$PRETEND" ] && apt_knows_all $suites; then
		return 0
	fi
	# Somebody else may have configured them without an update since.
	if [ -z "$PRETEND" ] && grep -rqsE "^(Suites:.*|deb .*)($(echo $suites | tr ' ' '|'))" /etc/apt/sources.list /etc/apt/sources.list.d/; then
		apt_update "$*"
		apt_knows_all $suites && return 0
	fi
	local tmp
	tmp=$(mktemp -d)
	write_sources "" "$cn" "$tmp"
	[ -n "$DRYRUN" ] && cat "$tmp/$EXTRA_SOURCES" "$tmp/$EXTRA_PREFS" | sed 's/^/[dry-run]   | /'
	as_root install -m644 "$tmp/$EXTRA_SOURCES" "/$EXTRA_SOURCES"
	as_root install -m644 "$tmp/$EXTRA_PREFS" "/$EXTRA_PREFS"
	rm -rf "$tmp"
	APT_UPDATED=
	apt_update "$*"
}

# ---- components -----------------------------------------------------------

# Rows "what<TAB>package" of component $1.
req_rows() { awk -F'\t' -v c="$1" '$1 == c { print $2 "\t" $3 }' "$REQS"; }

# The packages of component $1, each once.
req_pkgs() { req_rows "$1" | cut -f2 | awk '!seen[$0]++'; }

have_req() {
	case $1 in
	cmd:*)	command -v "${1#cmd:}" >/dev/null 2>&1 ;;
	file:*)	[ -e "${1#file:}" ] ;;
	*)	die "requirements.tsv: bad entry '$1'" ;;
	esac
}

# preflight COMPONENT...: every command and file the components need must be
# there; name the package of each one that is not.
preflight() {
	local c what pkg missing=
	for c in "$@"; do
		while IFS=$'\t' read -r what pkg; do
			if pretend_missing "$pkg" || ! have_req "$what"; then
				missing="$missing
    ${what#*:} (package $pkg, for '$c')"
			fi
		done < <(req_rows "$c")
	done
	[ -z "$missing" ] || die "preflight: missing before anything is built:$missing
       Run 'make setup' (as root), or install these packages by hand."
	[ -n "$DRYRUN" ] || info "preflight: every command and file of '$*' is there"
}

need_pkgs() {
	local why=$1 miss
	shift
	miss=$(missing_of "$@")
	[ -z "$miss" ] && return 0
	apt_update "$miss"
	apt_install "$why" $miss
}

setup_kernel() {
	if [ -r "$KSRC_TARBALL" ] && pkg_installed "$KSRC_PKG"; then
		return 0
	fi
	ensure_extra_suites "$KSRC_PKG"
	apt_install "kernel source" "$KSRC_PKG/$KSRC_SUITE"
	[ -n "$DRYRUN" ] && return 0
	[ -r "$KSRC_TARBALL" ] || die "$KSRC_PKG installed but $KSRC_TARBALL is missing"
}

qemu_major() {
	"$1" --version 2>/dev/null | sed -n '1s/.*version \([0-9]*\)\..*/\1/p'
}

# Highest candidate upstream major of package $1 in release $2, or empty.
madison_major() {
	apt-cache madison "$1" 2>/dev/null |
		awk -F'|' -v rel="$2" 'index($3, " " rel "/") { v = $2; gsub(/ /, "", v); sub(/^[0-9]+:/, "", v); split(v, a, "."); print a[1]; exit }'
}

setup_qemu() {
	local pkg=$1 bin=$2 major
	major=$(qemu_major "$bin" || true)
	pretend_missing "$pkg" && major=
	if [ -n "$major" ] && [ "$major" -ge "$QEMU_MIN_MAJOR" ]; then
		return 0
	fi
	local cn
	cn=$(codename)
	if [ "$cn" = bookworm ]; then
		ensure_extra_suites "$pkg"
		local bpo tx
		bpo=$(madison_major "$pkg" bookworm-backports)
		tx=$(madison_major "$pkg" trixie)
		if [ -n "$bpo" ] && [ "$bpo" -ge "$QEMU_MIN_MAJOR" ]; then
			apt_install "QEMU >= $QEMU_MIN_MAJOR.0" -t bookworm-backports "$pkg"
		elif [ -n "$tx" ] && [ "$tx" -ge "$QEMU_MIN_MAJOR" ]; then
			warn "bookworm-backports has no $pkg >= $QEMU_MIN_MAJOR.0; falling back to trixie (may pull newer libraries)"
			apt_install "QEMU >= $QEMU_MIN_MAJOR.0" -t trixie "$pkg"
		else
			die "no $pkg >= $QEMU_MIN_MAJOR.0 in bookworm-backports (${bpo:-none}) or trixie (${tx:-none})"
		fi
	else
		need_pkgs "QEMU" "$pkg"
	fi
	[ -n "$DRYRUN" ] && return 0
	major=$(qemu_major "$bin" || true)
	if [ -z "$major" ] || [ "$major" -lt "$QEMU_MIN_MAJOR" ]; then
		die "$bin is version ${major:-missing}, need >= $QEMU_MIN_MAJOR.0 (x-flts VT-d and zPCI as used here)"
	fi
}

setup_busybox() {
	local arch=$1 dest=$CACHE/busybox/$1
	[ -x "$dest/bin/busybox" ] && ! pretend_missing "busybox-static:$arch" && return 0
	if [ "$arch" != "$(dpkg --print-architecture)" ] &&
	   { pretend_missing "busybox-static:$arch" ||
	     ! dpkg --print-foreign-architectures | grep -qx "$arch"; }; then
		info "dpkg --add-architecture $arch (for busybox-static:$arch, downloaded, not installed)"
		as_root dpkg --add-architecture "$arch"
		APT_UPDATED=
	fi
	if [ -n "$DRYRUN" ]; then
		echo "[dry-run] would run: apt-get download busybox-static:$arch; dpkg-deb -x into $dest"
		return 0
	fi
	local tmp
	tmp=$(mktemp -d)
	chmod 755 "$tmp"
	if ! (cd "$tmp" && apt-get download -q "busybox-static:$arch" >"$LOGS/apt-download.log" 2>&1); then
		apt_update "busybox-static:$arch"
		(cd "$tmp" && apt-get download -q "busybox-static:$arch" >"$LOGS/apt-download.log" 2>&1) || {
			cat "$LOGS/apt-download.log" >&2
			die "cannot download busybox-static:$arch"
		}
	fi
	rm -rf "$dest.tmp"
	mkdir -p "$(dirname "$dest")"
	dpkg-deb -x "$tmp"/busybox-static_*.deb "$dest.tmp"
	rm -rf "$tmp" "$dest"
	mv "$dest.tmp" "$dest"
	[ -x "$dest/bin/busybox" ] || die "busybox-static:$arch has no bin/busybox"
	info "busybox for $arch: $dest/bin/busybox"
}

setup_disk() {
	local need=$DISK_NEED_COLD free
	[ -d "$CACHE/pristine/linux" ] && need=$DISK_NEED_WARM
	mkdir -p "$CACHE"
	free=$(df -P -BG "$CACHE" | awk 'NR == 2 { sub(/G$/, "", $4); print $4 }')
	if [ "$free" -lt "$need" ]; then
		die "not enough disk: ${free}G free at $CACHE, need about ${need}G.
       Free some space or point KVMDOM_CACHE at a bigger file system."
	fi
}

setup_one() {
	case $1 in
	disk)		setup_disk ;;
	build)		need_pkgs "build tools" $(req_pkgs build) ;;
	kernel)		setup_kernel ;;
	qemu-x86)	setup_qemu qemu-system-x86 qemu-system-x86_64 ;;
	qemu-s390)	setup_qemu qemu-system-s390x qemu-system-s390x ;;
	cross)		need_pkgs "cross compilers" $(req_pkgs cross) ;;
	static)		need_pkgs "static checkers" $(req_pkgs static) ;;
	fresh-root)	need_pkgs "fresh-root check" $(req_pkgs fresh-root) ;;
	busybox-amd64)	setup_busybox amd64 ;;
	busybox-s390x)	setup_busybox s390x ;;
	run)		for c in disk build kernel qemu-x86 busybox-amd64; do setup_one $c; done
			preflight build qemu-x86 ;;
	check)		for c in disk build kernel qemu-x86 qemu-s390 cross static busybox-amd64 busybox-s390x; do setup_one $c; done
			preflight build qemu-x86 qemu-s390 cross static ;;
	*)		die "setup: unknown component '$1'" ;;
	esac
}

if [ "${1:-}" = --preflight ]; then
	shift
	[ $# -gt 0 ] || set -- build qemu-x86 qemu-s390 cross static
	preflight "$@"
	exit 0
fi
if [ "${1:-}" = --write-sources ]; then
	write_sources "${2:?ROOT}" "${3:-$(codename)}"
	exit 0
fi

mkdir -p "$LOGS"
[ $# -gt 0 ] || set -- check
for c in "$@"; do
	setup_one "$c"
done
