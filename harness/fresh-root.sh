#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make fresh-root-check: show that the harness works on a machine that has
# never seen it.  Builds a minimal Debian bookworm root (debootstrap
# --variant=minbase), installs in it only what a new user installs by hand
# before the first make (BY_HAND below), copies the repository in, and runs,
# as root with a clean environment, "make setup", the preflight and
# "KVMDOM_STAGES=... make check" in a chroot.  Prints the time of each phase;
# the last line is the check's "N passed, N failed", and the exit status is
# non-zero unless that says 0 failed.
#
#   harness/fresh-root.sh [--keep] [--stages "STAGE..."] [--setup-only] [--head]
#   make fresh-root-check [FRESH_ROOT_FLAGS="--keep ..."]
#
#   --stages "..."  KVMDOM_STAGES of the check (default: "x86_64
#                   x86_64-boot-flts"; "" is the whole matrix, as in check.sh)
#   --setup-only    stop after make setup and the preflight: no kernel build
#   --head          copy the committed HEAD only; by default the working tree
#                   is copied (tracked and untracked-not-ignored files), so
#                   the check can run before committing
#   --keep          keep the root afterwards (it is unmounted either way)
#
# Needs root (debootstrap, mount, chroot); installs debootstrap on the host
# if missing (harness/setup.sh fresh-root).  The root is
# $KVMDOM_CACHE/fresh-root, removed and made anew on every run; the phase
# logs are in $KVMDOM_CACHE/logs/fresh-root/.  The archive is the one the
# host's own apt source definition names for bookworm: no archive is named
# in this repository.
#
# /proc, /sys, /dev and /dev/pts are bind-mounted into the root for the run
# and unmounted on exit, also on failure.  The root has its own /tmp, so its
# builds do NOT take the host's build lock (/tmp/kvmdom-build.lock): nothing
# else should build kernels on the machine while the check runs.

. "$(dirname "$0")/lib.sh"

SUITE=bookworm
# What a new user installs by hand before the first "make" (everything else
# the targets install themselves).  The archive is reached over the host's
# URI; if that is https://, debootstrap adds ca-certificates on its own.
BY_HAND="make"
STAGES_DEFAULT="x86_64 x86_64-boot-flts"
IN_REPO=/root/kvm-domain

keep= setup_only= head_only= stages=$STAGES_DEFAULT
while [ $# -gt 0 ]; do
	case $1 in
	--keep)		keep=1 ;;
	--setup-only)	setup_only=1 ;;
	--head)		head_only=1 ;;
	--stages)	[ $# -ge 2 ] || die "--stages needs an argument"
			stages=$2; shift ;;
	--stages=*)	stages=${1#--stages=} ;;
	-h|--help)	sed -n '4,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*)		die "unknown option '$1' (see $0 --help)" ;;
	esac
	shift
done

# check.sh ignores stage names it does not know: a typo would pass with
# setup and prepare only.
all_stages=$(sed -n 's/^ALL_STAGES="\(.*\)"$/\1/p' "$HARNESS_DIR/check.sh")
[ -n "$all_stages" ] || die "cannot find ALL_STAGES in $HARNESS_DIR/check.sh"
for s in $stages; do
	case " $all_stages " in
	*" $s "*) ;;
	*) die "--stages: unknown stage '$s' (stages: $all_stages)" ;;
	esac
done

[ "$(id -u)" = 0 ] || die "fresh-root.sh needs root (debootstrap, mount, chroot): run it as root"

mkdir -p "$CACHE"
ROOT=$(realpath -m "$CACHE/fresh-root")
FLOGS=$LOGS/fresh-root

# ---- phases and their times ------------------------------------------------
PH_NAMES=() PH_TIMES=() PH_STATUS=()
CUR_PHASE= CUR_START=
LAST_LINE=
T0=$SECONDS

# phase NAME LOG command...: run a timed phase, its output to LOG (and to the
# terminal unless LOG ends in .quiet.log); returns the command's status.
# The command runs where errexit is off: functions run as phases check each
# step themselves.
phase() {
	local name=$1 log=$2 start=$SECONDS rc=0
	shift 2
	printf '\n%s=== fresh-root: %s ===%s\n' "$C_BLD" "$name" "$C_OFF"
	CUR_PHASE=$name CUR_START=$start
	case $log in
	*.quiet.log)	"$@" >"$log" 2>&1 || rc=$? ;;
	*)		"$@" 2>&1 | tee "$log" || rc=$? ;;
	esac
	CUR_PHASE=
	PH_NAMES+=("$name") PH_TIMES+=($((SECONDS - start)))
	if [ "$rc" != 0 ]; then
		PH_STATUS+=(FAIL)
		case $log in *.quiet.log) show_tail "$log" 30 >&2 ;; esac
		warn "fresh-root: $name failed (exit status $rc, log: $log)"
		return "$rc"
	fi
	PH_STATUS+=(ok)
}

mmss() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }

summary() {
	local i tot=$((SECONDS - T0))
	if [ -n "$CUR_PHASE" ]; then
		PH_NAMES+=("$CUR_PHASE") PH_TIMES+=($((SECONDS - CUR_START))) PH_STATUS+=(interrupted)
		CUR_PHASE=
	fi
	[ ${#PH_NAMES[@]} -gt 0 ] || return 0
	echo
	echo "fresh-root timing:"
	printf '  %-20s %8s  %s\n' phase time result
	for i in "${!PH_NAMES[@]}"; do
		printf '  %-20s %8s  %s\n' "${PH_NAMES[$i]}" "$(mmss "${PH_TIMES[$i]}")" "${PH_STATUS[$i]}"
	done
	printf '  %-20s %8s\n' total "$(mmss "$tot")"
}

# ---- mounts, processes, removal --------------------------------------------
# Mount points at or below the root, innermost last (mount order).
root_mounts() {
	awk -v r="$ROOT" '{ if ($5 == r || index($5, r "/") == 1) print $5 }' /proc/self/mountinfo
}

# Processes whose root directory is the fresh root (started by this script).
root_pids() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && echo "${p#/proc/}"
	done
	return 0
}

unmount_all() {
	local m
	root_mounts | tac | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" || warn "cannot unmount $m"
	done
	[ -z "$(root_mounts)" ]
}

# Remove the root, never across a mount point (--one-file-system), and only
# when nothing is mounted below it any more.
remove_root() {
	[ -e "$ROOT" ] || return 0
	unmount_all || die "still mounted below $ROOT, not removing it:
$(root_mounts)"
	rm -rf --one-file-system "$ROOT"
}

MOUNTED=
cleanup() {
	local rc=$? pids
	trap - EXIT INT TERM
	set +e
	pids=$(root_pids)
	if [ -n "$pids" ]; then
		warn "stopping what still runs in $ROOT: $(echo $pids)"
		kill -TERM $pids 2>/dev/null
		sleep 3
		pids=$(root_pids)
		[ -z "$pids" ] || kill -KILL $pids 2>/dev/null
		sleep 1
	fi
	if [ -n "$MOUNTED" ] || [ -n "$(root_mounts)" ]; then
		if unmount_all; then
			info "unmounted everything below $ROOT"
		else
			warn "still mounted below $ROOT:"$'\n'"$(root_mounts)"
			rc=1
		fi
	fi
	if [ -d "$ROOT/root/.cache/kvm-domain/logs" ]; then
		rm -rf "$FLOGS/inner"
		cp -a "$ROOT/root/.cache/kvm-domain/logs" "$FLOGS/inner" &&
			info "the root's harness logs: $FLOGS/inner/"
	fi
	if [ -z "$keep" ] && [ -e "$ROOT" ]; then
		if [ -z "$(root_mounts)" ]; then
			info "removing $ROOT (--keep keeps it)"
			rm -rf --one-file-system "$ROOT"
		else
			warn "not removing $ROOT: something is still mounted below it"
		fi
	elif [ -e "$ROOT" ]; then
		info "kept $ROOT (chroot $ROOT, or remove it with rm -rf --one-file-system)"
	fi
	summary
	[ -z "$LAST_LINE" ] || echo "$LAST_LINE"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the archive -----------------------------------------------------------
# host_archive SUITE: "URI<TAB>Signed-By" of the host's source definition
# serving SUITE, or nothing.
host_archive() {
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		deb822_uri /etc/apt/sources.list.d/debian.sources "$1"
	elif [ -f /etc/apt/sources.list ]; then
		sources_list_uri /etc/apt/sources.list "$1"
	fi
}

# Run a command in the root, as root, with a clean environment.
in_root() {
	chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin CI=true "$@"
}
# in_repo [VAR=value...] command...: the same, in the copied repository.
in_repo() {
	local -a vars=()
	while [ $# -gt 0 ] && [[ $1 == [A-Za-z_]*=* ]]; do
		vars+=("$1")
		shift
	done
	in_root "${vars[@]}" sh -c 'cd "$0" && exec "$@"' "$IN_REPO" "$@"
}

write_root_sources() {
	local sec
	sec=$(host_archive "$SUITE-security")
	{
		echo "# Written by kvm-domain harness/fresh-root.sh from the host's own"
		echo "# source definition (as a new installation has it)."
		echo "deb $uri $SUITE main"
		echo "deb $uri $SUITE-updates main"
		[ -z "$sec" ] || echo "deb ${sec%%$'\t'*} $SUITE-security main"
	} >"$ROOT/etc/apt/sources.list"
	rm -f "$ROOT/etc/apt/sources.list.d/debian.sources"
}

# Copy the repository to the root: a clone of HEAD, then (unless --head) the
# working tree on top: tracked and untracked-not-ignored files, and the
# files of HEAD no longer in the working tree deleted (empty directories are
# not copied, as git does not track them).
copy_repo() {
	local dest=$ROOT$IN_REPO f
	git clone -q --no-hardlinks "$REPO" "$dest" || return 1
	echo "HEAD: $(git -C "$dest" log -1 --format='%h %s')"
	[ -z "$head_only" ] || return 0
	# Deleted in the working tree, staged or not: not in the copy either.
	git -C "$dest" ls-files -z |
		while IFS= read -r -d '' f; do
			if [ ! -e "$REPO/$f" ] && [ ! -L "$REPO/$f" ]; then
				printf '%s\0' "$f"
			fi
		done | (cd "$dest" && xargs -0r rm -f --) || return 1
	git -C "$REPO" ls-files -z --cached --others --exclude-standard --deduplicate |
		while IFS= read -r -d '' f; do
			if [ -e "$REPO/$f" ] || [ -L "$REPO/$f" ]; then
				printf '%s\0' "$f"
			fi
		done |
		tar -C "$REPO" --null -T - -cf - | tar -C "$dest" -xf - || return 1
	echo "the working tree copied on top of HEAD; git status in the copy:"
	git -C "$dest" status --short | sed 's/^/    /'
}

# ---- the run ---------------------------------------------------------------
info "fresh root: $ROOT (Debian $SUITE, minbase)"
info "installed by hand before the first make, as a new user would: $BY_HAND"
if [ -z "$setup_only" ]; then
	info "check: KVMDOM_STAGES=\"$stages\" make check"
	if [ -e "$BUILD_LOCK" ] && ! flock -n "$BUILD_LOCK" true; then
		warn "a kernel build holds $BUILD_LOCK on this machine; the root's builds do not take that lock"
	fi
fi

line=$(host_archive "$SUITE")
if [ -z "$line" ]; then
	# Not a bookworm host: the archive it uses serves bookworm too.
	. /etc/os-release
	line=$(host_archive "${VERSION_CODENAME:-}")
fi
[ -n "$line" ] || die "no archive for $SUITE in the host's /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
uri=${line%%$'\t'*}
key=${line#*$'\t'}
info "archive (from the host's apt sources): $uri"

"$HARNESS_DIR/setup.sh" fresh-root
"$HARNESS_DIR/setup.sh" --preflight fresh-root

remove_root
rm -rf "$FLOGS"
mkdir -p "$FLOGS"

keyring=()
[ -z "$key" ] || [ ! -f "$key" ] || keyring=(--keyring="$key")
phase debootstrap "$FLOGS/debootstrap.quiet.log" \
	debootstrap --variant=minbase "${keyring[@]}" "$SUITE" "$ROOT" "$uri" ||
	die "debootstrap failed"
echo "debootstrap wrote /etc/apt/sources.list:"
sed 's/^/    /' "$ROOT/etc/apt/sources.list"
( . "$ROOT/etc/os-release" && [ "${VERSION_CODENAME:-}" = "$SUITE" ] ) ||
	die "$ROOT/etc/os-release does not say $SUITE"
write_root_sources
echo "the root's /etc/apt/sources.list now:"
sed 's/^/    /' "$ROOT/etc/apt/sources.list"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"

MOUNTED=1
for m in /proc /sys /dev /dev/pts; do
	mkdir -p "$ROOT$m"
	mount --bind "$m" "$ROOT$m"
done

info "as a new user would: apt-get update && apt-get install $BY_HAND"
phase "install by hand" "$FLOGS/by-hand.quiet.log" \
	in_root DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends "$@"' sh $BY_HAND ||
	die "installing $BY_HAND in the root failed"
phase "copy repository" "$FLOGS/copy.log" copy_repo ||
	die "copying the repository into the root failed"

phase "make setup" "$FLOGS/setup.log" in_repo make setup ||
	die "make setup failed in the fresh root"
phase preflight "$FLOGS/preflight.log" in_repo harness/setup.sh --preflight ||
	die "the preflight failed in the fresh root after make setup"

if [ -n "$setup_only" ]; then
	info "--setup-only: not running the check"
	exit 0
fi

rc=0
phase check "$FLOGS/check.log" in_repo KVMDOM_STAGES="$stages" make check || rc=$?
# make's own "*** [check] Error 1" trailer is not the check's output.
LAST_LINE=$(grep -v '^make: \*\*\* ' "$FLOGS/check.log" | tail -n 1)
if ! [[ $LAST_LINE =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
	LAST_LINE=
	die "the check's last line is not 'N passed, N failed' (log: $FLOGS/check.log)"
fi
[ "${BASH_REMATCH[2]}" = 0 ] || die "the check failed in the fresh root (log: $FLOGS/check.log)"
[ "${BASH_REMATCH[1]}" != 0 ] || die "the check counted nothing (log: $FLOGS/check.log)"
[ "$rc" = 0 ] || die "make check said '$LAST_LINE' but exited with status $rc"
