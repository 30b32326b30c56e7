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
