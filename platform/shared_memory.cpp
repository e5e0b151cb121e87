// shared_memory.cpp -- guest memory shared with a peer process, and the listening
// socket, for the untimed front ends (see shared_memory.h).
#include "shared_memory.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace viosim {

namespace {

// ---- Guest memory that vanishes under the device ----
//
// A region is the peer's file mapped MAP_SHARED. A peer that truncates the file
// afterwards (possible unless the file carries F_SEAL_SHRINK) turns every access to the
// pages past the new end into SIGBUS, which would kill the server. DPDK's --no-huge memfd
// cannot be sealed, so unsealed regions are accepted by default and the fault is
// survived instead, without a jump and without a cost per access beyond one flag test:
// - every mapping of guest memory is listed in t_maps (this thread's; the handler runs
//   on the thread that faulted);
// - the SIGBUS handler, for a fault inside a listed mapping, maps anonymous memory over
//   that whole mapping (MAP_FIXED: the same addresses, now private zero pages), sets
//   t_guest_faulted and returns; the faulting load or store runs again and completes on
//   the new pages. Nothing is interrupted halfway, no lock is held, no stack unwound:
//   the copy just saw zeros (or wrote to memory nobody reads), which is what a driver
//   writing zeros would show, and everything read from guest memory is checked as
//   hostile input anyway;
// - the front end's guest-memory ops test shared_memory_faulted() after each copy and
//   report the access as failed (as one outside every region), so the kernel stops at
//   once, and the front end closes the connection when the kernel call returns and goes
//   on serving;
// - a SIGBUS outside the listed mappings (or sent with kill) is not ours: the previous
//   disposition is put back and the signal handled (or fatal) as before.
// mmap is a plain system call here, safe in a handler although POSIX does not list it.
struct guest_map {
    uintptr_t lo, hi;
};
thread_local guest_map t_maps[SHARED_MEMORY_MAPS_MAX];
thread_local volatile std::sig_atomic_t t_nmaps = 0;
thread_local volatile std::sig_atomic_t t_guest_faulted = 0;
// A store since the last full fence: the next load must not pass it (a store then a load
// needs a full fence, even on x86), since the peer's CPUs run while the device does.
// Where it matters: the device's request for notifications written, then the ring
// re-checked (a driver adding a buffer right then would see the old suppression, not
// kick, and both sides would wait: a control command Linux spins on for ever); the used
// index published, then the driver's event suppression read.
thread_local bool t_store_pending = false;
struct sigaction g_prev_sigbus;
volatile std::sig_atomic_t g_stop = 0;
void on_stop_signal(int) { g_stop = 1; }

void on_sigbus(int sig, siginfo_t *info, void *)
{
    const uintptr_t a = reinterpret_cast<uintptr_t>(info->si_addr);
    if (info->si_code > 0) { // a fault, not a signal sent by a process
        for (int k = 0; k < t_nmaps; k++) {
            const guest_map &m = t_maps[k];
            if (a < m.lo || a >= m.hi)
                continue;
            void *p = mmap(reinterpret_cast<void *>(m.lo), m.hi - m.lo, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            if (p == MAP_FAILED)
                break;
            t_guest_faulted = 1;
            return;
        }
    }
    sigaction(SIGBUS, &g_prev_sigbus, nullptr);
    if (info->si_code <= 0)
        raise(sig);
}

} // namespace

void shared_memory_install_sigbus_handler()
{
    static bool installed = false;
    if (installed)
        return;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &g_prev_sigbus);
    installed = true;
}

bool shared_memory_watch(const void *map, size_t len)
{
    if (t_nmaps >= int(SHARED_MEMORY_MAPS_MAX))
        return false;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(map);
    t_maps[t_nmaps] = {lo, lo + len};
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_nmaps = t_nmaps + 1;
    return true;
}

void shared_memory_unwatch_all()
{
    t_nmaps = 0;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_guest_faulted = 0;
}

bool shared_memory_faulted()
{
    return t_guest_faulted != 0;
}

// Copy from shared memory that the peer writes concurrently. Descriptor fetches
// go from the highest address down, 8 bytes at a time when aligned: a packed
// descriptor's flags (its last bytes) are then read before its address and length, and
// on x86 (loads not reordered with older loads) a descriptor seen available is read
// whole as the driver wrote it before flipping the flags. Each aligned 8-byte load is
// single-copy atomic, so the 16-bit flags are never torn.
void shared_memory_load(void *dst, const uint8_t *src, uint32_t len, bool descending)
{
    if (t_store_pending) {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        t_store_pending = false;
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);
    const uintptr_t at = reinterpret_cast<uintptr_t>(src);
    if ((len == 2 || len == 4) && at % len == 0) {
        // A ring index or flags word the front end may be updating right now (split
        // ring avail->idx, used_event): one aligned load, never torn byte by byte.
        if (len == 2) {
            const uint16_t v = *reinterpret_cast<const volatile uint16_t *>(src);
            std::memcpy(dst, &v, 2);
        } else {
            const uint32_t v = *reinterpret_cast<const volatile uint32_t *>(src);
            std::memcpy(dst, &v, 4);
        }
    } else if (!descending) {
        std::memcpy(dst, src, len);
    } else if ((at | len) % 8 == 0) {
        // Aligned loads from guest memory; the kernel's buffer (dst) may sit at any
        // offset (a descriptor cache filled from the middle), so it is written bytewise.
        auto *d = static_cast<uint8_t *>(dst);
        const volatile uint64_t *s = reinterpret_cast<const volatile uint64_t *>(src);
        for (uint32_t i = len / 8; i-- > 0;) {
            const uint64_t v = s[i];
            std::memcpy(d + 8 * size_t(i), &v, 8);
        }
    } else {
        auto *d = static_cast<uint8_t *>(dst);
        const volatile uint8_t *s = src;
        for (uint32_t i = len; i-- > 0;)
            d[i] = s[i];
    }
    std::atomic_thread_fence(std::memory_order_acquire);
}

void shared_memory_store(uint8_t *p, const void *src, uint32_t len)
{
    // Earlier writes (buffer data, used entries) become visible before this one: x86
    // keeps stores in order; the fence keeps the compiler from moving them.
    std::atomic_thread_fence(std::memory_order_release);
    const uintptr_t at = reinterpret_cast<uintptr_t>(p);
    if (len == 2 && at % 2 == 0) { // used->idx, a packed descriptor's flags: one store
        uint16_t v;
        std::memcpy(&v, src, 2);
        *reinterpret_cast<volatile uint16_t *>(p) = v;
    } else if (len == 4 && at % 4 == 0) {
        uint32_t v;
        std::memcpy(&v, src, 4);
        *reinterpret_cast<volatile uint32_t *>(p) = v;
    } else if (len == 8 && at % 8 == 0) {
        // A packed used descriptor's len, id and flags written together (pvq_flush):
        // one store, so the driver never sees the flags without the len and id.
        uint64_t v;
        std::memcpy(&v, src, 8);
        *reinterpret_cast<volatile uint64_t *>(p) = v;
    } else {
        std::memcpy(p, src, len);
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t_store_pending = true;
}

int shared_listen_unix(const std::string &path, unsigned mode, std::string &err)
{
    struct sockaddr_un sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path) {
        err = "socket path '" + path + "' is too long for a unix socket (" +
              std::to_string(path.size()) + " bytes, at most " +
              std::to_string(sizeof sa.sun_path - 1) + ")";
        return -1;
    }
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    const auto *addr = reinterpret_cast<const struct sockaddr *>(&sa);
    struct stat st;
    if (lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            err = "socket path '" + path + "' exists and is not a socket";
            return -1;
        }
        // Another server may be listening there: replacing its socket would leave it
        // running but unreachable. Only a stale socket (nobody listens: ECONNREFUSED) is
        // removed. The probe does not block: a server whose backlog is full (EAGAIN) is
        // alive too. (It protects a running server; two servers started at the same
        // instant can still race between the probe and bind.)
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (probe < 0) {
            err = std::string("socket: ") + std::strerror(errno);
            return -1;
        }
        const int rc = connect(probe, addr, sizeof sa);
        const int e = errno;
        close(probe);
        if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
            err = "socket path '" + path + "': a server is already listening there";
            return -1;
        }
        if (e != ECONNREFUSED) {
            err = "socket path '" + path + "': cannot tell whether a server listens there: " +
                  std::strerror(e);
            return -1;
        }
        unlink(path.c_str());
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = std::string("socket: ") + std::strerror(errno);
        return -1;
    }
    // bind() creates the file with the umask's mode; a restrictive umask around it keeps
    // the file private until chmod gives it the mode asked for.
    const mode_t old_mask = umask(0177);
    const int bound = bind(fd, addr, sizeof sa);
    const int bind_errno = errno;
    umask(old_mask);
    if (bound != 0) {
        err = "cannot bind socket path '" + path + "': " + std::strerror(bind_errno);
        return -1;
    }
    if (chmod(path.c_str(), mode_t(mode)) != 0 || listen(fd, 1) != 0) {
        err = "cannot listen on socket path '" + path + "': " + std::strerror(errno);
        unlink(path.c_str());
        return -1;
    }
    return fd;
}

void serve_log(const char *fmt, ...)
{
    std::va_list ap;
    va_start(ap, fmt);
    std::fputs("viosim serve: ", stderr);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
    va_end(ap);
}

void serve_install_signals()
{
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    shared_memory_install_sigbus_handler();
}

bool serve_stop_requested()
{
    return g_stop != 0;
}

void serve_close_fd(int &fd)
{
    if (fd >= 0)
        close(fd);
    fd = -1;
}

} // namespace viosim
