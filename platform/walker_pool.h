// walker_pool.h -- an IOMMU's page walkers as a shared resource, wherever the IOMMU sits
// (the root complex's, or the device's own with iommu.walk_location=device): at most
// `walkers` walks at once (iommu.walkers_count); a walk ready at t takes the walker that
// frees first and starts when it is free. Times are the requests' own (absolute
// simulated time as the requester sees it, not sc_time_stamp()), so results do not
// depend on the quantum. The caller runs the walk between take and book, since only
// the walk tells when it ends (and whether there was one: a hit books nothing).
#ifndef VIOSIM_WALKER_POOL_H
#define VIOSIM_WALKER_POOL_H

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <systemc>

namespace viosim {

class walker_pool {
public:
    explicit walker_pool(unsigned walkers = 1) { resize(walkers); }
    void resize(unsigned walkers) { free_.assign(std::max(1u, walkers), sc_core::SC_ZERO_TIME); }
    size_t size() const { return free_.size(); }

    struct slot {
        size_t walker;         // which walker (a trace track per walker)
        sc_core::sc_time start; // when the walk starts on it
    };
    // The walker a walk ready at `ready` would take, and when it would start.
    slot take(const sc_core::sc_time &ready) const
    {
        const auto w = std::min_element(free_.begin(), free_.end());
        return {size_t(w - free_.begin()), std::max(ready, *w)};
    }
    // The walk taken at `ready` ran on s until `end`: the walker is busy until then.
    void book(const slot &s, const sc_core::sc_time &ready, const sc_core::sc_time &end)
    {
        if (s.start > ready) {
            waits++;
            wait += s.start - ready;
        }
        free_[s.walker] = end;
        busy += end - s.start;
    }

    uint64_t waits = 0;     // walks that found every walker busy
    sc_core::sc_time wait;  // sum of the time walks waited for a walker
    sc_core::sc_time busy;  // sum of walk durations

private:
    std::vector<sc_core::sc_time> free_; // when each walker is free again
};

} // namespace viosim

#endif
