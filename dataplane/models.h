/*
 * dataplane/models.h - routing by model: which instances may serve the model a request names,
 * the OpenAI-style 404 for a model nobody serves, and GET /v1/models.
 *
 * The control plane polls every instance's GET /v1/models (controlplane/models_poll.c) and
 * publishes the ids per slot and an index of the fleet's ids (shm/models.c). Filtering applies
 * only when that index holds two or more ids: a fleet serving one model accepts any name, as
 * FastDeploy clients expect. An instance whose models are not known (not polled yet, or without
 * /v1/models) accepts every model.
 */
#ifndef FD_DP_MODELS_H
#define FD_DP_MODELS_H

#include <stdbool.h>
#include <stdint.h>

#include <h2o.h>

/* What a request's model means for its selection; lives as long as the request. */
typedef struct {
    bool filter; /* keep only the instances that accept `id` */
    uint64_t hash;
    h2o_iovec_t id; /* the request's own "model" string */
} dp_model_t;

/* Decide for the model a request names ({NULL, 0}: none). Returns 0 with *out set, or -1 when the
 * fleet serves several models, not this one, and no instance's models are unknown. */
int dp_model_resolve(h2o_iovec_t model, dp_model_t *out);
/* Inside a read-side section: may `slot` serve the request? (m NULL or not filtering: yes) */
bool dp_model_accepts(const dp_model_t *m, unsigned slot);
/* 404 {"error":{"message":"The model `x` does not exist.", ... "code":"model_not_found"}} */
void dp_send_model_not_found(h2o_req_t *req, h2o_iovec_t model);
/* GET /v1/models: the OpenAI list, the union over the selectable instances. */
int dp_handle_models(h2o_req_t *req);

#endif
