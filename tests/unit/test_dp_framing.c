/*
 * tests/unit/test_dp_framing.c - the request framing check (dataplane/framing.c): one
 * Content-Length or one Transfer-Encoding passes; two Content-Length lines (equal or not),
 * Content-Length with Transfer-Encoding (either order, any case), or two Transfer-Encoding lines
 * are refused with a reason.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "dataplane/framing.h"

static const char *check(const char *head)
{
    return dp_framing_error(head, strlen(head));
}

Test(framing, one_framing_header_passes)
{
    cr_expect_null(check("POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"));
    cr_expect_null(check("POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"));
    cr_expect_null(check("GET /health HTTP/1.1\r\nHost: a\r\n\r\n"));
    /* h2o lower-cases the names in place before the check runs; LF-only lines parse too */
    cr_expect_null(check("POST / HTTP/1.1\ncontent-length: 2\n\n"));
}

Test(framing, duplicates_and_conflicts_are_refused)
{
    static const char *bad[] = {
        "POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 2\r\nHost: a\r\ncontent-length: 40\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\nContent-Length: 2\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_not_null(check(bad[i]), "accepted: %s", bad[i]);
    cr_expect_str_eq(check(bad[1]), "more than one Content-Length header");
    cr_expect_str_eq(check(bad[2]), "both Content-Length and Transfer-Encoding");
}

Test(framing, a_partial_or_garbage_head_is_refused)
{
    cr_expect_not_null(check("POST / HTTP/1.1\r\nContent-Length: 2\r\n"));
    cr_expect_not_null(check("\x01\x02 not http\r\n\r\n"));
    cr_expect_not_null(dp_framing_error("", 0));
}
