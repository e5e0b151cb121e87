// fuzz_proxy.cpp -- `viosim serve --qemu-proxy`'s message handling and the device behind
// it (platform/qemu_proxy.cpp: mpqemu-link, the PCI transport, the virtio-net queues),
// driven by a hostile QEMU.
//
// Input:
//   byte 0        bits 0-1: device.backend (loopback, sink, responder; 3 = loopback),
//                 bit 2: device.mrg_rxbuf on -- taken from the first input a process
//                 runs only: the proxy runs the timed SystemC platform, built once per
//                 process, and every later input is a new connection to it (starting
//                 with a function-level reset), so state a connection leaves behind in
//                 the platform is fuzzed too. Each backend: its own fuzzing process.
//   bytes 1-2     n, little-endian (at most 16 KiB): the next n bytes are the first bytes
//                 of the 64 KiB memfd QEMU shares as guest RAM (rings, descriptors, frames)
//   the rest      mpqemu-link messages as sent: a 16-byte header (command, 4 padding
//                 bytes, 64-bit payload size) and what follows of the payload; the size
//                 in the header is not corrected, so a short or desynchronised stream is
//                 part of the input.
// File descriptors travel with the messages that take them: SYNC_SYSMEM gets the memfd
// as many times as the header's first padding byte says (mod 10, so 9 -- one too many --
// is reachable), SET_IRQFD two new eventfds unless that byte is odd (then none). At most
// 128 messages are sent (the socket must hold them and viosim's answers while one thread
// plays both sides); then QEMU's side is shut, and viosim serves the connection until it
// ends.
//
// Promise checked: viosim returns (the stream ends, so the connection ends in a
// disconnect or a refusal) and never crashes or touches memory outside what it mapped.
//
// Links SystemC, whose library wants an sc_main: the entry points are the fuzzer's.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/vhost_msg.h"
#include "config.h"
#include "qemu_proxy.h"

using namespace viosim; // the platform's modules and configuration (platform/)

namespace {

constexpr size_t MEM_BYTES = 64 * 1024;
constexpr size_t MEM_INIT_MAX = 16 * 1024;
constexpr unsigned MESSAGES_MAX = 128;
constexpr size_t HEADER = 16;

std::vector<int> message_fds(const uint8_t *p, int mem, std::vector<int> &owned)
{
    uint32_t cmd;
    std::memcpy(&cmd, p, 4);
    std::vector<int> fds;
    if (cmd == 0) { // SYNC_SYSMEM
        fds.assign(p[4] % 10, mem);
    } else if (cmd == 6 && !(p[4] & 1)) { // SET_IRQFD
        for (int k = 0; k < 2; k++) {
            const int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (e < 0)
                __builtin_trap();
            owned.push_back(e);
            fds.push_back(e);
        }
    }
    return fds;
}

// The configuration of the process's platform, from its first input's byte 0.
const vs_config &process_config(uint8_t first)
{
    static const vs_config cfg = [first] {
        vs_config c = config_defaults();
        static const vdev_backend backends[] = {VDEV_BACKEND_LOOPBACK, VDEV_BACKEND_SINK,
                                                VDEV_BACKEND_RESPONDER, VDEV_BACKEND_LOOPBACK};
        c.dev.backend = backends[first & 3];
        c.dev.mrg_rxbuf = (first & 4) != 0;
        c.dev.no_msix = true;
        c.dev.bars_32bit = true;
        vs_feature_set(&c.dev.withdraw, VIRTIO_F_ACCESS_PLATFORM_BIT); // as serve's defaults
        return c;
    }();
    return cfg;
}

} // namespace

extern "C" int sc_main(int, char **) { return 0; } // SystemC declares it extern "C"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const vs_config &cfg = process_config(data[0]);
    const size_t mem_init = std::min<size_t>({size_t(data[1] | data[2] << 8), MEM_INIT_MAX, size - 3});
    const uint8_t *p = data + 3 + mem_init;
    const uint8_t *const end = data + size;

    int sv[2];
    const int mem = peer_setup("fuzz-proxy", MEM_BYTES, data + 3, mem_init, sv); // traps if it cannot

    std::vector<int> owned; // eventfds the harness made (closed at the end)
    for (unsigned n = 0; n < MESSAGES_MAX && size_t(end - p) >= HEADER; n++) {
        uint64_t declared;
        std::memcpy(&declared, p + 8, 8);
        const size_t len = HEADER + size_t(std::min<uint64_t>(declared, uint64_t(end - p) - HEADER));
        // Cut where the socket would block.
        if (vhost_sendmsg(sv[0], p, len, message_fds(p, mem, owned), MSG_DONTWAIT) != ssize_t(len))
            break;
        p += len;
    }
    shutdown(sv[0], SHUT_WR);
    serve_options opt;
    opt.message_timeout_s = 0.02;
    // In a thread of its own: SystemC's coroutine stacks then never run on the fuzzer's
    // main thread, whose stack LeakSanitizer could no longer scan at exit (it reported
    // libFuzzer's own driver state as leaked once the platform had run there).
    std::thread server([&cfg, &opt, fd = sv[1]] { qemu_proxy_serve_connection(cfg, opt, fd); }); // closes fd
    server.join();
    close(sv[0]);
    for (int e : owned)
        close(e);
    close(mem);
    return 0;
}
