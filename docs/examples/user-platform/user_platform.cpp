// A platform of one's own around viosim's device (docs/embedding.md): the user's memory,
// interconnect and CPU; the CPU enumerates the device, brings it up and moves frames
// with viosim's reference driver. Exit 0 when every frame came back.
#include <cstring>
#include <iostream>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_initiator_socket.h>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <tlm_utils/tlm_quantumkeeper.h>

#include <viosim/virtio_net_pci.h>

using namespace sc_core;
constexpr uint64_t RAM = 0x8000'0000, RAM_SIZE = 32 << 20, CFG = 0x3000'0000, BARS = 0x4000'0000,
                   BARS_SIZE = 0x100'0000, MSI = 0x5000'0000;

// The interconnect: [RAM] memory, [CFG]+[BARS] the device, [MSI] the CPU's interrupt
// input; every transaction costs 10 ns. Memory reads and writes cost 60 ns more.
struct interconnect : sc_module {
    tlm_utils::multi_passthrough_target_socket<interconnect> in{"in"};
    tlm_utils::multi_passthrough_initiator_socket<interconnect> out{"out"}; // device, cpu's msi
    std::vector<uint8_t> ram = std::vector<uint8_t>(RAM_SIZE);
    explicit interconnect(sc_module_name n) : sc_module(n) { in.register_b_transport(this, &interconnect::b_transport); }
    void b_transport(int, tlm::tlm_generic_payload &tx, sc_time &delay)
    {
        const uint64_t a = tx.get_address(), len = tx.get_data_length();
        delay += sc_time(10, SC_NS);
        if (a >= RAM && a - RAM + len <= RAM_SIZE) {
            uint8_t *m = &ram[a - RAM];
            tx.is_read() ? (void)std::memcpy(tx.get_data_ptr(), m, len) : (void)std::memcpy(m, tx.get_data_ptr(), len);
            delay += sc_time(60, SC_NS);
            tx.set_response_status(tlm::TLM_OK_RESPONSE);
        } else if ((a >= CFG && a - CFG < 0x1000) || (a >= BARS && a - BARS < BARS_SIZE)) {
            out[0]->b_transport(tx, delay);
        } else if (a == MSI) {
            out[1]->b_transport(tx, delay);
        } else {
            tx.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        }
    }
};

// The CPU: the reference driver on vs_host_ops (configuration space at CFG, BARs placed
// in BARS, MSI-X messages to MSI), every access waited for.
struct cpu : sc_module {
    tlm_utils::simple_initiator_socket<cpu> bus{"bus"};
    tlm_utils::simple_target_socket<cpu> msi{"msi"};
    std::vector<uint8_t> &ram;
    std::vector<uint32_t> vectors; // MSI-X messages not yet taken
    sc_event irq;
    refdrv_params params = viosim::config_defaults().drv; // the reference driver's defaults
    refdrv_stats stats{};
    refdrv_result result = REFDRV_TIMEOUT;
    SC_HAS_PROCESS(cpu);
    cpu(sc_module_name n, std::vector<uint8_t> &r) : sc_module(n), ram(r)
    {
        msi.register_b_transport(this, &cpu::message);
        SC_THREAD(run);
    }
    void message(tlm::tlm_generic_payload &tx, sc_time &delay)
    {
        vectors.push_back(*reinterpret_cast<uint32_t *>(tx.get_data_ptr()));
        irq.notify(delay);
        tx.set_response_status(tlm::TLM_OK_RESPONSE);
    }
    uint64_t access(bool write, uint64_t addr, unsigned size, uint64_t v)
    {
        tlm::tlm_generic_payload tx;
        sc_time delay = SC_ZERO_TIME;
        tx.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
        tx.set_address(addr);
        tx.set_data_ptr(reinterpret_cast<unsigned char *>(&v));
        tx.set_data_length(size);
        tx.set_streaming_width(size);
        bus->b_transport(tx, delay);
        wait(delay);
        return v;
    }
    static cpu &of(void *c) { return *static_cast<cpu *>(c); }
    void run()
    {
        vs_host_ops ops{};
        ops.cfg_read = [](void *c, uint32_t off, unsigned n) { return uint32_t(of(c).access(false, CFG + off, n, 0)); };
        ops.cfg_write = [](void *c, uint32_t off, unsigned n, uint32_t v) { of(c).access(true, CFG + off, n, v); };
        ops.mmio_read = [](void *c, uint64_t a, unsigned n) { return of(c).access(false, a, n, 0); };
        ops.mmio_write = [](void *c, uint64_t a, unsigned n, uint64_t v) { of(c).access(true, a, n, v); };
        ops.wait_interrupt = [](void *c, uint64_t timeout_ns) {
            cpu &p = of(c);
            if (p.vectors.empty())
                sc_core::wait(sc_time(double(timeout_ns), SC_NS), p.irq);
            if (p.vectors.empty())
                return -1;
            const int v = int(p.vectors.front());
            p.vectors.erase(p.vectors.begin());
            return v;
        };
        ops.cpu_work = [](void *, vs_host_work, uint64_t count) { sc_core::wait(sc_time(50.0 * count, SC_NS)); };
        ops.now_ps = [](void *) { return uint64_t(sc_time_stamp().value()); };
        ops.iommu_set_root = [](void *, uint32_t, uint64_t) { return -1; }; // no IOMMU here
        ops.ctx = this;
        ops.mem = ram.data(), ops.mem_base = RAM, ops.mem_size = RAM_SIZE;
        ops.mmio_window_base = BARS, ops.mmio_window_size = BARS_SIZE, ops.msi_base = MSI;
        params.frames_count = 1000;
        result = refdrv_run(&ops, &params, &stats);
        sc_stop();
    }
};

int sc_main(int, char *[])
{
    sc_set_time_resolution(1, SC_PS);
    tlm_utils::tlm_quantumkeeper::set_global_quantum(sc_time(1, SC_US)); // the platform's
    interconnect bus("bus");
    cpu host("cpu", bus.ram);
    viosim::virtio_net_pci nic("nic");          // every parameter at its default
    nic.set("device.queue_engines", "2");       // the keys of viosim run
    nic.set("device.withdraw_features", "ACCESS_PLATFORM"); // this platform has no IOMMU
    nic.configure(R"({"device": {"clock_mhz": 800}})");
    nic.set_config_base(CFG);
    host.bus.bind(bus.in);
    nic.dma.bind(bus.in);
    bus.out.bind(nic.target);
    bus.out.bind(host.msi);
    sc_start(sc_time(100, SC_MS));
    const double ns = sc_time_stamp().to_seconds() * 1e9;
    viosim::stats_print_table(stdout, nic.stats(ns));
    std::cout << "driver: " << refdrv_result_name(host.result) << ", " << host.stats.rx_frames
              << " of " << host.params.frames_count << " frames back\n";
    return host.result == REFDRV_OK && host.stats.rx_frames == host.params.frames_count ? 0 : 1;
}
