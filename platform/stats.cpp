// stats.cpp -- the statistics table and its JSON and text forms.
#include "stats.h"

extern "C" {
#include "conformance.h"
}
#include "virtio_net.h"

#include <jansson.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

namespace viosim {

// ---- stats_table ----

void stats_table::add(stat_entry e)
{
    auto it = index_.find(e.name);
    if (it != index_.end()) {
        assert(!"statistic registered twice");
        entries_[it->second] = std::move(e);
        return;
    }
    index_.emplace(e.name, entries_.size());
    entries_.push_back(std::move(e));
}

void stats_table::add_u64(const std::string &name, const std::string &unit, stat_better better,
                          const std::string &description, uint64_t value)
{
    add({name, unit, better, description, false, value, 0.0});
}

void stats_table::add_f64(const std::string &name, const std::string &unit, stat_better better,
                          const std::string &description, double value)
{
    add({name, unit, better, description, true, 0, value});
}

const char *stat_better_name(stat_better b)
{
    switch (b) {
    case stat_better::higher:
        return "higher";
    case stat_better::lower:
        return "lower";
    case stat_better::neutral:
        break;
    }
    return "neutral";
}

const stat_entry *stats_table::find(const std::string &name) const
{
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
}

// ---- histograms ----

hist_ptr hist_make()
{
    hist_ptr h(hist_new());
    if (!h)
        throw std::bad_alloc();
    return h;
}

double hist_percentile_ns(const hist &h, double q)
{
    return hist_percentile(&h, q) / 1000.0;
}

void stats_add_coarse_hist(stats_table &s, const std::string &n, const hist &h, unsigned k_first,
                           unsigned k_last, const char *row_description, const char *rest_description)
{
    uint64_t below_previous = 0;
    for (unsigned k = k_first; k <= k_last; k++) {
        const uint64_t bound_ps = (uint64_t(1) << k) * 1000;
        assert(hist_is_boundary(bound_ps));
        const uint64_t below = hist_count_below(&h, bound_ps);
        s.add_u64(n + ".hist.lt_" + std::to_string(uint64_t(1) << k) + "_ns", "count", stat_better::neutral, row_description,
                  below - below_previous);
        below_previous = below;
    }
    s.add_u64(n + ".hist.ge_" + std::to_string(uint64_t(1) << k_last) + "_ns", "count", stat_better::neutral,
              rest_description, h.count - below_previous);
}

// ---- JSON ----

namespace {

// 15 significant digits: enough for any measured quantity, and values computed in a
// slightly different order do not show noise in the last digits.
constexpr size_t JSON_DUMP_FLAGS = JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15);

json_t *stat_value_json(const stat_entry &e)
{
    if (e.is_float)
        return std::isfinite(e.f64) ? json_real(e.f64) : json_null();
    if (e.u64 > static_cast<uint64_t>(INT64_MAX))
        return json_real(static_cast<double>(e.u64));
    return json_integer(static_cast<json_int_t>(e.u64));
}

std::string format_stat_value(const stat_entry &e)
{
    char buf[64];
    if (e.is_float)
        std::snprintf(buf, sizeof buf, "%.6g", e.f64);
    else
        std::snprintf(buf, sizeof buf, "%" PRIu64, e.u64);
    return buf;
}

} // namespace

json_t *stats_to_json(const stats_table &stats)
{
    json_t *obj = json_object();
    for (const stat_entry &e : stats.entries()) {
        json_t *item = json_object();
        json_object_set_new(item, "value", stat_value_json(e));
        json_object_set_new(item, "unit", json_string(e.unit.c_str()));
        json_object_set_new(item, "better", json_string(stat_better_name(e.better)));
        json_object_set_new(item, "description", json_string(e.description.c_str()));
        json_object_set_new(obj, e.name.c_str(), item);
    }
    return obj;
}

namespace {

// The documented statistics, then the families docs/statistics.md describes in words.
std::vector<documented_stat> known_stats()
{
    std::vector<documented_stat> known;
    for (const documented_stat *d = documented_stats; d->name; d++)
        known.push_back(*d);
    static const documented_stat families[] = {
        {"device.dma.<kind>.reads", stat_better::lower},
        {"device.dma.<kind>.writes", stat_better::lower},
        {"iommu.first_fault.<field>", stat_better::neutral},
        {"device.error.<field>", stat_better::neutral},
    };
    for (const documented_stat &f : families)
        known.push_back(f);
    return known;
}

bool all_digits(const std::string &s)
{
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

std::vector<std::string> components(const std::string &name)
{
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        const size_t dot = name.find('.', start);
        out.push_back(name.substr(start, dot - start));
        if (dot == std::string::npos)
            return out;
        start = dot + 1;
    }
}

bool matches(const std::vector<std::string> &name, const std::vector<std::string> &pattern)
{
    if (name.size() != pattern.size())
        return false;
    for (size_t i = 0; i < name.size(); i++) {
        const std::string &p = pattern[i], &c = name[i];
        if (p == c)
            continue;
        if ((p == "<n>" || all_digits(p)) && all_digits(c))
            continue;
        if (p.size() > 2 && p.front() == '<' && p.back() == '>' && p != "<n>" && !c.empty())
            continue;
        // "rx<k>": rx followed by a number (the queues of pair k, stats_queue_label).
        const size_t k = p.size() > 3 ? p.size() - 3 : std::string::npos;
        if (k != std::string::npos && p.compare(k, 3, "<k>") == 0 && c.size() > k &&
            c.compare(0, k, p, 0, k) == 0 && all_digits(c.substr(k)))
            continue;
        return false;
    }
    return true;
}

} // namespace

std::string stats_queue_label(unsigned q, unsigned num_queues, unsigned ctrl)
{
    if (q == (ctrl == ~0u ? num_queues - 1 : ctrl))
        return "ctrl";
    const unsigned pair = q / 2 + 1;
    return std::string(q % 2 ? "tx" : "rx") + (pair > 1 ? std::to_string(pair) : "");
}

std::vector<unsigned> stats_queue_order(unsigned num_queues, unsigned ctrl)
{
    if (ctrl == ~0u && num_queues > 0)
        ctrl = num_queues - 1;
    std::vector<unsigned> order;
    for (unsigned q = 0; q < num_queues && q < 2; q++)
        order.push_back(q);
    if (ctrl < num_queues)
        order.push_back(ctrl);
    for (unsigned q = 2; q < num_queues; q++)
        if (q != ctrl)
            order.push_back(q);
    return order;
}

std::vector<std::string> stats_known_names()
{
    std::vector<std::string> names;
    for (const documented_stat &k : known_stats())
        if (std::find(names.begin(), names.end(), k.name) == names.end())
            names.push_back(k.name);
    return names;
}

bool stats_known_direction(const std::string &name, stat_better &better)
{
    const std::vector<std::string> c = components(name);
    for (const documented_stat &k : known_stats())
        if (matches(c, components(k.name))) {
            better = k.better;
            return true;
        }
    return false;
}

bool stats_name_known(const std::string &name)
{
    stat_better ignored;
    return stats_known_direction(name, ignored);
}

std::string stats_json_text(const json_t *doc)
{
    char *text = json_dumps(doc, JSON_DUMP_FLAGS);
    if (!text)
        return "";
    std::string s = text;
    std::free(text);
    return s + "\n";
}

bool stats_write_json(const std::string &path, json_t *provenance, json_t *config,
                      json_t *result, const stats_table &stats, std::string &err)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "viosim_version", json_string(VIOSIM_VERSION));
    json_object_set_new(doc, "provenance", provenance ? json_incref(provenance) : json_object());
    json_object_set_new(doc, "config", config ? json_incref(config) : json_object());
    json_object_set_new(doc, "result", result ? json_incref(result) : json_object());
    json_object_set_new(doc, "stats", stats_to_json(stats));
    std::string text = stats_json_text(doc);
    json_decref(doc);
    if (text.empty()) {
        err = "cannot encode " + path + " as JSON (a string that is not UTF-8?)";
        return false;
    }

    std::string tmp = path + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) {
        err = "cannot write " + tmp + ": " + std::strerror(errno);
        return false;
    }
    bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    int write_errno = errno;
    if (std::fclose(f) != 0 && written) {
        written = false;
        write_errno = errno;
    }
    if (!written) {
        err = "cannot write " + tmp + ": " + std::strerror(write_errno);
        std::remove(tmp.c_str());
        return false;
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        err = "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
        std::remove(tmp.c_str());
        return false;
    }
    return true;
}

// ---- Text ----

void stats_print_pairs(FILE *out, const std::vector<std::pair<std::string, std::string>> &rows)
{
    size_t width = 0;
    for (const auto &row : rows)
        width = std::max(width, row.first.size());
    for (const auto &row : rows)
        std::fprintf(out, "%-*s  %s\n", static_cast<int>(width), row.first.c_str(),
                     row.second.c_str());
}

void stats_print_table(FILE *out, const stats_table &stats)
{
    size_t name_w = 0, value_w = 0, unit_w = 0;
    std::vector<std::string> values;
    for (const stat_entry &e : stats.entries()) {
        values.push_back(format_stat_value(e));
        name_w = std::max(name_w, e.name.size());
        value_w = std::max(value_w, values.back().size());
        unit_w = std::max(unit_w, e.unit.size());
    }
    const int better_w = 7; // "neutral", the longest direction
    for (size_t i = 0; i < values.size(); i++) {
        const stat_entry &e = stats.entries()[i];
        std::fprintf(out, "%-*s  %*s  %-*s  %-*s  %s\n", static_cast<int>(name_w), e.name.c_str(),
                     static_cast<int>(value_w), values[i].c_str(), static_cast<int>(unit_w),
                     e.unit.c_str(), better_w, stat_better_name(e.better), e.description.c_str());
    }
}

void stats_add_link_direction(stats_table &s, const std::string &n, const char *what,
                              const uint64_t tlps[4], uint64_t payload_bytes,
                              uint64_t overhead_bytes, double busy_ns, double sim_ns)
{
    static const char *const type_name[] = {"mrd", "mwr", "cpld", "cpl"};
    static const char *const type_text[] = {"memory read requests", "memory writes",
                                            "completions with data", "completions without data"};
    uint64_t all = 0;
    for (int t = 0; t < 4; t++) {
        s.add_u64(n + ".tlps." + type_name[t], "count", stat_better::lower, std::string(type_text[t]) + " " + what, tlps[t]);
        all += tlps[t];
    }
    s.add_u64(n + ".tlps", "count", stat_better::lower, std::string("TLPs ") + what, all);
    s.add_u64(n + ".payload_bytes", "bytes", stat_better::lower, std::string("data bytes carried ") + what, payload_bytes);
    s.add_u64(n + ".overhead_bytes", "bytes", stat_better::lower,
              std::string("TLP framing, header and digest bytes ") + what, overhead_bytes);
    s.add_f64(n + ".utilisation", "fraction", stat_better::neutral, std::string("time the link was busy ") + what,
              sim_ns > 0 ? busy_ns / sim_ns : 0.0);
}

void stats_add_ring(stats_table &s, const std::string &n, const struct vq_stats &v)
{
    static const stat_row<vq_stats> fetch[] = {
        {".fetch.reads", "count", stat_better::lower,
         "fetch-unit DMA reads (packed: ring descriptors; split: available ring entries)",
         &vq_stats::fetch_reads},
        {".fetch.entries", "count", stat_better::lower,
         "descriptors (split: available ring entries) those reads carried", &vq_stats::fetch_entries},
    };
    static const stat_row<vq_stats> rest[] = {
        {".fetch.wasted_entries", "count", stat_better::lower,
         "entries read ahead that were not available yet and were discarded", &vq_stats::fetch_wasted},
        {".fetch.wasted_bytes", "bytes", stat_better::lower, "bytes of those discarded entries",
         &vq_stats::fetch_wasted_bytes},
        {".fetch.hint_reads", "count", stat_better::neutral,
         "fetch reads whose size the NOTIFICATION_DATA hint decided", &vq_stats::fetch_hint_reads},
        {".buffers", "count", stat_better::neutral, "buffers taken from the ring",
         &vq_stats::buffers_popped},
        {".descriptors_read", "count", stat_better::neutral,
         "descriptors fetched (ring descriptors and indirect table entries)", &vq_stats::descs_read},
        {".indirect_tables", "count", stat_better::neutral, "indirect tables fetched",
         &vq_stats::indirect_tables},
        {".used_returned", "count", stat_better::neutral, "used buffers returned", &vq_stats::used_pushed},
        {".used_publications", "count", stat_better::lower,
         "used-ring publications (each a batch of used buffers made visible)", &vq_stats::flushes},
        {".event_writes", "count", stat_better::lower,
         "writes of the device's event suppression structure", &vq_stats::event_writes},
        {".interrupts_suppressed", "count", stat_better::higher,
         "used buffer notifications the driver's event suppression spared",
         &vq_stats::interrupts_suppressed},
    };
    stats_add_rows(s, n, fetch, v);
    s.add_f64(n + ".fetch.entries_per_read", "count", stat_better::higher, "mean entries per fetch read",
              v.fetch_reads ? double(v.fetch_entries) / v.fetch_reads : 0.0);
    stats_add_rows(s, n, rest, v);
}

void stats_add_event_reads(stats_table &s, const std::string &n, uint64_t link, uint64_t local)
{
    s.add_u64(n + ".event_reads_link", "count", stat_better::lower,
              "interrupt decisions that read the driver's event suppression fields by DMA "
              "across the link", link);
    s.add_u64(n + ".event_reads_local", "count", stat_better::lower,
              "interrupt decisions that read them from device memory (viosim extension "
              "VIOSIM_NET_F_DEVMEM_EVENT; no link traffic)", local);
}

void stats_add_device_frames(stats_table &s, const device_frame_counts &c)
{
    static const stat_row<device_frame_counts> rows[] = {
        {"device.tx.frames", "frames", stat_better::higher, "frames the device transmitted",
         &device_frame_counts::tx_frames},
        {"device.rx.frames", "frames", stat_better::higher, "frames the device delivered to receive buffers",
         &device_frame_counts::rx_frames},
        {"device.rx.no_buffer", "count", stat_better::lower, "times a frame waited for a receive buffer",
         &device_frame_counts::rx_no_buffer},
        {"device.rx.dropped_too_big", "frames", stat_better::lower,
         "frames dropped because the receive buffer was too small", &device_frame_counts::rx_dropped_too_big},
    };
    stats_add_rows(s, "", rows, c);
}

void stats_add_device_dma(stats_table &s, const uint64_t reads[VS_DMA_KIND_COUNT],
                          const uint64_t writes[VS_DMA_KIND_COUNT], uint64_t read_bytes,
                          uint64_t write_bytes)
{
    for (int k = 0; k < VS_DMA_KIND_COUNT; k++) {
        const std::string n = vs_dma_kind_name(static_cast<vs_dma_kind>(k));
        if (reads[k] || k == VS_DMA_DESC_READ || k == VS_DMA_BUF_READ || k == VS_DMA_EVENT_READ ||
            k == VS_DMA_FLUSH_READ)
            s.add_u64("device.dma." + n + ".reads", "count", stat_better::lower, "device DMA reads for " + n, reads[k]);
        if (writes[k] || k == VS_DMA_BUF_WRITE || k == VS_DMA_USED_WRITE || k == VS_DMA_EVENT_WRITE)
            s.add_u64("device.dma." + n + ".writes", "count", stat_better::lower, "device DMA writes for " + n, writes[k]);
    }
    s.add_u64("device.dma.read_bytes", "bytes", stat_better::lower, "bytes the device read from guest memory", read_bytes);
    s.add_u64("device.dma.write_bytes", "bytes", stat_better::lower, "bytes the device wrote to guest memory", write_bytes);
}

void stats_add_net(stats_table &s, const struct vnet_stats &n)
{
    static const stat_row<vnet_stats> rows[] = {
        {"device.rx.merged_frames", "frames", stat_better::neutral,
         "frames spread over several receive buffers (VIRTIO_NET_F_MRG_RXBUF)",
         &vnet_stats::rx_merged_frames},
        {"device.ctrl.mq_pairs_set", "count", stat_better::neutral,
         "VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET commands answered VIRTIO_NET_OK", &vnet_stats::mq_pairs_set},
        {"device.ctrl.rss_config_set", "count", stat_better::neutral,
         "VIRTIO_NET_CTRL_MQ_RSS_CONFIG commands answered VIRTIO_NET_OK", &vnet_stats::rss_config_set},
        {"device.rx.steered_hash", "frames", stat_better::neutral,
         "received frames steered by their RSS hash (an indirection table entry)",
         &vnet_stats::rx_steered_hash},
        {"device.rx.steered_unclassified", "frames", stat_better::neutral,
         "received frames RSS could not hash, sent to unclassified_queue",
         &vnet_stats::rx_steered_unclassified},
        {"device.rx.steer_dropped", "frames", stat_better::lower,
         "received frames dropped by steering: their pair not in use, or (RSS) their receive "
         "queue not enabled or its FIFO full",
         &vnet_stats::rx_steer_dropped},
    };
    stats_add_rows(s, "", rows, n);
}

void stats_add_backend(stats_table &s, const struct net_backend_counts &c)
{
    s.add_u64("device.sink.frames", "frames", stat_better::neutral,
              "frames dropped by the sink backend, or left unanswered by the responder",
              c.sink_frames);
    s.add_u64("device.responder.arp_replies", "frames", stat_better::neutral,
              "ARP requests the responder backend answered", c.responder_arp);
    s.add_u64("device.responder.echo_replies", "frames", stat_better::neutral,
              "ICMP echo requests the responder backend answered", c.responder_echo);
}

std::vector<violation_record> conformance_first(const vs_conformance &c)
{
    std::vector<violation_record> first;
    for (uint32_t i = 0; i < c.logged; i++) {
        const vs_violation &v = c.log[i];
        first.push_back({double(v.when) / 1e3, vs_rule_name(v.rule), vs_rule_section(v.rule),
                         vs_rule_text(v.rule), v.reason != VS_REASON_NONE ? vs_reason_name(v.reason) : "",
                         v.queue == 0xffff ? -1 : int(v.queue), v.seen, v.expected});
    }
    return first;
}

std::vector<std::pair<std::string, uint64_t>> conformance_by_rule(const vs_conformance &c)
{
    std::vector<std::pair<std::string, uint64_t>> by_rule;
    for (unsigned rule = 0; rule < VS_RULE_COUNT; rule++)
        if (c.per_rule[rule])
            by_rule.emplace_back(vs_rule_name(vs_rule(rule)), c.per_rule[rule]);
    return by_rule;
}

json_t *conformance_json(uint64_t total, const std::vector<violation_record> &first,
                         const std::vector<std::pair<std::string, uint64_t>> &by_rule)
{
    json_t *c = json_object();
    json_object_set_new(c, "violations", json_integer(json_int_t(total)));
    json_t *rules = json_object();
    for (const auto &rule : by_rule)
        json_object_set_new(rules, rule.first.c_str(), json_integer(json_int_t(rule.second)));
    json_object_set_new(c, "by_rule", rules);
    json_t *list = json_array();
    for (const violation_record &v : first) {
        json_t *o = json_object();
        json_object_set_new(o, "time_ns", json_real(v.time_ns));
        json_object_set_new(o, "queue", v.queue < 0 ? json_null() : json_integer(v.queue));
        json_object_set_new(o, "rule", json_string(v.rule.c_str()));
        if (!v.reason.empty())
            json_object_set_new(o, "reason", json_string(v.reason.c_str()));
        json_object_set_new(o, "section", json_string(v.section.c_str()));
        json_object_set_new(o, "text", json_string(v.text.c_str()));
        json_object_set_new(o, "seen", json_integer(json_int_t(v.seen)));
        json_object_set_new(o, "expected", json_integer(json_int_t(v.expected)));
        json_array_append_new(list, o);
    }
    json_object_set_new(c, "first", list);
    return c;
}

json_t *conformance_json(const vs_conformance &c)
{
    return conformance_json(c.total, conformance_first(c), conformance_by_rule(c));
}

} // namespace viosim
