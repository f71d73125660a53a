/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * KVM's table for an IOMMU: the hooks the rest of KVM x86 calls.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#ifndef __KVM_X86_MMU_IOMMU_TDP_H
#define __KVM_X86_MMU_IOMMU_TDP_H

#include <linux/kvm_host.h>

#if defined(CONFIG_KVM_IOMMU_LISTENER) && defined(CONFIG_X86_64)
void kvm_iommu_tdp_unmap(struct kvm *kvm, struct kvm_gfn_range *range);
void kvm_iommu_tdp_invalidate_done(struct kvm *kvm);
int kvm_iommu_tdp_prepare_slot(struct kvm *kvm,
			       const struct kvm_memory_slot *new,
			       enum kvm_mr_change change);
void kvm_iommu_tdp_commit_slot(struct kvm *kvm,
			       const struct kvm_memory_slot *new,
			       enum kvm_mr_change change);
#else
static inline void kvm_iommu_tdp_unmap(struct kvm *kvm,
				       struct kvm_gfn_range *range) {}
static inline void kvm_iommu_tdp_invalidate_done(struct kvm *kvm) {}
static inline int kvm_iommu_tdp_prepare_slot(struct kvm *kvm,
					     const struct kvm_memory_slot *new,
					     enum kvm_mr_change change)
{
	return 0;
}

static inline void kvm_iommu_tdp_commit_slot(struct kvm *kvm,
					     const struct kvm_memory_slot *new,
					     enum kvm_mr_change change) {}
#endif

#endif /* __KVM_X86_MMU_IOMMU_TDP_H */
