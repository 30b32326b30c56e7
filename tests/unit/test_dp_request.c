/*
 * Unit tests of dataplane/request.c: what the router reads from a completion body.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "dataplane/request.h"

static h2o_mem_pool_t pool;

static void setup(void)
{
    h2o_mem_init_pool(&pool);
}
static void teardown(void)
{
    h2o_mem_clear_pool(&pool);
}

static dp_body_t parse_ok(const char *json)
{
    dp_body_t b;
    cr_assert_eq(dp_parse_body(&pool, json, strlen(json), true, &b), 0, "rejected: %s", json);
    return b;
}

static void assert_prompt(const dp_body_t *b, const char *want)
{
    cr_assert_eq(b->prompt.len, strlen(want), "prompt '%.*s' vs '%s'", (int)b->prompt.len,
                 b->prompt.text ? b->prompt.text : "", want);
    cr_assert(strlen(want) == 0 || memcmp(b->prompt.text, want, b->prompt.len) == 0);
}

TestSuite(request, .init = setup, .fini = teardown);

Test(request, rejects_what_is_not_one_json_object)
{
    const char *bad[] = {"",        "   ",       "[1,2]", "\"s\"", "{\"a\":1} trailing", "{\"a\":1}{\"b\":2}",
                         "{\"a\":", "{\"a\":1,}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        dp_body_t b;
        cr_expect_eq(dp_parse_body(&pool, bad[i], strlen(bad[i]), true, &b), -1, "accepted: %s", bad[i]);
    }
    dp_body_t b;
    cr_assert_eq(dp_parse_body(&pool, "{\"a\":1}\n ", 9, false, &b), 0, "trailing whitespace is fine");
}

Test(request, stream_only_when_json_true)
{
    cr_assert(parse_ok("{\"stream\":true}").stream);
    cr_assert_not(parse_ok("{\"stream\":\"true\"}").stream);
    cr_assert_not(parse_ok("{\"stream\":1}").stream);
    cr_assert_not(parse_ok("{}").stream);
}

Test(request, chat_prompt_joins_trimmed_text_pieces)
{
    dp_body_t b =
        parse_ok("{\"messages\":[{\"role\":\"system\",\"content\":\"  be brief \"},"
                 "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hello\"},"
                 "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},{\"type\":\"text\",\"text\":\"  \"},"
                 "{\"type\":\"text\",\"text\":\"world\"}]},{\"role\":\"tool\"},\"junk\"]}");
    assert_prompt(&b, "be brief hello world");
    cr_assert_eq(b.prompt.codepoints, 20);
}

Test(request, completion_prompt_string_or_list)
{
    dp_body_t b = parse_ok("{\"prompt\":\" once upon \"}");
    assert_prompt(&b, "once upon");
    b = parse_ok("{\"prompt\":[\"a\", 7, \"b c\", \"\"]}");
    assert_prompt(&b, "a b c");
    b = parse_ok("{\"prompt\":[1,2,3]}");
    assert_prompt(&b, "");
}

Test(request, codepoints_count_characters_not_bytes)
{
    cr_assert_eq(dp_codepoints("héllo", strlen("héllo")), 5);
    cr_assert_eq(dp_codepoints("你好", strlen("你好")), 2);
    cr_assert_eq(dp_codepoints("", 0), 0);
}

/* Long texts too, so every chunk width (16 bytes, 8, single bytes) and the fold of the byte
 * lanes (every 255 chunks of 16) are crossed: against a byte-by-byte count of lead bytes, for
 * every length up to 5,000 bytes of a pseudo-random mix of 1- to 4-byte characters and stray
 * continuation bytes. */
Test(request, codepoints_of_long_texts_match_a_byte_count)
{
    static const char *const pieces[] = {"a",    " ",    "\xc3\xa9", "\xe4\xbd\xa0", "\xf0\x9f\x98\x80",
                                         "\x80", "\xbf", "\xff"};
    char *t = malloc(5000 + 4);
    size_t len = 0;
    unsigned r = 7;
    while (len < 5000) {
        r = r * 1103515245u + 12345u;
        const char *p = pieces[(r >> 16) % 8];
        memcpy(t + len, p, strlen(p));
        len += strlen(p);
    }
    size_t want = 0;
    for (size_t n = 0; n <= 5000; n++) {
        cr_assert_eq(dp_codepoints(t, n), want, "first %zu bytes", n);
        want += n < len && ((unsigned char)t[n] & 0xC0) != 0x80;
    }
    free(t);
}

/* The prompt's code points are counted as it is unescaped: for pieces of every length up to 300
 * bytes of 1- to 4-byte characters, stray continuation bytes, simple and \\u escapes (surrogate
 * pairs, lone halves, \\u0000) and spaces that trimming removes, in two messages, the count is
 * the reference count of the text assembled. */
Test(request, prompt_codepoints_are_counted_while_unescaping)
{
    static const char *const pieces[] = {
        "a",    " ",       "\xc3\xa9",       "\xe4\xbd\xa0", "\xf0\x9f\x98\x80", "\x80",
        "\\n",  "\\u00e9", "\\ud83d\\ude00", "\\ud83d",      "\\ude00",          "\\u0000",
        "\\\"", "\t"};
    size_t npieces = sizeof pieces / sizeof *pieces;
    char *text = malloc(400), *body = malloc(1000);
    unsigned r = 11;
    for (size_t n = 0; n <= 300; n++) {
        size_t len = 0;
        while (len < n) {
            r = r * 1103515245u + 12345u;
            const char *p = pieces[(r >> 16) % npieces];
            memcpy(text + len, p, strlen(p));
            len += strlen(p);
        }
        text[len] = '\0';
        int k = snprintf(body, 1000,
                         "{\"messages\":[{\"role\":\"system\",\"content\":\" %s\"},"
                         "{\"role\":\"user\",\"content\":\"%s \"}]}",
                         text, text);
        dp_body_t b;
        cr_assert_eq(dp_parse_body(&pool, body, (size_t)k, true, &b), 0, "%s", body);
        cr_assert_eq(b.prompt.codepoints, dp_codepoints(b.prompt.text, b.prompt.len), "%s", body);
    }
    free(text);
    free(body);
}

/* A string's end, an escape or a NUL found at every offset of strings up to 40 bytes long, across
 * the scanner's 16- and 8-byte chunks: the value read back is the one written. */
Test(request, string_ends_are_found_at_every_offset)
{
    char body[128], want[64];
    for (size_t n = 0; n <= 40; n++)
        for (size_t k = 0; k <= n; k++) {
            memset(want, 'a', n);
            want[n] = '\0';
            want[k] = k < n ? '"' : '\0'; /* an escaped quote at k (none when k == n) */
            int len = snprintf(body, sizeof body, "{\"model\":\"%.*s%s%s\"}", (int)k, want,
                               k < n ? "\\\"" : "", k < n ? want + k + 1 : "");
            dp_body_t b;
            cr_assert_eq(dp_parse_body(&pool, body, (size_t)len, false, &b), 0, "%s", body);
            cr_assert_eq(b.model.len, n, "%s", body);
            cr_assert_eq(memcmp(b.model.base, want, n), 0, "%s", body);
            body[len - 2] = '\0'; /* a NUL where the closing quote was: not a string */
            cr_assert_eq(dp_parse_body(&pool, body, (size_t)len, false, &b), -1, "%s", body);
        }
}

Test(request, long_prompt_is_assembled_whole)
{
    size_t n = 100000;
    char *body = malloc(n + 64);
    int k = sprintf(body, "{\"prompt\":\"");
    memset(body + k, 'x', n);
    strcpy(body + k + n, "\"}");
    dp_body_t b;
    cr_assert_eq(dp_parse_body(&pool, body, strlen(body), true, &b), 0);
    cr_assert_eq(b.prompt.len, n);
    cr_assert_eq(b.prompt.codepoints, n);
    free(body);
}

/* Long strings (past the length from which the walks after validation look them up instead of
 * reading them again, dataplane/request.c's memo): more of them than the memo holds, with their
 * first escape early, late or nowhere, next to short ones and to a long value the router does not
 * read; the prompt must be every content, unescaped, joined as for short ones. */
Test(request, long_strings_are_walked_past_and_read_whole)
{
    size_t cap = 1 << 20, n = 0, w = 0;
    char *body = malloc(cap), *want = malloc(cap);
    n += (size_t)sprintf(body + n, "{\"stop\":\"");
    for (int i = 0; i < 3000; i++)
        body[n++] = 's';
    n += (size_t)sprintf(body + n, "\",\"messages\":[");
    for (int m = 0; m < 100; m++) {
        size_t len =
            m % 3 == 0 ? 40 : 1000 + (size_t)(m % 24) * 150;      /* short, and around the memo's length */
        size_t esc = m % 4 == 1 ? 3 : m % 4 == 2 ? len - 5 : len; /* where the one escape goes */
        n += (size_t)sprintf(body + n, "%s{\"role\":\"user\",\"content\":\"", m ? "," : "");
        if (w)
            want[w++] = ' ';
        for (size_t i = 0; i < len; i++) {
            if (i == esc) {
                body[n++] = '\\', body[n++] = 'n';
                want[w++] = '\n';
            }
            body[n++] = want[w++] = (char)('a' + (i + (size_t)m) % 26);
        }
        n += (size_t)sprintf(body + n, "\"}");
    }
    n += (size_t)sprintf(body + n, "],\"model\":\"m\",\"stream\":true}");
    want[w] = 0;
    dp_body_t b;
    cr_assert_eq(dp_parse_body(&pool, body, n, true, &b), 0);
    cr_assert_eq(b.prompt.len, w);
    cr_assert(memcmp(b.prompt.text, want, w) == 0, "the prompt differs from the contents joined");
    cr_assert(b.stream);
    cr_assert(b.model.len == 1 && b.model.base[0] == 'm');
    cr_assert_eq(b.close, n - 1);
    /* the same long string, invalid past the memo's length: rejected */
    n = (size_t)sprintf(body, "{\"prompt\":\"");
    for (int i = 0; i < 1500; i++)
        body[n++] = 'x';
    n += (size_t)sprintf(body + n, "\\q\"}");
    cr_assert_eq(dp_parse_body(&pool, body, n, true, &b), -1);
    free(body);
    free(want);
}

Test(request, escapes_unescape_as_json_c_does)
{
    dp_body_t b = parse_ok("{\"prompt\":\"a\\/b\\\"c\\\\d\\n\\u00e9\\u4f60\\ud83d\\ude00e\"}");
    assert_prompt(&b, "a/b\"c\\d\n\xc3\xa9\xe4\xbd\xa0\xf0\x9f\x98\x80"
                      "e");
    cr_assert_eq(b.prompt.codepoints, 12);
    /* lone surrogates (high then text, high then high, low alone, high at the end) become U+FFFD */
    b = parse_ok("{\"prompt\":\"\\ud800x\\ud800\\ud801\\udc00 \\udc00 \\ud800\"}");
    assert_prompt(&b, "\xef\xbf\xbdx\xef\xbf\xbd\xf0\x90\x90\x80 \xef\xbf\xbd \xef\xbf\xbd");
    b = parse_ok("{\"prompt\":\"\\ud800\\n\"}");
    assert_prompt(&b, "\xef\xbf\xbd");
    b = parse_ok("{\"prompt\":\"\\t\\f\\u000b x \\r\"}");
    assert_prompt(&b, "x");
}

Test(request, keys_compare_unescaped_and_the_last_one_counts)
{
    dp_body_t b = parse_ok("{\"\\u0073tream\":true,\"prompt\":\"a\",\"prompt\":\"b\"}");
    cr_assert(b.stream);
    assert_prompt(&b, "b");
    b = parse_ok("{\"stream\":true,\"stream\":false}");
    cr_assert_not(b.stream);
    b = parse_ok("{\"messages\":[{\"content\":\"x\",\"content\":\"y\"}],\"messages\":7,\"prompt\":\"p\"}");
    assert_prompt(&b, "p");
    b = parse_ok("{\"messages\":[{\"content\":[{\"type\":\"text\\u0000x\",\"text\":\"t\"}]}]}");
    assert_prompt(&b, "t"); /* json-c compares as C strings */
}

Test(request, model_request_id_members_and_close)
{
    const char *j = "{\"model\":\"m\\u00e9\",\"request_id\":null, \"x\":{\"model\":1} } ";
    dp_body_t b = parse_ok(j);
    cr_assert_eq(b.model.len, 3);
    cr_assert(memcmp(b.model.base, "m\xc3\xa9", 3) == 0);
    cr_assert(b.has_request_id);
    cr_assert_eq(b.members, 3);
    cr_assert_eq(j[b.close], '}');
    cr_assert_eq(b.close, strlen(j) - 2);
    b = parse_ok("{\"model\":\"plain\"}");
    cr_assert_eq(b.model.len, 5);
    b = parse_ok("{\"model\":5}");
    cr_assert_null(b.model.base);
    cr_assert_not(parse_ok("{}").has_request_id);
}

Test(request, session_id_top_level_or_extra_body)
{
    dp_body_t a = parse_ok("{\"session_id\":\"s1\"}"),
              b = parse_ok("{\"extra_body\":{\"session_id\":\"s1\"}}");
    dp_body_t c = parse_ok("{\"session_id\":\"\",\"extra_body\":{\"session_id\":\"s\\u0031\"}}");
    cr_assert_neq(a.prompt.session, 0);
    cr_assert_eq(a.prompt.session, b.prompt.session);
    cr_assert_eq(a.prompt.session, c.prompt.session);
    cr_assert_eq(parse_ok("{\"session_id\":3}").prompt.session, 0);
}

Test(request, rejects_bad_grammar_and_deep_nesting)
{
    const char *bad[] = {
        "{\"a\":01}",  "{\"a\":.5}",       "{\"a\":1e}", "{\"a\":-}",     "{\"a\":True}",
        "{\"a\":nul}", "{\"a\":\"\\x\"}",  "{'a':1}",    "{\v\"a\":1}",   "{\"a\":[1,]}",
        "{,}",         "{\"a\"}",          "{1:2}",      "{\"a\":1}/**/", "{\"a\":\"\\u00zz\"}",
        "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":00}", "{\"a\":-01}",   "{\"a\":1.}",
        "{\"a\":+1}",  "{\"a\":truex}",    "{\"a\":\"x", "{\"a\":\"\\",   "{\"a\":\"\\u12"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        dp_body_t b;
        cr_expect_eq(dp_parse_body(&pool, bad[i], strlen(bad[i]), true, &b), -1, "accepted: %s", bad[i]);
    }
    const char nul[] = "{\"a\":\"x\0y\"}", nul_after[] = "{\"a\":1}\0";
    dp_body_t b;
    cr_expect_eq(dp_parse_body(&pool, nul, sizeof(nul) - 1, true, &b), -1);
    cr_expect_eq(dp_parse_body(&pool, nul_after, sizeof(nul_after) - 1, true, &b), -1);
    char deep[256];
    for (int d = 63; d <= 64; d++) { /* 64 levels with the top-level object, not 65 */
        int n = sprintf(deep, "{\"a\":");
        memset(deep + n, '[', (size_t)d), n += d;
        memset(deep + n, ']', (size_t)d), n += d;
        deep[n++] = '}';
        cr_expect_eq(dp_parse_body(&pool, deep, (size_t)n, true, &b), d == 63 ? 0 : -1, "depth %d", d + 1);
    }
    cr_assert_eq(
        parse_ok("{\"a\":[-0,1.5e3,1E+5,-1.5E-3,0.0,1e05,123456789012345678901234567890,\"\t\"]}").members,
        1);
}
