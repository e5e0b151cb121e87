// fuzz_vhost_live.cpp -- `viosim serve`'s connection handling (platform/vhost_user.cpp)
// against a hostile front end that acts while the server runs: it shrinks the shared
// memory under the server's mapping, kicks rings, and stops in the middle of a message
// while keeping the socket open. fuzz_vhost.cpp sends a whole stream and closes it
// before the server starts, so it can find neither a hang nor the shrink fault.
//
// Input (as fuzz_vhost.cpp, plus bits 3-4 and the harness requests):
//   byte 0        bits 0-1: device.backend (loopback, sink, responder; 3 = loopback),
//                 bit 2: device.queue_pairs_count 4 instead of 1,
//                 bit 3: --require-sealed-memory,
//                 bit 4: the shared memory is sealed against shrinking (F_SEAL_SHRINK)
//   bytes 1-2     n, little-endian (at most 16 KiB): the first bytes of the 64 KiB memory
//   the rest      vhost-user messages (12-byte header and what follows of the payload;
//                 sizes not corrected), with file descriptors as in fuzz_vhost.cpp, and
//                 harness requests, 12-byte headers that are not sent:
//                   0xffffff01  wait until the server has handled everything sent so far
//                               (a GET_QUEUE_NUM answered), then truncate the memory to
//                               the header's size field (at most 64 KiB)
//                   0xffffff02  the same wait only
//                   0xffffff03  write the kick eventfd of ring (size field & 0xff), then
//                               the same wait
// The server runs in its own thread from the start, with a message timeout of 20 ms. When
// the input's last message is cut short, the front end keeps the socket open: the server
// must end the connection by itself; otherwise the front end shuts its side down.
//
// Promise checked: the server ends the connection (no hang: libFuzzer's -timeout), never
// crashes (a SIGBUS from the shrunk memory is caught and ends the connection) and never
// touches memory outside what was mapped (the sanitizers watch).
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_vhost.h"
#include "vhost_user.h"

using namespace viosim; // the platform's modules and configuration (platform/)

namespace {

constexpr size_t MEM_BYTES = 64 * 1024;
constexpr size_t MEM_INIT_MAX = 16 * 1024;
constexpr unsigned MESSAGES_MAX = 128;
constexpr uint32_t HARNESS_SHRINK = 0xffffff01, HARNESS_SYNC = 0xffffff02, HARNESS_KICK = 0xffffff03;
constexpr uint32_t GET_QUEUE_NUM = 17;
constexpr int WAIT_MS = 2000; // a live server answers far sooner; a dead one closed the socket

// Sends one message with fds, waiting (bounded) for room; false if the server is gone.
bool send_message(int sock, const uint8_t *msg, size_t len, const std::vector<int> &fds)
{
    struct pollfd p = {sock, POLLOUT, 0};
    return poll(&p, 1, WAIT_MS) == 1 && (p.revents & POLLOUT) &&
           vhost_sendmsg(sock, msg, len, fds, MSG_DONTWAIT) == ssize_t(len);
}

// Reads len bytes, waiting (bounded); false at the end of the stream or the bound.
bool read_exact(int sock, uint8_t *buf, size_t len)
{
    while (len) {
        struct pollfd p = {sock, POLLIN, 0};
        if (poll(&p, 1, WAIT_MS) != 1)
            return false;
        ssize_t n = recv(sock, buf, len, MSG_DONTWAIT);
        if (n <= 0)
            return false;
        buf += n;
        len -= size_t(n);
    }
    return true;
}

// Everything sent so far has been handled: a GET_QUEUE_NUM sent now is answered (the
// replies before it are skipped). False if the server closed the connection.
bool sync_with_server(int sock)
{
    const uint32_t q[3] = {GET_QUEUE_NUM, 1, 0};
    if (!send_message(sock, reinterpret_cast<const uint8_t *>(q), 12, {}))
        return false;
    for (;;) {
        uint32_t hdr[3];
        uint8_t payload[256];
        if (!read_exact(sock, reinterpret_cast<uint8_t *>(hdr), 12) || hdr[2] > sizeof payload ||
            !read_exact(sock, payload, hdr[2]))
            return false;
        if (hdr[0] == GET_QUEUE_NUM)
            return true;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const vs_config cfg = vhost_fuzz_config(data[0]);
    serve_options opt;
    opt.message_timeout_s = 0.02;
    opt.require_sealed_memory = data[0] & 8;
    const bool seal = data[0] & 16;
    const size_t mem_init = std::min<size_t>({size_t(data[1] | data[2] << 8), MEM_INIT_MAX, size - 3});
    const uint8_t *p = data + 3 + mem_init;
    const uint8_t *const end = data + size;

    int mem = memfd_create("fuzz-vhost-live", MFD_CLOEXEC | (seal ? MFD_ALLOW_SEALING : 0));
    if (mem < 0 || ftruncate(mem, MEM_BYTES) != 0 || pwrite(mem, data + 3, mem_init, 0) != ssize_t(mem_init) ||
        (seal && fcntl(mem, F_ADD_SEALS, F_SEAL_SHRINK) != 0))
        __builtin_trap(); // the harness itself failed, not viosim
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        __builtin_trap();
    const int server_fd = sv[1];
    std::thread server([&cfg, &opt, server_fd] { vhost_user_serve_connection(cfg, opt, server_fd); });

    std::vector<int> owned;            // eventfds the harness made (closed at the end)
    std::map<unsigned, int> kick_of;   // ring -> its last kick eventfd
    bool cut = false;                  // the last message sent was cut short
    for (unsigned n = 0; n < MESSAGES_MAX && end - p >= 12; n++) {
        const uint32_t request = vhost_fuzz_u32(p), payload = vhost_fuzz_u32(p + 8);
        if (request == HARNESS_SHRINK || request == HARNESS_SYNC) {
            p += 12;
            if (!sync_with_server(sv[0]))
                break;
            if (request == HARNESS_SHRINK && ftruncate(mem, std::min<size_t>(payload, MEM_BYTES)) != 0 && !seal)
                __builtin_trap();
            continue;
        }
        if (request == HARNESS_KICK) {
            p += 12;
            auto k = kick_of.find(payload & 0xff);
            const uint64_t one = 1;
            if (k != kick_of.end() && write(k->second, &one, 8) != 8)
                __builtin_trap();
            // The pass that answers this wait also handles the kick (it was readable
            // first), so what the kick causes happens before anything sent later.
            if (!sync_with_server(sv[0]))
                break;
            continue;
        }
        const size_t len = 12 + std::min<size_t>(payload, size_t(end - p) - 12);
        const std::vector<int> fds = vhost_fuzz_fds(p, len, mem, owned);
        if (request == 12 && !fds.empty())
            kick_of[vhost_fuzz_u32(p + 12) & 0xff] = fds[0];
        if (!send_message(sv[0], p, len, fds))
            break;
        cut = len < 12 + size_t(payload);
        p += len;
    }
    if (!cut)
        shutdown(sv[0], SHUT_WR);
    // Drain the replies until the server closes the connection; cut short, the socket
    // stays open and only the server's message timeout can end it.
    // A server that still holds the connection after HANG_MS hangs (the longest honest
    // wait is one message timeout).
    constexpr int HANG_MS = 30000;
    uint8_t sink[4096];
    for (;;) {
        struct pollfd pf = {sv[0], POLLIN, 0};
        const int r = poll(&pf, 1, HANG_MS);
        if (r == 0)
            __builtin_trap(); // the server hangs on this input
        if (r < 0)
            continue;
        const ssize_t n = recv(sv[0], sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
    }
    server.join();
    close(sv[0]);
    for (int e : owned)
        close(e);
    close(mem);
    return 0;
}
