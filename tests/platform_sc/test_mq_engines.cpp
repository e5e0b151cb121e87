// test_mq_engines.cpp -- the timed device with several queue pairs driven at once.
//
// The reference driver does not negotiate VIRTIO_NET_F_MQ yet, so this test carries a
// small polling driver of its own: a SystemC thread that brings the function up through
// its registers over the PCIe link ("Device Initialization"), with VIRTIO_NET_F_MQ and
// VIRTIO_NET_F_CTRL_VQ, split rings, every queue of 2N + 1 enabled (no MSI-X vectors),
// sends VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET on the control queue (at 2N, "Network Device /
// Virtqueues"), then puts receive buffers and frames on every pair and polls the used
// rings until the loopback has returned every frame. It checks what the platform owes
// multiqueue: the queues of the pairs in use start their engines when they come into
// service, run concurrently and share the DMA engine's read tags; the pairs past
// VQ_PAIRS_SET move nothing.
//
// Unlike the other platform tests this one links SystemC (one platform per test: Criterion
// runs each test in a process of its own, and SystemC elaborates once per process).
#include <criterion/criterion.h>

#include <cstring>
#include <memory>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "address_map.h"
#include "config.h"
#include "host_memory.h"
#include "pcie_link.h"
#include "root_complex.h"
#include "virtio_device_tlm.h"

extern "C" {
#include "pci_cfg.h"
#include "virtio_wire.h"
}

using sc_core::SC_NS;
using sc_core::SC_PS;
using sc_core::sc_time;

#include "common/find_vcap.hpp"
#include "common/sc_criterion_main.h"
#include "common/tlm_access.h"

using namespace viosim; // the platform's modules and configuration (platform/)

namespace {

constexpr uint64_t BAR0 = amap::mmio_window_base;
constexpr uint64_t BAR2 = amap::mmio_window_base + 0x100000;
constexpr uint16_t QSIZE = 64;
constexpr uint64_t QWINDOW = 0x4000;  // per queue: descriptors, avail at +0x800, used at +0x1000
constexpr uint64_t BUFS = 0x400000;   // buffers from here, 2 KiB each
constexpr uint32_t HDR = 12;          // struct virtio_net_hdr (with num_buffers)
constexpr uint32_t FRAME = 64;

struct split_ring {
    uint64_t desc, avail, used;
    uint16_t avail_idx = 0, used_seen = 0;
};

// The polling driver: everything through the link, like a CPU's MMIO.
struct mq_driver : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<mq_driver> mmio;
    tlm_utils::simple_target_socket<mq_driver> msi_in;
    host_memory &mem;
    unsigned pairs_offered, pairs_used, frames_per_pair;
    std::vector<split_ring> q;
    uint64_t common = 0, notify = 0;
    uint32_t notify_mult = 0;
    std::vector<unsigned> rx_done, tx_done;
    // Pairs that send frames (the first ones; default: every pair in use), and whether
    // each frame is notified or only a pair's last.
    unsigned pairs_sending = ~0u;
    bool kick_each_frame = true;
    unsigned writes_after_driver_ok = 0; // register writes from DRIVER_OK on
    bool driver_ok = false;
    bool done = false, ctrl_ok = false;
    uint8_t ctrl_ack = 0xff;

    SC_HAS_PROCESS(mq_driver);
    mq_driver(sc_core::sc_module_name n, host_memory &m, unsigned offered, unsigned used, unsigned frames)
        : sc_module(n), mmio("mmio"), msi_in("msi_in"), mem(m), pairs_offered(offered),
          pairs_used(used), frames_per_pair(frames), q(2 * offered + 1), rx_done(offered),
          tx_done(offered)
    {
        msi_in.register_b_transport(this, &mq_driver::msi);
        SC_THREAD(run);
    }

    void msi(tlm::tlm_generic_payload &tx, sc_time &) { tx.set_response_status(tlm::TLM_OK_RESPONSE); }

    uint64_t access(bool write, uint64_t addr, unsigned len, uint64_t v)
    {
        sc_time delay = sc_core::SC_ZERO_TIME;
        tlm::tlm_response_status status;
        v = tlm_access(mmio, write, addr, len, v, delay, &status);
        cr_assert(status == tlm::TLM_OK_RESPONSE, "access at 0x%llx", (unsigned long long)addr);
        if (write && driver_ok)
            writes_after_driver_ok++;
        wait(delay + sc_time(10, SC_NS));
        return v;
    }
    uint64_t cfg_rd(uint32_t off, unsigned len) { return access(false, amap::ecam_base + off, len, 0); }
    void cfg_wr(uint32_t off, unsigned len, uint64_t v) { access(true, amap::ecam_base + off, len, v); }
    uint64_t rd(uint32_t field, unsigned len) { return access(false, common + field, len, 0); }
    void wr(uint32_t field, unsigned len, uint64_t v) { access(true, common + field, len, v); }

    uint8_t find_vcap(uint8_t type) // the vendor capability of type, or 0
    {
        return ::find_vcap([this](uint32_t off, unsigned len) { return cfg_rd(off, len); }, type);
    }

    uint8_t *at(uint64_t addr) { return mem.data() + (addr - amap::memory_base); }
    template <typename T> void put(uint64_t addr, T v) { std::memcpy(at(addr), &v, sizeof v); }
    template <typename T> T get(uint64_t addr)
    {
        T v;
        std::memcpy(&v, at(addr), sizeof v);
        return v;
    }

    // Make a chain of (addr, len, writable) available on queue qi and notify.
    void post(uint16_t qi, const std::vector<std::tuple<uint64_t, uint32_t, bool>> &segs, bool kick = true)
    {
        split_ring &r = q[qi];
        const uint16_t head = uint16_t(r.avail_idx * segs.size() % QSIZE);
        for (size_t i = 0; i < segs.size(); i++) {
            const uint64_t d = r.desc + 16u * ((head + i) % QSIZE);
            put<uint64_t>(d, std::get<0>(segs[i]));
            put<uint32_t>(d + 8, std::get<1>(segs[i]));
            uint16_t flags = std::get<2>(segs[i]) ? 2 : 0; // VIRTQ_DESC_F_WRITE
            if (i + 1 < segs.size())
                flags |= 1; // VIRTQ_DESC_F_NEXT
            put<uint16_t>(d + 12, flags);
            put<uint16_t>(d + 14, uint16_t((head + i + 1) % QSIZE));
        }
        put<uint16_t>(r.avail + 4 + 2u * (r.avail_idx % QSIZE), head);
        r.avail_idx++;
        put<uint16_t>(r.avail + 2, r.avail_idx);
        if (kick)
            access(true, notify + uint64_t(qi) * notify_mult, 2, qi);
    }
    // Used entries the device returned on qi since the last look.
    unsigned reap(uint16_t qi)
    {
        split_ring &r = q[qi];
        const uint16_t idx = get<uint16_t>(r.used + 2);
        const unsigned n = uint16_t(idx - r.used_seen);
        r.used_seen = idx;
        return n;
    }

    void run()
    {
        cfg_wr(PCI_BAR0, 4, uint32_t(BAR0));
        cfg_wr(PCI_BAR0 + 4, 4, 0);
        cfg_wr(PCI_BAR0 + 8, 4, uint32_t(BAR2));
        cfg_wr(PCI_BAR0 + 12, 4, 0);
        cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK);
        const uint8_t ccap = find_vcap(VIRTIO_PCI_CAP_COMMON_CFG), ncap = find_vcap(VIRTIO_PCI_CAP_NOTIFY_CFG);
        cr_assert(ccap && ncap);
        common = BAR0 + cfg_rd(ccap + 8u, 4);
        notify = BAR0 + cfg_rd(ncap + 8u, 4);
        notify_mult = uint32_t(cfg_rd(ncap + 16u, 4));

        // "Device Initialization", with MQ and the control queue; split rings.
        const uint8_t ack_drv = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
        wr(VIRTIO_PCI_COMMON_STATUS, 1, 0);
        wr(VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
        wr(VIRTIO_PCI_COMMON_STATUS, 1, ack_drv);
        const uint64_t want = (1ull << VIRTIO_NET_F_CTRL_VQ_BIT) | (1ull << VIRTIO_NET_F_MQ_BIT);
        wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
        wr(VIRTIO_PCI_COMMON_GF, 4, uint32_t(want));
        wr(VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
        wr(VIRTIO_PCI_COMMON_GF, 4, 1u << (VIRTIO_F_VERSION_1_BIT - 32));
        wr(VIRTIO_PCI_COMMON_STATUS, 1, ack_drv | VIRTIO_STATUS_FEATURES_OK);
        cr_assert(rd(VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
        cr_assert_eq(rd(VIRTIO_PCI_COMMON_NUMQ, 2), 2u * pairs_offered + 1u);
        for (uint16_t i = 0; i < q.size(); i++) {
            split_ring &r = q[i];
            r.desc = amap::memory_base + 0x10000 + i * QWINDOW;
            r.avail = r.desc + 0x800;
            r.used = r.desc + 0x1000;
            wr(VIRTIO_PCI_COMMON_Q_SELECT, 2, i);
            wr(VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
            wr(VIRTIO_PCI_COMMON_Q_DESCLO, 4, uint32_t(r.desc));
            wr(VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0);
            wr(VIRTIO_PCI_COMMON_Q_AVAILLO, 4, uint32_t(r.avail));
            wr(VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0);
            wr(VIRTIO_PCI_COMMON_Q_USEDLO, 4, uint32_t(r.used));
            wr(VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
            wr(VIRTIO_PCI_COMMON_Q_MSIX, 2, 0xffff); // VIRTIO_MSI_NO_VECTOR: this driver polls
            wr(VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
        }
        driver_ok = true;
        wr(VIRTIO_PCI_COMMON_STATUS, 1, ack_drv | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);

        // VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET: class, command; virtqueue_pairs; ack.
        const uint16_t ctrl = uint16_t(2 * pairs_offered);
        const uint64_t cmd = BUFS - 0x100;
        put<uint8_t>(cmd, VIRTIO_NET_CTRL_MQ);
        put<uint8_t>(cmd + 1, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET);
        put<uint16_t>(cmd + 2, uint16_t(pairs_used));
        put<uint8_t>(cmd + 4, 0xff);
        post(ctrl, {{cmd, 2, false}, {cmd + 2, 2, false}, {cmd + 4, 1, true}});
        while (reap(ctrl) == 0)
            wait(sc_time(100, SC_NS));
        ctrl_ack = get<uint8_t>(cmd + 4);

        // Receive buffers on every pair's receive queue (those past the pairs in use get
        // none from the device), then frames on the transmit queues of the pairs in use.
        uint64_t buf = BUFS;
        for (unsigned p = 0; p < pairs_offered; p++)
            for (unsigned k = 0; k < QSIZE / 2; k++, buf += 2048)
                post(uint16_t(2 * p), {{buf, 2048, true}}, k + 1 == QSIZE / 2);
        unsigned sent = 0;
        const unsigned sending = pairs_sending < pairs_offered ? pairs_sending : pairs_offered;
        for (unsigned f = 0; f < frames_per_pair; f++)
            for (unsigned p = 0; p < sending; p++, buf += 2048) {
                std::memset(at(buf), 0, HDR);
                std::memset(at(buf + HDR), int(0x10 + p), FRAME);
                post(uint16_t(2 * p + 1), {{buf, HDR + FRAME, false}},
                     kick_each_frame || f + 1 == frames_per_pair);
                sent++;
            }
        // Poll until every frame of the pairs in use came back (the others' stay queued).
        unsigned got = 0;
        const unsigned expected = frames_per_pair * (sending < pairs_used ? sending : pairs_used);
        for (int spins = 0; got < expected && spins < 100000; spins++) {
            wait(sc_time(200, SC_NS));
            for (unsigned p = 0; p < pairs_offered; p++) {
                const unsigned rx = reap(uint16_t(2 * p)), tx = reap(uint16_t(2 * p + 1));
                rx_done[p] += rx;
                tx_done[p] += tx;
                got += rx;
            }
        }
        (void)sent;
        wait(sc_time(5, sc_core::SC_US)); // anything that should not happen, would by now
        for (unsigned p = 0; p < pairs_offered; p++) {
            rx_done[p] += reap(uint16_t(2 * p));
            tx_done[p] += reap(uint16_t(2 * p + 1));
        }
        done = true;
        sc_core::sc_stop();
    }
};

struct rig {
    vs_config cfg;
    std::unique_ptr<host_memory> mem;
    std::unique_ptr<pcie_link> link;
    std::unique_ptr<root_complex> rc;
    std::unique_ptr<virtio_device_tlm> dev;
    std::unique_ptr<mq_driver> drv;

    rig(unsigned offered, unsigned used, unsigned frames, unsigned engines, bool wakeup_next = false)
    {
        sc_core::sc_set_time_resolution(1, SC_PS);
        sc_core::sc_report_handler::set_actions("/OSCI/SystemC", sc_core::SC_INFO, sc_core::SC_DO_NOTHING);
        cfg = config_defaults();
        cfg.dev.queue_pairs = offered;
        cfg.dev.queue_engines = engines;
        cfg.sim.engine_wakeup_next = wakeup_next;
        tlm_utils::tlm_quantumkeeper::set_global_quantum(sc_time(cfg.sim.quantum_ns, SC_NS));
        mem.reset(new host_memory("memory", amap::memory_base, 16u << 20, sc_time(cfg.memory.latency_ns, SC_NS),
                                  sc_time(cfg.memory.read_ps_per_byte, SC_PS)));
        rc.reset(new root_complex("root_complex", iommu_config_of(cfg.iommu, cfg.seed), iommu_timing_of(cfg.iommu)));
        dev.reset(new virtio_device_tlm("device", cfg.dev, device_timing_of(cfg)));
        const pcie_link_timing lt = pcie_link_timing_of(cfg.pcie, cfg.memory);
        link.reset(new pcie_link("link", lt.link, sc_time(lt.read_fixed_ns, SC_NS)));
        drv.reset(new mq_driver("driver", *mem, offered, used, frames));
        drv->mmio.bind(link->down_in);
        link->down_out.bind(dev->target);
        dev->dma.bind(link->up_in);
        link->up_out.bind(rc->from_link);
        rc->to_memory.bind(mem->socket);
        rc->to_intc.bind(drv->msi_in);
    }
    void run() { sc_core::sc_start(sc_time(20, sc_core::SC_MS)); }
};

} // namespace

// 4 pairs offered and used: every transmit queue is served by its own engine, the frames
// come back on the receive queues in use (one loopback FIFO shared by them, no steering
// yet), every queue's engine started when its queue came into service, and the queues'
// DMA overlapped on the shared read tags. One engine per queue: with several, two
// receive queues' engines can both see the shared FIFO's last frame before either takes
// it (model/virtio_net.c rx_take checks, then pops a buffer with DMA, then takes the
// frame), which per-pair receive FIFOs remove.
Test(mq_engines, four_pairs_in_use_run_concurrently)
{
    rig r(4, 4, 24, 1);
    r.run();
    cr_assert(r.drv->done, "the driver did not finish");
    cr_expect_eq(r.drv->ctrl_ack, VIRTIO_NET_OK);
    const vdev &k = r.dev->kernel();
    cr_expect_eq(k.tp.error, VS_REASON_NONE, "device error %s", vs_reason_name(k.tp.error));
    unsigned rx = 0;
    for (unsigned p = 0; p < 4; p++) {
        cr_expect_eq(r.drv->tx_done[p], 24u, "transmitq%u returned %u", p + 1, r.drv->tx_done[p]);
        rx += r.drv->rx_done[p];
        cr_expect(r.dev->queue_started(uint16_t(2 * p)) && r.dev->queue_started(uint16_t(2 * p + 1)));
        cr_expect_gt(r.dev->engine_busy[2 * p + 1].value(), 0u, "transmitq%u engine idle", p + 1);
    }
    cr_expect_eq(rx, 4u * 24u);
    cr_expect_eq(k.net.stats.tx_frames, 4u * 24u);
    // 4 pairs x 2 queues x (engine + coalescing timer), the control engine, the MSI-X sender.
    cr_expect_eq(r.dev->processes(), 4u * 2u * 2u + 1u + 1u);
    // Several queues' reads in flight together on the one DMA engine.
    cr_expect_gt(r.dev->dma_stats().max_tags_in_flight, 1u);
}

// 8 pairs offered, VQ_PAIRS_SET 2 ("Automatic receive steering in multiqueue mode": the
// device uses only the pairs the driver enabled): the other six pairs' queues are
// enabled but never in service, so they move no buffer. This driver transmits on all
// eight anyway ("MUST NOT queue packets on transmit queues greater than
// virtqueue_pairs"): the receive queues of the other pairs start no engine; their
// transmit queues' notifications start one that looks (pt_look_parked), reports
// TX_QUEUE_NOT_IN_USE and sleeps.
Test(mq_engines, pairs_past_vq_pairs_set_stay_asleep)
{
    rig r(8, 2, 16, 1);
    r.run();
    cr_assert(r.drv->done, "the driver did not finish");
    cr_expect_eq(r.drv->ctrl_ack, VIRTIO_NET_OK);
    const vdev &k = r.dev->kernel();
    cr_expect_eq(k.net.pairs, 2u);
    for (unsigned p = 0; p < 8; p++) {
        const bool used = p < 2;
        cr_expect(r.dev->queue_started(uint16_t(2 * p + 1)), "transmitq%u", p + 1);
        cr_expect_eq(r.dev->queue_started(uint16_t(2 * p)), used, "receiveq%u", p + 1);
        cr_expect_eq(r.drv->tx_done[p], used ? 16u : 0u, "transmitq%u returned %u", p + 1, r.drv->tx_done[p]);
        if (!used)
            cr_expect_eq(r.drv->rx_done[p], 0u, "receiveq%u got frames", p + 1);
    }
    cr_expect_eq(r.drv->rx_done[0] + r.drv->rx_done[1], 32u);
    cr_expect_eq(k.net.stats.tx_frames, 32u);
    // Every buffer of transmitq3..8 counted once, in one record or more per queue (this
    // driver also skips the reset read-back: RESET_NOT_AWAITED).
    const vs_conformance &c = k.tp.vpci.conf;
    cr_expect_geq(c.per_rule[VS_RULE_TX_QUEUE_NOT_IN_USE], 6u);
    cr_expect_eq(c.total, c.per_rule[VS_RULE_TX_QUEUE_NOT_IN_USE] + c.per_rule[VS_RULE_RESET_NOT_AWAITED]);
    uint64_t seen[16] = {};
    for (uint32_t i = 0; i < c.logged; i++) {
        if (c.log[i].rule != VS_RULE_TX_QUEUE_NOT_IN_USE)
            continue;
        cr_expect(c.log[i].queue % 2u == 1u && c.log[i].queue >= 5u && c.log[i].queue < 16u);
        cr_expect_eq(c.log[i].expected, 2u, "pairs in use");
        seen[c.log[i].queue % 16u] += c.log[i].seen;
    }
    for (unsigned p = 2; p < 8; p++)
        cr_expect_eq(seen[2 * p + 1], 16u, "transmitq%u: %llu buffers counted", p + 1,
                     (unsigned long long)seen[2 * p + 1]);
    cr_expect_eq(k.tp.error, VS_REASON_NONE);
    // Pairs 1 and 2: 2 queues x (engine + timer); the control engine; the MSI-X sender;
    // the six transmit queues that looked (engine + timer).
    cr_expect_eq(r.dev->processes(), 2u * 2u * 2u + 1u + 1u + 6u * 2u);
}

// 4 pairs in use, frames on pair 1 only, one notification for them all; the receive
// engines of pairs 2-4 find nothing and sleep. Returns what each queue's engine woke
// for (engine_wakeups) and the driver's register writes from DRIVER_OK on (each wakes
// every blocked engine to look at its queue's state).
static std::vector<uint64_t> wakeups_with_pair_one_sending(bool wakeup_next, unsigned frames,
                                                           unsigned &writes)
{
    rig r(4, 4, frames, 1, wakeup_next);
    r.drv->pairs_sending = 1;
    r.drv->kick_each_frame = false;
    r.run();
    cr_assert(r.drv->done, "the driver did not finish");
    cr_expect_eq(r.drv->rx_done[0], frames);
    cr_expect_eq(r.dev->kernel().net.stats.rx_frames, frames);
    for (unsigned p = 1; p < 4; p++) {
        cr_expect(r.dev->queue_started(uint16_t(2 * p)), "receiveq%u started", p + 1);
        cr_expect_eq(r.drv->rx_done[p], 0u);
    }
    writes = r.drv->writes_after_driver_ok;
    cr_expect_lt(writes, 10u, "register writes after DRIVER_OK: %u", writes);
    return r.dev->engine_wakeups;
}

// sim.engine_wakeup = next: each frame put in pair 1's FIFO wakes receiveq1's engine,
// the queue the personality marked (pt_wake), and not the blocked receive engines of
// pairs 2-4, which wake only for register writes.
Test(mq_engines, an_idle_pair_is_not_woken_by_another_pairs_frames)
{
    const unsigned frames = 32; // as many as receiveq1 has buffers
    unsigned writes = 0;
    const std::vector<uint64_t> woke = wakeups_with_pair_one_sending(true, frames, writes);
    cr_expect_gt(woke[0], 0u, "receiveq1 slept and was woken by its frames");
    for (unsigned p = 1; p < 4; p++)
        cr_expect_leq(woke[2 * p], writes, "receiveq%u woke %llu times for %u register writes",
                      p + 1, (unsigned long long)woke[2 * p], writes);
}

// sim.engine_wakeup = all (the default, the exact results): every frame wakes every
// blocked receive engine, each re-checks its pair's FIFO and sleeps again.
Test(mq_engines, all_wakes_every_pair_for_each_frame)
{
    const unsigned frames = 32;
    unsigned writes = 0;
    const std::vector<uint64_t> woke = wakeups_with_pair_one_sending(false, frames, writes);
    for (unsigned p = 1; p < 4; p++)
        cr_expect_geq(woke[2 * p], frames, "receiveq%u woke %llu times for %u frames", p + 1,
                      (unsigned long long)woke[2 * p], frames);
}
