/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the VMM-style test programs of tools/kvm-domain share: TAP output,
 * and QEMU's edu device found in sysfs, bound to vfio-pci and opened
 * through its VFIO cdev.
 */
#ifndef KVMDOM_VMM_TEST_H
#define KVMDOM_VMM_TEST_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#define SYSPCI		"/sys/bus/pci/devices"

static int test_num;
static int failed;

static inline void tap(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d ", ok ? "" : "not ", ++test_num);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok)
		failed++;
}

/* Report the remaining tests as failed: a step they need did not work. */
static inline int bail(int planned, const char *why)
{
	while (test_num < planned)
		tap(0, "step %d # not reached: %s", test_num + 1, why);
	return 1;
}

static inline int sysfs_read(const char *path, char *buf, int len)
{
	FILE *f = fopen(path, "r");
	int ok = f && fgets(buf, len, f);

	if (f)
		fclose(f);
	return ok ? 0 : -1;
}

static inline int sysfs_write(const char *path, const char *val)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(val, f);
	return fclose(f) ? -1 : 0;
}

/*
 * The number after @key and @sep at the start of a line of @file (@sep
 * ':' in /proc/meminfo, ' ' in /proc/vmstat), else -1
 */
static inline long long read_key(const char *file, const char *key, char sep)
{
	size_t n = strlen(key);
	long long val = -1;
	char line[256];
	FILE *f;

	f = fopen(file, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == sep) {
			val = strtoll(line + n + 1, NULL, 10);
			break;
		}
	if (f)
		fclose(f);
	return val;
}

/* The first edu device (1234:11e8): 0 and its address in @bdf, or -1 */
static inline int edu_find(char *bdf, size_t len)
{
	char ven[32], did[32], path[512];
	struct dirent *e;
	DIR *d;
	int ret = -1;

	d = opendir(SYSPCI);
	while (d && ret && (e = readdir(d))) {
		snprintf(path, sizeof(path), SYSPCI "/%s/vendor", e->d_name);
		if (sysfs_read(path, ven, sizeof(ven)))
			continue;
		snprintf(path, sizeof(path), SYSPCI "/%s/device", e->d_name);
		if (sysfs_read(path, did, sizeof(did)) ||
		    strcmp(ven, "0x1234\n") || strcmp(did, "0x11e8\n"))
			continue;
		snprintf(bdf, len, "%s", e->d_name);
		ret = 0;
	}
	if (d)
		closedir(d);
	return ret;
}

/* Bind @bdf to vfio-pci if it is not, and open its VFIO cdev (else -1) */
static inline int edu_open(const char *bdf)
{
	char path[512], link[512], cdev[300];
	const char *drv;
	struct dirent *e;
	ssize_t n;
	DIR *d;
	int fd = -1;

	snprintf(path, sizeof(path), SYSPCI "/%s/driver", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	drv = strrchr(link, '/');
	drv = n <= 0 ? "no driver" : drv ? drv + 1 : link;
	printf("# %s: driver %s\n", bdf, drv);
	if (strcmp(drv, "vfio-pci")) {
		if (access("/sys/bus/pci/drivers/vfio-pci", F_OK) &&
		    system("modprobe vfio-pci >/dev/null 2>&1"))
			printf("# modprobe vfio-pci failed (ignored)\n");
		snprintf(path, sizeof(path), SYSPCI "/%s/driver_override", bdf);
		if (sysfs_write(path, "vfio-pci"))
			printf("# %s: %s\n", path, strerror(errno));
		snprintf(path, sizeof(path), SYSPCI "/%s/driver/unbind", bdf);
		if (n > 0 && sysfs_write(path, bdf))
			printf("# %s: %s\n", path, strerror(errno));
		if (sysfs_write("/sys/bus/pci/drivers_probe", bdf))
			printf("# drivers_probe: %s\n", strerror(errno));
	}
	snprintf(path, sizeof(path), SYSPCI "/%s/vfio-dev", bdf);
	d = opendir(path);
	if (!d)
		printf("# %s: %s\n", path, strerror(errno));
	while (d && fd < 0 && (e = readdir(d))) {
		if (strncmp(e->d_name, "vfio", 4))
			continue;
		snprintf(cdev, sizeof(cdev), "/dev/vfio/devices/%s", e->d_name);
		fd = open(cdev, O_RDWR | O_CLOEXEC);
		printf("# open %s%s%s\n", cdev, fd < 0 ? ": " : "",
		       fd < 0 ? strerror(errno) : "");
		break;
	}
	if (d)
		closedir(d);
	return fd;
}

#ifdef IOMMUFD_TYPE
/* A HWPT on which VT-d walks KVM's table for VM @vm_fd: 0, or -1 and errno */
static inline int vtd_hwpt_alloc(int iommufd, __u32 dev_id, int vm_fd,
				 __u32 *id)
{
	struct iommu_hwpt_kvm data = {
		.kvm_fd = vm_fd,
		.format = IOMMU_HWPT_KVM_FORMAT_VTD_TDP,
		.data_type = IOMMU_HWPT_KVM_DATA_NONE,
	};
	struct iommu_hwpt_alloc alloc = {
		.size = sizeof(alloc),
		.dev_id = dev_id,
		.data_type = IOMMU_HWPT_DATA_KVM,
		.data_len = sizeof(data),
		.data_uptr = (unsigned long)&data,
	};
	int ret = ioctl(iommufd, IOMMU_HWPT_ALLOC, &alloc);

	*id = alloc.out_hwpt_id;
	return ret;
}
#endif

#endif /* KVMDOM_VMM_TEST_H */
