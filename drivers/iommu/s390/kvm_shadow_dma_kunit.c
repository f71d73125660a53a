// SPDX-License-Identifier: GPL-2.0-only
/*
 * Real DMA through a shadow domain: included after kvm_shadow_kunit.c.
 *
 * The function the tests attach to is QEMU's NVMe controller, with no
 * driver bound. The guest's table maps three DMA pages to guest frames:
 * the admin submission queue (read-only: the device only reads it), the
 * admin completion queue and an Identify buffer. The test enables the
 * controller with its admin queues at those DMA addresses and submits
 * Identify Controller. The controller fetches the command from the SQ,
 * writes the Identify data and posts the completion, all by DMA that the
 * function translates through the shadowed host table: the data must land
 * in the host pages behind those guest frames, and nowhere else.
 *
 * Then the guest invalidates the Identify buffer's entry and refreshes it.
 * A second Identify must not reach memory. QEMU puts the function in the
 * error state at the faulting DMA (load, store and DMA blocked, as the
 * architecture says), so the completion does not come either; a completion
 * with an error status is fine too. The test then does what a driver's
 * error recovery would, so that the function is usable again.
 */
#include <linux/io.h>
#include <linux/iopoll.h>
#include <linux/nvme.h>
#include <linux/pci.h>

/* DMA pages (from t->base) of the guest's table, and the frames behind */
#define SKT_NVME_SQ_PAGE	0
#define SKT_NVME_CQ_PAGE	1
#define SKT_NVME_ID_PAGE	2
#define SKT_NVME_SQ_DATA	8	/* skt_data() indices */
#define SKT_NVME_CQ_DATA	9
#define SKT_NVME_ID_DATA	10
#define SKT_NVME_SPARE_DATA	11	/* poisoned, never mapped */

#define SKT_NVME_POISON		0x5a
/* Entries of each admin queue: two commands, never a full queue */
#define SKT_NVME_QDEPTH		4
#define SKT_NVME_AQA		(((SKT_NVME_QDEPTH - 1) << 16) | \
				 (SKT_NVME_QDEPTH - 1))
/* NVM command set, 4 KiB pages (MPS 0), round robin, 64/16-byte entries */
#define SKT_NVME_CC		(NVME_CC_CSS_NVM | \
				 (0 << NVME_CC_MPS_SHIFT) | \
				 NVME_CC_AMS_RR | NVME_CC_SHN_NONE | \
				 NVME_CC_IOSQES | NVME_CC_IOCQES)
#define SKT_NVME_CID1		0x1234
#define SKT_NVME_CID2		0x5678
/* The serial number harness/boot.sh gives the controller (serial=) */
#define SKT_NVME_SERIAL		"kvmdom"

/* What a load returns while the function is in the error state */
#define SKT_NVME_BLOCKED	U32_MAX
#define SKT_NVME_POLL_US	1000
#define SKT_NVME_READY_MIN_MS	500
#define SKT_NVME_READY_MAX_MS	5000
#define SKT_NVME_CMD_MS		2000
/* For the platform's error event to reach the PCI layer */
#define SKT_NVME_EVENT_MS	3000

struct skt_nvme {
	struct kunit *test;
	struct skt *t;
	struct pci_dev *pdev;
	void __iomem *bar;
	bool enabled;		/* pci_enable_device() done */
	bool master;		/* pci_set_master() done */
	u64 cap;
	unsigned int dstrd;
	unsigned int ready_ms;	/* bound of a CSTS.RDY transition */
	/* CPU views of the host pages behind the guest frames */
	struct nvme_command *sq;
	struct nvme_completion *cq;
	void *id;
	void *spare;
	u16 sq_tail;
	u16 cq_head;
	u16 phase;		/* of the next completion */
};

static u64 skt_nvme_iova(struct skt *t, unsigned int n)
{
	return t->base + (u64)n * PAGE_SIZE;
}

static void *skt_nvme_page(struct skt *t, unsigned int data)
{
	return phys_to_virt(skt_hpa(t, skt_data(data)));
}

static bool skt_nvme_poisoned(const void *page)
{
	return !memchr_inv(page, SKT_NVME_POISON, PAGE_SIZE);
}

static void skt_nvme_write64(struct skt_nvme *nv, u32 reg, u64 val)
{
	writel(lower_32_bits(val), nv->bar + reg);
	writel(upper_32_bits(val), nv->bar + reg + 4);
}

static u32 skt_nvme_csts(struct skt_nvme *nv)
{
	return readl(nv->bar + NVME_REG_CSTS);
}

/*
 * Wait until CSTS.RDY is @rdy. Returns 0, -ETIMEDOUT, -EIO if the function
 * is in the error state (loads fail), or -EFAULT if the controller reports
 * a fatal status while being enabled.
 */
static int skt_nvme_wait_rdy(struct skt_nvme *nv, bool rdy, u32 *csts)
{
	u32 val;
	int ret;

	ret = readl_poll_timeout(nv->bar + NVME_REG_CSTS, val,
				 val == SKT_NVME_BLOCKED ||
				 (rdy && (val & NVME_CSTS_CFS)) ||
				 !!(val & NVME_CSTS_RDY) == rdy,
				 SKT_NVME_POLL_US,
				 (u64)nv->ready_ms * USEC_PER_MSEC);
	*csts = val;
	if (ret)
		return ret;
	if (val == SKT_NVME_BLOCKED)
		return -EIO;
	if (rdy && (val & NVME_CSTS_CFS))
		return -EFAULT;
	return 0;
}

/*
 * The function went to the error state at a faulting DMA. With no driver
 * bound, the platform's error event ends with the device marked as
 * permanently failed; wait for that (it would undo what follows), then do
 * what a driver's recovery does: clear the zPCI error state (DMA and load
 * and store allowed again) and mark the channel normal.
 */
static void skt_nvme_recover(struct skt_nvme *nv)
{
	struct kunit *test = nv->test;
	struct pci_dev *pdev = nv->pdev;
	unsigned long end = jiffies + msecs_to_jiffies(SKT_NVME_EVENT_MS);
	pci_channel_state_t seen;
	int rc;

	while (READ_ONCE(pdev->error_state) != pci_channel_io_perm_failure &&
	       time_before(jiffies, end))
		msleep(20);

	pci_dev_lock(pdev);
	seen = pdev->error_state;
	rc = zpci_clear_error_state(to_zpci(pdev));
	if (!rc)
		pdev->error_state = pci_channel_io_normal;
	pci_dev_unlock(pdev);

	kunit_info(test,
		   "recovery: channel state %u after the error event (%s), zPCI error state cleared: rc %d, CSTS now 0x%08x\n",
		   (__force unsigned int)seen,
		   seen == pci_channel_io_perm_failure ? "permanent failure" :
		   seen == pci_channel_io_normal ? "no event seen" : "frozen",
		   rc, skt_nvme_csts(nv));
	KUNIT_EXPECT_EQ_MSG(test, rc, 0,
			    "the function stays in the error state");
}

/* Undo: controller disabled (no DMA after this), BAR unmapped, device off */
static void skt_nvme_release(void *data)
{
	struct skt_nvme *nv = data;
	struct kunit *test = nv->test;
	u32 csts;
	int ret;

	if (nv->bar) {
		if (skt_nvme_csts(nv) == SKT_NVME_BLOCKED)
			skt_nvme_recover(nv);
		writel(0, nv->bar + NVME_REG_CC);
		ret = skt_nvme_wait_rdy(nv, false, &csts);
		KUNIT_EXPECT_EQ_MSG(test, ret, 0,
				    "controller not disabled, CSTS 0x%08x",
				    csts);
		pci_iounmap(nv->pdev, nv->bar);
		nv->bar = NULL;
	}
	if (nv->master)
		pci_clear_master(nv->pdev);
	nv->master = false;
	if (nv->enabled)
		pci_disable_device(nv->pdev);
	nv->enabled = false;
}

/* Guest memory and the guest's table: the shadow has all three pages */
static void skt_nvme_guest(struct skt_nvme *nv)
{
	struct kunit *test = nv->test;
	struct skt *t = nv->t;
	static const struct {
		const char *name;
		unsigned int page, data;
		bool prot;
	} map[] = {
		{ "admin SQ", SKT_NVME_SQ_PAGE, SKT_NVME_SQ_DATA, true },
		{ "admin CQ", SKT_NVME_CQ_PAGE, SKT_NVME_CQ_DATA, false },
		{ "Identify buffer", SKT_NVME_ID_PAGE, SKT_NVME_ID_DATA,
		  false },
	};
	unsigned int i;

	nv->sq = skt_nvme_page(t, SKT_NVME_SQ_DATA);
	nv->cq = skt_nvme_page(t, SKT_NVME_CQ_DATA);
	nv->id = skt_nvme_page(t, SKT_NVME_ID_DATA);
	nv->spare = skt_nvme_page(t, SKT_NVME_SPARE_DATA);
	memset(nv->sq, 0, PAGE_SIZE);
	memset(nv->cq, 0, PAGE_SIZE);
	memset(nv->id, SKT_NVME_POISON, PAGE_SIZE);
	memset(nv->spare, SKT_NVME_POISON, PAGE_SIZE);

	for (i = 0; i < ARRAY_SIZE(map); i++)
		skt_map(t, map[i].page, skt_data(map[i].data), map[i].prot);
	EXPECT_CC(test, skt_rpcit(t, 0, ARRAY_SIZE(map)), ZPCI_CC_OK);
	for (i = 0; i < ARRAY_SIZE(map); i++) {
		phys_addr_t hpa = skt_hpa(t, skt_data(map[i].data));

		skt_expect(t, map[i].page, skt_data(map[i].data),
			   map[i].prot);
		kunit_info(test,
			   "%s: DMA 0x%llx -> guest 0x%llx -> host %pa%s\n",
			   map[i].name, skt_nvme_iova(t, map[i].page),
			   skt_data(map[i].data), &hpa,
			   map[i].prot ? " (read-only)" : "");
	}
	KUNIT_EXPECT_EQ(test, t->skd->nr_mapped, ARRAY_SIZE(map));
	kunit_info(test, "shadowed with %llu host refreshes (tlb_refresh %d)\n",
		   t->skd->stats.refreshes, t->zdev->tlb_refresh);
}

static bool skt_nvme_open(struct skt_nvme *nv)
{
	struct kunit *test = nv->test;
	int ret;

	ret = pci_enable_device(nv->pdev);
	KUNIT_EXPECT_EQ_MSG(test, ret, 0, "pci_enable_device");
	if (ret)
		return false;
	nv->enabled = true;
	pci_set_master(nv->pdev);
	nv->master = true;
	nv->bar = pci_iomap(nv->pdev, 0, 0);
	KUNIT_EXPECT_TRUE_MSG(test, nv->bar, "pci_iomap of BAR 0");
	return nv->bar;
}

/* Controller reset, admin queues at the guest's DMA addresses, enabled */
static bool skt_nvme_enable(struct skt_nvme *nv)
{
	struct kunit *test = nv->test;
	struct skt *t = nv->t;
	u32 lo, hi, csts;
	int ret;

	lo = readl(nv->bar + NVME_REG_CAP);
	hi = readl(nv->bar + NVME_REG_CAP + 4);
	KUNIT_EXPECT_FALSE_MSG(test, lo == SKT_NVME_BLOCKED &&
			       hi == SKT_NVME_BLOCKED,
			       "BAR 0 not readable: function in error state");
	if (lo == SKT_NVME_BLOCKED && hi == SKT_NVME_BLOCKED)
		return false;
	nv->cap = (u64)hi << 32 | lo;
	nv->dstrd = NVME_CAP_STRIDE(nv->cap);
	nv->ready_ms = clamp_t(u64, NVME_CAP_TIMEOUT(nv->cap) * 500,
			       SKT_NVME_READY_MIN_MS, SKT_NVME_READY_MAX_MS);
	kunit_info(test,
		   "CAP 0x%016llx: MQES %llu, TO %llu (wait %u ms), DSTRD %u, MPSMIN %llu, CSS 0x%llx; VS 0x%08x\n",
		   nv->cap, NVME_CAP_MQES(nv->cap), NVME_CAP_TIMEOUT(nv->cap),
		   nv->ready_ms, nv->dstrd, NVME_CAP_MPSMIN(nv->cap),
		   NVME_CAP_CSS(nv->cap), readl(nv->bar + NVME_REG_VS));
	KUNIT_EXPECT_EQ_MSG(test, NVME_CAP_MPSMIN(nv->cap), 0,
			    "no 4 KiB memory pages");
	KUNIT_EXPECT_TRUE_MSG(test, NVME_CAP_CSS(nv->cap) & NVME_CAP_CSS_NVM,
			      "no NVM command set");
	KUNIT_EXPECT_GE(test, NVME_CAP_MQES(nv->cap) + 1, SKT_NVME_QDEPTH);
	if (NVME_CAP_MPSMIN(nv->cap) ||
	    !(NVME_CAP_CSS(nv->cap) & NVME_CAP_CSS_NVM) ||
	    NVME_CAP_MQES(nv->cap) + 1 < SKT_NVME_QDEPTH)
		return false;

	/* The admin queues are set while the controller is disabled */
	writel(0, nv->bar + NVME_REG_CC);
	ret = skt_nvme_wait_rdy(nv, false, &csts);
	KUNIT_EXPECT_EQ_MSG(test, ret, 0, "CSTS.RDY stays 1: CSTS 0x%08x",
			    csts);
	if (ret)
		return false;

	writel(SKT_NVME_AQA, nv->bar + NVME_REG_AQA);
	skt_nvme_write64(nv, NVME_REG_ASQ, skt_nvme_iova(t, SKT_NVME_SQ_PAGE));
	skt_nvme_write64(nv, NVME_REG_ACQ, skt_nvme_iova(t, SKT_NVME_CQ_PAGE));
	writel(SKT_NVME_CC | NVME_CC_ENABLE, nv->bar + NVME_REG_CC);
	ret = skt_nvme_wait_rdy(nv, true, &csts);
	kunit_info(test,
		   "enable: AQA 0x%08x ASQ 0x%llx ACQ 0x%llx CC 0x%08x: %d, CSTS 0x%08x\n",
		   SKT_NVME_AQA, skt_nvme_iova(t, SKT_NVME_SQ_PAGE),
		   skt_nvme_iova(t, SKT_NVME_CQ_PAGE),
		   SKT_NVME_CC | NVME_CC_ENABLE, ret, csts);
	KUNIT_EXPECT_EQ_MSG(test, ret, 0, "controller not ready: CSTS 0x%08x",
			    csts);
	nv->sq_tail = 0;
	nv->cq_head = 0;
	nv->phase = 1;
	return !ret;
}

/* Identify Controller into DMA page @page, in the next SQ slot */
static void skt_nvme_identify(struct skt_nvme *nv, u16 cid, unsigned int page)
{
	struct nvme_command cmd = {};

	cmd.identify.opcode = nvme_admin_identify;
	/* Opaque to the controller: it is returned as it was written */
	cmd.identify.command_id = cid;
	cmd.identify.nsid = cpu_to_le32(0);
	cmd.identify.dptr.prp1 = cpu_to_le64(skt_nvme_iova(nv->t, page));
	cmd.identify.cns = NVME_ID_CNS_CTRL;

	memcpy(&nv->sq[nv->sq_tail], &cmd, sizeof(cmd));
	nv->sq_tail = (nv->sq_tail + 1) % SKT_NVME_QDEPTH;
	/* The entry is in memory before the controller hears of it */
	wmb();
	writel(nv->sq_tail, nv->bar + NVME_REG_DBS);
}

/*
 * Wait for the next completion and consume it (CQ head doorbell). Returns
 * 0 with the entry in @cqe, or -EIO (the function is in the error state),
 * -EFAULT (CSTS.CFS) or -ETIMEDOUT, with the last CSTS in @csts.
 */
static int skt_nvme_wait_cqe(struct skt_nvme *nv, struct nvme_completion *cqe,
			     u32 *csts)
{
	struct nvme_completion *slot = &nv->cq[nv->cq_head];
	unsigned long end = jiffies + msecs_to_jiffies(SKT_NVME_CMD_MS);
	bool last = false;
	int ret = 0;

	*csts = 0;
	for (;;) {
		if ((le16_to_cpu(READ_ONCE(slot->status)) & 1) == nv->phase)
			break;
		/* Looked once more after the controller stopped */
		if (last)
			return ret;
		*csts = skt_nvme_csts(nv);
		if (*csts == SKT_NVME_BLOCKED)
			ret = -EIO;
		else if (*csts & NVME_CSTS_CFS)
			ret = -EFAULT;
		else if (time_after(jiffies, end))
			ret = -ETIMEDOUT;
		if (ret)
			last = true;
		else
			usleep_range(SKT_NVME_POLL_US,
				     2 * SKT_NVME_POLL_US);
	}
	/* The rest of the entry is read after its phase bit */
	dma_rmb();
	memcpy(cqe, slot, sizeof(*cqe));
	if (++nv->cq_head == SKT_NVME_QDEPTH) {
		nv->cq_head = 0;
		nv->phase ^= 1;
	}
	writel(nv->cq_head, nv->bar + NVME_REG_DBS + (4 << nv->dstrd));
	return 0;
}

/* Identify through the shadow: SQ read, data and completion written */
static bool skt_nvme_positive(struct skt_nvme *nv)
{
	struct kunit *test = nv->test;
	struct nvme_id_ctrl *id = nv->id;
	struct nvme_completion cqe;
	char sn[sizeof(id->sn)];
	u16 status;
	u32 csts;
	int ret;

	BUILD_BUG_ON(sizeof(SKT_NVME_SERIAL) - 1 > sizeof(id->sn));
	memset(sn, ' ', sizeof(sn));
	memcpy(sn, SKT_NVME_SERIAL, sizeof(SKT_NVME_SERIAL) - 1);

	skt_nvme_identify(nv, SKT_NVME_CID1, SKT_NVME_ID_PAGE);
	ret = skt_nvme_wait_cqe(nv, &cqe, &csts);
	KUNIT_EXPECT_EQ_MSG(test, ret, 0,
			    "no completion of Identify: CSTS 0x%08x%s", csts,
			    ret == -EIO ? " (function in the error state)" :
			    "");
	if (ret)
		return false;
	status = le16_to_cpu(cqe.status) >> 1;
	kunit_info(test,
		   "Identify: SQ entry read and completion written by DMA: cid 0x%04x, status 0x%x, SQ head %u\n",
		   cqe.command_id, status, le16_to_cpu(cqe.sq_head));
	KUNIT_EXPECT_EQ(test, status, 0);
	KUNIT_EXPECT_EQ(test, cqe.command_id, SKT_NVME_CID1);
	KUNIT_EXPECT_EQ(test, le16_to_cpu(cqe.sq_id), 0);
	KUNIT_EXPECT_EQ(test, le16_to_cpu(cqe.sq_head), 1);

	kunit_info(test,
		   "Identify data by DMA: vid 0x%04x ssvid 0x%04x sn '%.*s' mn '%.*s'\n",
		   le16_to_cpu(id->vid), le16_to_cpu(id->ssvid),
		   (int)sizeof(id->sn), id->sn, (int)sizeof(id->mn), id->mn);
	KUNIT_EXPECT_EQ(test, le16_to_cpu(id->vid), nv->pdev->vendor);
	KUNIT_EXPECT_MEMEQ(test, id->sn, sn, sizeof(sn));
	KUNIT_EXPECT_TRUE_MSG(test, skt_nvme_poisoned(nv->spare),
			      "DMA landed in a frame the shadow does not map");
	return !status && le16_to_cpu(id->vid) == nv->pdev->vendor;
}

/* The Identify buffer's entry invalidated: a second Identify goes nowhere */
static void skt_nvme_negative(struct skt_nvme *nv)
{
	struct kunit *test = nv->test;
	struct skt *t = nv->t;
	u64 invalidated = t->skd->stats.invalidated;
	u64 refreshes = t->skd->stats.refreshes;
	struct nvme_completion cqe;
	u16 status;
	u32 csts;
	int ret;

	skt_unmap(t, SKT_NVME_ID_PAGE);
	EXPECT_CC(test, skt_rpcit(t, SKT_NVME_ID_PAGE, 1), ZPCI_CC_OK);
	skt_expect(t, SKT_NVME_ID_PAGE, 0, false);
	skt_expect(t, SKT_NVME_SQ_PAGE, skt_data(SKT_NVME_SQ_DATA), true);
	skt_expect(t, SKT_NVME_CQ_PAGE, skt_data(SKT_NVME_CQ_DATA), false);
	KUNIT_EXPECT_EQ(test, t->skd->stats.invalidated, invalidated + 1);
	/* The function must forget the translation it has */
	KUNIT_EXPECT_EQ(test, t->skd->stats.refreshes, refreshes + 1);
	kunit_info(test,
		   "Identify buffer DMA 0x%llx invalidated by the guest: %llu host refresh\n",
		   skt_nvme_iova(t, SKT_NVME_ID_PAGE),
		   t->skd->stats.refreshes - refreshes);

	memset(nv->id, SKT_NVME_POISON, PAGE_SIZE);
	skt_nvme_identify(nv, SKT_NVME_CID2, SKT_NVME_ID_PAGE);
	ret = skt_nvme_wait_cqe(nv, &cqe, &csts);
	switch (ret) {
	case 0:
		status = le16_to_cpu(cqe.status) >> 1;
		kunit_info(test,
			   "second Identify completed: cid 0x%04x, status 0x%x\n",
			   cqe.command_id, status);
		KUNIT_EXPECT_EQ(test, cqe.command_id, SKT_NVME_CID2);
		KUNIT_EXPECT_NE_MSG(test, status, 0,
				    "success through an invalid translation");
		break;
	case -EIO:
		kunit_info(test,
			   "second Identify: no completion, the function went to the error state at the faulting DMA (loads blocked)\n");
		break;
	case -EFAULT:
		kunit_info(test,
			   "second Identify: no completion, controller fatal status (CSTS 0x%08x)\n",
			   csts);
		break;
	default:
		kunit_info(test,
			   "second Identify: no completion in %u ms (CSTS 0x%08x)\n",
			   SKT_NVME_CMD_MS, csts);
		break;
	}
	KUNIT_EXPECT_TRUE_MSG(test, skt_nvme_poisoned(nv->id),
			      "DMA through an invalidated entry landed");
	KUNIT_EXPECT_TRUE_MSG(test, skt_nvme_poisoned(nv->spare),
			      "DMA landed in a frame the shadow does not map");
	if (ret == -EIO)
		skt_nvme_recover(nv);
}

static void test_nvme_dma(struct kunit *test)
{
	struct skt *t = test->priv;
	struct skt_nvme *nv;

	if (skt_pdev->class != PCI_CLASS_STORAGE_EXPRESS)
		kunit_skip(test, "%s is not an NVMe controller (class 0x%06x)",
			   pci_name(skt_pdev), skt_pdev->class);
	nv = kunit_kzalloc(test, sizeof(*nv), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, nv);
	nv->test = test;
	nv->t = t;
	nv->pdev = skt_pdev;
	nv->ready_ms = SKT_NVME_READY_MAX_MS;

	skt_alloc_attach(t, SKT_IOTA);
	skt_nvme_guest(nv);

	KUNIT_ASSERT_EQ(test, 0, kunit_add_action(test, skt_nvme_release, nv));
	if (skt_nvme_open(nv) && skt_nvme_enable(nv) && skt_nvme_positive(nv))
		skt_nvme_negative(nv);
	/* Before skt_exit() detaches the domain and frees guest memory */
	kunit_release_action(test, skt_nvme_release, nv);

	/* The fault was the function's: the shadow itself saw no error */
	KUNIT_EXPECT_FALSE(test, t->skd->error);
	KUNIT_EXPECT_EQ(test, t->skd->stats.errors, 0);
	kunit_info(test, "done: function %s, channel %s\n", pci_name(skt_pdev),
		   pci_channel_offline(skt_pdev) ? "offline" : "normal");
}
