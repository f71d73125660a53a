// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of the KVM-backed IOMMU domain core.
 *
 * They run the real core against a fake IOMMU driver that owns its domains
 * (fake_iommu_ops, with its own iommu_domain_ops and vendor callbacks), fake
 * devices behind it and behind drivers that offer no KVM-backed domains, and
 * a stand-in for KVM, which drives the same listener callbacks KVM does.
 *
 * The core WARNs on driver bugs; the tests that provoke them suppress the
 * backtraces (a test run must leave a clean kernel log) and count them.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <kunit/device.h>
#include <kunit/test.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/iommu_kvm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/seq_file.h>
#include <linux/string.h>

#include "iommu_kvm_priv.h"
#include "iommu_kvm_test.h"

#define SHARED IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHARED
#define SHADOW IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHADOW

/* What a WARN_ON() in the core adds to a suppressed warning count */
#define ONE_WARN (IS_ENABLED(CONFIG_BUG) ? 1 : 0)

/* What the fake driver did, and what it is told to do */
static struct {
	/* Told */
	u64 formats;
	u64 shadow;
	int alloc_ret;
	bool skip_init;
	bool set_type;
	const struct iommu_kvm_domain_ops *vendor_ops;
	int sync_ret;
	int set_table_ret;
	bool set_key;
	int set_key_ret;
	/* Did */
	int init_ret;
	unsigned int queries, calls, allocs, frees, attaches, blocks, syncs;
	unsigned int invalidations;
	u64 inv_start, inv_last, sync_iova, sync_size;
	struct iommu_kvm_domain *inv_kdom, *block_kdom, *sync_kdom;
	bool inv_locked, block_locked, sync_locked, attach_dead;
	unsigned int set_keys;
	int set_key_init_ret;
	u64 key;
	unsigned int pins;
	u64 pin_gfn;
	bool pin_write;
	unsigned int set_tables;
	u64 table_anchor, table_first, table_last;
	bool table_locked;
} fake;

static unsigned int fake_vm_unbinds;

struct fake_domain {
	struct iommu_kvm_domain kdom;
	/* What domain_alloc_kvm was given */
	struct iommu_kvm_domain_cfg cfg;
};

static struct fake_domain *to_fake_domain(struct iommu_domain *domain)
{
	return container_of(to_iommu_kvm_domain(domain), struct fake_domain,
			    kdom);
}

/* The fake driver's struct iommu_domain_ops */

static int fake_attach_dev(struct iommu_domain *domain, struct device *dev,
			   struct iommu_domain *old)
{
	struct iommu_kvm_domain *kdom = to_iommu_kvm_domain(domain);

	iommu_kvm_domain_lock(kdom);
	fake.attach_dead = iommu_kvm_domain_is_dead(kdom);
	fake.attaches++;
	iommu_kvm_domain_unlock(kdom);
	return 0;
}

static void fake_domain_free(struct iommu_domain *domain)
{
	struct fake_domain *fd = to_fake_domain(domain);

	iommu_kvm_domain_deinit(&fd->kdom);
	fake.frees++;
	kfree(fd);
}

static const struct iommu_domain_ops fake_domain_ops = {
	.attach_dev = fake_attach_dev,
	.free = fake_domain_free,
};

/* The fake driver's struct iommu_kvm_domain_ops */

static void fake_invalidate(struct iommu_kvm_domain *kdom, u64 start,
			    u64 last)
{
	fake.invalidations++;
	fake.inv_start = start;
	fake.inv_last = last;
	fake.inv_kdom = kdom;
	fake.inv_locked = mutex_is_locked(&kdom->lock);
}

static void fake_block(struct iommu_kvm_domain *kdom)
{
	fake.blocks++;
	fake.block_kdom = kdom;
	fake.block_locked = mutex_is_locked(&kdom->lock);
}

static int fake_sync(struct iommu_kvm_domain *kdom, unsigned int vcpu_idx,
		     u64 iova, u64 size)
{
	fake.syncs++;
	fake.sync_iova = iova;
	fake.sync_size = size;
	fake.sync_kdom = kdom;
	fake.sync_locked = mutex_is_locked(&kdom->lock);
	return fake.sync_ret;
}

static int fake_set_table(struct iommu_kvm_domain *kdom, u64 anchor,
			  u64 first, u64 last)
{
	fake.set_tables++;
	fake.table_anchor = anchor;
	fake.table_first = first;
	fake.table_last = last;
	fake.table_locked = mutex_is_locked(&kdom->lock);
	return fake.set_table_ret;
}

static void fake_debugfs_show(struct iommu_kvm_domain *kdom,
			      struct seq_file *s)
{
	seq_puts(s, "  fake=1\n");
}

static const struct iommu_kvm_domain_ops fake_ops = {
	.name = "kunit-fake",
	.invalidate = fake_invalidate,
	.block = fake_block,
	.sync = fake_sync,
	.set_table = fake_set_table,
	.debugfs_show = fake_debugfs_show,
};

/* Incomplete vtables, which iommu_kvm_domain_init() refuses */
static const struct iommu_kvm_domain_ops no_block_ops = {
	.name = "kunit-no-block",
	.invalidate = fake_invalidate,
	.sync = fake_sync,
};

static const struct iommu_kvm_domain_ops no_sync_ops = {
	.name = "kunit-no-sync",
	.invalidate = fake_invalidate,
	.block = fake_block,
};

/* The fake driver's struct iommu_ops */

static u64 fake_kvm_formats(struct device *dev, u64 *shadow_formats)
{
	fake.queries++;
	*shadow_formats = fake.shadow;
	return fake.formats;
}

static struct iommu_domain *
fake_domain_alloc_kvm(struct device *dev,
		      const struct iommu_kvm_domain_cfg *cfg)
{
	struct fake_domain *fd;

	fake.calls++;
	if (fake.alloc_ret)
		return ERR_PTR(fake.alloc_ret);
	fd = kzalloc_obj(*fd);
	if (!fd)
		return ERR_PTR(-ENOMEM);
	fd->cfg = *cfg;
	if (fake.skip_init) {
		/* A broken driver: the core's part is left zeroed */
		if (fake.set_type)
			fd->kdom.domain.type = IOMMU_DOMAIN_KVM;
	} else {
		fake.init_ret = iommu_kvm_domain_init(&fd->kdom,
						      fake.vendor_ops, cfg);
		if (fake.init_ret) {
			/* Nothing to undo: free the structure, not the domain */
			kfree(fd);
			return ERR_PTR(fake.init_ret);
		}
	}
	fd->kdom.domain.ops = &fake_domain_ops;
	fake.allocs++;
	if (fake.set_key && cfg->shadow)
		fake.set_key_init_ret =
			iommu_kvm_domain_set_sync_key(&fd->kdom, 0x5a);
	return &fd->kdom.domain;
}

/*
 * Four fake IOMMU drivers: one doing KVM-backed domains, one that reports
 * formats but cannot allocate them, and two doing none.
 */
static const struct iommu_ops fake_iommu_ops = {
	.kvm_formats = fake_kvm_formats,
	.domain_alloc_kvm = fake_domain_alloc_kvm,
};

static const struct iommu_ops half_iommu_ops = {
	.kvm_formats = fake_kvm_formats,
};

static const struct iommu_ops other_iommu_ops;
static struct iommu_device fake_iommu = { .ops = &fake_iommu_ops };
static struct iommu_device half_iommu = { .ops = &half_iommu_ops };
static struct iommu_device other_iommu = { .ops = &other_iommu_ops };
static struct dev_iommu fake_dev_iommu = { .iommu_dev = &fake_iommu };
static struct dev_iommu half_dev_iommu = { .iommu_dev = &half_iommu };
static struct dev_iommu other_dev_iommu = { .iommu_dev = &other_iommu };
/* A device the iommu core started on but no IOMMU driver took */
static struct dev_iommu bare_dev_iommu;

/* A parent paging domain that maps GPA pages to two real pages */
static struct page *parent_pages[2];

static phys_addr_t fake_parent_iova_to_phys(struct iommu_domain *domain,
					    dma_addr_t iova)
{
	unsigned long idx = iova >> PAGE_SHIFT;

	if (idx >= ARRAY_SIZE(parent_pages) || !parent_pages[idx])
		return 0;
	return page_to_phys(parent_pages[idx]) + offset_in_page(iova);
}

static const struct iommu_domain_ops fake_parent_ops = {
	.iova_to_phys = fake_parent_iova_to_phys,
};

static struct iommu_domain fake_parent = {
	.type = IOMMU_DOMAIN_UNMANAGED,
	.ops = &fake_parent_ops,
	.owner = &fake_iommu_ops,
};

static struct iommu_domain other_parent = {
	.type = IOMMU_DOMAIN_UNMANAGED,
	.ops = &fake_parent_ops,
	.owner = &other_iommu_ops,
};

static struct iommu_domain orphan_parent = {
	.type = IOMMU_DOMAIN_UNMANAGED,
	.ops = &fake_parent_ops,
};

/* The stand-in for KVM */

static void fake_vm_unbind(struct iommu_kvm_vm *vm)
{
	fake_vm_unbinds++;
	mutex_destroy(&vm->lock);
	kfree(vm);
}

static int fake_vm_set_sync_key(struct iommu_kvm_vm *vm, u64 key)
{
	fake.set_keys++;
	fake.key = key;
	return fake.set_key_ret;
}

static int fake_vm_pin_gfn(struct iommu_kvm_vm *vm, u64 gfn, bool write,
			   struct page **page)
{
	fake.pins++;
	fake.pin_gfn = gfn;
	fake.pin_write = write;
	return -EFAULT;
}

static const struct iommu_kvm_vm_ops fake_vm_ops = {
	.unbind = fake_vm_unbind,
	.set_sync_key = fake_vm_set_sync_key,
	.pin_gfn = fake_vm_pin_gfn,
};

static struct iommu_kvm_vm *fake_vm(struct kunit *test)
{
	struct iommu_kvm_vm *vm = kzalloc_obj(*vm);

	KUNIT_ASSERT_NOT_NULL(test, vm);
	iommu_kvm_vm_init(vm, &fake_vm_ops);
	return vm;
}

static void clear_dev_iommu(void *dev)
{
	((struct device *)dev)->iommu = NULL;
}

static struct device *fake_device(struct kunit *test, const char *name,
				  struct dev_iommu *dev_iommu)
{
	struct device *dev = kunit_device_register(test, name);

	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, dev);
	dev->iommu = dev_iommu;
	/* Runs before kunit unregisters the device */
	KUNIT_ASSERT_EQ(test, 0,
			kunit_add_action_or_reset(test, clear_dev_iommu, dev));
	return dev;
}

static int iommu_kvm_test_init(struct kunit *test)
{
	memset(&fake, 0, sizeof(fake));
	fake.formats = BIT_ULL(SHARED) | BIT_ULL(SHADOW);
	fake.shadow = BIT_ULL(SHADOW);
	fake.vendor_ops = &fake_ops;
	fake_vm_unbinds = 0;
	return 0;
}

static struct iommu_kvm_domain *alloc_ok(struct kunit *test,
					 struct device *dev, u32 format,
					 struct iommu_domain *parent,
					 struct iommu_kvm_vm **vmp)
{
	struct iommu_kvm_vm *vm = fake_vm(test);
	struct iommu_kvm_domain *kdom;

	kdom = iommu_kvm_domain_alloc(dev, vm, format, parent, NULL);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, kdom);
	if (vmp)
		*vmp = vm;
	return kdom;
}

/* The error of an allocation expected to fail, 0 (and no leak) if it did not */
static int alloc_err(struct kunit *test, struct device *dev, u32 format,
		     struct iommu_domain *parent)
{
	struct iommu_kvm_domain *kdom;

	kdom = iommu_kvm_domain_alloc(dev, fake_vm(test), format, parent,
				      NULL);
	if (IS_ERR(kdom))
		return PTR_ERR(kdom);
	iommu_domain_free(&kdom->domain);
	return 0;
}

static void test_set_table(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom, *shadow;

	kdom = alloc_ok(test, dev, SHARED, NULL, NULL);
	shadow = alloc_ok(test, dev, SHADOW, &fake_parent, NULL);

	KUNIT_EXPECT_EQ(test, -EINVAL,
			iommu_kvm_domain_set_table(kdom, 0x4000, 0, 0xfff));
	/* Not before it is published: KVM leaves it to userspace */
	KUNIT_EXPECT_EQ(test, -ENOENT,
			iommu_kvm_domain_set_table(shadow, 0x4000, 0, 0xfff));
	KUNIT_EXPECT_EQ(test, fake.set_tables, 0);
	iommu_kvm_domain_publish(shadow);

	KUNIT_EXPECT_EQ(test, 0,
			iommu_kvm_domain_set_table(shadow, 0x8804, 0x1000,
						   0x1fff));
	KUNIT_EXPECT_EQ(test, fake.set_tables, 1);
	KUNIT_EXPECT_EQ(test, fake.table_anchor, 0x8804);
	KUNIT_EXPECT_EQ(test, fake.table_first, 0x1000);
	KUNIT_EXPECT_EQ(test, fake.table_last, 0x1fff);
	KUNIT_EXPECT_TRUE(test, fake.table_locked);
	/* A sync is not a registration, nor the other way round */
	KUNIT_EXPECT_EQ(test, fake.syncs, 0);

	fake.set_table_ret = -EBUSY;
	KUNIT_EXPECT_EQ(test, -EBUSY,
			iommu_kvm_domain_set_table(shadow, 0, 0, 0));
	KUNIT_EXPECT_EQ(test, fake.table_anchor, 0);

	iommu_kvm_domain_unpublish(shadow);
	KUNIT_EXPECT_EQ(test, -ENOENT,
			iommu_kvm_domain_set_table(shadow, 0x4000, 0, 0xfff));
	KUNIT_EXPECT_EQ(test, fake.set_tables, 2);

	iommu_domain_free(&shadow->domain);
	iommu_domain_free(&kdom->domain);
}

static int attach(struct iommu_kvm_domain *kdom, struct device *dev)
{
	return kdom->domain.ops->attach_dev(&kdom->domain, dev, NULL);
}

static void test_ops_complete(struct kunit *test)
{
	static const size_t mandatory[] = {
		offsetof(struct iommu_kvm_domain_ops, name),
		offsetof(struct iommu_kvm_domain_ops, block),
	};
	struct iommu_kvm_domain_ops ops;
	unsigned int i, shadow;

	for (shadow = 0; shadow < 2; shadow++) {
		KUNIT_EXPECT_TRUE(test,
				  iommu_kvm_ops_complete(&fake_ops, shadow));
		KUNIT_EXPECT_FALSE(test, iommu_kvm_ops_complete(NULL, shadow));

		for (i = 0; i < ARRAY_SIZE(mandatory); i++) {
			ops = fake_ops;
			*(void **)((u8 *)&ops + mandatory[i]) = NULL;
			KUNIT_EXPECT_FALSE_MSG(test,
					       iommu_kvm_ops_complete(&ops,
								      shadow),
					       "member %u, shadow %u", i,
					       shadow);
		}

		/* debugfs_show and set_table are optional */
		ops = fake_ops;
		ops.debugfs_show = NULL;
		ops.set_table = NULL;
		KUNIT_EXPECT_TRUE(test, iommu_kvm_ops_complete(&ops, shadow));
	}

	/* sync is mandatory for a shadow format only */
	ops = fake_ops;
	ops.sync = NULL;
	KUNIT_EXPECT_TRUE(test, iommu_kvm_ops_complete(&ops, false));
	KUNIT_EXPECT_FALSE(test, iommu_kvm_ops_complete(&ops, true));

	/* So is invalidate: a shared format KVM flushes itself has none */
	ops = fake_ops;
	ops.invalidate = NULL;
	KUNIT_EXPECT_TRUE(test, iommu_kvm_ops_complete(&ops, false));
	KUNIT_EXPECT_FALSE(test, iommu_kvm_ops_complete(&ops, true));
}

/* The library calls a driver makes itself, outside iommu_kvm_domain_alloc() */
static void test_init_deinit(struct kunit *test)
{
	struct iommu_kvm_domain_cfg cfg = {
		.format = SHADOW,
		.shadow = true,
		.parent = &fake_parent,
	};
	struct iommu_kvm_domain *kdom, *kdom2;

	kdom = kunit_kzalloc(test, sizeof(*kdom), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, kdom);
	kdom2 = kunit_kzalloc(test, sizeof(*kdom2), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, kdom2);

	/* Never initialised: deinit returns without touching anything */
	iommu_kvm_domain_deinit(kdom);
	KUNIT_EXPECT_NULL(test, memchr_inv(kdom, 0, sizeof(*kdom)));

	KUNIT_ASSERT_EQ(test, 0, iommu_kvm_domain_init(kdom, &fake_ops, &cfg));
	KUNIT_EXPECT_EQ(test, kdom->domain.type, IOMMU_DOMAIN_KVM);
	KUNIT_EXPECT_PTR_EQ(test, kdom->ops, &fake_ops);
	KUNIT_EXPECT_PTR_EQ(test, kdom->parent, &fake_parent);
	KUNIT_EXPECT_EQ(test, kdom->format, SHADOW);
	KUNIT_EXPECT_TRUE(test, kdom->shadow);
	KUNIT_EXPECT_NULL(test, kdom->vm);
	KUNIT_EXPECT_FALSE(test, kdom->published);
	KUNIT_EXPECT_FALSE(test, iommu_kvm_domain_is_dead(kdom));
	KUNIT_EXPECT_EQ(test, atomic64_read(&kdom->stats.invalidations), 0);

	/* Two live domains have different ids; sync is not needed if shared */
	cfg.format = SHARED;
	cfg.shadow = false;
	cfg.parent = NULL;
	KUNIT_ASSERT_EQ(test, 0,
			iommu_kvm_domain_init(kdom2, &no_sync_ops, &cfg));
	KUNIT_EXPECT_NE(test, kdom->id, kdom2->id);
	KUNIT_EXPECT_FALSE(test, kdom2->shadow);
	KUNIT_EXPECT_NULL(test, kdom2->parent);
	iommu_kvm_domain_deinit(kdom2);

	/* Deinit lets go of the VM the core would have bound, once */
	kdom->vm = fake_vm(test);
	iommu_kvm_domain_deinit(kdom);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 1);
	KUNIT_EXPECT_NULL(test, kdom->ops);
	KUNIT_EXPECT_NULL(test, kdom->vm);
	iommu_kvm_domain_deinit(kdom);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 1);
}

static void test_init_incomplete(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain_cfg cfg = { .format = SHARED };
	struct iommu_kvm_domain *kdom;

	kdom = kunit_kzalloc(test, sizeof(*kdom), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, kdom);

	kunit_warning_suppress(test) {
		/* Refused with a WARN, leaving nothing to undo */
		KUNIT_EXPECT_EQ(test, -EINVAL,
				iommu_kvm_domain_init(kdom, &no_block_ops,
						      &cfg));
		KUNIT_EXPECT_EQ(test, -EINVAL,
				iommu_kvm_domain_init(kdom, NULL, &cfg));
		cfg.format = SHADOW;
		cfg.shadow = true;
		cfg.parent = &fake_parent;
		KUNIT_EXPECT_EQ(test, -EINVAL,
				iommu_kvm_domain_init(kdom, &no_sync_ops,
						      &cfg));
		KUNIT_EXPECT_NULL(test, memchr_inv(kdom, 0, sizeof(*kdom)));

		/* Through the core: the driver's error comes back */
		fake.vendor_ops = &no_block_ops;
		KUNIT_EXPECT_EQ(test, -EINVAL,
				alloc_err(test, dev, SHARED, NULL));
		fake.vendor_ops = &no_sync_ops;
		KUNIT_EXPECT_EQ(test, -EINVAL,
				alloc_err(test, dev, SHADOW, &fake_parent));
		KUNIT_EXPECT_SUPPRESSED_WARNING_COUNT(test, 5 * ONE_WARN);
	}
	KUNIT_EXPECT_EQ(test, fake.init_ret, -EINVAL);
	KUNIT_EXPECT_EQ(test, fake.calls, 2);
	KUNIT_EXPECT_EQ(test, fake.allocs, 0);
	/* The driver freed its structure itself, the core only the VM */
	KUNIT_EXPECT_EQ(test, fake.frees, 0);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 2);

	/* Without sync, a shared domain is still fine */
	kdom = alloc_ok(test, dev, SHARED, NULL, NULL);
	KUNIT_EXPECT_PTR_EQ(test, kdom->ops, &no_sync_ops);
	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake.frees, 1);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 3);
}

/* A driver that hands back a domain it did not initialise */
static void test_alloc_uninitialised(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);

	fake.skip_init = true;
	kunit_warning_suppress(test) {
		KUNIT_EXPECT_EQ(test, -EINVAL,
				alloc_err(test, dev, SHARED, NULL));
		/* Even with the type set by hand */
		fake.set_type = true;
		KUNIT_EXPECT_EQ(test, -EINVAL,
				alloc_err(test, dev, SHARED, NULL));
	}
	/* The core freed them through the driver, and let go of the VMs */
	KUNIT_EXPECT_EQ(test, fake.allocs, 2);
	KUNIT_EXPECT_EQ(test, fake.frees, 2);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 2);
}

static void test_formats(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct device *other = fake_device(test, "kvm-kunit-b",
					   &other_dev_iommu);
	struct device *half = fake_device(test, "kvm-kunit-c",
					  &half_dev_iommu);
	struct device *none = fake_device(test, "kvm-kunit-d", NULL);
	struct device *bare = fake_device(test, "kvm-kunit-e",
					  &bare_dev_iommu);
	struct device *nope[] = { other, half, none, bare };
	unsigned int i;
	u64 shadow = 1;

	KUNIT_EXPECT_EQ(test, iommu_kvm_formats(dev, &shadow),
			BIT_ULL(SHARED) | BIT_ULL(SHADOW));
	KUNIT_EXPECT_EQ(test, shadow, BIT_ULL(SHADOW));
	KUNIT_EXPECT_EQ(test, iommu_kvm_formats(dev, NULL),
			BIT_ULL(SHARED) | BIT_ULL(SHADOW));
	KUNIT_EXPECT_EQ(test, fake.queries, 2);

	/* No KVM-backed domains without both ops, or without an IOMMU */
	for (i = 0; i < ARRAY_SIZE(nope); i++) {
		shadow = 1;
		KUNIT_EXPECT_EQ_MSG(test, iommu_kvm_formats(nope[i], &shadow),
				    0, "device %u", i);
		KUNIT_EXPECT_EQ_MSG(test, shadow, 0, "device %u", i);
	}
	KUNIT_EXPECT_EQ(test, fake.queries, 2);

	fake.formats = BIT_ULL(SHARED);
	fake.shadow = 0;
	KUNIT_EXPECT_EQ(test, iommu_kvm_formats(dev, &shadow), BIT_ULL(SHARED));
	KUNIT_EXPECT_EQ(test, shadow, 0);
}

/* A shadow bit that is no format is a driver bug: the core drops it */
static void test_formats_shadow_masked(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom = NULL;
	u64 shadow = 0;

	fake.formats = BIT_ULL(SHARED);
	fake.shadow = BIT_ULL(SHARED) | BIT_ULL(SHADOW);
	kunit_warning_suppress(test) {
		KUNIT_EXPECT_EQ(test, iommu_kvm_formats(dev, &shadow),
				BIT_ULL(SHARED));
		KUNIT_EXPECT_EQ(test, shadow, BIT_ULL(SHARED));

		/* Not a format, even if the driver calls it a shadow one */
		KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
				alloc_err(test, dev, SHADOW, &fake_parent));
		KUNIT_EXPECT_EQ(test, fake.calls, 0);

		/* Shadow bits that are formats stay */
		kdom = iommu_kvm_domain_alloc(dev, fake_vm(test), SHARED,
					      &fake_parent, NULL);
	}
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, kdom);
	KUNIT_EXPECT_TRUE(test, kdom->shadow);
	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 2);
}

/* Which formats are shadow ones is the driver's word, not the core's */
static void test_shadow_from_driver(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom;

	/* The driver shadows both */
	fake.shadow = BIT_ULL(SHARED) | BIT_ULL(SHADOW);
	KUNIT_EXPECT_EQ(test, -EINVAL, alloc_err(test, dev, SHARED, NULL));
	kdom = alloc_ok(test, dev, SHARED, &fake_parent, NULL);
	KUNIT_EXPECT_TRUE(test, kdom->shadow);
	KUNIT_EXPECT_TRUE(test, to_fake_domain(&kdom->domain)->cfg.shadow);
	KUNIT_EXPECT_PTR_EQ(test, kdom->parent, &fake_parent);
	iommu_kvm_domain_publish(kdom);
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_domain_sync(kdom, 0, 0, 0));
	KUNIT_EXPECT_EQ(test, fake.syncs, 1);
	iommu_domain_free(&kdom->domain);

	/* The driver shadows neither */
	fake.shadow = 0;
	KUNIT_EXPECT_EQ(test, -EINVAL,
			alloc_err(test, dev, SHADOW, &fake_parent));
	kdom = alloc_ok(test, dev, SHADOW, NULL, NULL);
	KUNIT_EXPECT_FALSE(test, kdom->shadow);
	KUNIT_EXPECT_FALSE(test, to_fake_domain(&kdom->domain)->cfg.shadow);
	KUNIT_EXPECT_EQ(test, -EINVAL, iommu_kvm_domain_sync(kdom, 0, 0, 0));
	KUNIT_EXPECT_EQ(test, fake.syncs, 1);
	iommu_domain_free(&kdom->domain);

	KUNIT_EXPECT_EQ(test, fake.frees, 2);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 4);
}

static void test_alloc_errors(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct device *other = fake_device(test, "kvm-kunit-b",
					   &other_dev_iommu);
	struct device *half = fake_device(test, "kvm-kunit-c",
					  &half_dev_iommu);
	struct device *none = fake_device(test, "kvm-kunit-d", NULL);
	struct device *bare = fake_device(test, "kvm-kunit-e",
					  &bare_dev_iommu);
	static const struct {
		u32 format;
		struct iommu_domain *parent;
		int err;
	} cases[] = {
		{ IOMMU_HWPT_KVM_FORMAT_NONE, NULL, -EOPNOTSUPP },
		{ 5, NULL, -EOPNOTSUPP },
		{ 64, NULL, -EOPNOTSUPP },
		/* Would be the offered formats if the bit number wrapped */
		{ SHARED + 64, NULL, -EOPNOTSUPP },
		{ SHADOW + 64, &fake_parent, -EOPNOTSUPP },
		{ U32_MAX, NULL, -EOPNOTSUPP },
		/* Parent rules */
		{ SHADOW, NULL, -EINVAL },
		{ SHARED, &fake_parent, -EINVAL },
		{ SHADOW, &other_parent, -EINVAL },
		{ SHADOW, &orphan_parent, -EINVAL },
	};
	unsigned int i, unbinds = 0;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		KUNIT_EXPECT_EQ_MSG(test, cases[i].err,
				    alloc_err(test, dev, cases[i].format,
					      cases[i].parent),
				    "case %u", i);
		KUNIT_EXPECT_EQ_MSG(test, fake_vm_unbinds, ++unbinds,
				    "case %u", i);
	}

	/* No IOMMU, a driver without KVM-backed domains, or without alloc */
	KUNIT_EXPECT_EQ(test, -ENODEV, alloc_err(test, none, SHARED, NULL));
	KUNIT_EXPECT_EQ(test, -ENODEV, alloc_err(test, bare, SHARED, NULL));
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			alloc_err(test, other, SHARED, NULL));
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP, alloc_err(test, half, SHARED, NULL));
	/* A format the driver does not offer this device */
	fake.formats = BIT_ULL(SHADOW);
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP, alloc_err(test, dev, SHARED, NULL));
	unbinds += 5;
	/* None of these reached the driver's allocator */
	KUNIT_EXPECT_EQ(test, fake.calls, 0);

	/* The driver's own error comes back */
	fake.alloc_ret = -E2BIG;
	KUNIT_EXPECT_EQ(test, -E2BIG,
			alloc_err(test, dev, SHADOW, &fake_parent));
	unbinds++;
	KUNIT_EXPECT_EQ(test, fake.calls, 1);

	/* Every failure let go of its VM and allocated no domain */
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, unbinds);
	KUNIT_EXPECT_EQ(test, fake.allocs, 0);
	KUNIT_EXPECT_EQ(test, fake.frees, 0);
}

static void test_lifecycle(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_user_data data = { .type = IOMMU_HWPT_KVM_DATA_SELFTEST };
	struct iommu_kvm_domain *kdom, *shadow;
	struct iommu_kvm_vm *vm = fake_vm(test);
	struct fake_domain *fd;

	kdom = iommu_kvm_domain_alloc(dev, vm, SHARED, NULL, &data);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, kdom);
	fd = to_fake_domain(&kdom->domain);

	/* The driver saw the request */
	KUNIT_EXPECT_EQ(test, fake.calls, 1);
	KUNIT_EXPECT_EQ(test, fd->cfg.format, SHARED);
	KUNIT_EXPECT_FALSE(test, fd->cfg.shadow);
	KUNIT_EXPECT_PTR_EQ(test, fd->cfg.vm, vm);
	KUNIT_EXPECT_NULL(test, fd->cfg.parent);
	KUNIT_EXPECT_PTR_EQ(test, fd->cfg.user_data,
			    (const struct iommu_user_data *)&data);

	/* The domain is the driver's; the core filled in its part */
	KUNIT_EXPECT_EQ(test, kdom->domain.type, IOMMU_DOMAIN_KVM);
	KUNIT_EXPECT_PTR_EQ(test, kdom->domain.owner, &fake_iommu_ops);
	KUNIT_EXPECT_PTR_EQ(test, kdom->domain.ops, &fake_domain_ops);
	KUNIT_EXPECT_PTR_EQ(test, kdom->ops, &fake_ops);
	KUNIT_EXPECT_PTR_EQ(test, kdom->vm, vm);
	KUNIT_EXPECT_PTR_EQ(test, vm->kdom, kdom);
	KUNIT_EXPECT_EQ(test, kdom->format, SHARED);
	KUNIT_EXPECT_FALSE(test, kdom->shadow);
	KUNIT_EXPECT_NULL(test, kdom->parent);
	KUNIT_EXPECT_FALSE(test, kdom->published);
	KUNIT_EXPECT_FALSE(test, iommu_kvm_domain_is_dead(kdom));

	iommu_kvm_domain_publish(kdom);
	KUNIT_EXPECT_TRUE(test, kdom->published);

	/* Attach goes straight to the driver */
	KUNIT_EXPECT_EQ(test, 0, attach(kdom, dev));
	KUNIT_EXPECT_EQ(test, fake.attaches, 1);
	KUNIT_EXPECT_FALSE(test, fake.attach_dead);

	/* A shadow domain gets its parent */
	shadow = alloc_ok(test, dev, SHADOW, &fake_parent, NULL);
	fd = to_fake_domain(&shadow->domain);
	KUNIT_EXPECT_TRUE(test, fd->cfg.shadow);
	KUNIT_EXPECT_PTR_EQ(test, fd->cfg.parent, &fake_parent);
	KUNIT_EXPECT_NULL(test, fd->cfg.user_data);
	KUNIT_EXPECT_EQ(test, shadow->domain.type, IOMMU_DOMAIN_KVM);
	KUNIT_EXPECT_PTR_EQ(test, shadow->domain.owner, &fake_iommu_ops);
	KUNIT_EXPECT_PTR_EQ(test, shadow->parent, &fake_parent);
	KUNIT_EXPECT_TRUE(test, shadow->shadow);
	KUNIT_EXPECT_NE(test, shadow->id, kdom->id);

	iommu_domain_free(&shadow->domain);
	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake.frees, 2);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 2);
}

static void test_abort_unpublished(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom;

	/* The owner failed before publishing: free must cope */
	kdom = alloc_ok(test, dev, SHADOW, &fake_parent, NULL);
	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake.frees, 1);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 1);
}

static void test_released_before_bind(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_vm *vm = fake_vm(test);

	vm->listener.ops->release(&vm->listener);
	KUNIT_EXPECT_PTR_EQ(test, iommu_kvm_domain_alloc(dev, vm, SHARED, NULL,
							 NULL),
			    ERR_PTR(-ENODEV));
	/* The driver built it, and its free ran once; the VM went once */
	KUNIT_EXPECT_EQ(test, fake.allocs, 1);
	KUNIT_EXPECT_EQ(test, fake.frees, 1);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 1);
	KUNIT_EXPECT_EQ(test, fake.blocks, 0);
}

/* A VM with private memory gets no shared domain, and a shadow one */
static void test_private_mem(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom;
	struct iommu_kvm_vm *vm;

	vm = fake_vm(test);
	vm->private_mem = true;
	KUNIT_EXPECT_PTR_EQ(test, iommu_kvm_domain_alloc(dev, vm, SHARED, NULL,
							 NULL),
			    ERR_PTR(-EOPNOTSUPP));
	/* Refused before the driver was asked; the VM went once */
	KUNIT_EXPECT_EQ(test, fake.allocs, 0);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 1);

	vm = fake_vm(test);
	vm->private_mem = true;
	kdom = iommu_kvm_domain_alloc(dev, vm, SHADOW, &fake_parent, NULL);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, kdom);
	KUNIT_EXPECT_TRUE(test, kdom->shadow);
	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake.allocs, 1);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 2);
}

/* A shadow domain's sync key reaches KVM after the bind, or fails the alloc */
static void test_sync_key(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom;

	fake.set_key = true;
	kdom = alloc_ok(test, dev, SHADOW, &fake_parent, NULL);
	KUNIT_EXPECT_EQ(test, fake.set_key_init_ret, 0);
	KUNIT_EXPECT_TRUE(test, kdom->has_sync_key);
	KUNIT_EXPECT_EQ(test, fake.set_keys, 1);
	KUNIT_EXPECT_EQ(test, fake.key, 0x5a);
	iommu_domain_free(&kdom->domain);

	/* Shared domains take none: the fake driver does not set one */
	kdom = alloc_ok(test, dev, SHARED, NULL, NULL);
	KUNIT_EXPECT_FALSE(test, kdom->has_sync_key);
	KUNIT_EXPECT_EQ(test, fake.set_keys, 1);
	iommu_domain_free(&kdom->domain);

	/* KVM refuses the key: the domain goes, and the VM once */
	fake.set_key_ret = -EEXIST;
	KUNIT_EXPECT_EQ(test, alloc_err(test, dev, SHADOW, &fake_parent),
			-EEXIST);
	KUNIT_EXPECT_EQ(test, fake.set_keys, 2);
	KUNIT_EXPECT_EQ(test, fake.allocs, 3);
	KUNIT_EXPECT_EQ(test, fake.frees, 3);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 3);
}

/* A driver's lookup of guest memory reaches KVM for a live shared domain */
static void test_pin_gfn(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom, *shadow;
	struct page *page = NULL;

	kdom = alloc_ok(test, dev, SHARED, NULL, NULL);
	KUNIT_EXPECT_EQ(test, iommu_kvm_domain_pin_gfn(kdom, 0x1234, true,
						       &page), -EFAULT);
	KUNIT_EXPECT_EQ(test, fake.pins, 1);
	KUNIT_EXPECT_EQ(test, fake.pin_gfn, 0x1234);
	KUNIT_EXPECT_TRUE(test, fake.pin_write);

	/* A shadow translates through its parent, never through KVM */
	shadow = alloc_ok(test, dev, SHADOW, &fake_parent, NULL);
	KUNIT_EXPECT_EQ(test, iommu_kvm_domain_pin_gfn(shadow, 1, false,
						       &page), -EINVAL);
	KUNIT_EXPECT_EQ(test, fake.pins, 1);

	/* Nothing is looked up for a VM that is gone */
	iommu_kvm_domain_release(kdom);
	KUNIT_EXPECT_EQ(test, iommu_kvm_domain_pin_gfn(kdom, 1, false, &page),
			-ENODEV);
	KUNIT_EXPECT_EQ(test, fake.pins, 1);
	KUNIT_EXPECT_NULL(test, page);
	iommu_domain_free(&shadow->domain);
	iommu_domain_free(&kdom->domain);
}

#define SHARED_MEM	KVM_IOMMU_INV_SHARED
#define ALL_MEM		(KVM_IOMMU_INV_SHARED | KVM_IOMMU_INV_PRIVATE)

static void test_invalidate_shared(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom, *kdom2;
	struct iommu_kvm_vm *vm = fake_vm(test), *vm2;

	/* Before a domain is bound there is nothing to tell */
	vm->listener.ops->invalidate(&vm->listener, 0x10, 0x20, SHARED_MEM);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 0);

	kdom = iommu_kvm_domain_alloc(dev, vm, SHARED, NULL, NULL);
	KUNIT_ASSERT_NOT_ERR_OR_NULL(test, kdom);
	kdom2 = alloc_ok(test, dev, SHARED, NULL, &vm2);

	vm->listener.ops->invalidate(&vm->listener, 0x10, 0x20, SHARED_MEM);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 1);
	KUNIT_EXPECT_PTR_EQ(test, fake.inv_kdom, kdom);
	KUNIT_EXPECT_EQ(test, fake.inv_start, 0x10ULL << PAGE_SHIFT);
	KUNIT_EXPECT_EQ(test, fake.inv_last, (0x20ULL << PAGE_SHIFT) - 1);
	KUNIT_EXPECT_EQ(test, atomic64_read(&kdom->stats.invalidations), 1);
	/* Only the domain of that VM hears it */
	KUNIT_EXPECT_EQ(test, atomic64_read(&kdom2->stats.invalidations), 0);

	/*
	 * Private memory alone concerns no translation of a shared format;
	 * a report that includes shared memory is delivered whole.
	 */
	vm->listener.ops->invalidate(&vm->listener, 0x30, 0x40,
				     KVM_IOMMU_INV_PRIVATE);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 1);
	vm->listener.ops->invalidate(&vm->listener, 0x30, 0x40, ALL_MEM);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 2);
	KUNIT_EXPECT_EQ(test, fake.inv_start, 0x30ULL << PAGE_SHIFT);
	KUNIT_EXPECT_EQ(test, fake.inv_last, (0x40ULL << PAGE_SHIFT) - 1);

	/* An empty or reversed range is not delivered */
	vm->listener.ops->invalidate(&vm->listener, 0x20, 0x20, SHARED_MEM);
	vm->listener.ops->invalidate(&vm->listener, 0x21, 0x20, SHARED_MEM);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 2);

	vm2->listener.ops->invalidate(&vm2->listener, 0, 1, SHARED_MEM);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 3);
	KUNIT_EXPECT_PTR_EQ(test, fake.inv_kdom, kdom2);
	KUNIT_EXPECT_EQ(test, fake.inv_start, 0);
	KUNIT_EXPECT_EQ(test, fake.inv_last, PAGE_SIZE - 1);

	iommu_domain_free(&kdom2->domain);
	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 2);
}

/*
 * A driver whose table KVM flushes itself has no ->invalidate: KVM's
 * reports reach it as neither a call nor a count, and the flushes it
 * counts itself are what debugfs shows.
 */
static void test_invalidate_kvm_flushes(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	static struct iommu_kvm_domain_ops ops;
	struct iommu_kvm_domain *kdom;
	struct iommu_kvm_vm *vm;

	ops = fake_ops;
	ops.invalidate = NULL;
	fake.vendor_ops = &ops;
	kdom = alloc_ok(test, dev, SHARED, NULL, &vm);

	vm->listener.ops->invalidate(&vm->listener, 0x10, 0x20, ALL_MEM);
	KUNIT_EXPECT_EQ(test, atomic64_read(&kdom->stats.invalidations), 0);
	iommu_kvm_domain_count_invalidation(kdom);
	KUNIT_EXPECT_EQ(test, atomic64_read(&kdom->stats.invalidations), 1);

	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 1);
}

static void test_invalidate_shadow(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom, *kdom2;
	struct iommu_kvm_vm *vm;

	kdom = alloc_ok(test, dev, SHADOW, &fake_parent, &vm);
	kdom2 = alloc_ok(test, dev, SHADOW, &fake_parent, NULL);
	iommu_kvm_domain_publish(kdom2);

	/* A shadow translates through its parent: KVM changes do not reach it */
	vm->listener.ops->invalidate(&vm->listener, 0, 0x100, ALL_MEM);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 0);

	/* The parent's owner tells one shadow; the driver hears it locked */
	iommu_kvm_domain_parent_unmapped(kdom, 0x1000, 0x2000);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 1);
	KUNIT_EXPECT_PTR_EQ(test, fake.inv_kdom, kdom);
	KUNIT_EXPECT_EQ(test, fake.inv_start, 0x1000);
	KUNIT_EXPECT_EQ(test, fake.inv_last, 0x2fff);
	KUNIT_EXPECT_TRUE(test, fake.inv_locked);
	KUNIT_EXPECT_EQ(test, atomic64_read(&kdom->stats.invalidations), 1);
	KUNIT_EXPECT_EQ(test, atomic64_read(&kdom2->stats.invalidations), 0);

	/* Empty, one byte, and wrapping ranges; published or not */
	iommu_kvm_domain_parent_unmapped(kdom2, 0x1000, 0);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 1);
	iommu_kvm_domain_parent_unmapped(kdom2, 0x5000, 1);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 2);
	KUNIT_EXPECT_PTR_EQ(test, fake.inv_kdom, kdom2);
	KUNIT_EXPECT_EQ(test, fake.inv_start, 0x5000);
	KUNIT_EXPECT_EQ(test, fake.inv_last, 0x5000);
	iommu_kvm_domain_parent_unmapped(kdom2, U64_MAX - 0xfff, 0x2000);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 3);
	KUNIT_EXPECT_EQ(test, fake.inv_start, U64_MAX - 0xfff);
	KUNIT_EXPECT_EQ(test, fake.inv_last, U64_MAX);
	KUNIT_EXPECT_EQ(test, atomic64_read(&kdom2->stats.invalidations), 2);

	iommu_domain_free(&kdom2->domain);
	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake.frees, 2);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 2);
}

static void test_release_blocks(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct device *dev2 = fake_device(test, "kvm-kunit-b", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom, *shadow;
	struct iommu_kvm_vm *vm, *svm;

	kdom = alloc_ok(test, dev, SHARED, NULL, &vm);
	shadow = alloc_ok(test, dev, SHADOW, &fake_parent, &svm);
	iommu_kvm_domain_publish(shadow);
	KUNIT_ASSERT_EQ(test, 0, attach(kdom, dev));
	KUNIT_EXPECT_FALSE(test, fake.attach_dead);

	/* The driver blocks once, under the domain's lock */
	vm->listener.ops->release(&vm->listener);
	KUNIT_EXPECT_TRUE(test, iommu_kvm_domain_is_dead(kdom));
	KUNIT_EXPECT_FALSE(test, iommu_kvm_domain_is_dead(shadow));
	KUNIT_EXPECT_EQ(test, fake.blocks, 1);
	KUNIT_EXPECT_PTR_EQ(test, fake.block_kdom, kdom);
	KUNIT_EXPECT_TRUE(test, fake.block_locked);

	/* Release is idempotent */
	iommu_kvm_domain_release(kdom);
	vm->listener.ops->release(&vm->listener);
	KUNIT_EXPECT_EQ(test, fake.blocks, 1);

	/* The driver's attach sees the domain dead under the lock */
	KUNIT_EXPECT_EQ(test, 0, attach(kdom, dev2));
	KUNIT_EXPECT_TRUE(test, fake.attach_dead);

	/* A dead shadow does not sync */
	svm->listener.ops->release(&svm->listener);
	KUNIT_EXPECT_EQ(test, fake.blocks, 2);
	KUNIT_EXPECT_PTR_EQ(test, fake.block_kdom, shadow);
	KUNIT_EXPECT_EQ(test, -ENODEV, iommu_kvm_domain_sync(shadow, 0, 0, 0));
	KUNIT_EXPECT_EQ(test, fake.syncs, 0);
	KUNIT_EXPECT_EQ(test, atomic64_read(&shadow->stats.syncs), 0);

	/* The VMs are only let go of with their domains */
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 0);
	iommu_domain_free(&shadow->domain);
	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 2);
	KUNIT_EXPECT_EQ(test, fake.blocks, 2);
}

static void test_sync(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom, *shadow;

	kdom = alloc_ok(test, dev, SHARED, NULL, NULL);
	shadow = alloc_ok(test, dev, SHADOW, &fake_parent, NULL);

	KUNIT_EXPECT_EQ(test, -EINVAL, iommu_kvm_domain_sync(kdom, 0, 0, 0));
	KUNIT_EXPECT_EQ(test, fake.syncs, 0);
	KUNIT_EXPECT_EQ(test, atomic64_read(&kdom->stats.syncs), 0);

	/*
	 * Not before it is published: until then its owner may not yet
	 * deliver the parent's unmaps, and KVM leaves the intercept to
	 * userspace
	 */
	KUNIT_EXPECT_EQ(test, -ENOENT, iommu_kvm_domain_sync(shadow, 0, 0, 0));
	KUNIT_EXPECT_EQ(test, fake.syncs, 0);
	iommu_kvm_domain_publish(shadow);

	KUNIT_EXPECT_EQ(test, 0,
			iommu_kvm_domain_sync(shadow, 0, 0x3000, PAGE_SIZE));
	KUNIT_EXPECT_PTR_EQ(test, fake.sync_kdom, shadow);
	KUNIT_EXPECT_EQ(test, fake.sync_iova, 0x3000);
	KUNIT_EXPECT_EQ(test, fake.sync_size, PAGE_SIZE);
	KUNIT_EXPECT_TRUE(test, fake.sync_locked);

	/* The driver's errors come back */
	fake.sync_ret = -EFAULT;
	KUNIT_EXPECT_EQ(test, -EFAULT, iommu_kvm_domain_sync(shadow, 0, 0, 0));
	KUNIT_EXPECT_EQ(test, fake.sync_size, 0);
	fake.sync_ret = -ENOMEM;
	KUNIT_EXPECT_EQ(test, -ENOMEM, iommu_kvm_domain_sync(shadow, 0, 0, 0));
	KUNIT_EXPECT_EQ(test, fake.syncs, 3);
	KUNIT_EXPECT_EQ(test, atomic64_read(&shadow->stats.syncs), 3);

	/* The owner's teardown stops syncs first, and may do so twice */
	iommu_kvm_domain_unpublish(shadow);
	KUNIT_EXPECT_FALSE(test, shadow->published);
	KUNIT_EXPECT_EQ(test, -ENOENT, iommu_kvm_domain_sync(shadow, 0, 0, 0));
	KUNIT_EXPECT_EQ(test, fake.syncs, 3);
	iommu_kvm_domain_unpublish(shadow);

	iommu_domain_free(&shadow->domain);
	iommu_domain_free(&kdom->domain);
}

static void free_parent_pages(void *unused)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(parent_pages); i++) {
		if (parent_pages[i])
			__free_page(parent_pages[i]);
		parent_pages[i] = NULL;
	}
}

static void test_parent_read(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom, *shared;
	u8 buf[16];
	void *va;
	int i, ret;

	for (i = 0; i < ARRAY_SIZE(parent_pages); i++) {
		parent_pages[i] = alloc_page(GFP_KERNEL | __GFP_ZERO);
		KUNIT_ASSERT_NOT_NULL(test, parent_pages[i]);
	}
	ret = kunit_add_action_or_reset(test, free_parent_pages, NULL);
	KUNIT_ASSERT_EQ(test, 0, ret);
	for (i = 0; i < ARRAY_SIZE(parent_pages); i++) {
		va = kmap_local_page(parent_pages[i]);
		memset(va, 0xa0 + i, PAGE_SIZE);
		kunmap_local(va);
	}

	kdom = alloc_ok(test, dev, SHADOW, &fake_parent, NULL);
	shared = alloc_ok(test, dev, SHARED, NULL, NULL);

	iommu_kvm_domain_lock(kdom);
	/* Across the page boundary, through two different host pages */
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_parent_read(kdom, PAGE_SIZE - 8,
						       buf, sizeof(buf)));
	for (i = 0; i < 8; i++)
		KUNIT_EXPECT_EQ(test, buf[i], 0xa0);
	for (i = 8; i < 16; i++)
		KUNIT_EXPECT_EQ(test, buf[i], 0xa1);
	/* Nothing to read is no error */
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_parent_read(kdom, 0, buf, 0));
	/* Past what the parent maps, and wrapping */
	KUNIT_EXPECT_EQ(test, -EFAULT,
			iommu_kvm_parent_read(kdom, 2 * PAGE_SIZE - 8, buf,
					      sizeof(buf)));
	KUNIT_EXPECT_EQ(test, -EINVAL,
			iommu_kvm_parent_read(kdom, U64_MAX - 3, buf,
					      sizeof(buf)));
	iommu_kvm_domain_unlock(kdom);

	/* A shared domain has no parent to read through */
	iommu_kvm_domain_lock(shared);
	KUNIT_EXPECT_EQ(test, -EINVAL,
			iommu_kvm_parent_read(shared, 0, buf, sizeof(buf)));
	iommu_kvm_domain_unlock(shared);

	iommu_domain_free(&shared->domain);
	iommu_domain_free(&kdom->domain);
}

static struct kunit_case iommu_kvm_test_cases[] = {
	KUNIT_CASE(test_ops_complete),
	KUNIT_CASE(test_init_deinit),
	KUNIT_CASE(test_init_incomplete),
	KUNIT_CASE(test_alloc_uninitialised),
	KUNIT_CASE(test_formats),
	KUNIT_CASE(test_formats_shadow_masked),
	KUNIT_CASE(test_shadow_from_driver),
	KUNIT_CASE(test_alloc_errors),
	KUNIT_CASE(test_lifecycle),
	KUNIT_CASE(test_abort_unpublished),
	KUNIT_CASE(test_released_before_bind),
	KUNIT_CASE(test_private_mem),
	KUNIT_CASE(test_sync_key),
	KUNIT_CASE(test_pin_gfn),
	KUNIT_CASE(test_invalidate_shared),
	KUNIT_CASE(test_invalidate_kvm_flushes),
	KUNIT_CASE(test_invalidate_shadow),
	KUNIT_CASE(test_release_blocks),
	KUNIT_CASE(test_sync),
	KUNIT_CASE(test_set_table),
	KUNIT_CASE(test_parent_read),
	{}
};

static struct kunit_suite iommu_kvm_test_suite = {
	.name = "iommu-kvm-domain",
	.init = iommu_kvm_test_init,
	.test_cases = iommu_kvm_test_cases,
};

kunit_test_suites(&iommu_kvm_test_suite);

MODULE_DESCRIPTION("KUnit tests for KVM-backed IOMMU domains");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS("IOMMU_KVM");
MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");
