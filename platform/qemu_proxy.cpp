// qemu_proxy.cpp -- the remote end of QEMU's x-pci-proxy-dev (see qemu_proxy.h).
//
// Protocol: QEMU's private mpqemu-link, written from our reading of QEMU's
// include/hw/remote/mpqemu-link.h (the message layout), hw/remote/proxy.c (what the proxy
// sends and when it waits for an answer), hw/remote/mpqemu-link.c (framing and the
// validity rules) and hw/remote/message.c (what QEMU's own remote answers). On x86-64
// every message is a 16-byte header -- the command as a 32-bit int, 4 bytes of padding,
// the payload size as a 64-bit size_t -- then the payload, at most as large as the
// largest payload (SYNC_SYSMEM's, 192 bytes); file descriptors travel as SCM_RIGHTS
// beside the header. The proxy sends:
//   SYNC_SYSMEM   (fds: one per guest-RAM range, at most 8; payload: their guest-physical
//                 addresses, sizes and file offsets). The whole map, replacing the last
//                 one, resent whenever the guest's memory map changes. No answer.
//   PCI_CFGREAD / PCI_CFGWRITE (payload: offset, value, length): the guest's
//                 configuration accesses (the proxy keeps a copy but forwards every one).
//   BAR_READ / BAR_WRITE (payload: guest-physical address, value, size, memory-or-I/O):
//                 the guest's accesses to a BAR, at the address the guest assigned it.
//   SET_IRQFD     (fds: the INTx irqfd and its resample eventfd; no payload). No answer.
//   DEVICE_RESET  (no payload): a system reset.
// Each of the accesses and the reset waits for a RET message (8-byte value) from the
// remote; the guest's vCPU stalls until then.
//
// viosim plays QEMU's remote: one function (model/vdev.h: the PCI transport with the
// virtio-net personality), its configuration space and BARs answered by the transport,
// its DMA through the guest RAM QEMU shares (mapped MAP_SHARED; shared_memory.h survives
// a peer that shrinks the file). Untimed: after every write (configuration or BAR) the
// device's queues are processed until none moves, before the write is answered; then
// the INTx pin is compared with what was delivered, and a rising edge writes the irqfd.
// The resample eventfd follows KVM's level-triggered irqfd semantics as QEMU's own remote
// does (hw/remote/iohub.c): the host deasserts the line at the guest's EOI and signals
// resample; the device raises it again if its pin is still asserted.
//
// Hostile peers: a message that is short (the peer stops mid-message for
// message_timeout_s, or closes), oversized, of an unknown command, with the wrong payload
// size or file descriptors, a configuration access outside the 4 KiB space or of a size
// other than 1, 2 or 4, a BAR access of a size other than 1, 2, 4 or 8, to I/O space or
// to an address no BAR claims, or a memory map whose ranges overlap, are empty, wrap, or
// exceed their file, ends the connection with one log line; the server then waits for
// the next peer. Nothing the peer sends is trusted before it is checked.
#include "qemu_proxy.h"

#include <jansson.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provenance.h"
#include "shared_memory.h"
#include "stats.h"

extern "C" {
#include "vdev.h"
}

namespace {

// ---- mpqemu-link (include/hw/remote/mpqemu-link.h: enum MPQemuCmd, in order) ----

enum mpq_cmd : int32_t {
    MPQ_SYNC_SYSMEM = 0,
    MPQ_RET = 1,
    MPQ_PCI_CFGWRITE = 2,
    MPQ_PCI_CFGREAD = 3,
    MPQ_BAR_WRITE = 4,
    MPQ_BAR_READ = 5,
    MPQ_SET_IRQFD = 6,
    MPQ_DEVICE_RESET = 7,
    MPQ_CMD_COUNT = 8,
};

constexpr unsigned MPQ_MAX_FDS = 8; // REMOTE_MAX_FDS
constexpr unsigned MPQ_HEADER_BYTES = 16;
// Payloads, little-endian, as the x86-64 compiler lays out QEMU's structs.
constexpr unsigned MPQ_SYSMEM_BYTES = 3 * 8 * MPQ_MAX_FDS; // gpas[8], sizes[8], offsets[8]
constexpr unsigned MPQ_CONF_BYTES = 12;                     // u32 addr, u32 val, int len
constexpr unsigned MPQ_BAR_BYTES = 24;                      // u64 addr, u64 val, u32 size, bool memory
constexpr unsigned MPQ_RET_BYTES = 8;                       // u64
constexpr unsigned MPQ_PAYLOAD_MAX = MPQ_SYSMEM_BYTES;      // the largest union member
constexpr uint32_t PCI_CONFIG_BYTES = 4096;

const char *cmd_name(int32_t c)
{
    static const char *const names[] = {"SYNC_SYSMEM", "RET", "PCI_CFGWRITE", "PCI_CFGREAD",
                                        "BAR_WRITE", "BAR_READ", "SET_IRQFD", "DEVICE_RESET"};
    return c >= 0 && c < MPQ_CMD_COUNT ? names[c] : "unknown";
}

uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
uint32_t le32(const uint8_t *p)
{
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// Processing after a write: steps per queue per pass and passes at most (a driver that
// keeps a queue full cannot hold the server; the rest waits for its next write).
constexpr unsigned STEP_BUDGET = 256;
constexpr unsigned PASS_MAX = 64;

// Log lines, stop signals and descriptors as both serve front ends handle them.
constexpr auto &logf = serve_log;
constexpr auto &close_fd = serve_close_fd;

// ---- Counters over the server's life ----

struct proxy_counters {
    uint64_t connections = 0, connections_failed = 0, messages = 0;
    uint64_t memory_syncs = 0, cfg_reads = 0, cfg_writes = 0, bar_reads = 0, bar_writes = 0;
    uint64_t device_resets = 0;
    uint64_t irq_signals = 0;  // irqfd writes (rising edges and resamples still asserted)
    uint64_t irq_no_fd = 0;    // rising edges with no irqfd given yet
    uint64_t resamples = 0;    // resample eventfd reads
    uint64_t dma_errors = 0, memory_faults = 0;
    uint64_t device_failures = 0; // the device entered NEEDS_RESET
    // Of the device, summed over connections (each gets a new one).
    uint64_t tx_frames = 0, rx_frames = 0, rx_no_buffer = 0, rx_dropped_too_big = 0;
    uint64_t intx_asserts = 0;
    uint64_t dma_reads[VS_DMA_KIND_COUNT] = {}, dma_writes[VS_DMA_KIND_COUNT] = {};
    uint64_t dma_read_bytes = 0, dma_write_bytes = 0;
};

// ---- Guest RAM as QEMU shares it ----

struct ram_range {
    uint64_t gpa = 0, size = 0;
    uint8_t *host = nullptr;
    void *map = nullptr;
    size_t map_len = 0;
};

struct guest_ram {
    std::vector<ram_range> ranges;
    proxy_counters *ctr = nullptr;
    bool faulted = false;
    // A write since the last full fence: the next read must not pass it (a store then a
    // load needs a full fence, even on x86), since the guest's vCPUs run while the
    // device does. Where it matters: the device's request for notifications written,
    // then the ring re-checked (pt_run_idle's arm: a driver adding a buffer right then
    // would see the old suppression, not kick, and both sides would wait: a control
    // command Linux spins on for ever); the used index published, then the driver's
    // event suppression read.
    bool write_pending = false;

    uint8_t *at(uint64_t gpa, uint64_t len) const
    {
        for (const ram_range &r : ranges)
            if (gpa >= r.gpa && len <= r.size && gpa - r.gpa <= r.size - len)
                return r.host + (gpa - r.gpa);
        return nullptr;
    }
    void unmap()
    {
        shared_memory_unwatch_all();
        for (ram_range &r : ranges)
            munmap(r.map, r.map_len);
        ranges.clear();
        faulted = false;
    }
};

// After a copy: a fault of shrunk memory (shared_memory.h) refuses the access like one
// outside the RAM; run_device then ends the connection.
bool ram_faulted(guest_ram *m)
{
    if (!shared_memory_faulted())
        return false;
    m->faulted = true;
    m->ctr->memory_faults++;
    return true;
}

enum vs_dma_status ram_read(void *ctx, uint64_t addr, void *dst, uint32_t len, enum vs_dma_kind kind)
{
    auto *m = static_cast<guest_ram *>(ctx);
    const uint8_t *p = m->at(addr, len);
    if (!p) {
        m->ctr->dma_errors++;
        return VS_DMA_OUT_OF_RANGE;
    }
    if (m->write_pending) {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        m->write_pending = false;
    }
    shared_memory_load(dst, p, len, kind == VS_DMA_DESC_READ);
    if (ram_faulted(m))
        return VS_DMA_OUT_OF_RANGE;
    m->ctr->dma_reads[kind]++;
    m->ctr->dma_read_bytes += len;
    return VS_DMA_OK;
}

enum vs_dma_status ram_write(void *ctx, uint64_t addr, const void *src, uint32_t len,
                             enum vs_dma_kind kind)
{
    auto *m = static_cast<guest_ram *>(ctx);
    uint8_t *p = m->at(addr, len);
    if (!p) {
        m->ctr->dma_errors++;
        return VS_DMA_OUT_OF_RANGE;
    }
    shared_memory_store(p, src, len);
    if (ram_faulted(m))
        return VS_DMA_OUT_OF_RANGE;
    m->write_pending = true;
    m->ctr->dma_writes[kind]++;
    m->ctr->dma_write_bytes += len;
    return VS_DMA_OK;
}

// ---- The server ----

class proxy_server {
public:
    proxy_server(const vs_config &cfg, const serve_options &opt) : cfg_(cfg), opt_(opt)
    {
        ram_.ctr = &ctr_;
        ops_ = {ram_read, ram_write, &ram_};
    }
    ~proxy_server() { end_connection(); }
    proxy_server(const proxy_server &) = delete;
    proxy_server &operator=(const proxy_server &) = delete;
    int run();
    void serve_connection(int fd);

private:
    bool start_connection(int fd);
    void end_connection();
    bool fail(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void serve_pass(int timeout_ms);
    bool receive(int32_t &cmd, std::vector<int> &fds);
    bool recv_bytes(uint8_t *dst, size_t len, std::vector<int> &fds, bool first);
    bool handle(int32_t cmd, std::vector<int> &fds);
    bool sync_sysmem(const std::vector<int> &fds);
    bool answer(uint64_t value);
    bool device_reset();
    bool run_device();
    void update_intx();
    void signal_irq();
    void fold_device_counters();
    bool write_stats(std::string &err);

    const vs_config &cfg_;
    const serve_options &opt_;
    proxy_counters ctr_;
    int fd_ = -1;
    std::unique_ptr<vdev> dev_;
    bool dev_live_ = false;
    guest_ram ram_;
    struct vs_guest_ops ops_;
    uint8_t payload_[MPQ_PAYLOAD_MAX];
    int irq_fd_ = -1, resample_fd_ = -1;
    bool intx_delivered_ = false;    // the pin's level as last seen
    uint64_t intx_edges_seen_ = 0;   // stats.intx_asserts as last seen
    bool failure_logged_ = false;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

bool proxy_server::fail(const char *fmt, ...)
{
    char msg[512];
    std::va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    logf("connection closed: %s", msg);
    ctr_.connections_failed++;
    end_connection();
    return false;
}

bool proxy_server::start_connection(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fd_ = fd;
    ctr_.connections++;
    dev_ = std::make_unique<vdev>();
    if (!vdev_init(dev_.get(), &cfg_.dev)) {
        dev_.reset();
        return fail("cannot allocate the device");
    }
    dev_live_ = true;
    intx_delivered_ = false;
    intx_edges_seen_ = 0;
    failure_logged_ = false;
    return true;
}

void proxy_server::fold_device_counters()
{
    if (!dev_live_)
        return;
    const struct vnet_stats &n = dev_->net.stats;
    ctr_.tx_frames += n.tx_frames;
    ctr_.rx_frames += n.rx_frames;
    ctr_.rx_no_buffer += n.rx_no_buffer;
    ctr_.rx_dropped_too_big += n.rx_dropped_too_big;
    ctr_.intx_asserts += dev_->tp.stats.intx_asserts;
}

void proxy_server::end_connection()
{
    close_fd(fd_);
    close_fd(irq_fd_);
    close_fd(resample_fd_);
    ram_.unmap();
    if (dev_live_) {
        fold_device_counters();
        vdev_fini(dev_.get());
        dev_live_ = false;
    }
    dev_.reset();
}

// Reads exactly len bytes. The first byte of a message may wait as long as the peer
// likes (the caller polled); the rest must come within message_timeout_s. File
// descriptors arriving with any of the bytes are collected in fds.
bool proxy_server::recv_bytes(uint8_t *dst, size_t len, std::vector<int> &fds, bool first)
{
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(opt_.message_timeout_s));
    size_t have = 0;
    while (have < len) {
        struct iovec iov = {dst + have, len - have};
        union {
            char buf[CMSG_SPACE(sizeof(int) * (MPQ_MAX_FDS + 1))];
            struct cmsghdr align;
        } control;
        struct msghdr mh;
        std::memset(&mh, 0, sizeof mh);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = control.buf;
        mh.msg_controllen = sizeof control.buf;
        const ssize_t n = recvmsg(fd_, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n > 0 || (n == 0 && mh.msg_controllen > 0)) {
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                    const size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                    for (size_t j = 0; j < k; j++) {
                        int f;
                        std::memcpy(&f, CMSG_DATA(c) + j * sizeof(int), sizeof f);
                        fds.push_back(f);
                    }
                }
            if (mh.msg_flags & MSG_CTRUNC)
                return fail("more file descriptors than a message carries (at most %u)", MPQ_MAX_FDS);
        }
        if (n > 0) {
            have += size_t(n);
            continue;
        }
        if (n == 0) {
            if (first && have == 0 && fds.empty()) {
                logf("peer disconnected");
                end_connection();
                return false;
            }
            return fail("short message: the peer closed after %zu of %zu bytes", have, len);
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return fail("cannot read: %s", std::strerror(errno));
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline || serve_stop_requested())
            return fail("short message: %zu of %zu bytes within %g s", have, len, opt_.message_timeout_s);
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
        struct pollfd p = {fd_, POLLIN, 0};
        poll(&p, 1, int(std::min<long long>(left + 1, 200)));
    }
    return true;
}

bool proxy_server::receive(int32_t &cmd, std::vector<int> &fds)
{
    uint8_t hdr[MPQ_HEADER_BYTES];
    if (!recv_bytes(hdr, sizeof hdr, fds, true))
        return false;
    cmd = int32_t(le32(hdr));
    const uint64_t size = le64(hdr + 8);
    if (size > MPQ_PAYLOAD_MAX)
        return fail("oversized message: %s with %llu payload bytes (at most %u)", cmd_name(cmd),
                    (unsigned long long)size, MPQ_PAYLOAD_MAX);
    // The payload size and descriptor count each command carries (mpqemu_msg_valid,
    // stricter: no descriptors where none belong), checked before the payload is read.
    uint32_t want_size = 0;
    size_t want_fds = 0;
    switch (cmd) {
    case MPQ_SYNC_SYSMEM:
        want_size = MPQ_SYSMEM_BYTES;
        want_fds = std::clamp<size_t>(fds.size(), 1, MPQ_MAX_FDS);
        break;
    case MPQ_PCI_CFGWRITE:
    case MPQ_PCI_CFGREAD:
        want_size = MPQ_CONF_BYTES;
        break;
    case MPQ_BAR_WRITE:
    case MPQ_BAR_READ:
        want_size = MPQ_BAR_BYTES;
        break;
    case MPQ_SET_IRQFD:
        want_fds = 2;
        break;
    case MPQ_DEVICE_RESET:
        break;
    default: // RET included: the remote answers, it is never asked
        return fail("unknown command %d (%s)", int(cmd), cmd_name(cmd));
    }
    if (size != want_size)
        return fail("%s with %llu payload bytes (expected %u)", cmd_name(cmd), (unsigned long long)size,
                    want_size);
    if (size != 0 && !recv_bytes(payload_, uint32_t(size), fds, false))
        return false;
    if (fds.size() != want_fds)
        return fail("%s with %zu file descriptors (expected %zu)", cmd_name(cmd), fds.size(), want_fds);
    return true;
}

bool proxy_server::answer(uint64_t value)
{
    uint8_t buf[MPQ_HEADER_BYTES + MPQ_RET_BYTES] = {};
    buf[0] = uint8_t(MPQ_RET);
    buf[8] = MPQ_RET_BYTES;
    for (unsigned i = 0; i < 8; i++)
        buf[MPQ_HEADER_BYTES + i] = uint8_t(value >> (8 * i));
    // Never blocks: a peer that does not read its answers is refused, not waited for.
    const ssize_t n = send(fd_, buf, sizeof buf, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n != ssize_t(sizeof buf))
        return fail("cannot send RET: %s", n < 0 ? std::strerror(errno) : "short write");
    return true;
}

// SYNC_SYSMEM: the whole guest-RAM map, replacing the previous one.
bool proxy_server::sync_sysmem(const std::vector<int> &fds)
{
    ctr_.memory_syncs++;
    ram_.unmap();
    const long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < fds.size(); i++) {
        const uint64_t gpa = le64(payload_ + 8 * i);
        const uint64_t size = le64(payload_ + 8 * (MPQ_MAX_FDS + i));
        const uint64_t off = le64(payload_ + 8 * (2 * MPQ_MAX_FDS + i));
        if (size == 0 || gpa + size < gpa || int64_t(off) < 0)
            return fail("SYNC_SYSMEM range %zu is empty, wraps or has a negative offset "
                        "(gpa 0x%llx size 0x%llx offset 0x%llx)",
                        i, (unsigned long long)gpa, (unsigned long long)size, (unsigned long long)off);
        for (const ram_range &r : ram_.ranges)
            if (gpa < r.gpa + r.size && r.gpa < gpa + size)
                return fail("SYNC_SYSMEM range %zu [0x%llx, 0x%llx) overlaps [0x%llx, 0x%llx)", i,
                            (unsigned long long)gpa, (unsigned long long)(gpa + size),
                            (unsigned long long)r.gpa, (unsigned long long)(r.gpa + r.size));
        struct stat st;
        if (fstat(fds[i], &st) != 0 || !S_ISREG(st.st_mode))
            return fail("SYNC_SYSMEM range %zu: the descriptor is not a memory file", i);
        if (off + size < off || off + size > uint64_t(st.st_size))
            return fail("SYNC_SYSMEM range %zu exceeds its file (offset 0x%llx + size 0x%llx > 0x%llx bytes)",
                        i, (unsigned long long)off, (unsigned long long)size,
                        (unsigned long long)st.st_size);
        if (opt_.require_sealed_memory) {
            const int seals = fcntl(fds[i], F_GET_SEALS);
            if (seals < 0 || !(seals & F_SEAL_SHRINK))
                return fail("SYNC_SYSMEM range %zu: the file is not sealed against shrinking "
                            "(--require-sealed-memory)", i);
        }
        const uint64_t lead = off % uint64_t(page);
        ram_range r;
        r.gpa = gpa;
        r.size = size;
        r.map_len = size_t(size + lead);
        r.map = mmap(nullptr, r.map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], off_t(off - lead));
        if (r.map == MAP_FAILED)
            return fail("SYNC_SYSMEM range %zu: cannot map 0x%llx bytes: %s", i,
                        (unsigned long long)size, std::strerror(errno));
        r.host = static_cast<uint8_t *>(r.map) + lead;
        ram_.ranges.push_back(r);
        shared_memory_watch(r.map, r.map_len); // at most MPQ_MAX_FDS ranges, all watched
    }
    return true;
}

bool proxy_server::device_reset()
{
    ctr_.device_resets++;
    fold_device_counters();
    vdev_fini(dev_.get());
    dev_live_ = false;
    if (!vdev_init(dev_.get(), &cfg_.dev))
        return fail("cannot allocate the device");
    dev_live_ = true;
    intx_edges_seen_ = 0;
    failure_logged_ = false;
    update_intx();
    return true;
}

void proxy_server::signal_irq()
{
    if (irq_fd_ < 0) {
        ctr_.irq_no_fd++;
        return;
    }
    const uint64_t one = 1;
    if (write(irq_fd_, &one, sizeof one) == ssize_t(sizeof one))
        ctr_.irq_signals++;
}

// After any call into the device: a rising edge of INTA# (also one that fell and rose
// again within the call: intx_asserts counts them) writes the irqfd.
void proxy_server::update_intx()
{
    const bool line = pt_intx_asserted(&dev_->tp);
    const uint64_t edges = dev_->tp.stats.intx_asserts;
    if (line && (!intx_delivered_ || edges != intx_edges_seen_))
        signal_irq();
    intx_delivered_ = line;
    intx_edges_seen_ = edges;
}

// Runs every live queue until none moves (pt_run_idle: every pair of a multi-pair
// device, the control queue, within the budget), and takes the notification decisions
// coalescing holds for later (untimed: a held decision's max_usecs elapses at once).
// False if the connection ended.
bool proxy_server::run_device()
{
    vdev &d = *dev_;
    struct pt_idle run = {};
    run.queue_ops = [](void *ctx, uint16_t) { return static_cast<const vs_guest_ops *>(ctx); };
    run.ctx = &ops_;
    run.rounds_max = PASS_MAX;
    run.steps_max = STEP_BUDGET;
    pt_run_idle(&d.tp, &run);
    for (uint16_t q = 0; q < d.tp.num_queues && !ram_.faulted; q++) {
        uint32_t usecs, window;
        if (vnet_coal_timer(&d.net, q, &usecs, &window))
            vnet_coal_expire(&d.net, q, window, &ops_);
    }
    if (ram_.faulted)
        return fail("guest RAM shrank under the device (SIGBUS caught)");
    if (d.tp.error != VS_REASON_NONE && !failure_logged_) {
        ctr_.device_failures++;
        failure_logged_ = true;
        logf("device needs reset: %s (queue %u)", vs_reason_name(d.tp.error), unsigned(d.tp.error_queue));
    } else if (d.tp.error == VS_REASON_NONE) {
        failure_logged_ = false;
    }
    update_intx();
    return true;
}

bool proxy_server::handle(int32_t cmd, std::vector<int> &fds)
{
    ctr_.messages++;
    pt &tp = dev_->tp;
    switch (cmd) {
    case MPQ_SYNC_SYSMEM:
        return sync_sysmem(fds);
    case MPQ_SET_IRQFD:
        close_fd(irq_fd_);
        close_fd(resample_fd_);
        irq_fd_ = fds[0];
        resample_fd_ = fds[1];
        fds.clear(); // kept
        fcntl(resample_fd_, F_SETFL, fcntl(resample_fd_, F_GETFL) | O_NONBLOCK);
        if (pt_intx_asserted(&tp))
            signal_irq();
        return true;
    case MPQ_DEVICE_RESET:
        return device_reset() && answer(0);
    case MPQ_PCI_CFGREAD:
    case MPQ_PCI_CFGWRITE: {
        const uint32_t addr = le32(payload_), val = le32(payload_ + 4), len = le32(payload_ + 8);
        if ((len != 1 && len != 2 && len != 4) || addr >= PCI_CONFIG_BYTES || len > PCI_CONFIG_BYTES - addr)
            return fail("%s of %d bytes at 0x%x, outside the configuration space or of a bad size",
                        cmd_name(cmd), int32_t(len), addr);
        if (cmd == MPQ_PCI_CFGREAD) {
            ctr_.cfg_reads++;
            const uint32_t v = pt_cfg_read(&tp, addr, len);
            update_intx();
            return answer(v);
        }
        ctr_.cfg_writes++;
        pt_cfg_write(&tp, addr, len, val);
        return run_device() && answer(0);
    }
    default: { // BAR_READ, BAR_WRITE
        const uint64_t addr = le64(payload_), val = le64(payload_ + 8);
        const uint32_t len = le32(payload_ + 16);
        const bool memory = payload_[20] != 0;
        if (len != 1 && len != 2 && len != 4 && len != 8)
            return fail("%s of %u bytes at 0x%llx (1, 2, 4 or 8)", cmd_name(cmd), len,
                        (unsigned long long)addr);
        if (!memory)
            return fail("%s in I/O space at 0x%llx: the function has no I/O BAR", cmd_name(cmd),
                        (unsigned long long)addr);
        if (cmd == MPQ_BAR_READ) {
            ctr_.bar_reads++;
            uint64_t v = 0;
            if (!pt_mmio_read(&tp, addr, len, &v))
                return fail("BAR_READ of %u bytes at 0x%llx: outside every BAR", len,
                            (unsigned long long)addr);
            update_intx(); // an ISR read deasserts the pin
            return answer(v);
        }
        ctr_.bar_writes++;
        uint16_t kicked;
        if (!pt_mmio_write(&tp, addr, len, val, &kicked))
            return fail("BAR_WRITE of %u bytes at 0x%llx: outside every BAR", len,
                        (unsigned long long)addr);
        return run_device() && answer(0);
    }
    }
}

// One poll round: a message (handled and answered) or a resample notification.
void proxy_server::serve_pass(int timeout_ms)
{
    struct pollfd p[2] = {{fd_, POLLIN, 0}, {resample_fd_, POLLIN, 0}};
    const nfds_t n = resample_fd_ >= 0 ? 2 : 1;
    if (poll(p, n, timeout_ms) <= 0)
        return;
    if (n == 2 && (p[1].revents & POLLIN)) {
        uint64_t count;
        if (read(resample_fd_, &count, sizeof count) == ssize_t(sizeof count)) {
            ctr_.resamples++;
            if (pt_intx_asserted(&dev_->tp))
                signal_irq();
        }
    }
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
        return;
    int32_t cmd = 0;
    std::vector<int> fds;
    if (receive(cmd, fds))
        handle(cmd, fds);
    for (int f : fds) // whatever was not kept
        close(f);
}

bool proxy_server::write_stats(std::string &err)
{
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    stats_table st;
    st.add_u64("proxy.connections", "count", stat_better::neutral, "QEMU proxies that connected",
               ctr_.connections);
    st.add_u64("proxy.connections_failed", "count", stat_better::lower,
               "connections closed for bad input (one log line each)", ctr_.connections_failed);
    st.add_u64("proxy.messages", "count", stat_better::neutral, "mpqemu-link messages received",
               ctr_.messages);
    st.add_u64("proxy.memory_syncs", "count", stat_better::neutral,
               "SYNC_SYSMEM messages (guest-RAM maps) taken", ctr_.memory_syncs);
    st.add_u64("proxy.cfg_reads", "count", stat_better::neutral, "configuration-space reads answered",
               ctr_.cfg_reads);
    st.add_u64("proxy.cfg_writes", "count", stat_better::neutral, "configuration-space writes taken",
               ctr_.cfg_writes);
    st.add_u64("proxy.bar_reads", "count", stat_better::neutral, "BAR reads answered", ctr_.bar_reads);
    st.add_u64("proxy.bar_writes", "count", stat_better::neutral, "BAR writes taken", ctr_.bar_writes);
    st.add_u64("proxy.device_resets", "count", stat_better::neutral, "DEVICE_RESET messages",
               ctr_.device_resets);
    st.add_u64("proxy.device_failures", "count", stat_better::lower,
               "times the device entered DEVICE_NEEDS_RESET (the log line names the reason)",
               ctr_.device_failures);
    st.add_u64("proxy.irq_signals", "count", stat_better::neutral,
               "INTx irqfd writes (rising edges, and resamples that found the pin still asserted)",
               ctr_.irq_signals);
    st.add_u64("proxy.irq_no_fd", "count", stat_better::lower,
               "INTx rising edges before the proxy gave an irqfd (SET_IRQFD)", ctr_.irq_no_fd);
    st.add_u64("proxy.resamples", "count", stat_better::neutral, "resample eventfd notifications read",
               ctr_.resamples);
    st.add_u64("proxy.intx_asserts", "count", stat_better::neutral, "rising edges of the device's INTA# pin",
               ctr_.intx_asserts);
    st.add_u64("proxy.dma_errors", "count", stat_better::lower,
               "device accesses to guest addresses outside the synchronised RAM", ctr_.dma_errors);
    st.add_u64("proxy.memory_faults", "count", stat_better::lower,
               "guest-RAM accesses refused because the peer shrank a file (SIGBUS caught; the "
               "connection was closed)",
               ctr_.memory_faults);
    stats_add_device_frames(st, {ctr_.tx_frames, ctr_.rx_frames, ctr_.rx_no_buffer, ctr_.rx_dropped_too_big});
    stats_add_device_dma(st, ctr_.dma_reads, ctr_.dma_writes, ctr_.dma_read_bytes, ctr_.dma_write_bytes);
    st.add_f64("wall.seconds", "s", stat_better::neutral, "wall-clock time the server ran", wall);
    json_t *result = json_object();
    json_object_set_new(result, "front_end", json_string("qemu-proxy"));
    json_t *config = config_resolved_json(cfg_, false);
    json_t *provenance = provenance_json(cfg_);
    const std::string path = (std::filesystem::path(opt_.out_dir) / "stats.json").string();
    const bool ok = stats_write_json(path, provenance, config, result, st, err);
    json_decref(provenance);
    json_decref(config);
    json_decref(result);
    if (ok)
        logf("wrote %s (%llu connections, tx %llu frames, rx %llu frames)", path.c_str(),
             (unsigned long long)ctr_.connections, (unsigned long long)ctr_.tx_frames,
             (unsigned long long)ctr_.rx_frames);
    return ok;
}

int proxy_server::run()
{
    std::string err;
    const int listen_fd = shared_listen_unix(opt_.socket_path, opt_.socket_mode, err);
    if (listen_fd < 0) {
        logf("error: %s", config_escaped(err).c_str());
        return SERVE_EXIT_PATH;
    }
    logf("listening on %s for QEMU's x-pci-proxy-dev (untimed; device.msix=off, %s BARs)",
         config_escaped(opt_.socket_path).c_str(), cfg_.dev.bars_32bit ? "32-bit" : "64-bit");
    std::fflush(stderr);
    const auto deadline = start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                       std::chrono::duration<double>(opt_.duration_s));
    while (!serve_stop_requested()) {
        if (opt_.duration_s > 0 && std::chrono::steady_clock::now() >= deadline)
            break;
        if (fd_ < 0) {
            struct pollfd p = {listen_fd, POLLIN, 0};
            if (poll(&p, 1, 200) <= 0)
                continue;
            const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            if (start_connection(fd))
                logf("proxy connected");
            continue;
        }
        serve_pass(200);
    }
    end_connection();
    close(listen_fd);
    unlink(opt_.socket_path.c_str());
    if (!write_stats(err)) {
        logf("error: %s", err.c_str());
        return SERVE_EXIT_FAILED;
    }
    return 0;
}

void proxy_server::serve_connection(int fd)
{
    if (!start_connection(fd))
        return;
    while (fd_ >= 0)
        serve_pass(-1);
}

} // namespace

int qemu_proxy_serve(const vs_config &cfg, const serve_options &opt)
{
    serve_install_signals();
    proxy_server s(cfg, opt);
    return s.run();
}

void qemu_proxy_serve_connection(const vs_config &cfg, const serve_options &opt, int fd)
{
    shared_memory_install_sigbus_handler();
    proxy_server s(cfg, opt);
    s.serve_connection(fd);
}
