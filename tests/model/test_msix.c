/* test_msix.c -- MSI-X table, pending bit array, per-vector and function masking. */
#include <criterion/criterion.h>

#include "msix.h"
#include "virtio_wire.h"

#define NVEC 4u

static uint32_t entry(uint16_t vector, uint32_t field)
{
    return (uint32_t)vector * MSIX_ENTRY_SIZE + field;
}

/* Program vector's address and data and unmask it (per-vector). */
static void program(struct msix *m, uint16_t vector, uint64_t addr, uint32_t data)
{
    cr_assert_eq(msix_table_write(m, entry(vector, MSIX_ENTRY_ADDR_LO), 8, addr), VS_REASON_NONE);
    cr_assert_eq(msix_table_write(m, entry(vector, MSIX_ENTRY_DATA), 4, data), VS_REASON_NONE);
    cr_assert_eq(msix_table_write(m, entry(vector, MSIX_ENTRY_CTRL), 4, 0), VS_REASON_NONE);
}

static void init_enabled(struct msix *m)
{
    msix_init(m, NVEC);
    msix_set_control(m, true, false);
}

/* PCI Local Bus 3.0 §6.8.2.9 Vector Control for MSI-X Table Entries: after reset
 * every Mask bit is set; §6.8.2.10 Pending Bits: no bit is pending; MSI-X starts
 * disabled (§6.8.2.3 Message Control). */
Test(msix, reset_state_all_masked)
{
    struct msix m;
    msix_init(&m, NVEC);
    cr_assert_eq(m.nvec, NVEC);
    cr_assert_not(m.enabled);
    cr_assert_not(m.function_masked);
    cr_assert_eq(msix_table_bytes(&m), NVEC * 16u);
    cr_assert_eq(msix_pba_bytes(&m), 8u);
    for (uint16_t v = 0; v < NVEC; v++) {
        cr_assert_eq(msix_table_read(&m, entry(v, MSIX_ENTRY_CTRL), 4), MSIX_CTRL_MASKBIT_MASK);
        cr_assert_eq(msix_table_read(&m, entry(v, MSIX_ENTRY_ADDR_LO), 8), 0);
        cr_assert_eq(msix_table_read(&m, entry(v, MSIX_ENTRY_DATA), 4), 0);
    }
    cr_assert_eq(msix_pba_read(&m, 0, 8), 0);
}

/* PCI Local Bus 3.0 §6.8.2.3 Message Control: Table Size is 1..2048 entries; this
 * model holds at most MSIX_VECTORS_MAX and clamps the configured count. */
Test(msix, vector_count_clamped)
{
    struct msix m;
    msix_init(&m, 0);
    cr_assert_eq(m.nvec, 1);
    cr_assert_eq(msix_pba_bytes(&m), 8);
    msix_init(&m, 1000);
    cr_assert_eq(m.nvec, MSIX_VECTORS_MAX);
    cr_assert_eq(msix_table_bytes(&m), MSIX_VECTORS_MAX * 16u);
    cr_assert_eq(msix_pba_bytes(&m), (MSIX_VECTORS_MAX + 63u) / 64u * 8u);
    cr_assert_eq(msix_table_read(&m, entry(MSIX_VECTORS_MAX - 1, MSIX_ENTRY_CTRL), 4), 1);
}

/* PCI Local Bus 3.0 §6.8.2.6-6.8.2.8 Message Address / Upper Address / Data: an
 * unmasked vector's message is a write of the programmed data to the programmed
 * address. */
Test(msix, raise_delivers_programmed_message)
{
    struct msix m;
    struct msix_message msg = { 0 };
    init_enabled(&m);
    program(&m, 2, 0x00000001fee01000ull, 0x4041);

    cr_assert(msix_raise(&m, 2, &msg));
    cr_assert_eq(msg.addr, 0x00000001fee01000ull);
    cr_assert_eq(msg.data, 0x4041);
    cr_assert_eq(msg.vector, 2);
    cr_assert_eq(m.stats.raised, 1);
    cr_assert_eq(m.stats.sent, 1);
    cr_assert_eq(m.stats.pended, 0);
    cr_assert_eq(msix_pba_read(&m, 0, 4), 0);
    cr_assert_not(msix_take_pending(&m, &msg), "nothing pending after a direct send");
}

/* PCI Local Bus 3.0 §6.8.3.4 Per-vector Masking: a message for a masked vector is
 * not sent; its Pending bit is set and reads 1 in the PBA. Unmasking makes it
 * deliverable exactly once, and the Pending bit clears. */
Test(msix, masked_vector_pends_then_delivers_once)
{
    struct msix m;
    struct msix_message msg = { 0 };
    init_enabled(&m);
    program(&m, 1, 0xfee00000ull, 0x31);
    cr_assert_eq(msix_table_write(&m, entry(1, MSIX_ENTRY_CTRL), 4, 1), VS_REASON_NONE);

    cr_assert_not(msix_raise(&m, 1, &msg));
    cr_assert_not(msix_raise(&m, 1, &msg), "a second raise is absorbed by the same bit");
    cr_assert_eq(m.stats.pended, 2);
    cr_assert_eq(m.stats.sent, 0);
    cr_assert_eq(msix_pba_read(&m, 0, 4), 1u << 1);
    cr_assert_eq(msix_pba_read(&m, 0, 8), 1u << 1);
    cr_assert_not(msix_take_pending(&m, &msg), "still masked");

    cr_assert_eq(msix_table_write(&m, entry(1, MSIX_ENTRY_CTRL), 4, 0), VS_REASON_NONE);
    cr_assert(msix_take_pending(&m, &msg));
    cr_assert_eq(msg.vector, 1);
    cr_assert_eq(msg.addr, 0xfee00000ull);
    cr_assert_eq(msg.data, 0x31);
    cr_assert_eq(msix_pba_read(&m, 0, 4), 0);
    cr_assert_eq(m.stats.sent, 1);
    cr_assert_not(msix_take_pending(&m, &msg), "delivered once");
    cr_assert_eq(m.stats.sent, 1);
}

/* PCI Local Bus 3.0 §6.8.3.4 Function Masking: with the function mask set, every
 * vector behaves as masked; clearing it delivers pending messages, lowest first. */
Test(msix, function_mask_pends_then_delivers)
{
    struct msix m;
    struct msix_message msg = { 0 };
    init_enabled(&m);
    program(&m, 0, 0xfee00000ull, 0x10);
    program(&m, 3, 0xfee00004ull, 0x13);
    msix_set_control(&m, true, true);

    cr_assert_not(msix_raise(&m, 3, &msg));
    cr_assert_not(msix_raise(&m, 0, &msg));
    cr_assert_eq(msix_pba_read(&m, 0, 4), (1u << 0) | (1u << 3));
    cr_assert_not(msix_take_pending(&m, &msg), "function still masked");

    msix_set_control(&m, true, false);
    cr_assert(msix_take_pending(&m, &msg));
    cr_assert_eq(msg.vector, 0);
    cr_assert_eq(msg.data, 0x10);
    cr_assert(msix_take_pending(&m, &msg));
    cr_assert_eq(msg.vector, 3);
    cr_assert_eq(msg.addr, 0xfee00004ull);
    cr_assert_eq(msg.data, 0x13);
    cr_assert_not(msix_take_pending(&m, &msg));
    cr_assert_eq(msix_pba_read(&m, 0, 4), 0);
    cr_assert_eq(m.stats.pended, 2);
    cr_assert_eq(m.stats.sent, 2);
}

/* PCI Local Bus 3.0 §6.8.3.4: a pending vector whose own Mask bit is still set stays
 * pending when the function mask is lifted; other vectors are delivered. */
Test(msix, per_vector_mask_outlasts_function_mask)
{
    struct msix m;
    struct msix_message msg = { 0 };
    init_enabled(&m);
    program(&m, 2, 0xfee00000ull, 0x22);
    msix_set_control(&m, true, true);
    cr_assert_not(msix_raise(&m, 1, &msg)); /* vector 1 is still reset-masked */
    cr_assert_not(msix_raise(&m, 2, &msg));
    msix_set_control(&m, true, false);
    cr_assert(msix_take_pending(&m, &msg));
    cr_assert_eq(msg.vector, 2);
    cr_assert_not(msix_take_pending(&m, &msg));
    cr_assert_eq(msix_pba_read(&m, 0, 4), 1u << 1);
}

/* PCI Local Bus 3.0 §6.8.2.3 Message Control (MSI-X Enable): with MSI-X disabled
 * the function sends no MSI-X message; the raise is dropped, not pended. */
Test(msix, disabled_drops)
{
    struct msix m;
    struct msix_message msg = { 0 };
    init_enabled(&m);
    program(&m, 0, 0xfee00000ull, 1);
    msix_set_control(&m, false, false);
    cr_assert_not(msix_raise(&m, 0, &msg));
    cr_assert_eq(m.stats.dropped, 1);
    cr_assert_eq(m.stats.raised, 0);
    cr_assert_eq(m.stats.pended, 0);
    cr_assert_eq(msix_pba_read(&m, 0, 4), 0);

    /* A message pended while enabled is not taken while disabled. */
    msix_set_control(&m, true, true);
    cr_assert_not(msix_raise(&m, 0, &msg));
    msix_set_control(&m, false, false);
    cr_assert_not(msix_take_pending(&m, &msg));
    msix_set_control(&m, true, false);
    cr_assert(msix_take_pending(&m, &msg));
}

/* virtio "MSI-X Vector Configuration": NO_VECTOR (0xffff) means the event has no
 * vector; the device sends nothing. */
Test(msix, no_vector_drops)
{
    struct msix m;
    struct msix_message msg = { 0 };
    init_enabled(&m);
    cr_assert_not(msix_raise(&m, VIRTIO_MSI_NO_VECTOR, &msg));
    cr_assert_eq(m.stats.dropped, 1);
    cr_assert_eq(m.stats.raised, 0);
    cr_assert_eq(msix_pba_read(&m, 0, 8), 0);
}

/* virtio "MSI-X Vector Configuration" / PCI Local Bus 3.0 §6.8.2.3 Table Size: a
 * vector at or beyond the table size names no entry; the raise is dropped. */
Test(msix, out_of_range_vector_drops)
{
    struct msix m;
    struct msix_message msg = { 0 };
    init_enabled(&m);
    cr_assert_not(msix_raise(&m, NVEC, &msg));
    cr_assert_not(msix_raise(&m, 0x7ff, &msg));
    cr_assert_not(msix_raise(&m, 0xfffe, &msg));
    cr_assert_eq(m.stats.dropped, 3);
    cr_assert_eq(m.stats.raised, 0);
    cr_assert_eq(msix_pba_read(&m, 0, 8), 0);
}

/* PCI Local Bus 3.0 §6.8.2.9 Vector Control: bits 31:1 are reserved; a write setting
 * any of them is a driver error, reported and not stored. */
Test(msix, reserved_vector_control_bits)
{
    struct msix m;
    init_enabled(&m);
    cr_assert_eq(msix_table_write(&m, entry(1, MSIX_ENTRY_CTRL), 4, 0x2),
                 VS_REASON_MSIX_RESERVED_BITS);
    cr_assert_eq(msix_table_read(&m, entry(1, MSIX_ENTRY_CTRL), 4), 1, "unchanged");
    cr_assert_eq(msix_table_write(&m, entry(1, MSIX_ENTRY_CTRL), 4, 0x80000000u),
                 VS_REASON_MSIX_RESERVED_BITS);
    cr_assert_eq(msix_table_write(&m, entry(1, MSIX_ENTRY_CTRL), 4, 0xfffffffeu),
                 VS_REASON_MSIX_RESERVED_BITS);
    cr_assert_eq(msix_table_read(&m, entry(1, MSIX_ENTRY_CTRL), 4), 1);

    /* Qword write of data + control: the data dword is stored, control is not. */
    cr_assert_eq(msix_table_write(&m, entry(1, MSIX_ENTRY_DATA), 8, 0x0000000400001234ull),
                 VS_REASON_MSIX_RESERVED_BITS);
    cr_assert_eq(msix_table_read(&m, entry(1, MSIX_ENTRY_DATA), 4), 0x1234);
    cr_assert_eq(msix_table_read(&m, entry(1, MSIX_ENTRY_CTRL), 4), 1);

    /* Only bit 0 set or clear is fine. */
    cr_assert_eq(msix_table_write(&m, entry(1, MSIX_ENTRY_CTRL), 4, 0), VS_REASON_NONE);
    cr_assert_eq(msix_table_read(&m, entry(1, MSIX_ENTRY_CTRL), 4), 0);
}

/* PCI Local Bus 3.0 §6.8.2: software accesses the table only with aligned dword or
 * qword accesses inside it; anything else reads 0 and is ignored on write. */
Test(msix, out_of_range_and_bad_accesses)
{
    struct msix m;
    uint32_t end = NVEC * MSIX_ENTRY_SIZE;
    init_enabled(&m);
    program(&m, NVEC - 1, 0xfee00000ull, 0x77);

    cr_assert_eq(msix_table_read(&m, end, 4), 0);
    cr_assert_eq(msix_table_read(&m, end, 8), 0);
    cr_assert_eq(msix_table_read(&m, UINT32_MAX - 3, 4), 0);
    cr_assert_eq(msix_table_read(&m, entry(NVEC - 1, MSIX_ENTRY_DATA), 8), 0x77, "last qword");
    cr_assert_eq(msix_table_read(&m, entry(0, MSIX_ENTRY_DATA) + 1, 4), 0, "misaligned");
    cr_assert_eq(msix_table_read(&m, entry(0, MSIX_ENTRY_ADDR_HI), 8), 0, "qword not 8-aligned");
    cr_assert_eq(msix_table_read(&m, entry(0, MSIX_ENTRY_CTRL), 2), 0, "2-byte access");
    cr_assert_eq(msix_table_read(&m, entry(0, MSIX_ENTRY_CTRL), 1), 0, "1-byte access");

    cr_assert_eq(msix_table_write(&m, end, 4, 0xdeadbeef), VS_REASON_NONE);
    cr_assert_eq(msix_table_write(&m, UINT32_MAX - 7, 8, ~0ull), VS_REASON_NONE);
    cr_assert_eq(msix_table_write(&m, entry(0, MSIX_ENTRY_DATA) + 2, 4, 0xdead), VS_REASON_NONE);
    cr_assert_eq(msix_table_write(&m, entry(0, MSIX_ENTRY_ADDR_HI), 8, ~0ull), VS_REASON_NONE);
    cr_assert_eq(msix_table_write(&m, entry(0, MSIX_ENTRY_CTRL), 2, 0), VS_REASON_NONE);
    cr_assert_eq(msix_table_read(&m, entry(0, MSIX_ENTRY_DATA), 4), 0);
    cr_assert_eq(msix_table_read(&m, entry(0, MSIX_ENTRY_ADDR_LO), 8), 0);
    cr_assert_eq(msix_table_read(&m, entry(0, MSIX_ENTRY_CTRL), 4), 1, "still masked");
    /* Entries beyond nvec exist in the struct but are not reachable. */
    cr_assert_eq(m.table[NVEC][MSIX_ENTRY_DATA / 4], 0);
}

/* PCI Local Bus 3.0 §6.8.2: qword accesses cover two dwords of one entry (address
 * pair, or data + vector control), little-endian. */
Test(msix, qword_accesses)
{
    struct msix m;
    init_enabled(&m);
    cr_assert_eq(msix_table_write(&m, entry(2, MSIX_ENTRY_ADDR_LO), 8, 0x12345678fee0100cull),
                 VS_REASON_NONE);
    cr_assert_eq(msix_table_read(&m, entry(2, MSIX_ENTRY_ADDR_LO), 4), 0xfee0100cu);
    cr_assert_eq(msix_table_read(&m, entry(2, MSIX_ENTRY_ADDR_HI), 4), 0x12345678u);
    cr_assert_eq(msix_table_read(&m, entry(2, MSIX_ENTRY_ADDR_LO), 8), 0x12345678fee0100cull);

    cr_assert_eq(msix_table_write(&m, entry(2, MSIX_ENTRY_DATA), 8, 0x00000000000000abull),
                 VS_REASON_NONE);
    cr_assert_eq(msix_table_read(&m, entry(2, MSIX_ENTRY_DATA), 8), 0xab, "data ab, unmasked");
    cr_assert_eq(msix_table_write(&m, entry(2, MSIX_ENTRY_DATA), 8, 0x00000001000000cdull),
                 VS_REASON_NONE);
    cr_assert_eq(msix_table_read(&m, entry(2, MSIX_ENTRY_DATA), 8), 0x00000001000000cdull);
}

/* PCI Local Bus 3.0 §6.8.2.6 Message Address: bits 1:0 keep the message dword
 * aligned; this function hardwires them to 0. */
Test(msix, message_address_low_bits_read_zero)
{
    struct msix m;
    struct msix_message msg = { 0 };
    init_enabled(&m);
    program(&m, 0, 0xfee00003ull, 5);
    cr_assert_eq(msix_table_read(&m, entry(0, MSIX_ENTRY_ADDR_LO), 4), 0xfee00000u);
    cr_assert(msix_raise(&m, 0, &msg));
    cr_assert_eq(msg.addr, 0xfee00000ull);
}

/* PCI Local Bus 3.0 §6.8.2.10 Pending Bits: one bit per vector, qword-packed;
 * dword reads see their half; the PBA is read-only and reads 0 outside its size. */
Test(msix, pba_layout)
{
    struct msix m;
    struct msix_message msg = { 0 };
    msix_init(&m, 40);
    msix_set_control(&m, true, false);
    cr_assert_not(msix_raise(&m, 33, &msg));
    cr_assert_not(msix_raise(&m, 2, &msg));
    cr_assert_eq(msix_pba_read(&m, 0, 4), 1u << 2);
    cr_assert_eq(msix_pba_read(&m, 4, 4), 1u << 1);
    cr_assert_eq(msix_pba_read(&m, 0, 8), (1ull << 33) | (1ull << 2));
    cr_assert_eq(msix_pba_read(&m, 8, 4), 0, "beyond the PBA");
    cr_assert_eq(msix_pba_read(&m, 4, 8), 0, "qword not 8-aligned");
    cr_assert_eq(msix_pba_read(&m, 2, 4), 0, "misaligned");
    cr_assert_eq(msix_pba_read(&m, 0, 2), 0, "2-byte access");
    cr_assert_eq(msix_pba_read(&m, UINT32_MAX - 3, 4), 0);
}
