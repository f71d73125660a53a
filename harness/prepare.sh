#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Prepare the working kernel tree in the cache:
#
#   pristine (unpacked once) + overlay (new files at kernel paths)
#                            + patches/series (edits to upstream files)
#
# The candidate content of every managed file is built in a staging
# directory first and then synced into the working tree by content, so only
# files whose content changed get a new mtime and kbuild rebuilds only what
# depends on them.  Files that were managed last time but no longer are get
# their pristine content back (or are removed if upstream has no such file).

. "$(dirname "$0")/lib.sh"

mkdir -p "$CACHE" "$LOGS"

# ---- pristine tree --------------------------------------------------------
[ -r "$KSRC_TARBALL" ] || die "$KSRC_TARBALL missing: run 'harness/setup.sh kernel' (make does this)"
pstamp="$(stat -c '%s %Y' "$KSRC_TARBALL") $(dpkg-query -W -f='${Version}' "$KSRC_PKG")"
if [ "$(cat "$CACHE/pristine/stamp" 2>/dev/null)" != "$pstamp" ]; then
	info "unpacking $KSRC_TARBALL into $CACHE/pristine (once per base version)"
	rm -rf "$CACHE/pristine"
	mkdir -p "$CACHE/pristine/tmp"
	tar -xf "$KSRC_TARBALL" -C "$CACHE/pristine/tmp"
	top=$(ls "$CACHE/pristine/tmp")
	[ -f "$CACHE/pristine/tmp/$top/Makefile" ] || die "unexpected tarball layout: $top"
	mv "$CACHE/pristine/tmp/$top" "$PRISTINE"
	rmdir "$CACHE/pristine/tmp"
	chmod -R a-w "$PRISTINE"
	echo "$pstamp" >"$CACHE/pristine/stamp"
fi

# ---- working tree ---------------------------------------------------------
if [ "$(cat "$SRC/.kvmdom-base" 2>/dev/null)" != "$pstamp" ]; then
	info "creating working tree $SRC from pristine (base changed or first run)"
	# Objects built from another base must not survive: their mtimes may
	# be newer than the new sources.
	rm -rf "$SRC" "$BUILD" "$CACHE/initramfs" "$CACHE/git" "$CACHE/series"
	cp -a "$PRISTINE" "$SRC.tmp"
	chmod -R u+w "$SRC.tmp"
	mv "$SRC.tmp" "$SRC"
	: >"$SRC/.kvmdom-managed"
	echo "$pstamp" >"$SRC/.kvmdom-base"
fi

# ---- what is managed ------------------------------------------------------
overlay_list=$CACHE/overlay.list	# new files, relative to the tree root
patched_list=$CACHE/patched.list	# upstream files touched by patches
series_list=$CACHE/series.list		# absolute patch file names, in order

list_overlay() {
	[ -n "$OVERLAY" ] || return 0
	[ -d "$OVERLAY" ] || die "KVMDOM_OVERLAY=$OVERLAY is not a directory"
	local d dirs=
	for d in $OVERLAY_DIRS; do
		[ -d "$OVERLAY/$d" ] && dirs="$dirs $d"
	done
	[ -n "$dirs" ] || return 0
	if git -C "$OVERLAY" rev-parse --show-toplevel >/dev/null 2>&1 &&
	   [ "$(git -C "$OVERLAY" rev-parse --show-toplevel)" = "$(cd "$OVERLAY" && pwd -P)" ]; then
		# Tracked and untracked-but-not-ignored files: work in
		# progress is tested too, editor droppings are not.
		git -C "$OVERLAY" ls-files -z --cached --others --exclude-standard -- $dirs |
			xargs -0 -r -n1 | while read -r f; do
				[ -f "$OVERLAY/$f" ] && echo "$f"
			done
	else
		(cd "$OVERLAY" && find $dirs -type f)
	fi | grep -v -E "^($(echo "$OVERLAY_EXCLUDE" | sed 's/ /|/g'))" | LC_ALL=C sort -u || true
}

list_series() {
	[ -n "$PATCHES" ] && [ -f "$PATCHES/series" ] || return 0
	local p
	sed -e 's/#.*//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$PATCHES/series" |
		grep -v '^$' | while read -r p; do
			[ -f "$PATCHES/$p" ] || die "patches/series names $p, which does not exist"
			echo "$PATCHES/$p"
		done
}

# Files a patch touches (a/ and b/ sides; /dev/null ignored).
patch_files() {
	sed -n -e 's/^--- a\/\([^\t]*\).*/\1/p' -e 's/^+++ b\/\([^\t]*\).*/\1/p' "$@" |
		LC_ALL=C sort -u
}

list_overlay >"$overlay_list.new"
# Snapshot the series (and overlay.msgs): later stages (make series) must
# see exactly what was applied here, even if patches/ changes meanwhile.
rm -rf "$CACHE/patches.new"
mkdir -p "$CACHE/patches.new"
list_series | while read -r p; do
	cp "$p" "$CACHE/patches.new/"
	echo "$CACHE/patches.new/$(basename "$p")"
done >"$series_list.new"
if [ -n "$PATCHES" ] && [ -f "$PATCHES/overlay.msgs" ]; then
	cp "$PATCHES/overlay.msgs" "$CACHE/patches.new/"
fi
if [ -s "$series_list.new" ]; then
	xargs -a "$series_list.new" -d '\n' cat | patch_files >"$patched_list.new"
else
	: >"$patched_list.new"
fi

while read -r f; do
	if [ -e "$PRISTINE/$f" ]; then
		die "overlay file $f exists upstream: edits to upstream files must be patches in patches/series"
	fi
done <"$overlay_list.new"
dup=$(LC_ALL=C comm -12 "$overlay_list.new" "$patched_list.new")
[ -z "$dup" ] || die "files both in the overlay and touched by patches/series: $dup"

# ---- stage: candidate content ---------------------------------------------
rm -rf "$STAGE"
mkdir -p "$STAGE"
while read -r f; do
	if [ -f "$PRISTINE/$f" ]; then
		mkdir -p "$STAGE/$(dirname "$f")"
		cp "$PRISTINE/$f" "$STAGE/$f"
		chmod u+w "$STAGE/$f"
	fi
done <"$patched_list.new"

while read -r p; do
	name=$(basename "$p")
	if ! out=$(patch -d "$STAGE" -p1 -F0 --batch --forward --no-backup-if-mismatch -i "$p" 2>&1); then
		echo "$out" >&2
		echo >&2
		echo "Rejected hunks:" >&2
		find "$STAGE" -name '*.rej' -print0 | xargs -0 -r -I{} sh -c 'echo "--- {}"; cat "{}"' >&2
		die "patch $name does not apply (pristine tree + the patches before it): $(echo "$out" | grep -E 'FAILED|can.t find|malformed|Reversed' | head -3 | tr '\n' ' ')"
	fi
	if [ -n "$out" ]; then
		if echo "$out" | grep -q 'with offset'; then
			warn "patch $name applies with offsets:"
			echo "$out" | sed 's/^/    /' >&2
		fi
	fi
done <"$series_list.new"

while read -r f; do
	mkdir -p "$STAGE/$(dirname "$f")"
	cp "$OVERLAY/$f" "$STAGE/$f"
done <"$overlay_list.new"

# ---- sync into the working tree -------------------------------------------
LC_ALL=C sort -u "$overlay_list.new" "$patched_list.new" >"$SRC/.kvmdom-managed.new"
changed=0
while read -r f; do
	if [ -f "$STAGE/$f" ]; then
		if ! cmp -s "$STAGE/$f" "$SRC/$f"; then
			mkdir -p "$SRC/$(dirname "$f")"
			rm -f "$SRC/$f"
			cp "$STAGE/$f" "$SRC/$f"	# new mtime: kbuild sees it
			echo "  updated $f"
			changed=$((changed + 1))
		fi
	elif [ -e "$SRC/$f" ]; then
		rm -f "$SRC/$f"		# deleted by a patch
		echo "  removed $f"
		changed=$((changed + 1))
	fi
done <"$SRC/.kvmdom-managed.new"

LC_ALL=C comm -23 <(LC_ALL=C sort -u "$SRC/.kvmdom-managed") "$SRC/.kvmdom-managed.new" |
while read -r f; do
	if [ -f "$PRISTINE/$f" ]; then
		if ! cmp -s "$PRISTINE/$f" "$SRC/$f"; then
			rm -f "$SRC/$f"
			cp "$PRISTINE/$f" "$SRC/$f"
			chmod u+w "$SRC/$f"
			echo "  restored $f (no longer managed)"
		fi
	elif [ -e "$SRC/$f" ]; then
		rm -f "$SRC/$f"
		echo "  removed $f (no longer managed)"
	fi
done
mv "$SRC/.kvmdom-managed.new" "$SRC/.kvmdom-managed"
mv "$overlay_list.new" "$overlay_list"
mv "$patched_list.new" "$patched_list"
# The snapshot becomes current only now that everything applied.
rm -rf "$CACHE/patches"
mv "$CACHE/patches.new" "$CACHE/patches"
sed "s|^$CACHE/patches.new/|$CACHE/patches/|" "$series_list.new" >"$series_list"
rm -f "$series_list.new"

info "prepared $SRC: $(wc -l <"$overlay_list") new files, $(wc -l <"$series_list") patches touching $(wc -l <"$patched_list") files, $changed changed"
echo "base: $(base_version "$SRC")"
