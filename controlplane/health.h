/*
 * controlplane/health.h - what health.c offers the rest of the control plane (health checks).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_HEALTH_H
#define FD_CP_HEALTH_H

#include "controlplane/cp.h"

typedef struct {
    uint32_t health; /* shm_health_t */
    uint32_t ok;     /* consecutive successes */
    uint32_t fail;   /* consecutive failures */
} cp_health_state_t;

typedef enum { CP_HEALTH_SAME, CP_HEALTH_BECAME_HEALTHY, CP_HEALTH_BECAME_UNHEALTHY } cp_health_change_t;

/* One probe result applied to the consecutive counters (pure). */
cp_health_change_t cp_health_step(cp_health_state_t *st, bool ok, unsigned success_threshold,
                                  unsigned failure_threshold);
/* Whether an instance has been unhealthy long enough to be removed (pure). */
bool cp_health_expired(uint32_t health, bool is_static, uint64_t unhealthy_since_ms, uint64_t now_ms,
                       uint64_t removal_ms);

int cp_health_start(cp_t *cp);
void cp_health_stop(cp_t *cp);

#endif
