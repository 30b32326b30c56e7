/*
 * controlplane/evict.h - what evict.c offers the rest of the control plane (prefix tree upkeep).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_EVICT_H
#define FD_CP_EVICT_H

#include "controlplane/cp.h"

int cp_evict_start(cp_t *cp);
void cp_evict_stop(cp_t *cp);

#endif
