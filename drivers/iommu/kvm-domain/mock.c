// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed IOMMU domains: a mock IOMMU driver and mock devices.
 *
 * This is a test tool (CONFIG_IOMMU_KVM_DOMAIN_TEST), and the worked example
 * of Documentation/driver-api/iommu-kvm-domain.rst: an IOMMU driver that owns
 * its KVM-backed domains. It registers one mock IOMMU for a bus of its own,
 * offering both self-test formats, and /dev/iommu_kvm_mock, whose every open
 * creates a device on that bus, behind the mock IOMMU. Through that file a
 * test binds the device to an iommufd, attaches it, makes it do DMA, asks for
 * shadow syncs and adds devices to its IOMMU group, so the whole uAPI runs on
 * any architecture without IOMMU hardware.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#define pr_fmt(fmt) "iommu-kvm-mock: " fmt

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/idr.h>
#include <linux/iommu.h>
#include <linux/iommu_kvm.h>
#include <linux/iommufd.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/preempt.h>
#include <linux/property.h>
#include <linux/rwsem.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/xarray.h>

#include "../iommu-priv.h"
#include "iommu_kvm_test.h"

#define MOCK_PAGE_SIZE IOMMU_KVM_SELFTEST_PAGE_SIZE
#define MOCK_APERTURE_END ((1ULL << 48) - 1)
#define MOCK_FORMATS (BIT_ULL(IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHARED) | \
		      BIT_ULL(IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHADOW))

static const struct iommu_ops mock_ops;

static struct {
	struct iommu_device iommu;
	struct platform_device *pdev;
	struct notifier_block nb;
} mock_iommu;

/* The bus every mock device sits on, and that only the mock IOMMU serves */
static const struct bus_type mock_bus = {
	.name = "iommu_kvm_mock",
};

static DEFINE_IDA(mock_dev_ida);

/*
 * What the mock IOMMU "hardware" translates each device through: written by
 * the attach ops (under the iommu group mutex) and by release_device, under
 * mock_hw_lock for write; mock DMA and sync hold it for read, so a domain
 * cannot be switched away from, and then freed, under them. Lock order:
 * mock_hw_lock, then a KVM domain's iommu_kvm_domain_lock(), then its
 * spinlock.
 */
static DECLARE_RWSEM(mock_hw_lock);

/* Every mock device, for debugfs; under mock_devs_lock */
static DEFINE_MUTEX(mock_devs_lock);
static LIST_HEAD(mock_devs);

/**
 * struct mock_dev - A mock device, one per open /dev/iommu_kvm_mock
 * @dev: the device, on the mock IOMMU's bus
 * @id: its number
 * @lock: serialises the file's ioctls
 * @idev: iommufd binding, or NULL
 * @attached: @idev is attached to a page table
 * @formats: what the mock IOMMU offers this device, read locklessly
 * @hw_domain: the domain the mock IOMMU translates the device's DMA
 *             through, NULL once the device is released; see mock_hw_lock
 * @leader: while the device is being added, a device whose IOMMU group it
 *          joins; else NULL
 * @node: entry in mock_devs
 * @resv_type: IOMMU_KVM_MOCK_RESV_*, the device's one reserved region
 * @resv_start: its start
 * @resv_length: its length
 */
struct mock_dev {
	struct device dev;
	int id;
	struct mutex lock; /* serialises the ioctls of one device file */
	struct iommufd_device *idev;
	bool attached;
	u64 formats;
	struct iommu_domain *hw_domain;
	struct mock_dev *leader;
	struct list_head node;
	u32 resv_type;
	u64 resv_start;
	u64 resv_length;
};

static struct mock_dev *to_mock_dev(struct device *dev)
{
	if (dev->bus != &mock_bus)
		return NULL;
	return container_of(dev, struct mock_dev, dev);
}

/* Point the "hardware" of @dev at @domain. Called by every attach op. */
static void mock_hw_set(struct device *dev, struct iommu_domain *domain)
{
	lockdep_assert_held_write(&mock_hw_lock);
	WRITE_ONCE(to_mock_dev(dev)->hw_domain, domain);
}

/* Identity, blocked and paging domains of the mock IOMMU */

static int mock_simple_attach(struct iommu_domain *domain, struct device *dev,
			      struct iommu_domain *old)
{
	down_write(&mock_hw_lock);
	mock_hw_set(dev, domain);
	up_write(&mock_hw_lock);
	return 0;
}

static const struct iommu_domain_ops mock_static_ops = {
	.attach_dev = mock_simple_attach,
};

static struct iommu_domain mock_identity_domain = {
	.type = IOMMU_DOMAIN_IDENTITY,
	.ops = &mock_static_ops,
};

static struct iommu_domain mock_blocked_domain = {
	.type = IOMMU_DOMAIN_BLOCKED,
	.ops = &mock_static_ops,
};

/**
 * struct mock_paging_domain - A paging domain: IOVA page -> PFN
 * @domain: the generic domain
 * @pfns: xa_mk_value(pfn) at index iova / MOCK_PAGE_SIZE. Its lock is held
 *        across a mock DMA's copy, so an unmap waits for DMA in flight
 */
struct mock_paging_domain {
	struct iommu_domain domain;
	struct xarray pfns;
};

static struct mock_paging_domain *to_mock_paging(struct iommu_domain *domain)
{
	return container_of(domain, struct mock_paging_domain, domain);
}

static int mock_paging_map_pages(struct iommu_domain *domain,
				 unsigned long iova, phys_addr_t paddr,
				 size_t pgsize, size_t pgcount, int prot,
				 gfp_t gfp, size_t *mapped)
{
	struct mock_paging_domain *mpd = to_mock_paging(domain);
	unsigned long start = iova;
	size_t i;
	int ret;

	if (WARN_ON(pgsize != MOCK_PAGE_SIZE))
		return -EINVAL;
	for (i = 0; i != pgcount; i++) {
		ret = xa_err(xa_store(&mpd->pfns, iova / MOCK_PAGE_SIZE,
				      xa_mk_value(PHYS_PFN(paddr)), gfp));
		if (ret) {
			while (iova != start) {
				iova -= MOCK_PAGE_SIZE;
				xa_erase(&mpd->pfns, iova / MOCK_PAGE_SIZE);
			}
			return ret;
		}
		iova += MOCK_PAGE_SIZE;
		paddr += MOCK_PAGE_SIZE;
		*mapped += MOCK_PAGE_SIZE;
	}
	return 0;
}

static size_t mock_paging_unmap_pages(struct iommu_domain *domain,
				      unsigned long iova, size_t pgsize,
				      size_t pgcount,
				      struct iommu_iotlb_gather *gather)
{
	struct mock_paging_domain *mpd = to_mock_paging(domain);
	size_t i;

	/* iommufd tells the shadows built on a nest parent, before unpin */
	for (i = 0; i != pgcount; i++)
		xa_erase(&mpd->pfns, iova / MOCK_PAGE_SIZE + i);
	return pgsize * pgcount;
}

static phys_addr_t mock_paging_iova_to_phys(struct iommu_domain *domain,
					    dma_addr_t iova)
{
	struct mock_paging_domain *mpd = to_mock_paging(domain);
	void *entry = xa_load(&mpd->pfns, iova / MOCK_PAGE_SIZE);

	if (!entry)
		return 0;
	return PFN_PHYS(xa_to_value(entry)) + iova % MOCK_PAGE_SIZE;
}

static void mock_paging_free(struct iommu_domain *domain)
{
	struct mock_paging_domain *mpd = to_mock_paging(domain);

	WARN_ON(!xa_empty(&mpd->pfns));
	xa_destroy(&mpd->pfns);
	kfree(mpd);
}

static const struct iommu_domain_ops mock_paging_ops = {
	.attach_dev = mock_simple_attach,
	.map_pages = mock_paging_map_pages,
	.unmap_pages = mock_paging_unmap_pages,
	.iova_to_phys = mock_paging_iova_to_phys,
	.free = mock_paging_free,
};

/* A nest parent is an ordinary paging domain: iommufd tells its shadows */
static struct iommu_domain *
mock_domain_alloc_paging(struct device *dev, u32 flags,
			 const struct iommu_user_data *user_data)
{
	struct mock_paging_domain *mpd;

	if (user_data || (flags & ~IOMMU_HWPT_ALLOC_NEST_PARENT))
		return ERR_PTR(-EOPNOTSUPP);
	mpd = kzalloc_obj(*mpd, GFP_KERNEL_ACCOUNT);
	if (!mpd)
		return ERR_PTR(-ENOMEM);
	xa_init(&mpd->pfns);
	mpd->domain.type = IOMMU_DOMAIN_UNMANAGED;
	mpd->domain.ops = &mock_paging_ops;
	mpd->domain.pgsize_bitmap = MOCK_PAGE_SIZE;
	mpd->domain.geometry.aperture_end = MOCK_APERTURE_END;
	mpd->domain.geometry.force_aperture = true;
	return &mpd->domain;
}

/* The KVM-backed domains of the mock IOMMU */

/**
 * struct mock_shadow_entry - One entry of the mock's shadow table
 * @gpa: guest physical address the guest entry named
 * @phys: host address the parent mapped @gpa to
 * @valid: the entry translates
 */
struct mock_shadow_entry {
	u64 gpa;
	phys_addr_t phys;
	bool valid;
};

/**
 * struct mock_kvm_domain - A KVM-backed domain of the mock IOMMU
 * @kdom: the library's part, holding the generic domain
 * @lock: protects everything below; held across a mock DMA's copy
 * @blocked: the VM is gone, all DMA faults
 * @inv_start: first address of the last invalidation
 * @inv_last: last address of the last invalidation
 * @inv_seq: bumped by every invalidation and by the block
 * @inv_atomic: invalidations that reached the mock with preemption off
 * @pages: shared format: what the mock IOMMU found when it looked a guest
 *         frame up in KVM (IOMMU_KVM_MOCK_FAULT), its "walk" of KVM's
 *         table: at index gfn, the pinned page, tagged MOCK_PAGE_WRITABLE
 *         if it was looked up for writing. Dropped by invalidations
 * @nr_pages: entries in @pages
 * @table_gpa: guest table (shadow format)
 * @nr_entries: its entries
 * @shadow: the shadow table, @nr_entries entries
 */
struct mock_kvm_domain {
	struct iommu_kvm_domain kdom;
	spinlock_t lock; /* protects the members below */
	bool blocked;
	u64 inv_start;
	u64 inv_last;
	u64 inv_seq;
	u64 inv_atomic;
	struct xarray pages;
	unsigned long nr_pages;
	u64 table_gpa;
	u32 nr_entries;
	struct mock_shadow_entry *shadow;
};

#define MOCK_PAGE_WRITABLE 1

/* Let go of the guest pages in [@first, @last]; under mkd->lock */
static void mock_kvm_drop_pages(struct mock_kvm_domain *mkd, u64 first,
				u64 last)
{
	unsigned long idx;
	void *entry;

	lockdep_assert_held(&mkd->lock);
	if (first > ULONG_MAX)
		return;
	last = min_t(u64, last, ULONG_MAX);
	xa_for_each_range(&mkd->pages, idx, entry, first, last) {
		xa_erase(&mkd->pages, idx);
		unpin_user_page(xa_untag_pointer(entry));
		mkd->nr_pages--;
	}
}

static struct mock_kvm_domain *to_mock_kvm_domain(struct iommu_kvm_domain *kdom)
{
	return container_of(kdom, struct mock_kvm_domain, kdom);
}

static const struct iommu_domain_ops mock_kvm_domain_ops;
static const struct iommu_kvm_domain_ops mock_kvm_ops;
static void mock_kvm_domain_free(struct iommu_domain *domain);

/* iommu_ops->kvm_formats */
static u64 mock_kvm_formats(struct device *dev, u64 *shadow_formats)
{
	struct mock_dev *mdev = to_mock_dev(dev);
	u64 formats = mdev ? READ_ONCE(mdev->formats) : 0;

	*shadow_formats = formats & BIT_ULL(IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHADOW);
	return formats;
}

/* iommu_ops->domain_alloc_kvm */
static struct iommu_domain *
mock_domain_alloc_kvm(struct device *dev,
		      const struct iommu_kvm_domain_cfg *cfg)
{
	bool shadow = cfg->format == IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHADOW;
	struct iommu_hwpt_kvm_selftest data = {};
	struct mock_kvm_domain *mkd;
	int ret;

	if (cfg->user_data) {
		ret = iommu_copy_struct_from_user(&data, cfg->user_data,
						  IOMMU_HWPT_KVM_DATA_SELFTEST,
						  table_gpa);
		if (ret)
			return ERR_PTR(ret);
	} else if (shadow) {
		/* A shadow needs to know where the guest table is */
		return ERR_PTR(-EINVAL);
	}
	if (data.flags)
		return ERR_PTR(-EINVAL);
	if (shadow && (!data.nr_entries ||
		       data.nr_entries > IOMMU_KVM_SELFTEST_MAX_ENTRIES ||
		       !IS_ALIGNED(data.table_gpa, sizeof(u64))))
		return ERR_PTR(-EINVAL);
	if (!shadow && (data.nr_entries || data.table_gpa))
		return ERR_PTR(-EINVAL);

	mkd = kzalloc_obj(*mkd, GFP_KERNEL_ACCOUNT);
	if (!mkd)
		return ERR_PTR(-ENOMEM);
	spin_lock_init(&mkd->lock);
	xa_init(&mkd->pages);
	if (shadow) {
		mkd->shadow = kcalloc(data.nr_entries, sizeof(*mkd->shadow),
				      GFP_KERNEL_ACCOUNT);
		if (!mkd->shadow) {
			ret = -ENOMEM;
			goto out_free;
		}
		mkd->nr_entries = data.nr_entries;
		mkd->table_gpa = data.table_gpa;
	}
	ret = iommu_kvm_domain_init(&mkd->kdom, &mock_kvm_ops, cfg);
	if (ret)
		goto out_free;
	mkd->kdom.domain.ops = &mock_kvm_domain_ops;
	/*
	 * The "guest" names the table it updated by a handle, as s390 names
	 * a function: the mock uses the domain's ID, which tests can read.
	 */
	if (shadow) {
		ret = iommu_kvm_domain_set_sync_key(&mkd->kdom, mkd->kdom.id);
		if (ret) {
			mock_kvm_domain_free(&mkd->kdom.domain);
			return ERR_PTR(ret);
		}
	}
	return &mkd->kdom.domain;

out_free:
	kfree(mkd->shadow);
	kfree(mkd);
	return ERR_PTR(ret);
}

static void mock_kvm_domain_free(struct iommu_domain *domain)
{
	struct mock_kvm_domain *mkd =
		to_mock_kvm_domain(to_iommu_kvm_domain(domain));

	unsigned long flags;

	/* Stops KVM's notifications before the structure goes */
	iommu_kvm_domain_deinit(&mkd->kdom);
	spin_lock_irqsave(&mkd->lock, flags);
	mock_kvm_drop_pages(mkd, 0, U64_MAX);
	spin_unlock_irqrestore(&mkd->lock, flags);
	xa_destroy(&mkd->pages);
	kfree(mkd->shadow);
	kfree(mkd);
}

/*
 * Attach is idempotent, and a domain whose VM is gone still takes a device
 * the iommu core puts back on it (after a reset, or when it rolls back a
 * failed replace of a multi-device group): the device is then blocked, as
 * the whole domain is. iommufd refuses new attachments to a dead domain
 * before they get here.
 */
static int mock_kvm_attach_dev(struct iommu_domain *domain,
			       struct device *dev, struct iommu_domain *old)
{
	struct iommu_kvm_domain *kdom = to_iommu_kvm_domain(domain);
	u64 shadow;

	/*
	 * Check on every attach, not just at allocation, that the device's
	 * IOMMU can use this domain: IOMMUs of one driver can differ.
	 */
	if (!to_mock_dev(dev) ||
	    !(mock_kvm_formats(dev, &shadow) & BIT_ULL(kdom->format)))
		return -EINVAL;

	down_write(&mock_hw_lock);
	/* Keeps ops->block from running half-way through */
	iommu_kvm_domain_lock(kdom);
	mock_hw_set(dev, domain);
	iommu_kvm_domain_unlock(kdom);
	up_write(&mock_hw_lock);
	return 0;
}

static const struct iommu_domain_ops mock_kvm_domain_ops = {
	.attach_dev = mock_kvm_attach_dev,
	.free = mock_kvm_domain_free,
};

static void mock_kvm_invalidate(struct iommu_kvm_domain *kdom, u64 start,
				u64 last)
{
	struct mock_kvm_domain *mkd = to_mock_kvm_domain(kdom);
	/* Reported with preemption off: from under a spinlock (mmu_lock) */
	bool atomic = !preemptible();
	unsigned long flags;
	u32 i;

	spin_lock_irqsave(&mkd->lock, flags);
	mkd->inv_start = start;
	mkd->inv_last = last;
	mkd->inv_seq++;
	mkd->inv_atomic += atomic;
	mock_kvm_drop_pages(mkd, start >> PAGE_SHIFT, last >> PAGE_SHIFT);
	for (i = 0; i < mkd->nr_entries; i++)
		if (mkd->shadow[i].valid && mkd->shadow[i].gpa >= start &&
		    mkd->shadow[i].gpa <= last)
			mkd->shadow[i].valid = false;
	spin_unlock_irqrestore(&mkd->lock, flags);
}

static void mock_kvm_block(struct iommu_kvm_domain *kdom)
{
	struct mock_kvm_domain *mkd = to_mock_kvm_domain(kdom);
	unsigned long flags;
	u32 i;

	spin_lock_irqsave(&mkd->lock, flags);
	mkd->blocked = true;
	mkd->inv_seq++;
	mock_kvm_drop_pages(mkd, 0, U64_MAX);
	for (i = 0; i < mkd->nr_entries; i++)
		mkd->shadow[i].valid = false;
	spin_unlock_irqrestore(&mkd->lock, flags);
}

static int mock_kvm_sync(struct iommu_kvm_domain *kdom, unsigned int vcpu_idx,
			 u64 iova, u64 size)
{
	struct mock_kvm_domain *mkd = to_mock_kvm_domain(kdom);
	u64 first, last, pte;
	unsigned long flags;
	phys_addr_t phys;
	u64 i;
	int ret;

	if (!size) {
		first = 0;
		last = mkd->nr_entries - 1;
	} else {
		if (iova + size - 1 < iova)
			return -EINVAL;
		first = iova / MOCK_PAGE_SIZE;
		last = (iova + size - 1) / MOCK_PAGE_SIZE;
		if (last >= mkd->nr_entries)
			return -EINVAL;
	}

	for (i = first; i <= last; i++) {
		struct mock_shadow_entry new = {};

		ret = iommu_kvm_parent_read(kdom, mkd->table_gpa + i * 8, &pte,
					    sizeof(pte));
		if (ret)
			return ret;
		pte = le64_to_cpu((__force __le64)pte);
		if (pte & IOMMU_KVM_SELFTEST_PTE_VALID) {
			new.gpa = pte & ~(MOCK_PAGE_SIZE - 1);
			phys = iommu_iova_to_phys(kdom->parent, new.gpa);
			if (!phys)
				return -EFAULT;
			new.phys = phys;
			new.valid = true;
		}
		spin_lock_irqsave(&mkd->lock, flags);
		mkd->shadow[i] = new;
		spin_unlock_irqrestore(&mkd->lock, flags);
	}
	return 0;
}

static u32 mock_kvm_shadow_count(struct mock_kvm_domain *mkd)
{
	u32 i, n = 0;

	for (i = 0; i < mkd->nr_entries; i++)
		n += mkd->shadow[i].valid;
	return n;
}

static void mock_kvm_debugfs_show(struct iommu_kvm_domain *kdom,
				  struct seq_file *s)
{
	struct mock_kvm_domain *mkd = to_mock_kvm_domain(kdom);
	struct mock_dev *mdev;
	unsigned long flags;

	/* The devices the "hardware" has on the domain; only compared */
	mutex_lock(&mock_devs_lock);
	list_for_each_entry(mdev, &mock_devs, node)
		if (READ_ONCE(mdev->hw_domain) == &kdom->domain)
			seq_printf(s, "  dev %s\n", dev_name(&mdev->dev));
	mutex_unlock(&mock_devs_lock);

	spin_lock_irqsave(&mkd->lock, flags);
	seq_printf(s, "  mock blocked=%d shadow_entries=%u/%u last_invalidation=0x%llx-0x%llx\n",
		   mkd->blocked, mock_kvm_shadow_count(mkd), mkd->nr_entries,
		   mkd->inv_start, mkd->inv_last);
	spin_unlock_irqrestore(&mkd->lock, flags);
}

static const struct iommu_kvm_domain_ops mock_kvm_ops = {
	.name = "mock",
	.invalidate = mock_kvm_invalidate,
	.block = mock_kvm_block,
	.sync = mock_kvm_sync,
	.debugfs_show = mock_kvm_debugfs_show,
};

/* The mock IOMMU driver */

static bool mock_capable(struct device *dev, enum iommu_cap cap)
{
	return cap == IOMMU_CAP_CACHE_COHERENCY;
}

static struct iommu_device *mock_probe_device(struct device *dev)
{
	if (!to_mock_dev(dev))
		return ERR_PTR(-ENODEV);
	return &mock_iommu.iommu;
}

/* The one reserved region a test gave the device, if any */
static void mock_get_resv_regions(struct device *dev, struct list_head *head)
{
	static const enum iommu_resv_type types[] = {
		[IOMMU_KVM_MOCK_RESV_SW_MSI] = IOMMU_RESV_SW_MSI,
		[IOMMU_KVM_MOCK_RESV_DIRECT] = IOMMU_RESV_DIRECT,
		[IOMMU_KVM_MOCK_RESV_DIRECT_RELAXABLE] =
			IOMMU_RESV_DIRECT_RELAXABLE,
	};
	struct mock_dev *mdev = to_mock_dev(dev);
	struct iommu_resv_region *region;
	u32 type = READ_ONCE(mdev->resv_type);

	if (type == IOMMU_KVM_MOCK_RESV_NONE || type >= ARRAY_SIZE(types))
		return;
	region = iommu_alloc_resv_region(READ_ONCE(mdev->resv_start),
					 READ_ONCE(mdev->resv_length),
					 IOMMU_READ | IOMMU_WRITE, types[type],
					 GFP_KERNEL);
	if (region)
		list_add_tail(&region->list, head);
}

/* The device is going away: its DMA translates through nothing any more */
static void mock_release_device(struct device *dev)
{
	down_write(&mock_hw_lock);
	mock_hw_set(dev, NULL);
	up_write(&mock_hw_lock);
}

static struct iommu_group *mock_device_group(struct device *dev)
{
	struct mock_dev *mdev = to_mock_dev(dev);

	/* A sibling joins its leader's group */
	if (mdev->leader)
		return iommu_group_ref_get(mdev->leader->dev.iommu_group);
	return generic_device_group(dev);
}

static int mock_def_domain_type(struct device *dev)
{
	return IOMMU_DOMAIN_IDENTITY;
}

static const struct iommu_ops mock_ops = {
	.owner = THIS_MODULE,
	.capable = mock_capable,
	.probe_device = mock_probe_device,
	.release_device = mock_release_device,
	.get_resv_regions = mock_get_resv_regions,
	.device_group = mock_device_group,
	.def_domain_type = mock_def_domain_type,
	.domain_alloc_paging_flags = mock_domain_alloc_paging,
	.kvm_formats = mock_kvm_formats,
	.domain_alloc_kvm = mock_domain_alloc_kvm,
	.identity_domain = &mock_identity_domain,
	.blocked_domain = &mock_blocked_domain,
	.default_domain_ops = &mock_paging_ops,
};

/* Mock DMA: copy between @buf and what @iova translates to */

static int mock_copy_phys(phys_addr_t phys, void *buf, size_t len, bool write)
{
	void *va;

	if (!pfn_valid(PHYS_PFN(phys)))
		return -EFAULT;
	va = kmap_local_page(pfn_to_page(PHYS_PFN(phys)));
	if (write)
		memcpy(va + offset_in_page(phys), buf, len);
	else
		memcpy(buf, va + offset_in_page(phys), len);
	kunmap_local(va);
	return 0;
}

static int mock_dma_paging(struct mock_paging_domain *mpd,
			   struct iommu_kvm_mock_dma *cmd, void *buf)
{
	bool write = cmd->flags & IOMMU_KVM_MOCK_DMA_WRITE;
	void *entry;
	int ret;

	xa_lock(&mpd->pfns);
	entry = xa_load(&mpd->pfns, cmd->iova / MOCK_PAGE_SIZE);
	if (!entry)
		ret = -EFAULT;
	else
		ret = mock_copy_phys(PFN_PHYS(xa_to_value(entry)) +
				     cmd->iova % MOCK_PAGE_SIZE,
				     buf, cmd->length, write);
	xa_unlock(&mpd->pfns);
	return ret;
}

/*
 * Shared: the IOVA is the guest physical address, and the mock IOMMU
 * reaches what KVM mapped there when it last looked (IOMMU_KVM_MOCK_FAULT),
 * unless KVM invalidated it since. Under mkd->lock.
 */
static int mock_dma_shared(struct mock_kvm_domain *mkd,
			   struct iommu_kvm_mock_dma *cmd, void *buf,
			   struct page **dirty)
{
	bool write = cmd->flags & IOMMU_KVM_MOCK_DMA_WRITE;
	struct page *page;
	void *entry;

	if (cmd->iova >> PAGE_SHIFT > ULONG_MAX)
		return -EFAULT;
	entry = xa_load(&mkd->pages, cmd->iova >> PAGE_SHIFT);
	if (!entry || (write && xa_pointer_tag(entry) != MOCK_PAGE_WRITABLE))
		return -EFAULT;
	page = xa_untag_pointer(entry);
	cmd->out_gpa = cmd->iova;
	mock_copy_phys(page_to_phys(page) + offset_in_page(cmd->iova), buf,
		       cmd->length, write);
	if (write) {
		/* Marked dirty once the lock is dropped */
		get_page(page);
		*dirty = page;
	}
	return 0;
}

static int mock_dma_kvm(struct mock_kvm_domain *mkd,
			struct iommu_kvm_mock_dma *cmd, void *buf)
{
	bool write = cmd->flags & IOMMU_KVM_MOCK_DMA_WRITE;
	u64 idx = cmd->iova / MOCK_PAGE_SIZE;
	u64 off = cmd->iova % MOCK_PAGE_SIZE;
	struct page *dirty = NULL;
	unsigned long flags;
	int ret = 0;

	spin_lock_irqsave(&mkd->lock, flags);
	if (mkd->blocked) {
		ret = -ENODEV;
	} else if (!mkd->shadow) {
		ret = mock_dma_shared(mkd, cmd, buf, &dirty);
	} else if (idx >= mkd->nr_entries || !mkd->shadow[idx].valid) {
		ret = -EFAULT;
	} else {
		cmd->out_gpa = mkd->shadow[idx].gpa + off;
		ret = mock_copy_phys(mkd->shadow[idx].phys + off, buf,
				     cmd->length, write);
	}
	spin_unlock_irqrestore(&mkd->lock, flags);
	if (dirty) {
		set_page_dirty_lock(dirty);
		put_page(dirty);
	}
	if (ret)
		iommu_kvm_domain_report_fault(&mkd->kdom);
	return ret;
}

static int mock_dev_dma(struct mock_dev *mdev, void __user *arg)
{
	struct iommu_kvm_mock_dma cmd;
	struct iommu_domain *domain;
	void *buf;
	int ret;

	if (copy_from_user(&cmd, arg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.argsz < sizeof(cmd) || (cmd.flags & ~IOMMU_KVM_MOCK_DMA_WRITE))
		return -EINVAL;
	if (!cmd.length || cmd.length > MOCK_PAGE_SIZE ||
	    cmd.iova % MOCK_PAGE_SIZE + cmd.length > MOCK_PAGE_SIZE)
		return -EINVAL;

	buf = kzalloc(cmd.length, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	if ((cmd.flags & IOMMU_KVM_MOCK_DMA_WRITE) &&
	    copy_from_user(buf, u64_to_user_ptr(cmd.uptr), cmd.length)) {
		ret = -EFAULT;
		goto out_free;
	}

	cmd.out_gpa = 0;
	/* DMA goes where the "hardware" points, whatever the core thinks */
	down_read(&mock_hw_lock);
	domain = mdev->hw_domain;
	if (!domain || domain->type == IOMMU_DOMAIN_BLOCKED)
		ret = -ENODEV;
	else if (domain->ops == &mock_paging_ops)
		ret = mock_dma_paging(to_mock_paging(domain), &cmd, buf);
	else if (domain->ops == &mock_kvm_domain_ops)
		ret = mock_dma_kvm(to_mock_kvm_domain(to_iommu_kvm_domain(domain)),
				   &cmd, buf);
	else
		ret = -EOPNOTSUPP; /* identity: no DMA to raw memory */
	up_read(&mock_hw_lock);
	if (ret)
		goto out_free;

	if (!(cmd.flags & IOMMU_KVM_MOCK_DMA_WRITE) &&
	    copy_to_user(u64_to_user_ptr(cmd.uptr), buf, cmd.length))
		ret = -EFAULT;
	else if (copy_to_user(arg, &cmd, sizeof(cmd)))
		ret = -EFAULT;
out_free:
	kfree(buf);
	return ret;
}

/* The KVM domain @mdev translates through, or NULL; under mock_hw_lock */
static struct mock_kvm_domain *mock_dev_kvm_domain(struct mock_dev *mdev)
{
	struct iommu_domain *domain = mdev->hw_domain;

	lockdep_assert_held(&mock_hw_lock);
	if (!domain || domain->ops != &mock_kvm_domain_ops)
		return NULL;
	return to_mock_kvm_domain(to_iommu_kvm_domain(domain));
}

static int mock_dev_sync(struct mock_dev *mdev, void __user *arg)
{
	struct iommu_kvm_mock_sync cmd;
	struct mock_kvm_domain *mkd;
	int ret;

	if (copy_from_user(&cmd, arg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.argsz < sizeof(cmd) || cmd.__reserved)
		return -EINVAL;
	down_read(&mock_hw_lock);
	mkd = mock_dev_kvm_domain(mdev);
	ret = mkd ? iommu_kvm_domain_sync(&mkd->kdom, 0, cmd.iova, cmd.size) :
		    -EINVAL;
	up_read(&mock_hw_lock);
	return ret;
}

/*
 * Look @gfn up in KVM, as an IOMMU that walks KVM's table finds what KVM
 * mapped, and keep what KVM returned unless an invalidation came in
 * between. Process context.
 */
static int mock_kvm_fault_one(struct mock_kvm_domain *mkd, u64 gfn,
			      bool write)
{
	unsigned long flags;
	struct page *page;
	void *old;
	u64 seq;
	int ret;

	if (gfn > ULONG_MAX)
		return -EFAULT;
	do {
		/*
		 * So that the store under the spinlock need not allocate; a
		 * lookup of the same frame racing with this one may release
		 * the reservation, and then the store may fail, cleanly.
		 */
		ret = xa_reserve(&mkd->pages, gfn, GFP_KERNEL_ACCOUNT);
		if (ret)
			return ret;
		spin_lock_irqsave(&mkd->lock, flags);
		seq = mkd->inv_seq;
		spin_unlock_irqrestore(&mkd->lock, flags);

		ret = iommu_kvm_domain_pin_gfn(&mkd->kdom, gfn, write, &page);
		if (ret)
			break;

		spin_lock_irqsave(&mkd->lock, flags);
		if (mkd->blocked) {
			ret = -ENODEV;
		} else if (mkd->inv_seq != seq) {
			/* KVM may have invalidated what it gave us: again */
			ret = -EAGAIN;
		} else if (!xa_load(&mkd->pages, gfn) &&
			   mkd->nr_pages >= IOMMU_KVM_MOCK_FAULT_MAX_HELD) {
			ret = -ENOSPC;
		} else {
			old = xa_store(&mkd->pages, gfn,
				       xa_tag_pointer(page, write ?
						      MOCK_PAGE_WRITABLE : 0),
				       GFP_ATOMIC);
			if (xa_is_err(old)) {
				ret = xa_err(old);
			} else {
				if (old)
					unpin_user_page(xa_untag_pointer(old));
				else
					mkd->nr_pages++;
				page = NULL;
			}
		}
		spin_unlock_irqrestore(&mkd->lock, flags);
		if (page)
			unpin_user_page(page);
		if (ret == -EAGAIN && fatal_signal_pending(current))
			ret = -EINTR;
		cond_resched();
	} while (ret == -EAGAIN);
	/* Drops the reservation if nothing was stored */
	if (ret)
		xa_release(&mkd->pages, gfn);
	return ret;
}

static int mock_dev_fault(struct mock_dev *mdev, void __user *arg)
{
	struct iommu_kvm_mock_fault cmd;
	struct mock_kvm_domain *mkd;
	u64 gfn, last;
	int ret = 0;

	if (copy_from_user(&cmd, arg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.argsz < sizeof(cmd) ||
	    (cmd.flags & ~IOMMU_KVM_MOCK_FAULT_WRITE) || !cmd.length ||
	    cmd.gpa + cmd.length - 1 < cmd.gpa)
		return -EINVAL;
	gfn = cmd.gpa >> PAGE_SHIFT;
	last = (cmd.gpa + cmd.length - 1) >> PAGE_SHIFT;
	if (last - gfn >= IOMMU_KVM_MOCK_FAULT_MAX_PAGES)
		return -EINVAL;

	/*
	 * Held across KVM's lookup, which may fault pages in: attach ops of
	 * every mock device wait meanwhile. A test tool can afford that.
	 */
	down_read(&mock_hw_lock);
	mkd = mock_dev_kvm_domain(mdev);
	if (!mkd || mkd->shadow)
		ret = -EINVAL;
	for (; !ret && gfn <= last; gfn++)
		ret = mock_kvm_fault_one(mkd, gfn,
					 cmd.flags & IOMMU_KVM_MOCK_FAULT_WRITE);
	up_read(&mock_hw_lock);
	return ret;
}

static int mock_dev_info(struct mock_dev *mdev, void __user *arg)
{
	struct iommu_kvm_mock_info cmd = {};
	struct mock_kvm_domain *mkd;
	unsigned long flags;
	u32 argsz;

	if (get_user(argsz, (u32 __user *)arg))
		return -EFAULT;
	/* A caller of before out_atomic_invalidations gets what it knows */
	if (argsz < offsetofend(struct iommu_kvm_mock_info, out_shadow_entries))
		return -EINVAL;
	down_read(&mock_hw_lock);
	mkd = mock_dev_kvm_domain(mdev);
	if (mkd) {
		cmd.out_flags = IOMMU_KVM_MOCK_INFO_KVM;
		cmd.out_domain_id = mkd->kdom.id;
		cmd.out_invalidations =
			atomic64_read(&mkd->kdom.stats.invalidations);
		spin_lock_irqsave(&mkd->lock, flags);
		if (mkd->blocked)
			cmd.out_flags |= IOMMU_KVM_MOCK_INFO_DEAD;
		cmd.out_inv_start = mkd->inv_start;
		cmd.out_inv_last = mkd->inv_last;
		/* Without a preempt count, preemptible() is always false */
		cmd.out_atomic_invalidations =
			IS_ENABLED(CONFIG_PREEMPT_COUNT) ? mkd->inv_atomic : U64_MAX;
		cmd.out_shadow_entries = mkd->shadow ?
			mock_kvm_shadow_count(mkd) : mkd->nr_pages;
		spin_unlock_irqrestore(&mkd->lock, flags);
	}
	up_read(&mock_hw_lock);
	cmd.argsz = min_t(u32, argsz, sizeof(cmd));
	return copy_to_user(arg, &cmd, cmd.argsz) ? -EFAULT : 0;
}

static int mock_dev_bind(struct mock_dev *mdev, void __user *arg)
{
	struct iommu_kvm_mock_bind cmd;
	struct iommufd_device *idev;
	struct iommufd_ctx *ictx;
	u32 id;

	if (copy_from_user(&cmd, arg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.argsz < sizeof(cmd) || cmd.__reserved)
		return -EINVAL;
	if (mdev->idev)
		return -EBUSY;

	ictx = iommufd_ctx_from_fd(cmd.iommufd);
	if (IS_ERR(ictx))
		return PTR_ERR(ictx);
	idev = iommufd_device_bind(ictx, &mdev->dev, &id);
	iommufd_ctx_put(ictx);
	if (IS_ERR(idev))
		return PTR_ERR(idev);

	cmd.out_dev_id = id;
	if (copy_to_user(arg, &cmd, sizeof(cmd))) {
		iommufd_device_unbind(idev);
		return -EFAULT;
	}
	mdev->idev = idev;
	return 0;
}

static int mock_dev_attach(struct mock_dev *mdev, void __user *arg)
{
	struct iommu_kvm_mock_attach cmd;
	int ret;

	if (copy_from_user(&cmd, arg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.argsz < sizeof(cmd))
		return -EINVAL;
	if (!mdev->idev)
		return -EINVAL;

	if (mdev->attached)
		return iommufd_device_replace(mdev->idev, IOMMU_NO_PASID,
					      &cmd.pt_id);
	ret = iommufd_device_attach(mdev->idev, IOMMU_NO_PASID, &cmd.pt_id);
	if (!ret)
		mdev->attached = true;
	return ret;
}

static int mock_dev_detach(struct mock_dev *mdev)
{
	if (!mdev->attached)
		return -EINVAL;
	iommufd_device_detach(mdev->idev, IOMMU_NO_PASID);
	mdev->attached = false;
	return 0;
}

static int mock_dev_set_formats(struct mock_dev *mdev, void __user *arg)
{
	struct iommu_kvm_mock_set_formats cmd;

	if (copy_from_user(&cmd, arg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.argsz < sizeof(cmd) || cmd.__reserved ||
	    (cmd.formats & ~MOCK_FORMATS))
		return -EINVAL;
	WRITE_ONCE(mdev->formats, cmd.formats);
	return 0;
}

static int mock_dev_add_sibling(struct mock_dev *mdev, void __user *arg);

/* What KVM's intercept of a guest table update does (s390 RPCIT) */
static int mock_dev_intercept(void __user *arg)
{
	struct iommu_kvm_mock_intercept cmd;

	if (copy_from_user(&cmd, arg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.argsz < sizeof(cmd))
		return -EINVAL;
	return iommu_kvm_intercept_sync(cmd.kvm_fd, cmd.key, cmd.iova,
					cmd.size);
}

static int mock_dev_set_resv(struct mock_dev *mdev, void __user *arg)
{
	struct iommu_kvm_mock_set_resv cmd;
	u64 last;

	if (copy_from_user(&cmd, arg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.argsz < sizeof(cmd) ||
	    cmd.type > IOMMU_KVM_MOCK_RESV_DIRECT_RELAXABLE)
		return -EINVAL;
	if (cmd.type != IOMMU_KVM_MOCK_RESV_NONE &&
	    (!cmd.length || check_add_overflow(cmd.start, cmd.length - 1, &last)))
		return -EINVAL;
	/* Read when iommufd attaches; a test sets it before */
	WRITE_ONCE(mdev->resv_start, cmd.start);
	WRITE_ONCE(mdev->resv_length, cmd.length);
	WRITE_ONCE(mdev->resv_type, cmd.type);
	return 0;
}

static long mock_dev_ioctl(struct file *file, unsigned int cmd,
			   unsigned long arg)
{
	struct mock_dev *mdev = file->private_data;
	void __user *uarg = (void __user *)arg;
	long ret;

	mutex_lock(&mdev->lock);
	switch (cmd) {
	case IOMMU_KVM_MOCK_BIND:
		ret = mock_dev_bind(mdev, uarg);
		break;
	case IOMMU_KVM_MOCK_ATTACH:
		ret = mock_dev_attach(mdev, uarg);
		break;
	case IOMMU_KVM_MOCK_DETACH:
		ret = mock_dev_detach(mdev);
		break;
	case IOMMU_KVM_MOCK_DMA:
		ret = mock_dev_dma(mdev, uarg);
		break;
	case IOMMU_KVM_MOCK_FAULT:
		ret = mock_dev_fault(mdev, uarg);
		break;
	case IOMMU_KVM_MOCK_SYNC:
		ret = mock_dev_sync(mdev, uarg);
		break;
	case IOMMU_KVM_MOCK_INFO:
		ret = mock_dev_info(mdev, uarg);
		break;
	case IOMMU_KVM_MOCK_SET_FORMATS:
		ret = mock_dev_set_formats(mdev, uarg);
		break;
	case IOMMU_KVM_MOCK_ADD_SIBLING:
		ret = mock_dev_add_sibling(mdev, uarg);
		break;
	case IOMMU_KVM_MOCK_SET_RESV:
		ret = mock_dev_set_resv(mdev, uarg);
		break;
	case IOMMU_KVM_MOCK_INTERCEPT:
		ret = mock_dev_intercept(uarg);
		break;
	default:
		ret = -ENOTTY;
	}
	mutex_unlock(&mdev->lock);
	return ret;
}

static void mock_dev_free(struct device *dev)
{
	struct mock_dev *mdev = container_of(dev, struct mock_dev, dev);

	if (mdev->id >= 0)
		ida_free(&mock_dev_ida, mdev->id);
	mutex_destroy(&mdev->lock);
	kfree(mdev);
}

/* Make a mock device and add it, in the IOMMU group of @leader if given */
static struct mock_dev *mock_dev_create(struct mock_dev *leader)
{
	struct mock_dev *mdev;
	int ret;

	mdev = kzalloc_obj(*mdev, GFP_KERNEL_ACCOUNT);
	if (!mdev)
		return ERR_PTR(-ENOMEM);
	mutex_init(&mdev->lock);
	INIT_LIST_HEAD(&mdev->node);
	mdev->formats = MOCK_FORMATS;
	mdev->leader = leader;
	device_initialize(&mdev->dev);
	mdev->dev.release = mock_dev_free;
	mdev->dev.bus = &mock_bus;

	/* From here on put_device() frees everything */
	mdev->id = ida_alloc(&mock_dev_ida, GFP_KERNEL);
	if (mdev->id < 0) {
		ret = mdev->id;
		goto out_put;
	}
	ret = dev_set_name(&mdev->dev, "iommu_kvm_mock%d", mdev->id);
	if (ret)
		goto out_put;
	/* The iommu core probes the device when it is added */
	ret = iommu_mock_device_add(&mdev->dev, &mock_iommu.iommu);
	if (ret)
		goto out_put;
	mdev->leader = NULL;
	if (!mdev->dev.iommu_group) {
		device_del(&mdev->dev);
		ret = -ENODEV;
		goto out_put;
	}
	mutex_lock(&mock_devs_lock);
	list_add_tail(&mdev->node, &mock_devs);
	mutex_unlock(&mock_devs_lock);
	return mdev;

out_put:
	put_device(&mdev->dev);
	return ERR_PTR(ret);
}

/* Unplug @mdev: detach and unbind it, and remove it */
static void mock_dev_destroy(struct mock_dev *mdev)
{
	if (mdev->attached)
		iommufd_device_detach(mdev->idev, IOMMU_NO_PASID);
	if (mdev->idev)
		iommufd_device_unbind(mdev->idev);
	mutex_lock(&mock_devs_lock);
	list_del_init(&mdev->node);
	mutex_unlock(&mock_devs_lock);
	device_unregister(&mdev->dev);
}

static const struct file_operations mock_dev_fops;

static int mock_dev_add_sibling(struct mock_dev *mdev, void __user *arg)
{
	struct iommu_kvm_mock_add_sibling cmd;
	struct mock_dev *sibling;
	struct file *file;
	int fd, ret;

	if (copy_from_user(&cmd, arg, sizeof(cmd)))
		return -EFAULT;
	if (cmd.argsz < sizeof(cmd) || cmd.__reserved || cmd.__reserved2)
		return -EINVAL;

	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0)
		return fd;
	sibling = mock_dev_create(mdev);
	if (IS_ERR(sibling)) {
		ret = PTR_ERR(sibling);
		goto out_put_fd;
	}
	file = anon_inode_getfile("[iommu_kvm_mock]", &mock_dev_fops, sibling,
				  O_RDWR);
	if (IS_ERR(file)) {
		mock_dev_destroy(sibling);
		ret = PTR_ERR(file);
		goto out_put_fd;
	}
	cmd.out_fd = fd;
	if (copy_to_user(arg, &cmd, sizeof(cmd))) {
		/* Releasing the file unplugs the sibling */
		fput(file);
		ret = -EFAULT;
		goto out_put_fd;
	}
	fd_install(fd, file);
	return 0;

out_put_fd:
	put_unused_fd(fd);
	return ret;
}

static int mock_dev_open(struct inode *inode, struct file *file)
{
	struct mock_dev *mdev = mock_dev_create(NULL);

	if (IS_ERR(mdev))
		return PTR_ERR(mdev);
	file->private_data = mdev;
	return 0;
}

/* Closing the file hot-unplugs the device, tearing down what it holds */
static int mock_dev_release(struct inode *inode, struct file *file)
{
	mock_dev_destroy(file->private_data);
	return 0;
}

static const struct file_operations mock_dev_fops = {
	.owner = THIS_MODULE,
	.open = mock_dev_open,
	.release = mock_dev_release,
	.unlocked_ioctl = mock_dev_ioctl,
};

static struct miscdevice mock_miscdev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "iommu_kvm_mock",
	.fops = &mock_dev_fops,
	.mode = 0600,
};

static int __init mock_init(void)
{
	int ret;

	mock_iommu.pdev = platform_device_register_simple("iommu_kvm_mock_iommu",
							  PLATFORM_DEVID_NONE,
							  NULL, 0);
	if (IS_ERR(mock_iommu.pdev))
		return PTR_ERR(mock_iommu.pdev);
	ret = bus_register(&mock_bus);
	if (ret)
		goto out_unregister_pdev;
	ret = iommu_device_sysfs_add(&mock_iommu.iommu, &mock_iommu.pdev->dev,
				     NULL, "%s", "iommu_kvm_mock");
	if (ret)
		goto out_unregister_bus;
	ret = iommu_device_register_bus(&mock_iommu.iommu, &mock_ops,
					&mock_bus, &mock_iommu.nb);
	if (ret)
		goto out_sysfs_remove;
	ret = misc_register(&mock_miscdev);
	if (ret)
		goto out_unregister_iommu;
	return 0;

out_unregister_iommu:
	iommu_device_unregister_bus(&mock_iommu.iommu, &mock_bus,
				    &mock_iommu.nb);
out_sysfs_remove:
	iommu_device_sysfs_remove(&mock_iommu.iommu);
out_unregister_bus:
	bus_unregister(&mock_bus);
out_unregister_pdev:
	platform_device_unregister(mock_iommu.pdev);
	return ret;
}

static void __exit mock_exit(void)
{
	misc_deregister(&mock_miscdev);
	iommu_device_unregister_bus(&mock_iommu.iommu, &mock_bus,
				    &mock_iommu.nb);
	iommu_device_sysfs_remove(&mock_iommu.iommu);
	bus_unregister(&mock_bus);
	platform_device_unregister(mock_iommu.pdev);
}

module_init(mock_init);
module_exit(mock_exit);

MODULE_DESCRIPTION("Mock IOMMU driver for KVM-backed IOMMU domain tests");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS("IOMMUFD");
MODULE_IMPORT_NS("IOMMU_KVM");
