#include "refdrv_int.h"

/* ---- guest memory ---- */

/* Hand out bytes of guest memory aligned (guest-physical) to align. NULL when full. They
 * are zero: guest memory starts zero-filled (vs_host_ops.mem) and is handed out once. */
static uint8_t *mem_alloc(struct refdrv *d, uint64_t bytes, uint64_t align, uint64_t *gpa)
{
    const struct vs_host_ops *h = d->h;
    uint64_t start = align_up(h->mem_base + d->mem_used, align) - h->mem_base;

    if (start < d->mem_used || start > h->mem_size || bytes > h->mem_size - start)
        return NULL;
    d->mem_used = start + bytes;
    *gpa = h->mem_base + start;
    return h->mem + start;
}

/* The driver's own memory, which the device never reaches (no IOMMU mapping). */
uint8_t *rd_host_alloc(struct refdrv *d, uint64_t bytes, uint64_t align)
{
    uint64_t gpa;

    return mem_alloc(d, bytes, align, &gpa);
}

/* The PASID role (driver.queue_pasid) of the queue in driver slot `slot`. */
static uint32_t slot_pasid(const struct refdrv *d, uint16_t slot)
{
    if (slot == 2u * d->pairs)
        return d->p->queue_pasid[PASID_CTRL];
    return d->p->queue_pasid[slot % 2u == RX_QUEUE ? PASID_RX : PASID_TX];
}

/* Guest memory the device will reach by DMA, for the queue in slot `queue`; `writable`: the device
 * writes it. Without ACCESS_PLATFORM this is mem_alloc, nothing more. With it, the
 * region is recorded for the IOMMU tables (rd_iommu_setup), and a region whose address
 * space (the queue's PASID) or access differs from the previous region's starts on a
 * fresh IOMMU page. Every IOMMU page then holds regions of one (PASID, access) only, so
 * no page needs two different mappings in one address space, whatever the page size. */
uint8_t *rd_dev_alloc(struct refdrv *d, uint64_t bytes, uint64_t align, uint16_t queue,
                      bool writable, uint64_t *gpa)
{
    uint32_t pasid;
    const struct dev_region *last;
    struct dev_region *r;
    uint8_t *mem;

    if (!d->f_access_platform)
        return mem_alloc(d, bytes, align, gpa);

    assert(queue < DRV_QUEUES_MAX && is_pow2(align));
    pasid = slot_pasid(d, queue);
    if (d->nregions >= DEV_REGIONS_MAX)
        return NULL; /* not reached: the driver allocates at most DEV_REGIONS_MAX */
    last = d->nregions > 0 ? &d->region[d->nregions - 1u] : NULL;
    if ((last == NULL || last->pasid != pasid || last->writable != writable) && align < d->io_page)
        align = d->io_page;
    mem = mem_alloc(d, bytes, align, gpa);
    if (mem == NULL)
        return NULL;
    r = &d->region[d->nregions++];
    r->gpa = *gpa;
    r->bytes = bytes;
    r->pasid = pasid;
    r->writable = writable;
    return mem;
}

/* The address the device is given for guest-physical gpa: the IOVA the driver mapped
 * it at with ACCESS_PLATFORM, else the physical address itself ("If
 * VIRTIO_F_ACCESS_PLATFORM is not offered, then a driver MUST pass only physical
 * addresses to the device"; not accepted, the device has "same access to memory
 * addresses supplied to it as the driver has"). The CPU's own accesses never use it. */
uint64_t rd_dev_addr(const struct refdrv *d, uint64_t gpa)
{
    return gpa + d->iova_offset;
}

/* ---- IOMMU (VIRTIO_F_ACCESS_PLATFORM, "Reserved Feature Bits") ---- */

/* Page-table pages below the root that mapping `bytes` of contiguous IOVA can need: the
 * range touches at most bytes / reach + 2 tables of a level whose tables each cover
 * `reach` bytes (level 1: 2 MiB, level 2: 1 GiB, level 3: 512 GiB). Counted as for
 * 4 KiB pages, so it also bounds 2 MiB pages (which need no level-1 tables). */
static uint64_t tables_bound(uint64_t bytes)
{
    uint64_t n = 0;

    for (unsigned level = 1; level < IOMMU_LEVELS; level++)
        n += (bytes >> iommu_level_shift(level + 1u)) + 2u;
    return n;
}

/* The IOMMU pages covering region r: [*first, *end), the region's start rounded down
 * and its end rounded up to the page size (inside guest memory, which rd_iommu_possible
 * keeps below 2^48, and rd_dev_alloc starts every new group on a page boundary). */
static void region_pages(const struct refdrv *d, const struct dev_region *r, uint64_t *first,
                         uint64_t *end)
{
    *first = r->gpa & ~(d->io_page - 1u);
    *end = align_up(r->gpa + r->bytes, d->io_page);
}

static struct io_space *find_space(struct refdrv *d, uint32_t pasid)
{
    for (uint32_t i = 0; i < d->nspaces; i++)
        if (d->space[i].pasid == pasid)
            return &d->space[i];
    return NULL;
}

/* Map region r in its address space s at IOVA = physical + iova_offset, one IOMMU page
 * at a time. A page an earlier region of the same (PASID, access) already mapped --
 * regions share pages: a ring's event areas sit in its descriptor ring's page, buffers
 * follow each other -- makes iopt_map answer BUSY; it is kept if it already says the
 * same. Any other answer (pool exhausted, a page mapped differently, which rd_dev_alloc's
 * layout rules out) is a failure. */
static bool map_region(struct refdrv *d, struct io_space *s, const struct dev_region *r)
{
    uint64_t first, end;

    region_pages(d, r, &first, &end);
    for (uint64_t pa = first; pa < end; pa += d->io_page) {
        uint64_t iova = pa + d->iova_offset, have_pa, have_size;
        bool have_writable;
        enum iopt_status st = iopt_map(&s->pt, iova, pa, d->io_page, d->io_page, r->writable);

        if (st == IOPT_OK) {
            d->st->iommu_pages_mapped++;
            continue;
        }
        if (st == IOPT_BUSY && iopt_resolve(&s->pt, iova, &have_pa, &have_size, &have_writable) &&
            have_pa == pa && have_size == d->io_page && have_writable == r->writable)
            continue;
        return false;
    }
    return true;
}

/* With ACCESS_PLATFORM negotiated, "configure the IOMMU to translate bus addresses
 * passed to the device into physical addresses in memory": build one address space
 * per distinct PASID of the RX and TX queues (in queue order, so runs are
 * deterministic; the control queue's too when CTRL_VQ is negotiated), map every
 * recorded region in its queue's space, then install each root through the platform.
 * Called once the rings and buffers exist and before DRIVER_OK, which is when the
 * device may start DMA ("The device MUST NOT consume buffers or send any used buffer
 * notifications to the driver before DRIVER_OK").
 * The table pool comes after all device memory, on a fresh IOMMU page (no page mapped
 * for the device covers a table, so the device cannot rewrite its own translations),
 * sized for the worst case at 4 KiB granularity: every root plus tables_bound of every
 * region. A pool that cannot be placed is REFDRV_NO_MEMORY; running out of it anyway,
 * or a platform that refuses a root, is REFDRV_DEVICE_ERROR. */
enum refdrv_result rd_iommu_setup(struct refdrv *d)
{
    static const uint16_t roles[] = { PASID_RX, PASID_TX, PASID_CTRL };
    const size_t nroles = d->f_ctrl_vq ? 3u : 2u;
    const struct vs_host_ops *h = d->h;
    uint64_t pages, pool_gpa;

    if (!d->f_access_platform)
        return REFDRV_OK;

    for (size_t i = 0; i < nroles; i++) {
        uint32_t pasid = d->p->queue_pasid[roles[i]];
        if (find_space(d, pasid) == NULL)
            d->space[d->nspaces++].pasid = pasid;
    }

    pages = d->nspaces; /* the roots */
    for (uint32_t i = 0; i < d->nregions; i++) {
        uint64_t first, end;
        region_pages(d, &d->region[i], &first, &end);
        pages += tables_bound(end - first);
    }
    /* Regions lie in guest memory, so this bound cannot overflow; a pool larger than
     * guest memory would not fit anyway. */
    if (pages > h->mem_size / IOMMU_TABLE_SIZE ||
        mem_alloc(d, pages * IOMMU_TABLE_SIZE, d->io_page, &pool_gpa) == NULL)
        return rd_give_up(d, REFDRV_NO_MEMORY);
    /* The pool follows at least one region, so no table sits at physical address 0
     * (which iopt and the root register both read as "none"). */
    iopt_pool_init(&d->pt_pool, pool_gpa, pages * IOMMU_TABLE_SIZE);

    for (uint32_t i = 0; i < d->nspaces; i++)
        if (iopt_init(&d->space[i].pt, h->mem, h->mem_base, h->mem_size, &d->pt_pool) != IOPT_OK)
            return rd_give_up(d, REFDRV_DEVICE_ERROR);
    for (uint32_t i = 0; i < d->nregions; i++) {
        struct io_space *s = find_space(d, d->region[i].pasid);
        if (s == NULL || !map_region(d, s, &d->region[i]))
            return rd_give_up(d, REFDRV_DEVICE_ERROR);
    }
    for (uint32_t i = 0; i < d->nspaces; i++)
        d->st->iommu_table_pages += d->space[i].pt.tables;

    /* The tables are complete in guest memory before the IOMMU is pointed at them; the
     * platform drops whatever its IOTLB held for the PASID. */
    for (uint32_t i = 0; i < d->nspaces; i++)
        if (h->iommu_set_root(h->ctx, d->space[i].pasid, d->space[i].pt.root) != 0)
            return rd_give_up(d, REFDRV_DEVICE_ERROR);
    return REFDRV_OK;
}
