/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * KVM-backed IOMMU domains: declarations shared by the core's own files and
 * its KUnit suite. Nothing here is for IOMMU drivers.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#ifndef __IOMMU_KVM_PRIV_H
#define __IOMMU_KVM_PRIV_H

#include <linux/iommu_kvm.h>
#include <linux/kvm_iommu.h>
#include <linux/mutex.h>

struct kvm;
struct page;
struct seq_file;

/**
 * struct iommu_kvm_vm_ops - How the core lets go of a VM
 * @unbind: stop notifications to @vm->listener, drop the VM reference and
 *          free @vm. Process context.
 * @set_sync_key: make KVM hand the guest table updates it intercepts for
 *                the device @key names to @vm's domain. Process context.
 * @pin_gfn: pin the page guest frame @gfn maps to, kvm_iommu_pin_gfn().
 *           Process context.
 * @tdp_get: take the table KVM keeps for the VM's IOMMUs,
 *           kvm_iommu_tdp_get(); optional (KVM x86 only). Process context.
 * @tdp_put: give it back, kvm_iommu_tdp_put(). Process context.
 * @tdp_block: empty it for good, kvm_iommu_tdp_block(). Process context.
 *
 * A real VM is reached through kvm.ko (vm.c); KUnit uses a stand-in.
 */
struct iommu_kvm_vm_ops {
	void (*unbind)(struct iommu_kvm_vm *vm);
	int (*set_sync_key)(struct iommu_kvm_vm *vm, u64 key);
	int (*pin_gfn)(struct iommu_kvm_vm *vm, u64 gfn, bool write,
		       struct page **page);
	int (*tdp_get)(struct iommu_kvm_vm *vm,
		       struct kvm_iommu_tdp_client *client,
		       struct kvm_iommu_tdp_format *fmt, u64 *root);
	void (*tdp_put)(struct iommu_kvm_vm *vm,
			struct kvm_iommu_tdp_client *client);
	void (*tdp_block)(struct iommu_kvm_vm *vm);
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
 * @private_mem: the VM has private memory (kvm_arch_has_private_mem()),
 *               which no shared format may expose; fixed at VM creation
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
	bool private_mem;
	pid_t tgid;
};

void iommu_kvm_vm_init(struct iommu_kvm_vm *vm,
		       const struct iommu_kvm_vm_ops *ops);
int iommu_kvm_vm_bind(struct iommu_kvm_vm *vm, struct iommu_kvm_domain *kdom);

/* core.c */
void iommu_kvm_domain_release(struct iommu_kvm_domain *kdom);
void iommu_kvm_deliver_invalidate(struct iommu_kvm_domain *kdom, u64 start,
				  u64 last);
void iommu_kvm_domains_show(struct seq_file *s);
#if IS_ENABLED(CONFIG_KUNIT)
bool iommu_kvm_ops_complete(const struct iommu_kvm_domain_ops *ops,
			    bool shadow);
#endif

/* debugfs.c */
void iommu_kvm_debugfs_init(void);

#endif /* __IOMMU_KVM_PRIV_H */
