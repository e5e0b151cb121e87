#include "smp_interconnect.h"

#include "address_map.h"

namespace viosim {

smp_timing smp_timing_of(const software_params &p)
{
    smp_timing st;
    st.access = sc_core::sc_time(p.access_ns, sc_core::SC_NS);
    st.copy_bytes_per_ns = p.copy_bytes_per_ns;
    st.notify = sc_core::sc_time(p.notify_ns, sc_core::SC_NS);
    st.interrupt = sc_core::sc_time(p.interrupt_ns, sc_core::SC_NS);
    return st;
}

using sc_core::sc_time;
using sc_core::SC_NS;

smp_interconnect::smp_interconnect(sc_core::sc_module_name name, const smp_timing &t,
                                   uint64_t msi_base, uint64_t msi_size)
    : sc_module(name), up_in("up_in"), up_out("up_out"), down_in("down_in"),
      down_out("down_out"), t_(t), msi_base_(msi_base), msi_size_(msi_size)
{
    up_in.register_b_transport(this, &smp_interconnect::b_upstream);
    down_in.register_b_transport(this, &smp_interconnect::b_downstream);
}

sc_time smp_interconnect::copy_time(unsigned bytes) const
{
    return sc_time(bytes / t_.copy_bytes_per_ns, SC_NS);
}

// The device thread's loads and stores to guest memory, and its interrupts.
void smp_interconnect::b_upstream(tlm::tlm_generic_payload &tx, sc_time &delay)
{
    const unsigned len = tx.get_data_length();
    sc_time ignored = sc_core::SC_ZERO_TIME; // the memory's own latency: see header
    if (tx.is_read()) {
        up_out->b_transport(tx, ignored);
        reads++;
        read_bytes += len;
        delay += t_.access + copy_time(len);
        return;
    }
    if (amap::in(tx.get_address(), len, msi_base_, msi_size_)) {
        interrupts++;
        sc_time arrival = delay + t_.interrupt;
        up_out->b_transport(tx, arrival);
        return;
    }
    up_out->b_transport(tx, ignored);
    writes++;
    write_bytes += len;
    delay += copy_time(len);
}

// The driver's accesses to the device's registers (a shared structure in memory).
void smp_interconnect::b_downstream(tlm::tlm_generic_payload &tx, sc_time &delay)
{
    if (tx.is_read()) {
        down_out->b_transport(tx, delay);
        delay += t_.access;
        return;
    }
    notifications++;
    sc_time arrival = delay + t_.notify;
    down_out->b_transport(tx, arrival);
}

} // namespace viosim
