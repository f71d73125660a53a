/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * KVM-backed IOMMU domains: declarations shared by the core's own files and
 * its KUnit suite. Nothing here is for backends.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#ifndef __IOMMU_KVM_PRIV_H
#define __IOMMU_KVM_PRIV_H

#include <linux/iommu_kvm.h>
#include <linux/kvm_iommu.h>
#include <linux/mutex.h>

struct kvm;
struct seq_file;

/**
 * struct iommu_kvm_format_desc - One KVM-backed format
 * @name: shown in debugfs and traces
 * @flags: enum iommu_kvm_format_flags; exactly one of SHARED and SHADOW
 */
struct iommu_kvm_format_desc {
	const char *name;
	u32 flags;
};

const struct iommu_kvm_format_desc *iommu_kvm_format(u32 format);

/* The iommu_ops of the driver @dev sits behind, NULL if it has no IOMMU */
static inline const struct iommu_ops *iommu_kvm_dev_ops(struct device *dev)
{
	if (!dev->iommu || !dev->iommu->iommu_dev)
		return NULL;
	return dev->iommu->iommu_dev->ops;
}

/**
 * struct iommu_kvm_vm_ops - How the core lets go of a VM
 * @unbind: stop notifications to @vm->listener, drop the VM reference and
 *          free @vm. Process context.
 *
 * A real VM is reached through kvm.ko (vm.c); KUnit uses a stand-in.
 */
struct iommu_kvm_vm_ops {
	void (*unbind)(struct iommu_kvm_vm *vm);
};

/**
 * struct iommu_kvm_vm - A domain's handle on its VM
 * @listener: registered with KVM from iommu_kvm_vm_get() to unbind
 * @ops: see &struct iommu_kvm_vm_ops
 * @kvm: the VM, opaque; a reference is held until unbind
 * @put_kvm: kvm_put_kvm(), held with symbol_get() while @kvm is referenced,
 *           which keeps kvm.ko loaded
 * @unregister: kvm_iommu_listener_unregister(), held with symbol_get()
 * @vendor: the module that owns the VM's file (kvm-amd, kvm-intel), which
 *          runs the VM's destruction; held as long as @kvm is
 * @lock: orders the VM's release against binding a domain
 * @kdom: the domain, once iommu_kvm_vm_bind() has run; written under @lock
 *        with smp_store_release() once the domain is fully set up, read
 *        locklessly with smp_load_acquire() by invalidations
 * @released: KVM reported the VM gone before a domain was bound
 * @tgid: the process that created the handle, for debugfs
 */
struct iommu_kvm_vm {
	struct kvm_iommu_listener listener;
	const struct iommu_kvm_vm_ops *ops;
	struct kvm *kvm;
	void (*put_kvm)(struct kvm *kvm);
	void (*unregister)(struct kvm *kvm, struct kvm_iommu_listener *l);
	struct module *vendor;
	struct mutex lock; /* orders the release against iommu_kvm_vm_bind() */
	struct iommu_kvm_domain *kdom;
	bool released;
	pid_t tgid;
};

void iommu_kvm_vm_init(struct iommu_kvm_vm *vm,
		       const struct iommu_kvm_vm_ops *ops);
int iommu_kvm_vm_bind(struct iommu_kvm_vm *vm, struct iommu_kvm_domain *kdom);

/* core.c */
void iommu_kvm_domain_release(struct iommu_kvm_domain *kdom);

/* backend.c, built in */
const struct iommu_kvm_backend *iommu_kvm_backend_get(struct device *dev);
void iommu_kvm_backend_put(const struct iommu_kvm_backend *backend);
void iommu_kvm_backends_show(struct seq_file *s);
void iommu_kvm_shadow_add(struct iommu_kvm_domain *kdom);
void iommu_kvm_shadow_del(struct iommu_kvm_domain *kdom);
void iommu_kvm_deliver_invalidate(struct iommu_kvm_domain *kdom, u64 start,
				  u64 last);
#if IS_ENABLED(CONFIG_KUNIT)
bool iommu_kvm_ops_complete(const struct iommu_kvm_domain_ops *ops);
int iommu_kvm_backend_check(const struct iommu_kvm_backend *backend);
#endif

/* debugfs.c */
void iommu_kvm_domains_show(struct seq_file *s);
void iommu_kvm_debugfs_init(void);
void iommu_kvm_debugfs_exit(void);

#endif /* __IOMMU_KVM_PRIV_H */
