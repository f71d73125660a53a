// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed domains on VT-d: the IOMMU walks KVM's own TDP table.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <linux/bitops.h>
#include <linux/bits.h>
#include <linux/errno.h>
#include <linux/kvm_iommu.h>

#include "iommu.h"
#include "kvm.h"

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
		break;
	default:
		verdict->why = "unknown table format";
		return -EINVAL;
	}

	if (!(sm ? ecap_smpwc(ecap) : ecap_coherent(ecap)) &&
	    !(fmt->flags & KVM_IOMMU_TDP_WRITEBACK))
		return intel_kvm_refuse(verdict,
			"page walks do not snoop, and KVM does not write back its entries",
			0, 0);
	return intel_kvm_check_entries(cap, ecap, haw, fmt, verdict);
}

#if IS_ENABLED(CONFIG_INTEL_IOMMU_KVM_DOMAIN_KUNIT_TEST)
#include "kvm_kunit.c"
#endif
