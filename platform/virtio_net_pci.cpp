// virtio_net_pci.cpp -- the device module for a user's platform: configuration by
// viosim run's keys, the device built at the end of elaboration, its statistics.
#include "virtio_net_pci.h"

#include <jansson.h>

#include <cstring>

#include "device_platform.h"

namespace viosim {

namespace {

// Keys that describe what viosim run builds around the device (its host CPU and memory,
// the reference driver, the DMA benchmark, the run's quantum and time limit): the
// module reads none of them, so setting one is refused rather than silently ignored.
// "" when the module takes the key.
std::string not_a_device_key(const std::string &key)
{
    static const char *const sections[] = {"host.", "driver.", "bench."};
    for (const char *s : sections)
        if (key.compare(0, std::strlen(s), s) == 0)
            return std::string("describes viosim run's ") +
                   (s[0] == 'h' ? "host CPU and memory" : s[0] == 'd' ? "reference driver" : "DMA benchmark") +
                   ", not the device: the platform embedding the device provides its own";
    static const char *const run_keys[] = {"sim.workload", "sim.quantum_ns", "sim.time_limit_ms", "sim.poll_sleep"};
    for (const char *k : run_keys)
        if (key == k)
            return "a setting of viosim run, not of the device (the platform embedding the device sets "
                   "its own quantum, workload and time limit)";
    return "";
}

// The dotted keys of a config object (sections flattened), for not_a_device_key.
void object_keys(const json_t *obj, const std::string &prefix, std::vector<std::string> &out)
{
    const char *k;
    json_t *v;
    json_object_foreach(const_cast<json_t *>(obj), k, v)
    {
        if (json_is_object(v))
            object_keys(v, prefix + k + ".", out);
        else
            out.push_back(prefix + k);
    }
}

} // namespace

config_error::config_error(const std::string &k, const std::string &m)
    : std::invalid_argument(k.empty() || m.find(k) != std::string::npos ? m : k + ": " + m), key(k), message(m)
{
}

virtio_net_pci::virtio_net_pci(sc_core::sc_module_name name) : virtio_net_pci(name, config_defaults()) {}

virtio_net_pci::virtio_net_pci(sc_core::sc_module_name name, const vs_config &cfg)
    : sc_module(name), target("target"), dma("dma"), cfg_(cfg), device_target_("device_target"),
      device_dma_("device_dma")
{
    target.register_b_transport(this, &virtio_net_pci::to_device);
    device_dma_.register_b_transport(this, &virtio_net_pci::from_device);
}

void virtio_net_pci::to_device(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay)
{
    device_target_->b_transport(tx, delay);
}

void virtio_net_pci::from_device(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay)
{
    dma->b_transport(tx, delay);
}

virtio_net_pci::~virtio_net_pci() = default;

void virtio_net_pci::check_mutable(const char *what) const
{
    if (dev_)
        throw config_error("", std::string(name()) + ": " + what +
                                   " after elaboration (the device is built from its configuration then)");
}

void virtio_net_pci::set(const std::string &key, const std::string &value)
{
    check_mutable("set()");
    const std::string refused = not_a_device_key(key);
    if (!refused.empty())
        throw config_error(key, refused);
    param_error err;
    if (!config_apply_set(cfg_, key + "=" + value, err))
        throw config_error(err.key.empty() ? key : err.key, err.message);
}

void virtio_net_pci::configure(const std::string &json_object)
{
    check_mutable("configure()");
    json_t *root = json_loads(json_object.c_str(), 0, nullptr);
    if (root && json_is_object(root)) {
        std::vector<std::string> keys;
        object_keys(root, "", keys);
        for (const std::string &k : keys) {
            const std::string refused = not_a_device_key(k);
            if (!refused.empty()) {
                json_decref(root);
                throw config_error(k, refused);
            }
        }
    }
    json_decref(root);
    param_error err;
    if (!config_apply_json(cfg_, json_object, err)) // syntax errors are reported from here
        throw config_error(err.key, err.message);
}

void virtio_net_pci::set_config_base(uint64_t base)
{
    check_mutable("set_config_base()");
    config_base_ = base;
}

void virtio_net_pci::set_trace(trace_recorder *trace, trace_counters *counters)
{
    trace_ = trace;
    counters_ = counters;
    if (!dev_)
        return; // applied when the device is built
    trace_view_ = trace ? trace->instance(name()) : nullptr;
    dev_->set_trace(trace_view_.get(), counters, std::string(name()) + ": ");
}

void virtio_net_pci::before_end_of_elaboration()
{
    if (dev_)
        return;
    param_error err;
    if (!config_validate(cfg_, err))
        throw config_error(err.key, err.message);
    dev_.reset(new virtio_device_tlm("device", cfg_.dev, device_timing_of(cfg_), dma_bench_setup()));
    dev_->set_config_window(config_base_);
    device_target_.bind(dev_->target);
    dev_->dma.bind(device_dma_);
    if (trace_ || counters_)
        set_trace(trace_, counters_);
}

virtio_device_tlm &virtio_net_pci::device()
{
    if (!dev_)
        throw std::logic_error(std::string(name()) + ": the device exists once elaboration has ended");
    return *dev_;
}

const virtio_device_tlm &virtio_net_pci::device() const
{
    return const_cast<virtio_net_pci *>(this)->device();
}

void virtio_net_pci::add_stats(stats_table &s, double sim_ns) const
{
    const virtio_device_tlm &d = device();
    stats_add_device(s, d, sim_ns);
    stats_add_dma_engine(s, d.dma_stats(), d.arbiter(), sim_ns, vnet_ctrl_queue(&d.kernel().net));
    stats_add_violations(s, d.kernel().tp.vpci.conf.total);
}

stats_table virtio_net_pci::stats(double sim_ns) const
{
    stats_table s;
    add_stats(s, sim_ns);
    return s;
}

} // namespace viosim
