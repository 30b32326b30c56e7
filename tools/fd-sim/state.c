/*
 * tools/fd-sim/state.c - fd-sim's state shared by its event-loop threads (state.h): counters,
 * health, metric overrides and the last completion request seen, the /sim/stats and /metrics
 * figures made from them, and the /sim/health and /sim/metrics controls.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fd-sim/body.h"
#include "tools/fd-sim/gen.h"
#include "tools/fd-sim/state.h"

void sim_state_init(sim_state_t *st, const char *name, uint64_t seed)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->name, sizeof(st->name), "%s", name);
    atomic_init(&st->healthy, true);
    atomic_init(&st->m_running, -1);
    atomic_init(&st->m_waiting, -1);
    atomic_init(&st->m_blocks, -1);
    sim_fault_init(&st->fault, seed);
    pthread_mutex_init(&st->lock, NULL);
}

static void forget_last(sim_state_t *st)
{
    free(st->last_body);
    free(st->last_path);
    json_object_put(st->last_headers);
    free(st->last_request_id);
    free(st->last_disaggregate_info);
    st->last_body = NULL;
    st->last_body_len = 0;
    st->last_path = NULL;
    st->last_headers = NULL;
    st->last_request_id = NULL;
    st->last_disaggregate_info = NULL;
}

void sim_state_destroy(sim_state_t *st)
{
    forget_last(st);
    sim_fault_destroy(&st->fault);
    pthread_mutex_destroy(&st->lock);
}

void sim_state_record(sim_state_t *st, const char *path, size_t path_len, const char *body, size_t body_len,
                      struct json_object *headers)
{
    char *b = malloc(body_len + 1), *p = strndup(path, path_len);
    if (!b || !p) {
        free(b);
        free(p);
        json_object_put(headers);
        return;
    }
    if (body_len)
        memcpy(b, body, body_len);
    b[body_len] = '\0';
    pthread_mutex_lock(&st->lock);
    free(st->last_body);
    free(st->last_path);
    json_object_put(st->last_headers);
    st->last_body = b;
    st->last_body_len = body_len;
    st->last_path = p;
    st->last_headers = headers;
    pthread_mutex_unlock(&st->lock);
}

void sim_state_record_pd(sim_state_t *st, const char *request_id, const char *disaggregate_info)
{
    char *rid = request_id ? strdup(request_id) : NULL,
         *info = disaggregate_info ? strdup(disaggregate_info) : NULL;
    pthread_mutex_lock(&st->lock);
    free(st->last_request_id);
    free(st->last_disaggregate_info);
    st->last_request_id = rid;
    st->last_disaggregate_info = info;
    pthread_mutex_unlock(&st->lock);
}

static void add_long(json_object *o, const char *key, long v)
{
    json_object_object_add(o, key, json_object_new_int64(v));
}

/* A JSON text recorded from a request body, back as a value (null when absent). */
static json_object *json_value(const char *text)
{
    return text ? json_tokener_parse(text) : NULL;
}

static void add_tokens(json_object *o, sim_state_t *st, const sim_engine_load_t *load)
{
    unsigned long long prompt = load ? load->prompt_tokens_total : st->prompt_tokens;
    unsigned long long cached = load ? load->cached_tokens_total : 0;
    json_object_object_add(o, "prompt_tokens", json_object_new_int64((int64_t)prompt));
    json_object_object_add(o, "cached_tokens", json_object_new_int64((int64_t)cached));
    if (!load)
        return;
    json_object *e = json_object_new_object();
    json_object_object_add(e, "running", json_object_new_int64(load->running));
    json_object_object_add(e, "waiting", json_object_new_int64(load->waiting));
    json_object_object_add(e, "free_blocks", json_object_new_int64(load->free_blocks));
    json_object_object_add(e, "cached_blocks", json_object_new_int64(load->cached_blocks));
    json_object_object_add(e, "evicted_blocks", json_object_new_int64((int64_t)load->evicted_blocks_total));
    json_object_object_add(o, "engine", e);
}

char *sim_state_stats_json(sim_state_t *st, const sim_engine_load_t *load, size_t *len)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(st->name));
    add_long(o, "requests", st->requests);
    add_long(o, "inflight", st->inflight);
    add_long(o, "completed", st->completed);
    add_long(o, "cancelled", st->cancelled);
    add_long(o, "failed", st->failed);
    add_long(o, "rejected", st->rejected);
    add_long(o, "aborted", st->aborted);
    add_long(o, "register_ok", st->register_ok);
    add_long(o, "register_failed", st->register_failed);
    json_object_object_add(o, "healthy", json_object_new_boolean(st->healthy));
    add_tokens(o, st, load);

    pthread_mutex_lock(&st->lock);
    json_object_object_add(o, "last_body",
                           st->last_body ? json_object_new_string_len(st->last_body, (int)st->last_body_len)
                                         : NULL);
    json_object_object_add(o, "last_path", st->last_path ? json_object_new_string(st->last_path) : NULL);
    json_object_object_add(o, "last_headers",
                           st->last_headers ? json_object_get(st->last_headers) : json_object_new_object());
    json_object_object_add(o, "last_request_id", json_value(st->last_request_id));
    json_object_object_add(o, "last_disaggregate_info", json_value(st->last_disaggregate_info));
    char *out = sim_json_text(o, len);
    json_object_put(o); /* drops the reference on last_headers while still holding the lock */
    pthread_mutex_unlock(&st->lock);
    return out;
}

void sim_state_reset(sim_state_t *st)
{
    /* totals only: inflight counts live calls, and seq keeps generated ids unique */
    _Atomic long *const counters[] = {&st->requests, &st->completed, &st->cancelled,   &st->failed,
                                      &st->rejected, &st->aborted,   &st->register_ok, &st->register_failed};
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        *counters[i] = 0;
    st->prompt_tokens = 0;
    pthread_mutex_lock(&st->lock);
    forget_last(st);
    pthread_mutex_unlock(&st->lock);
}

int sim_state_set_health(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen)
{
    json_object *root = sim_parse_object(body, len, err, errlen), *v;
    if (!root)
        return -1;
    int rc = -1;
    if (json_object_object_get_ex(root, "healthy", &v) && json_object_is_type(v, json_type_boolean)) {
        st->healthy = json_object_get_boolean(v);
        rc = 0;
    } else {
        snprintf(err, errlen, "healthy must be a boolean");
    }
    json_object_put(root);
    return rc;
}

/* Validate one override: absent leaves *out untouched, null gives -1 (computed). */
static int metric_override(json_object *root, const char *key, long *out, char *err, size_t errlen)
{
    json_object *v;
    if (!json_object_object_get_ex(root, key, &v))
        return 0;
    if (v == NULL) {
        *out = -1;
        return 0;
    }
    return sim_opt_int(root, key, 0, 1000000000L, out, err, errlen);
}

int sim_state_set_metrics(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen)
{
    json_object *root = sim_parse_object(body, len, err, errlen);
    if (!root)
        return -1;
    long running = st->m_running, waiting = st->m_waiting, blocks = st->m_blocks;
    int rc = -1;
    if (metric_override(root, "num_requests_running", &running, err, errlen) == 0 &&
        metric_override(root, "num_requests_waiting", &waiting, err, errlen) == 0 &&
        metric_override(root, "available_gpu_block_num", &blocks, err, errlen) == 0) {
        st->m_running = running;
        st->m_waiting = waiting;
        st->m_blocks = blocks;
        rc = 0;
    }
    json_object_put(root);
    return rc;
}

size_t sim_state_metrics_text(sim_state_t *st, const sim_engine_load_t *load, char *buf, size_t cap)
{
    long inflight = st->inflight;
    sim_metrics_t m = {.running = st->m_running,
                       .waiting = st->m_waiting,
                       .blocks = st->m_blocks,
                       .prompt_tokens_total = load ? load->prompt_tokens_total : st->prompt_tokens,
                       .cached_tokens_total = load ? load->cached_tokens_total : 0};
    if (m.running < 0)
        m.running = load ? (long)load->running : inflight;
    if (m.waiting < 0)
        m.waiting = load ? (long)load->waiting : 0;
    if (m.blocks < 0)
        m.blocks = load ? (long)load->free_blocks : inflight < SIM_GPU_BLOCKS ? SIM_GPU_BLOCKS - inflight : 0;
    return sim_render_metrics(buf, cap, &m);
}
