#include "root_complex.h"

#include "address_map.h"

root_complex::root_complex(sc_core::sc_module_name name)
    : sc_module(name), from_link("from_link"), to_memory("to_memory"), to_intc("to_intc")
{
    from_link.register_b_transport(this, &root_complex::b_transport);
}

void root_complex::b_transport(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay)
{
    const uint64_t addr = tx.get_address();
    const unsigned len = tx.get_data_length();
    if (amap::in(addr, len, amap::msi_base, amap::msi_size)) {
        if (!tx.is_write()) {
            unsupported++;
            tx.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
            return;
        }
        msi_writes++;
        to_intc->b_transport(tx, delay);
        return;
    }
    // Peer-to-peer and anything outside guest RAM ends in the memory target's
    // address-error response.
    to_memory->b_transport(tx, delay);
}
