// fuzz_vhost.cpp -- `viosim serve`'s vhost-user message handling and ring processing
// (platform/vhost_user.cpp), driven by a hostile front end.
//
// Input:
//   byte 0        bits 0-1: device.backend (loopback, sink, responder; 3 = loopback),
//                 bit 2: serve.queue_pairs 2 instead of 1
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
#include <vector>

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "vhost_user.h"

namespace {

constexpr size_t MEM_BYTES = 64 * 1024;
constexpr size_t MEM_INIT_MAX = 16 * 1024;
constexpr unsigned MESSAGES_MAX = 128;
constexpr unsigned FDS_MAX = 8;

uint32_t u32_at(const uint8_t *p)
{
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Sends one message with fds; false when the socket would block (the input is cut there).
bool send_message(int sock, const uint8_t *msg, size_t len, const std::vector<int> &fds)
{
    struct iovec iov = {const_cast<uint8_t *>(msg), len};
    struct msghdr mh;
    std::memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * FDS_MAX)];
    if (!fds.empty()) {
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    return sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) == ssize_t(len);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    vs_config cfg = config_defaults();
    static const vdev_backend backends[] = {VDEV_BACKEND_LOOPBACK, VDEV_BACKEND_SINK,
                                            VDEV_BACKEND_RESPONDER, VDEV_BACKEND_LOOPBACK};
    cfg.dev.backend = backends[data[0] & 3];
    cfg.plat.serve_queue_pairs = (data[0] & 4) ? 2 : 1;
    const size_t mem_init = std::min<size_t>({size_t(data[1] | data[2] << 8), MEM_INIT_MAX, size - 3});
    const uint8_t *p = data + 3 + mem_init;
    const uint8_t *const end = data + size;

    int mem = memfd_create("fuzz-vhost", MFD_CLOEXEC);
    if (mem < 0 || ftruncate(mem, MEM_BYTES) != 0 || pwrite(mem, data + 3, mem_init, 0) != ssize_t(mem_init))
        __builtin_trap(); // the harness itself failed, not viosim
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        __builtin_trap();

    std::vector<int> owned; // eventfds the harness made (closed at the end)
    for (unsigned n = 0; n < MESSAGES_MAX && end - p >= 12; n++) {
        const uint32_t request = u32_at(p), payload = u32_at(p + 8);
        const size_t len = 12 + std::min<size_t>(payload, size_t(end - p) - 12);
        std::vector<int> fds;
        if (request == 5 && len >= 16) { // SET_MEM_TABLE: one fd per region
            fds.assign(std::min<uint32_t>(u32_at(p + 12), FDS_MAX), mem);
        } else if (request >= 12 && request <= 14 && len >= 20 && !(u32_at(p + 12) & 0x100)) {
            int e = eventfd(request == 12 ? 1 : 0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (e < 0)
                __builtin_trap();
            owned.push_back(e);
            fds.push_back(e);
        }
        if (!send_message(sv[0], p, len, fds))
            break;
        p += len;
    }
    shutdown(sv[0], SHUT_WR);
    const serve_options opt;
    vhost_user_serve_connection(cfg, opt, sv[1]); // closes sv[1]
    close(sv[0]);
    for (int e : owned)
        close(e);
    close(mem);
    return 0;
}
