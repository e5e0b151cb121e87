/* host_ops.h -- everything the host side (reference driver, traffic) may do.
 *
 * The driver talks to the device only as real firmware would: PCI configuration
 * reads/writes, MMIO reads/writes to BAR addresses it assigned, plain loads and
 * stores to guest memory, and interrupts. The platform implements these ops and
 * charges their time (an MMIO read is a round trip over the link, a store to guest
 * memory is part of the per-packet CPU cost). Calls may block the calling SystemC
 * thread: the driver is straight-line code.
 */
#ifndef VIOSIM_HOST_OPS_H
#define VIOSIM_HOST_OPS_H

#include <stdint.h>

/* CPU work the cost model charges; see host.*_cycles parameters. */
enum vs_host_work {
    VS_HOST_WORK_TX_PACKET,   /* build and post one frame for transmission */
    VS_HOST_WORK_RX_PACKET,   /* reap and consume one received frame */
    VS_HOST_WORK_TX_REAP,     /* reclaim one transmitted buffer */
    VS_HOST_WORK_RX_REFILL,   /* post one empty receive buffer */
    VS_HOST_WORK_POLL,        /* one poll of the rings that found nothing */
    VS_HOST_WORK_BARRIER_DEVICE, /* a write barrier suitable for hardware devices */
    VS_HOST_WORK_BARRIER_SMP, /* a write barrier between CPUs (software devices) */
    VS_HOST_WORK_CTRL_COMMAND, /* build one control queue command and check its ack */
    VS_HOST_WORK_COUNT
};

/* What wait_interrupt returns for legacy INTx: above every MSI-X vector (0..0x7ff). */
#define VS_HOST_IRQ_INTX 0x10000

struct vs_host_ops {
    uint32_t (*cfg_read)(void *ctx, uint32_t off, unsigned size);
    void (*cfg_write)(void *ctx, uint32_t off, unsigned size, uint32_t value);
    uint64_t (*mmio_read)(void *ctx, uint64_t addr, unsigned size);
    void (*mmio_write)(void *ctx, uint64_t addr, unsigned size, uint64_t value);
    /* Wait for an MSI-X interrupt (returns its vector), for the function's INTx line
     * (returns VS_HOST_IRQ_INTX while it is asserted: a level, which stays asserted until
     * the driver reads ISR status) or until timeout_ns of simulated time passed (returns
     * -1). Interrupt entry cost is charged by the platform. */
    int (*wait_interrupt)(void *ctx, uint64_t timeout_ns);
    /* Charge CPU work (count units of kind). */
    void (*cpu_work)(void *ctx, enum vs_host_work kind, uint64_t count);
    /* Current simulated time, picoseconds. */
    uint64_t (*now_ps)(void *ctx);
    /* Optional (may be NULL). Charge empty polls of the rings one after the other, each
     * costing VS_HOST_WORK_POLL as cpu_work would, up to the first poll at or after
     * until_ps, or the first poll that may see something the device wrote to guest
     * memory since the call, whichever comes first. Returns the polls charged (at least
     * one), or 0 when a poll costs no time (nothing is charged then). Lets a polling
     * driver sleep through polls that find nothing, with the same results. */
    uint64_t (*poll_idle)(void *ctx, uint64_t until_ps);
    /* Point the platform IOMMU's address space `pasid` at a page table the driver built
     * in guest memory (workloads/iopt.h format; root_pa 0 detaches it) and drop its
     * cached translations. Returns 0, or -1 if the platform refuses (bad PASID/root).
     * Used only when VIRTIO_F_ACCESS_PLATFORM is negotiated. */
    int (*iommu_set_root)(void *ctx, uint32_t pasid, uint64_t root_pa);
    /* Optional (may be NULL). Several queue pairs: the CPU work, MMIO accesses and time
     * from here on are queue pair `pair`'s (0-based) until the next call; pair -1: the
     * driver's shared work again, which starts once the work of every pair since the
     * first call is done (a fork and a join per pass over the rings). A platform with a
     * CPU per pair (host.cpus_count) runs the pairs' work side by side; without the op,
     * or with one CPU, it runs one piece after the other as if there were no calls. The
     * driver calls it only with more than one pair, never while it waits or polls idle. */
    void (*cpu_for_pair)(void *ctx, int32_t pair);
    void *ctx;

    /* Guest memory as the CPU sees it: mem[0 .. mem_size) is guest-physical address
     * mem_base .. mem_base + mem_size. The driver may use all of it. It is zero-filled
     * when the driver starts (as calloc gives): the driver hands each byte out once and
     * relies on that ("The descriptor ring is zero-initialized"), without writing the
     * zeros again, so pages it never uses are never touched. */
    uint8_t *mem;
    uint64_t mem_base;
    uint64_t mem_size;
    /* Where the driver may place BARs, and the MSI address window of the interrupt
     * controller (message address = msi_base, data = vector). */
    uint64_t mmio_window_base;
    uint64_t mmio_window_size;
    uint64_t msi_base;
};

#endif
