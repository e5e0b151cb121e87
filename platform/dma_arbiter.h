// dma_arbiter.h -- the device's DMA channels, shared by the queue engines.
//
// A queue engine needs a channel for each transfer it issues, from the moment it
// starts until its data is there (reads) or it is on the wire (writes). With all
// channels busy, requests wait, and when a channel frees the arbitration policy picks
// among the waiting queues: round_robin (the next queue after the last one served) or
// fixed_priority (the lowest queue index: receiveq1, then transmitq1, then controlq).
// With 0 channels the arbiter is off: every engine has a channel of its own.
#ifndef VIOSIM_DMA_ARBITER_H
#define VIOSIM_DMA_ARBITER_H

#include <cstdint>
#include <vector>

#include <systemc>

namespace viosim {

class dma_arbiter : public sc_core::sc_module {
public:
    enum class policy { round_robin, fixed_priority };

    SC_HAS_PROCESS(dma_arbiter);
    dma_arbiter(sc_core::sc_module_name name, unsigned channels, unsigned requesters, policy p);

    bool enabled() const { return !free_at_.empty(); }
    // Wait (in the calling SC_THREAD) for a channel; returns its index.
    unsigned acquire(unsigned requester);
    // The transfer on `channel` ends at absolute time `at`.
    void release(unsigned channel, sc_core::sc_time at);

    std::vector<uint64_t> grants, waits; // per requester
    sc_core::sc_time wait_time;          // total time requests waited

private:
    void arbitrate();
    int pick() const;

    policy policy_;
    std::vector<sc_core::sc_time> free_at_; // when each channel is free (max: busy)
    std::vector<bool> waiting_;
    std::vector<unsigned> granted_;
    std::vector<sc_core::sc_event> grant_;
    sc_core::sc_event changed_;
    unsigned last_ = 0;
};

} // namespace viosim

#endif
