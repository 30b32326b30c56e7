/*
 * controlplane/stats.h - what stats.c offers the rest of the control plane ([stats] log line).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_STATS_H
#define FD_CP_STATS_H

#include "controlplane/cp.h"

int cp_stats_start(cp_t *cp);
void cp_stats_stop(cp_t *cp);

#endif
