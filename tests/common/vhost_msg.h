// vhost_msg.h -- sending one vhost-user message with its file descriptors (SCM_RIGHTS
// ancillary data beside the bytes), for the tests and fuzz targets that play a front
// end against `viosim serve` (header-only).
#ifndef VIOSIM_TESTS_VHOST_MSG_H
#define VIOSIM_TESTS_VHOST_MSG_H

#include <cstring>
#include <vector>

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

constexpr unsigned VHOST_MSG_FDS_MAX = 8; // the most a message carries (SET_MEM_TABLE)

// sendmsg of len bytes at msg with fds (at most VHOST_MSG_FDS_MAX); its return value.
inline ssize_t vhost_sendmsg(int sock, const void *msg, size_t len, const std::vector<int> &fds,
                             int flags)
{
    struct iovec iov = {const_cast<void *>(msg), len};
    struct msghdr mh;
    std::memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * VHOST_MSG_FDS_MAX)];
    const size_t n = fds.size() < VHOST_MSG_FDS_MAX ? fds.size() : VHOST_MSG_FDS_MAX;
    if (n) {
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * n);
    }
    return sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
}

// For the harnesses that play a peer with shared memory: a memfd of `bytes` whose first
// init_len bytes are init, and a connected socketpair in sv. Traps if the harness itself
// cannot set up (that is not the server's failure). Returns the memfd.
inline int peer_setup(const char *name, size_t bytes, const uint8_t *init, size_t init_len, int sv[2])
{
    const int mem = memfd_create(name, MFD_CLOEXEC);
    if (mem < 0 || ftruncate(mem, off_t(bytes)) != 0 || pwrite(mem, init, init_len, 0) != ssize_t(init_len))
        __builtin_trap();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        __builtin_trap();
    return mem;
}

#endif
