// SPDX-License-Identifier: GPL-2.0
/*
 * DMA through a VT-d domain that walks KVM's own table, in the kvm-domain
 * test VM (nested KVM, intel-iommu in scalable mode, QEMU's edu device).
 *
 * As a VMM: a VM with 64 MiB of RAM (slot 0: 48 MiB of 4 KiB pages at GPA 0,
 * slot 1: 16 MiB of 2 MiB hugetlb pages) and a vCPU in flat 32-bit protected
 * mode; edu bound to vfio-pci and attached through VFIO's cdev to a HWPT of
 * format IOMMU_HWPT_KVM_FORMAT_VTD_TDP (IOVA == GPA).  edu copies pages
 * between guest RAM and its buffer, checked through the host mapping and by
 * the vCPU; KVM retiring the vCPUs' roots must not matter (DMA lands as
 * before); then dirty logging (refused), MADV_DONTNEED, a memslot moved
 * and deleted (KVM_X86_QUIRK_SLOT_ZAP_ALL on) and the VM's file closing
 * must keep DMA off the memory; a memslot over
 * edu's own BAR0 serves the vCPU, and DMA to it faults; edu's PASID entry
 * forces snooping where its unit can (VFIO then tells KVM the device is
 * coherent); KSM merges none of the pinned pages.  A refused DMA
 * leaves no error in edu: every check uses poison.  Then VM 2, without
 * KVM_X86_QUIRK_SLOT_ZAP_ALL and without a vCPU: edu moved between an IOAS
 * and the KVM-backed HWPT by replacing its attachment; a memslot moved, deleted
 * and created under the attached device, memory unmapped under a memslot,
 * then DMA from a thread of its own
 * while the main thread drops pages, splits a huge page and deletes and
 * creates a memslot, with what the VM lost kept readable to prove that no
 * later DMA reached it; a memslot of shared guest_memfd, mapped from the
 * file, and a hole punched in it; private memory, and guest_memfd that KVM
 * uses only for private faults, refused; and a child without CAP_IPC_LOCK
 * whose table, and memslots created later, must fit in RLIMIT_MEMLOCK;
 * and VM 3, whose memslots start with a poisoned page (MADV_HWPOISON):
 * only that page stays unmapped for edu.
 * KVM builds the table as x86-64
 * paging (its own format under NPT) for a unit with first-stage translation
 * (ECAP.FLTS), and as EPT for one with second-stage translation only: the
 * whole test runs on both, and checks which table the unit walks.  KVM's
 * 5-level table under 5-level paging (LA57), which QEMU's first stage
 * cannot walk, must be refused.  Prints TAP.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* vmsplice() */
#endif
#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/const.h>
#include <linux/iommufd.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

#include "vmm_test.h"

#define PLAN_FULL	103
#define DOMAINS		"/sys/kernel/debug/iommu-kvm/domains"
#define PLAN_LA57	7
#define NR_MEMLOCK	12	/* step (f): the child's TAP lines */
#define NR_REFUSALS	4	/* step (j) */
#define NR_POISON	8	/* step (p) */

#define ECAP_FLTS	_BITULL(47)
#define ECAP_SC		_BITULL(7)

#define EDU_ID		0x00	/* 0x010000ed */
#define EDU_DMA_SRC	0x80
#define EDU_DMA_DST	0x88
#define EDU_DMA_CNT	0x90
#define EDU_DMA_CMD	0x98
#define EDU_CMD_RUN	0x1
#define EDU_CMD_TO_RAM	0x2
#define EDU_BUF		0x40000ULL

#define PG		4096ULL
#define SLOT0_SIZE	(48ULL << 20)
#define SLOT1_GPA	SLOT0_SIZE
#define SLOT1_SIZE	(16ULL << 20)
#define READ_GPA	0x1000ULL	/* the guest's two routines */
#define WRITE_GPA	0x1010ULL
#define SRC_GPA		0x4000ULL	/* scratch pages in slot 0 */
#define DST_GPA		0x5000ULL
#define DEAD_GPA	0x6000ULL	/* step (d) */
#define RETIRE_GPA	0x8000ULL	/* step (k) */
#define DROP_GPA	0x1005000ULL	/* step (b): a 2 MiB range of its own */
#define KSM_GPA		0x2000000ULL	/* step (o): 2 MiB of its own */
#define KSM_SIZE	(2ULL << 20)
#define GONE_OFF	0x201000ULL		/* step (c): in slot 1 */
#define GONE_GPA	(SLOT1_GPA + GONE_OFF)
#define SLOT1_MOVED	(128ULL << 20)
#define BAR_SLOT	2		/* step (l): edu's BAR0, after (c) */
#define BAR_GPA		(96ULL << 20)
#define PORT		0x3f8
#define NR_LOCS		6

/* VM 2, step (e): slot 0 for the controls; slot 2 moves and goes */
#define VM2_SLOT0_SIZE	(16ULL << 20)
#define SLOT2_GPA	(64ULL << 20)
#define SLOT2_MOVED	(128ULL << 20)
#define SLOT2_SIZE	(4ULL << 20)
#define SLOT3_GPA	(192ULL << 20)
#define SLOT3_SIZE	(2ULL << 20)
#define IN2		0x201000ULL	/* pages in slot 2: in its 2nd 2 MiB */
#define IN2B		0x3ff000ULL
#define IN3		0x1ff000ULL	/* the last page of slot 3 */
#define SLOT4_GPA	(256ULL << 20)	/* transparent huge pages */
#define SLOT4_SIZE	(4ULL << 20)
#define DROP4		0x3000ULL	/* dropped from its first 2 MiB */
#define KEEP4		0x1ff000ULL	/* the rest of those 2 MiB */
#define SLOT5_GPA	(320ULL << 20)	/* step (n): shared guest_memfd */
#define SLOT5_SIZE	(2ULL << 20)
#define IN5		0x3000ULL
#define LIMIT		(4ULL << 20)	/* step (f); the LA57 VM's memslot */
/* VM 3, step (p): slot 0 for the controls; slots 1 and 2 start poisoned */
#define VM3_SLOT0_SIZE	(16ULL << 20)
#define PSN1_GPA	(64ULL << 20)
#define PSN2_GPA	(66ULL << 20)
#define LA57_WHY	"cannot walk KVM's x86-64 table: a 5-level root, and the first stage walks 4 levels (FL5LP=0)"

/* Seeds of page patterns (see fill()); the poisons are seeds too */
#define POISON		0xdbdbdbdbU
#define POISON2		0xa5a5a5a5U
#define OLD		0x01d0000bU

static const unsigned char code[] = {
	0x8b, 0x03,	/* READ_GPA: mov (%ebx), %eax */
	0xef,		/* out %eax, (%dx) */
	0xf4,		/* hlt */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0x89, 0x03,	/* WRITE_GPA: mov %eax, (%ebx) */
	0xef,		/* out %eax, (%dx) */
	0xf4,		/* hlt */
};

/* Round trips A -> edu -> B: each place is a source once, a target once */
static const struct {
	__u64 a, b;
	const char *what;
} locs[NR_LOCS] = {
	{ 0x2000, SLOT1_GPA + SLOT1_SIZE - PG, "first page after the code" },
	{ 0x1803000, SLOT1_GPA, "a middle page of slot 0" },
	{ SLOT0_SIZE - PG, SLOT1_GPA + 0x7ff800, "the last page of slot 0" },
	{ SLOT1_GPA, 0x2000, "the first page of slot 1 (2 MiB pages)" },
	{ SLOT1_GPA + 0x7ff800, SLOT0_SIZE - PG, "4 KiB across two 2 MiB pages" },
	{ SLOT1_GPA + SLOT1_SIZE - PG, 0x1803000, "the last page of 64 MiB" },
};

static __u8 *bar;
static size_t bar_size, run_size;
static __u8 *mem0, *mem1;
/* The guest RAM of the VM under test, as hva() finds it */
static struct ram {
	__u64 gpa, size;
	__u8 *p;
} ram[2];
static struct kvm_run *run;
static int vcpu = -1;

/* ": <errno string>" after a failed call, else "" */
static const char *errstr(int ret)
{
	static char buf[80];

	if (!ret)
		return "";
	snprintf(buf, sizeof(buf), ": %s", strerror(errno));
	return buf;
}

static __u8 *hva(__u64 gpa)
{
	int i = gpa - ram[1].gpa < ram[1].size;

	return ram[i].p + (gpa - ram[i].gpa);
}

/* 64-bit words seed << 32 | index + 1: never 0, and they say whose they are */
static void fill(void *p, size_t len, __u32 seed)
{
	__u64 *w = p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = (__u64)seed << 32 | (i + 1);
}

/* How many words are those of fill(@seed) (@exact), or just of @seed */
static size_t match(const void *p, size_t len, __u32 seed, int exact)
{
	const __u64 *w = p;
	size_t i, n = 0;

	for (i = 0; i < len / 8; i++)
		n += exact ? w[i] == ((__u64)seed << 32 | (i + 1)) :
			     w[i] >> 32 == seed;
	return n;
}

static int is_fill(const void *p, size_t len, __u32 seed)
{
	return match(p, len, seed, 1) == len / 8;
}

static int is_zero(const void *p)
{
	static const __u8 zero[PG];

	return !memcmp(p, zero, PG);
}

static const char *what_is(const void *p, __u32 loaded, __u32 old)
{
	if (is_fill(p, PG, loaded))
		return "edu's buffer as loaded (the read did not complete)";
	if (is_zero(p))
		return "zeros (the read faulted)";
	return match(p, PG, old, 0) ? "the OLD contents" : "other data";
}

/*
 * The IOMMU's fault reports (DMAR: [DMA Read ...]) go to the console too:
 * let them out before the next TAP line, so that they cannot split it.
 */
static void settle(void)
{
	usleep(200000);
}

/* edu's registers: 32-bit reads, 64-bit writes (it takes both from 0x80) */
static __u32 edu_rd(unsigned int reg)
{
	return *(volatile __u32 *)(bar + reg);
}

static void edu_wr(unsigned int reg, __u64 val)
{
	*(volatile __u64 *)(bar + reg) = val;
}

/* One edu DMA of a page, polled for up to 10 s; edu takes 100 ms a DMA */
static int edu_dma_quiet(__u64 gpa, int to_ram)
{
	int i;

	edu_wr(EDU_DMA_SRC, to_ram ? EDU_BUF : gpa);
	edu_wr(EDU_DMA_DST, to_ram ? gpa : EDU_BUF);
	edu_wr(EDU_DMA_CNT, PG);
	edu_wr(EDU_DMA_CMD, EDU_CMD_RUN | (to_ram ? EDU_CMD_TO_RAM : 0));
	for (i = 0; edu_rd(EDU_DMA_CMD) & EDU_CMD_RUN; i++) {
		if (i == 10000)
			return -1;
		usleep(1000);
	}
	return 0;
}

/* The same, with the console drained first and a word if it hangs */
static int edu_dma(__u64 gpa, int to_ram)
{
	fflush(stdout);
	tcdrain(STDOUT_FILENO);
	if (!edu_dma_quiet(gpa, to_ram))
		return 0;
	printf("# edu DMA %s GPA 0x%llx did not complete\n",
	       to_ram ? "to" : "from", gpa);
	return -1;
}

#define ram_to_edu(gpa)	edu_dma(gpa, 0)
#define edu_to_ram(gpa)	edu_dma(gpa, 1)

/* Load edu's buffer with fill(@seed) and prove it: SRC -> edu -> DST */
static int edu_load(__u32 seed)
{
	fill(hva(SRC_GPA), PG, seed);
	fill(hva(DST_GPA), PG, POISON2);
	if (ram_to_edu(SRC_GPA) || edu_to_ram(DST_GPA) ||
	    !is_fill(hva(DST_GPA), PG, seed)) {
		printf("# control failed: DMA 0x%llx -> edu -> 0x%llx did not copy\n",
		       SRC_GPA, DST_GPA);
		return -1;
	}
	return 0;
}

/* Run a routine through its OUT (*val: what it put out) and its HLT */
static int vcpu_call(__u64 rip, __u64 gpa, __u32 in, __u32 *val)
{
	struct kvm_regs regs = {
		.rip = rip, .rbx = gpa, .rax = in, .rdx = PORT, .rflags = 0x2,
	};
	int ret;

	if (ioctl(vcpu, KVM_SET_REGS, &regs)) {
		printf("# KVM_SET_REGS: %s\n", strerror(errno));
		return -1;
	}
	ret = ioctl(vcpu, KVM_RUN, 0);
	if (ret || run->exit_reason != KVM_EXIT_IO ||
	    run->io.direction != KVM_EXIT_IO_OUT || run->io.port != PORT ||
	    run->io.size != 4 || run->io.count != 1) {
		printf("# vCPU at 0x%llx, EBX 0x%llx: no 4-byte OUT (%s, exit %u)\n",
		       rip, gpa, ret ? strerror(errno) : "ok",
		       run->exit_reason);
		return -1;
	}
	memcpy(val, (char *)run + run->io.data_offset, 4);
	ret = ioctl(vcpu, KVM_RUN, 0);
	if (ret || run->exit_reason != KVM_EXIT_HLT) {
		printf("# vCPU at 0x%llx: no HLT after the OUT (%s, exit %u)\n",
		       rip, ret ? strerror(errno) : "ok", run->exit_reason);
		return -1;
	}
	return 0;
}

static int vcpu_read(__u64 gpa, __u32 *val)
{
	return vcpu_call(READ_GPA, gpa, 0, val);
}

static int vcpu_write(__u64 gpa, __u32 val)
{
	__u32 out;

	return vcpu_call(WRITE_GPA, gpa, val, &out) || out != val ? -1 : 0;
}

/* The first edu device (else -1), the ECAP of its VT-d unit (else -2) */
static int edu_find_ecap(char *bdf, char *path, size_t len,
			 unsigned long long *ecap)
{
	char val[32];

	if (edu_find(bdf, len))
		return -1;
	snprintf(path, len, SYSPCI "/%s/iommu/intel-iommu/ecap", bdf);
	if (sysfs_read(path, val, sizeof(val)))
		return -2;
	*ecap = strtoull(val, NULL, 16);
	return 0;
}

/* BAR0 through the VFIO device; memory space and bus mastering on */
static int edu_map(int dev)
{
	struct vfio_region_info bar0 = {
		.argsz = sizeof(bar0), .index = VFIO_PCI_BAR0_REGION_INDEX,
	};
	struct vfio_region_info cfg = {
		.argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX,
	};
	__u16 cmd = 0;
	__u32 id;
	void *p;

	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &bar0) ||
	    ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg)) {
		printf("# VFIO_DEVICE_GET_REGION_INFO: %s\n", strerror(errno));
		return -1;
	}
	p = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev,
		 bar0.offset);
	if (p == MAP_FAILED) {
		printf("# mmap BAR0: %s\n", strerror(errno));
		return -1;
	}
	bar = p;
	bar_size = bar0.size;
	if (pread(dev, &cmd, 2, cfg.offset + 4) == 2) {
		cmd |= 0x6;
		if (pwrite(dev, &cmd, 2, cfg.offset + 4) != 2 ||
		    pread(dev, &cmd, 2, cfg.offset + 4) != 2)
			cmd = 0;
	}
	id = edu_rd(EDU_ID);
	printf("# edu ID 0x%08x, PCI command 0x%04x\n", id, cmd);
	return id == 0x010000ed && (cmd & 0x6) == 0x6 ? 0 : -1;
}

static __u8 *anon(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * @size bytes of anonymous memory on a 2 MiB boundary, transparent huge
 * pages asked for in its first @huge bytes and not in the rest; *@raw is
 * the mapping to unmap, 2 MiB longer. NULL if there is no memory.
 */
static __u8 *anon_2m(size_t size, size_t huge, __u8 **raw)
{
	__u8 *m;

	*raw = anon(size + (2ULL << 20));
	if (!*raw)
		return NULL;
	m = (__u8 *)(((unsigned long)*raw + (2UL << 20) - 1) &
		     ~((2UL << 20) - 1));
	madvise(m, huge, MADV_HUGEPAGE);
	if (huge < size)
		madvise(m + huge, size - huge, MADV_NOHUGEPAGE);
	return m;
}

/*
 * One TAP line: IOMMU_HWPT_ALLOC VTD_TDP for @vm, if @vm is a VM and
 * @ready, must fail with errno @err, named @name. A HWPT made all the
 * same is destroyed.
 */
static void alloc_fails(int iommufd, __u32 dev_id, int vm, int ready,
			int err, const char *name, const char *what)
{
	struct iommu_destroy destroy = { .size = sizeof(destroy) };
	int tried = vm >= 0 && ready, ret = 0, e = 0;

	if (tried) {
		ret = vtd_hwpt_alloc(iommufd, dev_id, vm, &destroy.id);
		e = errno;
		settle();	/* what the kernel logs about it */
	}
	tap(tried && ret && e == err,
	    "%s: IOMMU_HWPT_ALLOC VTD_TDP fails with %s (%s)", what, name,
	    !tried ? "not tried" : ret ? strerror(e) : "it succeeded");
	if (tried && !ret)
		ioctl(iommufd, IOMMU_DESTROY, &destroy);
}

/* Create, move (a new @gpa, same slot and size) or delete (@size 0) */
static int vm_slot(int vm, __u32 slot, __u64 gpa, __u64 size, void *p)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (unsigned long)p,
	};

	return ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r);
}

/* Slot 0 (4 KiB pages), slot 1 (2 MiB pages) and a flat 32-bit vCPU */
static int vm_create(int kvm, int vm, struct kvm_userspace_memory_region *r)
{
	struct kvm_segment seg = {
		.limit = 0xffffffff, .selector = 0x10, .type = 3, .present = 1,
		.db = 1, .s = 1, .g = 1,
	};
	struct kvm_sregs sregs;

	mem0 = mmap(NULL, SLOT0_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mem1 = mmap(NULL, SLOT1_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
		    21 << MAP_HUGE_SHIFT, -1, 0);
	if (mem0 == MAP_FAILED || mem1 == MAP_FAILED) {
		printf("# mmap guest RAM (%s): %s\n",
		       mem0 == MAP_FAILED ? "4 KiB pages" : "2 MiB hugetlb",
		       strerror(errno));
		return -1;
	}
	madvise(mem0, SLOT0_SIZE, MADV_NOHUGEPAGE);
	ram[0] = (struct ram){ 0, SLOT0_SIZE, mem0 };
	ram[1] = (struct ram){ SLOT1_GPA, SLOT1_SIZE, mem1 };
	memcpy(mem0 + READ_GPA, code, sizeof(code));
	r[0] = (struct kvm_userspace_memory_region) {
		.slot = 0, .memory_size = SLOT0_SIZE,
		.userspace_addr = (unsigned long)mem0,
	};
	r[1] = (struct kvm_userspace_memory_region) {
		.slot = 1, .guest_phys_addr = SLOT1_GPA,
		.memory_size = SLOT1_SIZE, .userspace_addr = (unsigned long)mem1,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r[0]) ||
	    ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r[1])) {
		printf("# KVM_SET_USER_MEMORY_REGION: %s\n", strerror(errno));
		return -1;
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu < 0 || (int)run_size <= 0 ||
	    ioctl(vcpu, KVM_GET_SREGS, &sregs)) {
		printf("# KVM_CREATE_VCPU: %s\n", strerror(errno));
		return -1;
	}
	run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	sregs.ds = seg;
	sregs.es = seg;
	sregs.fs = seg;
	sregs.gs = seg;
	sregs.ss = seg;
	seg.selector = 0x8;
	seg.type = 11;
	sregs.cs = seg;
	sregs.cr0 |= 1;	/* PE, no paging: linear == guest physical */
	if (run == MAP_FAILED || ioctl(vcpu, KVM_SET_SREGS, &sregs)) {
		printf("# vCPU setup: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Step 3: host pattern at A -> edu -> B; vCPU's writes at A -> edu -> B */
static void round_trips(int i)
{
	__u64 a = locs[i].a, b = locs[i].b;
	__u32 v0 = 0, v1 = 0, w0 = 0xc0de0000 + i, w1 = 0xfeed0000 + i;
	int dma, vok;

	fill(hva(a), PG, 0x5eed0000 + i);
	fill(hva(b), PG, POISON);
	dma = !ram_to_edu(a) && !edu_to_ram(b);
	vok = !vcpu_read(b, &v0) && !vcpu_read(b + PG - 4, &v1);
	printf("# vCPU reads 0x%08x at 0x%llx, 0x%08x at 0x%llx\n", v0,
	       b, v1, b + PG - 4);
	tap(dma && vok && is_fill(hva(b), PG, 0x5eed0000 + i) &&
	    !memcmp(&v0, hva(a), 4) && !memcmp(&v1, hva(a) + PG - 4, 4),
	    "DMA 0x%llx (%s) -> edu -> 0x%llx: host and vCPU see the pattern",
	    a, locs[i].what, b);

	fill(hva(b), PG, POISON);
	vok = !vcpu_write(a, w0) && !vcpu_write(a + PG - 4, w1);
	dma = !ram_to_edu(a) && !edu_to_ram(b);
	memcpy(&v0, hva(b), 4);
	memcpy(&v1, hva(b) + PG - 4, 4);
	printf("# host reads 0x%08x, 0x%08x at 0x%llx\n", v0, v1, b);
	tap(vok && dma && v0 == w0 && v1 == w1 && !memcmp(hva(b), hva(a), PG),
	    "vCPU writes 0x%08x, 0x%08x at 0x%llx, DMA -> edu -> 0x%llx: host sees them",
	    w0, w1, a, b);
}

/*
 * With edu's buffer loaded with fill(@seed): a DMA from @gpa, which must
 * no longer reach memory filled with @old, brings none of it back (and
 * does bring something: the copy to DST_GPA happens)
 */
static int dma_reads_none(__u64 gpa, __u32 seed, __u32 old)
{
	int ok;

	fill(hva(DST_GPA), PG, POISON2);
	ok = !ram_to_edu(gpa) && !edu_to_ram(DST_GPA) &&
	     !is_fill(hva(DST_GPA), PG, POISON2) &&
	     !match(hva(DST_GPA), PG, old, 0);
	settle();
	printf("# DMA from GPA 0x%llx gave %s\n", gpa,
	       what_is(hva(DST_GPA), seed, old));
	return ok;
}

/*
 * @mem (@size bytes, all POISON) left GPA @gpa, by a memslot change that
 * returned @ret: DMA to @gpa must not write it, DMA from @gpa not read it
 * (poisoned again, whatever the write did)
 */
static void dma_off(const char *what, int ret, __u64 gpa, __u8 *mem,
		    size_t size, __u32 seed)
{
	int ok = !ret && !edu_load(seed) && !edu_to_ram(gpa);

	settle();
	tap(ok && is_fill(mem, size, POISON),
	    "%s: DMA to GPA 0x%llx leaves its old memory alone", what, gpa);
	fill(mem, size, POISON);
	ok = !ret && !edu_load(seed + 1) &&
	     dma_reads_none(gpa, seed + 1, POISON);
	tap(ok, "%s: DMA from GPA 0x%llx does not read its old memory", what,
	    gpa);
}

/*
 * Step (k): KVM retires every root of the vCPUs: a change of kvm's
 * nx_huge_pages fast-zaps all roots of every VM, and it is changed and
 * changed back. The IOMMUs' table is no root: DMA lands where it did,
 * and the vCPU, on roots made anew, reads what the DMA wrote.
 */
#define NX_PARAM	"/sys/module/kvm/parameters/nx_huge_pages"

static void roots_retired(void)
{
	char old[16] = "", now[16] = "";
	const char *flip = "Y", *back = "N";
	__u32 v = 0;
	int ok;

	ok = !sysfs_read(NX_PARAM, old, sizeof(old));
	if (old[0] == 'Y') {
		flip = "N";
		back = "Y";
	}
	ok = ok && !sysfs_write(NX_PARAM, flip) &&
	     !sysfs_read(NX_PARAM, now, sizeof(now)) && now[0] == flip[0] &&
	     !sysfs_write(NX_PARAM, back);
	printf("# %s: %c, set to %s (read back %c), then to %s\n", NX_PARAM,
	       old[0] ? old[0] : '?', flip, now[0] ? now[0] : '?', back);
	fill(hva(RETIRE_GPA), PG, POISON);
	ok = ok && !edu_load(0x5eed0110) && !edu_to_ram(RETIRE_GPA);
	tap(ok && is_fill(hva(RETIRE_GPA), PG, 0x5eed0110),
	    "KVM retired its roots (nx_huge_pages changed and back): DMA to GPA 0x%llx lands as before",
	    RETIRE_GPA);
	ok = ok && !vcpu_read(RETIRE_GPA + 12, &v);
	tap(ok && !memcmp(&v, hva(RETIRE_GPA + 12), 4),
	    "the vCPU, on new roots, reads the DMA's 0x%08x at GPA 0x%llx",
	    v, RETIRE_GPA + 12);
}

/* Step 4 (a) to (c): what must keep DMA off memory */
static void safety(int vm, struct kvm_userspace_memory_region *r)
{
	int ret, e, ok, pre, zero, landed, mv;

	/* (a) dirty logging is refused while KVM keeps the table */
	r[0].flags = KVM_MEM_LOG_DIRTY_PAGES;
	ret = ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r[0]);
	e = errno;
	r[0].flags = 0;
	if (!ret && ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r[0]))
		printf("# turning dirty logging off again: %s\n", strerror(errno));
	tap(ret && e == EBUSY,
	    "KVM_MEM_LOG_DIRTY_PAGES on slot 0 while attached fails with EBUSY (%s)",
	    ret ? strerror(e) : "it succeeded");
	tap(!edu_load(0x5eed0100),
	    "DMA 0x%llx -> edu -> 0x%llx still copies after the refused change",
	    SRC_GPA, DST_GPA);

	/* (b) a page dropped with MADV_DONTNEED */
	fill(hva(DROP_GPA), PG, OLD);
	fill(hva(DST_GPA), PG, POISON2);
	pre = !ram_to_edu(DROP_GPA) && !edu_to_ram(DST_GPA) &&
	      is_fill(hva(DST_GPA), PG, OLD);
	printf("# before madvise, DMA reads GPA 0x%llx: %s\n", DROP_GPA,
	       pre ? "yes" : "NO");
	ret = madvise(hva(DROP_GPA), PG, MADV_DONTNEED);
	printf("# madvise(MADV_DONTNEED) at GPA 0x%llx%s\n", DROP_GPA,
	       errstr(ret));
	ok = pre && !ret && !edu_load(0x5eed0101) &&
	     dma_reads_none(DROP_GPA, 0x5eed0101, OLD);
	tap(ok, "after MADV_DONTNEED, DMA from GPA 0x%llx does not read the old page",
	    DROP_GPA);
	/* The host must not touch the page before this DMA */
	ok = !ret && !edu_load(0x5eed0102) && !edu_to_ram(DROP_GPA);
	settle();
	zero = is_zero(hva(DROP_GPA));
	landed = is_fill(hva(DROP_GPA), PG, 0x5eed0102);
	printf("# the page %s\n", zero ? "reads zero: the DMA faulted" :
	       landed ? "has the pattern: the DMA landed in the new page" :
	       "has other data");
	tap(ok && (zero || landed),
	    "after MADV_DONTNEED, DMA to GPA 0x%llx faults or lands in the new page",
	    DROP_GPA);

	/*
	 * (c) a memslot moved, then deleted, its memory still mapped, with
	 * KVM_X86_QUIRK_SLOT_ZAP_ALL on (VM 2 has it off)
	 */
	fill(mem1, SLOT1_SIZE, POISON);
	mv = vm_slot(vm, 1, SLOT1_MOVED, SLOT1_SIZE, mem1);
	tap(!mv, "slot 1 (2 MiB pages) moved to GPA 0x%llx, quirk on%s",
	    SLOT1_MOVED, errstr(mv));
	if (!mv)
		ram[1].gpa = SLOT1_MOVED;	/* for hva() */
	dma_off("slot 1 moved away, quirk on", mv, GONE_GPA, mem1, SLOT1_SIZE,
		0x5eed0108);
	ok = !mv && !edu_load(0x5eed010a) &&
	     !edu_to_ram(SLOT1_MOVED + GONE_OFF);
	settle();	/* if the new GPA faults */
	tap(ok && is_fill(mem1 + GONE_OFF, PG, 0x5eed010a),
	    "slot 1 moved, quirk on: DMA to GPA 0x%llx lands at offset 0x%llx of its memory",
	    SLOT1_MOVED + GONE_OFF, GONE_OFF);

	fill(mem1, SLOT1_SIZE, POISON);
	r[1].memory_size = 0;
	ret = ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r[1]);
	printf("# KVM_SET_USER_MEMORY_REGION deleting slot 1%s\n", errstr(ret));
	if (!ret)
		ram[1].size = 0;
	dma_off("slot 1 deleted", ret, (mv ? SLOT1_GPA : SLOT1_MOVED) + GONE_OFF,
		mem1, SLOT1_SIZE, 0x5eed0103);
}

/* /dev/kmsg, at its end: what the kernel logs from now on */
static int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0 || lseek(fd, 0, SEEK_END) < 0)
		printf("# /dev/kmsg: %s\n", strerror(errno));
	return fd;
}

/* Does a record of the kernel log from @fd's position on hold @a (and @b)? */
static int kmsg_has(int fd, const char *a, const char *b)
{
	char rec[8192], *msg;
	ssize_t n;

	while (fd >= 0) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;	/* records overwritten meanwhile */
		if (n <= 0)
			break;
		rec[n] = 0;
		rec[strcspn(rec, "\n")] = 0;
		msg = strchr(rec, ';');
		if (msg && strstr(msg, a) && (!b || strstr(msg, b))) {
			printf("# kernel: %s\n", msg + 1);
			return 1;
		}
	}
	return 0;
}

/* The IOMMU's report of a @dir ("Read", "Write") fault at @gpa, in 2 s */
static int dma_fault_logged(int fd, const char *dir, __u64 gpa)
{
	char type[32], addr[48];
	int i;

	snprintf(type, sizeof(type), "[DMA %s ", dir);
	snprintf(addr, sizeof(addr), "fault addr 0x%llx ", gpa);
	for (i = 0; i < 10; i++) {
		if (kmsg_has(fd, type, addr))
			return 1;
		usleep(200000);
	}
	return 0;
}

/*
 * Step (l): a memslot over edu's own BAR0, mapped through VFIO (VM_PFNMAP
 * and VM_IO), as a VMM gives its vCPUs an assigned device's registers.  It
 * is not RAM a device may reach, so KVM takes it while the table is in
 * use, the vCPU reaches the registers through it, and the table leaves it
 * out: DMA to and from its GPA faults, and the IOMMU says so.  QEMU may
 * keep a device's DMA off its own registers whatever the table holds, so
 * the fault report is what is checked, not edu's registers.  The driver's
 * fault messages share one limit of 10 lines in 5 s, two lines a fault:
 * wait for a fresh allowance first.
 */
static void bar_slot(int vm)
{
	__u32 id = 0;
	int ret, ok, kmsg;

	ret = vm_slot(vm, BAR_SLOT, BAR_GPA, bar_size, (void *)bar);
	tap(!ret,
	    "memslot %d over edu's BAR0 (VFIO mmap, VM_PFNMAP) at GPA 0x%llx taken with edu attached%s",
	    BAR_SLOT, BAR_GPA, errstr(ret));
	ok = !ret && !vcpu_read(BAR_GPA + EDU_ID, &id);
	tap(ok && id == 0x010000ed,
	    "the vCPU reads edu's ID 0x%08x through it", id);

	sleep(6);
	kmsg = kmsg_open();
	ok = !ret && !edu_load(0x5eed0120) && !edu_to_ram(BAR_GPA) &&
	     dma_fault_logged(kmsg, "Write", BAR_GPA);
	ok = ok && !ram_to_edu(BAR_GPA) &&
	     dma_fault_logged(kmsg, "Read", BAR_GPA);
	tap(ok && !edu_load(0x5eed0121),
	    "DMA to and from GPA 0x%llx (edu's BAR0) faults, and DMA to RAM still copies",
	    BAR_GPA);
	if (kmsg >= 0)
		close(kmsg);
	if (!ret && vm_slot(vm, BAR_SLOT, BAR_GPA, 0, (void *)bar))
		printf("# deleting memslot %d: %s\n", BAR_SLOT,
		       strerror(errno));
}

/* AnonHugePages of the mapping at @p, from /proc/self/smaps, in kB */
static long anon_huge_kb(const void *p)
{
	unsigned long lo, hi;
	char line[256];
	long kb = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (unsigned long)p >= lo && (unsigned long)p < hi;
		else if (in && sscanf(line, "AnonHugePages: %ld", &kb) == 1)
			break;
	}
	if (f)
		fclose(f);
	return kb;
}

/*
 * Step (g): a memslot of transparent huge pages (KVM maps them with 2 MiB
 * leaves). Dropping one 4 KiB page splits the host's huge page, and KVM
 * invalidates all of its 2 MiB: the rest must be mapped again for the
 * device, with no fault of its own, and the dropped page with the memory
 * that now backs it.
 */
static void thp_refill(int vm)
{
	size_t len = SLOT4_SIZE + (2ULL << 20);
	__u8 *raw, *m4 = anon_2m(SLOT4_SIZE, SLOT4_SIZE, &raw);
	long huge;
	int ret, ok;

	ret = !m4 || vm_slot(vm, 4, SLOT4_GPA, SLOT4_SIZE, m4);
	if (m4)
		fill(m4, SLOT4_SIZE, POISON);
	huge = m4 ? anon_huge_kb(m4) : -1;
	printf("# slot 4 at GPA 0x%llx%s: AnonHugePages %ld kB\n", SLOT4_GPA,
	       errstr(ret), huge);
	ok = !ret && !madvise(m4 + DROP4, PG, MADV_DONTNEED);
	usleep(500000);	/* KVM maps it again in a worker */
	printf("# after MADV_DONTNEED of one page: AnonHugePages %ld kB\n",
	       m4 ? anon_huge_kb(m4) : -1);
	ok = ok && !edu_load(0x5eed0208) && !edu_to_ram(SLOT4_GPA + KEEP4);
	settle();
	tap(ok && is_fill(m4 + KEEP4, PG, 0x5eed0208),
	    "VM 2: huge page split under slot 4: DMA to GPA 0x%llx, in the same 2 MiB, still lands",
	    SLOT4_GPA + KEEP4);
	ok = ok && !edu_load(0x5eed0209) && !edu_to_ram(SLOT4_GPA + DROP4);
	settle();
	tap(ok && is_fill(m4 + DROP4, PG, 0x5eed0209),
	    "VM 2: DMA to the dropped GPA 0x%llx lands in the page that backs it now",
	    SLOT4_GPA + DROP4);
	if (!ret)
		vm_slot(vm, 4, SLOT4_GPA, 0, m4);
	if (raw)
		munmap(raw, len);
}

/*
 * Step (h): DMA that runs while KVM zaps. A thread of its own drives edu
 * all along: it writes a page of fill(CHURN_SEED(epoch)) to each target
 * GPA in turn, loading edu's buffer again whenever the epoch changes. The
 * main thread meanwhile takes memory away from the VM, and moves to the
 * next epoch only when the call that took it has returned: drops a page
 * (which splits a huge page), drops all the huge page, drops a 4 KiB
 * page, deletes the memslot and creates it again over new memory. What
 * the VM lost stays readable to the test: a dropped page through a pipe
 * that vmsplice() gave a reference to, a memslot's old memory through its
 * mapping. None of it may ever hold a later epoch's pattern: DMA that
 * started after the memory left the VM must not reach it. Last, every
 * target must take the final epoch's DMA in the memory that backs it now.
 */
#define CHURN_SLOT	5
#define CHURN_GPA	(320ULL << 20)
#define CHURN_SIZE	(4ULL << 20)	/* 2 MiB of THP, then 4 KiB pages */
#define CHURN_HALF	(2ULL << 20)
#define CHURN_SCRATCH	0x7000ULL	/* the thread's page in slot 0 */
#define CHURN_SEED(e)	(0x5eed0400U + (e))
#define CHURN_ROUNDS	3
#define NR_TARGETS	6
#define NR_DROPS	(CHURN_ROUNDS * 5)

static const __u64 churn_off[NR_TARGETS] = {
	0x0, 0x101000, 0x1ff000,	/* in the huge page */
	0x200000, 0x2ff000, 0x3ff000,	/* in the 4 KiB half */
};

static struct {
	int epoch, stop, err;
	int done[NR_TARGETS];	/* the epoch of each target's last write */
	unsigned long writes;
} churn;

static void *churn_dma(void *arg)
{
	int loaded = -1, i = 0, e;

	(void)arg;
	while (!__atomic_load_n(&churn.stop, __ATOMIC_ACQUIRE)) {
		e = __atomic_load_n(&churn.epoch, __ATOMIC_ACQUIRE);
		if (e != loaded) {
			fill(hva(CHURN_SCRATCH), PG, CHURN_SEED(e));
			if (edu_dma_quiet(CHURN_SCRATCH, 0))
				break;
			loaded = e;
		}
		if (edu_dma_quiet(CHURN_GPA + churn_off[i], 1))
			break;
		__atomic_store_n(&churn.done[i], e, __ATOMIC_RELEASE);
		churn.writes++;
		i = (i + 1) % NR_TARGETS;
	}
	if (!__atomic_load_n(&churn.stop, __ATOMIC_ACQUIRE))
		__atomic_store_n(&churn.err, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* CHURN_SIZE of poisoned anonymous memory on a 2 MiB boundary (*@raw) */
static __u8 *churn_mem(__u8 **raw)
{
	__u8 *m = anon_2m(CHURN_SIZE, CHURN_HALF, raw);

	if (m)
		fill(m, CHURN_SIZE, POISON);
	return m;
}

/*
 * A pipe that holds a reference to the page at @p (its fd), or -1. The
 * page is written first: if it was dropped and not mapped again yet, it
 * gets the private page the table maps next, not the shared zero page
 * that vmsplice()'s read-only lookup would map, which no DMA can reach.
 */
static int churn_keep(__u8 *p)
{
	struct iovec iov = { .iov_base = p, .iov_len = PG };
	int fd[2];

	*(volatile __u64 *)p = 0;
	if (pipe(fd))
		return -1;
	if (vmsplice(fd[1], &iov, 1, 0) != (ssize_t)PG) {
		close(fd[0]);
		fd[0] = -1;
	}
	close(fd[1]);
	return fd[0];
}

/* The page a pipe from churn_keep() holds, into @page; 0 if read whole */
static int kept_page(int fd, __u8 *page)
{
	ssize_t n = fd < 0 ? -1 : read(fd, page, PG);

	if (fd >= 0)
		close(fd);
	return n == (ssize_t)PG ? 0 : -1;
}

/* The first epoch after @epoch whose pattern @p holds, or -1 */
static int churn_later(const __u8 *p, int epoch, int last)
{
	int e;

	for (e = epoch + 1; e <= last; e++)
		if (match(p, PG, CHURN_SEED(e), 0))
			return e;
	return -1;
}

/* Next epoch, and time for DMA to run into what just changed */
static void churn_next(void)
{
	__atomic_add_fetch(&churn.epoch, 1, __ATOMIC_RELEASE);
	usleep(400000);
}

static void churn_run(int vm)
{
	struct { int fd, epoch; __u64 off; } drop[NR_DROPS];
	struct { __u8 *raw, *m; int epoch; } old[CHURN_ROUNDS + 1];
	int nd = 0, no = 0, i, r, e, bad, checked, last, ok, ret;
	__u8 page[PG], *m;
	pthread_t thread;
	long huge;

	memset(&churn, 0, sizeof(churn));
	memset(old, 0, sizeof(old));
	m = churn_mem(&old[0].raw);
	old[0].m = m;
	ret = !m || vm_slot(vm, CHURN_SLOT, CHURN_GPA, CHURN_SIZE, m);
	huge = m ? anon_huge_kb(m) : -1;
	if (!ret && pthread_create(&thread, NULL, churn_dma, NULL)) {
		vm_slot(vm, CHURN_SLOT, CHURN_GPA, 0, m);
		ret = -1;
	}
	/* Its first 2 MiB must be a huge page, for the drops to split */
	tap(!ret && huge >= 2048,
	    "VM 2: slot 5, 4 MiB at GPA 0x%llx (AnonHugePages %ld kB, 2048 needed), and a thread that keeps edu writing to it%s",
	    CHURN_GPA, huge, errstr(ret));
	if (ret) {
		if (m)
			munmap(old[0].raw, CHURN_SIZE + CHURN_HALF);
		return;
	}
	usleep(400000);	/* the thread's first epoch */

	for (r = 0; r < CHURN_ROUNDS; r++) {
		__u64 t = churn_off[r % 3], u = churn_off[3 + r % 3];

		/* one page of the huge page: it splits, the rest stays */
		e = churn.epoch;
		drop[nd++] = (typeof(drop[0])){ churn_keep(m + t), e, t };
		madvise(m + t, PG, MADV_DONTNEED);
		churn_next();

		/* all of the huge page */
		e = churn.epoch;
		for (i = 0; i < 3; i++)
			drop[nd++] = (typeof(drop[0])){
				churn_keep(m + churn_off[i]), e, churn_off[i] };
		madvise(m, CHURN_HALF, MADV_DONTNEED);
		churn_next();

		/* one 4 KiB page */
		e = churn.epoch;
		drop[nd++] = (typeof(drop[0])){ churn_keep(m + u), e, u };
		madvise(m + u, PG, MADV_DONTNEED);
		churn_next();

		/* the memslot goes, and comes back over new memory */
		old[no++].epoch = churn.epoch;
		ret = vm_slot(vm, CHURN_SLOT, CHURN_GPA, 0, m);
		m = ret ? NULL : churn_mem(&old[no].raw);
		old[no].m = m;
		if (!m || vm_slot(vm, CHURN_SLOT, CHURN_GPA, CHURN_SIZE, m)) {
			printf("# slot 5 deleted%s, created again: %s\n",
			       errstr(ret), m ? strerror(errno) : "no memory");
			break;
		}
		churn_next();
	}

	/* The final epoch: every target once more, in today's memory */
	usleep(500000);	/* KVM's worker maps the dropped pages again */
	last = __atomic_add_fetch(&churn.epoch, 1, __ATOMIC_RELEASE);
	for (i = 0; i < 200 && !churn.err; i++) {
		int n = 0, j;

		for (j = 0; j < NR_TARGETS; j++)
			n += __atomic_load_n(&churn.done[j], __ATOMIC_ACQUIRE) == last;
		if (n == NR_TARGETS)
			break;
		usleep(50000);
	}
	__atomic_store_n(&churn.stop, 1, __ATOMIC_RELEASE);
	pthread_join(thread, NULL);
	settle();
	printf("# %d epochs, %lu DMA writes by the thread%s\n", last + 1,
	       churn.writes, churn.err ? ", which stopped on a DMA that did not complete" : "");

	bad = checked = 0;
	for (i = 0; i < nd; i++) {
		ok = !kept_page(drop[i].fd, page);
		if (!ok) {
			printf("# dropped page %d: no reference kept\n", i);
			bad++;
			continue;
		}
		checked++;
		e = churn_later(page, drop[i].epoch, last);
		if (e >= 0)
			printf("# the page dropped from offset 0x%llx in epoch %d holds epoch %d's DMA\n",
			       drop[i].off, drop[i].epoch, e);
		bad += e >= 0;
	}
	tap(nd == NR_DROPS && !bad,
	    "VM 2: %d pages dropped under DMA (%d kept by a pipe): none of them took a later DMA",
	    nd, checked);

	bad = checked = 0;
	for (i = 0; i < no; i++) {
		for (r = 0; r < NR_TARGETS; r++) {
			e = churn_later(old[i].m + churn_off[r], old[i].epoch,
					last);
			if (e >= 0)
				printf("# slot 5's memory %d, deleted in epoch %d, holds epoch %d's DMA at 0x%llx\n",
				       i, old[i].epoch, e, churn_off[r]);
			bad += e >= 0;
			checked++;
		}
	}
	tap(no == CHURN_ROUNDS && !bad,
	    "VM 2: slot 5 deleted and created %d times under DMA: none of %d old pages took a later DMA",
	    no, checked);

	ok = !churn.err && m;
	for (r = 0; ok && r < NR_TARGETS; r++) {
		if (!is_fill(m + churn_off[r], PG, CHURN_SEED(last))) {
			printf("# GPA 0x%llx after the churn: %s\n",
			       CHURN_GPA + churn_off[r],
			       is_fill(m + churn_off[r], PG, POISON) ?
			       "still poison" : "not the last epoch's data");
			ok = 0;
		}
	}
	tap(ok,
	    "VM 2: after the churn, DMA to each of %d GPAs of slot 5 lands in the memory that backs it now",
	    NR_TARGETS);

	if (m)
		vm_slot(vm, CHURN_SLOT, CHURN_GPA, 0, m);
	for (i = 0; i <= no && i <= CHURN_ROUNDS; i++)
		if (old[i].m)
			munmap(old[i].raw, CHURN_SIZE + CHURN_HALF);
}

/*
 * Step (i): an IOAS of two pages of the test's own at IOVA SLOT2_GPA (the
 * first two pages of slot 2 in VM 2), and edu switched between it and the
 * KVM-backed HWPT by replacing the attachment, never detaching: each
 * switch must send DMA to that IOVA where the new translation says, and
 * nowhere else. @io is the IOAS's memory, @m2 slot 2's.
 */
static int ioas_swap(int dev, int iommufd, __u32 hwpt, __u8 *io, __u8 *m2)
{
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.user_va = (unsigned long)io,
		.length = 2 * PG,
		.iova = SLOT2_GPA,
	};
	int ret, ok, i;

	ret = ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc);
	map.ioas_id = alloc.out_ioas_id;
	ret = ret || ioctl(iommufd, IOMMU_IOAS_MAP, &map);
	at.pt_id = alloc.out_ioas_id;
	ret = ret || ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	/* edu's buffer from the IOAS's first page, to its second */
	fill(io, PG, 0x5eed0300);
	fill(io + PG, PG, POISON);
	fill(m2, 2 * PG, POISON);
	ok = !ret && !ram_to_edu(SLOT2_GPA) && !edu_to_ram(SLOT2_GPA + PG);
	settle();
	tap(ok && is_fill(io + PG, PG, 0x5eed0300) && is_fill(m2, 2 * PG, POISON),
	    "VM 2: edu attached to an IOAS (ioas %u): DMA at IOVA 0x%llx reads and writes the IOAS's pages%s",
	    alloc.out_ioas_id, SLOT2_GPA, errstr(ret));
	if (ret)
		return ret;

	for (i = 0; i < 3; i++) {
		int to_kvm = !(i & 1);

		fill(io + PG, PG, POISON);
		fill(m2 + PG, PG, POISON);
		at.pt_id = to_kvm ? hwpt : alloc.out_ioas_id;
		ret = ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
		ok = !ret && !edu_to_ram(SLOT2_GPA + PG);
		settle();
		tap(ok && is_fill(to_kvm ? m2 + PG : io + PG, PG, 0x5eed0300) &&
		    is_fill(to_kvm ? io + PG : m2 + PG, PG, POISON),
		    "VM 2: replaced by %s without a detach: DMA to IOVA 0x%llx lands in %s only%s",
		    to_kvm ? "the KVM-backed HWPT" : "the IOAS again",
		    SLOT2_GPA + PG,
		    to_kvm ? "slot 2's memory" : "the IOAS's page", errstr(ret));
		if (ret)
			return ret;
	}
	/* The IOAS goes once nothing is attached to it */
	ret = ioctl(iommufd, IOMMU_DESTROY,
		    &(struct iommu_destroy){ .size = sizeof(struct iommu_destroy),
					     .id = alloc.out_ioas_id });
	if (ret)
		printf("# IOMMU_DESTROY ioas %u: %s\n", alloc.out_ioas_id,
		       strerror(errno));
	return 0;
}

/*
 * Step (m): the last page of slot 3's memory unmapped while the memslot
 * stays (munmap). DMA to its GPA must not reach the page, which a pipe
 * keeps (vmsplice()), nor DMA from it read the page. Memory mapped at the
 * same address afterwards is not seen by the table, as no notifier tells
 * KVM of an mmap(): DMA to it faults until the memslot is set again, and
 * lands in it once the memslot is deleted and created.
 */
static void unmapped(int vm, __u8 *m3)
{
	__u8 *p = m3 + IN3, page[PG];
	int fd, ok, ret;
	void *q;

	fd = churn_keep(p);
	fill(p, PG, OLD);
	ret = fd < 0 || munmap(p, PG);
	printf("# munmap of slot 3's last page%s\n", errstr(ret));
	settle();	/* KVM's refill tries to map it again, and cannot */
	ok = !ret && !edu_load(0x5eed0208) && !edu_to_ram(SLOT3_GPA + IN3);
	settle();
	ok = ok && !edu_load(0x5eed0209) &&
	     dma_reads_none(SLOT3_GPA + IN3, 0x5eed0209, OLD);
	tap(ok, "slot 3's page unmapped: DMA from GPA 0x%llx does not read it",
	    SLOT3_GPA + IN3);
	ok = !ret && !kept_page(fd, page);
	printf("# the unmapped page, through the pipe: %s\n",
	       ok ? what_is(page, 0x5eed0208, OLD) : "not read");
	tap(ok && is_fill(page, PG, OLD),
	    "slot 3's page unmapped: DMA to GPA 0x%llx did not reach it",
	    SLOT3_GPA + IN3);

	q = mmap(p, PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ok = q == p;
	if (ok)
		fill(p, PG, POISON);
	ok = ok && !edu_load(0x5eed020a) && !edu_to_ram(SLOT3_GPA + IN3);
	settle();
	tap(ok && is_fill(p, PG, POISON),
	    "new memory mapped at the same address: DMA to GPA 0x%llx faults, the memslot unchanged",
	    SLOT3_GPA + IN3);
	ret = !ok || vm_slot(vm, 3, SLOT3_GPA, 0, m3) ||
	      vm_slot(vm, 3, SLOT3_GPA, SLOT3_SIZE, m3);
	ok = !ret && !edu_load(0x5eed020b) && !edu_to_ram(SLOT3_GPA + IN3);
	settle();
	tap(ok && is_fill(p, PG, 0x5eed020b),
	    "slot 3 deleted and created again: DMA to GPA 0x%llx lands in the new memory%s",
	    SLOT3_GPA + IN3, errstr(ret));
}

/*
 * Step (n): a memslot of shared guest_memfd (GUEST_MEMFD_FLAG_MMAP and
 * GUEST_MEMFD_FLAG_INIT_SHARED), created under the attached edu: KVM maps
 * it from the file, as it does for the vCPUs, with page references and no
 * pin; the file has all of its pages already, so KVM takes them in bulk
 * (kvm_gmem_get_pages()). DMA lands in the file's pages and reads them, checked through the
 * VMM's own mapping of the file. A hole punched in the file takes a page
 * out of the VM; afterwards DMA to its GPA lands in the page the file has
 * there now (the old one is freed, so the check is that the new one gets
 * the bytes). Deleting the memslot makes DMA leave the file alone.
 */
/*
 * A memslot of shared guest_memfd for @r, mapped at *@p for the VMM too;
 * with @touch, every page of the file is written before the memslot is
 * made, so that KVM finds them all in the file
 */
static int shared_gmem(int vm, struct kvm_userspace_memory_region2 *r,
		       int touch, int *fd, __u8 **p)
{
	struct kvm_create_guest_memfd gmem = {
		.size = r->memory_size,
		.flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED,
	};

	*p = MAP_FAILED;
	*fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &gmem);
	if (*fd >= 0)
		*p = mmap(NULL, r->memory_size, PROT_READ | PROT_WRITE,
			  MAP_SHARED, *fd, 0);
	if (*fd < 0 || *p == MAP_FAILED) {
		printf("# KVM_CREATE_GUEST_MEMFD and its mmap: %s\n",
		       strerror(errno));
		return -1;
	}
	if (touch)
		fill(*p, r->memory_size, POISON);
	r->flags = KVM_MEM_GUEST_MEMFD;
	r->guest_memfd = *fd;
	r->userspace_addr = (unsigned long)*p;
	return ioctl(vm, KVM_SET_USER_MEMORY_REGION2, r);
}

/*
 * KVM's flushes of its table delivered to the live and dead KVM-backed
 * domains so far: the sum of their debugfs invalidations= counters
 */
static long long invalidations(void)
{
	FILE *f = fopen(DOMAINS, "r");
	long long sum = 0, n;
	char line[256], *c;

	while (f && fgets(line, sizeof(line), f)) {
		c = strstr(line, " invalidations=");
		if (c && sscanf(c, " invalidations=%lld", &n) == 1)
			sum += n;
	}
	if (f)
		fclose(f);
	return f ? sum : -1;
}

/*
 * The VMM's mapping of the file is not what KVM maps: dropping it
 * (MADV_DONTNEED, as a VMM that is done copying a guest's image might)
 * must leave the table alone, with no flush and no refill behind the
 * device's back. Any other flush in the window would be a coincidence:
 * it counts as a failure only if it happens three times running.
 */
static int dontneed_keeps(__u8 *p, size_t len)
{
	long long before, after;
	int i;

	for (i = 0; i < 3; i++) {
		before = invalidations();
		if (madvise(p, len, MADV_DONTNEED)) {
			printf("# madvise(MADV_DONTNEED): %s\n", strerror(errno));
			return 0;
		}
		after = invalidations();
		printf("# KVM's flushes to the domains: %lld before MADV_DONTNEED, %lld after\n",
		       before, after);
		if (before >= 0 && after == before)
			return 1;
	}
	return 0;
}

#define MEMCG		"/sys/fs/cgroup"
#define MEMCG_TEST	MEMCG "/kvm_vtd_dma"

/*
 * Move the test into a memory cgroup of its own (cgroup v2, mounted here
 * if init did not), or with !@in back to the one it was in
 */
static int memcg_enter(int in)
{
	static char home[512] = MEMCG "/cgroup.procs";
	char pid[32], line[256];
	FILE *f;

	snprintf(pid, sizeof(pid), "%d", getpid());
	if (!in) {
		sysfs_write(home, pid);
		return rmdir(MEMCG_TEST);
	}
	if (access(MEMCG "/cgroup.controllers", F_OK) &&
	    mount("cgroup2", MEMCG, "cgroup2", 0, NULL))
		printf("# mount cgroup2 on " MEMCG ": %s\n", strerror(errno));
	/* "0::<path>": where the test goes back to */
	f = fopen("/proc/self/cgroup", "r");
	if (f && fscanf(f, "0::%255s", line) == 1 && strcmp(line, "/"))
		snprintf(home, sizeof(home), MEMCG "%s/cgroup.procs", line);
	if (f)
		fclose(f);
	if ((mkdir(MEMCG_TEST, 0755) && errno != EEXIST) ||
	    sysfs_write(MEMCG "/cgroup.subtree_control", "+memory") ||
	    sysfs_write(MEMCG_TEST "/cgroup.procs", pid)) {
		printf("# memory cgroup " MEMCG_TEST ": %s\n", strerror(errno));
		rmdir(MEMCG_TEST);
		return -1;
	}
	return 0;
}

/* The test's memory cgroup's memory.current, in bytes; -1 if unread */
static long long memcg_current(void)
{
	FILE *f = fopen(MEMCG_TEST "/memory.current", "r");
	long long v = -1;

	if (f && fscanf(f, "%lld", &v) != 1)
		v = -1;
	if (f)
		fclose(f);
	return v;
}

static void gmem_shared(int vm)
{
	struct kvm_userspace_memory_region2 r = {
		.slot = 5,
		.guest_phys_addr = SLOT5_GPA,
		.memory_size = SLOT5_SIZE,
	};
	long long before, after, blur;
	int fd, ret, ok, cg;
	__u8 *p;

	/* The file's pages are charged to the VMM's memory cgroup */
	cg = memcg_enter(1);
	ret = shared_gmem(vm, &r, 1, &fd, &p);
	tap(!ret, "VM 2: slot 5, 2 MiB of shared guest_memfd at GPA 0x%llx, created with edu attached%s",
	    SLOT5_GPA, errstr(ret));

	if (!ret)
		fill(p + IN5, PG, POISON);
	ok = !ret && !edu_load(0x5eed0500) && !edu_to_ram(SLOT5_GPA + IN5);
	tap(ok && is_fill(p + IN5, PG, 0x5eed0500),
	    "guest_memfd: DMA to GPA 0x%llx lands in the file's page",
	    SLOT5_GPA + IN5);
	if (!ret)
		fill(p + IN5 + PG, PG, 0x5eed0501);
	fill(hva(DST_GPA), PG, POISON2);
	ok = !ret && !ram_to_edu(SLOT5_GPA + IN5 + PG) &&
	     !edu_to_ram(DST_GPA) && is_fill(hva(DST_GPA), PG, 0x5eed0501);
	tap(ok, "guest_memfd: DMA from GPA 0x%llx reads the file's page",
	    SLOT5_GPA + IN5 + PG);

	tap(!ret && dontneed_keeps(p, SLOT5_SIZE),
	    "guest_memfd: MADV_DONTNEED of the VMM's mapping of the file flushes nothing: KVM maps the file");

	/* The whole file: 2 MiB that KVM's refill takes from the file anew */
	before = memcg_current();
	ok = !ret && !fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				0, SLOT5_SIZE);
	if (!ret && !ok)
		printf("# fallocate(PUNCH_HOLE): %s\n", strerror(errno));
	settle();	/* KVM's refill maps the file's new pages */
	ok = ok && is_zero(p + IN5) && !edu_load(0x5eed0502) && !edu_to_ram(SLOT5_GPA + IN5);
	tap(ok && is_fill(p + IN5, PG, 0x5eed0502),
	    "guest_memfd: a hole punched over slot 5, then DMA to GPA 0x%llx lands in the file's new page",
	    SLOT5_GPA + IN5);
	/*
	 * DMA landed, so the refill took all 2 MiB of the chunk. Allocated
	 * by a worker, they must still be charged to the VM's owner's
	 * memory cgroup, which the punch uncharged them from. Per-CPU
	 * charge stocks, up to 64 pages a CPU, blur memory.current by as
	 * much: well under 2 MiB on the test VM's 2 CPUs.
	 */
	after = memcg_current();
	blur = sysconf(_SC_NPROCESSORS_ONLN) * 64 * (long long)PG;
	printf("# memory cgroup of the VMM: memory.current %lld before the punch, %lld after the refill, up to %lld in per-CPU stocks%s\n",
	       before, after, blur, cg ? " (no memory cgroup)" : "");
	tap(!cg && ok && blur < (long long)SLOT5_SIZE &&
	    before >= (long long)SLOT5_SIZE && after >= before - blur,
	    "guest_memfd: the 2 MiB KVM refilled are charged to the VMM's memory cgroup");

	if (!ret)
		fill(p, SLOT5_SIZE, POISON);
	r.memory_size = 0;
	ret = ret || ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r);
	ok = !ret && !edu_load(0x5eed0503) && !edu_to_ram(SLOT5_GPA + IN5);
	settle();
	tap(ok && is_fill(p, SLOT5_SIZE, POISON),
	    "guest_memfd: slot 5 deleted, DMA to GPA 0x%llx leaves the file alone%s",
	    SLOT5_GPA + IN5, errstr(ret));
	if (p != MAP_FAILED)
		munmap(p, SLOT5_SIZE);
	if (fd >= 0)
		close(fd);
	if (!cg)
		memcg_enter(0);
}

/*
 * Step 5 (e): VM 2, KVM_X86_QUIRK_SLOT_ZAP_ALL off and no vCPU, on the same
 * edu and iommufd: a memslot moves, goes and comes under the attached edu.
 * With the quirk off, deletion and move take kvm_unmap_gfn_range(), not
 * the fast zap of step (c).
 */
static void vm2(int kvm, int dev, int iommufd, __u32 dev_id)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_DISABLE_QUIRKS2,
		.args[0] = KVM_X86_QUIRK_SLOT_ZAP_ALL,
	};
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	struct vfio_device_detach_iommufd_pt det = { .argsz = sizeof(det) };
	struct iommu_destroy destroy = { .size = sizeof(destroy) };
	__u8 *m0 = anon(VM2_SLOT0_SIZE), *m2 = anon(SLOT2_SIZE);
	__u8 *m3 = anon(SLOT3_SIZE);	/* in no memslot until slot 3 */
	__u8 *io = NULL;
	int vm, q, ret, mv, ok;
	__u64 at2;
	__u32 hwpt = 0;

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	q = vm < 0 ? -1 : ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_DISABLE_QUIRKS2);
	printf("# VM 2%s, KVM_CHECK_EXTENSION(KVM_CAP_DISABLE_QUIRKS2) 0x%x\n",
	       errstr(vm < 0), q);
	ret = q < 0 || !(q & KVM_X86_QUIRK_SLOT_ZAP_ALL) ? -2 :
	      ioctl(vm, KVM_ENABLE_CAP, &cap);
	tap(!ret,
	    "VM 2: KVM_ENABLE_CAP KVM_CAP_DISABLE_QUIRKS2 turns KVM_X86_QUIRK_SLOT_ZAP_ALL off%s",
	    ret == -2 ? ": not offered" : errstr(ret));
	ret = vm < 0 || !m0 || !m2 || !m3 ||
	      vm_slot(vm, 0, 0, VM2_SLOT0_SIZE, m0) ||
	      vm_slot(vm, 2, SLOT2_GPA, SLOT2_SIZE, m2);
	tap(!ret, "VM 2: slot 0, 16 MiB at GPA 0; slot 2, 4 MiB at GPA 0x%llx%s",
	    SLOT2_GPA, errstr(ret));
	if (ret)
		goto out;
	/* edu_load()'s scratch pages are in VM 2's slot 0 from now on */
	ram[0] = (struct ram){ 0, VM2_SLOT0_SIZE, m0 };
	ram[1].size = 0;
	ret = vtd_hwpt_alloc(iommufd, dev_id, vm, &hwpt);
	tap(!ret, "VM 2: IOMMU_HWPT_ALLOC VTD_TDP: hwpt %u%s", hwpt,
	    errstr(ret));
	if (ret)
		goto out;
	destroy.id = hwpt;
	io = anon(2 * PG);
	ret = !io || ioas_swap(dev, iommufd, hwpt, io, m2);
	if (ret) {
		at.pt_id = hwpt;
		ret = ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	}
	tap(!ret, "VM 2: edu attached to hwpt %u%s", hwpt, errstr(ret));
	if (ret) {
		ioctl(iommufd, IOMMU_DESTROY, &destroy);
		goto out;
	}

	fill(m2 + IN2, PG, 0x5eed0200);
	fill(m2 + IN2B, PG, POISON);
	ok = !ram_to_edu(SLOT2_GPA + IN2) && !edu_to_ram(SLOT2_GPA + IN2B);
	tap(ok && is_fill(m2 + IN2B, PG, 0x5eed0200),
	    "VM 2: DMA 0x%llx -> edu -> 0x%llx, both in slot 2: host sees the pattern",
	    SLOT2_GPA + IN2, SLOT2_GPA + IN2B);

	/* The same memory at another GPA: the old one faults at once */
	mv = vm_slot(vm, 2, SLOT2_MOVED, SLOT2_SIZE, m2);
	tap(!mv, "VM 2: slot 2 moved to GPA 0x%llx, same memory%s",
	    SLOT2_MOVED, errstr(mv));
	fill(m2, SLOT2_SIZE, POISON);
	dma_off("slot 2 moved away", mv, SLOT2_GPA + IN2, m2, SLOT2_SIZE,
		0x5eed0201);
	ok = !mv && !edu_load(0x5eed0203) && !edu_to_ram(SLOT2_MOVED + IN2);
	settle();	/* if the new GPA faults */
	tap(ok && is_fill(m2 + IN2, PG, 0x5eed0203),
	    "slot 2 moved: DMA to GPA 0x%llx lands at offset 0x%llx of its memory",
	    SLOT2_MOVED + IN2, IN2);
	fill(m2 + IN2B, PG, 0x5eed0204);
	fill(hva(DST_GPA), PG, POISON2);
	ok = !mv && !ram_to_edu(SLOT2_MOVED + IN2B) && !edu_to_ram(DST_GPA);
	settle();
	tap(ok && is_fill(hva(DST_GPA), PG, 0x5eed0204),
	    "slot 2 moved: DMA from GPA 0x%llx reads offset 0x%llx of its memory",
	    SLOT2_MOVED + IN2B, IN2B);

	/* Deleted with the quirk off; wherever it is, if the move failed */
	at2 = mv ? SLOT2_GPA : SLOT2_MOVED;
	fill(m2, SLOT2_SIZE, POISON);
	ret = vm_slot(vm, 2, at2, 0, m2);
	printf("# KVM_SET_USER_MEMORY_REGION deleting slot 2%s\n", errstr(ret));
	dma_off("slot 2 deleted, quirk off", ret, at2 + IN2, m2, SLOT2_SIZE,
		0x5eed0205);

	/* Mapped before the ioctl returns: no vCPU, no IO page fault here */
	ok = !edu_load(0x5eed0207);
	fill(m3, SLOT3_SIZE, POISON);
	ret = vm_slot(vm, 3, SLOT3_GPA, SLOT3_SIZE, m3);
	ok = ok && !ret && !edu_to_ram(SLOT3_GPA + IN3);
	printf("# KVM_SET_USER_MEMORY_REGION creating slot 3%s\n", errstr(ret));
	settle();
	tap(ok && is_fill(m3 + IN3, PG, 0x5eed0207) &&
	    is_fill(m3, SLOT3_SIZE - PG, POISON),
	    "VM 2: slot 3 created at GPA 0x%llx: DMA to 0x%llx right after the ioctl lands",
	    SLOT3_GPA, SLOT3_GPA + IN3);

	unmapped(vm, m3);
	thp_refill(vm);
	churn_run(vm);
	gmem_shared(vm);

	ret = ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &det);
	tap(!ret, "VM 2: VFIO_DEVICE_DETACH_IOMMUFD_PT%s", errstr(ret));
	ret = ioctl(iommufd, IOMMU_DESTROY, &destroy);
	tap(!ret, "VM 2: IOMMU_DESTROY hwpt %u after detach%s", hwpt,
	    errstr(ret));
out:
	if (vm >= 0)
		close(vm);
	if (m0)
		munmap(m0, VM2_SLOT0_SIZE);
	if (m2)
		munmap(m2, SLOT2_SIZE);
	if (m3)
		munmap(m3, SLOT3_SIZE);
	if (io)
		munmap(io, 2 * PG);
}

/*
 * A guest_memfd memslot of 2 MiB at @gpa over @p: the ioctl's result. The
 * file has no GUEST_MEMFD_FLAG_MMAP: KVM would take only private faults
 * from it, and maps @p's memory for the rest
 */
static int gmem_slot(int vm, __u32 slot, __u64 gpa, void *p, int *fd)
{
	struct kvm_create_guest_memfd gmem = {
		.size = 2ULL << 20,
	};
	struct kvm_userspace_memory_region2 r = {
		.slot = slot,
		.flags = KVM_MEM_GUEST_MEMFD,
		.guest_phys_addr = gpa,
		.memory_size = 2ULL << 20,
		.userspace_addr = (unsigned long)p,
	};

	if (*fd < 0)
		*fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &gmem);
	if (*fd < 0) {
		printf("# KVM_CREATE_GUEST_MEMFD: %s\n", strerror(errno));
		return -2;
	}
	r.guest_memfd = *fd;
	return ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r);
}

/*
 * Step (j): memory the table refuses, with the errnos the uAPI page gives.
 * A VM with private memory (KVM_X86_SW_PROTECTED_VM), and a default VM
 * with a memslot of guest_memfd that KVM uses only for private faults (the
 * table cannot tell which memory KVM would map), get EOPNOTSUPP from
 * IOMMU_HWPT_ALLOC; while the table exists, such a memslot gets EBUSY,
 * and once the HWPT is gone the same memslot is taken. Shared guest_memfd
 * is taken: step (n).
 */
static void refusals(int kvm, int iommufd, __u32 dev_id)
{
	struct iommu_destroy destroy = { .size = sizeof(destroy) };
	__u8 *m = anon(2ULL << 20), *g = anon(2ULL << 20);
	int types, vm, ret, e, fd = -1;
	__u32 hwpt = 0;

	types = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
	vm = types < 0 || !(types & (1 << KVM_X86_SW_PROTECTED_VM)) ? -1 :
	     ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	printf("# KVM_CAP_VM_TYPES 0x%x\n", types);
	alloc_fails(iommufd, dev_id, vm,
		    m && !vm_slot(vm, 0, 0, 2ULL << 20, m), EOPNOTSUPP,
		    "EOPNOTSUPP", "KVM_X86_SW_PROTECTED_VM");
	if (vm >= 0)
		close(vm);

	/* A default VM: its RAM, and a guest_memfd memslot above */
	vm = !m || !g ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
	ret = vm < 0 ? -1 : vm_slot(vm, 0, 0, 2ULL << 20, m);
	ret = ret ? ret : gmem_slot(vm, 1, 4ULL << 20, g, &fd);
	printf("# default VM, slot 0 of anonymous memory, slot 1 of guest_memfd%s\n",
	       errstr(ret));
	alloc_fails(iommufd, dev_id, vm, !ret, EOPNOTSUPP, "EOPNOTSUPP",
		    "a memslot of guest_memfd without GUEST_MEMFD_FLAG_MMAP");

	/* The same VM without it: the table, then guest_memfd is refused */
	ret = vm < 0 || vm_slot(vm, 1, 4ULL << 20, 0, g) ? -1 :
	      vtd_hwpt_alloc(iommufd, dev_id, vm, &hwpt);
	if (ret)
		printf("# slot 1 deleted, IOMMU_HWPT_ALLOC VTD_TDP: %s\n",
		       strerror(errno));
	e = ret ? 0 : gmem_slot(vm, 1, 4ULL << 20, g, &fd);
	tap(!ret && e == -1 && errno == EBUSY,
	    "with the table in use, that guest_memfd memslot fails with EBUSY (%s)",
	    ret ? "no table" : e == -1 ? strerror(errno) : "it succeeded");
	destroy.id = hwpt;
	ret = ret || ioctl(iommufd, IOMMU_DESTROY, &destroy) ||
	      gmem_slot(vm, 1, 4ULL << 20, g, &fd);
	tap(!ret, "with the HWPT destroyed, the same memslot is taken%s",
	    errstr(ret));
	if (fd >= 0)
		close(fd);
	if (vm >= 0)
		close(vm);
	if (m)
		munmap(m, 2ULL << 20);
	if (g)
		munmap(g, 2ULL << 20);
}

/* What poison_page() caught: memory_failure() may send SIGBUS at once */
static siginfo_t bus_info;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_info = *si;
}

/* HardwareCorrupted of /proc/meminfo, in kB, else -1 */
#define hw_corrupted_kb()	read_key("/proc/meminfo", "HardwareCorrupted", ':')

/*
 * Poison the page at @p as a memory error would: MADV_HWPOISON has
 * memory_failure() unmap it and mark it, and a dirty page's user gets
 * SIGBUS (BUS_MCEERR_AR) on the way out of the call, which is caught
 * and noted; @p is not touched again. 0 if the call succeeded and
 * HardwareCorrupted grew by the page.
 */
static int poison_page(__u8 *p)
{
	struct sigaction sa = {
		.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO,
	}, old;
	long long before = hw_corrupted_kb(), after;
	int ret, e;

	memset(&bus_info, 0, sizeof(bus_info));
	sigaction(SIGBUS, &sa, &old);
	ret = madvise(p, PG, MADV_HWPOISON);
	e = errno;
	sigaction(SIGBUS, &old, NULL);
	after = hw_corrupted_kb();
	printf("# MADV_HWPOISON at %p: %s; SIGBUS si_code %d at %p; HardwareCorrupted %lld -> %lld kB\n",
	       (void *)p, ret ? strerror(e) : "done", bus_info.si_code,
	       bus_info.si_addr, before, after);
	return ret || before < 0 || after != before + (long long)(PG >> 10) ? -1 : 0;
}

/*
 * Step (p)'s DMA for the memslot at @gpa over @mem (2 MiB, POISON but its
 * first page, which is poisoned): DMA to the second and the last page
 * lands, DMA to the first faults, as the IOMMU reports.
 */
static void poison_dma(const char *what, __u64 gpa, __u8 *mem, __u32 seed)
{
	__u64 last = (2ULL << 20) - PG;
	int ok, kmsg;

	ok = !edu_load(seed) && !edu_to_ram(gpa + PG) &&
	     !edu_to_ram(gpa + last);
	settle();
	tap(ok && is_fill(mem + PG, PG, seed) && is_fill(mem + last, PG, seed),
	    "%s: DMA to GPA 0x%llx and 0x%llx, past the poisoned page, lands",
	    what, gpa + PG, gpa + last);
	kmsg = kmsg_open();
	ok = !edu_load(seed + 1) && !edu_to_ram(gpa) &&
	     dma_fault_logged(kmsg, "Write", gpa);
	tap(ok && !edu_load(seed + 2),
	    "%s: DMA to GPA 0x%llx, the poisoned page, faults, and DMA to RAM still copies",
	    what, gpa);
	if (kmsg >= 0)
		close(kmsg);
}

/*
 * Step (p): poisoned pages. A page whose memory failed is not RAM a
 * device may reach: the table leaves that frame alone unmapped and maps
 * the rest. GUP says so only when asked (FOLL_HWPOISON); else it gives
 * -EFAULT, which the table takes, at the first frame of a pin, for memory
 * that is not RAM, and skips to the end of the 2 MiB. So each poisoned
 * page is the first of 2 MiB at a 2 MiB GPA: VM 3's slot 1 has it before
 * the HWPT exists (IOMMU_HWPT_ALLOC's populate meets it), slot 2 gets it
 * before it is created under the attached edu (the memslot's commit).
 */
static void poisoned(int kvm, int dev, int iommufd, __u32 dev_id)
{
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	struct vfio_device_detach_iommufd_pt det = { .argsz = sizeof(det) };
	struct iommu_destroy destroy = { .size = sizeof(destroy) };
	__u8 *m0 = anon(VM3_SLOT0_SIZE), *raw = NULL;
	__u8 *p = anon_2m(4ULL << 20, 0, &raw);
	int vm, ret, e, end = test_num + NR_POISON;
	__u32 hwpt = 0;

	vm = !m0 || !p ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
	ret = vm < 0 || vm_slot(vm, 0, 0, VM3_SLOT0_SIZE, m0) ? -3 : 0;
	printf("# VM 3, slot 0 of 16 MiB at GPA 0%s\n", errstr(ret));
	if (!ret) {
		ram[0] = (struct ram){ 0, VM3_SLOT0_SIZE, m0 };
		ram[1].size = 0;
		fill(p, 4ULL << 20, POISON);
		ret = poison_page(p) ? -2 :
		      vm_slot(vm, 1, PSN1_GPA, 2ULL << 20, p);
	}
	tap(!ret, "VM 3: the first page of 2 MiB poisoned (MADV_HWPOISON), then slot 1 over it at GPA 0x%llx%s",
	    PSN1_GPA, ret == -2 ? ": not poisoned" :
		      ret == -3 ? ": no VM or no slot 0" : errstr(ret));
	if (ret)
		goto out;

	ret = vtd_hwpt_alloc(iommufd, dev_id, vm, &hwpt);
	destroy.id = hwpt;
	if (!ret) {
		at.pt_id = hwpt;
		ret = ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
		if (ret)
			ioctl(iommufd, IOMMU_DESTROY, &destroy);
	}
	tap(!ret, "VM 3: IOMMU_HWPT_ALLOC VTD_TDP and attach, with a poisoned page in slot 1: hwpt %u%s",
	    hwpt, errstr(ret));
	if (ret)
		goto out;
	sleep(6);	/* a fresh allowance of fault messages: step (l) */
	poison_dma("slot 1", PSN1_GPA, p, 0x5eed0300);

	ret = poison_page(p + (2ULL << 20)) ? -2 :
	      vm_slot(vm, 2, PSN2_GPA, 2ULL << 20, p + (2ULL << 20));
	tap(!ret, "VM 3: slot 2 at GPA 0x%llx, its first page poisoned before, created with edu attached%s",
	    PSN2_GPA, ret == -2 ? ": not poisoned" : errstr(ret));
	if (!ret)
		poison_dma("slot 2", PSN2_GPA, p + (2ULL << 20), 0x5eed0310);

	ret = ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &det);
	e = ret ? errno : 0;
	ret = ioctl(iommufd, IOMMU_DESTROY, &destroy) || ret;
	tap(!ret, "VM 3: VFIO_DEVICE_DETACH_IOMMUFD_PT, IOMMU_DESTROY hwpt %u%s%s",
	    hwpt, e ? ": detach: " : "", e ? strerror(e) : errstr(ret));
out:
	bail(end, "VM 3 not set up");
	if (vm >= 0)
		close(vm);
	if (m0)
		munmap(m0, VM3_SLOT0_SIZE);
	if (raw)
		munmap(raw, (4ULL << 20) + (2ULL << 20));
}

/*
 * A memslot change that must fail with @want; one that succeeds is undone,
 * so that the steps after it start from the same memslots
 */
static int slot_fails(int vm, __u32 slot, __u64 gpa, __u64 size, void *p,
		      int want)
{
	int ret = vm_slot(vm, slot, gpa, size, p), e = errno;

	printf("# child: slot %u at 0x%llx, %llu KiB: %s\n", slot,
	       (unsigned long long)gpa, (unsigned long long)size >> 10,
	       ret ? strerror(e) : "created");
	if (!ret)
		vm_slot(vm, slot, gpa, 0, p);
	return ret && e == want;
}

static int slot_enomem(int vm, __u32 slot, __u64 gpa, __u64 size, void *p)
{
	return slot_fails(vm, slot, gpa, size, p, ENOMEM);
}

/*
 * The host's MAXPHYADDR as KVM takes it (kvm_get_host_maxphyaddr()): CPUID
 * 0x80000008, which SME and MKTME do not reduce as they do /proc/cpuinfo's
 */
static int phys_bits(void)
{
	unsigned int a, b, c, d;

	if (!__get_cpuid(0x80000008, &a, &b, &c, &d))
		return 0;
	return a & 0xff;
}

/*
 * Step (f), memslots while the table exists and RLIMIT_MEMLOCK (4 MiB) is
 * used up by slot 0 (@p, 4 MiB at GPA 0): KVM must map a new memslot
 * before its ioctl returns, so one that does not fit in the limit is
 * refused with ENOMEM, as the attach would be, not left unmapped.  A
 * deletion gives its charge back; a move drops the old charge before it
 * checks the new one (3 MiB twice would not fit), and the moved memslot
 * holds exactly its 3 MiB: 1 MiB more fits, one page beyond does not.
 * A memslot KVM refuses anyway, here one beyond the host's physical
 * address width (kvm_mmu_max_gfn()) but within the table's reach, gets
 * KVM's EINVAL, not the IOMMUs' ENOMEM.  What can be pinned is counted,
 * not what cannot: a memslot of shared 2 MiB hugetlb pages (a hugetlbfs
 * file, which GUP pins) fails, one over edu's BAR0 (VFIO's VM_IO and
 * VM_PFNMAP mapping, inherited) is taken.
 */
static void memlock_slots(int vm, __u8 *p)
{
	const __u64 size = 3ULL << 20, gpa = 8ULL << 20, moved = 12ULL << 20;
	const __u64 rest = 1ULL << 20, rest_gpa = 16ULL << 20;
	const __u64 other_gpa = 32ULL << 20, huge = 2ULL << 20;
	__u8 *q = anon(size), *r = anon(rest + PG), *h;
	int ret, fits, phys = phys_bits();

	h = mmap(NULL, huge, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | 21 << MAP_HUGE_SHIFT,
		 -1, 0);
	if (h == MAP_FAILED) {
		printf("# child: mmap 2 MiB MAP_HUGETLB: %s\n", strerror(errno));
		h = NULL;
	}
	/* Without them, the parent counts this step's lines as failed */
	if (!q || !r || !bar) {
		printf("# child: no memory for the memslots\n");
		goto out;
	}
	/*
	 * Only where the table reaches 2^MAXPHYADDR (48 bits with 4 levels)
	 * would the check count the memslot, and refuse it with ENOMEM
	 */
	if (phys < 12 || phys >= 48)
		printf("ok %d child: a memslot at 2^MAXPHYADDR # SKIP MAXPHYADDR %d: not below the table's reach of 48 bits\n",
		       ++test_num, phys);
	else
		tap(slot_fails(vm, 2, 1ULL << phys, size, q, EINVAL),
		    "child: limit used up: a 3 MiB memslot at 2^%d, beyond the host's physical addresses, fails with KVM's EINVAL, not ENOMEM",
		    phys);
	tap(h && slot_enomem(vm, 4, other_gpa, huge, h),
	    "child: limit used up: a 2 MiB memslot of shared hugetlb memory (hugetlbfs), not faulted in, fails with ENOMEM%s",
	    h ? "" : ": no hugetlb memory");
	ret = vm_slot(vm, 4, other_gpa, bar_size, bar) ||
	      vm_slot(vm, 4, other_gpa, 0, bar);
	tap(!ret, "child: limit used up: a memslot over edu's BAR0 (VM_IO, VM_PFNMAP), not counted, is created and deleted%s",
	    errstr(ret));
	ret = !slot_enomem(vm, 2, gpa, size, q);
	tap(!ret, "child: limit used up: a new 3 MiB anonymous memslot fails with ENOMEM");
	ret = vm_slot(vm, 0, 0, 0, p) || vm_slot(vm, 2, gpa, size, q) ||
	      vm_slot(vm, 2, moved, size, q);
	tap(!ret, "child: with slot 0 deleted, the 3 MiB memslot is created, and moved, the old charge dropped first%s",
	    errstr(ret));
	ret = !slot_enomem(vm, 3, rest_gpa, rest + PG, r);
	fits = ret || vm_slot(vm, 3, rest_gpa, rest, r) ||
	       vm_slot(vm, 3, rest_gpa, 0, r);
	tap(!ret && !fits, "child: beside the moved 3 MiB, a 1 MiB + 4 KiB memslot fails with ENOMEM and a 1 MiB one fits%s",
	    ret ? "" : errstr(fits));
	ret = vm_slot(vm, 2, moved, 0, q) || vm_slot(vm, 0, 0, LIMIT, p);
	tap(!ret, "child: with the 3 MiB memslot deleted, slot 0 is created again%s",
	    errstr(ret));
out:
	if (q)
		munmap(q, size);
	if (r)
		munmap(r, rest + PG);
	if (h)
		munmap(h, huge);
}

/*
 * Step (f), in a child without CAP_IPC_LOCK: its VM's 4 MiB of anonymous
 * memory must fit in RLIMIT_MEMLOCK; its 2 MiB of shared guest_memfd,
 * which KVM does not pin, is not charged.  The test VM runs as root, whose
 * locked_vm is 0 here, so a limit of exactly 4 MiB after a refusal proves
 * that the refusal uncharged what it had charged, and that guest_memfd
 * costs nothing of it.  Its stdout is the parent's pipe.
 */
static void memlock_child(int kvm, int iommufd, __u32 dev_id)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct cap[_LINUX_CAPABILITY_U32S_3] = {};
	struct rlimit rl = { .rlim_cur = LIMIT - PG, .rlim_max = LIMIT };
	struct iommu_destroy destroy = { .size = sizeof(destroy) };
	const __u32 bit = 1U << CAP_IPC_LOCK;
	struct kvm_userspace_memory_region2 g = {
		.slot = 1, .guest_phys_addr = LIMIT, .memory_size = 2ULL << 20,
	};
	__u8 *p = anon(LIMIT), *gp;
	const char *why;
	__u32 hwpt = 0;
	int vm, ret, e, gfd;

	ret = syscall(SYS_capget, &hdr, cap);
	cap[0].effective &= ~bit;
	cap[0].permitted &= ~bit;
	ret = ret || syscall(SYS_capset, &hdr, cap);
	ret = ret || syscall(SYS_capget, &hdr, cap);
	why = errstr(ret);
	printf("# child: capget: effective 0x%08x, permitted 0x%08x\n",
	       cap[0].effective, cap[0].permitted);
	ret = ret || (cap[0].effective | cap[0].permitted) & bit;
	tap(!ret, "child: capset drops CAP_IPC_LOCK (effective, permitted), capget agrees%s",
	    why);
	if (ret)
		return;

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	ret = setrlimit(RLIMIT_MEMLOCK, &rl) || vm < 0 || !p ||
	      vm_slot(vm, 0, 0, LIMIT, p) || shared_gmem(vm, &g, 0, &gfd, &gp);
	tap(!ret, "child: RLIMIT_MEMLOCK 4 MiB - 4 KiB; its own VM, a 4 MiB anonymous memslot, 2 MiB of shared guest_memfd%s",
	    errstr(ret));
	if (ret)
		return;

	ret = vtd_hwpt_alloc(iommufd, dev_id, vm, &hwpt);
	e = errno;
	tap(ret && e == ENOMEM,
	    "child: IOMMU_HWPT_ALLOC VTD_TDP, 4 MiB to pin, fails with ENOMEM (%s)",
	    ret ? strerror(e) : "it succeeded");
	destroy.id = hwpt;
	if (!ret)
		ioctl(iommufd, IOMMU_DESTROY, &destroy);

	rl.rlim_cur = LIMIT;
	ret = setrlimit(RLIMIT_MEMLOCK, &rl) ||
	      vtd_hwpt_alloc(iommufd, dev_id, vm, &hwpt);
	tap(!ret, "child: at RLIMIT_MEMLOCK 4 MiB the same succeeds, guest_memfd not charged: hwpt %u%s",
	    hwpt, errstr(ret));
	if (ret)
		return;
	memlock_slots(vm, p);
	destroy.id = hwpt;
	ret = ioctl(iommufd, IOMMU_DESTROY, &destroy);
	tap(!ret, "child: IOMMU_DESTROY hwpt %u%s", hwpt, errstr(ret));
}

/* Step (f): the child's TAP lines, numbered as the parent's, count here */
static void memlock(int kvm, int iommufd, __u32 dev_id)
{
	int p[2], ok, status = -1, end = test_num + NR_MEMLOCK;
	char line[512], *desc;
	pid_t pid = -1;
	FILE *f;

	fflush(stdout);
	if (!pipe(p))
		pid = fork();
	if (!pid) {
		dup2(p[1], STDOUT_FILENO);
		memlock_child(kvm, iommufd, dev_id);
		bail(end, "a step of the child failed");
		fflush(stdout);
		_exit(0);
	}
	if (pid > 0)
		close(p[1]);
	f = pid > 0 ? fdopen(p[0], "r") : NULL;
	while (f && fgets(line, sizeof(line), f)) {
		ok = !strncmp(line, "ok ", 3);
		desc = ok || !strncmp(line, "not ok ", 7) ?
		       strchr(line + (ok ? 3 : 7), ' ') : NULL;
		line[strcspn(line, "\n")] = 0;
		if (desc && test_num < end)
			tap(ok, "%s", desc + 1);
		else
			printf("%s\n", line);
	}
	if (f)
		fclose(f);
	if (pid > 0)
		waitpid(pid, &status, 0);
	printf("# the child: pid %d, wait status 0x%x%s\n", pid, status,
	       errstr(pid < 0));
	bail(end, "the child stopped");
}

/*
 * 5-level paging: "address sizes : ... 57 bits virtual" in /proc/cpuinfo,
 * and the la57 flag, which the kernel clears unless it runs 5-level paging
 */
static int la57_paging(int *virt57, int *flag)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char buf[16384] = "";

	if (f) {
		buf[fread(buf, 1, sizeof(buf) - 1, f)] = 0;
		fclose(f);
	}
	*virt57 = !!strstr(buf, " bits physical, 57 bits virtual");
	*flag = !!strstr(buf, " la57");
	return *virt57 && *flag;
}

/*
 * The table KVM built is the one the unit's stage walks: x86-64 paging for
 * the first stage, EPT for the second (the domains' debugfs file says).
 */
static void table_format(int flts)
{
	const char *want = flts ? "table=x86-64 " : "table=ept ";
	FILE *f = fopen(DOMAINS, "r");
	char line[256];
	int found = 0;

	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, "table="))
			printf("# domains: %s", line);
		found |= !!strstr(line, want);
	}
	if (f)
		fclose(f);
	tap(found, "KVM built its table as %s, which the %s stage walks",
	    flts ? "x86-64 paging" : "EPT", flts ? "first" : "second");
}

#define KSM		"/sys/kernel/mm/ksm/"
#define KSM_SCANS	3

/* A number from sysfs or procfs, else -1 */
static long read_num(const char *path)
{
	char val[32];

	return sysfs_read(path, val, sizeof(val)) ? -1 : atol(val);
}

/* A counter of /proc/vmstat, else -1 */
#define vmstat_read(name)	read_key("/proc/vmstat", name, ' ')

/*
 * Step (o): KSM and the table's pins. KSM's merge of a page calls the MMU
 * notifiers first and only then compares the page's references with its
 * mappings: the pins must still be there, or KSM merges a page that edu
 * may write, and the refill, pinning it again for writing, unshares it
 * for the next scan to merge again. 2 MiB of identical 4 KiB pages of
 * slot 0 are made mergeable; ksmd scans them KSM_SCANS times over and
 * merges none (sampled from /proc/self/ksm_merging_pages, and no write
 * fault broke a merge: vmstat's cow_ksm), and DMA then still lands in the
 * VMM's page.
 */
static void ksm_merges_none(void)
{
	__u8 *p = hva(KSM_GPA);
	long start, scans = -1, most = 0, n, sharing, cow;
	long long flushes = invalidations();
	struct timespec t0, t1;
	int ret, i;

	fill(p, PG, 0x6b5a0001);
	for (i = 1; i < (int)(KSM_SIZE / PG); i++)
		memcpy(p + i * PG, p, PG);
	start = read_num(KSM "full_scans");
	cow = vmstat_read("cow_ksm");
	ret = start < 0 || cow < 0 || madvise(p, KSM_SIZE, MADV_MERGEABLE) ||
	      sysfs_write(KSM "pages_to_scan", "1024") ||
	      sysfs_write(KSM "sleep_millisecs", "0") ||
	      sysfs_write(KSM "run", "1");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Up to 60 s: a scan of the VM's memory takes some 1 s here */
	for (i = 0; !ret && i < 600; i++) {
		n = read_num("/proc/self/ksm_merging_pages");
		most = n > most ? n : most;
		scans = read_num(KSM "full_scans") - start;
		if (scans >= KSM_SCANS)
			break;
		usleep(100000);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	sharing = read_num(KSM "pages_sharing");
	cow = vmstat_read("cow_ksm") - cow;
	printf("# KSM: %ld full scans in %.1f s; ", scans,
	       t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	printf("this process's merged pages at most %ld, pages_sharing %ld, ",
	       most, sharing);
	printf("cow_ksm +%ld; the table flushed %lld times\n", cow,
	       invalidations() - flushes);
	tap(!ret && scans >= KSM_SCANS && !most && !sharing && !cow,
	    "KSM scans 2 MiB of identical pinned pages of slot 0 %d times and merges none%s",
	    KSM_SCANS, ret ? " (KSM not set up)" : "");
	/* Unmerge whatever it merged, and stop */
	sysfs_write(KSM "run", "2");
	madvise(p, KSM_SIZE, MADV_UNMERGEABLE);
	usleep(500000);	/* a page KSM took, KVM maps again in a worker */
	ret = edu_load(0x5eed0501) || edu_to_ram(KSM_GPA + PG);
	settle();
	tap(!ret && is_fill(p + PG, PG, 0x5eed0501),
	    "after KSM, DMA to GPA 0x%llx lands in the VMM's page",
	    KSM_GPA + PG);
}

#define DMAR_TABLES	"/sys/kernel/debug/iommu/intel/dmar_translation_struct"

/*
 * The PASID entry the unit walks for edu's requests without a PASID, from
 * the driver's dump of its tables (its quadwords 0-2): 0, or -1
 */
static int rid_pasid_entry(const char *bdf, unsigned long long val[3])
{
	FILE *f = fopen(DMAR_TABLES, "r");
	const char *short_bdf = strchr(bdf, ':') + 1;	/* no PCI domain */
	char line[512], *p;
	int ret = -1;

	if (!f) {
		printf("# %s: %s\n", DMAR_TABLES, strerror(errno));
		return -1;
	}
	while (ret && fgets(line, sizeof(line), f)) {
		int pasid;

		if (strncmp(line, short_bdf, strlen(short_bdf)))
			continue;
		/* B.D.F, root entry, context entry, PASID, PASID entry */
		p = strrchr(line, '\t');
		if (!p || p == line)
			continue;
		*p++ = 0;
		pasid = atoi(strrchr(line, '\t') ? strrchr(line, '\t') + 1 : "");
		if (pasid == 0 &&
		    sscanf(p, "0x%llx:0x%llx:0x%llx", &val[2], &val[1],
			   &val[0]) == 3)
			ret = 0;
	}
	fclose(f);
	return ret;
}

/* The flags= of the KVM-backed domain in the domains' debugfs file */
static long domain_flags(void)
{
	FILE *f = fopen(DOMAINS, "r");
	char line[256], *p;
	long flags = -1;

	while (f && fgets(line, sizeof(line), f)) {
		p = strstr(line, "flags=");
		if (p && strstr(line, "table="))
			flags = strtol(p + 6, NULL, 16);
	}
	if (f)
		fclose(f);
	return flags;
}

#define KVM_IOMMU_TDP_EPT_SNOOP	0x8	/* <linux/kvm_iommu.h> */

/*
 * edu's unit forces snooping if it can (SC): VFIO then tells KVM that the
 * device's DMA snoops, so the domain must make it so, or DMA with the
 * no-snoop attribute would bypass the CPU caches behind KVM. The first
 * stage does it with PGSNP (bit 88) in edu's PASID entry; the second with
 * the SNP bit in every leaf of KVM's EPT table (the domain's flags).
 */
static void check_snoop(const char *bdf, unsigned long long ecap, int flts)
{
	unsigned long long val[3];
	int sc = !!(ecap & ECAP_SC), pgsnp, snp;
	long flags = domain_flags();

	if (rid_pasid_entry(bdf, val) || flags < 0) {
		tap(0, "edu's PASID entry, from " DMAR_TABLES ", and the domain's flags");
		return;
	}
	pgsnp = !!(val[1] & (1ULL << 24));
	snp = !!(flags & KVM_IOMMU_TDP_EPT_SNOOP);
	printf("# edu's PASID entry 0x%016llx:0x%016llx:0x%016llx, domain flags %#lx\n",
	       val[2], val[1], val[0], flags);
	if (flts)
		tap(pgsnp == sc && !snp,
		    "the unit %s snoop control (SC=%d): edu's PASID entry %s snooping (PGSNP=%d)",
		    sc ? "has" : "has no", sc,
		    pgsnp ? "forces" : "does not force", pgsnp);
	else
		tap(snp == sc && !pgsnp,
		    "the unit %s snoop control (SC=%d): KVM's EPT leaves %s snooping (SNP)",
		    sc ? "has" : "has no", sc, snp ? "force" : "do not force");
}

int main(void)
{
	struct kvm_userspace_memory_region r[2];
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	struct vfio_device_detach_iommufd_pt det = { .argsz = sizeof(det) };
	struct iommu_hw_info info = { .size = sizeof(info) };
	struct iommu_destroy destroy = { .size = sizeof(destroy) };
	unsigned long long ecap = 0;
	int kvm, vm, dev, iommufd, ret, flts, planned, i, e;
	int la57, virt57, flag, kmsg;
	__u32 hwpt = 0, val = 0;
	char bdf[64], path[512];

	setvbuf(stdout, NULL, _IOLBF, 0);
	la57 = la57_paging(&virt57, &flag);
	ret = edu_find_ecap(bdf, path, sizeof(path), &ecap);
	e = errno;
	flts = !!(ecap & ECAP_FLTS);
	planned = la57 ? PLAN_LA57 : PLAN_FULL;
	printf("TAP version 13\n1..%d\n", planned);
	printf("# /proc/cpuinfo: %s57 bits virtual, la57 %s: %d-level paging\n",
	       virt57 ? "" : "not ", flag ? "set" : "clear", la57 ? 5 : 4);
	if (ret == -1)
		printf("# no edu device (1234:11e8) in " SYSPCI "\n");
	else if (ret)
		printf("# %s: %s\n", path, strerror(e));
	else
		printf("# %s: 0x%llx\n", path, ecap);
	if (ret)
		tap(0, "find edu and the ECAP of its VT-d unit");
	else
		tap(1, "edu at %s, its VT-d unit has %s translation", bdf,
		    flts ? "first-stage" : "second-stage only");
	if (ret)
		return bail(planned, "no edu device or no VT-d unit");

	dev = edu_open(bdf);
	tap(dev >= 0, "edu bound to vfio-pci, its VFIO cdev open");
	if (dev < 0)
		return bail(planned, "no VFIO device");

	iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	bind.iommufd = iommufd;
	ret = iommufd < 0 ? -1 : ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind);
	tap(!ret, "open /dev/iommu, VFIO_DEVICE_BIND_IOMMUFD: dev_id %u%s",
	    bind.out_devid, errstr(ret));
	if (ret)
		return bail(planned, "edu not bound to iommufd");

	info.dev_id = bind.out_devid;
	ret = ioctl(iommufd, IOMMU_GET_HW_INFO, &info);
	printf("# out_kvm_formats 0x%llx, out_kvm_shadow_formats 0x%llx\n",
	       (unsigned long long)info.out_kvm_formats,
	       (unsigned long long)info.out_kvm_shadow_formats);
	tap(!ret && (info.out_kvm_formats &
		     _BITULL(IOMMU_HWPT_KVM_FORMAT_VTD_TDP)),
	    "IOMMU_GET_HW_INFO: VTD_TDP offered%s", errstr(ret));

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		printf("# /dev/kvm, KVM_CREATE_VM: %s\n", strerror(errno));
	if (la57) {
		/* KVM's table has 5 levels, QEMU's first stage walks 4 */
		mem0 = anon(LIMIT);
		ret = vm < 0 || !mem0 || vm_slot(vm, 0, 0, LIMIT, mem0);
		tap(!ret, "VM with one 4 MiB anonymous memslot%s", errstr(ret));
		if (ret)
			return bail(planned, "no VM");
		kmsg = kmsg_open();
		alloc_fails(iommufd, bind.out_devid, vm, 1, EINVAL, "EINVAL",
			    "under 5-level paging");
		tap(kmsg_has(kmsg, LA57_WHY, NULL),
		    "the kernel log says why: \"%s\"", LA57_WHY);
		return failed ? 1 : 0;
	}

	ret = vm < 0 ? -1 : vm_create(kvm, vm, r);
	tap(!ret, "VM: 48 MiB of 4 KiB pages at GPA 0, 16 MiB of 2 MiB pages above, a vCPU");
	if (ret)
		return bail(planned, "no VM");

	fill(hva(0x2000), PG, 0x5eed00ff);
	ret = vcpu_read(0x2000, &val) || vcpu_write(0x2008, 0xc0ffee);
	printf("# vCPU reads 0x%08x at 0x2000\n", val);
	tap(!ret && !memcmp(&val, hva(0x2000), 4) &&
	    *(__u32 *)hva(0x2008) == 0xc0ffee,
	    "vCPU in flat 32-bit protected mode reads and writes guest RAM");
	if (ret)
		return bail(planned, "the vCPU does not run");

	ret = edu_map(dev);
	tap(!ret, "edu BAR0 mapped through VFIO, ID 0x010000ed, bus mastering on");
	if (ret)
		return bail(planned, "no edu registers");

	ret = vtd_hwpt_alloc(iommufd, bind.out_devid, vm, &hwpt);
	tap(!ret, "IOMMU_HWPT_ALLOC IOMMU_HWPT_DATA_KVM VTD_TDP: hwpt %u%s",
	    hwpt, errstr(ret));
	if (ret)
		return bail(planned, "no KVM-backed HWPT");
	at.pt_id = hwpt;
	ret = ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	tap(!ret, "VFIO_DEVICE_ATTACH_IOMMUFD_PT hwpt %u%s", hwpt, errstr(ret));
	if (ret)
		return bail(planned, "edu not attached");
	table_format(flts);
	check_snoop(bdf, ecap, flts);

	for (i = 0; i < NR_LOCS; i++)
		round_trips(i);
	roots_retired();
	safety(vm, r);
	bar_slot(vm);
	ksm_merges_none();

	/* (d) the VM's file closed under the attached device */
	ret = edu_load(0x5eed0105);
	fill(hva(DEAD_GPA), PG, POISON);
	munmap(run, run_size);
	close(vcpu);
	close(vm);
	ret = ret || edu_to_ram(DEAD_GPA);
	settle();
	tap(!ret && is_fill(hva(DEAD_GPA), PG, POISON),
	    "VM and vCPU closed: DMA to GPA 0x%llx leaves the memory alone",
	    DEAD_GPA);

	ret = ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &det);
	tap(!ret, "VFIO_DEVICE_DETACH_IOMMUFD_PT%s", errstr(ret));
	destroy.id = hwpt;
	ret = ioctl(iommufd, IOMMU_DESTROY, &destroy);
	tap(!ret, "IOMMU_DESTROY hwpt %u after detach%s", hwpt, errstr(ret));
	munmap(mem0, SLOT0_SIZE);
	munmap(mem1, SLOT1_SIZE);

	vm2(kvm, dev, iommufd, bind.out_devid);
	bail(PLAN_FULL - NR_MEMLOCK - NR_REFUSALS - NR_POISON,
	     "VM 2 not set up");
	refusals(kvm, iommufd, bind.out_devid);
	poisoned(kvm, dev, iommufd, bind.out_devid);
	memlock(kvm, iommufd, bind.out_devid);

	munmap((void *)bar, bar_size);
	close(dev);
	close(iommufd);
	close(kvm);
	return failed ? 1 : 0;
}
