// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of which KVM tables a VT-d unit can walk: included by kvm.c.
 *
 * The registers are those QEMU 10.0's intel-iommu reports with
 * x-scalable-mode=on,x-flts=on (the test bed of make check), and variants
 * of them; the formats are those KVM builds on NPT and on EPT, described
 * as KVM would describe them. The synthetic tables are walked with
 * intel_kvm_walk_entry() at each level, as the unit walks them.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <kunit/static_stub.h>
#include <kunit/test.h>

/* QEMU 10.0.2, intel-iommu x-scalable-mode=on,x-flts=on, as 7.3 reads it */
#define IKT_QEMU_CAP		0x1d2008c222f0606ULL
#define IKT_QEMU_ECAP		0x880000f00f4aULL
#define IKT_QEMU_HAW		48
/* The same unit without x-flts: second-stage translation instead */
#define IKT_QEMU_SL_CAP		0xd2008c222f0606ULL
#define IKT_QEMU_SL_ECAP	0x480080f00f4aULL

#define IKT_ECAP_SMPWC		BIT_ULL(48)
#define IKT_ECAP_SMTS		BIT_ULL(43)
#define IKT_ECAP_ERS		BIT_ULL(30)
#define IKT_ECAP_SC		BIT_ULL(7)
#define IKT_CAP_FL5LP		BIT_ULL(60)
#define IKT_CAP_FL1GP		BIT_ULL(56)
#define IKT_CAP_CM		BIT_ULL(7)
#define IKT_CAP_RWBF		BIT_ULL(4)
/* MGAW 57 (56 + 1), for a unit with a 5-level first stage */
#define IKT_CAP_MGAW(w)		((u64)((w) - 1) << 16)
#define IKT_CAP_MGAW_MASK	(0x3fULL << 16)
/* A legacy-mode unit: 4-level SAGAW, 2 MiB and 1 GiB leaves, MGAW 48 */
#define IKT_LEGACY_CAP		((0x4ULL << 8) | (0x3ULL << 34) | \
				 IKT_CAP_MGAW(48))
#define IKT_LEGACY_ECAP		0x1ULL	/* coherent, no scalable mode */

/* KVM's SPTE bits (arch/x86/kvm/mmu/spte.h, 7.3) */
#define IKT_KVM_MMU_PRESENT	BIT_ULL(11)
#define IKT_NPT_HOST_WRITABLE	BIT_ULL(9)
#define IKT_NPT_MMU_WRITABLE	BIT_ULL(10)
#define IKT_EPT_HOST_WRITABLE	BIT_ULL(53)
#define IKT_EPT_MMU_WRITABLE	BIT_ULL(55)
#define IKT_X86_A		BIT_ULL(5)
#define IKT_X86_D		BIT_ULL(6)
#define IKT_X86_NX		BIT_ULL(63)
#define IKT_EPT_X		BIT_ULL(2)
#define IKT_EPT_WB_MT		(6ULL << 3)
#define IKT_EPT_A		BIT_ULL(8)
#define IKT_EPT_D		BIT_ULL(9)
#define IKT_NONPRESENT		BIT_ULL(63)	/* SHADOW_NONPRESENT_VALUE */
#define IKT_FROZEN		(IKT_NONPRESENT | 0x1a0)

/* KVM on NPT with its defaults here: 4 levels, 1 GiB leaves, MMIO SPTEs */
static const struct kvm_iommu_tdp_format ikt_npt = {
	.type = KVM_IOMMU_TDP_X86_64,
	.levels = 4,
	.max_leaf_level = 3,
	.flags = KVM_IOMMU_TDP_USER | KVM_IOMMU_TDP_WRITEBACK |
		 KVM_IOMMU_TDP_MMIO_SPTES,
	.leaf_bits = IKT_X86_A | IKT_X86_D | IKT_NPT_HOST_WRITABLE |
		     IKT_NPT_MMU_WRITABLE | IKT_KVM_MMU_PRESENT,
	.table_bits = IKT_X86_A | IKT_KVM_MMU_PRESENT,
	/* BIT(51) | PT_PRESENT_MASK, with the write and user access bits */
	.mmio_bits = BIT_ULL(51) | VTD_KVM_FS_P | VTD_KVM_FS_RW |
		     VTD_KVM_FS_US,
};

/* KVM on EPT: bit 11 (MMU-present) in every entry, WB memory type */
static const struct kvm_iommu_tdp_format ikt_ept = {
	.type = KVM_IOMMU_TDP_EPT,
	.levels = 4,
	.max_leaf_level = 3,
	.flags = KVM_IOMMU_TDP_WRITEBACK | KVM_IOMMU_TDP_MMIO_SPTES,
	.leaf_bits = IKT_EPT_X | IKT_EPT_WB_MT | IKT_EPT_A | IKT_EPT_D |
		     IKT_EPT_HOST_WRITABLE | IKT_EPT_MMU_WRITABLE |
		     IKT_KVM_MMU_PRESENT,
	.table_bits = IKT_EPT_X | IKT_EPT_A | IKT_KVM_MMU_PRESENT,
	/* The write-execute misconfiguration */
	.mmio_bits = VTD_KVM_SS_W | IKT_EPT_X,
};

static int ikt_check(struct kunit *test, u64 cap, u64 ecap, unsigned int haw,
		     const struct kvm_iommu_tdp_format *fmt,
		     struct intel_kvm_verdict *v)
{
	int ret = intel_kvm_tdp_check(cap, ecap, haw, fmt, v);

	kunit_info(test, "%d: %s (bit %d, level %d)\n", ret,
		   v->why ?: "walkable", v->bit, v->level);
	return ret;
}

/* The registers decode as QEMU's model says (FACTS-7.3, section H) */
static void test_qemu_registers(struct kunit *test)
{
	KUNIT_EXPECT_TRUE(test, ecap_smts(IKT_QEMU_ECAP));
	KUNIT_EXPECT_TRUE(test, ecap_flts(IKT_QEMU_ECAP));
	KUNIT_EXPECT_FALSE(test, ecap_slts(IKT_QEMU_ECAP));
	KUNIT_EXPECT_FALSE(test, ecap_smpwc(IKT_QEMU_ECAP));
	KUNIT_EXPECT_FALSE(test, ecap_sc_support(IKT_QEMU_ECAP));
	KUNIT_EXPECT_FALSE(test, ecap_ers(IKT_QEMU_ECAP));
	KUNIT_EXPECT_TRUE(test, cap_fl1gp_support(IKT_QEMU_CAP));
	KUNIT_EXPECT_FALSE(test, cap_fl5lp_support(IKT_QEMU_CAP));
	KUNIT_EXPECT_EQ(test, cap_mgaw(IKT_QEMU_CAP), 48);
	KUNIT_EXPECT_TRUE(test, ecap_smts(IKT_QEMU_SL_ECAP));
	KUNIT_EXPECT_FALSE(test, ecap_flts(IKT_QEMU_SL_ECAP));
	KUNIT_EXPECT_TRUE(test, ecap_slts(IKT_QEMU_SL_ECAP));
	KUNIT_EXPECT_FALSE(test, ecap_smpwc(IKT_QEMU_SL_ECAP));
	KUNIT_EXPECT_FALSE(test, ecap_sc_support(IKT_QEMU_SL_ECAP));
	KUNIT_EXPECT_FALSE(test, cap_caching_mode(IKT_QEMU_SL_CAP));
}

/* KVM's NPT table as it is here: the first stage walks it */
static void test_npt_on_first_stage(struct kunit *test)
{
	struct kvm_iommu_tdp_format fmt = ikt_npt;
	struct intel_kvm_verdict v;

	KUNIT_EXPECT_EQ(test, 0, ikt_check(test, IKT_QEMU_CAP, IKT_QEMU_ECAP,
					   IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_NULL(test, v.why);
	/* Without the write-back, walks that do not snoop miss updates */
	fmt.flags &= ~KVM_IOMMU_TDP_WRITEBACK;
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_CAP, IKT_QEMU_ECAP,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "snoop"));
	KUNIT_EXPECT_EQ(test, 0, ikt_check(test, IKT_QEMU_CAP,
					   IKT_QEMU_ECAP | IKT_ECAP_SMPWC,
					   IKT_QEMU_HAW, &fmt, &v));
	/* KVM never flushes the write buffer for the entries it makes */
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_CAP | IKT_CAP_RWBF,
				  IKT_QEMU_ECAP | IKT_ECAP_SMPWC,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "RWBF=1"));
}

/* An LA57 host: KVM's 5-level root against a 4-level first stage */
static void test_npt_levels(struct kunit *test)
{
	struct kvm_iommu_tdp_format fmt = ikt_npt;
	struct intel_kvm_verdict v;
	u64 cap57;

	fmt.levels = 5;
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_CAP, IKT_QEMU_ECAP,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "FL5LP"));
	KUNIT_EXPECT_EQ(test, v.level, 5);
	/* FL5LP alone is not enough: the address width must reach 57 bits */
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_CAP | IKT_CAP_FL5LP,
				  IKT_QEMU_ECAP, IKT_QEMU_HAW, &fmt, &v));
	cap57 = (IKT_QEMU_CAP & ~IKT_CAP_MGAW_MASK) | IKT_CAP_FL5LP |
		IKT_CAP_MGAW(57);
	KUNIT_EXPECT_EQ(test, 0, ikt_check(test, cap57, IKT_QEMU_ECAP,
					   IKT_QEMU_HAW, &fmt, &v));
	/* Nonsense is -EINVAL, not a refusal */
	fmt.levels = 3;
	KUNIT_EXPECT_EQ(test, -EINVAL, ikt_check(test, cap57, IKT_QEMU_ECAP,
						 IKT_QEMU_HAW, &fmt, &v));
	fmt.levels = 4;
	fmt.max_leaf_level = 4;
	KUNIT_EXPECT_EQ(test, -EINVAL, ikt_check(test, cap57, IKT_QEMU_ECAP,
						 IKT_QEMU_HAW, &fmt, &v));
	fmt.max_leaf_level = 3;
	fmt.type = 0;
	KUNIT_EXPECT_EQ(test, -EINVAL, ikt_check(test, cap57, IKT_QEMU_ECAP,
						 IKT_QEMU_HAW, &fmt, &v));
}

/* 1 GiB leaves need FL1GP; a KVM that stops at 2 MiB does not */
static void test_npt_leaf_sizes(struct kunit *test)
{
	struct kvm_iommu_tdp_format fmt = ikt_npt;
	u64 cap = IKT_QEMU_CAP & ~IKT_CAP_FL1GP;
	struct intel_kvm_verdict v;

	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, cap, IKT_QEMU_ECAP, IKT_QEMU_HAW,
				  &fmt, &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "FL1GP"));
	fmt.max_leaf_level = 2;
	KUNIT_EXPECT_EQ(test, 0, ikt_check(test, cap, IKT_QEMU_ECAP,
					   IKT_QEMU_HAW, &fmt, &v));
}

/* GMET clears U/S; NX huge pages set XD */
static void test_npt_user_and_nx(struct kunit *test)
{
	struct kvm_iommu_tdp_format fmt = ikt_npt;
	struct intel_kvm_verdict v;

	fmt.flags &= ~KVM_IOMMU_TDP_USER;
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_CAP, IKT_QEMU_ECAP,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "GMET"));

	fmt = ikt_npt;
	fmt.leaf_bits |= IKT_X86_NX;
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_CAP, IKT_QEMU_ECAP,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_EQ(test, v.bit, 63);
	KUNIT_EXPECT_EQ(test, v.level, 1);
	KUNIT_EXPECT_EQ(test, 0, ikt_check(test, IKT_QEMU_CAP,
					   IKT_QEMU_ECAP | IKT_ECAP_ERS,
					   IKT_QEMU_HAW, &fmt, &v));
	/* A bit inside the address of a 4 KiB page is caught at level 2 */
	fmt = ikt_npt;
	fmt.leaf_bits |= BIT_ULL(13);
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_CAP, IKT_QEMU_ECAP,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_EQ(test, v.bit, 13);
	KUNIT_EXPECT_EQ(test, v.level, 2);
}

/* An MMIO SPTE faults only while bit 51 is above the host address width */
static void test_npt_mmio(struct kunit *test)
{
	struct kvm_iommu_tdp_format fmt = ikt_npt;
	struct intel_kvm_verdict v;

	KUNIT_EXPECT_EQ(test, 0, ikt_check(test, IKT_QEMU_CAP, IKT_QEMU_ECAP,
					   51, &fmt, &v));
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_CAP, IKT_QEMU_ECAP, 52, &fmt,
				  &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "mmio_caching=0"));
	/* With kvm.mmio_caching=0 there are none */
	fmt.flags &= ~KVM_IOMMU_TDP_MMIO_SPTES;
	KUNIT_EXPECT_EQ(test, 0, ikt_check(test, IKT_QEMU_CAP, IKT_QEMU_ECAP,
					   52, &fmt, &v));
}

/*
 * EPT: QEMU's unit has no second stage with x-flts; a unit that has one
 * refuses KVM's bit 11 in leaves without SC, and in table entries always.
 */
static void test_ept(struct kunit *test)
{
	struct kvm_iommu_tdp_format fmt = ikt_ept;
	u64 sc = IKT_LEGACY_ECAP | IKT_ECAP_SC;
	struct intel_kvm_verdict v;

	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_CAP, IKT_QEMU_ECAP,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "second-stage"));

	/* Bit 11 of a leaf is SNP, which needs snoop control */
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_LEGACY_CAP, IKT_LEGACY_ECAP,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_EQ(test, v.bit, 11);
	KUNIT_EXPECT_EQ(test, v.level, 1);
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "leaf entries"));
	/* With SC, bit 11 of a table entry is still reserved */
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_LEGACY_CAP, sc, IKT_QEMU_HAW, &fmt,
				  &v));
	KUNIT_EXPECT_EQ(test, v.bit, 11);
	KUNIT_EXPECT_EQ(test, v.level, 2);
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "table entries"));

	/* Were bit 11 only in leaves: the MMIO SPTEs are left */
	fmt.table_bits &= ~IKT_KVM_MMU_PRESENT;
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_LEGACY_CAP, sc, IKT_QEMU_HAW, &fmt,
				  &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "MMIO"));
	fmt.flags &= ~KVM_IOMMU_TDP_MMIO_SPTES;
	KUNIT_EXPECT_EQ(test, 0, ikt_check(test, IKT_LEGACY_CAP, sc,
					   IKT_QEMU_HAW, &fmt, &v));
	/* SAGAW without 5 levels, SLLPS without 1 GiB */
	fmt.levels = 5;
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_LEGACY_CAP, sc, IKT_QEMU_HAW, &fmt,
				  &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "SAGAW"));
	fmt.levels = 4;
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_LEGACY_CAP & ~(0x2ULL << 34), sc,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "SLLPS"));
}

/* A synthetic path of tables, one of 512 entries per level */
struct ikt_table {
	u64 *lvl[5];	/* lvl[1] is the last table */
};

/* Walk @iova as the unit would: the result, and the frame it reaches */
static enum intel_kvm_walk ikt_walk(struct ikt_table *tt, u64 cap, u64 ecap,
				    enum kvm_iommu_tdp_type type, u64 iova,
				    bool write, u64 *pa)
{
	enum intel_kvm_walk ret;
	int level;

	for (level = 4; level >= 1; level--) {
		u64 e = tt->lvl[level][(iova >> (12 + 9 * (level - 1))) & 511];
		bool leaf = level == 1 || (e & VTD_KVM_PS);

		ret = intel_kvm_walk_entry(cap, ecap, IKT_QEMU_HAW, type,
					   level, leaf, write, e);
		if (ret != INTEL_KVM_WALK_VALID)
			return ret;
		if (leaf) {
			u64 span = 1ULL << (12 + 9 * (level - 1));

			*pa = (e & GENMASK_ULL(51, 12) & ~(span - 1)) |
			      (iova & (span - 1));
			return ret;
		}
		/* The test's tables are chained in order, not by address */
	}
	return INTEL_KVM_WALK_NOT_PRESENT;
}

/* A table per level, every entry @empty */
static void ikt_alloc(struct kunit *test, struct ikt_table *tt, u64 empty)
{
	int i;

	for (i = 1; i <= 4; i++) {
		tt->lvl[i] = kunit_kzalloc(test, 512 * sizeof(u64), GFP_KERNEL);
		KUNIT_ASSERT_NOT_NULL(test, tt->lvl[i]);
		memset64(tt->lvl[i], empty, 512);
	}
}

/* ikt_walk() on the test bed's first stage */
static enum intel_kvm_walk ikt_fs_walk(struct ikt_table *tt, u64 iova,
				       bool write, u64 *pa)
{
	return ikt_walk(tt, IKT_QEMU_CAP, IKT_QEMU_ECAP, KVM_IOMMU_TDP_X86_64,
			iova, write, pa);
}

/*
 * One path of tables as KVM's TDP MMU builds them for NPT, with the
 * entries of its last table KVM may leave there: a 4 KiB mapping, an MMIO
 * SPTE, a frozen SPTE, a zapped one; and a 2 MiB leaf beside the table.
 */
static void test_npt_table_walk(struct kunit *test)
{
	const u64 table = VTD_KVM_FS_P | VTD_KVM_FS_RW | VTD_KVM_FS_US |
			  ikt_npt.table_bits;
	const u64 leaf = VTD_KVM_FS_P | VTD_KVM_FS_RW | VTD_KVM_FS_US |
			 ikt_npt.leaf_bits;
	struct ikt_table tt;
	u64 pa = 0;

	/* Zapped entries hold KVM's non-present value */
	ikt_alloc(test, &tt, IKT_NONPRESENT);
	tt.lvl[4][0] = table | 0x1000;
	tt.lvl[3][0] = table | 0x2000;
	tt.lvl[2][0] = table | 0x3000;
	tt.lvl[2][1] = leaf | VTD_KVM_PS | 0x40000000;	/* 2 MiB */
	tt.lvl[1][0] = leaf | 0x123456000;
	tt.lvl[1][1] = ikt_npt.mmio_bits | (0xfee00ULL << 12) | 0x38;
	tt.lvl[1][2] = IKT_FROZEN;
	tt.lvl[1][3] = IKT_NONPRESENT;

	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_VALID,
			ikt_fs_walk(&tt, 0x10, true, &pa));
	KUNIT_EXPECT_EQ(test, pa, 0x123456010);
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_VALID,
			ikt_fs_walk(&tt, 0x200000 + 0x1234, false, &pa));
	KUNIT_EXPECT_EQ(test, pa, 0x40001234);
	/* The MMIO SPTE faults on its reserved bit 51, both ways */
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_RESERVED,
			ikt_fs_walk(&tt, 0x1000, true, &pa));
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_RESERVED,
			ikt_fs_walk(&tt, 0x1000, false, &pa));
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_NOT_PRESENT,
			ikt_fs_walk(&tt, 0x2000, true, &pa));
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_NOT_PRESENT,
			ikt_fs_walk(&tt, 0x3000, false, &pa));
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_NOT_PRESENT,
			ikt_fs_walk(&tt, 1ULL << 39, false, &pa));
	/* A read-only leaf (dirty logging, a read-only slot): reads only */
	tt.lvl[1][0] &= ~VTD_KVM_FS_RW;
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_VALID,
			ikt_fs_walk(&tt, 0, false, &pa));
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_DENIED,
			ikt_fs_walk(&tt, 0, true, &pa));
	/* GMET: U/S clear in the leaf, and DMA faults */
	tt.lvl[1][0] = leaf & ~VTD_KVM_FS_US;
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_DENIED,
			ikt_fs_walk(&tt, 0, false, &pa));
}

/* The same path as KVM builds it for EPT, on a legacy unit with SC */
static void test_ept_table_walk(struct kunit *test)
{
	const u64 rw = VTD_KVM_SS_R | VTD_KVM_SS_W;
	const u64 ecap = IKT_LEGACY_ECAP | IKT_ECAP_SC;
	struct ikt_table tt;
	u64 pa = 0;
	int i;

	ikt_alloc(test, &tt, 0);
	tt.lvl[4][0] = rw | ikt_ept.table_bits | 0x1000;
	tt.lvl[3][0] = rw | ikt_ept.table_bits | 0x2000;
	tt.lvl[2][0] = rw | ikt_ept.table_bits | 0x3000;
	tt.lvl[1][0] = rw | ikt_ept.leaf_bits | 0x123456000;
	tt.lvl[1][1] = ikt_ept.mmio_bits | (0xfee00ULL << 12);

	/* KVM's bit 11 in its top table entry: reserved, at the first step */
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_RESERVED,
			ikt_walk(&tt, IKT_LEGACY_CAP, ecap, KVM_IOMMU_TDP_EPT,
				 0, false, &pa));
	for (i = 2; i <= 4; i++)
		tt.lvl[i][0] &= ~IKT_KVM_MMU_PRESENT;
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_VALID,
			ikt_walk(&tt, IKT_LEGACY_CAP, ecap, KVM_IOMMU_TDP_EPT,
				 0x10, true, &pa));
	KUNIT_EXPECT_EQ(test, pa, 0x123456010);
	/* The misconfigured MMIO SPTE: a write goes through to the GFN */
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_VALID,
			ikt_walk(&tt, IKT_LEGACY_CAP, ecap, KVM_IOMMU_TDP_EPT,
				 0x1000, true, &pa));
	KUNIT_EXPECT_EQ(test, pa, 0xfee00000);
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_DENIED,
			ikt_walk(&tt, IKT_LEGACY_CAP, ecap, KVM_IOMMU_TDP_EPT,
				 0x1000, false, &pa));
	/* Without SC the leaf's bit 11 is reserved too */
	KUNIT_EXPECT_EQ(test, INTEL_KVM_WALK_RESERVED,
			ikt_walk(&tt, IKT_LEGACY_CAP, IKT_LEGACY_ECAP,
				 KVM_IOMMU_TDP_EPT, 0, false, &pa));
}

/*
 * The EPT table KVM keeps for IOMMUs (arch/x86/kvm/mmu/iommu_tdp.c) has no
 * bit 11 and no MMIO SPTEs: the second stage of QEMU's unit without x-flts
 * walks it, as long as KVM writes it back; the first-stage unit cannot.
 */
static void test_ept_iommu_table(struct kunit *test)
{
	struct kvm_iommu_tdp_format fmt = {
		.type = KVM_IOMMU_TDP_EPT,
		.levels = 4,
		.max_leaf_level = 2,
		.flags = KVM_IOMMU_TDP_WRITEBACK,
		.leaf_bits = VTD_KVM_SS_R | VTD_KVM_SS_W | IKT_EPT_X |
			     IKT_EPT_WB_MT | VTD_KVM_PS,
		.table_bits = VTD_KVM_SS_R | VTD_KVM_SS_W | IKT_EPT_X,
	};
	struct intel_kvm_verdict v;

	KUNIT_EXPECT_EQ(test, 0, ikt_check(test, IKT_QEMU_SL_CAP,
					   IKT_QEMU_SL_ECAP, IKT_QEMU_HAW,
					   &fmt, &v));
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_CAP, IKT_QEMU_ECAP,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "second-stage"));
	/* Caching mode, as QEMU has it with caching-mode=on */
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_SL_CAP | IKT_CAP_CM,
				  IKT_QEMU_SL_ECAP, IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "CM=1"));
	/* A unit that needs its write buffer flushed for new entries */
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_SL_CAP | IKT_CAP_RWBF,
				  IKT_QEMU_SL_ECAP, IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "RWBF=1"));
	/*
	 * The snoop bit in every leaf (KVM_IOMMU_TDP_EPT_SNOOP): reserved
	 * without snoop control, which QEMU gives with snoop-control=on
	 */
	fmt.flags |= KVM_IOMMU_TDP_EPT_SNOOP;
	fmt.leaf_bits |= VTD_KVM_SS_SNP;
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_SL_CAP, IKT_QEMU_SL_ECAP,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_EQ(test, v.bit, 11);
	KUNIT_EXPECT_EQ(test, v.level, 1);
	KUNIT_EXPECT_EQ(test, 0, ikt_check(test, IKT_QEMU_SL_CAP,
					   IKT_QEMU_SL_ECAP | IKT_ECAP_SC,
					   IKT_QEMU_HAW, &fmt, &v));
	fmt.flags &= ~KVM_IOMMU_TDP_EPT_SNOOP;
	fmt.leaf_bits &= ~VTD_KVM_SS_SNP;
	/* QEMU's walks do not snoop */
	fmt.flags = 0;
	KUNIT_EXPECT_EQ(test, -EOPNOTSUPP,
			ikt_check(test, IKT_QEMU_SL_CAP, IKT_QEMU_SL_ECAP,
				  IKT_QEMU_HAW, &fmt, &v));
	KUNIT_EXPECT_NOT_NULL(test, strstr(v.why, "snoop"));
}

/*
 * A KVM-backed domain with devices behind units of the given extended
 * capabilities, for intel_kvm_enforce_cache_coherency(); their PASID
 * entries are the test's (static stub)
 */
struct ikt_coherency {
	struct intel_kvm_domain ikd;
	struct dmar_domain dmar;
	struct intel_iommu units[2];
	struct device_domain_info infos[2];
	unsigned int snooped;
	unsigned long which;
	unsigned int early;
};

/* PGSNP set in a device's entry: after the domain says it enforces it */
static void ikt_page_snoop(struct device_domain_info *info)
{
	struct ikt_coherency *c = kunit_get_current_test()->priv;

	c->snooped++;
	c->which |= BIT(info - c->infos);
	if (!c->dmar.force_snooping)
		c->early++;
}

static struct ikt_coherency *
ikt_coherency_new(struct kunit *test, const struct kvm_iommu_tdp_format *fmt,
		  unsigned int ndev, u64 ecap0, u64 ecap1)
{
	struct ikt_coherency *c = kunit_kzalloc(test, sizeof(*c), GFP_KERNEL);
	u64 ecap[] = { ecap0, ecap1 };
	unsigned int i;

	KUNIT_ASSERT_NOT_NULL(test, c);
	test->priv = c;
	mutex_init(&c->ikd.kdom.lock);
	spin_lock_init(&c->dmar.lock);
	INIT_LIST_HEAD(&c->dmar.devices);
	c->ikd.dmar = &c->dmar;
	c->ikd.fmt = *fmt;
	for (i = 0; i < ndev; i++) {
		c->units[i].ecap = ecap[i];
		c->infos[i].iommu = &c->units[i];
		list_add_tail(&c->infos[i].link, &c->dmar.devices);
	}
	kunit_activate_static_stub(test, intel_kvm_page_snoop, ikt_page_snoop);
	return c;
}

static bool ikt_enforce(struct ikt_coherency *c)
{
	return intel_kvm_enforce_cache_coherency(&c->ikd.kdom.domain);
}

/*
 * First stage: DMA snoops by PGSNP in each device's PASID entry. The
 * domain enforces it only if every device's unit has snoop control (SC),
 * and then sets PGSNP in every entry, once; with no device yet it
 * enforces it for those to come (attach refuses a unit without SC).
 */
static void test_enforce_coherency_first_stage(struct kunit *test)
{
	u64 sc = IKT_QEMU_ECAP | IKT_ECAP_SC;
	struct ikt_coherency *c;

	/* QEMU's unit as make check boots it with snoop-control=on */
	c = ikt_coherency_new(test, &ikt_npt, 2, sc, sc);
	KUNIT_EXPECT_TRUE(test, ikt_enforce(c));
	KUNIT_EXPECT_TRUE(test, c->dmar.force_snooping);
	KUNIT_EXPECT_EQ(test, c->snooped, 2);
	KUNIT_EXPECT_EQ(test, c->which, 0x3);
	KUNIT_EXPECT_EQ(test, c->early, 0);
	/* Asked again: nothing more to do */
	KUNIT_EXPECT_TRUE(test, ikt_enforce(c));
	KUNIT_EXPECT_EQ(test, c->snooped, 2);

	/* One unit without SC (QEMU's default): refused, no entry changed */
	c = ikt_coherency_new(test, &ikt_npt, 2, sc, IKT_QEMU_ECAP);
	KUNIT_EXPECT_FALSE(test, ikt_enforce(c));
	KUNIT_EXPECT_FALSE(test, c->dmar.force_snooping);
	KUNIT_EXPECT_EQ(test, c->snooped, 0);
	c = ikt_coherency_new(test, &ikt_npt, 2, IKT_QEMU_ECAP, sc);
	KUNIT_EXPECT_FALSE(test, ikt_enforce(c));
	KUNIT_EXPECT_FALSE(test, c->dmar.force_snooping);
	KUNIT_EXPECT_EQ(test, c->snooped, 0);

	/* No device yet */
	c = ikt_coherency_new(test, &ikt_npt, 0, 0, 0);
	KUNIT_EXPECT_TRUE(test, ikt_enforce(c));
	KUNIT_EXPECT_TRUE(test, c->dmar.force_snooping);
	KUNIT_EXPECT_EQ(test, c->snooped, 0);
}

/*
 * Second stage: DMA snoops by SNP in each leaf of KVM's EPT table, which
 * KVM sets only for a unit with snoop control (KVM_IOMMU_TDP_EPT_SNOOP).
 * The domain enforces coherency exactly when the table has it, whatever
 * the units, and touches no PASID entry.
 */
static void test_enforce_coherency_second_stage(struct kunit *test)
{
	struct kvm_iommu_tdp_format fmt = ikt_ept;
	u64 sc = IKT_QEMU_SL_ECAP | IKT_ECAP_SC;
	struct ikt_coherency *c;

	fmt.flags |= KVM_IOMMU_TDP_EPT_SNOOP;
	fmt.leaf_bits |= VTD_KVM_SS_SNP;
	c = ikt_coherency_new(test, &fmt, 1, sc, 0);
	KUNIT_EXPECT_TRUE(test, ikt_enforce(c));
	KUNIT_EXPECT_FALSE(test, c->dmar.force_snooping);
	KUNIT_EXPECT_EQ(test, c->snooped, 0);

	/* KVM's leaves without SNP: refused, even behind a unit with SC */
	c = ikt_coherency_new(test, &ikt_ept, 1, sc, 0);
	KUNIT_EXPECT_FALSE(test, ikt_enforce(c));
	KUNIT_EXPECT_FALSE(test, c->dmar.force_snooping);
	KUNIT_EXPECT_EQ(test, c->snooped, 0);
}

static struct kunit_case intel_iommu_kvm_test_cases[] = {
	KUNIT_CASE(test_qemu_registers),
	KUNIT_CASE(test_npt_on_first_stage),
	KUNIT_CASE(test_npt_levels),
	KUNIT_CASE(test_npt_leaf_sizes),
	KUNIT_CASE(test_npt_user_and_nx),
	KUNIT_CASE(test_npt_mmio),
	KUNIT_CASE(test_ept),
	KUNIT_CASE(test_ept_iommu_table),
	KUNIT_CASE(test_npt_table_walk),
	KUNIT_CASE(test_ept_table_walk),
	KUNIT_CASE(test_enforce_coherency_first_stage),
	KUNIT_CASE(test_enforce_coherency_second_stage),
	{}
};

static struct kunit_suite intel_iommu_kvm_test_suite = {
	.name = "intel_iommu_kvm",
	.test_cases = intel_iommu_kvm_test_cases,
};

kunit_test_suite(intel_iommu_kvm_test_suite);
