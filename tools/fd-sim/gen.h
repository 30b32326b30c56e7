/*
 * tools/fd-sim/gen.h - fd-sim's text work (gen.c): a completion request parsed into a sim_gen_t,
 * and everything fd-sim sends rendered from one (OpenAI-shaped responses and SSE chunks, error
 * bodies, Prometheus metrics, the FastDeploy register payload).
 *
 * Contract: pure. No sockets and no clocks: callers pass the creation time and the sequence
 * number in, so the same inputs always render the same bytes (the unit tests rely on it).
 * Renderers return malloc'd NUL-terminated text (NULL when out of memory) and its length.
 */
#ifndef FD_TOOLS_SIM_GEN_H
#define FD_TOOLS_SIM_GEN_H

#include <stdbool.h>
#include <stddef.h>

#include "tools/fd-sim/args.h"
#include "tools/fd-sim/engine.h"

struct json_object;

#define SIM_ID_LEN      320
#define SIM_GPU_BLOCKS  1000 /* available_gpu_block_num when idle; one block per running request */
#define SIM_METRICS_CAP 2048 /* enough for every metric fd-sim renders */

typedef enum { SIM_API_CHAT, SIM_API_COMPLETIONS } sim_api_t;

typedef struct {
    unsigned tokens;
    unsigned token_delay_ms;
    unsigned first_token_delay_ms;
} sim_defaults_t;

/* Everything needed to render one completion, decided once when the request arrives. */
typedef struct {
    sim_api_t api;
    bool stream;
    bool include_usage; /* stream_options.include_usage */
    bool truncated;     /* max_tokens cut the answer short: finish_reason "length" */
    bool aborted;       /* ended by /v1/abort_requests: finish_reason "abort" */
    unsigned tokens;
    unsigned token_delay_ms;
    unsigned first_token_delay_ms;
    unsigned prompt_tokens;
    unsigned cached_tokens; /* usage.prompt_tokens_details.cached_tokens */
    long created;
    char id[SIM_ID_LEN];
    char model[SIM_MODEL_LEN];
    char instance[SIM_NAME_LEN];
} sim_gen_t;

/*
 * Parse a completion request body. The id is "chatcmpl-"/"cmpl-" followed by the body's
 * request_id when it has one, else by "<instance>-<seq>". Returns 0, or -1 with an OpenAI-style
 * message in err (the caller answers 400).
 */
int sim_parse_completion(sim_api_t api, const char *body, size_t len, const sim_defaults_t *defaults,
                         const char *instance, unsigned long seq, long created, sim_gen_t *out, char *err,
                         size_t errlen);
/* The same, also handing the parsed body to the caller (who puts it) through root. */
int sim_parse_request(sim_api_t api, const char *body, size_t len, const sim_defaults_t *defaults,
                      const char *instance, unsigned long seq, long created, sim_gen_t *out,
                      struct json_object **root, char *err, size_t errlen);
/* Feed the prompt's words (the ones usage.prompt_tokens counts) into chain; -1 when out of memory. */
int sim_prompt_chain(sim_api_t api, struct json_object *root, sim_chain_t *chain);
/* Milliseconds to wait before token i (0-based): the first waits first+delay, the others delay. */
unsigned sim_delay_before(const sim_gen_t *g, unsigned i);
char *sim_render_response(const sim_gen_t *g, size_t *len);
/* "data: {chunk}\n\n" for token i; with 0 tokens, i = 0 renders the empty finishing chunk. */
char *sim_render_chunk(const sim_gen_t *g, unsigned i, size_t *len);
/* The final usage-only chunk (include_usage) followed by "data: [DONE]\n\n". */
char *sim_render_stream_end(const sim_gen_t *g, size_t *len);
/* End of an aborted stream after `emitted` tokens: an empty chunk with finish_reason "abort", the
 * usage chunk (include_usage) and [DONE]. */
char *sim_render_abort_end(const sim_gen_t *g, unsigned emitted, size_t *len);
char *sim_render_error(const char *message, const char *type, int code, size_t *len);

typedef struct {
    long running, waiting, blocks;
    unsigned long long prompt_tokens_total, cached_tokens_total;
} sim_metrics_t;

/* Prometheus text; returns the length written (always < cap for cap >= SIM_METRICS_CAP). */
size_t sim_render_metrics(char *buf, size_t cap, const sim_metrics_t *m);
/* The FastDeploy /register body for this instance. */
char *sim_register_payload(const sim_config_t *cfg, int port, int metrics_port, size_t *len);

#endif
