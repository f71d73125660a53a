// SPDX-License-Identifier: GPL-2.0
/*
 * KVM_RUN smoke test for the kvm-domain test VM: proves that real KVM works
 * in the guest (nested under QEMU TCG) before anything builds on it.
 *
 * One VM, one memslot, one vCPU in real mode running
 *
 *	mov $0x3f8, %dx; mov $'K', %al; out %al, (%dx); hlt
 *
 * and checking that KVM_RUN first exits with KVM_EXIT_IO for that port and
 * byte, then with KVM_EXIT_HLT (no in-kernel irqchip, so HLT exits to
 * userspace).  Prints TAP.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "vmm_test.h"

#define MEM_SIZE	0x10000
#define CODE_GPA	0x1000

static const unsigned char code[] = {
	0xba, 0xf8, 0x03,	/* mov $0x3f8, %dx */
	0xb0, 'K',		/* mov $'K', %al */
	0xee,			/* out %al, (%dx) */
	0xf4,			/* hlt */
};

static const char *exit_name(unsigned int reason)
{
	switch (reason) {
	case KVM_EXIT_IO:		return "KVM_EXIT_IO";
	case KVM_EXIT_HLT:		return "KVM_EXIT_HLT";
	case KVM_EXIT_MMIO:		return "KVM_EXIT_MMIO";
	case KVM_EXIT_SHUTDOWN:		return "KVM_EXIT_SHUTDOWN";
	case KVM_EXIT_FAIL_ENTRY:	return "KVM_EXIT_FAIL_ENTRY";
	case KVM_EXIT_INTERNAL_ERROR:	return "KVM_EXIT_INTERNAL_ERROR";
	default:			return "other";
	}
}

/* One KVM_RUN, with its outcome as a TAP comment */
static int run_vcpu(int vcpu, struct kvm_run *run)
{
	int ret = ioctl(vcpu, KVM_RUN, 0);

	if (ret)
		printf("# KVM_RUN: %s\n", strerror(errno));
	else
		printf("# exit reason %u (%s)\n", run->exit_reason,
		       exit_name(run->exit_reason));
	return ret;
}

int main(void)
{
	const int planned = 6;
	struct kvm_userspace_memory_region region;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	int kvm, vm, vcpu, ret, run_size;
	void *mem;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n1..%d\n", planned);

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	tap(kvm >= 0, "open /dev/kvm%s%s", kvm < 0 ? ": " : "",
	    kvm < 0 ? strerror(errno) : "");
	if (kvm < 0)
		return bail(planned, "no /dev/kvm");

	ret = ioctl(kvm, KVM_GET_API_VERSION, 0);
	tap(ret == KVM_API_VERSION, "KVM_GET_API_VERSION is %d (got %d)",
	    KVM_API_VERSION, ret);

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ret = -1;
	if (vm >= 0 && mem != MAP_FAILED) {
		memcpy((char *)mem + CODE_GPA, code, sizeof(code));
		region = (struct kvm_userspace_memory_region) {
			.slot = 0,
			.guest_phys_addr = 0,
			.memory_size = MEM_SIZE,
			.userspace_addr = (unsigned long)mem,
		};
		ret = ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region);
	}
	tap(ret == 0, "KVM_CREATE_VM and one memslot%s%s",
	    ret ? ": " : "", ret ? strerror(errno) : "");
	if (ret)
		return bail(planned, "no VM");

	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	run = MAP_FAILED;
	if (vcpu >= 0 && run_size > 0)
		run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			   vcpu, 0);
	ret = -1;
	if (run != MAP_FAILED && !ioctl(vcpu, KVM_GET_SREGS, &sregs)) {
		sregs.cs.base = 0;
		sregs.cs.selector = 0;
		memset(&regs, 0, sizeof(regs));
		regs.rip = CODE_GPA;
		regs.rflags = 0x2;
		if (!ioctl(vcpu, KVM_SET_SREGS, &sregs))
			ret = ioctl(vcpu, KVM_SET_REGS, &regs);
	}
	tap(ret == 0, "KVM_CREATE_VCPU in real mode at 0x%x%s%s", CODE_GPA,
	    ret ? ": " : "", ret ? strerror(errno) : "");
	if (ret)
		return bail(planned, "no vCPU");

	ret = run_vcpu(vcpu, run);
	tap(ret == 0 && run->exit_reason == KVM_EXIT_IO &&
	    run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x3f8 &&
	    run->io.size == 1 &&
	    *((char *)run + run->io.data_offset) == 'K',
	    "KVM_RUN exits with KVM_EXIT_IO: out 'K' to port 0x3f8");

	ret = run_vcpu(vcpu, run);
	tap(ret == 0 && run->exit_reason == KVM_EXIT_HLT,
	    "KVM_RUN exits with KVM_EXIT_HLT");

	close(vcpu);
	close(vm);
	close(kvm);
	return failed ? 1 : 0;
}
