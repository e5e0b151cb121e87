/* test_drv_ring.c -- the driver-side ring contract (workloads/drv_ring.h), run over both
 * formats.
 *
 * Every test here is written once against struct drv_ring_ops and instantiated for the
 * packed ring (suite ring_packed) and the split ring (suite ring_split) by RING_TEST. The
 * tests play the device through a small model of it that knows both wire formats
 * ("Packed Virtqueues", "Split Virtqueues"): it takes available buffers in ring order
 * and reads their elements (following chains and indirect tables), writes used elements
 * and publishes them (packed: the used descriptor's flags; split: used->idx), and sets
 * the device's available buffer notification suppression. What only one format has
 * (wrap counters, the available ring, the 16-bit indices, the exact descriptor flags)
 * is tested in test_drv_packed.c and test_drv_split.c.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "drv_packed.h"
#include "drv_split.h"

#define SEGS_MAX     8u
#define TABLE_ADDR   0xabc0ull /* guest address of the rig's one indirect table */
#define PENDING_MAX  64u

struct rig {
    const struct drv_ring_ops *ops;
    bool packed;
    void *q;
    uint16_t size;
    uint8_t *area[DRV_RING_AREAS];
    _Alignas(16) uint8_t table[SEGS_MAX * 16u];

    /* The device. Packed: ring slot and wrap counter where it takes the next available
     * buffer and where it writes the next used descriptor. Split: the free-running
     * available index it takes next and the used index it writes next (used_pos) and
     * last published (used_idx). */
    uint16_t avail_pos, used_pos, used_idx;
    bool avail_wrap, used_wrap;
    uint16_t *id_descs; /* per id: ring descriptors of the buffer, as the device took it */
    /* Packed: used descriptors written but not yet published (their flags). */
    uint16_t pending_slot[PENDING_MAX], pending_flags[PENDING_MAX];
    unsigned npending;
};

/* A buffer as the device sees it. */
struct popped {
    uint16_t id;
    uint16_t descs;      /* ring descriptors it takes */
    bool indirect;
    uint64_t table_addr; /* indirect: the ring descriptor's address and length */
    uint32_t table_len;
    uint16_t nsegs;
    struct drv_seg segs[SEGS_MAX];
};

static struct rig *rig_new(const struct drv_ring_ops *ops, uint16_t size, bool event_idx,
                           bool in_order)
{
    struct rig *r = calloc(1, sizeof *r);
    uint64_t bytes[DRV_RING_AREAS];

    cr_assert_not_null(r);
    r->ops = ops;
    r->packed = ops == &dpq_ring_ops;
    r->size = size;
    r->q = calloc(1, ops->state_bytes);
    r->id_descs = calloc(size, sizeof r->id_descs[0]);
    cr_assert_not_null(r->q);
    cr_assert_not_null(r->id_descs);
    ops->area_bytes(size, bytes);
    for (unsigned i = 0; i < DRV_RING_AREAS; i++) {
        r->area[i] = aligned_alloc(64, (bytes[i] + 63u) & ~63ull);
        cr_assert_not_null(r->area[i]);
        memset(r->area[i], 0, bytes[i]);
    }
    ops->init(r->q, r->area, size, event_idx, in_order);
    r->avail_wrap = r->used_wrap = true;
    return r;
}

static void rig_free(struct rig *r)
{
    for (unsigned i = 0; i < DRV_RING_AREAS; i++)
        free(r->area[i]);
    free(r->id_descs);
    free(r->q);
    free(r);
}

static uint8_t *desc_at(const struct rig *r, uint16_t i)
{
    return r->area[0] + 16u * i;
}

static void advance(const struct rig *r, uint16_t *pos, bool *wrap, uint32_t n)
{
    uint32_t p = *pos + n;

    while (p >= r->size) {
        p -= r->size;
        *wrap = !*wrap;
    }
    *pos = (uint16_t)p;
}

/* ---- the device ---- */

static void read_elements(const struct rig *r, const uint8_t *d, uint16_t flags, struct popped *p)
{
    if (flags & VIRTQ_DESC_F_INDIRECT_MASK) {
        p->indirect = true;
        p->table_addr = vs_le64(d);
        p->table_len = vs_le32(d + 8);
        cr_assert_eq(p->table_addr, TABLE_ADDR, "device: indirect table not the rig's");
        cr_assert(p->table_len % 16u == 0 && p->table_len / 16u <= SEGS_MAX);
        for (uint32_t i = 0; i < p->table_len / 16u; i++) {
            const uint8_t *t = r->table + 16u * i;
            uint16_t tf = vs_le16(t + (r->packed ? PVIRTQ_DESC_OFF_FLAGS : SVIRTQ_DESC_OFF_FLAGS));
            p->segs[p->nsegs++] = (struct drv_seg){ vs_le64(t), vs_le32(t + 8),
                                                    (tf & VIRTQ_DESC_F_WRITE_MASK) != 0 };
        }
        return;
    }
    cr_assert_lt(p->nsegs, SEGS_MAX);
    p->segs[p->nsegs++] = (struct drv_seg){ vs_le64(d), vs_le32(d + 8),
                                            (flags & VIRTQ_DESC_F_WRITE_MASK) != 0 };
}

/* Take the next available buffer in ring order, if the driver has published one. */
static bool dev_pop(struct rig *r, struct popped *p)
{
    uint16_t flags;

    memset(p, 0, sizeof *p);
    if (r->packed) {
        do {
            const uint8_t *d = desc_at(r, r->avail_pos);
            bool avail, used;

            flags = vs_le16(d + PVIRTQ_DESC_OFF_FLAGS);
            avail = (flags & VIRTQ_DESC_F_AVAIL_MASK) != 0;
            used = (flags & VIRTQ_DESC_F_USED_MASK) != 0;
            if (avail != r->avail_wrap || used == r->avail_wrap) {
                cr_assert_eq(p->descs, 0, "device: a chain stops in the middle");
                return false;
            }
            read_elements(r, d, flags, p);
            p->id = vs_le16(d + PVIRTQ_DESC_OFF_ID);
            p->descs++;
            advance(r, &r->avail_pos, &r->avail_wrap, 1);
        } while (flags & VIRTQ_DESC_F_NEXT_MASK);
    } else {
        uint16_t i;

        if (r->avail_pos == vs_le16(r->area[1] + SVIRTQ_AVAIL_OFF_IDX))
            return false;
        i = vs_le16(r->area[1] + SVIRTQ_AVAIL_OFF_RING + 2u * (r->avail_pos % r->size));
        r->avail_pos++;
        p->id = i;
        do {
            const uint8_t *d = desc_at(r, i);

            cr_assert_lt(i, r->size);
            flags = vs_le16(d + SVIRTQ_DESC_OFF_FLAGS);
            read_elements(r, d, flags, p);
            p->descs++;
            i = vs_le16(d + SVIRTQ_DESC_OFF_NEXT);
        } while (flags & VIRTQ_DESC_F_NEXT_MASK);
    }
    cr_assert_lt(p->id, r->size);
    r->id_descs[p->id] = p->descs;
    return true;
}

/* Take every buffer published so far; returns how many. */
static unsigned dev_pop_all(struct rig *r)
{
    struct popped p;
    unsigned n = 0;

    while (dev_pop(r, &p))
        n++;
    return n;
}

/* Write a used element for buffer `id` (any 32-bit value: the device is hostile) that
 * stands for `descs` ring descriptors, without publishing it. */
static void dev_put_raw(struct rig *r, uint32_t id, uint32_t len, bool written, uint32_t descs)
{
    if (r->packed) {
        uint8_t *d = desc_at(r, r->used_pos);

        cr_assert_lt(r->npending, PENDING_MAX);
        vs_put_le32(d + PVIRTQ_DESC_OFF_LEN, len);
        vs_put_le16(d + PVIRTQ_DESC_OFF_ID, (uint16_t)id);
        r->pending_slot[r->npending] = r->used_pos;
        r->pending_flags[r->npending++] =
            (uint16_t)((r->used_wrap ? VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK : 0u) |
                       (written ? VIRTQ_DESC_F_WRITE_MASK : 0u));
        advance(r, &r->used_pos, &r->used_wrap, descs);
    } else {
        uint8_t *e = r->area[2] + SVIRTQ_USED_OFF_RING + 8u * (r->used_pos % r->size);

        vs_put_le32(e + SVIRTQ_USED_ELEM_OFF_ID, id);
        vs_put_le32(e + SVIRTQ_USED_ELEM_OFF_LEN, len);
        r->used_pos++;
    }
}

/* Publish what was written (packed: each used descriptor's flags; split: used->idx,
 * moved by `buffers`, the used entries' count unless IN_ORDER batches stand for more). */
static void dev_publish(struct rig *r, uint16_t buffers)
{
    if (r->packed) {
        for (unsigned i = 0; i < r->npending; i++)
            vs_put_le16(desc_at(r, r->pending_slot[i]) + PVIRTQ_DESC_OFF_FLAGS, r->pending_flags[i]);
        r->npending = 0;
    } else {
        /* With IN_ORDER a batch's one entry stands for all its buffers: the next entry
         * goes where the index now points. */
        r->used_idx = (uint16_t)(r->used_idx + buffers);
        r->used_pos = r->used_idx;
        vs_put_le16(r->area[2] + SVIRTQ_USED_OFF_IDX, r->used_idx);
    }
}

/* The device used buffer `id` (taken by dev_pop) and published it. */
static void dev_use(struct rig *r, uint16_t id, uint32_t len, bool written)
{
    cr_assert_neq(r->id_descs[id], 0, "device: buffer %u was never taken", id);
    dev_put_raw(r, id, len, written, r->id_descs[id]);
    dev_publish(r, 1);
}

/* IN_ORDER: one used element for the n buffers ids[0..n-1] (taken in that order),
 * naming the last ("In-order use of descriptors"). */
static void dev_use_batch(struct rig *r, const uint16_t *ids, uint16_t n, uint32_t len, bool written)
{
    uint32_t descs = 0;

    for (uint16_t i = 0; i < n; i++)
        descs += r->id_descs[ids[i]];
    dev_put_raw(r, ids[n - 1u], len, written, descs);
    dev_publish(r, n);
}

/* Available buffer notifications without EVENT_IDX: wanted or not (packed: device
 * event suppression flags ENABLE / DISABLE; split: used->flags without / with
 * NO_NOTIFY). */
static void dev_want_notifications(struct rig *r, bool want)
{
    if (r->packed)
        vs_put_le16(r->area[2] + 2, want ? RING_EVENT_FLAGS_ENABLE : RING_EVENT_FLAGS_DISABLE);
    else
        vs_put_le16(r->area[2] + SVIRTQ_USED_OFF_FLAGS, want ? 0 : VIRTQ_USED_F_NO_NOTIFY_MASK);
}

/* With EVENT_IDX: notify once the n-th buffer since the start (single descriptors) is
 * made available (packed: DESC at slot n % size, wrap counter of its lap; split:
 * avail_event = n). */
static void dev_notify_at(struct rig *r, uint32_t n)
{
    if (r->packed) {
        uint16_t off = (uint16_t)(n % r->size);
        bool wrap = (n / r->size) % 2u == 0;

        vs_put_le16(r->area[2], (uint16_t)(off | (wrap ? 0x8000u : 0u)));
        vs_put_le16(r->area[2] + 2, RING_EVENT_FLAGS_DESC);
    } else {
        vs_put_le16(r->area[2] + SVIRTQ_AVAIL_EVENT_OFF(r->size), (uint16_t)n);
    }
}

/* The device found exactly the elements the driver was given. */
static void expect_segs(const struct popped *p, const struct drv_seg *segs, uint16_t n)
{
    cr_assert_eq(p->nsegs, n);
    for (unsigned i = 0; i < n; i++) {
        cr_expect_eq(p->segs[i].addr, segs[i].addr, "element %u", i);
        cr_expect_eq(p->segs[i].len, segs[i].len, "element %u", i);
        cr_expect_eq(p->segs[i].device_writable, segs[i].device_writable, "element %u", i);
    }
}

/* ---- the driver, through the ops table ---- */

static uint16_t add1(struct rig *r, uint64_t addr, uint32_t len, bool writable)
{
    struct drv_seg s = { addr, len, writable };
    uint16_t id = DRV_NO_ID;

    cr_assert_eq(r->ops->add(r->q, &s, 1, &id), DRV_OK);
    return id;
}

static enum drv_status get(struct rig *r, struct drv_used *u)
{
    return r->ops->get_used(r->q, u);
}

/* One test body, two Criterion tests: suites ring_packed and ring_split. */
#define RING_TEST(name)                                                                 \
    static void name(const struct drv_ring_ops *ops);                                   \
    Test(ring_packed, name) { name(&dpq_ring_ops); }                                    \
    Test(ring_split, name) { name(&dsq_ring_ops); }                                     \
    static void name(const struct drv_ring_ops *ops)

/* ---- starting ---- */

RING_TEST(init_state)
{
    struct rig *r = rig_new(ops, 8, false, false);
    struct drv_used u;

    cr_expect_eq(ops->in_flight(r->q), 0);
    cr_expect_eq(ops->descs_in_flight(r->q), 0);
    cr_expect_not(ops->has_used(r->q), "a zeroed ring holds no used buffer");
    cr_expect_eq(get(r, &u), DRV_EMPTY);
    cr_expect(ops->can_add(r->q, 8, NULL), "every descriptor free");
    cr_expect_not(ops->can_add(r->q, 9, NULL));
    cr_expect_not(ops->can_add(r->q, 0, NULL));
    cr_expect_eq(ops->broken(r->q), DRV_HEALTHY);
    cr_expect_eq(ops->unnotified(r->q), 0);
    rig_free(r);
}

/* ---- making buffers available ---- */

RING_TEST(one_buffer_visible_only_after_publish)
{
    struct rig *r = rig_new(ops, 8, false, false);
    uint16_t want = DRV_NO_ID, id;
    struct popped p;

    cr_assert(ops->can_add(r->q, 1, &want));
    id = add1(r, 0x1000, 64, false);
    cr_expect_eq(id, want, "can_add announces the id add uses");
    cr_expect_eq(ops->in_flight(r->q), 1);
    cr_expect_not(dev_pop(r, &p), "nothing available before the publish");

    cr_expect_eq(ops->publish(r->q), 1);
    cr_expect_eq(ops->publish(r->q), 0, "nothing left to publish");
    cr_assert(dev_pop(r, &p));
    cr_expect_eq(p.id, id);
    cr_expect_eq(p.descs, 1);
    cr_expect_eq(p.nsegs, 1);
    cr_expect_eq(p.segs[0].addr, 0x1000);
    cr_expect_eq(p.segs[0].len, 64);
    cr_expect_not(p.segs[0].device_writable);
    cr_expect_not(dev_pop(r, &p));
    rig_free(r);
}

RING_TEST(writable_element_is_device_writable)
{
    struct rig *r = rig_new(ops, 8, false, false);
    struct popped p;

    add1(r, 0x2000, 1526, true);
    ops->publish(r->q);
    cr_assert(dev_pop(r, &p));
    cr_expect(p.segs[0].device_writable);
    cr_expect_eq(p.segs[0].len, 1526);
    rig_free(r);
}

RING_TEST(batch_becomes_visible_at_once)
{
    struct rig *r = rig_new(ops, 8, false, false);
    uint16_t ids[3];
    struct popped p;

    for (unsigned i = 0; i < 3; i++) {
        ids[i] = add1(r, 0x1000 * (i + 1), 10 * (i + 1), false);
        cr_expect_not(dev_pop(r, &p), "batch hidden after %u buffers", i + 1);
    }
    cr_expect_eq(ops->in_flight(r->q), 3, "added buffers count as in flight");
    cr_expect_eq(ops->publish(r->q), 3);
    cr_expect_eq(ops->unnotified(r->q), 3);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert(dev_pop(r, &p));
        cr_expect_eq(p.id, ids[i], "device sees the buffers in order");
        cr_expect_eq(p.segs[0].addr, 0x1000 * (i + 1));
        cr_expect_eq(p.segs[0].len, 10 * (i + 1));
    }
    cr_expect_not(dev_pop(r, &p));
    rig_free(r);
}

RING_TEST(chain_keeps_its_elements_in_order)
{
    struct rig *r = rig_new(ops, 8, false, false);
    struct drv_seg segs[3] = {
        { 0x1000, 12, false }, { 0x2000, 100, false }, { 0x3000, 200, true },
    };
    uint16_t id;
    struct popped p;

    cr_assert_eq(ops->add(r->q, segs, 3, &id), DRV_OK);
    cr_expect_eq(ops->descs_in_flight(r->q), 3);
    cr_expect_eq(ops->in_flight(r->q), 1);
    cr_expect_not(dev_pop(r, &p), "hidden while unpublished");
    ops->publish(r->q);
    cr_assert(dev_pop(r, &p));
    cr_expect_eq(p.id, id);
    cr_expect_eq(p.descs, 3);
    cr_expect_not(p.indirect);
    expect_segs(&p, segs, 3);
    /* The next buffer follows. */
    add1(r, 0x4000, 8, false);
    ops->publish(r->q);
    cr_assert(dev_pop(r, &p));
    cr_expect_eq(p.segs[0].addr, 0x4000);
    rig_free(r);
}

/* ---- reaping ---- */

/* Size 4, five laps: the ring fills, the device returns the buffers in reverse (no
 * IN_ORDER), the driver gets every one back. */
RING_TEST(full_ring_then_drain_in_reverse)
{
    struct rig *r = rig_new(ops, 4, false, false);
    struct drv_used u;
    uint16_t ids[4];

    for (unsigned lap = 0; lap < 5; lap++) {
        for (unsigned i = 0; i < 4; i++)
            ids[i] = add1(r, 0x100 * i, 8, true);
        cr_expect_not(ops->can_add(r->q, 1, NULL), "ring full");
        struct drv_seg s = { 0x9000, 8, true };
        cr_expect_eq(ops->add(r->q, &s, 1, NULL), DRV_FULL);
        cr_expect_eq(ops->publish(r->q), 4);
        for (unsigned i = 0; i < 4; i++) {
            struct popped p;
            cr_assert(dev_pop(r, &p));
            cr_assert_eq(p.id, ids[i]);
            cr_assert(p.segs[0].device_writable, "lap %u", lap);
        }
        for (unsigned i = 0; i < 4; i++)
            dev_use(r, ids[3 - i], 5, true);
        for (unsigned i = 0; i < 4; i++) {
            cr_assert_eq(get(r, &u), DRV_OK);
            cr_assert_eq(u.id, ids[3 - i]);
            cr_assert_eq(u.len, 5);
            cr_assert(u.written);
            cr_assert_not(u.skipped);
        }
        cr_assert_eq(get(r, &u), DRV_EMPTY);
        cr_assert_eq(ops->in_flight(r->q), 0);
    }
    rig_free(r);
}

RING_TEST(out_of_order_completion_frees_each_chain)
{
    struct rig *r = rig_new(ops, 8, false, false);
    struct drv_seg a[2] = { { 0x1000, 10, false }, { 0x1100, 10, false } };
    struct drv_seg b[1] = { { 0x2000, 10, false } };
    struct drv_seg c[3] = { { 0x3000, 10, false }, { 0x3100, 10, true }, { 0x3200, 10, true } };
    uint16_t ia, ib, ic;
    struct drv_used u;

    cr_assert_eq(ops->add(r->q, a, 2, &ia), DRV_OK);
    cr_assert_eq(ops->add(r->q, b, 1, &ib), DRV_OK);
    cr_assert_eq(ops->add(r->q, c, 3, &ic), DRV_OK);
    ops->publish(r->q);
    cr_assert_eq(dev_pop_all(r), 3);
    cr_assert_eq(ops->descs_in_flight(r->q), 6);
    cr_expect(ops->can_add(r->q, 2, NULL));
    cr_expect_not(ops->can_add(r->q, 3, NULL));
    cr_expect_eq(ops->add(r->q, c, 3, NULL), DRV_FULL);

    /* The device finishes B, then C, then A. */
    dev_use(r, ib, 0, false);
    dev_use(r, ic, 20, true);
    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(u.id, ib);
    cr_expect_not(u.written);
    cr_expect_eq(u.len, 0);
    cr_expect_eq(ops->descs_in_flight(r->q), 5);
    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(u.id, ic);
    cr_expect(u.written);
    cr_expect_eq(u.len, 20);
    cr_expect_eq(ops->descs_in_flight(r->q), 2);
    cr_expect_eq(get(r, &u), DRV_EMPTY);

    /* Freed room takes a chain of four. */
    struct drv_seg four[4] = { { 1, 1, false }, { 2, 1, false }, { 3, 1, false }, { 4, 1, false } };
    uint16_t id4;
    cr_assert_eq(ops->add(r->q, four, 4, &id4), DRV_OK);
    ops->publish(r->q);
    struct popped p;
    cr_assert(dev_pop(r, &p));
    cr_expect_eq(p.id, id4);
    expect_segs(&p, four, 4);

    dev_use(r, ia, 0, false);
    dev_use(r, id4, 0, false);
    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(u.id, ia);
    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(u.id, id4);
    cr_expect_eq(get(r, &u), DRV_EMPTY);
    cr_expect_eq(ops->descs_in_flight(r->q), 0);
    cr_expect_eq(ops->in_flight(r->q), 0);
    cr_expect(ops->can_add(r->q, 8, NULL), "every descriptor free again");
    rig_free(r);
}

/* A buffer the device may not write: a length in its used element means nothing
 * (packed: reserved without VIRTQ_DESC_F_WRITE, "Element Address and Length"). */
RING_TEST(readable_only_buffer_reports_no_length)
{
    struct rig *r = rig_new(ops, 8, false, false);
    struct drv_used u;
    uint16_t id = add1(r, 0x1000, 64, false);

    ops->publish(r->q);
    dev_pop_all(r);
    dev_use(r, id, 1234, false);
    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(u.id, id);
    cr_expect_not(u.written);
    cr_expect_eq(u.len, 0);
    rig_free(r);
}

/* A used element counts only once the device's publishing store is seen (packed: its
 * flags; split: used->idx). */
RING_TEST(has_used_follows_the_publishing_store)
{
    struct rig *r = rig_new(ops, 8, false, false);
    struct drv_used u;
    uint16_t a = add1(r, 0x1000, 64, true);
    uint16_t b = add1(r, 0x2000, 64, true);

    ops->publish(r->q);
    dev_pop_all(r);
    cr_expect_not(ops->has_used(r->q));
    dev_put_raw(r, b, 1, true, r->id_descs[b]);
    cr_expect_not(ops->has_used(r->q), "an element without its publishing store is not used yet");
    cr_expect_eq(get(r, &u), DRV_EMPTY);
    dev_put_raw(r, a, 2, true, r->id_descs[a]);
    dev_publish(r, 2);
    cr_expect(ops->has_used(r->q));
    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(u.id, b);
    cr_expect_eq(u.len, 1);
    cr_expect(ops->has_used(r->q));
    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(u.id, a);
    cr_expect_eq(u.len, 2);
    cr_expect_not(ops->has_used(r->q));
    rig_free(r);
}

/* IN_ORDER: one used element for a batch ("In-order use of descriptors"); the buffers
 * before the one it names count as used completely. */
RING_TEST(in_order_one_used_element_for_a_batch)
{
    struct rig *r = rig_new(ops, 8, false, true);
    struct drv_seg b1[1] = { { 0x1000, 100, true } };
    struct drv_seg b2[2] = { { 0x2000, 150, true }, { 0x2100, 50, true } };
    struct drv_seg b3[1] = { { 0x3000, 300, true } };
    uint16_t ids[3];
    struct drv_used u;

    cr_assert_eq(ops->add(r->q, b1, 1, &ids[0]), DRV_OK);
    cr_assert_eq(ops->add(r->q, b2, 2, &ids[1]), DRV_OK);
    cr_assert_eq(ops->add(r->q, b3, 1, &ids[2]), DRV_OK);
    ops->publish(r->q);
    cr_assert_eq(dev_pop_all(r), 3);
    dev_use_batch(r, ids, 3, 77, true);

    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(u.id, ids[0]);
    cr_expect(u.skipped);
    cr_expect(u.written);
    cr_expect_eq(u.len, 100, "skipped buffers count as completely used");
    cr_expect(ops->has_used(r->q), "rest of the batch is pending");
    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(u.id, ids[1]);
    cr_expect(u.skipped);
    cr_expect_eq(u.len, 200);
    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(u.id, ids[2]);
    cr_expect_not(u.skipped);
    cr_expect_eq(u.len, 77);
    cr_expect_eq(get(r, &u), DRV_EMPTY);
    cr_expect_eq(ops->in_flight(r->q), 0);
    cr_expect_eq(ops->descs_in_flight(r->q), 0);

    /* The next batch, used one element per buffer, crossing the end of the ring. */
    for (unsigned i = 0; i < 3; i++) {
        struct drv_seg s[2] = { { 0x4000, 8, true }, { 0x4100, 8, true } };
        cr_assert_eq(ops->add(r->q, s, 2, &ids[i]), DRV_OK);
    }
    ops->publish(r->q);
    cr_assert_eq(dev_pop_all(r), 3);
    for (unsigned i = 0; i < 3; i++)
        dev_use(r, ids[i], i + 1, true);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(get(r, &u), DRV_OK);
        cr_expect_eq(u.id, ids[i]);
        cr_expect_not(u.skipped);
        cr_expect_eq(u.len, i + 1);
    }
    cr_expect_eq(get(r, &u), DRV_EMPTY);
    rig_free(r);
}

/* ---- hostile device: every lie breaks the queue, for good ---- */

RING_TEST(used_id_out_of_range_breaks_the_queue)
{
    struct rig *r = rig_new(ops, 8, false, false);
    struct drv_used u;

    add1(r, 0x1000, 64, false);
    ops->publish(r->q);
    dev_pop_all(r);
    dev_put_raw(r, 8, 0, false, 1);
    dev_publish(r, 1);
    cr_expect_eq(get(r, &u), DRV_BROKEN);
    cr_expect_eq(ops->broken(r->q), DRV_BROKEN_ID_RANGE);
    /* Sticky. */
    struct drv_seg s = { 0x2000, 8, false };
    cr_expect_eq(ops->add(r->q, &s, 1, NULL), DRV_BROKEN);
    cr_expect_eq(ops->add_indirect(r->q, r->table, TABLE_ADDR, &s, 1, NULL), DRV_BROKEN);
    cr_expect_eq(get(r, &u), DRV_BROKEN);
    cr_expect_not(ops->has_used(r->q));
    cr_expect_not(ops->can_add(r->q, 1, NULL));
    rig_free(r);
}

RING_TEST(used_id_of_a_free_buffer_breaks_the_queue)
{
    struct rig *r = rig_new(ops, 8, false, false);
    struct drv_used u;
    uint16_t id = add1(r, 0x1000, 64, false);

    ops->publish(r->q);
    dev_pop_all(r);
    dev_put_raw(r, (uint16_t)(id + 1u), 0, false, 1); /* never given out */
    dev_publish(r, 1);
    cr_expect_eq(get(r, &u), DRV_BROKEN);
    cr_expect_eq(ops->broken(r->q), DRV_BROKEN_ID_NOT_OWNED);
    rig_free(r);
}

RING_TEST(used_id_of_unpublished_buffer_breaks_the_queue)
{
    struct rig *r = rig_new(ops, 8, false, false);
    struct drv_used u;

    add1(r, 0x1000, 64, false);
    ops->publish(r->q);
    dev_pop_all(r);
    uint16_t b = add1(r, 0x2000, 64, false); /* added, not published */
    dev_put_raw(r, b, 0, false, 1);
    dev_publish(r, 1);
    cr_expect_eq(get(r, &u), DRV_BROKEN);
    cr_expect_eq(ops->broken(r->q), DRV_BROKEN_ID_NOT_OWNED);
    rig_free(r);
}

RING_TEST(used_id_returned_twice_breaks_the_queue)
{
    struct rig *r = rig_new(ops, 8, false, false);
    struct drv_used u;
    uint16_t a = add1(r, 0x1000, 64, false);

    add1(r, 0x2000, 64, false);
    ops->publish(r->q);
    dev_pop_all(r);
    dev_use(r, a, 0, false);
    dev_use(r, a, 0, false);
    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(get(r, &u), DRV_BROKEN);
    cr_expect_eq(ops->broken(r->q), DRV_BROKEN_ID_NOT_OWNED);
    rig_free(r);
}

/* ---- the caller's mistakes ---- */

RING_TEST(invalid_requests_write_nothing)
{
    struct rig *r = rig_new(ops, 4, false, false);
    struct drv_seg five[5] = {
        { 1, 1, false }, { 2, 1, false }, { 3, 1, false }, { 4, 1, false }, { 5, 1, false },
    };
    struct drv_seg zero[1] = { { 0x1000, 0, false } };
    struct drv_seg rw_order[2] = { { 0x1000, 8, true }, { 0x2000, 8, false } };
    uint16_t want, id;
    struct popped p;

    cr_expect_eq(ops->add(r->q, five, 0, NULL), DRV_INVALID);
    cr_expect_eq(ops->add(r->q, five, 5, NULL), DRV_INVALID, "longer than the queue size");
    cr_expect_eq(ops->add(r->q, zero, 1, NULL), DRV_INVALID);
    cr_expect_eq(ops->add(r->q, rw_order, 2, NULL), DRV_INVALID, "readable after writable");
    cr_expect_eq(ops->add(r->q, NULL, 1, NULL), DRV_INVALID);
    cr_expect_eq(ops->add_indirect(r->q, r->table, TABLE_ADDR, zero, 1, NULL), DRV_INVALID);
    cr_expect_eq(ops->add_indirect(r->q, NULL, TABLE_ADDR, five, 1, NULL), DRV_INVALID);
    cr_expect_eq(ops->in_flight(r->q), 0);
    cr_expect_eq(ops->descs_in_flight(r->q), 0);
    for (unsigned i = 0; i < 4 * 16; i++)
        cr_assert_eq(r->area[0][i], 0, "descriptor byte %u", i);
    cr_expect_eq(ops->publish(r->q), 0, "nothing to publish");
    /* The first valid buffer is the first the device sees. */
    cr_assert(ops->can_add(r->q, 4, &want));
    cr_assert_eq(ops->add(r->q, five, 4, &id), DRV_OK);
    cr_expect_eq(id, want);
    ops->publish(r->q);
    cr_assert(dev_pop(r, &p));
    cr_expect_eq(p.id, id);
    cr_expect_eq(p.nsegs, 4);
    cr_expect_eq(p.segs[0].addr, 1);
    rig_free(r);
}

RING_TEST(chain_needs_room_for_all_its_descriptors)
{
    struct rig *r = rig_new(ops, 4, false, false);
    struct drv_seg three[3] = { { 1, 1, false }, { 2, 1, false }, { 3, 1, false } };

    add1(r, 0x1000, 8, false);
    add1(r, 0x2000, 8, false);
    cr_expect_not(ops->can_add(r->q, 3, NULL));
    cr_expect(ops->can_add(r->q, 2, NULL));
    cr_expect_eq(ops->add(r->q, three, 3, NULL), DRV_FULL);
    cr_expect_eq(ops->descs_in_flight(r->q), 2, "nothing written");
    cr_expect_eq(ops->publish(r->q), 2);
    cr_expect_eq(dev_pop_all(r), 2);
    rig_free(r);
}

/* ---- indirect ---- */

RING_TEST(indirect_buffer_takes_one_descriptor)
{
    struct rig *r = rig_new(ops, 4, false, false);
    struct drv_seg segs[3] = { { 0x1000, 12, false }, { 0x2000, 100, false }, { 0x3000, 64, true } };
    uint16_t id;
    struct drv_used u;
    struct popped p;

    memset(r->table, 0xee, sizeof r->table);
    cr_assert_eq(ops->add_indirect(r->q, r->table, TABLE_ADDR, segs, 3, &id), DRV_OK);
    cr_expect_eq(ops->descs_in_flight(r->q), 1);
    ops->publish(r->q);
    cr_assert(dev_pop(r, &p));
    cr_expect_eq(p.id, id);
    cr_expect_eq(p.descs, 1);
    cr_expect(p.indirect);
    cr_expect_eq(p.table_addr, TABLE_ADDR);
    cr_expect_eq(p.table_len, 48);
    expect_segs(&p, segs, 3);

    dev_use(r, id, 64, true);
    cr_assert_eq(get(r, &u), DRV_OK);
    cr_expect_eq(u.id, id);
    cr_expect_eq(u.len, 64);
    cr_expect(u.written);
    cr_expect_eq(ops->descs_in_flight(r->q), 0);

    /* Four indirect buffers fill a ring of four. */
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(ops->add_indirect(r->q, r->table, TABLE_ADDR, segs, 3, NULL), DRV_OK);
    cr_expect_eq(ops->add_indirect(r->q, r->table, TABLE_ADDR, segs, 3, NULL), DRV_FULL);
    cr_expect_eq(ops->add_indirect(r->q, NULL, TABLE_ADDR, segs, 3, NULL), DRV_INVALID);
    rig_free(r);
}

/* ---- available buffer notifications ---- */

RING_TEST(notify_as_the_device_asks_without_event_idx)
{
    struct rig *r = rig_new(ops, 8, false, false);

    cr_expect_not(ops->needs_notify(r->q), "nothing published, nothing to say");
    add1(r, 0x1000, 8, false);
    ops->publish(r->q);
    dev_want_notifications(r, true);
    cr_expect(ops->needs_notify(r->q));
    cr_expect_eq(ops->unnotified(r->q), 0, "the count restarts after a decision");
    cr_expect_not(ops->needs_notify(r->q), "decision covers what was published since the last one");

    add1(r, 0x1000, 8, false);
    ops->publish(r->q);
    dev_want_notifications(r, false);
    cr_expect_not(ops->needs_notify(r->q), "suppressed");

    add1(r, 0x1000, 8, false);
    ops->publish(r->q);
    dev_want_notifications(r, true);
    cr_expect(ops->needs_notify(r->q));
    rig_free(r);
}

/* EVENT_IDX: notify iff the buffer the device names was among those published since the
 * last decision. */
RING_TEST(notify_with_event_idx_when_the_named_buffer_is_published)
{
    struct rig *r = rig_new(ops, 8, true, false);
    struct drv_used u;

    /* Buffers 0..2 published; the device wants to hear about buffer 1. */
    for (unsigned i = 0; i < 3; i++)
        add1(r, 0x1000, 8, false);
    ops->publish(r->q);
    dev_notify_at(r, 1);
    cr_expect(ops->needs_notify(r->q));

    /* Buffers 3..4; the device still names 1: already passed. */
    add1(r, 0x1000, 8, false);
    add1(r, 0x1000, 8, false);
    ops->publish(r->q);
    cr_expect_not(ops->needs_notify(r->q));

    /* Buffer 5; the device names 6: not yet. Buffer 6: hit exactly. */
    add1(r, 0x1000, 8, false);
    ops->publish(r->q);
    dev_notify_at(r, 6);
    cr_expect_not(ops->needs_notify(r->q));
    for (unsigned i = 0; i < 6; i++) {
        struct popped p;
        cr_assert(dev_pop(r, &p));
        dev_use(r, p.id, 0, false);
        cr_assert_eq(get(r, &u), DRV_OK);
    }
    add1(r, 0x1000, 8, false);
    ops->publish(r->q);
    cr_expect(ops->needs_notify(r->q));
    rig_free(r);
}

/* ---- used buffer notifications: what the driver asks for ---- */

/* Would the device interrupt after writing the used element just published? (packed:
 * the driver event suppression structure, DESC naming the used descriptor's slot and
 * wrap; split: avail->flags, or with EVENT_IDX used_event passed by used->idx). */
static bool dev_interrupts(const struct rig *r, bool event_idx, uint16_t slot, bool wrap,
                           uint16_t old_idx, uint16_t new_idx)
{
    if (r->packed) {
        uint16_t off_wrap = vs_le16(r->area[1]);
        switch (vs_le16(r->area[1] + 2) & 0x3u) {
        case RING_EVENT_FLAGS_DISABLE:
            return false;
        case RING_EVENT_FLAGS_DESC:
            return (off_wrap & 0x7fffu) == slot && ((off_wrap >> 15) != 0) == wrap;
        default:
            return true;
        }
    }
    if (!event_idx)
        return (vs_le16(r->area[1] + SVIRTQ_AVAIL_OFF_FLAGS) & VIRTQ_AVAIL_F_NO_INTERRUPT_MASK) == 0;
    uint16_t ev = vs_le16(r->area[1] + SVIRTQ_USED_EVENT_OFF(r->size));
    return (uint16_t)(new_idx - ev - 1u) < (uint16_t)(new_idx - old_idx);
}

/* One single-descriptor buffer through the ring; did its use interrupt? */
static bool round_trip(struct rig *r, bool event_idx)
{
    struct drv_used u;
    struct popped p;
    uint16_t slot = r->used_pos, old = r->used_idx;
    bool wrap = r->used_wrap, irq;

    add1(r, 0x1000, 8, true);
    r->ops->publish(r->q);
    cr_assert(dev_pop(r, &p));
    dev_use(r, p.id, 8, true);
    irq = dev_interrupts(r, event_idx, slot, wrap, old, r->used_idx);
    cr_assert_eq(get(r, &u), DRV_OK);
    return irq;
}

RING_TEST(used_notifications_as_the_driver_asks)
{
    for (unsigned ev = 0; ev < 2; ev++) {
        struct rig *r = rig_new(ops, 8, ev == 1, false);

        ops->set_driver_events(r->q, DRV_EVENTS_ENABLE);
        cr_expect(round_trip(r, ev), "event_idx %u: enabled, the next use interrupts", ev);
        ops->set_driver_events(r->q, DRV_EVENTS_DISABLE);
        for (unsigned i = 0; i < 20; i++) /* more than two laps */
            cr_expect_not(round_trip(r, ev), "event_idx %u: disabled, use %u", ev, i);
        ops->enable_driver_events_after(r->q, 3);
        if (ev == 1) {
            for (unsigned i = 0; i < 3; i++)
                cr_expect_not(round_trip(r, ev), "3 ahead: use %u is too early", i);
        }
        cr_expect(round_trip(r, ev), "event_idx %u: the asked-for use interrupts", ev);
        rig_free(r);
    }
}

/* ---- the largest ring ---- */

RING_TEST(largest_ring)
{
    const uint32_t n = 32768u;
    struct rig *r = rig_new(ops, (uint16_t)n, true, false);
    struct drv_used u;

    for (uint32_t i = 0; i < n; i++)
        cr_assert_eq(add1(r, 0x1000 + i, 8, true) < n, true);
    cr_expect_not(ops->can_add(r->q, 1, NULL));
    cr_expect_eq(ops->in_flight(r->q), n);
    cr_expect_eq(ops->publish(r->q), n);
    /* The device takes them all and uses them in reverse. */
    uint16_t *ids = calloc(n, sizeof *ids);
    cr_assert_not_null(ids);
    for (uint32_t i = 0; i < n; i++) {
        struct popped p;
        cr_assert(dev_pop(r, &p));
        ids[i] = p.id;
    }
    cr_expect_not(dev_pop_all(r));
    for (uint32_t i = 0; i < n; i++)
        dev_use(r, ids[n - 1u - i], 8, true);
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(get(r, &u), DRV_OK);
        cr_assert_eq(u.id, ids[n - 1u - i]);
    }
    cr_expect_eq(get(r, &u), DRV_EMPTY);
    cr_expect_eq(ops->in_flight(r->q), 0);
    cr_expect_eq(ops->descs_in_flight(r->q), 0);
    free(ids);
    rig_free(r);
}
