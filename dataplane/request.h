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
    size_t members;      /* top-level members as written (a repeated key counts each time) */
    size_t close;        /* offset of the object's closing brace (where splitwise mode splices) */
    h2o_iovec_t model;   /* the top-level "model" string unescaped, {NULL, 0} when absent or not a string;
                            points into the body unless it held escapes (then into the pool) */
    pol_prompt_t prompt; /* text allocated in the request's pool */
} dp_body_t;

/*
 * Scan `body` as one JSON object (trailing data rejected) in one pass, no tree, no allocation per
 * field. This signature is stable (a libFuzzer target calls it). With want_prompt, extract the prompt
 * text as the Go router does (docs/fastdeploy.md 8): chat `messages[].content` strings and `text` parts,
 * or completion `prompt` string / list of strings; each piece trimmed, empty ones dropped, joined
 * with one space; a repeated key counts its last value. Returns 0, or -1 when the body is not one
 * JSON object or nests deeper than 64 levels.
 */
int dp_parse_body(h2o_mem_pool_t *pool, const char *body, size_t len, bool want_prompt, dp_body_t *out);

/* Unicode code points in UTF-8 text (bytes that do not continue a sequence): what
 * dp_parse_body counts in a prompt as it unescapes it (prompt.codepoints), for texts from
 * elsewhere and as the tests' reference. */
size_t dp_codepoints(const char *s, size_t len);

#endif
