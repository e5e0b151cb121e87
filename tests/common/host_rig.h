/* host_rig.h -- an untimed mock host that runs the reference driver against the device
 * kernel (header-only), for tests of refdrv_run (workloads/refdrv.h) end to end.
 *
 * refdrv_run drives `dev` (model/vdev) through `host` (workloads/host_ops.h). Guest
 * memory is one zeroed array at [mem_base, mem_base + mem_size). The device's DMA goes
 * through the port of the queue it serves: when the device has negotiated
 * VIRTIO_F_ACCESS_PLATFORM ("Reserved Feature Bits") each access is translated by an
 * IOMMU (model/iommu) in that queue's PASID, `pasid[q]` (0 unless the test sets it),
 * page walks reading the same array -- as the platform's root complex does -- and split
 * at IOMMU page boundaries; otherwise addresses are physical. `iommu_set_root`, the
 * platform's hook, installs the driver's tables in the IOMMU.
 *
 * The device runs until idle (model/pci_transport.h pt_run_idle: every TX queue, then
 * every RX queue, then the control queue, repeated while anything moved; `used` counts
 * each queue's buffers) after every MMIO write (unless `lazy`), every empty poll and
 * whenever the driver waits for an interrupt; then its MSI-X messages are latched by
 * vector, and its INTx line (a level: pt_intx_asserted) is read whenever the driver
 * waits. Time is a counter each host op advances by a fixed cost, so runs are
 * deterministic.
 *
 * What it records, for the tests to assert on:
 *   - per queue, while it was live: ring format name, size, and the features negotiated;
 *   - per queue and DMA kind: the first address the device used, and the lowest and the
 *     highest (exclusive end) -- host_rig_lo/host_rig_hi fold them over the queues;
 *   - DMA counts: pieces translated or physical, IOMMU faults, out-of-range accesses;
 *   - the first HOST_RIG_ROOTS_LOG roots installed (`nroots` counts them all);
 *   - MSI-X messages at an address other than HOST_RIG_MSI_BASE (`msi_misaddressed`).
 *
 * Like vdev_rig.h it never asserts: host_rig_new returns NULL if the parameters are
 * refused or memory runs out, and a misaddressed MSI-X message is counted (not latched)
 * for the test to check, since an assert inside the pump would need Criterion here.
 *
 *     struct host_rig *r = host_rig_new(0x40000000, 16ull << 20, NULL); // default device
 *     r->pasid[VNET_QUEUE_TX] = 5;                                       // optional
 *     enum refdrv_result res = refdrv_run(&r->host, &params, &stats);
 *     ... r->translated, r->first_addr[VNET_QUEUE_RX][VS_DMA_DESC_READ] ...
 *     host_rig_free(r);
 *
 * host_rig_refdrv_params fills the driver parameters both loopback suites share.
 */
#ifndef VIOSIM_TESTS_HOST_RIG_H
#define VIOSIM_TESTS_HOST_RIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/vdev_rig.h"
#include "host_ops.h"
#include "iommu.h"
#include "refdrv.h"
#include "vdev.h"

#define HOST_RIG_MMIO_BASE 0xC0000000ull
#define HOST_RIG_MMIO_SIZE 0x10000000ull
#define HOST_RIG_MSI_BASE  0xFEE00000ull
#define HOST_RIG_VECTORS   (VNET_QUEUES_MAX + 1u) /* MSI-X vectors latched: one per queue + config */
#define HOST_RIG_ROOTS_LOG 8u
#define HOST_RIG_PUMP_MAX  100000u /* bound on the pump's rounds and on steps per queue */

struct host_rig;

/* The DMA path of one queue: tagged with that queue's PASID. */
struct host_rig_port {
    struct host_rig *rig;
    uint16_t queue;
    struct vs_guest_ops ops;
};

struct host_rig {
    struct vdev dev;
    struct iommu mmu;
    uint8_t *mem;
    uint64_t mem_base, mem_size;
    uint32_t pasid[VNET_QUEUES_MAX]; /* what the platform tags each queue's DMA with */
    struct host_rig_port port[VNET_QUEUES_MAX];
    struct vs_guest_ops walk_ops;
    struct vs_host_ops host;
    uint64_t now_ps;
    bool irq_pending[HOST_RIG_VECTORS]; /* latched MSI-X vectors */
    /* The device runs only while the driver waits or polls, not on its notifications:
     * an interrupt-mode driver then has to sleep, so its used buffer notification
     * requests are what wakes it. */
    bool lazy;

    /* What happened. */
    const char *format[VNET_QUEUES_MAX]; /* ring format of each queue while it was live */
    uint16_t size[VNET_QUEUES_MAX];      /* queue size the driver configured */
    uint16_t vector[VNET_QUEUES_MAX];    /* its MSI-X vector */
    vs_features negotiated;          /* features, as seen while the queues were live */
    uint64_t translated, physical, faults, out_of_range;
    uint64_t msi_misaddressed;
    uint64_t intx_taken;             /* waits answered by the asserted INTx line */
    struct { uint32_t pasid; uint64_t root; } roots[HOST_RIG_ROOTS_LOG];
    uint32_t nroots;
    /* Addresses the device used, per queue and kind (0: none): the first, the lowest
     * and the end of the highest access. */
    uint64_t first_addr[VNET_QUEUES_MAX][VS_DMA_KIND_COUNT];
    uint64_t lo[VNET_QUEUES_MAX][VS_DMA_KIND_COUNT], hi[VNET_QUEUES_MAX][VS_DMA_KIND_COUNT];
    /* Buffers the device used per queue (pt_step_one answered DONE). */
    uint64_t used[VNET_QUEUES_MAX];
    /* host_rig_use_cpus: the driver's pairs on `cpus` CPUs, a fork and a join per pass as
     * the platform's host CPU does (host.cpus_count): each CPU's time in the open pass,
     * the CPU working now, and the frames each CPU built (VS_HOST_WORK_TX_PACKET). */
    uint32_t cpus;
    uint64_t cpu_at[REFDRV_PAIRS_MAX];
    uint32_t cpu_now;
    bool in_pass;
    uint64_t tx_packets_on_cpu[REFDRV_PAIRS_MAX];
};

/* The device the rig builds when given no parameters: vdev_rig's, with queues of up to
 * 256 entries and a 16-frame RX FIFO. */
static inline struct vdev_params host_rig_default_params(void)
{
    struct vdev_params p = vdev_rig_default_params();
    p.queue_size_max = 256;
    p.rx_fifo_frames = 16;
    return p;
}

/* Is [pa, pa + len) wholly inside guest memory? Overflow-safe. */
static inline bool host_rig_in_mem(const struct host_rig *r, uint64_t pa, uint64_t len)
{
    return pa >= r->mem_base && len <= r->mem_size && pa - r->mem_base <= r->mem_size - len;
}

/* The lowest address / end of the highest access of `kind` over all queues (0: none). */
static inline uint64_t host_rig_lo(const struct host_rig *r, enum vs_dma_kind kind)
{
    uint64_t lo = 0;
    for (unsigned q = 0; q < VNET_QUEUES_MAX; q++)
        if (r->lo[q][kind] != 0 && (lo == 0 || r->lo[q][kind] < lo))
            lo = r->lo[q][kind];
    return lo;
}

static inline uint64_t host_rig_hi(const struct host_rig *r, enum vs_dma_kind kind)
{
    uint64_t hi = 0;
    for (unsigned q = 0; q < VNET_QUEUES_MAX; q++)
        if (r->hi[q][kind] > hi)
            hi = r->hi[q][kind];
    return hi;
}

/* ---- guest memory and the device's DMA ---- */

static inline enum vs_dma_status host_rig_walk_read(void *ctx, uint64_t addr, void *dst,
                                                    uint32_t len, enum vs_dma_kind kind)
{
    struct host_rig *r = (struct host_rig *)ctx;
    (void)kind;
    if (!host_rig_in_mem(r, addr, len))
        return VS_DMA_OUT_OF_RANGE;
    memcpy(dst, r->mem + (addr - r->mem_base), len);
    return VS_DMA_OK;
}

static inline enum vs_dma_status host_rig_walk_write(void *ctx, uint64_t addr, const void *src,
                                                     uint32_t len, enum vs_dma_kind kind)
{
    (void)ctx, (void)addr, (void)src, (void)len, (void)kind;
    return VS_DMA_OUT_OF_RANGE; /* the IOMMU never writes its tables */
}

/* One device access, split at IOMMU page boundaries when translated. */
static inline enum vs_dma_status host_rig_access(struct host_rig_port *pt, uint64_t addr,
                                                 uint8_t *buf, uint32_t len, bool write,
                                                 enum vs_dma_kind kind)
{
    struct host_rig *r = pt->rig;
    const bool translate = vpci_negotiated(&r->dev.tp.vpci, VIRTIO_F_ACCESS_PLATFORM_BIT);
    const uint16_t q = pt->queue;
    uint32_t done = 0;

    if (r->first_addr[q][kind] == 0)
        r->first_addr[q][kind] = addr;
    if (r->lo[q][kind] == 0 || addr < r->lo[q][kind])
        r->lo[q][kind] = addr;
    if (addr + len > r->hi[q][kind])
        r->hi[q][kind] = addr + len;
    while (done < len) {
        uint64_t pa = addr + done, piece = len - done;
        if (translate) {
            struct iommu_result res;
            if (iommu_translate(&r->mmu, &r->walk_ops, r->pasid[q], addr + done, write, &res) !=
                IOMMU_OK) {
                r->faults++;
                return VS_DMA_IOMMU_FAULT;
            }
            r->translated++;
            pa = res.pa;
            if (res.span < piece)
                piece = res.span;
        } else {
            r->physical++;
        }
        if (!host_rig_in_mem(r, pa, piece)) {
            r->out_of_range++;
            return VS_DMA_OUT_OF_RANGE;
        }
        if (write)
            memcpy(r->mem + (pa - r->mem_base), buf + done, piece);
        else
            memcpy(buf + done, r->mem + (pa - r->mem_base), piece);
        done += (uint32_t)piece;
    }
    return VS_DMA_OK;
}

static inline enum vs_dma_status host_rig_port_read(void *ctx, uint64_t addr, void *dst,
                                                    uint32_t len, enum vs_dma_kind kind)
{
    return host_rig_access((struct host_rig_port *)ctx, addr, (uint8_t *)dst, len, false, kind);
}

static inline enum vs_dma_status host_rig_port_write(void *ctx, uint64_t addr, const void *src,
                                                     uint32_t len, enum vs_dma_kind kind)
{
    return host_rig_access((struct host_rig_port *)ctx, addr, (uint8_t *)(uintptr_t)src, len,
                           true, kind);
}

/* ---- the device, run to idle ---- */

/* pt_idle.queue_ops: queue q's port (its PASID). */
static inline const struct vs_guest_ops *host_rig_queue_ops(void *ctx, uint16_t q)
{
    return &((struct host_rig *)ctx)->port[q].ops;
}

/* The device run until idle (pt_run_idle: every transmit queue, then every receive
 * queue, then the control queue, while anything moved), after noting what each live
 * queue looks like; then its MSI-X messages latched. */
static inline void host_rig_pump(struct host_rig *r)
{
    struct msix_message msg;
    for (uint16_t q = 0; q < r->dev.tp.num_queues; q++) {
        if (!pt_queue_live(&r->dev.tp, q))
            continue;
        r->format[q] = r->dev.tp.q[q].ops->name;
        r->negotiated = r->dev.tp.vpci.driver_features;
        r->size[q] = r->dev.tp.q[q].cfg.size;
        r->vector[q] = r->dev.tp.vpci.q[q].msix_vector;
    }
    struct pt_idle run;
    memset(&run, 0, sizeof run);
    run.queue_ops = host_rig_queue_ops;
    run.ctx = r;
    run.rounds_max = HOST_RIG_PUMP_MAX;
    run.steps_max = HOST_RIG_PUMP_MAX;
    run.buffers = r->used;
    pt_run_idle(&r->dev.tp, &run);
    while (pt_take_msi(&r->dev.tp, &msg)) {
        if (msg.addr != HOST_RIG_MSI_BASE)
            r->msi_misaddressed++;
        else if (msg.data < HOST_RIG_VECTORS)
            r->irq_pending[msg.data] = true;
    }
}

/* ---- host ops (fixed costs in picoseconds) ---- */

static inline uint32_t host_rig_cfg_read(void *ctx, uint32_t off, unsigned size)
{
    struct host_rig *r = (struct host_rig *)ctx;
    r->now_ps += 200000;
    return pt_cfg_read(&r->dev.tp, off, size);
}

static inline void host_rig_cfg_write(void *ctx, uint32_t off, unsigned size, uint32_t value)
{
    struct host_rig *r = (struct host_rig *)ctx;
    r->now_ps += 100000;
    pt_cfg_write(&r->dev.tp, off, size, value);
}

static inline uint64_t host_rig_mmio_read(void *ctx, uint64_t addr, unsigned size)
{
    struct host_rig *r = (struct host_rig *)ctx;
    uint64_t v = ~0ull;
    r->now_ps += 500000;
    pt_mmio_read(&r->dev.tp, addr, size, &v);
    return v;
}

static inline void host_rig_mmio_write(void *ctx, uint64_t addr, unsigned size, uint64_t value)
{
    struct host_rig *r = (struct host_rig *)ctx;
    uint16_t kicked = 0xffff;
    r->now_ps += 100000;
    pt_mmio_write(&r->dev.tp, addr, size, value, &kicked);
    if (!r->lazy)
        host_rig_pump(r);
}

/* The lowest latched vector (cleared); else VS_HOST_IRQ_INTX while the function's INTx
 * line is asserted (a level: it stays so until the driver reads ISR status, so the rig
 * keeps answering it); else -1 after `timeout_ns`. */
static inline int host_rig_wait_interrupt(void *ctx, uint64_t timeout_ns)
{
    struct host_rig *r = (struct host_rig *)ctx;
    host_rig_pump(r);
    for (int v = 0; v < (int)HOST_RIG_VECTORS; v++) {
        if (r->irq_pending[v]) {
            r->irq_pending[v] = false;
            r->now_ps += 1000000;
            return v;
        }
    }
    if (pt_intx_asserted(&r->dev.tp)) {
        r->intx_taken++;
        r->now_ps += 1000000;
        return VS_HOST_IRQ_INTX;
    }
    r->now_ps += timeout_ns * 1000u;
    return -1;
}

static inline void host_rig_cpu_work(void *ctx, enum vs_host_work kind, uint64_t count)
{
    struct host_rig *r = (struct host_rig *)ctx;
    r->now_ps += 50000 * count;
    if (kind == VS_HOST_WORK_TX_PACKET && r->cpus > 0)
        r->tx_packets_on_cpu[r->in_pass ? r->cpu_now : 0] += count;
    if (kind == VS_HOST_WORK_POLL)
        host_rig_pump(r);
}

static inline uint64_t host_rig_now_ps(void *ctx)
{
    return ((struct host_rig *)ctx)->now_ps;
}

/* vs_host_ops.cpu_for_pair with r->cpus CPUs: the time is the working CPU's own. */
static inline void host_rig_cpu_for_pair(void *ctx, int32_t pair)
{
    struct host_rig *r = (struct host_rig *)ctx;
    if (pair < 0) {
        if (r->in_pass) {
            r->cpu_at[r->cpu_now] = r->now_ps;
            for (uint32_t c = 0; c < r->cpus; c++)
                if (r->cpu_at[c] > r->now_ps)
                    r->now_ps = r->cpu_at[c];
            r->in_pass = false;
        }
        return;
    }
    if (!r->in_pass) {
        for (uint32_t c = 0; c < r->cpus; c++)
            r->cpu_at[c] = r->now_ps;
        r->in_pass = true;
    } else {
        r->cpu_at[r->cpu_now] = r->now_ps;
    }
    r->cpu_now = (uint32_t)pair % r->cpus;
    r->now_ps = r->cpu_at[r->cpu_now];
}

/* Run the driver's pairs on `cpus` CPUs (1 <= cpus <= REFDRV_PAIRS_MAX). */
static inline void host_rig_use_cpus(struct host_rig *r, uint32_t cpus)
{
    r->cpus = cpus;
    r->host.cpu_for_pair = host_rig_cpu_for_pair;
}

/* The platform's hook: point the IOMMU's address space at the driver's table. */
static inline int host_rig_iommu_set_root(void *ctx, uint32_t pasid, uint64_t root_pa)
{
    struct host_rig *r = (struct host_rig *)ctx;
    if (r->nroots < HOST_RIG_ROOTS_LOG) {
        r->roots[r->nroots].pasid = pasid;
        r->roots[r->nroots].root = root_pa;
    }
    r->nroots++;
    return iommu_set_root(&r->mmu, pasid, root_pa) == VS_REASON_NONE ? 0 : -1;
}

/* ---- set-up ---- */

static inline void host_rig_free(struct host_rig *r)
{
    if (r == NULL)
        return;
    vdev_fini(&r->dev);
    free(r->mem);
    free(r);
}

/* A device (params NULL: host_rig_default_params()) behind an enabled IOMMU (64-entry,
 * 4-way LRU IOTLB) on mem_size bytes of zeroed guest memory at mem_base; every PASID 0,
 * not lazy. NULL if vdev_check_params refuses params or memory runs out. */
static inline struct host_rig *host_rig_new(uint64_t mem_base, uint64_t mem_size,
                                            const struct vdev_params *params)
{
    const struct vdev_params dp = params ? *params : host_rig_default_params();
    if (vdev_check_params(&dp) != NULL)
        return NULL;
    struct host_rig *r = (struct host_rig *)calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->mem = (uint8_t *)calloc(1, mem_size ? (size_t)mem_size : 1u);
    if (r->mem == NULL || !vdev_init(&r->dev, &dp)) {
        free(r->mem);
        free(r);
        return NULL;
    }
    r->mem_base = mem_base;
    r->mem_size = mem_size;

    /* As the platform: the IOMMU is on, requests ask for translation when the device
     * negotiated ACCESS_PLATFORM. */
    struct iommu_config mc;
    memset(&mc, 0, sizeof mc);
    mc.enabled = true;
    mc.iotlb.entries = 64;
    mc.iotlb.ways = 4;
    mc.iotlb.policy = IOTLB_LRU;
    if (iommu_check_config(&mc) != NULL) {
        host_rig_free(r);
        return NULL;
    }
    iommu_init(&r->mmu, &mc);
    r->walk_ops = (struct vs_guest_ops){host_rig_walk_read, host_rig_walk_write, r};
    for (uint16_t q = 0; q < VNET_QUEUES_MAX; q++) {
        r->port[q].rig = r;
        r->port[q].queue = q;
        r->port[q].ops = (struct vs_guest_ops){host_rig_port_read, host_rig_port_write, &r->port[q]};
    }

    r->host.cfg_read = host_rig_cfg_read;
    r->host.cfg_write = host_rig_cfg_write;
    r->host.mmio_read = host_rig_mmio_read;
    r->host.mmio_write = host_rig_mmio_write;
    r->host.wait_interrupt = host_rig_wait_interrupt;
    r->host.cpu_work = host_rig_cpu_work;
    r->host.now_ps = host_rig_now_ps;
    r->host.iommu_set_root = host_rig_iommu_set_root;
    r->host.ctx = r;
    r->host.mem = r->mem;
    r->host.mem_base = mem_base;
    r->host.mem_size = mem_size;
    r->host.mmio_window_base = HOST_RIG_MMIO_BASE;
    r->host.mmio_window_size = HOST_RIG_MMIO_SIZE;
    r->host.msi_base = HOST_RIG_MSI_BASE;
    r->now_ps = 1;
    return r;
}

/* Driver parameters for a loopback run of `frames` frames whose sizes cycle through
 * sizes[0..nsizes-1] (the first REFDRV_FRAME_SIZES_MAX of them), in interrupt mode, with
 * 2048-byte RX buffers and a 1 ms idle timeout; everything else zero (the driver's
 * defaults), for the test to set: queue size, TX layout, IOVAs, PASIDs, declined features. */
static inline struct refdrv_params host_rig_refdrv_params(uint64_t frames, const uint32_t *sizes,
                                                          unsigned nsizes, uint64_t seed)
{
    struct refdrv_params p;
    memset(&p, 0, sizeof p);
    if (nsizes > REFDRV_FRAME_SIZES_MAX)
        nsizes = REFDRV_FRAME_SIZES_MAX;
    p.frames_count = frames;
    memcpy(p.frame_sizes_bytes, sizes, nsizes * sizeof sizes[0]);
    p.frame_sizes_count = nsizes;
    p.rx_buffer_bytes = 2048;
    p.mode = REFDRV_MODE_INTERRUPT;
    p.expect_loopback = true;
    p.seed = seed;
    p.idle_timeout_ns = 1000000;
    return p;
}

#endif
