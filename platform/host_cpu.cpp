#include "host_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "address_map.h"

namespace viosim {

using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_ZERO_TIME;

cpu_costs cpu_costs_of(const host_cpu_params &p, const sim_params &sim)
{
    cpu_costs cc = {};
    cc.cycle = sc_core::sc_time(1000.0 / p.clock_mhz, sc_core::SC_NS);
    cc.work_cycles[VS_HOST_WORK_TX_PACKET] = p.tx_packet_cycles;
    cc.work_cycles[VS_HOST_WORK_RX_PACKET] = p.rx_packet_cycles;
    cc.work_cycles[VS_HOST_WORK_TX_REAP] = p.tx_reap_cycles;
    cc.work_cycles[VS_HOST_WORK_RX_REFILL] = p.rx_refill_cycles;
    cc.work_cycles[VS_HOST_WORK_POLL] = p.poll_cycles;
    cc.work_cycles[VS_HOST_WORK_BARRIER_DEVICE] = p.device_barrier_cycles;
    cc.work_cycles[VS_HOST_WORK_BARRIER_SMP] = p.smp_barrier_cycles;
    cc.work_cycles[VS_HOST_WORK_CTRL_COMMAND] = p.ctrl_command_cycles;
    cc.irq_entry_cycles = p.irq_entry_cycles;
    cc.mmio_write = sc_core::sc_time(p.mmio_write_ns, sc_core::SC_NS);
    cc.intx_latency = sc_core::sc_time(p.intx_latency_ns, sc_core::SC_NS);
    cc.poll_sleep = sim.poll_sleep;
    cc.timing = run_ahead_of(sim);
    cc.cpus = p.cpus_count > 0 ? p.cpus_count : 1;
    return cc;
}

// The driver's statistics (refdrv_stats), prefix driver.: the frames it moved, then the
// work it did for them.
void stats_add_driver_frames(stats_table &s, const refdrv_stats &d)
{
    static const stat_row<refdrv_stats> rows[] = {
        {"tx.frames", "frames", stat_better::neutral,
         "frames transmitted by the driver", &refdrv_stats::tx_frames},
        {"tx.bytes", "bytes", stat_better::neutral,
         "frame bytes transmitted (without virtio-net header)", &refdrv_stats::tx_bytes},
        {"rx.frames", "frames", stat_better::higher,
         "frames received by the driver", &refdrv_stats::rx_frames},
        {"rx.bytes", "bytes", stat_better::higher,
         "frame bytes received", &refdrv_stats::rx_bytes},
        {"rx.bad_payload", "frames", stat_better::lower,
         "received frames whose payload did not match", &refdrv_stats::rx_bad_payload},
        {"rx.flow_frames", "frames", stat_better::neutral,
         "received good frames that were flow frames (IPv4/UDP, driver.flows_count)",
         &refdrv_stats::rx_flow_frames},
        {"rx.buffers", "buffers", stat_better::neutral,
         "receive buffers the driver took back (one per frame without VIRTIO_NET_F_MRG_RXBUF)",
         &refdrv_stats::rx_buffers},
        {"rx.merged_frames", "frames", stat_better::neutral,
         "received frames that came in more than one buffer (VIRTIO_NET_F_MRG_RXBUF)",
         &refdrv_stats::rx_merged_frames},
        {"mrg_rxbuf_negotiated", "flag", stat_better::neutral,
         "1 if VIRTIO_NET_F_MRG_RXBUF was negotiated (driver.mrg_rxbuf), else 0",
         &refdrv_stats::mrg_rxbuf_negotiated},
        {"mq.pairs", "pairs", stat_better::neutral,
         "queue pairs the driver used (1 without VIRTIO_NET_F_MQ; driver.queue_pairs_count)",
         &refdrv_stats::mq_pairs},
    };
    stats_add_rows(s, "driver.", rows, d);
    // Per pair, only when several are in use: driver.pair.K.{tx,rx}.frames, K from 1.
    for (uint64_t k = 0; d.mq_pairs > 1 && k < d.mq_pairs && k < REFDRV_PAIRS_MAX; k++) {
        const std::string n = "driver.pair." + std::to_string(k + 1) + ".";
        s.add_u64(n + "tx.frames", "frames", stat_better::neutral,
                  "frames whose transmission completed on this pair's transmitq",
                  d.tx_frames_pair[k]);
        s.add_u64(n + "rx.frames", "frames", stat_better::neutral,
                  "frames the driver received on this pair's receiveq", d.rx_frames_pair[k]);
    }
}

void stats_add_driver_work(stats_table &s, const refdrv_stats &d)
{
    static const stat_row<refdrv_stats> rows[] = {
        {"notifications", "count", stat_better::lower,
         "available buffer notifications written by the driver", &refdrv_stats::notifications},
        {"notifications_suppressed", "count", stat_better::higher,
         "notifications skipped because the device's event suppression said so", &refdrv_stats::notifications_suppressed},
        {"interrupts", "count", stat_better::lower,
         "interrupts taken by the driver", &refdrv_stats::interrupts},
        {"polls_empty", "count", stat_better::lower,
         "ring polls that found nothing", &refdrv_stats::polls_empty},
        {"ctrl.commands", "count", stat_better::neutral,
         "control queue commands the driver sent (coalescing only)", &refdrv_stats::ctrl_commands},
        {"ctrl.errors", "count", stat_better::lower,
         "control commands not answered VIRTIO_NET_OK, or whose VQ_GET read-back differed", &refdrv_stats::ctrl_errors},
        {"coal.retunes", "count", stat_better::neutral,
         "driver.coal_policy adaptive: profile changes (one VQ_SET each)", &refdrv_stats::coal_retunes},
        {"mmio_reads", "count", stat_better::lower,
         "MMIO reads by the driver", &refdrv_stats::mmio_reads},
        {"mmio_writes", "count", stat_better::lower,
         "MMIO writes by the driver", &refdrv_stats::mmio_writes},
        {"cfg_reads", "count", stat_better::lower,
         "configuration reads by the driver", &refdrv_stats::cfg_reads},
        {"cfg_writes", "count", stat_better::lower,
         "configuration writes by the driver", &refdrv_stats::cfg_writes},
        {"event_suppression.devmem_negotiated", "flag", stat_better::neutral,
         "1 if the viosim extension VIOSIM_NET_F_DEVMEM_EVENT was negotiated (driver suppression fields in device memory), else 0", &refdrv_stats::devmem_event_negotiated},
        {"event_suppression.recheck_negotiated", "flag", stat_better::neutral,
         "1 if VIOSIM_NET_F_DEVMEM_EVENT_RECHECK was negotiated too (the device re-decides on slot writes; the driver does no flushing reads), else 0", &refdrv_stats::devmem_event_recheck_negotiated},
        {"event_suppression.mmio_writes", "count", stat_better::lower,
         "MMIO writes of the driver's event suppression fields to device memory (part of driver.mmio_writes)", &refdrv_stats::devmem_event_writes},
        {"event_suppression.flush_reads", "count", stat_better::lower,
         "MMIO reads flushing those writes before the driver re-checks its rings (part of driver.mmio_reads)", &refdrv_stats::devmem_event_flush_reads},
    };
    stats_add_rows(s, "driver.", rows, d);
}

host_cpu::host_cpu(sc_core::sc_module_name name, const cpu_costs &c, const refdrv_params &p,
                   uint8_t *mem, uint64_t mem_base, uint64_t mem_size, bool run_driver)
    : sc_module(name), mmio("mmio"), msi_in("msi_in"), c_(c), p_(p)
{
    msi_in.register_b_transport(this, &host_cpu::b_msi);
    std::memset(&ops_, 0, sizeof ops_);
    ops_.cfg_read = op_cfg_read;
    ops_.cfg_write = op_cfg_write;
    ops_.mmio_read = op_mmio_read;
    ops_.mmio_write = op_mmio_write;
    ops_.wait_interrupt = op_wait_interrupt;
    ops_.cpu_work = op_cpu_work;
    ops_.now_ps = op_now_ps;
    ops_.poll_idle = c.poll_sleep ? op_poll_idle : nullptr; // sim.poll_sleep
    ops_.iommu_set_root = op_iommu_set_root;
    ops_.cpu_for_pair = c.cpus > 1 ? op_cpu_for_pair : nullptr; // host.cpus_count
    ops_.ctx = this;
    ops_.mem = mem;
    ops_.mem_base = mem_base;
    ops_.mem_size = mem_size;
    ops_.mmio_window_base = amap::mmio_window_base;
    ops_.mmio_window_size = amap::mmio_window_size;
    ops_.msi_base = amap::msi_base;
    if (run_driver)
        SC_THREAD(run);
}

void host_cpu::run()
{
    qk_.reset();
    stats.latency = latency.get();
    driver_state_.reset(std::calloc(1, refdrv_state_bytes()));
    result = driver_state_ ? refdrv_run_in(driver_state_.get(), &ops_, &p_, &stats)
                           : REFDRV_NO_MEMORY;
    qk_.sync();
    finish_time = sc_core::sc_time_stamp();
    done_ = true;
    sc_core::sc_stop();
}

void host_cpu::request_stop()
{
    stop_requested = true;
    if (polling_) // the next poll stops it, as it would have without op_poll_idle
        wake_at_next_poll();
}

// viosim run --strict asked to end the run: stop here and never return (nothing but
// the driver's frames, whose state this module owns, is left on the thread's stack).
void host_cpu::stop_if_requested()
{
    if (!stop_requested)
        return;
    qk_.sync();
    finish_time = sc_core::sc_time_stamp();
    sc_core::sc_stop();
    sc_core::wait(never_);
}

void host_cpu::spend(const sc_time &t)
{
    stop_if_requested();
    busy += t;
    qk_.inc(t);
    sync_unless_in_pass(); // see "Synchronisation" in docs/timing.md
}

void host_cpu::sync_unless_in_pass()
{
    if (!in_pass_)
        c_.timing.sync(qk_);
}

uint64_t host_cpu::access(tlm::tlm_command cmd, uint64_t addr, unsigned size, uint64_t value)
{
    stop_if_requested();
    unsigned char buf[8] = {};
    std::memcpy(buf, &value, size);
    reused_payload::lease payload(access_payload_);
    tlm::tlm_generic_payload &tx = payload.prepare(cmd, addr, buf, size);
    sc_time delay = qk_.get_local_time();
    in_read_ = cmd == tlm::TLM_READ_COMMAND;
    mmio->b_transport(tx, delay);
    if (in_read_) {
        // PCIe ordering: a completion does not pass the posted messages sent before it,
        // so pin changes the device made by the time it answered are seen by now.
        in_read_ = false;
        const sc_time completion = sc_core::sc_time_stamp() + delay;
        auto last = intx_changes_.end();
        for (auto it = intx_changes_.begin(); it != intx_changes_.end(); ++it)
            if (it->before_completion)
                last = std::next(it);
        for (auto it = intx_changes_.begin(); it != last; ++it) {
            it->at = std::max(it->sent, std::min(it->at, completion));
            it->before_completion = false;
        }
    }
    // Reads (and configuration writes) stall the CPU until the completion is back.
    busy += delay - qk_.get_local_time();
    qk_.set(delay);
    sync_unless_in_pass(); // see "Synchronisation" in docs/timing.md
    uint64_t out = 0;
    std::memcpy(&out, buf, size);
    return out;
}

uint32_t host_cpu::op_cfg_read(void *ctx, uint32_t off, unsigned size)
{
    auto *cpu = static_cast<host_cpu *>(ctx);
    return uint32_t(cpu->access(tlm::TLM_READ_COMMAND, amap::ecam_base + off, size, 0));
}

void host_cpu::op_cfg_write(void *ctx, uint32_t off, unsigned size, uint32_t value)
{
    auto *cpu = static_cast<host_cpu *>(ctx);
    cpu->access(tlm::TLM_WRITE_COMMAND, amap::ecam_base + off, size, value);
}

uint64_t host_cpu::op_mmio_read(void *ctx, uint64_t addr, unsigned size)
{
    return static_cast<host_cpu *>(ctx)->access(tlm::TLM_READ_COMMAND, addr, size, 0);
}

void host_cpu::op_mmio_write(void *ctx, uint64_t addr, unsigned size, uint64_t value)
{
    auto *cpu = static_cast<host_cpu *>(ctx);
    cpu->access(tlm::TLM_WRITE_COMMAND, addr, size, value);
    cpu->spend(cpu->c_.mmio_write);
}

// Sleep until an interrupt has arrived (by its arrival time) or the timeout passes.
int host_cpu::op_wait_interrupt(void *ctx, uint64_t timeout_ns)
{
    auto *cpu = static_cast<host_cpu *>(ctx);
    cpu->join_pass();
    cpu->qk_.sync();
    const sc_time deadline = sc_core::sc_time_stamp() + sc_time(double(timeout_ns), SC_NS);
    for (;;) {
        const sc_time now = sc_core::sc_time_stamp();
        if (!cpu->irqs_.empty() && cpu->irqs_.front().at <= now) {
            const uint32_t v = cpu->irqs_.front().vector;
            cpu->irqs_.pop_front();
            cpu->interrupts++;
            cpu->spend(cpu->c_.cycle * double(cpu->c_.irq_entry_cycles));
            return int(v);
        }
        // INTx is a level: taken as long as the line is asserted (the driver's ISR read
        // lowers it at the device).
        if (cpu->intx_asserted_now()) {
            cpu->interrupts++;
            cpu->intx_taken++;
            cpu->spend(cpu->c_.cycle * double(cpu->c_.irq_entry_cycles));
            return VS_HOST_IRQ_INTX;
        }
        if (now >= deadline)
            return -1;
        sc_time wake = deadline;
        if (!cpu->irqs_.empty() && cpu->irqs_.front().at < wake)
            wake = cpu->irqs_.front().at;
        if (!cpu->intx_changes_.empty() && cpu->intx_changes_.front().at < wake)
            wake = cpu->intx_changes_.front().at;
        // A notification already due earlier is kept (notify's rule): this loop then
        // wakes at it, finds nothing and waits again.
        cpu->wait_deadline_.notify(wake - now);
        sc_core::wait(cpu->wait_deadline_ | cpu->irq_event_);
        cpu->stop_if_requested();
    }
}

void host_cpu::op_cpu_work(void *ctx, enum vs_host_work kind, uint64_t count)
{
    auto *cpu = static_cast<host_cpu *>(ctx);
    if (unsigned(kind) >= VS_HOST_WORK_COUNT)
        return;
    cpu->work_count[kind] += count;
    cpu->spend(cpu->c_.cycle * double(cpu->c_.work_cycles[kind] * count));
}

uint64_t host_cpu::op_now_ps(void *ctx)
{
    auto *cpu = static_cast<host_cpu *>(ctx);
    const sc_time t = sc_core::sc_time_stamp() + cpu->qk_.get_local_time();
    // The driver asks the time on every poll. With a 1 ps resolution the time's value is
    // already the answer: to_seconds() * 1e12 + 0.5 is the value times (1 + e) plus a
    // half, with |e| a few units of 2^-53 from its roundings, which truncates back to
    // the value below 2^50 ps (1126 s), so the library call is needed only beyond that.
    // The resolution is final once the simulation runs: asked on the first call.
    if (cpu->ps_resolution_ < 0)
        cpu->ps_resolution_ = sc_core::sc_get_time_resolution() == sc_time(1, sc_core::SC_PS);
    if (cpu->ps_resolution_ && t.value() < (uint64_t(1) << 50))
        return t.value();
    return uint64_t(t.to_seconds() * 1e12 + 0.5);
}

// Empty polls, back to back. The driver's loop would charge one poll, synchronise and
// look at the rings again, each `poll` apart (t + poll, t + 2 poll, ...). Instead the
// thread sleeps until the poll before the one at or after until_ps and takes the last
// hop as the loop would (so a device action at the very instant of that poll is
// ordered against it as before); a device write to guest memory meanwhile wakes it at
// the first poll at or after the write (at the write's instant: that poll; at t, after
// the look the driver just took: the next), scheduled from within the write, before
// the writer goes on, as the loop's pending wake-up would have been. Same charges, same
// times, two waits instead of one per poll.
uint64_t host_cpu::op_poll_idle(void *ctx, uint64_t until_ps)
{
    auto *cpu = static_cast<host_cpu *>(ctx);
    const sc_time poll = cpu->c_.cycle * double(cpu->c_.work_cycles[VS_HOST_WORK_POLL]);
    if (poll == SC_ZERO_TIME || !cpu->memory)
        return 0;
    cpu->stop_if_requested();
    cpu->join_pass();
    if (cpu->qk_.get_local_time() != SC_ZERO_TIME)
        cpu->qk_.sync();
    const sc_time t = sc_core::sc_time_stamp();
    const uint64_t t_ps = op_now_ps(ctx);
    const uint64_t poll_ps = uint64_t(poll.to_seconds() * 1e12 + 0.5);
    // until_ps may be UINT64_MAX (no deadline): sleep until a write then, with the
    // sleep's end kept inside sc_time's range (t_ps is far below 2^62: the time limit).
    const uint64_t horizon_ps = (uint64_t(1) << 62) - t_ps;
    const uint64_t span_ps = until_ps > t_ps ? std::min(until_ps - t_ps, horizon_ps) : 0;
    uint64_t polls = span_ps > 0 ? (span_ps - 1) / poll_ps + 1 : 1;
    if (polls > 1) {
        cpu->poll_from_ = t;
        cpu->poll_ = poll;
        cpu->polling_ = true;
        cpu->poll_woken_ = false;
        cpu->memory->watcher = cpu;
        cpu->poll_wake_.notify(poll * double(polls - 1));
        sc_core::wait(cpu->poll_wake_);
        cpu->polling_ = false;
        cpu->memory->watcher = nullptr;
        if (cpu->poll_woken_) // a write or a stop: this poll is the one that may see it
            polls = uint64_t(std::round((sc_core::sc_time_stamp() - t) / poll));
        else
            sc_core::wait(poll); // the last hop, as the loop takes it
    } else {
        sc_core::wait(poll);
    }
    cpu->busy += poll * double(polls);
    cpu->work_count[VS_HOST_WORK_POLL] += polls;
    return polls;
}

// The first poll at or after now (one after the sleep's start at least), from the
// process that wrote guest memory or asked to stop.
void host_cpu::wake_at_next_poll()
{
    const sc_time now = sc_core::sc_time_stamp();
    const double since = (now - poll_from_) / poll_;
    double k = std::ceil(since);
    if (k < 1)
        k = 1;
    poll_wake_.notify(poll_from_ + poll_ * k - now); // an earlier notification wins
    poll_woken_ = true;
}

void host_cpu::device_wrote()
{
    if (polling_)
        wake_at_next_poll();
}

int host_cpu::op_iommu_set_root(void *ctx, uint32_t pasid, uint64_t root_pa)
{
    auto *cpu = static_cast<host_cpu *>(ctx);
    return cpu->iommu_set_root && cpu->iommu_set_root(pasid, root_pa) ? 0 : -1;
}

// Interrupt controller: an MSI-X message is a 4-byte write of the vector number to
// the MSI window; it is taken at its arrival time.
void host_cpu::b_msi(tlm::tlm_generic_payload &tx, sc_time &delay)
{
    if (!tx.is_write() || tx.get_data_length() != 4) {
        msi_bad++;
        tx.set_response_status(tlm::TLM_COMMAND_ERROR_RESPONSE);
        return;
    }
    uint32_t data;
    std::memcpy(&data, tx.get_data_ptr(), 4);
    const sc_time at = sc_core::sc_time_stamp() + delay;
    // Keep arrival order (messages from different senders may be annotated out of order).
    auto it = irqs_.end();
    while (it != irqs_.begin() && std::prev(it)->at > at)
        --it;
    irqs_.insert(it, pending_irq{at, data});
    irq_event_.notify(delay);
    tx.set_response_status(tlm::TLM_OK_RESPONSE);
}

// Legacy INTx: the device's pin change reaches the interrupt controller
// host.intx_latency_ns after the device made it, never before an earlier change (one
// path, in order), and, when it happened while a read of this CPU was at the device,
// no later than that read's completion (access).
void host_cpu::intx_changed(bool level, const sc_time &at)
{
    sc_time arrive = at + c_.intx_latency;
    if (!intx_changes_.empty() && intx_changes_.back().at > arrive)
        arrive = intx_changes_.back().at;
    intx_changes_.push_back(intx_change{at, arrive, level, in_read_});
    irq_event_.notify(arrive - sc_core::sc_time_stamp());
}

// The level the interrupt controller sees now, after the changes that have arrived.
bool host_cpu::intx_asserted_now()
{
    const sc_time now = sc_core::sc_time_stamp();
    while (!intx_changes_.empty() && intx_changes_.front().at <= now) {
        intx_line_ = intx_changes_.front().level;
        intx_changes_.pop_front();
    }
    return intx_line_;
}

// host.cpus_count > 1: the driver's pass over several pairs as a fork and a join. The
// pass starts at the time the driver reached; each pair's work is charged on CPU
// pair mod cpus from where that CPU left off in this pass (its own time: MMIO accesses
// carry it as their annotated delay, now_ps answers it); shared work (-1) starts at
// the latest CPU's time. One driver thread does all of it, so the CPUs' pieces reach
// the device in the driver's order even when their times interleave otherwise (the
// loosely-timed approximation docs/timing.md describes).
void host_cpu::op_cpu_for_pair(void *ctx, int32_t pair)
{
    auto *cpu = static_cast<host_cpu *>(ctx);
    if (pair < 0) {
        cpu->join_pass();
        return;
    }
    const sc_time now = cpu->abs_now();
    if (!cpu->in_pass_) {
        cpu->cpu_at_.assign(cpu->c_.cpus, now);
        cpu->in_pass_ = true;
    } else {
        cpu->cpu_at_[cpu->cpu_now_] = now;
    }
    cpu->cpu_now_ = unsigned(pair) % cpu->c_.cpus;
    // No synchronisation inside a pass: every CPU's time is at or after the kernel's.
    cpu->qk_.set(cpu->cpu_at_[cpu->cpu_now_] - sc_core::sc_time_stamp());
}

void host_cpu::join_pass()
{
    if (!in_pass_)
        return;
    cpu_at_[cpu_now_] = abs_now();
    const sc_time end = *std::max_element(cpu_at_.begin(), cpu_at_.end());
    in_pass_ = false;
    qk_.set(end - sc_core::sc_time_stamp());
    c_.timing.sync(qk_);
}

} // namespace viosim
