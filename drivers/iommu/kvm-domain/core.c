// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed IOMMU domains: domain lifecycle.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#define pr_fmt(fmt) "iommu-kvm: " fmt

#include <kunit/visibility.h>
#include <linux/device.h>
#include <linux/highmem.h>
#include <linux/idr.h>
#include <linux/iommu_kvm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string_choices.h>

#include "iommu_kvm_priv.h"
#include "trace.h"

/**
 * DOC: Domain lifecycle
 *
 * The IOMMU driver owns the domain. iommu_kvm_domain_alloc() is what iommufd
 * calls: it checks the request against what the driver offers the device
 * (&iommu_ops.kvm_formats), calls &iommu_ops.domain_alloc_kvm, in which the
 * driver allocates its structure, validates its data and calls
 * iommu_kvm_domain_init(), and then binds the VM handle to the domain.
 * Nothing can be attached yet, nothing shows in debugfs, and no sync runs.
 * iommu_kvm_domain_publish() makes it visible, and lets KVM's intercepts
 * sync a shadow, once the caller can no longer fail and, for a shadow
 * format, delivers the parent's unmaps to it
 * (iommu_kvm_domain_parent_unmapped()). The driver's
 * &iommu_domain_ops.free calls iommu_kvm_domain_deinit(), which copes with
 * both phases, before it frees its structure.
 *
 * Ownership: the domain belongs to the owner of its &struct iommu_domain,
 * iommufd's HWPT object, which also holds the driver's module for as long.
 * The domain holds the VM handle (and through it a reference on the VM, on
 * kvm.ko and on the vendor module that destroys the VM). It holds no device:
 * which device is on which domain is the iommu core's and the driver's to
 * know, and stays right through rollback, reset and hot-remove.
 *
 * Teardown orders:
 *
 * - The VM goes away while devices are attached: KVM calls the listener's
 *   release, the core marks the domain dead and the driver blocks all DMA
 *   through it (ops->block) under the domain's lock. iommufd refuses new
 *   attachments from then on. The iommu core may still re-attach a device it
 *   had on the domain (after a reset, or rolling back a failed replace of a
 *   multi-device group), and attach a device that joins the group (probe);
 *   the driver accepts that and leaves the device blocked. The VM itself is
 *   only freed when the domain lets go of it, so the IOMMU never walks freed
 *   memory.
 * - The HWPT is destroyed, or iommufd closed: iommufd detaches every device
 *   first, stops syncs (iommu_kvm_domain_unpublish()) before a shadow's
 *   parent unmaps stop reaching it, then frees the domain; deinit stops KVM notifications (an RCU
 *   grace period in KVM) before the driver frees its structure.
 * - Concurrent attach, release and sync serialise on the domain's lock:
 *   the driver's attach_dev takes it inside the iommu group mutex, release
 *   inside KVM's listener lock, sync on its own. The lock is innermost but
 *   for the driver's own locks.
 */

static DEFINE_MUTEX(iommu_kvm_domains_lock);
static LIST_HEAD(iommu_kvm_domains);
static DEFINE_IDA(iommu_kvm_ida);

/* The iommu_ops of the driver @dev sits behind, NULL if it has no IOMMU */
static const struct iommu_ops *iommu_kvm_dev_ops(struct device *dev)
{
	if (!dev->iommu || !dev->iommu->iommu_dev)
		return NULL;
	return dev->iommu->iommu_dev->ops;
}

/**
 * iommu_kvm_formats() - Which KVM-backed formats can a device use?
 * @dev: the device
 * @shadow_formats: set to the subset that needs a parent, may be NULL
 *
 * Process context.
 *
 * Return: a bitmap of BIT_ULL(enum iommu_hwpt_kvm_format); 0 if the device's
 * IOMMU driver offers none.
 */
u64 iommu_kvm_formats(struct device *dev, u64 *shadow_formats)
{
	const struct iommu_ops *ops = iommu_kvm_dev_ops(dev);
	u64 formats = 0, shadow = 0;

	if (ops && ops->kvm_formats && ops->domain_alloc_kvm) {
		formats = ops->kvm_formats(dev, &shadow);
		/* "No format", or a shadow one not offered, is a driver bug */
		if (WARN_ON_ONCE(formats & BIT_ULL(IOMMU_HWPT_KVM_FORMAT_NONE)))
			formats &= ~BIT_ULL(IOMMU_HWPT_KVM_FORMAT_NONE);
		if (WARN_ON_ONCE(shadow & ~formats))
			shadow &= formats;
	}
	if (shadow_formats)
		*shadow_formats = shadow;
	return formats;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_formats, "IOMMU_KVM");

/* Are the mandatory callbacks there, for a domain of this kind? */
VISIBLE_IF_KUNIT bool
iommu_kvm_ops_complete(const struct iommu_kvm_domain_ops *ops, bool shadow)
{
	return ops && ops->name && ops->block &&
	       (!shadow || (ops->sync && ops->invalidate));
}
EXPORT_SYMBOL_IF_KUNIT(iommu_kvm_ops_complete);

/**
 * iommu_kvm_domain_init() - Set up the core's part of a driver's domain
 * @kdom: embedded in the driver's new domain structure, zeroed
 * @ops: the driver's callbacks; must stay valid as long as the domain
 * @cfg: what &iommu_ops.domain_alloc_kvm was given
 *
 * The driver calls this from &iommu_ops.domain_alloc_kvm, once it has
 * validated @cfg and before it returns the domain. It sets the domain's type
 * to IOMMU_DOMAIN_KVM; the driver sets the domain's ops. Once it returns 0,
 * the driver's &iommu_domain_ops.free must call iommu_kvm_domain_deinit(),
 * also on the driver's own error paths; if it fails there is nothing to
 * undo. Process context.
 *
 * Return: 0, -EINVAL (with a WARN) if a mandatory callback is missing
 * (ops->sync for a shadow format), -ENOMEM.
 */
int iommu_kvm_domain_init(struct iommu_kvm_domain *kdom,
			  const struct iommu_kvm_domain_ops *ops,
			  const struct iommu_kvm_domain_cfg *cfg)
{
	int id;

	if (WARN_ON(!iommu_kvm_ops_complete(ops, cfg->shadow)))
		return -EINVAL;
	id = ida_alloc(&iommu_kvm_ida, GFP_KERNEL);
	if (id < 0)
		return id;

	kdom->domain.type = IOMMU_DOMAIN_KVM;
	kdom->ops = ops;
	kdom->vm = NULL;
	kdom->parent = cfg->parent;
	kdom->format = cfg->format;
	kdom->shadow = cfg->shadow;
	kdom->id = id;
	mutex_init(&kdom->lock);
	kdom->dead = false;
	kdom->published = false;
	INIT_LIST_HEAD(&kdom->node);
	atomic64_set(&kdom->stats.invalidations, 0);
	atomic64_set(&kdom->stats.syncs, 0);
	atomic64_set(&kdom->stats.faults, 0);
	kdom->has_sync_key = false;
	return 0;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_init, "IOMMU_KVM");

/**
 * iommu_kvm_domain_set_sync_key() - Name the device KVM's intercepts sync
 * @kdom: a shadow-format domain, between iommu_kvm_domain_init() and the
 *        return of &iommu_ops.domain_alloc_kvm
 * @key: the architecture's handle of the device the guest names when it
 *       updates its table (s390: the zPCI function handle)
 *
 * Once the domain is bound to its VM, the guest table updates that KVM
 * intercepts for @key go to the domain's ops->sync (kvm_iommu_sync()). Two
 * domains of one VM cannot have the same key: the second allocation fails
 * with -EEXIST.
 *
 * Return: 0, or -EINVAL (with a WARN) for a shared-format domain.
 */
int iommu_kvm_domain_set_sync_key(struct iommu_kvm_domain *kdom, u64 key)
{
	if (WARN_ON(!kdom->shadow))
		return -EINVAL;
	kdom->sync_key = key;
	kdom->has_sync_key = true;
	return 0;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_set_sync_key, "IOMMU_KVM");

/**
 * iommu_kvm_domain_deinit() - Tear down the core's part of a domain
 * @kdom: a domain iommu_kvm_domain_init() succeeded on
 *
 * The driver calls this from its &iommu_domain_ops.free (and its own error
 * paths after init), before it frees the structure. Stops KVM notifications
 * to the domain, waiting for those in flight, and lets go of the VM. No
 * device may be attached, and the owner of the parent no longer delivers
 * its unmaps. Process context.
 */
void iommu_kvm_domain_deinit(struct iommu_kvm_domain *kdom)
{
	unsigned int id = kdom->id;

	/* Not initialised, or already torn down */
	if (!kdom->ops)
		return;
	if (kdom->published) {
		mutex_lock(&iommu_kvm_domains_lock);
		list_del(&kdom->node);
		mutex_unlock(&iommu_kvm_domains_lock);
	}

	/* After this no KVM notification can reach the domain */
	if (kdom->vm) {
		kdom->vm->ops->unbind(kdom->vm);
		kdom->vm = NULL;
		/* Only a domain that was bound was traced as allocated */
		trace_iommu_kvm_domain_free(id);
	}
	mutex_destroy(&kdom->lock);
	kdom->ops = NULL;
	ida_free(&iommu_kvm_ida, id);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_deinit, "IOMMU_KVM");

/**
 * iommu_kvm_domain_alloc() - Have @dev's IOMMU driver build a domain
 * @dev: the device the domain is first for; its IOMMU driver builds it
 * @vm: the VM, from iommu_kvm_vm_get(). Consumed, also on failure
 * @format: enum iommu_hwpt_kvm_format
 * @parent: for a shadow format, a nest-parent paging domain of @dev's IOMMU
 *          driver mapping all guest memory; NULL otherwise
 * @user_data: driver-specific data from userspace, or NULL
 *
 * Process context. The domain is freed with iommu_domain_free(); until
 * iommu_kvm_domain_publish() it shows nowhere.
 *
 * Return: the domain, or ERR_PTR(-ENODEV) if @dev has no IOMMU or the VM
 * is gone; ERR_PTR(-EOPNOTSUPP) if @dev's IOMMU driver cannot do @format
 * (including values that are no format, and drivers that do no KVM-backed
 * domain at all), or @format is a shared one and the VM has private
 * memory; ERR_PTR(-EINVAL) if @parent is missing for a shadow format, given
 * for a shared one, or not a paging domain of @dev's IOMMU driver;
 * ERR_PTR(-EEXIST) if another domain of the VM has the sync key the driver
 * set; or the driver's error: -EINVAL for bad @user_data, -ENOMEM.
 */
struct iommu_kvm_domain *
iommu_kvm_domain_alloc(struct device *dev, struct iommu_kvm_vm *vm,
		       u32 format, struct iommu_domain *parent,
		       const struct iommu_user_data *user_data)
{
	const struct iommu_ops *ops = iommu_kvm_dev_ops(dev);
	struct iommu_kvm_domain_cfg cfg = {};
	struct iommu_kvm_domain *kdom;
	struct iommu_domain *domain;
	u64 formats, shadow;
	int ret;

	if (!ops) {
		ret = -ENODEV;
		goto out_put_vm;
	}
	formats = iommu_kvm_formats(dev, &shadow);
	if (format >= 64 || !(formats & BIT_ULL(format))) {
		ret = -EOPNOTSUPP;
		goto out_put_vm;
	}
	cfg.shadow = shadow & BIT_ULL(format);
	/*
	 * A shared format lets the device walk KVM's table, which maps the
	 * VM's private memory too: never for a VM that has any. A shadow
	 * format translates through its parent, which maps only what the
	 * VMM mapped.
	 */
	if (!cfg.shadow && vm->private_mem) {
		ret = -EOPNOTSUPP;
		goto out_put_vm;
	}
	if (!cfg.shadow != !parent ||
	    (parent && (parent->owner != ops ||
			!(parent->type & __IOMMU_DOMAIN_PAGING)))) {
		ret = -EINVAL;
		goto out_put_vm;
	}

	cfg.format = format;
	cfg.vm = vm;
	cfg.parent = parent;
	cfg.user_data = user_data;
	domain = ops->domain_alloc_kvm(dev, &cfg);
	if (IS_ERR_OR_NULL(domain)) {
		ret = domain ? PTR_ERR(domain) : -ENOMEM;
		WARN_ON_ONCE(!domain);
		goto out_put_vm;
	}
	kdom = to_iommu_kvm_domain(domain);
	/* A driver that did not call iommu_kvm_domain_init() is broken */
	if (WARN_ON_ONCE(domain->type != IOMMU_DOMAIN_KVM || !kdom->ops ||
			 !domain->ops || !domain->ops->free)) {
		if (domain->ops && domain->ops->free)
			domain->ops->free(domain);
		ret = -EINVAL;
		goto out_put_vm;
	}
	domain->owner = ops;

	kdom->vm = vm;
	ret = iommu_kvm_vm_bind(vm, kdom);
	if (ret) {
		kdom->vm = NULL;
		iommu_domain_free(domain);
		goto out_put_vm;
	}
	/*
	 * From here on the domain owns @vm. KVM's intercepts find the domain
	 * by its key from now on, but are refused until it is published.
	 */
	if (kdom->has_sync_key) {
		ret = vm->ops->set_sync_key(vm, kdom->sync_key);
		if (ret) {
			iommu_domain_free(domain);
			return ERR_PTR(ret);
		}
	}

	trace_iommu_kvm_domain_alloc(kdom->id, kdom->ops->name, format, dev);
	return kdom;

out_put_vm:
	vm->ops->unbind(vm);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_alloc, "IOMMU_KVM");

/**
 * iommu_kvm_domain_publish() - Make a domain visible (second phase)
 * @kdom: from iommu_kvm_domain_alloc()
 *
 * Called once the owner can no longer fail the creation and, for a shadow
 * format, delivers its parent's unmaps to the domain: from now on syncs
 * run, and fill the shadow from the parent. Process context.
 */
void iommu_kvm_domain_publish(struct iommu_kvm_domain *kdom)
{
	mutex_lock(&iommu_kvm_domains_lock);
	list_add_tail(&kdom->node, &iommu_kvm_domains);
	mutex_lock(&kdom->lock);
	kdom->published = true;
	mutex_unlock(&kdom->lock);
	mutex_unlock(&iommu_kvm_domains_lock);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_publish, "IOMMU_KVM");

/**
 * iommu_kvm_domain_unpublish() - Stop syncs, and hide a domain
 * @kdom: from iommu_kvm_domain_alloc(), published or not
 *
 * The first step of the owner's teardown, before the parent's owner stops
 * delivering unmaps to the domain: waits for a running sync, and from then
 * on KVM's intercepts are refused (iommu_kvm_domain_sync() returns -ENOENT)
 * and the domain is gone from debugfs. Process context.
 */
void iommu_kvm_domain_unpublish(struct iommu_kvm_domain *kdom)
{
	mutex_lock(&iommu_kvm_domains_lock);
	if (kdom->published) {
		list_del_init(&kdom->node);
		mutex_lock(&kdom->lock);
		kdom->published = false;
		mutex_unlock(&kdom->lock);
	}
	mutex_unlock(&iommu_kvm_domains_lock);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_unpublish, "IOMMU_KVM");

/*
 * The VM is gone: block all DMA through @kdom. Called by the VM handle's
 * release notification, once.
 */
void iommu_kvm_domain_release(struct iommu_kvm_domain *kdom)
{
	mutex_lock(&kdom->lock);
	if (!kdom->dead) {
		WRITE_ONCE(kdom->dead, true);
		kdom->ops->block(kdom);
		trace_iommu_kvm_block(kdom->id);
	}
	mutex_unlock(&kdom->lock);
}
EXPORT_SYMBOL_IF_KUNIT(iommu_kvm_domain_release);

/**
 * iommu_kvm_domain_sync() - The guest changed its table; update the shadow
 * @kdom: a domain of a shadow format
 * @vcpu_idx: the index of the vCPU that made the change known
 * @iova: start of the range the guest changed
 * @size: its length; 0 for the whole table
 *
 * What a VM's intercept path (for example s390 RPCIT) reaches through
 * kvm_iommu_sync() and the domain's sync key. Process context.
 *
 * Return: -EINVAL for a domain of a shared format, -ENOENT before the
 * domain is published (KVM then leaves the intercept to userspace), -ENODEV
 * once the VM is gone, otherwise what ops->sync returns.
 */
int iommu_kvm_domain_sync(struct iommu_kvm_domain *kdom, unsigned int vcpu_idx,
			  u64 iova, u64 size)
{
	int ret;

	if (!kdom->shadow)
		return -EINVAL;

	mutex_lock(&kdom->lock);
	if (!kdom->published) {
		ret = -ENOENT;
	} else if (kdom->dead) {
		ret = -ENODEV;
	} else {
		atomic64_inc(&kdom->stats.syncs);
		ret = kdom->ops->sync(kdom, vcpu_idx, iova, size);
	}
	mutex_unlock(&kdom->lock);
	trace_iommu_kvm_sync(kdom->id, iova, size, ret);
	return ret;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_sync, "IOMMU_KVM");

/**
 * iommu_kvm_domain_set_table() - The guest (de)registered its table
 * @kdom: a domain of a shadow format
 * @anchor: the architecture's designation of the table, 0 to deregister
 * @first: first DMA address the table translates
 * @last: last DMA address it translates
 *
 * What a VM's intercept path (for example s390 MPCIFC register-IOAT)
 * reaches through kvm_iommu_set_table() and the domain's sync key, with
 * the context and locking of iommu_kvm_domain_sync().
 *
 * Return: -EINVAL for a domain of a shared format, -ENOENT before the
 * domain is published or if the driver takes no registrations (KVM then
 * leaves the intercept to userspace), -ENODEV once the VM is gone,
 * otherwise what ops->set_table returns.
 */
int iommu_kvm_domain_set_table(struct iommu_kvm_domain *kdom, u64 anchor,
			       u64 first, u64 last)
{
	int ret;

	if (!kdom->shadow)
		return -EINVAL;

	mutex_lock(&kdom->lock);
	if (!kdom->published || !kdom->ops->set_table)
		ret = -ENOENT;
	else if (kdom->dead)
		ret = -ENODEV;
	else
		ret = kdom->ops->set_table(kdom, anchor, first, last);
	mutex_unlock(&kdom->lock);
	trace_iommu_kvm_set_table(kdom->id, anchor, first, last, ret);
	return ret;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_set_table, "IOMMU_KVM");

/* Print every published domain, for debugfs */
void iommu_kvm_domains_show(struct seq_file *s)
{
	struct iommu_kvm_domain *kdom;

	mutex_lock(&iommu_kvm_domains_lock);
	list_for_each_entry(kdom, &iommu_kvm_domains, node) {
		mutex_lock(&kdom->lock);
		seq_printf(s,
			   "domain %u driver=%s format=%u vm=%d state=%s parent=%s invalidations=%lld syncs=%lld faults=%lld\n",
			   kdom->id, kdom->ops->name, kdom->format,
			   kdom->vm->tgid, kdom->dead ? "dead" : "live",
			   str_yes_no(kdom->parent),
			   atomic64_read(&kdom->stats.invalidations),
			   atomic64_read(&kdom->stats.syncs),
			   atomic64_read(&kdom->stats.faults));
		if (kdom->ops->debugfs_show)
			kdom->ops->debugfs_show(kdom, s);
		mutex_unlock(&kdom->lock);
	}
	mutex_unlock(&iommu_kvm_domains_lock);
}

/*
 * Tell the driver that [start, last] of guest physical space changed. Any
 * context: called from KVM's reports and under the domain's lock alike.
 */
void iommu_kvm_deliver_invalidate(struct iommu_kvm_domain *kdom, u64 start,
				  u64 last)
{
	iommu_kvm_domain_count_invalidation(kdom);
	trace_iommu_kvm_invalidate(kdom->id, start, last);
	kdom->ops->invalidate(kdom, start, last);
}

/**
 * iommu_kvm_domain_parent_unmapped() - The parent stopped mapping a range
 * @kdom: a shadow domain
 * @iova: start of the range, a guest physical address
 * @size: length of the range in bytes
 *
 * The owner of @kdom's parent (iommufd, for the parent's HWPT) calls this
 * for each shadow domain built on the parent, after the range is unmapped
 * from the parent and before the memory behind it is unpinned. The driver
 * drops its translations of the range (ops->invalidate) before this
 * returns, so no shadow entry outlives the pin it was made from. Process
 * context; takes the domain's lock, so a running ops->sync finishes first,
 * and a sync must therefore never wait for the parent's owner (iommufd's
 * IOAS locks), which may hold its own locks around this call.
 */
void iommu_kvm_domain_parent_unmapped(struct iommu_kvm_domain *kdom, u64 iova,
				      u64 size)
{
	u64 last;

	if (WARN_ON_ONCE(!kdom->shadow) || !size)
		return;
	if (check_add_overflow(iova, size - 1, &last))
		last = U64_MAX;

	mutex_lock(&kdom->lock);
	iommu_kvm_deliver_invalidate(kdom, iova, last);
	mutex_unlock(&kdom->lock);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_parent_unmapped, "IOMMU_KVM");

/**
 * iommu_kvm_parent_read() - Read guest memory through the parent domain
 * @kdom: a shadow domain
 * @gpa: guest physical address to read from
 * @buf: where to put the bytes
 * @len: how many bytes
 *
 * For ops->sync: reads a guest table (or anything else the guest named)
 * through the pinned GPA to host mapping of @kdom's parent. The caller holds
 * the domain's lock, which keeps iommu_kvm_domain_parent_unmapped() and so
 * the unpinning of the pages out until the caller is done.
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
		/* Not phys's offset: drivers differ in whether they add it */
		memcpy(buf, va + offset_in_page(gpa), chunk);
		kunmap_local(va);
		buf += chunk;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_parent_read, "IOMMU_KVM");

static int __init iommu_kvm_init(void)
{
	iommu_kvm_debugfs_init();
	return 0;
}
subsys_initcall(iommu_kvm_init);
