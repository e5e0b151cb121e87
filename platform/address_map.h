// address_map.h -- the host physical address map of the simulated platform.
#ifndef VIOSIM_ADDRESS_MAP_H
#define VIOSIM_ADDRESS_MAP_H

#include <cstdint>

namespace viosim {

namespace amap {
constexpr uint64_t memory_base = 0x0000'0000ull;         // guest RAM starts here
constexpr uint64_t mmio_window_base = 0xC000'0000ull;    // BARs are assigned in here
constexpr uint64_t mmio_window_size = 0x1000'0000ull;
constexpr uint64_t ecam_base = 0xE000'0000ull;           // config space of our one function
constexpr uint64_t ecam_size = 0x1000ull;
constexpr uint64_t msi_base = 0xFEE0'0000ull;            // interrupt controller's MSI window
constexpr uint64_t msi_size = 0x10'0000ull;

inline bool in(uint64_t addr, uint64_t len, uint64_t base, uint64_t size)
{
    return addr >= base && len <= size && addr - base <= size - len;
}
} // namespace amap

} // namespace viosim

#endif
