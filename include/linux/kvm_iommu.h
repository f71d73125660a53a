/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The KVM side of KVM-backed IOMMU domains: everything the IOMMU framework
 * needs from KVM, named in one place.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#ifndef __LINUX_KVM_IOMMU_H
#define __LINUX_KVM_IOMMU_H

#include <linux/bits.h>
#include <linux/limits.h>
#include <linux/list.h>
#include <linux/types.h>

struct file;
struct kvm;
struct page;
struct kvm_iommu_listener;

/**
 * DOC: KVM side of KVM-backed IOMMU domains
 *
 * The IOMMU framework (drivers/iommu/kvm-domain/) treats &struct kvm as
 * opaque and never links against kvm.ko. It reaches KVM only through the
 * functions below, each taken with symbol_get():
 *
 * - kvm_iommu_file_is_vm() and kvm_get_kvm_safe() turn a VM file descriptor
 *   from userspace into a reference on the VM;
 * - kvm_put_kvm() drops it. The framework holds this symbol for as long as it
 *   holds the reference, which keeps kvm.ko loaded;
 * - kvm_iommu_listener_register() and kvm_iommu_listener_unregister() attach
 *   a &struct kvm_iommu_listener to the VM, through which KVM reports every
 *   change of the guest physical address space and the end of the VM;
 * - kvm_iommu_vm_has_private_mem() tells whether the VM has private memory,
 *   which no format that walks KVM's table may expose to a device;
 * - kvm_iommu_listener_set_sync_key() names the device whose guest table
 *   updates and registrations, intercepted by KVM, go to the listener
 *   (kvm_iommu_sync(), kvm_iommu_set_table());
 * - kvm_iommu_pin_gfn() resolves a guest frame through the memslots and the
 *   primary MMU, under KVM's invalidation protocol, for a domain that keeps
 *   translations of its own and drops them on the listener's invalidate.
 *
 * KVM keeps its listeners on a list written under its own mutex and read
 * inside kvm->srcu: this is a locked registration point, not a bare
 * pointer table.
 */

/**
 * DOC: What KVM reports, and what it does not yet
 *
 * The part every architecture shares lives in virt/kvm/kvm_main.c and
 * holds for all of them, s390 included (on 7.3 it uses the generic MMU
 * notifier):
 *
 * - **Invalidation before reuse.** Each of these is reported after KVM
 *   zapped and flushed its own mappings, and before the memory can be
 *   freed or reused:
 *
 *   - every change of what a guest physical address maps to that the
 *     primary MMU makes (unmap, migration, reclaim, NUMA balancing, KSM),
 *     from the MMU notifier's invalidate_range_start, filter
 *     %KVM_IOMMU_INV_SHARED (such memory has a host mapping);
 *   - guest_memfd invalidation (truncation, hole punching, the file's
 *     release), from __kvm_gmem_invalidate_start(), with the file's filter;
 *   - memory-attribute changes (KVM_SET_MEMORY_ATTRIBUTES), from
 *     kvm_vm_set_mem_attributes() before the new attributes are stored,
 *     filter %KVM_IOMMU_INV_SHARED when memory becomes private and
 *     %KVM_IOMMU_INV_PRIVATE when it becomes shared: the mappings of the
 *     old attribute go;
 *   - a memslot deletion or move, from kvm_invalidate_memslot(), both
 *     filters, before the ioctl returns and userspace can reuse the memory.
 *
 *   The first three are reported only when a memslot covers part of the
 *   range, while the range is in mmu_invalidate_in_progress, so KVM cannot
 *   map it again until the invalidation ends; all four after KVM dropped
 *   its mmu_lock. Only address space 0 is reported (not x86's SMM
 *   address space), as guest frame numbers.
 * - **Release before teardown.** The release is reported once, from
 *   kvm_vm_release() before the file's VM reference is put, or from
 *   kvm_mmu_notifier_release() before kvm_flush_shadow_all() tears down
 *   KVM's tables, whichever comes first. A listener that registers later is
 *   refused.
 * - **Context.** An invalidation comes without KVM's mmu_lock, inside
 *   kvm->srcu, from a context that may not sleep (an MMU notifier range
 *   need not be blockable). The release comes in process context.
 *
 * Not reported, and what stands in for it:
 *
 * - Changes KVM makes to its own table without the primary MMU: zaps of
 *   the architecture's MMU (on x86 kvm_zap_gfn_range(), NX huge-page
 *   recovery, dirty-log write-protection, access aging, the fast zap of
 *   all roots on memslot deletion, the MMIO generation wrap) and the
 *   freeing of its page-table pages. They matter only to a format whose
 *   IOMMU walks KVM's table, which must hook KVM's own flush points; the
 *   listener alone is not enough for it.
 * - Dirty logging. KVM's dirty log records what vCPUs write, not what a
 *   device writes through an IOMMU, and enabling it on a memslot is not
 *   reported. A VMM that migrates a VM with a KVM-backed domain attached
 *   must account for DMA writes itself (see the userspace-api page).
 *
 * The way in from KVM's intercepts (s390 RPCIT and MPCIFC) to a shadow
 * domain: kvm_iommu_sync() and kvm_iommu_set_table() find the listener
 * whose sync key is the device's handle and call its sync or set_table,
 * inside kvm->srcu, which kvm_iommu_listener_unregister() waits for, so the
 * domain cannot be freed under the call. KVM links against nothing of the
 * IOMMU side: the listener brought the callback. s390's intercept handlers
 * (arch/s390/kvm/s390/pci_iommu.c) are the callers.
 */

/**
 * struct kvm_iommu_listener_ops - What KVM reports to a listener
 * @invalidate: guest frames [@gfn_start, @gfn_end) no longer map what they
 *	did in the memory @filter names (%KVM_IOMMU_INV_SHARED,
 *	%KVM_IOMMU_INV_PRIVATE or both): KVM zapped them because the backing
 *	memory is being unmapped, migrated, reclaimed or truncated, because
 *	its attributes change, or because the memslot is deleted or moved.
 *	Called after KVM's own page tables stopped using the range and before
 *	the memory can be reused, without KVM's mmu_lock, inside kvm->srcu:
 *	must not sleep.
 * @release: the VM is going away for its users: userspace released its
 *	last VM file reference (vCPU files may keep it running a little
 *	longer), or the process that owns the VM exited. Called once per
 *	listener, in process context, with KVM's listener mutex held: may
 *	sleep, but must not unregister or set a sync key. No @invalidate
 *	follows that could make anything valid again.
 * @sync: optional. The guest changed its DMA table for IOVA [@iova,
 *	@iova + @size) of the device the listener's sync key names (@size 0:
 *	all of it), and told KVM with an intercepted instruction (s390
 *	RPCIT), on the vCPU of index @vcpu_idx. Called by kvm_iommu_sync()
 *	in process context, inside kvm->srcu, and may sleep. Returns 0 or a
 *	negative errno for KVM's intercept handler to turn into the guest's
 *	answer; -EAGAIN makes that vCPU issue the same request again.
 * @set_table: optional. The guest registered the DMA table of the device
 *	the listener's sync key names, for DMA addresses [@first, @last],
 *	with @anchor the architecture's designation of it (s390: the IOTA of
 *	MPCIFC register-IOAT); or deregistered it (@anchor 0). Called by
 *	kvm_iommu_set_table() in the same context as @sync.
 */
struct kvm_iommu_listener_ops {
	void (*invalidate)(struct kvm_iommu_listener *listener, u64 gfn_start,
			   u64 gfn_end, unsigned int filter);
	void (*release)(struct kvm_iommu_listener *listener);
	int (*sync)(struct kvm_iommu_listener *listener, unsigned int vcpu_idx,
		    u64 iova, u64 size);
	int (*set_table)(struct kvm_iommu_listener *listener, u64 anchor,
			 u64 first, u64 last);
};

/**
 * struct kvm_iommu_listener - An IOMMU domain listening to a VM
 * @ops: the callbacks; invalidate and release are mandatory
 * @node: KVM's list entry; owned by KVM while registered
 * @sync_key: the architecture's handle of the device whose guest table
 *	updates KVM hands to @ops->sync (s390: the zPCI function handle), or
 *	KVM_IOMMU_NO_SYNC_KEY. Set with kvm_iommu_listener_set_sync_key()
 */
struct kvm_iommu_listener {
	const struct kvm_iommu_listener_ops *ops;
	struct hlist_node node;
	u64 sync_key;
};

#define KVM_IOMMU_NO_SYNC_KEY U64_MAX

/* The memory an invalidation concerns; KVM's KVM_FILTER_* values */
#define KVM_IOMMU_INV_SHARED	BIT(0)	/* memory with a host mapping */
#define KVM_IOMMU_INV_PRIVATE	BIT(1)	/* private (guest_memfd) memory */

/*
 * Exported by kvm.ko; the framework calls them only through symbol_get().
 * kvm_get_kvm_safe() and kvm_put_kvm() are also declared in <linux/kvm_host.h>.
 */
/**
 * enum kvm_iommu_tdp_type - The entry format of KVM's two-dimensional paging
 * @KVM_IOMMU_TDP_X86_64: x86-64 paging entries, as KVM builds them for AMD
 *	NPT (the format of VT-d's first stage and of AMD's v2 tables)
 * @KVM_IOMMU_TDP_EPT: Intel EPT entries (the layout VT-d's second stage
 *	shares, with bit 11 as its snoop bit)
 */
enum kvm_iommu_tdp_type {
	KVM_IOMMU_TDP_X86_64 = 1,
	KVM_IOMMU_TDP_EPT,
};

/* KVM sets U/S in every present entry (not with AMD's GMET) */
#define KVM_IOMMU_TDP_USER		BIT(0)
/* KVM writes back the cache line of every entry it changes */
#define KVM_IOMMU_TDP_WRITEBACK		BIT(1)
/* MMIO SPTEs may be in the table, marked with @mmio_bits */
#define KVM_IOMMU_TDP_MMIO_SPTES	BIT(2)
/*
 * EPT leaves have bit 11 set, which VT-d's second stage takes as "snoop
 * every access through this leaf" (SNP); a table only IOMMUs walk
 */
#define KVM_IOMMU_TDP_EPT_SNOOP		BIT(3)

/**
 * struct kvm_iommu_tdp_format - What an IOMMU must know to walk a KVM table
 * @type: enum kvm_iommu_tdp_type
 * @levels: levels of the root, 4 or 5
 * @max_leaf_level: the largest leaf KVM may install: 1 (4 KiB), 2 (2 MiB)
 *	or 3 (1 GiB)
 * @flags: KVM_IOMMU_TDP_*
 * @leaf_bits: every bit besides the address that KVM may set in a present
 *	leaf entry: permissions, accessed and dirty, its software bits (host-
 *	and MMU-writable, MMU-present, A/D type), NX, memory type
 * @table_bits: the same for a present entry that points to a table
 * @mmio_bits: with %KVM_IOMMU_TDP_MMIO_SPTES, every bit an MMIO SPTE may
 *	have besides its GFN and generation: its marker and the access bits
 *	KVM adds to it
 *
 * An IOMMU driver refuses a table it cannot walk as KVM builds it: with a
 * bit it treats as meaningful in @leaf_bits or @table_bits, or with MMIO
 * SPTEs it would take for mappings.
 */
struct kvm_iommu_tdp_format {
	u8 type;
	u8 levels;
	u8 max_leaf_level;
	u32 flags;
	u64 leaf_bits;
	u64 table_bits;
	u64 mmio_bits;
};

/**
 * struct kvm_iommu_tdp_client - An IOMMU that walks KVM's table for the VM
 * @flush: the entries of KVM's table for guest frames [@gfn, @gfn + @nr)
 *	changed (@nr U64_MAX: all of them, and the tables too); on return the
 *	IOMMU must not use anything it cached of them: IOTLB, paging-structure
 *	caches, device TLBs. Called with KVM's mmu_lock held for write: must
 *	not sleep
 * @check: optional: can the IOMMU walk a table of format @fmt? Called
 *	before KVM pins or maps anything; an error ends kvm_iommu_tdp_get()
 * @node: KVM's list entry, while the IOMMU has the table
 *
 * See kvm_iommu_tdp_get() (arch/x86/kvm/mmu/iommu_tdp.c).
 */
struct kvm_iommu_tdp_client {
	void (*flush)(struct kvm_iommu_tdp_client *client, u64 gfn, u64 nr);
	int (*check)(struct kvm_iommu_tdp_client *client,
		     const struct kvm_iommu_tdp_format *fmt);
	struct list_head node;
};

bool kvm_iommu_file_is_vm(struct file *file);
bool kvm_get_kvm_safe(struct kvm *kvm);
void kvm_put_kvm(struct kvm *kvm);
int kvm_iommu_listener_register(struct kvm *kvm,
				struct kvm_iommu_listener *listener);
void kvm_iommu_listener_unregister(struct kvm *kvm,
				   struct kvm_iommu_listener *listener);
bool kvm_iommu_vm_has_private_mem(struct kvm *kvm);
int kvm_iommu_listener_set_sync_key(struct kvm *kvm,
				    struct kvm_iommu_listener *listener,
				    u64 key);
int kvm_iommu_sync(struct kvm *kvm, unsigned int vcpu_idx, u64 key, u64 iova,
		   u64 size);
int kvm_iommu_set_table(struct kvm *kvm, u64 key, u64 anchor, u64 first,
			u64 last);
bool kvm_iommu_has_sync_key(struct kvm *kvm, u64 key);
int kvm_iommu_pin_gfn(struct kvm *kvm, u64 gfn, bool write,
		      struct page **page);
int kvm_iommu_tdp_get(struct kvm *kvm, struct kvm_iommu_tdp_client *client,
		      struct kvm_iommu_tdp_format *fmt, u64 *root);
void kvm_iommu_tdp_put(struct kvm *kvm, struct kvm_iommu_tdp_client *client);
void kvm_iommu_tdp_block(struct kvm *kvm);

#endif /* __LINUX_KVM_IOMMU_H */
