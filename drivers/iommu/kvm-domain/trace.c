// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed IOMMU domains: tracepoints. Every event fires in the core;
 * attach and detach are the driver's and the iommu core's to trace.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#define CREATE_TRACE_POINTS
#include "trace.h"
