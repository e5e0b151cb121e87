/* pt_rig.h -- register-level helpers for any virtio PCI function built on the
 * transport (model/pci_transport.h), whatever its device type (header-only): find a
 * vendor capability, map the BARs, read and write common configuration fields, find a
 * queue's notification address. Like vdev_rig.h they never assert: failures come back
 * as return values, so fuzz targets can use them on hostile input. */
#ifndef VIOSIM_TESTS_PT_RIG_H
#define VIOSIM_TESTS_PT_RIG_H

#include <stdbool.h>
#include <stdint.h>

#include "pci_transport.h"

#define PT_RIG_BAR0 0xC0000000ull
#define PT_RIG_BAR2 0xC0100000ull

/* Configuration-space offset of the first vendor capability of cfg_type, or 0. */
static inline uint8_t pt_rig_find_vcap(struct pt *tp, uint8_t cfg_type)
{
    uint8_t off = (uint8_t)pt_cfg_read(tp, PCI_CAPABILITY_LIST, 1);
    for (int n = 0; off && n < 48; n++) {
        if (pt_cfg_read(tp, off, 1) == PCI_CAP_ID_VNDR && pt_cfg_read(tp, off + 3u, 1) == cfg_type)
            return off;
        off = (uint8_t)pt_cfg_read(tp, off + 1u, 1);
    }
    return 0;
}

/* Assign BAR0 and BAR2 and enable memory decoding and bus mastering. */
static inline void pt_rig_map_bars(struct pt *tp)
{
    pt_cfg_write(tp, PCI_BAR0, 4, (uint32_t)PT_RIG_BAR0);
    pt_cfg_write(tp, PCI_BAR0 + 4, 4, 0);
    pt_cfg_write(tp, PCI_BAR0 + 8, 4, (uint32_t)PT_RIG_BAR2);
    pt_cfg_write(tp, PCI_BAR0 + 12, 4, 0);
    pt_cfg_write(tp, PCI_COMMAND, 2, PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK);
}

/* Bus address of a common-configuration field (after pt_rig_map_bars). */
static inline uint64_t pt_rig_common(struct pt *tp, uint32_t field)
{
    uint8_t cap = pt_rig_find_vcap(tp, VIRTIO_PCI_CAP_COMMON_CFG);
    return PT_RIG_BAR0 + pt_cfg_read(tp, cap + 8u, 4) + field;
}

static inline bool pt_rig_wr(struct pt *tp, uint32_t field, unsigned size, uint64_t v)
{
    uint16_t kicked;
    return pt_mmio_write(tp, pt_rig_common(tp, field), size, v, &kicked);
}

static inline uint64_t pt_rig_rd(struct pt *tp, uint32_t field, unsigned size)
{
    uint64_t v = 0;
    pt_mmio_read(tp, pt_rig_common(tp, field), size, &v);
    return v;
}

/* Bus address of queue q's notification register. */
static inline uint64_t pt_rig_notify_addr(struct pt *tp, uint16_t q)
{
    uint8_t cap = pt_rig_find_vcap(tp, VIRTIO_PCI_CAP_NOTIFY_CFG);
    uint32_t mult = pt_cfg_read(tp, cap + 16u, 4);
    pt_rig_wr(tp, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
    uint32_t off = (uint32_t)pt_rig_rd(tp, VIRTIO_PCI_COMMON_Q_NOFF, 2);
    return PT_RIG_BAR0 + pt_cfg_read(tp, cap + 8u, 4) + (uint64_t)off * mult;
}

#endif
