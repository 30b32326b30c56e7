/*
 * dataplane/tokenizer.c - asynchronous calls to the tokenizer service (see tokenizer.h).
 */
#include <json-c/json.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "dataplane/leg.h"
#include "dataplane/pools.h"
#include "dataplane/tokenizer.h"

#define MAX_ANSWER (16 * 1024 * 1024)

static struct {
    bool enabled;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char authority[256];
    char path[512];
} tk;

/* Split "[http://]host[:port][/path?query]" into authority and path. */
static int split_url(const char *url, char *host, size_t hostlen, char *port, size_t portlen, char *path,
                     size_t pathlen)
{
    const char *p = strstr(url, "://");
    if (p && strncmp(url, "http://", 7) != 0)
        return -1; /* https and others are not supported */
    p = p ? p + 3 : url;
    const char *slash = p + strcspn(p, "/?");
    snprintf(tk.authority, sizeof(tk.authority), "%.*s", (int)(slash - p), p);
    snprintf(path, pathlen, "%s%s", *slash == '/' ? "" : "/tokenize", slash);
    const char *auth = tk.authority, *colon;
    if (*auth == '[') {
        const char *end = strchr(auth, ']');
        if (!end)
            return -1;
        snprintf(host, hostlen, "%.*s", (int)(end - auth - 1), auth + 1);
        colon = end[1] == ':' ? end + 1 : NULL;
    } else {
        colon = strrchr(auth, ':');
        snprintf(host, hostlen, "%.*s", (int)(colon ? colon - auth : (long)strlen(auth)), auth);
    }
    snprintf(port, portlen, "%s", colon ? colon + 1 : "80");
    return host[0] ? 0 : -1;
}

int dp_tokenizer_setup(const char *url, char *err, size_t errlen)
{
    if (!url || !url[0])
        return 0;
    char host[256], port[16];
    if (split_url(url, host, sizeof(host), port, sizeof(port), tk.path, sizeof(tk.path)) != 0) {
        snprintf(err, errlen, "invalid tokenizer-url: %s", url);
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "tokenizer-url %s: %s", url, gai_strerror(rc));
        return -1;
    }
    memcpy(&tk.addr, res->ai_addr, res->ai_addrlen);
    tk.addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    tk.enabled = true;
    return 0;
}

bool dp_tokenizer_enabled(void)
{
    return tk.enabled;
}

size_t dp_tokenizer_parse(h2o_mem_pool_t *pool, const char *body, size_t len, uint64_t **ids)
{
    json_tokener *tok = json_tokener_new_ex(8);
    json_object *o = json_tokener_parse_ex(tok, body, (int)len), *list;
    json_tokener_free(tok);
    size_t n = 0;
    if (o && json_object_object_get_ex(o, "input_ids", &list) && json_object_is_type(list, json_type_array) &&
        (n = json_object_array_length(list)) > 0) {
        *ids = h2o_mem_alloc_pool(pool, n * sizeof(**ids));
        for (size_t i = 0; i < n; i++) {
            json_object *v = json_object_array_get_idx(list, i);
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
                n = 0;
                break;
            }
            (*ids)[i] = (uint64_t)json_object_get_int64(v);
        }
    }
    json_object_put(o);
    return n;
}

typedef struct {
    h2o_req_t *req;
    dp_leg_t *leg; /* NULL once ended */
    dp_tokenize_cb cb;
    void *data;
    int status;
    h2o_buffer_t *answer;
    h2o_timeout_entry_t deadline;
} call_t;

static void finish(call_t *c, const char *err)
{
    if (h2o_timeout_is_linked(&c->deadline))
        h2o_timeout_unlink(&c->deadline);
    uint64_t *ids = NULL;
    size_t n = 0;
    if (!err && (c->status < 200 || c->status >= 300))
        err = "status >= 300";
    if (!err && !(n = dp_tokenizer_parse(&c->req->pool, c->answer->bytes, c->answer->size, &ids)))
        err = "no input_ids in the answer";
    if (err)
        LOG_WARN("cache-aware prefill: tokenizer failed, fallback to char tokens: %s", err);
    c->cb(c->req, c->data, err ? NULL : ids, n, err);
}

static void on_head(dp_leg_t *l, int status)
{
    ((call_t *)l->data)->status = status;
}

static void on_data(dp_leg_t *l, const char *buf, size_t len)
{
    call_t *c = l->data;
    if (c->answer->size + len > MAX_ANSWER)
        return;
    h2o_iovec_t dst = h2o_buffer_reserve(&c->answer, len);
    memcpy(dst.base, buf, len);
    c->answer->size += len;
}

static void on_end(dp_leg_t *l, const char *err, bool timed_out)
{
    call_t *c = l->data;
    c->leg = NULL;
    finish(c, timed_out ? "timeout" : err);
}

static const dp_leg_ops_t tokenize_ops = {.on_head = on_head, .on_data = on_data, .on_end = on_end};

static void on_deadline(h2o_timeout_entry_t *entry)
{
    call_t *c = H2O_STRUCT_FROM_MEMBER(call_t, deadline, entry);
    dp_leg_cancel(c->leg);
    c->leg = NULL;
    finish(c, "timeout");
}

static void on_dispose(void *arg)
{
    call_t *c = arg;
    if (h2o_timeout_is_linked(&c->deadline))
        h2o_timeout_unlink(&c->deadline);
    if (c->leg)
        dp_leg_cancel(c->leg);
    h2o_buffer_dispose(&c->answer);
}

static h2o_iovec_t request_body(h2o_mem_pool_t *pool, const pol_prompt_t *prompt)
{
    json_object *o = json_object_new_object();
    json_object *m = json_object_new_string_len(prompt->text, (int)prompt->len);
    json_object_object_add(o, "text", m);
    json_object_object_add(o, "prompt", json_object_get(m));
    json_object_object_add(o, "message", json_object_get(m));
    size_t len;
    const char *s =
        json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    h2o_iovec_t out = h2o_strdup(pool, s, len);
    json_object_put(o);
    return out;
}

void dp_tokenize(h2o_req_t *req, const pol_prompt_t *prompt, dp_tokenize_cb cb, void *data)
{
    dp_thread_t *t = dp_self(req);
    call_t *c = h2o_mem_alloc_shared(&req->pool, sizeof(*c), on_dispose);
    *c = (call_t){.req = req, .cb = cb, .data = data};
    h2o_buffer_init(&c->answer, &h2o_socket_buffer_prototype);
    c->deadline.cb = on_deadline;
    h2o_timeout_link(t->ctx.loop, &t->tokenizer_timeout, &c->deadline);
    dp_pool_t *pool = dp_pool_acquire_addr(t, &t->tokenizer_pool, (struct sockaddr *)&tk.addr, tk.addrlen);
    c->leg = dp_leg_start(t, pool, h2o_iovec_init(tk.authority, strlen(tk.authority)),
                          h2o_iovec_init(tk.path, strlen(tk.path)), request_body(&req->pool, prompt),
                          &tokenize_ops, c);
    if (!c->leg)
        finish(c, "out of memory");
}
