/* msix.h -- MSI-X table, pending bit array and masking (PCI Local Bus 3.0 §6.8.2).
 *
 * The table and PBA live in a BAR; the capability in config space carries the
 * enable and function-mask bits, which the device composition forwards with
 * msix_set_control() after every config write.
 *
 * A message that cannot be sent because its vector or the function is masked sets
 * the vector's pending bit; when the mask is lifted the pending message becomes
 * deliverable and the platform takes it with msix_take_pending(). Sending the message
 * (a posted 4-byte memory write) is the platform's job.
 */
#ifndef VIOSIM_MSIX_H
#define VIOSIM_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#include "vs_reason.h"

/* The capability's Table Size field allows 2048; one per queue of a 256-pair
 * virtio-net function plus configuration changes is 514. */
#define MSIX_VECTORS_MAX     514u
#define MSIX_ENTRY_SIZE      16u
#define MSIX_ENTRY_ADDR_LO   0x0
#define MSIX_ENTRY_ADDR_HI   0x4
#define MSIX_ENTRY_DATA      0x8
#define MSIX_ENTRY_CTRL      0xc
#define MSIX_CTRL_MASKBIT_MASK 0x1u

/* Message Control word of the capability (offset 2 in the capability). */
#define MSIX_MSGCTL_TABLE_SIZE_MASK 0x07ffu /* N-1, read-only */
#define MSIX_MSGCTL_FMASK_MASK      0x4000u /* function mask */
#define MSIX_MSGCTL_ENABLE_MASK     0x8000u /* MSI-X enable */

struct msix_message {
    uint64_t addr;
    uint32_t data;
    uint16_t vector;
};

struct msix_stats {
    uint64_t raised;     /* msix_raise calls with a valid vector */
    uint64_t sent;       /* messages handed to the platform */
    uint64_t pended;     /* raised while masked: pending bit set */
    uint64_t dropped;    /* raised with NO_VECTOR, an out-of-range vector, or MSI-X disabled */
};

struct msix {
    uint16_t nvec;
    uint32_t table[MSIX_VECTORS_MAX][4]; /* addr_lo, addr_hi, data, vector control */
    uint64_t pba[(MSIX_VECTORS_MAX + 63) / 64];
    bool enabled;
    bool function_masked;
    struct msix_stats stats;
};

/* Reset state: all vectors masked, no pending bits, MSI-X disabled ("after reset
 * the table's Mask bits are set"). nvec is clamped to 1..MSIX_VECTORS_MAX. */
void msix_init(struct msix *m, uint16_t nvec);

/* Sizes of the regions the device maps in its BAR. */
uint32_t msix_table_bytes(const struct msix *m);
uint32_t msix_pba_bytes(const struct msix *m);

/* Table accesses: 4- or 8-byte aligned accesses. Out-of-range reads return 0 and
 * writes are ignored. A write of reserved bits in vector control returns
 * VS_REASON_MSIX_RESERVED_BITS (the value is not stored). */
uint64_t msix_table_read(const struct msix *m, uint32_t off, unsigned size);
enum vs_reason msix_table_write(struct msix *m, uint32_t off, unsigned size, uint64_t value);
/* PBA is read-only. */
uint64_t msix_pba_read(const struct msix *m, uint32_t off, unsigned size);

/* Forward the capability's enable and function-mask bits. */
void msix_set_control(struct msix *m, bool enabled, bool function_masked);

/* Signal vector. Returns true and fills *msg if the message is to be sent now;
 * returns false if it was pended (masked) or dropped (NO_VECTOR, out of range,
 * MSI-X disabled). */
bool msix_raise(struct msix *m, uint16_t vector, struct msix_message *msg);

/* Take one pending message whose vector is no longer masked (clearing its pending
 * bit). Returns false when there is none. Call after table writes and control changes. */
bool msix_take_pending(struct msix *m, struct msix_message *msg);

#endif
