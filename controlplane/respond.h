/*
 * controlplane/respond.h - what respond.c offers every control-socket handler: complete JSON
 * answers. A module of its own so that a handler (register.c, health_generate.c, ...) answering
 * a request does not depend on the control socket (ctlsock.c) that routes requests to it.
 */
#ifndef FD_CP_RESPOND_H
#define FD_CP_RESPOND_H

#include <h2o.h>

void cp_respond_json(h2o_req_t *req, int status, const char *body);
void cp_respond_msg(h2o_req_t *req, int status, const char *msg); /* {"code":status,"msg":msg} */

#endif
