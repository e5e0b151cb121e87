// trace.h -- an opt-in timeline of one run in the Chrome/Perfetto trace-event JSON
// format (`viosim run --trace FILE`; open it in ui.perfetto.dev or chrome://tracing).
//
// One track per queue engine (its DMA accesses as spans named by purpose), one per
// link direction (each TLP as a span), one for doorbells the device received and one
// for the MSI-X messages it sent. Events are written as they come (each one encoded by
// jansson), so a long run costs disk, not memory. A window (`--trace-window`) keeps only
// the events that reach into a stretch of simulated time, so a long run can be traced
// around the moment of interest without writing the rest.
#ifndef VIOSIM_TRACE_H
#define VIOSIM_TRACE_H

#include <cstdint>
#include <cmath>
#include <cstdio>
#include <string>

#include <systemc>

enum trace_track : int {
    TRACE_QUEUE_RX = 1,
    TRACE_QUEUE_TX = 2,
    TRACE_QUEUE_CTRL = 3,
    TRACE_LINK_UP = 10,
    TRACE_LINK_DOWN = 11,
    TRACE_DOORBELLS = 20,
    TRACE_INTERRUPTS = 21,
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
    void span(int track, const char *name, sc_core::sc_time start, sc_core::sc_time end);
    void instant(int track, const char *name, sc_core::sc_time at);
    uint64_t events() const { return events_; }

private:
    void emit(struct json_t *event);

    std::FILE *f_;
    trace_window window_;
    uint64_t events_ = 0;
};

#endif
