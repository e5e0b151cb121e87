/* test_conformance.c -- the driver-conformance checker: each rule the register file
 * observes is caught with its queue and values, a clean driver triggers none, and ring
 * violations that end in NEEDS_RESET are recorded with the device's reason.
 * Each test names the spec section its rule comes from. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/vdev_rig.h"
#include "conformance.h"
#include "virtio_pci.h"

#define NQ 3u

static struct vpci_params params(void)
{
    struct vpci_params p;
    memset(&p, 0, sizeof p);
    vs_feature_set(&p.device_features, VIRTIO_F_VERSION_1_BIT);
    vs_feature_set(&p.device_features, VIRTIO_F_RING_PACKED_BIT);
    vs_feature_set(&p.device_features, VIRTIO_F_NOTIFICATION_DATA_BIT);
    vs_feature_set(&p.device_features, VIRTIO_F_RING_RESET_BIT);
    vs_feature_set(&p.device_features, VIRTIO_NET_F_MAC_BIT);
    p.num_queues = NQ;
    p.queue_size_max = 256;
    p.notify_off_multiplier = 4;
    p.msix_vectors = 4;
    return p;
}

static void wr(struct vpci *v, uint32_t off, unsigned size, uint32_t value)
{
    vpci_common_write(v, off, size, value);
}

static uint32_t rd(struct vpci *v, uint32_t off, unsigned size)
{
    return vpci_common_read(v, off, size);
}

static void features(struct vpci *v, uint32_t lo, uint32_t hi)
{
    wr(v, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    wr(v, VIRTIO_PCI_COMMON_GF, 4, lo);
    wr(v, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    wr(v, VIRTIO_PCI_COMMON_GF, 4, hi);
}

#define ACK VIRTIO_STATUS_ACKNOWLEDGE
#define DRV VIRTIO_STATUS_DRIVER
#define FOK VIRTIO_STATUS_FEATURES_OK
#define DOK VIRTIO_STATUS_DRIVER_OK
#define V1_HI (1u << (VIRTIO_F_VERSION_1_BIT - 32))
#define PACKED_HI (1u << (VIRTIO_F_RING_PACKED_BIT - 32))
#define NDATA_HI (1u << (VIRTIO_F_NOTIFICATION_DATA_BIT - 32))

/* The spec's sequence with VERSION_1 (+ packed when asked) and one queue set up. */
static void clean_init(struct vpci *v, bool packed)
{
    wr(v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_assert_eq(rd(v, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    wr(v, VIRTIO_PCI_COMMON_STATUS, 1, ACK);
    wr(v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV);
    features(v, 0, V1_HI | (packed ? PACKED_HI : 0));
    wr(v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV | FOK);
    cr_assert(rd(v, VIRTIO_PCI_COMMON_STATUS, 1) & FOK);
    wr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
    wr(v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 64);
    wr(v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x10000);
    wr(v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    wr(v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV | FOK | DOK);
}

static struct vpci v;

static void setup(void)
{
    struct vpci_params p = params();
    vpci_init(&v, &p);
}

TestSuite(conformance, .init = setup);

/* Exactly one violation so far, of this rule; returns it. */
static const struct vs_violation *only(enum vs_rule rule)
{
    cr_assert_eq(v.conf.total, 1, "expected one violation (%s), got %llu", vs_rule_name(rule),
                 (unsigned long long)v.conf.total);
    cr_assert_eq(v.conf.log[0].rule, rule, "got %s instead of %s", vs_rule_name(v.conf.log[0].rule),
                 vs_rule_name(rule));
    cr_assert_eq(v.conf.per_rule[rule], 1);
    return &v.conf.log[0];
}

Test(conformance, clean_driver_breaks_no_rule)
{
    clean_init(&v, true);
    vpci_notify_write(&v, 4, 2, 1); /* NOTIFICATION_DATA not negotiated: 16 bits, queue 1 */
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    clean_init(&v, false);
    cr_expect_eq(v.conf.total, 0, "first: %s", vs_rule_name(v.conf.log[0].rule));
}

/* Basic Facilities of a Virtio Device / Device Status Field: "The driver MUST NOT clear a
 * device status bit." */
Test(conformance, status_bit_cleared)
{
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, DRV);
    const struct vs_violation *x = only(VS_RULE_STATUS_BIT_CLEARED);
    cr_expect_eq(x->seen, DRV);
    cr_expect_eq(x->expected, ACK | DRV);
    cr_expect_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1), ACK | DRV, "the device keeps its view");
}

/* Device Status Field: DEVICE_NEEDS_RESET is the device's to set. */
Test(conformance, status_reserved_bit)
{
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    cr_expect_eq(only(VS_RULE_STATUS_RESERVED_BIT)->seen, ACK | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* General Initialization And Device Operation / Device Initialization: the sequence. */
Test(conformance, init_order_driver_before_acknowledge)
{
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, DRV);
    only(VS_RULE_INIT_ORDER);
}

Test(conformance, init_order_driver_ok_without_features_ok)
{
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV | DOK);
    only(VS_RULE_INIT_ORDER);
}

/* One write may set several bits at once: nothing of the order is skipped. */
Test(conformance, init_bits_together_are_not_out_of_order)
{
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV);
    cr_expect_eq(v.conf.total, 0);
}

/* Device Status Field: "If the driver sets the FAILED bit, the driver MUST later reset the
 * device before attempting to re-initialize." */
Test(conformance, init_after_failed)
{
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | VIRTIO_STATUS_FAILED);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | VIRTIO_STATUS_FAILED | DRV);
    only(VS_RULE_INIT_AFTER_FAILED);
}

/* Common configuration structure layout: "After writing 0 to device_status, the driver
 * MUST wait for a read of device_status to return 0 before reinitializing the device." */
Test(conformance, reset_not_awaited)
{
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK);
    only(VS_RULE_RESET_NOT_AWAITED);
}

/* Basic Facilities of a Virtio Device / Feature Bits: "The driver MUST NOT accept a feature
 * which the device did not offer". */
Test(conformance, feature_not_offered)
{
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV);
    features(&v, 1u << VIRTIO_NET_F_CSUM_BIT, V1_HI);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV | FOK);
    cr_expect_eq(only(VS_RULE_FEATURE_NOT_OFFERED)->seen, VIRTIO_NET_F_CSUM_BIT);
    cr_expect_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1) & FOK, 0, "FEATURES_OK refused");
}

/* Reserved Feature Bits: "A driver MUST accept VIRTIO_F_VERSION_1 if it is offered." */
Test(conformance, version_1_declined)
{
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV | FOK);
    only(VS_RULE_FEATURE_VERSION_1_DECLINED);
}

static bool refuse_all(void *ctx, const vs_features *f)
{
    (void)ctx;
    (void)f;
    return false;
}

/* Device Initialization: "The driver MUST NOT accept a feature which requires another
 * feature which was not accepted" (the device-specific dependencies decide). */
Test(conformance, feature_dependency)
{
    struct vpci_params p = params();
    p.validate_features = refuse_all;
    vpci_init(&v, &p);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV);
    features(&v, 0, V1_HI);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV | FOK);
    only(VS_RULE_FEATURE_DEPENDENCY);
}

/* Device Initialization: "The driver MUST NOT accept new feature bits after this step."
 * Writing back what was accepted is not new. */
Test(conformance, feature_after_features_ok)
{
    clean_init(&v, true);
    features(&v, 0, V1_HI | PACKED_HI);
    cr_expect_eq(v.conf.total, 0);
    features(&v, 0, V1_HI | PACKED_HI | NDATA_HI);
    cr_expect_eq(only(VS_RULE_FEATURE_AFTER_FEATURES_OK)->expected, V1_HI | PACKED_HI);
}

/* Common configuration structure layout: "The driver MUST NOT write to device_feature,
 * num_queues, config_generation, queue_notify_off or queue_notif_config_data." */
Test(conformance, read_only_fields)
{
    const uint32_t ro[][2] = {{VIRTIO_PCI_COMMON_DF, 4},           {VIRTIO_PCI_COMMON_NUMQ, 2},
                              {VIRTIO_PCI_COMMON_CFGGENERATION, 1}, {VIRTIO_PCI_COMMON_Q_NOFF, 2},
                              {VIRTIO_PCI_COMMON_Q_NDATA, 2}};
    for (unsigned i = 0; i < 5; i++) {
        wr(&v, ro[i][0], ro[i][1], 7);
        cr_expect_eq(v.conf.log[i].rule, VS_RULE_READ_ONLY_FIELD_WRITTEN);
        cr_expect_eq(v.conf.log[i].seen, ro[i][0], "the offset written");
    }
    cr_expect_eq(v.conf.total, 5);
}

/* Common configuration structure layout: queue_size rules per ring format. */
Test(conformance, queue_size_zero_packed)
{
    clean_init(&v, true);
    wr(&v, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    wr(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 0);
    cr_expect_eq(only(VS_RULE_QUEUE_SIZE_ZERO)->queue, 0);
}

Test(conformance, queue_size_not_power_of_2_split)
{
    clean_init(&v, false);
    wr(&v, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
    wr(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 100);
    cr_expect_eq(only(VS_RULE_QUEUE_SIZE_NOT_POWER_OF_2)->seen, 100);
    wr(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 128);
    cr_expect_eq(v.conf.total, 1, "128 is fine");
}

/* "The driver MUST configure the other virtqueue fields before enabling the virtqueue" and
 * "MUST NOT write a 0 to queue_enable". */
Test(conformance, queue_config_after_enable_and_enable_zero)
{
    clean_init(&v, true);
    wr(&v, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1); /* enabled by clean_init */
    wr(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x20000);
    cr_expect_eq(only(VS_RULE_QUEUE_CONFIG_AFTER_ENABLE)->queue, 1);
    wr(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 0);
    cr_expect_eq(v.conf.log[1].rule, VS_RULE_QUEUE_ENABLE_ZERO);
}

/* Basic Facilities / Virtqueues / Virtqueue Reset: queue_reset needs RING_RESET. */
Test(conformance, queue_reset_not_negotiated)
{
    clean_init(&v, true);
    wr(&v, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
    wr(&v, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
    cr_expect_eq(only(VS_RULE_QUEUE_RESET_NOT_NEGOTIATED)->expected, 0);
}

/* Device Initialization: "The driver MUST NOT send any buffer available notifications to
 * the device before setting DRIVER_OK." */
Test(conformance, notify_before_driver_ok)
{
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, ACK | DRV);
    vpci_notify_write(&v, 4, 2, 1);
    cr_expect_eq(only(VS_RULE_NOTIFY_BEFORE_DRIVER_OK)->queue, 1);
}

/* PCI-specific Initialization And Device Operation / Available Buffer Notifications:
 * width and value. */
Test(conformance, notify_width_and_wrong_queue)
{
    clean_init(&v, true);
    vpci_notify_write(&v, 4, 4, 1); /* 32 bits without NOTIFICATION_DATA */
    const struct vs_violation *x = only(VS_RULE_NOTIFY_WIDTH);
    cr_expect_eq(x->seen, 4);
    cr_expect_eq(x->expected, 2);
    vpci_notify_write(&v, 4, 2, 2); /* queue 1's address, value names queue 2 */
    cr_expect_eq(v.conf.log[1].rule, VS_RULE_NOTIFY_WRONG_QUEUE);
    cr_expect_eq(v.conf.log[1].seen, 2);
    cr_expect_eq(v.conf.log[1].expected, 1);
}

Test(conformance, notify_queue_not_enabled)
{
    clean_init(&v, true);
    vpci_notify_write(&v, 0, 2, 0); /* queue 0 was never enabled */
    cr_expect_eq(only(VS_RULE_NOTIFY_QUEUE_NOT_ENABLED)->queue, 0);
}

/* Violations are the run's record: a device reset keeps them, the log keeps the first
 * VS_CONF_LOG in order and counts the rest. */
Test(conformance, log_survives_reset_and_saturates)
{
    for (unsigned i = 0; i < VS_CONF_LOG + 10; i++) {
        v.conf.now = i;
        wr(&v, VIRTIO_PCI_COMMON_NUMQ, 2, 1);
    }
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_expect_eq(v.conf.total, VS_CONF_LOG + 10);
    cr_expect_eq(v.conf.logged, VS_CONF_LOG);
    cr_expect_eq(v.conf.log[VS_CONF_LOG - 1].when, VS_CONF_LOG - 1);
}

/* Every rule has a name, a section and a sentence. */
Test(conformance, rule_table_complete)
{
    for (unsigned r = 0; r < VS_RULE_COUNT; r++) {
        cr_expect(vs_rule_name((enum vs_rule)r)[0] != '\0');
        cr_expect(strlen(vs_rule_section((enum vs_rule)r)) > 5);
        cr_expect(strlen(vs_rule_text((enum vs_rule)r)) > 10);
    }
}

/* A ring rule broken on the data path ends in NEEDS_RESET and is logged with the reason:
 * here a transmit buffer the device may write ("Network Device / Device Operation /
 * Transmitting Packets": transmit buffers are device-readable). */
Test(conformance, ring_violation_logged_with_reason)
{
    struct vdev_rig r;
    cr_assert(vdev_rig_init(&r, NULL, 0x100000, 4u << 20));
    vs_features f;
    memset(&f, 0, sizeof f);
    vs_feature_set(&f, VIRTIO_F_VERSION_1_BIT);
    vs_feature_set(&f, VIRTIO_F_RING_PACKED_BIT);
    cr_assert(vdev_rig_bring_up(&r, &f, 2, 8));
    cr_assert_eq(r.dev.tp.vpci.conf.total, 0, "bring-up is clean");
    const uint64_t d = vdev_rig_desc(&r, VNET_QUEUE_TX);
    fake_guest_put64(&r.g, d, VDEV_RIG_BUFFERS(&r));
    fake_guest_put32(&r.g, d + 8, 72);
    fake_guest_put16(&r.g, d + 12, 0);
    fake_guest_put16(&r.g, d + 14, (uint16_t)(VIRTQ_DESC_F_AVAIL_MASK | VIRTQ_DESC_F_WRITE_MASK));
    struct pt_work w;
    memset(&w, 0, sizeof w);
    r.dev.tp.vpci.conf.now = 1234;
    cr_assert_eq(vnet_tx_step(&r.dev.net, &r.ops, &w), PT_STEP_FAILED);
    const struct vs_conformance *c = &r.dev.tp.vpci.conf;
    cr_assert_eq(c->total, 1);
    cr_expect_eq(c->log[0].rule, VS_RULE_RING_RULE);
    cr_expect_eq(c->log[0].reason, VS_REASON_TX_HAS_WRITABLE);
    cr_expect_eq(c->log[0].queue, VNET_QUEUE_TX);
    cr_expect_eq(c->log[0].when, 1234);
    vdev_rig_fini(&r);
}

/* docs/conformance.md lists every rule and every ring reason logged as a violation. */
Test(conformance, every_rule_documented)
{
    const char *src = getenv("VIOSIM_SOURCE_DIR");
    cr_assert(src, "VIOSIM_SOURCE_DIR is set by ctest");
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/conformance.md", src);
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot open %s", path);
    static char doc[1 << 17];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    char key[128];
    for (unsigned r = 0; r < VS_RULE_COUNT; r++) {
        snprintf(key, sizeof key, "| `%s` |", vs_rule_name((enum vs_rule)r));
        cr_expect(strstr(doc, key), "rule %s missing from docs/conformance.md", key);
    }
    for (unsigned r = 0; r < VS_REASON_COUNT; r++) {
        if (!vs_reason_is_driver_violation((enum vs_reason)r))
            continue;
        snprintf(key, sizeof key, "| `%s` |", vs_reason_name((enum vs_reason)r));
        cr_expect(strstr(doc, key), "reason %s missing from docs/conformance.md", key);
    }
}
