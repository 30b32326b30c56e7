/*
 * dataplane/abort.c - POST /v1/abort_requests: stop requests on the instances.
 *
 * Body {"req_ids":[...]} or {"abort_all":true} (FastDeploy's API; anything else is 400 with its
 * message). The same body goes to every registered instance of every role at once (the Python
 * router forgets mixed instances); the answer aggregates what each instance reported: the
 * aborted requests with their token counts, the ids no instance knew, and the instances that
 * did not answer (within DP_ABORT_TIMEOUT_MS). A stream being aborted ends the way the instance
 * ends it, relayed like any other stream. With auth.admin-token-file set, only a request with
 * the admin token gets this far (401 otherwise, docs/security.md).
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "common/admintoken.h"
#include "dataplane/leg.h"
#include "dataplane/pools.h"
#include "dataplane/request.h"
#include "dataplane/select.h"
#include "dataplane/abort.h"
#include "dataplane/reply.h"

#define DP_ABORT_TIMEOUT_MS 5000
#define MAX_ANSWER          (256 * 1024)

typedef struct fanout fanout_t;

typedef struct {
    fanout_t *f;
    dp_leg_t *leg; /* NULL once ended */
    char url[SHM_URL_LEN];
    int status;
    const char *err;
    h2o_buffer_t *answer;
} target_t;

struct fanout {
    h2o_req_t *req;
    target_t *targets;
    size_t n, pending;
    h2o_timeout_entry_t deadline;
};

static void add_answer(json_object *out_aborted, json_object *seen, json_object *not_found, target_t *t)
{
    json_object *root = json_tokener_parse(t->answer->size ? t->answer->bytes : "");
    json_object *result, *list;
    if (root && json_object_object_get_ex(root, "result", &result)) {
        if (json_object_object_get_ex(result, "aborted", &list) &&
            json_object_is_type(list, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *item = json_object_array_get_idx(list, i), *id;
                json_object_array_add(out_aborted, json_object_get(item));
                if (json_object_object_get_ex(item, "request_id", &id))
                    json_object_object_add(seen, json_object_to_json_string(id), NULL);
            }
        }
        if (json_object_object_get_ex(result, "not_found", &list) &&
            json_object_is_type(list, json_type_array))
            for (size_t i = 0; i < json_object_array_length(list); i++)
                json_object_array_add(not_found, json_object_get(json_object_array_get_idx(list, i)));
    }
    json_object_put(root);
}

/* ids that some instance did not know but another aborted are not "not found" */
static json_object *still_not_found(json_object *not_found, json_object *seen)
{
    json_object *out = json_object_new_array(), *dedup = json_object_new_object();
    for (size_t i = 0; i < json_object_array_length(not_found); i++) {
        json_object *id = json_object_array_get_idx(not_found, i);
        const char *key = json_object_to_json_string(id);
        if (json_object_object_get_ex(seen, key, NULL) || json_object_object_get_ex(dedup, key, NULL))
            continue;
        json_object_object_add(dedup, key, NULL);
        json_object_array_add(out, json_object_get(id));
    }
    json_object_put(dedup);
    return out;
}

static void respond(fanout_t *f)
{
    json_object *aborted = json_object_new_array(), *seen = json_object_new_object();
    json_object *not_found = json_object_new_array(), *instances = json_object_new_array();
    json_object *failed = json_object_new_array();
    for (size_t i = 0; i < f->n; i++) {
        target_t *t = f->targets + i;
        json_object *inst = json_object_new_object();
        json_object_object_add(inst, "url", json_object_new_string(t->url));
        json_object_object_add(inst, "status", json_object_new_int(t->status));
        if (t->err || t->status < 200 || t->status >= 300) {
            json_object_object_add(inst, "error", json_object_new_string(t->err ? t->err : "error status"));
            json_object_array_add(failed, json_object_new_string(t->url));
        } else {
            add_answer(aborted, seen, not_found, t);
        }
        json_object_array_add(instances, inst);
    }
    json_object *result = json_object_new_object();
    json_object_object_add(result, "aborted", aborted);
    json_object_object_add(result, "not_found", still_not_found(not_found, seen));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "code", json_object_new_int(200));
    json_object_object_add(o, "msg", json_object_new_string("success"));
    json_object_object_add(o, "result", result);
    json_object_object_add(o, "instances", instances);
    json_object_object_add(o, "failed", failed);
    size_t len;
    const char *s =
        json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    dp_send_json(f->req, 200, s, len);
    json_object_put(o);
    json_object_put(seen);
    json_object_put(not_found);
}

static void target_done(target_t *t)
{
    t->leg = NULL;
    fanout_t *f = t->f;
    if (--f->pending == 0) {
        h2o_timeout_unlink(&f->deadline);
        respond(f);
    }
}

static void on_head(dp_leg_t *l, int status)
{
    ((target_t *)l->data)->status = status;
}

static void on_data(dp_leg_t *l, const char *buf, size_t len)
{
    target_t *t = l->data;
    if (t->answer->size + len > MAX_ANSWER)
        return;
    h2o_iovec_t dst = h2o_buffer_reserve(&t->answer, len + 1);
    memcpy(dst.base, buf, len);
    t->answer->size += len;
    t->answer->bytes[t->answer->size] = '\0';
}

static void on_end(dp_leg_t *l, const char *err, bool timed_out)
{
    target_t *t = l->data;
    t->err = timed_out ? "timeout" : err;
    target_done(t);
}

static const dp_leg_ops_t abort_ops = {.on_head = on_head, .on_data = on_data, .on_end = on_end};

static void on_deadline(h2o_timeout_entry_t *entry)
{
    fanout_t *f = H2O_STRUCT_FROM_MEMBER(fanout_t, deadline, entry);
    for (size_t i = 0; i < f->n; i++) {
        target_t *t = f->targets + i;
        if (t->leg) {
            dp_leg_cancel(t->leg);
            t->err = "timeout";
            target_done(t);
        }
    }
}

/* the client went away: nobody to answer, stop asking */
static void on_dispose(void *arg)
{
    fanout_t *f = *(fanout_t **)arg;
    if (h2o_timeout_is_linked(&f->deadline))
        h2o_timeout_unlink(&f->deadline);
    for (size_t i = 0; i < f->n; i++) {
        if (f->targets[i].leg)
            dp_leg_cancel(f->targets[i].leg);
        h2o_buffer_dispose(&f->targets[i].answer);
    }
}

static bool valid_body(const char *body, size_t len)
{
    json_tokener *tok = json_tokener_new_ex(16);
    json_object *o = json_tokener_parse_ex(tok, body ? body : "", (int)len);
    bool whole = o && json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    json_object *all, *ids;
    bool ok = whole && json_object_is_type(o, json_type_object);
    bool abort_all = ok && json_object_object_get_ex(o, "abort_all", &all) &&
                     json_object_is_type(all, json_type_boolean) && json_object_get_boolean(all);
    bool has_ids = ok && json_object_object_get_ex(o, "req_ids", &ids) &&
                   json_object_is_type(ids, json_type_array) && json_object_array_length(ids) > 0;
    for (size_t i = 0; has_ids && i < json_object_array_length(ids); i++) {
        json_type ty = json_object_get_type(json_object_array_get_idx(ids, i));
        has_ids = ty == json_type_string || ty == json_type_int;
    }
    json_object_put(o);
    return abort_all || has_ids;
}

typedef struct {
    char url[SHM_URL_LEN], host[SHM_HOST_LEN];
    uint16_t port, slot;
    uint32_t gen;
} addr_t;

typedef struct {
    addr_t *out;
    size_t n;
} addrs_t;

static void copy_addr(const shm_instance_t *in, unsigned slot, void *arg)
{
    addrs_t *a = arg;
    addr_t *o = &a->out[a->n++];
    memcpy(o->url, in->url, sizeof(in->url));
    memcpy(o->host, in->host, sizeof(in->host));
    o->port = in->port;
    o->slot = (uint16_t)slot;
    o->gen = shm_slot_generation_of(in);
}

static size_t live_instances(dp_thread_t *t, addr_t *out)
{
    addrs_t a = {out, 0};
    dp_for_each_slot(t, false, copy_addr, &a);
    return a.n;
}

int dp_handle_abort(h2o_req_t *req)
{
    if (!fd_admin_authorize(req))
        return 0;
    if (!valid_body(req->entity.base, req->entity.len)) {
        dp_send_json(req, 400, H2O_STRLIT("{\"error\":\"must provide abort_all=true or req_ids\"}"));
        return 0;
    }
    dp_thread_t *t = dp_self(req);
    addr_t *addrs = h2o_mem_alloc_pool(&req->pool, sizeof(*addrs) * SHM_MAX_INSTANCES);
    size_t n = live_instances(t, addrs);
    fanout_t *f = h2o_mem_alloc_pool(&req->pool, sizeof(*f));
    *f = (fanout_t){.req = req, .n = n, .pending = n};
    f->targets = h2o_mem_alloc_pool(&req->pool, sizeof(*f->targets) * (n ? n : 1));
    f->deadline.cb = on_deadline;
    if (n == 0) {
        respond(f);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        target_t *tg = f->targets + i;
        *tg = (target_t){.f = f};
        memcpy(tg->url, addrs[i].url, sizeof(tg->url));
        h2o_buffer_init(&tg->answer, &h2o_socket_buffer_prototype);
    }
    *(fanout_t **)h2o_mem_alloc_shared(&req->pool, sizeof(fanout_t *), on_dispose) = f;
    h2o_timeout_link(t->ctx.loop, &t->abort_timeout, &f->deadline);
    h2o_iovec_t path = h2o_iovec_init(H2O_STRLIT("/v1/abort_requests"));
    for (size_t i = 0; i < n; i++) {
        target_t *tg = f->targets + i;
        dp_pool_t *pool = dp_pool_acquire(t, addrs[i].slot, addrs[i].gen, addrs[i].host, addrs[i].port);
        if (!pool) {
            tg->err = "bad address";
            target_done(tg);
            continue;
        }
        const char *auth = tg->url + strlen("http://");
        tg->leg =
            dp_leg_start(t, pool, h2o_iovec_init(auth, strlen(auth)), path, req->entity, &abort_ops, tg);
        if (!tg->leg) {
            tg->err = "out of memory";
            target_done(tg);
        }
    }
    return 0;
}
