/*
 * shm/internal.h - helpers shared by the .c files of shm/; not part of the module's contract.
 *
 * Arena links (hdr.free_head, hdr.limbo_head, shm_block_hdr_t.next_off) hold the offset of a
 * block's header; callers outside the arena only ever see payload offsets (header + 32 bytes).
 */
#ifndef FD_SHM_INTERNAL_H
#define FD_SHM_INTERNAL_H

#include "common/bits.h"
#include "shm/shm.h"

/* pid value of a reader slot or DP row while its fields are being cleared by whoever won the
 * right to free it; nobody else writes the slot meanwhile, and registration only claims 0. */
#define SHM_PID_REAPING (-1)

static inline uint64_t shm_block_off(const shm_seg_t *s, uint64_t i)
{
    return s->hdr->arena_off + i * SHM_ARENA_BLOCK_SIZE;
}

static inline shm_block_hdr_t *shm_block_at(const shm_seg_t *s, uint64_t i)
{
    return (shm_block_hdr_t *)shm_ptr(s, shm_block_off(s, i));
}

/* Index of the block whose header (payload = false) or payload (true) is at `off`; -1 if `off`
 * is not exactly such an address inside the arena. */
static inline long shm_block_index(const shm_seg_t *s, uint64_t off, bool payload)
{
    uint64_t base = s->hdr->arena_off + (payload ? sizeof(shm_block_hdr_t) : 0);
    if (off < base)
        return -1;
    uint64_t rel = off - base;
    if (rel % SHM_ARENA_BLOCK_SIZE || rel / SHM_ARENA_BLOCK_SIZE >= s->hdr->arena_blocks)
        return -1;
    return (long)(rel / SHM_ARENA_BLOCK_SIZE);
}

/* Put every block on the free list (segment creation). */
void shm_arena_format(shm_seg_t *s);

#endif
