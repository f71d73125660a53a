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
 * device to it (iommufd_hwpt_kvm_is_dead()). A release that races with an
 * attach is safe: the driver attaches the device blocked.
 *
 * It attaches like a nested HWPT but, unlike one, reserves no regions of the
 * device in any IOAS and sets up no MSI cookie: the device's address space
 * belongs to the guest. For a shared format it is the guest physical address
 * space, whose layout the VMM already keeps clear of the platform's MSI
 * window; for a shadow format it is the guest's own DMA space, and the
 * parent's IOAS only translates guest physical addresses, which the device
 * never emits.
 *
 * Creation follows the two phases of every iommufd object: the domain is
 * built and the object ID reserved, the answer is copied to userspace, and
 * only then are the domain and the object published, in that order, since
 * userspace may destroy the object as soon as it is. An abort frees a domain
 * that nobody ever saw.
 */

void iommufd_hwpt_kvm_destroy(struct iommufd_object *obj)
{
	struct iommufd_hwpt_kvm *hwpt_kvm =
		container_of(obj, struct iommufd_hwpt_kvm, common.obj);
	struct iommu_domain *domain = hwpt_kvm->common.domain;

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

/* Has the VM of KVM-backed @hwpt gone away? Then it takes no new device. */
bool iommufd_hwpt_kvm_is_dead(struct iommufd_hw_pagetable *hwpt)
{
	return iommu_kvm_domain_is_dead(to_iommu_kvm_domain(hwpt->domain));
}

int iommufd_hwpt_kvm_info(struct iommufd_ucmd *ucmd)
{
	struct iommu_hwpt_kvm_info *cmd = ucmd->cmd;
	struct iommufd_device *idev;
	u64 shadow;

	if (cmd->flags || cmd->__reserved)
		return -EOPNOTSUPP;

	idev = iommufd_get_device(ucmd, cmd->dev_id);
	if (IS_ERR(idev))
		return PTR_ERR(idev);
	cmd->out_formats = iommu_kvm_formats(idev->dev, &shadow);
	cmd->out_shadow_formats = shadow;
	iommufd_put_object(ucmd->ictx, &idev->obj);

	return iommufd_ucmd_respond(ucmd, sizeof(*cmd));
}

/* Look up @pt_id as a parent for a shadow format */
static struct iommufd_hwpt_paging *
iommufd_hwpt_kvm_get_parent(struct iommufd_ucmd *ucmd, u32 pt_id)
{
	struct iommufd_hwpt_paging *parent;
	struct iommufd_object *pt_obj;

	pt_obj = iommufd_get_object(ucmd->ictx, pt_id, IOMMUFD_OBJ_ANY);
	if (IS_ERR(pt_obj))
		return ERR_CAST(pt_obj);
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

int iommufd_hwpt_kvm_alloc(struct iommufd_ucmd *ucmd)
{
	struct iommu_hwpt_kvm_alloc *cmd = ucmd->cmd;
	const struct iommu_user_data user_data = {
		.type = cmd->data_type,
		.uptr = u64_to_user_ptr(cmd->data_uptr),
		.len = cmd->data_len,
	};
	struct iommufd_hwpt_paging *parent = NULL;
	struct iommufd_hwpt_kvm *hwpt_kvm;
	struct iommu_kvm_domain *kdom;
	struct iommufd_device *idev;
	struct iommu_kvm_vm *vm;
	int rc;

	if (cmd->flags || cmd->__reserved)
		return -EOPNOTSUPP;
	if ((cmd->data_type == IOMMU_HWPT_KVM_DATA_NONE && cmd->data_len) ||
	    (cmd->data_type != IOMMU_HWPT_KVM_DATA_NONE && !cmd->data_len))
		return -EINVAL;

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

	vm = iommu_kvm_vm_get(cmd->kvm_fd);
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
	if (parent) {
		refcount_inc(&parent->common.obj.users);
		hwpt_kvm->parent = parent;
	}

	/* Consumes vm */
	kdom = iommu_kvm_domain_alloc(idev->dev, vm, cmd->format,
				      parent ? parent->common.domain : NULL,
				      cmd->data_len ? &user_data : NULL);
	if (IS_ERR(kdom)) {
		rc = PTR_ERR(kdom);
		goto out_abort;
	}
	/* The driver's code runs until the domain is freed */
	__module_get(kdom->domain.owner->owner);
	hwpt_kvm->common.domain = &kdom->domain;

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
