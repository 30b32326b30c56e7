/*
 * controlplane/reload.h - what reload.c offers the rest of the control plane (configuration reload).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_RELOAD_H
#define FD_CP_RELOAD_H

#include "controlplane/cp.h"

/* config.yaml at path ("" = none: the defaults) over the defaults, then the flags that override
 * it (--port, --splitwise). Returns 0, or -1 with "file:line: key: reason" in err. */
int cp_config_read(const char *path, const cp_args_t *a, fd_config_t *c, char *err, size_t errlen);
/* Before an upgrade spawns its DP: re-read config.yaml into cp->cfg and shared memory. -1 with the
 * reason in err (nothing changed) when the file is invalid. */
int cp_reload_prepare(cp_t *cp, char *err, size_t errlen);
/* The periodic jobs whose periods, thresholds or limits come from the configuration (health,
 * metrics and models polls, stats, eviction, log clean-up): started at start, stopped at
 * shutdown, started over by a reload. cp_config_jobs_start returns -1 if a timer failed. */
int cp_config_jobs_start(cp_t *cp);
void cp_config_jobs_stop(cp_t *cp);
void cp_reload_commit(cp_t *cp);   /* the new DP serves: the CP applies the configuration too */
void cp_reload_rollback(cp_t *cp); /* the upgrade failed: the previous configuration again */

#endif
