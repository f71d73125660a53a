// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed IOMMU domains: domain lifecycle.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#define pr_fmt(fmt) "iommu-kvm: " fmt

#include <kunit/visibility.h>
#include <linux/device.h>
#include <linux/idr.h>
#include <linux/iommu_kvm.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string_choices.h>

#include "iommu_kvm_priv.h"
#include "iommu_kvm_test.h"
#include "trace.h"

/**
 * DOC: Domain lifecycle
 *
 * Creation has two phases. iommu_kvm_domain_alloc() builds the domain: it
 * finds the backend for the device and pins its module, checks the format,
 * lets the backend allocate, binds the VM handle and, for shadow formats,
 * enters the domain on the list parent unmaps are delivered to. Nothing can
 * be attached yet and nothing shows in debugfs. iommu_kvm_domain_publish()
 * makes it visible once the caller (iommufd) can no longer fail. Freeing
 * copes with both phases.
 *
 * Ownership: the domain belongs to the owner of its &struct iommu_domain,
 * iommufd's HWPT object, which keeps it until no device is attached (iommufd
 * answers -EBUSY to a destroy before that). The domain holds: a reference on
 * the backend's module, the VM handle (and through it a reference on the VM
 * and on kvm.ko), and one device reference per attached device.
 *
 * Teardown orders:
 *
 * - The VM goes away while devices are attached: KVM calls the listener's
 *   release, the core marks the domain dead and the backend blocks all DMA
 *   through it (ops->block) under @kdom->lock. Attaches are refused from then
 *   on. The VM itself is only freed when the domain lets go of it, so the
 *   IOMMU never walks freed memory.
 * - The HWPT is destroyed, or iommufd closed: iommufd detaches every device
 *   first, then frees the domain; free stops KVM notifications (an RCU grace
 *   period in KVM) before the backend frees its structure.
 * - A device is unbound or unplugged: its driver detaches it from iommufd
 *   first, which removes it from @kdom->devices.
 * - The backend module: every domain pins it, so it cannot unload first.
 * - Concurrent attach, detach, release and sync serialise on @kdom->lock:
 *   attach takes it inside the iommu group mutex, detach inside iommufd's
 *   group lock, release inside KVM's listener lock, sync on its own. The
 *   lock is innermost but for the backend's own locks.
 */

static DEFINE_MUTEX(iommu_kvm_domains_lock);
static LIST_HEAD(iommu_kvm_domains);
static DEFINE_IDA(iommu_kvm_ida);

/*
 * The formats. Adding one takes an enum value in the uAPI, a line here and
 * the backend's Kconfig symbol.
 */
static const struct iommu_kvm_format_desc iommu_kvm_format_descs[] = {
	[IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHARED] = {
		.name = "selftest-shared",
		.flags = IOMMU_KVM_FMT_SHARED,
	},
	[IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHADOW] = {
		.name = "selftest-shadow",
		.flags = IOMMU_KVM_FMT_SHADOW,
	},
};

static_assert(ARRAY_SIZE(iommu_kvm_format_descs) <= 64);

/* The format's description, or NULL for a value that is not a format */
const struct iommu_kvm_format_desc *iommu_kvm_format(u32 format)
{
	if (format >= ARRAY_SIZE(iommu_kvm_format_descs) ||
	    !iommu_kvm_format_descs[format].name)
		return NULL;
	return &iommu_kvm_format_descs[format];
}
EXPORT_SYMBOL_IF_KUNIT(iommu_kvm_format);

/**
 * struct iommu_kvm_attachment - A device attached to a domain
 * @node: entry in &iommu_kvm_domain.devices
 * @dev: the device; a reference is held
 * @group: its group when it was attached, to match group detaches
 */
struct iommu_kvm_attachment {
	struct list_head node;
	struct device *dev;
	struct iommu_group *group;
};

/**
 * iommu_kvm_formats() - Which KVM-backed formats can a device use?
 * @dev: the device
 * @shadow_formats: set to the subset that needs a parent, may be NULL
 *
 * Process context.
 *
 * Return: a bitmap of BIT_ULL(enum iommu_hwpt_kvm_format); 0 if no backend
 * serves the device's IOMMU.
 */
u64 iommu_kvm_formats(struct device *dev, u64 *shadow_formats)
{
	const struct iommu_kvm_backend *backend;
	u64 formats, shadow = 0;
	unsigned int bit;

	backend = iommu_kvm_backend_get(dev);
	if (IS_ERR(backend)) {
		formats = 0;
		goto out;
	}
	formats = backend->ops->formats(dev);
	for (bit = 0; bit < 64; bit++) {
		const struct iommu_kvm_format_desc *desc = iommu_kvm_format(bit);

		if (!(formats & BIT_ULL(bit)))
			continue;

		/* A backend offering a format the core does not know is a bug */
		if (WARN_ON_ONCE(!desc))
			formats &= ~BIT_ULL(bit);
		else if (desc->flags & IOMMU_KVM_FMT_SHADOW)
			shadow |= BIT_ULL(bit);
	}
	iommu_kvm_backend_put(backend);
out:
	if (shadow_formats)
		*shadow_formats = shadow;
	return formats;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_formats, "IOMMU_KVM");

static int iommu_kvm_attach_dev(struct iommu_domain *domain,
				struct device *dev, struct iommu_domain *old)
{
	struct iommu_kvm_domain *kdom = to_iommu_kvm_domain(domain);
	const struct iommu_kvm_domain_ops *ops = kdom->backend->ops;
	struct iommu_kvm_attachment *att;
	int ret;

	/*
	 * Check on every attach, not just at allocation, that the device's
	 * IOMMU can use this domain: a replace does not go through the iommu
	 * core's owner check, and IOMMUs of one driver can differ.
	 */
	if (iommu_kvm_dev_ops(dev) != domain->owner ||
	    !(ops->formats(dev) & BIT_ULL(kdom->format)))
		return -EINVAL;

	att = kzalloc_obj(*att, GFP_KERNEL_ACCOUNT);
	if (!att)
		return -ENOMEM;

	mutex_lock(&kdom->lock);
	if (kdom->dead) {
		ret = -ENODEV;
		goto out_unlock;
	}
	ret = ops->attach_dev(kdom, dev, old);
	if (ret)
		goto out_unlock;
	att->dev = get_device(dev);
	att->group = dev->iommu_group;
	list_add_tail(&att->node, &kdom->devices);
	mutex_unlock(&kdom->lock);
	trace_iommu_kvm_attach(kdom->id, dev);
	return 0;

out_unlock:
	mutex_unlock(&kdom->lock);
	kfree(att);
	return ret;
}

static void iommu_kvm_detach_locked(struct iommu_kvm_domain *kdom,
				    struct iommu_kvm_attachment *att)
{
	lockdep_assert_held(&kdom->lock);

	if (kdom->backend->ops->detach_dev)
		kdom->backend->ops->detach_dev(kdom, att->dev);
	trace_iommu_kvm_detach(kdom->id, att->dev);
	list_del(&att->node);
	put_device(att->dev);
	kfree(att);
}

/**
 * iommu_kvm_domain_group_detached() - A group left a domain
 * @kdom: the domain
 * @group: the group that is no longer attached to @kdom
 *
 * iommufd calls this after it moved @group off @kdom (detach or replace), and
 * after an attach of @group to @kdom failed, in which case the iommu core
 * may already have rolled back devices that @kdom had seen attach. Process
 * context.
 */
void iommu_kvm_domain_group_detached(struct iommu_kvm_domain *kdom,
				     struct iommu_group *group)
{
	struct iommu_kvm_attachment *att, *tmp;

	mutex_lock(&kdom->lock);
	list_for_each_entry_safe(att, tmp, &kdom->devices, node)
		if (att->group == group)
			iommu_kvm_detach_locked(kdom, att);
	mutex_unlock(&kdom->lock);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_group_detached, "IOMMU_KVM");

static void iommu_kvm_domain_free(struct iommu_domain *domain)
{
	struct iommu_kvm_domain *kdom = to_iommu_kvm_domain(domain);
	const struct iommu_kvm_backend *backend = kdom->backend;
	struct iommu_kvm_attachment *att, *tmp;
	unsigned int id = kdom->id;

	if (kdom->published) {
		mutex_lock(&iommu_kvm_domains_lock);
		list_del(&kdom->node);
		mutex_unlock(&iommu_kvm_domains_lock);
	}
	if (kdom->format_flags & IOMMU_KVM_FMT_SHADOW)
		iommu_kvm_shadow_del(kdom);

	/* After this no KVM notification can reach the domain */
	kdom->vm->ops->unbind(kdom->vm);
	kdom->vm = NULL;

	/* The owner detaches everything before freeing; clean up if not */
	mutex_lock(&kdom->lock);
	list_for_each_entry_safe(att, tmp, &kdom->devices, node) {
		WARN_ON_ONCE(1);
		iommu_kvm_detach_locked(kdom, att);
	}
	mutex_unlock(&kdom->lock);
	mutex_destroy(&kdom->lock);

	trace_iommu_kvm_domain_free(id);
	backend->ops->domain_free(kdom);
	ida_free(&iommu_kvm_ida, id);
	iommu_kvm_backend_put(backend);
}

static const struct iommu_domain_ops iommu_kvm_domain_ops = {
	.attach_dev = iommu_kvm_attach_dev,
	.free = iommu_kvm_domain_free,
};

/**
 * iommu_kvm_domain_alloc() - Build a KVM-backed domain (first phase)
 * @dev: the device the domain is first for; its IOMMU picks the backend
 * @vm: the VM, from iommu_kvm_vm_get(). Consumed, also on failure
 * @format: enum iommu_hwpt_kvm_format
 * @parent: for a shadow format, a nest-parent paging domain of @dev's IOMMU
 *          driver mapping all guest memory; NULL otherwise
 * @user_data: driver-specific data from userspace, or NULL
 *
 * Process context. The domain is freed with iommu_domain_free().
 *
 * Return: the domain, or ERR_PTR(-ENODEV) if @dev has no IOMMU or the VM
 * is gone, ERR_PTR(-EOPNOTSUPP) if no backend serves @dev's IOMMU or it
 * cannot do @format (including values that are no format),
 * ERR_PTR(-EINVAL) if @parent is missing for a shadow format, given for a
 * shared one, or not of @dev's IOMMU driver, or the backend's error:
 * -EINVAL for bad @user_data, -ENOMEM.
 */
struct iommu_kvm_domain *
iommu_kvm_domain_alloc(struct device *dev, struct iommu_kvm_vm *vm,
		       u32 format, struct iommu_domain *parent,
		       const struct iommu_user_data *user_data)
{
	const struct iommu_kvm_format_desc *desc = iommu_kvm_format(format);
	const struct iommu_kvm_backend *backend;
	struct iommu_kvm_domain_cfg cfg = {};
	struct iommu_kvm_domain *kdom;
	int id, ret;

	if (!desc) {
		ret = -EOPNOTSUPP;
		goto out_put_vm;
	}
	if (!(desc->flags & IOMMU_KVM_FMT_SHADOW) != !parent) {
		ret = -EINVAL;
		goto out_put_vm;
	}

	backend = iommu_kvm_backend_get(dev);
	if (IS_ERR(backend)) {
		ret = PTR_ERR(backend);
		goto out_put_vm;
	}
	if (!(backend->ops->formats(dev) & BIT_ULL(format))) {
		ret = -EOPNOTSUPP;
		goto out_put_backend;
	}
	if (WARN_ON_ONCE((desc->flags & IOMMU_KVM_FMT_SHADOW) &&
			 !backend->ops->sync)) {
		ret = -EOPNOTSUPP;
		goto out_put_backend;
	}
	if (parent && parent->owner != iommu_kvm_dev_ops(dev)) {
		ret = -EINVAL;
		goto out_put_backend;
	}

	id = ida_alloc(&iommu_kvm_ida, GFP_KERNEL);
	if (id < 0) {
		ret = id;
		goto out_put_backend;
	}

	cfg.format = format;
	cfg.flags = desc->flags;
	cfg.vm = vm;
	cfg.parent = parent;
	cfg.user_data = user_data;
	kdom = backend->ops->domain_alloc(dev, &cfg);
	if (IS_ERR(kdom)) {
		ret = PTR_ERR(kdom);
		goto out_free_id;
	}
	if (WARN_ON_ONCE(!kdom)) {
		ret = -ENOMEM;
		goto out_free_id;
	}

	kdom->domain.type = IOMMU_DOMAIN_KVM;
	kdom->domain.ops = &iommu_kvm_domain_ops;
	kdom->domain.owner = iommu_kvm_dev_ops(dev);
	kdom->backend = backend;
	kdom->vm = vm;
	kdom->parent = parent;
	kdom->format = format;
	kdom->format_flags = desc->flags;
	kdom->id = id;
	mutex_init(&kdom->lock);
	INIT_LIST_HEAD(&kdom->devices);
	kdom->dead = false;
	kdom->published = false;
	INIT_LIST_HEAD(&kdom->node);
	INIT_LIST_HEAD(&kdom->shadow_node);
	atomic64_set(&kdom->stats.invalidations, 0);
	atomic64_set(&kdom->stats.syncs, 0);
	atomic64_set(&kdom->stats.faults, 0);

	ret = iommu_kvm_vm_bind(vm, kdom);
	if (ret)
		goto out_free_domain;
	if (desc->flags & IOMMU_KVM_FMT_SHADOW)
		iommu_kvm_shadow_add(kdom);

	trace_iommu_kvm_domain_alloc(id, backend->name, desc->name, dev);
	return kdom;

out_free_domain:
	mutex_destroy(&kdom->lock);
	backend->ops->domain_free(kdom);
out_free_id:
	ida_free(&iommu_kvm_ida, id);
out_put_backend:
	iommu_kvm_backend_put(backend);
out_put_vm:
	vm->ops->unbind(vm);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_alloc, "IOMMU_KVM");

/**
 * iommu_kvm_domain_publish() - Make a domain visible (second phase)
 * @kdom: from iommu_kvm_domain_alloc()
 *
 * Called once the owner can no longer fail the creation. Process context.
 */
void iommu_kvm_domain_publish(struct iommu_kvm_domain *kdom)
{
	mutex_lock(&iommu_kvm_domains_lock);
	list_add_tail(&kdom->node, &iommu_kvm_domains);
	kdom->published = true;
	mutex_unlock(&iommu_kvm_domains_lock);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_publish, "IOMMU_KVM");

/*
 * The VM is gone: block all DMA through @kdom. Called by the VM handle's
 * release notification, once.
 */
void iommu_kvm_domain_release(struct iommu_kvm_domain *kdom)
{
	mutex_lock(&kdom->lock);
	if (!kdom->dead) {
		WRITE_ONCE(kdom->dead, true);
		kdom->backend->ops->block(kdom);
		trace_iommu_kvm_block(kdom->id);
	}
	mutex_unlock(&kdom->lock);
}
EXPORT_SYMBOL_IF_KUNIT(iommu_kvm_domain_release);

/**
 * iommu_kvm_domain_sync() - The guest changed its table; update the shadow
 * @kdom: a domain of a shadow format
 * @iova: start of the range the guest changed
 * @size: its length; 0 for the whole table
 *
 * The entry point of a VM's intercept path (for example s390 RPCIT).
 * Process context.
 *
 * Return: -EINVAL for a domain of a shared format, -ENODEV once the VM is
 * gone, otherwise what ops->sync returns.
 */
int iommu_kvm_domain_sync(struct iommu_kvm_domain *kdom, u64 iova, u64 size)
{
	int ret;

	if (!(kdom->format_flags & IOMMU_KVM_FMT_SHADOW))
		return -EINVAL;

	mutex_lock(&kdom->lock);
	if (kdom->dead) {
		ret = -ENODEV;
	} else {
		atomic64_inc(&kdom->stats.syncs);
		ret = kdom->backend->ops->sync(kdom, iova, size);
	}
	mutex_unlock(&kdom->lock);
	trace_iommu_kvm_sync(kdom->id, iova, size, ret);
	return ret;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_sync, "IOMMU_KVM");

/* Print every published domain, for debugfs */
void iommu_kvm_domains_show(struct seq_file *s)
{
	struct iommu_kvm_attachment *att;
	struct iommu_kvm_domain *kdom;
	unsigned int nr;

	mutex_lock(&iommu_kvm_domains_lock);
	list_for_each_entry(kdom, &iommu_kvm_domains, node) {
		mutex_lock(&kdom->lock);
		nr = list_count_nodes(&kdom->devices);
		seq_printf(s,
			   "domain %u backend=%s format=%s vm=%d state=%s parent=%s devices=%u invalidations=%lld syncs=%lld faults=%lld\n",
			   kdom->id, kdom->backend->name,
			   iommu_kvm_format(kdom->format)->name, kdom->vm->tgid,
			   kdom->dead ? "dead" : "live",
			   str_yes_no(kdom->parent), nr,
			   atomic64_read(&kdom->stats.invalidations),
			   atomic64_read(&kdom->stats.syncs),
			   atomic64_read(&kdom->stats.faults));
		list_for_each_entry(att, &kdom->devices, node)
			seq_printf(s, "  dev %s\n", dev_name(att->dev));
		if (kdom->backend->ops->debugfs_show)
			kdom->backend->ops->debugfs_show(kdom, s);
		mutex_unlock(&kdom->lock);
	}
	mutex_unlock(&iommu_kvm_domains_lock);
}

static int __init iommu_kvm_init(void)
{
	iommu_kvm_debugfs_init();
	return 0;
}

static void __exit iommu_kvm_exit(void)
{
	iommu_kvm_debugfs_exit();
}

module_init(iommu_kvm_init);
module_exit(iommu_kvm_exit);

MODULE_DESCRIPTION("KVM-backed IOMMU domains");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS("IOMMU_KVM_INTERNAL");
