// pcie_tlp.h -- PCIe transaction-layer arithmetic: bytes on the wire per TLP, how
// transfers split into TLPs, and the bandwidth left for TLPs once the data link layer
// and physical layer take their share. Pure functions, no SystemC: the link module
// charges time from them, and tests and the validation script check them.
//
// The model follows the PCIe TLP bandwidth model published with pcie-bench
// (R. Neugebauer et al., "Understanding PCIe performance for end host networking",
// SIGCOMM 2018; github pcie-bench/pcie-model), written anew here:
//  * every TLP carries 8 bytes of framing (start/end symbols or token, sequence
//    number, LCRC) plus a 4-byte common header, plus the type's header: 8 bytes (MRd,
//    MWr with 32-bit addresses; completions), 12 bytes (MRd/MWr with 64-bit addresses),
//    plus a 4-byte ECRC digest when ECRC is on;
//  * ACK and flow-control update DLLPs (8 bytes each) are sent at the rates the PCIe
//    Base Specification recommends for the link width and max payload size, and SKIP
//    ordered sets take 4 of every 1538 symbol times; together they derate the raw rate.
#ifndef VIOSIM_PCIE_TLP_H
#define VIOSIM_PCIE_TLP_H

#include <cstdint>

#include "module_params.h"

namespace viosim {

struct pcie_cfg {
    unsigned gen = 3;                 // 1..5
    unsigned lanes = 8;               // 1, 2, 4, 8, 16
    unsigned max_payload_bytes = 256; // MPS: 128..4096
    unsigned max_read_request_bytes = 512; // MRRS: 128..4096
    unsigned read_completion_boundary_bytes = 64; // RCB: 64 or 128
    bool completions_at_rcb = false;  // completions split at the RCB instead of the MPS
    bool addr64 = true;               // 64-bit addressing (4DW request headers)
    bool ecrc = false;                // end-to-end CRC digest on every TLP
};

enum class tlp_type { mrd, mwr, cpld, cpl };

// Physical rate of one direction after line encoding, Gbit/s.
double pcie_raw_gbps(const pcie_cfg &c);
// Fraction of the raw rate left for TLPs after ACK/FC DLLPs and SKIP ordered sets.
double pcie_tlp_share(const pcie_cfg &c);
// Rate available to TLPs, bytes per nanosecond (= Gbit/s / 8).
double pcie_tlp_bytes_per_ns(const pcie_cfg &c);
// Bytes a TLP of this type occupies on the wire besides its payload.
unsigned pcie_tlp_overhead_bytes(const pcie_cfg &c, tlp_type t);

// Calibration: the part of a read's round trip that is neither serialisation nor the
// completer's own latency, given the measured unloaded round trip of a 64-byte read
// (total_64b_ns) and the completer's latency for those 64 bytes. Negative when the
// measurement is shorter than its known parts (a configuration error).
double pcie_read_fixed_ns(const pcie_cfg &c, double total_64b_ns, double completer_64b_ns);

// The link's timing, derived once from its parameter group and host memory's (the
// completer of its reads): the simulation's link module (viosim run and serve alike) and
// config_validate all take it from here.
struct pcie_link_timing {
    pcie_cfg link;        // how transfers split into TLPs
    double read_fixed_ns; // pcie_read_fixed_ns of pcie.read_latency_ns; < 0: a config error
};
pcie_link_timing pcie_link_timing_of(const pcie_link_params &p, const host_memory_params &m);

// How a transfer of len bytes at addr splits: write TLPs at the MPS and 4 KiB
// boundaries; read requests at the MRRS and 4 KiB boundaries; completions of one read
// request at the MPS (or at RCB-aligned boundaries when completions_at_rcb). One piece
// at a time, without allocating (this is on every simulated access's path):
// `for (tlp_splitter s = pcie_write_splitter(c, a, n); s.next(chunk);) ...`. A
// zero-length transfer gives one empty piece.
struct tlp_chunk {
    uint64_t addr;
    unsigned len;
};
class tlp_splitter {
  public:
    tlp_splitter(uint64_t addr, unsigned len, unsigned max, uint64_t boundary)
        : addr_(addr), len_(len), max_(max), boundary_(boundary), empty_(len == 0)
    {
    }
    bool next(tlp_chunk &out);

  private:
    uint64_t addr_;
    unsigned len_, max_;
    uint64_t boundary_;
    bool empty_;
};
tlp_splitter pcie_write_splitter(const pcie_cfg &c, uint64_t addr, unsigned len);
tlp_splitter pcie_read_request_splitter(const pcie_cfg &c, uint64_t addr, unsigned len);
tlp_splitter pcie_completion_splitter(const pcie_cfg &c, uint64_t addr, unsigned len);

} // namespace viosim

#endif
