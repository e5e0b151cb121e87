/* conformance.h -- the driver-conformance checker's rule list and violation log.
 *
 * Every driver requirement (MUST / MUST NOT) of the chapters viosim implements that the
 * device can observe from its side is a rule here, with the spec section it comes from
 * and the rule in the project's own short words. The kernels report a violation where
 * they see it (with the queue and the values seen); the log keeps a count per rule and
 * the first VS_CONF_LOG violations in order. The platform stamps each with simulated
 * time through `now` (the kernels never look at it) and lists them in stats.json.
 * A violation is a record, not an action: what the device does about the input (ignore
 * it, or enter NEEDS_RESET) is decided where it is seen. docs/conformance.md lists
 * every rule.
 */
#ifndef VIOSIM_CONFORMANCE_H
#define VIOSIM_CONFORMANCE_H

#include <stdbool.h>
#include <stdint.h>

#include "vs_reason.h"

/* Whose obligation a rule is. */
enum vs_obligation { VS_OBLIGATION_DRIVER, VS_OBLIGATION_DEVICE };

/* X(name, spec section, rule in short words). Every rule here is a driver obligation;
 * the device's own obligations are kept by construction and tested, not logged. */
#define VS_RULES(X) \
    X(STATUS_BIT_CLEARED, "Basic Facilities of a Virtio Device / Device Status Field", \
      "the driver must not clear a device status bit (only a write of 0 resets)") \
    X(STATUS_RESERVED_BIT, "Basic Facilities of a Virtio Device / Device Status Field", \
      "the driver sets only the status bits of the initialisation sequence and FAILED, never DEVICE_NEEDS_RESET or reserved bits") \
    X(INIT_ORDER, "General Initialization And Device Operation / Device Initialization", \
      "the driver must set ACKNOWLEDGE, DRIVER, FEATURES_OK and DRIVER_OK in that order") \
    X(INIT_AFTER_FAILED, "Basic Facilities of a Virtio Device / Device Status Field", \
      "after setting FAILED the driver must reset the device before initialising it again") \
    X(RESET_NOT_AWAITED, "Virtio Transport Options / Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout", \
      "after writing 0 to device_status the driver must read device_status back as 0 before initialising again") \
    X(FEATURE_NOT_OFFERED, "Basic Facilities of a Virtio Device / Feature Bits", \
      "the driver must not accept a feature the device did not offer") \
    X(FEATURE_VERSION_1_DECLINED, "Reserved Feature Bits", \
      "the driver must accept VIRTIO_F_VERSION_1 when it is offered") \
    X(FEATURE_DEPENDENCY, "General Initialization And Device Operation / Device Initialization", \
      "the driver must not accept a feature that requires another feature it did not accept") \
    X(FEATURE_AFTER_FEATURES_OK, "General Initialization And Device Operation / Device Initialization", \
      "the driver must not accept new feature bits after setting FEATURES_OK") \
    X(READ_ONLY_FIELD_WRITTEN, "Virtio Transport Options / Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout", \
      "the driver must not write device_feature, num_queues, config_generation, queue_notify_off or queue_notif_config_data") \
    X(QUEUE_SIZE_ZERO, "Virtio Transport Options / Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout", \
      "with VIRTIO_F_RING_PACKED the driver must not write 0 to queue_size") \
    X(QUEUE_SIZE_NOT_POWER_OF_2, "Virtio Transport Options / Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout", \
      "without VIRTIO_F_RING_PACKED the driver must write only powers of 2 to queue_size") \
    X(QUEUE_CONFIG_AFTER_ENABLE, "Virtio Transport Options / Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout", \
      "the driver must configure a virtqueue's fields before enabling it (they cannot change while it is enabled)") \
    X(QUEUE_ENABLE_ZERO, "Virtio Transport Options / Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout", \
      "the driver must not write 0 to queue_enable") \
    X(QUEUE_RESET_NOT_NEGOTIATED, "Basic Facilities of a Virtio Device / Virtqueues / Virtqueue Reset", \
      "the driver resets a single queue through queue_reset only when VIRTIO_F_RING_RESET was negotiated, and writes only 1") \
    X(NOTIFY_BEFORE_DRIVER_OK, "General Initialization And Device Operation / Device Initialization", \
      "the driver must not send available buffer notifications before setting DRIVER_OK") \
    X(NOTIFY_WIDTH, "Virtio Transport Options / Virtio Over PCI Bus / PCI-specific Initialization And Device Operation / Available Buffer Notifications", \
      "a notification must be a 16-bit write, or a 32-bit one when VIRTIO_F_NOTIFICATION_DATA is negotiated") \
    X(NOTIFY_WRONG_QUEUE, "Virtio Transport Options / Virtio Over PCI Bus / PCI-specific Initialization And Device Operation / Available Buffer Notifications", \
      "the notification value (or its vq_index) must be the index of the queue whose notify address is written") \
    X(NOTIFY_QUEUE_NOT_ENABLED, "Basic Facilities of a Virtio Device / Virtqueues", \
      "the driver notifies only queues that exist and are enabled") \
    X(CTRL_COAL_NOT_NEGOTIATED, "Device Types / Network Device / Device Operation / Control Virtqueue / Notifications Coalescing", \
      "TX_SET and RX_SET need VIRTIO_NET_F_NOTF_COAL negotiated, VQ_SET and VQ_GET need VIRTIO_NET_F_VQ_NOTF_COAL") \
    X(CTRL_COAL_VQ_INDEX, "Device Types / Network Device / Device Operation / Control Virtqueue / Notifications Coalescing", \
      "vq_index must name an enabled transmit or receive virtqueue") \
    X(CTRL_MQ_NOT_NEGOTIATED, "Device Types / Network Device / Device Operation / Control Virtqueue / Automatic receive steering in multiqueue mode", \
      "VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET needs VIRTIO_NET_F_MQ negotiated") \
    X(CTRL_MQ_PAIRS, "Device Types / Network Device / Device Operation / Control Virtqueue / Automatic receive steering in multiqueue mode", \
      "virtqueue_pairs must be 1 .. max_virtqueue_pairs") \
    X(RING_RULE, "Basic Facilities of a Virtio Device / Virtqueues", \
      "the driver must make buffers available as the ring format's rules say (the device reason names which)") \
    X(CTRL_RSS_NOT_NEGOTIATED, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "VIRTIO_NET_CTRL_MQ_RSS_CONFIG needs VIRTIO_NET_F_RSS negotiated, VIRTIO_NET_CTRL_MQ_HASH_CONFIG needs VIRTIO_NET_F_HASH_REPORT") \
    X(CTRL_RSS_TRUNCATED, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "the command-specific data must hold the whole structure its indirection_table_mask and hash_key_length describe") \
    X(CTRL_RSS_HASH_TYPES, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "hash_types must enable only hash types the device offers in supported_hash_types") \
    X(CTRL_RSS_TABLE_LENGTH, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "indirection_table_mask + 1 must be a power of two, and indirection_table_mask less than rss_max_indirection_table_length") \
    X(CTRL_RSS_RESERVED, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "reserved fields must be zero: bit 15 of a receive queue id, the reserved bytes of struct virtio_net_hash_config") \
    X(CTRL_RSS_QUEUE, "Device Types / Network Device / Device Operation / Control Virtqueue / Receive-side scaling (RSS) / Setting RSS parameters", \
      "indirection_table entries and unclassified_queue must name enabled receive queues, max_tx_vq 1 .. the transmit queues enabled") \
    X(CTRL_RSS_KEY_LENGTH, "Device Types / Network Device / Device configuration layout", \
      "hash_key_length must be at most rss_max_key_size (and, viosim's choice, not 0 with hash types enabled)") \
    X(CTRL_MQ_PAIRS_NOT_ENABLED, "Device Types / Network Device / Device Operation / Control Virtqueue / Automatic receive steering in multiqueue mode", \
      "VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET may put in use only pairs whose receive and transmit queues the driver has configured and enabled") \
    X(TX_QUEUE_NOT_IN_USE, "Device Types / Network Device / Device Operation / Control Virtqueue / Automatic receive steering in multiqueue mode", \
      "the driver queues packets only on transmitq1 before VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, and on no transmit queue past virtqueue_pairs once it has placed that command in the available ring")

enum vs_rule {
#define VS_RULE_ENUM(name, section, text) VS_RULE_##name,
    VS_RULES(VS_RULE_ENUM)
#undef VS_RULE_ENUM
    VS_RULE_COUNT
};

#define VS_CONF_LOG 64u

struct vs_violation {
    uint64_t when;         /* the log's `now` when it was seen (simulated ps) */
    enum vs_rule rule;
    enum vs_reason reason; /* RING_RULE: the device's reason; VS_REASON_NONE otherwise */
    uint16_t queue;        /* 0xffff: not about one queue */
    uint64_t seen;         /* the offending value */
    uint64_t expected;     /* what was allowed or expected instead (rule-specific) */
};

struct vs_conformance {
    uint64_t now;                    /* set by the platform before it calls a kernel */
    uint64_t total;
    uint64_t per_rule[VS_RULE_COUNT];
    struct vs_violation log[VS_CONF_LOG]; /* the first VS_CONF_LOG, in order */
    uint32_t logged;
};

void vs_conf_init(struct vs_conformance *c);
void vs_conf_report(struct vs_conformance *c, enum vs_rule rule, uint16_t queue, uint64_t seen,
                    uint64_t expected);
/* A device reason caused by the driver breaking a ring or buffer rule (NEEDS_RESET). */
void vs_conf_report_reason(struct vs_conformance *c, enum vs_reason reason, uint16_t queue);
/* Is this device reason the driver's fault (a ring, buffer or MSI-X rule it broke)? */
bool vs_reason_is_driver_violation(enum vs_reason reason);

const char *vs_rule_name(enum vs_rule r);
const char *vs_rule_section(enum vs_rule r);
const char *vs_rule_text(enum vs_rule r);
enum vs_obligation vs_rule_obligation(enum vs_rule r);

#endif
