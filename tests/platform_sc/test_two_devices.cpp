// test_two_devices.cpp -- two virtio_net_pci modules in a platform of the user's own
// (docs/embedding.md): one memory, one interconnect routing by address, an MSI sink, and
// one CPU per device running the reference driver through its own vs_host_ops.
//
// What embedding owes: each device is built from a name and configured with viosim
// run's keys; configuration space is decoded at the base the platform chose (neither is
// amap::ecam_base) and the BARs wherever each driver's enumeration put them ("PCI
// Device Discovery"); the devices keep their own queues, interrupts ("MSI-X
// Configuration": each message goes to the address its driver programmed), statistics
// and trace tracks.
#include <criterion/criterion.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <jansson.h>
#include <systemc>
#include <tlm>
#include <tlm_utils/multi_passthrough_initiator_socket.h>
#include <tlm_utils/multi_passthrough_target_socket.h>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <tlm_utils/tlm_quantumkeeper.h>

#include "virtio_net_pci.h"

extern "C" {
#include "refdrv.h"
}

using sc_core::SC_NS;
using sc_core::sc_time;

#include "common/sc_criterion_main.h"
#include "common/tlm_access.h"

using namespace viosim; // the platform's modules and configuration (platform/)

namespace {

constexpr uint64_t MEM_BASE = 0x8000'0000ull, MEM_SIZE = 64ull << 20; // 32 MiB per driver
constexpr uint64_t CFG_BASE[2] = {0x3000'0000ull, 0x3000'8000ull};   // not amap::ecam_base
constexpr uint64_t BAR_WINDOW[2] = {0x4000'0000ull, 0x4100'0000ull}, BAR_WINDOW_SIZE = 0x100'0000ull;
constexpr uint64_t MSI_BASE = 0x5000'0000ull; // + 0x1000 per driver

// The user's memory: a byte array with a fixed latency.
struct memory : sc_core::sc_module {
    tlm_utils::simple_target_socket<memory> socket{"socket"};
    std::vector<uint8_t> bytes = std::vector<uint8_t>(MEM_SIZE);
    explicit memory(sc_core::sc_module_name n) : sc_module(n)
    {
        socket.register_b_transport(this, &memory::b_transport);
    }
    void b_transport(tlm::tlm_generic_payload &tx, sc_time &delay)
    {
        const uint64_t a = tx.get_address() - MEM_BASE, len = tx.get_data_length();
        if (tx.get_address() < MEM_BASE || a + len > MEM_SIZE) {
            tx.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
            return;
        }
        if (tx.is_read())
            std::memcpy(tx.get_data_ptr(), &bytes[a], len);
        else
            std::memcpy(&bytes[a], tx.get_data_ptr(), len);
        delay += sc_time(60, SC_NS);
        tx.set_response_status(tlm::TLM_OK_RESPONSE);
    }
};

// The interrupt controller: an MSI write's address says which driver it is for.
struct msi_sink : sc_core::sc_module {
    tlm_utils::simple_target_socket<msi_sink> socket{"socket"};
    std::deque<uint32_t> pending[2];
    sc_core::sc_event arrived[2];
    uint64_t messages[2] = {};
    explicit msi_sink(sc_core::sc_module_name n) : sc_module(n)
    {
        socket.register_b_transport(this, &msi_sink::b_transport);
    }
    void b_transport(tlm::tlm_generic_payload &tx, sc_time &delay)
    {
        const uint64_t k = (tx.get_address() - MSI_BASE) / 0x1000;
        uint32_t data = 0;
        std::memcpy(&data, tx.get_data_ptr(), std::min(4u, tx.get_data_length()));
        if (k < 2 && tx.is_write()) {
            pending[k].push_back(data);
            arrived[k].notify(delay);
            messages[k]++;
        }
        tx.set_response_status(tlm::TLM_OK_RESPONSE);
    }
};

// The interconnect: every initiator in, a target per address range out.
struct bus : sc_core::sc_module {
    tlm_utils::multi_passthrough_target_socket<bus> in{"in"};
    tlm_utils::multi_passthrough_initiator_socket<bus> out{"out"};
    struct route {
        uint64_t base, size;
        unsigned port;
    };
    std::vector<route> routes;
    explicit bus(sc_core::sc_module_name n) : sc_module(n) { in.register_b_transport(this, &bus::b_transport); }
    void b_transport(int, tlm::tlm_generic_payload &tx, sc_time &delay)
    {
        delay += sc_time(10, SC_NS);
        for (const route &r : routes)
            if (tx.get_address() >= r.base && tx.get_address() - r.base < r.size) {
                out[r.port]->b_transport(tx, delay);
                return;
            }
        tx.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
    }
};

// A CPU running the reference driver for device k: configuration space at CFG_BASE[k],
// BARs in BAR_WINDOW[k], guest memory its half of the memory, MSI at MSI_BASE + k KiB*4.
struct cpu : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<cpu> socket{"socket"};
    unsigned k;
    memory &mem;
    msi_sink &msi;
    refdrv_params params;
    refdrv_stats stats{};
    enum refdrv_result result = REFDRV_TIMEOUT;
    bool done = false;
    const cpu *peer = nullptr; // the simulation stops once both drivers are done
    SC_HAS_PROCESS(cpu);
    cpu(sc_core::sc_module_name n, unsigned k_, memory &m, msi_sink &s, uint64_t frames)
        : sc_module(n), k(k_), mem(m), msi(s), params(config_defaults().drv)
    {
        params.frames_count = frames;
        SC_THREAD(run);
    }
    uint64_t access(bool write, uint64_t addr, unsigned size, uint64_t v)
    {
        sc_time delay = sc_core::SC_ZERO_TIME;
        tlm::tlm_response_status status;
        v = tlm_access(socket, write, addr, size, v, delay, &status);
        wait(delay);
        return v;
    }
    static cpu &of(void *c) { return *static_cast<cpu *>(c); }
    void run()
    {
        vs_host_ops ops{};
        ops.cfg_read = [](void *c, uint32_t off, unsigned size) {
            return uint32_t(of(c).access(false, CFG_BASE[of(c).k] + off, size, 0));
        };
        ops.cfg_write = [](void *c, uint32_t off, unsigned size, uint32_t v) {
            of(c).access(true, CFG_BASE[of(c).k] + off, size, v);
        };
        ops.mmio_read = [](void *c, uint64_t a, unsigned size) { return of(c).access(false, a, size, 0); };
        ops.mmio_write = [](void *c, uint64_t a, unsigned size, uint64_t v) { of(c).access(true, a, size, v); };
        ops.wait_interrupt = [](void *c, uint64_t timeout_ns) {
            cpu &p = of(c);
            if (p.msi.pending[p.k].empty())
                sc_core::wait(sc_time(double(timeout_ns), SC_NS), p.msi.arrived[p.k]);
            if (p.msi.pending[p.k].empty())
                return -1;
            const int v = int(p.msi.pending[p.k].front());
            p.msi.pending[p.k].pop_front();
            return v;
        };
        ops.cpu_work = [](void *, vs_host_work, uint64_t count) { sc_core::wait(sc_time(50.0 * count, SC_NS)); };
        ops.now_ps = [](void *) { return uint64_t(sc_core::sc_time_stamp().value()); };
        ops.iommu_set_root = [](void *, uint32_t, uint64_t) { return -1; };
        ops.ctx = this;
        ops.mem = mem.bytes.data() + k * (MEM_SIZE / 2);
        ops.mem_base = MEM_BASE + k * (MEM_SIZE / 2);
        ops.mem_size = MEM_SIZE / 2;
        ops.mmio_window_base = BAR_WINDOW[k];
        ops.mmio_window_size = BAR_WINDOW_SIZE;
        ops.msi_base = MSI_BASE + k * 0x1000;
        result = refdrv_run(&ops, &params, &stats);
        done = true;
        if (peer->done)
            sc_core::sc_stop();
    }
};

const stat_entry *find(const stats_table &s, const std::string &name)
{
    const stat_entry *r = s.find(name);
    cr_assert(r != nullptr, "no statistic %s", name.c_str());
    return r;
}

} // namespace

Test(two_devices, each_device_has_its_own_queues_interrupts_statistics_and_tracks)
{
    sc_core::sc_set_time_resolution(1, sc_core::SC_PS);
    tlm_utils::tlm_quantumkeeper::set_global_quantum(sc_time(1000, SC_NS));
    const std::string trace_path = "test_two_devices.trace.json";
    auto trace = std::make_unique<trace_recorder>(trace_path);
    cr_assert(trace->ok());

    memory mem("memory");
    msi_sink msi("msi");
    bus interconnect("bus");
    virtio_net_pci dev0("dev0"), dev1("dev1");
    dev1.set("device.queue_pairs_count", "2");
    dev1.configure(R"({"device": {"clock_mhz": 500}})");
    cpu cpu0("cpu0", 0, mem, msi, 120), cpu1("cpu1", 1, mem, msi, 200);
    virtio_net_pci *devs[2] = {&dev0, &dev1};
    cpu *cpus[2] = {&cpu0, &cpu1};
    cpu1.params.mode = REFDRV_MODE_INTERRUPT; // its MSI-X messages must reach it, not cpu0
    cpu0.peer = &cpu1;
    cpu1.peer = &cpu0;
    for (unsigned k = 0; k < 2; k++) {
        devs[k]->set_config_base(CFG_BASE[k]);
        devs[k]->set("device.withdraw_features", "ACCESS_PLATFORM"); // no IOMMU here
        devs[k]->set_trace(trace.get(), nullptr);
        cpus[k]->socket.bind(interconnect.in);
        devs[k]->dma.bind(interconnect.in);
    }
    // Ports 0 and 1 of the interconnect's initiator socket are the devices.
    for (unsigned k = 0; k < 2; k++) {
        interconnect.out.bind(devs[k]->target);
        interconnect.routes.push_back({CFG_BASE[k], amap::ecam_size, k});
        interconnect.routes.push_back({BAR_WINDOW[k], BAR_WINDOW_SIZE, k});
    }
    interconnect.out.bind(mem.socket);
    interconnect.routes.push_back({MEM_BASE, MEM_SIZE, 2});
    interconnect.out.bind(msi.socket);
    interconnect.routes.push_back({MSI_BASE, 0x2000, 3});

    sc_core::sc_start(sc_time(50, sc_core::SC_MS));

    const uint64_t frames[2] = {120, 200};
    for (unsigned k = 0; k < 2; k++) {
        cr_assert(cpus[k]->done, "driver %u did not finish", k);
        cr_assert_eq(cpus[k]->result, REFDRV_OK, "driver %u: %s (device: %s)", k, refdrv_result_name(cpus[k]->result),
                     vs_reason_name(devs[k]->device().kernel().tp.error));
        cr_assert_eq(cpus[k]->stats.rx_frames, frames[k]);
        const stats_table s = devs[k]->stats(sc_core::sc_time_stamp().to_seconds() * 1e9);
        cr_assert_eq(find(s, "device.tx.frames")->u64, frames[k], "device %u", k);
        cr_assert_eq(find(s, "device.rx.frames")->u64, frames[k], "device %u", k);
        // Each its own queues: one pair offered, and two.
        cr_assert_gt(find(s, "device.queue.tx.busy_ns")->f64, 0.0, "device %u", k);
        if (k == 0)
            cr_assert(s.find("device.queue_pairs.offered") == nullptr);
        else
            cr_assert_eq(find(s, "device.queue_pairs.offered")->u64, 2u);
        cr_assert_eq(find(s, "device.msix_sent")->u64, msi.messages[k], "device %u's MSI-X messages", k);
        cr_assert_eq(find(s, "conformance.violations")->u64, 0u);
        cr_assert(s.find("dma.read_latency.p50_ns") != nullptr);
        cr_assert(s.find("link.up.tlps") == nullptr, "the link's rows are the platform's");
        // Its BARs are where its driver put them.
        const uint64_t bar0 = pci_cfg_bar_base(&devs[k]->device().kernel().tp.pci, 0);
        cr_assert(bar0 >= BAR_WINDOW[k] && bar0 < BAR_WINDOW[k] + BAR_WINDOW_SIZE, "BAR0 0x%llx",
                  (unsigned long long)bar0);
    }
    cr_assert_eq(dev0.device().num_queues(), 3u);
    cr_assert_eq(dev1.device().num_queues(), 5u);
    cr_assert_eq(dev1.config().device_tlm.clock_mhz, 500.0);
    cr_assert_gt(msi.messages[1], 0u);

    // Each device's tracks under its own process: transmitq1 engine spans in both.
    trace.reset(); // closes the file
    json_error_t jerr;
    json_t *doc = json_load_file(trace_path.c_str(), 0, &jerr);
    cr_assert(doc != nullptr, "trace: %s", jerr.text);
    json_t *events = json_object_get(doc, "traceEvents");
    std::string names[4];
    unsigned tx_spans[4] = {};
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        const json_int_t pid = json_integer_value(json_object_get(e, "pid"));
        const char *name = json_string_value(json_object_get(e, "name"));
        if (pid < 0 || pid > 3 || !name)
            continue;
        if (std::strcmp(name, "process_name") == 0)
            names[pid] = json_string_value(json_object_get(json_object_get(e, "args"), "name"));
        else if (json_integer_value(json_object_get(e, "tid")) == TRACE_QUEUE_TX &&
                 std::strcmp(json_string_value(json_object_get(e, "ph")), "X") == 0)
            tx_spans[pid]++;
    }
    json_decref(doc);
    cr_assert_str_eq(names[2].c_str(), "dev0");
    cr_assert_str_eq(names[3].c_str(), "dev1");
    cr_assert_gt(tx_spans[2], 0u);
    cr_assert_gt(tx_spans[3], 0u);
    cr_assert_eq(tx_spans[1], 0u, "no device writes to the shared process");
    std::remove(trace_path.c_str());
}

Test(two_devices, configuration_errors_name_the_key)
{
    virtio_net_pci dev("dev");
    auto refused = [&](auto &&apply, const char *key, const char *words) {
        try {
            apply();
        } catch (const config_error &e) {
            cr_assert_str_eq(e.key.c_str(), key, "%s", e.what());
            cr_assert(std::strstr(e.what(), words) != nullptr, "%s", e.what());
            return;
        }
        cr_assert_fail("%s accepted", key);
    };
    refused([&] { dev.set("device.queue_pairs", "4"); }, "device.queue_pairs", "device.queue_pairs_count");
    refused([&] { dev.set("device.queue_pairs_count", "many"); }, "device.queue_pairs_count", "many");
    refused([&] { dev.set("host.cpu_clock_mhz", "2000"); }, "host.cpu_clock_mhz", "host CPU");
    refused([&] { dev.configure(R"({"driver": {"frames_count": 5}})"); }, "driver.frames_count",
            "reference driver");
    refused([&] { dev.configure(R"({"device.clock_mhz": "fast"})"); }, "device.clock_mhz", "fast");
    // A rejected JSON object changes nothing, not even its valid keys.
    refused([&] { dev.configure(R"({"device.desc_cycles": 9, "device.clock_mhz": -1})"); }, "device.clock_mhz",
            "clock_mhz");
    cr_assert_eq(dev.config().device_tlm.desc_cycles, config_defaults().device_tlm.desc_cycles);
    refused([&] { dev.configure(R"({"device": )"); }, "", "JSON syntax error");
    dev.set("device.desc_cycles", "9");
    cr_assert_eq(dev.config().device_tlm.desc_cycles, 9u);
}

Test(two_devices, an_impossible_combination_is_refused_when_the_device_is_built)
{
    // Each key alone is valid; together they are not (viosim run's cross-parameter rule).
    virtio_net_pci dev("dev");
    dev.set("iommu.atc_entries", "64");
    dev.set("iommu.atc_ways", "3");
    memory mem("memory");
    msi_sink msi("msi");
    cpu host("cpu", 0, mem, msi, 1);
    host.socket.bind(dev.target);
    dev.dma.bind(mem.socket);
    try {
        sc_core::sc_start(sc_time(1, SC_NS));
    } catch (const config_error &e) {
        cr_assert_str_eq(e.key.c_str(), "iommu.atc_ways", "%s", e.what());
        cr_assert(!dev.elaborated());
        return;
    }
    cr_assert_fail("the device was built");
}
