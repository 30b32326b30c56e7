/*
 * shm/arena.c - fixed-size blocks for everything published RCU-style (views, later the prefix
 * tree), with a free list and a limbo list linked by offsets.
 *
 * Only writers (wlock held) touch the lists, so plain accesses suffice here; what readers see
 * of a block is ordered by the release store that publishes it (view.c). A block that readers
 * may still hold is never freed directly: it waits on the limbo list, tagged with the epoch of
 * the publication that made it unreachable, until a grace period for that epoch has passed.
 * The limbo list is newest first, so its tags never increase along the list.
 */
#include <string.h>

#include "shm/internal.h"

void shm_arena_format(shm_seg_t *s)
{
    shm_header_t *h = s->hdr;
    h->arena_blocks = SHM_ARENA_BLOCKS;
    h->free_head = 0;
    h->limbo_head = 0;
    h->arena_used = 0;
    for (uint64_t i = h->arena_blocks; i-- > 0;) {
        shm_block_hdr_t *b = shm_block_at(s, i);
        memset(b, 0, sizeof *b);
        b->next_off = h->free_head;
        h->free_head = shm_block_off(s, i);
    }
}

static void push_free(shm_seg_t *s, shm_block_hdr_t *b, uint64_t block_off)
{
    b->state = SHM_BLK_FREE;
    b->retire_epoch = 0;
    b->next_off = s->hdr->free_head;
    s->hdr->free_head = block_off;
}

uint64_t shm_block_alloc(shm_seg_t *s)
{
    shm_header_t *h = s->hdr;
    if (!h->free_head)
        shm_reclaim(s);
    uint64_t off = h->free_head;
    if (!off)
        return 0;
    shm_block_hdr_t *b = shm_ptr(s, off);
    h->free_head = b->next_off;
    b->next_off = 0;
    b->state = SHM_BLK_USED;
    h->arena_used++;
    memset(b + 1, 0, SHM_BLOCK_PAYLOAD);
    return off + sizeof *b;
}

/* The header of the USED block whose payload is at `payload_off`, or NULL for anything else
 * (a double free or a stray offset must not corrupt the lists). */
static shm_block_hdr_t *used_block(shm_seg_t *s, uint64_t payload_off)
{
    long i = shm_block_index(s, payload_off, true);
    if (i < 0)
        return NULL;
    shm_block_hdr_t *b = shm_block_at(s, (uint64_t)i);
    return b->state == SHM_BLK_USED ? b : NULL;
}

void shm_block_free(shm_seg_t *s, uint64_t payload_off)
{
    shm_block_hdr_t *b = used_block(s, payload_off);
    if (!b)
        return;
    push_free(s, b, payload_off - sizeof *b);
    s->hdr->arena_used--;
}

void shm_block_retire(shm_seg_t *s, uint64_t payload_off)
{
    shm_block_hdr_t *b = used_block(s, payload_off);
    if (!b)
        return;
    b->state = SHM_BLK_LIMBO;
    b->retire_epoch = __atomic_load_n(&s->hdr->gp_epoch, __ATOMIC_ACQUIRE);
    b->next_off = s->hdr->limbo_head;
    s->hdr->limbo_head = payload_off - sizeof *b;
}

size_t shm_reclaim(shm_seg_t *s)
{
    shm_header_t *h = s->hdr;
    uint64_t *link = &h->limbo_head;
    uint64_t checked = 0; /* last tag whose grace period did not pass */
    size_t n = 0;
    while (*link) {
        uint64_t off = *link;
        shm_block_hdr_t *b = shm_ptr(s, off);
        if (b->retire_epoch == checked || !shm_grace_passed(s, b->retire_epoch)) {
            checked = b->retire_epoch;
            link = &b->next_off;
            continue;
        }
        /* Tags only decrease from here on, so every older block is past its grace period too. */
        *link = 0;
        while (off) {
            b = shm_ptr(s, off);
            uint64_t next = b->next_off;
            push_free(s, b, off);
            h->arena_used--;
            n++;
            off = next;
        }
    }
    return n;
}
