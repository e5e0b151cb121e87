/* fuzz_rss.c -- the receive-side scaling kernel (model/rss.h): VIRTIO_NET_CTRL_MQ_RSS_CONFIG
 * command data and received frames, as a hostile driver and a hostile network send them.
 *
 * The kernel's promise: whatever the bytes, no crash and no read outside them (each
 * configuration and frame is copied to a heap block of exactly its length, so
 * AddressSanitizer traps an over-read); a refused configuration has a named error and
 * leaves the configuration in force exactly as it was; an accepted one names only
 * enabled queues, a table of a power-of-two length within the device's limit, a key
 * within rss_max_key_size and supported hash types; a steered frame goes to a queue of
 * the configuration in force (a table entry when it was hashed, unclassified_queue when
 * not) with a report type the configuration enabled.
 *
 * Input: a limits byte (bit 0: the device's table limit is 65535 instead of 128, bit 1:
 * key limit 255 instead of 40, bit 2: VIRTIO_NET_F_RSS not negotiated, bits 3..5: drop
 * one supported hash type), a queue-pairs byte (1 + byte % 16), then records until the
 * input ends (at most 64): a kind byte (odd: a frame; even with bit 1 clear: an
 * RSS_CONFIG's data; even with bit 1 set: a HASH_CONFIG's data, with HASH_REPORT
 * negotiated unless bit 2 is set), a u16 length, that many bytes (fewer if the input
 * ends). A frame is steered and, under the HASH_CONFIG in force, reported.
 */
#include "fuzz_common.h"
#include "rss.h"

#define RECORDS_MAX 64u

static void check_state(const struct rss_state *s, const struct rss_limits *lim, uint16_t pairs)
{
    if (!s->configured)
        return;
    FUZZ_CHECK(s->table_len >= 1 && s->table_len <= lim->max_table_len &&
              (s->table_len & (s->table_len - 1u)) == 0,
          "table length %u", s->table_len);
    FUZZ_CHECK(s->key_len <= lim->max_key_bytes, "key length %u", s->key_len);
    FUZZ_CHECK((s->hash_types & ~lim->supported_hash_types) == 0, "hash types 0x%x", s->hash_types);
    FUZZ_CHECK(s->unclassified_queue < pairs, "unclassified %u", s->unclassified_queue);
    FUZZ_CHECK(s->max_tx_vq >= 1 && s->max_tx_vq <= pairs, "max_tx_vq %u", s->max_tx_vq);
    for (uint32_t k = 0; k < s->table_len; k++)
        FUZZ_CHECK(s->table[k] < pairs, "entry %u names queue %u", k, s->table[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rss_state st, before;
    static struct rss_hash_config hc, hc_before;
    struct fuzz_in in = {data, size};
    const uint8_t lb = fuzz_u8(&in);
    struct rss_limits lim = rss_limits_default();
    if (lb & 1u)
        lim.max_table_len = 65535;
    if (lb & 2u)
        lim.max_key_bytes = 255;
    const bool negotiated = !(lb & 4u);
    const unsigned drop = (lb >> 3) & 7u;
    if (drop < 6)
        lim.supported_hash_types &= ~(1u << drop);
    FUZZ_CHECK(rss_limits_problem(&lim) == NULL, "limits");
    const uint16_t pairs = (uint16_t)(1u + fuzz_u8(&in) % 16u);
    rss_reset(&st);
    rss_hash_config_reset(&hc);

    for (unsigned r = 0; r < RECORDS_MAX && in.left > 0; r++) {
        const uint8_t kind = fuzz_u8(&in);
        size_t len = fuzz_u16(&in);
        if (len > in.left)
            len = in.left;
        uint8_t *copy = malloc(len ? len : 1);
        if (!copy)
            return 0;
        memcpy(copy, in.p, len);
        in.p += len;
        in.left -= len;

        if ((kind & 3u) == 2u) {
            const bool report = !(kind & 4u);
            memcpy(&hc_before, &hc, sizeof hc);
            struct rss_fault f;
            const enum rss_error e = rss_hash_config_set(&hc, &lim, report, copy, len, &f);
            FUZZ_CHECK((unsigned)e < RSS_ERR_COUNT && f.error == e, "error %d", (int)e);
            FUZZ_CHECK(rss_hash_config_check(&lim, report, copy, len, NULL) == e,
                       "hash config check and set disagree");
            if (e != RSS_ERR_OK)
                FUZZ_CHECK(memcmp(&hc_before, &hc, sizeof hc) == 0, "%s changed the hash config",
                           rss_error_name(e));
            else
                FUZZ_CHECK(report && (hc.hash_types & ~lim.supported_hash_types) == 0 &&
                               hc.key_len <= lim.max_key_bytes,
                           "accepted hash config out of limits");
        } else if ((kind & 1u) == 0) {
            memcpy(&before, &st, sizeof st);
            struct rss_fault f;
            const enum rss_error e = rss_config_set(&st, &lim, negotiated, pairs, copy, len, &f);
            FUZZ_CHECK((unsigned)e < RSS_ERR_COUNT && f.error == e, "error %d", (int)e);
            FUZZ_CHECK(rss_error_name(e)[0] != '\0', "unnamed error %d", (int)e);
            FUZZ_CHECK(rss_config_check(&lim, negotiated, pairs, copy, len, NULL) == e,
                  "check and set disagree");
            if (e != RSS_ERR_OK)
                FUZZ_CHECK(memcmp(&before, &st, sizeof st) == 0, "%s changed the state",
                      rss_error_name(e));
            else
                FUZZ_CHECK(negotiated && st.configured, "accepted without the feature");
            check_state(&st, &lim, pairs);
        } else {
            struct rss_steering s;
            rss_steer(&st, copy, len, &s);
            if (!st.configured) {
                FUZZ_CHECK(s.rx_queue == 0 && s.report == VIRTIO_NET_HASH_REPORT_NONE,
                      "unconfigured steering to %u", s.rx_queue);
            } else if (s.report == VIRTIO_NET_HASH_REPORT_NONE) {
                FUZZ_CHECK(s.rx_queue == st.unclassified_queue && s.hash == 0, "unhashed to %u",
                      s.rx_queue);
            } else {
                FUZZ_CHECK(s.report <= VIRTIO_NET_HASH_REPORT_UDPV6 &&
                          (st.hash_types & (1u << (s.report - 1u))),
                      "report %u not enabled (0x%x)", s.report, st.hash_types);
                FUZZ_CHECK(s.rx_queue == st.table[s.hash & (st.table_len - 1u)], "queue %u",
                      s.rx_queue);
            }
            uint32_t hash;
            const uint8_t rep = rss_hash_report(&hc, copy, len, &hash);
            FUZZ_CHECK(rep == VIRTIO_NET_HASH_REPORT_NONE
                           ? hash == 0
                           : rep <= VIRTIO_NET_HASH_REPORT_UDPV6 &&
                                 (hc.hash_types & (1u << (rep - 1u))),
                       "report %u not enabled (0x%x)", rep, hc.hash_types);
        }
        free(copy);
    }
    return 0;
}
