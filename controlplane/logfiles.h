/*
 * controlplane/logfiles.h - what logfiles.c offers the rest of the control plane (log.output: file).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_LOGFILES_H
#define FD_CP_LOGFILES_H

#include "controlplane/cp.h"

int cp_logfiles_open(cp_t *cp); /* at start, before anything else is logged to stdout */
/* log.access-log into cp->access_log (./logs/access.log for file; opened here too, so the clean-up
 * sees its archives). Returns 0, or -1 with the reason in err. At start and at each reload. */
int cp_access_log_open(cp_t *cp, char *err, size_t errlen);
int cp_logfiles_start(cp_t *cp);
void cp_logfiles_stop(cp_t *cp);

#endif
