// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed IOMMU domains: the only place that touches KVM.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#define pr_fmt(fmt) "iommu-kvm: " fmt

#include <kunit/visibility.h>
#include <linux/file.h>
#include <linux/kvm_iommu.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include "iommu_kvm_priv.h"
#include "trace.h"

/**
 * DOC: Coupling to KVM
 *
 * The core never links against kvm.ko, which may be a module while the core
 * is built in. A VM file descriptor from userspace becomes a
 * &struct iommu_kvm_vm in iommu_kvm_vm_get():
 *
 * 1. kvm_iommu_file_is_vm(), taken with symbol_get() and put right away,
 *    checks the file. If kvm.ko is not loaded, no file can be a VM: -EBADFD.
 * 2. kvm_get_kvm_safe() takes a reference on the VM. kvm_put_kvm() stays
 *    held with symbol_get() for as long as that reference is, so kvm.ko
 *    cannot be unloaded under a domain. Neither pins the vendor module
 *    (kvm-amd, kvm-intel) that owns the VM's file and whose code the VM's
 *    destruction runs: only an open VM file does. The handle holds that
 *    module too, from the file's f_op->owner, and drops it only after its
 *    kvm_put_kvm(), so the last reference on a VM whose file is closed
 *    cannot call into an unloaded module.
 * 3. kvm_iommu_listener_register() subscribes the handle to the VM's
 *    changes. KVM refuses a VM of another address space (-EPERM).
 *
 * Notifications are delivered to the domain bound to the handle. Before the
 * domain is bound (while the driver builds it) an invalidation has nothing
 * to act on, since nothing can be attached yet; a release is remembered and
 * makes the bind fail. A shadow domain with a sync key also gets the guest
 * table updates KVM intercepts for that key (the listener's sync, called
 * by kvm_iommu_sync()); before the bind, or for another key, KVM answers
 * -ENOENT.
 */

/*
 * KVM reports what it zapped, for shared or private memory (@filter). A
 * shared format translates only memory with a host mapping: a VM with
 * private memory is refused for it (kvm_iommu_vm_has_private_mem()), and a
 * report for private memory alone concerns nothing it maps. A shadow
 * format translates through its parent, not through KVM, and hears of
 * changes from the parent's owner. Every report is traced, delivered or
 * not.
 */
static void iommu_kvm_vm_invalidate(struct kvm_iommu_listener *listener,
				    u64 gfn_start, u64 gfn_end,
				    unsigned int filter)
{
	struct iommu_kvm_vm *vm =
		container_of(listener, struct iommu_kvm_vm, listener);
	/* Pairs with iommu_kvm_vm_bind(): a published domain is whole */
	struct iommu_kvm_domain *kdom = smp_load_acquire(&vm->kdom);
	u64 start = gfn_start << PAGE_SHIFT, last = (gfn_end << PAGE_SHIFT) - 1;
	bool deliver;

	if (!kdom || gfn_end <= gfn_start)
		return;
	deliver = !kdom->shadow && kdom->ops->invalidate &&
		  (filter & KVM_IOMMU_INV_SHARED);
	trace_iommu_kvm_vm_report(kdom->id, start, last, filter, deliver);
	if (deliver)
		iommu_kvm_deliver_invalidate(kdom, start, last);
}

static void iommu_kvm_vm_release(struct kvm_iommu_listener *listener)
{
	struct iommu_kvm_vm *vm =
		container_of(listener, struct iommu_kvm_vm, listener);
	struct iommu_kvm_domain *kdom;

	mutex_lock(&vm->lock);
	vm->released = true;
	kdom = vm->kdom;
	mutex_unlock(&vm->lock);

	if (kdom)
		iommu_kvm_domain_release(kdom);
}

/* KVM intercepted a guest table update for the device of our sync key */
static int iommu_kvm_vm_sync(struct kvm_iommu_listener *listener,
			     unsigned int vcpu_idx, u64 iova, u64 size)
{
	struct iommu_kvm_vm *vm =
		container_of(listener, struct iommu_kvm_vm, listener);
	/* Pairs with iommu_kvm_vm_bind(): a published domain is whole */
	struct iommu_kvm_domain *kdom = smp_load_acquire(&vm->kdom);

	if (!kdom)
		return -ENOENT;
	return iommu_kvm_domain_sync(kdom, vcpu_idx, iova, size);
}

/* KVM intercepted a table registration for the device of our sync key */
static int iommu_kvm_vm_set_table(struct kvm_iommu_listener *listener,
				  u64 anchor, u64 first, u64 last)
{
	struct iommu_kvm_vm *vm =
		container_of(listener, struct iommu_kvm_vm, listener);
	/* Pairs with iommu_kvm_vm_bind(): a published domain is whole */
	struct iommu_kvm_domain *kdom = smp_load_acquire(&vm->kdom);

	if (!kdom)
		return -ENOENT;
	return iommu_kvm_domain_set_table(kdom, anchor, first, last);
}

static const struct kvm_iommu_listener_ops iommu_kvm_listener_ops = {
	.invalidate = iommu_kvm_vm_invalidate,
	.release = iommu_kvm_vm_release,
	.sync = iommu_kvm_vm_sync,
	.set_table = iommu_kvm_vm_set_table,
};

void iommu_kvm_vm_init(struct iommu_kvm_vm *vm,
		       const struct iommu_kvm_vm_ops *ops)
{
	vm->listener.ops = &iommu_kvm_listener_ops;
	vm->ops = ops;
	mutex_init(&vm->lock);
	vm->tgid = task_tgid_nr(current);
}
EXPORT_SYMBOL_IF_KUNIT(iommu_kvm_vm_init);

/*
 * Hand the VM to @kdom. Returns -ENODEV if KVM already released the VM.
 */
int iommu_kvm_vm_bind(struct iommu_kvm_vm *vm, struct iommu_kvm_domain *kdom)
{
	int ret = 0;

	mutex_lock(&vm->lock);
	if (vm->released) {
		ret = -ENODEV;
	} else {
		/* Pairs with smp_load_acquire() in iommu_kvm_vm_invalidate() */
		smp_store_release(&vm->kdom, kdom);
	}
	mutex_unlock(&vm->lock);
	return ret;
}

static void iommu_kvm_real_vm_unbind(struct iommu_kvm_vm *vm)
{
	/* Waits for notifications in flight */
	vm->unregister(vm->kvm, &vm->listener);
	symbol_put(kvm_iommu_listener_unregister);
	vm->put_kvm(vm->kvm);
	/* Only now: the put above may have destroyed the VM */
	module_put(vm->vendor);
	symbol_put(kvm_put_kvm);
	mutex_destroy(&vm->lock);
	kfree(vm);
}

static int iommu_kvm_real_vm_set_sync_key(struct iommu_kvm_vm *vm, u64 key)
{
	int (*set_key)(struct kvm *kvm, struct kvm_iommu_listener *listener,
		       u64 key);
	int ret;

	set_key = symbol_get(kvm_iommu_listener_set_sync_key);
	if (!set_key)
		return -EOPNOTSUPP;
	ret = set_key(vm->kvm, &vm->listener, key);
	symbol_put(kvm_iommu_listener_set_sync_key);
	return ret;
}

static int iommu_kvm_real_vm_pin_gfn(struct iommu_kvm_vm *vm, u64 gfn,
				     bool write, struct page **page)
{
	int (*pin)(struct kvm *kvm, u64 gfn, bool write, struct page **page);
	int ret;

	pin = symbol_get(kvm_iommu_pin_gfn);
	if (!pin)
		return -EOPNOTSUPP;
	ret = pin(vm->kvm, gfn, write, page);
	symbol_put(kvm_iommu_pin_gfn);
	return ret;
}

static int iommu_kvm_real_vm_tdp_get(struct iommu_kvm_vm *vm,
				     struct kvm_iommu_tdp_client *client,
				     struct kvm_iommu_tdp_format *fmt,
				     u64 *root)
{
	int (*get)(struct kvm *kvm, struct kvm_iommu_tdp_client *client,
		   struct kvm_iommu_tdp_format *fmt, u64 *root);
	int ret;

	/* Only KVM x86 keeps a table for IOMMUs */
	get = symbol_get(kvm_iommu_tdp_get);
	if (!get)
		return -EOPNOTSUPP;
	ret = get(vm->kvm, client, fmt, root);
	symbol_put(kvm_iommu_tdp_get);
	return ret;
}

static void iommu_kvm_real_vm_tdp_put(struct iommu_kvm_vm *vm,
				      struct kvm_iommu_tdp_client *client)
{
	void (*put)(struct kvm *kvm, struct kvm_iommu_tdp_client *client);

	/* Cannot fail: the VM reference keeps kvm.ko, which has it, loaded */
	put = symbol_get(kvm_iommu_tdp_put);
	if (WARN_ON(!put))
		return;
	put(vm->kvm, client);
	symbol_put(kvm_iommu_tdp_put);
}

static void iommu_kvm_real_vm_tdp_block(struct iommu_kvm_vm *vm)
{
	void (*block)(struct kvm *kvm);

	block = symbol_get(kvm_iommu_tdp_block);
	if (WARN_ON(!block))
		return;
	block(vm->kvm);
	symbol_put(kvm_iommu_tdp_block);
}

static const struct iommu_kvm_vm_ops iommu_kvm_real_vm_ops = {
	.unbind = iommu_kvm_real_vm_unbind,
	.set_sync_key = iommu_kvm_real_vm_set_sync_key,
	.pin_gfn = iommu_kvm_real_vm_pin_gfn,
	.tdp_get = iommu_kvm_real_vm_tdp_get,
	.tdp_put = iommu_kvm_real_vm_tdp_put,
	.tdp_block = iommu_kvm_real_vm_tdp_block,
};

static bool iommu_kvm_file_is_vm(struct file *file)
{
	bool (*is_kvm)(struct file *file);
	bool ret;

	is_kvm = symbol_get(kvm_iommu_file_is_vm);
	if (!is_kvm)
		return false;
	ret = is_kvm(file);
	symbol_put(kvm_iommu_file_is_vm);
	return ret;
}

/*
 * The file behind @kvm_fd, with a reference, if it is a KVM VM; else
 * ERR_PTR(-EBADF) for no open file, ERR_PTR(-EBADFD) for one that is no VM.
 */
static struct file *iommu_kvm_fget_vm(int kvm_fd)
{
	struct file *file;

	if (kvm_fd < 0)
		return ERR_PTR(-EBADF);
	file = fget(kvm_fd);
	if (!file)
		return ERR_PTR(-EBADF);
	if (!iommu_kvm_file_is_vm(file)) {
		fput(file);
		return ERR_PTR(-EBADFD);
	}
	return file;
}

/* Has @kvm private memory? If KVM cannot tell, assume it has. */
static bool iommu_kvm_vm_private_mem(struct kvm *kvm)
{
	bool (*has_private)(struct kvm *kvm);
	bool ret;

	has_private = symbol_get(kvm_iommu_vm_has_private_mem);
	if (!has_private)
		return true;
	ret = has_private(kvm);
	symbol_put(kvm_iommu_vm_has_private_mem);
	return ret;
}

/* Take a VM reference and subscribe @vm to the VM's changes */
static int iommu_kvm_vm_subscribe(struct iommu_kvm_vm *vm, struct kvm *kvm)
{
	int (*reg)(struct kvm *kvm, struct kvm_iommu_listener *listener);
	bool (*get_safe)(struct kvm *kvm);
	int ret = -EOPNOTSUPP;

	get_safe = symbol_get(kvm_get_kvm_safe);
	if (!get_safe)
		return ret;
	reg = symbol_get(kvm_iommu_listener_register);
	if (!reg)
		goto out_put_get_safe;
	vm->put_kvm = symbol_get(kvm_put_kvm);
	if (!vm->put_kvm)
		goto out_put_reg;
	vm->unregister = symbol_get(kvm_iommu_listener_unregister);
	if (!vm->unregister)
		goto out_put_put_kvm;

	/* The caller holds the VM's file, so the VM cannot be on its way out */
	if (WARN_ON(!get_safe(kvm))) {
		ret = -ENODEV;
		goto out_put_unregister;
	}
	vm->kvm = kvm;
	ret = reg(kvm, &vm->listener);
	if (ret)
		goto out_put_kvm;
	vm->private_mem = iommu_kvm_vm_private_mem(kvm);

	symbol_put(kvm_iommu_listener_register);
	symbol_put(kvm_get_kvm_safe);
	return 0;

out_put_kvm:
	vm->put_kvm(kvm);
out_put_unregister:
	symbol_put(kvm_iommu_listener_unregister);
out_put_put_kvm:
	symbol_put(kvm_put_kvm);
out_put_reg:
	symbol_put(kvm_iommu_listener_register);
out_put_get_safe:
	symbol_put(kvm_get_kvm_safe);
	return ret;
}

/**
 * iommu_kvm_vm_get() - Get a handle on the VM behind a file descriptor
 * @kvm_fd: a KVM VM file descriptor of the calling process
 *
 * Process context.
 *
 * Return: the handle, to be given to iommu_kvm_domain_alloc() or released
 * with iommu_kvm_vm_put(), or ERR_PTR(-EBADF) if @kvm_fd is not an open file descriptor,
 * ERR_PTR(-EBADFD) if it is not a KVM VM (or kvm.ko is not loaded),
 * ERR_PTR(-EPERM) if the VM belongs to another address space,
 * ERR_PTR(-EOPNOTSUPP) if the loaded KVM cannot report to IOMMU domains,
 * ERR_PTR(-ENODEV) if the VM is already gone, or ERR_PTR(-ENOMEM).
 */
struct iommu_kvm_vm *iommu_kvm_vm_get(int kvm_fd)
{
	struct iommu_kvm_vm *vm;
	struct file *file;
	int ret;

	file = iommu_kvm_fget_vm(kvm_fd);
	if (IS_ERR(file))
		return ERR_CAST(file);

	vm = kzalloc_obj(*vm, GFP_KERNEL_ACCOUNT);
	if (!vm) {
		ret = -ENOMEM;
		goto out_fput;
	}
	iommu_kvm_vm_init(vm, &iommu_kvm_real_vm_ops);
	/* The open file pins its owner, so the module is live */
	vm->vendor = file->f_op->owner;
	__module_get(vm->vendor);
	ret = iommu_kvm_vm_subscribe(vm, file->private_data);
	if (ret)
		goto out_put_vendor;
	fput(file);
	return vm;

out_put_vendor:
	module_put(vm->vendor);
	mutex_destroy(&vm->lock);
	kfree(vm);
out_fput:
	fput(file);
	return ERR_PTR(ret);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_vm_get, "IOMMU_KVM");

/**
 * iommu_kvm_vm_put() - Let go of a VM handle no domain took
 * @vm: from iommu_kvm_vm_get()
 *
 * Process context.
 */
void iommu_kvm_vm_put(struct iommu_kvm_vm *vm)
{
	vm->ops->unbind(vm);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_vm_put, "IOMMU_KVM");

/**
 * iommu_kvm_domain_pin_gfn() - Pin the page a guest frame of the VM maps to
 * @kdom: a shared-format domain
 * @gfn: the guest frame
 * @write: the page must be writable
 * @page: set to the pinned page, to be unpinned with unpin_user_page()
 *
 * For a driver that keeps translations of the VM's memory of its own (the
 * mock IOMMU does, an IOMMU that walks KVM's table does not need to), and
 * so has an ops->invalidate to drop them: the page is what @gfn maps to in
 * KVM's memslots and the primary MMU at a point where no invalidation of
 * @gfn is in progress. The driver must drop it when ops->invalidate covers
 * @gfn, and must not keep it if an invalidate reached the domain between
 * before this call and the moment it installs the page under the lock its
 * invalidate takes; nor after ops->block. See kvm_iommu_pin_gfn(). The pin
 * is not charged to RLIMIT_MEMLOCK: the driver bounds what it holds.
 * Process context, in the mm of the VM's owner; may sleep.
 *
 * Return: 0; -EINVAL for a shadow domain or a driver without
 * ops->invalidate (with a WARN: nothing would drop the pin); -ENODEV if
 * the VM is gone; -EOPNOTSUPP if the loaded KVM cannot; else what
 * kvm_iommu_pin_gfn() returns (-EPERM from another mm, -EFAULT for a frame
 * no memslot backs with ordinary memory, -EINTR).
 */
int iommu_kvm_domain_pin_gfn(struct iommu_kvm_domain *kdom, u64 gfn,
			     bool write, struct page **page)
{
	if (kdom->shadow || WARN_ON_ONCE(!kdom->ops->invalidate))
		return -EINVAL;
	if (iommu_kvm_domain_is_dead(kdom))
		return -ENODEV;
	if (!kdom->vm->ops->pin_gfn)
		return -EOPNOTSUPP;
	return kdom->vm->ops->pin_gfn(kdom->vm, gfn, write, page);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_domain_pin_gfn, "IOMMU_KVM");

/**
 * iommu_kvm_tdp_get() - Walk the table KVM keeps for the VM's IOMMUs
 * @vm: the VM of a shared-format domain being allocated (&struct
 *      iommu_kvm_domain_cfg.vm), which the core holds until the domain's
 *      iommu_kvm_domain_deinit()
 * @client: the driver's flush callback, see &struct kvm_iommu_tdp_client
 * @fmt: set to the table's format, to check against the hardware
 * @root: set to the physical address of the table's root
 *
 * For an IOMMU that walks a table of KVM's (see kvm_iommu_tdp_get()): KVM
 * builds it for the VM, maps all guest RAM in it, pinned and charged to
 * the caller's RLIMIT_MEMLOCK, and calls @client->flush() for every change
 * before the memory can be reused. From &iommu_kvm_domain_ops.block, call
 * iommu_kvm_tdp_block(); call iommu_kvm_tdp_put() once no device walks the
 * root any more, before iommu_kvm_domain_deinit(). Process context, in the
 * mm of the VM's owner; may sleep.
 *
 * Return: 0; -EOPNOTSUPP if the loaded KVM keeps no such table; else what
 * kvm_iommu_tdp_get() returns.
 */
int iommu_kvm_tdp_get(struct iommu_kvm_vm *vm,
		      struct kvm_iommu_tdp_client *client,
		      struct kvm_iommu_tdp_format *fmt, u64 *root)
{
	if (!vm->ops->tdp_get)
		return -EOPNOTSUPP;
	return vm->ops->tdp_get(vm, client, fmt, root);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_tdp_get, "IOMMU_KVM");

/**
 * iommu_kvm_tdp_put() - Stop walking the table KVM keeps for the IOMMUs
 * @vm: what iommu_kvm_tdp_get() was given
 * @client: likewise
 *
 * No device may walk the root any more. Process context; may sleep.
 */
void iommu_kvm_tdp_put(struct iommu_kvm_vm *vm,
		       struct kvm_iommu_tdp_client *client)
{
	vm->ops->tdp_put(vm, client);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_tdp_put, "IOMMU_KVM");

/**
 * iommu_kvm_tdp_block() - Make every DMA through KVM's table fault
 * @vm: what iommu_kvm_tdp_get() was given
 *
 * For &iommu_kvm_domain_ops.block: see kvm_iommu_tdp_block(). The root
 * stays valid until iommu_kvm_tdp_put(). Process context; may sleep.
 */
void iommu_kvm_tdp_block(struct iommu_kvm_vm *vm)
{
	vm->ops->tdp_block(vm);
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_tdp_block, "IOMMU_KVM");

#if IS_ENABLED(CONFIG_IOMMU_KVM_DOMAIN_TEST)
/**
 * iommu_kvm_intercept_sync() - Stand in for an architecture's intercept
 * @kvm_fd: a KVM VM file descriptor
 * @key: the device handle the "guest" names
 * @iova: start of the IOVA range it changed
 * @size: its length; 0 for the whole table
 *
 * For the mock IOMMU driver's tests only: does what an intercept handler in
 * KVM does with a guest's table update (s390 RPCIT), kvm_iommu_sync(), so
 * that the way from KVM to a shadow domain runs on every architecture.
 * Process context.
 *
 * Return: -EBADF, -EBADFD for a file that is no VM, -EOPNOTSUPP if the
 * loaded KVM has no kvm_iommu_sync(), else what kvm_iommu_sync() returns.
 */
int iommu_kvm_intercept_sync(int kvm_fd, u64 key, u64 iova, u64 size)
{
	int (*sync)(struct kvm *kvm, unsigned int vcpu_idx, u64 key, u64 iova,
		    u64 size);
	struct file *file;
	int ret;

	file = iommu_kvm_fget_vm(kvm_fd);
	if (IS_ERR(file))
		return PTR_ERR(file);
	sync = symbol_get(kvm_iommu_sync);
	if (!sync) {
		ret = -EOPNOTSUPP;
		goto out_fput;
	}
	/* The open file holds the VM; the request stands in for vCPU 0's */
	ret = sync(file->private_data, 0, key, iova, size);
	symbol_put(kvm_iommu_sync);
out_fput:
	fput(file);
	return ret;
}
EXPORT_SYMBOL_NS_GPL(iommu_kvm_intercept_sync, "IOMMU_KVM");
#endif
