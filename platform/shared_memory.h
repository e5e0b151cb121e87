// shared_memory.h -- what the serve front ends (`viosim serve --vhost-user`,
// `viosim serve --qemu-proxy`) share: guest memory that another process maps
// MAP_SHARED and may shrink under the device, the loads and stores that touch it (also
// host_memory's for shared regions), and the listening unix socket. No SystemC: the
// fuzz targets link it alone.
#ifndef VIOSIM_SHARED_MEMORY_H
#define VIOSIM_SHARED_MEMORY_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace viosim {

// Mappings of guest memory watched for SIGBUS at once (per thread).
constexpr unsigned SHARED_MEMORY_MAPS_MAX = 8;

// Installs (once per process) the SIGBUS handler that survives a peer shrinking a
// watched file: the whole mapping is replaced by zero pages and shared_memory_faulted()
// turns true; a SIGBUS elsewhere gets the previous disposition.
void shared_memory_install_sigbus_handler();
// Watches [map, map + len) for this thread. False (not watched) if
// SHARED_MEMORY_MAPS_MAX mappings are watched already.
bool shared_memory_watch(const void *map, size_t len);
// Forgets every watched mapping (before unmapping them) and clears the fault flag.
void shared_memory_unwatch_all();
// Has a watched mapping faulted since shared_memory_unwatch_all?
bool shared_memory_faulted();

// Copies len bytes the peer may be writing right now, after a full fence if this thread
// stored to shared memory since the last one: 2- and 4-byte aligned fields in
// one load; `descending` (descriptor fetches) reads from the highest address down, 8
// aligned bytes at a time, so a descriptor's flags are read before its body.
void shared_memory_load(void *dst, const uint8_t *src, uint32_t len, bool descending);
// Stores len bytes after all earlier stores; aligned 2-, 4- and 8-byte fields in one
// store (a used index, a packed used descriptor), so the peer never sees them torn.
void shared_memory_store(uint8_t *dst, const void *src, uint32_t len);

// One line on stderr, "viosim serve: " and the message.
void serve_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// SIGINT and SIGTERM set the stop flag (serve_stop_requested); SIGPIPE is ignored (a
// peer that went away is seen as a failed send); the SIGBUS handler is installed.
void serve_install_signals();
bool serve_stop_requested();
// Closes fd if open and sets it to -1.
void serve_close_fd(int &fd);

// Binds and listens on a unix socket path with the socket file's mode set explicitly
// (mode bits, not the umask's). A stale socket file (nobody answers) is replaced; a
// live one is refused. Returns the listening fd, or -1 with err naming the path.
int shared_listen_unix(const std::string &path, unsigned mode, std::string &err);

} // namespace viosim

#endif
