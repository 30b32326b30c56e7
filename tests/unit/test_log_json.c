/*
 * tests/unit/test_log_json.c - fd_json_escape (common/log.c), which writes client-chosen text
 * (a request path, a request id) and log messages into JSON lines: quotes, backslashes and
 * control characters escaped, bytes >= 0x80 kept, and the output bounded without cutting an
 * escape in half.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/log.h"

Test(log_json, escapes)
{
    char out[64];
    const char in[] = "a\"b\\c\n\x01\x7f\xc3\xa9";
    size_t n = fd_json_escape(out, sizeof(out), in, sizeof(in) - 1);
    cr_assert_str_eq(out, "a\\\"b\\\\c\\u000a\\u0001\\u007f\xc3\xa9");
    cr_assert_eq(n, strlen(out));
}

Test(log_json, bounded_between_escapes)
{
    char out[8];
    size_t n = fd_json_escape(out, sizeof(out), "ab\n\ncd", 6); /* "ab" fits, the 6-byte escape not */
    cr_assert_str_eq(out, "ab");
    cr_assert_eq(n, 2);
    cr_assert_eq(fd_json_escape(out, 1, "x", 1), 0);
    cr_assert_str_eq(out, "");
}
