/* test_transport.c -- the PCI transport (model/pci_transport.h) on its own, driven
 * through a toy second personality defined here: a block-like device with one request
 * queue ("Device Types / Block Device": struct virtio_blk_req, VIRTIO_BLK_T_IN/OUT, a
 * 512-byte sector store, le64 capacity as its device configuration). It uses only
 * struct pt_device, one struct pt_role and the pt_* calls, which shows a device type
 * is addable without touching the transport (issue 15). The net personality's own
 * behaviour is tested in test_vdev.c. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/fake_guest.h"
#include "common/pt_rig.h"
#include "pci_transport.h"

#define GUEST_BASE 0x100000ull
#define GUEST_SIZE (1u << 20)
#define BAR0_BASE PT_RIG_BAR0
#define RING_SIZE 8u
#define RING_DESC (GUEST_BASE + 0x1000u)
#define RING_DRV  (GUEST_BASE + 0x1800u)
#define RING_DEV  (GUEST_BASE + 0x1900u)
#define BUFS      (GUEST_BASE + 0x10000u)

/* ---- The toy personality ("Block Device", only what the test needs) ---- */
#define TOY_ID_BLOCK       2u     /* "Block Device / Device ID" */
#define TOY_BLK_F_RO_BIT   5u     /* "Block Device / Feature bits": device is read-only */
#define TOY_BLK_T_IN       0u
#define TOY_BLK_T_OUT      1u
#define TOY_BLK_S_OK       0u
#define TOY_BLK_S_IOERR    1u
#define TOY_BLK_S_UNSUPP   2u
#define TOY_SECTORS        8u
#define TOY_REQ_HDR        16u    /* le32 type, le32 reserved, le64 sector */

struct toy_blk {
    struct pt tp;
    uint8_t store[TOY_SECTORS * 512u];
    uint64_t capacity;            /* device configuration: le64 capacity, sectors */
    bool refuse_features;         /* features_ok answers false */
    unsigned features_checked, resets, queue_resets, queue_enables, decided;
    /* per slot: the request as read at take */
    struct { uint32_t type; uint64_t sector; uint32_t data_len; uint8_t status; } req[PT_ENGINES_MAX];
};

static bool toy_features_ok(void *ctx, const vs_features *drv)
{
    (void)drv;
    struct toy_blk *b = ctx;
    b->features_checked++;
    return !b->refuse_features;
}

static uint64_t toy_config_read(void *ctx, uint32_t off, unsigned size)
{
    const struct toy_blk *b = ctx;
    uint64_t v = 0;
    if (off + size <= sizeof b->capacity)
        memcpy(&v, (const uint8_t *)&b->capacity + off, size);
    return v;
}

static void toy_queue_enabled(void *ctx, uint16_t q) { (void)q; ((struct toy_blk *)ctx)->queue_enables++; }
static void toy_queue_reset(void *ctx, uint16_t q) { (void)q; ((struct toy_blk *)ctx)->queue_resets++; }
static void toy_reset(void *ctx) { ((struct toy_blk *)ctx)->resets++; }

static const struct pt_device toy_device = {
    .features_ok = toy_features_ok,
    .config_read = toy_config_read,
    .queue_enabled = toy_queue_enabled,
    .queue_reset = toy_queue_reset,
    .reset = toy_reset,
};

/* Take: pop the request and read its header (device-readable, 16 bytes). */
static enum pt_step toy_take(void *ctx, uint16_t q, unsigned k, struct pt_slot *sl, struct pt_work *w)
{
    struct toy_blk *b = ctx;
    enum pt_step st = pt_pop(&b->tp, q, sl, w);
    if (st != PT_STEP_DONE)
        return st;
    uint8_t hdr[TOY_REQ_HDR];
    uint32_t got = 0;
    enum vs_dma_status s = pt_read_segments(&sl->gate.ops, sl->segs, sl->e.nsegs, hdr, sizeof hdr, &got);
    if (s != VS_DMA_OK)
        return pt_dma_failed(&b->tp, q, sl, s);
    memset(&b->req[k], 0, sizeof b->req[k]);
    memcpy(&b->req[k].type, hdr, 4);
    memcpy(&b->req[k].sector, hdr + 8, 8);
    b->req[k].status = got < TOY_REQ_HDR ? TOY_BLK_S_IOERR : TOY_BLK_S_OK;
    return PT_STEP_DONE;
}

/* Move: the data between the store and the buffer, then the status byte (the last
 * device-writable byte). */
static enum pt_step toy_move(void *ctx, uint16_t q, unsigned k, struct pt_slot *sl, struct pt_work *w)
{
    struct toy_blk *b = ctx;
    uint8_t *at = b->store + b->req[k].sector * 512u;
    uint32_t written = 0;
    if (b->req[k].status == TOY_BLK_S_OK && b->req[k].type == TOY_BLK_T_OUT) {
        uint8_t buf[TOY_REQ_HDR + 512u];
        uint32_t got = 0;
        enum vs_dma_status s = pt_read_segments(&sl->gate.ops, sl->segs, sl->e.nsegs, buf, sizeof buf, &got);
        if (s != VS_DMA_OK)
            return pt_dma_failed(&b->tp, q, sl, s);
        if (b->req[k].sector >= TOY_SECTORS || got != sizeof buf) {
            b->req[k].status = TOY_BLK_S_IOERR;
        } else {
            memcpy(at, buf + TOY_REQ_HDR, 512u);
            w->bytes_read += got;
        }
    } else if (b->req[k].status == TOY_BLK_S_OK && b->req[k].type == TOY_BLK_T_IN) {
        if (b->req[k].sector >= TOY_SECTORS || sl->e.writable_bytes != 512u + 1u) {
            b->req[k].status = TOY_BLK_S_IOERR;
        } else {
            enum vs_dma_status s = pt_write_segments(&sl->gate.ops, sl->segs, sl->e.nsegs, at, 512u);
            if (s != VS_DMA_OK)
                return pt_dma_failed(&b->tp, q, sl, s);
            written = 512u;
        }
    } else if (b->req[k].status == TOY_BLK_S_OK) {
        b->req[k].status = TOY_BLK_S_UNSUPP;
    }
    if (sl->e.writable_bytes == 0) { /* toy: no room for a status; returned unanswered */
        b->req[k].data_len = 0;
        return PT_STEP_DONE;
    }
    enum vs_dma_status s = pt_write_writable_at(&sl->gate.ops, sl->segs, sl->e.nsegs,
                                                sl->e.writable_bytes - 1u, &b->req[k].status, 1);
    if (s != VS_DMA_OK)
        return pt_dma_failed(&b->tp, q, sl, s);
    b->req[k].data_len = written + 1u;
    w->bytes_written += written + 1u;
    w->buffers++;
    return PT_STEP_DONE;
}

static void toy_finish(void *ctx, uint16_t q, unsigned k, struct pt_slot *sl)
{
    (void)q;
    sl->written = ((struct toy_blk *)ctx)->req[k].data_len;
}

static void toy_decided(void *ctx, uint16_t q, unsigned cause, bool interrupt)
{
    (void)q;
    (void)interrupt;
    cr_assert_eq(cause, PT_DECIDE_EVERY); /* no published hook: every publication decided */
    ((struct toy_blk *)ctx)->decided++;
}

static const struct pt_role toy_request_role = {
    .take = toy_take, .move = toy_move, .finish = toy_finish,
    .published = NULL, .decided = toy_decided,
    .idle_waits_for_driver = true,
};

/* ---- The rig ---- */
static struct toy_blk blk;
static const struct pt_role *toy_role = &toy_request_role; /* queue 0's role at init_toy */
static struct fake_guest g;
static struct vs_guest_ops ops;

/* The toy's function: 64-bit BARs and MSI-X unless bars_32bit / no_msix. */
static void init_toy_pci(uint32_t engines, bool bars_32bit, bool no_msix)
{
    memset(&blk, 0, sizeof blk);
    blk.capacity = TOY_SECTORS;
    struct pt_params p;
    memset(&p, 0, sizeof p);
    p.device_id = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + TOY_ID_BLOCK);
    p.class_code = 0x018000u; /* mass storage, other */
    p.revision_id = 1;
    p.queue_size_max = 64;
    p.notify_off_multiplier = 0; /* every queue notified at one address, the index in the data */
    p.num_queues = 1;
    vs_feature_set(&p.device_features, TOY_BLK_F_RO_BIT);
    p.device_cfg_bytes = sizeof blk.capacity;
    p.used_batch_max = 1;
    p.engines = engines;
    p.bars_32bit = bars_32bit;
    p.no_msix = no_msix;
    const struct pt_role *roles[1] = {toy_role};
    cr_assert(pt_init(&blk.tp, &p, &toy_device, &blk, roles));
}

static void init_toy(uint32_t engines)
{
    init_toy_pci(engines, false, false);
}

static void setup(void)
{
    init_toy(1);
    fake_guest_init(&g, GUEST_BASE, GUEST_SIZE);
    ops = fake_guest_ops(&g);
}

static void teardown(void)
{
    pt_fini(&blk.tp);
    fake_guest_free(&g);
}

static uint8_t find_vcap(uint8_t cfg_type) { return pt_rig_find_vcap(&blk.tp, cfg_type); }

static uint64_t cap_addr(uint8_t cfg_type, uint32_t field)
{
    uint8_t cap = find_vcap(cfg_type);
    cr_assert(cap != 0);
    return BAR0_BASE + pt_cfg_read(&blk.tp, cap + 8u, 4) + field;
}

static void wr(uint32_t field, unsigned size, uint64_t v) { cr_assert(pt_rig_wr(&blk.tp, field, size, v)); }
static uint64_t rd(uint32_t field, unsigned size) { return pt_rig_rd(&blk.tp, field, size); }
static void map_bars(void) { pt_rig_map_bars(&blk.tp); }

/* "Device Initialization" up to FEATURES_OK; returns whether it stuck. */
static bool negotiate(void)
{
    map_bars();
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    wr(VIRTIO_PCI_COMMON_GF, 4, 0);
    wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    wr(VIRTIO_PCI_COMMON_GF, 4, (1u << (VIRTIO_F_VERSION_1_BIT - 32)) | (1u << (VIRTIO_F_RING_PACKED_BIT - 32)));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    return (rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK) != 0;
}

static void enable_queue(void)
{
    wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    wr(VIRTIO_PCI_COMMON_Q_SIZE, 2, RING_SIZE);
    wr(VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)RING_DESC);
    wr(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)RING_DRV);
    wr(VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)RING_DEV);
    wr(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

static void bring_up(void)
{
    cr_assert(negotiate());
    enable_queue();
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
}

/* Put a packed-ring descriptor at ring slot `slot` (first lap: AVAIL set, USED clear). */
static void put_desc(unsigned slot, uint64_t addr, uint32_t len, uint16_t id, uint16_t flags)
{
    uint64_t d = RING_DESC + 16u * slot;
    fake_guest_put64(&g, d, addr);
    fake_guest_put32(&g, d + 8, len);
    fake_guest_put16(&g, d + 12, id);
    fake_guest_put16(&g, d + 14, (uint16_t)(VIRTQ_DESC_F_AVAIL_MASK | flags));
}

/* A request at ring slots slot..slot+2: header, 512 data bytes (device-writable for
 * IN), status byte. Buffers at BUFS + 0x1000 * id. */
static uint64_t put_request_header(uint16_t id, uint32_t type, uint64_t sector)
{
    const uint64_t at = BUFS + 0x1000u * id;
    fake_guest_put32(&g, at, type);
    fake_guest_put32(&g, at + 4, 0);
    fake_guest_put64(&g, at + 8, sector);
    return at;
}

static void post_request(unsigned slot, uint16_t id, uint32_t type, uint64_t sector)
{
    const uint64_t at = put_request_header(id, type, sector);
    const uint16_t data_w = type == TOY_BLK_T_IN ? VIRTQ_DESC_F_WRITE_MASK : 0;
    put_desc(slot + 2, at + 0x800, 1, id, VIRTQ_DESC_F_WRITE_MASK);
    put_desc(slot + 1, at + 0x100, 512, id, (uint16_t)(VIRTQ_DESC_F_NEXT_MASK | data_w));
    put_desc(slot, at, TOY_REQ_HDR, id, VIRTQ_DESC_F_NEXT_MASK);
}

static uint8_t status_of(uint16_t id) { return fake_guest_ptr(&g, BUFS + 0x1000u * id + 0x800, 1)[0]; }

TestSuite(transport, .init = setup, .fini = teardown);

/* "Virtio Over PCI Bus / PCI Device Discovery": device ID 0x1040 + the device type's
 * ID; the class code and the common, notify, ISR and device capabilities come from the
 * transport whatever the type ("Virtio Structure PCI Capabilities"). */
Test(transport, toy_identity_and_capabilities_come_from_the_transport)
{
    cr_assert_eq(pt_cfg_read(&blk.tp, PCI_VENDOR_ID, 2), VIRTIO_PCI_VENDOR_ID);
    cr_assert_eq(pt_cfg_read(&blk.tp, PCI_DEVICE_ID, 2), 0x1042u);
    cr_assert_eq(pt_cfg_read(&blk.tp, PCI_CLASS_PROG, 1) | (pt_cfg_read(&blk.tp, PCI_CLASS_DEVICE, 2) << 8),
                 0x018000u);
    cr_assert(find_vcap(VIRTIO_PCI_CAP_COMMON_CFG) != 0);
    cr_assert(find_vcap(VIRTIO_PCI_CAP_NOTIFY_CFG) != 0);
    cr_assert(find_vcap(VIRTIO_PCI_CAP_ISR_CFG) != 0);
    uint8_t dev = find_vcap(VIRTIO_PCI_CAP_DEVICE_CFG);
    cr_assert(dev != 0);
    cr_assert_eq(pt_cfg_read(&blk.tp, dev + 12u, 4), sizeof blk.capacity); /* cap.length */
    map_bars();
    cr_assert_eq(rd(VIRTIO_PCI_COMMON_NUMQ, 2), 1u);
    /* The toy's offered bit next to the transport's own. */
    wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
    cr_assert(rd(VIRTIO_PCI_COMMON_DF, 4) & (1u << TOY_BLK_F_RO_BIT));
    wr(VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    cr_assert(rd(VIRTIO_PCI_COMMON_DF, 4) & (1u << (VIRTIO_F_VERSION_1_BIT - 32)));
}

/* "Virtio Structure PCI Capabilities": common, notify, ISR, device and PCI-cfg access
 * capabilities are all present; MSI-X too; every structure lies inside its BAR. */
Test(transport, capabilities_present_and_inside_bars)
{
    const uint8_t types[] = {VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_NOTIFY_CFG,
                             VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_DEVICE_CFG,
                             VIRTIO_PCI_CAP_PCI_CFG};
    for (unsigned i = 0; i < sizeof types; i++)
        cr_expect_neq(find_vcap(types[i]), 0, "cfg_type %u missing", types[i]);
    cr_expect_neq(pci_cfg_find_cap(&blk.tp.pci, PCI_CAP_ID_MSIX, -1), 0);
    for (unsigned i = 0; i < 4; i++) {
        uint8_t cap = find_vcap(types[i]);
        uint8_t bar = (uint8_t)pt_cfg_read(&blk.tp, cap + 4u, 1);
        uint32_t off = pt_cfg_read(&blk.tp, cap + 8u, 4), len = pt_cfg_read(&blk.tp, cap + 12u, 4);
        cr_assert_lt(bar, PCI_NUM_BARS);
        cr_expect_leq((uint64_t)off + len, blk.tp.pci.bar_size[bar]);
        cr_expect_eq(off % 4, 0, "structures are 4-byte aligned");
    }
}

/* "Notification capability": the notify capability carries notify_off_multiplier,
 * and with NOTIFICATION_DATA offered it is 0 or a power of two multiple of 4 and
 * cap.length covers every queue's notify address + 4. */
Test(transport, notify_capability_multiplier_and_length)
{
    uint8_t cap = find_vcap(VIRTIO_PCI_CAP_NOTIFY_CFG);
    cr_assert_neq(cap, 0);
    cr_expect_eq(pt_cfg_read(&blk.tp, cap + 2u, 1), sizeof(struct virtio_pci_notify_cap));
    uint32_t mult = pt_cfg_read(&blk.tp, cap + 16u, 4);
    cr_expect_eq(mult, 0); /* the toy's: one address for every queue */
    uint32_t len = pt_cfg_read(&blk.tp, cap + 12u, 4);
    cr_expect_geq(len, 4u);
}

/* PCI BAR sizing: 64-bit memory BARs report their size. */
Test(transport, bar_sizing)
{
    pt_cfg_write(&blk.tp, PCI_BAR0, 4, 0xffffffffu);
    pt_cfg_write(&blk.tp, PCI_BAR0 + 4, 4, 0xffffffffu);
    uint32_t lo = pt_cfg_read(&blk.tp, PCI_BAR0, 4);
    cr_expect_eq(lo & 0x7, PCI_BAR_MEM_TYPE_64_MASK);
    uint64_t mask = ((uint64_t)pt_cfg_read(&blk.tp, PCI_BAR0 + 4, 4) << 32) | (lo & ~0xfu);
    cr_expect_eq(~mask + 1, blk.tp.pci.bar_size[0]);
}

/* Memory-space enable gates BAR decode (PCI command register bit 1). */
Test(transport, memory_enable_gates_bars)
{
    map_bars();
    uint64_t v;
    cr_expect(pt_mmio_read(&blk.tp, cap_addr(VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_NUMQ), 2, &v));
    cr_expect_eq(v, 1u);
    pt_cfg_write(&blk.tp, PCI_COMMAND, 2, 0);
    cr_expect_not(pt_mmio_read(&blk.tp, BAR0_BASE + VIRTIO_PCI_COMMON_NUMQ, 2, &v));
    cr_expect_eq(v, 0xffff, "unclaimed reads return all-ones");
}

/* "PCI configuration access capability": a read of pci_cfg_data performs a read of
 * cap.length bytes at cap.offset in cap.bar; a write performs the write. */
Test(transport, pci_cfg_access_window)
{
    map_bars();
    uint8_t cap = find_vcap(VIRTIO_PCI_CAP_PCI_CFG);
    uint8_t ccap = find_vcap(VIRTIO_PCI_CAP_COMMON_CFG);
    uint32_t common = pt_cfg_read(&blk.tp, ccap + 8u, 4);
    pt_cfg_write(&blk.tp, cap + 4u, 1, 0);
    pt_cfg_write(&blk.tp, cap + 8u, 4, common + VIRTIO_PCI_COMMON_NUMQ);
    pt_cfg_write(&blk.tp, cap + 12u, 4, 2);
    cr_expect_eq(pt_cfg_read(&blk.tp, cap + 16u, 4) & 0xffff, 1u);
    /* Write device_status = ACKNOWLEDGE through the window. */
    pt_cfg_write(&blk.tp, cap + 8u, 4, common + VIRTIO_PCI_COMMON_STATUS);
    pt_cfg_write(&blk.tp, cap + 12u, 4, 1);
    pt_cfg_write(&blk.tp, cap + 16u, 4, VIRTIO_STATUS_ACKNOWLEDGE);
    cr_expect_eq(rd(VIRTIO_PCI_COMMON_STATUS, 1), VIRTIO_STATUS_ACKNOWLEDGE);
}

/* "Device Configuration Space": the transport routes the device region to the
 * personality's config_read ("Block Device / Device configuration layout": capacity). */
Test(transport, device_configuration_reads_reach_the_personality)
{
    map_bars();
    uint64_t v = 0;
    cr_assert(pt_mmio_read(&blk.tp, cap_addr(VIRTIO_PCI_CAP_DEVICE_CFG, 0), 8, &v));
    cr_assert_eq(v, TOY_SECTORS);
    cr_assert(pt_mmio_read(&blk.tp, cap_addr(VIRTIO_PCI_CAP_DEVICE_CFG, 0), 4, &v));
    cr_assert_eq(v, TOY_SECTORS);
}

/* "Device Initialization" / "Feature Bits": the device type's dependencies are asked at
 * FEATURES_OK; a refusal leaves FEATURES_OK clear for the driver's re-read. */
Test(transport, features_ok_asks_the_personality)
{
    blk.refuse_features = true;
    cr_assert_not(negotiate());
    cr_assert_geq(blk.features_checked, 1u);
    blk.refuse_features = false;
    cr_assert(negotiate());
}

/* "Block Device / Device Operation" through the transport: a write then a read of one
 * sector; each used buffer is published and, with nothing suppressed, decided on and
 * signalled by the ISR's queue bit without MSI-X ("Used Buffer Notifications",
 * "ISR status capability"). */
Test(transport, a_request_queue_moves_data_through_the_roles)
{
    bring_up();
    cr_assert_eq(blk.queue_enables, 1u);
    uint8_t *src = fake_guest_ptr(&g, BUFS + 0x1000u * 0 + 0x100, 512);
    for (unsigned i = 0; i < 512; i++)
        src[i] = (uint8_t)(i * 7u);
    post_request(0, 0, TOY_BLK_T_OUT, 3);
    struct pt_work w = {0};
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(status_of(0), TOY_BLK_S_OK);
    cr_assert_eq(memcmp(blk.store + 3 * 512, src, 512), 0);
    cr_assert_eq(w.descs, 3u);

    post_request(3, 1, TOY_BLK_T_IN, 3);
    memset(&w, 0, sizeof w);
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(status_of(1), TOY_BLK_S_OK);
    cr_assert_eq(memcmp(fake_guest_ptr(&g, BUFS + 0x1000u + 0x100, 512), src, 512), 0);
    /* Used element of the second request, at its head slot: id 1, 513 bytes written. */
    cr_assert_eq(fake_guest_get16(&g, RING_DESC + 16u * 3 + 12), 1u);
    cr_assert_eq(fake_guest_get32(&g, RING_DESC + 16u * 3 + 8), 513u);

    cr_assert_eq(blk.decided, 2u);
    cr_assert_eq(blk.tp.stats.interrupts_raised, 2u);
    uint64_t isr = 0;
    cr_assert(pt_mmio_read(&blk.tp, cap_addr(VIRTIO_PCI_CAP_ISR_CFG, 0), 1, &isr));
    cr_assert(isr & VIRTIO_PCI_ISR_QUEUE_MASK);
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_IDLE); /* ring empty */
}

/* Buffers of one queue complete in the order they were taken, whatever order their
 * engines finish in (valid with and without "In-order use of descriptors"). */
Test(transport, buffers_finish_in_take_order)
{
    pt_fini(&blk.tp);
    init_toy(2);
    bring_up();
    post_request(0, 0, TOY_BLK_T_IN, 0);
    post_request(3, 1, TOY_BLK_T_IN, 1);
    struct pt_work w = {0};
    cr_assert_eq(pt_take(&blk.tp, 0, 0, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(pt_take(&blk.tp, 0, 1, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(pt_move(&blk.tp, 0, 1, &w), PT_STEP_DONE);
    cr_assert(pt_finish_waits(&blk.tp, 0, 1));
    cr_assert_eq(pt_finish(&blk.tp, 0, 1, &w), PT_STEP_WAIT);
    cr_assert_eq(pt_move(&blk.tp, 0, 0, &w), PT_STEP_DONE);
    cr_assert_eq(pt_finish(&blk.tp, 0, 0, &w), PT_STEP_DONE);
    cr_assert_not(pt_finish_waits(&blk.tp, 0, 1));
    cr_assert_eq(pt_finish(&blk.tp, 0, 1, &w), PT_STEP_DONE);
    cr_assert_eq(fake_guest_get16(&g, RING_DESC + 12), 0u);     /* first used: id 0 */
    cr_assert_eq(fake_guest_get16(&g, RING_DESC + 16u * 3 + 12), 1u); /* then id 1, past the 3 slots of the first */
}

/* "Device Status Field": guest input the ring kernels reject (a buffer id at or above
 * the queue size) sets DEVICE_NEEDS_RESET with a named reason, whatever the device
 * type; later steps fail cleanly; "Device Reset" clears it and calls the
 * personality's reset. */
Test(transport, ring_violation_needs_reset_then_device_reset_recovers)
{
    bring_up();
    const unsigned resets_before = blk.resets;
    put_desc(0, BUFS, TOY_REQ_HDR, RING_SIZE, 0); /* id == queue size */
    struct pt_work w = {0};
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_FAILED);
    cr_assert_eq(blk.tp.error, VS_REASON_DESC_ID_OUT_OF_RANGE);
    cr_assert_eq(blk.tp.error_queue, 0u);
    cr_assert(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_FAILED);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_assert_eq(blk.tp.error, VS_REASON_NONE);
    cr_assert_eq(blk.resets, resets_before + 1u);
    cr_assert_not(pt_queue_live(&blk.tp, 0));
}

/* "Virtqueue Reset": queue_reset clears the queue and tells the personality; a
 * re-enabled queue starts from the ring's beginning ("Virtqueue Re-enable"). */
Test(transport, queue_reset_reaches_the_personality)
{
    map_bars();
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    wr(VIRTIO_PCI_COMMON_GF, 4, (1u << (VIRTIO_F_VERSION_1_BIT - 32)) | (1u << (VIRTIO_F_RING_PACKED_BIT - 32)) |
                                    (1u << (VIRTIO_F_RING_RESET_BIT - 32)));
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    cr_assert(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    enable_queue();
    wr(VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
    post_request(0, 0, TOY_BLK_T_IN, 0);
    struct pt_work w = {0};
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_DONE);
    const unsigned before = blk.queue_resets;
    wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    wr(VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
    cr_assert_eq(blk.queue_resets, before + 1u);
    cr_assert_not(pt_queue_live(&blk.tp, 0));
    memset(fake_guest_ptr(&g, RING_DESC, 16u * RING_SIZE), 0, 16u * RING_SIZE);
    enable_queue();
    post_request(0, 2, TOY_BLK_T_IN, 1);
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(status_of(2), TOY_BLK_S_OK);
}

/* "Notification structure layout" (notify_off_multiplier 0: the queue index is the data
 * written): a notification naming a queue the function does not have is a named
 * violation, whatever the device type. */
Test(transport, notify_of_a_missing_queue_needs_reset)
{
    bring_up();
    uint8_t ncap = find_vcap(VIRTIO_PCI_CAP_NOTIFY_CFG);
    uint64_t at = BAR0_BASE + pt_cfg_read(&blk.tp, ncap + 8u, 4);
    uint16_t kicked = 0;
    cr_assert(pt_mmio_write(&blk.tp, at, 2, 1, &kicked)); /* queue 1: none */
    cr_assert_eq(kicked, PT_NO_QUEUE);
    cr_assert_eq(blk.tp.error, VS_REASON_NOTIFY_QUEUE_INVALID);
}

/* ---- Legacy PCI presentation: 32-bit BARs, no MSI-X, INTx (issue 16) ---- */

#define BAR1_BASE 0xC0100000ull

static void reinit_toy(bool bars_32bit, bool no_msix)
{
    pt_fini(&blk.tp);
    init_toy_pci(1, bars_32bit, no_msix);
}

static uint32_t cfg16(uint32_t off) { return pt_cfg_read(&blk.tp, off, 2); }
static bool intx_status(void) { return (cfg16(PCI_STATUS) & PCI_STATUS_INTERRUPT_MASK) != 0; }

static uint8_t read_isr(void)
{
    uint64_t v = 0xff;
    cr_assert(pt_mmio_read(&blk.tp, cap_addr(VIRTIO_PCI_CAP_ISR_CFG, 0), 1, &v));
    return (uint8_t)v;
}

/* One buffer through the queue, a header alone in ring slot `slot` (the toy returns it
 * unanswered): a used buffer notification is decided. */
static void one_request(unsigned slot, uint16_t id)
{
    const uint64_t at = BUFS + 0x1000u * id;
    fake_guest_put32(&g, at, TOY_BLK_T_OUT);
    put_desc(slot, at, TOY_REQ_HDR, id, 0);
    struct pt_work w = {0};
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_DONE);
}

/* The capability list is well formed: every pointer dword-aligned in 0x40..0xFF, no
 * loop, ends with 0 ("PCI Local Bus 3.0 §6.7"). Returns whether ID `id` is on it. */
static bool cap_list_has(uint8_t id)
{
    bool seen[64] = {false}, found = false;
    cr_assert(cfg16(PCI_STATUS) & PCI_STATUS_CAP_LIST_MASK);
    uint32_t at = pt_cfg_read(&blk.tp, PCI_CAPABILITY_LIST, 1);
    while (at != 0) {
        cr_assert(at >= 0x40 && at < 0x100 && at % 4 == 0, "pointer %#x", at);
        cr_assert_not(seen[at / 4], "loop at %#x", at);
        seen[at / 4] = true;
        found = found || pt_cfg_read(&blk.tp, at, 1) == id;
        at = pt_cfg_read(&blk.tp, at + 1u, 1);
    }
    return found;
}

/* PCI Local Bus 3.0 §6.2.5.1 (32-bit memory BARs, type 00b; written from that spec's
 * rules) and "Virtio Structure PCI Capabilities" ("the driver ... MUST ignore any
 * structure ... BAR ... reserved"; every structure lies inside its BAR): with 32-bit
 * BARs the virtio structures are in BAR0 and the MSI-X table and PBA in BAR1, each BAR
 * sizes as a 32-bit BAR, slots 2..5 are unimplemented, and every capability still
 * points inside its BAR. */
Test(transport, bars_32bit_layout_and_sizing)
{
    reinit_toy(true, false);
    cr_assert_eq(pt_cfg_read(&blk.tp, PCI_BAR0, 4) & 0xf, 0, "BAR0: memory, 32-bit, not prefetchable");
    cr_assert_eq(pt_cfg_read(&blk.tp, PCI_BAR0 + 4, 4) & 0xf, 0, "BAR1: memory, 32-bit");
    cr_assert_neq(blk.tp.pci.bar_size[0], 0);
    cr_assert_neq(blk.tp.pci.bar_size[1], 0);
    for (int bar = 0; bar < PCI_NUM_BARS; bar++) {
        const uint32_t off = PCI_BAR0 + 4u * (uint32_t)bar;
        pt_cfg_write(&blk.tp, off, 4, 0xffffffffu);
        const uint32_t back = pt_cfg_read(&blk.tp, off, 4);
        if (bar >= 2) {
            cr_expect_eq(back, 0, "BAR%d unimplemented", bar);
            continue;
        }
        cr_expect_eq(back & 0xf, 0, "type bits read-only 00b");
        cr_expect_eq((uint64_t)(~(back & ~0xfu)) + 1u, blk.tp.pci.bar_size[bar], "BAR%d size", bar);
    }
    /* Every virtio structure in BAR0 and inside it; MSI-X table and PBA in BAR1. */
    const uint8_t types[] = {VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_NOTIFY_CFG,
                             VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_DEVICE_CFG};
    for (unsigned i = 0; i < sizeof types; i++) {
        uint8_t cap = find_vcap(types[i]);
        cr_assert_neq(cap, 0);
        cr_expect_eq(pt_cfg_read(&blk.tp, cap + 4u, 1), 0);
        cr_expect_leq((uint64_t)pt_cfg_read(&blk.tp, cap + 8u, 4) + pt_cfg_read(&blk.tp, cap + 12u, 4),
                      blk.tp.pci.bar_size[0]);
    }
    uint8_t mcap = pci_cfg_find_cap(&blk.tp.pci, PCI_CAP_ID_MSIX, -1);
    cr_assert_neq(mcap, 0);
    cr_expect_eq(pt_cfg_read(&blk.tp, mcap + 4u, 4) & 0x7, 1, "table BIR = BAR1");
    cr_expect_eq(pt_cfg_read(&blk.tp, mcap + 8u, 4) & 0x7, 1, "PBA BIR = BAR1");
    cr_expect_leq((uint64_t)(pt_cfg_read(&blk.tp, mcap + 8u, 4) & ~0x7u) + 8u, blk.tp.pci.bar_size[1]);

    /* Programmed below 4 GiB, both decode; the MSI-X table answers in BAR1. */
    pt_cfg_write(&blk.tp, PCI_BAR0, 4, (uint32_t)BAR0_BASE);
    pt_cfg_write(&blk.tp, PCI_BAR0 + 4, 4, (uint32_t)BAR1_BASE);
    pt_cfg_write(&blk.tp, PCI_BAR0 + 8, 4, 0xdead0000u); /* hostile: an unimplemented BAR */
    pt_cfg_write(&blk.tp, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK);
    cr_assert_eq(pci_cfg_bar_base(&blk.tp.pci, 0), BAR0_BASE);
    cr_assert_eq(pci_cfg_bar_base(&blk.tp.pci, 1), BAR1_BASE);
    cr_assert_eq(rd(VIRTIO_PCI_COMMON_NUMQ, 2), 1u);
    uint16_t kicked;
    cr_assert(pt_mmio_write(&blk.tp, BAR1_BASE + MSIX_ENTRY_DATA, 4, 0x1234, &kicked));
    uint64_t v = 0;
    cr_assert(pt_mmio_read(&blk.tp, BAR1_BASE + MSIX_ENTRY_DATA, 4, &v));
    cr_assert_eq(v, 0x1234u);
    cr_assert_not(pt_mmio_read(&blk.tp, 0xdead0000u, 4, &v));
}

/* An option to present no MSI-X capability: the capability is left out of a list that
 * stays well formed, the BAR that held the table is gone, and the vector fields read
 * NO_VECTOR whatever is written ("MSI-X Vector Configuration": a mapping the device
 * cannot satisfy reads back NO_VECTOR). The ISR capability is still there ("The device
 * MUST present at least one VIRTIO_PCI_CAP_ISR_CFG capability"). */
Test(transport, no_msix_capability_left_out)
{
    cr_assert(cap_list_has(PCI_CAP_ID_MSIX), "the default function has MSI-X");
    reinit_toy(false, true);
    cr_assert_not(cap_list_has(PCI_CAP_ID_MSIX));
    cr_assert(cap_list_has(PCI_CAP_ID_VNDR));
    cr_assert_neq(find_vcap(VIRTIO_PCI_CAP_ISR_CFG), 0);
    cr_assert_neq(find_vcap(VIRTIO_PCI_CAP_PCI_CFG), 0);
    cr_assert_eq(blk.tp.pci.bar_size[2], 0, "no MSI-X BAR");
    pt_cfg_write(&blk.tp, PCI_BAR0 + 8, 4, 0xffffffffu);
    cr_assert_eq(pt_cfg_read(&blk.tp, PCI_BAR0 + 8, 4), 0);
    map_bars();
    wr(VIRTIO_PCI_COMMON_MSIX, 2, 0);
    cr_assert_eq(rd(VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    wr(VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    cr_assert_eq(rd(VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    /* Where the table was, nothing answers (BAR2 is not programmed: it is gone). */
    uint64_t v;
    cr_assert_not(pt_mmio_read(&blk.tp, PT_RIG_BAR2, 4, &v));
    /* 32-bit BARs and no MSI-X together: BAR0 only. */
    reinit_toy(true, true);
    cr_assert_not(cap_list_has(PCI_CAP_ID_MSIX));
    cr_assert_neq(blk.tp.pci.bar_size[0], 0);
    for (int bar = 1; bar < PCI_NUM_BARS; bar++)
        cr_assert_eq(blk.tp.pci.bar_size[bar], 0, "BAR%d", bar);
}

/* PCI Local Bus 3.0 §6.2.4 (Interrupt Pin 01h = INTA#, read-only; Interrupt Line
 * read-write for software), whatever the presentation; hostile writes of the pin and
 * of Status bit 3 change nothing. */
Test(transport, intx_pin_and_line)
{
    for (int variant = 0; variant < 2; variant++) {
        reinit_toy(variant == 1, variant == 1);
        cr_assert_eq(pt_cfg_read(&blk.tp, PCI_INTERRUPT_PIN, 1), 0x01);
        pt_cfg_write(&blk.tp, PCI_INTERRUPT_PIN, 1, 0x04);
        cr_assert_eq(pt_cfg_read(&blk.tp, PCI_INTERRUPT_PIN, 1), 0x01);
        pt_cfg_write(&blk.tp, PCI_INTERRUPT_LINE, 1, 0x0b);
        cr_assert_eq(pt_cfg_read(&blk.tp, PCI_INTERRUPT_LINE, 1), 0x0b);
        pt_cfg_write(&blk.tp, PCI_STATUS, 2, PCI_STATUS_INTERRUPT_MASK);
        cr_assert_not(intx_status(), "software cannot set Interrupt Status");
        cr_assert_not(pt_intx_asserted(&blk.tp));
    }
}

/* "ISR status capability" and "Used Buffer Notifications" without MSI-X: the device
 * sets the Queue Interrupt bit, the Status register's Interrupt Status bit follows the
 * OR of the ISR bits and INTA# is asserted (a level); reading ISR returns the bits,
 * clears them and deasserts the pin ("simply reading this register resets it to 0 and
 * causes the device to de-assert the interrupt"). */
Test(transport, intx_queue_interrupt_and_isr_read_to_clear)
{
    reinit_toy(false, true);
    bring_up();
    cr_assert_not(pt_intx_asserted(&blk.tp));
    cr_assert_not(intx_status());
    one_request(0, 0);
    cr_assert(pt_intx_asserted(&blk.tp));
    cr_assert(intx_status());
    cr_assert_eq(blk.tp.stats.intx_asserts, 1u);
    struct msix_message m;
    cr_assert_not(pt_take_msi(&blk.tp, &m), "no MSI-X message without MSI-X");

    cr_assert_eq(read_isr(), VIRTIO_PCI_ISR_QUEUE_MASK);
    cr_assert_not(pt_intx_asserted(&blk.tp));
    cr_assert_not(intx_status());
    cr_assert_eq(blk.tp.stats.intx_deasserts, 1u);
    cr_assert_eq(read_isr(), 0, "read-to-clear");

    /* A second interrupt with the first still unread is the same level: one edge. */
    one_request(1, 1);
    one_request(2, 2);
    cr_assert_eq(blk.tp.stats.intx_asserts, 2u);
    cr_assert_eq(read_isr(), VIRTIO_PCI_ISR_QUEUE_MASK);
    cr_assert_not(pt_intx_asserted(&blk.tp));
}

/* Hostile timing: ISR reads racing new interrupts. An interrupt raised right after the
 * read that cleared ISR asserts the pin again and is seen by the next read (nothing is
 * lost between the read and the handler's return); ISR is read-only, so a write of it
 * neither clears nor sets bits; reads of the ISR region's other bytes have no side
 * effect. */
Test(transport, intx_isr_reads_racing_new_interrupts)
{
    reinit_toy(false, true);
    bring_up();
    one_request(0, 0);
    cr_assert_eq(read_isr(), VIRTIO_PCI_ISR_QUEUE_MASK);
    one_request(1, 1); /* arrives while the driver handles the first */
    cr_assert(pt_intx_asserted(&blk.tp));

    uint16_t kicked;
    pt_mmio_write(&blk.tp, cap_addr(VIRTIO_PCI_CAP_ISR_CFG, 0), 1, 0, &kicked);
    cr_assert(pt_intx_asserted(&blk.tp), "a write of ISR clears nothing");
    uint64_t v = 0;
    cr_assert(pt_mmio_read(&blk.tp, cap_addr(VIRTIO_PCI_CAP_ISR_CFG, 1), 1, &v));
    cr_assert_eq(v, 0);
    cr_assert(pt_intx_asserted(&blk.tp), "only the ISR byte clears");
    cr_assert_eq(read_isr(), VIRTIO_PCI_ISR_QUEUE_MASK);
    cr_assert_not(pt_intx_asserted(&blk.tp));
    cr_assert_eq(blk.tp.stats.intx_asserts, 2u);
    cr_assert_eq(blk.tp.stats.intx_deasserts, 2u);

    /* The ISR read through the PCI configuration access capability counts the same. */
    one_request(2, 2);
    uint8_t cap = find_vcap(VIRTIO_PCI_CAP_PCI_CFG);
    uint32_t isr_off = pt_cfg_read(&blk.tp, find_vcap(VIRTIO_PCI_CAP_ISR_CFG) + 8u, 4);
    pt_cfg_write(&blk.tp, cap + 4u, 1, 0);
    pt_cfg_write(&blk.tp, cap + 8u, 4, isr_off);
    pt_cfg_write(&blk.tp, cap + 12u, 4, 1);
    cr_assert_eq(pt_cfg_read(&blk.tp, cap + 16u, 1), VIRTIO_PCI_ISR_QUEUE_MASK);
    cr_assert_not(pt_intx_asserted(&blk.tp));
}

/* PCI Local Bus 3.0 §6.2.2/§6.2.3 with "ISR status capability" ("asserts/deasserts
 * INT#x interrupts unless masked according to standard PCI rules"): toggling Interrupt
 * Disable with an interrupt pending drops and re-raises the pin while Interrupt Status
 * keeps showing the pending interrupt; an interrupt raised while disabled is pending,
 * not lost; reading ISR while disabled clears it. */
Test(transport, intx_disable_toggled_with_interrupt_pending)
{
    reinit_toy(false, true);
    bring_up();
    const uint16_t cmd = PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK;
    one_request(0, 0);
    cr_assert(pt_intx_asserted(&blk.tp));
    pt_cfg_write(&blk.tp, PCI_COMMAND, 2, cmd | PCI_COMMAND_INTX_DISABLE_MASK);
    cr_assert_not(pt_intx_asserted(&blk.tp));
    cr_assert(intx_status(), "Interrupt Status ignores Interrupt Disable");
    pt_cfg_write(&blk.tp, PCI_COMMAND, 2, cmd);
    cr_assert(pt_intx_asserted(&blk.tp));
    cr_assert_eq(blk.tp.stats.intx_asserts, 2u);

    /* Raised while disabled: pending, shown in Status, driven once enabled. */
    cr_assert_eq(read_isr(), VIRTIO_PCI_ISR_QUEUE_MASK);
    pt_cfg_write(&blk.tp, PCI_COMMAND, 2, cmd | PCI_COMMAND_INTX_DISABLE_MASK);
    one_request(1, 1);
    cr_assert_not(pt_intx_asserted(&blk.tp));
    cr_assert(intx_status());
    /* A polling driver may read ISR with the pin masked: it clears. */
    cr_assert_eq(read_isr(), VIRTIO_PCI_ISR_QUEUE_MASK);
    cr_assert_not(intx_status());
    pt_cfg_write(&blk.tp, PCI_COMMAND, 2, cmd);
    cr_assert_not(pt_intx_asserted(&blk.tp), "nothing pending any more");
}

/* "Notification of Device Configuration Changes" without MSI-X: the device sets the
 * Device Configuration Interrupt bit (bit 1) and asserts INTx; here the change is
 * DEVICE_NEEDS_RESET after a ring violation ("Device Status Field"). A device reset
 * clears ISR and drops the pin. */
Test(transport, intx_configuration_change_and_reset)
{
    reinit_toy(true, true);
    bring_up(); /* pt_rig_map_bars: BAR0 programmed; its writes of absent BARs are ignored */
    put_desc(0, BUFS, TOY_REQ_HDR, RING_SIZE, 0); /* id == queue size */
    struct pt_work w = {0};
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_FAILED);
    cr_assert(pt_intx_asserted(&blk.tp));
    cr_assert(intx_status());
    cr_assert_eq(blk.tp.vpci.isr & VIRTIO_PCI_ISR_CONFIG_MASK, VIRTIO_PCI_ISR_CONFIG_MASK);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0); /* reset without reading ISR */
    cr_assert_not(pt_intx_asserted(&blk.tp));
    cr_assert_not(intx_status());
    cr_assert_eq(read_isr(), 0);
}

/* MSI-X present but its Enable bit clear: "If MSI-X capability is disabled" the device
 * uses the ISR and INTx ("Used Buffer Notifications"); once the driver sets MSI-X Enable
 * the function stops using INTx (PCI Local Bus 3.0 §6.8.2: with MSI-X enabled the
 * function must not use INTx), the pin drops and interrupts become MSI-X messages
 * without the ISR's queue bit. */
Test(transport, msix_present_but_disabled_uses_intx)
{
    bring_up();
    one_request(0, 0);
    cr_assert(pt_intx_asserted(&blk.tp));
    struct msix_message m;
    cr_assert_not(pt_take_msi(&blk.tp, &m));

    /* Program vector 1 for the queue, then enable MSI-X with the pin still up. */
    uint16_t kicked;
    cr_assert(pt_mmio_write(&blk.tp, PT_RIG_BAR2 + 16 + MSIX_ENTRY_ADDR_LO, 4, 0xfee00000u, &kicked));
    cr_assert(pt_mmio_write(&blk.tp, PT_RIG_BAR2 + 16 + MSIX_ENTRY_DATA, 4, 7, &kicked));
    cr_assert(pt_mmio_write(&blk.tp, PT_RIG_BAR2 + 16 + MSIX_ENTRY_CTRL, 4, 0, &kicked));
    wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    wr(VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    cr_assert_eq(rd(VIRTIO_PCI_COMMON_Q_MSIX, 2), 1u);
    uint8_t mcap = pci_cfg_find_cap(&blk.tp.pci, PCI_CAP_ID_MSIX, -1);
    pt_cfg_write(&blk.tp, mcap + 2u, 2, MSIX_MSGCTL_ENABLE_MASK);
    cr_assert_not(pt_intx_asserted(&blk.tp), "MSI-X enabled: INTx not used");
    cr_assert_not(intx_status());

    cr_assert_eq(read_isr(), VIRTIO_PCI_ISR_QUEUE_MASK, "the earlier bit is still there to read");
    one_request(1, 1);
    cr_assert_not(pt_intx_asserted(&blk.tp));
    cr_assert(pt_take_msi(&blk.tp, &m));
    cr_assert_eq(m.data, 7u);
    cr_assert_eq(read_isr(), 0, "no queue bit with MSI-X enabled");

    /* MSI-X disabled again: back to INTx. */
    pt_cfg_write(&blk.tp, mcap + 2u, 2, 0);
    one_request(2, 2);
    cr_assert(pt_intx_asserted(&blk.tp));
    cr_assert_not(pt_take_msi(&blk.tp, &m));
}

/* pt_wake / pt_take_wake: the queues a personality marks as given work come out lowest
 * first, once each however often marked; a queue the function does not have is never
 * marked; a device reset (writing 0 to device_status, "Device Reset") clears the marks. */
Test(transport, wake_marks_queues_once_until_taken)
{
    uint16_t q = 0xbeef;
    cr_expect_not(pt_take_wake(&blk.tp, &q));
    pt_wake(&blk.tp, 0);
    pt_wake(&blk.tp, 0);
    pt_wake(&blk.tp, 1); /* the toy has one queue */
    pt_wake(&blk.tp, PT_NO_QUEUE);
    cr_expect(pt_take_wake(&blk.tp, &q));
    cr_expect_eq(q, 0);
    cr_expect_not(pt_take_wake(&blk.tp, &q));
    map_bars();
    pt_wake(&blk.tp, 0);
    wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_expect_not(pt_take_wake(&blk.tp, &q), "reset clears the marks");
}

/* ---- A front end without registers (vhost-user: the front end owns the function and
 * passes features, ring areas, positions; pt_fe_*) ---- */

static vs_features fe_features(bool packed)
{
    vs_features f;
    memset(&f, 0, sizeof f);
    vs_feature_set(&f, VIRTIO_F_VERSION_1_BIT);
    if (packed)
        vs_feature_set(&f, VIRTIO_F_RING_PACKED_BIT);
    return f;
}

static struct pt_fe_ring fe_ring(uint32_t position)
{
    return (struct pt_fe_ring){RING_SIZE, RING_DESC, RING_DRV, RING_DEV, position};
}

/* Attach with VERSION_1 (and RING_PACKED) and start queue 0 at `position`. */
static void fe_start(bool packed, uint32_t position)
{
    const vs_features f = fe_features(packed);
    pt_fe_attach(&blk.tp, &f);
    const struct pt_fe_ring r = fe_ring(position);
    enum vs_reason why;
    cr_assert_eq(pt_fe_queue_start(&blk.tp, 0, &r, &why), PT_FE_STARTED);
}

/* A packed descriptor made available in the lap whose Driver Ring Wrap Counter is
 * `wrap` ("Driver and Device Ring Wrap Counters": AVAIL equal to the counter, USED its
 * inverse). */
static void put_desc_lap(unsigned slot, uint64_t addr, uint32_t len, uint16_t id, uint16_t flags,
                         bool wrap)
{
    uint64_t d = RING_DESC + 16u * slot;
    fake_guest_put64(&g, d, addr);
    fake_guest_put32(&g, d + 8, len);
    fake_guest_put16(&g, d + 12, id);
    const uint16_t lap = wrap ? VIRTQ_DESC_F_AVAIL_MASK : VIRTQ_DESC_F_USED_MASK;
    fake_guest_put16(&g, d + 14, (uint16_t)(lap | flags));
}

/* A read request's three descriptors: header, 512 bytes IN, status. */
struct read_chain {
    uint64_t addr[3];
    uint32_t len[3];
    uint16_t flags[3];
};

static struct read_chain read_chain_of(uint16_t id, uint64_t sector)
{
    const uint64_t at = put_request_header(id, TOY_BLK_T_IN, sector);
    return (struct read_chain){
        {at, at + 0x100, at + 0x800},
        {TOY_REQ_HDR, 512, 1},
        {VIRTQ_DESC_F_NEXT_MASK, VIRTQ_DESC_F_NEXT_MASK | VIRTQ_DESC_F_WRITE_MASK, VIRTQ_DESC_F_WRITE_MASK}};
}

/* A read request (header, 512 bytes IN, status) at packed slots slot, slot+1, slot+2
 * (mod the ring size; the wrap counter flips where the ring wraps). */
static void post_request_lap(unsigned slot, uint16_t id, uint64_t sector, bool wrap)
{
    struct read_chain c = read_chain_of(id, sector);
    /* The head last, so the chain is whole when it becomes available. */
    for (int i = 2; i >= 0; i--) {
        const unsigned s = slot + (unsigned)i;
        put_desc_lap(s % RING_SIZE, c.addr[i], c.len[i], id, c.flags[i], s >= RING_SIZE ? !wrap : wrap);
    }
}

/* A read request in the split ring: descriptors 3*id .. 3*id+2 chained, made available
 * at available index `avail_idx` ("The Virtqueue Available Ring": ring[idx % size]). */
static void post_request_split(uint16_t id, uint64_t sector, uint16_t avail_idx)
{
    struct read_chain c = read_chain_of(id, sector);
    for (unsigned i = 0; i < 3; i++) {
        const uint64_t d = RING_DESC + 16u * (3u * id + i);
        fake_guest_put64(&g, d, c.addr[i]);
        fake_guest_put32(&g, d + 8, c.len[i]);
        fake_guest_put16(&g, d + 12, c.flags[i]);
        fake_guest_put16(&g, d + 14, (uint16_t)(3u * id + i + 1u));
    }
    fake_guest_put16(&g, RING_DRV + 4u + 2u * (avail_idx % RING_SIZE), (uint16_t)(3u * id));
    fake_guest_put16(&g, RING_DRV + 2u, (uint16_t)(avail_idx + 1u));
}

/* The function as the driver's register writes would leave it: DRIVER_OK, bus
 * mastering (DMA passes the gate), MSI-X on with queue q on vector 1 + q; only offered
 * features are taken, and the device type's FEATURES_OK check is not asked (the front
 * end negotiated with its driver). */
Test(transport, fe_attach_sets_the_state_a_driver_would)
{
    vs_features f = fe_features(true);
    vs_feature_set(&f, 60u); /* not offered: dropped */
    blk.refuse_features = true;
    const unsigned resets = blk.resets;
    pt_fe_attach(&blk.tp, &f);
    cr_assert_eq(blk.resets, resets + 1u, "attaching resets the device type first");
    cr_assert_eq(blk.features_checked, 0u);
    cr_assert(pt_negotiated(&blk.tp, VIRTIO_F_VERSION_1_BIT));
    cr_assert(pt_negotiated(&blk.tp, VIRTIO_F_RING_PACKED_BIT));
    cr_assert_not(pt_negotiated(&blk.tp, 60u));
    cr_assert_eq(blk.tp.vpci.status & VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_DRIVER_OK);
    cr_assert(pci_cfg_bus_master(&blk.tp.pci));
    cr_assert(blk.tp.msix.enabled);
    cr_assert_eq(blk.tp.vpci.q[0].msix_vector, 1u);
    cr_assert_not(pt_queue_live(&blk.tp, 0), "no queue runs before it is started");
}

/* Packed ring ("Packed Virtqueues"), resumed where the front end says: offset 6 in the
 * lap with wrap counter 1 (vhost-user's SET_VRING_BASE: bit 15 is the Driver Ring Wrap
 * Counter). A three-descriptor request from slot 6 wraps the ring ("Driver and Device
 * Ring Wrap Counters": the counter flips past the last slot), so the position read back
 * at the stop is offset 1 with both counters 0, in both halves. The used buffer
 * notification leaves through the outbox on the queue's vector and names the queue. */
Test(transport, fe_packed_queue_resumes_at_the_position_and_reads_it_back_past_a_wrap)
{
    fe_start(true, 6u | 1u << 15);
    cr_assert_eq(blk.queue_enables, 1u);
    cr_assert(pt_queue_live(&blk.tp, 0));
    post_request_lap(6, 5, 2, true);
    struct pt_work w = {0};
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(status_of(5), TOY_BLK_S_OK);
    /* The used descriptor goes where the request began, with the lap's wrap counter
     * in both AVAIL and USED ("Receiving Used Buffers From The Device"). */
    const uint16_t used_flags = fake_guest_get16(&g, RING_DESC + 16u * 6u + 14u);
    cr_assert_eq(used_flags & (VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK),
                 VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK);
    cr_assert_eq(fake_guest_get16(&g, RING_DESC + 16u * 6u + 12u), 5u);
    struct msix_message m;
    cr_assert(pt_take_msi(&blk.tp, &m));
    cr_assert_eq(m.addr, PT_FE_MSI_ADDRESS);
    cr_assert_eq(pt_fe_msi_queue(&blk.tp, &m), 0u);
    uint32_t held = 9;
    const unsigned queue_resets = blk.queue_resets;
    const uint32_t pos = pt_fe_queue_stop(&blk.tp, 0, &ops, 0xdead, &held);
    cr_assert_eq(pos, 1u | 1u << 16, "got 0x%x", pos);
    cr_assert_eq(held, 0u);
    cr_assert_not(pt_queue_live(&blk.tp, 0));
    cr_assert_eq(blk.queue_resets, queue_resets + 1u, "the personality hears of the stop");
    /* A stopped queue gives back the front end's own position. */
    cr_assert_eq(pt_fe_queue_stop(&blk.tp, 0, &ops, 0x1234, &held), 0x1234u);
}

/* Split ring ("Split Virtqueues"): the position is the next available index, 16 bits
 * free-running ("The Virtqueue Available Ring": idx wraps at 65536, not at the ring
 * size). Resumed at 0xffff, one request is taken from ring[0xffff % 8] and the used
 * index moves to 0 (it counts the same way: "The Virtqueue Used Ring"). A used buffer
 * pushed but not yet published (a batch of 4 not full) is published by the stop, so
 * the front end reads back 0 and finds every taken buffer used. */
Test(transport, fe_split_queue_wraps_the_free_running_index_and_stop_publishes)
{
    blk.tp.p.used_batch_max = 4;
    fe_start(false, 0xffffu);
    fake_guest_put16(&g, RING_DEV + 2u, 0xffffu); /* the used index where the front end left it */
    post_request_split(1, 3, 0xffffu);
    struct pt_work w = {0};
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(fake_guest_get16(&g, RING_DEV + 2u), 0xffffu, "held in the batch");
    uint32_t held = 9;
    cr_assert_eq(pt_fe_queue_stop(&blk.tp, 0, &ops, 0, &held), 0u);
    cr_assert_eq(held, 0u);
    cr_assert_eq(fake_guest_get16(&g, RING_DEV + 2u), 0u, "published by the stop");
    cr_assert_eq(fake_guest_get32(&g, RING_DEV + 4u + 8u * 7u), 3u, "used id: the chain's head");
    cr_assert_eq(fake_guest_get32(&g, RING_DEV + 8u + 8u * 7u), 513u);
    cr_assert_eq(status_of(1), TOY_BLK_S_OK);
}

/* What the front end may ask for wrongly is refused without breaking the device: no
 * attach, a queue the function lacks, a size of 0 or above the maximum ("a queue size
 * of 0 ... is invalid"; queue_size_max), a packed position whose offset is not in the
 * ring (bits 0-14 at or past the size) or whose used half is elsewhere, a split
 * position above 16 bits. */
Test(transport, fe_bad_rings_and_positions_are_refused_and_the_device_stays_healthy)
{
    enum vs_reason why;
    struct pt_fe_ring r = fe_ring(0);
    cr_assert_eq(pt_fe_queue_start(&blk.tp, 0, &r, &why), PT_FE_NOT_ATTACHED);
    const vs_features f = fe_features(true);
    pt_fe_attach(&blk.tp, &f);
    cr_assert_eq(pt_fe_queue_start(&blk.tp, 1, &r, &why), PT_FE_NO_QUEUE);
    r.size = 0;
    cr_assert_eq(pt_fe_queue_start(&blk.tp, 0, &r, &why), PT_FE_CONFIG_REFUSED);
    cr_assert_eq(why, VS_REASON_QUEUE_SIZE_INVALID);
    r.size = 128; /* above queue_size_max (64) */
    cr_assert_eq(pt_fe_queue_start(&blk.tp, 0, &r, &why), PT_FE_CONFIG_REFUSED);
    r = fe_ring(RING_SIZE | 1u << 15);
    cr_assert_eq(pt_fe_queue_start(&blk.tp, 0, &r, &why), PT_FE_POSITION_REFUSED);
    r = fe_ring(2u | 3u << 16);
    cr_assert_eq(pt_fe_queue_start(&blk.tp, 0, &r, &why), PT_FE_POSITION_REFUSED);
    cr_assert_not(pt_queue_live(&blk.tp, 0));
    cr_assert_eq(blk.tp.error, VS_REASON_NONE);
    cr_assert_eq(blk.tp.vpci.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0u);
    /* The same queue then starts fine. */
    r = fe_ring(2u | 2u << 16);
    cr_assert_eq(pt_fe_queue_start(&blk.tp, 0, &r, &why), PT_FE_STARTED);
    const vs_features fs = fe_features(false);
    pt_fe_attach(&blk.tp, &fs);
    r = fe_ring(0x10000u);
    cr_assert_eq(pt_fe_queue_start(&blk.tp, 0, &r, &why), PT_FE_POSITION_REFUSED);
}

/* A hostile ring under a register-less front end ends as under a driver: NEEDS_RESET
 * with a named reason ("Device Status Field"), the configuration change notification in
 * the outbox on vector 0, which names no queue. */
Test(transport, fe_hostile_descriptor_needs_reset_and_signals_a_configuration_change)
{
    fe_start(true, 0u | 1u << 15);
    put_desc(0, BUFS, TOY_REQ_HDR, RING_SIZE, 0); /* id == queue size */
    struct pt_work w = {0};
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_FAILED);
    cr_assert_eq(blk.tp.error, VS_REASON_DESC_ID_OUT_OF_RANGE);
    struct msix_message m;
    cr_assert(pt_take_msi(&blk.tp, &m));
    cr_assert_eq(m.vector, 0u);
    cr_assert_eq(pt_fe_msi_queue(&blk.tp, &m), PT_NO_QUEUE);
    const struct msix_message stray = {PT_FE_MSI_ADDRESS, 7u, 7u};
    cr_assert_eq(pt_fe_msi_queue(&blk.tp, &stray), PT_NO_QUEUE);
    /* Attaching again is the front end's reset: healthy, nothing running. */
    const vs_features f = fe_features(true);
    pt_fe_attach(&blk.tp, &f);
    cr_assert_eq(blk.tp.error, VS_REASON_NONE);
}

static bool toy_hold;
static bool toy_holds(const void *ctx, uint16_t q)
{
    (void)ctx;
    (void)q;
    return toy_hold;
}

/* A role that holds publication (a group the driver must see whole, as a merged
 * receive frame) keeps its finished buffers back; a stop in the middle of the group
 * returns them unused ("Element Address and Length": len is the bytes written, here
 * none, and WRITE clear), so every buffer before the position read back is used and the
 * two halves of the position agree. */
Test(transport, fe_stop_returns_a_held_group_unused)
{
    static struct pt_role held_role;
    held_role = toy_request_role;
    held_role.holds_publication = toy_holds;
    pt_fini(&blk.tp);
    toy_role = &held_role;
    init_toy(1);
    toy_role = &toy_request_role;
    toy_hold = true;
    fe_start(true, 0u | 1u << 15);
    post_request_lap(0, 2, 1, true);
    struct pt_work w = {0};
    cr_assert_eq(pt_step_one(&blk.tp, 0, &ops, &w), PT_STEP_DONE);
    cr_assert_eq(fake_guest_get16(&g, RING_DESC + 14u) & VIRTQ_DESC_F_USED_MASK, 0u,
                 "nothing published while held");
    cr_assert_eq(pt_complete(&blk.tp, 0, &ops), PT_STEP_IDLE);
    uint32_t held = 0;
    const uint32_t pos = pt_fe_queue_stop(&blk.tp, 0, &ops, 0, &held);
    cr_assert_eq(held, 1u);
    cr_assert_eq(pos, (3u | 1u << 15) * 0x10001u, "got 0x%x", pos);
    const uint16_t flags = fake_guest_get16(&g, RING_DESC + 14u);
    cr_assert_eq(flags & (VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK | VIRTQ_DESC_F_WRITE_MASK),
                 VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK, "used, nothing written");
    cr_assert_eq(fake_guest_get32(&g, RING_DESC + 8u), 0u, "used length 0");
    cr_assert_eq(fake_guest_get16(&g, RING_DESC + 12u), 2u);
    toy_hold = false;
}

/* ---- Function reset (QEMU's DEVICE_RESET over the proxy, issue 16) ---- */

/* PCI Express Base 4.0 §6.6.2 (Function Level Reset) with "Device Reset" (the device
 * MUST reset when 0 is written to device_status, and present 0 in queue_enable on
 * reset): after pt_function_reset the Command register is 0, so the BARs decode
 * nothing, the BARs read unassigned, the device status is 0 and the queue out of
 * service; the ISR was cleared, so INTA# falls; the personality's reset ran; the
 * counters are kept. A driver then brings the function up again from scratch. */
Test(transport, function_reset_returns_the_function_to_power_on)
{
    reinit_toy(true, true);
    bring_up();
    pt_cfg_write(&blk.tp, PCI_INTERRUPT_LINE, 1, 0x0b);
    one_request(0, 0);
    cr_assert(pt_intx_asserted(&blk.tp));
    const uint64_t asserts = blk.tp.stats.intx_asserts, resets = blk.resets;

    pt_function_reset(&blk.tp);
    cr_assert_not(pt_intx_asserted(&blk.tp));
    cr_assert_eq(blk.tp.stats.intx_deasserts, 1u);
    cr_assert_eq(blk.tp.stats.intx_asserts, asserts, "counters are kept");
    cr_assert_eq(blk.tp.stats.function_resets, 1u);
    cr_assert_eq(blk.resets, resets + 1u, "the personality was reset");
    cr_assert_eq(cfg16(PCI_COMMAND), 0, "memory decoding and bus mastering off");
    cr_assert_eq(pt_cfg_read(&blk.tp, PCI_BAR0, 4), 0, "BAR0 unassigned");
    cr_assert_eq(pt_cfg_read(&blk.tp, PCI_INTERRUPT_LINE, 1), 0);
    cr_assert_eq(pt_cfg_read(&blk.tp, PCI_INTERRUPT_PIN, 1), 0x01, "read-only fields as built");
    uint64_t v = 0;
    cr_assert_not(pt_mmio_read(&blk.tp, BAR0_BASE, 1, &v), "no BAR decodes before it is assigned");
    cr_assert(cap_list_has(PCI_CAP_ID_VNDR));

    map_bars();
    cr_assert_eq(rd(VIRTIO_PCI_COMMON_STATUS, 1), 0);
    wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    cr_assert_eq(rd(VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    cr_assert_eq(rd(VIRTIO_PCI_COMMON_Q_SIZE, 2), 64, "queue size back to the maximum");
    cr_assert_not(pt_queue_live(&blk.tp, 0));

    bring_up();
    one_request(0, 0); /* the ring starts again at its first slot */
    cr_assert(pt_intx_asserted(&blk.tp));
}

/* PCI Local Bus 3.0 §6.8.2.3 and §6.8.2.9 under a function reset: the MSI-X Enable and
 * Function Mask bits read 0 again and every vector's Mask bit is set, whatever the
 * driver had programmed. */
Test(transport, function_reset_disables_and_masks_msix)
{
    map_bars();
    const uint8_t mcap = pci_cfg_find_cap(&blk.tp.pci, PCI_CAP_ID_MSIX, -1);
    cr_assert_neq(mcap, 0);
    pt_cfg_write(&blk.tp, mcap + 2u, 2, MSIX_MSGCTL_ENABLE_MASK);
    cr_assert(blk.tp.msix.enabled);
    cr_assert_eq(msix_table_write(&blk.tp.msix, MSIX_ENTRY_CTRL, 4, 0), VS_REASON_NONE);
    cr_assert_eq(msix_table_read(&blk.tp.msix, MSIX_ENTRY_CTRL, 4) & 1, 0);

    pt_function_reset(&blk.tp);
    cr_assert_not(blk.tp.msix.enabled);
    cr_assert_eq(cfg16(mcap + 2u) & (MSIX_MSGCTL_ENABLE_MASK | MSIX_MSGCTL_FMASK_MASK), 0);
    for (uint16_t vec = 0; vec < blk.tp.msix.nvec; vec++)
        cr_assert_eq(msix_table_read(&blk.tp.msix, vec * MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL, 4) & 1, 1,
                     "vector %u masked", vec);
    cr_assert_eq(pci_cfg_find_cap(&blk.tp.pci, PCI_CAP_ID_MSIX, -1), mcap, "the capability list as built");
}
