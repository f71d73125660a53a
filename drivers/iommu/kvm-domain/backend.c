// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed IOMMU domains: what backends call.
 *
 * This file is built in whenever the framework is enabled, even when the rest
 * of the core is a module, so that built-in IOMMU drivers can register a
 * backend and report parent unmaps without linking against a module.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#define pr_fmt(fmt) "iommu-kvm: " fmt

#include <kunit/visibility.h>
#include <linux/highmem.h>
#include <linux/iommu_kvm.h>
#include <linux/module.h>
#include <linux/seq_file.h>

#include "iommu_kvm_priv.h"
#include "trace.h"

/*
 * The registry: backends, and the shadow domains that parent unmaps are
 * delivered to. iommu_kvm_registry_lock protects both lists and is never
 * taken in atomic context.
 */
static DEFINE_MUTEX(iommu_kvm_registry_lock);
static LIST_HEAD(iommu_kvm_backends);
static LIST_HEAD(iommu_kvm_shadow_domains);

/* Are all mandatory ops there? */
VISIBLE_IF_KUNIT bool
iommu_kvm_ops_complete(const struct iommu_kvm_domain_ops *ops)
{
	return ops && ops->formats && ops->domain_alloc && ops->domain_free &&
	       ops->attach_dev && ops->invalidate && ops->block;
}
EXPORT_SYMBOL_IF_KUNIT(iommu_kvm_ops_complete);

/* 0, or -EINVAL if @backend lacks its name, its iommu_ops or a mandatory op */
VISIBLE_IF_KUNIT int
iommu_kvm_backend_check(const struct iommu_kvm_backend *backend)
{
	if (!backend || !backend->name || !backend->iommu_ops ||
	    !iommu_kvm_ops_complete(backend->ops))
		return -EINVAL;
	return 0;
}
EXPORT_SYMBOL_IF_KUNIT(iommu_kvm_backend_check);

/**
 * iommu_kvm_backend_register() - Offer KVM-backed domains for an IOMMU driver
 * @backend: the backend; must stay valid until unregistered
 *
 * Process context.
 *
 * Return: 0; -EINVAL (with a WARN) if a mandatory op, the name or the
 * iommu_ops is missing; -EEXIST if @backend or another backend for the same
 * iommu_ops is already registered.
 */
int iommu_kvm_backend_register(struct iommu_kvm_backend *backend)
{
	struct iommu_kvm_backend *cur;
	int ret;

	ret = iommu_kvm_backend_check(backend);
	if (WARN_ON(ret))
		return ret;

	mutex_lock(&iommu_kvm_registry_lock);
	list_for_each_entry(cur, &iommu_kvm_backends, node) {
		if (cur == backend || cur->iommu_ops == backend->iommu_ops) {
			ret = -EEXIST;
			goto out_unlock;
		}
	}
	list_add_tail(&backend->node, &iommu_kvm_backends);
	pr_debug("backend %s registered\n", backend->name);
out_unlock:
	mutex_unlock(&iommu_kvm_registry_lock);
	return ret;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_backend_register, "IOMMU_KVM");

/**
 * iommu_kvm_backend_unregister() - Withdraw a backend
 * @backend: a registered backend
 *
 * Process context. Every domain holds a reference on @backend->owner, so a
 * modular backend cannot get here while it has domains; a built-in one must
 * not call this while it has any.
 */
void iommu_kvm_backend_unregister(struct iommu_kvm_backend *backend)
{
	mutex_lock(&iommu_kvm_registry_lock);
	list_del_init(&backend->node);
	mutex_unlock(&iommu_kvm_registry_lock);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_backend_unregister, "IOMMU_KVM");

/**
 * iommu_kvm_backend_get() - Find the backend serving @dev and pin it
 * @dev: a device behind an IOMMU
 *
 * Return: the backend with a reference on its module, ERR_PTR(-ENODEV) if
 * @dev has no IOMMU, or ERR_PTR(-EOPNOTSUPP) if no backend serves its IOMMU
 * driver (or the backend module is going away).
 */
const struct iommu_kvm_backend *iommu_kvm_backend_get(struct device *dev)
{
	const struct iommu_kvm_backend *found = ERR_PTR(-EOPNOTSUPP);
	struct iommu_kvm_backend *cur;
	const struct iommu_ops *ops;

	ops = iommu_kvm_dev_ops(dev);
	if (!ops)
		return ERR_PTR(-ENODEV);

	mutex_lock(&iommu_kvm_registry_lock);
	list_for_each_entry(cur, &iommu_kvm_backends, node) {
		if (cur->iommu_ops != ops)
			continue;
		if (try_module_get(cur->owner))
			found = cur;
		break;
	}
	mutex_unlock(&iommu_kvm_registry_lock);
	return found;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_backend_get, "IOMMU_KVM_INTERNAL");

void iommu_kvm_backend_put(const struct iommu_kvm_backend *backend)
{
	module_put(backend->owner);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_backend_put, "IOMMU_KVM_INTERNAL");

/* Print the registered backends, for debugfs */
void iommu_kvm_backends_show(struct seq_file *s)
{
	struct iommu_kvm_backend *cur;

	mutex_lock(&iommu_kvm_registry_lock);
	list_for_each_entry(cur, &iommu_kvm_backends, node)
		seq_printf(s, "%s module=%s\n", cur->name,
			   cur->owner ? module_name(cur->owner) : "built-in");
	mutex_unlock(&iommu_kvm_registry_lock);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_backends_show, "IOMMU_KVM_INTERNAL");

void iommu_kvm_shadow_add(struct iommu_kvm_domain *kdom)
{
	mutex_lock(&iommu_kvm_registry_lock);
	list_add_tail(&kdom->shadow_node, &iommu_kvm_shadow_domains);
	mutex_unlock(&iommu_kvm_registry_lock);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_shadow_add, "IOMMU_KVM_INTERNAL");

void iommu_kvm_shadow_del(struct iommu_kvm_domain *kdom)
{
	mutex_lock(&iommu_kvm_registry_lock);
	list_del_init(&kdom->shadow_node);
	mutex_unlock(&iommu_kvm_registry_lock);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_shadow_del, "IOMMU_KVM_INTERNAL");

/*
 * Tell the backend that [start, last] of guest physical space changed. Any
 * context: called under KVM's mmu_lock and under @kdom->lock alike.
 */
void iommu_kvm_deliver_invalidate(struct iommu_kvm_domain *kdom, u64 start,
				  u64 last)
{
	atomic64_inc(&kdom->stats.invalidations);
	trace_iommu_kvm_invalidate(kdom->id, start, last);
	kdom->backend->ops->invalidate(kdom, start, last);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_deliver_invalidate, "IOMMU_KVM_INTERNAL");

/**
 * iommu_kvm_parent_unmapped() - A nest parent stopped mapping a range
 * @parent: a paging domain allocated with IOMMU_HWPT_ALLOC_NEST_PARENT
 * @iova: start of the range, a guest physical address
 * @size: length of the range in bytes
 *
 * An IOMMU driver that offers a shadow format calls this from the unmap path
 * of its nest-parent domains, after the range is unmapped from @parent and
 * before it returns to iommufd, which then unpins the pages. Every shadow
 * domain built on @parent drops its translations of the range before this
 * returns, so no shadow entry outlives the pin it was made from. Process
 * context; takes each child's lock, so a running ops->sync finishes first.
 */
void iommu_kvm_parent_unmapped(struct iommu_domain *parent, u64 iova, u64 size)
{
	struct iommu_kvm_domain *kdom;
	u64 last;

	if (!size)
		return;
	if (check_add_overflow(iova, size - 1, &last))
		last = U64_MAX;

	mutex_lock(&iommu_kvm_registry_lock);
	list_for_each_entry(kdom, &iommu_kvm_shadow_domains, shadow_node) {
		if (kdom->parent != parent)
			continue;
		mutex_lock(&kdom->lock);
		iommu_kvm_deliver_invalidate(kdom, iova, last);
		mutex_unlock(&kdom->lock);
	}
	mutex_unlock(&iommu_kvm_registry_lock);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_parent_unmapped, "IOMMU_KVM");

/**
 * iommu_kvm_parent_read() - Read guest memory through the parent domain
 * @kdom: a shadow domain
 * @gpa: guest physical address to read from
 * @buf: where to put the bytes
 * @len: how many bytes
 *
 * For ops->sync: reads a guest table (or anything else the guest named)
 * through the pinned GPA to host mapping of @kdom's parent. The caller holds
 * @kdom->lock, which keeps iommu_kvm_parent_unmapped() and so the unpinning
 * of the pages out until the caller is done.
 *
 * Return: 0, -EFAULT if part of the range is not mapped by the parent, or
 * -EINVAL for a non-shadow domain or a range that wraps.
 */
int iommu_kvm_parent_read(struct iommu_kvm_domain *kdom, u64 gpa, void *buf,
			  size_t len)
{
	u64 end;

	lockdep_assert_held(&kdom->lock);
	if (!kdom->parent || check_add_overflow(gpa, (u64)len, &end))
		return -EINVAL;

	while (len) {
		size_t chunk = min_t(size_t, len, PAGE_SIZE - offset_in_page(gpa));
		phys_addr_t phys = iommu_iova_to_phys(kdom->parent, gpa);
		void *va;

		if (!phys || !pfn_valid(PHYS_PFN(phys)))
			return -EFAULT;
		va = kmap_local_page(pfn_to_page(PHYS_PFN(phys)));
		memcpy(buf, va + offset_in_page(phys), chunk);
		kunmap_local(va);
		buf += chunk;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_parent_read, "IOMMU_KVM");
