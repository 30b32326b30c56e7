/*
 * dataplane/models.c - routing by model and GET /v1/models (see models.h).
 *
 * The per-request work is allocation-free: one seqcount read of the header's model index, then,
 * only in a fleet of several models, one hash comparison per candidate in dp_select. The list
 * of GET /v1/models is built with json-c from the published views (not a hot path).
 */
#include <json-c/json.h>
#include <string.h>

#include "dataplane/dp.h"
#include "dataplane/models.h"
#include "dataplane/reply.h"

int dp_model_resolve(h2o_iovec_t model, dp_model_t *out)
{
    memset(out, 0, sizeof(*out));
    if (model.base == NULL)
        return 0; /* a request that names no model may go anywhere */
    shm_models_index_t x;
    if (!shm_models_index_read(&dp.seg, &x) || (x.count < 2 && !x.overflow))
        return 0;
    out->hash = shm_model_hash(model.base, model.len);
    out->id = model;
    out->filter = true;
    if (!shm_models_index_has(&x, out->hash) && !x.overflow && x.unknown == 0)
        return -1;
    return 0;
}

bool dp_model_accepts(const dp_model_t *m, unsigned slot)
{
    if (m == NULL || !m->filter)
        return true;
    return shm_models_accepts(shm_instance(&dp.seg, slot), m->hash, m->id.base, m->id.len);
}

static void send_object(h2o_req_t *req, int status, json_object *o)
{
    size_t len;
    const char *s =
        json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    dp_send_json(req, status, s, len);
    json_object_put(o);
}

void dp_send_model_not_found(h2o_req_t *req, h2o_iovec_t model)
{
    char msg[SHM_MODEL_ID_LEN + 64];
    int shown = model.len > SHM_MODEL_ID_LEN ? SHM_MODEL_ID_LEN : (int)model.len; /* bounded echo */
    snprintf(msg, sizeof(msg), "The model `%.*s%s` does not exist.", shown, model.base,
             (size_t)shown < model.len ? "..." : "");
    json_object *err = json_object_new_object();
    json_object_object_add(err, "message", json_object_new_string(msg));
    json_object_object_add(err, "type", json_object_new_string("invalid_request_error"));
    json_object_object_add(err, "param", json_object_new_string("model"));
    json_object_object_add(err, "code", json_object_new_string("model_not_found"));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", err);
    send_object(req, 404, o);
}

/* Adds the models of one selectable slot to the list, each id once (seen: id -> true). */
static void add_slot_models(unsigned slot, json_object *data, json_object *seen)
{
    shm_model_info_t m[SHM_INSTANCE_MODELS];
    int n = shm_models_load(shm_instance(&dp.seg, slot), m, SHM_INSTANCE_MODELS);
    for (int i = 0; i < n; i++) {
        if (json_object_object_get_ex(seen, m[i].id, NULL))
            continue;
        json_object_object_add(seen, m[i].id, NULL);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(m[i].id));
        json_object_object_add(o, "object", json_object_new_string("model"));
        json_object_object_add(o, "owned_by",
                               json_object_new_string(m[i].owned_by[0] ? m[i].owned_by : "unknown"));
        json_object_object_add(o, "created", json_object_new_int64(m[i].created));
        json_object_array_add(data, o);
    }
}

int dp_handle_models(h2o_req_t *req)
{
    dp_thread_t *t = dp_self(req);
    json_object *data = json_object_new_array(), *seen = json_object_new_object();
    static const shm_role_t mixed[] = {SHM_ROLE_MIXED}, pd[] = {SHM_ROLE_PREFILL, SHM_ROLE_DECODE};
    const shm_role_t *roles = dp.cfg.splitwise ? pd : mixed;
    size_t nroles = dp.cfg.splitwise ? 2 : 1;
    shm_read_enter(&dp.seg, t->reader);
    for (size_t r = 0; r < nroles; r++) {
        const shm_view_t *v = shm_view(&dp.seg, roles[r]);
        for (uint32_t i = 0; v && i < shm_view_len(v); i++)
            if (v->slot[i] < SHM_MAX_INSTANCES)
                add_slot_models(v->slot[i], data, seen);
    }
    shm_read_exit(&dp.seg, t->reader);
    json_object_put(seen);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "object", json_object_new_string("list"));
    json_object_object_add(o, "data", data);
    send_object(req, 200, o);
    return 0;
}
