/* test_virtio_pci.c -- the virtio-over-PCI register file against the spec's rules.
 * Each test names the spec section (title path) whose text it checks. */
#include <criterion/criterion.h>

#include <string.h>

#include "virtio_pci.h"

/* ---- fixtures ---------------------------------------------------------------- */

#define NQ 3u
#define QMAX 256u
#define HIGH_BIT_WORD2 70u  /* a device-type bit above 64 */
#define HIGH_BIT_WORD3 127u /* the last bit the select windows reach */

struct validator {
    bool answer;
    unsigned calls;
    vs_features seen;
};

static bool validate(void *ctx, const vs_features *driver)
{
    struct validator *val = ctx;
    val->calls++;
    val->seen = *driver;
    return val->answer;
}

static struct vpci_params base_params(void)
{
    struct vpci_params p;
    memset(&p, 0, sizeof p);
    vs_feature_set(&p.device_features, VIRTIO_NET_F_MAC_BIT);
    vs_feature_set(&p.device_features, VIRTIO_F_VERSION_1_BIT);
    vs_feature_set(&p.device_features, VIRTIO_F_RING_PACKED_BIT);
    vs_feature_set(&p.device_features, VIRTIO_F_NOTIFICATION_DATA_BIT);
    vs_feature_set(&p.device_features, VIRTIO_F_RING_RESET_BIT);
    vs_feature_set(&p.device_features, HIGH_BIT_WORD2);
    vs_feature_set(&p.device_features, HIGH_BIT_WORD3);
    p.num_queues = NQ;
    p.queue_size_max = QMAX;
    p.notify_off_multiplier = 4;
    p.msix_vectors = 4;
    return p;
}

static uint32_t rd(struct vpci *v, uint32_t off, unsigned size)
{
    return vpci_common_read(v, off, size);
}

static struct vpci_event wr(struct vpci *v, uint32_t off, unsigned size, uint32_t value)
{
    return vpci_common_write(v, off, size, value);
}

static void write_driver_features(struct vpci *v, const vs_features *f)
{
    for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++) {
        wr(v, VIRTIO_PCI_COMMON_GFSELECT, 4, w);
        wr(v, VIRTIO_PCI_COMMON_GF, 4, f->w[w]);
    }
}

/* ACKNOWLEDGE, DRIVER, the given features, FEATURES_OK; returns the event. */
static struct vpci_event negotiate(struct vpci *v, const vs_features *f)
{
    wr(v, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(v, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    write_driver_features(v, f);
    return wr(v, VIRTIO_PCI_COMMON_STATUS, 1,
              VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

static vs_features features_of(unsigned n, const unsigned *bits)
{
    vs_features f;
    memset(&f, 0, sizeof f);
    for (unsigned i = 0; i < n; i++)
        vs_feature_set(&f, bits[i]);
    return f;
}

static vs_features v1_only(void)
{
    const unsigned bits[] = {VIRTIO_F_VERSION_1_BIT};
    return features_of(1, bits);
}

static void select_queue(struct vpci *v, uint16_t q)
{
    wr(v, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
}

/* ---- reset values ------------------------------------------------------------- */

/* Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout
 * (queue_size "On reset, specifies the maximum queue size"; "MUST present a 0 in
 * queue_enable on reset"; queue_reset 0 on reset) and
 * PCI-specific Initialization And Device Operation / Device Initialization /
 * MSI-X Vector Configuration ("all queue and configuration change events are
 * unmapped upon reset"). */
Test(virtio_pci, reset_values_of_every_field)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_DFSELECT, 4), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_DF, 4), p.device_features.w[0]);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_GFSELECT, 4), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_GF, 4), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_NUMQ, 2), NQ);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_ADM_Q_IDX, 2), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_ADM_Q_NUM, 2), 0);
    for (uint16_t q = 0; q < NQ; q++) {
        select_queue(&v, q);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2), QMAX);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_NOFF, 2), q);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_DESCHI, 4), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_AVAILLO, 4), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_AVAILHI, 4), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_USEDLO, 4), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_USEDHI, 4), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_NDATA, 2), q);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_RESET, 2), 0);
    }
    cr_assert_eq(vpci_isr_read(&v), 0);
    cr_assert_eq(v.stats.bad_accesses, 0);
}

/* ---- feature windows ----------------------------------------------------------- */

/* Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout:
 * "The device MUST present the feature bits it is offering in device_feature,
 * starting at bit device_feature_select * 32 for any device_feature_select". */
Test(virtio_pci, device_feature_windows_cover_128_bits)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++) {
        wr(&v, VIRTIO_PCI_COMMON_DFSELECT, 4, w);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_DFSELECT, 4), w);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_DF, 4), p.device_features.w[w], "window %u", w);
    }
    wr(&v, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    cr_assert(rd(&v, VIRTIO_PCI_COMMON_DF, 4) & (1u << (VIRTIO_F_VERSION_1_BIT - 32)));
    wr(&v, VIRTIO_PCI_COMMON_DFSELECT, 4, 2);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_DF, 4), 1u << (HIGH_BIT_WORD2 - 64));
    wr(&v, VIRTIO_PCI_COMMON_DFSELECT, 4, 3);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_DF, 4), 1u << 31);

    /* Beyond the bits this device has: 0. */
    wr(&v, VIRTIO_PCI_COMMON_DFSELECT, 4, 4);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_DF, 4), 0);
    wr(&v, VIRTIO_PCI_COMMON_DFSELECT, 4, 0xffffffffu);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_DF, 4), 0);
}

/* Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout:
 * "The device MUST present any valid feature bits the driver has written in
 * driver_feature, starting at bit driver_feature_select * 32". */
Test(virtio_pci, driver_feature_windows_round_trip)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    write_driver_features(&v, &p.device_features);
    for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++) {
        wr(&v, VIRTIO_PCI_COMMON_GFSELECT, 4, w);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_GF, 4), p.device_features.w[w], "window %u", w);
    }
    cr_assert(vs_feature_has(&v.driver_features, HIGH_BIT_WORD3));

    /* Selects beyond the 128 bits: reads 0, writes go nowhere. */
    wr(&v, VIRTIO_PCI_COMMON_GFSELECT, 4, 4);
    wr(&v, VIRTIO_PCI_COMMON_GF, 4, 0xffffffffu);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_GF, 4), 0);
    cr_assert_eq(v.stats.feature_writes_ignored, 1);
    cr_assert_eq(memcmp(&v.driver_features, &p.device_features, sizeof v.driver_features), 0);
}

/* ---- feature negotiation ------------------------------------------------------- */

/* Basic Facilities of a Virtio Device / Feature Bits ("The device SHOULD accept any
 * valid subset of features the driver accepts") and General Initialization And
 * Device Operation / Device Initialization (re-read device status: FEATURES_OK
 * still set). */
Test(virtio_pci, features_ok_accepted_for_a_valid_subset)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    const unsigned bits[] = {VIRTIO_F_VERSION_1_BIT, VIRTIO_F_RING_PACKED_BIT, HIGH_BIT_WORD3};
    vs_features f = features_of(3, bits);
    cr_assert_not(vpci_negotiated(&v, VIRTIO_F_VERSION_1_BIT), "nothing negotiated before FEATURES_OK");
    write_driver_features(&v, &f);
    cr_assert_not(vpci_negotiated(&v, VIRTIO_F_VERSION_1_BIT), "written but not FEATURES_OK");

    struct vpci_event e = negotiate(&v, &f);
    cr_assert_eq(e.kind, VPCI_EV_FEATURES_OK);
    cr_assert(e.features_ok);
    cr_assert(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    cr_assert(vpci_negotiated(&v, VIRTIO_F_VERSION_1_BIT));
    cr_assert(vpci_negotiated(&v, VIRTIO_F_RING_PACKED_BIT));
    cr_assert(vpci_negotiated(&v, HIGH_BIT_WORD3));
    cr_assert_not(vpci_negotiated(&v, VIRTIO_NET_F_MAC_BIT), "offered but not accepted");
    cr_assert_not(vpci_negotiated(&v, 200), "beyond 128 bits");
    cr_assert_eq(v.stats.features_rejected, 0);
}

/* Basic Facilities of a Virtio Device / Feature Bits / Legacy Interface: A Note on
 * Feature Bits (VERSION_1 not acknowledged means a legacy driver; this device has
 * no legacy interface) and Reserved Feature Bits ("A device MAY fail to operate
 * further if VIRTIO_F_VERSION_1 is not accepted"). */
Test(virtio_pci, features_ok_refused_without_version_1)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    const unsigned bits[] = {VIRTIO_NET_F_MAC_BIT, VIRTIO_F_RING_PACKED_BIT};
    vs_features f = features_of(2, bits);
    struct vpci_event e = negotiate(&v, &f);
    cr_assert_eq(e.kind, VPCI_EV_NONE);
    cr_assert_not(e.features_ok);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1),
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, "FEATURES_OK reads back clear");
    cr_assert_not(vpci_negotiated(&v, VIRTIO_NET_F_MAC_BIT));
    cr_assert_eq(v.stats.features_rejected, 1);
}

/* Basic Facilities of a Virtio Device / Feature Bits: the driver "MUST NOT accept a
 * feature which the device did not offer"; the device otherwise "MUST fail to set
 * the FEATURES_OK device status bit". */
Test(virtio_pci, features_ok_refused_for_unoffered_bits)
{
    const unsigned unoffered[] = {1, VIRTIO_F_ACCESS_PLATFORM_BIT, 64, 126};
    for (unsigned i = 0; i < sizeof unoffered / sizeof unoffered[0]; i++) {
        struct vpci v;
        struct vpci_params p = base_params();
        vpci_init(&v, &p);
        const unsigned bits[] = {VIRTIO_F_VERSION_1_BIT, unoffered[i]};
        vs_features f = features_of(2, bits);
        struct vpci_event e = negotiate(&v, &f);
        cr_assert_eq(e.kind, VPCI_EV_NONE, "bit %u", unoffered[i]);
        cr_assert_not(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
        cr_assert_eq(v.stats.features_rejected, 1);

        /* The driver fixes its set and tries again: accepted. */
        vs_features good = v1_only();
        write_driver_features(&v, &good);
        e = wr(&v, VIRTIO_PCI_COMMON_STATUS, 1,
               VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
        cr_assert_eq(e.kind, VPCI_EV_FEATURES_OK);
    }
}

/* Basic Facilities of a Virtio Device / Feature Bits: the driver "MUST NOT accept a
 * feature which requires another feature which was not accepted" -- the
 * device-specific validator decides dependencies and can refuse FEATURES_OK. */
Test(virtio_pci, features_ok_refused_by_the_validator)
{
    struct validator val = {.answer = false};
    struct vpci v;
    struct vpci_params p = base_params();
    p.validate_features = validate;
    p.validate_ctx = &val;
    vpci_init(&v, &p);

    const unsigned bits[] = {VIRTIO_F_VERSION_1_BIT, VIRTIO_NET_F_MAC_BIT};
    vs_features f = features_of(2, bits);
    struct vpci_event e = negotiate(&v, &f);
    cr_assert_eq(e.kind, VPCI_EV_NONE);
    cr_assert_eq(val.calls, 1);
    cr_assert_eq(memcmp(&val.seen, &f, sizeof f), 0, "validator sees the driver's set");
    cr_assert_not(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
    cr_assert_eq(v.stats.features_rejected, 1);

    val.answer = true;
    e = wr(&v, VIRTIO_PCI_COMMON_STATUS, 1,
           VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    cr_assert_eq(e.kind, VPCI_EV_FEATURES_OK);
    cr_assert_eq(val.calls, 2);

    /* The validator is not consulted for a set that already fails the generic rules. */
    vpci_init(&v, &p);
    vs_features nov1 = features_of(1, (const unsigned[]){VIRTIO_NET_F_MAC_BIT});
    negotiate(&v, &nov1);
    cr_assert_eq(val.calls, 2);
}

/* General Initialization And Device Operation / Device Initialization: "Set the
 * FEATURES_OK status bit. The driver MUST NOT accept new feature bits after this
 * step." */
Test(virtio_pci, driver_feature_writes_after_features_ok_are_ignored)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    vs_features f = v1_only();
    cr_assert_eq(negotiate(&v, &f).kind, VPCI_EV_FEATURES_OK);
    uint64_t before = v.stats.feature_writes_ignored;
    wr(&v, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
    wr(&v, VIRTIO_PCI_COMMON_GF, 4, p.device_features.w[1]);
    wr(&v, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
    wr(&v, VIRTIO_PCI_COMMON_GF, 4, p.device_features.w[0]);
    cr_assert_eq(v.stats.feature_writes_ignored, before + 2);
    cr_assert_eq(memcmp(&v.driver_features, &f, sizeof f), 0);
    cr_assert_not(vpci_negotiated(&v, VIRTIO_F_RING_PACKED_BIT));
}

/* ---- device status ---------------------------------------------------------- */

/* Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout:
 * "The device MUST reset when 0 is written to device_status, and present a 0 in
 * device_status once that is done"; Basic Facilities of a Virtio Device / Device
 * Reset: "A device MUST reinitialize device status to 0 after receiving a reset". */
Test(virtio_pci, status_write_0_resets_every_register)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    const unsigned bits[] = {VIRTIO_F_VERSION_1_BIT, VIRTIO_F_RING_RESET_BIT};
    vs_features f = features_of(2, bits);
    negotiate(&v, &f);
    wr(&v, VIRTIO_PCI_COMMON_MSIX, 2, 1);
    for (uint16_t q = 0; q < NQ; q++) {
        select_queue(&v, q);
        wr(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 64);
        wr(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2, 2);
        wr(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000);
        wr(&v, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0x1);
        wr(&v, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, 0x2000);
        wr(&v, VIRTIO_PCI_COMMON_Q_USEDLO, 4, 0x3000);
        wr(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    }
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_DRIVER_OK);
    vpci_set_needs_reset(&v);
    vpci_isr_set(&v, VIRTIO_PCI_ISR_QUEUE_MASK);
    wr(&v, VIRTIO_PCI_COMMON_DFSELECT, 4, 2);
    wr(&v, VIRTIO_PCI_COMMON_GFSELECT, 4, 3);
    vpci_config_changed(&v);
    uint64_t status_writes = v.stats.status_writes;

    struct vpci_event e = wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_assert_eq(e.kind, VPCI_EV_RESET);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_DFSELECT, 4), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_GFSELECT, 4), 0);
    for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++)
        cr_assert_eq(v.driver_features.w[w], 0);
    cr_assert_not(vpci_negotiated(&v, VIRTIO_F_VERSION_1_BIT));
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SELECT, 2), 0);
    cr_assert_eq(vpci_isr_read(&v), 0);
    for (uint16_t q = 0; q < NQ; q++) {
        select_queue(&v, q);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2), QMAX);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_NOFF, 2), q);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_DESCHI, 4), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_AVAILLO, 4), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_USEDLO, 4), 0);
    }
    /* Kept: params, counters, and the device-specific config's generation. */
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_NUMQ, 2), NQ);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 1);
    cr_assert_eq(v.stats.status_writes, status_writes + 1);

    /* The device can be initialized again. */
    cr_assert_eq(negotiate(&v, &f).kind, VPCI_EV_FEATURES_OK);
}

/* General Initialization And Device Operation / Device Initialization: "Set the
 * DRIVER_OK status bit. At this point the device is live." */
Test(virtio_pci, driver_ok_event_once)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    vs_features f = v1_only();
    negotiate(&v, &f);
    const uint8_t live = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                         VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK;
    struct vpci_event e = wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, live);
    cr_assert_eq(e.kind, VPCI_EV_DRIVER_OK);
    cr_assert_not(e.features_ok, "features were final before this write");
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1), live);
    /* Writing the same value again is not a new DRIVER_OK. */
    cr_assert_eq(wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, live).kind, VPCI_EV_NONE);
    cr_assert_eq(v.stats.driver_ok_without_features, 0);
}

/* General Initialization And Device Operation / Device Initialization: a driver
 * that sets FEATURES_OK and DRIVER_OK in one write skips the re-read step; the
 * device still checks the features and reports both outcomes. */
Test(virtio_pci, features_ok_and_driver_ok_in_one_write)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    vs_features f = v1_only();
    write_driver_features(&v, &f);
    struct vpci_event e = wr(&v, VIRTIO_PCI_COMMON_STATUS, 1,
                             VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                                 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    cr_assert_eq(e.kind, VPCI_EV_DRIVER_OK);
    cr_assert(e.features_ok);
    cr_assert(vpci_negotiated(&v, VIRTIO_F_VERSION_1_BIT));

    /* Refused features with DRIVER_OK: DRIVER_OK is recorded and counted. */
    vpci_init(&v, &p);
    e = wr(&v, VIRTIO_PCI_COMMON_STATUS, 1,
           VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
               VIRTIO_STATUS_DRIVER_OK);
    cr_assert_eq(e.kind, VPCI_EV_DRIVER_OK);
    cr_assert_not(e.features_ok);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1),
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
    cr_assert_eq(v.stats.features_rejected, 1);
    cr_assert_eq(v.stats.driver_ok_without_features, 1);
}

/* Basic Facilities of a Virtio Device / Device Status Field: "The driver MUST NOT
 * clear a device status bit" -- the device keeps its view and counts it. */
Test(virtio_pci, status_bits_are_never_cleared_by_a_nonzero_write)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    vs_features f = v1_only();
    negotiate(&v, &f);
    const uint8_t set = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
    struct vpci_event e = wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    cr_assert_eq(e.kind, VPCI_EV_NONE);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1), set);
    cr_assert_eq(v.stats.status_clears_ignored, 1);
    cr_assert(vpci_negotiated(&v, VIRTIO_F_VERSION_1_BIT));
}

/* Basic Facilities of a Virtio Device / Device Status Field: FAILED "Indicates that
 * something went wrong in the guest" -- the driver may set it at any step. */
Test(virtio_pci, failed_can_be_set_at_any_time)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    struct vpci_event e = wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_FAILED);
    cr_assert_eq(e.kind, VPCI_EV_NONE);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1), VIRTIO_STATUS_FAILED);

    vpci_init(&v, &p);
    vs_features f = v1_only();
    negotiate(&v, &f);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1,
       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
           VIRTIO_STATUS_FAILED);
    cr_assert(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FAILED);
    cr_assert_eq(v.stats.status_clears_ignored, 0);
}

/* Basic Facilities of a Virtio Device / Device Status Field: DEVICE_NEEDS_RESET
 * "Indicates that the device has experienced an error from which it can't
 * recover" -- set by the device; a driver write neither clears nor sets it; only a
 * reset clears it. SUSPEND (16) needs VIRTIO_F_SUSPEND, never offered here. */
Test(virtio_pci, needs_reset_is_the_devices_bit)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_ACKNOWLEDGE);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1), VIRTIO_STATUS_ACKNOWLEDGE,
                 "the driver cannot set DEVICE_NEEDS_RESET");
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | 0x10 | 0x20);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1), VIRTIO_STATUS_ACKNOWLEDGE);
    cr_assert_eq(v.stats.status_bits_ignored, 2);

    vpci_set_needs_reset(&v);
    cr_assert(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1),
                 VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_STATUS, 1), 0);
}

/* ---- queues --------------------------------------------------------------------- */

/* Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout:
 * "The device MUST present a 0 in queue_size if the virtqueue corresponding to the
 * current queue_select is unavailable." */
Test(virtio_pci, queue_select_out_of_range)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    const uint16_t bad[] = {NQ, VPCI_QUEUES_MAX, 0xffff};
    for (unsigned i = 0; i < 3; i++) {
        select_queue(&v, bad[i]);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SELECT, 2), bad[i]);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_NDATA, 2), 0);

        wr(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 8);
        wr(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
        wr(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000);
        wr(&v, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0x1);
        wr(&v, VIRTIO_PCI_COMMON_Q_USEDLO, 4, 0x3000);
        cr_assert_eq(wr(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1).kind, VPCI_EV_NONE);
        cr_assert_eq(wr(&v, VIRTIO_PCI_COMMON_Q_RESET, 2, 1).kind, VPCI_EV_NONE);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    }
    cr_assert_eq(v.stats.queue_writes_ignored, 3 * 7);
    /* No existing queue was touched. */
    for (uint16_t q = 0; q < NQ; q++) {
        cr_assert_eq(v.q[q].size, QMAX);
        cr_assert_eq(v.q[q].desc, 0);
        cr_assert_eq(v.q[q].enable, 0);
    }
}

/* Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout:
 * queue_size "can be modified by the driver to reduce memory requirements"; and
 * "The driver MUST configure the other virtqueue fields before enabling the
 * virtqueue" -- once enabled, size and addresses are frozen. */
Test(virtio_pci, queue_fields_frozen_while_enabled)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    select_queue(&v, 1);
    wr(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 100); /* not a power of 2: fine for packed rings */
    wr(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x10000);
    wr(&v, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, 0x20000);
    wr(&v, VIRTIO_PCI_COMMON_Q_USEDLO, 4, 0x30000);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2), 100);

    struct vpci_event e = wr(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    cr_assert_eq(e.kind, VPCI_EV_QUEUE_ENABLE);
    cr_assert_eq(e.queue, 1);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);

    wr(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 16);
    wr(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0xdead0000u);
    wr(&v, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0xbeef);
    wr(&v, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, 0xdead0000u);
    wr(&v, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0xbeef);
    wr(&v, VIRTIO_PCI_COMMON_Q_USEDLO, 4, 0xdead0000u);
    wr(&v, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0xbeef);
    cr_assert_eq(v.stats.queue_writes_ignored, 7);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2), 100);
    cr_assert_eq(v.q[1].desc, 0x10000);
    cr_assert_eq(v.q[1].driver, 0x20000);
    cr_assert_eq(v.q[1].device, 0x30000);

    /* The vector may still be remapped. */
    wr(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2, 3);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2), 3);
    /* Other queues are unaffected. */
    select_queue(&v, 0);
    wr(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 32);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2), 32);
}

/* Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout:
 * "The driver MUST NOT write a 0 to queue_enable." */
Test(virtio_pci, queue_enable_0_is_ignored)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    select_queue(&v, 2);
    cr_assert_eq(wr(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1).kind, VPCI_EV_QUEUE_ENABLE);
    cr_assert_eq(wr(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 0).kind, VPCI_EV_NONE);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
    cr_assert_eq(v.stats.queue_disables_ignored, 1);
    /* Enabling twice does not re-initialize the queue; other values mean nothing. */
    cr_assert_eq(wr(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1).kind, VPCI_EV_NONE);
    select_queue(&v, 0);
    cr_assert_eq(wr(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 2).kind, VPCI_EV_NONE);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
}

/* Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout:
 * "The driver MUST NOT write to device_feature, num_queues, config_generation,
 * queue_notify_off or queue_notif_config_data"; admin_queue_index and
 * admin_queue_num are "read-only for driver". */
Test(virtio_pci, read_only_fields_ignore_writes)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    select_queue(&v, 1);
    struct { uint32_t off; unsigned size; uint32_t expect; } ro[] = {
        {VIRTIO_PCI_COMMON_DF, 4, p.device_features.w[0]},
        {VIRTIO_PCI_COMMON_NUMQ, 2, NQ},
        {VIRTIO_PCI_COMMON_CFGGENERATION, 1, 0},
        {VIRTIO_PCI_COMMON_Q_NOFF, 2, 1},
        {VIRTIO_PCI_COMMON_Q_NDATA, 2, 1},
        {VIRTIO_PCI_COMMON_ADM_Q_IDX, 2, 0},
        {VIRTIO_PCI_COMMON_ADM_Q_NUM, 2, 0},
    };
    for (unsigned i = 0; i < sizeof ro / sizeof ro[0]; i++) {
        cr_assert_eq(wr(&v, ro[i].off, ro[i].size, 0x5a5a5a5au).kind, VPCI_EV_NONE);
        cr_assert_eq(rd(&v, ro[i].off, ro[i].size), ro[i].expect, "offset 0x%x", ro[i].off);
    }
    cr_assert_eq(v.stats.ro_writes_ignored, sizeof ro / sizeof ro[0]);
    cr_assert_eq(memcmp(&v.p.device_features, &p.device_features, sizeof p.device_features), 0);
}

/* Virtio Over PCI Bus / PCI Device Layout: "64-bit fields are to be treated as two
 * 32-bit fields, with low 32 bit part followed by the high 32 bit part"; device
 * requirement: "the device MUST allow driver independent access to high and low
 * 32-bit parts of the field". */
Test(virtio_pci, queue_addresses_as_independent_halves)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    select_queue(&v, 0);
    wr(&v, VIRTIO_PCI_COMMON_Q_DESCHI, 4, 0x12345678u);
    wr(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x9abcdef0u);
    wr(&v, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, 0x11110000u);
    wr(&v, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 0x2222u);
    wr(&v, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0xffffffffu);
    cr_assert_eq(v.q[0].desc, 0x123456789abcdef0ull);
    cr_assert_eq(v.q[0].driver, 0x0000222211110000ull);
    cr_assert_eq(v.q[0].device, 0xffffffff00000000ull);
    /* Rewriting one half keeps the other. */
    wr(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x40u);
    cr_assert_eq(v.q[0].desc, 0x1234567800000040ull);
    wr(&v, VIRTIO_PCI_COMMON_Q_USEDLO, 4, 0x80u);
    wr(&v, VIRTIO_PCI_COMMON_Q_USEDHI, 4, 0);
    cr_assert_eq(v.q[0].device, 0x80ull);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0x40u);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_DESCHI, 4), 0x12345678u);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_AVAILLO, 4), 0x11110000u);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_AVAILHI, 4), 0x2222u);
    /* Halves are 32-bit fields: no 8-byte or 16-bit access. */
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 8), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 2), 0);
    wr(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 2, 0xffff);
    cr_assert_eq(v.q[0].desc, 0x1234567800000040ull);
}

/* Basic Facilities of a Virtio Device / Virtqueues / Virtqueue Reset and Virtio Over
 * PCI Bus / PCI Device Layout / Common configuration structure layout: "The device
 * MUST reset the queue when 1 is written to queue_reset ... MUST present 0 in both
 * queue_reset and queue_enable when queue reset has completed"; queue_reset "exists
 * only if VIRTIO_F_RING_RESET has been negotiated". Our reset completes within the
 * write, so queue_reset never reads 1. */
Test(virtio_pci, queue_reset)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    /* Not negotiated: ignored. */
    vs_features f = v1_only();
    negotiate(&v, &f);
    select_queue(&v, 1);
    wr(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 64);
    wr(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    cr_assert_eq(wr(&v, VIRTIO_PCI_COMMON_Q_RESET, 2, 1).kind, VPCI_EV_NONE);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
    cr_assert_eq(v.stats.queue_resets_ignored, 1);

    /* Negotiated. */
    wr(&v, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    const unsigned bits[] = {VIRTIO_F_VERSION_1_BIT, VIRTIO_F_RING_RESET_BIT};
    f = features_of(2, bits);
    negotiate(&v, &f);
    for (uint16_t q = 0; q < NQ; q++) {
        select_queue(&v, q);
        wr(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 64);
        wr(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
        wr(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x1000u * (q + 1));
        wr(&v, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, 7);
        wr(&v, VIRTIO_PCI_COMMON_Q_USEDLO, 4, 0x3000);
        wr(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    }
    select_queue(&v, 1);
    cr_assert_eq(wr(&v, VIRTIO_PCI_COMMON_Q_RESET, 2, 0).kind, VPCI_EV_NONE, "0 does nothing");
    struct vpci_event e = wr(&v, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
    cr_assert_eq(e.kind, VPCI_EV_QUEUE_RESET);
    cr_assert_eq(e.queue, 1);
    cr_assert_eq(v.stats.queue_resets, 1);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_RESET, 2), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2), QMAX);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_NOFF, 2), 1);
    cr_assert_eq(v.q[1].desc, 0);
    cr_assert_eq(v.q[1].driver, 0);
    cr_assert_eq(v.q[1].device, 0);
    /* Other queues keep their configuration. */
    cr_assert_eq(v.q[0].enable, 1);
    cr_assert_eq(v.q[2].desc, 0x3000);
    cr_assert_eq(v.q[2].size, 64);

    /* Virtqueue Re-enable: configure again, possibly differently, and enable. */
    wr(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2, 32);
    wr(&v, VIRTIO_PCI_COMMON_Q_DESCLO, 4, 0x8000);
    e = wr(&v, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    cr_assert_eq(e.kind, VPCI_EV_QUEUE_ENABLE);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_RESET, 2), 0, "0 after the queue is enabled");
    cr_assert_eq(v.q[1].size, 32);
}

/* PCI-specific Initialization And Device Operation / Device Initialization / MSI-X
 * Vector Configuration: "Devices MUST report mapping failures by returning the
 * NO_VECTOR value when the relevant config_msix_vector/queue_msix_vector field is
 * read"; valid table entries are 0 to 0x7FF; NO_VECTOR unmaps. */
Test(virtio_pci, msix_vector_beyond_table_reads_no_vector)
{
    struct vpci v;
    struct vpci_params p = base_params(); /* 4 vectors */
    vpci_init(&v, &p);

    wr(&v, VIRTIO_PCI_COMMON_MSIX, 2, 3);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_MSIX, 2), 3);
    wr(&v, VIRTIO_PCI_COMMON_MSIX, 2, 4);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    wr(&v, VIRTIO_PCI_COMMON_MSIX, 2, 0);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_MSIX, 2), 0);
    wr(&v, VIRTIO_PCI_COMMON_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);

    select_queue(&v, 2);
    wr(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2), 1);
    wr(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2, 0xfffe);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    cr_assert_eq(v.stats.msix_vectors_refused, 2);

    /* Without a table size, only the spec's range 0..0x7ff is checked. */
    p.msix_vectors = 0;
    vpci_init(&v, &p);
    wr(&v, VIRTIO_PCI_COMMON_MSIX, 2, 0x7ff);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_MSIX, 2), 0x7ff);
    wr(&v, VIRTIO_PCI_COMMON_MSIX, 2, 0x800);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
}

/* MSI-X Vector Configuration, with no MSI-X capability (the legacy INTx device): no
 * mapping can be satisfied, so every vector write but NO_VECTOR is a mapping failure
 * and the field reads NO_VECTOR ("Devices MUST report mapping failures by returning
 * the NO_VECTOR value"), for configuration changes and every queue alike, and the
 * reset values stay NO_VECTOR ("all queue and configuration change events are
 * unmapped upon reset"). */
Test(virtio_pci, no_msix_every_vector_reads_no_vector)
{
    struct vpci v;
    struct vpci_params p = base_params();
    p.no_msix = true;
    vpci_init(&v, &p);

    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    static const uint32_t tries[] = {0, 1, 3, 0x7ff, 0x800, 0xfffe};
    for (unsigned i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        wr(&v, VIRTIO_PCI_COMMON_MSIX, 2, tries[i]);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR, "vector %#x", tries[i]);
    }
    for (uint16_t q = 0; q < NQ; q++) {
        select_queue(&v, q);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
        wr(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2, 0);
        cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    }
    cr_assert_eq(v.stats.msix_vectors_refused, 6 + NQ);
    /* Unmapping is always possible and is no failure. */
    wr(&v, VIRTIO_PCI_COMMON_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
    cr_assert_eq(v.stats.msix_vectors_refused, 6 + NQ);
}

/* Virtio Over PCI Bus / PCI Device Layout / PCI Device Layout (driver requirement):
 * "8-bit wide accesses for 8-bit wide fields, 16-bit wide and aligned accesses for
 * 16-bit wide fields and 32-bit wide and aligned accesses for 32-bit and 64-bit
 * wide fields" -- anything else reads 0 and writes nothing. */
Test(virtio_pci, misaligned_and_wrong_size_accesses)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    wr(&v, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
    struct { uint32_t off; unsigned size; } bad[] = {
        {VIRTIO_PCI_COMMON_DF, 2},          /* half of a 32-bit field */
        {VIRTIO_PCI_COMMON_DF + 2, 2},
        {VIRTIO_PCI_COMMON_DF + 1, 4},      /* misaligned */
        {VIRTIO_PCI_COMMON_DF, 1},
        {VIRTIO_PCI_COMMON_NUMQ, 4},        /* wider than the field */
        {VIRTIO_PCI_COMMON_NUMQ + 1, 1},
        {VIRTIO_PCI_COMMON_STATUS, 2},      /* status + generation */
        {VIRTIO_PCI_COMMON_MSIX, 4},
        {VIRTIO_PCI_COMMON_Q_SIZE + 1, 2},
        {VIRTIO_PCI_COMMON_DF, 3},
        {VIRTIO_PCI_COMMON_DF, 0},
        {VIRTIO_PCI_COMMON_DF, 8},
        {VIRTIO_PCI_COMMON_CFG_LEN, 4},     /* past the structure */
        {VIRTIO_PCI_COMMON_CFG_LEN - 2, 4},
        {0xfffffffcu, 4},
    };
    const unsigned n = sizeof bad / sizeof bad[0];
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(rd(&v, bad[i].off, bad[i].size), 0, "read 0x%x/%u", bad[i].off, bad[i].size);
    cr_assert_eq(v.stats.bad_accesses, n);

    struct vpci before;
    memcpy(&before, &v, sizeof v);
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(wr(&v, bad[i].off, bad[i].size, 0).kind, VPCI_EV_NONE);
    /* 16-bit write over status: no reset; 16-bit write of queue_size halves: nothing. */
    cr_assert_eq(wr(&v, VIRTIO_PCI_COMMON_Q_SELECT + 1, 1, 5).kind, VPCI_EV_NONE);
    cr_assert_eq(v.stats.bad_accesses, 2 * n + 1);
    v.stats = before.stats;
    cr_assert_eq(memcmp(&v, &before, sizeof v), 0, "no register changed");
}

/* Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout:
 * config_generation "changes every time the configuration noticeably changes"; it
 * is an 8-bit value. */
Test(virtio_pci, config_generation_counts_changes)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    vpci_config_changed(&v);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 1);
    for (unsigned i = 0; i < 255; i++)
        vpci_config_changed(&v);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_CFGGENERATION, 1), 0, "8-bit wrap");
}

/* ---- notifications ----------------------------------------------------------------- */

/* Virtio Over PCI Bus / PCI Device Layout / Notification capability: "cap.length >=
 * queue_notify_off * notify_off_multiplier + 2" (without NOTIFICATION_DATA), "+ 4"
 * with it, and at least 2 / 4. */
Test(virtio_pci, notify_length_covers_every_queue)
{
    struct vpci_params p = base_params(); /* NOTIFICATION_DATA offered, 3 queues, x4 */
    cr_assert_eq(vpci_notify_length(&p), 2 * 4 + 4);
    p.notify_off_multiplier = 0;
    cr_assert_eq(vpci_notify_length(&p), 4);
    p.notify_off_multiplier = 4096;
    cr_assert_eq(vpci_notify_length(&p), 2 * 4096 + 4);

    vs_feature_clear(&p.device_features, VIRTIO_F_NOTIFICATION_DATA_BIT);
    cr_assert_eq(vpci_notify_length(&p), 2 * 4096 + 2);
    p.notify_off_multiplier = 0;
    cr_assert_eq(vpci_notify_length(&p), 2);
    p.notify_off_multiplier = 4;
    p.num_queues = 1;
    cr_assert_eq(vpci_notify_length(&p), 2);

    /* Every queue's notify address plus its width fits. */
    p = base_params();
    for (uint32_t mult = 0; mult <= 8192; mult = mult ? mult * 2 : 4) {
        p.notify_off_multiplier = mult;
        for (uint32_t q = 0; q < NQ; q++)
            cr_assert_geq(vpci_notify_length(&p), q * mult + 4);
    }
    /* Hostile params do not overflow. */
    p.num_queues = 0xffff;
    p.notify_off_multiplier = 0x80000000u;
    cr_assert_eq(vpci_notify_length(&p), UINT32_MAX);
}

/* Virtio Over PCI Bus / PCI-specific Initialization And Device Operation / Available
 * Buffer Notifications: without NOTIFICATION_DATA the driver writes "only the 16-bit
 * notification value to the Queue Notify address" at "cap.offset + queue_notify_off
 * * notify_off_multiplier" (Notification capability). */
Test(virtio_pci, notify_without_notification_data)
{
    const uint32_t mults[] = {4, 4096};
    for (unsigned m = 0; m < 2; m++) {
        struct vpci v;
        struct vpci_params p = base_params();
        p.notify_off_multiplier = mults[m];
        vpci_init(&v, &p);
        vs_features f = v1_only();
        negotiate(&v, &f);

        for (uint16_t q = 0; q < NQ; q++) {
            struct vpci_event e = vpci_notify_write(&v, q * mults[m], 2, q);
            cr_assert_eq(e.kind, VPCI_EV_NOTIFY, "mult %u queue %u", mults[m], q);
            cr_assert_eq(e.queue, q);
            cr_assert_not(e.has_data);
        }
        cr_assert_eq(v.stats.notifications, NQ);
        /* 32-bit writes are not notifications without NOTIFICATION_DATA. */
        cr_assert_eq(vpci_notify_write(&v, mults[m], 4, 1).kind, VPCI_EV_NONE);
        /* Between two queues' addresses: reaches no queue. */
        cr_assert_eq(vpci_notify_write(&v, 2, 2, 0).kind, VPCI_EV_NONE);
        cr_assert_eq(v.stats.notify_bad_access, 2);
        /* The address names the queue; a wrong value is counted, not obeyed. */
        struct vpci_event e = vpci_notify_write(&v, 2 * mults[m], 2, 0);
        cr_assert_eq(e.kind, VPCI_EV_NOTIFY);
        cr_assert_eq(e.queue, 2);
        cr_assert_eq(v.stats.notify_value_mismatch, 1);
    }
}

/* Virtio Over PCI Bus / PCI Device Layout / Notification capability: "if
 * notify_off_multiplier is 0, the device uses the same Queue Notify address for all
 * queues" -- the value written names the queue. */
Test(virtio_pci, notify_with_shared_address)
{
    struct vpci v;
    struct vpci_params p = base_params();
    p.notify_off_multiplier = 0;
    vpci_init(&v, &p);

    for (uint16_t q = 0; q < NQ; q++) {
        struct vpci_event e = vpci_notify_write(&v, 0, 2, q);
        cr_assert_eq(e.kind, VPCI_EV_NOTIFY);
        cr_assert_eq(e.queue, q);
    }
    cr_assert_eq(vpci_notify_write(&v, 2, 2, 0).kind, VPCI_EV_NONE, "not the shared address");
    cr_assert_eq(v.stats.notifications, NQ);
}

/* Basic Facilities of a Virtio Device / Driver notifications and Virtio Over PCI Bus
 * / PCI-specific Initialization And Device Operation / Available Buffer
 * Notifications: with NOTIFICATION_DATA the driver writes 32 bits -- vq index,
 * next_off (15 bits), next_wrap (1 bit). */
Test(virtio_pci, notify_with_notification_data_packed)
{
    const uint32_t mults[] = {0, 4, 4096};
    for (unsigned m = 0; m < 3; m++) {
        struct vpci v;
        struct vpci_params p = base_params();
        p.notify_off_multiplier = mults[m];
        vpci_init(&v, &p);
        const unsigned bits[] = {VIRTIO_F_VERSION_1_BIT, VIRTIO_F_RING_PACKED_BIT,
                                 VIRTIO_F_NOTIFICATION_DATA_BIT};
        vs_features f = features_of(3, bits);
        cr_assert_eq(negotiate(&v, &f).kind, VPCI_EV_FEATURES_OK);

        /* Largest offset with the wrap counter set. */
        struct vpci_event e = vpci_notify_write(&v, 1 * mults[m], 4, 0xffff0001u);
        cr_assert_eq(e.kind, VPCI_EV_NOTIFY);
        cr_assert_eq(e.queue, 1);
        cr_assert(e.has_data);
        cr_assert_eq(e.next_off, 0x7fff);
        cr_assert(e.next_wrap);

        /* Largest offset, wrap clear. */
        e = vpci_notify_write(&v, 2 * mults[m], 4, 0x7fff0002u);
        cr_assert_eq(e.queue, 2);
        cr_assert_eq(e.next_off, 0x7fff);
        cr_assert_not(e.next_wrap);

        /* Offset 0, wrap set: the bits do not bleed into each other. */
        e = vpci_notify_write(&v, 0, 4, 0x80000000u);
        cr_assert_eq(e.queue, 0);
        cr_assert_eq(e.next_off, 0);
        cr_assert(e.next_wrap);

        e = vpci_notify_write(&v, 0, 4, (0x1234u << 16) | 0);
        cr_assert_eq(e.next_off, 0x1234);
        cr_assert_not(e.next_wrap);

        /* NOTIFICATION_DATA negotiated: 16-bit writes are not notifications. */
        cr_assert_eq(vpci_notify_write(&v, 0, 2, 0).kind, VPCI_EV_NONE);
        cr_assert_eq(v.stats.notifications, 4);
    }
}

/* Basic Facilities of a Virtio Device / Driver notifications: without
 * VIRTIO_F_RING_PACKED next_off is "the 15 least significant bits of the available
 * index" and next_wrap "the most significant bit (bit 15) of the available index"
 * -- the same layout, so the split ring's index is next_off | next_wrap << 15. */
Test(virtio_pci, notify_with_notification_data_split)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);
    const unsigned bits[] = {VIRTIO_F_VERSION_1_BIT, VIRTIO_F_NOTIFICATION_DATA_BIT};
    vs_features f = features_of(2, bits);
    negotiate(&v, &f);

    const uint16_t idx[] = {0, 1, 0x7fff, 0x8000, 0xabcd, 0xffff};
    for (unsigned i = 0; i < sizeof idx / sizeof idx[0]; i++) {
        struct vpci_event e = vpci_notify_write(&v, 4, 4, ((uint32_t)idx[i] << 16) | 1u);
        cr_assert_eq(e.kind, VPCI_EV_NOTIFY);
        cr_assert_eq(e.queue, 1);
        cr_assert(e.has_data);
        cr_assert_eq((uint16_t)(e.next_off | (e.next_wrap ? 0x8000u : 0)), idx[i], "idx 0x%x", idx[i]);
    }
}

/* Virtio Over PCI Bus / PCI-specific Initialization And Device Operation / Available
 * Buffer Notifications (the value is "the virtqueue index") and Basic Facilities of
 * a Virtio Device / Virtqueues: a notification for a queue the device does not have
 * is a device-fatal driver error. */
Test(virtio_pci, notify_to_a_missing_queue_is_an_error)
{
    struct vpci v;
    struct vpci_params p = base_params();
    p.notify_off_multiplier = 0;
    vpci_init(&v, &p);

    struct vpci_event e = vpci_notify_write(&v, 0, 2, NQ);
    cr_assert_eq(e.kind, VPCI_EV_ERROR);
    cr_assert_eq(e.reason, VS_REASON_NOTIFY_QUEUE_INVALID);
    cr_assert_eq(e.queue, NQ);
    e = vpci_notify_write(&v, 0, 2, 0xffff);
    cr_assert_eq(e.kind, VPCI_EV_ERROR);

    /* By address: a doorbell beyond the last queue. */
    p.notify_off_multiplier = 4;
    vpci_init(&v, &p);
    e = vpci_notify_write(&v, NQ * 4, 2, NQ);
    cr_assert_eq(e.kind, VPCI_EV_ERROR);
    cr_assert_eq(e.reason, VS_REASON_NOTIFY_QUEUE_INVALID);
    e = vpci_notify_write(&v, 0xfffffffcu, 2, 0);
    cr_assert_eq(e.kind, VPCI_EV_ERROR);
    cr_assert_eq(e.queue, 0xffff);
    cr_assert_eq(v.stats.notify_invalid_queue, 2);
    cr_assert_eq(v.stats.notifications, 0);

    /* With NOTIFICATION_DATA and a shared address. */
    p.notify_off_multiplier = 0;
    vpci_init(&v, &p);
    const unsigned bits[] = {VIRTIO_F_VERSION_1_BIT, VIRTIO_F_NOTIFICATION_DATA_BIT};
    vs_features f = features_of(2, bits);
    negotiate(&v, &f);
    e = vpci_notify_write(&v, 0, 4, 0x80000000u | 7u);
    cr_assert_eq(e.kind, VPCI_EV_ERROR);
    cr_assert_eq(e.queue, 7);
}

/* ---- ISR ------------------------------------------------------------------------- */

/* Virtio Over PCI Bus / PCI Device Layout / ISR status capability: "simply reading
 * this register resets it to 0"; "The device MUST reset ISR status to 0 on driver
 * read." */
Test(virtio_pci, isr_read_clears)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    vpci_isr_set(&v, VIRTIO_PCI_ISR_QUEUE_MASK);
    vpci_isr_set(&v, VIRTIO_PCI_ISR_CONFIG_MASK);
    vpci_isr_set(&v, VIRTIO_PCI_ISR_QUEUE_MASK);
    cr_assert_eq(vpci_isr_read(&v), VIRTIO_PCI_ISR_QUEUE_MASK | VIRTIO_PCI_ISR_CONFIG_MASK);
    cr_assert_eq(vpci_isr_read(&v), 0);
    vpci_isr_set(&v, VIRTIO_PCI_ISR_CONFIG_MASK);
    cr_assert_eq(vpci_isr_read(&v), VIRTIO_PCI_ISR_CONFIG_MASK);
    cr_assert_eq(v.stats.isr_reads, 3);
}

/* ---- hostile input ----------------------------------------------------------------- */

/* Virtio Over PCI Bus / PCI Device Layout / Common configuration structure layout:
 * num_queues is at most what the model holds, whatever the configuration asks. */
Test(virtio_pci, num_queues_is_clamped)
{
    struct vpci v;
    struct vpci_params p = base_params();
    p.num_queues = 1000;
    vpci_init(&v, &p);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_NUMQ, 2), VPCI_QUEUES_MAX);
    select_queue(&v, VPCI_QUEUES_MAX - 1);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2), QMAX);
    select_queue(&v, VPCI_QUEUES_MAX);
    cr_assert_eq(rd(&v, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
    cr_assert_eq(vpci_notify_write(&v, VPCI_QUEUES_MAX * 4, 2, 0).kind, VPCI_EV_ERROR);
}

/* Virtio Over PCI Bus / PCI Device Layout (every access the driver can make):
 * random accesses of any offset, size and value never crash, never leave the
 * register file and never put it in a state the spec forbids. */
Test(virtio_pci, random_accesses_are_survived)
{
    struct vpci v;
    struct vpci_params p = base_params();
    vpci_init(&v, &p);

    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (unsigned i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t off = (uint32_t)(x & 0x4f);
        unsigned size = (unsigned)((x >> 8) % 9);
        uint32_t value = (uint32_t)(x >> 32);
        if ((x >> 16) % 8 == 0)
            value &= 0xff; /* small values reach selects and status bits more often */
        switch ((x >> 20) % 4) {
        case 0: rd(&v, off, size); break;
        case 1: wr(&v, off, size, value); break;
        case 2: vpci_notify_write(&v, off, size, value); break;
        default: vpci_isr_read(&v); break;
        }
        cr_assert_not(v.status & 0x30);
        cr_assert_leq(v.p.num_queues, VPCI_QUEUES_MAX);
        if (!(v.status & VIRTIO_STATUS_FEATURES_OK))
            continue;
        for (unsigned w = 0; w < VS_FEATURE_WORDS; w++)
            cr_assert_eq(v.driver_features.w[w] & ~p.device_features.w[w], 0);
    }
}
