// SPDX-License-Identifier: GPL-2.0
/*
 * KVM-backed IOMMU domains: a VMM's view, for make run.
 *
 * Walks the uAPI the way a VMM would, with a real KVM VM and the mock
 * mock IOMMU driver's device, and prints what the kernel answers at every step,
 * including debugfs. With an edu device bound to vfio-pci, it also asks
 * what the edu device's IOMMU can do.
 *
 * Exits non-zero if any step does not behave as documented.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

#include "iommu_kvm_test.h"

#define DOMAINS "/sys/kernel/debug/iommu-kvm/domains"
#define MEM_GPA 0x100000ULL
#define MEM_SIZE (2ULL << 20)

static int failures;

#define step(cond, fmt, ...)                                               \
	do {                                                               \
		int __ok = (cond);                                         \
		printf("  [%s] " fmt "\n", __ok ? " ok " : "FAIL",         \
		       ##__VA_ARGS__);                                     \
		if (!__ok)                                                 \
			failures++;                                        \
	} while (0)

static void show_file(const char *path)
{
	char buf[4096];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("  (cannot open %s: %s)\n", path, strerror(errno));
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		printf("  %s: (empty)\n", path);
		return;
	}
	buf[n] = 0;
	printf("  $ cat %s\n", path);
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		printf("    %s\n", l);
}

static const char *fmt_names(__u64 formats, char *s)
{
	s[0] = 0;
	if (formats & (1ULL << IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHARED))
		strcat(s, "selftest-shared ");
	if (formats & (1ULL << IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHADOW))
		strcat(s, "selftest-shadow ");
	if (formats & (1ULL << IOMMU_HWPT_KVM_FORMAT_VTD_TDP))
		strcat(s, "vtd-tdp ");
	if (!s[0])
		snprintf(s, 64, "none");
	return s;
}

/* The edu device through VFIO's cdev, if one is bound to vfio-pci */
static void edu_info(int iommufd)
{
	struct vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind),
		.iommufd = iommufd,
	};
	struct iommu_hw_info info = { .size = sizeof(info) };
	char path[64], names[64];
	int fd = -1;

	for (int i = 0; i < 8 && fd < 0; i++) {
		snprintf(path, sizeof(path), "/dev/vfio/devices/vfio%d", i);
		fd = open(path, O_RDWR);
	}
	if (fd < 0) {
		printf("  no VFIO device cdev: edu is not bound to vfio-pci\n");
		return;
	}
	step(!ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind),
	     "VFIO_DEVICE_BIND_IOMMUFD %s -> dev_id %u", path,
	     bind.out_devid);
	info.dev_id = bind.out_devid;
	step(!ioctl(iommufd, IOMMU_GET_HW_INFO, &info),
	     "IOMMU_GET_HW_INFO(edu) -> KVM formats: %s",
	     fmt_names(info.out_kvm_formats, names));
	if (info.out_kvm_formats & (1ULL << IOMMU_HWPT_KVM_FORMAT_VTD_TDP))
		printf("  (VT-d can walk the table KVM keeps for a VM: kvm_vtd_dma makes edu DMA through it)\n");
	else
		printf("  (this VT-d unit has neither first- nor second-stage translation in scalable mode: it cannot walk KVM's table)\n");
	close(fd);
}

int main(void)
{
	struct iommu_kvm_mock_bind bind = { .argsz = sizeof(bind) };
	struct iommu_hw_info info = { .size = sizeof(info) };
	struct iommu_hwpt_kvm kvm_data = {};
	struct iommu_hwpt_alloc alloc = {
		.size = sizeof(alloc),
		.data_type = IOMMU_HWPT_DATA_KVM,
		.data_len = sizeof(kvm_data),
		.data_uptr = (uintptr_t)&kvm_data,
	};
	struct iommu_kvm_mock_attach attach = { .argsz = sizeof(attach) };
	struct iommu_kvm_mock_info minfo = { .argsz = sizeof(minfo) };
	struct iommu_destroy destroy = { .size = sizeof(destroy) };
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = MEM_GPA,
		.memory_size = MEM_SIZE,
	};
	struct iommu_kvm_mock_dma dma = { .argsz = sizeof(dma) };
	struct iommu_kvm_mock_fault fault = { .argsz = sizeof(fault) };
	static const char msg[16] = "DMA from device";
	int kvm, vm, iommufd, mock;
	char buf[16], names[64], names2[64];
	void *mem;

	printf("== A VMM gives a device to a KVM guest through a KVM-backed HWPT\n");
	kvm = open("/dev/kvm", O_RDWR);
	iommufd = open("/dev/iommu", O_RDWR);
	mock = open("/dev/iommu_kvm_mock", O_RDWR);
	step(kvm >= 0, "open /dev/kvm");
	step(iommufd >= 0, "open /dev/iommu");
	step(mock >= 0, "open /dev/iommu_kvm_mock (a new mock device)");
	if (kvm < 0 || iommufd < 0 || mock < 0)
		return 1;

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	step(vm >= 0, "KVM_CREATE_VM -> fd %d", vm);
	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	region.userspace_addr = (uintptr_t)mem;
	step(!ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region),
	     "KVM_SET_USER_MEMORY_REGION: 2 MiB of guest RAM at GPA 0x%llx",
	     MEM_GPA);

	printf("\n== The device joins iommufd (as VFIO_DEVICE_BIND_IOMMUFD does)\n");
	bind.iommufd = iommufd;
	step(!ioctl(mock, IOMMU_KVM_MOCK_BIND, &bind), "bind -> dev_id %u",
	     bind.out_dev_id);
	info.dev_id = bind.out_dev_id;
	step(!ioctl(iommufd, IOMMU_GET_HW_INFO, &info),
	     "IOMMU_GET_HW_INFO -> KVM formats: %s(shadow: %s)",
	     fmt_names(info.out_kvm_formats, names),
	     fmt_names(info.out_kvm_shadow_formats, names2));

	printf("\n== A HWPT backed by the VM, no IO page table, nothing pinned\n");
	alloc.dev_id = bind.out_dev_id;
	kvm_data.kvm_fd = vm;
	kvm_data.format = IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHARED;
	step(!ioctl(iommufd, IOMMU_HWPT_ALLOC, &alloc),
	     "IOMMU_HWPT_ALLOC(IOMMU_HWPT_DATA_KVM: kvm_fd=%d, selftest-shared) -> hwpt %u",
	     vm, alloc.out_hwpt_id);
	attach.pt_id = alloc.out_hwpt_id;
	step(!ioctl(mock, IOMMU_KVM_MOCK_ATTACH, &attach),
	     "attach (as VFIO_DEVICE_ATTACH_IOMMUFD_PT does)");
	show_file(DOMAINS);

	dma.iova = MEM_GPA + 0x40;
	dma.length = sizeof(buf);
	dma.uptr = (uintptr_t)buf;
	step(ioctl(mock, IOMMU_KVM_MOCK_DMA, &dma) && errno == EFAULT,
	     "device DMA to IOVA 0x%llx before KVM mapped it faults (EFAULT)",
	     dma.iova);
	fault.flags = IOMMU_KVM_MOCK_FAULT_WRITE;
	fault.gpa = MEM_GPA;
	fault.length = 4096;
	step(!ioctl(mock, IOMMU_KVM_MOCK_FAULT, &fault),
	     "the IOMMU finds GPA 0x%llx in KVM (memslot, host page)",
	     fault.gpa);
	dma.flags = IOMMU_KVM_MOCK_DMA_WRITE;
	dma.uptr = (uintptr_t)msg;
	step(!ioctl(mock, IOMMU_KVM_MOCK_DMA, &dma) &&
	     dma.out_gpa == MEM_GPA + 0x40 &&
	     !memcmp((char *)mem + 0x40, msg, sizeof(msg)),
	     "device DMA writes \"%s\" at IOVA 0x%llx: guest RAM at GPA 0x%llx has it",
	     msg, dma.iova, dma.out_gpa);

	printf("\n== KVM tells the domain before guest memory is reused\n");
	step(!madvise(mem, 4 * 4096, MADV_DONTNEED),
	     "madvise(MADV_DONTNEED) on 4 pages of guest RAM");
	/* It may cover more: a huge page that backed them is split first */
	step(!ioctl(mock, IOMMU_KVM_MOCK_INFO, &minfo) &&
	     minfo.out_inv_start <= MEM_GPA &&
	     minfo.out_inv_last >= MEM_GPA + 4 * 4096 - 1,
	     "the domain saw invalidation #%llu of GPA 0x%llx-0x%llx",
	     minfo.out_invalidations, minfo.out_inv_start,
	     minfo.out_inv_last);
	dma.flags = 0;
	dma.uptr = (uintptr_t)buf;
	step(ioctl(mock, IOMMU_KVM_MOCK_DMA, &dma) && errno == EFAULT,
	     "device DMA to the dropped page faults (EFAULT), it never reaches the old page");
	memset(buf, 0x5a, sizeof(buf));
	step(!ioctl(mock, IOMMU_KVM_MOCK_FAULT, &fault) &&
	     !ioctl(mock, IOMMU_KVM_MOCK_DMA, &dma) && !buf[0] &&
	     !memcmp(buf, buf + 1, sizeof(buf) - 1),
	     "looked up again: DMA reads the new, zeroed page");

	printf("\n== The VM goes away while the device is attached\n");
	close(vm);
	step(!ioctl(mock, IOMMU_KVM_MOCK_INFO, &minfo) &&
	     (minfo.out_flags & IOMMU_KVM_MOCK_INFO_DEAD),
	     "close(vm): the domain is dead");
	step(ioctl(mock, IOMMU_KVM_MOCK_DMA, &dma) && errno == ENODEV,
	     "device DMA is blocked (ENODEV)");
	show_file(DOMAINS);

	printf("\n== Teardown\n");
	destroy.id = alloc.out_hwpt_id;
	step(ioctl(iommufd, IOMMU_DESTROY, &destroy) && errno == EBUSY,
	     "IOMMU_DESTROY while attached -> EBUSY");
	step(!ioctl(mock, IOMMU_KVM_MOCK_DETACH), "detach");
	step(!ioctl(iommufd, IOMMU_DESTROY, &destroy), "IOMMU_DESTROY");
	show_file(DOMAINS);
	close(mock);

	printf("\n== A device behind the platform's IOMMU\n");
	edu_info(iommufd);
	close(iommufd);

	printf("\n%s: %d step(s) failed\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
