#include "trace.h"

#include <jansson.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>

namespace viosim {

namespace {

// Trace-event times are microseconds; viosim's resolution is the picosecond.
double us(sc_core::sc_time t) { return double(t.value()) / 1e6; }

json_t *thread_name(int pid, int track, const char *name)
{
    return json_pack("{s:s, s:s, s:i, s:i, s:{s:s}}", "name", "thread_name", "ph", "M", "pid", pid,
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
    // The queue engines' tracks are named by the device (their number depends on
    // device.queue_engines), the IOMMU walkers' by whoever walks.
    static const struct {
        int track;
        const char *name;
    } tracks[] = {
        {TRACE_LINK_UP, "PCIe link: device to host"},
        {TRACE_LINK_DOWN, "PCIe link: host to device"}, {TRACE_DOORBELLS, "device: doorbells received"},
        {TRACE_INTERRUPTS, "device: MSI-X messages sent"},
    };
    for (const auto &t : tracks)
        emit(thread_name(pid_, t.track, t.name));
}

trace_recorder::trace_recorder(trace_recorder &root, int pid, const std::string &name)
    : f_(root.f_), window_(root.window_), root_(&root), pid_(pid)
{
    emit(json_pack("{s:s, s:s, s:i, s:{s:s}}", "name", "process_name", "ph", "M", "pid", pid_,
                   "args", "name", name.c_str()));
    // The tracks every device has (its engines' are named by the device).
    emit(thread_name(pid_, TRACE_DOORBELLS, (name + ": doorbells received").c_str()));
    emit(thread_name(pid_, TRACE_INTERRUPTS, (name + ": MSI-X messages sent").c_str()));
}

std::unique_ptr<trace_recorder> trace_recorder::instance(const std::string &name)
{
    trace_recorder &root = *root_;
    return std::unique_ptr<trace_recorder>(new trace_recorder(root, ++root.pids_, name));
}

trace_recorder::~trace_recorder()
{
    if (f_ && root_ == this) {
        std::fputs("\n]}\n", f_);
        std::fclose(f_);
    }
}

void trace_recorder::emit(json_t *event)
{
    if (root_ != this) {
        root_->emit(event);
        return;
    }
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
                       "dur", end > start ? us(end - start) : 0.0, "pid", pid_, "tid", track));
}

void trace_recorder::instant(int track, const char *name, sc_core::sc_time at)
{
    if (f_ && us(at) >= window_.from_us && us(at) < window_.to_us)
        emit(json_pack("{s:s, s:s, s:s, s:f, s:i, s:i}", "name", name, "ph", "i", "s", "t", "ts",
                       us(at), "pid", pid_, "tid", track));
}

void trace_recorder::name_track(int track, const std::string &name)
{
    if (f_)
        emit(thread_name(pid_, track, name.c_str()));
}

void trace_recorder::span_args(int track, const char *name, sc_core::sc_time start,
                               sc_core::sc_time end, const char *k1, uint64_t v1, const char *k2,
                               uint64_t v2)
{
    if (f_ && !(us(end > start ? end : start) < window_.from_us || us(start) >= window_.to_us))
        emit(json_pack("{s:s, s:s, s:f, s:f, s:i, s:i, s:{s:I, s:I}}", "name", name, "ph", "X",
                       "ts", us(start), "dur", end > start ? us(end - start) : 0.0, "pid", pid_,
                       "tid", track, "args", k1, json_int_t(v1), k2, json_int_t(v2)));
}

void trace_recorder::counter(const char *name, sc_core::sc_time at, uint64_t value)
{
    // Counters are the most frequent events: written directly (their names are ours,
    // plain ASCII with nothing to escape), not through jansson.
    if (root_ != this) {
        root_->counter(name, at, value);
        return;
    }
    if (f_ && us(at) >= window_.from_us && us(at) < window_.to_us) {
        std::fprintf(f_, "%s{\"name\":\"%s\",\"ph\":\"C\",\"ts\":%.12g,\"pid\":1,"
                         "\"args\":{\"value\":%llu}}",
                     events_ ? ",\n" : "", name, us(at), (unsigned long long)value);
        events_++;
    }
}

std::string trace_signal_name(const std::string &text)
{
    std::string s = text;
    for (char &c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
            c = '_';
    return s;
}

trace_counters::trace_counters(sc_core::sc_module_name name, trace_recorder *json,
                               const std::string &vcd_path)
    : sc_module(name), json_(json), vcd_path_(vcd_path)
{
    if (vcd_path_.size() <= 4 || vcd_path_.compare(vcd_path_.size() - 4, 4, ".vcd") != 0)
        return;
    vcd_ = std::fopen(vcd_path_.c_str(), "w");
}

trace_counters::~trace_counters()
{
    if (vcd_)
        std::fclose(vcd_);
}

int trace_counters::add(const std::string &name, const std::string &signal)
{
    names_.push_back(name);
    signals_.push_back(signal);
    target_.push_back(0);
    value_.push_back(0);
    shown_.push_back(-1);
    return int(names_.size() - 1);
}

// SystemC's identifiers: five letters counting up from "aaaaa".
std::string trace_counters::vcd_id(size_t i) const
{
    std::string id(5, 'a');
    for (size_t k = 5; k-- > 0 && i; i /= 26)
        id[k] = char('a' + i % 26);
    return id;
}

static std::string vcd_bits(unsigned v)
{
    std::string b;
    do {
        b.insert(b.begin(), char('0' + (v & 1)));
        v >>= 1;
    } while (v);
    return b;
}

// The header and the initial values as SystemC's VCD writer lays them out (one 32-bit
// wire per counter in scope SystemC, time unit 1 ps), with a fixed date so the file is a
// function of the configuration and seed alone, like stats.json.
void trace_counters::end_of_elaboration()
{
    if (!vcd_)
        return;
    std::fprintf(vcd_, "$date\n     Jan 01, 1970       00:00:00\n$end\n\n"
                       "$version\n viosim (SystemC %s VCD layout)\n$end\n\n"
                       "$timescale\n     1 ps\n$end\n\n$scope module SystemC $end\n",
                 sc_core::sc_release());
    for (size_t i = 0; i < signals_.size(); i++)
        std::fprintf(vcd_, "$var wire   32  %s  %s [31:0]  $end\n", vcd_id(i).c_str(), signals_[i].c_str());
    std::fprintf(vcd_, "$upscope $end\n$enddefinitions  $end\n\n$comment\nAll initial values are "
                       "dumped below at time 0 sec = 0 timescale units.\n$end\n\n$dumpvars\n");
    for (size_t i = 0; i < signals_.size(); i++) {
        std::fprintf(vcd_, "b0 %s\n", vcd_id(i).c_str());
        shown_[i] = 0;
    }
    std::fprintf(vcd_, "$end\n");
}

void trace_counters::change(int id, sc_core::sc_time at, int delta)
{
    if (delta == 0)
        return;
    target_[size_t(id)] += delta;
    queue_.push({at, seq_++, id, delta});
    const sc_core::sc_time now = sc_core::sc_time_stamp();
    if (queue_.top().at < now)
        flush(now, false); // nothing can change before now any more
}

void trace_counters::finish()
{
    flush(sc_core::sc_max_time(), true);
}

void trace_counters::flush(sc_core::sc_time upto, bool inclusive)
{
    while (!queue_.empty() && (queue_.top().at < upto || (inclusive && queue_.top().at == upto))) {
        const sc_core::sc_time at = queue_.top().at;
        // Every change at the same time, then one sample per counter that moved.
        while (!queue_.empty() && queue_.top().at == at) {
            const pending p = queue_.top();
            queue_.pop();
            value_[size_t(p.id)] = unsigned(int64_t(value_[size_t(p.id)]) + p.delta);
            dirty_.push_back(p.id);
        }
        bool stamped = false;
        for (int id : dirty_) {
            const unsigned v = value_[size_t(id)];
            if (int64_t(v) == shown_[size_t(id)])
                continue;
            shown_[size_t(id)] = v;
            if (json_)
                json_->counter(names_[size_t(id)].c_str(), at, v);
            if (vcd_) {
                if (!stamped)
                    std::fprintf(vcd_, "\n#%llu\n", (unsigned long long)at.value());
                stamped = true;
                std::fprintf(vcd_, "b%s %s\n", vcd_bits(v).c_str(), vcd_id(size_t(id)).c_str());
            }
        }
        dirty_.clear();
    }
}

int trace_lanes::track(trace_recorder &trace, sc_core::sc_time start, sc_core::sc_time end)
{
    end = std::max(start, end);
    size_t lane = 0;
    while (lane < end_.size() && end_[lane] > start)
        lane++;
    if (lane == end_.size()) {
        if (end_.size() == size_t(TRACE_LANES_MAX)) {
            // Out of tracks (never seen: lanes number the spans in flight at once, plus
            // those an engine issued a quantum ahead): the lane that frees first, where
            // this span overlaps the latest one.
            lane = size_t(std::min_element(end_.begin(), end_.end()) - end_.begin());
        } else {
            end_.push_back(end);
            trace.name_track(first_ + int(lane),
                             lane == 0 ? name_ : name_ + " (lane " + std::to_string(lane + 1) + ")");
        }
    }
    end_[lane] = std::max(end_[lane], end);
    return first_ + int(lane);
}

} // namespace viosim
