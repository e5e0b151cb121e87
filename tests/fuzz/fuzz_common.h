/* fuzz_common.h -- what every fuzz target checks after each device operation, and a
 * byte reader over the fuzzer's input (header-only; see docs/fuzzing.md).
 *
 * The device's promise ("The device never breaks", issue 5): whatever the driver does,
 * the model neither crashes nor reads outside guest memory, and when it gives up it is
 * in the spec's error state: DEVICE_NEEDS_RESET set, with a named reason, and from then
 * on it touches no guest memory until the driver resets it. A broken promise aborts, which
 * libFuzzer reports as a crash with the input that caused it.
 */
#ifndef VIOSIM_TESTS_FUZZ_COMMON_H
#define VIOSIM_TESTS_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/vdev_rig.h"

struct fuzz_in {
    const uint8_t *p;
    size_t left;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
    uint16_t lo = fuzz_u8(in);
    return (uint16_t)(lo | (uint16_t)(fuzz_u8(in) << 8));
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
    uint32_t lo = fuzz_u16(in);
    return lo | ((uint32_t)fuzz_u16(in) << 16);
}

#define FUZZ_CHECK(cond, ...)                                                                 \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "fuzz invariant broken: %s: ", #cond);                            \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

/* The device's error state is the spec's and is named. */
static inline void fuzz_check_error_state(struct vdev *d)
{
    if (d->tp.error == VS_REASON_NONE)
        return;
    FUZZ_CHECK(d->tp.vpci.status & VIRTIO_STATUS_DEVICE_NEEDS_RESET, "error %s without NEEDS_RESET",
               vs_reason_name(d->tp.error));
    const char *name = vs_reason_name(d->tp.error);
    FUZZ_CHECK(name != NULL && name[0] != '\0', "error %d has no name", (int)d->tp.error);
}

/* A step's result agrees with the device's state. */
static inline void fuzz_check_step(struct vdev *d, enum pt_step s)
{
    if (s == PT_STEP_FAILED)
        FUZZ_CHECK(d->tp.error != VS_REASON_NONE, "a step failed with no reason recorded");
    fuzz_check_error_state(d);
}

#endif
