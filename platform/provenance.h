// provenance.h -- which viosim produced a result, and from which configuration: the
// "provenance" object of stats.json and of a sweep's point.json (docs/statistics.md,
// docs/sweeps.md). It sits apart from the results so tools comparing numbers can drop it.
#ifndef VIOSIM_PROVENANCE_H
#define VIOSIM_PROVENANCE_H

#include <string>

struct json_t; // jansson

namespace viosim {

struct vs_config;

// The build's identity, generated at every build by cmake/viosim-version.cmake:
// version "<project version>+<first 12 hex digits of the commit>", followed by
// ".dirty.<16 hex digits>" (a fingerprint of the uncommitted changes) when the tree had
// any, or "<project version>+unknown" outside a git checkout.
extern const char build_version[];
extern const char git_commit[]; // 40 hex digits, or "unknown"
extern const char git_tree[];   // "clean", "dirty" or "unknown"

// Whether this build's version names its code (false when built outside a git checkout).
bool version_known();

// 64-bit FNV-1a (Fowler, Noll, Vo; offset basis 14695981039346656037, prime
// 2^40 + 2^8 + 0xb3) of bytes, as "fnv1a64:<16 hex digits>". A guard against accidents
// (a file edited, a setting changed), not against malice.
std::string fnv1a64_text(const std::string &bytes);

// The resolved configuration's hash: fnv1a64_text of the "config" object's text as
// stats.json writes it (config_resolved_json, flat, through stats_json_text).
std::string config_hash(const vs_config &cfg);

// {"version": build_version, "commit": git_commit, "dirty": true, false or
// null (unknown)}: which build, as a new object (caller owns the reference).
json_t *build_provenance_json();

// build_provenance_json() + {"config_hash"...}: the "provenance" object of stats.json.
// {"version": build_version, "commit": git_commit, "dirty": true, false
// or null (unknown), "config_hash": config_hash(cfg), "seed": sim.seed as the "config" object writes it}
// as a new object (caller owns the reference).
json_t *provenance_json(const vs_config &cfg);

} // namespace viosim

#endif
