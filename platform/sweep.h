// sweep.h -- `viosim sweep`: a parameter grid run as independent `viosim run` processes.
//
// A study file (JSON) names a base config, a grid of values per key (lists or ranges, the
// cartesian product, optionally zipped keys) and the metrics to collect. Every point is
// checked with the same rules as `viosim run --set` before anything runs; the points then
// run in parallel as forked child processes, each into DIR/points/<index>, and
// DIR/results.csv gets one row per point in point order. See docs/sweeps.md.
#ifndef VIOSIM_SWEEP_H
#define VIOSIM_SWEEP_H

namespace viosim {

// `viosim run`'s entry point (argv[1] is "run"), returning its exit status.
using run_command = int (*)(int argc, char **argv);

// Runs `viosim sweep ...` (argv[1] is "sweep"). Each point is a forked child that calls
// `run` with the point's `viosim run` arguments: no exec, so the dynamic linker and
// SystemC's static initialisation are paid once per sweep, not once per point.
// Exit status: 0 every point ok; 1 a point failed (the others still ran); 2 usage or
// study error (nothing was created or run).
int sweep_main(int argc, char **argv, run_command run);

} // namespace viosim

#endif
