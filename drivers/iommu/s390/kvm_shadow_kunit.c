// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of the s390 zPCI shadow domains, on the real s390 IOMMU
 * driver: included at the end of kvm_shadow.c.
 *
 * A test context stands in for a KVM guest. It has "guest memory" (pages
 * of the test, mapped at guest physical addresses by a nest-parent paging
 * domain of the driver, as iommufd would map a VM's memory), builds its DMA
 * tables in that memory, and issues its RPCITs and MPCIFCs as synthetic
 * register state through the same decoding KVM uses
 * (<asm/kvm_zpci_iommu.h>). The shadow domain is allocated through the
 * framework core, as iommufd does, and attached to the first zPCI function
 * without a driver, so that every host refresh is a real RPCIT that the
 * (emulated) hardware walks the host table for. A stand-in for KVM routes
 * the intercepts by function handle to the domain's listener, as
 * kvm_iommu_sync() does.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <kunit/test.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/mman.h>
#include <linux/uaccess.h>
#include <asm/kvm_zpci_iommu.h>

#include "../kvm-domain/iommu_kvm_priv.h"

#define SKT_NPAGES	64
#define SKT_GPA		0x40000000ULL
#define SKT_RT		(SKT_GPA + 0x00000)	/* region-third table, 16K */
#define SKT_ST		(SKT_GPA + 0x04000)	/* segment table, 16K */
#define SKT_PT		(SKT_GPA + 0x08000)	/* 8 page tables of 2K */
#define SKT_PT1		(SKT_GPA + 0x08800)	/* the second of them */
#define SKT_RS		(SKT_GPA + 0x0c000)	/* region-second table */
#define SKT_RF		(SKT_GPA + 0x10000)	/* region-first table */
#define SKT_ST2		(SKT_GPA + 0x14000)	/* a second segment table */
#define SKT_PTS		(SKT_GPA + 0x18000)	/* 48 page tables, split test */
#define SKT_DATA	(SKT_GPA + 0x30000)	/* 16 data pages */
#define SKT_NDATA	16
/* 1 MiB of guest memory aliasing the data pages, for a segment frame */
#define SKT_FRAME	(SKT_GPA + 0x100000)
#define SKT_FRAME_END	(SKT_GPA + 0x200000)
/* Never mapped by the parent: outside guest memory */
#define SKT_HOLE	(SKT_GPA + 0x400000)
#define SKT_PAGE_FLAGS	(IOMMU_READ | IOMMU_WRITE)
#define SKT_FH		0x80000a01
#define SKT_IOTA	(SKT_RT | ZPCI_IOTA_RTTO_FLAG)
#define SKT_FIBA	0x7000
#define SKT_CLPA	0x8000
/* A "first page" meaning: just beyond the registered pal */
#define SKT_BEYOND_PAL	UINT_MAX

static struct pci_dev *skt_pdev;

struct skt {
	struct kunit *test;
	struct device *dev;
	struct zpci_dev *zdev;
	struct iommu_domain *parent;
	struct page *pages[SKT_NPAGES];
	struct iommu_kvm_vm *vm;
	struct iommu_kvm_domain *kdom;
	struct s390_kvm_domain *skd;
	bool attached;
	u64 base;	/* the first DMA address the guest uses */
	u64 pal;	/* the last it registers */
	u64 gprs[16];
	struct zpci_fib fib;
	struct clp_req_set_pci clp;
	unsigned int vcpu;	/* the vCPU the intercepts come from */
};

/* The stand-in for KVM: the VM handle of the framework core */

static void skt_vm_unbind(struct iommu_kvm_vm *vm)
{
	mutex_destroy(&vm->lock);
	kfree(vm);
}

static int skt_vm_set_sync_key(struct iommu_kvm_vm *vm, u64 key)
{
	return 0;
}

static int skt_vm_pin_gfn(struct iommu_kvm_vm *vm, u64 gfn, bool write,
			  struct page **page)
{
	return -EFAULT;
}

static const struct iommu_kvm_vm_ops skt_vm_ops = {
	.unbind = skt_vm_unbind,
	.set_sync_key = skt_vm_set_sync_key,
	.pin_gfn = skt_vm_pin_gfn,
};

/* KVM's lookup by function handle, then the listener KVM would call */
static bool skt_has_key(void *ctx, u64 key)
{
	struct skt *t = ctx;

	return t->kdom && key == t->skd->fh;
}

static int skt_sync(void *ctx, u64 key, u64 iova, u64 size)
{
	struct skt *t = ctx;

	if (!skt_has_key(t, key))
		return -ENOENT;
	return t->vm->listener.ops->sync(&t->vm->listener, t->vcpu, iova,
					 size);
}

static int skt_set_table(void *ctx, u64 key, u64 anchor, u64 first, u64 last)
{
	struct skt *t = ctx;

	if (!skt_has_key(t, key))
		return -ENOENT;
	return t->vm->listener.ops->set_table(&t->vm->listener, anchor, first,
					      last);
}

static const struct zpci_kvm_iommu skt_kvm = {
	.has_key = skt_has_key,
	.sync = skt_sync,
	.set_table = skt_set_table,
};

/* Guest memory */

static u64 *skt_entry(struct skt *t, u64 gpa)
{
	u64 off = gpa - SKT_GPA;

	if (WARN_ON(gpa < SKT_GPA || off >= SKT_NPAGES * PAGE_SIZE))
		return NULL;
	return page_address(t->pages[off >> PAGE_SHIFT]) + offset_in_page(off);
}

static void gset(struct skt *t, u64 gpa, u64 val)
{
	WRITE_ONCE(*skt_entry(t, gpa), val);
}

/* Host frame behind a guest frame, as the parent maps it */
static phys_addr_t skt_hpa(struct skt *t, u64 gpa)
{
	if (gpa >= SKT_FRAME && gpa < SKT_FRAME_END)
		gpa = SKT_DATA + ((gpa - SKT_FRAME) % (SKT_NDATA * PAGE_SIZE));
	return page_to_phys(t->pages[(gpa - SKT_GPA) >> PAGE_SHIFT]);
}

static u64 skt_data(unsigned int i)
{
	return SKT_DATA + (u64)(i % SKT_NDATA) * PAGE_SIZE;
}

static u64 rte(u64 origin, int level)
{
	return origin | (level << 2) | ZPCI_TABLE_LEN_RTX;
}

static void skt_fill(struct skt *t, u64 table, size_t size, u64 val)
{
	u64 gpa;

	for (gpa = table; gpa < table + size; gpa += 8)
		gset(t, gpa, val);
}

/* Index of @iova in the table of @level, as the walk computes it */
static u64 skt_slot(u64 table, u64 iova, int level)
{
	return table + s390_kvm_index(iova, level) * 8;
}

static u64 skt_pte_slot(u64 pt, u64 iova)
{
	return pt + ((iova >> PAGE_SHIFT) & ZPCI_PT_MASK) * 8;
}

/*
 * The default guest table: region-third -> segment -> page tables, for
 * DMA addresses base .. base + 8 MiB; all entries invalid.
 */
static void skt_tables(struct skt *t)
{
	unsigned int i;

	skt_fill(t, SKT_RT, ZPCI_TABLE_SIZE,
		 ZPCI_TABLE_INVALID | ZPCI_TABLE_TYPE_RTX);
	skt_fill(t, SKT_ST, ZPCI_TABLE_SIZE, ZPCI_TABLE_INVALID);
	skt_fill(t, SKT_PT, 8 * ZPCI_PT_SIZE, ZPCI_PTE_INVALID);
	gset(t, skt_slot(SKT_RT, t->base, S390_KVM_RT),
	     rte(SKT_ST, S390_KVM_RT));
	for (i = 0; i < 8; i++)
		gset(t, skt_slot(SKT_ST, t->base + i * SZ_1M, S390_KVM_ST),
		     SKT_PT + i * ZPCI_PT_SIZE);
}

/* Make DMA page @n (from base) map guest frame @gpa in the guest's table */
static void skt_map(struct skt *t, unsigned int n, u64 gpa, bool prot)
{
	u64 iova = t->base + (u64)n * PAGE_SIZE;
	u64 pt = SKT_PT + (n >> ZPCI_PT_BITS) * ZPCI_PT_SIZE;

	gset(t, skt_pte_slot(pt, iova),
	     gpa | (prot ? ZPCI_TABLE_PROTECTED : 0));
}

static void skt_unmap(struct skt *t, unsigned int n)
{
	u64 iova = t->base + (u64)n * PAGE_SIZE;
	u64 pt = SKT_PT + (n >> ZPCI_PT_BITS) * ZPCI_PT_SIZE;

	gset(t, skt_pte_slot(pt, iova), ZPCI_PTE_INVALID);
}

/* The host entry of DMA page @n: walks the host table itself */
static unsigned long skt_host_pte(struct skt *t, unsigned int n)
{
	unsigned long *ptep =
		dma_lookup_cpu_trans(&t->skd->host,
				     t->base + (u64)n * PAGE_SIZE);

	return ptep ? READ_ONCE(*ptep) : ZPCI_PTE_INVALID;
}

/* Both ways of asking agree that page @n maps @gpa (0: nothing) */
static void skt_expect(struct skt *t, unsigned int n, u64 gpa, bool prot)
{
	struct kunit *test = t->test;
	u64 iova = t->base + (u64)n * PAGE_SIZE;
	unsigned long pte = skt_host_pte(t, n);
	phys_addr_t want = gpa ? skt_hpa(t, gpa) : 0;

	KUNIT_EXPECT_EQ_MSG(test, iommu_iova_to_phys(&t->kdom->domain, iova),
			    want, "page %u", n);
	if (!gpa) {
		KUNIT_EXPECT_TRUE_MSG(test, pte & ZPCI_PTE_INVALID, "page %u",
				      n);
		return;
	}
	KUNIT_EXPECT_FALSE_MSG(test, pte & ZPCI_PTE_INVALID, "page %u", n);
	KUNIT_EXPECT_EQ_MSG(test, pte & ZPCI_PTE_ADDR_MASK, want, "page %u", n);
	KUNIT_EXPECT_EQ_MSG(test, !!(pte & ZPCI_TABLE_PROT_MASK), prot,
			    "page %u", n);
}

/* The guest frame the domain remembers behind DMA page @n, or 0 */
static u64 skt_gpa_of(struct skt *t, unsigned int n)
{
	u64 iova = t->base + (u64)n * PAGE_SIZE;
	struct s390_kvm_seg *seg = s390_kvm_seg(t->skd, iova, false);

	return seg ? seg->gpa[s390_kvm_px(iova)] & ~S390_KVM_GPA_VALID : 0;
}

/* No host entry at all, and the domain remembers none */
static void skt_expect_empty(struct skt *t)
{
	unsigned int n;

	KUNIT_EXPECT_EQ(t->test, t->skd->nr_mapped, 0);
	KUNIT_EXPECT_EQ(t->test, skt_gpa_of(t, 0), 0);
	for (n = 0; n < 8 * ZPCI_PT_ENTRIES; n += 17)
		KUNIT_EXPECT_EQ_MSG(t->test,
				    iommu_iova_to_phys(&t->kdom->domain,
						       t->base + (u64)n * PAGE_SIZE),
				    0, "page %u", n);
}

/* The guest's RPCIT for pages [@n, @n + @count) */
static struct zpci_kvm_answer skt_rpcit(struct skt *t, unsigned int n,
					u64 count)
{
	struct zpci_kvm_iommu kvm = skt_kvm;

	kvm.ctx = t;
	t->gprs[1] = (u64)SKT_FH << 32;
	t->gprs[4] = t->base + (u64)n * PAGE_SIZE;
	t->gprs[5] = count * PAGE_SIZE;
	return zpci_kvm_rpcit(&kvm, t->gprs, 1, 4, false);
}

static void expect_cc(struct kunit *test, struct zpci_kvm_answer a, u8 cc,
		      int line)
{
	KUNIT_EXPECT_EQ_MSG(test, a.action, ZPCI_KVM_DONE, "line %d", line);
	KUNIT_EXPECT_EQ_MSG(test, a.cc, cc, "line %d", line);
}

#define EXPECT_CC(test, a, want_cc) expect_cc(test, a, want_cc, __LINE__)

static int skt_read_fib(void *ctx, u64 fiba, struct zpci_fib *fib)
{
	struct skt *t = ctx;

	/* Anything else is an addressing exception (a positive rc) */
	if (fiba != SKT_FIBA)
		return 5;
	*fib = t->fib;
	return 0;
}

/* The guest's MPCIFC @oc with FIB @t->fib at @fiba */
static struct zpci_kvm_answer skt_mpcifc(struct skt *t, u8 oc, u64 fiba,
					 int *fault_rc)
{
	struct zpci_kvm_iommu kvm = skt_kvm;

	kvm.ctx = t;
	t->gprs[2] = ((u64)SKT_FH << 32) | oc;
	return zpci_kvm_mpcifc(&kvm, t->gprs, 2, fiba, false, skt_read_fib, t,
			       fault_rc);
}

static void skt_set_fib(struct skt *t, u64 iota, u64 pba, u64 pal)
{
	memset(&t->fib, 0, sizeof(t->fib));
	t->fib.iota = iota;
	t->fib.pba = pba;
	t->fib.pal = pal;
}

static int skt_read_clp(void *ctx, u64 addr, struct clp_req_set_pci *req)
{
	struct skt *t = ctx;

	if (addr != SKT_CLPA)
		return 5;
	*req = t->clp;
	return 0;
}

/* The guest's CLP SET PCI FUNCTION @oc for handle @fh */
static struct zpci_kvm_answer skt_clp(struct skt *t, u32 fh, u8 oc, u16 len)
{
	struct zpci_kvm_iommu kvm = skt_kvm;

	kvm.ctx = t;
	memset(&t->clp, 0, sizeof(t->clp));
	t->clp.hdr.len = len;
	t->clp.hdr.cmd = CLP_SET_PCI_FN;
	t->clp.fh = fh;
	t->clp.oc = oc;
	return zpci_kvm_clp(&kvm, SKT_CLPA, false, skt_read_clp, t);
}

/* Context: guest memory, the parent, the domain, the attached function */

static void skt_free_domain(struct skt *t)
{
	if (!t->kdom)
		return;
	if (t->attached)
		iommu_detach_device(&t->kdom->domain, t->dev);
	t->attached = false;
	iommu_kvm_domain_unpublish(t->kdom);
	iommu_domain_free(&t->kdom->domain);
	t->kdom = NULL;
	t->skd = NULL;
}

/* Allocate the domain as iommufd does, with driver data @data */
static int skt_alloc(struct skt *t, const struct iommu_hwpt_kvm_s390 *data,
		     unsigned int type, size_t len)
{
	struct kunit *test = t->test;
	struct iommu_user_data ud = { .type = type, .len = len };
	struct iommu_kvm_domain *kdom;
	struct iommu_kvm_vm *vm;
	unsigned long uaddr;

	uaddr = kunit_vm_mmap(test, NULL, 0, PAGE_SIZE,
			      PROT_READ | PROT_WRITE,
			      MAP_ANONYMOUS | MAP_PRIVATE, 0);
	KUNIT_ASSERT_NE_MSG(test, uaddr, 0, "no user memory");
	KUNIT_ASSERT_EQ(test, 0, copy_to_user((void __user *)uaddr, data,
					      sizeof(*data)));
	ud.uptr = (void __user *)uaddr;

	vm = kzalloc_obj(*vm);
	KUNIT_ASSERT_NOT_NULL(test, vm);
	iommu_kvm_vm_init(vm, &skt_vm_ops);
	kdom = iommu_kvm_domain_alloc(t->dev, vm,
				      IOMMU_HWPT_KVM_FORMAT_S390_ZPCI,
				      t->parent, &ud);
	if (IS_ERR(kdom))
		return PTR_ERR(kdom);
	iommu_kvm_domain_publish(kdom);
	t->vm = vm;
	t->kdom = kdom;
	t->skd = to_s390_kvm_domain(kdom);
	return 0;
}

static void skt_alloc_attach(struct skt *t, u64 iota)
{
	struct kunit *test = t->test;
	struct iommu_hwpt_kvm_s390 data = {
		.fh = SKT_FH,
		.iota = iota,
		.pba = iota ? t->base : 0,
		.pal = iota ? t->pal : 0,
	};

	KUNIT_ASSERT_EQ(test, 0, skt_alloc(t, &data, IOMMU_HWPT_KVM_DATA_S390,
					   sizeof(data)));
	KUNIT_ASSERT_EQ(test, 0, iommu_attach_device(&t->kdom->domain, t->dev));
	t->attached = true;
}

static int skt_init(struct kunit *test)
{
	struct skt *t;
	unsigned int i;
	u64 gpa;

	if (!skt_pdev)
		kunit_skip(test, "no zPCI function without a driver");

	t = kunit_kzalloc(test, sizeof(*t), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, t);
	test->priv = t;
	t->test = test;
	t->dev = &skt_pdev->dev;
	t->zdev = to_zpci_dev(t->dev);
	t->base = t->zdev->start_dma;
	t->pal = t->base + SZ_64M - 1;

	t->parent = iommu_paging_domain_alloc_flags(t->dev,
						    IOMMU_HWPT_ALLOC_NEST_PARENT);
	KUNIT_ASSERT_FALSE(test, IS_ERR(t->parent));
	for (i = 0; i < SKT_NPAGES; i++) {
		t->pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		KUNIT_ASSERT_NOT_NULL(test, t->pages[i]);
		KUNIT_ASSERT_EQ(test, 0,
				iommu_map(t->parent, SKT_GPA + i * PAGE_SIZE,
					  page_to_phys(t->pages[i]), PAGE_SIZE,
					  SKT_PAGE_FLAGS, GFP_KERNEL));
	}
	for (gpa = SKT_FRAME; gpa < SKT_FRAME_END; gpa += PAGE_SIZE)
		KUNIT_ASSERT_EQ(test, 0,
				iommu_map(t->parent, gpa, skt_hpa(t, gpa),
					  PAGE_SIZE, SKT_PAGE_FLAGS,
					  GFP_KERNEL));
	skt_tables(t);
	return 0;
}

static void skt_exit(struct kunit *test)
{
	struct skt *t = test->priv;
	unsigned int i;

	if (!t)
		return;
	skt_free_domain(t);
	if (!IS_ERR_OR_NULL(t->parent))
		iommu_domain_free(t->parent);
	for (i = 0; i < SKT_NPAGES; i++)
		if (t->pages[i])
			__free_page(t->pages[i]);
}

static int skt_suite_init(struct kunit_suite *suite)
{
	struct pci_dev *pdev = NULL;

	for_each_pci_dev(pdev) {
		if (!pdev->dev.driver && to_zpci(pdev) &&
		    device_iommu_mapped(&pdev->dev)) {
			skt_pdev = pci_dev_get(pdev);
			pci_dev_put(pdev);
			break;
		}
	}
	if (skt_pdev)
		pr_info("KUnit: shadowing for zPCI function %s (fid 0x%x)\n",
			pci_name(skt_pdev), to_zpci(skt_pdev)->fid);
	return 0;
}

static void skt_suite_exit(struct kunit_suite *suite)
{
	pci_dev_put(skt_pdev);
	skt_pdev = NULL;
}

/* The tests */

static void test_formats(struct kunit *test)
{
	struct skt *t = test->priv;
	struct iommu_domain *ref;
	u64 shadow = 0;

	KUNIT_EXPECT_EQ(test, iommu_kvm_formats(t->dev, &shadow),
			BIT_ULL(IOMMU_HWPT_KVM_FORMAT_S390_ZPCI));
	KUNIT_EXPECT_EQ(test, shadow, BIT_ULL(IOMMU_HWPT_KVM_FORMAT_S390_ZPCI));
	/* The parent is an ordinary paging domain of the driver */
	KUNIT_EXPECT_EQ(test, t->parent->type, IOMMU_DOMAIN_UNMANAGED);
	/* Nest parent is the only flag the driver takes */
	ref = iommu_paging_domain_alloc_flags(t->dev,
					      IOMMU_HWPT_ALLOC_DIRTY_TRACKING);
	KUNIT_EXPECT_TRUE(test, IS_ERR(ref));
}

/* Bad driver data is refused, and nothing is left behind */
static void test_alloc_errors(struct kunit *test)
{
	struct skt *t = test->priv;
	struct iommu_hwpt_kvm_s390 data = { .fh = SKT_FH };
	static const struct {
		u64 iota, pba, pal;
		u32 flags;
	} bad[] = {
		{ .flags = 1 },
		{ .pba = SZ_1M },
		{ .iota = SKT_IOTA & ~ZPCI_IOTA_IOT_ENABLED, .pal = SZ_1M - 1 },
		{ .iota = SKT_RT | ZPCI_IOTA_RFAA_FLAG, .pal = SZ_1M - 1 },
		{ .iota = SKT_IOTA | 0x1000, .pal = SZ_1M - 1 },
		{ .iota = SKT_IOTA, .pba = 0x800, .pal = SZ_1M - 1 },
		{ .iota = SKT_IOTA, .pba = SZ_1M, .pal = SZ_1M - 1 },
		{ .iota = SKT_IOTA, .pal = SZ_1M - 2 },
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		data.flags = bad[i].flags;
		data.iota = bad[i].iota;
		/* Relative to the function's aperture */
		data.pba = bad[i].iota || bad[i].pba ? t->base + bad[i].pba : 0;
		data.pal = bad[i].pal ? t->base + bad[i].pal : 0;
		KUNIT_EXPECT_EQ_MSG(test, -EINVAL,
				    skt_alloc(t, &data,
					      IOMMU_HWPT_KVM_DATA_S390,
					      sizeof(data)), "case %u", i);
		KUNIT_EXPECT_NULL(test, t->kdom);
	}
	/* Outside the function's aperture, and beyond a segment table's reach */
	data = (struct iommu_hwpt_kvm_s390){ .fh = SKT_FH, .iota = SKT_IOTA,
		.pba = t->base - SZ_1M, .pal = t->base + SZ_1M - 1 };
	KUNIT_EXPECT_EQ(test, -EINVAL, skt_alloc(t, &data,
						 IOMMU_HWPT_KVM_DATA_S390,
						 sizeof(data)));
	data = (struct iommu_hwpt_kvm_s390){ .fh = SKT_FH,
		.iota = SKT_ST | ZPCI_IOTA_STO_FLAG,
		.pba = t->base, .pal = t->base + SZ_1M - 1 };
	KUNIT_EXPECT_EQ(test, -EINVAL, skt_alloc(t, &data,
						 IOMMU_HWPT_KVM_DATA_S390,
						 sizeof(data)));
	/* The function handle is not optional, nor its data type */
	data = (struct iommu_hwpt_kvm_s390){ .fh = SKT_FH };
	KUNIT_EXPECT_EQ(test, -EINVAL, skt_alloc(t, &data,
						 IOMMU_HWPT_KVM_DATA_NONE,
						 sizeof(data)));
	KUNIT_EXPECT_EQ(test, -EINVAL, skt_alloc(t, &data,
						 IOMMU_HWPT_KVM_DATA_S390, 4));
	KUNIT_EXPECT_NULL(test, t->kdom);

	/* And a good one, without a table yet */
	KUNIT_EXPECT_EQ(test, 0, skt_alloc(t, &data, IOMMU_HWPT_KVM_DATA_S390,
					   sizeof(data)));
	KUNIT_EXPECT_EQ(test, t->skd->iota, 0);
	/* It belongs to the parent's driver */
	KUNIT_EXPECT_PTR_EQ(test, t->kdom->domain.owner, t->parent->owner);
}

/* Map, keep, invalidate and replace, with the refreshes they need */
static void test_map_resolve(struct kunit *test)
{
	struct skt *t = test->priv;
	struct s390_kvm_stats *st;
	unsigned int n;
	u64 want, gpa;

	skt_alloc_attach(t, SKT_IOTA);
	st = &t->skd->stats;
	for (n = 0; n < 16; n++)
		skt_map(t, n, skt_data(n), n & 1);
	EXPECT_CC(test, skt_rpcit(t, 0, 16), ZPCI_CC_OK);
	for (n = 0; n < 16; n++)
		skt_expect(t, n, skt_data(n), n & 1);
	skt_expect(t, 16, 0, false);
	KUNIT_EXPECT_EQ(test, st->new, 16);
	/* New entries need a refresh only where invalid ones are cached */
	want = t->zdev->tlb_refresh ? 1 : 0;
	KUNIT_EXPECT_EQ(test, st->refreshes, want);
	gpa = skt_gpa_of(t, 3);
	KUNIT_EXPECT_EQ(test, gpa, skt_data(3));
	KUNIT_EXPECT_EQ(test, t->skd->nr_mapped, 16);

	/* Nothing changed: no refresh */
	EXPECT_CC(test, skt_rpcit(t, 0, 16), ZPCI_CC_OK);
	KUNIT_EXPECT_EQ(test, st->unchanged, 16);
	KUNIT_EXPECT_EQ(test, st->refreshes, want);

	/* Four invalidated: one refresh of what changed */
	for (n = 4; n < 8; n++)
		skt_unmap(t, n);
	EXPECT_CC(test, skt_rpcit(t, 0, 16), ZPCI_CC_OK);
	for (n = 4; n < 8; n++)
		skt_expect(t, n, 0, false);
	skt_expect(t, 3, skt_data(3), true);
	KUNIT_EXPECT_EQ(test, st->invalidated, 4);
	KUNIT_EXPECT_EQ(test, st->refreshes, ++want);

	/* Two replaced (frame, protection), one refresh */
	skt_map(t, 9, skt_data(12), true);
	skt_map(t, 10, skt_data(10), true);
	EXPECT_CC(test, skt_rpcit(t, 8, 4), ZPCI_CC_OK);
	skt_expect(t, 9, skt_data(12), true);
	skt_expect(t, 10, skt_data(10), true);
	KUNIT_EXPECT_EQ(test, st->replaced, 2);
	KUNIT_EXPECT_EQ(test, st->refreshes, ++want);
	/* Only the refreshed range was looked at: 16 + 12 + 2 */
	KUNIT_EXPECT_EQ(test, st->unchanged, 30);

	/* A refresh of everything the guest registered */
	skt_map(t, 300, skt_data(1), false);
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_domain_sync(t->kdom, 0, 0, 0));
	skt_expect(t, 300, skt_data(1), false);

	/* Every refresh was accepted by the function */
	KUNIT_EXPECT_EQ(test, st->errors, 0);
	KUNIT_EXPECT_EQ(test, atomic64_read(&t->kdom->stats.syncs), 5);
}

/*
 * A function that left the domain gets no refresh (unregistering the table
 * purged what it cached), while the shadow keeps following the guest; back
 * in the domain, it gets them again.
 */
static void test_detached(struct kunit *test)
{
	struct skt *t = test->priv;
	struct s390_kvm_stats *st;
	u64 refreshes;

	skt_alloc_attach(t, SKT_IOTA);
	st = &t->skd->stats;
	skt_map(t, 0, skt_data(0), false);
	EXPECT_CC(test, skt_rpcit(t, 0, 1), ZPCI_CC_OK);
	refreshes = st->refreshes;

	iommu_detach_device(&t->kdom->domain, t->dev);
	t->attached = false;
	skt_unmap(t, 0);
	skt_map(t, 1, skt_data(1), false);
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_domain_sync(t->kdom, 0, t->base,
						       2 * PAGE_SIZE));
	skt_expect(t, 0, 0, false);
	skt_expect(t, 1, skt_data(1), false);
	KUNIT_EXPECT_EQ(test, st->invalidated, 1);
	KUNIT_EXPECT_EQ(test, st->refreshes, refreshes);

	KUNIT_ASSERT_EQ(test, 0, iommu_attach_device(&t->kdom->domain, t->dev));
	t->attached = true;
	skt_unmap(t, 1);
	EXPECT_CC(test, skt_rpcit(t, 1, 1), ZPCI_CC_OK);
	skt_expect(t, 1, 0, false);
	KUNIT_EXPECT_EQ(test, st->refreshes, refreshes + 1);
	KUNIT_EXPECT_EQ(test, st->errors, 0);
	KUNIT_EXPECT_FALSE(test, t->skd->error);
}

/* Region-first and region-second designations, and a 1 MiB frame */
static void test_levels(struct kunit *test)
{
	struct skt *t = test->priv;
	struct zpci_kvm_answer a;
	int fault = 0;
	unsigned int n;

	skt_alloc_attach(t, 0);
	skt_fill(t, SKT_RS, ZPCI_TABLE_SIZE,
		 ZPCI_TABLE_INVALID | ZPCI_TABLE_TYPE_RSX);
	skt_fill(t, SKT_RF, ZPCI_TABLE_SIZE,
		 ZPCI_TABLE_INVALID | ZPCI_TABLE_TYPE_RFX);
	gset(t, skt_slot(SKT_RS, t->base, S390_KVM_RS),
	     rte(SKT_RT, S390_KVM_RS));
	gset(t, skt_slot(SKT_RF, t->base, S390_KVM_RF),
	     rte(SKT_RS, S390_KVM_RF));
	for (n = 0; n < 4; n++)
		skt_map(t, n, skt_data(n + 4), false);

	/* Region-second table origin */
	skt_set_fib(t, SKT_RS | ZPCI_IOTA_RSTO_FLAG, t->base,
		    t->base + SZ_64M - 1);
	EXPECT_CC(test, skt_mpcifc(t, ZPCI_MOD_FC_REG_IOAT, SKT_FIBA, &fault),
		  ZPCI_CC_OK);
	EXPECT_CC(test, skt_rpcit(t, 0, 4), ZPCI_CC_OK);
	for (n = 0; n < 4; n++)
		skt_expect(t, n, skt_data(n + 4), false);

	/* Region-first: the same tables one level further up */
	skt_set_fib(t, SKT_RF | ZPCI_IOTA_RFTO_FLAG, t->base,
		    t->base + SZ_64M - 1);
	EXPECT_CC(test, skt_mpcifc(t, ZPCI_MOD_FC_REREG_IOAT, SKT_FIBA,
				   &fault), ZPCI_CC_OK);
	/* A new registration starts from nothing */
	skt_expect(t, 0, 0, false);
	skt_map(t, 2, skt_data(9), false);
	EXPECT_CC(test, skt_rpcit(t, 0, 4), ZPCI_CC_OK);
	skt_expect(t, 2, skt_data(9), false);
	skt_expect(t, 3, skt_data(7), false);

	/* A protected region entry protects everything below it */
	gset(t, skt_slot(SKT_RS, t->base, S390_KVM_RS),
	     rte(SKT_RT, S390_KVM_RS) | ZPCI_TABLE_PROTECTED);
	EXPECT_CC(test, skt_rpcit(t, 0, 4), ZPCI_CC_OK);
	skt_expect(t, 2, skt_data(9), true);
	KUNIT_EXPECT_EQ(test, t->skd->stats.replaced, 4);

	/* A segment entry that maps a 1 MiB frame (QEMU walks them too) */
	gset(t, skt_slot(SKT_ST, t->base + SZ_2M, S390_KVM_ST),
	     SKT_FRAME | S390_KVM_STE_FC);
	a = skt_rpcit(t, 512, 256);
	EXPECT_CC(test, a, ZPCI_CC_OK);
	for (n = 512; n < 768; n += 13)
		skt_expect(t, n, SKT_FRAME + (u64)(n - 512) * PAGE_SIZE,
			   true);
	KUNIT_EXPECT_EQ(test, t->skd->stats.errors, 0);
}

/* A hostile table makes no host mapping, and the function goes to error */
struct skt_hostile {
	const char *name;
	void (*setup)(struct skt *t);
	unsigned int first, count;
	int ret;
};

static void h_rte_origin(struct skt *t)
{
	gset(t, skt_slot(SKT_RT, t->base, S390_KVM_RT),
	     rte(SKT_HOLE, S390_KVM_RT));
}

static void h_pte_frame(struct skt *t)
{
	skt_map(t, 1, SKT_HOLE, false);
}

/* Beyond the parent's region-third table: its index would wrap to guest memory */
static void h_pte_wrap(struct skt *t)
{
	skt_map(t, 1, skt_data(1) + ZPCI_TABLE_SIZE_RT, false);
}

static void h_ste_origin(struct skt *t)
{
	gset(t, skt_slot(SKT_ST, t->base, S390_KVM_ST), SKT_HOLE);
}

static void h_rte_type(struct skt *t)
{
	gset(t, skt_slot(SKT_RT, t->base, S390_KVM_RT),
	     rte(SKT_ST, S390_KVM_ST));
}

static void h_ste_type(struct skt *t)
{
	gset(t, skt_slot(SKT_ST, t->base, S390_KVM_ST),
	     SKT_PT | ZPCI_TABLE_TYPE_RTX);
}

/* The region-third entry names itself: its entries are read as segments */
static void h_rt_self(struct skt *t)
{
	gset(t, skt_slot(SKT_RT, t->base, S390_KVM_RT),
	     rte(SKT_RT, S390_KVM_RT));
	gset(t, SKT_RT, rte(SKT_ST, S390_KVM_RT));
}

static void h_len_short(struct skt *t)
{
	/* Only the first quarter of the segment table exists */
	gset(t, skt_slot(SKT_RT, t->base, S390_KVM_RT),
	     (rte(SKT_ST, S390_KVM_RT) & ~ZPCI_TABLE_LEN_RTX) | 0);
}

static void h_offset(struct skt *t)
{
	/* The segment table starts at its second quarter */
	gset(t, skt_slot(SKT_RT, t->base, S390_KVM_RT),
	     rte(SKT_ST, S390_KVM_RT) | (1 << 6));
}

static void h_offset_len(struct skt *t)
{
	/* Offset beyond length */
	gset(t, skt_slot(SKT_RT, t->base, S390_KVM_RT),
	     (rte(SKT_ST, S390_KVM_RT) & ~ZPCI_TABLE_LEN_RTX) | 1 | (2 << 6));
}

static void h_zero_rte(struct skt *t)
{
	gset(t, skt_slot(SKT_RT, t->base, S390_KVM_RT), 0);
}

static void h_zero_pte(struct skt *t)
{
	gset(t, skt_pte_slot(SKT_PT, t->base + 2 * PAGE_SIZE), 0);
}

static void h_nothing(struct skt *t)
{
}

static const struct skt_hostile skt_hostiles[] = {
	{ "region origin outside guest memory", h_rte_origin, 0, 4, -EFAULT },
	{ "segment origin outside guest memory", h_ste_origin, 0, 4, -EFAULT },
	{ "frame outside guest memory", h_pte_frame, 0, 4, -EFAULT },
	{ "frame beyond the parent's table", h_pte_wrap, 0, 4, -EFAULT },
	{ "region entry of the wrong type", h_rte_type, 0, 4, -EINVAL },
	{ "segment entry of the wrong type", h_ste_type, 0, 4, -EINVAL },
	{ "table that names itself", h_rt_self, 0, 4, -EINVAL },
	{ "index beyond the table length", h_len_short, 520 * 256, 4,
	  -EINVAL },
	{ "index before the table offset", h_offset, 0, 4, -EINVAL },
	{ "offset beyond length", h_offset_len, 0, 4, -EINVAL },
	{ "all-zero region entry", h_zero_rte, 0, 4, -EINVAL },
	{ "all-zero page table entry", h_zero_pte, 0, 4, -EINVAL },
	{ "range below pba", h_nothing, 0, 0, -EINVAL },
	{ "range beyond pal", h_nothing, SKT_BEYOND_PAL, 4, -EINVAL },
	{ "range that wraps", h_nothing, 0, 0, -EINVAL },
};

static void test_hostile(struct kunit *test)
{
	struct skt *t = test->priv;
	unsigned int i, n;
	u64 errors = 0;

	/* Segment index 520 is in the second quarter of the segment table */
	KUNIT_ASSERT_GE(test, t->zdev->end_dma, t->base + 521 * SZ_1M - 1);
	t->pal = t->base + 521 * SZ_1M - 1;
	skt_alloc_attach(t, SKT_IOTA);
	for (i = 0; i < ARRAY_SIZE(skt_hostiles); i++) {
		const struct skt_hostile *h = &skt_hostiles[i];
		u64 iova = t->base + (u64)h->first * PAGE_SIZE;
		u64 size = (u64)h->count * PAGE_SIZE;

		/* Good entries first: the error must remove them all */
		skt_tables(t);
		for (n = 0; n < 4; n++)
			skt_map(t, n, skt_data(n), false);
		KUNIT_ASSERT_EQ(test, 0,
				iommu_kvm_domain_sync(t->kdom, 0, t->base,
						      4 * PAGE_SIZE));
		skt_expect(t, 0, skt_data(0), false);

		h->setup(t);
		if (h->first == SKT_BEYOND_PAL) {
			iova = t->pal + 1;
		} else if (!h->count && i == ARRAY_SIZE(skt_hostiles) - 1) {
			iova = t->base + PAGE_SIZE;
			size = U64_MAX;
		} else if (!h->count) {
			iova = t->base - SZ_2M;
			size = SZ_1M;
		}
		KUNIT_EXPECT_EQ_MSG(test, h->ret,
				    iommu_kvm_domain_sync(t->kdom, 0, iova, size),
				    "%s", h->name);
		KUNIT_EXPECT_TRUE_MSG(test, t->skd->error, "%s", h->name);
		KUNIT_EXPECT_EQ_MSG(test, t->skd->stats.errors, ++errors, "%s",
				    h->name);
		skt_expect_empty(t);
		/* In the error state until the guest registers again */
		KUNIT_EXPECT_EQ(test, -EIO,
				iommu_kvm_domain_sync(t->kdom, 0, t->base,
						      PAGE_SIZE));
		KUNIT_EXPECT_EQ(test, 0,
				iommu_kvm_domain_set_table(t->kdom, SKT_IOTA,
							   t->base, t->pal));
		KUNIT_EXPECT_FALSE(test, t->skd->error);
	}

	/* A range that only overlaps pba..pal is shadowed where it does */
	skt_tables(t);
	skt_map(t, 0, skt_data(0), false);
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_domain_sync(t->kdom, 0, t->base - SZ_1M,
						       SZ_1M + PAGE_SIZE));
	skt_expect(t, 0, skt_data(0), false);

	/* Without a registered table, a refresh is an error too */
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_domain_set_table(t->kdom, 0, 0, 0));
	skt_expect_empty(t);
	KUNIT_EXPECT_EQ(test, -EINVAL, iommu_kvm_domain_sync(t->kdom, 0, t->base,
							     PAGE_SIZE));
	KUNIT_EXPECT_TRUE(test, t->skd->error);
}

/* The guest rewrites an entry while refreshes run */
struct skt_flip {
	struct skt *t;
	u64 slot;
	unsigned long flips;
};

static int skt_flipper(void *data)
{
	struct skt_flip *f = data;
	static const unsigned int frames[] = { 3, 5 };

	while (!kthread_should_stop()) {
		u64 v = f->flips % 3 == 2 ? ZPCI_PTE_INVALID :
			skt_data(frames[f->flips % 3]);

		WRITE_ONCE(*skt_entry(f->t, f->slot), v);
		WRITE_ONCE(f->flips, f->flips + 1);
		cond_resched();
	}
	return 0;
}

static void test_changing_entries(struct kunit *test)
{
	struct skt *t = test->priv;
	struct skt_flip f = { .t = t };
	unsigned long deadline = jiffies + 10 * HZ, first, writes;
	struct task_struct *task;
	unsigned int i, bad = 0;

	skt_alloc_attach(t, SKT_IOTA);
	f.slot = skt_pte_slot(SKT_PT, t->base + PAGE_SIZE);
	task = kthread_run(skt_flipper, &f, "skt-flipper");
	KUNIT_ASSERT_FALSE(test, IS_ERR(task));
	/*
	 * Refresh while the guest writes: from its first write on, at least
	 * 2000 times, and until it has written 100 times (a sync takes a
	 * few microseconds; the writer may be slow to get a CPU).
	 */
	while (!READ_ONCE(f.flips) && time_before(jiffies, deadline))
		usleep_range(100, 200);
	first = READ_ONCE(f.flips);
	for (i = 0; i < 2000 || (READ_ONCE(f.flips) - first < 100 &&
				 time_before(jiffies, deadline)); i++) {
		phys_addr_t p;

		KUNIT_EXPECT_EQ(test, 0,
				iommu_kvm_domain_sync(t->kdom, 0, t->base,
						      4 * PAGE_SIZE));
		/* Each refresh saw one of the guest's values, whole */
		p = iommu_iova_to_phys(&t->kdom->domain, t->base + PAGE_SIZE);
		if (p && p != skt_hpa(t, skt_data(3)) &&
		    p != skt_hpa(t, skt_data(5)))
			bad++;
		if (!(i % 64))
			cond_resched();
	}
	writes = READ_ONCE(f.flips) - first;
	kthread_stop(task);
	KUNIT_EXPECT_EQ(test, bad, 0);
	/* The race was run: the guest wrote while the shadow refreshed */
	KUNIT_EXPECT_GT(test, writes, 0);
	/* And the last refresh leaves the last value */
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_domain_sync(t->kdom, 0, t->base,
						       4 * PAGE_SIZE));
	skt_expect(t, 1, READ_ONCE(*skt_entry(t, f.slot)) & ZPCI_PTE_INVALID ?
		   0 : READ_ONCE(*skt_entry(t, f.slot)), false);
	KUNIT_EXPECT_EQ(test, t->skd->stats.errors, 0);
	kunit_info(test, "%lu guest writes during %u refreshes\n", writes, i);
}

/* Map all pages of the first @nr segments, with page tables at SKT_PTS */
static void skt_fill_segments(struct skt *t, unsigned int nr)
{
	unsigned int seg, n;

	for (seg = 0; seg < nr; seg++) {
		u64 pt = SKT_PTS + seg * ZPCI_PT_SIZE;

		gset(t, skt_slot(SKT_ST, t->base + seg * SZ_1M, S390_KVM_ST),
		     pt);
		for (n = 0; n < ZPCI_PT_ENTRIES; n++)
			gset(t, pt + n * 8, skt_data(seg + n));
	}
}

/*
 * RPCIT @count pages from DMA page 0 as the guest does, executing it
 * again while KVM says so (at most 10 times); *@calls says how often
 */
static struct zpci_kvm_answer skt_rpcit_done(struct skt *t, u64 count,
					     unsigned int *calls)
{
	struct zpci_kvm_answer a;

	for (*calls = 1; ; ++*calls) {
		a = skt_rpcit(t, 0, count);
		if (a.action != ZPCI_KVM_RETRY || *calls == 10)
			return a;
	}
}

/* A large refresh is done in parts; the guest retries the instruction */
static void test_split(struct kunit *test)
{
	struct skt *t = test->priv;
	unsigned int n, rounds, pages = 40 * ZPCI_PT_ENTRIES;
	struct zpci_kvm_answer a;

	skt_alloc_attach(t, SKT_IOTA);
	skt_fill_segments(t, 40);
	a = skt_rpcit_done(t, pages, &rounds);
	EXPECT_CC(test, a, ZPCI_CC_OK);
	/* 40 segments of 257 entries each (2 upper, 255 more pages) */
	KUNIT_EXPECT_EQ(test, rounds, 2);
	KUNIT_EXPECT_EQ(test, t->skd->stats.splits, 1);
	KUNIT_EXPECT_EQ(test, t->skd->stats.new, pages);
	for (n = 0; n < pages; n += 97)
		skt_expect(t, n, skt_data((n >> 8) + (n & 0xff)), false);

	/* Another range in between starts over */
	for (n = 0; n < pages; n++)
		if (!(n % 7))
			gset(t, SKT_PTS + n * 8, ZPCI_PTE_INVALID);
	a = skt_rpcit(t, 0, pages);
	KUNIT_EXPECT_EQ(test, a.action, ZPCI_KVM_RETRY);
	EXPECT_CC(test, skt_rpcit(t, 0, 1), ZPCI_CC_OK);
	a = skt_rpcit_done(t, pages, &rounds);
	EXPECT_CC(test, a, ZPCI_CC_OK);
	KUNIT_EXPECT_EQ(test, rounds, 2);
	for (n = 0; n < pages; n += 7)
		skt_expect(t, n, 0, false);

	/*
	 * Progress is the vCPU's own. vCPU 0 is half way through; vCPU 1
	 * changes a page vCPU 0 has done and refreshes the same range: its
	 * refresh starts from the beginning, so its change is shadowed.
	 */
	for (n = 0; n < pages; n++)
		gset(t, SKT_PTS + n * 8, skt_data((n >> 8) + (n & 0xff)));
	KUNIT_EXPECT_EQ(test, skt_rpcit(t, 0, pages).action, ZPCI_KVM_RETRY);
	skt_expect(t, 7, skt_data(7), false);
	gset(t, SKT_PTS + 7 * 8, ZPCI_PTE_INVALID);
	t->vcpu = 1;
	a = skt_rpcit_done(t, pages, &rounds);
	EXPECT_CC(test, a, ZPCI_CC_OK);
	KUNIT_EXPECT_EQ(test, rounds, 2);
	skt_expect(t, 7, 0, false);
	/* vCPU 0 goes on where it was, and finishes in one more part */
	t->vcpu = 0;
	EXPECT_CC(test, skt_rpcit(t, 0, pages), ZPCI_CC_OK);
	KUNIT_EXPECT_TRUE(test, xa_empty(&t->skd->resume));
	skt_expect(t, pages - 1, skt_data(((pages - 1) >> 8) + 0xff), false);
}

/*
 * Removing what an invalid region entry covers is work like any other:
 * bounded per intercept, and the records of emptied segments are freed.
 */
static void test_clear_budget(struct kunit *test)
{
	struct skt *t = test->priv;
	unsigned int rounds, pages = 40 * ZPCI_PT_ENTRIES;
	struct zpci_kvm_answer a;
	u64 splits;

	skt_alloc_attach(t, SKT_IOTA);
	skt_fill_segments(t, 40);
	a = skt_rpcit_done(t, pages, &rounds);
	EXPECT_CC(test, a, ZPCI_CC_OK);
	KUNIT_EXPECT_EQ(test, t->skd->nr_mapped, pages);
	splits = t->skd->stats.splits;

	/* The region-third entry goes: all 40 segments at once */
	gset(t, skt_slot(SKT_RT, t->base, S390_KVM_RT),
	     ZPCI_TABLE_INVALID | ZPCI_TABLE_TYPE_RTX);
	a = skt_rpcit_done(t, pages, &rounds);
	EXPECT_CC(test, a, ZPCI_CC_OK);
	/* 40 segments of 256 entries: more than one budget */
	KUNIT_EXPECT_EQ(test, rounds, 2);
	KUNIT_EXPECT_EQ(test, t->skd->stats.splits, splits + 1);
	KUNIT_EXPECT_EQ(test, t->skd->stats.invalidated, pages);
	skt_expect_empty(t);
	KUNIT_EXPECT_TRUE(test, xa_empty(&t->skd->segs));
}

/*
 * A domain made with the guest's IOTA takes over a table the guest already
 * uses: the first attach shadows all of it, without a refresh. A bad table
 * found then puts the function in the error state; the attach still works.
 */
static void test_initial_sync(struct kunit *test)
{
	struct skt *t = test->priv;

	skt_map(t, 0, skt_data(0), false);
	skt_map(t, 300, skt_data(1), true);
	skt_map(t, 8 * ZPCI_PT_ENTRIES - 1, skt_data(2), false);
	skt_alloc_attach(t, SKT_IOTA);
	KUNIT_EXPECT_FALSE(test, t->skd->error);
	skt_expect(t, 0, skt_data(0), false);
	skt_expect(t, 300, skt_data(1), true);
	skt_expect(t, 8 * ZPCI_PT_ENTRIES - 1, skt_data(2), false);
	KUNIT_EXPECT_EQ(test, t->skd->nr_mapped, 3);
	KUNIT_EXPECT_EQ(test, atomic64_read(&t->kdom->stats.syncs), 0);
	/* A second attach does not do it again */
	skt_unmap(t, 0);
	iommu_detach_device(&t->kdom->domain, t->dev);
	KUNIT_ASSERT_EQ(test, 0, iommu_attach_device(&t->kdom->domain, t->dev));
	skt_expect(t, 0, skt_data(0), false);
	skt_free_domain(t);

	/* A frame outside guest memory */
	skt_map(t, 5, SKT_HOLE, false);
	skt_alloc_attach(t, SKT_IOTA);
	KUNIT_EXPECT_TRUE(test, t->skd->error);
	skt_expect_empty(t);
	EXPECT_CC(test, skt_rpcit(t, 0, 1), ZPCI_CC_ERR);
	KUNIT_EXPECT_EQ(test, (t->gprs[1] >> 24) & 0xff,
			ZPCI_KVM_MOD_ST_ERROR_RECOVER);
}

/* The parent's unmap removes every shadow entry into it, before unpin */
static void test_parent_unmap(struct kunit *test)
{
	struct skt *t = test->priv;
	unsigned int n;

	skt_alloc_attach(t, SKT_IOTA);
	for (n = 0; n < 8; n++)
		skt_map(t, n, skt_data(n % 4), false);
	EXPECT_CC(test, skt_rpcit(t, 0, 8), ZPCI_CC_OK);

	/* What iommufd does: unmap from the parent, tell the shadows */
	KUNIT_ASSERT_EQ(test, iommu_unmap(t->parent, skt_data(1), PAGE_SIZE),
			PAGE_SIZE);
	iommu_kvm_domain_parent_unmapped(t->kdom, skt_data(1), PAGE_SIZE);
	for (n = 0; n < 8; n++)
		skt_expect(t, n, n % 4 == 1 ? 0 : skt_data(n % 4), false);
	KUNIT_EXPECT_EQ(test, t->skd->stats.dropped, 2);

	/* A refresh that names the unmapped frame is now an error */
	EXPECT_CC(test, skt_rpcit(t, 2, 1), ZPCI_CC_OK);
	KUNIT_EXPECT_EQ(test, skt_rpcit(t, 1, 1).action, ZPCI_KVM_USERSPACE);
	KUNIT_EXPECT_TRUE(test, t->skd->error);
	skt_expect_empty(t);
	/* And stays one: cc 1, status 40 (error state) */
	EXPECT_CC(test, skt_rpcit(t, 0, 1), ZPCI_CC_ERR);
	KUNIT_EXPECT_EQ(test, (t->gprs[1] >> 24) & 0xff,
			ZPCI_KVM_MOD_ST_ERROR_RECOVER);
	/* Put back for skt_exit() */
	KUNIT_EXPECT_EQ(test, 0, iommu_map(t->parent, skt_data(1),
					   skt_hpa(t, skt_data(1)), PAGE_SIZE,
					   SKT_PAGE_FLAGS, GFP_KERNEL));
}

/* The VM goes away: all DMA is blocked, and intercepts stop */
/*
 * The parent moves a guest table page to another host page (unmap, then
 * map again, as iommufd does): the next walk reads the new page, not the
 * page the last walk remembered.
 */
static void test_parent_remap_table(struct kunit *test)
{
	struct skt *t = test->priv;
	u64 pt_page = SKT_PT & PAGE_MASK;
	phys_addr_t moved = skt_hpa(t, skt_data(15));
	u64 *copy = phys_to_virt(moved);

	skt_alloc_attach(t, SKT_IOTA);
	skt_map(t, 0, skt_data(0), false);
	EXPECT_CC(test, skt_rpcit(t, 0, 1), ZPCI_CC_OK);
	skt_expect(t, 0, skt_data(0), false);

	/* The same page tables at another host page, but page 0 changed */
	memcpy(copy, skt_entry(t, pt_page), PAGE_SIZE);
	copy[(skt_pte_slot(SKT_PT, t->base) - pt_page) / 8] = skt_data(3);
	KUNIT_ASSERT_EQ(test, iommu_unmap(t->parent, pt_page, PAGE_SIZE),
			PAGE_SIZE);
	iommu_kvm_domain_parent_unmapped(t->kdom, pt_page, PAGE_SIZE);
	KUNIT_ASSERT_EQ(test, 0, iommu_map(t->parent, pt_page, moved,
					   PAGE_SIZE, SKT_PAGE_FLAGS,
					   GFP_KERNEL));
	EXPECT_CC(test, skt_rpcit(t, 0, 1), ZPCI_CC_OK);
	skt_expect(t, 0, skt_data(3), false);
	KUNIT_EXPECT_FALSE(test, t->skd->error);

	/* Put back for skt_exit() */
	KUNIT_ASSERT_EQ(test, iommu_unmap(t->parent, pt_page, PAGE_SIZE),
			PAGE_SIZE);
	iommu_kvm_domain_parent_unmapped(t->kdom, pt_page, PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, 0, iommu_map(t->parent, pt_page,
					   skt_hpa(t, pt_page), PAGE_SIZE,
					   SKT_PAGE_FLAGS, GFP_KERNEL));
}

static void test_release(struct kunit *test)
{
	struct skt *t = test->priv;
	unsigned int n;

	skt_alloc_attach(t, SKT_IOTA);
	for (n = 0; n < 8; n++)
		skt_map(t, n, skt_data(n), false);
	EXPECT_CC(test, skt_rpcit(t, 0, 8), ZPCI_CC_OK);

	t->vm->listener.ops->release(&t->vm->listener);
	KUNIT_EXPECT_TRUE(test, iommu_kvm_domain_is_dead(t->kdom));
	skt_expect_empty(t);
	/* The function is gone for the guest */
	EXPECT_CC(test, skt_rpcit(t, 0, 8), ZPCI_CC_INVAL_HANDLE);
	skt_expect_empty(t);
}

/* RPCIT's decoding and answers, from register state */
static void test_rpcit_decode(struct kunit *test)
{
	struct skt *t = test->priv;
	struct zpci_kvm_iommu kvm = skt_kvm;
	struct zpci_kvm_answer a;

	kvm.ctx = t;
	skt_alloc_attach(t, SKT_IOTA);
	skt_map(t, 0, skt_data(0), false);

	t->gprs[1] = (u64)SKT_FH << 32;
	t->gprs[4] = t->base;
	t->gprs[5] = PAGE_SIZE;
	a = zpci_kvm_rpcit(&kvm, t->gprs, 1, 4, true);
	KUNIT_EXPECT_EQ(test, a.action, ZPCI_KVM_PGM);
	KUNIT_EXPECT_EQ(test, a.pgm, ZPCI_KVM_PGM_PRIVILEGED_OP);
	a = zpci_kvm_rpcit(&kvm, t->gprs, 1, 5, false);
	KUNIT_EXPECT_EQ(test, a.action, ZPCI_KVM_PGM);
	KUNIT_EXPECT_EQ(test, a.pgm, ZPCI_KVM_PGM_SPECIFICATION);
	skt_expect(t, 0, 0, false);

	/* Another function's handle: userspace's, as without the domain */
	t->gprs[1] = (u64)(SKT_FH + 1) << 32;
	KUNIT_EXPECT_EQ(test, zpci_kvm_rpcit(&kvm, t->gprs, 1, 4, false).action,
			ZPCI_KVM_USERSPACE);
	t->gprs[5] = 0;
	KUNIT_EXPECT_EQ(test, zpci_kvm_rpcit(&kvm, t->gprs, 1, 4, false).action,
			ZPCI_KVM_USERSPACE);
	/* The handle of the disabled function is the same key */
	t->gprs[1] = (u64)(SKT_FH & ~ZPCI_KVM_FH_ENABLED) << 32;
	KUNIT_EXPECT_EQ(test, zpci_kvm_rpcit(&kvm, t->gprs, 1, 4, false).action,
			ZPCI_KVM_DONE);
	/* An empty range of ours: nothing to do */
	t->gprs[1] = (u64)SKT_FH << 32;
	EXPECT_CC(test, zpci_kvm_rpcit(&kvm, t->gprs, 1, 4, false), ZPCI_CC_OK);
	KUNIT_EXPECT_EQ(test, atomic64_read(&t->kdom->stats.syncs), 0);
	t->gprs[1] = (u64)(SKT_FH & ~ZPCI_KVM_FH_ENABLED) << 32;
	EXPECT_CC(test, zpci_kvm_rpcit(&kvm, t->gprs, 1, 4, false), ZPCI_CC_OK);

	/* The low word of r1 and other registers stay; status when cc 1 */
	t->gprs[1] = ((u64)SKT_FH << 32) | 0xff0000aa;
	t->gprs[4] = t->base;
	t->gprs[5] = PAGE_SIZE;
	EXPECT_CC(test, zpci_kvm_rpcit(&kvm, t->gprs, 1, 4, false), ZPCI_CC_OK);
	KUNIT_EXPECT_EQ(test, t->gprs[1], ((u64)SKT_FH << 32) | 0xff0000aa);
	skt_expect(t, 0, skt_data(0), false);

	/* Out of range: error state, and the VMM raises the event */
	t->gprs[4] = t->base + SZ_64M;
	KUNIT_EXPECT_EQ(test, zpci_kvm_rpcit(&kvm, t->gprs, 1, 4, false).action,
			ZPCI_KVM_USERSPACE);
	KUNIT_EXPECT_TRUE(test, t->skd->error);
	skt_expect(t, 0, 0, false);
	a = zpci_kvm_rpcit(&kvm, t->gprs, 1, 4, false);
	EXPECT_CC(test, a, ZPCI_CC_ERR);
	KUNIT_EXPECT_EQ(test, t->gprs[1],
			((u64)SKT_FH << 32) | (40 << 24) | 0xaa);

	/* The status byte helper alone */
	t->gprs[3] = ~0ULL;
	zpci_kvm_set_status(&t->gprs[3], ZPCI_PCI_ST_INSUF_RES);
	KUNIT_EXPECT_EQ(test, t->gprs[3], (~0ULL & ~0xff000000ULL) | (16 << 24));
}

/* MPCIFC's IOAT operations, from register state */
static void test_mpcifc_decode(struct kunit *test)
{
	struct skt *t = test->priv;
	struct zpci_kvm_iommu kvm = skt_kvm;
	struct zpci_kvm_answer a;
	int fault = 0;

	kvm.ctx = t;
	skt_alloc_attach(t, 0);
	skt_set_fib(t, SKT_IOTA, t->base + 0x123, t->base + SZ_64M - 0x800);

	t->gprs[2] = ((u64)SKT_FH << 32) | ZPCI_MOD_FC_REG_IOAT;
	a = zpci_kvm_mpcifc(&kvm, t->gprs, 2, SKT_FIBA, true, skt_read_fib, t,
			    &fault);
	KUNIT_EXPECT_EQ(test, a.pgm, ZPCI_KVM_PGM_PRIVILEGED_OP);
	a = skt_mpcifc(t, ZPCI_MOD_FC_REG_IOAT, SKT_FIBA + 4, &fault);
	KUNIT_EXPECT_EQ(test, a.action, ZPCI_KVM_PGM);
	KUNIT_EXPECT_EQ(test, a.pgm, ZPCI_KVM_PGM_SPECIFICATION);
	/* Other operations, and other functions, are userspace's */
	KUNIT_EXPECT_EQ(test, skt_mpcifc(t, ZPCI_MOD_FC_REG_INT, SKT_FIBA,
					 &fault).action, ZPCI_KVM_USERSPACE);
	KUNIT_EXPECT_EQ(test, skt_mpcifc(t, ZPCI_MOD_FC_RESET_ERROR, SKT_FIBA,
					 &fault).action, ZPCI_KVM_USERSPACE);
	t->gprs[2] = ((u64)(SKT_FH + 1) << 32) | ZPCI_MOD_FC_REG_IOAT;
	a = zpci_kvm_mpcifc(&kvm, t->gprs, 2, SKT_FIBA, false, skt_read_fib, t,
			    &fault);
	KUNIT_EXPECT_EQ(test, a.action, ZPCI_KVM_USERSPACE);
	/* A FIB the guest cannot access: KVM injects what the access said */
	a = skt_mpcifc(t, ZPCI_MOD_FC_REG_IOAT, SKT_FIBA + 8, &fault);
	KUNIT_EXPECT_EQ(test, a.action, ZPCI_KVM_PGM);
	KUNIT_EXPECT_EQ(test, a.pgm, 0);
	KUNIT_EXPECT_EQ(test, fault, 5);
	t->fib.fmt = 1;
	a = skt_mpcifc(t, ZPCI_MOD_FC_REG_IOAT, SKT_FIBA, &fault);
	KUNIT_EXPECT_EQ(test, a.pgm, ZPCI_KVM_PGM_OPERAND);
	t->fib.fmt = 0;
	t->gprs[2] = ((u64)SKT_FH << 32) | (1 << 16) | ZPCI_MOD_FC_REG_IOAT;
	a = zpci_kvm_mpcifc(&kvm, t->gprs, 2, SKT_FIBA, false, skt_read_fib, t,
			    &fault);
	EXPECT_CC(test, a, ZPCI_CC_ERR);
	KUNIT_EXPECT_EQ(test, (t->gprs[2] >> 24) & 0xff,
			ZPCI_KVM_MOD_ST_DMAAS_INVAL);
	KUNIT_EXPECT_EQ(test, t->skd->iota, 0);
	/* Direct addressing (no translation bit) is the VMM's to set up */
	skt_set_fib(t, SKT_IOTA & ~ZPCI_IOTA_IOT_ENABLED, t->base, t->pal);
	KUNIT_EXPECT_EQ(test, skt_mpcifc(t, ZPCI_MOD_FC_REG_IOAT, SKT_FIBA,
					 &fault).action, ZPCI_KVM_USERSPACE);
	KUNIT_EXPECT_EQ(test, t->skd->iota, 0);
	skt_set_fib(t, SKT_IOTA, t->base + 0x123, t->base + SZ_64M - 0x800);

	/* Register: pba and pal are normalised to pages */
	EXPECT_CC(test, skt_mpcifc(t, ZPCI_MOD_FC_REG_IOAT, SKT_FIBA, &fault),
		  ZPCI_CC_OK);
	KUNIT_EXPECT_EQ(test, t->skd->iota, SKT_IOTA);
	KUNIT_EXPECT_EQ(test, t->skd->pba, t->base);
	KUNIT_EXPECT_EQ(test, t->skd->pal, t->base + SZ_64M - 1);
	/* Out of sequence: cc 1, status 24 */
	a = skt_mpcifc(t, ZPCI_MOD_FC_REG_IOAT, SKT_FIBA, &fault);
	EXPECT_CC(test, a, ZPCI_CC_ERR);
	KUNIT_EXPECT_EQ(test, (t->gprs[2] >> 24) & 0xff,
			ZPCI_KVM_MOD_ST_SEQUENCE);

	/* The shadow follows a reregistration */
	skt_map(t, 0, skt_data(0), false);
	EXPECT_CC(test, skt_rpcit(t, 0, 1), ZPCI_CC_OK);
	skt_fill(t, SKT_ST2, ZPCI_TABLE_SIZE, ZPCI_TABLE_INVALID);
	gset(t, skt_slot(SKT_ST2, t->base, S390_KVM_ST),
	     SKT_PT1);
	gset(t, skt_pte_slot(SKT_PT1, t->base), skt_data(7));
	/* Region-third table at RS's place, naming the second segment table */
	skt_fill(t, SKT_RS, ZPCI_TABLE_SIZE,
		 ZPCI_TABLE_INVALID | ZPCI_TABLE_TYPE_RTX);
	gset(t, skt_slot(SKT_RS, t->base, S390_KVM_RT),
	     rte(SKT_ST2, S390_KVM_RT));
	skt_set_fib(t, SKT_RS | ZPCI_IOTA_RTTO_FLAG, t->base,
		    t->base + SZ_32M - 1);
	EXPECT_CC(test, skt_mpcifc(t, ZPCI_MOD_FC_REREG_IOAT, SKT_FIBA,
				   &fault), ZPCI_CC_OK);
	skt_expect(t, 0, 0, false);
	EXPECT_CC(test, skt_rpcit(t, 0, 1), ZPCI_CC_OK);
	skt_expect(t, 0, skt_data(7), false);
	KUNIT_EXPECT_EQ(test, t->skd->pal, t->base + SZ_32M - 1);
	/* A reregistration to direct addressing leaves the table alone */
	skt_set_fib(t, 0, t->base, t->pal);
	KUNIT_EXPECT_EQ(test, skt_mpcifc(t, ZPCI_MOD_FC_REREG_IOAT, SKT_FIBA,
					 &fault).action, ZPCI_KVM_USERSPACE);
	KUNIT_EXPECT_EQ(test, t->skd->iota, SKT_RS | ZPCI_IOTA_RTTO_FLAG);
	skt_expect(t, 0, skt_data(7), false);

	/* Bad registrations are operand exceptions */
	skt_set_fib(t, SKT_IOTA, t->base + SZ_1M, t->base);
	a = skt_mpcifc(t, ZPCI_MOD_FC_REREG_IOAT, SKT_FIBA, &fault);
	KUNIT_EXPECT_EQ(test, a.pgm, ZPCI_KVM_PGM_OPERAND);
	skt_set_fib(t, SKT_RT | ZPCI_IOTA_RFAA_FLAG, t->base,
		    t->base + SZ_1M - 1);
	a = skt_mpcifc(t, ZPCI_MOD_FC_REG_IOAT, SKT_FIBA, &fault);
	KUNIT_EXPECT_EQ(test, a.pgm, ZPCI_KVM_PGM_OPERAND);
	skt_set_fib(t, SKT_IOTA, t->base, t->zdev->end_dma + SZ_1M);
	a = skt_mpcifc(t, ZPCI_MOD_FC_REG_IOAT, SKT_FIBA, &fault);
	KUNIT_EXPECT_EQ(test, a.pgm, ZPCI_KVM_PGM_OPERAND);

	/* Register again (the failed reregistration deregistered) */
	skt_set_fib(t, SKT_IOTA, t->base, t->pal);
	EXPECT_CC(test, skt_mpcifc(t, ZPCI_MOD_FC_REG_IOAT, SKT_FIBA, &fault),
		  ZPCI_CC_OK);
	/* Deregister, twice */
	EXPECT_CC(test, skt_mpcifc(t, ZPCI_MOD_FC_DEREG_IOAT, SKT_FIBA,
				   &fault), ZPCI_CC_OK);
	KUNIT_EXPECT_EQ(test, t->skd->iota, 0);
	skt_expect_empty(t);
	a = skt_mpcifc(t, ZPCI_MOD_FC_DEREG_IOAT, SKT_FIBA, &fault);
	EXPECT_CC(test, a, ZPCI_CC_ERR);
	KUNIT_EXPECT_EQ(test, (t->gprs[2] >> 24) & 0xff,
			ZPCI_KVM_MOD_ST_SEQUENCE);
	a = skt_mpcifc(t, ZPCI_MOD_FC_REREG_IOAT, SKT_FIBA, &fault);
	EXPECT_CC(test, a, ZPCI_CC_ERR);
}

/*
 * Disabling the function ends its registration: the table goes before the
 * VMM sees the request. Nothing else about CLP changes the domain.
 */
static void test_clp_disable(struct kunit *test)
{
	const u16 len = sizeof(struct clp_req_set_pci);
	struct skt *t = test->priv;
	struct zpci_kvm_iommu kvm = skt_kvm;
	int fault = 0;

	kvm.ctx = t;
	skt_alloc_attach(t, SKT_IOTA);
	skt_map(t, 0, skt_data(0), false);
	EXPECT_CC(test, skt_rpcit(t, 0, 1), ZPCI_CC_OK);
	skt_expect(t, 0, skt_data(0), false);

	/* Requests that do not disable this function leave it alone */
	KUNIT_EXPECT_EQ(test, skt_clp(t, SKT_FH, CLP_SET_ENABLE_MIO,
				      len).action, ZPCI_KVM_USERSPACE);
	KUNIT_EXPECT_EQ(test, skt_clp(t, SKT_FH + 1, CLP_SET_DISABLE_PCI_FN,
				      len).action, ZPCI_KVM_USERSPACE);
	/* A disabled handle names no enabled function */
	skt_clp(t, SKT_FH & ~ZPCI_KVM_FH_ENABLED, CLP_SET_DISABLE_PCI_FN, len);
	skt_clp(t, SKT_FH, CLP_SET_DISABLE_PCI_FN, len - 8);
	t->clp.hdr.cmd = CLP_QUERY_PCI_FN;
	zpci_kvm_clp(&kvm, SKT_CLPA, false, skt_read_clp, t);
	/* Not readable, misaligned, or from problem state: the VMM's */
	t->clp.hdr.cmd = CLP_SET_PCI_FN;
	zpci_kvm_clp(&kvm, SKT_CLPA + 8, false, skt_read_clp, t);
	zpci_kvm_clp(&kvm, SKT_CLPA + 4, false, skt_read_clp, t);
	zpci_kvm_clp(&kvm, SKT_CLPA, true, skt_read_clp, t);
	KUNIT_EXPECT_EQ(test, t->skd->iota, SKT_IOTA);
	skt_expect(t, 0, skt_data(0), false);

	/* The disable: no table, no mapping, and userspace answers */
	KUNIT_EXPECT_EQ(test, skt_clp(t, SKT_FH, CLP_SET_DISABLE_PCI_FN,
				      len).action, ZPCI_KVM_USERSPACE);
	KUNIT_EXPECT_EQ(test, t->skd->iota, 0);
	skt_expect_empty(t);
	/* Enabled again, the guest registers its table again */
	skt_set_fib(t, SKT_IOTA, t->base, t->pal);
	EXPECT_CC(test, skt_mpcifc(t, ZPCI_MOD_FC_REG_IOAT, SKT_FIBA, &fault),
		  ZPCI_CC_OK);
	EXPECT_CC(test, skt_rpcit(t, 0, 1), ZPCI_CC_OK);
	skt_expect(t, 0, skt_data(0), false);
}

#include "kvm_shadow_dma_kunit.c"

static struct kunit_case s390_iommu_kvm_test_cases[] = {
	KUNIT_CASE(test_formats),
	KUNIT_CASE(test_alloc_errors),
	KUNIT_CASE(test_map_resolve),
	KUNIT_CASE(test_detached),
	KUNIT_CASE(test_levels),
	KUNIT_CASE(test_hostile),
	KUNIT_CASE(test_changing_entries),
	KUNIT_CASE(test_split),
	KUNIT_CASE(test_clear_budget),
	KUNIT_CASE(test_initial_sync),
	KUNIT_CASE(test_parent_unmap),
	KUNIT_CASE(test_parent_remap_table),
	KUNIT_CASE(test_release),
	KUNIT_CASE(test_rpcit_decode),
	KUNIT_CASE(test_mpcifc_decode),
	KUNIT_CASE(test_clp_disable),
	KUNIT_CASE(test_nvme_dma),
	{}
};

static struct kunit_suite s390_iommu_kvm_test_suite = {
	.name = "s390_iommu_kvm",
	.suite_init = skt_suite_init,
	.suite_exit = skt_suite_exit,
	.init = skt_init,
	.exit = skt_exit,
	.test_cases = s390_iommu_kvm_test_cases,
};

kunit_test_suite(s390_iommu_kvm_test_suite);

/*
 * Shadow-sync throughput against the kernel half of today's path, where the
 * VMM maps and unmaps every page the guest refreshes with its own ioctl:
 * per-page iommu_map() and iommu_unmap() on a paging domain attached to the
 * same function (each with the refresh the driver does for it). Both map
 * the same pages and unmap them again, after the guest's own table writes,
 * which both paths need; those and the kernel's work are timed, nothing of
 * the exits. make bench runs this suite alone and turns its KVMDOM-BENCH
 * lines into a table.
 */
static const unsigned int skt_bench_sizes[] = { 1, 16, 256, 4096 };

/* Page tables for up to 4096 pages: 16 segments at SKT_PTS */
static void skt_bench_table(struct skt *t, unsigned int pages, bool valid)
{
	unsigned int n;

	for (n = 0; n < pages; n++) {
		if (!(n & ZPCI_PT_MASK))
			gset(t, skt_slot(SKT_ST, t->base + (u64)n * PAGE_SIZE,
					 S390_KVM_ST),
			     SKT_PTS + (n >> ZPCI_PT_BITS) * ZPCI_PT_SIZE);
		gset(t, SKT_PTS + n * 8, valid ? skt_data(n) : ZPCI_PTE_INVALID);
	}
}

/* Rounds per size: each figure is the best round's, as the host is shared */
#define SKT_BENCH_ROUNDS	5

struct skt_bench {
	u64 shadow_ns, ref_ns, unchanged_ns, rpcit_ns;
	u64 shadow_rpcits, ref_rpcits;
};

static u64 skt_ref_rpcits(struct iommu_domain *ref)
{
	return atomic64_read(&to_s390_domain(ref)->ctrs.sync_map_rpcits) +
	       atomic64_read(&to_s390_domain(ref)->ctrs.sync_rpcits);
}

/* One round at @pages: both paths, @reps times, and the extra figures */
static void skt_bench_round(struct skt *t, struct iommu_domain *ref,
			    unsigned int pages, unsigned int reps,
			    struct skt_bench *b)
{
	struct kunit *test = t->test;
	u64 size = (u64)pages * PAGE_SIZE;
	unsigned int n, r;
	u64 t0;

	/*
	 * Today's kernel half: one map and one unmap per page, after the
	 * guest's own table writes, which both paths need and both time
	 */
	KUNIT_ASSERT_EQ(test, 0, iommu_attach_device(ref, t->dev));
	b->ref_rpcits = skt_ref_rpcits(ref);
	t0 = ktime_get_ns();
	for (r = 0; r < reps; r++) {
		skt_bench_table(t, pages, true);
		for (n = 0; n < pages; n++)
			KUNIT_ASSERT_EQ(test, 0,
					iommu_map(ref, t->base + (u64)n * PAGE_SIZE,
						  skt_hpa(t, skt_data(n)),
						  PAGE_SIZE, SKT_PAGE_FLAGS,
						  GFP_KERNEL));
		skt_bench_table(t, pages, false);
		for (n = 0; n < pages; n++)
			KUNIT_ASSERT_EQ(test, PAGE_SIZE,
					iommu_unmap(ref, t->base + (u64)n * PAGE_SIZE,
						    PAGE_SIZE));
	}
	b->ref_ns = ktime_get_ns() - t0;
	b->ref_rpcits = skt_ref_rpcits(ref) - b->ref_rpcits;
	iommu_detach_device(ref, t->dev);

	/*
	 * The shadow: the guest's table changes, one refresh each way. The
	 * reference domain is reused, its tables made in the first round,
	 * so a map and unmap of the range come first, untimed, here too.
	 */
	skt_alloc_attach(t, SKT_IOTA);
	for (r = 0; r < 2; r++) {
		skt_bench_table(t, pages, !(r & 1));
		KUNIT_ASSERT_EQ(test, 0,
				iommu_kvm_domain_sync(t->kdom, 0, t->base,
						      size));
	}
	b->shadow_rpcits = t->skd->stats.refreshes;
	t0 = ktime_get_ns();
	for (r = 0; r < 2 * reps; r++) {
		skt_bench_table(t, pages, !(r & 1));
		KUNIT_ASSERT_EQ(test, 0,
				iommu_kvm_domain_sync(t->kdom, 0, t->base,
						      size));
	}
	b->shadow_ns = ktime_get_ns() - t0;
	b->shadow_rpcits = t->skd->stats.refreshes - b->shadow_rpcits;
	/* Refreshes that change nothing: the walk alone, no RPCIT */
	skt_bench_table(t, pages, true);
	KUNIT_ASSERT_EQ(test, 0,
			iommu_kvm_domain_sync(t->kdom, 0, t->base, size));
	t0 = ktime_get_ns();
	for (r = 0; r < reps; r++)
		KUNIT_ASSERT_EQ(test, 0,
				iommu_kvm_domain_sync(t->kdom, 0, t->base,
						      size));
	b->unchanged_ns = ktime_get_ns() - t0;
	/* The refreshes alone, as the shadow issues them */
	t0 = ktime_get_ns();
	for (r = 0; r < reps; r++)
		zpci_refresh_trans((u64)t->zdev->fh << 32, t->base, size);
	b->rpcit_ns = ktime_get_ns() - t0;
	skt_bench_table(t, pages, false);
	KUNIT_ASSERT_EQ(test, 0,
			iommu_kvm_domain_sync(t->kdom, 0, t->base, size));
	/* It did the work: every page mapped once and unmapped once */
	KUNIT_EXPECT_EQ(test, t->skd->stats.new, (u64)pages * (reps + 2));
	KUNIT_EXPECT_EQ(test, t->skd->stats.invalidated,
			(u64)pages * (reps + 2));
	KUNIT_EXPECT_EQ(test, t->skd->stats.unchanged, (u64)pages * reps);
	KUNIT_EXPECT_EQ(test, t->skd->nr_mapped, 0);
	skt_free_domain(t);
}

static void test_bench(struct kunit *test)
{
	struct skt *t = test->priv;
	struct iommu_domain *ref;
	unsigned int i, round;

	/* The page tables are whole: an attach shadows all of them */
	skt_fill(t, SKT_PTS, 16 * ZPCI_PT_SIZE, ZPCI_PTE_INVALID);
	ref = iommu_paging_domain_alloc(t->dev);
	KUNIT_ASSERT_FALSE(test, IS_ERR(ref));
	for (i = 0; i < ARRAY_SIZE(skt_bench_sizes); i++) {
		unsigned int pages = skt_bench_sizes[i];
		unsigned int reps = max(1U, 1024 / pages);
		struct skt_bench best = {}, b;

		for (round = 0; round < SKT_BENCH_ROUNDS; round++) {
			skt_bench_round(t, ref, pages, reps, &b);
			if (!round) {
				best = b;
				continue;
			}
			best.shadow_ns = min(best.shadow_ns, b.shadow_ns);
			best.ref_ns = min(best.ref_ns, b.ref_ns);
			best.unchanged_ns = min(best.unchanged_ns,
						b.unchanged_ns);
			best.rpcit_ns = min(best.rpcit_ns, b.rpcit_ns);
			/* Counts are the same every round */
			KUNIT_EXPECT_EQ(test, b.shadow_rpcits,
					best.shadow_rpcits);
			KUNIT_EXPECT_EQ(test, b.ref_rpcits, best.ref_rpcits);
		}

		kunit_info(test,
			   "KVMDOM-BENCH {\"pages\": %u, \"reps\": %u, \"rounds\": %u, \"shadow_ns\": %llu, \"per_page_ns\": %llu, \"shadow_rpcits\": %llu, \"per_page_rpcits\": %llu, \"unchanged_ns\": %llu, \"rpcit_ns\": %llu}\n",
			   pages, reps, SKT_BENCH_ROUNDS, best.shadow_ns,
			   best.ref_ns, best.shadow_rpcits, best.ref_rpcits,
			   best.unchanged_ns, best.rpcit_ns);
	}
	iommu_domain_free(ref);
}

static struct kunit_case s390_iommu_kvm_bench_cases[] = {
	KUNIT_CASE(test_bench),
	{}
};

static struct kunit_suite s390_iommu_kvm_bench_suite = {
	.name = "s390_iommu_kvm_bench",
	.suite_init = skt_suite_init,
	.suite_exit = skt_suite_exit,
	.init = skt_init,
	.exit = skt_exit,
	.test_cases = s390_iommu_kvm_bench_cases,
};

kunit_test_suite(s390_iommu_kvm_bench_suite);
