/* test_drv_split.c -- what only the split ring's driver side has.
 *
 * The behaviour both formats share (drv_ring.h's contract: publishing, reaping, chains,
 * indirect tables, IN_ORDER batches, a hostile device, the caller's mistakes,
 * notifications) is tested once for both in test_drv_ring.c. Here: the parts' layout
 * and sizes, the descriptor table and its free list, the available ring, the 16-bit
 * indices, used->idx lies, avail_event / used_event and NOTIFICATION_DATA.
 *
 * First on its own: the three areas are plain arrays and the tests play the device as
 * "Split Virtqueues" says a device behaves: it reads avail->idx, takes heads from the
 * available ring in order, walks their chains in the descriptor table, writes used
 * entries (id = head, len = bytes written) and then used->idx.
 *
 * Then inside the reference driver: refdrv_run without VIRTIO_F_RING_PACKED (declined
 * by the driver or withdrawn by the device) drives split rings against the untimed
 * device (model/vdev, which then uses its split ring kernel), with and without the
 * IOMMU.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "common/host_rig.h"
#include "drv_split.h"
#include "iommu.h"
#include "refdrv.h"
#include "vdev.h"

#define RING_MAX 64u

struct rig {
    struct dsq *q;
    uint16_t size;
    _Alignas(16) uint8_t desc[RING_MAX * 16u];
    _Alignas(2) uint8_t avail[6u + 2u * RING_MAX];
    _Alignas(4) uint8_t used[6u + 8u * RING_MAX];
    /* The device's own state. */
    uint16_t dev_last_avail; /* next available ring entry it takes */
    uint16_t dev_used_idx;   /* used->idx it has published */
};

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

static struct rig *rig_new(uint16_t size, bool event_idx, bool in_order)
{
    struct rig *r = calloc(1, sizeof(*r));
    cr_assert_not_null(r);
    r->q = calloc(1, sizeof(*r->q));
    cr_assert_not_null(r->q);
    cr_assert_leq(size, RING_MAX);
    r->size = size;
    dsq_init(r->q, r->desc, r->avail, r->used, size, event_idx, in_order);
    return r;
}

static void rig_free(struct rig *r)
{
    free(r->q);
    free(r);
}

static struct desc rd(const uint8_t *table, uint16_t i)
{
    const uint8_t *d = table + 16u * i;
    struct desc x = {
        .addr = vs_le64(d),
        .len = vs_le32(d + 8),
        .flags = vs_le16(d + 12),
        .next = vs_le16(d + 14),
    };
    return x;
}

static uint16_t avail_idx(const struct rig *r)
{
    return vs_le16(r->avail + 2);
}

static uint16_t avail_entry(const struct rig *r, uint16_t idx)
{
    return vs_le16(r->avail + 4 + 2u * (idx % r->size));
}

static uint16_t used_event(const struct rig *r)
{
    return vs_le16(r->avail + 4 + 2u * r->size);
}

static void set_avail_event(struct rig *r, uint16_t v)
{
    vs_put_le16(r->used + 4 + 8u * r->size, v);
}

/* Device: take the next available head (the driver must have published it). */
static uint16_t dev_pop(struct rig *r)
{
    cr_assert_neq(r->dev_last_avail, avail_idx(r), "device: nothing available");
    return avail_entry(r, r->dev_last_avail++);
}

/* Device: write a used entry at its position (not yet published). */
static void dev_put(struct rig *r, uint16_t pos, uint32_t id, uint32_t len)
{
    uint8_t *e = r->used + 4 + 8u * (pos % r->size);
    vs_put_le32(e, id);
    vs_put_le32(e + 4, len);
}

static void dev_set_used_idx(struct rig *r, uint16_t idx)
{
    r->dev_used_idx = idx;
    vs_put_le16(r->used + 2, idx);
}

/* Device: one used entry, published at once. */
static void dev_use(struct rig *r, uint32_t id, uint32_t len)
{
    dev_put(r, r->dev_used_idx, id, len);
    dev_set_used_idx(r, (uint16_t)(r->dev_used_idx + 1u));
}

static uint16_t add1(struct rig *r, uint64_t addr, uint32_t len, bool writable)
{
    struct drv_seg s = { addr, len, writable };
    uint16_t id = DRV_NO_ID;
    cr_assert_eq(dsq_add(r->q, &s, 1, &id), DRV_OK);
    return id;
}

/* ---- layout ---- */

Test(drv_split, part_sizes_and_offsets)
{
    /* "Descriptor Table 16 * (Queue Size); Available Ring 6 + 2 * (Queue Size); Used
     * Ring 6 + 8 * (Queue Size)". */
    cr_expect_eq(SVIRTQ_DESC_TABLE_BYTES(256), 4096);
    cr_expect_eq(SVIRTQ_AVAIL_RING_BYTES(256), 518);
    cr_expect_eq(SVIRTQ_USED_RING_BYTES(256), 2054);
    cr_expect_eq(SVIRTQ_DESC_TABLE_BYTES(1), 16);
    cr_expect_eq(SVIRTQ_AVAIL_RING_BYTES(1), 8);
    cr_expect_eq(SVIRTQ_USED_RING_BYTES(1), 14);
    cr_expect_eq(SVIRTQ_USED_EVENT_OFF(256), 516, "used_event after avail ring[256]");
    cr_expect_eq(SVIRTQ_AVAIL_EVENT_OFF(256), 2052, "avail_event after used ring[256]");
    cr_expect_eq(SVIRTQ_USED_EVENT_OFF(8) + 2u, SVIRTQ_AVAIL_RING_BYTES(8));
    cr_expect_eq(SVIRTQ_AVAIL_EVENT_OFF(8) + 2u, SVIRTQ_USED_RING_BYTES(8));
    cr_expect_eq(SVIRTQ_DESC_TABLE_BYTES(SVIRTQ_SIZE_MAX), 512u * 1024u);
    cr_expect_eq(SVIRTQ_DESC_ALIGN, 16);
    cr_expect_eq(SVIRTQ_AVAIL_ALIGN, 2);
    cr_expect_eq(SVIRTQ_USED_ALIGN, 4);
}

Test(drv_split, queue_size_is_a_power_of_two)
{
    cr_expect_eq(dsq_fit_size(256, 256), 256);
    cr_expect_eq(dsq_fit_size(100, 256), 64, "want rounded down");
    cr_expect_eq(dsq_fit_size(256, 100), 64, "a device maximum that is not a power of two");
    cr_expect_eq(dsq_fit_size(1000, 1024), 512);
    cr_expect_eq(dsq_fit_size(1, 1), 1);
    cr_expect_eq(dsq_fit_size(3, 3), 2);
    cr_expect_eq(dsq_fit_size(65535, 65535), 32768, "at most 32768");
    cr_expect_eq(dsq_fit_size(40000, 32768), 32768);
    cr_expect_eq(dsq_fit_size(0, 256), 0);
    cr_expect_eq(dsq_fit_size(256, 0), 0);
}

Test(drv_split, init_state)
{
    struct rig *r = calloc(1, sizeof(*r));
    cr_assert_not_null(r);
    r->q = calloc(1, sizeof(*r->q));
    cr_assert_not_null(r->q);
    r->size = 8;
    memset(r->used, 0xff, 2); /* leftovers */
    dsq_init(r->q, r->desc, r->avail, r->used, 8, false, false);
    cr_expect_eq(vs_le16(r->used), 0, "the driver initialises used->flags to 0");
    cr_expect_eq(avail_idx(r), 0);
    cr_expect_eq(vs_le16(r->avail), 0);
    cr_expect_eq(r->q->free_descs, 8);
    rig_free(r);
}

/* ---- making buffers available ---- */

Test(drv_split, single_buffer_entry_before_idx)
{
    struct rig *r = rig_new(8, false, false);
    uint16_t id = add1(r, 0x1000, 64, false);

    cr_expect_eq(id, 0, "the id is the head descriptor's index");

    struct desc d = rd(r->desc, id);
    cr_expect_eq(d.addr, 0x1000);
    cr_expect_eq(d.len, 64);
    cr_expect_eq(d.flags, 0);
    cr_expect_eq(avail_entry(r, 0), id, "ring entry written by dsq_add");
    cr_expect_eq(avail_idx(r), 0, "not exposed before the publish");

    dsq_publish(r->q);
    cr_expect_eq(avail_idx(r), 1, "avail->idx is the publishing store");
    dsq_publish(r->q);
    cr_expect_eq(avail_idx(r), 1, "nothing left to publish");
    rig_free(r);
}

Test(drv_split, batch_becomes_visible_with_one_idx_store)
{
    struct rig *r = rig_new(8, false, false);
    uint16_t ids[3];

    for (unsigned i = 0; i < 3; i++) {
        ids[i] = add1(r, 0x1000 * (i + 1), 10, false);
        cr_expect_eq(avail_entry(r, (uint16_t)i), ids[i]);
        cr_expect_eq(avail_idx(r), 0, "batch hidden after %u buffers", i + 1);
    }
    cr_expect_eq(dsq_publish(r->q), 3, "publish counts buffers");
    cr_expect_eq(avail_idx(r), 3);
    rig_free(r);
}

Test(drv_split, chain_flags_and_links)
{
    struct rig *r = rig_new(8, false, false);
    struct drv_seg segs[3] = {
        { 0x1000, 12, false }, { 0x2000, 100, false }, { 0x3000, 200, true },
    };
    uint16_t id;

    cr_assert_eq(dsq_add(r->q, segs, 3, &id), DRV_OK);
    cr_expect_eq(id, 0);
    struct desc a = rd(r->desc, 0), b = rd(r->desc, a.next), c = rd(r->desc, b.next);
    cr_expect_eq(a.flags, VIRTQ_DESC_F_NEXT_MASK);
    cr_expect_eq(a.next, 1);
    cr_expect_eq(b.flags, VIRTQ_DESC_F_NEXT_MASK);
    cr_expect_eq(b.next, 2);
    cr_expect_eq(b.addr, 0x2000);
    cr_expect_eq(c.flags, VIRTQ_DESC_F_WRITE_MASK, "last element: WRITE, no NEXT");
    cr_expect_eq(c.len, 200);
    cr_expect_eq(avail_entry(r, 0), 0, "one ring entry per chain: its head");
    dsq_publish(r->q);
    cr_expect_eq(avail_idx(r), 1);

    /* The next buffer starts at the first free descriptor. */
    uint16_t id2 = add1(r, 0x4000, 8, false);
    cr_expect_eq(id2, 3);
    rig_free(r);
}

/* ---- free list ---- */

Test(drv_split, out_of_order_completion_frees_chains)
{
    struct rig *r = rig_new(8, false, false);
    struct drv_seg a[2] = { { 0x1000, 10, false }, { 0x1100, 10, false } };
    struct drv_seg b[1] = { { 0x2000, 10, false } };
    struct drv_seg c[3] = { { 0x3000, 10, false }, { 0x3100, 10, true }, { 0x3200, 10, true } };
    uint16_t ia, ib, ic;
    struct drv_used u;

    cr_assert_eq(dsq_add(r->q, a, 2, &ia), DRV_OK);
    cr_assert_eq(dsq_add(r->q, b, 1, &ib), DRV_OK);
    cr_assert_eq(dsq_add(r->q, c, 3, &ic), DRV_OK);
    cr_expect_eq(ia, 0);
    cr_expect_eq(ib, 2);
    cr_expect_eq(ic, 3);
    dsq_publish(r->q);

    /* The device finishes B, then C, then A. */
    dev_use(r, ib, 0);
    dev_use(r, ic, 20);
    cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(u.id, ib);
    cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(u.id, ic);

    /* Freed descriptors come back after those never used: 6, 7, then B's 2, then C's
     * 3, 4, 5 -- a chain of four crosses from the old free list into freed ones. */
    struct drv_seg four[4] = { { 1, 1, false }, { 2, 1, false }, { 3, 1, false }, { 4, 1, false } };
    uint16_t id4;
    cr_assert_eq(dsq_add(r->q, four, 4, &id4), DRV_OK);
    cr_expect_eq(id4, 6);
    struct desc d = rd(r->desc, 6);
    cr_expect_eq(d.next, 7);
    d = rd(r->desc, 7);
    cr_expect_eq(d.next, 2);
    d = rd(r->desc, 2);
    cr_expect_eq(d.next, 3);
    cr_expect_eq(rd(r->desc, 3).flags, 0, "chain ends at 3");
    dsq_publish(r->q);

    dev_use(r, ia, 0);
    dev_use(r, id4, 0);
    cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(u.id, ia);
    cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(u.id, id4);
    cr_expect_eq(r->q->free_descs, 8);
    rig_free(r);
}

/* ---- indirect ---- */

Test(drv_split, indirect_buffer_takes_one_descriptor)
{
    struct rig *r = rig_new(4, false, false);
    _Alignas(16) uint8_t table[3 * 16];
    struct drv_seg segs[3] = { { 0x1000, 12, false }, { 0x2000, 100, false }, { 0x3000, 64, true } };
    uint16_t id;

    memset(table, 0xee, sizeof(table));
    cr_assert_eq(dsq_add_indirect(r->q, table, 0xabc0, segs, 3, &id), DRV_OK);
    dsq_publish(r->q);

    struct desc d = rd(r->desc, id);
    cr_expect_eq(d.flags, VIRTQ_DESC_F_INDIRECT_MASK, "INDIRECT alone: no NEXT, no WRITE");
    for (unsigned i = 0; i < 3; i++) {
        struct desc t = rd(table, (uint16_t)i);
        uint16_t want = (uint16_t)((segs[i].device_writable ? VIRTQ_DESC_F_WRITE_MASK : 0u) |
                                   (i < 2 ? VIRTQ_DESC_F_NEXT_MASK : 0u));
        cr_expect_eq(t.flags, want, "entry %u", i);
        cr_expect_eq(t.next, i < 2 ? i + 1 : 0, "sequential next inside the table");
    }
    rig_free(r);
}

/* ---- the 16-bit indices ---- */

/* More than 65536 buffers through a ring of 4: avail->idx and used->idx wrap at 65536
 * (and the positions with them: 65536 is a multiple of the size), batches of 1..4. */
Test(drv_split, index_wrap_size4_over_65536_buffers)
{
    struct rig *r = rig_new(4, true, false);
    struct drv_used u;
    uint32_t total = 0, batch = 0;
    uint16_t expect_idx = 0;

    while (total < 70000u) {
        uint16_t ids[4];
        uint32_t n = 1u + batch++ % 4u;

        for (uint32_t i = 0; i < n; i++)
            ids[i] = add1(r, 0x1000 + total + i, 100, true);
        cr_assert_eq(dsq_publish(r->q), n);
        expect_idx = (uint16_t)(expect_idx + n);
        cr_assert_eq(avail_idx(r), expect_idx);
        cr_assert_eq(dsq_notify_data(r->q, 1), 1u | ((uint32_t)expect_idx << 16));
        /* The device asks to hear about the entry just written last. */
        set_avail_event(r, (uint16_t)(expect_idx - 1u));
        cr_assert(dsq_needs_notify(r->q), "total %u", total);

        for (uint32_t i = 0; i < n; i++) {
            uint16_t head = dev_pop(r);
            cr_assert_eq(head, ids[i]);
            cr_assert_eq(rd(r->desc, head).addr, 0x1000 + total + i);
        }
        /* Completed in reverse, published with one used->idx store. */
        for (uint32_t i = 0; i < n; i++)
            dev_put(r, (uint16_t)(r->dev_used_idx + i), ids[n - 1u - i], 7);
        dev_set_used_idx(r, (uint16_t)(r->dev_used_idx + n));
        for (uint32_t i = 0; i < n; i++) {
            cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK, "total %u", total);
            cr_assert_eq(u.id, ids[n - 1u - i]);
            cr_assert_eq(u.len, 7);
        }
        cr_assert_eq(dsq_get_used(r->q, &u), DRV_EMPTY);
        total += n;
    }
    cr_expect_gt(total, 65536u);
    cr_expect_eq(r->q->last_used, (uint16_t)total, "used index wrapped with the avail index");
    cr_expect_eq(avail_idx(r), (uint16_t)total);
    cr_expect_eq(r->q->broken, DRV_HEALTHY);
    rig_free(r);
}

/* The same with chains of two in a ring of 4 (two buffers at a time). */
Test(drv_split, index_wrap_size4_chains)
{
    struct rig *r = rig_new(4, false, false);
    struct drv_used u;

    for (uint32_t n = 0; n < 66000u; n += 2) {
        struct drv_seg s[2] = { { 0x1000, 12, false }, { 0x2000 + n, 60, false } };
        uint16_t a, b;
        cr_assert_eq(dsq_add(r->q, s, 2, &a), DRV_OK);
        cr_assert_eq(dsq_add(r->q, s, 2, &b), DRV_OK);
        cr_assert_not(dsq_can_add(r->q, 1, NULL));
        dsq_publish(r->q);
        cr_assert_eq(dev_pop(r), a);
        cr_assert_eq(dev_pop(r), b);
        dev_use(r, b, 0);
        dev_use(r, a, 0);
        cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
        cr_assert_eq(u.id, b);
        cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
        cr_assert_eq(u.id, a);
    }
    cr_expect_eq(avail_idx(r), (uint16_t)66000u);
    cr_expect_eq(dsq_descs_in_flight(r->q), 0);
    rig_free(r);
}

/* ---- IN_ORDER ---- */

Test(drv_split, in_order_descriptors_in_table_order_and_batches)
{
    struct rig *r = rig_new(8, false, true);
    struct drv_seg b1[1] = { { 0x1000, 100, true } };
    struct drv_seg b2[2] = { { 0x2000, 150, true }, { 0x2100, 50, true } };
    struct drv_seg b3[1] = { { 0x3000, 300, true } };
    uint16_t i1, i2, i3;
    struct drv_used u;

    cr_assert_eq(dsq_add(r->q, b1, 1, &i1), DRV_OK);
    cr_assert_eq(dsq_add(r->q, b2, 2, &i2), DRV_OK);
    cr_assert_eq(dsq_add(r->q, b3, 1, &i3), DRV_OK);
    cr_expect_eq(i1, 0);
    cr_expect_eq(i2, 1);
    cr_expect_eq(i3, 3);
    dsq_publish(r->q);

    /* One used entry at the batch's first position, with the last buffer's id; used->idx
     * moves by the batch's size. */
    dev_put(r, 0, i3, 77);
    dev_set_used_idx(r, 3);

    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(u.id, i3);
    cr_expect_eq(r->q->free_descs, 8);

    /* Next: three chains of two, descriptors 4-5, 6-7, then 0-1: "driver MUST set next
     * to 0 for the last descriptor in the table". Used one entry per buffer. */
    uint16_t ids[3];
    for (unsigned i = 0; i < 3; i++) {
        struct drv_seg s[2] = { { 0x4000, 8, true }, { 0x4100, 8, true } };
        cr_assert_eq(dsq_add(r->q, s, 2, &ids[i]), DRV_OK);
    }
    cr_expect_eq(ids[0], 4);
    cr_expect_eq(ids[1], 6);
    cr_expect_eq(ids[2], 0);
    cr_expect_eq(rd(r->desc, 7).flags, VIRTQ_DESC_F_WRITE_MASK, "6-7 ends at 7");
    cr_expect_eq(rd(r->desc, 6).next, 7);
    cr_expect_eq(rd(r->desc, 0).next, 1);
    dsq_publish(r->q);
    for (unsigned i = 0; i < 3; i++)
        dev_put(r, (uint16_t)(3 + i), ids[i], i + 1);
    dev_set_used_idx(r, 6);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
        cr_expect_eq(u.id, ids[i]);
    }
    rig_free(r);
}

/* A chain starting in the last descriptor wraps to descriptor 0, with next = 0. */
Test(drv_split, in_order_chain_wraps_the_table)
{
    struct rig *r = rig_new(4, false, true);
    struct drv_used u;
    uint16_t a = add1(r, 0x10, 4, false);
    uint16_t b = add1(r, 0x20, 4, false);
    uint16_t c = add1(r, 0x30, 4, false);
    dsq_publish(r->q);
    dev_put(r, 0, c, 0);
    dev_set_used_idx(r, 3);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(a, 0);
    cr_expect_eq(b, 1);
    cr_expect_eq(c, 2);

    struct drv_seg s[2] = { { 0x40, 4, false }, { 0x50, 4, false } };
    uint16_t id;
    cr_assert_eq(dsq_add(r->q, s, 2, &id), DRV_OK);
    cr_expect_eq(id, 3);
    cr_expect_eq(rd(r->desc, 3).flags, VIRTQ_DESC_F_NEXT_MASK);
    cr_expect_eq(rd(r->desc, 3).next, 0);
    cr_expect_eq(rd(r->desc, 0).addr, 0x50);
    rig_free(r);
}

Test(drv_split, in_order_batch_beyond_used_idx_breaks)
{
    struct rig *r = rig_new(8, false, true);
    struct drv_used u;
    add1(r, 0x10, 4, true);
    add1(r, 0x20, 4, true);
    uint16_t c = add1(r, 0x30, 4, true);
    dsq_publish(r->q);
    /* The entry names the third buffer but used->idx moved by only two. */
    dev_put(r, 0, c, 4);
    dev_set_used_idx(r, 2);
    cr_expect_eq(dsq_get_used(r->q, &u), DRV_BROKEN);
    cr_expect_eq(r->q->broken, DRV_BROKEN_BATCH_LONG);
    rig_free(r);
}

/* ---- hostile device ---- */

/* The id field of a used entry is 32 bits wide: its upper half counts. */
Test(drv_split, used_id_upper_half_breaks_the_queue)
{
    struct rig *r = rig_new(8, false, false);
    struct drv_used u;
    uint16_t id = add1(r, 0x1000, 64, false);
    dsq_publish(r->q);
    dev_use(r, 0x10000u | id, 0);
    cr_expect_eq(dsq_get_used(r->q, &u), DRV_BROKEN);
    cr_expect_eq(r->q->broken, DRV_BROKEN_ID_RANGE);
    rig_free(r);
}

/* An id must be a chain's head: the second descriptor of a chain is not a buffer. */
Test(drv_split, used_id_not_a_head_breaks_the_queue)
{
    struct drv_used u;
    struct drv_seg two[2] = { { 0x1000, 8, false }, { 0x2000, 8, false } };
    uint16_t id;
    struct rig *r = rig_new(8, false, false);
    cr_assert_eq(dsq_add(r->q, two, 2, &id), DRV_OK);
    dsq_publish(r->q);
    dev_use(r, (uint32_t)id + 1u, 0);
    cr_expect_eq(dsq_get_used(r->q, &u), DRV_BROKEN);
    cr_expect_eq(r->q->broken, DRV_BROKEN_ID_NOT_OWNED);
    rig_free(r);
}

Test(drv_split, used_idx_jump_breaks_the_queue)
{
    struct drv_used u;

    /* Two buffers owned, used->idx moved by three. */
    struct rig *r = rig_new(8, false, false);
    uint16_t a = add1(r, 0x1000, 64, false);
    uint16_t b = add1(r, 0x2000, 64, false);
    dsq_publish(r->q);
    add1(r, 0x3000, 64, false); /* added, not published: not the device's */
    dev_put(r, 0, a, 0);
    dev_put(r, 1, b, 0);
    dev_set_used_idx(r, 3);
    cr_expect_eq(dsq_get_used(r->q, &u), DRV_BROKEN);
    cr_expect_eq(r->q->broken, DRV_BROKEN_IDX_JUMP);
    rig_free(r);

    /* Exactly what is owned is fine. */
    r = rig_new(8, false, false);
    a = add1(r, 0x1000, 64, false);
    b = add1(r, 0x2000, 64, false);
    dsq_publish(r->q);
    dev_put(r, 0, a, 0);
    dev_put(r, 1, b, 0);
    dev_set_used_idx(r, 2);
    cr_expect_eq(dsq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(dsq_get_used(r->q, &u), DRV_OK);

    /* Backwards (a "decrement" is a jump of almost 65536). */
    dev_set_used_idx(r, 1);
    cr_expect_eq(dsq_get_used(r->q, &u), DRV_BROKEN);
    cr_expect_eq(r->q->broken, DRV_BROKEN_IDX_JUMP);
    rig_free(r);

    /* Nothing owned at all. */
    r = rig_new(8, false, false);
    dev_set_used_idx(r, 1);
    cr_expect(dsq_has_used(r->q), "has_used only looks");
    cr_expect_eq(dsq_get_used(r->q, &u), DRV_BROKEN);
    cr_expect_eq(r->q->broken, DRV_BROKEN_IDX_JUMP);
    rig_free(r);
}

/* ---- the caller's mistakes ---- */

Test(drv_split, invalid_requests_write_nothing)
{
    struct rig *r = rig_new(4, false, false);
    struct drv_seg five[5] = {
        { 1, 1, false }, { 2, 1, false }, { 3, 1, false }, { 4, 1, false }, { 5, 1, false },
    };
    struct drv_seg huge[3] = { { 0x1000, 0x80000000u, false }, { 0x2000, 0x80000000u, false },
                               { 0x3000, 1, false } };

    cr_expect_eq(dsq_add(r->q, huge, 3, NULL), DRV_INVALID, "above 2^32 bytes in total");
    cr_expect_eq(dsq_add(r->q, huge, 2, NULL), DRV_OK, "exactly 2^32 bytes is allowed");
    cr_expect_eq(r->q->added, 1);
    cr_expect_eq(r->q->free_descs, 2);
    rig_free(r);

    r = rig_new(4, false, false);
    cr_expect_eq(dsq_add(r->q, five, 5, NULL), DRV_INVALID);
    cr_expect_eq(avail_entry(r, 0), 0, "no available ring entry either");
    cr_expect_eq(r->q->added, 0);
    rig_free(r);
}

/* ---- available buffer notifications ---- */

/* Without EVENT_IDX only used->flags counts ("If flags is 0, the driver MUST send a
 * notification"), whatever avail_event says. */
Test(drv_split, notify_without_event_idx_ignores_avail_event)
{
    struct rig *r = rig_new(8, false, false);

    set_avail_event(r, 2);
    vs_put_le16(r->used, 0);
    add1(r, 0x1000, 8, false);
    dsq_publish(r->q);
    cr_expect(dsq_needs_notify(r->q), "avail_event ignored without EVENT_IDX");
    rig_free(r);
}

/* With EVENT_IDX only avail_event counts: "The driver MUST ignore the lower bit of
 * flags". */
Test(drv_split, notify_with_event_idx_ignores_used_flags)
{
    struct rig *r = rig_new(8, true, false);

    /* Entries 0..2 published; the device wants to hear about entry 1. */
    for (unsigned i = 0; i < 3; i++)
        add1(r, 0x1000, 8, false);
    dsq_publish(r->q);
    set_avail_event(r, 1);
    vs_put_le16(r->used, VIRTQ_USED_F_NO_NOTIFY_MASK);
    cr_expect(dsq_needs_notify(r->q), "NO_NOTIFY ignored: avail_event was passed");

    /* Entry 3; the device names 6, flags 0: not yet. */
    add1(r, 0x1000, 8, false);
    dsq_publish(r->q);
    set_avail_event(r, 6);
    vs_put_le16(r->used, 0);
    cr_expect_not(dsq_needs_notify(r->q), "flags 0 does not ask for a notification");
    rig_free(r);
}

Test(drv_split, need_event_table_and_wrap)
{
    /* [old, new): the entries just written. */
    cr_expect(dsq_need_event(5, 6, 5));
    cr_expect_not(dsq_need_event(6, 6, 5), "not written yet");
    cr_expect_not(dsq_need_event(4, 6, 5), "written before the last decision");
    cr_expect(dsq_need_event(3, 8, 2));
    cr_expect(dsq_need_event(7, 8, 2));
    cr_expect_not(dsq_need_event(8, 8, 2));
    cr_expect_not(dsq_need_event(5, 5, 5), "nothing new");
    /* Across the 16-bit wrap: 0xfffe, 0xffff, 0, 1 written. */
    cr_expect(dsq_need_event(0xfffe, 2, 0xfffe));
    cr_expect(dsq_need_event(0xffff, 2, 0xfffe));
    cr_expect(dsq_need_event(0, 2, 0xfffe));
    cr_expect(dsq_need_event(1, 2, 0xfffe));
    cr_expect_not(dsq_need_event(2, 2, 0xfffe));
    cr_expect_not(dsq_need_event(0xfffd, 2, 0xfffe));
}

/* The driver's decision across avail->idx wrapping at 65536. */
Test(drv_split, notify_event_idx_across_the_index_wrap)
{
    struct rig *r = rig_new(4, true, false);
    struct drv_used u;

    /* Walk avail->idx to 0xfffe one buffer at a time. */
    for (uint32_t i = 0; i < 0xfffeu; i++) {
        uint16_t id = add1(r, 0x1000, 8, false);
        dsq_publish(r->q);
        dsq_needs_notify(r->q);
        dev_use(r, id, 0);
        cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
    }
    cr_assert_eq(avail_idx(r), 0xfffe);

    /* Four entries: 0xfffe, 0xffff, 0, 1. */
    for (unsigned i = 0; i < 4; i++)
        add1(r, 0x1000, 8, false);
    dsq_publish(r->q);
    cr_assert_eq(avail_idx(r), 2);
    const struct { uint16_t event; bool hit; } cases[] = {
        { 0xfffe, true }, { 0xffff, true }, { 0, true }, { 1, true },
        { 2, false }, { 0xfffd, false }, { 0x8000, false },
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_avail_event(r, cases[i].event);
        r->q->unnotified = 4;
        cr_expect_eq(dsq_needs_notify(r->q), cases[i].hit, "avail_event 0x%x", cases[i].event);
    }
    /* More than a whole 16-bit lap since the last decision: notify. */
    set_avail_event(r, 0x8000);
    r->q->unnotified = 0x10000;
    cr_expect(dsq_needs_notify(r->q));
    rig_free(r);
}

Test(drv_split, notification_data_carries_the_available_index)
{
    struct rig *r = rig_new(4, false, false);
    struct drv_used u;

    cr_expect_eq(dsq_notify_data(r->q, 1), 1u);
    for (unsigned i = 0; i < 3; i++)
        add1(r, 0x1000, 8, false);
    cr_expect_eq(dsq_notify_data(r->q, 1), 1u, "unpublished entries are not announced");
    dsq_publish(r->q);
    cr_expect_eq(dsq_notify_data(r->q, 1), 1u | (3u << 16));

    /* Bit 15 of the index goes to bit 31 (next_wrap), the low 15 bits to next_off. */
    for (uint32_t i = 0; i < 3; i++) {
        dev_use(r, avail_entry(r, (uint16_t)i), 0);
        cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
    }
    for (uint32_t i = 3; i < 0x8005u; i++) {
        uint16_t id = add1(r, 0x1000, 8, false);
        dsq_publish(r->q);
        dev_use(r, id, 0);
        cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
    }
    cr_expect_eq(avail_idx(r), 0x8005);
    cr_expect_eq(dsq_notify_data(r->q, 0), (5u << 16) | (1u << 31));
    cr_expect_eq(dsq_notify_data(r->q, 0x1234), 0x1234u | (5u << 16) | (1u << 31));
    rig_free(r);
}

/* ---- used buffer notifications: the driver's side ---- */

Test(drv_split, driver_events_without_event_idx_use_avail_flags)
{
    struct rig *r = rig_new(8, false, false);
    dsq_set_driver_events(r->q, DRV_EVENTS_DISABLE);
    cr_expect_eq(vs_le16(r->avail), VIRTQ_AVAIL_F_NO_INTERRUPT_MASK);
    cr_expect_eq(used_event(r), 0, "used_event untouched");
    dsq_set_driver_events(r->q, DRV_EVENTS_ENABLE);
    cr_expect_eq(vs_le16(r->avail), 0);
    dsq_enable_driver_events_after(r->q, 3);
    cr_expect_eq(vs_le16(r->avail), 0, "no EVENT_IDX: plain enable");
    cr_expect_eq(used_event(r), 0);
    rig_free(r);
}

Test(drv_split, driver_events_with_event_idx_use_used_event)
{
    struct rig *r = rig_new(8, true, false);
    struct drv_used u;

    dsq_set_driver_events(r->q, DRV_EVENTS_ENABLE);
    cr_expect_eq(vs_le16(r->avail), 0, "flags stay 0 with EVENT_IDX");
    cr_expect_eq(used_event(r), 0, "the next entry: index 0");

    for (unsigned i = 0; i < 6; i++) {
        uint16_t id = add1(r, 0x1000, 8, false);
        dsq_publish(r->q);
        dev_use(r, id, 0);
        cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
    }
    dsq_enable_driver_events_after(r->q, 1);
    cr_expect_eq(used_event(r), 7);
    dsq_enable_driver_events_after(r->q, 100);
    cr_expect_eq(used_event(r), 6 + 7, "clamped to size - 1 ahead");
    dsq_set_driver_events(r->q, DRV_EVENTS_DISABLE);
    cr_expect_eq(vs_le16(r->avail), 0, "flags stay 0 with EVENT_IDX");
    cr_expect_eq(used_event(r), 5, "one behind the driver: a whole lap away");
    rig_free(r);
}

/* Disabled with EVENT_IDX while the driver keeps reaping (poll mode): the device,
 * checking used_event as the spec says at every used entry it writes, never finds a
 * reason to interrupt -- over more than a lap of the 16-bit index. */
Test(drv_split, disabled_event_idx_stays_out_of_reach)
{
    struct rig *r = rig_new(8, true, false);
    struct drv_used u;
    uint32_t interrupts = 0;

    dsq_set_driver_events(r->q, DRV_EVENTS_DISABLE);
    for (uint32_t n = 0; n < 140000u; n += 8) {
        uint16_t ids[8];
        for (unsigned i = 0; i < 8; i++)
            ids[i] = add1(r, 0x1000, 8, true);
        dsq_publish(r->q);
        /* The device uses all eight, checking after each used entry. */
        for (unsigned i = 0; i < 8; i++) {
            uint16_t old = r->dev_used_idx;
            dev_use(r, ids[i], 8);
            if (dsq_need_event(used_event(r), r->dev_used_idx, old))
                interrupts++;
        }
        for (unsigned i = 0; i < 8; i++)
            cr_assert_eq(dsq_get_used(r->q, &u), DRV_OK);
    }
    cr_expect_eq(interrupts, 0);
    cr_expect_eq(vs_le16(r->avail), 0);

    /* Enabled again: the next used entry interrupts. */
    dsq_set_driver_events(r->q, DRV_EVENTS_ENABLE);
    uint16_t id = add1(r, 0x1000, 8, true);
    dsq_publish(r->q);
    uint16_t old = r->dev_used_idx;
    dev_use(r, id, 8);
    cr_expect(dsq_need_event(used_event(r), r->dev_used_idx, old));
    rig_free(r);
}

/* ---- the largest ring ---- */

/* A full ring of the largest size: avail->idx reaches 0x8000 (NOTIFICATION_DATA's wrap
 * bit), and the device may return everything with one used->idx store. */
Test(drv_split, largest_ring_index_and_one_idx_store)
{
    struct dsq *q = calloc(1, sizeof(*q));
    uint8_t *desc = calloc(SVIRTQ_SIZE_MAX, 16);
    uint8_t *avail = calloc(1, SVIRTQ_AVAIL_RING_BYTES(SVIRTQ_SIZE_MAX));
    uint8_t *used = calloc(1, SVIRTQ_USED_RING_BYTES(SVIRTQ_SIZE_MAX));
    struct drv_used u;

    cr_assert_not_null(q);
    cr_assert_not_null(desc);
    cr_assert_not_null(avail);
    cr_assert_not_null(used);
    dsq_init(q, desc, avail, used, SVIRTQ_SIZE_MAX, true, false);
    for (uint32_t i = 0; i < SVIRTQ_SIZE_MAX; i++) {
        struct drv_seg s = { 0x1000, 8, true };
        cr_assert_eq(dsq_add(q, &s, 1, NULL), DRV_OK);
    }
    dsq_publish(q);
    cr_expect_eq(vs_le16(avail + 2), 0x8000);
    cr_expect_eq(dsq_notify_data(q, 0), 1u << 31, "offset 0, bit 15 set");
    /* The device uses all of them, in reverse, with one idx store. */
    for (uint32_t i = 0; i < SVIRTQ_SIZE_MAX; i++) {
        uint8_t *e = used + 4 + 8u * i;
        vs_put_le32(e, vs_le16(avail + 4 + 2u * (SVIRTQ_SIZE_MAX - 1u - i)));
        vs_put_le32(e + 4, 8);
    }
    vs_put_le16(used + 2, 0x8000);
    for (uint32_t i = 0; i < SVIRTQ_SIZE_MAX; i++)
        cr_assert_eq(dsq_get_used(q, &u), DRV_OK);
    cr_expect_eq(q->free_descs, SVIRTQ_SIZE_MAX);
    free(used);
    free(avail);
    free(desc);
    free(q);
}

/* ---- refdrv over split rings, against the untimed device ----
 *
 * The rig of tests/common/host_rig.h: guest memory is one array; the device's DMA goes
 * through an IOMMU (model/iommu) when ACCESS_PLATFORM was negotiated, page walks reading
 * the same array, and is physical otherwise. The device runs until idle after every
 * MMIO write (unless lazy), every empty poll and whenever the driver waits for an
 * interrupt. */

#define DEV_MEM_BASE   0x40000000ull
#define DEV_MEM_SIZE   (16ull << 20)
#define DEV_IOVA_OFF   (1ull << 40)
#define DEV_FRAMES     700u

/* A device offering everything it can, minus `withdraw`; queues of up to max entries;
 * used entries published in batches of up to 4. */
static struct host_rig *dev_rig_new(const vs_features *withdraw, uint16_t max)
{
    struct vdev_params dp = host_rig_default_params();
    dp.queue_size_max = max;
    dp.used_batch_max = 4;
    if (withdraw != NULL)
        dp.withdraw = *withdraw;
    cr_assert_null(vdev_check_params(&dp));
    struct host_rig *r = host_rig_new(DEV_MEM_BASE, DEV_MEM_SIZE, &dp);
    cr_assert_not_null(r);
    return r;
}

/* Was `bit` negotiated while the device ran? (refdrv_run leaves the device reset.) */
static bool had(const struct host_rig *r, unsigned bit)
{
    return vs_feature_has(&r->negotiated, bit);
}

static void dev_rig_free(struct host_rig *r)
{
    cr_expect_eq(r->msi_misaddressed, 0, "MSI-X messages not at HOST_RIG_MSI_BASE");
    host_rig_free(r);
}

static struct refdrv_params drv_params(enum refdrv_tx_layout layout, enum refdrv_mode mode,
                                       uint16_t queue_size)
{
    const uint32_t sizes[] = { 64, 1514, 300, 60, 900 };
    struct refdrv_params p = host_rig_refdrv_params(DEV_FRAMES, sizes, 5, 11);
    p.queue_size_entries = queue_size;
    p.mode = mode;
    p.tx_layout = layout;
    p.iova_offset = DEV_IOVA_OFF;
    p.iommu_page_bytes = 4096;
    vs_feature_set(&p.decline, VIRTIO_F_RING_PACKED_BIT);
    return p;
}

/* Run the driver; every frame must come back intact over split rings. */
static void run_split(struct host_rig *r, const struct refdrv_params *p, struct refdrv_stats *st)
{
    memset(st, 0, sizeof *st);
    enum refdrv_result res = refdrv_run(&r->host, p, st);

    cr_assert_eq(res, REFDRV_OK, "result %s (device error %s)", refdrv_result_name(res),
                 vs_reason_name(r->dev.tp.error));
    cr_expect_eq(st->tx_frames, DEV_FRAMES);
    cr_expect_eq(st->rx_frames, DEV_FRAMES);
    cr_expect_eq(st->rx_bad_payload, 0);
    cr_expect_eq(r->out_of_range, 0);
    cr_expect_eq(r->faults, 0);
    cr_expect_not(had(r, VIRTIO_F_RING_PACKED_BIT));
    for (uint16_t q = 0; q < 2; q++) {
        cr_assert_not_null(r->format[q], "queue %u never went live", q);
        cr_expect_str_eq(r->format[q], "split", "queue %u", q);
    }
    cr_expect_eq(r->dev.tp.vpci.status, 0, "the driver left the device reset");
}

TestSuite(refdrv_split);

/* Every TX layout, interrupts and polling, the driver declining RING_PACKED; EVENT_IDX,
 * IN_ORDER, INDIRECT_DESC and NOTIFICATION_DATA negotiated. */
Test(refdrv_split, declined_packed_every_layout_and_mode)
{
    const enum refdrv_tx_layout layouts[] = { REFDRV_TX_ONE_DESC, REFDRV_TX_CHAIN, REFDRV_TX_INDIRECT };
    const enum refdrv_mode modes[] = { REFDRV_MODE_INTERRUPT, REFDRV_MODE_POLL };

    for (unsigned m = 0; m < 2; m++) {
        for (unsigned l = 0; l < 3; l++) {
            struct host_rig *r = dev_rig_new(NULL, 256);
            struct refdrv_params p = drv_params(layouts[l], modes[m], 64);
            vs_feature_set(&p.decline, VIRTIO_F_ACCESS_PLATFORM_BIT);
            struct refdrv_stats st;
            run_split(r, &p, &st);
            cr_expect(had(r, VIRTIO_F_EVENT_IDX_BIT));
            cr_expect(had(r, VIRTIO_F_IN_ORDER_BIT));
            cr_expect(had(r, VIRTIO_F_NOTIFICATION_DATA_BIT));
            cr_expect_eq(r->size[VNET_QUEUE_RX], 64);
            cr_expect_gt(r->physical, 0);
            cr_expect_eq(r->translated, 0);
            dev_rig_free(r);
        }
    }
}

/* A device that works only while the driver sleeps: every completion reaches the
 * driver through a used buffer notification it asked for (used_event with EVENT_IDX,
 * avail->flags without); a request that never took effect would end in a timeout. */
Test(refdrv_split, interrupts_wake_the_driver)
{
    for (unsigned ev = 0; ev < 2; ev++) {
        const enum refdrv_tx_layout layouts[] = { REFDRV_TX_ONE_DESC, REFDRV_TX_CHAIN };
        for (unsigned l = 0; l < 2; l++) {
            struct host_rig *r = dev_rig_new(NULL, 256);
            r->lazy = true;
            struct refdrv_params p = drv_params(layouts[l], REFDRV_MODE_INTERRUPT, 16);
            vs_feature_set(&p.decline, VIRTIO_F_ACCESS_PLATFORM_BIT);
            if (ev == 0)
                vs_feature_set(&p.decline, VIRTIO_F_EVENT_IDX_BIT);
            struct refdrv_stats st;
            run_split(r, &p, &st);
            cr_expect_eq(had(r, VIRTIO_F_EVENT_IDX_BIT), ev == 1);
            cr_expect_gt(st.interrupts, 0, "event_idx %u layout %u", ev, l);
            cr_expect_gt(st.notifications, 0);
            dev_rig_free(r);
        }
    }
}

/* Without EVENT_IDX (avail->flags / used->flags), without IN_ORDER (used entries one
 * per buffer) and without NOTIFICATION_DATA (16-bit notifications). */
Test(refdrv_split, without_event_idx_in_order_notification_data)
{
    const unsigned drop[][3] = {
        { VIRTIO_F_EVENT_IDX_BIT, VIRTIO_F_EVENT_IDX_BIT, VIRTIO_F_EVENT_IDX_BIT },
        { VIRTIO_F_IN_ORDER_BIT, VIRTIO_F_IN_ORDER_BIT, VIRTIO_F_IN_ORDER_BIT },
        { VIRTIO_F_EVENT_IDX_BIT, VIRTIO_F_IN_ORDER_BIT, VIRTIO_F_NOTIFICATION_DATA_BIT },
    };
    for (unsigned i = 0; i < 3; i++) {
        for (unsigned mode = 0; mode < 2; mode++) {
            struct host_rig *r = dev_rig_new(NULL, 256);
            struct refdrv_params p = drv_params(REFDRV_TX_CHAIN,
                                                mode ? REFDRV_MODE_POLL : REFDRV_MODE_INTERRUPT, 32);
            vs_feature_set(&p.decline, VIRTIO_F_ACCESS_PLATFORM_BIT);
            for (unsigned k = 0; k < 3; k++)
                vs_feature_set(&p.decline, drop[i][k]);
            struct refdrv_stats st;
            run_split(r, &p, &st);
            for (unsigned k = 0; k < 3; k++)
                cr_expect_not(had(r, drop[i][k]));
            dev_rig_free(r);
        }
    }
}

/* The device withdraws RING_PACKED: the driver no longer refuses, it uses split. */
Test(refdrv_split, device_without_packed)
{
    vs_features withdraw;
    memset(&withdraw, 0, sizeof withdraw);
    vs_feature_set(&withdraw, VIRTIO_F_RING_PACKED_BIT);
    struct host_rig *r = dev_rig_new(&withdraw, 256);
    struct refdrv_params p = drv_params(REFDRV_TX_ONE_DESC, REFDRV_MODE_INTERRUPT, 128);
    memset(&p.decline, 0, sizeof p.decline); /* the driver would take packed */
    struct refdrv_stats st;
    run_split(r, &p, &st);
    cr_expect_eq(r->size[VNET_QUEUE_TX], 128);
    dev_rig_free(r);
}

/* Split queue sizes are powers of two: a request of 100 becomes 64, and a device
 * maximum of 200 with no request becomes 128. Packed keeps the size asked for. */
Test(refdrv_split, queue_size_rounds_down_to_a_power_of_two)
{
    struct host_rig *r = dev_rig_new(NULL, 256);
    struct refdrv_params p = drv_params(REFDRV_TX_CHAIN, REFDRV_MODE_INTERRUPT, 100);
    struct refdrv_stats st;
    run_split(r, &p, &st);
    cr_expect_eq(r->size[VNET_QUEUE_RX], 64);
    cr_expect_eq(r->size[VNET_QUEUE_TX], 64);
    dev_rig_free(r);

    r = dev_rig_new(NULL, 200);
    p = drv_params(REFDRV_TX_ONE_DESC, REFDRV_MODE_INTERRUPT, 0);
    run_split(r, &p, &st);
    cr_expect_eq(r->size[VNET_QUEUE_RX], 128);
    dev_rig_free(r);

    r = dev_rig_new(NULL, 256);
    p = drv_params(REFDRV_TX_ONE_DESC, REFDRV_MODE_INTERRUPT, 100);
    memset(&p.decline, 0, sizeof p.decline);
    memset(&st, 0, sizeof st);
    cr_assert_eq(refdrv_run(&r->host, &p, &st), REFDRV_OK);
    cr_expect_str_eq(r->format[VNET_QUEUE_RX], "packed");
    cr_expect_eq(r->size[VNET_QUEUE_RX], 100);
    dev_rig_free(r);
}

/* ACCESS_PLATFORM: the three split areas, the buffers and the indirect tables are
 * mapped; the device reaches all of them at IOVAs, with no fault. */
Test(refdrv_split, through_the_iommu)
{
    const enum refdrv_tx_layout layouts[] = { REFDRV_TX_ONE_DESC, REFDRV_TX_INDIRECT };
    for (unsigned l = 0; l < 2; l++) {
        struct host_rig *r = dev_rig_new(NULL, 256);
        struct refdrv_params p = drv_params(layouts[l], REFDRV_MODE_INTERRUPT, 64);
        struct refdrv_stats st;
        run_split(r, &p, &st);
        cr_expect(had(r, VIRTIO_F_ACCESS_PLATFORM_BIT));
        cr_expect_gt(r->translated, 0);
        cr_expect_eq(r->physical, 0);
        cr_expect_eq(r->mmu.fault_count, 0);
        cr_expect_gt(st.iommu_pages_mapped, 0);
        const enum vs_dma_kind kinds[] = { VS_DMA_DESC_READ, VS_DMA_USED_WRITE, VS_DMA_BUF_READ,
                                           VS_DMA_BUF_WRITE };
        for (unsigned k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            cr_expect_geq(host_rig_lo(r, kinds[k]), DEV_MEM_BASE + DEV_IOVA_OFF, "kind %u",
                          kinds[k]);
            cr_expect_leq(host_rig_hi(r, kinds[k]), DEV_MEM_BASE + DEV_IOVA_OFF + DEV_MEM_SIZE,
                          "kind %u", kinds[k]);
        }
        dev_rig_free(r);
    }
}
