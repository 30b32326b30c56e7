/*
 * controlplane/health_generate.h - what health_generate.c offers the rest of the control plane (GET
 * /health_generate). Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_HEALTH_GENERATE_H
#define FD_CP_HEALTH_GENERATE_H

#include "controlplane/cp.h"

void cp_health_generate(cp_t *cp, h2o_req_t *req);

#endif
