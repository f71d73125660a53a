// SPDX-License-Identifier: GPL-2.0
/*
 * The guest's zPCI DMA-table instructions for functions whose DMA is
 * translated by a KVM-backed IOMMU domain: RPCIT and MPCIFC's IOAT
 * operations are handed to the domain in the kernel instead of exiting to
 * userspace, and CLP's disable drops the domain's table on its way there.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <linux/kvm_host.h>
#include <linux/kvm_iommu.h>
#include <asm/kvm_zpci_iommu.h>

#include "gaccess.h"
#include "s390.h"

/*
 * The domain is found by the guest's function handle, its sync key, in
 * KVM's list of IOMMU listeners, inside kvm->srcu: the domain cannot be
 * freed while it runs (virt/kvm/iommu.c). kvm.ko calls nothing of the
 * IOMMU side; the listener brought the callbacks.
 */
static bool kvm_s390_zpci_has_key(void *ctx, u64 key)
{
	struct kvm_vcpu *vcpu = ctx;

	return kvm_iommu_has_sync_key(vcpu->kvm, key);
}

/* A refresh split by the domain continues for this vCPU only */
static int kvm_s390_zpci_sync(void *ctx, u64 key, u64 iova, u64 size)
{
	struct kvm_vcpu *vcpu = ctx;

	return kvm_iommu_sync(vcpu->kvm, vcpu->vcpu_idx, key, iova, size);
}

static int kvm_s390_zpci_set_table(void *ctx, u64 key, u64 anchor, u64 first,
				   u64 last)
{
	struct kvm_vcpu *vcpu = ctx;

	return kvm_iommu_set_table(vcpu->kvm, key, anchor, first, last);
}

/* How the decoding in <asm/kvm_zpci_iommu.h> reaches @vcpu's VM's domains */
static struct zpci_kvm_iommu kvm_s390_zpci_iommu(struct kvm_vcpu *vcpu)
{
	return (struct zpci_kvm_iommu){
		.ctx = vcpu,
		.has_key = kvm_s390_zpci_has_key,
		.sync = kvm_s390_zpci_sync,
		.set_table = kvm_s390_zpci_set_table,
	};
}

/* With cc 1 the status is already in the guest's r1 */
static int kvm_s390_zpci_answer(struct kvm_vcpu *vcpu,
				struct zpci_kvm_answer answer, int fault_rc)
{
	switch (answer.action) {
	case ZPCI_KVM_DONE:
		kvm_s390_set_psw_cc(vcpu, answer.cc);
		return 0;
	case ZPCI_KVM_RETRY:
		/* The domain saved its progress: the next round continues */
		kvm_s390_retry_instr(vcpu);
		return 0;
	case ZPCI_KVM_PGM:
		if (!answer.pgm)
			return kvm_s390_inject_prog_cond(vcpu, fault_rc);
		return kvm_s390_inject_program_int(vcpu, answer.pgm);
	case ZPCI_KVM_USERSPACE:
	default:
		return -EOPNOTSUPP;
	}
}

/* RPCIT: B9D3 R1,R2 */
int kvm_s390_handle_rpcit(struct kvm_vcpu *vcpu)
{
	const struct zpci_kvm_iommu iommu = kvm_s390_zpci_iommu(vcpu);
	bool pstate = vcpu->arch.sie_block->gpsw.mask & PSW_MASK_PSTATE;
	struct zpci_kvm_answer answer;
	int r1, r2;

	/* Their operands and PSW are the ultravisor's: leave them to the VMM */
	if (kvm_s390_pv_cpu_is_protected(vcpu))
		return -EOPNOTSUPP;
	kvm_s390_get_regs_rre(vcpu, &r1, &r2);
	answer = zpci_kvm_rpcit(&iommu, vcpu->run->s.regs.gprs, r1, r2, pstate);
	return kvm_s390_zpci_answer(vcpu, answer, 0);
}

struct kvm_s390_zpci_read {
	struct kvm_vcpu *vcpu;
	u8 ar;
};

static int kvm_s390_zpci_read_fib(void *ctx, u64 fiba, struct zpci_fib *fib)
{
	struct kvm_s390_zpci_read *r = ctx;

	return read_guest(r->vcpu, fiba, r->ar, fib, sizeof(*fib));
}

static int kvm_s390_zpci_read_clp(void *ctx, u64 addr,
				  struct clp_req_set_pci *req)
{
	struct kvm_s390_zpci_read *r = ctx;

	return read_guest(r->vcpu, addr, r->ar, req, sizeof(*req));
}

/* MPCIFC: E3 R1,D2(X2,B2) with the low opcode byte D0 (RXY) */
int kvm_s390_handle_mpcifc(struct kvm_vcpu *vcpu)
{
	const struct zpci_kvm_iommu iommu = kvm_s390_zpci_iommu(vcpu);
	bool pstate = vcpu->arch.sie_block->gpsw.mask & PSW_MASK_PSTATE;
	u64 *gprs = vcpu->run->s.regs.gprs;
	int r1 = (vcpu->arch.sie_block->ipa & 0xf0) >> 4;
	int x2 = vcpu->arch.sie_block->ipa & 0xf;
	struct kvm_s390_zpci_read read = { .vcpu = vcpu };
	struct zpci_kvm_answer answer;
	int fault_rc = 0;
	u64 fiba;

	if (kvm_s390_pv_cpu_is_protected(vcpu))
		return -EOPNOTSUPP;
	fiba = kvm_s390_get_base_disp_rsy(vcpu, &read.ar) +
	       (x2 ? gprs[x2] : 0);
	fiba = kvm_s390_logical_to_effective(vcpu, fiba);
	answer = zpci_kvm_mpcifc(&iommu, gprs, r1, fiba, pstate,
				 kvm_s390_zpci_read_fib, &read, &fault_rc);
	return kvm_s390_zpci_answer(vcpu, answer, fault_rc);
}

/*
 * CLP: B9A0 R1,R2,M4. Always the VMM's; a disable of a function with a
 * KVM-backed domain first drops the domain's table, as the deregistration
 * the disable implies.
 */
int kvm_s390_handle_clp(struct kvm_vcpu *vcpu)
{
	const struct zpci_kvm_iommu iommu = kvm_s390_zpci_iommu(vcpu);
	bool pstate = vcpu->arch.sie_block->gpsw.mask & PSW_MASK_PSTATE;
	struct kvm_s390_zpci_read read = { .vcpu = vcpu };
	int r1, r2;
	u64 addr;

	if (kvm_s390_pv_cpu_is_protected(vcpu))
		return -EOPNOTSUPP;
	kvm_s390_get_regs_rre(vcpu, &r1, &r2);
	read.ar = r2;
	addr = kvm_s390_logical_to_effective(vcpu, vcpu->run->s.regs.gprs[r2]);
	zpci_kvm_clp(&iommu, addr, pstate, kvm_s390_zpci_read_clp, &read);
	return -EOPNOTSUPP;
}
