// test_proxy.cpp -- `viosim serve --qemu-proxy` (platform/qemu_proxy.cpp) with the test
// playing QEMU's x-pci-proxy-dev: it shares a memfd as guest RAM (SYNC_SYSMEM), reads
// the function's identity and capability list through PCI_CFGREAD, sizes and assigns the
// BAR, brings the device up with a tiny driver through BAR_WRITE / BAR_READ, transmits a
// frame, sees it come back (the loopback backend) and the INTx irqfd fire; and, as a
// hostile QEMU, sends what must end the connection. The server runs in a thread on one
// end of a socketpair (qemu_proxy_serve_connection); one test runs the viosim binary.
// Every wait is bounded (WAIT_MS).
//
// Links SystemC (the proxy runs the timed platform, external_host.h): one platform per
// test (Criterion runs each test in a process of its own), shared by the connections of
// a test.
#include <criterion/criterion.h>
#include <jansson.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/find_vcap.hpp"
#include "common/mpqemu_msg.h"
#include "common/viosim_run.hpp"
#include "config.h"
#include "qemu_proxy.h"

extern "C" {
#include "pci_cfg.h"
#include "virtio_wire.h"
}

#include "common/sc_criterion_main.h"

using namespace viosim; // the platform's modules and configuration (platform/)

namespace {

constexpr int WAIT_MS = 30000;
constexpr uint64_t RAM_GPA = 0x40000000;   // where the test's guest RAM sits
constexpr uint64_t RAM_BYTES = 1 << 20;
constexpr uint64_t RAM_FILE_OFFSET = 0x10000; // its offset in the memfd
constexpr uint32_t BAR0_GPA = 0xfe000000;  // where the "firmware" puts BAR0
constexpr uint16_t QSIZE = 8;

vs_config proxy_config()
{
    vs_config cfg = config_defaults();
    cfg.dev.no_msix = true;
    cfg.dev.bars_32bit = true;
    vs_feature_set(&cfg.dev.withdraw, VIRTIO_F_ACCESS_PLATFORM_BIT);
    param_error err;
    cr_assert(config_validate(cfg, err, true), "%s", err.message.c_str());
    return cfg;
}

// QEMU's side of one connection, with the server in a thread on the other end.
struct qemu_peer {
    int sock = -1, mem = -1, irq = -1, resample = -1;
    uint8_t *ram = nullptr; // the guest RAM as the test sees it (RAM_GPA at ram[0])
    vs_config cfg = proxy_config();
    serve_options opt;
    std::thread server;

    explicit qemu_peer(const vs_config &c = proxy_config()) : cfg(c)
    {
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        sock = sv[0];
        make_ram();
        opt.message_timeout_s = 1;
        const int theirs = sv[1];
        server = std::thread([this, theirs] { qemu_proxy_serve_connection(cfg, opt, theirs); });
    }
    // A peer of a `viosim serve --qemu-proxy` listening on path (connects within 30 s).
    explicit qemu_peer(const std::string &path)
    {
        for (int tries = 0; tries < 3000 && sock < 0; tries++) {
            sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_un sa = {};
            sa.sun_family = AF_UNIX;
            std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
            if (connect(sock, reinterpret_cast<struct sockaddr *>(&sa), sizeof sa) != 0) {
                close(sock);
                sock = -1;
                usleep(10000);
            }
        }
        cr_assert_geq(sock, 0, "the server listens on %s", path.c_str());
        make_ram();
    }
    void make_ram()
    {
        mem = memfd_create("test-proxy", MFD_CLOEXEC);
        cr_assert_geq(mem, 0);
        cr_assert_eq(ftruncate(mem, off_t(RAM_FILE_OFFSET + RAM_BYTES)), 0);
        void *p = mmap(nullptr, RAM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, mem, off_t(RAM_FILE_OFFSET));
        cr_assert_neq(p, MAP_FAILED);
        ram = static_cast<uint8_t *>(p);
    }
    ~qemu_peer()
    {
        if (sock >= 0)
            close(sock);
        if (server.joinable())
            server.join();
        munmap(ram, RAM_BYTES);
        for (int fd : {mem, irq, resample})
            if (fd >= 0)
                close(fd);
    }
    void send(const std::vector<uint8_t> &m, const std::vector<int> &fds = {})
    {
        cr_assert_eq(vhost_sendmsg(sock, m.data(), m.size(), fds, 0), ssize_t(m.size()));
    }
    // The RET answer's value; fails the test if none comes.
    uint64_t ret()
    {
        uint8_t b[MPQ_HEADER + 8];
        size_t have = 0;
        while (have < sizeof b) {
            struct pollfd p = {sock, POLLIN, 0};
            cr_assert_eq(poll(&p, 1, WAIT_MS), 1, "no answer from the server");
            const ssize_t n = recv(sock, b + have, sizeof b - have, 0);
            cr_assert_gt(n, 0, "the server closed the connection instead of answering");
            have += size_t(n);
        }
        uint32_t cmd;
        uint64_t size, v;
        std::memcpy(&cmd, b, 4);
        std::memcpy(&size, b + 8, 8);
        std::memcpy(&v, b + 16, 8);
        cr_assert_eq(cmd, uint32_t(MPQ_RET));
        cr_assert_eq(size, 8u);
        return v;
    }
    // The server ended the connection: EOF within WAIT_MS, nothing answered.
    bool closed_by_server()
    {
        uint8_t b[64];
        struct pollfd p = {sock, POLLIN, 0};
        if (poll(&p, 1, WAIT_MS) != 1)
            return false;
        return recv(sock, b, sizeof b, 0) == 0;
    }
    void sync_ram()
    {
        send(mpq_sysmem({{RAM_GPA, RAM_BYTES, RAM_FILE_OFFSET}}), {mem});
    }
    void set_irqfd()
    {
        irq = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        resample = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        send(mpq_header(MPQ_SET_IRQFD, 0), {irq, resample});
    }
    uint32_t cfg_rd(uint32_t off, uint32_t len)
    {
        send(mpq_conf(MPQ_PCI_CFGREAD, off, 0, len));
        return uint32_t(ret());
    }
    void cfg_wr(uint32_t off, uint32_t len, uint32_t v)
    {
        send(mpq_conf(MPQ_PCI_CFGWRITE, off, v, len));
        cr_assert_eq(ret(), 0u);
    }
    uint64_t bar_rd(uint64_t addr, uint32_t len)
    {
        send(mpq_bar(MPQ_BAR_READ, addr, 0, len));
        return ret();
    }
    void bar_wr(uint64_t addr, uint32_t len, uint64_t v)
    {
        send(mpq_bar(MPQ_BAR_WRITE, addr, v, len));
        cr_assert_eq(ret(), 0u);
    }
    uint64_t irq_count()
    {
        uint64_t n = 0;
        return read(irq, &n, sizeof n) == ssize_t(sizeof n) ? n : 0;
    }
    uint8_t find_vcap(uint8_t cfg_type) // the vendor capability of cfg_type, or 0
    {
        return ::find_vcap([this](uint32_t off, unsigned len) { return cfg_rd(off, len); }, cfg_type);
    }
    // The guest address of the structure a vendor capability points at (BAR0 assigned).
    uint64_t vcap_addr(uint8_t cfg_type)
    {
        const uint8_t cap = find_vcap(cfg_type);
        cr_assert_neq(cap, 0, "no virtio capability of type %u", cfg_type);
        cr_assert_eq(cfg_rd(cap + 4u, 1), 0u, "the structure is in BAR0");
        return BAR0_GPA + cfg_rd(cap + 8u, 4);
    }
    // PCI firmware's part: size BAR0 (all-ones written, the mask read back), assign it,
    // enable memory decoding and bus mastering. Returns BAR0's size.
    uint32_t assign_bar0()
    {
        cfg_wr(PCI_BAR0, 4, 0xffffffffu);
        const uint32_t mask = cfg_rd(PCI_BAR0, 4);
        cfg_wr(PCI_BAR0, 4, BAR0_GPA);
        cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK);
        return ~(mask & ~0xfu) + 1;
    }

    // The driver's part ("Device Initialization"), after assign_bar0: reset, features
    // f (bits 0-63), queues 0 .. n-1 of QSIZE entries with queue i's split rings at
    // 64 KiB * (i + 1), DRIVER_OK; notify_at[i] is queue i's notification address.
    std::vector<uint64_t> notify_at;
    uint16_t avail_idx[8] = {}, next_desc[8] = {};
    uint8_t *ring(uint16_t i) { return ram + 0x10000u * (i + 1u); }
    void bring_up(uint64_t f, uint16_t n)
    {
        const uint64_t common = vcap_addr(VIRTIO_PCI_CAP_COMMON_CFG);
        const uint8_t ncap = find_vcap(VIRTIO_PCI_CAP_NOTIFY_CFG);
        const uint64_t notify = vcap_addr(VIRTIO_PCI_CAP_NOTIFY_CFG);
        const uint32_t mult = cfg_rd(ncap + 16u, 4);
        auto c = [&](uint32_t field) { return common + field; };
        bar_wr(c(VIRTIO_PCI_COMMON_STATUS), 1, 0);
        cr_assert_eq(bar_rd(c(VIRTIO_PCI_COMMON_STATUS), 1), 0u);
        bar_wr(c(VIRTIO_PCI_COMMON_STATUS), 1, VIRTIO_STATUS_ACKNOWLEDGE);
        bar_wr(c(VIRTIO_PCI_COMMON_STATUS), 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
        bar_wr(c(VIRTIO_PCI_COMMON_DFSELECT), 4, 1);
        cr_assert(bar_rd(c(VIRTIO_PCI_COMMON_DF), 4) & 1u, "VIRTIO_F_VERSION_1 offered");
        for (uint32_t w = 0; w < 2; w++) {
            bar_wr(c(VIRTIO_PCI_COMMON_GFSELECT), 4, w);
            bar_wr(c(VIRTIO_PCI_COMMON_GF), 4, uint32_t(f >> (32 * w)));
        }
        const uint8_t drv = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
        bar_wr(c(VIRTIO_PCI_COMMON_STATUS), 1, drv | VIRTIO_STATUS_FEATURES_OK);
        cr_assert(bar_rd(c(VIRTIO_PCI_COMMON_STATUS), 1) & VIRTIO_STATUS_FEATURES_OK);
        notify_at.assign(n, 0);
        for (uint16_t i = 0; i < n; i++) {
            const uint64_t base = RAM_GPA + 0x10000u * (i + 1u);
            bar_wr(c(VIRTIO_PCI_COMMON_Q_SELECT), 2, i);
            bar_wr(c(VIRTIO_PCI_COMMON_Q_SIZE), 2, QSIZE);
            bar_wr(c(VIRTIO_PCI_COMMON_Q_DESCLO), 4, uint32_t(base));
            bar_wr(c(VIRTIO_PCI_COMMON_Q_DESCHI), 4, 0);
            bar_wr(c(VIRTIO_PCI_COMMON_Q_AVAILLO), 4, uint32_t(base + 0x1000));
            bar_wr(c(VIRTIO_PCI_COMMON_Q_AVAILHI), 4, 0);
            bar_wr(c(VIRTIO_PCI_COMMON_Q_USEDLO), 4, uint32_t(base + 0x2000));
            bar_wr(c(VIRTIO_PCI_COMMON_Q_USEDHI), 4, 0);
            notify_at[i] = notify + uint64_t(bar_rd(c(VIRTIO_PCI_COMMON_Q_NOFF), 2)) * mult;
            bar_wr(c(VIRTIO_PCI_COMMON_Q_ENABLE), 2, 1);
        }
        bar_wr(c(VIRTIO_PCI_COMMON_STATUS), 1, drv | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
        cr_assert_eq(bar_rd(c(VIRTIO_PCI_COMMON_STATUS), 1),
                     unsigned(drv | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK), "DRIVER_OK, healthy");
    }
    // Make one chain available on split queue i ({offset in RAM, length, WRITE?} each).
    struct seg {
        uint64_t off;
        uint32_t len;
        bool write;
    };
    void post(uint16_t i, std::initializer_list<seg> chain)
    {
        const uint16_t head = next_desc[i];
        size_t k = 0;
        for (const seg &sg : chain) {
            uint8_t *d = ring(i) + 16u * next_desc[i];
            const uint64_t addr = RAM_GPA + sg.off;
            const uint16_t more = ++k < chain.size();
            const uint16_t flags = uint16_t((more ? 1u : 0u) | (sg.write ? 2u : 0u));
            const uint16_t next = uint16_t((next_desc[i] + 1u) % QSIZE);
            std::memcpy(d, &addr, 8);
            std::memcpy(d + 8, &sg.len, 4);
            std::memcpy(d + 12, &flags, 2);
            std::memcpy(d + 14, &next, 2);
            next_desc[i] = next;
        }
        uint8_t *avail = ring(i) + 0x1000;
        std::memcpy(avail + 4 + 2u * (avail_idx[i] % QSIZE), &head, 2);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        avail_idx[i]++;
        std::memcpy(avail + 2, &avail_idx[i], 2);
    }
    uint16_t used_idx(uint16_t i)
    {
        uint16_t v;
        std::memcpy(&v, ring(i) + 0x2000 + 2, 2);
        return v;
    }
    // One frame round the loopback: a 2 KiB receive buffer at rx_buf posted and kicked,
    // then the frame (virtio-net header included) copied to tx_buf, posted and kicked.
    // Each kick is answered once the device has run (at most the proxy's bound).
    void send_through_loopback(const uint8_t *frame, uint32_t len, uint64_t rx_buf, uint64_t tx_buf)
    {
        post(0, {{rx_buf, 2048, true}});
        bar_wr(notify_at[0], 2, 0);
        std::memcpy(ram + tx_buf, frame, len);
        post(1, {{tx_buf, len, false}});
        bar_wr(notify_at[1], 2, 1);
    }
    // The used length of queue i's used entry n.
    uint32_t used_len(uint16_t i, uint16_t n)
    {
        uint32_t v;
        std::memcpy(&v, ring(i) + 0x2000 + 4 + 8u * (n % QSIZE) + 4, 4);
        return v;
    }
};

} // namespace

// PCI Local Bus 3.0 "Configuration Space Header"; virtio 1.x "PCI Device Discovery"
// (vendor 0x1AF4, device 0x1040 + 1 for a network device) and "Virtio Structure PCI
// Capabilities": all read through the proxy's PCI_CFGREAD, answered by RET.
Test(proxy, identity_and_capabilities_through_cfgread)
{
    qemu_peer q;
    q.sync_ram();
    cr_assert_eq(q.cfg_rd(PCI_VENDOR_ID, 2), 0x1af4u);
    cr_assert_eq(q.cfg_rd(PCI_DEVICE_ID, 2), 0x1041u);
    cr_assert_eq(q.cfg_rd(PCI_VENDOR_ID, 4), 0x10411af4u, "a 4-byte read covers both IDs");
    cr_assert(q.cfg_rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST_MASK);
    cr_assert_eq(q.cfg_rd(PCI_INTERRUPT_PIN, 1), 1u, "INTA#: the proxy delivers INTx only");
    bool seen[6] = {};
    bool msix = false;
    uint8_t off = uint8_t(q.cfg_rd(PCI_CAPABILITY_LIST, 1));
    for (int n = 0; off && n < 48; n++) {
        const uint32_t id = q.cfg_rd(off, 1);
        if (id == PCI_CAP_ID_MSIX)
            msix = true;
        if (id == PCI_CAP_ID_VNDR) {
            const uint32_t type = q.cfg_rd(off + 3u, 1);
            if (type < 6)
                seen[type] = true;
        }
        off = uint8_t(q.cfg_rd(off + 1u, 1));
    }
    cr_assert_eq(off, 0, "the capability list ends");
    for (unsigned t = VIRTIO_PCI_CAP_COMMON_CFG; t <= VIRTIO_PCI_CAP_PCI_CFG; t++)
        cr_assert(seen[t], "capability type %u is listed", t);
    cr_assert_not(msix, "device.msix=off: no MSI-X capability");
}

// PCI Local Bus 3.0 "Base Address Registers": all-ones written, the size mask read back;
// a 32-bit memory BAR (type bits 00), as the proxy sizes every BAR; BAR0 decodes at the
// address assigned, and an access outside every BAR ends the connection.
Test(proxy, bar_sizing_assignment_and_access_outside)
{
    qemu_peer q;
    q.sync_ram();
    cr_assert_eq(q.cfg_rd(PCI_BAR0, 4) & 0x7u, 0u, "32-bit memory BAR");
    const uint32_t size = q.assign_bar0();
    cr_assert_geq(size, 0x1000u);
    cr_assert_eq(size & (size - 1), 0u, "a power of two");
    cr_assert_eq(q.cfg_rd(PCI_BAR0, 4) & ~0xfu, BAR0_GPA);
    const uint64_t common = q.vcap_addr(VIRTIO_PCI_CAP_COMMON_CFG);
    cr_assert_eq(q.bar_rd(common + VIRTIO_PCI_COMMON_NUMQ, 2), 3u, "RX, TX, control queue");
    q.send(mpq_bar(MPQ_BAR_READ, BAR0_GPA + size, 0, 4));
    cr_assert(q.closed_by_server(), "a read past BAR0 ends the connection");
}

// virtio 1.x "Device Initialization" and "Virtqueue Configuration" through BAR writes;
// "The Virtqueue Available Ring" / "Used Ring" (split); "ISR status capability": the
// used buffer notification raises INTA#, which the server writes into the irqfd, and the
// ISR read clears it.
Test(proxy, bring_up_transmit_and_receive_with_intx)
{
    qemu_peer q;
    q.sync_ram();
    q.set_irqfd();
    q.assign_bar0();
    const uint64_t isr = q.vcap_addr(VIRTIO_PCI_CAP_ISR_CFG);
    q.bring_up(1ull << 32, 2); // VERSION_1 only: split rings, no extras
    cr_assert_eq(q.irq_count(), 0u, "no interrupt yet");

    // One 2 KiB receive buffer (queue 0), one 12-byte header + 60-byte frame (queue 1).
    const uint64_t rx_buf = 0x40000, tx_buf = 0x50000;
    uint8_t frame[12 + 60] = {};
    for (unsigned i = 12; i < sizeof frame; i++)
        frame[i] = uint8_t(i * 7);
    q.send_through_loopback(frame, sizeof frame, rx_buf, tx_buf); // answered once the device ran

    cr_assert_eq(q.used_idx(1), 1u, "the frame was transmitted");
    cr_assert_eq(q.used_idx(0), 1u, "and looped back into the receive buffer");
    cr_assert_eq(q.used_len(0, 0), sizeof frame);
    cr_assert_eq(std::memcmp(q.ram + rx_buf + 12, frame + 12, 60), 0, "the same bytes");
    cr_assert_geq(q.irq_count(), 1u, "INTA# rose: the irqfd was written");
    cr_assert_eq(q.cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT_MASK, PCI_STATUS_INTERRUPT_MASK);
    cr_assert_eq(q.bar_rd(isr, 1) & 1u, 1u, "ISR: a used buffer notification");
    cr_assert_eq(q.cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT_MASK, 0u, "the read cleared it");
    // A resample with the pin low writes nothing.
    const uint64_t one = 1;
    cr_assert_eq(write(q.resample, &one, sizeof one), ssize_t(sizeof one));
    cr_assert_eq(q.cfg_rd(PCI_VENDOR_ID, 2), 0x1af4u); // a round trip after the resample
    cr_assert_eq(q.irq_count(), 0u);

    // DEVICE_RESET: the function back to power-on (BAR unassigned, status 0).
    q.send(mpq_header(MPQ_DEVICE_RESET, 0));
    cr_assert_eq(q.ret(), 0u);
    cr_assert_eq(q.cfg_rd(PCI_BAR0, 4) & ~0xfu, 0u);
}

// Work that outlasts the bound an access runs the platform for (1 ms of simulated time)
// goes on without further accesses: with a 1 MHz device clock and 3000 cycles per frame,
// the kick's answer comes while the frame is still in the device, and its transmission,
// loopback and INTA# follow while the guest does nothing, as on hardware. (Before, they
// waited for the guest's next access, and a driver waiting for the interrupt hung.)
Test(proxy, work_past_the_access_bound_goes_on_without_accesses)
{
    vs_config cfg = proxy_config();
    cfg.device_tlm.clock_mhz = 1;
    cfg.device_tlm.packet_cycles = 3000; // 3 ms a frame
    qemu_peer q(cfg);
    q.sync_ram();
    q.set_irqfd();
    q.assign_bar0();
    q.bring_up(1ull << 32, 2);
    const uint8_t frame[12 + 60] = {};
    q.send_through_loopback(frame, sizeof frame, 0x40000, 0x50000);
    // No access from here on: the frame comes back and INTA# rises by themselves, while
    // the server's thread goes on (bounded waits; the order in which the test sees the
    // two used rings and the irqfd is the threads', so each is waited for).
    for (int ms = 0; ms < WAIT_MS && (q.used_idx(1) != 1 || q.used_idx(0) != 1); ms++)
        usleep(1000);
    cr_assert_eq(q.used_idx(1), 1u, "the frame was transmitted");
    cr_assert_eq(q.used_idx(0), 1u, "and looped back");
    struct pollfd p = {q.irq, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, WAIT_MS), 1, "INTA# rose without another access");
}

// Several queue pairs ("Automatic receive steering in multiqueue mode"): with
// device.queue_pairs_count=2 the driver negotiates VIRTIO_NET_F_MQ and CTRL_VQ, puts
// both pairs in use with VQ_PAIRS_SET on the control queue (2N = 4), and a frame sent
// on transmitq2 (queue 3) comes back on receiveq2 (queue 2): the proxy runs every live
// queue through its role (pt_run_idle), not pair 1 alone.
Test(proxy, serves_every_queue_pair)
{
    vs_config cfg = proxy_config();
    cfg.dev.queue_pairs = 2;
    qemu_peer q(cfg);
    q.sync_ram();
    q.set_irqfd();
    q.assign_bar0();
    q.bring_up(1ull << 32 | 1ull << VIRTIO_NET_F_CTRL_VQ_BIT | 1ull << VIRTIO_NET_F_MQ_BIT, 5);

    const uint64_t cmd = 0x80000, ack = 0x80100, rx_buf = 0x90000, tx_buf = 0xa0000;
    const uint8_t set[4] = {VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0};
    std::memcpy(q.ram + cmd, set, sizeof set);
    q.ram[ack] = 0xff;
    q.post(4, {{cmd, sizeof set, false}, {ack, 1, true}});
    q.bar_wr(q.notify_at[4], 2, 4);
    cr_assert_eq(q.used_idx(4), 1u, "the control command was answered");
    cr_assert_eq(q.ram[ack], VIRTIO_NET_OK, "both pairs in use");

    q.post(2, {{rx_buf, 2048, true}});
    q.bar_wr(q.notify_at[2], 2, 2);
    uint8_t frame[12 + 60] = {};
    for (unsigned i = 12; i < sizeof frame; i++)
        frame[i] = uint8_t(i * 5 + 1);
    std::memcpy(q.ram + tx_buf, frame, sizeof frame);
    q.post(3, {{tx_buf, sizeof frame, false}});
    q.bar_wr(q.notify_at[3], 2, 3);
    cr_assert_eq(q.used_idx(3), 1u, "transmitq2 was served");
    cr_assert_eq(q.used_idx(2), 1u, "receiveq2 got the frame back");
    cr_assert_eq(q.used_len(2, 0), sizeof frame);
    cr_assert_eq(std::memcmp(q.ram + rx_buf + 12, frame + 12, 60), 0, "the same bytes");
    cr_assert_eq(q.used_idx(0) + q.used_idx(1), 0u, "pair 1 untouched");
    cr_assert_eq(q.cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT_MASK, PCI_STATUS_INTERRUPT_MASK,
                 "used buffer notifications on INTx");
}

// Hostile QEMU: each message below ends the connection (EOF on QEMU's side, nothing
// answered) and the server thread returns.
namespace {
void expect_refused(const std::vector<uint8_t> &m, bool with_ram, const std::vector<int> &extra_fds = {},
                    bool close_after = false)
{
    qemu_peer q;
    if (with_ram)
        q.sync_ram();
    q.send(m, extra_fds);
    if (close_after)
        shutdown(q.sock, SHUT_WR);
    cr_assert(q.closed_by_server());
}
} // namespace

Test(proxy, hostile_oversized_message) { expect_refused(mpq_header(MPQ_PCI_CFGREAD, 4096), true); }
Test(proxy, hostile_unknown_command) { expect_refused(mpq_header(42, 0), true); }
Test(proxy, hostile_ret_from_qemu) { expect_refused(mpq_header(MPQ_RET, 8), true); }
Test(proxy, hostile_wrong_payload_size) { expect_refused(mpq_header(MPQ_BAR_READ, 12), true); }
Test(proxy, hostile_short_message_timeout)
{
    std::vector<uint8_t> m = mpq_conf(MPQ_PCI_CFGREAD, 0, 0, 4);
    m.resize(20); // the rest never comes (message_timeout_s = 1)
    expect_refused(m, true);
}
Test(proxy, hostile_short_message_closed)
{
    std::vector<uint8_t> m = mpq_conf(MPQ_PCI_CFGREAD, 0, 0, 4);
    m.resize(10);
    expect_refused(m, true, {}, true);
}
Test(proxy, hostile_cfg_outside_space) { expect_refused(mpq_conf(MPQ_PCI_CFGREAD, 4094, 0, 4), true); }
Test(proxy, hostile_cfg_bad_length) { expect_refused(mpq_conf(MPQ_PCI_CFGWRITE, 0x40, 0, 3), true); }
Test(proxy, hostile_bar_io_space) { expect_refused(mpq_bar(MPQ_BAR_READ, 0xc000, 0, 2, false), true); }
Test(proxy, hostile_bar_unassigned) { expect_refused(mpq_bar(MPQ_BAR_WRITE, 0xfe000000, 1, 4), true); }
Test(proxy, hostile_bar_bad_size) { expect_refused(mpq_bar(MPQ_BAR_READ, 0xfe000000, 0, 3), true); }
Test(proxy, hostile_irqfd_without_fds) { expect_refused(mpq_header(MPQ_SET_IRQFD, 0), true); }
Test(proxy, hostile_sysmem_overlap)
{
    qemu_peer q;
    q.send(mpq_sysmem({{RAM_GPA, 0x10000, 0}, {RAM_GPA + 0x8000, 0x10000, 0x20000}}), {q.mem, q.mem});
    cr_assert(q.closed_by_server());
}
Test(proxy, hostile_sysmem_exceeds_file)
{
    qemu_peer q;
    q.send(mpq_sysmem({{RAM_GPA, RAM_BYTES, RAM_FILE_OFFSET + 0x1000}}), {q.mem});
    cr_assert(q.closed_by_server());
}
Test(proxy, hostile_sysmem_empty_and_wrapping)
{
    {
        qemu_peer q;
        q.send(mpq_sysmem({{RAM_GPA, 0, 0}}), {q.mem});
        cr_assert(q.closed_by_server());
    }
    qemu_peer q;
    q.send(mpq_sysmem({{~0ull - 0xfff, 0x2000, 0}}), {q.mem});
    cr_assert(q.closed_by_server());
}
// The device's DMA to an address outside the synchronised RAM is the device's error
// (NEEDS_RESET with a named reason), not the connection's: a ring outside RAM.
Test(proxy, dma_outside_ram_needs_reset_connection_stays)
{
    qemu_peer q;
    q.sync_ram();
    q.assign_bar0();
    const uint64_t common = q.vcap_addr(VIRTIO_PCI_CAP_COMMON_CFG);
    const uint8_t drv = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    q.bar_wr(common + VIRTIO_PCI_COMMON_STATUS, 1, drv);
    q.bar_wr(common + VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    q.bar_wr(common + VIRTIO_PCI_COMMON_GF, 4, 1);
    q.bar_wr(common + VIRTIO_PCI_COMMON_STATUS, 1, drv | VIRTIO_STATUS_FEATURES_OK);
    q.bar_wr(common + VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
    q.bar_wr(common + VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000); // below RAM_GPA: not RAM
    q.bar_wr(common + VIRTIO_PCI_COMMON_Q_AVAILLO, 4, 0x2000);
    q.bar_wr(common + VIRTIO_PCI_COMMON_Q_USEDLO, 4, 0x3000);
    q.bar_wr(common + VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    q.bar_wr(common + VIRTIO_PCI_COMMON_STATUS, 1, drv | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    const uint8_t ncap = q.find_vcap(VIRTIO_PCI_CAP_NOTIFY_CFG);
    const uint64_t notify = q.vcap_addr(VIRTIO_PCI_CAP_NOTIFY_CFG) +
                            q.bar_rd(common + VIRTIO_PCI_COMMON_Q_NOFF, 2) * q.cfg_rd(ncap + 16u, 4);
    q.bar_wr(notify, 2, 1);
    cr_assert(q.bar_rd(common + VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

// The viosim binary as a server.
namespace {
// Starts `viosim serve --qemu-proxy DIR/proxy.sock --out DIR` and extra (60 s at most,
// log in DIR/serve.log); its pid.
pid_t start_proxy_server(const char *bin, const std::string &dir, const std::vector<std::string> &extra = {})
{
    const std::string sock = dir + "/proxy.sock";
    std::vector<std::string> args = {bin, "serve", "--qemu-proxy", sock, "--out", dir, "--duration-s", "60"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        // A test that ends abnormally (ctest's timeout kills it) takes its server along;
        // an orphaned server spinning on a bug once filled the disk with its log.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        const std::string log = dir + "/serve.log";
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        std::vector<char *> argv;
        for (std::string &a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(bin, argv.data());
        _exit(127);
    }
    return pid;
}

// Stops the server (SIGTERM), which must exit 0; its stats.json.
json_t *stop_proxy_server(pid_t pid, const std::string &dir)
{
    kill(pid, SIGTERM);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", slurp(dir + "/serve.log").c_str());
    json_error_t e;
    json_t *j = json_load_file((dir + "/stats.json").c_str(), 0, &e);
    cr_assert_not_null(j, "%s", e.text);
    return j;
}

json_t *stat_of(json_t *doc, const char *name)
{
    return json_object_get(json_object_get(json_object_get(doc, "stats"), name), "value");
}
} // namespace

// The binary: `viosim serve --qemu-proxy` refuses MSI-X and 64-bit BARs, withdraws
// ACCESS_PLATFORM whatever else is withdrawn ("Reserved Feature Bits": the device would
// translate the guest's DMA addresses through an IOMMU nothing programs), serves a peer
// on the socket and writes stats.json with the proxy's counters.
Test(proxy, binary_serves_and_writes_stats)
{
    const char *bin = std::getenv("VIOSIM");
    if (!bin)
        cr_skip_test("VIOSIM is not set (run through ctest)");
    const std::string dir = temp_dir(), sock = dir + "/proxy.sock";
    auto run_to_end = [&](const std::vector<std::string> &extra) {
        std::string cmd = std::string(bin) + " serve --qemu-proxy " + sock + " --out " + dir;
        for (const std::string &e : extra)
            cmd += " " + e;
        return std::system((cmd + " >" + dir + "/refused.log 2>&1").c_str());
    };
    cr_assert_neq(run_to_end({"--set", "device.msix=on"}), 0);
    cr_assert(slurp(dir + "/refused.log").find("device.msix") != std::string::npos);
    cr_assert_neq(run_to_end({"--set", "device.bar_width_bits=64"}), 0);

    const pid_t pid = start_proxy_server(bin, dir, {"--set", "device.withdraw_features=EVENT_IDX"});
    {
        qemu_peer q(sock);
        cr_assert_eq(q.cfg_rd(PCI_VENDOR_ID, 2), 0x1af4u);
    }
    json_t *j = stop_proxy_server(pid, dir);
    cr_assert_eq(json_integer_value(stat_of(j, "proxy.cfg_reads")), 1);
    cr_assert_eq(json_integer_value(stat_of(j, "proxy.connections")), 1);
    json_t *w = json_object_get(json_object_get(j, "config"), "device.withdraw_features");
    cr_assert_not_null(w, "config.device.withdraw_features");
    char *text = json_dumps(w, JSON_ENCODE_ANY);
    const std::string withdrawn = text;
    free(text);
    cr_assert(withdrawn.find("EVENT_IDX") != std::string::npos && withdrawn.find("ACCESS_PLATFORM") != std::string::npos,
              "%s", withdrawn.c_str());
    json_decref(j);
}

// stats.json of a proxy session carries what `viosim run` writes for the platform
// (external_host::collect over the session's simulated time: sim.time_ns, link.*, dma.*,
// device.*, conformance.violations), then the proxy's counters, and result.conformance
// and result.negotiated_features as a run gives them. Two connections to one server: the
// second starts from a function-level reset (BAR unassigned, status 0) on the same
// platform, so its simulated time and counters go on; its driver writes num_queues,
// which "Common configuration structure layout" makes read-only for the driver, and the
// violation is named with its section.
Test(proxy, session_stats_are_the_platforms_with_conformance)
{
    const char *bin = std::getenv("VIOSIM");
    if (!bin)
        cr_skip_test("VIOSIM is not set (run through ctest)");
    const std::string dir = temp_dir();
    const pid_t pid = start_proxy_server(bin, dir);
    uint8_t frame[12 + 60] = {};
    for (unsigned i = 12; i < sizeof frame; i++)
        frame[i] = uint8_t(i * 3);
    {
        qemu_peer q(dir + "/proxy.sock");
        q.sync_ram();
        q.set_irqfd();
        q.assign_bar0();
        q.bring_up(1ull << 32, 2);
        const uint64_t rx_buf = 0x40000, tx_buf = 0x50000;
        q.send_through_loopback(frame, sizeof frame, rx_buf, tx_buf);
        cr_assert_eq(q.used_idx(1), 1u, "transmitted before the notification was answered");
        cr_assert_eq(q.used_idx(0), 1u, "and looped back");
        cr_assert_eq(std::memcmp(q.ram + rx_buf + 12, frame + 12, 60), 0);
        cr_assert_geq(q.irq_count(), 1u);
    }
    {
        qemu_peer q(dir + "/proxy.sock");
        q.sync_ram();
        cr_assert_eq(q.cfg_rd(PCI_BAR0, 4) & ~0xfu, 0u, "the new connection finds BAR0 unassigned");
        q.assign_bar0();
        const uint64_t common = q.vcap_addr(VIRTIO_PCI_CAP_COMMON_CFG);
        cr_assert_eq(q.bar_rd(common + VIRTIO_PCI_COMMON_STATUS, 1), 0u, "and the device reset");
        q.bar_wr(common + VIRTIO_PCI_COMMON_NUMQ, 2, 1); // read-only for the driver
    }
    json_t *j = stop_proxy_server(pid, dir);
    for (const char *name : {"sim.time_ns", "link.up.tlps", "link.down.tlps", "link.up.payload_bytes",
                             "dma.reads", "dma.writes", "device.tx.frames", "device.rx.frames",
                             "device.intx_asserts", "conformance.violations", "proxy.connections"})
        cr_assert_not_null(stat_of(j, name), "stats.json has %s", name);
    cr_assert_gt(json_number_value(stat_of(j, "sim.time_ns")), 0.0, "simulated time passed");
    cr_assert_gt(json_integer_value(stat_of(j, "link.up.tlps")), 0, "the device's DMA crossed the link");
    cr_assert_gt(json_integer_value(stat_of(j, "link.down.tlps")), 0, "the accesses crossed the link");
    cr_assert_gt(json_integer_value(stat_of(j, "dma.reads")), 0);
    cr_assert_eq(json_integer_value(stat_of(j, "device.tx.frames")), 1);
    cr_assert_eq(json_integer_value(stat_of(j, "device.rx.frames")), 1);
    cr_assert_geq(json_integer_value(stat_of(j, "device.intx_asserts")), 1);
    cr_assert_eq(json_integer_value(stat_of(j, "proxy.connections")), 2);
    cr_assert_eq(json_integer_value(stat_of(j, "proxy.device_resets")), 2, "one per connection");
    cr_assert_eq(json_integer_value(stat_of(j, "conformance.violations")), 1);
    json_t *result = json_object_get(j, "result");
    json_t *conf = json_object_get(result, "conformance");
    cr_assert_eq(json_integer_value(json_object_get(conf, "violations")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(conf, "by_rule"), "READ_ONLY_FIELD_WRITTEN")), 1,
                 "%s", json_dumps(conf, 0));
    json_t *first = json_array_get(json_object_get(conf, "first"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(first, "rule")), "READ_ONLY_FIELD_WRITTEN");
    cr_assert(std::strstr(json_string_value(json_object_get(first, "section")), "Common configuration"));
    cr_assert_gt(json_number_value(json_object_get(first, "time_ns")), 0.0, "stamped with simulated time");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(result, "negotiated_features"), "VERSION_1")),
                 32, "the first driver's features, kept past the resets");
    json_decref(j);
}

// Hostile input does not outlive its connection: after a peer is refused (a BAR access
// outside every BAR), the next peer of the same process -- on the same platform --
// brings the device up from a function reset and moves a frame as if nothing happened.
Test(proxy, refused_connection_leaves_the_platform_serving)
{
    {
        qemu_peer q;
        q.sync_ram();
        q.assign_bar0();
        q.bring_up(1ull << 32, 2);
        q.post(0, {{0x40000, 2048, true}});
        q.bar_wr(q.notify_at[0], 2, 0); // a receive buffer left with the device
        q.send(mpq_bar(MPQ_BAR_WRITE, 0x1000, 1, 4));
        cr_assert(q.closed_by_server());
    }
    qemu_peer q;
    q.sync_ram();
    q.set_irqfd();
    cr_assert_eq(q.cfg_rd(PCI_COMMAND, 2), 0u, "memory decoding and bus mastering off again");
    q.assign_bar0();
    q.bring_up(1ull << 32, 2);
    const uint64_t rx_buf = 0x60000, tx_buf = 0x70000;
    uint8_t frame[12 + 60] = {};
    frame[20] = 0x5a;
    q.send_through_loopback(frame, sizeof frame, rx_buf, tx_buf);
    cr_assert_eq(q.used_idx(1), 1u);
    cr_assert_eq(q.used_idx(0), 1u, "the frame came back into this connection's buffer");
    cr_assert_eq(q.ram[rx_buf + 20], 0x5a);
    cr_assert_geq(q.irq_count(), 1u);
}
