#include "root_complex.h"

#include <algorithm>

#include "address_map.h"
#include "dma_attr.h"
#include "dma_engine.h"
#include "host_memory.h"

namespace viosim {

iommu_config iommu_config_of(const iommu_params &p, uint64_t seed)
{
    iommu_config ic = {};
    ic.enabled = true; // requests say whether they want translation (ACCESS_PLATFORM)
    ic.iotlb.entries = p.iotlb_entries;
    ic.iotlb.ways = p.iotlb_ways;
    ic.iotlb.policy = p.random_replacement ? IOTLB_RANDOM : IOTLB_LRU;
    ic.iotlb.seed = seed;
    ic.psc_entries[iommu_psc_slot(4)] = p.psc_level4_entries;
    ic.psc_entries[iommu_psc_slot(3)] = p.psc_level3_entries;
    ic.psc_entries[iommu_psc_slot(2)] = p.psc_level2_entries;
    return ic;
}

iommu_timing iommu_timing_of(const iommu_params &p)
{
    iommu_timing it;
    it.iotlb_hit = sc_core::sc_time(p.iotlb_hit_ns, sc_core::SC_NS);
    it.walkers = p.walkers_count;
    it.walk_read_overhead = sc_core::sc_time(p.walk_read_overhead_ns, sc_core::SC_NS);
    return it;
}

using sc_core::sc_time;

root_complex::root_complex(sc_core::sc_module_name name, const iommu_config &cfg,
                           const iommu_timing &t)
    : sc_module(name), from_link("from_link"), to_memory("to_memory"), to_intc("to_intc"),
      iommu_(new iommu()), t_(t), walkers_(t.walkers)
{
    from_link.register_b_transport(this, &root_complex::b_transport);
    iommu_init(iommu_.get(), &cfg);
    walk_ops_ = {walk_read, no_write, this};
}

void root_complex::set_trace(trace_recorder *trace)
{
    trace_ = trace;
    if (trace_)
        for (size_t w = 0; w < walkers_.size(); w++)
            trace_->name_track(TRACE_RC_WALKER + int(w),
                               "root complex IOMMU: page walker " + std::to_string(w + 1));
}

bool root_complex::iommu_set_root(uint32_t pasid, uint64_t root)
{
    if (::iommu_set_root(iommu_.get(), pasid, root) != VS_REASON_NONE)
        return false;
    // The device's ATS translation cache must forget the address space too (an ATS
    // Invalidate Request to the device).
    if (on_invalidate)
        on_invalidate(pasid);
    return true;
}

// Page-table reads are memory reads by the IOMMU itself (not through the link).
enum vs_dma_status root_complex::walk_read(void *ctx, uint64_t addr, void *dst, uint32_t len,
                                           enum vs_dma_kind)
{
    auto *rc = static_cast<root_complex *>(ctx);
    reused_payload::lease payload(rc->walk_payload_);
    tlm::tlm_generic_payload &tx =
        payload.prepare(tlm::TLM_READ_COMMAND, addr, static_cast<unsigned char *>(dst), len);
    sc_time d = sc_core::SC_ZERO_TIME;
    rc->to_memory->b_transport(tx, d);
    // The walk's reads depend on each other: they add up.
    rc->walk_delay_ += d + rc->t_.walk_read_overhead;
    return tx.is_response_ok() ? VS_DMA_OK : VS_DMA_OUT_OF_RANGE;
}

enum vs_dma_status root_complex::no_write(void *, uint64_t, const void *, uint32_t, enum vs_dma_kind)
{
    return VS_DMA_OUT_OF_RANGE; // the IOMMU never writes page tables
}

// Look up (and on a miss walk) the translation of iova; charges the lookup and the
// walk (on a free walker) into delay.
iommu_status root_complex::translate(uint32_t pasid, uint64_t iova, bool write, iommu_result &r,
                                     sc_time &delay)
{
    const sc_time now = sc_core::sc_time_stamp();
    walk_delay_ = sc_core::SC_ZERO_TIME;
    const iommu_status st = iommu_translate(iommu_.get(), &walk_ops_, pasid, iova, write, &r);
    delay += t_.iotlb_hit;
    if (r.walk_reads > 0) {
        const sc_time ready = now + delay;
        const walker_pool::slot w = walkers_.take(ready);
        const sc_time end = w.start + walk_delay_;
        walkers_.book(w, ready, end);
        if (trace_)
            trace_->span_args(TRACE_RC_WALKER + int(w.walker),
                              st == IOMMU_OK ? "walk" : "walk_fault", w.start, end, "iova", iova,
                              "reads", r.walk_reads);
        delay = end - now;
    }
    if (st != IOMMU_OK)
        iommu_faults++;
    return st;
}

// ATS: the device asks for a translation to cache in its own translation cache.
void root_complex::translation_request(tlm::tlm_generic_payload &tx, dma_attr_ext &attr,
                                       sc_time &delay)
{
    translation_requests++;
    iommu_result r;
    if (translate(attr.pasid, tx.get_address(), attr.write, r, delay) != IOMMU_OK) {
        attr.iommu_fault = true;
        tx.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    const unsigned shift = r.page_size >= (1u << 21) ? 21 : 12;
    attr.translated_pa = r.pa & ~((uint64_t(1) << shift) - 1);
    attr.page_shift = shift;
    attr.writable = r.writable;
    tx.set_response_status(tlm::TLM_OK_RESPONSE);
}

void root_complex::b_transport(tlm::tlm_generic_payload &tx, sc_time &delay)
{
    const uint64_t addr = tx.get_address();
    const unsigned len = tx.get_data_length();
    if (amap::in(addr, len, amap::msi_base, amap::msi_size)) {
        // MSI-X messages go to the interrupt controller untranslated.
        if (!tx.is_write()) {
            unsupported++;
            tx.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
            return;
        }
        msi_writes++;
        to_intc->b_transport(tx, delay);
        return;
    }
    dma_attr_ext *attr = tx.get_extension<dma_attr_ext>();
    if (attr && attr->translation_request) {
        translation_request(tx, *attr, delay);
        return;
    }
    // A read's data streams after the data of the transfer's earlier requests.
    const uint64_t transfer = tx.is_read() && attr ? attr->read_transfer : 0;
    read_stream_ext order;
    if (tx.is_read()) {
        order.after = transfer != 0 && transfer == stream_transfer_ ? stream_streamed_
                                                                    : sc_core::SC_ZERO_TIME;
        tx.set_extension(&order);
    }
    if (!attr || !attr->translate) {
        // Untranslated (no ACCESS_PLATFORM): the address is physical. Anything outside
        // guest RAM ends in the memory target's address-error response.
        to_memory->b_transport(tx, delay);
    } else {
        translated(tx, *attr, delay, tx.is_read() ? &order : nullptr);
    }
    if (tx.is_read()) {
        tx.clear_extension(&order);
        if (tx.is_response_ok() && transfer != 0) {
            stream_transfer_ = transfer;
            stream_streamed_ = order.streamed;
        }
    }
}

// Translate page by page; each piece goes to memory at its physical address.
void root_complex::translated(tlm::tlm_generic_payload &tx, dma_attr_ext &attr, sc_time &delay,
                              read_stream_ext *order)
{
    const uint64_t addr = tx.get_address();
    const unsigned len = tx.get_data_length();
    unsigned char *data = tx.get_data_ptr();
    sc_time t = delay, done = delay;
    for (unsigned off = 0; off < len || (len == 0 && off == 0);) {
        iommu_result r;
        if (translate(attr.pasid, addr + off, tx.is_write(), r, t) != IOMMU_OK) {
            attr.iommu_fault = true;
            tx.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
            delay = t;
            return;
        }
        const unsigned piece = unsigned(std::min<uint64_t>(len - off, r.span));
        reused_payload::lease payload(piece_payload_);
        tlm::tlm_generic_payload &sub = payload.prepare(tx.get_command(), r.pa, data + off, piece);
        if (order)
            sub.set_extension(order);
        sc_time d = t;
        to_memory->b_transport(sub, d);
        if (order) {
            sub.clear_extension(order);
            order->after = order->streamed; // the next piece streams after this one
        }
        if (!sub.is_response_ok()) {
            tx.set_response_status(sub.get_response_status());
            delay = d;
            return;
        }
        done = std::max(done, d);
        off += piece;
        if (piece == 0)
            break;
    }
    delay = done;
    tx.set_response_status(tlm::TLM_OK_RESPONSE);
}

void stats_add_iommu(stats_table &s, const root_complex &rc, const dma_engine &e)
{
    // The iommu.* rows describe whichever IOMMU translated: the device's own, or the
    // root complex's.
    const iommu &m = e.device_iommu() ? *e.device_iommu()
                                                       : rc.iommu_state();
    const iommu_counts &t = m.stats.total;
    s.add_u64("iommu.requests", "count", stat_better::lower, "translation requests (pieces of device DMA asking for it)", m.stats.requests);
    static const stat_row<iommu_counts> iotlb[] = {
        {"lookups", "count", stat_better::lower, "IOTLB lookups", &iommu_counts::lookups},
        {"hits", "count", stat_better::higher, "IOTLB hits", &iommu_counts::hits},
        {"misses", "count", stat_better::lower, "IOTLB misses", &iommu_counts::misses},
    };
    stats_add_rows(s, "iommu.iotlb.", iotlb, t);
    s.add_f64("iommu.iotlb.hit_rate", "fraction", stat_better::higher, "IOTLB hits over lookups",
              t.lookups ? double(t.hits) / double(t.lookups) : 0.0);
    s.add_u64("iommu.walks", "count", stat_better::lower, "page walks", t.walks);
    s.add_u64("iommu.walk_reads", "count", stat_better::lower, "page-table entries read by walks", t.walk_reads);
    s.add_f64("iommu.walk_time_ns", "ns", stat_better::lower, "total duration of page walks",
              (rc.walkers().busy + e.device_walkers().busy).to_seconds() * 1e9);
    // Walker contention at either location: one of the two sums is always zero.
    s.add_u64("iommu.walker_waits", "count", stat_better::lower, "walks that waited for a free walker",
              rc.walkers().waits + e.device_walkers().waits);
    s.add_f64("iommu.walker_wait_ns", "ns", stat_better::lower, "total time walks waited for a walker",
              (rc.walkers().wait + e.device_walkers().wait).to_seconds() * 1e9);
    s.add_u64("iommu.faults", "count", stat_better::lower, "translations that faulted (the access was aborted)", t.faults);
    // Paging-structure caches, probed from level 2 up until one hits: a level's hits
    // and misses add up to the walks that missed every cache below it.
    static const stat_row<iommu_psc_counts> psc[] = {
        {"hits", "count", stat_better::higher,
         "walks that started below this level from its paging-structure cache", &iommu_psc_counts::hits},
        {"misses", "count", stat_better::lower,
         "walks that found no usable entry in this level's paging-structure cache",
         &iommu_psc_counts::misses},
        {"evictions", "count", stat_better::lower,
         "entries of this level's paging-structure cache replaced (LRU) by a walk",
         &iommu_psc_counts::evictions},
        {"invalidated", "count", stat_better::neutral,
         "entries of this level's paging-structure cache dropped by invalidation or a root change",
         &iommu_psc_counts::entries_invalidated},
    };
    for (unsigned level = IOMMU_LEVELS; level >= IOMMU_PSC_LOWEST_LEVEL; level--) {
        const iommu_psc_counts &c = m.stats.psc[iommu_psc_slot(level)];
        stats_add_rows(s, "iommu.psc.level" + std::to_string(level) + ".", psc, c);
    }
    s.add_u64("iommu.ats.translation_requests", "count", stat_better::lower,
              "ATS Translation Requests the device sent (its translation cache missed)",
              e.ats_translation_requests);
    s.add_u64("iommu.ats.requests_at_root_complex", "count", stat_better::lower,
              "ATS Translation Requests the root complex answered", rc.translation_requests);
    s.add_u64("iommu.ats.atc_hits", "count", stat_better::higher, "device translation cache hits (ATS)",
              e.atc() ? e.atc()->stats.hits : 0);
    s.add_u64("iommu.ats.atc_misses", "count", stat_better::lower, "device translation cache misses (ATS)",
              e.atc() ? e.atc()->stats.misses : 0);
    s.add_u64("iommu.ats.invalidations", "count", stat_better::neutral,
              "ATS invalidations of the device's translation cache by host software",
              e.ats_invalidations);
    if (m.fault_logged > 0) {
        const iommu_fault &f = m.fault_log[0];
        s.add_u64("iommu.first_fault.iova", "address", stat_better::neutral, "IOVA of the first fault", f.iova);
        s.add_u64("iommu.first_fault.pasid", "pasid", stat_better::neutral, "PASID of the first fault", f.pasid);
        s.add_u64("iommu.first_fault.write", "bool", stat_better::neutral, "the first fault was a write", f.write);
        s.add_u64("iommu.first_fault.reason", "code", stat_better::neutral,
                  std::string("vs_reason code of the first fault: ") + vs_reason_name(f.reason), f.reason);
    }
    static const stat_row<iommu_counts> per_pasid[] = {
        {"lookups", "count", stat_better::lower, "IOTLB lookups in this address space", &iommu_counts::lookups},
        {"hits", "count", stat_better::higher, "IOTLB hits in this address space", &iommu_counts::hits},
        {"walks", "count", stat_better::lower, "page walks in this address space", &iommu_counts::walks},
        {"faults", "count", stat_better::lower, "faults in this address space", &iommu_counts::faults},
    };
    for (uint32_t pasid = 0; pasid < IOMMU_PASIDS_MAX; pasid++) {
        const iommu_counts &c = m.stats.pasid[pasid];
        if (c.lookups == 0 && c.faults == 0)
            continue;
        stats_add_rows(s, "iommu.pasid." + std::to_string(pasid) + ".", per_pasid, c);
    }
}

} // namespace viosim
