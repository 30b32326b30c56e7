/*
 * tools/fdctl/explain.c - `fdctl explain --body FILE`: what the router would do with that
 * request body right now, without doing it. It parses the body as the data plane does, takes the
 * published candidates of the role that selects first (prefill in splitwise mode, else mixed),
 * and runs the configured policy's dry run (dataplane/policy/registry.h): each candidate's load,
 * queued work, cached part, predicted cost and why it won or lost (near-best or not, within the
 * bounds or not), the imbalance test's figures and the branch that decided, and the instance
 * that would be chosen. Nothing in shared memory changes:
 * no counter, no tree insert, no round-robin turn. The tokenizer service is not asked; prompts
 * are hashed by code points here.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/instance_info.h"
#include "dataplane/policy/registry.h"
#include "dataplane/request.h"
#include "tools/fdctl/fdctl.h"

#define MAX_BODY (32u << 20)

static char *read_body(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fdctl: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MAX_BODY + 1);
    *len = buf ? fread(buf, 1, MAX_BODY + 1, f) : 0;
    fclose(f);
    if (buf && *len > MAX_BODY) {
        fprintf(stderr, "fdctl: %s: larger than %u bytes\n", path, MAX_BODY);
        free(buf);
        return NULL;
    }
    return buf;
}

typedef struct {
    shm_config_t cfg;
    shm_fleet_t fleet; /* the control plane's verdict when the decision was explained */
    shm_role_t role;
    const pol_t *pol;
    uint16_t slots[SHM_VIEW_MAX_SLOTS];
    char urls[SHM_VIEW_MAX_SLOTS][SHM_URL_LEN];
    pol_cand_info_t cand[SHM_VIEW_MAX_SLOTS];
    size_t n;
    pol_explain_t ex;
} explain_t;

static const char *const fleet_text[] = {
    [SHM_FLEET_UNKNOWN] = "unknown (no scrape of the instances has shown traffic yet)",
    [SHM_FLEET_ALONE] = "alone (the instances report this router's requests only)",
    [SHM_FLEET_SHARED] = "shared (the instances report requests from other senders)",
};

static void print_text(const explain_t *e, const dp_body_t *b)
{
    printf("role           %s, policy %s\n", fd_role_name(e->role), e->pol->name);
    printf("prompt         %zu code points%s\n", b->prompt.codepoints,
           pol_needs(e->pol, POL_NEEDS_PROMPT) ? "" : " (not weighed)");
    printf("decided by     %s\n", e->ex.branch);
    if (pol_needs(e->pol, POL_NEEDS_TREE)) {
        printf("blocks         %zu of %u tokens, %zu matched the tree\n", e->ex.blocks,
               e->cfg.cache_block_size, e->ex.matched);
        if (e->cfg.balance_abs_threshold < 0 && e->cfg.balance_rel_threshold < 0)
            printf("imbalance      loads %llu..%llu: no test (balance thresholds unset)\n",
                   (unsigned long long)e->ex.min_load, (unsigned long long)e->ex.max_load);
        else
            printf("imbalance      loads %llu..%llu: %s (abs > %g and rel > %g; unset: the Go defaults)\n",
                   (unsigned long long)e->ex.min_load, (unsigned long long)e->ex.max_load,
                   e->ex.imbalanced ? "imbalanced" : "balanced", e->cfg.balance_abs_threshold,
                   e->cfg.balance_rel_threshold);
        printf("cost           (uncached + copy of what another holds) x %g + queued x %g, in units of %llu\n"
               "               near-best: within what the best still prefills, and within the bounds\n",
               e->cfg.hit_ratio_weight, e->cfg.load_balance_weight, (unsigned long long)e->ex.units);
        printf("fleet          %s\n", fleet_text[e->fleet]);
        if (e->ex.new_by_hash)
            printf("slack          %.1f (new prefixes by hash: one held nowhere tolerates 1 + 8 x reuse %.2f "
                   "prefills)\n",
                   e->ex.slack, e->ex.reuse);
        else
            printf("slack          %.1f (new prefixes by load: one held nowhere tolerates one prefill; reuse "
                   "%.2f)\n",
                   e->ex.slack, e->ex.reuse);
        if (e->ex.sticky)
            printf("sticky         the prefix is not hot: it stays with its holders (no copy) while new "
                   "prefixes go by hash\n");
        if (e->ex.order)
            printf("order          %s\n", e->ex.order);
    }
    printf("\n  %-42s %8s %8s %8s %5s %11s %s\n", "CANDIDATE", "LOAD", "QUEUED", "CACHED", "HIT%", "COST",
           "WHY");
    for (size_t i = 0; i < e->n; i++) {
        const pol_cand_info_t *c = &e->cand[i];
        const char *why = !pol_needs(e->pol, POL_NEEDS_TREE) || e->ex.imbalanced ? ""
                          : c->eligible                                          ? "near-best"
                          : c->weight                                            ? "near-best, over a bound"
                                                                                 : "too costly";
        printf("%s %-42s %8llu %8llu %8llu %5u %11.1f %s\n", (long)i == e->ex.choice ? "*" : " ", e->urls[i],
               (unsigned long long)c->load, (unsigned long long)c->tokens, (unsigned long long)c->cached,
               c->hit, c->score, why);
    }
    if (e->ex.choice < 0)
        printf("\nchoice         random among the candidates\n");
    else
        printf("\nchoice         %s\n", e->urls[e->ex.choice]);
}

static json_object *to_json(const explain_t *e, const dp_body_t *b)
{
    json_object *o = json_object_new_object(), *list = json_object_new_array();
    json_object_object_add(o, "role", json_object_new_string(fd_role_name(e->role)));
    json_object_object_add(o, "policy", json_object_new_string(e->pol->name));
    json_object_object_add(o, "prompt_codepoints", json_object_new_int64((int64_t)b->prompt.codepoints));
    json_object_object_add(o, "branch", json_object_new_string(e->ex.branch));
    json_object_object_add(o, "blocks", json_object_new_int64((int64_t)e->ex.blocks));
    json_object_object_add(o, "matched_blocks", json_object_new_int64((int64_t)e->ex.matched));
    json_object_object_add(o, "min_load", json_object_new_int64((int64_t)e->ex.min_load));
    json_object_object_add(o, "max_load", json_object_new_int64((int64_t)e->ex.max_load));
    json_object_object_add(o, "imbalanced", json_object_new_boolean(e->ex.imbalanced));
    json_object_object_add(o, "prompt_units", json_object_new_int64((int64_t)e->ex.units));
    json_object_object_add(o, "new_prefix_placement",
                           json_object_new_string(e->ex.new_by_hash ? "hash" : "load"));
    json_object_object_add(o, "fleet", json_object_new_string(shm_fleet_name(e->fleet)));
    json_object_object_add(o, "reuse", json_object_new_double(e->ex.reuse));
    json_object_object_add(o, "slack", json_object_new_double(e->ex.slack));
    json_object_object_add(o, "order", e->ex.order ? json_object_new_string(e->ex.order) : NULL);
    json_object_object_add(o, "sticky", json_object_new_boolean(e->ex.sticky));
    for (size_t i = 0; i < e->n; i++) {
        json_object *c = json_object_new_object();
        json_object_object_add(c, "url", json_object_new_string(e->urls[i]));
        json_object_object_add(c, "load", json_object_new_int64((int64_t)e->cand[i].load));
        json_object_object_add(c, "tokens", json_object_new_int64((int64_t)e->cand[i].tokens));
        json_object_object_add(c, "hit_ratio", json_object_new_int((int)e->cand[i].hit));
        json_object_object_add(c, "cached", json_object_new_int64((int64_t)e->cand[i].cached));
        json_object_object_add(c, "score", json_object_new_double(e->cand[i].score));
        json_object_object_add(c, "near_best",
                               json_object_new_boolean(e->cand[i].eligible || e->cand[i].weight));
        json_object_object_add(c, "within_bounds", json_object_new_boolean(e->cand[i].eligible));
        json_object_object_add(c, "rendezvous_weight", json_object_new_uint64(e->cand[i].weight));
        json_object_array_add(list, c);
    }
    json_object_object_add(o, "candidates", list);
    json_object_object_add(o, "choice",
                           e->ex.choice < 0 ? NULL : json_object_new_string(e->urls[e->ex.choice]));
    return o;
}

static int explain(explain_t *e, const dp_body_t *b, shm_seg_t *seg, int reader)
{
    uint64_t rng = 1;
    shm_read_enter(seg, reader);
    const shm_view_t *v = shm_view(seg, e->role);
    for (uint32_t i = 0; v && i < shm_view_len(v) && e->n < SHM_VIEW_MAX_SLOTS; i++)
        if (v->slot[i] < SHM_MAX_INSTANCES) { /* out of range only in a corrupt segment */
            e->slots[e->n] = v->slot[i];
            memcpy(e->urls[e->n++], shm_instance(seg, v->slot[i])->url, SHM_URL_LEN);
        }
    if (e->n) {
        pol_ctx_t c = {.seg = seg,
                       .cfg = &e->cfg,
                       .role = e->role,
                       .slots = e->slots,
                       .n = e->n,
                       .prompt = &b->prompt,
                       .rng = &rng};
        e->ex.cand = e->cand;
        pol_explain(e->pol, &c, &e->ex);
    }
    shm_read_exit(seg, reader);
    if (!e->n)
        fprintf(stderr, "fdctl: no selectable %s instance: the router would answer with an error\n",
                fd_role_name(e->role));
    return e->n ? 0 : 1;
}

/* The configuration and the policy of the role that selects first; false with a message. */
static bool setup(explain_t *e, shm_seg_t *seg)
{
    if (!shm_config_read(seg, &e->cfg)) {
        fprintf(stderr, "fdctl: the configuration in shared memory is being rewritten; try again\n");
        return false;
    }
    e->fleet = shm_fleet(seg);
    e->role = e->cfg.splitwise ? SHM_ROLE_PREFILL : SHM_ROLE_MIXED;
    if (!(e->pol = pol_get(e->cfg.policy[e->role]))) {
        fprintf(stderr, "fdctl: unknown policy %u in shared memory\n", e->cfg.policy[e->role]);
        return false;
    }
    return true;
}

int fdctl_cmd_explain(bool json, const char *body_path, shm_seg_t *seg, int reader)
{
    size_t len;
    char *body = read_body(body_path, &len);
    explain_t *e = calloc(1, sizeof *e);
    int rc = 1;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    dp_body_t b;
    if (!body || !e || !setup(e, seg)) {
        /* reported */
    } else if (dp_parse_body(&pool, body, len, true, &b) != 0) {
        fprintf(stderr, "fdctl: %s: not a JSON object (the router would answer 400 Invalid JSON format)\n",
                body_path);
    } else if ((rc = explain(e, &b, seg, reader)) == 0) {
        json_object *o = json ? to_json(e, &b) : NULL;
        if (o)
            printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
        else
            print_text(e, &b);
        json_object_put(o);
    }
    h2o_mem_clear_pool(&pool);
    free(body);
    free(e);
    return rc;
}
