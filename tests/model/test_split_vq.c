/* test_split_vq.c -- device side of the split virtqueue against a fake guest.
 *
 * A small test-side driver (drv_*) places buffers the way "Supplying Buffers to The
 * Device" describes (descriptors, then the available ring entry, then avail->idx)
 * and reads used buffers the way "Receiving Used Buffers From The Device" does
 * (used->idx, then the elements below it). Hostile cases write raw descriptors and
 * ring fields directly.
 *
 * Only what is split's own lives here: power-of-two sizes and part alignment, the
 * available ring's idx (cached, jumps, NOTIFICATION_DATA in its place), next links in
 * any order, used->idx written last, used_event / avail_event across the 16-bit wrap,
 * the entry and descriptor caches, and hostile rings a well-behaved driver cannot
 * write. What both formats must do is in test_vq_contract.c, run over packed and split.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fake_guest.h"
#include "split_vq.h"
#include "virtio_wire.h"

/* Guest memory layout. */
#define G_BASE     0x100000ull
#define G_SIZE     0x100000ull
#define DESC_TABLE (G_BASE + 0x1000)  /* Descriptor Area (room for 256 entries) */
#define AVAIL_RING (G_BASE + 0x3000)  /* Driver Area */
#define USED_RING  (G_BASE + 0x4000)  /* Device Area */
#define TABLES     (G_BASE + 0x40000) /* indirect tables */
#define BUFS       (G_BASE + 0x80000) /* buffer addresses (never read by svq) */
#define MAX_SEGS   64u

#define F_NEXT  VIRTQ_DESC_F_NEXT_MASK
#define F_WRITE VIRTQ_DESC_F_WRITE_MASK
#define F_IND   VIRTQ_DESC_F_INDIRECT_MASK

struct tseg {
    uint64_t addr;
    uint32_t len;
    bool w;
};

static struct {
    struct fake_guest g;
    struct vs_guest_ops ops;
    struct svq q;
    struct vq_config cfg;
    struct vq_seg segs[MAX_SEGS];
    /* test driver state */
    uint16_t avail_idx;  /* driver's next available index */
    uint16_t last_used;  /* driver's next used element to take */
    uint16_t next_desc;  /* descriptor allocation cursor */
} E;

static void env_setup_cfg(const struct vq_config *cfg)
{
    if (E.g.mem)
        fake_guest_free(&E.g);
    memset(&E, 0, sizeof E);
    fake_guest_init(&E.g, G_BASE, G_SIZE);
    E.ops = fake_guest_ops(&E.g);
    E.cfg = *cfg;
    svq_init(&E.q, &E.cfg);
}

static void env_setup(uint16_t size, bool indirect, bool event_idx)
{
    struct vq_config cfg = {
        .size = size,
        .desc_addr = DESC_TABLE,
        .driver_addr = AVAIL_RING,
        .device_addr = USED_RING,
        .indirect_desc = indirect,
        .event_idx = event_idx,
    };
    cr_assert_eq(svq_check_config(&cfg, 1024), VS_REASON_NONE);
    env_setup_cfg(&cfg);
}

static void env_teardown(void)
{
    fake_guest_free(&E.g);
}

static uint64_t desc_at(uint16_t i)
{
    return E.cfg.desc_addr + 16u * i;
}

static void put_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    fake_guest_put64(&E.g, desc_at(i), addr);
    fake_guest_put32(&E.g, desc_at(i) + 8, len);
    fake_guest_put16(&E.g, desc_at(i) + 12, flags);
    fake_guest_put16(&E.g, desc_at(i) + 14, next);
}

static void put_table_entry(uint64_t table, uint32_t i, uint64_t addr, uint32_t len,
                            uint16_t flags, uint16_t next)
{
    uint64_t a = table + 16u * i;
    fake_guest_put64(&E.g, a, addr);
    fake_guest_put32(&E.g, a + 8, len);
    fake_guest_put16(&E.g, a + 12, flags);
    fake_guest_put16(&E.g, a + 14, next);
}

static uint64_t avail_entry(uint16_t idx)
{
    return AVAIL_RING + 4u + 2u * (idx % E.cfg.size);
}

static uint64_t used_entry(uint16_t idx)
{
    return USED_RING + 4u + 8u * (idx % E.cfg.size);
}

static uint64_t used_event_addr(void)
{
    return AVAIL_RING + 4u + 2u * E.cfg.size;
}

static uint64_t avail_event_addr(void)
{
    return USED_RING + 4u + 8u * E.cfg.size;
}

/* "Updating The Available Ring" and "Updating idx": the entry, then idx. */
static void drv_expose(uint16_t head)
{
    fake_guest_put16(&E.g, avail_entry(E.avail_idx), head);
    E.avail_idx++;
    fake_guest_put16(&E.g, AVAIL_RING + 2, E.avail_idx);
}

static uint16_t drv_alloc_desc(void)
{
    uint16_t d = E.next_desc;
    E.next_desc = (uint16_t)((E.next_desc + 1u) % E.cfg.size);
    return d;
}

/* "Placing Buffers Into The Descriptor Table": n elements chained through `next`,
 * then exposed. Returns the head index. */
static uint16_t drv_add_chain(const struct tseg *s, unsigned n)
{
    uint16_t head = drv_alloc_desc();
    uint16_t cur = head;
    for (unsigned i = 0; i < n; i++) {
        uint16_t flags = s[i].w ? F_WRITE : 0;
        uint16_t next = 0;
        if (i + 1 < n) {
            flags |= F_NEXT;
            next = drv_alloc_desc();
        }
        put_desc(cur, s[i].addr, s[i].len, flags, next);
        cur = next;
    }
    drv_expose(head);
    return head;
}

static uint16_t drv_add1(uint64_t addr, uint32_t len, bool w)
{
    struct tseg s = {addr, len, w};
    return drv_add_chain(&s, 1);
}

/* A buffer through an indirect table at `table` (entries in order, chained by next). */
static uint16_t drv_add_indirect(uint64_t table, const struct tseg *s, unsigned n,
                                 uint16_t extra_ring_flags)
{
    for (unsigned i = 0; i < n; i++)
        put_table_entry(table, i, s[i].addr, s[i].len,
                        (uint16_t)((s[i].w ? F_WRITE : 0) | (i + 1 < n ? F_NEXT : 0)),
                        (uint16_t)(i + 1 < n ? i + 1 : 0));
    uint16_t head = drv_alloc_desc();
    put_desc(head, table, 16u * n, (uint16_t)(F_IND | extra_ring_flags), 0);
    drv_expose(head);
    return head;
}

/* Driver side: used elements the device published and the driver has not taken. */
static uint16_t drv_used_ready(void)
{
    return (uint16_t)(fake_guest_get16(&E.g, USED_RING + 2) - E.last_used);
}

static void drv_take_used(uint32_t *id, uint32_t *len)
{
    cr_assert_gt(drv_used_ready(), 0, "no used element at driver index %u", E.last_used);
    *id = fake_guest_get32(&E.g, used_entry(E.last_used));
    *len = fake_guest_get32(&E.g, used_entry(E.last_used) + 4);
    E.last_used++;
}

static enum vq_status pop(struct vq_elem *e)
{
    return svq_pop(&E.q, &E.ops, e, E.segs, MAX_SEGS);
}

static bool decide(void)
{
    bool irq = false;
    cr_assert_eq(svq_should_interrupt(&E.q, &E.ops, &irq), VQ_OK);
    return irq;
}

/* Makes n one-descriptor buffers available, pops and pushes each, then flushes.
 * n may exceed the ring size: the driver never has more than one outstanding. */
static void publish(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct vq_elem e;
        drv_add1(BUFS, 8, true);
        cr_assert_eq(pop(&e), VQ_OK);
        cr_assert_eq(svq_push(&E.q, &E.ops, &e, 8), VQ_OK);
    }
    cr_assert_eq(svq_flush(&E.q, &E.ops), VQ_OK);
    E.last_used = E.q.published_used_idx; /* the driver keeps up */
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
    cr_assert_eq(svq_peek(&E.q, &E.ops, &b), VQ_BROKEN);
    cr_assert_not(b);
    e = (struct vq_elem){.id = 0, .slots = 1};
    cr_assert_eq(svq_push(&E.q, &E.ops, &e, 0), VQ_BROKEN);
    cr_assert_eq(svq_flush(&E.q, &E.ops), VQ_BROKEN);
    b = true;
    cr_assert_eq(svq_should_interrupt(&E.q, &E.ops, &b), VQ_BROKEN);
    cr_assert_not(b);
    cr_assert_eq(svq_set_notifications(&E.q, &E.ops, true), VQ_BROKEN);
    cr_assert_eq(svq_set_notifications(&E.q, &E.ops, false), VQ_BROKEN);
    /* and through the ring-format table */
    cr_assert_eq(split_vq_ops.pop(&E.q, &E.ops, &e, E.segs, MAX_SEGS), VQ_BROKEN);
    cr_assert_eq(split_vq_ops.flush(&E.q, &E.ops), VQ_BROKEN);
    cr_assert_eq(split_vq_ops.broken(&E.q), why);
    cr_assert_eq(fake_guest_accesses(&E.g), before, "a broken queue accessed guest memory");
    cr_assert_eq(E.q.broken, why, "breakage reason is not sticky");
}

/* Pop must break the queue with `why` and consume nothing. */
static void expect_pop_breaks(enum vs_reason why)
{
    struct vq_elem e;
    uint16_t last = E.q.last_avail_idx;
    uint64_t popped = E.q.stats.buffers_popped;
    cr_assert_eq(pop(&e), VQ_BROKEN, "pop did not break (expected %s)", vs_reason_name(why));
    cr_assert_eq(E.q.last_avail_idx, last, "a rejected buffer must not be consumed");
    cr_assert_eq(E.q.stats.buffers_popped, popped);
    expect_broken_silent(why);
}

/* Number of logged accesses (of the last FAKE_GUEST_LOG_LEN) at addr. */
static unsigned log_count_at(uint64_t addr, bool write)
{
    unsigned n = 0;
    for (uint64_t i = 0;; i++) {
        const struct fake_guest_access *a = fake_guest_recent(&E.g, i);
        if (a == NULL)
            break;
        if (a->addr == addr && a->write == write)
            n++;
    }
    return n;
}

TestSuite(split_vq, .fini = env_teardown);

/* ==== configuration ==== */

/* Split Virtqueues (Queue Size is a power of 2, at most 32768; part alignment
 * table); Virtio Over PCI Bus / Common configuration structure layout (driver MUST
 * NOT write a queue_size that is not a power of 2 without RING_PACKED) */
Test(split_vq, check_config_size_and_alignment)
{
    /* (the rules both formats share are in test_vq_contract.c) */
    struct vq_config c = {.size = 1, .desc_addr = 0x1000, .driver_addr = 0x2002,
                          .device_addr = 0x3004};
    cr_assert_eq(svq_check_config(&c, 256), VS_REASON_NONE);
    c.size = 65535;
    cr_assert_eq(svq_check_config(&c, 65535), VS_REASON_QUEUE_SIZE_INVALID);
    /* not a power of two: valid for packed, refused for split */
    uint16_t bad[] = {3, 9, 12, 255, 384, 1000};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c.size = bad[i];
        cr_assert_eq(svq_check_config(&c, 1024), VS_REASON_QUEUE_SIZE_INVALID, "size %u",
                     bad[i]);
    }
    /* boundary at the device maximum: 128 <= 200 accepted, 256 > 200 refused */
    c.size = 128;
    cr_assert_eq(svq_check_config(&c, 200), VS_REASON_NONE);
    c.size = 256;
    cr_assert_eq(svq_check_config(&c, 200), VS_REASON_QUEUE_SIZE_INVALID);
}

/* Split Virtqueues / Virtqueues (driver normative: each part aligned: descriptor
 * table 16, available ring 2, used ring 4) */
Test(split_vq, check_config_misaligned_areas)
{
    struct vq_config c = {.size = 16, .desc_addr = 0x1010, .driver_addr = 0x2002,
                          .device_addr = 0x3004};
    cr_assert_eq(svq_check_config(&c, 16), VS_REASON_NONE);
    c.desc_addr = 0x1008;
    cr_assert_eq(svq_check_config(&c, 16), VS_REASON_RING_MISALIGNED);
    c.desc_addr = 0x1001;
    cr_assert_eq(svq_check_config(&c, 16), VS_REASON_RING_MISALIGNED);
    c.desc_addr = 0x1000;
    c.driver_addr = 0x2001;
    cr_assert_eq(svq_check_config(&c, 16), VS_REASON_RING_MISALIGNED);
    c.driver_addr = 0x2000;
    c.device_addr = 0x3002;
    cr_assert_eq(svq_check_config(&c, 16), VS_REASON_RING_MISALIGNED);
    c.device_addr = 0x3001;
    cr_assert_eq(svq_check_config(&c, 16), VS_REASON_RING_MISALIGNED);
    c.device_addr = 0x3000;
    cr_assert_eq(svq_check_config(&c, 16), VS_REASON_NONE);
    /* aligned, but a part runs past 2^64 (sizes include the EVENT_IDX fields) */
    c.desc_addr = UINT64_MAX - 0xef; /* 16 * 16 bytes do not fit */
    cr_assert_eq(svq_check_config(&c, 16), VS_REASON_DMA_OUT_OF_RANGE);
    c.desc_addr = 0x1000;
    c.driver_addr = UINT64_MAX - 35; /* 6 + 2 * 16 = 38 bytes do not fit */
    cr_assert_eq(svq_check_config(&c, 16), VS_REASON_DMA_OUT_OF_RANGE);
    c.driver_addr = UINT64_MAX - 37; /* exactly fits */
    cr_assert_eq(svq_check_config(&c, 16), VS_REASON_NONE);
    c.driver_addr = 0x2000;
    c.device_addr = UINT64_MAX - 131; /* 6 + 8 * 16 = 134 bytes do not fit */
    cr_assert_eq(svq_check_config(&c, 16), VS_REASON_DMA_OUT_OF_RANGE);
}

/* Split Virtqueues (Queue Size is always a power of 2) */
Test(split_vq, init_with_impossible_size_is_broken)
{
    uint16_t sizes[] = {0, 6, 32769, 65535};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct svq q;
        struct vq_config c = {.size = sizes[i], .desc_addr = DESC_TABLE};
        svq_init(&q, &c);
        cr_assert_eq(q.broken, VS_REASON_QUEUE_SIZE_INVALID, "size %u", sizes[i]);
        svq_set_avail_hint(&q, 1, false);
        cr_assert_eq(svq_hint_count(&q), 0);
    }
}

/* ==== availability ==== */

/* Split Virtqueues / The Virtqueue Available Ring (idx starts at 0: a zeroed ring
 * is empty) */
Test(split_vq, zeroed_ring_is_empty)
{
    env_setup(4, false, false);
    struct vq_elem e;
    bool avail = true;
    cr_assert_eq(svq_peek(&E.q, &E.ops, &avail), VQ_OK);
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_eq(E.q.last_avail_idx, 0);
    cr_assert_eq(E.q.stats.descs_read, 0, "no descriptor is fetched for an empty ring");
    cr_assert_eq(E.g.reads[VS_DMA_DESC_READ], 2); /* avail->idx by peek and by pop */
    cr_assert_eq(log_count_at(AVAIL_RING + 2, false), 2);
}

/* Split Virtqueues / Supplying Buffers to The Device / Updating idx (entries become
 * visible only when idx moves; the device keeps the value it read while it is ahead) */
Test(split_vq, avail_idx_exposes_entries)
{
    env_setup(8, false, false);
    struct vq_elem e;
    bool avail;
    /* descriptor and ring entry written, idx not yet */
    put_desc(0, BUFS, 64, 0, 0);
    fake_guest_put16(&E.g, avail_entry(0), 0);
    cr_assert_eq(pop(&e), VQ_EMPTY);
    fake_guest_put16(&E.g, AVAIL_RING + 2, 1);
    put_desc(1, BUFS, 64, 0, 0);
    fake_guest_put16(&E.g, avail_entry(1), 1);
    put_desc(2, BUFS, 64, 0, 0);
    fake_guest_put16(&E.g, avail_entry(2), 2);
    fake_guest_put16(&E.g, AVAIL_RING + 2, 3);
    fake_guest_reset_counters(&E.g);
    cr_assert_eq(svq_peek(&E.q, &E.ops, &avail), VQ_OK);
    cr_assert(avail);
    cr_assert_eq(log_count_at(AVAIL_RING + 2, false), 1);
    for (uint16_t i = 0; i < 3; i++) {
        cr_assert_eq(pop(&e), VQ_OK);
        cr_assert_eq(e.id, i);
    }
    cr_assert_eq(log_count_at(AVAIL_RING + 2, false), 1, "idx is re-read only when caught up");
    cr_assert_eq(svq_peek(&E.q, &E.ops, &avail), VQ_OK);
    cr_assert_not(avail);
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_eq(log_count_at(AVAIL_RING + 2, false), 3);
}

/* Split Virtqueues / The Virtqueue Available Ring (the id is the head index the ring
 * entry names, wherever the descriptor is) */
Test(split_vq, single_descriptor_buffers)
{
    env_setup(8, false, false);
    struct vq_elem e;
    E.next_desc = 5;
    drv_add1(BUFS, 100, false);       /* desc 5 */
    drv_add1(BUFS + 0x1000, 1500, true); /* desc 6 */
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, 5, "id is the head index from the available ring");
    cr_assert_eq(e.head, 5);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, 6);
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_eq(E.q.last_avail_idx, 2);
}

/* ==== chains ==== */

/* Split Virtqueues / The Virtqueue Descriptor Table (chained via next, in any order) */
Test(split_vq, chain_follows_next)
{
    env_setup(8, false, false);
    struct vq_elem e;
    /* head 6 -> 2 -> 7 -> 0 */
    put_desc(6, BUFS, 12, F_NEXT, 2);
    put_desc(2, BUFS + 0x100, 200, F_NEXT, 7);
    put_desc(7, BUFS + 0x1000, 2048, F_NEXT | F_WRITE, 0);
    put_desc(0, BUFS + 0x2000, 4, F_WRITE, 5); /* next ignored without NEXT */
    drv_expose(6);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, 6);
    cr_assert_eq(e.head, 6);
    cr_assert_eq(e.slots, 1);
    cr_assert_eq(e.nsegs, 4);
    cr_assert_eq(e.readable_bytes, 212);
    cr_assert_eq(e.writable_bytes, 2052);
    uint64_t addrs[4] = {BUFS, BUFS + 0x100, BUFS + 0x1000, BUFS + 0x2000};
    bool w[4] = {false, false, true, true};
    for (unsigned i = 0; i < 4; i++) {
        cr_assert_eq(E.segs[i].addr, addrs[i]);
        cr_assert_eq(E.segs[i].device_writable, w[i]);
    }
    cr_assert_eq(E.q.last_avail_idx, 1, "a chain takes one available ring entry");
    cr_assert_eq(E.q.stats.descs_read, 4);
}

/* ==== indirect ==== */

/* Split Virtqueues / Indirect Descriptors (entries chained through their own next,
 * starting at index 0; the ring descriptor's WRITE flag is ignored) */
Test(split_vq, indirect_table)
{
    env_setup(8, true, false);
    struct vq_elem e;
    /* table of 4 entries: 0 -> 3 -> 1; entry 2 is not part of the list */
    put_table_entry(TABLES, 0, BUFS, 12, F_NEXT, 3);
    put_table_entry(TABLES, 3, BUFS + 0x100, 300, F_NEXT | F_WRITE, 1);
    put_table_entry(TABLES, 1, BUFS + 0x800, 400, F_WRITE, 0);
    put_table_entry(TABLES, 2, 0, 0, F_IND, 9); /* garbage, never used */
    put_desc(3, TABLES, 64, F_IND | F_WRITE, 0);
    drv_expose(3);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert(e.indirect);
    cr_assert_eq(e.id, 3);
    cr_assert_eq(e.slots, 1);
    cr_assert_eq(e.nsegs, 3);
    cr_assert_eq(e.readable_bytes, 12);
    cr_assert_eq(e.writable_bytes, 700);
    cr_assert_eq(E.segs[0].addr, BUFS);
    cr_assert_eq(E.segs[1].addr, BUFS + 0x100);
    cr_assert_eq(E.segs[2].addr, BUFS + 0x800);
    cr_assert_not(E.segs[0].device_writable);
    cr_assert(E.segs[1].device_writable);
    cr_assert_eq(E.q.last_avail_idx, 1);
    cr_assert_eq(E.q.stats.indirect_tables, 1);
    /* one ring descriptor + the table (4 entries, one burst) */
    cr_assert_eq(E.q.stats.descs_read, 5);
}

/* Split Virtqueues / Indirect Descriptors (table fetched in bursts) */
Test(split_vq, indirect_table_larger_than_one_burst)
{
    env_setup(64, true, false);
    struct vq_elem e;
    struct tseg s[40];
    for (unsigned i = 0; i < 40; i++)
        s[i] = (struct tseg){BUFS + 0x100u * i, 10 + i, i >= 30};
    drv_add_indirect(TABLES, s, 40, 0);
    uint64_t reads0 = E.g.reads[VS_DMA_DESC_READ];
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.nsegs, 40);
    /* avail idx + ring entry + ring descriptor + 2 bursts */
    cr_assert_eq(E.g.reads[VS_DMA_DESC_READ] - reads0, 5);
}

/* Split Virtqueues / Indirect Descriptors (a table may hold more entries than the
 * list uses, and more than the queue size; only the list is bounded) */
Test(split_vq, indirect_table_larger_than_its_list)
{
    env_setup(4, true, false);
    struct vq_elem e;
    put_table_entry(TABLES, 0, BUFS, 8, F_NEXT, 1);
    put_table_entry(TABLES, 1, BUFS, 8, F_WRITE, 0);
    put_desc(0, TABLES, 16u * 10, F_IND, 0);
    drv_expose(0);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.nsegs, 2);
    /* the burst never covers more entries than the buffer may still hold */
    cr_assert_eq(E.q.stats.descs_read, 1 + 4);
}

/* Split Virtqueues / Indirect Descriptors (device normative: zero or more chained
 * descriptors followed by a single indirect one) */
Test(split_vq, chain_ending_in_indirect_descriptor)
{
    env_setup(8, true, false);
    struct vq_elem e;
    put_desc(4, BUFS, 12, F_NEXT, 1);
    put_desc(1, BUFS + 0x10, 20, F_NEXT, 2);
    put_desc(2, TABLES, 32, F_IND, 0);
    put_table_entry(TABLES, 0, BUFS + 0x100, 30, F_NEXT, 1);
    put_table_entry(TABLES, 1, BUFS + 0x200, 1000, F_WRITE, 0);
    drv_expose(4);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert(e.indirect);
    cr_assert_eq(e.id, 4);
    cr_assert_eq(e.nsegs, 4);
    cr_assert_eq(e.readable_bytes, 62);
    cr_assert_eq(e.writable_bytes, 1000);
    cr_assert_eq(E.segs[2].addr, BUFS + 0x100);
    cr_assert_eq(E.q.stats.descs_read, 5);
}

/* ==== used ring ==== */

/* Split Virtqueues / The Virtqueue Used Ring (device normative: len set prior to
 * updating used idx; idx written last, publishing the batch). The elements of one
 * publication go out as one contiguous write, before idx. */
Test(split_vq, used_idx_written_last)
{
    env_setup(8, false, false);
    struct vq_elem e[3];
    for (int i = 0; i < 3; i++)
        drv_add1(BUFS, 100, true);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pop(&e[i]), VQ_OK);
    fake_guest_reset_counters(&E.g);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(svq_push(&E.q, &E.ops, &e[i], (uint32_t)(10 + i)), VQ_OK);
    cr_assert_eq(E.q.pending, 3);
    cr_assert_eq(split_vq_ops.pending(&E.q), 3);
    /* nothing is written before the flush: the device holds the elements */
    cr_assert_eq(drv_used_ready(), 0);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 0);

    cr_assert_eq(svq_flush(&E.q, &E.ops), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 2, "one write of the elements, one of idx");
    const struct fake_guest_access *elems = fake_guest_recent(&E.g, 1);
    cr_assert_eq(elems->addr, used_entry(0));
    cr_assert_eq(elems->len, 3 * 8);
    cr_assert_eq(elems->kind, VS_DMA_USED_WRITE);
    for (uint16_t i = 0; i < 3; i++) {
        cr_assert_eq(fake_guest_get32(&E.g, used_entry(i)), i);
        cr_assert_eq(fake_guest_get32(&E.g, used_entry(i) + 4), 10u + i);
    }
    const struct fake_guest_access *last = fake_guest_recent(&E.g, 0);
    cr_assert_not_null(last);
    cr_assert(last->write);
    cr_assert_eq(last->kind, VS_DMA_USED_WRITE);
    cr_assert_eq(last->addr, USED_RING + 2);
    cr_assert_eq(last->len, 2);
    cr_assert_eq(fake_guest_get16(&E.g, USED_RING + 2), 3);
    cr_assert_eq(E.q.pending, 0);
    cr_assert_eq(fake_guest_get16(&E.g, USED_RING), 0, "used->flags untouched");
    cr_assert_eq(drv_used_ready(), 3);
}

/* Runs `buffers` requests through a ring of `size`, mixing single descriptors and
 * chains of 2 and 3 (every fourth through an indirect table when negotiated), up to
 * `batch` buffers per round, each popped, pushed, flushed and taken back. */
static void run_laps(uint16_t size, unsigned buffers, unsigned batch, bool indirect)
{
    env_setup(size, indirect, false);
    unsigned lens[3] = {1, 2, 3};
    unsigned done = 0, bufno = 0;
    while (done < buffers) {
        unsigned used_descs = 0;
        uint16_t heads[16];
        unsigned n = 0;
        while (n < batch && done + n < buffers) {
            unsigned k = lens[bufno % 3] <= size ? lens[bufno % 3] : size;
            bool ind = indirect && bufno % 4 == 3;
            unsigned cost = ind ? 1 : k;
            if (used_descs + cost > size)
                break;
            struct tseg s[3] = {{BUFS, 100, false}, {BUFS, 200, true}, {BUFS, 300, true}};
            if (k == 1)
                s[0].w = true;
            heads[n++] = ind ? drv_add_indirect(TABLES + 0x100u * (bufno % 16), s, k, 0)
                             : drv_add_chain(s, k);
            used_descs += cost;
            bufno++;
        }
        cr_assert_gt(n, 0);
        struct vq_elem e[16];
        for (unsigned i = 0; i < n; i++) {
            cr_assert_eq(pop(&e[i]), VQ_OK, "pop %u", done + i);
            cr_assert_eq(e[i].id, heads[i]);
        }
        struct vq_elem extra;
        cr_assert_eq(pop(&extra), VQ_EMPTY);
        for (unsigned i = 0; i < n; i++)
            cr_assert_eq(svq_push(&E.q, &E.ops, &e[i], e[i].writable_bytes), VQ_OK);
        cr_assert_eq(svq_flush(&E.q, &E.ops), VQ_OK);
        cr_assert_eq(drv_used_ready(), n);
        for (unsigned i = 0; i < n; i++) {
            uint32_t id, len;
            drv_take_used(&id, &len);
            cr_assert_eq(id, heads[i]);
            cr_assert_eq(len, e[i].writable_bytes);
        }
        cr_assert_eq(drv_used_ready(), 0);
        cr_assert_eq(E.q.last_avail_idx, E.avail_idx);
        cr_assert_eq(E.q.used_idx, E.last_used);
        done += n;
    }
    cr_assert_eq(E.q.stats.buffers_popped, buffers);
    cr_assert_eq(E.q.stats.used_pushed, buffers);
    cr_assert_eq(E.q.broken, VS_REASON_NONE);
}

/* Split Virtqueues / Updating idx ("idx always increments, and wraps naturally at
 * 65536"): 70000 buffers through a ring of 4 carry both indices across 65535 -> 0 */
Test(split_vq, index_wrap_16_bit)
{
    run_laps(4, 70000, 3, true);
    cr_assert_eq(E.q.last_avail_idx, (uint16_t)70000);
    cr_assert_eq(E.q.used_idx, (uint16_t)70000);
    cr_assert_eq(fake_guest_get16(&E.g, USED_RING + 2), (uint16_t)70000);
    cr_assert_eq(E.q.stats.buffers_popped, 70000);
}

/* Split Virtqueues / Updating idx (single buffers across the wrap, size 1) */
Test(split_vq, index_wrap_size_1)
{
    run_laps(1, 65540, 1, false);
    cr_assert_eq(E.q.last_avail_idx, 4);
}

/* ==== used buffer notification suppression ==== */

/* Split Virtqueues / Used Buffer Notification Suppression (without EVENT_IDX: the
 * decision reads avail->flags, 2 bytes, and ignores used_event; the decisions
 * themselves are in test_vq_contract.c) */
Test(split_vq, used_notification_flags_without_event_idx)
{
    env_setup(8, false, false);
    fake_guest_put16(&E.g, used_event_addr(), 1); /* ignored without EVENT_IDX */
    publish(1);
    cr_assert(decide(), "flags 0: the device MUST send a notification");
    const struct fake_guest_access *a = fake_guest_recent(&E.g, 0);
    cr_assert_eq(a->addr, AVAIL_RING);
    cr_assert_eq(a->len, 2);
    cr_assert_eq(a->kind, VS_DMA_EVENT_READ);
    cr_assert_not(a->write);
}

/* Split Virtqueues / Used Buffer Notification Suppression (with EVENT_IDX: used_event;
 * the low bit of flags is ignored) */
Test(split_vq, used_event_with_event_idx)
{
    /* (the decisions at, before and after used_event are in test_vq_contract.c) */
    env_setup(8, false, true);
    /* used_event 2: notify once the element with index 2 is written */
    fake_guest_put16(&E.g, used_event_addr(), 2);
    fake_guest_put16(&E.g, AVAIL_RING, VIRTQ_AVAIL_F_NO_INTERRUPT_MASK); /* ignored */
    publish(2); /* indices 0, 1 */
    cr_assert_not(decide());
    const struct fake_guest_access *a = fake_guest_recent(&E.g, 0);
    cr_assert_eq(a->addr, used_event_addr());
    cr_assert_eq(a->len, 2);
    cr_assert_eq(a->kind, VS_DMA_EVENT_READ);
    publish(1); /* index 2 */
    cr_assert(decide(), "flags' low bit must be ignored with EVENT_IDX");
    cr_assert_eq(E.g.reads[VS_DMA_EVENT_READ], 2, "no read of flags with EVENT_IDX");
}

/* Split Virtqueues / Used Buffer Notification Suppression (the rule across the 16-bit
 * wrap of used idx) */
Test(split_vq, used_event_across_index_wrap)
{
    env_setup(4, false, true);
    fake_guest_put16(&E.g, used_event_addr(), 40000);
    for (unsigned i = 0; i < 65532 / 3; i++)
        publish(3);
    publish(1);
    cr_assert_eq(E.q.published_used_idx, 65533);
    (void)decide();
    /* range 65533..65534 does not reach 65535 */
    fake_guest_put16(&E.g, used_event_addr(), 65535);
    publish(2);
    cr_assert_not(decide());
    /* range 65535, 0: 65535 written */
    publish(2);
    cr_assert_eq(E.q.published_used_idx, 1);
    cr_assert(decide());
    /* event 0 lies behind (written before the last decision) */
    fake_guest_put16(&E.g, used_event_addr(), 0);
    publish(2);
    cr_assert_not(decide());

    /* a range crossing the wrap with the event after it: old 65534 */
    env_setup(4, false, true);
    fake_guest_put16(&E.g, used_event_addr(), 1000);
    for (unsigned i = 0; i < 65534 / 2; i++)
        publish(2);
    cr_assert_eq(E.q.published_used_idx, 65534);
    (void)decide();
    fake_guest_put16(&E.g, used_event_addr(), 0);
    publish(3); /* 65534, 65535, 0 */
    cr_assert(decide(), "event 0 written just after the wrap");
    fake_guest_put16(&E.g, used_event_addr(), 3);
    publish(1); /* 1 */
    cr_assert_not(decide());
    publish(2); /* 2, 3 */
    cr_assert(decide());
}

/* Split Virtqueues / Used Buffer Notification Suppression (note: with used_event 0,
 * a notification after the first buffer and again 65536 buffers later) */
Test(split_vq, used_event_zero_every_65536)
{
    env_setup(4, false, true);
    fake_guest_put16(&E.g, used_event_addr(), 0);
    unsigned irqs = 0, first = 0, second = 0;
    for (unsigned i = 1; i <= 65537; i++) {
        publish(1);
        if (decide()) {
            irqs++;
            if (irqs == 1)
                first = i;
            else
                second = i;
        }
    }
    cr_assert_eq(irqs, 2);
    cr_assert_eq(first, 1);
    cr_assert_eq(second, 65537);
}

/* Split Virtqueues / Used Buffer Notification Suppression (65536 or more elements
 * published since the last decision pass every used_event) */
Test(split_vq, used_event_after_a_full_index_lap)
{
    env_setup(4, false, true);
    fake_guest_put16(&E.g, used_event_addr(), 5);
    publish(1);
    cr_assert_not(decide());
    /* exactly 65536 more: used idx is back where it was, yet index 5 was written */
    for (unsigned i = 0; i < 65536 / 4; i++)
        publish(4);
    cr_assert_eq(E.q.published_used_idx, 1);
    cr_assert(decide(), "a full lap of 65536 elements passed used_event");
    for (unsigned i = 0; i < 70000 / 4; i++)
        publish(4);
    cr_assert(decide());
}

/* ==== available buffer notification suppression ==== */

/* Split Virtqueues / Available Buffer Notification Suppression (without EVENT_IDX:
 * used->flags 0 or 1) */
Test(split_vq, device_notifications_without_event_idx)
{
    env_setup(8, false, false);
    cr_assert_eq(svq_set_notifications(&E.q, &E.ops, false), VQ_OK);
    cr_assert_eq(fake_guest_get16(&E.g, USED_RING), VIRTQ_USED_F_NO_NOTIFY_MASK);
    const struct fake_guest_access *a = fake_guest_recent(&E.g, 0);
    cr_assert(a->write);
    cr_assert_eq(a->addr, USED_RING);
    cr_assert_eq(a->len, 2);
    cr_assert_eq(a->kind, VS_DMA_EVENT_WRITE);
    cr_assert_eq(svq_set_notifications(&E.q, &E.ops, true), VQ_OK);
    cr_assert_eq(fake_guest_get16(&E.g, USED_RING), 0);
    cr_assert_eq(E.q.stats.event_writes, 2);
    cr_assert_eq(fake_guest_get16(&E.g, avail_event_addr()), 0, "avail_event untouched");
    cr_assert_eq(fake_guest_accesses(&E.g), 2);
}

/* Split Virtqueues / Available Buffer Notification Suppression (with EVENT_IDX: flags
 * stays 0; avail_event = the device's next available index when enabling) */
Test(split_vq, device_notifications_with_event_idx)
{
    env_setup(8, false, true);
    struct vq_elem e;
    for (int i = 0; i < 3; i++) {
        drv_add1(BUFS, 8, false);
        cr_assert_eq(pop(&e), VQ_OK);
    }
    fake_guest_reset_counters(&E.g);
    cr_assert_eq(svq_set_notifications(&E.q, &E.ops, true), VQ_OK);
    cr_assert_eq(fake_guest_get16(&E.g, avail_event_addr()), 3);
    const struct fake_guest_access *a = fake_guest_recent(&E.g, 0);
    cr_assert(a->write);
    cr_assert_eq(a->addr, avail_event_addr());
    cr_assert_eq(a->len, 2);
    cr_assert_eq(a->kind, VS_DMA_EVENT_WRITE);
    /* disabling writes nothing: avail_event stays where it was */
    cr_assert_eq(svq_set_notifications(&E.q, &E.ops, false), VQ_OK);
    cr_assert_eq(fake_guest_accesses(&E.g), 1);
    cr_assert_eq(fake_guest_get16(&E.g, avail_event_addr()), 3);
    cr_assert_eq(fake_guest_get16(&E.g, USED_RING), 0, "flags MUST stay 0 with EVENT_IDX");
    cr_assert_eq(E.q.stats.event_writes, 1);
    /* after more pops, enabling moves avail_event along */
    drv_add1(BUFS, 8, false);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(svq_set_notifications(&E.q, &E.ops, true), VQ_OK);
    cr_assert_eq(fake_guest_get16(&E.g, avail_event_addr()), 4);
}

/* Driver Notifications (NOTIFICATION_DATA without RING_PACKED: next_off is bits 0..14
 * of the available idx, next_wrap bit 15) */
Test(split_vq, avail_hint)
{
    env_setup(4, false, false);
    cr_assert_eq(svq_hint_count(&E.q), 0, "no hint yet");
    svq_set_avail_hint(&E.q, 3, false);
    cr_assert_eq(svq_hint_count(&E.q), 3);
    svq_set_avail_hint(&E.q, 4, false);
    cr_assert_eq(svq_hint_count(&E.q), 4);
    svq_set_avail_hint(&E.q, 5, false);
    cr_assert_eq(svq_hint_count(&E.q), 0, "more than a ring ahead: impossible");
    /* device at 65534 */
    E.q.last_avail_idx = 65534;
    svq_set_avail_hint(&E.q, 1, false); /* idx 1 */
    cr_assert_eq(svq_hint_count(&E.q), 3, "across the 16-bit wrap");
    svq_set_avail_hint(&E.q, 0x7fff, true); /* idx 65535 */
    cr_assert_eq(svq_hint_count(&E.q), 1);
    svq_set_avail_hint(&E.q, 0x7ffe, true); /* idx 65534 */
    cr_assert_eq(svq_hint_count(&E.q), 0);
    svq_set_avail_hint(&E.q, 0x7ffd, true); /* idx 65533: stale */
    cr_assert_eq(svq_hint_count(&E.q), 0);
    svq_set_avail_hint(&E.q, 0xffff, false); /* next_off has 15 bits */
    cr_assert_eq(E.q.hint_avail_idx, 0x7fff);
    split_vq_ops.set_avail_hint(&E.q, 0, false);
    cr_assert_eq(svq_hint_count(&E.q), 2);
    cr_assert_eq(fake_guest_accesses(&E.g), 0);
}

/* ==== hostile drivers ==== */

/* Split Virtqueues / The Virtqueue Available Ring (idx never runs more than a ring
 * ahead of the device) */
Test(split_vq, hostile_avail_idx_jump)
{
    env_setup(4, false, false);
    fake_guest_put16(&E.g, AVAIL_RING + 2, 4); /* a full ring: legal */
    bool avail;
    cr_assert_eq(svq_peek(&E.q, &E.ops, &avail), VQ_OK);
    cr_assert(avail);

    env_setup(4, false, false);
    fake_guest_put16(&E.g, AVAIL_RING + 2, 5);
    expect_pop_breaks(VS_REASON_AVAIL_IDX_JUMP);
    cr_assert_eq(E.q.stats.descs_read, 0);

    env_setup(4, false, false);
    fake_guest_put16(&E.g, AVAIL_RING + 2, 0x8000);
    cr_assert_eq(svq_peek(&E.q, &E.ops, &avail), VQ_BROKEN);
    cr_assert_not(avail);
    expect_broken_silent(VS_REASON_AVAIL_IDX_JUMP);
}

/* Split Virtqueues / The Virtqueue Available Ring (driver normative: MUST NOT
 * decrement the available idx) */
Test(split_vq, hostile_avail_idx_decrement)
{
    env_setup(4, false, false);
    struct vq_elem e;
    drv_add1(BUFS, 8, false);
    drv_add1(BUFS, 8, false);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(pop(&e), VQ_OK);
    fake_guest_put16(&E.g, AVAIL_RING + 2, 1);
    expect_pop_breaks(VS_REASON_AVAIL_IDX_JUMP);
}

/* Split Virtqueues / The Virtqueue Available Ring (the head is a descriptor index) */
Test(split_vq, hostile_head_out_of_range)
{
    env_setup(4, false, false);
    fake_guest_put16(&E.g, avail_entry(0), 4);
    fake_guest_put16(&E.g, AVAIL_RING + 2, 1);
    expect_pop_breaks(VS_REASON_DESC_ID_OUT_OF_RANGE);
    cr_assert_eq(E.q.stats.descs_read, 0);

    env_setup(4, false, false);
    fake_guest_put16(&E.g, avail_entry(0), 0xffff);
    fake_guest_put16(&E.g, AVAIL_RING + 2, 1);
    expect_pop_breaks(VS_REASON_DESC_ID_OUT_OF_RANGE);
}

/* Split Virtqueues / The Virtqueue Descriptor Table (next names a table entry) */
Test(split_vq, hostile_next_out_of_range)
{
    env_setup(4, false, false);
    put_desc(0, BUFS, 8, F_NEXT, 4);
    drv_expose(0);
    expect_pop_breaks(VS_REASON_DESC_NEXT_OUT_OF_RANGE);
    cr_assert_eq(E.q.stats.descs_read, 1);
}

/* Split Virtqueues / The Virtqueue Descriptor Table (driver normative: "loops in the
 * descriptor chain are forbidden"; the walk is bounded by the queue size) */
Test(split_vq, hostile_chain_loop)
{
    env_setup(4, false, false);
    put_desc(1, BUFS, 8, F_NEXT, 2);
    put_desc(2, BUFS, 8, F_NEXT, 1);
    drv_expose(1);
    expect_pop_breaks(VS_REASON_CHAIN_TOO_LONG);
    cr_assert_eq(E.q.stats.descs_read, 4, "walk bounded by the queue size");

    env_setup(8, false, false);
    put_desc(3, BUFS, 8, F_NEXT, 3); /* next to itself */
    drv_expose(3);
    expect_pop_breaks(VS_REASON_CHAIN_TOO_LONG);
    cr_assert_eq(E.q.stats.descs_read, 8);
}

/* Split Virtqueues / Indirect Descriptors (driver normative: a chain no longer than
 * the Queue Size) */
Test(split_vq, hostile_chain_longer_than_ring)
{
    env_setup(4, false, false);
    for (uint16_t i = 0; i < 4; i++)
        put_desc(i, BUFS, 8, F_NEXT, (uint16_t)(i + 1));
    drv_expose(0);
    expect_pop_breaks(VS_REASON_CHAIN_TOO_LONG);
    cr_assert_eq(E.q.stats.descs_read, 4);
}

/* Split Virtqueues / Message Framing (driver normative: device-writable after
 * device-readable) */
Test(split_vq, hostile_read_after_write)
{
    /* across the step from the ring chain into an indirect table */
    env_setup(4, true, false);
    put_desc(0, BUFS, 8, F_NEXT | F_WRITE, 1);
    put_desc(1, TABLES, 16, F_IND, 0);
    put_table_entry(TABLES, 0, BUFS, 8, 0, 0);
    drv_expose(0);
    expect_pop_breaks(VS_REASON_READ_AFTER_WRITE);
}

/* Split Virtqueues / Indirect Descriptors (driver normative: not without
 * VIRTIO_F_INDIRECT_DESC) */
Test(split_vq, hostile_indirect_not_negotiated)
{
    /* at the end of a chain (a lone one is in test_vq_contract.c) */
    env_setup(4, false, false);
    put_desc(0, BUFS, 8, F_NEXT, 1);
    put_desc(1, TABLES, 16, F_IND, 0);
    drv_expose(0);
    expect_pop_breaks(VS_REASON_INDIRECT_NOT_NEGOTIATED);
}

/* Split Virtqueues / Indirect Descriptors (driver normative: MUST NOT set both
 * INDIRECT and NEXT) */
Test(split_vq, hostile_indirect_with_next)
{
    /* in the middle of a chain (at its head is in test_vq_contract.c) */
    env_setup(4, true, false);
    put_desc(0, BUFS, 8, F_NEXT, 1);
    put_desc(1, TABLES, 16, F_IND | F_NEXT, 2);
    put_desc(2, BUFS, 8, F_WRITE, 0);
    put_table_entry(TABLES, 0, BUFS, 8, 0, 0);
    drv_expose(0);
    expect_pop_breaks(VS_REASON_INDIRECT_WITH_NEXT);
}

/* Split Virtqueues / Indirect Descriptors (next inside the table names one of its
 * entries) */
Test(split_vq, hostile_indirect_next_out_of_range)
{
    env_setup(8, true, false);
    put_table_entry(TABLES, 0, BUFS, 8, F_NEXT, 1);
    put_table_entry(TABLES, 1, BUFS, 8, F_NEXT, 2); /* table has 2 entries */
    put_desc(0, TABLES, 32, F_IND, 0);
    drv_expose(0);
    expect_pop_breaks(VS_REASON_DESC_NEXT_OUT_OF_RANGE);
}

/* Split Virtqueues / The Virtqueue Descriptor Table (a loop inside an indirect table
 * ends at the chain bound) */
Test(split_vq, hostile_indirect_loop)
{
    env_setup(4, true, false);
    put_table_entry(TABLES, 0, BUFS, 8, F_NEXT, 1);
    put_table_entry(TABLES, 1, BUFS, 8, F_NEXT, 0);
    put_desc(0, TABLES, 32, F_IND, 0);
    drv_expose(0);
    expect_pop_breaks(VS_REASON_CHAIN_TOO_LONG);
    /* ring descriptor + at most one fetch per element */
    cr_assert_leq(E.g.reads[VS_DMA_DESC_READ], 2 + 1 + 4);
}

/* Split Virtqueues / Indirect Descriptors (driver normative: a chain no longer than
 * the Queue Size, counting the elements in the table) */
Test(split_vq, hostile_indirect_list_too_long)
{
    env_setup(4, true, false);
    struct tseg t[5];
    for (int i = 0; i < 5; i++)
        t[i] = (struct tseg){BUFS, 8, false};
    drv_add_indirect(TABLES, t, 5, 0);
    expect_pop_breaks(VS_REASON_CHAIN_TOO_LONG);
    cr_assert_eq(E.q.stats.descs_read, 1 + 4, "only what the buffer may hold is fetched");

    /* ring descriptors count toward the same bound */
    env_setup(4, true, false);
    put_desc(0, BUFS, 8, F_NEXT, 1);
    put_desc(1, BUFS, 8, F_NEXT, 2);
    put_desc(2, TABLES, 48, F_IND, 0);
    for (uint32_t i = 0; i < 3; i++)
        put_table_entry(TABLES, i, BUFS, 8, i < 2 ? F_NEXT : 0, (uint16_t)(i + 1));
    drv_expose(0);
    expect_pop_breaks(VS_REASON_CHAIN_TOO_LONG);
}

/* Split Virtqueues (each part must be backed by guest memory) */
Test(split_vq, hostile_rings_outside_memory)
{
    struct vq_config c = {.size = 4, .desc_addr = DESC_TABLE, .driver_addr = G_BASE + G_SIZE,
                          .device_addr = USED_RING};
    env_setup_cfg(&c);
    bool avail;
    cr_assert_eq(svq_peek(&E.q, &E.ops, &avail), VQ_BROKEN);
    expect_broken_silent(VS_REASON_DMA_OUT_OF_RANGE);

    /* the used ring outside memory: found by the flush that writes the element */
    c.driver_addr = AVAIL_RING;
    c.device_addr = G_BASE + G_SIZE - 4;
    env_setup_cfg(&c);
    drv_add1(BUFS, 8, true);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(svq_push(&E.q, &E.ops, &e, 8), VQ_OK);
    cr_assert_eq(svq_flush(&E.q, &E.ops), VQ_BROKEN);
    expect_broken_silent(VS_REASON_DMA_OUT_OF_RANGE);
}

/* Split Virtqueues / Used Buffer Notification Suppression ; Available Buffer
 * Notification Suppression (the EVENT_IDX fields outside memory) */
Test(split_vq, hostile_event_fields_outside_memory)
{
    /* used_event is the last 2 bytes of the available ring */
    struct vq_config c = {.size = 4, .desc_addr = DESC_TABLE,
                          .driver_addr = G_BASE + G_SIZE - 12, /* ring fits, used_event not */
                          .device_addr = USED_RING, .event_idx = true};
    env_setup_cfg(&c);
    struct vq_elem e = {.id = 0, .slots = 1};
    cr_assert_eq(svq_push(&E.q, &E.ops, &e, 0), VQ_OK);
    cr_assert_eq(svq_flush(&E.q, &E.ops), VQ_OK);
    bool irq = true;
    cr_assert_eq(svq_should_interrupt(&E.q, &E.ops, &irq), VQ_BROKEN);
    cr_assert_not(irq);
    expect_broken_silent(VS_REASON_DMA_OUT_OF_RANGE);

    /* avail_event is the last 2 bytes of the used ring */
    c.driver_addr = AVAIL_RING;
    c.device_addr = G_BASE + G_SIZE - 36;
    env_setup_cfg(&c);
    cr_assert_eq(svq_set_notifications(&E.q, &E.ops, false), VQ_OK);
    cr_assert_eq(svq_set_notifications(&E.q, &E.ops, true), VQ_BROKEN);
    expect_broken_silent(VS_REASON_DMA_OUT_OF_RANGE);
}

/* Device Status Field / DEVICENEEDSRESET (a refused DMA is an error state of the
 * queue; the other steps are in test_vq_contract.c) */
Test(split_vq, iommu_fault_reading_the_avail_entry_breaks_pop)
{
    /* an IOMMU fault reading the available ring entry (idx already read by peek) */
    env_setup(4, false, false);
    struct tseg s[2] = {{BUFS, 1, false}, {BUFS, 1, true}};
    drv_add_chain(s, 2);
    bool av;
    cr_assert_eq(svq_peek(&E.q, &E.ops, &av), VQ_OK);
    E.g.fail_kinds = 1u << VS_DMA_DESC_READ;
    E.g.fail_status = VS_DMA_IOMMU_FAULT;
    expect_pop_breaks(VS_REASON_DMA_IOMMU_FAULT);
}

/* Split Virtqueues (an unchecked ring address that wraps past 2^64 is refused before
 * any DMA) */
Test(split_vq, hostile_ring_address_wrapping)
{
    struct vq_config c = {.size = 4, .desc_addr = UINT64_MAX - 15, .driver_addr = AVAIL_RING,
                          .device_addr = USED_RING};
    cr_assert_eq(svq_check_config(&c, 4), VS_REASON_DMA_OUT_OF_RANGE);
    /* Even if the caller skipped the check: */
    env_setup(4, false, false);
    drv_expose(1);
    E.q.cfg.desc_addr = UINT64_MAX - 15;
    fake_guest_reset_counters(&E.g);
    expect_pop_breaks(VS_REASON_DMA_OUT_OF_RANGE);
    cr_assert_eq(E.g.faults, 0);
    cr_assert_eq(fake_guest_accesses(&E.g), 2, "avail idx and entry only");

    env_setup(4, false, false);
    E.q.cfg.driver_addr = UINT64_MAX - 1;
    bool avail;
    cr_assert_eq(svq_peek(&E.q, &E.ops, &avail), VQ_BROKEN);
    expect_broken_silent(VS_REASON_DMA_OUT_OF_RANGE);
    cr_assert_eq(fake_guest_accesses(&E.g), 0);
}

/* Split Virtqueues / The Virtqueue Descriptor Table (hostile driver: garbage in every
 * field must never crash, hang or escape; a deterministic random ring) */
Test(split_vq, hostile_random_rings_never_escape)
{
    uint32_t seed = 777;
    unsigned popped = 0, broke = 0;
#define RND() (seed = seed * 1103515245u + 12345u, seed >> 8)
    for (int round = 0; round < 400; round++) {
        uint16_t size = (uint16_t)(1u << (round % 5));
        env_setup(size, round % 2 == 0, round % 3 == 0);
        for (uint16_t i = 0; i < size; i++) {
            uint32_t r = RND();
            uint16_t flags = (r & 0xf0) == 0 ? (uint16_t)RND() : (uint16_t)(r & 0x7u);
            uint32_t len = RND() % 6 == 0 ? 0 : RND() % 64;
            uint64_t addr = (RND() & 1) ? TABLES : BUFS;
            put_desc(i, addr, len, flags, (uint16_t)(RND() % (size + 2u)));
            fake_guest_put16(&E.g, avail_entry(i), (uint16_t)(RND() % (size + 1u)));
        }
        for (uint32_t j = 0; j < 64; j++)
            fake_guest_put16(&E.g, TABLES + 2u * j, (uint16_t)RND());
        uint32_t idx = RND() % 8 == 0 ? RND() : RND() % (size + 1u);
        fake_guest_put16(&E.g, AVAIL_RING + 2, (uint16_t)idx);
        for (int step = 0; step < 3 * size + 3; step++) {
            struct vq_elem e;
            enum vq_status s = pop(&e);
            if (s == VQ_OK) {
                cr_assert_leq(e.nsegs, size);
                cr_assert_lt(e.id, size);
                cr_assert_eq(e.slots, 1);
                cr_assert_eq(svq_push(&E.q, &E.ops, &e, 1), VQ_OK);
                cr_assert_eq(svq_flush(&E.q, &E.ops), VQ_OK);
                bool irq;
                cr_assert_eq(svq_should_interrupt(&E.q, &E.ops, &irq), VQ_OK);
                popped++;
            } else if (s == VQ_BROKEN) {
                cr_assert_neq(E.q.broken, VS_REASON_NONE);
                broke++;
                expect_broken_silent(E.q.broken);
                break;
            } else {
                /* the driver makes more available, sometimes too many */
                fake_guest_put16(&E.g, AVAIL_RING + 2,
                                 (uint16_t)(E.q.last_avail_idx + RND() % (size + 2u)));
            }
        }
        cr_assert(E.g.faults == 0 || E.q.broken != VS_REASON_NONE);
    }
#undef RND
    cr_assert_gt(popped, 50, "the random rings must also yield valid buffers");
    cr_assert_gt(broke, 50, "the random rings must also break queues");
}

/* ==== the ring-format table ==== */

/* ==== fetch unit: available ring entries in batches, descriptor runs with IN_ORDER ==== */

static void env_setup_fetch(uint16_t size, bool in_order, uint16_t batch, enum vq_fetch_source src)
{
    struct vq_config cfg = {
        .size = size,
        .desc_addr = DESC_TABLE,
        .driver_addr = AVAIL_RING,
        .device_addr = USED_RING,
        .indirect_desc = true,
        .in_order = in_order,
        .fetch_batch = batch,
        .fetch_source = src,
    };
    cr_assert_eq(svq_check_config(&cfg, 1024), VS_REASON_NONE);
    env_setup_cfg(&cfg);
}

/* The default source reads one available ring entry and one descriptor per read. */
Test(split_vq, fetch_one_is_one_entry_per_read)
{
    env_setup_fetch(8, true, 16, VQ_FETCH_ONE);
    for (unsigned i = 0; i < 3; i++)
        drv_add1(BUFS, 8, true);
    struct vq_elem e;
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(E.q.stats.fetch_reads, 3);
    cr_assert_eq(E.q.stats.fetch_entries, 3);
    /* 1 idx read + per buffer: 1 entry + 1 descriptor */
    cr_assert_eq(E.g.reads[VS_DMA_DESC_READ], 7);
}

/* Read-ahead reads every available ring entry the device knows of at once (at most
 * the batch); entries at or beyond avail->idx could never be used ("Updating idx"), so
 * none is read and nothing is wasted. With IN_ORDER the descriptors of the cached heads
 * come in one run ("In-order use of descriptors"). */
Test(split_vq, fetch_read_ahead_batches_entries_and_descriptors)
{
    env_setup_fetch(16, true, 8, VQ_FETCH_READ_AHEAD);
    for (unsigned i = 0; i < 5; i++)
        drv_add1(BUFS + 64u * i, 8 + i, true);
    struct vq_elem e;
    for (unsigned i = 0; i < 5; i++) {
        cr_assert_eq(pop(&e), VQ_OK);
        cr_assert_eq(e.id, i);
        cr_assert_eq(e.writable_bytes, 8 + i);
    }
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_eq(E.q.stats.fetch_reads, 1);
    cr_assert_eq(E.q.stats.fetch_entries, 5);
    cr_assert_eq(E.q.stats.fetch_wasted, 0);
    cr_assert_eq(E.q.stats.fetch_wasted_bytes, 0);
    /* idx (1) + entries (1) + one descriptor run (1) + idx again when empty (1) */
    cr_assert_eq(E.g.reads[VS_DMA_DESC_READ], 4);
    cr_assert_eq(E.q.stats.descs_read, 5);
}

/* Without IN_ORDER the descriptors' places are unknown: one read per descriptor. */
Test(split_vq, fetch_without_in_order_reads_descriptors_one_by_one)
{
    env_setup_fetch(16, false, 8, VQ_FETCH_READ_AHEAD);
    for (unsigned i = 0; i < 4; i++)
        drv_add1(BUFS, 8, true);
    struct vq_elem e;
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(E.g.reads[VS_DMA_DESC_READ], 1 + 1 + 4);
}

/* Hint: the count is the hinted idx minus the device's, at most the batch. The hint
 * is the driver's avail->idx ("Driver Notifications"), so the device takes it without
 * reading idx. */
Test(split_vq, fetch_hint_count_and_hostile_hints)
{
    env_setup_fetch(16, true, 4, VQ_FETCH_HINT);
    for (unsigned i = 0; i < 6; i++)
        drv_add1(BUFS, 8, true);
    svq_set_avail_hint(&E.q, 6, false);
    struct vq_elem e;
    for (unsigned i = 0; i < 6; i++)
        cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(E.q.stats.fetch_reads, 2, "4 + 2 entries");
    cr_assert_eq(E.q.stats.fetch_hint_reads, 2);
    cr_assert_eq(E.q.stats.fetch_wasted, 0);
    cr_assert_eq(log_count_at(AVAIL_RING + 2, false), 0, "avail->idx never read");
    cr_assert_eq(svq_hint_count(&E.q), 0, "a hint the device reached is forgotten");

    /* stale (behind the device) and out of range: not kept */
    svq_set_avail_hint(&E.q, 3, false);
    cr_assert_eq(svq_hint_count(&E.q), 0);
    svq_set_avail_hint(&E.q, 0x7fff, true);
    cr_assert_eq(svq_hint_count(&E.q), 0);
    svq_set_avail_hint(&E.q, 6, false); /* a repeated notification: nothing new */
    cr_assert_eq(svq_hint_count(&E.q), 0);
    cr_assert_eq(pop(&e), VQ_EMPTY, "without a hint the device reads avail->idx");
    cr_assert_eq(log_count_at(AVAIL_RING + 2, false), 1);
}

/* Entry batches across the ring end: two reads (to the end, then from entry 0). Ring
 * sizes 4 and 8 over many laps of the 16-bit index. */
static void split_batch_across_end(uint16_t size)
{
    env_setup_fetch(size, true, 64, VQ_FETCH_READ_AHEAD);
    for (unsigned lap = 0; lap < 40; lap++) {
        unsigned n = size - lap % 2u;
        for (unsigned i = 0; i < n; i++)
            drv_add1(BUFS + i, 8, true);
        uint64_t before = E.q.stats.fetch_reads;
        unsigned start = E.q.last_avail_idx % size;
        struct vq_elem e;
        for (unsigned i = 0; i < n; i++) {
            cr_assert_eq(pop(&e), VQ_OK);
            cr_assert_eq(svq_push(&E.q, &E.ops, &e, 8), VQ_OK);
        }
        cr_assert_eq(svq_flush(&E.q, &E.ops), VQ_OK);
        cr_assert_eq(E.q.stats.fetch_reads - before, start + n > size ? 2u : 1u, "lap %u", lap);
    }
}
Test(split_vq, fetch_batch_across_ring_end_size_4) { split_batch_across_end(4); }
Test(split_vq, fetch_batch_across_ring_end_size_8) { split_batch_across_end(8); }

/* Reset (svq_init again) drops both caches. */
Test(split_vq, fetch_cache_dropped_on_reset)
{
    env_setup_fetch(8, true, 8, VQ_FETCH_READ_AHEAD);
    for (unsigned i = 0; i < 4; i++)
        drv_add1(BUFS, 8, true);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_gt(E.q.head_count, 0);
    svq_init(&E.q, &E.cfg);
    cr_assert_eq(E.q.head_count, 0);
    cr_assert_eq(E.q.desc_count, 0);
    fake_guest_put16(&E.g, AVAIL_RING + 2, 0); /* the driver's new ring is empty */
    cr_assert_eq(pop(&e), VQ_EMPTY);
}

/* Hostile input through the caches still ends broken with a named reason: a head out
 * of range in a batch of entries, and avail->idx jumping by more than the ring. */
Test(split_vq, fetch_hostile_head_out_of_range_in_batch)
{
    env_setup_fetch(8, true, 8, VQ_FETCH_READ_AHEAD);
    drv_add1(BUFS, 8, true);
    drv_expose(200);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(pop(&e), VQ_BROKEN);
    expect_broken_silent(VS_REASON_DESC_ID_OUT_OF_RANGE);
}

Test(split_vq, fetch_hostile_idx_jump_with_hint)
{
    env_setup_fetch(8, true, 8, VQ_FETCH_HINT);
    drv_add1(BUFS, 8, true);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK); /* the one real buffer */
    fake_guest_put16(&E.g, AVAIL_RING + 2, 100);
    svq_set_avail_hint(&E.q, 100, false);
    cr_assert_eq(pop(&e), VQ_BROKEN);
    expect_broken_silent(VS_REASON_AVAIL_IDX_JUMP);
}

/* vhost-user's GET_VRING_BASE / SET_VRING_BASE (vq_ops.position, resume_at): a ring
 * resumed at available index 65534 takes the entries from there ("idx ... wraps
 * naturally at 65536"), returns them at used index 65534 on, and reports where it is. */
Test(split_vq, resume_at_a_position)
{
    env_setup(8, false, false);
    cr_expect_not(svq_resume_at(&E.q, 0x10000));
    cr_expect_eq(svq_position(&E.q), 0u);
    cr_assert(svq_resume_at(&E.q, 65534));
    cr_expect_eq(split_vq_ops.position(&E.q), 65534u);
    E.avail_idx = E.last_used = 65534;
    fake_guest_put16(&E.g, USED_RING + 2, 65534);
    publish(3);
    cr_expect_eq(fake_guest_get16(&E.g, USED_RING + 2), 1, "used idx wrapped to 1");
    cr_expect_eq(svq_position(&E.q), 1u);
    cr_expect_eq(E.q.broken, VS_REASON_NONE);
}

/* ==== batched used writes and NOTIFICATION_DATA (issue 12, item 4) ==== */

/* The Virtqueue Used Ring (device normative: len set prior to updating used idx):
 * the elements of one publication go out as one contiguous write, two when they pass
 * the ring's end (to the last entry, then from entry 0), and used->idx after them. */
Test(split_vq, used_elements_one_write_two_at_wrap)
{
    env_setup(8, false, false);
    publish(6);
    fake_guest_reset_counters(&E.g);
    struct vq_elem e[4];
    for (unsigned i = 0; i < 4; i++) {
        drv_add1(BUFS, 100, true);
        cr_assert_eq(pop(&e[i]), VQ_OK);
    }
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(svq_push(&E.q, &E.ops, &e[i], 20u + i), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 0);
    cr_assert_eq(svq_flush(&E.q, &E.ops), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 3, "entries 6-7, entries 0-1, idx");
    const struct fake_guest_access *w0 = fake_guest_recent(&E.g, 2);
    const struct fake_guest_access *w1 = fake_guest_recent(&E.g, 1);
    const struct fake_guest_access *w2 = fake_guest_recent(&E.g, 0);
    cr_assert_eq(w0->addr, used_entry(6));
    cr_assert_eq(w0->len, 16);
    cr_assert_eq(w1->addr, used_entry(0));
    cr_assert_eq(w1->len, 16);
    cr_assert_eq(w2->addr, USED_RING + 2);
    cr_assert_eq(fake_guest_get16(&E.g, USED_RING + 2), 10);
    for (unsigned i = 0; i < 4; i++) {
        uint32_t id, len;
        drv_take_used(&id, &len);
        cr_assert_eq(id, e[i].id);
        cr_assert_eq(len, 20u + i);
    }
}

/* More elements than the device holds (SVQ_USED_BUF_ELEMS): a full buffer is written
 * out at the next push, the rest at flush, and used->idx only after all of them. */
Test(split_vq, used_elements_beyond_the_buffer_are_written_before_idx)
{
    env_setup(128, false, false);
    const unsigned n = SVQ_USED_BUF_ELEMS + 6u;
    struct vq_elem e;
    fake_guest_reset_counters(&E.g);
    for (unsigned i = 0; i < n; i++) {
        drv_add1(BUFS, 100, true);
        cr_assert_eq(pop(&e), VQ_OK);
        cr_assert_eq(svq_push(&E.q, &E.ops, &e, i), VQ_OK);
        cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], i < SVQ_USED_BUF_ELEMS ? 0u : 1u);
        if (i == SVQ_USED_BUF_ELEMS) {
            cr_assert_eq(fake_guest_recent(&E.g, 0)->len, 8u * SVQ_USED_BUF_ELEMS);
            cr_assert_eq(fake_guest_recent(&E.g, 0)->addr, used_entry(0));
        }
    }
    cr_assert_eq(fake_guest_get16(&E.g, USED_RING + 2), 0, "not published yet");
    cr_assert_eq(svq_flush(&E.q, &E.ops), VQ_OK);
    cr_assert_eq(E.g.writes[VS_DMA_USED_WRITE], 3);
    cr_assert_eq(fake_guest_recent(&E.g, 1)->len, 8u * 6u);
    cr_assert_eq(fake_guest_recent(&E.g, 0)->addr, USED_RING + 2);
    for (unsigned i = 0; i < n; i++) {
        uint32_t id, len;
        drv_take_used(&id, &len);
        cr_assert_eq(len, i);
    }
}

/* Driver Notifications (NOTIFICATION_DATA): the notification carries the driver's
 * avail->idx, written before it notified, so the device takes the entries below it
 * without reading idx. Once it has used them it reads idx: while it works
 * notifications are off and the driver may add entries without one. After enabling
 * notifications it re-checks by reading idx before it sleeps ("Available Buffer
 * Notification Suppression"; without that read a buffer added between its last look
 * and the enable would never be noticed). */
Test(split_vq, notification_data_replaces_the_avail_idx_read)
{
    env_setup(8, false, false);
    for (unsigned i = 0; i < 3; i++)
        drv_add1(BUFS, 8, true);
    svq_set_avail_hint(&E.q, 3, false);
    fake_guest_reset_counters(&E.g);
    struct vq_elem e;
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(log_count_at(AVAIL_RING + 2, false), 0, "idx not read while the hint covers");
    /* the driver adds one more while notifications are off: no hint for it */
    drv_add1(BUFS, 8, true);
    cr_assert_eq(pop(&e), VQ_OK, "caught up: idx is read and shows the new entry");
    cr_assert_eq(log_count_at(AVAIL_RING + 2, false), 1);
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_eq(log_count_at(AVAIL_RING + 2, false), 2);
    /* going idle: enable, then the re-check reads idx again and finds the late one */
    cr_assert_eq(svq_set_notifications(&E.q, &E.ops, true), VQ_OK);
    drv_add1(BUFS, 8, true);
    bool avail = false;
    cr_assert_eq(svq_peek(&E.q, &E.ops, &avail), VQ_OK);
    cr_assert(avail);
    cr_assert_eq(log_count_at(AVAIL_RING + 2, false), 3);
    /* a hint for it too: the peek answers from the hint, no read */
    cr_assert_eq(pop(&e), VQ_OK);
    drv_add1(BUFS, 8, true);
    svq_set_avail_hint(&E.q, 6, false);
    cr_assert_eq(svq_peek(&E.q, &E.ops, &avail), VQ_OK);
    cr_assert(avail);
    cr_assert_eq(log_count_at(AVAIL_RING + 2, false), 3);
    cr_assert_eq(E.q.broken, VS_REASON_NONE);
}

/* Driver Notifications (hostile): a hint more than a ring ahead of the device is no
 * place the driver can reach (it never has more than size entries out); the device
 * ignores it and reads avail->idx, as without the feature, so it never takes entries
 * the driver did not expose. Over the whole 16-bit range and from several positions. */
Test(split_vq, hostile_notification_data_beyond_the_ring_is_ignored)
{
    for (uint16_t start = 0; start < 3; start++) {
        env_setup(8, false, false);
        publish(start * 5u);
        drv_add1(BUFS, 8, true);
        for (uint32_t v = 0; v < 0x10000u; v += 7) {
            svq_set_avail_hint(&E.q, (uint16_t)(v & 0x7fff), (v >> 15) & 1u);
            uint16_t dist = (uint16_t)(v - E.q.last_avail_idx);
            cr_assert_eq(svq_hint_count(&E.q), dist >= 1 && dist <= 8 ? dist : 0u, "hint %u", v);
        }
        svq_set_avail_hint(&E.q, (uint16_t)(E.q.last_avail_idx + 9u), false);
        struct vq_elem e;
        cr_assert_eq(pop(&e), VQ_OK);
        cr_assert_eq(pop(&e), VQ_EMPTY, "only the one exposed buffer");
        cr_assert_eq(E.q.broken, VS_REASON_NONE);
    }
}

/* Driver Notifications (hostile): a hint within reach that names entries the driver
 * never exposed (it lies about idx, which it MUST have written before notifying). The
 * device cannot tell before it reads idx: it takes what the ring holds there (every
 * access stays in the ring's areas, every head is checked), and the next read of idx,
 * behind the entries it took, ends in NEEDS_RESET with the hint named. */
Test(split_vq, hostile_notification_data_ahead_of_idx_breaks_named)
{
    env_setup(8, false, false);
    drv_add1(BUFS, 8, true);
    for (unsigned i = 1; i < 4; i++) /* stale entries the driver never exposed */
        fake_guest_put16(&E.g, avail_entry((uint16_t)i), 0);
    svq_set_avail_hint(&E.q, 4, false);
    struct vq_elem e;
    for (unsigned i = 0; i < 4; i++)
        cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(E.g.faults, 0);
    cr_assert_eq(pop(&e), VQ_BROKEN);
    expect_broken_silent(VS_REASON_NOTIFY_DATA_AHEAD);

    /* a driver that moves idx backwards is still AVAIL_IDX_JUMP, hint or not */
    env_setup(8, false, false);
    for (unsigned i = 0; i < 2; i++)
        drv_add1(BUFS, 8, true);
    svq_set_avail_hint(&E.q, 2, false);
    for (unsigned i = 0; i < 2; i++)
        cr_assert_eq(pop(&e), VQ_OK);
    fake_guest_put16(&E.g, AVAIL_RING + 2, 0xfff0);
    cr_assert_eq(pop(&e), VQ_BROKEN);
    expect_broken_silent(VS_REASON_AVAIL_IDX_JUMP);
}
