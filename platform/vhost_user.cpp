// vhost_user.cpp -- the vhost-user back end (see vhost_user.h).
//
// Protocol (written from the public description of vhost-user, QEMU's
// docs/interop/vhost-user.rst): every message is a 12-byte header (request code,
// flags with the version 1 in bits 0-1, bit 2 "reply", bit 3 "need reply"; payload
// size) and a payload; file descriptors travel beside the header as SCM_RIGHTS
// ancillary data. The front end owns the driver and the PCI function; viosim plays the
// device: the same transport and virtio-net personality as a simulation
// (model/pci_transport.h, model/virtio_net.h), reached through the transport's calls
// for a front end without registers (pt_fe_*): SET_FEATURES attaches, SET_VRING_KICK
// starts a queue at SET_VRING_BASE's position, GET_VRING_BASE stops it and reads the
// position back, and the transport's interrupt outbox becomes writes to the call
// eventfds. Guest memory is the front end's shared memory, mapped from the descriptors
// it passes with the memory table, and every access goes through a struct
// vs_guest_ops that checks it against the regions (an address outside every region is
// a DMA error that puts the device in NEEDS_RESET with a named reason, never a crash).
//
// Queue pairs (device.queue_pairs_count = N, as for `viosim run`): one function with N
// pairs, offering VIRTIO_NET_F_MQ when N > 1 (GET_QUEUE_NUM answers N). Ring i of the
// front end is the function's queue i (receiveqK is 2(K-1), transmitqK 2(K-1)+1); the
// control queue is the front end's own (QEMU and DPDK's virtio-user answer the driver's
// commands themselves), so the device never sees it. The pairs in use are the ones the
// front end enabled (update_pairs: the personality is told with vnet_fe_set_pairs, as a
// VQ_PAIRS_SET would), and the personality steers each frame to its pair's receive FIFO,
// so a frame transmitted on a pair comes back on that pair and a merged frame in
// progress on one pair is not another's. A failure is the function's, as NEEDS_RESET is
// per device: every ring stops (device_failed), and the next ring the front end starts
// resets the function (ring_start).
//
// One thread serves everything: the listening socket, one connection at a time, its
// kick eventfds and the rings, in one poll loop, so control messages and ring
// processing never race. A ring with work is processed with the front end's
// notifications suppressed (the kernels write the device event suppression), polled
// while it keeps yielding buffers, and re-armed when it runs dry.
#include "vhost_user.h"

#include <jansson.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "link_charge.h"
#include "provenance.h"
#include "shared_memory.h"
#include "stats.h"

extern "C" {
#include "conformance.h"
#include "net_backend.h"
#include "vdev.h"
#include "virtio_wire.h"
}

namespace {

// ---- Protocol constants (vhost-user.rst, "Message types" and "Protocol features") ----

enum vu_request : uint32_t {
    VU_GET_FEATURES = 1,
    VU_SET_FEATURES = 2,
    VU_SET_OWNER = 3,
    VU_RESET_OWNER = 4,
    VU_SET_MEM_TABLE = 5,
    VU_SET_VRING_NUM = 8,
    VU_SET_VRING_ADDR = 9,
    VU_SET_VRING_BASE = 10,
    VU_GET_VRING_BASE = 11,
    VU_SET_VRING_KICK = 12,
    VU_SET_VRING_CALL = 13,
    VU_SET_VRING_ERR = 14,
    VU_GET_PROTOCOL_FEATURES = 15,
    VU_SET_PROTOCOL_FEATURES = 16,
    VU_GET_QUEUE_NUM = 17,
    VU_SET_VRING_ENABLE = 18,
};

constexpr uint32_t VU_FLAG_VERSION = 0x1;     // bits 0-1: protocol version 1
constexpr uint32_t VU_FLAG_VERSION_MASK = 0x3;
constexpr uint32_t VU_FLAG_REPLY = 1u << 2;
constexpr uint32_t VU_FLAG_NEED_REPLY = 1u << 3;
constexpr unsigned VU_HEADER_BYTES = 12;
constexpr unsigned VU_PAYLOAD_MAX = 4096;     // larger than any message viosim accepts
constexpr unsigned VU_MAX_REGIONS = 8;        // memory table entries (and fds) at most
constexpr uint64_t VU_VRING_INDEX_MASK = 0xff; // kick/call/err payload: ring index ...
constexpr uint64_t VU_VRING_NOFD = 1u << 8;    // ... and "no descriptor passed"
// Feature bit 30 (transport-level): the front end may use the protocol-feature messages.
constexpr unsigned VU_F_PROTOCOL_FEATURES_BIT = 30;
// Protocol features viosim implements: MQ (bit 0: GET_QUEUE_NUM answers
// device.queue_pairs_count) and REPLY_ACK (bit 3); not CONFIG, STATUS, backend requests
// or logging.
constexpr unsigned VU_PROTOCOL_F_MQ_BIT = 0;
constexpr unsigned VU_PROTOCOL_F_REPLY_ACK_BIT = 3;
constexpr uint64_t VU_PROTOCOL_OFFERED =
    1ull << VU_PROTOCOL_F_MQ_BIT | 1ull << VU_PROTOCOL_F_REPLY_ACK_BIT;

// Rings ("Network Device / Virtqueues"): receiveqN is ring 2(N-1), transmitqN ring
// 2(N-1)+1, each the function's queue of the same index. The control queue, when
// negotiated, is the front end's own (vhost-user passes only the data rings).
constexpr unsigned RINGS_MAX = 2 * SERVE_VHOST_PAIRS_MAX;
static_assert(RINGS_MAX == VU_VRING_INDEX_MASK + 1, "every ring index a message can name");
bool is_tx(unsigned ring) { return ring & 1; }
// Buffers per ring per loop pass; also the transport's used batch, so a pass publishes
// its used buffers once, at its end.
constexpr unsigned SERVICE_BUDGET = 256;

const char *request_name(uint32_t r)
{
    switch (r) {
    case VU_GET_FEATURES: return "GET_FEATURES";
    case VU_SET_FEATURES: return "SET_FEATURES";
    case VU_SET_OWNER: return "SET_OWNER";
    case VU_RESET_OWNER: return "RESET_OWNER";
    case VU_SET_MEM_TABLE: return "SET_MEM_TABLE";
    case VU_SET_VRING_NUM: return "SET_VRING_NUM";
    case VU_SET_VRING_ADDR: return "SET_VRING_ADDR";
    case VU_SET_VRING_BASE: return "SET_VRING_BASE";
    case VU_GET_VRING_BASE: return "GET_VRING_BASE";
    case VU_SET_VRING_KICK: return "SET_VRING_KICK";
    case VU_SET_VRING_CALL: return "SET_VRING_CALL";
    case VU_SET_VRING_ERR: return "SET_VRING_ERR";
    case VU_GET_PROTOCOL_FEATURES: return "GET_PROTOCOL_FEATURES";
    case VU_SET_PROTOCOL_FEATURES: return "SET_PROTOCOL_FEATURES";
    case VU_GET_QUEUE_NUM: return "GET_QUEUE_NUM";
    case VU_SET_VRING_ENABLE: return "SET_VRING_ENABLE";
    default: return nullptr;
    }
}

// Log lines, stop signals and descriptors as both serve front ends handle them.
constexpr auto &logf = serve_log;
constexpr auto &close_fd = serve_close_fd;

// ---- Counters over the server's life (all connections) ----

// The device's own counters are the transport's and the personality's (struct pt_stats,
// struct vnet_stats, the rings'); these are serve's.
struct serve_counters {
    uint64_t connections = 0, connections_failed = 0, messages = 0;
    uint64_t rx_merge_returned = 0;          // buffers of a merged frame left unpublished at a stop
    uint64_t kicks = 0;                      // eventfd reads that found notifications
    uint64_t kick_events = 0;                // notifications those reads carried (eventfd count)
    uint64_t calls = 0;                      // used buffer notifications sent (call eventfd writes)
    uint64_t calls_no_fd = 0;                // decided, but the front end gave no call fd
    uint64_t dma_errors = 0;                 // accesses outside every region
    uint64_t rings_broken = 0;
    uint64_t memory_faults = 0;              // accesses refused after a SIGBUS (shrunk memory)
    double busy_s = 0; // wall-clock time from the first to the last frame of each connection
    uint64_t last_features = 0;
    bool have_features = false;
    std::string last_format;
};

// Guest memory the front end may shrink under the device: shared_memory.h watches every
// mapping for SIGBUS; mem_read and mem_write test shared_memory_faulted() after each copy
// and report the access as failed (as one outside every region), so the ring stops at
// once, and the server closes the connection when the kernel call returns
// (server::check_memory) and goes on serving.
constexpr unsigned MAPS_MAX = VU_MAX_REGIONS;
static_assert(MAPS_MAX <= SHARED_MEMORY_MAPS_MAX, "every region is watched");

// ---- Guest memory: the front end's regions ----

struct region {
    uint64_t gpa = 0, size = 0, uaddr = 0; // guest physical, length, front end's virtual
    uint8_t *host = nullptr;               // where gpa maps here
    void *map = nullptr;                   // the mmap (from file offset 0)
    size_t map_len = 0;
};

struct guest_mem {
    std::vector<region> regions;
    bool faulted = false;    // an access met shared_memory_faulted(): the front end shrank a region
    uint64_t fault_addr = 0; // the first such access (guest physical)
    serve_counters *ctr = nullptr;
    link_charge *clock = nullptr; // the simulated platform's time for each access
    // A write since the last full fence: the next read must not pass it (store then
    // load needs a full fence, even on x86). The cases that matter: the used index
    // published, then the driver's event suppression read (a driver that re-enables
    // notifications and then looks at the used index would otherwise miss the update
    // while the device reads its old "no notification"); and the device's request for
    // notifications written, then the ring looked at again (a driver checking it right
    // then would see the old suppression, not kick, and both sides would wait).
    bool write_pending = false;

    // The host pointer for [gpa, gpa + len) when one region covers it, else nullptr.
    uint8_t *at(uint64_t gpa, uint64_t len) const
    {
        for (const region &r : regions)
            if (gpa >= r.gpa && len <= r.size && gpa - r.gpa <= r.size - len)
                return r.host + (gpa - r.gpa);
        return nullptr;
    }
    // The guest physical address of a front-end virtual address range (ring addresses
    // are given in the front end's address space), or false if no region covers it.
    bool uaddr_to_gpa(uint64_t ua, uint64_t len, uint64_t &gpa) const
    {
        for (const region &r : regions)
            if (ua >= r.uaddr && len <= r.size && ua - r.uaddr <= r.size - len) {
                gpa = r.gpa + (ua - r.uaddr);
                return true;
            }
        return false;
    }
    // Lists a new mapping for the SIGBUS handler.
    void add(const region &g)
    {
        regions.push_back(g);
        shared_memory_watch(g.map, g.map_len); // SET_MEM_TABLE takes at most MAPS_MAX regions
    }
    void unmap()
    {
        shared_memory_unwatch_all();
        for (region &r : regions)
            if (r.map)
                munmap(r.map, r.map_len);
        regions.clear();
        faulted = false;
    }
};

// An access during or after a fault of shrunk memory (see on_sigbus): refused like an
// address outside the regions; the server closes the connection once the kernel call
// returns.
enum vs_dma_status mem_fault(guest_mem *m, uint64_t addr)
{
    if (!m->faulted)
        m->fault_addr = addr;
    m->faulted = true;
    m->ctr->memory_faults++;
    return VS_DMA_OUT_OF_RANGE;
}

enum vs_dma_status mem_read(void *ctx, uint64_t addr, void *dst, uint32_t len, enum vs_dma_kind kind)
{
    auto *m = static_cast<guest_mem *>(ctx);
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
    if (shared_memory_faulted())
        return mem_fault(m, addr);
    m->clock->read(addr, len);
    return VS_DMA_OK;
}

enum vs_dma_status mem_write(void *ctx, uint64_t addr, const void *src, uint32_t len,
                             enum vs_dma_kind)
{
    auto *m = static_cast<guest_mem *>(ctx);
    uint8_t *p = m->at(addr, len);
    if (!p) {
        m->ctr->dma_errors++;
        return VS_DMA_OUT_OF_RANGE;
    }
    shared_memory_store(p, src, len);
    if (shared_memory_faulted())
        return mem_fault(m, addr);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    m->write_pending = true;
    m->clock->write(addr, len);
    return VS_DMA_OK;
}

// ---- One ring ----

struct ring {
    // As the front end configured it.
    uint16_t num = 0;
    uint64_t desc_ua = 0, used_ua = 0, avail_ua = 0; // front-end virtual addresses
    uint32_t base = 0;                               // SET_VRING_BASE value
    bool have_addr = false;
    int kick_fd = -1, call_fd = -1, err_fd = -1;
    bool enabled = false; // SET_VRING_ENABLE (starts enabled without PROTOCOL_FEATURES)
    bool started = false; // kick fd received, the transport's queue started
    bool active = false;  // has (or may have) work: processed with notifications off
    // Stopped for the device's other side (no frame to receive, no room in the FIFO),
    // not for the front end's buffers: the pair's other ring wakes it.
    bool waits_on_device = false;
};

// The message being received: the socket is read without blocking, so a message may
// arrive in pieces over several loop passes; its file descriptors come with its bytes.
struct inbox {
    uint8_t buf[VU_HEADER_BYTES + VU_PAYLOAD_MAX];
    uint32_t have = 0; // bytes of buf received
    int fds[VU_MAX_REGIONS];
    unsigned nfds = 0;
    std::chrono::steady_clock::time_point began; // when its first byte (or fd) came
    bool pending() const { return have != 0 || nfds != 0; }
    uint32_t payload_size() const
    {
        uint32_t v;
        std::memcpy(&v, buf + 8, 4);
        return v;
    }
    void clear()
    {
        for (unsigned j = 0; j < nfds; j++)
            if (fds[j] >= 0)
                close(fds[j]);
        nfds = 0;
        have = 0;
    }
};

struct connection {
    int fd = -1;
    inbox in;
    guest_mem mem;
    ring r[RINGS_MAX];
    uint64_t features = 0;
    uint64_t protocol_features = 0;
    bool features_set = false;
    bool owner = false;
    std::chrono::steady_clock::time_point first_frame, last_frame;
    bool had_frame = false;
};

class server {
public:
    server(const vs_config &cfg, const serve_options &opt)
        : cfg_(cfg), opt_(opt), pairs_(unsigned(cfg.dev.queue_pairs ? cfg.dev.queue_pairs : 1)),
          pair_used_(pairs_, false), clock_(cfg)
    {
        if (pairs_ > SERVE_VHOST_PAIRS_MAX) // main refuses it first, naming the parameter
            throw std::invalid_argument("device.queue_pairs_count above what vhost-user can name");
        vs_conf_init(&conf_);
        conn_.mem.ctr = &ctr_;
        conn_.mem.clock = &clock_;
        ops_ = {mem_read, mem_write, &conn_.mem};
        // The device as `viosim run` builds it (device.*, its device.queue_pairs_count
        // pairs included), with what vhost-user decides: merged receive buffers always offered (serve
        // has always offered VIRTIO_NET_F_MRG_RXBUF, whatever device.mrg_rxbuf says);
        // one buffer in flight per queue; a pass's buffers published together; no
        // NOTIFICATION_DATA hint to count from (vhost-user kicks carry none); MSI-X,
        // whatever the function's PCI presentation (the front end owns it): each
        // queue's used buffer notifications come out on its own vector, for its ring's
        // call eventfd.
        vdev_params p = cfg.dev;
        p.no_msix = false;
        p.bars_32bit = false;
        p.queue_pairs = uint16_t(pairs_);
        p.mrg_rxbuf = true;
        p.queue_engines = 1;
        p.used_batch_max = SERVICE_BUDGET;
        p.devmem_event = p.devmem_event_recheck = false;
        if (p.fetch_source == VQ_FETCH_HINT)
            p.fetch_source = VQ_FETCH_ONE;
        if (!vdev_init(&d_, &p))
            throw std::bad_alloc();
        offered_ = (1ull << VIRTIO_F_VERSION_1_BIT) | (1ull << VIRTIO_F_RING_PACKED_BIT) |
                   (1ull << VIRTIO_F_IN_ORDER_BIT) | (1ull << VIRTIO_F_INDIRECT_DESC_BIT) |
                   (1ull << VIRTIO_F_EVENT_IDX_BIT) | (1ull << VIRTIO_NET_F_MRG_RXBUF_BIT);
        if (pairs_ > 1)
            offered_ |= 1ull << VIRTIO_NET_F_MQ_BIT;
        offered_ &= ~(uint64_t(cfg.dev.withdraw.w[0]) | uint64_t(cfg.dev.withdraw.w[1]) << 32);
    }
    ~server() { vdev_fini(&d_); }
    server(const server &) = delete;
    server &operator=(const server &) = delete;
    int run();
    void serve_connection(int fd);

private:
    bool listen_socket(std::string &err);
    void serve_connection_pass();
    bool receive();
    bool handle_message(int *fds, unsigned nfds);
    bool check_memory();
    bool fail(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void teardown(bool failed);
    bool reply(uint32_t request, const void *payload, uint32_t size);
    bool ring_start(uint16_t i);
    void ring_stop(uint16_t i);
    bool device_failed();
    void update_pairs();
    void wake_rings();
    bool service(uint16_t i, bool &waits_for_driver);
    unsigned rings() const { return 2 * pairs_; }
    // The function needs a reset: every ring stops.
    bool broken() const { return d_.tp.error != VS_REASON_NONE; }
    void deliver_interrupts();
    bool arm(uint16_t i, bool waits_for_driver);
    void note_frame();
    bool write_stats(std::string &err);
    uint64_t now_ns() const
    {
        return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now() - start_)
                            .count());
    }

    const vs_config &cfg_;
    const serve_options &opt_;
    int listen_fd_ = -1;
    connection conn_;
    struct vs_guest_ops ops_;
    const unsigned pairs_; // device.queue_pairs_count
    // The function: the transport and the personality, as a simulation builds them.
    struct vdev d_;
    bool attached_ = false;           // pt_fe_attach since the connection began
    uint64_t attached_features_ = 0;  // what it was attached with
    bool failure_logged_ = false;
    std::vector<bool> pair_used_;     // a ring of pair k+1 started, over the server's life
    uint64_t offered_;
    serve_counters ctr_;
    link_charge clock_;
    struct vs_conformance conf_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

bool server::fail(const char *fmt, ...)
{
    char msg[512];
    std::va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    logf("connection closed: %s", msg);
    teardown(true);
    return false;
}

// Binds and listens on the socket path (shared_listen_unix). False with err naming the
// path if the path cannot be used.
bool server::listen_socket(std::string &err)
{
    listen_fd_ = shared_listen_unix(opt_.socket_path, opt_.socket_mode, err);
    return listen_fd_ >= 0;
}

bool server::reply(uint32_t request, const void *payload, uint32_t size)
{
    uint8_t buf[VU_HEADER_BYTES + 64];
    uint32_t hdr[3] = {request, VU_FLAG_VERSION | VU_FLAG_REPLY, size};
    std::memcpy(buf, hdr, VU_HEADER_BYTES);
    std::memcpy(buf + VU_HEADER_BYTES, payload, size);
    // Never blocks: a front end that does not read its replies fills the socket, and
    // the connection is closed rather than the server stalled.
    ssize_t n = send(conn_.fd, buf, VU_HEADER_BYTES + size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n != ssize_t(VU_HEADER_BYTES + size))
        return fail("cannot send the reply to %s: %s", request_name(request),
                    n < 0 ? std::strerror(errno) : "short write");
    return true;
}

// Stops ring i's queue (publishing what was pushed) and keeps its position in r.base for
// GET_VRING_BASE and a later restart. A merged receive frame cut by the stop keeps its
// buffers unpublished (the personality holds a frame's buffers until its last one);
// the frame stays at the head of the receive FIFO and starts over after a restart.
void server::ring_stop(uint16_t i)
{
    ring &r = conn_.r[i];
    if (r.started) {
        uint32_t held = 0;
        r.base = pt_fe_queue_stop(&d_.tp, i, &ops_, r.base, &held);
        ctr_.rx_merge_returned += held;
    }
    r.started = r.active = false;
    update_pairs();
}

// The pairs in use are the pairs the front end uses: the leading pairs whose two rings
// are started and enabled (QEMU enables the rings of pairs 1..k when its driver's
// VQ_PAIRS_SET asks for k; DPDK's virtio-user those of the queues it was given), at
// least pair 1 ("Device Initialization": receiveq1 and transmitq1 are always used). The
// device's pairs in use are a count, as VQ_PAIRS_SET's virtqueue_pairs: a pair enabled
// after a gap is not in use (its transmit ring takes no buffer) until the gap closes.
// Rings that may have work now look again.
void server::update_pairs()
{
    if (!attached_ || broken())
        return;
    auto in_use = [&](unsigned i) { return conn_.r[i].started && conn_.r[i].enabled; };
    unsigned k = 0;
    while (k < pairs_ && in_use(2 * k) && in_use(2 * k + 1))
        k++;
    const uint16_t want = uint16_t(std::max(k, 1u));
    if (want == d_.net.pairs || !vnet_fe_set_pairs(&d_.net, want))
        return; // unchanged, or more than one without VIRTIO_NET_F_MQ (ring_start refuses those rings)
    for (uint16_t i = 0; i < rings(); i++)
        conn_.r[i].active = conn_.r[i].started;
}

void server::teardown(bool failed)
{
    for (uint16_t i = 0; i < rings(); i++) {
        ring_stop(i);
        close_fd(conn_.r[i].kick_fd);
        close_fd(conn_.r[i].call_fd);
        close_fd(conn_.r[i].err_fd);
        conn_.r[i] = ring();
    }
    conn_.mem.unmap();
    conn_.in.clear();
    close_fd(conn_.fd);
    if (conn_.had_frame)
        ctr_.busy_s += std::chrono::duration<double>(conn_.last_frame - conn_.first_frame).count();
    conn_.had_frame = false;
    conn_.features = conn_.protocol_features = 0;
    conn_.features_set = conn_.owner = false;
    // The next connection's first ring start attaches afresh (a reset: frames left in
    // the receive FIFOs go).
    attached_ = false;
    if (failed)
        ctr_.connections_failed++;
}

// The function needs a reset (driver input the device cannot accept, pt_fail): record
// it once and stop processing every ring. NEEDS_RESET is the device's, not a queue's
// ("Device Status Field"), so one ring's bad input stops all pairs. vhost-user has no
// DEVICE_NEEDS_RESET to raise without the STATUS protocol feature; the front end sees
// the rings stall and GET_VRING_BASE reports where they stopped. A ring started
// afterwards resets the function (ring_start).
bool server::device_failed()
{
    const enum vs_reason why = d_.tp.error;
    // A fault of shrunk memory is not the driver's doing: the connection is closed with
    // its own log line (check_memory).
    if (!failure_logged_ && !conn_.mem.faulted) {
        const uint16_t i = d_.tp.error_queue;
        conf_.now = now_ns() * 1000; // ps, as the simulation stamps violations
        if (vs_reason_is_driver_violation(why))
            vs_conf_report_reason(&conf_, why, i);
        if (i < rings())
            logf("ring %u (%s%u) stopped: %s; the function needs a reset, so all %u rings stop", i,
                 is_tx(i) ? "transmitq" : "receiveq", i / 2 + 1, vs_reason_name(why), rings());
        else
            logf("the function needs a reset: %s; all %u rings stop", vs_reason_name(why), rings());
        ctr_.rings_broken++;
    }
    failure_logged_ = true;
    for (uint16_t i = 0; i < rings(); i++)
        conn_.r[i].active = false;
    return false;
}

bool server::ring_start(uint16_t i)
{
    ring &r = conn_.r[i];
    if (!conn_.features_set)
        return fail("ring %u started (kick fd) before SET_FEATURES", i);
    if (!r.have_addr || r.num == 0)
        return fail("ring %u started without SET_VRING_NUM and SET_VRING_ADDR", i);
    const bool packed = conn_.features & (1ull << VIRTIO_F_RING_PACKED_BIT);
    // Areas: packed rings (descriptor ring, driver and device event suppression) or split
    // rings (descriptor table, available ring, used ring); the vring-address message
    // names them desc, avail (driver area) and used (device area), in the front end's
    // address space.
    const uint64_t desc_len = uint64_t(r.num) * 16;
    const uint64_t driver_len = packed ? 4 : 6 + 2 * uint64_t(r.num);
    const uint64_t device_len = packed ? 4 : 6 + 8 * uint64_t(r.num);
    struct pt_fe_ring fr = {r.num, 0, 0, 0, r.base};
    if (!conn_.mem.uaddr_to_gpa(r.desc_ua, desc_len, fr.desc))
        return fail("ring %u: no memory region covers the descriptor area 0x%llx + %llu", i,
                    (unsigned long long)r.desc_ua, (unsigned long long)desc_len);
    if (!conn_.mem.uaddr_to_gpa(r.avail_ua, driver_len, fr.driver))
        return fail("ring %u: no memory region covers the driver area 0x%llx + %llu", i,
                    (unsigned long long)r.avail_ua, (unsigned long long)driver_len);
    if (!conn_.mem.uaddr_to_gpa(r.used_ua, device_len, fr.device))
        return fail("ring %u: no memory region covers the device area 0x%llx + %llu", i,
                    (unsigned long long)r.used_ua, (unsigned long long)device_len);
    // Without VIRTIO_NET_F_MQ the driver has receiveq1 and transmitq1 only ("Virtqueues":
    // N = 1); ring 2 would be the control queue, which vhost-user never passes.
    if (i >= 2 && !(conn_.features & (1ull << VIRTIO_NET_F_MQ_BIT)))
        return fail("ring %u started without VIRTIO_NET_F_MQ negotiated (only rings 0 and 1 exist)", i);
    if (!attached_ || attached_features_ != conn_.features || broken()) {
        // A fresh function with the negotiated features (after a failure: its reset,
        // the whole function's). The other rings stop (GET_VRING_BASE reports where)
        // and run again when the front end starts them, as it does after a reset.
        // VIRTIO_F_ORDER_PLATFORM is the transport's too: serve's accesses are the CPU's
        // own, ordered by the fences in mem_read and mem_write, so the device needs no
        // read-back before publishing ("Reserved Feature Bits"); the front end is not
        // offered it.
        attached_ = false;
        for (uint16_t j = 0; j < rings(); j++)
            ring_stop(j);
        vs_features f = {};
        f.w[0] = uint32_t(conn_.features);
        f.w[1] = uint32_t(conn_.features >> 32);
        vs_feature_set(&f, VIRTIO_F_ORDER_PLATFORM_BIT);
        pt_fe_attach(&d_.tp, &f);
        attached_ = true;
        attached_features_ = conn_.features;
        failure_logged_ = false;
    }
    enum vs_reason why = VS_REASON_NONE;
    switch (pt_fe_queue_start(&d_.tp, i, &fr, &why)) {
    case PT_FE_STARTED:
        break;
    case PT_FE_CONFIG_REFUSED:
        return fail("ring %u: configuration refused: %s", i, vs_reason_name(why));
    case PT_FE_POSITION_REFUSED:
        return fail("ring %u: SET_VRING_BASE 0x%x is not a position in the %s ring of %u", i,
                    r.base, packed ? "packed" : "split", r.num);
    case PT_FE_NO_QUEUE:
    case PT_FE_NOT_ATTACHED:
        return fail("ring %u: the device has no such queue", i);
    }
    r.started = true;
    r.active = true; // look once: buffers may already be there
    r.waits_on_device = false;
    pair_used_[i / 2] = true;
    update_pairs();
    return true;
}

// The transport's outbox: each used buffer notification it decided goes to its ring's
// call eventfd (configuration changes have nowhere to go without the STATUS protocol
// feature: device_failed logs them).
void server::deliver_interrupts()
{
    struct msix_message m;
    while (pt_take_msi(&d_.tp, &m)) {
        const uint16_t q = pt_fe_msi_queue(&d_.tp, &m);
        if (q == PT_NO_QUEUE || q >= rings())
            continue;
        clock_.interrupt(); // the device's MSI-X write, whether or not the front end listens
        ring &r = conn_.r[q];
        if (r.call_fd < 0) {
            ctr_.calls_no_fd++;
            continue;
        }
        uint64_t one = 1;
        if (write(r.call_fd, &one, sizeof one) == sizeof one)
            ctr_.calls++;
    }
}

void server::note_frame()
{
    conn_.last_frame = std::chrono::steady_clock::now();
    if (!conn_.had_frame) {
        conn_.first_frame = conn_.last_frame;
        conn_.had_frame = true;
    }
}

// Up to SERVICE_BUDGET buffers of ring i through the personality (transmit: "Network
// Device / Device Operation / Transmitting Packets"; receive, with or without
// VIRTIO_NET_F_MRG_RXBUF: "Receiving Packets"), then what they used published and the
// notification decided. True if buffers were processed. waits_for_driver: the ring
// stopped for want of buffers from the front end (not for the device's other side: no
// frame to receive, or no room in the receive FIFO), as the queue's role tells.
bool server::service(uint16_t i, bool &waits_for_driver)
{
    struct pt &tp = d_.tp;
    const uint16_t q = i;
    unsigned done = 0;
    enum pt_step st = PT_STEP_IDLE;
    while (done < SERVICE_BUDGET) {
        struct pt_work w = {};
        st = pt_step_one(&tp, q, &ops_, &w);
        if (st != PT_STEP_DONE)
            break;
        done++;
    }
    waits_for_driver = (st == PT_STEP_IDLE) == tp.role[q]->idle_waits_for_driver;
    conn_.r[i].waits_on_device = st != PT_STEP_DONE && !waits_for_driver;
    if (st == PT_STEP_FAILED)
        return device_failed();
    if (done == 0)
        return false;
    note_frame();
    if (pt_complete(&tp, q, &ops_) == PT_STEP_FAILED)
        return device_failed();
    deliver_interrupts();
    wake_rings();
    return true;
}

// The rings the personality gave work (pt_wake: the receive queue whose pair's FIFO got
// a frame, wherever steering sent it; the transmit queue whose pair's FIFO got room) go
// on if they were waiting for it. Marks alone suffice: virtio-net's receive and transmit
// roles are woken_by_mark, and vhost-user passes no other queue.
void server::wake_rings()
{
    uint16_t q;
    while (pt_take_wake(&d_.tp, &q))
        if (q < rings() && conn_.r[q].waits_on_device)
            conn_.r[q].active = true;
}

// The ring ran dry: ask the front end for notifications again, then look once more (a
// buffer made available before the request was seen would otherwise wait for a kick
// that never comes). True if the ring goes on at once: it waited for buffers
// (waits_for_driver) and they turned up; then notifications are off again.
bool server::arm(uint16_t i, bool waits_for_driver)
{
    struct pt &tp = d_.tp;
    enum pt_step st = pt_arm_notifications(&tp, i, &ops_);
    if (st == PT_STEP_DONE && waits_for_driver)
        st = pt_quiet_notifications(&tp, i, &ops_);
    else if (st == PT_STEP_DONE)
        return false;
    if (st == PT_STEP_FAILED)
        return device_failed();
    return st == PT_STEP_DONE;
}

// Reads what has arrived of the current message without blocking (a front end that
// stops mid-message cannot hold the loop: serve_connection_pass gives it
// message_timeout_s) and handles the message once it is whole. False when the
// connection was closed.
bool server::receive()
{
    inbox &in = conn_.in;
    for (;;) {
        const uint32_t total = in.have < VU_HEADER_BYTES ? VU_HEADER_BYTES
                                                         : VU_HEADER_BYTES + in.payload_size();
        if (in.have == total)
            break;
        struct iovec iov = {in.buf + in.have, total - in.have};
        alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * VU_MAX_REGIONS)];
        struct msghdr mh;
        std::memset(&mh, 0, sizeof mh);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        const ssize_t n = recvmsg(conn_.fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return true; // the rest comes later
        if (n < 0)
            return fail("cannot read from the front end: %s", std::strerror(errno));
        const bool was_pending = in.pending();
        bool too_many = mh.msg_flags & MSG_CTRUNC;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                unsigned k = unsigned((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (unsigned j = 0; j < k; j++) {
                    int fd;
                    std::memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
                    if (in.nfds < VU_MAX_REGIONS) {
                        in.fds[in.nfds++] = fd;
                    } else {
                        close(fd);
                        too_many = true;
                    }
                }
            }
        in.have += uint32_t(n);
        if (!was_pending && in.pending())
            in.began = std::chrono::steady_clock::now();
        if (too_many)
            return fail("a message with more than %u file descriptors", VU_MAX_REGIONS);
        if (n == 0) {
            if (!in.pending()) {
                logf("front end disconnected");
                teardown(false);
                return false;
            }
            if (in.have < VU_HEADER_BYTES)
                return fail("short read of a message header (%u of %u bytes)", in.have,
                            VU_HEADER_BYTES);
            const uint32_t request = [&] {
                uint32_t v;
                std::memcpy(&v, in.buf, 4);
                return v;
            }();
            return fail("%s: short read of the %u-byte payload (%u bytes came)",
                        request_name(request), in.payload_size(), in.have - VU_HEADER_BYTES);
        }
        if (in.have == VU_HEADER_BYTES) {
            // The header is whole: refuse what no payload can mend before waiting for it.
            uint32_t hdr[3];
            std::memcpy(hdr, in.buf, VU_HEADER_BYTES);
            const char *name = request_name(hdr[0]);
            ctr_.messages++;
            if (!name)
                return fail("unknown or unsupported request %u (size %u)", hdr[0], hdr[2]);
            if ((hdr[1] & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION)
                return fail("%s: protocol version %u, expected 1", name,
                            hdr[1] & VU_FLAG_VERSION_MASK);
            if (hdr[2] > VU_PAYLOAD_MAX)
                return fail("%s: payload of %u bytes (at most %u accepted)", name, hdr[2],
                            VU_PAYLOAD_MAX);
        }
    }
    // Whole: the message's descriptors go to handle_message, which keeps or closes them.
    int fds[VU_MAX_REGIONS];
    const unsigned nfds = in.nfds;
    std::copy(in.fds, in.fds + nfds, fds);
    in.nfds = 0;
    in.have = 0; // in.buf stays as it is until the next read
    return handle_message(fds, nfds);
}

// A guest-memory access faulted (on_sigbus): the front end shrank a region. The
// connection is closed with one log line; the server keeps serving.
bool server::check_memory()
{
    if (conn_.fd < 0 || !conn_.mem.faulted)
        return true;
    return fail("guest memory at 0x%llx vanished (SIGBUS): the front end shrank a region's "
                "file under the mapping", (unsigned long long)conn_.mem.fault_addr);
}

// Acts on the message in conn_.in.buf with its file descriptors. False when the
// connection was torn down.
bool server::handle_message(int *fds, unsigned nfds)
{
    // From here on every fd is either kept or closed.
    struct fd_guard {
        int *fds;
        unsigned n;
        ~fd_guard()
        {
            for (unsigned j = 0; j < n; j++)
                if (fds[j] >= 0)
                    close(fds[j]);
        }
    } guard{fds, nfds};

    uint32_t hdr[3];
    std::memcpy(hdr, conn_.in.buf, VU_HEADER_BYTES);
    const uint32_t request = hdr[0], flags = hdr[1], size = hdr[2];
    const char *name = request_name(request);
    const uint8_t *const payload = conn_.in.buf + VU_HEADER_BYTES;

    auto need_size = [&](uint32_t want) {
        if (size < want)
            return fail("%s: payload of %u bytes, expected %u", name, size, want);
        return true;
    };
    auto need_fds = [&](unsigned want) {
        if (nfds != want)
            return fail("%s: %u file descriptors passed, expected %u", name, nfds, want);
        return true;
    };
    auto ring_index = [&](uint32_t idx) {
        if (idx >= rings())
            return fail("%s: ring %u does not exist (the device has %u)", name, idx, rings());
        return true;
    };
    auto get_u64 = [&](unsigned off) {
        uint64_t v;
        std::memcpy(&v, payload + off, 8);
        return v;
    };
    auto get_u32 = [&](unsigned off) {
        uint32_t v;
        std::memcpy(&v, payload + off, 4);
        return v;
    };
    bool replied = false; // the request has its own reply (then no REPLY_ACK)
    const bool ack = (conn_.protocol_features & (1ull << VU_PROTOCOL_F_REPLY_ACK_BIT)) &&
                     (flags & VU_FLAG_NEED_REPLY);

    switch (request) {
    case VU_GET_FEATURES: {
        if (!need_fds(0))
            return false;
        uint64_t f = offered_ | (1ull << VU_F_PROTOCOL_FEATURES_BIT);
        if (!reply(request, &f, 8))
            return false;
        replied = true;
        break;
    }
    case VU_SET_FEATURES: {
        if (!need_size(8) || !need_fds(0))
            return false;
        uint64_t f = get_u64(0) & ~(1ull << VU_F_PROTOCOL_FEATURES_BIT);
        conf_.now = now_ns() * 1000;
        if (f & ~offered_)
            vs_conf_report(&conf_, VS_RULE_FEATURE_NOT_OFFERED, 0xffff, f & ~offered_, offered_);
        if (!(f & (1ull << VIRTIO_F_VERSION_1_BIT)))
            vs_conf_report(&conf_, VS_RULE_FEATURE_VERSION_1_DECLINED, 0xffff, f, offered_);
        conn_.features = f & offered_;
        conn_.features_set = true;
        ctr_.last_features = conn_.features;
        ctr_.have_features = true;
        ctr_.last_format =
            (conn_.features & (1ull << VIRTIO_F_RING_PACKED_BIT)) ? "packed" : "split";
        std::string names;
        for (const auto &fn : config_feature_names())
            if (fn.second < 64 && (conn_.features >> fn.second) & 1)
                names += (names.empty() ? "" : " ") + fn.first;
        logf("features negotiated: 0x%llx (%s)", (unsigned long long)conn_.features, names.c_str());
        // Without PROTOCOL_FEATURES rings start enabled (vhost-user.rst, "Ring states").
        if (!(get_u64(0) & (1ull << VU_F_PROTOCOL_FEATURES_BIT))) {
            for (ring &r : conn_.r)
                r.enabled = true;
            update_pairs();
        }
        break;
    }
    case VU_GET_PROTOCOL_FEATURES: {
        if (!need_fds(0))
            return false;
        uint64_t f = VU_PROTOCOL_OFFERED;
        if (!reply(request, &f, 8))
            return false;
        replied = true;
        break;
    }
    case VU_SET_PROTOCOL_FEATURES:
        if (!need_size(8) || !need_fds(0))
            return false;
        if (get_u64(0) & ~VU_PROTOCOL_OFFERED)
            return fail("%s: protocol features 0x%llx not offered (offered 0x%llx)", name,
                        (unsigned long long)get_u64(0), (unsigned long long)VU_PROTOCOL_OFFERED);
        conn_.protocol_features = get_u64(0);
        break;
    case VU_SET_OWNER:
        if (!need_fds(0))
            return false;
        conn_.owner = true;
        break;
    case VU_RESET_OWNER:
        if (!need_fds(0))
            return false;
        for (uint16_t i = 0; i < rings(); i++)
            ring_stop(i);
        conn_.owner = false;
        conn_.features_set = false;
        break;
    case VU_GET_QUEUE_NUM: {
        if (!need_fds(0))
            return false;
        uint64_t n = pairs_;
        if (!reply(request, &n, 8))
            return false;
        replied = true;
        break;
    }
    case VU_SET_MEM_TABLE: {
        if (!need_size(8))
            return false;
        const uint32_t nregions = get_u32(0);
        if (nregions == 0 || nregions > VU_MAX_REGIONS)
            return fail("%s: %u regions (1..%u accepted)", name, nregions, VU_MAX_REGIONS);
        if (!need_size(8 + 32 * nregions) || !need_fds(nregions))
            return false;
        for (uint16_t i = 0; i < rings(); i++)
            if (conn_.r[i].started)
                return fail("%s while ring %u is running", name, i);
        conn_.mem.unmap();
        const long page = sysconf(_SC_PAGESIZE);
        for (uint32_t k = 0; k < nregions; k++) {
            region g;
            g.gpa = get_u64(8 + 32 * k);
            g.size = get_u64(16 + 32 * k);
            g.uaddr = get_u64(24 + 32 * k);
            const uint64_t off = get_u64(32 + 32 * k);
            if (g.size == 0 || off > UINT64_MAX - g.size || g.gpa > UINT64_MAX - g.size)
                return fail("%s: region %u has size %llu at offset %llu", name, k,
                            (unsigned long long)g.size, (unsigned long long)off);
            // Touching a mapping past the end of its file is SIGBUS, not an error return:
            // the file must hold the whole region (memfd and hugetlbfs files report
            // their size).
            struct stat st;
            if (fstat(fds[k], &st) != 0 || uint64_t(st.st_size) < off + g.size)
                return fail("%s: region %u (%llu bytes at file offset %llu) is larger than "
                            "its file (%lld bytes)", name, k, (unsigned long long)g.size,
                            (unsigned long long)off, (long long)st.st_size);
            // Whether the front end can still shrink the file (and fault the mapping
            // afterwards): not if it is sealed against shrinking (memfd with seals, as
            // QEMU's memory-backend-memfd makes by default). Unsealed regions are refused
            // with --require-sealed-memory; otherwise a shrink is survived (on_sigbus).
            const int seals = fcntl(fds[k], F_GET_SEALS);
            const bool sealed = seals >= 0 && (seals & F_SEAL_SHRINK);
            if (opt_.require_sealed_memory && !sealed)
                return fail("%s: region %u's file is not sealed against shrinking "
                            "(F_SEAL_SHRINK; --require-sealed-memory)", name, k);
            g.map_len = size_t((off + g.size + uint64_t(page) - 1) / uint64_t(page) * uint64_t(page));
            void *m = mmap(nullptr, g.map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[k], 0);
            if (m == MAP_FAILED)
                return fail("%s: cannot map region %u (%llu bytes): %s", name, k,
                            (unsigned long long)g.map_len, std::strerror(errno));
            g.map = m;
            g.host = static_cast<uint8_t *>(m) + off;
            conn_.mem.add(g);
            logf("region %u: guest 0x%llx, front end 0x%llx, %llu bytes%s", k,
                 (unsigned long long)g.gpa, (unsigned long long)g.uaddr, (unsigned long long)g.size,
                 sealed ? ", sealed against shrinking" : "");
        }
        break;
    }
    case VU_SET_VRING_NUM: {
        if (!need_size(8) || !need_fds(0) || !ring_index(get_u32(0)))
            return false;
        const uint32_t num = get_u32(4);
        if (num == 0 || num > cfg_.dev.queue_size_max)
            return fail("%s: ring %u size %u (1..device.queue_size_max_entries = %u)", name,
                        get_u32(0), num, cfg_.dev.queue_size_max);
        conn_.r[get_u32(0)].num = uint16_t(num);
        break;
    }
    case VU_SET_VRING_ADDR: {
        if (!need_size(40) || !need_fds(0) || !ring_index(get_u32(0)))
            return false;
        ring &r = conn_.r[get_u32(0)];
        r.desc_ua = get_u64(8);
        r.used_ua = get_u64(16);
        r.avail_ua = get_u64(24);
        r.have_addr = true;
        break;
    }
    case VU_SET_VRING_BASE:
        if (!need_size(8) || !need_fds(0) || !ring_index(get_u32(0)))
            return false;
        conn_.r[get_u32(0)].base = get_u32(4);
        break;
    case VU_GET_VRING_BASE: {
        if (!need_size(8) || !need_fds(0) || !ring_index(get_u32(0)))
            return false;
        const uint16_t i = uint16_t(get_u32(0));
        ring &r = conn_.r[i];
        // The position after the stop (publishing what was pushed), so its used half
        // covers every buffer taken; the front end's own if the ring never started.
        ring_stop(i);
        uint32_t out[2] = {i, r.base};
        close_fd(r.kick_fd);
        if (!reply(request, out, 8))
            return false;
        replied = true;
        break;
    }
    case VU_SET_VRING_KICK:
    case VU_SET_VRING_CALL:
    case VU_SET_VRING_ERR: {
        if (!need_size(8))
            return false;
        const uint64_t v = get_u64(0);
        const bool nofd = v & VU_VRING_NOFD;
        if (!need_fds(nofd ? 0 : 1) || !ring_index(uint32_t(v & VU_VRING_INDEX_MASK)))
            return false;
        const uint16_t i = uint16_t(v & VU_VRING_INDEX_MASK);
        ring &r = conn_.r[i];
        int &slot = request == VU_SET_VRING_KICK ? r.kick_fd
                    : request == VU_SET_VRING_CALL ? r.call_fd
                                                   : r.err_fd;
        close_fd(slot);
        if (!nofd) {
            slot = fds[0];
            fds[0] = -1; // kept
            // Never block on it: a call fd that cannot take a write (a full pipe, an
            // eventfd at its maximum) loses that notification, not the server's loop.
            if (request == VU_SET_VRING_CALL)
                fcntl(slot, F_SETFL, fcntl(slot, F_GETFL) | O_NONBLOCK);
        }
        if (request == VU_SET_VRING_KICK) {
            if (nofd)
                return fail("%s: ring %u without a kick fd (polling front ends are not supported)",
                            name, i);
            fcntl(r.kick_fd, F_SETFL, fcntl(r.kick_fd, F_GETFL) | O_NONBLOCK);
            ring_stop(i);
            if (!ring_start(i))
                return false;
        }
        break;
    }
    case VU_SET_VRING_ENABLE:
        if (!need_size(8) || !need_fds(0) || !ring_index(get_u32(0)))
            return false;
        conn_.r[get_u32(0)].enabled = get_u32(4) != 0;
        conn_.r[get_u32(0)].active = conn_.r[get_u32(0)].enabled;
        update_pairs(); // the pairs the front end enables are the pairs in use
        break;
    default:
        return fail("unhandled request %s", name);
    }
    if (ack && !replied) {
        uint64_t zero = 0;
        if (!reply(request, &zero, 8))
            return false;
    }
    return true;
}

// One pass over a connection: wait for a message or a kick (not at all while a ring
// has work), then process.
void server::serve_connection_pass()
{
    struct pollfd pfd[1 + RINGS_MAX];
    int ring_of[1 + RINGS_MAX];
    nfds_t n = 0;
    pfd[n] = {conn_.fd, POLLIN, 0};
    ring_of[n++] = -1;
    bool busy = false;
    for (uint16_t i = 0; i < rings(); i++) {
        ring &r = conn_.r[i];
        if (!r.started || broken())
            continue;
        pfd[n] = {r.kick_fd, POLLIN, 0};
        ring_of[n++] = i;
        busy |= r.active && r.enabled;
    }
    int timeout_ms = busy ? 0 : 200;
    if (conn_.in.pending()) {
        // A message has begun: it must be whole within message_timeout_s.
        const auto left = conn_.in.began +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(opt_.message_timeout_s)) -
                          std::chrono::steady_clock::now();
        if (left <= std::chrono::steady_clock::duration::zero()) {
            const inbox &in = conn_.in;
            uint32_t request = 0;
            std::memcpy(&request, in.buf, 4);
            if (in.have < VU_HEADER_BYTES)
                fail("message incomplete after %g s: %u of %u header bytes came",
                     opt_.message_timeout_s, in.have, VU_HEADER_BYTES);
            else
                fail("%s: message incomplete after %g s: %u of %u payload bytes came",
                     request_name(request), opt_.message_timeout_s, in.have - VU_HEADER_BYTES,
                     in.payload_size());
            return;
        }
        const auto left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(left).count() + 1;
        timeout_ms = int(std::min<long long>(timeout_ms, left_ms));
    }
    int rc = poll(pfd, n, timeout_ms);
    if (rc < 0)
        return; // EINTR: the caller checks for a stop
    if (pfd[0].revents) {
        if (!receive() || !check_memory())
            return;
    }
    for (nfds_t k = 1; k < n; k++) {
        if (!(pfd[k].revents & POLLIN))
            continue;
        ring &r = conn_.r[ring_of[k]];
        if (r.kick_fd < 0)
            continue;
        uint64_t v = 0;
        if (read(r.kick_fd, &v, sizeof v) == sizeof v) {
            ctr_.kicks++;
            ctr_.kick_events += v;
        }
        const uint16_t i = uint16_t(ring_of[k]);
        if (r.started && !broken() && !r.active) {
            r.active = true;
            if (pt_quiet_notifications(&d_.tp, i, &ops_) == PT_STEP_FAILED)
                device_failed();
        }
    }
    for (uint16_t i = 0; i < rings(); i++) {
        const uint16_t k = i ^ 1; // each pair's transmit ring first, then its receive ring
        ring &r = conn_.r[k];
        if (!r.started || broken() || !r.enabled || !r.active)
            continue;
        bool waits_for_driver = false;
        bool did = service(k, waits_for_driver);
        if (broken() || conn_.fd < 0)
            continue;
        // Nothing done: ask for notifications and look once more; go on at once only if
        // the ring was waiting for the front end's buffers and they are there now (a
        // ring waiting for the pair's other ring, no frame to receive or no room in
        // the FIFO, is woken by service when that ring moves).
        if (!did)
            r.active = arm(k, waits_for_driver);
    }
    check_memory();
}

bool server::write_stats(std::string &err)
{
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    stats_table st;
    st.add_u64("vhost.connections", "count", stat_better::neutral, "front ends that connected", ctr_.connections);
    st.add_u64("vhost.connections_failed", "count", stat_better::lower,
               "connections closed for bad input (one log line each)", ctr_.connections_failed);
    st.add_u64("vhost.messages", "count", stat_better::neutral, "vhost-user messages received", ctr_.messages);
    st.add_u64("vhost.rings_broken", "count", stat_better::lower, "rings stopped for driver input the device refused",
               ctr_.rings_broken);
    st.add_u64("vhost.memory_faults", "count", stat_better::lower,
               "guest-memory accesses refused because the front end shrank a region's file "
               "(SIGBUS caught; the connection was closed)",
               ctr_.memory_faults);
    // The device's rows under the names a simulation gives them (stats.h), from the
    // transport's and the personality's own counters, then serve's own.
    const struct vnet_stats &net = d_.net.stats;
    const struct pt_stats &tps = d_.tp.stats;
    stats_add_device_frames(st, {net.tx_frames, net.rx_frames, net.rx_no_buffer, net.rx_dropped_too_big});
    st.add_u64("device.tx.bytes", "bytes", stat_better::neutral,
               "frame bytes the device transmitted (without virtio-net header)", net.tx_bytes);
    st.add_u64("device.rx.bytes", "bytes", stat_better::higher,
               "frame bytes the device delivered to receive buffers (without virtio-net header)",
               net.rx_bytes);
    stats_add_backend(st, net.backend);
    st.add_u64("device.rx.merged_frames", "count", stat_better::neutral,
               "frames written over several receive buffers (VIRTIO_NET_F_MRG_RXBUF)",
               net.rx_merged_frames);
    st.add_u64("device.rx.merge_returned", "count", stat_better::lower,
               "buffers of a merged frame left unpublished because the ring stopped mid-frame",
               ctr_.rx_merge_returned);
    st.add_u64("device.interrupts_raised", "count", stat_better::lower,
               "used buffer notifications the device decided to send", tps.interrupts_raised);
    st.add_u64("notify.kicks", "count", stat_better::lower, "kick eventfd reads that carried notifications", ctr_.kicks);
    st.add_u64("notify.kick_events", "count", stat_better::lower, "available buffer notifications those reads counted",
               ctr_.kick_events);
    st.add_u64("irq.calls", "count", stat_better::lower, "used buffer notifications sent (call eventfd writes)", ctr_.calls);
    st.add_u64("irq.calls_no_fd", "count", stat_better::lower, "notifications decided without a call eventfd",
               ctr_.calls_no_fd);
    // Each ring as a simulation names its queue (stats_queue_label): pair 1's "rx" and
    // "tx" always, pair k's "rx<k>" and "tx<k>" once the front end started a ring of it,
    // so stats.json grows with the pairs used, not the pairs offered.
    for (uint16_t q = 0; q < rings(); q++) {
        if (q >= 2 && !pair_used_[q / 2])
            continue;
        const std::string n = "device.queue." + stats_queue_label(q, d_.tp.num_queues);
        stats_add_event_reads(st, n, tps.event_reads_link[q], tps.event_reads_local[q]);
        stats_add_ring(st, n, pt_ring_stats(&d_.tp, q));
    }
    if (pairs_ > 1) {
        unsigned used = 1; // pair 1 counts always, as in a simulation
        for (unsigned k = 1; k < pairs_; k++)
            used += pair_used_[k];
        st.add_u64("device.queue_pairs.offered", "pairs", stat_better::neutral,
                   "queue pairs the device offered (max_virtqueue_pairs; serve: GET_QUEUE_NUM)", pairs_);
        st.add_u64("device.queue_pairs.used", "pairs", stat_better::neutral,
                   "queue pairs the front end started a ring of (pair 1 counts always); their rows "
                   "are device.queue.rx<k>.* and tx<k>.*",
                   used);
    }
    // Guest-memory accesses, named as a simulation names the device's DMA.
    uint64_t reads = 0, writes = 0;
    for (unsigned k = 0; k < VS_DMA_KIND_COUNT; k++) {
        reads += tps.dma_reads[k];
        writes += tps.dma_writes[k];
    }
    stats_add_device_dma(st, tps.dma_reads, tps.dma_writes, tps.dma_read_bytes, tps.dma_write_bytes);
    st.add_u64("device.dma.errors", "count", stat_better::lower, "accesses outside every memory region", ctr_.dma_errors);
    const uint64_t frames = net.tx_frames + net.rx_frames;
    st.add_f64("dma.transactions_per_frame", "count", stat_better::lower,
               "guest memory reads and writes per frame moved (TX + RX)",
               frames ? double(reads + writes) / double(frames) : 0.0);

    // The simulated platform's clock (link_charge.h): every access charged its PCIe
    // link time, one at a time, and every interrupt its MSI-X write.
    const double sim_ns = clock_.now_ns();
    const double tx = double(net.tx_frames);
    st.add_f64("sim.time_ns", "ns", stat_better::lower,
               "simulated device time: each guest-memory access and interrupt charged its PCIe "
               "link time, one at a time (the driver's own time is not simulated)",
               sim_ns);
    st.add_f64("throughput.tx_mpps", "Mpps", stat_better::higher, "transmitted frames per simulated second (millions)",
               sim_ns > 0 ? tx / sim_ns * 1e3 : 0.0);
    st.add_f64("throughput.rx_mpps", "Mpps", stat_better::higher, "received frames per simulated second (millions)",
               sim_ns > 0 ? double(net.rx_frames) / sim_ns * 1e3 : 0.0);
    const uint64_t interrupts = ctr_.calls + ctr_.calls_no_fd;
    st.add_f64("per_packet.interrupts", "count", stat_better::lower, "interrupts per transmitted frame",
               tx > 0 ? double(interrupts) / tx : 0.0);
    st.add_f64("per_packet.notifications", "count", stat_better::lower, "driver notifications per transmitted frame",
               tx > 0 ? double(ctr_.kick_events) / tx : 0.0);
    st.add_f64("per_packet.dma_reads", "count", stat_better::lower, "device DMA reads per transmitted frame",
               tx > 0 ? double(reads) / tx : 0.0);
    st.add_f64("per_packet.dma_writes", "count", stat_better::lower, "device DMA writes per transmitted frame",
               tx > 0 ? double(writes) / tx : 0.0);
    st.add_f64("per_packet.tlps", "count", stat_better::lower, "PCIe TLPs in both directions per transmitted frame",
               tx > 0 ? double(clock_.tlps()) / tx : 0.0);
    stats_add_link_direction(st, "link.up", "device to host", clock_.up().tlps,
                             clock_.up().payload_bytes, clock_.up().overhead_bytes,
                             clock_.up().busy_ns, sim_ns);
    stats_add_link_direction(st, "link.down", "host to device", clock_.down().tlps,
                             clock_.down().payload_bytes, clock_.down().overhead_bytes,
                             clock_.down().busy_ns, sim_ns);
    st.add_f64("wall.seconds", "s", stat_better::neutral, "wall-clock time the server ran", wall);
    st.add_f64("wall.busy_seconds", "s", stat_better::neutral,
               "wall-clock time from each connection's first to last frame, summed", ctr_.busy_s);
    st.add_f64("wall.tx_mpps", "Mpps", stat_better::higher, "transmitted frames per busy second (millions)",
               ctr_.busy_s > 0 ? double(net.tx_frames) / ctr_.busy_s / 1e6 : 0.0);
    st.add_f64("wall.rx_mpps", "Mpps", stat_better::higher, "received frames per busy second (millions)",
               ctr_.busy_s > 0 ? double(net.rx_frames) / ctr_.busy_s / 1e6 : 0.0);

    json_t *result = json_object();
    json_object_set_new(result, "mode", json_string("vhost-user"));
    json_object_set_new(result, "socket", json_string(opt_.socket_path.c_str()));
    vs_features negotiated = {};
    for (unsigned bit = 0; bit < 64; bit++)
        if ((ctr_.last_features >> bit) & 1)
            vs_feature_set(&negotiated, bit);
    json_object_set_new(result, "negotiated_features", config_features_json(negotiated));
    json_object_set_new(result, "ring_format", json_string(ctr_.last_format.c_str()));
    json_object_set_new(result, "conformance", conformance_json(conf_));
    json_t *config = config_resolved_json(cfg_, false);
    std::string path = (std::filesystem::path(opt_.out_dir) / "stats.json").string();
    json_t *provenance = provenance_json(cfg_);
    bool ok = stats_write_json(path, provenance, config, result, st, err);
    json_decref(provenance);
    json_decref(config);
    json_decref(result);
    if (ok)
        logf("wrote %s (tx %llu frames, rx %llu frames, %llu violations)", path.c_str(),
             (unsigned long long)net.tx_frames, (unsigned long long)net.rx_frames,
             (unsigned long long)conf_.total);
    return ok;
}

int server::run()
{
    std::string err;
    if (!listen_socket(err)) {
        logf("error: %s", config_escaped(err).c_str()); // one line whatever the path holds
        if (listen_fd_ >= 0)
            close(listen_fd_);
        return SERVE_EXIT_PATH;
    }
    static const char *const backend_names[] = {"loopback", "sink", "responder"};
    const uint8_t *ip = cfg_.dev.responder.ipv4, *mac = cfg_.dev.responder.mac;
    char peer[64] = "";
    if (cfg_.dev.backend == VDEV_BACKEND_RESPONDER)
        std::snprintf(peer, sizeof peer, " for %u.%u.%u.%u at %02x:%02x:%02x:%02x:%02x:%02x", ip[0],
                      ip[1], ip[2], ip[3], mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    logf("listening on %s (features offered 0x%llx, %u queue pair%s, backend %s%s)",
         config_escaped(opt_.socket_path).c_str(), (unsigned long long)offered_, pairs_, pairs_ > 1 ? "s" : "",
         backend_names[cfg_.dev.backend], peer);
    std::fflush(stderr);
    const auto deadline = start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                       std::chrono::duration<double>(opt_.duration_s));
    while (!serve_stop_requested()) {
        if (opt_.duration_s > 0 && std::chrono::steady_clock::now() >= deadline)
            break;
        if (conn_.fd < 0) {
            struct pollfd p = {listen_fd_, POLLIN, 0};
            if (poll(&p, 1, 200) <= 0)
                continue;
            int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                continue;
            conn_.fd = fd;
            ctr_.connections++;
            logf("front end connected");
            continue;
        }
        serve_connection_pass();
    }
    if (conn_.fd >= 0)
        teardown(false);
    close(listen_fd_);
    unlink(opt_.socket_path.c_str());
    if (!write_stats(err)) {
        logf("error: %s", err.c_str());
        return SERVE_EXIT_FAILED;
    }
    return 0;
}

void server::serve_connection(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    conn_.fd = fd;
    ctr_.connections++;
    while (conn_.fd >= 0)
        serve_connection_pass();
}

} // namespace

int vhost_user_serve(const vs_config &cfg, const serve_options &opt)
{
    serve_install_signals();
    server s(cfg, opt);
    return s.run();
}

void vhost_user_serve_connection(const vs_config &cfg, const serve_options &opt, int fd)
{
    shared_memory_install_sigbus_handler();
    server s(cfg, opt);
    s.serve_connection(fd);
}
