/*
 * tools/fd-sim/state.c - fd-sim's state shared by its event-loop threads: request counters,
 * health, injected failures, metric overrides and the last completion request seen, plus the
 * bodies of the /sim/ test-control endpoints that change them. Counters are atomics; the rest is
 * behind one mutex (json-c objects are not thread-safe, so every use of last_headers holds it).
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fd-sim/sim.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

void sim_state_init(sim_state_t *st, const char *name, uint64_t seed)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->name, sizeof(st->name), "%s", name);
    atomic_init(&st->healthy, true);
    atomic_init(&st->m_running, -1);
    atomic_init(&st->m_waiting, -1);
    atomic_init(&st->m_blocks, -1);
    pthread_mutex_init(&st->lock, NULL);
    st->fail_mode = SIM_FAIL_NONE;
    st->fail_remaining = -1;
    st->seed = st->rng = seed;
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

static void add_long(json_object *o, const char *key, atomic_long *v)
{
    json_object_object_add(o, key, json_object_new_int64(atomic_load(v)));
}

/* A JSON text recorded from a request body, back as a value (null when absent). */
static json_object *json_value(const char *text)
{
    return text ? json_tokener_parse(text) : NULL;
}

static void add_tokens(json_object *o, sim_state_t *st, const sim_engine_load_t *load)
{
    unsigned long long prompt = load ? load->prompt_tokens_total : atomic_load(&st->prompt_tokens);
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
    add_long(o, "requests", &st->requests);
    add_long(o, "inflight", &st->inflight);
    add_long(o, "completed", &st->completed);
    add_long(o, "cancelled", &st->cancelled);
    add_long(o, "failed", &st->failed);
    add_long(o, "rejected", &st->rejected);
    add_long(o, "aborted", &st->aborted);
    add_long(o, "register_ok", &st->register_ok);
    add_long(o, "register_failed", &st->register_failed);
    json_object_object_add(o, "healthy", json_object_new_boolean(atomic_load(&st->healthy)));
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
    size_t jlen;
    const char *s = json_object_to_json_string_length(o, JSON_FLAGS, &jlen);
    char *out = s ? strndup(s, jlen) : NULL;
    json_object_put(o); /* drops the reference on last_headers while still holding the lock */
    pthread_mutex_unlock(&st->lock);
    *len = out ? jlen : 0;
    return out;
}

void sim_state_reset(sim_state_t *st)
{
    atomic_store(&st->requests, 0);
    atomic_store(&st->completed, 0);
    atomic_store(&st->cancelled, 0);
    atomic_store(&st->failed, 0);
    atomic_store(&st->rejected, 0);
    atomic_store(&st->aborted, 0);
    atomic_store(&st->prompt_tokens, 0);
    atomic_store(&st->register_ok, 0);
    atomic_store(&st->register_failed, 0);
    pthread_mutex_lock(&st->lock);
    forget_last(st);
    pthread_mutex_unlock(&st->lock);
}

static int parse_mode(const char *s, sim_fail_mode_t *mode)
{
    static const struct {
        const char *name;
        sim_fail_mode_t mode;
    } modes[] = {{"none", SIM_FAIL_NONE},
                 {"close_before_head", SIM_FAIL_CLOSE_BEFORE_HEAD},
                 {"hang_before_head", SIM_FAIL_HANG_BEFORE_HEAD},
                 {"status", SIM_FAIL_STATUS},
                 {"die_mid_stream", SIM_FAIL_DIE_MID_STREAM},
                 {"error_rate", SIM_FAIL_ERROR_RATE}};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(s, modes[i].name) == 0) {
            *mode = modes[i].mode;
            return 0;
        }
    }
    return -1;
}

/* Optional integer field in [lo, hi]; *out keeps its value when the field is absent. */
static int opt_int(json_object *root, const char *key, long lo, long hi, long *out, char *err, size_t errlen)
{
    json_object *v;
    if (!json_object_object_get_ex(root, key, &v))
        return 0;
    int64_t n = json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_int) || n < lo || n > hi) {
        snprintf(err, errlen, "%s must be an integer between %ld and %ld", key, lo, hi);
        return -1;
    }
    *out = (long)n;
    return 0;
}

/* Optional number in [0, 1]; *out keeps its value when the field is absent. */
static int opt_rate(json_object *root, const char *key, double *out, char *err, size_t errlen)
{
    json_object *v;
    if (!json_object_object_get_ex(root, key, &v))
        return 0;
    double d = json_object_get_double(v);
    if ((!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) || !(d >= 0) ||
        d > 1) {
        snprintf(err, errlen, "%s must be a number between 0 and 1", key);
        return -1;
    }
    *out = d;
    return 0;
}

int sim_state_set_fail(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen)
{
    json_object *root = sim_parse_object(body, len, err, errlen), *m;
    if (!root)
        return -1;
    int rc = -1;
    sim_fail_mode_t mode;
    long status = 503, count = -1, after = 0, seed = -1;
    double rate = 0;
    if (!json_object_object_get_ex(root, "mode", &m) || !json_object_is_type(m, json_type_string) ||
        parse_mode(json_object_get_string(m), &mode) != 0) {
        snprintf(err, errlen,
                 "mode must be one of none, close_before_head, hang_before_head, status, die_mid_stream, "
                 "error_rate");
        goto done;
    }
    if (opt_int(root, "status", 200, 599, &status, err, errlen) != 0 ||
        opt_int(root, "count", 1, 1000000000L, &count, err, errlen) != 0 ||
        opt_int(root, "after_chunks", 0, SIM_MAX_TOKENS, &after, err, errlen) != 0 ||
        opt_int(root, "seed", 0, INT64_MAX, &seed, err, errlen) != 0 ||
        opt_rate(root, "error_rate", &rate, err, errlen) != 0)
        goto done;
    pthread_mutex_lock(&st->lock);
    st->fail_mode = mode;
    st->fail_status = (int)status;
    st->fail_remaining = mode == SIM_FAIL_NONE ? -1 : count;
    st->fail_after_chunks = (unsigned)after;
    st->fail_rate = rate;
    st->rng = seed >= 0 ? (uint64_t)seed : st->seed;
    pthread_mutex_unlock(&st->lock);
    rc = 0;
done:
    json_object_put(root);
    return rc;
}

/* splitmix64: a uniform draw in [0, 1) that depends only on the seed and the number of draws. */
static double draw(uint64_t *rng)
{
    uint64_t z = (*rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) / (double)(1ULL << 53);
}

sim_fail_mode_t sim_state_take_fail(sim_state_t *st, sim_fail_t *out)
{
    pthread_mutex_lock(&st->lock);
    out->mode = st->fail_mode;
    out->status = st->fail_status;
    out->after_chunks = st->fail_after_chunks;
    if (out->mode == SIM_FAIL_ERROR_RATE)
        out->mode = draw(&st->rng) < st->fail_rate ? SIM_FAIL_STATUS : SIM_FAIL_NONE;
    if (out->mode != SIM_FAIL_NONE && st->fail_remaining > 0 && --st->fail_remaining == 0)
        st->fail_mode = SIM_FAIL_NONE;
    pthread_mutex_unlock(&st->lock);
    return out->mode;
}

int sim_state_set_health(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen)
{
    json_object *root = sim_parse_object(body, len, err, errlen), *v;
    if (!root)
        return -1;
    int rc = -1;
    if (json_object_object_get_ex(root, "healthy", &v) && json_object_is_type(v, json_type_boolean)) {
        atomic_store(&st->healthy, json_object_get_boolean(v));
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
    return opt_int(root, key, 0, 1000000000L, out, err, errlen);
}

int sim_state_set_metrics(sim_state_t *st, const char *body, size_t len, char *err, size_t errlen)
{
    json_object *root = sim_parse_object(body, len, err, errlen);
    if (!root)
        return -1;
    long running = atomic_load(&st->m_running), waiting = atomic_load(&st->m_waiting),
         blocks = atomic_load(&st->m_blocks);
    int rc = -1;
    if (metric_override(root, "num_requests_running", &running, err, errlen) == 0 &&
        metric_override(root, "num_requests_waiting", &waiting, err, errlen) == 0 &&
        metric_override(root, "available_gpu_block_num", &blocks, err, errlen) == 0) {
        atomic_store(&st->m_running, running);
        atomic_store(&st->m_waiting, waiting);
        atomic_store(&st->m_blocks, blocks);
        rc = 0;
    }
    json_object_put(root);
    return rc;
}

size_t sim_state_metrics_text(sim_state_t *st, const sim_engine_load_t *load, char *buf, size_t cap)
{
    long inflight = atomic_load(&st->inflight);
    sim_metrics_t m = {.running = atomic_load(&st->m_running),
                       .waiting = atomic_load(&st->m_waiting),
                       .blocks = atomic_load(&st->m_blocks),
                       .prompt_tokens_total =
                           load ? load->prompt_tokens_total : atomic_load(&st->prompt_tokens),
                       .cached_tokens_total = load ? load->cached_tokens_total : 0};
    if (m.running < 0)
        m.running = load ? (long)load->running : inflight;
    if (m.waiting < 0)
        m.waiting = load ? (long)load->waiting : 0;
    if (m.blocks < 0)
        m.blocks = load ? (long)load->free_blocks : inflight < SIM_GPU_BLOCKS ? SIM_GPU_BLOCKS - inflight : 0;
    return sim_render_metrics(buf, cap, &m);
}
