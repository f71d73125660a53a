/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the s390 IOMMU driver shares with its KVM-backed domains
 * (drivers/iommu/s390/): the domain structure and the DMA translation table
 * helpers, so that a shadow of a guest's table is built with the same code
 * as the driver's own tables.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#ifndef __DRIVERS_IOMMU_S390_IOMMU_H
#define __DRIVERS_IOMMU_S390_IOMMU_H

#include <linux/iommu.h>
#include <linux/list.h>
#include <linux/rcupdate.h>
#include <linux/spinlock.h>
#include <linux/pci.h>
#include <asm/pci_dma.h>

struct iommu_kvm_domain_cfg;

struct s390_domain {
	struct iommu_domain	domain;
	struct list_head	devices;
	struct zpci_iommu_ctrs	ctrs;
	unsigned long		*dma_table;
	spinlock_t		list_lock;	/* writers of devices */
	struct rcu_head		rcu;
	u8			origin_type;
};

static inline struct s390_domain *to_s390_domain(struct iommu_domain *dom)
{
	return container_of(dom, struct s390_domain, domain);
}

/* s390-iommu.c */
int s390_domain_init(struct s390_domain *s390_domain, struct zpci_dev *zdev);
void dma_cleanup_tables(struct s390_domain *domain);
unsigned long *dma_walk_cpu_trans(struct s390_domain *domain,
				  dma_addr_t dma_addr, gfp_t gfp);
unsigned long *dma_lookup_cpu_trans(struct s390_domain *domain,
				    dma_addr_t dma_addr);
void dma_update_cpu_trans(unsigned long *ptep, phys_addr_t page_addr,
			  int flags);
void dma_replace_cpu_trans(unsigned long *ptep, phys_addr_t page_addr,
			   int flags);
int s390_iommu_attach_device(struct iommu_domain *domain, struct device *dev,
			     struct iommu_domain *old);
phys_addr_t s390_iommu_iova_to_phys(struct iommu_domain *domain,
				    dma_addr_t iova);

/* s390/kvm_shadow.c */
#if IS_ENABLED(CONFIG_S390_IOMMU_KVM_DOMAIN)
u64 s390_kvm_formats(struct device *dev, u64 *shadow_formats);
struct iommu_domain *
s390_kvm_domain_alloc(struct device *dev,
		      const struct iommu_kvm_domain_cfg *cfg);
#define S390_IOMMU_KVM_OPS() \
	.kvm_formats = s390_kvm_formats, \
	.domain_alloc_kvm = s390_kvm_domain_alloc,
#else
#define S390_IOMMU_KVM_OPS()
#endif

#endif /* __DRIVERS_IOMMU_S390_IOMMU_H */
