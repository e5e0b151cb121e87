// device_platform.h -- the timed device side of the platform: everything `viosim run`
// builds except the host CPU that runs the reference driver.
//
//   HOST.mmio --> pcie_link.down_in   pcie_link.down_out --> device.target
//   device.dma --> pcie_link.up_in    pcie_link.up_out --> root_complex
//   root_complex.to_memory --> host_memory   root_complex.to_intc --> HOST.msi_in
//
// (smp_interconnect in the link's place in the software-device profile.) HOST is the
// initiator of register accesses and the interrupt controller: host_cpu in a run
// (top.cpp), external_host for a caller outside SystemC (external_host.h). Both collect
// the device's statistics with stats_add_device_platform, so they keep their names
// whatever drives the device.
#ifndef VIOSIM_DEVICE_PLATFORM_H
#define VIOSIM_DEVICE_PLATFORM_H

#include <memory>
#include <vector>

#include <systemc>
#include <tlm>

#include "config.h"
#include "host_memory.h"
#include "pcie_link.h"
#include "root_complex.h"
#include "smp_interconnect.h"
#include "stats.h"
#include "virtio_device_tlm.h"

namespace viosim {

struct device_platform {
    host_memory mem;
    // Exactly one of the two: the PCIe link (hardware device) or the cache-coherent
    // interconnect of the software-device profile.
    std::unique_ptr<pcie_link> link;
    std::unique_ptr<smp_interconnect> smp;
    root_complex rc;
    virtio_device_tlm dev;

    // Each module from its own parameter group and the timing derived from it; guest
    // memory of its own (memory.size_mib at amap::memory_base), or the caller's regions.
    explicit device_platform(const vs_config &cfg);
    device_platform(const vs_config &cfg, const std::vector<memory_region> &regions);

    // Binds the host: its initiator of register accesses (towards the link's downstream
    // port) and its interrupt controller (the root complex's MSI window).
    void connect_host(tlm::tlm_base_initiator_socket<> &mmio, tlm::tlm_base_target_socket<> &msi_in);

    // Host software programs whichever IOMMU translates (the root complex's, or the
    // device's own with iommu.walk_location = device).
    bool iommu_set_root(uint32_t pasid, uint64_t root)
    {
        return iommu_in_device_ ? dev.iommu_set_root(pasid, root) : rc.iommu_set_root(pasid, root);
    }

    // The link's TLPs both ways (0 without a link: software-device profile).
    uint64_t link_tlps() const;

private:
    void make_interconnect(const vs_config &cfg);
    bool iommu_in_device_ = false; // iommu.walk_location = device
};

// The link (or zero rows without one) and the DMA engine's statistics, up to sim_ns.
void stats_add_link_dma(stats_table &s, const device_platform &p, double sim_ns);

// The function's own rows of that table, in that order, from frames and backend to time
// to interrupt (no link, DMA engine, IOMMU or conformance rows): what any platform
// holding a virtio_device_tlm writes for it (virtio_net_pci::add_stats).
void stats_add_device(stats_table &s, const virtio_device_tlm &dev, double sim_ns);

// The device's statistics as a run writes them, in a run's order: frames and backend,
// net and control queue, interrupts, DMA, resets and error, per queue, event
// suppression, time to interrupt, link, DMA engine, IOMMU, and conformance.violations
// (violations_total); sim_ns is the simulated time the rates and means are over.
void stats_add_device_platform(stats_table &s, const device_platform &p, double sim_ns,
                               uint64_t violations_total);

// conformance.violations: the last row of either table.
void stats_add_violations(stats_table &s, uint64_t violations_total);

} // namespace viosim

#endif
