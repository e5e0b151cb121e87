/* virtio_wire.h -- the spec's structures and constants as they appear on the wire.
 *
 * Everything the driver and the device exchange through memory or registers is
 * little-endian; the structs below are laid out exactly as the spec shows them and
 * are only ever copied to/from guest memory byte-for-byte (this model runs on
 * little-endian hosts; vs_le*() helpers make that explicit at every access).
 *
 * Naming: *_BIT is a bit position, *_MASK is the corresponding mask. Never mix them.
 * Sources: virtio 1.4 draft, sections named next to each block.
 */
#ifndef VIOSIM_VIRTIO_WIRE_H
#define VIOSIM_VIRTIO_WIRE_H

#include <stdint.h>
#include <string.h>

/* _Static_assert in C, static_assert in C++ (the platform includes this header). */
#ifdef __cplusplus
#define VS_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define VS_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "viosim copies little-endian wire structures directly; big-endian hosts are not supported"
#endif

/* ---- Device status field ("Device Status Field") ---- */
#define VIRTIO_STATUS_ACKNOWLEDGE        0x01u
#define VIRTIO_STATUS_DRIVER             0x02u
#define VIRTIO_STATUS_DRIVER_OK          0x04u
#define VIRTIO_STATUS_FEATURES_OK        0x08u
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40u
#define VIRTIO_STATUS_FAILED             0x80u

/* ---- Reserved (transport/ring) feature bits ("Reserved Feature Bits") ---- */
#define VIRTIO_F_INDIRECT_DESC_BIT     28
#define VIRTIO_F_EVENT_IDX_BIT         29
#define VIRTIO_F_VERSION_1_BIT         32
#define VIRTIO_F_ACCESS_PLATFORM_BIT   33
#define VIRTIO_F_RING_PACKED_BIT       34
#define VIRTIO_F_IN_ORDER_BIT          35
#define VIRTIO_F_ORDER_PLATFORM_BIT    36
#define VIRTIO_F_SR_IOV_BIT            37
#define VIRTIO_F_NOTIFICATION_DATA_BIT 38
#define VIRTIO_F_NOTIF_CONFIG_DATA_BIT 39
#define VIRTIO_F_RING_RESET_BIT        40

/* ---- virtio-net feature bits ("Network Device / Feature bits") ---- */
#define VIRTIO_NET_F_CSUM_BIT          0
#define VIRTIO_NET_F_MTU_BIT           3
#define VIRTIO_NET_F_MAC_BIT           5
#define VIRTIO_NET_F_MRG_RXBUF_BIT     15
#define VIRTIO_NET_F_STATUS_BIT        16
#define VIRTIO_NET_F_CTRL_VQ_BIT       17
#define VIRTIO_NET_F_MQ_BIT            22
#define VIRTIO_NET_F_NOTF_COAL_BIT     53
#define VIRTIO_NET_F_VQ_NOTF_COAL_BIT  52

/* viosim-specific, NON-STANDARD (docs/event-suppression.md): the driver's event
 * suppression fields live in device memory (a BAR window the driver writes by MMIO)
 * instead of host RAM. Bit 100 lies in net's device-type-specific range ("Feature
 * Bits": 50 to 127) and is unallocated by the spec's network device. Offered only when
 * the device is configured to, and accepted only by a driver that asks for it. */
#define VIOSIM_NET_F_DEVMEM_EVENT_BIT  100
/* viosim-specific, NON-STANDARD, needs VIOSIM_NET_F_DEVMEM_EVENT: the device re-decides
 * about a used buffer notification whenever a slot write asks for notifications, so a
 * driver need not read back its posted slot writes before re-checking its rings. */
#define VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT 101

/* Feature sets are 128 bits: word w holds bits 32*w .. 32*w+31, as the feature
 * select registers expose them. */
#define VS_FEATURE_WORDS 4
typedef struct vs_features { uint32_t w[VS_FEATURE_WORDS]; } vs_features;

static inline int vs_feature_has(const vs_features *f, unsigned bit)
{
    return bit < 32u * VS_FEATURE_WORDS && ((f->w[bit / 32] >> (bit % 32)) & 1u);
}
static inline void vs_feature_set(vs_features *f, unsigned bit)
{
    if (bit < 32u * VS_FEATURE_WORDS)
        f->w[bit / 32] |= 1u << (bit % 32);
}
static inline void vs_feature_clear(vs_features *f, unsigned bit)
{
    if (bit < 32u * VS_FEATURE_WORDS)
        f->w[bit / 32] &= ~(1u << (bit % 32));
}

/* ---- Packed virtqueue ("Packed Virtqueues") ---- */
#define VIRTQ_DESC_F_NEXT_MASK      0x0001u /* buffer continues in the next descriptor */
#define VIRTQ_DESC_F_WRITE_MASK     0x0002u /* device-writable (otherwise device-readable) */
#define VIRTQ_DESC_F_INDIRECT_MASK  0x0004u /* buffer holds a table of descriptors */
#define VIRTQ_DESC_F_AVAIL_BIT      7
#define VIRTQ_DESC_F_USED_BIT       15
#define VIRTQ_DESC_F_AVAIL_MASK     (1u << VIRTQ_DESC_F_AVAIL_BIT)
#define VIRTQ_DESC_F_USED_MASK      (1u << VIRTQ_DESC_F_USED_BIT)

struct pvirtq_desc {
    uint64_t addr;  /* buffer address (IOVA when ACCESS_PLATFORM is negotiated) */
    uint32_t len;   /* buffer length; on a used descriptor: bytes written by the device */
    uint16_t id;    /* buffer id */
    uint16_t flags; /* VIRTQ_DESC_F_* */
};
VS_STATIC_ASSERT(sizeof(struct pvirtq_desc) == 16, "packed descriptor is 16 bytes");
#define PVIRTQ_DESC_OFF_LEN   8
#define PVIRTQ_DESC_OFF_ID    12
#define PVIRTQ_DESC_OFF_FLAGS 14

/* Event suppression structure ("Event Suppression Structure Format"). */
#define RING_EVENT_FLAGS_ENABLE  0x0u
#define RING_EVENT_FLAGS_DISABLE 0x1u
#define RING_EVENT_FLAGS_DESC    0x2u /* only with VIRTIO_F_EVENT_IDX */
#define RING_EVENT_OFF_WRAP_WRAP_BIT 15
#define RING_EVENT_OFF_WRAP_OFF_MASK 0x7fffu

struct pvirtq_event_suppress {
    uint16_t off_wrap; /* bits 0..14: descriptor ring offset; bit 15: wrap counter */
    uint16_t flags;    /* bits 0..1: RING_EVENT_FLAGS_*; rest reserved */
};
VS_STATIC_ASSERT(sizeof(struct pvirtq_event_suppress) == 4, "event suppression is 4 bytes");

/* Alignment of the packed ring areas ("Structure Size and Alignment"). */
#define PVIRTQ_DESC_ALIGN  16u
#define PVIRTQ_EVENT_ALIGN 4u
#define PVIRTQ_SIZE_MAX    32768u

/* ---- Split virtqueue ("Split Virtqueues"); all fields little-endian ----
 * The descriptor flags (VIRTQ_DESC_F_NEXT/WRITE/INDIRECT_MASK) are the packed
 * format's, below; split descriptors carry `next` where packed ones
 * carry the buffer id. */

/* "The Virtqueue Descriptor Table": one entry of the Descriptor Area (or of an
 * indirect table). */
struct svirtq_desc {
    uint64_t addr;  /* buffer address (IOVA when ACCESS_PLATFORM is negotiated) */
    uint32_t len;   /* buffer length in bytes */
    uint16_t flags; /* VIRTQ_DESC_F_* */
    uint16_t next;  /* index of the next descriptor when flags has NEXT */
};
VS_STATIC_ASSERT(sizeof(struct svirtq_desc) == 16, "split descriptor is 16 bytes");
#define SVIRTQ_DESC_BYTES     16u
#define SVIRTQ_DESC_OFF_ADDR  0
#define SVIRTQ_DESC_OFF_LEN   8
#define SVIRTQ_DESC_OFF_FLAGS 12
#define SVIRTQ_DESC_OFF_NEXT  14

/* "The Virtqueue Available Ring" (Driver Area): flags, idx, ring[size], then
 * used_event (only with VIRTIO_F_EVENT_IDX). */
struct svirtq_avail_hdr {
    uint16_t flags; /* VIRTQ_AVAIL_F_* */
    uint16_t idx;   /* where the driver puts the next entry (free-running, mod 2^16) */
};
VS_STATIC_ASSERT(sizeof(struct svirtq_avail_hdr) == 4, "available ring header is 4 bytes");
#define VIRTQ_AVAIL_F_NO_INTERRUPT_BIT  0
#define VIRTQ_AVAIL_F_NO_INTERRUPT_MASK (1u << VIRTQ_AVAIL_F_NO_INTERRUPT_BIT)
#define SVIRTQ_AVAIL_OFF_FLAGS 0
#define SVIRTQ_AVAIL_OFF_IDX   2
#define SVIRTQ_AVAIL_OFF_RING  4
#define SVIRTQ_AVAIL_ENTRY_BYTES 2u /* le16 head index per ring entry */

/* "The Virtqueue Used Ring" (Device Area): flags, idx, ring[size] of used elements,
 * then avail_event (only with VIRTIO_F_EVENT_IDX). */
struct svirtq_used_hdr {
    uint16_t flags; /* VIRTQ_USED_F_* */
    uint16_t idx;   /* where the device puts the next element (free-running, mod 2^16) */
};
VS_STATIC_ASSERT(sizeof(struct svirtq_used_hdr) == 4, "used ring header is 4 bytes");

struct svirtq_used_elem {
    uint32_t id;  /* head index of the used descriptor chain (le32 for padding) */
    uint32_t len; /* bytes written into the device-writable part of the buffer */
};
VS_STATIC_ASSERT(sizeof(struct svirtq_used_elem) == 8, "used ring element is 8 bytes");
#define VIRTQ_USED_F_NO_NOTIFY_BIT  0
#define VIRTQ_USED_F_NO_NOTIFY_MASK (1u << VIRTQ_USED_F_NO_NOTIFY_BIT)
#define SVIRTQ_USED_OFF_FLAGS 0
#define SVIRTQ_USED_OFF_IDX   2
#define SVIRTQ_USED_OFF_RING  4
#define SVIRTQ_USED_ENTRY_BYTES 8u
#define SVIRTQ_USED_ELEM_OFF_ID  0
#define SVIRTQ_USED_ELEM_OFF_LEN 4

/* "Split Virtqueues" table of part alignment and size; Queue Size is a power of 2
 * no larger than 32768. Sizes include the EVENT_IDX field at the end of each ring. */
#define SVIRTQ_DESC_ALIGN  16u
#define SVIRTQ_AVAIL_ALIGN 2u
#define SVIRTQ_USED_ALIGN  4u
#define SVIRTQ_SIZE_MAX    32768u /* "Queue Size value is always a power of 2. The maximum
                                   * Queue Size value is 32768." */
#define SVIRTQ_DESC_TABLE_BYTES(size) (16u * (uint32_t)(size))
#define SVIRTQ_AVAIL_RING_BYTES(size) (6u + 2u * (uint32_t)(size))
#define SVIRTQ_USED_RING_BYTES(size)  (6u + 8u * (uint32_t)(size))
/* Where the EVENT_IDX fields sit: after the last ring entry. */
#define SVIRTQ_USED_EVENT_OFF(size) \
    (SVIRTQ_AVAIL_OFF_RING + SVIRTQ_AVAIL_ENTRY_BYTES * (uint32_t)(size))
#define SVIRTQ_AVAIL_EVENT_OFF(size) \
    (SVIRTQ_USED_OFF_RING + SVIRTQ_USED_ENTRY_BYTES * (uint32_t)(size))

/* NOTIFICATION_DATA on a split ring ("Driver Notifications"): next_off is the 15
 * low bits of the driver's available idx and next_wrap its bit 15. */
#define SVIRTQ_HINT_WRAP_BIT 15
#define SVIRTQ_HINT_OFF_MASK 0x7fffu

/* ---- Notification data ("Available Buffer Notifications", NOTIFICATION_DATA) ----
 * bits 0..15: vq index; packed: bits 16..30 next_off, bit 31 next_wrap. */
#define VIRTIO_NOTIFY_DATA_VQN_MASK     0x0000ffffu
#define VIRTIO_NOTIFY_DATA_OFF_SHIFT    16
#define VIRTIO_NOTIFY_DATA_OFF_MASK     0x7fffu
#define VIRTIO_NOTIFY_DATA_WRAP_BIT     31

/* ---- virtio-net header and config ("Network Device") ---- */
struct virtio_net_hdr {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
};
VS_STATIC_ASSERT(sizeof(struct virtio_net_hdr) == 12, "virtio_net_hdr with num_buffers is 12 bytes");

#define VIRTIO_NET_S_LINK_UP_MASK 0x1u

struct virtio_net_config {
    uint8_t mac[6];
    uint16_t status;
    uint16_t max_virtqueue_pairs;
    uint16_t mtu;
    uint32_t speed;
    uint8_t duplex;
    uint8_t rss_max_key_size;
    uint16_t rss_max_indirection_table_length;
    uint32_t supported_hash_types;
};
VS_STATIC_ASSERT(sizeof(struct virtio_net_config) == 24, "virtio_net_config layout");

/* ---- Control virtqueue ("Network Device / Device Operation / Control Virtqueue") ----
 * A command is: u8 class, u8 command, command-specific data (device-readable), then
 * the u8 ack (device-writable). */
#define VIRTIO_NET_OK  0u
#define VIRTIO_NET_ERR 1u
#define VIRTIO_NET_CTRL_HDR_BYTES 2u /* class + command */

/* "Notifications Coalescing": class 6 and its commands. */
#define VIRTIO_NET_CTRL_NOTF_COAL        6u
#define VIRTIO_NET_CTRL_NOTF_COAL_TX_SET 0u /* struct virtio_net_ctrl_coal, all TX queues */
#define VIRTIO_NET_CTRL_NOTF_COAL_RX_SET 1u /* struct virtio_net_ctrl_coal, all RX queues */
#define VIRTIO_NET_CTRL_NOTF_COAL_VQ_SET 2u /* struct virtio_net_ctrl_coal_vq, one queue */
#define VIRTIO_NET_CTRL_NOTF_COAL_VQ_GET 3u /* vq_index + reserved in, coal out */

struct virtio_net_ctrl_coal {
    uint32_t max_packets; /* packets before a notification (0: notify every packet) */
    uint32_t max_usecs;   /* microseconds a notification may wait (0: every packet) */
};
VS_STATIC_ASSERT(sizeof(struct virtio_net_ctrl_coal) == 8, "virtio_net_ctrl_coal is 8 bytes");

struct virtio_net_ctrl_coal_vq {
    uint16_t vq_index;    /* an enabled transmit or receive virtqueue */
    uint16_t reserved;    /* ignored by the device */
    struct virtio_net_ctrl_coal coal;
};
VS_STATIC_ASSERT(sizeof(struct virtio_net_ctrl_coal_vq) == 12, "virtio_net_ctrl_coal_vq is 12 bytes");
/* VQ_GET: the driver writes vq_index and reserved, the device writes coal. */
#define VIRTIO_NET_CTRL_COAL_VQ_IN_BYTES 4u

/* ---- Multiqueue, receive-side scaling and hash reporting ("Device operation in
 * multiqueue mode", "Automatic receive steering in multiqueue mode", "Receive-side
 * scaling (RSS)", "Hash calculation for incoming packets", "Hash reporting for incoming
 * packets"). The kernel that reads these is model/rss.{h,c}. ---- */
#define VIRTIO_NET_F_HASH_REPORT_BIT   57 /* per-packet hash value and type reported */
#define VIRTIO_NET_F_RSS_BIT           60 /* Toeplitz hash, key and indirection table */
/* (VIRTIO_NET_F_MQ_BIT is with the other net feature bits above.) */

/* Class 4 and its commands. */
#define VIRTIO_NET_CTRL_MQ               4u
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET  0u /* struct virtio_net_ctrl_mq_pairs_set */
#define VIRTIO_NET_CTRL_MQ_RSS_CONFIG    1u /* struct virtio_net_rss_config (variable) */
#define VIRTIO_NET_CTRL_MQ_HASH_CONFIG   2u /* struct virtio_net_hash_config (variable) */
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN  1u
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX  0x8000u

struct virtio_net_ctrl_mq_pairs_set {
    uint16_t virtqueue_pairs; /* 1 .. max_virtqueue_pairs */
};
VS_STATIC_ASSERT(sizeof(struct virtio_net_ctrl_mq_pairs_set) == 2, "mq_pairs_set is 2 bytes");

/* Hash types ("Supported/enabled hash types"): masks for supported_hash_types and
 * hash_types. A type's report value is one more than its bit position:
 * VIRTIO_NET_HASH_TYPE_X_MASK == 1 << (VIRTIO_NET_HASH_REPORT_X - 1). */
#define VIRTIO_NET_HASH_TYPE_IPV4_MASK    (1u << 0)
#define VIRTIO_NET_HASH_TYPE_TCPV4_MASK   (1u << 1)
#define VIRTIO_NET_HASH_TYPE_UDPV4_MASK   (1u << 2)
#define VIRTIO_NET_HASH_TYPE_IPV6_MASK    (1u << 3)
#define VIRTIO_NET_HASH_TYPE_TCPV6_MASK   (1u << 4)
#define VIRTIO_NET_HASH_TYPE_UDPV6_MASK   (1u << 5)
#define VIRTIO_NET_HASH_TYPE_IP_EX_MASK   (1u << 6) /* IPv6 with extension headers */
#define VIRTIO_NET_HASH_TYPE_TCP_EX_MASK  (1u << 7)
#define VIRTIO_NET_HASH_TYPE_UDP_EX_MASK  (1u << 8)

/* hash_report values (a value, not a mask). */
#define VIRTIO_NET_HASH_REPORT_NONE     0u
#define VIRTIO_NET_HASH_REPORT_IPV4     1u
#define VIRTIO_NET_HASH_REPORT_TCPV4    2u
#define VIRTIO_NET_HASH_REPORT_UDPV4    3u
#define VIRTIO_NET_HASH_REPORT_IPV6     4u
#define VIRTIO_NET_HASH_REPORT_TCPV6    5u
#define VIRTIO_NET_HASH_REPORT_UDPV6    6u
#define VIRTIO_NET_HASH_REPORT_IPV6_EX  7u
#define VIRTIO_NET_HASH_REPORT_TCPV6_EX 8u
#define VIRTIO_NET_HASH_REPORT_UDPV6_EX 9u

/* struct virtio_net_rss_config ("Setting RSS parameters") has two variable parts, so it
 * is read field by field at these offsets (N = indirection_table_mask + 1):
 *   le32 hash_types;                      at 0
 *   le16 indirection_table_mask;          at 4
 *   struct rss_rq_id unclassified_queue;  at 6
 *   struct rss_rq_id indirection_table[N]; at 8
 *   le16 max_tx_vq;                       at 8 + 2N
 *   u8 hash_key_length;                   at 10 + 2N
 *   u8 hash_key_data[hash_key_length];    at 11 + 2N */
struct virtio_net_rss_config_head {
    uint32_t hash_types;             /* VIRTIO_NET_HASH_TYPE_*_MASK enabled */
    uint16_t indirection_table_mask; /* table entries - 1 */
    uint16_t unclassified_queue;     /* struct rss_rq_id: queue for packets without a hash */
};
VS_STATIC_ASSERT(sizeof(struct virtio_net_rss_config_head) == 8, "rss_config head is 8 bytes");
#define VIRTIO_NET_RSS_CONFIG_TAIL_BYTES 3u /* le16 max_tx_vq + u8 hash_key_length */

/* struct virtio_net_hash_config (VIRTIO_NET_CTRL_MQ_HASH_CONFIG, "Automatic receive
 * steering in multiqueue mode / Hash calculation"): the hash reported without RSS. Laid
 * out as struct virtio_net_rss_config with no table: le32 hash_types at 0, le16
 * reserved[4] at 4 (zeroes), u8 hash_key_length at 12, the key from 13. */
#define VIRTIO_NET_HASH_CONFIG_OFF_RESERVED   4u
#define VIRTIO_NET_HASH_CONFIG_RESERVED_BYTES 8u
#define VIRTIO_NET_HASH_CONFIG_OFF_KEY_LENGTH 12u
#define VIRTIO_NET_HASH_CONFIG_OFF_KEY        13u

/* struct rss_rq_id: le16 whose bits 0..14 are bits 1..16 of a receive virtqueue's index
 * (so the value is the receive queue's number from 0: value 3 is virtqueue 6, receiveq4)
 * and bit 15 is reserved, set to zero. */
#define VIRTIO_NET_RSS_RQ_ID_QUEUE_MASK   0x7fffu
#define VIRTIO_NET_RSS_RQ_ID_RESERVED_BIT 15

/* ---- PCI ("PCI Device Discovery", "Virtio Structure PCI Capabilities") ---- */
#define VIRTIO_PCI_VENDOR_ID       0x1af4u
#define VIRTIO_PCI_DEVICE_ID_BASE  0x1040u /* + virtio device id */
#define VIRTIO_ID_NET              1u

#define PCI_CAP_ID_VNDR  0x09u
#define PCI_CAP_ID_MSIX  0x11u

#define VIRTIO_PCI_CAP_COMMON_CFG 1u
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2u
#define VIRTIO_PCI_CAP_ISR_CFG    3u
#define VIRTIO_PCI_CAP_DEVICE_CFG 4u
#define VIRTIO_PCI_CAP_PCI_CFG    5u
#define VIRTIO_PCI_CAP_VENDOR_CFG 9u /* "Vendor data capability" */

struct virtio_pci_cap {
    uint8_t cap_vndr;
    uint8_t cap_next;
    uint8_t cap_len;
    uint8_t cfg_type;
    uint8_t bar;
    uint8_t id;
    uint8_t padding[2];
    uint32_t offset;
    uint32_t length;
};
VS_STATIC_ASSERT(sizeof(struct virtio_pci_cap) == 16, "virtio_pci_cap is 16 bytes");

struct virtio_pci_notify_cap {
    struct virtio_pci_cap cap;
    uint32_t notify_off_multiplier;
};
VS_STATIC_ASSERT(sizeof(struct virtio_pci_notify_cap) == 20, "virtio_pci_notify_cap is 20 bytes");

struct virtio_pci_cfg_cap {
    struct virtio_pci_cap cap;
    uint8_t pci_cfg_data[4];
};
VS_STATIC_ASSERT(sizeof(struct virtio_pci_cfg_cap) == 20, "virtio_pci_cfg_cap is 20 bytes");

/* viosim-specific, NON-STANDARD: where the device-memory event suppression window is.
 * A "Vendor data capability" (cfg_type VIRTIO_PCI_CAP_VENDOR_CFG), which a standard
 * driver ignores ("The driver MUST qualify the vendor_id before interpreting or
 * writing into the Vendor data capability"); its vendor data says where the window is.
 * Present only when the device offers VIOSIM_NET_F_DEVMEM_EVENT. */
#define VIOSIM_PCI_VNDR_ID 0xfffeu /* viosim has no PCI-SIG vendor ID; a real device puts
                                    * its own here (never 0x1AF4, "Vendor data capability") */
#define VIOSIM_VNDR_FMT_DEVMEM_EVENT 1u
struct viosim_devmem_event_cap {
    uint8_t cap_vndr;    /* PCI_CAP_ID_VNDR */
    uint8_t cap_next;
    uint8_t cap_len;     /* sizeof this struct */
    uint8_t cfg_type;    /* VIRTIO_PCI_CAP_VENDOR_CFG */
    uint16_t vendor_id;  /* VIOSIM_PCI_VNDR_ID */
    uint8_t format;      /* VIOSIM_VNDR_FMT_DEVMEM_EVENT */
    uint8_t bar;         /* BAR holding the window */
    uint32_t offset;     /* window offset in the BAR */
    uint32_t length;     /* window length in bytes */
    uint16_t slot_bytes; /* bytes between queue q's slot and queue q+1's */
    uint16_t num_slots;  /* slots (queues) the window holds */
};
VS_STATIC_ASSERT(sizeof(struct viosim_devmem_event_cap) == 20, "devmem event capability is 20 bytes");

/* One slot per queue, VIOSIM_DEVMEM_SLOT_BYTES each, written by the driver with one
 * aligned 4-byte write (the whole slot) or aligned 2-byte writes (one field).
 * Packed ring: struct pvirtq_event_suppress (off_wrap at 0, flags at 2), exactly the
 * Driver Event Suppression structure. Split ring: the available ring's flags at 0 and
 * used_event at 2. */
#define VIOSIM_DEVMEM_SLOT_BYTES 4u
#define VIOSIM_DEVMEM_SPLIT_OFF_FLAGS 0u
#define VIOSIM_DEVMEM_SPLIT_OFF_USED_EVENT 2u

/* Common configuration structure: byte offsets of each field
 * ("Common configuration structure layout"). */
#define VIRTIO_PCI_COMMON_DFSELECT      0x00 /* le32 device_feature_select */
#define VIRTIO_PCI_COMMON_DF            0x04 /* le32 device_feature (RO) */
#define VIRTIO_PCI_COMMON_GFSELECT      0x08 /* le32 driver_feature_select */
#define VIRTIO_PCI_COMMON_GF            0x0c /* le32 driver_feature */
#define VIRTIO_PCI_COMMON_MSIX          0x10 /* le16 config_msix_vector */
#define VIRTIO_PCI_COMMON_NUMQ          0x12 /* le16 num_queues (RO) */
#define VIRTIO_PCI_COMMON_STATUS        0x14 /* u8 device_status */
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15 /* u8 config_generation (RO) */
#define VIRTIO_PCI_COMMON_Q_SELECT      0x16 /* le16 queue_select */
#define VIRTIO_PCI_COMMON_Q_SIZE        0x18 /* le16 queue_size */
#define VIRTIO_PCI_COMMON_Q_MSIX        0x1a /* le16 queue_msix_vector */
#define VIRTIO_PCI_COMMON_Q_ENABLE      0x1c /* le16 queue_enable */
#define VIRTIO_PCI_COMMON_Q_NOFF        0x1e /* le16 queue_notify_off (RO) */
#define VIRTIO_PCI_COMMON_Q_DESCLO      0x20 /* le64 queue_desc */
#define VIRTIO_PCI_COMMON_Q_DESCHI      0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO     0x28 /* le64 queue_driver */
#define VIRTIO_PCI_COMMON_Q_AVAILHI     0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO      0x30 /* le64 queue_device */
#define VIRTIO_PCI_COMMON_Q_USEDHI      0x34
#define VIRTIO_PCI_COMMON_Q_NDATA       0x38 /* le16 queue_notif_config_data (RO) */
#define VIRTIO_PCI_COMMON_Q_RESET       0x3a /* le16 queue_reset */
#define VIRTIO_PCI_COMMON_ADM_Q_IDX     0x3c /* le16 admin_queue_index (RO) */
#define VIRTIO_PCI_COMMON_ADM_Q_NUM     0x3e /* le16 admin_queue_num (RO) */
#define VIRTIO_PCI_COMMON_CFG_LEN       0x40

#define VIRTIO_MSI_NO_VECTOR 0xffffu

/* ISR status bits ("ISR status capability"). */
#define VIRTIO_PCI_ISR_QUEUE_MASK  0x1u
#define VIRTIO_PCI_ISR_CONFIG_MASK 0x2u

/* Little-endian load/store on byte buffers (host is little-endian; see above). */
static inline uint16_t vs_le16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t vs_le32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t vs_le64(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void vs_put_le16(void *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void vs_put_le32(void *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void vs_put_le64(void *p, uint64_t v) { memcpy(p, &v, 8); }

#endif
