/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * KVM-backed IOMMU domains: the test-only interface of the mock IOMMU driver.
 *
 * This is not uAPI. It is shared between the mock IOMMU driver
 * (CONFIG_IOMMU_KVM_DOMAIN_TEST) and tools/testing/selftests/iommu/kvm_domain.c
 * and may change with them at any time.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#ifndef _IOMMU_KVM_TEST_H
#define _IOMMU_KVM_TEST_H

#include <linux/ioctl.h>
#include <linux/types.h>

/*
 * Formats 48 to 63 of enum iommu_hwpt_kvm_format are reserved for self tests.
 *
 * IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHARED: the mock "walks" KVM's table: a DMA
 * to IOVA x reaches the memory at guest physical address x, once the mock
 * IOMMU looked x up in KVM (IOMMU_KVM_MOCK_FAULT) and until KVM invalidates
 * it or the VM goes away.
 *
 * IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHADOW: the mock shadows a one-level guest
 * table of little-endian u64 entries at iommu_hwpt_kvm_selftest.table_gpa.
 * Entry i maps IOVA i * 4096 to GPA (entry & ~0xfff) when bit 0 is set. A
 * parent (nest-parent HWPT of the mock IOMMU) maps GPA to host memory.
 */
#define IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHARED 62
#define IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHADOW 63

#define IOMMU_HWPT_KVM_DATA_SELFTEST 0xdead
#define IOMMU_KVM_SELFTEST_PTE_VALID 0x1ULL
#define IOMMU_KVM_SELFTEST_PAGE_SIZE 4096ULL
/* The mock shadow table never has more entries than this */
#define IOMMU_KVM_SELFTEST_MAX_ENTRIES 512

/**
 * struct iommu_hwpt_kvm_selftest - Driver data of the mock IOMMU driver
 * @flags: must be 0
 * @nr_entries: entries of the guest table (shadow format), at most
 *              IOMMU_KVM_SELFTEST_MAX_ENTRIES; must be 0 for the shared one
 * @table_gpa: guest physical address of the guest table, 8-byte aligned
 *             (shadow format); must be 0 for the shared one
 */
struct iommu_hwpt_kvm_selftest {
	__u32 flags;
	__u32 nr_entries;
	__aligned_u64 table_gpa;
};

/*
 * /dev/iommu_kvm_mock: every open() creates one mock device behind the mock
 * IOMMU; close() hot-unplugs it (detaching and unbinding it first, the way a
 * VFIO device file does). The ioctls mirror VFIO's iommufd calls.
 */
#define IOMMU_KVM_MOCK_TYPE ';'

/**
 * struct iommu_kvm_mock_bind - IOMMU_KVM_MOCK_BIND
 * @argsz: sizeof(struct iommu_kvm_mock_bind)
 * @iommufd: the iommufd to bind the mock device to
 * @out_dev_id: the device ID in that iommufd
 * @__reserved: must be 0
 */
struct iommu_kvm_mock_bind {
	__u32 argsz;
	__s32 iommufd;
	__u32 out_dev_id;
	__u32 __reserved;
};

#define IOMMU_KVM_MOCK_BIND _IO(IOMMU_KVM_MOCK_TYPE, 0)

/**
 * struct iommu_kvm_mock_attach - IOMMU_KVM_MOCK_ATTACH
 * @argsz: sizeof(struct iommu_kvm_mock_attach)
 * @pt_id: IOAS or HWPT to attach to; attaching while attached replaces,
 *         as VFIO_DEVICE_ATTACH_IOMMUFD_PT does
 */
struct iommu_kvm_mock_attach {
	__u32 argsz;
	__u32 pt_id;
};

#define IOMMU_KVM_MOCK_ATTACH _IO(IOMMU_KVM_MOCK_TYPE, 1)

/* Detach: back to blocked DMA, as VFIO_DEVICE_DETACH_IOMMUFD_PT */
#define IOMMU_KVM_MOCK_DETACH _IO(IOMMU_KVM_MOCK_TYPE, 2)

/**
 * struct iommu_kvm_mock_dma - IOMMU_KVM_MOCK_DMA
 * @argsz: sizeof(struct iommu_kvm_mock_dma)
 * @flags: IOMMU_KVM_MOCK_DMA_WRITE to write @uptr's bytes to @iova, else read
 * @iova: device address
 * @length: bytes, at most 4096, not crossing a 4096-byte boundary
 * @uptr: user buffer
 * @out_gpa: for a translated DMA through a KVM domain, the guest physical
 *           address it reached
 *
 * Does a DMA through whatever domain the device is attached to. Fails with
 * EFAULT when the translation faults, ENODEV when it is blocked.
 */
struct iommu_kvm_mock_dma {
	__u32 argsz;
	__u32 flags;
	__aligned_u64 iova;
	__aligned_u64 length;
	__aligned_u64 uptr;
	__aligned_u64 out_gpa;
};

#define IOMMU_KVM_MOCK_DMA_WRITE 0x1
#define IOMMU_KVM_MOCK_DMA _IO(IOMMU_KVM_MOCK_TYPE, 3)

/**
 * struct iommu_kvm_mock_sync - IOMMU_KVM_MOCK_SYNC
 * @argsz: sizeof(struct iommu_kvm_mock_sync)
 * @__reserved: must be 0
 * @iova: start of the range the guest changed
 * @size: its length; 0 means the whole table
 *
 * What KVM's intercept would do on a guest "refresh translations": ask the
 * core to sync the shadow domain the device is attached to.
 */
struct iommu_kvm_mock_sync {
	__u32 argsz;
	__u32 __reserved;
	__aligned_u64 iova;
	__aligned_u64 size;
};

#define IOMMU_KVM_MOCK_SYNC _IO(IOMMU_KVM_MOCK_TYPE, 4)

/**
 * struct iommu_kvm_mock_info - IOMMU_KVM_MOCK_INFO
 * @argsz: sizeof(struct iommu_kvm_mock_info); a smaller size that still
 *         covers @out_shadow_entries gets the fields it covers
 * @out_flags: IOMMU_KVM_MOCK_INFO_KVM if attached to a KVM domain,
 *             IOMMU_KVM_MOCK_INFO_DEAD if that domain's VM is gone
 * @out_domain_id: the core's id of that KVM domain (as in debugfs)
 * @__reserved: always 0
 * @out_invalidations: invalidations that domain received
 * @out_inv_start: first address of the last invalidation
 * @out_inv_last: last address of the last invalidation
 * @out_shadow_entries: valid entries in the shadow table; for a shared
 *                      format, the guest pages the mock IOMMU holds
 *                      translations of (IOMMU_KVM_MOCK_FAULT)
 * @out_atomic_invalidations: invalidations that reached the domain with
 *                            preemption off, i.e. reported from under a
 *                            spinlock such as KVM's mmu_lock; U64_MAX
 *                            if the kernel cannot tell (no
 *                            CONFIG_PREEMPT_COUNT)
 */
struct iommu_kvm_mock_info {
	__u32 argsz;
	__u32 out_flags;
	__u32 out_domain_id;
	__u32 __reserved;
	__aligned_u64 out_invalidations;
	__aligned_u64 out_inv_start;
	__aligned_u64 out_inv_last;
	__aligned_u64 out_shadow_entries;
	__aligned_u64 out_atomic_invalidations;
};

#define IOMMU_KVM_MOCK_INFO_KVM 0x1
#define IOMMU_KVM_MOCK_INFO_DEAD 0x2
#define IOMMU_KVM_MOCK_INFO _IO(IOMMU_KVM_MOCK_TYPE, 5)

/**
 * struct iommu_kvm_mock_set_formats - IOMMU_KVM_MOCK_SET_FORMATS
 * @argsz: sizeof(struct iommu_kvm_mock_set_formats)
 * @__reserved: must be 0
 * @formats: the KVM-backed formats the mock IOMMU offers for this device
 *           from now on; a subset of the two self-test formats
 *
 * Lets a test change what the device's IOMMU can do after a domain was
 * made for it, to check that attach revalidates.
 */
struct iommu_kvm_mock_set_formats {
	__u32 argsz;
	__u32 __reserved;
	__aligned_u64 formats;
};

#define IOMMU_KVM_MOCK_SET_FORMATS _IO(IOMMU_KVM_MOCK_TYPE, 6)

/**
 * struct iommu_kvm_mock_add_sibling - IOMMU_KVM_MOCK_ADD_SIBLING
 * @argsz: sizeof(struct iommu_kvm_mock_add_sibling)
 * @__reserved: must be 0
 * @out_fd: a new file of its own, like one from opening /dev/iommu_kvm_mock,
 *          whose device is in the IOMMU group of this file's device
 * @__reserved2: must be 0
 *
 * Makes a multi-device IOMMU group, to test what iommufd and the iommu core
 * do per group (a replace that fails half-way and rolls back, a member
 * unplugged while the group is attached). Closing the new file unplugs its
 * device, as for any mock device.
 */
struct iommu_kvm_mock_add_sibling {
	__u32 argsz;
	__u32 __reserved;
	__s32 out_fd;
	__u32 __reserved2;
};

#define IOMMU_KVM_MOCK_ADD_SIBLING _IO(IOMMU_KVM_MOCK_TYPE, 7)

/**
 * struct iommu_kvm_mock_set_resv - IOMMU_KVM_MOCK_SET_RESV
 * @argsz: sizeof(struct iommu_kvm_mock_set_resv)
 * @type: IOMMU_KVM_MOCK_RESV_NONE, or the kind of the one reserved region
 *        the mock IOMMU reports for the device from then on
 * @start: its first address
 * @length: its length, not 0 unless @type is IOMMU_KVM_MOCK_RESV_NONE
 *
 * Gives the device a reserved region (iommu_get_resv_regions()), as a
 * platform does for an MSI doorbell or a firmware-owned buffer, to test how
 * a KVM-backed HWPT deals with a device that needs one.
 */
struct iommu_kvm_mock_set_resv {
	__u32 argsz;
	__u32 type;
	__aligned_u64 start;
	__aligned_u64 length;
};

#define IOMMU_KVM_MOCK_RESV_NONE 0
/* A software-managed MSI window (IOMMU_RESV_SW_MSI) */
#define IOMMU_KVM_MOCK_RESV_SW_MSI 1
/* Memory the device must reach at its own address (IOMMU_RESV_DIRECT) */
#define IOMMU_KVM_MOCK_RESV_DIRECT 2
/* The same, but one that assignment may drop (IOMMU_RESV_DIRECT_RELAXABLE) */
#define IOMMU_KVM_MOCK_RESV_DIRECT_RELAXABLE 3
#define IOMMU_KVM_MOCK_SET_RESV _IO(IOMMU_KVM_MOCK_TYPE, 8)

/**
 * struct iommu_kvm_mock_intercept - IOMMU_KVM_MOCK_INTERCEPT
 * @argsz: sizeof(struct iommu_kvm_mock_intercept)
 * @kvm_fd: the VM whose "guest" updated its DMA table
 * @key: the handle it names the device's table by; for a mock shadow domain
 *       the domain's ID (IOMMU_KVM_MOCK_INFO's @out_domain_id)
 * @iova: start of the IOVA range it changed
 * @size: its length; 0 for the whole table
 *
 * Does what KVM's intercept of such an update does (s390 RPCIT):
 * kvm_iommu_sync() on the VM, which finds the domain by @key. Fails with
 * ENOENT when no domain of the VM has @key, as KVM then hands the
 * intercept to userspace.
 */
struct iommu_kvm_mock_intercept {
	__u32 argsz;
	__s32 kvm_fd;
	__aligned_u64 key;
	__aligned_u64 iova;
	__aligned_u64 size;
};

#define IOMMU_KVM_MOCK_INTERCEPT _IO(IOMMU_KVM_MOCK_TYPE, 9)

/**
 * struct iommu_kvm_mock_fault - IOMMU_KVM_MOCK_FAULT
 * @argsz: sizeof(struct iommu_kvm_mock_fault)
 * @flags: IOMMU_KVM_MOCK_FAULT_WRITE if the pages must be writable
 * @gpa: start of the guest physical range
 * @length: its length in bytes, covering at most
 *          IOMMU_KVM_MOCK_FAULT_MAX_PAGES pages
 *
 * For a device attached to a shared-format domain: the mock IOMMU looks
 * each page of the range up in KVM, as an IOMMU that walks KVM's table
 * finds what KVM mapped there, and from then on the device's DMA to those
 * addresses reaches that memory: the VM's real pages, found through its
 * memslots and the primary MMU (kvm_iommu_pin_gfn()), pinned. Until an
 * invalidation from KVM covers them: then DMA there faults (EFAULT) until
 * the range is looked up again. A write DMA needs a page looked up with
 * IOMMU_KVM_MOCK_FAULT_WRITE. The domain holds at most
 * IOMMU_KVM_MOCK_FAULT_MAX_HELD pages.
 *
 * Pages are the host's (PAGE_SIZE), and the counts above are in them.
 *
 * Fails with EINVAL for a device not on a shared-format domain or bad
 * arguments, ENODEV once the VM is gone, EFAULT for a page no memslot
 * backs with ordinary memory (nothing past it is looked up), EPERM if
 * called from outside the VM owner's address space, ENOSPC past the limit,
 * EINTR on a fatal signal, ENOMEM.
 */
struct iommu_kvm_mock_fault {
	__u32 argsz;
	__u32 flags;
	__aligned_u64 gpa;
	__aligned_u64 length;
};

#define IOMMU_KVM_MOCK_FAULT_WRITE 0x1
#define IOMMU_KVM_MOCK_FAULT_MAX_PAGES 1024
#define IOMMU_KVM_MOCK_FAULT_MAX_HELD 65536
#define IOMMU_KVM_MOCK_FAULT _IO(IOMMU_KVM_MOCK_TYPE, 10)

#endif /* _IOMMU_KVM_TEST_H */
