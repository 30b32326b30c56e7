/*
 * tools/fd-sim/abort.c - /v1/abort_requests: the body, the keys calls are found under, and the
 * matching over every thread's calls (abort.h says the rules).
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "common/reply.h"
#include "tools/fd-sim/abort.h"
#include "tools/fd-sim/body.h"
#include "tools/fd-sim/call.h"
#include "tools/fd-sim/http.h"

int sim_parse_abort(const char *body, size_t len, sim_abort_req_t *out)
{
    char err[128];
    out->all = false;
    out->ids = NULL;
    json_object *root = sim_parse_object(body, len, err, sizeof(err)), *v;
    if (!root)
        return -1;
    int rc = -1;
    if (json_object_object_get_ex(root, "abort_all", &v) && json_object_is_type(v, json_type_boolean) &&
        json_object_get_boolean(v)) {
        out->all = true;
        rc = 0;
    } else if (json_object_object_get_ex(root, "req_ids", &v) && json_object_is_type(v, json_type_array)) {
        out->ids = json_object_get(v);
        rc = 0;
    }
    json_object_put(root);
    return rc;
}

void sim_abort_req_free(sim_abort_req_t *a)
{
    json_object_put(a->ids);
    a->ids = NULL;
}

char *sim_request_key(json_object *v)
{
    if (json_object_is_type(v, json_type_string))
        return strndup(json_object_get_string(v), (size_t)json_object_get_string_len(v));
    size_t len;
    return sim_json_text(v, &len);
}

char *sim_body_key(json_object *root, bool *raw)
{
    json_object *rid;
    *raw = false;
    if (!root || !json_object_object_get_ex(root, "request_id", &rid) || rid == NULL)
        return NULL;
    if (json_object_is_type(rid, json_type_string) && json_object_get_string_len(rid) == 0)
        return NULL; /* ignored, as for the response id */
    *raw = !json_object_is_type(rid, json_type_string);
    return sim_request_key(rid);
}

/* The value an aborted call is reported under when the abort named none. */
static json_object *key_value(const sim_call_t *c)
{
    json_object *v = c->key_raw ? json_tokener_parse(c->key) : NULL;
    return v ? v : json_object_new_string(c->key);
}

/* Abort c if it is still running; id is how the abort named it (NULL for abort_all). */
static bool abort_call(sim_call_t *c, json_object *id, json_object *aborted, uint64_t *kick)
{
    unsigned emitted;
    if (!sim_call_try_abort(c, &emitted))
        return false;
    json_object *entry = json_object_new_object();
    json_object_object_add(entry, "request_id", id ? json_object_get(id) : key_value(c));
    json_object_object_add(entry, "output_tokens", json_object_new_int64(emitted));
    json_object_array_add(aborted, entry);
    *kick |= 1ULL << c->th->index;
    return true;
}

static bool call_matches(const sim_call_t *c, const char *key)
{
    return strcmp(c->key, key) == 0 || strcmp(c->g.id, key) == 0;
}

/* Match the ids against every call of every thread (registry locked). */
static void abort_ids(sim_server_t *srv, json_object *ids, json_object *aborted, json_object *not_found,
                      uint64_t *kick)
{
    for (size_t i = 0; i < json_object_array_length(ids); i++) {
        json_object *id = json_object_array_get_idx(ids, i);
        char *key = sim_request_key(id);
        bool found = false;
        for (h2o_linklist_t *n = srv->registry.next; key && n != &srv->registry; n = n->next) {
            sim_call_t *c = H2O_STRUCT_FROM_MEMBER(sim_call_t, reg_link, n);
            if (call_matches(c, key) && abort_call(c, id, aborted, kick))
                found = true;
        }
        if (!found)
            json_object_array_add(not_found, json_object_get(id));
        free(key);
    }
}

/* Claim the calls that a names (registry locked); returns the threads to kick. */
static uint64_t abort_matching(sim_server_t *srv, const sim_abort_req_t *a, json_object *aborted,
                               json_object *not_found)
{
    uint64_t kick = 0;
    pthread_mutex_lock(&srv->reg_lock);
    if (a->all) {
        for (h2o_linklist_t *n = srv->registry.next; n != &srv->registry; n = n->next)
            abort_call(H2O_STRUCT_FROM_MEMBER(sim_call_t, reg_link, n), NULL, aborted, &kick);
    } else {
        abort_ids(srv, a->ids, aborted, not_found, &kick);
    }
    pthread_mutex_unlock(&srv->reg_lock);
    return kick;
}

void sim_abort_handle(sim_server_t *srv, h2o_req_t *req)
{
    sim_abort_req_t a;
    if (sim_parse_abort(req->entity.base, sim_body_len(req), &a) != 0) {
        static const char usage[] = "{\"error\":\"" SIM_ABORT_USAGE "\"}";
        fd_reply(req, 400, "application/json", usage, sizeof(usage) - 1);
        return;
    }
    json_object *aborted = json_object_new_array(), *not_found = json_object_new_array();
    uint64_t kick = abort_matching(srv, &a, aborted, not_found);
    sim_abort_req_free(&a);
    for (int i = 0; i < srv->nthreads_max; i++)
        if (kick & (1ULL << i))
            sim_server_kick(srv, i);
    json_object *result = json_object_new_object(), *o = json_object_new_object();
    json_object_object_add(result, "aborted", aborted);
    json_object_object_add(result, "not_found", not_found);
    json_object_object_add(o, "result", result);
    size_t len;
    char *text = sim_json_text(o, &len);
    sim_reply_json(req, 200, text, len);
    json_object_put(o);
}
