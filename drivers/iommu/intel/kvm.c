// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed domains on VT-d: the IOMMU walks KVM's own TDP table.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <kunit/static_stub.h>
#include <linux/bitops.h>
#include <linux/bits.h>
#include <linux/errno.h>
#include <linux/iommu_kvm.h>
#include <linux/kvm_iommu.h>
#include <linux/seq_file.h>

#include "iommu.h"
#include "kvm.h"
#include "pasid.h"

/**
 * DOC: Which KVM tables a VT-d unit can walk
 *
 * KVM describes the table it would share (struct kvm_iommu_tdp_format):
 * the entry format, the levels of the root, the largest leaf it may
 * install, and every bit it may set in a present entry besides the
 * address, its software bits included. intel_kvm_tdp_check() decides, from
 * the unit's capability registers alone, whether the unit walks such a
 * table as KVM means it, and names the first check that fails:
 *
 * - the x86-64 format (KVM on AMD NPT) needs scalable-mode first-stage
 *   translation; EPT (KVM on VMX) needs second-stage translation;
 * - the unit walks as many levels as the root has: a 5-level root on a
 *   4-level first stage (FL5LP=0) is refused, since the unit would take
 *   the root's entries for the next level's (the XSA-390 lesson), and for
 *   the second stage SAGAW must include the root's level;
 * - every leaf size KVM may use: FL1GP for 1 GiB first-stage leaves, SLLPS
 *   for 2 MiB and 1 GiB second-stage ones;
 * - no caching mode (CM) for the second stage: a unit that caches
 *   not-present second-stage entries needs a flush for every entry made
 *   present, and KVM flushes only what it clears or narrows; for the same
 *   reason, no unit that must have its write buffer flushed (RWBF) before
 *   it sees new entries;
 * - page walks that snoop (SMPWC in scalable mode, C otherwise), or KVM
 *   writing back each entry it changes (%KVM_IOMMU_TDP_WRITEBACK): KVM
 *   does not otherwise write back CPU caches after writing an SPTE;
 * - a first-stage DMA request without a PASID is a user request, so KVM
 *   must set U/S in every entry (%KVM_IOMMU_TDP_USER; AMD's GMET clears it
 *   in leaves);
 * - no bit KVM may set is one the unit treats as meaningful or reserved:
 *   each is checked by building the entries KVM would build and walking
 *   them as the unit does (intel_kvm_walk_entry()). The first stage ignores
 *   bits 9-11 and 52-62, so KVM's host- and MMU-writable bits and its
 *   MMU-present bit 11 pass; XD (bit 63) is refused unless the unit
 *   supports execute requests (ERS), as the driver's own first-stage
 *   tables never set it. In the second stage bit 11 is the snoop bit (SNP)
 *   of a leaf, reserved without snoop control (SC), and reserved in every
 *   other entry, as QEMU's model has it: KVM's MMU-present bit 11 makes
 *   every EPT table it builds today unwalkable by the second stage;
 * - MMIO SPTEs (%KVM_IOMMU_TDP_MMIO_SPTES) must fault, never translate:
 *   under NPT they are present entries whose marker (bit 51 with P) only
 *   faults where bit 51 is above the unit's host address width; under EPT
 *   they are write-execute misconfigurations, which a DMA write would take
 *   for a writable mapping of the GFN. Where they would translate, KVM
 *   must keep them out of the shared table (kvm.mmio_caching=0).
 */

/* x86-64 (first-stage) entries */
#define VTD_KVM_FS_P		BIT_ULL(0)
#define VTD_KVM_FS_RW		BIT_ULL(1)
#define VTD_KVM_FS_US		BIT_ULL(2)
#define VTD_KVM_FS_XD		BIT_ULL(63)
/* EPT (second-stage) entries */
#define VTD_KVM_SS_R		BIT_ULL(0)
#define VTD_KVM_SS_W		BIT_ULL(1)
#define VTD_KVM_SS_SNP		BIT_ULL(11)
#define VTD_KVM_SS_TM		BIT_ULL(62)
/* Both: a leaf above level 1 */
#define VTD_KVM_PS		BIT_ULL(7)

/* A bit of a leaf entry that is part of the address of a smaller page */
static u64 intel_kvm_large_offset(int level)
{
	return level > 1 ? GENMASK_ULL(12 + 9 * (level - 1) - 1, 13) : 0;
}

/* Address bits at and above the host address width are reserved */
static u64 intel_kvm_above_haw(unsigned int haw)
{
	return haw < 52 ? GENMASK_ULL(51, haw) : 0;
}

static enum intel_kvm_walk intel_kvm_fs_entry(u64 cap, u64 ecap,
					      unsigned int haw, int level,
					      bool leaf, bool write, u64 entry)
{
	u64 rsvd = intel_kvm_above_haw(haw);

	if (!(entry & VTD_KVM_FS_P))
		return INTEL_KVM_WALK_NOT_PRESENT;
	/* A request without a PASID is a user request */
	if (!(entry & VTD_KVM_FS_US) || (write && !(entry & VTD_KVM_FS_RW)))
		return INTEL_KVM_WALK_DENIED;
	if (level >= 4 || (leaf && level == 3 && !cap_fl1gp_support(cap)))
		rsvd |= VTD_KVM_PS;
	if (leaf)
		rsvd |= intel_kvm_large_offset(level);
	if (!ecap_ers(ecap))
		rsvd |= VTD_KVM_FS_XD;
	return entry & rsvd ? INTEL_KVM_WALK_RESERVED : INTEL_KVM_WALK_VALID;
}

static enum intel_kvm_walk intel_kvm_ss_entry(u64 cap, u64 ecap,
					      unsigned int haw, int level,
					      bool leaf, bool write, u64 entry)
{
	u64 rsvd = intel_kvm_above_haw(haw) | VTD_KVM_SS_TM;
	unsigned int sllps = cap_super_page_val(cap);

	if (!(entry & (VTD_KVM_SS_R | VTD_KVM_SS_W)))
		return INTEL_KVM_WALK_NOT_PRESENT;
	/* A write needs W, a read R: neither implies the other */
	if (!(entry & (write ? VTD_KVM_SS_W : VTD_KVM_SS_R)))
		return INTEL_KVM_WALK_DENIED;
	if (level >= 4 || (leaf && level == 3 && !(sllps & 2)) ||
	    (leaf && level == 2 && !(sllps & 1)))
		rsvd |= VTD_KVM_PS;
	if (!leaf || !ecap_sc_support(ecap))
		rsvd |= VTD_KVM_SS_SNP;
	if (leaf)
		rsvd |= intel_kvm_large_offset(level);
	return entry & rsvd ? INTEL_KVM_WALK_RESERVED : INTEL_KVM_WALK_VALID;
}

/**
 * intel_kvm_walk_entry() - How a VT-d unit takes one entry of a KVM table
 * @cap: the unit's capability register
 * @ecap: its extended capability register
 * @haw: its host address width, in bits
 * @type: enum kvm_iommu_tdp_type: first stage for x86-64, second for EPT
 * @level: the entry's level, 1 for the entries of the last table
 * @leaf: the entry maps memory (with PS set above level 1)
 * @write: a DMA write, else a read
 * @entry: the entry
 *
 * A DMA read or write through the entry, without a PASID, as the unit
 * checks it: present, then permissions, then reserved bits.
 *
 * Return: enum intel_kvm_walk.
 */
enum intel_kvm_walk intel_kvm_walk_entry(u64 cap, u64 ecap, unsigned int haw,
					 enum kvm_iommu_tdp_type type,
					 int level, bool leaf, bool write,
					 u64 entry)
{
	if (type == KVM_IOMMU_TDP_X86_64)
		return intel_kvm_fs_entry(cap, ecap, haw, level, leaf, write,
					  entry);
	return intel_kvm_ss_entry(cap, ecap, haw, level, leaf, write, entry);
}

/* Both a read and a write go through @entry */
static bool intel_kvm_entry_valid(u64 cap, u64 ecap, unsigned int haw,
				  enum kvm_iommu_tdp_type type, int level,
				  bool leaf, u64 entry)
{
	return intel_kvm_walk_entry(cap, ecap, haw, type, level, leaf, false,
				    entry) == INTEL_KVM_WALK_VALID &&
	       intel_kvm_walk_entry(cap, ecap, haw, type, level, leaf, true,
				    entry) == INTEL_KVM_WALK_VALID;
}

/* Neither a read nor a write goes through @entry */
static bool intel_kvm_entry_faults(u64 cap, u64 ecap, unsigned int haw,
				   enum kvm_iommu_tdp_type type, int level,
				   bool leaf, u64 entry)
{
	return intel_kvm_walk_entry(cap, ecap, haw, type, level, leaf, false,
				    entry) != INTEL_KVM_WALK_VALID &&
	       intel_kvm_walk_entry(cap, ecap, haw, type, level, leaf, true,
				    entry) != INTEL_KVM_WALK_VALID;
}

/* Record the failed check; returns -EOPNOTSUPP */
static int intel_kvm_refuse(struct intel_kvm_verdict *v, const char *why,
			    int level, u64 bits)
{
	v->why = why;
	v->level = level;
	v->bit = bits ? __ffs64(bits) : -1;
	return -EOPNOTSUPP;
}

/*
 * The bit of @entry that makes the walk fail, found by taking bits away:
 * the first whose removal makes it valid, or 0 if none alone does.
 */
static u64 intel_kvm_culprit(u64 cap, u64 ecap, unsigned int haw,
			     enum kvm_iommu_tdp_type type, int level,
			     bool leaf, u64 entry, u64 candidates)
{
	while (candidates) {
		u64 bit = BIT_ULL(__ffs64(candidates));

		if (intel_kvm_entry_valid(cap, ecap, haw, type, level, leaf,
					  entry & ~bit))
			return bit;
		candidates &= ~bit;
	}
	return 0;
}

/* Every entry KVM may build, walked as the unit walks it */
static int intel_kvm_check_entries(u64 cap, u64 ecap, unsigned int haw,
				   const struct kvm_iommu_tdp_format *fmt,
				   struct intel_kvm_verdict *v)
{
	bool fs = fmt->type == KVM_IOMMU_TDP_X86_64;
	u64 base = fs ? VTD_KVM_FS_P | VTD_KVM_FS_RW | VTD_KVM_FS_US :
			VTD_KVM_SS_R | VTD_KVM_SS_W;
	enum kvm_iommu_tdp_type type = fmt->type;
	u64 entry, bad;
	int level;

	for (level = 1; level <= fmt->levels; level++) {
		/* Tables exist at every level but the last */
		if (level > 1) {
			entry = base | fmt->table_bits;
			if (!intel_kvm_entry_valid(cap, ecap, haw, type, level,
						   false, entry)) {
				bad = intel_kvm_culprit(cap, ecap, haw, type,
							level, false, entry,
							fmt->table_bits);
				return intel_kvm_refuse(v,
					"KVM sets a bit in its table entries that this unit reserves or interprets",
					level, bad);
			}
		}
		if (level > fmt->max_leaf_level)
			continue;
		entry = base | fmt->leaf_bits | (level > 1 ? VTD_KVM_PS : 0);
		if (!intel_kvm_entry_valid(cap, ecap, haw, type, level, true,
					   entry)) {
			bad = intel_kvm_culprit(cap, ecap, haw, type, level,
						true, entry,
						fmt->leaf_bits | VTD_KVM_PS);
			return intel_kvm_refuse(v,
				"KVM sets a bit in its leaf entries that this unit reserves or interprets",
				level, bad);
		}
	}

	if (!(fmt->flags & KVM_IOMMU_TDP_MMIO_SPTES))
		return 0;
	for (level = 1; level <= min_t(int, fmt->levels, 3); level++) {
		if (!intel_kvm_entry_faults(cap, ecap, haw, type, level, true,
					    fmt->mmio_bits) ||
		    !intel_kvm_entry_faults(cap, ecap, haw, type, level, false,
					    fmt->mmio_bits))
			return intel_kvm_refuse(v,
				"KVM's MMIO SPTEs would translate DMA (use kvm.mmio_caching=0)",
				level, 0);
	}
	return 0;
}

/**
 * intel_kvm_tdp_check() - Can a VT-d unit walk a table KVM describes?
 * @cap: the unit's capability register
 * @ecap: its extended capability register
 * @haw: its host address width, in bits (the DMAR table's)
 * @fmt: the table, as KVM describes it
 * @verdict: the failed check, if any
 *
 * Decides from the registers alone; the driver calls it for every attach.
 * See the DOC block above for each check.
 *
 * Return: 0, -EINVAL for a description that makes no sense, or
 * -EOPNOTSUPP with @verdict naming the failed check.
 */
int intel_kvm_tdp_check(u64 cap, u64 ecap, unsigned int haw,
			const struct kvm_iommu_tdp_format *fmt,
			struct intel_kvm_verdict *verdict)
{
	bool sm = ecap_smts(ecap);

	*verdict = (struct intel_kvm_verdict){ .bit = -1 };
	if (fmt->levels < 4 || fmt->levels > 5 || !fmt->max_leaf_level ||
	    fmt->max_leaf_level > 3 || haw < 32 || haw > 52) {
		verdict->why = "malformed table description";
		return -EINVAL;
	}

	switch (fmt->type) {
	case KVM_IOMMU_TDP_X86_64:
		if (!sm || !ecap_flts(ecap))
			return intel_kvm_refuse(verdict,
				"no scalable-mode first-stage translation", 0,
				0);
		if (fmt->levels == 5 &&
		    (!cap_fl5lp_support(cap) || cap_mgaw(cap) < 57))
			return intel_kvm_refuse(verdict,
				"a 5-level root, and the first stage walks 4 levels (FL5LP=0)",
				5, 0);
		if (fmt->max_leaf_level == 3 && !cap_fl1gp_support(cap))
			return intel_kvm_refuse(verdict,
				"KVM may map 1 GiB leaves, and the first stage has none (FL1GP=0)",
				3, 0);
		if (!(fmt->flags & KVM_IOMMU_TDP_USER))
			return intel_kvm_refuse(verdict,
				"KVM clears U/S in its entries (GMET), which DMA without a PASID needs at every level",
				0, 0);
		break;
	case KVM_IOMMU_TDP_EPT:
		if (sm ? !ecap_slts(ecap) : !cap_sagaw(cap))
			return intel_kvm_refuse(verdict,
				"no second-stage translation", 0, 0);
		if (!(cap_sagaw(cap) & BIT(fmt->levels - 2)))
			return intel_kvm_refuse(verdict,
				"the second stage does not walk as many levels as the root has (SAGAW)",
				fmt->levels, 0);
		if (fmt->max_leaf_level > 1 &&
		    !(cap_super_page_val(cap) & BIT(fmt->max_leaf_level - 2)))
			return intel_kvm_refuse(verdict,
				"KVM may map leaves larger than the second stage has (SLLPS)",
				fmt->max_leaf_level, 0);
		/* Unlike the first stage's, its new entries need a flush */
		if (cap_caching_mode(cap))
			return intel_kvm_refuse(verdict,
				"the second stage caches not-present entries (CM=1), and KVM flushes only what it takes away",
				0, 0);
		break;
	default:
		verdict->why = "unknown table format";
		return -EINVAL;
	}
	if (cap_rwbf(cap))
		return intel_kvm_refuse(verdict,
			"the unit needs its write buffer flushed to see new entries (RWBF=1), and KVM flushes only what it takes away",
			0, 0);

	if (!(sm ? ecap_smpwc(ecap) : ecap_coherent(ecap)) &&
	    !(fmt->flags & KVM_IOMMU_TDP_WRITEBACK))
		return intel_kvm_refuse(verdict,
			"page walks do not snoop, and KVM does not write back its entries",
			0, 0);
	return intel_kvm_check_entries(cap, ecap, haw, fmt, verdict);
}

/**
 * DOC: The KVM-backed domain
 *
 * An IOMMU_HWPT_KVM_FORMAT_VTD_TDP domain translates with the table KVM
 * keeps for the VM's IOMMUs (kvm_iommu_tdp_get(), through the library's
 * iommu_kvm_tdp_get()): the domain never maps or unmaps anything itself.
 * It is the driver's own: &struct intel_kvm_domain embeds the library's
 * &struct iommu_kvm_domain, whose iommu_domain the iommu core and iommufd
 * see, and keeps a &struct dmar_domain that is never handed to them, for
 * what the rest of the driver does per domain: domain IDs per unit, the
 * device list and cache tags. Its ops tell cache.c which stage walks the
 * table: intel_kvm_domain_ops for the first, whose IOTLB entries are
 * flushed by PASID, intel_kvm_ss_domain_ops for the second.
 *
 * - KVM's table is the IOMMUs' alone, not a vCPU root, so its format need
 *   not be that of the vCPUs' paging: KVM builds it in its own format
 *   (x86-64 paging under NPT, EPT under VMX) if the unit can walk that,
 *   else in the other, which the unit's other stage walks. A unit with
 *   first-stage translation walks x86-64 paging, one with second-stage
 *   translation EPT; the domain is offered where either is, in scalable
 *   mode only.
 *
 * - Allocation takes KVM's table, so a VM whose memory cannot be pinned
 *   and charged fails there. KVM first has the driver check the table's
 *   format against the device's unit (intel_kvm_tdp_check()), before it
 *   pins anything. Attach checks again, for the unit of the device at
 *   hand, and names the failed check in the log (-EINVAL). An attach to a
 *   domain whose VM is gone leaves the device blocked and succeeds, as
 *   the iommu core expects of resets and rollbacks.
 * - Attach programs the device's RID_PASID entry for first-stage
 *   translation (x86-64 paging) or second-stage-only translation (EPT),
 *   with KVM's root, the domain's ID on the unit, and page-walk snooping
 *   only if the unit snoops (else KVM writes back).
 *   The device's cache tag is assigned before the entry goes live, as
 *   KVM may flush at any time. Once the domain enforces cache coherency
 *   (intel_kvm_enforce_cache_coherency(), which iommufd calls for every
 *   device whose unit has snoop control), each entry also forces
 *   snooping (PGSNP), and a device whose unit cannot is refused
 *   (-EINVAL). A second-stage domain enforces it if KVM set the SNP bit
 *   in its EPT leaves, which it does when the unit that took the table
 *   has SC: a unit without SC cannot walk such a table. Like the driver's paging domains, it
 *   blocks the device first: a replace is not atomic.
 * - KVM calls intel_kvm_flush() for every change of its table, with its
 *   mmu_lock held, before the memory can be reused: a ranged IOTLB
 *   (PASID-based for the first stage, page-selective for the second) and
 *   device-TLB invalidation over the domain's cache tags, or a full one
 *   when KVM empties the table.
 * - When the VM goes away (&iommu_kvm_domain_ops.block), KVM empties the
 *   table, so every DMA faults at a leaf, and maps nothing more. The root
 *   and its tables stay until the domain is freed, after its last device
 *   left it: no unit ever walks a freed table.
 */

/**
 * struct intel_kvm_domain - A VT-d domain that walks KVM's table
 * @kdom: the library's part; its iommu_domain is what iommufd holds
 * @dmar: the driver's per-domain state: domain IDs, devices, cache tags
 * @vm: the VM, held by the library until iommu_kvm_domain_deinit()
 * @client: KVM's handle on the domain, for its flushes
 * @fmt: KVM's description of the table
 * @root: the physical address of the table's root
 * @iommu: the unit of the device the domain is allocated for, while it is
 * @dev: that device, while it is
 */
struct intel_kvm_domain {
	struct iommu_kvm_domain kdom;
	struct dmar_domain *dmar;
	struct iommu_kvm_vm *vm;
	struct kvm_iommu_tdp_client client;
	struct kvm_iommu_tdp_format fmt;
	u64 root;
	struct intel_iommu *iommu;
	struct device *dev;
};

static struct intel_kvm_domain *to_intel_kvm_domain(struct iommu_domain *d)
{
	return container_of(to_iommu_kvm_domain(d), struct intel_kvm_domain,
			    kdom);
}

/* KVM changed entries of its table; called with KVM's mmu_lock held */
static void intel_kvm_flush(struct kvm_iommu_tdp_client *client, u64 gfn,
			    u64 nr)
{
	struct intel_kvm_domain *ikd =
		container_of(client, struct intel_kvm_domain, client);

	iommu_kvm_domain_count_invalidation(&ikd->kdom);
	if (nr == U64_MAX || gfn + nr > (ULONG_MAX >> VTD_PAGE_SHIFT))
		cache_tag_flush_all(ikd->dmar);
	else
		cache_tag_flush_range(ikd->dmar, gfn << VTD_PAGE_SHIFT,
				      ((gfn + nr) << VTD_PAGE_SHIFT) - 1, 0);
}

/*
 * Can @iommu walk a table of @fmt for @dev? The failed check goes to the
 * log: as a warning at attach (@attach), else as information, as KVM asks
 * for one format and then maybe the other before it builds its table.
 */
static int intel_kvm_check(struct intel_iommu *iommu, struct device *dev,
			   const struct kvm_iommu_tdp_format *fmt, bool attach)
{
	static DEFINE_RATELIMIT_STATE(rs, DEFAULT_RATELIMIT_INTERVAL,
				      DEFAULT_RATELIMIT_BURST);
	struct intel_kvm_verdict v;
	int ret;

	/*
	 * The driver keeps no host address width; MGAW bounds the output
	 * addresses the unit takes, and entries have 52 address bits.
	 */
	ret = intel_kvm_tdp_check(iommu->cap, iommu->ecap,
				  min(cap_mgaw(iommu->cap), 52), fmt, &v);
	if (ret) {
		/* Userspace may try again and again */
		if (__ratelimit(&rs))
			dev_printk(attach ? KERN_WARNING : KERN_INFO, dev,
				   "%s cannot walk KVM's %s table: %s (level %d, bit %d)\n",
				   iommu->name,
				   fmt->type == KVM_IOMMU_TDP_EPT ? "EPT" : "x86-64",
				   v.why, v.level, v.bit);
		return -EINVAL;
	}
	return 0;
}

/* KVM asks before it builds its table: no pinning for nothing */
static int intel_kvm_client_check(struct kvm_iommu_tdp_client *client,
				  const struct kvm_iommu_tdp_format *fmt)
{
	struct intel_kvm_domain *ikd =
		container_of(client, struct intel_kvm_domain, client);

	return intel_kvm_check(ikd->iommu, ikd->dev, fmt, false);
}

/*
 * Point the device's RID_PASID entry at KVM's table: first-stage
 * translation for x86-64 paging, second-stage for EPT. Its walks snoop if
 * the unit's do; if not, KVM writes back what it changes. The device's DMA
 * snoops whatever it asks for once the domain enforces cache coherency.
 */
static int intel_kvm_setup_pasid(struct intel_kvm_domain *ikd,
				 struct intel_iommu *iommu, struct device *dev)
{
	u16 did = domain_id_iommu(ikd->dmar, iommu);
	bool pwsnp = ecap_smpwc(iommu->ecap);
	int flags = 0;

	if (ikd->fmt.type == KVM_IOMMU_TDP_EPT)
		return intel_pasid_setup_second_level_table(iommu, dev,
							    IOMMU_NO_PASID, did,
							    ikd->root,
							    ikd->fmt.levels,
							    pwsnp);
	if (ikd->fmt.levels == 5)
		flags |= PASID_FLAG_FL5LP;
	if (pwsnp)
		flags |= PASID_FLAG_PWSNP;
	if (ikd->dmar->force_snooping)
		flags |= PASID_FLAG_PAGE_SNOOP;
	return __domain_setup_first_level(iommu, dev, IOMMU_NO_PASID, did,
					  ikd->root, flags, NULL);
}

static int intel_kvm_attach_dev(struct iommu_domain *domain,
				struct device *dev, struct iommu_domain *old)
{
	struct device_domain_info *info = dev_iommu_priv_get(dev);
	struct intel_kvm_domain *ikd = to_intel_kvm_domain(domain);
	struct dmar_domain *dmar = ikd->dmar;
	struct intel_iommu *iommu = info->iommu;
	unsigned long flags;
	int ret;

	if (dev_is_real_dma_subdevice(dev) || !sm_supported(iommu))
		return -EINVAL;
	ret = intel_kvm_check(iommu, dev, &ikd->fmt, true);
	if (ret)
		return ret;
	/* A kdump kernel: the unit still walks the old kernel's context */
	if (context_copied(iommu, info->bus, info->devfn)) {
		ret = intel_pasid_setup_sm_context(dev);
		if (ret)
			return ret;
	}

	iommu_kvm_domain_lock(&ikd->kdom);
	/* The domain's devices snoop: this one's unit must make it */
	if (dmar->force_snooping && !ecap_sc_support(iommu->ecap)) {
		dev_warn_ratelimited(dev, "%s cannot force snooping (SC=0), which the domain enforces\n",
				     iommu->name);
		ret = -EINVAL;
		goto out_unlock;
	}
	device_block_translation(dev);
	/* The iommu core expects this to work: the device stays blocked */
	if (iommu_kvm_domain_is_dead(&ikd->kdom)) {
		iopf_for_domain_remove(old, dev);
		goto out_unlock;
	}
	ret = iopf_for_domain_replace(domain, old, dev);
	if (ret)
		goto out_unlock;
	ret = domain_attach_iommu(dmar, iommu);
	if (ret) {
		iopf_for_domain_replace(old, domain, dev);
		goto out_unlock;
	}
	info->domain = dmar;
	info->domain_attached = true;
	spin_lock_irqsave(&dmar->lock, flags);
	list_add(&info->link, &dmar->devices);
	spin_unlock_irqrestore(&dmar->lock, flags);

	/* Tagged before the entry goes live: KVM may flush at any time */
	ret = cache_tag_assign_domain(dmar, dev, IOMMU_NO_PASID);
	if (!ret)
		ret = intel_kvm_setup_pasid(ikd, iommu, dev);
	if (ret) {
		device_block_translation(dev);
		iopf_for_domain_replace(old, domain, dev);
	}
out_unlock:
	iommu_kvm_domain_unlock(&ikd->kdom);
	return ret;
}

/* Force snooping in the device's PASID entry (PGSNP); dmar->lock held */
static void intel_kvm_page_snoop(struct device_domain_info *info)
{
	KUNIT_STATIC_STUB_REDIRECT(intel_kvm_page_snoop, info);
	intel_pasid_setup_page_snoop_control(info->iommu, info->dev,
					     IOMMU_NO_PASID);
}

/*
 * iommu_domain_ops->enforce_cache_coherency: make every device's DMA
 * snoop, so that KVM may take it as coherent (VFIO tells KVM so for a
 * device whose unit has snoop control). The first stage takes it from
 * PGSNP in each device's PASID entry, set for the devices attached now
 * and for those to come, whose unit must have SC. The second stage takes
 * it from SNP in each leaf, which KVM sets in its EPT table for the IOMMUs
 * when the unit that took the table has SC (KVM_IOMMU_TDP_EPT_SNOOP); a
 * unit without SC refuses such a table at attach, as bit 11 of a leaf is
 * reserved there. Without the bit, refused: iommufd then refuses a device
 * that asks for it.
 */
static bool intel_kvm_enforce_cache_coherency(struct iommu_domain *domain)
{
	struct intel_kvm_domain *ikd = to_intel_kvm_domain(domain);
	struct dmar_domain *dmar = ikd->dmar;
	struct device_domain_info *info;
	bool ok = false;

	if (ikd->fmt.type == KVM_IOMMU_TDP_EPT)
		return ikd->fmt.flags & KVM_IOMMU_TDP_EPT_SNOOP;
	/* No attach in between: each device listed has its entry */
	iommu_kvm_domain_lock(&ikd->kdom);
	spin_lock_irq(&dmar->lock);
	if (dmar->force_snooping) {
		ok = true;
		goto out_unlock;
	}
	list_for_each_entry(info, &dmar->devices, link)
		if (!ecap_sc_support(info->iommu->ecap))
			goto out_unlock;
	dmar->force_snooping = true;
	list_for_each_entry(info, &dmar->devices, link)
		intel_kvm_page_snoop(info);
	ok = true;
out_unlock:
	spin_unlock_irq(&dmar->lock);
	iommu_kvm_domain_unlock(&ikd->kdom);
	return ok;
}

static void intel_kvm_domain_free(struct iommu_domain *domain)
{
	struct intel_kvm_domain *ikd = to_intel_kvm_domain(domain);

	/* A device that still walks the root: leak it all, never free it */
	if (WARN_ON(!list_empty(&ikd->dmar->devices)))
		return;
	/* No device walks the root: KVM may free the table */
	iommu_kvm_tdp_put(ikd->vm, &ikd->client);
	iommu_kvm_domain_deinit(&ikd->kdom);
	kfree(ikd->dmar->qi_batch);
	kfree(ikd->dmar);
	kfree(ikd);
}

const struct iommu_domain_ops intel_kvm_domain_ops = {
	.attach_dev = intel_kvm_attach_dev,
	.enforce_cache_coherency = intel_kvm_enforce_cache_coherency,
	.free = intel_kvm_domain_free,
};

/*
 * The ops of the dmar_domain (never the iommu_domain) of a domain whose
 * table the second stage walks: cache.c then flushes it as the driver's
 * second-stage domains, not by PASID (intel_domain_is_kvm_fs()).
 */
static const struct iommu_domain_ops intel_kvm_ss_domain_ops = {
	.attach_dev = intel_kvm_attach_dev,
	.free = intel_kvm_domain_free,
};

static void intel_kvm_block(struct iommu_kvm_domain *kdom)
{
	struct intel_kvm_domain *ikd =
		container_of(kdom, struct intel_kvm_domain, kdom);

	/* Every DMA faults at a leaf from now on; the tables stay */
	iommu_kvm_tdp_block(ikd->vm);
}

static void intel_kvm_debugfs_show(struct iommu_kvm_domain *kdom,
				   struct seq_file *s)
{
	struct intel_kvm_domain *ikd =
		container_of(kdom, struct intel_kvm_domain, kdom);
	struct device_domain_info *info;
	unsigned long flags;

	seq_printf(s, "  table=%s levels=%u max_leaf_level=%u flags=%#x\n",
		   ikd->fmt.type == KVM_IOMMU_TDP_EPT ? "ept" : "x86-64",
		   ikd->fmt.levels, ikd->fmt.max_leaf_level, ikd->fmt.flags);
	spin_lock_irqsave(&ikd->dmar->lock, flags);
	list_for_each_entry(info, &ikd->dmar->devices, link)
		seq_printf(s, "  dev %s\n", dev_name(info->dev));
	spin_unlock_irqrestore(&ikd->dmar->lock, flags);
}

static const struct iommu_kvm_domain_ops intel_kvm_ops = {
	.name = "intel-iommu",
	/* No .invalidate: KVM flushes its table through intel_kvm_flush() */
	.block = intel_kvm_block,
	.debugfs_show = intel_kvm_debugfs_show,
};

/* iommu_ops->kvm_formats */
u64 intel_kvm_formats(struct device *dev, u64 *shadow_formats)
{
	struct device_domain_info *info = dev_iommu_priv_get(dev);
	struct intel_iommu *iommu = info->iommu;

	*shadow_formats = 0;
	/* KVM builds its table for whichever stage the unit has */
	if (!sm_supported(iommu) ||
	    !(ecap_flts(iommu->ecap) || ecap_slts(iommu->ecap)) ||
	    dev_is_real_dma_subdevice(dev))
		return 0;
	return BIT_ULL(IOMMU_HWPT_KVM_FORMAT_VTD_TDP);
}

/* iommu_ops->domain_alloc_kvm */
struct iommu_domain *
intel_kvm_domain_alloc(struct device *dev,
		       const struct iommu_kvm_domain_cfg *cfg)
{
	struct device_domain_info *info = dev_iommu_priv_get(dev);
	struct intel_iommu *iommu = info->iommu;
	struct intel_kvm_domain *ikd;
	struct dmar_domain *dmar;
	int ret;

	if (cfg->format != IOMMU_HWPT_KVM_FORMAT_VTD_TDP || cfg->parent)
		return ERR_PTR(-EOPNOTSUPP);
	/* The format takes no driver data */
	if (cfg->user_data)
		return ERR_PTR(-EINVAL);

	ikd = kzalloc_obj(*ikd, GFP_KERNEL_ACCOUNT);
	if (!ikd)
		return ERR_PTR(-ENOMEM);
	dmar = paging_domain_alloc();
	if (IS_ERR(dmar)) {
		kfree(ikd);
		return ERR_CAST(dmar);
	}
	/* Never handed to the iommu core: the ops say whose it is */
	dmar->domain.type = IOMMU_DOMAIN_KVM;
	dmar->domain.ops = &intel_kvm_domain_ops;
	ikd->dmar = dmar;
	ikd->vm = cfg->vm;
	ikd->client.flush = intel_kvm_flush;
	ikd->client.check = intel_kvm_client_check;
	ikd->iommu = iommu;
	ikd->dev = dev;

	ret = iommu_kvm_domain_init(&ikd->kdom, &intel_kvm_ops, cfg);
	if (ret)
		goto out_free;
	ikd->kdom.domain.ops = &intel_kvm_domain_ops;
	ikd->kdom.domain.pgsize_bitmap = SZ_4K | SZ_2M;
	ikd->kdom.domain.geometry.aperture_end =
		BIT_ULL(cap_mgaw(iommu->cap)) - 1;
	ikd->kdom.domain.geometry.force_aperture = true;

	/* Calls intel_kvm_client_check() first */
	ret = iommu_kvm_tdp_get(cfg->vm, &ikd->client, &ikd->fmt, &ikd->root);
	ikd->iommu = NULL;
	ikd->dev = NULL;
	if (ret)
		goto out_deinit;
	/* No device is tagged yet, so no flush has read the ops */
	if (ikd->fmt.type == KVM_IOMMU_TDP_EPT)
		dmar->domain.ops = &intel_kvm_ss_domain_ops;
	return &ikd->kdom.domain;

out_deinit:
	iommu_kvm_domain_deinit(&ikd->kdom);
out_free:
	kfree(dmar);
	kfree(ikd);
	return ERR_PTR(ret);
}

#if IS_ENABLED(CONFIG_INTEL_IOMMU_KVM_DOMAIN_KUNIT_TEST)
#include "kvm_kunit.c"
#endif
