/* test_vq_contract.c -- the ring contract: what the spec asks of every virtqueue
 * format, written once against struct vq_ops (vq.h) and run over both formats.
 *
 * The rule for where a device-side ring test lives:
 *  - here, when the behaviour is the same for both formats as the device offers it
 *    through vq_ops and as a driver observes it (buffers seen in order, chains,
 *    indirect tables, hostile input ending in a named vs_reason, wrap-around of the
 *    ring and of the 16-bit indices, used lengths and order, event suppression
 *    decisions, fetch batch sizes, statistics);
 *  - in test_packed_vq.c / test_split_vq.c, when it checks the format's own wire
 *    layout or state (wrap counters and descriptor flags, the available ring's cached
 *    idx, which write publishes a batch, the vhost-user position encoding, ...), or
 *    needs descriptors a well-behaved driver helper cannot write.
 *
 * Every test is instantiated twice by CONTRACT(name): vq_contract_packed/name and
 * vq_contract_split/name. A per-format driver side (struct fmt) places buffers the way
 * "Supplying Buffers to The Device" describes for that format ("Packed Virtqueues" /
 * "Split Virtqueues") and reads used buffers back the way "Receiving Used Buffers From
 * The Device" does. Buffer ids: the split format's id is the head descriptor's index;
 * the packed driver here picks the head slot as the id too, so both formats return the
 * same ids for the same sequence of buffers.
 *
 * Spec sections are cited per test as "Packed: ... / Split: ..." where they differ.
 */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/fake_guest.h"
#include "packed_vq.h"
#include "split_vq.h"
#include "virtio_wire.h"

/* Guest memory layout, the same for both formats. */
#define G_BASE      0x100000ull
#define G_SIZE      0x100000ull
#define DESC_AREA   (G_BASE + 0x1000)  /* Descriptor Area: up to 512 descriptors */
#define DRIVER_AREA (G_BASE + 0x3000)  /* packed: driver event suppression; split: avail ring */
#define DEVICE_AREA (G_BASE + 0x4000)  /* packed: device event suppression; split: used ring */
#define TABLES      (G_BASE + 0x40000) /* indirect tables */
#define BUFS        (G_BASE + 0x80000) /* buffer addresses (never read by the kernels) */
#define MAX_SEGS    64u
#define MAX_SIZE    128u

struct tseg {
    uint64_t addr;
    uint32_t len;
    bool w;
};

/* Driver-side helpers of one format. */
struct fmt {
    const struct vq_ops *ops;
    /* Make a buffer available as a chain of n descriptors; returns its id. */
    uint16_t (*add_chain)(const struct tseg *s, unsigned n);
    /* Make a buffer available through an indirect table of n entries at `table`; the
     * ring descriptor's len is table_len (16 * n when 0) and carries extra_flags. */
    uint16_t (*add_indirect)(uint64_t table, const struct tseg *s, unsigned n,
                             uint16_t extra_flags, uint32_t table_len);
    /* Take the next used buffer the device published, if any. */
    bool (*take_used)(uint16_t *id, uint32_t *len);
    /* Used buffer notification suppression as the driver sets it: wanted / not wanted
     * (without EVENT_IDX), or wanted once the device has used the buffer that takes
     * used position k (counted from 0 since init, one-slot buffers). */
    void (*want_used_notifications)(bool on);
    void (*want_used_event_at)(uint32_t k);
    /* Available buffer notification: must the driver notify after making its next
     * buffer available? */
    bool (*must_notify)(void);
    /* NOTIFICATION_DATA as the driver would send it now (its next position). */
    void (*hint_driver_position)(void);
    uint32_t (*hint_count)(void);
    /* Point the device at the next descriptor without writing it (split: expose its
     * index in the available ring; packed: nothing, the device reads the next slot). */
    void (*announce_unwritten)(void);
    /* Offset of the flags field in a descriptor (packed 14, split 12). */
    unsigned flags_off;
};

static struct {
    const struct fmt *f;
    struct fake_guest g;
    struct vs_guest_ops ops;
    union {
        struct pvq p;
        struct svq s;
    } q;
    struct vq_config cfg;
    struct vq_seg segs[MAX_SEGS];
    /* packed driver */
    uint16_t p_next_avail, p_next_used;
    bool p_avail_wrap, p_used_wrap;
    uint16_t p_slots[MAX_SIZE]; /* slots of the buffer whose id (head slot) is i */
    /* split driver */
    uint16_t s_avail_idx, s_last_used, s_next_desc;
    /* env_setup_fetch's VIRTIO_F_IN_ORDER (set before the call; setup clears it) */
    bool fetch_in_order;
} E;

static void *Q(void)
{
    return &E.q;
}

static const struct vq_ops *OPS(void)
{
    return E.f->ops;
}

static const struct vq_stats *ST(void)
{
    return OPS()->stats(Q());
}

static void env_setup_cfg(const struct fmt *f, const struct vq_config *cfg)
{
    if (E.g.mem)
        fake_guest_free(&E.g);
    memset(&E, 0, sizeof E);
    E.f = f;
    fake_guest_init(&E.g, G_BASE, G_SIZE);
    E.ops = fake_guest_ops(&E.g);
    E.cfg = *cfg;
    OPS()->init(Q(), &E.cfg);
    E.p_avail_wrap = E.p_used_wrap = true;
}

static struct vq_config base_cfg(uint16_t size)
{
    cr_assert_leq(size, MAX_SIZE);
    return (struct vq_config){
        .size = size,
        .desc_addr = DESC_AREA,
        .driver_addr = DRIVER_AREA,
        .device_addr = DEVICE_AREA,
    };
}

static void env_setup(const struct fmt *f, uint16_t size, bool indirect, bool event_idx)
{
    struct vq_config cfg = base_cfg(size);
    cfg.indirect_desc = indirect;
    cfg.event_idx = event_idx;
    cr_assert_eq(f->ops->check_config(&cfg, 1024), VS_REASON_NONE);
    env_setup_cfg(f, &cfg);
}

static void env_setup_fetch(const struct fmt *f, uint16_t size, uint16_t batch,
                            enum vq_fetch_source src)
{
    struct vq_config cfg = base_cfg(size);
    cfg.indirect_desc = true;
    cfg.in_order = E.fetch_in_order;
    cfg.fetch_batch = batch;
    cfg.fetch_source = src;
    env_setup_cfg(f, &cfg);
}

static void env_teardown(void)
{
    fake_guest_free(&E.g);
}

static void put_desc16(uint64_t a, uint64_t addr, uint32_t len, uint16_t w12, uint16_t w14)
{
    fake_guest_put64(&E.g, a, addr);
    fake_guest_put32(&E.g, a + 8, len);
    fake_guest_put16(&E.g, a + 12, w12);
    fake_guest_put16(&E.g, a + 14, w14);
}

/* ---- packed driver ("Packed Virtqueues / Supplying Buffers to The Device") ---- */

static uint64_t p_slot(uint16_t i)
{
    return E.cfg.desc_addr + 16u * i;
}

static uint16_t p_av(bool wrap)
{
    return wrap ? VIRTQ_DESC_F_AVAIL_MASK : VIRTQ_DESC_F_USED_MASK;
}

static void p_advance(void)
{
    if (++E.p_next_avail >= E.cfg.size) {
        E.p_next_avail = 0;
        E.p_avail_wrap = !E.p_avail_wrap;
    }
}

/* The id (the head slot) goes in the last descriptor; the others carry 0xffff, which
 * the device must not use; the head's flags are written last. */
static uint16_t p_add_chain(const struct tseg *s, unsigned n)
{
    uint16_t first = E.p_next_avail, head_flags = 0;
    for (unsigned i = 0; i < n; i++) {
        uint16_t f = p_av(E.p_avail_wrap);
        if (s[i].w)
            f |= VIRTQ_DESC_F_WRITE_MASK;
        if (i + 1 < n)
            f |= VIRTQ_DESC_F_NEXT_MASK;
        put_desc16(p_slot(E.p_next_avail), s[i].addr, s[i].len, i + 1 == n ? first : 0xffff, 0);
        if (i == 0)
            head_flags = f;
        else
            fake_guest_put16(&E.g, p_slot(E.p_next_avail) + 14, f);
        p_advance();
    }
    fake_guest_put16(&E.g, p_slot(first) + 14, head_flags);
    E.p_slots[first] = (uint16_t)n;
    return first;
}

static uint16_t p_add_indirect(uint64_t table, const struct tseg *s, unsigned n,
                               uint16_t extra_flags, uint32_t table_len)
{
    for (unsigned i = 0; i < n; i++)
        put_desc16(table + 16u * i, s[i].addr, s[i].len, 0xeeee,
                   s[i].w ? VIRTQ_DESC_F_WRITE_MASK : 0);
    uint16_t first = E.p_next_avail;
    put_desc16(p_slot(first), table, table_len ? table_len : 16u * n, first,
               (uint16_t)(VIRTQ_DESC_F_INDIRECT_MASK | extra_flags | p_av(E.p_avail_wrap)));
    p_advance();
    E.p_slots[first] = 1;
    return first;
}

static bool p_take_used(uint16_t *id, uint32_t *len)
{
    uint16_t f = fake_guest_get16(&E.g, p_slot(E.p_next_used) + 14);
    bool a = (f & VIRTQ_DESC_F_AVAIL_MASK) != 0, u = (f & VIRTQ_DESC_F_USED_MASK) != 0;
    if (a != E.p_used_wrap || u != E.p_used_wrap)
        return false;
    *id = fake_guest_get16(&E.g, p_slot(E.p_next_used) + 12);
    *len = fake_guest_get32(&E.g, p_slot(E.p_next_used) + 8);
    cr_assert_lt(*id, E.cfg.size);
    uint16_t step = E.p_slots[*id] ? E.p_slots[*id] : 1;
    E.p_next_used = (uint16_t)(E.p_next_used + step);
    if (E.p_next_used >= E.cfg.size) {
        E.p_next_used = (uint16_t)(E.p_next_used - E.cfg.size);
        E.p_used_wrap = !E.p_used_wrap;
    }
    return true;
}

static void p_set_driver_event(uint16_t flags, uint16_t off, bool wrap)
{
    fake_guest_put16(&E.g, E.cfg.driver_addr, (uint16_t)(off | (wrap ? 0x8000u : 0)));
    fake_guest_put16(&E.g, E.cfg.driver_addr + 2, flags);
}

static void p_want_used_notifications(bool on)
{
    p_set_driver_event(on ? RING_EVENT_FLAGS_ENABLE : RING_EVENT_FLAGS_DISABLE, 0, false);
}

/* Used position k: offset k mod size in lap k / size; lap 0 has wrap counter 1. */
static void p_want_used_event_at(uint32_t k)
{
    p_set_driver_event(RING_EVENT_FLAGS_DESC, (uint16_t)(k % E.cfg.size),
                       (k / E.cfg.size) % 2u == 0);
}

static bool p_must_notify(void)
{
    uint16_t off_wrap = fake_guest_get16(&E.g, E.cfg.device_addr);
    uint16_t flags = fake_guest_get16(&E.g, E.cfg.device_addr + 2) & 0x3u;
    if (flags == RING_EVENT_FLAGS_DISABLE)
        return false;
    if (flags == RING_EVENT_FLAGS_DESC)
        return (off_wrap & 0x7fffu) == E.p_next_avail &&
               ((off_wrap >> 15) != 0) == E.p_avail_wrap;
    return true;
}

static void p_hint_driver_position(void)
{
    E.f->ops->set_avail_hint(Q(), E.p_next_avail, E.p_avail_wrap);
}

static uint32_t p_hint_count(void)
{
    return pvq_hint_count(&E.q.p);
}

static void p_announce_unwritten(void)
{
}

static const struct fmt PACKED = {
    .ops = &packed_vq_ops,
    .add_chain = p_add_chain,
    .add_indirect = p_add_indirect,
    .take_used = p_take_used,
    .want_used_notifications = p_want_used_notifications,
    .want_used_event_at = p_want_used_event_at,
    .must_notify = p_must_notify,
    .hint_driver_position = p_hint_driver_position,
    .hint_count = p_hint_count,
    .announce_unwritten = p_announce_unwritten,
    .flags_off = 14,
};

/* ---- split driver ("Split Virtqueues / Supplying Buffers to The Device") ---- */

static uint64_t s_desc(uint16_t i)
{
    return E.cfg.desc_addr + 16u * i;
}

static uint64_t s_avail_entry(uint16_t idx)
{
    return E.cfg.driver_addr + 4u + 2u * (idx % E.cfg.size);
}

static uint64_t s_used_entry(uint16_t idx)
{
    return E.cfg.device_addr + 4u + 8u * (idx % E.cfg.size);
}

/* "Updating The Available Ring" and "Updating idx": the entry, then idx. */
static void s_expose(uint16_t head)
{
    fake_guest_put16(&E.g, s_avail_entry(E.s_avail_idx), head);
    E.s_avail_idx++;
    fake_guest_put16(&E.g, E.cfg.driver_addr + 2, E.s_avail_idx);
}

static uint16_t s_alloc(void)
{
    uint16_t d = E.s_next_desc;
    E.s_next_desc = (uint16_t)((E.s_next_desc + 1u) % E.cfg.size);
    return d;
}

static uint16_t s_add_chain(const struct tseg *s, unsigned n)
{
    uint16_t head = s_alloc(), cur = head;
    for (unsigned i = 0; i < n; i++) {
        uint16_t flags = s[i].w ? VIRTQ_DESC_F_WRITE_MASK : 0, next = 0;
        if (i + 1 < n) {
            flags |= VIRTQ_DESC_F_NEXT_MASK;
            next = s_alloc();
        }
        put_desc16(s_desc(cur), s[i].addr, s[i].len, flags, next);
        cur = next;
    }
    s_expose(head);
    return head;
}

static uint16_t s_add_indirect(uint64_t table, const struct tseg *s, unsigned n,
                               uint16_t extra_flags, uint32_t table_len)
{
    for (unsigned i = 0; i < n; i++)
        put_desc16(table + 16u * i, s[i].addr, s[i].len,
                   (uint16_t)((s[i].w ? VIRTQ_DESC_F_WRITE_MASK : 0) |
                              (i + 1 < n ? VIRTQ_DESC_F_NEXT_MASK : 0)),
                   (uint16_t)(i + 1 < n ? i + 1 : 0));
    uint16_t head = s_alloc();
    uint16_t next = 0;
    if (extra_flags & VIRTQ_DESC_F_NEXT_MASK)
        next = (uint16_t)((head + 1u) % E.cfg.size);
    put_desc16(s_desc(head), table, table_len ? table_len : 16u * n,
               (uint16_t)(VIRTQ_DESC_F_INDIRECT_MASK | extra_flags), next);
    s_expose(head);
    return head;
}

static bool s_take_used(uint16_t *id, uint32_t *len)
{
    if (fake_guest_get16(&E.g, E.cfg.device_addr + 2) == E.s_last_used)
        return false;
    uint32_t id32 = fake_guest_get32(&E.g, s_used_entry(E.s_last_used));
    cr_assert_lt(id32, E.cfg.size);
    *id = (uint16_t)id32;
    *len = fake_guest_get32(&E.g, s_used_entry(E.s_last_used) + 4);
    E.s_last_used++;
    return true;
}

static void s_want_used_notifications(bool on)
{
    fake_guest_put16(&E.g, E.cfg.driver_addr, on ? 0 : VIRTQ_AVAIL_F_NO_INTERRUPT_MASK);
}

static void s_want_used_event_at(uint32_t k)
{
    fake_guest_put16(&E.g, E.cfg.driver_addr + 4u + 2u * E.cfg.size, (uint16_t)k);
}

/* Without EVENT_IDX: used->flags NO_NOTIFY; with it: vring_need_event(avail_event,
 * idx + 1, idx), that is avail_event == idx. */
static bool s_must_notify(void)
{
    if (E.cfg.event_idx)
        return fake_guest_get16(&E.g, E.cfg.device_addr + 4u + 8u * E.cfg.size) == E.s_avail_idx;
    return (fake_guest_get16(&E.g, E.cfg.device_addr) & VIRTQ_USED_F_NO_NOTIFY_MASK) == 0;
}

static void s_hint_driver_position(void)
{
    E.f->ops->set_avail_hint(Q(), E.s_avail_idx & 0x7fffu, (E.s_avail_idx >> 15) != 0);
}

static uint32_t s_hint_count(void)
{
    return svq_hint_count(&E.q.s);
}

static void s_announce_unwritten(void)
{
    s_expose(s_alloc());
}

static const struct fmt SPLIT = {
    .ops = &split_vq_ops,
    .add_chain = s_add_chain,
    .add_indirect = s_add_indirect,
    .take_used = s_take_used,
    .want_used_notifications = s_want_used_notifications,
    .want_used_event_at = s_want_used_event_at,
    .must_notify = s_must_notify,
    .hint_driver_position = s_hint_driver_position,
    .hint_count = s_hint_count,
    .announce_unwritten = s_announce_unwritten,
    .flags_off = 12,
};

/* ---- common helpers ---- */

static uint16_t add1(uint64_t addr, uint32_t len, bool w)
{
    struct tseg s = {addr, len, w};
    return E.f->add_chain(&s, 1);
}

static enum vq_status pop(struct vq_elem *e)
{
    return OPS()->pop(Q(), &E.ops, e, E.segs, MAX_SEGS);
}

static enum vq_status push(const struct vq_elem *e, uint32_t len)
{
    return OPS()->push(Q(), &E.ops, e, len);
}

static enum vq_status flush(void)
{
    return OPS()->flush(Q(), &E.ops);
}

static bool peek(void)
{
    bool avail = false;
    cr_assert_eq(OPS()->peek(Q(), &E.ops, &avail), VQ_OK);
    return avail;
}

static bool decide(void)
{
    bool irq = false;
    cr_assert_eq(OPS()->should_interrupt(Q(), &E.ops, &irq), VQ_OK);
    return irq;
}

static void take(uint16_t want_id, uint32_t want_len)
{
    uint16_t id;
    uint32_t len;
    cr_assert(E.f->take_used(&id, &len), "%s: no used buffer (want id %u)", OPS()->name, want_id);
    cr_assert_eq(id, want_id, "%s: used id %u, want %u", OPS()->name, id, want_id);
    cr_assert_eq(len, want_len, "%s: used len %u, want %u", OPS()->name, len, want_len);
}

static bool used_ready(void)
{
    /* Peek without consuming: take and restore the driver's cursor. */
    uint16_t pu = E.p_next_used, sl = E.s_last_used;
    bool pw = E.p_used_wrap;
    uint16_t id;
    uint32_t len;
    bool r = E.f->take_used(&id, &len);
    E.p_next_used = pu;
    E.p_used_wrap = pw;
    E.s_last_used = sl;
    return r;
}

/* n one-slot buffers made available, popped, pushed and flushed; the driver takes
 * them back. n may exceed the ring size. */
static void publish(unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct vq_elem e;
        add1(BUFS, 8, true);
        cr_assert_eq(pop(&e), VQ_OK);
        cr_assert_eq(push(&e, 8), VQ_OK);
        if ((i + 1) % E.cfg.size == 0 || i + 1 == n) {
            /* a ring's worth at most in flight: the driver takes them back before it
             * reuses the slots */
            cr_assert_eq(flush(), VQ_OK);
            uint16_t id;
            uint32_t len;
            while (E.f->take_used(&id, &len))
                ;
        }
    }
}

/* The queue is broken for `why`, stays broken, and no entry point touches memory. */
static void expect_broken_silent(enum vs_reason why)
{
    cr_assert_eq(OPS()->broken(Q()), why, "%s: broken = %s, expected %s", OPS()->name,
                 vs_reason_name(OPS()->broken(Q())), vs_reason_name(why));
    uint64_t before = fake_guest_accesses(&E.g);
    struct vq_elem e = {.id = 0, .slots = 1};
    bool b = true;
    cr_assert_eq(pop(&e), VQ_BROKEN);
    cr_assert_eq(OPS()->peek(Q(), &E.ops, &b), VQ_BROKEN);
    cr_assert_not(b);
    e = (struct vq_elem){.id = 0, .slots = 1};
    cr_assert_eq(push(&e, 0), VQ_BROKEN);
    cr_assert_eq(flush(), VQ_BROKEN);
    b = true;
    cr_assert_eq(OPS()->should_interrupt(Q(), &E.ops, &b), VQ_BROKEN);
    cr_assert_not(b);
    cr_assert_eq(OPS()->set_notifications(Q(), &E.ops, true), VQ_BROKEN);
    cr_assert_eq(OPS()->set_notifications(Q(), &E.ops, false), VQ_BROKEN);
    cr_assert_eq(fake_guest_accesses(&E.g), before, "a broken queue accessed guest memory");
    cr_assert_eq(OPS()->broken(Q()), why, "breakage reason is not sticky");
}

/* Pop must break the queue with `why` and consume nothing. */
static void expect_pop_breaks(enum vs_reason why)
{
    struct vq_elem e;
    uint32_t pos = OPS()->position(Q());
    uint64_t popped = ST()->buffers_popped;
    cr_assert_eq(pop(&e), VQ_BROKEN, "%s: pop did not break (expected %s)", OPS()->name,
                 vs_reason_name(why));
    cr_assert_eq(OPS()->position(Q()), pos, "a rejected buffer must not be consumed");
    cr_assert_eq(ST()->buffers_popped, popped);
    expect_broken_silent(why);
}

/* One test body, two tests: vq_contract_packed/name and vq_contract_split/name. */
#define CONTRACT(name)                                                                    \
    static void name(const struct fmt *F);                                                \
    Test(vq_contract_packed, name, .fini = env_teardown) { name(&PACKED); }              \
    Test(vq_contract_split, name, .fini = env_teardown) { name(&SPLIT); }                \
    static void name(const struct fmt *F)

/* ==== the table ==== */

/* Basic Facilities of a Virtio Device / Virtqueues (one table of functions per format;
 * the device never asks which one a queue uses) */
CONTRACT(ops_table_is_complete)
{
    const struct vq_ops *o = F->ops;
    cr_assert_not_null(o->name);
    cr_assert(o->check_config && o->init && o->peek && o->pop && o->push && o->flush &&
              o->should_interrupt && o->recheck_driver_event && o->set_notifications &&
              o->set_avail_hint && o->pending && o->position && o->resume_at && o->broken &&
              o->stats);
    cr_assert_str_eq(o->name, F == &PACKED ? "packed" : "split");
}

/* ==== configuration ==== */

/* Packed: Structure Size and Alignment / Split: Virtqueues (Queue Size at most 32768,
 * at most the device's maximum, never 0; descriptors aligned to 16 bytes; a ring that
 * runs past 2^64 is refused) */
CONTRACT(check_config_common_rules)
{
    struct vq_config c = {.size = 256, .desc_addr = 0x1000, .driver_addr = 0x2004,
                          .device_addr = 0x3008};
    cr_assert_eq(F->ops->check_config(&c, 256), VS_REASON_NONE);
    cr_assert_eq(F->ops->check_config(&c, 255), VS_REASON_QUEUE_SIZE_INVALID);
    c.size = 0;
    cr_assert_eq(F->ops->check_config(&c, 256), VS_REASON_QUEUE_SIZE_INVALID);
    c.size = 32768;
    cr_assert_eq(F->ops->check_config(&c, 65535), VS_REASON_NONE);
    c.size = 32769;
    cr_assert_eq(F->ops->check_config(&c, 65535), VS_REASON_QUEUE_SIZE_INVALID);
    c.size = 16;
    c.desc_addr = 0x1008;
    cr_assert_eq(F->ops->check_config(&c, 256), VS_REASON_RING_MISALIGNED);
    c.desc_addr = 0x1000;
    c.driver_addr = 0x2001;
    cr_assert_eq(F->ops->check_config(&c, 256), VS_REASON_RING_MISALIGNED);
    c.driver_addr = 0x2000;
    c.device_addr = 0x3001;
    cr_assert_eq(F->ops->check_config(&c, 256), VS_REASON_RING_MISALIGNED);
    c.device_addr = 0x3000;
    c.desc_addr = UINT64_MAX - 0xef; /* aligned, but 16 descriptors run past 2^64 */
    cr_assert_eq(F->ops->check_config(&c, 256), VS_REASON_DMA_OUT_OF_RANGE);
    c.desc_addr = UINT64_MAX - 15; /* one descriptor fits, four do not */
    c.size = 4;
    cr_assert_eq(F->ops->check_config(&c, 4), VS_REASON_DMA_OUT_OF_RANGE);
}

/* Packed: Driver and Device Ring Wrap Counters / Split: The Virtqueue Available Ring
 * ("This starts at 0"): a new queue is healthy, empty, at position 0 of its first lap,
 * and init touches no guest memory */
CONTRACT(init_state)
{
    env_setup(F, 8, false, false);
    cr_assert_eq(F->ops->broken(Q()), VS_REASON_NONE);
    cr_assert_eq(F->ops->pending(Q()), 0);
    cr_assert_eq(F->hint_count(), 0, "no hint");
    const struct vq_stats *st = ST();
    cr_assert_eq(st->buffers_popped + st->used_pushed + st->flushes + st->descs_read, 0);
    cr_assert_eq(fake_guest_accesses(&E.g), 0, "init must not touch guest memory");
}

/* Packed: Structure Size and Alignment / Split: Virtqueues (a queue enabled with an
 * impossible size is broken at once, and a hint cannot revive it) */
CONTRACT(init_with_impossible_size_is_broken)
{
    struct vq_config c = {.size = 0, .desc_addr = DESC_AREA};
    E.f = F;
    F->ops->init(Q(), &c);
    cr_assert_eq(F->ops->broken(Q()), VS_REASON_QUEUE_SIZE_INVALID);
    F->ops->set_avail_hint(Q(), 0, false);
    cr_assert_eq(F->hint_count(), 0);
    c.size = 32769;
    F->ops->init(Q(), &c);
    cr_assert_eq(F->ops->broken(Q()), VS_REASON_QUEUE_SIZE_INVALID);
}

/* ==== availability ==== */

/* Packed: The Virtqueue Descriptor Format (a zeroed ring) / Split: The Virtqueue
 * Available Ring (idx starts at 0): nothing is available, nothing is consumed */
CONTRACT(zeroed_ring_is_empty)
{
    env_setup(F, 4, false, false);
    struct vq_elem e;
    uint32_t pos = F->ops->position(Q());
    cr_assert_not(peek());
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_eq(F->ops->position(Q()), pos);
    cr_assert_eq(ST()->buffers_popped, 0);
    cr_assert_eq(E.g.faults, 0);
}

/* Packed: Write Flag / Split: The Virtqueue Descriptor Table (one-descriptor buffers,
 * device-readable and device-writable, in the order the driver made them available) */
CONTRACT(single_descriptor_buffers)
{
    env_setup(F, 8, false, false);
    struct vq_elem e;
    uint16_t a = add1(BUFS, 100, false);
    uint16_t b = add1(BUFS + 0x1000, 1500, true);
    cr_assert(peek());
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, a);
    cr_assert_eq(e.head, 0);
    cr_assert_eq(e.slots, 1);
    cr_assert_eq(e.nsegs, 1);
    cr_assert_not(e.indirect);
    cr_assert_eq(e.readable_bytes, 100);
    cr_assert_eq(e.writable_bytes, 0);
    cr_assert_eq(E.segs[0].addr, BUFS);
    cr_assert_eq(E.segs[0].len, 100);
    cr_assert_not(E.segs[0].device_writable);

    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, b);
    cr_assert_eq(e.head, 1);
    cr_assert_eq(e.readable_bytes, 0);
    cr_assert_eq(e.writable_bytes, 1500);
    cr_assert(E.segs[0].device_writable);
    cr_assert_eq(ST()->descs_read, 2);

    /* (what an empty look at the ring counts in descs_read differs: the packed device
     * fetched the descriptor to find it unavailable, the split one fetched none) */
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_not(peek());
    cr_assert_eq(ST()->buffers_popped, 2);
}

/* Packed: Element Address and Length / Split: The Virtqueue Descriptor Table (pop
 * reads descriptors, never the buffers they point to) */
CONTRACT(buffers_outside_memory_are_not_read_by_pop)
{
    env_setup(F, 4, false, false);
    struct vq_elem e;
    add1(0xdead00000000ull, 4096, false);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(E.segs[0].addr, 0xdead00000000ull);
    cr_assert_eq(E.g.faults, 0);
    cr_assert_eq(E.g.reads[VS_DMA_BUF_READ], 0);
    cr_assert_eq(E.g.writes[VS_DMA_BUF_WRITE], 0);
    cr_assert_eq(fake_guest_accesses(&E.g), E.g.reads[VS_DMA_DESC_READ],
                 "pop only reads the ring");
}

/* ==== chains ==== */

/* Packed: Next Flag: Descriptor Chaining / Split: The Virtqueue Descriptor Table
 * (a chain is one buffer: its elements in order, readable before writable) */
CONTRACT(chain_is_one_buffer)
{
    env_setup(F, 8, false, false);
    struct vq_elem e;
    struct tseg s[3] = {{BUFS, 12, false}, {BUFS + 0x100, 200, false}, {BUFS + 0x1000, 2048, true}};
    uint16_t id = F->add_chain(s, 3);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, id);
    cr_assert_eq(e.head, 0);
    cr_assert_eq(e.nsegs, 3);
    cr_assert_eq(e.readable_bytes, 212);
    cr_assert_eq(e.writable_bytes, 2048);
    cr_assert_not(e.indirect);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(E.segs[i].addr, s[i].addr);
        cr_assert_eq(E.segs[i].len, s[i].len);
        cr_assert_eq(E.segs[i].device_writable, s[i].w);
    }
    cr_assert_eq(ST()->descs_read, 3);
    cr_assert_eq(ST()->buffers_popped, 1);
    cr_assert_eq(pop(&e), VQ_EMPTY);
}

/* Packed: Scatter-Gather Support / Split: Indirect Descriptors (a list as long as the
 * queue size is allowed; one more lap must not make old descriptors available) */
CONTRACT(chain_of_exactly_queue_size_is_accepted)
{
    env_setup(F, 4, false, false);
    struct vq_elem e;
    struct tseg s[4] = {{BUFS, 1, false}, {BUFS, 1, false}, {BUFS, 1, true}, {BUFS, 1, true}};
    F->add_chain(s, 4);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.nsegs, 4);
    cr_assert_eq(pop(&e), VQ_EMPTY);
}

/* Packed: Next Flag: Descriptor Chaining (a list crossing the ring end) / Split: Updating
 * The Available Ring (entries modulo the size): chains across the end of the ring */
CONTRACT(chain_crossing_ring_end)
{
    env_setup(F, 4, false, false);
    struct vq_elem e;
    publish(2);
    struct tseg s[3] = {{BUFS, 1, false}, {BUFS, 2, true}, {BUFS, 3, true}};
    uint16_t id = F->add_chain(s, 3); /* slots / descriptors 2, 3, 0 */
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, id);
    cr_assert_eq(e.head, 2);
    cr_assert_eq(e.nsegs, 3);
    cr_assert_eq(e.writable_bytes, 5);
    cr_assert_eq(push(&e, 5), VQ_OK);
    cr_assert_eq(flush(), VQ_OK);
    take(id, 5);
    cr_assert_not(used_ready());
}

/* ==== indirect ==== */

/* Packed: Indirect Flag: Scatter-Gather Support / Split: Indirect Descriptors (the
 * table's entries in order; the ring descriptor's WRITE flag is ignored; one slot) */
CONTRACT(indirect_table)
{
    env_setup(F, 8, true, false);
    struct vq_elem e;
    struct tseg s[3] = {{BUFS, 12, false}, {BUFS + 0x100, 300, true}, {BUFS + 0x800, 400, true}};
    uint16_t id = F->add_indirect(TABLES, s, 3, VIRTQ_DESC_F_WRITE_MASK, 0);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert(e.indirect);
    cr_assert_eq(e.id, id);
    cr_assert_eq(e.slots, 1);
    cr_assert_eq(e.nsegs, 3);
    cr_assert_eq(e.readable_bytes, 12);
    cr_assert_eq(e.writable_bytes, 700);
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(E.segs[i].addr, s[i].addr);
        cr_assert_eq(E.segs[i].len, s[i].len);
        cr_assert_eq(E.segs[i].device_writable, s[i].w);
    }
    cr_assert_eq(ST()->indirect_tables, 1);
    cr_assert_eq(ST()->descs_read, 4);
}

/* Packed: Indirect Flag: Scatter-Gather Support / Split: Indirect Descriptors (a table
 * longer than one fetch burst) */
CONTRACT(indirect_table_larger_than_one_burst)
{
    env_setup(F, 64, true, false);
    struct vq_elem e;
    struct tseg s[40];
    for (unsigned i = 0; i < 40; i++)
        s[i] = (struct tseg){BUFS + 0x100u * i, 10 + i, i >= 30};
    F->add_indirect(TABLES, s, 40, 0, 0);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.nsegs, 40);
    cr_assert_eq(E.segs[39].len, 49);
    cr_assert(E.segs[39].device_writable);
    cr_assert_eq(e.readable_bytes, 30u * 10u + (29u * 30u) / 2u);
    cr_assert_eq(ST()->descs_read, 41);
}

/* Packed: Scatter-Gather Support / Split: Indirect Descriptors (direct and indirect
 * buffers mixed in one ring) */
CONTRACT(indirect_and_direct_buffers_mixed)
{
    env_setup(F, 8, true, false);
    struct vq_elem e;
    struct tseg t[2] = {{BUFS, 8, false}, {BUFS, 8, true}};
    uint16_t a = add1(BUFS, 64, false);
    uint16_t b = F->add_indirect(TABLES, t, 2, 0, 0);
    uint16_t c = F->add_chain(t, 2);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_not(e.indirect);
    cr_assert_eq(e.id, a);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert(e.indirect);
    cr_assert_eq(e.id, b);
    cr_assert_eq(e.slots, 1);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_not(e.indirect);
    cr_assert_eq(e.id, c);
    cr_assert_eq(e.nsegs, 2);
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_eq(ST()->buffers_popped, 3);
    cr_assert_eq(ST()->indirect_tables, 1);
}

/* ==== used write-back ==== */

/* Packed: Receiving Used Buffers From The Device ; Multi-buffer requests / Split: The
 * Virtqueue Used Ring (len set before idx): nothing pushed is visible to the driver
 * before the flush; then every buffer is, with its id and written length */
CONTRACT(used_visible_only_after_flush)
{
    env_setup(F, 8, false, false);
    struct vq_elem e[3];
    struct tseg two[2] = {{BUFS, 10, false}, {BUFS, 20, true}};
    uint16_t ids[3];
    ids[0] = F->add_chain(two, 2);
    ids[1] = add1(BUFS, 30, true);
    ids[2] = add1(BUFS, 40, true);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pop(&e[i]), VQ_OK);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(push(&e[i], (uint32_t)(5 + i)), VQ_OK);
    cr_assert_eq(F->ops->pending(Q()), 3);
    cr_assert_not(used_ready(), "a pushed buffer is visible before the flush");
    cr_assert_eq(flush(), VQ_OK);
    cr_assert_eq(F->ops->pending(Q()), 0);
    for (int i = 0; i < 3; i++)
        take(ids[i], (uint32_t)(5 + i));
    cr_assert_not(used_ready());
    cr_assert_eq(ST()->used_pushed, 3);
    cr_assert_eq(ST()->flushes, 1);
}

/* Packed: Virtqueues ("used descriptors are written in the order processing
 * completes") / Split: The Virtqueue Used Ring (elements in completion order; id =
 * buffer id, len = bytes written) */
CONTRACT(used_in_completion_order)
{
    env_setup(F, 8, false, false);
    struct vq_elem e[3];
    struct tseg two[2] = {{BUFS, 10, false}, {BUFS, 20, true}};
    uint16_t h0 = add1(BUFS, 1, true);
    uint16_t h1 = F->add_chain(two, 2);
    uint16_t h2 = add1(BUFS, 1, true);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pop(&e[i]), VQ_OK);
    cr_assert_eq(push(&e[2], 1), VQ_OK);
    cr_assert_eq(push(&e[0], 0), VQ_OK);
    cr_assert_eq(push(&e[1], 20), VQ_OK);
    cr_assert_eq(flush(), VQ_OK);
    take(h2, 1);
    take(h0, 0);
    take(h1, 20);
    cr_assert_not(used_ready());
    /* the ring is whole again: the next buffers go where the driver expects */
    uint16_t h3 = add1(BUFS, 1, true);
    cr_assert_eq(pop(&e[0]), VQ_OK);
    cr_assert_eq(e[0].id, h3);
    cr_assert_eq(push(&e[0], 1), VQ_OK);
    cr_assert_eq(flush(), VQ_OK);
    take(h3, 1);
}

/* Packed / Split: Receiving Used Buffers From The Device (a flush with nothing pushed
 * writes nothing and counts nothing) */
CONTRACT(flush_of_empty_batch_is_a_noop)
{
    env_setup(F, 4, false, false);
    cr_assert_eq(flush(), VQ_OK);
    cr_assert_eq(fake_guest_accesses(&E.g), 0);
    cr_assert_eq(ST()->flushes, 0);
}

/* ==== wrap-around ==== */

/* Runs `buffers` requests through a ring of `size`, mixing single descriptors and
 * chains of 2 and 3 (every fourth through an indirect table when negotiated), up to
 * `batch` buffers per round, each popped, pushed, flushed and taken back in order. */
static void run_laps(const struct fmt *F, uint16_t size, unsigned buffers, unsigned batch,
                     bool indirect)
{
    env_setup(F, size, indirect, false);
    const unsigned lens[3] = {1, 2, 3};
    unsigned done = 0, bufno = 0;
    while (done < buffers) {
        unsigned slots = 0, n = 0;
        uint16_t ids[16];
        while (n < batch && done + n < buffers) {
            unsigned k = lens[bufno % 3] <= size ? lens[bufno % 3] : size;
            bool ind = indirect && bufno % 4 == 3;
            unsigned cost = ind ? 1 : k;
            if (slots + cost > size)
                break;
            struct tseg s[3] = {{BUFS, 100, false}, {BUFS, 200, true}, {BUFS, 300, true}};
            if (k == 1)
                s[0].w = true;
            ids[n++] = ind ? F->add_indirect(TABLES + 0x100u * (bufno % 16), s, k, 0, 0)
                           : F->add_chain(s, k);
            slots += cost;
            bufno++;
        }
        cr_assert_gt(n, 0);
        struct vq_elem e[16];
        for (unsigned i = 0; i < n; i++) {
            cr_assert_eq(pop(&e[i]), VQ_OK, "pop %u", done + i);
            cr_assert_eq(e[i].id, ids[i]);
        }
        struct vq_elem extra;
        cr_assert_eq(pop(&extra), VQ_EMPTY);
        for (unsigned i = 0; i < n; i++)
            cr_assert_eq(push(&e[i], e[i].writable_bytes), VQ_OK);
        cr_assert_eq(flush(), VQ_OK);
        for (unsigned i = 0; i < n; i++)
            take(ids[i], e[i].writable_bytes);
        cr_assert_not(used_ready());
        done += n;
    }
    cr_assert_eq(ST()->buffers_popped, buffers);
    cr_assert_eq(ST()->used_pushed, buffers);
    cr_assert_eq(F->ops->broken(Q()), VS_REASON_NONE);
}

/* Packed: Driver and Device Ring Wrap Counters / Split: Updating The Available Ring
 * (ring entry = idx % size): many laps of a ring of 4, one buffer at a time */
CONTRACT(ring_wrap_size_4_many_laps)
{
    run_laps(F, 4, 40, 1, false);
    cr_assert_gt(ST()->descs_read, 10u * 4);
}

/* Packed: Driver and Device Ring Wrap Counters / Split: Updating The Available Ring
 * (batches that end anywhere in the ring, with indirect buffers) */
CONTRACT(ring_wrap_size_4_batched)
{
    run_laps(F, 4, 60, 3, false);
    run_laps(F, 4, 60, 4, true);
    cr_assert_gt(ST()->indirect_tables, 0);
}

/* Packed: Driver and Device Ring Wrap Counters / Split: Updating idx ("idx always
 * increments, and wraps naturally at 65536"): 70000 buffers through a ring of 4 carry
 * the split indices across 65535 -> 0 and flip the packed wrap counters thousands of
 * times */
CONTRACT(index_wrap_16_bit)
{
    run_laps(F, 4, 70000, 3, true);
}

/* Packed: Driver and Device Ring Wrap Counters / Split: Supplying Buffers to The
 * Device (a full ring: every slot available at once, used, then refilled) */
CONTRACT(full_ring_then_refill)
{
    env_setup(F, 4, false, false);
    struct vq_elem e[4];
    uint16_t ids[4];
    for (int i = 0; i < 4; i++)
        ids[i] = add1(BUFS, 10, true);
    cr_assert(peek());
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pop(&e[i]), VQ_OK);
        cr_assert_eq(e[i].id, ids[i]);
    }
    cr_assert_eq(pop(&e[0]), VQ_EMPTY);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(push(&e[i], 10), VQ_OK);
    cr_assert_eq(flush(), VQ_OK);
    for (int i = 0; i < 4; i++)
        take(ids[i], 10);
    /* used entries must not look available on the next lap */
    cr_assert_eq(pop(&e[0]), VQ_EMPTY);
    uint16_t id = add1(BUFS, 10, true);
    cr_assert_eq(pop(&e[0]), VQ_OK);
    cr_assert_eq(e[0].id, id);
}

/* ==== used buffer notification suppression ==== */

/* Packed: Driver and Device Event Suppression (ENABLE / DISABLE) / Split: Used Buffer
 * Notification Suppression (flags NO_INTERRUPT): one read of the driver's fields per
 * decision, none when nothing was published since the last one, and nothing to decide
 * for pushed-but-unflushed buffers */
CONTRACT(used_notifications_enable_disable)
{
    env_setup(F, 8, false, false);
    F->want_used_notifications(true);
    publish(1);
    cr_assert(decide(), "enabled: the device MUST notify");
    cr_assert_eq(E.g.reads[VS_DMA_EVENT_READ], 1);
    F->want_used_notifications(false);
    publish(2);
    cr_assert_not(decide());
    cr_assert_eq(ST()->interrupts_suppressed, 1);
    cr_assert_eq(ST()->event_reads, 2);
    /* nothing published since the last decision: no interrupt and no read */
    F->want_used_notifications(true);
    cr_assert_not(decide());
    cr_assert_eq(E.g.reads[VS_DMA_EVENT_READ], 2);
    cr_assert_eq(ST()->interrupts_suppressed, 1);
    /* pushed but not flushed: nothing to decide yet */
    struct vq_elem e;
    add1(BUFS, 1, true);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(push(&e, 1), VQ_OK);
    cr_assert_not(decide());
    cr_assert_eq(flush(), VQ_OK);
    cr_assert(decide());
    cr_assert_eq(ST()->used_pushed, 4);
}

/* Packed: Driver and Device Event Suppression (RING_EVENT_FLAGS_DESC, off_wrap) /
 * Split: Used Buffer Notification Suppression (used_event, vring_need_event): with
 * EVENT_IDX the device notifies when the buffer at the driver's event position was
 * published since its last decision -- reached in the middle of a batch, at its last
 * buffer, not yet (the next one), already passed, and across the ring's end */
CONTRACT(used_event_with_event_idx)
{
    env_setup(F, 8, false, true);
    F->want_used_event_at(2);
    publish(2); /* 0, 1 */
    cr_assert_not(decide());
    publish(1); /* 2 */
    cr_assert(decide());
    publish(3); /* 3..5: 2 already passed */
    cr_assert_not(decide());
    F->want_used_event_at(7);
    publish(1); /* 6 */
    cr_assert_not(decide());
    publish(3); /* 7..9: 7 in the middle, across the ring's end */
    cr_assert(decide());
    F->want_used_event_at(9); /* the one before this range */
    publish(4);               /* 10..13 */
    cr_assert_not(decide());
    F->want_used_event_at(15);
    publish(2); /* 14, 15: the last of the range */
    cr_assert(decide());
    F->want_used_event_at(17);
    publish(1); /* 16: the event is the next one */
    cr_assert_not(decide());
    cr_assert_eq(ST()->interrupts_suppressed, 5);
    cr_assert_eq(ST()->event_reads, 8);
    cr_assert_eq(E.g.reads[VS_DMA_EVENT_READ], 8);
}

/* Packed: Driver and Device Event Suppression / Split: Used Buffer Notification
 * Suppression (a chain or an indirect buffer is one used buffer; an event at it fires) */
CONTRACT(used_event_at_a_chain)
{
    env_setup(F, 8, true, true);
    struct tseg s[3] = {{BUFS, 1, false}, {BUFS, 1, true}, {BUFS, 1, true}};
    F->add_chain(s, 3);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(push(&e, 1), VQ_OK);
    cr_assert_eq(flush(), VQ_OK);
    F->want_used_event_at(0);
    cr_assert(decide());
}

/* ==== available buffer notification suppression ==== */

/* Packed: Driver and Device Event Suppression (the device writes the Device Area) /
 * Split: Available Buffer Notification Suppression (used->flags, avail_event): with
 * and without EVENT_IDX, enabling makes the driver notify for its next buffer, and
 * disabling spares it once it is past the device's position */
static void notifications_wanted(const struct fmt *F, bool event_idx)
{
    env_setup(F, 8, false, event_idx);
    struct vq_elem e;
    cr_assert_eq(F->ops->set_notifications(Q(), &E.ops, true), VQ_OK);
    cr_assert(F->must_notify());
    cr_assert_gt(ST()->event_writes, 0);
    for (int i = 0; i < 3; i++) {
        add1(BUFS, 8, false);
        cr_assert_eq(pop(&e), VQ_OK);
    }
    cr_assert_eq(F->ops->set_notifications(Q(), &E.ops, true), VQ_OK);
    cr_assert(F->must_notify(), "enabled at the device's position 3");
    cr_assert_eq(F->ops->set_notifications(Q(), &E.ops, false), VQ_OK);
    add1(BUFS, 8, false);
    cr_assert_not(F->must_notify());
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(E.g.faults, 0);
    cr_assert_eq(F->ops->broken(Q()), VS_REASON_NONE);
}

CONTRACT(available_notifications_without_event_idx)
{
    notifications_wanted(F, false);
}

CONTRACT(available_notifications_with_event_idx)
{
    notifications_wanted(F, true);
}

/* ==== NOTIFICATION_DATA hint ==== */

/* Driver Notifications (next_off / next_wrap: packed, the next descriptor offset and
 * wrap counter; split, the next available idx): a hint at the driver's position counts
 * the buffers it made available, none when it is where the device is */
CONTRACT(hint_counts_what_the_driver_made_available)
{
    env_setup(F, 8, false, false);
    F->hint_driver_position();
    cr_assert_eq(F->hint_count(), 0, "same position: nothing");
    for (int i = 0; i < 3; i++)
        add1(BUFS, 8, false);
    F->hint_driver_position();
    cr_assert_eq(F->hint_count(), 3);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_leq(F->hint_count(), 3);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(F->hint_count(), 0, "a hint the device reached counts nothing");
    cr_assert_eq(E.g.faults, 0);
}

/* ==== fetch unit ==== */

/* vq.h fetch sources (the device's design; the spec leaves it open) over "Driver
 * Notifications": FETCH_ONE reads one entry per read */
CONTRACT(fetch_one_reads_one_entry_per_read)
{
    env_setup_fetch(F, 8, 16, VQ_FETCH_ONE);
    for (int i = 0; i < 4; i++)
        add1(BUFS + 64u * i, 64, false);
    struct vq_elem e;
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(ST()->fetch_reads, 4);
    cr_assert_eq(ST()->fetch_entries, 4);
    cr_assert_eq(ST()->fetch_wasted, 0);
    cr_assert_eq(ST()->fetch_hint_reads, 0);
}

/* Driver Notifications (NOTIFICATION_DATA): FETCH_HINT reads as many entries as the
 * hint says were made available, at most the batch; the rest in the next read */
CONTRACT(fetch_hint_reads_the_hinted_count_capped_at_batch)
{
    env_setup_fetch(F, 16, 4, VQ_FETCH_HINT);
    uint16_t ids[6];
    for (int i = 0; i < 6; i++)
        ids[i] = add1(BUFS + 64u * i, 64, false);
    F->hint_driver_position();
    struct vq_elem e;
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(pop(&e), VQ_OK);
        cr_assert_eq(e.id, ids[i]);
        cr_assert_eq(push(&e, 0), VQ_OK);
    }
    cr_assert_eq(flush(), VQ_OK);
    cr_assert_eq(ST()->fetch_reads, 2, "4 + 2");
    cr_assert_eq(ST()->fetch_hint_reads, 2);
    cr_assert_eq(ST()->fetch_wasted, 0);
    cr_assert_eq(F->hint_count(), 0, "the hint is used up");
    for (int i = 0; i < 6; i++)
        take(ids[i], 0);
}

/* Driver Notifications: a batch that passes the ring's end is two reads, to the last
 * entry, then from entry 0; nothing is wasted. Ring sizes 4 and 8, many laps. */
static void batch_across_end(const struct fmt *F, uint16_t size)
{
    env_setup_fetch(F, size, 64, VQ_FETCH_HINT);
    unsigned start = 0;
    for (unsigned lap = 0; lap < 20; lap++) {
        unsigned n = size - 1u - lap % 2u;
        uint16_t ids[16];
        for (unsigned i = 0; i < n; i++)
            ids[i] = add1(BUFS + 64u * i, 64, false);
        F->hint_driver_position();
        uint64_t before = ST()->fetch_reads;
        struct vq_elem e;
        for (unsigned i = 0; i < n; i++) {
            cr_assert_eq(pop(&e), VQ_OK);
            cr_assert_eq(push(&e, 0), VQ_OK);
        }
        cr_assert_eq(flush(), VQ_OK);
        for (unsigned i = 0; i < n; i++)
            take(ids[i], 0);
        cr_assert_eq(ST()->fetch_reads - before, start + n > size ? 2u : 1u,
                     "lap %u: start %u n %u", lap, start, n);
        start = (start + n) % size;
    }
    cr_assert_eq(ST()->fetch_wasted, 0);
}

CONTRACT(fetch_batch_across_ring_end_size_4)
{
    batch_across_end(F, 4);
}

CONTRACT(fetch_batch_across_ring_end_size_8)
{
    batch_across_end(F, 8);
}

/* vq.h fetch sources: chains and indirect tables whose descriptors come from more
 * than one read (packed: descriptor batches; split: entry batches and, with IN_ORDER,
 * descriptor runs) pop exactly as with one per read */
CONTRACT(fetch_chains_and_indirect_across_batches)
{
    E.fetch_in_order = true; /* split: descriptor runs too ("In-order use of descriptors") */
    env_setup_fetch(F, 16, 3, VQ_FETCH_READ_AHEAD);
    struct tseg c[4] = {{BUFS, 10, false}, {BUFS + 100, 20, false}, {BUFS + 200, 30, true},
                        {BUFS + 300, 40, true}};
    uint16_t a = add1(BUFS, 12, false);
    uint16_t b = F->add_chain(c, 4);
    uint16_t d = F->add_indirect(TABLES, c, 3, 0, 0);
    uint16_t g = F->add_chain(c, 2);
    F->hint_driver_position();
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, a);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, b);
    cr_assert_eq(e.nsegs, 4);
    cr_assert_eq(e.readable_bytes, 30);
    cr_assert_eq(e.writable_bytes, 70);
    cr_assert_eq(E.segs[3].addr, BUFS + 300);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, d);
    cr_assert(e.indirect);
    cr_assert_eq(e.nsegs, 3);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, g);
    cr_assert_eq(e.nsegs, 2);
    cr_assert_eq(pop(&e), VQ_EMPTY);
    cr_assert_eq(F->ops->broken(Q()), VS_REASON_NONE);
}

/* Device Reset / queue reset (init again): nothing read ahead under the old
 * configuration is used under the new one */
CONTRACT(fetch_cache_dropped_on_reset)
{
    env_setup_fetch(F, 8, 8, VQ_FETCH_READ_AHEAD);
    for (int i = 0; i < 4; i++)
        add1(BUFS, 64, false);
    F->hint_driver_position();
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    /* the driver resets the queue and starts over with a clean ring */
    F->ops->init(Q(), &E.cfg);
    memset(fake_guest_ptr(&E.g, G_BASE, 0x10000), 0, 0x10000);
    E.p_next_avail = E.p_next_used = 0;
    E.p_avail_wrap = E.p_used_wrap = true;
    E.s_avail_idx = E.s_last_used = E.s_next_desc = 0;
    cr_assert_eq(pop(&e), VQ_EMPTY, "old cached buffers are gone");
    uint16_t id = add1(BUFS + 512, 77, false);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(e.id, id);
    cr_assert_eq(e.readable_bytes, 77);
    cr_assert_eq(pop(&e), VQ_EMPTY);
}

/* Every fetch source and batch gives the same buffers in the same order: the fetch
 * unit is a timing choice, never a behaviour (vq.h) */
CONTRACT(fetch_sources_give_the_same_buffers)
{
    for (unsigned src = 0; src < 3; src++) {
        for (uint16_t batch = 1; batch <= 9; batch += 4) {
            env_setup_fetch(F, 8, batch, (enum vq_fetch_source)src);
            unsigned total = 0;
            for (unsigned round = 0; round < 12; round++) {
                unsigned n = 1u + round % 5u;
                uint16_t ids[8];
                for (unsigned i = 0; i < n; i++)
                    ids[i] = add1(BUFS + 64u * total + i, 64 + i, (i & 1u) != 0);
                if (round % 2)
                    F->hint_driver_position();
                struct vq_elem e[8];
                for (unsigned i = 0; i < n; i++) {
                    cr_assert_eq(pop(&e[i]), VQ_OK, "src %u batch %u round %u", src, batch, round);
                    cr_assert_eq(e[i].id, ids[i]);
                    cr_assert_eq(e[i].readable_bytes + e[i].writable_bytes, 64 + i);
                }
                cr_assert_eq(pop(&e[0]), VQ_EMPTY);
                for (unsigned i = 0; i < n; i++)
                    cr_assert_eq(push(&e[i], e[i].writable_bytes), VQ_OK);
                cr_assert_eq(flush(), VQ_OK);
                for (unsigned i = 0; i < n; i++)
                    take(ids[i], e[i].writable_bytes);
                total += n;
            }
            cr_assert_eq(ST()->buffers_popped, total);
            cr_assert_eq(F->ops->broken(Q()), VS_REASON_NONE);
            cr_assert_eq(E.g.faults, 0);
        }
    }
}

/* ==== statistics ==== */

/* vq.h struct vq_stats: the counters a run reports count the work done -- buffers,
 * descriptors, tables, used buffers, flushes, event reads and writes, suppressed
 * notifications */
CONTRACT(statistics_count_the_work)
{
    env_setup(F, 8, true, false);
    struct tseg t[2] = {{BUFS, 8, false}, {BUFS, 8, true}};
    F->add_chain(t, 2);
    F->add_indirect(TABLES, t, 2, 0, 0);
    struct vq_elem e[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pop(&e[i]), VQ_OK);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(push(&e[i], 8), VQ_OK);
    cr_assert_eq(flush(), VQ_OK);
    F->want_used_notifications(false);
    cr_assert_not(decide());
    cr_assert_eq(F->ops->set_notifications(Q(), &E.ops, false), VQ_OK);
    const struct vq_stats *st = ST();
    cr_assert_eq(st->buffers_popped, 2);
    cr_assert_eq(st->descs_read, 2 + 1 + 2);
    cr_assert_eq(st->indirect_tables, 1);
    cr_assert_eq(st->used_pushed, 2);
    cr_assert_eq(st->flushes, 1);
    cr_assert_eq(st->event_reads, 1);
    cr_assert_eq(st->event_reads_local, 0);
    cr_assert_eq(st->event_writes, 1);
    cr_assert_eq(st->interrupts_suppressed, 1);
    cr_assert_eq(st->interrupts_rechecked, 0);
    cr_assert_eq(st, F->ops->stats(Q()), "one home for the counters");
}

/* ==== hostile drivers: every violation ends in NEEDS_RESET with a named reason ==== */

/* Packed: Element Address and Length / Split: The Virtqueue Descriptor Table (model
 * policy: an empty element is a driver error) */
CONTRACT(hostile_zero_length)
{
    env_setup(F, 4, false, false);
    struct tseg s[2] = {{BUFS, 10, false}, {BUFS, 0, true}};
    F->add_chain(s, 2);
    expect_pop_breaks(VS_REASON_DESC_ZERO_LENGTH);
}

/* Virtqueues / The Virtqueue Descriptor Table (a buffer under 2^32 bytes in total;
 * 2^32 - 1 is allowed) */
CONTRACT(hostile_length_overflow)
{
    env_setup(F, 4, false, false);
    struct tseg s[2] = {{BUFS, 0x80000000u, false}, {BUFS, 0x80000000u, true}};
    F->add_chain(s, 2);
    expect_pop_breaks(VS_REASON_DESC_LENGTH_OVERFLOW);

    env_setup(F, 4, false, false);
    struct tseg ok[2] = {{BUFS, 0x80000000u, false}, {BUFS, 0x7fffffffu, true}};
    F->add_chain(ok, 2);
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK, "2^32 - 1 bytes in total is allowed");
}

/* Packed: Scatter-Gather Support / Split: Message Framing (device-writable elements
 * after the device-readable ones) */
CONTRACT(hostile_read_after_write)
{
    env_setup(F, 4, false, false);
    struct tseg s[3] = {{BUFS, 1, false}, {BUFS, 1, true}, {BUFS, 1, false}};
    F->add_chain(s, 3);
    expect_pop_breaks(VS_REASON_READ_AFTER_WRITE);
}

/* Packed: Scatter-Gather Support / Split: Message Framing (the device MAY limit the
 * elements of a buffer; the walk stops at the limit) */
CONTRACT(hostile_chain_longer_than_max_segs)
{
    env_setup(F, 8, false, false);
    struct tseg s[3] = {{BUFS, 1, false}, {BUFS, 1, false}, {BUFS, 1, false}};
    F->add_chain(s, 3);
    struct vq_elem e;
    struct vq_seg two[2];
    cr_assert_eq(F->ops->pop(Q(), &E.ops, &e, two, 2), VQ_BROKEN);
    cr_assert_eq(ST()->descs_read, 2);
    expect_broken_silent(VS_REASON_CHAIN_TOO_LONG);
}

/* Packed: Scatter-Gather Support / Split: Message Framing (a device limit of 0
 * elements rejects every buffer without writing the caller's array, direct or
 * indirect; the table is not fetched) */
CONTRACT(max_segs_zero_never_writes_segments)
{
    env_setup(F, 4, true, false);
    add1(BUFS, 8, false);
    struct vq_elem e;
    cr_assert_eq(F->ops->pop(Q(), &E.ops, &e, NULL, 0), VQ_BROKEN);
    expect_broken_silent(VS_REASON_CHAIN_TOO_LONG);

    env_setup(F, 4, true, false);
    struct tseg t[1] = {{BUFS, 8, false}};
    F->add_indirect(TABLES, t, 1, 0, 0);
    cr_assert_eq(F->ops->pop(Q(), &E.ops, &e, NULL, 0), VQ_BROKEN);
    expect_broken_silent(VS_REASON_CHAIN_TOO_LONG);
    cr_assert_eq(ST()->descs_read, 1, "the table is not fetched");
}

/* Packed / Split: Indirect Descriptors (driver: no INDIRECT without
 * VIRTIO_F_INDIRECT_DESC; the table is not fetched) */
CONTRACT(hostile_indirect_not_negotiated)
{
    env_setup(F, 4, false, false);
    struct tseg t[1] = {{BUFS, 8, false}};
    F->add_indirect(TABLES, t, 1, 0, 0);
    expect_pop_breaks(VS_REASON_INDIRECT_NOT_NEGOTIATED);
    cr_assert_eq(ST()->descs_read, 1, "the table is not fetched");
    cr_assert_eq(ST()->indirect_tables, 0);
}

/* Packed / Split: Indirect Descriptors (driver MUST NOT set both INDIRECT and NEXT) */
CONTRACT(hostile_indirect_with_next)
{
    env_setup(F, 4, true, false);
    struct tseg t[1] = {{BUFS, 8, false}};
    F->add_indirect(TABLES, t, 1, VIRTQ_DESC_F_NEXT_MASK, 0);
    add1(BUFS, 8, true);
    expect_pop_breaks(VS_REASON_INDIRECT_WITH_NEXT);
    cr_assert_eq(ST()->descs_read, 1, "the table is not fetched");
    cr_assert_eq(ST()->indirect_tables, 0);
}

/* Packed: Indirect Flag: Scatter-Gather Support / Split: Indirect Descriptors (a
 * table of len / 16 entries: 0 and non-multiples are refused before any fetch) */
CONTRACT(hostile_indirect_len_zero_or_not_multiple)
{
    const uint32_t bad[2] = {0, 24};
    for (unsigned i = 0; i < 2; i++) {
        env_setup(F, 4, true, false);
        struct tseg t[1] = {{BUFS, 8, false}};
        F->add_indirect(TABLES, t, 1, 0, 0);
        fake_guest_put32(&E.g, DESC_AREA + 8, bad[i]); /* the ring descriptor's len */
        expect_pop_breaks(VS_REASON_INDIRECT_LEN_NOT_MULTIPLE);
        cr_assert_eq(ST()->descs_read, 1, "the table is not fetched");
    }
}

/* Packed / Split: Indirect Descriptors (driver: no INDIRECT inside a table) */
CONTRACT(hostile_indirect_nested)
{
    env_setup(F, 4, true, false);
    struct tseg t[2] = {{BUFS, 8, false}, {BUFS, 8, true}};
    F->add_indirect(TABLES, t, 2, 0, 0);
    fake_guest_put16(&E.g, TABLES + 16 + F->flags_off,
                     VIRTQ_DESC_F_INDIRECT_MASK | VIRTQ_DESC_F_WRITE_MASK);
    expect_pop_breaks(VS_REASON_INDIRECT_NESTED);
}

/* Packed / Split: Indirect Descriptors (the list, table entries included, no longer
 * than the queue size; what is fetched is bounded by it) */
CONTRACT(hostile_indirect_table_too_long)
{
    env_setup(F, 4, true, false);
    struct tseg t[5];
    for (int i = 0; i < 5; i++)
        t[i] = (struct tseg){BUFS, 8, false};
    F->add_indirect(TABLES, t, 5, 0, 0);
    expect_pop_breaks(VS_REASON_CHAIN_TOO_LONG);
    cr_assert_leq(ST()->descs_read, 1 + 4, "only what the buffer may hold is fetched");
}

/* Packed / Split: Indirect Descriptors (a device limit below the queue size applies to
 * tables too) */
CONTRACT(hostile_indirect_table_longer_than_max_segs)
{
    env_setup(F, 16, true, false);
    struct tseg t[3] = {{BUFS, 8, false}, {BUFS, 8, false}, {BUFS, 8, false}};
    F->add_indirect(TABLES, t, 3, 0, 0);
    struct vq_elem e;
    struct vq_seg two[2];
    cr_assert_eq(F->ops->pop(Q(), &E.ops, &e, two, 2), VQ_BROKEN);
    expect_broken_silent(VS_REASON_CHAIN_TOO_LONG);
}

/* Packed: Indirect Flag: Scatter-Gather Support / Split: Indirect Descriptors (the
 * element rules apply inside a table) */
CONTRACT(hostile_indirect_entry_rules)
{
    env_setup(F, 4, true, false);
    struct tseg t[2] = {{BUFS, 8, true}, {BUFS, 8, false}};
    F->add_indirect(TABLES, t, 2, 0, 0);
    expect_pop_breaks(VS_REASON_READ_AFTER_WRITE);

    env_setup(F, 4, true, false);
    struct tseg z[2] = {{BUFS, 8, false}, {BUFS, 0, true}};
    F->add_indirect(TABLES, z, 2, 0, 0);
    expect_pop_breaks(VS_REASON_DESC_ZERO_LENGTH);

    env_setup(F, 4, true, false);
    struct tseg big[2] = {{BUFS, 0xffffffffu, false}, {BUFS, 1, true}};
    F->add_indirect(TABLES, big, 2, 0, 0);
    expect_pop_breaks(VS_REASON_DESC_LENGTH_OVERFLOW);
}

/* Packed / Split: Indirect Descriptors (a table outside guest memory; a range that
 * wraps 2^64 is refused before any DMA) */
CONTRACT(hostile_indirect_table_outside_memory)
{
    env_setup(F, 4, true, false);
    struct tseg t[2] = {{BUFS, 8, false}, {BUFS, 8, true}};
    F->add_indirect(TABLES, t, 2, 0, 0);
    fake_guest_put64(&E.g, DESC_AREA, G_BASE + G_SIZE - 16);
    expect_pop_breaks(VS_REASON_DMA_OUT_OF_RANGE);
    cr_assert_eq(E.g.faults, 1);

    env_setup(F, 4, true, false);
    F->add_indirect(TABLES, t, 2, 0, 0);
    fake_guest_put64(&E.g, DESC_AREA, UINT64_MAX - 15);
    expect_pop_breaks(VS_REASON_DMA_OUT_OF_RANGE);
    cr_assert_eq(E.g.faults, 0, "an address range wrapping 2^64 is refused before any DMA");
}

/* Packed: Structure Size and Alignment / Split: Virtqueues (a descriptor area whose
 * last entries run off the end of guest memory: found on the way there) */
CONTRACT(hostile_descriptors_outside_memory)
{
    struct vq_config c = base_cfg(4);
    c.desc_addr = G_BASE + G_SIZE - 32;
    env_setup_cfg(F, &c);
    for (int i = 0; i < 2; i++)
        add1(BUFS, 1, false);
    F->announce_unwritten();
    struct vq_elem e;
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(pop(&e), VQ_OK);
    expect_pop_breaks(VS_REASON_DMA_OUT_OF_RANGE);
}

/* Device Status Field / DEVICE_NEEDS_RESET (a DMA refused because PCI bus-master enable
 * is clear, or by the IOMMU, is an error state of the queue, at every step) */
CONTRACT(bus_master_off_breaks_every_step)
{
    struct vq_elem e;
    env_setup(F, 4, false, false);
    add1(BUFS, 1, false);
    E.g.bus_master_off = true;
    expect_pop_breaks(VS_REASON_DMA_BUS_MASTER_OFF);
    cr_assert_eq(E.g.faults, 1);

    env_setup(F, 4, false, false);
    E.g.bus_master_off = true;
    bool avail = true;
    cr_assert_eq(F->ops->peek(Q(), &E.ops, &avail), VQ_BROKEN);
    cr_assert_not(avail);
    expect_broken_silent(VS_REASON_DMA_BUS_MASTER_OFF);

    /* used write-back: the failure comes at the flush at the latest */
    env_setup(F, 4, false, false);
    add1(BUFS, 1, false);
    cr_assert_eq(pop(&e), VQ_OK);
    E.g.bus_master_off = true;
    enum vq_status s = push(&e, 0);
    if (s == VQ_OK) {
        cr_assert_eq(F->ops->pending(Q()), 1, "held in the device until the flush");
        s = flush();
    }
    cr_assert_eq(s, VQ_BROKEN);
    expect_broken_silent(VS_REASON_DMA_BUS_MASTER_OFF);

    env_setup(F, 4, false, false);
    add1(BUFS, 1, false);
    cr_assert_eq(pop(&e), VQ_OK);
    cr_assert_eq(push(&e, 0), VQ_OK);
    E.g.fail_kinds = 1u << VS_DMA_USED_WRITE;
    E.g.fail_status = VS_DMA_BUS_MASTER_OFF;
    cr_assert_eq(flush(), VQ_BROKEN);
    expect_broken_silent(VS_REASON_DMA_BUS_MASTER_OFF);

    /* an IOMMU fault reading descriptors */
    env_setup(F, 4, false, false);
    add1(BUFS, 1, false);
    E.g.fail_kinds = 1u << VS_DMA_DESC_READ;
    E.g.fail_status = VS_DMA_IOMMU_FAULT;
    expect_pop_breaks(VS_REASON_DMA_IOMMU_FAULT);

    /* event suppression, with and without EVENT_IDX */
    for (int ev = 0; ev < 2; ev++) {
        env_setup(F, 4, false, ev == 1);
        publish(1);
        E.g.bus_master_off = true;
        bool irq = true;
        cr_assert_eq(F->ops->should_interrupt(Q(), &E.ops, &irq), VQ_BROKEN);
        cr_assert_not(irq);
        expect_broken_silent(VS_REASON_DMA_BUS_MASTER_OFF);

        env_setup(F, 4, false, ev == 1);
        E.g.bus_master_off = true;
        cr_assert_eq(F->ops->set_notifications(Q(), &E.ops, true), VQ_BROKEN);
        expect_broken_silent(VS_REASON_DMA_BUS_MASTER_OFF);
    }
    /* disabling writes too without EVENT_IDX (with it, split writes nothing) */
    env_setup(F, 4, false, false);
    E.g.bus_master_off = true;
    cr_assert_eq(F->ops->set_notifications(Q(), &E.ops, false), VQ_BROKEN);
    expect_broken_silent(VS_REASON_DMA_BUS_MASTER_OFF);
}

/* Driver Notifications (hostile): a hint far beyond anything the driver made available
 * never makes the device take a buffer the driver did not expose */
CONTRACT(hostile_hints_never_make_buffers)
{
    for (unsigned src = 0; src < 3; src++) {
        env_setup_fetch(F, 8, 8, (enum vq_fetch_source)src);
        uint16_t id = add1(BUFS, 64, false);
        for (uint32_t v = 0; v < 0x10000u; v += 1237) {
            F->ops->set_avail_hint(Q(), (uint16_t)(v & 0x7fffu), (v >> 15) & 1u);
            cr_assert_leq(F->hint_count(), 8u, "never more than a ring");
        }
        F->ops->set_avail_hint(Q(), 0x7fff, true);
        struct vq_elem e;
        cr_assert_eq(pop(&e), VQ_OK);
        cr_assert_eq(e.id, id);
        cr_assert_eq(pop(&e), VQ_EMPTY, "only the one exposed buffer");
        cr_assert_eq(F->ops->broken(Q()), VS_REASON_NONE);
        cr_assert_eq(E.g.faults, 0);
    }
}

/* vq.h vq_stats_add: the one sum of queue counters adds every counter (a sum that
 * forgot one -- event_reads_local, interrupts_rechecked -- lost it when a queue was
 * reset) */
Test(vq_stats, add_sums_every_counter)
{
    enum { N = sizeof(struct vq_stats) / sizeof(uint64_t) };
    uint64_t a[N], b[N];
    for (unsigned i = 0; i < N; i++) {
        a[i] = i + 1;
        b[i] = 100 * (i + 1);
    }
    struct vq_stats to, s;
    memcpy(&to, a, sizeof to);
    memcpy(&s, b, sizeof s);
    vq_stats_add(&to, &s);
    memcpy(a, &to, sizeof to);
    for (unsigned i = 0; i < N; i++)
        cr_expect_eq(a[i], 101u * (i + 1), "counter %u", i);
}
