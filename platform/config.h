// config.h -- the resolved configuration of one run, the parameter table that
// describes every key (name with unit, default, meaning), and its parsing.
#ifndef VIOSIM_CONFIG_H
#define VIOSIM_CONFIG_H

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

extern "C" {
#include "refdrv.h"
#include "vdev.h"
}

struct json_t; // jansson

// Timing and sizing of the platform around the device.
struct platform_params {
    // PCIe link
    unsigned pcie_gen;                 // 1..5
    unsigned pcie_lanes;               // 1, 2, 4, 8, 16
    double pcie_read_latency_ns;       // DMA read round trip for a small read, unloaded
    unsigned pcie_max_payload_bytes;   // MPS: 128..4096, power of two
    unsigned pcie_max_read_request_bytes; // MRRS: 128..4096, power of two
    unsigned pcie_read_completion_boundary_bytes; // RCB: 64 or 128
    bool pcie_completions_at_rcb;      // completions split at the RCB instead of the MPS
    unsigned pcie_address_bits;        // 32 or 64: request header size
    bool pcie_ecrc;                    // ECRC digest on every TLP
    // Device DMA engine
    unsigned dma_read_tags_count;      // outstanding read requests at most
    bool dma_completions_in_order;     // a tag is freed only once all earlier reads completed
    unsigned dma_channels_count;       // 0 = one per queue engine
    bool dma_fixed_priority;           // arbitration: fixed priority (else round robin)
    // IOMMU in the root complex
    unsigned iommu_iotlb_entries;
    unsigned iommu_iotlb_ways;
    bool iommu_random_replacement;
    double iommu_iotlb_hit_ns;
    unsigned iommu_walkers_count;
    double iommu_walk_read_overhead_ns;   // added to each root-complex page-table read
    unsigned iommu_psc_level4_entries;    // paging-structure caches (0 = none)
    unsigned iommu_psc_level3_entries;
    unsigned iommu_psc_level2_entries;
    bool iommu_ats;                    // translate in the device (ATS) instead of the RC
    bool iommu_in_device;              // the IOMMU (IOTLB + walker) is in the device
    unsigned iommu_atc_entries;
    unsigned iommu_atc_ways;
    uint32_t queue_pasid[3];           // PASID of the RX, TX and control queues' DMA
    // Software-device profile (the device is a thread on another CPU)
    bool software_profile;
    double software_access_ns;
    double software_copy_bytes_per_ns;
    double software_notify_ns;
    double software_interrupt_ns;
    double software_barrier_ns;
    // Workload
    bool workload_dma_bench;
    bool bench_iommu;                  // benchmark requests are translated
    bool bench_random;                 // uniformly random slots in the window           // sim.workload = dma_bench
    unsigned bench_op;                 // 0 read, 1 write, 2 read_write
    unsigned bench_transfer_bytes;
    uint64_t bench_transfers_count;
    uint64_t bench_window_bytes;
    // Host
    uint64_t host_memory_mib;          // guest memory size
    double host_memory_latency_ns;     // DRAM access latency seen by a DMA
    double host_memory_read_ps_per_byte; // extra completer latency per byte read
    double cpu_clock_mhz;
    uint64_t cpu_tx_packet_cycles;
    uint64_t cpu_rx_packet_cycles;
    uint64_t cpu_tx_reap_cycles;
    uint64_t cpu_rx_refill_cycles;
    uint64_t cpu_poll_cycles;
    uint64_t cpu_irq_entry_cycles;
    uint64_t cpu_device_barrier_cycles;
    uint64_t cpu_smp_barrier_cycles;
    uint64_t cpu_ctrl_command_cycles;
    double cpu_mmio_write_ns;          // CPU time to issue a posted MMIO write
    // Device
    double device_clock_mhz;
    uint64_t device_desc_cycles;       // per descriptor processed
    uint64_t device_packet_cycles;     // per frame processed
    // Simulation
    double sim_quantum_ns;
    bool sim_poll_sleep;   // a polling driver sleeps through empty polls (host_cpu)
    bool sim_engine_wakeup_next; // a finished buffer wakes only the engines it lets go on
    bool sim_timing_decoupled;   // initiators skip synchronisations no process would see
    double sim_time_limit_us;          // stop a run that has not finished by then
    // viosim serve (vhost-user) only
    uint64_t serve_queue_pairs;        // receive/transmit ring pairs offered (MQ when > 1)
};

struct vs_config {
    platform_params plat;
    vdev_params dev;
    refdrv_params drv;
    uint64_t seed;
};

struct param_error {
    std::string key;      // the offending key ("" for file-level errors)
    std::string message;  // one line: what was wrong and what is allowed
};

// Every parameter: name (unit in the name), unit, default (as text), meaning.
struct param_info {
    std::string name;
    std::string unit;         // "" for unitless parameters
    std::string default_text;
    std::string meaning;
    std::string allowed;      // the allowed values, e.g. "one of 1, 2, 4, 8, 16"
};

// The link configuration the platform builds from cfg (pcie_tlp.h).
struct pcie_cfg;
pcie_cfg config_pcie(const vs_config &cfg);
// Completer (host memory) latency of a DMA read of len bytes, ns.
double config_memory_read_ns(const vs_config &cfg, unsigned len);

// The text `--set key=TEXT` would take for a scalar JSON value (a string, or a number
// written exactly); false if the value is neither. Config files and studies use it.
bool config_scalar_text(const json_t *j, std::string &text);

// A comma-separated list, each item trimmed of spaces and tabs ("a, b" -> {"a", "b"};
// "" -> {""}). List values of parameters and of command-line options use it.
std::vector<std::string> config_split_list(const std::string &s);

// s with its control characters escaped (\n, \r, \t, \xHH): input echoed in an error
// message (a key, a value, a file name) keeps the message on one line.
std::string config_escaped(const std::string &s);

// A likely intended name among names for a name that is not one of them: the name plus
// its missing unit ("latency.p50" -> "latency.p50_ns"), or a near miss (fewer than three
// edits); "" if none. Unknown parameters and unknown statistics are answered with it.
std::string config_closest_name(const std::string &name, const std::vector<std::string> &names);

// Defaults for every parameter.
vs_config config_defaults();
// Apply a JSON config file (flat dotted keys or nested objects); false + err on error.
bool config_apply_file(vs_config &cfg, const std::string &path, param_error &err);
// Apply one key=value (as given to --set); false + err on error.
bool config_apply_set(vs_config &cfg, const std::string &assignment, param_error &err);
// Cross-parameter checks (impossible combinations); false + err on error.
bool config_validate(const vs_config &cfg, param_error &err);
// The parameter table, in display order.
std::vector<param_info> config_params();
// The resolved configuration as text per key, in table order (the same text --set accepts).
std::vector<std::pair<std::string, std::string>> config_resolved(const vs_config &cfg);
// The resolved configuration as a new JSON object (caller owns the reference), in table
// order, typed: integers and reals as JSON numbers, lists as arrays, ids ("0x1af4"),
// names and MAC as strings. Flat dotted keys ({"pcie.gen": 3}) for stats.json, or nested
// by section ({"pcie": {"gen": 3}}); either form is a valid config file.
json_t *config_resolved_json(const vs_config &cfg, bool nested);
// Feature names accepted by device.withdraw_features and driver.decline_features, with
// their bit positions, in bit order.
std::vector<std::pair<std::string, unsigned>> config_feature_names();
// docs/parameters.md: every parameter by section with unit, default, allowed values and
// meaning, and the feature names (`viosim params --markdown` prints it).
std::string config_params_markdown();

#endif
