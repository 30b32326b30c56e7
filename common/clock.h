/*
 * common/clock.h - the one place the router reads a clock in milliseconds.
 *
 * Header-only and dependency-free on purpose: shm/, the lowest layer, uses it too, so it cannot
 * live in a library that links shm. Monotonic time measures intervals and deadlines (it never
 * jumps with NTP); wall time (shm_now_ms) is only for stamps other processes compare or people
 * read. The coarse variant costs no system call through the vDSO's coarse clock and is precise
 * to a scheduler tick (1-4 ms), which is enough for rate limits on hot paths.
 */
#ifndef FD_COMMON_CLOCK_H
#define FD_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t fd_clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Monotonic milliseconds: intervals, deadlines, back-off. */
static inline uint64_t fd_mono_ms(void)
{
    return fd_clock_ms(CLOCK_MONOTONIC);
}

/* Monotonic milliseconds at tick precision, for rate limits on hot paths. */
static inline uint64_t fd_mono_coarse_ms(void)
{
    return fd_clock_ms(CLOCK_MONOTONIC_COARSE);
}

#endif
