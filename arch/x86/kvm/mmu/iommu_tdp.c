// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM's table for an IOMMU: a two-dimensional paging table that KVM keeps
 * for the VM's devices, next to the vCPUs' roots.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <kunit/static_stub.h>
#include <linux/backing-dev.h>
#include <linux/cacheflush.h>
#include <linux/delay.h>
#include <linux/hugetlb_inline.h>
#include <linux/kvm_host.h>
#include <linux/kvm_iommu.h>
#include <linux/list.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/user.h>
#include <linux/shmem_fs.h>
#include <linux/wait_bit.h>

#include "mmu.h"
#include "spte.h"
#include "iommu_tdp.h"

/**
 * DOC: KVM's table for an IOMMU
 *
 * An IOMMU that translates a VM's DMA through a table of KVM's walks the
 * table KVM builds here, never the vCPUs' roots. It is KVM's in every
 * sense: KVM builds it from the VM's memslots, in the format of its own
 * two-dimensional paging (x86-64 paging under NPT, EPT under VMX, as
 * struct kvm_iommu_tdp_format describes it), and keeps it current from the
 * same events that change the vCPUs' roots. But none of the machinery
 * that makes the vCPUs' roots unsuitable for a device touches it:
 *
 * - it is no root of the TDP MMU, so the fast zap of all roots (memslot
 *   deletion under KVM_X86_QUIRK_SLOT_ZAP_ALL, nx_huge_pages, the MMIO
 *   generation wrap), vCPU context resets, access aging, dirty-log write
 *   protection and NX huge-page splitting and recovery never see it;
 * - it maps address space 0 only (no SMM, no nested guest), the user
 *   memslots only (no APIC access page), and guest RAM only: never an
 *   MMIO SPTE, nor memory that cannot be pinned for writing (another
 *   device's BAR in a memslot: DMA to it faults). A frame is present
 *   and writable for as long as it is in a memslot and its page stays in
 *   the VM's mm;
 * - it is populated in bulk, with 2 MiB leaves where the backing is
 *   physically contiguous, when the first IOMMU takes it and whenever a
 *   memslot is created or moved, so devices that cannot take IO page
 *   faults need none. Every page of host memory it maps is pinned
 *   (FOLL_LONGTERM, so no migration, swap or KSM behind the IOMMU's back)
 *   and charged to the RLIMIT_MEMLOCK of the user who took the table, as
 *   iommufd charges; a memslot that would exceed it is refused
 *   (kvm_iommu_tdp_prepare_slot()). A memslot of shared guest_memfd memory
 *   (GUEST_MEMFD_FLAG_INIT_SHARED) is mapped from the file, as KVM maps
 *   it for the vCPUs, with a page reference and no pin or charge: the
 *   file's pages are never migrated, swapped or merged, and are only
 *   freed after an invalidation that zaps them here too;
 * - what goes away from the VM goes away from it (a change of protection
 *   alone, mprotect() or NUMA hinting, does not: the pins, or guest_memfd,
 *   keep the pages where they are): kvm_unmap_gfn_range(),
 *   which every MMU-notifier invalidation, memory-attribute change,
 *   guest_memfd invalidation and memslot deletion reaches, and the fast
 *   zap of a deleted memslot, zap its leaves under mmu_lock. Each cleared
 *   entry is written back to memory (the IOMMU may not snoop its walks),
 *   and before mmu_lock is dropped the IOMMUs flush the range, once per
 *   zap and by range, and only then are the pages unpinned, and marked
 *   dirty, since devices may have written them (guest_memfd pages: their
 *   references dropped). The pins of what an MMU notifier's invalidation
 *   zapped are kept until no invalidation is under way any more
 *   (kvm_iommu_tdp_invalidate_done()): KSM's merge of a page, and the
 *   unmap of an anonymous page for reclaim or migration, call the
 *   notifier first and only then look for pins, and must find them, or
 *   they would take the page from under the table time and again. (Reclaim
 *   and migration of shmem look for pins only after the invalidation has
 *   ended: such a page may still go, and the refill then maps its new
 *   place.) A 2 MiB leaf
 *   the range covers in part is split first, so the rest stays mapped
 *   (unless no page can be had without sleeping: then it goes whole);
 * - what an invalidation took out while it is still in a memslot (a host
 *   huge page split, memory dropped and touched again) is mapped again by
 *   a worker once the invalidation is over, faulting the memory in as the
 *   first populate did; until then DMA to it faults, never reaching the
 *   old pages;
 * - page-table pages are freed only with the table, after a full flush.
 *
 * The IOMMUs register as &struct kvm_iommu_tdp_client; the list changes
 * and is walked under mmu_lock held for write, which every change of the
 * table holds too. slots_lock orders taking and dropping the table against
 * memslot updates. While the table exists, dirty logging is refused
 * (-EBUSY): KVM's dirty log does not see DMA writes.
 */

#define IOMMU_TDP_PTES		512
#define IOMMU_TDP_ADDR		GENMASK_ULL(51, 12)
/* x86-64 paging (NPT) */
#define IOMMU_TDP_P		BIT_ULL(0)
#define IOMMU_TDP_RW		BIT_ULL(1)
#define IOMMU_TDP_US		BIT_ULL(2)
#define IOMMU_TDP_A		BIT_ULL(5)
#define IOMMU_TDP_D		BIT_ULL(6)
#define IOMMU_TDP_PS		BIT_ULL(7)
/* EPT */
#define IOMMU_TDP_EPT_RWX	GENMASK_ULL(2, 0)
#define IOMMU_TDP_EPT_WB	(6ULL << 3)
/* VT-d second stage's snoop bit (KVM_IOMMU_TDP_EPT_SNOOP) */
#define IOMMU_TDP_EPT_SNP	BIT_ULL(11)
/*
 * Software, in a leaf of either format: its pages are held by references
 * (guest_memfd), not pins. Ignored by VT-d's first and second stage
 */
#define IOMMU_TDP_REF		BIT_ULL(10)

/* The pages of a cleared leaf, released after the flush */
struct kvm_iommu_tdp_unpin {
	u64 pfn;
	u32 nr;
	bool ref;
};

#define IOMMU_TDP_UNPIN_MAX	(PAGE_SIZE / sizeof(struct kvm_iommu_tdp_unpin))
#define IOMMU_TDP_HOLES		16
/*
 * Frames whose pins the invalidations under way may keep: they are no
 * longer charged to RLIMIT_MEMLOCK, so at most two 2 MiB leaves' worth.
 * A THP that KSM or migration splits takes one, and the 4 KiB pages
 * they then look at must still find room.
 */
#define IOMMU_TDP_DEFER_FRAMES	(2 * IOMMU_TDP_PTES)
/*
 * A range the refill could not map for now (a long-term pin that could
 * not migrate its pages yet) is tried again after this long, twice as
 * long each time it fails, up to the maximum, for as long as the table
 * exists.
 */
#define IOMMU_TDP_RETRY_MIN_MS	10
#define IOMMU_TDP_RETRY_MAX_MS	10000

/**
 * struct iommu_tdp_holes - Guest frame ranges to map again
 * @r: the ranges, [start, end)
 * @nr: entries in @r; when it is full, a new range is merged into the last
 * @err: why the last range added could not be mapped, if it was not
 */
struct iommu_tdp_holes {
	struct { gfn_t start, end; } r[IOMMU_TDP_HOLES];
	unsigned int nr;
	int err;
};

/**
 * struct kvm_iommu_tdp - KVM's table for the VM's IOMMUs
 * @kvm: the VM
 * @root: the root table
 * @fmt: its format, as the IOMMUs get it
 * @clients: the IOMMUs that walk it; mmu_lock for write
 * @user: the user charged for the pinned pages, NULL with CAP_IPC_LOCK
 * @limit: the RLIMIT_MEMLOCK of the process that took the table, in pages
 * @npinned: pages pinned through the table's leaves (guest_memfd pages,
 *	held by references, are not counted)
 * @flush_start: first frame the next drain flushes
 * @flush_end: and the one after its last; none if not above @flush_start
 * @unpin: pages whose leaves were cleared, unpinned by the next drain
 * @nr_unpin: entries in @unpin
 * @deferred: pages whose leaves were cleared and flushed, still pinned
 *	until no invalidation is under way (neither in @npinned nor
 *	charged); mmu_lock for write
 * @nr_deferred: entries in @deferred
 * @deferred_frames: frames of @deferred, at most %IOMMU_TDP_DEFER_FRAMES
 * @blocked: the VM went away for its users: the table maps nothing more;
 *	set under mmu_lock for write
 * @holes: guest frame ranges zapped while still in a memslot, for
 *	@refill to map again; mmu_lock
 * @refill: maps @holes again, in process context
 * @failed: ranges that @refill or @retry could not map for now, for
 *	@retry; slots_lock
 * @retry: maps @failed again, @retry_delay after the last try
 * @retry_delay: in jiffies; 0 when nothing failed. slots_lock
 * @zaps: invalidations under way that may drop mmu_lock and still use the
 *	table after the table's last user retired it. The table is freed
 *	when there are none
 * @watch_start: the first frame of the chunk that a populate is about to
 *	pin, or has pinned and not yet mapped
 * @watch_end: and the one after its last
 * @watch_zapped: an invalidation zapped part of the watched chunk since
 *	the watch was set: pages pinned for it may have left the VM's mm.
 *	The three @watch_ fields have one writer at a time, a populate under
 *	slots_lock, which sets them under mmu_lock for read before its pin;
 *	zaps, under mmu_lock for write, read the range and set @watch_zapped.
 *	The last chunk stays watched after it is mapped, which costs a zap
 *	a compare
 */
struct kvm_iommu_tdp {
	struct kvm *kvm;
	u64 *root;
	struct kvm_iommu_tdp_format fmt;
	struct list_head clients;
	struct user_struct *user;
	unsigned long limit;
	unsigned long npinned;
	gfn_t flush_start;
	gfn_t flush_end;
	struct kvm_iommu_tdp_unpin *unpin;
	unsigned int nr_unpin;
	struct kvm_iommu_tdp_unpin *deferred;
	unsigned int nr_deferred;
	unsigned int deferred_frames;
	bool blocked;
	struct iommu_tdp_holes holes;
	struct work_struct refill;
	struct iommu_tdp_holes failed;
	struct delayed_work retry;
	unsigned long retry_delay;
	atomic_t zaps;
	gfn_t watch_start;
	gfn_t watch_end;
	bool watch_zapped;
};

/*
 * Write back the cache lines of @len bytes at @p: the IOMMU may walk the
 * table without snooping the CPU's caches. Every change of an entry goes
 * through here before the IOMMU is told of it, and a table before it is
 * linked (KUnit checks both).
 */
static void iommu_tdp_wb(void *p, unsigned int len)
{
	KUNIT_STATIC_STUB_REDIRECT(iommu_tdp_wb, p, len);
	clflush_cache_range(p, len);
}

static void iommu_tdp_write(u64 *ptep, u64 val)
{
	WRITE_ONCE(*ptep, val);
	iommu_tdp_wb(ptep, sizeof(*ptep));
}

/*
 * Charge what the caller allocates from here to iommu_tdp_memcg_leave() to
 * the memory cgroup of the VM's mm, as the VMM's own allocations are, not
 * to the task that happens to run: a worker, or whoever triggered an
 * MMU-notifier invalidation (kswapd, another cgroup's reclaim). Any
 * context but interrupts; does not sleep.
 */
static struct mem_cgroup *iommu_tdp_memcg_enter(struct kvm_iommu_tdp *t,
						struct mem_cgroup **memcg)
{
	*memcg = get_mem_cgroup_from_mm(t->kvm->mm);
	return set_active_memcg(*memcg);
}

static void iommu_tdp_memcg_leave(struct mem_cgroup *memcg,
				  struct mem_cgroup *old)
{
	set_active_memcg(old);
	mem_cgroup_put(memcg);
}

static u64 *iommu_tdp_alloc_table(struct kvm_iommu_tdp *t)
{
	u64 *table = (u64 *)get_zeroed_page(GFP_KERNEL_ACCOUNT);

	if (!table)
		return NULL;
	/* The zeroes too: the IOMMU sees the page once it is linked */
	iommu_tdp_wb(table, PAGE_SIZE);
	kvm_account_pgtable_pages(table, 1);
	return table;
}

static void iommu_tdp_free_table(u64 *table)
{
	kvm_account_pgtable_pages(table, -1);
	free_page((unsigned long)table);
}

static bool iommu_tdp_present(u64 entry)
{
	/* P under x86-64 paging, R under EPT: set in every entry here */
	return entry & BIT_ULL(0);
}

static bool iommu_tdp_is_leaf(u64 entry, int level)
{
	return level == PG_LEVEL_4K || (entry & IOMMU_TDP_PS);
}

/*
 * The first frame the table cannot map: a memslot may reach beyond it
 * where the host's physical address width exceeds what the table's levels
 * translate. Frames from there on are never mapped (DMA to them faults):
 * the index would wrap around to low frames.
 */
static gfn_t iommu_tdp_max_gfn(struct kvm_iommu_tdp *t)
{
	return 1ULL << (9 * t->fmt.levels);
}

static unsigned int iommu_tdp_index(gfn_t gfn, int level)
{
	return (gfn >> (9 * (level - 1))) & (IOMMU_TDP_PTES - 1);
}

static int iommu_tdp_charge(struct kvm_iommu_tdp *t, unsigned long n)
{
	if (!t->user)
		return 0;
	if (atomic_long_add_return(n, &t->user->locked_vm) > t->limit) {
		atomic_long_sub(n, &t->user->locked_vm);
		return -ENOMEM;
	}
	return 0;
}

static void iommu_tdp_uncharge(struct kvm_iommu_tdp *t, unsigned long n)
{
	if (t->user)
		atomic_long_sub(n, &t->user->locked_vm);
}

/*
 * Unpin pages devices may have written, dirty, as
 * unpin_user_pages_dirty_lock() would but without sleeping under
 * mmu_lock: FOLL_LONGTERM pins only anonymous, shmem and hugetlb memory,
 * whose dirty_folio() takes no lock.
 */
static void iommu_tdp_unpin(kvm_pfn_t pfn, u64 nr)
{
	struct folio *folio, *last = NULL;
	u64 i;

	KUNIT_STATIC_STUB_REDIRECT(iommu_tdp_unpin, pfn, nr);
	for (i = 0; i < nr; i++) {
		folio = pfn_folio(pfn + i);
		if (folio != last && !folio_test_dirty(folio))
			folio_mark_dirty(folio);
		last = folio;
	}
	unpin_user_page_range_dirty_lock(pfn_to_page(pfn), nr, false);
}

/*
 * Drop the references of @nr guest_memfd pages from @pfn on. Never the
 * last: the file keeps its pages until an invalidation has zapped them.
 */
static void iommu_tdp_put_pages(kvm_pfn_t pfn, u64 nr)
{
	u64 i;

	KUNIT_STATIC_STUB_REDIRECT(iommu_tdp_put_pages, pfn, nr);
	for (i = 0; i < nr; i++)
		put_page(pfn_to_page(pfn + i));
}

static void iommu_tdp_release_one(struct kvm_iommu_tdp_unpin *u)
{
	if (u->ref)
		iommu_tdp_put_pages(u->pfn, u->nr);
	else
		iommu_tdp_unpin(u->pfn, u->nr);
}

/*
 * Release what the invalidations kept; mmu_lock held for write. Their
 * pins were uncharged when their leaves went: a refill may pin the same
 * pages again meanwhile, and must find room under the limit.
 */
static void iommu_tdp_release_deferred(struct kvm_iommu_tdp *t)
{
	unsigned int i;

	lockdep_assert_held_write(&t->kvm->mmu_lock);
	for (i = 0; i < t->nr_deferred; i++)
		iommu_tdp_release_one(&t->deferred[i]);
	t->nr_deferred = 0;
	t->deferred_frames = 0;
}

/*
 * Tell every IOMMU that walks the table that the entries of what was
 * queued changed, then release the pages they mapped; with @defer (a zap
 * from an invalidation), keep the pins for the end of the invalidations
 * while there is room. guest_memfd's references are dropped at once: the
 * file does not look for them. mmu_lock is held for write, so no IOMMU
 * comes or goes meanwhile.
 */
static void iommu_tdp_drain(struct kvm_iommu_tdp *t, bool defer)
{
	struct kvm_iommu_tdp_client *client;
	unsigned long n = 0;
	unsigned int i;

	lockdep_assert_held_write(&t->kvm->mmu_lock);
	if (t->flush_start < t->flush_end)
		list_for_each_entry(client, &t->clients, node)
			client->flush(client, t->flush_start,
				      t->flush_end - t->flush_start);
	t->flush_start = U64_MAX;
	t->flush_end = 0;

	for (i = 0; i < t->nr_unpin; i++) {
		struct kvm_iommu_tdp_unpin *u = &t->unpin[i];

		if (!u->ref)
			n += u->nr;
		/*
		 * No room: released now, as the pages may be leaving. What is
		 * kept is no longer charged, so it is bounded in frames.
		 */
		if (defer && !u->ref && t->nr_deferred < IOMMU_TDP_UNPIN_MAX &&
		    t->deferred_frames + u->nr <= IOMMU_TDP_DEFER_FRAMES) {
			t->deferred[t->nr_deferred++] = *u;
			t->deferred_frames += u->nr;
		} else {
			iommu_tdp_release_one(u);
		}
	}
	t->nr_unpin = 0;
	t->npinned -= n;
	iommu_tdp_uncharge(t, n);
}

/* The next drain flushes frames [@gfn, @gfn + @nr) too */
static void iommu_tdp_flush_range(struct kvm_iommu_tdp *t, gfn_t gfn, u64 nr)
{
	t->flush_start = min(t->flush_start, gfn);
	t->flush_end = max(t->flush_end, gfn + nr);
}

/*
 * A leaf mapping @nr frames from @gfn on, to @pfn on, was just cleared;
 * @ref: its pages are held by references, not pins
 */
static void iommu_tdp_queue(struct kvm_iommu_tdp *t, gfn_t gfn, u64 nr,
			    kvm_pfn_t pfn, bool ref, bool defer)
{
	if (t->nr_unpin == IOMMU_TDP_UNPIN_MAX)
		iommu_tdp_drain(t, defer);
	t->unpin[t->nr_unpin].pfn = pfn;
	t->unpin[t->nr_unpin].nr = nr;
	t->unpin[t->nr_unpin].ref = ref;
	t->nr_unpin++;
	iommu_tdp_flush_range(t, gfn, nr);
}

static u64 iommu_tdp_leaf(struct kvm_iommu_tdp *t, kvm_pfn_t pfn, int level)
{
	/* IOMMU_TDP_REF is the installer's to add */
	u64 bits = t->fmt.leaf_bits & ~(IOMMU_TDP_PS | IOMMU_TDP_REF);

	if (level > PG_LEVEL_4K)
		bits |= IOMMU_TDP_PS;
	return ((u64)pfn << PAGE_SHIFT) | bits;
}

/*
 * Replace the 2 MiB leaf at @ptep, for @gfn on, with a table of the same
 * 4 KiB translations, so that a range covering part of it can go alone.
 * Under mmu_lock: no sleeping allocation. The IOMMU may still use the
 * 2 MiB translation it cached until the drain, which flushes all of it.
 */
static bool iommu_tdp_split(struct kvm_iommu_tdp *t, u64 *ptep, u64 entry,
			    gfn_t gfn)
{
	kvm_pfn_t pfn = (entry & IOMMU_TDP_ADDR) >> PAGE_SHIFT;
	struct mem_cgroup *memcg, *old;
	u64 *table;
	int i;

	old = iommu_tdp_memcg_enter(t, &memcg);
	table = (u64 *)get_zeroed_page(GFP_NOWAIT | __GFP_ACCOUNT |
				       __GFP_NOWARN);
	iommu_tdp_memcg_leave(memcg, old);
	if (!table)
		return false;
	for (i = 0; i < IOMMU_TDP_PTES; i++)
		table[i] = iommu_tdp_leaf(t, pfn + i, PG_LEVEL_4K) |
			   (entry & IOMMU_TDP_REF);
	iommu_tdp_wb(table, PAGE_SIZE);
	kvm_account_pgtable_pages(table, 1);
	iommu_tdp_write(ptep, __pa(table) | t->fmt.table_bits);
	iommu_tdp_flush_range(t, gfn, IOMMU_TDP_PTES);
	return true;
}

/**
 * struct iommu_tdp_zap - One zap of the table
 * @can_yield: mmu_lock may be dropped between 2 MiB ranges, after a drain,
 *	so nothing cleared waits for its flush meanwhile: tables are only
 *	freed with the whole table, and nothing maps into the range while it
 *	is dropped (an invalidation covers it, or slots_lock is held)
 * @defer: from an invalidation: its drains keep the pins (iommu_tdp_drain())
 * @zapped: a leaf was cleared
 * @start: the first frame of the leaves cleared
 * @end: and the one after the last
 */
struct iommu_tdp_zap {
	bool can_yield;
	bool defer;
	bool zapped;
	gfn_t start;
	gfn_t end;
};

/* Should a zap that can yield drop mmu_lock now? */
static bool __iommu_tdp_should_yield(struct kvm_iommu_tdp *t)
{
	return need_resched() || rwlock_needbreak(&t->kvm->mmu_lock);
}

/* May a zap that can yield drop mmu_lock here? */
static bool iommu_tdp_should_yield(struct kvm_iommu_tdp *t)
{
	KUNIT_STATIC_STUB_REDIRECT(iommu_tdp_should_yield, t);
	return __iommu_tdp_should_yield(t);
}

/* Clear the leaves under @table (of @level, mapping from @base) in range */
static void iommu_tdp_zap_table(struct kvm_iommu_tdp *t, u64 *table,
				int level, gfn_t base, gfn_t start, gfn_t end,
				struct iommu_tdp_zap *z)
{
	unsigned int shift = 9 * (level - 1), i, first, last;
	u64 size = 1ULL << shift;

	/* Shifts: a 5-level root's entries span 2^36 frames */
	first = start > base ? (start - base) >> shift : 0;
	last = min_t(u64, IOMMU_TDP_PTES, (end - base + size - 1) >> shift);
	for (i = first; i < last; i++) {
		u64 entry = READ_ONCE(table[i]);
		gfn_t gfn = base + i * size;

		if (!iommu_tdp_present(entry))
			continue;
		/* Part of a 2 MiB leaf: split it, so the rest stays mapped */
		if (level == PG_LEVEL_2M && iommu_tdp_is_leaf(entry, level) &&
		    (gfn < start || gfn + size > end) &&
		    iommu_tdp_split(t, &table[i], entry, gfn))
			entry = READ_ONCE(table[i]);
		if (!iommu_tdp_is_leaf(entry, level)) {
			iommu_tdp_zap_table(t, __va(entry & IOMMU_TDP_ADDR),
					    level - 1, gfn, start, end, z);
		} else {
			/*
			 * All of the leaf goes, or a huge leaf that could not
			 * be split: then the rest of it faults until the
			 * refill.
			 */
			iommu_tdp_write(&table[i], 0);
			z->zapped = true;
			z->start = min(z->start, gfn);
			z->end = max(z->end, gfn + size);
			iommu_tdp_queue(t, gfn, size,
					(entry & IOMMU_TDP_ADDR) >> PAGE_SHIFT,
					entry & IOMMU_TDP_REF, z->defer);
		}
		/* After each 2 MiB, a table of 4 KiB leaves or one leaf */
		if (level == PG_LEVEL_2M && z->can_yield &&
		    iommu_tdp_should_yield(t)) {
			iommu_tdp_drain(t, z->defer);
			cond_resched_rwlock_write(&t->kvm->mmu_lock);
		}
	}
}

static void iommu_tdp_zap(struct kvm_iommu_tdp *t, gfn_t start, gfn_t end,
			  struct iommu_tdp_zap *z)
{
	z->zapped = false;
	z->start = U64_MAX;
	z->end = 0;
	if (start >= end)
		return;
	iommu_tdp_zap_table(t, t->root, t->fmt.levels, 0, start, end, z);
	iommu_tdp_drain(t, z->defer);
}

/* Add [@start, @end) to @h; a full list coarsens its last range */
static void iommu_tdp_add_hole(struct iommu_tdp_holes *h, gfn_t start,
			       gfn_t end)
{
	unsigned int i;

	for (i = 0; i < h->nr; i++) {
		if (start <= h->r[i].end && end >= h->r[i].start)
			break;
	}
	if (i == h->nr && h->nr < IOMMU_TDP_HOLES) {
		h->r[h->nr].start = start;
		h->r[h->nr].end = end;
		h->nr++;
	} else {
		i = min(i, h->nr - 1);
		h->r[i].start = min(h->r[i].start, start);
		h->r[i].end = max(h->r[i].end, end);
	}
}

/*
 * Remember a zapped range for the refill, which maps again what is still
 * in a memslot once the invalidation is over: devices take no faults.
 */
static void iommu_tdp_hole(struct kvm_iommu_tdp *t, gfn_t start, gfn_t end)
{
	iommu_tdp_add_hole(&t->holes, start, end);
	/* It pins, and may take long: unbound, and on the long-running queue */
	queue_work(system_dfl_long_wq, &t->refill);
}

/* Run the retry in @delay jiffies, unless it is queued already */
static void iommu_tdp_retry_later(struct kvm_iommu_tdp *t,
				  unsigned long delay)
{
	KUNIT_STATIC_STUB_REDIRECT(iommu_tdp_retry_later, t, delay);
	queue_delayed_work(system_dfl_long_wq, &t->retry, delay);
}

/**
 * kvm_iommu_tdp_unmap() - Take a range out of the IOMMUs' table
 * @kvm: the VM
 * @range: the frames of a memslot that KVM zaps in its own roots
 *
 * Called by kvm_unmap_gfn_range() and on a memslot deletion, with mmu_lock
 * held for write. On return no IOMMU translates through the range, and the
 * pages it mapped are unpinned, or, while an invalidation is under way,
 * still pinned until kvm_iommu_tdp_invalidate_done(), or until the table
 * is emptied, whichever comes first. If the range may block, mmu_lock may be
 * dropped between 2 MiB ranges, as KVM's own zaps do, after the IOMMUs
 * were flushed for what was cleared so far and its pages unpinned.
 */
void kvm_iommu_tdp_unmap(struct kvm *kvm, struct kvm_gfn_range *range)
{
	struct kvm_iommu_tdp *t = kvm->arch.iommu_tdp;
	struct iommu_tdp_zap z = { .can_yield = range->may_block };

	if (!t || range->slot->as_id || !(range->attr_filter & KVM_FILTER_SHARED))
		return;
	/* A protection change: the pins keep the pages where they are */
	if (range->keeps_pfns)
		return;
	lockdep_assert_held_write(&kvm->mmu_lock);
	/* Pages a populate is pinning or pinned may be leaving the mm */
	if (range->start < t->watch_end && range->end > t->watch_start)
		t->watch_zapped = true;
	atomic_inc(&t->zaps);
	/*
	 * An invalidation: the primary MMU may be about to look for pins
	 * on the pages (KSM, reclaim, migration), and must find them.
	 */
	z.defer = !!kvm->mmu_invalidate_in_progress;
	iommu_tdp_zap(t, range->start, range->end, &z);
	if (!kvm->mmu_invalidate_in_progress)
		iommu_tdp_release_deferred(t);
	/* A huge leaf that stuck out went whole: all of it comes back */
	if (z.zapped && !t->blocked)
		iommu_tdp_hole(t, min(range->start, z.start),
			       max(range->end, z.end));
	atomic_dec_and_wake_up(&t->zaps);
}

/**
 * kvm_iommu_tdp_invalidate_done() - No invalidation is under way any more
 * @kvm: the VM
 *
 * Called by kvm_mmu_invalidate_end() when the last invalidation under way
 * ends, with mmu_lock held for write. Unpins the pages whose leaves the
 * invalidations zapped: the primary MMU has done with them, and a page
 * that stayed in the VM's mm is mapped again by the refill.
 */
void kvm_iommu_tdp_invalidate_done(struct kvm *kvm)
{
	struct kvm_iommu_tdp *t = kvm->arch.iommu_tdp;

	if (t && t->nr_deferred)
		iommu_tdp_release_deferred(t);
}

/* Pin @n pages at @hva for writing, for as long as they are mapped */
static long iommu_tdp_pin(struct kvm_iommu_tdp *t, unsigned long hva,
			  unsigned long n, struct page **pages)
{
	long pinned;

	KUNIT_STATIC_STUB_REDIRECT(iommu_tdp_pin, t, hva, n, pages);
	mmap_read_lock(t->kvm->mm);
	/* A poisoned page: -EHWPOISON, not -EFAULT, as KVM's faults ask */
	pinned = pin_user_pages_remote(t->kvm->mm, hva, n,
				       FOLL_WRITE | FOLL_LONGTERM | FOLL_HWPOISON,
				       pages, NULL);
	mmap_read_unlock(t->kvm->mm);
	return pinned;
}

/* Unpin @n pages that iommu_tdp_pin() pinned and no leaf maps */
static void iommu_tdp_release(struct page **pages, unsigned long n)
{
	KUNIT_STATIC_STUB_REDIRECT(iommu_tdp_release, pages, n);
	unpin_user_pages(pages, n);
}

/* Give back @n pages that no leaf maps: unpin them, or drop with @ref */
static void iommu_tdp_drop(struct page **pages, unsigned long n, bool ref)
{
	if (!ref) {
		iommu_tdp_release(pages, n);
		return;
	}
	while (n)
		put_page(pages[--n]);
}

/*
 * Take a reference on the pages of @n frames of @slot's guest_memfd from
 * @gfn on: in bulk where the file has them, else one by one, allocating
 * what it lacks, as KVM's faults do. Returns how many frames from @gfn on
 * got their page, as pin_user_pages_remote() does: @n, fewer if a page
 * could not be had, or, if the first could not, an errno with no
 * reference kept: -EFAULT if the file is gone, -EHWPOISON if the page is
 * poisoned (the frame stays unmapped), -ENOMEM.
 */
static long iommu_tdp_gmem_get(struct kvm_iommu_tdp *t,
			       struct kvm_memory_slot *slot, gfn_t gfn,
			       unsigned long n, struct page **pages)
{
	unsigned long i = 0;
	kvm_pfn_t pfn;
	long ret;

	while (i < n) {
		ret = kvm_gmem_get_pages(slot, gfn + i, n - i, &pages[i]);
		if (ret < 0)
			goto fail;
		i += ret;
		if (i == n)
			break;
		ret = kvm_gmem_get_pfn(t->kvm, slot, gfn + i, &pfn, &pages[i],
				       NULL);
		if (ret)
			goto fail;
		i++;
	}
	return n;
fail:
	if (i)
		return i;
	return ret == -ENOMEM || ret == -EHWPOISON ? ret : -EFAULT;
}

/* The pages are physically contiguous and as aligned as the leaf */
static bool iommu_tdp_contiguous(struct page **pages, unsigned long n)
{
	kvm_pfn_t pfn = page_to_pfn(pages[0]);
	unsigned long i;

	if (!IS_ALIGNED(pfn, n))
		return false;
	for (i = 1; i < n; i++)
		if (page_to_pfn(pages[i]) != pfn + i)
			return false;
	return true;
}

/*
 * Go down towards the entry at @level for @gfn as far as the tables go:
 * the last table reached, whose entries are of the level put in *@found,
 * @level if it holds that entry, higher if its entry for @gfn is not
 * present; NULL if a leaf above @level covers @gfn.
 */
static u64 *iommu_tdp_descend(struct kvm_iommu_tdp *t, gfn_t gfn, int level,
			      int *found)
{
	u64 *table = t->root;
	int l;

	for (l = t->fmt.levels; l > level; l--) {
		u64 entry = READ_ONCE(table[iommu_tdp_index(gfn, l)]);

		if (!iommu_tdp_present(entry))
			break;
		if (iommu_tdp_is_leaf(entry, l))
			return NULL;
		table = __va(entry & IOMMU_TDP_ADDR);
	}
	*found = l;
	return table;
}

/*
 * The entry at @level for @gfn, with the tables above it made as needed
 * from @spare; NULL if a leaf above @level covers @gfn or @spare ran out.
 */
static u64 *iommu_tdp_walk(struct kvm_iommu_tdp *t, gfn_t gfn, int level,
			   u64 **spare, int *nspare)
{
	int l;
	u64 *table = iommu_tdp_descend(t, gfn, level, &l);

	if (!table)
		return NULL;
	/* The entry at l is not present, nor any below it: new tables */
	for (; l > level; l--) {
		u64 *ptep = &table[iommu_tdp_index(gfn, l)];

		if (!*nspare)
			return NULL;
		table = spare[--*nspare];
		iommu_tdp_write(ptep, __pa(table) | t->fmt.table_bits);
	}
	return &table[iommu_tdp_index(gfn, level)];
}

/*
 * The level of the leaves that map the chunk of @n frames in @pages: one
 * 2 MiB leaf if the chunk is a whole 2 MiB of contiguous, aligned memory
 * and the format has such leaves, else 4 KiB leaves
 */
static int iommu_tdp_leaf_level(struct kvm_iommu_tdp *t, struct page **pages,
				unsigned long n)
{
	if (n == IOMMU_TDP_PTES && t->fmt.max_leaf_level >= PG_LEVEL_2M &&
	    iommu_tdp_contiguous(pages, n))
		return PG_LEVEL_2M;
	return PG_LEVEL_4K;
}

/*
 * Install what @pages holds for @n frames from @gfn on, in leaves of
 * @level (iommu_tdp_leaf_level()), with @sw in each leaf (IOMMU_TDP_REF
 * for pages held by references); mmu_lock held
 */
static unsigned long iommu_tdp_install(struct kvm_iommu_tdp *t, gfn_t gfn,
				       struct page **pages, unsigned long n,
				       int level, u64 sw, u64 **spare,
				       int *nspare)
{
	unsigned long i, installed = 0;
	u64 *ptep, *first = NULL, *last = NULL;

	if (level == PG_LEVEL_2M) {
		ptep = iommu_tdp_walk(t, gfn, PG_LEVEL_2M, spare, nspare);
		if (ptep && !READ_ONCE(*ptep)) {
			kvm_pfn_t pfn = page_to_pfn(pages[0]);

			iommu_tdp_write(ptep,
					iommu_tdp_leaf(t, pfn, PG_LEVEL_2M) | sw);
			return n;
		}
	}
	/* One table: the chunk is within 2 MiB. Written back at once */
	for (i = 0; i < n; i++) {
		ptep = iommu_tdp_walk(t, gfn + i, PG_LEVEL_4K, spare, nspare);
		if (!ptep || iommu_tdp_present(READ_ONCE(*ptep))) {
			/* Mapped already: keep what is there */
			iommu_tdp_drop(&pages[i], 1, sw & IOMMU_TDP_REF);
			continue;
		}
		WRITE_ONCE(*ptep, iommu_tdp_leaf(t, page_to_pfn(pages[i]),
						 PG_LEVEL_4K) | sw);
		first = first ?: ptep;
		last = ptep;
		installed++;
	}
	if (first)
		iommu_tdp_wb(first, (last - first + 1) * sizeof(*ptep));
	return installed;
}

/*
 * How many tables a walk down to the entry of @level for @gfn would make.
 * Only a populate makes tables, and populates hold slots_lock; zaps and
 * splits free none (the table's tables go with it). So by the time the
 * caller installs, the walks of its chunk, which is within 2 MiB, need no
 * more: if the entry of a 2 MiB leaf is taken meanwhile, by a table or a
 * leaf, the 4 KiB walks that install falls back to make none either.
 */
static int iommu_tdp_tables_needed(struct kvm_iommu_tdp *t, gfn_t gfn,
				   int level)
{
	u64 *table;
	int l;

	lockdep_assert_held(&t->kvm->slots_lock);
	read_lock(&t->kvm->mmu_lock);
	table = iommu_tdp_descend(t, gfn, level, &l);
	read_unlock(&t->kvm->mmu_lock);
	/* Under a leaf, the walk stops there: nothing to make */
	return table ? l - level : 0;
}

/*
 * Enough tables in @spare for the walks to the leaves of @level of the
 * chunk at @gfn: a refill of a page, whose tables are there, allocates
 * none. False if short.
 */
static bool iommu_tdp_get_spares(struct kvm_iommu_tdp *t, gfn_t gfn,
				 int level, u64 **spare, int *nspare)
{
	int need = iommu_tdp_tables_needed(t, gfn, level);

	while (*nspare < need) {
		spare[*nspare] = iommu_tdp_alloc_table(t);
		if (!spare[*nspare])
			return false;
		(*nspare)++;
	}
	return true;
}

/*
 * An invalidation that may cover a frame of [@start, @end) is under way.
 * KVM keeps one range for all invalidations under way, the smallest that
 * covers them all; one that has yet to add its range covers everything.
 */
static bool iommu_tdp_invalidating(struct kvm *kvm, gfn_t start, gfn_t end)
{
	lockdep_assert_held(&kvm->mmu_lock);
	if (!kvm->mmu_invalidate_in_progress)
		return false;
	if (kvm->mmu_invalidate_range_start == INVALID_GPA)
		return true;
	return start < kvm->mmu_invalidate_range_end &&
	       end > kvm->mmu_invalidate_range_start;
}

/*
 * Watch frames [@start, @end) for zaps before their pages are pinned:
 * from now on kvm_iommu_tdp_unmap() of any of them marks the watch. False
 * if an invalidation of the range is under way: its zap may have passed
 * while the primary MMU has yet to change the mapping, so what a pin
 * found now might leave the mm unnoticed.
 */
static bool iommu_tdp_watch(struct kvm_iommu_tdp *t, gfn_t start, gfn_t end)
{
	struct kvm *kvm = t->kvm;
	bool ok;

	/* Zaps, which read the watch, hold mmu_lock for write */
	read_lock(&kvm->mmu_lock);
	ok = !iommu_tdp_invalidating(kvm, start, end);
	if (ok) {
		t->watch_start = start;
		t->watch_end = end;
		t->watch_zapped = false;
	}
	read_unlock(&kvm->mmu_lock);
	return ok;
}

/*
 * Let the invalidation that iommu_tdp_watch() found go on for a while;
 * the caller then watches again, until none is under way
 */
static void iommu_tdp_wait(struct kvm_iommu_tdp *t)
{
	KUNIT_STATIC_STUB_REDIRECT(iommu_tdp_wait, t);
	usleep_range(10, 50);
}

/*
 * Give back the @got pages taken for a chunk of @n that will not be
 * mapped, and the charge for it
 */
static void iommu_tdp_unget(struct kvm_iommu_tdp *t, struct page **pages,
			    long got, unsigned long n, bool ref)
{
	if (got > 0)
		iommu_tdp_drop(pages, got, ref);
	if (!ref)
		iommu_tdp_uncharge(t, n);
}

/*
 * Pin @n frames from @gfn on at @hva and map them; with @gmem, take them
 * from that memslot's guest_memfd instead, by reference. KVM's
 * invalidation protocol, narrowed to the chunk: the pin starts when no
 * invalidation of the chunk is under way, and its pages are mapped only
 * if none zapped the chunk since, so no leaf points at a page that left
 * the VM's mm or file. Invalidations of other frames, which move
 * mmu_invalidate_seq all the same, never make it pin again: a worker that
 * refills one dropped page while the VMM drops the next pins each page
 * once. They can make it wait, when KVM's range of the invalidations
 * under way spans the chunk. slots_lock held: one populate at a time.
 *
 * Return: how many frames from @gfn on it mapped (or found mapped): @n,
 * or fewer if the frame after them cannot be pinned (or, for guest_memfd,
 * had), which the caller skips; -EFAULT if the first cannot; another
 * errno.
 */
static long iommu_tdp_populate_chunk(struct kvm_iommu_tdp *t, gfn_t gfn,
				     unsigned long hva, unsigned long n,
				     struct page **pages,
				     struct kvm_memory_slot *gmem)
{
	u64 *spare[PT64_ROOT_MAX_LEVEL];
	struct kvm *kvm = t->kvm;
	unsigned long installed;
	int nspare = 0, level;
	bool ref = gmem;
	long got, ret;

	lockdep_assert_held(&kvm->slots_lock);
	if (gfn + n > iommu_tdp_max_gfn(t))
		return -EFAULT;
	for (;;) {
		if (!iommu_tdp_watch(t, gfn, gfn + n)) {
			if (fatal_signal_pending(current)) {
				ret = -EINTR;
				break;
			}
			iommu_tdp_wait(t);
			continue;
		}
		/* guest_memfd pages are not pinned: nothing to charge */
		ret = ref ? 0 : iommu_tdp_charge(t, n);
		if (ret)
			break;
		if (ref)
			got = iommu_tdp_gmem_get(t, gmem, gfn, n, pages);
		else
			got = iommu_tdp_pin(t, hva, n, pages);
		if (got <= 0) {
			iommu_tdp_unget(t, pages, got, n, ref);
			ret = got < 0 ? got : -EFAULT;
			break;
		}
		/* Map what was had; the caller skips the frame that was not */
		if (got < n) {
			if (!ref)
				iommu_tdp_uncharge(t, n - got);
			n = got;
		}
		level = iommu_tdp_leaf_level(t, pages, n);
		if (!iommu_tdp_get_spares(t, gfn, level, spare, &nspare)) {
			ret = -ENOMEM;
			goto drop;
		}

		write_lock(&kvm->mmu_lock);
		if (t->blocked) {
			write_unlock(&kvm->mmu_lock);
			ret = -ENODEV;
			goto drop;
		}
		if (t->watch_zapped) {
			write_unlock(&kvm->mmu_lock);
			iommu_tdp_unget(t, pages, n, n, ref);
			if (fatal_signal_pending(current)) {
				ret = -EINTR;
				break;
			}
			cond_resched();
			continue;
		}
		installed = iommu_tdp_install(t, gfn, pages, n, level,
					      ref ? IOMMU_TDP_REF : 0, spare,
					      &nspare);
		if (!ref) {
			t->npinned += installed;
			iommu_tdp_uncharge(t, n - installed);
		}
		write_unlock(&kvm->mmu_lock);
		ret = n;
		break;
drop:
		iommu_tdp_unget(t, pages, n, n, ref);
		break;
	}
	while (nspare)
		iommu_tdp_free_table(spare[--nspare]);
	return ret;
}

static bool iommu_tdp_slot_mapped(const struct kvm_memory_slot *slot)
{
	/* User memslots of address space 0 that a device may write */
	return !slot->as_id && slot->id < KVM_USER_MEM_SLOTS &&
	       !(slot->flags & KVM_MEM_READONLY);
}

/*
 * Can the table map @slot? Host memory, or guest_memfd that KVM maps for
 * every fault (GUEST_MEMFD_FLAG_MMAP) and that is all shared
 * (GUEST_MEMFD_FLAG_INIT_SHARED), so that its invalidations reach the
 * table. Not guest_memfd that KVM uses only for private faults: the table
 * would map the host memory at the memslot's address instead.
 */
static bool iommu_tdp_slot_ok(struct kvm_memory_slot *slot)
{
	return !kvm_slot_has_gmem(slot) ||
	       (kvm_memslot_is_gmem_only(slot) &&
		kvm_gmem_slot_is_shared(slot));
}

static bool iommu_tdp_has_4k(u64 *table, gfn_t gfn)
{
	return iommu_tdp_present(READ_ONCE(table[iommu_tdp_index(gfn,
							PG_LEVEL_4K)]));
}

/*
 * The first frame in [@gfn, @end), a range within one 2 MiB, that has no
 * leaf in the table, and in *@run_end the end of the run of such frames
 * from it; @end if every frame has a leaf. mmu_lock held, for read at
 * least.
 */
static gfn_t iommu_tdp_first_hole(struct kvm_iommu_tdp *t, gfn_t gfn,
				  gfn_t end, gfn_t *run_end)
{
	u64 *table;
	int l;

	*run_end = end;
	table = iommu_tdp_descend(t, gfn, PG_LEVEL_4K, &l);
	if (!table)
		return end;
	if (l > PG_LEVEL_4K)
		return gfn;
	while (gfn < end && iommu_tdp_has_4k(table, gfn))
		gfn++;
	*run_end = gfn;
	while (*run_end < end && !iommu_tdp_has_4k(table, *run_end))
		(*run_end)++;
	return gfn;
}

/*
 * May a pin that failed with @err succeed later? A long-term pin fails
 * with -ENOMEM or -EBUSY when it could not migrate the pages out of a
 * movable zone (or device memory) yet, or memory could not be had.
 */
static bool iommu_tdp_transient(long err)
{
	return err == -ENOMEM || err == -EBUSY || err == -EAGAIN;
}

/* A refill skips a run it cannot map; @failed keeps it if that may pass */
static long iommu_tdp_skip_run(struct iommu_tdp_holes *failed, gfn_t start,
			       gfn_t end, long err)
{
	if (iommu_tdp_transient(err)) {
		iommu_tdp_add_hole(failed, start, end);
		failed->err = err;
	}
	return end - start;
}

/*
 * Pin and map the frame @gfn at @hva alone, which a pin stopped short at,
 * for its error. A frame that is not RAM a device may reach (-EFAULT), or
 * whose page is poisoned, stays unmapped. Of other errors, a refill's
 * @failed keeps the frame if the error may pass, and the rest leave it
 * unmapped; without @failed, they are returned. -ENODEV if the table was
 * blocked meanwhile.
 */
static long iommu_tdp_probe_frame(struct kvm_iommu_tdp *t, gfn_t gfn,
				  unsigned long hva, struct page **pages,
				  struct kvm_memory_slot *gmem,
				  struct iommu_tdp_holes *failed)
{
	long err = iommu_tdp_populate_chunk(t, gfn, hva, 1, pages, gmem);

	if (err >= 0 || err == -EFAULT || err == -EHWPOISON)
		return 0;
	if (err == -ENODEV || !failed)
		return err;
	iommu_tdp_skip_run(failed, gfn, gfn + 1, err);
	return 0;
}

/*
 * Map frames [@gfn, @end) of @slot; what is mapped already stays, and is
 * not pinned again: a refill of a range that the hole list coarsened pins
 * only what the table lacks. A frame that cannot be pinned for writing is
 * not RAM a device may reach (another device's BAR, VM_PFNMAP or VM_IO; a
 * read-only or no mapping): it stays unmapped, DMA to it faults, and the
 * rest is mapped. What was pinned before it is mapped; the run of unmapped
 * frames that starts with one (within 2 MiB) is skipped, so that a large
 * BAR costs a pin per 2 MiB, not per page. A frame whose page is poisoned
 * stays unmapped alone. A guest_memfd memslot is mapped from its file
 * (iommu_tdp_slot_ok() let only shared ones in).
 *
 * The frame a pin stopped short at is tried alone, for its error
 * (iommu_tdp_probe_frame()). With @failed (a refill), a run that cannot
 * be mapped for another reason is skipped too, and goes to @failed if it
 * may be mapped later (iommu_tdp_transient()), as such a frame does; the
 * rest is mapped. Without @failed, such an error ends the populate.
 */
static int iommu_tdp_populate_range(struct kvm_iommu_tdp *t,
				    struct kvm_memory_slot *slot,
				    gfn_t gfn, gfn_t end,
				    struct iommu_tdp_holes *failed)
{
	struct kvm_memory_slot *gmem = kvm_slot_has_gmem(slot) ? slot : NULL;
	struct page **pages;
	long ret = 0, err;

	if (!iommu_tdp_slot_mapped(slot))
		return 0;
	gfn = max(gfn, slot->base_gfn);
	end = min3(end, slot->base_gfn + slot->npages, iommu_tdp_max_gfn(t));
	if (gfn >= end)
		return 0;
	/* No chunk is larger: a refill of a page needs one pointer, not 512 */
	pages = kmalloc_array(min_t(u64, end - gfn, IOMMU_TDP_PTES),
			      sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;
	while (gfn < end) {
		gfn_t chunk_end = gfn + min_t(u64, end - gfn,
				IOMMU_TDP_PTES - (gfn & (IOMMU_TDP_PTES - 1)));
		gfn_t hole, hole_end;
		unsigned long hva;

		read_lock(&t->kvm->mmu_lock);
		hole = iommu_tdp_first_hole(t, gfn, chunk_end, &hole_end);
		read_unlock(&t->kvm->mmu_lock);
		gfn = chunk_end;
		if (hole < chunk_end) {
			hva = __gfn_to_hva_memslot(slot, hole);
			ret = iommu_tdp_populate_chunk(t, hole, hva,
						       hole_end - hole, pages,
						       gmem);
			/* Not RAM from the first frame: the run is skipped */
			if (ret == -EFAULT)
				ret = hole_end - hole;
			/* A poisoned first frame: the probe skips that one */
			else if (ret == -EHWPOISON)
				ret = 0;
			else if (ret < 0 && failed && ret != -ENODEV)
				ret = iommu_tdp_skip_run(failed, hole, hole_end,
							 ret);
			if (ret < 0)
				break;
			/* Ask the frame a pin stopped short at why */
			if (hole + ret < hole_end) {
				err = iommu_tdp_probe_frame(t, hole + ret,
							    hva + ret * PAGE_SIZE,
							    pages, gmem, failed);
				if (err) {
					ret = err;
					break;
				}
			}
			/* Past what it mapped and the frame it could not */
			gfn = min(hole + ret + 1, hole_end);
			ret = 0;
		}
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		cond_resched();
	}
	kfree(pages);
	return ret;
}

static int iommu_tdp_populate_slot(struct kvm_iommu_tdp *t,
				   struct kvm_memory_slot *slot)
{
	return iommu_tdp_populate_range(t, slot, slot->base_gfn,
					slot->base_gfn + slot->npages, NULL);
}

/*
 * Map [@start, @end) of @slot again; what cannot be mapped for now goes
 * to @failed. -ENODEV if the table was blocked meanwhile, else 0.
 */
static int iommu_tdp_refill_range(struct kvm_iommu_tdp *t,
				  struct kvm_memory_slot *slot, gfn_t start,
				  gfn_t end, struct iommu_tdp_holes *failed)
{
	int ret = iommu_tdp_populate_range(t, slot, start, end, failed);

	if (ret == -ENODEV)
		return ret;
	/* It could not begin (no memory): all of it later */
	if (ret)
		iommu_tdp_skip_run(failed, start, end, ret);
	return 0;
}

/*
 * Map the ranges of @h again where they are in a memslot; what cannot be
 * mapped for now goes to @failed. slots_lock held.
 */
static void iommu_tdp_refill_holes(struct kvm_iommu_tdp *t,
				   const struct iommu_tdp_holes *h,
				   struct iommu_tdp_holes *failed)
{
	struct kvm_memory_slot *slot;
	unsigned int i;
	int bkt;

	lockdep_assert_held(&t->kvm->slots_lock);
	for (i = 0; i < h->nr; i++)
		kvm_for_each_memslot(slot, bkt, kvm_memslots(t->kvm))
			if (iommu_tdp_refill_range(t, slot, h->r[i].start,
						   h->r[i].end, failed))
				return;
}

/*
 * Keep what a refill (@again false) or a retry (@again true) could not
 * map for the retry, and have it run: after %IOMMU_TDP_RETRY_MIN_MS the
 * first time, then twice as long each time the retry fails, up to
 * %IOMMU_TDP_RETRY_MAX_MS. A refill of new ranges never runs it sooner.
 * slots_lock held.
 */
static void iommu_tdp_failed(struct kvm_iommu_tdp *t,
			     const struct iommu_tdp_holes *failed, bool again)
{
	unsigned long cap = msecs_to_jiffies(IOMMU_TDP_RETRY_MAX_MS);
	unsigned int i;

	lockdep_assert_held(&t->kvm->slots_lock);
	if (READ_ONCE(t->blocked) || (!failed->nr && !again))
		return;
	for (i = 0; i < failed->nr; i++)
		iommu_tdp_add_hole(&t->failed, failed->r[i].start,
				   failed->r[i].end);
	if (!t->failed.nr) {
		t->retry_delay = 0;
		return;
	}
	if (!t->retry_delay) {
		t->retry_delay = msecs_to_jiffies(IOMMU_TDP_RETRY_MIN_MS);
		pr_warn_ratelimited("%s: guest memory not mapped for the IOMMUs for now (%d), trying again\n",
				    t->kvm->stats_id, failed->err);
	} else if (again) {
		t->retry_delay = min(2 * t->retry_delay, cap);
	}
	iommu_tdp_retry_later(t, t->retry_delay);
}

/*
 * Map again what invalidations took out of the table and is still in a
 * memslot (@t->holes), or, with @retry, what that could not map before
 * (@t->failed): a host huge page split, memory dropped and touched again,
 * a page migrated before the pin. Memory that has no backing any more is
 * faulted in, as the first populate did; memory that cannot be pinned
 * (munmap) stays unmapped. What this allocates is charged to the memory
 * cgroup of the VM's mm, never to the worker's: guest_memfd's pages are
 * charged to the task that allocates them, not to an mm.
 *
 * A run of frames whose pin fails for now (iommu_tdp_transient(): a
 * long-term pin that could not migrate the pages out of a movable zone
 * yet, or memory that could not be had), or the frame a pin stopped short
 * at if its own pin fails so, goes to @t->failed for the retry
 * (iommu_tdp_failed()); the rest is mapped. Until the retry maps it, DMA
 * to such a range faults, as during the invalidation.
 */
static void iommu_tdp_map_again(struct kvm_iommu_tdp *t, bool retry)
{
	struct iommu_tdp_holes holes, failed = {};
	struct mem_cgroup *memcg, *old;
	struct kvm *kvm = t->kvm;

	if (!mmget_not_zero(kvm->mm))
		return;
	old = iommu_tdp_memcg_enter(t, &memcg);
	mutex_lock(&kvm->slots_lock);
	if (retry) {
		holes = t->failed;
		t->failed.nr = 0;
	} else {
		write_lock(&kvm->mmu_lock);
		holes = t->holes;
		t->holes.nr = 0;
		write_unlock(&kvm->mmu_lock);
	}
	if (!READ_ONCE(t->blocked))
		iommu_tdp_refill_holes(t, &holes, &failed);
	iommu_tdp_failed(t, &failed, retry);
	mutex_unlock(&kvm->slots_lock);
	iommu_tdp_memcg_leave(memcg, old);
	mmput(kvm->mm);
}

static void iommu_tdp_refill(struct work_struct *work)
{
	iommu_tdp_map_again(container_of(work, struct kvm_iommu_tdp, refill),
			    false);
}

/* Try again what refills could not map: iommu_tdp_failed() runs it */
static void iommu_tdp_retry(struct work_struct *work)
{
	iommu_tdp_map_again(container_of(to_delayed_work(work),
					 struct kvm_iommu_tdp, retry), true);
}

static void iommu_tdp_free_tables(u64 *table, int level)
{
	unsigned int i;

	for (i = 0; level > PG_LEVEL_4K && i < IOMMU_TDP_PTES; i++)
		if (iommu_tdp_present(table[i]) &&
		    !iommu_tdp_is_leaf(table[i], level))
			iommu_tdp_free_tables(__va(table[i] & IOMMU_TDP_ADDR),
					      level - 1);
	iommu_tdp_free_table(table);
}

/*
 * Empty the table and flush every IOMMU on it whole, which drops their
 * paging-structure caches too; mmu_lock held for write. With @can_yield,
 * in process context, the table blocked, so that nothing maps meanwhile,
 * and slots_lock or a count in @zaps held, so that no kvm_iommu_tdp_put()
 * frees it meanwhile, mmu_lock may be dropped on the way: a VM of many
 * GiB of 4 KiB pages takes long to empty.
 */
static void iommu_tdp_empty(struct kvm_iommu_tdp *t, bool can_yield)
{
	struct iommu_tdp_zap z = { .can_yield = can_yield };
	struct kvm_iommu_tdp_client *client;

	iommu_tdp_zap(t, 0, iommu_tdp_max_gfn(t), &z);
	list_for_each_entry(client, &t->clients, node)
		client->flush(client, 0, U64_MAX);
	/* Nothing maps them, and no IOMMU has them cached */
	iommu_tdp_release_deferred(t);
}

/*
 * The table goes: nothing maps in it any more, it is emptied (dropping
 * mmu_lock on the way) and no invalidation reaches it. slots_lock held.
 */
static void iommu_tdp_retire(struct kvm_iommu_tdp *t)
{
	struct kvm *kvm = t->kvm;

	lockdep_assert_held(&kvm->slots_lock);
	write_lock(&kvm->mmu_lock);
	WRITE_ONCE(t->blocked, true);
	iommu_tdp_empty(t, true);
	kvm->arch.iommu_tdp = NULL;
	write_unlock(&kvm->mmu_lock);
}

static void iommu_tdp_free(struct kvm_iommu_tdp *t)
{
	/* An invalidation that dropped mmu_lock finds it emptied, not freed */
	wait_var_event(&t->zaps, !atomic_read_acquire(&t->zaps));
	WARN_ON(t->npinned || t->nr_unpin || t->nr_deferred);
	iommu_tdp_free_tables(t->root, t->fmt.levels);
	if (t->user)
		free_uid(t->user);
	free_page((unsigned long)t->unpin);
	free_page((unsigned long)t->deferred);
	kfree(t);
}

/*
 * The table's format: EPT with @ept, else x86-64 paging; @levels deep;
 * with @snoop, EPT leaves that make a VT-d second stage snoop
 */
static void iommu_tdp_format_of(struct kvm_iommu_tdp_format *fmt, bool ept,
				int levels, bool snoop)
{
	memset(fmt, 0, sizeof(*fmt));
	fmt->levels = levels;
	fmt->max_leaf_level = PG_LEVEL_2M;
	fmt->flags = KVM_IOMMU_TDP_WRITEBACK;
	if (ept) {
		fmt->type = KVM_IOMMU_TDP_EPT;
		fmt->table_bits = IOMMU_TDP_EPT_RWX;
		fmt->leaf_bits = IOMMU_TDP_EPT_RWX | IOMMU_TDP_EPT_WB |
				 IOMMU_TDP_PS | IOMMU_TDP_REF;
		if (snoop) {
			fmt->flags |= KVM_IOMMU_TDP_EPT_SNOOP;
			fmt->leaf_bits |= IOMMU_TDP_EPT_SNP;
		}
	} else {
		fmt->type = KVM_IOMMU_TDP_X86_64;
		fmt->flags |= KVM_IOMMU_TDP_USER;
		fmt->table_bits = IOMMU_TDP_P | IOMMU_TDP_RW | IOMMU_TDP_US |
				  IOMMU_TDP_A;
		/* A and D set: an IOMMU never needs to write them */
		fmt->leaf_bits = fmt->table_bits | IOMMU_TDP_D | IOMMU_TDP_PS |
				 IOMMU_TDP_REF;
	}
}

/* An empty table for @kvm in the format of iommu_tdp_format_of(), or NULL */
static struct kvm_iommu_tdp *iommu_tdp_alloc(struct kvm *kvm, bool ept,
					     int levels)
{
	struct kvm_iommu_tdp *t;

	t = kzalloc_obj(*t, GFP_KERNEL_ACCOUNT);
	if (!t)
		return NULL;
	t->kvm = kvm;
	INIT_LIST_HEAD(&t->clients);
	INIT_WORK(&t->refill, iommu_tdp_refill);
	INIT_DELAYED_WORK(&t->retry, iommu_tdp_retry);
	iommu_tdp_format_of(&t->fmt, ept, levels, ept);
	t->flush_start = U64_MAX;
	t->unpin = (void *)__get_free_page(GFP_KERNEL_ACCOUNT);
	t->deferred = (void *)__get_free_page(GFP_KERNEL_ACCOUNT);
	t->root = iommu_tdp_alloc_table(t);
	if (!t->unpin || !t->deferred || !t->root) {
		if (t->root)
			iommu_tdp_free_table(t->root);
		free_page((unsigned long)t->unpin);
		free_page((unsigned long)t->deferred);
		kfree(t);
		return NULL;
	}
	return t;
}

/* The VM's table, in the format of KVM's own two-dimensional paging */
static struct kvm_iommu_tdp *iommu_tdp_create(struct kvm *kvm)
{
	struct kvm_iommu_tdp *t;

	t = iommu_tdp_alloc(kvm, !!shadow_xs_mask, kvm_mmu_iommu_tdp_level());
	if (!t)
		return NULL;
	/* The refill runs in a worker: keep the owner's limit */
	if (!capable(CAP_IPC_LOCK)) {
		t->user = get_uid(current_user());
		t->limit = rlimit(RLIMIT_MEMLOCK) >> PAGE_SHIFT;
	}
	return t;
}

static int iommu_tdp_check(struct kvm_iommu_tdp_client *client,
			   const struct kvm_iommu_tdp_format *fmt)
{
	return client->check ? client->check(client, fmt) : 0;
}

/*
 * Give a new, empty table a format the first IOMMU can walk. The table is
 * the IOMMUs' alone, so it need not be in that of the vCPUs' paging: if
 * the IOMMU cannot walk KVM's own (x86-64 paging under NPT, EPT under
 * VMX), it gets the other, as deep (VT-d walks x86-64 paging with its first
 * stage, EPT with its second). EPT is offered with the snoop bit in its
 * leaves first (a unit with snoop control can then make its devices'
 * DMA coherent, which VFIO tells KVM), then without. Returns what the
 * first check returned if the IOMMU can walk none.
 */
static int iommu_tdp_choose_format(struct kvm_iommu_tdp *t,
				   struct kvm_iommu_tdp_client *client)
{
	struct kvm_iommu_tdp_format own = t->fmt;
	bool ept = own.type == KVM_IOMMU_TDP_EPT;
	const struct { bool ept, snoop; } order[] = {
		{ ept, true }, { ept, false }, { !ept, true }, { !ept, false },
	};
	int i, err, ret = 0;

	for (i = 0; i < ARRAY_SIZE(order); i++) {
		/* x86-64 paging has no snoop bit: once is enough */
		if (!order[i].ept && !order[i].snoop)
			continue;
		iommu_tdp_format_of(&t->fmt, order[i].ept, own.levels,
				    order[i].snoop);
		err = iommu_tdp_check(client, &t->fmt);
		if (!err)
			return 0;
		ret = ret ?: err;
	}
	t->fmt = own;
	return ret;
}

/**
 * kvm_iommu_tdp_get() - Walk KVM's table for the VM's IOMMUs
 * @kvm: the VM
 * @client: the IOMMU, with its flush callback
 * @fmt: set to the table's format
 * @root: set to the physical address of the table's root
 *
 * The first IOMMU makes KVM build the table: every frame of the VM's user
 * memslots (address space 0, not read-only) is pinned, charged to the
 * caller's RLIMIT_MEMLOCK unless it has CAP_IPC_LOCK, and mapped writable;
 * shared guest_memfd is mapped from its file, by reference, uncharged.
 * From then on @client->flush() is called, with mmu_lock held for write
 * (so it must not sleep), each time entries of the table changed; when it
 * returns, the IOMMU must no longer use what it cached of the range.
 * @nr == U64_MAX means everything, paging-structure caches included. Call
 * kvm_iommu_tdp_put() once no device walks the root any more.
 *
 * Process context, by the process that owns the VM; may sleep.
 *
 * Return: 0; -EOPNOTSUPP if KVM does not use the TDP MMU or the VM is not a
 * default VM (private or encrypted memory); -EPERM from another process;
 * -EBUSY if a memslot logs dirty pages; -EOPNOTSUPP also if a memslot has
 * guest_memfd that is not all shared or that KVM uses only for private
 * faults; -ENOMEM if out of memory or over RLIMIT_MEMLOCK, or if a
 * long-term pin could not migrate guest memory out of a movable zone; what
 * else pinning guest memory returned (-EOPNOTSUPP for fsdax, -EBUSY for
 * device-coherent memory that could not be migrated); -EINTR on a fatal
 * signal; -ENODEV if the table was blocked (kvm_iommu_tdp_block()); what
 * @client->check returned, before anything was pinned.
 */
int kvm_iommu_tdp_get(struct kvm *kvm, struct kvm_iommu_tdp_client *client,
		      struct kvm_iommu_tdp_format *fmt, u64 *root)
{
	struct kvm_memory_slot *slot;
	struct kvm_iommu_tdp *t;
	int bkt, ret = 0;

	if (!tdp_enabled || !tdp_mmu_enabled ||
	    kvm->arch.vm_type != KVM_X86_DEFAULT_VM)
		return -EOPNOTSUPP;
	if (current->mm != kvm->mm)
		return -EPERM;

	mutex_lock(&kvm->slots_lock);
	t = kvm->arch.iommu_tdp;
	if (t && READ_ONCE(t->blocked)) {
		ret = -ENODEV;
		goto out_unlock;
	}
	if (t) {
		ret = iommu_tdp_check(client, &t->fmt);
		if (ret)
			goto out_unlock;
		goto out_add;
	}

	kvm_for_each_memslot(slot, bkt, kvm_memslots(kvm)) {
		if (kvm_slot_dirty_track_enabled(slot)) {
			ret = -EBUSY;
			goto out_unlock;
		}
		if (!iommu_tdp_slot_ok(slot)) {
			ret = -EOPNOTSUPP;
			goto out_unlock;
		}
	}
	t = iommu_tdp_create(kvm);
	if (!t) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	/* Before anything is pinned: can the IOMMU walk it at all? */
	ret = iommu_tdp_choose_format(t, client);
	if (ret) {
		iommu_tdp_free(t);
		goto out_unlock;
	}
	/* Invalidations reach the table from now on, while it fills */
	write_lock(&kvm->mmu_lock);
	kvm->arch.iommu_tdp = t;
	write_unlock(&kvm->mmu_lock);
	kvm_for_each_memslot(slot, bkt, kvm_memslots(kvm)) {
		ret = iommu_tdp_populate_slot(t, slot);
		if (ret)
			break;
	}
	if (ret) {
		iommu_tdp_retire(t);
		mutex_unlock(&kvm->slots_lock);
		cancel_work_sync(&t->refill);
		cancel_delayed_work_sync(&t->retry);
		iommu_tdp_free(t);
		return ret;
	}

out_add:
	write_lock(&kvm->mmu_lock);
	list_add(&client->node, &t->clients);
	write_unlock(&kvm->mmu_lock);
	*fmt = t->fmt;
	*root = __pa(t->root);
out_unlock:
	mutex_unlock(&kvm->slots_lock);
	return ret;
}
EXPORT_SYMBOL_GPL(kvm_iommu_tdp_get);

/**
 * kvm_iommu_tdp_put() - Stop walking KVM's table for the VM's IOMMUs
 * @kvm: the VM
 * @client: what kvm_iommu_tdp_get() was given
 *
 * No device may walk the root any more. When the last IOMMU goes, the
 * table goes: it is emptied, @client flushed whole, every page unpinned and
 * uncharged, the tables freed. Process context; may sleep.
 */
void kvm_iommu_tdp_put(struct kvm *kvm, struct kvm_iommu_tdp_client *client)
{
	struct kvm_iommu_tdp *t;
	bool last;

	mutex_lock(&kvm->slots_lock);
	t = kvm->arch.iommu_tdp;
	/* Only kvm_iommu_tdp_get(), under slots_lock too, adds clients */
	last = list_is_singular(&t->clients);
	if (last)
		iommu_tdp_retire(t);
	write_lock(&kvm->mmu_lock);
	list_del(&client->node);
	write_unlock(&kvm->mmu_lock);
	mutex_unlock(&kvm->slots_lock);
	if (last) {
		/* Takes slots_lock, and maps nothing once blocked */
		cancel_work_sync(&t->refill);
		cancel_delayed_work_sync(&t->retry);
		iommu_tdp_free(t);
	}
}
EXPORT_SYMBOL_GPL(kvm_iommu_tdp_put);

/**
 * kvm_iommu_tdp_block() - Make every DMA through KVM's table fault
 * @kvm: the VM, whose table an IOMMU holds
 *
 * For an IOMMU whose VM went away for its users: the table is emptied, the
 * IOMMUs are flushed whole and every page is unpinned; no memslot is mapped
 * in it any more. The tables stay until the last kvm_iommu_tdp_put(), so
 * the IOMMUs never walk a freed one. Takes mmu_lock only, not slots_lock:
 * the IOMMU side calls it under its own locks, which KVM's intercepts take
 * inside kvm->srcu, which slots_lock waits for. May sleep: mmu_lock is
 * dropped on the way, as for KVM's own zaps.
 */
void kvm_iommu_tdp_block(struct kvm *kvm)
{
	struct kvm_iommu_tdp *t;

	might_sleep();
	write_lock(&kvm->mmu_lock);
	/*
	 * None if the domain that calls this was freed meanwhile, as its
	 * VM went away: then there is nothing left to block.
	 */
	t = kvm->arch.iommu_tdp;
	if (t) {
		WRITE_ONCE(t->blocked, true);
		/* Not freed while mmu_lock is dropped (iommu_tdp_free()) */
		atomic_inc(&t->zaps);
		iommu_tdp_empty(t, true);
		atomic_dec_and_wake_up(&t->zaps);
	}
	write_unlock(&kvm->mmu_lock);
}
EXPORT_SYMBOL_GPL(kvm_iommu_tdp_block);

/*
 * May a long-term pin for writing take the pages of @vma? As GUP decides
 * (check_vma_flags()): not another device's memory (VM_IO, VM_PFNMAP),
 * nor fsdax, nor a read-only or shadow-stack mapping, nor a shared
 * mapping whose file tracks dirty pages (writeback, or page_mkwrite):
 * private mappings (a write pin breaks copy-on-write), and shared memory
 * of shmem, hugetlbfs or device DAX. secretmem, which GUP refuses too, is
 * counted: vma_is_secretmem() is not exported.
 */
static bool iommu_tdp_vma_pinnable(struct vm_area_struct *vma)
{
	const struct vm_operations_struct *ops = vma->vm_ops;
	struct file *file = vma->vm_file;
	vm_flags_t flags = vma->vm_flags;

	if (!(flags & VM_WRITE) ||
	    (flags & (VM_IO | VM_PFNMAP | VM_SHADOW_STACK)) ||
	    vma_is_fsdax(vma))
		return false;
	if (!(flags & VM_SHARED) || vma_is_anonymous(vma))
		return true;
	if (ops && (ops->page_mkwrite || ops->pfn_mkwrite))
		return false;
	return !file || !file->f_mapping ||
	       !mapping_can_writeback(file->f_mapping);
}

/*
 * What the table would charge to map @slot: its frames in mappings that
 * may be pinned (iommu_tdp_vma_pinnable()), memory not faulted in yet
 * included, as the populate faults it in; guest_memfd costs nothing.
 * -EINTR on a fatal signal.
 */
static long iommu_tdp_slot_charge(struct kvm_iommu_tdp *t,
				  const struct kvm_memory_slot *slot)
{
	VMA_ITERATOR(vmi, t->kvm->mm, slot->userspace_addr);
	gfn_t end = min(slot->base_gfn + slot->npages, iommu_tdp_max_gfn(t));
	unsigned long start = slot->userspace_addr, last;
	struct vm_area_struct *vma;
	long n = 0;

	if (!iommu_tdp_slot_mapped(slot) || kvm_slot_has_gmem(slot) ||
	    slot->base_gfn >= end)
		return 0;
	last = start + ((end - slot->base_gfn) << PAGE_SHIFT);
	if (mmap_read_lock_killable(t->kvm->mm))
		return -EINTR;
	for_each_vma_range(vmi, vma, last)
		if (iommu_tdp_vma_pinnable(vma))
			n += (min(last, vma->vm_end) -
			      max(start, vma->vm_start)) >> PAGE_SHIFT;
	mmap_read_unlock(t->kvm->mm);
	return n;
}

/**
 * kvm_iommu_tdp_prepare_slot() - May this memslot change happen?
 * @kvm: the VM
 * @new: the memslot as it will be
 * @change: the change
 *
 * With slots_lock held. A created or moved memslot is mapped for the
 * IOMMUs before the VMM's ioctl returns (kvm_iommu_tdp_commit_slot()), so
 * its pins must fit in the RLIMIT_MEMLOCK that the table is charged to,
 * as an attach's must; a moved memslot's old mapping was uncharged when
 * KVM invalidated it, before this. The check is a snapshot: a charge to
 * the same user between it and the commit, or one the table takes back
 * afterwards for frames it gave up for an invalidation and maps again,
 * may leave some memory to the retry (iommu_tdp_failed()).
 *
 * Return: 0, or -EBUSY for dirty logging while the IOMMUs' table exists
 * (KVM's dirty log would miss what devices write), and for a guest_memfd
 * memslot that is not all shared and mapped by KVM from the file; -ENOMEM
 * if the memslot's pinnable memory would exceed RLIMIT_MEMLOCK; -EINTR on
 * a fatal signal.
 */
int kvm_iommu_tdp_prepare_slot(struct kvm *kvm,
			       const struct kvm_memory_slot *new,
			       enum kvm_mr_change change)
{
	struct kvm_iommu_tdp *t = kvm->arch.iommu_tdp;
	long n;

	if (!t || change == KVM_MR_DELETE)
		return 0;
	if (new->flags & KVM_MEM_LOG_DIRTY_PAGES)
		return -EBUSY;
	/* Only reads the memslot, whose file is bound already */
	if (!iommu_tdp_slot_ok((struct kvm_memory_slot *)new))
		return -EBUSY;
	if (!t->user || READ_ONCE(t->blocked) ||
	    (change != KVM_MR_CREATE && change != KVM_MR_MOVE))
		return 0;
	n = iommu_tdp_slot_charge(t, new);
	if (n < 0)
		return n;
	if (n && atomic_long_read(&t->user->locked_vm) + n > t->limit) {
		pr_warn_ratelimited("%s: memslot %d: %ld pages for the IOMMUs exceed RLIMIT_MEMLOCK\n",
				    kvm->stats_id, new->id, n);
		return -ENOMEM;
	}
	return 0;
}

/**
 * kvm_iommu_tdp_commit_slot() - Map a created or moved memslot
 * @kvm: the VM
 * @new: the memslot, already visible
 * @change: the change
 *
 * With slots_lock held, before the VMM's ioctl returns. Memory that cannot
 * be pinned for writing stays unmapped for devices (their DMA faults);
 * what cannot be mapped for now (iommu_tdp_transient(): memory, or
 * RLIMIT_MEMLOCK) is left to the retry, as a refill's is.
 */
void kvm_iommu_tdp_commit_slot(struct kvm *kvm,
			       const struct kvm_memory_slot *new,
			       enum kvm_mr_change change)
{
	struct kvm_iommu_tdp *t = kvm->arch.iommu_tdp;
	struct iommu_tdp_holes failed = {};

	if (!t || READ_ONCE(t->blocked) ||
	    (change != KVM_MR_CREATE && change != KVM_MR_MOVE))
		return;
	/* kvm_gmem_get_pfn() takes the memslot as KVM installed it */
	iommu_tdp_refill_range(t, (struct kvm_memory_slot *)new,
			       new->base_gfn, new->base_gfn + new->npages,
			       &failed);
	/* Blocked meanwhile: nothing is to be mapped, nor kept */
	iommu_tdp_failed(t, &failed, false);
}

#if IS_ENABLED(CONFIG_KVM_IOMMU_TDP_KUNIT_TEST)
#include "iommu_tdp_kunit.c"
#endif
