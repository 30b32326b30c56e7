/*
 * controlplane/respond.c - complete JSON answers on the control socket: a body as given, or the
 * {"code": status, "msg": ...} shape FastDeploy's router answers /register with (and every
 * control-socket error uses, so fdctl reads one shape).
 */
#include <json-c/json.h>
#include <string.h>

#include "common/reply.h"
#include "controlplane/respond.h"

void cp_respond_json(h2o_req_t *req, int status, const char *body)
{
    fd_reply_json(req, status, body, strlen(body));
}

void cp_respond_msg(h2o_req_t *req, int status, const char *msg)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "code", json_object_new_int(status));
    json_object_object_add(o, "msg", json_object_new_string(msg));
    cp_respond_json(
        req, status,
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}
