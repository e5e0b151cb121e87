// virtio_net_pci.h -- viosim's virtio-net PCI function as a module for a user's own
// SystemC platform (docs/embedding.md).
//
// Built from a name alone, every parameter at the default `viosim params` shows, and
// configured before the simulation starts with the keys of `viosim run` (set("key",
// "value") one at a time, or a JSON object), checked by the code that checks the command
// line: an unknown key or a bad value throws config_error naming the key. The device
// (virtio_device_tlm) is built from the configuration at the end of elaboration.
//
//   HOST --> target   configuration space in [config base, + 4 KiB) (ECAM offsets) and
//                     the BARs wherever the host's enumeration placed them
//   dma --> PLATFORM  DMA (guest memory, by bus address) and MSI-X messages (4-byte
//                     writes at the address the driver programmed in the MSI-X table)
//
// The platform provides a memory target and an MSI sink behind `dma`, an initiator for
// register accesses in front of `target`, and the global quantum
// (tlm_quantumkeeper::set_global_quantum): the device's engines are loosely timed.
#ifndef VIOSIM_VIRTIO_NET_PCI_H
#define VIOSIM_VIRTIO_NET_PCI_H

#include <memory>
#include <stdexcept>
#include <string>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "address_map.h"
#include "config.h"
#include "stats.h"
#include "trace.h"
#include "virtio_device_tlm.h"

namespace viosim {

// A configuration key the module refuses: unknown, a bad value, a key of viosim run's
// host or driver, or an impossible combination. what() is the message, which names the
// key ("KEY: message" when the message itself does not).
class config_error : public std::invalid_argument {
public:
    config_error(const std::string &key, const std::string &message);
    std::string key;     // "" for errors that concern no single key (JSON syntax)
    std::string message; // what was wrong and what is allowed
};

class virtio_net_pci : public sc_core::sc_module {
public:
    // Configuration and BAR accesses, from the host; DMA and MSI-X messages, towards
    // the platform. Loosely timed: b_transport only (the device's, passed through).
    tlm_utils::simple_target_socket<virtio_net_pci> target;
    tlm_utils::simple_initiator_socket<virtio_net_pci> dma;

    // Every parameter at its default.
    explicit virtio_net_pci(sc_core::sc_module_name name);
    // Starting from cfg (config_defaults() plus the caller's changes).
    virtio_net_pci(sc_core::sc_module_name name, const vs_config &cfg);
    ~virtio_net_pci() override;

    // Before the simulation starts (elaboration):
    // One key as `viosim run --set key=value` takes it.
    void set(const std::string &key, const std::string &value);
    // A JSON object as a config file holds it: {"device.queue_pairs_count": 4} or
    // {"device": {"queue_pairs_count": 4}}; applied whole or not at all.
    void configure(const std::string &json_object);
    // Where configuration space is decoded on `target` (default amap::ecam_base).
    void set_config_base(uint64_t base);
    // Timeline and counters of this device (either may be null): its tracks go under a
    // process of their own named after the module, its counters' names start with it.
    void set_trace(trace_recorder *trace, trace_counters *counters);
    const vs_config &config() const { return cfg_; }
    uint64_t config_base() const { return config_base_; }

    // After elaboration:
    bool elaborated() const { return dev_ != nullptr; }
    virtio_device_tlm &device();
    const virtio_device_tlm &device() const;
    // The device's statistics as a run prints them for it, up to sim_ns of simulated
    // time: the function's rows (frames, net, control queue, interrupts, DMA, per queue,
    // event suppression, time to interrupt), its DMA engine's, and
    // conformance.violations. The link's and the root complex's rows are the platform's.
    void add_stats(stats_table &s, double sim_ns) const;
    stats_table stats(double sim_ns) const;

private:
    void before_end_of_elaboration() override;
    void to_device(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
    void from_device(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
    void check_mutable(const char *what) const;

    vs_config cfg_;
    uint64_t config_base_ = amap::ecam_base;
    trace_recorder *trace_ = nullptr;
    trace_counters *counters_ = nullptr;
    std::unique_ptr<trace_recorder> trace_view_;
    std::unique_ptr<virtio_device_tlm> dev_;
    // The device exists only from the end of elaboration, after the platform bound
    // `target` and `dma`: these two sockets join it to them then.
    tlm_utils::simple_initiator_socket<virtio_net_pci> device_target_;
    tlm_utils::simple_target_socket<virtio_net_pci> device_dma_;
};

} // namespace viosim

#endif
