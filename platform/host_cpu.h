// host_cpu.h -- the host CPU and its interrupt controller, running the reference
// driver with a cost model.
//
// The driver (workloads/refdrv) is plain C; this module gives it its host ops:
// configuration and MMIO accesses become TLM transactions towards the link (an MMIO
// read stalls the CPU for the round trip; a posted write costs host.mmio_write_ns),
// CPU work is charged in cycles at the CPU clock, and MSI-X messages written to the
// interrupt controller wake the driver after the interrupt-entry cost.
#ifndef VIOSIM_HOST_CPU_H
#define VIOSIM_HOST_CPU_H

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <tlm_utils/tlm_quantumkeeper.h>

extern "C" {
#include "refdrv.h"
}
#include "stats.h"

#include "host_memory.h"
#include "module_params.h"
#include "reused_payload.h"
#include "run_ahead.h"

namespace viosim {

struct cpu_costs {
    sc_core::sc_time cycle;
    uint64_t work_cycles[VS_HOST_WORK_COUNT];
    uint64_t irq_entry_cycles;
    sc_core::sc_time mmio_write;
    sc_core::sc_time intx_latency; // host.intx_latency_ns
    bool poll_sleep = false; // sleep through empty polls (sim.poll_sleep)
    run_ahead timing;        // sim.timing: when the CPU synchronises
    unsigned cpus = 1;       // host.cpus_count: CPUs the driver's queue pairs run on
};

// The cost model from the host.* group (and sim.poll_sleep), derived once.
cpu_costs cpu_costs_of(const host_cpu_params &p, const sim_params &sim);

// The reference driver's statistics (driver.*), registered from its tables: the frames
// it moved, and the work it did (notifications, interrupts, polls, control commands,
// MMIO and configuration accesses, event suppression).
void stats_add_driver_frames(stats_table &s, const refdrv_stats &d);
void stats_add_driver_work(stats_table &s, const refdrv_stats &d);

class host_cpu : public sc_core::sc_module, private host_memory::write_watcher {
public:
    tlm_utils::simple_initiator_socket<host_cpu> mmio;   // towards the link
    tlm_utils::simple_target_socket<host_cpu> msi_in;    // interrupt controller

    SC_HAS_PROCESS(host_cpu);
    // run_driver false: the CPU stays idle (the DMA benchmark needs no driver).
    host_cpu(sc_core::sc_module_name name, const cpu_costs &c, const refdrv_params &p,
             uint8_t *mem, uint64_t mem_base, uint64_t mem_size, bool run_driver = true);

    // Guest memory's target, watched while the driver sleeps through empty polls (set by
    // the top level; without it every poll is charged on its own).
    host_memory *memory = nullptr;
    // How host software programs the platform IOMMU (set by the top level).
    std::function<bool(uint32_t pasid, uint64_t root)> iommu_set_root;

    // Legacy INTx: the device's INTA# pin went to `level` at `at` (the device's
    // on_intx). The interrupt controller sees it host.intx_latency_ns later.
    void intx_changed(bool level, const sc_core::sc_time &at);

    // Results, valid once done() is true.
    bool done() const { return done_; }
    enum refdrv_result result = REFDRV_OK;
    refdrv_stats stats = {};
    hist_ptr latency = hist_make(); // the driver's TX-post to RX-reap latencies, ps
    // Set to end the run early (viosim run --strict): the CPU stops the simulation at its
    // next access or charge, where its thread holds nothing but the driver's own frames.
    bool stop_requested = false;
    void request_stop(); // sets stop_requested, and ends a sleep through empty polls
    // The driver's working state, owned here: a run stopped while the driver's thread
    // waits (time limit, --strict) never returns to free it. calloc'd: zero pages the
    // driver never touches are never written.
    struct free_deleter {
        void operator()(void *p) const { std::free(p); }
    };
    std::unique_ptr<void, free_deleter> driver_state_;
    sc_core::sc_time finish_time;
    sc_core::sc_time busy;                // CPU time charged (work, MMIO, interrupts)
    uint64_t interrupts = 0, msi_bad = 0;
    uint64_t intx_taken = 0; // interrupts taken on the asserted INTx line (part of interrupts)
    uint64_t work_count[VS_HOST_WORK_COUNT] = {};

private:
    void run();
    void b_msi(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
    uint64_t access(tlm::tlm_command cmd, uint64_t addr, unsigned size, uint64_t value);
    reused_payload access_payload_; // each register access's (reused_payload.h)
    void spend(const sc_core::sc_time &t);
    void stop_if_requested();
    sc_core::sc_event never_; // notified by nobody: where a stopped driver thread rests
    // Sleeping through empty polls (op_poll_idle): since when, one poll's time, and the
    // wake-up at the poll that comes next after a device write or a stop request.
    bool polling_ = false, poll_woken_ = false;
    sc_core::sc_time poll_from_, poll_;
    sc_core::sc_event poll_wake_;
    void device_wrote() override;
    void wake_at_next_poll();

    static uint32_t op_cfg_read(void *ctx, uint32_t off, unsigned size);
    static void op_cfg_write(void *ctx, uint32_t off, unsigned size, uint32_t value);
    static uint64_t op_mmio_read(void *ctx, uint64_t addr, unsigned size);
    static void op_mmio_write(void *ctx, uint64_t addr, unsigned size, uint64_t value);
    static int op_wait_interrupt(void *ctx, uint64_t timeout_ns);
    static void op_cpu_work(void *ctx, enum vs_host_work kind, uint64_t count);
    static uint64_t op_now_ps(void *ctx);
    static uint64_t op_poll_idle(void *ctx, uint64_t until_ps);
    static int op_iommu_set_root(void *ctx, uint32_t pasid, uint64_t root_pa);
    static void op_cpu_for_pair(void *ctx, int32_t pair);

    // host.cpus_count > 1, a pass over several pairs' rings (op_cpu_for_pair): each CPU's
    // own time in the pass (absolute), the CPU working now, and whether a pass is open.
    // Within a pass the CPU does not synchronise (sim.timing), so the times stay ahead of
    // the kernel's; the join moves the CPU to the latest of them and synchronises.
    std::vector<sc_core::sc_time> cpu_at_;
    unsigned cpu_now_ = 0;
    bool in_pass_ = false;
    sc_core::sc_time abs_now() const { return sc_core::sc_time_stamp() + qk_.get_local_time(); }
    void join_pass();
    void sync_unless_in_pass();

    cpu_costs c_;
    refdrv_params p_;
    vs_host_ops ops_;
    tlm_utils::tlm_quantumkeeper qk_;
    int ps_resolution_ = -1; // is SystemC's time resolution 1 ps? (-1: not yet asked)
    struct pending_irq {
        sc_core::sc_time at;
        uint32_t vector;
    };
    std::deque<pending_irq> irqs_;
    // INTx: pin changes on their way to the interrupt controller, in the order the
    // device made them (posted messages on one path arrive in order), and the level it
    // sees. in_read_: a read of this CPU is at the device; changes reported meanwhile
    // (its ISR read's deassert) cannot arrive after its completion.
    struct intx_change {
        sc_core::sc_time sent, at; // when the device changed the pin, when it is seen
        bool level;
        bool before_completion;
    };
    std::deque<intx_change> intx_changes_;
    bool intx_line_ = false;
    bool in_read_ = false;
    bool intx_asserted_now();
    sc_core::sc_event irq_event_;
    // op_wait_interrupt's timeout. One event kept across calls instead of a wait with a
    // timeout each: SystemC leaves a timeout that an interrupt beat in its timed-event
    // queue until its time, and the driver's idle timeouts (about 0.5 ms) left about 300
    // there, which every later timed event paid for in the queue's depth.
    sc_core::sc_event wait_deadline_;
    bool done_ = false;
};

} // namespace viosim

#endif
