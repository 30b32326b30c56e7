/*
 * tools/fd-sim/routes.c - the route table and the endpoints that answer at once (routes.h):
 * GET /health, /metrics, /v1/models, /sim/stats and the POST /sim/ controls.
 */
#include <json-c/json.h>
#include <string.h>
#include <time.h>

#include "common/reply.h"
#include "tools/fd-sim/abort.h"
#include "tools/fd-sim/body.h"
#include "tools/fd-sim/completion.h"
#include "tools/fd-sim/http.h"
#include "tools/fd-sim/routes.h"

#define IS(v, lit) h2o_memis((v).base, (v).len, H2O_STRLIT(lit))

typedef struct {
    h2o_handler_t super;
    sim_server_t *srv;
    bool metrics_only;
} sim_handler_t;

typedef void (*route_fn)(sim_thread_t *th, h2o_req_t *req);

static void on_chat(sim_thread_t *th, h2o_req_t *req)
{
    sim_completion_handle(th, req, SIM_API_CHAT);
}

static void on_completions(sim_thread_t *th, h2o_req_t *req)
{
    sim_completion_handle(th, req, SIM_API_COMPLETIONS);
}

static void on_abort(sim_thread_t *th, h2o_req_t *req)
{
    sim_abort_handle(th->srv, req);
}

static void on_health(sim_thread_t *th, h2o_req_t *req)
{
    if (sim_server_starting(th->srv))
        fd_reply(req, 503, "application/json", "{\"status\":\"starting\"}", 21);
    else if (th->srv->st->healthy)
        fd_reply(req, 200, "application/json", "{\"status\":\"ok\"}", 15);
    else
        fd_reply(req, 503, "application/json", "{\"status\":\"unhealthy\"}", 22);
}

static void reply_metrics(sim_server_t *srv, h2o_req_t *req)
{
    char buf[SIM_METRICS_CAP];
    sim_engine_load_t load;
    size_t len = sim_state_metrics_text(srv->st, sim_server_engine_load(srv, &load), buf, sizeof(buf));
    fd_reply(req, 200, "text/plain; version=0.0.4", buf, len);
}

static void on_metrics(sim_thread_t *th, h2o_req_t *req)
{
    reply_metrics(th->srv, req);
}

/* GET /v1/models: the OpenAI list of the one --model, as FastDeploy's api_server answers it. */
static void reply_models(sim_server_t *srv, h2o_req_t *req)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "id", json_object_new_string(srv->cfg->model));
    json_object_object_add(m, "object", json_object_new_string("model"));
    json_object_object_add(
        m, "created",
        json_object_new_int64((int64_t)time(NULL) - (int64_t)(sim_server_uptime_ms(srv) / 1000)));
    json_object_object_add(m, "owned_by", json_object_new_string("FastDeploy"));
    json_object *data = json_object_new_array();
    json_object_array_add(data, m);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "object", json_object_new_string("list"));
    json_object_object_add(o, "data", data);
    size_t len;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    fd_reply(req, 200, "application/json", s, len);
    json_object_put(o);
}

/* Without --model the route does not exist, whatever the method; with it only GET is served. */
static void on_models(sim_thread_t *th, h2o_req_t *req)
{
    if (IS(req->method, "GET") && th->srv->cfg->model[0])
        reply_models(th->srv, req);
    else
        sim_reply_error(req, 404, "not found", "not_found_error");
}

static void on_stats(sim_thread_t *th, h2o_req_t *req)
{
    size_t len = 0;
    sim_engine_load_t load;
    char *body = sim_state_stats_json(th->srv->st, sim_server_engine_load(th->srv, &load), &len);
    sim_reply_json(req, 200, body, len);
}

static void reply_control(h2o_req_t *req, int rc, const char *err)
{
    if (rc != 0)
        sim_reply_error(req, 400, err, "invalid_request_error");
    else
        sim_reply_ok(req);
}

static void on_set_health(sim_thread_t *th, h2o_req_t *req)
{
    char err[256];
    reply_control(
        req, sim_state_set_health(th->srv->st, req->entity.base, sim_body_len(req), err, sizeof(err)), err);
}

static void on_set_fail(sim_thread_t *th, h2o_req_t *req)
{
    char err[256];
    reply_control(
        req, sim_fault_set(&th->srv->st->fault, req->entity.base, sim_body_len(req), err, sizeof(err)), err);
}

static void on_set_metrics(sim_thread_t *th, h2o_req_t *req)
{
    char err[256];
    reply_control(
        req, sim_state_set_metrics(th->srv->st, req->entity.base, sim_body_len(req), err, sizeof(err)), err);
}

/* Body optional; {"flush_cache":true} also empties the engine's evictable cache. */
static void on_reset(sim_thread_t *th, h2o_req_t *req)
{
    bool flush = false;
    if (sim_body_len(req) > 0) {
        char err[256];
        json_object *root = sim_parse_object(req->entity.base, req->entity.len, err, sizeof(err)), *v;
        if (!root) {
            sim_reply_error(req, 400, err, "invalid_request_error");
            return;
        }
        flush = json_object_object_get_ex(root, "flush_cache", &v) && json_object_get_boolean(v);
        json_object_put(root);
    }
    sim_state_reset(th->srv->st);
    sim_server_engine_reset(th->srv, flush);
    sim_reply_ok(req);
}

/* method NULL: the handler looks at the method itself. */
static const struct {
    const char *path, *method;
    route_fn fn;
} ROUTES[] = {
    {"/v1/chat/completions", "POST", on_chat}, {"/v1/completions", "POST", on_completions},
    {"/v1/abort_requests", "POST", on_abort},  {"/health", "GET", on_health},
    {"/metrics", "GET", on_metrics},           {"/v1/models", NULL, on_models},
    {"/sim/stats", "GET", on_stats},           {"/sim/health", "POST", on_set_health},
    {"/sim/fail", "POST", on_set_fail},        {"/sim/metrics", "POST", on_set_metrics},
    {"/sim/reset", "POST", on_reset},
};

static void route(sim_thread_t *th, h2o_req_t *req)
{
    h2o_iovec_t p = req->path_normalized;
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++) {
        if (!h2o_memis(p.base, p.len, ROUTES[i].path, strlen(ROUTES[i].path)))
            continue;
        if (ROUTES[i].method &&
            !h2o_memis(req->method.base, req->method.len, ROUTES[i].method, strlen(ROUTES[i].method)))
            sim_reply_error(req, 405, "method not allowed", "invalid_request_error");
        else
            ROUTES[i].fn(th, req);
        return;
    }
    sim_reply_error(req, 404, "not found", "not_found_error");
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    sim_handler_t *h = (sim_handler_t *)self;
    sim_thread_t *th = H2O_STRUCT_FROM_MEMBER(sim_thread_t, ctx, req->conn->ctx);
    if (!h->metrics_only)
        route(th, req);
    else if (IS(req->path_normalized, "/metrics") && IS(req->method, "GET"))
        reply_metrics(h->srv, req);
    else
        sim_reply_error(req, 404, "not found (metrics port)", "not_found_error");
    return 0;
}

h2o_hostconf_t *sim_routes_host(sim_server_t *srv, const char *name, bool metrics_only)
{
    h2o_hostconf_t *host = h2o_config_register_host(&srv->conf, h2o_iovec_init(name, strlen(name)), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    sim_handler_t *h = (sim_handler_t *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = srv;
    h->metrics_only = metrics_only;
    return host;
}
