// dma_attr.h -- what a device memory request carries besides its address: the address
// space it belongs to (PASID) and whether the IOMMU translates it (the device
// negotiated VIRTIO_F_ACCESS_PLATFORM), and which DMA read transfer a read request
// belongs to. The root complex answers with whether the IOMMU faulted. Attached by the
// DMA engine, read by the root complex.
#ifndef VIOSIM_DMA_ATTR_H
#define VIOSIM_DMA_ATTR_H

#include <cstdint>

#include <tlm>

namespace viosim {

struct dma_attr_ext : tlm::tlm_extension<dma_attr_ext> {
    uint32_t pasid = 0;
    bool translate = false;
    bool iommu_fault = false; // out: the IOMMU refused the access

    // A read request's transfer: the DMA engine numbers its read transfers 1, 2, ...
    // and every request of one transfer carries the same number, so the host streams
    // the transfer's data in order (read_stream_ext, host_memory.h). 0: a read on its
    // own (a page-table read by the device's walker), or not a read.
    uint64_t read_transfer = 0;

    // ATS: a Translation Request (a non-posted read answered with a translation, not
    // with memory data). `write` asks for write permission.
    bool translation_request = false;
    bool write = false;
    uint64_t translated_pa = 0;   // out: physical address of the page holding the IOVA
    unsigned page_shift = 12;     // out
    bool writable = false;        // out

    tlm::tlm_extension_base *clone() const override { return new dma_attr_ext(*this); }
    void copy_from(const tlm::tlm_extension_base &other) override
    {
        *this = static_cast<const dma_attr_ext &>(other);
    }
};

} // namespace viosim

#endif
