/*
 * tests/unit/test_dp_request_head.c - the head of every upstream request (dataplane/upstream.c's
 * dp_request_head): the exact bytes for a leg's POST (no client headers: a JSON content type of
 * its own) and for a proxied request (the client's end-to-end headers kept in order, hop-by-hop
 * ones, Host, Content-Length, Expect and those the client's Connection names dropped), and
 * Content-Length for 0 and for the largest size.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dataplane/upstream.h"

static h2o_mem_pool_t pool;

static void setup(void)
{
    h2o_mem_init_pool(&pool);
}
static void teardown(void)
{
    h2o_mem_clear_pool(&pool);
}

TestSuite(request_head, .init = setup, .fini = teardown);

static void expect_head(h2o_iovec_t got, const char *want)
{
    cr_assert_eq(got.len, strlen(want), "length %zu, want %zu: [%.*s]", got.len, strlen(want), (int)got.len,
                 got.base);
    cr_assert_eq(memcmp(got.base, want, got.len), 0, "[%.*s]", (int)got.len, got.base);
}

Test(request_head, a_legs_post)
{
    h2o_iovec_t head = dp_request_head(&pool, h2o_iovec_init(H2O_STRLIT("POST")),
                                       h2o_iovec_init(H2O_STRLIT("/v1/chat/completions")),
                                       h2o_iovec_init(H2O_STRLIT("10.0.0.1:8000")), 1234, NULL);
    expect_head(head, "POST /v1/chat/completions HTTP/1.1\r\nhost: 10.0.0.1:8000\r\ncontent-length: 1234\r\n"
                      "content-type: application/json\r\nconnection: keep-alive\r\n\r\n");
}

Test(request_head, content_length_from_zero_to_the_largest)
{
    size_t sizes[] = {0, 9, 10, SIZE_MAX};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        h2o_iovec_t head =
            dp_request_head(&pool, h2o_iovec_init(H2O_STRLIT("POST")), h2o_iovec_init(H2O_STRLIT("/")),
                            h2o_iovec_init(H2O_STRLIT("a:1")), sizes[i], NULL);
        char want[256];
        snprintf(want, sizeof(want),
                 "POST / HTTP/1.1\r\nhost: a:1\r\ncontent-length: %zu\r\ncontent-type: application/json\r\n"
                 "connection: keep-alive\r\n\r\n",
                 sizes[i]);
        expect_head(head, want);
    }
}

Test(request_head, a_proxied_request_keeps_end_to_end_headers)
{
    h2o_headers_t headers = {NULL, 0, 0};
    h2o_add_header(&pool, &headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&pool, &headers, H2O_TOKEN_HOST, NULL, H2O_STRLIT("router:9000"));
    h2o_add_header(&pool, &headers, H2O_TOKEN_CONTENT_LENGTH, NULL, H2O_STRLIT("2"));
    h2o_add_header(&pool, &headers, H2O_TOKEN_CONNECTION, NULL, H2O_STRLIT("keep-alive, x-secret"));
    h2o_add_header_by_str(&pool, &headers, H2O_STRLIT("x-secret"), 0, NULL, H2O_STRLIT("s"));
    h2o_add_header_by_str(&pool, &headers, H2O_STRLIT("x-trace"), 0, "X-Trace", H2O_STRLIT("t1"));
    h2o_add_header(&pool, &headers, H2O_TOKEN_EXPECT, NULL, H2O_STRLIT("100-continue"));
    h2o_iovec_t head = dp_request_head(&pool, h2o_iovec_init(H2O_STRLIT("POST")),
                                       h2o_iovec_init(H2O_STRLIT("/v1/completions?x=1")),
                                       h2o_iovec_init(H2O_STRLIT("[::1]:8000")), 2, &headers);
    expect_head(head, "POST /v1/completions?x=1 HTTP/1.1\r\nhost: [::1]:8000\r\ncontent-length: 2\r\n"
                      "connection: keep-alive\r\ncontent-type: application/json\r\nX-Trace: t1\r\n\r\n");
}
