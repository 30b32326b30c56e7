/*
 * dataplane/pools.c - per-thread upstream socket pools (see pools.h for why per thread).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/log.h"
#include "dataplane/pools.h"

static dp_pool_t *pool_new(dp_thread_t *t, struct sockaddr *sa, socklen_t salen)
{
    dp_pool_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    h2o_socketpool_init_by_address(&p->sp, sa, salen, 0, SIZE_MAX);
    h2o_socketpool_set_timeout(&p->sp, t->ctx.loop, DP_POOL_IDLE_MS);
    return p;
}

static void pool_free(dp_pool_t *p)
{
    h2o_socketpool_dispose(&p->sp);
    free(p);
}

static int make_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *len = sizeof(*v6);
        return 0;
    }
    return -1;
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
        if (make_addr(host, port, &ss, &len) != 0) {
            LOG_ERROR("not an IP literal: %s", host);
            return NULL;
        }
        if (!(p = pool_new(t, (struct sockaddr *)&ss, len)))
            return NULL;
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
