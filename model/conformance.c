/* conformance.c -- rule table lookups and the violation log. */
#include "conformance.h"

#include <string.h>

static const char *const rule_names[VS_RULE_COUNT] = {
#define VS_RULE_NAME(name, section, text) #name,
    VS_RULES(VS_RULE_NAME)
#undef VS_RULE_NAME
};
static const char *const rule_sections[VS_RULE_COUNT] = {
#define VS_RULE_SECTION(name, section, text) section,
    VS_RULES(VS_RULE_SECTION)
#undef VS_RULE_SECTION
};
static const char *const rule_texts[VS_RULE_COUNT] = {
#define VS_RULE_TEXT(name, section, text) text,
    VS_RULES(VS_RULE_TEXT)
#undef VS_RULE_TEXT
};

const char *vs_rule_name(enum vs_rule r)
{
    return (unsigned)r < VS_RULE_COUNT ? rule_names[r] : "?";
}

const char *vs_rule_section(enum vs_rule r)
{
    return (unsigned)r < VS_RULE_COUNT ? rule_sections[r] : "?";
}

const char *vs_rule_text(enum vs_rule r)
{
    return (unsigned)r < VS_RULE_COUNT ? rule_texts[r] : "?";
}

enum vs_obligation vs_rule_obligation(enum vs_rule r)
{
    (void)r;
    return VS_OBLIGATION_DRIVER;
}

void vs_conf_init(struct vs_conformance *c)
{
    memset(c, 0, sizeof *c);
}

static void record(struct vs_conformance *c, enum vs_rule rule, enum vs_reason reason,
                   uint16_t queue, uint64_t seen, uint64_t expected)
{
    if ((unsigned)rule >= VS_RULE_COUNT)
        return;
    c->total++;
    c->per_rule[rule]++;
    if (c->logged < VS_CONF_LOG)
        c->log[c->logged++] = (struct vs_violation){c->now, rule, reason, queue, seen, expected};
}

void vs_conf_report(struct vs_conformance *c, enum vs_rule rule, uint16_t queue, uint64_t seen,
                    uint64_t expected)
{
    record(c, rule, VS_REASON_NONE, queue, seen, expected);
}

/* Device reasons that only a driver breaking a rule can cause. DMA failures are left out:
 * an address outside memory or unmapped in the IOMMU is a driver bug too, but the device
 * cannot tell it from a platform fault, and bus mastering off is the driver's right. */
bool vs_reason_is_driver_violation(enum vs_reason reason)
{
    switch (reason) {
    case VS_REASON_DESC_ID_OUT_OF_RANGE:
    case VS_REASON_DESC_ID_IN_USE:
    case VS_REASON_CHAIN_TOO_LONG:
    case VS_REASON_DESC_ZERO_LENGTH:
    case VS_REASON_DESC_LENGTH_OVERFLOW:
    case VS_REASON_CHAIN_DESC_NOT_AVAIL:
    case VS_REASON_READ_AFTER_WRITE:
    case VS_REASON_INDIRECT_NOT_NEGOTIATED:
    case VS_REASON_INDIRECT_LEN_NOT_MULTIPLE:
    case VS_REASON_INDIRECT_WITH_NEXT:
    case VS_REASON_INDIRECT_NESTED:
    case VS_REASON_INDIRECT_WRITE_FLAG:
    case VS_REASON_RING_MISALIGNED:
    case VS_REASON_QUEUE_SIZE_INVALID:
    case VS_REASON_NOTIFY_QUEUE_INVALID:
    case VS_REASON_TX_FRAME_TOO_LONG:
    case VS_REASON_TX_FRAME_TOO_SHORT:
    case VS_REASON_TX_HAS_WRITABLE:
    case VS_REASON_RX_HAS_READABLE:
    case VS_REASON_RX_BUFFER_TOO_SMALL:
    case VS_REASON_MSIX_RESERVED_BITS:
    case VS_REASON_AVAIL_IDX_JUMP:
    case VS_REASON_NOTIFY_DATA_AHEAD:
    case VS_REASON_DESC_NEXT_OUT_OF_RANGE:
    case VS_REASON_CTRL_NO_ACK_BYTE:
    case VS_REASON_DEVMEM_EVENT_QUEUE_INVALID:
    case VS_REASON_DEVMEM_EVENT_ACCESS_INVALID:
        return true;
    default:
        return false;
    }
}

void vs_conf_report_reason(struct vs_conformance *c, enum vs_reason reason, uint16_t queue)
{
    if (vs_reason_is_driver_violation(reason))
        record(c, VS_RULE_RING_RULE, reason, queue, (uint64_t)reason, 0);
}
