/*
 * controlplane/timer.h - what timer.c offers: timerfd-backed timers of any period on the h2o loop.
 */
#ifndef FD_CP_TIMER_H
#define FD_CP_TIMER_H

#include <stdint.h>

#include <h2o.h>

typedef struct cp_timer cp_timer_t;
typedef void (*cp_timer_cb)(cp_timer_t *t);
struct cp_timer {
    h2o_socket_t *sock; /* wraps a timerfd; NULL when not initialised */
    cp_timer_cb cb;
    void *data;
};
int cp_timer_init(cp_timer_t *t, h2o_loop_t *loop, cp_timer_cb cb, void *data);
/* Fire after delay_ms (at least 1 ms), then every period_ms if period_ms > 0. */
void cp_timer_arm(cp_timer_t *t, uint64_t delay_ms, uint64_t period_ms);
void cp_timer_disarm(cp_timer_t *t);
void cp_timer_dispose(cp_timer_t *t);

#endif
