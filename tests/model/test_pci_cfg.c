/* test_pci_cfg.c -- type-0 configuration header, BARs, command/status, capabilities. */
#include <criterion/criterion.h>

#include <string.h>

#include "pci_cfg.h"
#include "virtio_wire.h"

#define BAR0_SIZE   (16u * 1024u)          /* 64-bit prefetchable, BAR0/BAR1 */
#define BAR2_SIZE   4096u                  /* 32-bit, BAR2 */
#define BAR3_SIZE   (8ull << 30)           /* 64-bit, 8 GiB, BAR3/BAR4 */

static struct pci_cfg_params test_params(void)
{
    struct pci_cfg_params p;
    memset(&p, 0, sizeof(p));
    p.vendor_id = VIRTIO_PCI_VENDOR_ID;
    p.device_id = VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_NET;
    p.revision_id = 0x01;
    p.class_code = PCI_CLASS_NETWORK_ETHERNET;
    p.subsystem_vendor_id = 0x1af4;
    p.subsystem_id = 0x1100;
    p.bars[0] = (struct pci_bar_params){ .size_bytes = BAR0_SIZE, .is64 = true, .prefetchable = true };
    p.bars[2] = (struct pci_bar_params){ .size_bytes = BAR2_SIZE, .is64 = false, .prefetchable = false };
    p.bars[3] = (struct pci_bar_params){ .size_bytes = BAR3_SIZE, .is64 = true, .prefetchable = false };
    return p;
}

static void init_cfg(struct pci_cfg *c)
{
    struct pci_cfg_params p = test_params();
    pci_cfg_init(c, &p);
}

/* virtio "PCI Device Discovery" + PCI Local Bus 3.0 §6.2.1 Device Identification:
 * the identification registers carry the configured values; header type 0. */
Test(pci_cfg, identification_from_params)
{
    struct pci_cfg c;
    init_cfg(&c);
    cr_assert_eq(pci_cfg_read(&c, PCI_VENDOR_ID, 2), 0x1af4);
    cr_assert_eq(pci_cfg_read(&c, PCI_DEVICE_ID, 2), 0x1041);
    cr_assert_eq(pci_cfg_read(&c, PCI_VENDOR_ID, 4), 0x10411af4u);
    cr_assert_eq(pci_cfg_read(&c, PCI_REVISION_ID, 1), 0x01);
    cr_assert_eq(pci_cfg_read(&c, PCI_CLASS_PROG, 1), 0x00);
    cr_assert_eq(pci_cfg_read(&c, PCI_CLASS_DEVICE, 2), 0x0200);
    cr_assert_eq(pci_cfg_read(&c, PCI_REVISION_ID, 4), 0x02000001u);
    cr_assert_eq(pci_cfg_read(&c, PCI_HEADER_TYPE, 1), 0x00);
    cr_assert_eq(pci_cfg_read(&c, PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
    cr_assert_eq(pci_cfg_read(&c, PCI_SUBSYSTEM_ID, 2), 0x1100);
    cr_assert_eq(pci_cfg_read(&c, PCI_INTERRUPT_PIN, 1), 0x01);
    cr_assert_eq(pci_cfg_read(&c, PCI_COMMAND, 2), 0);
    /* No capability yet: CAP_LIST clear, pointer 0. */
    cr_assert_eq(pci_cfg_read(&c, PCI_STATUS, 2), 0);
    cr_assert_eq(pci_cfg_read(&c, PCI_CAPABILITY_LIST, 1), 0);
}

/* PCI Local Bus 3.0 §6.1 Configuration Space Organization: read-only registers
 * ignore writes (vendor/device id, revision, class, header type, subsystem ids,
 * capability pointer, interrupt pin, BIST). */
Test(pci_cfg, read_only_fields_ignore_writes)
{
    struct pci_cfg c;
    uint8_t before[PCI_CFG_HEADER_SIZE];
    static const uint32_t ro_offsets[] = { 0x00, 0x08, 0x0c, 0x2c, 0x34, 0x38 };

    init_cfg(&c);
    memcpy(before, c.image, sizeof(before));
    for (size_t i = 0; i < sizeof(ro_offsets) / sizeof(ro_offsets[0]); i++)
        pci_cfg_write(&c, ro_offsets[i], 4, 0xa5a5a5a5u);
    pci_cfg_write(&c, PCI_INTERRUPT_PIN, 1, 0x04);
    pci_cfg_write(&c, PCI_HEADER_TYPE, 1, 0x80);

    cr_assert_eq(pci_cfg_read(&c, PCI_VENDOR_ID, 2), 0x1af4);
    cr_assert_eq(pci_cfg_read(&c, PCI_DEVICE_ID, 2), 0x1041);
    cr_assert_eq(pci_cfg_read(&c, PCI_REVISION_ID, 4), 0x02000001u);
    cr_assert_eq(pci_cfg_read(&c, PCI_HEADER_TYPE, 1), 0x00);
    cr_assert_eq(pci_cfg_read(&c, PCI_SUBSYSTEM_VENDOR_ID, 4), 0x11001af4u);
    cr_assert_eq(pci_cfg_read(&c, PCI_CAPABILITY_LIST, 1), 0);
    cr_assert_eq(pci_cfg_read(&c, PCI_INTERRUPT_PIN, 1), 0x01);
    /* Only cache line size at 0x0c was writable in that dword. */
    cr_assert_eq(pci_cfg_read(&c, PCI_CACHE_LINE_SIZE, 1), 0xa5);
    cr_assert_eq(pci_cfg_read(&c, PCI_LATENCY_TIMER, 1), 0);
    cr_assert_eq(pci_cfg_read(&c, 0x0f, 1), 0, "BIST is read-only 0");
}

/* PCI Local Bus 3.0 §6.2.4 Miscellaneous Registers: interrupt line is read/write
 * scratch for software; interrupt pin (INTA) is read-only. */
Test(pci_cfg, interrupt_line_writable)
{
    struct pci_cfg c;
    init_cfg(&c);
    pci_cfg_write(&c, PCI_INTERRUPT_LINE, 2, 0x0b0a);
    cr_assert_eq(pci_cfg_read(&c, PCI_INTERRUPT_LINE, 1), 0x0a);
    cr_assert_eq(pci_cfg_read(&c, PCI_INTERRUPT_PIN, 1), 0x01);
}

/* PCI Local Bus 3.0 §6.2.2 Device Control (Command register): memory space, bus
 * master, parity error response, SERR# enable and interrupt disable are writable;
 * I/O space enable is hardwired 0 (no I/O BARs); other bits are reserved 0. */
Test(pci_cfg, command_writable_bits)
{
    struct pci_cfg c;
    init_cfg(&c);
    pci_cfg_write(&c, PCI_COMMAND, 2, 0xffff);
    cr_assert_eq(pci_cfg_read(&c, PCI_COMMAND, 2),
                 PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK | PCI_COMMAND_PARITY_MASK |
                 PCI_COMMAND_SERR_MASK | PCI_COMMAND_INTX_DISABLE_MASK);
    cr_assert_eq(pci_cfg_read(&c, PCI_COMMAND, 1) & 0x1, 0, "I/O space enable stays 0");
    pci_cfg_write(&c, PCI_COMMAND, 2, 0);
    cr_assert_eq(pci_cfg_read(&c, PCI_COMMAND, 2), 0);
}

/* PCI Local Bus 3.0 §6.2.2 Device Control: bus master enable gates the function's
 * ability to issue memory requests (DMA). */
Test(pci_cfg, bus_master_bit)
{
    struct pci_cfg c;
    init_cfg(&c);
    cr_assert_not(pci_cfg_bus_master(&c));
    pci_cfg_write(&c, PCI_COMMAND, 2, PCI_COMMAND_MASTER_MASK);
    cr_assert(pci_cfg_bus_master(&c));
    cr_assert_not(pci_cfg_memory_enabled(&c));
    pci_cfg_write(&c, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
    cr_assert_not(pci_cfg_bus_master(&c));
    cr_assert(pci_cfg_memory_enabled(&c));
}

/* PCI Local Bus 3.0 §6.2.3 Device Status: Interrupt Status and Capabilities List
 * are read-only; writes of either value leave them alone. */
Test(pci_cfg, status_read_only_bits)
{
    struct pci_cfg c;
    init_cfg(&c);
    pci_cfg_poke(&c, PCI_STATUS, 2, PCI_STATUS_INTERRUPT_MASK | PCI_STATUS_CAP_LIST_MASK);
    pci_cfg_write(&c, PCI_STATUS, 2, 0xffff);
    cr_assert_eq(pci_cfg_read(&c, PCI_STATUS, 2),
                 PCI_STATUS_INTERRUPT_MASK | PCI_STATUS_CAP_LIST_MASK);
    pci_cfg_write(&c, PCI_STATUS, 2, 0);
    cr_assert_eq(pci_cfg_read(&c, PCI_STATUS, 2),
                 PCI_STATUS_INTERRUPT_MASK | PCI_STATUS_CAP_LIST_MASK);
    /* Not settable by software either. */
    pci_cfg_poke(&c, PCI_STATUS, 2, 0);
    pci_cfg_write(&c, PCI_STATUS, 2, 0xffff);
    cr_assert_eq(pci_cfg_read(&c, PCI_STATUS, 2), 0);
}

/* Legacy INTx, PCI Local Bus 3.0 §6.2.2 (Command bit 10, Interrupt Disable) and §6.2.3
 * (Status bit 3, Interrupt Status): the pin is driven only while the function has an
 * interrupt pending and Interrupt Disable is clear; the status bit shows the pending
 * state whatever the disable bit says, and software can neither set nor clear it
 * (not even with the write-1-to-clear error bits in the same write). */
Test(pci_cfg, intx_pending_disable_and_status)
{
    struct pci_cfg c;
    init_cfg(&c);
    cr_assert_not(pci_cfg_intx_asserted(&c));
    pci_cfg_set_intx_pending(&c, true);
    cr_assert(pci_cfg_intx_asserted(&c));
    cr_assert(pci_cfg_read(&c, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT_MASK);

    pci_cfg_write(&c, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE_MASK);
    cr_assert_not(pci_cfg_intx_asserted(&c), "Interrupt Disable masks the pin");
    cr_assert(pci_cfg_read(&c, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT_MASK,
              "but not the status bit");
    pci_cfg_write(&c, PCI_COMMAND, 2, 0);
    cr_assert(pci_cfg_intx_asserted(&c), "clearing it drives the pending interrupt again");

    pci_cfg_write(&c, PCI_STATUS, 2, 0xffff); /* every W1C bit and bit 3 written as 1 */
    cr_assert(pci_cfg_read(&c, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT_MASK);
    pci_cfg_write(&c, PCI_STATUS, 1, 0x00);
    cr_assert(pci_cfg_read(&c, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT_MASK);

    pci_cfg_set_intx_pending(&c, false);
    cr_assert_not(pci_cfg_intx_asserted(&c));
    cr_assert_eq(pci_cfg_read(&c, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT_MASK, 0);
    pci_cfg_write(&c, PCI_STATUS, 2, PCI_STATUS_INTERRUPT_MASK);
    cr_assert_eq(pci_cfg_read(&c, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT_MASK, 0);
    cr_assert_not(pci_cfg_intx_asserted(&c));
}

/* PCI Local Bus 3.0 §6.2.5.1: a function with only 32-bit BARs in consecutive slots
 * (type 00b in each): sizing either one leaves the other alone, and a write of the
 * type bits is ignored. */
Test(pci_cfg, two_32bit_bars_side_by_side)
{
    struct pci_cfg c;
    struct pci_cfg_params p = test_params();
    memset(p.bars, 0, sizeof p.bars);
    p.bars[0] = (struct pci_bar_params){ .size_bytes = 16384, .is64 = false };
    p.bars[1] = (struct pci_bar_params){ .size_bytes = 4096, .is64 = false };
    pci_cfg_init(&c, &p);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0, 4), 0);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 4, 4), 0);
    pci_cfg_write(&c, PCI_BAR0, 4, 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0, 4), 0xffffc000u);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 4, 4), 0, "BAR1 untouched by BAR0's sizing");
    pci_cfg_write(&c, PCI_BAR0 + 4, 4, 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 4, 4), 0xfffff000u);
    pci_cfg_write(&c, PCI_BAR0, 4, 0xc0000000u | 0xfu); /* type bits written as 1 */
    pci_cfg_write(&c, PCI_BAR0 + 4, 4, 0xc0010000u);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0, 4), 0xc0000000u);
    cr_assert_eq(pci_cfg_bar_base(&c, 0), 0xc0000000u);
    cr_assert_eq(pci_cfg_bar_base(&c, 1), 0xc0010000u);
    for (int bar = 2; bar < PCI_NUM_BARS; bar++) {
        pci_cfg_write(&c, PCI_BAR0 + 4u * (uint32_t)bar, 4, 0xffffffffu);
        cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 4u * (uint32_t)bar, 4), 0, "BAR%d unimplemented", bar);
    }
    pci_cfg_write(&c, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
    uint64_t off;
    cr_assert_eq(pci_cfg_decode(&c, 0xc0010ffcu, 4, &off), 1);
    cr_assert_eq(off, 0xffcu);
    cr_assert_eq(pci_cfg_decode(&c, 0xc0003ffcu, 4, &off), 0);
    cr_assert_eq(pci_cfg_decode(&c, 0xc0011000u, 4, &off), -1);
}

/* PCI Local Bus 3.0 §6.2.3 Device Status: error bits are cleared by writing 1;
 * writing 0 has no effect. */
Test(pci_cfg, status_error_bits_write_one_to_clear)
{
    struct pci_cfg c;
    init_cfg(&c);
    pci_cfg_poke(&c, PCI_STATUS, 2, PCI_STATUS_W1C_MASK | PCI_STATUS_CAP_LIST_MASK);

    pci_cfg_write(&c, PCI_STATUS, 2, 0);
    cr_assert_eq(pci_cfg_read(&c, PCI_STATUS, 2), PCI_STATUS_W1C_MASK | PCI_STATUS_CAP_LIST_MASK);

    pci_cfg_write(&c, PCI_STATUS, 2, 0x0100); /* master data parity error */
    cr_assert_eq(pci_cfg_read(&c, PCI_STATUS, 2), 0xf800u | PCI_STATUS_CAP_LIST_MASK);

    pci_cfg_write(&c, PCI_STATUS + 1, 1, 0x20); /* received master abort, byte access */
    cr_assert_eq(pci_cfg_read(&c, PCI_STATUS, 2), 0xd800u | PCI_STATUS_CAP_LIST_MASK);

    /* A dword write to command+status: command written, status bits cleared. */
    pci_cfg_write(&c, PCI_COMMAND, 4, 0xffff0000u | PCI_COMMAND_MEMORY_MASK);
    cr_assert_eq(pci_cfg_read(&c, PCI_STATUS, 2), PCI_STATUS_CAP_LIST_MASK);
    cr_assert_eq(pci_cfg_read(&c, PCI_COMMAND, 2), PCI_COMMAND_MEMORY_MASK);
}

/* PCI Local Bus 3.0 §6.2.5.1 Address Maps (BAR sizing): a 64-bit memory BAR reads
 * back ~(size-1) in the low dword with type bits (64-bit, prefetchable), and the
 * upper size mask in the high dword, after all-ones is written to each half. */
Test(pci_cfg, bar_sizing_64bit)
{
    struct pci_cfg c;
    init_cfg(&c);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0, 4),
                 PCI_BAR_MEM_TYPE_64_MASK | PCI_BAR_MEM_PREFETCH_MASK);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 4, 4), 0);

    pci_cfg_write(&c, PCI_BAR0, 4, 0xffffffffu);
    pci_cfg_write(&c, PCI_BAR0 + 4, 4, 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0, 4),
                 (uint32_t)~(BAR0_SIZE - 1u) | PCI_BAR_MEM_TYPE_64_MASK | PCI_BAR_MEM_PREFETCH_MASK);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0, 4), 0xffffc00cu);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 4, 4), 0xffffffffu);

    /* Size decoded from the two halves as software does it. */
    uint64_t mask = ((uint64_t)pci_cfg_read(&c, PCI_BAR0 + 4, 4) << 32) |
                    (pci_cfg_read(&c, PCI_BAR0, 4) & ~0xfu);
    cr_assert_eq(~mask + 1u, BAR0_SIZE);
}

/* PCI Local Bus 3.0 §6.2.5.1 Address Maps: a 64-bit BAR larger than 4 GiB has no
 * writable bits in the low dword; the size shows in the high dword. */
Test(pci_cfg, bar_sizing_64bit_above_4g)
{
    struct pci_cfg c;
    init_cfg(&c);
    pci_cfg_write(&c, PCI_BAR0 + 12, 4, 0xffffffffu);
    pci_cfg_write(&c, PCI_BAR0 + 16, 4, 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 12, 4), PCI_BAR_MEM_TYPE_64_MASK);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 16, 4), 0xfffffffeu);
    uint64_t mask = ((uint64_t)pci_cfg_read(&c, PCI_BAR0 + 16, 4) << 32) |
                    (pci_cfg_read(&c, PCI_BAR0 + 12, 4) & ~0xfu);
    cr_assert_eq(~mask + 1u, BAR3_SIZE);
}

/* PCI Local Bus 3.0 §6.2.5.1 Address Maps: 32-bit memory BAR sizing. */
Test(pci_cfg, bar_sizing_32bit)
{
    struct pci_cfg c;
    init_cfg(&c);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 8, 4), 0, "32-bit, non-prefetchable, memory");
    pci_cfg_write(&c, PCI_BAR0 + 8, 4, 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 8, 4), 0xfffff000u);
    cr_assert_eq(~(pci_cfg_read(&c, PCI_BAR0 + 8, 4) & ~0xfu) + 1u, BAR2_SIZE);
    /* Restoring 0 leaves it unprogrammed. */
    pci_cfg_write(&c, PCI_BAR0 + 8, 4, 0);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 8, 4), 0);
    cr_assert_eq(pci_cfg_bar_base(&c, 2), 0);
}

/* PCI Local Bus 3.0 §6.2.5.1 Address Maps: unimplemented BARs are hardwired to 0;
 * §6.2.5.2 Expansion ROM Base Address: a device without a ROM reads 0 there. */
Test(pci_cfg, unimplemented_bars_and_rom_read_zero)
{
    struct pci_cfg c;
    init_cfg(&c);
    pci_cfg_write(&c, PCI_BAR0 + 20, 4, 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 20, 4), 0, "BAR5 not implemented");
    pci_cfg_write(&c, PCI_ROM_ADDRESS, 4, 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, PCI_ROM_ADDRESS, 4), 0);
    cr_assert_eq(pci_cfg_bar_base(&c, 5), 0);
    cr_assert_eq(pci_cfg_bar_base(&c, -1), 0);
    cr_assert_eq(pci_cfg_bar_base(&c, PCI_NUM_BARS), 0);
}

/* PCI Local Bus 3.0 §6.2.5.1 Address Maps: BAR sizes must be powers of two and a
 * 64-bit BAR needs two slots; impossible configurations leave the BAR unimplemented. */
Test(pci_cfg, invalid_bar_params_are_unimplemented)
{
    struct pci_cfg_params p;
    struct pci_cfg c;
    memset(&p, 0, sizeof(p));
    p.bars[0] = (struct pci_bar_params){ .size_bytes = 3000 };
    p.bars[1] = (struct pci_bar_params){ .size_bytes = 8 };
    p.bars[2] = (struct pci_bar_params){ .size_bytes = 1ull << 32 }; /* too big for 32-bit */
    p.bars[5] = (struct pci_bar_params){ .size_bytes = 4096, .is64 = true }; /* no upper slot */
    pci_cfg_init(&c, &p);
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        pci_cfg_write(&c, PCI_BAR0 + 4u * (uint32_t)i, 4, 0xffffffffu);
        cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 4u * (uint32_t)i, 4), 0, "BAR%d", i);
        cr_assert_eq(c.bar_size[i], 0);
    }
}

/* PCI Local Bus 3.0 §6.2.5.1 Address Maps: the upper half of a 64-bit BAR is not a
 * BAR of its own; its own params are ignored. */
Test(pci_cfg, upper_half_params_ignored)
{
    struct pci_cfg_params p = test_params();
    struct pci_cfg c;
    p.bars[1] = (struct pci_bar_params){ .size_bytes = 4096 };
    pci_cfg_init(&c, &p);
    cr_assert_eq(c.bar_size[1], 0);
    pci_cfg_write(&c, PCI_BAR0 + 4, 4, 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 4, 4), 0xffffffffu, "still BAR0's upper mask");
}

static void program_bars(struct pci_cfg *c)
{
    pci_cfg_write(c, PCI_BAR0, 4, 0xfe000000u);
    pci_cfg_write(c, PCI_BAR0 + 4, 4, 0x00000001u);  /* BAR0 at 0x1_fe00_0000 */
    pci_cfg_write(c, PCI_BAR0 + 8, 4, 0xc0001000u);  /* BAR2 at 0xc000_1000 */
    pci_cfg_write(c, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
}

/* PCI Local Bus 3.0 §6.2.5.1 Address Maps: software programs the base in the
 * writable address bits; low bits below the size stay 0, type bits stay. */
Test(pci_cfg, program_base_addresses)
{
    struct pci_cfg c;
    init_cfg(&c);
    program_bars(&c);
    cr_assert_eq(pci_cfg_bar_base(&c, 0), 0x1fe000000ull);
    cr_assert_eq(pci_cfg_bar_base(&c, 1), 0, "upper half is not a BAR");
    cr_assert_eq(pci_cfg_bar_base(&c, 2), 0xc0001000ull);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0, 4), 0xfe00000cu);

    /* Unaligned base: bits below the size are read-only zero. */
    pci_cfg_write(&c, PCI_BAR0 + 8, 4, 0xc0001abcu);
    cr_assert_eq(pci_cfg_read(&c, PCI_BAR0 + 8, 4), 0xc0001000u);

    /* Byte-wise programming of the upper dword. */
    pci_cfg_write(&c, PCI_BAR0 + 7, 1, 0x80);
    cr_assert_eq(pci_cfg_bar_base(&c, 0), 0x80000001fe000000ull);
}

/* PCI Local Bus 3.0 §6.2.5.1 Address Maps: a BAR claims exactly [base, base+size):
 * first byte, last byte, one past the end, and an access straddling the end. */
Test(pci_cfg, decode_edges)
{
    struct pci_cfg c;
    uint64_t off = 12345;
    const uint64_t b0 = 0x1fe000000ull, b2 = 0xc0001000ull;
    init_cfg(&c);
    program_bars(&c);

    cr_assert_eq(pci_cfg_decode(&c, b0, 4, &off), 0);
    cr_assert_eq(off, 0);
    cr_assert_eq(pci_cfg_decode(&c, b0 + BAR0_SIZE - 1, 1, &off), 0);
    cr_assert_eq(off, BAR0_SIZE - 1);
    cr_assert_eq(pci_cfg_decode(&c, b0 + BAR0_SIZE - 4, 4, &off), 0);
    cr_assert_eq(off, BAR0_SIZE - 4);
    cr_assert_eq(pci_cfg_decode(&c, b0 + BAR0_SIZE, 1, &off), -1, "one past the end");
    cr_assert_eq(pci_cfg_decode(&c, b0 + BAR0_SIZE - 2, 4, &off), -1, "straddles the end");
    cr_assert_eq(pci_cfg_decode(&c, b0 - 1, 1, &off), -1, "one before the start");
    cr_assert_eq(pci_cfg_decode(&c, b0 - 1, 2, &off), -1, "straddles the start");

    cr_assert_eq(pci_cfg_decode(&c, b2, 4, &off), 2);
    cr_assert_eq(off, 0);
    cr_assert_eq(pci_cfg_decode(&c, b2 + BAR2_SIZE - 1, 1, &off), 2);
    cr_assert_eq(off, BAR2_SIZE - 1);
    cr_assert_eq(pci_cfg_decode(&c, b2 + BAR2_SIZE, 1, &off), -1);
    cr_assert_eq(pci_cfg_decode(&c, b2 + BAR2_SIZE - 4, 8, &off), -1);
    cr_assert_eq(pci_cfg_decode(&c, b2, BAR2_SIZE, &off), 2, "whole BAR");
    cr_assert_eq(pci_cfg_decode(&c, b2, BAR2_SIZE + 1, &off), -1);
    cr_assert_eq(pci_cfg_decode(&c, b2, 0, &off), -1, "empty access");
    cr_assert_eq(pci_cfg_decode(&c, UINT64_MAX, 0xffffffffu, &off), -1);
    cr_assert_eq(pci_cfg_decode(&c, b2, 4, NULL), 2, "offset pointer is optional");
}

/* PCI Local Bus 3.0 §6.2.5.1 Address Maps: a BAR at the very top of the 64-bit
 * space decodes without wrap-around. */
Test(pci_cfg, decode_bar_at_top_of_address_space)
{
    struct pci_cfg c;
    uint64_t off;
    init_cfg(&c);
    pci_cfg_write(&c, PCI_BAR0, 4, 0xffffffffu);
    pci_cfg_write(&c, PCI_BAR0 + 4, 4, 0xffffffffu);
    pci_cfg_write(&c, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
    cr_assert_eq(pci_cfg_bar_base(&c, 0), 0xffffffffffffc000ull);
    cr_assert_eq(pci_cfg_decode(&c, UINT64_MAX, 1, &off), 0);
    cr_assert_eq(off, BAR0_SIZE - 1);
    cr_assert_eq(pci_cfg_decode(&c, UINT64_MAX, 2, &off), -1);
}

/* PCI Local Bus 3.0 §6.2.2 Device Control: with Memory Space clear the function
 * does not respond to memory accesses; unprogrammed (zero) BARs never decode. */
Test(pci_cfg, memory_enable_gates_decode)
{
    struct pci_cfg c;
    uint64_t off;
    init_cfg(&c);
    program_bars(&c);
    cr_assert_eq(pci_cfg_decode(&c, 0xc0001000ull, 4, &off), 2);
    pci_cfg_write(&c, PCI_COMMAND, 2, PCI_COMMAND_MASTER_MASK);
    cr_assert_not(pci_cfg_memory_enabled(&c));
    cr_assert_eq(pci_cfg_decode(&c, 0xc0001000ull, 4, &off), -1);
    cr_assert_eq(pci_cfg_decode(&c, 0x1fe000000ull, 4, &off), -1);
    pci_cfg_write(&c, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK);
    cr_assert_eq(pci_cfg_decode(&c, 0x1fe000000ull, 4, &off), 0);

    /* BAR3 (8 GiB) was never programmed: base 0 does not decode address 0. */
    cr_assert_eq(pci_cfg_decode(&c, 0, 4, &off), -1);
    cr_assert_eq(pci_cfg_decode(&c, 0x1000, 4, &off), -1);
}

static uint8_t add_vndr_cap(struct pci_cfg *c, uint8_t cfg_type, uint8_t len)
{
    uint8_t body[32];
    memset(body, 0, sizeof(body));
    body[0] = PCI_CAP_ID_VNDR;
    body[1] = 0xee; /* overwritten by the list */
    body[2] = len;
    body[3] = cfg_type;
    return pci_cfg_add_cap(c, body, len, NULL);
}

/* PCI Local Bus 3.0 §6.7 Capabilities List, virtio "Virtio Structure PCI
 * Capabilities": the list starts at the pointer at 0x34, entries are dword aligned
 * in 0x40..0xff, linked by next pointers, the last next is 0; status CAP_LIST is set. */
Test(pci_cfg, capability_list_walk)
{
    struct pci_cfg c;
    uint8_t msix_body[12] = { PCI_CAP_ID_MSIX, 0, 0x03, 0x00 };
    uint8_t offs[3];
    init_cfg(&c);

    offs[0] = add_vndr_cap(&c, VIRTIO_PCI_CAP_COMMON_CFG, 16);
    offs[1] = pci_cfg_add_cap(&c, msix_body, sizeof(msix_body), NULL);
    offs[2] = add_vndr_cap(&c, VIRTIO_PCI_CAP_NOTIFY_CFG, 19); /* odd length */
    cr_assert_eq(offs[0], 0x40);
    cr_assert_eq(offs[1], 0x50);
    cr_assert_eq(offs[2], 0x5c);

    cr_assert(pci_cfg_read(&c, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST_MASK);
    uint32_t ptr = pci_cfg_read(&c, PCI_CAPABILITY_LIST, 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(ptr, offs[i], "cap %d", i);
        cr_assert_eq(ptr % 4, 0, "dword aligned");
        cr_assert_geq(ptr, 0x40);
        ptr = pci_cfg_read(&c, ptr + 1, 1);
    }
    cr_assert_eq(ptr, 0, "last next pointer is 0");
    cr_assert_eq(pci_cfg_read(&c, offs[1], 1), PCI_CAP_ID_MSIX);
    cr_assert_eq(pci_cfg_read(&c, offs[2] + 3, 1), VIRTIO_PCI_CAP_NOTIFY_CFG);

    /* A fourth capability goes after the odd-length one, dword aligned. */
    cr_assert_eq(add_vndr_cap(&c, VIRTIO_PCI_CAP_ISR_CFG, 16), 0x70);
    cr_assert_eq(pci_cfg_read(&c, offs[2] + 1, 1), 0x70);
}

/* virtio "Virtio Structure PCI Capabilities": the driver finds each structure by
 * walking the list for vendor capabilities with the wanted cfg_type. */
Test(pci_cfg, find_cap_by_vendor_type)
{
    struct pci_cfg c;
    uint8_t msix_body[12] = { PCI_CAP_ID_MSIX };
    init_cfg(&c);
    cr_assert_eq(pci_cfg_find_cap(&c, PCI_CAP_ID_VNDR, -1), 0, "empty list");

    uint8_t common = add_vndr_cap(&c, VIRTIO_PCI_CAP_COMMON_CFG, 16);
    uint8_t msix = pci_cfg_add_cap(&c, msix_body, sizeof(msix_body), NULL);
    uint8_t notify = add_vndr_cap(&c, VIRTIO_PCI_CAP_NOTIFY_CFG, 20);

    cr_assert_eq(pci_cfg_find_cap(&c, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_NOTIFY_CFG), notify);
    cr_assert_eq(pci_cfg_find_cap(&c, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_COMMON_CFG), common);
    cr_assert_eq(pci_cfg_find_cap(&c, PCI_CAP_ID_VNDR, -1), common, "first vendor cap");
    cr_assert_eq(pci_cfg_find_cap(&c, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_ISR_CFG), 0);
    cr_assert_eq(pci_cfg_find_cap(&c, PCI_CAP_ID_MSIX, -1), msix);
    cr_assert_eq(pci_cfg_find_cap(&c, 0x05 /* MSI */, -1), 0);
}

/* PCI Local Bus 3.0 §6.7 Capabilities List: a list corrupted into a loop (only
 * possible through poke) still ends the walk. */
Test(pci_cfg, find_cap_bounded_on_loop)
{
    struct pci_cfg c;
    init_cfg(&c);
    add_vndr_cap(&c, VIRTIO_PCI_CAP_COMMON_CFG, 16);
    pci_cfg_poke(&c, 0x41, 1, 0x40); /* next points to itself */
    cr_assert_eq(pci_cfg_find_cap(&c, PCI_CAP_ID_MSIX, -1), 0);
    pci_cfg_poke(&c, 0x41, 1, 0x10); /* next points into the header */
    cr_assert_eq(pci_cfg_find_cap(&c, PCI_CAP_ID_MSIX, -1), 0);
}

/* PCI Local Bus 3.0 §6.7 Capabilities List: capabilities live below 0x100; one that
 * does not fit is refused (returns 0) and the list is unchanged. */
Test(pci_cfg, capability_that_does_not_fit)
{
    struct pci_cfg c;
    uint8_t body[255];
    memset(body, 0, sizeof(body));
    body[0] = PCI_CAP_ID_VNDR;
    init_cfg(&c);

    cr_assert_eq(pci_cfg_add_cap(&c, body, 0xc0, NULL), 0x40, "exactly fills 0x40..0xff");
    cr_assert_eq(pci_cfg_add_cap(&c, body, 4, NULL), 0, "no room left");
    cr_assert_eq(pci_cfg_read(&c, 0x41, 1), 0);

    init_cfg(&c);
    cr_assert_eq(pci_cfg_add_cap(&c, body, 0xc1, NULL), 0, "one byte too long");
    cr_assert_eq(pci_cfg_add_cap(&c, body, 255, NULL), 0);
    cr_assert_eq(pci_cfg_add_cap(&c, body, 1, NULL), 0, "shorter than ID + next");
    cr_assert_eq(pci_cfg_add_cap(&c, NULL, 16, NULL), 0);
    cr_assert_eq(pci_cfg_read(&c, PCI_CAPABILITY_LIST, 1), 0);
    cr_assert_eq(pci_cfg_read(&c, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST_MASK, 0);
}

/* PCI Local Bus 3.0 §6.7 Capabilities List / §6.8.2.3 MSI-X Message Control: only
 * the bits the capability declares writable change; ID and next are read-only. */
Test(pci_cfg, capability_write_mask)
{
    struct pci_cfg c;
    uint8_t body[12] = { PCI_CAP_ID_MSIX, 0, 0x03, 0x00 };
    uint8_t wmask[12] = { 0xff, 0xff, 0x00, 0xc0 }; /* enable + function mask */
    init_cfg(&c);
    uint8_t off = pci_cfg_add_cap(&c, body, sizeof(body), wmask);
    cr_assert_eq(off, 0x40);

    pci_cfg_write(&c, off, 4, 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, off, 4), 0xc0030000u | PCI_CAP_ID_MSIX);
    pci_cfg_write(&c, off + 2, 2, 0x0000);
    cr_assert_eq(pci_cfg_read(&c, off + 2, 2), 0x0003);
    pci_cfg_write(&c, off + 4, 4, 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, off + 4, 4), 0, "no mask: read-only");
}

/* transport-pci "PCI Device Layout" / PCI Local Bus 3.0 §6.1: configuration accesses
 * are 1, 2 or 4 bytes naturally aligned; others read all-ones and write nothing. */
Test(pci_cfg, misaligned_and_bad_size_accesses)
{
    struct pci_cfg c;
    uint8_t before[PCI_CFG_SPACE_SIZE];
    init_cfg(&c);

    cr_assert_eq(pci_cfg_read(&c, PCI_VENDOR_ID + 1, 2), 0xffff);
    cr_assert_eq(pci_cfg_read(&c, PCI_VENDOR_ID + 2, 4), 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, PCI_VENDOR_ID + 1, 4), 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, PCI_VENDOR_ID, 3), 0xffffff);
    cr_assert_eq(pci_cfg_read(&c, PCI_VENDOR_ID, 8), 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, PCI_VENDOR_ID, 0), 0);
    cr_assert_eq(pci_cfg_read(&c, PCI_CFG_SPACE_SIZE, 4), 0xffffffffu, "beyond 4 KiB");
    cr_assert_eq(pci_cfg_read(&c, PCI_CFG_SPACE_SIZE - 2, 4), 0xffffffffu);
    cr_assert_eq(pci_cfg_read(&c, UINT32_MAX, 1), 0xff);
    cr_assert_eq(pci_cfg_read(&c, UINT32_MAX - 3, 4), 0xffffffffu);

    memcpy(before, c.image, sizeof(before));
    pci_cfg_write(&c, PCI_COMMAND + 1, 2, 0xffff);
    pci_cfg_write(&c, PCI_COMMAND + 2, 4, 0xffffffffu);
    pci_cfg_write(&c, PCI_COMMAND, 3, 0xffffff);
    pci_cfg_write(&c, PCI_COMMAND, 8, 0xffffffffu);
    pci_cfg_write(&c, PCI_BAR0 + 2, 4, 0xffffffffu);
    pci_cfg_write(&c, PCI_CFG_SPACE_SIZE, 4, 0xffffffffu);
    pci_cfg_write(&c, UINT32_MAX - 3, 4, 0xffffffffu);
    pci_cfg_poke(&c, PCI_CFG_SPACE_SIZE - 2, 4, 0xffffffffu);
    pci_cfg_poke(&c, UINT32_MAX, 1, 0xff);
    cr_assert_arr_eq(c.image, before, sizeof(before));
}

/* PCI Express Base, Extended Configuration Space: a header of 0 at 0x100 means the
 * function has no extended capabilities; the space reads 0 and ignores writes. */
Test(pci_cfg, extended_space_reads_zero)
{
    struct pci_cfg c;
    init_cfg(&c);
    cr_assert_eq(pci_cfg_read(&c, 0x100, 4), 0);
    cr_assert_eq(pci_cfg_read(&c, 0xffc, 4), 0);
    cr_assert_eq(pci_cfg_read(&c, 0xfff, 1), 0);
    pci_cfg_write(&c, 0x100, 4, 0xffffffffu);
    pci_cfg_write(&c, 0x800, 2, 0xffff);
    cr_assert_eq(pci_cfg_read(&c, 0x100, 4), 0);
    cr_assert_eq(pci_cfg_read(&c, 0x800, 2), 0);
}

/* PCI Local Bus 3.0 §6.1: init clears everything; NULL params give an empty but
 * well-formed header (memory safety only, callers validate configuration). */
Test(pci_cfg, init_without_params)
{
    struct pci_cfg c;
    memset(&c, 0x5a, sizeof(c));
    pci_cfg_init(&c, NULL);
    cr_assert_eq(pci_cfg_read(&c, PCI_VENDOR_ID, 4), 0);
    cr_assert_eq(pci_cfg_read(&c, PCI_INTERRUPT_PIN, 1), 1);
    for (int i = 0; i < PCI_NUM_BARS; i++)
        cr_assert_eq(c.bar_size[i], 0);
    cr_assert_eq(pci_cfg_read(&c, 0x200, 4), 0);
}
