/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The KVM side of KVM-backed IOMMU domains: everything the IOMMU framework
 * needs from KVM, named in one place.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#ifndef __LINUX_KVM_IOMMU_H
#define __LINUX_KVM_IOMMU_H

#include <linux/list.h>
#include <linux/types.h>

struct file;
struct kvm;
struct kvm_iommu_listener;

/**
 * DOC: KVM side of KVM-backed IOMMU domains
 *
 * The IOMMU framework (drivers/iommu/kvm-domain/) treats &struct kvm as
 * opaque and never links against kvm.ko. It reaches KVM only through the
 * functions below, each taken with symbol_get():
 *
 * - kvm_iommu_file_is_vm() and kvm_get_kvm_safe() turn a VM file descriptor
 *   from userspace into a reference on the VM;
 * - kvm_put_kvm() drops it. The framework holds this symbol for as long as it
 *   holds the reference, which keeps kvm.ko loaded;
 * - kvm_iommu_listener_register() and kvm_iommu_listener_unregister() attach
 *   a &struct kvm_iommu_listener to the VM, through which KVM reports every
 *   change of the guest physical address space and the end of the VM;
 * - kvm_iommu_vm_has_private_mem() tells whether the VM has private memory,
 *   which no format that walks KVM's table may expose to a device.
 *
 * KVM keeps its listeners on an RCU list under its own mutex: this is a
 * locked registration point, not a bare pointer table.
 */

/**
 * struct kvm_iommu_listener_ops - What KVM reports to a listener
 * @invalidate: guest frames [@gfn_start, @gfn_end) no longer map what they
 *	did: KVM zapped them because the backing memory is being unmapped,
 *	migrated or reclaimed, or because the memslot is deleted or moved.
 *	Called after KVM's own page tables stopped using the range and before
 *	the memory can be reused, in atomic context (KVM's mmu_lock may be
 *	held): must not sleep.
 * @release: the VM is going away: userspace released its last VM file
 *	reference, or the process that owns the VM exited. Called once per
 *	listener, in process context, and may sleep. No @invalidate follows
 *	that could make anything valid again.
 */
struct kvm_iommu_listener_ops {
	void (*invalidate)(struct kvm_iommu_listener *listener, u64 gfn_start,
			   u64 gfn_end);
	void (*release)(struct kvm_iommu_listener *listener);
};

/**
 * struct kvm_iommu_listener - An IOMMU domain listening to a VM
 * @ops: the callbacks; both are mandatory
 * @node: KVM's list entry; owned by KVM while registered
 */
struct kvm_iommu_listener {
	const struct kvm_iommu_listener_ops *ops;
	struct hlist_node node;
};

/*
 * Exported by kvm.ko; the framework calls them only through symbol_get().
 * kvm_get_kvm_safe() and kvm_put_kvm() are also declared in <linux/kvm_host.h>.
 */
bool kvm_iommu_file_is_vm(struct file *file);
bool kvm_get_kvm_safe(struct kvm *kvm);
void kvm_put_kvm(struct kvm *kvm);
int kvm_iommu_listener_register(struct kvm *kvm,
				struct kvm_iommu_listener *listener);
void kvm_iommu_listener_unregister(struct kvm *kvm,
				   struct kvm_iommu_listener *listener);
bool kvm_iommu_vm_has_private_mem(struct kvm *kvm);

#endif /* __LINUX_KVM_IOMMU_H */
