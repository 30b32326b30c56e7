/*
 * tools/fd-sim/pd.c - the pure parts of fd-sim's prefill/decode roles and of abort: a decode
 * instance's check of the disaggregate_info the router adds (docs/fastdeploy.md 12, the Go
 * router's keys and types, and no other key, so a router that drifts is caught), the request key
 * abort requests match, and the parsing of a /v1/abort_requests body (docs/fastdeploy.md 13).
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fd-sim/sim.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

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

char *sim_request_key(json_object *v)
{
    if (json_object_is_type(v, json_type_string))
        return strndup(json_object_get_string(v), (size_t)json_object_get_string_len(v));
    size_t len;
    const char *s = json_object_to_json_string_length(v, JSON_FLAGS, &len);
    return s ? strndup(s, len) : NULL;
}

int sim_parse_abort(const char *body, size_t len, sim_abort_req_t *out)
{
    char err[128];
    out->all = false;
    out->ids = NULL;
    json_object *root = sim_parse_object(body, len, err, sizeof(err)), *v;
    if (!root)
        return -1;
    int rc = -1;
    if (json_object_object_get_ex(root, "abort_all", &v) && json_object_is_type(v, json_type_boolean) &&
        json_object_get_boolean(v)) {
        out->all = true;
        rc = 0;
    } else if (json_object_object_get_ex(root, "req_ids", &v) && json_object_is_type(v, json_type_array)) {
        out->ids = json_object_get(v);
        rc = 0;
    }
    json_object_put(root);
    return rc;
}

void sim_abort_req_free(sim_abort_req_t *a)
{
    json_object_put(a->ids);
    a->ids = NULL;
}
