// test_external_host.cpp -- the timed device platform driven from outside SystemC
// (platform/external_host.h), as `viosim serve` front ends will drive it.
//
// The caller owns guest memory, performs configuration and BAR accesses and advances
// simulated time itself. The driver here is the reference driver (workloads/refdrv),
// run over a vs_host_ops adapter whose register accesses go through external_host and
// whose waits for interrupts advance the simulation: bring-up per "Device
// Initialization" (virtio 1.x 3.1.1), one queue pair, frames in loopback.
//
// Links SystemC: one platform per test (Criterion runs each test in a process of its
// own; SystemC elaborates once per process); the determinism test forks one child per run.
#include <criterion/criterion.h>
#include <jansson.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>

#include "address_map.h"
#include "config.h"
#include "device_platform.h"
#include "external_host.h"

extern "C" {
#include "pci_cfg.h"
#include "refdrv.h"
#include "virtio_wire.h"
}

using sc_core::SC_NS;
using sc_core::SC_US;
using sc_core::sc_time;

#include "common/sc_criterion_main.h"

using namespace viosim; // the platform's modules and configuration (platform/)

namespace {

constexpr uint64_t MEM_BYTES = 16u << 20;

vs_config test_config(unsigned frames)
{
    vs_config cfg = config_defaults();
    cfg.drv.frames_count = frames;
    cfg.memory.size_mib = MEM_BYTES >> 20;
    return cfg;
}

// Guest memory the test owns, zeroed (the driver relies on it), at amap::memory_base.
struct guest_ram {
    std::unique_ptr<uint8_t, void (*)(void *)> bytes{static_cast<uint8_t *>(std::calloc(MEM_BYTES, 1)),
                                                     std::free};
    std::vector<memory_region> regions() { return {{amap::memory_base, MEM_BYTES, bytes.get(), false}}; }
    // The same bytes as three regions, listed out of address order (as a guest's memory
    // map may be): 64 KiB, then 1 MiB, then the rest.
    // The last two marked shared (tear-free loads and stores).
    std::vector<memory_region> split_regions()
    {
        uint8_t *b = bytes.get();
        return {{amap::memory_base + 0x100000, MEM_BYTES - 0x100000, b + 0x100000, false},
                {amap::memory_base, 0x10000, b, true},
                {amap::memory_base + 0x10000, 0x100000 - 0x10000, b + 0x10000, true}};
    }
};

// The reference driver's host, made of external_host calls: its CPU costs nothing
// (the caller's CPU is real), its waits for interrupts run the simulation.
struct adapter {
    external_host &h;
    std::deque<uint32_t> msis;   // vectors delivered, not yet taken
    bool intx = false;           // the INTx level the interrupt controller sees
    uint64_t msi_count = 0, intx_changes = 0;
    uint8_t status_at_first_wait = 0;
    bool waited = false;
    uint64_t refused = 0;        // accesses not ok

    explicit adapter(external_host &host) : h(host)
    {
        h.on_msi = [this](uint64_t addr, uint32_t data) {
            cr_expect_eq(addr, amap::msi_base, "the driver's MSI-X address");
            msis.push_back(data);
            msi_count++;
        };
        h.on_intx = [this](bool level) {
            intx = level;
            intx_changes++;
        };
    }

    static adapter &of(void *ctx) { return *static_cast<adapter *>(ctx); }
    // Counts an access the device did not take (the driver makes none).
    template <class T> static T counted(void *ctx, external_access a, T v)
    {
        of(ctx).refused += a != external_access::ok;
        return v;
    }
    static uint32_t cfg_read(void *ctx, uint32_t off, unsigned size)
    {
        uint32_t v;
        const external_access a = of(ctx).h.cfg_read(off, size, v);
        return counted(ctx, a, v);
    }
    static void cfg_write(void *ctx, uint32_t off, unsigned size, uint32_t value)
    {
        counted(ctx, of(ctx).h.cfg_write(off, size, value), 0);
    }
    static uint64_t mmio_read(void *ctx, uint64_t addr, unsigned size)
    {
        uint64_t v;
        const external_access a = of(ctx).h.mmio_read(addr, size, v);
        return counted(ctx, a, v);
    }
    static void mmio_write(void *ctx, uint64_t addr, unsigned size, uint64_t value)
    {
        counted(ctx, of(ctx).h.mmio_write(addr, size, value), 0);
    }
    static int wait_interrupt(void *ctx, uint64_t timeout_ns)
    {
        adapter &a = of(ctx);
        if (!a.waited) {
            // The driver waits only once the device is live ("Device Initialization").
            a.waited = true;
            a.status_at_first_wait = a.h.platform().dev.kernel().tp.vpci.status;
        }
        const sc_time end = a.h.now() + sc_time(double(timeout_ns), SC_NS);
        for (;;) {
            if (!a.msis.empty()) {
                const uint32_t v = a.msis.front();
                a.msis.pop_front();
                return int(v);
            }
            if (a.intx)
                return VS_HOST_IRQ_INTX;
            if (a.h.now() >= end || !a.h.run_until_interrupt(end - a.h.now()))
                return -1;
        }
    }
    static void cpu_work(void *, enum vs_host_work, uint64_t) {}
    static uint64_t now_ps(void *ctx) { return of(ctx).h.now().value(); }
    static int iommu_set_root(void *ctx, uint32_t pasid, uint64_t root)
    {
        return of(ctx).h.iommu_set_root(pasid, root) ? 0 : -1;
    }

    vs_host_ops ops(guest_ram &ram)
    {
        vs_host_ops o = {};
        o.cfg_read = cfg_read;
        o.cfg_write = cfg_write;
        o.mmio_read = mmio_read;
        o.mmio_write = mmio_write;
        o.wait_interrupt = wait_interrupt;
        o.cpu_work = cpu_work;
        o.now_ps = now_ps;
        o.iommu_set_root = iommu_set_root;
        o.ctx = this;
        o.mem = ram.bytes.get();
        o.mem_base = amap::memory_base;
        o.mem_size = MEM_BYTES;
        o.mmio_window_base = amap::mmio_window_base;
        o.mmio_window_size = amap::mmio_window_size;
        o.msi_base = amap::msi_base;
        return o;
    }
};

const stat_entry &stat(const run_result &r, const char *name)
{
    const stat_entry *v = r.stats.find(name);
    cr_assert(v, "statistic %s", name);
    return *v;
}

std::unique_ptr<external_host> must_create(const vs_config &cfg, const std::vector<memory_region> &regions)
{
    std::string why;
    std::unique_ptr<external_host> h = external_host::create(cfg, regions, why);
    cr_assert(h, "%s", why.c_str());
    return h;
}

// The reference driver over the adapter: bring-up, `frames` frames in loopback, reset.
struct loopback {
    guest_ram ram;
    std::unique_ptr<external_host> hp;
    external_host &h = *hp;
    adapter a{h};
    refdrv_stats ds = {};
    enum refdrv_result result;

    explicit loopback(const vs_config &cfg, bool split = false)
        : hp(must_create(cfg, split ? ram.split_regions() : ram.regions()))
    {
        const refdrv_params p = cfg.drv;
        const vs_host_ops ops = a.ops(ram);
        result = refdrv_run(&ops, &p, &ds);
    }
};

} // namespace

// PCI Local Bus 3.0 6.1 (the header) and virtio 1.x 4.1.2 "PCI Device Discovery": the IDs,
// the capability list; a read takes simulated time (its round trip), nothing else does.
Test(external_host, registers_read_back_as_the_spec_says)
{
    guest_ram ram;
    const std::unique_ptr<external_host> hp = must_create(test_config(4), ram.regions());
    external_host &h = *hp;
    cr_expect_eq(h.now(), sc_core::SC_ZERO_TIME);
    uint32_t v = 0;
    cr_assert(h.cfg_read(PCI_VENDOR_ID, 2, v) == external_access::ok);
    cr_expect_eq(v, VIRTIO_PCI_VENDOR_ID);
    const sc_time after_one_read = h.now();
    cr_expect_gt(after_one_read, sc_core::SC_ZERO_TIME, "a read waits for its completion");
    cr_assert(h.cfg_read(PCI_DEVICE_ID, 2, v) == external_access::ok);
    cr_expect_eq(v, VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_NET, "0x1040 + 1: a non-transitional network device");
    cr_expect_eq(h.now(), after_one_read + after_one_read, "every read the same round trip on an idle link");
    cr_assert(h.cfg_read(PCI_STATUS, 2, v) == external_access::ok);
    cr_expect(v & PCI_STATUS_CAP_LIST_MASK, "the capability list is present");
    cr_assert(h.cfg_read(PCI_CAPABILITY_LIST, 1, v) == external_access::ok);
    cr_expect_geq(v, 0x40u, "the first capability follows the header");
    // A configuration write is non-posted: its completion is waited for too.
    const sc_time before_write = h.now();
    cr_assert(h.cfg_write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK) == external_access::ok);
    cr_expect_gt(h.now(), before_write);
    cr_assert(h.cfg_read(PCI_COMMAND, 2, v) == external_access::ok);
    cr_expect_eq(v & PCI_COMMAND_MEMORY_MASK, PCI_COMMAND_MEMORY_MASK);
    // Nothing happens between calls: an idle device stays idle, time stays put.
    const sc_time t = h.now();
    cr_expect(h.run_until_idle(sc_time(1, SC_US)));
    cr_expect_eq(h.now(), t, "idle at once: time does not run to the bound");
    h.run_for(sc_time(250, SC_NS));
    cr_expect_eq(h.now(), t + sc_time(250, SC_NS));
    cr_expect_not(h.run_until_interrupt(sc_time(1, SC_US)), "no interrupt from a device not set up");
    cr_expect_eq(h.now(), t + sc_time(1250, SC_NS));
    const run_result r = h.collect();
    cr_expect_eq(stat(r, "sim.time_ns").f64, h.now().to_seconds() * 1e9);
    cr_expect_gt(stat(r, "link.down.tlps").u64, 0u, "the accesses crossed the link");
}

// run_until_idle with something still to happen past its bound (here an event 5 µs
// ahead, as a frame still in a slow device or a coalescing timer would be): each call
// moves time by exactly the bound and says "not idle", so that calls in a row get there;
// once nothing is left, time stops at the last thing that happened. (SystemC's
// SC_EXIT_ON_STARVATION alone left time where it was, and a front end calling again
// stood still forever.)
Test(external_host, run_until_idle_moves_by_the_bound_while_work_is_left)
{
    guest_ram ram;
    const std::unique_ptr<external_host> hp = must_create(test_config(4), ram.regions());
    external_host &h = *hp;
    cr_assert(h.run_until_idle(sc_time(1, SC_US)), "a device not set up is idle");
    const sc_time t = h.now();
    sc_core::sc_event later("later");
    later.notify(sc_time(4500, SC_NS));
    for (int i = 1; i <= 4; i++) {
        cr_assert_not(h.run_until_idle(sc_time(1, SC_US)), "call %d: the event is still ahead", i);
        cr_assert_eq(h.now(), t + sc_time(i * 1000.0, SC_NS), "call %d: time moved by the bound", i);
    }
    cr_assert(h.run_until_idle(sc_time(1, SC_US)), "the event happened: idle");
    cr_assert_eq(h.now(), t + sc_time(4500, SC_NS), "time stops at the event, not at the bound");
}

// An access no BAR claims (none is assigned yet; then one past the assigned ones) ends
// as an Unsupported Request: all-ones, reported, and the device goes on.
Test(external_host, an_unassigned_address_fails_cleanly)
{
    guest_ram ram;
    const std::unique_ptr<external_host> hp = must_create(test_config(4), ram.regions());
    external_host &h = *hp;
    uint64_t v = 0;
    cr_expect(h.mmio_read(amap::mmio_window_base, 4, v) == external_access::unclaimed);
    cr_expect_eq(v, 0xffffffffu);
    cr_expect(h.mmio_write(amap::mmio_window_base, 4, 1) == external_access::unclaimed);
    cr_expect(h.mmio_read(amap::mmio_window_base, 3, v) == external_access::refused, "3 bytes");
    uint32_t c = 0;
    cr_expect(h.cfg_read(PCI_CFG_SPACE_SIZE - 2, 4, c) == external_access::refused,
              "past the 4 KiB configuration space");
    cr_expect_eq(c, 0xffffffffu);
    // Assign BAR0 and enable memory decoding: inside it the device answers; past its end
    // nothing does.
    uint32_t size_mask = 0;
    cr_assert(h.cfg_write(PCI_BAR0, 4, 0xffffffffu) == external_access::ok);
    cr_assert(h.cfg_read(PCI_BAR0, 4, size_mask) == external_access::ok);
    const uint64_t bar_bytes = uint64_t(~(size_mask & ~0xfu)) + 1;
    cr_assert(bar_bytes >= 16 && bar_bytes <= amap::mmio_window_size / 2);
    cr_assert(h.cfg_write(PCI_BAR0, 4, uint32_t(amap::mmio_window_base)) == external_access::ok);
    if (size_mask & PCI_BAR_MEM_TYPE_64_MASK)
        cr_assert(h.cfg_write(PCI_BAR0 + 4, 4, 0) == external_access::ok);
    cr_assert(h.cfg_write(PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK) == external_access::ok);
    cr_expect(h.mmio_read(amap::mmio_window_base, 4, v) == external_access::ok);
    cr_expect(h.mmio_read(amap::mmio_window_base + bar_bytes, 4, v) == external_access::unclaimed);
    cr_expect_eq(v, 0xffffffffu);
    const run_result r = h.collect();
    cr_expect_eq(r.device_error, "", "an unclaimed access breaks nothing");
}

// "Device Initialization" (3.1.1) to DRIVER_OK, then frames through one queue pair and
// back (loopback), the device timed by the platform: DMA, link, interrupts.
Test(external_host, reference_driver_loopback)
{
    const vs_config cfg = test_config(32);
    loopback l(cfg);
    cr_assert_eq(l.result, REFDRV_OK, "driver result %s", refdrv_result_name(l.result));
    cr_expect_eq(l.a.refused, 0u, "every access of the driver was claimed");
    cr_expect_eq(l.a.status_at_first_wait,
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                     VIRTIO_STATUS_DRIVER_OK);
    cr_expect_eq(l.ds.tx_frames, 32u);
    cr_expect_eq(l.ds.rx_frames, 32u, "every frame came back");
    cr_expect_eq(l.ds.rx_bad_payload, 0u);
    cr_expect_gt(l.a.msi_count, 0u, "MSI-X messages reached the callback");
    const run_result r = l.h.collect();
    cr_expect_eq(r.device_error, "");
    cr_expect_eq(r.violations_total, 0u);
    cr_expect(r.negotiated_features.w[VIRTIO_F_VERSION_1_BIT / 32] &
              (1u << (VIRTIO_F_VERSION_1_BIT % 32)));
    cr_expect_gt(stat(r, "sim.time_ns").f64, 1000.0, "simulated time ran");
    cr_expect_eq(stat(r, "device.tx.frames").u64, 32u);
    cr_expect_eq(stat(r, "device.rx.frames").u64, 32u);
    cr_expect_gt(stat(r, "device.dma.read_bytes").u64, 32u * 64u, "frames read by DMA");
    cr_expect_gt(stat(r, "device.dma.write_bytes").u64, 32u * 64u, "frames written by DMA");
    cr_expect_gt(stat(r, "link.up.tlps").u64, 0u);
    cr_expect_gt(stat(r, "device.msix_sent").u64, 0u);
    cr_expect_eq(stat(r, "device.msix_sent").u64, l.a.msi_count, "every message delivered");
    // The driver reset the device at the end: nothing is left to do.
    const sc_time t = l.h.now();
    cr_expect(l.h.run_until_idle(sc_time(1, sc_core::SC_MS)), "the device idles after a reset");
    cr_expect_lt(l.h.now(), t + sc_time(1, sc_core::SC_MS), "idle before the bound");
}

// Legacy INTx (device.msix = off): the level reaches the callback, the driver's ISR reads
// lower it, frames come back.
Test(external_host, reference_driver_loopback_on_intx)
{
    vs_config cfg = test_config(16);
    cfg.dev.no_msix = true;
    loopback l(cfg);
    cr_assert_eq(l.result, REFDRV_OK, "driver result %s", refdrv_result_name(l.result));
    cr_expect_eq(l.ds.rx_frames, 16u);
    cr_expect_eq(l.a.msi_count, 0u);
    cr_expect_gt(l.a.intx_changes, 0u);
    const run_result r = l.h.collect();
    cr_expect_gt(stat(r, "device.intx_asserts").u64, 0u);
    cr_expect_eq(stat(r, "device.intx_asserts").u64 + stat(r, "device.intx_deasserts").u64,
                 l.a.intx_changes, "every change of the pin delivered");
}

// A function-level reset (PCI Express Base 4.0 §6.6.2; QEMU's DEVICE_RESET over
// --qemu-proxy) through the platform: the configuration space reads as at power-on
// (Command 0, BAR0 unassigned), the statistics go on, and the reference driver brings
// the function up from scratch ("Device Initialization") and moves its frames again.
Test(external_host, function_reset_then_a_second_bring_up)
{
    const vs_config cfg = test_config(8);
    loopback l(cfg);
    cr_assert_eq(l.result, REFDRV_OK, "driver result %s", refdrv_result_name(l.result));
    l.h.reset_function();
    cr_expect(l.h.run_until_idle(sc_time(1, sc_core::SC_MS)), "nothing left to do after the reset");
    uint32_t v = 0xffff;
    cr_assert_eq(l.h.cfg_read(PCI_COMMAND, 2, v), external_access::ok);
    cr_expect_eq(v, 0u, "memory decoding and bus mastering off");
    cr_assert_eq(l.h.cfg_read(PCI_BAR0, 4, v), external_access::ok);
    cr_expect_eq(v & ~0xfu, 0u, "BAR0 unassigned");
    // A new driver: fresh (zeroed) memory for its rings, no interrupt of the old one.
    std::memset(l.ram.bytes.get(), 0, MEM_BYTES);
    l.a.msis.clear();
    refdrv_stats again = {};
    const refdrv_params p = cfg.drv;
    const vs_host_ops ops = l.a.ops(l.ram);
    const enum refdrv_result second = refdrv_run(&ops, &p, &again);
    cr_assert_eq(second, REFDRV_OK, "driver result %s (%s)", refdrv_result_name(second),
                 l.h.collect().device_error.c_str());
    cr_expect_eq(again.rx_frames, 8u);
    const run_result r = l.h.collect();
    cr_expect_eq(stat(r, "device.tx.frames").u64, 16u, "counters kept across the reset");
    cr_expect_eq(r.violations_total, 0u);
}

namespace {
// The stats text of one loopback run in a child process of its own.
std::string stats_of_a_child_run(bool split = false)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    const pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        loopback l(test_config(16), split);
        json_t *j = stats_to_json(l.h.collect().stats);
        const std::string text = l.result == REFDRV_OK ? stats_json_text(j) : "driver failed";
        json_decref(j);
        const bool ok = write(fds[1], text.data(), text.size()) == ssize_t(text.size());
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;)
        text.append(buf, size_t(n));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return text;
}
} // namespace

// Determinism: the same accesses give byte-identical statistics.
Test(external_host, the_same_sequence_gives_identical_stats)
{
    const std::string a = stats_of_a_child_run(), b = stats_of_a_child_run();
    cr_assert_gt(a.size(), 1000u);
    cr_expect(a.find("\"device.queue.rx.") != std::string::npos);
    cr_expect(a == b, "two runs of one sequence differ");
}

// Guest memory in several regions (a guest's memory map), some shared with another
// process: where and how bytes are held changes nothing the device computes.
Test(external_host, guest_memory_in_regions_gives_the_same_stats)
{
    const std::string one = stats_of_a_child_run(false), three = stats_of_a_child_run(true);
    cr_assert_gt(one.size(), 1000u);
    cr_expect(one == three, "three regions differ from one");
}

// SystemC elaborates once per process: a second platform is refused, the first goes on.
Test(external_host, a_second_instance_in_one_process_is_refused)
{
    guest_ram ram, other;
    const std::unique_ptr<external_host> hp = must_create(test_config(4), ram.regions());
    external_host &h = *hp;
    std::string why;
    cr_expect_null(external_host::create(test_config(4), other.regions(), why).get());
    cr_expect(why.find("one platform per process") != std::string::npos, "%s", why.c_str());
    uint32_t v = 0;
    cr_expect(h.cfg_read(PCI_VENDOR_ID, 2, v) == external_access::ok);
    cr_expect_eq(v, VIRTIO_PCI_VENDOR_ID);
}
