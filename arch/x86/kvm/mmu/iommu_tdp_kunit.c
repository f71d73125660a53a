// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of KVM's table for the VM's IOMMUs, as an IOMMU that does
 * not snoop its walks sees it: what it reads of an entry is what was last
 * written back. Every change must be written back before the IOMMUs are
 * told of it, a table before it is linked, and no page may be unpinned
 * before a flush that covers it; a zap flushes once per batch of leaves,
 * by range, and not at all if it cleared nothing.
 *
 * Included by iommu_tdp.c, to reach its static functions; built into
 * kvm.ko, the suite runs when the module loads. The write-back and the
 * unpin are static stubs: the tests see every write-back and free no page.
 * They run under mmu_lock, so they count what they find and the test
 * reports it afterwards: KUnit's log allocates.
 *
 * Copyright (C) 2026 The KVM-backed IOMMU domain authors
 */
#include <kunit/test.h>
#include <kunit/test-bug.h>
#include <linux/completion.h>
#include <linux/kthread.h>
#include <linux/mman.h>
#include <linux/sched/mm.h>
#include <linux/uaccess.h>

/* mm_alloc(), for a stand-in VM whose refill worker may run */
MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");

#define ITT_TABLES	16
#define ITT_FLUSHES	8
/* What a non-snooping walk would read of an entry never written back */
#define ITT_STALE	0xdead5ea1dead5ea1ULL

struct itt_table {
	u64 *page;
	u64 seen[IOMMU_TDP_PTES];
};

struct itt_flush {
	u64 gfn;
	u64 nr;
};

/* What the primary MMU does while a populate pins the chunk the first time */
enum itt_pin_race {
	ITT_PIN_QUIET,
	/* Invalidates the frames next to the chunk, before and after it */
	ITT_PIN_OTHER,
	/* Invalidates the chunk's last frame and maps a new page there */
	ITT_PIN_CHUNK,
};

/**
 * struct itt - One test's table and what the IOMMU saw of it
 * @kvm: a stand-in VM: the table only takes its mmu_lock
 * @t: the table
 * @client: the IOMMU
 * @mem: 2 MiB of memory whose frames the leaves map
 * @pfn: its first frame
 * @tables: the table pages written back so far, with what the IOMMU sees
 * @ntables: entries in @tables
 * @flushes: the client's flushes, in order
 * @nflushes: how many there were (more than %ITT_FLUSHES are counted only)
 * @last: the last flush
 * @pending: pages of leaves cleared in memory and written back, not flushed
 * @flushed: pages of cleared leaves the IOMMUs were told of
 * @unpinned: pages unpinned, or their references dropped
 * @dropped: of those, pages whose references were dropped (guest_memfd)
 * @stale: entries the IOMMU would have read stale at a flush
 * @early_links: tables linked before they were all written back
 * @early_unpins: pages unpinned before a flush covered them
 * @odd: write-backs of no known table or across a page, unpins of frames
 *	the table never mapped
 * @first: where the first stale entry or early link was, for the report:
 *	index in @tables, times %IOMMU_TDP_PTES, plus the entry's; -1 if none
 * @skip_wb_len: leave out write-backs of this length (the test of the
 *	checks themselves)
 * @yields: the points where a zap asked whether to drop mmu_lock
 * @race: test_retire_races_yielded_zap()'s state
 * @pin_race: what the primary MMU does while a populate's first pin runs
 * @pins: the populate's pins (static stub); each finds the chunk's pages
 *	of generation @gen
 * @gen: how often the primary MMU changed the chunk's mapping
 * @open: an invalidation of the chunk began and has not ended
 * @waits: the populate waited for an invalidation (static stub)
 * @released: pages the populate unpinned without mapping them (static stub)
 * @pin_max: with it, a pin stops short after as many frames, as if the
 *	next were not RAM it can pin
 * @pin_fails: the next pins that reach @pin_fail_hva fail there with
 *	@pin_err, as GUP does: a pin that starts there returns @pin_err,
 *	one that starts before stops short at it
 * @pin_fail_hva: where
 * @pin_err: what they return
 * @retries: the retry was asked to run (static stub)
 * @retry_delay: the delay it was asked for the last time, in jiffies
 */
struct itt {
	struct kvm *kvm;
	struct kvm_iommu_tdp *t;
	struct kvm_iommu_tdp_client client;
	struct page *mem;
	kvm_pfn_t pfn;
	struct itt_table tables[ITT_TABLES];
	int ntables;
	struct itt_flush flushes[ITT_FLUSHES];
	int nflushes;
	struct itt_flush last;
	unsigned long pending;
	unsigned long flushed;
	unsigned long unpinned;
	unsigned long dropped;
	unsigned int stale;
	unsigned int early_links;
	unsigned int early_unpins;
	unsigned int odd;
	int first;
	unsigned int skip_wb_len;
	unsigned int yields;
	struct itt_race *race;
	enum itt_pin_race pin_race;
	unsigned int pins;
	unsigned int gen;
	bool open;
	unsigned int waits;
	unsigned long released;
	unsigned long pin_max;
	unsigned int pin_fails;
	unsigned long pin_fail_hva;
	int pin_err;
	unsigned int retries;
	unsigned long retry_delay;
};

static struct itt_table *itt_table(struct itt *itt, u64 *page, bool add)
{
	struct itt_table *tb;
	int i;

	for (i = 0; i < itt->ntables; i++)
		if (itt->tables[i].page == page)
			return &itt->tables[i];
	if (!add || itt->ntables == ITT_TABLES)
		return NULL;
	tb = &itt->tables[itt->ntables++];
	tb->page = page;
	memset64(tb->seen, ITT_STALE, IOMMU_TDP_PTES);
	return tb;
}

/* Entries of @tb whose memory differs from what the IOMMU sees */
static unsigned int itt_unseen(struct itt_table *tb)
{
	unsigned int i, n = 0;

	for (i = 0; i < IOMMU_TDP_PTES; i++)
		n += READ_ONCE(tb->page[i]) != tb->seen[i];
	return n;
}

/* The write-back, as the IOMMU sees it: whole cache lines */
static void itt_wb(void *p, unsigned int len)
{
	struct kunit *test = kunit_get_current_test();
	struct itt *itt = test->priv;
	unsigned long line = boot_cpu_data.x86_clflush_size;
	unsigned long a = ALIGN_DOWN((unsigned long)p, line);
	unsigned long end = ALIGN((unsigned long)p + len, line);
	u64 *page = (u64 *)ALIGN_DOWN(a, PAGE_SIZE);
	struct itt_table *tb, *to;
	u64 old, new;

	if (len == itt->skip_wb_len)
		return;
	clflush_cache_range(p, len);
	tb = itt_table(itt, page, true);
	if (!tb || end > (unsigned long)page + PAGE_SIZE) {
		itt->odd++;
		return;
	}
	for (; a < end; a += sizeof(u64)) {
		unsigned int i = (u64 *)a - page;

		old = tb->seen[i];
		new = READ_ONCE(page[i]);
		/* A leaf cleared: 4 KiB, or 2 MiB with PS */
		if (old != ITT_STALE && iommu_tdp_present(old) &&
		    !iommu_tdp_present(new))
			itt->pending += old & IOMMU_TDP_PS ? IOMMU_TDP_PTES : 1;
		/*
		 * A link (not a 4 KiB leaf, which maps the test's memory):
		 * the table must be in memory as it is in the CPU's cache
		 */
		if (iommu_tdp_present(new) && !(new & IOMMU_TDP_PS) &&
		    (new >> PAGE_SHIFT) - itt->pfn >= IOMMU_TDP_PTES) {
			to = itt_table(itt, __va(new & IOMMU_TDP_ADDR), false);
			if (!to || itt_unseen(to)) {
				if (itt->first < 0)
					itt->first = (tb - itt->tables) *
						     IOMMU_TDP_PTES + i;
				itt->early_links++;
			}
		}
		tb->seen[i] = new;
	}
}

static void itt_unpin(kvm_pfn_t pfn, u64 nr)
{
	struct kunit *test = kunit_get_current_test();
	struct itt *itt = test->priv;

	if (pfn < itt->pfn || pfn + nr > itt->pfn + IOMMU_TDP_PTES)
		itt->odd++;
	itt->unpinned += nr;
	if (itt->unpinned > itt->flushed)
		itt->early_unpins++;
}

/* guest_memfd pages' references dropped: as early as an unpin may be */
static void itt_put(kvm_pfn_t pfn, u64 nr)
{
	struct itt *itt = kunit_get_current_test()->priv;

	itt->dropped += nr;
	itt_unpin(pfn, nr);
}

static void itt_flush(struct kvm_iommu_tdp_client *client, u64 gfn, u64 nr)
{
	struct kunit *test = kunit_get_current_test();
	struct itt *itt = test->priv;
	unsigned int i, n;

	for (i = 0; i < itt->ntables; i++) {
		n = itt_unseen(&itt->tables[i]);
		if (n && itt->first < 0)
			itt->first = i * IOMMU_TDP_PTES;
		itt->stale += n;
	}
	if (itt->nflushes < ITT_FLUSHES)
		itt->flushes[itt->nflushes] = (struct itt_flush){ gfn, nr };
	itt->last = (struct itt_flush){ gfn, nr };
	itt->nflushes++;
	itt->flushed += itt->pending;
	itt->pending = 0;
}

static void itt_release(void *data)
{
	struct itt *itt = data;

	if (itt->t) {
		/* The leaves left map the test's pages, which nothing pinned */
		itt->t->npinned = 0;
		iommu_tdp_free(itt->t);
	}
	if (itt->mem)
		__free_pages(itt->mem, PMD_ORDER);
	if (itt->kvm && itt->kvm->mm)
		mmput(itt->kvm->mm);
	kvfree(itt->kvm);
}

struct itt_param {
	bool ept;
	int levels;
	const char *name;
};

static const struct itt_param itt_params[] = {
	{ false, 4, "x86-64 paging, 4 levels" },
	{ true, 4, "EPT, 4 levels" },
	{ false, 5, "x86-64 paging, 5 levels" },
};

static void itt_param_desc(const struct itt_param *p, char *desc)
{
	strscpy(desc, p->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(itt_format, itt_params, itt_param_desc);

/* An empty table of the test's format, its IOMMU and its memory */
static struct itt *itt_new(struct kunit *test)
{
	const struct itt_param *p = test->param_value;
	struct kvm_iommu_tdp *t;
	struct itt *itt;

	itt = kunit_kzalloc(test, sizeof(*itt), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, itt);
	test->priv = itt;
	KUNIT_ASSERT_EQ(test, kunit_add_action_or_reset(test, itt_release, itt), 0);
	itt->first = -1;
	itt->kvm = kvzalloc_obj(*itt->kvm, GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, itt->kvm);
	rwlock_init(&itt->kvm->mmu_lock);
	mutex_init(&itt->kvm->slots_lock);
	itt->mem = alloc_pages(GFP_KERNEL | __GFP_NOWARN, PMD_ORDER);
	KUNIT_ASSERT_NOT_NULL(test, itt->mem);
	itt->pfn = page_to_pfn(itt->mem);

	kunit_activate_static_stub(test, iommu_tdp_wb, itt_wb);
	kunit_activate_static_stub(test, iommu_tdp_unpin, itt_unpin);
	kunit_activate_static_stub(test, iommu_tdp_put_pages, itt_put);

	t = iommu_tdp_alloc(itt->kvm, p->ept, p->levels);
	KUNIT_ASSERT_NOT_NULL(test, t);
	itt->t = t;
	itt->client.flush = itt_flush;
	list_add(&itt->client.node, &t->clients);
	return itt;
}

/* The entry that maps @gfn, at the level it maps it; NULL if none */
static u64 itt_lookup(struct itt *itt, gfn_t gfn, int *level)
{
	u64 *table = itt->t->root, entry = 0;
	int l;

	for (l = itt->t->fmt.levels; l >= PG_LEVEL_4K; l--) {
		entry = READ_ONCE(table[iommu_tdp_index(gfn, l)]);
		if (!iommu_tdp_present(entry))
			return 0;
		if (iommu_tdp_is_leaf(entry, l))
			break;
		table = __va(entry & IOMMU_TDP_ADDR);
	}
	*level = l;
	return entry;
}

/*
 * Map @n frames from @gfn (within one 2 MiB) to the memory's frames from
 * @off on, as a populate does: one 2 MiB leaf where it can. @sw:
 * IOMMU_TDP_REF for pages held by references, as of guest_memfd
 */
static void itt_install_sw(struct kunit *test, struct itt *itt, gfn_t gfn,
			   unsigned long n, unsigned int off, u64 sw)
{
	struct kvm_iommu_tdp *t = itt->t;
	u64 *spare[PT64_ROOT_MAX_LEVEL];
	struct page **pages;
	unsigned long i, installed;
	int nspare = 0, level;

	/* Where a frame is mapped already, install would unpin the page */
	for (i = 0; i < n; i++) {
		int level;

		KUNIT_ASSERT_EQ_MSG(test, itt_lookup(itt, gfn + i, &level), 0,
				    "GFN %llx is mapped already", gfn + i);
	}
	pages = kunit_kmalloc_array(test, n, sizeof(*pages), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, pages);
	for (i = 0; i < n; i++)
		pages[i] = itt->mem + (off + i) % IOMMU_TDP_PTES;
	level = iommu_tdp_leaf_level(t, pages, n);
	mutex_lock(&itt->kvm->slots_lock);
	if (!iommu_tdp_get_spares(t, gfn, level, spare, &nspare)) {
		mutex_unlock(&itt->kvm->slots_lock);
		while (nspare)
			iommu_tdp_free_table(spare[--nspare]);
		KUNIT_FAIL_AND_ABORT(test, "no memory for the tables");
	}
	write_lock(&itt->kvm->mmu_lock);
	installed = iommu_tdp_install(t, gfn, pages, n, level, sw, spare,
				      &nspare);
	if (!sw)
		t->npinned += installed;
	write_unlock(&itt->kvm->mmu_lock);
	mutex_unlock(&itt->kvm->slots_lock);
	/* The spares it did not link go, and the IOMMU never sees them */
	while (nspare) {
		struct itt_table *tb = itt_table(itt, spare[--nspare], false);

		if (tb)
			*tb = itt->tables[--itt->ntables];
		iommu_tdp_free_table(spare[nspare]);
	}
	KUNIT_ASSERT_EQ(test, installed, n);
}

static void itt_install(struct kunit *test, struct itt *itt, gfn_t gfn,
			unsigned long n, unsigned int off)
{
	itt_install_sw(test, itt, gfn, n, off, 0);
}

static void itt_zap(struct itt *itt, gfn_t start, gfn_t end)
{
	struct iommu_tdp_zap z = {};

	write_lock(&itt->kvm->mmu_lock);
	iommu_tdp_zap(itt->t, start, end, &z);
	write_unlock(&itt->kvm->mmu_lock);
}

/* Frames [@gfn, @gfn + @n) map the memory from @off on, 4 KiB each */
static void itt_expect_4k(struct kunit *test, struct itt *itt, gfn_t gfn,
			  unsigned long n, unsigned int off)
{
	unsigned long i;
	int level;
	u64 e;

	for (i = 0; i < n; i++) {
		e = itt_lookup(itt, gfn + i, &level);
		if (e != iommu_tdp_leaf(itt->t, itt->pfn + (off + i) % IOMMU_TDP_PTES,
					PG_LEVEL_4K) || level != PG_LEVEL_4K) {
			KUNIT_FAIL(test, "GFN %llx: entry %llx at level %d\n",
				   gfn + i, e, level);
			return;
		}
	}
}

static void itt_expect_none(struct kunit *test, struct itt *itt, gfn_t gfn,
			    unsigned long n)
{
	unsigned long i;
	int level;

	for (i = 0; i < n; i++)
		KUNIT_EXPECT_EQ_MSG(test, itt_lookup(itt, gfn + i, &level), 0,
				    "GFN %llx", gfn + i);
}

/* Every change written back, and no page unpinned before its flush */
static void itt_expect_ordered(struct kunit *test, struct itt *itt)
{
	unsigned int i;

	for (i = 0; i < itt->ntables; i++)
		KUNIT_EXPECT_EQ_MSG(test, itt_unseen(&itt->tables[i]), 0,
				    "table %u", i);
	KUNIT_EXPECT_EQ_MSG(test, itt->stale, 0,
			    "entries not written back at a flush, from table %d",
			    itt->first / IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ_MSG(test, itt->early_links, 0,
			    "a table linked at entry %d of table %d before it was written back",
			    itt->first % IOMMU_TDP_PTES,
			    itt->first / IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->early_unpins, 0);
	KUNIT_EXPECT_EQ(test, itt->odd, 0);
	KUNIT_EXPECT_EQ(test, itt->pending, 0);
	KUNIT_EXPECT_EQ(test, itt->unpinned, itt->flushed);
}

static void itt_expect_flush(struct kunit *test, struct itt *itt, int i,
			     u64 gfn, u64 nr)
{
	int n = min(itt->nflushes, ITT_FLUSHES);

	KUNIT_ASSERT_LT(test, i, n);
	KUNIT_EXPECT_EQ(test, itt->flushes[i].gfn, gfn);
	KUNIT_EXPECT_EQ(test, itt->flushes[i].nr, nr);
}

/* 100 frames of 4 KiB pages at GFN 5, a 2 MiB leaf at GFN 512 */
static struct itt *itt_populated(struct kunit *test)
{
	struct itt *itt = itt_new(test);
	int level;
	u64 e;

	itt_install(test, itt, 5, 100, 5);
	itt_install(test, itt, IOMMU_TDP_PTES, IOMMU_TDP_PTES, 0);
	e = itt_lookup(itt, IOMMU_TDP_PTES, &level);
	KUNIT_ASSERT_EQ(test, level, PG_LEVEL_2M);
	KUNIT_ASSERT_EQ(test, e, iommu_tdp_leaf(itt->t, itt->pfn, PG_LEVEL_2M));
	itt_expect_4k(test, itt, 5, 100, 5);
	return itt;
}

/* What a populate installs reaches memory, tables before their links */
static void test_install_written_back(struct kunit *test)
{
	struct itt *itt = itt_populated(test);

	/* root, then one table a level below the root down to 4 KiB */
	KUNIT_EXPECT_EQ(test, itt->ntables, itt->t->fmt.levels);
	KUNIT_EXPECT_EQ(test, itt->nflushes, 0);
	itt_expect_ordered(test, itt);
}

/* Part of the 4 KiB leaves: one flush, of exactly that range */
static void test_zap_range(struct kunit *test)
{
	struct itt *itt = itt_populated(test);

	itt_zap(itt, 10, 20);
	KUNIT_EXPECT_EQ(test, itt->nflushes, 1);
	itt_expect_flush(test, itt, 0, 10, 10);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 10);
	KUNIT_EXPECT_EQ(test, itt->t->npinned, 100 + IOMMU_TDP_PTES - 10);
	itt_expect_none(test, itt, 10, 10);
	itt_expect_4k(test, itt, 5, 5, 5);
	itt_expect_4k(test, itt, 20, 85, 20);
	itt_expect_ordered(test, itt);
}

/*
 * One frame of the 2 MiB leaf: it is split, the split table reaches
 * memory before its link, the flush covers the 2 MiB the IOMMU may have
 * cached, and only the one page is unpinned.
 */
static void test_zap_splits(struct kunit *test)
{
	struct itt *itt = itt_populated(test);
	int tables = itt->ntables;

	itt_zap(itt, 600, 601);
	KUNIT_EXPECT_EQ(test, itt->ntables, tables + 1);
	KUNIT_EXPECT_EQ(test, itt->nflushes, 1);
	itt_expect_flush(test, itt, 0, IOMMU_TDP_PTES, IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 1);
	itt_expect_none(test, itt, 600, 1);
	itt_expect_4k(test, itt, IOMMU_TDP_PTES, 600 - IOMMU_TDP_PTES, 0);
	itt_expect_4k(test, itt, 601, 2 * IOMMU_TDP_PTES - 601,
		      601 - IOMMU_TDP_PTES);
	itt_expect_ordered(test, itt);
}

/*
 * Leaves of guest_memfd pages, held by references: a zap drops the
 * references after the flush and unpins nothing, a split keeps the mark
 * in every 4 KiB leaf, and pinned leaves next to them are unpinned as
 * before.
 */
static void test_zap_drops_references(struct kunit *test)
{
	struct itt *itt = itt_new(test);
	gfn_t last = 2 * IOMMU_TDP_PTES - 1;
	int level;
	u64 e;

	itt_install(test, itt, 5, 8, 5);
	itt_install_sw(test, itt, IOMMU_TDP_PTES, IOMMU_TDP_PTES, 0,
		       IOMMU_TDP_REF);
	e = itt_lookup(itt, IOMMU_TDP_PTES, &level);
	KUNIT_ASSERT_EQ(test, level, PG_LEVEL_2M);
	KUNIT_EXPECT_EQ(test, e, iommu_tdp_leaf(itt->t, itt->pfn, PG_LEVEL_2M) |
				 IOMMU_TDP_REF);
	KUNIT_EXPECT_EQ(test, itt->t->npinned, 8);

	itt_zap(itt, 600, 601);
	KUNIT_EXPECT_EQ(test, itt->dropped, 1);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 1);
	itt_expect_none(test, itt, 600, 1);
	e = itt_lookup(itt, IOMMU_TDP_PTES, &level);
	KUNIT_EXPECT_EQ(test, level, PG_LEVEL_4K);
	KUNIT_EXPECT_EQ(test, e, iommu_tdp_leaf(itt->t, itt->pfn, PG_LEVEL_4K) |
				 IOMMU_TDP_REF);
	e = itt_lookup(itt, last, &level);
	KUNIT_EXPECT_EQ(test, e, iommu_tdp_leaf(itt->t, itt->pfn + last -
						IOMMU_TDP_PTES,
						PG_LEVEL_4K) | IOMMU_TDP_REF);

	itt_zap(itt, 0, 2 * IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->dropped, IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->unpinned - itt->dropped, 8);
	KUNIT_EXPECT_EQ(test, itt->t->npinned, 0);
	itt_expect_none(test, itt, 0, 2 * IOMMU_TDP_PTES);
	itt_expect_ordered(test, itt);
}

static void itt_expect_hole(struct kunit *test, struct itt *itt, gfn_t gfn,
			    gfn_t end, gfn_t hole, gfn_t hole_end)
{
	gfn_t got, got_end = 0;

	read_lock(&itt->kvm->mmu_lock);
	got = iommu_tdp_first_hole(itt->t, gfn, end, &got_end);
	read_unlock(&itt->kvm->mmu_lock);
	KUNIT_EXPECT_EQ_MSG(test, got, hole, "in [%llx, %llx)", gfn, end);
	if (hole < end)
		KUNIT_EXPECT_EQ_MSG(test, got_end, hole_end,
				    "in [%llx, %llx)", gfn, end);
}

/*
 * A populate pins only the frames without a leaf: those of a range that
 * zaps emptied, a 2 MiB without a table, none under a 2 MiB leaf.
 */
static void test_populate_finds_holes(struct kunit *test)
{
	struct itt *itt = itt_populated(test);
	const gfn_t huge = IOMMU_TDP_PTES;

	itt_expect_hole(test, itt, 0, huge, 0, 5);
	itt_expect_hole(test, itt, 5, huge, 105, huge);
	itt_expect_hole(test, itt, 5, 105, 105, 0);
	itt_expect_hole(test, itt, huge, 2 * huge, 2 * huge, 0);
	itt_expect_hole(test, itt, 2 * huge, 3 * huge, 2 * huge, 3 * huge);
	itt_expect_hole(test, itt, 64 * huge + 7, 64 * huge + 9,
			64 * huge + 7, 64 * huge + 9);

	itt_zap(itt, 10, 20);
	itt_zap(itt, 30, 31);
	itt_zap(itt, 600, 601);
	itt_expect_hole(test, itt, 5, huge, 10, 20);
	itt_expect_hole(test, itt, 20, huge, 30, 31);
	itt_expect_hole(test, itt, 31, huge, 105, huge);
	itt_expect_hole(test, itt, 12, 15, 12, 15);
	itt_expect_hole(test, itt, huge, 2 * huge, 600, 601);
	itt_expect_hole(test, itt, 601, 2 * huge, 2 * huge, 0);
}

/* A zap that clears nothing tells no IOMMU */
static void test_zap_nothing(struct kunit *test)
{
	struct itt *itt = itt_populated(test);

	itt_zap(itt, 2 * IOMMU_TDP_PTES, 64 * IOMMU_TDP_PTES);
	itt_zap(itt, 0, 5);
	itt_zap(itt, 105, IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->nflushes, 0);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 0);
	itt_expect_ordered(test, itt);
}

/*
 * 512 leaves in one zap: one flush per batch of IOMMU_TDP_UNPIN_MAX,
 * each by its range and before its pages are unpinned.
 */
static void test_zap_batches(struct kunit *test)
{
	struct itt *itt = itt_new(test);
	gfn_t gfn = 4 * IOMMU_TDP_PTES;

	itt_install(test, itt, gfn, IOMMU_TDP_PTES / 2, 0);
	itt_install(test, itt, gfn + IOMMU_TDP_PTES / 2, IOMMU_TDP_PTES / 2,
		    IOMMU_TDP_PTES / 2);
	itt_zap(itt, 0, 1ULL << 30);
	KUNIT_EXPECT_EQ(test, itt->nflushes,
			DIV_ROUND_UP(IOMMU_TDP_PTES, IOMMU_TDP_UNPIN_MAX));
	itt_expect_flush(test, itt, 0, gfn, IOMMU_TDP_UNPIN_MAX);
	itt_expect_flush(test, itt, 1, gfn + IOMMU_TDP_UNPIN_MAX,
			 IOMMU_TDP_PTES - IOMMU_TDP_UNPIN_MAX);
	KUNIT_EXPECT_EQ(test, itt->unpinned, IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->t->npinned, 0);
	itt_expect_none(test, itt, gfn, IOMMU_TDP_PTES);
	itt_expect_ordered(test, itt);
}

/* Emptying ends with a full flush, which drops paging-structure caches */
static void test_empty_flushes_all(struct kunit *test)
{
	struct itt *itt = itt_populated(test);

	write_lock(&itt->kvm->mmu_lock);
	iommu_tdp_empty(itt->t, false);
	write_unlock(&itt->kvm->mmu_lock);
	KUNIT_EXPECT_EQ(test, itt->nflushes, 2);
	itt_expect_flush(test, itt, 1, 0, U64_MAX);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 100 + IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->t->npinned, 0);
	itt_expect_none(test, itt, 0, 2 * IOMMU_TDP_PTES);
	itt_expect_ordered(test, itt);
}

/*
 * The checks themselves: without the write-back of single entries, a zap
 * must show stale entries at its flush and pages unpinned before it;
 * without the write-back of a whole table, a split must show its table
 * linked before it reached memory.
 */
static void test_checks_catch_no_writeback(struct kunit *test)
{
	struct itt *itt = itt_populated(test);

	itt->skip_wb_len = sizeof(u64);
	itt_zap(itt, 10, 20);
	KUNIT_EXPECT_EQ(test, itt->nflushes, 1);
	KUNIT_EXPECT_EQ(test, itt->stale, 10);
	KUNIT_EXPECT_GT(test, itt->early_unpins, 0);
	KUNIT_EXPECT_EQ(test, itt->early_links, 0);

	itt->skip_wb_len = PAGE_SIZE;
	itt_zap(itt, 600, 601);
	KUNIT_EXPECT_EQ(test, itt->nflushes, 2);
	KUNIT_EXPECT_GT(test, itt->early_links, 0);
}

/* Drop mmu_lock wherever a zap may: as if a vCPU waited for it */
static bool itt_should_yield(struct kvm_iommu_tdp *t)
{
	struct itt *itt = kunit_get_current_test()->priv;

	itt->yields++;
	return true;
}

/* kvm_iommu_tdp_unmap() of @range, as kvm_unmap_gfn_range() calls it */
static void itt_unmap(struct itt *itt, struct kvm_gfn_range *range)
{
	itt->yields = 0;
	itt->nflushes = 0;
	write_lock(&itt->kvm->mmu_lock);
	kvm_iommu_tdp_unmap(itt->kvm, range);
	write_unlock(&itt->kvm->mmu_lock);
}

/* Three yield points, each drained: @nr frames from @gfn, every 2 MiB */
static void itt_expect_yields(struct kunit *test, struct itt *itt, gfn_t gfn,
			      u64 nr)
{
	int i;

	KUNIT_EXPECT_EQ(test, itt->yields, 3);
	KUNIT_EXPECT_EQ(test, itt->nflushes, 3);
	for (i = 0; i < 3; i++)
		itt_expect_flush(test, itt, i, gfn + i * IOMMU_TDP_PTES, nr);
}

/*
 * kvm_unmap_gfn_range() of a range that may block (fewer leaves than a
 * batch of unpins, so that only yields drain): the zap may drop
 * mmu_lock after each 2 MiB, a table of 4 KiB leaves or a 2 MiB leaf, as
 * KVM's own zaps may, and flushes and unpins what it cleared before each
 * such point; one that may not block holds the lock and flushes once.
 */
static void test_unmap_may_block(struct kunit *test)
{
	struct kvm_memory_slot slot = {};
	struct kvm_gfn_range range = {
		.slot = &slot,
		.start = 0,
		.end = 4 * IOMMU_TDP_PTES,
		.attr_filter = KVM_FILTER_SHARED,
	};
	struct itt *itt = itt_new(test);
	int i;

	kunit_activate_static_stub(test, iommu_tdp_should_yield,
				   itt_should_yield);
	/* The stand-in VM has no mm for the refill worker to map from */
	itt->t->blocked = true;
	itt->kvm->arch.iommu_tdp = itt->t;
	for (i = 0; i < 3; i++)
		itt_install(test, itt, i * IOMMU_TDP_PTES, 80, 0);

	itt_unmap(itt, &range);
	KUNIT_EXPECT_EQ(test, itt->yields, 0);
	KUNIT_EXPECT_EQ(test, itt->nflushes, 1);
	itt_expect_flush(test, itt, 0, 0, 2 * IOMMU_TDP_PTES + 80);
	itt_expect_ordered(test, itt);

	for (i = 0; i < 3; i++)
		itt_install(test, itt, i * IOMMU_TDP_PTES, 80, 0);
	range.may_block = true;
	itt_unmap(itt, &range);
	itt_expect_yields(test, itt, 0, 80);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 480);
	KUNIT_EXPECT_EQ(test, itt->t->npinned, 0);
	itt_expect_ordered(test, itt);

	/*
	 * 2 MiB leaves (THP, hugetlb), where no table was (emptied tables
	 * stay): a yield point after each
	 */
	range.start = 8 * IOMMU_TDP_PTES;
	range.end = 12 * IOMMU_TDP_PTES;
	for (i = 0; i < 3; i++)
		itt_install(test, itt, (8 + i) * IOMMU_TDP_PTES, IOMMU_TDP_PTES,
			    0);
	itt_unmap(itt, &range);
	itt_expect_yields(test, itt, 8 * IOMMU_TDP_PTES, IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 480 + 3 * IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->t->npinned, 0);
	KUNIT_EXPECT_EQ(test, atomic_read(&itt->t->zaps), 0);
	itt_expect_ordered(test, itt);
	itt->kvm->arch.iommu_tdp = NULL;
}

/**
 * struct itt_race - A zap that races the retire of the table
 * @itt: the table
 * @test: the test, which the zapping thread runs for too
 * @zapper: that thread
 * @spun: it waited at its first yield point (the test's thread takes
 *	@at_yield's completion back, so that cannot tell)
 * @at_yield: it reached its first yield point, holding mmu_lock
 * @done: its zap returned
 * @contended: at that point, the test's thread waited for mmu_lock
 * @yielded: and the zap was told to drop it, as it would be outside KUnit
 * @zaps_at_retire: invalidations in flight when the retire's own zap
 *	reached a yield point first; -1 if it never did
 */
struct itt_race {
	struct itt *itt;
	struct kunit *test;
	struct task_struct *zapper;
	bool spun;
	struct completion at_yield;
	struct completion done;
	bool contended;
	bool yielded;
	int zaps_at_retire;
};

/* How long the zapper spins, holding mmu_lock, within the soft-lockup limit */
#define ITT_RACE_SPIN_S	5

/* At its first yield point the zapper waits for the retire to contend */
static bool itt_race_should_yield(struct kvm_iommu_tdp *t)
{
	struct itt_race *r = ((struct itt *)kunit_get_current_test()->priv)->race;
	u64 end;

	if (current != r->zapper) {
		if (r->zaps_at_retire < 0)
			r->zaps_at_retire = atomic_read(&t->zaps);
	} else if (!r->spun) {
		r->spun = true;
		complete(&r->at_yield);
		end = ktime_get_ns() + ITT_RACE_SPIN_S * NSEC_PER_SEC;
		while (!rwlock_is_contended(&t->kvm->mmu_lock) &&
		       ktime_get_ns() < end)
			cpu_relax();
		r->contended = rwlock_is_contended(&t->kvm->mmu_lock);
		r->yielded = __iommu_tdp_should_yield(t);
		return r->yielded;
	}
	return __iommu_tdp_should_yield(t);
}

/* The zapping thread: kvm_unmap_gfn_range() of 6 MiB that may block */
static int itt_zapper(void *data)
{
	struct itt_race *r = data;
	struct kvm *kvm = r->itt->kvm;
	struct kvm_memory_slot slot = {};
	struct kvm_gfn_range range = {
		.slot = &slot,
		.start = 0,
		.end = 3 * IOMMU_TDP_PTES,
		.attr_filter = KVM_FILTER_SHARED,
		.may_block = true,
	};

	/* The static stubs and the IOMMU's records are the test's */
	current->kunit_test = r->test;
	write_lock(&kvm->mmu_lock);
	kvm_iommu_tdp_unmap(kvm, &range);
	write_unlock(&kvm->mmu_lock);
	current->kunit_test = NULL;
	complete(&r->done);
	return 0;
}

/*
 * The last IOMMU goes while an invalidation that dropped mmu_lock is in
 * flight, under real contention for the lock on two CPUs: a thread zaps
 * three 2 MiB ranges of 4 KiB leaves and, at its first yield point, waits
 * until this thread contends for mmu_lock in kvm_iommu_tdp_put(), whose
 * retire then empties and blocks the table while the zap is out of the
 * lock. The zap carries on over the emptied table and maps nothing back;
 * the table is freed only after the zap ended; every page is unpinned
 * once, after a flush that covers it.
 */
static void test_retire_races_yielded_zap(struct kunit *test)
{
	struct itt *itt = itt_new(test);
	struct itt_race r = { .itt = itt, .test = test, .zaps_at_retire = -1 };
	struct kvm *kvm = itt->kvm;
	struct task_struct *task;
	unsigned int cpu;
	int i;

	if (num_online_cpus() < 2)
		kunit_skip(test, "needs two CPUs: the zap spins holding mmu_lock");
	/*
	 * The zap spins with mmu_lock held, not preemptible: the retire must
	 * run on another CPU. This thread ends with the case, and its
	 * affinity with it.
	 */
	cpu = raw_smp_processor_id();
	KUNIT_ASSERT_EQ(test, set_cpus_allowed_ptr(current, cpumask_of(cpu)),
			0);
	init_completion(&r.at_yield);
	init_completion(&r.done);
	/* If the zap queued a refill anyway, it would find no memslot */
	kvm->mm = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, kvm->mm);
	RCU_INIT_POINTER(kvm->memslots[0], &kvm->__memslots[0][0]);
	for (i = 0; i < 3; i++)
		itt_install(test, itt, i * IOMMU_TDP_PTES, 80, 0);
	kvm->arch.iommu_tdp = itt->t;
	itt->race = &r;
	kunit_activate_static_stub(test, iommu_tdp_should_yield,
				   itt_race_should_yield);

	task = kthread_create(itt_zapper, &r, "kvm-itt-zapper");
	KUNIT_ASSERT_FALSE(test, IS_ERR(task));
	r.zapper = task;
	kthread_bind(task, cpumask_any_but(cpu_online_mask, cpu));
	wake_up_process(task);
	KUNIT_ASSERT_TRUE_MSG(test,
			      wait_for_completion_timeout(&r.at_yield, 30 * HZ),
			      "the zap never reached a yield point");

	kvm_iommu_tdp_put(kvm, &itt->client);
	/* Freed, once the zap was over */
	itt->t = NULL;
	wait_for_completion(&r.done);

	KUNIT_EXPECT_TRUE_MSG(test, r.contended,
			      "the retire did not wait for mmu_lock within %d s",
			      ITT_RACE_SPIN_S);
	KUNIT_EXPECT_TRUE(test, r.yielded);
	KUNIT_EXPECT_EQ_MSG(test, r.zaps_at_retire, 1,
			    "the retire did not run while the zap was out of mmu_lock");
	KUNIT_EXPECT_NULL(test, kvm->arch.iommu_tdp);
	/* The zap's first 2 MiB, flushed before it dropped the lock */
	itt_expect_flush(test, itt, 0, 0, 80);
	/* The retire's, whole, the last */
	KUNIT_EXPECT_EQ(test, itt->last.gfn, 0);
	KUNIT_EXPECT_EQ(test, itt->last.nr, U64_MAX);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 3 * 80);
	itt_expect_ordered(test, itt);
}

/* Is @page the table @table of @level, or one linked below it? */
static bool itt_linked(u64 *table, int level, u64 *page)
{
	unsigned int i;
	u64 e;

	if (table == page)
		return true;
	for (i = 0; level > PG_LEVEL_4K && i < IOMMU_TDP_PTES; i++) {
		e = READ_ONCE(table[i]);
		if (iommu_tdp_present(e) && !iommu_tdp_is_leaf(e, level) &&
		    itt_linked(__va(e & IOMMU_TDP_ADDR), level - 1, page))
			return true;
	}
	return false;
}

/*
 * Forget the spare tables a populate freed: only linked ones stay.
 * Returns how many it forgot.
 */
static int itt_forget_unlinked(struct itt *itt)
{
	int i = 0, n = 0;

	while (i < itt->ntables) {
		if (itt_linked(itt->t->root, itt->t->fmt.levels,
			       itt->tables[i].page)) {
			i++;
		} else {
			itt->tables[i] = itt->tables[--itt->ntables];
			n++;
		}
	}
	return n;
}

#define ITT_CHUNK_GFN	0x40
#define ITT_CHUNK	16

/* The primary MMU invalidates [@start, @end): KVM's start and its zap */
static void itt_invalidate_start(struct itt *itt, gfn_t start, gfn_t end)
{
	struct kvm_memory_slot slot = {};
	struct kvm_gfn_range range = {
		.slot = &slot,
		.start = start,
		.end = end,
		.attr_filter = KVM_FILTER_SHARED,
	};
	struct kvm *kvm = itt->kvm;

	write_lock(&kvm->mmu_lock);
	kvm_mmu_invalidate_start(kvm);
	kvm_mmu_invalidate_range_add(kvm, start, end);
	kvm_iommu_tdp_unmap(kvm, &range);
	write_unlock(&kvm->mmu_lock);
}

/* It changed the mapping (of the chunk, with @chunk), and KVM's end */
static void itt_invalidate_end(struct itt *itt, bool chunk)
{
	if (chunk)
		itt->gen++;
	write_lock(&itt->kvm->mmu_lock);
	kvm_mmu_invalidate_end(itt->kvm);
	write_unlock(&itt->kvm->mmu_lock);
}

/*
 * The pin finds the chunk's pages of the current generation; an
 * invalidation of the chunk under way then ends, with a new mapping, as
 * it may while the pages are pinned; the first pin runs @pin_race too.
 */
static long itt_pin(struct kvm_iommu_tdp *t, unsigned long hva,
		    unsigned long n, struct page **pages)
{
	struct itt *itt = kunit_get_current_test()->priv;
	unsigned long i;

	if (itt->pin_fails && hva <= itt->pin_fail_hva &&
	    itt->pin_fail_hva < hva + n * PAGE_SIZE) {
		if (hva == itt->pin_fail_hva) {
			itt->pin_fails--;
			return itt->pin_err;
		}
		n = (itt->pin_fail_hva - hva) / PAGE_SIZE;
	}
	/* The frame after @pin_max frames is not RAM that can be pinned */
	if (itt->pin_max && n > itt->pin_max)
		n = itt->pin_max;
	for (i = 0; i < n; i++)
		pages[i] = itt->mem + itt->gen * ITT_CHUNK + i;
	if (itt->open) {
		itt->open = false;
		itt_invalidate_end(itt, true);
	}
	if (itt->pins++)
		return n;
	switch (itt->pin_race) {
	case ITT_PIN_QUIET:
		break;
	case ITT_PIN_OTHER:
		itt_invalidate_start(itt, ITT_CHUNK_GFN - 1, ITT_CHUNK_GFN);
		itt_invalidate_end(itt, false);
		itt_invalidate_start(itt, ITT_CHUNK_GFN + ITT_CHUNK,
				     ITT_CHUNK_GFN + ITT_CHUNK + 1);
		itt_invalidate_end(itt, false);
		break;
	case ITT_PIN_CHUNK:
		itt_invalidate_start(itt, ITT_CHUNK_GFN + ITT_CHUNK - 1,
				     ITT_CHUNK_GFN + ITT_CHUNK);
		itt_invalidate_end(itt, true);
		break;
	}
	return n;
}

/* The populate waits: the invalidation of the chunk under way ends */
static void itt_wait(struct kvm_iommu_tdp *t)
{
	struct itt *itt = kunit_get_current_test()->priv;

	itt->waits++;
	if (itt->open) {
		itt->open = false;
		itt_invalidate_end(itt, true);
	} else {
		/* A wait for nothing: end whatever runs, or it never returns */
		KUNIT_FAIL(kunit_get_current_test(),
			   "waited with no invalidation under way");
		write_lock(&itt->kvm->mmu_lock);
		itt->kvm->mmu_invalidate_in_progress = 0;
		write_unlock(&itt->kvm->mmu_lock);
	}
}

static void itt_unpin_pages(struct page **pages, unsigned long n)
{
	struct itt *itt = kunit_get_current_test()->priv;

	itt->released += n;
}

/* A table the populate can use, which KVM's invalidations reach */
static struct itt *itt_new_populating(struct kunit *test,
				      enum itt_pin_race pin_race)
{
	struct itt *itt = itt_new(test);

	itt->kvm->arch.iommu_tdp = itt->t;
	itt->pin_race = pin_race;
	kunit_activate_static_stub(test, iommu_tdp_pin, itt_pin);
	kunit_activate_static_stub(test, iommu_tdp_wait, itt_wait);
	kunit_activate_static_stub(test, iommu_tdp_release, itt_unpin_pages);
	return itt;
}

/* Populate the chunk; it then maps the pages of generation @gen */
static void itt_expect_populate(struct kunit *test, struct itt *itt,
				unsigned int gen)
{
	struct page **pages;
	long ret;

	pages = kunit_kmalloc_array(test, ITT_CHUNK, sizeof(*pages),
				    GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, pages);
	mutex_lock(&itt->kvm->slots_lock);
	ret = iommu_tdp_populate_chunk(itt->t, ITT_CHUNK_GFN, 0, ITT_CHUNK,
				       pages, NULL);
	mutex_unlock(&itt->kvm->slots_lock);
	itt_forget_unlinked(itt);
	KUNIT_EXPECT_EQ(test, ret, ITT_CHUNK);
	KUNIT_EXPECT_EQ(test, itt->gen, gen);
	itt_expect_4k(test, itt, ITT_CHUNK_GFN, ITT_CHUNK, gen * ITT_CHUNK);
	itt_expect_none(test, itt, ITT_CHUNK_GFN - 1, 1);
	itt_expect_none(test, itt, ITT_CHUNK_GFN + ITT_CHUNK, 1);
	KUNIT_EXPECT_EQ(test, itt->t->npinned, ITT_CHUNK);
	KUNIT_EXPECT_EQ(test, itt->kvm->mmu_invalidate_in_progress, 0);
	itt_expect_ordered(test, itt);
}

/*
 * Invalidations of frames around the chunk end while its pages are pinned:
 * they move mmu_invalidate_seq, which is the VM's, but left the chunk's
 * pages where they were, so the populate maps them, pinned once
 */
static void test_populate_ignores_other_zaps(struct kunit *test)
{
	struct itt *itt = itt_new_populating(test, ITT_PIN_OTHER);

	itt_expect_populate(test, itt, 0);
	KUNIT_EXPECT_EQ(test, itt->pins, 1);
	KUNIT_EXPECT_EQ(test, itt->released, 0);
	KUNIT_EXPECT_EQ(test, itt->waits, 0);
}

/*
 * An invalidation of one frame of the chunk runs while its pages are
 * pinned: the page pinned there left the mm, so the populate maps none of
 * the pages and pins again
 */
static void test_populate_repins_after_zap(struct kunit *test)
{
	struct itt *itt = itt_new_populating(test, ITT_PIN_CHUNK);

	itt_expect_populate(test, itt, 1);
	KUNIT_EXPECT_EQ(test, itt->pins, 2);
	KUNIT_EXPECT_EQ(test, itt->released, ITT_CHUNK);
	KUNIT_EXPECT_EQ(test, itt->waits, 0);
}

/*
 * An invalidation of one frame of the chunk is under way when the
 * populate starts: its zap has passed, and the primary MMU may change the
 * mapping after a pin and end before the pages are mapped. The populate
 * waits for the end and pins once, after it
 */
static void test_populate_waits_for_invalidation(struct kunit *test)
{
	struct itt *itt = itt_new_populating(test, ITT_PIN_QUIET);

	itt_invalidate_start(itt, ITT_CHUNK_GFN + 3, ITT_CHUNK_GFN + 4);
	itt->open = true;
	itt_expect_populate(test, itt, 1);
	KUNIT_EXPECT_EQ(test, itt->waits, 1);
	KUNIT_EXPECT_EQ(test, itt->pins, 1);
	KUNIT_EXPECT_EQ(test, itt->released, 0);
}

/* An IOMMU that walks tables of one type only, or of none (-1) */
struct itt_picky {
	struct kvm_iommu_tdp_client client;
	int walks;
	int asked;
	bool no_snoop;
};

static int itt_picky_check(struct kvm_iommu_tdp_client *client,
			   const struct kvm_iommu_tdp_format *fmt)
{
	struct itt_picky *p = container_of(client, struct itt_picky, client);

	/* A refusal of its own each time: the caller must keep the first */
	if (fmt->type != p->walks ||
	    (p->no_snoop && (fmt->flags & KVM_IOMMU_TDP_EPT_SNOOP)))
		return p->asked++ ? -E2BIG : -EINVAL;
	p->asked++;
	return 0;
}

static void itt_expect_format(struct kunit *test,
			      const struct kvm_iommu_tdp_format *fmt,
			      const struct kvm_iommu_tdp_format *want)
{
	KUNIT_EXPECT_EQ(test, fmt->type, want->type);
	KUNIT_EXPECT_EQ(test, fmt->levels, want->levels);
	KUNIT_EXPECT_EQ(test, fmt->max_leaf_level, want->max_leaf_level);
	KUNIT_EXPECT_EQ(test, fmt->flags, want->flags);
	KUNIT_EXPECT_EQ(test, fmt->leaf_bits, want->leaf_bits);
	KUNIT_EXPECT_EQ(test, fmt->table_bits, want->table_bits);
	KUNIT_EXPECT_EQ(test, fmt->mmio_bits, want->mmio_bits);
}

/*
 * The table is the IOMMUs': in KVM's own format if the IOMMU walks that,
 * in the other, as deep, if it walks only the other, and in KVM's own with
 * the first refusal if it walks neither
 */
static void test_choose_format(struct kunit *test)
{
	struct itt *itt = itt_new(test);
	struct kvm_iommu_tdp_format own = itt->t->fmt, other;
	bool other_ept = own.type != KVM_IOMMU_TDP_EPT;
	struct itt_picky p = { .client.check = itt_picky_check };

	/* EPT comes with the snoop bit in its leaves first */
	iommu_tdp_format_of(&other, other_ept, own.levels, other_ept);
	KUNIT_ASSERT_NE(test, other.type, own.type);

	p.walks = own.type;
	KUNIT_EXPECT_EQ(test, iommu_tdp_choose_format(itt->t, &p.client), 0);
	KUNIT_EXPECT_EQ(test, p.asked, 1);
	itt_expect_format(test, &itt->t->fmt, &own);

	p.walks = other.type;
	p.asked = 0;
	KUNIT_EXPECT_EQ(test, iommu_tdp_choose_format(itt->t, &p.client), 0);
	/* x86-64, then EPT with the snoop bit; or EPT both ways, then x86-64 */
	KUNIT_EXPECT_EQ(test, p.asked, other_ept ? 2 : 3);
	itt_expect_format(test, &itt->t->fmt, &other);

	itt->t->fmt = own;
	p.walks = -1;
	p.asked = 0;
	KUNIT_EXPECT_EQ(test, iommu_tdp_choose_format(itt->t, &p.client),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, p.asked, 3);
	itt_expect_format(test, &itt->t->fmt, &own);

	/* A second stage without snoop control: EPT without the bit */
	p.walks = KVM_IOMMU_TDP_EPT;
	p.no_snoop = true;
	p.asked = 0;
	KUNIT_EXPECT_EQ(test, iommu_tdp_choose_format(itt->t, &p.client), 0);
	KUNIT_EXPECT_EQ(test, p.asked, other_ept ? 3 : 2);
	KUNIT_EXPECT_EQ(test, itt->t->fmt.type, KVM_IOMMU_TDP_EPT);
	KUNIT_EXPECT_FALSE(test, itt->t->fmt.flags & KVM_IOMMU_TDP_EPT_SNOOP);
	KUNIT_EXPECT_FALSE(test, itt->t->fmt.leaf_bits & BIT_ULL(11));
	itt->t->fmt = own;
}

/*
 * A pin that stops short, as pin_user_pages_remote() does at a frame that
 * is not RAM it can pin: what was pinned is mapped, not given back, and
 * the populate says how far it got, for its caller to skip that frame.
 */
static void test_populate_maps_short_pin(struct kunit *test)
{
	struct itt *itt = itt_new_populating(test, ITT_PIN_QUIET);
	struct page **pages;
	long ret;

	pages = kunit_kmalloc_array(test, ITT_CHUNK, sizeof(*pages),
				    GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, pages);
	itt->pin_max = ITT_CHUNK / 2;
	mutex_lock(&itt->kvm->slots_lock);
	ret = iommu_tdp_populate_chunk(itt->t, ITT_CHUNK_GFN, 0, ITT_CHUNK,
				       pages, NULL);
	mutex_unlock(&itt->kvm->slots_lock);
	itt_forget_unlinked(itt);
	KUNIT_EXPECT_EQ(test, ret, ITT_CHUNK / 2);
	itt_expect_4k(test, itt, ITT_CHUNK_GFN, ITT_CHUNK / 2, 0);
	itt_expect_none(test, itt, ITT_CHUNK_GFN + ITT_CHUNK / 2,
			ITT_CHUNK / 2);
	KUNIT_EXPECT_EQ(test, itt->t->npinned, ITT_CHUNK / 2);
	KUNIT_EXPECT_EQ(test, itt->released, 0);
	itt_expect_ordered(test, itt);
}

/* The refill found 16 frames zapped in a memslot across a 2 MiB boundary */
#define ITT_RETRY_GFN	(IOMMU_TDP_PTES - ITT_CHUNK / 2)
#define ITT_RETRY_HVA	0x10000000UL

/*
 * The first populate (no @failed) of a memslot of %ITT_CHUNK frames whose
 * frame @bad fails to pin with @err, for good; returns what it returned.
 * Every pin after the first finds its tables there: no spare table is
 * allocated for nothing.
 */
static int itt_populate_failing(struct kunit *test, struct itt *itt,
				unsigned int bad, int err)
{
	struct kvm_memory_slot slot = {
		.base_gfn = ITT_CHUNK_GFN,
		.npages = ITT_CHUNK,
		.userspace_addr = ITT_RETRY_HVA,
	};
	int ret;

	itt->pin_fails = UINT_MAX;
	itt->pin_fail_hva = ITT_RETRY_HVA + bad * PAGE_SIZE;
	itt->pin_err = err;
	mutex_lock(&itt->kvm->slots_lock);
	ret = iommu_tdp_populate_slot(itt->t, &slot);
	mutex_unlock(&itt->kvm->slots_lock);
	KUNIT_EXPECT_EQ(test, itt_forget_unlinked(itt), 0);
	return ret;
}

/* Of what itt_populate_failing() filled, all but frame @bad is mapped */
static void itt_expect_all_but(struct kunit *test, struct itt *itt,
			       unsigned int bad)
{
	unsigned int i;
	int level;

	for (i = 0; i < ITT_CHUNK; i++)
		KUNIT_EXPECT_EQ_MSG(test,
				    !itt_lookup(itt, ITT_CHUNK_GFN + i, &level),
				    i == bad, "frame %u", i);
	KUNIT_EXPECT_EQ(test, itt->t->npinned, ITT_CHUNK - 1);
	itt_expect_ordered(test, itt);
}

/*
 * A memslot with a frame in the middle that is not RAM a pin can take
 * (-EFAULT): the pin stops short at it, the frame pinned alone fails the
 * same way, and the frames before it and after it are mapped
 */
static void test_populate_skips_one_frame(struct kunit *test)
{
	struct itt *itt = itt_new_populating(test, ITT_PIN_QUIET);

	KUNIT_EXPECT_EQ(test,
			itt_populate_failing(test, itt, ITT_CHUNK / 2, -EFAULT),
			0);
	KUNIT_EXPECT_EQ(test, itt->pins, 2);
	itt_expect_all_but(test, itt, ITT_CHUNK / 2);
}

/*
 * A poisoned page (-EHWPOISON), as the first frame of a run: that frame
 * alone stays unmapped, not the run, and the populate goes on
 */
static void test_populate_skips_poison(struct kunit *test)
{
	struct itt *itt = itt_new_populating(test, ITT_PIN_QUIET);

	KUNIT_EXPECT_EQ(test, itt_populate_failing(test, itt, 0, -EHWPOISON),
			0);
	KUNIT_EXPECT_EQ(test, itt->pins, 1);
	itt_expect_all_but(test, itt, 0);
}

/*
 * A whole 2 MiB of contiguous, aligned memory goes in as one 2 MiB leaf,
 * and the populate allocates only the tables above that leaf
 */
static void test_populate_2m_no_spare(struct kunit *test)
{
	struct itt *itt = itt_new_populating(test, ITT_PIN_QUIET);
	struct page **pages;
	int level = 0;
	long ret;
	u64 e;

	pages = kunit_kmalloc_array(test, IOMMU_TDP_PTES, sizeof(*pages),
				    GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, pages);
	mutex_lock(&itt->kvm->slots_lock);
	ret = iommu_tdp_populate_chunk(itt->t, IOMMU_TDP_PTES, 0,
				       IOMMU_TDP_PTES, pages, NULL);
	mutex_unlock(&itt->kvm->slots_lock);
	KUNIT_EXPECT_EQ(test, itt_forget_unlinked(itt), 0);
	KUNIT_EXPECT_EQ(test, ret, IOMMU_TDP_PTES);
	e = itt_lookup(itt, IOMMU_TDP_PTES, &level);
	KUNIT_EXPECT_EQ(test, level, PG_LEVEL_2M);
	KUNIT_EXPECT_EQ(test, e, iommu_tdp_leaf(itt->t, itt->pfn, PG_LEVEL_2M));
	KUNIT_EXPECT_EQ(test, itt->t->npinned, IOMMU_TDP_PTES);
	itt_expect_ordered(test, itt);
}

/*
 * The first populate, whose pin stops short at a frame whose fault fails
 * for now (-ENOMEM): the frame, pinned alone, fails the same way, and the
 * populate ends with that error (the attach fails), not with the frame
 * left unmapped and no retry to map it
 */
static void test_populate_fails_short_pin(struct kunit *test)
{
	struct itt *itt = itt_new_populating(test, ITT_PIN_QUIET);

	KUNIT_EXPECT_EQ(test, itt_populate_failing(test, itt, 4, -ENOMEM),
			-ENOMEM);
	KUNIT_EXPECT_EQ(test, itt->pins, 1);
	itt_expect_4k(test, itt, ITT_CHUNK_GFN, 4, 0);
	itt_expect_none(test, itt, ITT_CHUNK_GFN + 4, ITT_CHUNK - 4);
	itt_expect_ordered(test, itt);
}

/* The retry is asked to run later: the test runs it instead */
static void itt_retry_later(struct kvm_iommu_tdp *t, unsigned long delay)
{
	struct itt *itt = kunit_get_current_test()->priv;

	itt->retries++;
	itt->retry_delay = delay;
}

/*
 * A table the refill can use: the VM has an mm and one memslot of
 * %ITT_CHUNK frames from @gfn, whose pins fail @fails times at @fail_gfn
 * with @err; the retry is the test's to run
 */
static struct itt *itt_new_refilling(struct kunit *test, gfn_t gfn,
				     gfn_t fail_gfn, unsigned int fails,
				     int err)
{
	struct itt *itt = itt_new_populating(test, ITT_PIN_QUIET);
	struct kvm_memory_slot *slot;
	struct kvm_memslots *slots;

	slots = kunit_kzalloc(test, sizeof(*slots), GFP_KERNEL);
	slot = kunit_kzalloc(test, sizeof(*slot), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, slots);
	KUNIT_ASSERT_NOT_NULL(test, slot);
	slot->base_gfn = gfn;
	slot->npages = ITT_CHUNK;
	slot->userspace_addr = ITT_RETRY_HVA;
	hash_add(slots->id_hash, &slot->id_node[0], slot->id);
	rcu_assign_pointer(itt->kvm->memslots[0], slots);
	itt->kvm->mm = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, itt->kvm->mm);
	strscpy(itt->kvm->stats_id, "kunit");
	kunit_activate_static_stub(test, iommu_tdp_retry_later,
				   itt_retry_later);
	itt->pin_fails = fails;
	itt->pin_fail_hva = ITT_RETRY_HVA + (fail_gfn - gfn) * PAGE_SIZE;
	itt->pin_err = err;
	return itt;
}

/* An invalidation zapped all of the memslot; its refill, run here */
static void itt_refill(struct itt *itt, gfn_t gfn)
{
	itt->t->holes.r[0].start = gfn;
	itt->t->holes.r[0].end = gfn + ITT_CHUNK;
	itt->t->holes.nr = 1;
	iommu_tdp_refill(&itt->t->refill);
}

/*
 * A refill whose pin of the first 2 MiB fails for now, as a long-term pin
 * does with -ENOMEM when it cannot migrate the pages out of a movable
 * zone yet: the next 2 MiB is mapped all the same, and the failed run
 * waits for the retry, which a refill of new ranges does not run sooner;
 * a retry that fails again waits twice as long, and the first that can
 * pin maps the run and asks for no more.
 */
static void test_refill_retries(struct kunit *test)
{
	struct itt *itt = itt_new_refilling(test, ITT_RETRY_GFN, ITT_RETRY_GFN,
					    2, -ENOMEM);
	struct kvm_iommu_tdp *t = itt->t;
	unsigned long first = msecs_to_jiffies(IOMMU_TDP_RETRY_MIN_MS);
	unsigned long second = min(2 * first,
				   msecs_to_jiffies(IOMMU_TDP_RETRY_MAX_MS));

	itt_refill(itt, ITT_RETRY_GFN);
	KUNIT_EXPECT_EQ(test, t->holes.nr, 0);
	KUNIT_EXPECT_EQ(test, itt->pins, 1);
	itt_expect_none(test, itt, ITT_RETRY_GFN, ITT_CHUNK / 2);
	itt_expect_4k(test, itt, IOMMU_TDP_PTES, ITT_CHUNK / 2, 0);
	KUNIT_ASSERT_EQ(test, t->failed.nr, 1);
	KUNIT_EXPECT_EQ(test, t->failed.r[0].start, ITT_RETRY_GFN);
	KUNIT_EXPECT_EQ(test, t->failed.r[0].end, IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->retries, 1);
	KUNIT_EXPECT_EQ(test, itt->retry_delay, first);

	/* A refill with nothing new tries nothing, and leaves the retry */
	iommu_tdp_refill(&t->refill);
	KUNIT_EXPECT_EQ(test, itt->pin_fails, 1);
	KUNIT_EXPECT_EQ(test, itt->retries, 1);
	KUNIT_EXPECT_EQ(test, t->failed.nr, 1);

	/* The retry fails again: twice as long */
	iommu_tdp_retry(&t->retry.work);
	KUNIT_EXPECT_EQ(test, itt->pin_fails, 0);
	KUNIT_EXPECT_EQ(test, t->failed.nr, 1);
	KUNIT_EXPECT_EQ(test, itt->retries, 2);
	KUNIT_EXPECT_EQ(test, itt->retry_delay, second);

	/* Then it can pin: mapped, pinned once, no more retries */
	iommu_tdp_retry(&t->retry.work);
	itt_forget_unlinked(itt);
	KUNIT_EXPECT_EQ(test, itt->pins, 2);
	KUNIT_EXPECT_EQ(test, t->failed.nr, 0);
	KUNIT_EXPECT_EQ(test, t->retry_delay, 0);
	KUNIT_EXPECT_EQ(test, itt->retries, 2);
	itt_expect_4k(test, itt, ITT_RETRY_GFN, ITT_CHUNK / 2, 0);
	itt_expect_4k(test, itt, IOMMU_TDP_PTES, ITT_CHUNK / 2, 0);
	KUNIT_EXPECT_EQ(test, t->npinned, ITT_CHUNK);
	itt_expect_ordered(test, itt);
}

/*
 * A pin that stops short at a frame whose fault failed for now (-ENOMEM):
 * the refill asks that frame alone why, maps the rest of the memslot,
 * and leaves the frame to the retry, which maps it.
 */
static void test_refill_retries_short_pin(struct kunit *test)
{
	gfn_t bad = ITT_CHUNK_GFN + 4;
	struct itt *itt = itt_new_refilling(test, ITT_CHUNK_GFN, bad, 1,
					    -ENOMEM);
	struct kvm_iommu_tdp *t = itt->t;

	itt_refill(itt, ITT_CHUNK_GFN);
	itt_forget_unlinked(itt);
	itt_expect_4k(test, itt, ITT_CHUNK_GFN, 4, 0);
	itt_expect_none(test, itt, bad, 1);
	itt_expect_4k(test, itt, bad + 1, ITT_CHUNK - 5, 0);
	KUNIT_ASSERT_EQ(test, t->failed.nr, 1);
	KUNIT_EXPECT_EQ(test, t->failed.r[0].start, bad);
	KUNIT_EXPECT_EQ(test, t->failed.r[0].end, bad + 1);
	KUNIT_EXPECT_EQ(test, itt->retries, 1);

	iommu_tdp_retry(&t->retry.work);
	itt_forget_unlinked(itt);
	itt_expect_4k(test, itt, bad, 1, 0);
	KUNIT_EXPECT_EQ(test, t->failed.nr, 0);
	KUNIT_EXPECT_EQ(test, itt->retries, 1);
	KUNIT_EXPECT_EQ(test, t->npinned, ITT_CHUNK);
	itt_expect_ordered(test, itt);
}

/*
 * A pin that fails for good (fsdax memory: -EOPNOTSUPP): the run stays
 * unmapped, as memory that cannot be pinned does, with no retry; the
 * rest is mapped.
 */
static void test_refill_skips_permanent(struct kunit *test)
{
	struct itt *itt = itt_new_refilling(test, ITT_RETRY_GFN, ITT_RETRY_GFN,
					    1, -EOPNOTSUPP);
	struct kvm_iommu_tdp *t = itt->t;

	itt_refill(itt, ITT_RETRY_GFN);
	itt_forget_unlinked(itt);
	itt_expect_none(test, itt, ITT_RETRY_GFN, ITT_CHUNK / 2);
	itt_expect_4k(test, itt, IOMMU_TDP_PTES, ITT_CHUNK / 2, 0);
	KUNIT_EXPECT_EQ(test, t->failed.nr, 0);
	KUNIT_EXPECT_EQ(test, itt->retries, 0);
	KUNIT_EXPECT_EQ(test, t->retry_delay, 0);
}

/*
 * A memslot created while the table exists is mapped before the VMM's
 * ioctl returns; what cannot be for now goes to the retry as a refill's
 * does, and the rest is mapped.
 */
static void test_commit_slot_retries(struct kunit *test)
{
	struct itt *itt = itt_new_refilling(test, ITT_RETRY_GFN, ITT_RETRY_GFN,
					    1, -ENOMEM);
	struct kvm_iommu_tdp *t = itt->t;
	struct kvm_memory_slot *slot;
	int bkt;

	mutex_lock(&itt->kvm->slots_lock);
	kvm_for_each_memslot(slot, bkt, kvm_memslots(itt->kvm))
		kvm_iommu_tdp_commit_slot(itt->kvm, slot, KVM_MR_CREATE);
	mutex_unlock(&itt->kvm->slots_lock);
	itt_forget_unlinked(itt);
	itt_expect_none(test, itt, ITT_RETRY_GFN, ITT_CHUNK / 2);
	itt_expect_4k(test, itt, IOMMU_TDP_PTES, ITT_CHUNK / 2, 0);
	KUNIT_ASSERT_EQ(test, t->failed.nr, 1);
	KUNIT_EXPECT_EQ(test, t->failed.r[0].start, ITT_RETRY_GFN);
	KUNIT_EXPECT_EQ(test, itt->retries, 1);

	iommu_tdp_retry(&t->retry.work);
	itt_forget_unlinked(itt);
	itt_expect_4k(test, itt, ITT_RETRY_GFN, ITT_CHUNK / 2, 0);
	KUNIT_EXPECT_EQ(test, t->failed.nr, 0);
	KUNIT_EXPECT_EQ(test, t->npinned, ITT_CHUNK);
}

/*
 * A zap from an MMU-notifier invalidation flushes at once and keeps the
 * pins until no invalidation is under way: KSM, reclaim and migration look
 * for them after the notifier, and must find them. The pages leave
 * npinned (and the charge) at once, as a refill may pin them again
 * meanwhile, so what they keep is bounded (IOMMU_TDP_DEFER_FRAMES, two
 * 2 MiB leaves' worth): beyond it, pages are unpinned at once. A zap with
 * no invalidation under way (a memslot's deletion) unpins at once.
 */
static void test_invalidation_keeps_pins(struct kunit *test)
{
	struct kvm_memory_slot slot = {};
	struct kvm_gfn_range range = {
		.slot = &slot,
		.start = 10,
		.end = 20,
		.attr_filter = KVM_FILTER_SHARED,
	};
	struct itt *itt = itt_populated(test);
	struct kvm *kvm = itt->kvm;
	unsigned long npinned;

	/* A second 2 MiB leaf, so that two fill what may be kept */
	itt_install(test, itt, 2 * IOMMU_TDP_PTES, IOMMU_TDP_PTES, 0);
	npinned = itt->t->npinned;
	/* The stand-in VM has no mm for the refill worker to map from */
	itt->t->blocked = true;
	kvm->arch.iommu_tdp = itt->t;

	/* The two 2 MiB leaves: exactly the frames that may be kept */
	itt_invalidate_start(itt, IOMMU_TDP_PTES, 3 * IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->nflushes, 1);
	itt_expect_none(test, itt, IOMMU_TDP_PTES, 2 * IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 0);
	KUNIT_EXPECT_EQ(test, itt->t->deferred_frames, IOMMU_TDP_DEFER_FRAMES);
	/* Another starts before the first ends: no room, unpinned at once */
	itt_invalidate_start(itt, range.start, range.end);
	KUNIT_EXPECT_EQ(test, itt->nflushes, 2);
	itt_expect_none(test, itt, 10, 10);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 10);
	KUNIT_EXPECT_EQ(test, itt->t->npinned,
			npinned - 10 - 2 * IOMMU_TDP_PTES);

	itt_invalidate_end(itt, false);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 10);
	itt_invalidate_end(itt, false);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 10 + 2 * IOMMU_TDP_PTES);
	KUNIT_EXPECT_EQ(test, itt->t->nr_deferred, 0);
	KUNIT_EXPECT_EQ(test, itt->t->deferred_frames, 0);
	itt_expect_ordered(test, itt);

	/* Room again: a few frames are kept */
	itt_invalidate_start(itt, 30, 40);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 10 + 2 * IOMMU_TDP_PTES);
	itt_invalidate_end(itt, false);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 20 + 2 * IOMMU_TDP_PTES);
	itt_expect_ordered(test, itt);

	range.start = 50;
	range.end = 60;
	itt_unmap(itt, &range);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 30 + 2 * IOMMU_TDP_PTES);
	itt_expect_ordered(test, itt);
	kvm->arch.iommu_tdp = NULL;
}

/*
 * Frames from 2^(9 * levels) on, which a memslot may reach where the host's
 * physical addresses are wider than the table translates: never mapped at
 * the low frames that the index would wrap around to
 */
static void test_beyond_reach(struct kunit *test)
{
	struct itt *itt = itt_new_populating(test, ITT_PIN_QUIET);
	gfn_t max = 1ULL << (9 * itt->t->fmt.levels);
	struct page **pages;
	long ret;

	pages = kunit_kmalloc_array(test, ITT_CHUNK, sizeof(*pages),
				    GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, pages);
	mutex_lock(&itt->kvm->slots_lock);
	ret = iommu_tdp_populate_chunk(itt->t, max + ITT_CHUNK_GFN, 0,
				       ITT_CHUNK, pages, NULL);
	mutex_unlock(&itt->kvm->slots_lock);
	itt_forget_unlinked(itt);
	KUNIT_EXPECT_EQ(test, ret, -EFAULT);
	KUNIT_EXPECT_EQ(test, itt->pins, 0);
	itt_expect_none(test, itt, ITT_CHUNK_GFN, ITT_CHUNK);
	itt_expect_ordered(test, itt);
}

/*
 * Blocking empties the whole table, which for a VM of many GiB of 4 KiB
 * pages takes long: it drops mmu_lock on the way, after a drain, as KVM's
 * own zaps do, and keeps the table from being freed meanwhile
 */
static void test_block_may_yield(struct kunit *test)
{
	struct itt *itt = itt_new(test);
	int i;

	kunit_activate_static_stub(test, iommu_tdp_should_yield,
				   itt_should_yield);
	itt->kvm->arch.iommu_tdp = itt->t;
	for (i = 0; i < 3; i++)
		itt_install(test, itt, i * IOMMU_TDP_PTES, 80, 0);
	itt->yields = 0;
	kvm_iommu_tdp_block(itt->kvm);
	KUNIT_EXPECT_EQ(test, itt->yields, 3);
	KUNIT_EXPECT_EQ(test, itt->unpinned, 3 * 80);
	KUNIT_EXPECT_EQ(test, itt->t->npinned, 0);
	KUNIT_EXPECT_TRUE(test, itt->t->blocked);
	KUNIT_EXPECT_EQ(test, atomic_read(&itt->t->zaps), 0);
	itt_expect_none(test, itt, 0, 3 * IOMMU_TDP_PTES);
	itt_expect_ordered(test, itt);
	itt->kvm->arch.iommu_tdp = NULL;
}

/* @pages pages of the test's own mm, mapped with @prot and @flags */
static unsigned long itt_mmap(struct kunit *test, unsigned long pages,
			      unsigned long prot, unsigned long flags)
{
	unsigned long addr = kunit_vm_mmap(test, NULL, 0, pages * PAGE_SIZE,
					   prot, flags, 0);

	KUNIT_ASSERT_FALSE(test, !addr || IS_ERR_VALUE(addr));
	return addr;
}

/* A memslot of @npages at @hva, @flags */
static struct kvm_memory_slot itt_slot(unsigned long hva, unsigned long npages,
				       u32 flags)
{
	return (struct kvm_memory_slot){
		.base_gfn = ITT_CHUNK_GFN, .npages = npages,
		.userspace_addr = hva, .flags = flags,
	};
}

/* What mapping a memslot of @npages at @hva, @flags, would charge */
static long itt_charge(struct itt *itt, unsigned long hva,
		       unsigned long npages, u32 flags)
{
	struct kvm_memory_slot slot = itt_slot(hva, npages, flags);

	return iommu_tdp_slot_charge(itt->t, &slot);
}

/* kvm_iommu_tdp_prepare_slot() for a memslot of @npages at @hva */
static int itt_prepare(struct itt *itt, unsigned long hva,
		       unsigned long npages, u32 flags,
		       enum kvm_mr_change change)
{
	struct kvm_memory_slot slot = itt_slot(hva, npages, flags);

	return kvm_iommu_tdp_prepare_slot(itt->kvm, &slot, change);
}

/*
 * A memslot created or moved while the table exists must fit in the
 * RLIMIT_MEMLOCK it is charged to. Its memory that a long-term pin for
 * writing can take counts (private and writable, shared shmem), faulted
 * in or not; private read-only memory does not, nor a read-only
 * memslot. The limit is checked at its extremes only, as other tasks of
 * the user may charge meanwhile: none refuses what counts, 0 refuses it
 * for a creation and a move, never for a deletion or a change of flags,
 * nor for an owner with CAP_IPC_LOCK.
 */
static void test_prepare_slot_charge(struct kunit *test)
{
	struct itt *itt = itt_new(test);
	struct kvm_iommu_tdp *t = itt->t;
	unsigned long priv, shared, ro;

	priv = itt_mmap(test, 16, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS);
	shared = itt_mmap(test, 8, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS);
	ro = itt_mmap(test, 8, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
	/* Its first page faulted in, the rest not */
	KUNIT_ASSERT_EQ(test, clear_user((void __user *)priv, PAGE_SIZE), 0);
	itt->kvm->mm = current->mm;
	mmget(current->mm);
	strscpy(itt->kvm->stats_id, "kunit");
	itt->kvm->arch.iommu_tdp = t;

	KUNIT_EXPECT_EQ(test, itt_charge(itt, priv, 16, 0), 16);
	KUNIT_EXPECT_EQ(test, itt_charge(itt, priv + PAGE_SIZE, 15, 0), 15);
	KUNIT_EXPECT_EQ(test, itt_charge(itt, shared, 8, 0), 8);
	KUNIT_EXPECT_EQ(test, itt_charge(itt, ro, 8, 0), 0);
	KUNIT_EXPECT_EQ(test, itt_charge(itt, priv, 16, KVM_MEM_READONLY), 0);

	t->user = get_uid(current_user());
	t->limit = ULONG_MAX;
	KUNIT_EXPECT_EQ(test, itt_prepare(itt, priv, 16, 0, KVM_MR_CREATE), 0);
	KUNIT_EXPECT_EQ(test, itt_prepare(itt, shared, 8, 0, KVM_MR_MOVE), 0);
	t->limit = 0;
	KUNIT_EXPECT_EQ(test, itt_prepare(itt, priv, 16, 0, KVM_MR_CREATE),
			-ENOMEM);
	KUNIT_EXPECT_EQ(test, itt_prepare(itt, shared, 8, 0, KVM_MR_MOVE),
			-ENOMEM);
	KUNIT_EXPECT_EQ(test, itt_prepare(itt, ro, 8, 0, KVM_MR_CREATE), 0);
	KUNIT_EXPECT_EQ(test, itt_prepare(itt, priv, 16, 0,
					  KVM_MR_FLAGS_ONLY), 0);
	KUNIT_EXPECT_EQ(test, itt_prepare(itt, priv, 16, 0, KVM_MR_DELETE), 0);

	free_uid(t->user);
	t->user = NULL;
	KUNIT_EXPECT_EQ(test, itt_prepare(itt, priv, 16, 0, KVM_MR_CREATE), 0);
	itt->kvm->arch.iommu_tdp = NULL;
}

static struct kunit_case iommu_tdp_test_cases[] = {
	KUNIT_CASE_PARAM(test_install_written_back, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_zap_range, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_zap_splits, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_zap_drops_references, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_zap_nothing, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_populate_finds_holes, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_zap_batches, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_empty_flushes_all, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_checks_catch_no_writeback, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_unmap_may_block, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_retire_races_yielded_zap, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_choose_format, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_populate_ignores_other_zaps,
			 itt_format_gen_params),
	KUNIT_CASE_PARAM(test_populate_repins_after_zap, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_populate_waits_for_invalidation,
			 itt_format_gen_params),
	KUNIT_CASE_PARAM(test_invalidation_keeps_pins, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_refill_retries, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_refill_retries_short_pin, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_refill_skips_permanent, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_commit_slot_retries, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_populate_maps_short_pin, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_populate_skips_one_frame, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_populate_skips_poison, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_populate_fails_short_pin, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_populate_2m_no_spare, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_beyond_reach, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_block_may_yield, itt_format_gen_params),
	KUNIT_CASE_PARAM(test_prepare_slot_charge, itt_format_gen_params),
	{}
};

static struct kunit_suite iommu_tdp_test_suite = {
	.name = "kvm_iommu_tdp",
	.test_cases = iommu_tdp_test_cases,
};

kunit_test_suite(iommu_tdp_test_suite);
