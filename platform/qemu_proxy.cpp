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
// viosim plays QEMU's remote with the timed platform of `viosim run` (external_host.h:
// the device with its engines, DMA engine, link, root complex and IOMMU; model/vdev.h's
// PCI transport and virtio-net personality inside), its DMA through the guest RAM QEMU
// shares (mapped MAP_SHARED, given to the platform as shared regions; shared_memory.h
// survives a peer that shrinks the file). Each configuration or BAR access enters the
// platform as a TLM transaction at the current simulated time; then the platform runs
// until idle (at most IDLE_BOUND_US of simulated time), so the device's work for the access
// -- a kick's buffers, the frames the backend sends back, their interrupt -- is done
// before the access is answered, as an untimed device's would be; work left at the bound
// goes on between messages, a bound at a time, until the device is idle. Simulated time
// moves only then: the guest's own time between two accesses is not simulated
// (docs/bring-up.md, "Simulated time and the guest's time"). The INTx pin's changes
// reach the interrupt controller at their simulated time (on_intx); a rising edge writes
// the irqfd. The resample eventfd follows KVM's level-triggered irqfd semantics as
// QEMU's own remote does (hw/remote/iohub.c): the host deasserts the line at the guest's
// EOI and signals resample; the device raises it again if its pin is still asserted.
//
// SystemC elaborates once per process: the platform is built at the first connection
// and serves every later one, each starting with a function-level reset (as does
// DEVICE_RESET); its statistics cover the server's life.
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

#include "device_platform.h"
#include "external_host.h"
#include "provenance.h"
#include "shared_memory.h"
#include "stats.h"

extern "C" {
#include "vdev.h"
}

namespace viosim {

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

// After each access the platform runs until idle, but at most this much simulated time:
// a driver that keeps a queue full, or a coalescing timer set far ahead, cannot hold the
// answer; what is left runs in further slices of this length while no message waits.
// (A number, not an sc_time: none may exist before the platform sets the resolution.)
constexpr double IDLE_BOUND_US = 1000;

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
    uint64_t memory_faults = 0;
    uint64_t device_failures = 0; // the device entered NEEDS_RESET
};

// ---- Guest RAM as QEMU shares it ----

struct ram_range {
    uint64_t gpa = 0, size = 0;
    uint8_t *host = nullptr;
    void *map = nullptr;
    size_t map_len = 0;
};

// ---- The platform (one per process) ----

// The platform this process built, and the resolved configuration it was built from.
// Kept to the process's end on purpose (SystemC's own state outlives any owner here).
external_host *g_host = nullptr;
std::string g_host_config;

// The process's platform for cfg: built at the first call; later calls must bring the
// same configuration. Null, with why set, otherwise.
external_host *platform_for(const vs_config &cfg, std::string &why)
{
    json_t *j = config_resolved_json(cfg, false);
    const std::string text = stats_json_text(j);
    json_decref(j);
    if (g_host) {
        if (text != g_host_config) {
            why = "this process's platform was built from another configuration (one per process)";
            return nullptr;
        }
        return g_host;
    }
    std::unique_ptr<external_host> h = external_host::create(cfg, {}, why);
    if (!h)
        return nullptr;
    g_host = h.release();
    g_host_config = text;
    return g_host;
}

// ---- The server ----

class proxy_server {
public:
    proxy_server(const vs_config &cfg, const serve_options &opt, external_host &host)
        : cfg_(cfg), opt_(opt), host_(host)
    {
        host_.on_intx = [this](bool level) { intx_changed(level); };
    }
    ~proxy_server()
    {
        end_connection();
        host_.on_intx = nullptr;
    }
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
    void unmap_ram();
    bool device_reset();
    bool run_device();
    void intx_changed(bool level);
    void signal_irq();
    bool write_stats(std::string &err);

    const vs_config &cfg_;
    const serve_options &opt_;
    external_host &host_;
    proxy_counters ctr_;
    int fd_ = -1;
    std::vector<ram_range> ram_; // the guest RAM as mapped here
    uint8_t payload_[MPQ_PAYLOAD_MAX];
    int irq_fd_ = -1, resample_fd_ = -1;
    bool busy_ = false; // the last run_device stopped at its bound, the device not idle
    bool intx_level_ = false;    // the pin's level as the interrupt controller last saw it
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
    // Each peer finds the function as at power-on (the platform, and its simulated time,
    // go on from the last connection).
    host_.reset_function();
    failure_logged_ = false;
    return run_device();
}

// The platform forgets the guest RAM before it is unmapped.
void proxy_server::unmap_ram()
{
    host_.set_guest_memory({});
    shared_memory_unwatch_all();
    for (ram_range &r : ram_)
        munmap(r.map, r.map_len);
    ram_.clear();
}

void proxy_server::end_connection()
{
    close_fd(fd_);
    close_fd(irq_fd_);
    close_fd(resample_fd_);
    unmap_ram();
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
    unmap_ram();
    const long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < fds.size(); i++) {
        const uint64_t gpa = le64(payload_ + 8 * i);
        const uint64_t size = le64(payload_ + 8 * (MPQ_MAX_FDS + i));
        const uint64_t off = le64(payload_ + 8 * (2 * MPQ_MAX_FDS + i));
        if (size == 0 || gpa + size < gpa || int64_t(off) < 0)
            return fail("SYNC_SYSMEM range %zu is empty, wraps or has a negative offset "
                        "(gpa 0x%llx size 0x%llx offset 0x%llx)",
                        i, (unsigned long long)gpa, (unsigned long long)size, (unsigned long long)off);
        for (const ram_range &r : ram_)
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
        ram_.push_back(r);
        shared_memory_watch(r.map, r.map_len); // at most MPQ_MAX_FDS ranges, all watched
    }
    std::vector<memory_region> regions;
    for (const ram_range &r : ram_)
        regions.push_back({r.gpa, r.size, r.host, true});
    host_.set_guest_memory(regions);
    return true;
}

bool proxy_server::device_reset()
{
    ctr_.device_resets++;
    host_.reset_function();
    failure_logged_ = false;
    return run_device();
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

// The interrupt controller saw INTA# change (external_host::on_intx, inside the
// simulation): a rising edge writes the irqfd.
void proxy_server::intx_changed(bool level)
{
    if (level && !intx_level_)
        signal_irq();
    intx_level_ = level;
}

// Runs the platform until idle (at most IDLE_BOUND_US): the device's work for the access
// just made, and the interrupts it raised. False if the connection ended.
bool proxy_server::run_device()
{
    busy_ = !host_.run_until_idle(sc_core::sc_time(IDLE_BOUND_US, sc_core::SC_US));
    if (shared_memory_faulted()) {
        ctr_.memory_faults++;
        return fail("guest RAM shrank under the device (SIGBUS caught)");
    }
    const pt &tp = host_.platform().dev.kernel().tp;
    if (tp.error != VS_REASON_NONE && !failure_logged_) {
        ctr_.device_failures++;
        failure_logged_ = true;
        logf("device needs reset: %s (queue %u)", vs_reason_name(tp.error), unsigned(tp.error_queue));
    } else if (tp.error == VS_REASON_NONE) {
        failure_logged_ = false;
    }
    return true;
}

bool proxy_server::handle(int32_t cmd, std::vector<int> &fds)
{
    ctr_.messages++;
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
        if (intx_level_)
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
            uint32_t v = 0;
            host_.cfg_read(addr, len, v);
            return run_device() && answer(v);
        }
        ctr_.cfg_writes++;
        host_.cfg_write(addr, len, val);
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
            if (host_.mmio_read(addr, len, v) != external_access::ok)
                return fail("BAR_READ of %u bytes at 0x%llx: outside every BAR", len,
                            (unsigned long long)addr);
            return run_device() && answer(v);
        }
        ctr_.bar_writes++;
        if (host_.mmio_write(addr, len, val) != external_access::ok)
            return fail("BAR_WRITE of %u bytes at 0x%llx: outside every BAR", len,
                        (unsigned long long)addr);
        return run_device() && answer(0);
    }
    }
}

// One poll round: a message (handled and answered) or a resample notification. While the
// device still has work (the last run stopped at IDLE_BOUND_US, not idle), the round does
// not wait: without a message it runs the platform one more bound, so what a kick started
// (a long queue, a coalescing timer, the interrupt at its end) goes on while the guest's
// vCPU does not touch the device, as it would on hardware.
void proxy_server::serve_pass(int timeout_ms)
{
    struct pollfd p[2] = {{fd_, POLLIN, 0}, {resample_fd_, POLLIN, 0}};
    const nfds_t n = resample_fd_ >= 0 ? 2 : 1;
    if (poll(p, n, busy_ ? 0 : timeout_ms) <= 0) {
        if (busy_ && fd_ >= 0)
            run_device();
        return;
    }
    if (n == 2 && (p[1].revents & POLLIN)) {
        uint64_t count;
        if (read(resample_fd_, &count, sizeof count) == ssize_t(sizeof count)) {
            ctr_.resamples++;
            if (intx_level_)
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

// stats.json: the platform's statistics as `viosim run` writes them (over the simulated
// time of every connection), then the proxy's own counters; result.conformance and the
// negotiated features as a run gives them.
bool proxy_server::write_stats(std::string &err)
{
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    run_result r = host_.collect();
    stats_table &st = r.stats;
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
    st.add_u64("proxy.device_resets", "count", stat_better::neutral,
               "function-level resets: DEVICE_RESET messages and the one each connection starts with",
               ctr_.device_resets + ctr_.connections);
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
    st.add_u64("proxy.dma_errors", "count", stat_better::lower,
               "device accesses to guest addresses outside the synchronised RAM",
               host_.platform().mem.errors);
    st.add_u64("proxy.memory_faults", "count", stat_better::lower,
               "guest-RAM accesses refused because the peer shrank a file (SIGBUS caught; the "
               "connection was closed)",
               ctr_.memory_faults);
    st.add_f64("wall.seconds", "s", stat_better::neutral, "wall-clock time the server ran", wall);
    json_t *result = json_object();
    json_object_set_new(result, "front_end", json_string("qemu-proxy"));
    json_object_set_new(result, "device_error", json_string(r.device_error.c_str()));
    json_object_set_new(result, "conformance",
                        conformance_json(r.violations_total, r.violations, r.violations_by_rule));
    json_object_set_new(result, "negotiated_features", config_features_json(r.negotiated_features));
    json_t *config = config_resolved_json(cfg_, false);
    json_t *provenance = provenance_json(cfg_);
    const std::string path = (std::filesystem::path(opt_.out_dir) / "stats.json").string();
    const bool ok = stats_write_json(path, provenance, config, result, st, err);
    json_decref(provenance);
    json_decref(config);
    json_decref(result);
    if (ok) {
        const vnet_stats &n = host_.platform().dev.kernel().net.stats;
        logf("wrote %s (%llu connections, tx %llu frames, rx %llu frames, %llu violations)", path.c_str(),
             (unsigned long long)ctr_.connections, (unsigned long long)n.tx_frames,
             (unsigned long long)n.rx_frames, (unsigned long long)r.violations_total);
    }
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
    logf("listening on %s for QEMU's x-pci-proxy-dev (timed platform; device.msix=off, %s BARs)",
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
    std::string why;
    external_host *host = platform_for(cfg, why);
    if (!host) {
        serve_log("error: %s", why.c_str());
        return SERVE_EXIT_FAILED;
    }
    proxy_server s(cfg, opt, *host);
    return s.run();
}

void qemu_proxy_serve_connection(const vs_config &cfg, const serve_options &opt, int fd)
{
    shared_memory_install_sigbus_handler();
    std::string why;
    external_host *host = platform_for(cfg, why);
    if (!host) {
        serve_log("connection closed: %s", why.c_str());
        close(fd);
        return;
    }
    proxy_server s(cfg, opt, *host);
    s.serve_connection(fd);
}

} // namespace viosim
