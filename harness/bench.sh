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
#   x86_64 VT-d's KVM-backed domain (IOMMU_HWPT_KVM_FORMAT_VTD_TDP, the table
#          KVM keeps for the VM's IOMMUs) against today's path (an IOAS
#          mapping all guest RAM, attached, next to KVM's own table for the
#          vCPUs), at 256 MiB and 1 GiB of guest RAM: (1) extra IO
#          page-table memory (SecPageTables), (2) time from nothing to
#          DMA-ready, (3) attach to a VM whose memory is populated, per
#          memory backing, (4) KVM's invalidation path (MADV_DONTNEED and
#          refault) with and without the device attached.  One process:
#          tools/kvm-domain/kvm_vtd_bench in nested KVM (kvm_amd) on the
#          first-stage boot (x86_64 flts) with QEMU's edu device; JSON in
#          $CACHE/bench/x86_64-vtd.json.
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
print("Both times include the guest's own table writes. 'unchanged'")
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

# ---- x86_64: VT-d's KVM-backed domain against an IOAS ----------------------
"$HARNESS_DIR/build.sh" x86_64
"$HARNESS_DIR/userspace.sh" x86_64 ||
	warn "some userspace tests did not build; the benchmark needs kvm_vtd_bench only"
[ -x "$BUILD/x86_64/user/kvm_vtd_bench" ] ||
	die "kvm_vtd_bench did not build, see $LOGS/userspace-x86_64.log"
"$HARNESS_DIR/initramfs.sh" x86_64

log=$LOGS/bench-x86_64.log
json=$CACHE/bench/x86_64-vtd.json
# The program keeps itself to about 4 minutes under TCG (fewer rounds when
# slow); the boot adds one.  900 s leaves room on a busy machine.
KVMDOM_BOOT_TIMEOUT=${KVMDOM_BOOT_TIMEOUT:-900} KVMDOM_APPEND="kunit.enable=0" \
	"$HARNESS_DIR/boot.sh" x86_64 flts bench "$log" || die "the x86_64 VM failed, see $log"
if ! grep -q '^KVMDOM-DONE rc=0' "$log"; then
	why=$(grep -m1 -a '^# FAILED:' "$log" | tr -d '\r' || true)
	die "kvm_vtd_bench failed${why:+: ${why#\# FAILED: }}, see $log"
fi
grep -q -a 'KVMDOM-BENCH {"kind":"done"' "$log" || die "kvm_vtd_bench did not finish, see $log"

python3 - "$log" "$json" "$(uname -m) $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" <<'PY'
import json, re, sys, textwrap
log, out, host = sys.argv[1:4]
rows = []
for m in re.finditer(r'KVMDOM-BENCH (\{.*\})', open(log, errors='replace').read()):
    try:
        rows.append(json.loads(m.group(1)))
    except ValueError:
        sys.exit("a KVMDOM-BENCH line does not parse (split by a kernel message?): "
                 + m.group(1)[:120])
kinds = {}
for r in rows:
    kinds.setdefault(r["kind"], []).append(r)
for k in ("config", "io_pgtable_memory", "dma_ready", "attach_populated",
          "invalidation", "done"):
    if k not in kinds:
        sys.exit("no KVMDOM-BENCH line of kind %s in %s" % (k, log))
cfg = kinds["config"][0]

def mib(n):
    return "%d GiB" % (n // 1024) if n % 1024 == 0 else "%d MiB" % n

def rounds(r):
    n = r.get("rounds", 1)
    return "" if n >= cfg["rounds_planned"] else " (%d round%s)" % (n, "s"[n == 1:])

goals = []
def goal(measure, result, want, met):
    goals.append({"measure": measure, "result": result, "goal": want,
                  "met": met})

for r in kinds["io_pgtable_memory"]:
    goal("(1) extra IO page tables, %s %s" % (mib(r["size_MiB"]), r["backing"]),
         "today's path %d kB, shared %d kB%s" % (
             r["ioas_extra_kB"], r["shared_extra_kB"], rounds(r)),
         "shared %d kB" % r["goal_shared_extra_kB"],
         r["shared_extra_kB"] <= r["goal_shared_extra_kB"])
for r in kinds["dma_ready"]:
    goal("(2) nothing to DMA-ready, %s %s" % (mib(r["size_MiB"]), r["backing"]),
         "today's path %.1f ms, shared %.1f ms: %.2fx (IOMMU side %.2fx)%s" % (
             r["ioas_total_ns"] / 1e6, r["shared_total_ns"] / 1e6,
             r["ratio_total"], r["ratio_iommu_only"], rounds(r)),
         ">= %gx" % r["goal_min_ratio_total"],
         r["ratio_total"] >= r["goal_min_ratio_total"])
for r in kinds["attach_populated"]:
    if "skipped" in r:
        goal("(3) attach, populated, %s" % r["backing"], "skipped: " + r["skipped"],
             "", None)
        continue
    goal("(3) attach, populated, %s" % r["backing"],
         "%s %.1f ms, %s %.1f ms: %.2fx%s" % (
             mib(r["small_MiB"]), r["small_ns"] / 1e6, mib(r["large_MiB"]),
             r["large_ns"] / 1e6, r["ratio"], rounds(r)),
         "<= %gx" % r["goal_max_ratio"], r["ratio"] <= r["goal_max_ratio"])
for r in kinds["invalidation"]:
    goal("(4) DONTNEED+refault x%d, %s %s" % (r["pages"], mib(r["size_MiB"]), r["backing"]),
         "%.1f us/page without a device, %.1f with: %.2fx (all CPUs' busy time %s)%s" % (
             r["without_ns_per_page"] / 1e3, r["with_ns_per_page"] / 1e3,
             r["ratio"], "n/a" if r.get("ratio_cpu_busy") is None
             else "%.2fx" % r["ratio_cpu_busy"], rounds(r)),
         "<= %gx" % r["goal_max_ratio"], r["ratio"] <= r["goal_max_ratio"])

print(textwrap.fill(
    "VT-d: the KVM-backed domain ('shared', VTD_TDP) against today's path "
    "(an IOAS of all guest RAM + attach, next to KVM's own table for the "
    "vCPUs); nested KVM (kvm_amd) in QEMU TCG on %s; guest kernel %s. "
    "Times: best of %d rounds (fewer where noted). (1) is SecPageTables "
    "after the IOMMU side; (2) counts KVM_PRE_FAULT_MEMORY of all RAM in "
    "both paths, after the IOMMU side, which faults the memory in and pins "
    "it; (3) is HWPT_ALLOC + attach on memory already populated and "
    "prefaulted. Memory: %s." % (host, cfg["kernel"], cfg["rounds_planned"],
                                 cfg["memory"]), 79))
w = max(len(g["measure"]) for g in goals)
v = max(len(g["result"]) for g in goals)
gw = max(len(g["goal"]) for g in goals)
print("%-*s  %-*s  %-*s  %s" % (w, "measure", v, "result", gw, "goal", "met"))
for g in goals:
    met = "-" if g["met"] is None else ("yes" if g["met"] else "no")
    print("%-*s  %-*s  %-*s  %s" % (w, g["measure"], v, g["result"], gw,
                                   g["goal"], met))
print("kvm_vtd_bench ran %.0f s" % (kinds["done"][0]["elapsed_ns"] / 1e9))
json.dump({"benchmark": "x86_64-vtd", "host": host, "config": cfg,
           "goals": goals,
           "results": [r for r in rows if r["kind"] not in ("config", "done")],
           "elapsed_ns": kinds["done"][0]["elapsed_ns"]},
          open(out, "w"), indent=1)
print("JSON: " + out)
PY
