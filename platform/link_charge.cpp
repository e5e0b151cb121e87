#include "link_charge.h"

#include <algorithm>

link_charge::link_charge(const vs_config &cfg)
    : link_charge(pcie_link_timing_of(cfg.pcie, cfg.memory), cfg.memory)
{
}

link_charge::link_charge(const pcie_link_timing &t, const host_memory_params &m)
    : memory_(m), lc_(t.link), bytes_per_ns_(pcie_tlp_bytes_per_ns(lc_)),
      read_fixed_ns_(std::max(0.0, t.read_fixed_ns))
{
}

double link_charge::send(direction &d, double at_ns, tlp_type t, unsigned payload)
{
    const unsigned overhead = pcie_tlp_overhead_bytes(lc_, t);
    const double start = std::max(at_ns, d.free_at_ns);
    const double duration = (payload + overhead) / bytes_per_ns_;
    d.free_at_ns = start + duration;
    d.busy_ns += duration;
    d.tlps[int(t)]++;
    d.payload_bytes += payload;
    d.overhead_bytes += overhead;
    return d.free_at_ns;
}

void link_charge::read(uint64_t addr, uint32_t len)
{
    // As the simulation's host (root_complex.h): the requests' data streams out in
    // order, request k's bytes after request k-1's.
    double t = now_ns_, done = now_ns_, streamed = 0;
    const double per_byte_ns = memory_.read_ps_per_byte / 1000.0;
    tlp_chunk r, c;
    for (tlp_splitter requests = pcie_read_request_splitter(lc_, addr, len); requests.next(r);) {
        t = send(up_, t, tlp_type::mrd, 0);
        streamed = std::max(t + read_fixed_ns_ / 2 + memory_.latency_ns, streamed) +
                   r.len * per_byte_ns;
        double at = streamed + read_fixed_ns_ / 2;
        for (tlp_splitter cpl = pcie_completion_splitter(lc_, r.addr, r.len); cpl.next(c);)
            at = send(down_, at, tlp_type::cpld, c.len);
        done = std::max(done, at);
    }
    now_ns_ = done;
}

void link_charge::write(uint64_t addr, uint32_t len)
{
    double t = now_ns_;
    tlp_chunk w;
    for (tlp_splitter s = pcie_write_splitter(lc_, addr, len); s.next(w);)
        t = send(up_, t, tlp_type::mwr, w.len);
    now_ns_ = t;
}

uint64_t link_charge::tlps() const
{
    uint64_t n = 0;
    for (unsigned i = 0; i < 4; i++)
        n += up_.tlps[i] + down_.tlps[i];
    return n;
}
