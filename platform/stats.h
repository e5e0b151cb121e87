// stats.h -- statistics registered once with a name, unit and description, written
// as JSON (stats.json) and as text.
#ifndef VIOSIM_STATS_H
#define VIOSIM_STATS_H

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

extern "C" {
#include "net_backend.h"
#include "guest_ops.h"
#include "vq.h"
}
#include "hist.h"

struct json_t; // jansson
struct vnet_stats;
struct vs_conformance;

namespace viosim {

// The version recorded in stats.json and printed by `viosim --version`.
#ifndef VIOSIM_VERSION
#define VIOSIM_VERSION "0.1"
#endif

// Which way a statistic is better, for tools comparing two results: more of it
// (throughput, bandwidth, hits), less of it (latency, time, drops, errors, and the work
// done for a run's fixed amount of frames or transfers: DMA accesses, TLPs, interrupts),
// or neither (a count that describes the workload or configuration, a utilisation).
// Written to stats.json as "better": "higher", "lower" or "neutral" (docs/statistics.md).
enum class stat_better { higher, lower, neutral };

// "higher", "lower" or "neutral".
const char *stat_better_name(stat_better b);

struct stat_entry {
    std::string name;        // dotted, e.g. "link.up.bytes"
    std::string unit;        // e.g. "bytes", "count", "ns", "Gb/s"
    stat_better better;
    std::string description; // one line
    bool is_float;
    uint64_t u64;
    double f64;
};

// Statistics in registration order. Names are unique: registering a name again
// replaces its entry in place (and asserts in debug builds). Every registration says
// which way the statistic is better: there is no default, so none is forgotten.
class stats_table {
public:
    void add_u64(const std::string &name, const std::string &unit, stat_better better,
                 const std::string &description, uint64_t value);
    void add_f64(const std::string &name, const std::string &unit, stat_better better,
                 const std::string &description, double value);
    const std::vector<stat_entry> &entries() const { return entries_; }
    const stat_entry *find(const std::string &name) const;

private:
    void add(stat_entry e);
    std::vector<stat_entry> entries_;
    std::unordered_map<std::string, size_t> index_; // name -> position in entries_
};

// {"name": {"value": v, "unit": u, "better": b, "description": d}, ...} in registration
// order, as a new
// JSON object (caller owns the reference). A non-finite double is written as null.
// The rows of one PCIe link direction, prefix n (link.up, link.down): TLPs by type
// (mrd, mwr, cpld, cpl, in tlp_type order) and in all, payload and overhead bytes, and
// the fraction of sim_ns the direction was busy. `what` ends each description.
void stats_add_link_direction(stats_table &s, const std::string &n, const char *what,
                              const uint64_t tlps[4], uint64_t payload_bytes,
                              uint64_t overhead_bytes, double busy_ns, double sim_ns);

// The rows of the device's backend (device.backend): sink drops and responder answers,
// named alike by a simulation and by viosim serve.
void stats_add_backend(stats_table &s, const struct net_backend_counts &c);

// The virtio-net personality's own counters a simulation keeps (model/virtio_net.h:
// merged receive, multiqueue and receive steering), under device.rx.* and device.ctrl.*.
void stats_add_net(stats_table &s, const struct vnet_stats &n);

// One counter of a module's statistics table: its name after the module's prefix, unit,
// which way is better, description, and the counter in the module's struct T. A module
// lists its counters once in such a table; stats_add_rows registers them.
template <class T> struct stat_row {
    const char *name;
    const char *unit;
    stat_better better;
    const char *description;
    uint64_t T::*counter;
};

template <class T, size_t N>
void stats_add_rows(stats_table &s, const std::string &prefix, const stat_row<T> (&rows)[N], const T &c)
{
    for (const stat_row<T> &r : rows)
        s.add_u64(prefix + r.name, r.unit, r.better, r.description, c.*(r.counter));
}

// The rows of one queue's rings (model/vq.h vq_stats), prefix n (device.queue.rx): the
// fetch unit's reads, then buffers, descriptors, used buffers and event suppression.
// A simulation writes them per queue, viosim serve per kind of ring (pairs summed).
void stats_add_ring(stats_table &s, const std::string &n, const struct vq_stats &v);

// The rows of one queue's interrupt decisions that read the driver's event suppression
// fields, prefix n: by DMA across the link, or from device memory.
void stats_add_event_reads(stats_table &s, const std::string &n, uint64_t link, uint64_t local);

// The device's frames (device.tx.frames, device.rx.*), named alike by a simulation and
// by viosim serve.
struct device_frame_counts {
    uint64_t tx_frames, rx_frames, rx_no_buffer, rx_dropped_too_big;
};
void stats_add_device_frames(stats_table &s, const device_frame_counts &c);

// The device's guest-memory accesses by kind (device.dma.<kind>.reads and .writes, a
// kind's rows when it occurred or is one every run has) and bytes, named alike by a
// simulation and by viosim serve.
void stats_add_device_dma(stats_table &s, const uint64_t reads[VS_DMA_KIND_COUNT],
                          const uint64_t writes[VS_DMA_KIND_COUNT], uint64_t read_bytes,
                          uint64_t write_bytes);

// A latency histogram (model/hist.h) owned by a module: fixed memory whatever the run's
// length. hist_make throws std::bad_alloc when out of memory.
struct hist_deleter {
    void operator()(hist *h) const { hist_free(h); }
};
using hist_ptr = std::unique_ptr<hist, hist_deleter>;
hist_ptr hist_make();

// h's q-quantile (picoseconds) in nanoseconds, to the histogram's resolution.
double hist_percentile_ns(const hist &h, double q);

// The coarse histogram rows of h (picoseconds), prefix n: n.hist.lt_<2^k>_ns for k from
// k_first to k_last (samples below 2^k ns and not below the previous bound; the first
// row holds everything below 2^k_first ns), then n.hist.ge_<2^k_last>_ns. Each bound is
// a bucket boundary of h, so the counts are exact.
void stats_add_coarse_hist(stats_table &s, const std::string &n, const hist &h, unsigned k_first,
                           unsigned k_last, const char *row_description, const char *rest_description);

json_t *stats_to_json(const stats_table &stats);

// Every statistic docs/statistics.md lists, with its "better" column, in its order, ended
// by a null name: built in from the document at configure time (CMakeLists.txt). "<n>"
// in a name stands for a number.
struct documented_stat {
    const char *name;
    stat_better better;
};
extern const documented_stat documented_stats[];

// The names a run can write: the documented ones, and the families whose rows appear only
// when something occurred (docs/statistics.md): device.dma.<kind>.reads and .writes,
// iommu.first_fault.<field>, device.error.<field>. In a pattern, "<n>" stands for a
// number and another <...> for any one name component; a number in a documented name
// stands for any number (device.msix.vector.0.messages: every vector).
std::vector<std::string> stats_known_names();

// The name a virtio-net queue's rows carry (device.queue.<label>.*, dma.channel.<label>.*)
// among num_queues = 2N + 1: pair 1's receiveq1 and transmitq1 are "rx" and "tx", the
// control queue "ctrl" (index ctrl: 2 * max_virtqueue_pairs, the last, unless the
// driver negotiated neither MQ nor RSS, then 2), pair k >= 2's "rx<k>" and "tx<k>"
// (rx2, tx2, ...). In a documented name, a component "rx<k>" stands for rx followed by a
// number. ctrl = ~0u: the last queue.
std::string stats_queue_label(unsigned q, unsigned num_queues, unsigned ctrl = ~0u);
// The order queues' rows are written in: pair 1, the control queue, then the others in
// index order (so a one-pair device's rows come where they always did).
std::vector<unsigned> stats_queue_order(unsigned num_queues, unsigned ctrl = ~0u);

// Whether name matches one of stats_known_names().
bool stats_name_known(const std::string &name);

// Which way the statistic name is better, from the first of stats_known_names() it
// matches (docs/statistics.md; the families: device.dma.<kind>.* lower, the others
// neutral); false if it matches none. For results written before stats.json carried
// "better".
bool stats_known_direction(const std::string &name, stat_better &better);

// The text of a JSON document as every viosim output file has it: two-space indent,
// keys in insertion order, reals with 15 significant digits, a final newline.
// Identical documents give identical bytes.
std::string stats_json_text(const json_t *doc);

// Writes path as {"viosim_version": VIOSIM_VERSION, "provenance": provenance, "config":
// config, "result": result, "stats": stats_to_json(stats)}. provenance (provenance.h: which
// build, which configuration), config and result are borrowed (NULL: {}). Written to
// path.tmp and renamed, so path is either the old file or the complete new one.
// False and a one-line err (naming the file) on failure.
bool stats_write_json(const std::string &path, json_t *provenance, json_t *config,
                      json_t *result, const stats_table &stats, std::string &err);

// One driver-conformance violation (model/conformance.h), as stats.json lists it.
struct violation_record {
    double time_ns;
    std::string rule;     // vs_rule_name
    std::string section;  // the spec section the rule comes from
    std::string text;     // the rule in short words
    std::string reason;   // the device's reason (ring rules), else ""
    int queue;            // -1: not about one queue
    uint64_t seen, expected;
};

// The driver-conformance record (model/conformance.h) as stats.json lists it: the first
// violations in order, and the rules broken with their counts.
std::vector<violation_record> conformance_first(const vs_conformance &c);
std::vector<std::pair<std::string, uint64_t>> conformance_by_rule(const vs_conformance &c);

// result.conformance of stats.json, the one writer for `viosim run` and both `viosim
// serve` front ends: {"violations": total, "by_rule": {rule: count}, "first": [{time_ns,
// queue (null: no queue), rule, reason (ring rules only), section, text, seen,
// expected}]}. A new reference.
json_t *conformance_json(uint64_t total, const std::vector<violation_record> &first,
                         const std::vector<std::pair<std::string, uint64_t>> &by_rule);
json_t *conformance_json(const vs_conformance &c);

// Prints rows as two aligned columns (label, value), e.g. a run's summary.
void stats_print_pairs(FILE *out, const std::vector<std::pair<std::string, std::string>> &rows);

// Prints every statistic as aligned columns: name, value, unit, better, description.
void stats_print_table(FILE *out, const stats_table &stats);

} // namespace viosim

#endif
