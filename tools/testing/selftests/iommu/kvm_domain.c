// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tests of KVM-backed IOMMU domains through iommufd: IOMMU_GET_HW_INFO and
 * IOMMU_HWPT_ALLOC with IOMMU_HWPT_DATA_KVM and a real KVM VM, and the mock
 * backend of CONFIG_IOMMU_KVM_DOMAIN_TEST (iommu_kvm_mock.ko), whose every
 * open of /dev/iommu_kvm_mock is a device that binds, attaches and does DMA.
 *
 * Needs root, /dev/kvm (VMs with memslots; on x86_64 one test runs a vCPU),
 * iommu_kvm_mock loaded and debugfs. Mock devices are platform devices
 * without MSI isolation, so every fixture sets iommufd's
 * allow_unsafe_interrupts while a test runs and puts it back afterwards.
 *
 * The fixtures tear down in the parent (FIXTURE_TEARDOWN_PARENT), once the
 * test process has exited and the kernel has released its files, whatever
 * state the test left them in, and however it ended: a failed ASSERT does
 * not skip it. The teardown checks that no KVM-backed domain of the test
 * survived, and that the kernel logged no warning, BUG, oops or lockdep
 * report from the start of the test to the end of its exit.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/kvm.h>

#include "../kselftest_harness.h"
#include "../../../../drivers/iommu/kvm-domain/iommu_kvm_test.h"

#define BIT_ULL(nr) (1ULL << (nr))

#define FMT_SHARED IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHARED
#define FMT_SHADOW IOMMU_HWPT_KVM_FORMAT_SELFTEST_SHADOW
#define MOCK_FORMATS (BIT_ULL(FMT_SHARED) | BIT_ULL(FMT_SHADOW))

#define PAGE IOMMU_KVM_SELFTEST_PAGE_SIZE

/*
 * Guest memory: MEM_SIZE bytes, memslot 0 at GPA 0, and mapped into the IOAS
 * at IOVA == GPA in four areas so that one page (VICTIM_GPA) can be unmapped
 * on its own. The shadow format's guest table is at TABLE_GPA.
 */
#define MEM_SIZE (2ULL << 20)
#define TABLE_GPA 0x1000ULL
#define NR_ENTRIES 16
#define DATA_GPA 0x3000ULL
#define DATA2_GPA 0x4000ULL
#define VICTIM_GPA 0x8000ULL
#define NEIGH_GPA 0x9000ULL
/* A second memslot, for KVM invalidations at a GPA that is not 0 */
#define SLOT1_GPA 0x40000000ULL
/* Not mapped by the nest parent */
#define OUTSIDE_GPA 0x40000000ULL

/* Guest memory the fail_nth sweep maps into the IOAS */
#define NTH_MAP_SIZE (16 * PAGE)

#define MAX_MOCKS 4

#define UNSAFE_PARAM "/sys/module/iommufd/parameters/allow_unsafe_interrupts"
#define DEBUGFS "/sys/kernel/debug"
#define FAIL_PAGE DEBUGFS "/fail_page_alloc"
#define DOMAINS_FILE DEBUGFS "/iommu-kvm/domains"
#define KMEMLEAK_FILE DEBUGFS "/kmemleak"
#define KVM_REFCNT "/sys/module/kvm/refcnt"
#define MOCK_MODULE "iommu_kvm_mock"
#define MOCK_REFCNT "/sys/module/" MOCK_MODULE "/refcnt"

/* A failed call and its errno */
#define ASSERT_ERRNO(expected_errno, cmd)         \
	({                                        \
		ASSERT_EQ(-1, cmd);               \
		ASSERT_EQ(expected_errno, errno); \
	})

static __u8 pattern(__u64 gpa)
{
	return (gpa ^ (gpa >> 8) ^ (gpa >> 12) ^ 0x5a) & 0xff;
}

/* Files */

static ssize_t read_file(const char *path, char *buf, size_t size)
{
	ssize_t len = 0, n = 0;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (len < (ssize_t)size - 1) {
		n = read(fd, buf + len, size - 1 - len);
		if (n <= 0)
			break;
		len += n;
	}
	err = errno;
	close(fd);
	buf[len] = 0;
	if (n < 0) {
		errno = err;
		return -1;
	}
	return len;
}

static int write_file(const char *path, const char *val)
{
	ssize_t n;
	int fd, err;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = write(fd, val, strlen(val));
	err = errno;
	close(fd);
	errno = err;
	return n == (ssize_t)strlen(val) ? 0 : -1;
}

/* A number in a sysfs file, -1 if there is no such file */
static long read_long(const char *path)
{
	char buf[64];

	if (read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/* delete_module(@name) without waiting: 0 if it unloaded, else errno */
static int unload_module(const char *name)
{
	return syscall(__NR_delete_module, name, O_NONBLOCK) ? errno : 0;
}

/* delete_module() of a module that something still holds fails */
#define ASSERT_UNLOAD_REFUSED(name)                                          \
	do {                                                                 \
		const char *__name = (name);                                 \
		int __err = unload_module(__name);                           \
									     \
		ASSERT_TRUE(__err == EWOULDBLOCK || __err == EBUSY)          \
			TH_LOG("delete_module(%s): %s", __name,              \
			       strerror(__err));                             \
	} while (0)

static __attribute__((constructor)) void mount_debugfs(void)
{
	if (access(DEBUGFS "/iommu-kvm", F_OK))
		mount("debugfs", DEBUGFS, "debugfs", 0, NULL);
}

/* debugfs: /sys/kernel/debug/iommu-kvm/domains, see kvm-domain/debugfs.c */

#define DBG_ANY UINT_MAX
#define DBG_NONE UINT_MAX

struct dbg_domain {
	unsigned int id;
	char driver[32];
	char format[32];
	int vm;
	char state[8];
	char parent[8];
	/* "  dev <name>" lines: the devices the driver has on the domain */
	unsigned int devices;
	long long invalidations;
	long long syncs;
	long long faults;
	/* The mock backend's line */
	int mock_blocked;
	unsigned int mock_shadow;
};

static char dbg_buf[1 << 16];

/*
 * Returns how many domains the VMs of process @pid have (of all processes if
 * @pid is 0), -1 if the file cannot be read, -2 if a domain line does not
 * have the documented format. If @out is given, fills it with the domain
 * @id, or the first one counted if @id is DBG_ANY; out->id is DBG_NONE if
 * there is none.
 */
static int dbg_domains(pid_t pid, unsigned int id, struct dbg_domain *out)
{
	struct dbg_domain *sel = NULL;
	char *line, *save;
	int n = 0;

	if (out) {
		memset(out, 0, sizeof(*out));
		out->id = DBG_NONE;
	}
	if (read_file(DOMAINS_FILE, dbg_buf, sizeof(dbg_buf)) < 0)
		return -1;

	for (line = strtok_r(dbg_buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct dbg_domain d = {};

		if (!strncmp(line, "domain ", 7)) {
			if (sscanf(line,
				   "domain %u driver=%31s format=%31s vm=%d state=%7s parent=%7s invalidations=%lld syncs=%lld faults=%lld",
				   &d.id, d.driver, d.format, &d.vm, d.state,
				   d.parent, &d.invalidations, &d.syncs,
				   &d.faults) != 9)
				return -2;
			sel = NULL;
			if (pid && d.vm != pid)
				continue;
			n++;
			if (out && out->id == DBG_NONE &&
			    (id == DBG_ANY || d.id == id)) {
				*out = d;
				sel = out;
			}
		} else if (sel && !strncmp(line, "  dev ", 6)) {
			sel->devices++;
		} else if (sel && !strncmp(line, "  mock ", 7)) {
			if (sscanf(line, "  mock blocked=%d shadow_entries=%u",
				   &sel->mock_blocked, &sel->mock_shadow) != 2)
				return -2;
		}
	}
	return n;
}

/* The kernel log: splats since the fd was opened */

static const char *const splat_patterns[] = {
	"WARNING:", "BUG:", "Oops", "lockdep", "circular locking",
	"possible recursive locking", "kernel BUG", "general protection",
	"UBSAN:", "KASAN:", "refcount_t:", "list_add corruption",
	"list_del corruption", "bad unlock balance",
};

/*
 * Open the kernel log at its end and log a marker for the start of test
 * @name; *@seq is set to the marker's sequence number, 0 if there is none.
 */
static int kmsg_open(const char *name, __u64 *seq)
{
	char rec[8192], mark[256];
	int fd, len;
	ssize_t n;

	*seq = 0;
	fd = open("/dev/kmsg", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	lseek(fd, 0, SEEK_END);
	len = snprintf(mark, sizeof(mark), "<5>kvm_domain: %d starts %s\n",
		       getpid(), name);
	if (write(fd, mark, len) != len)
		return fd;
	/* Find it; what comes before it was logged before the test */
	while ((n = read(fd, rec, sizeof(rec) - 1)) > 0 ||
	       (n < 0 && errno == EPIPE)) {
		unsigned long long s;

		if (n <= 0)
			continue;
		rec[n] = 0;
		if (strstr(rec, mark + 3) && sscanf(rec, "%*u,%llu", &s) == 1) {
			*seq = s;
			break;
		}
	}
	return fd;
}

/*
 * Read what the kernel logged after record @since (all that @fd has not read
 * yet if @since is 0) and return how many records matched a splat pattern.
 * Logs those and what followed them.
 */
static int __kmsg_splats(int fd, __u64 since)
{
	char rec[8192];
	int found = 0, context = 0;

	if (fd < 0)
		return 0;
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		unsigned long long seq;
		char *msg, *end;
		size_t i;

		if (n < 0 && (errno == EPIPE || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		rec[n] = 0;
		if (since && (sscanf(rec, "%*u,%llu", &seq) != 1 || seq <= since))
			continue;
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		end = strchr(msg, '\n');
		if (end)
			*end = 0;
		for (i = 0; i < ARRAY_SIZE(splat_patterns); i++) {
			if (strstr(msg, splat_patterns[i])) {
				found++;
				context = 40;
				break;
			}
		}
		if (context) {
			fprintf(stderr, "# kernel: %s\n", msg);
			context--;
		}
	}
	return found;
}

/* What the test process logged since it last looked */
#define kmsg_splats(fd) __kmsg_splats(fd, 0)

/* Everything after record @since; 0 if there is no such record */
static int kmsg_splats_since(__u64 since)
{
	int fd, found;

	if (!since)
		return 0;
	fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	found = __kmsg_splats(fd, since);
	if (fd >= 0)
		close(fd);
	return found;
}

/* The state every fixture sets up */

struct kvmdom {
	int iommufd;
	int kvm_fd;
	/* The VM, with memslot 0 over @mem at GPA 0 */
	int vm_fd;
	/* A mock device bound to @iommufd as @dev_id */
	int mock_fd;
	__u32 dev_id;
	/* Further mock devices the test opened; the teardown closes them */
	int mocks[MAX_MOCKS];
	__u32 ioas_id;
	/* Nest-parent HWPT_PAGING on @ioas_id, which maps @mem at GPA 0 */
	__u32 parent_id;
	__u8 *mem;
	/* The kernel log, and the sequence number of the test's start mark */
	int kmsg_fd;
	__u64 kmsg_seq;
	/* The test process */
	pid_t pid;
	char unsafe_saved[8];
	bool unsafe_set;
};

static __u64 *guest_table(struct kvmdom *k)
{
	return (__u64 *)(k->mem + TABLE_GPA);
}

static void set_pte(struct kvmdom *k, unsigned int idx, __u64 gpa)
{
	guest_table(k)[idx] = htole64(gpa | IOMMU_KVM_SELFTEST_PTE_VALID);
}

static void clear_pte(struct kvmdom *k, unsigned int idx)
{
	guest_table(k)[idx] = 0;
}

/* iommufd */

static int _test_ioctl_destroy(int fd, __u32 id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };

	return ioctl(fd, IOMMU_DESTROY, &cmd);
}

#define test_ioctl_destroy(id) \
	ASSERT_EQ(0, _test_ioctl_destroy(self->k.iommufd, id))
#define test_err_destroy(_errno, id) \
	ASSERT_ERRNO(_errno, _test_ioctl_destroy(self->k.iommufd, id))

static int _test_ioctl_ioas_alloc(int fd, __u32 *id)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };
	int ret;

	ret = ioctl(fd, IOMMU_IOAS_ALLOC, &cmd);
	if (!ret)
		*id = cmd.out_ioas_id;
	return ret;
}

static int _test_ioctl_ioas_map(int fd, __u32 ioas_id, void *va, __u64 length,
				__u64 iova)
{
	struct iommu_ioas_map cmd = {
		.size = sizeof(cmd),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas_id,
		.user_va = (uintptr_t)va,
		.length = length,
		.iova = iova,
	};

	return ioctl(fd, IOMMU_IOAS_MAP, &cmd);
}

#define test_ioctl_ioas_map(va, length, iova)                               \
	ASSERT_EQ(0, _test_ioctl_ioas_map(self->k.iommufd, self->k.ioas_id, \
					  va, length, iova))

static int _test_ioctl_ioas_unmap(int fd, __u32 ioas_id, __u64 iova,
				  __u64 length)
{
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas_id,
		.iova = iova,
		.length = length,
	};

	return ioctl(fd, IOMMU_IOAS_UNMAP, &cmd);
}

#define test_ioctl_ioas_unmap(iova, length)                                  \
	ASSERT_EQ(0, _test_ioctl_ioas_unmap(self->k.iommufd, self->k.ioas_id, \
					    iova, length))

static int _test_cmd_hwpt_alloc(int fd, __u32 dev_id, __u32 pt_id, __u32 flags,
				__u32 *hwpt_id)
{
	struct iommu_hwpt_alloc cmd = {
		.size = sizeof(cmd),
		.flags = flags,
		.dev_id = dev_id,
		.pt_id = pt_id,
	};
	int ret;

	ret = ioctl(fd, IOMMU_HWPT_ALLOC, &cmd);
	if (!ret)
		*hwpt_id = cmd.out_hwpt_id;
	return ret;
}

#define test_cmd_hwpt_alloc(pt_id, flags, hwpt_id)                          \
	ASSERT_EQ(0, _test_cmd_hwpt_alloc(self->k.iommufd, self->k.dev_id, \
					  pt_id, flags, hwpt_id))

static int _test_cmd_hwpt_kvm_info(int fd, __u32 dev_id, __u64 *formats,
				   __u64 *shadow_formats)
{
	struct iommu_hw_info cmd = {
		.size = sizeof(cmd),
		.dev_id = dev_id,
		.out_kvm_formats = 0xdeadbeef,
		.out_kvm_shadow_formats = 0xdeadbeef,
	};
	int ret;

	ret = ioctl(fd, IOMMU_GET_HW_INFO, &cmd);
	if (ret)
		return ret;
	if (formats)
		*formats = cmd.out_kvm_formats;
	if (shadow_formats)
		*shadow_formats = cmd.out_kvm_shadow_formats;
	return 0;
}

#define test_cmd_hwpt_kvm_info(dev_id, formats, shadow)                     \
	ASSERT_EQ(0, _test_cmd_hwpt_kvm_info(self->k.iommufd, dev_id, formats, \
					     shadow))
#define test_err_hwpt_kvm_info(_errno, dev_id)                       \
	ASSERT_ERRNO(_errno, _test_cmd_hwpt_kvm_info(self->k.iommufd, \
						     dev_id, NULL, NULL))

/*
 * An IOMMU_HWPT_ALLOC of a KVM-backed HWPT: the ioctl's structure and the
 * struct iommu_hwpt_kvm its data_uptr points at. Not to be copied.
 */
struct kvm_alloc {
	struct iommu_hwpt_alloc hwpt;
	struct iommu_hwpt_kvm kvm;
};

/*
 * A valid IOMMU_HWPT_ALLOC of a KVM-backed HWPT for @format on @dev_id and
 * @kvm_fd: a shadow HWPT goes on the fixture's nest parent with its guest
 * table at TABLE_GPA, described by @data. Tests change one field to check
 * one error.
 */
static void kvm_alloc_init(struct kvmdom *k, __u32 format, __u32 dev_id,
			   int kvm_fd, struct kvm_alloc *cmd,
			   struct iommu_hwpt_kvm_selftest *data)
{
	*data = (struct iommu_hwpt_kvm_selftest){};
	cmd->hwpt = (struct iommu_hwpt_alloc){
		.size = sizeof(cmd->hwpt),
		.dev_id = dev_id,
		.data_type = IOMMU_HWPT_DATA_KVM,
		.data_len = sizeof(cmd->kvm),
		.data_uptr = (uintptr_t)&cmd->kvm,
	};
	cmd->kvm = (struct iommu_hwpt_kvm){
		.kvm_fd = kvm_fd,
		.format = format,
	};
	if (format != FMT_SHADOW)
		return;
	data->nr_entries = NR_ENTRIES;
	data->table_gpa = TABLE_GPA;
	cmd->hwpt.pt_id = k->parent_id;
	cmd->kvm.data_type = IOMMU_HWPT_KVM_DATA_SELFTEST;
	cmd->kvm.data_len = sizeof(*data);
	cmd->kvm.data_uptr = (uintptr_t)data;
}

static int _test_cmd_hwpt_kvm_alloc(struct kvmdom *k, __u32 format,
				    __u32 dev_id, int kvm_fd, __u32 *hwpt_id)
{
	struct iommu_hwpt_kvm_selftest data;
	struct kvm_alloc cmd;
	int ret;

	kvm_alloc_init(k, format, dev_id, kvm_fd, &cmd, &data);
	ret = ioctl(k->iommufd, IOMMU_HWPT_ALLOC, &cmd.hwpt);
	if (!ret)
		*hwpt_id = cmd.hwpt.out_hwpt_id;
	return ret;
}

/* The fixture's device and VM */
#define test_cmd_hwpt_kvm_alloc(format, hwpt_id)                          \
	ASSERT_EQ(0, _test_cmd_hwpt_kvm_alloc(&self->k, format,            \
					      self->k.dev_id, self->k.vm_fd, \
					      hwpt_id))
#define test_err_hwpt_kvm_alloc(_errno, format)                             \
	({                                                                  \
		__u32 __unused_id;                                          \
		ASSERT_ERRNO(_errno, _test_cmd_hwpt_kvm_alloc(              \
					     &self->k, format,              \
					     self->k.dev_id, self->k.vm_fd, \
					     &__unused_id));                \
	})
/* A request built with kvm_alloc_init() */
#define test_ioctl_hwpt_kvm_alloc(cmd) \
	ASSERT_EQ(0, ioctl(self->k.iommufd, IOMMU_HWPT_ALLOC, &(cmd)->hwpt))
#define test_err_ioctl_hwpt_kvm_alloc(_errno, cmd)                    \
	ASSERT_ERRNO(_errno, ioctl(self->k.iommufd, IOMMU_HWPT_ALLOC, \
				   &(cmd)->hwpt))

/* The mock device */

/* Bind the new mock device file @fd to @iommufd, or close it and fail */
static int mock_bind_or_close(int fd, int iommufd, int *mock_fd,
			      __u32 *dev_id)
{
	struct iommu_kvm_mock_bind cmd = {
		.argsz = sizeof(cmd),
		.iommufd = iommufd,
	};
	int err;

	if (ioctl(fd, IOMMU_KVM_MOCK_BIND, &cmd)) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	*mock_fd = fd;
	*dev_id = cmd.out_dev_id;
	return 0;
}

static int _test_cmd_mock_new(int iommufd, int *mock_fd, __u32 *dev_id)
{
	int fd = open("/dev/iommu_kvm_mock", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -1;
	return mock_bind_or_close(fd, iommufd, mock_fd, dev_id);
}

static void kvmdom_track_mock(struct kvmdom *k, int fd)
{
	int i;

	for (i = 0; i < MAX_MOCKS; i++) {
		if (k->mocks[i] < 0) {
			k->mocks[i] = fd;
			return;
		}
	}
	abort();
}

/* Close a mock device: the mock hot-unplugs it */
static void kvmdom_close_mock(struct kvmdom *k, int *fdp)
{
	int fd = *fdp, i;

	for (i = 0; i < MAX_MOCKS; i++)
		if (k->mocks[i] == fd)
			k->mocks[i] = -1;
	if (k->mock_fd == fd)
		k->mock_fd = -1;
	*fdp = -1;
	close(fd);
}

/* Another mock device bound to the fixture's iommufd */
#define test_cmd_mock_new(mock_fd, dev_id)                                   \
	({                                                                   \
		int *__fdp = (mock_fd);                                      \
		ASSERT_EQ(0, _test_cmd_mock_new(self->k.iommufd, __fdp,      \
						dev_id));                    \
		kvmdom_track_mock(&self->k, *__fdp);                         \
	})

/* A new mock device in the IOMMU group of @fd's, bound to @iommufd */
static int _test_cmd_mock_sibling(int fd, int iommufd, int *mock_fd,
				  __u32 *dev_id)
{
	struct iommu_kvm_mock_add_sibling add = { .argsz = sizeof(add) };

	if (ioctl(fd, IOMMU_KVM_MOCK_ADD_SIBLING, &add))
		return -1;
	return mock_bind_or_close(add.out_fd, iommufd, mock_fd, dev_id);
}

#define test_cmd_mock_sibling(fd, mock_fd, dev_id)                         \
	({                                                                 \
		int *__fdp = (mock_fd);                                    \
		ASSERT_EQ(0, _test_cmd_mock_sibling(fd, self->k.iommufd,   \
						    __fdp, dev_id));       \
		kvmdom_track_mock(&self->k, *__fdp);                       \
	})

static int _test_cmd_mock_set_resv(int fd, __u32 type, __u64 start,
				   __u64 length)
{
	struct iommu_kvm_mock_set_resv cmd = {
		.argsz = sizeof(cmd),
		.type = type,
		.start = start,
		.length = length,
	};

	return ioctl(fd, IOMMU_KVM_MOCK_SET_RESV, &cmd);
}

#define test_cmd_mock_set_resv(fd, type, start, length) \
	ASSERT_EQ(0, _test_cmd_mock_set_resv(fd, type, start, length))

static int _test_cmd_mock_intercept(int fd, int kvm_fd, __u64 key, __u64 iova,
				    __u64 size)
{
	struct iommu_kvm_mock_intercept cmd = {
		.argsz = sizeof(cmd),
		.kvm_fd = kvm_fd,
		.key = key,
		.iova = iova,
		.size = size,
	};

	return ioctl(fd, IOMMU_KVM_MOCK_INTERCEPT, &cmd);
}

#define test_cmd_mock_intercept(fd, kvm_fd, key, iova, size) \
	ASSERT_EQ(0, _test_cmd_mock_intercept(fd, kvm_fd, key, iova, size))
#define test_err_mock_intercept(_errno, fd, kvm_fd, key, iova, size) \
	ASSERT_ERRNO(_errno,                                         \
		     _test_cmd_mock_intercept(fd, kvm_fd, key, iova, size))

static int _test_cmd_mock_attach(int fd, __u32 pt_id)
{
	struct iommu_kvm_mock_attach cmd = {
		.argsz = sizeof(cmd),
		.pt_id = pt_id,
	};

	return ioctl(fd, IOMMU_KVM_MOCK_ATTACH, &cmd);
}

#define test_cmd_mock_attach(fd, pt_id) \
	ASSERT_EQ(0, _test_cmd_mock_attach(fd, pt_id))
#define test_err_mock_attach(_errno, fd, pt_id) \
	ASSERT_ERRNO(_errno, _test_cmd_mock_attach(fd, pt_id))

static int _test_cmd_mock_detach(int fd)
{
	return ioctl(fd, IOMMU_KVM_MOCK_DETACH, 0);
}

#define test_cmd_mock_detach(fd) ASSERT_EQ(0, _test_cmd_mock_detach(fd))

static int _test_cmd_mock_dma(int fd, __u32 flags, __u64 iova, void *buf,
			      __u64 length, __u64 *out_gpa)
{
	struct iommu_kvm_mock_dma cmd = {
		.argsz = sizeof(cmd),
		.flags = flags,
		.iova = iova,
		.length = length,
		.uptr = (uintptr_t)buf,
	};
	int ret;

	ret = ioctl(fd, IOMMU_KVM_MOCK_DMA, &cmd);
	if (!ret && out_gpa)
		*out_gpa = cmd.out_gpa;
	return ret;
}

#define test_cmd_mock_dma_read(fd, iova, buf, length, out_gpa) \
	ASSERT_EQ(0, _test_cmd_mock_dma(fd, 0, iova, buf, length, out_gpa))
#define test_cmd_mock_dma_write(fd, iova, buf, length, out_gpa)              \
	ASSERT_EQ(0, _test_cmd_mock_dma(fd, IOMMU_KVM_MOCK_DMA_WRITE, iova, \
					buf, length, out_gpa))
#define test_err_dma(_errno, fd, iova)                                \
	({                                                                 \
		__u8 __buf[8];                                             \
		ASSERT_ERRNO(_errno, _test_cmd_mock_dma(fd, 0, iova, __buf, \
							sizeof(__buf),     \
							NULL));            \
	})

static int _test_cmd_mock_fault(int fd, __u32 flags, __u64 gpa, __u64 length)
{
	struct iommu_kvm_mock_fault cmd = {
		.argsz = sizeof(cmd),
		.flags = flags,
		.gpa = gpa,
		.length = length,
	};

	return ioctl(fd, IOMMU_KVM_MOCK_FAULT, &cmd);
}

/* The mock IOMMU looks [gpa, gpa + length) up in KVM, for reads and writes */
#define test_cmd_mock_fault(fd, gpa, length)                                \
	ASSERT_EQ(0, _test_cmd_mock_fault(fd, IOMMU_KVM_MOCK_FAULT_WRITE, gpa, \
					  length))
#define test_err_mock_fault(_errno, fd, gpa, length)                       \
	ASSERT_ERRNO(_errno, _test_cmd_mock_fault(fd,                         \
						  IOMMU_KVM_MOCK_FAULT_WRITE, \
						  gpa, length))

static int _test_cmd_mock_sync(int fd, __u64 iova, __u64 size)
{
	struct iommu_kvm_mock_sync cmd = {
		.argsz = sizeof(cmd),
		.iova = iova,
		.size = size,
	};

	return ioctl(fd, IOMMU_KVM_MOCK_SYNC, &cmd);
}

#define test_cmd_mock_sync(fd, iova, size) \
	ASSERT_EQ(0, _test_cmd_mock_sync(fd, iova, size))
#define test_err_mock_sync(_errno, fd, iova, size) \
	ASSERT_ERRNO(_errno, _test_cmd_mock_sync(fd, iova, size))

static int _test_cmd_mock_info(int fd, struct iommu_kvm_mock_info *info)
{
	*info = (struct iommu_kvm_mock_info){ .argsz = sizeof(*info) };
	return ioctl(fd, IOMMU_KVM_MOCK_INFO, info);
}

#define test_cmd_mock_info(fd, info) ASSERT_EQ(0, _test_cmd_mock_info(fd, info))

static int _test_cmd_mock_set_formats(int fd, __u64 formats)
{
	struct iommu_kvm_mock_set_formats cmd = {
		.argsz = sizeof(cmd),
		.formats = formats,
	};

	return ioctl(fd, IOMMU_KVM_MOCK_SET_FORMATS, &cmd);
}

#define test_cmd_mock_set_formats(fd, formats) \
	ASSERT_EQ(0, _test_cmd_mock_set_formats(fd, formats))

/*
 * The fixture's DMA check for a device attached to a live HWPT of @format:
 * a shadow HWPT translates IOVA 0 to DATA_GPA through guest table entry 0
 * (after a sync), a shared one translates IOVA == GPA (once the mock IOMMU
 * looked the page up in KVM). Either way the bytes are the guest's.
 */
static __u64 dma_iova(__u32 format)
{
	return format == FMT_SHADOW ? 0x10 : DATA_GPA + 0x10;
}

#define test_dma_ok(fd, format)                                               \
	({                                                                    \
		__u32 __fmt = (format);                                       \
		__u8 __buf[32];                                               \
		__u64 __gpa = 0;                                              \
		test_cmd_mock_dma_read(fd, dma_iova(__fmt), __buf,            \
				       sizeof(__buf), &__gpa);                \
		ASSERT_EQ(DATA_GPA + 0x10, __gpa);                            \
		ASSERT_EQ(0, memcmp(__buf, self->k.mem + DATA_GPA + 0x10,     \
				    sizeof(__buf)));                          \
	})

/*
 * Attach (or replace) to a HWPT of @format, and make DMA through it work:
 * sync the shadow, or let the mock IOMMU find DATA_GPA's page in KVM
 */
#define test_attach_ready(fd, hwpt_id, format)                     \
	({                                                         \
		int __fd = (fd);                                   \
		test_cmd_mock_attach(__fd, hwpt_id);               \
		if ((format) == FMT_SHADOW) {                      \
			test_cmd_mock_sync(__fd, 0, 0);            \
		} else {                                           \
			test_cmd_mock_fault(__fd, DATA_GPA, PAGE); \
		}                                                  \
	})

/* Setup and teardown */

static void unsafe_restore(struct kvmdom *k)
{
	if (k->unsafe_set) {
		write_file(UNSAFE_PARAM, k->unsafe_saved);
		k->unsafe_set = false;
	}
}

/* After allow_unsafe_interrupts is set; NULL or the step that failed */
static const char *kvmdom_setup_iommufd(struct kvmdom *k, bool map_ioas)
{
	if (_test_cmd_mock_new(k->iommufd, &k->mock_fd, &k->dev_id))
		return "bind a mock device";
	if (_test_ioctl_ioas_alloc(k->iommufd, &k->ioas_id))
		return "IOMMU_IOAS_ALLOC";
	if (!map_ioas)
		return NULL;
	if (_test_ioctl_ioas_map(k->iommufd, k->ioas_id, k->mem, VICTIM_GPA,
				 0) ||
	    _test_ioctl_ioas_map(k->iommufd, k->ioas_id, k->mem + VICTIM_GPA,
				 PAGE, VICTIM_GPA) ||
	    _test_ioctl_ioas_map(k->iommufd, k->ioas_id, k->mem + NEIGH_GPA,
				 PAGE, NEIGH_GPA) ||
	    _test_ioctl_ioas_map(k->iommufd, k->ioas_id,
				 k->mem + NEIGH_GPA + PAGE,
				 MEM_SIZE - NEIGH_GPA - PAGE, NEIGH_GPA + PAGE))
		return "IOMMU_IOAS_MAP of guest memory";
	if (_test_cmd_hwpt_alloc(k->iommufd, k->dev_id, k->ioas_id,
				 IOMMU_HWPT_ALLOC_NEST_PARENT, &k->parent_id))
		return "IOMMU_HWPT_ALLOC of a nest parent";
	return NULL;
}

static void kvmdom_setup(struct __test_metadata *_metadata, struct kvmdom *k,
			 bool map_ioas)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = MEM_SIZE,
	};
	const char *err;
	__u64 gpa;
	int i;

	k->iommufd = -1;
	k->kvm_fd = -1;
	k->vm_fd = -1;
	k->mock_fd = -1;
	k->kmsg_fd = -1;
	for (i = 0; i < MAX_MOCKS; i++)
		k->mocks[i] = -1;
	k->pid = getpid();

	if (access("/dev/kvm", F_OK))
		SKIP(return, "no /dev/kvm");
	if (access("/dev/iommu", F_OK))
		SKIP(return, "no /dev/iommu (CONFIG_IOMMUFD)");
	if (access("/dev/iommu_kvm_mock", F_OK))
		SKIP(return,
		     "no /dev/iommu_kvm_mock: CONFIG_IOMMU_KVM_DOMAIN_TEST, modprobe iommu_kvm_mock");
	if (access(DOMAINS_FILE, R_OK))
		SKIP(return, "no %s (CONFIG_DEBUG_FS, debugfs mounted?)",
		     DOMAINS_FILE);

	k->kmsg_fd = kmsg_open(_metadata->name, &k->kmsg_seq);

	k->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, k->iommufd);
	k->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, k->kvm_fd);
	k->vm_fd = ioctl(k->kvm_fd, KVM_CREATE_VM, 0);
	ASSERT_LE(0, k->vm_fd);

	/* Shared, so that the tests that fork cannot COW the guest's pages */
	k->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, k->mem);
	for (gpa = 0; gpa < MEM_SIZE; gpa++)
		k->mem[gpa] = pattern(gpa);
	memset(guest_table(k), 0, PAGE);
	set_pte(k, 0, DATA_GPA);
	region.userspace_addr = (uintptr_t)k->mem;
	ASSERT_EQ(0, ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &region));

	ASSERT_LT(0, read_file(UNSAFE_PARAM, k->unsafe_saved,
			       sizeof(k->unsafe_saved)));
	ASSERT_EQ(0, write_file(UNSAFE_PARAM, "1"));
	k->unsafe_set = true;

	/* A setup that fails gets no teardown: put the parameter back first */
	err = kvmdom_setup_iommufd(k, map_ioas);
	if (err) {
		TH_LOG("setup: %s failed: %s", err, strerror(errno));
		unsafe_restore(k);
		ASSERT_TRUE(!err);
	}
}

/* Is this the test process (rather than the parent that tears down)? */
static bool kvmdom_in_test(struct kvmdom *k)
{
	return getpid() == k->pid;
}

/*
 * A FIXTURE_TEARDOWN_PARENT: normally the parent runs it once the test
 * process exited. Should the harness run it in the test process, close what
 * the exit would have closed first.
 */
static void kvmdom_teardown(struct __test_metadata *_metadata,
			    struct kvmdom *k)
{
	int i;

	if (kvmdom_in_test(k)) {
		for (i = 0; i < MAX_MOCKS; i++)
			if (k->mocks[i] >= 0)
				kvmdom_close_mock(k, &k->mocks[i]);
		if (k->mock_fd >= 0)
			close(k->mock_fd);
		if (k->iommufd >= 0)
			close(k->iommufd);
		if (k->vm_fd >= 0)
			close(k->vm_fd);
		if (k->kvm_fd >= 0)
			close(k->kvm_fd);
		if (k->kmsg_fd >= 0)
			close(k->kmsg_fd);
		if (k->mem && k->mem != MAP_FAILED)
			munmap(k->mem, MEM_SIZE);
	}

	/* With every file of the test released, nothing of it may be left */
	EXPECT_EQ(0, dbg_domains(k->pid, DBG_ANY, NULL));
	EXPECT_EQ(0, kmsg_splats_since(k->kmsg_seq));
	unsafe_restore(k);
}

/*
 * kvm_domain: what applies to both the shared and the shadow format; each
 * test runs once with a HWPT of each.
 */
FIXTURE(kvm_domain)
{
	struct kvmdom k;
};

FIXTURE_VARIANT(kvm_domain)
{
	__u32 format;
};

FIXTURE_VARIANT_ADD(kvm_domain, shared)
{
	.format = FMT_SHARED,
};

FIXTURE_VARIANT_ADD(kvm_domain, shadow)
{
	.format = FMT_SHADOW,
};

FIXTURE_SETUP(kvm_domain)
{
	kvmdom_setup(_metadata, &self->k, true);
}

FIXTURE_TEARDOWN_PARENT(kvm_domain)
{
	kvmdom_teardown(_metadata, &self->k);
}

TEST_F(kvm_domain, info)
{
	__u64 other = MOCK_FORMATS & ~BIT_ULL(variant->format);
	__u64 mine = BIT_ULL(variant->format);
	struct iommu_hw_info cmd;
	__u64 formats, shadow;
	int mock2;
	__u32 dev2;

	test_cmd_hwpt_kvm_info(self->k.dev_id, &formats, &shadow);
	ASSERT_EQ(MOCK_FORMATS, formats);
	ASSERT_EQ(BIT_ULL(FMT_SHADOW), shadow);

	/* IOMMU_GET_HW_INFO's own checks are unchanged */
	cmd = (struct iommu_hw_info){
		.size = sizeof(cmd),
		.dev_id = self->k.dev_id,
	};
	cmd.flags = 1U << 31;
	ASSERT_ERRNO(EOPNOTSUPP, ioctl(self->k.iommufd, IOMMU_GET_HW_INFO, &cmd));
	cmd.flags = 0;
	cmd.__reserved[0] = 1;
	ASSERT_ERRNO(EOPNOTSUPP, ioctl(self->k.iommufd, IOMMU_GET_HW_INFO, &cmd));
	cmd.__reserved[0] = 0;
	cmd.__reserved[2] = 0x80;
	ASSERT_ERRNO(EOPNOTSUPP, ioctl(self->k.iommufd, IOMMU_GET_HW_INFO, &cmd));
	cmd.__reserved[2] = 0;
	ASSERT_EQ(0, ioctl(self->k.iommufd, IOMMU_GET_HW_INFO, &cmd));
	/* The mock IOMMU has no hardware info of its own */
	ASSERT_EQ(IOMMU_HW_INFO_TYPE_NONE, cmd.out_data_type);
	ASSERT_EQ(MOCK_FORMATS, cmd.out_kvm_formats);

	/* Objects that are not devices, and IDs that are nothing */
	test_err_hwpt_kvm_info(ENOENT, self->k.ioas_id);
	test_err_hwpt_kvm_info(ENOENT, self->k.parent_id);
	test_err_hwpt_kvm_info(ENOENT, 0);
	test_err_hwpt_kvm_info(ENOENT, 0xffffff);
	test_err_hwpt_kvm_info(ENOENT, UINT_MAX);

	/* The answer follows what the device's IOMMU can do */
	test_cmd_mock_set_formats(self->k.mock_fd, mine);
	test_cmd_hwpt_kvm_info(self->k.dev_id, &formats, &shadow);
	ASSERT_EQ(mine, formats);
	ASSERT_EQ(mine & BIT_ULL(FMT_SHADOW), shadow);
	test_cmd_mock_set_formats(self->k.mock_fd, other);
	test_cmd_hwpt_kvm_info(self->k.dev_id, &formats, &shadow);
	ASSERT_EQ(other, formats);
	ASSERT_EQ(other & BIT_ULL(FMT_SHADOW), shadow);
	test_cmd_mock_set_formats(self->k.mock_fd, 0);
	test_cmd_hwpt_kvm_info(self->k.dev_id, &formats, &shadow);
	ASSERT_EQ(0, formats);
	ASSERT_EQ(0, shadow);

	/* ... of that device only */
	test_cmd_mock_new(&mock2, &dev2);
	test_cmd_hwpt_kvm_info(dev2, &formats, &shadow);
	ASSERT_EQ(MOCK_FORMATS, formats);
	ASSERT_EQ(BIT_ULL(FMT_SHADOW), shadow);

	test_cmd_mock_set_formats(self->k.mock_fd, MOCK_FORMATS);
	test_cmd_hwpt_kvm_info(self->k.dev_id, &formats, &shadow);
	ASSERT_EQ(MOCK_FORMATS, formats);

	/* An unplugged device's ID is no device */
	kvmdom_close_mock(&self->k, &mock2);
	test_err_hwpt_kvm_info(ENOENT, dev2);
}

/*
 * The KVM formats are appended to struct iommu_hw_info: a VMM built against
 * the older structure still gets the rest, and nothing is written past the
 * size it gave.
 */
TEST_F(kvm_domain, info_length)
{
	static __u8 raw[PAGE];
	struct iommu_hw_info *cmd = (void *)raw;
	size_t old = offsetof(struct iommu_hw_info, out_kvm_formats);
	size_t i;

	memset(raw, 0, sizeof(raw));
	cmd->dev_id = self->k.dev_id;

	/* The size before the KVM formats: the rest, and nothing past it */
	memset(raw + old, 0xaa, sizeof(raw) - old);
	cmd->size = old;
	ASSERT_EQ(0, ioctl(self->k.iommufd, IOMMU_GET_HW_INFO, raw));
	for (i = old; i < sizeof(raw); i++)
		ASSERT_EQ(0xaa, raw[i]);

	/* Only one of the two */
	memset(raw + old, 0, sizeof(raw) - old);
	cmd->size = old + 8;
	ASSERT_EQ(0, ioctl(self->k.iommufd, IOMMU_GET_HW_INFO, raw));
	ASSERT_EQ(MOCK_FORMATS, cmd->out_kvm_formats);
	ASSERT_EQ(0, cmd->out_kvm_shadow_formats);

	/* Longer than the kernel knows and not zero past that: E2BIG */
	cmd->size = sizeof(*cmd) + 1;
	raw[sizeof(*cmd)] = 0xff;
	ASSERT_ERRNO(E2BIG, ioctl(self->k.iommufd, IOMMU_GET_HW_INFO, raw));
	raw[sizeof(*cmd)] = 0;

	/* ... and zero past that: fine, and nothing is written past the struct */
	cmd->size = sizeof(raw);
	cmd->out_kvm_formats = 0;
	ASSERT_EQ(0, ioctl(self->k.iommufd, IOMMU_GET_HW_INFO, raw));
	ASSERT_EQ(MOCK_FORMATS, cmd->out_kvm_formats);
	ASSERT_EQ(BIT_ULL(FMT_SHADOW), cmd->out_kvm_shadow_formats);
	for (i = sizeof(*cmd); i < sizeof(raw); i++)
		ASSERT_EQ(0, raw[i]);
}

/*
 * struct iommu_hwpt_kvm is IOMMU_HWPT_ALLOC data: its length is data_len,
 * checked as for any data of that ioctl.
 */
TEST_F(kvm_domain, alloc_length)
{
	/* data_uptr, the last member of version 1, ends the struct */
	size_t min = offsetof(struct iommu_hwpt_kvm, data_uptr) + sizeof(__u64);
	struct { struct iommu_hwpt_kvm kvm; __u8 more[16]; } big = {};
	struct iommu_hwpt_kvm_selftest data;
	struct kvm_alloc cmd;
	size_t i;

	kvm_alloc_init(&self->k, variant->format, self->k.dev_id,
		       self->k.vm_fd, &cmd, &data);

	/* Shorter than the first version: EINVAL (0: no data at all) */
	for (i = 0; i < min; i += 4) {
		cmd.hwpt.data_len = i;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	}
	cmd.hwpt.data_len = min - 1;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);

	/* Longer than the kernel knows, even if zero past that: EINVAL */
	big.kvm = cmd.kvm;
	cmd.hwpt.data_uptr = (uintptr_t)&big;
	cmd.hwpt.data_len = sizeof(big.kvm) + 1;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	cmd.hwpt.data_len = sizeof(big);
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));

	/* Exactly the size: allocated */
	cmd.hwpt.data_len = sizeof(big.kvm);
	test_ioctl_hwpt_kvm_alloc(&cmd);
	test_ioctl_destroy(cmd.hwpt.out_hwpt_id);

	/* An IOMMU_HWPT_ALLOC of the size before fault_id is enough */
	cmd.hwpt.size = offsetof(struct iommu_hwpt_alloc, fault_id);
	test_ioctl_hwpt_kvm_alloc(&cmd);
	test_ioctl_destroy(cmd.hwpt.out_hwpt_id);
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
}

TEST_F(kvm_domain, alloc_destroy)
{
	struct dbg_domain d1, d2;
	__u32 hwpt1, hwpt2;
	long kvm_refs;

	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt1);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d1));
	ASSERT_STREQ("mock", d1.driver);
	ASSERT_STREQ(variant->format == FMT_SHADOW ? "63" : "62",
		     d1.format);
	ASSERT_EQ(self->k.pid, d1.vm);
	ASSERT_STREQ("live", d1.state);
	ASSERT_STREQ(variant->format == FMT_SHADOW ? "yes" : "no", d1.parent);
	ASSERT_EQ(0, d1.devices);
	ASSERT_EQ(0, d1.syncs);
	ASSERT_EQ(0, d1.faults);

	/* A second HWPT on the same device and VM is a second domain */
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt2);
	ASSERT_NE(hwpt1, hwpt2);
	ASSERT_EQ(2, dbg_domains(self->k.pid, DBG_ANY, NULL));

	/* It is no IOAS and no paging HWPT */
	ASSERT_ERRNO(ENOENT, _test_ioctl_ioas_map(self->k.iommufd, hwpt1,
						  self->k.mem, PAGE, 0));
	ASSERT_ERRNO(EINVAL, _test_cmd_hwpt_alloc(self->k.iommufd,
						  self->k.dev_id, hwpt1, 0,
						  &hwpt2));

	test_ioctl_destroy(hwpt1);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d2));
	ASSERT_NE(d1.id, d2.id);
	test_err_destroy(ENOENT, hwpt1);
	test_ioctl_destroy(hwpt2);
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));

	/* A failed copy of the answer frees everything the ioctl built */
	kvm_refs = read_long(KVM_REFCNT);
	{
		struct iommu_hwpt_kvm_selftest data;
		struct kvm_alloc *cmd;
		void *page;

		page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, page);
		cmd = page;
		kvm_alloc_init(&self->k, variant->format, self->k.dev_id,
			       self->k.vm_fd, cmd, &data);
		ASSERT_EQ(0, mprotect(page, PAGE, PROT_READ));
		test_err_ioctl_hwpt_kvm_alloc(EFAULT, cmd);
		munmap(page, PAGE);
	}
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
	ASSERT_EQ(kvm_refs, read_long(KVM_REFCNT));
	/* ... and left no ID behind that a destroy could find */
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt1);
	test_ioctl_destroy(hwpt1);
}

/*
 * The other HWPT ioctls take a KVM-backed HWPT for none of theirs: the dirty
 * tracking ones look it up as a HWPT_PAGING (ENOENT), IOMMU_HWPT_INVALIDATE
 * takes any object and refuses what is neither a nested HWPT nor a vIOMMU
 * (EINVAL, since 6.13), IOMMU_IOAS_UNMAP wants an IOAS (ENOENT).
 */
TEST_F(kvm_domain, not_paging_nor_nested)
{
	struct iommu_hwpt_set_dirty_tracking dirty = {
		.size = sizeof(dirty),
		.flags = IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
	};
	struct iommu_hwpt_get_dirty_bitmap bitmap = {
		.size = sizeof(bitmap),
		.length = PAGE,
		.page_size = PAGE,
	};
	struct iommu_hwpt_invalidate inv = { .size = sizeof(inv) };
	__u64 bits = 0;
	__u32 hwpt_id;

	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	test_attach_ready(self->k.mock_fd, hwpt_id, variant->format);

	dirty.hwpt_id = hwpt_id;
	ASSERT_ERRNO(ENOENT, ioctl(self->k.iommufd,
				   IOMMU_HWPT_SET_DIRTY_TRACKING, &dirty));
	bitmap.hwpt_id = hwpt_id;
	bitmap.data = (uintptr_t)&bits;
	ASSERT_ERRNO(ENOENT, ioctl(self->k.iommufd,
				   IOMMU_HWPT_GET_DIRTY_BITMAP, &bitmap));
	inv.hwpt_id = hwpt_id;
	ASSERT_ERRNO(EINVAL, ioctl(self->k.iommufd, IOMMU_HWPT_INVALIDATE,
				   &inv));
	ASSERT_ERRNO(ENOENT, _test_ioctl_ioas_unmap(self->k.iommufd, hwpt_id,
						    0, UINT64_MAX));
	test_dma_ok(self->k.mock_fd, variant->format);

	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
}

TEST_F(kvm_domain, bad_kvm_fd)
{
	struct iommu_hwpt_kvm_selftest data;
	struct kvm_alloc cmd;
	int null_fd, closed_fd, stats_fd, pipe_fd[2];
	unsigned int i;
	long kvm_refs;

	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, null_fd);
	ASSERT_EQ(0, pipe2(pipe_fd, O_CLOEXEC));
	/* A file of KVM that is not a VM */
	stats_fd = ioctl(self->k.vm_fd, KVM_GET_STATS_FD, NULL);
	ASSERT_LE(0, stats_fd);
	/* Last, so that no file above takes its number */
	closed_fd = dup(null_fd);
	ASSERT_LE(0, closed_fd);
	ASSERT_EQ(0, close(closed_fd));
	kvm_refs = read_long(KVM_REFCNT);

	struct {
		int fd;
		int err;
		const char *what;
	} cases[] = {
		{ null_fd, EBADFD, "/dev/null" },
		{ self->k.iommufd, EBADFD, "the iommufd" },
		{ self->k.kvm_fd, EBADFD, "/dev/kvm" },
		{ stats_fd, EBADFD, "a KVM stats fd" },
		{ self->k.mock_fd, EBADFD, "a mock device" },
		{ pipe_fd[0], EBADFD, "a pipe" },
		{ closed_fd, EBADF, "a closed fd" },
		{ -1, EBADF, "-1" },
		{ -2, EBADF, "-2" },
		{ INT_MIN, EBADF, "INT_MIN" },
		{ INT_MAX, EBADF, "INT_MAX" },
	};

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		int ret, err;

		kvm_alloc_init(&self->k, variant->format, self->k.dev_id,
			       cases[i].fd, &cmd, &data);
		ret = ioctl(self->k.iommufd, IOMMU_HWPT_ALLOC, &cmd.hwpt);
		err = errno;
		ASSERT_EQ(-1, ret) TH_LOG("kvm_fd is %s", cases[i].what);
		ASSERT_EQ(cases[i].err, err) TH_LOG("kvm_fd is %s", cases[i].what);
	}
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
	ASSERT_EQ(kvm_refs, read_long(KVM_REFCNT));

	close(null_fd);
	close(stats_fd);
	close(pipe_fd[0]);
	close(pipe_fd[1]);
}

TEST_F(kvm_domain, kvm_fd_other_process)
{
	long kvm_refs = read_long(KVM_REFCNT);
	int status;
	__u32 hwpt_id;
	pid_t child;

	/* The child inherits the iommufd, the device ID and the parent's VM */
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		if (!_test_cmd_hwpt_kvm_alloc(&self->k, variant->format,
					      self->k.dev_id, self->k.vm_fd,
					      &hwpt_id))
			_exit(0xff);
		_exit(errno & 0xff);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(EPERM, WEXITSTATUS(status));
	ASSERT_EQ(0, dbg_domains(child, DBG_ANY, NULL));
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
	ASSERT_EQ(kvm_refs, read_long(KVM_REFCNT));

	/* The owner still can */
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	test_ioctl_destroy(hwpt_id);
}

struct clone_vm_alloc {
	struct kvmdom *k;
	__u32 format;
	__u32 hwpt_id;
	int ret;
	int err;
};

static int clone_vm_alloc_fn(void *arg)
{
	struct clone_vm_alloc *a = arg;

	a->ret = _test_cmd_hwpt_kvm_alloc(a->k, a->format, a->k->dev_id,
					  a->k->vm_fd, &a->hwpt_id);
	a->err = errno;
	return 0;
}

/*
 * The owner check is KVM's own, by address space: a clone(CLONE_VM) child,
 * another process that shares the VM's mm, may allocate. The HWPT is then
 * an object of the iommufd like any other: this process attaches to it,
 * detaches and destroys it.
 */
TEST_F(kvm_domain, kvm_fd_clone_vm)
{
	struct clone_vm_alloc a = {
		.k = &self->k,
		.format = variant->format,
		.ret = -1,
	};
	const size_t stack_size = 64 * 1024;
	int status;
	char *stack;
	pid_t child;

	stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	ASSERT_NE(MAP_FAILED, stack);
	child = clone(clone_vm_alloc_fn, stack + stack_size, CLONE_VM | SIGCHLD,
		      &a);
	ASSERT_LT(0, child);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_EQ(0, munmap(stack, stack_size));
	ASSERT_EQ(0, a.ret)
		TH_LOG("IOMMU_HWPT_ALLOC (KVM) in a CLONE_VM child: %s",
		       strerror(a.err));
	ASSERT_EQ(1, dbg_domains(child, DBG_ANY, NULL));

	test_attach_ready(self->k.mock_fd, a.hwpt_id, variant->format);
	test_dma_ok(self->k.mock_fd, variant->format);
	test_err_destroy(EBUSY, a.hwpt_id);
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(a.hwpt_id);
	ASSERT_EQ(0, dbg_domains(child, DBG_ANY, NULL));
}

TEST_F(kvm_domain, flags_reserved)
{
	struct iommu_hwpt_kvm_selftest data;
	struct kvm_alloc cmd;
	__u32 hwpt_id;

	kvm_alloc_init(&self->k, variant->format, self->k.dev_id,
		       self->k.vm_fd, &cmd, &data);
	static const __u32 hwpt_flags[] = {
		IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
		IOMMU_HWPT_FAULT_ID_VALID, IOMMU_HWPT_ALLOC_PASID, 1U << 31,
		UINT_MAX,
	};
	unsigned int i;

	/* No flag of IOMMU_HWPT_ALLOC applies to a KVM-backed HWPT */
	for (i = 0; i < ARRAY_SIZE(hwpt_flags); i++) {
		cmd.hwpt.flags = hwpt_flags[i];
		test_err_ioctl_hwpt_kvm_alloc(EOPNOTSUPP, &cmd);
	}
	cmd.hwpt.flags = 0;
	cmd.hwpt.__reserved = 1;
	test_err_ioctl_hwpt_kvm_alloc(EOPNOTSUPP, &cmd);
	cmd.hwpt.__reserved = 0;

	/* Nor any of its own yet */
	cmd.kvm.flags = 1;
	test_err_ioctl_hwpt_kvm_alloc(EOPNOTSUPP, &cmd);
	cmd.kvm.flags = 1U << 31;
	test_err_ioctl_hwpt_kvm_alloc(EOPNOTSUPP, &cmd);
	cmd.kvm.flags = 0;
	cmd.kvm.__reserved = 1;
	test_err_ioctl_hwpt_kvm_alloc(EOPNOTSUPP, &cmd);
	cmd.kvm.__reserved = 1U << 31;
	test_err_ioctl_hwpt_kvm_alloc(EOPNOTSUPP, &cmd);
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));

	cmd.kvm.__reserved = 0;
	test_ioctl_hwpt_kvm_alloc(&cmd);
	hwpt_id = cmd.hwpt.out_hwpt_id;
	test_ioctl_destroy(hwpt_id);
}

TEST_F(kvm_domain, bad_format)
{
	static const __u32 formats[] = { 0, 1, 5, 47, 48, 61, 64, 65, 128,
					 0x80000000, 0xffffffff };
	struct iommu_hwpt_kvm_selftest data;
	struct kvm_alloc cmd;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(formats); i++) {
		int ret, err;

		kvm_alloc_init(&self->k, variant->format, self->k.dev_id,
			       self->k.vm_fd, &cmd, &data);
		cmd.kvm.format = formats[i];
		ret = ioctl(self->k.iommufd, IOMMU_HWPT_ALLOC, &cmd.hwpt);
		err = errno;
		ASSERT_EQ(-1, ret) TH_LOG("format %u", formats[i]);
		ASSERT_EQ(EOPNOTSUPP, err) TH_LOG("format %u", formats[i]);
	}
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
}

TEST_F(kvm_domain, driver_data)
{
	struct iommu_hwpt_kvm_selftest data;
	struct kvm_alloc cmd;
	bool shadow = variant->format == FMT_SHADOW;
	__u8 *pages;

#define init() kvm_alloc_init(&self->k, variant->format, self->k.dev_id, \
			      self->k.vm_fd, &cmd, &data)

	/* Driver data that is valid for the format */
	init();
	cmd.kvm.data_type = IOMMU_HWPT_KVM_DATA_SELFTEST;
	cmd.kvm.data_len = sizeof(data);
	cmd.kvm.data_uptr = (uintptr_t)&data;
	test_ioctl_hwpt_kvm_alloc(&cmd);
	test_ioctl_destroy(cmd.hwpt.out_hwpt_id);

	/* @data_type and @data_len disagree */
	init();
	cmd.kvm.data_type = IOMMU_HWPT_KVM_DATA_NONE;
	cmd.kvm.data_len = sizeof(data);
	cmd.kvm.data_uptr = (uintptr_t)&data;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	init();
	cmd.kvm.data_type = IOMMU_HWPT_KVM_DATA_SELFTEST;
	cmd.kvm.data_len = 0;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);

	/* A data type the backend does not know */
	init();
	cmd.kvm.data_type = 0x1234;
	cmd.kvm.data_len = sizeof(data);
	cmd.kvm.data_uptr = (uintptr_t)&data;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	cmd.kvm.data_type = IOMMU_HWPT_KVM_DATA_SELFTEST + 1;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);

	/* Shorter than the backend's struct */
	init();
	cmd.kvm.data_type = IOMMU_HWPT_KVM_DATA_SELFTEST;
	cmd.kvm.data_uptr = (uintptr_t)&data;
	/* table_gpa, the last member of version 1, ends the struct */
	cmd.kvm.data_len = sizeof(struct iommu_hwpt_kvm_selftest) - 1;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	cmd.kvm.data_len = 4;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);

	/* @data_uptr cannot be read */
	pages = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, pages);
	ASSERT_EQ(0, mprotect(pages + PAGE, PAGE, PROT_NONE));
	init();
	cmd.kvm.data_type = IOMMU_HWPT_KVM_DATA_SELFTEST;
	cmd.kvm.data_len = sizeof(data);
	cmd.kvm.data_uptr = 0;
	test_err_ioctl_hwpt_kvm_alloc(EFAULT, &cmd);
	cmd.kvm.data_uptr = (uintptr_t)(pages + PAGE);
	test_err_ioctl_hwpt_kvm_alloc(EFAULT, &cmd);
	/* Straddling into the page that cannot be read */
	memcpy(pages + PAGE - 8, &data, 8);
	cmd.kvm.data_uptr = (uintptr_t)(pages + PAGE - 8);
	test_err_ioctl_hwpt_kvm_alloc(EFAULT, &cmd);
	munmap(pages, 2 * PAGE);

	/* Values the backend refuses */
	init();
	cmd.kvm.data_type = IOMMU_HWPT_KVM_DATA_SELFTEST;
	cmd.kvm.data_len = sizeof(data);
	cmd.kvm.data_uptr = (uintptr_t)&data;
	data.flags = 1;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	data.flags = 1U << 31;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	data.flags = 0;
	if (shadow) {
		data.nr_entries = 0;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		data.nr_entries = IOMMU_KVM_SELFTEST_MAX_ENTRIES + 1;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		data.nr_entries = UINT_MAX;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		data.nr_entries = IOMMU_KVM_SELFTEST_MAX_ENTRIES;
		data.table_gpa = TABLE_GPA + 4;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		data.table_gpa = TABLE_GPA + 1;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		data.table_gpa = TABLE_GPA;
		test_ioctl_hwpt_kvm_alloc(&cmd);
		test_ioctl_destroy(cmd.hwpt.out_hwpt_id);

		/* A shadow format needs to know where the guest table is */
		init();
		cmd.kvm.data_type = IOMMU_HWPT_KVM_DATA_NONE;
		cmd.kvm.data_len = 0;
		cmd.kvm.data_uptr = 0;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	} else {
		data.nr_entries = 1;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		data.nr_entries = 0;
		data.table_gpa = TABLE_GPA;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	}
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
#undef init
}

/* Driver data longer than the backend's struct: E2BIG unless zero past it */
TEST_F(kvm_domain, driver_data_too_long)
{
	struct {
		struct iommu_hwpt_kvm_selftest data;
		__u64 tail;
	} big;
	struct iommu_hwpt_kvm_selftest data;
	struct kvm_alloc cmd;

	kvm_alloc_init(&self->k, variant->format, self->k.dev_id,
		       self->k.vm_fd, &cmd, &data);
	big.data = data;
	big.tail = 1;
	cmd.kvm.data_type = IOMMU_HWPT_KVM_DATA_SELFTEST;
	cmd.kvm.data_len = sizeof(big);
	cmd.kvm.data_uptr = (uintptr_t)&big;
	/* Driver data is never longer than the kernel's, as for HWPT_ALLOC */
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	big.tail = 1ULL << 63;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	big.tail = 0;
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
	/* Shorter than the first version */
	cmd.kvm.data_len = offsetof(struct iommu_hwpt_kvm_selftest, table_gpa);
	test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	/* Exactly the kernel's structure */
	cmd.kvm.data_len = sizeof(big.data);
	test_ioctl_hwpt_kvm_alloc(&cmd);
	test_ioctl_destroy(cmd.hwpt.out_hwpt_id);
}

TEST_F(kvm_domain, pt_id)
{
	struct iommu_hwpt_kvm_selftest data;
	struct kvm_alloc cmd;
	__u32 paging_id, kvm_id;

	/* A paging HWPT that is not a nest parent */
	test_cmd_hwpt_alloc(self->k.ioas_id, 0, &paging_id);
	test_cmd_hwpt_kvm_alloc(variant->format, &kvm_id);
	kvm_alloc_init(&self->k, variant->format, self->k.dev_id,
		       self->k.vm_fd, &cmd, &data);

	if (variant->format == FMT_SHARED) {
		/* A shared format has no parent */
		cmd.hwpt.pt_id = self->k.parent_id;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		cmd.hwpt.pt_id = paging_id;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		cmd.hwpt.pt_id = self->k.ioas_id;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	} else {
		cmd.hwpt.pt_id = 0;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		cmd.hwpt.pt_id = self->k.ioas_id;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		cmd.hwpt.pt_id = paging_id;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		cmd.hwpt.pt_id = self->k.dev_id;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		cmd.hwpt.pt_id = kvm_id;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		/* Nothing: EINVAL, as IOMMU_HWPT_ALLOC says for any pt_id */
		cmd.hwpt.pt_id = 0xffffff;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
		cmd.hwpt.pt_id = UINT_MAX;
		test_err_ioctl_hwpt_kvm_alloc(EINVAL, &cmd);
	}
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, NULL));

	test_ioctl_destroy(kvm_id);
	test_ioctl_destroy(paging_id);
}

TEST_F(kvm_domain, bad_dev_id)
{
	struct iommu_hwpt_kvm_selftest data;
	struct kvm_alloc cmd;
	int mock2;
	__u32 dev2, hwpt_id;

	test_cmd_mock_new(&mock2, &dev2);
	kvmdom_close_mock(&self->k, &mock2);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);

	kvm_alloc_init(&self->k, variant->format, self->k.dev_id,
		       self->k.vm_fd, &cmd, &data);
	cmd.hwpt.dev_id = self->k.ioas_id;
	test_err_ioctl_hwpt_kvm_alloc(ENOENT, &cmd);
	cmd.hwpt.dev_id = self->k.parent_id;
	test_err_ioctl_hwpt_kvm_alloc(ENOENT, &cmd);
	cmd.hwpt.dev_id = hwpt_id;
	test_err_ioctl_hwpt_kvm_alloc(ENOENT, &cmd);
	cmd.hwpt.dev_id = 0;
	test_err_ioctl_hwpt_kvm_alloc(ENOENT, &cmd);
	cmd.hwpt.dev_id = 0xffffff;
	test_err_ioctl_hwpt_kvm_alloc(ENOENT, &cmd);
	/* The ID of a device that was unplugged */
	cmd.hwpt.dev_id = dev2;
	test_err_ioctl_hwpt_kvm_alloc(ENOENT, &cmd);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, NULL));
	test_ioctl_destroy(hwpt_id);
}

TEST_F(kvm_domain, format_unsupported)
{
	__u64 mine = BIT_ULL(variant->format);
	__u32 hwpt_id;

	/* The device's IOMMU offers the other format only */
	test_cmd_mock_set_formats(self->k.mock_fd, MOCK_FORMATS & ~mine);
	test_err_hwpt_kvm_alloc(EOPNOTSUPP, variant->format);
	/* ... or none */
	test_cmd_mock_set_formats(self->k.mock_fd, 0);
	test_err_hwpt_kvm_alloc(EOPNOTSUPP, variant->format);
	test_err_hwpt_kvm_alloc(EOPNOTSUPP, FMT_SHARED);
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));

	test_cmd_mock_set_formats(self->k.mock_fd, mine);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	test_ioctl_destroy(hwpt_id);
}

TEST_F(kvm_domain, attach_revalidate)
{
	__u64 mine = BIT_ULL(variant->format);
	struct iommu_kvm_mock_info info;
	struct dbg_domain d;
	__u32 hwpt_id, dev2;
	int mock2;

	/* Allocated while the device's IOMMU could, attached when it cannot */
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	test_cmd_mock_set_formats(self->k.mock_fd, MOCK_FORMATS & ~mine);
	test_err_mock_attach(EINVAL, self->k.mock_fd, hwpt_id);
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(0, info.out_flags);

	/* Not through a replace either */
	test_cmd_mock_attach(self->k.mock_fd, self->k.ioas_id);
	test_err_mock_attach(EINVAL, self->k.mock_fd, hwpt_id);
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(0, info.out_flags);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_EQ(0, d.devices);
	test_cmd_mock_detach(self->k.mock_fd);

	/* Another device of the same IOMMU driver that cannot */
	test_cmd_mock_new(&mock2, &dev2);
	test_cmd_mock_set_formats(mock2, 0);
	test_err_mock_attach(EINVAL, mock2, hwpt_id);

	/* Once they can again, both attach */
	test_cmd_mock_set_formats(self->k.mock_fd, MOCK_FORMATS);
	test_cmd_mock_set_formats(mock2, mine);
	test_attach_ready(self->k.mock_fd, hwpt_id, variant->format);
	test_cmd_mock_attach(mock2, hwpt_id);
	test_dma_ok(self->k.mock_fd, variant->format);
	test_dma_ok(mock2, variant->format);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_EQ(2, d.devices);

	test_cmd_mock_detach(self->k.mock_fd);
	test_cmd_mock_detach(mock2);
	test_ioctl_destroy(hwpt_id);
}

TEST_F(kvm_domain, double_attach)
{
	struct iommu_kvm_mock_info info;
	struct dbg_domain d;
	__u32 hwpt_id;

	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	test_attach_ready(self->k.mock_fd, hwpt_id, variant->format);
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM, info.out_flags);

	/* Attaching again replaces the HWPT with itself */
	test_cmd_mock_attach(self->k.mock_fd, hwpt_id);
	test_cmd_mock_attach(self->k.mock_fd, hwpt_id);
	ASSERT_EQ(1, dbg_domains(self->k.pid, info.out_domain_id, &d));
	ASSERT_EQ(info.out_domain_id, d.id);
	ASSERT_EQ(1, d.devices);
	test_dma_ok(self->k.mock_fd, variant->format);

	/* Attached HWPTs cannot be destroyed */
	test_err_destroy(EBUSY, hwpt_id);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, NULL));
	test_dma_ok(self->k.mock_fd, variant->format);

	test_cmd_mock_detach(self->k.mock_fd);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_EQ(0, d.devices);
	test_err_dma(ENODEV, self->k.mock_fd, dma_iova(variant->format));
	test_ioctl_destroy(hwpt_id);
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
}

TEST_F(kvm_domain, replace)
{
	struct iommu_kvm_mock_info info1, info2, info;
	struct dbg_domain d1, d2;
	__u32 hwpt1, hwpt2;
	__u8 buf[16];

	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt1);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt2);

	/* IOAS -> KVM HWPT -> another KVM HWPT -> IOAS */
	test_cmd_mock_attach(self->k.mock_fd, self->k.ioas_id);
	test_cmd_mock_dma_read(self->k.mock_fd, DATA_GPA, buf, sizeof(buf), NULL);
	ASSERT_EQ(0, memcmp(buf, self->k.mem + DATA_GPA, sizeof(buf)));

	test_attach_ready(self->k.mock_fd, hwpt1, variant->format);
	test_cmd_mock_info(self->k.mock_fd, &info1);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM, info1.out_flags);
	test_dma_ok(self->k.mock_fd, variant->format);

	test_attach_ready(self->k.mock_fd, hwpt2, variant->format);
	test_cmd_mock_info(self->k.mock_fd, &info2);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM, info2.out_flags);
	ASSERT_NE(info1.out_domain_id, info2.out_domain_id);
	ASSERT_EQ(2, dbg_domains(self->k.pid, info1.out_domain_id, &d1));
	ASSERT_EQ(2, dbg_domains(self->k.pid, info2.out_domain_id, &d2));
	ASSERT_EQ(0, d1.devices);
	ASSERT_EQ(1, d2.devices);
	test_dma_ok(self->k.mock_fd, variant->format);
	test_err_destroy(EBUSY, hwpt2);
	test_ioctl_destroy(hwpt1);

	test_cmd_mock_attach(self->k.mock_fd, self->k.ioas_id);
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(0, info.out_flags);
	ASSERT_EQ(1, dbg_domains(self->k.pid, info2.out_domain_id, &d2));
	ASSERT_EQ(0, d2.devices);
	test_cmd_mock_dma_read(self->k.mock_fd, DATA_GPA, buf, sizeof(buf), NULL);
	ASSERT_EQ(0, memcmp(buf, self->k.mem + DATA_GPA, sizeof(buf)));

	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt2);
}

TEST_F(kvm_domain, vm_closed_while_attached)
{
	struct iommu_kvm_mock_info info;
	struct dbg_domain d;
	long refs_closed;
	__u32 hwpt_id, dev2;
	int mock2;

	test_cmd_mock_new(&mock2, &dev2);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	test_attach_ready(self->k.mock_fd, hwpt_id, variant->format);
	test_dma_ok(self->k.mock_fd, variant->format);

	ASSERT_EQ(0, close(self->k.vm_fd));
	self->k.vm_fd = -1;

	/* From now on all DMA through the HWPT is blocked */
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM | IOMMU_KVM_MOCK_INFO_DEAD,
		  info.out_flags);
	ASSERT_EQ(0, info.out_shadow_entries);
	test_err_dma(ENODEV, self->k.mock_fd, dma_iova(variant->format));
	test_err_dma(ENODEV, self->k.mock_fd, 0);
	if (variant->format == FMT_SHADOW)
		test_err_mock_sync(ENODEV, self->k.mock_fd, 0, 0);
	ASSERT_EQ(1, dbg_domains(self->k.pid, info.out_domain_id, &d));
	ASSERT_EQ(info.out_domain_id, d.id);
	ASSERT_STREQ("dead", d.state);
	ASSERT_EQ(1, d.devices);
	ASSERT_EQ(1, d.mock_blocked);

	/* ... and it takes no new device */
	test_err_mock_attach(ENODEV, mock2, hwpt_id);
	test_cmd_mock_attach(mock2, self->k.ioas_id);
	test_err_mock_attach(ENODEV, mock2, hwpt_id);
	test_cmd_mock_info(mock2, &info);
	ASSERT_EQ(0, info.out_flags);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_EQ(1, d.devices);

	/* ... nor the one that left it */
	test_cmd_mock_attach(self->k.mock_fd, self->k.ioas_id);
	test_err_mock_attach(ENODEV, self->k.mock_fd, hwpt_id);
	test_cmd_mock_detach(self->k.mock_fd);
	test_err_mock_attach(ENODEV, self->k.mock_fd, hwpt_id);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_EQ(0, d.devices);

	/* The VM lives on until the HWPT lets go of it */
	refs_closed = read_long(KVM_REFCNT);
	test_ioctl_destroy(hwpt_id);
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
	if (refs_closed >= 0)
		ASSERT_GT(refs_closed, read_long(KVM_REFCNT));
	test_cmd_mock_detach(mock2);
}

/*
 * A replace of a two-device group that fails on the second device: the iommu
 * core puts the first one back on the old domain. The domain must take it
 * back exactly once, and there is nothing to warn about.
 */
TEST_F(kvm_domain, group_replace_rollback)
{
	__u64 mine = 1ULL << variant->format;
	struct iommu_kvm_mock_info info;
	__u32 hwpt1, hwpt2, sib_id;
	struct dbg_domain d;
	int sib;

	test_cmd_mock_sibling(self->k.mock_fd, &sib, &sib_id);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt1);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt2);
	test_attach_ready(self->k.mock_fd, hwpt1, variant->format);
	test_cmd_mock_attach(sib, hwpt1);
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(2, dbg_domains(self->k.pid, info.out_domain_id, &d));
	ASSERT_EQ(2, d.devices);

	/* The sibling's IOMMU can no longer use the format */
	test_cmd_mock_set_formats(sib, MOCK_FORMATS & ~mine);
	test_err_mock_attach(EINVAL, self->k.mock_fd, hwpt2);

	/* Both are back on hwpt1, once each; hwpt2 has nothing */
	ASSERT_EQ(2, dbg_domains(self->k.pid, info.out_domain_id, &d));
	ASSERT_EQ(2, d.devices);
	ASSERT_STREQ("live", d.state);
	test_cmd_mock_info(sib, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM, info.out_flags);
	ASSERT_EQ(info.out_domain_id, d.id);
	test_dma_ok(self->k.mock_fd, variant->format);
	test_dma_ok(sib, variant->format);
	test_err_destroy(EBUSY, hwpt1);
	test_ioctl_destroy(hwpt2);
	ASSERT_EQ(0, kmsg_splats(self->k.kmsg_fd));

	test_cmd_mock_detach(self->k.mock_fd);
	test_cmd_mock_detach(sib);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_EQ(0, d.devices);
	test_ioctl_destroy(hwpt1);
}

/*
 * The same rollback onto a domain whose VM is gone. The iommu core must be
 * able to put the device back (it WARNs when it cannot); the device comes
 * back blocked, like the whole domain. So does a device that joins the
 * group while it is on the dead domain.
 */
TEST_F(kvm_domain, group_rollback_dead_domain)
{
	__u64 mine = 1ULL << variant->format;
	__u32 hwpt1, hwpt2, sib_id, sib2_id;
	struct iommu_kvm_mock_info info;
	struct dbg_domain d;
	int sib, sib2, vm2;

	vm2 = ioctl(self->k.kvm_fd, KVM_CREATE_VM, 0);
	ASSERT_LE(0, vm2);
	test_cmd_mock_sibling(self->k.mock_fd, &sib, &sib_id);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt1);
	ASSERT_EQ(0, _test_cmd_hwpt_kvm_alloc(&self->k, variant->format,
					      self->k.dev_id, vm2, &hwpt2));
	test_attach_ready(self->k.mock_fd, hwpt1, variant->format);
	test_cmd_mock_attach(sib, hwpt1);

	ASSERT_EQ(0, close(self->k.vm_fd));
	self->k.vm_fd = -1;
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM | IOMMU_KVM_MOCK_INFO_DEAD,
		  info.out_flags);

	test_cmd_mock_set_formats(sib, MOCK_FORMATS & ~mine);
	test_err_mock_attach(EINVAL, self->k.mock_fd, hwpt2);
	ASSERT_EQ(0, kmsg_splats(self->k.kmsg_fd));

	/* Back on the dead domain, and blocked */
	ASSERT_EQ(2, dbg_domains(self->k.pid, info.out_domain_id, &d));
	ASSERT_EQ(2, d.devices);
	ASSERT_STREQ("dead", d.state);
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM | IOMMU_KVM_MOCK_INFO_DEAD,
		  info.out_flags);
	test_err_dma(ENODEV, self->k.mock_fd, dma_iova(variant->format));
	test_err_dma(ENODEV, sib, dma_iova(variant->format));

	/* A device joining the group now is put on it too, blocked */
	test_cmd_mock_sibling(self->k.mock_fd, &sib2, &sib2_id);
	ASSERT_EQ(2, dbg_domains(self->k.pid, d.id, &d));
	ASSERT_EQ(3, d.devices);
	test_err_dma(ENODEV, sib2, dma_iova(variant->format));
	ASSERT_EQ(0, kmsg_splats(self->k.kmsg_fd));

	test_cmd_mock_detach(self->k.mock_fd);
	test_cmd_mock_detach(sib);
	kvmdom_close_mock(&self->k, &sib2);
	test_ioctl_destroy(hwpt1);
	test_ioctl_destroy(hwpt2);
	ASSERT_EQ(0, close(vm2));
}

/*
 * A group member unplugged while the group is attached: the domain forgets
 * it, and the rest of the group goes on and detaches normally.
 */
TEST_F(kvm_domain, group_member_unplugged)
{
	struct iommu_kvm_mock_info info;
	struct dbg_domain d;
	__u32 hwpt_id, sib_id;
	int sib;

	test_cmd_mock_sibling(self->k.mock_fd, &sib, &sib_id);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	test_attach_ready(self->k.mock_fd, hwpt_id, variant->format);
	test_cmd_mock_attach(sib, hwpt_id);
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(1, dbg_domains(self->k.pid, info.out_domain_id, &d));
	ASSERT_EQ(2, d.devices);

	/* Unplug the sibling while the group is on the domain */
	kvmdom_close_mock(&self->k, &sib);
	ASSERT_EQ(1, dbg_domains(self->k.pid, info.out_domain_id, &d));
	ASSERT_EQ(1, d.devices);
	test_dma_ok(self->k.mock_fd, variant->format);

	test_cmd_mock_detach(self->k.mock_fd);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_EQ(0, d.devices);
	test_ioctl_destroy(hwpt_id);
	ASSERT_EQ(0, kmsg_splats(self->k.kmsg_fd));
}

/*
 * A VM with private memory (here a software-protected x86 VM) has guest
 * memory that the host does not map: a shared format, whose IOMMU would
 * walk KVM's table of that memory, is refused with EOPNOTSUPP. A shadow
 * format translates through its parent's IOAS, which maps only what the
 * VMM mapped, and is accepted.
 */
TEST_F(kvm_domain, private_mem_vm)
{
#ifdef __x86_64__
	__u32 hwpt_id;
	int types, vm;

	types = ioctl(self->k.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
	if (types < 0 || !(types & (1 << KVM_X86_SW_PROTECTED_VM)))
		SKIP(return,
		     "no KVM_X86_SW_PROTECTED_VM (CONFIG_KVM_SW_PROTECTED_VM)");
	vm = ioctl(self->k.kvm_fd, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	ASSERT_LE(0, vm);
	if (variant->format == FMT_SHADOW) {
		ASSERT_EQ(0, _test_cmd_hwpt_kvm_alloc(&self->k, FMT_SHADOW,
						      self->k.dev_id, vm,
						      &hwpt_id));
		test_attach_ready(self->k.mock_fd, hwpt_id, FMT_SHADOW);
		test_dma_ok(self->k.mock_fd, FMT_SHADOW);
		test_cmd_mock_detach(self->k.mock_fd);
		test_ioctl_destroy(hwpt_id);
	} else {
		ASSERT_ERRNO(EOPNOTSUPP,
			     _test_cmd_hwpt_kvm_alloc(&self->k, variant->format,
						      self->k.dev_id, vm,
						      &hwpt_id));
		ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
	}
	ASSERT_EQ(0, close(vm));
#else
	SKIP(return, "private memory VMs are tested on x86_64");
#endif
}

/*
 * A device with reserved regions. A shadow HWPT handles them as a nested
 * HWPT does: they are reserved in its parent's IOAS (a direct-mapped region
 * that guest memory already covers makes the attach fail with EADDRINUSE,
 * and a reserved window cannot be mapped while the device is attached: EINVAL
 * from IOMMU_IOAS_MAP). A
 * shared HWPT translates the guest's physical address space, where neither
 * a software MSI window nor a direct-mapped region can be kept: it refuses
 * such a device with EOPNOTSUPP. Relaxable direct regions are ignored, as
 * for every HWPT.
 */
#define RESV_WINDOW (MEM_SIZE + 0x100000ULL)
TEST_F(kvm_domain, reserved_regions)
{
	__u32 hwpt_id;

	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);

	test_cmd_mock_set_resv(self->k.mock_fd,
			       IOMMU_KVM_MOCK_RESV_DIRECT_RELAXABLE, DATA_GPA,
			       PAGE);
	test_attach_ready(self->k.mock_fd, hwpt_id, variant->format);
	test_dma_ok(self->k.mock_fd, variant->format);
	test_cmd_mock_detach(self->k.mock_fd);

	if (variant->format == FMT_SHADOW) {
		/* Guest memory at GPA 0 already covers it */
		test_cmd_mock_set_resv(self->k.mock_fd,
				       IOMMU_KVM_MOCK_RESV_DIRECT, DATA_GPA,
				       PAGE);
		test_err_mock_attach(EADDRINUSE, self->k.mock_fd, hwpt_id);

		/* A window above guest memory is reserved while attached */
		test_cmd_mock_set_resv(self->k.mock_fd,
				       IOMMU_KVM_MOCK_RESV_SW_MSI, RESV_WINDOW,
				       PAGE);
		test_attach_ready(self->k.mock_fd, hwpt_id, FMT_SHADOW);
		test_dma_ok(self->k.mock_fd, FMT_SHADOW);
		/* iommufd's answer for a map into a reserved range */
		ASSERT_ERRNO(EINVAL,
			     _test_ioctl_ioas_map(self->k.iommufd,
						  self->k.ioas_id, self->k.mem,
						  PAGE, RESV_WINDOW));
		test_cmd_mock_detach(self->k.mock_fd);
		test_ioctl_ioas_map(self->k.mem, PAGE, RESV_WINDOW);
		test_ioctl_ioas_unmap(RESV_WINDOW, PAGE);
	} else {
		test_cmd_mock_set_resv(self->k.mock_fd,
				       IOMMU_KVM_MOCK_RESV_SW_MSI, RESV_WINDOW,
				       PAGE);
		test_err_mock_attach(EOPNOTSUPP, self->k.mock_fd, hwpt_id);
		test_cmd_mock_set_resv(self->k.mock_fd,
				       IOMMU_KVM_MOCK_RESV_DIRECT, RESV_WINDOW,
				       PAGE);
		test_err_mock_attach(EOPNOTSUPP, self->k.mock_fd, hwpt_id);
		/* Not through a replace either */
		test_cmd_mock_attach(self->k.mock_fd, self->k.ioas_id);
		test_err_mock_attach(EOPNOTSUPP, self->k.mock_fd, hwpt_id);
		test_cmd_mock_detach(self->k.mock_fd);
	}

	/* Without them, the device attaches again */
	test_cmd_mock_set_resv(self->k.mock_fd, IOMMU_KVM_MOCK_RESV_NONE, 0, 0);
	test_attach_ready(self->k.mock_fd, hwpt_id, variant->format);
	test_dma_ok(self->k.mock_fd, variant->format);
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
}

/* A VM going away kills the HWPTs of that VM, and only those */
TEST_F(kvm_domain, two_vms)
{
	struct iommu_kvm_mock_info info;
	__u32 hwpt1, hwpt1b, hwpt2, dev2, dev3;
	int vm2, mock2, mock3;

	vm2 = ioctl(self->k.kvm_fd, KVM_CREATE_VM, 0);
	ASSERT_LE(0, vm2);
	/* The same guest memory, so that the DMA checks hold for both */
	ASSERT_EQ(0, ioctl(vm2, KVM_SET_USER_MEMORY_REGION,
			   &(struct kvm_userspace_memory_region){
				   .memory_size = MEM_SIZE,
				   .userspace_addr = (uintptr_t)self->k.mem,
			   }));
	test_cmd_mock_new(&mock2, &dev2);
	test_cmd_mock_new(&mock3, &dev3);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt1);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt1b);
	ASSERT_EQ(0, _test_cmd_hwpt_kvm_alloc(&self->k, variant->format,
					      self->k.dev_id, vm2, &hwpt2));
	test_attach_ready(self->k.mock_fd, hwpt1, variant->format);
	test_attach_ready(mock2, hwpt2, variant->format);
	test_attach_ready(mock3, hwpt1b, variant->format);

	ASSERT_EQ(0, close(self->k.vm_fd));
	self->k.vm_fd = -1;
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM | IOMMU_KVM_MOCK_INFO_DEAD,
		  info.out_flags);
	test_cmd_mock_info(mock3, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM | IOMMU_KVM_MOCK_INFO_DEAD,
		  info.out_flags);
	test_err_dma(ENODEV, self->k.mock_fd, dma_iova(variant->format));
	test_err_dma(ENODEV, mock3, dma_iova(variant->format));

	test_cmd_mock_info(mock2, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM, info.out_flags);
	test_dma_ok(mock2, variant->format);
	test_cmd_mock_attach(mock3, hwpt2);
	test_dma_ok(mock3, variant->format);

	test_cmd_mock_detach(self->k.mock_fd);
	test_cmd_mock_detach(mock2);
	test_cmd_mock_detach(mock3);
	test_ioctl_destroy(hwpt1);
	test_ioctl_destroy(hwpt1b);
	test_ioctl_destroy(hwpt2);
	ASSERT_EQ(0, close(vm2));
}

/* The VM's process exits while the VM file lives on in another process */
static int send_fd(int sock, int fd, __u32 data)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = {};
	struct iovec iov = { .iov_base = &data, .iov_len = sizeof(data) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf,
		.msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == sizeof(data) ? 0 : -1;
}

static int recv_fd(int sock, int *fd, __u32 *data)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = {};
	struct iovec iov = { .iov_base = data, .iov_len = sizeof(*data) };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf,
		.msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cmsg;

	if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != sizeof(*data))
		return -1;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(fd, CMSG_DATA(cmsg), sizeof(int));
	return 0;
}

TEST_F(kvm_domain, vm_owner_exits)
{
	struct iommu_kvm_mock_info info;
	struct dbg_domain d;
	int sv[2], status, vm_fd, mock2;
	__u32 hwpt_id, dev2, unused;
	pid_t child;

	test_cmd_mock_new(&mock2, &dev2);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));

	/*
	 * The child makes a VM of its own and a HWPT for it in the shared
	 * iommufd, attaches the shared device, hands the VM file over and
	 * exits: the VM loses its process but not its file.
	 */
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		int vm = ioctl(self->k.kvm_fd, KVM_CREATE_VM, 0);
		__u32 id;

		if (vm < 0)
			_exit(1);
		if (_test_cmd_hwpt_kvm_alloc(&self->k, variant->format,
					     self->k.dev_id, vm, &id))
			_exit(2);
		if (_test_cmd_mock_attach(self->k.mock_fd, id))
			_exit(3);
		if (variant->format == FMT_SHADOW &&
		    _test_cmd_mock_sync(self->k.mock_fd, 0, 0))
			_exit(4);
		if (send_fd(sv[1], vm, id))
			_exit(5);
		_exit(0);
	}
	close(sv[1]);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	ASSERT_EQ(0, recv_fd(sv[0], &vm_fd, &hwpt_id));
	close(sv[0]);

	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM | IOMMU_KVM_MOCK_INFO_DEAD,
		  info.out_flags);
	test_err_dma(ENODEV, self->k.mock_fd, dma_iova(variant->format));
	ASSERT_EQ(1, dbg_domains(child, DBG_ANY, &d));
	ASSERT_STREQ("dead", d.state);
	ASSERT_EQ(1, d.devices);
	test_err_mock_attach(ENODEV, mock2, hwpt_id);

	/* The VM is not this process's to give */
	ASSERT_ERRNO(EPERM, _test_cmd_hwpt_kvm_alloc(&self->k, variant->format,
						     self->k.dev_id, vm_fd,
						     &unused));

	test_err_destroy(EBUSY, hwpt_id);
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
	ASSERT_EQ(0, dbg_domains(child, DBG_ANY, NULL));
	close(vm_fd);
}

/*
 * execve() in the VM's process ends the VM for the HWPT, as an exit does:
 * the owner is the address space, which execve() replaces. Here the VM's
 * file even stays open across it (KVM_CREATE_VM's descriptor is
 * close-on-exec; the child keeps a copy without the flag).
 */
TEST_F(kvm_domain, vm_owner_execs)
{
	struct iommu_kvm_mock_info info;
	int pipefd[2], status;
	__u32 hwpt_id;
	pid_t child;
	char c;

	ASSERT_EQ(0, pipe2(pipefd, O_CLOEXEC));
	child = fork();
	ASSERT_LE(0, child);
	if (!child) {
		int vm = ioctl(self->k.kvm_fd, KVM_CREATE_VM, 0);
		__u32 id;

		close(pipefd[0]);
		if (vm < 0 || dup2(vm, 100) != 100)
			_exit(1);
		if (_test_cmd_hwpt_kvm_alloc(&self->k, variant->format,
					     self->k.dev_id, vm, &id))
			_exit(2);
		if (_test_cmd_mock_attach(self->k.mock_fd, id))
			_exit(3);
		if (variant->format == FMT_SHADOW &&
		    _test_cmd_mock_sync(self->k.mock_fd, 0, 0))
			_exit(4);
		if (write(pipefd[1], &id, sizeof(id)) != sizeof(id))
			_exit(5);
		/* The pipe closes with the exec; fd 100 stays open */
		execl("/bin/sh", "sh", "-c", "exec sleep 60", NULL);
		_exit(6);
	}
	close(pipefd[1]);
	ASSERT_EQ(sizeof(hwpt_id), read(pipefd[0], &hwpt_id, sizeof(hwpt_id)));
	ASSERT_EQ(0, read(pipefd[0], &c, 1));
	close(pipefd[0]);
	/* Still running: it exec'ed, it did not exit */
	ASSERT_EQ(0, waitpid(child, &status, WNOHANG));

	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM | IOMMU_KVM_MOCK_INFO_DEAD,
		  info.out_flags);
	test_err_dma(ENODEV, self->k.mock_fd, dma_iova(variant->format));

	ASSERT_EQ(0, kill(child, SIGKILL));
	ASSERT_EQ(child, waitpid(child, &status, 0));
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
	ASSERT_EQ(0, dbg_domains(child, DBG_ANY, NULL));
}

TEST_F(kvm_domain, iommufd_closed_first)
{
	struct iommu_kvm_mock_info info;
	long kvm_refs = read_long(KVM_REFCNT);
	__u32 hwpt_id;

	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	test_attach_ready(self->k.mock_fd, hwpt_id, variant->format);

	/* The bound device keeps the iommufd context, and so the HWPT */
	ASSERT_EQ(0, close(self->k.iommufd));
	self->k.iommufd = -1;
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM, info.out_flags);
	test_dma_ok(self->k.mock_fd, variant->format);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, NULL));

	/* Unplugging it lets the context, the HWPT and its domain go */
	kvmdom_close_mock(&self->k, &self->k.mock_fd);
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
	ASSERT_EQ(kvm_refs, read_long(KVM_REFCNT));
}

TEST_F(kvm_domain, hot_unplug)
{
	struct dbg_domain d;
	__u32 hwpt_id, dev2;
	int mock2;

	test_cmd_mock_new(&mock2, &dev2);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	test_attach_ready(self->k.mock_fd, hwpt_id, variant->format);
	test_cmd_mock_attach(mock2, hwpt_id);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_EQ(2, d.devices);

	/* One goes away: the other keeps translating */
	kvmdom_close_mock(&self->k, &self->k.mock_fd);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_EQ(1, d.devices);
	test_dma_ok(mock2, variant->format);
	test_err_destroy(EBUSY, hwpt_id);

	kvmdom_close_mock(&self->k, &mock2);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_EQ(0, d.devices);
	test_ioctl_destroy(hwpt_id);
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));
}

TEST_F(kvm_domain, driver_module_pinned)
{
	long refs, refs_after;
	__u32 hwpt_id;

	if (access(MOCK_REFCNT, F_OK))
		SKIP(return, "%s is built in", MOCK_MODULE);

	/* Only the domain holds the driver once its device is unplugged */
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	kvmdom_close_mock(&self->k, &self->k.mock_fd);
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, NULL));
	refs = read_long(MOCK_REFCNT);
	/* If this fails, the delete_module() below would unload it */
	ASSERT_LT(0, refs);

	ASSERT_UNLOAD_REFUSED(MOCK_MODULE);
	ASSERT_EQ(0, access("/dev/iommu_kvm_mock", F_OK));

	test_ioctl_destroy(hwpt_id);
	refs_after = read_long(MOCK_REFCNT);
	ASSERT_GT(refs, refs_after);
}

TEST_F(kvm_domain, kvm_module_pinned)
{
	long refs, refs_domain, refs_closed;
	__u32 hwpt_id;

	if (access(KVM_REFCNT, F_OK))
		SKIP(return, "kvm is built in");

	refs = read_long(KVM_REFCNT);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	refs_domain = read_long(KVM_REFCNT);
	ASSERT_LT(refs, refs_domain);
	test_ioctl_destroy(hwpt_id);
	ASSERT_EQ(refs, read_long(KVM_REFCNT));

	/* Still pinned when the VM file is gone */
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	ASSERT_EQ(0, close(self->k.vm_fd));
	self->k.vm_fd = -1;
	refs_closed = read_long(KVM_REFCNT);
	ASSERT_LT(0, refs_closed);
	test_ioctl_destroy(hwpt_id);
	ASSERT_GT(refs_closed, read_long(KVM_REFCNT));
}

/*
 * A HWPT_PAGING of the mock IOMMU, plain or nest parent, runs the mock's
 * domain ops until it is destroyed: each one must hold iommu_kvm_mock, also
 * once its device is unplugged, or rmmod succeeds and the destroy runs freed
 * module text.
 */
TEST_F(kvm_domain, paging_pins_driver)
{
	__u32 paging_id, parent_id;
	long refs, refs_unplugged;

	if (access(MOCK_REFCNT, F_OK))
		SKIP(return, "%s is built in", MOCK_MODULE);

	refs = read_long(MOCK_REFCNT);
	test_cmd_hwpt_alloc(self->k.ioas_id, 0, &paging_id);
	test_cmd_hwpt_alloc(self->k.ioas_id, IOMMU_HWPT_ALLOC_NEST_PARENT,
			    &parent_id);
	/* Before the fix: unchanged, and the delete_module() below unloads it */
	ASSERT_EQ(refs + 2, read_long(MOCK_REFCNT));

	kvmdom_close_mock(&self->k, &self->k.mock_fd);
	refs_unplugged = read_long(MOCK_REFCNT);
	ASSERT_LE(2, refs_unplugged);
	ASSERT_UNLOAD_REFUSED(MOCK_MODULE);

	test_ioctl_destroy(paging_id);
	ASSERT_EQ(refs_unplugged - 1, read_long(MOCK_REFCNT));
	test_ioctl_destroy(parent_id);
	ASSERT_EQ(refs_unplugged - 2, read_long(MOCK_REFCNT));
}

/*
 * The VM's destruction runs code of the vendor module (kvm_amd, kvm_intel),
 * which only the VM's file (and /dev/kvm) pin. With both closed, the
 * HWPT's VM reference must still keep that module loaded: otherwise
 * "rmmod kvm_amd" succeeds and destroying the HWPT runs kvm_destroy_vm()
 * into the unloaded module.
 */
TEST_F(kvm_domain, vendor_module_pinned)
{
	static const char *const vendors[] = { "kvm_amd", "kvm_intel" };
	char path[64];
	const char *vendor = NULL;
	long refs, refs_closed;
	__u32 hwpt_id;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(vendors) && !vendor; i++) {
		snprintf(path, sizeof(path), "/sys/module/%s/refcnt", vendors[i]);
		if (!access(path, F_OK))
			vendor = vendors[i];
	}
	if (!vendor)
		SKIP(return, "no vendor module loaded (built in?)");

	refs = read_long(path);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	ASSERT_EQ(0, close(self->k.vm_fd));
	self->k.vm_fd = -1;
	ASSERT_EQ(0, close(self->k.kvm_fd));
	self->k.kvm_fd = -1;
	refs_closed = read_long(path);
	/* Before the fix: 0 here, and the delete_module() below unloads it */
	ASSERT_LT(0, refs_closed)
		TH_LOG("%s not pinned by the HWPT (refcnt %ld before, %ld now)",
		       vendor, refs, refs_closed);

	ASSERT_UNLOAD_REFUSED(vendor);

	/* The last VM reference: kvm_destroy_vm() runs in the vendor module */
	test_ioctl_destroy(hwpt_id);
	ASSERT_GT(refs_closed, read_long(path));
	ASSERT_EQ(0, access(path, F_OK));
}

/*
 * Two devices attach, replace and detach in loops on one HWPT while a third
 * thread closes the VM and a fourth reads debugfs.
 */
struct race {
	int mock_fd;
	__u32 hwpt_id;
	__u32 ioas_id;
	__u64 kvm_iova;
	__u8 expect;
	int iters;
	int *closing;
	int *closed;
	int progress;
	int finished;
	int errors;
	char msg[256];
};

struct race_closer {
	struct race *r[2];
	int vm_fd;
	int closing;
	int closed;
	int stop;
};

static void race_error(struct race *r, const char *what, int ret, int err)
{
	if (!r->errors++)
		snprintf(r->msg, sizeof(r->msg), "%s: ret %d errno %d (%s)",
			 what, ret, err, strerror(err));
}

/* Attach or replace to the KVM HWPT; returns whether it succeeded */
static bool race_kvm_step(struct race *r, const char *what)
{
	bool dead = __atomic_load_n(r->closed, __ATOMIC_ACQUIRE);
	int ret, err;
	__u64 gpa;
	__u8 buf[16];

	ret = _test_cmd_mock_attach(r->mock_fd, r->hwpt_id);
	err = errno;
	if (ret) {
		if (err != ENODEV ||
		    !__atomic_load_n(r->closing, __ATOMIC_ACQUIRE))
			race_error(r, what, ret, err);
		return false;
	}
	if (dead)
		race_error(r, "attached to a HWPT whose VM is gone", 0, 0);

	dead = __atomic_load_n(r->closed, __ATOMIC_ACQUIRE);
	ret = _test_cmd_mock_dma(r->mock_fd, 0, r->kvm_iova, buf, sizeof(buf),
				 &gpa);
	err = errno;
	if (ret) {
		if (err != ENODEV ||
		    !__atomic_load_n(r->closing, __ATOMIC_ACQUIRE))
			race_error(r, "DMA through the KVM HWPT", ret, err);
	} else if (dead) {
		race_error(r, "DMA through a HWPT whose VM is gone", 0, 0);
	} else if (gpa != DATA_GPA + 0x10) {
		race_error(r, "DMA reached the wrong GPA", 0, 0);
	} else if (buf[0] != pattern(DATA_GPA + 0x10)) {
		race_error(r, "DMA through the KVM HWPT read garbage", 0, 0);
	}
	return true;
}

static void *race_thread(void *arg)
{
	struct race *r = arg;
	__u8 buf[16];
	int i, ret;

	for (i = 0; i < r->iters && !r->errors; i++) {
		race_kvm_step(r, "attach to the KVM HWPT");

		/* The IOAS never depends on the VM */
		ret = _test_cmd_mock_attach(r->mock_fd, r->ioas_id);
		if (ret)
			race_error(r, "attach to the IOAS", ret, errno);
		ret = _test_cmd_mock_dma(r->mock_fd, 0, DATA_GPA, buf,
					 sizeof(buf), NULL);
		if (ret)
			race_error(r, "DMA through the IOAS", ret, errno);
		else if (buf[0] != r->expect)
			race_error(r, "DMA through the IOAS read garbage", 0, 0);

		race_kvm_step(r, "replace to the KVM HWPT");

		ret = _test_cmd_mock_detach(r->mock_fd);
		if (ret)
			race_error(r, "detach", ret, errno);
		__atomic_add_fetch(&r->progress, 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&r->finished, 1, __ATOMIC_RELEASE);
	return NULL;
}

static bool race_midway(struct race *r)
{
	return __atomic_load_n(&r->finished, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&r->progress, __ATOMIC_ACQUIRE) >= r->iters / 3;
}

static void *race_close_vm(void *arg)
{
	struct race_closer *c = arg;

	while (!race_midway(c->r[0]) || !race_midway(c->r[1]))
		sched_yield();
	__atomic_store_n(&c->closing, 1, __ATOMIC_RELEASE);
	close(c->vm_fd);
	__atomic_store_n(&c->closed, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *race_read_debugfs(void *arg)
{
	struct race_closer *c = arg;
	char buf[4096];

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE))
		read_file(DOMAINS_FILE, buf, sizeof(buf));
	return NULL;
}

TEST_F(kvm_domain, concurrent_attach_detach)
{
	struct race_closer c = { .vm_fd = self->k.vm_fd };
	struct race r[2] = {};
	pthread_t threads[2], closer, reader;
	struct iommu_kvm_mock_info info;
	struct dbg_domain d;
	__u32 hwpt_id, dev2;
	int mock2, i;

	test_cmd_mock_new(&mock2, &dev2);
	test_cmd_hwpt_kvm_alloc(variant->format, &hwpt_id);
	/* Fill the shadow once; it stays while devices come and go */
	test_attach_ready(self->k.mock_fd, hwpt_id, variant->format);
	test_cmd_mock_detach(self->k.mock_fd);

	for (i = 0; i < 2; i++) {
		r[i] = (struct race){
			.mock_fd = i ? mock2 : self->k.mock_fd,
			.hwpt_id = hwpt_id,
			.ioas_id = self->k.ioas_id,
			.kvm_iova = dma_iova(variant->format),
			.expect = pattern(DATA_GPA),
			.iters = 150,
			.closing = &c.closing,
			.closed = &c.closed,
		};
		c.r[i] = &r[i];
	}
	ASSERT_EQ(0, pthread_create(&reader, NULL, race_read_debugfs, &c));
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, race_thread,
					    &r[i]));
	ASSERT_EQ(0, pthread_create(&closer, NULL, race_close_vm, &c));
	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_join(threads[i], NULL));
	ASSERT_EQ(0, pthread_join(closer, NULL));
	self->k.vm_fd = -1;
	__atomic_store_n(&c.stop, 1, __ATOMIC_RELEASE);
	ASSERT_EQ(0, pthread_join(reader, NULL));

	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, r[i].errors) TH_LOG("device %d: %s", i, r[i].msg);
		ASSERT_EQ(r[i].iters, r[i].progress);
	}
	ASSERT_EQ(1, c.closed);

	/* Every device left; the HWPT is dead, empty and can go */
	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_STREQ("dead", d.state);
	ASSERT_EQ(0, d.devices);
	ASSERT_EQ(1, d.mock_blocked);
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(0, info.out_flags);
	test_cmd_mock_info(mock2, &info);
	ASSERT_EQ(0, info.out_flags);
	test_err_mock_attach(ENODEV, self->k.mock_fd, hwpt_id);
	test_err_mock_attach(ENODEV, mock2, hwpt_id);
	test_ioctl_destroy(hwpt_id);
	ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL));

	/* The devices still work */
	test_cmd_mock_attach(self->k.mock_fd, self->k.ioas_id);
	test_cmd_mock_attach(mock2, self->k.ioas_id);
	test_cmd_mock_detach(self->k.mock_fd);
	test_cmd_mock_detach(mock2);
}

/* kvm_shared: what only the shared format does */
FIXTURE(kvm_shared)
{
	struct kvmdom k;
	__u8 *mem1;
};

FIXTURE_SETUP(kvm_shared)
{
	self->mem1 = MAP_FAILED;
	kvmdom_setup(_metadata, &self->k, true);
	/* The mock looks up and counts host pages; these tests count 4 KiB */
	if (getpagesize() != PAGE)
		SKIP(return, "host pages are not %llu bytes", PAGE);
}

FIXTURE_TEARDOWN_PARENT(kvm_shared)
{
	if (kvmdom_in_test(&self->k) && self->mem1 != MAP_FAILED)
		munmap(self->mem1, MEM_SIZE);
	kvmdom_teardown(_metadata, &self->k);
}

/* Memslot 1 over fresh anonymous memory at SLOT1_GPA, and a HWPT attached */
static void shared_slot1(struct __test_metadata *_metadata,
			 struct kvmdom *k, __u8 **mem1, __u32 *hwpt_id)
{
	struct kvm_userspace_memory_region region = {
		.slot = 1,
		.guest_phys_addr = SLOT1_GPA,
		.memory_size = MEM_SIZE,
	};

	*mem1 = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, *mem1);
	memset(*mem1, 0x11, MEM_SIZE);
	region.userspace_addr = (uintptr_t)*mem1;
	ASSERT_EQ(0, ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &region));
	ASSERT_EQ(0, _test_cmd_hwpt_kvm_alloc(k, FMT_SHARED, k->dev_id,
					      k->vm_fd, hwpt_id));
	test_cmd_mock_attach(k->mock_fd, *hwpt_id);
}

#ifdef __x86_64__
#define VCPU_CODE_GPA 0xc000ULL

/*
 * Create vCPU @id of @k's VM and run it, in 32-bit protected mode without
 * paging (so a guest address is a guest physical address), through @len
 * bytes of code copied to VCPU_CODE_GPA, until it halts. Returns 0 if it
 * did.
 */
static int vcpu_run_code(struct kvmdom *k, int id, const __u8 *code,
			 size_t len)
{
	struct kvm_segment seg = {
		.limit = 0xffffffff, .present = 1, .s = 1, .db = 1, .g = 1,
	};
	struct kvm_regs regs = { .rip = VCPU_CODE_GPA, .rflags = 2 };
	struct kvm_run *run = MAP_FAILED;
	struct kvm_sregs sregs;
	int vcpu, size, ret = -1;

	memcpy(k->mem + VCPU_CODE_GPA, code, len);
	vcpu = ioctl(k->vm_fd, KVM_CREATE_VCPU, id);
	if (vcpu < 0)
		return -1;
	size = ioctl(k->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size > 0)
		run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			   vcpu, 0);
	if (run == MAP_FAILED)
		goto out_close;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs))
		goto out_unmap;
	seg.type = 11;	/* code, execute/read, accessed */
	seg.selector = 8;
	sregs.cs = seg;
	seg.type = 3;	/* data, read/write, accessed */
	seg.selector = 16;
	sregs.ds = seg;
	sregs.es = seg;
	sregs.ss = seg;
	sregs.cr0 |= 1;	/* PE */
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) ||
	    ioctl(vcpu, KVM_SET_REGS, &regs))
		goto out_unmap;
	if (!ioctl(vcpu, KVM_RUN, 0) && run->exit_reason == KVM_EXIT_HLT)
		ret = 0;
out_unmap:
	munmap(run, size);
out_close:
	close(vcpu);
	return ret;
}
#endif

static int delete_slot(int vm_fd, __u32 slot, __u64 gpa)
{
	struct kvm_userspace_memory_region region = {
		.slot = slot,
		.guest_phys_addr = gpa,
	};

	return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region);
}

/*
 * The last invalidation @fd's domain got covers [start, last], in slot 1.
 * KVM reported every one after it dropped its mmu_lock: none reached the
 * domain with preemption off.
 */
#define test_invalidated_fd(fd, before, start, last)                       \
	({                                                                 \
		struct iommu_kvm_mock_info __info;                         \
		struct dbg_domain __d;                                     \
		test_cmd_mock_info(fd, &__info);                           \
		ASSERT_LT((before).out_invalidations,                      \
			  __info.out_invalidations);                       \
		if (__info.out_atomic_invalidations != ~0ULL)              \
			ASSERT_EQ(0, __info.out_atomic_invalidations);     \
		ASSERT_GE(start, __info.out_inv_start);                    \
		ASSERT_LE(last, __info.out_inv_last);                      \
		ASSERT_LE(SLOT1_GPA, __info.out_inv_start);                \
		ASSERT_GE(SLOT1_GPA + MEM_SIZE - 1, __info.out_inv_last);  \
		ASSERT_LE(1, dbg_domains(self->k.pid,                      \
					 __info.out_domain_id, &__d));     \
		ASSERT_EQ(__info.out_domain_id, __d.id);                   \
		ASSERT_EQ(__info.out_invalidations, __d.invalidations);    \
	})
#define test_invalidated(before, start, last) \
	test_invalidated_fd(self->k.mock_fd, before, start, last)

/* DMA reads and writes the guest's bytes at IOVA == GPA, once looked up */
TEST_F(kvm_shared, dma_gpa)
{
	static const __u64 iovas[] = { 0, DATA_GPA + 0x123, MEM_SIZE - 8 };
	static const __u8 msg[8] = "written";
	struct iommu_kvm_mock_info info;
	__u32 hwpt_id;
	__u8 buf[8];
	unsigned int i, j;

	test_cmd_hwpt_kvm_alloc(FMT_SHARED, &hwpt_id);
	test_cmd_mock_attach(self->k.mock_fd, hwpt_id);
	for (i = 0; i < ARRAY_SIZE(iovas); i++) {
		__u64 gpa = ~0ULL;

		/* Nothing looked up yet: the translation faults */
		test_err_dma(EFAULT, self->k.mock_fd, iovas[i]);
		test_cmd_mock_fault(self->k.mock_fd, iovas[i], sizeof(buf));

		test_cmd_mock_dma_read(self->k.mock_fd, iovas[i], buf,
				       sizeof(buf), &gpa);
		ASSERT_EQ(iovas[i], gpa);
		for (j = 0; j < sizeof(buf); j++)
			ASSERT_EQ(pattern(iovas[i] + j), buf[j]);
		gpa = ~0ULL;
		test_cmd_mock_dma_write(self->k.mock_fd, iovas[i], (void *)msg,
					sizeof(msg), &gpa);
		ASSERT_EQ(iovas[i], gpa);
		ASSERT_EQ(0, memcmp(self->k.mem + iovas[i], msg, sizeof(msg)));
		/* The byte after it is untouched */
		if (iovas[i] + sizeof(msg) < MEM_SIZE)
			ASSERT_EQ(pattern(iovas[i] + sizeof(msg)),
				  self->k.mem[iovas[i] + sizeof(msg)]);
	}
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(ARRAY_SIZE(iovas), info.out_shadow_entries);

	/* Bad lookups */
	test_err_mock_fault(EINVAL, self->k.mock_fd, 0, 0);
	test_err_mock_fault(EINVAL, self->k.mock_fd, ~0ULL - 8, 16);
	test_err_mock_fault(EINVAL, self->k.mock_fd, 0,
			    (IOMMU_KVM_MOCK_FAULT_MAX_PAGES + 1) * PAGE);
	ASSERT_ERRNO(EINVAL, _test_cmd_mock_fault(self->k.mock_fd, 0x80, 0,
						  PAGE));
	/* No memslot there: nothing to look up */
	test_err_mock_fault(EFAULT, self->k.mock_fd, MEM_SIZE, PAGE);
	test_err_dma(EFAULT, self->k.mock_fd, MEM_SIZE);
	/* A shared format has nothing to sync */
	test_err_mock_sync(EINVAL, self->k.mock_fd, 0, 0);
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
}

TEST_F(kvm_shared, invalidate_munmap)
{
	struct iommu_kvm_mock_info before;
	__u32 hwpt_id;

	shared_slot1(_metadata, &self->k, &self->mem1, &hwpt_id);
	test_cmd_mock_info(self->k.mock_fd, &before);
	ASSERT_EQ(0, munmap(self->mem1 + 0x10000, 0x4000));
	test_invalidated(before, SLOT1_GPA + 0x10000, SLOT1_GPA + 0x14000 - 1);

	test_cmd_mock_info(self->k.mock_fd, &before);
	ASSERT_EQ(0, munmap(self->mem1 + MEM_SIZE - PAGE, PAGE));
	test_invalidated(before, SLOT1_GPA + MEM_SIZE - PAGE,
			 SLOT1_GPA + MEM_SIZE - 1);

	ASSERT_EQ(0, delete_slot(self->k.vm_fd, 1, SLOT1_GPA));
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
}

TEST_F(kvm_shared, invalidate_madvise)
{
	struct iommu_kvm_mock_info before;
	__u32 hwpt_id;

	shared_slot1(_metadata, &self->k, &self->mem1, &hwpt_id);
	test_cmd_mock_info(self->k.mock_fd, &before);
	ASSERT_EQ(0, madvise(self->mem1 + 0x20000, 0x2000, MADV_DONTNEED));
	test_invalidated(before, SLOT1_GPA + 0x20000, SLOT1_GPA + 0x22000 - 1);

	ASSERT_EQ(0, delete_slot(self->k.vm_fd, 1, SLOT1_GPA));
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
}

TEST_F(kvm_shared, invalidate_memslot_delete)
{
	struct iommu_kvm_mock_info before;
	__u32 hwpt_id;

	shared_slot1(_metadata, &self->k, &self->mem1, &hwpt_id);
	test_cmd_mock_info(self->k.mock_fd, &before);
	ASSERT_EQ(0, delete_slot(self->k.vm_fd, 1, SLOT1_GPA));
	test_invalidated(before, SLOT1_GPA, SLOT1_GPA + MEM_SIZE - 1);

	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
}

TEST_F(kvm_shared, invalidate_memslot_move)
{
	struct kvm_userspace_memory_region region = {
		.slot = 1,
		.guest_phys_addr = SLOT1_GPA + 4 * MEM_SIZE,
		.memory_size = MEM_SIZE,
	};
	struct iommu_kvm_mock_info before;
	__u32 hwpt_id;

	shared_slot1(_metadata, &self->k, &self->mem1, &hwpt_id);
	test_cmd_mock_info(self->k.mock_fd, &before);
	region.userspace_addr = (uintptr_t)self->mem1;
	ASSERT_EQ(0, ioctl(self->k.vm_fd, KVM_SET_USER_MEMORY_REGION, &region));
	/* The old GPAs no longer reach that memory */
	test_invalidated(before, SLOT1_GPA, SLOT1_GPA + MEM_SIZE - 1);

	ASSERT_EQ(0, delete_slot(self->k.vm_fd, 1, region.guest_phys_addr));
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
}

/*
 * guest_memfd memory that starts out shared: a hole punched into the file
 * reaches the domain through guest_memfd's own invalidation (nothing maps
 * the file in userspace, so no MMU notifier fires), outside KVM's
 * mmu_lock.
 */
TEST_F(kvm_shared, invalidate_guest_memfd)
{
	const __u64 flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
	struct kvm_create_guest_memfd gmem = {
		.size = MEM_SIZE,
		.flags = flags,
	};
	struct kvm_userspace_memory_region2 region = {
		.slot = 1,
		.flags = KVM_MEM_GUEST_MEMFD,
		.guest_phys_addr = SLOT1_GPA,
		.memory_size = MEM_SIZE,
	};
	struct iommu_kvm_mock_info before;
	__u32 hwpt_id;
	int caps, fd;

	caps = ioctl(self->k.vm_fd, KVM_CHECK_EXTENSION,
		     KVM_CAP_GUEST_MEMFD_FLAGS);
	if (caps < 0 || (caps & flags) != flags)
		SKIP(return, "no shared guest_memfd (KVM_CAP_GUEST_MEMFD_FLAGS)");
	fd = ioctl(self->k.vm_fd, KVM_CREATE_GUEST_MEMFD, &gmem);
	ASSERT_LE(0, fd);
	/* The slot's host mapping is other memory: only guest_memfd reports */
	self->mem1 = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->mem1);
	region.userspace_addr = (uintptr_t)self->mem1;
	region.guest_memfd = fd;
	ASSERT_EQ(0, ioctl(self->k.vm_fd, KVM_SET_USER_MEMORY_REGION2,
			   &region));
	ASSERT_EQ(0, _test_cmd_hwpt_kvm_alloc(&self->k, FMT_SHARED,
					      self->k.dev_id, self->k.vm_fd,
					      &hwpt_id));
	test_cmd_mock_attach(self->k.mock_fd, hwpt_id);

	test_cmd_mock_info(self->k.mock_fd, &before);
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       0x10000, 0x4000));
	test_invalidated(before, SLOT1_GPA + 0x10000, SLOT1_GPA + 0x14000 - 1);

	ASSERT_EQ(0, delete_slot(self->k.vm_fd, 1, SLOT1_GPA));
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
	ASSERT_EQ(0, close(fd));
}

/* Every domain on the VM hears of a change */
TEST_F(kvm_shared, invalidate_two_domains)
{
	struct iommu_kvm_mock_info before1, before2;
	__u32 hwpt1, hwpt2, dev2;
	int mock2;

	test_cmd_mock_new(&mock2, &dev2);
	shared_slot1(_metadata, &self->k, &self->mem1, &hwpt1);
	test_cmd_hwpt_kvm_alloc(FMT_SHARED, &hwpt2);
	test_cmd_mock_attach(mock2, hwpt2);
	test_cmd_mock_info(self->k.mock_fd, &before1);
	test_cmd_mock_info(mock2, &before2);
	ASSERT_NE(before1.out_domain_id, before2.out_domain_id);

	ASSERT_EQ(0, munmap(self->mem1 + 0x30000, PAGE));
	test_invalidated_fd(self->k.mock_fd, before1, SLOT1_GPA + 0x30000,
			    SLOT1_GPA + 0x30000 + PAGE - 1);
	test_invalidated_fd(mock2, before2, SLOT1_GPA + 0x30000,
			    SLOT1_GPA + 0x30000 + PAGE - 1);

	ASSERT_EQ(0, delete_slot(self->k.vm_fd, 1, SLOT1_GPA));
	test_cmd_mock_detach(self->k.mock_fd);
	test_cmd_mock_detach(mock2);
	test_ioctl_destroy(hwpt1);
	test_ioctl_destroy(hwpt2);
}

/*
 * DMA after an invalidation: it faults until the mock IOMMU looks the page
 * up in KVM again, and then lands in the new backing, never in the old page.
 * Each of these tests keeps the old page observable where it can, so that a
 * DMA that reached it would show.
 */

/* Bytes @len at @p all equal @c? */
static bool all_bytes(const __u8 *p, __u8 c, size_t len)
{
	while (len--)
		if (*p++ != c)
			return false;
	return true;
}

#define POISON_OFF 0x5000ULL

/* A DMA write of @c to @gpa: 0 or the errno */
static int dma_fill(int fd, __u64 gpa, __u8 c)
{
	__u8 buf[64];

	memset(buf, c, sizeof(buf));
	return _test_cmd_mock_dma(fd, IOMMU_KVM_MOCK_DMA_WRITE, gpa, buf,
				  sizeof(buf), NULL) ? errno : 0;
}

/* A DMA read of 64 bytes at @gpa, all @c? -1 if the DMA failed */
static int dma_all(int fd, __u64 gpa, __u8 c)
{
	__u8 buf[64];

	if (_test_cmd_mock_dma(fd, 0, gpa, buf, sizeof(buf), NULL))
		return -1;
	return all_bytes(buf, c, sizeof(buf));
}

#define test_held(fd, n)                                      \
	({                                                    \
		struct iommu_kvm_mock_info __i;               \
		test_cmd_mock_info(fd, &__i);                 \
		ASSERT_EQ(n, __i.out_shadow_entries);         \
	})

/* The backing of slot 1 is replaced (munmap by MAP_FIXED) */
TEST_F(kvm_shared, poison_remap)
{
	struct kvm_userspace_memory_region region = {
		.slot = 1,
		.guest_phys_addr = SLOT1_GPA,
		.memory_size = MEM_SIZE,
	};
	__u64 gpa = SLOT1_GPA + POISON_OFF;
	__u8 *old, *p;
	__u32 hwpt_id;
	int memfd;

	/* The old backing stays alive in a memfd, seen through @old */
	memfd = memfd_create("kvm_domain_old", MFD_CLOEXEC);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, MEM_SIZE));
	old = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd,
		   0);
	ASSERT_NE(MAP_FAILED, old);
	self->mem1 = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			  memfd, 0);
	ASSERT_NE(MAP_FAILED, self->mem1);
	memset(old, 0x11, MEM_SIZE);
	region.userspace_addr = (uintptr_t)self->mem1;
	ASSERT_EQ(0, ioctl(self->k.vm_fd, KVM_SET_USER_MEMORY_REGION, &region));
	test_cmd_hwpt_kvm_alloc(FMT_SHARED, &hwpt_id);
	test_cmd_mock_attach(self->k.mock_fd, hwpt_id);

	test_cmd_mock_fault(self->k.mock_fd, gpa, PAGE);
	test_held(self->k.mock_fd, 1);
	ASSERT_EQ(0, dma_fill(self->k.mock_fd, gpa, 0xa1));
	ASSERT_TRUE(all_bytes(old + POISON_OFF, 0xa1, 64));

	/* New memory at the same address: the old page must be unreachable */
	p = mmap(self->mem1, MEM_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ASSERT_EQ(self->mem1, p);
	memset(self->mem1, 0x22, MEM_SIZE);
	test_held(self->k.mock_fd, 0);
	ASSERT_EQ(EFAULT, dma_fill(self->k.mock_fd, gpa, 0xee));
	ASSERT_EQ(-1, dma_all(self->k.mock_fd, gpa, 0xa1));
	ASSERT_TRUE(all_bytes(old + POISON_OFF, 0xa1, 64));

	/* Looked up again: the new backing, and still never the old page */
	test_cmd_mock_fault(self->k.mock_fd, gpa, PAGE);
	ASSERT_EQ(1, dma_all(self->k.mock_fd, gpa, 0x22));
	ASSERT_EQ(0, dma_fill(self->k.mock_fd, gpa, 0xb2));
	ASSERT_TRUE(all_bytes(self->mem1 + POISON_OFF, 0xb2, 64));
	ASSERT_TRUE(all_bytes(old + POISON_OFF, 0xa1, 64));

	ASSERT_EQ(0, delete_slot(self->k.vm_fd, 1, SLOT1_GPA));
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
	munmap(old, MEM_SIZE);
	close(memfd);
}

/* The page is dropped (MADV_DONTNEED): the new backing is a zero page */
TEST_F(kvm_shared, poison_madvise)
{
	__u64 gpa = SLOT1_GPA + POISON_OFF;
	__u32 hwpt_id;

	shared_slot1(_metadata, &self->k, &self->mem1, &hwpt_id);
	test_cmd_mock_fault(self->k.mock_fd, gpa, PAGE);
	ASSERT_EQ(1, dma_all(self->k.mock_fd, gpa, 0x11));
	ASSERT_EQ(0, dma_fill(self->k.mock_fd, gpa, 0xa1));
	ASSERT_TRUE(all_bytes(self->mem1 + POISON_OFF, 0xa1, 64));

	ASSERT_EQ(0, madvise(self->mem1 + POISON_OFF, PAGE, MADV_DONTNEED));
	test_held(self->k.mock_fd, 0);
	ASSERT_EQ(-1, dma_all(self->k.mock_fd, gpa, 0xa1));
	ASSERT_EQ(EFAULT, dma_fill(self->k.mock_fd, gpa, 0xee));

	test_cmd_mock_fault(self->k.mock_fd, gpa, PAGE);
	ASSERT_EQ(1, dma_all(self->k.mock_fd, gpa, 0));
	ASSERT_EQ(0, dma_fill(self->k.mock_fd, gpa, 0xb2));
	ASSERT_TRUE(all_bytes(self->mem1 + POISON_OFF, 0xb2, 64));

	ASSERT_EQ(0, delete_slot(self->k.vm_fd, 1, SLOT1_GPA));
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
}

/* The memslot goes: nothing is there to look up, the memory is untouched */
TEST_F(kvm_shared, poison_memslot_delete)
{
	__u64 gpa = SLOT1_GPA + POISON_OFF;
	__u32 hwpt_id;

	shared_slot1(_metadata, &self->k, &self->mem1, &hwpt_id);
	test_cmd_mock_fault(self->k.mock_fd, gpa, 4 * PAGE);
	test_held(self->k.mock_fd, 4);
	ASSERT_EQ(0, dma_fill(self->k.mock_fd, gpa, 0xa1));

	ASSERT_EQ(0, delete_slot(self->k.vm_fd, 1, SLOT1_GPA));
	test_held(self->k.mock_fd, 0);
	ASSERT_EQ(EFAULT, dma_fill(self->k.mock_fd, gpa, 0xee));
	test_err_mock_fault(EFAULT, self->k.mock_fd, gpa, PAGE);
	ASSERT_EQ(EFAULT, dma_fill(self->k.mock_fd, gpa, 0xee));
	ASSERT_TRUE(all_bytes(self->mem1 + POISON_OFF, 0xa1, 64));

	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
}

/* The memslot moves: the old GPA reaches nothing, the new one that memory */
TEST_F(kvm_shared, poison_memslot_move)
{
	struct kvm_userspace_memory_region region = {
		.slot = 1,
		.guest_phys_addr = SLOT1_GPA + 4 * MEM_SIZE,
		.memory_size = MEM_SIZE,
	};
	__u64 gpa = SLOT1_GPA + POISON_OFF;
	__u64 moved = region.guest_phys_addr + POISON_OFF;
	__u32 hwpt_id;

	shared_slot1(_metadata, &self->k, &self->mem1, &hwpt_id);
	test_cmd_mock_fault(self->k.mock_fd, gpa, PAGE);
	ASSERT_EQ(0, dma_fill(self->k.mock_fd, gpa, 0xa1));

	region.userspace_addr = (uintptr_t)self->mem1;
	ASSERT_EQ(0, ioctl(self->k.vm_fd, KVM_SET_USER_MEMORY_REGION, &region));
	test_held(self->k.mock_fd, 0);
	ASSERT_EQ(EFAULT, dma_fill(self->k.mock_fd, gpa, 0xee));
	test_err_mock_fault(EFAULT, self->k.mock_fd, gpa, PAGE);
	ASSERT_TRUE(all_bytes(self->mem1 + POISON_OFF, 0xa1, 64));

	test_cmd_mock_fault(self->k.mock_fd, moved, PAGE);
	ASSERT_EQ(1, dma_all(self->k.mock_fd, moved, 0xa1));
	ASSERT_EQ(0, dma_fill(self->k.mock_fd, moved, 0xb2));
	ASSERT_TRUE(all_bytes(self->mem1 + POISON_OFF, 0xb2, 64));

	ASSERT_EQ(0, delete_slot(self->k.vm_fd, 1, region.guest_phys_addr));
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
}

/* A page looked up for reading cannot be written; the VM's end drops all */
TEST_F(kvm_shared, lookup_read_only_and_release)
{
	__u64 gpa = SLOT1_GPA + POISON_OFF;
	__u32 hwpt_id;

	shared_slot1(_metadata, &self->k, &self->mem1, &hwpt_id);
	ASSERT_EQ(0, _test_cmd_mock_fault(self->k.mock_fd, 0, gpa, PAGE));
	ASSERT_EQ(1, dma_all(self->k.mock_fd, gpa, 0x11));
	ASSERT_EQ(EFAULT, dma_fill(self->k.mock_fd, gpa, 0xee));
	ASSERT_TRUE(all_bytes(self->mem1 + POISON_OFF, 0x11, 64));
	test_cmd_mock_fault(self->k.mock_fd, gpa, PAGE);
	ASSERT_EQ(0, dma_fill(self->k.mock_fd, gpa, 0xa1));
	test_held(self->k.mock_fd, 1);

	/* The VM goes: every page is let go, nothing more is looked up */
	ASSERT_EQ(0, close(self->k.vm_fd));
	self->k.vm_fd = -1;
	test_held(self->k.mock_fd, 0);
	ASSERT_EQ(ENODEV, dma_fill(self->k.mock_fd, gpa, 0xee));
	test_err_mock_fault(ENODEV, self->k.mock_fd, gpa, PAGE);
	ASSERT_TRUE(all_bytes(self->mem1 + POISON_OFF, 0xa1, 64));

	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
}

/* The tracefs directory, or NULL if tracefs is not there */
static const char *tracefs(void)
{
	static const char * const dirs[] = {
		"/sys/kernel/tracing", DEBUGFS "/tracing",
	};
	unsigned int i;
	char path[128];

	mount("tracefs", dirs[0], "tracefs", 0, NULL);
	for (i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(path, sizeof(path), "%s/trace", dirs[i]);
		if (!access(path, F_OK))
			return dirs[i];
	}
	return NULL;
}

/* Does the trace buffer hold a line with @event and @args? */
static bool traced(const char *buf, const char *event, const char *args)
{
	const char *l;

	for (l = strstr(buf, event); l; l = strstr(l + 1, event)) {
		const char *eol = strchr(l, '\n');

		if (l[strlen(event)] != ':')
			continue;
		if (!eol)
			eol = l + strlen(l);
		if (memmem(l, eol - l, args, strlen(args)))
			return true;
	}
	return false;
}

/*
 * A vCPU stores to slot 1 first, so KVM holds a real mapping of the page
 * when it goes: the invalidation comes from KVM zapping it, and the next
 * guest access maps the new page, not the old one.
 */
TEST_F(kvm_shared, invalidate_after_vcpu_access)
{
#ifdef __x86_64__
	/* movb $0x5a, (SLOT1_GPA + 0x1000); hlt */
	__u8 code[] = { 0xc6, 0x05, 0, 0, 0, 0, 0x5a, 0xf4 };
	__u32 disp = SLOT1_GPA + 0x1000, hwpt_id;
	struct iommu_kvm_mock_info before;

	memcpy(code + 2, &disp, sizeof(disp));
	shared_slot1(_metadata, &self->k, &self->mem1, &hwpt_id);
	ASSERT_EQ(0x11, self->mem1[0x1000]);
	ASSERT_EQ(0, vcpu_run_code(&self->k, 0, code, sizeof(code)));
	/* The guest's store went through KVM's mapping into the slot */
	ASSERT_EQ(0x5a, self->mem1[0x1000]);

	test_cmd_mock_info(self->k.mock_fd, &before);
	ASSERT_EQ(0, madvise(self->mem1 + 0x1000, 0x1000, MADV_DONTNEED));
	test_invalidated(before, SLOT1_GPA + 0x1000, SLOT1_GPA + 0x1fff);
	/* Private anonymous memory: the old page is gone */
	ASSERT_EQ(0, self->mem1[0x1000]);

	/* KVM maps the new page on the next guest access */
	ASSERT_EQ(0, vcpu_run_code(&self->k, 1, code, sizeof(code)));
	ASSERT_EQ(0x5a, self->mem1[0x1000]);

	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
#else
	SKIP(return, "the vCPU's code is x86");
#endif
}

/* Every tracepoint of a domain's life fires, with the domain's ID */
TEST_F(kvm_shared, tracepoints)
{
	struct iommu_kvm_mock_info info, before;
	char enable[160], trace[160], want[128];
	const char *dir = tracefs();
	static char buf[1 << 16];
	__u32 hwpt_id, id;

	if (!dir)
		SKIP(return, "no tracefs (CONFIG_TRACING)");
	snprintf(enable, sizeof(enable), "%s/events/iommu_kvm/enable", dir);
	snprintf(trace, sizeof(trace), "%s/trace", dir);
	/* The framework is in: its events must be */
	ASSERT_EQ(0, access(enable, W_OK));
	ASSERT_EQ(0, write_file(trace, "\n"));	/* clear */
	ASSERT_EQ(0, write_file(enable, "1"));

	shared_slot1(_metadata, &self->k, &self->mem1, &hwpt_id);
	test_cmd_mock_info(self->k.mock_fd, &before);
	id = before.out_domain_id;
	ASSERT_EQ(0, madvise(self->mem1, 0x1000, MADV_DONTNEED));
	ASSERT_EQ(0, close(self->k.vm_fd));
	self->k.vm_fd = -1;
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM | IOMMU_KVM_MOCK_INFO_DEAD,
		  info.out_flags);
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);

	ASSERT_EQ(0, write_file(enable, "0"));
	ASSERT_LT(0, read_file(trace, buf, sizeof(buf)));

	snprintf(want, sizeof(want), "domain=%u driver=mock format=%u dev=",
		 id, FMT_SHARED);
	EXPECT_TRUE(traced(buf, "iommu_kvm_domain_alloc", want));
	snprintf(want, sizeof(want), "domain=%u start=0x%llx last=0x%llx", id,
		 SLOT1_GPA, SLOT1_GPA + 0xfff);
	EXPECT_TRUE(traced(buf, "iommu_kvm_invalidate", want));
	snprintf(want, sizeof(want),
		 "domain=%u start=0x%llx last=0x%llx filter=shared delivered=1",
		 id, SLOT1_GPA, SLOT1_GPA + 0xfff);
	EXPECT_TRUE(traced(buf, "iommu_kvm_vm_report", want));
	snprintf(want, sizeof(want), "domain=%u", id);
	EXPECT_TRUE(traced(buf, "iommu_kvm_block", want));
	EXPECT_TRUE(traced(buf, "iommu_kvm_domain_free", want));
	if (!__test_passed(_metadata))
		fprintf(stderr, "# trace:\n%s", buf);
}

/* kvm_shadow: what only the shadow format does */
FIXTURE(kvm_shadow)
{
	struct kvmdom k;
	__u32 hwpt_id;
};

FIXTURE_SETUP(kvm_shadow)
{
	kvmdom_setup(_metadata, &self->k, true);
}

FIXTURE_TEARDOWN_PARENT(kvm_shadow)
{
	kvmdom_teardown(_metadata, &self->k);
}

/* A shadow HWPT on the fixture's parent, attached, and synced */
static void shadow_attach(struct __test_metadata *_metadata,
			  struct kvmdom *k, __u32 *hwpt_id)
{
	ASSERT_EQ(0, _test_cmd_hwpt_kvm_alloc(k, FMT_SHADOW, k->dev_id,
					      k->vm_fd, hwpt_id));
	test_attach_ready(k->mock_fd, *hwpt_id, FMT_SHADOW);
}

#define test_shadow_entries(n)                                   \
	({                                                       \
		struct iommu_kvm_mock_info __info;               \
		test_cmd_mock_info(self->k.mock_fd, &__info);    \
		ASSERT_EQ(IOMMU_KVM_MOCK_INFO_KVM, __info.out_flags); \
		ASSERT_EQ(n, __info.out_shadow_entries);         \
	})

/* DMA through the shadow reads the guest's bytes at @gpa */
#define test_shadow_read(iova, gpa)                                          \
	({                                                                   \
		__u64 __want = (gpa);                                        \
		__u8 __buf[64];                                              \
		__u64 __gpa = 0;                                             \
		test_cmd_mock_dma_read(self->k.mock_fd, iova, __buf,         \
				       sizeof(__buf), &__gpa);               \
		ASSERT_EQ(__want, __gpa);                                    \
		ASSERT_EQ(0, memcmp(__buf, self->k.mem + __want,             \
				    sizeof(__buf)));                         \
	})

/*
 * The way in from KVM: a guest table update that KVM intercepts (s390
 * RPCIT) for the handle the driver gave the domain reaches the domain's
 * sync. For another handle, a shared domain's ID, another VM, or once the
 * HWPT is gone, KVM finds nothing: ENOENT, and the intercept would go to
 * userspace.
 */
TEST_F(kvm_shadow, intercept_sync)
{
	__u32 key, shared_id, shared_hwpt, dev2;
	struct iommu_kvm_mock_info info;
	struct dbg_domain d;
	int vm2, mock2;

	shadow_attach(_metadata, &self->k, &self->hwpt_id);
	test_shadow_entries(1);
	test_cmd_mock_info(self->k.mock_fd, &info);
	key = info.out_domain_id;

	/* A guest change reaches the shadow through KVM's lookup */
	set_pte(&self->k, 1, DATA2_GPA);
	test_cmd_mock_intercept(self->k.mock_fd, self->k.vm_fd, key, 0x1000,
				PAGE);
	test_shadow_entries(2);
	test_shadow_read(0x1000 + 0x100, DATA2_GPA + 0x100);
	ASSERT_EQ(1, dbg_domains(self->k.pid, key, &d));
	ASSERT_EQ(2, d.syncs);
	/* ... and the sync's errors come back */
	test_err_mock_intercept(EINVAL, self->k.mock_fd, self->k.vm_fd, key,
				NR_ENTRIES * PAGE, PAGE);

	/* Nothing for another handle, a shared domain, or another VM */
	test_err_mock_intercept(ENOENT, self->k.mock_fd, self->k.vm_fd,
				key + 1000, 0, 0);
	test_cmd_mock_new(&mock2, &dev2);
	ASSERT_EQ(0, _test_cmd_hwpt_kvm_alloc(&self->k, FMT_SHARED, dev2,
					      self->k.vm_fd, &shared_hwpt));
	test_cmd_mock_attach(mock2, shared_hwpt);
	test_cmd_mock_info(mock2, &info);
	shared_id = info.out_domain_id;
	ASSERT_NE(key, shared_id);
	test_err_mock_intercept(ENOENT, self->k.mock_fd, self->k.vm_fd,
				shared_id, 0, 0);
	test_cmd_mock_detach(mock2);
	test_ioctl_destroy(shared_hwpt);
	vm2 = ioctl(self->k.kvm_fd, KVM_CREATE_VM, 0);
	ASSERT_LE(0, vm2);
	test_err_mock_intercept(ENOENT, self->k.mock_fd, vm2, key, 0, 0);
	ASSERT_EQ(0, close(vm2));

	/* Nor once the HWPT is gone */
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(self->hwpt_id);
	test_err_mock_intercept(ENOENT, self->k.mock_fd, self->k.vm_fd, key,
				0, 0);
}

/*
 * KVM reports a memory-attribute change to the VM's domains, with the
 * memory whose mappings go: shared memory when a range becomes private,
 * private memory when it becomes shared. A shadow domain hears it (traced)
 * but takes nothing from it: it translates through its parent.
 */
TEST_F(kvm_shadow, attributes_reported)
{
#ifdef __x86_64__
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.memory_size = MEM_SIZE,
	};
	struct kvm_memory_attributes attrs = {
		.address = 0x2000,
		.size = 0x3000,
		.attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE,
	};
	char enable[160], trace[160], want[128];
	struct iommu_kvm_mock_info info;
	const char *dir = tracefs();
	static char buf[1 << 16];
	__u32 hwpt_id;
	int types, vm;

	if (!dir)
		SKIP(return, "no tracefs (CONFIG_TRACING)");
	types = ioctl(self->k.kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
	if (types < 0 || !(types & (1 << KVM_X86_SW_PROTECTED_VM)))
		SKIP(return,
		     "no KVM_X86_SW_PROTECTED_VM (CONFIG_KVM_SW_PROTECTED_VM)");
	snprintf(enable, sizeof(enable),
		 "%s/events/iommu_kvm/iommu_kvm_vm_report/enable", dir);
	snprintf(trace, sizeof(trace), "%s/trace", dir);

	vm = ioctl(self->k.kvm_fd, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	ASSERT_LE(0, vm);
	region.userspace_addr = (uintptr_t)self->k.mem;
	ASSERT_EQ(0, ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region));
	ASSERT_EQ(0, _test_cmd_hwpt_kvm_alloc(&self->k, FMT_SHADOW,
					      self->k.dev_id, vm, &hwpt_id));
	test_attach_ready(self->k.mock_fd, hwpt_id, FMT_SHADOW);
	test_cmd_mock_info(self->k.mock_fd, &info);

	ASSERT_EQ(0, write_file(trace, "\n"));	/* clear */
	ASSERT_EQ(0, write_file(enable, "1"));
	ASSERT_EQ(0, ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &attrs));
	attrs.attributes = 0;
	ASSERT_EQ(0, ioctl(vm, KVM_SET_MEMORY_ATTRIBUTES, &attrs));
	ASSERT_EQ(0, write_file(enable, "0"));
	ASSERT_LT(0, read_file(trace, buf, sizeof(buf)));

	snprintf(want, sizeof(want),
		 "domain=%u start=0x2000 last=0x4fff filter=shared delivered=0",
		 info.out_domain_id);
	EXPECT_TRUE(traced(buf, "iommu_kvm_vm_report", want));
	snprintf(want, sizeof(want),
		 "domain=%u start=0x2000 last=0x4fff filter=private delivered=0",
		 info.out_domain_id);
	EXPECT_TRUE(traced(buf, "iommu_kvm_vm_report", want));
	if (!__test_passed(_metadata))
		fprintf(stderr, "# trace:\n%s", buf);

	/* The shadow still translates: nothing was taken from it */
	test_dma_ok(self->k.mock_fd, FMT_SHADOW);
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(0, info.out_invalidations);
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(hwpt_id);
	ASSERT_EQ(0, close(vm));
#else
	SKIP(return, "private memory VMs are tested on x86_64");
#endif
}

TEST_F(kvm_shadow, dma)
{
	static const char msg[] = "written by the mock device";
	struct dbg_domain d;
	__u64 gpa;

	set_pte(&self->k, 1, DATA2_GPA);
	set_pte(&self->k, 5, NEIGH_GPA);
	shadow_attach(_metadata, &self->k, &self->hwpt_id);
	test_shadow_entries(3);

	test_shadow_read(0x10, DATA_GPA + 0x10);
	test_shadow_read(0x1000 + 0x100, DATA2_GPA + 0x100);
	test_shadow_read(0x5000 + PAGE - 64, NEIGH_GPA + PAGE - 64);

	test_cmd_mock_dma_write(self->k.mock_fd, 0x5000 + 0x20, (void *)msg,
				sizeof(msg), &gpa);
	ASSERT_EQ(NEIGH_GPA + 0x20, gpa);
	ASSERT_EQ(0, memcmp(self->k.mem + NEIGH_GPA + 0x20, msg, sizeof(msg)));
	ASSERT_EQ(pattern(NEIGH_GPA + 0x1f), self->k.mem[NEIGH_GPA + 0x1f]);
	ASSERT_EQ(pattern(NEIGH_GPA + 0x20 + sizeof(msg)),
		  self->k.mem[NEIGH_GPA + 0x20 + sizeof(msg)]);

	/* Entries the guest left invalid, and IOVAs past its table */
	test_err_dma(EFAULT, self->k.mock_fd, 0x2000);
	test_err_dma(EFAULT, self->k.mock_fd, NR_ENTRIES * PAGE);
	test_err_dma(EFAULT, self->k.mock_fd, 1ULL << 40);

	/* A guest change reaches the device only with a sync */
	set_pte(&self->k, 0, DATA2_GPA);
	set_pte(&self->k, 2, DATA_GPA);
	test_shadow_read(0x10, DATA_GPA + 0x10);
	test_err_dma(EFAULT, self->k.mock_fd, 0x2000);
	/* ... of its range */
	test_cmd_mock_sync(self->k.mock_fd, 0, PAGE);
	test_shadow_read(0x10, DATA2_GPA + 0x10);
	test_err_dma(EFAULT, self->k.mock_fd, 0x2000);
	test_cmd_mock_sync(self->k.mock_fd, 0x2000 + 0x800, 8);
	test_shadow_read(0x2000, DATA_GPA);
	test_shadow_entries(4);

	/* Removed entries fault after the sync */
	clear_pte(&self->k, 1);
	test_shadow_read(0x1000, DATA2_GPA);
	test_cmd_mock_sync(self->k.mock_fd, 0x1000, PAGE);
	test_err_dma(EFAULT, self->k.mock_fd, 0x1000);
	test_shadow_entries(3);

	ASSERT_EQ(1, dbg_domains(self->k.pid, DBG_ANY, &d));
	ASSERT_STREQ("yes", d.parent);
	ASSERT_EQ(4, d.syncs);
	ASSERT_LE(6, d.faults);
	ASSERT_EQ(3, d.mock_shadow);

	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(self->hwpt_id);
}

TEST_F(kvm_shadow, unmap_faults)
{
	struct iommu_kvm_mock_info info;

	set_pte(&self->k, 1, VICTIM_GPA);
	set_pte(&self->k, 2, NEIGH_GPA);
	shadow_attach(_metadata, &self->k, &self->hwpt_id);
	test_shadow_entries(3);
	test_shadow_read(0x1000, VICTIM_GPA);
	test_shadow_read(0x2000, NEIGH_GPA);

	/*
	 * The parent stops mapping one page: the shadow drops what it made
	 * from it before IOMMU_IOAS_UNMAP returns (and unpins the page).
	 */
	test_ioctl_ioas_unmap(VICTIM_GPA, PAGE);
	test_err_dma(EFAULT, self->k.mock_fd, 0x1000);
	test_shadow_read(0x2000, NEIGH_GPA);
	test_shadow_read(0x10, DATA_GPA + 0x10);
	test_cmd_mock_info(self->k.mock_fd, &info);
	ASSERT_EQ(2, info.out_shadow_entries);
	ASSERT_LE(info.out_inv_start, VICTIM_GPA);
	ASSERT_GE(info.out_inv_last, VICTIM_GPA + PAGE - 1);

	/* The guest still names it: a sync cannot translate it */
	test_err_mock_sync(EFAULT, self->k.mock_fd, 0x1000, PAGE);
	test_err_dma(EFAULT, self->k.mock_fd, 0x1000);

	/* Mapped again, a sync brings it back */
	test_ioctl_ioas_map(self->k.mem + VICTIM_GPA, PAGE, VICTIM_GPA);
	test_cmd_mock_sync(self->k.mock_fd, 0x1000, PAGE);
	test_shadow_read(0x1000, VICTIM_GPA);

	/* Everything goes */
	test_ioctl_ioas_unmap(0, UINT64_MAX);
	test_err_dma(EFAULT, self->k.mock_fd, 0x10);
	test_err_dma(EFAULT, self->k.mock_fd, 0x1000);
	test_err_dma(EFAULT, self->k.mock_fd, 0x2000);
	test_shadow_entries(0);
	/* The table itself is no longer mapped */
	test_err_mock_sync(EFAULT, self->k.mock_fd, 0, 0);

	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(self->hwpt_id);
}

/* A parent unmap reaches the shadows built on that parent, and only those */
TEST_F(kvm_shadow, unmap_other_parent)
{
	__u32 ioas2, parent2, hwpt2, hwpt3, dev2, dev3;
	int mock2, mock3;

	test_cmd_mock_new(&mock2, &dev2);
	test_cmd_mock_new(&mock3, &dev3);
	/* The same guest memory in a second IOAS, under a second parent */
	ASSERT_EQ(0, _test_ioctl_ioas_alloc(self->k.iommufd, &ioas2));
	ASSERT_EQ(0, _test_ioctl_ioas_map(self->k.iommufd, ioas2, self->k.mem,
					  MEM_SIZE, 0));
	ASSERT_EQ(0, _test_cmd_hwpt_alloc(self->k.iommufd, self->k.dev_id,
					  ioas2, IOMMU_HWPT_ALLOC_NEST_PARENT,
					  &parent2));

	set_pte(&self->k, 1, VICTIM_GPA);
	shadow_attach(_metadata, &self->k, &self->hwpt_id);
	{
		struct iommu_hwpt_kvm_selftest data;
		struct kvm_alloc cmd;

		kvm_alloc_init(&self->k, FMT_SHADOW, dev2, self->k.vm_fd, &cmd,
			       &data);
		cmd.hwpt.pt_id = parent2;
		test_ioctl_hwpt_kvm_alloc(&cmd);
		hwpt2 = cmd.hwpt.out_hwpt_id;
	}
	test_attach_ready(mock2, hwpt2, FMT_SHADOW);
	test_cmd_hwpt_kvm_alloc(FMT_SHADOW, &hwpt3);
	test_attach_ready(mock3, hwpt3, FMT_SHADOW);

	/* Unmapped from the first parent: its two shadows drop it */
	test_ioctl_ioas_unmap(VICTIM_GPA, PAGE);
	test_err_dma(EFAULT, self->k.mock_fd, 0x1000);
	test_err_dma(EFAULT, mock3, 0x1000);
	test_dma_ok(self->k.mock_fd, FMT_SHADOW);
	{
		__u8 buf[64];
		__u64 gpa = 0;

		test_cmd_mock_dma_read(mock2, 0x1000, buf, sizeof(buf), &gpa);
		ASSERT_EQ(VICTIM_GPA, gpa);
		ASSERT_EQ(0, memcmp(buf, self->k.mem + VICTIM_GPA, sizeof(buf)));
	}

	/* ... and from the second */
	ASSERT_EQ(0, _test_ioctl_ioas_unmap(self->k.iommufd, ioas2, 0,
					    UINT64_MAX));
	test_err_dma(EFAULT, mock2, 0x1000);
	test_err_dma(EFAULT, mock2, 0x10);

	test_cmd_mock_detach(self->k.mock_fd);
	test_cmd_mock_detach(mock2);
	test_cmd_mock_detach(mock3);
	test_ioctl_destroy(self->hwpt_id);
	test_ioctl_destroy(hwpt2);
	test_ioctl_destroy(hwpt3);
	test_ioctl_destroy(parent2);
	test_ioctl_destroy(ioas2);
}

/*
 * Intercepts keep coming from another thread while the HWPT is detached
 * and destroyed: each finds the domain and syncs, or finds nothing; none
 * runs into a domain being freed (KVM's lookup and the domain's teardown
 * order on kvm->srcu), and lockdep has nothing to say.
 */
struct intercept_race {
	int mock_fd;
	int vm_fd;
	__u64 key;
	int stop;
	int ok;
	int enoent;
	int other;
};

static void *intercept_race_thread(void *arg)
{
	struct intercept_race *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		if (!_test_cmd_mock_intercept(r->mock_fd, r->vm_fd, r->key, 0,
					      0))
			r->ok++;
		else if (errno == ENOENT)
			r->enoent++;
		else
			r->other++;
	}
	return NULL;
}

TEST_F(kvm_shadow, intercept_destroy_race)
{
	struct intercept_race r = {
		.mock_fd = self->k.mock_fd,
		.vm_fd = self->k.vm_fd,
	};
	struct iommu_kvm_mock_info info;
	pthread_t thread;
	int i;

	for (i = 0; i < 20; i++) {
		shadow_attach(_metadata, &self->k, &self->hwpt_id);
		test_cmd_mock_info(self->k.mock_fd, &info);
		r.key = info.out_domain_id;
		__atomic_store_n(&r.stop, 0, __ATOMIC_RELEASE);
		ASSERT_EQ(0, pthread_create(&thread, NULL,
					    intercept_race_thread, &r));
		usleep(1000);
		test_cmd_mock_detach(self->k.mock_fd);
		test_ioctl_destroy(self->hwpt_id);
		usleep(500);
		__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
		ASSERT_EQ(0, pthread_join(thread, NULL));
		test_err_mock_intercept(ENOENT, self->k.mock_fd, self->k.vm_fd,
					r.key, 0, 0);
	}
	/* Syncs ran, and after each destroy the lookup found nothing */
	ASSERT_LT(0, r.ok);
	ASSERT_LT(0, r.enoent);
	ASSERT_EQ(0, r.other);
	ASSERT_EQ(0, kmsg_splats(self->k.kmsg_fd));
}

/*
 * One thread keeps syncing, by the mock's ioctl and by KVM's way in (the
 * intercept), and doing DMA through entry 1 (VICTIM_GPA) while another
 * unmaps that page from the parent and maps it again. Whenever the unmap
 * has returned, no DMA through the shadow may reach the page, however the
 * syncs interleave; DMA that succeeds reads the right bytes. With lockdep
 * on, the lock order of sync against iommufd's unmap path is checked too.
 */
struct sync_race {
	int mock_fd;
	int kvm_fd;
	__u64 key;
	int stop;
	int errors;
	int ok;
	char msg[128];
};

static void *sync_race_thread(void *arg)
{
	struct sync_race *r = arg;
	__u8 buf[64];
	__u64 gpa;
	int ret;

	bool intercept = false;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		intercept = !intercept;
		if (intercept)
			ret = _test_cmd_mock_intercept(r->mock_fd, r->kvm_fd,
						       r->key, 0x1000, PAGE);
		else
			ret = _test_cmd_mock_sync(r->mock_fd, 0x1000, PAGE);
		if (ret && errno != EFAULT && !r->errors++)
			snprintf(r->msg, sizeof(r->msg), "sync: %s",
				 strerror(errno));
		ret = _test_cmd_mock_dma(r->mock_fd, 0, 0x1000, buf,
					 sizeof(buf), &gpa);
		if (ret) {
			if (errno != EFAULT && !r->errors++)
				snprintf(r->msg, sizeof(r->msg), "DMA: %s",
					 strerror(errno));
			continue;
		}
		r->ok++;
		if ((gpa != VICTIM_GPA || buf[7] != pattern(VICTIM_GPA + 7)) &&
		    !r->errors++)
			snprintf(r->msg, sizeof(r->msg),
				 "DMA reached GPA 0x%llx, read 0x%x",
				 (unsigned long long)gpa, buf[7]);
	}
	return NULL;
}

TEST_F(kvm_shadow, sync_unmap_race)
{
	struct iommu_kvm_mock_info info;
	struct sync_race r = {};
	pthread_t thread;
	__u32 dev2;
	int mock2, i;

	test_cmd_mock_new(&mock2, &dev2);
	set_pte(&self->k, 1, VICTIM_GPA);
	shadow_attach(_metadata, &self->k, &self->hwpt_id);
	test_cmd_mock_attach(mock2, self->hwpt_id);
	test_cmd_mock_info(mock2, &info);
	r.mock_fd = mock2;
	r.kvm_fd = self->k.vm_fd;
	r.key = info.out_domain_id;

	ASSERT_EQ(0, pthread_create(&thread, NULL, sync_race_thread, &r));
	for (i = 0; i < 200 && !r.errors; i++) {
		test_ioctl_ioas_unmap(VICTIM_GPA, PAGE);
		/* The other device translates through the same shadow */
		test_err_dma(EFAULT, self->k.mock_fd, 0x1000);
		test_ioctl_ioas_map(self->k.mem + VICTIM_GPA, PAGE, VICTIM_GPA);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	ASSERT_EQ(0, pthread_join(thread, NULL));
	ASSERT_EQ(0, r.errors) TH_LOG("%s", r.msg);
	/* The race did happen: DMA got through between the unmaps */
	ASSERT_LT(0, r.ok);

	test_cmd_mock_sync(self->k.mock_fd, 0, 0);
	test_shadow_read(0x1000, VICTIM_GPA);
	test_cmd_mock_detach(self->k.mock_fd);
	test_cmd_mock_detach(mock2);
	test_ioctl_destroy(self->hwpt_id);
}

TEST_F(kvm_shadow, sync_errors)
{
	struct iommu_hwpt_kvm_selftest data;
	struct kvm_alloc cmd;
	int ret;

	shadow_attach(_metadata, &self->k, &self->hwpt_id);

	/* An entry pointing at what the parent does not map */
	set_pte(&self->k, 3, OUTSIDE_GPA);
	test_err_mock_sync(EFAULT, self->k.mock_fd, 0, 0);
	test_err_mock_sync(EFAULT, self->k.mock_fd, 3 * PAGE, PAGE);
	test_err_dma(EFAULT, self->k.mock_fd, 3 * PAGE);
	set_pte(&self->k, 3, MEM_SIZE);
	test_err_mock_sync(EFAULT, self->k.mock_fd, 3 * PAGE, PAGE);
	clear_pte(&self->k, 3);
	test_cmd_mock_sync(self->k.mock_fd, 0, 0);

	/* Ranges beyond the table */
	test_err_mock_sync(EINVAL, self->k.mock_fd, NR_ENTRIES * PAGE, PAGE);
	test_err_mock_sync(EINVAL, self->k.mock_fd, (NR_ENTRIES - 1) * PAGE,
			   2 * PAGE);
	test_err_mock_sync(EINVAL, self->k.mock_fd, 0, (NR_ENTRIES + 1) * PAGE);
	test_err_mock_sync(EINVAL, self->k.mock_fd, 1ULL << 40, PAGE);
	test_err_mock_sync(EINVAL, self->k.mock_fd, UINT64_MAX - PAGE + 1,
			   2 * PAGE);
	test_cmd_mock_sync(self->k.mock_fd, (NR_ENTRIES - 1) * PAGE, PAGE);
	test_dma_ok(self->k.mock_fd, FMT_SHADOW);
	test_cmd_mock_detach(self->k.mock_fd);
	test_ioctl_destroy(self->hwpt_id);

	/* A table that ends past what the parent maps */
	kvm_alloc_init(&self->k, FMT_SHADOW, self->k.dev_id, self->k.vm_fd,
		       &cmd, &data);
	data.table_gpa = MEM_SIZE - 4 * 8;
	memset(self->k.mem + data.table_gpa, 0, 4 * 8);
	ret = ioctl(self->k.iommufd, IOMMU_HWPT_ALLOC, &cmd.hwpt);
	if (ret) {
		/* Refusing it up front is fine too */
		ASSERT_EQ(EINVAL, errno);
	} else {
		test_cmd_mock_attach(self->k.mock_fd, cmd.hwpt.out_hwpt_id);
		test_cmd_mock_sync(self->k.mock_fd, 0, 4 * PAGE);
		test_err_mock_sync(EFAULT, self->k.mock_fd, 4 * PAGE, PAGE);
		test_err_mock_sync(EFAULT, self->k.mock_fd, 0, 0);
		test_cmd_mock_detach(self->k.mock_fd);
		test_ioctl_destroy(cmd.hwpt.out_hwpt_id);
	}
}

TEST_F(kvm_shadow, parent_busy)
{
	test_cmd_hwpt_kvm_alloc(FMT_SHADOW, &self->hwpt_id);
	/* The shadow HWPT holds its parent */
	test_err_destroy(EBUSY, self->k.parent_id);
	test_ioctl_destroy(self->hwpt_id);
	test_ioctl_destroy(self->k.parent_id);
	self->k.parent_id = 0;
}

/*
 * fail_nth: sweep every allocation on the way of INFO, ALLOC, ATTACH,
 * replace, DETACH and DESTROY, as iommufd_fail_nth does: fail the first, then
 * the second, ... until one run consumes no injection. Each failure must
 * unwind: what the steps before built is torn down normally, and then the
 * state must be clean and a normal run must work. The mock device, the VM
 * and the IOAS are made before the sweep; the shadow variant sweeps the IOAS
 * map and the nest parent too.
 */
/* Fault injection settings that the sweep changes, restored afterwards */
struct fault_knob {
	char path[128];
	char saved[32];
	bool changed;
};

struct fault_knobs {
	struct fault_knob knob[32];
	unsigned int nr;
};

FIXTURE(fail_nth)
{
	struct kvmdom k;
	int nth_fd;
	struct fault_knobs knobs;
};

FIXTURE_VARIANT(fail_nth)
{
	__u32 format;
};

FIXTURE_VARIANT_ADD(fail_nth, shared)
{
	.format = FMT_SHARED,
};

FIXTURE_VARIANT_ADD(fail_nth, shadow)
{
	.format = FMT_SHADOW,
};

static int fault_knob_set(struct fault_knobs *knobs, const char *path,
			  const char *val)
{
	struct fault_knob *knob = &knobs->knob[knobs->nr];
	char *nl;

	if (knobs->nr == ARRAY_SIZE(knobs->knob))
		return -1;
	if (read_file(path, knob->saved, sizeof(knob->saved)) < 0)
		return -1;
	nl = strchr(knob->saved, '\n');
	if (nl)
		*nl = 0;
	if (write_file(path, val))
		return -1;
	snprintf(knob->path, sizeof(knob->path), "%s", path);
	knob->changed = true;
	knobs->nr++;
	return 0;
}

static void fault_knobs_restore(struct fault_knobs *knobs)
{
	while (knobs->nr) {
		struct fault_knob *knob = &knobs->knob[--knobs->nr];

		if (knob->changed)
			write_file(knob->path, knob->saved);
		knob->changed = false;
	}
}

FIXTURE_SETUP(fail_nth)
{
	char path[64];

	/* Before kvmdom_setup(): a setup that stops early gets no teardown */
	self->nth_fd = -1;
	snprintf(path, sizeof(path), "/proc/self/task/%ld/fail-nth",
		 (long)syscall(SYS_gettid));
	if (access(path, F_OK))
		SKIP(return, "no %s: CONFIG_FAULT_INJECTION is off", path);
	if (access(DEBUGFS "/failslab", F_OK))
		SKIP(return,
		     "no %s/failslab: CONFIG_FAILSLAB or CONFIG_FAULT_INJECTION_DEBUG_FS is off",
		     DEBUGFS);
	self->nth_fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->nth_fd);

	kvmdom_setup(_metadata, &self->k, false);
}

FIXTURE_TEARDOWN_PARENT(fail_nth)
{
	if (kvmdom_in_test(&self->k) && self->nth_fd >= 0) {
		pwrite(self->nth_fd, "0", 1, 0);
		close(self->nth_fd);
	}
	fault_knobs_restore(&self->knobs);
	kvmdom_teardown(_metadata, &self->k);
}

/* Let every allocation fail and keep the log quiet, like iommufd_fail_nth */
static void fault_inject_setup(struct __test_metadata *_metadata,
			       struct fault_knobs *knobs)
{
	DIR *dir;
	struct dirent *dent;

	ASSERT_EQ(0, fault_knob_set(knobs, DEBUGFS "/failslab/ignore-gfp-wait", "N"));
	/* Probability-based injection, if any is set up, stays off this task */
	ASSERT_EQ(0, fault_knob_set(knobs, DEBUGFS "/failslab/task-filter", "Y"));
	if (!access(FAIL_PAGE, F_OK)) {
		ASSERT_EQ(0, fault_knob_set(knobs, FAIL_PAGE "/ignore-gfp-wait",
					    "N"));
		ASSERT_EQ(0, fault_knob_set(knobs, FAIL_PAGE "/ignore-gfp-highmem",
					    "N"));
		ASSERT_EQ(0, fault_knob_set(knobs, FAIL_PAGE "/min-order", "0"));
		ASSERT_EQ(0, fault_knob_set(knobs, FAIL_PAGE "/task-filter", "Y"));
	} else {
		TH_LOG("no fail_page_alloc (CONFIG_FAIL_PAGE_ALLOC): slab allocations only");
	}

	dir = opendir(DEBUGFS);
	ASSERT_NE(NULL, dir);
	while ((dent = readdir(dir))) {
		char path[300];

		if (strncmp(dent->d_name, "fail", 4))
			continue;
		snprintf(path, sizeof(path), DEBUGFS "/%s/verbose", dent->d_name);
		if (!access(path, F_OK))
			ASSERT_EQ(0, fault_knob_set(knobs, path, "0"));
	}
	closedir(dir);
}

/* Fail the @nth fault injection site this task reaches from now on */
static void nth_enable(struct __test_metadata *_metadata, int fd,
		       unsigned int nth)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%u", nth);

	ASSERT_EQ(len, pwrite(fd, buf, len, 0));
}

/* Stop injecting; returns whether the injection was consumed */
static bool nth_disable(struct __test_metadata *_metadata, int fd)
{
	char buf[16] = {};
	ssize_t len;

	len = pread(fd, buf, sizeof(buf) - 1, 0);
	ASSERT_LT(0, len);
	ASSERT_EQ(1, pwrite(fd, "0", 1, 0));
	return !strcmp(buf, "0\n") || !strcmp(buf, "0");
}

struct nth_objs {
	bool mapped;
	bool parent;
	bool hwpt;
	bool attached;
	__u32 parent_id;
	__u32 hwpt_id;
};

/*
 * The sequence under test. Stops at the first failing step; @o says what
 * exists. No system call here but the steps, so injection only hits them.
 */
static int nth_sequence(struct kvmdom *k, __u32 format, struct nth_objs *o)
{
	struct iommu_hwpt_kvm_selftest data = {
		.nr_entries = NR_ENTRIES,
		.table_gpa = TABLE_GPA,
	};
	struct kvm_alloc cmd = {
		.hwpt = {
			.size = sizeof(cmd.hwpt),
			.dev_id = k->dev_id,
			.data_type = IOMMU_HWPT_DATA_KVM,
			.data_len = sizeof(cmd.kvm),
			.data_uptr = (uintptr_t)&cmd.kvm,
		},
		.kvm = {
			.kvm_fd = k->vm_fd,
			.format = format,
		},
	};
	struct iommu_hw_info info = {
		.size = sizeof(info),
		.dev_id = k->dev_id,
	};

	memset(o, 0, sizeof(*o));
	if (ioctl(k->iommufd, IOMMU_GET_HW_INFO, &info))
		return -1;
	if (format == FMT_SHADOW) {
		if (_test_ioctl_ioas_map(k->iommufd, k->ioas_id, k->mem,
					 NTH_MAP_SIZE, 0))
			return -1;
		o->mapped = true;
		if (_test_cmd_hwpt_alloc(k->iommufd, k->dev_id, k->ioas_id,
					 IOMMU_HWPT_ALLOC_NEST_PARENT,
					 &o->parent_id))
			return -1;
		o->parent = true;
		cmd.hwpt.pt_id = o->parent_id;
		cmd.kvm.data_type = IOMMU_HWPT_KVM_DATA_SELFTEST;
		cmd.kvm.data_len = sizeof(data);
		cmd.kvm.data_uptr = (uintptr_t)&data;
	}
	if (ioctl(k->iommufd, IOMMU_HWPT_ALLOC, &cmd.hwpt))
		return -1;
	o->hwpt = true;
	o->hwpt_id = cmd.hwpt.out_hwpt_id;
	if (_test_cmd_mock_attach(k->mock_fd, o->hwpt_id))
		return -1;
	o->attached = true;
	if (format == FMT_SHADOW && _test_cmd_mock_sync(k->mock_fd, 0, 0))
		return -1;
	if (_test_cmd_mock_attach(k->mock_fd, k->ioas_id))
		return -1;
	if (_test_cmd_mock_attach(k->mock_fd, o->hwpt_id))
		return -1;
	if (_test_cmd_mock_detach(k->mock_fd))
		return -1;
	o->attached = false;
	if (_test_ioctl_destroy(k->iommufd, o->hwpt_id))
		return -1;
	o->hwpt = false;
	if (format == FMT_SHADOW) {
		if (_test_ioctl_destroy(k->iommufd, o->parent_id))
			return -1;
		o->parent = false;
		if (_test_ioctl_ioas_unmap(k->iommufd, k->ioas_id, 0,
					   NTH_MAP_SIZE))
			return -1;
		o->mapped = false;
	}
	return 0;
}

/* Without injection: tear down what a failed sequence left */
static void nth_unwind(struct __test_metadata *_metadata, struct kvmdom *k,
		       struct nth_objs *o)
{
	if (o->attached)
		ASSERT_EQ(0, _test_cmd_mock_detach(k->mock_fd));
	if (o->hwpt)
		ASSERT_EQ(0, _test_ioctl_destroy(k->iommufd, o->hwpt_id));
	if (o->parent)
		ASSERT_EQ(0, _test_ioctl_destroy(k->iommufd, o->parent_id));
	if (o->mapped)
		ASSERT_EQ(0, _test_ioctl_ioas_unmap(k->iommufd, k->ioas_id, 0,
						    NTH_MAP_SIZE));
}

/* kmemleak: a scan, and the unreferenced objects it reports */
static char kmemleak_buf[1 << 20];

/*
 * Scan and report the unreferenced objects allocated by a task called
 * @comm (any task if NULL); log them all. Returns -1 if kmemleak cannot
 * scan (it is off, or turned itself off).
 */
static int kmemleak_report(struct __test_metadata *_metadata, const char *comm)
{
	char *block, *next, *line, *save, needle[64];
	int n = 0;

	if (write_file(KMEMLEAK_FILE, "scan")) {
		TH_LOG("kmemleak scan: %s", strerror(errno));
		return -1;
	}
	if (read_file(KMEMLEAK_FILE, kmemleak_buf, sizeof(kmemleak_buf)) < 0)
		return -1;
	snprintf(needle, sizeof(needle), "comm \"%s\"", comm ? comm : "");
	for (block = strstr(kmemleak_buf, "unreferenced object"); block;
	     block = next) {
		next = strstr(block + 1, "unreferenced object");
		if (next)
			next[-1] = 0;
		if (comm && !strstr(block, needle))
			continue;
		n++;
		for (line = strtok_r(block, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			fprintf(stderr, "# kmemleak: %s\n", line);
	}
	return n;
}

static void comm_of_self(char *comm, size_t size)
{
	char *nl;

	if (read_file("/proc/self/comm", comm, size) < 0)
		snprintf(comm, size, "kvm_domain");
	nl = strchr(comm, '\n');
	if (nl)
		*nl = 0;
}

/*
 * Before a sweep: report what leaked so far (a leak of this program is a
 * failure even if an earlier test made it), then forget it, so that the
 * scan after the sweeps shows only what is new.
 */
static void kmemleak_baseline(struct __test_metadata *_metadata)
{
	char comm[32];

	if (access(KMEMLEAK_FILE, F_OK))
		return;
	comm_of_self(comm, sizeof(comm));
	ASSERT_EQ(0, kmemleak_report(_metadata, comm))
		TH_LOG("%s leaked before this sweep started", comm);
	ASSERT_EQ(0, write_file(KMEMLEAK_FILE, "clear"));
}

TEST_F_TIMEOUT(fail_nth, sweep, 300)
{
	unsigned int nth, nr_failed = 0;
	long kvm_refs, mock_refs;
	struct nth_objs o;
	bool consumed;
	int rc;

	fault_inject_setup(_metadata, &self->knobs);
	kmemleak_baseline(_metadata);
	ASSERT_EQ(0, kmsg_splats(self->k.kmsg_fd));

	/* Touch everything the sequence uses before the first injection */
	ASSERT_EQ(0, nth_sequence(&self->k, variant->format, &o));
	kvm_refs = read_long(KVM_REFCNT);
	mock_refs = read_long(MOCK_REFCNT);

	for (nth = 1;; nth++) {
		ASSERT_GT(4000, nth) TH_LOG("the sweep does not end");

		nth_enable(_metadata, self->nth_fd, nth);
		rc = nth_sequence(&self->k, variant->format, &o);
		consumed = nth_disable(_metadata, self->nth_fd);

		nr_failed += !!rc;
		nth_unwind(_metadata, &self->k, &o);
		ASSERT_EQ(0, dbg_domains(self->k.pid, DBG_ANY, NULL))
			TH_LOG("a domain survived failing allocation %u", nth);
		/* Error paths drop the module references they took */
		ASSERT_EQ(kvm_refs, read_long(KVM_REFCNT))
			TH_LOG("kvm.ko after failing allocation %u", nth);
		ASSERT_EQ(mock_refs, read_long(MOCK_REFCNT))
			TH_LOG(MOCK_MODULE " after failing allocation %u", nth);
		ASSERT_EQ(0, nth_sequence(&self->k, variant->format, &o))
			TH_LOG("after failing allocation %u: %s", nth,
			       strerror(errno));
		if (!consumed) {
			/* Nothing was injected, so nothing may have failed */
			ASSERT_EQ(0, rc) TH_LOG("%s", strerror(errno));
			break;
		}
	}
	TH_LOG("%u allocations swept, %u of them failed the sequence",
	       nth - 1, nr_failed);
	/* Injection that never makes anything fail is not working */
	ASSERT_LT(0, nr_failed);
	fault_knobs_restore(&self->knobs);

	ASSERT_EQ(0, kmsg_splats(self->k.kmsg_fd));
}

/*
 * After the sweeps: nothing the tests allocated may be unreferenced. A leak
 * only shows once it is MSECS_MIN_AGE (5 s) old.
 */
/* A fixture only so that this runs after the sweeps: TEST()s run first */
FIXTURE(kmemleak)
{
	int unused;
};

FIXTURE_SETUP(kmemleak)
{
}

FIXTURE_TEARDOWN(kmemleak)
{
}

TEST_F(kmemleak, after_fail_nth)
{
	if (access(KMEMLEAK_FILE, F_OK)) {
		if (access(DEBUGFS "/iommu-kvm", F_OK))
			SKIP(return, "debugfs is not mounted");
		SKIP(return, "no %s: CONFIG_DEBUG_KMEMLEAK is off",
		     KMEMLEAK_FILE);
	}
	sleep(6);
	ASSERT_EQ(0, kmemleak_report(_metadata, NULL));
}

TEST_HARNESS_MAIN
