// run_ahead.h -- sim.timing: when an initiator synchronises with SystemC time.
//
// exact (the default): the CPU and the queue engines synchronise after every timed
// action (each DMA, each MMIO access, each charge), see "Synchronisation" in
// docs/timing.md. decoupled: such a synchronisation is skipped when no other process
// has any activity (a runnable process, a delta or a timed notification) before the
// caller's local time, nor at that very time, and that time is before the run's time
// limit. The wait would then only have moved time to the caller's local time with
// nothing run meanwhile, so the shared state (rings, link bookings) the caller sees is
// the one it would see synchronised; what changes is the SystemC event queue (one
// timed event fewer), hence the order of processes woken at the same picosecond later
// on, and with it some results with several engines (docs/timing.md, docs/speed.md).
//
// A process that runs ahead keeps its local time in its quantum keeper: every time it
// gives another process (an event, a stamp) must count from sc_time_stamp() plus that
// local time, as notify_here() does.
#ifndef VIOSIM_RUN_AHEAD_H
#define VIOSIM_RUN_AHEAD_H

#include <systemc>
#include <tlm_utils/tlm_quantumkeeper.h>

#include "module_params.h"

namespace viosim {

struct run_ahead {
    bool decoupled = false;               // sim.timing = decoupled
    sc_core::sc_time horizon = sc_core::SC_ZERO_TIME; // the run's time limit (absolute)

    // May the caller skip a wait of `local`? Only if decoupled, and nothing else can run
    // before or at the caller's local time.
    bool may_skip(const sc_core::sc_time &local) const
    {
        if (!decoupled)
            return false;
        if (sc_core::sc_time_stamp() + local >= horizon)
            return false;
        // Zero while anything is runnable or notified at the current time.
        return local < sc_core::sc_time_to_pending_activity();
    }

    // The synchronisation after a timed action: qk.sync() unless it may be skipped.
    void sync(tlm_utils::tlm_quantumkeeper &qk) const
    {
        if (!may_skip(qk.get_local_time()))
            qk.sync();
    }

    // Wake the waiters of ev at the caller's own time: a delta notification when the
    // caller is synchronised (always in exact mode), else at its local time.
    void notify_here(sc_core::sc_event &ev, const tlm_utils::tlm_quantumkeeper &qk) const
    {
        if (decoupled)
            ev.notify(qk.get_local_time());
        else
            ev.notify(sc_core::SC_ZERO_TIME);
    }
};

// The CPU's and the engines' synchronisation rule from the sim.* group, derived once.
inline run_ahead run_ahead_of(const sim_params &sim)
{
    run_ahead r;
    r.decoupled = sim.timing_decoupled;
    r.horizon = sc_core::sc_time(sim.time_limit_us * 1000.0, sc_core::SC_NS);
    return r;
}

} // namespace viosim

#endif
