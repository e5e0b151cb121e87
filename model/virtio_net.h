/* virtio_net.h -- the virtio-net personality ("Network Device"), on the PCI transport
 * (pci_transport.h).
 *
 * Owns what makes the function a network device: the queue roles (receive, transmit,
 * control), the frames waiting for receive buffers (an RX FIFO per queue pair), the
 * backend that fills them and where each frame goes (automatic steering, or RSS through
 * model/rss.h), the control queue's commands, notification coalescing (the window and
 * count rules are model/coalesce.c's; this file keeps the parameters per queue and the
 * commands that set them), the device configuration (struct virtio_net_config), the
 * feature dependencies and the net statistics. It reaches guest memory, interrupts and
 * the NEEDS_RESET path only through the transport.
 */
#ifndef VIOSIM_VIRTIO_NET_H
#define VIOSIM_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "coalesce.h"
#include "net_backend.h"
#include "pci_transport.h"
#include "rss.h"

/* Queue numbering ("Virtqueues"): receiveqN is 2(N-1), transmitqN is 2(N-1)+1, the
 * control queue at 2N, where N is max_virtqueue_pairs when VIRTIO_NET_F_MQ or
 * VIRTIO_NET_F_RSS is negotiated and 1 otherwise (so it is fixed at FEATURES_OK and kept
 * through a reset until the next; before the first, the device numbers its queues as if
 * N were max_virtqueue_pairs). With one queue pair: */
#define VNET_QUEUE_RX   0u
#define VNET_QUEUE_TX   1u
#define VNET_QUEUE_CTRL 2u
#define VNET_QUEUES     3u
/* Queue pairs at most (device.queue_pairs_count), and the queues they make. */
#define VNET_PAIRS_MAX  256u
#define VNET_QUEUES_MAX (2u * VNET_PAIRS_MAX + 1u)

/* Queues of a function with `pairs` queue pairs (0 counts as 1), control included. */
static inline uint16_t vnet_queues(uint16_t pairs)
{
    return (uint16_t)(2u * (pairs == 0 ? 1u : pairs) + 1u);
}

/* The role of queue q of a virtio-net function with n queues before feature
 * negotiation (2k RX, 2k+1 TX, the control queue last when n is odd); vnet_role gives
 * it with the features negotiated. */
const struct pt_role *vnet_queue_role(uint16_t q, uint16_t n);

/* Cross-queue wake-ups of the roles (pt_role.waits_on / signals); the queues given
 * work are marked with pt_wake: the receive queue whose pair's FIFO got a frame, the
 * transmit queue whose pair's FIFO got space. */
#define VNET_SIGNAL_FRAMES 1u  /* TX put frames in an RX FIFO */
#define VNET_SIGNAL_SPACE  2u  /* RX took frames out of an RX FIFO */

struct vnet_params {
    uint16_t queue_pairs;             /* 1..VNET_PAIRS_MAX (0 counts as 1); more than one
                                       * offers VIRTIO_NET_F_MQ */
    uint8_t mac[6];
    uint32_t max_frame_bytes;         /* largest frame accepted on TX, without virtio-net header */
    uint32_t rx_fifo_frames;          /* frames the device can hold waiting for RX buffers,
                                       * per queue pair (each pair has its own FIFO) */
    enum vdev_backend backend;
    struct net_peer responder;        /* VDEV_BACKEND_RESPONDER: the peer's MAC and IPv4 */
    bool mrg_rxbuf;                   /* offer VIRTIO_NET_F_MRG_RXBUF */
    bool rss;                         /* offer VIRTIO_NET_F_RSS (rss_limits_default()) */
};

/* Why a used buffer notification decision was taken under coalescing. */
enum vnet_coal_cause {
    VNET_COAL_BY_PACKETS, /* max_packets buffers counted */
    VNET_COAL_BY_TIMER,   /* max_usecs elapsed since the first counted buffer */
    VNET_COAL_BY_CHANGE,  /* new parameters met the conditions at once */
    VNET_COAL_CAUSES
};

struct vnet_stats {
    uint64_t tx_frames, tx_bytes;
    uint64_t rx_frames, rx_bytes;
    struct net_backend_counts backend; /* sink drops, responder answers */
    uint64_t rx_no_buffer;       /* RX step found a frame but no receive buffer */
    uint64_t rx_dropped_too_big; /* frame larger than the receive buffer (no MRG_RXBUF) */
    uint64_t rx_merged_frames;   /* frames spread over several receive buffers (MRG_RXBUF) */
    uint64_t ctrl_commands;
    uint64_t ctrl_ok, ctrl_err;  /* control commands answered VIRTIO_NET_OK / _ERR */
    uint64_t mq_pairs_set;       /* VQ_PAIRS_SET commands answered VIRTIO_NET_OK */
    uint64_t rss_config_set;     /* RSS_CONFIG commands answered VIRTIO_NET_OK */
    /* Frames the device received under RSS ("RSS processing"): steered by their hash
     * (an indirection table entry), or to unclassified_queue (no hash type applied). */
    uint64_t rx_steered_hash, rx_steered_unclassified;
    /* Frames dropped by steering: the pair chosen is not in use, or (RSS) its receive
     * queue is not enabled or its FIFO is full. */
    uint64_t rx_steer_dropped;
    /* Notifications sent under coalescing, per queue and cause (enum vnet_coal_cause),
     * and decisions whose conditions were met but the driver suppressed. */
    uint64_t coal_notify[VNET_QUEUES_MAX][VNET_COAL_CAUSES];
    uint64_t coal_suppressed[VNET_QUEUES_MAX];
};

/* Segments of a receive buffer that hold its virtio-net header: at most one per
 * header byte (zero-length segments are left out). */
#define VNET_HDR_SEGS_MAX 12u

/* A buffer's data as it moves through the device (per transport slot). */
struct vnet_slot {
    uint8_t *frame_buf;      /* one frame with its virtio-net header (TX, RX) */
    uint32_t len;            /* RX: header + frame bytes to write; TX: bytes read */
    bool drop;               /* RX: the frame did not fit; the buffer goes back unused */
    /* RX with VIRTIO_NET_F_MRG_RXBUF, a frame spread over several buffers: this buffer
     * holds frame bytes after the header's place (`off`: where frame_buf's bytes go in
     * the buffer; the first buffer's header is written by the last one's move). */
    bool merged;             /* one of several buffers of a frame */
    uint32_t off;
    bool group_open;         /* more buffers of this frame follow: hold publication */
    uint16_t num_buffers;    /* the last buffer: its frame's count, for the header */
    uint32_t hdr_nsegs;      /* the last buffer: the first buffer's segments holding the header */
    struct vq_seg hdr_segs[VNET_HDR_SEGS_MAX];
};

/* A receive frame being spread over buffers (take side, per queue). */
struct vnet_rx_merge {
    bool active;
    uint32_t done;           /* header + frame bytes placed so far */
    uint16_t count;          /* buffers taken for it */
    uint32_t hdr_nsegs;
    struct vq_seg hdr_segs[VNET_HDR_SEGS_MAX];
};

struct vnet {
    struct vnet_params p;
    struct pt *tp;           /* the transport it runs on */
    struct virtio_net_config netcfg;
    uint16_t pairs_max;      /* queue pairs offered: p.queue_pairs, at least 1 */
    uint16_t num_queues;     /* 2 * pairs_max + 1 (common config's num_queues) */
    /* The control queue's index: 2N ("Virtqueues"), N = pairs_max until the first
     * FEATURES_OK, then 1 unless VIRTIO_NET_F_MQ or VIRTIO_NET_F_RSS was negotiated at
     * the last one. */
    uint16_t ctrl_q;
    /* Queue pairs in use: 1 after reset and feature negotiation, then what the last
     * VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET answered OK set ("Automatic receive steering in
     * multiqueue mode"). Queues of the pairs past it take no buffers. */
    uint16_t pairs;
    /* TX_QUEUE_NOT_IN_USE (virtio_net.c, "transmit queues of pairs not in use"): per
     * transmit queue, whether the rule is watched (its pair out of use under automatic
     * steering) and where the driver's available buffers ended when the device last
     * knew them allowed (a ring position: vq.h driver_end); the queue's notification
     * count when the device last looked. `watch_epoch` counts every change of the pairs
     * in use, of the steering mode and of a watch, so a look that waited for a DMA can
     * tell its answer is stale. */
    struct vnet_tx_watch {
        bool armed;
        uint16_t end;
        uint64_t kicks;
    } tx_watch[VNET_QUEUES_MAX];
    uint32_t watch_epoch;

    /* Frames waiting for receive buffers (loopback, responder answers), one FIFO per
     * queue pair (pairs_max of them): frames for receiveqK wait in fifo[K-1], each
     * holding rx_fifo_frames of up to max_frame_bytes (net_backend.h). vnet_steer
     * picks the FIFO of every frame the device receives. */
    struct net_fifo *fifo;
    /* FIFO places taken TX buffers hold in their own pair's FIFO (loopback
     * back-pressure); cleared with the queue. */
    uint32_t fifo_reserved[VNET_QUEUES_MAX];
    uint8_t *rx_frame;       /* the frame being steered (max(max_frame_bytes, 60) bytes) */
    /* The control command being answered: class, command and data up to ctrl_cap
     * bytes (the longest command the device can accept; bytes past it are ignored). */
    uint8_t *ctrl_buf;
    uint32_t ctrl_cap;
    /* VIRTIO_NET_F_RSS (p.rss): the limits offered and the configuration in force
     * (NULL when not offered). */
    struct rss_limits rss_lim;
    struct rss_state *rss;
    struct vnet_slot (*slot)[PT_ENGINES_MAX]; /* num_queues of them (vnet_init) */
    struct vnet_rx_merge rx_merge[VNET_QUEUES_MAX];
    bool rx_group_open[VNET_QUEUES_MAX]; /* finish side: a merged frame's buffers are not all pushed */

    /* Notification coalescing: per queue, and the values of the last TX_SET / RX_SET
     * that a re-enabled queue takes ("Notifications Coalescing", device normative). */
    struct coal_queue coal[VNET_QUEUES_MAX]; /* model/coalesce.h */
    struct virtio_net_ctrl_coal coal_tx_set, coal_rx_set;

    struct vnet_stats stats;
};

/* The features this personality offers ("Network Device / Feature bits"): VIRTIO_NET_F_MQ
 * with more than one queue pair, VIRTIO_NET_F_MRG_RXBUF when p->mrg_rxbuf,
 * VIRTIO_NET_F_RSS when p->rss. */
vs_features vnet_features(const struct vnet_params *p);
/* The control queue's index: 2N (struct vnet's ctrl_q). */
static inline uint16_t vnet_ctrl_queue(const struct vnet *n)
{
    return n->ctrl_q;
}
/* The role of queue q (< num_queues) as the queues are numbered now: the control
 * queue at vnet_ctrl_queue, 2k receive and 2k+1 transmit below 2 * pairs_max. Data
 * queues past 2N without VIRTIO_NET_F_MQ keep their role but never carry traffic (their
 * pair is never in use); queue 2 * pairs_max, when the control queue is not there, does
 * not exist (enabling it needs a reset, as the control queue without CTRL_VQ). */
const struct pt_role *vnet_role(const struct vnet *n, uint16_t q);
/* What the transport calls (ctx: the struct vnet). */
extern const struct pt_device vnet_device;

/* Set up the personality on transport tp (which pt_init builds afterwards, with
 * vnet_device and this as its context): allocates the FIFO and `engines` slots of
 * scratch per queue. False if allocation failed (then vnet_fini has run). */
bool vnet_init(struct vnet *n, const struct vnet_params *p, struct pt *tp, uint32_t engines);
void vnet_fini(struct vnet *n);

/* Processing, one buffer per call (take, move and finish on slot 0), on a queue that is
 * enabled after DRIVER_OK. ops: the platform's guest memory. */
enum pt_step vnet_tx_step(struct vnet *n, const struct vs_guest_ops *ops, struct pt_work *w);
enum pt_step vnet_rx_step(struct vnet *n, const struct vs_guest_ops *ops, struct pt_work *w);
/* One control command ("Control Virtqueue"): see virtio_net.c for what the device
 * answers and what makes a buffer malformed. */
enum pt_step vnet_ctrl_step(struct vnet *n, const struct vs_guest_ops *ops, struct pt_work *w);

/* Coalescing timer of queue q: true while published buffers wait for a notification
 * decision and max_usecs is in force; then *usecs is max_usecs and *window names the
 * counting window, which started with its first buffer. A later call that returns a
 * different window means the old one ended (a decision was taken) and a new one began.
 * The platform starts max_usecs at the window's first buffer and calls
 * vnet_coal_expire when it ends. */
bool vnet_coal_timer(const struct vnet *n, uint16_t q, uint32_t *usecs, uint32_t *window);
/* max_usecs of `window` elapsed: take the notification decision (event suppression
 * still applies). IDLE when that window already ended (a stale timer), DONE when the
 * decision was taken, FAILED when the device needs a reset. It reads and writes q's
 * used-side ring state through q's queue-level DMA gate: never call it while a
 * pt_finish, pt_complete, pt_arm_notifications or pt_quiet_notifications of q is
 * suspended in a DMA (nor they while it is). */
enum pt_step vnet_coal_expire(struct vnet *n, uint16_t q, uint32_t window,
                              const struct vs_guest_ops *ops);
/* A control command changed q's coalescing parameters ("Notifications When Coalescing
 * Parameters Change"): vnet_coal_recheck checks the conditions at once and decides
 * if they are met (DONE), else IDLE. The packet condition only: the platform, which
 * owns time, re-arms its timer with the new max_usecs from the window's start. The
 * same calling rule as vnet_coal_expire. */
bool vnet_coal_recheck_needed(const struct vnet *n, uint16_t q);
enum pt_step vnet_coal_recheck(struct vnet *n, uint16_t q, const struct vs_guest_ops *ops);

/* A front end without a control queue (vhost-user: QEMU or DPDK's virtio-user answer
 * the driver's VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET themselves and enable the rings of the
 * pairs they use) tells the device the queue pairs in use, as an accepted VQ_PAIRS_SET
 * would: pairs 1..`pairs` ("Automatic receive steering in multiqueue mode"; steering
 * and the queues of the other pairs follow). 1..max_virtqueue_pairs with
 * VIRTIO_NET_F_MQ negotiated, only 1 without; any other value is refused: false,
 * nothing changed (a front end's request, not a driver's violation: no record). A
 * reset puts one pair in use again. */
bool vnet_fe_set_pairs(struct vnet *n, uint16_t pairs);

/* Frames waiting in the device for RX buffers: in every pair's FIFO, in pair's
 * (0-based: receiveq pair+1), and whether pair's FIFO is full. */
uint32_t vnet_fifo_frames(const struct vnet *n);
uint32_t vnet_pair_fifo_frames(const struct vnet *n, uint16_t pair);
bool vnet_pair_fifo_full(const struct vnet *n, uint16_t pair);

#endif
