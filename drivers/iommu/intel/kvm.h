/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * KVM-backed domains on VT-d: what the rest of the driver calls.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#ifndef __INTEL_IOMMU_KVM_H
#define __INTEL_IOMMU_KVM_H

#include <linux/types.h>

#include <linux/kvm_iommu.h>

/**
 * enum intel_kvm_walk - How a VT-d unit takes an entry of a KVM table
 * @INTEL_KVM_WALK_VALID: the access goes through
 * @INTEL_KVM_WALK_NOT_PRESENT: it faults: the entry is not present
 * @INTEL_KVM_WALK_DENIED: it faults: a permission bit is clear
 * @INTEL_KVM_WALK_RESERVED: it faults: a reserved bit is set
 */
enum intel_kvm_walk {
	INTEL_KVM_WALK_VALID,
	INTEL_KVM_WALK_NOT_PRESENT,
	INTEL_KVM_WALK_DENIED,
	INTEL_KVM_WALK_RESERVED,
};

/**
 * struct intel_kvm_verdict - Why a KVM table cannot be walked
 * @why: the failed check, for the log; NULL if none failed
 * @bit: the entry bit that failed it, or -1
 * @level: the level of the entry that failed it (1 for 4 KiB leaves), or 0
 */
struct intel_kvm_verdict {
	const char *why;
	int bit;
	int level;
};

enum intel_kvm_walk intel_kvm_walk_entry(u64 cap, u64 ecap, unsigned int haw,
					 enum kvm_iommu_tdp_type type,
					 int level, bool leaf, bool write,
					 u64 entry);
int intel_kvm_tdp_check(u64 cap, u64 ecap, unsigned int haw,
			const struct kvm_iommu_tdp_format *fmt,
			struct intel_kvm_verdict *verdict);

struct device;
struct dmar_domain;
struct iommu_domain;
struct iommu_kvm_domain_cfg;

#if IS_ENABLED(CONFIG_INTEL_IOMMU_KVM_DOMAIN)
extern const struct iommu_domain_ops intel_kvm_domain_ops;

u64 intel_kvm_formats(struct device *dev, u64 *shadow_formats);
struct iommu_domain *
intel_kvm_domain_alloc(struct device *dev,
		       const struct iommu_kvm_domain_cfg *cfg);

/*
 * cache.c: the dmar_domain of a KVM-backed domain has these ops when KVM's
 * table is walked by the first stage (flushed by PASID), and
 * intel_kvm_ss_domain_ops when it is walked by the second.
 */
static inline bool intel_domain_is_kvm_fs(struct dmar_domain *domain)
{
	return domain->domain.ops == &intel_kvm_domain_ops;
}
#else
static inline bool intel_domain_is_kvm_fs(struct dmar_domain *domain)
{
	return false;
}
#endif

#endif /* __INTEL_IOMMU_KVM_H */
