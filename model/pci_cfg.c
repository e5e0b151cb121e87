/* pci_cfg.c -- type-0 configuration space of one PCI Express function.
 *
 * The whole 4 KiB space is a byte image plus two per-byte masks: wmask says which
 * bits a configuration write may change, w1cmask which bits a written 1 clears. Every
 * register's behaviour (read-only, read-write, write-1-to-clear, BAR sizing) follows
 * from those masks, so a write is one loop and there is no per-register handler.
 *
 * BAR sizing falls out of the masks too: the address bits below the BAR's size are
 * read-only zero, so after software writes all-ones it reads back ~(size - 1) with the
 * read-only type bits (PCI Local Bus 3.0 §6.2.5.1).
 */
#include "pci_cfg.h"

#include <string.h>

#include "virtio_wire.h"

/* Capabilities live in the PCI-compatible space above the header (PCI Local Bus 3.0
 * §6.7: "the Capabilities Pointer ... must be DWORD aligned ... above the 64 bytes
 * of the header"). */
#define PCI_CAP_AREA_START   0x40u
#define PCI_CAP_AREA_END     0x100u
#define PCI_CAP_NEXT_OFF     1u
#define PCI_CAP_PTR_MASK     0xfcu   /* bits 1:0 of a capability pointer are reserved */
#define PCI_CAP_MAX_WALK     ((PCI_CAP_AREA_END - PCI_CAP_AREA_START) / 4u)

#define PCI_HEADER_TYPE_NORMAL 0x00u
#define PCI_INTERRUPT_PIN_INTA 0x01u

#define PCI_BAR_ADDR_MASK_32   0xfffffff0u /* bits 3:0 of a memory BAR are type bits */
#define PCI_BAR_MIN_SIZE       16u

/* Command bits software may set. I/O space enable stays 0: the function has no I/O
 * BARs (PCI Local Bus 3.0 §6.2.2, bits a BAR does not decode are hardwired). */
#define PCI_COMMAND_WRITABLE \
    (PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK | PCI_COMMAND_PARITY_MASK | \
     PCI_COMMAND_SERR_MASK | PCI_COMMAND_INTX_DISABLE_MASK)

static bool access_ok(uint32_t off, unsigned size)
{
    if (size != 1 && size != 2 && size != 4)
        return false;
    if (off % size != 0)
        return false;
    return off < PCI_CFG_SPACE_SIZE && size <= PCI_CFG_SPACE_SIZE - off;
}

/* The value an unsupported configuration request reads: all-ones of the access size. */
static uint32_t all_ones(unsigned size)
{
    return size >= 4 ? 0xffffffffu : (uint32_t)((1ull << (8u * size)) - 1u);
}

static void put_le(uint8_t *buf, uint32_t off, unsigned size, uint32_t value)
{
    for (unsigned i = 0; i < size; i++)
        buf[off + i] = (uint8_t)(value >> (8u * i));
}

static uint32_t get_le(const uint8_t *buf, uint32_t off, unsigned size)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint32_t)buf[off + i] << (8u * i);
    return v;
}

static bool is_pow2(uint64_t v)
{
    return v != 0 && (v & (v - 1)) == 0;
}

/* A BAR size the header can express: a power of two of at least 16 bytes, whose size
 * mask fits the BAR's width (a 32-bit BAR decodes at most 2 GiB). */
static bool bar_size_valid(uint64_t size, bool is64)
{
    if (!is_pow2(size) || size < PCI_BAR_MIN_SIZE)
        return false;
    return is64 ? size <= (1ull << 63) : size <= (1ull << 31);
}

static void init_bar(struct pci_cfg *c, int bar, const struct pci_bar_params *bp)
{
    uint32_t off = PCI_BAR0 + 4u * (uint32_t)bar;
    uint64_t addr_mask = ~(bp->size_bytes - 1u);
    uint32_t type = 0;

    if (bp->is64)
        type |= PCI_BAR_MEM_TYPE_64_MASK;
    if (bp->prefetchable)
        type |= PCI_BAR_MEM_PREFETCH_MASK;

    c->bar_size[bar] = bp->size_bytes;
    c->bar_is64[bar] = bp->is64;
    put_le(c->image, off, 4, type);
    put_le(c->wmask, off, 4, (uint32_t)addr_mask & PCI_BAR_ADDR_MASK_32);
    if (bp->is64)
        put_le(c->wmask, off + 4u, 4, (uint32_t)(addr_mask >> 32));
}

void pci_cfg_init(struct pci_cfg *c, const struct pci_cfg_params *p)
{
    memset(c, 0, sizeof(*c));
    c->cap_free = PCI_CAP_AREA_START;

    c->image[PCI_HEADER_TYPE] = PCI_HEADER_TYPE_NORMAL;
    c->image[PCI_INTERRUPT_PIN] = PCI_INTERRUPT_PIN_INTA;
    put_le(c->wmask, PCI_COMMAND, 2, PCI_COMMAND_WRITABLE);
    put_le(c->w1cmask, PCI_STATUS, 2, PCI_STATUS_W1C_MASK);
    c->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
    c->wmask[PCI_INTERRUPT_LINE] = 0xff;
    /* Latency timer: read-only 0 (PCI Express Base, type-0 header). Expansion ROM
     * BAR, BIST, capability pointer: read-only; this function has no expansion ROM. */

    if (p == NULL)
        return;

    put_le(c->image, PCI_VENDOR_ID, 2, p->vendor_id);
    put_le(c->image, PCI_DEVICE_ID, 2, p->device_id);
    c->image[PCI_REVISION_ID] = p->revision_id;
    put_le(c->image, PCI_CLASS_PROG, 3, p->class_code & 0xffffffu);
    put_le(c->image, PCI_SUBSYSTEM_VENDOR_ID, 2, p->subsystem_vendor_id);
    put_le(c->image, PCI_SUBSYSTEM_ID, 2, p->subsystem_id);

    for (int bar = 0; bar < PCI_NUM_BARS; bar++) {
        const struct pci_bar_params *bp = &p->bars[bar];
        if (!bar_size_valid(bp->size_bytes, bp->is64))
            continue;
        /* A 64-bit BAR needs the next slot for its upper half. */
        if (bp->is64 && bar + 1 >= PCI_NUM_BARS)
            continue;
        init_bar(c, bar, bp);
        if (bp->is64)
            bar++; /* the upper half is not a BAR of its own: its params are ignored */
    }
}

uint8_t pci_cfg_add_cap(struct pci_cfg *c, const void *body, uint8_t len, const void *wmask)
{
    const uint8_t *b = body;
    const uint8_t *m = wmask;
    uint32_t off = ((uint32_t)c->cap_free + 3u) & ~3u;

    if (b == NULL || len < 2)
        return 0;
    if (off < PCI_CAP_AREA_START || off + len > PCI_CAP_AREA_END)
        return 0;

    memcpy(&c->image[off], b, len);
    c->image[off + PCI_CAP_NEXT_OFF] = 0; /* last in the list */
    if (m != NULL)
        memcpy(&c->wmask[off], m, len);
    /* The ID and next pointer are read-only whatever the caller's mask says. */
    c->wmask[off] = 0;
    c->wmask[off + PCI_CAP_NEXT_OFF] = 0;

    if (c->cap_tail == 0)
        c->image[PCI_CAPABILITY_LIST] = (uint8_t)off;
    else
        c->image[c->cap_tail + PCI_CAP_NEXT_OFF] = (uint8_t)off;
    c->image[PCI_STATUS] |= (uint8_t)PCI_STATUS_CAP_LIST_MASK;

    c->cap_tail = (uint8_t)off;
    c->cap_free = (uint16_t)(off + len);
    return (uint8_t)off;
}

uint8_t pci_cfg_find_cap(const struct pci_cfg *c, uint8_t cap_id, int vndr_type)
{
    uint32_t off = c->image[PCI_CAPABILITY_LIST] & PCI_CAP_PTR_MASK;

    if (!(c->image[PCI_STATUS] & PCI_STATUS_CAP_LIST_MASK))
        return 0;
    /* Bounded walk: a list that loops (only possible through poke) still ends. */
    for (unsigned n = 0; n < PCI_CAP_MAX_WALK; n++) {
        if (off < PCI_CAP_AREA_START || off >= PCI_CAP_AREA_END)
            return 0;
        if (c->image[off] == cap_id) {
            bool type_ok = cap_id != PCI_CAP_ID_VNDR || vndr_type < 0 ||
                           c->image[off + 3u] == (uint32_t)vndr_type;
            if (type_ok)
                return (uint8_t)off;
        }
        off = c->image[off + PCI_CAP_NEXT_OFF] & PCI_CAP_PTR_MASK;
    }
    return 0;
}

uint32_t pci_cfg_read(const struct pci_cfg *c, uint32_t off, unsigned size)
{
    if (!access_ok(off, size))
        return all_ones(size);
    return get_le(c->image, off, size);
}

void pci_cfg_write(struct pci_cfg *c, uint32_t off, unsigned size, uint32_t value)
{
    if (!access_ok(off, size))
        return;
    for (unsigned i = 0; i < size; i++) {
        uint32_t at = off + i;
        uint8_t v = (uint8_t)(value >> (8u * i));
        uint8_t wm = c->wmask[at];
        uint8_t b = (uint8_t)((c->image[at] & ~wm) | (v & wm));
        b = (uint8_t)(b & ~(v & c->w1cmask[at]));
        c->image[at] = b;
    }
}

void pci_cfg_poke(struct pci_cfg *c, uint32_t off, unsigned size, uint32_t value)
{
    if (size != 1 && size != 2 && size != 4)
        return;
    if (off >= PCI_CFG_SPACE_SIZE || size > PCI_CFG_SPACE_SIZE - off)
        return;
    put_le(c->image, off, size, value);
}

static uint16_t command(const struct pci_cfg *c)
{
    return (uint16_t)get_le(c->image, PCI_COMMAND, 2);
}

void pci_cfg_set_intx_pending(struct pci_cfg *c, bool pending)
{
    uint16_t status = (uint16_t)get_le(c->image, PCI_STATUS, 2);
    status = pending ? (uint16_t)(status | PCI_STATUS_INTERRUPT_MASK)
                     : (uint16_t)(status & ~PCI_STATUS_INTERRUPT_MASK);
    put_le(c->image, PCI_STATUS, 2, status);
}

/* "Only when the Interrupt Disable bit in the command register is a 0 and this
 * Interrupt Status bit is a 1, will the function's INTx# signal be asserted"
 * (PCI Local Bus 3.0 §6.2.3, in our words). */
bool pci_cfg_intx_asserted(const struct pci_cfg *c)
{
    const uint16_t status = (uint16_t)get_le(c->image, PCI_STATUS, 2);
    return (status & PCI_STATUS_INTERRUPT_MASK) && !(command(c) & PCI_COMMAND_INTX_DISABLE_MASK);
}

bool pci_cfg_memory_enabled(const struct pci_cfg *c)
{
    return (command(c) & PCI_COMMAND_MEMORY_MASK) != 0;
}

bool pci_cfg_bus_master(const struct pci_cfg *c)
{
    return (command(c) & PCI_COMMAND_MASTER_MASK) != 0;
}

uint64_t pci_cfg_bar_base(const struct pci_cfg *c, int bar)
{
    uint32_t off;
    uint64_t base;

    if (bar < 0 || bar >= PCI_NUM_BARS || c->bar_size[bar] == 0)
        return 0;
    off = PCI_BAR0 + 4u * (uint32_t)bar;
    base = get_le(c->image, off, 4) & PCI_BAR_ADDR_MASK_32;
    if (c->bar_is64[bar])
        base |= (uint64_t)get_le(c->image, off + 4u, 4) << 32;
    return base;
}

int pci_cfg_decode(const struct pci_cfg *c, uint64_t addr, uint32_t len, uint64_t *offset)
{
    if (!pci_cfg_memory_enabled(c) || len == 0)
        return -1;
    for (int bar = 0; bar < PCI_NUM_BARS; bar++) {
        uint64_t size = c->bar_size[bar];
        uint64_t base = pci_cfg_bar_base(c, bar);
        uint64_t rel;

        if (size == 0 || base == 0 || addr < base)
            continue;
        rel = addr - base;
        /* Written without base + size, which can wrap for a BAR at the top. */
        if (rel >= size || len > size - rel)
            continue;
        if (offset != NULL)
            *offset = rel;
        return bar;
    }
    return -1;
}
