// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of the KVM-backed IOMMU domain core.
 *
 * They run the real core against a fake backend, fake devices behind a fake
 * IOMMU and a stand-in for KVM, which drives the same listener callbacks
 * KVM does.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <kunit/device.h>
#include <kunit/test.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/iommu_kvm.h>
#include <linux/module.h>

#include "iommu_kvm_priv.h"
#include "iommu_kvm_test.h"

#define SHARED IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHARED
#define SHADOW IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHADOW

/* What the fake backend did, and what it is told to do */
static struct {
	u64 formats;
	int alloc_ret;
	int attach_ret;
	int sync_ret;
	unsigned int allocs, frees, attaches, detaches, blocks, syncs;
	unsigned int invalidations;
	u64 inv_start, inv_last;
	struct iommu_domain *attach_old;
	const struct iommu_kvm_domain_cfg *last_cfg;
} fake;

static unsigned int fake_vm_unbinds;

struct fake_domain {
	struct iommu_kvm_domain kdom;
	u32 cfg_format;
	u32 cfg_flags;
};

static u64 fake_formats(struct device *dev)
{
	return fake.formats;
}

static struct iommu_kvm_domain *
fake_domain_alloc(struct device *dev, const struct iommu_kvm_domain_cfg *cfg)
{
	struct fake_domain *fd;

	if (fake.alloc_ret)
		return ERR_PTR(fake.alloc_ret);
	fd = kzalloc_obj(*fd);
	if (!fd)
		return ERR_PTR(-ENOMEM);
	fd->cfg_format = cfg->format;
	fd->cfg_flags = cfg->flags;
	fake.allocs++;
	return &fd->kdom;
}

static void fake_domain_free(struct iommu_kvm_domain *kdom)
{
	fake.frees++;
	kfree(container_of(kdom, struct fake_domain, kdom));
}

static int fake_attach_dev(struct iommu_kvm_domain *kdom, struct device *dev,
			   struct iommu_domain *old)
{
	if (fake.attach_ret)
		return fake.attach_ret;
	fake.attach_old = old;
	fake.attaches++;
	return 0;
}

static void fake_detach_dev(struct iommu_kvm_domain *kdom, struct device *dev)
{
	fake.detaches++;
}

static void fake_invalidate(struct iommu_kvm_domain *kdom, u64 start,
			    u64 last)
{
	fake.invalidations++;
	fake.inv_start = start;
	fake.inv_last = last;
}

static void fake_block(struct iommu_kvm_domain *kdom)
{
	fake.blocks++;
}

static int fake_sync(struct iommu_kvm_domain *kdom, u64 iova, u64 size)
{
	fake.syncs++;
	return fake.sync_ret;
}

static const struct iommu_kvm_domain_ops fake_ops = {
	.formats = fake_formats,
	.domain_alloc = fake_domain_alloc,
	.domain_free = fake_domain_free,
	.attach_dev = fake_attach_dev,
	.detach_dev = fake_detach_dev,
	.invalidate = fake_invalidate,
	.block = fake_block,
	.sync = fake_sync,
};

/* Two fake IOMMU drivers: one with the fake backend, one without */
static const struct iommu_ops fake_iommu_ops;
static const struct iommu_ops other_iommu_ops;
static struct iommu_device fake_iommu = { .ops = &fake_iommu_ops };
static struct iommu_device other_iommu = { .ops = &other_iommu_ops };
static struct dev_iommu fake_dev_iommu = { .iommu_dev = &fake_iommu };
static struct dev_iommu other_dev_iommu = { .iommu_dev = &other_iommu };

static struct iommu_kvm_backend fake_backend = {
	.name = "kunit-fake",
	.owner = THIS_MODULE,
	.iommu_ops = &fake_iommu_ops,
	.ops = &fake_ops,
};

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

static struct iommu_domain fake_parent2 = {
	.type = IOMMU_DOMAIN_UNMANAGED,
	.ops = &fake_parent_ops,
	.owner = &fake_iommu_ops,
};

static struct iommu_domain other_parent = {
	.type = IOMMU_DOMAIN_UNMANAGED,
	.ops = &fake_parent_ops,
	.owner = &other_iommu_ops,
};

static void fake_vm_unbind(struct iommu_kvm_vm *vm)
{
	fake_vm_unbinds++;
	kfree(vm);
}

static const struct iommu_kvm_vm_ops fake_vm_ops = {
	.unbind = fake_vm_unbind,
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
	fake_vm_unbinds = 0;
	return iommu_kvm_backend_register(&fake_backend);
}

static void iommu_kvm_test_exit(struct kunit *test)
{
	iommu_kvm_backend_unregister(&fake_backend);
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

static int attach(struct iommu_kvm_domain *kdom, struct device *dev)
{
	return kdom->domain.ops->attach_dev(&kdom->domain, dev, NULL);
}

static void test_ops_complete(struct kunit *test)
{
	static const size_t mandatory[] = {
		offsetof(struct iommu_kvm_domain_ops, formats),
		offsetof(struct iommu_kvm_domain_ops, domain_alloc),
		offsetof(struct iommu_kvm_domain_ops, domain_free),
		offsetof(struct iommu_kvm_domain_ops, attach_dev),
		offsetof(struct iommu_kvm_domain_ops, invalidate),
		offsetof(struct iommu_kvm_domain_ops, block),
	};
	struct iommu_kvm_domain_ops ops;
	unsigned int i;

	KUNIT_EXPECT_TRUE(test, iommu_kvm_ops_complete(&fake_ops));
	KUNIT_EXPECT_FALSE(test, iommu_kvm_ops_complete(NULL));

	for (i = 0; i < ARRAY_SIZE(mandatory); i++) {
		ops = fake_ops;
		*(void **)((u8 *)&ops + mandatory[i]) = NULL;
		KUNIT_EXPECT_FALSE(test, iommu_kvm_ops_complete(&ops));
	}

	/* Optional ops may be missing */
	ops = fake_ops;
	ops.detach_dev = NULL;
	ops.sync = NULL;
	ops.debugfs_show = NULL;
	KUNIT_EXPECT_TRUE(test, iommu_kvm_ops_complete(&ops));
}

/*
 * What iommu_kvm_backend_register() refuses, with a WARN, before it takes any
 * lock. The WARN itself is not triggered here: a test run must leave a clean
 * kernel log.
 */
static void test_register_incomplete(struct kunit *test)
{
	static const struct iommu_kvm_domain_ops no_block = {
		.formats = fake_formats,
		.domain_alloc = fake_domain_alloc,
		.domain_free = fake_domain_free,
		.attach_dev = fake_attach_dev,
		.invalidate = fake_invalidate,
	};
	struct iommu_kvm_backend b = {
		.name = "kunit-incomplete",
		.iommu_ops = &other_iommu_ops,
		.ops = &fake_ops,
	};

	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_backend_check(&b));
	KUNIT_EXPECT_EQ(test, -EINVAL, iommu_kvm_backend_check(NULL));
	b.ops = &no_block;
	KUNIT_EXPECT_EQ(test, -EINVAL, iommu_kvm_backend_check(&b));
	b.ops = NULL;
	KUNIT_EXPECT_EQ(test, -EINVAL, iommu_kvm_backend_check(&b));
	b.ops = &fake_ops;
	b.name = NULL;
	KUNIT_EXPECT_EQ(test, -EINVAL, iommu_kvm_backend_check(&b));
	b.name = "kunit-incomplete";
	b.iommu_ops = NULL;
	KUNIT_EXPECT_EQ(test, -EINVAL, iommu_kvm_backend_check(&b));

	/* A complete one registers, for an IOMMU driver nobody serves yet */
	b.iommu_ops = &other_iommu_ops;
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_backend_register(&b));
	iommu_kvm_backend_unregister(&b);
}

static void test_register_duplicate(struct kunit *test)
{
	struct iommu_kvm_backend twin = fake_backend;

	twin.name = "kunit-twin";
	KUNIT_EXPECT_EQ(test, -EEXIST,
			iommu_kvm_backend_register(&fake_backend));
	KUNIT_EXPECT_EQ(test, -EEXIST, iommu_kvm_backend_register(&twin));

	iommu_kvm_backend_unregister(&fake_backend);
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_backend_register(&twin));
	iommu_kvm_backend_unregister(&twin);
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_backend_register(&fake_backend));
}

static void test_backend_lookup(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct device *other = fake_device(test, "kvm-kunit-b",
					   &other_dev_iommu);
	struct device *none = fake_device(test, "kvm-kunit-c", NULL);
	const struct iommu_kvm_backend *backend;

	backend = iommu_kvm_backend_get(dev);
	KUNIT_ASSERT_PTR_EQ(test, backend,
			    (const struct iommu_kvm_backend *)&fake_backend);
	iommu_kvm_backend_put(backend);
	KUNIT_EXPECT_PTR_EQ(test, iommu_kvm_backend_get(other),
			    ERR_PTR(-EOPNOTSUPP));
	KUNIT_EXPECT_PTR_EQ(test, iommu_kvm_backend_get(none),
			    ERR_PTR(-ENODEV));
}

static void test_formats(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct device *other = fake_device(test, "kvm-kunit-b",
					   &other_dev_iommu);
	u64 shadow = 1;

	KUNIT_EXPECT_EQ(test, iommu_kvm_formats(dev, &shadow),
			BIT_ULL(SHARED) | BIT_ULL(SHADOW));
	KUNIT_EXPECT_EQ(test, shadow, BIT_ULL(SHADOW));
	KUNIT_EXPECT_EQ(test, iommu_kvm_formats(other, &shadow), 0);
	KUNIT_EXPECT_EQ(test, shadow, 0);

	fake.formats = BIT_ULL(SHARED);
	KUNIT_EXPECT_EQ(test, iommu_kvm_formats(dev, &shadow), BIT_ULL(SHARED));
	KUNIT_EXPECT_EQ(test, shadow, 0);

	KUNIT_EXPECT_NOT_NULL(test, iommu_kvm_format(SHARED));
	KUNIT_EXPECT_NULL(test, iommu_kvm_format(IOMMU_HWPT_KVM_FORMAT_NONE));
	KUNIT_EXPECT_NULL(test, iommu_kvm_format(64));
	KUNIT_EXPECT_NULL(test, iommu_kvm_format(U32_MAX));
}

static void test_alloc_errors(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct device *other = fake_device(test, "kvm-kunit-b",
					   &other_dev_iommu);
	struct device *none = fake_device(test, "kvm-kunit-c", NULL);
	static const struct {
		u32 format;
		bool parent;
		int err;
	} cases[] = {
		{ IOMMU_HWPT_KVM_FORMAT_NONE, false, -EOPNOTSUPP },
		{ 5, false, -EOPNOTSUPP },
		{ 64, false, -EOPNOTSUPP },
		{ U32_MAX, false, -EOPNOTSUPP },
		{ SHADOW, false, -EINVAL },
		{ SHARED, true, -EINVAL },
	};
	unsigned int i, unbinds = 0;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct iommu_domain *parent = NULL;
		struct iommu_kvm_domain *kdom;

		if (cases[i].parent)
			parent = &fake_parent;

		kdom = iommu_kvm_domain_alloc(dev, fake_vm(test),
					      cases[i].format, parent, NULL);
		KUNIT_EXPECT_PTR_EQ(test, kdom, ERR_PTR(cases[i].err));
		KUNIT_EXPECT_EQ(test, fake_vm_unbinds, ++unbinds);
	}

	/* No IOMMU, no backend, format the device cannot do, foreign parent */
	KUNIT_EXPECT_PTR_EQ(test, iommu_kvm_domain_alloc(none, fake_vm(test),
							 SHARED, NULL, NULL),
			    ERR_PTR(-ENODEV));
	KUNIT_EXPECT_PTR_EQ(test, iommu_kvm_domain_alloc(other, fake_vm(test),
							 SHARED, NULL, NULL),
			    ERR_PTR(-EOPNOTSUPP));
	fake.formats = BIT_ULL(SHADOW);
	KUNIT_EXPECT_PTR_EQ(test, iommu_kvm_domain_alloc(dev, fake_vm(test),
							 SHARED, NULL, NULL),
			    ERR_PTR(-EOPNOTSUPP));
	KUNIT_EXPECT_PTR_EQ(test, iommu_kvm_domain_alloc(dev, fake_vm(test),
							 SHADOW, &other_parent,
							 NULL),
			    ERR_PTR(-EINVAL));

	/* The backend's own error comes back */
	fake.alloc_ret = -E2BIG;
	KUNIT_EXPECT_PTR_EQ(test, iommu_kvm_domain_alloc(dev, fake_vm(test),
							 SHADOW, &fake_parent,
							 NULL),
			    ERR_PTR(-E2BIG));
	unbinds += 5;

	/* Every failure let go of its VM and allocated no domain */
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, unbinds);
	KUNIT_EXPECT_EQ(test, fake.allocs, 0);
	KUNIT_EXPECT_EQ(test, fake.frees, 0);
}

static void test_lifecycle(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom;
	struct iommu_kvm_vm *vm;
	struct fake_domain *fd;

	kdom = alloc_ok(test, dev, SHARED, NULL, &vm);
	fd = container_of(kdom, struct fake_domain, kdom);

	/* The backend saw the request; the core filled in its part */
	KUNIT_EXPECT_EQ(test, fd->cfg_format, SHARED);
	KUNIT_EXPECT_EQ(test, fd->cfg_flags, (u32)IOMMU_KVM_FMT_SHARED);
	KUNIT_EXPECT_EQ(test, kdom->domain.type, IOMMU_DOMAIN_KVM);
	KUNIT_EXPECT_PTR_EQ(test, kdom->domain.owner, &fake_iommu_ops);
	KUNIT_EXPECT_PTR_EQ(test, kdom->vm, vm);
	KUNIT_EXPECT_PTR_EQ(test, vm->kdom, kdom);
	KUNIT_EXPECT_PTR_EQ(test, kdom->backend,
			    (const struct iommu_kvm_backend *)&fake_backend);
	KUNIT_EXPECT_FALSE(test, kdom->published);
	KUNIT_EXPECT_FALSE(test, iommu_kvm_domain_is_dead(kdom));

	iommu_kvm_domain_publish(kdom);
	KUNIT_EXPECT_TRUE(test, kdom->published);

	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake.frees, 1);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 1);
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

	/* And it left the shadow list: an unmap of its parent finds nobody */
	iommu_kvm_parent_unmapped(&fake_parent, 0, PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 0);
}

static void test_released_before_bind(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_vm *vm = fake_vm(test);

	vm->listener.ops->release(&vm->listener);
	KUNIT_EXPECT_PTR_EQ(test, iommu_kvm_domain_alloc(dev, vm, SHARED, NULL,
							 NULL),
			    ERR_PTR(-ENODEV));
	KUNIT_EXPECT_EQ(test, fake.allocs, 1);
	KUNIT_EXPECT_EQ(test, fake.frees, 1);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 1);
	KUNIT_EXPECT_EQ(test, fake.blocks, 0);
}

static void test_attach_detach(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct device *dev2 = fake_device(test, "kvm-kunit-d", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom;

	kdom = alloc_ok(test, dev, SHARED, NULL, NULL);
	KUNIT_ASSERT_EQ(test, 0, attach(kdom, dev));
	KUNIT_ASSERT_EQ(test, 0, attach(kdom, dev2));
	KUNIT_EXPECT_EQ(test, fake.attaches, 2);
	KUNIT_EXPECT_NULL(test, fake.attach_old);
	KUNIT_EXPECT_EQ(test, list_count_nodes(&kdom->devices), 2);

	/* Both fake devices have no group: one group detach drops both */
	iommu_kvm_domain_group_detached(kdom, NULL);
	KUNIT_EXPECT_EQ(test, fake.detaches, 2);
	KUNIT_EXPECT_TRUE(test, list_empty(&kdom->devices));

	/* A group that was never attached changes nothing */
	iommu_kvm_domain_group_detached(kdom, (struct iommu_group *)dev);
	KUNIT_EXPECT_EQ(test, fake.detaches, 2);

	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake.frees, 1);
}

static void test_attach_checks(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct device *other = fake_device(test, "kvm-kunit-b",
					   &other_dev_iommu);
	struct device *none = fake_device(test, "kvm-kunit-c", NULL);
	struct iommu_kvm_domain *kdom;

	kdom = alloc_ok(test, dev, SHARED, NULL, NULL);

	/* A device of another IOMMU driver, or of none */
	KUNIT_EXPECT_EQ(test, -EINVAL,
			attach(kdom, other));
	KUNIT_EXPECT_EQ(test, -EINVAL,
			attach(kdom, none));

	/* The IOMMU can no longer do the format: attach revalidates */
	fake.formats = BIT_ULL(SHADOW);
	KUNIT_EXPECT_EQ(test, -EINVAL,
			attach(kdom, dev));
	fake.formats = BIT_ULL(SHARED);

	/* The backend refuses: nothing is tracked */
	fake.attach_ret = -ENOSPC;
	KUNIT_EXPECT_EQ(test, -ENOSPC,
			attach(kdom, dev));
	KUNIT_EXPECT_TRUE(test, list_empty(&kdom->devices));
	KUNIT_EXPECT_EQ(test, fake.attaches, 0);

	iommu_domain_free(&kdom->domain);
}

static void test_invalidate_shared(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom;
	struct iommu_kvm_vm *vm;

	kdom = alloc_ok(test, dev, SHARED, NULL, &vm);

	vm->listener.ops->invalidate(&vm->listener, 0x10, 0x20);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 1);
	KUNIT_EXPECT_EQ(test, fake.inv_start, 0x10ULL << PAGE_SHIFT);
	KUNIT_EXPECT_EQ(test, fake.inv_last, (0x20ULL << PAGE_SHIFT) - 1);
	KUNIT_EXPECT_EQ(test, atomic64_read(&kdom->stats.invalidations), 1);

	/* An empty range is not delivered */
	vm->listener.ops->invalidate(&vm->listener, 0x20, 0x20);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 1);

	iommu_domain_free(&kdom->domain);
}

static void test_invalidate_shadow(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom, *kdom2, *kdom3;
	struct iommu_kvm_vm *vm;

	kdom = alloc_ok(test, dev, SHADOW, &fake_parent, &vm);
	kdom2 = alloc_ok(test, dev, SHADOW, &fake_parent, NULL);
	kdom3 = alloc_ok(test, dev, SHADOW, &fake_parent2, NULL);

	/* A shadow translates through its parent: KVM changes do not reach it */
	vm->listener.ops->invalidate(&vm->listener, 0, 0x100);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 0);

	/* A parent unmap reaches the shadows on that parent only */
	iommu_kvm_parent_unmapped(&fake_parent, 0x1000, 0x2000);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 2);
	KUNIT_EXPECT_EQ(test, fake.inv_start, 0x1000);
	KUNIT_EXPECT_EQ(test, fake.inv_last, 0x2fff);
	KUNIT_EXPECT_EQ(test, atomic64_read(&kdom3->stats.invalidations), 0);

	/* Empty, and wrapping ranges */
	iommu_kvm_parent_unmapped(&fake_parent2, 0x1000, 0);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 2);
	iommu_kvm_parent_unmapped(&fake_parent2, U64_MAX - 0xfff, 0x2000);
	KUNIT_EXPECT_EQ(test, fake.invalidations, 3);
	KUNIT_EXPECT_EQ(test, fake.inv_start, U64_MAX - 0xfff);
	KUNIT_EXPECT_EQ(test, fake.inv_last, U64_MAX);

	iommu_domain_free(&kdom3->domain);
	iommu_domain_free(&kdom2->domain);
	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake.frees, 3);
}

static void test_release_blocks(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct device *dev2 = fake_device(test, "kvm-kunit-d", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom, *shadow;
	struct iommu_kvm_vm *vm, *svm;

	kdom = alloc_ok(test, dev, SHARED, NULL, &vm);
	shadow = alloc_ok(test, dev, SHADOW, &fake_parent, &svm);
	KUNIT_ASSERT_EQ(test, 0, attach(kdom, dev));

	vm->listener.ops->release(&vm->listener);
	KUNIT_EXPECT_TRUE(test, iommu_kvm_domain_is_dead(kdom));
	KUNIT_EXPECT_EQ(test, fake.blocks, 1);

	/* Release is idempotent */
	iommu_kvm_domain_release(kdom);
	KUNIT_EXPECT_EQ(test, fake.blocks, 1);

	/* No new attach, the attached device stays until detached */
	KUNIT_EXPECT_EQ(test, -ENODEV,
			attach(kdom, dev2));
	KUNIT_EXPECT_EQ(test, list_count_nodes(&kdom->devices), 1);
	iommu_kvm_domain_group_detached(kdom, NULL);

	/* A dead shadow does not sync */
	svm->listener.ops->release(&svm->listener);
	KUNIT_EXPECT_EQ(test, fake.blocks, 2);
	KUNIT_EXPECT_EQ(test, -ENODEV, iommu_kvm_domain_sync(shadow, 0, 0));
	KUNIT_EXPECT_EQ(test, fake.syncs, 0);

	iommu_domain_free(&shadow->domain);
	iommu_domain_free(&kdom->domain);
	KUNIT_EXPECT_EQ(test, fake_vm_unbinds, 2);
}

static void test_sync(struct kunit *test)
{
	struct device *dev = fake_device(test, "kvm-kunit-a", &fake_dev_iommu);
	struct iommu_kvm_domain *kdom, *shadow;

	kdom = alloc_ok(test, dev, SHARED, NULL, NULL);
	shadow = alloc_ok(test, dev, SHADOW, &fake_parent, NULL);

	KUNIT_EXPECT_EQ(test, -EINVAL, iommu_kvm_domain_sync(kdom, 0, 0));
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_domain_sync(shadow, 0, PAGE_SIZE));
	fake.sync_ret = -EFAULT;
	KUNIT_EXPECT_EQ(test, -EFAULT, iommu_kvm_domain_sync(shadow, 0, 0));
	KUNIT_EXPECT_EQ(test, fake.syncs, 2);
	KUNIT_EXPECT_EQ(test, atomic64_read(&shadow->stats.syncs), 2);

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

	mutex_lock(&kdom->lock);
	/* Across the page boundary, through two different host pages */
	KUNIT_EXPECT_EQ(test, 0, iommu_kvm_parent_read(kdom, PAGE_SIZE - 8,
						       buf, sizeof(buf)));
	for (i = 0; i < 8; i++)
		KUNIT_EXPECT_EQ(test, buf[i], 0xa0);
	for (i = 8; i < 16; i++)
		KUNIT_EXPECT_EQ(test, buf[i], 0xa1);
	/* Past what the parent maps, and wrapping */
	KUNIT_EXPECT_EQ(test, -EFAULT,
			iommu_kvm_parent_read(kdom, 2 * PAGE_SIZE - 8, buf,
					      sizeof(buf)));
	KUNIT_EXPECT_EQ(test, -EINVAL,
			iommu_kvm_parent_read(kdom, U64_MAX - 3, buf,
					      sizeof(buf)));
	mutex_unlock(&kdom->lock);

	/* A shared domain has no parent to read through */
	mutex_lock(&shared->lock);
	KUNIT_EXPECT_EQ(test, -EINVAL,
			iommu_kvm_parent_read(shared, 0, buf, sizeof(buf)));
	mutex_unlock(&shared->lock);

	iommu_domain_free(&shared->domain);
	iommu_domain_free(&kdom->domain);
}

static struct kunit_case iommu_kvm_test_cases[] = {
	KUNIT_CASE(test_ops_complete),
	KUNIT_CASE(test_register_incomplete),
	KUNIT_CASE(test_register_duplicate),
	KUNIT_CASE(test_backend_lookup),
	KUNIT_CASE(test_formats),
	KUNIT_CASE(test_alloc_errors),
	KUNIT_CASE(test_lifecycle),
	KUNIT_CASE(test_abort_unpublished),
	KUNIT_CASE(test_released_before_bind),
	KUNIT_CASE(test_attach_detach),
	KUNIT_CASE(test_attach_checks),
	KUNIT_CASE(test_invalidate_shared),
	KUNIT_CASE(test_invalidate_shadow),
	KUNIT_CASE(test_release_blocks),
	KUNIT_CASE(test_sync),
	KUNIT_CASE(test_parent_read),
	{}
};

static struct kunit_suite iommu_kvm_test_suite = {
	.name = "iommu-kvm-domain",
	.init = iommu_kvm_test_init,
	.exit = iommu_kvm_test_exit,
	.test_cases = iommu_kvm_test_cases,
};

kunit_test_suites(&iommu_kvm_test_suite);

MODULE_DESCRIPTION("KUnit tests for KVM-backed IOMMU domains");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS("IOMMU_KVM");
MODULE_IMPORT_NS("IOMMU_KVM_INTERNAL");
MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");
