/*
 * tools/fd-sim/engine.c - the engine model of fd-sim (see engine.h for the rules it follows).
 * Pure: no clock, no I/O, no locks; the caller serialises calls and passes the time in.
 *
 * KV accounting: every block is either free, reserved by a running request without a hash
 * (`used_own`), or an entry of the prefix cache (a hash, a count of running requests pinning it,
 * and a place in the LRU list when that count is 0). Free + evictable is what a new request can
 * get. The cache is an open-addressing table (linear probing, backward-shift deletion) over a
 * fixed array of kv_blocks entries, so it never allocates after creation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fd-sim/engine.h"

#define NIL UINT32_MAX

/* ---- hashing ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t word_hash(const char *w, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)w[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A block starts from the previous block's hash, so equal blocks after different prefixes differ. */
static uint64_t block_seed(const sim_chain_t *c)
{
    return mix64((c->nblocks ? c->blocks[c->nblocks - 1] : 0) + 0x9e3779b97f4a7c15ULL);
}

void sim_chain_init(sim_chain_t *c, unsigned block_tokens)
{
    memset(c, 0, sizeof(*c));
    c->block_tokens = block_tokens ? block_tokens : 1;
    c->state = block_seed(c);
}

int sim_chain_feed(sim_chain_t *c, const char *word, size_t len)
{
    c->state = mix64(c->state ^ word_hash(word, len));
    c->tokens++;
    if (c->tokens % c->block_tokens != 0)
        return 0;
    if (c->nblocks == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        uint64_t *b = realloc(c->blocks, cap * sizeof(*b));
        if (!b)
            return -1;
        c->blocks = b;
        c->cap = cap;
    }
    c->blocks[c->nblocks++] = c->state;
    c->state = block_seed(c);
    return 0;
}

int sim_chain_feed_text(sim_chain_t *c, const char *text, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r')))
            i++;
        size_t start = i;
        while (i < len && !(text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r')))
            i++;
        if (i > start && sim_chain_feed(c, text + start, i - start) != 0)
            return -1;
    }
    return 0;
}

void sim_chain_free(sim_chain_t *c)
{
    free(c->blocks);
    c->blocks = NULL;
    c->nblocks = c->cap = 0;
}

/* ---- requests and the engine ---- */

struct sim_ereq {
    sim_ereq_t *prev, *next; /* in the waiting or the running list */
    sim_ereq_state_t state;
    int owner;
    bool aborted;
    unsigned long step; /* the step it takes part in */
    unsigned prompt_tokens, out_tokens, generated, cached_tokens;
    unsigned pinned; /* leading prompt blocks it pins in the cache */
    unsigned own;    /* reserved blocks not (yet) in the cache */
    sim_chain_t chain;
    double arrival_ms, admitted_ms, first_token_ms, done_ms;
};

typedef struct {
    sim_ereq_t *head, *tail;
    unsigned n;
} req_list_t;

typedef struct {
    uint64_t hash;
    unsigned ref;            /* running requests pinning it */
    uint32_t lru_prev, next; /* next: LRU successor, or free-list link */
} entry_t;

typedef enum { STEP_IDLE, STEP_PREFILL, STEP_DECODE } step_kind_t;

struct sim_engine {
    sim_engine_params_t p;
    sim_engine_progress_cb cb;
    void *cb_ctx;
    double now;
    req_list_t waiting, running;
    step_kind_t step_kind;
    unsigned long step_id;
    double step_end;

    entry_t *entries;
    uint32_t free_entry; /* free-list head */
    uint32_t *slots;     /* entry index + 1, 0 = empty */
    size_t nslots;       /* power of two */
    uint32_t lru_head, lru_tail;
    unsigned n_entries, lru_count, used_own;
    unsigned long long prompt_total, cached_total, evicted_total;
};

static void list_push(req_list_t *l, sim_ereq_t *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->n++;
}

static void list_remove(req_list_t *l, sim_ereq_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
    l->n--;
}

/* ---- the prefix cache ---- */

static unsigned free_blocks(const sim_engine_t *e)
{
    return e->p.kv_blocks - e->n_entries - e->used_own;
}

static size_t slot_of(const sim_engine_t *e, uint64_t h)
{
    return (size_t)mix64(h) & (e->nslots - 1);
}

static uint32_t lookup(const sim_engine_t *e, uint64_t h)
{
    for (size_t i = slot_of(e, h);; i = (i + 1) & (e->nslots - 1)) {
        uint32_t s = e->slots[i];
        if (s == 0)
            return NIL;
        if (e->entries[s - 1].hash == h)
            return s - 1;
    }
}

static void lru_unlink(sim_engine_t *e, uint32_t idx)
{
    entry_t *en = &e->entries[idx];
    if (en->lru_prev != NIL)
        e->entries[en->lru_prev].next = en->next;
    else
        e->lru_head = en->next;
    if (en->next != NIL)
        e->entries[en->next].lru_prev = en->lru_prev;
    else
        e->lru_tail = en->lru_prev;
    e->lru_count--;
}

static void lru_push_head(sim_engine_t *e, uint32_t idx)
{
    entry_t *en = &e->entries[idx];
    en->lru_prev = NIL;
    en->next = e->lru_head;
    if (e->lru_head != NIL)
        e->entries[e->lru_head].lru_prev = idx;
    else
        e->lru_tail = idx;
    e->lru_head = idx;
    e->lru_count++;
}

static void pin(sim_engine_t *e, uint32_t idx)
{
    if (e->entries[idx].ref++ == 0)
        lru_unlink(e, idx);
}

static void unpin(sim_engine_t *e, uint32_t idx)
{
    if (--e->entries[idx].ref == 0)
        lru_push_head(e, idx);
}

/* New entry for h, pinned `ref` times (0: evictable, most recently used). Takes a free block. */
static uint32_t insert(sim_engine_t *e, uint64_t h, unsigned ref)
{
    uint32_t idx = e->free_entry;
    entry_t *en = &e->entries[idx];
    e->free_entry = en->next;
    en->hash = h;
    en->ref = ref;
    size_t i = slot_of(e, h);
    while (e->slots[i] != 0)
        i = (i + 1) & (e->nslots - 1);
    e->slots[i] = idx + 1;
    e->n_entries++;
    if (ref == 0)
        lru_push_head(e, idx);
    return idx;
}

/* Remove the table slot of h, shifting later entries of its probe run back (no tombstones). */
static void table_delete(sim_engine_t *e, uint64_t h)
{
    size_t mask = e->nslots - 1, i = slot_of(e, h);
    while (e->entries[e->slots[i] - 1].hash != h)
        i = (i + 1) & mask;
    for (size_t j = (i + 1) & mask; e->slots[j] != 0; j = (j + 1) & mask) {
        size_t home = slot_of(e, e->entries[e->slots[j] - 1].hash);
        /* j's entry may fill the hole at i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            e->slots[i] = e->slots[j];
            i = j;
        }
    }
    e->slots[i] = 0;
}

static void evict_lru(sim_engine_t *e)
{
    uint32_t idx = e->lru_tail;
    lru_unlink(e, idx);
    table_delete(e, e->entries[idx].hash);
    e->entries[idx].next = e->free_entry;
    e->free_entry = idx;
    e->n_entries--;
    e->evicted_total++;
}

/* ---- admission and release ---- */

static unsigned blocks_for(const sim_engine_t *e, unsigned long tokens)
{
    return (unsigned)((tokens + e->p.block_tokens - 1) / e->p.block_tokens);
}

/* Reserve the blocks of r, reusing its cached prefix; false when the cache cannot hold it now. */
static bool admit(sim_engine_t *e, sim_ereq_t *r)
{
    unsigned reusable = r->prompt_tokens ? (r->prompt_tokens - 1) / e->p.block_tokens : 0;
    unsigned hits = 0, hits_evictable = 0;
    for (; hits < reusable; hits++) {
        uint32_t idx = lookup(e, r->chain.blocks[hits]);
        if (idx == NIL)
            break;
        if (e->entries[idx].ref == 0)
            hits_evictable++;
    }
    unsigned need = blocks_for(e, (unsigned long)r->prompt_tokens + r->out_tokens) - hits;
    if (need > free_blocks(e) + e->lru_count - hits_evictable)
        return false;
    for (unsigned i = 0; i < hits; i++)
        pin(e, lookup(e, r->chain.blocks[i]));
    while (free_blocks(e) < need)
        evict_lru(e);
    e->used_own += need;
    r->own = need;
    r->pinned = hits;
    r->cached_tokens = hits * e->p.block_tokens;
    return true;
}

/* Prefill done: the full prompt blocks join the cache, pinned by r (or shared if already there). */
static void cache_prompt(sim_engine_t *e, sim_ereq_t *r)
{
    for (unsigned i = r->pinned; i < r->chain.nblocks; i++) {
        uint64_t h = r->chain.blocks[i];
        uint32_t idx = lookup(e, h);
        if (idx != NIL)
            pin(e, idx);
        else
            insert(e, h, 1);
        r->own--;
        e->used_own--;
    }
    r->pinned = (unsigned)r->chain.nblocks;
}

/* Continue the chain with the generated words so their full blocks have hashes too. */
static void hash_output(sim_ereq_t *r)
{
    char word[24];
    for (unsigned i = 0; i < r->generated; i++) {
        int n = snprintf(word, sizeof(word), "tok%u", i);
        if (sim_chain_feed(&r->chain, word, (size_t)n) != 0)
            return; /* out of memory: the output simply is not cached */
    }
}

/* Give back r's blocks: computed full blocks stay cached as evictable, the sequence's start last. */
static void release_blocks(sim_engine_t *e, sim_ereq_t *r, bool prefilled)
{
    if (prefilled) {
        unsigned first_out = r->pinned;
        hash_output(r);
        for (size_t i = r->chain.nblocks; i-- > first_out;) {
            uint32_t idx = lookup(e, r->chain.blocks[i]);
            if (idx == NIL && r->own > 0) {
                insert(e, r->chain.blocks[i], 0);
                r->own--;
                e->used_own--;
            } else if (idx != NIL && e->entries[idx].ref == 0) {
                lru_unlink(e, idx);
                lru_push_head(e, idx);
            }
        }
    }
    for (unsigned i = r->pinned; i-- > 0;)
        unpin(e, lookup(e, r->chain.blocks[i]));
    r->pinned = 0;
    e->used_own -= r->own;
    r->own = 0;
}

static void finish(sim_engine_t *e, sim_ereq_t *r, double t)
{
    bool prefilled = r->first_token_ms >= 0;
    list_remove(&e->running, r);
    release_blocks(e, r, prefilled);
    r->state = SIM_EREQ_DONE;
    r->done_ms = t;
}

/* ---- steps ---- */

static void start_step(sim_engine_t *e, double t)
{
    e->step_id++;
    unsigned long uncached = 0;
    unsigned admitted = 0;
    while (e->waiting.head && e->running.n < e->p.max_batch && admit(e, e->waiting.head)) {
        sim_ereq_t *r = e->waiting.head;
        list_remove(&e->waiting, r);
        list_push(&e->running, r);
        r->state = SIM_EREQ_PREFILL;
        r->admitted_ms = t;
        r->step = e->step_id;
        uncached += r->prompt_tokens - r->cached_tokens;
        e->prompt_total += r->prompt_tokens;
        e->cached_total += r->cached_tokens;
        admitted++;
    }
    if (admitted) {
        e->step_kind = STEP_PREFILL;
        e->step_end = t + sim_engine_prefill_ms(e, uncached);
        return;
    }
    unsigned decoding = 0;
    for (sim_ereq_t *r = e->running.head; r; r = r->next) {
        if (r->state == SIM_EREQ_DECODE) {
            r->step = e->step_id;
            decoding++;
        }
    }
    if (decoding) {
        e->step_kind = STEP_DECODE;
        e->step_end = t + e->p.decode_step_ms + e->p.decode_step_ms_per_seq * decoding;
    } else {
        e->step_kind = STEP_IDLE;
        e->step_end = INFINITY;
    }
}

static void step_done_for(sim_engine_t *e, sim_ereq_t *r, double t)
{
    if (e->step_kind == STEP_PREFILL) {
        cache_prompt(e, r);
        r->first_token_ms = t;
        r->generated = r->out_tokens > 0 ? 1 : 0;
        r->state = SIM_EREQ_DECODE;
    } else {
        r->generated++;
    }
    if (r->generated >= r->out_tokens)
        finish(e, r, t);
    if (e->cb)
        e->cb(e->cb_ctx, r->owner);
}

static void finish_step(sim_engine_t *e, double t)
{
    sim_ereq_t *next;
    for (sim_ereq_t *r = e->running.head; r; r = next) {
        next = r->next;
        if (r->step == e->step_id)
            step_done_for(e, r, t);
    }
}

void sim_engine_advance(sim_engine_t *e, double now_ms)
{
    if (now_ms > e->now)
        e->now = now_ms;
    while (e->step_kind != STEP_IDLE && e->step_end <= e->now) {
        double t = e->step_end;
        finish_step(e, t);
        start_step(e, t);
    }
}

/* ---- public API ---- */

sim_engine_t *sim_engine_new(const sim_engine_params_t *p, sim_engine_progress_cb cb, void *ctx)
{
    if (!(p->prefill_tokens_per_sec > 0) || !(p->decode_step_ms >= 0) || !(p->decode_step_ms_per_seq >= 0) ||
        p->max_batch < 1 || p->kv_blocks < 1 || p->kv_blocks > SIM_ENGINE_MAX_BLOCKS || p->block_tokens < 1 ||
        p->block_tokens > SIM_ENGINE_MAX_BLOCK_TOKENS)
        return NULL;
    sim_engine_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->p = *p;
    e->cb = cb;
    e->cb_ctx = ctx;
    e->step_end = INFINITY;
    e->nslots = 2;
    while (e->nslots < 2 * (size_t)p->kv_blocks)
        e->nslots *= 2;
    e->entries = calloc(p->kv_blocks, sizeof(*e->entries));
    e->slots = calloc(e->nslots, sizeof(*e->slots));
    if (!e->entries || !e->slots) {
        sim_engine_free(e);
        return NULL;
    }
    for (uint32_t i = 0; i < p->kv_blocks; i++)
        e->entries[i].next = i + 1 < p->kv_blocks ? i + 1 : NIL;
    e->free_entry = 0;
    e->lru_head = e->lru_tail = NIL;
    return e;
}

static void free_list(req_list_t *l)
{
    sim_ereq_t *next;
    for (sim_ereq_t *r = l->head; r; r = next) {
        next = r->next;
        sim_chain_free(&r->chain);
        free(r);
    }
}

void sim_engine_free(sim_engine_t *e)
{
    if (!e)
        return;
    free_list(&e->waiting);
    free_list(&e->running);
    free(e->entries);
    free(e->slots);
    free(e);
}

bool sim_engine_fits(const sim_engine_t *e, unsigned long prompt_tokens, unsigned out_tokens)
{
    return prompt_tokens <= UINT32_MAX / 2 && blocks_for(e, prompt_tokens + out_tokens) <= e->p.kv_blocks;
}

sim_ereq_t *sim_engine_submit(sim_engine_t *e, double now_ms, sim_chain_t *prompt, unsigned out_tokens,
                              int owner)
{
    if (prompt->block_tokens != e->p.block_tokens || !sim_engine_fits(e, prompt->tokens, out_tokens))
        return NULL;
    sim_ereq_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    sim_engine_advance(e, now_ms);
    r->chain = *prompt;
    sim_chain_init(prompt, prompt->block_tokens);
    r->owner = owner;
    r->state = SIM_EREQ_WAITING;
    r->prompt_tokens = (unsigned)r->chain.tokens;
    r->out_tokens = out_tokens;
    r->arrival_ms = e->now;
    r->admitted_ms = r->first_token_ms = r->done_ms = -1;
    list_push(&e->waiting, r);
    if (e->step_kind == STEP_IDLE)
        start_step(e, e->now);
    return r;
}

double sim_engine_next_event(const sim_engine_t *e)
{
    return e->step_kind == STEP_IDLE ? INFINITY : e->step_end;
}

void sim_engine_abort(sim_engine_t *e, sim_ereq_t *r, double now_ms)
{
    sim_engine_advance(e, now_ms);
    if (r->state == SIM_EREQ_DONE)
        return;
    r->aborted = true;
    if (r->state == SIM_EREQ_WAITING) {
        list_remove(&e->waiting, r);
        r->state = SIM_EREQ_DONE;
        r->done_ms = e->now;
        return;
    }
    finish(e, r, e->now);
}

void sim_engine_release(sim_engine_t *e, sim_ereq_t *r, double now_ms)
{
    sim_engine_abort(e, r, now_ms);
    sim_chain_free(&r->chain);
    free(r);
}

void sim_engine_info(const sim_ereq_t *r, sim_ereq_info_t *out)
{
    out->state = r->state;
    out->prompt_tokens = r->prompt_tokens;
    out->cached_tokens = r->cached_tokens;
    out->out_tokens = r->out_tokens;
    out->generated = r->generated;
    out->aborted = r->aborted;
    out->arrival_ms = r->arrival_ms;
    out->admitted_ms = r->admitted_ms;
    out->first_token_ms = r->first_token_ms;
    out->done_ms = r->done_ms;
}

void sim_engine_load(const sim_engine_t *e, sim_engine_load_t *out)
{
    out->running = e->running.n;
    out->waiting = e->waiting.n;
    out->free_blocks = free_blocks(e) + e->lru_count;
    out->cached_blocks = e->n_entries;
    out->prompt_tokens_total = e->prompt_total;
    out->cached_tokens_total = e->cached_total;
    out->evicted_blocks_total = e->evicted_total;
}

double sim_engine_prefill_ms(const sim_engine_t *e, unsigned long n)
{
    return (double)n * 1000.0 / e->p.prefill_tokens_per_sec;
}

void sim_engine_reset(sim_engine_t *e, bool flush)
{
    e->prompt_total = e->cached_total = e->evicted_total = 0;
    while (flush && e->lru_count > 0)
        evict_lru(e);
    if (flush)
        e->evicted_total = 0;
}
