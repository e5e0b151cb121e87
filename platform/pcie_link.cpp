#include "pcie_link.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "address_map.h"
#include "dma_attr.h"

namespace viosim {

using sc_core::sc_time;
using sc_core::SC_NS;

sc_time link_direction::tlp_time_first(unsigned bytes)
{
    if (durations_rate != bytes_per_ns) {
        durations.clear();
        durations_rate = bytes_per_ns;
    }
    if (bytes >= durations.size())
        durations.resize(bytes + 1u, sc_core::SC_ZERO_TIME);
    durations[bytes] = sc_time(bytes / bytes_per_ns, SC_NS);
    return durations[bytes];
}

sc_time link_direction::send(sc_time now, sc_time at, tlp_type type, unsigned payload,
                             unsigned overhead)
{
    // Intervals are sorted by start and by end alike.
    const auto busy_after = [&](const sc_time &t) {
        return std::upper_bound(booked.begin(), booked.end(), t,
                                [](const sc_time &x, const interval &b) { return x < b.second; });
    };
    booked.erase(booked.begin(), busy_after(now));
    const sc_time duration = tlp_time(payload + overhead);
    // The first gap at or after `at` that holds the TLP: from the first interval still
    // busy at `at`, skip every interval the TLP would overlap.
    sc_time start = at;
    auto next = busy_after(at);
    for (; next != booked.end() && next->first < start + duration; ++next)
        start = std::max(start, next->second);
    const sc_time end = start + duration;
    // Book [start, end) before `next`, merged with the neighbours it touches.
    const bool joins_prev = next != booked.begin() && std::prev(next)->second == start;
    const bool joins_next = next != booked.end() && next->first == end;
    if (joins_prev && joins_next) {
        std::prev(next)->second = next->second;
        booked.erase(next);
    } else if (joins_prev) {
        std::prev(next)->second = end;
    } else if (joins_next) {
        next->first = start;
    } else {
        booked.insert(next, {start, end});
    }
    busy += duration;
    tlps[int(type)]++;
    payload_bytes += payload;
    overhead_bytes += overhead;
    if (trace) {
        static const char *const names[] = {"MRd", "MWr", "CplD", "Cpl"};
        trace->span(track, names[int(type)], start, end);
    }
    return end;
}

pcie_link::pcie_link(sc_core::sc_module_name name, const pcie_cfg &cfg, sc_time read_fixed)
    : sc_module(name), up_in("up_in"), up_out("up_out"), down_in("down_in"),
      down_out("down_out"), cfg_(cfg), read_fixed_(read_fixed)
{
    up.bytes_per_ns = down.bytes_per_ns = pcie_tlp_bytes_per_ns(cfg);
    up_in.register_b_transport(this, &pcie_link::b_upstream);
    down_in.register_b_transport(this, &pcie_link::b_downstream);
}

// A non-posted read: request TLPs on `req`, the completer's answer after the fixed
// round trip plus its own latency, completions on `cpl`. The transaction's delay ends
// when the last completion has arrived.
void pcie_link::read(tlm::tlm_generic_payload &tx, sc_time &delay, link_direction &req,
                     link_direction &cpl, tlm_utils::simple_initiator_socket<pcie_link> &out)
{
    const sc_time now = sc_core::sc_time_stamp();
    unsigned char *data = tx.get_data_ptr();
    const uint64_t base = tx.get_address();
    sc_time t = now + delay, done = t;
    tlp_chunk r;
    for (tlp_splitter requests = pcie_read_request_splitter(cfg_, base, tx.get_data_length());
         requests.next(r);) {
        t = req.send(now, t, tlp_type::mrd, 0, pcie_tlp_overhead_bytes(cfg_, tlp_type::mrd));
        reused_payload::lease payload(&req == &up ? up_request_ : down_request_);
        tlm::tlm_generic_payload &sub =
            payload.prepare(tlm::TLM_READ_COMMAND, r.addr, data + (r.addr - base), r.len);
        // The request's attributes (PASID, translation) travel with each request TLP.
        dma_attr_ext *attr = tx.get_extension<dma_attr_ext>();
        if (attr)
            sub.set_extension(attr);
        // The request reaches the completer half a round trip after it left. The
        // completer is handed that moment as its delay, so anything it times itself
        // (the IOMMU's page walkers, a register read's effects) sees the request's own
        // time, not the simulation's current time, which depends on the quantum.
        const sc_time arrival = t + read_fixed_ / 2;
        sc_time completer = arrival - now;
        out->b_transport(sub, completer);
        completer = now + completer - arrival; // what the completer itself took
        if (attr)
            sub.clear_extension(attr);
        if (sub.get_response_status() != tlm::TLM_OK_RESPONSE) {
            // An unsupported request comes back as a completion without data.
            errors++;
            tx.set_response_status(sub.get_response_status());
            delay = cpl.send(now, t + read_fixed_, tlp_type::cpl, 0,
                             pcie_tlp_overhead_bytes(cfg_, tlp_type::cpl)) - now;
            return;
        }
        sc_time at = t + read_fixed_ + completer;
        tlp_chunk c;
        for (tlp_splitter s = pcie_completion_splitter(cfg_, r.addr, r.len); s.next(c);)
            at = cpl.send(now, at, tlp_type::cpld, c.len, pcie_tlp_overhead_bytes(cfg_, tlp_type::cpld));
        done = std::max(done, at);
    }
    if (link_timing_ext *ext = tx.get_extension<link_timing_ext>())
        ext->request_sent = t;
    delay = done - now;
    tx.set_response_status(tlm::TLM_OK_RESPONSE);
}

// A posted write: returns when its last TLP has left.
sc_time pcie_link::write(tlm::tlm_generic_payload &tx, sc_time now, sc_time at,
                         link_direction &dir)
{
    tlp_chunk w;
    for (tlp_splitter s = pcie_write_splitter(cfg_, tx.get_address(), tx.get_data_length()); s.next(w);)
        at = dir.send(now, at, tlp_type::mwr, w.len, pcie_tlp_overhead_bytes(cfg_, tlp_type::mwr));
    return at;
}

// Device to host: DMA reads and writes, MSI-X messages (posted writes).
void pcie_link::b_upstream(tlm::tlm_generic_payload &tx, sc_time &delay)
{
    if (tx.is_read()) {
        read(tx, delay, up, down, up_out);
        return;
    }
    const sc_time now = sc_core::sc_time_stamp();
    const sc_time sent = write(tx, now, now + delay, up);
    // The write reaches the host half a round trip after its last byte left.
    sc_time arrival = sent + read_fixed_ / 2 - now;
    up_out->b_transport(tx, arrival);
    if (tx.get_response_status() != tlm::TLM_OK_RESPONSE)
        errors++;
    // Posted: the device is done once the TLP is on the wire.
    delay = sent - now;
}

// Host to device: MMIO (posted writes, non-posted reads) and configuration requests
// (non-posted both ways; modelled with memory TLP sizes).
void pcie_link::b_downstream(tlm::tlm_generic_payload &tx, sc_time &delay)
{
    if (tx.is_read()) {
        read(tx, delay, down, up, down_out);
        return;
    }
    const sc_time now = sc_core::sc_time_stamp();
    const uint64_t addr = tx.get_address();
    const bool config = amap::in(addr, tx.get_data_length(), config_base, amap::ecam_size);
    const sc_time sent = write(tx, now, now + delay, down);
    sc_time arrival = sent + read_fixed_ / 2 - now;
    down_out->b_transport(tx, arrival);
    if (tx.get_response_status() != tlm::TLM_OK_RESPONSE)
        errors++;
    if (config) {
        // Configuration writes are non-posted: the CPU waits for the completion.
        delay = up.send(now, sent + read_fixed_, tlp_type::cpl, 0,
                        pcie_tlp_overhead_bytes(cfg_, tlp_type::cpl)) - now;
    }
    // Posted MMIO write: the CPU does not wait for the link (its own store cost is
    // charged by the CPU model).
}

} // namespace viosim
