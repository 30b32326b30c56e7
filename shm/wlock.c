/*
 * shm/wlock.c - the robust, process-shared writer lock, and allocator recovery when a writer
 * died holding it.
 *
 * What readers see changes only by single offset stores, so the published views are always
 * consistent; what a dead writer can leave broken is the allocator (a block popped but never
 * published, a half-linked limbo or free list). Recovery therefore rebuilds the lists from what
 * is certain: the blocks of the published views, and the well-formed prefixes of the limbo and
 * free lists. Any other block may still be held by a reader (the dead writer may have
 * unpublished it just before dying), so it is freed only after a full grace period; if that
 * does not come in time it goes to limbo instead, which is always safe.
 */
#include <errno.h>
#include <stddef.h>
#include <unistd.h>

#include "shm/internal.h"

#define RECOVERY_GRACE_MS 2000

_Static_assert(offsetof(shm_header_t, wlock_owner) / SHM_CACHELINE ==
                   offsetof(shm_header_t, wlock) / SHM_CACHELINE,
               "the owner is written with the lock: keep it in the lock's cache line");

/* Only the holder writes it (after taking the lock, before giving it up). */
static void set_owner(shm_seg_t *s, int32_t pid)
{
    __atomic_store_n(&s->hdr->wlock_owner, pid, __ATOMIC_RELAXED);
}

/* This process's pid, cached: getpid() is a system call (glibc no longer caches it) and the lock
 * is taken for every cache_aware decision. A forked child forgets the parent's. */
static _Atomic int32_t self_pid;
static void forget_pid(void)
{
    self_pid = 0;
}
static void watch_forks(void)
{
    pthread_atfork(NULL, NULL, forget_pid);
}
static int32_t my_pid(void)
{
    int32_t pid = self_pid;
    if (pid == 0) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, watch_forks);
        self_pid = pid = (int32_t)getpid();
    }
    return pid;
}

enum { MARK_NONE = 0, MARK_VIEW, MARK_LIMBO, MARK_FREE };

static void mark_views(shm_seg_t *s, uint8_t *mark)
{
    for (int r = 0; r < SHM_ROLE_COUNT; r++) {
        long i = shm_block_index(s, __atomic_load_n(&s->hdr->view_off[r], __ATOMIC_ACQUIRE), true);
        if (i >= 0)
            mark[i] = MARK_VIEW;
    }
}

/* Keep a list up to the first link that is not a distinct, unmarked block in `state`. Every
 * list operation commits with one store of a link, so a list is well formed unless a previous
 * recovery died halfway; then the cut-off part just counts as unknown. */
static void mark_list(shm_seg_t *s, uint64_t *link, uint32_t state, uint8_t *mark, uint8_t as)
{
    while (*link) {
        long i = shm_block_index(s, *link, false);
        if (i < 0 || mark[i] != MARK_NONE || shm_block_at(s, (uint64_t)i)->state != state) {
            *link = 0;
            break;
        }
        mark[i] = as;
        link = &shm_block_at(s, (uint64_t)i)->next_off;
    }
}

static void push(shm_seg_t *s, uint64_t *head, uint64_t i, uint32_t state, uint64_t epoch)
{
    shm_block_hdr_t *b = shm_block_at(s, i);
    b->state = state;
    b->retire_epoch = epoch;
    b->next_off = *head;
    *head = shm_block_off(s, i);
}

/*
 * Blocks on the free list were free before the writer died (only blocks past their grace
 * period, or never published, are ever put there), so they stay free. Blocks on no list and in
 * no view are unknown: allocated and leaked, or unpublished a moment before the death.
 */
static void rebuild_allocator(shm_seg_t *s)
{
    shm_header_t *h = s->hdr;
    uint8_t mark[SHM_ARENA_BLOCKS] = {0};
    mark_views(s, mark);
    mark_list(s, &h->limbo_head, SHM_BLK_LIMBO, mark, MARK_LIMBO);
    mark_list(s, &h->free_head, SHM_BLK_FREE, mark, MARK_FREE);
    uint64_t epoch = shm_epoch_advance(s);
    bool quiet = shm_grace_wait(s, epoch, RECOVERY_GRACE_MS);

    uint64_t used = 0;
    h->free_head = 0;
    for (uint64_t i = h->arena_blocks; i-- > 0;) {
        if (mark[i] == MARK_VIEW)
            shm_block_at(s, i)->state = SHM_BLK_USED;
        if (mark[i] == MARK_VIEW || mark[i] == MARK_LIMBO)
            used++;
        else if (mark[i] == MARK_FREE || quiet)
            push(s, &h->free_head, i, SHM_BLK_FREE, 0);
        else {
            /* tagged with the newest epoch, so the limbo list stays newest first */
            push(s, &h->limbo_head, i, SHM_BLK_LIMBO, epoch);
            used++;
        }
    }
    h->arena_used = used;
}

int shm_wlock(shm_seg_t *s)
{
    int rc = pthread_mutex_lock(&s->hdr->wlock);
    if (rc != 0 && rc != EOWNERDEAD)
        return -1; /* ENOTRECOVERABLE: the segment must be rebuilt */
    set_owner(s, my_pid());
    if (rc == 0)
        return 0;
    rebuild_allocator(s);
    if (pthread_mutex_consistent(&s->hdr->wlock) != 0) {
        shm_wunlock(s);
        return -1;
    }
    s->hdr->wlock_recovered++;
    return 0;
}

void shm_wunlock(shm_seg_t *s)
{
    set_owner(s, 0);
    pthread_mutex_unlock(&s->hdr->wlock);
}

int32_t shm_wlock_owner(const shm_seg_t *s)
{
    return __atomic_load_n(&s->hdr->wlock_owner, __ATOMIC_RELAXED);
}
