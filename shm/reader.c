/*
 * shm/reader.c - the reader registry and grace periods across processes.
 *
 * liburcu tracks readers per process only, so each reading thread (DP event loops, fdctl) owns
 * a slot here and announces the epoch it entered at (shm_read_enter in shm.h). A block retired
 * at epoch e may be reused once every live slot is quiescent (0) or entered at e or later: such
 * a reader loaded the views after the publication that unlinked the block.
 *
 * A reader that dies inside its critical section would block reclamation forever, so a slot
 * that holds up a grace period is checked against its process (pid + start time) and freed if
 * the process is gone. Freeing goes through SHM_PID_REAPING so that only one reaper clears the
 * slot and a new owner can claim it only once it is clean.
 */
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "shm/internal.h"

#define GRACE_POLL_NS 20000 /* 20 us between polls: a read-side section lasts well under that */

static bool reap_slot(shm_reader_t *r, int32_t pid)
{
    if (!__atomic_compare_exchange_n(&r->pid, &pid, SHM_PID_REAPING, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_RELAXED))
        return false;
    __atomic_store_n(&r->active_epoch, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->start_time, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->pid, 0, __ATOMIC_RELEASE);
    return true;
}

static bool slot_dead(const shm_reader_t *r, int32_t pid)
{
    return !shm_proc_alive(pid, __atomic_load_n(&r->start_time, __ATOMIC_ACQUIRE));
}

int shm_reader_reap_dead(shm_seg_t *s)
{
    int n = 0;
    for (unsigned i = 0; i < SHM_MAX_READERS; i++) {
        shm_reader_t *r = shm_reader(s, i);
        int32_t pid = __atomic_load_n(&r->pid, __ATOMIC_ACQUIRE);
        if (pid > 0 && slot_dead(r, pid) && reap_slot(r, pid))
            n++;
    }
    return n;
}

static int claim_free_slot(shm_seg_t *s, int32_t pid, uint64_t start_time)
{
    for (unsigned i = 0; i < SHM_MAX_READERS; i++) {
        shm_reader_t *r = shm_reader(s, i);
        int32_t expected = 0;
        if (__atomic_load_n(&r->pid, __ATOMIC_RELAXED) != 0 ||
            !__atomic_compare_exchange_n(&r->pid, &expected, pid, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            continue;
        __atomic_store_n(&r->active_epoch, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&r->start_time, start_time, __ATOMIC_RELEASE);
        return (int)i;
    }
    return -1;
}

int shm_reader_register(shm_seg_t *s)
{
    int32_t pid = (int32_t)getpid();
    uint64_t start_time = shm_proc_start_time(pid);
    int idx = claim_free_slot(s, pid, start_time);
    if (idx < 0 && shm_reader_reap_dead(s) > 0)
        idx = claim_free_slot(s, pid, start_time);
    return idx;
}

void shm_reader_unregister(shm_seg_t *s, int idx)
{
    if (idx < 0 || idx >= SHM_MAX_READERS)
        return;
    shm_reader_t *r = shm_reader(s, (unsigned)idx);
    __atomic_store_n(&r->active_epoch, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->start_time, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->pid, 0, __ATOMIC_RELEASE);
}

uint64_t shm_epoch_advance(shm_seg_t *s)
{
    uint64_t e = __atomic_add_fetch(&s->hdr->gp_epoch, 1, __ATOMIC_SEQ_CST);
    /* Pairs with the fence in shm_read_enter: either this writer sees the reader's announcement
     * in shm_grace_passed, or the reader sees what was published before the bump. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return e;
}

bool shm_grace_passed(shm_seg_t *s, uint64_t epoch)
{
    bool passed = true;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < SHM_MAX_READERS; i++) {
        shm_reader_t *r = shm_reader(s, i);
        int32_t pid = __atomic_load_n(&r->pid, __ATOMIC_ACQUIRE);
        if (pid <= 0)
            continue;
        uint64_t active = __atomic_load_n(&r->active_epoch, __ATOMIC_ACQUIRE);
        if (active == 0 || active >= epoch)
            continue;
        if (slot_dead(r, pid)) {
            reap_slot(r, pid);
            continue;
        }
        passed = false;
    }
    return passed;
}

bool shm_grace_wait(shm_seg_t *s, uint64_t epoch, unsigned timeout_ms)
{
    uint64_t deadline = fd_mono_ms() + timeout_ms;
    const struct timespec pause = {0, GRACE_POLL_NS};
    for (;;) {
        if (shm_grace_passed(s, epoch))
            return true;
        if (fd_mono_ms() >= deadline)
            return false;
        nanosleep(&pause, NULL);
    }
}
