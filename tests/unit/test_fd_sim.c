/*
 * tests/unit/test_fd_sim.c - the pure parts of fd-sim (tools/fd-sim): command-line parsing,
 * completion-request parsing, rendering of responses, SSE chunks, errors, metrics and the
 * register payload, and the shared state behind the /sim/ test-control endpoints. The HTTP
 * server itself is exercised by the integration tests that drive fd-router against fd-sim.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <string.h>

#include "tools/fd-sim/abort.h"
#include "tools/fd-sim/args.h"
#include "tools/fd-sim/body.h"
#include "tools/fd-sim/fault.h"
#include "tools/fd-sim/gen.h"
#include "tools/fd-sim/pd.h"
#include "tools/fd-sim/state.h"

/* ---- helpers ---- */

static int parse(sim_config_t *cfg, char *err, int argc, char **argv)
{
    return sim_parse_args(argc, argv, cfg, err, 256);
}

#define ARGS(...)                                                                                            \
    (char *[])                                                                                               \
    {                                                                                                        \
        "fd-sim", __VA_ARGS__                                                                                \
    }
#define NARGS(...)           ((int)(sizeof((char *[]){"fd-sim", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(cfg, err, ...) parse(cfg, err, NARGS(__VA_ARGS__), ARGS(__VA_ARGS__))

static json_object *field(json_object *o, const char *key)
{
    json_object *v = NULL;
    cr_assert(json_object_object_get_ex(o, key, &v), "missing field %s in %s", key,
              json_object_to_json_string(o));
    return v;
}

static const char *str_field(json_object *o, const char *key)
{
    return json_object_get_string(field(o, key));
}

static int64_t int_field(json_object *o, const char *key)
{
    json_object *v = field(o, key);
    cr_assert(json_object_is_type(v, json_type_int), "%s is not an int", key);
    return json_object_get_int64(v);
}

static json_object *parse_json(const char *s, size_t len)
{
    char err[256];
    json_object *o = sim_parse_object(s, len, err, sizeof(err));
    cr_assert_not_null(o, "not a JSON object (%s): %.*s", err, (int)len, s);
    return o;
}

static sim_gen_t gen_from(sim_api_t api, const char *body)
{
    sim_defaults_t d = {16, 0, 0};
    sim_gen_t g;
    char err[256];
    cr_assert_eq(
        sim_parse_completion(api, body, strlen(body), &d, "sim-9", 7, 1700000000, &g, err, sizeof(err)), 0,
        "%s", err);
    return g;
}

static int gen_error(const char *body, char *err)
{
    sim_defaults_t d = {16, 0, 0};
    sim_gen_t g;
    return sim_parse_completion(SIM_API_CHAT, body, strlen(body), &d, "sim-9", 7, 0, &g, err, 256);
}

/* ---- command line ---- */

Test(args, defaults)
{
    sim_config_t cfg;
    char err[256];
    cr_assert_eq(PARSE(&cfg, err, "--port", "0"), 0, "%s", err);
    cr_assert_eq(cfg.port, 0);
    cr_assert_str_eq(cfg.host, "127.0.0.1");
    cr_assert_eq(cfg.metrics_port, -1);
    cr_assert_str_eq(cfg.router, "");
    cr_assert_str_eq(cfg.role, "mixed");
    cr_assert_float_eq(cfg.register_interval_secs, 5.0, 1e-9);
    cr_assert_eq(cfg.tokens, 16);
    cr_assert_eq(cfg.token_delay_ms, 0);
    cr_assert_eq(cfg.first_token_delay_ms, 0);
    cr_assert_eq(cfg.threads, 1);
    cr_assert_eq(cfg.rdma_ports.n, -1);
    cr_assert_eq(cfg.device_ids.n, 1);
    cr_assert_str_eq(cfg.transfer_protocol.items[0], "ipc");
    cr_assert_str_eq(cfg.name, "");
    sim_config_finalize(&cfg, 4321);
    cr_assert_str_eq(cfg.name, "sim-4321");
}

Test(args, every_option)
{
    sim_config_t cfg;
    char err[256];
    int rc =
        PARSE(&cfg, err, "--port", "9001", "--host=::1", "--router", "http://127.0.0.1:8000/", "--role",
              "decode", "--register-interval-secs", "0.5", "--tokens", "3", "--token-delay-ms", "20",
              "--first-token-delay-ms=100", "--metrics-port", "9101", "--connector-port", "8100",
              "--engine-worker-queue-port", "8200", "--device-ids", "0,1,2", "--transfer-protocol",
              "ipc,rdma", "--rdma-ports", "7001,7002", "--name", "d1", "--threads", "4", "--tp-size", "2");
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(cfg.port, 9001);
    cr_assert_str_eq(cfg.host, "::1");
    cr_assert_str_eq(cfg.router, "127.0.0.1:8000");
    cr_assert_str_eq(cfg.role, "decode");
    cr_assert_float_eq(cfg.register_interval_secs, 0.5, 1e-9);
    cr_assert_eq(cfg.tokens, 3);
    cr_assert_eq(cfg.token_delay_ms, 20);
    cr_assert_eq(cfg.first_token_delay_ms, 100);
    cr_assert_eq(cfg.metrics_port, 9101);
    cr_assert_str_eq(cfg.connector_port, "8100");
    cr_assert_str_eq(cfg.engine_worker_queue_port, "8200");
    cr_assert_eq(cfg.device_ids.n, 3);
    cr_assert_str_eq(cfg.device_ids.items[2], "2");
    cr_assert_eq(cfg.transfer_protocol.n, 2);
    cr_assert_str_eq(cfg.transfer_protocol.items[1], "rdma");
    cr_assert_eq(cfg.rdma_ports.n, 2);
    cr_assert_str_eq(cfg.rdma_ports.items[0], "7001");
    cr_assert_str_eq(cfg.name, "d1");
    cr_assert_eq(cfg.threads, 4);
    cr_assert_eq(cfg.tp_size, 2);
    sim_config_finalize(&cfg, 9001);
    cr_assert_str_eq(cfg.name, "d1", "an explicit name is kept");
}

Test(args, help)
{
    sim_config_t cfg;
    char err[256];
    cr_assert_eq(PARSE(&cfg, err, "--help"), 1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "1", "-h"), 1);
}

Test(args, rejects_bad_input)
{
    sim_config_t cfg;
    char err[256];
    cr_assert_eq(PARSE(&cfg, err, "--tokens", "3"), -1, "--port is required");
    cr_assert(strstr(err, "--port") != NULL, "%s", err);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--bogus", "1"), -1);
    cr_assert(strstr(err, "unknown option") != NULL, "%s", err);
    cr_assert_eq(PARSE(&cfg, err, "--port"), -1, "missing value");
    cr_assert_eq(PARSE(&cfg, err, "--port", "70000"), -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "-1"), -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "12x"), -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--role", "boss"), -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--router", "127.0.0.1"), -1, "router needs a port");
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--router", "127.0.0.1:0"), -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--device-ids", "0,,1"), -1, "empty list item");
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--threads", "0"), -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--threads", "65"), -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--tokens", "100001"), -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--token-delay-ms", "600001"), -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--register-interval-secs", "0"), -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "stray"), -1);
    cr_assert(strstr(err, "stray") != NULL, "%s", err);
}

Test(args, list_bounds)
{
    sim_config_t cfg;
    char err[256];
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--rdma-ports", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"),
                 0);
    cr_assert_eq(cfg.rdma_ports.n, 16);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--rdma-ports", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"),
                 -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--device-ids", "0123456789012345678901234567890123"), -1);
}

/* ---- request parsing ---- */

Test(request, chat_defaults)
{
    sim_gen_t g =
        gen_from(SIM_API_CHAT, "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                               "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi  there "
                               "you\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}");
    cr_assert_eq(g.api, SIM_API_CHAT);
    cr_assert_not(g.stream);
    cr_assert_eq(g.tokens, 16);
    cr_assert_not(g.truncated);
    cr_assert_eq(g.prompt_tokens, 5, "words of the text parts only, got %u", g.prompt_tokens);
    cr_assert_str_eq(g.id, "chatcmpl-sim-9-7");
    cr_assert_str_eq(g.model, "default");
    cr_assert_str_eq(g.instance, "sim-9");
    cr_assert_eq(g.created, 1700000000);
}

Test(request, completion_prompt_forms)
{
    sim_gen_t g = gen_from(SIM_API_COMPLETIONS, "{\"prompt\":\"one two three\",\"model\":\"m\"}");
    cr_assert_eq(g.prompt_tokens, 3);
    cr_assert_str_eq(g.id, "cmpl-sim-9-7");
    cr_assert_str_eq(g.model, "m");
    g = gen_from(SIM_API_COMPLETIONS, "{\"prompt\":[\"a b\",\"c\"]}");
    cr_assert_eq(g.prompt_tokens, 3);
    g = gen_from(SIM_API_COMPLETIONS, "{\"prompt\":[1,2,3,4]}");
    cr_assert_eq(g.prompt_tokens, 4, "token ids count one each");
}

Test(request, request_id_names_the_response)
{
    sim_gen_t g = gen_from(SIM_API_CHAT, "{\"request_id\":\"req-42\"}");
    cr_assert_str_eq(g.id, "chatcmpl-req-42");
    g = gen_from(SIM_API_CHAT, "{\"request_id\":\"\"}");
    cr_assert_str_eq(g.id, "chatcmpl-sim-9-7", "an empty request_id is ignored");
}

Test(request, overrides_and_caps)
{
    sim_gen_t g =
        gen_from(SIM_API_CHAT, "{\"sim_tokens\":5,\"sim_token_delay_ms\":30,\"sim_first_token_delay_ms\":70,"
                               "\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    cr_assert(g.stream);
    cr_assert(g.include_usage);
    cr_assert_eq(g.tokens, 5);
    cr_assert_eq(g.token_delay_ms, 30);
    cr_assert_eq(g.first_token_delay_ms, 70);
    cr_assert_eq(sim_delay_before(&g, 0), 100, "first token waits first + per-token delay");
    cr_assert_eq(sim_delay_before(&g, 1), 30);
    cr_assert_eq(sim_delay_before(&g, 4), 30);

    g = gen_from(SIM_API_CHAT, "{\"sim_tokens\":5,\"max_tokens\":3}");
    cr_assert_eq(g.tokens, 3);
    cr_assert(g.truncated);
    g = gen_from(SIM_API_CHAT, "{\"max_tokens\":100}");
    cr_assert_eq(g.tokens, 16);
    cr_assert_not(g.truncated, "a cap above the count changes nothing");
    g = gen_from(SIM_API_CHAT, "{\"max_completion_tokens\":2,\"max_tokens\":4}");
    cr_assert_eq(g.tokens, 2, "the smaller cap wins");
    g = gen_from(SIM_API_CHAT, "{\"max_tokens\":null,\"stream\":null}");
    cr_assert_eq(g.tokens, 16, "null means absent");
    cr_assert_not(g.stream);
}

Test(request, rejects_bad_bodies)
{
    char err[256];
    cr_assert_eq(gen_error("", err), -1);
    cr_assert(strstr(err, "empty") != NULL, "%s", err);
    cr_assert_eq(gen_error("{\"messages\":", err), -1);
    cr_assert(strstr(err, "invalid JSON") != NULL, "%s", err);
    cr_assert_eq(gen_error("{bad}", err), -1);
    cr_assert_eq(gen_error("{} {}", err), -1);
    cr_assert(strstr(err, "trailing") != NULL, "%s", err);
    cr_assert_eq(gen_error("[1,2]", err), -1);
    cr_assert(strstr(err, "object") != NULL, "%s", err);
    cr_assert_eq(gen_error("{\"stream\":\"yes\"}", err), -1);
    cr_assert(strstr(err, "stream") != NULL, "%s", err);
    cr_assert_eq(gen_error("{\"max_tokens\":-1}", err), -1);
    cr_assert_eq(gen_error("{\"max_tokens\":\"5\"}", err), -1);
    cr_assert_eq(gen_error("{\"sim_tokens\":100001}", err), -1);
    cr_assert_eq(gen_error("{\"sim_token_delay_ms\":1.5}", err), -1);
    cr_assert_eq(gen_error("{\"sim_first_token_delay_ms\":600001}", err), -1);
    cr_assert_eq(gen_error("{}  \n", err), 0, "trailing whitespace is fine");
}

/* ---- rendering ---- */

Test(render, chat_response)
{
    sim_gen_t g =
        gen_from(SIM_API_CHAT, "{\"sim_tokens\":3,\"model\":\"m/1\",\"messages\":[{\"content\":\"a b\"}]}");
    size_t len;
    char *s = sim_render_response(&g, &len);
    cr_assert_eq(strlen(s), len);
    cr_assert(strstr(s, "m/1") != NULL, "slashes are not escaped: %s", s);
    json_object *o = parse_json(s, len);
    cr_assert_str_eq(str_field(o, "id"), "chatcmpl-sim-9-7");
    cr_assert_str_eq(str_field(o, "object"), "chat.completion");
    cr_assert_eq(int_field(o, "created"), 1700000000);
    cr_assert_str_eq(str_field(o, "sim_instance"), "sim-9");
    json_object *choice = json_object_array_get_idx(field(o, "choices"), 0);
    json_object *msg = field(choice, "message");
    cr_assert_str_eq(str_field(msg, "role"), "assistant");
    cr_assert_str_eq(str_field(msg, "content"), "tok0 tok1 tok2");
    cr_assert_str_eq(str_field(choice, "finish_reason"), "stop");
    json_object *u = field(o, "usage");
    cr_assert_eq(int_field(u, "prompt_tokens"), 2);
    cr_assert_eq(int_field(u, "completion_tokens"), 3);
    cr_assert_eq(int_field(u, "total_tokens"), 5);
    cr_assert_eq(int_field(field(u, "prompt_tokens_details"), "cached_tokens"), 0);
    json_object_put(o);
    free(s);
}

Test(render, completion_response_truncated)
{
    sim_gen_t g = gen_from(SIM_API_COMPLETIONS, "{\"max_tokens\":2}");
    size_t len;
    char *s = sim_render_response(&g, &len);
    json_object *o = parse_json(s, len);
    cr_assert_str_eq(str_field(o, "object"), "text_completion");
    json_object *choice = json_object_array_get_idx(field(o, "choices"), 0);
    cr_assert_str_eq(str_field(choice, "text"), "tok0 tok1");
    cr_assert_str_eq(str_field(choice, "finish_reason"), "length");
    cr_assert_null(field(choice, "logprobs"));
    json_object_put(o);
    free(s);
}

Test(render, zero_tokens)
{
    sim_gen_t g = gen_from(SIM_API_CHAT, "{\"sim_tokens\":0}");
    size_t len;
    char *s = sim_render_response(&g, &len);
    json_object *o = parse_json(s, len);
    json_object *choice = json_object_array_get_idx(field(o, "choices"), 0);
    cr_assert_str_eq(str_field(field(choice, "message"), "content"), "");
    json_object_put(o);
    free(s);
    s = sim_render_chunk(&g, 0, &len);
    o = parse_json(s + 6, len - 8);
    choice = json_object_array_get_idx(field(o, "choices"), 0);
    cr_assert_str_eq(str_field(field(choice, "delta"), "content"), "");
    cr_assert_str_eq(str_field(choice, "finish_reason"), "stop", "the only chunk finishes the answer");
    json_object_put(o);
    free(s);
}

Test(render, chunks_add_up_to_the_response)
{
    sim_gen_t g = gen_from(SIM_API_CHAT, "{\"sim_tokens\":12,\"stream\":true}");
    char text[256] = "";
    for (unsigned i = 0; i < g.tokens; i++) {
        size_t len;
        char *s = sim_render_chunk(&g, i, &len);
        cr_assert(strncmp(s, "data: ", 6) == 0, "%s", s);
        cr_assert(len > 8 && strcmp(s + len - 2, "\n\n") == 0);
        cr_assert_null(memchr(s, '\n', len - 2), "one line per event");
        json_object *o = parse_json(s + 6, len - 8);
        cr_assert_str_eq(str_field(o, "object"), "chat.completion.chunk");
        cr_assert_str_eq(str_field(o, "id"), "chatcmpl-sim-9-7");
        cr_assert_str_eq(str_field(o, "sim_instance"), "sim-9");
        json_object *choice = json_object_array_get_idx(field(o, "choices"), 0);
        json_object *delta = field(choice, "delta"), *role;
        cr_assert_eq(json_object_object_get_ex(delta, "role", &role), i == 0, "role only in the first chunk");
        strcat(text, str_field(delta, "content"));
        if (i + 1 < g.tokens)
            cr_assert_null(field(choice, "finish_reason"));
        else
            cr_assert_str_eq(str_field(choice, "finish_reason"), "stop");
        json_object_put(o);
        free(s);
    }
    cr_assert_str_eq(text, "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 tok8 tok9 tok10 tok11");
}

Test(render, completion_chunk)
{
    sim_gen_t g = gen_from(SIM_API_COMPLETIONS, "{\"sim_tokens\":2,\"stream\":true,\"request_id\":\"r1\"}");
    size_t len;
    char *s = sim_render_chunk(&g, 1, &len);
    json_object *o = parse_json(s + 6, len - 8);
    cr_assert_str_eq(str_field(o, "id"), "cmpl-r1");
    cr_assert_str_eq(str_field(o, "object"), "text_completion");
    json_object *choice = json_object_array_get_idx(field(o, "choices"), 0);
    cr_assert_str_eq(str_field(choice, "text"), " tok1");
    json_object_put(o);
    free(s);
}

Test(render, stream_end)
{
    sim_gen_t g = gen_from(SIM_API_CHAT, "{\"sim_tokens\":4,\"stream\":true}");
    size_t len;
    char *s = sim_render_stream_end(&g, &len);
    cr_assert_str_eq(s, "data: [DONE]\n\n");
    cr_assert_eq(len, strlen(s));
    free(s);

    g = gen_from(SIM_API_CHAT,
                 "{\"sim_tokens\":4,\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                 "\"messages\":[{\"content\":\"x y z\"}]}");
    s = sim_render_stream_end(&g, &len);
    cr_assert_eq(len, strlen(s));
    const char *done = strstr(s, "\n\ndata: [DONE]\n\n");
    cr_assert_not_null(done, "%s", s);
    cr_assert_eq((size_t)(done - s) + 16, len, "[DONE] ends the stream");
    json_object *o = parse_json(s + 6, (size_t)(done - s) - 6);
    cr_assert_eq(json_object_array_length(field(o, "choices")), 0);
    cr_assert_eq(int_field(field(o, "usage"), "completion_tokens"), 4);
    cr_assert_eq(int_field(field(o, "usage"), "prompt_tokens"), 3);
    json_object_put(o);
    free(s);
}

Test(render, error_body)
{
    size_t len;
    char *s = sim_render_error("bad \"thing\"", "invalid_request_error", 400, &len);
    json_object *o = parse_json(s, len);
    json_object *e = field(o, "error");
    cr_assert_str_eq(str_field(e, "message"), "bad \"thing\"");
    cr_assert_str_eq(str_field(e, "type"), "invalid_request_error");
    cr_assert_eq(int_field(e, "code"), 400);
    cr_assert_null(field(e, "param"));
    json_object_put(o);
    free(s);
}

Test(render, metrics_text)
{
    char buf[1024];
    sim_metrics_t m = {3, 1, 997, 120, 48};
    size_t n = sim_render_metrics(buf, sizeof(buf), &m);
    cr_assert_eq(n, strlen(buf));
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_running 3\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_waiting 1\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:available_gpu_block_num 997\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "# TYPE fastdeploy:num_requests_running gauge\n") != NULL);
    cr_assert(strstr(buf, "\nfastdeploy:prompt_tokens_total 120\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:prefix_cache_hit_tokens_total 48\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "# TYPE fastdeploy:prefix_cache_hit_tokens_total counter\n") != NULL);
    char full[SIM_METRICS_CAP];
    sim_metrics_t big = {999999999, 999999999, 999999999, ~0ULL, ~0ULL};
    cr_assert_lt(sim_render_metrics(full, sizeof(full), &big), sizeof(full) - 1, "the cap holds any values");
    char small[16];
    n = sim_render_metrics(small, sizeof(small), &m);
    cr_assert_eq(n, sizeof(small) - 1, "truncated output reports what fits");
}

/* ---- register payload ---- */

Test(register_payload, full)
{
    sim_config_t cfg;
    char err[256];
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--role", "prefill", "--connector-port", "8100",
                       "--engine-worker-queue-port", "8200", "--device-ids", "0,1", "--transfer-protocol",
                       "ipc,rdma", "--rdma-ports", "7001,bad"),
                 0, "%s", err);
    size_t len;
    char *s = sim_register_payload(&cfg, 9001, 9101, &len);
    json_object *o = parse_json(s, len);
    cr_assert_str_eq(str_field(o, "role"), "prefill");
    cr_assert_str_eq(str_field(o, "host_ip"), "127.0.0.1");
    cr_assert_eq(int_field(o, "port"), 9001);
    cr_assert_eq(int_field(o, "metrics_port"), 9101);
    cr_assert_eq(int_field(o, "connector_port"), 8100);
    cr_assert_eq(int_field(o, "engine_worker_queue_port"), 8200);
    json_object *rdma = field(o, "rdma_ports");
    cr_assert_eq(json_object_get_int(json_object_array_get_idx(rdma, 0)), 7001);
    cr_assert(json_object_is_type(json_object_array_get_idx(rdma, 1), json_type_string),
              "non-numeric items go out as strings");
    cr_assert_eq(json_object_array_length(field(o, "device_ids")), 2);
    cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(field(o, "transfer_protocol"), 1)),
                     "rdma");
    cr_assert_eq(int_field(o, "tp_size"), 2, "tp_size defaults to the number of device ids");
    json_object_put(o);
    free(s);
}

Test(register_payload, minimal)
{
    sim_config_t cfg;
    char err[256];
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--host", "0.0.0.0", "--tp-size", "4"), 0, "%s", err);
    size_t len;
    char *s = sim_register_payload(&cfg, 9001, 9001, &len);
    json_object *o = parse_json(s, len), *v;
    cr_assert_str_eq(str_field(o, "role"), "mixed");
    cr_assert_str_eq(str_field(o, "host_ip"), "127.0.0.1", "a wildcard bind registers a real address");
    cr_assert_eq(int_field(o, "metrics_port"), 9001);
    cr_assert_not(json_object_object_get_ex(o, "connector_port", &v));
    cr_assert_not(json_object_object_get_ex(o, "engine_worker_queue_port", &v));
    cr_assert_not(json_object_object_get_ex(o, "rdma_ports", &v));
    cr_assert_eq(int_field(o, "tp_size"), 4);
    json_object_put(o);
    free(s);
}

/* ---- shared state ---- */

static sim_state_t st;

static void state_setup(void)
{
    sim_state_init(&st, "sim-t", 7);
}

static void state_teardown(void)
{
    sim_state_destroy(&st);
}

static json_object *stats(void)
{
    size_t len;
    char *s = sim_state_stats_json(&st, NULL, &len);
    json_object *o = parse_json(s, len);
    free(s);
    return o;
}

static int control(int (*fn)(sim_state_t *, const char *, size_t, char *, size_t), const char *body,
                   char *err)
{
    return fn(&st, body, strlen(body), err, 256);
}

static int set_fail(const char *body, char *err)
{
    return sim_fault_set(&st.fault, body, strlen(body), err, 256);
}

Test(state, stats_and_last_request, .init = state_setup, .fini = state_teardown)
{
    json_object *o = stats();
    cr_assert_str_eq(str_field(o, "name"), "sim-t");
    cr_assert_eq(int_field(o, "requests"), 0);
    cr_assert_null(field(o, "last_body"));
    cr_assert_null(field(o, "last_path"));
    cr_assert_eq(json_object_object_length(field(o, "last_headers")), 0);
    cr_assert(json_object_get_boolean(field(o, "healthy")));
    json_object_put(o);

    json_object *h = json_object_new_object();
    json_object_object_add(h, "x-request-id", json_object_new_string("abc"));
    const char body[] = "{\"messages\":[],\"note\":\"a\\\"b\"}";
    sim_state_record(&st, "/v1/chat/completions?x", 20, body, sizeof(body) - 1, h);
    st.requests += 2;
    st.cancelled++;
    o = stats();
    cr_assert_str_eq(str_field(o, "last_body"), body, "the body comes back verbatim as a string");
    cr_assert_str_eq(str_field(o, "last_path"), "/v1/chat/completions");
    cr_assert_str_eq(str_field(field(o, "last_headers"), "x-request-id"), "abc");
    cr_assert_eq(int_field(o, "requests"), 2);
    cr_assert_eq(int_field(o, "cancelled"), 1);
    json_object_put(o);

    sim_state_reset(&st);
    o = stats();
    cr_assert_eq(int_field(o, "requests"), 0);
    cr_assert_eq(int_field(o, "cancelled"), 0);
    cr_assert_null(field(o, "last_body"));
    json_object_put(o);
}

Test(state, fail_modes, .init = state_setup, .fini = state_teardown)
{
    char err[256];
    sim_fail_t f;
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_NONE);

    cr_assert_eq(set_fail("{\"mode\":\"status\",\"status\":429,\"count\":2}", err), 0, "%s", err);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_STATUS);
    cr_assert_eq(f.status, 429);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_STATUS);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_NONE, "count consumed");

    cr_assert_eq(set_fail("{\"mode\":\"status\"}", err), 0);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_STATUS);
    cr_assert_eq(f.status, 503, "default status");

    cr_assert_eq(set_fail("{\"mode\":\"hang_before_head\"}", err), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_HANG_BEFORE_HEAD, "no count: until reset");
    cr_assert_eq(set_fail("{\"mode\":\"close_before_head\",\"count\":1}", err), 0);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_CLOSE_BEFORE_HEAD);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_NONE);

    cr_assert_eq(set_fail("{\"mode\":\"hang_before_head\"}", err), 0);
    cr_assert_eq(set_fail("{\"mode\":\"none\"}", err), 0);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_NONE);

    cr_assert_eq(set_fail("{\"mode\":\"explode\"}", err), -1);
    cr_assert_eq(set_fail("{}", err), -1);
    cr_assert_eq(set_fail("{\"mode\":\"status\",\"status\":99}", err), -1);
    cr_assert_eq(set_fail("{\"mode\":\"status\",\"status\":\"503\"}", err), -1);
    cr_assert_eq(set_fail("{\"mode\":\"status\",\"count\":0}", err), -1);
    cr_assert_eq(set_fail("not json", err), -1);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_NONE, "rejected bodies change nothing");
}

Test(state, health_toggle, .init = state_setup, .fini = state_teardown)
{
    char err[256];
    cr_assert_eq(control(sim_state_set_health, "{\"healthy\":false}", err), 0);
    cr_assert_not(st.healthy);
    json_object *o = stats();
    cr_assert_not(json_object_get_boolean(field(o, "healthy")));
    json_object_put(o);
    cr_assert_eq(control(sim_state_set_health, "{\"healthy\":true}", err), 0);
    cr_assert(st.healthy);
    cr_assert_eq(control(sim_state_set_health, "{\"healthy\":0}", err), -1);
    cr_assert_eq(control(sim_state_set_health, "{}", err), -1);
    cr_assert(st.healthy);
}

Test(state, metrics_follow_inflight_and_overrides, .init = state_setup, .fini = state_teardown)
{
    char buf[1024], err[256];
    st.inflight = 3;
    sim_state_metrics_text(&st, NULL, buf, sizeof(buf));
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_running 3\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_waiting 0\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:available_gpu_block_num 997\n") != NULL, "%s", buf);

    cr_assert_eq(
        control(sim_state_set_metrics, "{\"num_requests_running\":40,\"num_requests_waiting\":2}", err), 0,
        "%s", err);
    sim_state_metrics_text(&st, NULL, buf, sizeof(buf));
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_running 40\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_waiting 2\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:available_gpu_block_num 997\n") != NULL, "%s", buf);

    cr_assert_eq(
        control(sim_state_set_metrics, "{\"num_requests_running\":null,\"available_gpu_block_num\":5}", err),
        0);
    sim_state_metrics_text(&st, NULL, buf, sizeof(buf));
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_running 3\n") != NULL, "null: computed again: %s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_waiting 2\n") != NULL, "absent: unchanged: %s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:available_gpu_block_num 5\n") != NULL, "%s", buf);

    cr_assert_eq(
        control(sim_state_set_metrics, "{\"num_requests_waiting\":-1,\"num_requests_running\":9}", err), -1);
    sim_state_metrics_text(&st, NULL, buf, sizeof(buf));
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_running 3\n") != NULL,
              "a rejected body changes nothing");
}

/* ---- engine, role and fault options ---- */

Test(args, engine_and_fault_defaults)
{
    sim_config_t cfg;
    char err[256];
    cr_assert_eq(PARSE(&cfg, err, "--port", "0"), 0, "%s", err);
    cr_assert_not(cfg.engine, "the model is off unless asked for");
    cr_assert_eq(cfg.seed, 1);
    cr_assert_eq(cfg.prefill_delay_ms, 0);
    cr_assert_eq(cfg.slow_start_ms, 0);
    cr_assert_float_eq(cfg.engine_params.prefill_tokens_per_sec, 10000, 1e-9);
    cr_assert_float_eq(cfg.engine_params.decode_step_ms, 10, 1e-9);
    cr_assert_float_eq(cfg.engine_params.decode_step_ms_per_seq, 0.2, 1e-9);
    cr_assert_eq(cfg.engine_params.max_batch, 64);
    cr_assert_eq(cfg.engine_params.kv_blocks, 1000);
    cr_assert_eq(cfg.engine_params.block_tokens, 16);
    cr_assert_eq(sim_role_of(&cfg), SIM_ROLE_MIXED);
}

Test(args, engine_and_fault_options)
{
    sim_config_t cfg;
    char err[256];
    int rc = PARSE(&cfg, err, "--port", "0", "--engine", "on", "--prefill-tokens-per-sec", "2500.5",
                   "--decode-step-ms", "12.5", "--decode-step-ms-per-seq=0.75", "--max-batch", "8",
                   "--kv-blocks", "300", "--block-tokens", "32", "--seed", "18446744073709551615",
                   "--slow-start-ms", "1500", "--role", "prefill", "--prefill-delay-ms", "40");
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(cfg.engine);
    cr_assert_float_eq(cfg.engine_params.prefill_tokens_per_sec, 2500.5, 1e-9);
    cr_assert_float_eq(cfg.engine_params.decode_step_ms, 12.5, 1e-9);
    cr_assert_float_eq(cfg.engine_params.decode_step_ms_per_seq, 0.75, 1e-9);
    cr_assert_eq(cfg.engine_params.max_batch, 8);
    cr_assert_eq(cfg.engine_params.kv_blocks, 300);
    cr_assert_eq(cfg.engine_params.block_tokens, 32);
    cr_assert_eq(cfg.seed, UINT64_MAX);
    cr_assert_eq(cfg.slow_start_ms, 1500);
    cr_assert_eq(cfg.prefill_delay_ms, 40);
    cr_assert_eq(sim_role_of(&cfg), SIM_ROLE_PREFILL);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--role", "decode", "--engine", "off"), 0, "%s", err);
    cr_assert_eq(sim_role_of(&cfg), SIM_ROLE_DECODE);
    cr_assert_not(cfg.engine);
}

Test(args, engine_options_need_the_engine)
{
    sim_config_t cfg;
    char err[256];
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--kv-blocks", "10"), -1);
    cr_assert(strstr(err, "--kv-blocks") != NULL && strstr(err, "--engine on") != NULL, "%s", err);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--kv-blocks", "10", "--engine", "off"), -1);
    cr_assert_eq(PARSE(&cfg, err, "--port", "0", "--kv-blocks", "10", "--engine", "on"), 0,
                 "order does not matter");
    static const char *const bad[][2] = {
        {"--engine", "yes"},           {"--prefill-tokens-per-sec", "0"}, {"--prefill-tokens-per-sec", "x"},
        {"--decode-step-ms", "-1"},    {"--decode-step-ms-per-seq", ""},  {"--max-batch", "0"},
        {"--kv-blocks", "16777217"},   {"--block-tokens", "4097"},        {"--seed", "-1"},
        {"--slow-start-ms", "600001"}, {"--prefill-delay-ms", "1.5"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *argv[] = {"fd-sim", "--port", "0", "--engine", "on", (char *)bad[i][0], (char *)bad[i][1]};
        cr_assert_eq(sim_parse_args(7, argv, &cfg, err, sizeof(err)), -1, "%s %s accepted", bad[i][0],
                     bad[i][1]);
    }
}

/* ---- prompt tokens as the engine sees them ---- */

Test(request, prompt_chain_matches_prompt_tokens)
{
    sim_defaults_t d = {16, 0, 0};
    static const struct {
        sim_api_t api;
        const char *body;
    } cases[] = {
        {SIM_API_CHAT, "{\"messages\":[{\"role\":\"system\",\"content\":\"be  brief\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a b\\tc\"},"
                       "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]}"},
        {SIM_API_COMPLETIONS, "{\"prompt\":[\"one two\",\"three\"]}"},
        {SIM_API_COMPLETIONS, "{\"prompt\":[101,102,-3]}"},
        {SIM_API_CHAT, "{}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sim_gen_t g;
        json_object *root;
        char err[256];
        cr_assert_eq(sim_parse_request(cases[i].api, cases[i].body, strlen(cases[i].body), &d, "s", 1, 0, &g,
                                       &root, err, sizeof(err)),
                     0, "%s", err);
        cr_assert_not_null(root, "the parsed body is handed over");
        sim_chain_t c;
        sim_chain_init(&c, 2);
        cr_assert_eq(sim_prompt_chain(cases[i].api, root, &c), 0);
        cr_assert_eq(c.tokens, g.prompt_tokens, "case %zu: %lu hashed, %u counted", i, c.tokens,
                     g.prompt_tokens);
        cr_assert_eq(c.nblocks, g.prompt_tokens / 2);
        sim_chain_free(&c);
        json_object_put(root);
    }
}

Test(request, prompt_chain_is_the_text_of_the_words)
{
    sim_defaults_t d = {16, 0, 0};
    const char *body = "{\"messages\":[{\"content\":\"x y\"},{\"content\":\"z w\"}]}";
    sim_gen_t g;
    json_object *root;
    char err[256];
    cr_assert_eq(
        sim_parse_request(SIM_API_CHAT, body, strlen(body), &d, "s", 1, 0, &g, &root, err, sizeof(err)), 0);
    sim_chain_t a, b;
    sim_chain_init(&a, 2);
    sim_chain_init(&b, 2);
    sim_prompt_chain(SIM_API_CHAT, root, &a);
    sim_chain_feed_text(&b, "x y z w", 7);
    cr_assert_eq(a.nblocks, 2);
    cr_assert_eq(a.blocks[1], b.blocks[1], "message boundaries are not tokens");
    sim_chain_free(&a);
    sim_chain_free(&b);
    json_object_put(root);
}

Test(request, invalid_body_still_gets_an_id)
{
    sim_defaults_t d = {16, 0, 0};
    sim_gen_t g;
    json_object *root = (json_object *)&d;
    char err[256];
    cr_assert_eq(sim_parse_request(SIM_API_CHAT, "{bad", 4, &d, "sim-9", 3, 0, &g, &root, err, sizeof(err)),
                 -1);
    cr_assert_null(root);
    cr_assert_str_eq(g.id, "chatcmpl-sim-9-3");
}

/* ---- abort rendering ---- */

Test(render, abort_end_of_a_stream)
{
    sim_gen_t g = gen_from(SIM_API_CHAT,
                           "{\"sim_tokens\":9,\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                           "\"messages\":[{\"content\":\"p q r\"}]}");
    g.cached_tokens = 2;
    size_t len;
    char *s = sim_render_abort_end(&g, 4, &len);
    cr_assert_eq(strlen(s), len);
    cr_assert(strncmp(s, "data: {", 7) == 0, "%s", s);
    const char *sep = strstr(s, "\n\ndata: {");
    cr_assert_not_null(sep, "a usage chunk follows: %s", s);
    json_object *last = parse_json(s + 6, (size_t)(sep - s - 6));
    json_object *choice = json_object_array_get_idx(field(last, "choices"), 0);
    cr_assert_str_eq(str_field(choice, "finish_reason"), "abort");
    cr_assert_str_eq(str_field(field(choice, "delta"), "content"), "");
    json_object *v;
    cr_assert_not(json_object_object_get_ex(field(choice, "delta"), "role", &v), "not the first chunk");
    json_object_put(last);
    const char *end = strstr(sep + 2, "\n\ndata: [DONE]\n\n");
    cr_assert_not_null(end, "%s", s);
    cr_assert_eq(end + strlen("\n\ndata: [DONE]\n\n"), s + len, "[DONE] ends it");
    json_object *usage_chunk = parse_json(sep + 8, (size_t)(end - sep - 8));
    json_object *u = field(usage_chunk, "usage");
    cr_assert_eq(int_field(u, "completion_tokens"), 4, "the tokens the client got");
    cr_assert_eq(int_field(u, "prompt_tokens"), 3);
    cr_assert_eq(int_field(field(u, "prompt_tokens_details"), "cached_tokens"), 2);
    json_object_put(usage_chunk);
    free(s);

    g.include_usage = false;
    s = sim_render_abort_end(&g, 0, &len);
    sep = strstr(s, "\n\n");
    last = parse_json(s + 6, (size_t)(sep - s - 6));
    choice = json_object_array_get_idx(field(last, "choices"), 0);
    cr_assert_str_eq(str_field(field(choice, "delta"), "role"), "assistant",
                     "nothing sent yet: the role comes too");
    cr_assert_str_eq(sep, "\n\ndata: [DONE]\n\n");
    json_object_put(last);
    free(s);
}

Test(render, aborted_response)
{
    sim_gen_t g = gen_from(SIM_API_COMPLETIONS, "{\"sim_tokens\":9}");
    g.aborted = true;
    g.tokens = 2;
    size_t len;
    char *s = sim_render_response(&g, &len);
    json_object *o = parse_json(s, len);
    json_object *choice = json_object_array_get_idx(field(o, "choices"), 0);
    cr_assert_str_eq(str_field(choice, "text"), "tok0 tok1");
    cr_assert_str_eq(str_field(choice, "finish_reason"), "abort");
    cr_assert_eq(int_field(field(o, "usage"), "completion_tokens"), 2);
    json_object_put(o);
    free(s);
}

/* ---- prefill/decode ---- */

#define GOOD_INFO                                                                                            \
    "\"prefill_ip\":\"10.0.0.1\",\"decode_ip\":\"10.0.0.2\",\"prefill_connector_port\":8100,"                \
    "\"decode_connector_port\":0,\"decode_device_ids\":[\"0\",\"1\"],\"decode_rdma_ports\":null,"            \
    "\"transfer_protocol\":\"rdma\",\"decode_tp_size\":2"

static int check_dinfo(const char *body, char *err)
{
    json_object *root = parse_json(body, strlen(body));
    int rc = sim_check_disaggregate(root, err, 256);
    json_object_put(root);
    return rc;
}

Test(pd, decode_accepts_the_router_info)
{
    char err[256];
    cr_assert_eq(check_dinfo("{\"request_id\":\"r\",\"disaggregate_info\":{" GOOD_INFO "}}", err), 0, "%s",
                 err);
    cr_assert_eq(check_dinfo("{\"request_id\":7,\"disaggregate_info\":{" GOOD_INFO "}}", err), 0,
                 "a request_id of any JSON type: %s", err);
    cr_assert_eq(
        check_dinfo("{\"request_id\":\"r\",\"disaggregate_info\":{\"prefill_ip\":\"a\",\"decode_ip\":\"b\","
                    "\"prefill_connector_port\":1,\"decode_connector_port\":2,\"decode_device_ids\":null,"
                    "\"decode_rdma_ports\":[\"7001\"],\"transfer_protocol\":\"ipc\",\"decode_tp_size\":1}}",
                    err),
        0, "%s", err);
}

Test(pd, decode_names_what_is_wrong)
{
    static const struct {
        const char *body, *needle;
    } cases[] = {
        {"{\"disaggregate_info\":{" GOOD_INFO "}}", "request_id is missing"},
        {"{\"request_id\":null,\"disaggregate_info\":{" GOOD_INFO "}}", "request_id is missing"},
        {"{\"request_id\":\"r\"}", "disaggregate_info is missing"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":null}", "disaggregate_info is missing"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":[1]}", "must be an object"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":{\"decode_ip\":\"x\"}}", "prefill_ip is missing"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":{" GOOD_INFO ",\"prefill_ip\":1}}",
         "prefill_ip must be"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":{" GOOD_INFO ",\"decode_connector_port\":\"8100\"}}",
         "decode_connector_port must be"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":{" GOOD_INFO ",\"prefill_connector_port\":70000}}",
         "prefill_connector_port must be"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":{" GOOD_INFO ",\"decode_device_ids\":[0]}}",
         "decode_device_ids must be"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":{" GOOD_INFO ",\"decode_rdma_ports\":\"7001\"}}",
         "decode_rdma_ports must be"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":{" GOOD_INFO ",\"transfer_protocol\":\"tcp\"}}",
         "transfer_protocol must be"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":{" GOOD_INFO ",\"decode_tp_size\":0}}",
         "decode_tp_size must be"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":{" GOOD_INFO ",\"decode_tp_size\":1.0}}",
         "decode_tp_size must be"},
        {"{\"request_id\":\"r\",\"disaggregate_info\":{" GOOD_INFO ",\"extra\":1}}", "unexpected key extra"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        cr_assert_eq(check_dinfo(cases[i].body, err), -1, "accepted: %s", cases[i].body);
        cr_assert(strstr(err, cases[i].needle) != NULL, "%s: got \"%s\"", cases[i].body, err);
    }
}

Test(pd, request_keys)
{
    const char *body = "{\"a\":\"r-1\",\"b\":42,\"c\":{\"x\":[1]}}";
    json_object *o = parse_json(body, strlen(body));
    char *k = sim_request_key(field(o, "a"));
    cr_assert_str_eq(k, "r-1", "a string is its value, unquoted");
    free(k);
    k = sim_request_key(field(o, "b"));
    cr_assert_str_eq(k, "42");
    free(k);
    k = sim_request_key(field(o, "c"));
    cr_assert_str_eq(k, "{\"x\":[1]}");
    free(k);
    json_object_put(o);
}

static int parse_abort(const char *body, sim_abort_req_t *a)
{
    return sim_parse_abort(body, strlen(body), a);
}

Test(pd, abort_bodies)
{
    sim_abort_req_t a;
    cr_assert_eq(parse_abort("{\"abort_all\":true}", &a), 0);
    cr_assert(a.all);
    cr_assert_null(a.ids);
    cr_assert_eq(parse_abort("{\"req_ids\":[\"a\",2]}", &a), 0);
    cr_assert_not(a.all);
    cr_assert_eq(json_object_array_length(a.ids), 2);
    sim_abort_req_free(&a);
    cr_assert_eq(parse_abort("{\"req_ids\":[]}", &a), 0, "an empty list is a valid request");
    sim_abort_req_free(&a);
    cr_assert_eq(parse_abort("{\"abort_all\":false,\"req_ids\":[\"a\"]}", &a), 0);
    cr_assert_not(a.all);
    sim_abort_req_free(&a);
    static const char *const bad[] = {"",
                                      "{}",
                                      "{\"abort_all\":false}",
                                      "{\"abort_all\":\"true\"}",
                                      "{\"stop_all\":true}",
                                      "{\"req_ids\":\"a\"}",
                                      "[1]",
                                      "{\"req_ids\":[1]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(parse_abort(bad[i], &a), -1, "accepted %s", bad[i]);
    cr_assert_str_eq(SIM_ABORT_USAGE, "must provide abort_all=true or req_ids");
}

/* ---- new state: PD record, failure modes, engine figures ---- */

Test(state, records_request_id_and_disaggregate_info, .init = state_setup, .fini = state_teardown)
{
    sim_state_record_pd(&st, "12345", "{\"prefill_ip\":\"a\",\"decode_tp_size\":1}");
    st.aborted += 2;
    json_object *o = stats();
    cr_assert_eq(int_field(o, "last_request_id"), 12345, "back as the JSON value it was");
    cr_assert_str_eq(str_field(field(o, "last_disaggregate_info"), "prefill_ip"), "a");
    cr_assert_eq(int_field(o, "aborted"), 2);
    json_object *v;
    cr_assert_not(json_object_object_get_ex(o, "engine", &v), "no engine section without the engine");
    json_object_put(o);
    sim_state_record_pd(&st, "\"r\"", NULL);
    o = stats();
    cr_assert_str_eq(str_field(o, "last_request_id"), "r");
    cr_assert_null(field(o, "last_disaggregate_info"), "absent: null");
    json_object_put(o);
    sim_state_reset(&st);
    o = stats();
    cr_assert_null(field(o, "last_request_id"));
    cr_assert_eq(int_field(o, "aborted"), 0);
    json_object_put(o);
}

Test(state, die_mid_stream, .init = state_setup, .fini = state_teardown)
{
    char err[256];
    sim_fail_t f;
    cr_assert_eq(set_fail("{\"mode\":\"die_mid_stream\",\"after_chunks\":3,\"count\":1}", err), 0, "%s", err);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_DIE_MID_STREAM);
    cr_assert_eq(f.after_chunks, 3);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_NONE);
    cr_assert_eq(set_fail("{\"mode\":\"die_mid_stream\"}", err), 0);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_DIE_MID_STREAM);
    cr_assert_eq(f.after_chunks, 0, "default: right after the head");
    cr_assert_eq(set_fail("{\"mode\":\"die_mid_stream\",\"after_chunks\":-1}", err), -1);
}

/* Which of n requests fail under the current error_rate setting, as a bit string. */
static void draws(int n, char *out)
{
    sim_fail_t f;
    for (int i = 0; i < n; i++)
        out[i] = sim_fault_take(&st.fault, &f) == SIM_FAIL_STATUS ? '1' : '0';
    out[n] = '\0';
}

Test(state, error_rate_is_seeded, .init = state_setup, .fini = state_teardown)
{
    char err[256], a[1001], b[1001], c[1001];
    cr_assert_eq(set_fail("{\"mode\":\"error_rate\",\"error_rate\":0.1,\"status\":500}", err), 0, "%s", err);
    draws(1000, a);
    int failures = 0;
    for (int i = 0; i < 1000; i++)
        failures += a[i] == '1';
    cr_assert(failures > 60 && failures < 140, "about 10%% fail: %d of 1000", failures);
    sim_fail_t f;
    set_fail("{\"mode\":\"error_rate\",\"error_rate\":1}", err);
    cr_assert_eq(sim_fault_take(&st.fault, &f), SIM_FAIL_STATUS);
    cr_assert_eq(f.status, 503, "default status");

    set_fail("{\"mode\":\"error_rate\",\"error_rate\":0.1,\"status\":500}", err);
    draws(1000, b);
    cr_assert_str_eq(a, b, "setting the mode again restarts the draws from --seed");
    set_fail("{\"mode\":\"error_rate\",\"error_rate\":0.1,\"seed\":8}", err);
    draws(1000, c);
    cr_assert_str_neq(a, c, "another seed, other draws");

    sim_state_destroy(&st);
    sim_state_init(&st, "sim-t", 8);
    set_fail("{\"mode\":\"error_rate\",\"error_rate\":0.1}", err);
    draws(1000, b);
    cr_assert_str_eq(b, c, "--seed 8 and \"seed\":8 agree");

    set_fail("{\"mode\":\"error_rate\",\"error_rate\":0}", err);
    draws(200, b);
    cr_assert_null(strchr(b, '1'), "rate 0: never");
    set_fail("{\"mode\":\"error_rate\",\"error_rate\":1,\"count\":3}", err);
    draws(10, b);
    cr_assert_str_eq(b, "1110000000", "count limits the errors");
    cr_assert_eq(set_fail("{\"mode\":\"error_rate\",\"error_rate\":1.5}", err), -1);
    cr_assert_eq(set_fail("{\"mode\":\"error_rate\",\"error_rate\":\"0.1\"}", err), -1);
}

Test(state, engine_figures_in_metrics_and_stats, .init = state_setup, .fini = state_teardown)
{
    sim_engine_load_t load = {.running = 4,
                              .waiting = 6,
                              .free_blocks = 321,
                              .cached_blocks = 50,
                              .prompt_tokens_total = 900,
                              .cached_tokens_total = 640,
                              .evicted_blocks_total = 12};
    st.inflight = 10;
    char buf[SIM_METRICS_CAP];
    sim_state_metrics_text(&st, &load, buf, sizeof(buf));
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_running 4\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_waiting 6\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:available_gpu_block_num 321\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:prompt_tokens_total 900\n") != NULL, "%s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:prefix_cache_hit_tokens_total 640\n") != NULL, "%s", buf);
    char err[256];
    cr_assert_eq(control(sim_state_set_metrics, "{\"num_requests_waiting\":0}", err), 0);
    sim_state_metrics_text(&st, &load, buf, sizeof(buf));
    cr_assert(strstr(buf, "\nfastdeploy:num_requests_waiting 0\n") != NULL, "overrides still win: %s", buf);

    size_t len;
    char *s = sim_state_stats_json(&st, &load, &len);
    json_object *o = parse_json(s, len);
    free(s);
    cr_assert_eq(int_field(o, "prompt_tokens"), 900);
    cr_assert_eq(int_field(o, "cached_tokens"), 640);
    json_object *e = field(o, "engine");
    cr_assert_eq(int_field(e, "running"), 4);
    cr_assert_eq(int_field(e, "waiting"), 6);
    cr_assert_eq(int_field(e, "free_blocks"), 321);
    cr_assert_eq(int_field(e, "cached_blocks"), 50);
    cr_assert_eq(int_field(e, "evicted_blocks"), 12);
    json_object_put(o);

    st.prompt_tokens = 77;
    sim_state_metrics_text(&st, NULL, buf, sizeof(buf));
    cr_assert(strstr(buf, "\nfastdeploy:prompt_tokens_total 77\n") != NULL, "without the engine: %s", buf);
    cr_assert(strstr(buf, "\nfastdeploy:prefix_cache_hit_tokens_total 0\n") != NULL, "%s", buf);
}
