// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed domains of the s390 IOMMU: the DMA translation table a guest
 * registered for a zPCI function, shadowed into a host table in the kernel
 * when the guest refreshes it.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#define pr_fmt(fmt) "s390-iommu-kvm: " fmt

#include <linux/iommu_kvm.h>
#include <linux/pci.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/xarray.h>
#include <asm/kvm_zpci_iommu.h>
#include <asm/pci_insn.h>

#include "s390-iommu.h"

/**
 * DOC: s390 zPCI shadow domains
 *
 * A guest registers a DMA translation table for a zPCI function (MPCIFC
 * register-IOAT, with an I/O translation anchor, IOTA, and the range of DMA
 * addresses pba..pal) and tells the function about every change it makes to
 * it (RPCIT, for a range of DMA addresses). Without this driver KVM hands
 * each RPCIT to the VMM, which walks the guest's table and maps or unmaps
 * every page with its own ioctl.
 *
 * A domain of format IOMMU_HWPT_KVM_FORMAT_S390_ZPCI has a host table of
 * its own, set up for the function's aperture as a paging domain's is
 * (s390_domain_init()), and a parent: a paging domain of this driver that
 * maps all guest memory at its guest physical addresses, pinned and
 * accounted by iommufd. KVM hands the RPCITs of the function (the domain's
 * sync key is the guest's function handle) to ops->sync, which:
 *
 * 1. walks the guest's tables for the refreshed range, region-first,
 *    region-second, region-third, segment and page tables, as far as the
 *    IOTA's designation type allows, reading them through the parent;
 * 2. checks every entry it uses: invalid and protection bits, the table
 *    type of each level, table length and offset, and that origins are
 *    guest memory (the parent maps them); the range must meet pba..pal,
 *    and only the part inside it is shadowed;
 * 3. translates each guest frame through the parent. A frame the parent
 *    does not map is an error: nothing outside guest memory is ever put
 *    in the host table;
 * 4. compares each guest entry with the host entry (new, replaced,
 *    invalidated or unchanged), updates the host table with the driver's
 *    own helpers, and refreshes the function's TLB once per sync, only if
 *    something changed (new entries only for a function that caches
 *    invalid ones, as the driver's iotlb_sync_map does).
 *
 * Nothing is pinned on this path: every host frame comes from the parent.
 * The domain remembers the guest physical address behind each host entry,
 * so that when iommufd unmaps a range from the parent (before unpinning
 * it), every host entry that points into it is removed first.
 *
 * A sync does at most %S390_KVM_SYNC_BUDGET entries' worth of work. A
 * larger refresh returns -EAGAIN with its progress saved for the vCPU that
 * asked, and KVM makes that vCPU execute the instruction again, which
 * continues where the last part stopped: the work per intercept is
 * bounded, and a vCPU stays responsive to signals and interrupts in
 * between. Progress is never shared: another vCPU's refresh of the same
 * range may cover a change made after the first one's started, so it
 * starts from the beginning. Removing what an invalid region or segment
 * entry covers counts against the same budget. Removing everything (the
 * error state, a new registration, a parent unmap, the VM's release) is
 * not split: it costs no more than the syncs that made the entries, and
 * it yields the CPU between segments.
 *
 * A bad table, a range outside pba..pal or a refresh without a registered
 * table puts the function in the error state, as the architecture and
 * QEMU do: every host entry is removed, and further refreshes are answered
 * with the error-state status until the guest registers its table again.
 * So does a host refresh that fails, since the function may then still
 * use entries the guest has changed.
 *
 * A domain made with the guest's IOTA (the VMM attaches after the guest
 * registered its table, as after a migration or a hot plug) shadows the
 * whole table when the function is attached, in the same bounded steps,
 * yielding between them; a fatal signal ends the attach with -EINTR. A bad
 * table there puts the function in the error state, as a refresh would.
 *
 * The function handle's enable bit is not part of the key: the guest's
 * instructions name the function with its enabled handle, and CLP's disable
 * (which the VMM answers) names it too. When the guest disables the
 * function, KVM drops the domain's guest table first (zpci_kvm_clp()), as
 * the deregistration that a disable implies.
 */

/* Entries (page table entries and upper-level entries) per sync call */
#define S390_KVM_SYNC_BUDGET	8192
/* Parent page tables remembered: guest tables and frames are often close */
#define S390_KVM_PCACHE		8
/* Guest table pages whose kernel address the walk remembers: one a level */
#define S390_KVM_TCACHE		(S390_KVM_RF + 2)

/* Not in asm/pci_dma.h: a segment entry that maps a 1 MiB frame */
#define S390_KVM_STE_FC		0x400UL
#define S390_KVM_SFAA_MASK	(~((1UL << ZPCI_ST_SHIFT) - 1))
/* IOTA bits besides the origin: translation, key, type, protection */
#define S390_KVM_IOTA_DT_MASK	(7 << 2)
#define S390_KVM_IOTA_FLAGS	(ZPCI_IOTA_IOT_ENABLED | (0xf << 5) | \
				 S390_KVM_IOTA_DT_MASK | ZPCI_TABLE_PROT_MASK)

/* The guest's table levels, highest first; the value is the entry type */
enum s390_kvm_level {
	S390_KVM_RF = 3,
	S390_KVM_RS = 2,
	S390_KVM_RT = 1,
	S390_KVM_ST = 0,
};

/**
 * struct s390_kvm_stats - What the shadow did, for debugfs and KUnit
 * @new: host entries made where there was none
 * @replaced: valid host entries that now map another frame or protection
 * @invalidated: host entries removed because the guest's entry is invalid
 * @unchanged: guest entries whose host entry was already right
 * @dropped: host entries removed because the parent unmapped their frame
 * @refreshes: host RPCITs issued, one per device and sync that needed one
 * @errors: refreshes that put the function in the error state
 * @splits: syncs that stopped at the budget and asked to be called again
 */
struct s390_kvm_stats {
	u64 new;
	u64 replaced;
	u64 invalidated;
	u64 unchanged;
	u64 dropped;
	u64 refreshes;
	u64 errors;
	u64 splits;
};

/**
 * struct s390_kvm_domain - A zPCI function's shadowed guest table
 * @kdom: the core's part; kdom.domain is what the iommu core and iommufd see
 * @host: the host table the function translates through once attached. Its
 *        domain member is never handed out; it carries the geometry and
 *        the list of attached functions for the driver's helpers
 * @parent: the nest parent, mapping guest physical to host physical
 * @zdev: the function the domain was made for; the only one it takes
 * @dev: its device, referenced: the domain can outlive the binding
 * @start_dma: the function's first DMA address, when the domain was made
 * @end_dma: its last
 * @fh: the guest's handle of the function: the sync key
 * @iota: the guest's IOTA, 0 if none is registered
 * @pba: first DMA address the guest registered
 * @pal: last DMA address the guest registered
 * @error: the function is in the error state (DMA blocked)
 * @initial_sync: the domain was made with an IOTA, and the first attach
 *                shadows the whole table
 * @segs: a &struct s390_kvm_seg for each segment (1 MiB of DMA addresses)
 *        that had a valid host entry, by segment number
 * @seg_hint: the record of @segs the last lookup found, or NULL
 * @seg_hint_index: its segment number
 * @nr_mapped: valid host entries
 * @resume: a &struct s390_kvm_resume for each vCPU whose last sync stopped
 *          at the budget, by vCPU index
 * @stats: counters
 * @pcache: page tables of the parent, by guest segment: they stay until
 *          the parent is freed, which the domain outlives, so only the
 *          entries in them are read again
 * @tcache: the kernel address of the guest page that the last walk read
 *          each level's table from (slot 0 for page tables, level + 1
 *          for the others): valid until the parent unmaps anything
 *          (ops->invalidate empties it), since the parent pins what it
 *          maps
 *
 * Everything but @host's device list is written under the core's domain
 * lock (ops->sync, ops->invalidate, ops->block and attach all hold it).
 */
struct s390_kvm_domain {
	struct iommu_kvm_domain kdom;
	struct s390_domain host;
	struct s390_domain *parent;
	struct zpci_dev *zdev;
	struct device *dev;
	u64 start_dma;
	u64 end_dma;
	u32 fh;
	u64 iota;
	u64 pba;
	u64 pal;
	bool error;
	bool initial_sync;
	struct xarray segs;
	struct s390_kvm_seg *seg_hint;
	unsigned long seg_hint_index;
	u64 nr_mapped;
	struct xarray resume;
	struct s390_kvm_stats stats;
	struct s390_kvm_pcache {
		u64 seg;	/* guest segment number + 1; 0: empty */
		unsigned long *pto;
	} pcache[S390_KVM_PCACHE];
	struct s390_kvm_tcache {
		u64 gfn;	/* guest frame number + 1; 0: empty */
		const u64 *va;
	} tcache[S390_KVM_TCACHE];
};

static inline struct s390_kvm_domain *
to_s390_kvm_domain(struct iommu_kvm_domain *kdom)
{
	return container_of(kdom, struct s390_kvm_domain, kdom);
}

/* Marks a guest frame in &struct s390_kvm_seg (frames are page aligned) */
#define S390_KVM_GPA_VALID	1ULL

/**
 * struct s390_kvm_seg - One segment of the shadow
 * @gpa: guest physical frame behind each host entry of the segment, with
 *       %S390_KVM_GPA_VALID, or 0 where the host entry is invalid
 * @pto: the segment's host page table, once it exists: host tables stay
 *       until the domain is freed, so it is looked up once per record
 * @nr: entries of @gpa that are valid
 *
 * A record outlives the guest's invalidations of single pages, so a guest
 * that maps and unmaps the same range costs no allocation after the first
 * time. It is freed when a range is cleared at once and it ends up empty:
 * an invalid region or segment entry, the error state, a deregistration,
 * a parent unmap.
 */
struct s390_kvm_seg {
	u64 gpa[ZPCI_PT_ENTRIES];
	unsigned long *pto;
	unsigned int nr;
};

/**
 * struct s390_kvm_resume - Where a vCPU's split refresh continues
 * @iova: the refresh's DMA address, as the guest gave it
 * @size: its size
 * @next: the first DMA address not yet shadowed
 */
struct s390_kvm_resume {
	u64 iova;
	u64 size;
	u64 next;
};

static unsigned int s390_kvm_px(u64 iova)
{
	return (iova >> PAGE_SHIFT) & ZPCI_PT_MASK;
}

/* What one sync changed, for the refresh at its end */
struct s390_kvm_changes {
	u64 first;	/* lowest DMA address changed */
	u64 last;	/* highest */
	bool narrowed;	/* an entry was invalidated or replaced */
};

/*
 * The helpers of a sync's per-page loop are __always_inline: at -Os (the
 * test kernels' setting) the compiler keeps them out of line, and each call
 * then saves and restores up to ten registers, for every page.
 */
static __always_inline void s390_kvm_changed(struct s390_kvm_changes *c,
					     u64 iova, bool narrowed)
{
	c->first = min(c->first, iova);
	c->last = max(c->last, iova + PAGE_SIZE - 1);
	c->narrowed |= narrowed;
}

/*
 * Does the function use the host table now? The domain serves one
 * function (attach refuses any other), and it keeps a reference on it, so
 * the function's own record says, without the RCU read side of the host
 * domain's device list, which is an interlocked update of the lowcore's
 * preempt count each way: about 0.6 us a pair under QEMU TCG, as much as
 * the rest of a one-page sync. Attaching it here holds the domain lock, as
 * every caller of this does; moving it to another domain (not under that
 * lock) unregisters the table before the record changes, so while the
 * record names the host table, a refresh is still needed and done.
 */
static bool s390_kvm_attached(struct s390_kvm_domain *skd)
{
	return READ_ONCE(skd->zdev->s390_domain) == &skd->host.domain;
}

/*
 * Refresh the function's TLB for what changed. An entry that became valid
 * only needs it on a function that caches invalid entries (tlb_refresh),
 * as in the driver's iotlb_sync_map. Returns -ENOMEM if the function
 * (its hypervisor) is out of resources even after a global refresh, -EIO
 * if the refresh failed otherwise (the function is in the error state or
 * gone). A function that left the domain meanwhile needs no refresh: the
 * unregistration of the table purged what it cached.
 */
static int s390_kvm_refresh(struct s390_kvm_domain *skd,
			    struct s390_kvm_changes *c)
{
	struct zpci_dev *zdev = skd->zdev;
	int rc;

	if (c->first > c->last || !s390_kvm_attached(skd))
		return 0;
	if (!c->narrowed && !zdev->tlb_refresh)
		return 0;
	skd->stats.refreshes++;
	atomic64_inc(&skd->host.ctrs.sync_rpcits);
	rc = zpci_refresh_trans((u64)zdev->fh << 32, c->first,
				c->last - c->first + 1);
	if (rc == -ENOMEM) {
		/* Let the hypervisor find invalidated entries */
		skd->stats.refreshes++;
		atomic64_inc(&skd->host.ctrs.global_rpcits);
		rc = zpci_refresh_trans((u64)zdev->fh << 32, zdev->start_dma,
					zdev->end_dma - zdev->start_dma + 1);
	}
	if (rc && !s390_kvm_attached(skd))
		return 0;
	return rc;
}

/*
 * Store host entry @ptep: frame @hpa with @flags (ZPCI_PTE_VALID, and
 * ZPCI_TABLE_PROTECTED for a read-only one), or ZPCI_PTE_INVALID. It is
 * the entry the driver's dma_update_cpu_trans() makes, in one plain store
 * where that one swaps it in with xchg(): the domain lock keeps the
 * shadow's writers apart, and the refresh that ends a sync orders the store
 * against the function's walks. The interlocked update was about a sixth
 * of a large sync's time under TCG. Entries of the host table carry no
 * other bits.
 */
static __always_inline void s390_kvm_pte_store(unsigned long *ptep,
					       phys_addr_t hpa, int flags)
{
	unsigned long pte = ZPCI_PTE_INVALID;

	if (!(flags & ZPCI_PTE_INVALID))
		pte = (hpa & ZPCI_PTE_ADDR_MASK) | ZPCI_PTE_VALID |
		      (flags & ZPCI_TABLE_PROTECTED);
	WRITE_ONCE(*ptep, pte);
}

/*
 * Remove the host entry @px of @seg, for DMA address @iova, if its record
 * is valid. The caller counts the record. Returns true if it was valid.
 */
static __always_inline bool s390_kvm_host_unset(struct s390_kvm_seg *seg,
						unsigned int px, u64 iova,
						struct s390_kvm_changes *c)
{
	if (!seg->gpa[px])
		return false;
	seg->gpa[px] = 0;
	if (seg->pto && !(READ_ONCE(seg->pto[px]) & ZPCI_PTE_INVALID)) {
		s390_kvm_pte_store(&seg->pto[px], 0, ZPCI_PTE_INVALID);
		s390_kvm_changed(c, iova, true);
	}
	return true;
}

/* Remove the host entry @px of @seg, for DMA address @iova, if valid */
static bool s390_kvm_host_clear(struct s390_kvm_domain *skd,
				struct s390_kvm_seg *seg, unsigned int px,
				u64 iova, struct s390_kvm_changes *c)
{
	if (!s390_kvm_host_unset(seg, px, iova, c))
		return false;
	seg->nr--;
	skd->nr_mapped--;
	return true;
}

/* Forget every vCPU's split refresh */
static void s390_kvm_resume_clear(struct s390_kvm_domain *skd)
{
	struct s390_kvm_resume *r;
	unsigned long index;

	xa_for_each(&skd->resume, index, r) {
		xa_erase(&skd->resume, index);
		kfree(r);
	}
}

/**
 * s390_kvm_host_clear_range() - Remove host entries
 * @skd: the domain
 * @first: first DMA address
 * @last: last DMA address
 * @gfirst: only entries whose guest frame is in [@gfirst, @glast]
 * @glast: see @gfirst
 * @c: what changed, for the refresh
 * @cost: with a budget, the sync's cost so far; NULL for none
 * @n: how many entries were removed is added here
 * @stop: with a budget, where to continue if it ran out
 *
 * Records left empty are freed. Without a budget it yields the CPU between
 * segments.
 *
 * Return: true if the budget ran out first.
 */
static bool s390_kvm_host_clear_range(struct s390_kvm_domain *skd, u64 first,
				      u64 last, u64 gfirst, u64 glast,
				      struct s390_kvm_changes *c,
				      unsigned int *cost, u64 *n, u64 *stop)
{
	struct s390_kvm_seg *seg;
	unsigned long index;

	xa_for_each_range(&skd->segs, index, seg, first >> ZPCI_ST_SHIFT,
			  last >> ZPCI_ST_SHIFT) {
		u64 base = (u64)index << ZPCI_ST_SHIFT, iova, gpa;
		unsigned int px;

		if (cost) {
			if (*cost >= S390_KVM_SYNC_BUDGET) {
				*stop = max(base, first);
				return true;
			}
			*cost += ZPCI_PT_ENTRIES;
		} else {
			cond_resched();
		}
		for (px = 0; px < ZPCI_PT_ENTRIES && seg->nr; px++) {
			iova = base + ((u64)px << PAGE_SHIFT);
			gpa = seg->gpa[px] & ~S390_KVM_GPA_VALID;
			if (iova < first || iova > last || !seg->gpa[px] ||
			    gpa < gfirst || gpa > glast)
				continue;
			*n += s390_kvm_host_clear(skd, seg, px, iova, c);
		}
		if (!seg->nr) {
			xa_erase(&skd->segs, index);
			if (skd->seg_hint == seg)
				skd->seg_hint = NULL;
			kfree(seg);
		}
	}
	return false;
}

/*
 * Refresh after removing entries the guest did not ask to remove: a
 * function that keeps translations the host no longer has is a leak into
 * memory that may be unpinned next, so say so, and put the function in the
 * error state for the guest.
 */
static void s390_kvm_refresh_removed(struct s390_kvm_domain *skd,
				     struct s390_kvm_changes *c)
{
	int ret = s390_kvm_refresh(skd, c);

	if (!ret)
		return;
	dev_warn_ratelimited(skd->dev,
			     "KVM-backed domain: refresh after removal failed: %d\n",
			     ret);
	skd->stats.errors++;
	skd->error = true;
}

/* Block all DMA: remove every host entry and refresh everything */
static void s390_kvm_host_clear_all(struct s390_kvm_domain *skd)
{
	struct s390_kvm_changes c = { .first = U64_MAX };
	u64 n = 0;

	s390_kvm_host_clear_range(skd, 0, U64_MAX, 0, U64_MAX, &c, NULL, &n,
				  NULL);
	s390_kvm_refresh_removed(skd, &c);
}

/* The function goes to the error state: no DMA until a new registration */
static int s390_kvm_error(struct s390_kvm_domain *skd, int err)
{
	skd->error = true;
	skd->stats.errors++;
	s390_kvm_resume_clear(skd);
	s390_kvm_host_clear_all(skd);
	return err;
}

/*
 * The parent's page table for the guest segment of @gpa, which is inside
 * the parent's aperture, or NULL if the parent has none there (yet).
 */
static unsigned long *s390_kvm_parent_pto(struct s390_kvm_domain *skd,
					  u64 gpa)
{
	u64 seg = (gpa >> ZPCI_ST_SHIFT) + 1;
	struct s390_kvm_pcache *pc = &skd->pcache[seg % S390_KVM_PCACHE];
	unsigned long *ptep;

	/* The parent's tables stay until it is freed; only entries change */
	if (pc->seg == seg)
		return pc->pto;
	ptep = dma_lookup_cpu_trans(skd->parent, gpa);
	if (!ptep)
		return NULL;
	pc->pto = ptep - s390_kvm_px(gpa);
	pc->seg = seg;
	return pc->pto;
}

/**
 * struct s390_kvm_prun - The parent's translation of a run of guest frames
 * @start: the parent's aperture, read once for the run
 * @end: its last address
 * @seg: guest segment number + 1 of @pto; 0: none
 * @pto: the parent's page table for that segment, kept for the run (no
 *       longer than the domain lock is held): the parent's tables stay
 *       until it is freed, so a run of frames in one guest segment costs
 *       one lookup and a read of each frame's entry
 */
struct s390_kvm_prun {
	u64 start;
	u64 end;
	u64 seg;
	const unsigned long *pto;
};

static __always_inline void s390_kvm_prun_init(struct s390_kvm_domain *skd,
					       struct s390_kvm_prun *r)
{
	r->start = skd->parent->domain.geometry.aperture_start;
	r->end = skd->parent->domain.geometry.aperture_end;
	r->seg = 0;
	r->pto = NULL;
}

/*
 * Translate guest frame @gpa through the parent, for run @r. Returns the
 * host frame, or 0 if the parent does not map it; *@prot is set if the
 * parent maps it read-only.
 */
static __always_inline phys_addr_t
s390_kvm_prun_frame(struct s390_kvm_domain *skd, struct s390_kvm_prun *r,
		    u64 gpa, bool *prot)
{
	u64 seg = (gpa >> ZPCI_ST_SHIFT) + 1;
	unsigned long pte;

	/* Beyond the parent's table an index would wrap: never look there */
	if (gpa < r->start || gpa > r->end)
		return 0;
	if (r->seg != seg) {
		r->pto = s390_kvm_parent_pto(skd, gpa);
		if (!r->pto) {
			/* The parent may make it later: look again next time */
			r->seg = 0;
			return 0;
		}
		r->seg = seg;
	}
	pte = READ_ONCE(r->pto[s390_kvm_px(gpa)]);
	if (pte & ZPCI_PTE_INVALID)
		return 0;
	*prot = pte & ZPCI_TABLE_PROT_MASK;
	return pte & ZPCI_PTE_ADDR_MASK;
}

/* s390_kvm_prun_frame() for one frame */
static phys_addr_t s390_kvm_parent_frame(struct s390_kvm_domain *skd, u64 gpa,
					 bool *prot)
{
	struct s390_kvm_prun r;

	s390_kvm_prun_init(skd, &r);
	return s390_kvm_prun_frame(skd, &r, gpa, prot);
}

/* s390_kvm_guest_table() for a page the walk did not read last */
static const u64 *s390_kvm_guest_table_fill(struct s390_kvm_domain *skd,
					    u64 gpa, unsigned int slot)
{
	struct s390_kvm_tcache *tc = &skd->tcache[slot];
	phys_addr_t hpa;
	bool prot;

	hpa = s390_kvm_parent_frame(skd, gpa & PAGE_MASK, &prot);
	if (!hpa || !pfn_valid(PHYS_PFN(hpa)))
		return NULL;
	tc->va = phys_to_virt(hpa);
	tc->gfn = (gpa >> PAGE_SHIFT) + 1;
	return tc->va + offset_in_page(gpa) / sizeof(u64);
}

/*
 * The guest's table memory at guest physical @gpa (8-byte aligned), through
 * the parent, or NULL if the parent does not map it or it is not RAM. The
 * parent is this driver's own domain, so its table is walked directly: this
 * is iommu_kvm_parent_read() without the copy. The address stays valid
 * while the domain lock is held: iommufd reports a parent unmap, which
 * takes that lock, before it unpins the pages. @slot is the level's place
 * in skd->tcache.
 */
static __always_inline const u64 *
s390_kvm_guest_table(struct s390_kvm_domain *skd, u64 gpa, unsigned int slot)
{
	const struct s390_kvm_tcache *tc = &skd->tcache[slot];

	if (tc->gfn == (gpa >> PAGE_SHIFT) + 1)
		return tc->va + offset_in_page(gpa) / sizeof(u64);
	return s390_kvm_guest_table_fill(skd, gpa, slot);
}

/* The slow path of s390_kvm_seg(): not the record it found last */
static struct s390_kvm_seg *s390_kvm_seg_find(struct s390_kvm_domain *skd,
					      unsigned long index, bool make)
{
	struct s390_kvm_seg *seg;

	seg = xa_load(&skd->segs, index);
	if (!seg && make) {
		seg = kzalloc_obj(*seg, GFP_KERNEL_ACCOUNT);
		if (!seg)
			return NULL;
		if (xa_err(xa_store(&skd->segs, index, seg,
				    GFP_KERNEL_ACCOUNT))) {
			kfree(seg);
			return NULL;
		}
	}
	if (seg) {
		skd->seg_hint = seg;
		skd->seg_hint_index = index;
	}
	return seg;
}

/* The segment record of @iova, made if @make */
static __always_inline struct s390_kvm_seg *
s390_kvm_seg(struct s390_kvm_domain *skd, u64 iova, bool make)
{
	unsigned long index = iova >> ZPCI_ST_SHIFT;

	/* Refreshes come in runs of the same few segments */
	if (skd->seg_hint && skd->seg_hint_index == index)
		return skd->seg_hint;
	return s390_kvm_seg_find(skd, index, make);
}

/**
 * struct s390_kvm_tally - What the sync of one segment did so far
 * @new: for &struct s390_kvm_stats
 * @replaced: see @new
 * @unchanged: see @new
 * @invalidated: see @new; also the segment's records that were removed
 * @added: the segment's records that were made valid
 *
 * Counted locally (in registers where the compiler can), not in the
 * domain, and added to it once at the end of the segment, also when the
 * sync stops at an error there: nothing reads the domain's counters in
 * between, as the domain lock is held throughout.
 */
struct s390_kvm_tally {
	unsigned int new;
	unsigned int replaced;
	unsigned int unchanged;
	unsigned int invalidated;
	unsigned int added;
};

/* Add @t to the domain and to segment record @seg (NULL if none) */
static __always_inline void s390_kvm_tally_add(struct s390_kvm_domain *skd,
					       struct s390_kvm_seg *seg,
					       const struct s390_kvm_tally *t)
{
	if (seg)
		seg->nr = seg->nr + t->added - t->invalidated;
	skd->nr_mapped = skd->nr_mapped + t->added - t->invalidated;
	skd->stats.new += t->new;
	skd->stats.replaced += t->replaced;
	skd->stats.unchanged += t->unchanged;
	skd->stats.invalidated += t->invalidated;
}

/*
 * Make the host entry @px of @seg, for DMA address @iova, map guest frame
 * @gpa, if the parent maps it (run @r); counted in @t, changes in @c.
 */
static __always_inline int s390_kvm_host_set(struct s390_kvm_domain *skd,
					     struct s390_kvm_seg *seg,
					     unsigned int px, u64 iova,
					     u64 gpa, bool prot,
					     struct s390_kvm_prun *r,
					     struct s390_kvm_tally *t,
					     struct s390_kvm_changes *c)
{
	bool parent_prot = false;
	unsigned long *ptep, old;
	phys_addr_t hpa;
	int flags;

	hpa = s390_kvm_prun_frame(skd, r, gpa, &parent_prot);
	if (!hpa)
		return -EFAULT;
	prot |= parent_prot;
	flags = ZPCI_PTE_VALID | (prot ? ZPCI_TABLE_PROTECTED : 0);

	if (!seg->pto) {
		ptep = dma_walk_cpu_trans(&skd->host, iova, GFP_KERNEL_ACCOUNT);
		if (!ptep)
			return -ENOMEM;
		seg->pto = ptep - px;
	}
	ptep = &seg->pto[px];
	old = READ_ONCE(*ptep);
	/* Known before the entry is valid: a parent unmap must find it */
	if (!seg->gpa[px])
		t->added++;
	seg->gpa[px] = gpa | S390_KVM_GPA_VALID;
	if (old & ZPCI_PTE_INVALID) {
		t->new++;
		s390_kvm_changed(c, iova, false);
		s390_kvm_pte_store(ptep, hpa, flags);
	} else if ((old & ZPCI_PTE_ADDR_MASK) == hpa &&
		   !(old & ZPCI_TABLE_PROT_MASK) == !prot) {
		/* Unchanged, or only the guest address behind it (an alias) */
		t->unchanged++;
	} else {
		/* Never invalid on the way: DMA in flight sees old or new */
		t->replaced++;
		s390_kvm_changed(c, iova, true);
		dma_replace_cpu_trans(ptep, hpa, flags);
	}
	return 0;
}

/* log2 of the bytes one entry of a table of @level covers */
static unsigned int s390_kvm_shift(int level)
{
	static const unsigned int shift[] = {
		[S390_KVM_ST] = ZPCI_ST_SHIFT, [S390_KVM_RT] = ZPCI_RT_SHIFT,
		[S390_KVM_RS] = ZPCI_RS_SHIFT, [S390_KVM_RF] = ZPCI_RF_SHIFT,
	};

	return shift[level];
}

/* Index of @iova in a table of level @level */
static unsigned int s390_kvm_index(u64 iova, int level)
{
	return (iova >> s390_kvm_shift(level)) & ZPCI_INDEX_MASK;
}

/* Bytes one entry of a table of @level covers */
static u64 s390_kvm_entry_span(int level)
{
	return 1ULL << s390_kvm_shift(level);
}

/*
 * The level of the table an IOTA designates, or -EINVAL. Only translation
 * through tables is shadowed (not direct addressing), and only with the
 * translation bit set.
 */
static int s390_kvm_iota_level(u64 iota)
{
	unsigned int dt = (iota & S390_KVM_IOTA_DT_MASK) >> 2;

	if (!(iota & ZPCI_IOTA_IOT_ENABLED))
		return -EINVAL;
	switch (dt) {
	case ZPCI_IOTA_STO:
		return S390_KVM_ST;
	case ZPCI_IOTA_RTTO:
		return S390_KVM_RT;
	case ZPCI_IOTA_RSTO:
		return S390_KVM_RS;
	case ZPCI_IOTA_RFTO:
		return S390_KVM_RF;
	default:
		return -EINVAL;
	}
}

/* The DMA addresses the table an IOTA designates can translate: 0..reach */
static u64 s390_kvm_iota_reach(int level)
{
	return level == S390_KVM_RF ? U64_MAX :
	       s390_kvm_entry_span(level) * ZPCI_TABLE_ENTRIES - 1;
}

/* Where the walk for one DMA address ended */
struct s390_kvm_walk {
	u64 pt;		/* guest physical origin of the page table */
	bool frame;	/* the segment entry maps a 1 MiB frame at @pt */
	bool prot;	/* an upper level (or the IOTA) is protected */
	u64 invalid_last; /* != 0: invalid up to here, no page table */
};

/*
 * Walk the guest's upper levels for @iova, down to the page table. Every
 * entry is read once through the parent; nothing is followed twice, and
 * the depth is fixed by the IOTA, so tables that point at themselves or
 * at each other cannot make the walk loop.
 */
static int s390_kvm_walk_upper(struct s390_kvm_domain *skd, u64 iova,
			       struct s390_kvm_walk *w, unsigned int *cost)
{
	int level = s390_kvm_iota_level(skd->iota);
	u64 table = skd->iota & ZPCI_RTE_ADDR_MASK;
	const u64 *tp;
	u64 entry;

	w->prot = skd->iota & ZPCI_TABLE_PROT_MASK;
	w->invalid_last = 0;
	w->frame = false;
	for (; level >= S390_KVM_ST; level--) {
		unsigned int idx = s390_kvm_index(iova, level);
		u64 span = s390_kvm_entry_span(level);

		(*cost)++;
		tp = s390_kvm_guest_table(skd, table + idx * 8, level + 1);
		if (!tp)
			return -EFAULT;
		entry = READ_ONCE(*tp);
		/* An all-zero entry is no entry (QEMU: invalid entry) */
		if (!entry)
			return -EINVAL;
		if (entry & ZPCI_TABLE_VALID_MASK) {
			/* Invalid: nothing under this entry is mapped */
			w->invalid_last = (iova | (span - 1));
			return 0;
		}
		if ((entry & ZPCI_TABLE_TYPE_MASK) != level << 2)
			return -EINVAL;
		if (entry & ZPCI_TABLE_PROT_MASK)
			w->prot = true;
		if (level == S390_KVM_ST) {
			if (entry & S390_KVM_STE_FC) {
				w->frame = true;
				w->pt = entry & S390_KVM_SFAA_MASK;
			} else {
				w->pt = entry & ZPCI_STE_ADDR_MASK;
			}
			return 0;
		}
		/*
		 * A region entry designates the next table: its length
		 * (the last quarter of it that exists) and offset (the
		 * first) bound the next level's index.
		 */
		if ((entry & ZPCI_TABLE_OFFSET_MASK) >> 6 >
		    (entry & ZPCI_TABLE_LEN_RTX))
			return -EINVAL;
		idx = s390_kvm_index(iova, level - 1) >> 9;
		if (idx < (entry & ZPCI_TABLE_OFFSET_MASK) >> 6 ||
		    idx > (entry & ZPCI_TABLE_LEN_RTX))
			return -EINVAL;
		table = entry & ZPCI_RTE_ADDR_MASK;
	}
	return -EINVAL;
}

/*
 * Shadow [@iova, @last] (in one segment) from the page table or 1 MiB frame
 * the walk found.
 */
static int s390_kvm_sync_segment(struct s390_kvm_domain *skd, u64 iova,
				 u64 last, struct s390_kvm_walk *w,
				 struct s390_kvm_changes *c)
{
	unsigned int px = s390_kvm_px(iova), end = s390_kvm_px(last);
	struct s390_kvm_seg *seg = s390_kvm_seg(skd, iova, false);
	struct s390_kvm_tally t = {};
	bool frame = w->frame, prot = w->prot;
	const u64 *table = NULL;
	struct s390_kvm_prun r;
	u64 pt = w->pt;
	int ret = 0;

	/* A page table is 2K aligned, so it is in one page of the parent */
	if (!frame) {
		table = s390_kvm_guest_table(skd, pt, 0);
		if (!table)
			return -EFAULT;
	}
	s390_kvm_prun_init(skd, &r);
	for (; px <= end; px++, iova += PAGE_SIZE) {
		u64 pte, gpa;

		if (frame) {
			gpa = pt + ((u64)px << PAGE_SHIFT);
			pte = gpa;
		} else {
			/* Each entry is read once, and used as read */
			pte = READ_ONCE(table[px]);
			if (!pte) {
				ret = -EINVAL;
				break;
			}
			gpa = pte & ZPCI_PTE_ADDR_MASK;
		}
		if (pte & ZPCI_PTE_INVALID) {
			if (seg && s390_kvm_host_unset(seg, px, iova, c))
				t.invalidated++;
			continue;
		}
		if (!seg) {
			seg = s390_kvm_seg(skd, iova, true);
			if (!seg) {
				ret = -ENOMEM;
				break;
			}
		}
		ret = s390_kvm_host_set(skd, seg, px, iova, gpa,
					prot || (pte & ZPCI_TABLE_PROT_MASK),
					&r, &t, c);
		if (ret)
			break;
	}
	/* Also after an error: clearing for the error state relies on seg->nr */
	s390_kvm_tally_add(skd, seg, &t);
	return ret;
}

/* Where @vcpu_idx's refresh of [@iova, @iova + @size) continues, or @first */
static u64 s390_kvm_resume_at(struct s390_kvm_domain *skd,
			      unsigned int vcpu_idx, u64 iova, u64 size,
			      u64 first, u64 last)
{
	struct s390_kvm_resume *r;
	u64 next = first;

	/* Nearly always: no refresh was split */
	if (xa_empty(&skd->resume))
		return first;
	r = xa_erase(&skd->resume, vcpu_idx);
	if (r && r->iova == iova && r->size == size && r->next > first &&
	    r->next <= last)
		next = r->next;
	kfree(r);
	return next;
}

/* Save where @vcpu_idx's refresh continues: -EAGAIN, or -ENOMEM */
static int s390_kvm_resume_save(struct s390_kvm_domain *skd,
				unsigned int vcpu_idx, u64 iova, u64 size,
				u64 next)
{
	struct s390_kvm_resume *r;

	r = kzalloc_obj(*r, GFP_KERNEL_ACCOUNT);
	if (!r)
		return -ENOMEM;
	r->iova = iova;
	r->size = size;
	r->next = next;
	if (xa_err(xa_store(&skd->resume, vcpu_idx, r, GFP_KERNEL_ACCOUNT))) {
		kfree(r);
		return -ENOMEM;
	}
	skd->stats.splits++;
	return -EAGAIN;
}

/*
 * Shadow [@cur, @last]. Returns 0 or an error; with -EAGAIN (the budget ran
 * out) *@next is where to continue.
 */
static int s390_kvm_sync_range(struct s390_kvm_domain *skd, u64 cur, u64 last,
			       struct s390_kvm_changes *c, u64 *next)
{
	unsigned int cost = 0;
	int ret;

	while (cur <= last) {
		struct s390_kvm_walk w;
		u64 seg_last = cur | (s390_kvm_entry_span(S390_KVM_ST) - 1);

		if (cost >= S390_KVM_SYNC_BUDGET) {
			*next = cur;
			return -EAGAIN;
		}
		ret = s390_kvm_walk_upper(skd, cur, &w, &cost);
		if (ret)
			return ret;
		if (w.invalid_last) {
			u64 end = min(w.invalid_last, last);

			if (s390_kvm_host_clear_range(skd, cur, end, 0, U64_MAX,
						      c, &cost,
						      &skd->stats.invalidated,
						      next))
				return -EAGAIN;
			if (end == U64_MAX)
				return 0;
			cur = end + 1;
			continue;
		}
		seg_last = min(seg_last, last);
		ret = s390_kvm_sync_segment(skd, cur, seg_last, &w, c);
		if (ret)
			return ret;
		cost += (seg_last - cur) >> PAGE_SHIFT;
		if (seg_last == U64_MAX)
			return 0;
		cur = seg_last + 1;
	}
	return 0;
}

/**
 * s390_kvm_sync() - ops->sync: shadow the guest's refresh of a range
 * @kdom: the domain
 * @vcpu_idx: the vCPU that refreshed
 * @iova: first DMA address the guest refreshed
 * @size: bytes refreshed; 0 for everything the guest registered
 *
 * Return: 0; -EAGAIN if the budget ran out first (the same vCPU calls again
 * with the same range to continue); -EIO if the function is in the error
 * state, or the host refresh failed (the function then is); -EINVAL (no
 * table registered, a range outside it, a bad table) or -EFAULT (a table
 * or frame outside guest memory), after which the function is in the error
 * state; -ENOMEM if the host table could not grow or the function is out
 * of resources.
 */
static int s390_kvm_sync(struct iommu_kvm_domain *kdom, unsigned int vcpu_idx,
			 u64 iova, u64 size)
{
	struct s390_kvm_domain *skd = to_s390_kvm_domain(kdom);
	struct s390_kvm_changes c = { .first = U64_MAX };
	u64 first, last, cur, next = 0;
	int ret, rc;

	if (skd->error)
		return -EIO;
	if (!skd->iota)
		return s390_kvm_error(skd, -EINVAL);
	if (!size) {
		first = skd->pba;
		last = skd->pal;
	} else {
		if (check_add_overflow(iova, size - 1, &last) ||
		    last < skd->pba || iova > skd->pal)
			return s390_kvm_error(skd, -EINVAL);
		/* Only what the guest registered is ever shadowed */
		first = max(iova, skd->pba);
		last = min(last, skd->pal);
	}
	first &= PAGE_MASK;

	cur = s390_kvm_resume_at(skd, vcpu_idx, iova, size, first, last);
	ret = s390_kvm_sync_range(skd, cur, last, &c, &next);
	if (ret == -EINVAL || ret == -EFAULT)
		return s390_kvm_error(skd, ret);
	/* What was done stays done; refresh it even if the rest failed */
	rc = s390_kvm_refresh(skd, &c);
	if (rc == -EIO)
		return s390_kvm_error(skd, -EIO);
	if (rc)
		return rc;
	if (ret == -EAGAIN)
		return s390_kvm_resume_save(skd, vcpu_idx, iova, size, next);
	return ret;
}

/*
 * Check an IOTA and range the guest registers against what the function
 * and the host table can do.
 */
static int s390_kvm_check_ioat(struct s390_kvm_domain *skd, u64 iota, u64 pba,
			       u64 pal)
{
	int level = s390_kvm_iota_level(iota);

	if (level < 0)
		return -EINVAL;
	/* A region table is 16K, a segment table too */
	if (iota & ~ZPCI_RTE_ADDR_MASK & ~S390_KVM_IOTA_FLAGS)
		return -EINVAL;
	if (pba & ~PAGE_MASK || (pal & ~PAGE_MASK) != ~PAGE_MASK || pba > pal)
		return -EINVAL;
	/* Inside the function's DMA range, which the host table covers */
	if (pba < skd->start_dma || pal > skd->end_dma ||
	    pal > skd->kdom.domain.geometry.aperture_end ||
	    pal > s390_kvm_iota_reach(level))
		return -EINVAL;
	return 0;
}

/**
 * s390_kvm_set_table() - ops->set_table: the guest (de)registered its table
 * @kdom: the domain
 * @iota: the IOTA, or 0 to deregister
 * @pba: first DMA address
 * @pal: last DMA address
 *
 * Registering over a registration is out of sequence, except in the error
 * state: a guest that recovers its function re-enables it (which the VMM
 * handles) and registers again, and that ends the error state.
 *
 * Return: 0, -EBUSY out of sequence, -EINVAL for an IOTA or range the
 * function cannot use.
 */
static int s390_kvm_set_table(struct iommu_kvm_domain *kdom, u64 iota, u64 pba,
			      u64 pal)
{
	struct s390_kvm_domain *skd = to_s390_kvm_domain(kdom);
	int ret;

	if (!iota) {
		if (!skd->iota)
			return -EBUSY;
		s390_kvm_host_clear_all(skd);
		skd->iota = 0;
		skd->pba = 0;
		skd->pal = 0;
		skd->initial_sync = false;
		s390_kvm_resume_clear(skd);
		return 0;
	}
	if (skd->iota && !skd->error)
		return -EBUSY;
	ret = s390_kvm_check_ioat(skd, iota, pba, pal);
	if (ret)
		return ret;
	s390_kvm_host_clear_all(skd);
	skd->iota = iota;
	skd->pba = pba;
	skd->pal = pal;
	skd->error = false;
	skd->initial_sync = false;
	s390_kvm_resume_clear(skd);
	return 0;
}

/* ops->invalidate: the parent unmapped guest physical [@start, @last] */
static void s390_kvm_invalidate(struct iommu_kvm_domain *kdom, u64 start,
				u64 last)
{
	struct s390_kvm_domain *skd = to_s390_kvm_domain(kdom);
	struct s390_kvm_changes c = { .first = U64_MAX };

	/* The parent may unpin what the walks remembered */
	memset(skd->tcache, 0, sizeof(skd->tcache));
	s390_kvm_host_clear_range(skd, 0, U64_MAX, start, last, &c, NULL,
				  &skd->stats.dropped, NULL);
	s390_kvm_refresh_removed(skd, &c);
}

/* ops->block: the VM is gone */
static void s390_kvm_block(struct iommu_kvm_domain *kdom)
{
	s390_kvm_host_clear_all(to_s390_kvm_domain(kdom));
}

static void s390_kvm_debugfs_show(struct iommu_kvm_domain *kdom,
				  struct seq_file *s)
{
	struct s390_kvm_domain *skd = to_s390_kvm_domain(kdom);
	struct s390_kvm_stats *st = &skd->stats;
	struct zpci_dev *zdev;
	bool attached = false;

	seq_printf(s, "  fh=0x%08x iota=0x%llx pba=0x%llx pal=0x%llx error=%d\n",
		   skd->fh, skd->iota, skd->pba, skd->pal, skd->error);
	seq_printf(s, "  new=%llu replaced=%llu invalidated=%llu unchanged=%llu dropped=%llu refreshes=%llu errors=%llu splits=%llu\n",
		   st->new, st->replaced, st->invalidated, st->unchanged,
		   st->dropped, st->refreshes, st->errors, st->splits);
	rcu_read_lock();
	list_for_each_entry_rcu(zdev, &skd->host.devices, iommu_list)
		attached |= zdev == skd->zdev;
	rcu_read_unlock();
	if (attached)
		seq_printf(s, "  dev %s\n", dev_name(skd->dev));
}

static const struct iommu_kvm_domain_ops s390_kvm_ops = {
	.name = "s390-iommu",
	.invalidate = s390_kvm_invalidate,
	.block = s390_kvm_block,
	.sync = s390_kvm_sync,
	.set_table = s390_kvm_set_table,
	.debugfs_show = s390_kvm_debugfs_show,
};

/*
 * A domain made with the guest's IOTA (the VMM hands the function over
 * with a table the guest already uses) shadows all of it before the
 * function translates through it, so that what the guest mapped and
 * refreshed before stays mapped. Here, not at allocation: only now are
 * parent unmaps reported to the domain, and they wait for its lock. The
 * work is not bounded by the guest, so it yields the CPU and stops for a
 * fatal signal. A bad table puts the function in the error state, as the
 * guest's next refresh would have.
 */
static int s390_kvm_initial_sync(struct s390_kvm_domain *skd)
{
	struct s390_kvm_changes c = { .first = U64_MAX };
	u64 cur = skd->pba, next = 0;
	int ret;

	if (!skd->initial_sync || skd->error)
		return 0;
	do {
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
		ret = s390_kvm_sync_range(skd, cur, skd->pal, &c, &next);
		cur = next;
	} while (ret == -EAGAIN);
	if (ret == -EINVAL || ret == -EFAULT)
		ret = s390_kvm_error(skd, 0);
	if (ret)
		return ret;
	/* Nothing to refresh: the function is not attached yet */
	skd->initial_sync = false;
	return 0;
}

static int s390_kvm_attach_dev(struct iommu_domain *domain, struct device *dev,
			       struct iommu_domain *old)
{
	struct iommu_kvm_domain *kdom = to_iommu_kvm_domain(domain);
	struct s390_kvm_domain *skd = to_s390_kvm_domain(kdom);
	int ret;

	/*
	 * The guest's table belongs to one function, and the host table
	 * was set up for its aperture.
	 */
	if (dev != skd->dev) {
		dev_err(dev, "s390 KVM-backed domain: not the function it was made for\n");
		return -EINVAL;
	}
	iommu_kvm_domain_lock(kdom);
	ret = s390_kvm_initial_sync(skd);
	if (!ret)
		ret = s390_iommu_attach_device(&skd->host.domain, dev, old);
	iommu_kvm_domain_unlock(kdom);
	return ret;
}

static phys_addr_t s390_kvm_iova_to_phys(struct iommu_domain *domain,
					 dma_addr_t iova)
{
	struct s390_kvm_domain *skd =
		to_s390_kvm_domain(to_iommu_kvm_domain(domain));

	return s390_iommu_iova_to_phys(&skd->host.domain, iova);
}

static void s390_kvm_free_segs(struct s390_kvm_domain *skd)
{
	struct s390_kvm_seg *seg;
	unsigned long index;

	xa_for_each(&skd->segs, index, seg)
		kfree(seg);
	xa_destroy(&skd->segs);
	skd->seg_hint = NULL;
}

static void s390_kvm_rcu_free(struct rcu_head *head)
{
	struct s390_kvm_domain *skd =
		container_of(head, struct s390_kvm_domain, host.rcu);

	dma_cleanup_tables(&skd->host);
	put_device(skd->dev);
	kfree(skd);
}

static void s390_kvm_domain_free(struct iommu_domain *domain)
{
	struct s390_kvm_domain *skd =
		to_s390_kvm_domain(to_iommu_kvm_domain(domain));

	/* Stops syncs and notifications before anything goes */
	iommu_kvm_domain_deinit(&skd->kdom);
	WARN_ON(!list_empty(&skd->host.devices));
	s390_kvm_free_segs(skd);
	s390_kvm_resume_clear(skd);
	xa_destroy(&skd->resume);
	/* Refreshes walk the device list under RCU */
	call_rcu(&skd->host.rcu, s390_kvm_rcu_free);
}

static const struct iommu_domain_ops s390_kvm_domain_ops = {
	.attach_dev = s390_kvm_attach_dev,
	.iova_to_phys = s390_kvm_iova_to_phys,
	.free = s390_kvm_domain_free,
};

/* iommu_ops->kvm_formats */
u64 s390_kvm_formats(struct device *dev, u64 *shadow_formats)
{
	u64 formats = BIT_ULL(IOMMU_HWPT_KVM_FORMAT_S390_ZPCI);

	if (!dev_is_pci(dev) || !to_zpci_dev(dev)) {
		*shadow_formats = 0;
		return 0;
	}
	*shadow_formats = formats;
	return formats;
}

/* iommu_ops->domain_alloc_kvm */
struct iommu_domain *
s390_kvm_domain_alloc(struct device *dev,
		      const struct iommu_kvm_domain_cfg *cfg)
{
	struct iommu_hwpt_kvm_s390 data;
	struct s390_kvm_domain *skd;
	struct zpci_dev *zdev;
	int ret;

	zdev = dev_is_pci(dev) ? to_zpci_dev(dev) : NULL;
	if (!zdev)
		return ERR_PTR(-ENODEV);
	if (cfg->format != IOMMU_HWPT_KVM_FORMAT_S390_ZPCI || !cfg->parent)
		return ERR_PTR(-EOPNOTSUPP);
	/* The function handle is not optional */
	if (!cfg->user_data)
		return ERR_PTR(-EINVAL);
	ret = iommu_copy_struct_from_user(&data, cfg->user_data,
					  IOMMU_HWPT_KVM_DATA_S390, pal);
	if (ret)
		return ERR_PTR(ret);
	if (data.flags || (!data.iota && (data.pba || data.pal)))
		return ERR_PTR(-EINVAL);

	skd = kzalloc_obj(*skd, GFP_KERNEL_ACCOUNT);
	if (!skd)
		return ERR_PTR(-ENOMEM);
	ret = s390_domain_init(&skd->host, zdev);
	if (ret) {
		kfree(skd);
		return ERR_PTR(ret);
	}
	/* Never handed to the iommu core: the type says whose it is */
	skd->host.domain.type = IOMMU_DOMAIN_KVM;
	skd->zdev = zdev;
	skd->dev = get_device(dev);
	skd->start_dma = zdev->start_dma;
	skd->end_dma = zdev->end_dma;
	skd->parent = to_s390_domain(cfg->parent);
	/* The enable bit says nothing about which function it is */
	skd->fh = zpci_kvm_key(data.fh);
	xa_init(&skd->segs);
	xa_init(&skd->resume);
	/*
	 * The function never walks the parent: its reserved regions (below
	 * start_dma, above end_dma) are DMA addresses, kept out by pba..pal
	 * and the host table's aperture, not guest physical addresses.
	 */
	skd->kdom.resv_in_shadow = true;
	skd->kdom.domain.geometry = skd->host.domain.geometry;
	skd->kdom.domain.pgsize_bitmap = skd->host.domain.pgsize_bitmap;

	ret = iommu_kvm_domain_init(&skd->kdom, &s390_kvm_ops, cfg);
	if (ret)
		goto out_free;
	skd->kdom.domain.ops = &s390_kvm_domain_ops;

	if (data.iota) {
		ret = s390_kvm_check_ioat(skd, data.iota, data.pba, data.pal);
		if (ret)
			goto out_deinit;
		skd->iota = data.iota;
		skd->pba = data.pba;
		skd->pal = data.pal;
		skd->initial_sync = true;
	}
	ret = iommu_kvm_domain_set_sync_key(&skd->kdom, skd->fh);
	if (ret)
		goto out_deinit;
	return &skd->kdom.domain;

out_deinit:
	iommu_kvm_domain_deinit(&skd->kdom);
out_free:
	xa_destroy(&skd->segs);
	dma_cleanup_tables(&skd->host);
	put_device(skd->dev);
	kfree(skd);
	return ERR_PTR(ret);
}

#if IS_ENABLED(CONFIG_S390_IOMMU_KVM_DOMAIN_KUNIT_TEST)
#include "kvm_shadow_kunit.c"
#endif
