/* test_drv_packed.c -- what only the packed ring's driver side has.
 *
 * The behaviour both formats share (drv_ring.h's contract: publishing, reaping, chains,
 * indirect tables, IN_ORDER batches, a hostile device, the caller's mistakes,
 * notifications) is tested once for both in test_drv_ring.c. Here: the exact descriptor
 * words, the wrap counters and ring positions, the event suppression structures and
 * NOTIFICATION_DATA. The ring is a plain array; the tests play the device by reading
 * the descriptors the driver wrote and writing used descriptors by hand, as "Packed
 * Virtqueues" says a device does (AVAIL and USED both set to the Device Ring Wrap
 * Counter, the id of the buffer, the written length, VIRTQ_DESC_F_WRITE when data was
 * written).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "drv_packed.h"

#define RING_MAX 64u

struct rig {
    struct dpq *q;
    _Alignas(16) uint8_t ring[RING_MAX * 16u];
    _Alignas(4) uint8_t drv_ev[4];
    _Alignas(4) uint8_t dev_ev[4];
};

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t id;
    uint16_t flags;
};

static struct rig *rig_new(uint16_t size, bool event_idx, bool in_order)
{
    struct rig *r = calloc(1, sizeof(*r));
    cr_assert_not_null(r);
    r->q = calloc(1, sizeof(*r->q));
    cr_assert_not_null(r->q);
    cr_assert_leq(size, RING_MAX);
    dpq_init(r->q, r->ring, r->drv_ev, r->dev_ev, size, event_idx, in_order);
    return r;
}

static void rig_free(struct rig *r)
{
    free(r->q);
    free(r);
}

static struct desc rd(const struct rig *r, uint16_t slot)
{
    const uint8_t *d = r->ring + 16u * slot;
    struct desc x = {
        .addr = vs_le64(d),
        .len = vs_le32(d + 8),
        .id = vs_le16(d + 12),
        .flags = vs_le16(d + 14),
    };
    return x;
}

/* What the device writes to mark a buffer used. */
static void dev_use(struct rig *r, uint16_t slot, uint16_t id, uint32_t len, bool wrote, bool wrap)
{
    uint8_t *d = r->ring + 16u * slot;
    uint16_t flags = (uint16_t)((wrap ? (VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK) : 0u) |
                                (wrote ? VIRTQ_DESC_F_WRITE_MASK : 0u));
    vs_put_le32(d + 8, len);
    vs_put_le16(d + 12, id);
    vs_put_le16(d + 14, flags);
}

static void dev_event(struct rig *r, uint16_t flags, uint16_t off, bool wrap)
{
    vs_put_le16(r->dev_ev, (uint16_t)(off | (wrap ? 0x8000u : 0u)));
    vs_put_le16(r->dev_ev + 2, flags);
}

static uint16_t avail_flags(bool wrap)
{
    return (uint16_t)(wrap ? VIRTQ_DESC_F_AVAIL_MASK : VIRTQ_DESC_F_USED_MASK);
}

static uint16_t add1(struct rig *r, uint64_t addr, uint32_t len, bool writable)
{
    struct drv_seg s = { addr, len, writable };
    uint16_t id = DRV_NO_ID;
    cr_assert_eq(dpq_add(r->q, &s, 1, &id), DRV_OK);
    return id;
}

/* ---- making buffers available ---- */

Test(drv_packed, init_state)
{
    struct rig *r = rig_new(8, false, false);
    cr_expect_eq(r->q->next_avail, 0);
    cr_expect(r->q->avail_wrap, "Driver Ring Wrap Counter starts at 1");
    cr_expect(r->q->used_wrap);
    cr_expect_eq(r->q->free_slots, 8);
    cr_expect_eq(r->q->free_ids, 8);
    rig_free(r);
}

Test(drv_packed, single_buffer_layout_and_head_flags_last)
{
    struct rig *r = rig_new(8, false, false);
    uint16_t id = add1(r, 0x1000, 64, false);

    struct desc d = rd(r, 0);
    cr_expect_eq(d.addr, 0x1000);
    cr_expect_eq(d.len, 64);
    cr_expect_eq(d.id, id);
    cr_expect_eq(d.flags, 0, "flags stay unwritten until the batch is published");

    dpq_publish(r->q);
    d = rd(r, 0);
    cr_expect_eq(d.flags, VIRTQ_DESC_F_AVAIL_MASK, "AVAIL=1 USED=0 on the first lap");
    rig_free(r);
}

Test(drv_packed, writable_element_sets_write_flag)
{
    struct rig *r = rig_new(8, false, false);
    add1(r, 0x2000, 1526, true);
    dpq_publish(r->q);
    cr_expect_eq(rd(r, 0).flags, VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_WRITE_MASK);
    rig_free(r);
}

Test(drv_packed, chain_written_before_its_head)
{
    struct rig *r = rig_new(8, false, false);
    struct drv_seg segs[3] = {
        { 0x1000, 12, false }, { 0x2000, 100, false }, { 0x3000, 200, true },
    };
    uint16_t id;

    cr_assert_eq(dpq_add(r->q, segs, 3, &id), DRV_OK);
    cr_expect_eq(rd(r, 0).flags, 0, "head hidden while the chain is written");
    cr_expect_eq(rd(r, 1).flags, VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_NEXT_MASK);
    cr_expect_eq(rd(r, 2).flags, VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_WRITE_MASK,
                 "last element: no NEXT");
    cr_expect_eq(rd(r, 2).id, id, "buffer id in the last descriptor");
    cr_expect_eq(rd(r, 1).addr, 0x2000);
    cr_expect_eq(rd(r, 2).len, 200);

    cr_expect_eq(dpq_publish(r->q), 3, "publish counts descriptors");
    cr_expect_eq(rd(r, 0).flags, VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_NEXT_MASK);
    cr_expect_eq(r->q->next_avail, 3);
    rig_free(r);
}

Test(drv_packed, batch_hides_everything_behind_its_first_head)
{
    struct rig *r = rig_new(8, false, false);
    add1(r, 0x1000, 10, false);
    add1(r, 0x2000, 20, false);
    add1(r, 0x3000, 30, false);
    cr_expect_eq(rd(r, 0).flags, 0, "first head deferred");
    cr_expect_eq(rd(r, 1).flags, VIRTQ_DESC_F_AVAIL_MASK, "later heads are behind it");
    cr_expect_eq(rd(r, 2).flags, VIRTQ_DESC_F_AVAIL_MASK);
    cr_expect_eq(dpq_publish(r->q), 3);
    cr_expect_eq(rd(r, 0).flags, VIRTQ_DESC_F_AVAIL_MASK);
    rig_free(r);
}

/* Size 4, single descriptors, three laps and a bit: flags alternate with the wrap
 * counter, the ring fills, used descriptors come back in place. */
Test(drv_packed, wrap_size4_over_three_laps)
{
    struct rig *r = rig_new(4, false, false);
    bool wrap = true;
    uint16_t slot = 0;

    for (unsigned n = 0; n < 14; n++) {
        uint16_t id = add1(r, 0x1000 + n, 100 + n, false);
        cr_assert_eq(dpq_publish(r->q), 1);
        struct desc d = rd(r, slot);
        cr_assert_eq(d.flags, avail_flags(wrap), "lap %u slot %u", n / 4, slot);
        cr_assert_eq(d.addr, 0x1000 + n);
        cr_assert_eq(d.id, id);

        dev_use(r, slot, id, 0, false, wrap);
        cr_assert(dpq_has_used(r->q));
        struct drv_used u;
        cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
        cr_assert_eq(u.id, id);
        cr_assert_not(u.written);
        cr_assert_eq(dpq_get_used(r->q, &u), DRV_EMPTY);

        if (++slot == 4) {
            slot = 0;
            wrap = !wrap;
        }
        cr_assert_eq(r->q->next_avail, slot);
        cr_assert_eq(r->q->avail_wrap, wrap);
        cr_assert_eq(r->q->next_used, slot);
        cr_assert_eq(r->q->used_wrap, wrap);
    }
    rig_free(r);
}

/* Size 9 with two-descriptor chains: a chain starting in the last slot continues in
 * slot 0 with the toggled wrap counter; the used descriptor accounts for both slots. */
Test(drv_packed, wrap_size9_chains_cross_the_end)
{
    struct rig *r = rig_new(9, false, false);
    bool wrap = true;
    uint16_t slot = 0;
    bool crossed = false;

    for (unsigned n = 0; n < 20; n++) { /* 40 slots: more than four laps */
        struct drv_seg segs[2] = { { 0x1000, 12, false }, { 0x2000 + n, 60, false } };
        uint16_t id;
        cr_assert_eq(dpq_add(r->q, segs, 2, &id), DRV_OK);
        dpq_publish(r->q);

        uint16_t second = (uint16_t)((slot + 1) % 9);
        bool second_wrap = second == 0 ? !wrap : wrap;
        cr_assert_eq(rd(r, slot).flags, avail_flags(wrap) | VIRTQ_DESC_F_NEXT_MASK, "n=%u", n);
        cr_assert_eq(rd(r, second).flags, avail_flags(second_wrap), "n=%u", n);
        cr_assert_eq(rd(r, second).id, id);
        if (second == 0)
            crossed = true;

        dev_use(r, slot, id, 0, false, wrap);
        struct drv_used u;
        cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
        cr_assert_eq(u.id, id);

        slot = (uint16_t)(slot + 2);
        if (slot >= 9) {
            slot = (uint16_t)(slot - 9);
            wrap = !wrap;
        }
        cr_assert_eq(r->q->next_used, slot);
        cr_assert_eq(r->q->used_wrap, wrap);
        cr_assert_eq(r->q->next_avail, slot);
        cr_assert_eq(r->q->avail_wrap, wrap);
    }
    cr_expect(crossed, "some chain crossed the end of the ring");
    rig_free(r);
}

/* ---- reaping: the driver's used position ---- */

Test(drv_packed, out_of_order_used_skips_by_chain_length)
{
    struct rig *r = rig_new(8, false, false);
    struct drv_seg a[2] = { { 0x1000, 10, false }, { 0x1100, 10, false } };
    struct drv_seg b[1] = { { 0x2000, 10, false } };
    struct drv_seg c[3] = { { 0x3000, 10, false }, { 0x3100, 10, true }, { 0x3200, 10, true } };
    uint16_t ia, ib, ic;
    struct drv_used u;

    cr_assert_eq(dpq_add(r->q, a, 2, &ia), DRV_OK);
    cr_assert_eq(dpq_add(r->q, b, 1, &ib), DRV_OK);
    cr_assert_eq(dpq_add(r->q, c, 3, &ic), DRV_OK);
    dpq_publish(r->q);

    /* The device finishes B, then A, then C, writing used descriptors one after the
     * other at its own position, each skipping the buffer's slot count. */
    dev_use(r, 0, ib, 0, false, true);
    dev_use(r, 1, ia, 0, false, true);
    dev_use(r, 3, ic, 20, true, true);

    cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(u.id, ib);
    cr_expect_eq(r->q->next_used, 1);
    cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(u.id, ia);
    cr_expect_eq(r->q->next_used, 3);
    cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(u.id, ic);
    cr_expect_eq(r->q->next_used, 6);
    cr_expect_eq(r->q->free_ids, 8);
    rig_free(r);
}

/* IN_ORDER: one used descriptor for a batch moves the used position past the whole
 * batch; one per buffer moves it buffer by buffer, across the end of the ring. */
Test(drv_packed, in_order_used_position)
{
    struct rig *r = rig_new(8, false, true);
    struct drv_seg b1[1] = { { 0x1000, 100, true } };
    struct drv_seg b2[2] = { { 0x2000, 150, true }, { 0x2100, 50, true } };
    struct drv_seg b3[1] = { { 0x3000, 300, true } };
    uint16_t i1, i2, i3;
    struct drv_used u;

    cr_assert_eq(dpq_add(r->q, b1, 1, &i1), DRV_OK);
    cr_assert_eq(dpq_add(r->q, b2, 2, &i2), DRV_OK);
    cr_assert_eq(dpq_add(r->q, b3, 1, &i3), DRV_OK);
    dpq_publish(r->q);

    /* One used descriptor, in the first slot of the batch, with the last buffer's id. */
    dev_use(r, 0, i3, 77, true, true);

    cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(u.id, i1);
    cr_expect_eq(r->q->next_used, 1, "each member moves the position by its slots");
    cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(u.id, i2);
    cr_expect_eq(r->q->next_used, 3);
    cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(u.id, i3);
    cr_expect_eq(r->q->next_used, 4);

    /* The next batch, written as one used descriptor per buffer, crossing the end. */
    uint16_t ids[3];
    for (unsigned i = 0; i < 3; i++) {
        struct drv_seg s[2] = { { 0x4000, 8, true }, { 0x4100, 8, true } };
        cr_assert_eq(dpq_add(r->q, s, 2, &ids[i]), DRV_OK); /* slots 4-5, 6-7, 0-1 */
    }
    dpq_publish(r->q);
    dev_use(r, 4, ids[0], 1, true, true);
    dev_use(r, 6, ids[1], 2, true, true);
    dev_use(r, 0, ids[2], 3, true, false);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
        cr_expect_eq(u.id, ids[i]);
    }
    cr_expect_eq(r->q->next_used, 2);
    cr_expect_not(r->q->used_wrap);
    rig_free(r);
}

Test(drv_packed, stale_used_descriptor_of_previous_lap_is_not_used)
{
    struct rig *r = rig_new(2, false, false);
    struct drv_used u;
    uint16_t a = add1(r, 0x10, 4, false);
    uint16_t b = add1(r, 0x20, 4, false);
    dpq_publish(r->q);
    dev_use(r, 0, a, 0, false, true);
    dev_use(r, 1, b, 0, false, true);
    cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    /* Slot 0 still holds a used descriptor with wrap 1; the driver now expects 0. */
    cr_expect_not(dpq_has_used(r->q));
    cr_expect_eq(dpq_get_used(r->q, &u), DRV_EMPTY);
    /* Our own available descriptor (AVAIL != USED) is not used either. */
    add1(r, 0x30, 4, false);
    dpq_publish(r->q);
    cr_expect_eq(rd(r, 0).flags, VIRTQ_DESC_F_USED_MASK);
    cr_expect_eq(dpq_get_used(r->q, &u), DRV_EMPTY);
    rig_free(r);
}

/* ---- indirect ---- */

Test(drv_packed, indirect_buffer_takes_one_slot)
{
    struct rig *r = rig_new(4, false, false);
    _Alignas(16) uint8_t table[3 * 16];
    struct drv_seg segs[3] = { { 0x1000, 12, false }, { 0x2000, 100, false }, { 0x3000, 64, true } };
    uint16_t id;
    struct drv_used u;

    memset(table, 0xee, sizeof(table));
    cr_assert_eq(dpq_add_indirect(r->q, table, 0xabc0, segs, 3, &id), DRV_OK);
    dpq_publish(r->q);

    struct desc d = rd(r, 0);
    cr_expect_eq(d.id, id);
    cr_expect_eq(d.flags, VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_INDIRECT_MASK,
                 "no WRITE or NEXT on the indirect descriptor");
    for (unsigned i = 0; i < 3; i++) {
        const uint8_t *t = table + 16 * i;
        cr_expect_eq(vs_le16(t + 12), 0, "table entries carry no id");
        cr_expect_eq(vs_le16(t + 14), segs[i].device_writable ? VIRTQ_DESC_F_WRITE_MASK : 0,
                     "only WRITE inside an indirect table");
    }
    cr_expect_eq(r->q->next_avail, 1);

    dev_use(r, 0, id, 64, true, true);
    cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    cr_expect_eq(r->q->next_used, 1);
    rig_free(r);
}

/* ---- available buffer notifications ---- */

/* A malformed device event suppression structure gets a notification: a spurious one
 * is harmless, a missing one stalls the queue. */
Test(drv_packed, notify_on_a_malformed_device_event)
{
    struct rig *r = rig_new(8, false, false);

    add1(r, 0x1000, 8, false);
    dpq_publish(r->q);
    dev_event(r, 0x3, 0, false);
    cr_expect(dpq_needs_notify(r->q), "reserved flags value: notify rather than stall");

    add1(r, 0x1000, 8, false);
    dpq_publish(r->q);
    dev_event(r, RING_EVENT_FLAGS_DESC, 7, false);
    cr_expect(dpq_needs_notify(r->q), "DESC without EVENT_IDX counts as ENABLE");
    rig_free(r);
}

Test(drv_packed, notify_desc_event_across_the_wrap)
{
    struct rig *r = rig_new(4, true, false);
    struct drv_used u;
    uint16_t ids[3];

    /* Fill slots 0..2, let the device use them, so the next batch crosses the end. */
    for (unsigned i = 0; i < 3; i++)
        ids[i] = add1(r, 0x1000, 8, false);
    dpq_publish(r->q);
    dpq_needs_notify(r->q);
    for (unsigned i = 0; i < 3; i++)
        dev_use(r, (uint16_t)i, ids[i], 0, false, true);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);

    /* Batch: slot 3 (wrap 1), slot 0 (wrap 0), slot 1 (wrap 0). */
    for (unsigned i = 0; i < 3; i++)
        add1(r, 0x1000, 8, false);
    dpq_publish(r->q);
    cr_assert_eq(r->q->next_avail, 2);
    cr_assert_not(r->q->avail_wrap);

    dev_event(r, RING_EVENT_FLAGS_DESC, 3, true);   /* last slot of the previous lap */
    r->q->unnotified = 3;
    cr_expect(dpq_needs_notify(r->q));
    dev_event(r, RING_EVENT_FLAGS_DESC, 1, false);  /* second slot of this lap */
    r->q->unnotified = 3;
    cr_expect(dpq_needs_notify(r->q));
    dev_event(r, RING_EVENT_FLAGS_DESC, 2, false);  /* not made available yet */
    r->q->unnotified = 3;
    cr_expect_not(dpq_needs_notify(r->q));
    dev_event(r, RING_EVENT_FLAGS_DESC, 2, true);   /* previous lap, before the batch */
    r->q->unnotified = 3;
    cr_expect_not(dpq_needs_notify(r->q));
    dev_event(r, RING_EVENT_FLAGS_DESC, 9, false);  /* outside the ring: notify */
    r->q->unnotified = 3;
    cr_expect(dpq_needs_notify(r->q));
    rig_free(r);
}

Test(drv_packed, event_hit_table)
{
    /* size 9: new position (2, wrap 0) after 4 descriptors: (7,1) (8,1) (0,0) (1,0). */
    cr_expect_not(dpq_event_hit(9, 6 | 0x8000, 2, false, 4));
    cr_expect(dpq_event_hit(9, 7 | 0x8000, 2, false, 4));
    cr_expect(dpq_event_hit(9, 8 | 0x8000, 2, false, 4));
    cr_expect(dpq_event_hit(9, 0, 2, false, 4));
    cr_expect(dpq_event_hit(9, 1, 2, false, 4));
    cr_expect_not(dpq_event_hit(9, 2, 2, false, 4));
    cr_expect_not(dpq_event_hit(9, 8, 2, false, 4), "next lap's slot 8");
    cr_expect_not(dpq_event_hit(9, 1, 2, false, 0), "nothing new");
    cr_expect(dpq_event_hit(9, 5, 2, false, 9), "a whole ring since the last decision");
    cr_expect(dpq_event_hit(9, 0x7fff, 2, false, 1), "offset outside the ring");
    /* No wrap crossing: (3,1) after 3 descriptors (0,1) (1,1) (2,1). */
    cr_expect(dpq_event_hit(9, 0 | 0x8000, 3, true, 3));
    cr_expect(dpq_event_hit(9, 2 | 0x8000, 3, true, 3));
    cr_expect_not(dpq_event_hit(9, 3 | 0x8000, 3, true, 3));
    cr_expect_not(dpq_event_hit(9, 8, 3, true, 3), "previous lap");
}

Test(drv_packed, notification_data_names_the_next_unavailable_descriptor)
{
    struct rig *r = rig_new(4, false, false);
    struct drv_used u;
    uint16_t ids[3];

    cr_expect_eq(dpq_notify_data(r->q, 1), 1u | (0u << 16) | (1u << 31));
    for (unsigned i = 0; i < 3; i++)
        ids[i] = add1(r, 0x1000, 8, false);
    dpq_publish(r->q);
    cr_expect_eq(dpq_notify_data(r->q, 1), 1u | (3u << 16) | (1u << 31));
    for (unsigned i = 0; i < 3; i++)
        dev_use(r, (uint16_t)i, ids[i], 0, false, true);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    add1(r, 0x1000, 8, false);  /* slot 3, wrap 1 -> next is (0, wrap 0) */
    dpq_publish(r->q);
    cr_expect_eq(dpq_notify_data(r->q, 0), 0u | (0u << 16));
    add1(r, 0x1000, 8, false);  /* written, not published: still (0, wrap 0) */
    cr_expect_eq(dpq_notify_data(r->q, 0), 0u | (0u << 16));
    dpq_publish(r->q);
    cr_expect_eq(dpq_notify_data(r->q, 0), 0u | (1u << 16));
    rig_free(r);
}

/* ---- used buffer notifications: the driver event suppression structure ---- */

Test(drv_packed, driver_events_without_event_idx)
{
    struct rig *r = rig_new(8, false, false);
    dpq_set_driver_events(r->q, DRV_EVENTS_DISABLE);
    cr_expect_eq(vs_le16(r->drv_ev + 2), RING_EVENT_FLAGS_DISABLE);
    dpq_set_driver_events(r->q, DRV_EVENTS_ENABLE);
    cr_expect_eq(vs_le16(r->drv_ev + 2), RING_EVENT_FLAGS_ENABLE);
    rig_free(r);
}

Test(drv_packed, driver_events_with_event_idx_name_the_next_used_slot)
{
    struct rig *r = rig_new(4, true, false);
    struct drv_used u;

    dpq_set_driver_events(r->q, DRV_EVENTS_ENABLE);
    cr_expect_eq(vs_le16(r->drv_ev + 2), RING_EVENT_FLAGS_DESC);
    cr_expect_eq(vs_le16(r->drv_ev), 0x8000, "slot 0, wrap 1");

    for (unsigned i = 0; i < 4; i++) {
        uint16_t id = add1(r, 0x1000, 8, false);
        dpq_publish(r->q);
        dev_use(r, (uint16_t)i, id, 0, false, true);
        cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    }
    dpq_set_driver_events(r->q, DRV_EVENTS_ENABLE);
    cr_expect_eq(vs_le16(r->drv_ev), 0x0000, "slot 0, wrap 0 after one lap");
    dpq_set_driver_events(r->q, DRV_EVENTS_DISABLE);
    cr_expect_eq(vs_le16(r->drv_ev + 2), RING_EVENT_FLAGS_DISABLE);
    rig_free(r);
}

Test(drv_packed, driver_events_later_slot_wraps_and_clamps)
{
    struct rig *r = rig_new(8, true, false);
    struct drv_used u;

    for (unsigned i = 0; i < 6; i++) { /* next used: slot 6, wrap 1 */
        uint16_t id = add1(r, 0x1000, 8, false);
        dpq_publish(r->q);
        dev_use(r, (uint16_t)i, id, 0, false, true);
        cr_assert_eq(dpq_get_used(r->q, &u), DRV_OK);
    }
    dpq_enable_driver_events_after(r->q, 1);
    cr_expect_eq(vs_le16(r->drv_ev + 2), RING_EVENT_FLAGS_DESC);
    cr_expect_eq(vs_le16(r->drv_ev), 0x8000 | 7, "slot 7, same lap");
    dpq_enable_driver_events_after(r->q, 3);
    cr_expect_eq(vs_le16(r->drv_ev), 1, "slot 1 of the next lap: wrap 0");
    dpq_enable_driver_events_after(r->q, 100);
    cr_expect_eq(vs_le16(r->drv_ev), 5, "clamped to size - 1 ahead");
    rig_free(r);

    r = rig_new(8, false, false);
    dpq_set_driver_events(r->q, DRV_EVENTS_DISABLE);
    dpq_enable_driver_events_after(r->q, 3);
    cr_expect_eq(vs_le16(r->drv_ev + 2), RING_EVENT_FLAGS_ENABLE, "no EVENT_IDX: plain ENABLE");
    rig_free(r);
}

/* A full lap of the largest ring: both wrap counters flip. */
Test(drv_packed, largest_ring_flips_the_wrap_counters)
{
    struct dpq *q = calloc(1, sizeof(*q));
    uint8_t *ring = calloc(PVIRTQ_SIZE_MAX, 16);
    uint8_t ev[8] = { 0 };
    struct drv_used u;

    cr_assert_not_null(q);
    cr_assert_not_null(ring);
    dpq_init(q, ring, ev, ev + 4, PVIRTQ_SIZE_MAX, true, false);
    for (uint32_t i = 0; i < PVIRTQ_SIZE_MAX; i++) {
        struct drv_seg s = { 0x1000, 8, true };
        cr_assert_eq(dpq_add(q, &s, 1, NULL), DRV_OK);
    }
    dpq_publish(q);
    cr_expect_eq(q->next_avail, 0);
    cr_expect_not(q->avail_wrap);
    cr_expect_eq(dpq_notify_data(q, 0), 0u, "offset 0, wrap 0");
    /* The device uses the last slot only after all others: one used descriptor per
     * buffer, all in place. */
    for (uint32_t i = 0; i < PVIRTQ_SIZE_MAX; i++) {
        uint8_t *d = ring + 16u * i;
        vs_put_le16(d + 14, VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK | VIRTQ_DESC_F_WRITE_MASK);
    }
    for (uint32_t i = 0; i < PVIRTQ_SIZE_MAX; i++)
        cr_assert_eq(dpq_get_used(q, &u), DRV_OK);
    cr_expect_eq(q->next_used, 0);
    cr_expect_not(q->used_wrap);
    free(ring);
    free(q);
}
