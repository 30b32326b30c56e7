/*
 * tools/fd-sim/monotime.h - fractional-millisecond time on CLOCK_MONOTONIC for fd-sim's
 * background threads (the engine driver and the registration heartbeat): their condition
 * variables wait on it, and the driver runs the engine model on it.
 *
 * Header-only like common/clock.h, whose whole milliseconds the rest of fd-sim uses; these keep
 * the fractions because the engine model's steps may be shorter than a millisecond.
 */
#ifndef FD_TOOLS_SIM_MONOTIME_H
#define FD_TOOLS_SIM_MONOTIME_H

#include <math.h>
#include <pthread.h>
#include <time.h>

/* A condition variable whose timed waits count on CLOCK_MONOTONIC (never jumps with NTP). */
static inline void sim_cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
}

/* Milliseconds from t0 to now. */
static inline double sim_ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

/* t0 plus ms (>= 0), as a deadline for pthread_cond_timedwait. */
static inline struct timespec sim_ts_after(const struct timespec *t0, double ms)
{
    double secs = floor(ms / 1e3);
    long long ns = (long long)t0->tv_nsec + (long long)((ms - secs * 1e3) * 1e6);
    struct timespec ts = {.tv_sec = t0->tv_sec + (time_t)secs + (time_t)(ns / 1000000000LL),
                          .tv_nsec = (long)(ns % 1000000000LL)};
    return ts;
}

/* Now plus ms (>= 0). */
static inline struct timespec sim_deadline_ms(double ms)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return sim_ts_after(&now, ms);
}

#endif
