// module_params.h -- one parameter group per platform module, as the configuration
// holds them (vs_config: cfg.pcie, cfg.dma, ...). Each module takes its own group and
// derives its timing from it once (pcie_link_timing_of, iommu_timing_of, cpu_costs_of,
// device_timing_of in the modules' headers).
//
// Fields carry their unit in their name, as the parameters do; the member initialisers
// are the documented defaults (docs/parameters.md). The parameter table in config.cpp
// states each default as text; test_config checks the two agree.
#ifndef VIOSIM_MODULE_PARAMS_H
#define VIOSIM_MODULE_PARAMS_H

#include <cstdint>

namespace viosim {

// pcie.*: the link between the device and the root complex.
struct pcie_link_params {
    unsigned gen = 3;                         // 1..5
    unsigned lanes = 8;                       // 1, 2, 4, 8, 16
    double read_latency_ns = 550;             // unloaded round trip of a 64-byte DMA read
    unsigned max_payload_bytes = 256;         // MPS: 128..4096, power of two
    unsigned max_read_request_bytes = 512;    // MRRS: 128..4096, power of two
    unsigned read_completion_boundary_bytes = 64; // RCB: 64 or 128
    bool completions_at_rcb = false;          // completions split at the RCB, not the MPS
    unsigned address_bits = 64;               // 32 or 64: request header size
    bool ecrc = false;                        // ECRC digest on every TLP
};

// dma.*: the device's DMA engine.
struct dma_engine_params {
    unsigned read_tags_count = 32;            // outstanding read requests at most
    bool completions_in_order = true;         // a tag is freed once all earlier reads completed
    unsigned channels_count = 0;              // 0 = one per queue engine
    bool fixed_priority = false;              // arbitration: fixed priority (else round robin)
};

// iommu.*: the IOMMU in the root complex (or in the device), and the device's ATC.
struct iommu_params {
    unsigned iotlb_entries = 64;
    unsigned iotlb_ways = 4;
    bool random_replacement = false;
    double iotlb_hit_ns = 2;
    unsigned walkers_count = 2;
    double walk_read_overhead_ns = 0;         // added to each root-complex page-table read
    unsigned psc_level4_entries = 0;          // paging-structure caches (0 = none)
    unsigned psc_level3_entries = 0;
    unsigned psc_level2_entries = 0;
    bool ats = false;                         // translate in the device (ATS) instead of the RC
    bool in_device = false;                   // the IOMMU (IOTLB + walker) is in the device
    unsigned atc_entries = 64;
    unsigned atc_ways = 4;
};

// software.* and sim.device_profile: the device as a thread on another CPU.
struct software_params {
    bool enabled = false;                     // sim.device_profile = software
    double access_ns = 90;
    double copy_bytes_per_ns = 10;
    double notify_ns = 2000;
    double interrupt_ns = 1500;
    double barrier_ns = 20;
};

// bench.* and sim.workload: the DMA microbenchmark.
struct dma_bench_params {
    bool enabled = false;                     // sim.workload = dma_bench
    unsigned op = 0;                          // 0 read, 1 write, 2 read_write
    unsigned transfer_bytes = 64;
    uint64_t transfers_count = 20000;
    bool iommu = false;                       // benchmark requests are translated
    bool random = false;                      // uniformly random slots in the window
    uint64_t window_bytes = 1048576;
};

// host.memory_*: guest memory.
struct host_memory_params {
    uint64_t size_mib = 64;
    double latency_ns = 80;                   // DRAM access latency seen by a DMA
    double read_ps_per_byte = 243;            // extra completer latency per byte read
};

// Completer (host memory) latency of a DMA read of len bytes, ns.
inline double host_memory_read_ns(const host_memory_params &m, unsigned len)
{
    return m.latency_ns + len * m.read_ps_per_byte / 1000.0;
}

// host.* (the CPU's cost model).
struct host_cpu_params {
    double clock_mhz = 3000;
    uint64_t tx_packet_cycles = 400;
    uint64_t rx_packet_cycles = 400;
    uint64_t tx_reap_cycles = 100;
    uint64_t rx_refill_cycles = 100;
    uint64_t poll_cycles = 50;
    uint64_t irq_entry_cycles = 1500;
    uint64_t device_barrier_cycles = 30;
    uint64_t smp_barrier_cycles = 5;
    uint64_t ctrl_command_cycles = 500;
    double mmio_write_ns = 100;               // CPU time to issue a posted MMIO write
    double intx_latency_ns = 1000;            // INTx pin change to the interrupt controller
    uint32_t cpus_count = 1;                  // CPUs the driver's queue pairs run on
};

// device.clock_mhz, device.*_cycles, device.*_pasid: the timed device around the kernel.
struct device_tlm_params {
    double clock_mhz = 1000;
    uint64_t desc_cycles = 4;                 // per descriptor processed
    uint64_t packet_cycles = 20;              // per frame processed
    uint32_t queue_pasid[3] = {0, 0, 0};      // PASID of the RX, TX and control queues' DMA
};

// sim.*: the simulation itself.
struct sim_params {
    double quantum_ns = 1000;
    bool poll_sleep = false;                  // a polling driver sleeps through empty polls
    bool engine_wakeup_next = false;          // a finished buffer wakes only the engines it lets go on, a step only the queues it gave work
    bool timing_decoupled = false;            // sim.timing = decoupled: initiators skip
                                              // synchronisations no process would see
    double time_limit_us = 1e6;               // stop a run that has not finished by then
};

} // namespace viosim

#endif
