/*
 * dataplane/pools.c - per-thread upstream socket pools (see pools.h for why per thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/log.h"
#include "dataplane/pools.h"

static fd_log_limit_t protocol_log[SHM_MAX_INSTANCES]; /* shared by the threads (atomics) */

void dp_pool_count_protocol_error(const dp_pool_t *pool, const uc_client_t *client, const char *err)
{
    if (!client->protocol_error || pool == NULL || pool->slot < 0 || pool->slot >= SHM_MAX_INSTANCES)
        return;
    shm_instance_t *in = shm_instance(&dp.seg, (unsigned)pool->slot);
    if (shm_slot_generation(&dp.seg, (unsigned)pool->slot) != pool->generation)
        return;
    shm_count_protocol_error(in);
    fd_log_write_limited(&protocol_log[pool->slot], FD_LOG_WARN, __FILE__, __LINE__,
                         "instance %s broke HTTP/1.1: %s", in->url, err);
}

static dp_pool_t *pool_new(dp_thread_t *t, struct sockaddr *sa, socklen_t salen)
{
    dp_pool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    uc_pool_init(&p->up, sa, salen, t->ctx.loop, DP_POOL_IDLE_MS, DP_POOL_MAX_IDLE);
    p->slot = -1;
    return p;
}

static void pool_free(dp_pool_t *p)
{
    uc_pool_dispose(&p->up);
    free(p);
}

dp_pool_t *dp_pool_acquire(dp_thread_t *t, unsigned slot, uint32_t gen, const char *host, uint16_t port)
{
    dp_pool_t *p = t->pools[slot];
    if (p && p->generation != gen) {
        p->stale = 1;
        if (p->refs == 0)
            pool_free(p);
        t->pools[slot] = p = NULL;
    }
    if (!p) {
        struct sockaddr_storage ss;
        socklen_t len;
        if (uc_make_addr(host, port, &ss, &len) != 0) {
            LOG_ERROR("not an IP literal: %s", host);
            return NULL;
        }
        if (!(p = pool_new(t, (struct sockaddr *)&ss, len)))
            return NULL;
        p->slot = (int)slot;
        p->generation = gen;
        t->pools[slot] = p;
    }
    p->refs++;
    return p;
}

dp_pool_t *dp_pool_acquire_addr(dp_thread_t *t, dp_pool_t **slot, struct sockaddr *sa, socklen_t salen)
{
    if (!*slot && !(*slot = pool_new(t, sa, salen)))
        return NULL;
    (*slot)->refs++;
    return *slot;
}

dp_pool_t *dp_pool_acquire_cp(dp_thread_t *t)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", dp.control_socket);
    return dp_pool_acquire_addr(t, &t->cp_pool, (struct sockaddr *)&sun, sizeof(sun));
}

void dp_pool_release(dp_pool_t *p)
{
    if (--p->refs == 0 && p->stale)
        pool_free(p);
}
