#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
#   harness/series.sh          write the series to $CACHE/series/
#   harness/series.sh --check  ... and verify it (counted checks)
#
# The series is git format-patch output against the pristine base:
#   1. the overlay's new files as commits, grouped as patches/overlay.msgs
#      says (or by directory, with a placeholder message), in the order of
#      the blocks in overlay.msgs;
#   2. patches/series, in order, with their own messages and authors.
# New files are dead code until a Kconfig/Makefile patch of step 2 wires
# them in, so every commit builds.
#
# patches/overlay.msgs: blocks separated by lines consisting of "---"; each
# block starts with "paths: <prefix> <prefix>..." (paths relative to the
# tree root; a file goes to the block with the longest matching prefix),
# then the commit message (subject, blank line, body, Signed-off-by).
#
# The check applies the series with git am on a fresh branch of a cached git
# repository of the pristine tree and compares every managed file with the
# prepared tree ($CACHE/src).

. "$(dirname "$0")/lib.sh"

check=
[ "${1:-}" = --check ] && check=1

G=$CACHE/git
OUT=$CACHE/series
MSGS=${KVMDOM_MSGS:-$CACHE/patches/overlay.msgs}	# snapshot by prepare.sh
log=$LOGS/series.log
: >"$log"

[ -f "$SRC/.kvmdom-managed" ] || die "run harness/prepare.sh first"
pstamp=$(cat "$SRC/.kvmdom-base")

git_() { git -C "$G" -c advice.detachedHead=false -c core.autocrlf=false "$@"; }

# ---- pristine git repository (once per base) -------------------------------
if [ "$(cat "$G/.git/kvmdom-base" 2>/dev/null)" != "$pstamp" ]; then
	info "creating git repository of the pristine tree in $G (once per base)"
	rm -rf "$G"
	cp -a "$PRISTINE" "$G"
	chmod -R u+w "$G"
	base=$(base_version "$PRISTINE")
	# Fixed identity and date: the base commit is the same everywhere.
	export GIT_AUTHOR_NAME=linux-source GIT_AUTHOR_EMAIL=linux-source@localhost
	export GIT_COMMITTER_NAME=linux-source GIT_COMMITTER_EMAIL=linux-source@localhost
	export GIT_AUTHOR_DATE=2000-01-01T00:00:00Z GIT_COMMITTER_DATE=2000-01-01T00:00:00Z
	# Debian's top-level .gitignore ignores everything at top level: -f.
	{ git -C "$G" init -q -b kvmdom-base-branch &&
	  git -C "$G" add -A -f &&
	  git -C "$G" commit -q -m "$base" &&
	  git -C "$G" tag kvmdom-base; } >>"$log" 2>&1 ||
		{ show_tail "$log"; die "could not create $G"; }
	echo "$pstamp" >"$G/.git/kvmdom-base"
fi

# ---- identity and dates ----------------------------------------------------
name=$(git -C "$REPO" config user.name || echo "kvm-domain developers")
email=$(git -C "$REPO" config user.email || echo "kvm-domain@localhost")
date=$(git -C "$REPO" log -1 --format=%cI 2>/dev/null || true)
[ -n "$date" ] || date=2025-01-01T00:00:00Z
export GIT_AUTHOR_NAME=$name GIT_AUTHOR_EMAIL=$email GIT_AUTHOR_DATE=$date
export GIT_COMMITTER_NAME=$name GIT_COMMITTER_EMAIL=$email GIT_COMMITTER_DATE=$date

fresh_branch() {
	git_ am --abort >/dev/null 2>&1 || true
	git_ checkout -q -f -B "$1" kvmdom-base
	git_ clean -q -f -d -x
}

# ---- group the new files ---------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nomsg=()
ngroups=0
if [ -f "$MSGS" ]; then
	awk -v dir="$tmp" '
		BEGIN { n = 0; f = "" }
		/^---[[:space:]]*$/ { f = ""; next }
		f == "" && /^paths:/ { n++; f = sprintf("%s/msg.%03d", dir, n); sub(/^paths:[[:space:]]*/, ""); print > (f ".paths"); next }
		f == "" && /^[[:space:]]*$/ { next }
		f == "" && /^#/ { next }
		f == "" { print "overlay.msgs: text outside a block: " $0 > "/dev/stderr"; exit 1 }
		{ print > f }
	' "$MSGS" || die "cannot parse $MSGS"
	ngroups=$(ls "$tmp" | grep -c '\.paths$' || true)
fi

# file -> group: longest matching prefix over all blocks
assign() {
	local f=$1 best= bestlen=0 p g
	for g in "$tmp"/msg.*.paths; do
		[ -e "$g" ] || break
		for p in $(cat "$g"); do
			case $f in
			"$p"*)	if [ ${#p} -gt $bestlen ]; then
					best=${g%.paths}; bestlen=${#p}
				fi ;;
			esac
		done
	done
	echo "$best"
}

while read -r f; do
	g=$(assign "$f")
	if [ -z "$g" ]; then
		# No message: one commit per directory, placeholder message.
		d=$(dirname "$f")
		g=$tmp/nomsg.$(echo "$d" | tr / _)
		if [ ! -f "$g" ]; then
			printf 'kvm-domain: add %s/\n\nPLACEHOLDER: no commit message for %s/ in patches/overlay.msgs.\n\nSigned-off-by: %s <%s>\n' \
				"$d" "$d" "$name" "$email" >"$g"
			nomsg+=("$d/")
		fi
	fi
	echo "$f" >>"$g.files"
done <"$CACHE/overlay.list"

# ---- generate --------------------------------------------------------------
rm -rf "$OUT"
fresh_branch kvmdom-gen
ncommits=0
for g in $(ls "$tmp"/msg.[0-9]* "$tmp"/nomsg.* 2>/dev/null | grep -v '\.\(paths\|files\)$' | LC_ALL=C sort); do
	if [ ! -f "$g.files" ]; then
		warn "overlay.msgs block '$(head -n1 "$g")' matches no file"
		continue
	fi
	while read -r f; do
		mkdir -p "$G/$(dirname "$f")"
		cp "$SRC/$f" "$G/$f"
	done <"$g.files"
	xargs -a "$g.files" -d '\n' git -C "$G" add -f --
	git_ commit -q --cleanup=strip -F "$g" >>"$log" 2>&1 || { show_tail "$log"; die "commit of $(head -n1 "$g") failed"; }
	ncommits=$((ncommits + 1))
done
while read -r p; do
	if ! git_ am -q --committer-date-is-author-date "$p" >>"$log" 2>&1; then
		show_tail "$log" 20
		git_ am --abort >/dev/null 2>&1 || true
		result FAIL "series: generate" "git am of $(basename "$p") failed after the new-file commits"
		exit 1
	fi
	ncommits=$((ncommits + 1))
done <"$CACHE/series.list"

rm -rf "$OUT.tmp"
git_ format-patch -q --no-signature -o "$OUT.tmp" kvmdom-base..kvmdom-gen
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
info "series: $ncommits patches in $OUT (base: $(base_version "$PRISTINE"))"
git_ log --reverse --format='  %s' kvmdom-base..kvmdom-gen

if [ ${#nomsg[@]} -gt 0 ]; then
	for d in "${nomsg[@]}"; do
		echo "  no commit message for $d (placeholder used)"
	done
fi
[ -n "$check" ] || exit 0

# ---- check -----------------------------------------------------------------
rc=0
if [ ${#nomsg[@]} -gt 0 ]; then
	result FAIL "series: commit messages" "no commit message for ${nomsg[*]}"
	rc=1
elif [ "$ncommits" -gt 0 ]; then
	result PASS "series: commit messages" "$ngroups blocks in overlay.msgs"
fi

fresh_branch kvmdom-check
if [ "$(ls "$OUT" | wc -l)" -gt 0 ] && ! git_ am -q "$OUT"/*.patch >>"$log" 2>&1; then
	show_tail "$log" 20
	cur=$(git_ am --show-current-patch=diff 2>/dev/null | head -n 0; ls "$G/.git/rebase-apply/" >/dev/null 2>&1 && sed -n 's/^Subject: //p' "$G/.git/rebase-apply/msg" 2>/dev/null | head -n1)
	git_ am --abort >/dev/null 2>&1 || true
	result FAIL "series: git am on pristine" "failed at: ${cur:-?}"
	exit 1
fi
bad=()
while read -r f; do
	if [ -e "$SRC/$f" ]; then
		cmp -s "$SRC/$f" "$G/$f" || bad+=("$f")
	elif [ -e "$G/$f" ]; then
		bad+=("$f")
	fi
done <"$SRC/.kvmdom-managed"
# Nothing else may differ from the base.
extra=$(LC_ALL=C comm -23 <(git_ diff --name-only kvmdom-base HEAD | LC_ALL=C sort) <(LC_ALL=C sort "$SRC/.kvmdom-managed"))
if [ ${#bad[@]} -eq 0 ] && [ -z "$extra" ]; then
	result PASS "series: git am on pristine equals prepared tree" "$(ls "$OUT" | wc -l) patches, $(wc -l <"$SRC/.kvmdom-managed") files"
else
	result FAIL "series: git am on pristine equals prepared tree" "differs: ${bad[*]} $extra"
	rc=1
fi
exit $rc
