// SPDX-License-Identifier: GPL-2.0
/*
 * make bench for VT-d, in the kvm-domain test VM (nested KVM, intel-iommu
 * in scalable mode with first-stage translation, QEMU's edu device): the
 * KVM-backed domain (IOMMU_HWPT_KVM_FORMAT_VTD_TDP, "shared") against
 * today's path (an IOAS that maps all guest RAM at IOVA == GPA, edu
 * attached to it, while KVM keeps its own table for the vCPUs).  One
 * process; edu is bound to iommufd once.
 *
 * (1) Extra IO page-table memory: SecPageTables of /proc/meminfo (after
 *     vm.stat_refresh folds the per-CPU counters) before and after the
 *     IOMMU side; KVM's vCPU tables, the VM's IOMMU table and iommufd's IO
 *     page tables are all counted there.
 * (2) Nothing to DMA-ready, at 256 MiB and 1 GiB of anonymous memory (THP
 *     allowed): IOMMU_IOAS_ALLOC + IOMMU_IOAS_MAP + attach, then
 *     KVM_PRE_FAULT_MEMORY of all guest RAM (the vCPUs' table), against
 *     IOMMU_HWPT_ALLOC + attach, then the same prefault.  The IOMMU side
 *     goes first in both: it faults the memory in and pins it.
 * (3) IOMMU_HWPT_ALLOC + attach to a VM whose memory is populated and
 *     prefaulted, at two sizes 4x apart, per backing (anonymous memory with
 *     THP, anonymous 4 KiB pages, 2 MiB hugetlb pages, and shared
 *     guest_memfd, which KVM maps from the file without pinning).
 * (4) KVM's invalidation path: MADV_DONTNEED and a write refault of 2000
 *     pages of 256 MiB of 4 KiB pages, without a device, then with edu
 *     attached to the VM's table (each MADV_DONTNEED then also clears the
 *     IOMMU's leaf, flushes the IOTLB and unpins the page; what KVM maps
 *     again later, in a worker, the wall clock of the loop may miss, so
 *     the busy time of all CPUs is reported too).
 *
 * Each time is the best of up to 3 rounds (fewer when a series would take
 * too long under TCG: the JSON says how many ran).  One line
 * "KVMDOM-BENCH {json}" per result, "#" lines for humans; harness/bench.sh
 * reads them.  A failing step ends the program with status 1 and a
 * "# FAILED:" line saying which.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <linux/const.h>
#include <linux/iommufd.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

#include "vmm_test.h"

#define MIB		(1024ULL * 1024)
#define PG		4096ULL
#define HPAGE		(2ULL << 20)
#define NSEC		1000000000LL

#define ROUNDS		3
/* Another round only if the series, with it, stays within this */
#define SERIES_BUDGET	(75 * NSEC)
/* After this, every series stops after its first round */
#define TOTAL_BUDGET	(180 * NSEC)

/* (4): sets of INV_PAGES pages, INV_STRIDE pages apart, INV_SETS of them */
#define INV_SIZE	(256 * MIB)
#define INV_PAGES	2000
#define INV_STRIDE	32
#define INV_SETS	(2 * ROUNDS)

#define GOAL_MEM_KB	0
#define GOAL_READY	2.0
#define GOAL_ATTACH	1.2
#define GOAL_INVAL	1.15

enum backing { ANON_THP, ANON_4K, HUGETLB, GMEM };

static const char * const backing_name[] = {
	[ANON_THP] = "anon-thp",
	[ANON_4K] = "anon-4k",
	[HUGETLB] = "hugetlb-2M",
	[GMEM] = "guest_memfd",
};

static const char * const backing_desc[] = {
	[ANON_THP] =
		"anonymous MAP_PRIVATE, MADV_HUGEPAGE (THP where the kernel finds 2 MiB pages)",
	[ANON_4K] = "anonymous MAP_PRIVATE, MADV_NOHUGEPAGE (4 KiB pages)",
	[HUGETLB] = "MAP_HUGETLB 2 MiB pages (anonymous, MAP_PRIVATE)",
	[GMEM] =
		"shared guest_memfd (GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED), 4 KiB pages, mapped MAP_SHARED: not pinned",
};

/* One VM: one memslot of guest RAM at GPA 0, one vCPU that never runs */
struct vm {
	int fd;
	int vcpu;
	int gmem;	/* the guest_memfd behind the memslot, or -1 */
	__u8 *mem;
	__u64 size;
};

/* What the kernel counts, in kB */
struct counters {
	long long sec;		/* SecPageTables */
	long long iommu;	/* nr_iommu_pages (the IOMMU drivers' part) */
	long long thp;		/* AnonHugePages */
};

static int kvm = -1, iommufd = -1, dev = -1;
static __u32 dev_id;
static long long t_start;
static int stat_refresh_ok = 1;
static int hugetlb_errno;

/* ------------------------------------------------------------------ */

static void fail(int err, const char *fmt, ...)
{
	va_list ap;

	printf("# FAILED: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (err)
		printf(": %s", strerror(err));
	printf("\n");
	exit(1);
}

static long long now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * NSEC + ts.tv_nsec;
}

static long long min_of(const long long *v, int n)
{
	long long m = v[0];
	int i;

	for (i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

static long long max_of(const long long *v, int n)
{
	long long m = v[0];
	int i;

	for (i = 1; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

/* The round with the smallest @v[i] */
static int best_of(const long long *v, int n)
{
	int i, b = 0;

	for (i = 1; i < n; i++)
		if (v[i] < v[b])
			b = i;
	return b;
}

/* Another round of a series that started at @start and ran @done rounds? */
static int more_rounds(long long start, int done)
{
	long long t = now();

	if (done >= ROUNDS || t - t_start > TOTAL_BUDGET)
		return 0;
	return (t - start) / done * (done + 1) <= SERIES_BUDGET;
}

/* ------------------------------------------------------------------ */
/* JSON, one object per line */

static char json[4096];
static size_t jlen;

static void jput(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (jlen >= sizeof(json))
		return;
	va_start(ap, fmt);
	n = vsnprintf(json + jlen, sizeof(json) - jlen, fmt, ap);
	va_end(ap);
	jlen += n > 0 ? n : 0;
}

static void j_begin(const char *kind)
{
	jlen = 0;
	jput("{\"kind\":\"%s\"", kind);
}

/* Our strings: no quote, backslash or control character in them */
static void j_str(const char *key, const char *val)
{
	jput(",\"%s\":\"%s\"", key, val);
}

static void j_int(const char *key, long long val)
{
	jput(",\"%s\":%lld", key, val);
}

static void j_num(const char *key, double val)
{
	jput(",\"%s\":%.3f", key, val);
}

/* @a / @b, or null */
static void j_ratio(const char *key, long long a, long long b)
{
	if (a > 0 && b > 0)
		j_num(key, (double)a / b);
	else
		jput(",\"%s\":null", key);
}

static void j_ints(const char *key, const long long *val, int n)
{
	int i;

	jput(",\"%s\":[", key);
	for (i = 0; i < n; i++)
		jput("%s%lld", i ? "," : "", val[i]);
	jput("]");
}

static void j_end(void)
{
	jput("}");
	if (jlen >= sizeof(json))
		fail(0, "a JSON line is longer than %zu bytes", sizeof(json));
	printf("KVMDOM-BENCH %s\n", json);
}

/* ------------------------------------------------------------------ */
/* The kernel's counters */

static void counters(struct counters *c)
{
	long long pages;
	int fd;

	/* Fold the per-CPU deltas: they can hide hundreds of kB */
	fd = open("/proc/sys/vm/stat_refresh", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1\n", 2) != 2)
		stat_refresh_ok = 0;
	if (fd >= 0)
		close(fd);
	c->sec = read_key("/proc/meminfo", "SecPageTables", ':');
	c->thp = read_key("/proc/meminfo", "AnonHugePages", ':');
	pages = read_key("/proc/vmstat", "nr_iommu_pages", ' ');
	c->iommu = pages < 0 ? -1 : pages * (sysconf(_SC_PAGESIZE) / 1024);
	if (c->sec < 0)
		fail(0, "no SecPageTables in /proc/meminfo");
}

/*
 * A baseline: the counters once SecPageTables stays put for 50 ms, so that
 * tables of what was torn down before, freed after an RCU grace period,
 * do not count against what comes next.
 */
static void baseline(struct counters *c)
{
	struct counters again;
	int i;

	counters(c);
	for (i = 0; i < 40; i++) {
		usleep(50000);
		counters(&again);
		if (again.sec == c->sec)
			return;
		*c = again;
	}
	printf("# SecPageTables did not settle in 2 s: at %lld kB\n", c->sec);
}

/* ------------------------------------------------------------------ */
/* edu, bound to vfio-pci and to iommufd */

static void setup(char *bdf, size_t len)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct iommu_hw_info info = { .size = sizeof(info) };

	if (edu_find(bdf, len))
		fail(0, "no edu device (1234:11e8) in " SYSPCI);
	dev = edu_open(bdf);
	if (dev < 0)
		fail(0, "%s: no VFIO cdev (vfio-pci)", bdf);
	iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (iommufd < 0)
		fail(errno, "open /dev/iommu");
	bind.iommufd = iommufd;
	if (ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		fail(errno, "VFIO_DEVICE_BIND_IOMMUFD");
	dev_id = bind.out_devid;
	info.dev_id = dev_id;
	if (ioctl(iommufd, IOMMU_GET_HW_INFO, &info))
		fail(errno, "IOMMU_GET_HW_INFO");
	if (!(info.out_kvm_formats & _BITULL(IOMMU_HWPT_KVM_FORMAT_VTD_TDP)))
		fail(0, "edu's IOMMU offers no VTD_TDP (formats 0x%llx): no first stage?",
		     (unsigned long long)info.out_kvm_formats);

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		fail(errno, "open /dev/kvm (modprobe kvm_amd?)");
	if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_PRE_FAULT_MEMORY) <= 0)
		fail(0, "KVM_CAP_PRE_FAULT_MEMORY not offered (no TDP?)");
}

/* ------------------------------------------------------------------ */
/* The IOMMU side */

static void attach(__u32 pt_id, const char *what)
{
	struct vfio_device_attach_iommufd_pt at = {
		.argsz = sizeof(at), .pt_id = pt_id,
	};

	if (ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at))
		fail(errno, "VFIO_DEVICE_ATTACH_IOMMUFD_PT to %s %u", what,
		     pt_id);
}

static void detach(void)
{
	struct vfio_device_detach_iommufd_pt det = { .argsz = sizeof(det) };

	if (ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &det))
		fail(errno, "VFIO_DEVICE_DETACH_IOMMUFD_PT");
}

static void destroy(__u32 id)
{
	struct iommu_destroy d = { .size = sizeof(d), .id = id };

	if (ioctl(iommufd, IOMMU_DESTROY, &d))
		fail(errno, "IOMMU_DESTROY %u", id);
}

static __u32 hwpt_alloc(struct vm *v)
{
	__u32 id = 0;

	if (vtd_hwpt_alloc(iommufd, dev_id, v->fd, &id))
		fail(errno, "IOMMU_HWPT_ALLOC VTD_TDP, %llu MiB", v->size / MIB);
	return id;
}

static __u32 ioas_alloc(void)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };

	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc))
		fail(errno, "IOMMU_IOAS_ALLOC");
	return alloc.out_ioas_id;
}

/* All guest RAM at IOVA == GPA */
static void ioas_map(__u32 ioas, struct vm *v)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE |
			 IOMMU_IOAS_MAP_READABLE,
		.ioas_id = ioas,
		.user_va = (unsigned long)v->mem,
		.length = v->size,
		.iova = 0,
	};

	if (ioctl(iommufd, IOMMU_IOAS_MAP, &map))
		fail(errno, "IOMMU_IOAS_MAP %llu MiB", v->size / MIB);
}

static void ioas_unmap(__u32 ioas, struct vm *v)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap), .ioas_id = ioas, .length = v->size,
	};

	if (ioctl(iommufd, IOMMU_IOAS_UNMAP, &unmap))
		fail(errno, "IOMMU_IOAS_UNMAP");
}

/* ------------------------------------------------------------------ */
/* The VM */

/* A VM whose memslot is shared guest_memfd, mapped for the VMM too */
static void vm_open_gmem(struct vm *v, __u64 size)
{
	struct kvm_create_guest_memfd gmem = {
		.size = size,
		.flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED,
	};
	struct kvm_userspace_memory_region2 r = {
		.slot = 0, .flags = KVM_MEM_GUEST_MEMFD, .memory_size = size,
	};

	v->fd = ioctl(kvm, KVM_CREATE_VM, 0);
	if (v->fd < 0)
		fail(errno, "KVM_CREATE_VM");
	v->gmem = ioctl(v->fd, KVM_CREATE_GUEST_MEMFD, &gmem);
	if (v->gmem < 0)
		fail(errno, "KVM_CREATE_GUEST_MEMFD %llu MiB", size / MIB);
	v->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->gmem,
		      0);
	if (v->mem == MAP_FAILED)
		fail(errno, "mmap guest_memfd %llu MiB", size / MIB);
	v->size = size;
	r.guest_memfd = v->gmem;
	r.userspace_addr = (unsigned long)v->mem;
	if (ioctl(v->fd, KVM_SET_USER_MEMORY_REGION2, &r))
		fail(errno, "KVM_SET_USER_MEMORY_REGION2 guest_memfd %llu MiB",
		     size / MIB);
	v->vcpu = ioctl(v->fd, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0)
		fail(errno, "KVM_CREATE_VCPU");
}

/* 0, or -1 if @b is hugetlb and there are not enough huge pages */
static int vm_open(struct vm *v, __u64 size, enum backing b)
{
	struct kvm_userspace_memory_region r = {
		.slot = 0, .memory_size = size,
	};
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	__u64 len = size, head;
	__u8 *p;

	v->gmem = -1;
	if (b == GMEM) {
		vm_open_gmem(v, size);
		return 0;
	}
	if (b == HUGETLB)
		flags |= MAP_HUGETLB | 21 << MAP_HUGE_SHIFT;
	else
		len += HPAGE;	/* to align it: 2 MiB leaves need it */
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED && b == HUGETLB) {
		hugetlb_errno = errno;
		return -1;
	}
	if (p == MAP_FAILED)
		fail(errno, "mmap %llu MiB", size / MIB);
	if (b != HUGETLB) {
		head = -(unsigned long)p & (HPAGE - 1);
		if (head)
			munmap(p, head);
		if (HPAGE - head)
			munmap(p + head + size, HPAGE - head);
		p += head;
		if (madvise(p, size, b == ANON_THP ? MADV_HUGEPAGE :
						     MADV_NOHUGEPAGE))
			fail(errno, "madvise %s", backing_name[b]);
	}
	v->mem = p;
	v->size = size;
	v->fd = ioctl(kvm, KVM_CREATE_VM, 0);
	if (v->fd < 0)
		fail(errno, "KVM_CREATE_VM");
	r.userspace_addr = (unsigned long)p;
	if (ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &r))
		fail(errno, "KVM_SET_USER_MEMORY_REGION %llu MiB", size / MIB);
	v->vcpu = ioctl(v->fd, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0)
		fail(errno, "KVM_CREATE_VCPU");
	return 0;
}

static void vm_close(struct vm *v)
{
	close(v->vcpu);
	close(v->fd);
	munmap(v->mem, v->size);
	if (v->gmem >= 0)
		close(v->gmem);
}

/* A byte written in every 4 KiB page */
static void touch(struct vm *v)
{
	__u64 off;

	for (off = 0; off < v->size; off += PG)
		v->mem[off] = 1;
}

/* KVM builds the vCPUs' table for all guest RAM */
static void prefault(struct vm *v)
{
	struct kvm_pre_fault_memory range = { .size = v->size };

	while (range.size)
		if (ioctl(v->vcpu, KVM_PRE_FAULT_MEMORY, &range) &&
		    errno != EINTR && errno != EAGAIN)
			fail(errno, "KVM_PRE_FAULT_MEMORY at GPA 0x%llx, 0x%llx left",
			     (unsigned long long)range.gpa,
			     (unsigned long long)range.size);
}

/* ------------------------------------------------------------------ */
/* (1) and (2): nothing to DMA-ready */

struct ready {
	long long iommu_ns;	/* the IOMMU side, all of it */
	long long alloc_ns;	/* IOAS_ALLOC + IOAS_MAP, or HWPT_ALLOC */
	long long attach_ns;
	long long prefault_ns;	/* KVM_PRE_FAULT_MEMORY */
	long long extra_kb;	/* SecPageTables: the IOMMU side's */
	long long iommu_pages_kb;	/* of which nr_iommu_pages */
	long long kvm_kb;	/* SecPageTables: the prefault's */
	long long thp_kb;	/* AnonHugePages once populated */
};

static void ready_path(__u64 size, int shared, struct ready *r)
{
	struct counters c1, c2, c3;
	long long t0, t1, t2, t3, t4;
	struct vm v;
	__u32 id;

	vm_open(&v, size, ANON_THP);
	baseline(&c1);
	t0 = now();
	if (shared) {
		id = hwpt_alloc(&v);
	} else {
		id = ioas_alloc();
		ioas_map(id, &v);
	}
	t1 = now();
	attach(id, shared ? "hwpt" : "ioas");
	t2 = now();
	counters(&c2);
	t3 = now();
	prefault(&v);
	t4 = now();
	counters(&c3);

	detach();
	if (!shared)
		ioas_unmap(id, &v);
	destroy(id);
	vm_close(&v);

	r->alloc_ns = t1 - t0;
	r->attach_ns = t2 - t1;
	r->iommu_ns = t2 - t0;
	r->prefault_ns = t4 - t3;
	r->extra_kb = c2.sec - c1.sec;
	r->iommu_pages_kb = c2.iommu < 0 ? -1 : c2.iommu - c1.iommu;
	r->kvm_kb = c3.sec - c2.sec;
	r->thp_kb = c2.thp - c1.thp;
	printf("# %4llu MiB %-6s: IOMMU side %.1f ms (%s %.1f, attach %.1f), prefault %.1f ms\n",
	       size / MIB, shared ? "shared" : "IOAS", r->iommu_ns / 1e6,
	       shared ? "HWPT_ALLOC" : "IOAS_ALLOC+MAP", r->alloc_ns / 1e6,
	       r->attach_ns / 1e6, r->prefault_ns / 1e6);
	printf("#             SecPageTables +%lld kB IOMMU side, +%lld kB prefault; THP %lld kB\n",
	       r->extra_kb, r->kvm_kb, r->thp_kb);
}

/* Times of the path @p ("ioas" or "shared"): its best round @b, and all */
static void j_ready(const char *p, const struct ready *r, int n, int b)
{
	long long v[ROUNDS];
	char key[64];
	int i;

	snprintf(key, sizeof(key), "%s_iommu_ns", p);
	j_int(key, r[b].iommu_ns);
	snprintf(key, sizeof(key), "%s_alloc_ns", p);
	j_int(key, r[b].alloc_ns);
	snprintf(key, sizeof(key), "%s_attach_ns", p);
	j_int(key, r[b].attach_ns);
	snprintf(key, sizeof(key), "%s_kvm_prefault_ns", p);
	j_int(key, r[b].prefault_ns);
	for (i = 0; i < n; i++)
		v[i] = r[i].iommu_ns;
	snprintf(key, sizeof(key), "%s_iommu_ns_rounds", p);
	j_ints(key, v, n);
	for (i = 0; i < n; i++)
		v[i] = r[i].prefault_ns;
	snprintf(key, sizeof(key), "%s_kvm_prefault_ns_rounds", p);
	j_ints(key, v, n);
}

static void j_memory(const char *p, const struct ready *r, int n)
{
	long long v[ROUNDS];
	char key[64];
	int i;

	for (i = 0; i < n; i++)
		v[i] = r[i].extra_kb;
	snprintf(key, sizeof(key), "%s_extra_kB", p);
	j_int(key, max_of(v, n));
	snprintf(key, sizeof(key), "%s_extra_kB_rounds", p);
	j_ints(key, v, n);
	for (i = 0; i < n; i++)
		v[i] = r[i].iommu_pages_kb;
	snprintf(key, sizeof(key), "%s_extra_iommu_pages_kB", p);
	j_int(key, max_of(v, n));
	for (i = 0; i < n; i++)
		v[i] = r[i].kvm_kb;
	snprintf(key, sizeof(key), "%s_kvm_vcpu_table_kB", p);
	j_int(key, max_of(v, n));
	for (i = 0; i < n; i++)
		v[i] = r[i].thp_kb;
	snprintf(key, sizeof(key), "%s_anon_huge_kB", p);
	j_int(key, max_of(v, n));
}

static void bench_ready(__u64 size)
{
	struct ready io[ROUNDS], sh[ROUNDS];
	long long start = now(), tot_io[ROUNDS], tot_sh[ROUNDS];
	int n = 0, bi, bs;

	do {
		printf("# (1)(2) %llu MiB, round %d\n", size / MIB, n + 1);
		/* Which path goes first alternates */
		if (n & 1) {
			ready_path(size, 1, &sh[n]);
			ready_path(size, 0, &io[n]);
		} else {
			ready_path(size, 0, &io[n]);
			ready_path(size, 1, &sh[n]);
		}
		tot_io[n] = io[n].iommu_ns + io[n].prefault_ns;
		tot_sh[n] = sh[n].iommu_ns + sh[n].prefault_ns;
		n++;
	} while (more_rounds(start, n));
	bi = best_of(tot_io, n);
	bs = best_of(tot_sh, n);

	j_begin("io_pgtable_memory");
	j_str("backing", backing_name[ANON_THP]);
	j_int("size_MiB", size / MIB);
	j_int("rounds", n);
	j_memory("ioas", io, n);
	j_memory("shared", sh, n);
	j_int("goal_shared_extra_kB", GOAL_MEM_KB);
	j_int("stat_refresh", stat_refresh_ok);
	j_end();

	j_begin("dma_ready");
	j_str("backing", backing_name[ANON_THP]);
	j_int("size_MiB", size / MIB);
	j_int("rounds", n);
	j_int("rounds_planned", ROUNDS);
	j_str("order",
	      "IOMMU side first (it faults the memory in and pins it), then KVM_PRE_FAULT_MEMORY; which path goes first alternates by round");
	j_str("ioas_iommu",
	      "IOMMU_IOAS_ALLOC + IOMMU_IOAS_MAP (all RAM, IOVA = GPA, FIXED_IOVA|READABLE|WRITEABLE) + VFIO_DEVICE_ATTACH_IOMMUFD_PT to the IOAS");
	j_str("shared_iommu",
	      "IOMMU_HWPT_ALLOC (IOMMU_HWPT_DATA_KVM, VTD_TDP) + VFIO_DEVICE_ATTACH_IOMMUFD_PT to the HWPT");
	j_int("ioas_total_ns", tot_io[bi]);
	j_int("shared_total_ns", tot_sh[bs]);
	j_ints("ioas_total_ns_rounds", tot_io, n);
	j_ints("shared_total_ns_rounds", tot_sh, n);
	j_ready("ioas", io, n, bi);
	j_ready("shared", sh, n, bs);
	j_ratio("ratio_total", tot_io[bi], tot_sh[bs]);
	j_ratio("ratio_iommu_only", io[bi].iommu_ns, sh[bs].iommu_ns);
	j_num("goal_min_ratio_total", GOAL_READY);
	j_end();
	printf("# (2) %llu MiB: today's path %.1f ms, shared %.1f ms: %.2fx (IOMMU side %.2fx)\n",
	       size / MIB, tot_io[bi] / 1e6, tot_sh[bs] / 1e6,
	       (double)tot_io[bi] / tot_sh[bs],
	       (double)io[bi].iommu_ns / sh[bs].iommu_ns);
}

/* ------------------------------------------------------------------ */
/* (3) attach to a VM whose memory is populated */

struct attach_series {
	int rounds;
	long long total_ns;	/* HWPT_ALLOC + attach, best round */
	long long alloc_ns;	/* of that round */
	long long attach_ns;
	long long extra_kb;
	long long thp_kb;
	long long rounds_ns[ROUNDS];
};

/* HWPT_ALLOC + attach on @v, populated; the HWPT is left attached if @keep */
static __u32 timed_attach(struct vm *v, long long *alloc_ns,
			  long long *attach_ns, long long *extra_kb, int keep)
{
	struct counters c0, c1;
	long long t0, t1, t2;
	__u32 id;

	baseline(&c0);
	t0 = now();
	id = hwpt_alloc(v);
	t1 = now();
	attach(id, "hwpt");
	t2 = now();
	counters(&c1);
	*alloc_ns = t1 - t0;
	*attach_ns = t2 - t1;
	*extra_kb = c1.sec - c0.sec;
	if (!keep) {
		detach();
		destroy(id);
	}
	return id;
}

/* 0, or -1 if the memory is not there (hugetlb) */
static int attach_populated(__u64 size, enum backing b,
			    struct attach_series *s)
{
	long long start, alloc[ROUNDS], att[ROUNDS], extra[ROUNDS];
	struct counters c0, c1;
	struct vm v;
	int n = 0, i;

	counters(&c0);
	if (vm_open(&v, size, b))
		return -1;
	touch(&v);
	prefault(&v);
	counters(&c1);
	s->thp_kb = c1.thp - c0.thp;
	start = now();
	do {
		timed_attach(&v, &alloc[n], &att[n], &extra[n], 0);
		s->rounds_ns[n] = alloc[n] + att[n];
		n++;
	} while (more_rounds(start, n));
	vm_close(&v);
	i = best_of(s->rounds_ns, n);
	s->rounds = n;
	s->total_ns = s->rounds_ns[i];
	s->alloc_ns = alloc[i];
	s->attach_ns = att[i];
	s->extra_kb = max_of(extra, n);
	printf("# (3) %s %4llu MiB populated: HWPT_ALLOC %.1f ms + attach %.1f ms\n",
	       backing_name[b], size / MIB, s->alloc_ns / 1e6,
	       s->attach_ns / 1e6);
	printf("#     best of %d; SecPageTables +%lld kB, THP %lld kB\n", n,
	       s->extra_kb, s->thp_kb);
	return 0;
}

static void j_series(const char *p, __u64 size, const struct attach_series *s)
{
	char key[64];

	snprintf(key, sizeof(key), "%s_MiB", p);
	j_int(key, size / MIB);
	snprintf(key, sizeof(key), "%s_ns", p);
	j_int(key, s->total_ns);
	snprintf(key, sizeof(key), "%s_alloc_ns", p);
	j_int(key, s->alloc_ns);
	snprintf(key, sizeof(key), "%s_attach_ns", p);
	j_int(key, s->attach_ns);
	snprintf(key, sizeof(key), "%s_ns_rounds", p);
	j_ints(key, s->rounds_ns, s->rounds);
	snprintf(key, sizeof(key), "%s_shared_extra_kB", p);
	j_int(key, s->extra_kb);
	snprintf(key, sizeof(key), "%s_anon_huge_kB", p);
	j_int(key, s->thp_kb);
}

static void bench_attach(enum backing b, __u64 small, __u64 large)
{
	struct attach_series s, l;
	int skip;

	printf("# (3) %s: %llu and %llu MiB\n", backing_name[b], small / MIB,
	       large / MIB);
	skip = attach_populated(small, b, &s) ||
	       attach_populated(large, b, &l);
	j_begin("attach_populated");
	j_str("backing", backing_name[b]);
	j_str("backing_desc", backing_desc[b]);
	j_str("populated",
	      "a byte written in every 4 KiB page, then KVM_PRE_FAULT_MEMORY of all RAM");
	j_str("timed", b == GMEM ?
	      "IOMMU_HWPT_ALLOC (VTD_TDP, maps all RAM from the file, no pin) + VFIO_DEVICE_ATTACH_IOMMUFD_PT" :
	      "IOMMU_HWPT_ALLOC (VTD_TDP, pins and maps all RAM) + VFIO_DEVICE_ATTACH_IOMMUFD_PT");
	if (skip) {
		j_str("skipped", "not enough huge pages (MAP_HUGETLB failed)");
		j_end();
		printf("# (3) %s: skipped, MAP_HUGETLB failed: %s\n",
		       backing_name[b], strerror(hugetlb_errno));
		return;
	}
	j_series("small", small, &s);
	j_series("large", large, &l);
	j_int("rounds", s.rounds < l.rounds ? s.rounds : l.rounds);
	j_ratio("ratio", l.total_ns, s.total_ns);
	j_num("goal_max_ratio", GOAL_ATTACH);
	j_end();
	printf("# (3) %s: %llu MiB / %llu MiB = %.2fx\n", backing_name[b],
	       large / MIB, small / MIB, (double)l.total_ns / s.total_ns);
}

/* ------------------------------------------------------------------ */
/* (4) KVM's invalidation path, and (1) with 4 KiB pages */

/* Busy time of all CPUs so far (/proc/stat, in USER_HZ ticks), in ns */
static long long cpu_busy_ns(void)
{
	unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
	FILE *f = fopen("/proc/stat", "r");
	int n = 0;

	if (f)
		n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu",
			   &user, &nice, &sys, &idle, &iowait, &irq, &softirq,
			   &steal);
	if (f)
		fclose(f);
	if (n != 8)
		fail(0, "/proc/stat: no cpu line");
	return (long long)(user + nice + sys + irq + softirq + steal) * NSEC /
	       sysconf(_SC_CLK_TCK);
}

/*
 * MADV_DONTNEED and a write refault, page by page, of set @set: the wall
 * clock of the loop, and in @busy the busy time of all CPUs from its start
 * to 200 ms after its end (workers it left behind included)
 */
static long long inval_loop(struct vm *v, int set, long long *busy)
{
	long long t0, t1, b0 = cpu_busy_ns();
	__u8 *p;
	int i;

	t0 = now();

	for (i = 0; i < INV_PAGES; i++) {
		p = v->mem + ((__u64)i * INV_STRIDE +
			      set * (INV_STRIDE / INV_SETS)) * PG;
		if (madvise(p, PG, MADV_DONTNEED))
			fail(errno, "MADV_DONTNEED at %p", (void *)p);
		/* Stays: the memory is reachable and calls follow */
		*p = 2;
	}
	t1 = now();
	usleep(200000);
	*busy = cpu_busy_ns() - b0;
	return t1 - t0;
}

static void bench_inval(void)
{
	long long start, without[ROUNDS], with[ROUNDS];
	long long busy_without[ROUNDS], busy_with[ROUNDS];
	long long io_extra, sh_extra = 0, extra, alloc_ns, att_ns;
	struct counters c0, c1;
	struct vm v;
	__u32 id;
	int n = 0;

	printf("# (4) and (1) with 4 KiB pages: %llu MiB\n", INV_SIZE / MIB);
	vm_open(&v, INV_SIZE, ANON_4K);
	touch(&v);
	prefault(&v);

	/* (1) with 4 KiB pages: today's path on this memory */
	baseline(&c0);
	id = ioas_alloc();
	ioas_map(id, &v);
	attach(id, "ioas");
	counters(&c1);
	io_extra = c1.sec - c0.sec;
	detach();
	ioas_unmap(id, &v);
	destroy(id);

	start = now();
	do {
		/* Which loop goes first alternates */
		if (!(n & 1))
			without[n] = inval_loop(&v, 2 * n,
						&busy_without[n]);
		id = timed_attach(&v, &alloc_ns, &att_ns, &extra, 1);
		if (!n)
			sh_extra = extra;
		with[n] = inval_loop(&v, 2 * n + 1, &busy_with[n]);
		detach();
		destroy(id);
		if (n & 1)
			without[n] = inval_loop(&v, 2 * n,
						&busy_without[n]);
		printf("# (4) round %d, %d pages: %.1f ms without a device, %.1f ms with\n",
		       n + 1, INV_PAGES, without[n] / 1e6, with[n] / 1e6);
		n++;
	} while (more_rounds(start, n));
	vm_close(&v);

	j_begin("io_pgtable_memory");
	j_str("backing", backing_name[ANON_4K]);
	j_int("size_MiB", INV_SIZE / MIB);
	j_int("rounds", 1);
	j_int("ioas_extra_kB", io_extra);
	j_int("shared_extra_kB", sh_extra);
	j_int("goal_shared_extra_kB", GOAL_MEM_KB);
	j_int("stat_refresh", stat_refresh_ok);
	j_end();
	printf("# (1) %s %llu MiB: extra SecPageTables %lld kB today's path, %lld kB shared\n",
	       backing_name[ANON_4K], INV_SIZE / MIB, io_extra, sh_extra);

	j_begin("invalidation");
	j_str("backing", backing_name[ANON_4K]);
	j_int("size_MiB", INV_SIZE / MIB);
	j_int("pages", INV_PAGES);
	j_str("op",
	      "madvise(MADV_DONTNEED) of one 4 KiB page, then a write to it, per page; pages 128 KiB apart, distinct in every loop; memory touched and prefaulted before; which loop goes first alternates by round");
	j_int("rounds", n);
	j_int("without_ns", min_of(without, n));
	j_int("with_ns", min_of(with, n));
	j_int("without_ns_per_page", min_of(without, n) / INV_PAGES);
	j_int("with_ns_per_page", min_of(with, n) / INV_PAGES);
	j_ints("without_ns_rounds", without, n);
	j_ints("with_ns_rounds", with, n);
	j_ratio("ratio", min_of(with, n), min_of(without, n));
	j_num("goal_max_ratio", GOAL_INVAL);
	j_str("cpu_busy",
	      "busy time of all CPUs (/proc/stat, 10 ms ticks) from the start of a loop to 200 ms after its end: KVM's workers included");
	j_int("without_cpu_busy_ns", min_of(busy_without, n));
	j_int("with_cpu_busy_ns", min_of(busy_with, n));
	j_ints("without_cpu_busy_ns_rounds", busy_without, n);
	j_ints("with_cpu_busy_ns_rounds", busy_with, n);
	j_ratio("ratio_cpu_busy", min_of(busy_with, n),
		min_of(busy_without, n));
	j_end();
	printf("# (4) with / without a device: %.2fx (best of %d)\n",
	       (double)min_of(with, n) / min_of(without, n), n);
}

/* ------------------------------------------------------------------ */

int main(void)
{
	char bdf[256], line[256], cpu[256] = "unknown", thp[128] = "unknown";
	struct utsname u;
	char *colon;
	FILE *f;

	setvbuf(stdout, NULL, _IOLBF, 0);
	t_start = now();
	uname(&u);
	f = fopen("/proc/cpuinfo", "r");
	while (f && fgets(line, sizeof(line), f)) {
		colon = strchr(line, ':');
		if (!strncmp(line, "model name", 10) && colon) {
			snprintf(cpu, sizeof(cpu), "%s", colon + 1 + (colon[1] == ' '));
			break;
		}
	}
	if (f)
		fclose(f);
	sysfs_read("/sys/kernel/mm/transparent_hugepage/enabled", thp,
		   sizeof(thp));
	cpu[strcspn(cpu, "\n\"\\")] = 0;
	thp[strcspn(thp, "\n\"\\")] = 0;

	setup(bdf, sizeof(bdf));
	printf("# kvm_vtd_bench: edu %s, kernel %s, CPU %s, THP %s\n", bdf,
	       u.release, cpu, thp);
	j_begin("config");
	j_str("edu", bdf);
	j_str("kernel", u.release);
	j_str("cpu", cpu);
	j_str("thp_enabled", thp);
	j_int("rounds_planned", ROUNDS);
	j_str("times", "best round; all rounds listed");
	j_str("page_table_kB",
	      "SecPageTables deltas after vm.stat_refresh, from a baseline that held for 50 ms; the largest over rounds, all rounds listed");
	j_str("memory",
	      "anonymous memory (MAP_PRIVATE; THP, 4 KiB or 2 MiB hugetlb pages), pinned; in (3) also shared guest_memfd (4 KiB pages), mapped from the file by page reference, not pinned");
	j_end();

	bench_ready(256 * MIB);
	bench_ready(1024 * MIB);
	bench_attach(ANON_THP, 256 * MIB, 1024 * MIB);
	bench_attach(ANON_4K, 64 * MIB, 256 * MIB);
	bench_attach(HUGETLB, 64 * MIB, 256 * MIB);
	bench_attach(GMEM, 64 * MIB, 256 * MIB);
	bench_inval();

	j_begin("done");
	j_int("elapsed_ns", now() - t_start);
	j_end();
	printf("# kvm_vtd_bench: done in %.1f s\n", (now() - t_start) / 1e9);
	close(kvm);
	close(iommufd);
	close(dev);
	return 0;
}
