// fuzz_vhost.cpp -- `viosim serve`'s vhost-user message handling and ring processing
// (platform/vhost_user.cpp), driven by a hostile front end.
//
// Input:
//   byte 0        bits 0-1: device.backend (loopback, sink, responder; 3 = loopback),
//                 bit 2: device.queue_pairs_count 4 instead of 1
//   bytes 1-2     n, little-endian (at most 16 KiB): the next n bytes are the first bytes
//                 of the front end's 64 KiB shared memory (rings, descriptors, frames)
//   the rest      vhost-user messages as sent: a 12-byte header (request, flags, size)
//                 and what follows of the payload; the size in the header is not
//                 corrected, so a short or desynchronised stream is part of the input.
// File descriptors travel with the messages that take them: SET_MEM_TABLE gets as many
// descriptors of the shared memory as its region count says (at most 8), SET_VRING_KICK,
// SET_VRING_CALL and SET_VRING_ERR an eventfd unless the "no fd" bit is set (a kick
// eventfd already holds one notification). At most 128 messages are sent (the socket
// must hold them and viosim's replies while one thread plays both sides); then the
// front end's side is shut, and viosim serves the connection until it ends.
//
// Promise checked: viosim returns (no hang: the stream ends, so every connection ends
// in a disconnect or a refusal) and never crashes or touches memory outside what was
// mapped (the sanitizers watch every access, including the ring kernels').
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

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

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const vs_config cfg = vhost_fuzz_config(data[0]);
    const size_t mem_init = std::min<size_t>({size_t(data[1] | data[2] << 8), MEM_INIT_MAX, size - 3});
    const uint8_t *p = data + 3 + mem_init;
    const uint8_t *const end = data + size;

    int sv[2];
    const int mem = peer_setup("fuzz-vhost", MEM_BYTES, data + 3, mem_init, sv); // traps if it cannot

    std::vector<int> owned; // eventfds the harness made (closed at the end)
    for (unsigned n = 0; n < MESSAGES_MAX && end - p >= 12; n++) {
        const size_t len = 12 + std::min<size_t>(vhost_fuzz_u32(p + 8), size_t(end - p) - 12);
        // Cut where the socket would block.
        if (vhost_sendmsg(sv[0], p, len, vhost_fuzz_fds(p, len, mem, owned), MSG_DONTWAIT) != ssize_t(len))
            break;
        p += len;
    }
    shutdown(sv[0], SHUT_WR);
    const serve_options opt;
    // In a thread of its own, as fuzz_vhost_live.cpp does: serve runs SystemC, and
    // LeakSanitizer's scan of a thread whose stack SystemC switched away from misses it
    // (scripts/test, use_stacks=0): run on main's thread, libFuzzer's own objects on
    // main's stack were reported leaked at exit.
    const int server_fd = sv[1];
    std::thread server([&cfg, &opt, server_fd] { vhost_user_serve_connection(cfg, opt, server_fd); });
    server.join(); // closes sv[1]
    close(sv[0]);
    for (int e : owned)
        close(e);
    close(mem);
    return 0;
}
