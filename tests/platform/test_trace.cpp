// test_trace.cpp -- what `viosim run --trace FILE` and `--vcd FILE` show of one run:
// IOMMU page walks and ATS requests as spans, counters (read tags in flight, buffers in
// flight and ring occupancy per queue), one track per queue engine, VCD waveforms; and
// that observing never changes stats.json.

#include <jansson.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "common/viosim_run.hpp"

namespace {

json_t *load_events(const std::string &path, json_t *&doc)
{
    json_error_t e;
    doc = json_load_file(path.c_str(), 0, &e);
    cr_assert_not_null(doc, "%s is not JSON: %s (line %d)", path.c_str(), e.text, e.line);
    json_t *events = json_object_get(doc, "traceEvents");
    cr_assert(json_is_array(events));
    return events;
}

// Spans (ph X) named `name` on tracks [tid_lo, tid_hi].
size_t spans_on(json_t *events, const std::string &name, json_int_t tid_lo, json_int_t tid_hi)
{
    size_t n = 0, i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const json_int_t tid = json_integer_value(json_object_get(ev, "tid"));
        if (std::string(json_string_value(json_object_get(ev, "ph"))) == "X" &&
            std::string(json_string_value(json_object_get(ev, "name"))) == name && tid >= tid_lo &&
            tid <= tid_hi)
            n++;
    }
    return n;
}

// Spans on one track that overlap another partially (neither holds the other), over
// the tracks [tid_lo, tid_hi]: Perfetto expects a track's spans to nest. Times are in
// microseconds with 12 significant digits, so ends within a picosecond count as equal.
size_t partial_overlaps(json_t *events, json_int_t tid_lo, json_int_t tid_hi)
{
    std::map<json_int_t, std::vector<std::pair<double, double>>> tracks;
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const json_int_t tid = json_integer_value(json_object_get(ev, "tid"));
        if (std::string(json_string_value(json_object_get(ev, "ph"))) == "X" && tid >= tid_lo &&
            tid <= tid_hi) {
            const double ts = json_number_value(json_object_get(ev, "ts"));
            tracks[tid].push_back({ts, ts + json_number_value(json_object_get(ev, "dur"))});
        }
    }
    const double eps = 1e-6;
    size_t partial = 0;
    for (auto &kv : tracks) {
        // By start, the longer first; the ends of the spans still open form a stack in
        // which each lies within the one below, as long as the spans nest.
        std::sort(kv.second.begin(), kv.second.end(), [](const auto &a, const auto &b) {
            return a.first != b.first ? a.first < b.first : a.second > b.second;
        });
        std::vector<double> open;
        for (const auto &sp : kv.second) {
            while (!open.empty() && open.back() <= sp.first + eps)
                open.pop_back();
            if (!open.empty() && sp.second > open.back() + eps)
                partial++;
            open.push_back(sp.second);
        }
    }
    return partial;
}

// Track names by tid.
std::map<json_int_t, std::string> track_names(json_t *events)
{
    std::map<json_int_t, std::string> names;
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
        if (std::string(json_string_value(json_object_get(ev, "ph"))) == "M")
            names[json_integer_value(json_object_get(ev, "tid"))] =
                json_string_value(json_object_get(json_object_get(ev, "args"), "name"));
    return names;
}

struct counter_series {
    std::vector<double> ts;
    std::vector<json_int_t> value;
};

std::map<std::string, counter_series> counters(json_t *events)
{
    std::map<std::string, counter_series> c;
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        if (std::string(json_string_value(json_object_get(ev, "ph"))) != "C")
            continue;
        counter_series &s = c[json_string_value(json_object_get(ev, "name"))];
        s.ts.push_back(json_real_value(json_object_get(ev, "ts")));
        s.value.push_back(json_integer_value(json_object_get(json_object_get(ev, "args"), "value")));
    }
    return c;
}

json_int_t largest(const counter_series &s)
{
    json_int_t m = 0;
    for (json_int_t v : s.value)
        m = std::max(m, v);
    return m;
}

} // namespace

// IOMMU page walks are spans on the walkers' tracks when the IOMMU translates
// (ACCESS_PLATFORM negotiated, "Reserved Feature Bits"), and there are none when it does
// not; walks by the device's own IOMMU and ATS Translation Requests have their own tracks.
Test(platform_trace, iommu_walks_and_ats_requests)
{
    const std::string a = temp_dir(), b = temp_dir(), c = temp_dir(), d = temp_dir(),
                      e = temp_dir();
    run_out on, off, dev, ats, ats4;
    run(on, {"--set", "driver.frames_count=100", "--trace", a + "/t.json"}, a);
    run(off, {"--set", "driver.frames_count=100", "--set", "driver.decline_features=ACCESS_PLATFORM",
              "--trace", b + "/t.json"}, b);
    run(dev, {"--set", "driver.frames_count=100", "--set", "iommu.walk_location=device", "--trace",
              c + "/t.json"}, c);
    run(ats, {"--set", "driver.frames_count=100", "--set", "iommu.ats=on", "--trace", d + "/t.json"}, d);
    run(ats4, {"--set", "driver.frames_count=100", "--set", "iommu.ats=on", "--set",
               "device.queue_engines=4", "--set", "dma.read_tags_count=8", "--trace", e + "/t.json"}, e);
    expect_clean_loopback(on, 100);
    expect_clean_loopback(off, 100);
    expect_clean_loopback(dev, 100);
    expect_clean_loopback(ats, 100);
    expect_clean_loopback(ats4, 100);

    json_t *doc;
    json_t *ev = load_events(a + "/t.json", doc);
    // Every root-complex walk is on the timeline, on walker tracks 40, 41, ...
    cr_expect_gt(on.stat("iommu.walks"), 0);
    cr_expect_eq(double(spans_on(ev, "walk", 40, 103)), on.stat("iommu.walks"));
    cr_expect_eq(track_names(ev)[40], "root complex IOMMU: page walker 1");
    json_decref(doc);

    ev = load_events(b + "/t.json", doc);
    cr_expect_eq(off.stat("iommu.walks"), 0);
    cr_expect_eq(spans_on(ev, "walk", 0, 1000), 0u);
    json_decref(doc);

    // The device's walks are on its walkers' tracks 5000, 5001 (the default two
    // walkers), both used, none beyond; no span anywhere overlaps another on its track
    // partially (below, the ATS requests overlap in time and spread over lanes).
    ev = load_events(c + "/t.json", doc);
    cr_expect_gt(dev.stat("iommu.walks"), 0);
    cr_expect_eq(double(spans_on(ev, "walk", 5000, 5001)), dev.stat("iommu.walks"));
    cr_expect_gt(spans_on(ev, "walk", 5001, 5001), 0u, "the second walker walks too");
    cr_expect_eq(spans_on(ev, "walk", 40, 103), 0u);
    cr_expect_eq(track_names(ev)[5000], "device IOMMU: page walker 1");
    cr_expect_eq(track_names(ev)[5001], "device IOMMU: page walker 2");
    cr_expect_eq(partial_overlaps(ev, 0, 1 << 30), 0u);
    json_decref(doc);

    for (const auto &[dir, r] : {std::pair<std::string, run_out *>{d, &ats}, {e, &ats4}}) {
        ev = load_events(dir + "/t.json", doc);
        cr_expect_gt(r->stat("iommu.ats.translation_requests"), 0);
        cr_expect_eq(double(spans_on(ev, "ats_translation", 6000, 6999)),
                     r->stat("iommu.ats.translation_requests"));
        cr_expect_gt(spans_on(ev, "ats_translation", 6001, 6999), 0u,
                     "the requests overlap: a second lane");
        cr_expect_eq(track_names(ev)[6000], "device: ATS translation requests");
        cr_expect_eq(partial_overlaps(ev, 0, 1 << 30), 0u);
        json_decref(doc);
    }
}

// Counters: read tags in flight never exceed dma.read_tags_count and peak where the
// statistics say; buffers in flight never exceed device.queue_engines; every counter's
// samples are in time order; with 4 engines per queue each engine has its own track.
Test(platform_trace, counters_and_engine_tracks)
{
    const std::string a = temp_dir();
    run_out r;
    run(r, {"--set", "driver.frames_count=300", "--set", "device.queue_engines=4", "--set",
            "dma.read_tags_count=4", "--set", "driver.decline_features=RING_PACKED", "--trace",
            a + "/t.json"}, a);
    expect_clean_loopback(r, 300);
    json_t *doc;
    json_t *ev = load_events(a + "/t.json", doc);
    std::map<std::string, counter_series> c = counters(ev);
    for (const char *name : {"DMA read tags in flight", "transmitq1 buffers in flight",
                             "receiveq1 buffers in flight", "transmitq1 ring occupancy",
                             "receiveq1 ring occupancy"})
        cr_expect(c.count(name) && !c[name].value.empty(), "no samples of counter '%s'", name);
    for (const auto &kv : c) {
        for (size_t i = 1; i < kv.second.ts.size(); i++)
            cr_expect_leq(kv.second.ts[i - 1], kv.second.ts[i], "%s out of time order", kv.first.c_str());
        for (json_int_t v : kv.second.value)
            cr_expect_geq(v, 0, "%s below zero", kv.first.c_str());
    }
    cr_expect_leq(largest(c["DMA read tags in flight"]), 4);
    cr_expect_eq(double(largest(c["DMA read tags in flight"])), r.stat("dma.tags.max_in_flight"));
    cr_expect_leq(largest(c["transmitq1 buffers in flight"]), 4);
    cr_expect_leq(largest(c["receiveq1 buffers in flight"]), 4);
    cr_expect_eq(double(largest(c["transmitq1 buffers in flight"])),
                 r.stat("device.queue.tx.in_flight_max"));
    cr_expect_leq(largest(c["transmitq1 ring occupancy"]), 256); // the split ring's size
    // The last samples: nothing left in flight at the end of the run.
    cr_expect_eq(c["DMA read tags in flight"].value.back(), 0);
    cr_expect_eq(c["transmitq1 buffers in flight"].value.back(), 0);

    std::map<json_int_t, std::string> names = track_names(ev);
    std::set<std::string> named;
    for (const auto &kv : names)
        named.insert(kv.second);
    for (int k = 1; k <= 4; k++) {
        cr_expect(named.count("device: transmitq1 engine " + std::to_string(k)), "no track for TX engine %d", k);
        cr_expect(named.count("device: receiveq1 engine " + std::to_string(k)), "no track for RX engine %d", k);
    }
    // Several engines carried DMA on their own tracks (TX engine k: 200 + 64 + k - 1).
    size_t busy_engines = 0;
    for (int k = 0; k < 4; k++)
        busy_engines += spans_on(ev, "buf_read", 264 + k, 264 + k) > 0;
    cr_expect_gt(busy_engines, 1u);
    cr_expect_eq(spans_on(ev, "buf_read", 2, 2), 0u); // not on the queue's own track
    json_decref(doc);
}

// --vcd FILE: the counters as VCD waveforms (SystemC's VCD writer): the declared signals
// and value changes; tags in flight within dma.read_tags_count; stats.json unchanged.
Test(platform_trace, vcd_waveforms)
{
    const std::string a = temp_dir(), b = temp_dir();
    run_out r, plain;
    run(r, {"--set", "driver.frames_count=200", "--set", "dma.read_tags_count=4", "--vcd",
            a + "/w.vcd"}, a);
    run(plain, {"--set", "driver.frames_count=200", "--set", "dma.read_tags_count=4"}, b);
    expect_clean_loopback(r, 200);
    cr_expect(slurp(a + "/stats.json") == slurp(b + "/stats.json"), "--vcd changed stats.json");
    std::istringstream vcd(slurp(a + "/w.vcd"));
    std::map<std::string, std::string> ids; // VCD identifier -> signal
    std::map<std::string, unsigned> changes, largest_value;
    std::string line;
    long long last_time = -1;
    bool times_ordered = true;
    while (std::getline(vcd, line)) {
        std::istringstream in(line);
        std::string first;
        in >> first;
        if (first == "$var") {
            std::string kind, width, id, name;
            in >> kind >> width >> id >> name;
            ids[id] = name;
        } else if (!first.empty() && first[0] == '#') {
            const long long t = std::stoll(first.substr(1));
            times_ordered &= t > last_time;
            last_time = t;
        } else if (!first.empty() && first[0] == 'b' && last_time >= 0) {
            std::string id;
            in >> id;
            const unsigned v = unsigned(std::stoul(first.substr(1), nullptr, 2));
            changes[ids[id]]++;
            largest_value[ids[id]] = std::max(largest_value[ids[id]], v);
        }
    }
    cr_expect(times_ordered);
    std::set<std::string> declared;
    for (const auto &kv : ids)
        declared.insert(kv.second);
    for (const char *s : {"dma_read_tags_in_flight", "receiveq1_buffers_in_flight",
                          "transmitq1_buffers_in_flight", "receiveq1_ring_occupancy",
                          "transmitq1_ring_occupancy", "controlq_buffers_in_flight"})
        cr_expect(declared.count(s), "signal %s not declared", s);
    cr_expect_gt(changes["dma_read_tags_in_flight"], 10u);
    cr_expect_gt(changes["transmitq1_buffers_in_flight"], 10u);
    cr_expect_leq(largest_value["dma_read_tags_in_flight"], 4u);
    cr_expect_eq(double(largest_value["dma_read_tags_in_flight"]), r.stat("dma.tags.max_in_flight"));
    cr_expect_leq(largest_value["transmitq1_buffers_in_flight"], 1u); // one engine per queue

    // The waveform is reproducible: no wall-clock date in its header.
    const std::string e = temp_dir();
    run_out again;
    run(again, {"--set", "driver.frames_count=200", "--set", "dma.read_tags_count=4", "--vcd",
                e + "/w.vcd"}, e);
    cr_expect(slurp(a + "/w.vcd") == slurp(e + "/w.vcd"), "two runs wrote different VCD files");
    cr_expect_neq(slurp(a + "/w.vcd").find("$date\n     Jan 01, 1970       00:00:00\n$end"),
                  std::string::npos, "the VCD header carries the wall clock");

    // The timeline is the same with and without the waveform beside it.
    const std::string c = temp_dir(), d = temp_dir();
    run_out traced, both;
    run(traced, {"--set", "driver.frames_count=100", "--trace", c + "/t.json"}, c);
    run(both, {"--set", "driver.frames_count=100", "--trace", d + "/t.json", "--vcd", d + "/w.vcd"}, d);
    cr_expect(slurp(c + "/t.json") == slurp(d + "/t.json"), "--vcd changed the --trace timeline");
    cr_expect(slurp(c + "/stats.json") == slurp(d + "/stats.json"));

    // A name SystemC would not write as given is refused before anything runs.
    run_out bad;
    run(bad, {"--vcd", b + "/w.txt"});
    cr_expect_eq(bad.status, 2);
    cr_expect_neq(bad.err.find("--vcd"), std::string::npos, "%s", bad.err.c_str());
    run_out missing;
    run(missing, {"--vcd"});
    cr_expect_eq(missing.status, 2);
    cr_expect_neq(missing.err.find("--vcd"), std::string::npos, "%s", missing.err.c_str());
}

namespace {
// Instants (ph i) named `name`, their times in order.
std::vector<double> instants(json_t *events, const std::string &name)
{
    std::vector<double> ts;
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
        if (std::string(json_string_value(json_object_get(ev, "ph"))) == "i" &&
            std::string(json_string_value(json_object_get(ev, "name"))) == name)
            ts.push_back(json_number_value(json_object_get(ev, "ts")));
    std::sort(ts.begin(), ts.end());
    return ts;
}
} // namespace

// Interrupts on the timeline: MSI-X messages as instants when the function has MSI-X;
// with device.msix=off ("ISR status capability": legacy INTx) the pin's assertions and
// deassertions instead, as many as the statistics count, each assertion followed by its
// deassertion (the driver's ISR read) before the next.
Test(platform_trace, intx_assert_and_deassert)
{
    const std::string a = temp_dir(), b = temp_dir();
    run_out intx, msix;
    run(intx, {"--set", "device.msix=off", "--set", "driver.frames_count=100", "--trace",
               a + "/t.json"}, a);
    run(msix, {"--set", "driver.frames_count=100", "--trace", b + "/t.json"}, b);
    cr_assert_eq(intx.status, 0, "%s", intx.err.c_str());
    cr_assert_eq(msix.status, 0, "%s", msix.err.c_str());
    json_t *doc = nullptr;
    json_t *ev = load_events(a + "/t.json", doc);
    const std::vector<double> up = instants(ev, "INTx assert"), down = instants(ev, "INTx deassert");
    cr_expect_eq(instants(ev, "MSI-X").size(), 0u);
    json_decref(doc);
    cr_expect_gt(up.size(), 0u);
    cr_expect_eq(double(up.size()), intx.stat("device.intx_asserts"));
    cr_expect_eq(double(down.size()), intx.stat("device.intx_deasserts"));
    for (size_t k = 0; k < up.size(); k++) {
        if (k < down.size())
            cr_expect_leq(up[k], down[k], "deassertion %zu before its assertion", k);
        if (k + 1 < up.size() && k < down.size())
            cr_expect_leq(down[k], up[k + 1], "assertion %zu while still asserted", k + 1);
    }
    ev = load_events(b + "/t.json", doc);
    cr_expect_eq(double(instants(ev, "MSI-X").size()), msix.stat("device.msix_sent"));
    cr_expect_eq(instants(ev, "INTx assert").size(), 0u);
    json_decref(doc);
}
