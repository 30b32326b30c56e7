/*
 * tools/fd-sim/pd.c - fd-sim's prefill/decode roles (pd.h): what the prefill role does to an
 * answer, and a decode instance's check of the disaggregate_info the router adds
 * (docs/fastdeploy.md 12: the Go router's keys and types, and no other key).
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fd-sim/body.h"
#include "tools/fd-sim/pd.h"

typedef enum { K_STRING, K_PORT, K_STRINGS_OR_NULL, K_PROTOCOL, K_TP } kind_t;

static const struct {
    const char *key;
    kind_t kind;
} DINFO_KEYS[] = {
    {"prefill_ip", K_STRING},
    {"decode_ip", K_STRING},
    {"prefill_connector_port", K_PORT},
    {"decode_connector_port", K_PORT},
    {"decode_device_ids", K_STRINGS_OR_NULL},
    {"decode_rdma_ports", K_STRINGS_OR_NULL},
    {"transfer_protocol", K_PROTOCOL},
    {"decode_tp_size", K_TP},
};

#define N_DINFO_KEYS (sizeof(DINFO_KEYS) / sizeof(DINFO_KEYS[0]))

static bool strings_or_null(json_object *v)
{
    if (v == NULL)
        return true;
    if (!json_object_is_type(v, json_type_array))
        return false;
    for (size_t i = 0; i < json_object_array_length(v); i++)
        if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
            return false;
    return true;
}

static const char *kind_problem(kind_t kind, json_object *v)
{
    int64_t n = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : -1;
    switch (kind) {
    case K_STRING:
        return json_object_is_type(v, json_type_string) ? NULL : "must be a string";
    case K_PORT:
        return n >= 0 && n <= 65535 ? NULL : "must be an integer port (0 to 65535)";
    case K_STRINGS_OR_NULL:
        return strings_or_null(v) ? NULL : "must be an array of strings or null";
    case K_PROTOCOL:
        return json_object_is_type(v, json_type_string) && (strcmp(json_object_get_string(v), "ipc") == 0 ||
                                                            strcmp(json_object_get_string(v), "rdma") == 0)
                   ? NULL
                   : "must be \"ipc\" or \"rdma\"";
    case K_TP:
        return n >= 1 ? NULL : "must be an integer >= 1";
    }
    return "is invalid";
}

static bool known_key(const char *key)
{
    for (size_t i = 0; i < N_DINFO_KEYS; i++)
        if (strcmp(DINFO_KEYS[i].key, key) == 0)
            return true;
    return false;
}

int sim_check_disaggregate(json_object *root, char *err, size_t errlen)
{
    json_object *rid, *info, *v;
    if (!json_object_object_get_ex(root, "request_id", &rid) || rid == NULL) {
        snprintf(err, errlen, "decode instance: request_id is missing");
        return -1;
    }
    if (!json_object_object_get_ex(root, "disaggregate_info", &info) || info == NULL) {
        snprintf(err, errlen, "decode instance: disaggregate_info is missing");
        return -1;
    }
    if (!json_object_is_type(info, json_type_object)) {
        snprintf(err, errlen, "decode instance: disaggregate_info must be an object");
        return -1;
    }
    for (size_t i = 0; i < N_DINFO_KEYS; i++) {
        if (!json_object_object_get_ex(info, DINFO_KEYS[i].key, &v)) {
            snprintf(err, errlen, "decode instance: disaggregate_info.%s is missing", DINFO_KEYS[i].key);
            return -1;
        }
        const char *problem = kind_problem(DINFO_KEYS[i].kind, v);
        if (problem) {
            snprintf(err, errlen, "decode instance: disaggregate_info.%s %s", DINFO_KEYS[i].key, problem);
            return -1;
        }
    }
    json_object_object_foreach(info, key, val)
    {
        (void)val;
        if (!known_key(key)) {
            snprintf(err, errlen, "decode instance: disaggregate_info has an unexpected key %.64s", key);
            return -1;
        }
    }
    return 0;
}

int sim_pd_check(const sim_config_t *cfg, json_object *root, char *err, size_t errlen)
{
    return sim_role_of(cfg) == SIM_ROLE_DECODE ? sim_check_disaggregate(root, err, errlen) : 0;
}

unsigned sim_pd_prefill_delay_ms(const sim_config_t *cfg)
{
    return sim_role_of(cfg) == SIM_ROLE_PREFILL ? cfg->prefill_delay_ms : 0;
}

void sim_pd_shape(const sim_config_t *cfg, bool engine, sim_gen_t *g)
{
    if (sim_role_of(cfg) != SIM_ROLE_PREFILL)
        return;
    if (g->tokens > 1)
        g->tokens = 1; /* FastDeploy's prefill instance answers with the first token */
    if (!engine)
        g->first_token_delay_ms += cfg->prefill_delay_ms; /* with it, call_engine.c holds the token */
}

void sim_pd_record(sim_state_t *st, json_object *root)
{
    json_object *rid = NULL, *info = NULL;
    if (root) {
        json_object_object_get_ex(root, "request_id", &rid);
        json_object_object_get_ex(root, "disaggregate_info", &info);
    }
    char *r = rid ? strdup(json_object_to_json_string_ext(rid, SIM_JSON_FLAGS)) : NULL;
    sim_state_record_pd(st, r, info ? json_object_to_json_string_ext(info, SIM_JSON_FLAGS) : NULL);
    free(r);
}
