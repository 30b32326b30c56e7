/*
 * dataplane/leg.c - background upstream requests (see leg.h).
 */
#include <stdlib.h>
#include <string.h>

#include "dataplane/leg.h"
#include "dataplane/pools.h"
#include "dataplane/upstream.h"

static void timer_set(dp_leg_t *l, h2o_timeout_t *which)
{
    if (h2o_timeout_is_linked(&l->timer))
        h2o_timeout_unlink(&l->timer);
    if (which)
        h2o_timeout_link(l->t->ctx.loop, which, &l->timer);
}

static void leg_free(dp_leg_t *l)
{
    timer_set(l, NULL);
    dp_pool_release(l->pool);
    if (l->shared)
        h2o_mem_release_shared(l->shared);
    free(l->reqbufs[0].base);
    free(l);
}

static void end(dp_leg_t *l, const char *err, bool timed_out)
{
    l->client = NULL;
    if (l->starting) { /* the caller does not have the leg yet: end on the next loop turn */
        l->deferred_err = err ? err : "connection closed";
        timer_set(l, &l->t->zero_timeout);
        return;
    }
    l->ops->on_end(l, err, timed_out);
    leg_free(l);
}

static void on_timer(h2o_timeout_entry_t *entry)
{
    dp_leg_t *l = H2O_STRUCT_FROM_MEMBER(dp_leg_t, timer, entry);
    if (l->deferred_err) {
        end(l, l->deferred_err, false);
        return;
    }
    uc_cancel(l->client);
    end(l, "timeout", true);
}

static int on_body(uc_client_t *client, const char *err)
{
    dp_leg_t *l = client->data;
    h2o_buffer_t **in = &client->sock->input;
    if ((*in)->size && l->ops->on_data)
        l->ops->on_data(l, (*in)->bytes, (*in)->size);
    h2o_buffer_consume(in, (*in)->size);
    if (err) {
        dp_pool_count_protocol_error(l->pool, client, err);
        end(l, err == uc_error_is_eos ? NULL : err, false);
        return 0;
    }
    timer_set(l, &l->t->idle_timeout);
    return 0;
}

static uc_body_cb on_head(uc_client_t *client, const char *err, int minor, int status, h2o_iovec_t msg,
                          h2o_header_t *headers, size_t n)
{
    (void)minor, (void)msg, (void)headers, (void)n;
    dp_leg_t *l = client->data;
    timer_set(l, NULL);
    if (err && err != uc_error_is_eos) {
        dp_pool_count_protocol_error(l->pool, client, err);
        end(l, err, false);
        return NULL;
    }
    l->got_head = true;
    if (l->ops->on_head)
        l->ops->on_head(l, status);
    if (err) {
        end(l, NULL, false);
        return NULL;
    }
    timer_set(l, &l->t->idle_timeout);
    return on_body;
}

static uc_head_cb on_connect(uc_client_t *client, const char *err, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                             int *method_is_head)
{
    dp_leg_t *l = client->data;
    timer_set(l, NULL);
    if (err) {
        end(l, err, false);
        return NULL;
    }
    *reqbufs = l->reqbufs;
    *reqbufcnt = l->reqbufs[1].len ? 2 : 1;
    *method_is_head = 0;
    timer_set(l, &l->t->first_byte_timeout);
    return on_head;
}

/* copy: the body is copied next to the head; else it is h2o shared memory and the leg takes a
 * reference to it */
static dp_leg_t *leg_start(dp_thread_t *t, dp_pool_t *pool, h2o_iovec_t authority, h2o_iovec_t path,
                           h2o_iovec_t body, bool copy, const dp_leg_ops_t *ops, void *data)
{
    if (pool == NULL)
        return NULL;
    h2o_mem_pool_t tmp;
    h2o_mem_init_pool(&tmp);
    h2o_iovec_t head =
        dp_request_head(&tmp, h2o_iovec_init(H2O_STRLIT("POST")), path, authority, body.len, NULL);
    /* the leg may outlive the request that started it, so it is not in the request's pool:
     * checked allocations, one of them holding the head (and the body when copied), owned by the leg */
    dp_leg_t *l = calloc(1, sizeof(*l));
    char *buf = l ? malloc(head.len + (copy ? body.len : 0)) : NULL;
    if (buf) {
        memcpy(buf, head.base, head.len);
        if (copy)
            memcpy(buf + head.len, body.base, body.len);
    }
    h2o_mem_clear_pool(&tmp);
    if (buf == NULL) {
        free(l);
        dp_pool_release(pool);
        return NULL;
    }
    l->reqbufs[0] = h2o_iovec_init(buf, head.len);
    l->reqbufs[1] = copy ? h2o_iovec_init(buf + head.len, body.len) : body;
    if (!copy && body.base) {
        h2o_mem_addref_shared(body.base);
        l->shared = body.base;
    }
    l->t = t;
    l->pool = pool;
    l->ops = ops;
    l->data = data;
    l->timer.cb = on_timer;
    timer_set(l, &t->connect_timeout);
    l->starting = true;
    uc_connect(&l->client, l, &pool->up, on_connect);
    l->starting = false;
    return l;
}

dp_leg_t *dp_leg_start(dp_thread_t *t, dp_pool_t *pool, h2o_iovec_t authority, h2o_iovec_t path,
                       h2o_iovec_t body, const dp_leg_ops_t *ops, void *data)
{
    return leg_start(t, pool, authority, path, body, true, ops, data);
}

dp_leg_t *dp_leg_start_shared(dp_thread_t *t, dp_pool_t *pool, h2o_iovec_t authority, h2o_iovec_t path,
                              h2o_iovec_t body, const dp_leg_ops_t *ops, void *data)
{
    return leg_start(t, pool, authority, path, body, false, ops, data);
}

void dp_leg_cancel(dp_leg_t *l)
{
    if (l->client)
        uc_cancel(l->client);
    leg_free(l);
}
