// smp_interconnect.h -- the software-device profile's stand-in for the PCIe link.
//
// The "device" is a thread on another CPU of the same machine (as a vhost back end
// is): it reaches guest memory with cache-coherent loads and stores instead of TLPs,
// the driver's notification reaches it as a wake-up (eventfd write, IPI), and its
// interrupt reaches the driver as an IPI. Same sockets as pcie_link, so the rest of
// the platform does not change:
//   device reads   : software.access_ns + bytes / software.copy_bytes_per_ns
//   device writes  : bytes / software.copy_bytes_per_ns (stores; no round trip)
//   interrupts     : arrive software.interrupt_ns after they are sent
//   CPU writes to device registers (notifications, configuration): arrive
//                    software.notify_ns later; the CPU pays only its own store cost
//   CPU reads of device registers: software.access_ns
// Host memory's own latency parameters are not used here: access_ns is the whole cost
// of a dependent access in this profile.
#ifndef VIOSIM_SMP_INTERCONNECT_H
#define VIOSIM_SMP_INTERCONNECT_H

#include <cstdint>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "module_params.h"

namespace viosim {

struct smp_timing {
    sc_core::sc_time access;       // one dependent load that misses the local cache
    double copy_bytes_per_ns = 10; // streaming copy bandwidth of the device thread
    sc_core::sc_time notify;       // driver notification until the device thread runs
    sc_core::sc_time interrupt;    // device interrupt until the driver's handler runs
};

// The interconnect's timing from the software.* group.
smp_timing smp_timing_of(const software_params &p);

class smp_interconnect : public sc_core::sc_module {
public:
    tlm_utils::simple_target_socket<smp_interconnect> up_in;
    tlm_utils::simple_initiator_socket<smp_interconnect> up_out;
    tlm_utils::simple_target_socket<smp_interconnect> down_in;
    tlm_utils::simple_initiator_socket<smp_interconnect> down_out;

    smp_interconnect(sc_core::sc_module_name name, const smp_timing &t, uint64_t msi_base,
                     uint64_t msi_size);

    uint64_t reads = 0, writes = 0, interrupts = 0, notifications = 0;
    uint64_t read_bytes = 0, write_bytes = 0;

private:
    void b_upstream(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
    void b_downstream(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
    sc_core::sc_time copy_time(unsigned bytes) const;

    smp_timing t_;
    uint64_t msi_base_, msi_size_;
};

} // namespace viosim

#endif
