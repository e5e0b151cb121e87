// dma_engine.h -- the device's DMA engine: turns a transfer into PCIe requests, holds
// one read tag per outstanding read request, and says when data is there.
//
// Loosely timed: calls take the absolute time the transfer may start and return the
// times things happen; nothing here waits. Tags are a shared resource tracked by when
// each becomes free, so a read that finds all tags busy starts when the first frees.
// With in-order completion consumption a tag is freed only once every earlier read has
// completed (a reorder buffer drained in order); out of order, on its own completion.
#ifndef VIOSIM_DMA_ENGINE_H
#define VIOSIM_DMA_ENGINE_H

#include <cstdint>
#include <memory>
#include <vector>

#include <systemc>
#include <tlm>

#include "pcie_tlp.h"
#include "reused_payload.h"
#include "stats.h"
#include "trace.h"
#include "walker_pool.h"

extern "C" {
#include "iommu.h"
}

namespace viosim {

// Address space of a request and whether the IOMMU translates it.
struct dma_request_attr {
    uint32_t pasid = 0;
    bool translate = false;
};

class dma_engine {
public:
    struct timing {
        sc_core::sc_time issued;     // the last request TLP has left: the next may go
        sc_core::sc_time data_ready; // reads: all data arrived; writes: = issued
        bool ok;                     // false: the target answered with an error
        bool iommu_fault;            // ... because the IOMMU refused the address
    };
    using attr = dma_request_attr;

    dma_engine(tlm::tlm_initiator_socket<> &socket, const pcie_cfg &cfg, unsigned read_tags,
               bool completions_in_order);

    // ATS: keep a translation cache in the device; translated requests then carry
    // physical addresses, and a miss costs a Translation Request round trip.
    void enable_ats(const iotlb_config &atc);
    // Host software changed address space `pasid`: drop its cached translations.
    void ats_invalidate(uint32_t pasid);
    // The IOMMU in the device (iommu.walk_location = device): the device translates
    // with its own IOTLB and walks the page tables itself, each table read a DMA read
    // across the link. `hit` is the cost of a lookup; `walkers` walks run at once at
    // most (iommu.walkers_count), a miss waiting for the walker that frees first.
    void enable_device_iommu(const iommu_config &cfg, sc_core::sc_time hit, unsigned walkers);
    // Host software points address space `pasid` at a page table (device IOMMU).
    bool device_iommu_set_root(uint32_t pasid, uint64_t root);
    const iommu *device_iommu() const { return mmu_.get(); }
    // The device IOMMU's walkers: waits, wait and walk time.
    const walker_pool &device_walkers() const { return walkers_; }

    timing read(uint64_t addr, void *dst, unsigned len, sc_core::sc_time at, attr a = attr());
    timing write(uint64_t addr, const void *src, unsigned len, sc_core::sc_time at,
                 attr a = attr());

    // Statistics.
    uint64_t reads = 0, writes = 0, read_requests = 0, read_bytes = 0, write_bytes = 0;
    uint64_t tag_waits = 0;                 // requests that found every tag busy
    uint64_t max_tags_in_flight = 0;
    sc_core::sc_time tag_busy;              // sum over requests of tag hold time
    sc_core::sc_time tag_wait;              // sum of time requests waited for a tag
    // In order: requests whose completion arrived before an earlier read's, so their tag
    // (and their data) waited for it, and the sum of those waits.
    uint64_t in_order_holds = 0;
    sc_core::sc_time in_order_hold;
    hist_ptr read_latency = hist_make();   // per transfer, ps: data_ready - first request start
    uint64_t ats_translation_requests = 0, ats_invalidations = 0;
    const iotlb *atc() const { return atc_.get(); }

    // Optional timeline and counters: the device's page walks and ATS Translation
    // Requests as spans, read tags in flight as a counter (tags_counter).
    // counter_prefix goes before its counters' names (a platform with several devices).
    void set_trace(trace_recorder *trace, trace_counters *counters, const std::string &counter_prefix = "");

private:
    // ATS: the physical address of iova (translated at `at`, which a Translation
    // Request round trip moves on); false on a fault.
    bool ats_translate(const attr &a, uint64_t iova, bool write, sc_core::sc_time &at,
                       uint64_t &pa, bool &fault);
    std::unique_ptr<iotlb> atc_;
    // Device IOMMU: translate iova at `at` (moved on by the lookup and any walk).
    bool device_translate(const attr &a, uint64_t iova, bool write, sc_core::sc_time &at,
                          uint64_t &pa, bool &fault);
    // Either way of translating in the device (ATS or the device IOMMU).
    bool translates_in_device() const { return atc_ || mmu_; }
    bool translate_in_device(const attr &a, uint64_t iova, bool write, sc_core::sc_time &at,
                             uint64_t &pa, bool &fault)
    {
        return mmu_ ? device_translate(a, iova, write, at, pa, fault)
                    : ats_translate(a, iova, write, at, pa, fault);
    }
    static enum vs_dma_status walk_read(void *ctx, uint64_t addr, void *dst, uint32_t len,
                                        enum vs_dma_kind kind);
    static enum vs_dma_status walk_write(void *ctx, uint64_t addr, const void *src, uint32_t len,
                                         enum vs_dma_kind kind);
    std::unique_ptr<iommu> mmu_;
    trace_recorder *trace_ = nullptr;
    trace_lanes ats_lanes_{TRACE_ATS_REQUESTS, "device: ATS translation requests"};
    trace_counters *counters_ = nullptr;
    int tags_counter_ = -1;
    sc_core::sc_time mmu_hit_;
    sc_core::sc_time walk_at_; // time of the walk in progress
    walker_pool walkers_; // a walker keeps its index, and with it its trace track
    vs_guest_ops walk_ops_;
    timing write_bus(uint64_t addr, const void *src, unsigned len, sc_core::sc_time at, attr a);

    // One payload per call site (reused_payload.h): a read's translation (an ATS
    // Translation Request, or the device IOMMU's walk reads) uses its own site's
    // payload, and ends before the read's own request is built.
    reused_payload read_payload_, write_payload_, walk_payload_, ats_payload_;

    tlm::tlm_initiator_socket<> &socket_;
    pcie_cfg cfg_;
    bool in_order_;
    // When each tag is free again, in ascending order: tags are interchangeable, so only
    // these times matter, and sorted the one that frees first is the front and the tags
    // still busy at t are those after upper_bound(t). In order, a release is never
    // earlier than any other, so it goes back at the end.
    std::vector<sc_core::sc_time> tag_free_;
    sc_core::sc_time last_release_;           // in-order: release of the latest read
    uint64_t read_transfers_ = 0;             // the last read transfer's number (dma_attr_ext)
};

class dma_arbiter;
// The DMA engine's statistics (dma.*) from its table: transfers, read tags, in-order
// holds, the channel arbiter's grants and waits (arb), read latency; sim_ns for the means.
// ctrl_queue: the control queue's index (stats_queue_label).
void stats_add_dma_engine(stats_table &s, const dma_engine &e, const dma_arbiter &arb, double sim_ns,
                          unsigned ctrl_queue);

} // namespace viosim

#endif
