// compare.h -- `viosim compare BASE CUR`: what moved between two sets of results.
//
// BASE and CUR are each a sweep output directory (DIR/study.json, DIR/points/<i>/point.json
// and stats.json) or one stats.json file. Points are joined on their grid values, not on
// their index; every statistic both sides have is compared against a threshold in the
// direction its row declares ("better": higher, lower or neutral). Outputs: a terminal
// table (regressions first), Markdown, JUnit XML, JSON and an HTML page. See
// docs/regression.md, section "viosim compare".
#ifndef VIOSIM_COMPARE_H
#define VIOSIM_COMPARE_H

namespace viosim {

// Runs `viosim compare ...` (argv[1] is "compare"). Exit status: 0 nothing regressed; 1
// something regressed; 2 usage or input error (unreadable or malformed input, points
// that do not match, an unknown metric, a bad threshold), reported on one line.
int compare_main(int argc, char **argv);

} // namespace viosim

#endif
