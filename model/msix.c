/* msix.c -- MSI-X table, pending bit array and masking (PCI Local Bus 3.0 §6.8.2).
 *
 * The table is nvec entries of four dwords; the PBA is one bit per vector packed in
 * qwords. Software reaches both only with aligned full-dword or full-qword accesses
 * (§6.8.2); anything else is ignored here.
 */
#include "msix.h"

#include <string.h>

#include "virtio_wire.h"

#define MSIX_DWORDS_PER_ENTRY   (MSIX_ENTRY_SIZE / 4u)
#define MSIX_CTRL_DWORD         (MSIX_ENTRY_CTRL / 4u)
#define MSIX_ADDR_LO_DWORD      (MSIX_ENTRY_ADDR_LO / 4u)
/* Message Address bits 1:0 keep the message dword aligned; the spec lets a function
 * hardwire them to 0 (§6.8.2.6 Message Address), which this model does. */
#define MSIX_ADDR_LO_WRITABLE   0xfffffffcu

static bool access_ok(uint32_t off, unsigned size, uint32_t region_bytes)
{
    if (size != 4 && size != 8)
        return false;
    if (off % size != 0)
        return false;
    return off < region_bytes && size <= region_bytes - off;
}

static bool vector_masked(const struct msix *m, uint16_t vector)
{
    return m->function_masked || (m->table[vector][MSIX_CTRL_DWORD] & MSIX_CTRL_MASKBIT_MASK);
}

static bool pending(const struct msix *m, uint16_t vector)
{
    return (m->pba[vector / 64u] >> (vector % 64u)) & 1u;
}

static void set_pending(struct msix *m, uint16_t vector)
{
    m->pba[vector / 64u] |= 1ull << (vector % 64u);
}

static void clear_pending(struct msix *m, uint16_t vector)
{
    m->pba[vector / 64u] &= ~(1ull << (vector % 64u));
}

static void fill_message(const struct msix *m, uint16_t vector, struct msix_message *msg)
{
    if (msg == NULL)
        return;
    msg->addr = (uint64_t)m->table[vector][MSIX_ENTRY_ADDR_HI / 4u] << 32 |
                m->table[vector][MSIX_ENTRY_ADDR_LO / 4u];
    msg->data = m->table[vector][MSIX_ENTRY_DATA / 4u];
    msg->vector = vector;
}

void msix_init(struct msix *m, uint16_t nvec)
{
    memset(m, 0, sizeof(*m));
    if (nvec < 1)
        nvec = 1;
    if (nvec > MSIX_VECTORS_MAX)
        nvec = MSIX_VECTORS_MAX;
    m->nvec = nvec;
    /* §6.8.2.9: each vector's Mask bit is set after reset. */
    for (uint16_t v = 0; v < nvec; v++)
        m->table[v][MSIX_CTRL_DWORD] = MSIX_CTRL_MASKBIT_MASK;
}

uint32_t msix_table_bytes(const struct msix *m)
{
    return (uint32_t)m->nvec * MSIX_ENTRY_SIZE;
}

uint32_t msix_pba_bytes(const struct msix *m)
{
    /* §6.8.2.10: the PBA is whole qwords, one bit per vector. */
    return ((uint32_t)m->nvec + 63u) / 64u * 8u;
}

static uint32_t table_dword(const struct msix *m, uint32_t dw)
{
    return m->table[dw / MSIX_DWORDS_PER_ENTRY][dw % MSIX_DWORDS_PER_ENTRY];
}

uint64_t msix_table_read(const struct msix *m, uint32_t off, unsigned size)
{
    uint32_t dw = off / 4u;
    uint64_t v;

    if (!access_ok(off, size, msix_table_bytes(m)))
        return 0;
    v = table_dword(m, dw);
    if (size == 8)
        v |= (uint64_t)table_dword(m, dw + 1u) << 32;
    return v;
}

/* Store one dword of the table; dw is in range. */
static enum vs_reason write_dword(struct msix *m, uint32_t dw, uint32_t value)
{
    uint32_t entry = dw / MSIX_DWORDS_PER_ENTRY;
    uint32_t field = dw % MSIX_DWORDS_PER_ENTRY;

    if (field == MSIX_CTRL_DWORD) {
        /* Vector Control bits 31:1 are reserved (§6.8.2.9): software must not set
         * them. Refuse the dword rather than store a value the device cannot hold. */
        if (value & ~MSIX_CTRL_MASKBIT_MASK)
            return VS_REASON_MSIX_RESERVED_BITS;
    } else if (field == MSIX_ADDR_LO_DWORD) {
        value &= MSIX_ADDR_LO_WRITABLE;
    }
    m->table[entry][field] = value;
    return VS_REASON_NONE;
}

enum vs_reason msix_table_write(struct msix *m, uint32_t off, unsigned size, uint64_t value)
{
    uint32_t dw = off / 4u;
    enum vs_reason r;

    if (!access_ok(off, size, msix_table_bytes(m)))
        return VS_REASON_NONE;
    r = write_dword(m, dw, (uint32_t)value);
    if (size == 8) {
        /* The other dword of a qword write is independent: store it anyway. */
        enum vs_reason r_hi = write_dword(m, dw + 1u, (uint32_t)(value >> 32));
        if (r == VS_REASON_NONE)
            r = r_hi;
    }
    return r;
}

uint64_t msix_pba_read(const struct msix *m, uint32_t off, unsigned size)
{
    uint64_t q;

    if (!access_ok(off, size, msix_pba_bytes(m)))
        return 0;
    q = m->pba[off / 8u];
    if (size == 8)
        return q;
    return (uint32_t)(q >> (8u * (off % 8u)));
}

void msix_set_control(struct msix *m, bool enabled, bool function_masked)
{
    m->enabled = enabled;
    m->function_masked = function_masked;
}

/* Counting: every call is either dropped or raised; a raised message is either sent
 * now or pended. A pending message is counted as sent when it is taken. */
bool msix_raise(struct msix *m, uint16_t vector, struct msix_message *msg)
{
    if (!m->enabled || vector == VIRTIO_MSI_NO_VECTOR || vector >= m->nvec) {
        m->stats.dropped++;
        return false;
    }
    m->stats.raised++;
    if (vector_masked(m, vector)) {
        /* §6.8.3.4 Per-vector Masking and Function Masking: a masked vector's
         * message is not sent; the function sets its Pending bit instead. */
        set_pending(m, vector);
        m->stats.pended++;
        return false;
    }
    fill_message(m, vector, msg);
    m->stats.sent++;
    return true;
}

bool msix_take_pending(struct msix *m, struct msix_message *msg)
{
    if (!m->enabled || m->function_masked)
        return false;
    /* §6.8.3.4: once neither mask applies, a pending message is sent and its
     * Pending bit cleared. Lowest vector first, so delivery order is deterministic. */
    for (uint16_t v = 0; v < m->nvec; v++) {
        if (!pending(m, v) || vector_masked(m, v))
            continue;
        clear_pending(m, v);
        fill_message(m, v, msg);
        m->stats.sent++;
        return true;
    }
    return false;
}
