// top.cpp -- builds the platform from a configuration, runs it, collects statistics.
//
//   host_cpu.mmio --> pcie_link.down_in   pcie_link.down_out --> device.target
//   device.dma --> pcie_link.up_in        pcie_link.up_out --> root_complex
//   root_complex.to_memory --> host_memory   root_complex.to_intc --> host_cpu.msi_in
#include "top.h"

#include <stdexcept>

#include <algorithm>
#include <cstdio>
#include <memory>

#include <systemc>
#include <tlm>

#include "address_map.h"
#include "host_cpu.h"
#include "host_memory.h"
#include "pcie_link.h"
#include "root_complex.h"
#include "smp_interconnect.h"
#include "trace.h"
#include "virtio_device_tlm.h"

extern "C" {
#include "iopt.h"
}

using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_PS;

namespace {

struct platform {
    host_memory mem;
    // Exactly one of the two: the PCIe link (hardware device) or the cache-coherent
    // interconnect of the software-device profile.
    std::unique_ptr<pcie_link> link;
    std::unique_ptr<smp_interconnect> smp;
    root_complex rc;
    virtio_device_tlm dev;
    host_cpu cpu;

    // Each module from its own parameter group and the timing derived from it.
    explicit platform(const vs_config &cfg)
        : mem("memory", amap::memory_base, cfg.memory.size_mib << 20,
              sc_time(cfg.memory.latency_ns, SC_NS), sc_time(cfg.memory.read_ps_per_byte, SC_PS)),
          rc("root_complex", iommu_config_of(cfg.iommu, cfg.seed), iommu_timing_of(cfg.iommu)),
          dev("device", cfg.dev, device_timing_of(cfg), dma_bench_setup_of(cfg)),
          cpu("cpu", cpu_costs_of(cfg.cpu, cfg.sim), cfg.drv, mem.data(), mem.base(), mem.size(),
              !cfg.bench.enabled)
    {
        cpu.memory = &mem;
        if (cfg.software.enabled) {
            smp.reset(new smp_interconnect("smp", smp_timing_of(cfg.software), amap::msi_base,
                                           amap::msi_size));
            cpu.mmio.bind(smp->down_in);
            smp->down_out.bind(dev.target);
            dev.dma.bind(smp->up_in);
            smp->up_out.bind(rc.from_link);
        } else {
            const pcie_link_timing lt = pcie_link_timing_of(cfg.pcie, cfg.memory);
            link.reset(new pcie_link("link", lt.link, sc_time(lt.read_fixed_ns, SC_NS)));
            cpu.mmio.bind(link->down_in);
            link->down_out.bind(dev.target);
            dev.dma.bind(link->up_in);
            link->up_out.bind(rc.from_link);
        }
        rc.to_memory.bind(mem.socket);
        rc.to_intc.bind(cpu.msi_in);
        // Host software programs whichever IOMMU translates (the root complex's, or the
        // device's own with iommu.walk_location = device).
        const bool in_device = cfg.iommu.in_device;
        cpu.iommu_set_root = [this, in_device](uint32_t pasid, uint64_t root) {
            return in_device ? dev.iommu_set_root(pasid, root) : rc.iommu_set_root(pasid, root);
        };
        rc.on_invalidate = [this](uint32_t pasid) { dev.ats_invalidate(pasid); };
        // Legacy INTx (device.msix = off): the function's INTA# pin, wired to the CPU's
        // interrupt controller.
        dev.on_intx = [this](bool level, const sc_time &at) { cpu.intx_changed(level, at); };
    }
};

// v with `decimals` digits after the point.
std::string fixed(double v, int decimals)
{
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

void add_direction(stats_table &s, const std::string &n, const char *what, const link_direction &d,
                   double sim_ns)
{
    stats_add_link_direction(s, n, what, d.tlps, d.payload_bytes, d.overhead_bytes,
                             d.busy.to_seconds() * 1e9, sim_ns);
}

void add_link_dma_stats(stats_table &s, platform &p, double sim_ns)
{
    // The software profile has no link: its rows read zero.
    const link_direction none;
    add_direction(s, "link.up", "device to host", p.link ? p.link->up : none, sim_ns);
    add_direction(s, "link.down", "host to device", p.link ? p.link->down : none, sim_ns);
    stats_add_dma_engine(s, p.dev.dma_stats(), p.dev.arbiter(), sim_ns,
                         vnet_ctrl_queue(&p.dev.kernel().net));
}

// As host software would for the benchmark: map the window [0, W) at the driver's
// IOVA offset in PASID 0, page tables in memory right after the window, and point
// whichever IOMMU translates (iommu.walk_location) at them.
bool map_bench_window(platform &p, const vs_config &cfg)
{
    const uint64_t page = cfg.drv.iommu_page_bytes;
    const uint64_t window = (cfg.bench.window_bytes + page - 1) / page * page;
    const uint64_t tables = (window / 4096 / 512 + 8) * 4096; // leaf tables + upper levels
    if (window + tables > p.mem.size())
        return false;
    iopt_pool pool;
    iopt_pool_init(&pool, p.mem.base() + window, tables);
    iopt pt;
    if (iopt_init(&pt, p.mem.data(), p.mem.base(), p.mem.size(), &pool) != IOPT_OK)
        return false;
    if (iopt_map(&pt, p.mem.base() + cfg.drv.iova_offset, p.mem.base(), window, page, true) != IOPT_OK)
        return false;
    return cfg.iommu.in_device ? p.dev.iommu_set_root(0, pt.root)
                                 : p.rc.iommu_set_root(0, pt.root);
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


// The driver-conformance record: the first violations in order, and counts per rule.
void collect_violations(run_result &r, const vs_conformance &c)
{
    r.violations_total = c.total;
    for (uint32_t i = 0; i < c.logged; i++) {
        const vs_violation &v = c.log[i];
        r.violations.push_back({double(v.when) / 1e3, vs_rule_name(v.rule), vs_rule_section(v.rule),
                                vs_rule_text(v.rule),
                                v.reason != VS_REASON_NONE ? vs_reason_name(v.reason) : "",
                                v.queue == 0xffff ? -1 : int(v.queue), v.seen, v.expected});
    }
    for (unsigned rule = 0; rule < VS_RULE_COUNT; rule++)
        if (c.per_rule[rule])
            r.violations_by_rule.emplace_back(vs_rule_name(vs_rule(rule)), c.per_rule[rule]);
}

// The DMA microbenchmark's results.
run_result collect_bench(platform &p, const vs_config &cfg)
{
    run_result r;
    const virtio_device_tlm &dev = p.dev;
    r.completed = dev.bench_done;
    r.driver_result = dev.bench_done ? refdrv_result_name(REFDRV_OK) : "TIME_LIMIT";
    const sc_time elapsed = dev.bench_done ? dev.bench_end - dev.bench_start : sc_core::sc_time_stamp();
    const double ns = elapsed.to_seconds() * 1e9;
    stats_table &s = r.stats;
    s.add_f64("sim.time_ns", "ns", stat_better::lower, "simulated time from the first transfer to the last data", ns);
    s.add_u64("bench.transfers", "count", stat_better::neutral, "benchmark transfers done", cfg.bench.transfers_count);
    s.add_u64("bench.bytes", "bytes", stat_better::neutral, "payload bytes moved (each way for read_write)", dev.bench_bytes);
    const double gbps = ns > 0 ? dev.bench_bytes * 8.0 / ns : 0.0;
    s.add_f64("bench.bandwidth_gbps", "Gb/s", stat_better::higher, "effective payload bandwidth (per direction for read_write)", gbps);
    const double steady_ns = (dev.bench_end - dev.bench_first_done).to_seconds() * 1e9;
    s.add_f64("bench.steady_bandwidth_gbps", "Gb/s", stat_better::higher,
              "payload bandwidth from the first transfer's completion to the last's (start-up "
              "latency excluded)",
              steady_ns > 0 ? (dev.bench_bytes - cfg.bench.transfer_bytes) * 8.0 / steady_ns : gbps);
    s.add_f64("bench.transfers_per_us", "count", stat_better::higher, "transfers completed per simulated microsecond",
              ns > 0 ? cfg.bench.transfers_count * 1000.0 / ns : 0.0);
    add_link_dma_stats(s, p, ns);
    stats_add_iommu(s, p.rc, p.dev.dma_stats());

    static const char *const ops[] = {"read", "write", "read_write"};
    auto &sum = r.summary;
    sum.emplace_back("workload", std::string("dma_bench ") + ops[cfg.bench.op % 3] + " of " +
                                     std::to_string(cfg.bench.transfer_bytes) + " B");
    sum.emplace_back("result", r.driver_result);
    sum.emplace_back("simulated time", fixed(ns / 1000.0, 3) + " us");
    sum.emplace_back("effective bandwidth", fixed(gbps, 3) + " Gb/s");
    sum.emplace_back("read latency p50 / p99", fixed(s.find("dma.read_latency.p50_ns")->f64, 1) + " / " +
                                                   fixed(s.find("dma.read_latency.p99_ns")->f64, 1) + " ns");
    sum.emplace_back("read tags mean / max", fixed(s.find("dma.tags.mean_in_flight")->f64, 2) + " / " +
                                                 std::to_string(p.dev.dma_stats().max_tags_in_flight));
    sum.emplace_back("link utilisation up / down",
                     fixed(s.find("link.up.utilisation")->f64 * 100, 1) + " % / " +
                         fixed(s.find("link.down.utilisation")->f64 * 100, 1) + " %");
    return r;
}

// The virtio-net workload's results: every module's statistics and the summary table.
run_result collect_run(platform *p)
{
    run_result r;
    const host_cpu &cpu = p->cpu;
    const vdev &d = p->dev.kernel();
    collect_violations(r, d.tp.vpci.conf);
    const refdrv_stats &ds = cpu.stats;
    r.completed = cpu.done();
    r.driver_result = cpu.done() ? refdrv_result_name(cpu.result) : "TIME_LIMIT";
    r.device_error = d.tp.error != VS_REASON_NONE ? vs_reason_name(d.tp.error) : "";
    r.negotiated_features = p->dev.negotiated_features;

    const sc_time end = cpu.done() ? cpu.finish_time : sc_core::sc_time_stamp();
    const double sim_ns = end.to_seconds() * 1e9;
    const double sim_s = end.to_seconds();
    const uint64_t frames = std::max<uint64_t>(ds.tx_frames, 1);

    const hist &lat = *cpu.latency;
    const double p50 = hist_percentile_ns(lat, 0.50), p99 = hist_percentile_ns(lat, 0.99);
    const double pmax = lat.count == 0 ? 0.0 : lat.max / 1000.0;

    uint64_t dma_reads = 0, dma_writes = 0;
    for (int k = 0; k < VS_DMA_KIND_COUNT; k++) {
        dma_reads += d.tp.stats.dma_reads[k];
        dma_writes += d.tp.stats.dma_writes[k];
    }

    stats_table &s = r.stats;
    s.add_f64("sim.time_ns", "ns", stat_better::lower, "simulated time until the driver finished", sim_ns);
    stats_add_driver_frames(s, ds);
    s.add_f64("throughput.tx_mpps", "Mpps", stat_better::higher, "transmitted frames per simulated microsecond",
              sim_s > 0 ? ds.tx_frames / sim_s / 1e6 : 0.0);
    s.add_f64("throughput.tx_gbps", "Gb/s", stat_better::higher, "transmitted frame bits per simulated nanosecond",
              sim_ns > 0 ? ds.tx_bytes * 8.0 / sim_ns : 0.0);
    s.add_f64("throughput.rx_mpps", "Mpps", stat_better::higher, "received frames per simulated microsecond",
              sim_s > 0 ? ds.rx_frames / sim_s / 1e6 : 0.0);
    s.add_f64("throughput.rx_gbps", "Gb/s", stat_better::higher, "received frame bits per simulated nanosecond",
              sim_ns > 0 ? ds.rx_bytes * 8.0 / sim_ns : 0.0);
    s.add_u64("latency.samples", "frames", stat_better::neutral, "frames with a TX-post to RX-reap latency sample", lat.count);
    s.add_f64("latency.p50_ns", "ns", stat_better::lower, "median TX-post to RX-reap latency", p50);
    s.add_f64("latency.p99_ns", "ns", stat_better::lower, "99th percentile TX-post to RX-reap latency", p99);
    s.add_f64("latency.max_ns", "ns", stat_better::lower, "largest TX-post to RX-reap latency", pmax);
    stats_add_driver_work(s, ds);
    s.add_f64("per_packet.interrupts", "count", stat_better::lower, "interrupts per transmitted frame", double(ds.interrupts) / frames);
    s.add_f64("per_packet.notifications", "count", stat_better::lower, "driver notifications per transmitted frame", double(ds.notifications) / frames);
    s.add_f64("per_packet.dma_reads", "count", stat_better::lower, "device DMA reads per transmitted frame", double(dma_reads) / frames);
    s.add_f64("per_packet.dma_writes", "count", stat_better::lower, "device DMA writes per transmitted frame", double(dma_writes) / frames);
    {
        uint64_t tlps = 0;
        if (p->link)
            for (int t = 0; t < 4; t++)
                tlps += p->link->up.tlps[t] + p->link->down.tlps[t];
        s.add_f64("per_packet.tlps", "count", stat_better::lower,
                  "PCIe TLPs in both directions per transmitted frame (0 without a link: "
                  "software device profile)", double(tlps) / frames);
    }
    s.add_f64("per_packet.cpu_ns", "ns", stat_better::lower, "CPU time charged to the driver per transmitted frame",
              cpu.busy.to_seconds() * 1e9 / frames);
    stats_add_device_frames(s, {d.net.stats.tx_frames, d.net.stats.rx_frames, d.net.stats.rx_no_buffer,
                                d.net.stats.rx_dropped_too_big});
    stats_add_backend(s, d.net.stats.backend);
    stats_add_net(s, d.net.stats);
    s.add_u64("device.ctrl.commands", "count", stat_better::neutral, "control queue commands answered", d.net.stats.ctrl_commands);
    s.add_u64("device.ctrl.ok", "count", stat_better::higher, "control queue commands answered VIRTIO_NET_OK", d.net.stats.ctrl_ok);
    s.add_u64("device.ctrl.err", "count", stat_better::lower, "control queue commands answered VIRTIO_NET_ERR", d.net.stats.ctrl_err);
    s.add_u64("device.interrupts_raised", "count", stat_better::lower, "used buffer notifications the device decided to send", d.tp.stats.interrupts_raised);
    s.add_u64("device.config_interrupts", "count", stat_better::neutral, "configuration change notifications", d.tp.stats.config_interrupts);
    s.add_u64("device.msix_sent", "count", stat_better::lower, "MSI-X messages written", p->dev.msi_sent);
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
        if (v <= VNET_QUEUES || p->dev.msi_per_vector[v] != 0)
            s.add_u64("device.msix.vector." + std::to_string(v) + ".messages", "count", stat_better::lower,
                      v == 0 ? "MSI-X messages on vector 0 (the reference driver's configuration vector)"
                             : "MSI-X messages on this vector (the reference driver uses 1 + queue index)",
                      p->dev.msi_per_vector[v]);
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
            (q + 1 == nq || (!p->dev.queue_started(uint16_t(q & ~1u)) &&
                             !p->dev.queue_started(uint16_t(q | 1u)))))
            continue;
        const std::string n = "device.queue." + stats_queue_label(q, nq, ctrl);
        s.add_u64(n + ".kicks", "count", stat_better::lower, "notifications received for this queue", d.tp.q[q].kicks);
        s.add_u64(n + ".wakeups", "count", stat_better::neutral, "times the queue's engine woke from sleep", p->dev.engine_wakeups[q]);
        s.add_f64(n + ".busy_ns", "ns", stat_better::lower, "device clock time the engine spent on this queue",
                  p->dev.engine_busy[q].to_seconds() * 1e9);
        stats_add_event_reads(s, n, d.tp.stats.event_reads_link[q], d.tp.stats.event_reads_local[q]);
        stats_add_ring(s, n, pt_ring_stats(&d.tp, uint16_t(q)));
        s.add_f64(n + ".in_flight_mean", "buffers", stat_better::neutral,
                  "buffers of this queue between take and finish, time-averaged over the run",
                  sim_ns > 0 ? p->dev.in_flight_area_ps[q] / (sim_ns * 1000.0) : 0.0);
        s.add_u64(n + ".in_flight_max", "buffers", stat_better::neutral, "most buffers of this queue in flight at once",
                  p->dev.in_flight_max[q]);
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
                  "counting windows a max_usecs timer was started for", p->dev.coal_timer_arms[q]);
        s.add_u64(n + ".coal.timer_expiries", "count", stat_better::neutral,
                  "max_usecs timers that ended before max_packets was reached", p->dev.coal_timer_expiries[q]);
    }
    if (nq > VNET_QUEUES) {
        // Several pairs offered (device.queue_pairs_count > 1): how many the driver used,
        // and what the device ran for them.
        unsigned started = 0;
        for (unsigned q = 0; q + 1 < nq; q += 2) // the control queue is no pair's
            started += (q != ctrl && p->dev.queue_started(uint16_t(q))) ||
                       p->dev.queue_started(uint16_t(q + 1));
        s.add_u64("device.queue_pairs.offered", "pairs", stat_better::neutral,
                  "queue pairs the device offered (max_virtqueue_pairs)", d.net.pairs_max);
        s.add_u64("device.queue_pairs.used", "pairs", stat_better::neutral,
                  "queue pairs the driver put a queue of in service during the run (pair 1 "
                  "counts always); their rows are device.queue.rx<k>.* and tx<k>.*",
                  started);
        s.add_u64("device.processes", "count", stat_better::neutral,
                  "SystemC processes the device started: queue engines, coalescing timers, "
                  "the MSI-X sender (pairs 2..N only once used)",
                  p->dev.processes());
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
    add_time_to_interrupt_stats(s, p->dev);
    add_link_dma_stats(s, *p, sim_ns);
    stats_add_iommu(s, p->rc, p->dev.dma_stats());
    s.add_u64("conformance.violations", "count", stat_better::lower,
              "driver-conformance violations the device observed (docs/conformance.md)", r.violations_total);
    s.add_u64("cpu.intx_interrupts", "count", stat_better::lower,
              "interrupts the CPU took on the asserted INTx line (part of driver.interrupts' waits)",
              cpu.intx_taken);
    s.add_f64("cpu.busy_ns", "ns", stat_better::lower, "CPU time charged to the driver, summed over the host.cpus_count CPUs", cpu.busy.to_seconds() * 1e9);
    s.add_f64("cpu.utilisation", "fraction", stat_better::neutral, "CPU busy time over simulated time, summed over the host.cpus_count CPUs (so at most that count)",
              sim_ns > 0 ? cpu.busy.to_seconds() * 1e9 / sim_ns : 0.0);

    auto &sum = r.summary;
    sum.emplace_back("simulated time", fixed(sim_ns / 1000.0, 3) + " us");
    sum.emplace_back("driver result", r.driver_result);
    if (!r.device_error.empty())
        sum.emplace_back("device error", r.device_error);
    sum.emplace_back("tx frames / bytes", std::to_string(ds.tx_frames) + " / " + std::to_string(ds.tx_bytes));
    sum.emplace_back("rx frames / bytes", std::to_string(ds.rx_frames) + " / " + std::to_string(ds.rx_bytes));
    sum.emplace_back("tx throughput", fixed(s.find("throughput.tx_mpps")->f64, 3) + " Mpps, " + fixed(s.find("throughput.tx_gbps")->f64, 3) + " Gb/s");
    sum.emplace_back("rx throughput", fixed(s.find("throughput.rx_mpps")->f64, 3) + " Mpps, " + fixed(s.find("throughput.rx_gbps")->f64, 3) + " Gb/s");
    sum.emplace_back("latency p50 / p99 / max", fixed(p50, 1) + " / " + fixed(p99, 1) + " / " + fixed(pmax, 1) + " ns");
    sum.emplace_back("conformance violations", std::to_string(r.violations_total));
    for (size_t i = 0; i < r.violations.size() && i < 3; i++)
        sum.emplace_back("  at " + fixed(r.violations[i].time_ns, 1) + " ns",
                         r.violations[i].rule +
                             (r.violations[i].reason.empty() ? "" : " (" + r.violations[i].reason + ")") +
                             ": " + r.violations[i].text);
    sum.emplace_back("interrupts per packet", fixed(double(ds.interrupts) / frames, 3));
    sum.emplace_back("notifications per packet", fixed(double(ds.notifications) / frames, 3));
    sum.emplace_back("DMA reads / writes per packet", fixed(double(dma_reads) / frames, 2) + " / " + fixed(double(dma_writes) / frames, 2));
    sum.emplace_back("link utilisation up / down",
                     fixed(s.find("link.up.utilisation")->f64 * 100, 1) + " % / " +
                         fixed(s.find("link.down.utilisation")->f64 * 100, 1) + " %");
    return r;
}

} // namespace

run_result vs_run(const vs_config &cfg, const run_options &opt)
{
    sc_core::sc_set_time_resolution(1, SC_PS);
    // The driver ends the run with sc_stop(); that is not news to the user.
    sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
    tlm_utils::tlm_quantumkeeper::set_global_quantum(sc_time(cfg.sim.quantum_ns, SC_NS));

    // Build.
    auto p = std::make_unique<platform>(cfg);
    if (cfg.bench.enabled && cfg.bench.iommu && !map_bench_window(*p, cfg)) {
        run_result r;
        r.completed = false;
        r.driver_result = refdrv_result_name(REFDRV_NO_MEMORY);
        r.summary.emplace_back("result", "host memory too small for the benchmark's page tables");
        return r;
    }
    std::unique_ptr<trace_recorder> trace;
    std::unique_ptr<trace_counters> counters;
    if (!opt.trace_path.empty()) {
        trace.reset(new trace_recorder(opt.trace_path, opt.trace_span));
        if (!trace->ok())
            throw std::runtime_error("cannot write the trace file " + opt.trace_path);
        p->rc.set_trace(trace.get());
        if (p->link) {
            p->link->up.trace = p->link->down.trace = trace.get();
            p->link->up.track = TRACE_LINK_UP;
            p->link->down.track = TRACE_LINK_DOWN;
        }
    }
    if (trace || !opt.vcd_path.empty()) {
        counters.reset(new trace_counters("counters", trace.get(), opt.vcd_path));
        if (!counters->ok())
            throw std::runtime_error("cannot write the VCD file " + opt.vcd_path);
    }
    if (counters)
        p->dev.set_trace(trace.get(), counters.get());
    if (opt.strict)
        p->dev.on_violation = [cpu = &p->cpu] { cpu->request_stop(); };

    // Run.
    sc_core::sc_start(sc_time(cfg.sim.time_limit_us * 1000.0, SC_NS));
    if (counters)
        counters->finish();

    // Collect.
    return cfg.bench.enabled ? collect_bench(*p, cfg) : collect_run(p.get());
}

