// test_link_charge.cpp -- the simulated clock `viosim serve` charges guest-memory
// accesses to (platform/link_charge.h): the link's calibration, TLP splitting at the
// PCIe boundaries, posted writes, interrupts, and accesses one at a time.
#include <criterion/criterion.h>

#include <cmath>

#include "config.h"
#include "link_charge.h"
#include "pcie_tlp.h"

namespace {

vs_config defaults()
{
    vs_config cfg = config_defaults();
    param_error err;
    cr_assert(config_validate(cfg, err));
    return cfg;
}

bool near(double a, double b) { return std::fabs(a - b) < 1e-6; }

enum { MRD = 0, MWR = 1, CPLD = 2 };

} // namespace

// The calibration the simulation's link uses: an unloaded 64-byte read takes exactly
// pcie.read_latency_ns (one request up, one completion down).
Test(link_charge, lone_small_read_takes_the_calibrated_round_trip)
{
    const vs_config cfg = defaults();
    link_charge c(cfg);
    c.read(0x10000, 64);
    cr_expect(near(c.now_ns(), cfg.pcie.read_latency_ns), "%.6f ns", c.now_ns());
    cr_expect_eq(c.up().tlps[MRD], 1);
    cr_expect_eq(c.down().tlps[CPLD], 1);
    cr_expect_eq(c.down().payload_bytes, 64);
}

// A read splits into requests at the MRRS and completions at the MPS (PCIe Base
// Specification, "Maximum Read Request Size" and "Read Completion Boundary").
Test(link_charge, read_splits_at_mrrs_and_completions_at_mps)
{
    vs_config cfg = defaults();
    cfg.pcie.max_read_request_bytes = 512;
    cfg.pcie.max_payload_bytes = 256;
    link_charge c(cfg);
    c.read(0x20000, 1024);
    cr_expect_eq(c.up().tlps[MRD], 2);
    cr_expect_eq(c.down().tlps[CPLD], 4);
    cr_expect_eq(c.down().payload_bytes, 1024);
    cr_expect_gt(c.now_ns(), cfg.pcie.read_latency_ns);
}

// A read larger than the MRRS takes what the simulation's host gives it: the requests'
// data streams out in order (docs/timing.md, "Host streaming"), so with the default
// calibration a lone 1520-byte read (three requests) takes L + F + 1520 p plus the first
// request's serialisation and the last request's completions, F being the fixed round
// trip that makes 64 bytes take pcie.read_latency_ns.
Test(link_charge, large_read_streams_its_requests_in_order)
{
    const vs_config cfg = defaults();
    const pcie_cfg lc = pcie_link_timing_of(cfg.pcie, cfg.memory).link;
    const double bw = pcie_tlp_bytes_per_ns(lc), p = cfg.memory.read_ps_per_byte / 1000.0;
    const double mrd = pcie_tlp_overhead_bytes(lc, tlp_type::mrd), cpl = pcie_tlp_overhead_bytes(lc, tlp_type::cpld);
    const double fixed = cfg.pcie.read_latency_ns - (cfg.memory.latency_ns + 64 * p) -
                         (mrd + cpl + 64) / bw;
    link_charge c(cfg);
    c.read(0x40000, 1520); // requests of 512, 512 and 496 bytes; 496 = two completions
    const double expect = mrd / bw + fixed + cfg.memory.latency_ns + 1520 * p + (496 + 2 * cpl) / bw;
    cr_expect(near(c.now_ns(), expect), "%.6f vs %.6f ns", c.now_ns(), expect);
    // pcie-bench's median for 1520 bytes on Xeon E5 is about 990 ns.
    cr_expect(std::fabs(c.now_ns() / 990.0 - 1) < 0.05, "%.1f ns", c.now_ns());
}

// A write is posted: done when its last TLP has left, split at the MPS and at 4 KiB.
Test(link_charge, write_is_posted_and_splits_at_4k)
{
    const vs_config cfg = defaults();
    const pcie_cfg lc = pcie_link_timing_of(cfg.pcie, cfg.memory).link;
    link_charge c(cfg);
    c.write(0x1000 - 32, 64); // crosses a 4 KiB boundary: two TLPs of 32 bytes
    cr_expect_eq(c.up().tlps[MWR], 2);
    const double expect = (64 + 2.0 * pcie_tlp_overhead_bytes(lc, tlp_type::mwr)) / pcie_tlp_bytes_per_ns(lc);
    cr_expect(near(c.now_ns(), expect), "%.6f vs %.6f ns", c.now_ns(), expect);
    cr_expect(c.now_ns() < cfg.pcie.read_latency_ns / 10, "a write waits for no completion");
}

// An interrupt is the device's MSI-X message: one 4-byte memory write.
Test(link_charge, interrupt_is_one_small_write)
{
    link_charge c(defaults());
    c.interrupt();
    cr_expect_eq(c.up().tlps[MWR], 1);
    cr_expect_eq(c.up().payload_bytes, 4);
    cr_expect_eq(c.tlps(), 1);
}

// Accesses are charged one after another: two reads take twice as long as one, and the
// busy time of each direction never exceeds the clock.
Test(link_charge, accesses_add_up_in_order)
{
    const vs_config cfg = defaults();
    link_charge c(cfg);
    c.read(0x10000, 64);
    c.read(0x10040, 64);
    cr_expect(near(c.now_ns(), 2 * cfg.pcie.read_latency_ns), "%.6f ns", c.now_ns());
    c.write(0x30000, 1500);
    cr_expect_leq(c.up().busy_ns, c.now_ns());
    cr_expect_leq(c.down().busy_ns, c.now_ns());
    cr_expect_eq(c.tlps(), 2 + 2 + 6u); // 2 MRd, 2 CplD, 1500 bytes at MPS 256
}
