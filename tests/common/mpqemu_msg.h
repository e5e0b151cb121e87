// mpqemu_msg.h -- QEMU's mpqemu-link messages as x-pci-proxy-dev sends them (x86-64
// layout of include/hw/remote/mpqemu-link.h in QEMU's source: a 16-byte header -- int
// command, 4 bytes of padding, size_t payload size -- then the payload; file descriptors
// as SCM_RIGHTS with the header), for the tests and the fuzz target that play QEMU
// against `viosim serve --qemu-proxy` (header-only).
#ifndef VIOSIM_TESTS_MPQEMU_MSG_H
#define VIOSIM_TESTS_MPQEMU_MSG_H

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/vhost_msg.h" // vhost_sendmsg: bytes with descriptors

enum : int32_t {
    MPQ_SYNC_SYSMEM = 0, MPQ_RET = 1, MPQ_PCI_CFGWRITE = 2, MPQ_PCI_CFGREAD = 3,
    MPQ_BAR_WRITE = 4, MPQ_BAR_READ = 5, MPQ_SET_IRQFD = 6, MPQ_DEVICE_RESET = 7,
};
constexpr unsigned MPQ_HEADER = 16;

inline void mpq_put(std::vector<uint8_t> &b, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        b.push_back(uint8_t(v >> (8 * i)));
}

// Header for cmd with a payload of `size` bytes (the payload is appended by the caller).
inline std::vector<uint8_t> mpq_header(int32_t cmd, uint64_t size)
{
    std::vector<uint8_t> b;
    mpq_put(b, uint32_t(cmd), 4);
    mpq_put(b, 0, 4);
    mpq_put(b, size, 8);
    return b;
}

// PCI_CFGREAD / PCI_CFGWRITE: u32 offset, u32 value, int length.
inline std::vector<uint8_t> mpq_conf(int32_t cmd, uint32_t addr, uint32_t val, uint32_t len)
{
    std::vector<uint8_t> b = mpq_header(cmd, 12);
    mpq_put(b, addr, 4);
    mpq_put(b, val, 4);
    mpq_put(b, len, 4);
    return b;
}

// BAR_READ / BAR_WRITE: u64 guest-physical address, u64 value, unsigned size, bool
// memory (then padding to 24 bytes).
inline std::vector<uint8_t> mpq_bar(int32_t cmd, uint64_t addr, uint64_t val, uint32_t size,
                                    bool memory = true)
{
    std::vector<uint8_t> b = mpq_header(cmd, 24);
    mpq_put(b, addr, 8);
    mpq_put(b, val, 8);
    mpq_put(b, size, 4);
    mpq_put(b, memory ? 1 : 0, 4);
    return b;
}

// SYNC_SYSMEM: gpas[8], sizes[8], offsets[8] (entries past the descriptor count unused).
struct mpq_range {
    uint64_t gpa, size, offset;
};
inline std::vector<uint8_t> mpq_sysmem(const std::vector<mpq_range> &r)
{
    std::vector<uint8_t> b = mpq_header(MPQ_SYNC_SYSMEM, 192);
    for (unsigned f = 0; f < 3; f++)
        for (unsigned i = 0; i < 8; i++)
            mpq_put(b, i < r.size() ? (f == 0 ? r[i].gpa : f == 1 ? r[i].size : r[i].offset) : 0, 8);
    return b;
}

#endif
