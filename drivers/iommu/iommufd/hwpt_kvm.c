// SPDX-License-Identifier: GPL-2.0-only
/*
 * iommufd: HWPTs backed by KVM
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <linux/iommu.h>
#include <linux/iommu_kvm.h>
#include <linux/module.h>
#include <uapi/linux/iommufd.h>

#include "iommufd_private.h"

/**
 * DOC: KVM-backed HWPTs
 *
 * An IOMMUFD_OBJ_HWPT_KVM wraps a KVM-backed domain, which the device's IOMMU
 * driver allocates through the library in drivers/iommu/kvm-domain/. It has
 * no IOAS of its own: a shared format translates through KVM's table, and a
 * shadow format through its parent, a nest-parent HWPT_PAGING whose users
 * count the KVM HWPT holds. Like every HWPT it holds the driver's module.
 *
 * Once the VM is gone the domain blocks all DMA, and iommufd attaches no new
 * device to it (iommufd_hwpt_kvm_attach_check()). A release that races with
 * an attach is safe: the driver attaches the device blocked.
 *
 * A shadow HWPT is on its parent's list of KVM shadows from before it is
 * published (and so before KVM's intercepts can fill it) until its domain
 * is freed. Every unmap from the parent's domain reaches each shadow on the
 * list, after iommu_unmap() and before the pages are unpinned
 * (iommufd_hwpt_kvm_parent_unmapped()); on destroy, syncs stop before the
 * shadow leaves the list. Lock order: the IOAS's iopt->domains_rwsem (or,
 * when a dma-buf is revoked, its dma_resv lock), then pages->mutex, then
 * the parent's kvm_shadows_lock, then the shadow domain's lock, which its
 * sync holds: so a driver's sync must never wait for the IOAS (pin, map or
 * unmap through it) nor take a dma_resv lock; it reads the parent's
 * translation only.
 *
 * A shadow HWPT attaches like a nested HWPT: the device's reserved regions
 * are reserved in its parent's IOAS and its MSI window is set up there.
 * Unless its driver says the hardware never walks the parent
 * (iommu_kvm_domain.resv_in_shadow, s390): then the device's addresses are
 * the guest's own DMA addresses, whose reserved regions the driver keeps
 * out of the shadow, and nothing is reserved in the parent's IOAS, which
 * only holds guest memory at guest physical addresses. A shared HWPT has
 * no IOAS, and its device's address space is the guest's physical address
 * space, which KVM lays out. Neither of the last two can keep a software
 * MSI window or a direct-mapped region: iommufd refuses a device that
 * needs one (iommufd_hwpt_kvm_attach_check()).
 *
 * Creation follows the two phases of every iommufd object: the domain is
 * built and the object ID reserved, the answer is copied to userspace, and
 * only then are the domain and the object published, in that order, since
 * userspace may destroy the object as soon as it is. An abort frees a domain
 * that nobody ever saw.
 */

void iommufd_hwpt_kvm_parent_init(struct iommufd_hwpt_paging *hwpt_paging)
{
	mutex_init(&hwpt_paging->kvm_shadows_lock);
	INIT_LIST_HEAD(&hwpt_paging->kvm_shadows);
}

void iommufd_hwpt_kvm_parent_destroy(struct iommufd_hwpt_paging *hwpt_paging)
{
	/* Every shadow holds a users count on its parent */
	WARN_ON(!list_empty(&hwpt_paging->kvm_shadows));
	mutex_destroy(&hwpt_paging->kvm_shadows_lock);
}

/*
 * [@iova, @iova + @size) was just unmapped from @domain, and is about to be
 * unpinned: if @domain is a nest parent's, every KVM-backed shadow built on
 * it drops what it translated through the range. Called by pages.c for
 * every unmap, under iopt->domains_rwsem (or a revoked dma-buf's dma_resv
 * lock) and pages->mutex.
 */
void iommufd_hwpt_kvm_parent_unmapped(struct iommu_domain *domain,
				      unsigned long iova, size_t size)
{
	struct iommufd_hwpt_paging *parent;
	struct iommufd_hwpt_kvm *hwpt_kvm;

	if (domain->cookie_type != IOMMU_COOKIE_IOMMUFD ||
	    !hwpt_is_paging(domain->iommufd_hwpt))
		return;
	parent = to_hwpt_paging(domain->iommufd_hwpt);
	if (!parent->nest_parent)
		return;

	mutex_lock(&parent->kvm_shadows_lock);
	list_for_each_entry(hwpt_kvm, &parent->kvm_shadows, parent_item) {
		struct iommu_domain *shadow = hwpt_kvm->common.domain;

		iommu_kvm_domain_parent_unmapped(to_iommu_kvm_domain(shadow),
						 iova, size);
	}
	mutex_unlock(&parent->kvm_shadows_lock);
}

void iommufd_hwpt_kvm_destroy(struct iommufd_object *obj)
{
	struct iommufd_hwpt_kvm *hwpt_kvm =
		container_of(obj, struct iommufd_hwpt_kvm, common.obj);
	struct iommu_domain *domain = hwpt_kvm->common.domain;

	/*
	 * No sync may fill the shadow from the parent once its unmaps stop
	 * reaching it, and they stop before the domain goes
	 */
	if (domain)
		iommu_kvm_domain_unpublish(to_iommu_kvm_domain(domain));
	if (!list_empty(&hwpt_kvm->parent_item)) {
		mutex_lock(&hwpt_kvm->parent->kvm_shadows_lock);
		list_del_init(&hwpt_kvm->parent_item);
		mutex_unlock(&hwpt_kvm->parent->kvm_shadows_lock);
	}
	if (domain) {
		struct module *owner = domain->owner->owner;

		iommu_domain_free(domain);
		/* Only now: the free above ran the driver's code */
		module_put(owner);
	}
	if (hwpt_kvm->parent)
		refcount_dec(&hwpt_kvm->parent->common.obj.users);
}

void iommufd_hwpt_kvm_abort(struct iommufd_object *obj)
{
	iommufd_hwpt_kvm_destroy(obj);
}

/* Does @dev need a reserved region that a shared format cannot keep? */
static int iommufd_hwpt_kvm_check_resv(struct device *dev, void *unused)
{
	struct iommu_resv_region *resv;
	LIST_HEAD(resv_regions);
	int rc = 0;

	iommu_get_resv_regions(dev, &resv_regions);
	list_for_each_entry(resv, &resv_regions, list) {
		if (resv->type == IOMMU_RESV_SW_MSI ||
		    resv->type == IOMMU_RESV_DIRECT) {
			rc = -EOPNOTSUPP;
			break;
		}
	}
	iommu_put_resv_regions(dev, &resv_regions);
	return rc;
}

/**
 * iommufd_hwpt_kvm_attach_check() - May @idev's group go onto @hwpt?
 * @hwpt: a KVM-backed HWPT
 * @idev: the device whose group is to be attached or replaced onto it
 *
 * Called before the iommu core is involved. A shadow HWPT has reserved
 * regions and the MSI window handled in its parent's IOAS, as a nested HWPT
 * has. A shared HWPT translates the guest's physical address space, which
 * KVM lays out: a software MSI window (the IOMMU must map the MSI doorbell)
 * or a direct-mapped region (the device must reach it at its own address)
 * cannot be kept there, so a group with a device that needs one is refused.
 * Relaxable direct regions are ignored, as for every HWPT.
 *
 * A device whose IOMMU can enforce cache coherency gets a domain that
 * does, as on a paging HWPT: VFIO then tells KVM that the device's DMA
 * snoops (vfio_file_enforced_coherent()), and KVM stops handling the
 * guest's cache flushes and memory types for it.
 *
 * Return: 0, -ENODEV once the VM is gone, -EINVAL for a device that can
 * enforce cache coherency and a domain that cannot, or -EOPNOTSUPP for a
 * shared HWPT and a group that needs a software MSI window or a direct
 * region.
 */
int iommufd_hwpt_kvm_attach_check(struct iommufd_hw_pagetable *hwpt,
				  struct iommufd_device *idev)
{
	struct iommufd_hwpt_kvm *hwpt_kvm =
		container_of(hwpt, struct iommufd_hwpt_kvm, common);

	if (iommu_kvm_domain_is_dead(to_iommu_kvm_domain(hwpt->domain)))
		return -ENODEV;
	if (idev->enforce_cache_coherency &&
	    (!hwpt->domain->ops->enforce_cache_coherency ||
	     !hwpt->domain->ops->enforce_cache_coherency(hwpt->domain)))
		return -EINVAL;
	if (hwpt_kvm->parent && !iommufd_hwpt_kvm_resv_in_shadow(hwpt))
		return 0;
	return iommu_group_for_each_dev(idev->igroup->group, NULL,
					iommufd_hwpt_kvm_check_resv);
}

/*
 * The device's reserved regions are in the shadow's own address space, not
 * in the parent's IOAS (iommufd_resv_hwpt_paging())
 */
bool iommufd_hwpt_kvm_resv_in_shadow(struct iommufd_hw_pagetable *hwpt)
{
	return to_iommu_kvm_domain(hwpt->domain)->resv_in_shadow;
}

/* IOMMU_GET_HW_INFO: the KVM-backed formats the device's IOMMU offers */
void iommufd_hwpt_kvm_hw_info(struct iommufd_device *idev,
			      struct iommu_hw_info *cmd)
{
	u64 shadow;

	cmd->out_kvm_formats = iommu_kvm_formats(idev->dev, &shadow);
	cmd->out_kvm_shadow_formats = shadow;
}

/* Look up @pt_id as a parent for a shadow format */
static struct iommufd_hwpt_paging *
iommufd_hwpt_kvm_get_parent(struct iommufd_ucmd *ucmd, u32 pt_id)
{
	struct iommufd_hwpt_paging *parent;
	struct iommufd_object *pt_obj;

	/* As IOMMU_HWPT_ALLOC answers a pt_id that names nothing */
	pt_obj = iommufd_get_object(ucmd->ictx, pt_id, IOMMUFD_OBJ_ANY);
	if (IS_ERR(pt_obj))
		return ERR_PTR(-EINVAL);
	if (pt_obj->type != IOMMUFD_OBJ_HWPT_PAGING) {
		iommufd_put_object(ucmd->ictx, pt_obj);
		return ERR_PTR(-EINVAL);
	}
	parent = container_of(pt_obj, struct iommufd_hwpt_paging, common.obj);
	if (parent->auto_domain || !parent->nest_parent) {
		iommufd_put_object(ucmd->ictx, pt_obj);
		return ERR_PTR(-EINVAL);
	}
	return parent;
}

/* IOMMU_HWPT_ALLOC with IOMMU_HWPT_DATA_KVM */
int iommufd_hwpt_kvm_alloc(struct iommufd_ucmd *ucmd)
{
	struct iommu_hwpt_alloc *cmd = ucmd->cmd;
	const struct iommu_user_data alloc_data = {
		.type = cmd->data_type,
		.uptr = u64_to_user_ptr(cmd->data_uptr),
		.len = cmd->data_len,
	};
	struct iommufd_hwpt_paging *parent = NULL;
	struct iommu_user_data user_data;
	struct iommufd_hwpt_kvm *hwpt_kvm;
	struct iommu_kvm_domain *kdom;
	struct iommufd_device *idev;
	struct iommu_hwpt_kvm data;
	struct iommu_kvm_vm *vm;
	int rc;

	/* No nest parent, no dirty tracking, no fault object, no PASID */
	if (cmd->flags)
		return -EOPNOTSUPP;
	rc = iommu_copy_struct_from_user(&data, &alloc_data,
					 IOMMU_HWPT_DATA_KVM, data_uptr);
	if (rc)
		return rc;
	if (data.flags || data.__reserved)
		return -EOPNOTSUPP;
	if ((data.data_type == IOMMU_HWPT_KVM_DATA_NONE && data.data_len) ||
	    (data.data_type != IOMMU_HWPT_KVM_DATA_NONE && !data.data_len))
		return -EINVAL;
	user_data = (struct iommu_user_data){
		.type = data.data_type,
		.uptr = u64_to_user_ptr(data.data_uptr),
		.len = data.data_len,
	};

	idev = iommufd_get_device(ucmd, cmd->dev_id);
	if (IS_ERR(idev))
		return PTR_ERR(idev);

	if (cmd->pt_id) {
		parent = iommufd_hwpt_kvm_get_parent(ucmd, cmd->pt_id);
		if (IS_ERR(parent)) {
			rc = PTR_ERR(parent);
			goto out_put_idev;
		}
	}

	vm = iommu_kvm_vm_get(data.kvm_fd);
	if (IS_ERR(vm)) {
		rc = PTR_ERR(vm);
		goto out_put_parent;
	}

	hwpt_kvm = __iommufd_object_alloc(ucmd->ictx, hwpt_kvm,
					  IOMMUFD_OBJ_HWPT_KVM, common.obj);
	if (IS_ERR(hwpt_kvm)) {
		rc = PTR_ERR(hwpt_kvm);
		iommu_kvm_vm_put(vm);
		goto out_put_parent;
	}
	INIT_LIST_HEAD(&hwpt_kvm->parent_item);
	if (parent) {
		refcount_inc(&parent->common.obj.users);
		hwpt_kvm->parent = parent;
	}

	/* Consumes vm */
	kdom = iommu_kvm_domain_alloc(idev->dev, vm, data.format,
				      parent ? parent->common.domain : NULL,
				      data.data_len ? &user_data : NULL);
	if (IS_ERR(kdom)) {
		rc = PTR_ERR(kdom);
		goto out_abort;
	}
	/* The driver's code runs until the domain is freed */
	__module_get(kdom->domain.owner->owner);
	hwpt_kvm->common.domain = &kdom->domain;
	/* Before a sync can fill the shadow from the parent */
	if (parent) {
		mutex_lock(&parent->kvm_shadows_lock);
		list_add_tail(&hwpt_kvm->parent_item, &parent->kvm_shadows);
		mutex_unlock(&parent->kvm_shadows_lock);
	}

	cmd->out_hwpt_id = hwpt_kvm->common.obj.id;
	rc = iommufd_ucmd_respond(ucmd, sizeof(*cmd));
	if (rc)
		goto out_abort;
	/* Nothing can fail now; once finalized, userspace may destroy it */
	iommu_kvm_domain_publish(kdom);
	iommufd_object_finalize(ucmd->ictx, &hwpt_kvm->common.obj);
	goto out_put_parent;

out_abort:
	iommufd_object_abort_and_destroy(ucmd->ictx, &hwpt_kvm->common.obj);
out_put_parent:
	if (parent)
		iommufd_put_object(ucmd->ictx, &parent->common.obj);
out_put_idev:
	iommufd_put_object(ucmd->ictx, &idev->obj);
	return rc;
}

MODULE_IMPORT_NS("IOMMU_KVM");
