// vhost_user.h -- `viosim serve --vhost-user PATH`: viosim as a vhost-user back end for a
// virtio-net device, so a third-party front end (DPDK's virtio-user port, a QEMU guest
// with -netdev vhost-user) drives the model's device -- the PCI transport and the
// virtio-net personality a simulation runs (model/vdev.h), with no registers (pt_fe_*),
// on the simulation's timed platform (external_host.h), simulated time running while the
// device has work. docs/bring-up.md describes what it does and how to read its report.
#ifndef VIOSIM_VHOST_USER_H
#define VIOSIM_VHOST_USER_H

#include <string>

#include "config.h"

namespace viosim {

struct serve_options {
    // Unix socket to listen on. A stale socket file there (nobody answers) is replaced; a
    // live one (a server answers) is refused.
    std::string socket_path;
    std::string out_dir;     // stats.json is written here on SIGINT/SIGTERM
    double duration_s = 0;   // > 0: stop by itself after this long (tests); 0: until a signal
    unsigned socket_mode = 0600; // the socket file's permission bits (not the umask's)
    // A message that has begun arriving must be complete within this long, or the
    // connection is closed (a front end that stops mid-message cannot hold the server).
    double message_timeout_s = 5;
    // Refuse memory regions whose file can shrink (no F_SEAL_SHRINK). Without it such a
    // region is accepted and a shrink ends only its connection (SIGBUS caught).
    bool require_sealed_memory = false;
};

// Queue pairs a vhost-user back end can offer (device.queue_pairs_count at most): a
// ring's index travels in 8 bits of the kick, call and err messages, so 256 rings.
constexpr unsigned SERVE_VHOST_PAIRS_MAX = 128;

// Ranges cmd_serve checks before anything runs (inclusive).
constexpr double SERVE_DURATION_S_MAX = 1e6;
constexpr double SERVE_MESSAGE_TIMEOUT_S_MIN = 0.001, SERVE_MESSAGE_TIMEOUT_S_MAX = 3600;

// Exit statuses of vhost_user_serve besides 0.
constexpr int SERVE_EXIT_FAILED = 1; // a system call failed, stats.json could not be written
constexpr int SERVE_EXIT_PATH = 2;   // the socket path was refused before anything ran

// Listens until SIGINT/SIGTERM (or duration_s), serving one front end at a time; writes
// out_dir/stats.json and returns 0. Returns SERVE_EXIT_PATH with one line on stderr
// naming the path if the socket path is unusable (too long, not a socket, a server
// answers there, cannot bind), SERVE_EXIT_FAILED if anything else fails.
int vhost_user_serve(const vs_config &cfg, const serve_options &opt);

// Serves one front end already connected on fd (a unix stream socket; the function takes
// it over and closes it) until it disconnects or is refused, with the same message
// handling and ring processing as vhost_user_serve (opt's message_timeout_s and
// require_sealed_memory apply) but no listening socket, no signal handling and no
// stats.json. For the fuzz targets tests/fuzz/fuzz_vhost.cpp and fuzz_vhost_live.cpp.
// One platform per process (SystemC elaborates once): the first call's configuration
// builds the device for every later call.
void vhost_user_serve_connection(const vs_config &cfg, const serve_options &opt, int fd);

} // namespace viosim

#endif
