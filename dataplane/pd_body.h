/*
 * dataplane/pd_body.h - the body rewriting of splitwise mode (pd_body.c): request ids,
 * disaggregate_info and the body both legs send. Pure functions, apart from the handler (pd.h)
 * so that they are unit-testable and the handler's file does not include itself back.
 */
#ifndef FD_DP_PD_BODY_H
#define FD_DP_PD_BODY_H

#include <h2o.h>

#include "dataplane/request.h"
#include "shm/shm.h"

#define DP_UUID_LEN 36

/* A random (version 4) UUID, lowercase 8-4-4-4-12, from the thread's generator. */
void dp_uuid4(uint64_t *rng, char out[DP_UUID_LEN + 1]);

/* disaggregate_info for the pair, as JSON text with FastDeploy's keys and types (docs/fastdeploy.md 12),
 * keys in the Go router's (sorted) order. Returns its length, or the length needed if > cap. */
size_t dp_disaggregate_info(char *out, size_t cap, const shm_instance_t *p, const shm_instance_t *d);

/*
 * The body to send to both instances: the client's JSON object text with "disaggregate_info"
 * (and "request_id" when `request_id` is non-empty) appended as last members, so they win over
 * any client-sent field of the same name in every JSON parser that keeps the last duplicate.
 * `scan` is dp_parse_body's result for `body`: where the closing brace is, whether a comma is needed;
 * the body is not read again. One copy, in h2o shared memory linked to `pool` (h2o_mem_alloc_shared),
 * sent by both legs: the prefill leg, which may outlive the request, holds a reference to it.
 */
h2o_iovec_t dp_pd_body(h2o_mem_pool_t *pool, h2o_iovec_t body, const dp_body_t *scan, const shm_instance_t *p,
                       const shm_instance_t *d, const char *request_id);

#endif
