// pcie_link.h -- a PCIe link between the root complex (host) and the device.
//
// Two directions, each serialising its TLPs independently: a TLP starts when its
// direction is next free (contention) and occupies it for (payload + TLP overhead) /
// (rate left for TLPs). Sizes and rates come from pcie_tlp.h. Memory writes are
// posted: the sender is busy only while the TLP is on the wire. Reads are non-posted:
// requests (split at the max read request size and 4 KiB) go one way, completions
// (split at the max payload size or the RCB) come back after the fixed round trip.
#ifndef VIOSIM_PCIE_LINK_H
#define VIOSIM_PCIE_LINK_H

#include <cstdint>
#include <utility>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "address_map.h"
#include "pcie_tlp.h"
#include "reused_payload.h"
#include "trace.h"

namespace viosim {

// Filled in by the link on read transactions that carry it: when the last request
// TLP left, so a pipelining initiator knows when it may issue the next request.
struct link_timing_ext : tlm::tlm_extension<link_timing_ext> {
    sc_core::sc_time request_sent;
    tlm::tlm_extension_base *clone() const override { return new link_timing_ext(*this); }
    void copy_from(const tlm::tlm_extension_base &other) override
    {
        *this = static_cast<const link_timing_ext &>(other);
    }
};

// One direction's serialiser. TLPs are booked in the order their senders are simulated,
// which is not the order of their times (a read's completions are booked when the read
// is issued, hundreds of ns ahead), so the direction keeps the intervals it is booked
// and a TLP takes the first gap at or after its time that is long enough.
struct link_direction {
    double bytes_per_ns = 1.0;
    // Booked intervals [start, end), sorted, disjoint, touching ones merged; those over
    // before the current simulated time are dropped (no TLP can start before it), so
    // the list holds only what is booked ahead.
    using interval = std::pair<sc_core::sc_time, sc_core::sc_time>;
    std::vector<interval> booked;
    sc_core::sc_time busy = sc_core::SC_ZERO_TIME;
    uint64_t tlps[4] = {};          // by tlp_type
    uint64_t payload_bytes = 0, overhead_bytes = 0;
    trace_recorder *trace = nullptr; // optional timeline
    int track = 0;
    // A TLP's serialisation time by its size in bytes, each computed once with the same
    // expression (a double converted to sc_time costs a division and SystemC's rounding
    // on every TLP); SC_ZERO_TIME = not yet computed. Dropped if bytes_per_ns changes.
    std::vector<sc_core::sc_time> durations;
    double durations_rate = 0.0;
    sc_core::sc_time tlp_time(unsigned bytes)
    {
        if (bytes < durations.size() && durations[bytes].value() != 0 &&
            durations_rate == bytes_per_ns)
            return durations[bytes];
        return tlp_time_first(bytes);
    }
    sc_core::sc_time tlp_time_first(unsigned bytes);

    // Send one TLP no earlier than `at` (>= now, the current simulated time); returns
    // when its last byte has left.
    sc_core::sc_time send(sc_core::sc_time now, sc_core::sc_time at, tlp_type type,
                          unsigned payload, unsigned overhead);
};

class pcie_link : public sc_core::sc_module {
public:
    // Upstream: device DMA and MSI-X writes in, towards the root complex out.
    tlm_utils::simple_target_socket<pcie_link> up_in;
    tlm_utils::simple_initiator_socket<pcie_link> up_out;
    // Downstream: CPU MMIO and configuration requests in, towards the device out.
    tlm_utils::simple_target_socket<pcie_link> down_in;
    tlm_utils::simple_initiator_socket<pcie_link> down_out;

    // read_fixed: round trip of a read excluding serialisation and the completer's own
    // latency (which the target adds).
    pcie_link(sc_core::sc_module_name name, const pcie_cfg &cfg, sc_core::sc_time read_fixed);

    link_direction up, down;  // up = device to host
    uint64_t errors = 0;
    // The device's configuration window (virtio_device_tlm::set_config_window): writes in
    // it are non-posted configuration requests, waited for like reads.
    uint64_t config_base = amap::ecam_base;
    const pcie_cfg &cfg() const { return cfg_; }

private:
    void b_upstream(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
    void b_downstream(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
    void read(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay, link_direction &req,
              link_direction &cpl, tlm_utils::simple_initiator_socket<pcie_link> &out);
    sc_core::sc_time write(tlm::tlm_generic_payload &tx, sc_core::sc_time now, sc_core::sc_time at,
                           link_direction &dir);

    pcie_cfg cfg_;
    sc_core::sc_time read_fixed_;
    reused_payload up_request_, down_request_; // a read's requests to the completer
};

} // namespace viosim

#endif
