// config.h -- the resolved configuration of one run, the parameter table that
// describes every key (name with unit, default, meaning), and its parsing.
#ifndef VIOSIM_CONFIG_H
#define VIOSIM_CONFIG_H

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "module_params.h"

extern "C" {
#include "refdrv.h"
#include "vdev.h"
}

struct json_t; // jansson

namespace viosim {

// The configuration of one run: one parameter group per module (module_params.h), the
// device kernel's and the reference driver's parameters, and the seed.
struct vs_config {
    pcie_link_params pcie;
    dma_engine_params dma;
    iommu_params iommu;
    software_params software;
    dma_bench_params bench;
    host_memory_params memory;
    host_cpu_params cpu;
    device_tlm_params device_tlm;
    sim_params sim;
    vdev_params dev;
    refdrv_params drv;
    uint64_t seed;
};

struct param_error {
    std::string key;      // the offending key ("" for file-level errors)
    std::string message;  // one line: what was wrong and what is allowed
};

// Every parameter: name (unit in the name), unit, default (as text), meaning.
struct param_info {
    std::string name;
    std::string unit;         // "" for unitless parameters
    std::string default_text;
    std::string meaning;
    std::string allowed;      // the allowed values, e.g. "one of 1, 2, 4, 8, 16"
};

// The text `--set key=TEXT` would take for a scalar JSON value (a string, or a number
// written exactly); false if the value is neither. Config files and studies use it.
bool config_scalar_text(const json_t *j, std::string &text);

// A comma-separated list, each item trimmed of spaces and tabs ("a, b" -> {"a", "b"};
// "" -> {""}). List values of parameters and of command-line options use it.
std::vector<std::string> config_split_list(const std::string &s);

// s with its control characters escaped (\n, \r, \t, \xHH): input echoed in an error
// message (a key, a value, a file name) keeps the message on one line.
std::string config_escaped(const std::string &s);

// A likely intended name among names for a name that is not one of them: the name plus
// its missing unit ("latency.p50" -> "latency.p50_ns"), or a near miss (fewer than three
// edits); "" if none. Unknown parameters and unknown statistics are answered with it.
std::string config_closest_name(const std::string &name, const std::vector<std::string> &names);

// Defaults for every parameter.
vs_config config_defaults();
// Apply a JSON config file (flat dotted keys or nested objects); false + err on error.
bool config_apply_file(vs_config &cfg, const std::string &path, param_error &err);
// Apply a JSON object given as text, as a config file's content would be (flat dotted
// keys or nested objects), whole or not at all; false + err on error.
bool config_apply_json(vs_config &cfg, const std::string &text, param_error &err);
// Apply one key=value (as given to --set); false + err on error.
bool config_apply_set(vs_config &cfg, const std::string &assignment, param_error &err);
// Cross-parameter checks (impossible combinations); false + err on error.
// qemu_proxy (viosim serve --qemu-proxy): device.msix=off and 32-bit BARs are required
// (QEMU's proxy delivers no MSI-X and sizes BARs as 32-bit) and msix=off is accepted.
bool config_validate(const vs_config &cfg, param_error &err, bool qemu_proxy = false);
// The parameter table, in display order.
std::vector<param_info> config_params();
// The resolved configuration as text per key, in table order (the same text --set accepts).
std::vector<std::pair<std::string, std::string>> config_resolved(const vs_config &cfg);
// The resolved configuration as a new JSON object (caller owns the reference), in table
// order, typed: integers and reals as JSON numbers, lists as arrays, ids ("0x1af4"),
// names and MAC as strings. Flat dotted keys ({"pcie.gen": 3}) for stats.json, or nested
// by section ({"pcie": {"gen": 3}}); either form is a valid config file.
json_t *config_resolved_json(const vs_config &cfg, bool nested);
// Feature names accepted by device.withdraw_features and driver.decline_features, with
// their bit positions, in bit order.
std::vector<std::pair<std::string, unsigned>> config_feature_names();
// The features of f that have a name, as a new JSON object {"NAME": bit, ...} in bit
// order (caller owns the reference): stats.json's result.negotiated_features, in run and
// serve alike.
json_t *config_features_json(const vs_features &f);
// docs/parameters.md: every parameter by section with unit, default, allowed values and
// meaning, and the feature names (`viosim params --markdown` prints it).
std::string config_params_markdown();

} // namespace viosim

#endif
