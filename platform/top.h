// top.h -- build the platform from a configuration, run it, collect results.
#ifndef VIOSIM_TOP_H
#define VIOSIM_TOP_H

#include <string>
#include <vector>

#include "config.h"
#include "stats.h"
#include "trace.h"

struct vs_conformance;

namespace viosim {

struct run_result {
    bool completed;              // the workload finished (not stopped by the time limit)
    std::string driver_result;   // refdrv_result_name()
    std::string device_error;    // vs_reason_name() if the device needed a reset, else ""
    vs_features negotiated_features{}; // the driver's features once FEATURES_OK was accepted
    stats_table stats;           // every counter, in registration order
    std::vector<std::pair<std::string, std::string>> summary; // label -> formatted value, for the table
    uint64_t violations_total = 0;             // driver-conformance violations seen
    std::vector<violation_record> violations;  // the first ones, in order (VS_CONF_LOG)
    std::vector<std::pair<std::string, uint64_t>> violations_by_rule; // rules broken, with counts
};

// Output options of one run (not parameters: they do not change the simulation).
struct run_options {
    std::string trace_path; // non-empty: write a Chrome/Perfetto timeline there
    bool strict = false;    // stop the simulation at the first conformance violation
    trace_window trace_span; // the stretch of simulated time the timeline keeps
    std::string vcd_path;    // non-empty (ends in .vcd): write the counters as VCD waveforms
};

// The driver-conformance record into r: the first violations in order, counts per rule.
void collect_violations(run_result &r, const struct vs_conformance &c);

// Runs one simulation. SystemC allows one elaboration per process, so call once.
run_result vs_run(const vs_config &cfg, const run_options &opt = run_options());

} // namespace viosim

#endif
