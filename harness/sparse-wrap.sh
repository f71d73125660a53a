#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# CHECK= for make C=1: run sparse and tag its output, so harness/static.sh
# can tell sparse findings from W=1 compiler warnings in one build.
set -o pipefail
sparse "$@" 2>&1 | sed 's/^/[sparse] /' >&2
