// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed IOMMU domains: debugfs
 *
 * /sys/kernel/debug/iommu-kvm/backends lists the registered backends, one per
 * line: "<name> module=<module>".
 *
 * /sys/kernel/debug/iommu-kvm/domains lists the live domains, one line each:
 * "domain <id> backend=<name> format=<name> vm=<tgid> state=<live|dead>
 * parent=<yes|no> devices=<n> invalidations=<n> syncs=<n> faults=<n>",
 * followed by a "  dev <name>" line per attached device and any lines the
 * backend adds.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>

#include "iommu_kvm_priv.h"

static struct dentry *iommu_kvm_debugfs_dir;

static int backends_show(struct seq_file *s, void *unused)
{
	iommu_kvm_backends_show(s);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(backends);

static int domains_show(struct seq_file *s, void *unused)
{
	iommu_kvm_domains_show(s);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(domains);

void iommu_kvm_debugfs_init(void)
{
	iommu_kvm_debugfs_dir = debugfs_create_dir("iommu-kvm", NULL);
	debugfs_create_file("backends", 0400, iommu_kvm_debugfs_dir, NULL,
			    &backends_fops);
	debugfs_create_file("domains", 0400, iommu_kvm_debugfs_dir, NULL,
			    &domains_fops);
}

void iommu_kvm_debugfs_exit(void)
{
	debugfs_remove_recursive(iommu_kvm_debugfs_dir);
}
