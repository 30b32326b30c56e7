/*
 * tests/unit/test_uresp.c - the strict response-head check of the upstream client (common/uresp.c)
 * and the chunked decoder it relies on: every malformed Content-Length an instance was seen to
 * send (h2o 2.2's client aborted the process on them), framing conflicts, truncated and oversized
 * heads, 1xx and 101, garbage.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/uresp.h"

#define MAX_HEAD (64 * 1024)

static struct phr_header hdrs[100];

static int parse(const char *s, uresp_t *r)
{
    memset(r, 0, sizeof(*r));
    r->headers = hdrs;
    r->num_headers = 100;
    return uresp_parse(s, strlen(s), MAX_HEAD, false, r);
}

static void refused(const char *head)
{
    uresp_t r;
    cr_expect_eq(parse(head, &r), -1, "accepted: %s", head);
    cr_expect_not_null(r.error, "no reason for: %s", head);
}

static void bad_length(const char *value)
{
    char head[256];
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n{}", value);
    refused(head);
}

Test(uresp, every_bad_content_length_is_refused)
{
    const char *bad[] = {"-1",
                         "abc",
                         "5 ",
                         "+5",
                         "0x5",
                         "",
                         "5,5",
                         "-0",
                         "99999999999999999999999",
                         "18446744073709551616",
                         "1099511627777",
                         "5.0",
                         "5 5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        bad_length(bad[i]);
    uint64_t n;
    cr_expect(!uresp_content_length("", 0, &n));
    cr_expect(!uresp_content_length("12a", 3, &n));
}

Test(uresp, a_good_content_length_frames_the_body)
{
    uresp_t r;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    cr_assert_eq(parse(s, &r), (int)strlen(s) - 2);
    cr_expect_eq(r.status, 200);
    cr_expect_eq(r.framing, UC_BODY_LENGTH);
    cr_expect_eq(r.content_length, 2);
    cr_expect(r.keepalive);
    uint64_t n;
    cr_expect(uresp_content_length("1099511627776", 13, &n) && n == (1ULL << 40));
    cr_expect(uresp_content_length("007", 3, &n) && n == 7);
    cr_assert_gt(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &r), 0);
    cr_expect_eq(r.framing, UC_BODY_NONE);
}

Test(uresp, framing_conflicts_are_refused)
{
    refused("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n");
}

Test(uresp, framing_and_persistence)
{
    uresp_t r;
    cr_assert_gt(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", &r), 0);
    cr_expect_eq(r.framing, UC_BODY_CHUNKED);
    cr_expect(r.keepalive);
    cr_assert_gt(parse("HTTP/1.1 200 OK\r\n\r\n", &r), 0);
    cr_expect_eq(r.framing, UC_BODY_UNTIL_CLOSE, "neither length nor chunked: ended by the close");
    cr_expect(!r.keepalive);
    cr_assert_gt(parse("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\n", &r),
                 0);
    cr_expect(!r.keepalive);
    cr_assert_gt(parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", &r), 0);
    cr_expect(!r.keepalive, "HTTP/1.0 without keep-alive closes");
    cr_assert_gt(parse("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", &r), 0);
    cr_expect_eq(r.framing, UC_BODY_NONE);
    memset(&r, 0, sizeof(r));
    r.headers = hdrs;
    r.num_headers = 100;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    cr_assert_gt(uresp_parse(s, strlen(s), MAX_HEAD, true, &r), 0);
    cr_expect_eq(r.framing, UC_BODY_NONE, "an answer to HEAD has no body");
}

Test(uresp, truncated_heads_need_more)
{
    const char *full = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n";
    for (size_t n = 0; n < strlen(full); n++) {
        uresp_t r = {.headers = hdrs, .num_headers = 100};
        cr_expect_eq(uresp_parse(full, n, MAX_HEAD, false, &r), -2, "prefix of %zu bytes", n);
        cr_expect_eq(r.num_headers, 100, "capacity restored for the next call");
    }
}

Test(uresp, oversized_heads_are_refused)
{
    size_t len = 4 * 1024 * 1024;
    char *big = malloc(len + 64);
    cr_assert_not_null(big);
    int off = sprintf(big, "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(big + off, 'a', len - (size_t)off);
    uresp_t r = {.headers = hdrs, .num_headers = 100};
    cr_expect_eq(uresp_parse(big, len, MAX_HEAD, false, &r), -1, "a 4 MiB head in progress");
    strcpy(big + len - 40, "\r\nContent-Length: 2\r\n\r\n");
    r.num_headers = 100;
    cr_expect_eq(uresp_parse(big, strlen(big), MAX_HEAD, false, &r), -1, "a complete 4 MiB head");
    r.num_headers = 100;
    cr_expect_eq(uresp_parse(big, MAX_HEAD - 1, MAX_HEAD, false, &r), -2, "below the cap: wait for more");
    free(big);
}

Test(uresp, informational_and_switching)
{
    uresp_t r;
    refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n");
    cr_assert_gt(parse("HTTP/1.1 100 Continue\r\n\r\n", &r), 0);
    cr_expect(r.informational);
    cr_assert_gt(parse("HTTP/1.1 103 Early Hints\r\n\r\n", &r), 0);
    cr_expect(r.informational);
}

Test(uresp, garbage_is_refused)
{
    refused("\x01\x02garbage that is not HTTP\r\n\r\n");
    refused("HTTP/1.1 abc OK\r\n\r\n");
    refused("HTTP/2 200 OK\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\n: no name\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n");
    refused("HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n");
}

static ssize_t decode(const char *in, char *out, size_t *outlen)
{
    struct phr_chunked_decoder d = {.consume_trailer = 1};
    size_t n = strlen(in);
    memcpy(out, in, n);
    ssize_t r = phr_decode_chunked(&d, out, &n);
    *outlen = n;
    return r;
}

Test(uresp, chunked_edges)
{
    char buf[256];
    size_t n;
    cr_expect_eq(decode("5\r\nhello\r\n0\r\n\r\n", buf, &n), 0);
    cr_expect(n == 5 && memcmp(buf, "hello", 5) == 0);
    cr_expect_eq(decode("5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n", buf, &n), 0,
                 "extensions and trailers");
    cr_expect_eq(decode("5\r\nhello\r\n", buf, &n), -2, "no last chunk yet");
    cr_expect_eq(decode("zz\r\nhello\r\n", buf, &n), -1, "not hex");
    cr_expect_eq(decode("fffffffffffffffffff\r\n", buf, &n), -1, "a size beyond any buffer");
    cr_expect_gt(decode("0\r\n\r\nextra", buf, &n), 0, "bytes after the end are reported");
}
