/*
 * tests/unit/test_cp_models_parse.c - cp_models_parse (controlplane/models_poll.c), the strict
 * parser of an instance's GET /v1/models answer: FastDeploy's and OpenAI's list shape, repeated
 * ids kept once, informative fields that are optional, and every hostile answer refused (not
 * JSON, trailing data, wrong types, empty / too long / control-character ids, too many models,
 * nesting beyond the bound); plus the shm accessors the request path uses on what it stores.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "controlplane/cp.h"
#include "controlplane/models_poll.h"

static shm_model_info_t m[SHM_INSTANCE_MODELS];
static unsigned n;
static char err[160];

static int parse(const char *text)
{
    memset(m, 0, sizeof(m));
    err[0] = '\0';
    return cp_models_parse(text, strlen(text), m, SHM_INSTANCE_MODELS, &n, err, sizeof(err));
}

Test(models_parse, fastdeploy_list)
{
    cr_assert_eq(
        parse("{\"object\":\"list\",\"data\":[{\"id\":\"ERNIE-4.5\",\"object\":\"model\",\"created\":"
              "1700000000,\"owned_by\":\"FastDeploy\",\"root\":\"/models/ernie\",\"parent\":null,"
              "\"max_model_len\":8192,\"permission\":[{\"id\":\"p\",\"allow_view\":true}]}]}\n"),
        0, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(m[0].id, "ERNIE-4.5");
    cr_assert_str_eq(m[0].owned_by, "FastDeploy");
    cr_assert_eq(m[0].created, 1700000000);
}

Test(models_parse, several_repeats_once_optional_fields)
{
    cr_assert_eq(
        parse("{\"data\":[{\"id\":\"a\"},{\"id\":\"b\",\"owned_by\":7,\"created\":\"x\"},{\"id\":\"a\"}]}"),
        0, "%s", err);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(m[1].id, "b");
    cr_assert_str_eq(m[1].owned_by, "");
    cr_assert_eq(m[1].created, 0);
    cr_assert_eq(parse("{\"object\":\"list\",\"data\":[]}"), 0);
    cr_assert_eq(n, 0);
}

Test(models_parse, hostile_answers)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{\"data\":[{\"id\":\"a\"}]} trailing",
        "{\"data\":[{\"id\":\"a\"}]}{}",
        "{\"object\":\"model\",\"data\":[]}",
        "{\"object\":1,\"data\":[]}",
        "{\"data\":{}}",
        "{\"object\":\"list\"}",
        "{\"data\":[1]}",
        "{\"data\":[{}]}",
        "{\"data\":[{\"id\":\"\"}]}",
        "{\"data\":[{\"id\":5}]}",
        "{\"data\":[{\"id\":\"a\\u0000b\"}]}",
        "{\"data\":[{\"id\":\"a\\nb\"}]}",
        "{\"data\":[{\"id\":\"a\"}],}",
        "{\"data\":[{\"id\":\"a\",\"x\":[[[[[[[[[[1]]]]]]]]]]}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_neq(parse(bad[i]), 0, "accepted: %s", bad[i]);
        cr_assert_eq(n, 0);
        cr_assert_neq(err[0], '\0', "no reason for: %s", bad[i]);
    }
}

/* the text is (ptr, len), not a C string: nothing past len is read (found by tests/fuzz/fuzz_models.c) */
Test(models_parse, not_nul_terminated)
{
    static const char body[] = "{\"data\":[]}";
    char *copy = malloc(sizeof(body) - 1);
    memcpy(copy, body, sizeof(body) - 1);
    cr_assert_eq(cp_models_parse(copy, sizeof(body) - 1, m, SHM_INSTANCE_MODELS, &n, err, sizeof(err)), 0,
                 "%s", err);
    free(copy);
}

Test(models_parse, bounds)
{
    char id[SHM_MODEL_ID_LEN + 1];
    memset(id, 'x', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    char body[4096];
    snprintf(body, sizeof(body), "{\"data\":[{\"id\":\"%s\"}]}", id); /* 128 bytes: one too many */
    cr_assert_neq(parse(body), 0);
    id[SHM_MODEL_ID_LEN - 1] = '\0';
    snprintf(body, sizeof(body), "{\"data\":[{\"id\":\"%s\"}]}", id);
    cr_assert_eq(parse(body), 0, "%s", err);
    cr_assert_eq(strlen(m[0].id), SHM_MODEL_ID_LEN - 1);

    size_t at = (size_t)snprintf(body, sizeof(body), "{\"data\":[");
    for (int i = 0; i <= SHM_INSTANCE_MODELS; i++)
        at += (size_t)snprintf(body + at, sizeof(body) - at, "%s{\"id\":\"m%d\"}", i ? "," : "", i);
    snprintf(body + at, sizeof(body) - at, "]}");
    cr_assert_neq(parse(body), 0);
    cr_assert(strstr(err, "more than") != NULL, "%s", err);
}

Test(models_shm, accepts_what_it_lists_or_everything_when_unknown)
{
    static shm_instance_t in;
    memset(&in, 0, sizeof(in));
    cr_assert(shm_models_accepts(&in, shm_model_hash("a", 1), "a", 1), "unknown models accept every name");
    cr_assert_eq(shm_models_load(&in, m, SHM_INSTANCE_MODELS), -1);
    cr_assert_eq(parse("{\"data\":[{\"id\":\"a\"},{\"id\":\"bb\"}]}"), 0);
    shm_models_store(&in, m, n, 1);
    cr_assert(shm_models_accepts(&in, shm_model_hash("bb", 2), "bb", 2));
    cr_assert(!shm_models_accepts(&in, shm_model_hash("b", 1), "b", 1));
    cr_assert(!shm_models_accepts(&in, shm_model_hash("c", 1), "c", 1));
    cr_assert_eq(shm_models_load(&in, m, SHM_INSTANCE_MODELS), 2);
    shm_models_forget(&in);
    cr_assert(shm_models_accepts(&in, shm_model_hash("c", 1), "c", 1));
}
