// root_complex.h -- routes the device's upstream requests: MSI-X messages to the
// interrupt controller, everything else to host memory.
#ifndef VIOSIM_ROOT_COMPLEX_H
#define VIOSIM_ROOT_COMPLEX_H

#include <cstdint>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

class root_complex : public sc_core::sc_module {
public:
    tlm_utils::simple_target_socket<root_complex> from_link;
    tlm_utils::simple_initiator_socket<root_complex> to_memory;
    tlm_utils::simple_initiator_socket<root_complex> to_intc;

    explicit root_complex(sc_core::sc_module_name name);

    uint64_t msi_writes = 0, unsupported = 0;

private:
    void b_transport(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
};

#endif
