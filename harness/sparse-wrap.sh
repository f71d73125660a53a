#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# CHECK= for make C=1: run sparse and tag its output, so harness/static.sh
# can tell sparse findings from W=1 compiler warnings in one build.
#
# Since 6.15 the kernel uses __typeof_unqual__ under __CHECKER__, and
# scripts/checker-valid.sh turns C=1 off for a sparse that does not know
# it.  Debian's sparse (0.6.4 in bookworm and trixie) does not; newer ones
# need a newer libc.  With KVMDOM_SPARSE_TYPEOF_UNQUAL=1 (static.sh sets it
# when the installed sparse lacks it) the keyword is mapped to __typeof__,
# which keeps the qualifiers that __typeof_unqual__ would drop: what that
# costs is a finding too many, never one too few.
set -o pipefail
defs=()
[ "${KVMDOM_SPARSE_TYPEOF_UNQUAL:-}" = 1 ] && defs=(-D__typeof_unqual__=__typeof__)
sparse "${defs[@]}" "$@" 2>&1 | sed 's/^/[sparse] /' >&2
