#include "dma_engine.h"

#include <algorithm>

#include "dma_arbiter.h"
#include "dma_attr.h"
#include "pcie_link.h"

namespace viosim {

using sc_core::sc_time;

dma_engine::dma_engine(tlm::tlm_initiator_socket<> &socket, const pcie_cfg &cfg,
                       unsigned read_tags, bool completions_in_order)
    : socket_(socket), cfg_(cfg), in_order_(completions_in_order),
      tag_free_(std::max(1u, read_tags), sc_core::SC_ZERO_TIME)
{
}

void dma_engine::enable_ats(const iotlb_config &atc)
{
    atc_.reset(new iotlb());
    iotlb_init(atc_.get(), &atc);
}

void dma_engine::ats_invalidate(uint32_t pasid)
{
    if (!atc_)
        return;
    ats_invalidations++;
    iotlb_invalidate_pasid(atc_.get(), pasid);
}

void dma_engine::enable_device_iommu(const iommu_config &cfg, sc_time hit, unsigned walkers)
{
    mmu_.reset(new iommu());
    iommu_init(mmu_.get(), &cfg);
    mmu_hit_ = hit;
    walkers_.resize(walkers);
    walk_ops_ = {walk_read, walk_write, this};
}

void dma_engine::set_trace(trace_recorder *trace, trace_counters *counters, const std::string &counter_prefix)
{
    trace_ = trace;
    counters_ = counters;
    if (counters_)
        tags_counter_ = counters_->add(counter_prefix + "DMA read tags in flight",
                                       trace_signal_name(counter_prefix) + "dma_read_tags_in_flight");
    if (trace_)
        for (size_t w = 0; w < walkers_.size(); w++)
            trace_->name_track(TRACE_DEVICE_WALKER + int(w),
                               "device IOMMU: page walker " + std::to_string(w + 1));
}

bool dma_engine::device_iommu_set_root(uint32_t pasid, uint64_t root)
{
    return mmu_ && iommu_set_root(mmu_.get(), pasid, root) == VS_REASON_NONE;
}

// A page-table read by the device's own walker: an 8-byte DMA read across the link (of
// a physical address), each waiting for the previous one.
enum vs_dma_status dma_engine::walk_read(void *ctx, uint64_t addr, void *dst, uint32_t len,
                                         enum vs_dma_kind)
{
    auto *e = static_cast<dma_engine *>(ctx);
    const sc_time now = sc_core::sc_time_stamp();
    reused_payload::lease payload(e->walk_payload_);
    tlm::tlm_generic_payload &tx =
        payload.prepare(tlm::TLM_READ_COMMAND, addr, static_cast<unsigned char *>(dst), len);
    sc_time delay = e->walk_at_ - now;
    e->socket_->b_transport(tx, delay);
    e->read_requests++;
    e->walk_at_ = now + delay;
    return tx.is_response_ok() ? VS_DMA_OK : VS_DMA_OUT_OF_RANGE;
}

enum vs_dma_status dma_engine::walk_write(void *, uint64_t, const void *, uint32_t, enum vs_dma_kind)
{
    return VS_DMA_OUT_OF_RANGE; // a walker never writes page tables
}

bool dma_engine::device_translate(const attr &a, uint64_t iova, bool write, sc_time &at,
                                  uint64_t &pa, bool &fault)
{
    // A miss walks on the walker that frees first, once the lookup is done; the walk's
    // reads start from there (walk_read), so the walker is chosen before the kernel
    // says whether it misses. A hit leaves the walkers alone.
    const sc_time looked_up = at + mmu_hit_;
    const walker_pool::slot w = walkers_.take(looked_up);
    walk_at_ = w.start;
    iommu_result r;
    const iommu_status st = iommu_translate(mmu_.get(), &walk_ops_, a.pasid, iova, write, &r);
    if (r.walk_reads > 0) {
        walkers_.book(w, looked_up, walk_at_);
        if (trace_)
            trace_->span_args(TRACE_DEVICE_WALKER + int(w.walker),
                              st == IOMMU_OK ? "walk" : "walk_fault", w.start, walk_at_, "iova",
                              iova, "reads", r.walk_reads);
        at = walk_at_;
    } else {
        at = looked_up;
    }
    if (st != IOMMU_OK) {
        fault = true;
        return false;
    }
    pa = r.pa;
    return true;
}

bool dma_engine::ats_translate(const attr &a, uint64_t iova, bool write, sc_time &at,
                               uint64_t &pa, bool &fault)
{
    iotlb_entry e;
    if (iotlb_lookup(atc_.get(), a.pasid, iova, write, &e)) {
        pa = iotlb_entry_pa(&e, iova);
        return true;
    }
    // Translation Request: a read-like request answered with the translation (8 bytes).
    const sc_time now = sc_core::sc_time_stamp();
    uint64_t answer = 0;
    reused_payload::lease payload(ats_payload_);
    tlm::tlm_generic_payload &tx = payload.prepare(
        tlm::TLM_READ_COMMAND, iova, reinterpret_cast<unsigned char *>(&answer), sizeof answer);
    dma_attr_ext dattr;
    dattr.pasid = a.pasid;
    dattr.translation_request = true;
    dattr.write = write;
    tx.set_extension(&dattr);
    sc_time delay = at - now;
    socket_->b_transport(tx, delay);
    tx.clear_extension(&dattr);
    ats_translation_requests++;
    if (trace_)
        trace_->span_args(ats_lanes_.track(*trace_, at, now + delay),
                          tx.is_response_ok() ? "ats_translation" : "ats_fault", at, now + delay,
                          "iova", iova, "pasid", a.pasid);
    at = now + delay;
    if (!tx.is_response_ok()) {
        fault = dattr.iommu_fault;
        return false;
    }
    iotlb_insert(atc_.get(), a.pasid, iova, dattr.page_shift, dattr.translated_pa, dattr.writable);
    pa = dattr.translated_pa + (iova & ((uint64_t(1) << dattr.page_shift) - 1));
    return true;
}

dma_engine::timing dma_engine::read(uint64_t addr, void *dst, unsigned len, sc_time at, attr a)
{
    const sc_time now = sc_core::sc_time_stamp();
    sc_time first_start = sc_core::SC_ZERO_TIME;
    bool first = true;
    timing r{at, at, true, false};
    reads++;
    read_bytes += len;
    unsigned char *data = static_cast<unsigned char *>(dst);
    const uint64_t transfer = ++read_transfers_;
    tlp_chunk req;
    for (tlp_splitter requests = pcie_read_request_splitter(cfg_, addr, len); requests.next(req);) {
        // Take the tag that frees first.
        const sc_time tag = tag_free_.front();
        const sc_time start = std::max(at, tag);
        if (first) {
            first_start = start;
            first = false;
        }
        if (tag > at) {
            tag_waits++;
            tag_wait += tag - at;
        }
        const uint64_t busy =
            uint64_t(tag_free_.end() - std::upper_bound(tag_free_.begin(), tag_free_.end(), start));
        max_tags_in_flight = std::max(max_tags_in_flight, busy + 1);

        // When the device translates (ATS, or its own IOMMU) it sends the physical
        // address (a request never crosses a 4 KiB page); the root complex does not
        // translate again.
        uint64_t bus_addr = req.addr;
        bool translate = a.translate;
        sc_time issue = start;
        if (translate && translates_in_device()) {
            bool fault = false;
            if (!translate_in_device(a, req.addr, false, issue, bus_addr, fault)) {
                r.ok = false;
                r.iommu_fault = fault;
                r.data_ready = std::max(r.data_ready, issue);
                break;
            }
            translate = false;
        }

        reused_payload::lease payload(read_payload_);
        tlm::tlm_generic_payload &tx =
            payload.prepare(tlm::TLM_READ_COMMAND, bus_addr, data + (req.addr - addr), req.len);
        link_timing_ext ext;
        dma_attr_ext dattr;
        dattr.pasid = a.pasid;
        dattr.translate = translate;
        dattr.read_transfer = transfer;
        tx.set_extension(&dattr);
        tx.set_extension(&ext);
        ext.request_sent = issue;
        sc_time delay = issue - now;
        socket_->b_transport(tx, delay);
        tx.clear_extension(&ext);
        tx.clear_extension(&dattr);
        read_requests++;

        const sc_time completed = now + delay;
        const sc_time release = in_order_ ? std::max(completed, last_release_) : completed;
        if (release > completed) {
            in_order_holds++;
            in_order_hold += release - completed;
        }
        last_release_ = std::max(last_release_, release);
        tag_free_.erase(tag_free_.begin());
        tag_free_.insert(std::upper_bound(tag_free_.begin(), tag_free_.end(), release), release);
        tag_busy += release - start;
        if (counters_) {
            counters_->change(tags_counter_, start, +1);
            counters_->change(tags_counter_, release, -1);
        }
        r.data_ready = std::max(r.data_ready, release);
        at = std::max(ext.request_sent, issue);
        r.issued = at;
        if (!tx.is_response_ok()) {
            r.ok = false;
            r.iommu_fault = dattr.iommu_fault;
            break;
        }
    }
    // Latency from the moment the first request could go (a tag was free) to the data.
    hist_record(read_latency.get(), uint64_t((r.data_ready - first_start).value()));
    return r;
}

dma_engine::timing dma_engine::write(uint64_t addr, const void *src, unsigned len, sc_time at,
                                     attr a)
{
    if (a.translate && translates_in_device()) {
        // Translate each 4 KiB piece in the device, then write physical addresses.
        const unsigned char *p = static_cast<const unsigned char *>(src);
        timing t{at, at, true, false};
        for (unsigned off = 0; off < len;) {
            const unsigned piece = unsigned(std::min<uint64_t>(len - off, 4096 - ((addr + off) & 4095)));
            uint64_t pa = 0;
            bool fault = false;
            if (!translate_in_device(a, addr + off, true, at, pa, fault)) {
                t.ok = false;
                t.iommu_fault = fault;
                t.issued = t.data_ready = at;
                return t;
            }
            attr physical = a;
            physical.translate = false;
            const timing w = write_bus(pa, p + off, piece, at, physical);
            writes--; // write_bus counted the piece; count the transfer once below
            write_bytes -= piece;
            at = w.issued;
            t.issued = t.data_ready = w.issued;
            if (!w.ok) {
                t.ok = false;
                break;
            }
            off += piece;
        }
        writes++;
        write_bytes += len;
        return t;
    }
    return write_bus(addr, src, len, at, a);
}

// One posted write as given (no ATS translation).
dma_engine::timing dma_engine::write_bus(uint64_t addr, const void *src, unsigned len, sc_time at,
                                         attr a)
{
    const sc_time now = sc_core::sc_time_stamp();
    reused_payload::lease payload(write_payload_);
    tlm::tlm_generic_payload &tx =
        payload.prepare(tlm::TLM_WRITE_COMMAND, addr,
                        const_cast<unsigned char *>(static_cast<const unsigned char *>(src)), len);
    dma_attr_ext dattr;
    dattr.pasid = a.pasid;
    dattr.translate = a.translate;
    tx.set_extension(&dattr);
    sc_time delay = at - now;
    socket_->b_transport(tx, delay);
    tx.clear_extension(&dattr);
    writes++;
    write_bytes += len;
    const sc_time sent = now + delay;
    return timing{sent, sent, tx.is_response_ok(), dattr.iommu_fault};
}

void stats_add_dma_engine(stats_table &s, const dma_engine &e, const dma_arbiter &arb, double sim_ns,
                          unsigned ctrl_queue)
{
    static const stat_row<dma_engine> transfers[] = {
        {"reads", "count", stat_better::lower, "DMA read transfers", &dma_engine::reads},
        {"read_requests", "count", stat_better::lower, "read request TLPs (one tag each)",
         &dma_engine::read_requests},
        {"writes", "count", stat_better::lower, "DMA write transfers", &dma_engine::writes},
        {"read_bytes", "bytes", stat_better::lower, "bytes read by DMA", &dma_engine::read_bytes},
        {"write_bytes", "bytes", stat_better::lower, "bytes written by DMA", &dma_engine::write_bytes},
        {"tag_waits", "count", stat_better::lower, "read requests that found every tag busy",
         &dma_engine::tag_waits},
    };
    stats_add_rows(s, "dma.", transfers, e);
    s.add_f64("dma.tag_wait_ns", "ns", stat_better::lower, "total time read requests waited for a tag",
              e.tag_wait.to_seconds() * 1e9);
    s.add_u64("dma.in_order_holds", "count", stat_better::lower,
              "read requests (dma.completion_order=in_order) whose completion arrived before an "
              "earlier read's, so their tag and data waited for it",
              e.in_order_holds);
    s.add_f64("dma.in_order_hold_ns", "ns", stat_better::lower,
              "total time completed read requests waited for earlier reads to complete",
              e.in_order_hold.to_seconds() * 1e9);
    s.add_u64("dma.tags.max_in_flight", "count", stat_better::neutral, "most read tags held at once", e.max_tags_in_flight);
    s.add_f64("dma.tags.mean_in_flight", "count", stat_better::neutral, "read tags held on average over the run",
              sim_ns > 0 ? e.tag_busy.to_seconds() * 1e9 / sim_ns : 0.0);
    // Per queue (the arbiter's requesters): pair 1 and the control queue always, the
    // queues of pairs 2..N when they were granted a channel.
    const unsigned nq = unsigned(arb.grants.size());
    for (unsigned q : stats_queue_order(nq, ctrl_queue)) {
        if (q >= 2 && q != ctrl_queue && arb.grants[q] == 0 && arb.waits[q] == 0)
            continue;
        const std::string n = "dma.channel." + stats_queue_label(q, nq, ctrl_queue);
        s.add_u64(n + ".grants", "count", stat_better::lower, "DMA channel grants to this queue's engine (dma.channels_count > 0)",
                  arb.grants[q]);
        s.add_u64(n + ".waits", "count", stat_better::lower, "transfers of this queue that waited for a DMA channel",
                  arb.waits[q]);
    }
    s.add_f64("dma.channel.wait_ns", "ns", stat_better::lower, "total time transfers waited for a DMA channel",
              arb.wait_time.to_seconds() * 1e9);
    const hist &lat = *e.read_latency;
    s.add_f64("dma.read_latency.p50_ns", "ns", stat_better::lower, "median time from issuing a DMA read to all its data",
              hist_percentile_ns(lat, 0.50));
    s.add_f64("dma.read_latency.p99_ns", "ns", stat_better::lower, "99th percentile DMA read latency",
              hist_percentile_ns(lat, 0.99));
    s.add_f64("dma.read_latency.mean_ns", "ns", stat_better::lower, "mean DMA read latency", hist_mean(&lat) / 1000.0);
    s.add_f64("dma.read_latency.max_ns", "ns", stat_better::lower, "largest DMA read latency",
              lat.count == 0 ? 0.0 : lat.max / 1000.0);
    // Histogram: reads whose latency is below 2^k ns, for k = 8 .. 16, and the rest.
    stats_add_coarse_hist(s, "dma.read_latency", lat, 8, 16,
                          "DMA reads faster than this bound and not faster than the previous one",
                          "DMA reads taking 65536 ns or more");
}

} // namespace viosim
