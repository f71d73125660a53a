// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed IOMMU domains: tracepoints. Built in with the rest of the part
 * of the core that backends call.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <linux/module.h>

#define CREATE_TRACE_POINTS
#include "trace.h"

EXPORT_TRACEPOINT_SYMBOL_GPL(iommu_kvm_domain_alloc);
EXPORT_TRACEPOINT_SYMBOL_GPL(iommu_kvm_domain_free);
EXPORT_TRACEPOINT_SYMBOL_GPL(iommu_kvm_attach);
EXPORT_TRACEPOINT_SYMBOL_GPL(iommu_kvm_detach);
EXPORT_TRACEPOINT_SYMBOL_GPL(iommu_kvm_block);
EXPORT_TRACEPOINT_SYMBOL_GPL(iommu_kvm_sync);
