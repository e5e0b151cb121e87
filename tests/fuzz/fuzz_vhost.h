// fuzz_vhost.h -- what the two vhost-user fuzz targets (fuzz_vhost.cpp, fuzz_vhost_live.cpp)
// read from their input the same way: the configuration byte and the file descriptors
// each message takes (header-only).
#ifndef VIOSIM_FUZZ_VHOST_H
#define VIOSIM_FUZZ_VHOST_H

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <sys/eventfd.h>

#include "common/vhost_msg.h"
#include "config.h"

using namespace viosim; // the platform's modules and configuration (platform/)

// serve runs the timed platform, so the targets link SystemC, whose library wants an
// sc_main; they enter through libFuzzer's main (or replay.c's), so this one never runs.
// One platform per process: the first input's configuration byte builds the device
// (platform/vhost_user.cpp, process_platform); later inputs' device bits are ignored.
extern "C" __attribute__((weak)) int sc_main(int, char **) { return 0; }

inline uint32_t vhost_fuzz_u32(const uint8_t *p)
{
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

// Bits 0-1 of the configuration byte: device.backend (loopback, sink, responder;
// 3 = loopback); bit 2: device.queue_pairs_count 4 instead of 1 (one function with four
// pairs: VIRTIO_NET_F_MQ offered, GET_QUEUE_NUM 4, rings 0-7).
inline vs_config vhost_fuzz_config(uint8_t b)
{
    vs_config cfg = config_defaults();
    static const vdev_backend backends[] = {VDEV_BACKEND_LOOPBACK, VDEV_BACKEND_SINK,
                                            VDEV_BACKEND_RESPONDER, VDEV_BACKEND_LOOPBACK};
    cfg.dev.backend = backends[b & 3];
    cfg.dev.queue_pairs = (b & 4) ? 4 : 1;
    return cfg;
}

// The descriptors the message at p (len bytes as sent) travels with: SET_MEM_TABLE the
// shared memory once per region its count names (at most 8); SET_VRING_KICK, _CALL and
// _ERR a new eventfd unless the "no fd" bit is set (a kick eventfd holds one
// notification), added to owned (the harness closes them).
inline std::vector<int> vhost_fuzz_fds(const uint8_t *p, size_t len, int mem, std::vector<int> &owned)
{
    const uint32_t request = vhost_fuzz_u32(p);
    std::vector<int> fds;
    if (request == 5 && len >= 16) {
        fds.assign(std::min<uint32_t>(vhost_fuzz_u32(p + 12), VHOST_MSG_FDS_MAX), mem);
    } else if (request >= 12 && request <= 14 && len >= 20 && !(vhost_fuzz_u32(p + 12) & 0x100)) {
        int e = eventfd(request == 12 ? 1 : 0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (e < 0)
            __builtin_trap(); // the harness itself failed, not viosim
        owned.push_back(e);
        fds.push_back(e);
    }
    return fds;
}

#endif
