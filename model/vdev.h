/* vdev.h -- the virtio-net PCI function: the PCI transport (pci_transport.h) with the
 * virtio-net personality (virtio_net.h) plugged in. Validates the configuration's
 * parameters and builds the two parts; everything after that is pt_* on d.tp (the
 * function as the bus sees it: registers, queues, DMA, interrupts) or vnet_* on d.net
 * (what makes it a network device).
 */
#ifndef VIOSIM_VDEV_H
#define VIOSIM_VDEV_H

#include <stdbool.h>
#include <stdint.h>

#include "pci_transport.h"
#include "virtio_net.h"

struct vdev_params {
    uint8_t revision_id;
    uint16_t subsystem_vendor_id;
    uint16_t subsystem_id;
    uint16_t queue_size_max;          /* entries, 1..32768 */
    uint32_t notify_off_multiplier;   /* bytes; 0 or a power of two that is a multiple of 4 */
    vs_features withdraw;             /* offered features removed (quirk) */
    uint16_t queue_pairs;             /* 1..VNET_PAIRS_MAX (0 counts as 1): RX/TX queue pairs;
                                       * more than one offers VIRTIO_NET_F_MQ */
    uint8_t mac[6];
    uint32_t max_frame_bytes;         /* largest frame accepted on TX, without virtio-net header */
    uint32_t rx_fifo_frames;          /* frames the device can hold waiting for RX buffers */
    enum vdev_backend backend;
    struct net_peer responder;        /* VDEV_BACKEND_RESPONDER: the peer's MAC and IPv4 */
    uint32_t used_batch_max;          /* buffers per used-ring publication, >= 1 */
    bool mrg_rxbuf;                   /* offer VIRTIO_NET_F_MRG_RXBUF */
    bool rss;                         /* offer VIRTIO_NET_F_RSS */
    /* viosim-specific, NON-STANDARD: offer VIOSIM_NET_F_DEVMEM_EVENT and its window
     * (docs/event-suppression.md). false = a standard device, byte for byte. */
    bool devmem_event;
    /* With devmem_event: also offer VIOSIM_NET_F_DEVMEM_EVENT_RECHECK (re-decide on slot
     * writes). */
    bool devmem_event_recheck;
    uint32_t queue_engines;           /* buffers of one queue in flight at once, 1..PT_ENGINES_MAX
                                       * (0 counts as 1): the per-slot scratch vdev_init allocates */
    uint16_t fetch_batch;             /* descriptors per fetch read at most, 1..VQ_FETCH_BATCH_MAX (0: 1) */
    enum vq_fetch_source fetch_source; /* where the fetch count comes from (vq.h) */
    bool bars_32bit;                  /* 32-bit memory BARs (BAR0, BAR1) instead of 64-bit */
    bool no_msix;                     /* present no MSI-X capability: legacy INTx only */
};

/* Most buffers of one queue in flight at once (device.queue_engines). */
#define VDEV_ENGINES_MAX PT_ENGINES_MAX

struct vdev {
    struct vdev_params p;
    struct pt tp;
    struct vnet net;
};

/* Validate params (returns a static message or NULL when fine), then build the
 * function. vdev_init allocates the FIFO and scratch; vdev_fini frees them.
 * Returns false if allocation failed. */
const char *vdev_check_params(const struct vdev_params *p);
bool vdev_init(struct vdev *d, const struct vdev_params *p);
void vdev_fini(struct vdev *d);

#endif
