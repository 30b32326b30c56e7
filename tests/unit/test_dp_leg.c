/*
 * Unit tests of dataplane/leg.c's allocation policy (docs/architecture.md): a leg outlives the
 * request that starts it, so its memory is checked malloc; when it cannot be had, dp_leg_start
 * returns NULL, gives the pool reference back and never calls on_end. The test binary is linked
 * with --wrap=malloc,calloc (CMakeLists.txt) so a chosen allocation can fail. dp_leg_start_shared
 * sends the starter's h2o shared memory without a copy, holding a reference to it.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

#include "dataplane/leg.h"
#include "dataplane/pools.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);

static size_t fail_calloc_size; /* a calloc of exactly this size fails (0: none) */
static size_t fail_malloc_from; /* a malloc of at least this size fails (0: none) */

void *__wrap_malloc(size_t n)
{
    return fail_malloc_from && n >= fail_malloc_from ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
    return fail_calloc_size && k * n == fail_calloc_size ? NULL : __real_calloc(k, n);
}

static dp_thread_t t;
static dp_pool_t *pool, *pool_slot;
static int ended;

static void on_end(dp_leg_t *l, const char *err, bool timed_out)
{
    (void)l, (void)err, (void)timed_out;
    ended++;
}
static const dp_leg_ops_t ops = {.on_end = on_end};

static void setup(void)
{
    t.ctx.loop = h2o_evloop_create();
    h2o_timeout_init(t.ctx.loop, &t.connect_timeout, 1000);
    h2o_timeout_init(t.ctx.loop, &t.zero_timeout, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pool = dp_pool_acquire_addr(&t, &pool_slot, (struct sockaddr *)&sin, sizeof(sin));
    cr_assert_not_null(pool);
    cr_assert_eq(pool->refs, 1);
}

TestSuite(leg, .init = setup, .timeout = 10);

static dp_leg_t *start(size_t body_len)
{
    static char body[1 << 20];
    cr_assert_leq(body_len, sizeof(body));
    memset(body, 'x', body_len);
    return dp_leg_start(&t, pool, h2o_iovec_init(H2O_STRLIT("127.0.0.1:9")),
                        h2o_iovec_init(H2O_STRLIT("/v1/abort_requests")), h2o_iovec_init(body, body_len),
                        &ops, NULL);
}

/* after a failed start: the reference is back, and nothing is pending on the loop */
static void assert_clean_failure(const dp_leg_t *l)
{
    cr_assert_null(l);
    cr_assert_eq(pool->refs, 0, "the pool reference the leg was given is released");
    h2o_evloop_run(t.ctx.loop, 0);
    cr_assert_eq(ended, 0, "a leg that was never made does not end");
}

Test(leg, no_pool_no_leg)
{
    cr_assert_null(dp_leg_start(&t, NULL, h2o_iovec_init(H2O_STRLIT("a:1")), h2o_iovec_init(H2O_STRLIT("/")),
                                h2o_iovec_init(NULL, 0), &ops, NULL));
    cr_assert_eq(pool->refs, 1, "someone else's reference is not touched");
}

Test(leg, leg_allocation_fails)
{
    fail_calloc_size = sizeof(dp_leg_t);
    dp_leg_t *l = start(16);
    fail_calloc_size = 0;
    assert_clean_failure(l);
}

Test(leg, request_copy_allocation_fails)
{
    fail_malloc_from = 512 << 10;
    dp_leg_t *l = start(600 << 10);
    fail_malloc_from = 0;
    assert_clean_failure(l);
}

Test(leg, a_leg_that_can_be_made_is)
{
    dp_leg_t *l = start(16);
    cr_assert_not_null(l);
    cr_assert_eq(pool->refs, 1, "the leg holds the reference");
    cr_assert_eq(l->reqbufs[1].len, 16);
    dp_leg_cancel(l);
    cr_assert_eq(pool->refs, 0);
}

static int disposed;
static void count_dispose(void *p)
{
    (void)p;
    disposed++;
}

static dp_leg_t *start_shared(h2o_mem_pool_t *req_pool, h2o_iovec_t *body)
{
    disposed = 0;
    *body = h2o_iovec_init(h2o_mem_alloc_shared(req_pool, 64, count_dispose), 64);
    memset(body->base, 'y', body->len);
    return dp_leg_start_shared(&t, pool, h2o_iovec_init(H2O_STRLIT("127.0.0.1:9")),
                               h2o_iovec_init(H2O_STRLIT("/")), *body, &ops, NULL);
}

Test(leg, a_shared_body_is_referenced_not_copied)
{
    h2o_mem_pool_t req_pool;
    h2o_mem_init_pool(&req_pool);
    h2o_iovec_t body;
    dp_leg_t *l = start_shared(&req_pool, &body);
    cr_assert_not_null(l);
    cr_assert_eq(l->reqbufs[1].base, body.base, "the leg sends the starter's bytes");
    cr_assert_eq(l->reqbufs[1].len, 64);
    h2o_mem_clear_pool(&req_pool); /* the request ends first */
    cr_assert_eq(disposed, 0, "the leg's reference keeps the body");
    cr_assert_eq(l->reqbufs[1].base[63], 'y');
    dp_leg_cancel(l);
    cr_assert_eq(disposed, 1, "the leg's end releases it");
    cr_assert_eq(pool->refs, 0);
}

Test(leg, a_failed_shared_start_takes_no_reference)
{
    h2o_mem_pool_t req_pool;
    h2o_mem_init_pool(&req_pool);
    h2o_iovec_t body;
    fail_calloc_size = sizeof(dp_leg_t);
    dp_leg_t *l = start_shared(&req_pool, &body);
    fail_calloc_size = 0;
    assert_clean_failure(l);
    h2o_mem_clear_pool(&req_pool);
    cr_assert_eq(disposed, 1, "the pool's reference was the only one");
}
