/* iommu.h -- IOVA to guest-physical translation: page walks, an IOTLB, PASIDs.
 *
 * The IOMMU sits between the device's DMA and guest memory. Each request names an
 * address space (a PASID; the platform gives each queue its own) and an IOVA; the
 * IOMMU looks the page up in its IOTLB and, on a miss, walks that address space's
 * page table in guest memory, one 8-byte read per level through the walk ops. It
 * returns the guest-physical address, the page's size (so the caller can split a DMA
 * at the page boundary), and the work done: whether the IOTLB hit and how many table
 * entries the walk read. Time is the platform's job: it charges each walk read as the
 * memory read it is, and the lookup as its configured latency.
 *
 * With `enabled` false the IOMMU is bypassed and every IOVA is its own physical
 * address: that is the device's view when VIRTIO_F_ACCESS_PLATFORM is not negotiated.
 *
 * ---- Page-table format (ours, x86-64-like, documented here) ----
 *
 *   IOVA: 48 bits; a request with any of bits 48..63 set faults (IOMMU_FAULT_IOVA_RANGE).
 *   Four levels, 9 IOVA bits each. Level 4 is the root table.
 *
 *       level 4 index = IOVA bits 47..39      level 2 index = IOVA bits 29..21
 *       level 3 index = IOVA bits 38..30      level 1 index = IOVA bits 20..12
 *
 *   Every table is one 4 KiB page, 4 KiB aligned: 512 entries of 8 bytes, little-endian.
 *   Entry bits:
 *       0       present. Clear: the entry is not present (IOMMU_FAULT_UNMAPPED) and
 *               every other bit of it is ignored (free for the driver's use).
 *       1       writable. A page is writable only if every entry on its walk has it
 *               (so a table entry can take write access away from a whole subtree).
 *       7       leaf, at level 2 only: the entry maps a 2 MiB page. At level 1 every
 *               present entry is a 4 KiB leaf; at levels 3 and 4 bit 7 is reserved
 *               (no 1 GiB pages).
 *       12..51  physical address of the next-level table or of the page frame
 *               (4 KiB aligned; for a 2 MiB leaf, 2 MiB aligned: bits 12..20 are
 *               reserved and must be zero).
 *       others  reserved: 2..6, 8..11, 52..63 (and 7 outside level 2). A present entry
 *               with a reserved bit set faults (IOMMU_FAULT_RESERVED_BITS).
 *
 *   The tables are written by the guest and are hostile input: a walk reads at most
 *   four entries, every read goes through the walk ops (which refuse addresses not
 *   backed by guest memory: IOMMU_FAULT_WALK_RANGE), and nothing read is used as an
 *   index into host memory.
 *
 * ---- IOTLB ----
 *
 *   struct iotlb is a set-associative translation cache usable on its own (the device's
 *   ATS translation cache is a second instance). Entries are tagged by (PASID, virtual
 *   page number, page size); a 2 MiB page is one entry. The set of an entry is its
 *   page number (IOVA >> page shift) XOR the PASID's spread (the PASID's bits reversed
 *   into the top bits of the set index, see iotlb_set_index), modulo the number of
 *   sets: without the PASID, two address spaces with the same layout would compete
 *   for the same sets while the others stay empty. A lookup, which does not know the
 *   page size, probes the set of the 4 KiB page number and then the set of the 2 MiB
 *   page number. Replacement is LRU (exact, by use stamps) or random (seeded
 *   xorshift64 kept in the struct). Faults are never cached. An entry caches the
 *   page's write permission; a write that finds only a read-only entry is a miss (the
 *   IOMMU walks again, so a permission upgrade needs no invalidation, as on x86).
 *
 * ---- Paging-structure caches ----
 *
 *   Beside the IOTLB the IOMMU caches entries of the upper levels that point to a
 *   next-level table, one fully associative LRU cache per level (4, 3 and 2), as the
 *   paging-structure caches of Intel VT-d and x86 do (PML4, PDPT and PDE caches). An
 *   entry of level L is tagged by (PASID, IOVA >> iommu_level_shift(L)): the IOVA bits
 *   that select it and every entry above it. It holds the next table's address and
 *   the AND of the writable bits from the root down to it. A walk probes the level-2
 *   cache first, then level 3, then level 4, stopping at the first hit, and reads only
 *   the levels below the hit: a level-2 hit leaves one read (the leaf), a level-3 hit
 *   two, a level-4 hit three. A cache of 0 entries does not exist (is not probed). As
 *   in the IOTLB, a write treats an entry without write permission as a miss.
 *   Only a walk that ends in a translation fills the caches (its table entries of
 *   levels 4..2 that point to a table; a 2 MiB leaf is the IOTLB's): a walk that
 *   faults caches nothing. Invalidation drops them with the IOTLB's entries: all, a
 *   PASID's, or (range) every entry of the PASID whose region (2 MiB, 1 GiB, 512 GiB)
 *   overlaps the range, which is conservative as hardware's page-selective
 *   invalidation is. A cached table address is only ever read through the walk ops,
 *   so a stale or hostile one faults like any other table pointer.
 *
 * Calling contract: the driver changes a mapping and then invalidates (all, a PASID,
 * or a range); until then the IOTLB may keep serving the old translation, exactly as
 * hardware does. Changing a PASID's root, or enabling/disabling the IOMMU, drops
 * the cached translations concerned (a context change, not a page-table change).
 *
 * Both structs hold their IOTLB storage inline (IOTLB_ENTRIES_MAX entries, ~128 KiB;
 * struct iommu also its paging-structure caches, 3 x IOMMU_PSC_ENTRIES_MAX entries):
 * allocate them once, not on a thread stack. Nothing here allocates or prints.
 */
#ifndef VIOSIM_IOMMU_H
#define VIOSIM_IOMMU_H

#include <stdbool.h>
#include <stdint.h>

#include "guest_ops.h"
#include "vs_reason.h"

/* ---- page-table format ---- */

#define IOMMU_IOVA_BITS        48
#define IOMMU_PA_BITS          52
#define IOMMU_LEVELS           4
#define IOMMU_LEVEL_BITS       9
#define IOMMU_PTES_PER_TABLE   512u
#define IOMMU_PTE_SIZE         8u
#define IOMMU_TABLE_SIZE       4096u

#define IOMMU_PAGE_SHIFT_4K    12
#define IOMMU_PAGE_SHIFT_2M    21
#define IOMMU_PAGE_SIZE_4K     (1ull << IOMMU_PAGE_SHIFT_4K)
#define IOMMU_PAGE_SIZE_2M     (1ull << IOMMU_PAGE_SHIFT_2M)

#define IOMMU_PTE_PRESENT_BIT  0
#define IOMMU_PTE_WRITABLE_BIT 1
#define IOMMU_PTE_LEAF_BIT     7
#define IOMMU_PTE_PRESENT_MASK  (1ull << IOMMU_PTE_PRESENT_BIT)
#define IOMMU_PTE_WRITABLE_MASK (1ull << IOMMU_PTE_WRITABLE_BIT)
#define IOMMU_PTE_LEAF_MASK     (1ull << IOMMU_PTE_LEAF_BIT)
#define IOMMU_PTE_ADDR_MASK     0x000ffffffffff000ull /* bits 12..51 */

/* Lowest IOVA bit that indexes a table of `level` (1..4): 12, 21, 30, 39. */
static inline unsigned iommu_level_shift(unsigned level)
{
    return IOMMU_PAGE_SHIFT_4K + IOMMU_LEVEL_BITS * (level - 1u);
}

/* Index of iova's entry in its table of `level` (1..4). */
static inline unsigned iommu_pte_index(uint64_t iova, unsigned level)
{
    return (unsigned)(iova >> iommu_level_shift(level)) & (IOMMU_PTES_PER_TABLE - 1u);
}

/* ---- IOTLB: a set-associative translation cache ---- */

#define IOTLB_ENTRIES_MAX 4096u

enum iotlb_policy {
    IOTLB_LRU = 0,  /* evict the least recently used way of the set */
    IOTLB_RANDOM,   /* evict a pseudo-random way (seeded, deterministic) */
};

struct iotlb_config {
    uint32_t entries;  /* total entries, <= IOTLB_ENTRIES_MAX; 0 = no caching */
    uint32_t ways;     /* associativity; entries / ways sets, a power of two */
    enum iotlb_policy policy;
    uint64_t seed;     /* IOTLB_RANDOM: xorshift64 seed (0 picks a fixed non-zero one) */
};

struct iotlb_entry {
    uint64_t vpn;        /* IOVA >> page_shift */
    uint64_t pa_base;    /* guest-physical address of the page */
    uint64_t stamp;      /* LRU: the cache's clock at the last use */
    uint32_t pasid;
    uint8_t page_shift;  /* IOMMU_PAGE_SHIFT_4K or IOMMU_PAGE_SHIFT_2M */
    bool writable;
    bool valid;
};

struct iotlb_stats {
    uint64_t lookups;
    uint64_t hits;
    uint64_t misses;
    uint64_t inserts;             /* new entries (an update of a present tag is not one) */
    uint64_t evictions;           /* valid entries replaced by an insert */
    uint64_t invalidations;       /* invalidation commands */
    uint64_t entries_invalidated; /* valid entries those commands dropped */
};

struct iotlb {
    struct iotlb_config cfg;
    uint32_t sets;       /* entries / ways (0 when entries is 0) */
    uint32_t index_bits; /* log2(sets) */
    uint64_t clock;      /* LRU use counter */
    uint64_t rng;        /* xorshift64 state for IOTLB_RANDOM */
    struct iotlb_stats stats;
    struct iotlb_entry e[IOTLB_ENTRIES_MAX]; /* set s is e[s * ways .. s * ways + ways - 1] */
};

/* NULL if cfg is usable, else one sentence saying what is wrong (for the config
 * layer to report with the key's name). */
const char *iotlb_check_config(const struct iotlb_config *cfg);

/* Clear the whole cache (entries, stats) and take cfg, which must pass
 * iotlb_check_config. */
void iotlb_init(struct iotlb *t, const struct iotlb_config *cfg);

/* Set that holds pasid's page number vpn (of either page size): the low bits of vpn
 * XOR the PASID's bits reversed into the index's width (bits above the width folded
 * in first), so PASIDs 0, 1, 2, 3 start at sets 0, sets/2, sets/4, 3*sets/4. */
uint32_t iotlb_set_index(const struct iotlb *t, uint32_t pasid, uint64_t vpn);

/* Look iova up in pasid's translations. A hit needs a valid entry with the same tag
 * and, if `write`, a writable one; it becomes the most recently used of its set and
 * is copied to *out (if not NULL). Counts a lookup and a hit or a miss. */
bool iotlb_lookup(struct iotlb *t, uint32_t pasid, uint64_t iova, bool write,
                  struct iotlb_entry *out);

/* Cache the translation of the page holding iova (page_shift 12 or 21; pa_base is
 * the page's physical address). An entry with the same tag is updated in place;
 * otherwise an invalid way of the set is used, else the policy picks a victim. */
void iotlb_insert(struct iotlb *t, uint32_t pasid, uint64_t iova, unsigned page_shift,
                  uint64_t pa_base, bool writable);

/* Drop every entry / every entry of pasid / every entry of pasid whose page overlaps
 * [iova, iova + len) (len 0 drops nothing; a range past 2^64 is clipped). Each
 * returns the number of valid entries dropped. */
uint32_t iotlb_invalidate_all(struct iotlb *t);
uint32_t iotlb_invalidate_pasid(struct iotlb *t, uint32_t pasid);
uint32_t iotlb_invalidate_range(struct iotlb *t, uint32_t pasid, uint64_t iova, uint64_t len);

/* Physical address of iova through entry e (which covers it). */
static inline uint64_t iotlb_entry_pa(const struct iotlb_entry *e, uint64_t iova)
{
    return e->pa_base + (iova & ((1ull << e->page_shift) - 1u));
}

/* ---- IOMMU ---- */

#define IOMMU_PASIDS_MAX     64u
#define IOMMU_FAULT_LOG_LEN  16u

enum iommu_status {
    IOMMU_OK = 0,
    IOMMU_FAULT, /* the translation faulted; see iommu_result.fault and the fault log */
};

/* Paging-structure caches: one for each level whose entries point to a table. */
#define IOMMU_PSC_LOWEST_LEVEL 2
#define IOMMU_PSC_LEVELS       (IOMMU_LEVELS - IOMMU_PSC_LOWEST_LEVEL + 1) /* 4, 3, 2 */
#define IOMMU_PSC_ENTRIES_MAX  256u

/* Index of level (2..4) in the per-level arrays below. */
static inline unsigned iommu_psc_slot(unsigned level)
{
    return level - IOMMU_PSC_LOWEST_LEVEL;
}

struct iommu_config {
    bool enabled;              /* false: bypass, every IOVA is its physical address */
    struct iotlb_config iotlb;
    /* Entries of the paging-structure cache of each level, by iommu_psc_slot(level);
     * 0 = no cache for that level, at most IOMMU_PSC_ENTRIES_MAX. */
    uint32_t psc_entries[IOMMU_PSC_LEVELS];
};

struct iommu_psc_entry {
    uint64_t tag;        /* IOVA >> iommu_level_shift(level) */
    uint64_t table;      /* guest-physical address of the next-level table */
    uint64_t stamp;      /* LRU: the IOMMU's PSC clock at the last use */
    uint32_t pasid;
    bool writable;       /* AND of the writable bits from the root to this entry */
    bool valid;
};

/* One level's paging-structure cache: fully associative, LRU. */
struct iommu_psc {
    uint32_t entries;    /* from the config; 0 = the level has no cache */
    struct iommu_psc_entry e[IOMMU_PSC_ENTRIES_MAX];
};

/* Work of one level's paging-structure cache. A walk probes the caches from level 2
 * up and stops at the first hit, so a level's lookups are the walks that missed every
 * cache below it: hits + misses. */
struct iommu_psc_counts {
    uint64_t hits;                /* walks that started below this level */
    uint64_t misses;
    uint64_t inserts;
    uint64_t evictions;           /* valid entries replaced by an insert */
    uint64_t entries_invalidated; /* valid entries dropped by invalidation or a root change */
};

/* One translation, as the caller uses it and the platform charges it. */
struct iommu_result {
    uint64_t pa;          /* guest-physical address of the IOVA (OK only) */
    uint64_t page_size;   /* 4 KiB or 2 MiB; 0 in bypass (no pages) */
    uint64_t span;        /* bytes from the IOVA to the end of its page: a DMA longer
                           * than this must be split (bypass: to 2^64, saturated) */
    uint32_t walk_reads;  /* page-table entries read (0 on an IOTLB hit or in bypass;
                           * a paging-structure cache hit leaves out the levels above) */
    uint8_t psc_hit_level;/* level whose cached entry the walk started from (2..4), 0 =
                           * no paging-structure cache hit (or no walk) */
    bool tlb_hit;
    bool writable;        /* the page may be written (what an ATS cache would keep) */
    bool bypass;
    enum vs_reason fault; /* VS_REASON_NONE, or why the translation faulted */
};

/* One recorded fault. */
struct iommu_fault {
    uint64_t iova;
    uint32_t pasid;
    uint8_t level;        /* level of the entry that faulted (4..1; the leaf's for a
                           * read-only write); 0 when no table was read */
    bool write;
    enum vs_reason reason;
};

/* Work counters of one address space (or of all). */
struct iommu_counts {
    uint64_t lookups;     /* IOTLB lookups */
    uint64_t hits;
    uint64_t misses;
    uint64_t walks;       /* page walks started */
    uint64_t walk_reads;  /* page-table entry reads */
    uint64_t faults;
};

struct iommu_stats {
    uint64_t requests;    /* iommu_translate calls */
    uint64_t bypassed;    /* requests served as identity (IOMMU disabled) */
    struct iommu_counts total;
    struct iommu_counts pasid[IOMMU_PASIDS_MAX]; /* a PASID out of range counts in total only */
    struct iommu_psc_counts psc[IOMMU_PSC_LEVELS]; /* by iommu_psc_slot(level) */
};

struct iommu {
    struct iommu_config cfg;
    uint64_t root[IOMMU_PASIDS_MAX]; /* level-4 table of each PASID; 0 = no address space */
    struct iotlb tlb;
    struct iommu_psc psc[IOMMU_PSC_LEVELS]; /* by iommu_psc_slot(level) */
    uint64_t psc_clock;                      /* LRU use counter of the caches */
    bool psc_any;                            /* some level has a cache */

    /* Fault log: the first IOMMU_FAULT_LOG_LEN faults since the last clear are kept;
     * fault_count counts them all (fault_count - fault_logged were not recorded). */
    struct iommu_fault fault_log[IOMMU_FAULT_LOG_LEN];
    uint32_t fault_logged;
    uint64_t fault_count;

    struct iommu_stats stats;
};

/* NULL if cfg is usable, else one sentence saying what is wrong. */
const char *iommu_check_config(const struct iommu_config *cfg);

/* Clear the whole IOMMU (no address spaces, empty IOTLB and fault log, zero stats)
 * and take cfg, which must pass iommu_check_config. */
void iommu_init(struct iommu *m, const struct iommu_config *cfg);

/* Turn translation on (ACCESS_PLATFORM negotiated) or off (bypass). Drops the IOTLB
 * and the paging-structure caches. */
void iommu_set_enabled(struct iommu *m, bool enabled);

/* Give pasid the page table rooted at root (0 removes the address space). Refuses a
 * PASID out of range (IOMMU_FAULT_PASID_RANGE) or a root that is not 4 KiB aligned
 * or lies above 52 bits (IOMMU_ROOT_INVALID), changing nothing. Drops the PASID's
 * cached translations and paging-structure cache entries. */
enum vs_reason iommu_set_root(struct iommu *m, uint32_t pasid, uint64_t root);

/* Translate iova for a read (write false) or a write by the device in address space
 * pasid. walk_ops reads the page table on a miss (kind VS_DMA_PT_READ, 8 bytes per
 * entry) and must not be NULL while the IOMMU is enabled; it is not called in bypass
 * or on a hit, and not for the levels a paging-structure cache hit skips. Fills *r.
 * On a fault, records it in the log and returns IOMMU_FAULT with r->fault saying
 * why; nothing is cached. */
enum iommu_status iommu_translate(struct iommu *m, const struct vs_guest_ops *walk_ops,
                                  uint32_t pasid, uint64_t iova, bool write,
                                  struct iommu_result *r);

/* Invalidation commands: drop the IOTLB's entries (see the iotlb_invalidate_*
 * contracts) and the paging-structure caches' entries in the same scope (a range
 * drops those whose region overlaps it). Return the number of IOTLB entries dropped;
 * the caches' drops are counted in stats.psc[].entries_invalidated. */
uint32_t iommu_invalidate_all(struct iommu *m);
uint32_t iommu_invalidate_pasid(struct iommu *m, uint32_t pasid);
uint32_t iommu_invalidate_range(struct iommu *m, uint32_t pasid, uint64_t iova, uint64_t len);

/* Empty the fault log (fault_count too); the statistics keep counting. */
void iommu_clear_faults(struct iommu *m);

#endif
