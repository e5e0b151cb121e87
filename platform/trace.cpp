#include "trace.h"

#include <jansson.h>

#include <cerrno>
#include <cstdlib>

namespace {

// Trace-event times are microseconds; viosim's resolution is the picosecond.
double us(sc_core::sc_time t) { return double(t.value()) / 1e6; }

json_t *thread_name(int track, const char *name)
{
    return json_pack("{s:s, s:s, s:i, s:i, s:{s:s}}", "name", "thread_name", "ph", "M", "pid", 1,
                     "tid", track, "args", "name", name);
}

// One side of a window: empty, or a finite number of microseconds >= 0.
bool window_bound(const std::string &text, double empty_value, double &out)
{
    if (text.empty()) {
        out = empty_value;
        return true;
    }
    char *end = nullptr;
    errno = 0;
    out = std::strtod(text.c_str(), &end);
    return errno == 0 && end != text.c_str() && *end == '\0' && std::isfinite(out) && out >= 0;
}

} // namespace

bool trace_window_parse(const std::string &text, trace_window &w, std::string &err)
{
    const size_t colon = text.find(':');
    const std::string want = " (expected START_US:END_US, microseconds of simulated time, "
                             "e.g. 100:250; either side may be empty)";
    if (colon == std::string::npos || text.find(':', colon + 1) != std::string::npos) {
        err = "'" + text + "' is not a window" + want;
        return false;
    }
    const std::string from = text.substr(0, colon), to = text.substr(colon + 1);
    if (!window_bound(from, 0.0, w.from_us)) {
        err = "start '" + from + "' is not a number of microseconds >= 0" + want;
        return false;
    }
    if (!window_bound(to, INFINITY, w.to_us)) {
        err = "end '" + to + "' is not a number of microseconds >= 0" + want;
        return false;
    }
    if (w.to_us <= w.from_us) {
        err = "end (" + to + " us) must be after start (" + (from.empty() ? "0" : from) + " us)";
        return false;
    }
    return true;
}

trace_recorder::trace_recorder(const std::string &path, const trace_window &window)
    : f_(std::fopen(path.c_str(), "w")), window_(window)
{
    if (!f_)
        return;
    std::fputs("{\"displayTimeUnit\": \"ns\", ", f_);
    if (!window_.whole()) {
        // Recorded so a reader can tell an empty stretch from one cut off by the window.
        json_t *w = json_pack("{s:{s:f, s:o}}", "viosim_trace_window_us", "from", window_.from_us,
                              "to", std::isinf(window_.to_us) ? json_null()
                                                               : json_real(window_.to_us));
        char *text = w ? json_dumps(w, JSON_COMPACT | JSON_REAL_PRECISION(15)) : nullptr;
        if (text)
            std::fprintf(f_, "\"otherData\": %s, ", text);
        std::free(text);
        json_decref(w);
    }
    std::fputs("\"traceEvents\": [\n", f_);
    static const struct {
        int track;
        const char *name;
    } tracks[] = {
        {TRACE_QUEUE_RX, "device: receiveq1 engine"},  {TRACE_QUEUE_TX, "device: transmitq1 engine"},
        {TRACE_QUEUE_CTRL, "device: controlq engine"}, {TRACE_LINK_UP, "PCIe link: device to host"},
        {TRACE_LINK_DOWN, "PCIe link: host to device"}, {TRACE_DOORBELLS, "device: doorbells received"},
        {TRACE_INTERRUPTS, "device: MSI-X messages sent"},
    };
    for (const auto &t : tracks)
        emit(thread_name(t.track, t.name));
}

trace_recorder::~trace_recorder()
{
    if (f_) {
        std::fputs("\n]}\n", f_);
        std::fclose(f_);
    }
}

void trace_recorder::emit(json_t *event)
{
    if (!event)
        return;
    char *text = json_dumps(event, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(event);
    if (!text)
        return;
    std::fputs(events_ ? ",\n" : "", f_);
    std::fputs(text, f_);
    std::free(text);
    events_++;
}

void trace_recorder::span(int track, const char *name, sc_core::sc_time start, sc_core::sc_time end)
{
    // Outside the window when it ends before the window starts or starts at or after its end.
    if (f_ && !(us(end > start ? end : start) < window_.from_us || us(start) >= window_.to_us))
        emit(json_pack("{s:s, s:s, s:f, s:f, s:i, s:i}", "name", name, "ph", "X", "ts", us(start),
                       "dur", end > start ? us(end - start) : 0.0, "pid", 1, "tid", track));
}

void trace_recorder::instant(int track, const char *name, sc_core::sc_time at)
{
    if (f_ && us(at) >= window_.from_us && us(at) < window_.to_us)
        emit(json_pack("{s:s, s:s, s:s, s:f, s:i, s:i}", "name", name, "ph", "i", "s", "t", "ts",
                       us(at), "pid", 1, "tid", track));
}
