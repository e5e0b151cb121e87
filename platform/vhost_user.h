// vhost_user.h -- `viosim serve --vhost-user PATH`: viosim as a vhost-user back end for a
// virtio-net device, so a third-party front end (DPDK's virtio-user port, a QEMU guest
// with -netdev vhost-user) drives the model's ring kernels (packed_vq, split_vq) in
// wall-clock time. docs/bring-up.md describes what it does and how to read its report.
#ifndef VIOSIM_VHOST_USER_H
#define VIOSIM_VHOST_USER_H

#include <string>

#include "config.h"

struct serve_options {
    std::string socket_path; // unix socket to listen on (created; an old socket file is replaced)
    std::string out_dir;     // stats.json is written here on SIGINT/SIGTERM
    double duration_s = 0;   // > 0: stop by itself after this long (tests); 0: until a signal
};

// Listens until SIGINT/SIGTERM (or duration_s), serving one front end at a time; writes
// out_dir/stats.json and returns 0, or returns 1 with a message on stderr if the socket
// cannot be set up or stats.json cannot be written.
int vhost_user_serve(const vs_config &cfg, const serve_options &opt);

// Serves one front end already connected on fd (a unix stream socket; the function takes
// it over and closes it) until it disconnects or is refused, with the same message
// handling and ring processing as vhost_user_serve but no listening socket, no signal
// handling and no stats.json. For the fuzz target tests/fuzz/fuzz_vhost.cpp.
void vhost_user_serve_connection(const vs_config &cfg, int fd);

#endif
