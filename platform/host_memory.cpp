#include "host_memory.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>

#include "address_map.h"
#include "shared_memory.h"

namespace viosim {

host_memory::host_memory(sc_core::sc_module_name name, uint64_t base, uint64_t size_bytes,
                         sc_core::sc_time read_latency, sc_core::sc_time read_per_byte)
    : sc_module(name), socket("socket"),
      mem_(static_cast<uint8_t *>(std::calloc(size_bytes ? size_bytes : 1, 1))),
      read_latency_(read_latency), read_per_byte_(read_per_byte)
{
    if (!mem_)
        throw std::bad_alloc();
    region_ = memory_region{base, size_bytes, mem_.get()};
    socket.register_b_transport(this, &host_memory::b_transport);
}

host_memory::host_memory(sc_core::sc_module_name name, const std::vector<memory_region> &regions,
                         sc_core::sc_time read_latency, sc_core::sc_time read_per_byte)
    : sc_module(name), socket("socket"), region_{0, 0, nullptr}, read_latency_(read_latency),
      read_per_byte_(read_per_byte)
{
    set_regions(regions);
    socket.register_b_transport(this, &host_memory::b_transport);
}

void host_memory::set_regions(const std::vector<memory_region> &regions)
{
    region_ = regions.empty() ? memory_region{0, 0, nullptr} : regions.front();
    others_.assign(regions.size() > 1 ? regions.begin() + 1 : regions.end(), regions.end());
}

const memory_region *host_memory::find(uint64_t addr, unsigned len) const
{
    if (amap::in(addr, len, region_.base, region_.size_bytes))
        return &region_;
    for (const memory_region &r : others_)
        if (amap::in(addr, len, r.base, r.size_bytes))
            return &r;
    return nullptr;
}

bool host_memory::copy(const memory_region &r, uint64_t addr, void *data, unsigned len, bool read)
{
    uint8_t *p = r.data + (addr - r.base);
    if (!r.shared) {
        if (read)
            std::memcpy(data, p, len);
        else
            std::memcpy(p, data, len);
        return true;
    }
    // shared_memory_load fences a load after a store (shared_memory.cpp says why).
    if (read)
        shared_memory_load(data, p, len, true);
    else
        shared_memory_store(p, data, len);
    if (!shared_memory_faulted())
        return true;
    // The peer shrank the file under the mapping (shared_memory.h replaced it by zero
    // pages): refused as an address outside every region; the caller ends the session.
    faults++;
    fault_addr = addr;
    errors++;
    return false;
}

bool host_memory::access_untimed(bool read, uint64_t addr, void *data, unsigned len)
{
    const memory_region *r = find(addr, len);
    return r && copy(*r, addr, data, len, read);
}

// Reads cost the DRAM latency; writes are posted and cost the initiator nothing here.
void host_memory::b_transport(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay)
{
    const uint64_t addr = tx.get_address();
    const unsigned len = tx.get_data_length();
    const memory_region *r = find(addr, len);
    if (!r || tx.get_byte_enable_ptr()) {
        errors++;
        tx.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    if ((tx.is_read() || tx.is_write()) && !copy(*r, addr, tx.get_data_ptr(), len, tx.is_read())) {
        tx.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    if (tx.is_read()) {
        reads++;
        read_bytes += len;
        const sc_core::sc_time stream = read_per_byte_ * double(len);
        if (read_stream_ext *ext = tx.get_extension<read_stream_ext>()) {
            // Absolute times: the transfer's earlier data was timed by earlier calls.
            const sc_core::sc_time now = sc_core::sc_time_stamp();
            ext->streamed = std::max(now + delay + read_latency_, ext->after) + stream;
            delay = ext->streamed - now;
        } else {
            delay += read_latency_ + stream;
        }
    } else if (tx.is_write()) {
        writes++;
        write_bytes += len;
        if (watcher) {
            write_watcher *w = watcher;
            watcher = nullptr;
            w->device_wrote();
        }
    }
    tx.set_response_status(tlm::TLM_OK_RESPONSE);
}

} // namespace viosim
