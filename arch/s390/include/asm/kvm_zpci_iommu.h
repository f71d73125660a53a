/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The guest's zPCI DMA-table instructions (RPCIT, MPCIFC's IOAT operations,
 * CLP's disable) for a function whose DMA translation is a KVM-backed IOMMU domain: how
 * KVM decodes them and what it answers, from register state alone, so
 * that KVM's intercept handlers (arch/s390/kvm/s390/pci_iommu.c) and the
 * KUnit tests of the s390 IOMMU driver run the same code.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#ifndef _ASM_S390_KVM_ZPCI_IOMMU_H
#define _ASM_S390_KVM_ZPCI_IOMMU_H

#include <linux/bits.h>
#include <linux/errno.h>
#include <linux/types.h>
#include <asm/pci_clp.h>
#include <asm/pci_dma.h>
#include <asm/pci_insn.h>

/* Program interruption codes (as asm/kvm_host.h has them) */
#define ZPCI_KVM_PGM_PRIVILEGED_OP	0x02
#define ZPCI_KVM_PGM_SPECIFICATION	0x06
#define ZPCI_KVM_PGM_OPERAND		0x15

/* The enable bit of a function handle: not part of the sync key */
#define ZPCI_KVM_FH_ENABLED		BIT(31)

/* MPCIFC status codes of the IOAT operations (QEMU's ZPCI_MOD_ST_*) */
#define ZPCI_KVM_MOD_ST_INSUF_RES	16
#define ZPCI_KVM_MOD_ST_SEQUENCE	24
#define ZPCI_KVM_MOD_ST_DMAAS_INVAL	28
#define ZPCI_KVM_MOD_ST_ERROR_RECOVER	40

/**
 * enum zpci_kvm_action - What KVM does with the instruction
 * @ZPCI_KVM_DONE: set the condition code (and status, if cc is 1); done
 * @ZPCI_KVM_USERSPACE: exit to userspace with the instruction, as without
 *	a KVM-backed domain
 * @ZPCI_KVM_RETRY: make the guest execute the instruction again; the
 *	domain continues where it stopped
 * @ZPCI_KVM_PGM: inject program interruption @pgm
 */
enum zpci_kvm_action {
	ZPCI_KVM_DONE,
	ZPCI_KVM_USERSPACE,
	ZPCI_KVM_RETRY,
	ZPCI_KVM_PGM,
};

/**
 * struct zpci_kvm_answer - KVM's answer to one instruction
 * @action: enum zpci_kvm_action
 * @cc: condition code, for %ZPCI_KVM_DONE
 * @status: status for the r1 register when @cc is 1
 * @pgm: program interruption code, for %ZPCI_KVM_PGM
 */
struct zpci_kvm_answer {
	enum zpci_kvm_action action;
	u8 cc;
	u8 status;
	u16 pgm;
};

/**
 * struct zpci_kvm_iommu - How the instructions reach the KVM-backed domain
 * @ctx: the vCPU that issued the instruction (KVM), or the test's stand-in
 * @has_key: is there a domain whose sync key is @key?
 * @sync: kvm_iommu_sync()
 * @set_table: kvm_iommu_set_table()
 */
struct zpci_kvm_iommu {
	void *ctx;
	bool (*has_key)(void *ctx, u64 key);
	int (*sync)(void *ctx, u64 key, u64 iova, u64 size);
	int (*set_table)(void *ctx, u64 key, u64 anchor, u64 first, u64 last);
};

/* The status field of the function handle register (IBM bits 32-39) */
static inline void zpci_kvm_set_status(u64 *gpr, u8 status)
{
	*gpr = (*gpr & ~0xff000000ULL) | ((u64)status << 24);
}

/*
 * The sync key of the function a handle names. A function's handle has
 * its enable bit set while it is enabled; the key is the same either way.
 */
static inline u64 zpci_kvm_key(u32 fh)
{
	return fh & ~ZPCI_KVM_FH_ENABLED;
}

static inline struct zpci_kvm_answer zpci_kvm_pgm(u16 code)
{
	return (struct zpci_kvm_answer){ .action = ZPCI_KVM_PGM, .pgm = code };
}

static inline struct zpci_kvm_answer zpci_kvm_cc(u8 cc, u8 status)
{
	return (struct zpci_kvm_answer){ .action = ZPCI_KVM_DONE, .cc = cc,
					 .status = status };
}

/* With cc 1 the status goes into the function handle register */
static inline struct zpci_kvm_answer
zpci_kvm_status(struct zpci_kvm_answer answer, u64 *gpr)
{
	if (answer.action == ZPCI_KVM_DONE && answer.cc == ZPCI_CC_ERR)
		zpci_kvm_set_status(gpr, answer.status);
	return answer;
}

static inline struct zpci_kvm_answer zpci_kvm_action(enum zpci_kvm_action a)
{
	return (struct zpci_kvm_answer){ .action = a };
}

static inline struct zpci_kvm_answer
__zpci_kvm_rpcit(const struct zpci_kvm_iommu *iommu, u64 *gprs,
		 unsigned int r1, unsigned int r2, bool pstate)
{
	u64 key, start, len;
	int ret;

	if (pstate)
		return zpci_kvm_pgm(ZPCI_KVM_PGM_PRIVILEGED_OP);
	if (r2 & 1)
		return zpci_kvm_pgm(ZPCI_KVM_PGM_SPECIFICATION);
	key = zpci_kvm_key(gprs[r1] >> 32);
	start = gprs[r2];
	len = gprs[r2 + 1];
	/* Nothing to refresh: the domain's "size 0" means everything */
	if (!len)
		return iommu->has_key(iommu->ctx, key) ?
		       zpci_kvm_cc(ZPCI_CC_OK, 0) :
		       zpci_kvm_action(ZPCI_KVM_USERSPACE);

	ret = iommu->sync(iommu->ctx, key, start, len);
	switch (ret) {
	case 0:
		return zpci_kvm_cc(ZPCI_CC_OK, 0);
	case -EAGAIN:
		return zpci_kvm_action(ZPCI_KVM_RETRY);
	case -EIO:
		/* Already in the error state */
		return zpci_kvm_cc(ZPCI_CC_ERR, ZPCI_KVM_MOD_ST_ERROR_RECOVER);
	case -ENOMEM:
		/* A Linux guest answers with a global refresh */
		return zpci_kvm_cc(ZPCI_CC_ERR, ZPCI_PCI_ST_INSUF_RES);
	case -ENODEV:
		/* The domain's VM is gone: so is the function, for the guest */
		return zpci_kvm_cc(ZPCI_CC_INVAL_HANDLE, 0);
	case -EINVAL:
	case -EFAULT:
	case -ENOENT:
	default:
		return zpci_kvm_action(ZPCI_KVM_USERSPACE);
	}
}

/**
 * zpci_kvm_rpcit() - Answer RPCIT (B9D3) for a KVM-backed function
 * @iommu: how to reach the domain
 * @gprs: the guest's general registers; the status goes into @gprs[@r1]
 * @r1: the R1 field: the function handle, in the high word
 * @r2: the R2 field: an even-odd pair, start and length of the range
 * @pstate: the guest is in problem state
 *
 * The answers are the architecture's and QEMU's. A function without a
 * KVM-backed domain goes to userspace. A range the domain found bad (no
 * table, outside pba..pal, a bad table or frame) has put the function in
 * the error state with all its DMA blocked; the instruction then goes to
 * userspace too, whose answer (cc 1, status 8) comes with the error event
 * the architecture requires and only the VMM can raise.
 *
 * Return: the answer.
 */
static inline struct zpci_kvm_answer
zpci_kvm_rpcit(const struct zpci_kvm_iommu *iommu, u64 *gprs, unsigned int r1,
	       unsigned int r2, bool pstate)
{
	return zpci_kvm_status(__zpci_kvm_rpcit(iommu, gprs, r1, r2, pstate),
			       &gprs[r1]);
}

static inline struct zpci_kvm_answer
__zpci_kvm_mpcifc(const struct zpci_kvm_iommu *iommu, u64 *gprs,
		  unsigned int r1, u64 fiba, bool pstate,
		  int (*read_fib)(void *read_ctx, u64 fiba,
				  struct zpci_fib *fib),
		  void *read_ctx, int *fault_rc)
{
	u8 oc = gprs[r1] & 0xff, dmaas = (gprs[r1] >> 16) & 0xff;
	u64 key = zpci_kvm_key(gprs[r1] >> 32), pba, pal;
	struct zpci_fib fib;
	int ret;

	if (pstate)
		return zpci_kvm_pgm(ZPCI_KVM_PGM_PRIVILEGED_OP);
	if (fiba & 7)
		return zpci_kvm_pgm(ZPCI_KVM_PGM_SPECIFICATION);
	if (oc != ZPCI_MOD_FC_REG_IOAT && oc != ZPCI_MOD_FC_DEREG_IOAT &&
	    oc != ZPCI_MOD_FC_REREG_IOAT)
		return zpci_kvm_action(ZPCI_KVM_USERSPACE);
	if (!iommu->has_key(iommu->ctx, key))
		return zpci_kvm_action(ZPCI_KVM_USERSPACE);

	ret = read_fib(read_ctx, fiba, &fib);
	if (ret) {
		*fault_rc = ret;
		return zpci_kvm_pgm(0);
	}
	if (fib.fmt)
		return zpci_kvm_pgm(ZPCI_KVM_PGM_OPERAND);
	if (dmaas)
		return zpci_kvm_cc(ZPCI_CC_ERR, ZPCI_KVM_MOD_ST_DMAAS_INVAL);
	/*
	 * Without translation (direct addressing, where the function allows
	 * it) the device would use guest physical addresses: that is the
	 * VMM's to set up, before anything changes here.
	 */
	if (oc != ZPCI_MOD_FC_DEREG_IOAT && !(fib.iota & ZPCI_IOTA_IOT_ENABLED))
		return zpci_kvm_action(ZPCI_KVM_USERSPACE);

	if (oc != ZPCI_MOD_FC_REG_IOAT) {
		ret = iommu->set_table(iommu->ctx, key, 0, 0, 0);
		if (ret || oc == ZPCI_MOD_FC_DEREG_IOAT)
			goto answer;
	}
	pba = fib.pba & ~0xfffULL;
	pal = fib.pal | 0xfff;
	if (pba > pal || !fib.iota)
		return zpci_kvm_pgm(ZPCI_KVM_PGM_OPERAND);
	ret = iommu->set_table(iommu->ctx, key, fib.iota, pba, pal);
answer:
	switch (ret) {
	case 0:
		return zpci_kvm_cc(ZPCI_CC_OK, 0);
	case -EBUSY:
		return zpci_kvm_cc(ZPCI_CC_ERR, ZPCI_KVM_MOD_ST_SEQUENCE);
	case -EINVAL:
		return zpci_kvm_pgm(ZPCI_KVM_PGM_OPERAND);
	case -ENOENT:
		return zpci_kvm_action(ZPCI_KVM_USERSPACE);
	case -ENODEV:
		return zpci_kvm_cc(ZPCI_CC_INVAL_HANDLE, 0);
	default:
		return zpci_kvm_cc(ZPCI_CC_ERR, ZPCI_KVM_MOD_ST_INSUF_RES);
	}
}

/**
 * zpci_kvm_mpcifc() - Answer MPCIFC (E3..D0) for a KVM-backed function
 * @iommu: how to reach the domain
 * @gprs: the guest's general registers; the status goes into @gprs[@r1]
 * @r1: the R1 field: function handle (high word), DMA address space (bits
 *	16-23) and operation control (low byte)
 * @fiba: the function information block's guest address
 * @pstate: the guest is in problem state
 * @read_fib: reads the FIB from @fiba; returns 0 or what KVM's guest
 *	access returned, which @fault_rc then holds
 * @read_ctx: for @read_fib
 * @fault_rc: where a failed read's return code goes, for
 *	kvm_s390_inject_prog_cond(), with action %ZPCI_KVM_PGM and @pgm 0
 *
 * Only register-IOAT, deregister-IOAT and reregister-IOAT are answered
 * here, and only for a function with a KVM-backed domain; everything else
 * goes to userspace.
 *
 * Return: the answer.
 */
static inline struct zpci_kvm_answer
zpci_kvm_mpcifc(const struct zpci_kvm_iommu *iommu, u64 *gprs,
		unsigned int r1, u64 fiba, bool pstate,
		int (*read_fib)(void *read_ctx, u64 fiba, struct zpci_fib *fib),
		void *read_ctx, int *fault_rc)
{
	return zpci_kvm_status(__zpci_kvm_mpcifc(iommu, gprs, r1, fiba, pstate,
						 read_fib, read_ctx, fault_rc),
			       &gprs[r1]);
}

/**
 * zpci_kvm_clp() - Follow CLP (B9A0) for a KVM-backed function
 * @iommu: how to reach the domain
 * @addr: the effective address of the guest's request block (the R2
 *	register)
 * @pstate: the guest is in problem state
 * @read_req: reads the request block at @addr; returns 0 if it could
 * @read_ctx: for @read_req
 *
 * Disabling a function ends its IOAT registration without an MPCIFC, and
 * CLP stays the VMM's: only the VMM enables, disables and resets a
 * function. So before the instruction goes to userspace, a SET PCI
 * FUNCTION request that disables an enabled function with a KVM-backed
 * domain drops the domain's guest table: the function's DMA is blocked
 * whatever the VMM answers, and the guest registers its table again after
 * it enables the function again. Everything else about CLP, including
 * every program interruption, is the VMM's.
 *
 * Return: the answer, always %ZPCI_KVM_USERSPACE.
 */
static inline struct zpci_kvm_answer
zpci_kvm_clp(const struct zpci_kvm_iommu *iommu, u64 addr, bool pstate,
	     int (*read_req)(void *read_ctx, u64 addr,
			     struct clp_req_set_pci *req),
	     void *read_ctx)
{
	struct clp_req_set_pci req;
	u64 key;

	if (pstate || (addr & 7) || read_req(read_ctx, addr, &req))
		goto out;
	if (req.hdr.cmd != CLP_SET_PCI_FN || req.hdr.len != sizeof(req) ||
	    req.hdr.fmt || req.oc != CLP_SET_DISABLE_PCI_FN ||
	    !(req.fh & ZPCI_KVM_FH_ENABLED))
		goto out;
	key = zpci_kvm_key(req.fh);
	if (iommu->has_key(iommu->ctx, key))
		iommu->set_table(iommu->ctx, key, 0, 0, 0);
out:
	return zpci_kvm_action(ZPCI_KVM_USERSPACE);
}

#endif /* _ASM_S390_KVM_ZPCI_IOMMU_H */
