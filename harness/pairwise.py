#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Choose the Kconfig-matrix combinations to build: a pairwise cover.

Reads combinations on standard input, one per line, as "SYM=val SYM=val
...", in the order they would be built; the first one is the test kernel's
own configuration.  Each line is one that Kconfig allows.  Prints the lines
to build, in the same order: the first line, then, greedily, the line that
builds the most pairs (two symbols and their values) that no chosen line
builds yet, until every pair that any allowed line has is built by a chosen
one.  A line that adds nothing new is not printed.

This is the usual pairwise (all-pairs) reduction of a configuration matrix:
each way two options can meet is compiled and linked at least once, and a
fault that needs three options set one particular way may go unseen.
"""

import itertools
import sys


def pairs(line):
    """The pairs a combination builds, as ((sym, val), (sym, val))."""
    kv = sorted(tuple(t.split('=', 1)) for t in line.split())
    return set(itertools.combinations(kv, 2))


def cover(lines):
    if not lines:
        return []
    built = [pairs(l) for l in lines]
    want = set().union(*built)
    chosen = [0]
    want -= built[0]
    while want:
        best = max(range(len(lines)),
                   key=lambda i: (len(built[i] & want), -i))
        gain = built[best] & want
        if not gain:
            break
        chosen.append(best)
        want -= gain
    return [lines[i] for i in sorted(chosen)]


def main():
    lines = [l.strip() for l in sys.stdin if l.strip()]
    for line in cover(lines):
        print(line)


if __name__ == '__main__':
    main()
