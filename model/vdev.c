/* vdev.c -- the virtio-net PCI function composed: parameters checked, the
 * personality set up, the transport built around it. */
#include "vdev.h"

#include <string.h>

const char *vdev_check_params(const struct vdev_params *p)
{
    if (p->queue_size_max == 0 || p->queue_size_max > PVIRTQ_SIZE_MAX)
        return "queue_size_max must be 1..32768";
    if (p->notify_off_multiplier != 0 &&
        ((p->notify_off_multiplier & (p->notify_off_multiplier - 1)) != 0 ||
         p->notify_off_multiplier % 4 != 0))
        return "notify_off_multiplier must be 0 or a power of two that is a multiple of 4";
    if (p->notify_off_multiplier > 4096)
        return "notify_off_multiplier must be at most 4096";
    if (p->queue_pairs > VNET_PAIRS_MAX)
        return "queue_pairs must be 1..256";
    if (p->max_frame_bytes < 14 || p->max_frame_bytes > 65535)
        return "max_frame_bytes must be 14..65535";
    if (p->backend == VDEV_BACKEND_RESPONDER && p->max_frame_bytes < NET_ANSWER_MIN_FRAME)
        return "the responder backend needs max_frame_bytes of at least 60 (its replies' size)";
    if (p->backend > VDEV_BACKEND_RESPONDER)
        return "backend is not loopback, sink or responder";
    if (p->rx_fifo_frames == 0 || p->rx_fifo_frames > 65536)
        return "rx_fifo_frames must be 1..65536";
    if (p->used_batch_max == 0)
        return "used_batch_max must be at least 1";
    if (p->queue_engines > PT_ENGINES_MAX)
        return "queue_engines must be 1..32";
    if (p->fetch_batch > VQ_FETCH_BATCH_MAX)
        return "fetch_batch must be 1..64";
    if (p->fetch_source > VQ_FETCH_READ_AHEAD)
        return "fetch_source must be one, hint or read_ahead";
    if (p->revision_id == 0)
        return "revision_id must be at least 1 (modern virtio devices)";
    return NULL;
}

bool vdev_init(struct vdev *d, const struct vdev_params *p)
{
    memset(d, 0, sizeof *d);
    d->p = *p;
    const uint32_t engines = p->queue_engines == 0 ? 1u : p->queue_engines;

    struct vnet_params np;
    memset(&np, 0, sizeof np);
    np.queue_pairs = p->queue_pairs;
    memcpy(np.mac, p->mac, sizeof np.mac);
    np.max_frame_bytes = p->max_frame_bytes;
    np.rx_fifo_frames = p->rx_fifo_frames;
    np.backend = p->backend;
    np.responder = p->responder;
    np.mrg_rxbuf = p->mrg_rxbuf;
    np.rss = p->rss;
    if (!vnet_init(&d->net, &np, &d->tp, engines))
        return false;

    struct pt_params tp;
    memset(&tp, 0, sizeof tp);
    tp.device_id = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + VIRTIO_ID_NET);
    tp.class_code = PCI_CLASS_NETWORK_ETHERNET;
    tp.revision_id = p->revision_id;
    tp.subsystem_vendor_id = p->subsystem_vendor_id;
    tp.subsystem_id = p->subsystem_id;
    tp.queue_size_max = p->queue_size_max;
    tp.notify_off_multiplier = p->notify_off_multiplier;
    tp.num_queues = d->net.num_queues;
    tp.device_features = vnet_features(&np);
    tp.withdraw = p->withdraw;
    tp.device_cfg_bytes = sizeof(struct virtio_net_config);
    tp.used_batch_max = p->used_batch_max;
    tp.devmem_event = p->devmem_event;
    tp.devmem_event_recheck = p->devmem_event_recheck;
    tp.engines = engines;
    tp.fetch_batch = p->fetch_batch;
    tp.fetch_source = p->fetch_source;
    tp.bars_32bit = p->bars_32bit;
    tp.no_msix = p->no_msix;
    const struct pt_role *roles[VNET_QUEUES_MAX];
    for (uint16_t q = 0; q < tp.num_queues; q++)
        roles[q] = vnet_queue_role(q, tp.num_queues);
    if (!pt_init(&d->tp, &tp, &vnet_device, &d->net, roles)) {
        vnet_fini(&d->net);
        return false;
    }
    return true;
}

void vdev_fini(struct vdev *d)
{
    pt_fini(&d->tp);
    vnet_fini(&d->net);
}
