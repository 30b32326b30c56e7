/*
 * dataplane/tokenizer.h - the optional tokenizer service (scheduler.tokenizer-url), asked for
 * a prompt's token ids so the cache-aware policy hashes the tokens the instance caches, not
 * code points. The call is asynchronous from the event loop (a leg with its own deadline,
 * scheduler.tokenizer-timeout-secs); any failure falls back to code points, as in the Go router.
 *
 * URL rules (docs/fastdeploy.md 10): "http://" is added when there is no scheme, "/tokenize" when there
 * is no path; the query is kept. Request {"text":m,"prompt":m,"message":m}, answer
 * {"input_ids":[int, ...]} (non-empty) with a status below 300.
 */
#ifndef FD_DP_TOKENIZER_H
#define FD_DP_TOKENIZER_H

#include <stdbool.h>

#include "dataplane/dp.h"
#include "dataplane/policy/pol.h"

/* Resolve the configured URL once at start (the only blocking step). 0, or -1 with a reason. */
int dp_tokenizer_setup(const char *url, char *err, size_t errlen);
bool dp_tokenizer_enabled(void);

/* Parse a tokenizer answer into ids allocated in `pool`. Returns the count, 0 when invalid. */
size_t dp_tokenizer_parse(h2o_mem_pool_t *pool, const char *body, size_t len, uint64_t **ids);

/* Done: ids (in req's pool) or NULL with the reason. Never called from inside dp_tokenize, and
 * not at all if the request goes away first. */
typedef void (*dp_tokenize_cb)(h2o_req_t *req, void *data, const uint64_t *ids, size_t n, const char *err);

void dp_tokenize(h2o_req_t *req, const pol_prompt_t *prompt, dp_tokenize_cb cb, void *data);

#endif
