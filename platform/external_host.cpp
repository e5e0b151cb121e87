// external_host.cpp -- the device platform with the caller in the host CPU's place.
#include "external_host.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <stdexcept>

#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <tlm_utils/tlm_quantumkeeper.h>

#include "address_map.h"
#include "device_platform.h"
#include "reused_payload.h"

namespace viosim {

using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_PS;
using sc_core::SC_ZERO_TIME;

// The host's end of the platform, inside SystemC: the initiator of the caller's accesses
// (a thread that issues one when asked and waits for its completion, as a CPU's load
// does) and the interrupt controller (interrupts delivered at their arrival time).
class external_host_port : public sc_core::sc_module {
public:
    tlm_utils::simple_initiator_socket<external_host_port> mmio;
    tlm_utils::simple_target_socket<external_host_port> msi_in;

    // The access asked for, and its outcome once done.
    struct request {
        tlm::tlm_command cmd;
        uint64_t addr;
        unsigned size;
        unsigned char data[8];
        tlm::tlm_response_status status;
        bool done;
    } req = {};
    // Instead of an access: work to run inside the simulation at the current time
    // (external_host::front_end, kick).
    std::function<void()> op;
    sc_core::sc_event start;

    // Interrupts arrived and not yet delivered, in arrival order.
    struct irq {
        sc_time at;
        bool msi;         // else an INTx level
        uint64_t addr;
        uint32_t data;    // the MSI data, or the INTx level
        sc_time sent;     // INTx: when the device changed its pin
        bool before_completion; // INTx: changed while a read of ours was at the device
    };
    std::deque<irq> irqs;
    sc_core::sc_event irq_due;
    bool pause_on_interrupt = false;
    bool in_read = false;   // a read of ours is at the device
    bool delivered = false; // an interrupt was delivered since the caller cleared it
    std::function<void(uint64_t, uint32_t)> *on_msi = nullptr;
    std::function<void(bool)> *on_intx = nullptr;

    SC_HAS_PROCESS(external_host_port);
    explicit external_host_port(sc_core::sc_module_name name)
        : sc_module(name), mmio("mmio"), msi_in("msi_in")
    {
        msi_in.register_b_transport(this, &external_host_port::b_msi);
        SC_THREAD(issue);
        SC_METHOD(deliver);
        sensitive << irq_due;
        dont_initialize();
    }

    // An interrupt arriving at `at` (after those already queued for the same time).
    void arrive(const irq &i)
    {
        auto it = irqs.end();
        while (it != irqs.begin() && std::prev(it)->at > i.at)
            --it;
        irqs.insert(it, i);
        irq_due.notify(i.at - sc_core::sc_time_stamp());
    }

private:
    // A member, not a local of issue(): that thread never returns, so a local would
    // never be destroyed.
    reused_payload slot;

    void issue()
    {
        for (;;) {
            sc_core::wait(start);
            if (op) {
                op();
                op = nullptr;
                req.done = true;
                sc_core::sc_pause();
                continue;
            }
            reused_payload::lease payload(slot);
            tlm::tlm_generic_payload &tx = payload.prepare(req.cmd, req.addr, req.data, req.size);
            sc_time delay = SC_ZERO_TIME;
            in_read = req.cmd == tlm::TLM_READ_COMMAND;
            mmio->b_transport(tx, delay);
            if (in_read) {
                // PCIe ordering: a completion does not pass the posted messages sent
                // before it, so a pin change the read caused (an ISR read's deassert)
                // is seen by the time the read's value is (as host_cpu::access).
                in_read = false;
                const sc_time completion = sc_core::sc_time_stamp() + delay;
                for (irq &i : irqs)
                    if (i.before_completion) {
                        i.at = std::max(i.sent, std::min(i.at, completion));
                        i.before_completion = false;
                    }
                std::stable_sort(irqs.begin(), irqs.end(),
                                 [](const irq &a, const irq &b) { return a.at < b.at; });
                if (!irqs.empty())
                    irq_due.notify(irqs.front().at - sc_core::sc_time_stamp());
            }
            req.status = tx.get_response_status();
            // The caller goes on once the completion is back (a read, a configuration
            // write); a posted write's delay is zero.
            if (delay > SC_ZERO_TIME)
                sc_core::wait(delay);
            req.done = true;
            sc_core::sc_pause();
        }
    }

    // Hands every interrupt due by now to the caller's callbacks.
    void deliver()
    {
        const sc_time now = sc_core::sc_time_stamp();
        while (!irqs.empty() && irqs.front().at <= now) {
            const irq i = irqs.front();
            irqs.pop_front();
            if (i.msi && *on_msi)
                (*on_msi)(i.addr, i.data);
            else if (!i.msi && *on_intx)
                (*on_intx)(i.data != 0);
            delivered = true;
        }
        if (!irqs.empty())
            irq_due.notify(irqs.front().at - now);
        if (delivered && pause_on_interrupt)
            sc_core::sc_pause();
    }

    // The interrupt controller: an MSI-X message is a 4-byte posted write.
    void b_msi(tlm::tlm_generic_payload &tx, sc_time &delay)
    {
        if (!tx.is_write() || tx.get_data_length() != 4) {
            tx.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
            return;
        }
        uint32_t data;
        std::memcpy(&data, tx.get_data_ptr(), 4);
        const sc_time at = sc_core::sc_time_stamp() + delay;
        arrive({at, true, tx.get_address(), data, at, false});
        tx.set_response_status(tlm::TLM_OK_RESPONSE);
    }
};

namespace {

bool g_built = false; // SystemC elaborates once per process

// Before any module or time exists: what vs_run sets up.
const vs_config &systemc_setup(const vs_config &cfg)
{
    sc_core::sc_set_time_resolution(1, SC_PS);
    sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
    tlm_utils::tlm_quantumkeeper::set_global_quantum(sc_time(cfg.sim.quantum_ns, SC_NS));
    return cfg;
}

} // namespace

// The device side and the host's port, in the order a run builds them (the port where
// the CPU is).
struct external_host::parts : device_platform {
    external_host_port port;
    sc_time intx_latency;

    parts(const vs_config &cfg, const std::vector<memory_region> &regions)
        : device_platform(systemc_setup(cfg), regions), port("host"),
          intx_latency(sc_time(cfg.cpu.intx_latency_ns, SC_NS))
    {
        connect_host(port.mmio, port.msi_in);
        // Legacy INTx: the pin's changes reach the interrupt controller host.intx_latency_ns
        // after the device made them, in order.
        dev.on_intx = [this](bool level, const sc_time &at) {
            sc_time arrival = at + intx_latency;
            if (!port.irqs.empty() && port.irqs.back().at > arrival)
                arrival = port.irqs.back().at;
            port.arrive({arrival, false, 0, level ? 1u : 0u, at, port.in_read});
        };
    }
};

std::unique_ptr<external_host> external_host::create(const vs_config &cfg,
                                                     const std::vector<memory_region> &guest_memory,
                                                     std::string &why)
{
    if (g_built) {
        why = "external_host: one platform per process (SystemC elaborates once)";
        return nullptr;
    }
    g_built = true;
    return std::unique_ptr<external_host>(new external_host(cfg, guest_memory));
}

external_host::external_host(const vs_config &cfg, const std::vector<memory_region> &guest_memory)
    : p_(new parts(cfg, guest_memory))
{
    p_->port.on_msi = &on_msi;
    p_->port.on_intx = &on_intx;
    // Elaboration ends and every process starts (the port's thread then waits for the
    // first access), at time zero.
    sc_core::sc_start(SC_ZERO_TIME);
}

external_host::~external_host() = default;

void external_host::set_guest_memory(const std::vector<memory_region> &guest_memory)
{
    p_->mem.set_regions(guest_memory);
}

void external_host::in_port()
{
    external_host_port::request &r = p_->port.req;
    r.done = false;
    p_->port.start.notify(SC_ZERO_TIME);
    // The port's thread issues it at the current time and pauses the simulation once
    // done (an access: its completion is back); whatever the device does meanwhile runs too.
    while (!r.done) {
        sc_core::sc_start(sc_core::sc_max_time() - sc_core::sc_time_stamp(),
                          sc_core::SC_EXIT_ON_STARVATION);
        if (!r.done && !sc_core::sc_pending_activity())
            throw std::logic_error("external_host: the access never completed");
    }
}

namespace {
// Guest memory reached outside simulated time, for a front end's operations.
enum vs_dma_status untimed_read(void *ctx, uint64_t addr, void *dst, uint32_t len, enum vs_dma_kind)
{
    return static_cast<host_memory *>(ctx)->access_untimed(true, addr, dst, len) ? VS_DMA_OK
                                                                                 : VS_DMA_OUT_OF_RANGE;
}
enum vs_dma_status untimed_write(void *ctx, uint64_t addr, const void *src, uint32_t len,
                                 enum vs_dma_kind)
{
    return static_cast<host_memory *>(ctx)->access_untimed(false, addr, const_cast<void *>(src), len)
               ? VS_DMA_OK
               : VS_DMA_OUT_OF_RANGE;
}
} // namespace

void external_host::front_end(const std::function<void(vdev &, const vs_guest_ops &)> &op)
{
    const vs_guest_ops ops = {untimed_read, untimed_write, &p_->mem};
    p_->port.op = [&] { p_->dev.front_end([&](vdev &d) { op(d, ops); }); };
    in_port();
}

void external_host::kick(uint16_t q)
{
    p_->port.op = [this, q] { p_->dev.front_end_kick(q); };
    in_port();
}

external_access external_host::access(bool read, uint64_t addr, unsigned size, uint64_t &value)
{
    external_host_port::request &r = p_->port.req;
    r.cmd = read ? tlm::TLM_READ_COMMAND : tlm::TLM_WRITE_COMMAND;
    r.addr = addr;
    r.size = size;
    std::memset(r.data, 0, sizeof r.data);
    std::memcpy(r.data, &value, size);
    in_port();
    value = 0;
    std::memcpy(&value, r.data, size);
    if (r.status == tlm::TLM_OK_RESPONSE)
        return external_access::ok;
    if (read)
        value = size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
    return external_access::unclaimed;
}

external_access external_host::cfg_read(uint32_t offset, unsigned size, uint32_t &value)
{
    uint64_t v = 0;
    external_access a = external_access::refused;
    if ((size == 1 || size == 2 || size == 4) && amap::in(offset, size, 0, amap::ecam_size))
        a = access(true, amap::ecam_base + offset, size, v);
    value = a == external_access::refused ? uint32_t((1ull << (8 * size)) - 1) : uint32_t(v);
    return a;
}

external_access external_host::cfg_write(uint32_t offset, unsigned size, uint32_t value)
{
    uint64_t v = value;
    if ((size == 1 || size == 2 || size == 4) && amap::in(offset, size, 0, amap::ecam_size))
        return access(false, amap::ecam_base + offset, size, v);
    return external_access::refused;
}

namespace {
// A BAR access the function could claim: 1, 2, 4 or 8 bytes, outside configuration space
// and the MSI window.
bool bar_access(uint64_t addr, unsigned size)
{
    return (size == 1 || size == 2 || size == 4 || size == 8) &&
           !amap::in(addr, size, amap::ecam_base, amap::ecam_size) && addr + size > addr;
}
} // namespace

external_access external_host::mmio_read(uint64_t addr, unsigned size, uint64_t &value)
{
    if (!bar_access(addr, size)) {
        value = size >= 8 ? ~0ull : (1ull << (8 * (size & 7))) - 1;
        return external_access::refused;
    }
    return access(true, addr, size, value);
}

external_access external_host::mmio_write(uint64_t addr, unsigned size, uint64_t value)
{
    if (!bar_access(addr, size))
        return external_access::refused;
    return access(false, addr, size, value);
}

void external_host::reset_function() { p_->dev.function_reset(); }

void external_host::run(const sc_time &bound, bool to_time)
{
    if (bound > SC_ZERO_TIME)
        sc_core::sc_start(bound, to_time ? sc_core::SC_RUN_TO_TIME : sc_core::SC_EXIT_ON_STARVATION);
}

void external_host::run_for(const sc_time &d)
{
    const sc_time end = now() + d;
    // An interrupt pauses nothing here; sc_pause from elsewhere would end a slice early.
    while (now() < end)
        run(end - now(), true);
}

bool external_host::run_until_idle(const sc_time &bound)
{
    if (!sc_core::sc_pending_activity())
        return true;
    const sc_time end = now() + bound;
    if (sc_core::sc_time_to_pending_activity() <= bound)
        run(bound, false);
    // SC_EXIT_ON_STARVATION stops, time unchanged, when what is left lies past the bound
    // (a frame still in a slow device, a coalescing timer): time moves to the bound
    // instead, so that the next call goes on from there rather than standing still.
    if (sc_core::sc_pending_activity() && now() < end)
        run(end - now(), true);
    return !sc_core::sc_pending_activity();
}

bool external_host::run_until_interrupt(const sc_time &bound)
{
    external_host_port &port = p_->port;
    port.delivered = false;
    port.pause_on_interrupt = true;
    const sc_time end = now() + bound;
    while (!port.delivered && now() < end)
        run(end - now(), true);
    port.pause_on_interrupt = false;
    return port.delivered;
}

sc_time external_host::now() const { return sc_core::sc_time_stamp(); }

bool external_host::iommu_set_root(uint32_t pasid, uint64_t root)
{
    return p_->iommu_set_root(pasid, root);
}

const device_platform &external_host::platform() const { return *p_; }

run_result external_host::collect() const
{
    run_result r;
    const vdev &d = p_->dev.kernel();
    collect_violations(r, d.tp.vpci.conf);
    r.completed = true;
    r.device_error = d.tp.error != VS_REASON_NONE ? vs_reason_name(d.tp.error) : "";
    r.negotiated_features = p_->dev.negotiated_features;
    const double sim_ns = now().to_seconds() * 1e9;
    r.stats.add_f64("sim.time_ns", "ns", stat_better::lower,
                    "simulated time until the statistics were collected", sim_ns);
    stats_add_device_platform(r.stats, *p_, sim_ns, r.violations_total);
    return r;
}

} // namespace viosim
