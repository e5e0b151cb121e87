// config.cpp -- the parameter table and everything derived from it: the defaults,
// --set and config-file parsing, per-value and cross-parameter validation, the
// listing of `viosim params`, docs/parameters.md and the resolved configuration.
//
// A parameter is one row of param_table(): its name (unit in the name), unit,
// default as text, meaning, type (which also says what is allowed) and a setter and
// getter into vs_config. Defaults are produced by parsing each row's default text
// through the same path a --set takes, so the table is the only place they live.
#include "config.h"
#include "pcie_tlp.h"

#include <jansson.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

#include <strings.h>
#include <sys/stat.h>

namespace viosim {

namespace {

// ---- Values and types ----

// A parsed value; which field is meaningful depends on the parameter's kind.
struct param_value {
    uint64_t u = 0;              // integer, choice (index into the choices)
    double d = 0;                // real
    std::vector<uint32_t> list;  // size list
    vs_features features{};      // feature list
    uint8_t mac[6] = {};         // MAC address
    uint8_t ipv4[4] = {};        // IPv4 address, network order
};

enum class param_kind { integer, real, choice, mac, ipv4, size_list, feature_list };

// Rules on an integer beyond its range.
enum class int_rule {
    range,             // int_min..int_max
    one_of,            // one of the listed values
    power_of_two,      // a power of two in int_min..int_max
    zero_or_power_of_two, // 0, or a power of two in int_min..int_max
};

struct param_type {
    param_kind kind = param_kind::integer;
    int_rule rule = int_rule::range;
    uint64_t int_min = 0, int_max = 0;  // integer; size_list: each element
    std::vector<uint64_t> one_of;       // integer with int_rule::one_of
    unsigned hex_digits = 0;            // integer shown as 0x hex with this many digits
    double real_min = 0, real_max = 0;  // real: real_min..real_max
    bool real_or_zero = false;          // real: 0 is allowed too (an "off" value)
    std::vector<const char *> choices;  // choice: the names; the value is the index
    bool choice_any_case = false;       // choice: names match case-insensitively
    unsigned list_max = 0;              // size_list: most elements
};

param_type integer(uint64_t lo, uint64_t hi)
{
    param_type t;
    t.int_min = lo;
    t.int_max = hi;
    return t;
}

param_type integer_one_of(std::vector<uint64_t> values)
{
    param_type t = integer(values.front(), values.back());
    t.rule = int_rule::one_of;
    t.one_of = std::move(values);
    return t;
}

param_type integer_pow2(uint64_t lo, uint64_t hi)
{
    param_type t = integer(lo, hi);
    t.rule = int_rule::power_of_two;
    return t;
}

param_type integer_zero_or_pow2(uint64_t lo, uint64_t hi)
{
    param_type t = integer(lo, hi);
    t.rule = int_rule::zero_or_power_of_two;
    return t;
}

param_type id16()
{
    param_type t = integer(0, 0xffff);
    t.hex_digits = 4;
    return t;
}

param_type real(double lo, double hi)
{
    param_type t;
    t.kind = param_kind::real;
    t.real_min = lo;
    t.real_max = hi;
    return t;
}

// 0 (off), or real_min..real_max.
param_type real_zero_or(double lo, double hi)
{
    param_type t = real(lo, hi);
    t.real_or_zero = true;
    return t;
}

param_type choice(std::vector<const char *> names)
{
    param_type t;
    t.kind = param_kind::choice;
    t.choices = std::move(names);
    return t;
}

// driver.inject_violation: "" (none), then each injection's name in lower case; any
// case is accepted.
param_type injection_choice()
{
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        for (unsigned i = 0; i < REFDRV_INJECT_COUNT; i++) {
            std::string s = i == REFDRV_INJECT_NONE ? "" : refdrv_inject_name(refdrv_inject(i));
            for (char &ch : s)
                ch = char(std::tolower(static_cast<unsigned char>(ch)));
            n.push_back(s);
        }
        return n;
    }();
    std::vector<const char *> ptrs;
    for (const std::string &n : names)
        ptrs.push_back(n.c_str());
    param_type t = choice(std::move(ptrs));
    t.choice_any_case = true;
    return t;
}

param_type mac_address()
{
    param_type t;
    t.kind = param_kind::mac;
    return t;
}

param_type ipv4_address()
{
    param_type t;
    t.kind = param_kind::ipv4;
    return t;
}

param_type size_list(uint64_t lo, uint64_t hi, unsigned max_count)
{
    param_type t = integer(lo, hi);
    t.kind = param_kind::size_list;
    t.list_max = max_count;
    return t;
}

param_type feature_list()
{
    param_type t;
    t.kind = param_kind::feature_list;
    return t;
}

using param_setter = void (*)(vs_config &, const param_value &);
using param_getter = param_value (*)(const vs_config &);

struct param_def {
    const char *name;
    const char *unit;
    const char *default_text;
    const char *meaning;
    param_type type;
    param_setter set;
    param_getter get;
};

param_value int_value(uint64_t u)
{
    param_value v;
    v.u = u;
    return v;
}

param_value real_value(double d)
{
    param_value v;
    v.d = d;
    return v;
}

// Plain field mappings; conversions (units, enums, lists) are written out in the table.
#define INT_FIELD(field)                                                                  \
    [](vs_config &c, const param_value &v) { c.field = static_cast<decltype(c.field)>(v.u); }, \
    [](const vs_config &c) { return int_value(c.field); }
#define REAL_FIELD(field)                                                                 \
    [](vs_config &c, const param_value &v) { c.field = v.d; },                          \
    [](const vs_config &c) { return real_value(c.field); }
// A bool set by a choice of two names, false first.
#define BOOL_CHOICE_FIELD(false_name, true_name, field)                                   \
    choice({false_name, true_name}),                                                      \
        [](vs_config &c, const param_value &v) { c.field = v.u == 1; },                   \
        [](const vs_config &c) { return int_value(c.field ? 1 : 0); }
// A bool set by an off/on choice.
#define ON_OFF_FIELD(field) BOOL_CHOICE_FIELD("off", "on", field)

// The virtio-net header in front of every frame in a receive buffer.
constexpr uint32_t NET_HDR_BYTES = sizeof(struct virtio_net_hdr);
constexpr double NS_PER_US = 1e3;
constexpr double US_PER_MS = 1e3;

// Time ranges. The platform turns every time into an sc_time at a 1 ps resolution
// (top.cpp), a 64-bit count of picoseconds that SystemC converts from a double without
// a range check: a value that does not fit is undefined behaviour, one below 1 ps is 0.
// So a period or rate (a clock, the quantum, the time limit, a copy bandwidth, an
// arrival rate, an on period) has a range whose derived time is at least 1 ps, and no
// single time comes near 2^63 ps (106 days): latencies are at most 1e9 ns, a clock's
// cycle at most 1 us, and one operation's cycles at their clock at most
// MAX_OPERATION_PS (config_validate), so even a batch of 2^20 operations fits.
constexpr double CLOCK_MHZ_MIN = 1;   // a cycle of 1 us
constexpr double CLOCK_MHZ_MAX = 1e5; // a cycle of 10 ps
constexpr double MAX_OPERATION_PS = 1e12; // 1 s

// ---- The table ----

const std::vector<param_def> &param_table()
{
    static const std::vector<param_def> table = {
        // PCIe link
        {"pcie.gen", "", "3", "PCIe generation of the link (per-lane rate and encoding)",
         integer(1, 5), INT_FIELD(pcie.gen)},
        {"pcie.lanes", "", "8", "PCIe link width", integer_one_of({1, 2, 4, 8, 16}),
         INT_FIELD(pcie.lanes)},
        {"pcie.read_latency_ns", "ns", "550",
         "unloaded round trip of a lone 64-byte DMA read, everything included (pcie-bench, "
         "SIGCOMM 2018: median 546-560 ns on Xeon E5); must exceed its known parts "
         "(serialisation, host memory)",
         real(0, 1e9), REAL_FIELD(pcie.read_latency_ns)},
        {"pcie.max_payload_bytes", "bytes", "256",
         "Max Payload Size: largest data payload of one write or completion TLP",
         integer_pow2(128, 4096), INT_FIELD(pcie.max_payload_bytes)},
        {"pcie.max_read_request_bytes", "bytes", "512",
         "Max Read Request Size: largest single DMA read request", integer_pow2(128, 4096),
         INT_FIELD(pcie.max_read_request_bytes)},
        {"pcie.read_completion_boundary_bytes", "bytes", "64",
         "Read Completion Boundary: completions end on multiples of it when "
         "pcie.completion_split = rcb",
         integer_one_of({64, 128}), INT_FIELD(pcie.read_completion_boundary_bytes)},
        {"pcie.completion_split", "", "mps",
         "how a completer splits read data: mps = completions as large as the max payload "
         "size; rcb = one completion per RCB block (seen on some older chipsets)",
         choice({"mps", "rcb"}),
         [](vs_config &c, const param_value &v) { c.pcie.completions_at_rcb = v.u == 1; },
         [](const vs_config &c) { return int_value(c.pcie.completions_at_rcb ? 1 : 0); }},
        {"pcie.address_bits", "bits", "64",
         "address width of memory requests: 64 = 4DW headers, 32 = 3DW headers",
         integer_one_of({32, 64}), INT_FIELD(pcie.address_bits)},
        {"pcie.ecrc", "", "off", "end-to-end CRC: on adds a 4-byte digest to every TLP",
         choice({"off", "on"}),
         [](vs_config &c, const param_value &v) { c.pcie.ecrc = v.u == 1; },
         [](const vs_config &c) { return int_value(c.pcie.ecrc ? 1 : 0); }},

        // Device DMA engine
        {"dma.read_tags_count", "count", "32",
         "read requests the device's DMA engine may have outstanding (PCIe tags); the next "
         "read waits for a free tag",
         integer(1, 1024), INT_FIELD(dma.read_tags_count)},
        {"dma.completion_order", "", "in_order",
         "in_order = a read's tag is freed only once every earlier read has completed "
         "(completions consumed in order); out_of_order = each tag is freed on its own "
         "completion",
         choice({"in_order", "out_of_order"}),
         [](vs_config &c, const param_value &v) { c.dma.completions_in_order = v.u == 0; },
         [](const vs_config &c) { return int_value(c.dma.completions_in_order ? 0 : 1); }},

        {"dma.channels_count", "count", "0",
         "DMA channels shared by the queue engines: a transfer holds one from its start "
         "until its data is there; 0 = every queue engine has its own",
         integer(0, 64), INT_FIELD(dma.channels_count)},
        {"dma.arbitration", "", "round_robin",
         "which waiting queue gets a freed channel: round_robin, or fixed_priority (receive "
         "queue, then transmit, then control)",
         choice({"round_robin", "fixed_priority"}),
         [](vs_config &c, const param_value &v) { c.dma.fixed_priority = v.u == 1; },
         [](const vs_config &c) { return int_value(c.dma.fixed_priority ? 1 : 0); }},

        // IOMMU
        {"iommu.iotlb_entries", "entries", "64",
         "IOTLB entries (translations cached by the IOMMU); 0 = no IOTLB",
         integer(0, 4096), INT_FIELD(iommu.iotlb_entries)},
        {"iommu.iotlb_ways", "ways", "4",
         "IOTLB associativity; entries / ways must be a power of two", integer(1, 4096),
         INT_FIELD(iommu.iotlb_ways)},
        {"iommu.replacement", "", "lru", "IOTLB replacement: lru or random (seeded by sim.seed)",
         choice({"lru", "random"}),
         [](vs_config &c, const param_value &v) { c.iommu.random_replacement = v.u == 1; },
         [](const vs_config &c) { return int_value(c.iommu.random_replacement ? 1 : 0); }},
        {"iommu.iotlb_hit_ns", "ns", "2", "time of every IOTLB lookup (the whole cost of a hit)",
         real(0, 1e6), REAL_FIELD(iommu.iotlb_hit_ns)},
        {"iommu.walkers_count", "count", "2",
         "page walks the IOMMU runs at once, at either iommu.walk_location; a miss waits for "
         "the walker that frees first. A walk reads one 8-byte entry per level, one after "
         "another: from host memory at the root complex, by DMA reads across the link in "
         "the device",
         integer(1, 64), INT_FIELD(iommu.walkers_count)},
        {"iommu.walk_read_overhead_ns", "ns", "0",
         "time the root complex's IOMMU adds to each page-table read on top of host "
         "memory's latency (its own path to memory); not charged with "
         "iommu.walk_location=device, whose reads cross the link",
         real(0, 1e6), REAL_FIELD(iommu.walk_read_overhead_ns)},
        {"iommu.psc_level4_entries", "entries", "0",
         "paging-structure cache of level-4 (PML4) entries: a hit skips the walk's level-4 "
         "read; fully associative, LRU; 0 = no such cache",
         integer(0, 256), INT_FIELD(iommu.psc_level4_entries)},
        {"iommu.psc_level3_entries", "entries", "0",
         "paging-structure cache of level-3 (PDPT) entries: a hit skips the reads of levels 4 "
         "and 3; fully associative, LRU; 0 = no such cache",
         integer(0, 256), INT_FIELD(iommu.psc_level3_entries)},
        {"iommu.psc_level2_entries", "entries", "0",
         "paging-structure cache of level-2 (page directory) entries that point to a table: a "
         "hit leaves only the leaf's read; fully associative, LRU; 0 = no such cache",
         integer(0, 256), INT_FIELD(iommu.psc_level2_entries)},
        {"iommu.ats", "", "off",
         "on = Address Translation Services: the device keeps its own translation cache, "
         "filled by Translation Requests that cross the link, and sends physical "
         "addresses; the root complex then does not translate its requests",
         choice({"off", "on"}),
         [](vs_config &c, const param_value &v) { c.iommu.ats = v.u == 1; },
         [](const vs_config &c) { return int_value(c.iommu.ats ? 1 : 0); }},
        {"iommu.walk_location", "", "root_complex",
         "where translation happens: root_complex = the host's IOMMU (walks read host memory "
         "directly); device = the device holds the IOMMU, its IOTLB (iommu.iotlb_*) and its "
         "walker, and every page-table read is a DMA read across the link",
         choice({"root_complex", "device"}),
         [](vs_config &c, const param_value &v) { c.iommu.in_device = v.u == 1; },
         [](const vs_config &c) { return int_value(c.iommu.in_device ? 1 : 0); }},
        {"iommu.atc_entries", "entries", "64", "entries of the device's ATS translation cache",
         integer(1, 4096), INT_FIELD(iommu.atc_entries)},
        {"iommu.atc_ways", "ways", "4",
         "associativity of the device's translation cache; entries / ways a power of two",
         integer(1, 4096), INT_FIELD(iommu.atc_ways)},

        // Software-device profile
        {"software.access_ns", "ns", "90",
         "software profile: one dependent access of the device thread to guest memory "
         "(a load that misses its caches)",
         real(0, 1e6), REAL_FIELD(software.access_ns)},
        {"software.copy_bytes_per_ns", "bytes_per_ns", "10",
         "software profile: the device thread's copy bandwidth (10 bytes/ns = 10 GB/s)",
         real(1e-3, 1e3), REAL_FIELD(software.copy_bytes_per_ns)},
        {"software.notify_ns", "ns", "2000",
         "software profile: from the driver's notification (an eventfd write / IPI) until "
         "the device thread runs",
         real(0, 1e9), REAL_FIELD(software.notify_ns)},
        {"software.interrupt_ns", "ns", "1500",
         "software profile: from the device thread's interrupt (an IPI) until the driver's "
         "handler runs (host.irq_entry_cycles is charged on top)",
         real(0, 1e9), REAL_FIELD(software.interrupt_ns)},
        {"software.barrier_ns", "ns", "20",
         "software profile: the SMP store barrier before each used-descriptor write",
         real(0, 1e6), REAL_FIELD(software.barrier_ns)},

        // DMA microbenchmark (sim.workload = dma_bench)
        {"bench.op", "", "read",
         "DMA benchmark operation: read, write, or read_write (one read and one write per "
         "transfer), back to back from the device to host memory",
         choice({"read", "write", "read_write"}), INT_FIELD(bench.op)},
        {"bench.transfer_bytes", "bytes", "64", "size of each benchmark DMA transfer",
         integer(1, 65536), INT_FIELD(bench.transfer_bytes)},
        {"bench.transfers_count", "count", "20000", "benchmark DMA transfers to issue",
         integer(1, 1000000000), INT_FIELD(bench.transfers_count)},
        {"bench.iommu", "", "off",
         "on = benchmark requests are translated by the IOMMU: the window is mapped at "
         "driver.iova_offset_bytes with driver.iommu_page_bytes pages, PASID 0",
         choice({"off", "on"}),
         [](vs_config &c, const param_value &v) { c.bench.iommu = v.u == 1; },
         [](const vs_config &c) { return int_value(c.bench.iommu ? 1 : 0); }},
        {"bench.access_pattern", "", "sequential",
         "sequential = consecutive slots of the window; random = uniformly random slots "
         "(seeded by sim.seed)",
         choice({"sequential", "random"}),
         [](vs_config &c, const param_value &v) { c.bench.random = v.u == 1; },
         [](const vs_config &c) { return int_value(c.bench.random ? 1 : 0); }},
        {"bench.window_bytes", "bytes", "1048576",
         "host buffer the benchmark cycles through; transfers start at consecutive "
         "multiples of the transfer size rounded up to a power of two (at least 64)",
         integer(4096, 1ull << 32), INT_FIELD(bench.window_bytes)},

        // Host
        {"host.memory_mib", "MiB", "64", "guest memory size", integer(4, 4096),
         INT_FIELD(memory.size_mib)},
        {"host.memory_latency_ns", "ns", "80",
         "latency of host memory answering a DMA read (part of pcie.read_latency_ns)",
         real(0, 1e9), REAL_FIELD(memory.latency_ns)},
        {"host.memory_read_per_byte_ps", "ps", "243",
         "time per byte for the host to stream a DMA read's data out (memory and root "
         "complex), in order across one transfer's requests; with the link's serialisation "
         "it makes read latency rise with size as pcie-bench measured (626 ns at 256 B, "
         "706 ns at 512 B, about 990 ns at 1520 B)",
         real(0, 1e6), REAL_FIELD(memory.read_ps_per_byte)},
        {"host.cpu_clock_mhz", "MHz", "3000", "host CPU clock; converts host.*_cycles to time",
         real(CLOCK_MHZ_MIN, CLOCK_MHZ_MAX), REAL_FIELD(cpu.clock_mhz)},
        {"host.tx_packet_cycles", "cycles", "400",
         "CPU cycles to build and post one frame for transmission", integer(0, 1000000000),
         INT_FIELD(cpu.tx_packet_cycles)},
        {"host.rx_packet_cycles", "cycles", "400",
         "CPU cycles to reap and consume one received frame", integer(0, 1000000000),
         INT_FIELD(cpu.rx_packet_cycles)},
        {"host.tx_reap_cycles", "cycles", "100", "CPU cycles to reclaim one transmitted buffer",
         integer(0, 1000000000), INT_FIELD(cpu.tx_reap_cycles)},
        {"host.rx_refill_cycles", "cycles", "100", "CPU cycles to post one empty receive buffer",
         integer(0, 1000000000), INT_FIELD(cpu.rx_refill_cycles)},
        {"host.poll_cycles", "cycles", "50", "CPU cycles of one poll of the rings that finds nothing",
         integer(0, 1000000000), INT_FIELD(cpu.poll_cycles)},
        {"host.irq_entry_cycles", "cycles", "1500",
         "CPU cycles from interrupt delivery to the driver's handler", integer(0, 1000000000),
         INT_FIELD(cpu.irq_entry_cycles)},
        {"host.device_barrier_cycles", "cycles", "30",
         "CPU cycles of the write barrier before each publish when VIRTIO_F_ORDER_PLATFORM "
         "is negotiated (barriers suitable for hardware devices)",
         integer(0, 1000000000), INT_FIELD(cpu.device_barrier_cycles)},
        {"host.smp_barrier_cycles", "cycles", "5",
         "CPU cycles of the write barrier before each publish without ORDER_PLATFORM "
         "(CPU-to-CPU ordering only)",
         integer(0, 1000000000), INT_FIELD(cpu.smp_barrier_cycles)},
        {"host.ctrl_command_cycles", "cycles", "500",
         "CPU cycles to build one control queue command and check its ack (the driver's "
         "coalescing commands; the polls while it waits are host.poll_cycles each)",
         integer(0, 1000000000), INT_FIELD(cpu.ctrl_command_cycles)},
        {"host.mmio_write_ns", "ns", "100",
         "CPU time to issue one posted MMIO write (e.g. a notification)", real(0, 1e9),
         REAL_FIELD(cpu.mmio_write_ns)},
        {"host.intx_latency_ns", "ns", "1000",
         "legacy INTx only (device.msix = off): from the device changing its INTA# pin to the "
         "interrupt controller seeing the new level (the Assert_INTx / Deassert_INTx message "
         "upstream and the I/O APIC's redirection; not charged on the link). A read's "
         "completion never passes a pin change the device made before answering it "
         "(docs/timing.md)",
         real(0, 1e9), REAL_FIELD(cpu.intx_latency_ns)},
        {"host.cpus_count", "count", "1",
         "CPUs the reference driver's queue pairs run on: 1 = one CPU serves every pair, one "
         "after the other; N = pair k's work (its completions, receptions, departures and "
         "notifications) on CPU k mod N, the CPUs side by side within each pass over the rings "
         "and joined at its end (N = driver.queue_pairs_count: a CPU per pair; "
         "docs/timing.md). Matters only with several pairs",
         integer(1, REFDRV_PAIRS_MAX), INT_FIELD(cpu.cpus_count)},

        // Device
        {"device.clock_mhz", "MHz", "1000", "device core clock; converts device.*_cycles to time",
         real(CLOCK_MHZ_MIN, CLOCK_MHZ_MAX), REAL_FIELD(device_tlm.clock_mhz)},
        {"device.desc_cycles", "cycles", "4", "device cycles to process one descriptor",
         integer(0, 1000000000), INT_FIELD(device_tlm.desc_cycles)},
        {"device.packet_cycles", "cycles", "20", "device cycles to process one frame",
         integer(0, 1000000000), INT_FIELD(device_tlm.packet_cycles)},
        {"device.queue_size_max_entries", "entries", "256",
         "largest queue size the device offers (queue_size after reset)",
         integer(1, PVIRTQ_SIZE_MAX), INT_FIELD(dev.queue_size_max)},
        {"device.notify_off_multiplier_bytes", "bytes", "4",
         "notify_off_multiplier: distance between the queues' notification addresses "
         "(0: all queues share one)",
         integer_zero_or_pow2(4, 4096), INT_FIELD(dev.notify_off_multiplier)},
        {"device.revision_id", "", "1", "PCI Revision ID (a non-transitional device presents 1 or more)",
         integer(1, 255), INT_FIELD(dev.revision_id)},
        {"device.subsystem_vendor_id", "", "0x1af4", "PCI Subsystem Vendor ID", id16(),
         INT_FIELD(dev.subsystem_vendor_id)},
        {"device.subsystem_id", "", "0x1100", "PCI Subsystem ID", id16(),
         INT_FIELD(dev.subsystem_id)},
        {"device.withdraw_features", "", "",
         "features withdrawn from the device's offer, a quirk for testing drivers "
         "(e.g. EVENT_IDX,IN_ORDER)",
         feature_list(),
         [](vs_config &c, const param_value &v) { c.dev.withdraw = v.features; },
         [](const vs_config &c) {
             param_value v;
             v.features = c.dev.withdraw;
             return v;
         }},
        {"device.queue_pairs_count", "count", "1",
         "receive/transmit queue pairs the device offers (max_virtqueue_pairs); more than one "
         "offers VIRTIO_NET_F_MQ, with 2N+1 queues (control last) and one MSI-X vector per "
         "queue. `serve --vhost-user` offers the same device: GET_QUEUE_NUM answers N (at most "
         "128), the front end keeps the control queue and the pairs it enables are the pairs "
         "in use (docs/bring-up.md)",
         integer(1, VNET_PAIRS_MAX), INT_FIELD(dev.queue_pairs)},
        {"device.mac", "", "52:54:00:12:34:56", "MAC address in the device configuration space",
         mac_address(),
         [](vs_config &c, const param_value &v) { std::memcpy(c.dev.mac, v.mac, sizeof v.mac); },
         [](const vs_config &c) {
             param_value v;
             std::memcpy(v.mac, c.dev.mac, sizeof v.mac);
             return v;
         }},
        {"device.max_frame_bytes", "bytes", "9018",
         "largest frame the device accepts on TX, without the virtio-net header",
         integer(64, 65535), INT_FIELD(dev.max_frame_bytes)},
        {"device.rx_fifo_frames", "frames", "256",
         "loopback frames the device holds while waiting for receive buffers, per queue pair "
         "(each pair has its own FIFO); when full, the pair's transmission waits "
         "(back-pressure, nothing is dropped; under RSS a frame steered to a full FIFO is)",
         integer(1, 65536), INT_FIELD(dev.rx_fifo_frames)},
        {"device.used_batch_max_buffers", "buffers", "16",
         "used buffers the device publishes at once at most (one head-flags write and one "
         "interrupt decision per batch); a batch is also published when the queue runs dry",
         integer(1, 32768), INT_FIELD(dev.used_batch_max)},
        {"device.mrg_rxbuf", "", "off",
         "on = offer VIRTIO_NET_F_MRG_RXBUF (bit 15): a received frame larger than one "
         "receive buffer spreads over several, num_buffers in the header counting them. "
         "off = frames larger than the buffer are dropped",
         choice({"off", "on"}),
         [](vs_config &c, const param_value &v) { c.dev.mrg_rxbuf = v.u == 1; },
         [](const vs_config &c) { return int_value(c.dev.mrg_rxbuf ? 1 : 0); }},
        {"device.rss", "", "off",
         "on = offer VIRTIO_NET_F_RSS (bit 60): receive-side scaling set by "
         "VIRTIO_NET_CTRL_MQ_RSS_CONFIG, frames steered to receive queues by the Toeplitz hash "
         "over IPv4/IPv6 and TCP/UDP (40-byte key, 128-entry indirection table, the six "
         "IPv4/IPv6 hash types; docs/rss.md). The reference driver does not use it",
         ON_OFF_FIELD(dev.rss)},
        {"device.event_suppression_devmem", "", "off",
         "viosim-specific, NON-STANDARD: on = offer VIOSIM_NET_F_DEVMEM_EVENT (feature bit "
         "100) and a BAR0 window, described by a vendor data capability, where a driver that "
         "accepts it writes its event suppression fields by MMIO; the device then reads them "
         "locally instead of by DMA (docs/event-suppression.md). off = a standard device",
         choice({"off", "on"}),
         [](vs_config &c, const param_value &v) { c.dev.devmem_event = v.u == 1; },
         [](const vs_config &c) { return int_value(c.dev.devmem_event ? 1 : 0); }},
        {"device.event_suppression_devmem_recheck", "", "off",
         "viosim-specific, NON-STANDARD, needs device.event_suppression_devmem=on: on = also "
         "offer VIOSIM_NET_F_DEVMEM_EVENT_RECHECK (feature bit 101): the device re-decides "
         "about a notification whenever a slot write asks for notifications, so the driver "
         "skips its flushing read (docs/event-suppression.md)",
         choice({"off", "on"}),
         [](vs_config &c, const param_value &v) { c.dev.devmem_event_recheck = v.u == 1; },
         [](const vs_config &c) { return int_value(c.dev.devmem_event_recheck ? 1 : 0); }},
        {"device.bar_width_bits", "bits", "64",
         "width of the function's memory BARs (PCI Local Bus 3.0 BAR type bits): 64 = the "
         "virtio structures in BAR0 and the MSI-X table in BAR2, both 64-bit; 32 = the same "
         "regions in 32-bit BARs 0 and 1, for hosts that assign 32-bit BARs only",
         choice({"64", "32"}),
         [](vs_config &c, const param_value &v) { c.dev.bars_32bit = v.u == 1; },
         [](const vs_config &c) { return int_value(c.dev.bars_32bit ? 1 : 0); }},
        {"device.msix", "", "on",
         "on = present an MSI-X capability (one vector for configuration changes plus one per "
         "queue); off = no MSI-X capability: the device interrupts by legacy INTx (INTA#, the "
         "ISR status read-to-clear; host.intx_latency_ns). `serve` accepts only on",
         choice({"on", "off"}),
         [](vs_config &c, const param_value &v) { c.dev.no_msix = v.u == 1; },
         [](const vs_config &c) { return int_value(c.dev.no_msix ? 1 : 0); }},
        {"device.queue_engines", "engines", "1",
         "processing engines per receive and transmit queue: buffers of one queue in flight "
         "at once, each with its own data DMA (one takes from the ring at a time; buffers "
         "complete in the order taken); the control queue has one",
         integer(1, VDEV_ENGINES_MAX), INT_FIELD(dev.queue_engines)},
        {"device.fetch_batch_descriptors", "descriptors", "1",
         "most descriptors the fetch unit reads in one DMA read (split ring: available ring "
         "entries, and with IN_ORDER descriptor table runs); two reads when the range passes "
         "the ring's end",
         integer(1, VQ_FETCH_BATCH_MAX), INT_FIELD(dev.fetch_batch)},
        {"device.fetch_source", "", "one",
         "where the fetch unit gets how many descriptors to read: one = one per read; hint = "
         "the count the VIRTIO_F_NOTIFICATION_DATA hint gives (at most the batch; one "
         "without a hint); read_ahead = packed ring: the whole batch, discarding (and "
         "counting as wasted) what is not available yet, but one (or the hint's count) "
         "where the device last found the ring's end; split ring: every entry known "
         "available (avail->idx as read, or the hint), at most the batch",
         choice({"one", "hint", "read_ahead"}),
         [](vs_config &c, const param_value &v) { c.dev.fetch_source = vq_fetch_source(v.u); },
         [](const vs_config &c) { return int_value(c.dev.fetch_source); }},
        {"device.rx_pasid", "", "0",
         "PASID (IOMMU address space) the RX queue's DMA is tagged with; the driver maps "
         "that queue's memory in the same address space",
         integer(0, 63), [](vs_config &c, const param_value &v) {
             c.device_tlm.queue_pasid[0] = c.drv.queue_pasid[0] = uint32_t(v.u);
         },
         [](const vs_config &c) { return int_value(c.device_tlm.queue_pasid[0]); }},
        {"device.tx_pasid", "", "0", "PASID the TX queue's DMA is tagged with",
         integer(0, 63), [](vs_config &c, const param_value &v) {
             c.device_tlm.queue_pasid[1] = c.drv.queue_pasid[1] = uint32_t(v.u);
         },
         [](const vs_config &c) { return int_value(c.device_tlm.queue_pasid[1]); }},
        {"device.ctrl_pasid", "", "0", "PASID the control queue's DMA is tagged with",
         integer(0, 63), [](vs_config &c, const param_value &v) {
             c.device_tlm.queue_pasid[2] = c.drv.queue_pasid[2] = uint32_t(v.u);
         },
         [](const vs_config &c) { return int_value(c.device_tlm.queue_pasid[2]); }},
        {"device.backend", "", "loopback",
         "where transmitted frames go: loopback = received back on the RX queue, "
         "sink = counted and dropped, responder = a peer (device.responder_mac, "
         "device.responder_ipv4) answers ARP and ICMP echo requests into the RX queue and "
         "drops the rest",
         choice({"loopback", "sink", "responder"}),
         [](vs_config &c, const param_value &v) {
             static const vdev_backend by_choice[] = {VDEV_BACKEND_LOOPBACK, VDEV_BACKEND_SINK,
                                                      VDEV_BACKEND_RESPONDER};
             c.dev.backend = by_choice[v.u];
             c.drv.expect_loopback = c.dev.backend == VDEV_BACKEND_LOOPBACK;
         },
         [](const vs_config &c) { return int_value(uint64_t(c.dev.backend)); }},
        {"device.responder_mac", "", "02:00:00:00:00:02",
         "MAC address of the peer that device.backend responder plays", mac_address(),
         [](vs_config &c, const param_value &v) {
             std::memcpy(c.dev.responder.mac, v.mac, sizeof v.mac);
         },
         [](const vs_config &c) {
             param_value v;
             std::memcpy(v.mac, c.dev.responder.mac, sizeof v.mac);
             return v;
         }},
        {"device.responder_ipv4", "", "10.0.0.2",
         "IPv4 address of the peer that device.backend responder plays", ipv4_address(),
         [](vs_config &c, const param_value &v) {
             std::memcpy(c.dev.responder.ipv4, v.ipv4, sizeof v.ipv4);
         },
         [](const vs_config &c) {
             param_value v;
             std::memcpy(v.ipv4, c.dev.responder.ipv4, sizeof v.ipv4);
             return v;
         }},

        // Reference driver
        {"driver.frames_count", "count", "10000", "frames the reference driver transmits",
         integer(1, 1000000000), INT_FIELD(drv.frames_count)},
        {"driver.frame_sizes_bytes", "bytes", "64,512,1500",
         "frame sizes without the virtio-net header, used in turn", size_list(60, 65535, REFDRV_FRAME_SIZES_MAX),
         [](vs_config &c, const param_value &v) {
             std::copy(v.list.begin(), v.list.end(), c.drv.frame_sizes_bytes);
             c.drv.frame_sizes_count = static_cast<uint32_t>(v.list.size());
         },
         [](const vs_config &c) {
             param_value v;
             uint32_t n = std::min<uint32_t>(c.drv.frame_sizes_count, REFDRV_FRAME_SIZES_MAX);
             v.list.assign(c.drv.frame_sizes_bytes, c.drv.frame_sizes_bytes + n);
             return v;
         }},
        {"driver.rx_buffer_bytes", "bytes", "2048",
         "size of each receive buffer the driver posts (virtio-net header + frame; with "
         "VIRTIO_NET_F_MRG_RXBUF negotiated a frame may take several)",
         integer(64, 1048576), INT_FIELD(drv.rx_buffer_bytes)},
        {"driver.queue_size_entries", "entries", "256",
         "queue size the driver programs (at most device.queue_size_max_entries)",
         integer(1, PVIRTQ_SIZE_MAX), INT_FIELD(drv.queue_size_entries)},
        {"driver.tx_rate_mpps", "Mpps", "0",
         "offered transmit rate in million frames per second; 0 = as fast as the rings allow",
         real_zero_or(1e-6, 1e6), REAL_FIELD(drv.tx_rate_mpps)},
        {"driver.arrival", "", "constant",
         "arrival process of the transmit load: constant = one frame every "
         "1/driver.tx_rate_mpps; poisson = exponential gaps with that mean; onoff = "
         "driver.tx_rate_mpps during on periods, nothing during off periods (poisson and "
         "onoff need driver.tx_rate_mpps > 0); closed = closed-loop request/response: "
         "driver.closed_loop_requests frames outstanding, the next one leaving when one comes "
         "back (needs device.backend loopback and driver.tx_rate_mpps 0)",
         choice({"constant", "poisson", "onoff", "closed"}),
         [](vs_config &c, const param_value &v) {
             static const traffic_arrival_kind kinds[] = {
                 TRAFFIC_ARRIVAL_CONSTANT, TRAFFIC_ARRIVAL_POISSON, TRAFFIC_ARRIVAL_ONOFF,
                 TRAFFIC_ARRIVAL_CLOSED};
             c.drv.arrival = kinds[v.u];
         },
         [](const vs_config &c) { return int_value(unsigned(c.drv.arrival)); }},
        {"driver.closed_loop_requests", "requests", "1",
         "driver.arrival closed: requests in flight (sent and not yet back); the load grows "
         "with it until the device or the rings saturate",
         integer(1, 65536), INT_FIELD(drv.closed_loop_requests)},
        {"driver.onoff_on_us", "us", "10",
         "driver.arrival onoff: length (mean, with exponential periods) of each on period",
         real(1e-6, 1e9), REAL_FIELD(drv.onoff_on_us)},
        {"driver.onoff_off_us", "us", "10",
         "driver.arrival onoff: length (mean, with exponential periods) of each off period",
         real(0, 1e9), REAL_FIELD(drv.onoff_off_us)},
        {"driver.onoff_periods", "", "fixed",
         "driver.arrival onoff: fixed = every period lasts exactly its length; exponential = "
         "exponentially distributed lengths with those means (seeded by sim.seed)",
         choice({"fixed", "exponential"}),
         [](vs_config &c, const param_value &v) {
             c.drv.onoff_periods = v.u == 0 ? TRAFFIC_PERIOD_FIXED : TRAFFIC_PERIOD_EXPONENTIAL;
         },
         [](const vs_config &c) { return int_value(unsigned(c.drv.onoff_periods)); }},
        {"driver.frame_size_mix", "", "cycle",
         "how frame sizes follow one another: cycle = driver.frame_sizes_bytes in order; "
         "random = a uniform pick from driver.frame_sizes_bytes per frame (seeded by "
         "sim.seed); imix = simple IMIX 7:4:1 of 60, 566 and 1514 bytes (64, 570, 1518 on the "
         "wire with FCS) in a fixed 12-frame pattern, ignoring driver.frame_sizes_bytes",
         choice({"cycle", "random", "imix"}),
         [](vs_config &c, const param_value &v) {
             static const refdrv_size_mix mixes[] = {REFDRV_SIZES_CYCLE, REFDRV_SIZES_RANDOM,
                                                     REFDRV_SIZES_IMIX};
             c.drv.frame_size_mix = mixes[v.u];
         },
         [](const vs_config &c) { return int_value(unsigned(c.drv.frame_size_mix)); }},
        {"driver.mode", "", "interrupt",
         "interrupt = sleep until an interrupt when idle; poll = keep polling, interrupts "
         "suppressed; napi = after an interrupt keep polling with interrupts off while the "
         "device has work outstanding, until driver.napi_budget_frames frames are done",
         choice({"interrupt", "poll", "napi"}),
         [](vs_config &c, const param_value &v) {
             static const refdrv_mode modes[] = {REFDRV_MODE_INTERRUPT, REFDRV_MODE_POLL,
                                                 REFDRV_MODE_NAPI};
             c.drv.mode = modes[v.u];
         },
         [](const vs_config &c) { return int_value(unsigned(c.drv.mode)); }},
        {"driver.flows_count", "count", "0",
         "0 = the reference driver sends plain test frames (an experimental EtherType); N = "
         "flow frames, the same test frame in IPv4/UDP, of N flows (flow f: source 10.1.x.y "
         "port 49152 + f mod 16384, to 10.2.0.1 port 9), frame k in flow k mod N, at least 60 "
         "bytes (docs/rss.md)",
         integer(0, 65536), INT_FIELD(drv.flows_count)},
        {"driver.queue_pairs_count", "count", "1",
         "queue pairs the reference driver wants: 1 = receiveq1/transmitq1 only; N > 1 = "
         "accept VIRTIO_NET_F_MQ (and CTRL_VQ) when offered, use min(N, max_virtqueue_pairs) "
         "pairs, enable them with VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET; frames go to transmitq "
         "(flow mod pairs) + 1 with driver.flows_count, round robin without "
         "(docs/workloads.md)",
         integer(1, REFDRV_PAIRS_MAX), INT_FIELD(drv.queue_pairs_count)},
        {"driver.mrg_rxbuf", "", "off",
         "on = accept VIRTIO_NET_F_MRG_RXBUF when the device offers it (device.mrg_rxbuf): a "
         "received frame may fill several driver.rx_buffer_bytes buffers, which the driver "
         "puts back together and checks",
         ON_OFF_FIELD(drv.mrg_rxbuf)},
        {"driver.napi_budget_frames", "frames", "64",
         "driver.mode napi: frames received (completed, without loopback) per interrupt "
         "before the driver asks for interrupts again",
         integer(1, 65536), INT_FIELD(drv.napi_budget_frames)},
        {"driver.tx_layout", "", "one_desc",
         "how the driver lays out a transmit buffer: one_desc = header and frame in one "
         "descriptor; chain = header and frame in two chained descriptors; indirect = an "
         "indirect table (falls back to chain without INDIRECT_DESC)",
         choice({"one_desc", "chain", "indirect"}),
         [](vs_config &c, const param_value &v) {
             static const refdrv_tx_layout layouts[] = {REFDRV_TX_ONE_DESC, REFDRV_TX_CHAIN,
                                                        REFDRV_TX_INDIRECT};
             c.drv.tx_layout = layouts[v.u];
         },
         [](const vs_config &c) { return int_value(unsigned(c.drv.tx_layout)); }},
        {"driver.iova_offset_bytes", "bytes", "1099511627776",
         "with ACCESS_PLATFORM negotiated the driver maps its memory at IOVA = physical "
         "address + this offset (a multiple of driver.iommu_page_bytes; IOVAs below 2^48)",
         integer(0, 1ull << 47), INT_FIELD(drv.iova_offset)},
        {"driver.iommu_page_bytes", "bytes", "4096",
         "page size of the driver's IOMMU mappings: 4096 or 2097152",
         integer_one_of({4096, 2097152}), INT_FIELD(drv.iommu_page_bytes)},
        {"driver.event_suppression_location", "", "host_ram",
         "where the driver keeps its event suppression fields: host_ram = the spec's Driver "
         "Area, read by the device with DMA; device_memory = accept the viosim extension "
         "VIOSIM_NET_F_DEVMEM_EVENT when the device offers it (device.event_suppression_devmem) "
         "and write the fields to device memory by MMIO, host_ram when it is not offered",
         choice({"host_ram", "device_memory"}),
         [](vs_config &c, const param_value &v) { c.drv.devmem_event = v.u == 1; },
         [](const vs_config &c) { return int_value(c.drv.devmem_event ? 1 : 0); }},
        {"driver.event_suppression_flush", "", "read",
         "with event suppression in device memory: read = after asking for notifications "
         "the driver reads from the device before re-checking its rings, so its posted "
         "writes have arrived (the extension's rule); none = skip that read -- UNSAFE, a "
         "used buffer published while the write is in flight raises no interrupt; only "
         "for studying that race",
         choice({"read", "none"}),
         [](vs_config &c, const param_value &v) { c.drv.devmem_event_no_flush = v.u == 1; },
         [](const vs_config &c) { return int_value(c.drv.devmem_event_no_flush ? 1 : 0); }},
        {"driver.decline_features", "", "", "features the driver refuses even if offered",
         feature_list(),
         [](vs_config &c, const param_value &v) { c.drv.decline = v.features; },
         [](const vs_config &c) {
             param_value v;
             v.features = c.drv.decline;
             return v;
         }},
        {"driver.coal_policy", "", "off",
         "notification coalescing: off = the driver negotiates neither CTRL_VQ nor the "
         "coalescing features; static = it sends RX_SET and TX_SET with driver.coal_* once "
         "after DRIVER_OK; adaptive = it retunes each queue with VQ_SET every "
         "driver.coal_adaptive_interval_us from the observed packet rate (docs/coalescing.md)",
         choice({"off", "static", "adaptive"}),
         [](vs_config &c, const param_value &v) {
             static const refdrv_coal_policy policies[] = {REFDRV_COAL_OFF, REFDRV_COAL_STATIC,
                                                           REFDRV_COAL_ADAPTIVE};
             c.drv.coal_policy = policies[v.u];
         },
         [](const vs_config &c) { return int_value(unsigned(c.drv.coal_policy)); }},
        {"driver.coal_rx_max_packets", "packets", "0",
         "driver.coal_policy static: max_packets of RX_SET (0: notify every packet)",
         integer(0, 0xffffffffull), INT_FIELD(drv.coal_rx.max_packets)},
        {"driver.coal_rx_max_us", "us", "0",
         "driver.coal_policy static: max_usecs of RX_SET (0: notify every packet)",
         integer(0, 0xffffffffull), INT_FIELD(drv.coal_rx.max_usecs)},
        {"driver.coal_tx_max_packets", "packets", "0",
         "driver.coal_policy static: max_packets of TX_SET (0: notify every packet)",
         integer(0, 0xffffffffull), INT_FIELD(drv.coal_tx.max_packets)},
        {"driver.coal_tx_max_us", "us", "0",
         "driver.coal_policy static: max_usecs of TX_SET (0: notify every packet)",
         integer(0, 0xffffffffull), INT_FIELD(drv.coal_tx.max_usecs)},
        {"driver.coal_adaptive_interval_us", "us", "50",
         "driver.coal_policy adaptive: how often the driver measures each queue's packet "
         "rate and moves its profile one step",
         integer(1, 1000000000), INT_FIELD(drv.coal_adaptive_interval_us)},
        {"driver.inject_violation", "", "",
         "fault injection: the driver breaks this driver-conformance rule once (a rule name of "
         "docs/conformance.md, or a ring rule's device reason); empty = a clean driver",
         injection_choice(),
         [](vs_config &c, const param_value &v) { c.drv.inject = refdrv_inject(v.u); },
         [](const vs_config &c) { return int_value(unsigned(c.drv.inject)); }},
        {"driver.idle_timeout_us", "us", "1000",
         "the driver gives up (result TIMEOUT) after this long without progress",
         integer(1, 1000000000),
         [](vs_config &c, const param_value &v) { c.drv.idle_timeout_ns = v.u * 1000; },
         [](const vs_config &c) { return int_value(c.drv.idle_timeout_ns / 1000); }},

        // Simulation
        {"sim.workload", "", "virtio_net",
         "what runs: virtio_net = the reference driver moves frames through the device; "
         "dma_bench = the device's DMA engine streams bench.* transfers to host memory "
         "(a pcie-bench style microbenchmark, no driver)",
         choice({"virtio_net", "dma_bench"}),
         [](vs_config &c, const param_value &v) { c.bench.enabled = v.u == 1; },
         [](const vs_config &c) { return int_value(c.bench.enabled ? 1 : 0); }},
        {"sim.device_profile", "", "hardware",
         "hardware = a PCIe device behind the link; software = the same device model run "
         "as a thread on another CPU (no PCIe: software.* costs instead), for "
         "hardware-versus-software comparisons",
         choice({"hardware", "software"}),
         [](vs_config &c, const param_value &v) { c.software.enabled = v.u == 1; },
         [](const vs_config &c) { return int_value(c.software.enabled ? 1 : 0); }},
        {"sim.seed", "", "1",
         "seed of every pseudo-random choice (payload pattern, arrivals, frame sizes, random IOTLB "
         "replacement, benchmark addresses); same config and seed give "
         "identical results",
         integer(0, UINT64_MAX),
         [](vs_config &c, const param_value &v) {
             c.seed = v.u;
             c.drv.seed = v.u;
         },
         [](const vs_config &c) { return int_value(c.seed); }},
        {"sim.quantum_ns", "ns", "1000",
         "TLM-2.0 global quantum: how far an initiator may run ahead of simulated time",
         real(1e-3, 1e9), REAL_FIELD(sim.quantum_ns)},
        {"sim.poll_sleep", "", "off",
         "on = a polling driver (driver.mode=poll, NAPI's polling) sleeps through the polls "
         "that find nothing, until the device writes guest memory or the driver's next "
         "deadline, charging them as it goes: about half the simulation time of a "
         "poll-mode run, the same statistics on every shipped study point with one engine "
         "per queue; needs device.queue_engines = 1 (docs/timing.md). off = one SystemC "
         "wait per poll",
         ON_OFF_FIELD(sim.poll_sleep)},
        {"sim.engine_wakeup", "", "all",
         "which waiting engines a queue's engines wake (with device.queue_engines > 1) and "
         "which blocked queues a step wakes (with device.queue_pairs_count > 1): all = "
         "every engine waiting to take from the ring or for its buffer's turn to finish, "
         "and every queue waiting for what a step signals (frames in a FIFO, room in it), "
         "each re-checking (exact: the results every study was made with); next = only the "
         "one whose turn it is, takes in the order asked, and only the queues the step gave "
         "work to. next costs fewer SystemC wake-ups but orders engines acting at the same "
         "picosecond otherwise, so its figures differ from all's on some multi-engine and "
         "multi-pair points (docs/speed.md; checked by scripts/validate, regime 10). The "
         "same results with one engine per queue and one queue pair",
         choice({"all", "next"}),
         [](vs_config &c, const param_value &v) { c.sim.engine_wakeup_next = v.u == 1; },
         [](const vs_config &c) { return int_value(c.sim.engine_wakeup_next ? 1 : 0); }},
        {"sim.timing", "", "exact",
         "when the CPU and the device's queue engines synchronise with simulated time: "
         "exact = after every timed action (each DMA, MMIO access, charge), the results "
         "every study was made with; decoupled = only when another process has activity "
         "before the caller's local time (or at it), else it runs ahead: fewer SystemC "
         "waits, and processes woken at the same picosecond are ordered otherwise, so some "
         "multi-engine figures differ from exact's (docs/timing.md, docs/speed.md; checked "
         "by scripts/validate, regime 11). Not with sim.poll_sleep = on",
         BOOL_CHOICE_FIELD("exact", "decoupled", sim.timing_decoupled)},
        {"sim.time_limit_ms", "ms", "1000",
         "simulated time after which an unfinished run is stopped (reported as not completed)",
         real(1e-9, 1e7),
         [](vs_config &c, const param_value &v) { c.sim.time_limit_us = v.d * US_PER_MS; },
         [](const vs_config &c) { return real_value(c.sim.time_limit_us / US_PER_MS); }},
    };
    return table;
}

#undef INT_FIELD
#undef REAL_FIELD

// Feature names accepted by *.withdraw_features / *.decline_features, in bit order.
struct feature_name {
    const char *name;
    unsigned bit;
};

const feature_name feature_names[] = {
    {"CSUM", VIRTIO_NET_F_CSUM_BIT},
    {"MTU", VIRTIO_NET_F_MTU_BIT},
    {"MAC", VIRTIO_NET_F_MAC_BIT},
    {"MRG_RXBUF", VIRTIO_NET_F_MRG_RXBUF_BIT},
    {"STATUS", VIRTIO_NET_F_STATUS_BIT},
    {"CTRL_VQ", VIRTIO_NET_F_CTRL_VQ_BIT},
    {"MQ", VIRTIO_NET_F_MQ_BIT},
    {"INDIRECT_DESC", VIRTIO_F_INDIRECT_DESC_BIT},
    {"EVENT_IDX", VIRTIO_F_EVENT_IDX_BIT},
    {"VERSION_1", VIRTIO_F_VERSION_1_BIT},
    {"ACCESS_PLATFORM", VIRTIO_F_ACCESS_PLATFORM_BIT},
    {"RING_PACKED", VIRTIO_F_RING_PACKED_BIT},
    {"IN_ORDER", VIRTIO_F_IN_ORDER_BIT},
    {"ORDER_PLATFORM", VIRTIO_F_ORDER_PLATFORM_BIT},
    {"SR_IOV", VIRTIO_F_SR_IOV_BIT},
    {"NOTIFICATION_DATA", VIRTIO_F_NOTIFICATION_DATA_BIT},
    {"NOTIF_CONFIG_DATA", VIRTIO_F_NOTIF_CONFIG_DATA_BIT},
    {"RING_RESET", VIRTIO_F_RING_RESET_BIT},
    {"VQ_NOTF_COAL", VIRTIO_NET_F_VQ_NOTF_COAL_BIT},
    {"NOTF_COAL", VIRTIO_NET_F_NOTF_COAL_BIT},
};

std::string known_feature_names()
{
    std::string s;
    for (const feature_name &f : feature_names)
        s += (s.empty() ? "" : ", ") + std::string(f.name);
    return s;
}

// ---- Text helpers ----

std::string trim(const std::string &s)
{
    size_t b = s.find_first_not_of(" \t");
    if (b == std::string::npos)
        return "";
    size_t e = s.find_last_not_of(" \t");
    return s.substr(b, e - b + 1);
}

// Input echoed in a message, in quotes and with its control characters escaped.
std::string quoted(const std::string &s)
{
    return "'" + config_escaped(s) + "'";
}

std::string format_u64(uint64_t u)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%" PRIu64, u);
    return buf;
}

// Shortest text that reads back as the same double; integral values without exponent.
std::string format_real(double v)
{
    char buf[64];
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
        return buf;
    }
    for (int precision = 1; precision <= 17; precision++) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (std::strtod(buf, nullptr) == v)
            break;
    }
    return buf;
}

enum class num_status { ok, not_a_number, out_of_range };

int digit_value(char ch, int base)
{
    int d;
    if (ch >= '0' && ch <= '9')
        d = ch - '0';
    else if (ch >= 'a' && ch <= 'f')
        d = ch - 'a' + 10;
    else if (ch >= 'A' && ch <= 'F')
        d = ch - 'A' + 10;
    else
        return -1;
    return d < base ? d : -1;
}

// A non-negative integer in decimal or 0x hex, nothing before or after it. A negative
// number or one beyond 2^64-1 is well-formed but out of range.
num_status parse_u64(const std::string &s, uint64_t &out)
{
    size_t i = 0;
    bool negative = false;
    if (i < s.size() && s[i] == '-') {
        negative = true;
        i++;
    }
    int base = 10;
    if (s.size() - i > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        base = 16;
        i += 2;
    }
    if (i == s.size())
        return num_status::not_a_number;
    uint64_t v = 0;
    bool overflow = false;
    for (; i < s.size(); i++) {
        int d = digit_value(s[i], base);
        if (d < 0)
            return num_status::not_a_number;
        if (v > (UINT64_MAX - static_cast<uint64_t>(d)) / static_cast<uint64_t>(base))
            overflow = true;
        else
            v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
    }
    if (overflow || (negative && v != 0))
        return num_status::out_of_range;
    out = v;
    return num_status::ok;
}

// A decimal number ([-]digits[.digits][e[+-]digits]); no hex floats, nan or inf.
num_status parse_real(const std::string &s, double &out)
{
    size_t i = 0, n = s.size(), digits = 0;
    auto is_digit = [&](size_t k) { return k < n && s[k] >= '0' && s[k] <= '9'; };
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    while (is_digit(i)) {
        i++;
        digits++;
    }
    if (i < n && s[i] == '.') {
        i++;
        while (is_digit(i)) {
            i++;
            digits++;
        }
    }
    if (digits == 0)
        return num_status::not_a_number;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        if (!is_digit(i))
            return num_status::not_a_number;
        while (is_digit(i))
            i++;
    }
    if (i != n)
        return num_status::not_a_number;
    double v = std::strtod(s.c_str(), nullptr);
    if (!std::isfinite(v))
        return num_status::out_of_range;
    out = v;
    return num_status::ok;
}

// ---- Allowed values, formatting, parsing and checking, by type ----

std::string format_int(const param_type &t, uint64_t u)
{
    if (t.hex_digits == 0)
        return format_u64(u);
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%0*" PRIx64, static_cast<int>(t.hex_digits), u);
    return buf;
}

std::string int_range_text(const param_type &t)
{
    return format_int(t, t.int_min) + ".." + format_int(t, t.int_max);
}

std::string allowed_text(const param_type &t)
{
    switch (t.kind) {
    case param_kind::integer:
        switch (t.rule) {
        case int_rule::range:
            return int_range_text(t);
        case int_rule::one_of: {
            std::string s = "one of ";
            for (size_t i = 0; i < t.one_of.size(); i++)
                s += (i ? ", " : "") + format_u64(t.one_of[i]);
            return s;
        }
        case int_rule::power_of_two:
            return "a power of two in " + int_range_text(t);
        case int_rule::zero_or_power_of_two:
            return "0 or a power of two in " + int_range_text(t);
        }
        break;
    case param_kind::real:
        return std::string(t.real_or_zero ? "0 or " : "") + format_real(t.real_min) + ".." +
               format_real(t.real_max);
    case param_kind::choice: {
        std::string s = "one of ";
        for (size_t i = 0; i < t.choices.size(); i++)
            s += (i ? ", " : "") + (*t.choices[i] ? std::string(t.choices[i]) : "\"\"");
        if (t.choice_any_case)
            s += " (any case)";
        return s;
    }
    case param_kind::mac:
        return "a unicast MAC address xx:xx:xx:xx:xx:xx";
    case param_kind::ipv4:
        return "an IPv4 address a.b.c.d, not 0.0.0.0, multicast or broadcast";
    case param_kind::size_list:
        return "1 to " + std::to_string(t.list_max) + " comma-separated sizes, each " +
               int_range_text(t);
    case param_kind::feature_list:
        return "comma-separated feature names (listed below), or empty";
    }
    return "";
}

// "<value> is out of range <range>" for integers (each element of a size list) and reals.
std::string out_of_range(const param_type &t, const std::string &value)
{
    if (t.kind == param_kind::real && t.real_or_zero)
        return value + " is out of range: must be " + allowed_text(t);
    if (t.kind == param_kind::real)
        return value + " is out of range " + allowed_text(t);
    return value + " is out of range " + int_range_text(t);
}

std::string format_value(const param_type &t, const param_value &v)
{
    switch (t.kind) {
    case param_kind::integer:
        return format_int(t, v.u);
    case param_kind::real:
        return format_real(v.d);
    case param_kind::choice:
        return v.u < t.choices.size() ? t.choices[v.u] : format_u64(v.u);
    case param_kind::mac: {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", v.mac[0], v.mac[1],
                      v.mac[2], v.mac[3], v.mac[4], v.mac[5]);
        return buf;
    }
    case param_kind::ipv4: {
        char buf[20];
        std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", v.ipv4[0], v.ipv4[1], v.ipv4[2], v.ipv4[3]);
        return buf;
    }
    case param_kind::size_list: {
        std::string s;
        for (size_t i = 0; i < v.list.size(); i++)
            s += (i ? "," : "") + format_u64(v.list[i]);
        return s;
    }
    case param_kind::feature_list: {
        std::string s;
        for (const feature_name &f : feature_names)
            if (vs_feature_has(&v.features, f.bit))
                s += (s.empty() ? "" : ",") + std::string(f.name);
        return s;
    }
    }
    return "";
}

// Checks one integer against the type's range and rule; "" if allowed.
std::string check_int(const param_type &t, uint64_t u)
{
    bool pow2 = u != 0 && (u & (u - 1)) == 0;
    bool in_range = u >= t.int_min && u <= t.int_max;
    switch (t.rule) {
    case int_rule::range:
        if (!in_range)
            return out_of_range(t, format_int(t, u));
        return "";
    case int_rule::one_of:
        if (std::find(t.one_of.begin(), t.one_of.end(), u) == t.one_of.end())
            return format_int(t, u) + " is not " + allowed_text(t);
        return "";
    case int_rule::power_of_two:
        if (!pow2 || !in_range)
            return format_int(t, u) + " is not " + allowed_text(t);
        return "";
    case int_rule::zero_or_power_of_two:
        if (u != 0 && (!pow2 || !in_range))
            return format_int(t, u) + " is not " + allowed_text(t);
        return "";
    }
    return "";
}

// Checks a value against its type; "" if allowed, else what is wrong and what is allowed.
std::string check_value(const param_type &t, const param_value &v)
{
    switch (t.kind) {
    case param_kind::integer:
        return check_int(t, v.u);
    case param_kind::real: {
        if (!std::isfinite(v.d))
            return format_real(v.d) + " is not a finite number";
        if (!(t.real_or_zero && v.d == 0) && (v.d < t.real_min || v.d > t.real_max))
            return out_of_range(t, format_real(v.d));
        return "";
    }
    case param_kind::choice:
        if (v.u >= t.choices.size())
            return format_u64(v.u) + " is not " + allowed_text(t);
        return "";
    case param_kind::mac: {
        static const uint8_t zero[6] = {};
        if (v.mac[0] & 1u)
            return format_value(t, v) + " is a group (multicast) address; the device needs " +
                   allowed_text(t);
        if (std::memcmp(v.mac, zero, sizeof zero) == 0)
            return format_value(t, v) + " is the all-zero address; the device needs " +
                   allowed_text(t);
        return "";
    }
    case param_kind::ipv4:
        // A peer's own address: not "this host" (0.0.0.0), not multicast (224/4), not
        // the limited broadcast.
        if ((v.ipv4[0] | v.ipv4[1] | v.ipv4[2] | v.ipv4[3]) == 0 || (v.ipv4[0] & 0xf0u) == 0xe0u ||
            (v.ipv4[0] & v.ipv4[1] & v.ipv4[2] & v.ipv4[3]) == 0xffu)
            return format_value(t, v) + " is not " + allowed_text(t);
        return "";
    case param_kind::size_list:
        if (v.list.empty() || v.list.size() > t.list_max)
            return std::to_string(v.list.size()) + " sizes given; allowed: " + allowed_text(t);
        for (uint32_t size : v.list) {
            std::string problem = check_int(t, size);
            if (!problem.empty())
                return "size " + problem;
        }
        return "";
    case param_kind::feature_list: {
        vs_features unknown = v.features;
        for (const feature_name &f : feature_names)
            vs_feature_clear(&unknown, f.bit);
        for (unsigned bit = 0; bit < 32u * VS_FEATURE_WORDS; bit++)
            if (vs_feature_has(&unknown, bit))
                return "feature bit " + std::to_string(bit) + " has no name; known: " +
                       known_feature_names();
        return "";
    }
    }
    return "";
}

std::string upper(std::string s)
{
    for (char &ch : s)
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return s;
}

// Feature name to bit: case-insensitive, with or without the VIRTIO_F_ / VIRTIO_NET_F_
// prefix. False if the name is unknown.
bool lookup_feature(const std::string &text, unsigned &bit)
{
    std::string name = upper(text);
    for (const char *prefix : {"VIRTIO_NET_F_", "VIRTIO_F_"}) {
        size_t len = std::strlen(prefix);
        if (name.compare(0, len, prefix) == 0) {
            name = name.substr(len);
            break;
        }
    }
    for (const feature_name &f : feature_names) {
        if (name == f.name) {
            bit = f.bit;
            return true;
        }
    }
    return false;
}

// Dotted decimal, four parts of 1 to 3 digits, each 0..255.
bool parse_ipv4(const std::string &s, uint8_t ip[4])
{
    size_t at = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = 0, digits = 0;
        while (at < s.size() && digits < 4 && s[at] >= '0' && s[at] <= '9') {
            v = v * 10 + unsigned(s[at++] - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255)
            return false;
        ip[i] = static_cast<uint8_t>(v);
        if (i < 3 && (at >= s.size() || s[at++] != '.'))
            return false;
    }
    return at == s.size();
}

bool parse_mac(const std::string &s, uint8_t mac[6])
{
    if (s.size() != 17)
        return false;
    for (int i = 0; i < 6; i++) {
        int hi = digit_value(s[3 * i], 16), lo = digit_value(s[3 * i + 1], 16);
        if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
            return false;
        mac[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    return true;
}

// Parses a value as written (--set, or a config file value as text); then checks it.
// Returns "" and fills v, or the problem (without the parameter's name).
std::string parse_value(const param_type &t, const std::string &raw, param_value &v)
{
    std::string s = trim(raw);
    switch (t.kind) {
    case param_kind::integer: {
        if (s.empty())
            return "empty value; allowed: " + allowed_text(t);
        switch (parse_u64(s, v.u)) {
        case num_status::ok:
            break;
        case num_status::not_a_number:
            return quoted(s) + " is not an integer; allowed: " + allowed_text(t);
        case num_status::out_of_range:
            return out_of_range(t, s);
        }
        break;
    }
    case param_kind::real:
        if (s.empty())
            return "empty value; allowed: " + allowed_text(t);
        switch (parse_real(s, v.d)) {
        case num_status::ok:
            break;
        case num_status::not_a_number:
            return quoted(s) + " is not a number; allowed: " + allowed_text(t);
        case num_status::out_of_range:
            return out_of_range(t, s);
        }
        break;
    case param_kind::choice: {
        auto it = std::find_if(t.choices.begin(), t.choices.end(),
                               [&](const char *name) {
                                   return t.choice_any_case ? strcasecmp(s.c_str(), name) == 0
                                                            : s == name;
                               });
        if (it == t.choices.end())
            return quoted(s) + " is not " + allowed_text(t);
        v.u = static_cast<uint64_t>(it - t.choices.begin());
        break;
    }
    case param_kind::mac:
        if (!parse_mac(s, v.mac))
            return quoted(s) + " is not " + allowed_text(t);
        break;
    case param_kind::ipv4:
        if (!parse_ipv4(s, v.ipv4))
            return quoted(s) + " is not " + allowed_text(t);
        break;
    case param_kind::size_list: {
        if (s.empty())
            return "empty list; allowed: " + allowed_text(t);
        std::vector<std::string> parts = config_split_list(s);
        if (parts.size() > t.list_max)
            return std::to_string(parts.size()) + " sizes given; allowed: " + allowed_text(t);
        v.list.clear();
        for (const std::string &part : parts) {
            uint64_t size = 0;
            if (part.empty())
                return "empty size in " + quoted(s) + "; allowed: " + allowed_text(t);
            num_status st = parse_u64(part, size);
            if (st == num_status::not_a_number)
                return "size " + quoted(part) + " is not an integer; allowed: " + allowed_text(t);
            if (st == num_status::out_of_range)
                return "size " + out_of_range(t, part);
            std::string problem = check_int(t, size);
            if (!problem.empty())
                return "size " + problem;
            v.list.push_back(static_cast<uint32_t>(size));
        }
        break;
    }
    case param_kind::feature_list:
        v.features = vs_features{};
        if (s.empty())
            break;
        for (const std::string &part : config_split_list(s)) {
            unsigned bit = 0;
            if (part.empty())
                return "empty feature name in " + quoted(s);
            if (!lookup_feature(part, bit))
                return "unknown feature " + quoted(part) + "; known: " + known_feature_names();
            vs_feature_set(&v.features, bit);
        }
        break;
    }
    return check_value(t, v);
}

json_t *value_json(const param_type &t, const param_value &v)
{
    switch (t.kind) {
    case param_kind::integer:
        if (t.hex_digits != 0 || v.u > static_cast<uint64_t>(INT64_MAX))
            return json_string(format_int(t, v.u).c_str());
        return json_integer(static_cast<json_int_t>(v.u));
    case param_kind::real:
        return std::isfinite(v.d) ? json_real(v.d) : json_null();
    case param_kind::choice:
    case param_kind::mac:
    case param_kind::ipv4:
        return json_string(format_value(t, v).c_str());
    case param_kind::size_list: {
        json_t *a = json_array();
        for (uint32_t size : v.list)
            json_array_append_new(a, json_integer(size));
        return a;
    }
    case param_kind::feature_list: {
        json_t *a = json_array();
        for (const feature_name &f : feature_names)
            if (vs_feature_has(&v.features, f.bit))
                json_array_append_new(a, json_string(f.name));
        return a;
    }
    }
    return json_null();
}

// ---- Lookup ----

const param_def *find_param(const std::string &name)
{
    for (const param_def &p : param_table())
        if (name == p.name)
            return &p;
    return nullptr;
}

size_t edit_distance(const std::string &a, const std::string &b)
{
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); j++)
        row[j] = j;
    for (size_t i = 1; i <= a.size(); i++) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); j++) {
            size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string suggest(const std::string &key)
{
    std::vector<std::string> names;
    for (const param_def &p : param_table())
        names.push_back(p.name);
    return config_closest_name(key, names);
}

// Whether key is a section of the table (a prefix of parameter names up to a dot).
bool is_section(const std::string &key)
{
    const std::string prefix = key + ".";
    for (const param_def &p : param_table())
        if (std::strncmp(p.name, prefix.c_str(), prefix.size()) == 0)
            return true;
    return false;
}

param_error unknown_param(const std::string &key, const std::string &where)
{
    std::string msg = where + "unknown parameter " + quoted(key) + " (see 'viosim params')";
    std::string guess = suggest(key);
    if (!guess.empty())
        msg += "; did you mean " + quoted(guess) + "?";
    return {key, msg};
}

param_error bad_value(const param_def &p, const std::string &problem, const std::string &where)
{
    return {p.name, where + "parameter " + quoted(p.name) + ": " + problem};
}

// Parses and applies one value; cfg is unchanged on error.
bool apply_text(vs_config &cfg, const param_def &p, const std::string &text,
                const std::string &where, param_error &err)
{
    param_value v;
    std::string problem = parse_value(p.type, text, v);
    if (!problem.empty()) {
        err = bad_value(p, problem, where);
        return false;
    }
    p.set(cfg, v);
    return true;
}

// ---- Config files ----

const char *json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

const char *expected_json(const param_type &t)
{
    switch (t.kind) {
    case param_kind::integer:
        return "an integer (JSON number or string)";
    case param_kind::real:
        return "a number (JSON number or string)";
    case param_kind::choice:
    case param_kind::mac:
    case param_kind::ipv4:
        return "a string";
    case param_kind::size_list:
        return "a list (string \"64,1500\" or array [64, 1500])";
    case param_kind::feature_list:
        return "a list (string \"EVENT_IDX,IN_ORDER\" or array of strings)";
    }
    return "?";
}

} // namespace

std::vector<std::string> config_split_list(const std::string &s)
{
    std::vector<std::string> parts;
    size_t start = 0;
    for (;;) {
        size_t comma = s.find(',', start);
        parts.push_back(trim(s.substr(start, comma - start)));
        if (comma == std::string::npos)
            return parts;
        start = comma + 1;
    }
}

// The text form of a scalar JSON value (string, or number written exactly); false if
// the value is not a string or number.
bool config_scalar_text(const json_t *j, std::string &text)
{
    if (json_is_string(j)) {
        text = json_string_value(j);
        return true;
    }
    if (json_is_integer(j)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        text = buf;
        return true;
    }
    if (json_is_real(j)) {
        text = format_real(json_real_value(j));
        return true;
    }
    return false;
}

namespace {

bool apply_json_value(vs_config &cfg, const param_def &p, const json_t *j, const std::string &where,
                      param_error &err)
{
    bool is_list = p.type.kind == param_kind::size_list || p.type.kind == param_kind::feature_list;
    std::string text;
    if (json_is_array(j) && is_list) {
        size_t i;
        const json_t *element;
        json_array_foreach(j, i, element) {
            std::string part;
            if (!config_scalar_text(element, part)) {
                err = bad_value(p, std::string("list element ") + std::to_string(i) + " is " +
                                       json_type_name(element) + "; expected " + expected_json(p.type),
                                where);
                return false;
            }
            text += (i ? "," : "") + part;
        }
    } else if (!config_scalar_text(j, text)) {
        err = bad_value(p, std::string("expected ") + expected_json(p.type) + ", got " +
                               json_type_name(j),
                        where);
        return false;
    }
    return apply_text(cfg, p, text, where, err);
}

// Applies every leaf of obj (keys prefixed by prefix) in document order.
bool apply_json_object(vs_config &cfg, const json_t *obj, const std::string &prefix,
                       const std::string &where, std::set<std::string> &seen, param_error &err)
{
    const char *k;
    json_t *value;
    // json_object_foreach wants a non-const object; iteration does not modify it.
    json_object_foreach(const_cast<json_t *>(obj), k, value) {
        std::string key = prefix + k;
        const param_def *p = find_param(key);
        if (!p && json_is_object(value)) {
            // A section: some parameter's name starts with it. Anything else is unknown,
            // even empty ({"foo": {}} sets nothing, but is not what the user meant).
            if (!is_section(key)) {
                // Named by the first parameter it holds ({"serve": {"queue_pairs": 2}},
                // a key an old file may carry, names serve.queue_pairs), or itself.
                std::string leaf = key;
                for (const json_t *o = value; json_is_object(o) && json_object_size(o) > 0;) {
                    void *it = json_object_iter(const_cast<json_t *>(o));
                    leaf += std::string(".") + json_object_iter_key(it);
                    o = json_object_iter_value(it);
                }
                err = unknown_param(leaf, where);
                return false;
            }
            if (!apply_json_object(cfg, value, key + ".", where, seen, err))
                return false;
            continue;
        }
        if (!p) {
            err = unknown_param(key, where);
            return false;
        }
        if (!seen.insert(key).second) {
            err = {key, where + "parameter " + quoted(key) + " is given twice"};
            return false;
        }
        if (!apply_json_value(cfg, *p, value, where, err))
            return false;
    }
    return true;
}

std::string md_escape(const std::string &s)
{
    std::string out;
    for (char ch : s) {
        if (ch == '|' || ch == '*')
            out += '\\';
        out += ch;
    }
    return out;
}

} // namespace

// ---- Public interface ----

std::string config_escaped(const std::string &s)
{
    std::string out;
    for (char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c != 0x7f) {
            out += ch;
        } else if (ch == '\n') {
            out += "\\n";
        } else if (ch == '\r') {
            out += "\\r";
        } else if (ch == '\t') {
            out += "\\t";
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return out;
}

vs_config config_defaults()
{
    vs_config cfg{};
    for (const param_def &p : param_table()) {
        param_error err;
        if (!apply_text(cfg, p, p.default_text, "", err)) {
            // The table contradicts itself: a programming error, caught by the tests.
            std::fprintf(stderr, "viosim: internal error: default of %s: %s\n", p.name,
                         err.message.c_str());
            std::abort();
        }
    }
    return cfg;
}

bool config_apply_set(vs_config &cfg, const std::string &assignment, param_error &err)
{
    size_t eq = assignment.find('=');
    if (eq == std::string::npos) {
        err = {"", "--set expects key=value, got " + quoted(assignment)};
        return false;
    }
    std::string key = trim(assignment.substr(0, eq));
    if (key.empty()) {
        err = {"", "--set expects key=value, got " + quoted(assignment) + " (no key)"};
        return false;
    }
    const param_def *p = find_param(key);
    if (!p) {
        err = unknown_param(key, "");
        return false;
    }
    return apply_text(cfg, *p, assignment.substr(eq + 1), "", err);
}

namespace {
// A parsed config (a file's or a string's): an object of flat dotted keys or sections,
// applied whole or not at all; `where` starts its error messages.
bool apply_json_root(vs_config &cfg, const json_t *root, const std::string &where, param_error &err);
} // namespace

bool config_apply_file(vs_config &cfg, const std::string &path, param_error &err)
{
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) {
        err = {"", "cannot open config file " + quoted(path) + ": " + std::strerror(errno)};
        return false;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        std::fclose(f);
        err = {"", "cannot read config file " + quoted(path) + ": it is a directory"};
        return false;
    }
    json_error_t jerr;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    std::fclose(f);
    if (!root) {
        err = {"", config_escaped(path) + ":" + std::to_string(jerr.line) + ":" +
                       std::to_string(jerr.column) + ": JSON syntax error: " +
                       config_escaped(jerr.text)};
        return false;
    }
    const bool ok = apply_json_root(cfg, root, config_escaped(path) + ": ", err);
    json_decref(root);
    return ok;
}

bool config_apply_json(vs_config &cfg, const std::string &text, param_error &err)
{
    json_error_t jerr;
    json_t *root = json_loads(text.c_str(), JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err = {"", "JSON:" + std::to_string(jerr.line) + ":" + std::to_string(jerr.column) +
                       ": JSON syntax error: " + config_escaped(jerr.text)};
        return false;
    }
    const bool ok = apply_json_root(cfg, root, "", err);
    json_decref(root);
    return ok;
}

namespace {

bool apply_json_root(vs_config &cfg, const json_t *root, const std::string &where, param_error &err)
{
    bool ok;
    if (!json_is_object(root)) {
        err = {"", where + "expected a JSON object ({\"pcie\": {\"gen\": 4}} or {\"pcie.gen\": 4}), got " +
                       json_type_name(root)};
        ok = false;
    } else {
        vs_config updated = cfg;
        std::set<std::string> seen;
        ok = apply_json_object(updated, root, "", where, seen, err);
        if (ok)
            cfg = updated;
    }
    return ok;
}

} // namespace

bool config_validate(const vs_config &cfg, param_error &err, bool qemu_proxy)
{
    // Every value within its own limits: a vs_config may also be built in code.
    for (const param_def &p : param_table()) {
        std::string problem = check_value(p.type, p.get(cfg));
        if (!problem.empty()) {
            err = bad_value(p, problem, "");
            return false;
        }
    }

    const double fixed = pcie_link_timing_of(cfg.pcie, cfg.memory).read_fixed_ns;
    if (fixed < 0) {
        err = {"pcie.read_latency_ns",
               "parameter 'pcie.read_latency_ns': " + format_real(cfg.pcie.read_latency_ns) +
                   " ns is shorter than a 64-byte read's serialisation plus host memory latency (" +
                   format_real(cfg.pcie.read_latency_ns - fixed) + " ns)"};
        return false;
    }
    if (cfg.dev.devmem_event_recheck && !cfg.dev.devmem_event) {
        err = {"device.event_suppression_devmem_recheck",
               "parameter 'device.event_suppression_devmem_recheck': on needs "
               "device.event_suppression_devmem=on"};
        return false;
    }
    if (cfg.bench.enabled && cfg.bench.window_bytes > (cfg.memory.size_mib << 20)) {
        err = {"bench.window_bytes", "parameter 'bench.window_bytes': " +
                                         std::to_string(cfg.bench.window_bytes) +
                                         " exceeds host memory (host.memory_mib)"};
        return false;
    }
    if (cfg.drv.iommu_page_bytes && cfg.drv.iova_offset % cfg.drv.iommu_page_bytes != 0) {
        err = {"driver.iova_offset_bytes",
               "parameter 'driver.iova_offset_bytes': must be a multiple of driver.iommu_page_bytes (" +
                   std::to_string(cfg.drv.iommu_page_bytes) + ")"};
        return false;
    }
    if (cfg.iommu.iotlb_entries &&
        (cfg.iommu.iotlb_entries % cfg.iommu.iotlb_ways != 0 ||
         ((cfg.iommu.iotlb_entries / cfg.iommu.iotlb_ways) &
          (cfg.iommu.iotlb_entries / cfg.iommu.iotlb_ways - 1)) != 0)) {
        err = {"iommu.iotlb_ways", "parameter 'iommu.iotlb_ways': iommu.iotlb_entries / iommu.iotlb_ways "
                                   "must be a whole power of two"};
        return false;
    }
    if (cfg.iommu.atc_entries % cfg.iommu.atc_ways != 0 ||
        ((cfg.iommu.atc_entries / cfg.iommu.atc_ways) &
         (cfg.iommu.atc_entries / cfg.iommu.atc_ways - 1)) != 0) {
        err = {"iommu.atc_ways", "parameter 'iommu.atc_ways': iommu.atc_entries / iommu.atc_ways "
                                 "must be a whole power of two"};
        return false;
    }
    if (qemu_proxy && !cfg.dev.no_msix) {
        err = {"device.msix", "parameter 'device.msix': on: serve --qemu-proxy needs off (QEMU's "
                              "x-pci-proxy-dev delivers no MSI or MSI-X, only INTx)"};
        return false;
    }
    if (qemu_proxy && !cfg.dev.bars_32bit) {
        err = {"device.bar_width_bits",
               "parameter 'device.bar_width_bits': 64: serve --qemu-proxy needs 32 (QEMU's "
               "x-pci-proxy-dev sizes every BAR as a 32-bit memory BAR)"};
        return false;
    }
    if (qemu_proxy && !vs_feature_has(&cfg.dev.withdraw, VIRTIO_F_ACCESS_PLATFORM_BIT)) {
        err = {"device.withdraw_features",
               "parameter 'device.withdraw_features': serve --qemu-proxy needs ACCESS_PLATFORM "
               "withdrawn (the guest's DMA addresses are guest-physical: it programs no IOMMU "
               "of the platform)"};
        return false;
    }
    if (cfg.dev.no_msix && cfg.software.enabled) {
        err = {"device.msix", "parameter 'device.msix': off (legacy INTx) needs "
                              "sim.device_profile=hardware: a software device has no INTx pin"};
        return false;
    }
    if (cfg.dev.queue_engines > 1 && cfg.dma.channels_count > 0) {
        err = {"device.queue_engines",
               "parameter 'device.queue_engines': more than one engine per queue needs "
               "dma.channels_count=0 (the channel arbiter serves one engine per queue)"};
        return false;
    }
    if (cfg.iommu.ats && cfg.iommu.in_device) {
        err = {"iommu.walk_location", "parameter 'iommu.walk_location': device cannot be combined "
                                      "with iommu.ats=on (a device that walks its own page tables "
                                      "needs no translation service)"};
        return false;
    }
    // One operation's cycles at its clock: at most MAX_OPERATION_PS (see the time ranges).
    const struct {
        const char *key;
        uint64_t cycles;
        double clock_mhz;
        const char *clock_key;
    } operations[] = {
        {"host.tx_packet_cycles", cfg.cpu.tx_packet_cycles, cfg.cpu.clock_mhz, "host.cpu_clock_mhz"},
        {"host.rx_packet_cycles", cfg.cpu.rx_packet_cycles, cfg.cpu.clock_mhz, "host.cpu_clock_mhz"},
        {"host.tx_reap_cycles", cfg.cpu.tx_reap_cycles, cfg.cpu.clock_mhz, "host.cpu_clock_mhz"},
        {"host.rx_refill_cycles", cfg.cpu.rx_refill_cycles, cfg.cpu.clock_mhz, "host.cpu_clock_mhz"},
        {"host.poll_cycles", cfg.cpu.poll_cycles, cfg.cpu.clock_mhz, "host.cpu_clock_mhz"},
        {"host.irq_entry_cycles", cfg.cpu.irq_entry_cycles, cfg.cpu.clock_mhz, "host.cpu_clock_mhz"},
        {"host.device_barrier_cycles", cfg.cpu.device_barrier_cycles, cfg.cpu.clock_mhz, "host.cpu_clock_mhz"},
        {"host.smp_barrier_cycles", cfg.cpu.smp_barrier_cycles, cfg.cpu.clock_mhz, "host.cpu_clock_mhz"},
        {"host.ctrl_command_cycles", cfg.cpu.ctrl_command_cycles, cfg.cpu.clock_mhz, "host.cpu_clock_mhz"},
        {"device.desc_cycles", cfg.device_tlm.desc_cycles, cfg.device_tlm.clock_mhz, "device.clock_mhz"},
        {"device.packet_cycles", cfg.device_tlm.packet_cycles, cfg.device_tlm.clock_mhz, "device.clock_mhz"},
    };
    for (const auto &op : operations)
        if (double(op.cycles) * 1e6 / op.clock_mhz > MAX_OPERATION_PS) {
            err = {op.key, std::string("parameter '") + op.key + "': " + format_u64(op.cycles) +
                               " cycles at " + op.clock_key + "=" + format_real(op.clock_mhz) +
                               " take more than 1 s (at most " +
                               format_real(std::floor(op.clock_mhz * MAX_OPERATION_PS / 1e6)) +
                               " cycles)"};
            return false;
        }
    // Split virtqueues: "Queue Size value is always a power of 2" ("Split Virtqueues");
    // a packed one's "does not have to be a power of 2" ("Packed Virtqueues / Structure
    // Size and Alignment"). The driver would round a split size down, and stats.json
    // would record a size the run did not use.
    const bool packed = !vs_feature_has(&cfg.drv.decline, VIRTIO_F_RING_PACKED_BIT) &&
                        !vs_feature_has(&cfg.dev.withdraw, VIRTIO_F_RING_PACKED_BIT);
    const uint32_t qsize = cfg.drv.queue_size_entries;
    if (!packed && (qsize & (qsize - 1)) != 0) {
        err = {"driver.queue_size_entries",
               "parameter 'driver.queue_size_entries': " + std::to_string(qsize) +
                   " is not a power of two, which a split ring needs (RING_PACKED is declined "
                   "or withdrawn)"};
        return false;
    }
    if (cfg.drv.queue_size_entries > cfg.dev.queue_size_max) {
        err = {"driver.queue_size_entries",
               "parameter 'driver.queue_size_entries': " + std::to_string(cfg.drv.queue_size_entries) +
                   " exceeds device.queue_size_max_entries (" +
                   std::to_string(cfg.dev.queue_size_max) + ")"};
        return false;
    }
    // The static coalescing values mean nothing under another policy: say so rather than
    // run without them.
    const std::pair<const char *, uint32_t> coal_static[] = {
        {"driver.coal_rx_max_packets", cfg.drv.coal_rx.max_packets},
        {"driver.coal_rx_max_us", cfg.drv.coal_rx.max_usecs},
        {"driver.coal_tx_max_packets", cfg.drv.coal_tx.max_packets},
        {"driver.coal_tx_max_us", cfg.drv.coal_tx.max_usecs}};
    for (const auto &k : coal_static)
        if (k.second != 0 && cfg.drv.coal_policy != REFDRV_COAL_STATIC) {
            err = {k.first, std::string("parameter '") + k.first +
                                "': needs driver.coal_policy=static (the adaptive policy picks "
                                "its own values; off sends none)"};
            return false;
        }
    // An injection the configuration gives no chance to happen would pass unnoticed.
    {
        const bool coal = cfg.drv.coal_policy != REFDRV_COAL_OFF;
        const char *needs = nullptr;
        switch (cfg.drv.inject) {
        case REFDRV_INJECT_QUEUE_SIZE_ZERO:
            needs = packed ? nullptr : "packed rings (RING_PACKED neither declined nor withdrawn)";
            break;
        case REFDRV_INJECT_QUEUE_SIZE_NOT_POWER_OF_2:
            needs = packed ? "split rings (driver.decline_features=RING_PACKED)" : nullptr;
            break;
        case REFDRV_INJECT_NOTIFY_QUEUE_NOT_ENABLED:
            needs = coal ? "driver.coal_policy=off (a control queue the driver leaves disabled)"
                         : nullptr;
            break;
        case REFDRV_INJECT_TX_HAS_WRITABLE: // the ring modules refuse it in a chain or table
        case REFDRV_INJECT_TX_FRAME_TOO_SHORT: // a chain's frame part makes it long enough
            needs = cfg.drv.tx_layout == REFDRV_TX_ONE_DESC ? nullptr : "driver.tx_layout=one_desc";
            break;
        case REFDRV_INJECT_DESC_ZERO_LENGTH: // patched in the ring, not an indirect table
            needs = cfg.drv.tx_layout == REFDRV_TX_INDIRECT ? "driver.tx_layout one_desc or chain"
                                                             : nullptr;
            break;
        case REFDRV_INJECT_CTRL_COAL_NOT_NEGOTIATED:
        case REFDRV_INJECT_CTRL_COAL_VQ_INDEX:
            needs = coal ? nullptr : "driver.coal_policy static or adaptive (a control queue)";
            break;
        case REFDRV_INJECT_CTRL_MQ_PAIRS: // sent where VQ_PAIRS_SET is, only with several pairs
        case REFDRV_INJECT_TX_QUEUE_NOT_IN_USE: // a frame on transmitqP before VQ_PAIRS_SET(P)
            needs = cfg.drv.queue_pairs_count > 1 && cfg.dev.queue_pairs > 1
                        ? nullptr
                        : "driver.queue_pairs_count and device.queue_pairs_count above 1";
            break;
        case REFDRV_INJECT_CTRL_MQ_PAIRS_NOT_ENABLED: // a pair the device has and the driver leaves out
            needs = cfg.drv.queue_pairs_count > 1 && cfg.dev.queue_pairs > cfg.drv.queue_pairs_count
                        ? nullptr
                        : "driver.queue_pairs_count above 1 and device.queue_pairs_count above it";
            break;
        default:
            break;
        }
        if (needs) {
            err = {"driver.inject_violation",
                   std::string("parameter 'driver.inject_violation': ") +
                       refdrv_inject_name(cfg.drv.inject) + " needs " + needs};
            return false;
        }
    }
    if (cfg.drv.arrival == TRAFFIC_ARRIVAL_CLOSED) {
        if (cfg.dev.backend != VDEV_BACKEND_LOOPBACK) {
            err = {"driver.arrival", "parameter 'driver.arrival': closed needs device.backend "
                                     "loopback (a request's response is its frame coming back)"};
            return false;
        }
        if (cfg.drv.tx_rate_mpps > 0) {
            err = {"driver.tx_rate_mpps", "parameter 'driver.tx_rate_mpps': must be 0 with "
                                          "driver.arrival closed (the responses set the pace)"};
            return false;
        }
    } else if (cfg.drv.arrival != TRAFFIC_ARRIVAL_CONSTANT && !(cfg.drv.tx_rate_mpps > 0)) {
        err = {"driver.arrival", std::string("parameter 'driver.arrival': ") +
                                     (cfg.drv.arrival == TRAFFIC_ARRIVAL_POISSON ? "poisson" : "onoff") +
                                     " needs driver.tx_rate_mpps > 0"};
        return false;
    }
    static const uint32_t imix_sizes[] = {TRAFFIC_IMIX_SMALL_BYTES, TRAFFIC_IMIX_MEDIUM_BYTES,
                                          TRAFFIC_IMIX_LARGE_BYTES};
    const bool imix = cfg.drv.frame_size_mix == REFDRV_SIZES_IMIX;
    const char *size_key = imix ? "driver.frame_size_mix" : "driver.frame_sizes_bytes";
    const uint32_t *sizes = imix ? imix_sizes : cfg.drv.frame_sizes_bytes;
    const uint32_t nsizes = imix ? 3u : cfg.drv.frame_sizes_count;
    for (uint32_t i = 0; i < nsizes; i++) {
        uint32_t size = sizes[i];
        if (size > cfg.dev.max_frame_bytes) {
            err = {size_key,
                   "parameter '" + std::string(size_key) + "': frame size " + std::to_string(size) +
                       " exceeds device.max_frame_bytes (" +
                       std::to_string(cfg.dev.max_frame_bytes) + ")"};
            return false;
        }
        // Without mergeable buffers a received frame and its header fill one buffer.
        if (cfg.dev.backend == VDEV_BACKEND_LOOPBACK && !(cfg.drv.mrg_rxbuf && cfg.dev.mrg_rxbuf) &&
            size + NET_HDR_BYTES > cfg.drv.rx_buffer_bytes) {
            err = {size_key,
                   "parameter '" + std::string(size_key) + "': frame size " + std::to_string(size) +
                       " plus the " + std::to_string(NET_HDR_BYTES) +
                       "-byte virtio-net header exceeds driver.rx_buffer_bytes (" +
                       std::to_string(cfg.drv.rx_buffer_bytes) +
                       "); device.backend loopback receives every frame into one buffer"};
            return false;
        }
    }
    if (cfg.sim.poll_sleep && cfg.dev.queue_engines > 1) {
        // Checked identical to one wait per poll with one engine per queue only; several
        // engines acting at the same picosecond are ordered by SystemC's event queue,
        // which the sleeping CPU no longer fills the same way (docs/timing.md).
        err = {"sim.poll_sleep", "parameter 'sim.poll_sleep': on needs device.queue_engines = 1 "
                                 "(got " + std::to_string(cfg.dev.queue_engines) + ")"};
        return false;
    }
    if (cfg.sim.timing_decoupled && cfg.sim.poll_sleep) {
        // The sleeping CPU is woken by a write at the writer's sc_time_stamp(), which a
        // queue engine running ahead has left behind (docs/timing.md).
        err = {"sim.timing", "parameter 'sim.timing': decoupled cannot be combined with "
                             "sim.poll_sleep = on"};
        return false;
    }
    if (cfg.sim.quantum_ns > cfg.sim.time_limit_us * NS_PER_US) {
        err = {"sim.quantum_ns", "parameter 'sim.quantum_ns': " + format_real(cfg.sim.quantum_ns) +
                                     " ns exceeds sim.time_limit_ms (" +
                                     format_real(cfg.sim.time_limit_us / US_PER_MS) + " ms)"};
        return false;
    }
    return true;
}

std::vector<param_info> config_params()
{
    std::vector<param_info> out;
    for (const param_def &p : param_table())
        out.push_back({p.name, p.unit, p.default_text, p.meaning, allowed_text(p.type)});
    return out;
}

std::vector<std::pair<std::string, std::string>> config_resolved(const vs_config &cfg)
{
    std::vector<std::pair<std::string, std::string>> out;
    for (const param_def &p : param_table())
        out.emplace_back(p.name, format_value(p.type, p.get(cfg)));
    return out;
}

json_t *config_resolved_json(const vs_config &cfg, bool nested)
{
    json_t *root = json_object();
    for (const param_def &p : param_table()) {
        json_t *value = value_json(p.type, p.get(cfg));
        if (!nested) {
            json_object_set_new(root, p.name, value);
            continue;
        }
        std::string name = p.name;
        size_t dot = name.find('.');
        std::string section = name.substr(0, dot);
        json_t *obj = json_object_get(root, section.c_str());
        if (!obj) {
            obj = json_object();
            json_object_set_new(root, section.c_str(), obj);
        }
        json_object_set_new(obj, name.substr(dot + 1).c_str(), value);
    }
    return root;
}

std::vector<std::pair<std::string, unsigned>> config_feature_names()
{
    std::vector<std::pair<std::string, unsigned>> out;
    for (const feature_name &f : feature_names)
        out.emplace_back(f.name, f.bit);
    return out;
}

json_t *config_features_json(const vs_features &f)
{
    json_t *o = json_object();
    for (const feature_name &n : feature_names)
        if (vs_feature_has(&f, n.bit))
            json_object_set_new(o, n.name, json_integer(n.bit));
    return o;
}

std::string config_params_markdown()
{
    static const struct {
        const char *prefix;
        const char *title;
    } sections[] = {
        {"pcie.", "PCIe link"},
        {"dma.", "Device DMA engine"},
        {"iommu.", "IOMMU (root complex)"},
        {"software.", "Software-device profile (sim.device_profile = software)"},
        {"bench.", "DMA microbenchmark (sim.workload = dma_bench)"},
        {"host.", "Host: memory and CPU cost model"},
        {"device.", "Device"},
        {"driver.", "Reference driver and traffic"},
        {"sim.", "Simulation"},
    };
    std::string md =
        "# viosim parameters\n"
        "\n"
        "<!-- Generated from the parameter table in platform/config.cpp; do not edit by hand.\n"
        "     Regenerate with: build/viosim params --markdown > docs/parameters.md -->\n"
        "\n"
        "Every parameter of `viosim run` and `viosim serve`: its name (which carries its unit),\n"
        "unit, default, allowed values and meaning. `viosim params` prints the same list.\n"
        "\n"
        "- Set parameters in a JSON config file (`viosim run CONFIG`), nested\n"
        "  (`{\"pcie\": {\"gen\": 4}}`) or with flat dotted keys (`{\"pcie.gen\": 4}`), and one at a\n"
        "  time with `--set key=value`. Later wins: defaults, then the config file, then each\n"
        "  `--set` in order, then `--seed N` (same as `--set sim.seed=N`).\n"
        "- Numbers may be JSON numbers or strings; integers accept decimal or `0x` hex (give\n"
        "  integers above 2^63-1 as strings). Lists are comma-separated strings\n"
        "  (`\"64,512,1500\"`) or JSON arrays.\n"
        "- An unknown key (a section no parameter belongs to, even an empty one, is one), a\n"
        "  bad value or an impossible combination stops `viosim run` before anything runs,\n"
        "  with exit status 2 and a one-line message naming the key (control characters in\n"
        "  echoed input are escaped: `\\n`, `\\xHH`).\n"
        "- Times are simulated in whole picoseconds (a 64-bit count): each time is rounded to\n"
        "  1 ps. The range of every period or rate keeps the time it gives at 1 ps or more\n"
        "  (a clock's cycle 10 ps to 1 us; `sim.quantum_ns` >= 0.001; `sim.time_limit_ms`\n"
        "  >= 1e-9; `driver.onoff_on_us` >= 1e-6; `driver.tx_rate_mpps` 0 or >= 1e-6, a frame\n"
        "  at most every second; `software.copy_bytes_per_ns` 0.001..1000, a byte in 1 ps to\n"
        "  1 us), and no single time near the 2^63 ps the counter holds (latencies up to\n"
        "  1e9 ns, the time limit up to 1e4 s).\n"
        "- `configs/default.json` holds every parameter at its default\n"
        "  (`viosim params --json`); `stats.json` records the resolved configuration of a run.\n"
        "\n"
        "Checks across parameters: `driver.queue_size_entries` <= `device.queue_size_max_entries`;\n"
        "every frame size <= `device.max_frame_bytes`; with `device.backend` loopback every\n"
        "frame size + 12 (the virtio-net header) <= `driver.rx_buffer_bytes` (with\n"
        "`driver.frame_size_mix` imix: 60, 566 and 1514); `driver.arrival` poisson or onoff needs\n"
        "`driver.tx_rate_mpps` > 0; a non-zero `driver.coal_rx_*` / `driver.coal_tx_*` needs\n"
        "`driver.coal_policy` static;\n"
        "`sim.quantum_ns` <= `sim.time_limit_ms`; each `host.*_cycles` at `host.cpu_clock_mhz`\n"
        "and each `device.*_cycles` at `device.clock_mhz` take at most 1 s; with split rings\n"
        "(`RING_PACKED` in `driver.decline_features` or `device.withdraw_features`)\n"
        "`driver.queue_size_entries` is a power of two (\"Split Virtqueues\": \"Queue Size value\n"
        "is always a power of 2\"; packed rings take any size, \"Packed Virtqueues / Structure\n"
        "Size and Alignment\").\n";
    for (const auto &section : sections) {
        md += "\n## " + std::string(section.title) + "\n\n";
        md += "| Name | Unit | Default | Allowed | Meaning |\n";
        md += "| --- | --- | --- | --- | --- |\n";
        for (const param_def &p : param_table()) {
            if (std::strncmp(p.name, section.prefix, std::strlen(section.prefix)) != 0)
                continue;
            std::string def = *p.default_text ? std::string("`") + p.default_text + "`" : "`\"\"`";
            md += "| `" + std::string(p.name) + "` | " + (*p.unit ? p.unit : "-") + " | " + def +
                  " | " + md_escape(allowed_text(p.type)) + " | " + md_escape(p.meaning) + " |\n";
        }
    }
    md += "\n## Feature names\n\n"
          "Accepted by `device.withdraw_features` and `driver.decline_features`, case-insensitive,\n"
          "with or without the `VIRTIO_F_` / `VIRTIO_NET_F_` prefix.\n\n"
          "| Name | Bit |\n| --- | --- |\n";
    for (const feature_name &f : feature_names)
        md += "| `" + std::string(f.name) + "` | " + std::to_string(f.bit) + " |\n";
    return md;
}

std::string config_closest_name(const std::string &name, const std::vector<std::string> &names)
{
    for (const std::string &candidate : names)
        if (candidate.compare(0, name.size() + 1, name + "_") == 0)
            return candidate;
    std::string best;
    size_t best_distance = 3;
    for (const std::string &candidate : names) {
        size_t d = edit_distance(name, candidate);
        if (d < best_distance) {
            best_distance = d;
            best = candidate;
        }
    }
    return best;
}

} // namespace viosim
