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
 * One file, readable by root. Like all of debugfs it is for debugging, not
 * an ABI.
 *
 * ``/sys/kernel/debug/iommu-kvm/domains`` lists the domains that exist, live
 * or dead, one line each::
 *
 *   domain <id> driver=<name> format=<n> vm=<tgid> state=<live|dead>
 *   parent=<yes|no> invalidations=<n> syncs=<n> faults=<n>
 *
 * (one line in the file), where ``driver`` is the name in the driver's
 * &struct iommu_kvm_domain_ops, ``format`` the value of enum
 * iommu_hwpt_kvm_format, ``vm`` the thread group ID of the process that
 * allocated the domain, and the three counters count KVM invalidations
 * delivered (for a driver whose table KVM flushes itself, such as
 * VT-d's, KVM's flushes of that table), shadow syncs and reported
 * translation faults since the domain was created. It is followed by the
 * lines the driver's ``debugfs_show`` adds, indented by two spaces: by
 * convention one ``dev <device name>`` line per device the driver has on
 * the domain, then driver state (the mock adds ``mock ...``). The core
 * keeps no list of devices of its own.
 */

static int domains_show(struct seq_file *s, void *unused)
{
	iommu_kvm_domains_show(s);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(domains);

void iommu_kvm_debugfs_init(void)
{
	struct dentry *dir = debugfs_create_dir("iommu-kvm", NULL);

	debugfs_create_file("domains", 0400, dir, NULL, &domains_fops);
}
