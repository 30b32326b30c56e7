/*
 * tools/fdctl/cache.c - `fdctl cache`: the shared prefix tree at a glance: its size against its
 * capacity, evictions, the cache-aware decisions by branch, the session stickiness rate, what
 * each instance holds (nodes tagged with it, deepest prefix in blocks), and the largest
 * top-level prefixes with the instances they were sent to (the tags on their first node).
 *
 * The tree is walked without the writer lock, inside a read-side section (as the data planes
 * read it), by shm/radix_walk.h: under load the figures are a consistent-enough picture, not an
 * atomic snapshot.
 * Prefixes are block hashes; the text they stand for is not stored anywhere.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/radix_walk.h"
#include "tools/fdctl/fdctl.h"

#define TOP_PREFIXES 10

typedef struct {
    uint64_t nodes, deepest;
} holding_t;

typedef struct {
    uint64_t first_hash;
    uint32_t node;
    uint64_t nodes, deepest, last_ms;
    uint16_t owners[SHM_RADIX_TAGS]; /* instance slots tagged on the prefix's first node */
    unsigned nowners;
} prefix_t;

/* What a walk of one top-level prefix adds up. */
typedef struct {
    holding_t *hold;
    prefix_t *px;
} walk_ctx_t;

static void visit(const radix_walk_node_t *n, void *arg)
{
    walk_ctx_t *w = arg;
    w->px->nodes++;
    w->px->deepest = n->depth > w->px->deepest ? n->depth : w->px->deepest;
    w->px->last_ms = n->last_ms > w->px->last_ms ? n->last_ms : w->px->last_ms;
    for (unsigned t = 0; t < n->ntags; t++) {
        holding_t *h = &w->hold[n->slot[t]];
        h->nodes++;
        h->deepest = n->depth > h->deepest ? n->depth : h->deepest;
    }
}

/* "url, url" of a prefix's instances (slots not in the snapshot are shown as slot numbers). */
static void owners_text(const prefix_t *px, const fdctl_instance_t *in, unsigned n, char *out, size_t outlen)
{
    size_t len = 0;
    out[0] = '\0';
    for (unsigned k = 0; k < px->nowners && len < outlen; k++) {
        const char *url = NULL;
        for (unsigned i = 0; i < n && !url; i++)
            if (in[i].slot == px->owners[k])
                url = in[i].url;
        len += (size_t)(url ? snprintf(out + len, outlen - len, "%s%s", k ? ", " : "", url)
                            : snprintf(out + len, outlen - len, "%sslot %u", k ? ", " : "", px->owners[k]));
    }
}

static int by_size(const void *a, const void *b)
{
    const prefix_t *x = a, *y = b;
    return x->nodes < y->nodes ? 1 : x->nodes > y->nodes ? -1 : 0;
}

static json_object *u64(uint64_t v)
{
    return json_object_new_int64((int64_t)v);
}

static void print_text(const radix_stats_t *st, const holding_t *hold, const fdctl_instance_t *in, unsigned n,
                       const prefix_t *px, size_t npx, uint64_t now)
{
    printf("prefix tree    %u nodes (+%u waiting for reuse) of %u (%.1f%%), %llu inserts\n", st->nodes,
           st->limbo, st->capacity, st->capacity ? 100.0 * (st->nodes + st->limbo) / st->capacity : 0.0,
           (unsigned long long)st->inserts);
    printf("evictions      %llu by TTL, %llu under pressure\n", (unsigned long long)st->evictions_ttl,
           (unsigned long long)st->evictions_pressure);
    printf("decisions      %llu cache-scored (%llu matched a prefix), %llu fell back for imbalance, %llu for "
           "no prompt\n",
           (unsigned long long)st->decided_by_cache, (unsigned long long)st->lookups_hit,
           (unsigned long long)st->fallback_imbalance, (unsigned long long)st->fallback_no_prompt);
    printf("sessions       %llu of %llu stayed on their instance\n\n", (unsigned long long)st->session_hits,
           (unsigned long long)st->session_requests);
    printf("%-42s %8s %10s\n", "INSTANCE", "NODES", "DEEPEST");
    for (unsigned i = 0; i < n; i++)
        printf("%-42s %8llu %10llu\n", in[i].url, (unsigned long long)hold[in[i].slot].nodes,
               (unsigned long long)hold[in[i].slot].deepest);
    printf("\n%-18s %8s %10s %10s  %s\n", "TOP PREFIX", "NODES", "DEEPEST", "LAST USE", "SENT TO");
    for (size_t i = 0; i < npx; i++) {
        char age[32], owners[SHM_RADIX_TAGS * (SHM_URL_LEN + 2)];
        fdctl_format_duration(age, sizeof age, fdctl_age_ms(now, px[i].last_ms));
        owners_text(&px[i], in, n, owners, sizeof owners);
        printf("%016llx   %8llu %10llu %10s  %s\n", (unsigned long long)px[i].first_hash,
               (unsigned long long)px[i].nodes, (unsigned long long)px[i].deepest, age, owners);
    }
}

static json_object *to_json(const radix_stats_t *st, const holding_t *hold, const fdctl_instance_t *in,
                            unsigned n, const prefix_t *px, size_t npx, uint64_t now)
{
    json_object *o = json_object_new_object(), *tree = json_object_new_object();
    json_object_object_add(tree, "nodes", u64(st->nodes));
    json_object_object_add(tree, "limbo", u64(st->limbo));
    json_object_object_add(tree, "capacity", u64(st->capacity));
    json_object_object_add(tree, "inserts", u64(st->inserts));
    json_object_object_add(tree, "evictions_ttl", u64(st->evictions_ttl));
    json_object_object_add(tree, "evictions_pressure", u64(st->evictions_pressure));
    json_object_object_add(tree, "decided_by_cache", u64(st->decided_by_cache));
    json_object_object_add(tree, "lookups_hit", u64(st->lookups_hit));
    json_object_object_add(tree, "fallback_imbalance", u64(st->fallback_imbalance));
    json_object_object_add(tree, "fallback_no_prompt", u64(st->fallback_no_prompt));
    json_object_object_add(tree, "session_requests", u64(st->session_requests));
    json_object_object_add(tree, "session_hits", u64(st->session_hits));
    json_object_object_add(o, "tree", tree);
    json_object *insts = json_object_new_array();
    for (unsigned i = 0; i < n; i++) {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "url", json_object_new_string(in[i].url));
        json_object_object_add(e, "nodes", u64(hold[in[i].slot].nodes));
        json_object_object_add(e, "deepest_blocks", u64(hold[in[i].slot].deepest));
        json_object_array_add(insts, e);
    }
    json_object_object_add(o, "instances", insts);
    json_object *top = json_object_new_array();
    for (size_t i = 0; i < npx; i++) {
        json_object *e = json_object_new_object();
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)px[i].first_hash);
        json_object_object_add(e, "first_block", json_object_new_string(hex));
        json_object_object_add(e, "nodes", u64(px[i].nodes));
        json_object_object_add(e, "deepest_blocks", u64(px[i].deepest));
        json_object_object_add(e, "last_use_age_ms", u64(fdctl_age_ms(now, px[i].last_ms)));
        json_object *sent = json_object_new_array();
        for (unsigned k = 0; k < px[i].nowners; k++)
            for (unsigned j = 0; j < n; j++)
                if (in[j].slot == px[i].owners[k])
                    json_object_array_add(sent, json_object_new_string(in[j].url));
        json_object_object_add(e, "instances", sent);
        json_object_array_add(top, e);
    }
    json_object_object_add(o, "top_prefixes", top);
    return o;
}

int fdctl_cmd_cache(bool json, shm_seg_t *seg, int reader)
{
    fdctl_instance_t *in = calloc(SHM_MAX_INSTANCES, sizeof *in);
    holding_t *hold = calloc(SHM_MAX_INSTANCES, sizeof *hold);
    radix_stats_t st;
    radix_stats(seg, &st);
    uint32_t max = st.max_nodes + 2;
    uint32_t *stack = calloc(max, sizeof *stack);
    prefix_t *px = calloc(max, sizeof *px);
    if (!in || !hold || !stack || !px) {
        fprintf(stderr, "fdctl: out of memory\n");
        free(in), free(hold), free(stack), free(px);
        return 1;
    }
    unsigned n = fdctl_snapshot_instances(seg, reader, in, SHM_MAX_INSTANCES);
    size_t npx = 0;
    shm_read_enter(seg, reader);
    for (uint32_t c = radix_walk_first_child(seg, SHM_RADIX_ROOT); c && npx < max;
         c = radix_walk_next_sibling(seg, c)) {
        radix_walk_node_t top;
        if (!radix_walk_read(seg, c, &top))
            break;
        px[npx] = (prefix_t){.node = c, .first_hash = top.first_hash, .nowners = top.ntags};
        memcpy(px[npx].owners, top.slot, top.ntags * sizeof top.slot[0]);
        radix_walk(seg, c, stack, max, visit, &(walk_ctx_t){hold, &px[npx]});
        npx++;
    }
    shm_read_exit(seg, reader);
    qsort(px, npx, sizeof *px, by_size);
    npx = npx < TOP_PREFIXES ? npx : TOP_PREFIXES;
    uint64_t now = shm_now_ms();
    if (json) {
        json_object *o = to_json(&st, hold, in, n, px, npx, now);
        printf("%s\n",
               json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
    } else {
        print_text(&st, hold, in, n, px, npx, now);
    }
    free(in), free(hold), free(stack), free(px);
    return 0;
}
