// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM's side of KVM-backed IOMMU domains: report guest memory changes and the
 * end of a VM to the IOMMU domains that translate through it.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <linux/kvm_host.h>
#include <linux/kvm_iommu.h>
#include <linux/mm.h>
#include <linux/rculist.h>

#include "kvm_mm.h"

/**
 * DOC: IOMMU listeners
 *
 * An IOMMU domain that translates through a VM registers a
 * &struct kvm_iommu_listener on it. The list is written under
 * &kvm.iommu_lock and read inside kvm->srcu, which a report may enter from
 * any context that cannot sleep. KVM reports an invalidation after it
 * dropped its mmu_lock, while the range is still being invalidated
 * (mmu_invalidate_in_progress), so that a listener's flush does not hold up
 * KVM's vCPUs and KVM cannot map the range again before the listener is
 * done. The release is reported once, under &kvm.iommu_lock,
 * either when userspace drops its last VM file reference or when the owning
 * mm exits, whichever comes first. A listener that registers after that is
 * refused.
 */

/**
 * kvm_iommu_file_is_vm() - Is @file a KVM VM?
 * @file: any file
 *
 * file_is_kvm() is for KVM's own modules only; this is its counterpart for
 * the IOMMU side, which must check a VM file descriptor it is handed before
 * it takes the VM from the file.
 *
 * Return: true if @file is a KVM VM file.
 */
bool kvm_iommu_file_is_vm(struct file *file)
{
	return file_is_kvm(file);
}
EXPORT_SYMBOL_GPL(kvm_iommu_file_is_vm);

/**
 * kvm_iommu_vm_has_private_mem() - Does @kvm have memory the host cannot map?
 * @kvm: the VM; the caller holds a reference
 *
 * A VM with private memory (kvm_arch_has_private_mem(): a software-protected
 * x86 VM, SEV-SNP, TDX) backs part of its guest physical space with
 * guest_memfd and memory attributes, which KVM's page tables follow but the
 * host must not reach through an IOMMU. The IOMMU side refuses such a VM for
 * formats that walk KVM's table. Fixed when the VM is created.
 *
 * Return: true if @kvm has private memory.
 */
bool kvm_iommu_vm_has_private_mem(struct kvm *kvm)
{
	return kvm_arch_has_private_mem(kvm);
}
EXPORT_SYMBOL_GPL(kvm_iommu_vm_has_private_mem);

void kvm_iommu_init(struct kvm *kvm)
{
	mutex_init(&kvm->iommu_lock);
	INIT_HLIST_HEAD(&kvm->iommu_listeners);
	kvm->iommu_released = false;
}

/**
 * kvm_iommu_listener_register() - Subscribe an IOMMU domain to a VM
 * @kvm: the VM; the caller holds a reference
 * @listener: with invalidate and release set; must stay valid until
 *            unregistered
 *
 * Process context.
 *
 * Return: 0, -EINVAL if an op is missing, -EPERM if the caller is not the
 * process that owns the VM (as for every VM ioctl), or -ENODEV if the VM has
 * already been released.
 */
int kvm_iommu_listener_register(struct kvm *kvm,
				struct kvm_iommu_listener *listener)
{
	int ret = 0;

	if (WARN_ON(!listener->ops || !listener->ops->invalidate ||
		    !listener->ops->release))
		return -EINVAL;

	mutex_lock(&kvm->iommu_lock);
	listener->sync_key = KVM_IOMMU_NO_SYNC_KEY;
	if (kvm->mm != current->mm)
		ret = -EPERM;
	else if (kvm->iommu_released || kvm->vm_dead)
		ret = -ENODEV;
	else
		hlist_add_head_rcu(&listener->node, &kvm->iommu_listeners);
	mutex_unlock(&kvm->iommu_lock);
	return ret;
}
EXPORT_SYMBOL_GPL(kvm_iommu_listener_register);

/**
 * kvm_iommu_listener_unregister() - Stop reporting to a listener
 * @kvm: the VM
 * @listener: a registered listener
 *
 * Process context, not inside kvm->srcu, and holding nothing that a
 * listener's callback or KVM's reporting paths wait for (the domain's lock,
 * mmap_lock, kvm->slots_lock): this waits for kvm->srcu readers. Not from
 * the listener's own release. When this returns no callback runs or will
 * run on @listener; unregistering it again is a bug (WARN).
 */
void kvm_iommu_listener_unregister(struct kvm *kvm,
				   struct kvm_iommu_listener *listener)
{
	mutex_lock(&kvm->iommu_lock);
	if (WARN_ON(hlist_unhashed(&listener->node))) {
		mutex_unlock(&kvm->iommu_lock);
		return;
	}
	hlist_del_init_rcu(&listener->node);
	mutex_unlock(&kvm->iommu_lock);
	/* Invalidations and syncs run inside kvm->srcu */
	synchronize_srcu(&kvm->srcu);
}
EXPORT_SYMBOL_GPL(kvm_iommu_listener_unregister);

/**
 * kvm_iommu_listener_set_sync_key() - Name the device a listener syncs for
 * @kvm: the VM
 * @listener: registered on @kvm, with @listener->ops->sync
 * @key: the architecture's handle of the device (s390: the zPCI function
 *       handle), not KVM_IOMMU_NO_SYNC_KEY
 *
 * From return on, kvm_iommu_sync() for @key reaches @listener. Process
 * context.
 *
 * Return: 0, -EINVAL for a listener without a sync op or an invalid @key,
 * -EEXIST if another listener of @kvm has @key.
 */
int kvm_iommu_listener_set_sync_key(struct kvm *kvm,
				    struct kvm_iommu_listener *listener,
				    u64 key)
{
	struct kvm_iommu_listener *cur;
	int ret = 0;

	if (!listener->ops->sync || key == KVM_IOMMU_NO_SYNC_KEY)
		return -EINVAL;
	mutex_lock(&kvm->iommu_lock);
	hlist_for_each_entry(cur, &kvm->iommu_listeners, node) {
		if (cur != listener && cur->sync_key == key) {
			ret = -EEXIST;
			goto out_unlock;
		}
	}
	WRITE_ONCE(listener->sync_key, key);
out_unlock:
	mutex_unlock(&kvm->iommu_lock);
	return ret;
}
EXPORT_SYMBOL_GPL(kvm_iommu_listener_set_sync_key);

/* The listener whose sync key is @key, or NULL; inside kvm->srcu */
static struct kvm_iommu_listener *kvm_iommu_key_listener(struct kvm *kvm,
							 u64 key)
{
	struct kvm_iommu_listener *listener;

	if (key == KVM_IOMMU_NO_SYNC_KEY)
		return NULL;
	hlist_for_each_entry_srcu(listener, &kvm->iommu_listeners, node,
				  srcu_read_lock_held(&kvm->srcu)) {
		if (READ_ONCE(listener->sync_key) == key)
			return listener;
	}
	return NULL;
}

/**
 * kvm_iommu_sync() - Hand an intercepted guest table update to the IOMMU
 * @kvm: the VM whose guest issued it
 * @vcpu_idx: the index of the vCPU that issued it
 * @key: the architecture's handle of the device it names
 * @iova: start of the IOVA range the guest changed
 * @size: its length; 0 for the whole table
 *
 * For an architecture's intercept handler (s390 RPCIT). The listener found
 * for @key cannot be unregistered, and so its domain not freed, while its
 * sync runs: it runs inside kvm->srcu, which unregistering waits for.
 * Process context; may sleep.
 *
 * Return: -ENOENT if no listener has @key (the intercept then goes to
 * userspace as before), else what the listener's sync returns.
 */
int kvm_iommu_sync(struct kvm *kvm, unsigned int vcpu_idx, u64 key, u64 iova,
		   u64 size)
{
	struct kvm_iommu_listener *listener;
	int idx, ret = -ENOENT;

	idx = srcu_read_lock(&kvm->srcu);
	listener = kvm_iommu_key_listener(kvm, key);
	/* Only a listener with a sync op gets a key */
	if (listener && listener->ops->sync)
		ret = listener->ops->sync(listener, vcpu_idx, iova, size);
	srcu_read_unlock(&kvm->srcu, idx);
	return ret;
}
EXPORT_SYMBOL_GPL(kvm_iommu_sync);

/**
 * kvm_iommu_set_table() - Hand an intercepted table registration to the IOMMU
 * @kvm: the VM whose guest issued it
 * @key: the architecture's handle of the device it names
 * @anchor: the architecture's designation of the table (s390: the IOTA), or
 *          0 to deregister it
 * @first: first DMA address the table translates
 * @last: last DMA address it translates
 *
 * For an architecture's intercept handler (s390 MPCIFC register-IOAT and
 * deregister-IOAT), with the guarantees of kvm_iommu_sync(). Process
 * context; may sleep.
 *
 * Return: -ENOENT if no listener has @key or it takes no registrations (the
 * intercept then goes to userspace as before), else what the listener's
 * set_table returns.
 */
int kvm_iommu_set_table(struct kvm *kvm, u64 key, u64 anchor, u64 first,
			u64 last)
{
	struct kvm_iommu_listener *listener;
	int idx, ret = -ENOENT;

	idx = srcu_read_lock(&kvm->srcu);
	listener = kvm_iommu_key_listener(kvm, key);
	if (listener && listener->ops->set_table)
		ret = listener->ops->set_table(listener, anchor, first, last);
	srcu_read_unlock(&kvm->srcu, idx);
	return ret;
}

/**
 * kvm_iommu_has_sync_key() - Does a listener take the intercepts for @key?
 * @kvm: the VM
 * @key: the architecture's handle of a device
 *
 * For an intercept handler that must know whether an instruction is the
 * IOMMU's before it touches guest memory for it. The answer can change
 * right after; kvm_iommu_sync() and kvm_iommu_set_table() then return
 * -ENOENT.
 *
 * Return: true if a listener of @kvm has @key.
 */
bool kvm_iommu_has_sync_key(struct kvm *kvm, u64 key)
{
	bool found;
	int idx;

	idx = srcu_read_lock(&kvm->srcu);
	found = kvm_iommu_key_listener(kvm, key);
	srcu_read_unlock(&kvm->srcu, idx);
	return found;
}

/**
 * kvm_iommu_pin_gfn() - Pin the page behind a guest frame, as KVM maps it
 * @kvm: the VM; the caller holds a reference and runs in the VM's mm
 * @gfn: the guest frame, in address space 0
 * @write: the page must be writable
 * @page: set to the pinned page; the caller unpins it with
 *        unpin_user_page()
 *
 * For an IOMMU domain that keeps translations of guest memory of its own
 * and drops them when its listener's invalidate says so. @gfn is looked up
 * in the memslots and faulted in through the memslot's userspace mapping
 * from the primary MMU (never from guest_memfd: this is shared memory
 * only), and the page is returned pinned, since the caller may write to it
 * through a kernel mapping. It is returned only if no invalidation of @gfn
 * was in progress, and none completed, between the lookup and a check
 * under mmu_lock, so it is what @gfn maps to at that check. An
 * invalidation that starts after the check is reported to the listeners as
 * always; the caller must not miss one that races with this call: under
 * the lock its invalidate takes, it checks that no invalidate reached it
 * since before the call, and otherwise unpins the page and calls again.
 *
 * Process context; may sleep.
 *
 * Return: 0; -EPERM if the caller is not in the VM's mm; -EFAULT if no
 * memslot maps @gfn to memory with a struct page (or not writably, for
 * @write); -EINTR if a fatal signal is pending.
 */
int kvm_iommu_pin_gfn(struct kvm *kvm, u64 gfn, bool write, struct page **page)
{
	unsigned long seq;
	int idx, ret;

	if (kvm->mm != current->mm)
		return -EPERM;

	idx = srcu_read_lock(&kvm->srcu);
	for (;;) {
		struct page *pinned = NULL;
		struct kvm_follow_pfn kfp = {
			.slot = gfn_to_memslot(kvm, gfn),
			.gfn = gfn,
			.flags = write ? FOLL_WRITE : 0,
			.refcounted_page = &pinned,
			.pin = true,
		};
		kvm_pfn_t pfn;

		seq = kvm->mmu_invalidate_seq;
		/* Pairs with the smp_wmb() of mmu_invalidate_end() */
		smp_rmb();
		pfn = kvm_follow_pfn(&kfp);
		if (pfn == KVM_PFN_ERR_SIGPENDING) {
			ret = -EINTR;
			break;
		}
		if (is_error_noslot_pfn(pfn) || !pinned) {
			ret = -EFAULT;
			break;
		}

		KVM_MMU_LOCK(kvm);
		ret = mmu_invalidate_retry_gfn(kvm, seq, gfn);
		KVM_MMU_UNLOCK(kvm);
		if (!ret) {
			*page = pinned;
			break;
		}
		unpin_user_page(pinned);
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	srcu_read_unlock(&kvm->srcu, idx);
	return ret;
}
EXPORT_SYMBOL_GPL(kvm_iommu_pin_gfn);

/*
 * Lockless, and not a data race: hlist_empty() reads the head with
 * READ_ONCE() and the RCU list helpers write it with marked stores. A
 * listener that is being added can miss a range reported meanwhile; it
 * holds no translation yet, since no domain can be attached before
 * kvm_iommu_listener_register() returned.
 */
bool kvm_iommu_has_listeners(struct kvm *kvm)
{
	return !hlist_empty(&kvm->iommu_listeners);
}

/*
 * Guest frames [@start, @end) changed, in the memory @filter names. Called
 * after KVM stopped using the range, outside mmu_lock, and before the
 * memory behind it can be reused; any context that cannot sleep.
 */
void kvm_iommu_notify_invalidate(struct kvm *kvm, gfn_t start, gfn_t end,
				 enum kvm_gfn_range_filter filter)
{
	struct kvm_iommu_listener *listener;
	unsigned int which;
	int idx;

	BUILD_BUG_ON(KVM_FILTER_SHARED != KVM_IOMMU_INV_SHARED);
	BUILD_BUG_ON(KVM_FILTER_PRIVATE != KVM_IOMMU_INV_PRIVATE);

	if (!kvm_iommu_has_listeners(kvm) || start >= end)
		return;
	which = filter & (KVM_IOMMU_INV_SHARED | KVM_IOMMU_INV_PRIVATE);

	idx = srcu_read_lock(&kvm->srcu);
	hlist_for_each_entry_srcu(listener, &kvm->iommu_listeners, node,
				  srcu_read_lock_held(&kvm->srcu))
		listener->ops->invalidate(listener, start, end, which);
	srcu_read_unlock(&kvm->srcu, idx);
}

/* The VM is going away for its users. Process context. */
void kvm_iommu_notify_release(struct kvm *kvm)
{
	struct kvm_iommu_listener *listener;

	mutex_lock(&kvm->iommu_lock);
	if (!kvm->iommu_released) {
		kvm->iommu_released = true;
		hlist_for_each_entry(listener, &kvm->iommu_listeners, node)
			listener->ops->release(listener);
	}
	mutex_unlock(&kvm->iommu_lock);
}
