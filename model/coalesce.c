/* coalesce.c -- notification coalescing of one queue: see coalesce.h. */
#include "coalesce.h"

#include <string.h>

#define PS_PER_US 1000000u

bool coal_active(const struct coal_queue *c)
{
    return c->p.max_packets != 0 && c->p.max_usecs != 0;
}

bool coal_window_open(const struct coal_queue *c)
{
    return coal_active(c) && c->counted != 0;
}

void coal_reset(struct coal_queue *c)
{
    /* "Upon reset, a device MUST initialize all coalescing parameters to 0." */
    const uint32_t window = c->window;
    memset(c, 0, sizeof *c);
    c->window = window + 1u;
}

void coal_enable(struct coal_queue *c, const struct virtio_net_ctrl_coal *p)
{
    c->counted = 0;
    c->recheck = false;
    c->window++;
    c->p = *p;
}

void coal_set(struct coal_queue *c, const struct virtio_net_ctrl_coal *p)
{
    c->p = *p;
    c->recheck = true;
}

enum coal_decision coal_published(struct coal_queue *c, uint32_t n)
{
    if (!coal_active(c)) {
        c->counted = 0;
        return COAL_NOTIFY_EVERY;
    }
    /* "Operation": counting starts upon the first packet after the last notification;
     * the conditions are met upon max_packets packets (or max_usecs, the timer). */
    if (c->counted == 0)
        c->window++;
    c->counted = n > UINT32_MAX - c->counted ? UINT32_MAX : c->counted + n;
    if (c->counted < c->p.max_packets)
        return COAL_NOTHING;
    c->counted = 0;
    return COAL_NOTIFY_PACKETS;
}

enum coal_decision coal_expired(struct coal_queue *c, uint32_t window)
{
    if (c->counted == 0 || c->window != window)
        return COAL_NOTHING;
    c->counted = 0;
    return COAL_NOTIFY_TIMER;
}

enum coal_decision coal_changed(struct coal_queue *c)
{
    if (!c->recheck)
        return COAL_NOTHING;
    c->recheck = false;
    /* Example of the spec: 10 packets counted, then max_packets = 8: "the notification
     * condition is immediately considered to be met". Coalescing switched off with
     * packets counted meets it too (every packet meets it then). */
    if (c->counted == 0 || (coal_active(c) && c->counted < c->p.max_packets))
        return COAL_NOTHING;
    c->counted = 0;
    return COAL_NOTIFY_CHANGE;
}

void coal_timer_follow(struct coal_timer *t, bool open, uint32_t window, uint32_t usecs,
                       uint64_t now_ps, struct coal_timer_step *s)
{
    memset(s, 0, sizeof *s);
    if (t->armed && (!open || t->window != window)) { /* ended by max_packets or a change */
        s->ended = true;
        s->ended_start_ps = t->start_ps;
        t->armed = false;
    }
    if (!open)
        return;
    if (!t->armed) {
        t->armed = true;
        t->window = window;
        t->start_ps = now_ps;
        t->usecs = 0;
        s->started = true;
    }
    if (t->usecs != usecs) { /* new window, or max_usecs changed: same start */
        t->usecs = usecs;
        const uint64_t span = (uint64_t)usecs * PS_PER_US;
        t->deadline_ps = span > UINT64_MAX - t->start_ps ? UINT64_MAX : t->start_ps + span;
        s->arm = true;
        s->at_ps = t->deadline_ps;
    }
}

bool coal_timer_wake(const struct coal_timer *t, bool change_pending, uint64_t now_ps,
                     bool *rearm, uint64_t *at_ps)
{
    *rearm = false;
    if (change_pending || (t->armed && now_ps >= t->deadline_ps))
        return true;
    if (t->armed) { /* woken for a window that has since ended */
        *rearm = true;
        *at_ps = t->deadline_ps;
    }
    return false;
}

bool coal_timer_due(struct coal_timer *t, uint64_t now_ps)
{
    if (!t->armed || now_ps < t->deadline_ps)
        return false;
    t->armed = false;
    return true;
}
