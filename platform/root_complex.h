// root_complex.h -- routes the device's upstream requests: MSI-X messages to the
// interrupt controller, memory requests through the IOMMU to host memory.
//
// The IOMMU (model/iommu) translates requests that ask for it (dma_attr_ext: the
// device negotiated VIRTIO_F_ACCESS_PLATFORM) in the request's PASID. A lookup costs
// iommu_timing::iotlb_hit; a miss walks the page table with real reads of host memory
// (each costs the memory's latency plus walk_read_overhead; a paging-structure cache
// hit leaves out the upper levels' reads) on one of `walkers` page walkers, the next
// walk waiting for a free one. A fault aborts the request with an address error and marks
// it in the extension; the IOMMU's fault log keeps the IOVA, PASID and reason.
//
// The device splits a DMA read into requests of at most the max read request size,
// sent one after another; the host streams one transfer's data out in order, so a
// request's data is ready no earlier than the previous request's has streamed
// (read_stream_ext, host_memory.h). The DMA engine numbers its read transfers and
// every request carries its transfer's number (dma_attr_ext::read_transfer); a request
// continues the transfer of the request before it when the numbers match.
#ifndef VIOSIM_ROOT_COMPLEX_H
#define VIOSIM_ROOT_COMPLEX_H

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "module_params.h"
#include "reused_payload.h"
#include "stats.h"
#include "walker_pool.h"
#include "trace.h"

extern "C" {
#include "iommu.h"
}

namespace viosim {

struct iommu_timing {
    sc_core::sc_time iotlb_hit;  // every lookup
    unsigned walkers = 1;        // page walks in flight at most
    sc_core::sc_time walk_read_overhead; // added to each page-table read's memory time
};

// The IOMMU's geometry and timing from the iommu.* group, derived once (the device's
// own IOMMU, iommu.walk_location = device, takes the same).
iommu_config iommu_config_of(const iommu_params &p, uint64_t seed);
iommu_timing iommu_timing_of(const iommu_params &p);

class root_complex : public sc_core::sc_module {
public:
    tlm_utils::simple_target_socket<root_complex> from_link;
    tlm_utils::simple_initiator_socket<root_complex> to_memory;
    tlm_utils::simple_initiator_socket<root_complex> to_intc;

    root_complex(sc_core::sc_module_name name, const iommu_config &cfg, const iommu_timing &t);

    // Host software programs the IOMMU: address space `pasid` uses the page table at
    // root (0 detaches). Returns false if the IOMMU refuses.
    bool iommu_set_root(uint32_t pasid, uint64_t root);
    const iommu &iommu_state() const { return *iommu_; }
    // Called when host software changes an address space (ATS invalidation).
    std::function<void(uint32_t pasid)> on_invalidate;

    uint64_t msi_writes = 0, unsupported = 0, iommu_faults = 0;
    uint64_t translation_requests = 0; // ATS
    const walker_pool &walkers() const { return walkers_; } // waits, wait and walk time
    // Optional timeline: each page walk as a span on its walker's track.
    void set_trace(trace_recorder *trace);

private:
    void b_transport(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
    iommu_status translate(uint32_t pasid, uint64_t iova, bool write, iommu_result &r,
                           sc_core::sc_time &delay);
    void translated(tlm::tlm_generic_payload &tx, struct dma_attr_ext &attr,
                    sc_core::sc_time &delay, struct read_stream_ext *order);
    void translation_request(tlm::tlm_generic_payload &tx, struct dma_attr_ext &attr,
                             sc_core::sc_time &delay);
    static enum vs_dma_status walk_read(void *ctx, uint64_t addr, void *dst, uint32_t len,
                                        enum vs_dma_kind kind);
    static enum vs_dma_status no_write(void *ctx, uint64_t addr, const void *src, uint32_t len,
                                       enum vs_dma_kind kind);

    // The transfer of the last read request that completed and when its data had
    // streamed. The DMA engine sends all of a transfer's requests in one call (nothing
    // on the way waits), so they arrive back to back, with at most untagged reads (the
    // device walker's page-table reads) and ATS Translation Requests between them:
    // remembering the last transfer suffices. The numbers are the one requester's (the
    // device); a second requester would need its Requester ID beside them.
    uint64_t stream_transfer_ = 0; // 0: none
    sc_core::sc_time stream_streamed_;

    reused_payload walk_payload_;  // page-table reads
    reused_payload piece_payload_; // a translated request's pieces to memory
    std::unique_ptr<iommu> iommu_;
    iommu_timing t_;
    walker_pool walkers_;
    sc_core::sc_time walk_delay_; // memory time of the walk in progress
    vs_guest_ops walk_ops_;
    trace_recorder *trace_ = nullptr;
};

class dma_engine;
// The IOMMU's statistics (iommu.*) from its tables, for whichever IOMMU translated (the
// root complex's, or the device's own in e with iommu.walk_location = device): IOTLB,
// walks and walkers, paging-structure caches, ATS, faults, and each address space used.
void stats_add_iommu(stats_table &s, const root_complex &rc, const dma_engine &e);

} // namespace viosim

#endif
