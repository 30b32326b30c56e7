/*
 * controlplane/ctlsock.h - what ctlsock.c offers the rest of the control plane (control socket).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_CTLSOCK_H
#define FD_CP_CTLSOCK_H

#include "controlplane/cp.h"

/* 1 if something accepts connections on `path` (another live CP), 0 if not. */
int cp_ctlsock_in_use(const char *path);
int cp_ctlsock_open(cp_t *cp, char *err, size_t errlen);
/* Stop accepting and unlink the socket file if it is still the one we bound. */
void cp_ctlsock_close(cp_t *cp);
/* The /status document (caller puts it). */
struct json_object *cp_status_json(cp_t *cp);

#endif
