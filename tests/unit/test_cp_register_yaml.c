/*
 * tests/unit/test_cp_register_yaml.c - register.yaml to JSON (controlplane/register.c): the
 * instances list, YAML scalar typing (plain vs quoted), the error classes that pick the Go
 * router's log messages, and that converted items pass fd_instance_parse_object's rules.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/instance_info.h"
#include "controlplane/cp.h"
#include "controlplane/register.h"

static cp_register_yaml_rc_t parse(const char *text, struct json_object **items, char *err)
{
    return cp_register_yaml_parse(text, strlen(text), items, err, 256);
}

static const char *ser(struct json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

Test(cp_register_yaml, typed_items)
{
    const char *y = "instances:\n"
                    "  - role: prefill\n"
                    "    host_ip: 10.0.0.1\n"
                    "    port: 8000\n"
                    "    connector_port: \"8001\"\n"
                    "    rdma_ports: [8100, '8101']\n"
                    "    transfer_protocol:\n"
                    "      - ipc\n"
                    "      - rdma\n"
                    "    metrics_port: ~\n"
                    "    ratio: 0.5\n"
                    "    flag: true\n"
                    "    neg: -3\n";
    struct json_object *items;
    char err[256] = "";
    cr_assert_eq(parse(y, &items, err), CP_RY_OK, "%s", err);
    cr_assert_eq(json_object_array_length(items), 1);
    cr_assert_str_eq(
        ser(json_object_array_get_idx(items, 0)),
        "{\"role\":\"prefill\",\"host_ip\":\"10.0.0.1\",\"port\":8000,\"connector_port\":\"8001\","
        "\"rdma_ports\":[8100,\"8101\"],\"transfer_protocol\":[\"ipc\",\"rdma\"],"
        "\"metrics_port\":null,\"ratio\":0.5,\"flag\":true,\"neg\":-3}");
    json_object_put(items);
}

Test(cp_register_yaml, items_pass_instance_validation)
{
    const char *y = "instances:\n"
                    "  - {role: mixed, host_ip: 127.0.0.1, port: 9001}\n"
                    "  - {role: 0, host_ip: \"127.0.0.1\", port: \"9002\"}\n"
                    "  - {role: mixed, host_ip: 127.0.0.1, port: 70000}\n";
    struct json_object *items;
    char err[256] = "";
    cr_assert_eq(parse(y, &items, err), CP_RY_OK, "%s", err);
    fd_instance_info_t info;
    char msg[256];
    cr_assert_eq(
        fd_instance_parse_object(json_object_array_get_idx(items, 0), false, &info, msg, sizeof(msg)), 0,
        "%s", msg);
    cr_assert_str_eq(info.url, "http://127.0.0.1:9001");
    cr_assert_eq(
        fd_instance_parse_object(json_object_array_get_idx(items, 1), false, &info, msg, sizeof(msg)), 0,
        "%s", msg);
    cr_assert_eq(info.port, 9002);
    cr_assert_eq(info.role, SHM_ROLE_MIXED);
    cr_assert_neq(
        fd_instance_parse_object(json_object_array_get_idx(items, 2), false, &info, msg, sizeof(msg)), 0);
    cr_assert(strstr(msg, "invalid port: 70000") != NULL, "%s", msg);
    json_object_put(items);
}

Test(cp_register_yaml, quoted_scalars_stay_strings)
{
    struct json_object *items;
    char err[256] = "";
    cr_assert_eq(
        parse("instances:\n  - {a: '1', b: \"true\", c: 'null', d: \"\", e: 1.5e3, f: 0x10}\n", &items, err),
        CP_RY_OK, "%s", err);
    cr_assert_str_eq(ser(json_object_array_get_idx(items, 0)),
                     "{\"a\":\"1\",\"b\":\"true\",\"c\":\"null\",\"d\":\"\",\"e\":1.5e3,\"f\":\"0x10\"}");
    json_object_put(items);
}

Test(cp_register_yaml, empty_documents)
{
    struct json_object *items;
    char err[256];
    cr_assert_eq(parse("", &items, err), CP_RY_EMPTY);
    cr_assert_null(items);
    cr_assert_eq(parse("instances:\n", &items, err), CP_RY_EMPTY);
    cr_assert_eq(parse("instances: []\n", &items, err), CP_RY_EMPTY);
    cr_assert_eq(parse("other: 1\n", &items, err), CP_RY_EMPTY);
}

Test(cp_register_yaml, malformed_documents)
{
    struct json_object *items;
    char err[256];
    cr_assert_eq(parse("instances: [\n", &items, err), CP_RY_PARSE_ERROR);
    cr_assert(strstr(err, "line") != NULL, "%s", err);
    cr_assert_eq(parse("- a\n- b\n", &items, err), CP_RY_PARSE_ERROR);
    cr_assert_eq(parse("instances: 5\n", &items, err), CP_RY_PARSE_ERROR);
    cr_assert(strstr(err, "not a list") != NULL, "%s", err);
    cr_assert_eq(parse("instances:\n  - {port: 1, port: 2}\n", &items, err), CP_RY_PARSE_ERROR);
    cr_assert(strstr(err, "\"port\" already defined") != NULL, "%s", err);
    cr_assert_eq(parse("instances:\n  - {[1]: 2}\n", &items, err), CP_RY_PARSE_ERROR);
    cr_assert_null(items);
}

Test(cp_register_yaml, nesting_is_bounded)
{
    char y[512] = "instances:\n  - a: ";
    for (int i = 0; i < 40; i++)
        strcat(y, "[");
    for (int i = 0; i < 40; i++)
        strcat(y, "]");
    strcat(y, "\n");
    struct json_object *items;
    char err[256];
    cr_assert_eq(parse(y, &items, err), CP_RY_PARSE_ERROR);
    cr_assert(strstr(err, "too deep") != NULL, "%s", err);
}

Test(cp_register_yaml, non_mapping_items_are_kept_for_the_caller)
{
    struct json_object *items;
    char err[256] = "";
    cr_assert_eq(parse("instances:\n  - just-a-string\n  - {port: 1}\n", &items, err), CP_RY_OK, "%s", err);
    cr_assert_eq(json_object_array_length(items), 2);
    cr_assert(json_object_is_type(json_object_array_get_idx(items, 0), json_type_string));
    json_object_put(items);
}

Test(cp_register_yaml, read_file)
{
    char path[] = "/tmp/test_cp_register_yaml_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *y = "instances:\n  - {role: mixed, host_ip: 127.0.0.1, port: 9001}\n";
    cr_assert_eq(write(fd, y, strlen(y)), (ssize_t)strlen(y));
    close(fd);
    struct json_object *items;
    char err[256] = "";
    cr_assert_eq(cp_register_yaml_read(path, &items, err, sizeof(err)), CP_RY_OK, "%s", err);
    cr_assert_eq(json_object_array_length(items), 1);
    json_object_put(items);
    unlink(path);
    cr_assert_eq(cp_register_yaml_read(path, &items, err, sizeof(err)), CP_RY_READ_ERROR);
    cr_assert(strstr(err, "No such file") != NULL, "%s", err);
    cr_assert_eq(cp_register_yaml_read("/tmp", &items, err, sizeof(err)), CP_RY_READ_ERROR);
    cr_assert(strstr(err, "not a regular file") != NULL, "%s", err);
}

Test(cp_register_yaml, fifo_is_refused_without_blocking, .timeout = 5.0)
{
    char dir[] = "/tmp/fdreg-fifo-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/register.yaml", dir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    struct json_object *items;
    char err[256] = "";
    cp_register_yaml_rc_t rc = cp_register_yaml_read(path, &items, err, sizeof err);
    unlink(path);
    rmdir(dir);
    cr_assert_eq(rc, CP_RY_READ_ERROR);
    cr_assert_str_eq(err, "not a regular file");
}

/* 100,000 levels took libyaml's loader ~20 s; refused after a few dozen events now. The suite
 * timeout fails a parser that still loads the whole thing first. */
Test(cp_register_yaml, deep_nesting_is_refused_while_parsing, .timeout = 3.0)
{
    const size_t depth = 100000;
    char *y = malloc(depth * 2 + 32);
    cr_assert_not_null(y);
    size_t n = (size_t)sprintf(y, "instances:\n  - a: ");
    memset(y + n, '[', depth);
    memset(y + n + depth, ']', depth);
    y[n + 2 * depth] = '\0';
    struct json_object *items;
    char err[256] = "";
    cr_assert_eq(cp_register_yaml_parse(y, strlen(y), &items, err, sizeof err), CP_RY_PARSE_ERROR);
    free(y);
    cr_assert(strstr(err, "too deep") != NULL, "%s", err);
    cr_assert_null(items);
}

Test(cp_register_yaml, one_document_only)
{
    struct json_object *items;
    char err[256] = "";
    const char *y = "instances:\n  - {role: mixed, host_ip: 127.0.0.1, port: 9001}\n---\ninstances: []\n";
    cr_assert_eq(parse(y, &items, err), CP_RY_PARSE_ERROR);
    cr_assert(strstr(err, "more than one YAML document") != NULL, "%s", err);
}
