#include "dma_arbiter.h"

#include <algorithm>

namespace viosim {

using sc_core::sc_time;

namespace {
// A channel in use is free "never" until its transfer is released. (Computed at run
// time: an sc_time built during static initialisation would fix the time resolution.)
sc_time busy() { return sc_core::sc_max_time(); }
}

dma_arbiter::dma_arbiter(sc_core::sc_module_name name, unsigned channels, unsigned requesters,
                         policy p)
    : sc_module(name), grants(requesters, 0), waits(requesters, 0), policy_(p),
      free_at_(channels, sc_core::SC_ZERO_TIME), waiting_(requesters, false),
      granted_(requesters, 0), grant_(requesters)
{
    if (channels > 0)
        SC_THREAD(arbitrate);
}

unsigned dma_arbiter::acquire(unsigned requester)
{
    const sc_time now = sc_core::sc_time_stamp();
    const bool anyone_waiting = std::find(waiting_.begin(), waiting_.end(), true) != waiting_.end();
    auto ch = std::min_element(free_at_.begin(), free_at_.end());
    if (!anyone_waiting && *ch <= now) {
        *ch = busy();
        grants[requester]++;
        return unsigned(ch - free_at_.begin());
    }
    waits[requester]++;
    waiting_[requester] = true;
    changed_.notify(sc_core::SC_ZERO_TIME);
    wait(grant_[requester]);
    wait_time += sc_core::sc_time_stamp() - now;
    return granted_[requester];
}

void dma_arbiter::release(unsigned channel, sc_time at)
{
    free_at_[channel] = std::max(at, sc_core::sc_time_stamp());
    changed_.notify(sc_core::SC_ZERO_TIME);
}

// The waiting requester the policy serves next (-1: none).
int dma_arbiter::pick() const
{
    const unsigned n = unsigned(waiting_.size());
    for (unsigned i = 0; i < n; i++) {
        const unsigned r = policy_ == policy::round_robin ? (last_ + 1 + i) % n : i;
        if (waiting_[r])
            return int(r);
    }
    return -1;
}

// Grant free channels to waiting requesters, by policy, at the moment they free.
void dma_arbiter::arbitrate()
{
    for (;;) {
        const sc_time now = sc_core::sc_time_stamp();
        auto ch = std::min_element(free_at_.begin(), free_at_.end());
        const int r = pick();
        if (r < 0 || *ch == busy()) {
            wait(changed_);
            continue;
        }
        if (*ch > now) {
            wait(*ch - now, changed_);
            continue;
        }
        *ch = busy();
        waiting_[unsigned(r)] = false;
        granted_[unsigned(r)] = unsigned(ch - free_at_.begin());
        grants[unsigned(r)]++;
        last_ = unsigned(r);
        grant_[unsigned(r)].notify(sc_core::SC_ZERO_TIME);
    }
}

} // namespace viosim
