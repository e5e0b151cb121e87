#include "host_memory.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "address_map.h"
#include "shared_memory.h"

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
    uint8_t *p = r->data + (addr - r->base);
    if (tx.is_read()) {
        if (r->shared)
            shared_memory_load(tx.get_data_ptr(), p, len, true);
        else
            std::memcpy(tx.get_data_ptr(), p, len);
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
        if (r->shared)
            shared_memory_store(p, tx.get_data_ptr(), len);
        else
            std::memcpy(p, tx.get_data_ptr(), len);
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
