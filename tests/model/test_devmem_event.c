/* test_devmem_event.c -- the viosim-specific, NON-STANDARD extension
 * VIOSIM_NET_F_DEVMEM_EVENT (docs/event-suppression.md): the driver's event suppression
 * fields in device memory instead of the Driver Area.
 *
 * Ring kernels (both formats): with cfg.driver_event_local set the device issues no
 * EVENT_READ DMA and still honours the driver's flags and event index exactly as the
 * spec's placement would ("Driver and Device Event Suppression", "Used Buffer
 * Notification Suppression"). The composed function: the feature bit and the vendor
 * data capability exist only when configured, a driver that does not accept the bit
 * gets the spec's behaviour, and hostile writes to the window end in NEEDS_RESET with a
 * named reason or are ignored where harmless. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/fake_guest.h"
#include "common/vdev_rig.h"
#include "drv_packed.h"
#include "drv_split.h"
#include "packed_vq.h"
#include "split_vq.h"
#include "vdev.h"

/* ==== ring kernels ==== */

#define G_BASE      0x10000ull
#define G_SIZE      0x20000u
#define DESC_AREA   (G_BASE + 0x1000)
#define DRIVER_AREA (G_BASE + 0x100)
#define DEVICE_AREA (G_BASE + 0x8000)

static struct fake_guest g;
static struct vs_guest_ops ops;
static uint8_t slot[VIOSIM_DEVMEM_SLOT_BYTES];
static struct pvq pq;
static struct svq sq;

static void kernel_teardown(void)
{
    fake_guest_free(&g);
}

static struct vq_config ring_cfg(uint16_t size, bool event_idx, bool local)
{
    fake_guest_free(&g); /* a test may set up a second ring */
    fake_guest_init(&g, G_BASE, G_SIZE);
    ops = fake_guest_ops(&g);
    memset(slot, 0, sizeof slot);
    struct vq_config cfg = {
        .size = size,
        .desc_addr = DESC_AREA,
        .driver_addr = DRIVER_AREA,
        .device_addr = DEVICE_AREA,
        .event_idx = event_idx,
        .driver_event_local = local ? slot : NULL,
    };
    return cfg;
}

/* Packed: what the driver's slot says (off_wrap at 0, flags at 2). */
static void packed_slot(uint16_t flags, uint16_t off, bool wrap)
{
    vs_put_le16(slot, (uint16_t)(off | (wrap ? 1u << RING_EVENT_OFF_WRAP_WRAP_BIT : 0u)));
    vs_put_le16(slot + 2, flags);
}

static void packed_publish(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct vq_elem e = {.id = 0, .slots = 1};
        cr_assert_eq(pvq_push(&pq, &ops, &e, 0), VQ_OK);
    }
    cr_assert_eq(pvq_flush(&pq, &ops), VQ_OK);
}

static bool packed_decide(void)
{
    bool irq = false;
    cr_assert_eq(pvq_should_interrupt(&pq, &ops, &irq), VQ_OK);
    return irq;
}

TestSuite(devmem_ring, .fini = kernel_teardown);

/* Packed Virtqueues / Driver and Device Event Suppression (ENABLE / DISABLE), with the
 * structure in device memory: decided from the slot, and the Driver Area in RAM (which
 * says the opposite) is never read. */
Test(devmem_ring, packed_flags_from_slot_without_dma)
{
    struct vq_config cfg = ring_cfg(8, false, true);
    pvq_init(&pq, &cfg);
    fake_guest_put16(&g, DRIVER_AREA + 2, RING_EVENT_FLAGS_ENABLE);
    packed_slot(RING_EVENT_FLAGS_DISABLE, 0, false);
    packed_publish(1);
    cr_expect_not(packed_decide());
    packed_slot(RING_EVENT_FLAGS_ENABLE, 0, false);
    fake_guest_put16(&g, DRIVER_AREA + 2, RING_EVENT_FLAGS_DISABLE);
    packed_publish(1);
    cr_expect(packed_decide());
    cr_expect_eq(g.reads[VS_DMA_EVENT_READ], 0, "no event suppression DMA");
    cr_expect_eq(pq.stats.event_reads, 0);
    cr_expect_eq(pq.stats.event_reads_local, 2);
    cr_expect_eq(pq.stats.interrupts_suppressed, 1);
    /* Nothing published since the last decision: no read of either kind. */
    cr_expect_not(packed_decide());
    cr_expect_eq(pq.stats.event_reads_local, 2);
}

/* Packed Virtqueues / Driver and Device Event Suppression (RING_EVENT_FLAGS_DESC with
 * VIRTIO_F_EVENT_IDX): the offset and wrap counter in the slot decide, as in RAM. */
Test(devmem_ring, packed_event_index_from_slot)
{
    struct vq_config cfg = ring_cfg(8, true, true);
    pvq_init(&pq, &cfg);
    packed_slot(RING_EVENT_FLAGS_DESC, 2, true);
    packed_publish(2); /* slots 0, 1: the event at 2 not reached */
    cr_expect_not(packed_decide());
    packed_publish(1); /* slot 2 */
    cr_expect(packed_decide());
    packed_slot(RING_EVENT_FLAGS_DESC, 3, false); /* slot 3 of the next lap */
    packed_publish(1);
    cr_expect_not(packed_decide(), "same offset, other lap: no event");
    cr_expect_eq(g.reads[VS_DMA_EVENT_READ], 0);
    cr_expect_eq(pq.stats.event_reads_local, 3);
}

/* The spec's placement (no local copy): the structure is read by DMA from the Driver
 * Area and nothing is counted as local. */
Test(devmem_ring, packed_spec_placement_reads_by_dma)
{
    struct vq_config cfg = ring_cfg(8, false, false);
    pvq_init(&pq, &cfg);
    fake_guest_put16(&g, DRIVER_AREA + 2, RING_EVENT_FLAGS_DISABLE);
    packed_slot(RING_EVENT_FLAGS_ENABLE, 0, false); /* not connected */
    packed_publish(1);
    cr_expect_not(packed_decide());
    cr_expect_eq(g.reads[VS_DMA_EVENT_READ], 1);
    cr_expect_eq(pq.stats.event_reads, 1);
    cr_expect_eq(pq.stats.event_reads_local, 0);
}

static void split_publish(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct vq_elem e = {.id = 0, .slots = 1};
        cr_assert_eq(svq_push(&sq, &ops, &e, 0), VQ_OK);
    }
    cr_assert_eq(svq_flush(&sq, &ops), VQ_OK);
}

static bool split_decide(void)
{
    bool irq = false;
    cr_assert_eq(svq_should_interrupt(&sq, &ops, &irq), VQ_OK);
    return irq;
}

/* Split Virtqueues / Used Buffer Notification Suppression without EVENT_IDX: the
 * NO_INTERRUPT flag from the slot's flags field; avail->flags in RAM is not read. */
Test(devmem_ring, split_flags_from_slot_without_dma)
{
    struct vq_config cfg = ring_cfg(8, false, true);
    svq_init(&sq, &cfg);
    vs_put_le16(slot + VIOSIM_DEVMEM_SPLIT_OFF_FLAGS, VIRTQ_AVAIL_F_NO_INTERRUPT_MASK);
    split_publish(1);
    cr_expect_not(split_decide());
    vs_put_le16(slot + VIOSIM_DEVMEM_SPLIT_OFF_FLAGS, 0);
    fake_guest_put16(&g, DRIVER_AREA + SVIRTQ_AVAIL_OFF_FLAGS, VIRTQ_AVAIL_F_NO_INTERRUPT_MASK);
    split_publish(1);
    cr_expect(split_decide());
    cr_expect_eq(g.reads[VS_DMA_EVENT_READ], 0, "no event suppression DMA");
    cr_expect_eq(sq.stats.event_reads, 0);
    cr_expect_eq(sq.stats.event_reads_local, 2);
}

/* Split Virtqueues / Used Buffer Notification Suppression with EVENT_IDX: used_event
 * from the slot (the flags field is ignored, as avail->flags is). */
Test(devmem_ring, split_used_event_from_slot)
{
    struct vq_config cfg = ring_cfg(8, true, true);
    svq_init(&sq, &cfg);
    vs_put_le16(slot + VIOSIM_DEVMEM_SPLIT_OFF_FLAGS, VIRTQ_AVAIL_F_NO_INTERRUPT_MASK);
    vs_put_le16(slot + VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT, 2);
    split_publish(2); /* used entries 0, 1 */
    cr_expect_not(split_decide());
    split_publish(1); /* entry 2: the event */
    cr_expect(split_decide(), "flags ignored with EVENT_IDX; used_event reached");
    split_publish(1); /* entry 3: passed 2 already */
    cr_expect_not(split_decide());
    cr_expect_eq(g.reads[VS_DMA_EVENT_READ], 0);
    cr_expect_eq(sq.stats.event_reads_local, 3);
}

/* The spec's placement for split: used_event is read by DMA after the ring. */
Test(devmem_ring, split_spec_placement_reads_by_dma)
{
    struct vq_config cfg = ring_cfg(8, true, false);
    svq_init(&sq, &cfg);
    fake_guest_put16(&g, DRIVER_AREA + SVIRTQ_AVAIL_OFF_RING + 8u * SVIRTQ_AVAIL_ENTRY_BYTES, 0);
    split_publish(1);
    cr_expect(split_decide());
    cr_expect_eq(g.reads[VS_DMA_EVENT_READ], 1);
    cr_expect_eq(sq.stats.event_reads_local, 0);
}

/* ---- device re-check on slot writes (VIOSIM_NET_F_DEVMEM_EVENT_RECHECK) ---- */

static bool packed_recheck(void)
{
    bool irq = false;
    cr_assert_eq(pvq_recheck_driver_event(&pq, true, &irq), VQ_OK);
    return irq;
}

/* A used buffer published while notifications were off was decided on with DISABLE;
 * when the driver's enabling write arrives the device notifies about it (DESC naming a
 * slot published since the last notification), once. Driver and Device Event
 * Suppression rules otherwise unchanged. */
Test(devmem_ring, packed_recheck_after_late_enable)
{
    struct vq_config cfg = ring_cfg(8, true, true);
    pvq_init(&pq, &cfg);
    packed_slot(RING_EVENT_FLAGS_DISABLE, 0, false);
    cr_expect_not(packed_recheck(), "nothing published: nothing to notify");
    packed_publish(2); /* slots 0, 1 */
    cr_expect_not(packed_decide());
    cr_expect_not(packed_recheck(), "still DISABLE");
    packed_slot(RING_EVENT_FLAGS_DESC, 2, true);
    cr_expect_not(packed_recheck(), "slot 2 not published yet");
    packed_slot(RING_EVENT_FLAGS_DESC, 1, true);
    cr_expect(packed_recheck(), "slot 1 was published while notifications were off");
    cr_expect_not(packed_recheck(), "and is notified once");
    cr_expect_eq(pq.stats.interrupts_rechecked, 1);
    /* ENABLE: anything published since the last notification. */
    packed_slot(RING_EVENT_FLAGS_DISABLE, 0, false);
    packed_publish(1);
    cr_expect_not(packed_decide());
    packed_slot(RING_EVENT_FLAGS_ENABLE, 0, false);
    cr_expect(packed_recheck());
    /* A normal decision that notifies leaves nothing for a re-check. */
    packed_publish(1);
    cr_expect(packed_decide());
    cr_expect_not(packed_recheck());
    cr_expect_eq(g.reads[VS_DMA_EVENT_READ], 0);
}

/* Without the local copy there is nothing to re-check. */
Test(devmem_ring, recheck_needs_local_copy)
{
    struct vq_config cfg = ring_cfg(8, false, false);
    pvq_init(&pq, &cfg);
    fake_guest_put16(&g, DRIVER_AREA + 2, RING_EVENT_FLAGS_DISABLE);
    packed_publish(1);
    cr_expect_not(packed_decide());
    cr_expect_not(packed_recheck());
    svq_init(&sq, &cfg);
    bool irq = true;
    cr_expect_eq(svq_recheck_driver_event(&sq, true, &irq), VQ_OK);
    cr_expect_not(irq);
}

static bool split_recheck(bool whole)
{
    bool irq = false;
    cr_assert_eq(svq_recheck_driver_event(&sq, whole, &irq), VQ_OK);
    return irq;
}

/* Split with EVENT_IDX: only a whole-slot write asks (a used_event moved alone is how a
 * driver keeps notifications off); it notifies if used_event lies among the entries
 * published since the last notification. Without EVENT_IDX: NO_INTERRUPT clear. */
Test(devmem_ring, split_recheck_after_late_enable)
{
    struct vq_config cfg = ring_cfg(8, true, true);
    svq_init(&sq, &cfg);
    vs_put_le16(slot + VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT, 0xffff); /* off */
    split_publish(3);                                                /* entries 0..2 */
    cr_expect_not(split_decide());
    vs_put_le16(slot + VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT, 1);
    cr_expect_not(split_recheck(false), "a 2-byte used_event write does not ask");
    vs_put_le16(slot + VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT, 3);
    cr_expect_not(split_recheck(true), "entry 3 not published yet");
    vs_put_le16(slot + VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT, 2);
    cr_expect(split_recheck(true));
    cr_expect_not(split_recheck(true), "notified once");
    cr_expect_eq(sq.stats.interrupts_rechecked, 1);

    cfg = ring_cfg(8, false, true);
    svq_init(&sq, &cfg);
    vs_put_le16(slot + VIOSIM_DEVMEM_SPLIT_OFF_FLAGS, VIRTQ_AVAIL_F_NO_INTERRUPT_MASK);
    split_publish(1);
    cr_expect_not(split_decide());
    cr_expect_not(split_recheck(false));
    vs_put_le16(slot + VIOSIM_DEVMEM_SPLIT_OFF_FLAGS, 0);
    cr_expect(split_recheck(false));
}

/* ==== the composed function ==== */

#define GUEST_BASE 0x100000ull
#define GUEST_SIZE (1u << 20)
#define BAR0_BASE VDEV_RIG_BAR0
#define RING_SIZE 8u

static struct vdev dev;

static bool recheck_param;

static void dev_setup(bool offer)
{
    struct vdev_params p = vdev_rig_default_params();
    p.backend = VDEV_BACKEND_SINK;
    p.devmem_event = offer;
    p.devmem_event_recheck = recheck_param;
    cr_assert(vdev_init(&dev, &p));
    fake_guest_init(&g, GUEST_BASE, GUEST_SIZE);
    ops = fake_guest_ops(&g);
}

static void dev_teardown(void)
{
    vdev_fini(&dev);
    fake_guest_free(&g);
}

static uint8_t find_vcap(uint8_t cfg_type) { return pt_rig_find_vcap(&dev.tp, cfg_type); }

static void wr(uint32_t field, unsigned size, uint64_t v)
{
    cr_assert(pt_rig_wr(&dev.tp, field, size, v));
}

static uint64_t rd(uint32_t field, unsigned size)
{
    uint64_t v = 0;
    cr_assert(pt_mmio_read(&dev.tp, pt_rig_common(&dev.tp, field), size, &v));
    return v;
}

static uint64_t ring_desc(unsigned q) { return GUEST_BASE + 0x1000u * (q + 1); }
static uint64_t ring_drv(unsigned q) { return ring_desc(q) + 0x800; }
static uint64_t ring_dev(unsigned q) { return ring_desc(q) + 0x900; }

/* Window address of queue q's slot, from the vendor data capability. */
static uint64_t slot_addr(unsigned q)
{
    uint8_t cap = find_vcap(VIRTIO_PCI_CAP_VENDOR_CFG);
    cr_assert_neq(cap, 0);
    cr_assert_eq(pt_cfg_read(&dev.tp, cap + 7u, 1), 0, "window in BAR0");
    return BAR0_BASE + pt_cfg_read(&dev.tp, cap + 8u, 4) +
           (uint64_t)q * pt_cfg_read(&dev.tp, cap + 16u, 2);
}

/* The spec's initialisation with the driver's features (word 3 holds bit 100); TX
 * queue enabled. */
static void bring_up_features(bool packed, uint32_t word3);

static void bring_up(bool packed, bool accept_devmem)
{
    bring_up_features(packed, accept_devmem ? 1u << (VIOSIM_NET_F_DEVMEM_EVENT_BIT % 32) : 0u);
}

static void bring_up_features(bool packed, uint32_t word3)
{
    pt_rig_map_bars(&dev.tp);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint32_t hi = 1u << (VIRTIO_F_VERSION_1_BIT - 32);
    if (packed)
        hi |= 1u << (VIRTIO_F_RING_PACKED_BIT - 32);
    wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    wr(VIRTIO_PCI_COMMON_GF, 4, hi);
    wr(VIRTIO_PCI_COMMON_GFSELECT, 4, VIOSIM_NET_F_DEVMEM_EVENT_BIT / 32);
    wr(VIRTIO_PCI_COMMON_GF, 4, word3);
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    cr_assert(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, VNET_QUEUE_TX);
    wr(VIRTIO_PCI_COMMON_Q_SIZE, 2, RING_SIZE);
    wr(VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)ring_desc(VNET_QUEUE_TX));
    wr(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)ring_drv(VNET_QUEUE_TX));
    wr(VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)ring_dev(VNET_QUEUE_TX));
    wr(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
}

/* Make one transmit buffer available at packed slot i (first lap) and run the step
 * (batch of 1: the step publishes it and decides about the interrupt). */
static void tx_one(unsigned i)
{
    uint64_t d = ring_desc(VNET_QUEUE_TX) + 16u * i;
    fake_guest_put64(&g, d, GUEST_BASE + 0x10000);
    fake_guest_put32(&g, d + 8, 12 + 60);
    fake_guest_put16(&g, d + 12, (uint16_t)i);
    fake_guest_put16(&g, d + 14, VIRTQ_DESC_F_AVAIL_MASK);
    struct pt_work w = {0};
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
}

static void slot_write(unsigned q, uint32_t off, unsigned size, uint64_t v)
{
    uint16_t k;
    cr_assert(pt_mmio_write(&dev.tp, slot_addr(q) + off, size, v, &k));
}

static bool offered(unsigned bit)
{
    wr(VIRTIO_PCI_COMMON_DFSELECT, 4, bit / 32);
    return (rd(VIRTIO_PCI_COMMON_DF, 4) >> (bit % 32)) & 1u;
}

TestSuite(devmem_vdev, .fini = dev_teardown);

/* Off by default: a standard device byte for byte -- no vendor data capability, the
 * bit not offered, BAR0 as large as before. */
Test(devmem_vdev, absent_unless_configured)
{
    dev_setup(false);
    cr_expect_eq(find_vcap(VIRTIO_PCI_CAP_VENDOR_CFG), 0);
    pt_cfg_write(&dev.tp, PCI_BAR0, 4, (uint32_t)BAR0_BASE);
    pt_cfg_write(&dev.tp, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
    cr_expect_not(offered(VIOSIM_NET_F_DEVMEM_EVENT_BIT));
    cr_expect_eq(dev.tp.pci.bar_size[0], 0x4000);
    cr_expect_eq(dev.tp.region[PT_REGION_DEVMEM_EVENT].length, 0);
}

/* Configured: the bit is offered and a Vendor data capability ("Vendor data
 * capability": vendor_id not 0x1AF4, length a multiple of 4) names a window in BAR0
 * with one 4-byte slot per queue, not overlapping any other structure. */
Test(devmem_vdev, capability_and_bit_when_configured)
{
    dev_setup(true);
    uint8_t cap = find_vcap(VIRTIO_PCI_CAP_VENDOR_CFG);
    cr_assert_neq(cap, 0);
    cr_expect_eq(pt_cfg_read(&dev.tp, cap + 2u, 1), sizeof(struct viosim_devmem_event_cap));
    cr_expect_eq(pt_cfg_read(&dev.tp, cap + 2u, 1) % 4, 0);
    cr_expect_eq(pt_cfg_read(&dev.tp, cap + 4u, 2), VIOSIM_PCI_VNDR_ID);
    cr_expect_neq(pt_cfg_read(&dev.tp, cap + 4u, 2), VIRTIO_PCI_VENDOR_ID);
    cr_expect_eq(pt_cfg_read(&dev.tp, cap + 6u, 1), VIOSIM_VNDR_FMT_DEVMEM_EVENT);
    uint32_t off = pt_cfg_read(&dev.tp, cap + 8u, 4), len = pt_cfg_read(&dev.tp, cap + 12u, 4);
    cr_expect_eq(pt_cfg_read(&dev.tp, cap + 16u, 2), VIOSIM_DEVMEM_SLOT_BYTES);
    cr_expect_eq(pt_cfg_read(&dev.tp, cap + 18u, 2), VNET_QUEUES);
    cr_expect_leq((uint64_t)off + len, dev.tp.pci.bar_size[0]);
    const struct pt_region *n = &dev.tp.region[PT_REGION_NOTIFY];
    cr_expect_geq(off, n->offset + n->length, "after the notification region");
    pt_cfg_write(&dev.tp, PCI_BAR0, 4, (uint32_t)BAR0_BASE);
    pt_cfg_write(&dev.tp, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
    cr_expect(offered(VIOSIM_NET_F_DEVMEM_EVENT_BIT));
}

/* A standard driver (bit not accepted) on a device that offers it: the spec's
 * placement -- the device reads the Driver Area by DMA, and writes to the window are
 * ignored (harmless: nothing reads them). */
Test(devmem_vdev, standard_driver_gets_ram_placement)
{
    dev_setup(true);
    bring_up(true, false);
    cr_expect_null(dev.tp.q[VNET_QUEUE_TX].cfg.driver_event_local);
    slot_write(VNET_QUEUE_TX, 2, 2, RING_EVENT_FLAGS_DISABLE);
    cr_expect_eq(dev.tp.stats.devmem_event_writes_ignored, 1);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
    tx_one(0); /* Driver Area is zero: ENABLE */
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);
    cr_expect_eq(dev.tp.stats.dma_reads[VS_DMA_EVENT_READ], 1);
    cr_expect_eq(dev.tp.stats.event_reads_link[VNET_QUEUE_TX], 1);
    cr_expect_eq(dev.tp.stats.event_reads_local[VNET_QUEUE_TX], 0);
}

/* Negotiated, packed: the driver's MMIO writes to the slot decide (flags, then the
 * event index as one 4-byte write), with no EVENT_READ DMA. */
Test(devmem_vdev, negotiated_packed_reads_slot)
{
    dev_setup(true);
    bring_up(true, true);
    cr_expect_eq(dev.tp.q[VNET_QUEUE_TX].cfg.driver_event_local, dev.tp.devmem_event[VNET_QUEUE_TX]);
    fake_guest_put16(&g, ring_drv(VNET_QUEUE_TX) + 2, RING_EVENT_FLAGS_ENABLE);
    slot_write(VNET_QUEUE_TX, 2, 2, RING_EVENT_FLAGS_DISABLE);
    tx_one(0);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 0, "DISABLE in the slot, not RAM, decides");
    /* ENABLE with EVENT_IDX not negotiated; then DESC treated as ENABLE, as in RAM. */
    slot_write(VNET_QUEUE_TX, 0, 4, (uint32_t)RING_EVENT_FLAGS_ENABLE << 16);
    tx_one(1);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);
    cr_expect_eq(dev.tp.stats.dma_reads[VS_DMA_EVENT_READ], 0);
    cr_expect_eq(dev.tp.stats.event_reads_link[VNET_QUEUE_TX], 0);
    cr_expect_eq(dev.tp.stats.event_reads_local[VNET_QUEUE_TX], 2);
    cr_expect_eq(dev.tp.stats.devmem_event_writes, 2);
    /* Reads of a field or the slot return it, without side effects. */
    uint64_t v = 0;
    cr_assert(pt_mmio_read(&dev.tp, slot_addr(VNET_QUEUE_TX), 4, &v));
    cr_expect_eq(v, (uint64_t)RING_EVENT_FLAGS_ENABLE << 16);
    cr_assert(pt_mmio_read(&dev.tp, slot_addr(VNET_QUEUE_TX) + 2, 2, &v));
    cr_expect_eq(v, RING_EVENT_FLAGS_ENABLE);
    cr_expect_eq(dev.tp.stats.devmem_event_writes, 2);
}

/* Negotiated, split ring: the queue reads the slot (flags at 0, used_event at 2). */
Test(devmem_vdev, negotiated_split_uses_slot)
{
    dev_setup(true);
    bring_up(false, true);
    cr_expect_str_eq(dev.tp.q[VNET_QUEUE_TX].ops->name, "split");
    cr_expect_eq(dev.tp.q[VNET_QUEUE_TX].cfg.driver_event_local, dev.tp.devmem_event[VNET_QUEUE_TX]);
    slot_write(VNET_QUEUE_TX, VIOSIM_DEVMEM_SPLIT_OFF_FLAGS, 2, VIRTQ_AVAIL_F_NO_INTERRUPT_MASK);
    cr_expect_eq(vs_le16(dev.tp.devmem_event[VNET_QUEUE_TX]), VIRTQ_AVAIL_F_NO_INTERRUPT_MASK);
    slot_write(VNET_QUEUE_TX, VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT, 2, 7);
    cr_expect_eq(vs_le16(dev.tp.devmem_event[VNET_QUEUE_TX] + 2), 7);
}

/* Writes before FEATURES_OK: the extension is not negotiated yet, so they are ignored
 * (the device could not know the driver means to use it). */
Test(devmem_vdev, writes_before_features_ok_ignored)
{
    dev_setup(true);
    pt_cfg_write(&dev.tp, PCI_BAR0, 4, (uint32_t)BAR0_BASE);
    pt_cfg_write(&dev.tp, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
    slot_write(VNET_QUEUE_RX, 0, 4, 0x12345678);
    cr_expect_eq(dev.tp.stats.devmem_event_writes_ignored, 1);
    cr_expect_eq(vs_le32(dev.tp.devmem_event[VNET_QUEUE_RX]), 0);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* Device reset ("Device Reset") clears every slot: flags 0, notifications enabled, as a
 * zeroed structure in RAM says. */
Test(devmem_vdev, reset_clears_slots)
{
    dev_setup(true);
    bring_up(true, true);
    slot_write(VNET_QUEUE_TX, 2, 2, RING_EVENT_FLAGS_DISABLE);
    cr_expect_eq(vs_le16(dev.tp.devmem_event[VNET_QUEUE_TX] + 2), RING_EVENT_FLAGS_DISABLE);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_expect_eq(vs_le32(dev.tp.devmem_event[VNET_QUEUE_TX]), 0);
}

/* Hostile: the slot of a queue that does not exist -- past num_queues, or the control
 * queue without VIRTIO_NET_F_CTRL_VQ -- is like a notification naming one: NEEDS_RESET. */
Test(devmem_vdev, hostile_slot_of_missing_queue)
{
    dev_setup(true);
    bring_up(true, true);
    slot_write(VNET_QUEUES, 2, 2, RING_EVENT_FLAGS_DISABLE);
    cr_expect_eq(dev.tp.error, VS_REASON_DEVMEM_EVENT_QUEUE_INVALID);
    cr_expect(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_expect_eq(dev.tp.stats.config_interrupts, 1);
}

Test(devmem_vdev, hostile_slot_of_control_queue_without_ctrl_vq)
{
    dev_setup(true);
    bring_up(true, true);
    slot_write(VNET_QUEUE_CTRL, 0, 4, 0);
    cr_expect_eq(dev.tp.error, VS_REASON_DEVMEM_EVENT_QUEUE_INVALID);
}

/* Hostile: accesses that do not map onto the fields -- 1 byte, 8 bytes, a 2-byte
 * write at an odd offset, a 4-byte write straddling two slots. */
static void expect_access_invalid(uint32_t off, unsigned size)
{
    dev_setup(true);
    bring_up(true, true);
    slot_write(VNET_QUEUE_TX, off, size, 0);
    cr_expect_eq(dev.tp.error, VS_REASON_DEVMEM_EVENT_ACCESS_INVALID, "off %u size %u", off, size);
    cr_expect_eq(dev.tp.stats.devmem_event_writes, 0);
    dev_teardown();
}

Test(devmem_vdev, hostile_partial_and_misaligned_writes)
{
    expect_access_invalid(2, 1);
    expect_access_invalid(0, 8);
    expect_access_invalid(1, 2);
    expect_access_invalid(2, 4);
    dev_setup(true); /* for the suite's fini */
}

/* ==== the driver side (workloads/drv_packed.c, drv_split.c) ==== */

/* Records the driver's MMIO writes to its slot and applies them to a slot copy. */
struct mmio_log {
    unsigned n;
    uint32_t off[8];
    unsigned size[8];
    uint32_t value[8];
    uint8_t slot[VIOSIM_DEVMEM_SLOT_BYTES];
};

static void log_write(void *ctx, uint32_t off, unsigned size, uint32_t value)
{
    struct mmio_log *l = ctx;
    cr_assert_lt(l->n, 8u);
    l->off[l->n] = off;
    l->size[l->n] = size;
    l->value[l->n] = value;
    l->n++;
    cr_assert_leq(off + size, sizeof l->slot);
    memcpy(l->slot + off, &value, size);
}

TestSuite(devmem_driver);

/* Packed: with the extension the driver event suppression structure goes to the slot
 * by MMIO -- ENABLE with EVENT_IDX as one 4-byte write (off_wrap and flags together),
 * DISABLE as a 2-byte write of flags -- and the Driver Area in RAM is left alone. */
Test(devmem_driver, packed_writes_slot_not_ram)
{
    static struct dpq q;
    _Alignas(16) static uint8_t ring[8 * 16];
    _Alignas(4) uint8_t drv_ev[4] = {0xaa, 0xaa, 0xaa, 0xaa}, dev_ev[4] = {0};
    struct mmio_log l = {0};
    dpq_init(&q, ring, drv_ev, dev_ev, 8, true, false);
    struct drv_event_mmio w = {log_write, &l};
    dpq_set_event_mmio(&q, &w);
    dpq_set_driver_events(&q, DRV_EVENTS_DISABLE);
    cr_assert_eq(l.n, 1);
    cr_expect_eq(l.off[0], 2);
    cr_expect_eq(l.size[0], 2);
    cr_expect_eq(l.value[0], RING_EVENT_FLAGS_DISABLE);
    dpq_enable_driver_events_after(&q, 3);
    cr_assert_eq(l.n, 2);
    cr_expect_eq(l.off[1], 0);
    cr_expect_eq(l.size[1], 4);
    cr_expect_eq(vs_le16(l.slot), 3u | 1u << RING_EVENT_OFF_WRAP_WRAP_BIT, "slot 3, wrap 1");
    cr_expect_eq(vs_le16(l.slot + 2), RING_EVENT_FLAGS_DESC);
    for (unsigned i = 0; i < 4; i++)
        cr_expect_eq(drv_ev[i], 0xaa, "RAM copy untouched");
    /* Back to the spec's placement. */
    dpq_set_event_mmio(&q, NULL);
    dpq_set_driver_events(&q, DRV_EVENTS_DISABLE);
    cr_expect_eq(l.n, 2);
    cr_expect_eq(vs_le16(drv_ev + 2), RING_EVENT_FLAGS_DISABLE);
}

/* Split: flags (without EVENT_IDX) and used_event (with it) go to the slot's fields by
 * 2-byte MMIO writes, never to the available ring. */
Test(devmem_driver, split_writes_slot_not_ram)
{
    static struct dsq q;
    _Alignas(16) static uint8_t desc[8 * 16];
    _Alignas(2) static uint8_t avail[6 + 2 * 8];
    _Alignas(4) static uint8_t used[6 + 8 * 8];
    struct mmio_log l = {0};
    struct drv_event_mmio w = {log_write, &l};

    dsq_init(&q, desc, avail, used, 8, false, false);
    dsq_set_event_mmio(&q, &w);
    dsq_set_driver_events(&q, DRV_EVENTS_DISABLE);
    cr_assert_eq(l.n, 1);
    cr_expect_eq(l.off[0], VIOSIM_DEVMEM_SPLIT_OFF_FLAGS);
    cr_expect_eq(l.size[0], 2);
    cr_expect_eq(l.value[0], VIRTQ_AVAIL_F_NO_INTERRUPT_MASK);
    cr_expect_eq(vs_le16(avail + SVIRTQ_AVAIL_OFF_FLAGS), 0, "avail->flags untouched");

    memset(&l, 0, sizeof l);
    dsq_init(&q, desc, avail, used, 8, true, false);
    dsq_set_event_mmio(&q, &w);
    dsq_enable_driver_events_after(&q, 5);
    cr_assert_eq(l.n, 1);
    cr_expect_eq(l.off[0], 0, "asking for notifications writes the whole slot");
    cr_expect_eq(l.size[0], 4);
    cr_expect_eq(vs_le16(l.slot + VIOSIM_DEVMEM_SPLIT_OFF_FLAGS), 0);
    cr_expect_eq(vs_le16(l.slot + VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT), 5);
    dsq_set_driver_events(&q, DRV_EVENTS_DISABLE); /* used_event just behind: 2 bytes */
    cr_assert_eq(l.n, 2);
    cr_expect_eq(l.off[1], VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT);
    cr_expect_eq(l.size[1], 2);
    cr_expect_eq(l.value[1], 0xffff);
    cr_expect_eq(vs_le16(avail + SVIRTQ_AVAIL_OFF_RING + 8 * 2), 0, "used_event in RAM untouched");
}

/* VIOSIM_NET_F_DEVMEM_EVENT_RECHECK: offered only with the re-check configured; without
 * VIOSIM_NET_F_DEVMEM_EVENT it is refused at FEATURES_OK ("Feature Bits": the device
 * may refuse a combination it cannot honour). */
Test(devmem_vdev, recheck_bit_needs_devmem_bit)
{
    dev_setup(true);
    pt_cfg_write(&dev.tp, PCI_BAR0, 4, (uint32_t)BAR0_BASE);
    pt_cfg_write(&dev.tp, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
    cr_expect_not(offered(VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT));
    dev_teardown();
    recheck_param = true;
    dev_setup(true);
    recheck_param = false;
    pt_cfg_write(&dev.tp, PCI_BAR0, 4, (uint32_t)BAR0_BASE);
    pt_cfg_write(&dev.tp, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
    cr_expect(offered(VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT));
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    wr(VIRTIO_PCI_COMMON_GF, 4, 1u << (VIRTIO_F_VERSION_1_BIT - 32));
    wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 3);
    wr(VIRTIO_PCI_COMMON_GF, 4, 1u << (VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT % 32));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    cr_expect_not(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
}

/* Negotiated: a used buffer suppressed under DISABLE is notified as soon as the
 * driver's enabling slot write arrives, without another publication. */
Test(devmem_vdev, recheck_notifies_on_enabling_write)
{
    recheck_param = true;
    dev_setup(true);
    recheck_param = false;
    bring_up_features(true, (1u << (VIOSIM_NET_F_DEVMEM_EVENT_BIT % 32)) |
                                (1u << (VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT % 32)));
    slot_write(VNET_QUEUE_TX, 2, 2, RING_EVENT_FLAGS_DISABLE);
    tx_one(0);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 0);
    slot_write(VNET_QUEUE_TX, 2, 2, RING_EVENT_FLAGS_ENABLE);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);
    cr_expect_eq(dev.tp.stats.devmem_event_recheck_interrupts, 1);
    slot_write(VNET_QUEUE_TX, 2, 2, RING_EVENT_FLAGS_ENABLE);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1, "nothing new to notify");
    cr_expect_eq(dev.tp.stats.dma_reads[VS_DMA_EVENT_READ], 0);
}

/* Without the re-check bit the same late write notifies nothing (the driver's
 * flushing read is what closes the race then). */
Test(devmem_vdev, no_recheck_without_bit)
{
    recheck_param = true;
    dev_setup(true);
    recheck_param = false;
    bring_up(true, true);
    slot_write(VNET_QUEUE_TX, 2, 2, RING_EVENT_FLAGS_DISABLE);
    tx_one(0);
    slot_write(VNET_QUEUE_TX, 2, 2, RING_EVENT_FLAGS_ENABLE);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 0);
}
