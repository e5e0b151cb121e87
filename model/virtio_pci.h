/* virtio_pci.h -- the virtio-over-PCI register file: common configuration, notification
 * region decode, ISR status ("Virtio Over PCI Bus").
 *
 * This kernel owns the registers and the rules on them (feature select windows over
 * 128 feature bits, the device-status state machine, per-queue fields, config
 * generation, read-only fields). It does not own the queues' ring state, the MSI-X
 * table or the device-specific config: when a register write has an effect beyond
 * the register file (reset, queue enable, queue reset, DRIVER_OK, FEATURES_OK) the
 * write returns an event and the device composition (vdev) acts on it.
 */
#ifndef VIOSIM_VIRTIO_PCI_H
#define VIOSIM_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "conformance.h"
#include "virtio_wire.h"
#include "vs_reason.h"

#define VPCI_QUEUES_MAX 513u /* virtio-net with 256 queue pairs and the control queue */

enum vpci_event_kind {
    VPCI_EV_NONE = 0,
    VPCI_EV_RESET,          /* driver wrote 0 to device_status: reset everything */
    VPCI_EV_FEATURES_OK,    /* FEATURES_OK accepted (driver features are final) */
    VPCI_EV_DRIVER_OK,      /* DRIVER_OK set: device may start using the queues */
    VPCI_EV_QUEUE_ENABLE,   /* queue_enable written 1 for event.queue */
    VPCI_EV_QUEUE_RESET,    /* queue_reset written 1 for event.queue */
    VPCI_EV_NOTIFY,         /* available buffer notification for event.queue */
    VPCI_EV_ERROR,          /* the write is a device-fatal violation: event.reason */
};

struct vpci_event {
    enum vpci_event_kind kind;
    uint16_t queue;
    enum vs_reason reason;
    /* VPCI_EV_NOTIFY with NOTIFICATION_DATA: the decoded hint. */
    bool has_data;
    uint16_t next_off;
    bool next_wrap;
    /* The same device_status write also had FEATURES_OK accepted (set on
     * VPCI_EV_FEATURES_OK, and on VPCI_EV_DRIVER_OK when one write set both bits). */
    bool features_ok;
};

/* Fixed properties of the device, from the configuration. */
struct vpci_params {
    vs_features device_features;   /* offered features (after the config's mask) */
    uint16_t num_queues;           /* 1..VPCI_QUEUES_MAX */
    uint16_t queue_size_max;       /* 1..32768: what queue_size reads after reset */
    uint32_t notify_off_multiplier;/* bytes between queues' notify addresses (0: shared) */
    uint16_t msix_vectors;         /* MSI-X table size; a vector >= this reads back
                                    * NO_VECTOR. 0: only the spec's 0..0x7ff is checked */
    bool no_msix;                  /* the function has no MSI-X capability: every mapping
                                    * fails and the vector fields read NO_VECTOR */
    /* Device-specific feature validation at FEATURES_OK (e.g. net dependencies).
     * Returns true if the driver's feature set is acceptable. May be NULL. */
    bool (*validate_features)(void *ctx, const vs_features *driver);
    void *validate_ctx;
};

struct vpci_queue {
    uint16_t size;           /* driver-chosen; reset value = queue_size_max */
    uint16_t msix_vector;
    uint16_t enable;
    uint16_t notify_off;     /* fixed: the queue's index */
    uint64_t desc;
    uint64_t driver;
    uint64_t device;
    uint16_t reset;          /* queue_reset: reads 1 while a reset is in progress */
};

struct vpci_stats {
    uint64_t notifications;      /* notify writes naming a valid queue */
    uint64_t common_reads, common_writes;
    uint64_t isr_reads;
    uint64_t status_writes;
    uint64_t features_rejected;  /* FEATURES_OK refused */
    uint64_t ro_writes_ignored;  /* writes to read-only fields */
    uint64_t bad_accesses;       /* common cfg: wrong size, misaligned or outside */
    uint64_t feature_writes_ignored; /* driver_feature after FEATURES_OK or select > 3 */
    uint64_t status_clears_ignored;  /* device_status write clearing a driver-set bit */
    uint64_t status_bits_ignored;    /* device_status write with bits the driver may not set */
    uint64_t driver_ok_without_features; /* DRIVER_OK set while FEATURES_OK is not */
    uint64_t queue_writes_ignored;   /* per-queue write: no such queue, or queue enabled */
    uint64_t queue_disables_ignored; /* 0 written to queue_enable */
    uint64_t queue_resets;           /* queue_reset accepted */
    uint64_t queue_resets_ignored;   /* queue_reset without RING_RESET, or not 1 */
    uint64_t msix_vectors_refused;   /* vector write answered with NO_VECTOR */
    uint64_t notify_bad_access;      /* notify write of the wrong size or address */
    uint64_t notify_invalid_queue;   /* notify naming a queue that does not exist */
    uint64_t notify_value_mismatch;  /* notify value's queue differs from its address's */
};

struct vpci {
    struct vpci_params p;
    uint32_t device_feature_select;
    uint32_t driver_feature_select;
    vs_features driver_features;
    uint16_t config_msix_vector;
    uint8_t status;
    uint8_t config_generation;
    uint16_t queue_select;
    struct vpci_queue q[VPCI_QUEUES_MAX];
    uint8_t isr;
    struct vpci_stats stats;
    /* Driver-conformance checking: the rules this register file observes, and (for
     * RESET_NOT_AWAITED) whether the driver has read device_status back as 0 since it
     * last wrote 0. Kept across device resets: violations are the run's record. */
    struct vs_conformance conf;
    bool reset_unconfirmed;
};

/* Power-on: take the params and reset. */
void vpci_init(struct vpci *v, const struct vpci_params *p);
/* Device reset ("Device Reset"): every register to its reset value, params kept. */
void vpci_reset(struct vpci *v);

/* Common configuration access: off within the structure, size 1/2/4 (8 is split by
 * callers). Out-of-range or misaligned accesses read 0 and write nothing. */
uint32_t vpci_common_read(struct vpci *v, uint32_t off, unsigned size);
struct vpci_event vpci_common_write(struct vpci *v, uint32_t off, unsigned size, uint32_t value);

/* Notification region: a write of size bytes at off within the notify structure.
 * Decodes the queue from the address (queue_notify_off * multiplier) or, with
 * NOTIFICATION_DATA, from the value, and the hint (next_off, next_wrap). */
struct vpci_event vpci_notify_write(struct vpci *v, uint32_t off, unsigned size, uint32_t value);
/* Bytes the notify structure spans for all queues (cap.length). */
uint32_t vpci_notify_length(const struct vpci_params *p);

/* ISR status: read clears ("ISR status capability"). */
uint8_t vpci_isr_read(struct vpci *v);
void vpci_isr_set(struct vpci *v, uint8_t mask);

/* The device sets DEVICE_NEEDS_RESET ("Device Status Field"). */
void vpci_set_needs_reset(struct vpci *v);

/* Features negotiated so far (valid once FEATURES_OK is accepted). */
bool vpci_negotiated(const struct vpci *v, unsigned bit);
/* Device-specific configuration changed: bump config_generation. */
void vpci_config_changed(struct vpci *v);

#endif
