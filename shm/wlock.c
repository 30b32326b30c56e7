/*
 * shm/wlock.c - the robust, process-shared writer lock, and allocator recovery when a writer
 * died holding it.
 *
 * What readers see changes only by single offset stores, so the published views are always
 * consistent; what a dead writer can leave broken is the allocator (a block popped but never
 * published, a half-linked limbo or free list). Recovery therefore rebuilds the lists from what
 * is certainly in use: the blocks of the published views and the well-formed prefix of the
 * limbo list. Every other block may still be held by a reader (the dead writer may have
 * unpublished it just before dying), so it is freed only after a full grace period; if that
 * does not come in time it goes to limbo instead, which is always safe.
 */
#include <errno.h>

#include "shm/internal.h"

#define RECOVERY_GRACE_MS 2000

enum { MARK_NONE = 0, MARK_VIEW, MARK_LIMBO };

static void mark_views(shm_seg_t *s, uint8_t *mark)
{
    for (int r = 0; r < SHM_ROLE_COUNT; r++) {
        long i = shm_block_index(s, __atomic_load_n(&s->hdr->view_off[r], __ATOMIC_ACQUIRE), true);
        if (i >= 0)
            mark[i] = MARK_VIEW;
    }
}

/* Keep the limbo list up to the first link that is not a distinct LIMBO block. */
static void mark_limbo(shm_seg_t *s, uint8_t *mark)
{
    uint64_t *link = &s->hdr->limbo_head;
    while (*link) {
        long i = shm_block_index(s, *link, false);
        if (i < 0 || mark[i] != MARK_NONE || shm_block_at(s, (uint64_t)i)->state != SHM_BLK_LIMBO) {
            *link = 0;
            break;
        }
        mark[i] = MARK_LIMBO;
        link = &shm_block_at(s, (uint64_t)i)->next_off;
    }
}

static void rebuild_allocator(shm_seg_t *s)
{
    shm_header_t *h = s->hdr;
    uint8_t mark[SHM_ARENA_BLOCKS] = {0};
    mark_views(s, mark);
    mark_limbo(s, mark);
    uint64_t epoch = shm_epoch_advance(s);
    bool quiet = shm_grace_wait(s, epoch, RECOVERY_GRACE_MS);

    uint64_t used = 0;
    h->free_head = 0;
    for (uint64_t i = h->arena_blocks; i-- > 0;) {
        shm_block_hdr_t *b = shm_block_at(s, i);
        if (mark[i] == MARK_VIEW)
            b->state = SHM_BLK_USED;
        if (mark[i] != MARK_NONE) {
            used++;
        } else if (quiet) {
            b->state = SHM_BLK_FREE;
            b->next_off = h->free_head;
            h->free_head = shm_block_off(s, i);
        } else {
            /* tagged with the newest epoch, so the limbo list stays newest first */
            b->state = SHM_BLK_LIMBO;
            b->retire_epoch = epoch;
            b->next_off = h->limbo_head;
            h->limbo_head = shm_block_off(s, i);
            used++;
        }
    }
    h->arena_used = used;
}

int shm_wlock(shm_seg_t *s)
{
    int rc = pthread_mutex_lock(&s->hdr->wlock);
    if (rc == 0)
        return 0;
    if (rc != EOWNERDEAD)
        return -1; /* ENOTRECOVERABLE: the segment must be rebuilt */
    rebuild_allocator(s);
    if (pthread_mutex_consistent(&s->hdr->wlock) != 0) {
        pthread_mutex_unlock(&s->hdr->wlock);
        return -1;
    }
    s->hdr->wlock_recovered++;
    return 0;
}

void shm_wunlock(shm_seg_t *s)
{
    pthread_mutex_unlock(&s->hdr->wlock);
}
