/*
 * tests/unit/test_dp_framing.c - the request framing check (dataplane/framing.c): one
 * Content-Length or one Transfer-Encoding passes; two Content-Length lines (equal or not),
 * Content-Length with Transfer-Encoding (either order, any case), or two Transfer-Encoding lines
 * are refused with a reason. And the incremental search for the end of a head that the
 * request-read sweep relies on.
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

/* After an incomplete look at the first last_len bytes, only the end of the head is searched for:
 * a complete head gets the same length as a search from scratch, and a malformed one may be
 * judged otherwise until its end arrives, as h2o reads it (both inputs found by
 * tests/fuzz/fuzz_request_head.c). */
Test(framing, incremental_head_search)
{
    const char *ok = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}";
    int whole = dp_request_head_len(ok, strlen(ok), 0);
    cr_assert_eq(whole, (int)(strlen(ok) - 2));
    for (size_t cut = 0; cut < (size_t)whole; cut++)
        if (dp_request_head_len(ok, cut, 0) == -2)
            cr_expect_eq(dp_request_head_len(ok, strlen(ok), cut), whole, "after a look at %zu bytes", cut);
    const char *bad = "POST / HTTPSlow: aa\x92"
                      "a";
    cr_expect_eq(dp_request_head_len(bad, strlen(bad), 0), -1);
    cr_expect_eq(dp_request_head_len(bad, 14, 0), -2);
    cr_expect_eq(dp_request_head_len(bad, strlen(bad), 14), -2);
    /* and the other way: a broken line end is seen by the search for the end, while a search
     * from scratch still waits for the HTTP version (both only matter to a complete head) */
    static const char cut_short[] = "POST /tent-Lengt_:ength: 3*\r\n\r\xf0[}";
    cr_expect_eq(dp_request_head_len(cut_short, sizeof(cut_short) - 1, 0), -2);
    cr_expect_eq(dp_request_head_len(cut_short, sizeof(cut_short) - 1, 12), -1);
}
