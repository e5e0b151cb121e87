// main.cpp -- the viosim command line: run, sweep, params, help, version.
//
// Exit status: 0 the run completed and the driver reported REFDRV_OK; 1 the run failed (a
// simulation result: stats.json is still written); 2 a usage or configuration error, or
// an output path that cannot be written, reported before anything runs.
#include <jansson.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

#include "cli.h"
#include "compare.h"
#include "config.h"
#include "provenance.h"
#include "stats.h"
#include "sweep.h"
#include "top.h"
#include "qemu_proxy.h"
#include "vhost_user.h"

// The command line is an application of viosim's library, not part of it.
using namespace viosim;

// libsystemc's own main() calls sc_main(); viosim has its own main() (arguments are
// parsed and checked before any elaboration), but the library still needs the symbol
// to link. Weak, so a definition elsewhere in the platform takes precedence.
extern "C" __attribute__((weak)) int sc_main(int, char **)
{
    std::fprintf(stderr, "viosim: error: sc_main is not an entry point of viosim\n");
    return 2;
}

namespace {

constexpr int EXIT_RUN_FAILED = 1;
constexpr int EXIT_USAGE = 2;
constexpr int EXIT_VIOLATION = 3; // --strict: the driver broke a conformance rule

const char USAGE[] =
    "usage: viosim run [CONFIG] [--set key=value]... [--out DIR] [--seed N] [--trace FILE]\n"
    "                  [--trace-window START_US:END_US] [--vcd FILE.vcd]\n"
    "       viosim sweep STUDY [--jobs N] [--out DIR] [--emit slurm|parallel] [--merge]\n"
    "       viosim serve (--vhost-user PATH | --qemu-proxy PATH) [CONFIG] [--set key=value]...\n"
    "                    [--out DIR]\n"
    "                    [--duration-s S] [--socket-mode MODE] [--message-timeout-s S]\n"
    "                    [--require-sealed-memory]\n"
    "       viosim compare BASE CUR [--metrics a,b,...] [--threshold NAME=VALUE]...\n"
    "                      [--thresholds FILE] [--markdown FILE] [--junit FILE] [--json FILE]\n"
    "                      [--html DIR]\n"
    "       viosim params [--markdown | --json]\n"
    "       viosim help | --help\n"
    "       viosim version | --version\n";

const char HELP[] =
    "\n"
    "viosim: a register-accurate SystemC model of a hardware virtio-net PCI device.\n"
    "\n"
    "commands:\n"
    "  run      run one simulation; print a summary table and write DIR/stats.json\n"
    "  sweep    run a study's parameter grid in parallel, one `run` per point; write\n"
    "           DIR/results.csv (see 'viosim sweep --help' and docs/sweeps.md)\n"
    "  serve    be a vhost-user back end on the unix socket PATH: a front end (DPDK's\n"
    "           virtio-user, QEMU -netdev vhost-user) drives the model's rings in wall-clock\n"
    "           time; SIGINT/SIGTERM (or --duration-s) writes DIR/stats.json (docs/bring-up.md);\n"
    "           or, with --qemu-proxy, the remote process of QEMU's x-pci-proxy-dev: a guest's\n"
    "           own driver probes the model's PCI function (untimed so far)\n"
    "  compare  compare two sweeps (or two stats.json files) point by point; regressions\n"
    "           first; exit 1 if any statistic regressed (see 'viosim compare --help' and\n"
    "           docs/regression.md)\n"
    "  params   list every parameter: name, unit, default, meaning [allowed values]\n"
    "           --markdown: as docs/parameters.md; --json: every default, as a config file\n"
    "\n"
    "options of run:\n"
    "  CONFIG           a JSON config file: nested {\"pcie\": {\"gen\": 4}} or flat {\"pcie.gen\": 4}\n"
    "  --set key=value  set one parameter (repeatable); applied after CONFIG, in order\n"
    "  --seed N         same as --set sim.seed=N, applied last\n"
    "  --out DIR        output directory, created if missing (default: out)\n"
    "  --trace FILE     write a timeline (Chrome/Perfetto trace-event JSON) of the run\n"
    "  --strict         stop at the first driver-conformance violation (exit status 3)\n"
    "  --trace-window START_US:END_US\n"
    "                   keep only the trace events reaching into that stretch of simulated\n"
    "                   time (microseconds; either side may be empty; needs --trace)\n"
    "  --vcd FILE.vcd   write the run's counters (buffers in flight, ring occupancy, read\n"
    "                   tags in flight) as VCD waveforms, e.g. for GTKWave; whole run\n"
    "\n"
    "options of serve (and CONFIG, --set, --out as for run):\n"
    "  --vhost-user PATH     the unix socket to listen on; a stale socket there is replaced,\n"
    "                        one where a server answers is refused\n"
    "  --qemu-proxy PATH     instead: the unix socket QEMU's -device x-pci-proxy-dev,fd=N\n"
    "                        reaches (N a descriptor connected to PATH); implies\n"
    "                        device.msix=off and device.bar_width_bits=32\n"
    "  --duration-s S        stop after S seconds (0 < S <= 1e6); without it, run until\n"
    "                        SIGINT or SIGTERM\n"
    "  --socket-mode MODE    the socket's permissions, octal (default 0600; 0660 lets the\n"
    "                        file's group in); must include 0600\n"
    "  --message-timeout-s S a message begun must be whole within S seconds or the\n"
    "                        connection is closed (0.001 <= S <= 3600, default 5)\n"
    "  --require-sealed-memory\n"
    "                        refuse memory regions whose file can shrink (no F_SEAL_SHRINK)\n"
    "  exit status: 0 stopped by a signal or --duration-s, DIR/stats.json written; 1 a\n"
    "  system call failed; 2 usage, configuration or socket path error (nothing was served)\n"
    "\n"
    "exit status: 0 the run completed and the driver reported OK; 1 the run failed (see\n"
    "DIR/stats.json); 2 usage or configuration error, or an output path (--out, --trace,\n"
    "--vcd) that cannot be written (nothing was run); 3 with --strict, the driver broke a\n"
    "conformance rule (docs/conformance.md; DIR/stats.json lists it).\n";

// One line whatever the message echoes (a path, an option, a key from the input).
int usage_error(const std::string &message)
{
    std::fprintf(stderr, "viosim: error: %s\n", config_escaped(message).c_str());
    return EXIT_USAGE;
}

void print_params_table()
{
    std::vector<param_info> params = config_params();
    size_t name_w = 4, unit_w = 4, default_w = 7;
    auto unit_of = [](const param_info &p) { return p.unit.empty() ? std::string("-") : p.unit; };
    auto default_of = [](const param_info &p) {
        return p.default_text.empty() ? std::string("\"\"") : p.default_text;
    };
    for (const param_info &p : params) {
        name_w = std::max(name_w, p.name.size());
        unit_w = std::max(unit_w, unit_of(p).size());
        default_w = std::max(default_w, default_of(p).size());
    }
    std::printf("%-*s  %-*s  %-*s  %s\n", static_cast<int>(name_w), "NAME", static_cast<int>(unit_w),
                "UNIT", static_cast<int>(default_w), "DEFAULT", "MEANING [ALLOWED]");
    for (const param_info &p : params)
        std::printf("%-*s  %-*s  %-*s  %s [%s]\n", static_cast<int>(name_w), p.name.c_str(),
                    static_cast<int>(unit_w), unit_of(p).c_str(), static_cast<int>(default_w),
                    default_of(p).c_str(), p.meaning.c_str(), p.allowed.c_str());
    std::printf("\nFeature names (for device.withdraw_features, driver.decline_features):\n ");
    size_t column = 1;
    for (const auto &feature : config_feature_names()) {
        if (column + feature.first.size() + 1 > 80) {
            std::printf("\n ");
            column = 1;
        }
        std::printf(" %s", feature.first.c_str());
        column += feature.first.size() + 1;
    }
    std::printf("\n");
}

int cmd_params(int argc, char **argv)
{
    if (argc > 3)
        return usage_error("params takes at most one option (--markdown or --json)");
    std::string option = argc == 3 ? argv[2] : "";
    if (option.empty()) {
        print_params_table();
    } else if (option == "--markdown") {
        std::fputs(config_params_markdown().c_str(), stdout);
    } else if (option == "--json") {
        json_t *defaults = config_resolved_json(config_defaults(), true);
        std::fputs(stats_json_text(defaults).c_str(), stdout);
        json_decref(defaults);
    } else if (option == "--help" || option == "-h") {
        std::fputs(USAGE, stdout);
        std::fputs(HELP, stdout);
    } else {
        return usage_error("unknown option '" + option + "' for params (--markdown or --json)");
    }
    return std::fflush(stdout) == 0 ? 0 : EXIT_RUN_FAILED;
}

std::string failure_reason(const run_result &r, const vs_config &cfg)
{
    std::string reason;
    if (!r.completed) {
        char limit[64];
        std::snprintf(limit, sizeof limit, "%g", cfg.sim.time_limit_us / 1e3);
        reason = std::string("stopped at sim.time_limit_ms (") + limit +
                 " ms) before the workload finished";
    }
    if (r.driver_result != refdrv_result_name(REFDRV_OK)) {
        if (!reason.empty())
            reason += "; ";
        reason += "driver result " + r.driver_result;
    }
    if (!r.device_error.empty())
        reason += (reason.empty() ? "" : "; ") + std::string("device error ") + r.device_error;
    return reason;
}

// The configuration a command runs with: defaults, then the config file (if any), then
// each --set in order, then the cross-parameter checks. "" when fine, else the one-line
// error (it names the key).
std::string resolve_config(const std::string *config_path, const std::vector<std::string> &sets,
                           vs_config &cfg, bool qemu_proxy = false)
{
    cfg = config_defaults();
    param_error err;
    if (config_path && !config_apply_file(cfg, *config_path, err))
        return err.message;
    for (const std::string &assignment : sets)
        if (!config_apply_set(cfg, assignment, err))
            return err.message;
    // Whatever else the user withdraws: the proxy's guest programs no IOMMU of the
    // platform (config_validate), so its device never offers ACCESS_PLATFORM.
    if (qemu_proxy)
        vs_feature_set(&cfg.dev.withdraw, VIRTIO_F_ACCESS_PLATFORM_BIT);
    if (!config_validate(cfg, err, qemu_proxy))
        return err.message;
    return "";
}

// Creates the output directory if missing; "" when it is a writable directory where
// stats.json can be written (it is written through a rename, which a directory of that
// name would refuse only after the run).
std::string prepare_out_dir(const std::string &dir)
{
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
        return "cannot create output directory '" + dir + "': " + ec.message();
    if (!std::filesystem::is_directory(dir, ec))
        return "output directory '" + dir + "' is not a directory";
    if (access(dir.c_str(), W_OK) != 0)
        return "output directory '" + dir + "' is not writable";
    const std::filesystem::path stats = std::filesystem::path(dir) / "stats.json";
    if (std::filesystem::is_directory(stats, ec))
        return "cannot write '" + stats.string() + "': it is a directory";
    return "";
}

// A file the run creates or overwrites (--trace, --vcd), checked before the run, which
// would otherwise fail only once the file is opened: "" when it can be written.
std::string check_output_file(const char *option, const std::string &path)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    const std::string at = std::string(option) + ": cannot write '" + path + "': ";
    if (fs::is_directory(path, ec))
        return at + "it is a directory";
    if (fs::exists(path, ec))
        return access(path.c_str(), W_OK) == 0 ? "" : at + "it is not writable";
    fs::path dir = fs::path(path).parent_path();
    if (dir.empty())
        dir = ".";
    if (!fs::is_directory(dir, ec))
        return at + "directory '" + dir.string() + "' does not exist";
    if (access(dir.c_str(), W_OK) != 0)
        return at + "directory '" + dir.string() + "' is not writable";
    return "";
}

// What `run` and `serve` both take: CONFIG, --set (repeatable), --out DIR, --help.
struct config_args {
    std::string config_path, out_dir = "out";
    bool have_config = false;
    bool qemu_proxy = false;   // serve --qemu-proxy (config_validate's proxy rules)
    std::vector<std::string> sets;

    // argv[i], which the command's own options did not take: one of ours, --help, an
    // unknown option or a second config file. Returns -1 to go on, or the exit status
    // the command returns now (help printed, or a usage error).
    int take(int argc, char **argv, int &i)
    {
        std::string value;
        bool missing = false;
        const char *arg = argv[i];
        if (take_option(argc, argv, i, "--set", value, missing)) {
            if (missing)
                return usage_error("--set needs key=value");
            sets.push_back(value);
        } else if (take_option(argc, argv, i, "--out", value, missing)) {
            if (missing || value.empty())
                return usage_error("--out needs a directory");
            out_dir = value;
        } else if (std::strcmp(arg, "--help") == 0 || std::strcmp(arg, "-h") == 0) {
            std::fputs(USAGE, stdout);
            std::fputs(HELP, stdout);
            return 0;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return usage_error(std::string("unknown option '") + arg + "' (see 'viosim --help')");
        } else if (have_config) {
            return usage_error(std::string("more than one config file ('") + config_path +
                               "', '" + arg + "')");
        } else {
            config_path = arg;
            have_config = true;
        }
        return -1;
    }
    // The configuration (file, then the --set assignments in order) and a writable
    // output directory, checked before anything runs: "" or the problem.
    std::string resolve(vs_config &cfg) const
    {
        std::string why =
            resolve_config(have_config ? &config_path : nullptr, sets, cfg, qemu_proxy);
        return why.empty() ? prepare_out_dir(out_dir) : why;
    }
};

int cmd_run(int argc, char **argv)
{
    std::string seed;
    run_options opt;
    bool have_seed = false, have_window = false;
    config_args args;

    for (int i = 2; i < argc; i++) {
        std::string value;
        bool missing = false;
        const char *arg = argv[i];
        if (take_option(argc, argv, i, "--trace", value, missing)) {
            if (missing || value.empty())
                return usage_error("--trace needs a file name");
            opt.trace_path = value;
        } else if (take_option(argc, argv, i, "--vcd", value, missing)) {
            // Waveform files are named *.vcd (viewers look for the suffix).
            if (missing || value.size() <= 4 || value.compare(value.size() - 4, 4, ".vcd") != 0)
                return usage_error("--vcd needs a file name ending in .vcd (e.g. out/run.vcd)");
            opt.vcd_path = value;
        } else if (std::strcmp(arg, "--strict") == 0) {
            opt.strict = true;
        } else if (take_option(argc, argv, i, "--trace-window", value, missing)) {
            std::string why;
            if (missing)
                return usage_error("--trace-window needs START_US:END_US (e.g. 100:250)");
            if (!trace_window_parse(value, opt.trace_span, why))
                return usage_error("--trace-window: " + why);
            have_window = true;
        } else if (take_option(argc, argv, i, "--seed", value, missing)) {
            if (missing)
                return usage_error("--seed needs a number");
            seed = value;
            have_seed = true;
        } else if (int done = args.take(argc, argv, i); done >= 0) {
            return done;
        }
    }

    if (have_window && opt.trace_path.empty())
        return usage_error("--trace-window needs --trace FILE (it limits what the trace keeps)");

    // Everything is parsed and checked before anything is created or run.
    vs_config cfg;
    if (have_seed)
        args.sets.push_back("sim.seed=" + seed); // applied last, as the help says
    std::string why = args.resolve(cfg);
    if (why.empty() && !opt.trace_path.empty())
        why = check_output_file("--trace", opt.trace_path);
    if (why.empty() && !opt.vcd_path.empty())
        why = check_output_file("--vcd", opt.vcd_path);
    if (!why.empty())
        return usage_error(why);

    // The SystemC banner would interleave with the summary; a user's setting wins.
    setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);

    run_result r;
    try {
        r = vs_run(cfg, opt);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "viosim: error: simulation aborted: %s\n", e.what());
        return EXIT_RUN_FAILED;
    }

    stats_print_pairs(stdout, r.summary);
    std::fflush(stdout);

    std::string reason = failure_reason(r, cfg);
    json_t *config = config_resolved_json(cfg, false);
    json_t *result = json_object();
    json_object_set_new(result, "ok", json_boolean(reason.empty()));
    json_object_set_new(result, "completed", json_boolean(r.completed));
    json_object_set_new(result, "driver_result", json_string(r.driver_result.c_str()));
    json_object_set_new(result, "device_error", json_string(r.device_error.c_str()));
    json_object_set_new(result, "reason", json_string(reason.c_str()));
    json_object_set_new(result, "conformance",
                        conformance_json(r.violations_total, r.violations, r.violations_by_rule));
    json_object_set_new(result, "negotiated_features", config_features_json(r.negotiated_features));
    std::string path = (std::filesystem::path(args.out_dir) / "stats.json").string(), write_err;
    json_t *provenance = provenance_json(cfg);
    bool written = stats_write_json(path, provenance, config, result, r.stats, write_err);
    json_decref(provenance);
    json_decref(config);
    json_decref(result);

    if (!written) {
        std::fprintf(stderr, "viosim: error: %s\n", write_err.c_str());
        return EXIT_RUN_FAILED;
    }
    if (opt.strict && !r.violations.empty()) {
        const violation_record &v = r.violations.front();
        std::fprintf(stderr, "viosim: driver broke a rule at %.1f ns: %s%s: %s (spec: \"%s\")\n",
                     v.time_ns, v.rule.c_str(), v.reason.empty() ? "" : (" (" + v.reason + ")").c_str(),
                     v.text.c_str(), v.section.c_str());
        return EXIT_VIOLATION;
    }
    if (!reason.empty()) {
        std::fprintf(stderr, "viosim: run failed: %s\n", reason.c_str());
        return EXIT_RUN_FAILED;
    }
    return 0;
}

// A number of seconds: finite, the whole argument a decimal number.
bool parse_seconds(const std::string &text, double &out)
{
    char *end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end == text.c_str() || *end != '\0' || errno == ERANGE || !std::isfinite(v))
        return false;
    out = v;
    return true;
}

// viosim serve (--vhost-user PATH | --qemu-proxy PATH) [CONFIG] [--set ...] [--out DIR] [--duration-s S]
//              [--socket-mode MODE] [--message-timeout-s S] [--require-sealed-memory]
int cmd_serve(int argc, char **argv)
{
    serve_options opt;
    config_args args;
    for (int i = 2; i < argc; i++) {
        std::string value;
        bool missing = false;
        if (take_option(argc, argv, i, "--vhost-user", value, missing)) {
            if (missing || value.empty())
                return usage_error("--vhost-user needs a socket path");
            if (args.qemu_proxy)
                return usage_error("--vhost-user and --qemu-proxy exclude each other");
            opt.socket_path = value;
        } else if (take_option(argc, argv, i, "--qemu-proxy", value, missing)) {
            if (missing || value.empty())
                return usage_error("--qemu-proxy needs a socket path");
            if (!opt.socket_path.empty() && !args.qemu_proxy)
                return usage_error("--vhost-user and --qemu-proxy exclude each other");
            opt.socket_path = value;
            args.qemu_proxy = true;
        } else if (take_option(argc, argv, i, "--duration-s", value, missing)) {
            // Bounded so that the deadline fits the clock's integer nanoseconds.
            if (missing || !parse_seconds(value, opt.duration_s) || !(opt.duration_s > 0) ||
                opt.duration_s > SERVE_DURATION_S_MAX)
                return usage_error("--duration-s needs a number of seconds, 0 < S <= 1e6");
        } else if (take_option(argc, argv, i, "--message-timeout-s", value, missing)) {
            if (missing || !parse_seconds(value, opt.message_timeout_s) ||
                !(opt.message_timeout_s >= SERVE_MESSAGE_TIMEOUT_S_MIN) ||
                opt.message_timeout_s > SERVE_MESSAGE_TIMEOUT_S_MAX)
                return usage_error("--message-timeout-s needs a number of seconds, 0.001 <= S <= 3600");
        } else if (take_option(argc, argv, i, "--socket-mode", value, missing)) {
            // Octal permission bits; the owner must keep read and write (connecting to a
            // unix socket needs write permission).
            char *end = nullptr;
            errno = 0;
            const unsigned long m = missing ? 0 : std::strtoul(value.c_str(), &end, 8);
            if (missing || value.empty() || value[0] == '-' || value[0] == '+' || *end != '\0' ||
                errno != 0 || m > 0777 || (m & 0600) != 0600)
                return usage_error("--socket-mode needs octal permission bits from 0600 to 0777 "
                                   "that include 0600 (e.g. 0660)");
            opt.socket_mode = unsigned(m);
        } else if (std::strcmp(argv[i], "--require-sealed-memory") == 0) {
            opt.require_sealed_memory = true;
        } else if (int done = args.take(argc, argv, i); done >= 0) {
            return done;
        }
    }
    if (opt.socket_path.empty())
        return usage_error("serve needs --vhost-user PATH or --qemu-proxy PATH");
    if (args.qemu_proxy) // the proxy's defaults, before the user's settings
        args.sets.insert(args.sets.begin(), {"device.msix=off", "device.bar_width_bits=32"});
    vs_config cfg;
    std::string why = args.resolve(cfg);
    if (!why.empty())
        return usage_error(why);
    // A vhost-user back end is no PCI function: the front end's interrupts are call
    // eventfds, and there is no INTx pin, ISR status or Command register to offer (the
    // proxy's function is one, and has INTx only).
    if (cfg.dev.no_msix && !args.qemu_proxy)
        return usage_error("parameter 'device.msix': off (legacy INTx) needs a PCI function; "
                           "serve --vhost-user is a back end whose interrupts are call eventfds");
    if (!args.qemu_proxy && cfg.dev.queue_pairs > SERVE_VHOST_PAIRS_MAX)
        return usage_error("parameter 'device.queue_pairs_count': " +
                           std::to_string(cfg.dev.queue_pairs) + " pairs; serve --vhost-user offers at most " +
                           std::to_string(SERVE_VHOST_PAIRS_MAX) +
                           " (a ring's index travels in 8 bits of vhost-user's messages)");
    opt.out_dir = args.out_dir;
    const int rc = args.qemu_proxy ? qemu_proxy_serve(cfg, opt) : vhost_user_serve(cfg, opt);
    return rc == 0 ? 0 : rc == SERVE_EXIT_PATH ? EXIT_USAGE : EXIT_RUN_FAILED;
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fputs(USAGE, stderr);
        return usage_error("no command given (see 'viosim --help')");
    }
    std::string cmd = argv[1];
    if (cmd == "run")
        return cmd_run(argc, argv);
    if (cmd == "sweep")
        return sweep_main(argc, argv, cmd_run);
    if (cmd == "serve")
        return cmd_serve(argc, argv);
    if (cmd == "compare")
        return compare_main(argc, argv);
    if (cmd == "params")
        return cmd_params(argc, argv);
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
        std::fputs(USAGE, stdout);
        std::fputs(HELP, stdout);
        return 0;
    }
    if (cmd == "--version" || cmd == "version") {
        // The version, then what it is made of: the commit and the state of the tree.
        std::printf("viosim %s\ncommit %s\ntree %s\n", build_version, git_commit,
                    git_tree);
        return 0;
    }
    return usage_error("unknown command '" + cmd + "' (see 'viosim --help')");
}
