// host_memory.h -- guest RAM as a TLM target: a byte array with a read latency.
//
// A read of n bytes is ready read_latency + n * read_per_byte after it arrives. The
// per-byte part is the host streaming the data out (memory and root complex): one DMA
// transfer's data streams in order, so a read that carries a read_stream_ext cannot
// start streaming before the transfer's earlier data has (the root complex says which
// reads continue a transfer).
//
// The memory is either its own (zeroed, `viosim run`) or regions a caller owns (a front
// end driven from outside, platform/external_host.h: e.g. a guest's RAM mapped from
// another process), each a range of guest-physical addresses over a caller's buffer.
#ifndef VIOSIM_HOST_MEMORY_H
#define VIOSIM_HOST_MEMORY_H

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

namespace viosim {

// On a read that continues a DMA transfer. in: when the transfer's earlier data has
// finished streaming (absolute simulated time); out: when this read's data has.
struct read_stream_ext : tlm::tlm_extension<read_stream_ext> {
    sc_core::sc_time after;
    sc_core::sc_time streamed;
    tlm::tlm_extension_base *clone() const override { return new read_stream_ext(*this); }
    void copy_from(const tlm::tlm_extension_base &other) override
    {
        *this = static_cast<const read_stream_ext &>(other);
    }
};

// Guest-physical [base, base + size_bytes) held at data[0 .. size_bytes).
struct memory_region {
    uint64_t base;
    uint64_t size_bytes;
    uint8_t *data;
    // Another process writes it while the device runs (a guest's RAM shared by QEMU or a
    // vhost-user front end): DMA goes through shared_memory_load / shared_memory_store
    // (shared_memory.h), so no aligned field is torn, and reads go from the highest
    // address down (a descriptor's flags before its body). Watching the mapping for
    // SIGBUS is the caller's (shared_memory_watch).
    bool shared = false;
};

class host_memory : public sc_core::sc_module {
public:
    tlm_utils::simple_target_socket<host_memory> socket;

    // Its own zeroed memory at [base, base + size_bytes).
    host_memory(sc_core::sc_module_name name, uint64_t base, uint64_t size_bytes,
                sc_core::sc_time read_latency, sc_core::sc_time read_per_byte);
    // Over the caller's regions (not copied, not freed; they must not overlap): an
    // access outside every region, or across two, ends in an address error.
    host_memory(sc_core::sc_module_name name, const std::vector<memory_region> &regions,
                sc_core::sc_time read_latency, sc_core::sc_time read_per_byte);
    // Replaces the caller's regions (between two slices of simulation: guest RAM remapped).
    void set_regions(const std::vector<memory_region> &regions);

    // The first region (the only one of a memory of its own).
    uint8_t *data() { return region_.data; }
    uint64_t base() const { return region_.base; }
    uint64_t size() const { return region_.size_bytes; }

    // An access outside simulated time (a front end's control operation, e.g. a ring
    // stop publishing what was pushed: external_host::front_end): the regions and the
    // shared-memory rules of a DMA access, no latency, not counted as DMA. False if
    // outside every region (or the shared memory faulted).
    bool access_untimed(bool read, uint64_t addr, void *data, unsigned len);

    uint64_t reads = 0, writes = 0, read_bytes = 0, write_bytes = 0, errors = 0;
    // Accesses to a shared region refused because its mapping faulted (the other process
    // shrank the file: shared_memory_faulted()); part of errors. fault_addr: the latest.
    uint64_t faults = 0, fault_addr = 0;

    // A CPU that polls the rings sleeps until the device next writes guest memory
    // (host_cpu::op_poll_idle): it sets `watcher`, which the next write clears and calls,
    // from the writer's process (the CPU's own stores do not come through here).
    struct write_watcher {
        virtual void device_wrote() = 0;
    protected:
        ~write_watcher() = default;
    };
    write_watcher *watcher = nullptr;

private:
    void b_transport(tlm::tlm_generic_payload &tx, sc_core::sc_time &delay);
    // The region holding all of [addr, addr + len), or null.
    const memory_region *find(uint64_t addr, unsigned len) const;
    // Copies between data and region r at addr; false if a shared region faulted.
    bool copy(const memory_region &r, uint64_t addr, void *data, unsigned len, bool read);

    struct free_bytes {
        void operator()(uint8_t *p) const { std::free(p); }
    };

    memory_region region_;              // the first region: the one looked at first
    std::vector<memory_region> others_; // the caller's other regions
    // Zeroed by calloc, which maps fresh pages for a large block: the kernel zeroes each
    // page when it is first touched, so a run pays only for the memory it uses (a
    // zero-filled std::vector wrote all of host.memory_mib at start-up, most of a short
    // run's CPU time).
    std::unique_ptr<uint8_t, free_bytes> mem_;
    sc_core::sc_time read_latency_;
    sc_core::sc_time read_per_byte_;
};

} // namespace viosim

#endif
