/*
 * dataplane/request.h - what the router reads from a completion request body, parsed once.
 */
#ifndef FD_DP_REQUEST_H
#define FD_DP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

#include "dataplane/policy/pol.h"

typedef struct {
    bool stream;
    bool has_request_id; /* a top-level "request_id" key, of any JSON type */
    size_t members;      /* top-level keys */
    pol_prompt_t prompt; /* text allocated in the request's pool */
} dp_body_t;

/*
 * Parse `body` as one JSON object (trailing data rejected). With want_prompt, extract the prompt
 * text as the Go router does (reference 4.1): chat `messages[].content` strings and `text` parts,
 * or completion `prompt` string / list of strings; each piece trimmed, empty ones dropped, joined
 * with one space. Returns 0, or -1 when the body is not a JSON object.
 */
int dp_parse_body(h2o_mem_pool_t *pool, const char *body, size_t len, bool want_prompt, dp_body_t *out);

/* Unicode code points in UTF-8 text (bytes that do not continue a sequence). */
size_t dp_codepoints(const char *s, size_t len);

#endif
