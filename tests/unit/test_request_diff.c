/*
 * Differential test of dataplane/request.c against json-c (the parser it replaced): on a corpus of
 * generated bodies (chat and completion shapes, escapes, surrogates, repeated keys, nesting) and
 * of their mutations, the scanner must accept exactly the bodies json-c accepts and extract the
 * same prompt text, stream flag, request_id presence, model and session hash.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "dataplane/request.h"

/* ---- the reference: json-c, strict mode, with the old extraction rules ---- */

typedef struct {
    char text[1 << 16];
    size_t len;
} ref_text_t;

static void ref_piece(ref_text_t *a, json_object *o)
{
    if (!json_object_is_type(o, json_type_string))
        return;
    const char *s = json_object_get_string(o);
    size_t len = (size_t)json_object_get_string_len(o);
    while (len && strchr(" \t\n\r\v\f", *s) && *s)
        s++, len--;
    while (len && s[len - 1] && strchr(" \t\n\r\v\f", s[len - 1]))
        len--;
    if (!len)
        return;
    if (a->len)
        a->text[a->len++] = ' ';
    memcpy(a->text + a->len, s, len);
    a->len += len;
}

static json_object *get(json_object *o, const char *k)
{
    json_object *v = NULL;
    return json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static void ref_prompt(json_object *root, ref_text_t *a)
{
    json_object *v = get(root, "messages");
    if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *c = get(json_object_array_get_idx(v, i), "content");
            if (json_object_is_type(c, json_type_string))
                ref_piece(a, c);
            else if (json_object_is_type(c, json_type_array))
                for (size_t j = 0; j < json_object_array_length(c); j++) {
                    json_object *part = json_object_array_get_idx(c, j), *type = get(part, "type");
                    if (json_object_is_type(type, json_type_string) &&
                        !strcmp(json_object_get_string(type), "text"))
                        ref_piece(a, get(part, "text"));
                }
        }
    } else if ((v = get(root, "prompt"))) {
        if (json_object_is_type(v, json_type_array))
            for (size_t i = 0; i < json_object_array_length(v); i++)
                ref_piece(a, json_object_array_get_idx(v, i));
        else
            ref_piece(a, v);
    }
}

static json_object *ref_parse(const char *body, size_t len)
{
    json_tokener *tok = json_tokener_new_ex(64);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    size_t end = json_tokener_get_parse_end(tok);
    bool ok = root && json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    while (ok && end < len && strchr(" \t\n\r", body[end]) && body[end])
        end++;
    if (!(ok && end == len && json_object_is_type(root, json_type_object))) {
        json_object_put(root);
        return NULL;
    }
    return root;
}

/* ---- the corpus ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % n);
}

typedef struct {
    char b[1 << 15];
    size_t n;
} gen_t;

static void put(gen_t *g, const char *s)
{
    size_t l = strlen(s);
    if (g->n + l < sizeof(g->b) - 1)
        memcpy(g->b + g->n, s, l), g->n += l;
}

static void gen_string(gen_t *g)
{
    static const char *pieces[] = {"a",
                                   " ",
                                   "hello",
                                   "\\n",
                                   "\\t",
                                   "\\\"",
                                   "\\\\",
                                   "\\/",
                                   "\\u00e9",
                                   "\\u4F60",
                                   "\\ud83d\\ude00",
                                   "\\ud800",
                                   "\\udc00",
                                   "\\u0000",
                                   "\xc3\xa9",
                                   "\xe4\xbd\xa0",
                                   "\\f",
                                   "\\u000b",
                                   "\t",
                                   "  ",
                                   "\\b",
                                   "\\r",
                                   "\\ud83d",
                                   "x y"};
    put(g, "\"");
    for (unsigned i = rnd(6); i; i--)
        put(g, pieces[rnd(sizeof(pieces) / sizeof(*pieces))]);
    put(g, "\"");
}

static void gen_value(gen_t *g, int depth);

static void gen_key(gen_t *g)
{
    static const char *keys[] = {"\"messages\"",   "\"prompt\"",     "\"content\"",    "\"type\"",
                                 "\"text\"",       "\"stream\"",     "\"model\"",      "\"role\"",
                                 "\"request_id\"", "\"session_id\"", "\"extra_body\"", "\"\\u0074ext\"",
                                 "\"x\""};
    if (rnd(8) == 0)
        gen_string(g);
    else
        put(g, keys[rnd(sizeof(keys) / sizeof(*keys))]);
}

static void gen_part(gen_t *g, int depth)
{
    put(g, "{");
    for (unsigned i = rnd(4); i; i--) {
        gen_key(g);
        put(g, rnd(2) ? ":" : " : ");
        if (rnd(3) == 0)
            put(g, rnd(2) ? "\"text\"" : "\"image_url\"");
        else
            gen_value(g, depth + 1);
        if (i > 1)
            put(g, ",");
    }
    put(g, "}");
}

static void gen_value(gen_t *g, int depth)
{
    static const char *scalars[] = {"true", "false", "null", "0", "-1.5e3", "42", "1E+2", "-0"};
    unsigned k = rnd(depth > 6 ? 3 : 6);
    if (k == 0)
        put(g, scalars[rnd(sizeof(scalars) / sizeof(*scalars))]);
    else if (k <= 2)
        gen_string(g);
    else if (k == 3)
        gen_part(g, depth);
    else {
        put(g, rnd(2) ? "[" : "[ ");
        for (unsigned i = rnd(5); i; i--) {
            if (rnd(2))
                gen_part(g, depth + 1);
            else
                gen_value(g, depth + 1);
            if (i > 1)
                put(g, ",");
        }
        put(g, "]");
    }
}

static void gen_body(gen_t *g)
{
    g->n = 0;
    gen_part(g, 0);
    g->b[g->n] = '\0';
}

/*
 * delete or insert one structural character, or truncate (not digits or letters: json-c accepts
 * non-JSON numbers and words such as -.5, 1., NaN, which the scanner rejects on purpose)
 */
static void mutate(gen_t *g)
{
    static const char structural[] = "{}[],:\"\\ ";
    size_t at = rnd((unsigned)g->n + 1);
    switch (rnd(3)) {
    case 0:
        if (at < g->n && strchr(structural, g->b[at]))
            memmove(g->b + at, g->b + at + 1, g->n - at - 1), g->n--;
        break;
    case 1:
        memmove(g->b + at + 1, g->b + at, g->n - at), g->n++;
        g->b[at] = structural[rnd(sizeof(structural) - 1)];
        break;
    default:
        g->n = at;
    }
    g->b[g->n] = '\0';
}

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ? h : 1;
}

static uint64_t ref_session(json_object *root)
{
    json_object *v = get(root, "session_id");
    if (!(json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0))
        v = get(get(root, "extra_body"), "session_id");
    if (!(json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0))
        return 0;
    return fnv1a(json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

static void compare(const gen_t *g, size_t *accepted)
{
    static ref_text_t want;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    dp_body_t b;
    int got = dp_parse_body(&pool, g->b, g->n, true, &b);
    json_object *root = ref_parse(g->b, g->n);
    cr_assert_eq(got == 0, root != NULL, "accept differs (scanner %d): %.*s", got, (int)g->n, g->b);
    if (root) {
        ++*accepted;
        want.len = 0;
        ref_prompt(root, &want);
        cr_assert(b.prompt.len == want.len && (!want.len || memcmp(b.prompt.text, want.text, want.len) == 0),
                  "prompt differs on %s: '%.*s' vs '%.*s'", g->b, (int)b.prompt.len, b.prompt.text,
                  (int)want.len, want.text);
        json_object *s = get(root, "stream"), *m = get(root, "model");
        cr_assert_eq(b.stream, json_object_is_type(s, json_type_boolean) && json_object_get_boolean(s), "%s",
                     g->b);
        cr_assert_eq(b.has_request_id, json_object_object_get_ex(root, "request_id", NULL), "%s", g->b);
        bool mstr = json_object_is_type(m, json_type_string);
        cr_assert_eq(b.model.len, mstr ? (size_t)json_object_get_string_len(m) : 0, "%s", g->b);
        cr_assert(!mstr || !b.model.len || memcmp(b.model.base, json_object_get_string(m), b.model.len) == 0);
        cr_assert_eq(b.prompt.session, ref_session(root), "%s", g->b);
        cr_assert_eq(g->b[b.close], '}');
        json_object_put(root);
    }
    h2o_mem_clear_pool(&pool);
}

Test(request_diff, scanner_matches_json_c_on_a_generated_corpus)
{
    static gen_t g;
    size_t accepted = 0, total = 0;
    for (int i = 0; i < 20000; i++, total++) {
        gen_body(&g);
        compare(&g, &accepted);
        for (int m = rnd(3); m >= 0; m--)
            mutate(&g);
        compare(&g, &accepted);
        total++;
    }
    /* the corpus must exercise both sides */
    cr_assert_gt(accepted, total / 3);
    cr_assert_lt(accepted, total - total / 10);
}
