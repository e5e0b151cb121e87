// trace.h -- an opt-in timeline of one run in the Chrome/Perfetto trace-event JSON
// format (`viosim run --trace FILE`; open it in ui.perfetto.dev or chrome://tracing).
//
// One track per queue engine (its DMA accesses as spans named by purpose), one per
// link direction (each TLP as a span), one for doorbells the device received and one
// for the MSI-X messages it sent, one per IOMMU page walker (each walk a span) and one
// for ATS Translation Requests; counters (trace_counters) for read tags in flight and,
// per queue, buffers in flight and ring occupancy, also written as VCD waveforms
// (`--vcd FILE.vcd`). Events are written as they come (each one encoded by
// jansson), so a long run costs disk, not memory. A window (`--trace-window`) keeps only
// the events that reach into a stretch of simulated time, so a long run can be traced
// around the moment of interest without writing the rest.
#ifndef VIOSIM_TRACE_H
#define VIOSIM_TRACE_H

#include <cstdint>
#include <cmath>
#include <cstdio>
#include <memory>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include <systemc>

struct json_t; // jansson

namespace viosim {

enum trace_track : int {
    TRACE_QUEUE_RX = 1,
    TRACE_QUEUE_TX = 2,
    TRACE_QUEUE_CTRL = 3,
    TRACE_LINK_UP = 10,
    TRACE_LINK_DOWN = 11,
    TRACE_DOORBELLS = 20,
    TRACE_INTERRUPTS = 21,
    TRACE_RC_WALKER = 40,     // + walker index: the root complex's IOMMU page walkers
    TRACE_QUEUE_ENGINE = 200, // + queue * 64 + engine: one track per engine (queue_engines > 1)
    // + walker index: the device's own IOMMU page walkers (iommu.walk_location=device)
    TRACE_DEVICE_WALKER = 5000,
    // + lane (trace_lanes, below; at most TRACE_LANES_MAX lanes):
    TRACE_ATS_REQUESTS = 6000, // ATS Translation Requests the device sent
    // Queues of pairs 2..N (device.queue_pairs_count > 1; pair 1 and the control queue
    // keep TRACE_QUEUE_RX .. TRACE_QUEUE_CTRL and TRACE_QUEUE_ENGINE):
    TRACE_QUEUE_PAIRS = 7000,         // + queue index: the queue's track
    TRACE_QUEUE_PAIRS_ENGINE = 10000, // + queue * 64 + engine: one track per engine
};

// The stretch of simulated time a trace keeps, [from_us, to_us) in microseconds: a span
// is kept when any part of it lies inside, an instant when it lies inside. The default
// keeps everything.
struct trace_window {
    double from_us = 0.0;
    double to_us = INFINITY;
    bool whole() const { return from_us <= 0.0 && std::isinf(to_us); }
};

// Parses "START_US:END_US" (either side may be empty: from the start, to the end; END
// must be after START); false and a message naming what is wrong otherwise.
bool trace_window_parse(const std::string &text, trace_window &w, std::string &err);

class trace_recorder {
public:
    // Opens path for writing; ok() says whether that worked.
    explicit trace_recorder(const std::string &path, const trace_window &window = trace_window());
    ~trace_recorder();
    trace_recorder(const trace_recorder &) = delete;
    trace_recorder &operator=(const trace_recorder &) = delete;

    bool ok() const { return f_ != nullptr; }
    // A view of this recorder for one instance of a module (each device of a platform
    // with several): the same file and window, its tracks under a process id of their
    // own named `name` (Perfetto shows one group of tracks per instance), so instances
    // that use the same track ids keep apart. Must not outlive this recorder.
    std::unique_ptr<trace_recorder> instance(const std::string &name);
    void span(int track, const char *name, sc_core::sc_time start, sc_core::sc_time end);
    void instant(int track, const char *name, sc_core::sc_time at);
    // A span with integer arguments (shown when the span is selected).
    void span_args(int track, const char *name, sc_core::sc_time start, sc_core::sc_time end,
                   const char *k1, uint64_t v1, const char *k2, uint64_t v2);
    // A counter sample ("C" phase): the counter `name` has `value` from `at` on. Kept,
    // like an instant, when `at` lies inside the window.
    void counter(const char *name, sc_core::sc_time at, uint64_t value);
    // Names a track (written whatever the window, so kept events always have a name).
    void name_track(int track, const std::string &name);
    uint64_t events() const { return root_->events_; }

private:
    trace_recorder(trace_recorder &root, int pid, const std::string &name);
    void emit(json_t *event);

    std::FILE *f_;
    trace_window window_;
    uint64_t events_ = 0;     // the root's: every view's events
    trace_recorder *root_ = this; // the recorder that owns the file
    int pid_ = 1;             // process id of this view's events
    int pids_ = 1;            // the root's: process ids handed out
};

// Spans of one kind that may overlap in time (the device's page walks and ATS
// Translation Requests: each queue engine translates for itself), spread over lanes,
// tracks first_track, first_track + 1, ...: a span goes on the first lane whose spans
// have all ended when it starts, so no two spans on one track overlap (Perfetto expects
// a track's spans to nest). Spans come in the order the loosely timed engines issue
// them, not in time order; a span that starts before a lane's latest end takes the
// next lane. A lane's track is named when first used: `name`, then `name (lane N)`.
constexpr int TRACE_LANES_MAX = 1000;
class trace_lanes {
public:
    trace_lanes(int first_track, std::string name) : first_(first_track), name_(std::move(name)) {}
    // The track for a span [start, end); names the track if it is a new lane's.
    int track(trace_recorder &trace, sc_core::sc_time start, sc_core::sc_time end);

private:
    int first_;
    std::string name_;
    std::vector<sc_core::sc_time> end_; // per lane: when its latest span ends
};

// Counters of the timeline (--trace, "C" events) and of the waveform (--vcd, a VCD file in
// the layout SystemC's VCD writer uses). Some counters change at times known ahead of
// simulated time (a read tag's hold is known when the loosely timed DMA engine issues the
// read, a quantum ahead), and callers do not report changes in time order; so changes
// are queued and applied in time order once simulated time has passed them (and at
// finish()), and written to both files then. Neither file schedules anything in the
// simulation: a waveform woken at each change's time would reorder SystemC's same-time
// wake-ups (its timed-event queue breaks ties by its own layout), and results that
// depend on the order of simultaneous engine actions would change with --vcd.
// text as a VCD signal name: every character but letters, digits and '_' becomes '_'
// ("dev1: " -> "dev1__").
std::string trace_signal_name(const std::string &text);

class trace_counters : public sc_core::sc_module {
public:
    // json may be null; vcd_path empty: no waveform, else a name ending in ".vcd". ok()
    // says whether the VCD opened.
    trace_counters(sc_core::sc_module_name name, trace_recorder *json, const std::string &vcd_path);
    ~trace_counters() override;
    bool ok() const { return vcd_path_.empty() || vcd_ != nullptr; }

    // Declares a counter (before the simulation starts): `name` on the timeline,
    // `signal` (no spaces) in the VCD. Returns its id.
    int add(const std::string &name, const std::string &signal);
    // The counter moves by delta at `at` (at >= the current simulated time).
    void change(int id, sc_core::sc_time at, int delta);
    // The counter is `value` from `at` on; for counters sampled in time order.
    void set(int id, sc_core::sc_time at, uint64_t value)
    {
        change(id, at, int(int64_t(value) - target_[size_t(id)]));
    }
    // End of run: applies every change still queued.
    void finish();

private:
    struct pending {
        sc_core::sc_time at;
        uint64_t seq;
        int id;
        int delta;
        bool operator>(const pending &o) const { return at != o.at ? at > o.at : seq > o.seq; }
    };
    void end_of_elaboration() override;
    // Applies the queued changes before `upto` (or at it too, when inclusive): a
    // counter's changes at one time give one sample in each file.
    void flush(sc_core::sc_time upto, bool inclusive);
    std::string vcd_id(size_t i) const;

    trace_recorder *json_;
    std::string vcd_path_;
    std::FILE *vcd_ = nullptr;
    std::vector<std::string> names_, signals_;
    std::vector<int64_t> target_; // value once every queued change is applied
    std::priority_queue<pending, std::vector<pending>, std::greater<pending>> queue_;
    std::vector<unsigned> value_;
    std::vector<int64_t> shown_; // last value written (-1: none)
    uint64_t seq_ = 0;
    std::vector<int> dirty_;
};

} // namespace viosim

#endif
