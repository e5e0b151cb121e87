// device_platform.cpp -- the device side of the platform, built from a configuration,
// and the statistics a run writes for it.
#include "device_platform.h"

#include "address_map.h"

namespace viosim {

using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_PS;

namespace {

// The memory group's timing.
sc_time memory_latency(const vs_config &cfg) { return sc_time(cfg.memory.latency_ns, SC_NS); }
sc_time memory_per_byte(const vs_config &cfg) { return sc_time(cfg.memory.read_ps_per_byte, SC_PS); }

void add_direction(stats_table &s, const std::string &n, const char *what, const link_direction &d,
                   double sim_ns)
{
    stats_add_link_direction(s, n, what, d.tlps, d.payload_bytes, d.overhead_bytes,
                             d.busy.to_seconds() * 1e9, sim_ns);
}

// Time to interrupt: from the moment the write publishing used buffers has left the
// device to the moment the MSI-X message it decided on is issued (virtio_device_tlm).
// With the spec's placement this includes the DMA read of the driver's event
// suppression fields; with the viosim extension VIOSIM_NET_F_DEVMEM_EVENT it does not.
void add_time_to_interrupt_stats(stats_table &s, const virtio_device_tlm &dev)
{
    const hist &t = *dev.time_to_interrupt;
    const std::string n = "device.time_to_interrupt";
    s.add_u64(n + ".samples", "count", stat_better::neutral, "used buffer notifications with a time-to-interrupt sample",
              t.count);
    s.add_f64(n + ".mean_ns", "ns", stat_better::lower,
              "mean time from a used-ring publication leaving the device to its MSI-X message",
              hist_mean(&t) / 1000.0);
    s.add_f64(n + ".p50_ns", "ns", stat_better::lower, "median time to interrupt", hist_percentile_ns(t, 0.50));
    s.add_f64(n + ".p99_ns", "ns", stat_better::lower, "99th percentile time to interrupt", hist_percentile_ns(t, 0.99));
    s.add_f64(n + ".max_ns", "ns", stat_better::lower, "largest time to interrupt", t.count == 0 ? 0.0 : t.max / 1000.0);
    // Histogram: samples below 2^k ns, for k = 4 .. 12, and the rest.
    stats_add_coarse_hist(s, n, t, 4, 12, "times to interrupt below this bound and not below the previous one",
                          "times to interrupt of 4096 ns or more");
}

} // namespace

device_platform::device_platform(const vs_config &cfg)
    : mem("memory", amap::memory_base, cfg.memory.size_mib << 20, memory_latency(cfg),
          memory_per_byte(cfg)),
      rc("root_complex", iommu_config_of(cfg.iommu, cfg.seed), iommu_timing_of(cfg.iommu)),
      dev("device", cfg.dev, device_timing_of(cfg), dma_bench_setup_of(cfg))
{
    make_interconnect(cfg);
}

device_platform::device_platform(const vs_config &cfg, const std::vector<memory_region> &regions)
    : mem("memory", regions, memory_latency(cfg), memory_per_byte(cfg)),
      rc("root_complex", iommu_config_of(cfg.iommu, cfg.seed), iommu_timing_of(cfg.iommu)),
      dev("device", cfg.dev, device_timing_of(cfg), dma_bench_setup_of(cfg))
{
    make_interconnect(cfg);
}

void device_platform::make_interconnect(const vs_config &cfg)
{
    if (cfg.software.enabled) {
        smp.reset(new smp_interconnect("smp", smp_timing_of(cfg.software), amap::msi_base,
                                       amap::msi_size));
    } else {
        const pcie_link_timing lt = pcie_link_timing_of(cfg.pcie, cfg.memory);
        link.reset(new pcie_link("link", lt.link, sc_time(lt.read_fixed_ns, SC_NS)));
    }
    iommu_in_device_ = cfg.iommu.in_device;
    rc.on_invalidate = [this](uint32_t pasid) { dev.ats_invalidate(pasid); };
}

void device_platform::connect_host(tlm::tlm_base_initiator_socket<> &mmio,
                                   tlm::tlm_base_target_socket<> &msi_in)
{
    rc.to_memory.bind(mem.socket);
    rc.to_intc.bind(msi_in);
    if (smp) {
        mmio.bind(smp->down_in);
        smp->down_out.bind(dev.target);
        dev.dma.bind(smp->up_in);
        smp->up_out.bind(rc.from_link);
    } else {
        mmio.bind(link->down_in);
        link->down_out.bind(dev.target);
        dev.dma.bind(link->up_in);
        link->up_out.bind(rc.from_link);
    }
}

uint64_t device_platform::link_tlps() const
{
    uint64_t tlps = 0;
    if (link)
        for (int t = 0; t < 4; t++)
            tlps += link->up.tlps[t] + link->down.tlps[t];
    return tlps;
}

void stats_add_link_dma(stats_table &s, const device_platform &p, double sim_ns)
{
    // The software profile has no link: its rows read zero.
    const link_direction none;
    add_direction(s, "link.up", "device to host", p.link ? p.link->up : none, sim_ns);
    add_direction(s, "link.down", "host to device", p.link ? p.link->down : none, sim_ns);
    stats_add_dma_engine(s, p.dev.dma_stats(), p.dev.arbiter(), sim_ns,
                         vnet_ctrl_queue(&p.dev.kernel().net));
}

void stats_add_device(stats_table &s, const virtio_device_tlm &dev, double sim_ns)
{
    const vdev &d = dev.kernel();
    stats_add_device_frames(s, {d.net.stats.tx_frames, d.net.stats.rx_frames, d.net.stats.rx_no_buffer,
                                d.net.stats.rx_dropped_too_big});
    stats_add_backend(s, d.net.stats.backend);
    stats_add_net(s, d.net.stats);
    s.add_u64("device.ctrl.commands", "count", stat_better::neutral, "control queue commands answered", d.net.stats.ctrl_commands);
    s.add_u64("device.ctrl.ok", "count", stat_better::higher, "control queue commands answered VIRTIO_NET_OK", d.net.stats.ctrl_ok);
    s.add_u64("device.ctrl.err", "count", stat_better::lower, "control queue commands answered VIRTIO_NET_ERR", d.net.stats.ctrl_err);
    s.add_u64("device.interrupts_raised", "count", stat_better::lower, "used buffer notifications the device decided to send", d.tp.stats.interrupts_raised);
    s.add_u64("device.config_interrupts", "count", stat_better::neutral, "configuration change notifications", d.tp.stats.config_interrupts);
    s.add_u64("device.msix_sent", "count", stat_better::lower, "MSI-X messages written", dev.msi_sent);
    s.add_u64("device.msix_pended", "count", stat_better::lower, "MSI-X messages held pending by a mask", d.tp.msix.stats.pended);
    s.add_u64("device.intx_asserts", "count", stat_better::lower,
              "times the function asserted its legacy INTx pin (INTA#; 0 while MSI-X is enabled)",
              d.tp.stats.intx_asserts);
    s.add_u64("device.intx_deasserts", "count", stat_better::neutral,
              "times the function deasserted its INTx pin (an ISR status read, Interrupt Disable, "
              "MSI-X Enable or a reset)", d.tp.stats.intx_deasserts);
    // Every vector of a one-pair device's table; of a larger table (one vector per queue
    // of 2N + 1), the vectors that carried messages.
    for (unsigned v = 0; v < d.tp.msix.nvec; v++)
        if (v <= VNET_QUEUES || dev.msi_per_vector[v] != 0)
            s.add_u64("device.msix.vector." + std::to_string(v) + ".messages", "count", stat_better::lower,
                      v == 0 ? "MSI-X messages on vector 0 (the reference driver's configuration vector)"
                             : "MSI-X messages on this vector (the reference driver uses 1 + queue index)",
                      dev.msi_per_vector[v]);
    stats_add_device_dma(s, d.tp.stats.dma_reads, d.tp.stats.dma_writes, d.tp.stats.dma_read_bytes,
                         d.tp.stats.dma_write_bytes);
    s.add_u64("device.dma.blocked", "count", stat_better::lower, "DMA refused because bus mastering was off", d.tp.stats.dma_blocked);
    s.add_u64("device.resets", "count", stat_better::lower, "device resets by the driver", d.tp.stats.resets);
    if (d.tp.error != VS_REASON_NONE) {
        s.add_u64("device.error.reason", "code", stat_better::neutral,
                  std::string("vs_reason code of DEVICE_NEEDS_RESET: ") + vs_reason_name(d.tp.error) +
                      " (" + vs_reason_text(d.tp.error) + ")",
                  d.tp.error);
        s.add_u64("device.error.queue", "queue", stat_better::neutral,
                  "queue being processed when the device needed a reset (65535: none)", d.tp.error_queue);
    }
    // Pair 1 and the control queue always; pairs 2..N (device.queue.rx2.*, tx2.*, ...)
    // only when the driver put one of their queues in service, so stats.json grows with
    // the pairs used, not the pairs offered.
    // The control queue where the features negotiated put it ("Network Device /
    // Virtqueues": 2N); the last queue, when it is not, is no queue of the device.
    const unsigned nq = d.tp.num_queues;
    const unsigned ctrl = vnet_ctrl_queue(&d.net);
    for (unsigned q : stats_queue_order(nq, ctrl)) {
        if (q >= 2 && q != ctrl &&
            (q + 1 == nq || (!dev.queue_started(uint16_t(q & ~1u)) &&
                             !dev.queue_started(uint16_t(q | 1u)))))
            continue;
        const std::string n = "device.queue." + stats_queue_label(q, nq, ctrl);
        s.add_u64(n + ".kicks", "count", stat_better::lower, "notifications received for this queue", d.tp.q[q].kicks);
        s.add_u64(n + ".wakeups", "count", stat_better::neutral, "times the queue's engine woke from sleep", dev.engine_wakeups[q]);
        s.add_f64(n + ".busy_ns", "ns", stat_better::lower, "device clock time the engine spent on this queue",
                  dev.engine_busy[q].to_seconds() * 1e9);
        stats_add_event_reads(s, n, d.tp.stats.event_reads_link[q], d.tp.stats.event_reads_local[q]);
        stats_add_ring(s, n, pt_ring_stats(&d.tp, uint16_t(q)));
        s.add_f64(n + ".in_flight_mean", "buffers", stat_better::neutral,
                  "buffers of this queue between take and finish, time-averaged over the run",
                  sim_ns > 0 ? dev.in_flight_area_ps[q] / (sim_ns * 1000.0) : 0.0);
        s.add_u64(n + ".in_flight_max", "buffers", stat_better::neutral, "most buffers of this queue in flight at once",
                  dev.in_flight_max[q]);
        if (q == ctrl)
            continue; // coalescing applies to transmit and receive queues only
        s.add_u64(n + ".coal.notify_by_packets", "count", stat_better::lower,
                  "used buffer notifications sent under coalescing because max_packets buffers were counted",
                  d.net.stats.coal_notify[q][VNET_COAL_BY_PACKETS]);
        s.add_u64(n + ".coal.notify_by_timer", "count", stat_better::lower,
                  "used buffer notifications sent under coalescing because max_usecs elapsed",
                  d.net.stats.coal_notify[q][VNET_COAL_BY_TIMER]);
        s.add_u64(n + ".coal.notify_by_change", "count", stat_better::lower,
                  "used buffer notifications sent at once because new coalescing parameters met the conditions",
                  d.net.stats.coal_notify[q][VNET_COAL_BY_CHANGE]);
        s.add_u64(n + ".coal.suppressed", "count", stat_better::higher,
                  "coalescing conditions met but the driver's event suppression declined the notification",
                  d.net.stats.coal_suppressed[q]);
        s.add_u64(n + ".coal.timer_arms", "count", stat_better::neutral,
                  "counting windows a max_usecs timer was started for", dev.coal_timer_arms[q]);
        s.add_u64(n + ".coal.timer_expiries", "count", stat_better::neutral,
                  "max_usecs timers that ended before max_packets was reached", dev.coal_timer_expiries[q]);
    }
    if (nq > VNET_QUEUES) {
        // Several pairs offered (device.queue_pairs_count > 1): how many the driver used,
        // and what the device ran for them.
        unsigned started = 0;
        for (unsigned q = 0; q + 1 < nq; q += 2) // the control queue is no pair's
            started += (q != ctrl && dev.queue_started(uint16_t(q))) ||
                       dev.queue_started(uint16_t(q + 1));
        s.add_u64("device.queue_pairs.offered", "pairs", stat_better::neutral,
                  "queue pairs the device offered (max_virtqueue_pairs)", d.net.pairs_max);
        s.add_u64("device.queue_pairs.used", "pairs", stat_better::neutral,
                  "queue pairs the driver put a queue of in service during the run (pair 1 "
                  "counts always); their rows are device.queue.rx<k>.* and tx<k>.*",
                  started);
        s.add_u64("device.processes", "count", stat_better::neutral,
                  "SystemC processes the device started: queue engines, coalescing timers, "
                  "the MSI-X sender (pairs 2..N only once used)",
                  dev.processes());
    }
    s.add_u64("device.event_suppression.slot_writes", "count", stat_better::lower,
              "driver writes taken into the device-memory suppression slots", d.tp.stats.devmem_event_writes);
    s.add_u64("device.event_suppression.slot_writes_ignored", "count", stat_better::lower,
              "writes to the device-memory suppression window while the extension was not "
              "negotiated (ignored)", d.tp.stats.devmem_event_writes_ignored);
    s.add_u64("device.event_suppression.recheck_interrupts", "count", stat_better::lower,
              "used buffer notifications decided when a slot write arrived "
              "(VIOSIM_NET_F_DEVMEM_EVENT_RECHECK; part of device.interrupts_raised)",
              d.tp.stats.devmem_event_recheck_interrupts);
    add_time_to_interrupt_stats(s, dev);
}

void stats_add_device_platform(stats_table &s, const device_platform &p, double sim_ns,
                               uint64_t violations_total)
{
    stats_add_device(s, p.dev, sim_ns);
    stats_add_link_dma(s, p, sim_ns);
    stats_add_iommu(s, p.rc, p.dev.dma_stats());
    stats_add_violations(s, violations_total);
}

void stats_add_violations(stats_table &s, uint64_t violations_total)
{
    s.add_u64("conformance.violations", "count", stat_better::lower,
              "driver-conformance violations the device observed (docs/conformance.md)", violations_total);
}

} // namespace viosim
