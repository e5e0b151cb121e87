/* vs_reason.h -- why the device entered DEVICE_NEEDS_RESET.
 *
 * Guest input is hostile. When a kernel finds input it cannot honour it returns a
 * reason from this list; the device composition (vdev) makes it sticky, sets
 * DEVICE_NEEDS_RESET and signals a configuration change ("Device Status Field":
 * the device SHOULD set DEVICE_NEEDS_RESET when it enters an error state that a
 * reset is needed for). The name and the text are what users see in stats.json.
 */
#ifndef VIOSIM_VS_REASON_H
#define VIOSIM_VS_REASON_H

#define VS_REASONS(X) \
    X(NONE,                  "no error") \
    X(DMA_BUS_MASTER_OFF,    "DMA attempted while the PCI command register has bus-master enable clear") \
    X(DMA_OUT_OF_RANGE,      "DMA address range is not backed by guest memory") \
    X(DMA_ABORTED,           "queue or device reset by the driver while a DMA was in flight (not an error: the work is dropped)") \
    X(DMA_IOMMU_FAULT,       "DMA address faulted in the IOMMU (the platform's fault log has the IOVA and why)") \
    X(DESC_ID_OUT_OF_RANGE,  "descriptor buffer id is not below the queue size") \
    X(DESC_ID_IN_USE,        "descriptor buffer id is already owned by the device") \
    X(CHAIN_TOO_LONG,        "descriptor chain is longer than the queue size") \
    X(DESC_ZERO_LENGTH,      "descriptor with zero length") \
    X(DESC_LENGTH_OVERFLOW,  "descriptor lengths of a chain overflow 32 bits") \
    X(CHAIN_DESC_NOT_AVAIL,  "descriptor following a NEXT flag is not marked available for the ring wrap counter") \
    X(READ_AFTER_WRITE,      "device-readable descriptor follows a device-writable one") \
    X(INDIRECT_NOT_NEGOTIATED, "INDIRECT flag set without VIRTIO_F_INDIRECT_DESC") \
    X(INDIRECT_LEN_NOT_MULTIPLE, "indirect table length is zero or not a multiple of 16") \
    X(INDIRECT_WITH_NEXT,    "descriptor has both NEXT and INDIRECT flags") \
    X(INDIRECT_NESTED,       "indirect descriptor inside an indirect table") \
    X(INDIRECT_WRITE_FLAG,   "indirect descriptor has the WRITE flag") \
    X(RING_MISALIGNED,       "ring area address is not aligned as the spec requires") \
    X(QUEUE_SIZE_INVALID,    "queue enabled with a size of 0 or above the device maximum") \
    X(NOTIFY_QUEUE_INVALID,  "notification names a queue that does not exist") \
    X(TX_FRAME_TOO_LONG,     "transmitted frame exceeds the device's maximum frame size") \
    X(TX_FRAME_TOO_SHORT,    "transmitted buffer shorter than the virtio-net header") \
    X(TX_HAS_WRITABLE,       "transmit buffer has device-writable descriptors") \
    X(RX_HAS_READABLE,       "receive buffer has device-readable descriptors") \
    X(RX_BUFFER_TOO_SMALL,   "receive buffer too small for the virtio-net header") \
    X(MSIX_RESERVED_BITS,    "MSI-X vector control written with reserved bits set") \
    X(IOMMU_FAULT_PASID_RANGE, "IOMMU request names a PASID at or above the number of address spaces") \
    X(IOMMU_FAULT_NO_ROOT,   "IOMMU request names a PASID that has no page table") \
    X(IOMMU_ROOT_INVALID,    "IOMMU page-table root is not 4 KiB aligned or lies above 52 bits") \
    X(IOMMU_FAULT_IOVA_RANGE, "IOVA has bits set above the IOMMU's 48-bit input width") \
    X(IOMMU_FAULT_UNMAPPED,  "IOVA is not mapped: a page-table entry on its walk is not present") \
    X(IOMMU_FAULT_READ_ONLY, "device write to an IOVA that is mapped read-only") \
    X(IOMMU_FAULT_RESERVED_BITS, "IOMMU page-table entry has reserved bits set") \
    X(IOMMU_FAULT_WALK_RANGE, "IOMMU page-table pointer is not backed by guest memory") \
    X(AVAIL_IDX_JUMP,        "available ring idx moved by more than the queue size (or backwards) since the device last read it") \
    X(DESC_NEXT_OUT_OF_RANGE, "descriptor next index is not below the queue size (or the indirect table's entry count)") \
    X(CTRL_NO_ACK_BYTE,      "control queue command buffer has no device-writable byte for the ack") \
    X(DEVMEM_EVENT_QUEUE_INVALID, "device-memory event suppression write to the slot of a queue that does not exist (viosim extension)") \
    X(DEVMEM_EVENT_ACCESS_INVALID, "device-memory event suppression write that is not an aligned 2-byte field or 4-byte slot (viosim extension)") \
    X(NOTIFY_DATA_AHEAD,     "NOTIFICATION_DATA named available ring entries beyond the idx the driver had written")

enum vs_reason {
#define VS_REASON_ENUM(name, text) VS_REASON_##name,
    VS_REASONS(VS_REASON_ENUM)
#undef VS_REASON_ENUM
    VS_REASON_COUNT
};

/* Short identifier, e.g. "CHAIN_TOO_LONG". */
const char *vs_reason_name(enum vs_reason r);
/* One sentence for users. */
const char *vs_reason_text(enum vs_reason r);

/* Why a guest-memory access failed, as a device-fatal reason (enum vs_dma_status from
 * guest_ops.h; VS_DMA_OK maps to VS_REASON_NONE). */
enum vs_reason vs_dma_status_reason(int status);

#endif
