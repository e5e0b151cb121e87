#include "pcie_tlp.h"

#include <algorithm>

namespace viosim {

namespace {

// Index of a power-of-two size 128..4096 in the tables below.
unsigned mps_index(unsigned mps)
{
    unsigned i = 0;
    for (unsigned s = 128; s < mps && i < 5; s <<= 1)
        i++;
    return i;
}

unsigned lanes_index(unsigned lanes)
{
    switch (lanes) {
    case 1: return 0;
    case 2: return 1;
    case 4: return 2;
    case 8: return 3;
    default: return 4;
    }
}

// Symbol times between ACK DLLPs (the PCIe Base Specification's recommended ACK
// latency limits) and between flow-control updates, by link width and max payload size
// (columns 128, 256, 512, 1024, 2048, 4096). Gen1 and Gen2 differ from Gen3 and later
// by their internal delays; the same values are used for ACK and FC updates, as in
// the pcie-bench model.
const unsigned ack_limit_gen1[5][6] = {
    {237, 416, 559, 1071, 2095, 4143}, {128, 217, 289, 545, 1057, 2081},
    {73, 118, 154, 282, 538, 1050},    {67, 107, 86, 150, 278, 534},
    {48, 72, 86, 150, 278, 534},
};
const unsigned ack_limit_gen2[5][6] = {
    {288, 467, 610, 1122, 2146, 4194}, {179, 268, 340, 596, 1108, 2132},
    {124, 169, 205, 333, 589, 1101},   {118, 158, 137, 201, 329, 585},
    {99, 123, 137, 201, 329, 585},
};
const unsigned ack_limit_gen3[5][6] = {
    {333, 512, 655, 1167, 2191, 4239}, {224, 313, 385, 641, 1153, 2177},
    {169, 214, 250, 378, 634, 1146},   {163, 203, 182, 246, 374, 630},
    {144, 168, 182, 246, 374, 630},
};

constexpr double dllp_bytes = 8.0;        // 2 framing + 4 DLLP + 2 CRC
constexpr double skip_symbols = 4.0;      // SKIP ordered set length
constexpr double skip_interval = 1538.0;  // symbol times between SKIP ordered sets
constexpr unsigned framing_bytes = 8;     // start/end or token, sequence number, LCRC
constexpr unsigned common_header_bytes = 4;

} // namespace

double pcie_raw_gbps(const pcie_cfg &c)
{
    static const double gts[] = {2.5, 2.5, 5.0, 8.0, 16.0, 32.0};
    const double gt = gts[std::min(c.gen, 5u)];
    const double encoding = c.gen <= 2 ? 8.0 / 10.0 : 128.0 / 130.0;
    return gt * encoding * c.lanes;
}

double pcie_tlp_share(const pcie_cfg &c)
{
    const unsigned (*table)[6] = c.gen <= 1 ? ack_limit_gen1 : c.gen == 2 ? ack_limit_gen2
                                                                          : ack_limit_gen3;
    const double limit = table[lanes_index(c.lanes)][mps_index(c.max_payload_bytes)];
    const double ack = dllp_bytes / limit;
    const double fc = dllp_bytes / limit;
    const double skip = skip_symbols / skip_interval;
    return 1.0 - ack - fc - skip;
}

double pcie_tlp_bytes_per_ns(const pcie_cfg &c)
{
    return pcie_raw_gbps(c) * pcie_tlp_share(c) / 8.0;
}

unsigned pcie_tlp_overhead_bytes(const pcie_cfg &c, tlp_type t)
{
    unsigned type_header = 8;
    if ((t == tlp_type::mrd || t == tlp_type::mwr) && c.addr64)
        type_header = 12;
    return framing_bytes + common_header_bytes + type_header + (c.ecrc ? 4 : 0);
}

double pcie_read_fixed_ns(const pcie_cfg &c, double total_64b_ns, double completer_64b_ns)
{
    const double wire = (pcie_tlp_overhead_bytes(c, tlp_type::mrd) +
                         pcie_tlp_overhead_bytes(c, tlp_type::cpld) + 64.0) /
                        pcie_tlp_bytes_per_ns(c);
    return total_64b_ns - completer_64b_ns - wire;
}

pcie_link_timing pcie_link_timing_of(const pcie_link_params &p, const host_memory_params &m)
{
    pcie_link_timing t;
    t.link.gen = p.gen;
    t.link.lanes = p.lanes;
    t.link.max_payload_bytes = p.max_payload_bytes;
    t.link.max_read_request_bytes = p.max_read_request_bytes;
    t.link.read_completion_boundary_bytes = p.read_completion_boundary_bytes;
    t.link.completions_at_rcb = p.completions_at_rcb;
    t.link.addr64 = p.address_bits == 64;
    t.link.ecrc = p.ecrc;
    t.read_fixed_ns = pcie_read_fixed_ns(t.link, p.read_latency_ns, host_memory_read_ns(m, 64));
    return t;
}

// Pieces of at most `max` bytes that never cross a `boundary`-aligned address (boundary
// a power of two).
bool tlp_splitter::next(tlp_chunk &out)
{
    if (empty_) {
        empty_ = false;
        out = {addr_, 0};
        return true;
    }
    if (len_ == 0)
        return false;
    uint64_t room = boundary_ - (addr_ & (boundary_ - 1));
    unsigned n = unsigned(std::min<uint64_t>({len_, max_, room}));
    out = {addr_, n};
    addr_ += n;
    len_ -= n;
    return true;
}

tlp_splitter pcie_write_splitter(const pcie_cfg &c, uint64_t addr, unsigned len)
{
    return tlp_splitter(addr, len, c.max_payload_bytes, 4096);
}

tlp_splitter pcie_read_request_splitter(const pcie_cfg &c, uint64_t addr, unsigned len)
{
    return tlp_splitter(addr, len, c.max_read_request_bytes, 4096);
}

tlp_splitter pcie_completion_splitter(const pcie_cfg &c, uint64_t addr, unsigned len)
{
    // A completer ends completions at RCB-aligned addresses; with completions_at_rcb each
    // completion is one RCB block, otherwise they are as large as the MPS allows.
    if (c.completions_at_rcb)
        return tlp_splitter(addr, len, c.read_completion_boundary_bytes,
                            c.read_completion_boundary_bytes);
    return tlp_splitter(addr, len, c.max_payload_bytes, 4096);
}

} // namespace viosim
