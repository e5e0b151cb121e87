// test_serve.cpp -- `viosim serve --vhost-user` against a hostile local peer
// (docs/bring-up.md, "A hostile front end"). Each test starts the viosim binary as a
// subprocess and plays the front end over the unix socket: a peer that shrinks its
// shared memory under the mapping, stops in the middle of a message, starts a second
// server on a live socket, or passes values out of range. Message layout: vhost-user's
// 12-byte header (request, flags with version 1, payload size), payload, file
// descriptors as SCM_RIGHTS. Every wait is bounded (WAIT_S); nothing depends on speed.
#include <criterion/criterion.h>
#include <jansson.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/vhost_msg.h"
#include "common/viosim_run.hpp"
#include "provenance.h"
#include "stats.h"

using namespace viosim; // the platform's modules and configuration (platform/)

namespace {

constexpr int WAIT_S = 30; // bound on every wait: generous, never reached when it works

enum : uint32_t {
    GET_FEATURES = 1, SET_FEATURES = 2, SET_OWNER = 3, SET_MEM_TABLE = 5, SET_VRING_NUM = 8,
    SET_VRING_ADDR = 9, SET_VRING_BASE = 10, SET_VRING_KICK = 12,
};
constexpr uint64_t VERSION_1 = 1ull << 32;
constexpr size_t MEM_BYTES = 64 * 1024;

double now_s()
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

void nap() { usleep(10 * 1000); }

struct serve_proc {
    pid_t pid = -1;
    std::string dir, sock;
    ~serve_proc()
    {
        if (pid > 0) { // a test that failed midway: never leave the server running
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
        }
    }
    std::string log() const { return slurp(dir + "/serve.log"); }
};

const char *viosim_bin()
{
    const char *bin = std::getenv("VIOSIM");
    if (!bin)
        cr_skip_test("VIOSIM is not set (run through ctest)");
    return bin;
}

// Starts `viosim serve ARGS...` with stdout and stderr into dir/serve.log.
pid_t spawn(const std::string &dir, const std::vector<std::string> &args)
{
    const char *bin = viosim_bin();
    std::vector<std::string> all = {bin, "serve"};
    all.insert(all.end(), args.begin(), args.end());
    const std::string log = dir + "/serve.log";
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        // A test that ends abnormally (ctest's timeout kills it) takes its server along;
        // an orphaned server spinning on a bug once filled the disk with its log.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        if (fd < 0)
            _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        std::vector<char *> argv;
        for (auto &a : all)
            argv.push_back(const_cast<char *>(a.c_str()));
        argv.push_back(nullptr);
        execv(bin, argv.data());
        _exit(127);
    }
    return pid;
}

// The exit status of pid, waiting at most WAIT_S; -1 (and the process killed) if it did
// not exit, 128 + signal if a signal ended it.
int wait_exit(pid_t &pid)
{
    const double until = now_s() + WAIT_S;
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (now_s() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, nullptr, 0);
            pid = -1;
            return -1;
        }
        nap();
    }
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// `viosim serve ARGS...` run to its end (bounded): exit status and its log.
int serve_once(const std::vector<std::string> &args, std::string &log)
{
    const std::string dir = temp_dir();
    pid_t pid = spawn(dir, args);
    const int rc = wait_exit(pid);
    log = slurp(dir + "/serve.log");
    return rc;
}

int try_connect(const std::string &path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    if (connect(fd, reinterpret_cast<struct sockaddr *>(&sa), sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// Connects to the server's socket, waiting (bounded) for it to listen.
int connect_wait(const serve_proc &s)
{
    const double until = now_s() + WAIT_S;
    for (;;) {
        int fd = try_connect(s.sock);
        if (fd >= 0)
            return fd;
        int st;
        cr_assert_eq(waitpid(s.pid, &st, WNOHANG), 0, "viosim serve exited early:\n%s",
                     s.log().c_str());
        cr_assert_lt(now_s(), until, "viosim serve never listened on %s:\n%s", s.sock.c_str(),
                     s.log().c_str());
        nap();
    }
}

void start(serve_proc &s, const std::vector<std::string> &extra = {})
{
    s.dir = temp_dir();
    s.sock = s.dir + "/sock";
    std::vector<std::string> args = {"--vhost-user", s.sock, "--out", s.dir};
    args.insert(args.end(), extra.begin(), extra.end());
    s.pid = spawn(s.dir, args);
}

// SIGTERM, then the exit status (bounded) and stats.json.
int stop(serve_proc &s, run_out &r)
{
    kill(s.pid, SIGTERM);
    const int rc = wait_exit(s.pid);
    json_error_t e;
    r.stats = json_load_file((s.dir + "/stats.json").c_str(), 0, &e);
    r.err = s.log();
    return rc;
}

void send_msg(int fd, uint32_t req, const void *payload, uint32_t size, const std::vector<int> &fds = {})
{
    std::vector<uint8_t> buf(12 + size);
    const uint32_t hdr[3] = {req, 1, size};
    std::memcpy(buf.data(), hdr, 12);
    if (size)
        std::memcpy(buf.data() + 12, payload, size);
    cr_assert_eq(vhost_sendmsg(fd, buf.data(), buf.size(), fds, 0), ssize_t(buf.size()),
                 "sendmsg: %s", std::strerror(errno));
}

void send_u64(int fd, uint32_t req, uint64_t v, const std::vector<int> &fds = {})
{
    send_msg(fd, req, &v, 8, fds);
}

void send_u32_pair(int fd, uint32_t req, uint32_t a, uint32_t b)
{
    const uint32_t p[2] = {a, b};
    send_msg(fd, req, p, 8);
}

// Waits (bounded) for something to read: true if the peer closed the connection.
bool closed_by_peer(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, WAIT_S * 1000) <= 0)
        return false;
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

// A well-formed GET_FEATURES answered: the server serves this connection.
void expect_served(int fd)
{
    send_msg(fd, GET_FEATURES, nullptr, 0);
    struct pollfd p = {fd, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, WAIT_S * 1000), 1, "no reply to GET_FEATURES");
    uint8_t reply[20];
    cr_assert_eq(recv(fd, reply, sizeof reply, MSG_WAITALL), 20, "no reply to GET_FEATURES: the connection was closed");
    uint32_t hdr[3];
    std::memcpy(hdr, reply, 12);
    cr_assert_eq(hdr[0], GET_FEATURES);
    cr_assert(hdr[1] & 4, "not a reply");
    uint64_t f;
    std::memcpy(&f, reply + 12, 8);
    cr_assert(f & VERSION_1);
}

// SET_MEM_TABLE: one region of MEM_BYTES at guest address 0 (front end address 0).
void send_mem_table(int fd, int mem)
{
    uint8_t p[8 + 32] = {};
    const uint32_t n = 1;
    const uint64_t region[4] = {0, MEM_BYTES, 0, 0}; // gpa, size, uaddr, mmap offset
    std::memcpy(p, &n, 4);
    std::memcpy(p + 8, region, 32);
    send_msg(fd, SET_MEM_TABLE, p, sizeof p, {mem});
}

// transmitq1 (ring 1, split: only VERSION_1 negotiated) set up in the memory table's
// region and started by its kick fd, which holds one notification.
void start_split_tx(int fd)
{
    send_u32_pair(fd, SET_VRING_NUM, 1, 8);
    const uint64_t addr[5] = {1, 0x0, 0x2000, 0x1000, 0}; // index, flags; desc, used, avail
    uint8_t p[40];
    std::memcpy(p, addr, 40);
    send_msg(fd, SET_VRING_ADDR, p, 40);
    send_u32_pair(fd, SET_VRING_BASE, 1, 0);
    int kick = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
    cr_assert_geq(kick, 0);
    send_u64(fd, SET_VRING_KICK, 1, {kick});
    close(kick);
}

int memfd(unsigned flags = 0)
{
    int mem = memfd_create("test-serve", MFD_CLOEXEC | flags);
    cr_assert_geq(mem, 0);
    cr_assert_eq(ftruncate(mem, MEM_BYTES), 0);
    return mem;
}

bool contains(const std::string &hay, const std::string &needle)
{
    return hay.find(needle) != std::string::npos;
}

size_t count_lines_with(const std::string &hay, const std::string &needle)
{
    size_t n = 0;
    for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1))
        n++;
    return n;
}

} // namespace

// 1. The front end shrinks its shared memory after the device mapped it: the device's
// first access to the ring (virtio spec 2.7 "Split Virtqueues": the device reads the
// available ring, writes the used ring's flags) meets no page. Served on: the connection
// ends with one log line, the next front end is served, stats.json keeps the counts.
Test(serve, shrunk_memory_ends_only_that_connection)
{
    serve_proc s;
    start(s);
    int a = connect_wait(s);
    int mem = memfd();
    send_u64(a, SET_FEATURES, VERSION_1);
    send_msg(a, SET_OWNER, nullptr, 0);
    send_mem_table(a, mem);
    expect_served(a); // the memory table was mapped
    cr_assert_eq(ftruncate(mem, 0), 0);
    start_split_tx(a);
    close(mem);
    cr_assert(closed_by_peer(a), "the connection was not closed:\n%s", s.log().c_str());
    close(a);
    int b = connect_wait(s);
    expect_served(b);
    close(b);
    run_out r;
    cr_assert_eq(stop(s, r), 0, "serve did not survive:\n%s", r.err.c_str());
    cr_assert_not_null(r.stats, "no stats.json:\n%s", r.err.c_str());
    cr_expect_geq(r.stat("vhost.memory_faults"), 1);
    cr_expect_eq(r.stat("vhost.connections"), 2);
    // Its provenance, as a run's: the build, and the hash of the "config" object's text.
    const json_t *prov = json_object_get(r.stats, "provenance");
    const char *version = json_string_value(json_object_get(prov, "version"));
    cr_expect(version && std::strncmp(version, VIOSIM_VERSION "+", 4) == 0, "%s", version);
    const std::string hash = fnv1a64_text(stats_json_text(json_object_get(r.stats, "config")));
    cr_expect_str_eq(json_string_value(json_object_get(prov, "config_hash")), hash.c_str());
    cr_expect_eq(json_integer_value(json_object_get(prov, "seed")), 1);
    // Every statistic says which way is better; one a run writes too, the same way.
    cr_expect_gt(expect_every_better(r, "serve"), 50u);
    cr_expect_eq(r.better("vhost.memory_faults"), "lower");
    cr_expect_eq(r.better("vhost.connections"), "neutral");
    cr_expect_eq(r.better("throughput.tx_mpps"), "higher");
    cr_expect_eq(r.better("wall.rx_mpps"), "higher");
    cr_expect_eq(r.better("per_packet.dma_reads"), "lower");
    cr_expect_eq(r.better("device.queue.tx.interrupts_suppressed"), "higher");
    // Named as a run names them (stats.h's per-module tables), and known to the docs.
    for (const char *name : {"device.queue.rx.fetch.reads", "device.queue.tx.buffers", "device.tx.frames",
                             "device.rx.no_buffer", "device.dma.read_bytes"}) {
        cr_expect_not_null(json_object_get(json_object_get(r.stats, "stats"), name), "%s", name);
        cr_expect(stats_name_known(name), "%s", name);
    }
    // What the last front end negotiated, {"NAME": bit}.
    const json_t *f = json_object_get(json_object_get(r.stats, "result"), "negotiated_features");
    cr_expect_eq(json_integer_value(json_object_get(f, "VERSION_1")), 32);
    cr_expect_eq(json_object_size(f), 1u);
    cr_expect_eq(r.stat("vhost.connections_failed"), 1);
    cr_expect_eq(count_lines_with(r.err, "connection closed:"), 1, "%s", r.err.c_str());
    cr_expect(contains(r.err, "vanished (SIGBUS)"), "%s", r.err.c_str());
    struct stat st;
    cr_expect_neq(lstat(s.sock.c_str(), &st), 0, "socket file left behind");
}

// --require-sealed-memory: a region whose file can still shrink is refused at
// SET_MEM_TABLE; one sealed with F_SEAL_SHRINK (as QEMU's memory-backend-memfd seals) is
// taken.
Test(serve, require_sealed_memory_refuses_unsealed_regions)
{
    serve_proc s;
    start(s, {"--require-sealed-memory"});
    int a = connect_wait(s);
    int loose = memfd();
    send_u64(a, SET_FEATURES, VERSION_1);
    send_mem_table(a, loose);
    close(loose);
    cr_assert(closed_by_peer(a), "an unsealed region was taken:\n%s", s.log().c_str());
    close(a);
    int b = connect_wait(s);
    int sealed = memfd(MFD_ALLOW_SEALING);
    cr_assert_eq(fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK), 0);
    send_u64(b, SET_FEATURES, VERSION_1);
    send_mem_table(b, sealed);
    close(sealed);
    expect_served(b);
    close(b);
    run_out r;
    cr_assert_eq(stop(s, r), 0, "%s", r.err.c_str());
    cr_expect_eq(r.stat("vhost.connections_failed"), 1);
    cr_expect(contains(r.err, "not sealed against shrinking"), "%s", r.err.c_str());
    cr_expect(contains(r.err, "sealed against shrinking\n"), "%s", r.err.c_str());
}

// A front end sends a header and 3 of its 8 payload bytes and keeps the socket open: the
// message is given --message-timeout-s, then the connection is closed and the next
// front end (already waiting in the backlog) is served.
Test(serve, partial_message_times_out)
{
    serve_proc s;
    start(s, {"--message-timeout-s", "0.2"});
    int a = connect_wait(s);
    const uint32_t hdr[3] = {SET_FEATURES, 1, 8};
    cr_assert_eq(send(a, hdr, 12, MSG_NOSIGNAL), 12);
    cr_assert_eq(send(a, "\0\0\0", 3, MSG_NOSIGNAL), 3);
    int b = connect_wait(s); // queued while a holds the server
    cr_assert(closed_by_peer(a), "the partial message held the connection:\n%s", s.log().c_str());
    expect_served(b);
    close(a);
    close(b);
    run_out r;
    cr_assert_eq(stop(s, r), 0, "%s", r.err.c_str());
    cr_assert_not_null(r.stats);
    cr_expect_eq(r.stat("vhost.connections_failed"), 1);
    cr_expect(contains(r.err, "SET_FEATURES: message incomplete after 0.2 s: 3 of 8 payload bytes came"),
              "%s", r.err.c_str());
}

// Waits (bounded) until the server has read everything sent on fd: the bytes still
// queued for the peer (SIOCOUTQ on a unix socket) drop to 0.
void wait_read_by_server(int fd)
{
    const double until = now_s() + WAIT_S;
    int queued = -1;
    while (ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0 && now_s() < until)
        nap();
    cr_assert_eq(queued, 0, "the server did not read what was sent");
}

// The same partial message with an hour to complete, read by the server: a signal (and
// --duration-s) still stops the server at once, with stats.json written.
void stop_during_partial_message(int sig, const std::vector<std::string> &extra)
{
    serve_proc s;
    std::vector<std::string> args = {"--message-timeout-s", "3600"};
    args.insert(args.end(), extra.begin(), extra.end());
    start(s, args);
    int a = connect_wait(s);
    if (sig)
        expect_served(a); // the server is in the connection's loop
    // (With --duration-s the server may stop at any time, even before it reads the
    // partial message on a very slow machine: then the test proves less but holds.)
    const uint32_t hdr[3] = {SET_FEATURES, 1, 8};
    send(a, hdr, 12, MSG_NOSIGNAL);
    send(a, "\0\0\0", 3, MSG_NOSIGNAL);
    wait_read_by_server(a); // read, or dropped when the server closed the connection
    if (sig)
        kill(s.pid, sig);
    const int rc = wait_exit(s.pid);
    cr_assert_eq(rc, 0, "serve did not stop (status %d):\n%s", rc, s.log().c_str());
    json_error_t e;
    json_t *stats = json_load_file((s.dir + "/stats.json").c_str(), 0, &e);
    cr_assert_not_null(stats, "no stats.json:\n%s", s.log().c_str());
    json_decref(stats);
    close(a);
}

Test(serve, sigterm_during_partial_message) { stop_during_partial_message(SIGTERM, {}); }
Test(serve, sigint_during_partial_message) { stop_during_partial_message(SIGINT, {}); }
Test(serve, duration_during_partial_message)
{
    stop_during_partial_message(0, {"--duration-s", "3"});
}

// A second server on a live socket is refused (exit 2, the path named) and the first
// keeps serving; a stale socket (its server killed) is replaced.
Test(serve, live_socket_is_not_taken_over)
{
    serve_proc s;
    start(s);
    close(connect_wait(s));
    std::string log;
    const int rc = serve_once({"--vhost-user", s.sock, "--out", s.dir + "/second"}, log);
    cr_assert_eq(rc, 2, "second server: status %d\n%s", rc, log.c_str());
    cr_expect(contains(log, s.sock) && contains(log, "a server is already listening"), "%s",
              log.c_str());
    cr_expect_eq(count_lines_with(log, "\n"), 1, "%s", log.c_str());
    int a = connect_wait(s);
    expect_served(a);
    close(a);
    kill(s.pid, SIGKILL); // leaves its socket file behind
    wait_exit(s.pid);
    struct stat st;
    cr_assert_eq(lstat(s.sock.c_str(), &st), 0);
    serve_proc t;
    t.dir = s.dir;
    t.sock = s.sock;
    t.pid = spawn(t.dir, {"--vhost-user", t.sock, "--out", t.dir, "--duration-s", "60"});
    int b = connect_wait(t);
    expect_served(b);
    close(b);
    run_out r;
    cr_expect_eq(stop(t, r), 0, "%s", r.err.c_str());
}

// The socket's mode is 0600 whatever the umask, or what --socket-mode says.
static void expect_socket_mode(const std::vector<std::string> &extra, unsigned want)
{
    const mode_t old = umask(0);
    serve_proc s;
    start(s, extra);
    umask(old);
    close(connect_wait(s));
    struct stat st;
    cr_assert_eq(lstat(s.sock.c_str(), &st), 0);
    cr_expect_eq(st.st_mode & 07777, want, "mode %o, expected %o", st.st_mode & 07777, want);
    run_out r;
    cr_expect_eq(stop(s, r), 0, "%s", r.err.c_str());
}

Test(serve, socket_mode_default_0600) { expect_socket_mode({}, 0600); }
Test(serve, socket_mode_option) { expect_socket_mode({"--socket-mode", "0660"}, 0660); }

// Values refused before anything runs: exit 2, one line naming the option or the path.
static void expect_refused(const std::vector<std::string> &args, const std::string &named)
{
    std::string log;
    const int rc = serve_once(args, log);
    std::string all;
    for (const auto &a : args)
        all += a + " ";
    cr_expect_eq(rc, 2, "serve %s: status %d\n%s", all.c_str(), rc, log.c_str());
    cr_expect_eq(count_lines_with(log, "\n"), 1, "serve %s: not one line:\n%s", all.c_str(),
                 log.c_str());
    cr_expect(contains(log, named), "serve %s: '%s' not named:\n%s", all.c_str(), named.c_str(),
              log.c_str());
}

Test(serve, bad_values_refused)
{
    const std::string dir = temp_dir(), sock = dir + "/sock";
    for (const char *v : {"inf", "1e300", "9.3e9", "nan", "-1", "0", "1e-400", "5x", ""})
        expect_refused({"--vhost-user", sock, "--out", dir, "--duration-s", v}, "--duration-s");
    for (const char *v : {"0", "-1", "inf", "nan", "3601"})
        expect_refused({"--vhost-user", sock, "--out", dir, "--message-timeout-s", v},
                       "--message-timeout-s");
    for (const char *v : {"0400", "0500", "1777", "0x1ff", "9", "-0600", ""})
        expect_refused({"--vhost-user", sock, "--out", dir, "--socket-mode", v}, "--socket-mode");
}

// A vhost-user back end is no PCI function: it has no INTx pin or ISR status to offer
// (the front end's interrupts are call eventfds), so serve refuses device.msix=off.
Test(serve, msix_off_refused)
{
    const std::string dir = temp_dir(), sock = dir + "/sock";
    expect_refused({"--vhost-user", sock, "--out", dir, "--set", "device.msix=off"}, "device.msix");
}

Test(serve, bad_socket_paths_refused)
{
    const std::string dir = temp_dir();
    const std::string too_long = dir + "/" + std::string(120, 's');
    expect_refused({"--vhost-user", too_long, "--out", dir}, too_long);
    const std::string file = dir + "/file";
    std::fclose(std::fopen(file.c_str(), "w"));
    expect_refused({"--vhost-user", file, "--out", dir}, file);
    const std::string missing = dir + "/missing/sock";
    expect_refused({"--vhost-user", missing, "--out", dir}, missing);
    // A path holding a newline is still one line (escaped).
    expect_refused({"--vhost-user", dir + "/missing\n/sock", "--out", dir}, "missing\\n/sock");
}

namespace {

// A split ring of 8 at desc/avail/used in the shared memory (front end address = guest
// address), started at position 0 with a kick fd holding one notification.
void start_split_ring(int fd, uint32_t ring, uint64_t desc, uint64_t avail, uint64_t used)
{
    send_u32_pair(fd, SET_VRING_NUM, ring, 8);
    const uint64_t addr[5] = {ring, desc, used, avail, 0}; // index, flags; desc, used, avail
    uint8_t p[40];
    std::memcpy(p, addr, 40);
    send_msg(fd, SET_VRING_ADDR, p, 40);
    send_u32_pair(fd, SET_VRING_BASE, ring, 0);
    int kick = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
    cr_assert_geq(kick, 0);
    send_u64(fd, SET_VRING_KICK, ring, {kick});
    close(kick);
}

void put_split_desc(uint8_t *m, uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags)
{
    std::memcpy(m + table + 16 * i, &addr, 8);
    std::memcpy(m + table + 16 * i + 8, &len, 4);
    std::memcpy(m + table + 16 * i + 12, &flags, 2);
    const uint16_t next = 0;
    std::memcpy(m + table + 16 * i + 14, &next, 2);
}

uint16_t get16(const uint8_t *m, uint64_t at)
{
    // The server writes it concurrently: one aligned load.
    return *reinterpret_cast<const volatile uint16_t *>(m + at);
}

// A front end with shared memory: `viosim serve` started with extra arguments and
// connected, a MEM_BYTES memfd (send_mem_table passes it) mapped at m. finish() unmaps
// it, disconnects, stops the server (status 0) and reads its stats.json into r.
struct mapped_front_end {
    serve_proc s;
    int fd = -1, mem = -1;
    uint8_t *m = nullptr;
    explicit mapped_front_end(const std::vector<std::string> &extra = {})
    {
        start(s, extra);
        fd = connect_wait(s);
        mem = memfd();
        m = static_cast<uint8_t *>(mmap(nullptr, MEM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0));
        cr_assert_neq(m, MAP_FAILED);
    }
    // SET_OWNER, SET_FEATURES with these features, SET_MEM_TABLE with the memory.
    void own(uint64_t features)
    {
        send_msg(fd, SET_OWNER, nullptr, 0);
        send_u64(fd, SET_FEATURES, features);
        send_mem_table(fd, mem);
    }
    void finish(run_out &r)
    {
        munmap(m, MEM_BYTES);
        close(mem);
        close(fd);
        cr_assert_eq(stop(s, r), 0, "%s", r.err.c_str());
        cr_assert_not_null(r.stats, "no stats.json:\n%s", r.err.c_str());
    }
};

// Each named statistic of r has the value given.
void expect_stats(const run_out &r, std::initializer_list<std::pair<const char *, double>> want)
{
    for (const auto &w : want)
        cr_expect_eq(r.stat(w.first), w.second, "%s: %g, expected %g", w.first, r.stat(w.first), w.second);
}

} // namespace

// VIRTIO_NET_F_MRG_RXBUF through serve, as through the simulation (test_vdev.c's
// merged-receive tests run the same personality): "Processing of Incoming Packets" --
// a 200-byte frame looped back into 64-byte receive buffers fills four of them in ring
// order, every one but the last completely, each its own used element with the bytes
// written, and the first one's header carries num_buffers = 4.
Test(serve, merged_receive_buffers_come_from_the_personality)
{
    constexpr uint64_t MRG_RXBUF = 1ull << 15;
    constexpr uint16_t WRITE = 2;
    mapped_front_end fe;
    auto &[s, fd, mem, m] = fe;
    fe.own(VERSION_1 | MRG_RXBUF);
    // receiveq1 (ring 0): four 64-byte buffers at 0xA000 + 0x100 k, all available.
    for (unsigned k = 0; k < 4; k++) {
        put_split_desc(m, 0x4000, k, 0xA000 + 0x100 * k, 64, WRITE);
        const uint16_t id = uint16_t(k);
        std::memcpy(m + 0x4800 + 4 + 2 * k, &id, 2);
    }
    const uint16_t four = 4, one = 1;
    std::memcpy(m + 0x4800 + 2, &four, 2);
    // transmitq1 (ring 1): one buffer, a zero header and a 200-byte frame.
    uint8_t frame[200];
    for (unsigned j = 0; j < sizeof frame; j++)
        frame[j] = uint8_t(7 * j + 1);
    std::memset(m + 0x8000, 0, 12);
    std::memcpy(m + 0x8000 + 12, frame, sizeof frame);
    put_split_desc(m, 0x0, 0, 0x8000, 12 + sizeof frame, 0);
    std::memcpy(m + 0x1000 + 4, "\0\0", 2);
    std::memcpy(m + 0x1000 + 2, &one, 2);
    start_split_ring(fd, 0, 0x4000, 0x4800, 0x5000);
    start_split_ring(fd, 1, 0x0, 0x1000, 0x2000);
    const double until = now_s() + WAIT_S;
    while (get16(m, 0x5002) != 4 && now_s() < until)
        nap();
    cr_assert_eq(get16(m, 0x5002), 4, "receive used idx:\n%s", s.log().c_str());
    uint8_t got[12 + sizeof frame];
    uint32_t at = 0;
    for (unsigned k = 0; k < 4; k++) {
        uint32_t id, len;
        std::memcpy(&id, m + 0x5004 + 8 * k, 4);
        std::memcpy(&len, m + 0x5008 + 8 * k, 4);
        cr_expect_eq(id, k);
        cr_expect_eq(len, k < 3 ? 64u : 12u + sizeof frame - 3 * 64);
        std::memcpy(got + at, m + 0xA000 + 0x100 * k, len);
        at += len;
    }
    cr_assert_eq(at, sizeof got);
    uint16_t num_buffers;
    std::memcpy(&num_buffers, got + 10, 2); // struct virtio_net_hdr's last field
    cr_expect_eq(num_buffers, 4, "num_buffers");
    cr_expect_eq(std::memcmp(got + 12, frame, sizeof frame), 0, "frame corrupted");
    run_out r;
    fe.finish(r);
    expect_stats(r, {{"device.rx.merged_frames", 1},
                     {"device.rx.frames", 1},
                     {"device.tx.frames", 1},
                     {"device.rx.bytes", 200}});
    const json_t *f = json_object_get(json_object_get(r.stats, "result"), "negotiated_features");
    cr_expect_not_null(json_object_get(f, "MRG_RXBUF"));
}

// Work longer than one pass's bound (100 µs of simulated time) goes on in the passes
// after it: a 1 MHz device clock at 3000 cycles a frame needs 3 ms of simulated time for
// one frame, so 30 passes, with no kick in between. (Before, a pass whose next event lay
// past its bound returned with time unchanged, and serve spun on it forever.)
Test(serve, work_past_a_pass_bound_goes_on)
{
    constexpr uint16_t WRITE = 2;
    mapped_front_end fe({"--set", "device.clock_mhz=1", "--set", "device.packet_cycles=3000"});
    auto &[s, fd, mem, m] = fe;
    fe.own(VERSION_1);
    put_split_desc(m, 0x4000, 0, 0xA000, 2048, WRITE); // receiveq1: one 2 KiB buffer
    const uint16_t one = 1;
    std::memcpy(m + 0x4800 + 4, "\0\0", 2);
    std::memcpy(m + 0x4800 + 2, &one, 2);
    std::memset(m + 0x8000, 0, 12 + 60); // transmitq1: a zero header and a 60-byte frame
    m[0x8000 + 12] = 0x5a;
    put_split_desc(m, 0x0, 0, 0x8000, 12 + 60, 0);
    std::memcpy(m + 0x1000 + 4, "\0\0", 2);
    std::memcpy(m + 0x1000 + 2, &one, 2);
    start_split_ring(fd, 0, 0x4000, 0x4800, 0x5000);
    start_split_ring(fd, 1, 0x0, 0x1000, 0x2000);
    const double until = now_s() + WAIT_S;
    while (get16(m, 0x5002) != 1 && now_s() < until)
        nap();
    cr_assert_eq(get16(m, 0x5002), 1, "the frame came back:\n%s", s.log().c_str());
    cr_expect_eq(m[0xA000 + 12], 0x5a);
    run_out r;
    fe.finish(r);
    expect_stats(r, {{"device.tx.frames", 1}, {"device.rx.frames", 1}});
    cr_expect_geq(r.stat("sim.time_ns"), 3e6, "one frame took 3 ms of simulated time");
}

namespace {

// The 8-byte answer to a request that has one (GET_FEATURES, GET_PROTOCOL_FEATURES,
// GET_QUEUE_NUM), waiting at most WAIT_S.
uint64_t ask_u64(int fd, uint32_t req)
{
    send_msg(fd, req, nullptr, 0);
    struct pollfd p = {fd, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, WAIT_S * 1000), 1, "no reply to request %u", req);
    uint8_t reply[20];
    cr_assert_eq(recv(fd, reply, sizeof reply, MSG_WAITALL), 20, "no reply to request %u", req);
    uint32_t hdr[3];
    std::memcpy(hdr, reply, 12);
    cr_assert_eq(hdr[0], req);
    cr_assert_eq(hdr[2], 8u);
    uint64_t v;
    std::memcpy(&v, reply + 12, 8);
    return v;
}

// Ring r's areas in the 4-pair test: descriptors at 0x800 r, available ring + 0x100,
// used ring + 0x200; receive buffers (0x800 bytes) at 0x8000 + 0x800 pair, transmitted
// frames at 0xC000 + 0x100 pair.
uint64_t ring_at(unsigned r) { return 0x800u * r; }

// One buffer made available at entry 0 of ring r's split ring (idx 1).
void post_one(uint8_t *m, unsigned r, uint64_t addr, uint32_t len, uint16_t flags)
{
    put_split_desc(m, ring_at(r), 0, addr, len, flags);
    const uint16_t zero = 0, one = 1;
    std::memcpy(m + ring_at(r) + 0x100 + 4, &zero, 2);
    std::memcpy(m + ring_at(r) + 0x100 + 2, &one, 2);
}

} // namespace

// One function with device.queue_pairs_count = 4 pairs, as `viosim run` builds it
// ("Network Device": VIRTIO_NET_F_MQ, max_virtqueue_pairs; vhost-user's GET_QUEUE_NUM
// and its MQ protocol feature). Ring i is queue i ("Virtqueues": receiveqK 2(K-1),
// transmitqK 2(K-1)+1). The pairs the front end enables are the pairs in use
// ("Automatic receive steering in multiqueue mode": a frame transmitted on transmitqX
// is answered on receiveqX; no packet is queued on the receive queues of the pairs not
// in use): with pairs 1-3 enabled, transmitq3's frame comes back on receiveq3 alone and
// pair 4, started but not enabled, moves nothing until the front end enables it.
Test(serve, four_pairs_one_function)
{
    constexpr uint64_t MQ = 1ull << 22, PROTOCOL_FEATURES = 1ull << 30;
    constexpr uint32_t GET_PROTOCOL_FEATURES = 15, SET_PROTOCOL_FEATURES = 16, GET_QUEUE_NUM = 17,
                       SET_VRING_ENABLE = 18;
    constexpr uint16_t WRITE = 2;
    mapped_front_end fe({"--set", "device.queue_pairs_count=4"});
    auto &[s, fd, mem, m] = fe;
    const uint64_t offered = ask_u64(fd, GET_FEATURES);
    cr_expect(offered & MQ, "VIRTIO_NET_F_MQ not offered: 0x%llx", (unsigned long long)offered);
    cr_expect(offered & PROTOCOL_FEATURES);
    cr_expect(ask_u64(fd, GET_PROTOCOL_FEATURES) & 1, "the MQ protocol feature");
    cr_expect_eq(ask_u64(fd, GET_QUEUE_NUM), 4u, "GET_QUEUE_NUM");

    // With PROTOCOL_FEATURES the rings start disabled ("Ring states").
    fe.own(VERSION_1 | MQ | PROTOCOL_FEATURES);
    send_u64(fd, SET_PROTOCOL_FEATURES, 1);
    // A receive buffer on every pair, a 60-byte frame (its first byte the pair's number)
    // on transmitq1, transmitq3 and transmitq4.
    for (unsigned k = 0; k < 4; k++)
        post_one(m, 2 * k, 0x8000 + 0x800 * k, 0x800, WRITE);
    for (unsigned k : {0u, 2u, 3u}) {
        std::memset(m + 0xC000 + 0x100 * k, 0, 12);
        std::memset(m + 0xC000 + 0x100 * k + 12, int(0x10 + k), 60);
        post_one(m, 2 * k + 1, 0xC000 + 0x100 * k, 72, 0);
    }
    for (unsigned r = 0; r < 8; r++)
        start_split_ring(fd, r, ring_at(r), ring_at(r) + 0x100, ring_at(r) + 0x200);
    for (unsigned r = 0; r < 6; r++)
        send_u32_pair(fd, SET_VRING_ENABLE, r, 1);
    auto used_idx = [&](unsigned r) { return get16(m, ring_at(r) + 0x200 + 2); };
    double until = now_s() + WAIT_S;
    while ((used_idx(0) != 1 || used_idx(4) != 1) && now_s() < until)
        nap();
    cr_assert_eq(used_idx(4), 1, "receiveq3:\n%s", s.log().c_str());
    cr_assert_eq(used_idx(0), 1, "receiveq1:\n%s", s.log().c_str());
    cr_expect_eq(m[0x8000 + 0x800 * 2 + 12], 0x12, "receiveq3 holds transmitq3's frame");
    cr_expect_eq(m[0x8000 + 12], 0x10, "receiveq1 holds transmitq1's frame");
    expect_served(fd); // everything sent so far has been handled
    cr_expect_eq(used_idx(2), 0, "receiveq2: no frame is its");
    cr_expect_eq(used_idx(7), 0, "transmitq4: pair 4 is not enabled");
    cr_expect_eq(used_idx(6), 0, "receiveq4: pair 4 is not enabled");

    // Enabling pair 4 puts it in use: its frame goes round on it.
    send_u32_pair(fd, SET_VRING_ENABLE, 6, 1);
    send_u32_pair(fd, SET_VRING_ENABLE, 7, 1);
    until = now_s() + WAIT_S;
    while (used_idx(6) != 1 && now_s() < until)
        nap();
    cr_assert_eq(used_idx(6), 1, "receiveq4 once enabled:\n%s", s.log().c_str());
    cr_expect_eq(m[0x8000 + 0x800 * 3 + 12], 0x13, "receiveq4 holds transmitq4's frame");
    cr_expect_eq(used_idx(2), 0, "receiveq2 still has nothing");
    run_out r;
    fe.finish(r);
    // The names a simulation gives the same device's rows.
    expect_stats(r, {{"device.queue_pairs.offered", 4},
                     {"device.queue_pairs.used", 4},
                     {"device.tx.frames", 3},
                     {"device.rx.frames", 3},
                     {"device.queue.tx.buffers", 1},
                     {"device.queue.rx.buffers", 1},
                     {"device.queue.tx2.buffers", 0},
                     {"device.queue.rx2.buffers", 0},
                     {"device.queue.tx3.buffers", 1},
                     {"device.queue.rx3.buffers", 1},
                     {"device.queue.tx4.buffers", 1},
                     {"device.queue.rx4.buffers", 1},
                     {"vhost.rings_broken", 0}});
    const json_t *f = json_object_get(json_object_get(r.stats, "result"), "negotiated_features");
    cr_expect_not_null(json_object_get(f, "MQ"));
}

// serve.queue_pairs is gone (device.queue_pairs_count says it for run and serve alike):
// a configuration that still names it is refused, exit 2, one line naming the key.
Test(serve, old_serve_queue_pairs_refused)
{
    const std::string dir = temp_dir(), sock = dir + "/sock";
    expect_refused({"--vhost-user", sock, "--out", dir, "--set", "serve.queue_pairs=2"},
                   "'serve.queue_pairs'");
    const std::string file = dir + "/old.json";
    FILE *out = std::fopen(file.c_str(), "w");
    cr_assert_not_null(out);
    std::fputs("{\"serve\": {\"queue_pairs\": 2}}\n", out);
    std::fclose(out);
    expect_refused({"--vhost-user", sock, "--out", dir, file}, "'serve.queue_pairs'");
    // More pairs than a vhost-user ring index can name.
    expect_refused({"--vhost-user", sock, "--out", dir, "--set", "device.queue_pairs_count=129"},
                   "device.queue_pairs_count");
}

// NEEDS_RESET is the device's ("Device Status Field"), and serve's pairs are one
// function: a transmit buffer outside every memory region on transmitq2 ("Network
// Device / Device Operation / Transmitting Packets": the device reads the frame from
// it) stops every ring, pair 1's too, with one log line naming the ring. The next ring
// the front end starts resets the function; the other rings stay stopped until started
// again, and then pair 1 loops its frame back as before.
Test(serve, a_failure_stops_every_pair)
{
    constexpr uint64_t MQ = 1ull << 22;
    constexpr uint32_t GET_VRING_BASE = 11;
    constexpr uint16_t WRITE = 2;
    mapped_front_end fe({"--set", "device.queue_pairs_count=2"});
    auto &[s, fd, mem, m] = fe;
    // Without PROTOCOL_FEATURES every started ring is enabled: both pairs in use.
    fe.own(VERSION_1 | MQ);
    for (unsigned r = 0; r < 4; r++)
        if (r != 3)
            start_split_ring(fd, r, ring_at(r), ring_at(r) + 0x100, ring_at(r) + 0x200);
    // transmitq2's buffer lies past the 64 KiB region.
    post_one(m, 3, 0x100000, 72, 0);
    start_split_ring(fd, 3, ring_at(3), ring_at(3) + 0x100, ring_at(3) + 0x200);
    double until = now_s() + WAIT_S;
    while (!contains(s.log(), "stopped:") && now_s() < until)
        nap();
    const std::string log = s.log();
    cr_assert(contains(log, "ring 3 (transmitq2) stopped: DMA_OUT_OF_RANGE"), "%s", log.c_str());
    cr_expect(contains(log, "all 4 rings stop"), "%s", log.c_str());

    // Pair 1 is stopped too: its frame waits.
    post_one(m, 0, 0x8000, 0x800, WRITE);
    std::memset(m + 0xC000, 0, 12);
    std::memset(m + 0xC000 + 12, 0x21, 60);
    post_one(m, 1, 0xC000, 72, 0);
    start_split_ring(fd, 2, ring_at(2), ring_at(2) + 0x100, ring_at(2) + 0x200); // resets
    expect_served(fd);
    usleep(200 * 1000);
    auto used_idx = [&](unsigned r) { return get16(m, ring_at(r) + 0x200 + 2); };
    cr_expect_eq(used_idx(1), 0, "transmitq1 stays stopped until started again");
    cr_expect_eq(used_idx(0), 0);

    // The front end restarts pair 1's rings: the frame goes round.
    send_u32_pair(fd, GET_VRING_BASE, 1, 0);
    uint8_t reply[20];
    cr_assert_eq(recv(fd, reply, sizeof reply, MSG_WAITALL), 20, "no GET_VRING_BASE reply");
    start_split_ring(fd, 0, ring_at(0), ring_at(0) + 0x100, ring_at(0) + 0x200);
    start_split_ring(fd, 1, ring_at(1), ring_at(1) + 0x100, ring_at(1) + 0x200);
    until = now_s() + WAIT_S;
    while (used_idx(0) != 1 && now_s() < until)
        nap();
    cr_assert_eq(used_idx(0), 1, "receiveq1 after the restart:\n%s", s.log().c_str());
    cr_expect_eq(m[0x8000 + 12], 0x21);
    run_out r;
    fe.finish(r);
    expect_stats(r, {{"vhost.rings_broken", 1},
                     {"vhost.connections_failed", 0},
                     {"device.rx.frames", 1},
                     {"device.queue.tx2.buffers", 1}}); // the bad buffer was taken
}

// serve runs on the simulation's platform (docs/bring-up.md, "The simulated clock"): the
// device's engines process the rings, its DMA crosses the link, the root complex and
// host memory, so a session's stats.json has what `viosim run` writes for the device
// side -- sim.time_ns advanced by the device's work, the link's TLPs ("Split Virtqueues":
// the transmit descriptor and buffer are read, i.e. memory read requests upstream and
// completions with data downstream; the used ring is written, posted writes upstream),
// the DMA engine's transfers -- under a run's names, with serve's own rows beside them.
Test(serve, session_stats_are_the_platforms)
{
    constexpr uint16_t WRITE = 2;
    mapped_front_end fe;
    auto &[s, fd, mem, m] = fe;
    fe.own(VERSION_1);
    post_one(m, 0, 0x8000, 0x800, WRITE);
    std::memset(m + 0xC000, 0, 12);
    std::memset(m + 0xC000 + 12, 0x5a, 60);
    post_one(m, 1, 0xC000, 72, 0);
    start_split_ring(fd, 0, ring_at(0), ring_at(0) + 0x100, ring_at(0) + 0x200);
    start_split_ring(fd, 1, ring_at(1), ring_at(1) + 0x100, ring_at(1) + 0x200);
    auto used_idx = [&](unsigned r) { return get16(m, ring_at(r) + 0x200 + 2); };
    const double until = now_s() + WAIT_S;
    while (used_idx(0) != 1 && now_s() < until)
        nap();
    cr_assert_eq(used_idx(0), 1, "receiveq1:\n%s", s.log().c_str());
    cr_expect_eq(m[0x8000 + 12], 0x5a, "the frame came back");
    run_out r;
    fe.finish(r);
    cr_expect_gt(r.stat("sim.time_ns"), 0.0);
    // The device's reads cross the link: requests up, completions with data down.
    cr_expect_gt(r.stat("link.up.tlps.mrd"), 0.0);
    cr_expect_gt(r.stat("link.down.tlps.cpld"), 0.0);
    cr_expect_gt(r.stat("link.up.tlps.mwr"), 0.0); // used ring writes
    cr_expect_gt(r.stat("link.up.utilisation"), 0.0);
    cr_expect_gt(r.stat("dma.reads"), 0.0);
    cr_expect_gt(r.stat("dma.writes"), 0.0);
    cr_expect_gt(r.stat("dma.read_bytes"), 72.0); // the frame and its descriptor
    // Rows only the platform has (engines, time to interrupt, IOMMU) under a run's names.
    for (const char *name : {"device.queue.tx.busy_ns", "device.queue.rx.wakeups",
                             "device.time_to_interrupt.samples", "iommu.requests",
                             "device.msix_sent", "conformance.violations"}) {
        cr_expect_not_null(json_object_get(json_object_get(r.stats, "stats"), name), "%s", name);
        cr_expect(stats_name_known(name), "%s", name);
    }
    cr_expect_gt(r.stat("device.queue.tx.busy_ns"), 0.0);
    cr_expect_geq(r.stat("notify.kicks"), 1, "the kick eventfds were read");
    expect_stats(r, {{"device.tx.frames", 1}, {"device.rx.frames", 1}, {"conformance.violations", 0}});
    // serve's own beside them.
    cr_expect_eq(r.stat("vhost.connections"), 1);
    cr_expect_gt(r.stat("throughput.tx_mpps"), 0.0);
    cr_expect_gt(r.stat("per_packet.tlps"), 0.0);
}
