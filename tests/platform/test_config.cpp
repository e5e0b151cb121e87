// test_config.cpp -- the parameter table, --set and config-file parsing, validation,
// the resolved configuration, stats.json, and the viosim command line (exit status and
// messages; needs env VIOSIM = path of the viosim binary, skipped otherwise).
#include <criterion/criterion.h>
#include <jansson.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config.h"
#include "provenance.h"
#include "stats.h"

using namespace viosim; // the platform's modules and configuration (platform/)

namespace {

// ---- Helpers ----

bool contains(const std::string &haystack, const std::string &needle)
{
    return haystack.find(needle) != std::string::npos;
}

std::string read_file(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A fresh temporary file holding text; returns its path.
std::string temp_file(const std::string &text, const char *suffix = ".json")
{
    std::string tmpl = std::string("/tmp/viosim_test_XXXXXX") + suffix;
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    int fd = mkstemps(buf.data(), static_cast<int>(std::strlen(suffix)));
    cr_assert(fd >= 0, "mkstemps failed");
    cr_assert(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    close(fd);
    return buf.data();
}

std::string temp_dir()
{
    char tmpl[] = "/tmp/viosim_test_dir_XXXXXX";
    cr_assert(mkdtemp(tmpl) != nullptr);
    return tmpl;
}

std::string source_dir()
{
    if (const char *env = std::getenv("VIOSIM_SOURCE_DIR"))
        return env;
    std::string file = __FILE__; // .../tests/platform/test_config.cpp
    for (int i = 0; i < 3; i++) {
        size_t slash = file.rfind('/');
        file = slash == std::string::npos ? "." : file.substr(0, slash);
    }
    return file;
}

std::vector<std::string> table_names()
{
    std::vector<std::string> names;
    for (const param_info &p : config_params())
        names.push_back(p.name);
    return names;
}

void set_ok(vs_config &cfg, const std::string &assignment)
{
    param_error err;
    bool ok = config_apply_set(cfg, assignment, err);
    cr_assert(ok, "--set %s failed: %s", assignment.c_str(), err.message.c_str());
}

// The assignment must fail, name the key, say fragment and leave cfg unchanged.
void set_fails(const std::string &assignment, const std::string &key, const std::string &fragment)
{
    vs_config cfg = config_defaults();
    auto before = config_resolved(cfg);
    param_error err;
    bool ok = config_apply_set(cfg, assignment, err);
    cr_assert(!ok, "--set %s was accepted", assignment.c_str());
    cr_expect_eq(err.key, key, "--set %s: key '%s', expected '%s'", assignment.c_str(),
                 err.key.c_str(), key.c_str());
    cr_expect(contains(err.message, "'" + key + "'"), "--set %s: message does not name the key: %s",
              assignment.c_str(), err.message.c_str());
    cr_expect(contains(err.message, fragment), "--set %s: message lacks '%s': %s", assignment.c_str(),
              fragment.c_str(), err.message.c_str());
    cr_expect(err.message.find('\n') == std::string::npos, "message is not one line");
    cr_expect(config_resolved(cfg) == before, "--set %s changed the config", assignment.c_str());
}

bool validate(const vs_config &cfg, param_error &err)
{
    return config_validate(cfg, err);
}

void validate_fails(const vs_config &cfg, const std::string &key, const std::string &fragment)
{
    param_error err;
    cr_assert(!config_validate(cfg, err), "config accepted; expected an error on %s", key.c_str());
    cr_expect_eq(err.key, key, "key '%s', expected '%s' (%s)", err.key.c_str(), key.c_str(),
                 err.message.c_str());
    cr_expect(contains(err.message, fragment), "message lacks '%s': %s", fragment.c_str(),
              err.message.c_str());
}

// Applies a config file holding text to the defaults.
bool apply_file_text(const std::string &text, vs_config &cfg, param_error &err, std::string *path = nullptr)
{
    std::string p = temp_file(text);
    bool ok = config_apply_file(cfg, p, err);
    if (path)
        *path = p;
    else
        std::remove(p.c_str());
    return ok;
}

void file_fails(const std::string &text, const std::string &key, const std::string &fragment)
{
    vs_config cfg = config_defaults();
    auto before = config_resolved(cfg);
    param_error err;
    std::string path;
    cr_assert(!apply_file_text(text, cfg, err, &path), "file accepted: %s", text.c_str());
    std::remove(path.c_str());
    cr_expect_eq(err.key, key, "key '%s', expected '%s' (%s)", err.key.c_str(), key.c_str(),
                 err.message.c_str());
    cr_expect(contains(err.message, path), "message lacks the file name: %s", err.message.c_str());
    if (!key.empty())
        cr_expect(contains(err.message, "'" + key + "'"), "message does not name the key: %s",
                  err.message.c_str());
    cr_expect(contains(err.message, fragment), "message lacks '%s': %s", fragment.c_str(),
              err.message.c_str());
    cr_expect(config_resolved(cfg) == before, "a failed file changed the config");
}

struct exec_result {
    int status; // exit status, or -1 if it did not exit normally
    std::string out, err;
};

// Runs $VIOSIM with args; skips the test if VIOSIM is not set.
exec_result run_viosim(const std::vector<std::string> &args)
{
    const char *viosim = std::getenv("VIOSIM");
    if (!viosim || !*viosim)
        cr_skip_test("VIOSIM is not set (path of the viosim binary)");
    std::string out_path = temp_file("", ".out"), err_path = temp_file("", ".err");
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        int out = open(out_path.c_str(), O_WRONLY | O_TRUNC);
        int err = open(err_path.c_str(), O_WRONLY | O_TRUNC);
        if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(127);
        std::vector<char *> argv;
        argv.push_back(const_cast<char *>(viosim));
        for (const std::string &a : args)
            argv.push_back(const_cast<char *>(a.c_str()));
        argv.push_back(nullptr);
        execv(viosim, argv.data());
        _exit(127);
    }
    int wstatus = 0;
    cr_assert(waitpid(pid, &wstatus, 0) == pid);
    exec_result r;
    r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    r.out = read_file(out_path);
    r.err = read_file(err_path);
    std::remove(out_path.c_str());
    std::remove(err_path.c_str());
    return r;
}

// A usage error: exit status 2 and exactly one line "viosim: error: ..." on stderr.
void expect_usage_error(const exec_result &r, const std::string &fragment)
{
    cr_expect_eq(r.status, 2, "exit status %d, expected 2; stderr: %s", r.status, r.err.c_str());
    cr_expect(r.err.rfind("viosim: error: ", 0) == 0, "stderr does not start with 'viosim: error: ': %s",
              r.err.c_str());
    cr_expect(r.err.find('\n') == r.err.size() - 1, "stderr is not one line: %s", r.err.c_str());
    cr_expect(contains(r.err, fragment), "stderr lacks '%s': %s", fragment.c_str(), r.err.c_str());
    cr_expect(r.out.empty(), "something was printed to stdout: %s", r.out.c_str());
}

} // namespace

// ---- Table and defaults ----

Test(config, defaults_validate)
{
    param_error err;
    cr_assert(validate(config_defaults(), err), "defaults rejected: %s", err.message.c_str());
}

// The module groups' member initialisers (module_params.h) are the table's defaults:
// a group built in code without the table starts where config_defaults() does.
Test(config, module_group_initialisers_are_the_defaults)
{
    const vs_config table = config_defaults();
    vs_config groups = table;
    groups.pcie = pcie_link_params();
    groups.dma = dma_engine_params();
    groups.iommu = iommu_params();
    groups.software = software_params();
    groups.bench = dma_bench_params();
    groups.memory = host_memory_params();
    groups.cpu = host_cpu_params();
    groups.device_tlm = device_tlm_params();
    groups.sim = sim_params();
    const auto want = config_resolved(table), got = config_resolved(groups);
    cr_assert_eq(want.size(), got.size());
    for (size_t i = 0; i < want.size(); i++)
        cr_expect_eq(want[i].second, got[i].second, "%s: table default %s, group initialiser %s",
                     want[i].first.c_str(), want[i].second.c_str(), got[i].second.c_str());
}

Test(config, defaults_reach_the_structs)
{
    vs_config c = config_defaults();
    cr_expect_eq(c.pcie.gen, 3u);
    cr_expect_eq(c.pcie.lanes, 8u);
    cr_expect_eq(c.pcie.read_latency_ns, 550.0);
    cr_expect_eq(c.pcie.max_payload_bytes, 256u);
    cr_expect_eq(c.pcie.max_read_request_bytes, 512u);
    cr_expect_eq(c.memory.size_mib, 64u);
    cr_expect_eq(c.memory.latency_ns, 80.0);
    cr_expect_eq(c.cpu.clock_mhz, 3000.0);
    cr_expect_eq(c.cpu.tx_packet_cycles, 400u);
    cr_expect_eq(c.cpu.rx_packet_cycles, 400u);
    cr_expect_eq(c.cpu.tx_reap_cycles, 100u);
    cr_expect_eq(c.cpu.rx_refill_cycles, 100u);
    cr_expect_eq(c.cpu.poll_cycles, 50u);
    cr_expect_eq(c.cpu.irq_entry_cycles, 1500u);
    cr_expect_eq(c.cpu.mmio_write_ns, 100.0);
    cr_expect_eq(c.device_tlm.clock_mhz, 1000.0);
    cr_expect_eq(c.device_tlm.desc_cycles, 4u);
    cr_expect_eq(c.device_tlm.packet_cycles, 20u);
    cr_expect_eq(c.sim.quantum_ns, 1000.0);
    cr_expect_eq(c.sim.time_limit_us, 1e6);

    cr_expect_eq(c.dev.revision_id, 1);
    cr_expect_eq(c.dev.subsystem_vendor_id, 0x1af4);
    cr_expect_eq(c.dev.subsystem_id, 0x1100);
    cr_expect_eq(c.dev.queue_size_max, 256);
    cr_expect_eq(c.dev.notify_off_multiplier, 4u);
    for (unsigned w = 0; w < VS_FEATURE_WORDS; w++) {
        cr_expect_eq(c.dev.withdraw.w[w], 0u);
        cr_expect_eq(c.drv.decline.w[w], 0u);
    }
    const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    cr_expect(std::memcmp(c.dev.mac, mac, 6) == 0);
    cr_expect_eq(c.dev.max_frame_bytes, 9018u);
    cr_expect_eq(c.dev.rx_fifo_frames, 256u);
    cr_expect_eq(c.dev.backend, VDEV_BACKEND_LOOPBACK);

    cr_expect_eq(c.drv.frames_count, 10000u);
    cr_expect_eq(c.drv.frame_sizes_count, 3u);
    cr_expect_eq(c.drv.frame_sizes_bytes[0], 64u);
    cr_expect_eq(c.drv.frame_sizes_bytes[1], 512u);
    cr_expect_eq(c.drv.frame_sizes_bytes[2], 1500u);
    cr_expect_eq(c.drv.rx_buffer_bytes, 2048u);
    cr_expect_eq(c.drv.queue_size_entries, 256);
    cr_expect_eq(c.drv.tx_rate_mpps, 0.0);
    cr_expect_eq(c.drv.mode, REFDRV_MODE_INTERRUPT);
    cr_expect(c.drv.expect_loopback);
    cr_expect_eq(c.drv.idle_timeout_ns, 1000000u);
    cr_expect_eq(c.seed, 1u);
    cr_expect_eq(c.drv.seed, 1u);
}

Test(config, every_name_is_section_key_with_its_unit)
{
    static const std::set<std::string> sections = {"pcie", "dma", "iommu", "software", "bench", "host", "device", "driver", "sim"};
    std::set<std::string> seen;
    for (const param_info &p : config_params()) {
        size_t dot = p.name.find('.');
        cr_expect(dot != std::string::npos && sections.count(p.name.substr(0, dot)),
                  "%s is not section.key", p.name.c_str());
        cr_expect(seen.insert(p.name).second, "%s listed twice", p.name.c_str());
        cr_expect(!p.meaning.empty() && !p.allowed.empty(), "%s lacks meaning or allowed",
                  p.name.c_str());
        if (!p.unit.empty()) {
            std::string suffix = "_" + p.unit;
            for (char &ch : suffix)
                ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            cr_expect(p.name.size() > suffix.size() &&
                          p.name.compare(p.name.size() - suffix.size(), suffix.size(), suffix) == 0,
                      "%s does not end with its unit (%s)", p.name.c_str(), p.unit.c_str());
        }
        for (const char *unit : {"_ns", "_us", "_ms", "_bytes", "_mhz", "_mib", "_cycles", "_entries"}) {
            size_t n = std::strlen(unit);
            if (p.name.size() > n && p.name.compare(p.name.size() - n, n, unit) == 0)
                cr_expect(!p.unit.empty(), "%s has no unit", p.name.c_str());
        }
    }
}

// ---- --set ----

Test(config, set_accepts_every_form)
{
    vs_config c = config_defaults();
    set_ok(c, "pcie.lanes=16");
    set_ok(c, " pcie.gen = 5 ");
    set_ok(c, "pcie.max_payload_bytes=0x1000");
    set_ok(c, "device.subsystem_id=0x1234");
    set_ok(c, "device.subsystem_vendor_id=4660");
    set_ok(c, "device.revision_id=0xff");
    set_ok(c, "device.notify_off_multiplier_bytes=0");
    set_ok(c, "device.mac=02:AB:cd:00:00:01");
    set_ok(c, "device.backend=sink");
    set_ok(c, "driver.mode=poll");
    set_ok(c, "driver.frame_sizes_bytes= 60, 1500 ,9000");
    set_ok(c, "driver.tx_rate_mpps=1.5e-1");
    set_ok(c, "driver.idle_timeout_us=250");
    set_ok(c, "sim.seed=18446744073709551615");
    set_ok(c, "sim.time_limit_ms=2.5");
    set_ok(c, "host.tx_packet_cycles=0");

    cr_expect_eq(c.pcie.lanes, 16u);
    cr_expect_eq(c.pcie.gen, 5u);
    cr_expect_eq(c.pcie.max_payload_bytes, 4096u);
    cr_expect_eq(c.dev.subsystem_id, 0x1234);
    cr_expect_eq(c.dev.subsystem_vendor_id, 0x1234);
    cr_expect_eq(c.dev.revision_id, 255);
    cr_expect_eq(c.dev.notify_off_multiplier, 0u);
    const uint8_t mac[6] = {0x02, 0xab, 0xcd, 0x00, 0x00, 0x01};
    cr_expect(std::memcmp(c.dev.mac, mac, 6) == 0);
    cr_expect_eq(c.dev.backend, VDEV_BACKEND_SINK);
    cr_expect(!c.drv.expect_loopback);
    cr_expect_eq(c.drv.mode, REFDRV_MODE_POLL);
    cr_expect_eq(c.drv.frame_sizes_count, 3u);
    cr_expect_eq(c.drv.frame_sizes_bytes[2], 9000u);
    cr_expect_eq(c.drv.tx_rate_mpps, 0.15);
    cr_expect_eq(c.drv.idle_timeout_ns, 250000u);
    cr_expect_eq(c.seed, UINT64_MAX);
    cr_expect_eq(c.drv.seed, UINT64_MAX);
    cr_expect_eq(c.sim.time_limit_us, 2500.0);
    cr_expect_eq(c.memory.size_mib, 64u);

    auto resolved = config_resolved(c);
    auto text_of = [&](const std::string &key) {
        for (const auto &kv : resolved)
            if (kv.first == key)
                return kv.second;
        return std::string("<missing>");
    };
    cr_expect_eq(text_of("device.subsystem_id"), "0x1234");
    cr_expect_eq(text_of("device.mac"), "02:ab:cd:00:00:01");
    cr_expect_eq(text_of("driver.frame_sizes_bytes"), "60,1500,9000");
    cr_expect_eq(text_of("driver.tx_rate_mpps"), "0.15");
    cr_expect_eq(text_of("sim.time_limit_ms"), "2.5");
    cr_expect_eq(text_of("sim.seed"), "18446744073709551615");
    param_error err;
    cr_expect(validate(c, err), "%s", err.message.c_str());
}

Test(config, set_rejects_bad_values_naming_the_key)
{
    // out of range / not allowed
    set_fails("pcie.lanes=3", "pcie.lanes", "3 is not one of 1, 2, 4, 8, 16");
    set_fails("pcie.gen=0", "pcie.gen", "0 is out of range 1..5");
    set_fails("pcie.gen=6", "pcie.gen", "1..5");
    set_fails("pcie.max_payload_bytes=300", "pcie.max_payload_bytes", "power of two in 128..4096");
    set_fails("pcie.max_payload_bytes=64", "pcie.max_payload_bytes", "power of two");
    set_fails("pcie.max_read_request_bytes=8192", "pcie.max_read_request_bytes", "power of two");
    set_fails("host.memory_mib=3", "host.memory_mib", "4..4096");
    set_fails("device.queue_size_max_entries=32769", "device.queue_size_max_entries", "1..32768");
    set_fails("device.queue_size_max_entries=0", "device.queue_size_max_entries", "1..32768");
    set_fails("device.notify_off_multiplier_bytes=2", "device.notify_off_multiplier_bytes", "power of two");
    set_fails("device.notify_off_multiplier_bytes=12", "device.notify_off_multiplier_bytes", "power of two");
    set_fails("device.notify_off_multiplier_bytes=8192", "device.notify_off_multiplier_bytes", "4..4096");
    set_fails("device.revision_id=0", "device.revision_id", "1..255");
    set_fails("device.subsystem_id=0x10000", "device.subsystem_id", "0x0000..0xffff");
    set_fails("device.max_frame_bytes=63", "device.max_frame_bytes", "64..65535");
    set_fails("device.rx_fifo_frames=65537", "device.rx_fifo_frames", "1..65536");
    set_fails("driver.frames_count=0", "driver.frames_count", "1..1000000000");
    set_fails("driver.queue_size_entries=40000", "driver.queue_size_entries", "1..32768");
    set_fails("sim.quantum_ns=0", "sim.quantum_ns", "0 is out of range 0.001..");
    set_fails("sim.time_limit_ms=0", "sim.time_limit_ms", "0 is out of range 1e-09..");
    set_fails("host.cpu_clock_mhz=0", "host.cpu_clock_mhz", "0 is out of range 1..100000");
    // negatives
    set_fails("pcie.gen=-1", "pcie.gen", "-1 is out of range 1..5");
    set_fails("pcie.read_latency_ns=-1", "pcie.read_latency_ns", "-1 is out of range 0..");
    set_fails("driver.tx_rate_mpps=-0.5", "driver.tx_rate_mpps", "out of range");
    // trailing garbage, not numbers, empty
    set_fails("pcie.gen=3x", "pcie.gen", "'3x' is not an integer");
    set_fails("pcie.gen=3.0", "pcie.gen", "not an integer");
    set_fails("pcie.gen=", "pcie.gen", "empty value");
    set_fails("pcie.gen=0x", "pcie.gen", "not an integer");
    set_fails("pcie.read_latency_ns=1.5.5", "pcie.read_latency_ns", "not a number");
    set_fails("pcie.read_latency_ns=12ns", "pcie.read_latency_ns", "not a number");
    set_fails("pcie.read_latency_ns=0x10", "pcie.read_latency_ns", "not a number");
    set_fails("pcie.read_latency_ns=", "pcie.read_latency_ns", "empty value");
    // NaN, infinity, overflow
    set_fails("pcie.read_latency_ns=nan", "pcie.read_latency_ns", "not a number");
    set_fails("pcie.read_latency_ns=inf", "pcie.read_latency_ns", "not a number");
    set_fails("pcie.read_latency_ns=-infinity", "pcie.read_latency_ns", "not a number");
    set_fails("pcie.read_latency_ns=1e400", "pcie.read_latency_ns", "out of range");
    set_fails("pcie.read_latency_ns=1e10", "pcie.read_latency_ns", "out of range 0..1000000000");
    set_fails("sim.seed=18446744073709551616", "sim.seed", "out of range 0..18446744073709551615");
    set_fails("driver.frames_count=99999999999999999999999", "driver.frames_count", "out of range");
    // names, MAC, lists
    set_fails("device.backend=echo", "device.backend", "'echo' is not one of loopback, sink");
    set_fails("driver.mode=Poll", "driver.mode", "one of interrupt, poll");
    set_fails("device.mac=52:54:00:12:34", "device.mac", "MAC address");
    set_fails("device.mac=52:54:00:12:34:5g", "device.mac", "MAC address");
    set_fails("device.mac=52-54-00-12-34-56", "device.mac", "MAC address");
    set_fails("device.mac=01:00:5e:00:00:01", "device.mac", "multicast");
    set_fails("device.mac=00:00:00:00:00:00", "device.mac", "all-zero");
    set_fails("driver.frame_sizes_bytes=", "driver.frame_sizes_bytes", "empty list");
    set_fails("driver.frame_sizes_bytes=59", "driver.frame_sizes_bytes", "size 59 is out of range 60..65535");
    set_fails("driver.frame_sizes_bytes=64,65536", "driver.frame_sizes_bytes", "65536");
    set_fails("driver.frame_sizes_bytes=64,,128", "driver.frame_sizes_bytes", "empty size");
    set_fails("driver.frame_sizes_bytes=64,big", "driver.frame_sizes_bytes", "'big' is not an integer");
    set_fails("driver.frame_sizes_bytes=60,60,60,60,60,60,60,60,60,60,60,60,60,60,60,60,60",
              "driver.frame_sizes_bytes", "17 sizes given");
    set_fails("driver.decline_features=EVENT_IDX,BOGUS", "driver.decline_features", "unknown feature 'BOGUS'");
    set_fails("device.withdraw_features=MAC,,STATUS", "device.withdraw_features", "empty feature name");
}

// device.backend=responder and its peer's addresses (model/net_answer.h): an IPv4
// address in dotted decimal, not 0.0.0.0, multicast or the limited broadcast, from
// --set or a config file (a string there).
Test(config, responder_addresses)
{
    vs_config c = config_defaults();
    const uint8_t ip0[4] = {10, 0, 0, 2}, mac0[6] = {0x02, 0, 0, 0, 0, 0x02};
    cr_expect(std::memcmp(c.dev.responder.ipv4, ip0, 4) == 0);
    cr_expect(std::memcmp(c.dev.responder.mac, mac0, 6) == 0);
    set_ok(c, "device.backend=responder");
    set_ok(c, "device.responder_ipv4= 192.168.1.20 ");
    set_ok(c, "device.responder_mac=02:00:00:00:00:09");
    cr_expect_eq(c.dev.backend, VDEV_BACKEND_RESPONDER);
    cr_expect(!c.drv.expect_loopback, "the driver gets no echo of its own frames");
    const uint8_t ip[4] = {192, 168, 1, 20};
    cr_expect(std::memcmp(c.dev.responder.ipv4, ip, 4) == 0);
    cr_expect_eq(c.dev.responder.mac[5], 9);
    auto resolved = config_resolved(c);
    bool found = false;
    for (const auto &kv : resolved)
        if (kv.first == "device.responder_ipv4") {
            cr_expect_eq(kv.second, "192.168.1.20");
            found = true;
        }
    cr_expect(found);
    param_error err;
    cr_expect(validate(c, err), "%s", err.message.c_str());
    for (const char *bad : {"10.0.0", "10.0.0.256", "10.0.0.1.5", "1..2.3", "a.b.c.d", "1234.0.0.1",
                            "10.0.0.-1", ""})
        set_fails(std::string("device.responder_ipv4=") + bad, "device.responder_ipv4",
                  "IPv4 address");
    for (const char *bad : {"0.0.0.0", "224.0.0.1", "239.1.2.3", "255.255.255.255"})
        set_fails(std::string("device.responder_ipv4=") + bad, "device.responder_ipv4",
                  "not 0.0.0.0, multicast or broadcast");

    vs_config f = config_defaults();
    cr_assert(apply_file_text(R"({"device": {"backend": "responder", "responder_ipv4": "10.1.1.1"}})",
                              f, err),
              "%s", err.message.c_str());
    cr_expect_eq(f.dev.responder.ipv4[1], 1);
    vs_config g = config_defaults();
    cr_expect(!apply_file_text(R"({"device": {"responder_ipv4": 167837953}})", g, err));
    cr_expect(err.message.find("device.responder_ipv4") != std::string::npos, "%s",
              err.message.c_str());
}

Test(config, set_accepts_list_of_sixteen)
{
    vs_config c = config_defaults();
    set_ok(c, "driver.frame_sizes_bytes=60,60,60,60,60,60,60,60,60,60,60,60,60,60,60,65");
    cr_expect_eq(c.drv.frame_sizes_count, 16u);
    cr_expect_eq(c.drv.frame_sizes_bytes[15], 65u);
}

Test(config, set_unknown_key)
{
    vs_config c = config_defaults();
    param_error err;
    cr_assert(!config_apply_set(c, "bogus=1", err));
    cr_expect_eq(err.key, "bogus");
    cr_expect(contains(err.message, "unknown parameter 'bogus' (see 'viosim params')"), "%s",
              err.message.c_str());

    cr_assert(!config_apply_set(c, "pcie.lane=4", err));
    cr_expect(contains(err.message, "did you mean 'pcie.lanes'"), "%s", err.message.c_str());
    cr_assert(!config_apply_set(c, "pcie.read_latency=100", err));
    cr_expect(contains(err.message, "did you mean 'pcie.read_latency_ns'"), "%s", err.message.c_str());
    cr_assert(!config_apply_set(c, "pcie.gen.x=1", err));
    cr_expect_eq(err.key, "pcie.gen.x");
}

Test(config, set_needs_key_equals_value)
{
    vs_config c = config_defaults();
    param_error err;
    cr_expect(!config_apply_set(c, "pcie.gen", err));
    cr_expect(contains(err.message, "key=value"), "%s", err.message.c_str());
    cr_expect(!config_apply_set(c, "=4", err));
    cr_expect(contains(err.message, "key=value"), "%s", err.message.c_str());
}

// ---- Feature names ----

Test(config, withdraw_features_map_to_bits)
{
    vs_config c = config_defaults();
    set_ok(c, "device.withdraw_features=EVENT_IDX, ring_packed,VIRTIO_F_IN_ORDER,VIRTIO_NET_F_MAC,EVENT_IDX");
    vs_features want{};
    vs_feature_set(&want, VIRTIO_F_EVENT_IDX_BIT);
    vs_feature_set(&want, VIRTIO_F_RING_PACKED_BIT);
    vs_feature_set(&want, VIRTIO_F_IN_ORDER_BIT);
    vs_feature_set(&want, VIRTIO_NET_F_MAC_BIT);
    cr_expect(std::memcmp(&c.dev.withdraw, &want, sizeof want) == 0);
    for (const auto &kv : config_resolved(c))
        if (kv.first == "device.withdraw_features")
            cr_expect_eq(kv.second, "MAC,EVENT_IDX,RING_PACKED,IN_ORDER", "%s", kv.second.c_str());

    set_ok(c, "device.withdraw_features=");
    for (unsigned w = 0; w < VS_FEATURE_WORDS; w++)
        cr_expect_eq(c.dev.withdraw.w[w], 0u);
}

Test(config, every_feature_name_of_the_brief_is_known)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {
        {"VERSION_1", VIRTIO_F_VERSION_1_BIT},
        {"RING_PACKED", VIRTIO_F_RING_PACKED_BIT},
        {"IN_ORDER", VIRTIO_F_IN_ORDER_BIT},
        {"ORDER_PLATFORM", VIRTIO_F_ORDER_PLATFORM_BIT},
        {"ACCESS_PLATFORM", VIRTIO_F_ACCESS_PLATFORM_BIT},
        {"NOTIFICATION_DATA", VIRTIO_F_NOTIFICATION_DATA_BIT},
        {"EVENT_IDX", VIRTIO_F_EVENT_IDX_BIT},
        {"INDIRECT_DESC", VIRTIO_F_INDIRECT_DESC_BIT},
        {"RING_RESET", VIRTIO_F_RING_RESET_BIT},
        {"MAC", VIRTIO_NET_F_MAC_BIT},
        {"CTRL_VQ", VIRTIO_NET_F_CTRL_VQ_BIT},
        {"MRG_RXBUF", VIRTIO_NET_F_MRG_RXBUF_BIT},
        {"STATUS", VIRTIO_NET_F_STATUS_BIT},
    };
    for (const auto &n : names) {
        vs_config c = config_defaults();
        set_ok(c, std::string("driver.decline_features=") + n.name);
        vs_features want{};
        vs_feature_set(&want, n.bit);
        cr_expect(std::memcmp(&c.drv.decline, &want, sizeof want) == 0, "%s", n.name);
    }
}

// ---- Config files ----

Test(config, file_nested)
{
    vs_config c = config_defaults();
    param_error err;
    cr_assert(apply_file_text(R"({"pcie": {"gen": 4, "lanes": 16},
                                  "device": {"subsystem_id": "0x1234", "backend": "sink"},
                                  "driver": {"frame_sizes_bytes": [60, 128], "tx_rate_mpps": 2.5,
                                             "decline_features": ["EVENT_IDX", "in_order"]},
                                  "sim": {"time_limit_ms": 5}})",
                              c, err),
              "%s", err.message.c_str());
    cr_expect_eq(c.pcie.gen, 4u);
    cr_expect_eq(c.pcie.lanes, 16u);
    cr_expect_eq(c.dev.subsystem_id, 0x1234);
    cr_expect_eq(c.dev.backend, VDEV_BACKEND_SINK);
    cr_expect_eq(c.drv.frame_sizes_count, 2u);
    cr_expect_eq(c.drv.frame_sizes_bytes[1], 128u);
    cr_expect_eq(c.drv.tx_rate_mpps, 2.5);
    cr_expect(vs_feature_has(&c.drv.decline, VIRTIO_F_EVENT_IDX_BIT));
    cr_expect(vs_feature_has(&c.drv.decline, VIRTIO_F_IN_ORDER_BIT));
    cr_expect_eq(c.sim.time_limit_us, 5000.0);
    cr_expect_eq(c.pcie.max_payload_bytes, 256u, "untouched keys keep their values");
}

Test(config, file_flat_and_mixed)
{
    vs_config c = config_defaults();
    param_error err;
    cr_assert(apply_file_text(R"({"pcie.gen": "2", "driver.frame_sizes_bytes": "64,256",
                                  "host": {"memory_mib": 128}, "driver.frames_count": 1e3,
                                  "device.withdraw_features": "RING_RESET"})",
                              c, err),
              "%s", err.message.c_str());
    cr_expect_eq(c.pcie.gen, 2u);
    cr_expect_eq(c.drv.frame_sizes_count, 2u);
    cr_expect_eq(c.memory.size_mib, 128u);
    cr_expect_eq(c.drv.frames_count, 1000u);
    cr_expect(vs_feature_has(&c.dev.withdraw, VIRTIO_F_RING_RESET_BIT));
}

Test(config, file_errors_name_file_and_key)
{
    file_fails(R"({"pcie": {"gen": 4,}})", "", "1:");
    file_fails("{\n  \"pcie\": {\n    \"gen\" 4\n  }\n}\n", "", ":3:");
    file_fails("", "", "JSON syntax error");
    file_fails(R"({"pcie": {"gen": 4, "gen": 5}})", "", "duplicate");
    file_fails(R"([1, 2])", "", "JSON object");
    file_fails(R"({"pcie": {"gens": 4}})", "pcie.gens", "unknown parameter 'pcie.gens' (see 'viosim params')");
    file_fails(R"({"bogus": 1})", "bogus", "unknown parameter");
    file_fails(R"({"pcie": {"lanes": 3}})", "pcie.lanes", "3 is not one of 1, 2, 4, 8, 16");
    file_fails(R"({"pcie": {"lanes": "3"}})", "pcie.lanes", "3 is not one of");
    file_fails(R"({"pcie": {"gen": 4.5}})", "pcie.gen", "not an integer");
    file_fails(R"({"pcie": {"gen": -2}})", "pcie.gen", "-2 is out of range 1..5");
    file_fails(R"({"pcie": {"gen": true}})", "pcie.gen", "expected an integer");
    file_fails(R"({"pcie": {"gen": null}})", "pcie.gen", "got null");
    file_fails(R"({"pcie": {"gen": [4]}})", "pcie.gen", "got an array");
    file_fails(R"({"device": {"backend": 1}})", "device.backend", "is not one of loopback, sink");
    file_fails(R"({"driver": {"frame_sizes_bytes": [64, true]}})", "driver.frame_sizes_bytes", "list element 1");
    file_fails(R"({"driver": {"frame_sizes_bytes": []}})", "driver.frame_sizes_bytes", "empty list");
    file_fails(R"({"driver": {"decline_features": ["NOPE"]}})", "driver.decline_features", "'NOPE'");
    file_fails(R"({"pcie": {"gen": 4}, "pcie.gen": 5})", "pcie.gen", "given twice");
    // the first key is fine, the second is not: nothing is applied
    file_fails(R"({"pcie": {"gen": 4, "lanes": 5}})", "pcie.lanes", "not one of");
}

Test(config, file_missing)
{
    vs_config c = config_defaults();
    param_error err;
    cr_assert(!config_apply_file(c, "/nonexistent/viosim.json", err));
    cr_expect(contains(err.message, "/nonexistent/viosim.json"), "%s", err.message.c_str());
    cr_expect(contains(err.message, "No such file"), "%s", err.message.c_str());
}

// ---- Cross-parameter checks ----

Test(config, queue_size_within_device_maximum)
{
    vs_config c = config_defaults();
    set_ok(c, "device.queue_size_max_entries=128");
    set_ok(c, "driver.queue_size_entries=128");
    param_error err;
    cr_expect(validate(c, err), "%s", err.message.c_str());
    set_ok(c, "driver.queue_size_entries=129");
    validate_fails(c, "driver.queue_size_entries", "exceeds device.queue_size_max_entries (128)");
}

Test(config, frame_fits_rx_buffer_in_loopback)
{
    vs_config c = config_defaults();
    param_error err;
    set_ok(c, "driver.rx_buffer_bytes=2048");
    set_ok(c, "driver.frame_sizes_bytes=64,2036"); // 2036 + 12 == 2048
    cr_expect(validate(c, err), "%s", err.message.c_str());
    set_ok(c, "driver.frame_sizes_bytes=64,2037");
    validate_fails(c, "driver.frame_sizes_bytes", "driver.rx_buffer_bytes (2048)");
    // A sink never receives: the buffer size does not limit the frames.
    set_ok(c, "device.backend=sink");
    cr_expect(validate(c, err), "%s", err.message.c_str());
}

Test(config, frame_within_device_max_frame)
{
    vs_config c = config_defaults();
    param_error err;
    set_ok(c, "device.backend=sink");
    set_ok(c, "device.max_frame_bytes=1514");
    set_ok(c, "driver.frame_sizes_bytes=1514");
    cr_expect(validate(c, err), "%s", err.message.c_str());
    set_ok(c, "driver.frame_sizes_bytes=60,1515");
    validate_fails(c, "driver.frame_sizes_bytes", "exceeds device.max_frame_bytes (1514)");
}

Test(config, quantum_within_time_limit)
{
    vs_config c = config_defaults();
    param_error err;
    set_ok(c, "sim.time_limit_ms=1");
    set_ok(c, "sim.quantum_ns=1000000");
    cr_expect(validate(c, err), "%s", err.message.c_str());
    set_ok(c, "sim.quantum_ns=1000001");
    validate_fails(c, "sim.quantum_ns", "sim.time_limit_ms");
}

// sim.timing=decoupled leaves the sleeping poller's wake-up behind a queue engine that
// runs ahead (docs/timing.md): the two are refused together, naming sim.timing.
Test(config, decoupled_timing_without_poll_sleep)
{
    vs_config c = config_defaults();
    param_error err;
    cr_expect(!c.sim.timing_decoupled);
    set_ok(c, "sim.timing=decoupled");
    cr_expect(c.sim.timing_decoupled);
    cr_expect(validate(c, err), "%s", err.message.c_str());
    set_ok(c, "sim.poll_sleep=on");
    validate_fails(c, "sim.timing", "sim.poll_sleep");
    set_ok(c, "sim.timing=exact");
    cr_expect(validate(c, err), "%s", err.message.c_str());
}

// device.queue_pairs_count: 1..256, every count accepted by a run.
Test(config, queue_pairs_count)
{
    set_fails("device.queue_pairs_count=0", "device.queue_pairs_count", "out of range 1..256");
    set_fails("device.queue_pairs_count=257", "device.queue_pairs_count", "out of range 1..256");
    vs_config c = config_defaults();
    param_error err;
    cr_expect_eq(c.dev.queue_pairs, 1);
    cr_expect(validate(c, err), "%s", err.message.c_str());
    set_ok(c, "device.queue_pairs_count=256");
    cr_expect_eq(c.dev.queue_pairs, 256);
    cr_expect(validate(c, err), "%s", err.message.c_str());
}

// device.bar_width_bits: 64 (today's layout) or 32; device.msix: on or off (the timed
// platform delivers legacy INTx then), together or apart.
Test(config, bar_width_and_msix)
{
    set_fails("device.bar_width_bits=48", "device.bar_width_bits", "64");
    set_fails("device.msix=maybe", "device.msix", "on");
    vs_config c = config_defaults();
    param_error err;
    cr_expect(!c.dev.bars_32bit);
    cr_expect(!c.dev.no_msix);
    set_ok(c, "device.bar_width_bits=32");
    cr_expect(c.dev.bars_32bit);
    cr_expect(validate(c, err), "%s", err.message.c_str());
    set_ok(c, "device.msix=off");
    cr_expect(c.dev.no_msix);
    cr_expect(validate(c, err), "%s", err.message.c_str());
    set_ok(c, "sim.device_profile=software");
    validate_fails(c, "device.msix", "no INTx pin");
    set_ok(c, "sim.device_profile=hardware");
    set_ok(c, "device.msix=on");
    cr_expect(validate(c, err), "%s", err.message.c_str());
}

// serve --qemu-proxy's rules (config_validate with qemu_proxy): INTx only, 32-bit BARs,
// and ACCESS_PLATFORM withdrawn ("Reserved Feature Bits": with it negotiated the device
// translates its DMA through an IOMMU the proxy's guest never programs). Each refusal
// names its key.
Test(config, qemu_proxy_rules)
{
    vs_config c = config_defaults();
    param_error err;
    cr_expect_not(config_validate(c, err, true));
    cr_expect_eq(err.key, "device.msix");
    set_ok(c, "device.msix=off");
    cr_expect_not(config_validate(c, err, true));
    cr_expect_eq(err.key, "device.bar_width_bits");
    set_ok(c, "device.bar_width_bits=32");
    cr_expect_not(config_validate(c, err, true));
    cr_expect_eq(err.key, "device.withdraw_features");
    cr_expect(contains(err.message, "ACCESS_PLATFORM"), "%s", err.message.c_str());
    set_ok(c, "device.withdraw_features=RING_PACKED,ACCESS_PLATFORM");
    cr_expect(config_validate(c, err, true), "%s", err.message.c_str());
    cr_expect(validate(c, err), "%s", err.message.c_str());
}

Test(config, validate_checks_configs_built_in_code)
{
    vs_config c = config_defaults();
    c.pcie.lanes = 3;
    validate_fails(c, "pcie.lanes", "not one of 1, 2, 4, 8, 16");

    c = config_defaults();
    c.dev.notify_off_multiplier = 6;
    validate_fails(c, "device.notify_off_multiplier_bytes", "0 or a power of two in 4..4096");
    c.dev.notify_off_multiplier = 2;
    validate_fails(c, "device.notify_off_multiplier_bytes", "power of two");
    c.dev.notify_off_multiplier = 8192;
    validate_fails(c, "device.notify_off_multiplier_bytes", "power of two");
    param_error err;
    for (uint32_t ok : {0u, 4u, 8u, 4096u}) {
        c.dev.notify_off_multiplier = ok;
        cr_expect(validate(c, err), "multiplier %u: %s", ok, err.message.c_str());
    }

    c = config_defaults();
    c.drv.frame_sizes_count = 0;
    validate_fails(c, "driver.frame_sizes_bytes", "0 sizes given");

    c = config_defaults();
    c.sim.quantum_ns = NAN;
    validate_fails(c, "sim.quantum_ns", "not a finite number");

    c = config_defaults();
    c.dev.mac[0] = 0x01;
    validate_fails(c, "device.mac", "multicast");

    c = config_defaults();
    vs_feature_set(&c.drv.decline, 100);
    validate_fails(c, "driver.decline_features", "bit 100");
}

// ---- Resolved configuration ----

Test(config, resolved_lists_every_key_in_table_order)
{
    std::vector<std::string> names = table_names();
    auto resolved = config_resolved(config_defaults());
    cr_assert_eq(resolved.size(), names.size());
    for (size_t i = 0; i < names.size(); i++)
        cr_expect_eq(resolved[i].first, names[i]);

    json_t *flat = config_resolved_json(config_defaults(), false);
    cr_assert_eq(json_object_size(flat), names.size());
    size_t i = 0;
    const char *key;
    json_t *value;
    json_object_foreach(flat, key, value) {
        cr_expect_eq(std::string(key), names[i], "JSON key %zu is %s", i, key);
        i++;
    }
    cr_expect(json_is_integer(json_object_get(flat, "pcie.gen")));
    cr_expect(json_is_real(json_object_get(flat, "pcie.read_latency_ns")));
    cr_expect(json_is_string(json_object_get(flat, "device.mac")));
    cr_expect_str_eq(json_string_value(json_object_get(flat, "device.subsystem_vendor_id")), "0x1af4");
    cr_expect(json_is_array(json_object_get(flat, "driver.frame_sizes_bytes")));
    cr_expect_eq(json_array_size(json_object_get(flat, "driver.frame_sizes_bytes")), 3u);
    json_decref(flat);
}

Test(config, resolved_json_reads_back_as_the_same_config)
{
    vs_config c = config_defaults();
    for (const char *s : {"pcie.gen=5", "pcie.read_latency_ns=0.1", "device.mac=02:00:00:00:00:02",
                          "device.withdraw_features=EVENT_IDX,RING_RESET", "driver.mode=poll",
                          "driver.frame_sizes_bytes=60,1000", "sim.seed=18446744073709551615",
                          "sim.time_limit_ms=0.3", "device.subsystem_id=0xbeef"})
        set_ok(c, s);
    for (bool nested : {false, true}) {
        json_t *doc = config_resolved_json(c, nested);
        std::string path = temp_file(stats_json_text(doc));
        json_decref(doc);
        vs_config back = config_defaults();
        param_error err;
        cr_assert(config_apply_file(back, path, err), "%s", err.message.c_str());
        std::remove(path.c_str());
        cr_expect(config_resolved(back) == config_resolved(c), "nested=%d does not round-trip", nested);
    }
}

Test(config, default_json_holds_every_default)
{
    std::string path = source_dir() + "/configs/default.json";
    std::string text = read_file(path);
    cr_assert(!text.empty(), "cannot read %s", path.c_str());
    json_t *defaults = config_resolved_json(config_defaults(), true);
    cr_expect_eq(text, stats_json_text(defaults),
                 "%s is stale: regenerate with viosim params --json > configs/default.json", path.c_str());
    json_decref(defaults);

    // Every key, each at its default: apply it over a config where everything differs.
    vs_config c = config_defaults();
    param_error err;
    cr_assert(config_apply_file(c, path, err), "%s", err.message.c_str());
    cr_expect(config_resolved(c) == config_resolved(config_defaults()));
}

// The shipped IOMMU preset (docs/timing.md) loads, changes only iommu.* keys, and
// turns the paging-structure caches on.
Test(config, pcie_bench_vtd_preset_loads)
{
    vs_config c = config_defaults();
    param_error err;
    cr_assert(config_apply_file(c, source_dir() + "/configs/pcie-bench-vtd.json", err), "%s",
              err.message.c_str());
    const auto got = config_resolved(c), defaults = config_resolved(config_defaults());
    cr_assert_eq(got.size(), defaults.size());
    for (size_t i = 0; i < got.size(); i++) {
        if (got[i].second != defaults[i].second)
            cr_expect_eq(got[i].first.rfind("iommu.", 0), 0u, "%s", got[i].first.c_str());
    }
    cr_expect_gt(c.iommu.psc_level2_entries, 0u);
    cr_expect_gt(c.iommu.walk_read_overhead_ns, 0.0);
}

Test(config, parameters_md_is_up_to_date)
{
    std::string path = source_dir() + "/docs/parameters.md";
    std::string text = read_file(path);
    cr_assert(!text.empty(), "cannot read %s", path.c_str());
    cr_expect(text == config_params_markdown(),
              "%s is stale: regenerate with viosim params --markdown > docs/parameters.md", path.c_str());
    for (const std::string &name : table_names())
        cr_expect(contains(text, "`" + name + "`"), "%s missing from parameters.md", name.c_str());
}

// ---- Statistics ----

Test(stats, add_and_find_in_registration_order)
{
    stats_table t;
    t.add_u64("b.count", "count", stat_better::neutral, "second letter first", 7);
    t.add_f64("a.rate", "Gb/s", stat_better::higher, "a rate", 2.5);
    cr_assert_eq(t.entries().size(), 2u);
    cr_expect_eq(t.entries()[0].name, "b.count");
    cr_expect_eq(t.entries()[1].name, "a.rate");
    const stat_entry *e = t.find("a.rate");
    cr_assert(e != nullptr);
    cr_expect(e->is_float);
    cr_expect_eq(e->f64, 2.5);
    cr_expect_eq(e->unit, "Gb/s");
    e = t.find("b.count");
    cr_assert(e != nullptr);
    cr_expect(!e->is_float);
    cr_expect_eq(e->u64, 7u);
    cr_expect(t.find("c") == nullptr);
}

static stats_table sample_stats()
{
    stats_table t;
    t.add_u64("zeta.frames", "count", stat_better::neutral, "frames", 12345);
    t.add_f64("alpha.throughput", "Gb/s", stat_better::higher, "throughput", 1.0 / 3.0);
    t.add_f64("mid.undefined", "ns", stat_better::lower, "0/0", NAN);
    t.add_u64("big", "ps", stat_better::neutral, "beyond int64", UINT64_MAX);
    return t;
}

Test(stats, stats_json_is_deterministic_and_ordered)
{
    std::string dir = temp_dir();
    std::string p1 = dir + "/a.json", p2 = dir + "/b.json", err;
    for (const std::string &p : {p1, p2}) {
        json_t *config = config_resolved_json(config_defaults(), false);
        json_t *result = json_pack("{s:b, s:s}", "completed", 1, "driver_result", "OK");
        json_t *provenance = provenance_json(config_defaults());
        cr_assert(stats_write_json(p, provenance, config, result, sample_stats(), err), "%s",
                  err.c_str());
        json_decref(provenance);
        json_decref(config);
        json_decref(result);
    }
    std::string a = read_file(p1), b = read_file(p2);
    cr_expect(!a.empty() && a == b, "two writes differ");
    cr_expect_eq(a.back(), '\n');
    size_t version = a.find("\"viosim_version\""), provenance = a.find("\"provenance\""),
           config = a.find("\"config\""), result = a.find("\"result\""), stats = a.find("\"stats\"");
    cr_expect(version < provenance && provenance < config && config < result && result < stats,
              "top-level key order");
    size_t zeta = a.find("\"zeta.frames\""), alpha = a.find("\"alpha.throughput\"");
    cr_expect(zeta < alpha, "stats are not in registration order");
    cr_expect(contains(a, "\"unit\": \"count\",\n      \"better\": \"neutral\",\n      \"description\""),
              "\"better\" not between \"unit\" and \"description\"");
    cr_expect(a.find("\"pcie.gen\"") < a.find("\"sim.time_limit_ms\""), "config not in table order");
    cr_expect(contains(a, "0.333333333333333"), "15 significant digits");
    cr_expect(!contains(a, ".tmp"));

    json_error_t jerr;
    json_t *doc = json_loads(a.c_str(), 0, &jerr);
    cr_assert(doc != nullptr, "not JSON: %s", jerr.text);
    cr_expect_str_eq(json_string_value(json_object_get(doc, "viosim_version")), VIOSIM_VERSION);
    json_t *prov = json_object_get(doc, "provenance");
    cr_expect_str_eq(json_string_value(json_object_get(prov, "version")), build_version);
    cr_expect_str_eq(json_string_value(json_object_get(prov, "commit")), git_commit);
    const std::string hash = config_hash(config_defaults());
    cr_expect_str_eq(json_string_value(json_object_get(prov, "config_hash")), hash.c_str());
    cr_expect_eq(json_integer_value(json_object_get(prov, "seed")), 1);
    json_t *s = json_object_get(doc, "stats");
    json_t *frames = json_object_get(s, "zeta.frames");
    cr_expect_eq(json_integer_value(json_object_get(frames, "value")), 12345);
    cr_expect_str_eq(json_string_value(json_object_get(frames, "unit")), "count");
    cr_expect_str_eq(json_string_value(json_object_get(frames, "better")), "neutral");
    cr_expect_str_eq(json_string_value(
                         json_object_get(json_object_get(s, "alpha.throughput"), "better")),
                     "higher");
    cr_expect_str_eq(json_string_value(json_object_get(frames, "description")), "frames");
    cr_expect(json_is_null(json_object_get(json_object_get(s, "mid.undefined"), "value")));
    cr_expect(json_is_number(json_object_get(json_object_get(s, "big"), "value")));
    cr_expect_eq(json_object_size(json_object_get(doc, "config")), table_names().size());
    json_decref(doc);
    std::remove(p1.c_str());
    std::remove(p2.c_str());
    rmdir(dir.c_str());
}

// The configuration hash is FNV-1a 64 of the "config" object's text: it follows every
// setting, the seed included, and only the settings.
Test(stats, config_hash_follows_the_resolved_configuration)
{
    cr_expect_eq(fnv1a64_text(""), "fnv1a64:cbf29ce484222325"); // FNV-1a's offset basis
    cr_expect_eq(fnv1a64_text("a"), "fnv1a64:af63dc4c8601ec8c");
    const vs_config base = config_defaults();
    cr_expect_eq(config_hash(base), config_hash(config_defaults()));
    json_t *config = config_resolved_json(base, false);
    cr_expect_eq(config_hash(base), fnv1a64_text(stats_json_text(config)));
    json_decref(config);
    for (const char *set : {"sim.seed=2", "pcie.lanes=4", "driver.frames_count=7"}) {
        vs_config c = config_defaults();
        param_error err;
        cr_assert(config_apply_set(c, set, err), "%s", err.message.c_str());
        cr_expect_neq(config_hash(c), config_hash(base), "%s", set);
    }
    vs_config big = config_defaults();
    param_error err;
    cr_assert(config_apply_set(big, "sim.seed=18446744073709551615", err));
    json_t *prov = provenance_json(big);
    cr_expect_str_eq(json_string_value(json_object_get(prov, "seed")), "18446744073709551615");
    json_decref(prov);
}

Test(stats, write_fails_cleanly)
{
    std::string err;
    cr_expect(!stats_write_json("/nonexistent/dir/stats.json", nullptr, nullptr, nullptr,
                                sample_stats(), err));
    cr_expect(contains(err, "/nonexistent/dir/stats.json"), "%s", err.c_str());
}

Test(stats, text_tables_are_aligned)
{
    std::string path = temp_file("", ".txt");
    FILE *f = std::fopen(path.c_str(), "w");
    cr_assert(f != nullptr);
    stats_print_pairs(f, {{"frames", "10"}, {"throughput up", "1.5 Gb/s"}});
    stats_print_table(f, sample_stats());
    std::fclose(f);
    std::string text = read_file(path);
    std::remove(path.c_str());
    cr_expect(contains(text, "frames         10\n"), "%s", text.c_str());
    cr_expect(contains(text, "throughput up  1.5 Gb/s\n"), "%s", text.c_str());
    cr_expect(contains(text, "zeta.frames     "), "%s", text.c_str());
    cr_expect(contains(text, "  count  neutral  frames\n"), "%s", text.c_str());
    cr_expect(contains(text, "  Gb/s   higher   throughput\n"), "%s", text.c_str());
}

// ---- The viosim command line ----

Test(cli, params_lists_every_key)
{
    exec_result r = run_viosim({"params"});
    cr_expect_eq(r.status, 0, "stderr: %s", r.err.c_str());
    for (const param_info &p : config_params()) {
        cr_expect(contains(r.out, p.name + " "), "%s missing from viosim params", p.name.c_str());
        cr_expect(contains(r.out, p.meaning), "meaning of %s missing", p.name.c_str());
    }
}

Test(cli, params_markdown_and_json_match_the_library)
{
    exec_result md = run_viosim({"params", "--markdown"});
    cr_expect_eq(md.status, 0);
    cr_expect(md.out == config_params_markdown());
    exec_result js = run_viosim({"params", "--json"});
    cr_expect_eq(js.status, 0);
    json_t *defaults = config_resolved_json(config_defaults(), true);
    cr_expect(js.out == stats_json_text(defaults));
    json_decref(defaults);
}

Test(cli, run_unknown_key_is_a_usage_error)
{
    std::string dir = temp_dir(), out = dir + "/out";
    exec_result r = run_viosim({"run", "--set", "bogus=1", "--out", out});
    expect_usage_error(r, "bogus");
    cr_expect(contains(r.err, "unknown parameter 'bogus'"), "%s", r.err.c_str());
    struct stat st;
    cr_expect(stat(out.c_str(), &st) != 0, "the output directory was created before the error");
    rmdir(dir.c_str());
}

Test(cli, run_bad_value_is_a_usage_error)
{
    std::string dir = temp_dir(), out = dir + "/out";
    exec_result r = run_viosim({"run", "--set", "pcie.lanes=3", "--out", out});
    expect_usage_error(r, "pcie.lanes");
    cr_expect(contains(r.err, "3 is not one of 1, 2, 4, 8, 16"), "%s", r.err.c_str());
    struct stat st;
    cr_expect(stat(out.c_str(), &st) != 0, "the output directory was created before the error");
    rmdir(dir.c_str());
}

Test(cli, run_usage_errors)
{
    expect_usage_error(run_viosim({"run", "--seed", "abc"}), "sim.seed");
    expect_usage_error(run_viosim({"run", "--seed"}), "--seed");
    expect_usage_error(run_viosim({"run", "--set"}), "--set");
    expect_usage_error(run_viosim({"run", "--bogus"}), "--bogus");
    expect_usage_error(run_viosim({"run", "/nonexistent/cfg.json"}), "/nonexistent/cfg.json");
    expect_usage_error(run_viosim({"run", "a.json", "b.json"}), "more than one config file");
    expect_usage_error(run_viosim({"run", "--set", "driver.queue_size_entries=512"}),
                       "driver.queue_size_entries");
    expect_usage_error(run_viosim({"frobnicate"}), "unknown command 'frobnicate'");
    expect_usage_error(run_viosim({"params", "--yaml"}), "--yaml");

    std::string bad = temp_file(R"({"pcie": {"gen": 9}})");
    expect_usage_error(run_viosim({"run", bad}), bad + ": parameter 'pcie.gen'");
    std::remove(bad.c_str());

    exec_result none = run_viosim({});
    cr_expect_eq(none.status, 2);
    cr_expect(contains(none.err, "usage:"), "%s", none.err.c_str());
}

Test(cli, help_and_version)
{
    // The build's version (the commit and the state of its tree, embedded at build time),
    // from both spellings: "viosim 0.1+<12 hex>[.dirty.<16 hex>]" or "viosim 0.1+unknown",
    // then the commit (40 hex or unknown) and the tree (clean, dirty or unknown).
    exec_result r = run_viosim({"--version"});
    cr_expect_eq(r.status, 0);
    char version[128] = "", commit[64] = "", tree[16] = "";
    cr_assert_eq(std::sscanf(r.out.c_str(), "viosim %127s\ncommit %63s\ntree %15s", version, commit,
                             tree), 3, "%s", r.out.c_str());
    const std::string v = version, c = commit, t = tree;
    cr_expect_eq(r.out, "viosim " + v + "\ncommit " + c + "\ntree " + t + "\n");
    if (c == "unknown") {
        cr_expect_eq(v, std::string(VIOSIM_VERSION) + "+unknown");
        cr_expect_eq(t, "unknown");
    } else {
        cr_expect_eq(c.size(), 40u, "%s", commit);
        cr_expect_eq(c.find_first_not_of("0123456789abcdef"), std::string::npos, "%s", commit);
        cr_expect(t == "clean" || t == "dirty", "%s", tree);
        const std::string want = std::string(VIOSIM_VERSION) + "+" + c.substr(0, 12);
        cr_expect_eq(v.substr(0, want.size()), want, "%s", version);
        cr_expect_eq(v.size(), t == "dirty" ? want.size() + 23 : want.size(), "%s", version);
    }
    exec_result word = run_viosim({"version"});
    cr_expect_eq(word.status, 0);
    cr_expect_eq(word.out, r.out);
    for (const char *h : {"--help", "help", "-h"}) {
        r = run_viosim({h});
        cr_expect_eq(r.status, 0);
        cr_expect(contains(r.out, "viosim run [CONFIG] [--set key=value]... [--out DIR] [--seed N]"));
    }
    r = run_viosim({"run", "--help"});
    cr_expect_eq(r.status, 0);
    cr_expect(contains(r.out, "--seed N"));
}

// Every time becomes an sc_time: a 64-bit count of picoseconds (top.cpp sets a 1 ps
// resolution), converted from a double without a range check. A positive value that
// rounds to 0 ps, or one beyond the range, would be undefined behaviour or a silent 0
// (UBSan: host.cpu_clock_mhz=1e-300 overflowed; sim.quantum_ns=4.9e-324 was a 0 quantum).
// So for every time and frequency parameter: a tiny positive value is refused unless 0
// itself is allowed (a latency of 0), and a value whose time passes 1e16 ps (the largest
// time limit) or whose period falls below 1 ps is refused.
Test(config, times_fit_the_picosecond_resolution)
{
    // Picoseconds per unit of a time; for a frequency or rate, picoseconds of its
    // period times the value (period_ps = per / value).
    const struct {
        const char *unit;
        double ps_per_unit; // time units
        double period_ps_times_value; // frequencies and rates
    } units[] = {
        {"ps", 1, 0}, {"ns", 1e3, 0}, {"us", 1e6, 0}, {"ms", 1e9, 0},
        {"MHz", 0, 1e6}, {"Mpps", 0, 1e6}, {"bytes_per_ns", 0, 1e3 /* one byte */},
    };
    const vs_config defaults = config_defaults();
    size_t checked = 0;
    for (const param_info &p : config_params()) {
        const auto *u = std::find_if(std::begin(units), std::end(units),
                                     [&](const auto &x) { return p.unit == x.unit; });
        if (u == std::end(units))
            continue;
        checked++;
        param_error err;
        for (const char *tiny : {"4.9e-324", "1e-300", "1e-13"}) {
            vs_config c = defaults;
            if (config_apply_set(c, p.name + "=" + tiny, err)) {
                vs_config zero = defaults;
                cr_expect(config_apply_set(zero, p.name + "=0", err),
                          "%s=%s is accepted but 0 is not: a period that rounds to 0 ps",
                          p.name.c_str(), tiny);
            }
        }
        char big[64];
        if (u->ps_per_unit > 0)
            std::snprintf(big, sizeof big, "%.17g", 1.001e16 / u->ps_per_unit);
        else
            std::snprintf(big, sizeof big, "%.17g", u->period_ps_times_value * 1.001);
        vs_config c = defaults;
        cr_expect(!config_apply_set(c, p.name + "=" + big, err),
                  "%s=%s accepted: %s", p.name.c_str(), big,
                  u->ps_per_unit > 0 ? "more than 1e16 ps" : "a period below 1 ps");
    }
    cr_expect_geq(checked, 20u, "only %zu time and frequency parameters found", checked);

    // The boundaries, at the value and just past it.
    set_fails("host.cpu_clock_mhz=0.999", "host.cpu_clock_mhz", "out of range 1..100000");
    set_fails("device.clock_mhz=1e-300", "device.clock_mhz", "out of range 1..100000");
    set_fails("sim.quantum_ns=0.0009", "sim.quantum_ns", "out of range 0.001..");
    set_fails("sim.quantum_ns=4.9e-324", "sim.quantum_ns", "out of range 0.001..");
    set_fails("driver.tx_rate_mpps=1e-7", "driver.tx_rate_mpps", "must be 0 or 1e-06..1000000");
    set_fails("driver.onoff_on_us=1e-7", "driver.onoff_on_us", "out of range 1e-06..");
    set_fails("software.copy_bytes_per_ns=0.0009", "software.copy_bytes_per_ns", "out of range 0.001..");
    vs_config c = defaults;
    for (const char *ok : {"host.cpu_clock_mhz=1", "device.clock_mhz=100000", "sim.quantum_ns=0.001",
                           "sim.time_limit_ms=1e-09", "driver.tx_rate_mpps=1e-6",
                           "driver.tx_rate_mpps=0", "driver.onoff_on_us=1e-6",
                           "software.copy_bytes_per_ns=0.001"})
        set_ok(c, ok);
}

// One operation's cycles at its clock take at most 1 s, so a batch of them still fits
// an sc_time: at 1 MHz, 1e6 cycles pass and one more is refused, naming the cycles key.
Test(config, cycles_at_their_clock_fit)
{
    param_error err;
    vs_config c = config_defaults();
    cr_expect(validate(c, err), "%s", err.message.c_str());
    set_ok(c, "host.cpu_clock_mhz=1");
    set_ok(c, "host.irq_entry_cycles=1000000");
    cr_expect(validate(c, err), "%s", err.message.c_str());
    set_ok(c, "host.irq_entry_cycles=1000001");
    validate_fails(c, "host.irq_entry_cycles", "take more than 1 s (at most 1000000 cycles)");

    c = config_defaults();
    set_ok(c, "device.clock_mhz=1");
    set_ok(c, "device.desc_cycles=1000001");
    validate_fails(c, "device.desc_cycles", "device.clock_mhz=1");

    // At the default clocks every value in the cycles' own range passes.
    c = config_defaults();
    for (const param_info &p : config_params())
        if (p.unit == "cycles")
            set_ok(c, p.name + "=1000000000");
    cr_expect(validate(c, err), "%s", err.message.c_str());
}

// "Split Virtqueues": "Queue Size value is always a power of 2"; "Packed Virtqueues /
// Structure Size and Alignment": "The Queue Size value does not have to be a power of
// 2". A split ring of 3 used to be rounded down to 2 by the driver while stats.json said 3.
Test(config, split_ring_size_must_be_a_power_of_two)
{
    param_error err;
    vs_config c = config_defaults();
    set_ok(c, "driver.queue_size_entries=3");
    cr_expect(validate(c, err), "packed ring of 3: %s", err.message.c_str());
    set_ok(c, "driver.decline_features=RING_PACKED");
    validate_fails(c, "driver.queue_size_entries", "3 is not a power of two");
    set_ok(c, "driver.queue_size_entries=4");
    cr_expect(validate(c, err), "split ring of 4: %s", err.message.c_str());

    c = config_defaults();
    set_ok(c, "device.withdraw_features=RING_PACKED");
    set_ok(c, "driver.queue_size_entries=255");
    validate_fails(c, "driver.queue_size_entries", "split ring");

    exec_result r = run_viosim({"run", "--set", "driver.decline_features=RING_PACKED", "--set",
                                "driver.queue_size_entries=3", "--out", temp_dir() + "/out"});
    expect_usage_error(r, "driver.queue_size_entries");
}

// A section no parameter belongs to is an unknown key even when it sets nothing:
// {"foo": {}} was accepted silently, top-level and nested.
Test(config, unknown_empty_section_is_refused)
{
    file_fails(R"({"foo": {}})", "foo", "unknown parameter 'foo'");
    file_fails(R"({"pcie": {"foo": {}}})", "pcie.foo", "unknown parameter 'pcie.foo'");
    // An unknown section is named by the first key it holds: an old file's
    // {"serve": {"queue_pairs": 2}} names serve.queue_pairs (now device.queue_pairs_count).
    file_fails(R"({"foo": {"bar": {}}})", "foo.bar", "unknown parameter 'foo.bar'");
    file_fails(R"({"serve": {"queue_pairs": 2}})", "serve.queue_pairs",
               "unknown parameter 'serve.queue_pairs'");
    file_fails(R"({"pcie": {"gen": {}}})", "pcie.gen", "expected an integer");
    // A known section with nothing in it sets nothing, and is fine.
    vs_config c = config_defaults();
    param_error err;
    cr_expect(apply_file_text(R"({"pcie": {}, "driver": {"frames_count": 5}})", c, err), "%s",
              err.message.c_str());
    cr_expect_eq(c.drv.frames_count, 5u);
}

// Control characters in echoed input are escaped: a key holding a newline made a
// two-line message (the config fuzz target aborted on it).
Test(config, echoed_input_stays_on_one_line)
{
    // The key is named escaped; err.key stays the key as given.
    const struct {
        const char *text, *key, *fragment;
    } files[] = {
        {"{\"a\\nb\": 1}", "a\nb", "unknown parameter 'a\\nb'"},
        {"{\"\\t\": {}}", "\t", "unknown parameter '\\t'"},
        {"{\"pcie\": {\"gen\": \"4\\r\\u0001\"}}", "pcie.gen", "'4\\r\\x01' is not an integer"},
    };
    param_error err;
    vs_config c = config_defaults();
    for (const auto &f : files) {
        std::string path;
        cr_expect(!apply_file_text(f.text, c, err, &path), "accepted: %s", f.text);
        std::remove(path.c_str());
        cr_expect_eq(err.key, f.key);
        cr_expect(contains(err.message, f.fragment), "lacks %s: %s", f.fragment, err.message.c_str());
        cr_expect_eq(err.message.find_first_of("\n\r\t\x01"), std::string::npos, "%s",
                     err.message.c_str());
    }
    cr_expect(!config_apply_set(c, "x\ny=1", err));
    cr_expect(contains(err.message, "'x\\ny'"), "%s", err.message.c_str());
    cr_expect(!config_apply_set(c, "no equals\n", err));
    cr_expect_eq(err.message.find('\n'), std::string::npos, "%s", err.message.c_str());
    cr_expect(!config_apply_file(c, "/nonexistent/a\nb.json", err));
    cr_expect(contains(err.message, "a\\nb.json"), "%s", err.message.c_str());
    cr_expect_eq(config_escaped(std::string("a\x7f\x1b\tz\\", 6)), "a\\x7f\\x1b\\tz\\");

    // Through the command line: paths and keys, one line on stderr.
    expect_usage_error(run_viosim({"run", "--set", "bad\nkey=1"}), "'bad\\nkey'");
    expect_usage_error(run_viosim({"run", "/nonexistent/x\ny.json"}), "x\\ny.json");
    expect_usage_error(run_viosim({"run", "--bogus\nopt"}), "--bogus\\nopt");
}

// An output file the run cannot write is refused before the run, naming the path (it
// used to fail with exit 1 after the whole run): --trace and --vcd into a missing
// directory or onto a directory, and a directory where --out's stats.json goes.
Test(cli, unwritable_output_paths_refused_before_the_run)
{
    const std::string dir = temp_dir(), out = dir + "/out";
    mkdir((dir + "/d.vcd").c_str(), 0755);
    const std::vector<std::string> quick = {"run", "--set", "driver.frames_count=10", "--out", out};
    const struct {
        std::vector<std::string> args;
        std::string named;
    } cases[] = {
        {{"--trace", dir + "/missing/t.json"}, "--trace: cannot write '" + dir + "/missing/t.json'"},
        {{"--trace", dir}, "it is a directory"},
        {{"--vcd", dir + "/missing/w.vcd"}, "directory '" + dir + "/missing' does not exist"},
        {{"--vcd", dir + "/d.vcd"}, "--vcd: cannot write '" + dir + "/d.vcd': it is a directory"},
    };
    for (const auto &c : cases) {
        std::vector<std::string> args = quick;
        args.insert(args.end(), c.args.begin(), c.args.end());
        expect_usage_error(run_viosim(args), c.named);
        struct stat st;
        cr_expect(stat((out + "/stats.json").c_str(), &st) != 0, "%s: the run ran",
                  c.named.c_str());
    }
    mkdir((dir + "/o2").c_str(), 0755);
    mkdir((dir + "/o2/stats.json").c_str(), 0755);
    expect_usage_error(run_viosim({"run", "--set", "driver.frames_count=10", "--out", dir + "/o2"}),
                       "cannot write '" + dir + "/o2/stats.json': it is a directory");
    // A trace into the output directory it creates is fine.
    exec_result ok = run_viosim({"run", "--set", "driver.frames_count=10", "--out", dir + "/o3",
                                 "--trace", dir + "/o3/t.json"});
    cr_expect_eq(ok.status, 0, "%s", ok.err.c_str());
}

// Cross-parameter checks of the timing-fidelity parameters.
Test(config, timing_cross_checks_name_the_key)
{
    vs_config c = config_defaults();
    c.pcie.read_latency_ns = 100; // below a 64-byte read's known parts
    validate_fails(c, "pcie.read_latency_ns", "shorter than");

    c = config_defaults();
    c.iommu.iotlb_entries = 64;
    c.iommu.iotlb_ways = 3;
    validate_fails(c, "iommu.iotlb_ways", "power of two");

    c = config_defaults();
    c.iommu.atc_entries = 48;
    c.iommu.atc_ways = 4; // 12 sets
    validate_fails(c, "iommu.atc_ways", "power of two");

    c = config_defaults();
    c.drv.iova_offset = 4096 * 3;
    c.drv.iommu_page_bytes = 2097152;
    validate_fails(c, "driver.iova_offset_bytes", "multiple");

    c = config_defaults();
    c.bench.enabled = true;
    c.bench.window_bytes = (c.memory.size_mib << 20) + 4096;
    validate_fails(c, "bench.window_bytes", "host memory");

    param_error err;
    cr_expect(validate(config_defaults(), err), "%s", err.message.c_str());
}
