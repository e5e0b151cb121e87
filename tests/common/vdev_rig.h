/* vdev_rig.h -- a virtio-net function on a fake guest, driven through its registers
 * (header-only), for the fuzz targets and any test that needs a device past DRIVER_OK.
 *
 * Unlike the Criterion tests' helpers it never asserts: every function reports failure
 * by its return value, so a fuzz target can use it on hostile input. The register
 * sequence is the spec's ("Device Initialization"): reset, ACKNOWLEDGE, DRIVER, the
 * feature words, FEATURES_OK and its re-read, per-queue set-up, DRIVER_OK.
 *
 *     struct vdev_rig r;
 *     vdev_rig_init(&r, NULL, 0x100000, 1 << 20);       // default params
 *     vdev_rig_bring_up(&r, &features, 3, 64);           // RX, TX, ctrl: 64 entries
 *     vnet_tx_step(&r.dev.net, &r.ops, &w);
 *     vdev_rig_fini(&r);
 */
#ifndef VIOSIM_TESTS_VDEV_RIG_H
#define VIOSIM_TESTS_VDEV_RIG_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/fake_guest.h"
#include "common/pt_rig.h"
#include "vdev.h"

#define VDEV_RIG_BAR0 PT_RIG_BAR0
#define VDEV_RIG_BAR2 PT_RIG_BAR2
/* Each queue's areas: a 64 KiB window per queue from the start of guest memory;
 * descriptors at +0, driver area at +0x8000, device area at +0xC000 (large enough for
 * 1024-entry split rings). Buffers live above VDEV_RIG_BUFFERS. */
#define VDEV_RIG_QUEUE_WINDOW 0x10000ull
#define VDEV_RIG_BUFFERS(r) ((r)->g.base + VNET_QUEUES * VDEV_RIG_QUEUE_WINDOW)

struct vdev_rig {
    struct vdev dev;
    struct fake_guest g;
    struct vs_guest_ops ops;
};

static inline struct vdev_params vdev_rig_default_params(void)
{
    struct vdev_params p;
    memset(&p, 0, sizeof p);
    p.revision_id = 1;
    p.subsystem_vendor_id = 0x1af4;
    p.subsystem_id = 0x1100;
    p.queue_size_max = 1024;
    p.notify_off_multiplier = 4;
    const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
    memcpy(p.mac, mac, sizeof mac);
    p.max_frame_bytes = 1514;
    p.rx_fifo_frames = 8;
    p.backend = VDEV_BACKEND_LOOPBACK;
    p.used_batch_max = 1;
    return p;
}

/* params NULL: vdev_rig_default_params(). Guest memory must hold the queue windows.
 * mem NULL: allocated (zeroed) and freed by vdev_rig_fini; otherwise the caller's
 * storage, used as it is (fuzz targets reuse one buffer to stay fast). */
static inline bool vdev_rig_init_with(struct vdev_rig *r, const struct vdev_params *params,
                                      void *mem, uint64_t guest_base, uint64_t guest_bytes)
{
    struct vdev_params p = params ? *params : vdev_rig_default_params();
    memset(r, 0, sizeof *r);
    if (!vdev_init(&r->dev, &p))
        return false;
    if (mem)
        fake_guest_init_with(&r->g, mem, guest_base, guest_bytes);
    else
        fake_guest_init(&r->g, guest_base, guest_bytes);
    r->ops = fake_guest_ops(&r->g);
    return true;
}

static inline bool vdev_rig_init(struct vdev_rig *r, const struct vdev_params *params,
                                 uint64_t guest_base, uint64_t guest_bytes)
{
    return vdev_rig_init_with(r, params, NULL, guest_base, guest_bytes);
}

static inline void vdev_rig_fini(struct vdev_rig *r)
{
    vdev_fini(&r->dev);
    fake_guest_free(&r->g);
}

static inline uint64_t vdev_rig_desc(const struct vdev_rig *r, unsigned q)
{
    return r->g.base + q * VDEV_RIG_QUEUE_WINDOW;
}
static inline uint64_t vdev_rig_driver_area(const struct vdev_rig *r, unsigned q)
{
    return vdev_rig_desc(r, q) + 0x8000u;
}
static inline uint64_t vdev_rig_device_area(const struct vdev_rig *r, unsigned q)
{
    return vdev_rig_desc(r, q) + 0xC000u;
}

/* The initialisation sequence with `features`, then the `count` queues listed, each of
 * `size` entries (MSI-X vector 1 + q), and DRIVER_OK. False if the device refused
 * anything. */
static inline bool vdev_rig_bring_up_queues(struct vdev_rig *r, const vs_features *features,
                                            const uint16_t *queues, unsigned count, uint16_t size)
{
    struct vdev *d = &r->dev;
    pt_rig_map_bars(&d->tp);
    const uint8_t ack_drv = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    if (pt_rig_rd(&d->tp, VIRTIO_PCI_COMMON_STATUS, 1) != 0) /* the reset has completed */
        return false;
    pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
    pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_STATUS, 1, ack_drv);
    for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++) {
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_GFSELECT, 4, w);
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_GF, 4, features->w[w]);
    }
    pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_STATUS, 1, ack_drv | VIRTIO_STATUS_FEATURES_OK);
    if (!(pt_rig_rd(&d->tp, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK))
        return false;
    pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_MSIX, 2, 0);
    for (unsigned i = 0; i < count; i++) {
        const uint16_t q = queues[i];
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_Q_SIZE, 2, size);
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)vdev_rig_desc(r, q));
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_Q_DESCHI, 4, (uint32_t)(vdev_rig_desc(r, q) >> 32));
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)vdev_rig_driver_area(r, q));
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, (uint32_t)(vdev_rig_driver_area(r, q) >> 32));
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)vdev_rig_device_area(r, q));
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_Q_USEDHI, 4, (uint32_t)(vdev_rig_device_area(r, q) >> 32));
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_Q_MSIX, 2, 1 + q);
        pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    }
    pt_rig_wr(&d->tp, VIRTIO_PCI_COMMON_STATUS, 1,
                ack_drv | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    return (pt_rig_rd(&d->tp, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_DRIVER_OK) != 0 &&
           d->tp.error == VS_REASON_NONE;
}

/* The same with queues 0..nqueues-1. */
static inline bool vdev_rig_bring_up(struct vdev_rig *r, const vs_features *features,
                                     unsigned nqueues, uint16_t size)
{
    uint16_t queues[VNET_QUEUES_MAX];
    for (unsigned q = 0; q < nqueues && q < VNET_QUEUES_MAX; q++)
        queues[q] = (uint16_t)q;
    return vdev_rig_bring_up_queues(r, features, queues, nqueues < VNET_QUEUES_MAX ? nqueues : VNET_QUEUES_MAX, size);
}

#endif
