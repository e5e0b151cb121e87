/* test_refdrv_iommu.c -- the reference driver with VIRTIO_F_ACCESS_PLATFORM ("Reserved
 * Feature Bits"): it maps its rings and buffers in IOMMU page tables it builds and hands
 * the device IOVAs; without the feature nothing is translated.
 *
 * An untimed rig (tests/common/host_rig.h): refdrv_run drives the device kernel (vdev)
 * through its host ops. Guest memory is one array. When the device has negotiated
 * ACCESS_PLATFORM, each of its DMA accesses is translated by an IOMMU (model/iommu) in
 * the PASID of the queue it serves, page walks reading the same array -- as the
 * platform's root complex does; otherwise addresses are physical. The device runs until
 * it is idle after every MMIO write, every empty poll and whenever the driver waits for
 * an interrupt.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/host_rig.h"
#include "iommu.h"
#include "iopt.h"
#include "refdrv.h"
#include "vdev.h"

#define MEM_BASE     0x40000000ull /* 2 MiB aligned */
#define MEM_SIZE     (32ull << 20)
#define IOVA_OFFSET  (1ull << 40)
#define PAGE_4K      4096ull
#define PAGE_2M      (2ull << 20)
#define FRAMES       600u
#define QUEUE_SIZE   64u

/* The default device; RX and TX DMA tagged with these PASIDs. */
static struct host_rig *rig_new(uint64_t mem_base, uint64_t mem_size, uint32_t rx_pasid, uint32_t tx_pasid)
{
    struct host_rig *r = host_rig_new(mem_base, mem_size, NULL);
    cr_assert_not_null(r);
    r->pasid[VNET_QUEUE_RX] = rx_pasid;
    r->pasid[VNET_QUEUE_TX] = tx_pasid;
    return r;
}

static void rig_free(struct host_rig *r)
{
    cr_expect_eq(r->msi_misaddressed, 0, "MSI-X messages not at HOST_RIG_MSI_BASE");
    host_rig_free(r);
}

static struct refdrv_params params(uint64_t page, uint32_t rx_pasid, uint32_t tx_pasid,
                                   enum refdrv_tx_layout layout)
{
    const uint32_t sizes[] = {64, 1514, 300, 60};
    struct refdrv_params p = host_rig_refdrv_params(FRAMES, sizes, 4, 7);
    p.queue_size_entries = QUEUE_SIZE;
    p.tx_layout = layout;
    p.iova_offset = IOVA_OFFSET;
    p.iommu_page_bytes = page;
    p.queue_pasid[0] = rx_pasid;
    p.queue_pasid[1] = tx_pasid;
    p.queue_pasid[2] = rx_pasid;
    return p;
}

/* The descriptor ring of queue q as the device addressed it: its first access there
 * (a descriptor's flags) rounded down to the ring's 4 KiB alignment. */
static uint64_t ring_base(const struct host_rig *r, uint16_t q)
{
    return r->first_addr[q][VS_DMA_DESC_READ] & ~(PAGE_4K - 1u);
}

/* Run the driver (no latency samples). */
static enum refdrv_result run(struct host_rig *r, const struct refdrv_params *p, struct refdrv_stats *st)
{
    memset(st, 0, sizeof *st);
    return refdrv_run(&r->host, p, st);
}

/* The driver's table of one PASID, read back from guest memory. */
static struct iopt view(const struct host_rig *r, uint64_t root)
{
    struct iopt pt;
    memset(&pt, 0, sizeof pt);
    pt.mem = r->mem;
    pt.mem_base = r->mem_base;
    pt.mem_size = r->mem_size;
    pt.root = root;
    return pt;
}

static void expect_all_frames_back(const struct host_rig *r, enum refdrv_result res,
                                   const struct refdrv_stats *st)
{
    cr_assert_eq(res, REFDRV_OK, "result %s", refdrv_result_name(res));
    cr_expect_eq(st->tx_frames, FRAMES);
    cr_expect_eq(st->rx_frames, FRAMES);
    cr_expect_eq(st->rx_bad_payload, 0);
    cr_expect_eq(r->out_of_range, 0);
    /* The driver left the device reset. */
    cr_expect_eq(r->dev.tp.vpci.status, 0);
}

/* Every device access was translated, and the IOMMU walked, hit and never faulted. */
static void expect_translated(const struct host_rig *r, const struct refdrv_stats *st)
{
    cr_expect_gt(r->translated, 0);
    cr_expect_eq(r->physical, 0);
    cr_expect_eq(r->faults, 0);
    cr_expect_eq(r->mmu.fault_count, 0, "first fault: iova %#llx pasid %u reason %s",
                 (unsigned long long)r->mmu.fault_log[0].iova, r->mmu.fault_log[0].pasid,
                 vs_reason_name(r->mmu.fault_log[0].reason));
    cr_expect_eq(r->mmu.stats.total.faults, 0);
    cr_expect_gt(r->mmu.stats.total.walks, 0);
    cr_expect_gt(r->mmu.stats.total.hits, 0);
    cr_expect_gt(st->iommu_pages_mapped, 0);
    cr_expect_gt(st->iommu_table_pages, 0);
}

/* The device was given IOVAs: ring, buffers (and indirect tables) of both queues. */
static void expect_iovas(const struct host_rig *r)
{
    const uint64_t lo = r->mem_base + IOVA_OFFSET, hi = lo + r->mem_size;
    const uint64_t seen[] = {
        r->first_addr[VNET_QUEUE_RX][VS_DMA_DESC_READ], r->first_addr[VNET_QUEUE_RX][VS_DMA_BUF_WRITE],
        r->first_addr[VNET_QUEUE_RX][VS_DMA_USED_WRITE], r->first_addr[VNET_QUEUE_RX][VS_DMA_EVENT_READ],
        r->first_addr[VNET_QUEUE_TX][VS_DMA_DESC_READ], r->first_addr[VNET_QUEUE_TX][VS_DMA_BUF_READ],
        r->first_addr[VNET_QUEUE_TX][VS_DMA_USED_WRITE], r->first_addr[VNET_QUEUE_TX][VS_DMA_EVENT_READ],
    };
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++)
        cr_expect(seen[i] >= lo && seen[i] < hi, "access %zu at %#llx is not an IOVA of guest memory",
                  i, (unsigned long long)seen[i]);
}

/* Read back the mappings: page size, permissions (TX buffers read-only, RX buffers and
 * rings writable), IOVA = PA + offset, and the tables themselves not reachable. */
static void expect_mappings(const struct host_rig *r, uint64_t rx_root, uint64_t tx_root, uint64_t page)
{
    struct iopt rx = view(r, rx_root), tx = view(r, tx_root);
    uint64_t pa, size;
    bool w;

    const uint64_t txbuf = r->first_addr[VNET_QUEUE_TX][VS_DMA_BUF_READ];
    cr_assert(iopt_resolve(&tx, txbuf, &pa, &size, &w));
    cr_expect_eq(pa, txbuf - IOVA_OFFSET);
    cr_expect_eq(size, page);
    cr_expect_not(w, "TX buffers are mapped read-only");

    const uint64_t rxbuf = r->first_addr[VNET_QUEUE_RX][VS_DMA_BUF_WRITE];
    cr_assert(iopt_resolve(&rx, rxbuf, &pa, &size, &w));
    cr_expect_eq(pa, rxbuf - IOVA_OFFSET);
    cr_expect_eq(size, page);
    cr_expect(w, "RX buffers are mapped writable");

    for (unsigned q = 0; q < 2; q++) {
        const uint64_t ring = r->first_addr[q][VS_DMA_USED_WRITE];
        cr_assert(iopt_resolve(q == VNET_QUEUE_RX ? &rx : &tx, ring, &pa, NULL, &w));
        cr_expect_eq(pa, ring - IOVA_OFFSET);
        cr_expect(w, "rings are mapped writable");
    }

    /* No page mapped for the device covers a page table. */
    cr_expect_not(iopt_resolve(&rx, rx_root + IOVA_OFFSET, NULL, NULL, NULL));
    cr_expect_not(iopt_resolve(&tx, tx_root + IOVA_OFFSET, NULL, NULL, NULL));
}

static void run_one_space(uint64_t page, enum refdrv_tx_layout layout, enum refdrv_mode mode)
{
    struct host_rig *r = rig_new(MEM_BASE, MEM_SIZE, 0, 0);
    struct refdrv_params p = params(page, 0, 0, layout);
    p.mode = mode;
    struct refdrv_stats st;
    enum refdrv_result res = run(r, &p, &st);

    expect_all_frames_back(r, res, &st);
    expect_translated(r, &st);
    expect_iovas(r);
    cr_assert_eq(r->nroots, 1, "one address space for both queues");
    cr_expect_eq(r->roots[0].pasid, 0);
    cr_expect(host_rig_in_mem(r, r->roots[0].root, IOMMU_TABLE_SIZE));
    cr_expect_gt(r->mmu.stats.pasid[0].lookups, 0);
    expect_mappings(r, r->roots[0].root, r->roots[0].root, page);
    rig_free(r);
}

TestSuite(refdrv_iommu);

/* 4 KiB pages, one PASID for RX and TX, every TX layout (indirect: the device reads the
 * indirect tables at IOVAs too). */
Test(refdrv_iommu, loopback_4k_one_pasid)
{
    run_one_space(PAGE_4K, REFDRV_TX_ONE_DESC, REFDRV_MODE_INTERRUPT);
    run_one_space(PAGE_4K, REFDRV_TX_CHAIN, REFDRV_MODE_INTERRUPT);
    run_one_space(PAGE_4K, REFDRV_TX_INDIRECT, REFDRV_MODE_INTERRUPT);
    run_one_space(PAGE_4K, REFDRV_TX_ONE_DESC, REFDRV_MODE_POLL);
}

Test(refdrv_iommu, loopback_2m_one_pasid)
{
    run_one_space(PAGE_2M, REFDRV_TX_ONE_DESC, REFDRV_MODE_INTERRUPT);
    run_one_space(PAGE_2M, REFDRV_TX_CHAIN, REFDRV_MODE_INTERRUPT);
    run_one_space(PAGE_2M, REFDRV_TX_INDIRECT, REFDRV_MODE_INTERRUPT);
    run_one_space(PAGE_2M, REFDRV_TX_ONE_DESC, REFDRV_MODE_POLL);
}

/* The layout, exactly. One PASID, queues of 64, one descriptor per frame. The rings
 * and the RX buffers (64 x 2048 B) are one read/write stretch, the TX buffers (64 x
 * 1536 B) a read-only one. 2 MiB pages: 2 pages; tables: root, one level 3, one level 2
 * (2 MiB leaves need no level 1). 4 KiB pages: RX ring (1 KiB + event areas) one page,
 * TX ring one page, RX buffers 32, TX buffers 24 (from a fresh page) = 58 pages, all in
 * one 2 MiB stretch: root + level 3 + level 2 + one level 1 = 4 tables. */
Test(refdrv_iommu, layout_page_and_table_counts)
{
    const uint64_t pages[] = {PAGE_2M, PAGE_4K};
    const uint64_t want_pages[] = {2, 58}, want_tables[] = {3, 4};
    for (unsigned i = 0; i < 2; i++) {
        struct host_rig *r = rig_new(MEM_BASE, MEM_SIZE, 0, 0);
        struct refdrv_params p = params(pages[i], 0, 0, REFDRV_TX_ONE_DESC);
        struct refdrv_stats st;
        enum refdrv_result res = run(r, &p, &st);
        expect_all_frames_back(r, res, &st);
        cr_expect_eq(st.iommu_pages_mapped, want_pages[i], "page %llu: %llu pages mapped",
                     (unsigned long long)pages[i], (unsigned long long)st.iommu_pages_mapped);
        cr_expect_eq(st.iommu_table_pages, want_tables[i], "page %llu: %llu tables",
                     (unsigned long long)pages[i], (unsigned long long)st.iommu_table_pages);
        /* The first region (RX ring) starts at the bottom of guest memory. */
        cr_expect_eq(ring_base(r, VNET_QUEUE_RX), MEM_BASE + IOVA_OFFSET);
        rig_free(r);
    }
}

/* RX and TX in different PASIDs (2 MiB pages on a guest memory base that is not 2 MiB
 * aligned, too): two address spaces installed in queue order, each queue translated in
 * its own, and neither reaches the other queue's ring or buffers. */
static void run_two_spaces(uint64_t mem_base, uint64_t page, enum refdrv_tx_layout layout)
{
    const uint32_t rx_pasid = 3, tx_pasid = 5;
    struct host_rig *r = rig_new(mem_base, MEM_SIZE, rx_pasid, tx_pasid);
    struct refdrv_params p = params(page, rx_pasid, tx_pasid, layout);
    struct refdrv_stats st;
    enum refdrv_result res = run(r, &p, &st);

    expect_all_frames_back(r, res, &st);
    expect_translated(r, &st);
    expect_iovas(r);
    cr_assert_eq(r->nroots, 2);
    cr_expect_eq(r->roots[0].pasid, rx_pasid);
    cr_expect_eq(r->roots[1].pasid, tx_pasid);
    cr_expect_neq(r->roots[0].root, r->roots[1].root);
    cr_expect_gt(r->mmu.stats.pasid[rx_pasid].lookups, 0);
    cr_expect_gt(r->mmu.stats.pasid[tx_pasid].lookups, 0);
    cr_expect_eq(r->mmu.stats.pasid[0].lookups, 0);
    expect_mappings(r, r->roots[0].root, r->roots[1].root, page);

    struct iopt rx = view(r, r->roots[0].root), tx = view(r, r->roots[1].root);
    const uint64_t tx_addrs[] = {r->first_addr[VNET_QUEUE_TX][VS_DMA_DESC_READ],
                                 r->first_addr[VNET_QUEUE_TX][VS_DMA_BUF_READ]};
    const uint64_t rx_addrs[] = {r->first_addr[VNET_QUEUE_RX][VS_DMA_DESC_READ],
                                 r->first_addr[VNET_QUEUE_RX][VS_DMA_BUF_WRITE]};
    for (unsigned i = 0; i < 2; i++) {
        cr_expect_not(iopt_resolve(&rx, tx_addrs[i], NULL, NULL, NULL), "RX space maps TX memory");
        cr_expect_not(iopt_resolve(&tx, rx_addrs[i], NULL, NULL, NULL), "TX space maps RX memory");
    }
    rig_free(r);
}

Test(refdrv_iommu, loopback_4k_pasid_per_queue)
{
    run_two_spaces(MEM_BASE, PAGE_4K, REFDRV_TX_ONE_DESC);
    run_two_spaces(MEM_BASE, PAGE_4K, REFDRV_TX_INDIRECT);
}

Test(refdrv_iommu, loopback_2m_pasid_per_queue)
{
    run_two_spaces(MEM_BASE, PAGE_2M, REFDRV_TX_ONE_DESC);
    run_two_spaces(MEM_BASE, PAGE_2M, REFDRV_TX_INDIRECT);
    run_two_spaces(MEM_BASE + 0x3000, PAGE_2M, REFDRV_TX_CHAIN);
}

/* Without ACCESS_PLATFORM nothing is translated and the device gets physical addresses,
 * whatever the IOMMU parameters say; the layout starts with the RX ring at the bottom
 * of guest memory as before. */
Test(refdrv_iommu, declined_no_translation)
{
    struct host_rig *r = rig_new(MEM_BASE, MEM_SIZE, 3, 5);
    struct refdrv_params p = params(PAGE_2M, 3, 5, REFDRV_TX_INDIRECT);
    vs_feature_set(&p.decline, VIRTIO_F_ACCESS_PLATFORM_BIT);
    struct refdrv_stats st;
    enum refdrv_result res = run(r, &p, &st);

    expect_all_frames_back(r, res, &st);
    cr_expect_eq(r->translated, 0);
    cr_expect_gt(r->physical, 0);
    cr_expect_eq(r->nroots, 0);
    cr_expect_eq(r->mmu.stats.requests, 0);
    cr_expect_eq(st.iommu_pages_mapped, 0);
    cr_expect_eq(st.iommu_table_pages, 0);
    cr_expect_eq(ring_base(r, VNET_QUEUE_RX), MEM_BASE);
    cr_expect(host_rig_in_mem(r, r->first_addr[VNET_QUEUE_TX][VS_DMA_BUF_READ], 1));
    cr_expect(host_rig_in_mem(r, r->first_addr[VNET_QUEUE_RX][VS_DMA_BUF_WRITE], 1));
    rig_free(r);
}

/* A platform without the hook: the driver cannot program the IOMMU, so it does not
 * accept ACCESS_PLATFORM (the device, which does not insist, then uses physical
 * addresses). */
Test(refdrv_iommu, no_hook_declines_feature)
{
    struct host_rig *r = rig_new(MEM_BASE, MEM_SIZE, 0, 0);
    r->host.iommu_set_root = NULL;
    struct refdrv_params p = params(PAGE_4K, 0, 0, REFDRV_TX_ONE_DESC);
    struct refdrv_stats st;
    enum refdrv_result res = run(r, &p, &st);

    expect_all_frames_back(r, res, &st);
    cr_expect_eq(r->translated, 0);
    cr_expect_gt(r->physical, 0);
    cr_expect_eq(ring_base(r, VNET_QUEUE_RX), MEM_BASE);
    rig_free(r);
}

/* IOVAs the driver cannot form (offset not a multiple of the page, or IOVAs reaching
 * 2^48) or a page size the format lacks: declined the same way. */
Test(refdrv_iommu, unusable_parameters_decline_feature)
{
    struct {
        uint64_t offset, page;
    } bad[] = {
        {PAGE_4K, PAGE_2M},
        {(1ull << 48) - (16ull << 20), PAGE_4K},
        {IOVA_OFFSET, 8192},
    };
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct host_rig *r = rig_new(MEM_BASE, MEM_SIZE, 0, 0);
        struct refdrv_params p = params(bad[i].page, 0, 0, REFDRV_TX_ONE_DESC);
        p.iova_offset = bad[i].offset;
        struct refdrv_stats st;
        enum refdrv_result res = run(r, &p, &st);
        expect_all_frames_back(r, res, &st);
        cr_expect_eq(r->translated, 0, "case %u", i);
        cr_expect_eq(r->nroots, 0, "case %u", i);
        rig_free(r);
    }
}

/* iommu_page_bytes 0 (parameters from before the IOMMU existed) means 4 KiB. */
Test(refdrv_iommu, page_size_zero_is_4k)
{
    struct host_rig *r = rig_new(MEM_BASE, MEM_SIZE, 0, 0);
    struct refdrv_params p = params(0, 0, 0, REFDRV_TX_ONE_DESC);
    struct refdrv_stats st;
    enum refdrv_result res = run(r, &p, &st);

    expect_all_frames_back(r, res, &st);
    expect_translated(r, &st);
    cr_expect_eq(st.iommu_pages_mapped, 58);
    rig_free(r);
}

/* The platform refuses the root (here: a PASID the IOMMU does not have): the driver
 * gives up before DRIVER_OK, so the device never did any DMA, and leaves it reset. */
Test(refdrv_iommu, refused_root_is_device_error)
{
    struct host_rig *r = rig_new(MEM_BASE, MEM_SIZE, 0, IOMMU_PASIDS_MAX);
    struct refdrv_params p = params(PAGE_4K, 0, IOMMU_PASIDS_MAX, REFDRV_TX_ONE_DESC);
    struct refdrv_stats st;
    enum refdrv_result res = run(r, &p, &st);

    cr_expect_eq(res, REFDRV_DEVICE_ERROR, "result %s", refdrv_result_name(res));
    cr_expect_eq(r->nroots, 2);
    cr_expect_eq(r->translated + r->physical, 0);
    cr_expect_eq(st.tx_frames, 0);
    cr_expect_eq(r->dev.tp.vpci.status, 0);
    rig_free(r);
}

/* Guest memory too small for the 2 MiB-aligned layout (rings and RX buffers | TX
 * buffers | tables needs more than 4 MiB) is REFDRV_NO_MEMORY; the same memory is
 * enough with 4 KiB pages. */
Test(refdrv_iommu, memory_too_small_for_2m_layout)
{
    const uint64_t small = 4ull << 20;
    struct host_rig *r = rig_new(MEM_BASE, small, 0, 0);
    struct refdrv_params p = params(PAGE_2M, 0, 0, REFDRV_TX_ONE_DESC);
    struct refdrv_stats st;
    enum refdrv_result res = run(r, &p, &st);
    cr_expect_eq(res, REFDRV_NO_MEMORY, "result %s", refdrv_result_name(res));
    cr_expect_eq(r->nroots, 0);
    cr_expect_eq(r->translated + r->physical, 0);
    rig_free(r);

    r = rig_new(MEM_BASE, small, 0, 0);
    p = params(PAGE_4K, 0, 0, REFDRV_TX_ONE_DESC);
    res = run(r, &p, &st);
    expect_all_frames_back(r, res, &st);
    expect_translated(r, &st);
    rig_free(r);
}

/* Same parameters, same tables, same translations. */
Test(refdrv_iommu, deterministic)
{
    struct refdrv_stats st[2];
    uint64_t root[2], walks[2], hits[2], now[2];
    for (unsigned i = 0; i < 2; i++) {
        struct host_rig *r = rig_new(MEM_BASE, MEM_SIZE, 1, 2);
        struct refdrv_params p = params(PAGE_4K, 1, 2, REFDRV_TX_CHAIN);
        enum refdrv_result res = run(r, &p, &st[i]);
        expect_all_frames_back(r, res, &st[i]);
        root[i] = r->roots[1].root;
        walks[i] = r->mmu.stats.total.walks;
        hits[i] = r->mmu.stats.total.hits;
        now[i] = r->now_ps;
        rig_free(r);
    }
    cr_expect_eq(root[0], root[1]);
    cr_expect_eq(walks[0], walks[1]);
    cr_expect_eq(hits[0], hits[1]);
    cr_expect_eq(now[0], now[1]);
    cr_expect_eq(st[0].iommu_pages_mapped, st[1].iommu_pages_mapped);
    cr_expect_eq(st[0].iommu_table_pages, st[1].iommu_table_pages);
}
