/* test_packed_vq.c -- device side of the packed virtqueue against a fake guest.
 *
 * A small test-side driver (drv_*) places buffers the way "Supplying Buffers to The
 * Device" describes (head flags written last, Driver Ring Wrap Counter flipped after
 * the last slot) and reads used buffers the way "Receiving Used Buffers From The
 * Device" does. Hostile cases write raw descriptors directly.
 *
 * Only what is packed's own lives here: wrap counters and descriptor flags, the id in
 * the last descriptor, the held batch head, event offsets with wrap counters, the
 * hint's (offset, wrap) arithmetic, the descriptor cache, IN_ORDER used descriptors,
 * and hostile rings a well-behaved driver cannot write. What both formats must do is
 * in test_vq_contract.c, run over packed and split.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fake_guest.h"
#include "packed_vq.h"
#include "virtio_wire.h"

/* Guest memory layout. */
#define G_BASE      0x100000ull
#define G_SIZE      0x100000ull
#define DRIVER_AREA (G_BASE + 0x100) /* driver event suppression */
#define DEVICE_AREA (G_BASE + 0x200) /* device event suppression */
#define DESC_RING   (G_BASE + 0x1000)
#define TABLES      (G_BASE + 0x40000) /* indirect tables */
#define BUFS        (G_BASE + 0x80000) /* buffer addresses (never read by pvq) */
#define MAX_SEGS    64u

struct tseg {
    uint64_t addr;
    uint32_t len;
    bool w;
};

static struct {
    struct fake_guest g;
    struct vs_guest_ops ops;
    struct pvq q;
    struct vq_config cfg;
    struct vq_seg segs[MAX_SEGS];
    /* test driver state */
    uint16_t next_avail;
    bool avail_wrap;
    uint16_t next_used;
    bool used_wrap;
    uint16_t sgs[MAX_SEGS]; /* ring slots per buffer id */
} E;

static void env_setup_cfg(const struct vq_config *cfg)
{
    if (E.g.mem)
        fake_guest_free(&E.g);
    memset(&E, 0, sizeof E);
    fake_guest_init(&E.g, G_BASE, G_SIZE);
    E.ops = fake_guest_ops(&E.g);
    E.cfg = *cfg;
    cr_assert_eq(pvq_check_config(&E.cfg, 1024), VS_REASON_NONE);
    pvq_init(&E.q, &E.cfg);
    E.avail_wrap = true;
    E.used_wrap = true;
}

static void env_setup(uint16_t size, bool indirect, bool event_idx)
{
    struct vq_config cfg = {
        .size = size,
        .desc_addr = DESC_RING,
        .driver_addr = DRIVER_AREA,
        .device_addr = DEVICE_AREA,
        .indirect_desc = indirect,
        .event_idx = event_idx,
    };
    env_setup_cfg(&cfg);
}

static void env_teardown(void)
{
    fake_guest_free(&E.g);
}

/* Flags that make a descriptor available for the given Driver Ring Wrap Counter. */
static uint16_t av(bool wrap)
{
    return wrap ? VIRTQ_DESC_F_AVAIL_MASK : VIRTQ_DESC_F_USED_MASK;
}

static uint64_t slot(uint16_t i)
{
    return E.cfg.desc_addr + 16u * i;
}

static void put_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t id, uint16_t flags)
{
    fake_guest_put64(&E.g, slot(i), addr);
    fake_guest_put32(&E.g, slot(i) + 8, len);
    fake_guest_put16(&E.g, slot(i) + 12, id);
    fake_guest_put16(&E.g, slot(i) + 14, flags);
}

static void put_table_entry(uint64_t table, uint32_t i, uint64_t addr, uint32_t len, uint16_t id,
                            uint16_t flags)
{
    uint64_t a = table + 16u * i;
    fake_guest_put64(&E.g, a, addr);
    fake_guest_put32(&E.g, a + 8, len);
    fake_guest_put16(&E.g, a + 12, id);
    fake_guest_put16(&E.g, a + 14, flags);
}

static void drv_advance(void)
{
    if (++E.next_avail >= E.cfg.size) {
        E.next_avail = 0;
        E.avail_wrap = !E.avail_wrap;
    }
}

/* Make a buffer of n elements available as a chain; the id goes in the last
 * descriptor only (others carry 0xffff, which the device must not use); the head's
 * flags are written last. Returns the head slot. */
static uint16_t drv_add_chain(const struct tseg *s, unsigned n, uint16_t id)
{
    uint16_t first = E.next_avail;
    uint16_t head_flags = 0;
    for (unsigned i = 0; i < n; i++) {
        uint16_t f = av(E.avail_wrap);
        if (s[i].w)
            f |= VIRTQ_DESC_F_WRITE_MASK;
        if (i + 1 < n)
            f |= VIRTQ_DESC_F_NEXT_MASK;
        put_desc(E.next_avail, s[i].addr, s[i].len, i + 1 == n ? id : 0xffff, 0);
        if (i == 0)
            head_flags = f;
        else
            fake_guest_put16(&E.g, slot(E.next_avail) + 14, f);
        drv_advance();
    }
    fake_guest_put16(&E.g, slot(first) + 14, head_flags);
    E.sgs[id] = (uint16_t)n;
    return first;
}

static uint16_t drv_add1(uint64_t addr, uint32_t len, bool w, uint16_t id)
{
    struct tseg s = {addr, len, w};
    return drv_add_chain(&s, 1, id);
}

/* Make a buffer available through an indirect table at `table`. */
static uint16_t drv_add_indirect(uint64_t table, const struct tseg *s, unsigned n, uint16_t id,
                                 uint16_t extra_ring_flags)
{
    for (unsigned i = 0; i < n; i++)
        put_table_entry(table, i, s[i].addr, s[i].len, 0xeeee,
                        s[i].w ? VIRTQ_DESC_F_WRITE_MASK : 0);
    uint16_t first = E.next_avail;
    put_desc(first, table, 16u * n, id,
             (uint16_t)(VIRTQ_DESC_F_INDIRECT_MASK | extra_ring_flags | av(E.avail_wrap)));
    drv_advance();
    E.sgs[id] = 1;
    return first;
}

/* Driver side: is a used descriptor waiting at the driver's used position? */
static bool drv_used_ready(void)
{
    uint16_t f = fake_guest_get16(&E.g, slot(E.next_used) + 14);
    bool a = (f & VIRTQ_DESC_F_AVAIL_MASK) != 0, u = (f & VIRTQ_DESC_F_USED_MASK) != 0;
    return a == E.used_wrap && u == E.used_wrap;
}

static void drv_take_used(uint16_t *id, uint32_t *len, uint16_t *flags)
{
    cr_assert(drv_used_ready(), "no used descriptor at driver slot %u", E.next_used);
    *id = fake_guest_get16(&E.g, slot(E.next_used) + 12);
    *len = fake_guest_get32(&E.g, slot(E.next_used) + 8);
    *flags = fake_guest_get16(&E.g, slot(E.next_used) + 14);
    cr_assert_lt(*id, E.cfg.size);
    E.next_used = (uint16_t)(E.next_used + E.sgs[*id]);
    if (E.next_used >= E.cfg.size) {
        E.next_used = (uint16_t)(E.next_used - E.cfg.size);
        E.used_wrap = !E.used_wrap;
    }
}

static enum vq_status pop(struct vq_elem *e)
{
    return pvq_pop(&E.q, &E.ops, e, E.segs, MAX_SEGS);
}

static void set_driver_event(uint16_t flags, uint16_t off, bool wrap)
{
    fake_guest_put16(&E.g, DRIVER_AREA, (uint16_t)(off | (wrap ? 0x8000u : 0)));
    fake_guest_put16(&E.g, DRIVER_AREA + 2, flags);
}

/* The queue is broken for `why`, stays broken, and no entry point touches memory. */
static void expect_broken_silent(enum vs_reason why)
{
    cr_assert_eq(E.q.broken, why, "broken = %s, expected %s", vs_reason_name(E.q.broken),
                 vs_reason_name(why));
    uint64_t before = fake_guest_accesses(&E.g);
    struct vq_elem e = {.id = 0, .slots = 1};
    bool b = true;
    cr_assert_eq(pop(&e), VQ_BROKEN);
    cr_assert_eq(pvq_peek(&E.q, &E.ops, &b), VQ_BROKEN);
    cr_assert_not(b);
    e = (struct vq_elem){.id = 0, .slots = 1};
    cr_assert_eq(pvq_push(&E.q, &E.ops, &e, 0), VQ_BROKEN);
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_BROKEN);
    b = true;
    cr_assert_eq(pvq_should_interrupt(&E.q, &E.ops, &b), VQ_BROKEN);
    cr_assert_not(b);
    cr_assert_eq(pvq_set_notifications(&E.q, &E.ops, true), VQ_BROKEN);
    cr_assert_eq(pvq_set_notifications(&E.q, &E.ops, false), VQ_BROKEN);
    cr_assert_eq(fake_guest_accesses(&E.g), before, "a broken queue accessed guest memory");
    cr_assert_eq(E.q.broken, why, "breakage reason is not sticky");
}

/* Pop must break the queue with `why`. */
static void expect_pop_breaks(enum vs_reason why)
{
    struct vq_elem e;
    uint16_t na = E.q.next_avail;
    cr_assert_eq(pop(&e), VQ_BROKEN, "pop did not break (expected %s)", vs_reason_name(why));
    cr_assert_eq(E.q.next_avail, na, "a rejected buffer must not be consumed");
    expect_broken_silent(why);
}

TestSuite(packed_vq, .fini = env_teardown);

/* ==== configuration ==== */

/* Packed Virtqueues / Driver and Device Ring Wrap Counters */
Test(packed_vq, init_wrap_counters_start_at_one)
{
    env_setup(8, false, false);
    cr_assert(E.q.avail_wrap);
    cr_assert(E.q.used_wrap);
    cr_assert_eq(E.q.next_avail, 0);
    cr_assert_eq(E.q.next_used, 0);
    cr_assert_eq(E.q.broken, VS_REASON_NONE);
    cr_assert_eq(fake_guest_accesses(&E.g), 0, "init must not touch guest memory");
}

/* Packed Virtqueues / Structure Size and Alignment (what is packed's own: any size,
 * event suppression areas 4-aligned; the common rules are in test_vq_contract.c) */
Test(packed_vq, check_config_size_and_alignment)
{
    struct vq_config c = {.size = 9, .desc_addr = 0x1000, .driver_addr = 0x2004,
                           .device_addr = 0x3008};
    cr_assert_eq(pvq_check_config(&c, 256), VS_REASON_NONE, "not a power of two: valid");
    c.driver_addr = 0x2002;
    cr_assert_eq(pvq_check_config(&c, 256), VS_REASON_RING_MISALIGNED);
    c.driver_addr = 0x2000;
    c.device_addr = 0x3002;
    cr_assert_eq(pvq_check_config(&c, 256), VS_REASON_RING_MISALIGNED);
    c.device_addr = 0x3000;
    c.desc_addr = UINT64_MAX - 0x7f; /* aligned, but 9 descriptors run past 2^64 */
    cr_assert_eq(pvq_check_config(&c, 256), VS_REASON_DMA_OUT_OF_RANGE);
}

/* ==== availability ==== */

/* Packed Virtqueues / The Virtqueue Descriptor Format (the ring is zero-initialized) */
Test(packed_vq, zeroed_ring_is_empty)
{
    env_setup(4, false, false);
    struct vq_elem e;
    bool avail = true;
    cr_assert_eq(pvq_peek(&E.q, &E.ops, &avail), VQ_OK);
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_eq(E.q.next_avail, 0);
    cr_assert(E.q.avail_wrap);
    cr_assert_eq(E.g.reads[VS_DMA_DESC_READ], 2); /* peek's flags, pop's descriptor */
}

/* Packed Virtqueues / Driver and Device Ring Wrap Counters */
Test(packed_vq, availability_needs_avail_equal_and_used_different)
{
    env_setup(4, false, false);
    struct vq_elem e;
    bool avail;
    /* AVAIL=1 USED=1: a used descriptor, not available for wrap 1. */
    put_desc(0, BUFS, 64, 0, VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK);
    cr_assert_eq(pop(&e), VQ_EMPTY);
    /* AVAIL=0 USED=1: available for wrap 0, not for wrap 1. */
    put_desc(0, BUFS, 64, 0, VIRTQ_DESC_F_USED_MASK);
    cr_assert_eq(pvq_peek(&E.q, &E.ops, &avail), VQ_OK);
    cr_assert_not(avail);
    cr_assert_eq(pop(&e), VQ_EMPTY);
    /* AVAIL=1 USED=0: available for wrap 1. */
    put_desc(0, BUFS, 64, 0, VIRTQ_DESC_F_AVAIL_MASK);
    cr_assert_eq(pvq_peek(&E.q, &E.ops, &avail), VQ_OK);
    cr_assert(avail);
    cr_assert_eq(pop(&e), VQ_OK);
}

/* ==== chains ==== */

/* Packed Virtqueues / Next Flag: Descriptor Chaining */
Test(packed_vq, chain_id_from_last_descriptor)
{
    env_setup(8, false, false);
    struct vq_elem e;
    struct tseg s[3] = {{BUFS, 12, false}, {BUFS + 0x100, 200, false}, {BUFS + 0x1000, 2048, true}};
    drv_add_chain(s, 3, 6);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, 6, "id must come from the last descriptor (others hold 0xffff)");
    cr_assert_eq(e.slots, 3);
    cr_assert_eq(e.nsegs, 3);
    cr_assert_eq(e.head, 0);
    cr_assert_eq(e.readable_bytes, 212);
    cr_assert_eq(e.writable_bytes, 2048);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(E.segs[i].addr, s[i].addr);
        cr_assert_eq(E.segs[i].len, s[i].len);
        cr_assert_eq(E.segs[i].device_writable, s[i].w);
    }
    cr_assert_eq(E.q.next_avail, 3);
    cr_assert_eq(E.q.stats.descs_read, 3);
}

/* Packed Virtqueues / Next Flag: Descriptor Chaining (a list crossing the ring end) */
Test(packed_vq, chain_crossing_ring_end_flips_wrap)
{
    env_setup(4, false, false);
    struct vq_elem e;
    uint16_t id;
    uint32_t len;
    uint16_t fl;
    drv_add1(BUFS, 10, false, 0);
    drv_add1(BUFS, 10, false, 1);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(pop(&e), VQ_OK);
        cr_assert_eq(pvq_push(&E.q, &E.ops, &e, 0), VQ_OK);
    }
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
    drv_take_used(&id, &len, &fl);
    drv_take_used(&id, &len, &fl);
    /* slots 2, 3, 0: the descriptor in slot 0 carries the flipped wrap counter */
    struct tseg s[3] = {{BUFS, 1, false}, {BUFS, 2, true}, {BUFS, 3, true}};
    cr_assert_eq(drv_add_chain(s, 3, 3), 2);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, 3);
    cr_assert_eq(e.slots, 3);
    cr_assert_eq(e.head, 2);
    cr_assert_eq(E.q.next_avail, 1);
    cr_assert_not(E.q.avail_wrap);
    cr_assert_eq(E.q.next_avail, E.next_avail);
    cr_assert_eq(E.q.avail_wrap, E.avail_wrap);
}

/* Packed Virtqueues / Scatter-Gather Support (list as long as the queue size) */
Test(packed_vq, chain_of_exactly_queue_size_is_accepted)
{
    env_setup(4, false, false);
    struct vq_elem e;
    struct tseg s[4] = {{BUFS, 1, false}, {BUFS, 1, false}, {BUFS, 1, true}, {BUFS, 1, true}};
    drv_add_chain(s, 4, 0);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.slots, 4);
    cr_assert_eq(E.q.next_avail, 0);
    cr_assert_not(E.q.avail_wrap);
    cr_assert_eq(pop(&e), VQ_EMPTY, "a full lap must not make old descriptors available");
}

/* ==== indirect ==== */

/* Packed Virtqueues / Indirect Flag: Scatter-Gather Support */
Test(packed_vq, indirect_table)
{
    env_setup(8, true, false);
    struct vq_elem e;
    struct tseg s[3] = {{BUFS, 12, false}, {BUFS + 0x100, 300, true}, {BUFS + 0x800, 400, true}};
    /* The ring descriptor's WRITE flag is reserved and ignored by the device. */
    drv_add_indirect(TABLES, s, 3, 4, VIRTQ_DESC_F_WRITE_MASK);
    /* NEXT (and AVAIL/USED) inside the table are reserved and ignored: entries
     * follow one another in order. */
    fake_guest_put16(&E.g, TABLES + 14, VIRTQ_DESC_F_NEXT_MASK | VIRTQ_DESC_F_AVAIL_MASK);
    fake_guest_put16(&E.g, TABLES + 16 + 14, VIRTQ_DESC_F_WRITE_MASK | VIRTQ_DESC_F_NEXT_MASK);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert(e.indirect);
    cr_assert_eq(e.id, 4, "id comes from the ring descriptor (table ids are reserved)");
    cr_assert_eq(e.nsegs, 3);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(E.segs[i].device_writable, s[i].w);
    cr_assert_eq(E.q.next_avail, 1);
}

/* Packed Virtqueues / Indirect Flag: Scatter-Gather Support (table fetched in bursts) */
Test(packed_vq, indirect_table_larger_than_one_burst)
{
    env_setup(64, true, false);
    struct vq_elem e;
    struct tseg s[40];
    for (unsigned i = 0; i < 40; i++)
        s[i] = (struct tseg){BUFS + 0x100u * i, 10 + i, i >= 30};
    drv_add_indirect(TABLES, s, 40, 63, 0);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.nsegs, 40);
    cr_assert_eq(E.g.reads[VS_DMA_DESC_READ], 3); /* ring descriptor + 2 bursts */
}

/* ==== used write-back ==== */

/* Packed Virtqueues / Write Flag ; Element Address and Length (used descriptors) */
Test(packed_vq, used_descriptor_fields)
{
    env_setup(8, false, false);
    struct vq_elem e1, e2;
    uint16_t id, fl;
    uint32_t len;
    drv_add1(BUFS, 2048, true, 3);
    drv_add1(BUFS, 64, false, 4);
    cr_assert_eq(pop(&e1), VQ_OK);
    cr_assert_eq(pop(&e2), VQ_OK);
    cr_assert_eq(pvq_push(&E.q, &E.ops, &e1, 1514), VQ_OK);
    cr_assert_eq(pvq_push(&E.q, &E.ops, &e2, 0), VQ_OK);
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
    drv_take_used(&id, &len, &fl);
    cr_assert_eq(id, 3);
    cr_assert_eq(len, 1514);
    cr_assert_eq(fl, VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK | VIRTQ_DESC_F_WRITE_MASK);
    drv_take_used(&id, &len, &fl);
    cr_assert_eq(id, 4);
    cr_assert_eq(len, 0);
    cr_assert_eq(fl, VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK,
                 "WRITE must be clear when nothing was written");
    cr_assert_eq(E.q.stats.used_pushed, 2);
    cr_assert_eq(E.q.stats.flushes, 1);
}

/* Packed Virtqueues / Multi-buffer requests ; Receiving Used Buffers From The Device
 * (the first used descriptor's flags are written last): the batch's first descriptor
 * is held back whole and written at flush, len, id and flags in one aligned 8-byte
 * write, after every other descriptor of the batch. */
Test(packed_vq, head_flags_written_last)
{
    env_setup(8, false, false);
    struct vq_elem e[3];
    struct tseg two[2] = {{BUFS, 10, false}, {BUFS, 20, true}};
    drv_add_chain(two, 2, 0); /* slots 0-1 */
    drv_add1(BUFS, 30, true, 1); /* slot 2 */
    drv_add1(BUFS, 40, true, 2); /* slot 3 */
    uint16_t avail_flags_head = fake_guest_get16(&E.g, slot(0) + 14);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pop(&e[i]), VQ_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pvq_push(&E.q, &E.ops, &e[i], 5), VQ_OK);
    cr_assert_eq(E.q.batch_count, 3);

    /* Before the flush the driver sees nothing: the head still reads as available. */
    cr_assert_eq(fake_guest_get16(&E.g, slot(0) + 14), avail_flags_head);
    cr_assert_not(drv_used_ready());
    /* ...the head is untouched (the driver's len is still there), the later
     * descriptors are written whole. */
    cr_assert_eq(fake_guest_get32(&E.g, slot(0) + 8), 10);
    cr_assert_eq(fake_guest_get16(&E.g, slot(2) + 12), 1);
    cr_assert_eq(fake_guest_get16(&E.g, slot(2) + 14),
                 VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK | VIRTQ_DESC_F_WRITE_MASK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 2, "one write per later descriptor");

    uint64_t writes_before = E.g.writes[VS_DMA_USED_WRITE];
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], writes_before + 1);
    const struct fake_guest_access *last = fake_guest_recent(&E.g, 0);
    cr_assert_not_null(last);
    cr_assert(last->write);
    cr_assert_eq(last->kind, VS_DMA_USED_WRITE);
    cr_assert_eq(last->addr, slot(0) + 8);
    cr_assert_eq(last->len, 8);
    cr_assert_eq(fake_guest_get32(&E.g, slot(0) + 8), 5);
    cr_assert_eq(fake_guest_get16(&E.g, slot(0) + 12), 0);

    cr_assert(drv_used_ready());
    uint16_t id, fl;
    uint32_t len;
    for (uint16_t want = 0; want < 3; want++) {
        drv_take_used(&id, &len, &fl);
        cr_assert_eq(id, want);
    }
    cr_assert_eq(E.q.batch_count, 0);
    /* The used slots: 0 (chain of 2), 2, 3: next_used = 4 */
    cr_assert_eq(E.q.next_used, 4);
}

/* Runs `buffers` requests through a ring of `size`, mixing single descriptors and
 * chains of 2 and 3, each popped, pushed, flushed and taken back by the driver. */
static void run_laps(uint16_t size, unsigned buffers, bool batched)
{
    env_setup(size, false, false);
    unsigned lens[3] = {1, 2, 3};
    unsigned done = 0, bufno = 0;
    bool saw_wrap_flip_avail = false, saw_wrap_flip_used = false;
    while (done < buffers) {
        /* driver fills as much as fits (at most size slots outstanding) */
        unsigned outstanding = 0;
        uint16_t ids[16];
        unsigned n = 0;
        while (n < (batched ? 3u : 1u)) {
            unsigned k = lens[bufno % 3];
            if (k > size || outstanding + k > size)
                break;
            struct tseg s[3] = {{BUFS, 100, false}, {BUFS, 200, true}, {BUFS, 300, true}};
            if (k == 1)
                s[0].w = true;
            uint16_t id = (uint16_t)(bufno % size);
            drv_add_chain(s, k, id);
            ids[n++] = id;
            outstanding += k;
            bufno++;
        }
        struct vq_elem e[16];
        for (unsigned i = 0; i < n; i++) {
            bool w0 = E.q.avail_wrap;
            cr_assert_eq(pop(&e[i]), VQ_OK, "pop %u", done + i);
            cr_assert_eq(e[i].id, ids[i]);
            if (w0 != E.q.avail_wrap)
                saw_wrap_flip_avail = true;
        }
        struct vq_elem extra;
        cr_assert_eq(pop(&extra), VQ_EMPTY);
        for (unsigned i = 0; i < n; i++) {
            bool w0 = E.q.used_wrap;
            cr_assert_eq(pvq_push(&E.q, &E.ops, &e[i], e[i].writable_bytes), VQ_OK);
            if (w0 != E.q.used_wrap)
                saw_wrap_flip_used = true;
        }
        cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
        for (unsigned i = 0; i < n; i++) {
            uint16_t id, fl;
            uint32_t len;
            drv_take_used(&id, &len, &fl);
            cr_assert_eq(id, ids[i]);
            cr_assert_eq(len, e[i].writable_bytes);
        }
        cr_assert_not(drv_used_ready());
        cr_assert_eq(E.q.next_avail, E.next_avail);
        cr_assert_eq(E.q.avail_wrap, E.avail_wrap);
        cr_assert_eq(E.q.next_used, E.next_used);
        cr_assert_eq(E.q.used_wrap, E.used_wrap);
        done += n;
    }
    cr_assert(saw_wrap_flip_avail);
    cr_assert(saw_wrap_flip_used);
    /* more than two laps of the ring */
    cr_assert_gt(E.q.stats.descs_read, 2u * size + size);
    cr_assert_eq(E.q.broken, VS_REASON_NONE);
}

/* Packed Virtqueues / Structure Size and Alignment (size 9: not a power of two) */
Test(packed_vq, wrap_size_9_many_laps)
{
    run_laps(9, 30, false);
    run_laps(9, 30, true);
}

/* ==== driver event suppression (used buffer notifications) ==== */

/* Pushes `n` one-slot buffers and flushes them. */
static void publish(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct vq_elem e = {.id = 0, .slots = 1};
        cr_assert_eq(pvq_push(&E.q, &E.ops, &e, 0), VQ_OK);
    }
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
}

static bool decide(void)
{
    bool irq = false;
    cr_assert_eq(pvq_should_interrupt(&E.q, &E.ops, &irq), VQ_OK);
    return irq;
}

/* The used side crosses the ring end: size 4, signalled at (3, wrap 1), then slots 3
 * (wrap 1) and 0 (wrap 0) are published. Returns the decision for the event. */
static bool decide_across_end(uint16_t off, bool wrap)
{
    env_setup(4, false, true);
    set_driver_event(RING_EVENT_FLAGS_DISABLE, 0, false);
    publish(3);
    cr_assert_not(decide());
    cr_assert_eq(E.q.signalled_used, 3);
    cr_assert(E.q.signalled_wrap);
    publish(2);
    cr_assert_eq(E.q.next_used, 1);
    cr_assert_not(E.q.used_wrap);
    set_driver_event(RING_EVENT_FLAGS_DESC, off, wrap);
    bool irq = decide();
    cr_assert_eq(E.q.signalled_used, 1);
    cr_assert_not(E.q.signalled_wrap);
    return irq;
}

/* Packed Virtqueues / Driver and Device Event Suppression (event offset and wrap
 * counter, with the published range crossing the end of the ring) */
Test(packed_vq, driver_event_desc_wrap)
{
    cr_assert(decide_across_end(3, true));
    cr_assert(decide_across_end(0, false));
    cr_assert_not(decide_across_end(0, true), "same offset, other lap: no event");
    cr_assert_not(decide_across_end(3, false), "same offset, other lap: no event");
    cr_assert_not(decide_across_end(1, false), "not reached yet");
    cr_assert_not(decide_across_end(2, true), "passed before the range");
    cr_assert_not(decide_across_end(0x7fff, true), "offset outside the ring never matches");
}

/* Packed Virtqueues / Driver and Device Event Suppression (more than two laps
 * published between decisions: every offset was passed) */
Test(packed_vq, driver_event_desc_after_many_laps)
{
    env_setup(4, false, true);
    set_driver_event(RING_EVENT_FLAGS_DESC, 2, false);
    for (int i = 0; i < 3; i++)
        publish(4);
    cr_assert(decide());
    cr_assert_eq(E.q.unsignalled_slots, 0);
    cr_assert_eq(E.q.signalled_used, E.q.next_used);
    cr_assert_eq(E.q.signalled_wrap, E.q.used_wrap);
}

/* Packed Virtqueues / Driver and Device Event Suppression (DESC is only valid with
 * VIRTIO_F_EVENT_IDX; without it the model treats DESC and the reserved 0x3 as
 * ENABLE, so a notification is never lost) */
Test(packed_vq, driver_event_desc_without_event_idx)
{
    env_setup(8, false, false);
    set_driver_event(RING_EVENT_FLAGS_DESC, 7, false);
    publish(1);
    cr_assert(decide());
    set_driver_event(0x3, 7, false);
    publish(1);
    cr_assert(decide());
}

/* Packed Virtqueues / Driver and Device Event Suppression (a chain covers several
 * slots: an event inside it fires) */
Test(packed_vq, driver_event_desc_inside_a_chain)
{
    env_setup(8, false, true);
    struct tseg s[3] = {{BUFS, 1, false}, {BUFS, 1, true}, {BUFS, 1, true}};
    drv_add_chain(s, 3, 1);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(pvq_push(&E.q, &E.ops, &e, 1), VQ_OK);
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
    set_driver_event(RING_EVENT_FLAGS_DESC, 2, true);
    cr_assert(decide());
}

/* ==== device event suppression (available buffer notifications) ==== */

/* Packed Virtqueues / Driver and Device Event Suppression ; Event Suppression
 * Structure Format (the device writes the Device Area) */
Test(packed_vq, device_event_writes)
{
    env_setup(4, false, false);
    fake_guest_put16(&E.g, DEVICE_AREA + 2, 0xffff);
    cr_assert_eq(pvq_set_notifications(&E.q, &E.ops, false), VQ_OK);
    cr_assert_eq(fake_guest_get16(&E.g, DEVICE_AREA + 2), RING_EVENT_FLAGS_DISABLE);
    cr_assert_eq(pvq_set_notifications(&E.q, &E.ops, true), VQ_OK);
    cr_assert_eq(fake_guest_get16(&E.g, DEVICE_AREA + 2), RING_EVENT_FLAGS_ENABLE);
    cr_assert_eq(E.g.writes[VS_DMA_EVENT_WRITE], 2);
    cr_assert_eq(E.q.stats.event_writes, 2);
    const struct fake_guest_access *a = fake_guest_recent(&E.g, 0);
    cr_assert_eq(a->addr, DEVICE_AREA);
    cr_assert_eq(a->len, 4);
}

/* Packed Virtqueues / Driver and Device Event Suppression (RING_EVENT_FLAGS_DESC at
 * the device's next read position, wrap counter included) */
Test(packed_vq, device_event_desc_with_event_idx)
{
    env_setup(4, false, true);
    cr_assert_eq(pvq_set_notifications(&E.q, &E.ops, true), VQ_OK);
    cr_assert_eq(fake_guest_get16(&E.g, DEVICE_AREA + 2), RING_EVENT_FLAGS_DESC);
    cr_assert_eq(fake_guest_get16(&E.g, DEVICE_AREA), 0x8000);
    struct vq_elem e;
    for (uint16_t i = 0; i < 3; i++) {
        drv_add1(BUFS, 1, true, i);
        cr_assert_eq(pop(&e), VQ_OK);
    }
    struct tseg s[2] = {{BUFS, 1, true}, {BUFS, 1, true}};
    /* slot 3 and 0 -> next_avail (1, wrap 0) -- needs the used slots back first */
    for (int i = 0; i < 3; i++) {
        struct vq_elem u = {.id = (uint16_t)i, .slots = 1};
        cr_assert_eq(pvq_push(&E.q, &E.ops, &u, 1), VQ_OK);
    }
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
    drv_add_chain(s, 2, 3);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(pvq_set_notifications(&E.q, &E.ops, true), VQ_OK);
    cr_assert_eq(fake_guest_get16(&E.g, DEVICE_AREA), 1, "offset 1, wrap 0");
    cr_assert_eq(fake_guest_get16(&E.g, DEVICE_AREA + 2), RING_EVENT_FLAGS_DESC);
    cr_assert_eq(pvq_set_notifications(&E.q, &E.ops, false), VQ_OK);
    cr_assert_eq(fake_guest_get16(&E.g, DEVICE_AREA + 2), RING_EVENT_FLAGS_DISABLE);
}

/* ==== NOTIFICATION_DATA hint ==== */

/* Packed Virtqueues / The Virtqueue Descriptor Table (next_off / next_wrap) */
Test(packed_vq, hint_count)
{
    env_setup(4, false, false);
    cr_assert_eq(pvq_hint_count(&E.q), 0, "no hint");
    pvq_set_avail_hint(&E.q, 0, true);
    cr_assert_eq(pvq_hint_count(&E.q), 0, "same position, same wrap: nothing");
    pvq_set_avail_hint(&E.q, 0, false);
    cr_assert_eq(pvq_hint_count(&E.q), 4, "same offset, other wrap: full ring");
    pvq_set_avail_hint(&E.q, 3, true);
    cr_assert_eq(pvq_hint_count(&E.q), 3);
    pvq_set_avail_hint(&E.q, 4, true);
    cr_assert_eq(pvq_hint_count(&E.q), 0, "offset outside the ring");
    /* move the device to (3, wrap 1) */
    E.q.next_avail = 3;
    pvq_set_avail_hint(&E.q, 1, false);
    cr_assert_eq(pvq_hint_count(&E.q), 2, "across the ring end");
    pvq_set_avail_hint(&E.q, 3, false);
    cr_assert_eq(pvq_hint_count(&E.q), 4);
    pvq_set_avail_hint(&E.q, 2, true);
    cr_assert_eq(pvq_hint_count(&E.q), 0, "stale hint behind the device");
    cr_assert_eq(fake_guest_accesses(&E.g), 0);
}

/* Packed Virtqueues / Structure Size and Alignment (size 9 hint arithmetic) */
Test(packed_vq, hint_count_size_9)
{
    env_setup(9, false, false);
    E.q.next_avail = 7;
    E.q.avail_wrap = false;
    pvq_set_avail_hint(&E.q, 2, true);
    cr_assert_eq(pvq_hint_count(&E.q), 4);
    pvq_set_avail_hint(&E.q, 8, false);
    cr_assert_eq(pvq_hint_count(&E.q), 1);
    pvq_set_avail_hint(&E.q, 7, true);
    cr_assert_eq(pvq_hint_count(&E.q), 9);
}

/* ==== hostile drivers ==== */

/* Packed Virtqueues / Scatter-Gather Support (driver: list no longer than Queue Size) */
Test(packed_vq, hostile_chain_longer_than_ring)
{
    env_setup(4, false, false);
    for (uint16_t i = 0; i < 4; i++)
        put_desc(i, BUFS, 8, 0, (uint16_t)(VIRTQ_DESC_F_NEXT_MASK | av(true)));
    expect_pop_breaks(VS_REASON_CHAIN_TOO_LONG);
    cr_assert_eq(E.g.reads[VS_DMA_DESC_READ], 4 + 0, "walk bounded by the ring size");
}

/* Packed Virtqueues / Next Flag: Descriptor Chaining (buffer id below queue size) */
Test(packed_vq, hostile_id_out_of_range)
{
    env_setup(4, false, false);
    drv_add1(BUFS, 1, false, 4);
    expect_pop_breaks(VS_REASON_DESC_ID_OUT_OF_RANGE);
}

/* Packed Virtqueues / Next Flag: Descriptor Chaining (id of the last descriptor) */
Test(packed_vq, hostile_id_out_of_range_in_last_of_chain)
{
    env_setup(4, false, false);
    put_desc(0, BUFS, 1, 1, (uint16_t)(VIRTQ_DESC_F_NEXT_MASK | av(true)));
    put_desc(1, BUFS, 1, 900, av(true));
    expect_pop_breaks(VS_REASON_DESC_ID_OUT_OF_RANGE);
}

/* Packed Virtqueues / Next Flag: Descriptor Chaining ("all flags ... must be set
 * correctly in all descriptors in the list") */
Test(packed_vq, hostile_chain_member_not_available)
{
    env_setup(4, false, false);
    put_desc(0, BUFS, 1, 0, (uint16_t)(VIRTQ_DESC_F_NEXT_MASK | av(true)));
    /* slot 1 left zeroed */
    expect_pop_breaks(VS_REASON_CHAIN_DESC_NOT_AVAIL);
}

/* Packed Virtqueues / Next Flag: Descriptor Chaining (across the end, slot 0 must
 * carry the flipped wrap counter) */
Test(packed_vq, hostile_chain_member_with_stale_wrap_across_end)
{
    env_setup(2, false, false);
    drv_add1(BUFS, 1, false, 0);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    /* slot 1 (wrap 1) -> slot 0 still marked for wrap 1 */
    put_desc(1, BUFS, 1, 0, (uint16_t)(VIRTQ_DESC_F_NEXT_MASK | av(true)));
    expect_pop_breaks(VS_REASON_CHAIN_DESC_NOT_AVAIL);
}

/* Packed Virtqueues / Indirect Descriptors (INDIRECT later in a NEXT-linked list) */
Test(packed_vq, hostile_indirect_inside_chain)
{
    env_setup(4, true, false);
    put_desc(0, BUFS, 8, 0, (uint16_t)(VIRTQ_DESC_F_NEXT_MASK | av(true)));
    put_desc(1, TABLES, 16, 0, (uint16_t)(VIRTQ_DESC_F_INDIRECT_MASK | av(true)));
    put_table_entry(TABLES, 0, BUFS, 8, 0, 0);
    expect_pop_breaks(VS_REASON_INDIRECT_WITH_NEXT);
}

/* Packed Virtqueues / Indirect Descriptors (a list no longer than the queue size) */
Test(packed_vq, hostile_indirect_table_too_long)
{
    env_setup(4, true, false);
    struct tseg t[5];
    for (int i = 0; i < 5; i++)
        t[i] = (struct tseg){BUFS, 8, false};
    drv_add_indirect(TABLES, t, 5, 0, 0);
    expect_pop_breaks(VS_REASON_CHAIN_TOO_LONG);
    cr_assert_eq(E.g.reads[VS_DMA_DESC_READ], 1, "the table is not fetched");
}

/* Packed Virtqueues / Indirect Flag: Scatter-Gather Support (the ring descriptor's
 * buffer id is checked like any other) */
Test(packed_vq, hostile_indirect_id_out_of_range)
{
    env_setup(4, true, false);
    struct tseg t[1] = {{BUFS, 8, true}};
    drv_add_indirect(TABLES, t, 1, 4, 0); /* ring id == size */
    expect_pop_breaks(VS_REASON_DESC_ID_OUT_OF_RANGE);
}

/* Packed Virtqueues / Structure Size and Alignment (ring outside guest memory) */
Test(packed_vq, hostile_ring_outside_memory)
{
    struct vq_config c = {.size = 4, .desc_addr = G_BASE + G_SIZE, .driver_addr = DRIVER_AREA,
                           .device_addr = DEVICE_AREA};
    env_setup_cfg(&c);
    bool avail;
    cr_assert_eq(pvq_peek(&E.q, &E.ops, &avail), VQ_BROKEN);
    expect_broken_silent(VS_REASON_DMA_OUT_OF_RANGE);
}

/* Packed Virtqueues / Driver and Device Event Suppression (areas outside memory) */
Test(packed_vq, hostile_event_areas_outside_memory)
{
    struct vq_config c = {.size = 4, .desc_addr = DESC_RING, .driver_addr = G_BASE - 4,
                           .device_addr = G_BASE + G_SIZE};
    env_setup_cfg(&c);
    publish(1);
    bool irq = true;
    cr_assert_eq(pvq_should_interrupt(&E.q, &E.ops, &irq), VQ_BROKEN);
    cr_assert_not(irq);
    expect_broken_silent(VS_REASON_DMA_OUT_OF_RANGE);

    env_setup_cfg(&c);
    cr_assert_eq(pvq_set_notifications(&E.q, &E.ops, true), VQ_BROKEN);
    expect_broken_silent(VS_REASON_DMA_OUT_OF_RANGE);
}

/* Device Status Field / DEVICENEEDSRESET (bus-master off during used write-back: the
 * batch's first descriptor is held to the flush, a later one is written at push, so
 * the failure comes there; the other steps are in test_vq_contract.c) */
Test(packed_vq, bus_master_off_breaks_push_of_a_later_descriptor)
{
    struct vq_elem e;
    env_setup(4, false, false);
    drv_add1(BUFS, 1, false, 0);
    drv_add1(BUFS, 1, false, 1);
    struct vq_elem e2;
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(pop(&e2), VQ_OK);
    cr_assert_eq(pvq_push(&E.q, &E.ops, &e, 0), VQ_OK);
    E.g.bus_master_off = true;
    cr_assert_eq(pvq_push(&E.q, &E.ops, &e2, 0), VQ_BROKEN);
    expect_broken_silent(VS_REASON_DMA_BUS_MASTER_OFF);
}

/* Packed Virtqueues / Structure Size and Alignment (an unchecked ring address that
 * wraps past 2^64 is refused before any DMA) */
Test(packed_vq, hostile_ring_address_wrapping)
{
    struct vq_config c = {.size = 4, .desc_addr = UINT64_MAX - 15, .driver_addr = DRIVER_AREA,
                           .device_addr = DEVICE_AREA};
    cr_assert_eq(pvq_check_config(&c, 4), VS_REASON_DMA_OUT_OF_RANGE);
    /* Even if the caller skipped the check: */
    env_setup(4, false, false);
    E.q.cfg.desc_addr = UINT64_MAX - 15;
    E.q.next_avail = 1;
    expect_pop_breaks(VS_REASON_DMA_OUT_OF_RANGE);
    cr_assert_eq(fake_guest_accesses(&E.g), 0);
}

/* Packed Virtqueues / The Virtqueue Descriptor Table (hostile driver: garbage in
 * every descriptor must never crash, hang or escape; a deterministic random ring) */
Test(packed_vq, hostile_random_rings_never_escape)
{
    uint32_t seed = 12345;
    unsigned popped = 0, broke = 0;
    for (int round = 0; round < 300; round++) {
        uint16_t size = (uint16_t)(1 + round % 9);
        env_setup(size, round % 2 == 0, round % 3 == 0);
        for (uint16_t i = 0; i < size; i++) {
            seed = seed * 1103515245u + 12345u;
            /* mostly well-marked descriptors with random NEXT/WRITE/INDIRECT bits,
             * sometimes garbage flags */
            uint16_t flags = (seed >> 28) == 0 ? (uint16_t)(seed >> 8)
                                               : (uint16_t)(av(true) | ((seed >> 8) & 0x7u));
            seed = seed * 1103515245u + 12345u;
            uint32_t len = seed % 5 == 0 ? 0 : (seed >> 4) % 64;
            uint64_t addr = (seed & 1) ? TABLES : BUFS;
            put_desc(i, addr, len, (uint16_t)(seed % (size + 2u)), flags);
        }
        for (uint32_t j = 0; j < 64; j++) {
            seed = seed * 1103515245u + 12345u;
            fake_guest_put16(&E.g, TABLES + 2u * j, (uint16_t)(seed >> 16));
        }
        for (int step = 0; step < 3 * size + 3; step++) {
            struct vq_elem e;
            enum vq_status s = pop(&e);
            if (s == VQ_OK) {
                cr_assert_leq(e.nsegs, size);
                cr_assert_leq(e.slots, size);
                cr_assert_lt(e.id, size);
                cr_assert_eq(pvq_push(&E.q, &E.ops, &e, 1), VQ_OK);
                cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
                popped++;
            } else if (s == VQ_BROKEN) {
                cr_assert_neq(E.q.broken, VS_REASON_NONE);
                broke++;
                expect_broken_silent(E.q.broken);
                break;
            }
            cr_assert_lt(E.q.next_avail, size);
            cr_assert_lt(E.q.next_used, size);
        }
        cr_assert(E.g.faults == 0 || E.q.broken != VS_REASON_NONE);
    }
    cr_assert_gt(popped, 20, "the random rings must also yield valid buffers");
    cr_assert_gt(broke, 20, "the random rings must also break queues");
}

/* ==== fetch unit: descriptor batches and the descriptor cache ==== */

static void env_setup_fetch(uint16_t size, bool indirect, uint16_t batch, enum vq_fetch_source src)
{
    struct vq_config cfg = {
        .size = size,
        .desc_addr = DESC_RING,
        .driver_addr = DRIVER_AREA,
        .device_addr = DEVICE_AREA,
        .indirect_desc = indirect,
        .fetch_batch = batch,
        .fetch_source = src,
    };
    env_setup_cfg(&cfg);
}

static uint64_t desc_reads(void) { return E.g.reads[VS_DMA_DESC_READ]; }

/* Pop one available single-descriptor buffer and give it back as used. */
static uint16_t pop_push_one(void)
{
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(pvq_push(&E.q, &E.ops, &e, 0), VQ_OK);
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
    uint16_t id;
    uint32_t len;
    uint16_t flags;
    drv_take_used(&id, &len, &flags);
    return id;
}

/* Default source (one): exactly today's access pattern, one 16-byte read per descriptor
 * whatever the batch. */
Test(packed_vq, fetch_one_reads_one_descriptor_per_read)
{
    env_setup_fetch(8, false, 16, VQ_FETCH_ONE);
    for (uint16_t i = 0; i < 4; i++)
        drv_add1(BUFS + 64u * i, 64, false, i);
    for (uint16_t i = 0; i < 4; i++) {
        cr_assert_eq(pop_push_one(), i);
        const struct fake_guest_access *a = fake_guest_recent(&E.g, 1); /* before the flush */
        cr_assert_eq(a->len, 16u);
        cr_assert_eq(a->addr, slot(i));
    }
    cr_assert_eq(E.q.stats.fetch_reads, 4);
    cr_assert_eq(E.q.stats.fetch_entries, 4);
    cr_assert_eq(E.q.stats.fetch_wasted, 0);
}

/* "Driver Notifications": the hint's next offset/wrap is where the driver's next buffer
 * will go; the device reads exactly the descriptors before it in one read. */
Test(packed_vq, fetch_hint_reads_the_hinted_count_in_one_read)
{
    env_setup_fetch(16, false, 8, VQ_FETCH_HINT);
    for (uint16_t i = 0; i < 5; i++)
        drv_add1(BUFS + 64u * i, 64, false, i);
    pvq_set_avail_hint(&E.q, E.next_avail, E.avail_wrap);
    uint64_t before = desc_reads();
    for (uint16_t i = 0; i < 5; i++)
        cr_assert_eq(pop_push_one(), i);
    cr_assert_eq(desc_reads() - before, 1, "five buffers from one read");
    cr_assert_eq(E.q.stats.fetch_entries, 5);
    cr_assert_eq(E.q.stats.fetch_hint_reads, 1);
    /* the hint is used up: the next look is one descriptor, not wasted */
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_eq(E.q.stats.fetch_entries, 6);
    cr_assert_eq(E.q.stats.fetch_wasted, 0);
}

/* A batch that passes the ring's end is two reads: to the last slot, then from slot 0;
 * the descriptors after the end are checked against the flipped wrap counter
 * ("Driver and Device Ring Wrap Counters"). Ring sizes 4 and 9. */
static void batch_across_end(uint16_t size)
{
    env_setup_fetch(size, false, 64, VQ_FETCH_HINT);
    uint16_t id = 0;
    for (unsigned lap = 0; lap < 5; lap++) {
        unsigned n = size - 1u - lap % 2u;
        for (unsigned i = 0; i < n; i++, id = (uint16_t)((id + 1u) % size))
            drv_add1(BUFS + 64u * id, 64, false, id);
        pvq_set_avail_hint(&E.q, E.next_avail, E.avail_wrap);
        uint64_t before = E.q.stats.fetch_reads;
        uint16_t start = E.q.next_avail;
        for (unsigned i = 0; i < n; i++)
            pop_push_one();
        uint64_t reads = E.q.stats.fetch_reads - before;
        cr_assert_eq(reads, start + n > size ? 2u : 1u, "lap %u: start %u n %u", lap, start, n);
    }
    cr_assert_eq(E.q.stats.fetch_wasted, 0);
}
Test(packed_vq, fetch_batch_across_ring_end_size_9) { batch_across_end(9); }

/* Stale and impossible hints: an offset outside the ring, a hint behind the device, and
 * a hint claiming more than the driver made available. None makes the device use a
 * descriptor that is not available for its wrap counter ("The Virtqueue Descriptor
 * Table"): the surplus is read, found unavailable, and discarded as waste. */
Test(packed_vq, fetch_hint_hostile_values_never_make_buffers)
{
    env_setup_fetch(8, false, 8, VQ_FETCH_HINT);
    drv_add1(BUFS, 64, false, 0);
    pvq_set_avail_hint(&E.q, 200, true); /* outside the ring: ignored, one read of one */
    cr_assert_eq(pop_push_one(), 0);
    cr_assert_eq(E.q.stats.fetch_entries, 1);
    cr_assert_eq(E.q.stats.fetch_hint_reads, 0);

    drv_add1(BUFS, 64, false, 1);
    pvq_set_avail_hint(&E.q, 7, true); /* claims 6, only 1 is there */
    cr_assert_eq(pop_push_one(), 1);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_EMPTY, "descriptors beyond the real ones are not buffers");
    /* slots 1..6 read; 1 used, 2 looked at, 3..6 wasted */
    cr_assert_eq(E.q.stats.fetch_wasted, 4);
    cr_assert_eq(E.q.stats.fetch_wasted_bytes, 4u * 16u);
    cr_assert_eq(E.q.stats.buffers_popped, 2);

    /* behind the device: counts nothing */
    pvq_set_avail_hint(&E.q, 0, true);
    cr_assert_eq(pvq_hint_count(&E.q), 0);
    cr_assert_eq(E.q.broken, VS_REASON_NONE);
}

/* Read-ahead reads the whole batch; what is not available yet is wasted, and read again
 * (with its new contents) once the driver has made it available. */
Test(packed_vq, fetch_read_ahead_counts_waste_and_rereads)
{
    env_setup_fetch(16, false, 8, VQ_FETCH_READ_AHEAD);
    drv_add1(BUFS, 64, false, 0);
    drv_add1(BUFS + 64, 64, false, 1);
    cr_assert_eq(pop_push_one(), 0);
    cr_assert_eq(pop_push_one(), 1);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_eq(E.q.stats.fetch_reads, 1);
    cr_assert_eq(E.q.stats.fetch_entries, 8);
    cr_assert_eq(E.q.stats.fetch_wasted, 5, "8 read, 2 used, 1 looked at, 5 wasted");
    cr_assert_eq(E.q.stats.fetch_wasted_bytes, 80);
    /* the driver now fills slot 2: the stale copy is not used, the slot is re-read */
    drv_add1(BUFS + 128, 100, false, 2);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, 2);
    cr_assert_eq(e.readable_bytes, 100);
    cr_assert_eq(E.q.stats.fetch_reads, 2);
}

/* Peek answers from the cache when the descriptor there is available, and drops a stale
 * cached copy instead of trusting it. */
Test(packed_vq, fetch_peek_uses_cache_and_drops_stale)
{
    env_setup_fetch(16, false, 4, VQ_FETCH_READ_AHEAD);
    drv_add1(BUFS, 64, false, 0);
    drv_add1(BUFS, 64, false, 1);
    cr_assert_eq(pop_push_one(), 0);
    uint64_t before = fake_guest_accesses(&E.g);
    bool avail = false;
    cr_assert_eq(pvq_peek(&E.q, &E.ops, &avail), VQ_OK);
    cr_assert(avail);
    cr_assert_eq(fake_guest_accesses(&E.g), before, "answered from the cache");
    cr_assert_eq(pop_push_one(), 1);
    /* slot 2 cached as not available; the driver fills it; peek must see it */
    drv_add1(BUFS, 64, false, 2);
    cr_assert_eq(pvq_peek(&E.q, &E.ops, &avail), VQ_OK);
    cr_assert(avail, "a stale unavailable copy must not hide a new buffer");
    cr_assert_eq(pop_push_one(), 2);
}

/* Queue reset (pvq_init again, as the device does on reset or re-enable) drops the
 * cache: nothing read under the old configuration is used under the new one. */
Test(packed_vq, fetch_cache_dropped_on_reset)
{
    env_setup_fetch(8, false, 8, VQ_FETCH_READ_AHEAD);
    for (uint16_t i = 0; i < 4; i++)
        drv_add1(BUFS, 64, false, i);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_gt(E.q.cache_count, 0);
    /* the driver resets the queue, clears the ring and offers one new buffer */
    pvq_init(&E.q, &E.cfg);
    cr_assert_eq(E.q.cache_count, 0);
    for (uint16_t i = 0; i < 8; i++)
        put_desc(i, 0, 0, 0, 0);
    E.next_avail = 0;
    E.avail_wrap = true;
    drv_add1(BUFS + 512, 77, false, 5);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, 5);
    cr_assert_eq(e.readable_bytes, 77);
    cr_assert_eq(pop(&e), VQ_EMPTY, "old cached buffers are gone");
}

/* Hostile input through the cache ends in a broken queue with a named reason: a chain
 * member read ahead as not available, and an id out of range in a batched read. */
Test(packed_vq, fetch_hostile_chain_member_not_available_in_batch)
{
    env_setup_fetch(8, false, 8, VQ_FETCH_READ_AHEAD);
    put_desc(0, BUFS, 10, 0xffff, (uint16_t)(av(true) | VIRTQ_DESC_F_NEXT_MASK));
    put_desc(1, BUFS, 10, 0, 0); /* never made available */
    expect_pop_breaks(VS_REASON_CHAIN_DESC_NOT_AVAIL);
}

Test(packed_vq, fetch_hostile_id_out_of_range_in_batch)
{
    env_setup_fetch(8, false, 8, VQ_FETCH_HINT);
    drv_add1(BUFS, 10, false, 0);
    put_desc(1, BUFS, 10, 9, av(true));
    E.next_avail = 2;
    pvq_set_avail_hint(&E.q, 2, true);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    expect_pop_breaks(VS_REASON_DESC_ID_OUT_OF_RANGE);
}

/* Random rings with every source and batch: never a crash, never an access outside
 * guest memory, and either buffers or a named breakage. */
Test(packed_vq, fetch_hostile_random_rings_never_escape)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (unsigned round = 0; round < 300; round++) {
        uint16_t size = (uint16_t)(1u + round % 13u);
        env_setup_fetch(size, round % 2u == 0, (uint16_t)(1u + round % 9u),
                        (enum vq_fetch_source)(round % 3u));
        for (uint16_t i = 0; i < size; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            put_desc(i, G_BASE + (x % G_SIZE), (uint32_t)(x >> 40) % 300u, (uint16_t)(x >> 20),
                     (uint16_t)(x >> 48));
        }
        pvq_set_avail_hint(&E.q, (uint16_t)(x % 20u), (x >> 5) & 1u);
        struct vq_elem e;
        for (unsigned k = 0; k < 3u * size; k++) {
            enum vq_status s = pop(&e);
            if (s == VQ_BROKEN) {
                cr_assert_neq(E.q.broken, VS_REASON_NONE);
                break;
            }
            if (s == VQ_EMPTY)
                break;
        }
        cr_assert_eq(E.g.faults, 0, "round %u: an access left guest memory", round);
    }
}

/* vhost-user's GET_VRING_BASE / SET_VRING_BASE (vq_ops.position, resume_at) over
 * "Driver and Device Ring Wrap Counters": a ring resumed at offset 6 of a lap whose
 * wrap counters are 0 takes the buffers made available there, returns them there with
 * the Device Ring Wrap Counter 0, crosses the end into the next lap (counters back to
 * 1), and reports where it is, available half (bits 0-15) and used half (bits 16-31).
 * Positions outside the ring, and a used half that is neither absent nor the available
 * half (buffers in flight across the stop), change nothing. */
Test(packed_vq, resume_at_a_position)
{
    env_setup(8, false, false);
    cr_expect_not(pvq_resume_at(&E.q, 8), "offset at the ring size");
    cr_expect_not(pvq_resume_at(&E.q, 0x00088008u), "both halves at the ring size");
    cr_expect_not(pvq_resume_at(&E.q, 0x10000), "used half at offset 1, available at 0");
    cr_expect_not(pvq_resume_at(&E.q, 0x00040006u), "used half behind: buffers in flight");
    cr_expect_eq(pvq_position(&E.q), 0x80008000u, "offset 0, wrap 1, as initialised");
    cr_assert(pvq_resume_at(&E.q, 0x80008000u), "QEMU's first SET_VRING_BASE, both halves");
    cr_assert(pvq_resume_at(&E.q, 0x8000u), "DPDK virtio-user's, the available half only");
    cr_expect_eq(pvq_position(&E.q), 0x80008000u);
    cr_assert(pvq_resume_at(&E.q, 6));
    cr_expect_eq(packed_vq_ops.position(&E.q), 0x00060006u, "used half as the available half");
    E.next_avail = E.next_used = 6;
    E.avail_wrap = E.used_wrap = false;
    for (uint16_t id = 1; id <= 3; id++)
        drv_add1(BUFS + 0x100u * id, 100, false, id);
    struct vq_elem e;
    for (uint16_t id = 1; id <= 3; id++) {
        cr_assert_eq(pop(&e), VQ_OK);
        cr_expect_eq(e.id, id);
        cr_assert_eq(pvq_push(&E.q, &E.ops, &e, 0), VQ_OK);
    }
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
    for (uint16_t want = 1; want <= 3; want++) {
        uint16_t id, flags;
        uint32_t len;
        drv_take_used(&id, &len, &flags);
        cr_expect_eq(id, want);
    }
    cr_expect_eq(pvq_position(&E.q), 0x80018001u, "slot 1 of the next lap, both sides");
    cr_expect_eq(E.q.broken, VS_REASON_NONE);
}

/* ==== IN_ORDER used descriptors and read-ahead sizing (issue 12, item 4) ==== */

static void env_setup_in_order(uint16_t size, bool in_order)
{
    env_setup(size, false, false);
    E.cfg.in_order = in_order;
    pvq_init(&E.q, &E.cfg);
}

/* The used descriptor at ring slot s: len, id, flags. */
static void used_at(uint16_t s, uint32_t *len, uint16_t *id, uint16_t *flags)
{
    *len = fake_guest_get32(&E.g, slot(s) + 8);
    *id = fake_guest_get16(&E.g, slot(s) + 12);
    *flags = fake_guest_get16(&E.g, slot(s) + 14);
}

/* Packed Virtqueues / In-order use of descriptors: with IN_ORDER a batch of buffers the
 * device only read is returned by one used descriptor, at the batch's first slot, with
 * the id of its last buffer; the device skips forward by the batch's slots (chains
 * count each of theirs). The one write carries len, id and flags together. */
Test(packed_vq, in_order_one_used_descriptor_per_batch)
{
    env_setup_in_order(16, true);
    struct tseg two[2] = {{BUFS, 10, false}, {BUFS + 64, 20, false}};
    drv_add1(BUFS, 30, false, 3);   /* slot 0 */
    drv_add_chain(two, 2, 7);       /* slots 1-2 */
    drv_add1(BUFS, 40, false, 5);   /* slot 3 */
    struct vq_elem e[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pop(&e[i]), VQ_OK);
    fake_guest_reset_counters(&E.g);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pvq_push(&E.q, &E.ops, &e[i], 0), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 0);
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 1, "one used descriptor for the batch");
    const struct fake_guest_access *w = fake_guest_recent(&E.g, 0);
    cr_assert_eq(w->addr, slot(0) + 8);
    cr_assert_eq(w->len, 8);
    uint32_t len;
    uint16_t id, fl;
    used_at(0, &len, &id, &fl);
    cr_assert_eq(id, 5, "the last buffer's id");
    cr_assert_eq(len, 0);
    cr_assert_eq(fl, VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK);
    /* the skipped slots are left as the driver wrote them */
    used_at(1, &len, &id, &fl);
    cr_assert_eq(fl & (VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK), VIRTQ_DESC_F_AVAIL_MASK);
    cr_assert_eq(E.q.next_used, 4);
    cr_assert_eq(E.q.stats.used_pushed, 3);

    /* without IN_ORDER the same batch has a descriptor per buffer */
    env_setup_in_order(16, false);
    drv_add1(BUFS, 30, false, 3);
    drv_add_chain(two, 2, 7);
    drv_add1(BUFS, 40, false, 5);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pop(&e[i]), VQ_OK);
    fake_guest_reset_counters(&E.g);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pvq_push(&E.q, &E.ops, &e[i], 0), VQ_OK);
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 3);
    cr_assert_eq(fake_guest_recent(&E.g, 0)->addr, slot(0) + 8, "the head last");
    const uint16_t at[3] = {0, 1, 3}, ids[3] = {3, 7, 5};
    for (int i = 0; i < 3; i++) {
        used_at(at[i], &len, &id, &fl);
        cr_assert_eq(id, ids[i]);
        cr_assert_eq(fl, VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK);
    }
}

/* In-order use of descriptors ("The skipped buffers ... are assumed to have been used
 * (read or written) by the device completely"): a buffer the device wrote keeps a used
 * descriptor of its own, since its len must reach the driver; read-only buffers before
 * it share it. [R, R, W] [R, W]: two descriptors, the second run's written before the
 * batch head ("Multi-buffer requests": the first descriptor of the batch last). */
Test(packed_vq, in_order_written_buffers_end_a_run)
{
    env_setup_in_order(16, true);
    const bool w[5] = {false, false, true, false, true};
    struct vq_elem e[5];
    for (uint16_t i = 0; i < 5; i++)
        drv_add1(BUFS + 64u * i, 64, w[i], (uint16_t)(10 + i));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(pop(&e[i]), VQ_OK);
    fake_guest_reset_counters(&E.g);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(pvq_push(&E.q, &E.ops, &e[i], w[i] ? 50u + (unsigned)i : 0u), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 0, "both runs held until they end");
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 2);
    cr_assert_eq(fake_guest_recent(&E.g, 1)->addr, slot(3) + 8);
    cr_assert_eq(fake_guest_recent(&E.g, 0)->addr, slot(0) + 8);
    uint32_t len;
    uint16_t id, fl;
    const uint16_t used_w = VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK | VIRTQ_DESC_F_WRITE_MASK;
    used_at(0, &len, &id, &fl);
    cr_assert_eq(id, 12);
    cr_assert_eq(len, 52);
    cr_assert_eq(fl, used_w);
    used_at(3, &len, &id, &fl);
    cr_assert_eq(id, 14);
    cr_assert_eq(len, 54);
    cr_assert_eq(fl, used_w);

    /* R, then W (joins the head run and ends it), W (a run of its own, held), W (a new
     * run: the one before it has ended and is written at this push). */
    for (uint16_t i = 0; i < 4; i++)
        drv_add1(BUFS, 64, i > 0, i);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pop(&e[i]), VQ_OK);
    fake_guest_reset_counters(&E.g);
    cr_assert_eq(pvq_push(&E.q, &E.ops, &e[0], 0), VQ_OK);
    cr_assert_eq(pvq_push(&E.q, &E.ops, &e[1], 9), VQ_OK);
    cr_assert_eq(pvq_push(&E.q, &E.ops, &e[2], 8), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 0);
    cr_assert_eq(pvq_push(&E.q, &E.ops, &e[3], 7), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 1);
    cr_assert_eq(fake_guest_recent(&E.g, 0)->addr, slot(7) + 8);
    cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 3);
    cr_assert_eq(fake_guest_recent(&E.g, 1)->addr, slot(8) + 8);
    cr_assert_eq(fake_guest_recent(&E.g, 0)->addr, slot(5) + 8, "the head last");
    used_at(5, &len, &id, &fl);
    cr_assert_eq(id, 1);
    cr_assert_eq(len, 9);
    used_at(7, &len, &id, &fl);
    cr_assert_eq(id, 2);
    cr_assert_eq(len, 8);
    used_at(8, &len, &id, &fl);
    cr_assert_eq(id, 3);
    cr_assert_eq(len, 7);
}

/* In-order use of descriptors across the ring's end (ring of 4, many laps): the one
 * used descriptor carries the Device Ring Wrap Counter of the slot it is written at
 * ("Driver and Device Ring Wrap Counters"), even when the batch it stands for ends in
 * the next lap; the device's used position and wrap follow the batch. */
Test(packed_vq, in_order_batches_across_the_ring_end)
{
    env_setup_in_order(4, true);
    uint16_t pos = 0;
    bool wrap = true;
    for (unsigned lap = 0; lap < 40; lap++) {
        const unsigned n = 1u + lap % 4u;
        struct vq_elem e[4];
        for (unsigned i = 0; i < n; i++) {
            drv_add1(BUFS, 64, false, (uint16_t)i);
            cr_assert_eq(pop(&e[i]), VQ_OK);
        }
        fake_guest_reset_counters(&E.g);
        for (unsigned i = 0; i < n; i++)
            cr_assert_eq(pvq_push(&E.q, &E.ops, &e[i], 0), VQ_OK);
        cr_assert_eq(pvq_flush(&E.q, &E.ops), VQ_OK);
        cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 1, "lap %u", lap);
        uint32_t len;
        uint16_t id, fl;
        used_at(pos, &len, &id, &fl);
        cr_assert_eq(id, n - 1u, "lap %u", lap);
        cr_assert_eq(fl, wrap ? VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_USED_MASK : 0, "lap %u", lap);
        pos = (uint16_t)(pos + n);
        if (pos >= 4) {
            pos = (uint16_t)(pos - 4);
            wrap = !wrap;
        }
        cr_assert_eq(E.q.next_used, pos);
        cr_assert_eq(E.q.used_wrap, wrap);
    }
}

/* Read-ahead sized by what the device knows: where it last found the driver's end of
 * the ring, a speculative batch would come back unavailable; it reads one descriptor
 * there (or the count a NOTIFICATION_DATA hint gives), and the whole batch again once
 * it is past that point. */
Test(packed_vq, fetch_read_ahead_reads_one_where_the_ring_ended)
{
    env_setup_fetch(32, false, 8, VQ_FETCH_READ_AHEAD);
    drv_add1(BUFS, 64, false, 0);
    cr_assert_eq(pop_push_one(), 0);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_EMPTY);                 /* the end is at slot 1 */
    cr_assert_eq(E.q.stats.fetch_entries, 8);
    cr_assert_eq(pop(&e), VQ_EMPTY);                 /* looks again: one descriptor */
    cr_assert_eq(E.q.stats.fetch_entries, 9);
    cr_assert_eq(fake_guest_recent(&E.g, 0)->len, 16);
    for (uint16_t i = 1; i < 12; i++)
        drv_add1(BUFS, 64, false, i);
    cr_assert_eq(pop_push_one(), 1);                 /* one read at the old end */
    cr_assert_eq(E.q.stats.fetch_entries, 10);
    cr_assert_eq(pop_push_one(), 2);                 /* then a whole batch */
    cr_assert_eq(E.q.stats.fetch_entries, 18);
    for (uint16_t i = 3; i < 10; i++)
        cr_assert_eq(pop_push_one(), i);
    /* with a hint at the end: its count */
    for (uint16_t i = 10; i < 12; i++)
        cr_assert_eq(pop_push_one(), i);
    cr_assert_eq(pop(&e), VQ_EMPTY);                 /* end at slot 12 */
    const uint64_t before = E.q.stats.fetch_entries;
    for (uint16_t i = 12; i < 17; i++)
        drv_add1(BUFS, 64, false, i);
    pvq_set_avail_hint(&E.q, 17, true);
    cr_assert_eq(pop_push_one(), 12);
    cr_assert_eq(E.q.stats.fetch_entries - before, 5);
    cr_assert_eq(E.q.broken, VS_REASON_NONE);
}
