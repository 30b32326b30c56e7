/*
 * tools/fd-sim/driver.h - the engine model (engine.h) on the wall clock (driver.c).
 *
 * Contract: one mutex guards the engine; use it only between sim_driver_lock and
 * sim_driver_unlock, which wakes the driver thread so it sleeps on an up-to-date next event.
 * The driver thread advances the engine at each event and calls kick (outside the lock) for
 * every event-loop thread whose requests got a token or ended; owners are 0..63.
 */
#ifndef FD_TOOLS_SIM_DRIVER_H
#define FD_TOOLS_SIM_DRIVER_H

#include "tools/fd-sim/engine.h"

typedef struct sim_driver sim_driver_t;

/* Wakes the event-loop thread `owner` because one of its requests progressed. */
typedef void (*sim_kick_fn)(void *ctx, int owner);

/* Create the engine and start the thread that advances it on the wall clock. */
sim_driver_t *sim_driver_start(const sim_engine_params_t *p, sim_kick_fn kick, void *ctx);
/* Milliseconds since the driver started (CLOCK_MONOTONIC, fractional: the model's own time). */
double sim_driver_now(const sim_driver_t *d);
sim_engine_t *sim_driver_lock(sim_driver_t *d);
void sim_driver_unlock(sim_driver_t *d);
void sim_driver_stop(sim_driver_t *d);

#endif
