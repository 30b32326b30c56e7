/*
 * tools/fd-sim/loop.c - the server facilities fd-sim's request modules share (loop.h): time
 * since start, the engine's figures, each thread's timer lists, and waking a thread.
 */
#include <errno.h>
#include <unistd.h>

#include "common/clock.h"
#include "tools/fd-sim/loop.h"

uint64_t sim_server_uptime_ms(const sim_server_t *srv)
{
    return fd_mono_ms() - srv->t0_ms;
}

bool sim_server_starting(const sim_server_t *srv)
{
    return srv->cfg->slow_start_ms > 0 && sim_server_uptime_ms(srv) < srv->cfg->slow_start_ms;
}

const sim_engine_load_t *sim_server_engine_load(sim_server_t *srv, sim_engine_load_t *load)
{
    if (!srv->driver)
        return NULL;
    sim_engine_load(sim_driver_lock(srv->driver), load);
    sim_driver_unlock(srv->driver);
    return load;
}

void sim_server_engine_reset(sim_server_t *srv, bool flush)
{
    if (!srv->driver)
        return;
    sim_engine_reset(sim_driver_lock(srv->driver), flush);
    sim_driver_unlock(srv->driver);
}

h2o_timeout_t *sim_thread_timeout(sim_thread_t *th, unsigned ms)
{
    sim_timer_slot_t *free_slot = NULL;
    for (int i = 0; i < SIM_TIMER_SLOTS; i++) {
        sim_timer_slot_t *s = &th->timers[i];
        if (s->used && s->ms == ms)
            return &s->to;
        if (!s->used && !free_slot)
            free_slot = s;
    }
    for (int i = 0; !free_slot && i < SIM_TIMER_SLOTS; i++) {
        sim_timer_slot_t *s = &th->timers[i];
        if (h2o_linklist_is_empty(&s->to._entries)) {
            h2o_timeout_dispose(th->ctx.loop, &s->to);
            free_slot = s;
        }
    }
    if (!free_slot)
        return NULL;
    h2o_timeout_init(th->ctx.loop, &free_slot->to, ms);
    free_slot->used = true;
    free_slot->ms = ms;
    return &free_slot->to;
}

void sim_server_kick(void *ctx, int owner)
{
    sim_server_t *srv = ctx;
    if (owner < 0 || owner >= srv->nthreads_max)
        return;
    sim_thread_t *th = &srv->threads[owner];
    if (atomic_exchange(&th->kicked, true))
        return;
    ssize_t w;
    do
        w = write(th->kick_fds[1], "k", 1);
    while (w < 0 && errno == EINTR);
}
