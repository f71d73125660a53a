/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * KVM-backed IOMMU domains: tracepoints
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM iommu_kvm

#if !defined(_TRACE_IOMMU_KVM_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_IOMMU_KVM_H

#include <linux/device.h>
#include <linux/kvm_iommu.h>
#include <linux/tracepoint.h>

TRACE_EVENT(iommu_kvm_domain_alloc,
	    TP_PROTO(unsigned int id, const char *driver, u32 format,
		     struct device *dev),
	    TP_ARGS(id, driver, format, dev),
	    TP_STRUCT__entry(__field(unsigned int, id)
			     __string(driver, driver)
			     __field(u32, format)
			     __string(dev, dev_name(dev))),
	    TP_fast_assign(__entry->id = id;
			   __assign_str(driver);
			   __entry->format = format;
			   __assign_str(dev);),
	    TP_printk("domain=%u driver=%s format=%u dev=%s", __entry->id,
		      __get_str(driver), __entry->format, __get_str(dev))
);

DECLARE_EVENT_CLASS(iommu_kvm_domain_event,
		    TP_PROTO(unsigned int id),
		    TP_ARGS(id),
		    TP_STRUCT__entry(__field(unsigned int, id)),
		    TP_fast_assign(__entry->id = id;),
		    TP_printk("domain=%u", __entry->id)
);

DEFINE_EVENT(iommu_kvm_domain_event, iommu_kvm_domain_free,
	     TP_PROTO(unsigned int id),
	     TP_ARGS(id)
);

DEFINE_EVENT(iommu_kvm_domain_event, iommu_kvm_block,
	     TP_PROTO(unsigned int id),
	     TP_ARGS(id)
);

TRACE_EVENT(iommu_kvm_invalidate,
	    TP_PROTO(unsigned int id, u64 start, u64 last),
	    TP_ARGS(id, start, last),
	    TP_STRUCT__entry(__field(unsigned int, id)
			     __field(u64, start)
			     __field(u64, last)),
	    TP_fast_assign(__entry->id = id;
			   __entry->start = start;
			   __entry->last = last;),
	    TP_printk("domain=%u start=0x%llx last=0x%llx", __entry->id,
		      __entry->start, __entry->last)
);

TRACE_EVENT(iommu_kvm_vm_report,
	    TP_PROTO(unsigned int id, u64 start, u64 last, unsigned int filter,
		     bool delivered),
	    TP_ARGS(id, start, last, filter, delivered),
	    TP_STRUCT__entry(__field(unsigned int, id)
			     __field(u64, start)
			     __field(u64, last)
			     __field(unsigned int, filter)
			     __field(bool, delivered)),
	    TP_fast_assign(__entry->id = id;
			   __entry->start = start;
			   __entry->last = last;
			   __entry->filter = filter;
			   __entry->delivered = delivered;),
	    TP_printk("domain=%u start=0x%llx last=0x%llx filter=%s delivered=%d",
		      __entry->id, __entry->start, __entry->last,
		      __print_flags(__entry->filter, "|",
				    { KVM_IOMMU_INV_SHARED, "shared" },
				    { KVM_IOMMU_INV_PRIVATE, "private" }),
		      __entry->delivered)
);

TRACE_EVENT(iommu_kvm_sync,
	    TP_PROTO(unsigned int id, u64 iova, u64 size, int ret),
	    TP_ARGS(id, iova, size, ret),
	    TP_STRUCT__entry(__field(unsigned int, id)
			     __field(u64, iova)
			     __field(u64, size)
			     __field(int, ret)),
	    TP_fast_assign(__entry->id = id;
			   __entry->iova = iova;
			   __entry->size = size;
			   __entry->ret = ret;),
	    TP_printk("domain=%u iova=0x%llx size=0x%llx ret=%d", __entry->id,
		      __entry->iova, __entry->size, __entry->ret)
);

TRACE_EVENT(iommu_kvm_set_table,
	    TP_PROTO(unsigned int id, u64 anchor, u64 first, u64 last, int ret),
	    TP_ARGS(id, anchor, first, last, ret),
	    TP_STRUCT__entry(__field(unsigned int, id)
			     __field(u64, anchor)
			     __field(u64, first)
			     __field(u64, last)
			     __field(int, ret)),
	    TP_fast_assign(__entry->id = id;
			   __entry->anchor = anchor;
			   __entry->first = first;
			   __entry->last = last;
			   __entry->ret = ret;),
	    TP_printk("domain=%u anchor=0x%llx first=0x%llx last=0x%llx ret=%d",
		      __entry->id, __entry->anchor, __entry->first,
		      __entry->last, __entry->ret)
);

#endif /* _TRACE_IOMMU_KVM_H */

/* This part must be outside protection */
#undef TRACE_INCLUDE_PATH
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_PATH .
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
