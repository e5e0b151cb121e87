#include "pcie_link.h"

#include <algorithm>

#include "address_map.h"

using sc_core::sc_time;
using sc_core::SC_NS;

double link_bytes_per_ns(unsigned gen, unsigned lanes)
{
    // GT/s per lane by generation; 8b/10b encoding for Gen1-2, 128b/130b from Gen3.
    static const double gts[] = {0, 2.5, 5.0, 8.0, 16.0, 32.0};
    const double gt = gen >= 1 && gen <= 5 ? gts[gen] : gts[3];
    const double efficiency = gen <= 2 ? 8.0 / 10.0 : 128.0 / 130.0;
    return gt * efficiency * lanes / 8.0; // Gbit/s -> bytes per ns
}

sc_time link_direction::send(sc_time at, unsigned wire_len, unsigned payload_len)
{
    const sc_time start = std::max(at, next_free);
    const sc_time duration(wire_len / bytes_per_ns, SC_NS);
    next_free = start + duration;
    busy += duration;
    tlps++;
    wire_bytes += wire_len;
    payload_bytes += payload_len;
    return next_free;
}

pcie_link::pcie_link(sc_core::sc_module_name name, const link_params &p)
    : sc_module(name), up_in("up_in"), up_out("up_out"), down_in("down_in"),
      down_out("down_out"), p_(p)
{
    up.bytes_per_ns = down.bytes_per_ns = link_bytes_per_ns(p.gen, p.lanes);
    up_in.register_b_transport(this, &pcie_link::b_upstream);
    down_in.register_b_transport(this, &pcie_link::b_downstream);
}

void pcie_link::read(tlm::tlm_generic_payload &tx, sc_time &delay, link_direction &req,
                     link_direction &cpl, tlm_utils::simple_initiator_socket<pcie_link> &out)
{
    const sc_time now = sc_core::sc_time_stamp();
    const uint64_t addr = tx.get_address();
    const unsigned len = tx.get_data_length();
    unsigned char *data = tx.get_data_ptr();
    sc_time t = now + delay;
    sc_time done = t;
    reads++;
    // Requests are issued back to back; each is split at the max read request size
    // and never crosses a 4 KiB boundary.
    for (unsigned off = 0; off < len || (len == 0 && off == 0);) {
        const uint64_t a = addr + off;
        unsigned chunk = std::min<unsigned>(len - off, p_.max_read_request_bytes);
        chunk = std::min<uint64_t>(chunk, 4096 - (a & 4095));
        const sc_time req_end = req.send(t, p_.framing_bytes + header_bytes(a), 0);
        t = req_end;

        tlm::tlm_generic_payload sub;
        sub.set_command(tlm::TLM_READ_COMMAND);
        sub.set_address(a);
        sub.set_data_ptr(data + off);
        sub.set_data_length(chunk);
        sub.set_streaming_width(chunk);
        sub.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        sc_time target_delay = sc_core::SC_ZERO_TIME;
        out->b_transport(sub, target_delay);
        if (sub.get_response_status() != tlm::TLM_OK_RESPONSE) {
            errors++;
            tx.set_response_status(sub.get_response_status());
            delay = req_end + p_.read_fixed - now;
            return;
        }
        // Completions come back after the fixed round trip plus the target's own
        // latency, split at the max payload size.
        sc_time cpl_at = req_end + p_.read_fixed + target_delay;
        for (unsigned c = 0; c < chunk || (chunk == 0 && c == 0);) {
            const unsigned part = std::min(chunk - c, p_.max_payload_bytes);
            cpl_at = cpl.send(cpl_at, p_.framing_bytes + 12 + part, part);
            c += part;
            if (part == 0)
                break;
        }
        done = std::max(done, cpl_at);
        off += chunk;
        if (chunk == 0)
            break;
    }
    delay = done - now;
    tx.set_response_status(tlm::TLM_OK_RESPONSE);
}

// Device to host: DMA reads and writes, MSI-X messages (posted writes).
void pcie_link::b_upstream(tlm::tlm_generic_payload &tx, sc_time &delay)
{
    if (tx.is_read()) {
        read(tx, delay, up, down, up_out);
        return;
    }
    const sc_time now = sc_core::sc_time_stamp();
    const uint64_t addr = tx.get_address();
    const unsigned len = tx.get_data_length();
    sc_time t = now + delay;
    for (unsigned off = 0; off < len;) {
        const uint64_t a = addr + off;
        unsigned chunk = std::min<unsigned>(len - off, p_.max_payload_bytes);
        chunk = std::min<uint64_t>(chunk, 4096 - (a & 4095));
        t = up.send(t, p_.framing_bytes + header_bytes(a) + chunk, chunk);
        off += chunk;
    }
    writes++;
    posted_writes++;
    // The write reaches the host half a round trip after its last byte left.
    sc_time arrival = t + p_.read_fixed / 2 - now;
    up_out->b_transport(tx, arrival);
    if (tx.get_response_status() != tlm::TLM_OK_RESPONSE)
        errors++;
    // Posted: the device is done once the TLP is on the wire.
    delay = t - now;
}

// Host to device: MMIO (posted writes, non-posted reads) and configuration requests
// (non-posted both ways).
void pcie_link::b_downstream(tlm::tlm_generic_payload &tx, sc_time &delay)
{
    const sc_time now = sc_core::sc_time_stamp();
    const uint64_t addr = tx.get_address();
    const unsigned len = tx.get_data_length();
    const bool config = amap::in(addr, len, amap::ecam_base, amap::ecam_size);
    if (tx.is_read()) {
        read(tx, delay, down, up, down_out);
        return;
    }
    sc_time t = down.send(now + delay, p_.framing_bytes + header_bytes(addr) + len, len);
    writes++;
    sc_time arrival = t + p_.read_fixed / 2 - now;
    down_out->b_transport(tx, arrival);
    if (tx.get_response_status() != tlm::TLM_OK_RESPONSE)
        errors++;
    if (config) {
        // Configuration writes are non-posted: wait for the completion.
        delay = up.send(t + p_.read_fixed, p_.framing_bytes + 12, 0) - now;
    } else {
        posted_writes++;
        // Posted MMIO write: the CPU does not wait for the link (its own store cost is
        // charged by the CPU model).
    }
}
