/*
 * tools/fd-sim/driver.c - runs fd-sim's engine model (engine.c) on the wall clock: one mutex
 * guards the engine, and a thread sleeps until the engine's next event, advances it and wakes
 * the event-loop threads whose requests got a token (through the kick callback, outside the
 * lock). Event-loop threads lock it to submit, abort and read their requests; unlocking after
 * such a change wakes the driver thread, so it always sleeps on an up-to-date next event.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "tools/fd-sim/driver.h"
#include "tools/fd-sim/monotime.h"

struct sim_driver {
    pthread_t tid;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    sim_engine_t *engine;
    sim_kick_fn kick;
    void *kick_ctx;
    uint64_t pending; /* owners (event-loop thread indexes) to wake */
    bool stop, started;
    struct timespec t0;
};

static void on_progress(void *ctx, int owner)
{
    sim_driver_t *d = ctx;
    if (owner >= 0 && owner < 64)
        d->pending |= 1ULL << owner;
}

/* Wake the owners collected so far; called with the lock held, releases it meanwhile. */
static void flush_kicks(sim_driver_t *d)
{
    uint64_t mask = d->pending;
    d->pending = 0;
    if (!mask)
        return;
    pthread_mutex_unlock(&d->lock);
    for (int i = 0; i < 64; i++)
        if (mask & (1ULL << i))
            d->kick(d->kick_ctx, i);
    pthread_mutex_lock(&d->lock);
}

static void *driver_main(void *arg)
{
    sim_driver_t *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        sim_engine_advance(d->engine, sim_ms_since(&d->t0));
        if (d->pending) {
            flush_kicks(d); /* the engine may have changed meanwhile: look again before sleeping */
            continue;
        }
        double next = sim_engine_next_event(d->engine);
        if (isinf(next)) {
            pthread_cond_wait(&d->cond, &d->lock);
        } else {
            struct timespec until = sim_ts_after(&d->t0, next);
            pthread_cond_timedwait(&d->cond, &d->lock, &until);
        }
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

sim_driver_t *sim_driver_start(const sim_engine_params_t *p, sim_kick_fn kick, void *ctx)
{
    sim_driver_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->kick = kick;
    d->kick_ctx = ctx;
    clock_gettime(CLOCK_MONOTONIC, &d->t0);
    d->engine = sim_engine_new(p, on_progress, d);
    sim_cond_init_monotonic(&d->cond);
    pthread_mutex_init(&d->lock, NULL);
    if (!d->engine || pthread_create(&d->tid, NULL, driver_main, d) != 0) {
        sim_engine_free(d->engine);
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return NULL;
    }
    d->started = true;
    return d;
}

double sim_driver_now(const sim_driver_t *d)
{
    return sim_ms_since(&d->t0);
}

sim_engine_t *sim_driver_lock(sim_driver_t *d)
{
    pthread_mutex_lock(&d->lock);
    return d->engine;
}

void sim_driver_unlock(sim_driver_t *d)
{
    uint64_t mask = d->pending;
    d->pending = 0;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
    for (int i = 0; i < 64; i++)
        if (mask & (1ULL << i))
            d->kick(d->kick_ctx, i);
}

/* The engine and its records stay allocated: parked event-loop threads may still hold handles. */
void sim_driver_stop(sim_driver_t *d)
{
    if (!d || !d->started)
        return;
    pthread_mutex_lock(&d->lock);
    d->stop = true;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->tid, NULL);
    d->started = false;
}
