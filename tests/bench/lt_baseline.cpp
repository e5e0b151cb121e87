// lt_baseline.cpp -- the bare SystemC loosely-timed loop scripts/bench measures viosim
// against: one initiator calling b_transport on a memory target, 64-byte reads, the
// target adding its latency to the annotated delay (as viosim's targets do). Two modes:
//   wait     the initiator calls wait(delay) after every transaction;
//   quantum  it keeps local time in a tlm_quantumkeeper and synchronises once a quantum.
// usage: bench_lt_baseline wait|quantum TRANSACTIONS [QUANTUM_NS]
// Prints one line: mode, transactions, simulated ns, wall-clock seconds.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <tlm_utils/tlm_quantumkeeper.h>

using sc_core::sc_time;
using sc_core::SC_NS;

struct memory : sc_core::sc_module {
    tlm_utils::simple_target_socket<memory> socket{"socket"};
    std::vector<unsigned char> bytes = std::vector<unsigned char>(1 << 20);

    explicit memory(sc_core::sc_module_name n) : sc_module(n)
    {
        socket.register_b_transport(this, &memory::b_transport);
    }

    void b_transport(tlm::tlm_generic_payload &tx, sc_time &delay)
    {
        const uint64_t addr = tx.get_address();
        const unsigned len = tx.get_data_length();
        if (addr + len > bytes.size()) {
            tx.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
            return;
        }
        if (tx.is_read())
            std::memcpy(tx.get_data_ptr(), &bytes[addr], len);
        else
            std::memcpy(&bytes[addr], tx.get_data_ptr(), len);
        delay += sc_time(80, SC_NS);
        tx.set_response_status(tlm::TLM_OK_RESPONSE);
    }
};

struct initiator : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<initiator> socket{"socket"};
    uint64_t count;
    bool use_quantum;
    unsigned char buf[64];

    SC_HAS_PROCESS(initiator);
    initiator(sc_core::sc_module_name n, uint64_t c, bool q) : sc_module(n), count(c), use_quantum(q)
    {
        SC_THREAD(run);
    }

    void run()
    {
        tlm::tlm_generic_payload tx;
        tlm_utils::tlm_quantumkeeper qk;
        qk.reset();
        for (uint64_t i = 0; i < count; i++) {
            tx.set_command(tlm::TLM_READ_COMMAND);
            tx.set_address((i * 64) % (1 << 20));
            tx.set_data_ptr(buf);
            tx.set_data_length(sizeof buf);
            tx.set_streaming_width(sizeof buf);
            tx.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
            if (use_quantum) {
                sc_time delay = qk.get_local_time();
                socket->b_transport(tx, delay);
                qk.set(delay);
                if (qk.need_sync())
                    qk.sync();
            } else {
                sc_time delay = sc_core::SC_ZERO_TIME;
                socket->b_transport(tx, delay);
                wait(delay);
            }
            if (!tx.is_response_ok())
                SC_REPORT_FATAL("bench_lt_baseline", "read failed");
        }
        qk.sync();
    }
};

int sc_main(int argc, char **argv)
{
    if (argc < 3 || (std::strcmp(argv[1], "wait") != 0 && std::strcmp(argv[1], "quantum") != 0)) {
        std::fprintf(stderr, "usage: %s wait|quantum TRANSACTIONS [QUANTUM_NS]\n", argv[0]);
        return 2;
    }
    const bool quantum = std::strcmp(argv[1], "quantum") == 0;
    const uint64_t count = std::strtoull(argv[2], nullptr, 10);
    const double quantum_ns = argc > 3 ? std::atof(argv[3]) : 1000.0;
    tlm_utils::tlm_quantumkeeper::set_global_quantum(sc_time(quantum_ns, SC_NS));
    memory mem("memory");
    initiator init("initiator", count, quantum);
    init.socket.bind(mem.socket);
    const auto t0 = std::chrono::steady_clock::now();
    sc_core::sc_start();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s %llu %.0f %.6f\n", argv[1], static_cast<unsigned long long>(count),
                sc_core::sc_time_stamp().to_seconds() * 1e9, wall);
    return 0;
}
