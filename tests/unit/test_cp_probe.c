/*
 * tests/unit/test_cp_probe.c - the asynchronous health probe (controlplane/probe.c) against a
 * small scripted HTTP server thread on 127.0.0.1: 200 (plain and chunked) is healthy; another
 * status, a refused or dropped connection, an oversized body and silence past the timeout are
 * not; callbacks never run inside cp_probe_start; a cancelled probe never calls back. A fetch
 * (cp_fetch_start) hands over the whole body, decoded and bounded.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "controlplane/cp.h"

typedef enum {
    SRV_200,
    SRV_503,
    SRV_CHUNKED,
    SRV_BIG,
    SRV_DROP,
    SRV_SILENT,
    SRV_BAD_LENGTH,
    SRV_CUT_HEAD
} srv_mode_t;

static struct {
    int lfd;
    uint16_t port;
    srv_mode_t mode;
    int stop[2];
    pthread_t thr;
    char first_request[1024];
    int held[16];
    int nheld;
} srv;

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Read the request head (bounded), remember the first one. */
static void read_head(int fd)
{
    char buf[1024];
    size_t got = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (got < sizeof(buf) - 1 && poll(&p, 1, 2000) == 1) {
        ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    buf[got] = '\0';
    if (srv.first_request[0] == '\0')
        snprintf(srv.first_request, sizeof(srv.first_request), "%s", buf);
}

static void serve(int fd)
{
    static char big[100 * 1024];
    char head[128];
    read_head(fd);
    switch (srv.mode) {
    case SRV_200:
        send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", 59);
        break;
    case SRV_503: {
        const char *r = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        send_all(fd, r, strlen(r));
        break;
    }
    case SRV_CHUNKED: {
        const char *r =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n";
        send_all(fd, r, strlen(r));
        break;
    }
    case SRV_BIG:
        memset(big, 'x', sizeof(big));
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", sizeof(big));
        send_all(fd, head, strlen(head));
        send_all(fd, big, sizeof(big));
        break;
    case SRV_DROP:
        break;
    case SRV_BAD_LENGTH: {
        const char *r = "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}";
        send_all(fd, r, strlen(r));
        break;
    }
    case SRV_CUT_HEAD: {
        const char *r = "HTTP/1.1 200 OK\r\nContent-Ty";
        send_all(fd, r, strlen(r));
        break;
    }
    case SRV_SILENT:
        if (srv.nheld < 16) {
            srv.held[srv.nheld++] = fd;
            return;
        }
        break;
    }
    close(fd);
}

static void *server_main(void *arg)
{
    (void)arg;
    struct pollfd p[2] = {{.fd = srv.lfd, .events = POLLIN}, {.fd = srv.stop[0], .events = POLLIN}};
    while (poll(p, 2, -1) > 0 && !(p[1].revents & POLLIN)) {
        int fd = accept(srv.lfd, NULL, NULL);
        if (fd >= 0)
            serve(fd);
    }
    return NULL;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_in6 sa; /* sin_port and sin6_port share their offset */
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    return ntohs(sa.sin6_port);
}

static int listen_local(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 16), 0);
    return fd;
}

static int listen_local6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "no IPv6 loopback here");
    cr_assert_eq(listen(fd, 16), 0);
    return fd;
}

static void start_server_on(srv_mode_t mode, int lfd)
{
    srv.mode = mode;
    srv.lfd = lfd;
    srv.port = bound_port(srv.lfd);
    cr_assert_eq(pipe(srv.stop), 0);
    cr_assert_eq(pthread_create(&srv.thr, NULL, server_main, NULL), 0);
}

static void start_server(srv_mode_t mode)
{
    start_server_on(mode, listen_local());
}

static void stop_server(void)
{
    cr_assert_eq(write(srv.stop[1], "x", 1), 1);
    pthread_join(srv.thr, NULL);
    for (int i = 0; i < srv.nheld; i++)
        close(srv.held[i]);
    close(srv.lfd);
}

/* ---- probing ---- */

static h2o_evloop_t *loop;
static cp_prober_t prober;
static int calls;
static cp_probe_result_t last;
static bool inside_start;
static bool called_inside_start;

static char last_body[128 * 1024];
static size_t last_body_len;
static bool last_had_body;

static void on_done(void *data, const cp_probe_result_t *res)
{
    (void)data;
    calls++;
    last = *res;
    last.body = NULL; /* valid only during the callback: copied below */
    last_had_body = res->body != NULL;
    last_body_len = res->body_len;
    if (res->body != NULL && res->body_len < sizeof(last_body)) {
        memcpy(last_body, res->body, res->body_len);
        last_body[res->body_len] = '\0';
    }
    if (inside_start)
        called_inside_start = true;
}

/* Run the loop until `want` callbacks arrived or ms passed. */
static void run_until(int want, unsigned ms)
{
    uint64_t end = fd_mono_ms() + ms;
    while (calls < want && fd_mono_ms() < end)
        h2o_evloop_run(loop, 20);
}

static cp_probe_t *probe(const char *host, uint16_t port, const char *path)
{
    inside_start = true;
    cp_probe_t *p = cp_probe_start(&prober, host, port, path, on_done, NULL);
    inside_start = false;
    return p;
}

static void setup_with(unsigned timeout_ms)
{
    loop = h2o_evloop_create();
    cr_assert_eq(cp_prober_init(&prober, loop, timeout_ms), 0);
}

static void setup(void)
{
    setup_with(2000);
}

static void teardown(void)
{
    cp_prober_dispose(&prober);
}

static void expect_result(srv_mode_t mode, bool ok, const char *error_part)
{
    start_server(mode);
    probe("127.0.0.1", srv.port, "/health");
    run_until(1, 5000);
    stop_server();
    cr_assert_eq(calls, 1);
    cr_assert_eq(last.ok, ok, "error: %s", last.error);
    if (error_part != NULL)
        cr_assert(strstr(last.error, error_part) != NULL, "error: %s", last.error);
    cr_assert(!called_inside_start);
    cr_assert_eq(cp_prober_inflight(&prober), 0);
}

TestSuite(cp_probe, .init = setup, .fini = teardown, .timeout = 20);

Test(cp_probe, ok_on_200_with_the_right_request)
{
    expect_result(SRV_200, true, NULL);
    cr_assert_eq(last.status, 200);
    cr_assert(strncmp(srv.first_request, "GET /health HTTP/1.1\r\n", 22) == 0, "%s", srv.first_request);
    char host[64];
    snprintf(host, sizeof(host), "Host: 127.0.0.1:%u\r\n", srv.port);
    cr_assert(strstr(srv.first_request, host) != NULL, "%s", srv.first_request);
}

Test(cp_probe, ok_on_chunked_200)
{
    expect_result(SRV_CHUNKED, true, NULL);
}

Test(cp_probe, other_status_fails)
{
    expect_result(SRV_503, false, "status 503");
    cr_assert_eq(last.status, 503);
}

Test(cp_probe, oversized_body_fails)
{
    expect_result(SRV_BIG, false, "too large");
}

Test(cp_probe, dropped_connection_fails)
{
    expect_result(SRV_DROP, false, NULL);
    cr_assert_eq(last.status, 0);
}

Test(cp_probe, an_answer_that_breaks_http_is_a_protocol_error)
{
    expect_result(SRV_BAD_LENGTH, false, NULL);
    cr_assert(last.protocol_error, "%s", last.error);
}

Test(cp_probe, a_head_cut_short_is_not_a_protocol_error)
{
    expect_result(SRV_CUT_HEAD, false, NULL);
    cr_assert(!last.protocol_error, "%s", last.error);
}

Test(cp_probe, an_error_status_is_not_a_protocol_error)
{
    expect_result(SRV_503, false, "status 503");
    cr_assert(!last.protocol_error);
}

Test(cp_probe, refused_connection_fails)
{
    int fd = listen_local();
    uint16_t port = bound_port(fd);
    close(fd);
    probe("127.0.0.1", port, "/health");
    run_until(1, 5000);
    cr_assert_eq(calls, 1);
    cr_assert(!last.ok);
    cr_assert_neq(last.error[0], '\0');
}

static void setup_short(void)
{
    setup_with(300);
}

Test(cp_probe_timeout, silence_times_out, .init = setup_short, .fini = teardown, .timeout = 20)
{
    start_server(SRV_SILENT);
    uint64_t t0 = fd_mono_ms();
    probe("127.0.0.1", srv.port, "/health");
    run_until(1, 5000);
    uint64_t took = fd_mono_ms() - t0;
    stop_server();
    cr_assert_eq(calls, 1);
    cr_assert(!last.ok);
    cr_assert(strstr(last.error, "timeout") != NULL, "%s", last.error);
    cr_assert_geq(took, 250);
    cr_assert_lt(took, 2000);
}

Test(cp_probe, synchronous_failure_is_deferred)
{
    char host[200] = "unix:/";
    memset(host + 6, 'a', sizeof(host) - 7);
    host[sizeof(host) - 1] = '\0';
    cp_probe_t *p = probe(host, 80, "/health");
    cr_assert_not_null(p);
    cr_assert_eq(calls, 0);
    run_until(1, 2000);
    cr_assert_eq(calls, 1);
    cr_assert(!last.ok);
    cr_assert(!called_inside_start);
}

Test(cp_probe, cancelled_probe_never_calls_back)
{
    start_server(SRV_SILENT);
    cp_probe_t *p = probe("127.0.0.1", srv.port, "/health");
    run_until(1, 200);
    cp_probe_cancel(p);
    cr_assert_eq(cp_prober_inflight(&prober), 0);
    run_until(1, 300);
    stop_server();
    cr_assert_eq(calls, 0);
}

Test(cp_probe, dispose_cancels_everything_in_flight)
{
    start_server(SRV_SILENT);
    for (int i = 0; i < 3; i++)
        probe("127.0.0.1", srv.port, "/health");
    cr_assert_eq(cp_prober_inflight(&prober), 3);
    run_until(1, 200);
    cp_prober_dispose(&prober);
    stop_server();
    cr_assert_eq(calls, 0);
    cp_prober_init(&prober, loop, 2000); /* for teardown */
}

Test(cp_probe, path_without_slash)
{
    start_server(SRV_200);
    probe("127.0.0.1", srv.port, "ready");
    run_until(1, 5000);
    stop_server();
    cr_assert(last.ok, "%s", last.error);
    cr_assert(strncmp(srv.first_request, "GET /ready HTTP/1.1\r\n", 21) == 0, "%s", srv.first_request);
}

Test(cp_probe, ipv6_literal)
{
    start_server_on(SRV_200, listen_local6());
    probe("::1", srv.port, "/health");
    run_until(1, 5000);
    stop_server();
    cr_assert_eq(calls, 1);
    cr_assert(last.ok, "%s", last.error);
    char host[64];
    snprintf(host, sizeof(host), "Host: [::1]:%u\r\n", srv.port);
    cr_assert(strstr(srv.first_request, host) != NULL, "%s", srv.first_request);
}

static void fetch(srv_mode_t mode, size_t max_body)
{
    start_server(mode);
    inside_start = true;
    cp_fetch_start(&prober, "127.0.0.1", srv.port, "/metrics", max_body, on_done, NULL);
    inside_start = false;
    run_until(1, 5000);
    stop_server();
    cr_assert_eq(calls, 1);
    cr_assert(!called_inside_start);
    cr_assert_eq(cp_prober_inflight(&prober), 0);
}

Test(cp_probe, a_probe_hands_over_no_body)
{
    expect_result(SRV_200, true, NULL);
    cr_assert(!last_had_body);
}

Test(cp_probe, fetch_hands_over_the_body)
{
    fetch(SRV_200, 1024);
    cr_assert(last.ok, "%s", last.error);
    cr_assert(last_had_body);
    cr_assert_eq(last_body_len, 2);
    cr_assert_str_eq(last_body, "ok");
    cr_assert(strncmp(srv.first_request, "GET /metrics HTTP/1.1\r\n", 23) == 0, "%s", srv.first_request);
}

Test(cp_probe, fetch_decodes_a_chunked_body)
{
    fetch(SRV_CHUNKED, 1024);
    cr_assert(last.ok, "%s", last.error);
    cr_assert_eq(last_body_len, 5);
    cr_assert_str_eq(last_body, "ok!!!");
}

Test(cp_probe, fetch_keeps_a_large_body_within_its_bound)
{
    fetch(SRV_BIG, 100 * 1024);
    cr_assert(last.ok, "%s", last.error);
    cr_assert_eq(last_body_len, 100 * 1024);
    for (size_t i = 0; i < last_body_len; i++)
        cr_assert_eq(last_body[i], 'x', "byte %zu", i);
}

Test(cp_probe, fetch_fails_past_its_bound)
{
    fetch(SRV_BIG, 100 * 1024 - 1);
    cr_assert(!last.ok);
    cr_assert(strstr(last.error, "too large") != NULL, "%s", last.error);
    cr_assert(!last_had_body);
}
