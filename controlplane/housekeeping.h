/*
 * controlplane/housekeeping.h - what housekeeping.c offers the rest of the control plane (upkeep of the
 * segment). Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_HOUSEKEEPING_H
#define FD_CP_HOUSEKEEPING_H

#include "controlplane/cp.h"

#define CP_HOUSEKEEPING_MS 500 /* heartbeat, dead-DP reaping, publish retries, slot reclaim */

int cp_housekeeping_start(cp_t *cp);
void cp_housekeeping_stop(cp_t *cp);

#endif
