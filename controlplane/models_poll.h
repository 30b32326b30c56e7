/*
 * controlplane/models_poll.h - what models_poll.c offers the rest of the control plane (models).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_MODELS_POLL_H
#define FD_CP_MODELS_POLL_H

#include "controlplane/cp.h"

#define CP_MODELS_MAX_BODY (64 * 1024)

/*
 * Parse an OpenAI model list, {"object":"list","data":[{"id":..,"owned_by":..,"created":..}]}
 * (pure, strict: one JSON object and nothing after it, "data" an array of objects each with a
 * non-empty string "id" shorter than SHM_MODEL_ID_LEN without control characters). Repeated ids
 * are kept once. Returns 0 with *n models (at most max), or -1 with the reason in err (a list of
 * more than max models is one).
 */
int cp_models_parse(const char *text, size_t len, shm_model_info_t *out, unsigned max, unsigned *n, char *err,
                    size_t errlen);

int cp_models_start(cp_t *cp);
void cp_models_stop(cp_t *cp);

#endif
