/*
 * tests/fuzz/fuzz_register_yaml.c - libFuzzer target: register.yaml text to instance items
 * (cp_register_yaml_parse), each item then validated as the control plane does.
 */
#include <json-c/json.h>
#include <stdint.h>

#include "common/instance_info.h"
#include "controlplane/cp.h"
#include "controlplane/register.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_object *items;
    char err[256];
    if (cp_register_yaml_parse((const char *)data, size, &items, err, sizeof err) != CP_RY_OK)
        return 0;
    size_t n = json_object_array_length(items);
    for (size_t i = 0; i < n; i++) {
        struct json_object *item = json_object_array_get_idx(items, i);
        fd_instance_info_t info;
        char msg[256];
        if (json_object_is_type(item, json_type_object))
            (void)fd_instance_parse_object(item, false, &info, msg, sizeof msg);
    }
    json_object_put(items);
    return 0;
}
