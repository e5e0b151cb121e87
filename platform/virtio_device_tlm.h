// virtio_device_tlm.h -- the virtio-net PCI function as a SystemC module.
//
// Wraps the untimed kernel (model/vdev: the PCI transport with the virtio-net
// personality): a target socket for configuration and BAR accesses, an initiator socket
// for DMA and MSI-X messages, and processing engines (threads): device.queue_engines
// per queue, one for a queue whose role is single_engine (control); how each waits
// comes from its queue's role (struct pt_role). Engines charge device clock cycles per
// descriptor and per frame; DMA time comes from the link and memory behind the
// initiator socket.
//
// The function has as many queues as its personality says (virtio-net: 2N+1 for
// device.queue_pairs_count = N). Per-queue state is allocated for that count; all
// queues share the one DMA engine (its read tags), the channel arbiter, the link and
// the IOTLB, so contention between queues emerges. Queues of pair 1 and the control
// queue start their processes at elaboration; the queues of pairs 2..N when the driver
// first puts them in service (enabled, DRIVER_OK, within the pairs the driver asked
// for), so queues a driver never uses cost no process, and a queue out of service
// sleeps until a register write or a VQ_PAIRS_SET brings it back.
#ifndef VIOSIM_VIRTIO_DEVICE_TLM_H
#define VIOSIM_VIRTIO_DEVICE_TLM_H

#include <cstdint>
#include <functional>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>
#include <tlm_utils/tlm_quantumkeeper.h>

#include "address_map.h"
#include "dma_arbiter.h"
#include "dma_engine.h"
#include "pcie_tlp.h"
#include "run_ahead.h"
#include "trace.h"

extern "C" {
#include "vdev.h"
}

namespace viosim {

// Build it with device_timing_of(cfg): every value from the configuration, whose defaults
// are `viosim params`'. Every field has an initializer, so one left out is zero (or its
// type's default), never indeterminate.
struct device_timing {
    sc_core::sc_time cycle;      // one device clock
    uint64_t desc_cycles = 0;    // per descriptor fetched
    uint64_t packet_cycles = 0;  // per frame or control command handled
    pcie_cfg link;               // how the DMA engine splits requests
    unsigned read_tags = 0;
    bool completions_in_order = false;
    unsigned queue_engines = 1;  // engines (buffers in flight) per RX and TX queue
    // sim.engine_wakeup = next: a finished buffer wakes only the engines that can go on
    // (the next in take order, and any whose buffer went stale), not every waiting one;
    // a step that gives another queue work wakes that queue only (pt_wake marks), not
    // every queue waiting on the same signal.
    bool engine_wakeup_next = false;
    run_ahead timing;            // sim.timing: when the engines synchronise
    // Address space each class of queue's DMA is tagged with: every receive queue,
    // every transmit queue, the control queue (indexed as VNET_QUEUE_RX/TX/CTRL).
    uint32_t queue_pasid[VNET_QUEUES] = {};
    // Software-device profile: the store barrier a CPU needs before publishing used
    // descriptors (hardware orders its posted writes for free).
    sc_core::sc_time used_write_barrier = sc_core::SC_ZERO_TIME;
    // DMA channels shared by the queue engines (0: one per engine) and their arbitration.
    unsigned dma_channels = 0;
    dma_arbiter::policy arbitration = dma_arbiter::policy::round_robin;
    // ATS: a translation cache in the device (iommu.ats).
    bool ats = false;
    iotlb_config atc = {};
    // The IOMMU in the device instead of the root complex (iommu.walk_location).
    bool device_iommu = false;
    iommu_config mmu = {};
    sc_core::sc_time mmu_hit = sc_core::SC_ZERO_TIME;
    unsigned mmu_walkers = 1; // page walks in flight at most (iommu.walkers_count)
};

// The DMA microbenchmark (sim.workload = dma_bench): the DMA engine streams transfers
// to host memory back to back, as pcie-bench's firmware does; no driver, no virtio.
struct dma_bench_setup {
    bool enabled = false;
    unsigned op = 0;              // 0 read, 1 write, 2 read + write per transfer
    unsigned transfer_bytes = 64;
    uint64_t transfers = 0;
    uint64_t window_bytes = 0;
    uint64_t base = 0;            // bus address (IOVA when translated) of the window
    bool translate = false;       // requests go through the IOMMU (PASID 0)
    bool random = false;          // uniformly random slots instead of sequential
    uint64_t seed = 1;
};

struct vs_config;
// The device's timing and the benchmark's setup, derived once from the configuration's
// groups (device.*, dma.*, iommu.*, pcie.*, sim.*, software.*, bench.*).
device_timing device_timing_of(const vs_config &cfg);
dma_bench_setup dma_bench_setup_of(const vs_config &cfg);

class virtio_device_tlm : public sc_core::sc_module {
public:
    tlm_utils::simple_target_socket<virtio_device_tlm> target;
    tlm_utils::simple_initiator_socket<virtio_device_tlm> dma;

    SC_HAS_PROCESS(virtio_device_tlm);
    virtio_device_tlm(sc_core::sc_module_name name, const vdev_params &p, const device_timing &t,
                      const dma_bench_setup &bench = dma_bench_setup());
    ~virtio_device_tlm() override;

    const vdev &kernel() const { return dev_; }
    // Configuration space is decoded on `target` in [base, base + amap::ecam_size), at
    // ECAM offsets (the register's offset from base); amap::ecam_base unless set (before
    // the first access). BARs decode wherever the host's enumeration placed them
    // (pci_cfg_decode): the module holds no other address.
    void set_config_window(uint64_t base) { config_base_ = base; }
    uint64_t config_base() const { return config_base_; }
    const dma_engine &dma_stats() const { return *dma_engine_; }
    const dma_arbiter &arbiter() const { return arbiter_; }
    trace_recorder *trace = nullptr; // optional timeline (set with set_trace)
    // Timeline and counters (either may be null): names the queue engines' tracks (one
    // per engine when device.queue_engines > 1), and declares the counters of buffers in
    // flight and ring occupancy per queue and of read tags in flight. counter_prefix goes
    // before the counters' names ("" in a run; a platform with several devices gives
    // each its own, and each a trace_recorder::instance view for its tracks).
    void set_trace(trace_recorder *t, trace_counters *c, const std::string &counter_prefix = "");
    // viosim run --strict: called once at the first violation (the host stops the run at
    // its next safe point, so no thread is abandoned in the middle of an access).
    std::function<void()> on_violation;
    // A function-level reset (pt_function_reset: configuration space and MSI-X as at
    // power-on, then a device reset) at the current simulated time; called between two
    // slices of simulation (external_host::reset_function). Engines in the middle of a
    // buffer see their queue reset, as after the driver's; posted writes to the
    // device-memory suppression window still on their way are dropped.
    void function_reset();
    // Host software changed address space `pasid` (ATS Invalidate Request).
    void ats_invalidate(uint32_t pasid) { dma_engine_->ats_invalidate(pasid); }
    // Host software programs the device's own IOMMU (iommu.walk_location = device).
    bool iommu_set_root(uint32_t pasid, uint64_t root)
    {
        return dma_engine_->device_iommu_set_root(pasid, root);
    }
    // A front end without registers (vhost-user; external_host::front_end and kick),
    // called from a process at the current simulated time. front_end: op changes the
    // kernel through its pt_fe_* / vnet_fe_* calls, then the engines wake as after a
    // register write arriving now (queues come into service, the outbox is sent).
    // front_end_kick: an available buffer notification for queue q arriving now.
    void front_end(const std::function<void(vdev &)> &op);
    void front_end_kick(uint16_t q);
    // DMA benchmark results.
    bool bench_done = false;
    sc_core::sc_time bench_start, bench_end;
    sc_core::sc_time bench_first_done;  // when the first transfer had completed
    uint64_t bench_bytes = 0;
    uint64_t msi_sent = 0;
    // Legacy INTx (device.msix = off, or MSI-X disabled): called whenever the function's
    // INTA# pin (pt_intx_asserted) changes, with the new level and the simulated time the
    // device changed it; the interrupt controller adds the message's flight
    // (host.intx_latency_ns, docs/timing.md). A change a register access caused (an ISR
    // read, a Command or MSI-X Control write, a reset) is reported from within that
    // access's b_transport, before it returns.
    std::function<void(bool level, const sc_core::sc_time &at)> on_intx;
    // The driver's features while FEATURES_OK was set, kept past its final reset
    // (stats.json result.negotiated_features).
    vs_features negotiated_features{};
    uint64_t msi_per_vector[MSIX_VECTORS_MAX] = {};
    // Per queue (num_queues() of each):
    std::vector<uint64_t> engine_wakeups;
    std::vector<sc_core::sc_time> engine_busy;  // summed over the queue's engines
    // Buffers of a queue between take and finish: time integral (buffer-ps), largest.
    std::vector<double> in_flight_area_ps;
    std::vector<unsigned> in_flight_max;
    // Notification coalescing timers ("Notifications Coalescing"), per queue: counting
    // windows a max_usecs timer was started for, and timers that ended with the window
    // still open (each then takes the notification decision).
    std::vector<uint64_t> coal_timer_arms;
    std::vector<uint64_t> coal_timer_expiries;
    uint16_t num_queues() const { return dev_.tp.num_queues; }
    unsigned engines(uint16_t q) const { return role(q).single_engine ? 1u : t_.queue_engines; }
    const pt_role &role(uint16_t q) const { return *dev_.tp.role[q]; }
    // The queue's name as the spec gives it (receiveqK, transmitqK, controlq).
    std::string queue_name(uint16_t q) const;
    // Whether queue q's processes were started (pair 1 and the control queue always;
    // another pair's once the driver first put its queues in service).
    bool queue_started(uint16_t q) const { return q_[q].started; }
    // SystemC processes this device started: one per engine, per coalescing timer, the
    // MSI-X sender.
    unsigned processes() const { return processes_; }
    // Per used buffer notification: from the moment the write publishing the used
    // buffers left the device to the moment its MSI-X message was issued, ps.
    hist_ptr time_to_interrupt = hist_make(); // picoseconds

private:
    // Per-engine context for the guest-memory ops.
    struct engine {
        virtio_device_tlm *dev;
        uint16_t queue;
        unsigned slot = 0;  // the kernel slot (vdev_slot) this engine's buffer uses
        bool holds_take = false; // this engine is the queue's one taking from the ring
        bool no_wait = false;    // DMA returns at once, the time left in qk (coal timer)
        int track = 0;           // its timeline track
        tlm_utils::tlm_quantumkeeper qk;
        vs_guest_ops ops;
        // When the engine's last used-ring write left (the publication an MSI-X
        // message it sends next is for); time_to_interrupt.
        sc_core::sc_time published_at;
        bool published = false;
        // Waiting for its buffer's turn to finish, woken by `turn` (sim.engine_wakeup =
        // next, which also wakes a waiting take through it; with all, by the queue's
        // finished_ and take_done_, and `turn` is not made).
        bool awaits_turn = false;
        std::unique_ptr<sc_core::sc_event> turn;
    };
    // viosim extension (VIOSIM_NET_F_DEVMEM_EVENT): the driver's posted MMIO writes
    // to the device-memory suppression window take effect when they arrive, not when
    // the CPU issues them.
    struct devmem_write {
        sc_core::sc_time at;
        uint64_t addr;
        unsigned len;
        uint64_t value;
    };
    void apply_devmem_writes(bool all);
    void devmem_arrivals();

    void b_transport(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
    // Conformance: stamp what the kernel records with simulated time, and stop the run
    // at the first violation when asked to.
    void conformance_now(const sc_core::sc_time &at);
    void conformance_check();
    void queue_engine(uint16_t q, unsigned k, sc_core::sc_time start);
    sc_core::sc_event &more_work(uint16_t q);
    void run_engine(engine &e, sc_core::sc_event &more_work);
    enum pt_step engine_step(engine &e, pt_work &w);
    void wait_in_flight(engine &e);
    void wake_finishers(const engine &e);
    void take_lock(engine &e);
    void take_unlock(engine &e);
    void in_flight_add(const engine &e, int delta);
    void sample_ring(uint16_t q);
    void charge(engine &e, const pt_work &w);
    void coal_follow(uint16_t q, const sc_core::sc_time &now);
    void coal_arm(engine &e);
    void coal_timer_thread(uint16_t q);
    void coal_send_msis(engine &c);
    void used_enter(uint16_t q);
    void used_leave(engine &e);
    void engine_wait(engine &e, const sc_core::sc_event &a, const sc_core::sc_event &b);
    void signal(unsigned sig, const engine &e);
    void send_msis(engine &e);
    void intx_follow(const sc_core::sc_time &at);
    void msi_sender();
    void bench_thread();
    static enum vs_dma_status dma_read(void *ctx, uint64_t addr, void *dst, uint32_t len,
                                       enum vs_dma_kind kind);
    static enum vs_dma_status dma_write(void *ctx, uint64_t addr, const void *src, uint32_t len,
                                        enum vs_dma_kind kind);
    enum vs_dma_status do_dma(engine &e, tlm::tlm_command cmd, uint64_t addr, void *buf,
                              uint32_t len, dma_request_attr a, const char *what);
    dma_request_attr queue_attr(const engine &e) const;

    // A queue's runtime state (one per queue of the function, q_).
    struct queue_rt {
        bool started = false;   // its processes exist (start_queue)
        std::unique_ptr<engine[]> engines; // n_engines of them, once started
        unsigned n_engines = 0; // engines(q) when it started: its role then (the
                                // features negotiated fix the roles before any queue
                                // is in service)
        sc_core::sc_event kick;
        bool kicked = false;    // a kick arrived since the engine last looked
        unsigned dormant = 0;   // engines asleep because the queue is out of service
        // Coalescing: the kernel counts buffers and keeps the queue's max_usecs timer
        // (model/coalesce.h); a process per data queue (coal_timer_thread) with its own
        // DMA context (coal_ctx) serves it. coal_due fires at a timer's end or when new
        // parameters need a re-check.
        coal_timer coal = {};
        sc_core::sc_event coal_due;
        engine coal_ctx;
        bool coal_track_named = false;
        // The used side (used_enter): engines inside a used-side call, whether the timer
        // waits for them to leave, and its wake-up.
        unsigned used_busy = 0;
        bool timer_waits = false;
        sc_core::sc_event used_free;
        // A timer decision's MSI-X message waits for its event-suppression read until then.
        sc_core::sc_time msi_held_until;
        // The engines: one takes buffers from the ring at a time (taking), buffers finish
        // in take order (finished wakes the next, or wake_finishers), in_flight counts
        // taken buffers. sim.engine_wakeup = next: the engines waiting to take, and those
        // with a buffer in flight, each in the order they came.
        bool taking = false;
        sc_core::sc_event take_done;
        std::deque<engine *> take_queue;
        std::deque<engine *> in_take_order;
        sc_core::sc_event finished;
        unsigned in_flight = 0;
        sc_core::sc_time in_flight_since;
        int in_flight_counter = 0;
        int ring_counter = 0;
        // sim.engine_wakeup = next, a role woken by marks (pt_role.woken_by_mark): its
        // blocked engine waits on `signalled`, notified when a step that signals its
        // waits_on gave it work (marked: taken from the kernel's marks, not yet woken).
        sc_core::sc_event signalled;
        bool marked = false;
    };
    bool in_service(uint16_t q) const;
    void start_queue(uint16_t q, bool spawn_engines, const sc_core::sc_time &start);
    void queues_changed(const sc_core::sc_time &delay);
    int queue_track(uint16_t q) const;
    void name_tracks(uint16_t q);
    int engine_track(uint16_t q, unsigned k) const;

    vdev dev_;
    device_timing t_;
    dma_bench_setup bench_;
    std::unique_ptr<dma_engine> dma_engine_;
    dma_arbiter arbiter_;
    std::unique_ptr<queue_rt[]> q_;   // num_queues() of them
    engine msi_engine_;
    unsigned processes_ = 0;
    unsigned msi_holds_ = 0;          // queues whose msi_held_until is set
    uint16_t pairs_seen_ = 1;         // the personality's pairs in use when last looked
    sc_core::sc_event revive_;        // a queue an engine sleeps on came into service
    // Cross-queue wake-ups, by the roles' signal number (pt_role.signals / waits_on;
    // virtio-net: TX put frames in a pair's FIFO, RX took frames out of it). With
    // sim.engine_wakeup = next a queue whose role is woken_by_mark has its own event
    // (queue_rt::signalled) instead; signal_[s] wakes the engines of the other roles
    // waiting on s (signal_waiters_[s] of them started), and the queues marked but not
    // yet woken wait in marked_.
    sc_core::sc_event signal_[4];
    unsigned signal_waiters_[4] = {};
    std::vector<uint16_t> marked_;
    sc_core::sc_event state_change_;  // a register write may have enabled or reset queues
    sc_core::sc_event msi_pending_;   // a register access left MSI-X messages to send
    std::deque<devmem_write> devmem_writes_; // in arrival order (one CPU, posted, in order)
    sc_core::sc_event devmem_arrival_;       // the first of devmem_writes_ arrives
    trace_counters *counters_ = nullptr;
    uint64_t config_base_ = amap::ecam_base;
    bool intx_level_ = false;         // the INTA# level last reported (on_intx)
};

} // namespace viosim

#endif
