#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn the console log of one test boot into counted results.

The log holds the kernel's KTAP (KUnit, before init) and, from the guest's
check.sh, sections framed by "KVMDOM-BEGIN <name>" / "KVMDOM-END <name> rc=N".
Every KTAP/TAP document is parsed with the kernel's own parser
(tools/testing/kunit/kunit.py parse --json); every leaf test case becomes
one result.  Whatever was expected but is missing (a crash before the plan,
a section that never started or never ended) is a failure too.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

SPLAT = re.compile(r'(WARNING: (CPU|at)|BUG: |kernel BUG at|Oops[:]| Oops |'
                   r'Kernel panic|general protection fault|'
                   r'possible circular locking|inconsistent lock state|'
                   r'possible recursive locking|suspicious RCU usage|'
                   r'UBSAN:|KASAN:|refcount_t: |list_(add|del) corruption|'
                   r'enqueued on deprecated workqueue|'
                   r'Call Trace:)')

tty = sys.stdout.isatty() and not os.environ.get('CI')
COLORS = {'PASS': '\033[32m', 'FAIL': '\033[31m', 'NA': '\033[33m'}


class Results:
    def __init__(self, path):
        self.path = path
        self.failed = 0

    def add(self, status, name, detail=''):
        label = {'PASS': 'PASS', 'FAIL': 'FAIL', 'NA': 'n/a ',
                 'INFO': 'info'}[status]
        if tty and status in COLORS:
            label = COLORS[status] + label + '\033[0m'
        print(f'  {label} {name}' + (f' ({detail})' if detail else ''))
        if status == 'FAIL':
            self.failed += 1
        if self.path:
            with open(self.path, 'a') as f:
                f.write(f'{status}\t{name}\t{detail}\n')


def kunit_parse(kunit_py, lines, logfile):
    """Parse KTAP/TAP lines with kunit.py; return the leaf cases as
    (name, status) with status PASS, SKIP, FAIL or ERROR."""
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, 'in.log')
        out = os.path.join(tmp, 'out.json')
        with open(inp, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        p = subprocess.run([sys.executable, kunit_py, 'parse',
                            '--json=' + out, inp],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        with open(logfile, 'a') as f:
            f.write(p.stdout)
        if not os.path.exists(out):
            print(p.stdout)
            raise RuntimeError('kunit.py parse wrote no JSON')
        with open(out) as f:
            top = json.load(f)
    leaves = []

    def walk(group, prefix):
        for i, tc in enumerate(group.get('test_cases', [])):
            name = tc['name'] or f'#{i + 1} (no result: crash or hang)'
            leaves.append((prefix + name, tc['status']))
        for sub in group.get('sub_groups', []):
            walk(sub, prefix + sub['name'] + '.')

    walk(top, '')
    return leaves, p.stdout


def record_leaves(res, label, leaves):
    skipped = []
    for name, status in leaves:
        if status == 'PASS':
            res.add('PASS', f'{label}: {name}')
        elif status == 'SKIP':
            skipped.append(name)
        else:
            res.add('FAIL', f'{label}: {name}', status)
    # Skipped cases are neither passed nor failed; name a few.
    if skipped:
        few = ', '.join(skipped[:3]) + (', ...' if len(skipped) > 3 else '')
        res.add('INFO', f'{label}: {len(skipped)} cases skipped', few)


def read_baseline(path):
    """The stock-kernel results: {(suite, case): (status, why)}."""
    base = {}
    with open(path) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            suite, case, status, *why = line.rstrip('\n').split('\t')
            base[(suite, case)] = (status, why[0] if why else '')
    return base


def why_failed(body, name):
    """The skip reason of case @name, or the first diagnostic the kselftest
    harness printed for it."""
    skip = next((m.group(1) for m in (re.search(
        rf'^ok \d+ {re.escape(name)} # SKIP (.*)', l) for l in body) if m),
        None)
    if skip is not None:
        return 'skipped: ' + skip
    short = name.split('.', 1)[-1]
    start = None
    for i, l in enumerate(body):
        if re.search(rf'#\s+RUN\s+\S*{re.escape(short)}\s', l + ' '):
            start = i
        elif start is not None and re.search(r'#\s+(FAIL|OK)\s', l):
            diag = [x.strip('# ').strip() for x in body[start + 1:i]
                    if re.search(r'(Expected|Assertion|fail|error|Error|'
                                 r'errno|No such|not supported)', x)]
            return (diag[0] if diag else 'failed')[:200]
    return 'failed'


def record_upstream(res, label, suite, leaves, base):
    """Upstream's selftests as a peer suite: a case passing on stock 7.3
    must pass here; one failing on stock too is not counted."""
    seen = set()
    skipped = []
    for name, status in leaves:
        seen.add(name)
        stock, why = base.get((suite, name), (None, ''))
        tag = f'{label}: {suite}: {name}'
        if status == 'PASS':
            res.add('PASS', tag)
        elif status == 'SKIP' and stock in ('SKIP', None):
            skipped.append(name)
        elif stock is None:
            res.add('FAIL', tag, f'{status}, and not in the stock baseline')
        elif stock == 'PASS':
            res.add('FAIL', tag, f'regression: {status} here, passes on '
                    'stock')
        else:
            res.add('NA', tag, f'known on stock: {stock} there too: {why}')
    for (s, name), (stock, _) in sorted(base.items()):
        if s == suite and stock == 'PASS' and name not in seen:
            res.add('FAIL', f'{label}: {suite}: {name}',
                    'did not run here, passes on stock')
    if skipped:
        few = ', '.join(skipped[:3]) + (', ...' if len(skipped) > 3 else '')
        res.add('INFO', f'{label}: {suite}: {len(skipped)} cases skipped '
                'here and on stock', few)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--log', required=True)
    ap.add_argument('--label', required=True)
    ap.add_argument('--kunit-py', required=True)
    ap.add_argument('--results', default=os.environ.get('KVMDOM_RESULTS'))
    ap.add_argument('--expect-kunit', action='store_true',
                    help='the kernel has KUnit suites built in')
    ap.add_argument('--tap', action='append', default=[],
                    help='section whose output is TAP')
    ap.add_argument('--rc', action='append', default=[],
                    help='section judged by its exit status')
    ap.add_argument('--upstream', action='append', default=[],
                    help='section upstream-NAME: an upstream selftest, '
                    'judged against --baseline')
    ap.add_argument('--baseline', help='stock-kernel results of the '
                    '--upstream suites')
    ap.add_argument('--write-baseline', metavar='FILE',
                    help='write the --upstream results as a baseline '
                    'instead of judging them')
    ap.add_argument('--header', default='',
                    help='first comment lines of --write-baseline')
    args = ap.parse_args()

    res = Results(args.results)
    label = args.label
    parselog = args.log + '.parsed'
    open(parselog, 'w').close()
    with open(args.log, 'rb') as f:
        lines = [l.decode('utf-8', 'replace').rstrip('\r\n').replace('\r', '')
                 for l in f]

    init = next((i for i, l in enumerate(lines) if 'KVMDOM-INIT' in l), None)
    done = next((l for l in lines if 'KVMDOM-DONE' in l), None)
    kernel = lines[:init] if init is not None else lines
    hung = next((l for l in lines if l.startswith('boot: no console output')
                 or l.startswith('boot: QEMU timed out')), None)

    # Boot.
    if init is not None:
        res.add('PASS', f'{label}: boot reaches init')
    else:
        res.add('FAIL', f'{label}: boot reaches init',
                hung or 'no KVMDOM-INIT on the console')
    if done is not None:
        res.add('PASS', f'{label}: guest finishes')
    elif init is not None:
        res.add('FAIL', f'{label}: guest finishes',
                hung or 'no KVMDOM-DONE: crash or hang')

    # KUnit, from the kernel's part of the console.
    if any('KTAP version' in l for l in kernel):
        leaves, out = kunit_parse(args.kunit_py, kernel, parselog)
        if not leaves and args.expect_kunit:
            res.add('FAIL', f'{label}: kunit', 'KTAP has no test cases, '
                    'but the framework KUnit suite is configured')
        record_leaves(res, f'{label}: kunit', leaves)
        m = re.search(r'Testing complete\. (.*)', out)
        if m:
            print(f'  kunit.py: {m.group(1)}')
    elif args.expect_kunit:
        res.add('FAIL', f'{label}: kunit',
                'no KTAP output: the kernel died before the plan')

    # Userspace sections.
    def section(name):
        begin = f'KVMDOM-BEGIN {name}'
        endre = re.compile(rf'KVMDOM-END {re.escape(name)} rc=(\d+)')
        start = next((i for i, l in enumerate(lines) if l.endswith(begin)), None)
        if start is None:
            return None, None
        body = []
        for l in lines[start + 1:]:
            m = endre.search(l)
            if m:
                return body, int(m.group(1))
            body.append(l)
        return body, None

    for name in args.tap:
        body, rc = section(name)
        if body is None:
            res.add('FAIL', f'{label}: {name}', 'did not run: the guest '
                    'stopped before it' if done is None else 'did not run')
            continue
        if not any(re.search(r'(K?TAP version \d+)', l) for l in body):
            res.add('FAIL', f'{label}: {name}', f'no TAP output (rc={rc})')
            print('\n'.join('    | ' + l for l in body[-20:]))
            continue
        leaves, _ = kunit_parse(args.kunit_py, body, parselog)
        record_leaves(res, f'{label}: {name}', leaves)
        if not leaves:
            res.add('FAIL', f'{label}: {name}', 'TAP without test cases')
        if rc is None:
            res.add('FAIL', f'{label}: {name}', 'did not finish (crash or hang)')
        elif rc != 0 and all(s in ('PASS', 'SKIP') for _, s in leaves):
            res.add('FAIL', f'{label}: {name}', f'exit status {rc} although '
                    'every reported case passed')

    base = read_baseline(args.baseline) if args.baseline else {}
    rows = []
    for suite in args.upstream:
        body, rc = section('upstream-' + suite)
        tag = f'{label}: {suite}'
        if body is None or not any('TAP version' in l for l in body):
            res.add('FAIL', tag, 'did not run' if body is None
                    else f'no TAP output (rc={rc})')
            continue
        leaves, _ = kunit_parse(args.kunit_py, body, parselog)
        if not leaves:
            res.add('FAIL', tag, 'TAP without test cases')
        if rc is None:
            res.add('FAIL', tag, 'did not finish (crash or hang)')
        if args.write_baseline:
            for name, status in leaves:
                why = why_failed(body, name) if status != 'PASS' else ''
                rows.append(f'{suite}\t{name}\t{status}\t{why}'.rstrip('\t'))
            print(f'  {suite}: {len(leaves)} cases, '
                  f'{sum(st == "PASS" for _, st in leaves)} pass')
        else:
            record_upstream(res, label, suite, leaves, base)
    if args.write_baseline:
        with open(args.write_baseline, 'w') as f:
            f.write(args.header)
            f.write('# suite\tcase\tstatus on stock\twhy it does not pass '
                    '(first diagnostic of the case)\n')
            f.write('\n'.join(rows) + '\n')

    for name in args.rc:
        body, rc = section(name)
        if body is None:
            res.add('FAIL', f'{label}: {name}', 'did not run')
        elif rc == 0:
            res.add('PASS', f'{label}: {name}')
        else:
            res.add('FAIL', f'{label}: {name}',
                    f'exit status {rc}' if rc is not None else 'did not finish')
            print('\n'.join('    | ' + l for l in body[-15:]))

    # Kernel splats anywhere on the console.
    splats = [i for i, l in enumerate(lines) if SPLAT.search(l)]
    if splats:
        res.add('FAIL', f'{label}: no kernel warnings/oopses',
                f'{len(splats)} suspicious lines')
        for i in splats[:5]:
            print('\n'.join('    | ' + l for l in lines[max(0, i - 2):i + 12]))
            print('    | ...')
    else:
        res.add('PASS', f'{label}: no kernel warnings/oopses')

    return 1 if res.failed else 0


if __name__ == '__main__':
    sys.exit(main())
