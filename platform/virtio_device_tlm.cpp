// Engines beyond the first of a queue are spawned processes.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "virtio_device_tlm.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "address_map.h"
#include "config.h"
#include "root_complex.h"

namespace viosim {

device_timing device_timing_of(const vs_config &cfg)
{
    device_timing dt;
    dt.cycle = sc_core::sc_time(1000.0 / cfg.device_tlm.clock_mhz, sc_core::SC_NS);
    dt.desc_cycles = cfg.device_tlm.desc_cycles;
    dt.packet_cycles = cfg.device_tlm.packet_cycles;
    dt.link = pcie_link_timing_of(cfg.pcie, cfg.memory).link;
    dt.read_tags = cfg.dma.read_tags_count;
    dt.completions_in_order = cfg.dma.completions_in_order;
    dt.queue_engines = cfg.dev.queue_engines;
    dt.engine_wakeup_next = cfg.sim.engine_wakeup_next;
    dt.timing = run_ahead_of(cfg.sim);
    for (unsigned q = 0; q < VNET_QUEUES; q++)
        dt.queue_pasid[q] = cfg.device_tlm.queue_pasid[q];
    if (cfg.software.enabled)
        dt.used_write_barrier = sc_core::sc_time(cfg.software.barrier_ns, sc_core::SC_NS);
    dt.dma_channels = cfg.dma.channels_count;
    dt.arbitration = cfg.dma.fixed_priority ? dma_arbiter::policy::fixed_priority
                                            : dma_arbiter::policy::round_robin;
    dt.ats = cfg.iommu.ats;
    dt.device_iommu = cfg.iommu.in_device;
    dt.mmu = iommu_config_of(cfg.iommu, cfg.seed);
    const iommu_timing it = iommu_timing_of(cfg.iommu);
    dt.mmu_hit = it.iotlb_hit;
    dt.mmu_walkers = it.walkers;
    dt.atc.entries = cfg.iommu.atc_entries;
    dt.atc.ways = cfg.iommu.atc_ways;
    dt.atc.policy = IOTLB_LRU;
    return dt;
}

dma_bench_setup dma_bench_setup_of(const vs_config &cfg)
{
    dma_bench_setup b;
    b.enabled = cfg.bench.enabled;
    b.op = cfg.bench.op;
    b.transfer_bytes = cfg.bench.transfer_bytes;
    b.transfers = cfg.bench.transfers_count;
    b.window_bytes = cfg.bench.window_bytes;
    b.translate = cfg.bench.iommu;
    b.random = cfg.bench.random;
    b.seed = cfg.seed;
    // The window at the driver's IOVA offset when translated (map_bench_window).
    b.base = amap::memory_base + (b.translate ? cfg.drv.iova_offset : 0);
    return b;
}

using sc_core::sc_time;
using sc_core::SC_ZERO_TIME;

virtio_device_tlm::virtio_device_tlm(sc_core::sc_module_name name, const vdev_params &p,
                                     const device_timing &t, const dma_bench_setup &bench)
    : sc_module(name), target("target"), dma("dma"), t_(t), bench_(bench),
      dma_engine_(new dma_engine(dma, t.link, t.read_tags, t.completions_in_order)),
      arbiter_("arbiter", t.dma_channels, vnet_queues(p.queue_pairs ? p.queue_pairs : 1), t.arbitration)
{
    if (!vdev_init(&dev_, &p))
        throw std::bad_alloc();
    const uint16_t nq = num_queues();
    q_.reset(new queue_rt[nq]);
    engine_wakeups.assign(nq, 0);
    engine_busy.assign(nq, SC_ZERO_TIME);
    in_flight_area_ps.assign(nq, 0.0);
    in_flight_max.assign(nq, 0);
    coal_timer_arms.assign(nq, 0);
    coal_timer_expiries.assign(nq, 0);
    if (t.ats)
        dma_engine_->enable_ats(t.atc);
    if (t.device_iommu)
        dma_engine_->enable_device_iommu(t.mmu, t.mmu_hit, t.mmu_walkers);
    target.register_b_transport(this, &virtio_device_tlm::b_transport);
    if (t_.queue_engines == 0)
        t_.queue_engines = 1;
    if (t_.queue_engines > VDEV_ENGINES_MAX || t_.queue_engines > dev_.tp.engines)
        throw std::invalid_argument("device.queue_engines exceeds the kernel's slots");
    for (uint16_t q = 0; q < nq; q++)
        if (role(q).signals >= sizeof signal_ / sizeof signal_[0] ||
            role(q).waits_on >= sizeof signal_ / sizeof signal_[0])
            throw std::invalid_argument("a queue role names a signal the platform does not have");
    msi_engine_.dev = this;
    msi_engine_.queue = PT_NO_QUEUE;
    msi_engine_.ops = {dma_read, dma_write, &msi_engine_};
    // Pair 1 and the control queue, in the order the one-pair platform always started
    // their processes (coalescing timers; each queue's first engine: transmit, receive,
    // control; the MSI-X sender; the other engines): SystemC runs processes made
    // runnable at the same time in creation order, and the exact results depend on it.
    // The other pairs' queues start when the driver first puts them in service.
    const uint16_t ctrl = vnet_ctrl_queue(&dev_.net);
    const uint16_t first[] = {uint16_t(VNET_QUEUE_RX), uint16_t(VNET_QUEUE_TX), ctrl};
    for (uint16_t q : first)
        start_queue(q, false, SC_ZERO_TIME);
    for (uint16_t q : {uint16_t(VNET_QUEUE_TX), uint16_t(VNET_QUEUE_RX), ctrl})
        sc_core::sc_spawn(sc_bind(&virtio_device_tlm::queue_engine, this, q, 0u, SC_ZERO_TIME));
    SC_THREAD(msi_sender);
    processes_++;
    SC_METHOD(devmem_arrivals);
    sensitive << devmem_arrival_;
    dont_initialize();
    for (uint16_t q : first)
        for (unsigned k = 1; k < q_[q].n_engines; k++)
            sc_core::sc_spawn(sc_bind(&virtio_device_tlm::queue_engine, this, q, k, SC_ZERO_TIME));
    if (bench_.enabled)
        SC_THREAD(bench_thread);
}

// Queue q's engines' contexts and its coalescing timer; with spawn_engines, its engines'
// processes too, starting after `start`.
void virtio_device_tlm::start_queue(uint16_t q, bool spawn_engines, const sc_time &start)
{
    queue_rt &qr = q_[q];
    qr.started = true;
    qr.n_engines = engines(q);
    qr.engines.reset(new engine[qr.n_engines]);
    for (unsigned k = 0; k < qr.n_engines; k++) {
        engine &e = qr.engines[k];
        e.dev = this;
        e.queue = q;
        e.slot = k;
        e.ops = {dma_read, dma_write, &e};
        e.track = qr.n_engines == 1 ? queue_track(q) : engine_track(q, k);
        if (t_.engine_wakeup_next)
            e.turn.reset(new sc_core::sc_event);
    }
    processes_ += qr.n_engines;
    if (role(q).coalesces) {
        engine &c = qr.coal_ctx;
        c.dev = this;
        c.queue = q;
        c.ops = {dma_read, dma_write, &c};
        c.track = engine_track(q, VDEV_ENGINES_MAX);
        c.no_wait = true;
        sc_core::sc_spawn(sc_bind(&virtio_device_tlm::coal_timer_thread, this, q));
        processes_++;
        if (spawn_engines && vnet_coal_recheck_needed(&dev_.net, q))
            qr.coal_due.notify(start); // parameters set before the queue was in service
    }
    if (spawn_engines)
        name_tracks(q);
    for (unsigned k = 0; spawn_engines && k < qr.n_engines; k++)
        sc_core::sc_spawn(sc_bind(&virtio_device_tlm::queue_engine, this, q, k, start));
}

// Is queue q in service: live (enabled, DRIVER_OK, no failure) and, for a data queue,
// of a pair the driver asked for ("Automatic receive steering in multiqueue mode": only
// receiveq1 and transmitq1 until VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET)?
bool virtio_device_tlm::in_service(uint16_t q) const
{
    return pt_queue_live(&dev_.tp, q) &&
           (q == vnet_ctrl_queue(&dev_.net) || q / 2u < dev_.net.pairs);
}

// After a register write that was not a notification (delay: when it arrives), or a
// control command that changed the pairs in use: start the queues that came into
// service for the first time, and wake the engines asleep on a queue that is back.
void virtio_device_tlm::queues_changed(const sc_time &delay)
{
    bool wake = false;
    for (uint16_t q = 0; q < num_queues(); q++) {
        if (!q_[q].started) {
            if (in_service(q))
                start_queue(q, true, delay);
        } else if (q_[q].dormant && in_service(q)) {
            wake = true;
        }
    }
    if (wake)
        revive_.notify(delay);
}

// Names and timeline tracks. Pair 1 and the control queue keep the tracks of the
// one-pair platform (TRACE_QUEUE_RX + 0, 1, 2; TRACE_QUEUE_ENGINE + q * 64 + k with q
// the one-pair index); the queues of pairs 2..N have tracks of their own ranges.
std::string virtio_device_tlm::queue_name(uint16_t q) const
{
    if (q == vnet_ctrl_queue(&dev_.net))
        return "controlq";
    return std::string(q % 2u ? "transmitq" : "receiveq") + std::to_string(q / 2u + 1u);
}

int virtio_device_tlm::queue_track(uint16_t q) const
{
    if (q == vnet_ctrl_queue(&dev_.net))
        return TRACE_QUEUE_CTRL;
    return q < VNET_QUEUE_CTRL ? TRACE_QUEUE_RX + q : TRACE_QUEUE_PAIRS + q;
}

int virtio_device_tlm::engine_track(uint16_t q, unsigned k) const
{
    if (q == vnet_ctrl_queue(&dev_.net))
        return TRACE_QUEUE_ENGINE + int(VNET_QUEUE_CTRL) * 64 + int(k);
    return q < VNET_QUEUE_CTRL ? TRACE_QUEUE_ENGINE + q * 64 + int(k)
                               : TRACE_QUEUE_PAIRS_ENGINE + q * 64 + int(k);
}

virtio_device_tlm::~virtio_device_tlm() { vdev_fini(&dev_); }

void virtio_device_tlm::set_trace(trace_recorder *t, trace_counters *c, const std::string &counter_prefix)
{
    trace = t;
    counters_ = c;
    dma_engine_->set_trace(t, c, counter_prefix);
    const std::string signal_prefix = trace_signal_name(counter_prefix);
    for (uint16_t q = 0; q < num_queues(); q++) {
        const std::string queue = queue_name(q);
        if (q_[q].started)
            name_tracks(q); // the others' when they start
        if (c) {
            q_[q].in_flight_counter = c->add(counter_prefix + queue + " buffers in flight",
                                             signal_prefix + queue + "_buffers_in_flight");
            q_[q].ring_counter = c->add(counter_prefix + queue + " ring occupancy",
                                        signal_prefix + queue + "_ring_occupancy");
        }
    }
}

// Queue q's timeline tracks: one for the queue, and one per engine when it has several.
void virtio_device_tlm::name_tracks(uint16_t q)
{
    if (!trace)
        return;
    const std::string queue = queue_name(q);
    if (q_[q].n_engines == 1) {
        trace->name_track(queue_track(q), "device: " + queue + " engine");
        return;
    }
    // The queue's own track keeps what the queue does as a whole (coalescing windows);
    // each engine's DMA goes on its own.
    trace->name_track(queue_track(q), "device: " + queue);
    for (unsigned k = 0; k < q_[q].n_engines; k++)
        trace->name_track(engine_track(q, k), "device: " + queue + " engine " + std::to_string(k + 1));
}

// Ring occupancy as the device knows it: buffers the driver made available (up to the
// available index the device last read) that the device has not yet published as used.
// Split rings only: a packed ring has no available index to read (the device sees one
// descriptor's flags at a time).
void virtio_device_tlm::sample_ring(uint16_t q)
{
    const pt_queue &vq = dev_.tp.q[q];
    if (!vq.enabled || !vq.ops || std::strcmp(vq.ops->name, "split") != 0)
        return;
    const svq &r = vq.ring.split;
    counters_->set(q_[q].ring_counter, sc_core::sc_time_stamp(),
                   uint16_t(r.shadow_avail_idx - r.published_used_idx));
}

// Configuration and BAR accesses from the host. Register accesses take no device
// time beyond what the link charges; their effects (kicks, resets, enables) wake the
// engines at the moment the access arrives.
void virtio_device_tlm::b_transport(tlm::tlm_generic_payload &tx, sc_time &delay)
{
    const uint64_t addr = tx.get_address();
    const unsigned len = tx.get_data_length();
    unsigned char *data = tx.get_data_ptr();
    if (len == 0 || len > 8 || tx.get_byte_enable_ptr()) {
        tx.set_response_status(tlm::TLM_BURST_ERROR_RESPONSE);
        return;
    }
    uint64_t value = 0;
    bool claimed = true;
    conformance_now(sc_core::sc_time_stamp() + delay);
    if (amap::in(addr, len, config_base_, amap::ecam_size)) {
        const uint32_t off = uint32_t(addr - config_base_);
        if (tx.is_read()) {
            value = pt_cfg_read(&dev_.tp, off, len);
            memcpy(data, &value, len);
        } else {
            memcpy(&value, data, len);
            pt_cfg_write(&dev_.tp, off, len, uint32_t(value));
            queues_changed(delay);
            state_change_.notify(delay);
        }
    } else if (pt_is_devmem_event_write(&dev_.tp, addr, len) && tx.is_write()) {
        // viosim extension: applied on arrival (devmem_arrivals).
        memcpy(&value, data, len);
        devmem_writes_.push_back({sc_core::sc_time_stamp() + delay, addr, len, value});
        if (devmem_writes_.size() == 1)
            devmem_arrival_.notify(delay);
    } else if (tx.is_read()) {
        // A read cannot pass the posted writes sent before it (PCIe ordering): writes
        // to the suppression window still on their way are applied first.
        apply_devmem_writes(true);
        // Unclaimed: all-ones, answered as an Unsupported Request (address error).
        claimed = pt_mmio_read(&dev_.tp, addr, len, &value);
        memcpy(data, &value, len);
    } else {
        memcpy(&value, data, len);
        uint16_t kicked = PT_NO_QUEUE;
        claimed = pt_mmio_write(&dev_.tp, addr, len, value, &kicked);
        if (kicked < num_queues()) {
            if (trace)
                trace->instant(TRACE_DOORBELLS, ("notify " + queue_name(kicked)).c_str(),
                               sc_core::sc_time_stamp() + delay);
            q_[kicked].kicked = true;
            q_[kicked].kick.notify(delay);
            // A parked queue never in service has no engines yet: start them, so that one
            // looks at the notification (pt_look_parked; TX_QUEUE_NOT_IN_USE) and sleeps.
            if (!q_[kicked].started && role(kicked).look_parked && pt_queue_live(&dev_.tp, kicked))
                start_queue(kicked, true, delay);
        } else {
            queues_changed(delay);
        }
        state_change_.notify(delay);
    }
    if (dev_.tp.outbox_count)
        msi_pending_.notify(delay);
    intx_follow(sc_core::sc_time_stamp() + delay);
    if (dev_.tp.vpci.status & VIRTIO_STATUS_FEATURES_OK)
        negotiated_features = dev_.tp.vpci.driver_features;
    tx.set_response_status(claimed ? tlm::TLM_OK_RESPONSE : tlm::TLM_ADDRESS_ERROR_RESPONSE);
    conformance_check();
}

void virtio_device_tlm::function_reset()
{
    const sc_time now = sc_core::sc_time_stamp();
    conformance_now(now);
    devmem_writes_.clear();
    pt_function_reset(&dev_.tp);
    queues_changed(SC_ZERO_TIME);
    state_change_.notify(SC_ZERO_TIME);
    intx_follow(now);
}

void virtio_device_tlm::front_end(const std::function<void(vdev &)> &op)
{
    const sc_time now = sc_core::sc_time_stamp();
    conformance_now(now);
    op(dev_);
    queues_changed(SC_ZERO_TIME);
    state_change_.notify(SC_ZERO_TIME);
    if (dev_.tp.outbox_count)
        msi_pending_.notify(SC_ZERO_TIME);
    intx_follow(now);
    if (dev_.tp.vpci.status & VIRTIO_STATUS_FEATURES_OK)
        negotiated_features = dev_.tp.vpci.driver_features;
    conformance_check();
}

void virtio_device_tlm::front_end_kick(uint16_t q)
{
    if (q >= num_queues())
        return;
    dev_.tp.q[q].kicks++; // as the notification register counts one without data
    if (trace)
        trace->instant(TRACE_DOORBELLS, ("notify " + queue_name(q)).c_str(), sc_core::sc_time_stamp());
    q_[q].kicked = true;
    q_[q].kick.notify(SC_ZERO_TIME);
    state_change_.notify(SC_ZERO_TIME);
}

void virtio_device_tlm::conformance_now(const sc_time &at)
{
    dev_.tp.vpci.conf.now = uint64_t(at.to_seconds() * 1e12 + 0.5);
}

void virtio_device_tlm::conformance_check()
{
    if (on_violation && dev_.tp.vpci.conf.total != 0) {
        on_violation();
        on_violation = nullptr;
    }
}

// Apply the device-memory suppression writes that have arrived (or all of them).
void virtio_device_tlm::apply_devmem_writes(bool all)
{
    const sc_time now = sc_core::sc_time_stamp();
    while (!devmem_writes_.empty() && (all || devmem_writes_.front().at <= now)) {
        const devmem_write w = devmem_writes_.front();
        devmem_writes_.pop_front();
        uint16_t kicked = 0xffff;
        pt_mmio_write(&dev_.tp, w.addr, w.len, w.value, &kicked);
    }
    if (dev_.tp.outbox_count)
        msi_pending_.notify(SC_ZERO_TIME); // e.g. NEEDS_RESET after a malformed write
    intx_follow(now);
}

void virtio_device_tlm::devmem_arrivals()
{
    apply_devmem_writes(false);
    if (!devmem_writes_.empty())
        devmem_arrival_.notify(devmem_writes_.front().at - sc_core::sc_time_stamp());
}

// Every device access to host memory goes through the DMA engine: reads block the
// engine until their data is there, posted writes until they are on the wire.
// Queue DMA carries the queue's PASID and is translated when the driver accepted
// VIRTIO_F_ACCESS_PLATFORM ("Reserved Feature Bits").
dma_request_attr virtio_device_tlm::queue_attr(const engine &e) const
{
    dma_request_attr a;
    if (e.queue < num_queues()) {
        const uint16_t q = e.queue;
        a.pasid = t_.queue_pasid[q == vnet_ctrl_queue(&dev_.net) ? VNET_QUEUE_CTRL
                                 : q % 2u                        ? VNET_QUEUE_TX
                                                                 : VNET_QUEUE_RX];
        a.translate = vpci_negotiated(&dev_.tp.vpci, VIRTIO_F_ACCESS_PLATFORM_BIT);
    }
    return a;
}

enum vs_dma_status virtio_device_tlm::do_dma(engine &e, tlm::tlm_command cmd, uint64_t addr,
                                             void *buf, uint32_t len, dma_request_attr a,
                                             const char *what)
{
    // Queue engines share the DMA channels (when limited): wait for one first.
    // (The coalescing timer's decision read is the notification unit's own: it does not
    // compete for the data channels, and it does not wait; see coal_timer_thread.)
    const bool arbitrated = arbiter_.enabled() && e.queue < num_queues() && !e.no_wait;
    unsigned channel = 0;
    if (arbitrated) {
        e.qk.sync();
        channel = arbiter_.acquire(e.queue);
    }
    const sc_time now = sc_core::sc_time_stamp();
    const sc_time at = now + e.qk.get_local_time();
    const dma_engine::timing t = cmd == tlm::TLM_READ_COMMAND
                                     ? dma_engine_->read(addr, buf, len, at, a)
                                     : dma_engine_->write(addr, buf, len, at, a);
    if (arbitrated)
        arbiter_.release(channel, t.data_ready);
    if (trace && e.queue < num_queues())
        trace->span(e.track, what, at, t.data_ready);
    e.qk.set(t.data_ready - now);
    if (!e.no_wait)
        t_.timing.sync(e.qk); // see "Synchronisation" in docs/timing.md
    if (t.ok)
        return VS_DMA_OK;
    return t.iommu_fault ? VS_DMA_IOMMU_FAULT : VS_DMA_OUT_OF_RANGE;
}

// Stream the benchmark's transfers: each read is issued as soon as the previous one's
// requests have left and a tag is free; the run ends when the last data has arrived.
void virtio_device_tlm::bench_thread()
{
    std::vector<unsigned char> buf(bench_.transfer_bytes);
    // Transfers start at multiples of the next power of two of their size (at least a
    // 64-byte cache line), so one never crosses a 4 KiB boundary unless it is larger.
    uint64_t stride = 64;
    while (stride < bench_.transfer_bytes)
        stride <<= 1;
    const uint64_t slots = std::max<uint64_t>(1, bench_.window_bytes / stride);
    const sc_time quantum = tlm_utils::tlm_quantumkeeper::get_global_quantum();
    dma_engine::attr a;
    a.translate = bench_.translate;
    uint64_t rng = bench_.seed ? bench_.seed : 1; // xorshift64 for the random pattern
    bench_start = sc_core::sc_time_stamp();
    sc_time t = bench_start, last = bench_start;
    for (uint64_t i = 0; i < bench_.transfers; i++) {
        uint64_t slot = i % slots;
        if (bench_.random) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            slot = rng % slots;
        }
        const uint64_t addr = bench_.base + slot * stride;
        if (bench_.op == 0 || bench_.op == 2) {
            const dma_engine::timing r = dma_engine_->read(addr, buf.data(), bench_.transfer_bytes, t, a);
            t = r.issued;
            last = std::max(last, r.data_ready);
        }
        if (bench_.op == 1 || bench_.op == 2) {
            const dma_engine::timing w = dma_engine_->write(addr, buf.data(), bench_.transfer_bytes, t, a);
            t = w.issued;
            last = std::max(last, w.issued);
        }
        bench_bytes += bench_.transfer_bytes;
        if (i == 0)
            bench_first_done = last;
        // Temporal decoupling: run ahead by at most a quantum.
        if (t - sc_core::sc_time_stamp() > quantum)
            wait(t - sc_core::sc_time_stamp());
    }
    if (last > sc_core::sc_time_stamp())
        wait(last - sc_core::sc_time_stamp());
    bench_end = last;
    bench_done = true;
    sc_core::sc_stop();
}

enum vs_dma_status virtio_device_tlm::dma_read(void *ctx, uint64_t addr, void *dst, uint32_t len,
                                               enum vs_dma_kind kind)
{
    engine &e = *static_cast<engine *>(ctx);
    // A ring rule broken is seen right after a read: stamp it with the read's time.
    e.dev->conformance_check();
    const enum vs_dma_status s = e.dev->do_dma(e, tlm::TLM_READ_COMMAND, addr, dst, len,
                                               e.dev->queue_attr(e), vs_dma_kind_name(kind));
    e.dev->conformance_now(sc_core::sc_time_stamp() + e.qk.get_local_time());
    return s;
}

enum vs_dma_status virtio_device_tlm::dma_write(void *ctx, uint64_t addr, const void *src,
                                                uint32_t len, enum vs_dma_kind kind)
{
    engine &e = *static_cast<engine *>(ctx);
    if (kind == VS_DMA_USED_WRITE)
        e.qk.inc(e.dev->t_.used_write_barrier);
    const enum vs_dma_status s = e.dev->do_dma(e, tlm::TLM_WRITE_COMMAND, addr,
                                               const_cast<void *>(src), len,
                                               e.dev->queue_attr(e), vs_dma_kind_name(kind));
    if (kind == VS_DMA_USED_WRITE) {
        e.published_at = sc_core::sc_time_stamp() + e.qk.get_local_time();
        e.published = true;
    }
    return s;
}

void virtio_device_tlm::charge(engine &e, const pt_work &w)
{
    const uint64_t cycles = w.descs * t_.desc_cycles + w.buffers * t_.packet_cycles;
    const sc_time busy = t_.cycle * double(cycles);
    engine_busy[e.queue] += busy;
    e.qk.inc(busy);
    t_.timing.sync(e.qk); // see "Synchronisation" in docs/timing.md
}

// Legacy INTx: the pin is a level, not a message the device sends on its DMA path; the
// transport keeps it (pt_intx_asserted), and every change is handed to the interrupt
// controller with the time it happened (on_intx). Called after every kernel call that
// may raise an interrupt or change ISR status, the Command register or MSI-X Enable.
void virtio_device_tlm::intx_follow(const sc_time &at)
{
    const bool level = pt_intx_asserted(&dev_.tp);
    if (level == intx_level_)
        return;
    intx_level_ = level;
    if (trace)
        trace->instant(TRACE_INTERRUPTS, level ? "INTx assert" : "INTx deassert", at);
    if (on_intx)
        on_intx(level, at);
}

// MSI-X: a posted 4-byte write of the message data to the message address. The INTx
// pin, when MSI-X is absent or disabled, follows here too (after every engine step).
void virtio_device_tlm::send_msis(engine &e)
{
    conformance_check(); // a step that just failed on a driver's ring violation
    intx_follow(sc_core::sc_time_stamp() + e.qk.get_local_time());
    if (dev_.tp.outbox_count == 0)
        return;
    const sc_time from = sc_core::sc_time_stamp() + e.qk.get_local_time();
    for (uint16_t q = 0; msi_holds_ && q < num_queues(); q++)
        if (q_[q].msi_held_until > from)
            return; // a timer decision's message goes first (coal_timer_thread)
    msix_message m;
    while (pt_take_msi(&dev_.tp, &m)) {
        uint32_t data = m.data;
        // Time to interrupt: this queue engine's last publication to this message.
        if (e.published && e.queue < num_queues() && m.vector == dev_.tp.vpci.q[e.queue].msix_vector) {
            const sc_time at = sc_core::sc_time_stamp() + e.qk.get_local_time();
            hist_record(time_to_interrupt.get(), uint64_t((at - e.published_at).to_seconds() * 1e12 + 0.5));
            e.published = false;
        }
        // An interrupt message is never translated (it targets the interrupt controller).
        if (trace)
            trace->instant(TRACE_INTERRUPTS, "MSI-X", sc_core::sc_time_stamp() + e.qk.get_local_time());
        do_dma(e, tlm::TLM_WRITE_COMMAND, m.addr, &data, sizeof data, dma_request_attr(), "msix");
        msi_sent++;
        if (m.vector < MSIX_VECTORS_MAX)
            msi_per_vector[m.vector]++;
    }
}

void virtio_device_tlm::msi_sender()
{
    for (;;) {
        wait(msi_pending_);
        msi_engine_.qk.reset();
        send_msis(msi_engine_);
        msi_engine_.qk.sync();
    }
}

// Notification coalescing ("Notifications Coalescing"): the rules of the counting
// window and of its max_usecs timer are the kernel's (model/coalesce.h); the platform
// owns time, so it gives the kernel the time (in ps: the resolution is 1 ps, top.cpp)
// and schedules the one timer event per queue as the kernel says. A window starts when
// the buffer that opens it is published: the engine that published follows the
// kernel's window right then (coal_arm, inside the used side), and the queue's timer
// process (coal_timer_thread) takes the decision at the deadline, whatever the engines
// are doing meanwhile.

// A time of the kernel's (ps) as a delay from the current time, never negative.
static sc_time coal_delay(uint64_t at_ps)
{
    const sc_time stamp = sc_core::sc_time_stamp();
    const sc_time at = sc_time::from_value(at_ps);
    return at > stamp ? at - stamp : SC_ZERO_TIME;
}

// Follow queue q's counting window at time `now` (coal_timer_follow). A window that
// ended leaves its event pending: the timer, woken early, sleeps again
// (coal_timer_wake); cancelling would also drop a parameter change's wake-up, which
// shares the event. Called inside the used side (by its holder).
void virtio_device_tlm::coal_follow(uint16_t q, const sc_time &now)
{
    uint32_t usecs = 0, window = 0;
    const bool open = vnet_coal_timer(&dev_.net, q, &usecs, &window);
    coal_timer_step s;
    coal_timer_follow(&q_[q].coal, open, window, usecs, now.value(), &s);
    if (s.ended && trace)
        trace->span(TRACE_QUEUE_RX + q, "coal_window", sc_time::from_value(s.ended_start_ps),
                    now);
    if (s.started)
        coal_timer_arms[q]++;
    // An earlier pending notification wins (the timer then sleeps again until this
    // deadline); a later one is replaced by this.
    if (s.arm)
        q_[q].coal_due.notify(coal_delay(s.at_ps));
}

// Called by an engine after a step of its queue that may have published used buffers
// (inside the used side). The control engine instead wakes the timers of the data
// queues whose parameters a command changed, to re-check them at once.
void virtio_device_tlm::coal_arm(engine &e)
{
    const uint16_t q = e.queue;
    if (role(q).changes_coalescing) {
        for (uint16_t d = 0; d < num_queues(); d++)
            if (q_[d].started && role(d).coalesces && vnet_coal_recheck_needed(&dev_.net, d))
                q_[d].coal_due.notify(e.qk.get_local_time());
        return;
    }
    if (!role(q).coalesces)
        return;
    uint32_t usecs = 0, window = 0;
    if (!q_[q].coal.armed && !vnet_coal_timer(&dev_.net, q, &usecs, &window))
        return; // no window open nor timed (the common case without coalescing)
    coal_follow(q, sc_core::sc_time_stamp() + e.qk.get_local_time());
}

// The used side of queue q: publishing used buffers and taking the notification
// decision read and write the same ring state and share the kernel's queue-level DMA
// gate, and a publication may be suspended in a DMA. So the timer takes its decision
// only when no engine is inside a used-side call (SystemC is cooperative: this orders
// whole kernel calls, not instructions), and takes it whole, without suspending (see
// coal_timer_thread), so an engine never waits for the timer. Without coalescing the
// timer never runs.
void virtio_device_tlm::used_enter(uint16_t q)
{
    q_[q].used_busy++;
}

void virtio_device_tlm::used_leave(engine &e)
{
    const uint16_t q = e.queue;
    q_[q].used_busy--;
    if (q_[q].used_busy == 0 && q_[q].timer_waits)
        t_.timing.notify_here(q_[q].used_free, e.qk);
}

// MSI-X messages a timer decision queued. The time to interrupt counts from the queue's
// last publication, whichever engine made it.
void virtio_device_tlm::coal_send_msis(engine &c)
{
    const uint16_t q = c.queue;
    engine *last = nullptr;
    for (unsigned k = 0; k < q_[q].n_engines; k++) {
        engine &o = q_[q].engines[k];
        if (o.published && (!last || o.published_at > last->published_at))
            last = &o;
    }
    c.published = last != nullptr;
    if (last)
        c.published_at = last->published_at;
    send_msis(c);
    if (last && !c.published) // its interrupt went: the publications are served
        for (unsigned k = 0; k < q_[q].n_engines; k++)
            q_[q].engines[k].published = false;
}

// Queue q's max_usecs timer: sleeps until the deadline of the window in force (or a
// parameter change), then, as soon as no engine is inside the used side, takes the
// decision at once: its DMA context issues the read of the driver's event suppression
// without waiting for it (the data is taken when a read is issued, docs/timing.md), so
// the window ends at the deadline and buffers published from then on count in the
// next one. The decision's MSI-X message leaves when the read's completion is back;
// until then no other context sends messages (they leave in the order decided).
void virtio_device_tlm::coal_timer_thread(uint16_t q)
{
    engine &c = q_[q].coal_ctx;
    coal_timer &t = q_[q].coal;
    for (;;) {
        wait(q_[q].coal_due);
        bool rearm = false;
        uint64_t at_ps = 0;
        if (!coal_timer_wake(&t, vnet_coal_recheck_needed(&dev_.net, q),
                             sc_core::sc_time_stamp().value(), &rearm, &at_ps)) {
            if (rearm) // woken for a window that has since ended
                q_[q].coal_due.notify(coal_delay(at_ps));
            continue;
        }
        q_[q].timer_waits = true;
        while (q_[q].used_busy)
            wait(q_[q].used_free);
        q_[q].timer_waits = false;
        if (trace && !q_[q].coal_track_named) {
            trace->name_track(c.track, "device: " + queue_name(q) + " coalescing timer");
            q_[q].coal_track_named = true;
        }
        c.qk.reset();
        if (vnet_coal_recheck_needed(&dev_.net, q))
            vnet_coal_recheck(&dev_.net, q, &c.ops);
        const sc_time now = sc_core::sc_time_stamp();
        coal_follow(q, now);
        if (coal_timer_due(&t, now.value())) {
            coal_timer_expiries[q]++;
            if (trace)
                trace->span(TRACE_QUEUE_RX + q, "coal_window_timer",
                            sc_time::from_value(t.start_ps), now);
            vnet_coal_expire(&dev_.net, q, t.window, &c.ops);
        }
        if (dev_.tp.outbox_count == 0) {
            intx_follow(now + c.qk.get_local_time()); // a decision raised INTx, if anything
            c.qk.sync();
            continue;
        }
        q_[q].msi_held_until = now + c.qk.get_local_time();
        msi_holds_++;
        c.qk.sync();
        q_[q].msi_held_until = SC_ZERO_TIME;
        msi_holds_--;
        coal_send_msis(c);
        c.qk.sync();
    }
}

// wait(a | b). A queue whose role wakes on kicks only (the control queue, live only
// when a driver uses coalescing) would otherwise wake on every register write of the
// data path and re-read its ring: it keeps waiting unless a kick came or the queue
// itself changed.
void virtio_device_tlm::engine_wait(engine &e, const sc_core::sc_event &a,
                                    const sc_core::sc_event &b)
{
    const uint16_t q = e.queue;
    for (;;) {
        const uint32_t before = dev_.tp.generation[q];
        wait(a | b);
        if (role(q).wakes_on_kick_only && !a.triggered() && !q_[q].kicked &&
            dev_.tp.generation[q] == before && pt_queue_live(&dev_.tp, q))
            continue;
        return;
    }
}

// A queue's engines: each takes a buffer from the ring (one engine at a time: the ring
// and its fetch unit are shared), moves its data with its own DMA, and finishes it in
// the order the buffers were taken (push, and publish when the batch is full). With
// several engines the buffers' DMA overlaps, up to the DMA engine's read tags. When the
// queue runs dry the engine that found it so waits until the others have finished,
// then publishes, asks the driver for notifications, re-checks and sleeps, holding the
// take so that the other engines wait for it. `more_work` wakes it for work that does
// not come from the driver (RX: frames in the loopback FIFO; TX: FIFO space after
// back-pressure). With one engine per queue this is the one-buffer-at-a-time engine.
void virtio_device_tlm::take_lock(engine &e)
{
    const uint16_t q = e.queue;
    if (t_.engine_wakeup_next) {
        // The take goes to the engines in the order they asked for it.
        if (q_[q].taking || !q_[q].take_queue.empty()) {
            q_[q].take_queue.push_back(&e);
            while (q_[q].taking || q_[q].take_queue.front() != &e) {
                e.qk.sync();
                if (q_[q].taking || q_[q].take_queue.front() != &e)
                    wait(*e.turn);
            }
            q_[q].take_queue.pop_front();
        }
    } else {
        while (q_[q].taking) {
            e.qk.sync();
            if (q_[q].taking)
                wait(q_[q].take_done);
        }
    }
    q_[q].taking = true;
    e.holds_take = true;
}

void virtio_device_tlm::take_unlock(engine &e)
{
    const uint16_t q = e.queue;
    q_[q].taking = false;
    e.holds_take = false;
    if (!t_.engine_wakeup_next)
        t_.timing.notify_here(q_[q].take_done, e.qk);
    else if (!q_[q].take_queue.empty())
        t_.timing.notify_here(*q_[q].take_queue.front()->turn, e.qk);
}

void virtio_device_tlm::in_flight_add(const engine &e, int delta)
{
    const uint16_t q = e.queue;
    const sc_time now = sc_core::sc_time_stamp() + e.qk.get_local_time();
    in_flight_area_ps[q] += double(q_[q].in_flight) * (now - q_[q].in_flight_since).to_seconds() * 1e12;
    q_[q].in_flight_since = now;
    q_[q].in_flight = unsigned(int(q_[q].in_flight) + delta);
    if (q_[q].in_flight > in_flight_max[q])
        in_flight_max[q] = q_[q].in_flight;
    if (counters_) {
        counters_->set(q_[q].in_flight_counter, now, q_[q].in_flight);
        sample_ring(q);
    }
}

// One buffer on engine e: take it (holding the take), move its data, finish it in take
// order. Returns with the take held unless the buffer is done, so that the queue-level
// path (publish, notifications, sleep) runs with no other engine taking.
enum pt_step virtio_device_tlm::engine_step(engine &e, pt_work &w)
{
    const uint16_t q = e.queue;
    take_lock(e);
    enum pt_step s = pt_take(&dev_.tp, q, e.slot, &e.ops, &w);
    if (s != PT_STEP_DONE)
        return s;
    if (t_.engine_wakeup_next)
        q_[q].in_take_order.push_back(&e);
    take_unlock(e);
    in_flight_add(e, +1);
    s = pt_move(&dev_.tp, q, e.slot, &w);
    // Finish in take order. Nothing here has advanced local time since the last DMA
    // synchronised, so no yield comes between the check and the wait.
    while (s == PT_STEP_DONE) {
        if (e.qk.get_local_time() != SC_ZERO_TIME)
            e.qk.sync();
        used_enter(q);
        // With several engines most wake-ups find it is not yet this buffer's turn: that
        // answer without the call (pt_finish would give the same, touching nothing).
        s = dev_.tp.engines > 1 && pt_finish_waits(&dev_.tp, q, e.slot)
                ? PT_STEP_WAIT
                : pt_finish(&dev_.tp, q, e.slot, &w);
        if (s != PT_STEP_WAIT) {
            coal_arm(e); // a full batch publishes
            used_leave(e);
            break;
        }
        used_leave(e);
        if (t_.engine_wakeup_next) {
            e.awaits_turn = true;
            wait(*e.turn);
            e.awaits_turn = false;
        } else {
            wait(q_[q].finished);
        }
        s = PT_STEP_DONE;
    }
    in_flight_add(e, -1);
    if (t_.engine_wakeup_next) {
        auto &order = q_[q].in_take_order;
        order.erase(std::find(order.begin(), order.end(), &e)); // the front but on a failure
    }
    wake_finishers(e);
    if (s != PT_STEP_DONE)
        take_lock(e); // the buffer failed or its queue was reset
    return s;
}

// A buffer of queue q has finished (or failed): wake the engines that may now go on.
// sim.engine_wakeup = all wakes every waiting engine and each re-checks its turn; which
// of those woken at the same picosecond SystemC runs first follows its event lists, so
// this is the order the exact results depend on. next walks the buffers in flight in
// take order and wakes those whose finish would no longer wait (the next in take order;
// after a queue reset or a device failure, the stale or failed ones before it), up to
// the first that must still wait; it wakes the engine draining the queue
// (wait_in_flight) only once nothing is in flight.
void virtio_device_tlm::wake_finishers(const engine &e)
{
    const uint16_t q = e.queue;
    if (!t_.engine_wakeup_next) {
        t_.timing.notify_here(q_[q].finished, e.qk);
        return;
    }
    for (engine *o : q_[q].in_take_order) {
        if (pt_finish_waits(&dev_.tp, q, o->slot))
            break;
        if (o->awaits_turn)
            t_.timing.notify_here(*o->turn, e.qk);
    }
    if (q_[q].in_flight == 0)
        t_.timing.notify_here(q_[q].finished, e.qk);
}

// The queue ran dry (or a buffer failed): before publishing, wait for the queue's
// other buffers in flight to finish.
void virtio_device_tlm::wait_in_flight(engine &e)
{
    const uint16_t q = e.queue;
    while (q_[q].in_flight > 0) {
        e.qk.sync();
        if (q_[q].in_flight > 0)
            wait(q_[q].finished);
    }
}

void virtio_device_tlm::run_engine(engine &e, sc_core::sc_event &more_work)
{
    const uint16_t q = e.queue;
    const pt_role &r = role(q);
    for (;;) {
        if (e.holds_take)
            take_unlock(e);
        if (!in_service(q)) {
            // Disabled, reset, before DRIVER_OK, or of a pair the driver does not use:
            // sleep until a register write or a VQ_PAIRS_SET brings the queue back
            // (queues_changed), not woken by the data path's notifications. Pair 1 and
            // the control queue look at every register write instead, as the one-pair
            // platform always did: the order in which SystemC runs engines woken
            // together, and so which engine of a queue takes first, depends on it.
            // A parked queue (live, its role has look_parked: a transmit queue of a pair
            // not in use) also wakes on its notifications, for the conformance look
            // (TX_QUEUE_NOT_IN_USE); a driver that follows the rules sends none there.
            const bool first_pair = q < VNET_QUEUE_CTRL || q == vnet_ctrl_queue(&dev_.net);
            e.qk.sync();
            q_[q].dormant++;
            while (!in_service(q)) {
                if (role(q).look_parked && q_[q].kicked && pt_queue_live(&dev_.tp, q)) {
                    q_[q].kicked = false;
                    pt_look_parked(&dev_.tp, q, e.slot, &e.ops);
                    if (e.qk.get_local_time() != SC_ZERO_TIME)
                        e.qk.sync();
                    continue;
                }
                if (first_pair)
                    wait(state_change_);
                else if (role(q).look_parked)
                    wait(revive_ | q_[q].kick);
                else
                    wait(revive_);
            }
            q_[q].dormant--;
            continue;
        }
        pt_work w = {};
        const enum pt_step s = engine_step(e, w);
        charge(e, w);
        if (dev_.net.pairs != pairs_seen_) {
            // A VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET took effect: start or wake the queues of
            // the pairs now in use (the others go to sleep when they next look).
            pairs_seen_ = dev_.net.pairs;
            queues_changed(e.qk.get_local_time());
        }
        if (s == PT_STEP_DONE) {
            if (r.signals && (r.signals_on_frames ? w.frames : w.buffers))
                signal(r.signals, e);
            send_msis(e);
            continue;
        }
        wait_in_flight(e);
        used_enter(q);
        pt_complete(&dev_.tp, q, &e.ops);
        coal_arm(e);
        used_leave(e);
        if (counters_)
            sample_ring(q);
        send_msis(e);
        const bool waits_for_driver = s == PT_STEP_IDLE ? r.idle_waits_for_driver
                                                        : !r.idle_waits_for_driver;
        if (s == PT_STEP_FAILED) {
            e.qk.sync();
            wait(state_change_);
            continue;
        }
        if (!waits_for_driver) {
            // Waiting for the other side of the device (the role's waits_on: RX frames,
            // TX FIFO space). Synchronise first, then check and wait with no yield in
            // between.
            e.qk.sync();
            const bool still = r.still_blocked && r.still_blocked(dev_.tp.dev_ctx, q);
            if (still) {
                engine_wait(e, more_work, state_change_);
                engine_wakeups[q]++;
            }
            continue;
        }
        // Waiting for the driver to make buffers available: ask for notifications and
        // re-check the ring, since the driver may have added buffers before it could
        // see the request ("Driver and Device Event Suppression").
        q_[q].kicked = false;
        used_enter(q);
        const enum pt_step armed = pt_arm_notifications(&dev_.tp, q, &e.ops);
        used_leave(e);
        if (counters_)
            sample_ring(q);
        send_msis(e);
        e.qk.sync();
        if (armed != PT_STEP_DONE && !q_[q].kicked) {
            engine_wait(e, q_[q].kick, state_change_);
            engine_wakeups[q]++;
        }
        q_[q].kicked = false;
        used_enter(q);
        pt_quiet_notifications(&dev_.tp, q, &e.ops);
        used_leave(e);
    }
}

// What wakes a blocked engine of q besides register writes: the signal its role waits
// on (RX: frames in its pair's FIFO; TX: space in it), else any register write. With
// sim.engine_wakeup = next, for q alone when the personality marks the queues a step
// gives work to (woken_by_mark); with all, with every queue waiting on that signal.
sc_core::sc_event &virtio_device_tlm::more_work(uint16_t q)
{
    const pt_role &r = role(q);
    if (!r.waits_on)
        return state_change_;
    if (r.woken_by_mark && t_.engine_wakeup_next)
        return q_[q].signalled;
    signal_waiters_[r.waits_on]++;
    return signal_[r.waits_on];
}

// A step of engine e completed with what its role signals (`sig`), at e's own time.
// sim.engine_wakeup = all: wake every engine waiting on sig; each re-checks its queue
// (still_blocked) and most sleep again -- with N pairs, a frame on one pair wakes the
// blocked receive engines of all N. Which of those woken at the same picosecond
// SystemC runs first follows the signal's waiter list, which every such re-check
// reorders, so this is the order the exact results of several pairs depend on. next:
// wake only the queues waiting on sig that the step -- or an earlier one that did not
// signal -- gave work to (pt_take_wake: RX, the queue whose pair's FIFO got a frame; TX,
// the one whose pair's FIFO got space), each on its own event, in queue order; the
// engines of roles without marks all together. A queue not waiting when woken finds
// its work when it next looks (still_blocked before it sleeps).
void virtio_device_tlm::signal(unsigned sig, const engine &e)
{
    const sc_time at = e.qk.get_local_time();
    if (!t_.engine_wakeup_next) {
        signal_[sig].notify(at);
        return;
    }
    if (signal_waiters_[sig])
        signal_[sig].notify(at);
    uint16_t mq;
    while (pt_take_wake(&dev_.tp, &mq)) {
        const pt_role &r = role(mq);
        if (r.waits_on && r.woken_by_mark && !q_[mq].marked) {
            q_[mq].marked = true;
            marked_.push_back(mq);
        }
    }
    size_t kept = 0;
    for (uint16_t q : marked_) {
        if (role(q).waits_on == sig) {
            q_[q].marked = false;
            q_[q].signalled.notify(at);
        } else {
            marked_[kept++] = q;
        }
    }
    marked_.resize(kept);
}

// Engine k of queue q, whatever the queue's role.
void virtio_device_tlm::queue_engine(uint16_t q, unsigned k, sc_time start)
{
    if (start != SC_ZERO_TIME)
        wait(start); // started by a register write, which takes effect on arrival
    q_[q].engines[k].qk.reset();
    run_engine(q_[q].engines[k], more_work(q));
}

} // namespace viosim
