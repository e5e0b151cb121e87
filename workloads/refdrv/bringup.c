#include "refdrv_int.h"

/* ---- device status ---- */

void rd_status_set(struct refdrv *d, uint8_t bit)
{
    d->status |= bit;
    common_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, d->status);
    d->status_written = true;
}

static uint8_t status_read(struct refdrv *d)
{
    return (uint8_t)common_rd(d, VIRTIO_PCI_COMMON_STATUS, 1);
}

/* "If any of these steps go irrecoverably wrong, the driver SHOULD set the FAILED status
 * bit to indicate that it has given up on the device." */
enum refdrv_result rd_give_up(struct refdrv *d, enum refdrv_result r)
{
    if (d->common.found)
        rd_status_set(d, VIRTIO_STATUS_FAILED);
    return r;
}

/* Writing 0 resets the device; "After writing 0 to device_status, the driver MUST wait
 * for a read of device_status to return 0 before reinitializing the device." */
bool rd_device_reset(struct refdrv *d)
{
    common_wr(d, VIRTIO_PCI_COMMON_STATUS, 1, 0);
    d->status = 0;
    d->status_written = true;
    for (uint32_t i = 0; i < RESET_READS_MAX; i++)
        if (status_read(d) == 0)
            return true;
    return false;
}

/* Live-device check while running: NEEDS_RESET, or a device that dropped DRIVER_OK. */
enum refdrv_result rd_check_status(struct refdrv *d)
{
    uint8_t s = status_read(d);

    d->last_status_check_ps = now_ps(d);
    if ((s & VIRTIO_STATUS_DEVICE_NEEDS_RESET) || !(s & VIRTIO_STATUS_DRIVER_OK))
        return REFDRV_DEVICE_ERROR;
    return REFDRV_OK;
}

/* Did interrupt v (from wait_interrupt, >= 0) say the configuration changed? With MSI-X,
 * vector 0 is configuration changes only (or shared by everything when the table has one
 * entry). With INTx, "Driver Handling Interrupts": read ISR status, which resets it and
 * deasserts the line; bit 1 is a configuration change (bit 0, queues, needs nothing
 * more: the caller services every queue after any interrupt). */
bool rd_interrupt_is_config(struct refdrv *d, int v)
{
    if (d->intx)
        return v == VS_HOST_IRQ_INTX && (mmio_rd(d, d->isr.addr, 1) & VIRTIO_PCI_ISR_CONFIG_MASK);
    return v == (int)VEC_CONFIG;
}

/* ---- PCI: identity, BARs ---- */

static enum refdrv_result pci_identify(struct refdrv *d)
{
    uint32_t vendor = cfg_rd(d, PCI_VENDOR_ID, 2);
    uint32_t device = cfg_rd(d, PCI_DEVICE_ID, 2);
    uint32_t htype = cfg_rd(d, PCI_HEADER_TYPE, 1);

    /* "PCI Device Discovery": modern devices use 0x1040 + virtio device id. */
    if (vendor != VIRTIO_PCI_VENDOR_ID || device != VIRTIO_NET_MODERN_DEVICE_ID)
        return REFDRV_NO_DEVICE;
    if ((htype & PCI_HEADER_TYPE_LAYOUT_MASK) != 0)
        return REFDRV_NO_DEVICE;
    return REFDRV_OK;
}

/* Size every memory BAR: write all-ones, read back the address mask, restore. I/O BARs
 * and reserved memory types are left alone (this driver maps memory space only). */
static void pci_size_bars(struct refdrv *d)
{
    for (int i = 0; i < PCI_NUM_BARS; i++) {
        uint32_t off = PCI_BAR0 + 4u * (uint32_t)i;
        uint32_t lo = cfg_rd(d, off, 4);
        uint32_t type = (lo >> PCI_BAR_MEM_TYPE_SHIFT) & PCI_BAR_MEM_TYPE_FIELD;
        bool is64 = type == PCI_BAR_MEM_TYPE_64;
        uint64_t mask, size;
        uint32_t lo_mask;

        if ((lo & PCI_BAR_IO_SPACE_MASK) || (type != PCI_BAR_MEM_TYPE_32 && !is64))
            continue;
        if (is64 && i + 1 >= PCI_NUM_BARS)
            continue;

        cfg_wr(d, off, 4, 0xffffffffu);
        lo_mask = cfg_rd(d, off, 4) & PCI_BAR_ADDR_LOW_MASK;
        cfg_wr(d, off, 4, lo);
        mask = lo_mask;
        if (is64) {
            uint32_t hi = cfg_rd(d, off + 4u, 4);
            cfg_wr(d, off + 4u, 4, 0xffffffffu);
            mask |= (uint64_t)cfg_rd(d, off + 4u, 4) << 32;
            cfg_wr(d, off + 4u, 4, hi);
        } else if (lo_mask != 0) {
            mask |= 0xffffffff00000000ull; /* a 32-bit BAR's address bits above 31 */
        }
        /* No writable address bit: the slot holds no BAR. Otherwise the BAR decodes a naturally
         * aligned power of two, so the writable bits must be contiguous from the top. */
        size = ~mask + 1u;
        if (mask != 0 && is_pow2(size) && size >= 16u) {
            d->bar_size[i] = size;
            d->bar_is64[i] = is64;
        }
        if (is64)
            i++; /* the upper half is not a BAR of its own */
    }
}

/* Place BARs in the host's MMIO window, largest first, each aligned to its size. A BAR
 * that does not fit (or a 32-bit BAR above 4 GiB) stays unmapped. */
static void pci_assign_bars(struct refdrv *d)
{
    const struct vs_host_ops *h = d->h;
    uint64_t cursor = h->mmio_window_base;
    uint64_t end = h->mmio_window_base + h->mmio_window_size;
    bool placed[PCI_NUM_BARS] = { false };

    if (end < h->mmio_window_base)
        end = UINT64_MAX; /* window reaching the top of the address space */

    for (;;) {
        int pick = -1;
        uint64_t base;
        uint32_t off;

        for (int i = 0; i < PCI_NUM_BARS; i++)
            if (d->bar_size[i] != 0 && !placed[i] && (pick < 0 || d->bar_size[i] > d->bar_size[pick]))
                pick = i;
        if (pick < 0)
            break;
        placed[pick] = true;

        base = align_up(cursor, d->bar_size[pick]);
        if (base == 0 && cursor == 0)
            base = d->bar_size[pick]; /* a BAR at 0 reads as unprogrammed */
        if (base < cursor || base > end || d->bar_size[pick] > end - base)
            continue;
        if (!d->bar_is64[pick] && base + d->bar_size[pick] > 0x100000000ull)
            continue;

        off = PCI_BAR0 + 4u * (uint32_t)pick;
        cfg_wr(d, off, 4, (uint32_t)base);
        if (d->bar_is64[pick])
            cfg_wr(d, off + 4u, 4, (uint32_t)(base >> 32));
        d->bar_base[pick] = base;
        d->bar_mapped[pick] = true;
        cursor = base + d->bar_size[pick];
    }
}

static enum refdrv_result pci_setup_bars(struct refdrv *d)
{
    uint32_t cmd = cfg_rd(d, PCI_COMMAND, 2);

    /* Decode off while the BARs move. */
    cfg_wr(d, PCI_COMMAND, 2, cmd & ~(PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK));
    pci_size_bars(d);
    pci_assign_bars(d);
    /* Memory decode for the BARs, bus mastering for the device's DMA; INTx is not used. */
    cmd |= PCI_COMMAND_MEMORY_MASK | PCI_COMMAND_MASTER_MASK | PCI_COMMAND_INTX_DISABLE_MASK;
    cfg_wr(d, PCI_COMMAND, 2, cmd);
    return REFDRV_OK;
}

/* Does [offset, offset + need) lie in mapped BAR bar? */
static bool bar_range_ok(const struct refdrv *d, uint32_t bar, uint64_t offset, uint64_t need)
{
    if (bar >= PCI_NUM_BARS || !d->bar_mapped[bar])
        return false;
    return offset <= d->bar_size[bar] && need <= d->bar_size[bar] - offset;
}

/* ---- PCI: capabilities ---- */

/* One virtio vendor capability at cfg offset at. "The driver MUST ignore any
 * vendor-specific capability structure which has a reserved cfg_type value" / "...a
 * reserved bar value"; "The driver SHOULD use the first instance of each virtio
 * structure type they can support." */
static void parse_virtio_cap(struct refdrv *d, uint32_t at)
{
    uint32_t cap_len, cfg_type, bar, offset, length, min_len, align;
    struct region *r;

    if (at + VIRTIO_PCI_CAP_MIN_LEN > PCI_CAP_AREA_END)
        return;
    cap_len = cfg_rd(d, at + 2u, 1);
    cfg_type = cfg_rd(d, at + 3u, 1);
    bar = cfg_rd(d, at + 4u, 1);
    if (cap_len < VIRTIO_PCI_CAP_MIN_LEN)
        return;
    if (cfg_type == 0 || cfg_type > VIRTIO_PCI_CAP_TYPE_MAX || bar >= PCI_NUM_BARS)
        return;
    if (cfg_type == VIRTIO_PCI_CAP_PCI_CFG)
        return; /* an alternative access path; this driver uses the BARs */

    switch (cfg_type) {
    case VIRTIO_PCI_CAP_COMMON_CFG:
        r = &d->common; min_len = COMMON_CFG_USED_LEN; align = 4;
        break;
    case VIRTIO_PCI_CAP_NOTIFY_CFG:
        r = &d->notify; min_len = 2; align = 2;
        if (cap_len < VIRTIO_PCI_NOTIFY_CAP_LEN || at + VIRTIO_PCI_NOTIFY_CAP_LEN > PCI_CAP_AREA_END)
            return;
        break;
    case VIRTIO_PCI_CAP_ISR_CFG:
        r = &d->isr; min_len = 1; align = 1;
        break;
    default: /* VIRTIO_PCI_CAP_DEVICE_CFG */
        r = &d->devcfg; min_len = 1; align = 4;
        break;
    }
    if (r->found)
        return;

    offset = cfg_rd(d, at + 8u, 4);
    length = cfg_rd(d, at + 12u, 4);
    if (length < min_len || offset % align != 0 || !bar_range_ok(d, bar, offset, min_len))
        return;

    r->found = true;
    r->addr = d->bar_base[bar] + offset;
    r->length = length;
    if (r->length > d->bar_size[bar] - offset)
        r->length = d->bar_size[bar] - offset;
    if (cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG)
        d->notify_off_multiplier = cfg_rd(d, at + VIRTIO_PCI_CAP_MULT_OFF, 4);
}

/* Queue pairs the parameters ask for, 1 .. REFDRV_PAIRS_MAX. */
static uint16_t pairs_wanted(const struct refdrv_params *p)
{
    if (p->queue_pairs_count <= 1u)
        return 1u;
    return p->queue_pairs_count > REFDRV_PAIRS_MAX ? (uint16_t)REFDRV_PAIRS_MAX : p->queue_pairs_count;
}

/* MSI-X entries the driver programs of a table of nvec: configuration changes and one
 * per data queue of the pairs wanted (the pairs used are not known before the features
 * are; they are never more). */
static uint32_t msix_entries_used(const struct refdrv *d, uint32_t nvec)
{
    uint32_t want = 1u + 2u * pairs_wanted(d->p);
    return nvec < want ? nvec : want;
}

/* The MSI-X capability: table size and where the table is. The first usable one wins. */
static void parse_msix_cap(struct refdrv *d, uint32_t at)
{
    uint32_t msgctl, table, bir, offset, nvec;

    if (d->msix_cap != 0 || at + MSIX_CAP_LEN > PCI_CAP_AREA_END)
        return;
    msgctl = cfg_rd(d, at + MSIX_CAP_MSGCTL, 2);
    table = cfg_rd(d, at + MSIX_CAP_TABLE, 4);
    nvec = (msgctl & MSIX_MSGCTL_TABLE_SIZE_MASK) + 1u;
    bir = table & MSIX_BIR_MASK;
    offset = table & ~MSIX_BIR_MASK;
    /* Only the entries this driver programs have to be inside the BAR. */
    if (!bar_range_ok(d, bir, offset, (uint64_t)msix_entries_used(d, nvec) * MSIX_ENTRY_SIZE))
        return;
    d->msix_cap = (uint8_t)at;
    d->msix_nvec = nvec;
    d->msix_table = d->bar_base[bir] + offset;
}

/* viosim extension (VIOSIM_NET_F_DEVMEM_EVENT): a Vendor data capability whose
 * vendor_id and format say it names the device-memory event suppression window. "The
 * driver MUST qualify the vendor_id before interpreting or writing into the Vendor
 * data capability": anything else is ignored, as is a window that does not fit its BAR
 * or has slots too small for the 4-byte structure. */
static void parse_devmem_event_cap(struct refdrv *d, uint32_t at)
{
    uint32_t bar, offset, length, slot_bytes, slots;

    if (d->devmem_event.found || at + sizeof(struct viosim_devmem_event_cap) > PCI_CAP_AREA_END)
        return;
    if (cfg_rd(d, at + 3u, 1) != VIRTIO_PCI_CAP_VENDOR_CFG ||
        cfg_rd(d, at + 2u, 1) < sizeof(struct viosim_devmem_event_cap) ||
        cfg_rd(d, at + 4u, 2) != VIOSIM_PCI_VNDR_ID || cfg_rd(d, at + 6u, 1) != VIOSIM_VNDR_FMT_DEVMEM_EVENT)
        return;
    bar = cfg_rd(d, at + 7u, 1);
    offset = cfg_rd(d, at + 8u, 4);
    length = cfg_rd(d, at + 12u, 4);
    slot_bytes = cfg_rd(d, at + 16u, 2);
    slots = cfg_rd(d, at + 18u, 2);
    if (bar >= PCI_NUM_BARS || slot_bytes < VIOSIM_DEVMEM_SLOT_BYTES || slot_bytes % 4u != 0 ||
        slots == 0 || offset % 4u != 0 || (uint64_t)slot_bytes * slots > length ||
        !bar_range_ok(d, bar, offset, (uint64_t)slot_bytes * slots))
        return;
    d->devmem_event.found = true;
    d->devmem_event.addr = d->bar_base[bar] + offset;
    d->devmem_event.length = length;
    d->devmem_slot_bytes = slot_bytes;
    d->devmem_slots = slots;
}

static enum refdrv_result pci_walk_caps(struct refdrv *d)
{
    bool seen[PCI_CAP_AREA_END / 4u] = { false };
    uint32_t at;

    if (!(cfg_rd(d, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST_MASK))
        return REFDRV_BAD_CAPS;
    at = cfg_rd(d, PCI_CAPABILITY_LIST, 1) & PCI_CAP_PTR_MASK;
    /* Bounded walk: a list that points back into itself or below the header ends. */
    for (uint32_t n = 0; n < PCI_CAP_WALK_MAX && at != 0; n++) {
        uint32_t id;

        if (at < PCI_CAP_AREA_START || at >= PCI_CAP_AREA_END || seen[at / 4u])
            break;
        seen[at / 4u] = true;
        id = cfg_rd(d, at, 1);
        if (id == PCI_CAP_ID_VNDR) {
            parse_virtio_cap(d, at);
            if (d->p->devmem_event)
                parse_devmem_event_cap(d, at);
        }
        else if (id == PCI_CAP_ID_MSIX)
            parse_msix_cap(d, at);
        at = cfg_rd(d, at + 1u, 1) & PCI_CAP_PTR_MASK;
    }
    /* Common and notify are required to drive the device; interrupts need MSI-X or,
     * without it, the ISR for INTx. Device config is optional here. */
    if (!d->common.found || !d->notify.found || (d->msix_cap == 0 && !d->isr.found))
        return REFDRV_BAD_CAPS;
    return REFDRV_OK;
}

/* ---- MSI-X ---- */

/* The vector of data queue `slot` (its queue index) once the pairs in use are known:
 * one per queue when the table has room for them all and configuration changes, else
 * one shared by the data queues, else the configuration vector (refdrv_int.h); none
 * with INTx. */
static uint16_t queue_vector(const struct refdrv *d, uint16_t slot)
{
    if (d->intx)
        return VIRTIO_MSI_NO_VECTOR; /* INTx: no event is mapped */
    if (d->msix_nvec >= 1u + 2u * (uint32_t)d->pairs)
        return (uint16_t)(slot + 1u);
    return d->msix_nvec >= 2u ? 1u : 0u;
}

static void msix_setup(struct refdrv *d)
{
    uint32_t used = msix_entries_used(d, d->msix_nvec);
    uint32_t ctl;

    for (uint32_t v = 0; v < used; v++) {
        uint64_t e = d->msix_table + (uint64_t)v * MSIX_ENTRY_SIZE;
        mmio_wr(d, e + MSIX_ENTRY_ADDR_LO, 4, (uint32_t)d->h->msi_base);
        mmio_wr(d, e + MSIX_ENTRY_ADDR_HI, 4, (uint32_t)(d->h->msi_base >> 32));
        mmio_wr(d, e + MSIX_ENTRY_DATA, 4, v);
        mmio_wr(d, e + MSIX_ENTRY_CTRL, 4, 0); /* unmask */
    }
    rd_inject(d, INJ_MSIX, NULL, NULL);
    ctl = cfg_rd(d, d->msix_cap + MSIX_CAP_MSGCTL, 2);
    ctl = (ctl | MSIX_MSGCTL_ENABLE_MASK) & ~(uint32_t)MSIX_MSGCTL_FMASK_MASK;
    cfg_wr(d, d->msix_cap + MSIX_CAP_MSGCTL, 2, ctl);
}

/* No MSI-X capability: legacy INTx. Interrupt Disable (set while the BARs were
 * placed) is cleared so the pin can reach the host, and no event is mapped to a vector
 * ("if MSI-X capability is present and enabled ... select a vector"). */
static void intx_setup(struct refdrv *d)
{
    d->intx = true;
    cfg_wr(d, PCI_COMMAND, 2, cfg_rd(d, PCI_COMMAND, 2) & ~(uint32_t)PCI_COMMAND_INTX_DISABLE_MASK);
}

/* ---- feature negotiation ---- */

static void features_wanted(vs_features *f)
{
    memset(f, 0, sizeof(*f));
    vs_feature_set(f, VIRTIO_F_VERSION_1_BIT);
    vs_feature_set(f, VIRTIO_F_RING_PACKED_BIT);
    vs_feature_set(f, VIRTIO_NET_F_MAC_BIT);
    vs_feature_set(f, VIRTIO_F_EVENT_IDX_BIT);
    vs_feature_set(f, VIRTIO_F_INDIRECT_DESC_BIT);
    vs_feature_set(f, VIRTIO_F_IN_ORDER_BIT);
    vs_feature_set(f, VIRTIO_F_NOTIFICATION_DATA_BIT);
    vs_feature_set(f, VIRTIO_F_ORDER_PLATFORM_BIT);
    /* "A driver SHOULD accept VIRTIO_F_ACCESS_PLATFORM if it is offered", and then
     * programs the IOMMU (rd_iommu_setup); declined when it cannot (rd_iommu_possible). */
    vs_feature_set(f, VIRTIO_F_ACCESS_PLATFORM_BIT);
}

/* The control queue and the coalescing features, only when coalescing is asked for:
 * otherwise the device runs exactly as without them. */
static void features_wanted_coal(const struct refdrv_params *p, vs_features *f)
{
    if (p->coal_policy == REFDRV_COAL_OFF)
        return;
    vs_feature_set(f, VIRTIO_NET_F_CTRL_VQ_BIT);
    vs_feature_set(f, VIRTIO_NET_F_NOTF_COAL_BIT);
    vs_feature_set(f, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
}

/* Several queue pairs: VIRTIO_NET_F_MQ and the control queue it needs ("Feature bit
 * requirements"); the one-pair driver never asks, so the device runs as without them. */
static void features_wanted_mq(const struct refdrv_params *p, vs_features *f)
{
    if (pairs_wanted(p) > 1u) {
        vs_feature_set(f, VIRTIO_NET_F_MQ_BIT);
        vs_feature_set(f, VIRTIO_NET_F_CTRL_VQ_BIT);
    }
    if (p->mrg_rxbuf)
        vs_feature_set(f, VIRTIO_NET_F_MRG_RXBUF_BIT);
}

/* The IOMMU page size the parameters ask for (0: the 4 KiB default). */
static uint64_t io_page_bytes(const struct refdrv_params *p)
{
    return p->iommu_page_bytes != 0 ? p->iommu_page_bytes : IOMMU_PAGE_DEFAULT_BYTES;
}

/* Can this driver honour VIRTIO_F_ACCESS_PLATFORM? ("Reserved Feature Bits": a driver
 * that accepts it "MUST then either disable the IOMMU or configure the IOMMU to
 * translate bus addresses passed to the device into physical addresses in memory".)
 * It needs the platform hook that installs a page table, a page size the table format
 * has, an IOVA offset that keeps pages aligned, and every IOVA of guest memory (rounded
 * out to whole pages) below 2^48. Decided before the driver writes its features. */
bool rd_iommu_possible(const struct refdrv *d)
{
    const struct vs_host_ops *h = d->h;
    uint64_t page = io_page_bytes(d->p);
    uint64_t end;

    if (h->iommu_set_root == NULL)
        return false;
    if (page != IOMMU_PAGE_SIZE_4K && page != IOMMU_PAGE_SIZE_2M)
        return false;
    if (d->p->iova_offset % page != 0)
        return false;
    if (h->mem_size > IOVA_LIMIT || h->mem_base > IOVA_LIMIT - h->mem_size)
        return false;
    end = align_up(h->mem_base + h->mem_size, page); /* <= 2^48: no overflow */
    return end <= IOVA_LIMIT && d->p->iova_offset <= IOVA_LIMIT - end;
}

static enum refdrv_result negotiate(struct refdrv *d)
{
    vs_features want;
    uint8_t s;

    for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++) {
        common_wr(d, VIRTIO_PCI_COMMON_DFSELECT, 4, w);
        d->offered.w[w] = common_rd(d, VIRTIO_PCI_COMMON_DF, 4);
    }
    features_wanted(&want);
    features_wanted_coal(d->p, &want);
    features_wanted_mq(d->p, &want);
    /* viosim extension: asked for by the configuration and described by the device. */
    if (d->p->devmem_event && d->devmem_event.found) {
        vs_feature_set(&want, VIOSIM_NET_F_DEVMEM_EVENT_BIT);
        vs_feature_set(&want, VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT);
    }
    for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++)
        d->accepted.w[w] = d->offered.w[w] & want.w[w] & ~d->p->decline.w[w];

    /* Features this driver could not use with what the device presented. */
    if (!d->devcfg.found || d->devcfg.length < 6u)
        vs_feature_clear(&d->accepted, VIRTIO_NET_F_MAC_BIT);
    /* max_virtqueue_pairs must be readable ("exists only if VIRTIO_NET_F_MQ or
     * VIRTIO_NET_F_RSS is set"); MQ needs CTRL_VQ ("Feature bit requirements"). */
    if (!d->devcfg.found ||
        d->devcfg.length < offsetof(struct virtio_net_config, max_virtqueue_pairs) + 2u ||
        !vs_feature_has(&d->accepted, VIRTIO_NET_F_CTRL_VQ_BIT))
        vs_feature_clear(&d->accepted, VIRTIO_NET_F_MQ_BIT);
    /* CTRL_VQ asked for MQ only (no coalescing): without MQ no control queue is needed,
     * and the driver runs as a one-pair driver does. */
    if (!vs_feature_has(&d->accepted, VIRTIO_NET_F_MQ_BIT) && d->p->coal_policy == REFDRV_COAL_OFF)
        vs_feature_clear(&d->accepted, VIRTIO_NET_F_CTRL_VQ_BIT);
    if ((d->notify.addr % 4u) != 0 || d->notify.length < 4u)
        vs_feature_clear(&d->accepted, VIRTIO_F_NOTIFICATION_DATA_BIT);
    /* A feature the driver cannot honour is declined, not accepted and ignored: the
     * device then uses physical addresses ("If this feature bit is set to 0, then the
     * device has same access to memory addresses supplied to it as the driver has"), or,
     * as it MAY, refuses to operate without it (FEATURES_OK not kept). */
    if (!rd_iommu_possible(d))
        vs_feature_clear(&d->accepted, VIRTIO_F_ACCESS_PLATFORM_BIT);
    /* "Feature bit requirements": both coalescing features require CTRL_VQ. */
    if (!vs_feature_has(&d->accepted, VIRTIO_NET_F_CTRL_VQ_BIT)) {
        vs_feature_clear(&d->accepted, VIRTIO_NET_F_NOTF_COAL_BIT);
        vs_feature_clear(&d->accepted, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
    }

    /* "A driver MUST accept VIRTIO_F_VERSION_1 if it is offered", and this driver has no
     * legacy interface. Without RING_PACKED (not offered, or declined) it drives split
     * rings. */
    if (!vs_feature_has(&d->accepted, VIRTIO_F_VERSION_1_BIT))
        return rd_give_up(d, REFDRV_FEATURES_REFUSED);

    rd_inject(d, INJ_FEATURES, NULL, NULL);
    for (uint32_t w = 0; w < VS_FEATURE_WORDS; w++) {
        common_wr(d, VIRTIO_PCI_COMMON_GFSELECT, 4, w);
        common_wr(d, VIRTIO_PCI_COMMON_GF, 4, d->accepted.w[w]);
    }
    rd_status_set(d, VIRTIO_STATUS_FEATURES_OK);
    /* "Re-read device status to ensure the FEATURES_OK bit is still set: otherwise, the
     * device does not support our subset of features and the device is unusable." */
    s = status_read(d);
    if (s & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
        return rd_give_up(d, REFDRV_DEVICE_ERROR);
    if (!(s & VIRTIO_STATUS_FEATURES_OK)) {
        /* The device did not keep it: FAILED must not set it again (which would ask
         * for the same refused subset once more). */
        d->status &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
        return rd_give_up(d, REFDRV_FEATURES_REFUSED);
    }
    rd_inject(d, INJ_FEATURES_OK, NULL, NULL);

    d->f_event_idx = vs_feature_has(&d->accepted, VIRTIO_F_EVENT_IDX_BIT);
    d->f_in_order = vs_feature_has(&d->accepted, VIRTIO_F_IN_ORDER_BIT);
    d->f_notif_data = vs_feature_has(&d->accepted, VIRTIO_F_NOTIFICATION_DATA_BIT);
    d->f_order_platform = vs_feature_has(&d->accepted, VIRTIO_F_ORDER_PLATFORM_BIT);
    d->f_indirect = vs_feature_has(&d->accepted, VIRTIO_F_INDIRECT_DESC_BIT);
    d->f_access_platform = vs_feature_has(&d->accepted, VIRTIO_F_ACCESS_PLATFORM_BIT);
    d->f_ctrl_vq = vs_feature_has(&d->accepted, VIRTIO_NET_F_CTRL_VQ_BIT);
    d->f_notf_coal = vs_feature_has(&d->accepted, VIRTIO_NET_F_NOTF_COAL_BIT);
    d->f_vq_notf_coal = vs_feature_has(&d->accepted, VIRTIO_NET_F_VQ_NOTF_COAL_BIT);
    d->f_mq = vs_feature_has(&d->accepted, VIRTIO_NET_F_MQ_BIT);
    d->f_mrg_rxbuf = vs_feature_has(&d->accepted, VIRTIO_NET_F_MRG_RXBUF_BIT);
    d->st->mrg_rxbuf_negotiated = d->f_mrg_rxbuf ? 1u : 0u;
    /* The ring format, decided once for every queue. */
    d->f_packed = vs_feature_has(&d->accepted, VIRTIO_F_RING_PACKED_BIT);
    d->f_devmem_event = vs_feature_has(&d->accepted, VIOSIM_NET_F_DEVMEM_EVENT_BIT);
    d->st->devmem_event_negotiated = d->f_devmem_event ? 1u : 0u;
    d->f_devmem_recheck = vs_feature_has(&d->accepted, VIOSIM_NET_F_DEVMEM_EVENT_RECHECK_BIT);
    d->st->devmem_event_recheck_negotiated = d->f_devmem_recheck ? 1u : 0u;
    d->ring_ops = d->f_packed ? &dpq_ring_ops : &dsq_ring_ops;
    if (d->f_access_platform) {
        d->iova_offset = d->p->iova_offset;
        d->io_page = io_page_bytes(d->p);
    }
    return REFDRV_OK;
}

/* The MAC from the device-specific configuration, read byte by byte (8-bit fields take
 * 8-bit accesses) until config_generation is the same before and after ("Device
 * Configuration Space"). */
static void read_mac(struct refdrv *d)
{
    /* Without VIRTIO_NET_F_MAC: a locally administered unicast address of our own. */
    const uint8_t fallback[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };

    memcpy(d->mac, fallback, sizeof(d->mac));
    if (!vs_feature_has(&d->accepted, VIRTIO_NET_F_MAC_BIT))
        return;
    for (uint32_t t = 0; t < MAC_READ_TRIES; t++) {
        uint32_t before = common_rd(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
        for (uint32_t i = 0; i < 6u; i++)
            d->mac[i] = (uint8_t)mmio_rd(d, d->devcfg.addr + i, 1);
        if (common_rd(d, VIRTIO_PCI_COMMON_CFGGENERATION, 1) == before)
            break;
    }
}

/* With VIRTIO_NET_F_MQ: the device's max_virtqueue_pairs ("between 1 and 0x8000"; any
 * other value is a broken device) and the pairs to use, min(wanted, max). Without it
 * one pair ("If VIRTIO_NET_F_MQ feature bit is negotiated, N=max_virtqueue_pairs,
 * otherwise identify N=1"). The control queue's slot follows the pairs'. */
static enum refdrv_result mq_pairs_read(struct refdrv *d)
{
    const uint16_t wanted = pairs_wanted(d->p);

    d->max_pairs = 1;
    d->pairs = 1;
    if (d->f_mq) {
        uint32_t max = (uint32_t)mmio_rd(d, d->devcfg.addr + offsetof(struct virtio_net_config,
                                                                      max_virtqueue_pairs), 2);
        /* The control queue, 2 * max, must have a 16-bit index too. */
        if (max < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || max > VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX ||
            2u * max > UINT16_MAX)
            return rd_give_up(d, REFDRV_DEVICE_ERROR);
        d->max_pairs = (uint16_t)max;
        d->pairs = max < wanted ? (uint16_t)max : wanted;
    }
    d->cq = &d->q[2u * d->pairs];
    d->st->mq_pairs = d->pairs;
    return REFDRV_OK;
}

/* ---- the whole driver ---- */

static enum refdrv_result bring_up(struct refdrv *d)
{
    enum refdrv_result r;

    r = pci_identify(d);
    if (r != REFDRV_OK)
        return r;
    r = pci_setup_bars(d);
    if (r != REFDRV_OK)
        return r;
    r = pci_walk_caps(d);
    if (r != REFDRV_OK)
        return r;
    if (d->msix_cap != 0)
        msix_setup(d);
    else
        intx_setup(d);

    /* "Device Initialization": reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK,
     * re-read, device-specific setup, DRIVER_OK. */
    if (!rd_inject(d, INJ_RESET, NULL, NULL) && !rd_device_reset(d))
        return REFDRV_DEVICE_ERROR;
    rd_inject(d, INJ_INIT_START, NULL, NULL);
    rd_status_set(d, VIRTIO_STATUS_ACKNOWLEDGE);
    rd_status_set(d, VIRTIO_STATUS_DRIVER);
    rd_inject(d, INJ_INIT_DRIVER, NULL, NULL);
    r = negotiate(d);
    if (r != REFDRV_OK)
        return r;
    d->tx_layout = d->p->tx_layout;
    if (d->tx_layout == REFDRV_TX_INDIRECT && !d->f_indirect)
        d->tx_layout = REFDRV_TX_CHAIN;
    if (d->tx_layout > REFDRV_TX_INDIRECT)
        d->tx_layout = REFDRV_TX_ONE_DESC;
    read_mac(d);

    if (!d->intx) {
        common_wr(d, VIRTIO_PCI_COMMON_MSIX, 2, VEC_CONFIG);
        if (common_rd(d, VIRTIO_PCI_COMMON_MSIX, 2) != VEC_CONFIG)
            return rd_give_up(d, REFDRV_DEVICE_ERROR);
    }
    r = mq_pairs_read(d);
    if (r != REFDRV_OK)
        return r;
    /* receiveq1..P and transmitq1..P must exist, and controlq (queue 2 * max_virtqueue_pairs
     * with MQ, else 2) with CTRL_VQ. */
    if (common_rd(d, VIRTIO_PCI_COMMON_NUMQ, 2) <
        (d->f_ctrl_vq ? 2u * (uint32_t)d->max_pairs + 1u : 2u * (uint32_t)d->pairs))
        return rd_give_up(d, REFDRV_DEVICE_ERROR);
    rd_inject(d, INJ_DEVICE_SETUP, NULL, NULL);
    for (uint16_t i = 0; i < 2u * d->pairs; i++) {
        r = rd_queue_setup(d, i, i, queue_vector(d, i));
        if (r != REFDRV_OK)
            return r;
        /* A chain of two needs a ring of at least two. */
        if (i % 2u == TX_QUEUE && d->tx_layout == REFDRV_TX_CHAIN && d->q[i].size < 2u)
            d->tx_layout = REFDRV_TX_ONE_DESC;
    }
    r = rd_buffers_setup(d);
    if (r != REFDRV_OK)
        return r;
    r = rd_ctrl_setup(d);
    if (r != REFDRV_OK)
        return r;
    r = rd_mrg_setup(d);
    if (r != REFDRV_OK)
        return r;
    r = rd_iommu_setup(d);
    if (r != REFDRV_OK)
        return r;

    /* Populate the receive queues before the device goes live ("Fill the receive queues
     * with buffers"); the notifications wait for DRIVER_OK ("The driver MUST NOT send
     * any buffer available notifications to the device before setting DRIVER_OK"). */
    for (uint16_t k = 0; k < d->pairs; k++) {
        struct drv_queue *rx = &d->q[2u * k + RX_QUEUE];
        while (rd_post_rx(d, rx))
            ;
        rx->ops->publish(rx->ring);
    }

    rd_inject(d, INJ_BEFORE_DRIVER_OK, &d->q[RX_QUEUE], NULL);
    rd_status_set(d, VIRTIO_STATUS_DRIVER_OK);
    if (status_read(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
        return REFDRV_DEVICE_ERROR;
    rd_kick(d, &d->q[RX_QUEUE]);
    /* Only receiveq1 and transmitq1 are used until VQ_PAIRS_SET; the other receive queues
     * are announced once the device uses them. */
    r = rd_mq_start(d);
    if (r != REFDRV_OK)
        return r;
    for (uint16_t k = 1; k < d->pairs; k++)
        rd_kick(d, &d->q[2u * k + RX_QUEUE]);
    r = rd_coal_start(d);
    if (r == REFDRV_OK)
        rd_inject(d, INJ_AFTER_DRIVER_OK, NULL, NULL);
    return r;
}

static bool host_ops_usable(const struct vs_host_ops *h)
{
    return h != NULL && h->cfg_read != NULL && h->cfg_write != NULL && h->mmio_read != NULL &&
           h->mmio_write != NULL && h->wait_interrupt != NULL && h->cpu_work != NULL &&
           h->now_ps != NULL;
}

size_t refdrv_state_bytes(void)
{
    return sizeof(struct refdrv);
}

enum refdrv_result refdrv_run(const struct vs_host_ops *host, const struct refdrv_params *p,
                              struct refdrv_stats *stats)
{
    /* The driver's own bookkeeping (rings' id tables): once, off the thread's stack. */
    void *state = calloc(1, sizeof(struct refdrv));
    if (state == NULL)
        return REFDRV_NO_MEMORY;
    enum refdrv_result r = refdrv_run_in(state, host, p, stats);
    free(state);
    return r;
}

enum refdrv_result refdrv_run_in(void *state, const struct vs_host_ops *host,
                                 const struct refdrv_params *p, struct refdrv_stats *stats)
{
    struct refdrv_stats scratch;
    struct refdrv *d = state;
    enum refdrv_result r;

    if (stats == NULL) {
        memset(&scratch, 0, sizeof(scratch));
        stats = &scratch;
    } else {
        struct hist *lat = stats->latency;
        memset(stats, 0, sizeof(*stats));
        stats->latency = lat;
    }
    if (!host_ops_usable(host) || p == NULL)
        return REFDRV_NO_DEVICE;
    if (host->mem == NULL || host->mem_size == 0)
        return REFDRV_NO_MEMORY;

    d->h = host;
    d->p = p;
    d->st = stats;
    rd_traffic_setup(d);

    r = bring_up(d);
    if (r == REFDRV_OK)
        r = rd_run_traffic(d);

    /* Leave the device reset, whatever happened, once we have touched its status. */
    if (d->status_written)
        rd_device_reset(d);
    return r;
}

const char *refdrv_inject_name(enum refdrv_inject i)
{
    static const char *const names[REFDRV_INJECT_COUNT] = {
#define REFDRV_INJECT_NAME(name) #name,
        REFDRV_INJECTIONS(REFDRV_INJECT_NAME)
#undef REFDRV_INJECT_NAME
    };
    return (unsigned)i < REFDRV_INJECT_COUNT ? names[i] : "unknown";
}

const char *refdrv_result_name(enum refdrv_result r)
{
    switch (r) {
    case REFDRV_OK: return "ok";
    case REFDRV_NO_DEVICE: return "no_device";
    case REFDRV_BAD_CAPS: return "bad_caps";
    case REFDRV_FEATURES_REFUSED: return "features_refused";
    case REFDRV_NO_MEMORY: return "no_memory";
    case REFDRV_DEVICE_ERROR: return "device_error";
    case REFDRV_TIMEOUT: return "timeout";
    case REFDRV_MQ_REFUSED: return "mq_refused";
    }
    return "unknown";
}
