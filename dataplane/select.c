/*
 * dataplane/select.c - selection and load accounting (see select.h).
 */
#include <string.h>

#include "common/log.h"
#include "dataplane/models.h"
#include "dataplane/select.h"
#include "dataplane/tokenizer.h"

/* The configured policy of a role (main.c checks at start that every role has one). */
static const pol_t *role_policy(shm_role_t role)
{
    return pol_get(dp.cfg.policy[role]);
}

bool dp_wants_prompt(shm_role_t role)
{
    return pol_needs(role_policy(role), POL_NEEDS_PROMPT);
}

bool dp_wants_tokens(shm_role_t role, const pol_prompt_t *prompt)
{
    return dp_tokenizer_enabled() && prompt->len && pol_needs(role_policy(role), POL_NEEDS_TOKENS);
}

static bool excluded(uint16_t slot, const uint16_t *exclude, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (exclude[i] == slot)
            return true;
    return false;
}

static void copy_choice(const shm_instance_t *in, uint16_t slot, dp_choice_t *out)
{
    out->slot = slot;
    out->generation = shm_slot_generation(&dp.seg, slot);
    out->port = in->port;
    memcpy(out->host, in->host, sizeof(out->host));
    memcpy(out->url, in->url, sizeof(out->url));
}

/* The published view by slot, built once per view and thread (dp_view_cache_t). */
static const dp_view_cache_t *view_cache(dp_thread_t *t, shm_role_t role, const shm_view_t *v)
{
    dp_view_cache_t *x = &t->views[role];
    if (x->view != v || x->version != v->version || x->count != v->count) {
        uint32_t n = shm_view_len(v);
        pol_slots_build(&x->by_slot, v->slot, n);
        x->clean = n == v->count;
        for (uint32_t i = 0; i < n; i++)
            x->clean &= v->slot[i] < SHM_MAX_INSTANCES;
        x->view = v;
        x->version = v->version;
        x->count = v->count;
    }
    return x;
}

int dp_select(dp_thread_t *t, shm_role_t role, const pol_prompt_t *prompt, const dp_model_t *model,
              const uint16_t *exclude, size_t nexclude, dp_choice_t *out)
{
    uint16_t cand[SHM_VIEW_MAX_SLOTS];
    const uint16_t *slots = cand;
    const pol_slots_t *by_slot = NULL; /* a filtered copy: built by the policy if it needs it */
    size_t n = 0;
    int rc = -1;
    shm_read_enter(&dp.seg, t->reader);
    const shm_view_t *v = shm_view(&dp.seg, role);
    const dp_view_cache_t *cache = v ? view_cache(t, role, v) : NULL;
    bool copy = nexclude || (model && model->filter) || (cache && !cache->clean);
    if (v && !copy) { /* the common case: the published view itself, no copy */
        slots = v->slot;
        n = v->count;
        by_slot = &cache->by_slot;
    }
    for (uint32_t i = 0; v && copy && i < shm_view_len(v); i++)
        if (v->slot[i] < SHM_MAX_INSTANCES && !excluded(v->slot[i], exclude, nexclude) &&
            dp_model_accepts(model, v->slot[i]))
            cand[n++] = v->slot[i];
    if (n) {
        /* the Go router's estimate: 2 x code points, for the roles that process the prompt; a
         * policy may charge its own prediction instead (pol_ctx_t.charge) */
        pol_charge_t charge = {.tokens =
                                   role == SHM_ROLE_DECODE || !prompt ? 0 : 2 * (uint64_t)prompt->codepoints};
        pol_ctx_t c = {.seg = &dp.seg,
                       .cfg = &dp.cfg,
                       .role = role,
                       .slots = slots,
                       .n = n,
                       .by_slot = by_slot,
                       .prompt = prompt,
                       .rng = &t->rng,
                       .charge = &charge};
        uint16_t slot = slots[role_policy(role)->ops->select(&c)];
        copy_choice(shm_instance(&dp.seg, slot), slot, out);
        out->tokens = charge.tokens;
        out->prefill = charge.prefill < charge.tokens ? charge.prefill : charge.tokens;
        shm_dp_inc(&dp.seg, dp.row, slot, out->tokens);
        rc = 0;
    }
    shm_read_exit(&dp.seg, t->reader);
    return rc;
}

void dp_prefill_done(dp_choice_t *c)
{
    if (!c->prefill)
        return;
    shm_dp_dec(&dp.seg, dp.row, c->slot, c->generation, false, c->prefill);
    c->tokens -= c->prefill;
    c->prefill = 0;
}

void dp_release(const dp_choice_t *c)
{
    shm_dp_dec(&dp.seg, dp.row, c->slot, c->generation, true, c->tokens);
}

void dp_count_status(const dp_choice_t *c, unsigned status)
{
    shm_instance_t *in = shm_instance(&dp.seg, c->slot);
    if (shm_slot_generation(&dp.seg, c->slot) != c->generation)
        return;
    shm_count_status(in, status);
    if (!status)
        shm_count_failure(in);
}

void dp_for_each_slot(dp_thread_t *t, bool with_retired, dp_slot_fn f, void *arg)
{
    shm_read_enter(&dp.seg, t->reader);
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        const shm_instance_t *in = shm_instance(&dp.seg, i);
        bool registered = shm_slot_is_live(in) || (with_retired && shm_slot_state_of(in) == SHM_SLOT_RETIRED);
        if (registered && in->role < SHM_ROLE_COUNT)
            f(in, i, arg);
    }
    shm_read_exit(&dp.seg, t->reader);
}
