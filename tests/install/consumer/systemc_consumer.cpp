// A user's SystemC program on an installed viosim module: an initiator writes 64 bytes
// into viosim's host_memory over TLM and reads them back, and the read takes the
// memory's latency. Exit 0 when the bytes and the time agree.
#include <cstring>
#include <iostream>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include <viosim/host_memory.h>

struct user_cpu : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<user_cpu> socket;
    bool ok = false;
    SC_HAS_PROCESS(user_cpu);
    explicit user_cpu(sc_core::sc_module_name n) : sc_module(n), socket("socket") { SC_THREAD(run); }

    void access(tlm::tlm_command cmd, uint8_t *data, sc_core::sc_time &delay)
    {
        tlm::tlm_generic_payload tx;
        tx.set_command(cmd);
        tx.set_address(0x1000);
        tx.set_data_ptr(data);
        tx.set_data_length(64);
        tx.set_streaming_width(64);
        tx.set_byte_enable_ptr(nullptr);
        tx.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        socket->b_transport(tx, delay);
        ok = tx.is_response_ok();
    }

    void run()
    {
        uint8_t out[64], in[64] = {0};
        for (int i = 0; i < 64; i++)
            out[i] = (uint8_t)(i * 3);
        sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
        access(tlm::TLM_WRITE_COMMAND, out, delay);
        bool good = ok;
        delay = sc_core::SC_ZERO_TIME;
        access(tlm::TLM_READ_COMMAND, in, delay);
        ok = good && ok && std::memcmp(in, out, 64) == 0 && delay >= sc_core::sc_time(100, sc_core::SC_NS);
        std::cout << "systemc_consumer: read took " << delay << (ok ? ", ok" : ", WRONG") << "\n";
    }
};

int sc_main(int, char *[])
{
    viosim::host_memory mem("mem", 0, 1 << 20, sc_core::sc_time(100, sc_core::SC_NS),
                            sc_core::sc_time(0.25, sc_core::SC_NS));
    user_cpu cpu("cpu");
    cpu.socket.bind(mem.socket);
    sc_core::sc_start();
    return cpu.ok ? 0 : 1;
}
