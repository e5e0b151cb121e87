/* fuzz_registers.c -- sequences of configuration-space and BAR accesses, interleaved
 * with the device's own work, from a driver that may do anything in any order: skip
 * status steps, program queues after DRIVER_OK, write read-only fields, reprogram or
 * disable BARs and bus mastering mid-run, use the PCI-cfg access window, write MSI-X
 * entries with reserved bits, reset queues while buffers are in flight.
 *
 * The harness only assigns the BARs first (the input may move or disable them later);
 * guest memory holds zeros plus the input's tail, so rings the input enables read
 * whatever is there. After every access the checks of fuzz_common.h run.
 *
 * Input: 8-byte records {op, size, offset (le16), value (le32)} until the input ends or
 * 512 records. The input's length picks the function's presentation (issue 16): length
 * mod 8 = 6 no MSI-X capability, 7 also 32-bit BARs, else the default; with either, the
 * INTx pin is checked against the Status and Command registers after every access.
 */
#include "fuzz_common.h"

#define GUEST_BASE  0x100000ull
#define GUEST_BYTES (VNET_QUEUES * VDEV_RIG_QUEUE_WINDOW + 0x10000u)
#define RECORDS_MAX 512

static unsigned access_size(uint8_t code)
{
    static const unsigned sizes[8] = {1, 2, 4, 8, 1, 2, 4, 3}; /* 3: never valid */
    return sizes[code & 7u];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    static struct vdev_rig r;
    static uint8_t guest[GUEST_BYTES];
    memset(guest, 0, sizeof guest);
    struct vdev_params params = vdev_rig_default_params();
    params.no_msix = size % 8u >= 6u;
    params.bars_32bit = size % 8u == 7u;
    if (!vdev_rig_init_with(&r, &params, guest, GUEST_BASE, GUEST_BYTES))
        return 0;
    const size_t tail = size > 2048 ? 2048 : size;
    memcpy(fake_guest_ptr(&r.g, GUEST_BASE, tail), data + size - tail, tail);
    pt_rig_map_bars(&r.dev.tp);

    for (unsigned i = 0; i < RECORDS_MAX && in.left > 0; i++) {
        const uint8_t op = fuzz_u8(&in);
        const unsigned sz = access_size(fuzz_u8(&in));
        const uint16_t off = fuzz_u16(&in);
        const uint32_t value = fuzz_u32(&in);
        uint64_t v64 = value;
        uint16_t kicked;
        struct pt_work w;
        memset(&w, 0, sizeof w);
        switch (op % 12u) {
        case 0:
            (void)pt_cfg_read(&r.dev.tp, off & 0xFFFu, sz > 4 ? 4 : sz);
            break;
        case 1:
            pt_cfg_write(&r.dev.tp, off & 0xFFFu, sz > 4 ? 4 : sz, value);
            break;
        case 2: /* BAR0: the virtio structures */
            pt_mmio_read(&r.dev.tp, VDEV_RIG_BAR0 + (off & 0x3FFFu), sz, &v64);
            break;
        case 3:
            pt_mmio_write(&r.dev.tp, VDEV_RIG_BAR0 + (off & 0x3FFFu), sz, v64, &kicked);
            break;
        case 4: /* BAR2: MSI-X table and PBA */
            pt_mmio_read(&r.dev.tp, VDEV_RIG_BAR2 + (off & 0xFFFu), sz, &v64);
            break;
        case 5:
            pt_mmio_write(&r.dev.tp, VDEV_RIG_BAR2 + (off & 0xFFFu), sz, v64, &kicked);
            break;
        case 6: /* anywhere at all */
            pt_mmio_write(&r.dev.tp, ((uint64_t)off << 32) | value, sz, v64, &kicked);
            break;
        case 7:
            fuzz_check_step(&r.dev, vnet_tx_step(&r.dev.net, &r.ops, &w));
            break;
        case 8:
            fuzz_check_step(&r.dev, vnet_rx_step(&r.dev.net, &r.ops, &w));
            break;
        case 9:
            fuzz_check_step(&r.dev, vnet_ctrl_step(&r.dev.net, &r.ops, &w));
            break;
        case 10:
            fuzz_check_step(&r.dev, pt_complete(&r.dev.tp, off % VNET_QUEUES, &r.ops));
            break;
        case 11:
            fuzz_check_step(&r.dev, pt_arm_notifications(&r.dev.tp, off % VNET_QUEUES, &r.ops));
            break;
        }
        fuzz_check_error_state(&r.dev);
        FUZZ_CHECK(r.dev.tp.outbox_count <= PT_MSI_OUTBOX, "MSI-X outbox overflow");
        /* INTx ("ISR status capability"; PCI Local Bus 3.0 §6.2.2-3): Status bit 3 is
         * the OR of the ISR bits while MSI-X is not enabled, the pin follows it unless
         * Interrupt Disable is set. */
        const uint32_t st = pci_cfg_read(&r.dev.tp.pci, PCI_STATUS, 2);
        const uint32_t cmd = pci_cfg_read(&r.dev.tp.pci, PCI_COMMAND, 2);
        const bool pending = !r.dev.tp.msix.enabled && r.dev.tp.vpci.isr != 0;
        FUZZ_CHECK(((st & PCI_STATUS_INTERRUPT_MASK) != 0) == pending, "Interrupt Status %#x, ISR %#x",
                   st, r.dev.tp.vpci.isr);
        FUZZ_CHECK(pt_intx_asserted(&r.dev.tp) == (pending && !(cmd & PCI_COMMAND_INTX_DISABLE_MASK)),
                   "INTx pin disagrees with Status %#x / Command %#x", st, cmd);
        FUZZ_CHECK(!params.no_msix || r.dev.tp.outbox_count == 0, "an MSI-X message without MSI-X");
        struct msix_message m;
        while (pt_take_msi(&r.dev.tp, &m))
            ;
    }
    vdev_rig_fini(&r);
    return 0;
}
