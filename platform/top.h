// top.h -- build the platform from a configuration, run it, collect results.
#ifndef VIOSIM_TOP_H
#define VIOSIM_TOP_H

#include <string>
#include <vector>

#include "config.h"
#include "stats.h"
#include "trace.h"

struct run_result {
    bool completed;              // the workload finished (not stopped by the time limit)
    std::string driver_result;   // refdrv_result_name()
    std::string device_error;    // vs_reason_name() if the device needed a reset, else ""
    stats_table stats;           // every counter, in registration order
    std::vector<std::pair<std::string, std::string>> summary; // label -> formatted value, for the table
};

// Output options of one run (not parameters: they do not change the simulation).
struct run_options {
    std::string trace_path; // non-empty: write a Chrome/Perfetto timeline there
    trace_window trace_span; // the stretch of simulated time the timeline keeps
};

// Runs one simulation. SystemC allows one elaboration per process, so call once.
run_result vs_run(const vs_config &cfg, const run_options &opt = run_options());

#endif
