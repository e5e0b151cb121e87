// test_conformance.cpp -- every driver-conformance rule the reference driver can break
// (driver.inject_violation, docs/conformance.md) is caught through the whole simulator:
// the register file and the ring kernels see it, stats.json lists it, and
// `viosim run --strict` stops with exit status 3. A clean driver breaks none, in every
// ring format. The expected rule of each injection is written out here, not taken
// from the driver, so a mismatch between an injection and what the device reports fails.

#include "common/viosim_run.hpp"

#include <cstring>

namespace {

// One injection: the rule the device must report first, the device reason for
// RING_RULE (else ""), the driver's result without --strict, and the configuration it
// needs beyond the defaults (packed rings, IOMMU on, coalescing off).
struct injection {
    const char *name;
    const char *rule;
    const char *reason;
    const char *driver_result;
    std::vector<std::string> extra;
};

const std::vector<std::string> split = {"--set", "driver.decline_features=RING_PACKED"};
const std::vector<std::string> coal = {"--set", "driver.coal_policy=static"};
// Two pairs in use of the device's four.
const std::vector<std::string> mq = {"--set", "device.queue_pairs_count=4", "--set",
                                     "driver.queue_pairs_count=2"};

const std::vector<injection> &injections()
{
    static const std::vector<injection> all = {
        {"status_bit_cleared", "STATUS_BIT_CLEARED", "", "ok", {}},
        {"status_reserved_bit", "STATUS_RESERVED_BIT", "", "ok", {}},
        {"init_order", "INIT_ORDER", "", "ok", {}},
        {"init_after_failed", "INIT_AFTER_FAILED", "", "ok", {}},
        {"reset_not_awaited", "RESET_NOT_AWAITED", "", "ok", {}},
        {"feature_not_offered", "FEATURE_NOT_OFFERED", "", "features_refused", {}},
        {"feature_version_1_declined", "FEATURE_VERSION_1_DECLINED", "", "features_refused", {}},
        {"feature_dependency", "FEATURE_DEPENDENCY", "", "features_refused", {}},
        {"feature_after_features_ok", "FEATURE_AFTER_FEATURES_OK", "", "ok", {}},
        {"read_only_field_written", "READ_ONLY_FIELD_WRITTEN", "", "ok", {}},
        {"queue_size_zero", "QUEUE_SIZE_ZERO", "", "ok", {}},
        {"queue_size_not_power_of_2", "QUEUE_SIZE_NOT_POWER_OF_2", "", "ok", split},
        {"queue_config_after_enable", "QUEUE_CONFIG_AFTER_ENABLE", "", "ok", {}},
        {"queue_enable_zero", "QUEUE_ENABLE_ZERO", "", "ok", {}},
        {"queue_reset_not_negotiated", "QUEUE_RESET_NOT_NEGOTIATED", "", "ok", {}},
        {"notify_before_driver_ok", "NOTIFY_BEFORE_DRIVER_OK", "", "ok", {}},
        {"notify_width", "NOTIFY_WIDTH", "", "ok", {}},
        {"notify_wrong_queue", "NOTIFY_WRONG_QUEUE", "", "ok", {}},
        {"notify_queue_not_enabled", "NOTIFY_QUEUE_NOT_ENABLED", "", "ok", {}},
        {"ctrl_coal_not_negotiated", "CTRL_COAL_NOT_NEGOTIATED", "", "ok", coal},
        {"ctrl_coal_vq_index", "CTRL_COAL_VQ_INDEX", "", "ok", coal},
        {"ctrl_mq_pairs", "CTRL_MQ_PAIRS", "", "ok", mq},
        {"ctrl_mq_pairs_not_enabled", "CTRL_MQ_PAIRS_NOT_ENABLED", "", "ok", mq},
        {"tx_queue_not_in_use", "TX_QUEUE_NOT_IN_USE", "", "ok", mq},
        {"tx_has_writable", "RING_RULE", "TX_HAS_WRITABLE", "device_error", {}},
        {"rx_has_readable", "RING_RULE", "RX_HAS_READABLE", "device_error", {}},
        {"desc_zero_length", "RING_RULE", "DESC_ZERO_LENGTH", "device_error", {}},
        {"tx_frame_too_short", "RING_RULE", "TX_FRAME_TOO_SHORT", "device_error", {}},
        {"rx_buffer_too_small", "RING_RULE", "RX_BUFFER_TOO_SMALL", "device_error", {}},
        {"ring_misaligned", "RING_RULE", "RING_MISALIGNED", "device_error", {}},
        // Refused before the device is reset, so the run itself goes on cleanly.
        {"msix_reserved_bits", "RING_RULE", "MSIX_RESERVED_BITS", "ok", {}},
    };
    return all;
}

const unsigned FRAMES = 50;

std::vector<std::string> args_for(const injection &in, const char *value, bool strict)
{
    std::vector<std::string> a;
    if (strict)
        a.push_back("--strict");
    a.insert(a.end(), {"--set", "driver.frames_count=" + std::to_string(FRAMES), "--set",
                       std::string("driver.inject_violation=") + value});
    a.insert(a.end(), in.extra.begin(), in.extra.end());
    return a;
}

json_t *conformance(const run_out &r)
{
    return json_object_get(json_object_get(r.stats, "result"), "conformance");
}

std::string str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

// --strict: exit 3 at the first violation, which is the injected rule.
void expect_strict_stop(const injection &in, const char *value)
{
    run_out r;
    run(r, args_for(in, value, true));
    cr_assert_not_null(r.stats, "%s: no stats.json\nstderr:\n%s", in.name, r.err.c_str());
    cr_expect_eq(r.status, 3, "%s: exit %d\nstderr:\n%s", in.name, r.status, r.err.c_str());
    json_t *first = json_array_get(json_object_get(conformance(r), "first"), 0);
    cr_assert_not_null(first, "%s: no violation listed", in.name);
    cr_expect_eq(str(first, "rule"), in.rule, "%s: first rule %s", in.name, str(first, "rule").c_str());
    cr_expect_eq(str(first, "reason"), in.reason, "%s: reason %s", in.name,
                 str(first, "reason").c_str());
    cr_expect(r.err.find(in.rule) != std::string::npos, "%s: stderr does not name %s:\n%s", in.name,
              in.rule, r.err.c_str());
}

} // namespace

// Every injection, with --strict: exit status 3 and the expected rule (and reason) first.
Test(conformance_inject, strict_stops_at_the_injected_rule)
{
    for (const injection &in : injections())
        expect_strict_stop(in, in.name);
}

// Without --strict the run goes on: the injected rule is the only one in by_rule,
// counted once (the driver breaks it once and otherwise behaves), and the driver ends
// as the mistake makes it end: ok for an ignored register write, features_refused
// when FEATURES_OK is refused, device_error when the device entered NEEDS_RESET.
Test(conformance_inject, recorded_once_without_strict)
{
    for (const injection &in : injections()) {
        run_out r;
        run(r, args_for(in, in.name, false));
        cr_assert_not_null(r.stats, "%s: no stats.json\nstderr:\n%s", in.name, r.err.c_str());
        json_t *c = conformance(r);
        json_t *by_rule = json_object_get(c, "by_rule");
        cr_expect_eq(json_object_size(by_rule), 1u, "%s: %zu rules broken", in.name,
                     json_object_size(by_rule));
        cr_expect_eq(json_integer_value(json_object_get(by_rule, in.rule)), 1, "%s: %s not counted once",
                     in.name, in.rule);
        cr_expect_eq(json_integer_value(json_object_get(c, "violations")), 1, "%s", in.name);
        cr_expect_eq(r.stat("conformance.violations"), 1, "%s", in.name);
        cr_expect_eq(r.result("driver_result"), in.driver_result, "%s: driver_result %s", in.name,
                     r.result("driver_result").c_str());
        if (std::strcmp(in.driver_result, "ok") == 0) {
            cr_expect_eq(r.status, 0, "%s: exit %d", in.name, r.status);
            cr_expect_eq(r.stat("driver.rx.frames"), FRAMES, "%s", in.name);
        }
    }
}

// The ring and buffer mistakes are caught by the split ring kernel too.
Test(conformance_inject, ring_rules_caught_with_split_rings)
{
    for (const injection &in : injections()) {
        if (std::strcmp(in.rule, "RING_RULE") != 0)
            continue;
        injection s = in;
        s.extra = split;
        expect_strict_stop(s, s.name);
    }
}

// A rule name is accepted as in the rule table (upper case) too.
Test(conformance_inject, rule_name_in_any_case)
{
    expect_strict_stop(injections()[0], "STATUS_BIT_CLEARED");
}

// A value that is no injection is refused, naming the key and the allowed values;
// so is an injection the configuration gives no chance to happen.
Test(conformance_inject, invalid_values_refused)
{
    run_out r;
    run(r, {"--set", "driver.inject_violation=notify_sideways"});
    cr_expect_eq(r.status, 2);
    cr_expect(r.err.find("driver.inject_violation") != std::string::npos, "%s", r.err.c_str());
    cr_expect(r.err.find("notify_width") != std::string::npos, "%s", r.err.c_str());

    run_out c;
    run(c, {"--set", "driver.inject_violation=ctrl_coal_vq_index"});
    cr_expect_eq(c.status, 2);
    cr_expect(c.err.find("driver.coal_policy") != std::string::npos, "%s", c.err.c_str());

    run_out q;
    run(q, {"--set", "driver.inject_violation=queue_size_zero", "--set",
            "driver.decline_features=RING_PACKED"});
    cr_expect_eq(q.status, 2);
    cr_expect(q.err.find("driver.inject_violation") != std::string::npos, "%s", q.err.c_str());

    run_out t;
    run(t, {"--set", "driver.inject_violation=tx_has_writable", "--set", "driver.tx_layout=chain"});
    cr_expect_eq(t.status, 2);
    cr_expect(t.err.find("driver.tx_layout") != std::string::npos, "%s", t.err.c_str());
}

// The clean driver breaks no rule in any ring format: packed and split, with and without
// the IOMMU, and with the control queue (static and adaptive coalescing) -- also under
// --strict.
Test(conformance_inject, clean_driver_breaks_no_rule)
{
    const std::vector<std::vector<std::string>> configs = {
        {},
        {"--set", "driver.decline_features=RING_PACKED"},
        {"--set", "driver.decline_features=ACCESS_PLATFORM"},
        {"--set", "driver.decline_features=RING_PACKED,ACCESS_PLATFORM"},
        {"--set", "driver.coal_policy=static", "--set", "driver.coal_rx_max_packets=8"},
        {"--set", "driver.coal_policy=adaptive", "--set", "driver.tx_rate_mpps=0.5"},
        {"--set", "driver.coal_policy=adaptive", "--set", "driver.tx_rate_mpps=0.5", "--set",
         "driver.decline_features=RING_PACKED"},
        {"--set", "driver.tx_layout=indirect", "--set", "driver.mode=napi"},
    };
    for (const auto &cfg : configs) {
        std::vector<std::string> a = {"--strict", "--set", "driver.frames_count=400"};
        a.insert(a.end(), cfg.begin(), cfg.end());
        run_out r;
        run(r, a);
        expect_clean_loopback(r, 400);
        cr_expect_eq(r.stat("conformance.violations"), 0);
        cr_expect_eq(json_integer_value(json_object_get(conformance(r), "violations")), 0);
        cr_expect_eq(json_object_size(json_object_get(conformance(r), "by_rule")), 0u);
    }
}
