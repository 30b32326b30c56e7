/*
 * tools/fd-sim/gen.c - fd-sim's pure text work: parsing a completion request into a sim_gen_t
 * and rendering everything fd-sim sends (OpenAI-shaped responses and SSE chunks, error bodies,
 * Prometheus metrics, the FastDeploy register payload). No sockets, no clocks: the server passes
 * the creation time and sequence number in, so the unit tests get deterministic output.
 */
#include <ctype.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fd-sim/body.h"
#include "tools/fd-sim/gen.h"

/* Optional non-negative integer field; null counts as absent. Returns -1 with err on a bad type. */
static int get_uint(json_object *root, const char *key, unsigned long max, unsigned long *val, bool *present,
                    char *err, size_t errlen)
{
    json_object *v;
    *present = false;
    if (!json_object_object_get_ex(root, key, &v) || v == NULL)
        return 0;
    if (!json_object_is_type(v, json_type_int)) {
        snprintf(err, errlen, "%s must be an integer", key);
        return -1;
    }
    int64_t n = json_object_get_int64(v);
    if (n < 0 || (uint64_t)n > max) {
        snprintf(err, errlen, "%s must be between 0 and %lu", key, max);
        return -1;
    }
    *val = (unsigned long)n;
    *present = true;
    return 0;
}

/*
 * The prompt's words, in order, as the engine model's tokens: a word count stands in for the
 * tokenizer, enough for usage numbers and prefix sharing that follow the prompt. Walks the same
 * fields for counting and for hashing, so the two always agree.
 */
typedef int (*word_fn)(void *ctx, const char *word, size_t len);

static int walk_text(const char *s, size_t len, word_fn fn, void *ctx)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && isspace((unsigned char)s[i]))
            i++;
        size_t start = i;
        while (i < len && !isspace((unsigned char)s[i]))
            i++;
        if (i > start && fn(ctx, s + start, i - start) != 0)
            return -1;
    }
    return 0;
}

static int walk_value(json_object *v, word_fn fn, void *ctx)
{
    if (json_object_is_type(v, json_type_string))
        return walk_text(json_object_get_string(v), (size_t)json_object_get_string_len(v), fn, ctx);
    if (json_object_is_type(v, json_type_int)) { /* a token id */
        char id[24];
        int n = snprintf(id, sizeof(id), "%" PRId64, json_object_get_int64(v));
        return fn(ctx, id, (size_t)n);
    }
    if (!json_object_is_type(v, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *item = json_object_array_get_idx(v, i), *text;
        int rc = 0;
        if (json_object_is_type(item, json_type_object) && json_object_object_get_ex(item, "text", &text))
            rc = walk_value(text, fn, ctx);
        else if (!json_object_is_type(item, json_type_array))
            rc = walk_value(item, fn, ctx);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int walk_prompt(sim_api_t api, json_object *root, word_fn fn, void *ctx)
{
    json_object *v;
    if (api == SIM_API_COMPLETIONS)
        return json_object_object_get_ex(root, "prompt", &v) ? walk_value(v, fn, ctx) : 0;
    if (!json_object_object_get_ex(root, "messages", &v) || !json_object_is_type(v, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *msg = json_object_array_get_idx(v, i), *content;
        if (json_object_is_type(msg, json_type_object) &&
            json_object_object_get_ex(msg, "content", &content) && walk_value(content, fn, ctx) != 0)
            return -1;
    }
    return 0;
}

static int count_word(void *ctx, const char *word, size_t len)
{
    (void)word;
    (void)len;
    (*(unsigned *)ctx)++;
    return 0;
}

static unsigned prompt_tokens(sim_api_t api, json_object *root)
{
    unsigned n = 0;
    walk_prompt(api, root, count_word, &n);
    return n;
}

static int chain_word(void *ctx, const char *word, size_t len)
{
    return sim_chain_feed(ctx, word, len);
}

int sim_prompt_chain(sim_api_t api, json_object *root, sim_chain_t *chain)
{
    return walk_prompt(api, root, chain_word, chain);
}

static void copy_trunc(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

static int parse_flags(json_object *root, sim_gen_t *out, char *err, size_t errlen)
{
    json_object *v;
    if (json_object_object_get_ex(root, "stream", &v) && v != NULL) {
        if (!json_object_is_type(v, json_type_boolean)) {
            snprintf(err, errlen, "stream must be a boolean");
            return -1;
        }
        out->stream = json_object_get_boolean(v);
    }
    json_object *opts, *usage;
    if (json_object_object_get_ex(root, "stream_options", &opts) &&
        json_object_is_type(opts, json_type_object) &&
        json_object_object_get_ex(opts, "include_usage", &usage))
        out->include_usage = json_object_get_boolean(usage);
    if (json_object_object_get_ex(root, "model", &v) && json_object_is_type(v, json_type_string))
        copy_trunc(out->model, sizeof(out->model), json_object_get_string(v));
    return 0;
}

/* sim_tokens / sim_*delay_ms override the defaults; max_tokens and max_completion_tokens cap. */
static int parse_counts(json_object *root, const sim_defaults_t *d, sim_gen_t *out, char *err, size_t errlen)
{
    unsigned long v;
    bool present;
    out->tokens = d->tokens;
    out->token_delay_ms = d->token_delay_ms;
    out->first_token_delay_ms = d->first_token_delay_ms;
    if (get_uint(root, "sim_tokens", SIM_MAX_TOKENS, &v, &present, err, errlen) != 0)
        return -1;
    if (present)
        out->tokens = (unsigned)v;
    if (get_uint(root, "sim_token_delay_ms", SIM_MAX_DELAY_MS, &v, &present, err, errlen) != 0)
        return -1;
    if (present)
        out->token_delay_ms = (unsigned)v;
    if (get_uint(root, "sim_first_token_delay_ms", SIM_MAX_DELAY_MS, &v, &present, err, errlen) != 0)
        return -1;
    if (present)
        out->first_token_delay_ms = (unsigned)v;
    static const char *const caps[] = {"max_tokens", "max_completion_tokens"};
    for (size_t i = 0; i < 2; i++) {
        if (get_uint(root, caps[i], UINT32_MAX, &v, &present, err, errlen) != 0)
            return -1;
        if (present && v < out->tokens) {
            out->tokens = (unsigned)v;
            out->truncated = true;
        }
    }
    return 0;
}

int sim_parse_completion(sim_api_t api, const char *body, size_t len, const sim_defaults_t *defaults,
                         const char *instance, unsigned long seq, long created, sim_gen_t *out, char *err,
                         size_t errlen)
{
    return sim_parse_request(api, body, len, defaults, instance, seq, created, out, NULL, err, errlen);
}

int sim_parse_request(sim_api_t api, const char *body, size_t len, const sim_defaults_t *defaults,
                      const char *instance, unsigned long seq, long created, sim_gen_t *out,
                      json_object **root_out, char *err, size_t errlen)
{
    if (root_out)
        *root_out = NULL;
    memset(out, 0, sizeof(*out));
    out->api = api;
    out->created = created;
    copy_trunc(out->model, sizeof(out->model), "default");
    copy_trunc(out->instance, sizeof(out->instance), instance);
    const char *prefix = api == SIM_API_CHAT ? "chatcmpl-" : "cmpl-";
    snprintf(out->id, sizeof(out->id), "%s%s-%lu", prefix, instance, seq);
    json_object *root = sim_parse_object(body, len, err, errlen);
    if (!root)
        return -1;
    int rc = -1;
    if (parse_flags(root, out, err, errlen) != 0 || parse_counts(root, defaults, out, err, errlen) != 0)
        goto done;
    out->prompt_tokens = prompt_tokens(api, root);
    json_object *rid;
    if (json_object_object_get_ex(root, "request_id", &rid) && json_object_is_type(rid, json_type_string) &&
        json_object_get_string_len(rid) > 0)
        snprintf(out->id, sizeof(out->id), "%s%s", prefix, json_object_get_string(rid));
    rc = 0;
    if (root_out) {
        *root_out = root;
        return rc;
    }
done:
    json_object_put(root);
    return rc;
}

unsigned sim_delay_before(const sim_gen_t *g, unsigned i)
{
    return i == 0 ? g->first_token_delay_ms + g->token_delay_ms : g->token_delay_ms;
}

/* Serialize obj between prefix and suffix into a malloc'd string; consumes obj. */
static char *finish(json_object *obj, const char *prefix, const char *suffix, size_t *len)
{
    size_t jlen = 0;
    const char *json = obj ? json_object_to_json_string_length(obj, SIM_JSON_FLAGS, &jlen) : NULL;
    char *out = NULL;
    if (json) {
        size_t plen = strlen(prefix), slen = strlen(suffix);
        out = malloc(plen + jlen + slen + 1);
        if (out) {
            memcpy(out, prefix, plen);
            memcpy(out + plen, json, jlen);
            memcpy(out + plen + jlen, suffix, slen + 1);
            *len = plen + jlen + slen;
        }
    }
    json_object_put(obj);
    return out;
}

static json_object *envelope(const sim_gen_t *g, const char *object)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(g->id));
    json_object_object_add(o, "object", json_object_new_string(object));
    json_object_object_add(o, "created", json_object_new_int64(g->created));
    json_object_object_add(o, "model", json_object_new_string(g->model));
    json_object_object_add(o, "sim_instance", json_object_new_string(g->instance));
    return o;
}

static json_object *usage(const sim_gen_t *g)
{
    json_object *u = json_object_new_object();
    json_object_object_add(u, "prompt_tokens", json_object_new_int64(g->prompt_tokens));
    json_object_object_add(u, "completion_tokens", json_object_new_int64(g->tokens));
    json_object_object_add(u, "total_tokens", json_object_new_int64((int64_t)g->prompt_tokens + g->tokens));
    json_object *details = json_object_new_object();
    json_object_object_add(details, "cached_tokens", json_object_new_int64(g->cached_tokens));
    json_object_object_add(u, "prompt_tokens_details", details);
    return u;
}

static const char *finish_reason(const sim_gen_t *g)
{
    return g->aborted ? "abort" : g->truncated ? "length" : "stop";
}

/* "tok0 tok1 ... tok<n-1>" */
static char *token_text(unsigned n)
{
    char *s = malloc((size_t)n * 10 + 1), *p = s; /* " tok" + at most 5 digits */
    if (!s)
        return NULL;
    *p = '\0';
    for (unsigned i = 0; i < n; i++)
        p += sprintf(p, i == 0 ? "tok%u" : " tok%u", i);
    return s;
}

/*
 * The envelope with its one choice: for chat, an object under `key` ("message" or "delta") with
 * the role (when role) and the content; otherwise text and logprobs. finish NULL renders null.
 */
static json_object *with_choice(const sim_gen_t *g, const char *object, const char *key, bool role,
                                const char *text, const char *finish)
{
    json_object *o = envelope(g, object);
    json_object *choice = json_object_new_object();
    json_object_object_add(choice, "index", json_object_new_int(0));
    if (g->api == SIM_API_CHAT) {
        json_object *msg = json_object_new_object();
        if (role)
            json_object_object_add(msg, "role", json_object_new_string("assistant"));
        json_object_object_add(msg, "content", json_object_new_string(text));
        json_object_object_add(choice, key, msg);
    } else {
        json_object_object_add(choice, "text", json_object_new_string(text));
        json_object_object_add(choice, "logprobs", NULL);
    }
    json_object_object_add(choice, "finish_reason", finish ? json_object_new_string(finish) : NULL);
    json_object *choices = json_object_new_array();
    json_object_array_add(choices, choice);
    json_object_object_add(o, "choices", choices);
    return o;
}

char *sim_render_response(const sim_gen_t *g, size_t *len)
{
    char *text = token_text(g->tokens);
    if (!text)
        return NULL;
    bool chat = g->api == SIM_API_CHAT;
    json_object *o =
        with_choice(g, chat ? "chat.completion" : "text_completion", "message", true, text, finish_reason(g));
    free(text);
    json_object_object_add(o, "usage", usage(g));
    return finish(o, "", "", len);
}

/* One SSE chunk: the role comes with the first, finish_reason (or null) with the last. */
static json_object *chunk(const sim_gen_t *g, bool first, const char *piece, const char *finish)
{
    bool chat = g->api == SIM_API_CHAT;
    return with_choice(g, chat ? "chat.completion.chunk" : "text_completion", "delta", first, piece, finish);
}

char *sim_render_chunk(const sim_gen_t *g, unsigned i, size_t *len)
{
    char piece[24] = "";
    if (g->tokens > 0)
        snprintf(piece, sizeof(piece), i == 0 ? "tok%u" : " tok%u", i);
    bool last = g->tokens == 0 || i + 1 == g->tokens;
    return finish(chunk(g, i == 0, piece, last ? finish_reason(g) : NULL), "data: ", "\n\n", len);
}

static const char DONE[] = "data: [DONE]\n\n";

char *sim_render_stream_end(const sim_gen_t *g, size_t *len)
{
    if (!g->include_usage) {
        *len = sizeof(DONE) - 1;
        return strdup(DONE);
    }
    json_object *o = envelope(g, g->api == SIM_API_CHAT ? "chat.completion.chunk" : "text_completion");
    json_object_object_add(o, "choices", json_object_new_array());
    json_object_object_add(o, "usage", usage(g));
    return finish(o, "data: ",
                  "\n\n"
                  "data: [DONE]\n\n",
                  len);
}

char *sim_render_abort_end(const sim_gen_t *g, unsigned emitted, size_t *len)
{
    sim_gen_t done = *g;
    done.aborted = true;
    done.tokens = emitted;
    size_t clen = 0, elen = 0;
    char *last = finish(chunk(&done, emitted == 0, "", "abort"), "data: ", "\n\n", &clen);
    char *end = sim_render_stream_end(&done, &elen);
    char *out = last && end ? malloc(clen + elen + 1) : NULL;
    if (out) {
        memcpy(out, last, clen);
        memcpy(out + clen, end, elen + 1);
        *len = clen + elen;
    }
    free(last);
    free(end);
    return out;
}

char *sim_render_error(const char *message, const char *type, int code, size_t *len)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "message", json_object_new_string(message));
    json_object_object_add(e, "type", json_object_new_string(type));
    json_object_object_add(e, "param", NULL);
    json_object_object_add(e, "code", json_object_new_int(code));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "error", e);
    return finish(o, "", "", len);
}

size_t sim_render_metrics(char *buf, size_t cap, const sim_metrics_t *m)
{
    int n =
        snprintf(buf, cap,
                 "# HELP fastdeploy:num_requests_running Number of requests currently running.\n"
                 "# TYPE fastdeploy:num_requests_running gauge\n"
                 "fastdeploy:num_requests_running %ld\n"
                 "# HELP fastdeploy:num_requests_waiting Number of requests waiting.\n"
                 "# TYPE fastdeploy:num_requests_waiting gauge\n"
                 "fastdeploy:num_requests_waiting %ld\n"
                 "# HELP fastdeploy:available_gpu_block_num Number of free GPU KV-cache blocks.\n"
                 "# TYPE fastdeploy:available_gpu_block_num gauge\n"
                 "fastdeploy:available_gpu_block_num %ld\n"
                 "# HELP fastdeploy:prompt_tokens_total Prompt tokens of the requests admitted.\n"
                 "# TYPE fastdeploy:prompt_tokens_total counter\n"
                 "fastdeploy:prompt_tokens_total %llu\n"
                 "# HELP fastdeploy:prefix_cache_hit_tokens_total Prompt tokens found in the prefix cache.\n"
                 "# TYPE fastdeploy:prefix_cache_hit_tokens_total counter\n"
                 "fastdeploy:prefix_cache_hit_tokens_total %llu\n",
                 m->running, m->waiting, m->blocks, m->prompt_tokens_total, m->cached_tokens_total);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : (cap > 0 ? cap - 1 : 0);
}

/* Numeric values go out as JSON integers, anything else as a string (lets tests send bad values). */
static json_object *scalar(const char *s)
{
    size_t len = strlen(s);
    bool numeric = len > 0 && len <= 9;
    for (size_t i = 0; numeric && i < len; i++)
        numeric = isdigit((unsigned char)s[i]);
    return numeric ? json_object_new_int(atoi(s)) : json_object_new_string(s);
}

static json_object *list(const sim_list_t *l)
{
    json_object *a = json_object_new_array();
    for (int i = 0; i < l->n; i++)
        json_object_array_add(a, scalar(l->items[i]));
    return a;
}

/* FastDeploy registers the machine's address, never a wildcard. */
static const char *host_ip(const char *host)
{
    if (strcmp(host, "0.0.0.0") == 0)
        return "127.0.0.1";
    if (strcmp(host, "::") == 0)
        return "::1";
    return host;
}

char *sim_register_payload(const sim_config_t *cfg, int port, int metrics_port, size_t *len)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "role", json_object_new_string(cfg->role));
    json_object_object_add(o, "host_ip", json_object_new_string(host_ip(cfg->host)));
    json_object_object_add(o, "port", json_object_new_int(port));
    json_object_object_add(o, "metrics_port", json_object_new_int(metrics_port));
    if (cfg->connector_port[0])
        json_object_object_add(o, "connector_port", scalar(cfg->connector_port));
    if (cfg->engine_worker_queue_port[0])
        json_object_object_add(o, "engine_worker_queue_port", scalar(cfg->engine_worker_queue_port));
    if (cfg->rdma_ports.n >= 0)
        json_object_object_add(o, "rdma_ports", list(&cfg->rdma_ports));
    if (cfg->device_ids.n >= 0)
        json_object_object_add(o, "device_ids", list(&cfg->device_ids));
    if (cfg->transfer_protocol.n >= 0)
        json_object_object_add(o, "transfer_protocol", list(&cfg->transfer_protocol));
    int tp = cfg->tp_size > 0 ? cfg->tp_size : (cfg->device_ids.n > 0 ? cfg->device_ids.n : 1);
    json_object_object_add(o, "tp_size", json_object_new_int(tp));
    return finish(o, "", "", len);
}
