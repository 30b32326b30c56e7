/*
 * dataplane/server.c - h2o set-up, one event loop per thread, and the route table.
 *
 * Every thread polls its own dup() of the one listening socket the control plane owns, so a
 * restarted or upgraded DP never drops a queued connection. One h2o handler at "/" dispatches
 * on method and path, so unknown routes get the Go router's plain-text 404.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/log.h"
#include "common/reply.h"
#include "dataplane/dp.h"
#include "dataplane/pd.h"

static __thread dp_thread_t *current;

dp_thread_t *dp_self(h2o_req_t *req)
{
    (void)req;
    return current;
}

void dp_send_json(h2o_req_t *req, int status, const char *json, size_t len)
{
    fd_reply_json(req, status, json, len);
}

void dp_send_error(h2o_req_t *req, int status, const char *msg)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "{\"error\": \"%s\"}", msg);
    dp_send_json(req, status, buf, (size_t)n);
}

static int is_route(h2o_req_t *req, const char *method, const char *path)
{
    return h2o_memis(req->method.base, req->method.len, method, strlen(method)) &&
           h2o_memis(req->path_normalized.base, req->path_normalized.len, path, strlen(path));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    if (is_route(req, "POST", "/v1/chat/completions"))
        return dp.cfg.splitwise ? dp_handle_pd_completions(req, "/v1/chat/completions")
                                : dp_handle_completions(req, "/v1/chat/completions");
    if (is_route(req, "POST", "/v1/completions"))
        return dp.cfg.splitwise ? dp_handle_pd_completions(req, "/v1/completions")
                                : dp_handle_completions(req, "/v1/completions");
    if (is_route(req, "POST", "/v1/abort_requests"))
        return dp_handle_abort(req);
    if (is_route(req, "GET", "/ready"))
        return dp_handle_ready(req);
    if (is_route(req, "GET", "/registered"))
        return dp_handle_registered(req);
    if (is_route(req, "GET", "/registered_number"))
        return dp_handle_registered_number(req);
    if (is_route(req, "GET", "/health"))
        return dp_handle_health(req);
    if (is_route(req, "POST", "/register") || is_route(req, "GET", "/health_generate"))
        return dp_handle_register(req);
    if (is_route(req, "GET", "/metrics"))
        return dp_handle_metrics(req);
    fd_reply(req, 404, "text/plain", H2O_STRLIT("404 page not found"));
    return 0;
}

int dp_server_setup(void)
{
    h2o_config_init(&dp.globalconf);
    dp.globalconf.server_name = h2o_iovec_init(H2O_STRLIT("fd-router"));
    dp.globalconf.max_request_entity_size = dp.cfg.max_body_bytes;
    dp.globalconf.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host =
        h2o_config_register_host(&dp.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_req;
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    dp_thread_t *t = listener->data;
    if (err)
        return;
    h2o_socket_t *sock;
    while ((sock = h2o_evloop_socket_accept(listener)) != NULL) {
        h2o_accept(&t->accept_ctx, sock);
    }
}

static void thread_init(dp_thread_t *t)
{
    const shm_config_t *c = &dp.cfg;
    h2o_context_init(&t->ctx, h2o_evloop_create(), &dp.globalconf);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = dp.globalconf.hosts;
    h2o_timeout_init(t->ctx.loop, &t->connect_timeout, c->connect_timeout_ms);
    h2o_timeout_init(t->ctx.loop, &t->first_byte_timeout, c->first_byte_timeout_ms);
    h2o_timeout_init(t->ctx.loop, &t->idle_timeout, c->idle_timeout_ms);
    h2o_timeout_init(t->ctx.loop, &t->zero_timeout, 0);
    h2o_timeout_init(t->ctx.loop, &t->watch_timeout, 250);
    h2o_timeout_init(t->ctx.loop, &t->abort_timeout, 5000);
    h2o_timeout_init(t->ctx.loop, &t->tokenizer_timeout, c->tokenizer_timeout_ms);
    /* h2o's own per-phase timer: a backstop behind ours, never the one that fires first */
    uint64_t backstop = c->connect_timeout_ms + c->first_byte_timeout_ms + c->idle_timeout_ms + 1000;
    h2o_timeout_init(t->ctx.loop, &t->io_timeout, backstop);
    t->client_ctx.loop = t->ctx.loop;
    t->client_ctx.getaddr_receiver = &t->ctx.receivers.hostinfo_getaddr;
    t->client_ctx.io_timeout = &t->io_timeout;
    t->pools = calloc(SHM_MAX_INSTANCES, sizeof(*t->pools));
    /* request ids are drawn from it: seed from the kernel so no two processes or runs collide */
    if (getrandom(&t->rng, sizeof(t->rng), 0) != sizeof(t->rng) || !t->rng)
        t->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)getpid() << 16) ^ (t->index + 1) ^ shm_now_ms();
    t->listener = h2o_evloop_socket_create(t->ctx.loop, dup(dp.listen_fd), H2O_SOCKET_FLAG_DONT_READ);
    t->listener->data = t;
    h2o_socket_read_start(t->listener, on_accept);
}

/* Stop accepting; keep the loop running until this thread's requests are answered or the drain
 * deadline passes. */
static void thread_drain(dp_thread_t *t, uint64_t deadline_ms)
{
    h2o_socket_read_stop(t->listener);
    h2o_socket_close(t->listener);
    t->listener = NULL;
    h2o_context_request_shutdown(&t->ctx);
    while (t->inflight && shm_now_ms() < deadline_ms)
        h2o_evloop_run(t->ctx.loop, 100);
    if (t->inflight)
        LOG_WARN("thread %u: %llu request(s) cut at the drain deadline", t->index,
                 (unsigned long long)t->inflight);
}

void *dp_thread_main(void *arg)
{
    dp_thread_t *t = arg;
    current = t;
    t->reader = shm_reader_register(&dp.seg);
    if (t->reader < 0) {
        LOG_ERROR("no free reader slot in shared memory");
        exit(1);
    }
    thread_init(t);
    while (!__atomic_load_n(&dp.stopping, __ATOMIC_ACQUIRE))
        h2o_evloop_run(t->ctx.loop, 100);
    thread_drain(t, dp.drain_deadline_ms);
    shm_reader_unregister(&dp.seg, t->reader);
    /* Park instead of returning: h2o keeps recycled memory in per-thread lists it cannot empty,
     * which are still reachable (not leaked) while the thread lives; the process exits next. */
    pthread_mutex_lock(&dp.drain_lock);
    dp.drained++;
    pthread_cond_signal(&dp.drain_cond);
    pthread_mutex_unlock(&dp.drain_lock);
    for (;;)
        pause();
}
