/*
 * dataplane/select.h - choosing an instance for a request and accounting its load.
 *
 * Selection runs inside one shared-memory read-side critical section: take the role's published
 * view, drop the slots already tried by this request, let the configured policy choose, bump this
 * DP's counters for the chosen slot, and copy out what the request needs (slot, generation,
 * address). Nothing from shared memory is used after the section ends.
 */
#ifndef FD_DP_SELECT_H
#define FD_DP_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataplane/dp.h"
#include "dataplane/models.h"
#include "dataplane/policy/registry.h"

typedef struct {
    uint16_t slot;
    uint32_t generation;
    uint64_t tokens;  /* token estimate added to the slot's counter */
    uint64_t prefill; /* the part of it released at the answer's first body byte (dp_prefill_done) */
    uint16_t port;
    char host[SHM_HOST_LEN];
    char url[SHM_URL_LEN];
} dp_choice_t;

/* True when the role's policy weighs the prompt: extract it from the body (request.h). */
bool dp_wants_prompt(shm_role_t role);

/* True when the role's policy weighs the prompt's tokens and a tokenizer service is configured:
 * ask it before selecting (tokenizer.h). */
bool dp_wants_tokens(shm_role_t role, const pol_prompt_t *prompt);

/* Returns 0 and fills *out, or -1 if no candidate is left. With a filtering model (models.h),
 * only the instances that accept it are candidates. */
int dp_select(dp_thread_t *t, shm_role_t role, const pol_prompt_t *prompt, const dp_model_t *model,
              const uint16_t *exclude, size_t nexclude, dp_choice_t *out);

/* Give back what dp_select took (safe after the slot was removed: the generation check). */
void dp_release(const dp_choice_t *c);
/* The instance answered with its first body bytes: release the choice's prefill part now (the
 * rest stays until dp_release). Idempotent. */
void dp_prefill_done(dp_choice_t *c);

/* Calls f for every registered slot (LIVE, and RETIRED ones still draining when with_retired),
 * inside one read-side critical section: a slot's identity cannot be rewritten meanwhile (a slot
 * is freed only after a grace period). f must not keep pointers into shared memory. */
typedef void (*dp_slot_fn)(const shm_instance_t *in, unsigned slot, void *arg);
void dp_for_each_slot(dp_thread_t *t, bool with_retired, dp_slot_fn f, void *arg);

/* Count a proxied request's upstream status (0 = failed before a head) on the chosen instance. */
void dp_count_status(const dp_choice_t *c, unsigned status);

#endif
