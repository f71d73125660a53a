#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: the benchmarks, each from one boot, as a table and as JSON in
# $CACHE/bench/.
#
#   s390x  shadow-sync throughput of the s390 zPCI backend against per-page
#          iommu_map()/iommu_unmap() (the kernel half of today's path, where
#          the VMM maps every page the guest refreshes), at 1, 16, 256 and
#          4096 pages: the KUnit suite s390_iommu_kvm_bench, alone, on the
#          real s390 IOMMU driver in qemu-system-s390x (TCG).
#
# Figures are from QEMU with TCG on the machine that ran it: compare them
# with each other, not with hardware.

. "$(dirname "$0")/lib.sh"

"$HARNESS_DIR/setup.sh" check
"$HARNESS_DIR/prepare.sh"
"$HARNESS_DIR/build.sh" s390x
"$HARNESS_DIR/userspace.sh" s390x || warn "userspace tests did not build; the benchmark does not need them"
"$HARNESS_DIR/initramfs.sh" s390x

mkdir -p "$CACHE/bench"
log=$LOGS/bench-s390x.log
json=$CACHE/bench/s390x-shadow-sync.json
KVMDOM_APPEND="kunit.filter_glob=s390_iommu_kvm_bench" \
	"$HARNESS_DIR/boot.sh" s390x zpci bench "$log" || die "the s390x VM failed, see $log"
grep -q 'ok [0-9]* test_bench' "$log" || die "the benchmark did not run, see $log"
grep -q 'not ok [0-9]* test_bench' "$log" && die "the benchmark failed, see $log"

python3 - "$log" "$json" "$(uname -m) $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" <<'PY'
import json, re, sys
log, out, host = sys.argv[1:4]
rows = [json.loads(m.group(1)) for m in
        re.finditer(r'KVMDOM-BENCH (\{.*\})', open(log, errors='replace').read())]
if not rows:
    sys.exit("no KVMDOM-BENCH lines in " + log)
print("s390x zPCI shadow sync vs per-page iommu_map()/iommu_unmap()")
print("(each: map N pages, then unmap them; QEMU TCG on %s)" % host)
print("The shadow's time includes the guest's own table writes. 'unchanged'")
print("refreshes a range that did not change (the walk, no RPCIT); 'RPCIT us'")
print("is one host refresh of the range, timed alone. Each figure is the best of")
print("%d rounds: the machine is shared." % rows[0].get("rounds", 1))
print("%6s %5s %13s %13s %7s %13s %9s %7s %7s" % (
      "pages", "reps", "shadow pg/s", "per-page pg/s", "ratio",
      "unchanged/s", "RPCIT us", "RPCITs", "per-pg"))
for r in rows:
    ops = 2 * r["pages"] * r["reps"]
    r["shadow_pages_per_s"] = ops * 1e9 / r["shadow_ns"]
    r["per_page_pages_per_s"] = ops * 1e9 / r["per_page_ns"]
    r["ratio"] = r["per_page_ns"] / r["shadow_ns"]
    r["unchanged_pages_per_s"] = r["pages"] * r["reps"] * 1e9 / r["unchanged_ns"]
    r["rpcit_us"] = r["rpcit_ns"] / r["reps"] / 1e3
    print("%6d %5d %13.0f %13.0f %6.1fx %13.0f %9.2f %7d %7d" % (
        r["pages"], r["reps"], r["shadow_pages_per_s"],
        r["per_page_pages_per_s"], r["ratio"], r["unchanged_pages_per_s"],
        r["rpcit_us"], r["shadow_rpcits"], r["per_page_rpcits"]))
json.dump({"benchmark": "s390x-shadow-sync", "host": host, "results": rows},
          open(out, "w"), indent=1)
print("JSON: " + out)
PY
