/* fuzz_ring.c -- ring contents from a driver-shaped harness (built twice: packed with
 * FUZZ_RING_PACKED=1 as fuzz_packed_ring, split with FUZZ_RING_PACKED=0 as
 * fuzz_split_ring).
 *
 * The harness negotiates a feature set and ring size chosen by the input, brings the
 * device up through its registers, then plays the input as a driver's actions: post
 * descriptors on TX or RX (well formed by default, each field open to corruption by
 * input bits: flags, ids, chain links, addresses outside memory, huge lengths), let the
 * device's engines run, publish, arm and quiet notifications, scribble on the driver
 * area, and notify with NOTIFICATION_DATA hints. After every action the checks of
 * fuzz_common.h run; once the device has given up it must touch no guest memory, and a
 * reset must bring it back.
 *
 * Input: features byte, size byte, buffer-area length (le16) and contents, then actions
 * (one opcode byte and its operands) until the input ends or 256 actions.
 */
#include "fuzz_common.h"

#ifndef FUZZ_RING_PACKED
#error "define FUZZ_RING_PACKED to 1 (packed ring) or 0 (split ring)"
#endif

#define GUEST_BASE   0x100000ull
#define BUFFER_BYTES 0x10000u
#define GUEST_BYTES  (VNET_QUEUES * VDEV_RIG_QUEUE_WINDOW + BUFFER_BYTES)
#define ACTIONS_MAX  256
#define STEPS_MAX    64

struct driver_side {
    uint16_t size;
    uint16_t pos[VNET_QUEUES];      /* next descriptor slot */
    bool wrap[VNET_QUEUES];         /* packed: driver wrap counter */
    uint16_t avail_idx[VNET_QUEUES];/* split: next avail->idx */
};

/* A descriptor address: inside the buffer area unless the input asks for a hostile one
 * (offsets from 0xF000 up map just below the top of the 64-bit space). */
static uint64_t buffer_addr(const struct vdev_rig *r, uint16_t off)
{
    if (off >= 0xF000u)
        return 0xFFFFFFFFFFFF0000ull | off;
    return VDEV_RIG_BUFFERS(r) + off;
}

static void post(struct vdev_rig *r, struct driver_side *drv, unsigned q, struct fuzz_in *in)
{
    const unsigned n = fuzz_u8(in) % 9u;
    bool head = true;
    if (drv->size == 0)
        return;
    for (unsigned i = 0; i < n; i++) {
        const uint16_t off = fuzz_u16(in);
        const uint32_t len = fuzz_u32(in);
        const uint16_t raw_id = fuzz_u16(in);
        const uint16_t raw_flags = fuzz_u16(in);
        const uint16_t slot = drv->pos[q];
        const uint64_t at = vdev_rig_desc(r, q) + 16u * slot;
        uint16_t flags = raw_flags & (VIRTQ_DESC_F_NEXT_MASK | VIRTQ_DESC_F_WRITE_MASK |
                                      VIRTQ_DESC_F_INDIRECT_MASK);
        /* RX buffers are device-writable unless the input flips it. */
        if (q == VNET_QUEUE_RX)
            flags ^= VIRTQ_DESC_F_WRITE_MASK;
        fake_guest_put64(&r->g, at, buffer_addr(r, off));
        fake_guest_put32(&r->g, at + 8, len);
#if FUZZ_RING_PACKED
        /* Available: AVAIL equal to the driver's wrap counter, USED the opposite; the
         * input's bits 7 and 15 flip them. The id is the slot unless bit 14 asks for the
         * input's raw id. */
        flags |= drv->wrap[q] ? VIRTQ_DESC_F_AVAIL_MASK : VIRTQ_DESC_F_USED_MASK;
        flags ^= raw_flags & (VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK);
        fake_guest_put16(&r->g, at + PVIRTQ_DESC_OFF_ID, (raw_flags & 0x4000u) ? raw_id : slot);
        fake_guest_put16(&r->g, at + PVIRTQ_DESC_OFF_FLAGS, flags);
        (void)head;
#else
        /* The chain link is the next slot unless bit 14 asks for the input's raw one;
         * a descriptor that does not continue a chain starts a buffer in the avail ring. */
        const uint16_t next = (raw_flags & 0x4000u) ? raw_id : (uint16_t)((slot + 1u) % drv->size);
        fake_guest_put16(&r->g, at + SVIRTQ_DESC_OFF_FLAGS, flags);
        fake_guest_put16(&r->g, at + SVIRTQ_DESC_OFF_NEXT, next);
        if (head) {
            const uint64_t avail = vdev_rig_driver_area(r, q);
            fake_guest_put16(&r->g, avail + SVIRTQ_AVAIL_OFF_RING +
                                        SVIRTQ_AVAIL_ENTRY_BYTES * (drv->avail_idx[q] % drv->size),
                             slot);
            drv->avail_idx[q]++;
        }
        head = !(flags & VIRTQ_DESC_F_NEXT_MASK);
#endif
        drv->pos[q] = (uint16_t)(slot + 1u);
        if (drv->pos[q] >= drv->size) {
            drv->pos[q] = 0;
            drv->wrap[q] = !drv->wrap[q];
        }
    }
#if !FUZZ_RING_PACKED
    /* Publish: avail->idx, occasionally pushed beyond what was written (hostile). */
    uint16_t idx = drv->avail_idx[q];
    const uint8_t skew = fuzz_u8(in);
    if (skew >= 0xF0u)
        idx = (uint16_t)(idx + (skew & 0x0Fu) * 4099u);
    fake_guest_put16(&r->g, vdev_rig_driver_area(r, q) + SVIRTQ_AVAIL_OFF_IDX, idx);
#endif
}

static void run_engines(struct vdev_rig *r, struct fuzz_in *in)
{
    const unsigned steps = 1u + fuzz_u8(in) % STEPS_MAX;
    for (unsigned i = 0; i < steps; i++) {
        struct pt_work w;
        memset(&w, 0, sizeof w);
        enum pt_step t = vnet_tx_step(&r->dev.net, &r->ops, &w);
        fuzz_check_step(&r->dev, t);
        memset(&w, 0, sizeof w);
        enum pt_step x = vnet_rx_step(&r->dev.net, &r->ops, &w);
        fuzz_check_step(&r->dev, x);
        FUZZ_CHECK(r->dev.net.stats.rx_frames <= r->dev.net.stats.tx_frames, "received more than sent");
        if (t != PT_STEP_DONE && x != PT_STEP_DONE)
            break;
    }
}

/* Once the device gave up it must leave guest memory alone; a reset revives it. */
static void check_gave_up_cleanly(struct vdev_rig *r)
{
    const uint64_t before = fake_guest_accesses(&r->g);
    struct pt_work w;
    memset(&w, 0, sizeof w);
    for (uint16_t q = 0; q < VNET_QUEUES; q++) {
        pt_complete(&r->dev.tp, q, &r->ops);
        pt_arm_notifications(&r->dev.tp, q, &r->ops);
    }
    FUZZ_CHECK(vnet_tx_step(&r->dev.net, &r->ops, &w) == PT_STEP_FAILED, "TX step after the error");
    FUZZ_CHECK(vnet_rx_step(&r->dev.net, &r->ops, &w) == PT_STEP_FAILED, "RX step after the error");
    FUZZ_CHECK(fake_guest_accesses(&r->g) == before, "guest memory touched after giving up (%s)",
               vs_reason_name(r->dev.tp.error));
    pt_rig_wr(&r->dev.tp, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    FUZZ_CHECK(r->dev.tp.error == VS_REASON_NONE && pt_rig_rd(&r->dev.tp, VIRTIO_PCI_COMMON_STATUS, 1) == 0,
               "reset did not clear the error state");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    static struct vdev_rig r;
    static uint8_t guest[GUEST_BYTES];
    memset(guest, 0, sizeof guest);
    if (!vdev_rig_init_with(&r, NULL, guest, GUEST_BASE, GUEST_BYTES))
        return 0;

    /* Features: VERSION_1 (and RING_PACKED for the packed target) plus optional ones
     * chosen by the input, kept only where offered so that bring-up succeeds. */
    const uint8_t fb = fuzz_u8(&in);
    static const unsigned optional[] = {VIRTIO_F_EVENT_IDX_BIT, VIRTIO_F_INDIRECT_DESC_BIT,
                                        VIRTIO_F_IN_ORDER_BIT, VIRTIO_F_NOTIFICATION_DATA_BIT,
                                        VIRTIO_F_ORDER_PLATFORM_BIT};
    vs_features f;
    memset(&f, 0, sizeof f);
    vs_feature_set(&f, VIRTIO_F_VERSION_1_BIT);
    if (FUZZ_RING_PACKED)
        vs_feature_set(&f, VIRTIO_F_RING_PACKED_BIT);
    for (unsigned i = 0; i < sizeof optional / sizeof optional[0]; i++)
        if ((fb >> i) & 1u)
            vs_feature_set(&f, optional[i]);
    for (unsigned w = 0; w < VS_FEATURE_WORDS; w++)
        f.w[w] &= r.dev.tp.vpci.p.device_features.w[w];

    /* Ring size: a valid one (packed: 1..64; split: a power of two up to 64), or with the
     * top bit the raw byte, which the device may refuse. */
    const uint8_t sb = fuzz_u8(&in);
    struct driver_side drv;
    memset(&drv, 0, sizeof drv);
    if (sb & 0x80u)
        drv.size = sb & 0x7Fu;
    else
        drv.size = FUZZ_RING_PACKED ? (uint16_t)(1u + sb % 64u) : (uint16_t)(1u << (sb % 7u));
    for (unsigned q = 0; q < VNET_QUEUES; q++)
        drv.wrap[q] = true; /* the driver's wrap counter starts at 1 ("Driver and Device Ring
                               Wrap Counters") */

    /* Buffer contents (indirect tables live there too): a length, then that many bytes
     * (at most 1024) for the start of the buffer area. */
    size_t fill = fuzz_u16(&in) % 1025u;
    if (fill > in.left)
        fill = in.left;
    memcpy(fake_guest_ptr(&r.g, VDEV_RIG_BUFFERS(&r), fill), in.p, fill);
    in.p += fill;
    in.left -= fill;

    vdev_rig_bring_up(&r, &f, 2, drv.size);
    fuzz_check_error_state(&r.dev);

    for (unsigned a = 0; a < ACTIONS_MAX && in.left > 0 && r.dev.tp.error == VS_REASON_NONE; a++) {
        const uint8_t op = fuzz_u8(&in);
        const uint16_t q = (op >> 4) & 1u ? VNET_QUEUE_TX : VNET_QUEUE_RX;
        switch (op % 7u) {
        case 0:
        case 1:
            post(&r, &drv, q, &in);
            break;
        case 2:
            run_engines(&r, &in);
            break;
        case 3:
            fuzz_check_step(&r.dev, pt_complete(&r.dev.tp, q, &r.ops));
            break;
        case 4:
            fuzz_check_step(&r.dev, (op & 0x20u) ? pt_arm_notifications(&r.dev.tp, q, &r.ops)
                                                 : pt_quiet_notifications(&r.dev.tp, q, &r.ops));
            break;
        case 5: /* the driver area (packed: event suppression; split: flags and idx) */
            fake_guest_put32(&r.g, vdev_rig_driver_area(&r, q), fuzz_u32(&in));
            break;
        case 6: { /* a notification, with NOTIFICATION_DATA as the input says */
            uint16_t kicked;
            const uint32_t data32 = (fuzz_u32(&in) & 0xFFFF0000u) | q;
            pt_mmio_write(&r.dev.tp, pt_rig_notify_addr(&r.dev.tp, q), 4, data32, &kicked);
            fuzz_check_error_state(&r.dev);
            break;
        }
        }
        struct msix_message m;
        while (pt_take_msi(&r.dev.tp, &m))
            ;
    }
    if (getenv("VIOSIM_FUZZ_VERBOSE"))
        fprintf(stderr, "size %u: tx %llu rx %llu frames, error %s on queue %u\n", drv.size,
                (unsigned long long)r.dev.net.stats.tx_frames, (unsigned long long)r.dev.net.stats.rx_frames,
                vs_reason_name(r.dev.tp.error), r.dev.tp.error_queue);
    if (r.dev.tp.error != VS_REASON_NONE)
        check_gave_up_cleanly(&r);
    vdev_rig_fini(&r);
    return 0;
}
