/* pci_cfg.h -- a PCI Express function's configuration space, type-0 header.
 *
 * Owns: the 4 KiB configuration image (256 B PCI-compatible + extended space, which
 * holds no extended capability), which bits software may write (write mask) and which
 * are write-1-to-clear, BAR sizing and decode, the command register's gates
 * (memory-space enable for BAR decode, bus-master enable for DMA), and the capability
 * list (built once at init by the device composition).
 *
 * Accesses are 1, 2 or 4 bytes, naturally aligned; others read as all-ones and are
 * ignored on write (the PCI convention for unsupported requests to config space).
 */
#ifndef VIOSIM_PCI_CFG_H
#define VIOSIM_PCI_CFG_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_CFG_SPACE_SIZE   4096u
#define PCI_CFG_HEADER_SIZE  64u
#define PCI_NUM_BARS         6

/* Header offsets (PCI Local Bus 3.0, type-0 header). */
#define PCI_VENDOR_ID        0x00
#define PCI_DEVICE_ID        0x02
#define PCI_COMMAND          0x04
#define PCI_STATUS           0x06
#define PCI_REVISION_ID      0x08
#define PCI_CLASS_PROG       0x09
#define PCI_CLASS_DEVICE     0x0a
#define PCI_CACHE_LINE_SIZE  0x0c
#define PCI_LATENCY_TIMER    0x0d
#define PCI_HEADER_TYPE      0x0e
#define PCI_BAR0             0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID     0x2e
#define PCI_ROM_ADDRESS      0x30
#define PCI_CAPABILITY_LIST  0x34
#define PCI_INTERRUPT_LINE   0x3c
#define PCI_INTERRUPT_PIN    0x3d

#define PCI_COMMAND_MEMORY_MASK      0x0002u /* memory-space enable: BARs decode */
#define PCI_COMMAND_MASTER_MASK      0x0004u /* bus-master enable: device may DMA */
#define PCI_COMMAND_PARITY_MASK      0x0040u
#define PCI_COMMAND_SERR_MASK        0x0100u
#define PCI_COMMAND_INTX_DISABLE_MASK 0x0400u

#define PCI_STATUS_INTERRUPT_MASK    0x0008u /* RO: INTx asserted */
#define PCI_STATUS_CAP_LIST_MASK     0x0010u /* RO: capability list present */
#define PCI_STATUS_W1C_MASK          0xf900u /* parity/abort/SERR error bits: write 1 to clear */

/* Memory BAR type bits (PCI Local Bus 3.0 §6.2.5.1): bits 2:1 are the type, 00b a
 * 32-bit BAR anywhere below 4 GiB, 10b a 64-bit BAR spanning this slot and the next. */
#define PCI_BAR_MEM_TYPE_64_MASK     0x4u
#define PCI_BAR_MEM_PREFETCH_MASK    0x8u

#define PCI_CLASS_NETWORK_ETHERNET   0x020000u /* base class 02h, sub-class 00h, prog-if 00h */

struct pci_bar_params {
    uint64_t size_bytes;  /* power of two >= 16; 0 = no BAR in this slot */
    bool is64;            /* 64-bit memory BAR: takes this BAR slot and the next */
    bool prefetchable;
};

struct pci_cfg_params {
    uint16_t vendor_id;
    uint16_t device_id;
    uint8_t revision_id;
    uint32_t class_code;  /* 24 bits: base class, sub-class, programming interface */
    uint16_t subsystem_vendor_id;
    uint16_t subsystem_id;
    struct pci_bar_params bars[PCI_NUM_BARS];
};

struct pci_cfg {
    uint8_t image[PCI_CFG_SPACE_SIZE];
    uint8_t wmask[PCI_CFG_SPACE_SIZE];   /* 1 = software may write this bit */
    uint8_t w1cmask[PCI_CFG_SPACE_SIZE]; /* 1 = writing 1 clears this bit */
    uint64_t bar_size[PCI_NUM_BARS];     /* 0 for an absent BAR or the upper half of a 64-bit one */
    bool bar_is64[PCI_NUM_BARS];
    uint8_t cap_tail;                    /* offset of the last capability, 0 if none */
    uint16_t cap_free;                   /* first free byte for the next capability */
};

/* Build the header from params. Checks nothing about params beyond what is needed for
 * memory safety (callers validate configuration); invalid BAR sizes are treated as 0. */
void pci_cfg_init(struct pci_cfg *c, const struct pci_cfg_params *p);

/* Append a capability of len bytes (len >= 2; body[0] is the capability ID, body[1]
 * is overwritten with the next pointer). wmask (may be NULL) marks the bits software
 * may write. The capability is placed dword-aligned after the previous one. Returns
 * its offset, or 0 if it does not fit below 0x100. */
uint8_t pci_cfg_add_cap(struct pci_cfg *c, const void *body, uint8_t len, const void *wmask);

/* Find the first capability with this ID (and for vendor capabilities, cfg_type at
 * byte 3 equal to vndr_type unless vndr_type < 0). Returns its offset or 0. */
uint8_t pci_cfg_find_cap(const struct pci_cfg *c, uint8_t cap_id, int vndr_type);

uint32_t pci_cfg_read(const struct pci_cfg *c, uint32_t off, unsigned size);
void pci_cfg_write(struct pci_cfg *c, uint32_t off, unsigned size, uint32_t value);

/* Direct image access for the device composition (no masks applied). */
void pci_cfg_poke(struct pci_cfg *c, uint32_t off, unsigned size, uint32_t value);

/* Legacy INTx (PCI Local Bus 3.0 §6.2.2, §6.2.3, §6.2.4): the Interrupt Pin reads
 * INTA (01h), the Interrupt Line is scratch for software. The function sets its
 * pending state with pci_cfg_set_intx_pending (Status bit 3, Interrupt Status: read
 * only to software, and it reflects the pending state whatever Command bit 10 says);
 * the pin is driven only while pending and Command bit 10 (Interrupt Disable) is clear:
 * pci_cfg_intx_asserted. */
void pci_cfg_set_intx_pending(struct pci_cfg *c, bool pending);
bool pci_cfg_intx_asserted(const struct pci_cfg *c);

bool pci_cfg_memory_enabled(const struct pci_cfg *c);
bool pci_cfg_bus_master(const struct pci_cfg *c);

/* Base address currently programmed in a BAR (64-bit BARs combine both halves). */
uint64_t pci_cfg_bar_base(const struct pci_cfg *c, int bar);

/* Which BAR decodes [addr, addr+len)? Only with memory-space enable set and a BAR
 * programmed to a non-zero base. Returns the BAR index and the offset in it, or -1. */
int pci_cfg_decode(const struct pci_cfg *c, uint64_t addr, uint32_t len, uint64_t *offset);

#endif
