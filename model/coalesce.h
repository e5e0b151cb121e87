/* coalesce.h -- virtio-net notification coalescing of one queue, as a kernel of its own
 * ("Network Device / Device Operation / Control Virtqueue / Notifications Coalescing").
 *
 * Two parts, both untimed C: times are integers in picoseconds (the unit of the
 * model's clock, vs_guest_ops.now_ps), given by the caller.
 *
 *  - struct coal_queue: the parameters in force, the count of used buffers published
 *    since the last notification decision and the counting window they belong to. Each
 *    event (buffers published, the timer ending, a parameter change, a reset) returns
 *    whether the device must take its notification decision now, and why. Taking it
 *    (reading the driver's event suppression, sending the message) is the device's.
 *  - struct coal_timer: the max_usecs timer the platform runs for the open window.
 *    The platform tells it what the device says of the window and the time; it
 *    answers what to do with the platform's one timer event: arm it at a time, or
 *    nothing (a timer whose window ended is stale: coal_timer_wake says so when it
 *    fires).
 */
#ifndef VIOSIM_COALESCE_H
#define VIOSIM_COALESCE_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio_wire.h"

struct coal_queue {
    struct virtio_net_ctrl_coal p; /* parameters in force on this queue */
    uint32_t counted;  /* used buffers published since the last notification decision */
    uint32_t window;   /* counting windows opened so far: names the current one */
    bool recheck;      /* parameters changed: check the conditions at once */
};

/* What the device does after an event. */
enum coal_decision {
    COAL_NOTHING,        /* keep counting (or no window to end) */
    COAL_NOTIFY_EVERY,   /* no coalescing in force: decide for every publication */
    COAL_NOTIFY_PACKETS, /* max_packets buffers counted: decide now */
    COAL_NOTIFY_TIMER,   /* max_usecs of the window elapsed: decide now */
    COAL_NOTIFY_CHANGE,  /* new parameters met the conditions at once: decide now */
};

/* Coalescing in force: both parameters non-zero ("When the device has max_usecs = 0 or
 * max_packets = 0, the notification conditions are met after every packet"). */
bool coal_active(const struct coal_queue *c);
/* A window is open: coalescing in force and buffers counted, waiting for a decision. */
bool coal_window_open(const struct coal_queue *c);

/* Device reset: every parameter 0; the window number moves on, so a timer from
 * before the reset is stale. */
void coal_reset(struct coal_queue *c);
/* The queue is (re-)enabled with parameters p (the last TX_SET / RX_SET, or 0). */
void coal_enable(struct coal_queue *c, const struct virtio_net_ctrl_coal *p);
/* A control command set new parameters: in force at once, checked at once
 * (coal_changed). */
void coal_set(struct coal_queue *c, const struct virtio_net_ctrl_coal *p);

/* n used buffers were published. The first after a decision opens a window; the count
 * saturates at UINT32_MAX. Any COAL_NOTIFY_* means the decision is taken now and
 * counting starts again at the next buffer. */
enum coal_decision coal_published(struct coal_queue *c, uint32_t n);
/* max_usecs of `window` elapsed: COAL_NOTIFY_TIMER, or COAL_NOTHING for a stale window
 * (one that already ended) or nothing counted. */
enum coal_decision coal_expired(struct coal_queue *c, uint32_t window);
/* Serve a parameter change ("Notifications When Coalescing Parameters Change"):
 * COAL_NOTIFY_CHANGE when buffers are counted and the new max_packets is reached or
 * coalescing is now off; COAL_NOTHING otherwise (and without a pending change). */
enum coal_decision coal_changed(struct coal_queue *c);

/* The platform's max_usecs timer of one queue. */
struct coal_timer {
    bool armed;          /* a window is timed */
    uint32_t window;     /* the window it times */
    uint32_t usecs;      /* max_usecs it was set with */
    uint64_t start_ps;   /* the window's start: its first buffer's publication */
    uint64_t deadline_ps;
};

/* What to do with the timer event after coal_timer_follow. */
struct coal_timer_step {
    bool ended;          /* the timed window ended without the timer: ended_start_ps */
    uint64_t ended_start_ps;
    bool started;        /* a new window is timed from now (a timer arm) */
    bool arm;            /* (re)arm the timer event to fire at at_ps */
    uint64_t at_ps;
};

/* Follow the device's window at now_ps: `open`, `window` and `usecs` as the device
 * says (coal_window_open, the window's number, max_usecs). A window that ended stops
 * the timer; a new one starts it at now_ps; the deadline is max_usecs after the start,
 * moved from the same start when max_usecs changes (saturating at UINT64_MAX). */
void coal_timer_follow(struct coal_timer *t, bool open, uint32_t window, uint32_t usecs,
                       uint64_t now_ps, struct coal_timer_step *s);
/* The timer event fired at now_ps: true when there is work (a parameter change to
 * serve, or the deadline reached); false to sleep again, then *rearm says whether to
 * re-arm the event at *at_ps (woken early for a window that has since ended). */
bool coal_timer_wake(const struct coal_timer *t, bool change_pending, uint64_t now_ps,
                     bool *rearm, uint64_t *at_ps);
/* At now_ps, is the timed window's deadline reached? Then the timer stops and the
 * caller ends the window (coal_expired with t->window). */
bool coal_timer_due(struct coal_timer *t, uint64_t now_ps);

#endif
