/*
 * shm/models.c - the models each instance serves (shm_models_t in its slot) and the header's
 * index of every model id the fleet serves (shm_models_index_t), both seqcount-protected.
 *
 * The control plane is the only writer (controlplane/models_poll.c, on its one thread). Readers
 * (data planes on the request path, fdctl) never lock: a read that keeps meeting a write in
 * progress gives up and answers as if the models were unknown, which accepts every model, so a
 * CP that died mid-write can never make the router refuse a request.
 */
#include <stdio.h>
#include <string.h>

#include "shm/shm.h"

#define READ_TRIES 64

uint64_t shm_model_hash(const char *id, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1; /* 0 never names a model */
}

/* Seqcount write side; "| 1" keeps the count odd if a previous writer died mid-write. */
static uint32_t write_begin(uint32_t *seq)
{
    uint32_t s = __atomic_load_n(seq, __ATOMIC_RELAXED) | 1u;
    __atomic_store_n(seq, s, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return s;
}

static void write_end(uint32_t *seq, uint32_t s)
{
    __atomic_store_n(seq, s + 1, __ATOMIC_RELEASE);
}

void shm_models_store(shm_instance_t *in, const shm_model_info_t *models, unsigned n, uint64_t at_ms)
{
    shm_models_t *m = &in->models;
    if (n > SHM_INSTANCE_MODELS)
        n = SHM_INSTANCE_MODELS;
    uint32_t s = write_begin(&m->seq);
    for (unsigned i = 0; i < n; i++) {
        snprintf(m->id[i], sizeof(m->id[i]), "%s", models[i].id);
        snprintf(m->owned_by[i], sizeof(m->owned_by[i]), "%s", models[i].owned_by);
        m->created[i] = models[i].created;
        m->hash[i] = shm_model_hash(m->id[i], strlen(m->id[i]));
    }
    m->count = n;
    m->at_ms = at_ms;
    m->known = 1;
    write_end(&m->seq, s);
}

void shm_models_forget(shm_instance_t *in)
{
    shm_models_t *m = &in->models;
    uint32_t s = write_begin(&m->seq);
    m->known = 0;
    m->count = 0;
    write_end(&m->seq, s);
}

int shm_models_load(const shm_instance_t *in, shm_model_info_t *out, unsigned max)
{
    const shm_models_t *m = &in->models;
    for (int t = 0; t < READ_TRIES; t++) {
        uint32_t before = __atomic_load_n(&m->seq, __ATOMIC_ACQUIRE);
        if (before & 1u)
            continue;
        uint32_t known = m->known, n = m->count;
        if (n > SHM_INSTANCE_MODELS)
            n = SHM_INSTANCE_MODELS;
        if (n > max)
            n = max;
        for (unsigned i = 0; known && i < n; i++) {
            memcpy(out[i].id, m->id[i], sizeof(out[i].id));
            memcpy(out[i].owned_by, m->owned_by[i], sizeof(out[i].owned_by));
            out[i].id[sizeof(out[i].id) - 1] = out[i].owned_by[sizeof(out[i].owned_by) - 1] = '\0';
            out[i].created = m->created[i];
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&m->seq, __ATOMIC_RELAXED) != before)
            continue;
        return known ? (int)n : -1;
    }
    return -1;
}

bool shm_models_accepts(const shm_instance_t *in, uint64_t hash, const char *id, size_t len)
{
    const shm_models_t *m = &in->models;
    for (int t = 0; t < READ_TRIES; t++) {
        uint32_t before = __atomic_load_n(&m->seq, __ATOMIC_ACQUIRE);
        if (before & 1u)
            continue;
        bool accepts = !m->known;
        uint32_t n = m->count < SHM_INSTANCE_MODELS ? m->count : SHM_INSTANCE_MODELS;
        for (uint32_t i = 0; !accepts && i < n; i++)
            accepts = m->hash[i] == hash && len < SHM_MODEL_ID_LEN && memcmp(m->id[i], id, len) == 0 &&
                      m->id[i][len] == '\0';
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&m->seq, __ATOMIC_RELAXED) == before)
            return accepts;
    }
    return true;
}

static bool index_has(const shm_models_index_t *x, uint64_t hash)
{
    for (uint32_t i = 0; i < x->count && i < SHM_MODELS_INDEX; i++)
        if (x->hash[i] == hash)
            return true;
    return false;
}

void shm_models_index_publish(shm_seg_t *s)
{
    shm_models_index_t next = {0};
    for (unsigned slot = 0; slot < SHM_MAX_INSTANCES; slot++) {
        const shm_instance_t *in = shm_instance(s, slot);
        if (__atomic_load_n(&in->state, __ATOMIC_ACQUIRE) != SHM_SLOT_LIVE)
            continue;
        const shm_models_t *m = &in->models; /* the CP reads what only it writes */
        if (!m->known) {
            next.unknown++;
            continue;
        }
        for (uint32_t i = 0; i < m->count && i < SHM_INSTANCE_MODELS; i++) {
            if (index_has(&next, m->hash[i]))
                continue;
            if (next.count == SHM_MODELS_INDEX)
                next.overflow = 1;
            else
                next.hash[next.count++] = m->hash[i];
        }
    }
    shm_models_index_t *x = &s->hdr->models;
    if (x->count == next.count && x->overflow == next.overflow && x->unknown == next.unknown &&
        memcmp(x->hash, next.hash, sizeof(next.hash[0]) * next.count) == 0 && !(x->seq & 1u))
        return; /* unchanged: readers keep their sequence */
    uint32_t seq = write_begin(&x->seq);
    x->count = next.count;
    x->overflow = next.overflow;
    x->unknown = next.unknown;
    memcpy(x->hash, next.hash, sizeof(next.hash));
    write_end(&x->seq, seq);
}

bool shm_models_index_read(const shm_seg_t *s, shm_models_index_t *out)
{
    const shm_models_index_t *x = &s->hdr->models;
    for (int t = 0; t < READ_TRIES; t++) {
        uint32_t before = __atomic_load_n(&x->seq, __ATOMIC_ACQUIRE);
        if (before & 1u)
            continue;
        out->count = x->count < SHM_MODELS_INDEX ? x->count : SHM_MODELS_INDEX;
        out->overflow = x->overflow;
        out->unknown = x->unknown;
        memcpy(out->hash, x->hash, sizeof(out->hash[0]) * out->count);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&x->seq, __ATOMIC_RELAXED) == before) {
            out->seq = before;
            return true;
        }
    }
    return false;
}

bool shm_models_index_has(const shm_models_index_t *x, uint64_t hash)
{
    return index_has(x, hash);
}
