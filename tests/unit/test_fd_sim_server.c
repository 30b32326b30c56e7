/*
 * tests/unit/test_fd_sim_server.c - fd-sim's HTTP server in-process (tools/fd-sim/server.c and the modules it
 * serves with), for what the router's integration tests do not reach: /v1/abort_requests across threads, the
 * prefill and decode roles, the engine model on the wall clock (prefix cache, queue, metrics),
 * die_mid_stream and --slow-start-ms. Requests go through the blocking client of
 * common/hclient.h; waits poll a condition with a deadline. Each test runs in its own process,
 * so the server's parked threads end with it.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/hclient.h"
#include "tools/fd-sim/args.h"
#include "tools/fd-sim/server.h"
#include "tools/fd-sim/state.h"

#define TIMEOUT_MS 10000
#define MAX_BODY   (4u << 20)

static sim_config_t cfg;
static sim_state_t state;
static char target[32];

static void start(int argc, char **argv)
{
    char err[256];
    cr_assert_eq(sim_parse_args(argc, argv, &cfg, err, sizeof(err)), 0, "%s", err);
    int port, mport;
    sim_server_t *srv = sim_server_create(&cfg, &state, &port, &mport, err, sizeof(err));
    cr_assert_not_null(srv, "%s", err);
    sim_config_finalize(&cfg, port);
    sim_state_init(&state, cfg.name, cfg.seed);
    cr_assert_eq(sim_server_start(srv), 0);
    snprintf(target, sizeof(target), "127.0.0.1:%d", port);
}

#define START(...)                                                                                           \
    do {                                                                                                     \
        char *argv_[] = {"fd-sim", "--port", "0", __VA_ARGS__};                                              \
        start((int)(sizeof(argv_) / sizeof(argv_[0])), argv_);                                               \
    } while (0)

typedef struct {
    int rc, status;
    char *body;
} reply_t;

static reply_t request(const char *method, const char *path, const char *body)
{
    hc_response_t r;
    memset(&r, 0, sizeof(r));
    int rc = hc_request(target, method, path, "application/json", body, body ? strlen(body) : 0, TIMEOUT_MS,
                        MAX_BODY, &r);
    reply_t out = {rc, r.status, r.body ? strdup(r.body) : NULL};
    hc_response_free(&r);
    return out;
}

static json_object *json_of(const reply_t *r)
{
    cr_assert_eq(r->rc, 0, "request failed");
    json_object *o = json_tokener_parse(r->body);
    cr_assert_not_null(o, "not JSON: %s", r->body);
    return o;
}

static json_object *get_json(const char *path)
{
    reply_t r = request("GET", path, NULL);
    json_object *o = json_of(&r);
    free(r.body);
    return o;
}

static json_object *field(json_object *o, const char *key)
{
    json_object *v = NULL;
    cr_assert(json_object_object_get_ex(o, key, &v), "no %s in %s", key, json_object_to_json_string(o));
    return v;
}

static long stat_of(const char *key)
{
    json_object *s = get_json("/sim/stats");
    long v = (long)json_object_get_int64(field(s, key));
    json_object_put(s);
    return v;
}

/* Poll until the stats counter reaches want (deadline 10 s). */
static void wait_stat(const char *key, long want)
{
    double deadline = (double)fd_mono_ms() + TIMEOUT_MS;
    long v;
    while ((v = stat_of(key)) != want) {
        cr_assert_lt((double)fd_mono_ms(), deadline, "%s stayed %ld, wanted %ld", key, v, want);
        usleep(5000);
    }
}

static int count(const char *haystack, const char *needle)
{
    int n = 0;
    for (const char *p = haystack; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void set_fail(const char *body)
{
    char err[256];
    cr_assert_eq(sim_fault_set(&state.fault, body, strlen(body), err, sizeof(err)), 0, "%s", err);
}

/* A request on its own thread, for the ones an abort ends. */
typedef struct {
    pthread_t tid;
    const char *path, *body;
    reply_t reply;
} bg_t;

static void *bg_main(void *arg)
{
    bg_t *b = arg;
    b->reply = request("POST", b->path, b->body);
    return NULL;
}

static void bg_start(bg_t *b, const char *path, const char *body)
{
    b->path = path;
    b->body = body;
    cr_assert_eq(pthread_create(&b->tid, NULL, bg_main, b), 0);
}

static reply_t bg_join(bg_t *b)
{
    pthread_join(b->tid, NULL);
    return b->reply;
}

/* ---- abort ---- */

Test(server, abort_ends_a_stream_with_what_it_sent)
{
    START("--tokens", "100000", "--token-delay-ms", "5");
    bg_t b;
    bg_start(&b, "/v1/chat/completions",
             "{\"request_id\":\"a1\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    wait_stat("inflight", 1);
    usleep(50000); /* let some tokens flow; the check below holds for any number */
    reply_t ar = request("POST", "/v1/abort_requests", "{\"req_ids\":[\"a1\",\"zz\"]}");
    cr_assert_eq(ar.status, 200);
    json_object *a = json_of(&ar), *result = field(a, "result");
    json_object *aborted = field(result, "aborted"), *not_found = field(result, "not_found");
    cr_assert_eq(json_object_array_length(aborted), 1, "%s", ar.body);
    json_object *entry = json_object_array_get_idx(aborted, 0);
    cr_assert_str_eq(json_object_get_string(field(entry, "request_id")), "a1");
    int n = json_object_get_int(field(entry, "output_tokens"));
    cr_assert_eq(json_object_array_length(not_found), 1);
    cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(not_found, 0)), "zz");

    reply_t s = bg_join(&b);
    cr_assert_eq(s.rc, 0, "the stream ended cleanly");
    cr_assert_eq(count(s.body, "\"content\":\"tok") + count(s.body, "\"content\":\" tok"), n,
                 "the client got exactly the tokens the abort reported");
    cr_assert_eq(count(s.body, "\"finish_reason\":\"abort\""), 1);
    cr_assert_eq(count(s.body, "\"finish_reason\":\"stop\""), 0);
    char usage[64];
    snprintf(usage, sizeof(usage), "\"completion_tokens\":%d", n);
    cr_assert_neq(strstr(s.body, usage), NULL, "usage says %d: %s", n, s.body + strlen(s.body) - 300);
    cr_assert(strlen(s.body) > 16 && strcmp(s.body + strlen(s.body) - 14, "data: [DONE]\n\n") == 0);
    wait_stat("inflight", 0);
    cr_assert_eq(stat_of("aborted"), 1);
    cr_assert_eq(stat_of("cancelled"), 0);

    reply_t again = request("POST", "/v1/abort_requests", "{\"req_ids\":[\"a1\"]}");
    json_object *a2 = json_of(&again);
    cr_assert_eq(json_object_array_length(field(field(a2, "result"), "not_found")), 1, "gone: %s",
                 again.body);
    json_object_put(a);
    json_object_put(a2);
    free(ar.body);
    free(s.body);
    free(again.body);
}

Test(server, abort_all_reaches_every_thread)
{
    START("--threads", "3", "--tokens", "100000", "--token-delay-ms", "5");
    bg_t b[4];
    for (int i = 0; i < 4; i++)
        bg_start(&b[i], "/v1/completions",
                 i % 2 ? "{\"prompt\":\"x\",\"request_id\":7}" : "{\"prompt\":\"x\"}");
    wait_stat("inflight", 4);
    reply_t ar = request("POST", "/v1/abort_requests", "{\"abort_all\":true}");
    json_object *a = json_of(&ar), *aborted = field(field(a, "result"), "aborted");
    cr_assert_eq(json_object_array_length(aborted), 4, "%s", ar.body);
    int numeric = 0;
    for (int i = 0; i < 4; i++) {
        json_object *id = field(json_object_array_get_idx(aborted, i), "request_id");
        if (json_object_is_type(id, json_type_int))
            numeric += json_object_get_int(id) == 7;
        else
            cr_assert(strncmp(json_object_get_string(id), cfg.name, strlen(cfg.name)) == 0,
                      "a generated id names the instance: %s", json_object_get_string(id));
    }
    cr_assert_eq(numeric, 2, "a request_id comes back as the JSON value it was: %s", ar.body);
    for (int i = 0; i < 4; i++) {
        reply_t r = bg_join(&b[i]);
        cr_assert_eq(r.status, 200);
        json_object *o = json_of(&r);
        json_object *choice = json_object_array_get_idx(field(o, "choices"), 0);
        cr_assert_str_eq(json_object_get_string(field(choice, "finish_reason")), "abort");
        json_object_put(o);
        free(r.body);
    }
    json_object_put(a);
    free(ar.body);
}

Test(server, abort_needs_ids_or_all)
{
    START("--tokens", "1");
    static const char *const bad[] = {"{}", "{\"abort_all\":false}", "nope", "{\"req_ids\":\"a\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reply_t r = request("POST", "/v1/abort_requests", bad[i]);
        cr_assert_eq(r.status, 400, "%s", bad[i]);
        cr_assert_str_eq(r.body, "{\"error\":\"must provide abort_all=true or req_ids\"}");
        free(r.body);
    }
    reply_t r = request("POST", "/v1/abort_requests", "{\"req_ids\":[]}");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "{\"result\":{\"aborted\":[],\"not_found\":[]}}");
    free(r.body);
    r = request("GET", "/v1/abort_requests", NULL);
    cr_assert_eq(r.status, 405);
    free(r.body);
}

Test(server, abort_ends_a_hung_request)
{
    START("--tokens", "3");
    set_fail("{\"mode\":\"hang_before_head\",\"count\":1}");
    bg_t b;
    bg_start(&b, "/v1/chat/completions", "{\"request_id\":\"h\",\"stream\":true}");
    wait_stat("inflight", 1);
    reply_t ar = request("POST", "/v1/abort_requests", "{\"req_ids\":[\"h\"]}");
    cr_assert_neq(strstr(ar.body, "{\"request_id\":\"h\",\"output_tokens\":0}"), NULL, "%s", ar.body);
    reply_t s = bg_join(&b);
    cr_assert_eq(s.status, 200);
    cr_assert_eq(count(s.body, "\"finish_reason\":\"abort\""), 1, "%s", s.body);
    free(ar.body);
    free(s.body);
}

/* ---- roles ---- */

#define DINFO                                                                                                \
    "\"disaggregate_info\":{\"prefill_ip\":\"127.0.0.1\",\"decode_ip\":\"127.0.0.1\","                       \
    "\"prefill_connector_port\":7100,\"decode_connector_port\":7200,\"decode_device_ids\":[\"0\"],"          \
    "\"decode_rdma_ports\":null,\"transfer_protocol\":\"ipc\",\"decode_tp_size\":1}"

Test(server, decode_checks_disaggregate_info)
{
    START("--role", "decode", "--tokens", "2");
    reply_t r = request("POST", "/v1/chat/completions", "{\"request_id\":\"d1\"}");
    cr_assert_eq(r.status, 400);
    cr_assert_neq(strstr(r.body, "disaggregate_info is missing"), NULL, "%s", r.body);
    free(r.body);
    r = request("POST", "/v1/chat/completions", "{" DINFO "}");
    cr_assert_eq(r.status, 400);
    cr_assert_neq(strstr(r.body, "request_id is missing"), NULL, "%s", r.body);
    free(r.body);
    r = request("POST", "/v1/chat/completions", "{\"request_id\":[1]," DINFO "}");
    cr_assert_eq(r.status, 200, "%s", r.body);
    free(r.body);
    json_object *s = get_json("/sim/stats");
    cr_assert_eq(json_object_get_int(json_object_array_get_idx(field(s, "last_request_id"), 0)), 1);
    cr_assert_eq(json_object_get_int(field(field(s, "last_disaggregate_info"), "decode_connector_port")),
                 7200);
    cr_assert_eq(json_object_get_int(field(s, "rejected")), 2);
    json_object_put(s);
}

Test(server, prefill_answers_one_token_after_its_delay)
{
    START("--role", "prefill", "--tokens", "50", "--prefill-delay-ms", "150");
    double t0 = (double)fd_mono_ms();
    reply_t r = request("POST", "/v1/completions", "{\"prompt\":\"a b\",\"request_id\":\"p1\"," DINFO "}");
    double elapsed = (double)fd_mono_ms() - t0;
    cr_assert_eq(r.status, 200, "a prefill instance does not check the info");
    /* h2o's timers count from the loop's cached clock, which may lag by a few ms */
    cr_assert_geq(elapsed, 145.0, "answered after %.1f ms", elapsed);
    json_object *o = json_of(&r);
    cr_assert_eq(json_object_get_int(field(field(o, "usage"), "completion_tokens")), 1);
    json_object_put(o);
    free(r.body);
    json_object *s = get_json("/sim/stats");
    cr_assert_str_eq(json_object_get_string(field(s, "last_request_id")), "p1");
    cr_assert_str_eq(json_object_get_string(field(field(s, "last_disaggregate_info"), "transfer_protocol")),
                     "ipc");
    json_object_put(s);
}

/* ---- engine model on the wall clock ---- */

static void words(char *buf, size_t cap, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%sw%d", i ? " " : "", i);
}

Test(server, engine_cached_prefix_answers_sooner)
{
    START("--engine", "on", "--prefill-tokens-per-sec", "1000", "--block-tokens", "4", "--tokens", "1");
    char prompt[2048], body[2200];
    words(prompt, sizeof(prompt), 200);
    snprintf(body, sizeof(body), "{\"prompt\":\"%s\"}", prompt);
    double t0 = (double)fd_mono_ms();
    reply_t cold = request("POST", "/v1/completions", body);
    double t_cold = (double)fd_mono_ms() - t0;
    t0 = (double)fd_mono_ms();
    reply_t warm = request("POST", "/v1/completions", body);
    double t_warm = (double)fd_mono_ms() - t0;
    cr_assert_geq(t_cold, 200.0, "200 tokens at 1 ms each, took %.1f ms", t_cold);
    cr_assert_lt(t_warm, t_cold - 100.0, "196 cached tokens save 196 ms: cold %.1f, warm %.1f", t_cold,
                 t_warm);
    json_object *c = json_of(&cold), *w = json_of(&warm);
    cr_assert_eq(
        json_object_get_int(field(field(field(c, "usage"), "prompt_tokens_details"), "cached_tokens")), 0);
    cr_assert_eq(
        json_object_get_int(field(field(field(w, "usage"), "prompt_tokens_details"), "cached_tokens")), 196);
    json_object_put(c);
    json_object_put(w);
    free(cold.body);
    free(warm.body);
    reply_t m = request("GET", "/metrics", NULL);
    cr_assert_neq(strstr(m.body, "\nfastdeploy:prompt_tokens_total 400\n"), NULL, "%s", m.body);
    cr_assert_neq(strstr(m.body, "\nfastdeploy:prefix_cache_hit_tokens_total 196\n"), NULL, "%s", m.body);
    free(m.body);
}

static bool metric_is(const char *text, const char *name, long v)
{
    char line[128];
    snprintf(line, sizeof(line), "\n%s %ld\n", name, v);
    return strstr(text, line) != NULL;
}

Test(server, engine_full_batch_queues_and_metrics_show_it)
{
    START("--engine", "on", "--max-batch", "1", "--decode-step-ms", "5", "--tokens", "100000", "--kv-blocks",
          "50000", "--threads", "2");
    bg_t b[2];
    bg_start(&b[0], "/v1/chat/completions", "{\"stream\":true,\"request_id\":\"q1\"}");
    bg_start(&b[1], "/v1/chat/completions", "{\"stream\":true,\"request_id\":\"q2\"}");
    double deadline = (double)fd_mono_ms() + TIMEOUT_MS;
    for (;;) {
        reply_t m = request("GET", "/metrics", NULL);
        bool queued = metric_is(m.body, "fastdeploy:num_requests_running", 1) &&
                      metric_is(m.body, "fastdeploy:num_requests_waiting", 1) &&
                      metric_is(m.body, "fastdeploy:available_gpu_block_num", 50000 - 6250);
        free(m.body);
        if (queued)
            break;
        cr_assert_lt((double)fd_mono_ms(), deadline, "never saw one running and one waiting");
        usleep(5000);
    }
    json_object *s = get_json("/sim/stats"), *e = field(s, "engine");
    cr_assert_eq(json_object_get_int(field(e, "running")), 1);
    cr_assert_eq(json_object_get_int(field(e, "waiting")), 1);
    json_object_put(s);
    reply_t ar = request("POST", "/v1/abort_requests", "{\"abort_all\":true}");
    free(ar.body);
    for (int i = 0; i < 2; i++) {
        reply_t r = bg_join(&b[i]);
        cr_assert_eq(count(r.body, "\"finish_reason\":\"abort\""), 1);
        free(r.body);
    }
    s = get_json("/sim/stats");
    e = field(s, "engine");
    cr_assert_eq(json_object_get_int(field(e, "running")) + json_object_get_int(field(e, "waiting")), 0,
                 "aborted requests leave the engine");
    json_object_put(s);
}

Test(server, engine_rejects_what_never_fits)
{
    START("--engine", "on", "--kv-blocks", "2", "--block-tokens", "4", "--tokens", "4");
    reply_t r = request("POST", "/v1/completions", "{\"prompt\":\"a b c d e\"}");
    cr_assert_eq(r.status, 400);
    cr_assert_neq(strstr(r.body, "exceed the KV cache"), NULL, "%s", r.body);
    free(r.body);
    r = request("POST", "/v1/completions", "{\"prompt\":\"a b c d\"}");
    cr_assert_eq(r.status, 200, "8 tokens fit 2 blocks of 4");
    free(r.body);
}

/* ---- faults ---- */

Test(server, die_mid_stream_after_k_chunks)
{
    START("--tokens", "10");
    set_fail("{\"mode\":\"die_mid_stream\",\"after_chunks\":3,\"count\":1}");
    hc_response_t r;
    memset(&r, 0, sizeof(r));
    const char *body = "{\"stream\":true}";
    int rc = hc_request(target, "POST", "/v1/completions", "application/json", body, strlen(body), TIMEOUT_MS,
                        MAX_BODY, &r);
    cr_assert_eq(rc, -1, "the stream must not end cleanly");
    hc_response_free(&r);
    wait_stat("inflight", 0);
    cr_assert_eq(stat_of("failed"), 1);
    cr_assert_eq(stat_of("cancelled"), 0, "a deliberate failure, not a cancellation");
    reply_t ok = request("POST", "/v1/completions", body);
    cr_assert_eq(ok.rc, 0, "count 1: the next stream is whole");
    cr_assert_eq(count(ok.body, "data: {"), 10);
    free(ok.body);
}

Test(server, slow_start)
{
    START("--slow-start-ms", "300", "--tokens", "1");
    double t0 = (double)fd_mono_ms();
    reply_t h = request("GET", "/health", NULL);
    reply_t c = request("POST", "/v1/completions", "{}");
    if ((double)fd_mono_ms() - t0 < 250) {
        cr_assert_eq(h.status, 503);
        cr_assert_str_eq(h.body, "{\"status\":\"starting\"}");
        cr_assert_eq(c.status, 503);
    }
    free(h.body);
    free(c.body);
    double deadline = (double)fd_mono_ms() + TIMEOUT_MS;
    for (;;) {
        reply_t r = request("GET", "/health", NULL);
        int status = r.status;
        free(r.body);
        if (status == 200)
            break;
        cr_assert_lt((double)fd_mono_ms(), deadline, "never became healthy");
        usleep(10000);
    }
    cr_assert_geq((double)fd_mono_ms() - t0, 250.0, "healthy too soon");
    reply_t r = request("POST", "/v1/completions", "{}");
    cr_assert_eq(r.status, 200);
    free(r.body);
}
