/*
 * tests/unit/test_hclient.c - the blocking HTTP client (common/hclient.c) against a tiny scripted
 * HTTP server that each test runs in a thread, listening on 127.0.0.1 (port 0), ::1 or a unix
 * socket. The request path picks the server's behaviour: framing variants, oversize bodies, a
 * peer that never answers, a peer that closes early, heads the strict parser refuses.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/hclient.h"

typedef struct {
    int lfd;
    int stop[2];
    pthread_t th;
    int port;
    char unix_path[108];
    char target[160];
} server_t;

static server_t srv = {.lfd = -1};

static void send_str(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* Read one request (head and Content-Length body) into req; returns its length or -1. */
static ssize_t read_request(int fd, char *req, size_t cap)
{
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len + 1 >= cap)
            return -1;
        ssize_t r = recv(fd, req + len, cap - 1 - len, 0);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        req[len] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    const char *cl = strcasestr(req, "\r\nContent-Length: ");
    size_t want = (size_t)(end + 4 - req) + (cl ? strtoul(cl + 18, NULL, 10) : 0);
    while (len < want && len + 1 < cap) {
        ssize_t r = recv(fd, req + len, cap - 1 - len, 0);
        if (r <= 0)
            return -1;
        len += (size_t)r;
    }
    req[len] = '\0';
    return (ssize_t)len;
}

static void send_filler(int fd, size_t n)
{
    char chunk[1024];
    memset(chunk, 'b', sizeof chunk - 1);
    chunk[sizeof chunk - 1] = '\0';
    for (; n >= sizeof chunk - 1; n -= sizeof chunk - 1)
        send_str(fd, chunk);
    chunk[n] = '\0';
    send_str(fd, chunk);
}

/* Answers a lenient parser takes (the first or last framing header wins) and common/uresp.h
 * refuses: each is ambiguous about where the body ends. */
static const struct {
    const char *path, *answer;
} ambiguous[] = {
    {"/cl_twice", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"},
    {"/cl_space", "HTTP/1.1 200 OK\r\nContent-Length: 2 \r\n\r\nok"},
    {"/cl_and_te",
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
    {"/te_list", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
};

static void respond(int fd, const char *req, size_t req_len)
{
    char path[64] = "";
    sscanf(req, "%*s %63s", path);
    char head[256];
    for (size_t i = 0; i < sizeof(ambiguous) / sizeof(ambiguous[0]); i++)
        if (!strcmp(path, ambiguous[i].path)) {
            send_str(fd, ambiguous[i].answer);
            return;
        }
    if (!strcmp(path, "/ok")) {
        send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello");
    } else if (!strcmp(path, "/echo")) {
        snprintf(head, sizeof head, "HTTP/1.1 201 Created\r\nContent-Length: %zu\r\n\r\n", req_len);
        send_str(fd, head);
        send(fd, req, req_len, MSG_NOSIGNAL);
    } else if (!strcmp(path, "/chunked")) {
        send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        send_str(fd, "5\r\nhello\r\n");
        send_str(fd, "7;ext=1\r\n, world\r\n");
        send_str(fd, "0\r\nX-Trailer: yes\r\n\r\n");
    } else if (!strcmp(path, "/close")) {
        send_str(fd, "HTTP/1.0 200 OK\r\nServer: t\r\n\r\nuntil the end");
    } else if (!strcmp(path, "/missing")) {
        send_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found");
    } else if (!strcmp(path, "/continue")) {
        send_str(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    } else if (!strcmp(path, "/empty")) {
        send_str(fd, "HTTP/1.1 204 No Content\r\n\r\n");
    } else if (!strcmp(path, "/big")) {
        send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        send_filler(fd, 100000);
    } else if (!strcmp(path, "/bigchunked")) {
        send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (int i = 0; i < 5; i++) {
            send_str(fd, "3e8\r\n"); /* 1000 bytes */
            send_filler(fd, 1000);
            send_str(fd, "\r\n");
        }
        send_str(fd, "0\r\n\r\n");
    } else if (!strcmp(path, "/bigclose")) {
        send_str(fd, "HTTP/1.1 200 OK\r\n\r\n");
        send_filler(fd, 5000);
    } else if (!strcmp(path, "/short")) {
        send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    } else if (!strcmp(path, "/garbage")) {
        send_str(fd, "SSH-2.0-OpenSSH\r\n\r\n");
    } else if (!strcmp(path, "/hang")) {
        char b[256];
        while (recv(fd, b, sizeof b, 0) > 0) /* answer nothing until the client gives up */
            ;
    }
}

static void *serve(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = srv.lfd, .events = POLLIN}, {.fd = srv.stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 || p[1].revents)
            return NULL;
        int c = accept(srv.lfd, NULL, NULL);
        if (c < 0)
            continue;
        static char req[16384];
        ssize_t n = read_request(c, req, sizeof req);
        if (n > 0)
            respond(c, req, (size_t)n);
        close(c);
    }
}

/* Start the server on family AF_INET, AF_INET6 or AF_UNIX; returns false if the family is unusable. */
static bool start_server(int family)
{
    cr_assert_eq(pipe(srv.stop), 0);
    srv.lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv.lfd < 0)
        return false;
    if (family == AF_UNIX) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        snprintf(srv.unix_path, sizeof srv.unix_path, "/tmp/fdhc-%d.sock", (int)getpid());
        unlink(srv.unix_path);
        snprintf(un.sun_path, sizeof un.sun_path, "%s", srv.unix_path);
        cr_assert_eq(bind(srv.lfd, (struct sockaddr *)&un, sizeof un), 0);
        snprintf(srv.target, sizeof srv.target, "unix:%s", srv.unix_path);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        if (bind(srv.lfd, (struct sockaddr *)&a, sizeof a) != 0)
            return false;
        socklen_t l = sizeof a;
        getsockname(srv.lfd, (struct sockaddr *)&a, &l);
        srv.port = ntohs(a.sin6_port);
        snprintf(srv.target, sizeof srv.target, "[::1]:%d", srv.port);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        cr_assert_eq(bind(srv.lfd, (struct sockaddr *)&a, sizeof a), 0);
        socklen_t l = sizeof a;
        getsockname(srv.lfd, (struct sockaddr *)&a, &l);
        srv.port = ntohs(a.sin_port);
        snprintf(srv.target, sizeof srv.target, "127.0.0.1:%d", srv.port);
    }
    cr_assert_eq(listen(srv.lfd, 16), 0);
    cr_assert_eq(pthread_create(&srv.th, NULL, serve, NULL), 0);
    return true;
}

static void stop_server(void)
{
    if (srv.lfd < 0)
        return;
    cr_assert_eq(write(srv.stop[1], "x", 1), 1);
    pthread_join(srv.th, NULL);
    close(srv.lfd);
    close(srv.stop[0]);
    close(srv.stop[1]);
    if (srv.unix_path[0])
        unlink(srv.unix_path);
    srv.lfd = -1;
}

static int get(const char *path, size_t max_body, unsigned timeout_ms, hc_response_t *r)
{
    return hc_request(srv.target, "GET", path, NULL, NULL, 0, timeout_ms, max_body, r);
}

TestSuite(hclient, .fini = stop_server, .timeout = 20);

Test(hclient, status_and_body_by_content_length)
{
    start_server(AF_INET);
    hc_response_t r;
    cr_assert_eq(get("/ok", 1024, 2000, &r), 0, "%s", r.error);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.body_len, 5u);
    cr_assert_str_eq(r.body, "hello");
    hc_response_free(&r);
    cr_assert_null(r.body);

    cr_assert_eq(get("/missing", 1024, 2000, &r), 0, "any status is a complete response");
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(r.body, "not found");
    hc_response_free(&r);
}

Test(hclient, request_carries_host_length_type_and_close)
{
    start_server(AF_INET);
    hc_response_t r;
    const char *body = "{\"a\":\"b/c\"}";
    cr_assert_eq(
        hc_request(srv.target, "POST", "/echo", "application/json", body, strlen(body), 2000, 4096, &r), 0,
        "%s", r.error);
    cr_assert_eq(r.status, 201);
    char want[128];
    cr_assert_eq(strncmp(r.body, "POST /echo HTTP/1.1\r\n", 21), 0, "%s", r.body);
    snprintf(want, sizeof want, "\r\nHost: 127.0.0.1:%d\r\n", srv.port);
    cr_assert(strstr(r.body, want), "%s", r.body);
    cr_assert(strstr(r.body, "\r\nContent-Length: 11\r\n"), "%s", r.body);
    cr_assert(strstr(r.body, "\r\nContent-Type: application/json\r\n"), "%s", r.body);
    cr_assert(strstr(r.body, "\r\nConnection: close\r\n"), "%s", r.body);
    cr_assert_str_eq(r.body + r.body_len - strlen(body), body);
    hc_response_free(&r);
}

Test(hclient, chunked_body_with_extensions_and_trailers)
{
    start_server(AF_INET);
    hc_response_t r;
    cr_assert_eq(get("/chunked", 1024, 2000, &r), 0, "%s", r.error);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "hello, world");
    cr_assert_eq(r.body_len, 12u);
    hc_response_free(&r);
}

Test(hclient, body_until_close_interim_and_empty)
{
    start_server(AF_INET);
    hc_response_t r;
    cr_assert_eq(get("/close", 1024, 2000, &r), 0, "%s", r.error);
    cr_assert_str_eq(r.body, "until the end");
    hc_response_free(&r);
    cr_assert_eq(get("/continue", 1024, 2000, &r), 0, "%s", r.error);
    cr_assert_eq(r.status, 200, "a 100 Continue is skipped");
    cr_assert_str_eq(r.body, "ok");
    hc_response_free(&r);
    cr_assert_eq(get("/empty", 1024, 2000, &r), 0, "%s", r.error);
    cr_assert_eq(r.status, 204);
    cr_assert_eq(r.body_len, 0u);
    hc_response_free(&r);
}

Test(hclient, body_bound_is_enforced)
{
    start_server(AF_INET);
    hc_response_t r;
    cr_assert_eq(get("/big", 1000, 2000, &r), -1);
    cr_assert_str_eq(r.error, "response body larger than 1000 bytes");
    cr_assert_null(r.body);
    cr_assert_eq(get("/bigchunked", 1000, 2000, &r), -1);
    cr_assert_str_eq(r.error, "response body larger than 1000 bytes");
    cr_assert_eq(get("/bigclose", 1000, 2000, &r), -1);
    cr_assert_str_eq(r.error, "response body larger than 1000 bytes");
    /* exactly at the bound is fine, one byte over is not, whatever the framing */
    const struct {
        const char *path;
        size_t len;
    } exact[] = {{"/ok", 5}, {"/chunked", 12}, {"/close", 13}};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(get(exact[i].path, exact[i].len - 1, 2000, &r), -1, "%s", exact[i].path);
        cr_assert_str_eq(r.error + strlen(r.error) - 6, " bytes", "%s", r.error);
        cr_assert_eq(get(exact[i].path, exact[i].len, 2000, &r), 0, "%s: %s", exact[i].path, r.error);
        cr_assert_eq(r.body_len, exact[i].len);
        hc_response_free(&r);
    }
    cr_assert_eq(get("/big", 100000, 5000, &r), 0, "%s", r.error);
    cr_assert_eq(r.body_len, 100000u);
    cr_assert_eq(r.body[0], 'b');
    cr_assert_eq(r.body[99999], 'b');
    hc_response_free(&r);
    cr_assert_eq(get("/bigchunked", 5000, 5000, &r), 0, "%s", r.error);
    cr_assert_eq(r.body_len, 5000u);
    hc_response_free(&r);
}

Test(hclient, truncated_and_malformed_responses_fail)
{
    start_server(AF_INET);
    hc_response_t r;
    cr_assert_eq(get("/short", 1024, 2000, &r), -1);
    cr_assert_str_eq(r.error, "connection closed before the response was complete");
    cr_assert_eq(get("/garbage", 1024, 2000, &r), -1);
    cr_assert_str_eq(r.error, "malformed response head");
    cr_assert_eq(get("/nothing", 1024, 2000, &r), -1, "closed without a response");
    cr_assert_eq(r.status, 0);
}

Test(hclient, ambiguous_framing_is_refused)
{
    start_server(AF_INET);
    for (size_t i = 0; i < sizeof(ambiguous) / sizeof(ambiguous[0]); i++) {
        hc_response_t r;
        cr_expect_eq(get(ambiguous[i].path, 1024, 2000, &r), -1, "accepted %s", ambiguous[i].path);
        cr_expect_neq(r.error[0], '\0', "no reason for %s", ambiguous[i].path);
        hc_response_free(&r);
    }
}

Test(hclient, deadline_covers_a_silent_server)
{
    start_server(AF_INET);
    hc_response_t r;
    uint64_t t0 = fd_mono_ms();
    cr_assert_eq(get("/hang", 1024, 300, &r), -1);
    uint64_t took = fd_mono_ms() - t0;
    cr_assert_str_eq(r.error, "timed out after 300 ms");
    cr_assert_eq(r.status, 0);
    cr_assert(took >= 295 && took < 1300, "returned after %llu ms", (unsigned long long)took);
}

Test(hclient, connection_refused)
{
    /* a bound socket that is not listening refuses connections, and nobody else can take its port */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &l);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", ntohs(a.sin_port));
    hc_response_t r;
    uint64_t t0 = fd_mono_ms();
    cr_assert_eq(hc_request(target, "GET", "/", NULL, NULL, 0, 5000, 1024, &r), -1);
    cr_assert_str_eq(r.error, "connect: Connection refused");
    cr_assert(fd_mono_ms() - t0 < 1000);
    close(s);

    cr_assert_eq(hc_request("unix:/tmp/fdhc-no-such.sock", "GET", "/", NULL, NULL, 0, 1000, 1024, &r), -1);
    cr_assert_str_eq(r.error, "connect: No such file or directory");
}

Test(hclient, unix_socket)
{
    start_server(AF_UNIX);
    hc_response_t r;
    cr_assert_eq(get("/echo", 4096, 2000, &r), 0, "%s", r.error);
    cr_assert(strstr(r.body, "\r\nHost: localhost\r\n"), "%s", r.body);
    hc_response_free(&r);
    cr_assert_eq(get("/chunked", 1024, 2000, &r), 0, "%s", r.error);
    cr_assert_str_eq(r.body, "hello, world");
    hc_response_free(&r);
}

Test(hclient, ipv6_and_localhost_targets)
{
    if (start_server(AF_INET6)) {
        hc_response_t r;
        cr_assert_eq(get("/echo", 4096, 2000, &r), 0, "%s", r.error);
        char want[64];
        snprintf(want, sizeof want, "\r\nHost: [::1]:%d\r\n", srv.port);
        cr_assert(strstr(r.body, want), "%s", r.body);
        hc_response_free(&r);
        stop_server();
    }
    start_server(AF_INET);
    hc_response_t r;
    char target[64];
    snprintf(target, sizeof target, "localhost:%d", srv.port);
    cr_assert_eq(hc_request(target, "GET", "/ok", NULL, NULL, 0, 2000, 64, &r), 0, "%s", r.error);
    cr_assert_str_eq(r.body, "hello");
    hc_response_free(&r);
    snprintf(target, sizeof target, "http://127.0.0.1:%d/", srv.port);
    cr_assert_eq(hc_request(target, "GET", "/ok", NULL, NULL, 0, 2000, 64, &r), 0, "%s", r.error);
    hc_response_free(&r);
}

Test(hclient, bad_targets_are_refused_without_network)
{
    const char *bad[] = {"",
                         "127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:0",
                         "127.0.0.1:70000",
                         "127.0.0.1:80x",
                         "example.com:80",
                         "[::1:80",
                         "unix:",
                         ":80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hc_response_t r;
        cr_assert_eq(hc_request(bad[i], "GET", "/", NULL, NULL, 0, 1000, 64, &r), -1, "%s", bad[i]);
        cr_assert_neq(r.error[0], '\0', "%s", bad[i]);
        cr_assert_eq(r.status, 0);
    }
}
