// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM-backed IOMMU domains: debugfs
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>

#include "iommu_kvm_priv.h"

/**
 * DOC: debugfs
 *
 * Two files, readable by root. Like all of debugfs they are for debugging,
 * not an ABI.
 *
 * ``/sys/kernel/debug/iommu-kvm/backends`` lists the registered backends,
 * one per line: ``<name> module=<module>``, where ``<module>`` is
 * ``built-in`` for a backend that is not a module.
 *
 * ``/sys/kernel/debug/iommu-kvm/domains`` lists the domains that exist, live
 * or dead, one line each::
 *
 *   domain <id> backend=<name> format=<name> vm=<tgid> state=<live|dead>
 *   parent=<yes|no> devices=<n> invalidations=<n> syncs=<n> faults=<n>
 *
 * (one line in the file), where ``vm`` is the thread group ID of the process
 * that allocated the domain, ``devices`` counts the attached devices and the
 * three counters count KVM invalidations delivered, shadow syncs and
 * reported translation faults since the domain was created. It is followed
 * by one line ``dev <device name>`` per attached device, indented by two
 * spaces, then by the lines the backend's ``debugfs_show`` adds, indented
 * the same way by convention (the mock adds one, ``mock ...``).
 */

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
