#include "vs_reason.h"
#include "guest_ops.h"

const char *vs_reason_name(enum vs_reason r)
{
    static const char *const names[] = {
#define VS_REASON_NAME(name, text) #name,
        VS_REASONS(VS_REASON_NAME)
#undef VS_REASON_NAME
    };
    return (unsigned)r < VS_REASON_COUNT ? names[r] : "UNKNOWN";
}

const char *vs_reason_text(enum vs_reason r)
{
    static const char *const texts[] = {
#define VS_REASON_TEXT(name, text) text,
        VS_REASONS(VS_REASON_TEXT)
#undef VS_REASON_TEXT
    };
    return (unsigned)r < VS_REASON_COUNT ? texts[r] : "unknown reason";
}

const char *vs_dma_kind_name(enum vs_dma_kind kind)
{
    static const char *const names[VS_DMA_KIND_COUNT] = {
        [VS_DMA_DESC_READ] = "desc_read",   [VS_DMA_BUF_READ] = "buf_read",
        [VS_DMA_BUF_WRITE] = "buf_write",   [VS_DMA_USED_WRITE] = "used_write",
        [VS_DMA_EVENT_READ] = "event_read", [VS_DMA_EVENT_WRITE] = "event_write",
        [VS_DMA_FLUSH_READ] = "flush_read",
        [VS_DMA_PT_READ] = "pt_read",
    };
    return (unsigned)kind < VS_DMA_KIND_COUNT ? names[kind] : "unknown";
}

enum vs_reason vs_dma_status_reason(int status)
{
    switch ((enum vs_dma_status)status) {
    case VS_DMA_OK: return VS_REASON_NONE;
    case VS_DMA_BUS_MASTER_OFF: return VS_REASON_DMA_BUS_MASTER_OFF;
    case VS_DMA_IOMMU_FAULT: return VS_REASON_DMA_IOMMU_FAULT;
    case VS_DMA_ABORTED: return VS_REASON_DMA_ABORTED;
    case VS_DMA_OUT_OF_RANGE: break;
    }
    return VS_REASON_DMA_OUT_OF_RANGE;
}
