/*
 * dataplane/request.c - parsing of completion bodies: validity, `stream`, and the prompt text
 * for the policies that weigh it. json-c is used with its strict mode plus an explicit check
 * that nothing follows the object (json-c otherwise accepts `{} trailing`).
 */
#include <json-c/json.h>
#include <string.h>

#include "dataplane/request.h"

#define MAX_DEPTH 64

size_t dp_codepoints(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

typedef struct {
    h2o_mem_pool_t *pool;
    char *buf;
    size_t len, cap;
} text_acc_t;

static void acc_piece(text_acc_t *a, const char *s, size_t len)
{
    while (len && is_space(*s))
        s++, len--;
    while (len && is_space(s[len - 1]))
        len--;
    if (!len)
        return;
    size_t need = a->len + (a->len ? 1 : 0) + len;
    if (need > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        while (cap < need)
            cap *= 2;
        char *nb = h2o_mem_alloc_pool(a->pool, cap);
        if (a->len)
            memcpy(nb, a->buf, a->len);
        a->buf = nb;
        a->cap = cap;
    }
    if (a->len)
        a->buf[a->len++] = ' ';
    memcpy(a->buf + a->len, s, len);
    a->len += len;
}

static void acc_string(text_acc_t *a, json_object *o)
{
    if (json_object_is_type(o, json_type_string))
        acc_piece(a, json_object_get_string(o), (size_t)json_object_get_string_len(o));
}

static void acc_content(text_acc_t *a, json_object *content)
{
    if (json_object_is_type(content, json_type_string)) {
        acc_string(a, content);
        return;
    }
    if (!json_object_is_type(content, json_type_array))
        return;
    size_t n = json_object_array_length(content);
    for (size_t i = 0; i < n; i++) {
        json_object *part = json_object_array_get_idx(content, i), *type, *text;
        if (json_object_object_get_ex(part, "type", &type) && json_object_is_type(type, json_type_string) &&
            strcmp(json_object_get_string(type), "text") == 0 &&
            json_object_object_get_ex(part, "text", &text))
            acc_string(a, text);
    }
}

static void extract_prompt(h2o_mem_pool_t *pool, json_object *root, pol_prompt_t *out)
{
    text_acc_t a = {.pool = pool};
    json_object *v;
    if (json_object_object_get_ex(root, "messages", &v) && json_object_is_type(v, json_type_array)) {
        size_t n = json_object_array_length(v);
        for (size_t i = 0; i < n; i++) {
            json_object *msg = json_object_array_get_idx(v, i), *content;
            if (json_object_is_type(msg, json_type_object) &&
                json_object_object_get_ex(msg, "content", &content))
                acc_content(&a, content);
        }
    } else if (json_object_object_get_ex(root, "prompt", &v)) {
        if (json_object_is_type(v, json_type_array)) {
            size_t n = json_object_array_length(v);
            for (size_t i = 0; i < n; i++)
                acc_string(&a, json_object_array_get_idx(v, i));
        } else {
            acc_string(&a, v);
        }
    }
    out->text = a.buf;
    out->len = a.len;
    out->codepoints = dp_codepoints(a.buf, a.len);
}

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ? h : 1;
}

/* session_id: top level if a non-empty string, else extra_body.session_id (the Go router's rule) */
static uint64_t session_of(json_object *root)
{
    json_object *v, *extra;
    if (!(json_object_object_get_ex(root, "session_id", &v) && json_object_is_type(v, json_type_string) &&
          json_object_get_string_len(v) > 0) &&
        !(json_object_object_get_ex(root, "extra_body", &extra) &&
          json_object_object_get_ex(extra, "session_id", &v) && json_object_is_type(v, json_type_string) &&
          json_object_get_string_len(v) > 0))
        return 0;
    return fnv1a(json_object_get_string(v), (size_t)json_object_get_string_len(v));
}

int dp_parse_body(h2o_mem_pool_t *pool, const char *body, size_t len, bool want_prompt, dp_body_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!body || !len)
        return -1;
    json_tokener *tok = json_tokener_new_ex(MAX_DEPTH);
    if (!tok)
        return -1;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    size_t end = json_tokener_get_parse_end(tok);
    bool ok = root && json_tokener_get_error(tok) == json_tokener_success;
    json_tokener_free(tok);
    while (ok && end < len && is_space(body[end]))
        end++;
    ok = ok && end == len && json_object_is_type(root, json_type_object);
    if (ok) {
        json_object *s;
        out->stream = json_object_object_get_ex(root, "stream", &s) &&
                      json_object_is_type(s, json_type_boolean) && json_object_get_boolean(s);
        out->has_request_id = json_object_object_get_ex(root, "request_id", NULL);
        out->members = (size_t)json_object_object_length(root);
        if (want_prompt) {
            extract_prompt(pool, root, &out->prompt);
            out->prompt.session = session_of(root);
        }
    }
    json_object_put(root);
    return ok ? 0 : -1;
}
