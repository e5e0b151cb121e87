// link_charge.h -- the simulated platform's clock for device work that does not run in
// the simulation (viosim serve: a real driver drives the rings in wall-clock time).
//
// Each guest-memory access the device kernels make is charged, in the order made and
// one at a time, what the simulated PCIe link gives it: a read sends its request TLPs
// upstream and waits for the last completion (the calibrated round trip, the host
// memory's own latency, its bytes streamed in order across the requests, completions
// serialised downstream); a write is
// posted, done once its last TLP has left; an interrupt is a 4-byte MSI-X write. The
// TLP arithmetic is pcie_tlp's, as in the simulation's link module; unlike the
// simulation, nothing overlaps (one access at a time, no read tags in parallel) and the
// driver's own time is not charged, so the clock is the device's busy time for this
// request stream. Pure C++, no SystemC.
#ifndef VIOSIM_LINK_CHARGE_H
#define VIOSIM_LINK_CHARGE_H

#include <cstdint>

#include "config.h"
#include "pcie_tlp.h"

class link_charge {
  public:
    // One direction of the link: TLPs by type (tlp_type order), bytes, time busy.
    struct direction {
        uint64_t tlps[4] = {};
        uint64_t payload_bytes = 0, overhead_bytes = 0;
        double busy_ns = 0;
        double free_at_ns = 0; // when the last TLP sent has left
    };

    explicit link_charge(const vs_config &cfg);
    link_charge(const pcie_link_timing &t, const host_memory_params &m);

    void read(uint64_t addr, uint32_t len);
    void write(uint64_t addr, uint32_t len);
    void interrupt() { write(msi_addr, 4); }

    double now_ns() const { return now_ns_; }
    const direction &up() const { return up_; }
    const direction &down() const { return down_; }
    uint64_t tlps() const;

    static constexpr uint64_t msi_addr = 0xfee00000u;

  private:
    // Sends a TLP no earlier than at_ns; returns when its last byte has left.
    double send(direction &d, double at_ns, tlp_type t, unsigned payload);

    host_memory_params memory_;
    pcie_cfg lc_;
    double bytes_per_ns_;
    double read_fixed_ns_;
    double now_ns_ = 0;
    direction up_, down_;
};

#endif
