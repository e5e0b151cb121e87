/* test_vdev.c -- the composed virtio-net PCI function: discovery, layout, routing,
 * the net data path, and the NEEDS_RESET path for hostile input. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/fake_guest.h"
#include "vdev.h"

#define GUEST_BASE 0x100000ull
#define GUEST_SIZE (1u << 20)
#define BAR0_BASE 0xC0000000ull
#define BAR2_BASE 0xC0100000ull
#define RING_SIZE 8u

static struct vdev dev;
static struct fake_guest g;
static struct vs_guest_ops ops;

static struct vdev_params default_params(void)
{
    struct vdev_params p;
    memset(&p, 0, sizeof p);
    p.revision_id = 1;
    p.subsystem_vendor_id = 0x1af4;
    p.subsystem_id = 0x1100;
    p.queue_size_max = 256;
    p.notify_off_multiplier = 4;
    uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
    memcpy(p.mac, mac, 6);
    p.max_frame_bytes = 1514;
    p.rx_fifo_frames = 4;
    p.backend = VDEV_BACKEND_LOOPBACK;
    p.used_batch_max = 1;
    return p;
}

static void setup(void)
{
    struct vdev_params p = default_params();
    cr_assert(vdev_init(&dev, &p));
    fake_guest_init(&g, GUEST_BASE, GUEST_SIZE);
    ops = fake_guest_ops(&g);
}

static void teardown(void)
{
    vdev_fini(&dev);
    fake_guest_free(&g);
}

static uint8_t find_vcap(uint8_t cfg_type)
{
    uint8_t off = (uint8_t)pt_cfg_read(&dev.tp, PCI_CAPABILITY_LIST, 1);
    for (int n = 0; off && n < 48; n++) {
        if (pt_cfg_read(&dev.tp, off, 1) == PCI_CAP_ID_VNDR && pt_cfg_read(&dev.tp, off + 3u, 1) == cfg_type)
            return off;
        off = (uint8_t)pt_cfg_read(&dev.tp, off + 1u, 1);
    }
    return 0;
}

static void map_bars(void)
{
    pt_cfg_write(&dev.tp, PCI_BAR0, 4, (uint32_t)BAR0_BASE);
    pt_cfg_write(&dev.tp, PCI_BAR0 + 4, 4, 0);
    pt_cfg_write(&dev.tp, PCI_BAR0 + 8, 4, (uint32_t)BAR2_BASE);
    pt_cfg_write(&dev.tp, PCI_BAR0 + 12, 4, 0);
    pt_cfg_write(&dev.tp, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK);
}

static uint64_t common_addr(uint32_t field)
{
    uint8_t cap = find_vcap(VIRTIO_PCI_CAP_COMMON_CFG);
    return BAR0_BASE + pt_cfg_read(&dev.tp, cap + 8u, 4) + field;
}

static void wr(uint32_t field, unsigned size, uint64_t v)
{
    uint16_t kicked;
    cr_assert(pt_mmio_write(&dev.tp, common_addr(field), size, v, &kicked));
}

static uint64_t rd(uint32_t field, unsigned size)
{
    uint64_t v = 0;
    cr_assert(pt_mmio_read(&dev.tp, common_addr(field), size, &v));
    return v;
}

static void write_features(uint32_t lo, uint32_t hi)
{
    wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    wr(VIRTIO_PCI_COMMON_GF, 4, lo);
    wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    wr(VIRTIO_PCI_COMMON_GF, 4, hi);
}

/* Queue q's ring areas in the fake guest. */
static uint64_t ring_desc(unsigned q) { return GUEST_BASE + 0x1000u * (q + 1); }
static uint64_t ring_drv(unsigned q) { return ring_desc(q) + 0x800; }
static uint64_t ring_dev(unsigned q) { return ring_desc(q) + 0x900; }

static void setup_queue(unsigned q)
{
    wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
    wr(VIRTIO_PCI_COMMON_Q_SIZE, 2, RING_SIZE);
    wr(VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)ring_desc(q));
    wr(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)ring_drv(q));
    wr(VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)ring_dev(q));
    wr(VIRTIO_PCI_COMMON_Q_MSIX, 2, 1 + q);
    wr(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

/* The spec's initialisation sequence, packed ring, queues RX and TX. */
static void bring_up(void)
{
    map_bars();
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    write_features(0, (1u << (VIRTIO_F_VERSION_1_BIT - 32)) | (1u << (VIRTIO_F_RING_PACKED_BIT - 32)));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    cr_assert(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    wr(VIRTIO_PCI_COMMON_MSIX, 2, 0);
    setup_queue(VNET_QUEUE_RX);
    setup_queue(VNET_QUEUE_TX);
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
}

/* Make one single-descriptor buffer available at slot i of queue q (first lap). */
static void post(unsigned q, unsigned slot, uint64_t addr, uint32_t len, uint16_t id, bool writable)
{
    uint64_t d = ring_desc(q) + 16u * slot;
    fake_guest_put64(&g, d, addr);
    fake_guest_put32(&g, d + 8, len);
    fake_guest_put16(&g, d + 12, id);
    fake_guest_put16(&g, d + 14, (uint16_t)(VIRTQ_DESC_F_AVAIL_MASK | (writable ? VIRTQ_DESC_F_WRITE_MASK : 0)));
}

TestSuite(vdev, .init = setup, .fini = teardown);

/* "PCI Device Discovery": vendor 0x1AF4, device 0x1040 + 1 for network, revision >= 1
 * for a non-transitional device; class code of an Ethernet controller. */
Test(vdev, discovery_ids)
{
    cr_expect_eq(pt_cfg_read(&dev.tp, PCI_VENDOR_ID, 2), 0x1af4);
    cr_expect_eq(pt_cfg_read(&dev.tp, PCI_DEVICE_ID, 2), 0x1041);
    cr_expect_geq(pt_cfg_read(&dev.tp, PCI_REVISION_ID, 1), 1);
    cr_expect_eq(pt_cfg_read(&dev.tp, PCI_CLASS_PROG, 1), 0x00);
    cr_expect_eq(pt_cfg_read(&dev.tp, PCI_CLASS_DEVICE, 2), 0x0200);
    cr_expect_eq(pt_cfg_read(&dev.tp, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
    cr_expect_eq(pt_cfg_read(&dev.tp, PCI_SUBSYSTEM_ID, 2), 0x1100);
    cr_expect_eq(pt_cfg_read(&dev.tp, PCI_HEADER_TYPE, 1) & 0x7f, 0);
}

/* "Device-specific configuration" / "Network Device / Device configuration layout":
 * the MAC from the configuration reads back; the link is up. */
Test(vdev, net_config_mac)
{
    map_bars();
    uint8_t cap = find_vcap(VIRTIO_PCI_CAP_DEVICE_CFG);
    uint64_t base = BAR0_BASE + pt_cfg_read(&dev.tp, cap + 8u, 4);
    uint64_t v;
    uint8_t mac[6];
    for (unsigned i = 0; i < 6; i++) {
        cr_assert(pt_mmio_read(&dev.tp, base + i, 1, &v));
        mac[i] = (uint8_t)v;
    }
    cr_expect_eq(memcmp(mac, dev.p.mac, 6), 0);
    cr_assert(pt_mmio_read(&dev.tp, base + 6, 2, &v));
    cr_expect_eq(v & VIRTIO_NET_S_LINK_UP_MASK, VIRTIO_NET_S_LINK_UP_MASK);
}

/* "Feature Bits": the device offers the features the issue lists, and withdrawing
 * one through the configuration (a quirk) removes it from the offer. */
Test(vdev, offered_features_and_withdraw)
{
    map_bars();
    wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    uint32_t hi = (uint32_t)rd(VIRTIO_PCI_COMMON_DF, 4);
    const unsigned want_hi[] = {VIRTIO_F_VERSION_1_BIT, VIRTIO_F_ACCESS_PLATFORM_BIT,
                                VIRTIO_F_RING_PACKED_BIT, VIRTIO_F_IN_ORDER_BIT,
                                VIRTIO_F_ORDER_PLATFORM_BIT, VIRTIO_F_NOTIFICATION_DATA_BIT};
    for (unsigned i = 0; i < sizeof want_hi / sizeof want_hi[0]; i++)
        cr_expect(hi & (1u << (want_hi[i] - 32)), "bit %u offered", want_hi[i]);
    wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    uint32_t lo = (uint32_t)rd(VIRTIO_PCI_COMMON_DF, 4);
    cr_expect(lo & (1u << VIRTIO_F_EVENT_IDX_BIT));
    cr_expect(lo & (1u << VIRTIO_F_INDIRECT_DESC_BIT));
    cr_expect(lo & (1u << VIRTIO_NET_F_MAC_BIT));
    cr_expect(lo & (1u << VIRTIO_NET_F_CTRL_VQ_BIT));
    teardown();

    struct vdev_params p = default_params();
    vs_feature_set(&p.withdraw, VIRTIO_F_EVENT_IDX_BIT);
    cr_assert(vdev_init(&dev, &p));
    fake_guest_init(&g, GUEST_BASE, GUEST_SIZE);
    map_bars();
    wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    cr_expect_not((uint32_t)rd(VIRTIO_PCI_COMMON_DF, 4) & (1u << VIRTIO_F_EVENT_IDX_BIT));
}

/* "Device Initialization" + "Transmitting Packets" + "Receiving Packets": a frame
 * transmitted in loopback arrives intact in a receive buffer, behind a virtio-net
 * header with num_buffers = 1 (MRG_RXBUF not negotiated). */
Test(vdev, loopback_frame_intact)
{
    bring_up();
    const uint64_t txbuf = GUEST_BASE + 0x10000, rxbuf = GUEST_BASE + 0x20000;
    const uint32_t hdr = sizeof(struct virtio_net_hdr), len = 100;
    uint8_t *p = fake_guest_ptr(&g, txbuf, hdr + len);
    memset(p, 0, hdr);
    for (uint32_t i = 0; i < len; i++)
        p[hdr + i] = (uint8_t)(i * 7 + 3);
    post(VNET_QUEUE_TX, 0, txbuf, hdr + len, 5, false);
    post(VNET_QUEUE_RX, 0, rxbuf, 2048, 3, true);

    struct pt_work w = {0};
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(w.frames, 1);
    cr_expect_eq(vnet_fifo_frames(&dev.net), 1);
    cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(vnet_fifo_frames(&dev.net), 0);
    const uint8_t *q = fake_guest_ptr(&g, rxbuf, hdr + len);
    struct virtio_net_hdr h;
    memcpy(&h, q, hdr);
    cr_expect_eq(h.num_buffers, 1);
    cr_expect_eq(memcmp(q + hdr, p + hdr, len), 0);
    /* Used descriptors (batch of 1 is published at once): ids and lengths. */
    cr_expect_eq(fake_guest_get16(&g, ring_desc(VNET_QUEUE_TX) + 12), 5);
    cr_expect_eq(fake_guest_get32(&g, ring_desc(VNET_QUEUE_TX) + 8), 0);
    cr_expect_eq(fake_guest_get16(&g, ring_desc(VNET_QUEUE_RX) + 12), 3);
    cr_expect_eq(fake_guest_get32(&g, ring_desc(VNET_QUEUE_RX) + 8), hdr + len);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* device.backend responder: an ARP request for the peer's address comes back as the
 * peer's ARP reply (model/net_answer.h, RFC 826); a frame it does not answer is dropped
 * and counted, and puts nothing on the receive side. */
Test(vdev, responder_answers_arp_and_drops_the_rest)
{
    vdev_fini(&dev);
    struct vdev_params p = default_params();
    p.backend = VDEV_BACKEND_RESPONDER;
    const struct net_peer peer = {{0x02, 0, 0, 0, 0, 0x02}, {10, 0, 0, 2}};
    p.responder = peer;
    cr_assert(vdev_init(&dev, &p));
    bring_up();
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    const uint64_t txbuf = GUEST_BASE + 0x10000, rxbuf = GUEST_BASE + 0x20000;
    uint8_t *f = fake_guest_ptr(&g, txbuf, hdr + 60);
    memset(f, 0, hdr + 60);
    uint8_t *e = f + hdr;
    memset(e, 0xff, 6);                                      /* broadcast */
    memcpy(e + 6, (const uint8_t[6]){0x52, 0x54, 0, 0x12, 0x34, 0x56}, 6);
    e[12] = 0x08, e[13] = 0x06;                              /* ARP */
    e[15] = 1, e[16] = 0x08, e[18] = 6, e[19] = 4, e[21] = 1; /* Ethernet/IPv4 request */
    memcpy(e + 22, e + 6, 6);
    memcpy(e + 28, (const uint8_t[4]){10, 0, 0, 1}, 4);
    memcpy(e + 38, peer.ipv4, 4);
    uint8_t *other = fake_guest_ptr(&g, txbuf + 0x100, hdr + 60);
    memcpy(other, f, hdr + 60);
    other[hdr + 12] = 0x86, other[hdr + 13] = 0xdd;          /* IPv6: not answered */
    post(VNET_QUEUE_TX, 0, txbuf, hdr + 60, 0, false);
    post(VNET_QUEUE_TX, 1, txbuf + 0x100, hdr + 60, 1, false);
    post(VNET_QUEUE_RX, 0, rxbuf, 2048, 0, true);
    struct pt_work w = {0};
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(dev.net.stats.backend.responder_arp, 1);
    cr_expect_eq(dev.net.stats.backend.sink_frames, 1);
    cr_expect_eq(vnet_fifo_frames(&dev.net), 1);
    cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    const uint8_t *r = fake_guest_ptr(&g, rxbuf + hdr, 60);
    cr_expect_arr_eq(r, e + 6, 6, "to the requester");
    cr_expect_arr_eq(r + 6, peer.mac, 6, "from the peer");
    cr_expect_eq(r[21], 2, "ARP reply");
    cr_expect_eq(fake_guest_get32(&g, ring_desc(VNET_QUEUE_RX) + 8), hdr + 60);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* Loopback back-pressure: with the FIFO full, TX waits instead of dropping. */
Test(vdev, loopback_fifo_backpressure)
{
    bring_up();
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    for (unsigned i = 0; i < 5; i++)
        post(VNET_QUEUE_TX, i, GUEST_BASE + 0x10000 + 0x100 * i, hdr + 60, (uint16_t)i, false);
    struct pt_work w = {0};
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_expect(vnet_pair_fifo_full(&dev.net, 0));
    cr_expect_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_BLOCKED);
    cr_expect_eq(dev.net.stats.tx_frames, 4);
}

/* "Notifications": a used buffer notification goes out as the queue's MSI-X message
 * once the driver unmasked the vector and enabled MSI-X, and not while masked
 * (the pending bit holds it until unmask). */
Test(vdev, used_notification_through_msix)
{
    bring_up();
    uint8_t mcap = pci_cfg_find_cap(&dev.tp.pci, PCI_CAP_ID_MSIX, -1);
    pt_cfg_write(&dev.tp, mcap + 2u, 2, MSIX_MSGCTL_ENABLE_MASK);
    uint16_t k;
    const uint64_t entry = BAR2_BASE + (1 + VNET_QUEUE_TX) * MSIX_ENTRY_SIZE;
    cr_assert(pt_mmio_write(&dev.tp, entry + MSIX_ENTRY_ADDR_LO, 4, 0xfee00000u, &k));
    cr_assert(pt_mmio_write(&dev.tp, entry + MSIX_ENTRY_DATA, 4, 2, &k));
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 12 + 60, 0, false);
    struct pt_work w = {0};
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE); /* batch of 1: completes */
    struct msix_message m;
    cr_expect_not(pt_take_msi(&dev.tp, &m), "vector still masked");
    cr_expect_eq(dev.tp.msix.stats.pended, 1);
    cr_assert(pt_mmio_write(&dev.tp, entry + MSIX_ENTRY_CTRL, 4, 0, &k));
    cr_assert(pt_take_msi(&dev.tp, &m));
    cr_expect_eq(m.addr, 0xfee00000u);
    cr_expect_eq(m.data, 2);
}

/* "Driver and Device Event Suppression": with the driver's structure at DISABLE the
 * device sends no used buffer notification. */
Test(vdev, driver_suppression_disable)
{
    bring_up();
    fake_guest_put16(&g, ring_drv(VNET_QUEUE_TX) + 2, RING_EVENT_FLAGS_DISABLE);
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 12 + 60, 0, false);
    struct pt_work w = {0};
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 0);
}

/* Hostile input: DMA with bus mastering off ends in DEVICE_NEEDS_RESET with a named
 * reason and a configuration change interrupt; nothing else is touched afterwards;
 * a reset (status 0) brings the device back ("Device Status Field"). */
Test(vdev, bus_master_off_needs_reset)
{
    bring_up();
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 12 + 60, 0, false);
    pt_cfg_write(&dev.tp, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
    struct pt_work w = {0};
    uint64_t before = fake_guest_accesses(&g);
    cr_expect_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_FAILED);
    cr_expect_eq(fake_guest_accesses(&g), before, "no DMA reached memory");
    cr_expect_eq(dev.tp.error, VS_REASON_DMA_BUS_MASTER_OFF);
    cr_expect(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_expect_eq(dev.tp.stats.config_interrupts, 1);
    cr_expect_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_FAILED);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_expect_eq(rd(VIRTIO_PCI_COMMON_STATUS, 1), 0);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* Hostile input: a notification for a queue that does not exist. With a notify
 * multiplier of 0 every queue shares one address and the value names the queue
 * ("Notification capability"); a value past num_queues needs a reset. */
Test(vdev, notify_nonexistent_queue_needs_reset)
{
    teardown();
    struct vdev_params p = default_params();
    p.notify_off_multiplier = 0;
    cr_assert(vdev_init(&dev, &p));
    fake_guest_init(&g, GUEST_BASE, GUEST_SIZE);
    ops = fake_guest_ops(&g);
    bring_up();
    uint8_t cap = find_vcap(VIRTIO_PCI_CAP_NOTIFY_CFG);
    uint64_t base = BAR0_BASE + pt_cfg_read(&dev.tp, cap + 8u, 4);
    uint16_t k;
    cr_assert(pt_mmio_write(&dev.tp, base, 2, VNET_QUEUE_TX, &k));
    cr_expect_eq(k, VNET_QUEUE_TX);
    cr_expect_eq(dev.tp.q[VNET_QUEUE_TX].kicks, 1);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
    pt_mmio_write(&dev.tp, base, 2, 7, &k);
    cr_expect_eq(k, 0xffff);
    cr_expect_eq(dev.tp.error, VS_REASON_NOTIFY_QUEUE_INVALID);
    cr_expect(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* Hostile input: a queue enabled with a misaligned descriptor ring. */
Test(vdev, misaligned_ring_needs_reset)
{
    map_bars();
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    write_features(0, (1u << (VIRTIO_F_VERSION_1_BIT - 32)) | (1u << (VIRTIO_F_RING_PACKED_BIT - 32)));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, VNET_QUEUE_TX);
    wr(VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)ring_desc(1) + 8);
    wr(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    cr_expect_eq(dev.tp.error, VS_REASON_RING_MISALIGNED);
}

/* Hostile input: a transmit buffer with a device-writable descriptor. */
Test(vdev, tx_writable_buffer_needs_reset)
{
    bring_up();
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 12 + 60, 0, true);
    struct pt_work w = {0};
    cr_expect_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_FAILED);
    cr_expect_eq(dev.tp.error, VS_REASON_TX_HAS_WRITABLE);
}

/* Hostile input: a transmit buffer pointing outside guest memory. */
Test(vdev, tx_buffer_outside_memory_needs_reset)
{
    bring_up();
    post(VNET_QUEUE_TX, 0, GUEST_BASE + GUEST_SIZE - 16, 12 + 60, 0, false);
    struct pt_work w = {0};
    cr_expect_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_FAILED);
    cr_expect_eq(dev.tp.error, VS_REASON_DMA_OUT_OF_RANGE);
}

/* Hostile input: an oversized frame (beyond max_frame_bytes). */
Test(vdev, tx_frame_too_long_needs_reset)
{
    bring_up();
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 12 + 1515, 0, false);
    struct pt_work w = {0};
    cr_expect_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_FAILED);
    cr_expect_eq(dev.tp.error, VS_REASON_TX_FRAME_TOO_LONG);
}

/* Hostile input: MSI-X vector control with reserved bits. */
Test(vdev, msix_reserved_bits_needs_reset)
{
    bring_up();
    uint16_t k;
    pt_mmio_write(&dev.tp, BAR2_BASE + MSIX_ENTRY_CTRL, 4, 0x2, &k);
    cr_expect_eq(dev.tp.error, VS_REASON_MSIX_RESERVED_BITS);
}

/* "Feature Bits": without VERSION_1 (this device has no legacy interface) FEATURES_OK
 * is refused; VERSION_1 without RING_PACKED is accepted and the queues use the split
 * format ("Basic Facilities of a Virtio Device / Virtqueues"). */
Test(vdev, features_ok_needs_version_1_and_picks_ring_format)
{
    map_bars();
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    write_features(0, 1u << (VIRTIO_F_RING_PACKED_BIT - 32));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    cr_expect_not(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    write_features(0, 1u << (VIRTIO_F_VERSION_1_BIT - 32));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    cr_expect(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    setup_queue(VNET_QUEUE_TX);
    cr_expect_str_eq(dev.tp.q[VNET_QUEUE_TX].ops->name, "split");
}

/* "Split Virtqueues": a frame goes out and comes back through split rings. */
Test(vdev, loopback_over_split_rings)
{
    map_bars();
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    write_features(0, 1u << (VIRTIO_F_VERSION_1_BIT - 32));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    setup_queue(VNET_QUEUE_RX);
    setup_queue(VNET_QUEUE_TX);
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
    const uint64_t txbuf = GUEST_BASE + 0x10000, rxbuf = GUEST_BASE + 0x20000;
    const uint32_t hdr = sizeof(struct virtio_net_hdr), len = 80;
    uint8_t *p = fake_guest_ptr(&g, txbuf, hdr + len);
    memset(p, 0, hdr);
    for (uint32_t i = 0; i < len; i++)
        p[hdr + i] = (uint8_t)(i ^ 0x5a);
    /* Descriptor 0 of each queue, avail ring entry 0 = 0, avail->idx = 1. */
    const uint64_t td = ring_desc(VNET_QUEUE_TX), rd_ = ring_desc(VNET_QUEUE_RX);
    fake_guest_put64(&g, td, txbuf);
    fake_guest_put32(&g, td + 8, hdr + len);
    fake_guest_put64(&g, rd_, rxbuf);
    fake_guest_put32(&g, rd_ + 8, 2048);
    fake_guest_put16(&g, rd_ + 12, VIRTQ_DESC_F_WRITE_MASK);
    fake_guest_put16(&g, ring_drv(VNET_QUEUE_TX) + 2, 1);
    fake_guest_put16(&g, ring_drv(VNET_QUEUE_RX) + 2, 1);
    struct pt_work w = {0};
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(memcmp(fake_guest_ptr(&g, rxbuf + hdr, len), p + hdr, len), 0);
    /* used->idx of both queues is 1; the RX used element says hdr + len bytes. */
    cr_expect_eq(fake_guest_get16(&g, ring_dev(VNET_QUEUE_TX) + 2), 1);
    cr_expect_eq(fake_guest_get16(&g, ring_dev(VNET_QUEUE_RX) + 2), 1);
    cr_expect_eq(fake_guest_get32(&g, ring_dev(VNET_QUEUE_RX) + 8), hdr + len);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* Parameter validation names what is wrong. */
Test(vdev, check_params)
{
    struct vdev_params p = default_params();
    cr_expect_null(vdev_check_params(&p));
    p.notify_off_multiplier = 6;
    cr_expect_not_null(vdev_check_params(&p));
    p = default_params();
    p.queue_size_max = 0;
    cr_expect_not_null(vdev_check_params(&p));
}

/* Hostile ring contents through the whole function: each ends in DEVICE_NEEDS_RESET
 * with the named reason and a configuration change notification. */
static void expect_needs_reset(enum vs_reason why)
{
    struct pt_work w = {0};
    cr_expect_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_FAILED);
    cr_expect_eq(dev.tp.error, why, "got %s", vs_reason_name(dev.tp.error));
    cr_expect_eq(dev.tp.error_queue, VNET_QUEUE_TX);
    cr_expect(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_expect_eq(dev.tp.stats.config_interrupts, 1);
    uint64_t before = fake_guest_accesses(&g);
    cr_expect_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_FAILED);
    cr_expect_eq(fake_guest_accesses(&g), before, "a broken device touches no memory");
}

/* "Packed Virtqueues / The Virtqueue Descriptor Table": buffer id beyond the queue size. */
Test(vdev, hostile_desc_id_out_of_range)
{
    bring_up();
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 12 + 60, RING_SIZE, false);
    expect_needs_reset(VS_REASON_DESC_ID_OUT_OF_RANGE);
}

/* "Scatter-Gather Support": a chain longer than the queue (every slot has NEXT). */
Test(vdev, hostile_chain_longer_than_ring)
{
    bring_up();
    for (unsigned i = 0; i < RING_SIZE; i++) {
        post(VNET_QUEUE_TX, i, GUEST_BASE + 0x10000, 12 + 60, 0, false);
        uint64_t f = ring_desc(VNET_QUEUE_TX) + 16u * i + 14;
        fake_guest_put16(&g, f, (uint16_t)(fake_guest_get16(&g, f) | VIRTQ_DESC_F_NEXT_MASK));
    }
    expect_needs_reset(VS_REASON_CHAIN_TOO_LONG);
}

/* "Indirect Flag: Scatter-Gather Support": indirect table length not a multiple of 16. */
Test(vdev, hostile_indirect_len_not_multiple_of_16)
{
    map_bars();
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    write_features(1u << VIRTIO_F_INDIRECT_DESC_BIT,
                   (1u << (VIRTIO_F_VERSION_1_BIT - 32)) | (1u << (VIRTIO_F_RING_PACKED_BIT - 32)));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    setup_queue(VNET_QUEUE_TX);
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 24, 0, false);
    uint64_t f = ring_desc(VNET_QUEUE_TX) + 14;
    fake_guest_put16(&g, f, (uint16_t)(fake_guest_get16(&g, f) | VIRTQ_DESC_F_INDIRECT_MASK));
    expect_needs_reset(VS_REASON_INDIRECT_LEN_NOT_MULTIPLE);
}

/* "Indirect Flag": INDIRECT without VIRTIO_F_INDIRECT_DESC negotiated. */
Test(vdev, hostile_indirect_not_negotiated)
{
    bring_up();
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 32, 0, false);
    uint64_t f = ring_desc(VNET_QUEUE_TX) + 14;
    fake_guest_put16(&g, f, (uint16_t)(fake_guest_get16(&g, f) | VIRTQ_DESC_F_INDIRECT_MASK));
    expect_needs_reset(VS_REASON_INDIRECT_NOT_NEGOTIATED);
}

/* Bus mastering off: MSI-X messages (memory writes) wait until it is back on. */
Test(vdev, msix_waits_for_bus_master)
{
    bring_up();
    uint8_t mcap = pci_cfg_find_cap(&dev.tp.pci, PCI_CAP_ID_MSIX, -1);
    pt_cfg_write(&dev.tp, mcap + 2u, 2, MSIX_MSGCTL_ENABLE_MASK);
    uint16_t k;
    const uint64_t entry = BAR2_BASE + (1 + VNET_QUEUE_TX) * MSIX_ENTRY_SIZE;
    cr_assert(pt_mmio_write(&dev.tp, entry + MSIX_ENTRY_ADDR_LO, 4, 0xfee00000u, &k));
    cr_assert(pt_mmio_write(&dev.tp, entry + MSIX_ENTRY_CTRL, 4, 0, &k));
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 12 + 60, 0, false);
    struct pt_work w = {0};
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    pt_cfg_write(&dev.tp, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
    struct msix_message m;
    cr_expect_not(pt_take_msi(&dev.tp, &m));
    pt_cfg_write(&dev.tp, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK);
    cr_expect(pt_take_msi(&dev.tp, &m));
}

/* "Device Status Field" after a reset the device works again: NEEDS_RESET is gone and
 * a fresh initialisation moves a frame. */
Test(vdev, reset_recovers_after_error)
{
    bring_up();
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 12 + 60, RING_SIZE + 3, false);
    struct pt_work w = {0};
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_FAILED);
    memset(fake_guest_ptr(&g, ring_desc(VNET_QUEUE_TX), 16u * RING_SIZE), 0, 16u * RING_SIZE);
    bring_up(); /* writes 0 to device_status first */
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 12 + 60, 1, false);
    cr_expect_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(dev.tp.stats.resets, 2);
}

/* A DMA the platform's IOMMU refuses ends in NEEDS_RESET with DMA_IOMMU_FAULT. */
Test(vdev, iommu_fault_needs_reset)
{
    bring_up();
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 12 + 60, 0, false);
    g.fail_kinds = 1u << VS_DMA_BUF_READ;
    g.fail_status = VS_DMA_IOMMU_FAULT;
    struct pt_work w = {0};
    cr_expect_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_FAILED);
    cr_expect_eq(dev.tp.error, VS_REASON_DMA_IOMMU_FAULT);
    cr_expect(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* The platform may suspend a step inside a DMA and run a register write meanwhile. A
 * driver that resets the device then ("Device Reset") must not find it in
 * NEEDS_RESET, and the suspended step must stop without touching the new state. */
struct reentrant_ops {
    struct vs_guest_ops inner;
    unsigned countdown; /* reset the device on this access */
};

static enum vs_dma_status reentrant_read(void *ctx, uint64_t addr, void *dst, uint32_t len,
                                         enum vs_dma_kind kind)
{
    struct reentrant_ops *r = ctx;
    if (r->countdown && --r->countdown == 0)
        wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    return r->inner.read(r->inner.ctx, addr, dst, len, kind);
}

static enum vs_dma_status reentrant_write(void *ctx, uint64_t addr, const void *src, uint32_t len,
                                          enum vs_dma_kind kind)
{
    struct reentrant_ops *r = ctx;
    if (r->countdown && --r->countdown == 0)
        wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    return r->inner.write(r->inner.ctx, addr, src, len, kind);
}

Test(vdev, reset_during_a_dma_stops_the_step_cleanly)
{
    for (unsigned at = 1; at <= 6; at++) {
        bring_up();
        memset(fake_guest_ptr(&g, ring_desc(VNET_QUEUE_TX), 16u * RING_SIZE), 0, 16u * RING_SIZE);
        post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, 12 + 60, 0, false);
        struct reentrant_ops r = {ops, at};
        struct vs_guest_ops rops = {reentrant_read, reentrant_write, &r};
        struct pt_work w = {0};
        enum pt_step st = vnet_tx_step(&dev.net, &rops, &w);
        if (r.countdown == 0) { /* the reset happened inside the step */
            cr_expect_eq(st, PT_STEP_IDLE, "reset at access %u", at);
            cr_expect_eq(dev.tp.error, VS_REASON_NONE, "reset at access %u: %s", at,
                         vs_reason_name(dev.tp.error));
            cr_expect_eq(rd(VIRTIO_PCI_COMMON_STATUS, 1), 0);
            cr_expect_not(dev.tp.q[VNET_QUEUE_TX].enabled);
        }
        pt_complete(&dev.tp, VNET_QUEUE_TX, &rops);
        pt_arm_notifications(&dev.tp, VNET_QUEUE_TX, &rops);
    }
}

/* ---- PCIe transactions per packet (docs/validation.md, regime 3) ----
 * N frames of 64 B posted at once on the TX queue (sink backend), one notification
 * (with NOTIFICATION_DATA: carrying the driver's next position), the driver's event
 * suppression in host RAM at "enable", used buffers published in batches of B. Every
 * access here is at most 76 bytes but the split ring's batch of used elements (B x 8,
 * at most 256 bytes, one max payload, not crossing 4 KiB), so each DMA read is one
 * memory read request plus one completion with data and each write one posted write
 * TLP. */
struct tx_counts {
    uint64_t reads, writes, msis;
};

static struct tx_counts count_tx_with(bool packed, bool notification_data, bool in_order,
                                      uint32_t batch, unsigned n, bool order_platform)
{
    teardown();
    struct vdev_params p = default_params();
    p.backend = VDEV_BACKEND_SINK;
    p.used_batch_max = batch;
    cr_assert(vdev_init(&dev, &p));
    fake_guest_init(&g, GUEST_BASE, GUEST_SIZE);
    ops = fake_guest_ops(&g);
    map_bars();
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    uint32_t hi = 1u << (VIRTIO_F_VERSION_1_BIT - 32);
    if (packed)
        hi |= 1u << (VIRTIO_F_RING_PACKED_BIT - 32);
    if (notification_data)
        hi |= 1u << (VIRTIO_F_NOTIFICATION_DATA_BIT - 32);
    if (order_platform)
        hi |= 1u << (VIRTIO_F_ORDER_PLATFORM_BIT - 32);
    if (in_order)
        hi |= 1u << (VIRTIO_F_IN_ORDER_BIT - 32);
    write_features(0, hi);
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, VNET_QUEUE_TX);
    wr(VIRTIO_PCI_COMMON_Q_SIZE, 2, 64);
    wr(VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)ring_desc(VNET_QUEUE_TX));
    wr(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)ring_drv(VNET_QUEUE_TX));
    wr(VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)ring_dev(VNET_QUEUE_TX));
    wr(VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
    wr(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
    uint8_t mcap = pci_cfg_find_cap(&dev.tp.pci, PCI_CAP_ID_MSIX, -1);
    pt_cfg_write(&dev.tp, mcap + 2u, 2, MSIX_MSGCTL_ENABLE_MASK);
    uint16_t k;
    pt_mmio_write(&dev.tp, BAR2_BASE + 2 * MSIX_ENTRY_SIZE + MSIX_ENTRY_ADDR_LO, 4, 0xfee00000u, &k);
    pt_mmio_write(&dev.tp, BAR2_BASE + 2 * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL, 4, 0, &k);

    const uint64_t d = ring_desc(VNET_QUEUE_TX);
    for (unsigned i = 0; i < n; i++) {
        fake_guest_put64(&g, d + 16u * i, GUEST_BASE + 0x10000 + 0x80u * i);
        fake_guest_put32(&g, d + 16u * i + 8, 12 + 64);
        if (packed) {
            fake_guest_put16(&g, d + 16u * i + 12, (uint16_t)i);
            fake_guest_put16(&g, d + 16u * i + 14, VIRTQ_DESC_F_AVAIL_MASK);
        } else {
            fake_guest_put16(&g, ring_drv(VNET_QUEUE_TX) + 4 + 2u * i, (uint16_t)i);
        }
    }
    if (!packed)
        fake_guest_put16(&g, ring_drv(VNET_QUEUE_TX) + 2, (uint16_t)n);

    /* "Driver Notifications": the queue index, and with NOTIFICATION_DATA the driver's
     * next position (split: its avail idx; packed: the next slot and wrap counter). */
    wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, VNET_QUEUE_TX);
    const uint8_t ncap = find_vcap(VIRTIO_PCI_CAP_NOTIFY_CFG);
    const uint64_t notify = BAR0_BASE + pt_cfg_read(&dev.tp, ncap + 8u, 4) +
                            rd(VIRTIO_PCI_COMMON_Q_NOFF, 2) * pt_cfg_read(&dev.tp, ncap + 16u, 4);
    const bool next_wrap = packed ? (n / 64u) % 2u == 0 : ((n >> 15) & 1u) != 0;
    const uint32_t next_off = packed ? n % 64u : n & VIRTIO_NOTIFY_DATA_OFF_MASK;
    if (notification_data)
        pt_mmio_write(&dev.tp, notify, 4,
                        VNET_QUEUE_TX | next_off << VIRTIO_NOTIFY_DATA_OFF_SHIFT |
                            (uint32_t)next_wrap << VIRTIO_NOTIFY_DATA_WRAP_BIT, &k);
    else
        pt_mmio_write(&dev.tp, notify, 2, VNET_QUEUE_TX, &k);
    cr_assert_eq(dev.tp.q[VNET_QUEUE_TX].kicks, 1);

    fake_guest_reset_counters(&g);
    struct pt_work w = {0};
    while (vnet_tx_step(&dev.net, &ops, &w) == PT_STEP_DONE)
        ;
    pt_complete(&dev.tp, VNET_QUEUE_TX, &ops);
    pt_arm_notifications(&dev.tp, VNET_QUEUE_TX, &ops);
    cr_assert_eq(dev.tp.error, VS_REASON_NONE, "%s", vs_reason_name(dev.tp.error));
    cr_assert_eq(dev.net.stats.backend.sink_frames, n);

    struct tx_counts c = {0, 0, 0};
    for (int kind = 0; kind < VS_DMA_KIND_COUNT; kind++) {
        c.reads += g.reads[kind];
        c.writes += g.writes[kind];
    }
    struct msix_message m;
    while (pt_take_msi(&dev.tp, &m))
        c.msis++;
    return c;
}

static struct tx_counts count_tx(bool packed, bool notification_data, uint32_t batch, unsigned n,
                                 bool order_platform)
{
    return count_tx_with(packed, notification_data, false, batch, n, order_platform);
}

/* With VIRTIO_F_ORDER_PLATFORM negotiated (as a hardware device expects).
 * Packed ("Packed Virtqueues"), per packet: the descriptor and the buffer (2 reads);
 * per batch of B: one read of the driver's event suppression structure, one MSI-X
 * message. Used descriptors: one write per buffer, the batch's first held back and
 * written last with its flags in the same 8-byte write ("Multi-buffer requests"), so
 * N writes; with IN_ORDER one per batch ("In-order use of descriptors": one used
 * descriptor with the last buffer's id stands for the batch of read-only buffers),
 * so N/B. Once per run: the pop that finds the next descriptor not available (1 read),
 * and going idle: the device's event suppression write plus a re-check of the next
 * descriptor's flags (1 write, 1 read).
 * Split ("Split Virtqueues"), per packet: the available ring entry, the descriptor and
 * the buffer (3 reads); per batch: the used elements in one write ("The Virtqueue Used
 * Ring": any grouping, before idx), the used->idx write, one read of the available
 * ring's flags, one MSI-X message. Once per run: avail->idx read when the device
 * starts, again when it has caught up (finding no more) and again when it re-checks
 * after going idle (3 reads), and the used->flags write (1 write). With
 * NOTIFICATION_DATA the first of those reads is the notification's idx ("Driver
 * Notifications"), so 2 reads; the other two stay, since while the device works
 * notifications are off and the driver may add buffers without one. IN_ORDER changes
 * nothing on the split ring (every used element is written: some in-order drivers read
 * each one's len). */
Test(vdev, pcie_transactions_per_packet)
{
    const unsigned n = 64;
    for (int packed = 0; packed <= 1; packed++)
        for (int nd = 0; nd <= 1; nd++)
            for (int io = 0; io <= 1; io++)
                for (uint32_t b = 1; b <= 32; b *= 32) {
                    struct tx_counts c = count_tx_with(packed, nd, io, b, n, true);
                    const uint64_t batches = n / b;
                    const uint64_t reads = packed ? 2u * n + batches + 2
                                                  : 3u * n + batches + (nd ? 2u : 3u);
                    const uint64_t writes = packed ? (io ? batches : n) + 1 : 2u * batches + 1;
                    cr_expect_eq(c.reads, reads, "%s, batch %u, notification data %d, in order %d: reads",
                                 packed ? "packed" : "split", b, nd, io);
                    cr_expect_eq(c.writes, writes,
                                 "%s, batch %u, notification data %d, in order %d: writes",
                                 packed ? "packed" : "split", b, nd, io);
                    cr_expect_eq(c.msis, batches, "%s, batch %u: MSI-X messages",
                                 packed ? "packed" : "split", b);
                }
}

/* "Reserved Feature Bits": without VIRTIO_F_ORDER_PLATFORM the device runs in its
 * slower mode: one read-back before each publication, so one more read per batch. */
Test(vdev, without_order_platform_one_flush_read_per_batch)
{
    for (uint32_t b = 1; b <= 32; b *= 32) {
        struct tx_counts with = count_tx(true, false, b, 64, true);
        struct tx_counts without = count_tx(true, false, b, 64, false);
        cr_expect_eq(without.reads, with.reads + 64 / b);
        cr_expect_eq(without.writes, with.writes);
        cr_expect_eq(g.reads[VS_DMA_FLUSH_READ], 64 / b);
    }
}

/* ==== Notifications coalescing ("Network Device / Device Operation / Control
 * Virtqueue / Notifications Coalescing") ==== */

#define CTRL_BUF (GUEST_BASE + 0x40000)
#define TXF_BUF  (GUEST_BASE + 0x50000)
#define HI(bit) (1u << ((bit) - 32))

/* Driver side of the control queue and the TX queue: next slot and wrap counter. */
static unsigned ctrl_slot, ctrl_sent, tx_slot;
static bool ctrl_wrap, tx_wrap;

static uint16_t avail_flags(bool wrap)
{
    /* "Driver Area": a descriptor is available when AVAIL equals the driver's wrap
     * counter and USED does not. */
    return (uint16_t)(wrap ? VIRTQ_DESC_F_AVAIL_MASK : VIRTQ_DESC_F_USED_MASK);
}

/* Re-create the device with a sink back end (TX frames never wait for RX buffers) and
 * bring it up with `lo`/`hi` features on top of VERSION_1 + RING_PACKED, RX and TX
 * queues and, with CTRL_VQ, the control queue. Returns whether FEATURES_OK stuck. */
static struct vdev_params coal_params(void)
{
    struct vdev_params p = default_params();
    p.backend = VDEV_BACKEND_SINK;
    return p;
}

static bool coal_bring_up_with(const struct vdev_params *p, uint32_t lo, uint32_t hi)
{
    vdev_fini(&dev);
    cr_assert(vdev_init(&dev, p));
    ctrl_slot = ctrl_sent = tx_slot = 0;
    ctrl_wrap = tx_wrap = true;
    map_bars();
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    write_features(lo, hi | HI(VIRTIO_F_VERSION_1_BIT) | HI(VIRTIO_F_RING_PACKED_BIT));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (!(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK))
        return false;
    wr(VIRTIO_PCI_COMMON_MSIX, 2, 0);
    setup_queue(VNET_QUEUE_RX);
    setup_queue(VNET_QUEUE_TX);
    if (lo & (1u << VIRTIO_NET_F_CTRL_VQ_BIT)) {
        setup_queue(VNET_QUEUE_CTRL);
        /* The driver polls for acks: interrupts_raised then counts TX and RX only. */
        fake_guest_put16(&g, ring_drv(VNET_QUEUE_CTRL) + 2, RING_EVENT_FLAGS_DISABLE);
    }
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
    return true;
}

/* The driver's initialisation again on the same device (after a reset). */
static bool coal_bring_up_all_again(void)
{
    ctrl_slot = ctrl_sent = tx_slot = 0;
    ctrl_wrap = tx_wrap = true;
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    write_features(1u << VIRTIO_NET_F_CTRL_VQ_BIT,
                   HI(VIRTIO_NET_F_NOTF_COAL_BIT) | HI(VIRTIO_NET_F_VQ_NOTF_COAL_BIT) |
                       HI(VIRTIO_F_VERSION_1_BIT) | HI(VIRTIO_F_RING_PACKED_BIT));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (!(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK))
        return false;
    for (unsigned q = 0; q < VNET_QUEUES; q++)
        setup_queue(q);
    fake_guest_put16(&g, ring_drv(VNET_QUEUE_CTRL) + 2, RING_EVENT_FLAGS_DISABLE);
    memset(fake_guest_ptr(&g, ring_desc(VNET_QUEUE_TX), 16u * RING_SIZE), 0, 16u * RING_SIZE);
    memset(fake_guest_ptr(&g, ring_desc(VNET_QUEUE_CTRL), 16u * RING_SIZE), 0, 16u * RING_SIZE);
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
    return true;
}

static bool coal_bring_up(uint32_t lo, uint32_t hi)
{
    struct vdev_params p = coal_params();
    return coal_bring_up_with(&p, lo, hi);
}

static void coal_bring_up_all_with(const struct vdev_params *p)
{
    cr_assert(coal_bring_up_with(p, 1u << VIRTIO_NET_F_CTRL_VQ_BIT,
                                 HI(VIRTIO_NET_F_NOTF_COAL_BIT) | HI(VIRTIO_NET_F_VQ_NOTF_COAL_BIT)));
}

static void coal_bring_up_all(void)
{
    struct vdev_params p = coal_params();
    coal_bring_up_all_with(&p);
}

/* Post one packed descriptor at queue q's next slot. */
static void post_next(unsigned q, unsigned *slot, bool *wrap, uint64_t addr, uint32_t len,
                      uint16_t id, uint16_t flags)
{
    uint64_t d = ring_desc(q) + 16u * *slot;
    fake_guest_put64(&g, d, addr);
    fake_guest_put32(&g, d + 8, len);
    fake_guest_put16(&g, d + 12, id);
    fake_guest_put16(&g, d + 14, (uint16_t)(flags | avail_flags(*wrap)));
    if (++*slot == RING_SIZE) {
        *slot = 0;
        *wrap = !*wrap;
    }
}

/* The loopback FIFO packs frames end to end in a byte ring and wraps to its start: many
 * laps of mixed sizes, maximum-size frames among them, with the FIFO kept between
 * almost empty and full, every frame comes out intact and in order. */
static uint8_t fifo_pattern(unsigned frame, uint32_t i) { return (uint8_t)(frame * 31u + i * 7u + 1u); }

Test(vdev, loopback_fifo_packs_and_wraps)
{
    static const uint32_t sizes[] = {1514, 1514, 60, 1514, 1514, 1514, 900, 1514, 61, 1513};
    const unsigned frames = 200;
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    bring_up();
    unsigned txs = 0, rxs = 0, sent = 0, received = 0;
    bool txw = true, rxw = true;
    struct pt_work w = {0};
    while (received < frames) {
        /* Fill the FIFO (4 frames), then take out one or two. */
        while (sent < frames && sent - received < 4) {
            const uint32_t len = sizes[sent % 10];
            const uint64_t buf = GUEST_BASE + 0x10000 + 0x800u * (sent % RING_SIZE);
            uint8_t *p = fake_guest_ptr(&g, buf, hdr + len);
            memset(p, 0, hdr);
            for (uint32_t i = 0; i < len; i++)
                p[hdr + i] = fifo_pattern(sent, i);
            post_next(VNET_QUEUE_TX, &txs, &txw, buf, hdr + len, (uint16_t)(sent % RING_SIZE), 0);
            cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE, "frame %u: %s", sent,
                         vs_reason_name(dev.tp.error));
            sent++;
        }
        cr_assert_leq(vnet_fifo_frames(&dev.net), 4);
        for (unsigned k = 0; k < 1u + (received % 7u == 0) && received < sent; k++) {
            const uint32_t len = sizes[received % 10];
            const uint64_t buf = GUEST_BASE + 0x40000 + 0x800u * (received % RING_SIZE);
            post_next(VNET_QUEUE_RX, &rxs, &rxw, buf, 2048, (uint16_t)(received % RING_SIZE),
                      VIRTQ_DESC_F_WRITE_MASK);
            cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
            const uint8_t *q = fake_guest_ptr(&g, buf + hdr, len);
            for (uint32_t i = 0; i < len; i++)
                cr_assert_eq(q[i], fifo_pattern(received, i), "frame %u byte %u", received, i);
            cr_assert_eq(fake_guest_get32(&g, ring_desc(VNET_QUEUE_RX) + 16u * ((rxs + RING_SIZE - 1u) % RING_SIZE) + 8),
                         hdr + len, "frame %u length", received);
            received++;
        }
    }
    cr_expect_eq(vnet_fifo_frames(&dev.net), 0);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* Send one control command: `in` (class, command, data; rlen bytes) device-readable,
 * then wlen device-writable bytes (0: none at all). Runs the control step and returns
 * the ack (0xff when nothing was written); *out gets the writable bytes. */
static uint8_t ctrl_send(const uint8_t *in, uint32_t rlen, uint32_t wlen, uint8_t *out)
{
    const uint64_t rbuf = CTRL_BUF + 0x100u * (ctrl_sent % 16u), wbuf = rbuf + 0x80;
    const uint16_t id = (uint16_t)(ctrl_sent % RING_SIZE);
    ctrl_sent++;
    memcpy(fake_guest_ptr(&g, rbuf, rlen), in, rlen);
    memset(fake_guest_ptr(&g, wbuf, 16), 0xff, 16);
    if (wlen == 0) {
        post_next(VNET_QUEUE_CTRL, &ctrl_slot, &ctrl_wrap, rbuf, rlen, id, 0);
    } else {
        post_next(VNET_QUEUE_CTRL, &ctrl_slot, &ctrl_wrap, rbuf, rlen, id, VIRTQ_DESC_F_NEXT_MASK);
        post_next(VNET_QUEUE_CTRL, &ctrl_slot, &ctrl_wrap, wbuf, wlen, id, VIRTQ_DESC_F_WRITE_MASK);
    }
    struct pt_work w = {0};
    enum pt_step st = vnet_ctrl_step(&dev.net, &ops, &w);
    if (st != PT_STEP_DONE)
        return 0xfe;
    if (out)
        memcpy(out, fake_guest_ptr(&g, wbuf, wlen), wlen);
    return wlen ? *fake_guest_ptr(&g, wbuf + wlen - 1, 1) : 0xff;
}

static uint8_t coal_cmd(uint8_t command, uint32_t max_packets, uint32_t max_usecs)
{
    uint8_t in[2 + sizeof(struct virtio_net_ctrl_coal)] = {VIRTIO_NET_CTRL_NOTF_COAL, command};
    vs_put_le32(in + 2, max_packets);
    vs_put_le32(in + 6, max_usecs);
    return ctrl_send(in, sizeof in, 1, NULL);
}

static uint8_t coal_vq_set(uint16_t vq, uint16_t reserved, uint32_t max_packets, uint32_t max_usecs)
{
    uint8_t in[2 + sizeof(struct virtio_net_ctrl_coal_vq)] = {VIRTIO_NET_CTRL_NOTF_COAL,
                                                             VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET};
    vs_put_le16(in + 2, vq);
    vs_put_le16(in + 4, reserved);
    vs_put_le32(in + 6, max_packets);
    vs_put_le32(in + 10, max_usecs);
    return ctrl_send(in, sizeof in, 1, NULL);
}

/* VQ_GET: vq_index + reserved readable, struct virtio_net_ctrl_coal + ack writable. */
static uint8_t coal_vq_get(uint16_t vq, uint32_t wlen, struct virtio_net_ctrl_coal *c)
{
    uint8_t in[2 + VIRTIO_NET_CTRL_COAL_VQ_IN_BYTES] = {VIRTIO_NET_CTRL_NOTF_COAL,
                                                       VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET};
    uint8_t out[16];
    vs_put_le16(in + 2, vq);
    uint8_t ack = ctrl_send(in, sizeof in, wlen, out);
    if (c && wlen >= 9) {
        c->max_packets = vs_le32(out + wlen - 9);
        c->max_usecs = vs_le32(out + wlen - 5);
    }
    return ack;
}

/* Transmit one 60-byte frame and run the TX step. */
static void tx_frame(void)
{
    const uint16_t id = (uint16_t)(tx_slot);
    post_next(VNET_QUEUE_TX, &tx_slot, &tx_wrap, TXF_BUF + 0x100u * id, 12 + 60, id, 0);
    struct pt_work w = {0};
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
}

/* "Feature bit requirements": NOTF_COAL and VQ_NOTF_COAL require CTRL_VQ; both are
 * offered. */
Test(vdev, coal_features_offered_and_require_ctrl_vq)
{
    map_bars();
    wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    uint32_t hi = (uint32_t)rd(VIRTIO_PCI_COMMON_DF, 4);
    cr_expect(hi & HI(VIRTIO_NET_F_NOTF_COAL_BIT));
    cr_expect(hi & HI(VIRTIO_NET_F_VQ_NOTF_COAL_BIT));
    cr_expect_not(coal_bring_up(0, HI(VIRTIO_NET_F_NOTF_COAL_BIT)));
    cr_expect_not(coal_bring_up(0, HI(VIRTIO_NET_F_VQ_NOTF_COAL_BIT)));
    cr_expect(coal_bring_up(1u << VIRTIO_NET_F_CTRL_VQ_BIT, HI(VIRTIO_NET_F_NOTF_COAL_BIT)));
    cr_expect(coal_bring_up(1u << VIRTIO_NET_F_CTRL_VQ_BIT, HI(VIRTIO_NET_F_VQ_NOTF_COAL_BIT)));
    cr_expect(coal_bring_up(1u << VIRTIO_NET_F_CTRL_VQ_BIT, 0));
}

/* TX_SET and RX_SET set all transmit (receive) queues; VQ_SET one queue; VQ_GET reads
 * back what is in force, in the writable bytes before the ack. */
Test(vdev, coal_every_command_and_vq_get_round_trip)
{
    coal_bring_up_all();
    struct virtio_net_ctrl_coal c;
    cr_expect_eq(coal_vq_get(VNET_QUEUE_RX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 0, "zero after reset");
    cr_expect_eq(c.max_usecs, 0);
    cr_expect_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 15, 10), VIRTIO_NET_OK);
    cr_expect_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_RX_SET, 32, 64), VIRTIO_NET_OK);
    cr_expect_eq(coal_vq_get(VNET_QUEUE_TX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 15);
    cr_expect_eq(c.max_usecs, 10);
    cr_expect_eq(coal_vq_get(VNET_QUEUE_RX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 32);
    cr_expect_eq(c.max_usecs, 64);
    cr_expect_eq(coal_vq_set(VNET_QUEUE_RX, 0, 7, 3), VIRTIO_NET_OK);
    cr_expect_eq(coal_vq_get(VNET_QUEUE_RX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 7);
    cr_expect_eq(c.max_usecs, 3);
    /* A larger writable part: the result still sits just before the ack (the last
     * writable byte); the used length says 9 bytes were written. */
    cr_expect_eq(coal_vq_get(VNET_QUEUE_TX, 13, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 15);
    cr_expect_eq(c.max_usecs, 10);
    cr_expect_eq(dev.net.stats.ctrl_ok, 8);
    cr_expect_eq(dev.net.stats.ctrl_err, 0);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* The spec's command sequence, on this device's one queue pair (queues 0 and 1): the
 * device "applies the last coalescing parameters set for a virtqueue, regardless of the
 * command used". */
Test(vdev, coal_spec_example_sequence)
{
    coal_bring_up_all();
    struct virtio_net_ctrl_coal c;
    cr_assert_eq(coal_vq_set(VNET_QUEUE_TX, 0, 2, 2), VIRTIO_NET_OK); /* "previous" TX */
    /* Command1: RX_SET sets the receive queue; the transmit queue keeps its own. */
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_RX_SET, 10, 11), VIRTIO_NET_OK);
    cr_assert_eq(coal_vq_get(VNET_QUEUE_TX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 2);
    /* Command2: VQ_SET vq 0. Command3: VQ_GET vq 0 answers command2's values. */
    cr_assert_eq(coal_vq_set(VNET_QUEUE_RX, 0, 20, 21), VIRTIO_NET_OK);
    cr_assert_eq(coal_vq_get(VNET_QUEUE_RX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 20);
    cr_expect_eq(c.max_usecs, 21);
    /* Command4: VQ_SET vq 1. Command5: TX_SET overrides it. Command6: VQ_GET vq 1
     * answers command5's values. */
    cr_assert_eq(coal_vq_set(VNET_QUEUE_TX, 0, 40, 41), VIRTIO_NET_OK);
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 50, 51), VIRTIO_NET_OK);
    cr_assert_eq(coal_vq_get(VNET_QUEUE_TX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 50);
    cr_expect_eq(c.max_usecs, 51);
    cr_assert_eq(coal_vq_get(VNET_QUEUE_RX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 20, "RX keeps command2's values");
}

/* VIRTIO_NET_ERR: a designated queue that is not an enabled TX/RX queue (device
 * normative), reserved ignored, short data, no room for VQ_GET's result, unknown
 * commands and classes. */
Test(vdev, coal_err_cases)
{
    coal_bring_up_all();
    struct virtio_net_ctrl_coal c;
    cr_expect_eq(coal_vq_set(VNET_QUEUE_CTRL, 0, 1, 1), VIRTIO_NET_ERR, "control queue");
    cr_expect_eq(coal_vq_set(5, 0, 1, 1), VIRTIO_NET_ERR, "no such queue");
    cr_expect_eq(coal_vq_get(VNET_QUEUE_CTRL, 9, &c), VIRTIO_NET_ERR);
    cr_expect_eq(coal_vq_get(7, 9, &c), VIRTIO_NET_ERR);
    cr_expect_eq(coal_vq_set(VNET_QUEUE_TX, 0xbeef, 3, 4), VIRTIO_NET_OK, "reserved ignored");
    cr_expect_eq(coal_vq_get(VNET_QUEUE_TX, 1, &c), VIRTIO_NET_ERR, "no room for the result");
    cr_expect_eq(coal_vq_get(VNET_QUEUE_TX, 8, &c), VIRTIO_NET_ERR, "no room for the result");
    cr_expect_eq(coal_cmd(4, 1, 1), VIRTIO_NET_ERR, "unknown command");
    uint8_t short_set[2 + 7] = {VIRTIO_NET_CTRL_NOTF_COAL, VIRTIO_NET_CTRL_NOTF_COAL_TX_SET};
    cr_expect_eq(ctrl_send(short_set, sizeof short_set, 1, NULL), VIRTIO_NET_ERR, "short data");
    uint8_t short_vq[2 + 11] = {VIRTIO_NET_CTRL_NOTF_COAL, VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET};
    cr_expect_eq(ctrl_send(short_vq, sizeof short_vq, 1, NULL), VIRTIO_NET_ERR, "short data");
    uint8_t other_class[2] = {0 /* VIRTIO_NET_CTRL_RX */, 0};
    cr_expect_eq(ctrl_send(other_class, sizeof other_class, 1, NULL), VIRTIO_NET_ERR);
    uint8_t lone[1] = {VIRTIO_NET_CTRL_NOTF_COAL};
    cr_expect_eq(ctrl_send(lone, sizeof lone, 1, NULL), VIRTIO_NET_ERR, "no command byte");
    cr_expect_eq(coal_vq_get(VNET_QUEUE_TX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 3, "failed commands changed nothing");
    cr_expect_eq(c.max_usecs, 4);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* "The driver MUST have negotiated the VIRTIO_NET_F_NOTF_COAL feature when issuing
 * commands ..._TX_SET and ..._RX_SET" (and VQ_NOTF_COAL for VQ_SET/VQ_GET): the device
 * answers a command of a feature not negotiated with VIRTIO_NET_ERR and changes nothing. */
Test(vdev, coal_commands_need_their_feature)
{
    struct virtio_net_ctrl_coal c;
    cr_assert(coal_bring_up(1u << VIRTIO_NET_F_CTRL_VQ_BIT, HI(VIRTIO_NET_F_NOTF_COAL_BIT)));
    cr_expect_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 4, 4), VIRTIO_NET_OK);
    cr_expect_eq(coal_vq_set(VNET_QUEUE_TX, 0, 1, 1), VIRTIO_NET_ERR);
    cr_expect_eq(coal_vq_get(VNET_QUEUE_TX, 9, &c), VIRTIO_NET_ERR);
    cr_expect_eq(dev.net.coal[VNET_QUEUE_TX].p.max_packets, 4);

    cr_assert(coal_bring_up(1u << VIRTIO_NET_F_CTRL_VQ_BIT, HI(VIRTIO_NET_F_VQ_NOTF_COAL_BIT)));
    cr_expect_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 4, 4), VIRTIO_NET_ERR);
    cr_expect_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_RX_SET, 4, 4), VIRTIO_NET_ERR);
    cr_expect_eq(coal_vq_set(VNET_QUEUE_TX, 0, 6, 6), VIRTIO_NET_OK);
    cr_expect_eq(coal_vq_get(VNET_QUEUE_TX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 6);

    cr_assert(coal_bring_up(1u << VIRTIO_NET_F_CTRL_VQ_BIT, 0));
    cr_expect_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_RX_SET, 4, 4), VIRTIO_NET_ERR);
    cr_expect_eq(dev.net.coal[VNET_QUEUE_RX].p.max_packets, 0);
}

/* "Upon disabling and re-enabling a transmit virtqueue, the device MUST set the
 * coalescing parameters of the virtqueue to those configured through ..._TX_SET, or,
 * if the driver did not set any TX coalescing parameters, to 0" (RX likewise);
 * "Upon reset, a device MUST initialize all coalescing parameters to 0." */
Test(vdev, coal_reenable_takes_class_values_and_reset_clears)
{
    cr_assert(coal_bring_up(1u << VIRTIO_NET_F_CTRL_VQ_BIT,
                            HI(VIRTIO_NET_F_NOTF_COAL_BIT) | HI(VIRTIO_NET_F_VQ_NOTF_COAL_BIT) |
                                HI(VIRTIO_F_RING_RESET_BIT)));
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 8, 50), VIRTIO_NET_OK);
    cr_assert_eq(coal_vq_set(VNET_QUEUE_TX, 0, 3, 5), VIRTIO_NET_OK);
    cr_assert_eq(coal_vq_set(VNET_QUEUE_RX, 0, 9, 9), VIRTIO_NET_OK);
    for (unsigned q = VNET_QUEUE_RX; q <= VNET_QUEUE_TX; q++) {
        wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
        wr(VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
    }
    struct virtio_net_ctrl_coal c;
    cr_expect_eq(coal_vq_get(VNET_QUEUE_TX, 9, &c), VIRTIO_NET_ERR, "disabled queue");
    setup_queue(VNET_QUEUE_TX);
    setup_queue(VNET_QUEUE_RX);
    cr_assert_eq(coal_vq_get(VNET_QUEUE_TX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 8);
    cr_expect_eq(c.max_usecs, 50);
    cr_assert_eq(coal_vq_get(VNET_QUEUE_RX, 9, &c), VIRTIO_NET_OK);
    cr_expect_eq(c.max_packets, 0, "no RX_SET: 0");
    cr_expect_eq(c.max_usecs, 0);

    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_expect_eq(dev.net.coal_tx_set.max_packets, 0);
    cr_expect_eq(dev.net.coal[VNET_QUEUE_TX].p.max_packets, 0);
    cr_expect_eq(dev.net.coal[VNET_QUEUE_TX].p.max_usecs, 0);
}

/* "Operation": the conditions are met upon max_packets packets; before that no
 * notification, and the platform is asked to run a max_usecs timer from the first. */
Test(vdev, coal_packet_count_threshold)
{
    coal_bring_up_all();
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 3, 100), VIRTIO_NET_OK);
    uint32_t usecs = 0, window = 0, first = 0;
    cr_expect_not(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &window), "nothing counted");
    tx_frame();
    cr_assert(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &first));
    cr_expect_eq(usecs, 100);
    tx_frame();
    cr_assert(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &window));
    cr_expect_eq(window, first, "same window until a decision");
    cr_expect_eq(dev.tp.stats.interrupts_raised, 0);
    tx_frame();
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);
    cr_expect_eq(dev.net.stats.coal_notify[VNET_QUEUE_TX][VNET_COAL_BY_PACKETS], 1);
    cr_expect_not(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &window));
    /* Counting starts again at the next packet, in a new window. */
    tx_frame();
    cr_assert(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &window));
    cr_expect_neq(window, first);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);
    /* max_packets = 1 is a boundary: every packet meets it. */
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 1, 100), VIRTIO_NET_OK);
    cr_expect_eq(vnet_coal_recheck(&dev.net, VNET_QUEUE_TX, &ops), PT_STEP_DONE);
    tx_frame();
    cr_expect_eq(dev.tp.stats.interrupts_raised, 3);
}

/* max_usecs elapsed (the platform's timer): the notification goes out; a timer for a
 * window that already ended does nothing. Either parameter 0: every packet notifies. */
Test(vdev, coal_timer_expiry_and_zero_parameters)
{
    coal_bring_up_all();
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 8, 20), VIRTIO_NET_OK);
    uint32_t usecs, window;
    tx_frame();
    tx_frame();
    cr_assert(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &window));
    cr_expect_eq(vnet_coal_expire(&dev.net, VNET_QUEUE_TX, window + 1, &ops), PT_STEP_IDLE);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 0);
    cr_expect_eq(vnet_coal_expire(&dev.net, VNET_QUEUE_TX, window, &ops), PT_STEP_DONE);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);
    cr_expect_eq(dev.net.stats.coal_notify[VNET_QUEUE_TX][VNET_COAL_BY_TIMER], 1);
    cr_expect_eq(vnet_coal_expire(&dev.net, VNET_QUEUE_TX, window, &ops), PT_STEP_IDLE, "stale");
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);

    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 8, 0), VIRTIO_NET_OK);
    tx_frame();
    cr_expect_eq(dev.tp.stats.interrupts_raised, 2, "max_usecs 0: every packet");
    cr_expect_not(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &window));
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 0, 20), VIRTIO_NET_OK);
    tx_frame();
    cr_expect_eq(dev.tp.stats.interrupts_raised, 3, "max_packets 0: every packet");
}

/* "Notifications When Coalescing Parameters Change": 5 packets counted under
 * max_packets 6, then TX_SET with max_packets 4: the condition is met at once. Raising
 * the threshold instead leaves the window open. Switching coalescing off with packets
 * counted meets the conditions too. */
Test(vdev, coal_parameter_change_rechecks_at_once)
{
    coal_bring_up_all();
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 6, 100), VIRTIO_NET_OK);
    cr_expect_eq(vnet_coal_recheck(&dev.net, VNET_QUEUE_TX, &ops), PT_STEP_IDLE, "nothing counted");
    for (int i = 0; i < 5; i++)
        tx_frame();
    cr_expect_eq(dev.tp.stats.interrupts_raised, 0);
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 12, 100), VIRTIO_NET_OK);
    cr_assert(vnet_coal_recheck_needed(&dev.net, VNET_QUEUE_TX));
    cr_expect_eq(vnet_coal_recheck(&dev.net, VNET_QUEUE_TX, &ops), PT_STEP_IDLE);
    cr_expect_not(vnet_coal_recheck_needed(&dev.net, VNET_QUEUE_TX));
    cr_assert_eq(coal_vq_set(VNET_QUEUE_TX, 0, 4, 100), VIRTIO_NET_OK);
    cr_expect_eq(vnet_coal_recheck(&dev.net, VNET_QUEUE_TX, &ops), PT_STEP_DONE);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);
    cr_expect_eq(dev.net.stats.coal_notify[VNET_QUEUE_TX][VNET_COAL_BY_CHANGE], 1);

    tx_frame();
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 0, 0), VIRTIO_NET_OK);
    cr_expect_eq(vnet_coal_recheck(&dev.net, VNET_QUEUE_TX, &ops), PT_STEP_DONE);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 2);
}

/* "A device SHOULD NOT send used buffer notifications to the driver if the
 * notifications are suppressed, even if the notification conditions are met." */
Test(vdev, coal_suppression_still_applies)
{
    coal_bring_up_all();
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 2, 100), VIRTIO_NET_OK);
    fake_guest_put16(&g, ring_drv(VNET_QUEUE_TX) + 2, RING_EVENT_FLAGS_DISABLE);
    tx_frame();
    tx_frame();
    cr_expect_eq(dev.tp.stats.interrupts_raised, 0);
    cr_expect_eq(dev.net.stats.coal_suppressed[VNET_QUEUE_TX], 1);
    uint32_t usecs, window;
    cr_expect_not(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &window), "window closed");
    tx_frame();
    cr_assert(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &window));
    cr_expect_eq(vnet_coal_expire(&dev.net, VNET_QUEUE_TX, window, &ops), PT_STEP_DONE);
    cr_expect_eq(dev.tp.stats.interrupts_raised, 0, "timer: still suppressed");
    cr_expect_eq(dev.net.stats.coal_suppressed[VNET_QUEUE_TX], 2);
    fake_guest_put16(&g, ring_drv(VNET_QUEUE_TX) + 2, RING_EVENT_FLAGS_ENABLE);
    tx_frame();
    tx_frame();
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);
}

/* Malformed control buffers. No device-writable byte: the device cannot answer, so it
 * needs a reset with a named reason. Fewer readable bytes than class + command, or a
 * buffer that is nothing but the ack byte: answered with VIRTIO_NET_ERR. */
Test(vdev, coal_malformed_control_buffers)
{
    coal_bring_up_all();
    uint8_t in[2 + 8] = {VIRTIO_NET_CTRL_NOTF_COAL, VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 1};
    /* Only the ack byte, no readable part: a single writable descriptor. */
    const uint64_t wbuf = CTRL_BUF + 0xf80;
    fake_guest_put16(&g, wbuf, 0xffff);
    post_next(VNET_QUEUE_CTRL, &ctrl_slot, &ctrl_wrap, wbuf, 1, 0, VIRTQ_DESC_F_WRITE_MASK);
    ctrl_sent++;
    struct pt_work w = {0};
    cr_expect_eq(vnet_ctrl_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(*fake_guest_ptr(&g, wbuf, 1), VIRTIO_NET_ERR);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);

    cr_expect_eq(ctrl_send(in, sizeof in, 0, NULL), 0xfe, "step failed");
    cr_expect_eq(dev.tp.error, VS_REASON_CTRL_NO_ACK_BYTE, "got %s", vs_reason_name(dev.tp.error));
    cr_expect_eq(dev.tp.error_queue, VNET_QUEUE_CTRL);
    cr_expect(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_expect_eq(dev.net.coal[VNET_QUEUE_TX].p.max_packets, 0, "command not applied");
    uint64_t before = fake_guest_accesses(&g);
    cr_expect_eq(vnet_ctrl_step(&dev.net, &ops, &w), PT_STEP_FAILED);
    cr_expect_eq(fake_guest_accesses(&g), before, "a broken device touches no memory");
}

/* "RX Example": the receive queue counts received packets the same way (loopback: each
 * transmitted frame lands in a posted receive buffer). TX is left uncoalesced. */
Test(vdev, coal_rx_queue_counts_received_packets)
{
    struct vdev_params p = default_params(); /* loopback */
    coal_bring_up_all_with(&p);
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_RX_SET, 3, 10), VIRTIO_NET_OK);
    fake_guest_put16(&g, ring_drv(VNET_QUEUE_TX) + 2, RING_EVENT_FLAGS_DISABLE);
    unsigned rx_slot = 0;
    bool rx_wrap = true;
    struct pt_work w = {0};
    uint32_t usecs, window;
    for (unsigned i = 0; i < 3; i++) {
        post_next(VNET_QUEUE_RX, &rx_slot, &rx_wrap, GUEST_BASE + 0x60000 + 0x800u * i, 2048,
                  (uint16_t)i, VIRTQ_DESC_F_WRITE_MASK);
        tx_frame();
        cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
        if (i < 2) {
            cr_expect_eq(dev.tp.stats.interrupts_raised, 0, "frame %u", i);
            cr_expect(vnet_coal_timer(&dev.net, VNET_QUEUE_RX, &usecs, &window));
            cr_expect_eq(usecs, 10);
        }
    }
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);
    cr_expect_eq(dev.net.stats.coal_notify[VNET_QUEUE_RX][VNET_COAL_BY_PACKETS], 1);
    cr_expect_eq(dev.net.stats.coal_notify[VNET_QUEUE_TX][VNET_COAL_BY_PACKETS], 0);
}

/* Buffers are counted when published: with used_batch_max 2 the count moves two at a
 * time, so max_packets 3 is met at the second publication (4 buffers). */
Test(vdev, coal_counts_published_batches)
{
    struct vdev_params p = coal_params();
    p.used_batch_max = 2;
    coal_bring_up_all_with(&p);
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 3, 100), VIRTIO_NET_OK);
    uint32_t usecs, window;
    tx_frame();
    cr_expect_not(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &window), "nothing published");
    tx_frame();
    cr_expect(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &window));
    tx_frame();
    cr_expect_eq(dev.tp.stats.interrupts_raised, 0);
    tx_frame();
    cr_expect_eq(dev.tp.stats.interrupts_raised, 1);
}

/* VQ_GET's result may straddle device-writable descriptors: it fills the 8 bytes
 * before the ack wherever they lie. */
Test(vdev, coal_vq_get_result_across_descriptors)
{
    coal_bring_up_all();
    cr_assert_eq(coal_vq_set(VNET_QUEUE_TX, 0, 0x01020304u, 0x0a0b0c0du), VIRTIO_NET_OK);
    uint8_t in[2 + VIRTIO_NET_CTRL_COAL_VQ_IN_BYTES] = {VIRTIO_NET_CTRL_NOTF_COAL,
                                                       VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET,
                                                       VNET_QUEUE_TX, 0};
    const uint64_t rbuf = CTRL_BUF + 0xc00, w1 = CTRL_BUF + 0xd00, w2 = CTRL_BUF + 0xe00;
    memcpy(fake_guest_ptr(&g, rbuf, sizeof in), in, sizeof in);
    memset(fake_guest_ptr(&g, w1, 3), 0xff, 3);
    memset(fake_guest_ptr(&g, w2, 6), 0xff, 6);
    post_next(VNET_QUEUE_CTRL, &ctrl_slot, &ctrl_wrap, rbuf, sizeof in, 7, VIRTQ_DESC_F_NEXT_MASK);
    post_next(VNET_QUEUE_CTRL, &ctrl_slot, &ctrl_wrap, w1, 3, 7,
              VIRTQ_DESC_F_NEXT_MASK | VIRTQ_DESC_F_WRITE_MASK);
    post_next(VNET_QUEUE_CTRL, &ctrl_slot, &ctrl_wrap, w2, 6, 7, VIRTQ_DESC_F_WRITE_MASK);
    struct pt_work w = {0};
    cr_assert_eq(vnet_ctrl_step(&dev.net, &ops, &w), PT_STEP_DONE);
    uint8_t out[9];
    memcpy(out, fake_guest_ptr(&g, w1, 3), 3);
    memcpy(out + 3, fake_guest_ptr(&g, w2, 6), 6);
    cr_expect_eq(vs_le32(out), 0x01020304u);
    cr_expect_eq(vs_le32(out + 4), 0x0a0b0c0du);
    cr_expect_eq(out[8], VIRTIO_NET_OK);
}

/* A device reset ends every counting window: the window a platform timer was started
 * for never matches a window of the re-initialised device, and nothing is counted. */
Test(vdev, coal_reset_ends_windows)
{
    coal_bring_up_all();
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 8, 100), VIRTIO_NET_OK);
    tx_frame();
    uint32_t usecs, old, now;
    cr_assert(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &old));
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_expect_not(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &now));
    cr_expect_eq(dev.net.coal[VNET_QUEUE_TX].counted, 0);
    cr_assert(coal_bring_up_all_again());
    cr_assert_eq(coal_cmd(VIRTIO_NET_CTRL_NOTF_COAL_TX_SET, 8, 100), VIRTIO_NET_OK);
    tx_frame();
    cr_assert(vnet_coal_timer(&dev.net, VNET_QUEUE_TX, &usecs, &now));
    cr_expect_neq(now, old);
    cr_expect_eq(vnet_coal_expire(&dev.net, VNET_QUEUE_TX, old, &ops), PT_STEP_IDLE, "stale");
}

/* ==== several buffers of one queue in flight (pt_take / pt_move / pt_finish) ==== */

static void setup_engines(uint32_t engines, uint32_t fifo_frames)
{
    vdev_fini(&dev);
    struct vdev_params p = default_params();
    p.queue_engines = engines;
    p.rx_fifo_frames = fifo_frames;
    cr_assert(vdev_init(&dev, &p));
    bring_up();
}

Test(vdev, engines_params_checked)
{
    struct vdev_params p = default_params();
    p.queue_engines = VDEV_ENGINES_MAX + 1;
    cr_expect_not_null(vdev_check_params(&p));
    p = default_params();
    p.fetch_batch = VQ_FETCH_BATCH_MAX + 1;
    cr_expect_not_null(vdev_check_params(&p));
    p = default_params();
    p.queue_engines = VDEV_ENGINES_MAX;
    p.fetch_batch = VQ_FETCH_BATCH_MAX;
    p.fetch_source = VQ_FETCH_READ_AHEAD;
    cr_expect_null(vdev_check_params(&p));
}

/* Buffers whose data moves out of order still complete in the order they were taken:
 * a later one waits (PT_STEP_WAIT) and touches nothing; used descriptors and the
 * loopback FIFO keep ring order. */
Test(vdev, engines_finish_in_take_order)
{
    setup_engines(3, 8);
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    for (unsigned i = 0; i < 3; i++)
        post(VNET_QUEUE_TX, i, GUEST_BASE + 0x10000 + 0x100 * i, hdr + 60 + i, (uint16_t)(5 + i), false);
    struct pt_work w = {0};
    for (unsigned k = 0; k < 3; k++) {
        enum pt_step st = pt_take(&dev.tp, VNET_QUEUE_TX, k, &ops, &w);
        cr_assert_eq(st, PT_STEP_DONE, "take %u: %d (%s)", k, st, vs_reason_name(dev.tp.error));
    }
    cr_expect_eq(w.descs, 3);
    for (int k = 2; k >= 0; k--)
        cr_assert_eq(pt_move(&dev.tp, VNET_QUEUE_TX, (unsigned)k, &w), PT_STEP_DONE);
    uint64_t before = fake_guest_accesses(&g);
    /* pt_finish_waits answers as pt_finish will, before the call */
    cr_expect(pt_finish_waits(&dev.tp, VNET_QUEUE_TX, 2));
    cr_expect(pt_finish_waits(&dev.tp, VNET_QUEUE_TX, 1));
    cr_expect_not(pt_finish_waits(&dev.tp, VNET_QUEUE_TX, 0), "slot 0's turn");
    cr_expect_not(pt_finish_waits(&dev.tp, VNET_QUEUE_TX, 3), "beyond the engines in use");
    cr_expect_not(pt_finish_waits(&dev.tp, VNET_QUEUES, 0), "no such queue");
    cr_expect_not(pt_finish_waits(&dev.tp, VNET_QUEUE_RX, 1), "no buffer taken");
    cr_expect_eq(pt_finish(&dev.tp, VNET_QUEUE_TX, 2, &w), PT_STEP_WAIT);
    cr_expect_eq(pt_finish(&dev.tp, VNET_QUEUE_TX, 1, &w), PT_STEP_WAIT);
    cr_expect_eq(fake_guest_accesses(&g), before, "a waiting finish touched memory");
    cr_expect_eq(vnet_fifo_frames(&dev.net), 0);
    cr_assert_eq(pt_finish(&dev.tp, VNET_QUEUE_TX, 0, &w), PT_STEP_DONE);
    cr_expect(pt_finish_waits(&dev.tp, VNET_QUEUE_TX, 2));
    cr_expect_not(pt_finish_waits(&dev.tp, VNET_QUEUE_TX, 1), "slot 1's turn");
    cr_expect_not(pt_finish_waits(&dev.tp, VNET_QUEUE_TX, 0), "finished");
    cr_expect_eq(pt_finish(&dev.tp, VNET_QUEUE_TX, 2, &w), PT_STEP_WAIT);
    cr_assert_eq(pt_finish(&dev.tp, VNET_QUEUE_TX, 1, &w), PT_STEP_DONE);
    cr_assert_eq(pt_finish(&dev.tp, VNET_QUEUE_TX, 2, &w), PT_STEP_DONE);
    for (unsigned i = 0; i < 3; i++) {
        cr_expect_eq(fake_guest_get16(&g, ring_desc(VNET_QUEUE_TX) + 16u * i + 12), 5 + i);
        cr_expect_eq(dev.net.fifo[0].frames[i].len, 60 + i, "FIFO keeps ring order");
    }
    cr_expect_eq(vnet_fifo_frames(&dev.net), 3);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* Loopback back-pressure counts the FIFO places buffers in flight will fill. */
Test(vdev, engines_fifo_places_reserved_at_take)
{
    setup_engines(4, 2);
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    for (unsigned i = 0; i < 3; i++)
        post(VNET_QUEUE_TX, i, GUEST_BASE + 0x10000 + 0x100 * i, hdr + 60, (uint16_t)i, false);
    struct pt_work w = {0};
    cr_assert_eq(pt_take(&dev.tp, VNET_QUEUE_TX, 0, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(pt_take(&dev.tp, VNET_QUEUE_TX, 1, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(pt_take(&dev.tp, VNET_QUEUE_TX, 2, &ops, &w), PT_STEP_BLOCKED);
    cr_expect_eq(vnet_fifo_frames(&dev.net), 0);
}

/* Several receive buffers in flight take frames from the FIFO in order and write each
 * into its own buffer. */
Test(vdev, engines_rx_in_flight)
{
    setup_engines(2, 8);
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    for (unsigned i = 0; i < 2; i++) {
        uint8_t *p = fake_guest_ptr(&g, GUEST_BASE + 0x10000 + 0x100 * i, hdr + 60);
        memset(p, 0, hdr);
        memset(p + hdr, 0xa0 + (int)i, 60);
        post(VNET_QUEUE_TX, i, GUEST_BASE + 0x10000 + 0x100 * i, hdr + 60, (uint16_t)i, false);
        post(VNET_QUEUE_RX, i, GUEST_BASE + 0x20000 + 0x1000 * i, 2048, (uint16_t)(4 + i), true);
    }
    struct pt_work w = {0};
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(pt_take(&dev.tp, VNET_QUEUE_RX, 0, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(pt_take(&dev.tp, VNET_QUEUE_RX, 1, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(vnet_fifo_frames(&dev.net), 0);
    cr_assert_eq(pt_move(&dev.tp, VNET_QUEUE_RX, 1, &w), PT_STEP_DONE);
    cr_assert_eq(pt_move(&dev.tp, VNET_QUEUE_RX, 0, &w), PT_STEP_DONE);
    cr_assert_eq(pt_finish(&dev.tp, VNET_QUEUE_RX, 0, &w), PT_STEP_DONE);
    cr_assert_eq(pt_finish(&dev.tp, VNET_QUEUE_RX, 1, &w), PT_STEP_DONE);
    for (unsigned i = 0; i < 2; i++) {
        const uint8_t *q = fake_guest_ptr(&g, GUEST_BASE + 0x20000 + 0x1000 * i + hdr, 60);
        cr_expect_eq(q[0], 0xa0 + i);
        cr_expect_eq(fake_guest_get16(&g, ring_desc(VNET_QUEUE_RX) + 16u * i + 12), 4 + i);
    }
}

/* A reset while buffers are in flight: their move and finish stop at once (IDLE) and
 * touch no memory; the re-initialised queue numbers its buffers afresh. */
Test(vdev, engines_reset_with_buffers_in_flight)
{
    setup_engines(2, 8);
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    for (unsigned i = 0; i < 2; i++)
        post(VNET_QUEUE_TX, i, GUEST_BASE + 0x10000 + 0x100 * i, hdr + 60, (uint16_t)i, false);
    struct pt_work w = {0};
    cr_assert_eq(pt_take(&dev.tp, VNET_QUEUE_TX, 0, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(pt_take(&dev.tp, VNET_QUEUE_TX, 1, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(pt_move(&dev.tp, VNET_QUEUE_TX, 0, &w), PT_STEP_DONE);
    cr_expect(pt_finish_waits(&dev.tp, VNET_QUEUE_TX, 1));
    bring_up(); /* resets the device and enables the queues again */
    cr_expect_not(pt_finish_waits(&dev.tp, VNET_QUEUE_TX, 1), "stale: finish says IDLE");
    uint64_t before = fake_guest_accesses(&g);
    cr_expect_eq(pt_finish(&dev.tp, VNET_QUEUE_TX, 0, &w), PT_STEP_IDLE);
    cr_expect_eq(pt_move(&dev.tp, VNET_QUEUE_TX, 1, &w), PT_STEP_IDLE);
    cr_expect_eq(pt_finish(&dev.tp, VNET_QUEUE_TX, 1, &w), PT_STEP_IDLE);
    cr_expect_eq(fake_guest_accesses(&g), before, "a stale buffer touched memory");
    cr_expect_eq(vnet_fifo_frames(&dev.net), 0);
    /* the new queue: a fresh buffer at slot 0 of the ring goes through on slot 1 */
    for (unsigned i = 0; i < RING_SIZE; i++)
        fake_guest_put16(&g, ring_desc(VNET_QUEUE_TX) + 16u * i + 14, 0);
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, hdr + 60, 3, false);
    cr_assert_eq(pt_take(&dev.tp, VNET_QUEUE_TX, 1, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(pt_move(&dev.tp, VNET_QUEUE_TX, 1, &w), PT_STEP_DONE);
    cr_assert_eq(pt_finish(&dev.tp, VNET_QUEUE_TX, 1, &w), PT_STEP_DONE);
    cr_expect_eq(vnet_fifo_frames(&dev.net), 1);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* Hostile input on one slot while another is in flight: the device needs a reset with
 * the named reason, and the other slot's later phases report the failure. */
Test(vdev, engines_hostile_buffer_fails_the_device)
{
    setup_engines(2, 8);
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    post(VNET_QUEUE_TX, 0, GUEST_BASE + 0x10000, hdr + 60, 0, false);
    post(VNET_QUEUE_TX, 1, GUEST_BASE + 0x10000, hdr + 60, 1, true); /* writable: not TX */
    struct pt_work w = {0};
    cr_assert_eq(pt_take(&dev.tp, VNET_QUEUE_TX, 0, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(pt_take(&dev.tp, VNET_QUEUE_TX, 1, &ops, &w), PT_STEP_FAILED);
    cr_expect_not(pt_finish_waits(&dev.tp, VNET_QUEUE_TX, 0), "failed: finish says FAILED");
    cr_expect_eq(dev.tp.error, VS_REASON_TX_HAS_WRITABLE);
    cr_expect_eq(pt_move(&dev.tp, VNET_QUEUE_TX, 0, &w), PT_STEP_FAILED);
    cr_expect_eq(pt_finish(&dev.tp, VNET_QUEUE_TX, 0, &w), PT_STEP_FAILED);
    cr_expect(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* ---- VIRTIO_NET_F_MRG_RXBUF ("Network Device / Device Operation / Setting Up Receive
 * Buffers", "Processing of Incoming Packets") ---- */

static void mrg_setup(void)
{
    struct vdev_params p = default_params();
    p.mrg_rxbuf = true;
    cr_assert(vdev_init(&dev, &p));
    fake_guest_init(&g, GUEST_BASE, GUEST_SIZE);
    ops = fake_guest_ops(&g);
}

TestSuite(mrg, .init = mrg_setup, .fini = teardown);

/* The initialisation sequence accepting MRG_RXBUF, packed or split rings. */
static void mrg_bring_up(bool packed)
{
    map_bars();
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    write_features(1u << VIRTIO_NET_F_MRG_RXBUF_BIT,
                   (1u << (VIRTIO_F_VERSION_1_BIT - 32)) |
                       (packed ? 1u << (VIRTIO_F_RING_PACKED_BIT - 32) : 0));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    cr_assert(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    setup_queue(VNET_QUEUE_RX);
    setup_queue(VNET_QUEUE_TX);
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
    cr_assert(pt_negotiated(&dev.tp, VIRTIO_NET_F_MRG_RXBUF_BIT));
}

#define MRG_TXBUF (GUEST_BASE + 0x10000)
#define MRG_RXBUF(i) (GUEST_BASE + 0x20000 + 0x1000u * (i))

/* Transmit a frame of len bytes (byte i: i * 5 + seed) in loopback from packed TX
 * slot `slot`, so it waits in the FIFO. */
static void mrg_send_packed(unsigned slot, uint32_t len, uint8_t seed)
{
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    uint8_t *p = fake_guest_ptr(&g, MRG_TXBUF + 0x800u * slot, hdr + len);
    memset(p, 0, hdr);
    for (uint32_t i = 0; i < len; i++)
        p[hdr + i] = (uint8_t)(i * 5 + seed);
    post(VNET_QUEUE_TX, slot, MRG_TXBUF + 0x800u * slot, hdr + len, (uint16_t)slot, false);
    struct pt_work w = {0};
    cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
}

/* Receive buffers of sizes[0..n) hold, in ring order, the header then the frame: check
 * num_buffers in the first, every byte, and each used element's id and length (every
 * buffer but the last used "completely up to the full length"). Packed ring. */
static void mrg_expect_packed(const uint32_t *sizes, unsigned n, uint32_t len, uint8_t seed)
{
    const uint32_t hdr = sizeof(struct virtio_net_hdr);
    struct virtio_net_hdr h;
    memcpy(&h, fake_guest_ptr(&g, MRG_RXBUF(0), hdr), hdr);
    cr_expect_eq(h.num_buffers, n, "num_buffers %u, want %u", h.num_buffers, n);
    cr_expect_eq(h.flags, 0);
    cr_expect_eq(h.gso_type, 0);
    uint32_t at = 0; /* header + frame bytes checked */
    for (unsigned b = 0; b < n; b++) {
        const uint32_t used = hdr + len - at < sizes[b] ? hdr + len - at : sizes[b];
        const uint8_t *q = fake_guest_ptr(&g, MRG_RXBUF(b), sizes[b]);
        for (uint32_t i = 0; i < used; i++, at++)
            if (at >= hdr)
                cr_assert_eq(q[i], (uint8_t)((at - hdr) * 5 + seed), "buffer %u byte %u", b, i);
        cr_expect_eq(fake_guest_get16(&g, ring_desc(VNET_QUEUE_RX) + 16u * b + 12), 2 + b);
        cr_expect_eq(fake_guest_get32(&g, ring_desc(VNET_QUEUE_RX) + 16u * b + 8), used,
                     "buffer %u used length", b);
    }
    cr_expect_eq(at, hdr + len);
}

static void mrg_post_rx_packed(const uint32_t *sizes, unsigned n)
{
    for (unsigned b = 0; b < n; b++)
        post(VNET_QUEUE_RX, b, MRG_RXBUF(b), sizes[b], (uint16_t)(2 + b), true);
}

/* The feature is offered only under device.mrg_rxbuf (default off: every shipped
 * study keeps its device). */
Test(mrg, offered_only_when_asked)
{
    map_bars();
    wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    cr_expect(rd(VIRTIO_PCI_COMMON_DF, 4) & (1u << VIRTIO_NET_F_MRG_RXBUF_BIT));
    struct vdev other;
    struct vdev_params p = default_params();
    cr_assert(vdev_init(&other, &p));
    cr_expect_not(vs_feature_has(&other.tp.p.device_features, VIRTIO_NET_F_MRG_RXBUF_BIT));
    vdev_fini(&other);
}

/* "num_buffers indicates how many descriptors": a frame that fits takes one buffer,
 * num_buffers 1, used length header + frame. */
Test(mrg, frame_in_one_buffer)
{
    mrg_bring_up(true);
    const uint32_t sizes[] = {2048};
    mrg_send_packed(0, 100, 1);
    mrg_post_rx_packed(sizes, 1);
    struct pt_work w = {0};
    enum pt_step st = vnet_rx_step(&dev.net, &ops, &w);
    cr_assert_eq(st, PT_STEP_DONE, "step %d error %d fifo %u", st, dev.tp.error, vnet_fifo_frames(&dev.net));
    mrg_expect_packed(sizes, 1, 100, 1);
    cr_expect_eq(dev.net.stats.rx_merged_frames, 0);
    cr_expect_eq(dev.net.stats.rx_frames, 1);
    cr_expect_eq(dev.net.stats.rx_bytes, 100);
}

/* A frame over two buffers: the first full, num_buffers 2, publication held until the
 * second is pushed ("use all buffers used by a single receive packet together"). */
Test(mrg, frame_in_two_buffers)
{
    mrg_bring_up(true);
    const uint32_t sizes[] = {64, 64};
    mrg_send_packed(0, 100, 2);
    mrg_post_rx_packed(sizes, 2);
    struct pt_work w = {0};
    cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    /* The first buffer is pushed but not published: its descriptor is still available
     * to the device (packed: the used flags are written at publication). */
    const uint16_t flags0 = fake_guest_get16(&g, ring_desc(VNET_QUEUE_RX) + 14);
    cr_expect_eq(flags0 & VIRTQ_DESC_F_USED_MASK, 0, "published before the frame's last buffer");
    cr_expect_eq(vnet_fifo_frames(&dev.net), 1);
    cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(vnet_fifo_frames(&dev.net), 0);
    mrg_expect_packed(sizes, 2, 100, 2);
    cr_expect_eq(dev.net.stats.rx_merged_frames, 1);
    cr_expect_eq(dev.net.stats.rx_frames, 1);
    cr_expect_eq(dev.net.stats.rx_bytes, 100);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* k buffers of different sizes, the smallest the header's size: each but the last
 * used to its full length. */
Test(mrg, frame_in_k_buffers_of_different_sizes)
{
    mrg_bring_up(true);
    const uint32_t sizes[] = {12, 40, 30, 17, 200};
    const uint32_t len = 12 + 40 + 30 + 17 + 5 - 12; /* the last buffer takes 5 bytes */
    mrg_send_packed(0, len, 3);
    mrg_post_rx_packed(sizes, 5);
    struct pt_work w = {0};
    for (unsigned b = 0; b < 5; b++)
        cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    mrg_expect_packed(sizes, 5, len, 3);
    cr_expect_eq(dev.net.stats.rx_frames, 1);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* "each buffer MUST be at least size of struct virtio_net_hdr": a smaller one is a
 * driver bug the device cannot work around: NEEDS_RESET, RX_BUFFER_TOO_SMALL. */
Test(mrg, buffer_smaller_than_header_needs_reset)
{
    mrg_bring_up(true);
    const uint32_t sizes[] = {64, 11};
    mrg_send_packed(0, 100, 4);
    mrg_post_rx_packed(sizes, 2);
    struct pt_work w = {0};
    cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_FAILED);
    cr_expect_eq(dev.tp.error, VS_REASON_RX_BUFFER_TOO_SMALL);
}

/* Not enough buffers: the frame waits (BLOCKED, as with no buffer at all) with what it
 * took, nothing published, and goes on in the next buffer the driver makes available. */
Test(mrg, frame_waits_for_its_next_buffer)
{
    mrg_bring_up(true);
    const uint32_t sizes[] = {64, 64};
    mrg_send_packed(0, 100, 5);
    mrg_post_rx_packed(sizes, 1);
    struct pt_work w = {0};
    cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_expect_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_BLOCKED);
    cr_expect_eq(pt_complete(&dev.tp, VNET_QUEUE_RX, &ops), PT_STEP_IDLE);
    cr_expect_eq(fake_guest_get16(&g, ring_desc(VNET_QUEUE_RX) + 14) & VIRTQ_DESC_F_USED_MASK, 0);
    mrg_post_rx_packed(sizes, 2);
    cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    mrg_expect_packed(sizes, 2, 100, 5);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* Split ring, 8 entries: three frames of three buffers each (48 + 48 + 16 bytes), the
 * third over descriptors 6, 7 and 0 (reused) and avail / used entries 6, 7, 8 % 8: the
 * frame spans the wrap. Header with num_buffers 3 in each frame's first buffer. */
Test(mrg, split_ring_wrap_while_a_frame_spans_buffers)
{
    mrg_bring_up(false);
    const uint32_t hdr = sizeof(struct virtio_net_hdr), len = 100, bsz = 48;
    const uint64_t td = ring_desc(VNET_QUEUE_TX), rd_ = ring_desc(VNET_QUEUE_RX);
    struct pt_work w = {0};
    for (unsigned f = 0; f < 3; f++) {
        uint8_t *p = fake_guest_ptr(&g, MRG_TXBUF, hdr + len);
        memset(p, 0, hdr);
        for (uint32_t i = 0; i < len; i++)
            p[hdr + i] = (uint8_t)(i * 5 + 10 * f);
        fake_guest_put64(&g, td + 16u * f, MRG_TXBUF);
        fake_guest_put32(&g, td + 16u * f + 8, hdr + len);
        fake_guest_put16(&g, ring_drv(VNET_QUEUE_TX) + 4 + 2u * f, (uint16_t)f);
        fake_guest_put16(&g, ring_drv(VNET_QUEUE_TX) + 2, (uint16_t)(f + 1));
        cr_assert_eq(vnet_tx_step(&dev.net, &ops, &w), PT_STEP_DONE);
        for (unsigned b = 0; b < 3; b++) {
            const unsigned a = 3 * f + b, d = a % RING_SIZE;
            fake_guest_put64(&g, rd_ + 16u * d, MRG_RXBUF(a));
            fake_guest_put32(&g, rd_ + 16u * d + 8, bsz);
            fake_guest_put16(&g, rd_ + 16u * d + 12, VIRTQ_DESC_F_WRITE_MASK);
            fake_guest_put16(&g, ring_drv(VNET_QUEUE_RX) + 4 + 2u * d, (uint16_t)d);
            fake_guest_put16(&g, ring_drv(VNET_QUEUE_RX) + 2, (uint16_t)(a + 1));
            cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
            /* Published only at the frame's last buffer. */
            cr_expect_eq(fake_guest_get16(&g, ring_dev(VNET_QUEUE_RX) + 2),
                         b == 2 ? a + 1 : 3 * f, "used idx after buffer %u", a);
        }
        struct virtio_net_hdr h;
        memcpy(&h, fake_guest_ptr(&g, MRG_RXBUF(3 * f), hdr), hdr);
        cr_expect_eq(h.num_buffers, 3);
        uint32_t at = 0;
        for (unsigned b = 0; b < 3; b++) {
            const unsigned a = 3 * f + b, u = a % RING_SIZE;
            const uint32_t used = b < 2 ? bsz : hdr + len - 2 * bsz;
            const uint8_t *q = fake_guest_ptr(&g, MRG_RXBUF(a), bsz);
            for (uint32_t i = 0; i < used; i++, at++)
                if (at >= hdr)
                    cr_assert_eq(q[i], (uint8_t)((at - hdr) * 5 + 10 * f), "frame %u buffer %u", f, b);
            cr_expect_eq(fake_guest_get32(&g, ring_dev(VNET_QUEUE_RX) + 4 + 8u * u), u);
            cr_expect_eq(fake_guest_get32(&g, ring_dev(VNET_QUEUE_RX) + 8 + 8u * u), used);
        }
    }
    cr_expect_eq(dev.net.stats.rx_merged_frames, 3);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* Three engines: a frame over three buffers taken into slots 0..2, moved last to first
 * (the first buffer's frame bytes land after the last buffer wrote the header: they
 * are disjoint), finished in take order; nothing is published before the last push. */
Test(mrg, engines_move_in_any_order)
{
    vdev_fini(&dev);
    struct vdev_params p = default_params();
    p.mrg_rxbuf = true;
    p.queue_engines = 3;
    p.used_batch_max = 1;
    cr_assert(vdev_init(&dev, &p));
    mrg_bring_up(true);
    const uint32_t sizes[] = {48, 48, 48};
    mrg_send_packed(0, 120, 6); /* 132 bytes: 48 + 48 + 36 */
    mrg_post_rx_packed(sizes, 3);
    struct pt_work w = {0};
    for (unsigned k = 0; k < 3; k++)
        cr_assert_eq(pt_take(&dev.tp, VNET_QUEUE_RX, k, &ops, &w), PT_STEP_DONE);
    for (unsigned k = 3; k-- > 0;)
        cr_assert_eq(pt_move(&dev.tp, VNET_QUEUE_RX, k, &w), PT_STEP_DONE);
    for (unsigned k = 0; k < 3; k++) {
        cr_expect_eq(fake_guest_get16(&g, ring_desc(VNET_QUEUE_RX) + 14) & VIRTQ_DESC_F_USED_MASK,
                     0, "published before buffer %u was pushed", k);
        cr_assert_eq(pt_finish(&dev.tp, VNET_QUEUE_RX, k, &w), PT_STEP_DONE);
    }
    mrg_expect_packed(sizes, 3, 120, 6);
    cr_expect_eq(dev.tp.error, VS_REASON_NONE);
}

/* A device reset while a frame is spread over buffers: the frame in progress and the
 * hold go with it; the device comes up again and receives whole frames. */
Test(mrg, reset_mid_frame_clears_it)
{
    mrg_bring_up(true);
    const uint32_t sizes[] = {64, 64};
    mrg_send_packed(0, 100, 7);
    mrg_post_rx_packed(sizes, 1);
    struct pt_work w = {0};
    cr_assert_eq(vnet_rx_step(&dev.net, &ops, &w), PT_STEP_DONE);
    cr_assert(dev.net.rx_merge[VNET_QUEUE_RX].active);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_expect_not(dev.net.rx_merge[VNET_QUEUE_RX].active);
    cr_expect_not(dev.net.rx_group_open[VNET_QUEUE_RX]);
    cr_expect_eq(vnet_fifo_frames(&dev.net), 0);
}
