/* guest_ops.h -- how a kernel reaches guest memory.
 *
 * Kernels never touch memory themselves: every descriptor fetch, buffer copy and
 * used write-back is a call through this ops struct, which the platform implements
 * (and charges time for: link serialisation, round trips, IOMMU). The kind tells
 * the platform what the access is for, so it can count and trace it.
 */
#ifndef VIOSIM_GUEST_OPS_H
#define VIOSIM_GUEST_OPS_H

#include <stdint.h>

enum vs_dma_kind {
    VS_DMA_DESC_READ,    /* descriptor ring or indirect table fetch */
    VS_DMA_BUF_READ,     /* device-readable buffer data */
    VS_DMA_BUF_WRITE,    /* device-writable buffer data */
    VS_DMA_USED_WRITE,   /* used descriptor write-back (incl. head flags) */
    VS_DMA_EVENT_READ,   /* driver event-suppression structure read */
    VS_DMA_EVENT_WRITE,  /* device event-suppression structure write */
    VS_DMA_FLUSH_READ,   /* read that makes earlier posted writes visible (ordering) */
    VS_DMA_PT_READ,      /* IOMMU page-table entry read during a walk */
    VS_DMA_KIND_COUNT
};

enum vs_dma_status {
    VS_DMA_OK = 0,
    VS_DMA_BUS_MASTER_OFF, /* PCI command register has bus-master enable clear */
    VS_DMA_OUT_OF_RANGE,   /* address range not backed by guest memory */
    VS_DMA_IOMMU_FAULT,    /* the platform IOMMU could not translate the address */
    VS_DMA_ABORTED,        /* the queue was reset while the access was in flight */
};

struct vs_guest_ops {
    /* Copy len bytes of guest memory at addr into dst. */
    enum vs_dma_status (*read)(void *ctx, uint64_t addr, void *dst, uint32_t len,
                               enum vs_dma_kind kind);
    /* Copy len bytes from src into guest memory at addr. */
    enum vs_dma_status (*write)(void *ctx, uint64_t addr, const void *src, uint32_t len,
                                enum vs_dma_kind kind);
    void *ctx;
};

const char *vs_dma_kind_name(enum vs_dma_kind kind);

#endif
