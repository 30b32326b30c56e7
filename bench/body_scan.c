/*
 * bench/body_scan.c - what reading a completion body costs: dataplane/request.c's one-pass scan
 * (dp_parse_body, prompt wanted) against a json-c parse of the same body (the tree it replaced),
 * for chat bodies of about 1 KiB, 8 KiB and 64 KiB. A benchmark, not a test: built as
 * bench_body_scan, never run by CTest (bench/README.md).
 *
 * Each cell runs ROUNDS rounds of ITERS parses and prints the median ns per body of each, and
 * their ratio. The body: a system message and user turns of words, plus the usual scalar fields;
 * "mixed" words are mostly ASCII with some 2- and 3-byte characters and escapes (\n, \", \u00e9:
 * one every dozen bytes or so, as in code or quoted text), "plain" words are ASCII letters only
 * (prose), in user turns of 40 words each; "long" is plain words in one user turn (a document in
 * the prompt: the body of bench/overhead.py's large requests).
 */
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataplane/request.h"

#define ROUNDS 9

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* a chat body of about `size` bytes, of mixed or plain words (above), in turns of `turn` words */
static char *make_body(size_t size, bool plain, int turn, size_t *len)
{
    static const char *mixed[] = {"the",    "router", "h\xc3\xa9llo",   "\xe4\xbd\xa0\xe5\xa5\xbd", "cache",
                                  "prefix", "\\n",    "\\\"quoted\\\"", "\\u00e9t\\u00e9",          "tokens"};
    static const char *letters[] = {"the",    "router", "hello",  "nihao", "cache",
                                    "prefix", "new",    "quoted", "etes",  "tokens"};
    const char **words = plain ? letters : mixed;
    char *b = malloc(size + 512);
    size_t n = (size_t)sprintf(b, "{\"model\":\"m\",\"stream\":true,\"max_tokens\":128,\"temperature\":0.7,"
                                  "\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"}");
    unsigned r = 1;
    while (n < size) {
        n += (size_t)sprintf(b + n, ",{\"role\":\"user\",\"content\":\"");
        for (int w = 0; w < turn && n < size; w++) {
            r = r * 1103515245u + 12345u;
            n += (size_t)sprintf(b + n, "%s ", words[(r >> 16) % 10]);
        }
        n += (size_t)sprintf(b + n, "\"}");
    }
    n += (size_t)sprintf(b + n, "]}");
    *len = n;
    return b;
}

static double time_scan(const char *body, size_t len, int iters)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    double t0 = now_ns();
    for (int i = 0; i < iters; i++) {
        dp_body_t b;
        if (dp_parse_body(&pool, body, len, true, &b) != 0)
            abort();
        h2o_mem_clear_pool(&pool);
    }
    return (now_ns() - t0) / iters;
}

static double time_jsonc(const char *body, size_t len, int iters)
{
    double t0 = now_ns();
    for (int i = 0; i < iters; i++) {
        json_tokener *tok = json_tokener_new_ex(64);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        json_object *root = json_tokener_parse_ex(tok, body, (int)len);
        if (!root)
            abort();
        json_tokener_free(tok);
        json_object_put(root);
    }
    return (now_ns() - t0) / iters;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    const size_t sizes[] = {1024, 8192, 65536};
    printf("%-6s %-8s %12s %12s %8s\n", "words", "body", "scan ns", "json-c ns", "ratio");
    static const char *const kinds[] = {"mixed", "plain", "long"};
    for (size_t s = 0; s < 9; s++) {
        size_t len, kind = s / 3;
        char *body = make_body(sizes[s % 3], kind > 0, kind == 2 ? 1 << 30 : 40, &len);
        int iters = (int)(4000000 / len) + 10;
        double scan[ROUNDS], jc[ROUNDS];
        for (int r = 0; r < ROUNDS; r++) {
            scan[r] = time_scan(body, len, iters);
            jc[r] = time_jsonc(body, len, iters);
        }
        qsort(scan, ROUNDS, sizeof(double), cmp);
        qsort(jc, ROUNDS, sizeof(double), cmp);
        printf("%-6s %-8zu %12.0f %12.0f %7.1fx\n", kinds[kind], len, scan[ROUNDS / 2], jc[ROUNDS / 2],
               jc[ROUNDS / 2] / scan[ROUNDS / 2]);
        free(body);
    }
    return 0;
}
