/*
 * controlplane/actions.h - what actions.c offers the rest of the control plane (operator actions).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_ACTIONS_H
#define FD_CP_ACTIONS_H

#include "controlplane/cp.h"

typedef enum { CP_ACT_DRAIN, CP_ACT_UNDRAIN, CP_ACT_REMOVE } cp_action_t;
/* Returns an HTTP status (200, 404 no such instance) and a message for the operator. */
int cp_instance_action(cp_t *cp, cp_action_t act, const char *url, char *msg, size_t msglen);

#endif
