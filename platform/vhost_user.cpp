// vhost_user.cpp -- the vhost-user back end (see vhost_user.h).
//
// Protocol (written from the public description of vhost-user, QEMU's
// docs/interop/vhost-user.rst): every message is a 12-byte header (request code,
// flags with the version 1 in bits 0-1, bit 2 "reply", bit 3 "need reply"; payload
// size) and a payload; file descriptors travel beside the header as SCM_RIGHTS
// ancillary data. The front end owns the driver and the PCI function; viosim plays the
// device: the same transport and virtio-net personality as a simulation
// (model/pci_transport.h, model/virtio_net.h) on the same timed platform
// (platform/external_host.h: the device's engines, DMA engine, link, root complex,
// memory), reached through the transport's calls for a front end without registers
// (pt_fe_*, applied with external_host::front_end at the current simulated time):
// SET_FEATURES attaches, SET_VRING_KICK starts a queue at SET_VRING_BASE's position,
// GET_VRING_BASE stops it and reads the position back; kicks are external_host::kick,
// and each used buffer notification's MSI-X message becomes a write to its ring's call
// eventfd when it arrives in simulated time (on_msi). Guest memory is the front end's
// shared memory, mapped from the descriptors it passes with the memory table and given
// to the platform as its guest memory: the engines' DMA reaches it through the link and
// the root complex (an address outside every region is a DMA error that puts the device
// in NEEDS_RESET with a named reason, never a crash).
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
// kick eventfds and the simulation, in one poll loop, so control messages and ring
// processing never race. After each pass over the socket and the kicks the platform
// runs until the device waits for the front end again, at most a slice of simulated
// time (docs/bring-up.md, "The simulated clock"); while it has work left the loop does
// not sleep.
#include "vhost_user.h"

#include <jansson.h>

#include <algorithm>
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

#include "device_platform.h"
#include "external_host.h"
#include "provenance.h"
#include "shared_memory.h"
#include "stats.h"

extern "C" {
#include "conformance.h"
#include "net_backend.h"
#include "vdev.h"
#include "virtio_wire.h"
}

namespace viosim {

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

// The device's own counters are the platform's (the kernels', the engines', the link's,
// external_host::collect); these are serve's.
struct serve_counters {
    uint64_t connections = 0, connections_failed = 0, messages = 0;
    uint64_t rx_merge_returned = 0;          // buffers of a merged frame left unpublished at a stop
    uint64_t kicks = 0;                      // eventfd reads that found notifications
    uint64_t kick_events = 0;                // notifications those reads carried (eventfd count)
    uint64_t calls = 0;                      // used buffer notifications sent (call eventfd writes)
    uint64_t calls_no_fd = 0;                // decided, but the front end gave no call fd
    uint64_t rings_broken = 0;
    uint64_t memory_faults = 0;              // accesses refused after a SIGBUS (shrunk memory)
    double busy_s = 0; // wall-clock time from the first to the last frame of each connection
    uint64_t last_features = 0;
    bool have_features = false;
    std::string last_format;
};

// Guest memory the front end may shrink under the device: shared_memory.h watches every
// mapping for SIGBUS; the platform's memory (host_memory, over these mappings as shared
// regions) refuses an access that met shared_memory_faulted() as one outside every
// region, so the ring stops at once, and the server closes the connection once the
// simulation slice returns (server::check_memory) and goes on serving.
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
    // The platform's guest memory: every region shared with the front end.
    std::vector<memory_region> platform_regions() const
    {
        std::vector<memory_region> v;
        for (const region &r : regions)
            v.push_back({r.gpa, r.size, r.host, true});
        return v;
    }
    // The caller has taken the regions away from the platform first.
    void unmap()
    {
        shared_memory_unwatch_all();
        for (region &r : regions)
            if (r.map)
                munmap(r.map, r.map_len);
        regions.clear();
    }
};

// ---- One ring ----

struct ring {
    // As the front end configured it.
    uint16_t num = 0;
    uint64_t desc_ua = 0, used_ua = 0, avail_ua = 0; // front-end virtual addresses
    uint32_t base = 0;                               // SET_VRING_BASE value
    bool have_addr = false;
    int kick_fd = -1, call_fd = -1, err_fd = -1;
    bool enabled = false; // SET_VRING_ENABLE (starts enabled without PROTOCOL_FEATURES)
    bool started = false; // kick fd received and the ring accepted (ring_start)
    // The function's queue runs on it (started and enabled): a disabled ring's queue is
    // stopped, its position kept in base, and resumes there once enabled.
    bool running = false;
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

// Simulated time one pass may run the platform for (run_until_idle's bound): the
// device goes on until it waits for the front end or this much simulated time has
// passed; then the loop looks at the socket and the kicks and runs the next slice.
// (A function: no sc_time may exist before the platform sets the time resolution.)
sc_core::sc_time slice() { return sc_core::sc_time(100, sc_core::SC_US); }

// The configuration of the platform serve builds: the device as `viosim run` builds it
// (device.*, its device.queue_pairs_count pairs included), with what vhost-user decides:
// merged receive buffers always offered (serve has always offered VIRTIO_NET_F_MRG_RXBUF,
// whatever device.mrg_rxbuf says); no device-memory suppression window and no
// NOTIFICATION_DATA hint to count from (vhost-user has neither); MSI-X, whatever the
// function's PCI presentation (the front end owns it): each queue's used buffer
// notifications come out on its own vector (pt_fe_attach), for its ring's call eventfd.
vs_config serve_platform_config(const vs_config &cfg)
{
    vs_config c = cfg;
    vdev_params &p = c.dev;
    p.no_msix = false;
    p.bars_32bit = false;
    if (!p.queue_pairs)
        p.queue_pairs = 1;
    p.mrg_rxbuf = true;
    p.devmem_event = p.devmem_event_recheck = false;
    if (p.fetch_source == VQ_FETCH_HINT)
        p.fetch_source = VQ_FETCH_ONE;
    c.bench.enabled = false; // the front end's driver is the workload (no DMA benchmark)
    return c;
}

// One platform per process (SystemC elaborates once): built by the first server from
// its configuration and kept for the process's life, so its device (pairs, backend,
// timing) is that configuration's for every later server too; each connection resets
// the function when it first starts a ring (pt_fe_attach). The fuzz targets serve many
// connections in one process this way.
struct serve_platform {
    std::unique_ptr<external_host> host;
    vs_config cfg;   // what it was built with (serve_platform_config)
    std::string why; // why it could not be built
};

serve_platform &process_platform(const vs_config &cfg)
{
    static serve_platform p;
    if (!p.host && p.why.empty()) {
        p.cfg = serve_platform_config(cfg);
        p.host = external_host::create(p.cfg, {}, p.why);
    }
    return p;
}

class server {
public:
    server(const vs_config &cfg, const serve_options &opt)
        : cfg_(cfg), opt_(opt), plat_(process_platform(cfg)), dcfg_(plat_.cfg),
          pairs_(unsigned(dcfg_.dev.queue_pairs)), host_(plat_.host.get()), pair_used_(pairs_, false)
    {
        if (!host_)
            throw std::runtime_error(plat_.why);
        if (pairs_ > SERVE_VHOST_PAIRS_MAX) // main refuses it first, naming the parameter
            throw std::invalid_argument("device.queue_pairs_count above what vhost-user can name");
        const host_memory &mem = host_->platform().mem;
        faults_seen_ = mem.faults;
        errors_at_start_ = mem.errors - mem.faults;
        // Each used buffer notification, when it reaches the interrupt controller in
        // simulated time, goes to its ring's call eventfd.
        host_->on_msi = [this](uint64_t addr, uint32_t data) { deliver_interrupt(addr, data); };
        offered_ = (1ull << VIRTIO_F_VERSION_1_BIT) | (1ull << VIRTIO_F_RING_PACKED_BIT) |
                   (1ull << VIRTIO_F_IN_ORDER_BIT) | (1ull << VIRTIO_F_INDIRECT_DESC_BIT) |
                   (1ull << VIRTIO_F_EVENT_IDX_BIT) | (1ull << VIRTIO_NET_F_MRG_RXBUF_BIT);
        if (pairs_ > 1)
            offered_ |= 1ull << VIRTIO_NET_F_MQ_BIT;
        offered_ &= ~(uint64_t(dcfg_.dev.withdraw.w[0]) | uint64_t(dcfg_.dev.withdraw.w[1]) << 32);
    }
    ~server() { host_->on_msi = nullptr; }
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
    void ring_run(uint16_t i, bool run);
    void device_failed();
    void update_pairs();
    unsigned rings() const { return 2 * pairs_; }
    const vdev &dev() const { return host_->platform().dev.kernel(); }
    // The function needs a reset: every ring stops.
    bool broken() const { return dev().tp.error != VS_REASON_NONE; }
    void deliver_interrupt(uint64_t addr, uint32_t data);
    void simulate();
    void note_frame();
    bool write_stats(std::string &err);

    const vs_config &cfg_;
    const serve_options &opt_;
    int listen_fd_ = -1;
    connection conn_;
    // The platform: the function (transport and personality) with its engines, DMA
    // engine, link, root complex and memory, as a simulation builds them; dcfg_ its
    // configuration (the device's parameters come from it).
    serve_platform &plat_;
    const vs_config &dcfg_;
    const unsigned pairs_; // device.queue_pairs_count
    external_host *host_;
    bool idle_ = true;                // the last slice ended with the device waiting
    bool attached_ = false;           // pt_fe_attach since the connection began
    uint64_t attached_features_ = 0;  // what it was attached with
    bool failure_logged_ = false;
    std::vector<bool> pair_used_;     // a ring of pair k+1 started, over the server's life
    uint64_t offered_;
    serve_counters ctr_;
    uint64_t faults_seen_ = 0;        // host_memory.faults already handled
    uint64_t errors_at_start_ = 0;    // host_memory's address errors before this server
    uint64_t frames_seen_ = 0;        // frames moved when last looked (note_frame)
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

// Runs or stops ring i's queue in the function. Stopping publishes what was pushed and
// keeps the position in r.base for GET_VRING_BASE and a later restart. A merged receive
// frame cut by the stop keeps its buffers unpublished (the personality holds a frame's
// buffers until its last one); the frame stays at the head of the receive FIFO and
// starts over after a restart. Running resumes at r.base (a position ring_start
// accepted, or one a stop gave back).
void server::ring_run(uint16_t i, bool run)
{
    ring &r = conn_.r[i];
    if (run == r.running)
        return;
    if (!run) {
        uint32_t held = 0;
        host_->front_end([&](vdev &d, const vs_guest_ops &ops) {
            r.base = pt_fe_queue_stop(&d.tp, i, &ops, r.base, &held);
        });
        ctr_.rx_merge_returned += held;
        r.running = false;
        return;
    }
    const uint64_t packed = conn_.features & (1ull << VIRTIO_F_RING_PACKED_BIT);
    struct pt_fe_ring fr = {r.num, 0, 0, 0, r.base};
    conn_.mem.uaddr_to_gpa(r.desc_ua, uint64_t(r.num) * 16, fr.desc);
    conn_.mem.uaddr_to_gpa(r.avail_ua, packed ? 4 : 6 + 2 * uint64_t(r.num), fr.driver);
    conn_.mem.uaddr_to_gpa(r.used_ua, packed ? 4 : 6 + 8 * uint64_t(r.num), fr.device);
    enum pt_fe_start st = PT_FE_NOT_ATTACHED;
    host_->front_end([&](vdev &d, const vs_guest_ops &) {
        enum vs_reason why;
        st = pt_fe_queue_start(&d.tp, i, &fr, &why);
    });
    r.running = st == PT_FE_STARTED; // ring_start checked this ring's start already
}

// Stops ring i for the front end (GET_VRING_BASE, a new kick fd, the end): its queue
// stops, r.base keeps the position.
void server::ring_stop(uint16_t i)
{
    ring_run(i, false);
    conn_.r[i].started = false;
    update_pairs();
}

// The pairs in use are the pairs the front end uses: the leading pairs whose two rings
// are started and enabled (QEMU enables the rings of pairs 1..k when its driver's
// VQ_PAIRS_SET asks for k; DPDK's virtio-user those of the queues it was given), at
// least pair 1 ("Device Initialization": receiveq1 and transmitq1 are always used). The
// device's pairs in use are a count, as VQ_PAIRS_SET's virtqueue_pairs: a pair enabled
// after a gap is not in use (its transmit ring takes no buffer) until the gap closes.
void server::update_pairs()
{
    if (!attached_ || broken())
        return;
    auto in_use = [&](unsigned i) { return conn_.r[i].started && conn_.r[i].enabled; };
    unsigned k = 0;
    while (k < pairs_ && in_use(2 * k) && in_use(2 * k + 1))
        k++;
    const uint16_t want = uint16_t(std::max(k, 1u));
    if (want == dev().net.pairs)
        return;
    // More than one without VIRTIO_NET_F_MQ is refused (ring_start refuses those rings).
    host_->front_end([&](vdev &d, const vs_guest_ops &) { vnet_fe_set_pairs(&d.net, want); });
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
    // What the engines were doing ends before the memory goes (bounded: an access left
    // in flight after the bound finds no region and fails, never unmapped memory).
    host_->run_until_idle(slice());
    idle_ = true;
    host_->set_guest_memory({});
    conn_.mem.unmap();
    faults_seen_ = host_->platform().mem.faults;
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

// The function needs a reset (driver input the device cannot accept, pt_fail, which
// records a driver's violation in the function's conformance record): logged once.
// NEEDS_RESET is the device's, not a queue's ("Device Status Field"), so one ring's bad
// input stops all pairs (no queue is live: the engines sleep). vhost-user has no
// DEVICE_NEEDS_RESET to raise without the STATUS protocol feature; the front end sees
// the rings stall and GET_VRING_BASE reports where they stopped. A ring started
// afterwards resets the function (ring_start).
void server::device_failed()
{
    // A fault of shrunk memory is not the driver's doing: the connection is closed with
    // its own log line (check_memory).
    if (failure_logged_ || host_->platform().mem.faults != faults_seen_)
        return;
    failure_logged_ = true;
    const enum vs_reason why = dev().tp.error;
    const uint16_t i = dev().tp.error_queue;
    if (i < rings())
        logf("ring %u (%s%u) stopped: %s; the function needs a reset, so all %u rings stop", i,
             is_tx(i) ? "transmitq" : "receiveq", i / 2 + 1, vs_reason_name(why), rings());
    else
        logf("the function needs a reset: %s; all %u rings stop", vs_reason_name(why), rings());
    ctr_.rings_broken++;
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
        // VIRTIO_F_ORDER_PLATFORM is the transport's too: the platform's memory orders
        // a shared region's stores and loads (host_memory, shared_memory_store), so the
        // device needs no read-back before publishing ("Reserved Feature Bits"); the
        // front end is not offered it.
        attached_ = false;
        for (uint16_t j = 0; j < rings(); j++)
            ring_stop(j);
        vs_features f = {};
        f.w[0] = uint32_t(conn_.features);
        f.w[1] = uint32_t(conn_.features >> 32);
        vs_feature_set(&f, VIRTIO_F_ORDER_PLATFORM_BIT);
        host_->front_end([&](vdev &d, const vs_guest_ops &) { pt_fe_attach(&d.tp, &f); });
        attached_ = true;
        attached_features_ = conn_.features;
        failure_logged_ = false;
    }
    enum vs_reason why = VS_REASON_NONE;
    enum pt_fe_start st = PT_FE_NOT_ATTACHED;
    host_->front_end([&](vdev &d, const vs_guest_ops &) { st = pt_fe_queue_start(&d.tp, i, &fr, &why); });
    switch (st) {
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
    r.started = r.running = true;
    // A disabled ring is accepted but does not run until enabled (vhost-user.rst, "Ring
    // states"): its queue stops again at once, keeping the position.
    if (!r.enabled)
        ring_run(i, false);
    pair_used_[i / 2] = true;
    update_pairs();
    return true;
}

// The interrupt controller's side: a used buffer notification of queue q (vector 1 + q,
// pt_fe_attach) goes to its ring's call eventfd when it arrives in simulated time
// (configuration changes have nowhere to go without the STATUS protocol feature).
void server::deliver_interrupt(uint64_t addr, uint32_t data)
{
    const struct msix_message m = {addr, data, uint16_t(data)};
    const uint16_t q = pt_fe_msi_queue(&dev().tp, &m);
    if (q == PT_NO_QUEUE || q >= rings())
        return;
    ring &r = conn_.r[q];
    if (r.call_fd < 0) {
        ctr_.calls_no_fd++;
        return;
    }
    uint64_t one = 1;
    if (write(r.call_fd, &one, sizeof one) == sizeof one)
        ctr_.calls++;
}

void server::note_frame()
{
    const uint64_t frames = dev().net.stats.tx_frames + dev().net.stats.rx_frames;
    if (frames == frames_seen_)
        return;
    frames_seen_ = frames;
    conn_.last_frame = std::chrono::steady_clock::now();
    if (!conn_.had_frame) {
        conn_.first_frame = conn_.last_frame;
        conn_.had_frame = true;
    }
}

// One slice of simulated time: the platform runs until the device waits for the front
// end (every engine asleep on a notification, nothing in flight) or slice() has passed.
// Then what happened is looked at: a failure of the function, a fault of shrunk memory.
void server::simulate()
{
    idle_ = host_->run_until_idle(slice());
    note_frame();
    if (broken())
        device_failed();
    check_memory();
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
    const host_memory &mem = host_->platform().mem;
    if (mem.faults == faults_seen_)
        return true;
    ctr_.memory_faults += mem.faults - faults_seen_;
    faults_seen_ = mem.faults;
    if (conn_.fd < 0)
        return true;
    return fail("guest memory at 0x%llx vanished (SIGBUS): the front end shrank a region's "
                "file under the mapping", (unsigned long long)mem.fault_addr);
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
        // Into the function's conformance record, stamped with simulated time.
        if ((f & ~offered_) || !(f & (1ull << VIRTIO_F_VERSION_1_BIT)))
            host_->front_end([&](vdev &d, const vs_guest_ops &) {
                if (f & ~offered_)
                    vs_conf_report(&d.tp.vpci.conf, VS_RULE_FEATURE_NOT_OFFERED, 0xffff, f & ~offered_,
                                   offered_);
                if (!(f & (1ull << VIRTIO_F_VERSION_1_BIT)))
                    vs_conf_report(&d.tp.vpci.conf, VS_RULE_FEATURE_VERSION_1_DECLINED, 0xffff, f,
                                   offered_);
            });
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
        host_->set_guest_memory({}); // before the mappings go
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
        // The platform's guest memory: the device's DMA reaches these mappings through
        // the link, the root complex and the memory, with a run's timing.
        host_->set_guest_memory(conn_.mem.platform_regions());
        break;
    }
    case VU_SET_VRING_NUM: {
        if (!need_size(8) || !need_fds(0) || !ring_index(get_u32(0)))
            return false;
        const uint32_t num = get_u32(4);
        if (num == 0 || num > dcfg_.dev.queue_size_max)
            return fail("%s: ring %u size %u (1..device.queue_size_max_entries = %u)", name,
                        get_u32(0), num, dcfg_.dev.queue_size_max);
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
    {
        ring &r = conn_.r[get_u32(0)];
        r.enabled = get_u32(4) != 0;
        // A started ring's queue runs while it is enabled (a failed function's queues
        // stay stopped until a ring start resets it).
        if (r.started && (!r.enabled || !broken()))
            ring_run(uint16_t(get_u32(0)), r.enabled);
        update_pairs(); // the pairs the front end enables are the pairs in use
    }
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

// One pass over a connection: wait for a message or a kick (not at all while the device
// has work left), act on them at the current simulated time, then run the platform for
// a slice (simulate).
void server::serve_connection_pass()
{
    struct pollfd pfd[1 + RINGS_MAX];
    int ring_of[1 + RINGS_MAX];
    nfds_t n = 0;
    pfd[n] = {conn_.fd, POLLIN, 0};
    ring_of[n++] = -1;
    for (uint16_t i = 0; i < rings(); i++) {
        ring &r = conn_.r[i];
        if (!r.started || broken())
            continue;
        pfd[n] = {r.kick_fd, POLLIN, 0};
        ring_of[n++] = i;
    }
    int timeout_ms = idle_ ? 200 : 0;
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
        // The notification reaches the device now, in simulated time.
        if (r.running && !broken())
            host_->kick(uint16_t(ring_of[k]));
    }
    if (conn_.fd >= 0)
        simulate();
}

bool server::write_stats(std::string &err)
{
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    // The platform's statistics as `viosim run` writes them (sim.time_ns, the device with
    // its queues, interrupts, DMA, link, DMA engine, IOMMU; external_host::collect), then
    // serve's own.
    const run_result run = host_->collect();
    stats_table st = run.stats;
    const double sim_ns = st.find("sim.time_ns")->f64;
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
    const struct vnet_stats &net = dev().net.stats;
    const struct pt_stats &tps = dev().tp.stats;
    st.add_u64("device.tx.bytes", "bytes", stat_better::neutral,
               "frame bytes the device transmitted (without virtio-net header)", net.tx_bytes);
    st.add_u64("device.rx.bytes", "bytes", stat_better::higher,
               "frame bytes the device delivered to receive buffers (without virtio-net header)",
               net.rx_bytes);
    st.add_u64("device.rx.merge_returned", "count", stat_better::lower,
               "buffers of a merged frame left unpublished because the ring stopped mid-frame",
               ctr_.rx_merge_returned);
    st.add_u64("notify.kicks", "count", stat_better::lower, "kick eventfd reads that carried notifications", ctr_.kicks);
    st.add_u64("notify.kick_events", "count", stat_better::lower, "available buffer notifications those reads counted",
               ctr_.kick_events);
    st.add_u64("irq.calls", "count", stat_better::lower, "used buffer notifications sent (call eventfd writes)", ctr_.calls);
    st.add_u64("irq.calls_no_fd", "count", stat_better::lower, "notifications decided without a call eventfd",
               ctr_.calls_no_fd);
    // Guest-memory accesses, named as a simulation names the device's DMA.
    uint64_t reads = 0, writes = 0;
    for (unsigned k = 0; k < VS_DMA_KIND_COUNT; k++) {
        reads += tps.dma_reads[k];
        writes += tps.dma_writes[k];
    }
    const host_memory &mem = host_->platform().mem;
    st.add_u64("device.dma.errors", "count", stat_better::lower, "accesses outside every memory region",
               mem.errors - mem.faults - errors_at_start_);
    const uint64_t frames = net.tx_frames + net.rx_frames;
    st.add_f64("dma.transactions_per_frame", "count", stat_better::lower,
               "guest memory reads and writes per frame moved (TX + RX)",
               frames ? double(reads + writes) / double(frames) : 0.0);
    // Rates over simulated time: the device's time on the platform's clock, which runs
    // only while the server simulates (docs/bring-up.md, "The simulated clock").
    const double tx = double(net.tx_frames);
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
               tx > 0 ? double(host_->platform().link_tlps()) / tx : 0.0);
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
    // The function's conformance record (its time stamps simulated time).
    const struct vs_conformance &conf = dev().tp.vpci.conf;
    json_object_set_new(result, "conformance", conformance_json(conf));
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
             (unsigned long long)conf.total);
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
    const uint8_t *ip = dcfg_.dev.responder.ipv4, *mac = dcfg_.dev.responder.mac;
    char peer[64] = "";
    if (dcfg_.dev.backend == VDEV_BACKEND_RESPONDER)
        std::snprintf(peer, sizeof peer, " for %u.%u.%u.%u at %02x:%02x:%02x:%02x:%02x:%02x", ip[0],
                      ip[1], ip[2], ip[3], mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    logf("listening on %s (features offered 0x%llx, %u queue pair%s, backend %s%s)",
         config_escaped(opt_.socket_path).c_str(), (unsigned long long)offered_, pairs_, pairs_ > 1 ? "s" : "",
         backend_names[dcfg_.dev.backend], peer);
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
    std::unique_ptr<server> s;
    try {
        s.reset(new server(cfg, opt));
    } catch (const std::runtime_error &e) { // no platform (one per process)
        serve_log("error: %s", e.what());
        return SERVE_EXIT_FAILED;
    }
    return s->run();
}

void vhost_user_serve_connection(const vs_config &cfg, const serve_options &opt, int fd)
{
    shared_memory_install_sigbus_handler();
    server s(cfg, opt);
    s.serve_connection(fd);
}

} // namespace viosim
