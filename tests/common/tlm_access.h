/* tlm_access.h -- one register-sized blocking access over TLM, for the tests' own
 * initiators (tests/platform_sc/). */
#ifndef VIOSIM_TLM_ACCESS_H
#define VIOSIM_TLM_ACCESS_H

#include <cstdint>

#include <systemc>
#include <tlm>

/* Reads or writes len (1..8) bytes at addr through socket, adding the target's time to
 * delay. Returns the value read (v for a write); the payload's status in *status. */
template <typename Socket>
uint64_t tlm_access(Socket &socket, bool write, uint64_t addr, unsigned len, uint64_t v,
                    sc_core::sc_time &delay, tlm::tlm_response_status *status)
{
    tlm::tlm_generic_payload tx;
    tx.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    tx.set_address(addr);
    tx.set_data_ptr(reinterpret_cast<unsigned char *>(&v));
    tx.set_data_length(len);
    tx.set_streaming_width(len);
    tx.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
    socket->b_transport(tx, delay);
    *status = tx.get_response_status();
    return v;
}

#endif
