/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * KVM-backed IOMMU domains: the interface between the framework core in
 * drivers/iommu/kvm-domain/ and the IOMMU drivers that implement it.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#ifndef __LINUX_IOMMU_KVM_H
#define __LINUX_IOMMU_KVM_H

#include <linux/atomic.h>
#include <linux/iommu.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/types.h>
#include <uapi/linux/iommufd.h>

struct iommu_kvm_vm;
struct kvm_iommu_tdp_client;
struct kvm_iommu_tdp_format;
struct page;
struct seq_file;

/**
 * DOC: KVM-backed IOMMU domains
 *
 * A KVM-backed IOMMU domain translates DMA with what KVM already has instead
 * of with a second, separately mapped and pinned IO page table. There are two
 * shapes:
 *
 * - A *shared* format lets the IOMMU walk a table that KVM builds and keeps
 *   current for the VM (for example the x86 TDP table). KVM tells the domain
 *   about every change before the memory behind it can be reused.
 * - A *shadow* format makes the IOMMU driver copy a guest-owned DMA
 *   translation table into a host table when the guest announces a change
 *   (for example an s390 RPCIT). Such a domain has a *parent*: a paging
 *   domain of the same IOMMU driver, allocated by iommufd with
 *   IOMMU_HWPT_ALLOC_NEST_PARENT, that maps all guest memory GPA to host
 *   physical. Pinning and RLIMIT_MEMLOCK accounting stay in iommufd; nothing
 *   is pinned on the intercept path.
 *
 * The IOMMU driver owns the domain, as it owns an SVA or a nested domain: it
 * allocates it in &iommu_ops.domain_alloc_kvm, embeds &struct iommu_kvm_domain
 * in its own domain structure and installs its own &struct iommu_domain_ops.
 * The framework core is a library the driver calls: it holds the VM, hears
 * KVM, keeps the domain's state (live or dead) and its counters, and calls
 * the driver back through the small &struct iommu_kvm_domain_ops for the
 * events only it sees. It keeps no list of attached devices; the iommu core
 * and the driver know which device is on which domain. Only the core talks
 * to KVM; drivers never link against KVM symbols.
 */

/**
 * struct iommu_kvm_domain_cfg - What a driver builds a KVM-backed domain from
 * @format: one of enum iommu_hwpt_kvm_format, already checked against the
 *          driver's &iommu_ops.kvm_formats for the device
 * @shadow: @format is a shadow format (the driver said so in kvm_formats)
 * @vm: the VM. Opaque; the core holds a reference for the domain's lifetime
 * @parent: the parent paging domain for a shadow format, owned by the same
 *          IOMMU driver and created with IOMMU_HWPT_ALLOC_NEST_PARENT; NULL
 *          for shared formats
 * @user_data: the driver-specific blob from userspace, or NULL if userspace
 *             passed none. Copy it with iommu_copy_struct_from_user()
 */
struct iommu_kvm_domain_cfg {
	u32 format;
	bool shadow;
	struct iommu_kvm_vm *vm;
	struct iommu_domain *parent;
	const struct iommu_user_data *user_data;
};

/**
 * struct iommu_kvm_domain_stats - Event counters of one domain
 * @invalidations: invalidations delivered to the driver, or KVM's flushes
 *	of its table that the driver counted (no ops->invalidate)
 * @syncs: guest table synchronisations (shadow formats)
 * @faults: translation faults the driver reported
 */
struct iommu_kvm_domain_stats {
	atomic64_t invalidations;
	atomic64_t syncs;
	atomic64_t faults;
};

struct iommu_kvm_domain_ops;

/**
 * struct iommu_kvm_domain - The core's part of a KVM-backed IOMMU domain
 * @domain: the generic domain, type IOMMU_DOMAIN_KVM. Its ops are the
 *          driver's
 * @ops: the driver's callbacks, set by iommu_kvm_domain_init()
 * @vm: the VM whose memory the domain translates to; NULL until the core has
 *      bound it, after &iommu_ops.domain_alloc_kvm returned
 * @parent: parent paging domain (shadow formats), else NULL
 * @format: enum iommu_hwpt_kvm_format
 * @shadow: @format is a shadow format
 * @id: a number unique among live domains, used in debugfs and traces
 * @lock: serialises the driver's attach_dev against the VM's release, and
 *        shadow sync, parent invalidations and the debugfs dump of the
 *        domain against each other and against both
 * @dead: the VM went away; the driver has been told to block all DMA
 * @published: the domain is visible in debugfs (second phase of creation)
 * @node: entry in the core's list of domains, for debugfs
 * @stats: event counters
 * @sync_key: for a shadow format, the architecture's handle of the device
 *            whose intercepted guest table updates reach the domain, if
 *            @has_sync_key (iommu_kvm_domain_set_sync_key())
 * @has_sync_key: @sync_key is set
 * @resv_in_shadow: for a shadow format, set by the driver before
 *                  iommu_kvm_domain_init() if its hardware never walks the
 *                  parent: the device's reserved regions are then addresses
 *                  of the guest's own DMA address space, which the driver
 *                  keeps out of the shadow, and iommufd reserves nothing in
 *                  the parent's IOAS (which maps guest memory by guest
 *                  physical address). A device that needs a software MSI
 *                  window or a direct-mapped region is refused
 *
 * A driver embeds this structure in its own domain structure and gets it
 * back with container_of() (name the helper to_<vendor>_kvm_domain()). All
 * members but @resv_in_shadow belong to the core: a driver reads @vm,
 * @parent and @format and never writes any of them; @lock it takes with
 * iommu_kvm_domain_lock().
 *
 * Lifetime: the driver allocates the domain in &iommu_ops.domain_alloc_kvm
 * and calls iommu_kvm_domain_init() on it; the core then binds the VM. The
 * domain is owned by whoever owns the &struct iommu_domain (iommufd's HWPT
 * object) and ends with iommu_domain_free(), whose driver op calls
 * iommu_kvm_domain_deinit() before it frees the structure. KVM
 * notifications reach the domain through KVM's RCU list of listeners (the
 * domain is published to its listener with a release store once it is
 * whole) and have stopped when iommu_kvm_domain_deinit() returns.
 */
struct iommu_kvm_domain {
	struct iommu_domain domain;
	const struct iommu_kvm_domain_ops *ops;
	struct iommu_kvm_vm *vm;
	struct iommu_domain *parent;
	u32 format;
	bool shadow;
	unsigned int id;
	struct mutex lock; /* see @lock above */
	bool dead;
	bool published;
	struct list_head node;
	struct iommu_kvm_domain_stats stats;
	u64 sync_key;
	bool has_sync_key;
	bool resv_in_shadow;
};

/**
 * struct iommu_kvm_domain_ops - What the core calls in the driver
 *
 * Only for the events that the core sees and the driver cannot: KVM's
 * reports, the VM's end, the guest's table updates. Everything else (attach,
 * free, what the hardware can do) goes through the driver's own
 * &struct iommu_domain_ops and &struct iommu_ops.
 *
 * @name: Mandatory. Short name of the driver, shown in debugfs and traces.
 *
 * @invalidate: Mandatory for shadow formats, and for shared formats whose
 *	driver keeps translations of its own (iommu_kvm_domain_pin_gfn()).
 *	NULL for a shared format whose table is KVM's own and which KVM
 *	flushes itself (VT-d's TDP format); the core then neither calls nor
 *	counts KVM's reports, and the driver counts KVM's flushes with
 *	iommu_kvm_domain_count_invalidation(). Guest physical addresses
 *	[@start, @last] no longer map to what they did: KVM is about to reuse
 *	or free the memory, or for a shadow format the parent dropped the range.
 *	On return the IOMMU must not use any translation it cached for the
 *	range. @start == 0 and @last == U64_MAX means everything. For shared
 *	formats it is called from KVM's report, outside KVM's mmu_lock but
 *	possibly where sleeping is not allowed, and only for changes of shared
 *	memory (no shared format maps private memory: see
 *	kvm_iommu_vm_has_private_mem()); for shadow formats in process context
 *	with the domain's lock held. Either way it must not sleep.
 *
 * @block: Mandatory. The VM is gone (userspace released it, or its mm
 *	exited). From return on, every DMA through the domain must fault, on
 *	every device the driver has on it; it is never again translated.
 *	Called once, in process context, with the domain's lock held, so it
 *	cannot run while the driver's attach_dev holds that lock.
 *
 * @sync: Mandatory for a shadow format, else unused. The guest changed its
 *	table for IOVA [@iova, @iova + @size): bring the shadow up to date.
 *	@size == 0 means the whole table. @vcpu_idx is the vCPU that asked:
 *	a driver that bounds its work per call returns -EAGAIN with its
 *	progress saved for that vCPU, which then asks again (KVM makes the
 *	guest reissue the instruction); progress is never shared between
 *	vCPUs, as each one's request covers changes the others have not
 *	seen. Called in process context from the VM's intercept path with
 *	the domain's lock held, never on a dead domain; may sleep but should
 *	not allocate much. Returns 0, -EAGAIN, -EFAULT if the guest table or
 *	a page it names is not backed by the parent, -EINVAL for a malformed
 *	guest entry or a range outside the table, or -ENOMEM.
 *
 * @set_table: Optional, shadow formats only. The guest registered the table
 *	its device translates through, with @anchor the architecture's
 *	designation of it (s390: the IOTA) for DMA addresses [@first,
 *	@last], or deregistered it (@anchor 0); the shadow follows. Called
 *	like @sync. Returns 0, -EBUSY if the request is out of sequence
 *	(registering over a registration, deregistering none), or -EINVAL
 *	for a table or range the device cannot use. Without it, KVM leaves
 *	such requests to userspace.
 *
 * @debugfs_show: Optional. Print driver state of the domain into @s, one
 *	"  key=value" line or more, and one "  dev <name>" line for each
 *	device the driver has attached to it. Called with the domain's lock
 *	held.
 */
struct iommu_kvm_domain_ops {
	const char *name;
	void (*invalidate)(struct iommu_kvm_domain *kdom, u64 start, u64 last);
	void (*block)(struct iommu_kvm_domain *kdom);
	int (*sync)(struct iommu_kvm_domain *kdom, unsigned int vcpu_idx,
		    u64 iova, u64 size);
	int (*set_table)(struct iommu_kvm_domain *kdom, u64 anchor, u64 first,
			 u64 last);
	void (*debugfs_show)(struct iommu_kvm_domain *kdom, struct seq_file *s);
};

static inline struct iommu_kvm_domain *
to_iommu_kvm_domain(struct iommu_domain *domain)
{
	return container_of(domain, struct iommu_kvm_domain, domain);
}

/**
 * iommu_kvm_domain_is_dead() - Has the VM of @kdom gone away?
 * @kdom: the domain
 *
 * Once true it stays true; under iommu_kvm_domain_lock() it cannot change.
 * Drivers may test it on their fast paths.
 *
 * Return: true once the VM is gone and the domain blocks all DMA.
 */
static inline bool iommu_kvm_domain_is_dead(struct iommu_kvm_domain *kdom)
{
	return READ_ONCE(kdom->dead);
}

/**
 * iommu_kvm_domain_lock() - Hold off the VM's release and shadow syncs
 * @kdom: the domain
 *
 * A driver's attach_dev takes it around programming the device, so that
 * iommu_kvm_domain_is_dead() and the set of devices ops->block must stop
 * cannot change under it. Process context; may sleep. Nests inside the
 * iommu group mutex and outside the driver's own locks.
 */
static inline void iommu_kvm_domain_lock(struct iommu_kvm_domain *kdom)
{
	mutex_lock(&kdom->lock);
}

/**
 * iommu_kvm_domain_unlock() - Release iommu_kvm_domain_lock()
 * @kdom: the domain
 */
static inline void iommu_kvm_domain_unlock(struct iommu_kvm_domain *kdom)
{
	mutex_unlock(&kdom->lock);
}

/**
 * iommu_kvm_domain_report_fault() - Count a translation fault on @kdom
 * @kdom: the domain a device faulted on
 *
 * Any context.
 */
static inline void iommu_kvm_domain_report_fault(struct iommu_kvm_domain *kdom)
{
	atomic64_inc(&kdom->stats.faults);
}

/**
 * iommu_kvm_domain_count_invalidation() - Count an invalidation on @kdom
 * @kdom: the domain KVM told of a change
 *
 * For drivers that KVM tells directly, not through the core: the VT-d
 * domain that walks KVM's own table counts each of KVM's flushes. Any
 * context.
 */
static inline void
iommu_kvm_domain_count_invalidation(struct iommu_kvm_domain *kdom)
{
	atomic64_inc(&kdom->stats.invalidations);
}

#if IS_ENABLED(CONFIG_IOMMU_KVM_DOMAIN)
/* What IOMMU drivers call */
int iommu_kvm_domain_init(struct iommu_kvm_domain *kdom,
			  const struct iommu_kvm_domain_ops *ops,
			  const struct iommu_kvm_domain_cfg *cfg);
void iommu_kvm_domain_deinit(struct iommu_kvm_domain *kdom);
int iommu_kvm_domain_set_sync_key(struct iommu_kvm_domain *kdom, u64 key);
int iommu_kvm_parent_read(struct iommu_kvm_domain *kdom, u64 gpa, void *buf,
			  size_t len);
int iommu_kvm_domain_pin_gfn(struct iommu_kvm_domain *kdom, u64 gfn,
			     bool write, struct page **page);
int iommu_kvm_tdp_get(struct iommu_kvm_vm *vm,
		      struct kvm_iommu_tdp_client *client,
		      struct kvm_iommu_tdp_format *fmt, u64 *root);
void iommu_kvm_tdp_put(struct iommu_kvm_vm *vm,
		       struct kvm_iommu_tdp_client *client);
void iommu_kvm_tdp_block(struct iommu_kvm_vm *vm);

/* What iommufd and in-kernel users call */
struct iommu_kvm_vm *iommu_kvm_vm_get(int kvm_fd);
void iommu_kvm_vm_put(struct iommu_kvm_vm *vm);
u64 iommu_kvm_formats(struct device *dev, u64 *shadow_formats);
struct iommu_kvm_domain *
iommu_kvm_domain_alloc(struct device *dev, struct iommu_kvm_vm *vm,
		       u32 format, struct iommu_domain *parent,
		       const struct iommu_user_data *user_data);
void iommu_kvm_domain_publish(struct iommu_kvm_domain *kdom);
void iommu_kvm_domain_unpublish(struct iommu_kvm_domain *kdom);
void iommu_kvm_domain_parent_unmapped(struct iommu_kvm_domain *kdom, u64 iova,
				      u64 size);
int iommu_kvm_domain_sync(struct iommu_kvm_domain *kdom, unsigned int vcpu_idx,
			  u64 iova, u64 size);
int iommu_kvm_domain_set_table(struct iommu_kvm_domain *kdom, u64 anchor,
			       u64 first, u64 last);
#if IS_ENABLED(CONFIG_IOMMU_KVM_DOMAIN_TEST)
int iommu_kvm_intercept_sync(int kvm_fd, u64 key, u64 iova, u64 size);
#endif
#else
static inline int
iommu_kvm_domain_init(struct iommu_kvm_domain *kdom,
		      const struct iommu_kvm_domain_ops *ops,
		      const struct iommu_kvm_domain_cfg *cfg)
{
	return -EOPNOTSUPP;
}

static inline void iommu_kvm_domain_deinit(struct iommu_kvm_domain *kdom)
{
}

static inline int iommu_kvm_domain_set_sync_key(struct iommu_kvm_domain *kdom,
						u64 key)
{
	return -EOPNOTSUPP;
}

static inline int iommu_kvm_parent_read(struct iommu_kvm_domain *kdom,
					u64 gpa, void *buf, size_t len)
{
	return -EOPNOTSUPP;
}

static inline int iommu_kvm_domain_pin_gfn(struct iommu_kvm_domain *kdom,
					   u64 gfn, bool write,
					   struct page **page)
{
	return -EOPNOTSUPP;
}

static inline int iommu_kvm_tdp_get(struct iommu_kvm_vm *vm,
				    struct kvm_iommu_tdp_client *client,
				    struct kvm_iommu_tdp_format *fmt,
				    u64 *root)
{
	return -EOPNOTSUPP;
}

static inline void iommu_kvm_tdp_put(struct iommu_kvm_vm *vm,
				     struct kvm_iommu_tdp_client *client)
{
}

static inline void iommu_kvm_tdp_block(struct iommu_kvm_vm *vm)
{
}
#endif

#endif /* __LINUX_IOMMU_KVM_H */
