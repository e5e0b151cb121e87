// external_host.h -- the timed device platform driven from outside SystemC.
//
// The device side of `viosim run` (device_platform.h: the device and its engines, DMA
// engine, link, root complex with its IOMMU, host memory), with the caller in the host
// CPU's place: the caller owns guest memory, performs configuration and BAR accesses,
// which enter the link's downstream port as TLM transactions at the current simulated
// time, advances simulated time itself, and is told of the device's interrupts. For
// front ends whose driver runs elsewhere (`viosim serve --qemu-proxy`, vhost-user) and
// for tests that drive the device step by step.
//
// Simulated time moves only inside these calls (docs/architecture.md, "A device driven
// from outside"): a read, and a configuration write (non-posted), returns once its
// completion is back, so time advances by its round trip; a posted MMIO write returns
// at once, time unchanged, and takes effect when it reaches the device; run_for,
// run_until_idle and run_until_interrupt advance it explicitly. Between two calls the
// simulation is paused: whatever the caller's own time does, the device sees none of it.
//
// SystemC elaborates once per process: create refuses a second external_host in one
// process; never build one together with vs_run. Not thread-safe: call from one thread, and never from
// within on_msi / on_intx (they run inside the simulation).
#ifndef VIOSIM_EXTERNAL_HOST_H
#define VIOSIM_EXTERNAL_HOST_H

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <systemc>

#include "config.h"
#include "host_memory.h"
#include "stats.h"
#include "top.h"

namespace viosim {

struct device_platform;
class external_host_port;

// How one configuration or BAR access ended.
enum class external_access {
    ok,        // the device claimed it (a read's value is its answer)
    unclaimed, // no BAR of the function decodes the address (a read gives all-ones, as
               // an Unsupported Request's completion does)
    refused,   // not an access the function takes: size not 1, 2, 4 (8 for BARs), a
               // configuration offset past the 4 KiB space (nothing entered the platform)
};

class external_host {
public:
    // Builds the platform of cfg (which passed config_validate) over the caller's guest
    // memory, guest-physical regions that stay valid (and mapped) as long as this object
    // or until set_guest_memory replaces them; the caller may write them between calls.
    // Null, with why set, for a second platform in one process. (No exception: one thrown
    // after SystemC has switched to its process stacks confuses AddressSanitizer.)
    static std::unique_ptr<external_host> create(const vs_config &cfg,
                                                 const std::vector<memory_region> &guest_memory,
                                                 std::string &why);
    ~external_host();
    external_host(const external_host &) = delete;
    external_host &operator=(const external_host &) = delete;

    // Replaces the guest memory regions (a guest's memory map changed).
    void set_guest_memory(const std::vector<memory_region> &guest_memory);

    // Configuration space (offset in the function's 4 KiB space) and BAR (a bus address
    // the driver assigned) accesses; value is the read's answer (all-ones unless ok).
    external_access cfg_read(uint32_t offset, unsigned size, uint32_t &value);
    external_access cfg_write(uint32_t offset, unsigned size, uint32_t value);
    external_access mmio_read(uint64_t addr, unsigned size, uint64_t &value);
    external_access mmio_write(uint64_t addr, unsigned size, uint64_t value);

    // A function-level reset of the device (virtio_device_tlm::function_reset) at the
    // current simulated time: configuration space, MSI-X and the virtio device as at
    // power-on; statistics and the conformance record kept. QEMU's DEVICE_RESET.
    void reset_function();

    // Advances simulated time by exactly d.
    void run_for(const sc_core::sc_time &d);
    // Advances until nothing is left to happen without the caller (every engine waits for
    // a notification, no timer or DMA pending), at most by bound; true if idle then (time
    // stops at the last thing that happened, not at the bound). False: something is still
    // to happen, and time has moved by exactly bound.
    bool run_until_idle(const sc_core::sc_time &bound);
    // Advances until an interrupt (MSI-X message or INTx change) has been delivered, at
    // most by bound; true if one was (time stops at its arrival).
    bool run_until_interrupt(const sc_core::sc_time &bound);
    sc_core::sc_time now() const;

    // The interrupt controller's side, each called at the simulated time the interrupt
    // arrives: an MSI-X message (a 4-byte posted write of data to addr in the MSI window,
    // amap::msi_base) and the INTx level (device.msix = off; host.intx_latency_ns after
    // the device changed its pin).
    std::function<void(uint64_t addr, uint32_t data)> on_msi;
    std::function<void(bool level)> on_intx;

    // A front end without registers (vhost-user, platform/vhost_user.cpp), which hands
    // the device what its driver settled instead of register writes. front_end runs op on
    // the device's kernel (its pt_fe_* / vnet_fe_* calls) inside the simulation at the
    // current simulated time, taking none, then wakes the engines as a register write
    // arriving now would (queues come into service, interrupts decided are sent). ops
    // reaches guest memory untimed (a ring stop publishing what was pushed is a control
    // operation, not the data path). kick is an available buffer notification for queue
    // q arriving at the device now (counted in its kicks, its engine wakes). Used buffer
    // notifications come out through on_msi: pt_fe_attach puts queue q on vector 1 + q,
    // address PT_FE_MSI_ADDRESS (amap::msi_base), data the vector (pt_fe_msi_queue).
    void front_end(const std::function<void(vdev &, const vs_guest_ops &)> &op);
    void kick(uint16_t q);

    // Points address space pasid of the platform IOMMU at a page table in guest memory
    // (workloads/iopt.h format; vs_host_ops.iommu_set_root).
    bool iommu_set_root(uint32_t pasid, uint64_t root);

    // Every statistic of the device side as `viosim run` writes it, over the simulated
    // time so far (sim.time_ns), with the conformance record, the device's error and the
    // negotiated features; completed true, driver_result "" (no driver of ours ran).
    run_result collect() const;

    // The platform, for what the calls above do not cover (read-only use advised).
    const device_platform &platform() const;

private:
    external_host(const vs_config &cfg, const std::vector<memory_region> &guest_memory);
    external_access access(bool read, uint64_t addr, unsigned size, uint64_t &value);
    void in_port(); // runs the port's request (an access or op) at the current time
    void run(const sc_core::sc_time &bound, bool to_time);

    struct parts;
    std::unique_ptr<parts> p_;
};

} // namespace viosim

#endif
