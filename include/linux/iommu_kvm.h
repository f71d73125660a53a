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
struct module;
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
 * The framework core owns the &struct iommu_domain and its
 * &struct iommu_domain_ops; a backend supplies &struct iommu_kvm_domain_ops
 * and registers it with iommu_kvm_backend_register(). Only the core talks to
 * KVM; backends never link against KVM symbols.
 */

/**
 * enum iommu_kvm_format_flags - Properties of a KVM-backed format
 * @IOMMU_KVM_FMT_SHARED: the IOMMU walks a table that KVM owns
 * @IOMMU_KVM_FMT_SHADOW: the backend shadows a guest-owned table; a domain of
 *                        this format needs a parent and an ops->sync
 */
enum iommu_kvm_format_flags {
	IOMMU_KVM_FMT_SHARED = 1 << 0,
	IOMMU_KVM_FMT_SHADOW = 1 << 1,
};

/**
 * struct iommu_kvm_domain_cfg - What a backend gets to build a domain from
 * @format: one of enum iommu_hwpt_kvm_format, already checked against the
 *          backend's ops->formats() for the device
 * @flags: enum iommu_kvm_format_flags of @format
 * @vm: the VM. Opaque; the core holds a reference for the domain's lifetime
 * @parent: the parent paging domain for an IOMMU_KVM_FMT_SHADOW format, owned
 *          by the same IOMMU driver and created with
 *          IOMMU_HWPT_ALLOC_NEST_PARENT; NULL for shared formats
 * @user_data: the driver-specific blob from userspace, or NULL if userspace
 *             passed none. Copy it with iommu_copy_struct_from_user()
 */
struct iommu_kvm_domain_cfg {
	u32 format;
	u32 flags;
	struct iommu_kvm_vm *vm;
	struct iommu_domain *parent;
	const struct iommu_user_data *user_data;
};

/**
 * struct iommu_kvm_domain_stats - Event counters of one domain
 * @invalidations: invalidations delivered to the backend
 * @syncs: guest table synchronisations (shadow formats)
 * @faults: translation faults the backend reported
 */
struct iommu_kvm_domain_stats {
	atomic64_t invalidations;
	atomic64_t syncs;
	atomic64_t faults;
};

/**
 * struct iommu_kvm_domain - A KVM-backed IOMMU domain
 * @domain: the generic domain, type IOMMU_DOMAIN_KVM. Its ops belong to the
 *          core, which calls the backend through @backend
 * @backend: the backend that allocated the domain
 * @vm: the VM whose memory the domain translates to
 * @parent: parent paging domain (shadow formats), else NULL
 * @format: enum iommu_hwpt_kvm_format
 * @format_flags: enum iommu_kvm_format_flags of @format
 * @id: a number unique among live domains, used in debugfs and traces
 * @lock: serialises attach, detach, the VM's release, shadow sync, parent
 *        invalidations and the debugfs dump of the domain
 * @devices: devices attached, struct iommu_kvm_attachment, under @lock
 * @dead: the VM went away; the backend has been told to block all DMA
 * @published: the domain is visible in debugfs (second phase of creation)
 * @node: entry in the core's list of domains
 * @shadow_node: entry in the list of shadow domains that parent unmaps are
 *               delivered to, under the registry mutex
 * @stats: event counters
 *
 * A backend embeds this structure in its own domain structure and gets it
 * back with container_of() (name the helper to_<vendor>_kvm_domain()). All
 * members belong to the core: a backend reads @vm, @parent and @format and
 * never writes any of them.
 *
 * Lifetime: the domain is created by iommu_kvm_domain_alloc() and is owned by
 * whoever owns the &struct iommu_domain (iommufd's HWPT object); it ends with
 * iommu_domain_free(). KVM notifications reach the domain through KVM's RCU
 * list of listeners (the domain itself is published to its listener with a
 * release store once it is whole) and stop before the backend's
 * ops->domain_free() runs.
 */
struct iommu_kvm_domain {
	struct iommu_domain domain;
	const struct iommu_kvm_backend *backend;
	struct iommu_kvm_vm *vm;
	struct iommu_domain *parent;
	u32 format;
	u32 format_flags;
	unsigned int id;
	struct mutex lock; /* see @lock above */
	struct list_head devices;
	bool dead;
	bool published;
	struct list_head node;
	struct list_head shadow_node;
	struct iommu_kvm_domain_stats stats;
};

/**
 * struct iommu_kvm_domain_ops - What a backend implements
 *
 * @formats: Mandatory. Return the set of KVM-backed formats the IOMMU of @dev
 *	can use, as a bitmap of BIT_ULL(enum iommu_hwpt_kvm_format). Called
 *	in process context to answer IOMMU_HWPT_KVM_INFO and at allocation,
 *	and before every attach with the iommu group mutex held, so it must
 *	not take locks of the attach path, and must reflect the IOMMU that
 *	@dev sits behind (levels, address width, superpage sizes, snoop
 *	control). Returns 0 if the device can take none.
 *
 * @domain_alloc: Mandatory. Allocate a domain for @dev from @cfg. Called in
 *	process context without core locks. The backend allocates its own
 *	structure embedding &struct iommu_kvm_domain, validates @cfg->user_data
 *	and returns the embedded structure. The core fills in the members of
 *	&struct iommu_kvm_domain afterwards. Returns ERR_PTR on failure:
 *	-EINVAL for bad driver data, -EOPNOTSUPP for a valid request the
 *	hardware cannot do, -ENOMEM. Nothing may be attached or made visible.
 *
 * @domain_free: Mandatory. Free a domain that ops->domain_alloc() returned.
 *	Called in process context once no device is attached and no KVM
 *	notification can reach the domain any more. Must not use @kdom->vm.
 *
 * @attach_dev: Mandatory. Make @dev translate through @kdom. Called by the
 *	iommu core with the group mutex held, and by the core with @kdom->lock
 *	held; may sleep. Never called once the VM is gone. @old is the domain
 *	the device's group is attached to now (blocking, default, paging or
 *	another KVM domain); the change must be atomic where the hardware can
 *	do it, and on failure the device must be left on @old unchanged.
 *	The backend revalidates that @kdom fits the IOMMU of @dev (levels,
 *	address width) on every call. Returns -EINVAL if @dev's IOMMU cannot
 *	use @kdom, -ENOMEM or -ENOSPC on resource shortage.
 *
 * @detach_dev: Optional. @dev no longer translates through @kdom: another
 *	domain has been attached to its group, or attaching to @kdom failed
 *	half-way and the iommu core rolled back. Called with @kdom->lock held,
 *	may sleep. For book-keeping only; the hardware is already off @kdom.
 *
 * @invalidate: Mandatory. Guest physical addresses [@start, @last] no longer
 *	map to what they did: KVM is about to reuse or free the memory, or for
 *	a shadow format the parent dropped the range. On return the IOMMU must
 *	not use any translation it cached for the range. @start == 0 and
 *	@last == U64_MAX means everything. For shared formats it is called in
 *	atomic context (under KVM's mmu_lock or RCU); for shadow formats in
 *	process context with @kdom->lock held. Either way it must not sleep.
 *
 * @block: Mandatory. The VM is gone (userspace released it, or its mm
 *	exited). From return on, every DMA through @kdom must fault; it is
 *	never again translated. Called once, in process context, with
 *	@kdom->lock held; no attach can run concurrently and every later
 *	attach is refused by the core.
 *
 * @sync: Mandatory for backends offering a shadow format, else unused. The
 *	guest changed its table for IOVA [@iova, @iova + @size): bring the
 *	shadow up to date. @size == 0 means the whole table. Called in
 *	process context from the VM's intercept path with @kdom->lock held,
 *	never on a dead domain; may sleep but should not allocate much.
 *	Returns 0, -EFAULT if the guest table or a page it names is not backed
 *	by the parent, -EINVAL for a malformed guest entry or a range outside
 *	the table, or -ENOMEM.
 *
 * @debugfs_show: Optional. Print backend-specific state of @kdom into @s,
 *	one "  key=value" line or more. Called with @kdom->lock held.
 */
struct iommu_kvm_domain_ops {
	u64 (*formats)(struct device *dev);
	struct iommu_kvm_domain *(*domain_alloc)(struct device *dev,
						 const struct iommu_kvm_domain_cfg *cfg);
	void (*domain_free)(struct iommu_kvm_domain *kdom);
	int (*attach_dev)(struct iommu_kvm_domain *kdom, struct device *dev,
			  struct iommu_domain *old);
	void (*detach_dev)(struct iommu_kvm_domain *kdom, struct device *dev);
	void (*invalidate)(struct iommu_kvm_domain *kdom, u64 start, u64 last);
	void (*block)(struct iommu_kvm_domain *kdom);
	int (*sync)(struct iommu_kvm_domain *kdom, u64 iova, u64 size);
	void (*debugfs_show)(struct iommu_kvm_domain *kdom, struct seq_file *s);
};

/**
 * struct iommu_kvm_backend - A registered backend
 * @name: short name shown in debugfs and traces
 * @owner: module that implements @ops; pinned while it has domains
 * @iommu_ops: the IOMMU driver this backend serves: the backend is used for
 *             every device whose dev_iommu_ops() is @iommu_ops
 * @ops: the backend's operations
 * @node: entry in the registry, private to the core
 *
 * The structure must stay valid from iommu_kvm_backend_register() until
 * iommu_kvm_backend_unregister() returns.
 */
struct iommu_kvm_backend {
	const char *name;
	struct module *owner;
	const struct iommu_ops *iommu_ops;
	const struct iommu_kvm_domain_ops *ops;
	struct list_head node;
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
 * Once true it stays true. Backends may test it on their fast paths.
 *
 * Return: true once the VM is gone and the domain blocks all DMA.
 */
static inline bool iommu_kvm_domain_is_dead(struct iommu_kvm_domain *kdom)
{
	return READ_ONCE(kdom->dead);
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

/*
 * What backends call. This part of the core is built in whenever the
 * framework is enabled, so that a built-in IOMMU driver can use it while the
 * rest of the framework is a module.
 */
#if IS_ENABLED(CONFIG_IOMMU_KVM_DOMAIN)
int iommu_kvm_backend_register(struct iommu_kvm_backend *backend);
void iommu_kvm_backend_unregister(struct iommu_kvm_backend *backend);
void iommu_kvm_parent_unmapped(struct iommu_domain *parent, u64 iova,
			       u64 size);
int iommu_kvm_parent_read(struct iommu_kvm_domain *kdom, u64 gpa, void *buf,
			  size_t len);
#else
static inline int iommu_kvm_backend_register(struct iommu_kvm_backend *backend)
{
	return -EOPNOTSUPP;
}

static inline void
iommu_kvm_backend_unregister(struct iommu_kvm_backend *backend)
{
}

static inline void iommu_kvm_parent_unmapped(struct iommu_domain *parent,
					     u64 iova, u64 size)
{
}

static inline int iommu_kvm_parent_read(struct iommu_kvm_domain *kdom,
					u64 gpa, void *buf, size_t len)
{
	return -EOPNOTSUPP;
}
#endif

/*
 * What iommufd and in-kernel users call. This part lives in the iommu_kvm
 * module; iommufd depends on it.
 */
#if IS_ENABLED(CONFIG_IOMMU_KVM_DOMAIN)
struct iommu_kvm_vm *iommu_kvm_vm_get(int kvm_fd);
void iommu_kvm_vm_put(struct iommu_kvm_vm *vm);
u64 iommu_kvm_formats(struct device *dev, u64 *shadow_formats);
struct iommu_kvm_domain *
iommu_kvm_domain_alloc(struct device *dev, struct iommu_kvm_vm *vm,
		       u32 format, struct iommu_domain *parent,
		       const struct iommu_user_data *user_data);
void iommu_kvm_domain_publish(struct iommu_kvm_domain *kdom);
void iommu_kvm_domain_group_detached(struct iommu_kvm_domain *kdom,
				     struct iommu_group *group);
int iommu_kvm_domain_sync(struct iommu_kvm_domain *kdom, u64 iova, u64 size);
#endif

#endif /* __LINUX_IOMMU_KVM_H */
