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
#include "device_platform.h"
#include "host_cpu.h"
#include "trace.h"

extern "C" {
#include "iopt.h"
}

namespace viosim {

using sc_core::sc_time;
using sc_core::SC_NS;
using sc_core::SC_PS;

namespace {

// The device side and the host CPU that runs the reference driver.
struct platform : device_platform {
    host_cpu cpu;

    explicit platform(const vs_config &cfg)
        : device_platform(cfg),
          cpu("cpu", cpu_costs_of(cfg.cpu, cfg.sim), cfg.drv, mem.data(), mem.base(), mem.size(),
              !cfg.bench.enabled)
    {
        cpu.memory = &mem;
        connect_host(cpu.mmio, cpu.msi_in);
        cpu.iommu_set_root = [this](uint32_t pasid, uint64_t root) {
            return iommu_set_root(pasid, root);
        };
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
    return p.iommu_set_root(0, pt.root);
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
    stats_add_link_dma(s, p, ns);
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
    s.add_f64("per_packet.tlps", "count", stat_better::lower,
              "PCIe TLPs in both directions per transmitted frame (0 without a link: "
              "software device profile)", double(p->link_tlps()) / frames);
    s.add_f64("per_packet.cpu_ns", "ns", stat_better::lower, "CPU time charged to the driver per transmitted frame",
              cpu.busy.to_seconds() * 1e9 / frames);
    stats_add_device_platform(s, *p, sim_ns, r.violations_total);
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

// The driver-conformance record: the first violations in order, and counts per rule.
void collect_violations(run_result &r, const vs_conformance &c)
{
    r.violations_total = c.total;
    r.violations = conformance_first(c);
    r.violations_by_rule = conformance_by_rule(c);
}

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

} // namespace viosim
