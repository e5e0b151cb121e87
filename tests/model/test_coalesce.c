/* test_coalesce.c -- the coalescing kernel (model/coalesce.h): the rules of virtio-net
 * "Network Device / Device Operation / Control Virtqueue / Notifications Coalescing"
 * (subparagraphs "Operation", "RX Example", "Notifications When Coalescing Parameters
 * Change" and the device normative part, device-types/net/description.tex of
 * ../shared/reference/virtio-spec/), the boundaries (max_packets 0 and 1, max_usecs 0,
 * the largest values, counters that wrap) and the max_usecs timer's bookkeeping. */
#include <criterion/criterion.h>

#include <string.h>

#include "coalesce.h"

#define PS_PER_US 1000000ull

static struct coal_queue with(uint32_t max_packets, uint32_t max_usecs)
{
    struct coal_queue c;
    memset(&c, 0, sizeof c);
    const struct virtio_net_ctrl_coal p = {max_packets, max_usecs};
    coal_enable(&c, &p);
    return c;
}

/* "When the device has max_usecs = 0 or max_packets = 0, the notification conditions
 * are met after every packet received/sent": no window, a decision every time. */
Test(coalesce, either_parameter_zero_notifies_every_publication)
{
    const uint32_t params[][2] = {{0, 0}, {0, 10}, {15, 0}};
    for (unsigned i = 0; i < 3; i++) {
        struct coal_queue c = with(params[i][0], params[i][1]);
        const uint32_t window = c.window;
        cr_expect_not(coal_active(&c));
        for (unsigned k = 0; k < 3; k++) {
            cr_expect_eq(coal_published(&c, 1 + k), COAL_NOTIFY_EVERY);
            cr_expect_not(coal_window_open(&c));
            cr_expect_eq(c.counted, 0);
        }
        cr_expect_eq(c.window, window, "no counting window without coalescing");
    }
}

/* "RX Example": max_usecs = 10, max_packets = 15: the 15th packet meets the
 * conditions; then the device "waits for the next packet and starts counting ...
 * again" ("Operation"), in a new window. */
Test(coalesce, max_packets_reached_decides_and_counting_restarts)
{
    struct coal_queue c = with(15, 10);
    cr_expect(coal_active(&c));
    const uint32_t w0 = c.window;
    for (unsigned k = 1; k < 15; k++) {
        cr_expect_eq(coal_published(&c, 1), COAL_NOTHING, "packet %u", k);
        cr_expect(coal_window_open(&c));
        cr_expect_eq(c.window, w0 + 1, "one window from the first packet");
    }
    cr_expect_eq(coal_published(&c, 1), COAL_NOTIFY_PACKETS);
    cr_expect_not(coal_window_open(&c));
    cr_expect_eq(coal_published(&c, 1), COAL_NOTHING);
    cr_expect_eq(c.window, w0 + 2, "the next packet opens the next window");
    cr_expect_eq(c.counted, 1);
}

/* max_packets = 1: every publication meets the conditions (each in its own window). */
Test(coalesce, max_packets_one_decides_every_publication)
{
    struct coal_queue c = with(1, 1000);
    const uint32_t w0 = c.window;
    for (unsigned k = 1; k <= 4; k++) {
        cr_expect_eq(coal_published(&c, 1), COAL_NOTIFY_PACKETS);
        cr_expect_eq(c.window, w0 + k);
        cr_expect_eq(coal_expired(&c, c.window), COAL_NOTHING, "its timer is stale");
    }
}

/* Buffers published together count together: a batch passing max_packets decides once. */
Test(coalesce, a_batch_counts_at_once)
{
    struct coal_queue c = with(15, 10);
    cr_expect_eq(coal_published(&c, 10), COAL_NOTHING);
    cr_expect_eq(coal_published(&c, 10), COAL_NOTIFY_PACKETS);
    cr_expect_eq(c.counted, 0);
}

/* Hostile parameters from the control queue are taken as they come (the spec bounds
 * neither): max_packets = 2^32 - 1 is reached by a count that saturates instead of
 * wrapping to a small number that would never reach it. */
Test(coalesce, largest_max_packets_is_reached_by_a_saturating_count)
{
    struct coal_queue c = with(UINT32_MAX, UINT32_MAX);
    cr_expect_eq(coal_published(&c, UINT32_MAX - 1), COAL_NOTHING);
    cr_expect_eq(c.counted, UINT32_MAX - 1);
    cr_expect_eq(coal_published(&c, 5), COAL_NOTIFY_PACKETS, "no wrap to 3");
    cr_expect_eq(coal_published(&c, UINT32_MAX), COAL_NOTIFY_PACKETS);
}

/* max_usecs elapsed: the window's timer decides; a timer of a window that already
 * ended (by max_packets, a change, a reset) does nothing. */
Test(coalesce, timer_ends_its_own_window_only)
{
    struct coal_queue c = with(15, 10);
    cr_expect_eq(coal_expired(&c, c.window), COAL_NOTHING, "nothing counted");
    coal_published(&c, 3);
    const uint32_t w = c.window;
    cr_expect_eq(coal_expired(&c, w - 1), COAL_NOTHING, "an older window's timer");
    cr_expect_eq(coal_expired(&c, w), COAL_NOTIFY_TIMER);
    cr_expect_eq(c.counted, 0);
    cr_expect_eq(coal_expired(&c, w), COAL_NOTHING, "already ended");
    coal_published(&c, 1);
    cr_expect_eq(coal_expired(&c, w), COAL_NOTHING, "the next window is not this one");
}

/* "Notifications When Coalescing Parameters Change": max_packets = 15, 10 packets
 * sent, then max_packets = 8: "the notification condition is immediately considered
 * to be met". */
Test(coalesce, change_below_the_count_decides_at_once)
{
    struct coal_queue c = with(15, 10);
    coal_published(&c, 10);
    const struct virtio_net_ctrl_coal eight = {8, 10};
    coal_set(&c, &eight);
    cr_expect_eq(c.p.max_packets, 8, "in force at once");
    cr_expect_eq(coal_changed(&c), COAL_NOTIFY_CHANGE);
    cr_expect_eq(c.counted, 0);
    cr_expect_eq(coal_changed(&c), COAL_NOTHING, "served once");
}

Test(coalesce, change_that_does_not_meet_the_conditions_keeps_counting)
{
    struct coal_queue c = with(15, 10);
    coal_published(&c, 10);
    const uint32_t w = c.window;
    const struct virtio_net_ctrl_coal twenty = {20, 50};
    coal_set(&c, &twenty);
    cr_expect_eq(coal_changed(&c), COAL_NOTHING);
    cr_expect_eq(c.counted, 10);
    cr_expect_eq(c.window, w, "the window keeps its start");
    cr_expect_eq(coal_published(&c, 10), COAL_NOTIFY_PACKETS, "the new max_packets");
}

/* Switched off with packets counted: every packet meets the conditions now, so the
 * counted ones do too. Nothing counted: nothing to send. */
Test(coalesce, change_to_off_decides_counted_packets)
{
    const struct virtio_net_ctrl_coal off[] = {{0, 0}, {0, 10}, {15, 0}};
    for (unsigned i = 0; i < 3; i++) {
        struct coal_queue c = with(15, 10);
        coal_published(&c, 2);
        coal_set(&c, &off[i]);
        cr_expect_eq(coal_changed(&c), COAL_NOTIFY_CHANGE, "case %u", i);
        struct coal_queue idle = with(15, 10);
        coal_set(&idle, &off[i]);
        cr_expect_eq(coal_changed(&idle), COAL_NOTHING, "case %u, nothing counted", i);
    }
    struct coal_queue c = with(15, 10);
    coal_published(&c, 2);
    cr_expect_eq(coal_changed(&c), COAL_NOTHING, "no change pending");
}

/* "Upon reset, a device MUST initialize all coalescing parameters to 0"; a timer from
 * before the reset is stale, also when the window number wraps. */
Test(coalesce, reset_zeroes_parameters_and_stales_timers)
{
    struct coal_queue c = with(15, 10);
    c.window = UINT32_MAX - 1;
    coal_published(&c, 3);
    cr_expect_eq(c.window, UINT32_MAX);
    const struct virtio_net_ctrl_coal eight = {8, 10};
    coal_set(&c, &eight);
    coal_reset(&c);
    cr_expect_eq(c.p.max_packets, 0);
    cr_expect_eq(c.p.max_usecs, 0);
    cr_expect_eq(c.counted, 0);
    cr_expect_not(c.recheck);
    cr_expect_eq(c.window, 0, "wraps");
    cr_expect_eq(coal_expired(&c, UINT32_MAX), COAL_NOTHING);
    cr_expect_eq(coal_changed(&c), COAL_NOTHING);
    cr_expect_eq(coal_published(&c, 1), COAL_NOTIFY_EVERY);
}

/* "Upon disabling and re-enabling a transmit [receive] virtqueue, the device MUST set
 * the coalescing parameters of the virtqueue to those configured through the ...
 * TX_SET [RX_SET] command, or ... to 0": the caller passes them; the count and a
 * pending change are dropped. */
Test(coalesce, enable_takes_the_given_parameters_afresh)
{
    struct coal_queue c = with(15, 10);
    coal_published(&c, 3);
    const struct virtio_net_ctrl_coal eight = {8, 10};
    coal_set(&c, &eight);
    const uint32_t w = c.window;
    const struct virtio_net_ctrl_coal class_set = {4, 7};
    coal_enable(&c, &class_set);
    cr_expect_eq(c.p.max_packets, 4);
    cr_expect_eq(c.p.max_usecs, 7);
    cr_expect_eq(c.counted, 0);
    cr_expect_not(c.recheck);
    cr_expect_eq(coal_expired(&c, w), COAL_NOTHING, "the old window's timer is stale");
}

/* ---- The max_usecs timer ---- */

Test(coalesce, timer_starts_with_the_window_and_moves_with_max_usecs)
{
    struct coal_timer t;
    memset(&t, 0, sizeof t);
    struct coal_timer_step s;
    coal_timer_follow(&t, false, 0, 0, 100, &s);
    cr_expect_not(s.ended || s.started || s.arm, "no window: nothing");
    coal_timer_follow(&t, true, 7, 10, 1000, &s);
    cr_expect(s.started && s.arm && !s.ended);
    cr_expect_eq(s.at_ps, 1000 + 10 * PS_PER_US);
    coal_timer_follow(&t, true, 7, 10, 5000, &s);
    cr_expect_not(s.ended || s.started || s.arm, "same window, same max_usecs");
    coal_timer_follow(&t, true, 7, 3, 6000, &s);
    cr_expect(s.arm && !s.started);
    cr_expect_eq(s.at_ps, 1000 + 3 * PS_PER_US, "a new max_usecs keeps the start");
    coal_timer_follow(&t, true, 8, 3, 7000, &s);
    cr_expect(s.ended && s.started && s.arm, "another window: the old ends, one starts");
    cr_expect_eq(s.ended_start_ps, 1000);
    cr_expect_eq(s.at_ps, 7000 + 3 * PS_PER_US);
    coal_timer_follow(&t, false, 8, 3, 8000, &s);
    cr_expect(s.ended && !s.started && !s.arm, "window ended by max_packets");
    cr_expect_not(t.armed);
}

Test(coalesce, timer_wakes_for_work_only)
{
    struct coal_timer t;
    memset(&t, 0, sizeof t);
    struct coal_timer_step s;
    bool rearm = true;
    uint64_t at = 0;
    cr_expect_not(coal_timer_wake(&t, false, 50, &rearm, &at));
    cr_expect_not(rearm, "nothing timed: sleep");
    cr_expect(coal_timer_wake(&t, true, 50, &rearm, &at), "a change to serve");
    coal_timer_follow(&t, true, 1, 2, 1000, &s);
    const uint64_t deadline = 1000 + 2 * PS_PER_US;
    cr_expect_not(coal_timer_wake(&t, false, deadline - 1, &rearm, &at));
    cr_expect(rearm);
    cr_expect_eq(at, deadline, "woken early: sleep to the deadline");
    cr_expect_not(coal_timer_due(&t, deadline - 1));
    cr_expect(coal_timer_wake(&t, false, deadline, &rearm, &at));
    cr_expect(coal_timer_due(&t, deadline));
    cr_expect_not(t.armed);
    cr_expect_not(coal_timer_due(&t, deadline + 1), "ends once");
}

/* The largest max_usecs (2^32 - 1 us, about 71 minutes) is a finite deadline; one
 * past the end of time saturates instead of wrapping to the past. */
Test(coalesce, largest_max_usecs_and_the_end_of_time)
{
    struct coal_timer t;
    memset(&t, 0, sizeof t);
    struct coal_timer_step s;
    coal_timer_follow(&t, true, 1, UINT32_MAX, 5, &s);
    cr_expect_eq(s.at_ps, 5 + (uint64_t)UINT32_MAX * PS_PER_US);
    memset(&t, 0, sizeof t);
    coal_timer_follow(&t, true, 1, UINT32_MAX, UINT64_MAX - 10, &s);
    cr_expect_eq(s.at_ps, UINT64_MAX);
    cr_expect_not(coal_timer_due(&t, UINT64_MAX - 1));
}

/* The window number wraps: a timer follows the window by equality, so the wrapped
 * number is a new window. */
Test(coalesce, window_numbers_wrap)
{
    struct coal_queue c = with(15, 10);
    c.window = UINT32_MAX;
    struct coal_timer t;
    memset(&t, 0, sizeof t);
    struct coal_timer_step s;
    coal_published(&c, 1);
    cr_expect_eq(c.window, 0);
    coal_timer_follow(&t, coal_window_open(&c), c.window, c.p.max_usecs, 10, &s);
    cr_expect(s.started);
    cr_expect_eq(coal_expired(&c, t.window), COAL_NOTIFY_TIMER);
    coal_published(&c, 1);
    coal_timer_follow(&t, coal_window_open(&c), c.window, c.p.max_usecs, 20, &s);
    cr_expect(s.ended && s.started);
    cr_expect_eq(t.window, 1);
}
