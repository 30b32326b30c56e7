/*
 * tools/fd-sim/args.c - fd-sim's command line: defaults, parsing ("--opt value" and
 * "--opt=value"), validation and the --help text. A hand-written parser rather than getopt so it
 * has no global state and the unit tests can call it repeatedly.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fd-sim/args.h"

static const char USAGE[] =
    "Usage: %s --port P [options]\n"
    "A simulated FastDeploy inference instance (OpenAI-compatible API with fake tokens).\n"
    "\n"
    "Server:\n"
    "  --port P                       API port (required); 0 picks a free port\n"
    "  --host ADDR                    address to bind (default 127.0.0.1)\n"
    "  --metrics-port P2              also serve /metrics on P2 (default: the API port only; 0 = free port)\n"
    "  --threads N                    event-loop threads (default 1, at most 64)\n"
    "  --name NAME                    instance name, in every response and chunk (default sim-<port>)\n"
    "  --model NAME                   the model served: GET /v1/models lists it (default: no such\n"
    "                                 route, 404, as an instance that does not say what it serves)\n"
    "\n"
    "Generation (token i, counting from 0, is sent at first-token-delay + (i+1) * token-delay):\n"
    "  --tokens N                     tokens per answer, \"tok0 tok1 ...\" (default 16, at most 100000)\n"
    "  --token-delay-ms D             delay before each token (default 0)\n"
    "  --first-token-delay-ms D       extra delay before the first token (default 0)\n"
    "  Request body fields sim_tokens, sim_token_delay_ms and sim_first_token_delay_ms override these;\n"
    "  max_tokens and max_completion_tokens cap the count (finish_reason \"length\").\n"
    "\n"
    "Engine model (off by default: then the fixed delays above set the timing, as they always did):\n"
    "  --engine on|off                on: continuous batching sets the timing instead of the delays\n"
    "                                 above (and of their sim_*delay_ms body fields); default off\n"
    "  --prefill-tokens-per-sec R     prefill rate over the uncached prompt tokens (default 10000)\n"
    "  --decode-step-ms D             decode step time, base (default 10; may be fractional)\n"
    "  --decode-step-ms-per-seq D     plus this per request in the step (default 0.2)\n"
    "  --max-batch N                  requests admitted at once; the rest wait (default 64)\n"
    "  --kv-blocks N                  KV cache capacity in blocks (default 1000)\n"
    "  --block-tokens N               tokens per block (default 16)\n"
    "  Tokens are the whitespace-separated words of the prompt's text (message contents, or the\n"
    "  prompt; a token id counts as one); generated token i is the word \"tok<i>\". A request reserves\n"
    "  blocks for its prompt and output when admitted (FIFO, while the batch and the cache have room).\n"
    "  A step either prefills the newly admitted requests, lasting their uncached prompt tokens / R,\n"
    "  and gives each its first token, or gives every other running request one token, lasting\n"
    "  D + D_per_seq x their number. Prefix cache: LRU over blocks named by chained hashes of their\n"
    "  words; an admitted request reuses the longest cached run of its prompt's full blocks (never\n"
    "  its last token), reported as usage.prompt_tokens_details.cached_tokens; its full prompt blocks\n"
    "  are cached after its prefill, its output's when it ends; allocation evicts least recently\n"
    "  used blocks. A prompt whose prompt and output can never fit the cache gets 400. A decode\n"
    "  instance models its prompt like a mixed one (the KV transfer is not modelled). Options of\n"
    "  the model without --engine on are an error.\n"
    "\n"
    "Faults:\n"
    "  --slow-start-ms D              /health answers 503 and completions 503 for D ms after start;\n"
    "                                 registration waits for it (default 0)\n"
    "  --seed N                       seed of the error_rate draws (default 1)\n"
    "\n"
    "Registration (POST http://ROUTER/register at startup, then every interval; 5 s timeout):\n"
    "  --router HOST:PORT             router to register with (default: none)\n"
    "  --role mixed|prefill|decode    role (default mixed); it also changes how completions are served:\n"
    "                                 prefill answers with at most 1 token, --prefill-delay-ms after\n"
    "                                 its modelled time (the first-token delay, or the engine's prefill);\n"
    "                                 decode answers 400 unless the body has a request_id and a well-formed\n"
    "                                 disaggregate_info (the router's keys and types, nothing else)\n"
    "  --prefill-delay-ms D           role prefill: extra delay before its token (default 0)\n"
    "  --register-interval-secs S     heartbeat period in seconds, may be fractional (default 5)\n"
    "  --connector-port N             connector_port (default: not sent)\n"
    "  --engine-worker-queue-port N   engine_worker_queue_port (default: not sent)\n"
    "  --device-ids 0,1               device_ids (default 0)\n"
    "  --transfer-protocol ipc,rdma   transfer_protocol (default ipc)\n"
    "  --rdma-ports 7001,7002         rdma_ports (default: not sent)\n"
    "  --tp-size N                    tp_size (default: the number of device ids)\n"
    "  Ports and list items are sent as JSON integers when numeric, else as strings.\n"
    "\n"
    "Endpoints:\n"
    "  POST /v1/chat/completions, POST /v1/completions    OpenAI shape; \"stream\": true for SSE\n"
    "  POST /v1/abort_requests {\"req_ids\":[...]} or {\"abort_all\":true}\n"
    "                                 end the matching in-flight completions (matched by the body's\n"
    "                                 request_id, else the generated \"<name>-<seq>\", or the response id):\n"
    "                                 streams get a last chunk with finish_reason \"abort\" then [DONE],\n"
    "                                 others a response with the tokens so far; answers\n"
    "                                 {\"result\":{\"aborted\":[{\"request_id\":id,\"output_tokens\":n}],\n"
    "                                 \"not_found\":[ids]}}; any other body: 400\n"
    "                                 {\"error\":\"must provide abort_all=true or req_ids\"}\n"
    "  GET /health                    200 {\"status\":\"ok\"}, or 503 when made unhealthy, or 503\n"
    "                                 {\"status\":\"starting\"} during --slow-start-ms\n"
    "  GET /metrics                   fastdeploy:num_requests_running, fastdeploy:num_requests_waiting,\n"
    "                                 fastdeploy:available_gpu_block_num (without the engine: in-flight\n"
    "                                 completions, 0, 1000 - in-flight; with it: admitted, queued, free or\n"
    "                                 evictable blocks), counters fastdeploy:prompt_tokens_total and\n"
    "                                 fastdeploy:prefix_cache_hit_tokens_total (0 without the engine)\n"
    "  POST /sim/health {\"healthy\":false}    make /health answer 503 (true: 200 again)\n"
    "  POST /sim/fail {\"mode\":M,\"status\":503,\"count\":N}\n"
    "                                 misbehave on the next N (default: every) completion request;\n"
    "                                 M = none | close_before_head | hang_before_head | status |\n"
    "                                 die_mid_stream (\"after_chunks\":k, default 0: close the connection\n"
    "                                 after k token chunks; a non-streamed answer is never sent) |\n"
    "                                 error_rate (\"error_rate\":p in [0,1]: answer status with\n"
    "                                 probability p, drawn from --seed or \"seed\" restarted now;\n"
    "                                 count then limits the errors)\n"
    "  POST /sim/metrics "
    "{\"num_requests_running\":n,\"num_requests_waiting\":n,\"available_gpu_block_num\":n}\n"
    "                                 fix metric values (null: computed again)\n"
    "  GET /sim/stats                 name, requests, inflight, completed, cancelled (client left before\n"
    "                                 the end), failed (injected), rejected (bad body), aborted,\n"
    "                                 register_ok, register_failed, healthy, last_body, last_path,\n"
    "                                 last_headers, last_request_id, last_disaggregate_info (JSON values\n"
    "                                 of the latest completion body, null when absent), prompt_tokens and\n"
    "                                 cached_tokens (as the /metrics counters: the engine counts requests\n"
    "                                 when admitted, without it when they arrive), and with the engine\n"
    "                                 \"engine\": {running, waiting, free_blocks, cached_blocks,\n"
    "                                 evicted_blocks}\n"
    "  POST /sim/reset                zero the counters, forget the last request; {\"flush_cache\":true}\n"
    "                                 also empties the engine's prefix cache (what no request pins)\n"
    "\n"
    "Prints \"fd-sim listening on PORT\" on stdout once listening (and \"fd-sim metrics listening on\n"
    "P2\" after it when separate). SIGINT/SIGTERM exit with 0.\n";

void sim_print_usage(FILE *out, const char *prog)
{
    fprintf(out, USAGE, prog);
}

static void set_defaults(sim_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
    cfg->port = -1;
    cfg->metrics_port = -1;
    snprintf(cfg->role, sizeof(cfg->role), "mixed");
    cfg->register_interval_secs = 5;
    cfg->tokens = 16;
    cfg->device_ids.n = 1;
    snprintf(cfg->device_ids.items[0], SIM_ITEM_LEN, "0");
    cfg->transfer_protocol.n = 1;
    snprintf(cfg->transfer_protocol.items[0], SIM_ITEM_LEN, "ipc");
    cfg->rdma_ports.n = -1;
    cfg->threads = 1;
    cfg->seed = 1;
    cfg->engine_params = (sim_engine_params_t){.prefill_tokens_per_sec = 10000,
                                               .decode_step_ms = 10,
                                               .decode_step_ms_per_seq = 0.2,
                                               .max_batch = 64,
                                               .kv_blocks = 1000,
                                               .block_tokens = 16};
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_list(const char *s, sim_list_t *list)
{
    list->n = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= SIM_ITEM_LEN || list->n == SIM_MAX_LIST)
            return -1;
        memcpy(list->items[list->n], p, len);
        list->items[list->n][len] = '\0';
        list->n++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int copy_str(char *dst, size_t cap, const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len >= cap)
        return -1;
    memcpy(dst, s, len + 1);
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(d >= lo && d <= hi))
        return -1;
    *out = d;
    return 0;
}

/* Accept "host:port", "http://host:port" or "http://host:port/". */
static int set_router(char *router, size_t cap, const char *s)
{
    if (strncmp(s, "http://", 7) == 0)
        s += 7;
    if (copy_str(router, cap, s) != 0)
        return -1;
    size_t len = strlen(router);
    while (len > 0 && router[len - 1] == '/')
        router[--len] = '\0';
    const char *colon = strrchr(router, ':');
    unsigned long port;
    if (len == 0 || !colon || colon == router || parse_uint(colon + 1, 65535, &port) != 0 || port == 0)
        return -1;
    return 0;
}

/* One of the words in `words` (NULL-terminated); copied into dst. */
static int copy_word(char *dst, size_t cap, const char *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return copy_str(dst, cap, s);
    return -1;
}

static int parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || errno != 0 || *end != '\0')
        return -1;
    *out = seed;
    return 0;
}

static int parse_on_off(const char *s, bool *out)
{
    if (strcmp(s, "on") != 0 && strcmp(s, "off") != 0)
        return -1;
    *out = strcmp(s, "on") == 0;
    return 0;
}

typedef enum { O_UNSIGNED, O_INT, O_DOUBLE, O_STRING, O_LIST, O_ROUTER, O_ROLE, O_SEED, O_ON_OFF } kind_t;

/* An option and the field it sets: integers in [lo, hi], doubles in [lo, hi], strings non-empty
 * and shorter than the field. */
typedef struct {
    const char *name;
    kind_t kind;
    size_t off, size;
    double lo, hi;
    bool engine; /* an option of the engine model: only meaningful with --engine on */
} option_t;

#define FIELD(f) offsetof(sim_config_t, f), sizeof(((sim_config_t *)0)->f)

static const option_t OPTIONS[] = {
    {"port", O_INT, FIELD(port), 0, 65535, false},
    {"metrics-port", O_INT, FIELD(metrics_port), 0, 65535, false},
    {"host", O_STRING, FIELD(host), 0, 0, false},
    {"router", O_ROUTER, FIELD(router), 0, 0, false},
    {"role", O_ROLE, FIELD(role), 0, 0, false},
    {"register-interval-secs", O_DOUBLE, FIELD(register_interval_secs), 0.01, 86400, false},
    {"tokens", O_UNSIGNED, FIELD(tokens), 0, SIM_MAX_TOKENS, false},
    {"token-delay-ms", O_UNSIGNED, FIELD(token_delay_ms), 0, SIM_MAX_DELAY_MS, false},
    {"first-token-delay-ms", O_UNSIGNED, FIELD(first_token_delay_ms), 0, SIM_MAX_DELAY_MS, false},
    {"connector-port", O_STRING, FIELD(connector_port), 0, 0, false},
    {"engine-worker-queue-port", O_STRING, FIELD(engine_worker_queue_port), 0, 0, false},
    {"device-ids", O_LIST, FIELD(device_ids), 0, 0, false},
    {"transfer-protocol", O_LIST, FIELD(transfer_protocol), 0, 0, false},
    {"rdma-ports", O_LIST, FIELD(rdma_ports), 0, 0, false},
    {"tp-size", O_INT, FIELD(tp_size), 1, 1024, false},
    {"name", O_STRING, FIELD(name), 0, 0, false},
    {"model", O_STRING, FIELD(model), 0, 0, false},
    {"threads", O_INT, FIELD(threads), 1, SIM_MAX_THREADS, false},
    {"prefill-delay-ms", O_UNSIGNED, FIELD(prefill_delay_ms), 0, SIM_MAX_DELAY_MS, false},
    {"slow-start-ms", O_UNSIGNED, FIELD(slow_start_ms), 0, SIM_MAX_DELAY_MS, false},
    {"seed", O_SEED, FIELD(seed), 0, 0, false},
    {"engine", O_ON_OFF, FIELD(engine), 0, 0, false},
    {"prefill-tokens-per-sec", O_DOUBLE, FIELD(engine_params.prefill_tokens_per_sec), 1e-3, 1e12, true},
    {"decode-step-ms", O_DOUBLE, FIELD(engine_params.decode_step_ms), 0, SIM_MAX_DELAY_MS, true},
    {"decode-step-ms-per-seq", O_DOUBLE, FIELD(engine_params.decode_step_ms_per_seq), 0, SIM_MAX_DELAY_MS,
     true},
    {"max-batch", O_UNSIGNED, FIELD(engine_params.max_batch), 1, SIM_ENGINE_MAX_BATCH, true},
    {"kv-blocks", O_UNSIGNED, FIELD(engine_params.kv_blocks), 1, SIM_ENGINE_MAX_BLOCKS, true},
    {"block-tokens", O_UNSIGNED, FIELD(engine_params.block_tokens), 1, SIM_ENGINE_MAX_BLOCK_TOKENS, true},
};

static const option_t *find_option(const char *name)
{
    for (size_t i = 0; i < sizeof(OPTIONS) / sizeof(OPTIONS[0]); i++)
        if (strcmp(OPTIONS[i].name, name) == 0)
            return &OPTIONS[i];
    return NULL;
}

static int parse_integer(const option_t *o, const char *val, void *field)
{
    unsigned long v;
    if (parse_uint(val, (unsigned long)o->hi, &v) != 0 || v < (unsigned long)o->lo)
        return -1;
    if (o->kind == O_INT)
        *(int *)field = (int)v;
    else
        *(unsigned *)field = (unsigned)v;
    return 0;
}

/* Apply one option; returns 0, or -1 when the value is invalid. */
static int apply_option(sim_config_t *cfg, const option_t *o, const char *val)
{
    static const char *const ROLES[] = {"mixed", "prefill", "decode", NULL};
    char *field = (char *)cfg + o->off;
    switch (o->kind) {
    case O_UNSIGNED:
    case O_INT:
        return parse_integer(o, val, field);
    case O_DOUBLE:
        return parse_double(val, o->lo, o->hi, (double *)field);
    case O_STRING:
        return copy_str(field, o->size, val);
    case O_LIST:
        return parse_list(val, (sim_list_t *)field);
    case O_ROUTER:
        return set_router(field, o->size, val);
    case O_ROLE:
        return copy_word(field, o->size, val, ROLES);
    case O_SEED:
        return parse_seed(val, (uint64_t *)field);
    case O_ON_OFF:
        return parse_on_off(val, (bool *)field);
    }
    return -1;
}

/* "--name=value" or "--name value" at argv[*i] (moving *i past the value); -1 with err. */
static int split_option(int argc, char **argv, int *i, char *name, size_t cap, const char **val, char *err,
                        size_t errlen)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0) {
        snprintf(err, errlen, "unexpected argument: %s", arg);
        return -1;
    }
    const char *eq = strchr(arg + 2, '=');
    size_t nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    if (nlen >= cap) {
        snprintf(err, errlen, "unknown option: %s", arg);
        return -1;
    }
    memcpy(name, arg + 2, nlen);
    name[nlen] = '\0';
    if (!find_option(name)) {
        snprintf(err, errlen, "unknown option: --%s", name);
        return -1;
    }
    if (eq) {
        *val = eq + 1;
    } else if (*i + 1 < argc) {
        *val = argv[++*i];
    } else {
        snprintf(err, errlen, "option --%s needs a value", name);
        return -1;
    }
    return 0;
}

int sim_parse_args(int argc, char **argv, sim_config_t *cfg, char *err, size_t errlen)
{
    set_defaults(cfg);
    const char *model_option = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        char name[64];
        const char *val;
        if (split_option(argc, argv, &i, name, sizeof(name), &val, err, errlen) != 0)
            return -1;
        const option_t *o = find_option(name);
        if (apply_option(cfg, o, val) != 0) {
            snprintf(err, errlen, "invalid value for --%s: %s", name, val);
            return -1;
        }
        if (o->engine)
            model_option = o->name;
    }
    if (model_option && !cfg->engine) {
        snprintf(err, errlen, "--%s configures the engine model: add --engine on", model_option);
        return -1;
    }
    if (cfg->port < 0) {
        snprintf(err, errlen, "--port is required");
        return -1;
    }
    return 0;
}

sim_role_t sim_role_of(const sim_config_t *cfg)
{
    if (strcmp(cfg->role, "prefill") == 0)
        return SIM_ROLE_PREFILL;
    if (strcmp(cfg->role, "decode") == 0)
        return SIM_ROLE_DECODE;
    return SIM_ROLE_MIXED;
}

void sim_config_finalize(sim_config_t *cfg, int port)
{
    if (cfg->name[0] == '\0')
        snprintf(cfg->name, sizeof(cfg->name), "sim-%d", port);
}
