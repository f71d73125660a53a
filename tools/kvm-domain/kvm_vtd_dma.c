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
 * the vCPU; then dirty logging (refused), MADV_DONTNEED, memslot deletion
 * and the VM's file closing must keep DMA off the memory.  A refused DMA
 * leaves no error in edu: every check uses poison.  Without first-stage
 * translation (ECAP.FLTS) the format must be refused.  Prints TAP.
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
#include <termios.h>
#include <unistd.h>
#include <linux/const.h>
#include <linux/iommufd.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

#define PLAN_FULL	30
#define PLAN_SL		5

#define SYSPCI		"/sys/bus/pci/devices"
#define ECAP_FLTS	_BITULL(47)

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
#define DROP_GPA	0x1005000ULL	/* step (b): a 2 MiB range of its own */
#define GONE_GPA	(SLOT1_GPA + 0x201000)	/* step (c) */
#define PORT		0x3f8
#define NR_LOCS		6

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

static int test_num;
static int failed;
static __u8 *bar;
static size_t bar_size, run_size;
static __u8 *mem0, *mem1;
static struct kvm_run *run;
static int vcpu = -1;

static void tap(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d ", ok ? "" : "not ", ++test_num);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok)
		failed++;
}

/* Report the remaining tests as failed: a step they need did not work. */
static int bail(int planned, const char *why)
{
	while (test_num < planned)
		tap(0, "step %d # not reached: %s", test_num + 1, why);
	return 1;
}

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
	return gpa < SLOT1_GPA ? mem0 + gpa : mem1 + (gpa - SLOT1_GPA);
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
static int edu_dma(__u64 gpa, int to_ram)
{
	int i;

	fflush(stdout);
	tcdrain(STDOUT_FILENO);
	edu_wr(EDU_DMA_SRC, to_ram ? EDU_BUF : gpa);
	edu_wr(EDU_DMA_DST, to_ram ? gpa : EDU_BUF);
	edu_wr(EDU_DMA_CNT, PG);
	edu_wr(EDU_DMA_CMD, EDU_CMD_RUN | (to_ram ? EDU_CMD_TO_RAM : 0));
	for (i = 0; edu_rd(EDU_DMA_CMD) & EDU_CMD_RUN; i++) {
		if (i == 10000) {
			printf("# edu DMA %s GPA 0x%llx did not complete\n",
			       to_ram ? "to" : "from", gpa);
			return -1;
		}
		usleep(1000);
	}
	return 0;
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

static int sysfs_read(const char *path, char *buf, int len)
{
	FILE *f = fopen(path, "r");
	int ok = f && fgets(buf, len, f);

	if (f)
		fclose(f);
	return ok ? 0 : -1;
}

static int sysfs_write(const char *path, const char *val)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(val, f);
	return fclose(f) ? -1 : 0;
}

/* The first edu device (else -1), the ECAP of its VT-d unit (else -2) */
static int edu_find(char *bdf, char *path, size_t len, unsigned long long *ecap)
{
	char ven[32], dev[32];
	struct dirent *e;
	DIR *d;
	int ret = -1;

	d = opendir(SYSPCI);
	while (d && ret && (e = readdir(d))) {
		snprintf(path, len, SYSPCI "/%s/vendor", e->d_name);
		if (sysfs_read(path, ven, sizeof(ven)))
			continue;
		snprintf(path, len, SYSPCI "/%s/device", e->d_name);
		if (sysfs_read(path, dev, sizeof(dev)) ||
		    strcmp(ven, "0x1234\n") || strcmp(dev, "0x11e8\n"))
			continue;
		snprintf(bdf, len, "%s", e->d_name);
		ret = 0;
	}
	if (d)
		closedir(d);
	if (ret)
		return -1;
	snprintf(path, len, SYSPCI "/%s/iommu/intel-iommu/ecap", bdf);
	if (sysfs_read(path, ven, sizeof(ven)))
		return -2;
	*ecap = strtoull(ven, NULL, 16);
	return 0;
}

/* Bind @bdf to vfio-pci if it is not, and open its VFIO cdev */
static int edu_open(const char *bdf)
{
	char path[512], link[512], cdev[300];
	const char *drv;
	struct dirent *e;
	ssize_t n;
	DIR *d;
	int fd = -1;

	snprintf(path, sizeof(path), SYSPCI "/%s/driver", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	drv = strrchr(link, '/');
	drv = n <= 0 ? "no driver" : drv ? drv + 1 : link;
	printf("# %s: driver %s\n", bdf, drv);
	if (strcmp(drv, "vfio-pci")) {
		if (access("/sys/bus/pci/drivers/vfio-pci", F_OK) &&
		    system("modprobe vfio-pci >/dev/null 2>&1"))
			printf("# modprobe vfio-pci failed (ignored)\n");
		snprintf(path, sizeof(path), SYSPCI "/%s/driver_override", bdf);
		if (sysfs_write(path, "vfio-pci"))
			printf("# %s: %s\n", path, strerror(errno));
		snprintf(path, sizeof(path), SYSPCI "/%s/driver/unbind", bdf);
		if (n > 0 && sysfs_write(path, bdf))
			printf("# %s: %s\n", path, strerror(errno));
		if (sysfs_write("/sys/bus/pci/drivers_probe", bdf))
			printf("# drivers_probe: %s\n", strerror(errno));
	}
	snprintf(path, sizeof(path), SYSPCI "/%s/vfio-dev", bdf);
	d = opendir(path);
	if (!d)
		printf("# %s: %s\n", path, strerror(errno));
	while (d && fd < 0 && (e = readdir(d))) {
		if (strncmp(e->d_name, "vfio", 4))
			continue;
		snprintf(cdev, sizeof(cdev), "/dev/vfio/devices/%s", e->d_name);
		fd = open(cdev, O_RDWR | O_CLOEXEC);
		printf("# open %s%s\n", cdev, errstr(fd < 0));
		if (fd < 0)
			break;
	}
	if (d)
		closedir(d);
	return fd;
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

static int hwpt_alloc(int iommufd, __u32 dev_id, int vm, __u32 *id)
{
	struct iommu_hwpt_kvm data = {
		.kvm_fd = vm,
		.format = IOMMU_HWPT_KVM_FORMAT_VTD_TDP,
		.data_type = IOMMU_HWPT_KVM_DATA_NONE,
	};
	struct iommu_hwpt_alloc alloc = {
		.size = sizeof(alloc),
		.dev_id = dev_id,
		.data_type = IOMMU_HWPT_DATA_KVM,
		.data_len = sizeof(data),
		.data_uptr = (unsigned long)&data,
	};
	int ret = ioctl(iommufd, IOMMU_HWPT_ALLOC, &alloc);

	*id = alloc.out_hwpt_id;
	return ret;
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

/* Step 4 (a) to (c): what must keep DMA off memory */
static void safety(int vm, struct kvm_userspace_memory_region *r)
{
	int ret, e, ok, pre, zero, landed;

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
	ok = pre && !ret && !edu_load(0x5eed0101);
	if (ok) {
		fill(hva(DST_GPA), PG, POISON2);
		ok = !ram_to_edu(DROP_GPA) && !edu_to_ram(DST_GPA) &&
		     !is_fill(hva(DST_GPA), PG, POISON2) &&
		     !match(hva(DST_GPA), PG, OLD, 0);
		settle();
		printf("# DMA from the dropped page gave %s\n",
		       what_is(hva(DST_GPA), 0x5eed0101, OLD));
	}
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

	/* (c) a deleted memslot, its memory still mapped */
	fill(mem1, SLOT1_SIZE, POISON);
	r[1].memory_size = 0;
	ret = ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r[1]);
	printf("# KVM_SET_USER_MEMORY_REGION deleting slot 1%s\n", errstr(ret));
	ok = !ret && !edu_load(0x5eed0103) && !edu_to_ram(GONE_GPA);
	settle();
	tap(ok && is_fill(mem1, SLOT1_SIZE, POISON),
	    "slot 1 deleted: DMA to GPA 0x%llx leaves its old memory alone",
	    GONE_GPA);
	ok = !ret && !edu_load(0x5eed0104);
	if (ok) {
		fill(hva(DST_GPA), PG, POISON2);
		ok = !ram_to_edu(GONE_GPA) && !edu_to_ram(DST_GPA) &&
		     !is_fill(hva(DST_GPA), PG, POISON2) &&
		     !match(hva(DST_GPA), PG, POISON, 0);
		settle();
		printf("# DMA from the deleted slot gave %s\n",
		       what_is(hva(DST_GPA), 0x5eed0104, POISON));
	}
	tap(ok, "slot 1 deleted: DMA from GPA 0x%llx does not read its old memory",
	    GONE_GPA);
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
	__u32 hwpt = 0, val = 0;
	char bdf[64], path[512];

	setvbuf(stdout, NULL, _IOLBF, 0);
	ret = edu_find(bdf, path, sizeof(path), &ecap);
	e = errno;
	flts = !!(ecap & ECAP_FLTS);
	planned = !ret && !flts ? PLAN_SL : PLAN_FULL;
	printf("TAP version 13\n1..%d\n", planned);
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
	tap(!ret && !!(info.out_kvm_formats &
		       _BITULL(IOMMU_HWPT_KVM_FORMAT_VTD_TDP)) == flts,
	    "IOMMU_GET_HW_INFO: VTD_TDP %s%s",
	    flts ? "offered" : "not offered without first-stage", errstr(ret));

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		printf("# /dev/kvm, KVM_CREATE_VM: %s\n", strerror(errno));
	if (!flts) {
		ret = vm < 0 ? 0 : hwpt_alloc(iommufd, bind.out_devid, vm, &hwpt);
		tap(vm >= 0 && ret && errno == EOPNOTSUPP,
		    "IOMMU_HWPT_ALLOC VTD_TDP without first-stage fails with EOPNOTSUPP (%s)",
		    ret ? strerror(errno) : "it did not fail");
		destroy.id = hwpt;
		if (vm >= 0 && !ret)
			ioctl(iommufd, IOMMU_DESTROY, &destroy);
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

	ret = hwpt_alloc(iommufd, bind.out_devid, vm, &hwpt);
	tap(!ret, "IOMMU_HWPT_ALLOC IOMMU_HWPT_DATA_KVM VTD_TDP: hwpt %u%s",
	    hwpt, errstr(ret));
	if (ret)
		return bail(planned, "no KVM-backed HWPT");
	at.pt_id = hwpt;
	ret = ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	tap(!ret, "VFIO_DEVICE_ATTACH_IOMMUFD_PT hwpt %u%s", hwpt, errstr(ret));
	if (ret)
		return bail(planned, "edu not attached");

	for (i = 0; i < NR_LOCS; i++)
		round_trips(i);
	safety(vm, r);

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

	munmap((void *)bar, bar_size);
	munmap(mem0, SLOT0_SIZE);
	munmap(mem1, SLOT1_SIZE);
	close(dev);
	close(iommufd);
	close(kvm);
	return failed ? 1 : 0;
}
