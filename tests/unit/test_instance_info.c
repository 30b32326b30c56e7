/*
 * tests/unit/test_instance_info.c - the /register payload (common/instance_info.c): accepted
 * forms, the exact messages FastDeploy clients see in {"code":400,"msg":...}, and the copy into
 * a shared-memory instance slot.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "common/instance_info.h"

typedef struct {
    int rc;
    char msg[512];
    fd_instance_info_t info;
} result_t;

static result_t parse(const char *body, bool splitwise)
{
    result_t r;
    r.rc = fd_instance_parse_body(body, strlen(body), splitwise, &r.info, r.msg, sizeof r.msg);
    return r;
}

static void expect_ok(const char *body, bool splitwise, fd_instance_info_t *out)
{
    result_t r = parse(body, splitwise);
    cr_assert_eq(r.rc, 0, "%s -> %d %s", body, r.rc, r.msg);
    if (out)
        *out = r.info;
}

static void expect_msg(const char *body, bool splitwise, const char *msg)
{
    result_t r = parse(body, splitwise);
    cr_assert_eq(r.rc, 400, "%s -> %d", body, r.rc);
    cr_assert_str_eq(r.msg, msg, "body: %s", body);
}

#define MIXED(rest)   "{\"role\":\"mixed\",\"host_ip\":\"10.0.0.1\",\"port\":8080" rest "}"
#define PREFILL(rest) "{\"role\":\"prefill\",\"host_ip\":\"10.0.0.1\",\"port\":8080" rest "}"

Test(instance, minimal_mixed)
{
    fd_instance_info_t i;
    expect_ok(MIXED(""), false, &i);
    cr_assert_eq(i.role, SHM_ROLE_MIXED);
    cr_assert_str_eq(i.host, "10.0.0.1");
    cr_assert_eq(i.port, 8080);
    cr_assert_eq(i.metrics_port, 8080, "metrics_port defaults to port");
    cr_assert_eq(i.connector_port, 0);
    cr_assert_eq(i.engine_worker_queue_port, 0);
    cr_assert_eq(i.tp_size, 0);
    cr_assert_not(i.has_transfer_protocol);
    cr_assert_eq(i.n_rdma_ports, -1);
    cr_assert_eq(i.n_device_ids, -1);
    cr_assert_str_eq(i.url, "http://10.0.0.1:8080");
}

/* What a FastDeploy prefill instance sends, including fields the router ignores. */
Test(instance, full_fastdeploy_payload)
{
    fd_instance_info_t i;
    expect_ok("{\"role\":\"prefill\",\"host_ip\":\"192.168.1.7\",\"port\":\"8188\",\"metrics_port\":8190,"
              "\"connector_port\":8001,\"rdma_ports\":[7100,\"7101\"],\"engine_worker_queue_port\":\"8002\","
              "\"device_ids\":[\"0\",1],\"transfer_protocol\":[\"ipc\",\"rdma\"],\"tp_size\":2,"
              "\"version\":\"v1\",\"is_paused\":false,\"connected_decodes\":[{\"a\":1}]}",
              true, &i);
    cr_assert_eq(i.role, SHM_ROLE_PREFILL);
    cr_assert_eq(i.port, 8188);
    cr_assert_eq(i.metrics_port, 8190);
    cr_assert_eq(i.connector_port, 8001);
    cr_assert_eq(i.engine_worker_queue_port, 8002);
    cr_assert_eq(i.tp_size, 2);
    cr_assert(i.has_transfer_protocol);
    cr_assert_eq(i.n_transfer_protocol, 2);
    cr_assert_str_eq(i.transfer_protocol[0], "ipc");
    cr_assert_str_eq(i.transfer_protocol[1], "rdma");
    cr_assert_eq(i.n_rdma_ports, 2);
    cr_assert_str_eq(i.rdma_ports[0], "7100");
    cr_assert_str_eq(i.rdma_ports[1], "7101");
    cr_assert_eq(i.n_device_ids, 2);
    cr_assert_str_eq(i.device_ids[0], "0");
    cr_assert_str_eq(i.device_ids[1], "1");
    cr_assert_str_eq(i.url, "http://192.168.1.7:8188");
}

Test(instance, role_forms)
{
    fd_instance_info_t i;
    expect_ok("{\"role\":0,\"host_ip\":\"1.2.3.4\",\"port\":1}", false, &i);
    cr_assert_eq(i.role, SHM_ROLE_MIXED);
    expect_ok("{\"role\":\"MiXeD\",\"host_ip\":\"1.2.3.4\",\"port\":1}", false, &i);
    expect_ok("{\"role\":1,\"host_ip\":\"1.2.3.4\",\"port\":1}", true, &i);
    cr_assert_eq(i.role, SHM_ROLE_PREFILL);
    expect_ok("{\"role\":\"DECODE\",\"host_ip\":\"1.2.3.4\",\"port\":1}", true, &i);
    cr_assert_eq(i.role, SHM_ROLE_DECODE);
    expect_ok("{\"role\":2,\"host_ip\":\"1.2.3.4\",\"port\":65535}", true, &i);
    cr_assert_eq(i.role, SHM_ROLE_DECODE);
    cr_assert_eq(i.port, 65535);
    cr_assert_str_eq(fd_role_name(SHM_ROLE_MIXED), "mixed");
    cr_assert_str_eq(fd_role_name(SHM_ROLE_PREFILL), "prefill");
    cr_assert_str_eq(fd_role_name(SHM_ROLE_DECODE), "decode");
}

Test(instance, host_forms)
{
    fd_instance_info_t i;
    expect_ok("{\"role\":\"mixed\",\"host_ip\":\"http://10.1.2.3\",\"port\":80}", false, &i);
    cr_assert_str_eq(i.host, "10.1.2.3");
    cr_assert_str_eq(i.url, "http://10.1.2.3:80");
    expect_ok("{\"role\":\"mixed\",\"host_ip\":\"https://10.1.2.3\",\"port\":80}", false, &i);
    cr_assert_str_eq(i.url, "http://10.1.2.3:80");
    expect_ok("{\"role\":\"mixed\",\"host_ip\":\"::1\",\"port\":8080}", false, &i);
    cr_assert_str_eq(i.host, "::1");
    cr_assert_str_eq(i.url, "http://[::1]:8080");
    expect_ok("{\"role\":\"mixed\",\"host_ip\":\"FE80:0:0:0:0:0:0:1\",\"port\":8080}", false, &i);
    cr_assert_str_eq(i.host, "fe80::1", "IPv6 is stored in canonical form");
    cr_assert_str_eq(i.url, "http://[fe80::1]:8080");
    expect_ok(
        "{\"role\":\"mixed\",\"host_ip\":\"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255\",\"port\":65535}",
        false, &i);
    cr_assert_eq(strlen(i.url) + 1 <= SHM_URL_LEN, 1);
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"localhost\",\"port\":80}", false,
               "invalid InstanceInfo format:invalid host_ip: localhost");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"fd-node-1.example\",\"port\":80}", false,
               "invalid InstanceInfo format:invalid host_ip: fd-node-1.example");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"10.0.0.1:80\",\"port\":80}", false,
               "invalid InstanceInfo format:invalid host_ip: 10.0.0.1:80");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"010.0.0.1\",\"port\":80}", false,
               "invalid InstanceInfo format:invalid host_ip: 010.0.0.1");
}

Test(instance, decode_errors)
{
    expect_msg("", false, "Invalid InstanceInfo JSON format: unexpected end of JSON input");
    expect_msg("   ", false, "Invalid InstanceInfo JSON format: unexpected end of JSON input");
    expect_msg("{\"role\":", false, "Invalid InstanceInfo JSON format: unexpected end of JSON input");
    expect_msg("[1]", false,
               "Invalid InstanceInfo JSON format: cannot use a JSON array as an InstanceInfo object");
    expect_msg("null", false,
               "Invalid InstanceInfo JSON format: cannot use a JSON null as an InstanceInfo object");
    expect_msg("12", false,
               "Invalid InstanceInfo JSON format: cannot use a JSON int as an InstanceInfo object");
    expect_msg(MIXED("") " x", false,
               "Invalid InstanceInfo JSON format: invalid character 'x' after top-level value");
    expect_msg(MIXED("") "{}", false,
               "Invalid InstanceInfo JSON format: invalid character '{' after top-level value");
    expect_msg("{\"role\":tru}", false, "Invalid InstanceInfo JSON format: boolean expected at offset 11");
    expect_msg("{\"role\":\"mixed\",}", false,
               "Invalid InstanceInfo JSON format: unexpected character at offset 16");
    expect_msg("{\"role\":5,\"host_ip\":\"1.2.3.4\",\"port\":1}", false,
               "Invalid InstanceInfo JSON format: invalid role integer: 5");
    expect_msg("{\"role\":-1}", false, "Invalid InstanceInfo JSON format: invalid role integer: -1");
    expect_msg("{\"role\":true}", false,
               "Invalid InstanceInfo JSON format: role: cannot use a JSON boolean as a role");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":7}", false,
               "Invalid InstanceInfo JSON format: host_ip: cannot use a JSON int as a string");
    expect_msg(
        MIXED(",\"metrics_port\":8080.5"), false,
        "Invalid InstanceInfo JSON format: metrics_port: cannot use a JSON double as a port (integer or "
        "string expected)");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":[80]}", false,
               "Invalid InstanceInfo JSON format: port: cannot use a JSON array as a port (integer or string "
               "expected)");
    expect_msg(MIXED(",\"rdma_ports\":7100"), false,
               "Invalid InstanceInfo JSON format: rdma_ports: cannot use a JSON int as a list");
    expect_msg(MIXED(",\"rdma_ports\":[7100, 1.5]"), false,
               "Invalid InstanceInfo JSON format: rdma_ports: element 1: 1.5 not integer");
    expect_msg(MIXED(",\"device_ids\":[true]"), false,
               "Invalid InstanceInfo JSON format: device_ids: element 0: type boolean unsupported");
    expect_msg(MIXED(",\"device_ids\":[null]"), false,
               "Invalid InstanceInfo JSON format: device_ids: element 0: type null unsupported");
    expect_msg(MIXED(",\"transfer_protocol\":[1]"), false,
               "Invalid InstanceInfo JSON format: transfer_protocol: element 0: a JSON int is not a string");
    expect_msg(MIXED(",\"tp_size\":\"2\""), false,
               "Invalid InstanceInfo JSON format: tp_size: cannot use a JSON string as an integer");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\\u0000\",\"port\":1}", false,
               "Invalid InstanceInfo JSON format: host_ip: contains a NUL character");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"\xff\",\"port\":1}", false,
               "Invalid InstanceInfo JSON format: invalid utf-8 string at offset 27");
}

Test(instance, embedded_nul_after_the_object_is_trailing_data)
{
    const char body[] = "{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":1}\0junk";
    fd_instance_info_t i;
    char msg[256];
    cr_assert_eq(fd_instance_parse_body(body, sizeof body - 1, false, &i, msg, sizeof msg), 400);
    cr_assert_str_eq(msg,
                     "Invalid InstanceInfo JSON format: invalid character '\\x00' after top-level value");
}

Test(instance, nesting_is_bounded)
{
    char body[512] = "{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":1,\"x\":";
    for (int i = 0; i < 40; i++)
        strcat(body, "[");
    for (int i = 0; i < 40; i++)
        strcat(body, "]");
    strcat(body, "}");
    result_t r = parse(body, false);
    cr_assert_eq(r.rc, 400);
    cr_assert(strstr(r.msg, "Invalid InstanceInfo JSON format: nesting too deep"), "%s", r.msg);
    /* shallow unknown structure is fine */
    expect_ok(MIXED(",\"extra\":{\"a\":[1,{\"b\":2}]}"), false, NULL);
}

Test(instance, validation_messages_in_fastdeploy_order)
{
    expect_msg("{}", false, "invalid InstanceInfo format:role is required");
    expect_msg("{\"host_ip\":\"x\",\"port\":0}", false, "invalid InstanceInfo format:role is required");
    expect_msg("{\"role\":\"boss\"}", false, "invalid InstanceInfo format:invalid role: boss");
    expect_msg("{\"role\":\"\"}", false, "invalid InstanceInfo format:invalid role: ");
    expect_msg("{\"role\":\"mixed\"}", false, "invalid InstanceInfo format:host_ip is required");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"\"}", false,
               "invalid InstanceInfo format:host_ip is required");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\"}", false,
               "invalid InstanceInfo format:port is required");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":\"\"}", false,
               "invalid InstanceInfo format:port is required");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":70000}", false,
               "invalid InstanceInfo format:invalid port: 70000");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":0}", false,
               "invalid InstanceInfo format:invalid port: 0");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":-80}", false,
               "invalid InstanceInfo format:invalid port: -80");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":\"http\"}", false,
               "invalid InstanceInfo format:invalid port: http");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":\" 80\"}", false,
               "invalid InstanceInfo format:invalid port:  80");
    expect_msg(MIXED(",\"transfer_protocol\":[\"ipc\",\"tcp\"]"), false,
               "invalid InstanceInfo format:invalid protocol: tcp");
    expect_msg(MIXED(",\"metrics_port\":0"), false, "invalid InstanceInfo format:invalid metrics_port: 0");
    expect_msg(MIXED(",\"metrics_port\":\"x\""), false,
               "invalid InstanceInfo format:invalid metrics_port: x");
    expect_msg(MIXED(",\"tp_size\":-1"), false, "invalid InstanceInfo format:invalid tp_size: -1");
    /* field validation comes before the mode check */
    expect_msg("{\"role\":\"prefill\",\"host_ip\":\"1.2.3.4\",\"port\":0}", false,
               "invalid InstanceInfo format:invalid port: 0");
}

Test(instance, ports_as_strings_and_signs)
{
    fd_instance_info_t i;
    expect_ok("{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":\"+0080\",\"metrics_port\":\"9100\"}",
              false, &i);
    cr_assert_eq(i.port, 80);
    cr_assert_str_eq(i.url, "http://1.2.3.4:80", "the URL uses the number, not the text");
    cr_assert_eq(i.metrics_port, 9100);
    expect_ok(MIXED(",\"metrics_port\":\"\""), false, &i);
    cr_assert_eq(i.metrics_port, 8080, "an empty metrics_port falls back to port");
}

Test(instance, pd_only_rules)
{
    /* mixed mode: PD fields are not validated, bad ones are just not stored */
    fd_instance_info_t i;
    expect_ok(MIXED(",\"connector_port\":\"x\",\"engine_worker_queue_port\":0,\"rdma_ports\":[\"a\",99999]"),
              false, &i);
    cr_assert_eq(i.connector_port, 0);
    cr_assert_eq(i.engine_worker_queue_port, 0);
    cr_assert_eq(i.n_rdma_ports, 2);
    cr_assert_str_eq(i.rdma_ports[0], "a");
    cr_assert_str_eq(i.rdma_ports[1], "99999");
    expect_ok(MIXED(",\"connector_port\":8001"), false, &i);
    cr_assert_eq(i.connector_port, 8001, "valid PD fields are stored in mixed mode too");

    expect_msg(PREFILL(",\"connector_port\":\"x\""), true,
               "invalid InstanceInfo format:invalid connector_port: x");
    expect_msg(PREFILL(",\"connector_port\":70000"), true,
               "invalid InstanceInfo format:invalid connector_port: 70000");
    expect_msg(PREFILL(",\"engine_worker_queue_port\":0"), true,
               "invalid InstanceInfo format:invalid engine_worker_queue_port: 0");
    expect_msg(PREFILL(",\"rdma_ports\":[7100,\"x\"]"), true,
               "invalid InstanceInfo format:rdma_ports[1] invalid port: x");
    expect_msg(PREFILL(",\"rdma_ports\":[0]"), true,
               "invalid InstanceInfo format:rdma_ports[0] invalid port: 0");
    expect_ok(PREFILL(",\"rdma_ports\":[7100.0],\"connector_port\":\"\""), true, &i);
    cr_assert_str_eq(i.rdma_ports[0], "7100", "an integral JSON number is stored as an integer");
    cr_assert_eq(i.connector_port, 0);
}

/* A JSON null counts as absent (the Go router turns it into "0", or role 0). */
Test(instance, null_is_absent)
{
    fd_instance_info_t i;
    expect_ok(
        PREFILL(",\"connector_port\":null,\"rdma_ports\":null,\"device_ids\":null,\"metrics_port\":null,"
                "\"transfer_protocol\":null,\"tp_size\":null"),
        true, &i);
    cr_assert_eq(i.connector_port, 0);
    cr_assert_eq(i.n_rdma_ports, -1);
    cr_assert_eq(i.n_device_ids, -1);
    cr_assert_eq(i.metrics_port, 8080);
    cr_assert_not(i.has_transfer_protocol);
    expect_msg("{\"role\":null,\"host_ip\":\"1.2.3.4\",\"port\":1}", false,
               "invalid InstanceInfo format:role is required");
    expect_msg("{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":null}", false,
               "invalid InstanceInfo format:port is required");
}

Test(instance, empty_lists_are_present)
{
    fd_instance_info_t i;
    expect_ok(MIXED(",\"transfer_protocol\":[],\"rdma_ports\":[],\"device_ids\":[]"), false, &i);
    cr_assert(i.has_transfer_protocol);
    cr_assert_eq(i.n_transfer_protocol, 0);
    cr_assert_eq(i.n_rdma_ports, 0);
    cr_assert_eq(i.n_device_ids, 0);
}

Test(instance, list_bounds)
{
    char body[1024];
    snprintf(body, sizeof body, MIXED(",\"device_ids\":[%s]"), "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15");
    fd_instance_info_t i;
    expect_ok(body, false, &i);
    cr_assert_eq(i.n_device_ids, SHM_MAX_LIST);
    cr_assert_str_eq(i.device_ids[15], "15");
    snprintf(body, sizeof body, MIXED(",\"device_ids\":[%s]"), "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16");
    expect_msg(body, false, "invalid InstanceInfo format:device_ids: too many items (17, at most 16)");
    expect_msg(MIXED(",\"rdma_ports\":[\"0123456789abcdef\"]"), false,
               "invalid InstanceInfo format:rdma_ports[0] is longer than 15 characters");
    expect_ok(MIXED(",\"rdma_ports\":[\"0123456789abcde\"]"), false, &i);
    expect_msg(
        MIXED(
            ",\"transfer_protocol\":[\"ipc\",\"ipc\",\"ipc\",\"ipc\",\"ipc\",\"ipc\",\"ipc\",\"ipc\",\"ipc\","
            "\"ipc\",\"ipc\",\"ipc\",\"ipc\",\"ipc\",\"ipc\",\"ipc\",\"ipc\"]"),
        false, "invalid InstanceInfo format:transfer_protocol: too many items (17, at most 16)");
    expect_msg(MIXED(",\"device_ids\":[12345678901234567890]"), false,
               "invalid InstanceInfo format:device_ids[0] is longer than 15 characters");
}

Test(instance, mode_checks)
{
    expect_msg(MIXED(""), true, "splitwise mode only supports PREFILL/DECODE instances");
    expect_msg(PREFILL(""), false, "only MIXED instances are allowed");
    expect_msg("{\"role\":2,\"host_ip\":\"1.2.3.4\",\"port\":1}", false, "only MIXED instances are allowed");
}

Test(instance, message_is_bounded)
{
    fd_instance_info_t i;
    char msg[16];
    const char *body = "{\"role\":\"mixed\",\"host_ip\":\"1.2.3.4\",\"port\":70000}";
    cr_assert_eq(fd_instance_parse_body(body, strlen(body), false, &i, msg, sizeof msg), 400);
    cr_assert_str_eq(msg, "invalid Instanc");
    cr_assert_eq(fd_instance_parse_body(body, strlen(body), false, &i, NULL, 0), 400);
}

/* register.yaml items arrive as JSON objects built by the caller. */
Test(instance, parse_object)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "role", json_object_new_string("decode"));
    json_object_object_add(o, "host_ip", json_object_new_string("127.0.0.1"));
    json_object_object_add(o, "port", json_object_new_string("8098"));
    struct json_object *ids = json_object_new_array();
    json_object_array_add(ids, json_object_new_string("0"));
    json_object_array_add(ids, json_object_new_int(1));
    json_object_object_add(o, "device_ids", ids);
    fd_instance_info_t i;
    char msg[256];
    cr_assert_eq(fd_instance_parse_object(o, true, &i, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(i.role, SHM_ROLE_DECODE);
    cr_assert_str_eq(i.url, "http://127.0.0.1:8098");
    cr_assert_eq(i.n_device_ids, 2);
    cr_assert_str_eq(i.device_ids[1], "1");
    cr_assert_eq(fd_instance_parse_object(ids, true, &i, msg, sizeof msg), 400);
    cr_assert_str_eq(msg,
                     "Invalid InstanceInfo JSON format: cannot use a JSON array as an InstanceInfo object");
    cr_assert_eq(fd_instance_parse_object(NULL, true, &i, msg, sizeof msg), 400);
    json_object_put(o);
}

Test(instance, to_slot_copies_identity_only)
{
    fd_instance_info_t i;
    expect_ok(
        "{\"role\":\"prefill\",\"host_ip\":\"::1\",\"port\":8188,\"metrics_port\":8190,\"connector_port\":"
        "8001,"
        "\"engine_worker_queue_port\":8002,\"transfer_protocol\":[\"rdma\",\"ipc\"],\"rdma_ports\":[7100],"
        "\"tp_size\":4}",
        true, &i);
    shm_instance_t s;
    memset(&s, 0, sizeof s);
    s.generation = 7;
    s.state = SHM_SLOT_FREE;
    s.health = SHM_HEALTH_HEALTHY;
    memset(s.device_ids, 'z', sizeof s.device_ids);
    fd_instance_to_slot(&i, &s);
    cr_assert_eq(s.generation, 7u);
    cr_assert_eq(s.state, SHM_SLOT_FREE);
    cr_assert_eq(s.health, SHM_HEALTH_HEALTHY);
    cr_assert_eq(s.role, SHM_ROLE_PREFILL);
    cr_assert_str_eq(s.url, "http://[::1]:8188");
    cr_assert_str_eq(s.host, "::1");
    cr_assert_eq(s.port, 8188);
    cr_assert_eq(s.metrics_port, 8190);
    cr_assert_eq(s.connector_port, 8001);
    cr_assert_eq(s.engine_worker_queue_port, 8002);
    cr_assert_eq(s.tp_size, 4u);
    cr_assert_eq(s.transfer_protocols, SHM_PROTO_IPC | SHM_PROTO_RDMA);
    cr_assert_eq(s.n_transfer_protocol, 2);
    cr_assert_eq(s.has_transfer_protocol, 1);
    cr_assert_str_eq(s.transfer_protocol[0], "rdma", "listed order is kept");
    cr_assert_eq(s.n_rdma_ports, 1);
    cr_assert_str_eq(s.rdma_ports[0], "7100");
    cr_assert_eq(s.n_device_ids, 0xff, "absent list");
    cr_assert_eq(s.device_ids[0][0], '\0', "stale list contents are cleared");

    expect_ok(PREFILL(",\"transfer_protocol\":[\"ipc\"],\"device_ids\":[]"), true, &i);
    fd_instance_to_slot(&i, &s);
    cr_assert_eq(s.transfer_protocols, SHM_PROTO_IPC);
    cr_assert_eq(s.n_device_ids, 0);
    cr_assert_eq(s.n_rdma_ports, 0xff);
    cr_assert_eq(s.rdma_ports[0][0], '\0');
}

/* A registration written back as a payload (registry snapshots, etcd) and read from a slot parses
 * to the same info. */
Test(instance, json_and_slot_round_trips)
{
    static const char *bodies[] = {
        "{\"role\":\"prefill\",\"host_ip\":\"10.0.0.7\",\"port\":8100,\"metrics_port\":8101,"
        "\"connector_port\":8102,\"engine_worker_queue_port\":8103,"
        "\"transfer_protocol\":[\"ipc\",\"rdma\"],\"rdma_ports\":[\"7000\"],"
        "\"device_ids\":[\"0\",\"1\"],\"tp_size\":2}",
        "{\"role\":\"decode\",\"host_ip\":\"::1\",\"port\":9000,\"rdma_ports\":[],"
        "\"transfer_protocol\":[\"ipc\"]}",
    };
    for (size_t k = 0; k < sizeof bodies / sizeof bodies[0]; k++) {
        fd_instance_info_t a, b, c;
        expect_ok(bodies[k], true, &a);
        struct json_object *o = fd_instance_to_json(&a);
        const char *text = json_object_to_json_string(o);
        expect_ok(text, true, &b);
        json_object_put(o);
        cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "body %zu: the payload parses back to the same info", k);
        shm_instance_t slot;
        memset(&slot, 0, sizeof slot);
        fd_instance_to_slot(&a, &slot);
        fd_instance_from_slot(&slot, &c);
        cr_assert_eq(memcmp(&a, &c, sizeof a), 0, "body %zu: the slot gives the same info back", k);
    }
}
