#include "trace.h"

#include <jansson.h>

namespace {

// Trace-event times are microseconds; viosim's resolution is the picosecond.
double us(sc_core::sc_time t) { return double(t.value()) / 1e6; }

json_t *thread_name(int track, const char *name)
{
    return json_pack("{s:s, s:s, s:i, s:i, s:{s:s}}", "name", "thread_name", "ph", "M", "pid", 1,
                     "tid", track, "args", "name", name);
}

} // namespace

trace_recorder::trace_recorder(const std::string &path) : f_(std::fopen(path.c_str(), "w"))
{
    if (!f_)
        return;
    std::fputs("{\"displayTimeUnit\": \"ns\", \"traceEvents\": [\n", f_);
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
    if (f_)
        emit(json_pack("{s:s, s:s, s:f, s:f, s:i, s:i}", "name", name, "ph", "X", "ts", us(start),
                       "dur", end > start ? us(end - start) : 0.0, "pid", 1, "tid", track));
}

void trace_recorder::instant(int track, const char *name, sc_core::sc_time at)
{
    if (f_)
        emit(json_pack("{s:s, s:s, s:s, s:f, s:i, s:i}", "name", name, "ph", "i", "s", "t", "ts",
                       us(at), "pid", 1, "tid", track));
}
