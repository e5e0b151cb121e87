// pcie_link.h -- a PCIe link between the root complex (host) and the device.
//
// Two directions, each serialising its TLPs independently: a TLP starts when the
// direction is next free (contention) and occupies it for (framing + header +
// payload) / (rate x lanes x encoding efficiency). Memory writes are posted: the
// sender is busy only while the TLP is on the wire. Reads are non-posted: requests
// (split at max read request size) go one way, completions (split at max payload
// size) come back after the fixed read round-trip latency.
//
// Seams for the timing-fidelity work: DLLP/ACK/flow-control overhead, read tags,
// RCB splitting and ECRC are not modelled yet; every TLP carries a fixed framing
// overhead (link_params::framing_bytes).
#ifndef VIOSIM_PCIE_LINK_H
#define VIOSIM_PCIE_LINK_H

#include <cstdint>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

struct link_params {
    unsigned gen;                  // 1..5
    unsigned lanes;                // 1, 2, 4, 8, 16
    unsigned max_payload_bytes;    // MPS
    unsigned max_read_request_bytes; // MRRS
    sc_core::sc_time read_fixed;   // round trip excluding serialisation and host memory
    unsigned framing_bytes = 8;    // STP/sequence/LCRC/END per TLP (Gen1-2: 1+2+4+1; Gen3+: 4+4)
};

// Raw data rate of one direction in bytes per nanosecond, after line encoding.
double link_bytes_per_ns(unsigned gen, unsigned lanes);

// One direction's serialiser.
struct link_direction {
    double bytes_per_ns = 1.0;
    sc_core::sc_time next_free = sc_core::SC_ZERO_TIME;
    sc_core::sc_time busy = sc_core::SC_ZERO_TIME;
    uint64_t tlps = 0, wire_bytes = 0, payload_bytes = 0;

    // Send one TLP of wire_len bytes (payload_len of them data) no earlier than at;
    // returns when its last byte has left.
    sc_core::sc_time send(sc_core::sc_time at, unsigned wire_len, unsigned payload_len);
};

class pcie_link : public sc_core::sc_module {
public:
    // Upstream: device DMA and MSI-X writes in, towards the root complex out.
    tlm_utils::simple_target_socket<pcie_link> up_in;
    tlm_utils::simple_initiator_socket<pcie_link> up_out;
    // Downstream: CPU MMIO and configuration requests in, towards the device out.
    tlm_utils::simple_target_socket<pcie_link> down_in;
    tlm_utils::simple_initiator_socket<pcie_link> down_out;

    pcie_link(sc_core::sc_module_name name, const link_params &p);

    link_direction up, down;  // up = device to host
    uint64_t reads = 0, writes = 0, posted_writes = 0, errors = 0;
    const link_params &params() const { return p_; }

private:
    void b_upstream(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
    void b_downstream(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);

    // Non-posted read across the link: requests on `req`, completions on `cpl`.
    void read(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay, link_direction &req,
              link_direction &cpl, tlm_utils::simple_initiator_socket<pcie_link> &out);
    unsigned header_bytes(uint64_t addr) const { return addr >> 32 ? 16 : 12; }

    link_params p_;
};

#endif
