/*
 * Unit tests of dataplane/pd_body.c: disaggregate_info (FastDeploy's keys, types and ipc/rdma
 * rule), the splice into the client's body text, and request ids.
 */
#include <criterion/criterion.h>
#include <json-c/json.h>
#include <string.h>

#include "dataplane/pd_body.h"

static h2o_mem_pool_t pool;

static void setup(void)
{
    h2o_mem_init_pool(&pool);
}
static void teardown(void)
{
    h2o_mem_clear_pool(&pool);
}

TestSuite(pd_body, .init = setup, .fini = teardown);

static shm_instance_t inst(const char *host, uint16_t connector, unsigned protos, int ndev)
{
    shm_instance_t in;
    memset(&in, 0, sizeof(in));
    snprintf(in.host, sizeof(in.host), "%s", host);
    in.connector_port = connector;
    in.transfer_protocols = protos;
    in.n_rdma_ports = 0xff;
    in.n_device_ids = ndev < 0 ? 0xff : (uint8_t)ndev;
    for (int i = 0; i < ndev; i++)
        snprintf(in.device_ids[i], SHM_LIST_ITEM_LEN, "%d", i);
    return in;
}

static json_object *info(const shm_instance_t *p, const shm_instance_t *d)
{
    char buf[1024];
    size_t n = dp_disaggregate_info(buf, sizeof(buf), p, d);
    cr_assert_lt(n, sizeof(buf));
    buf[n] = '\0';
    json_object *o = json_tokener_parse(buf);
    cr_assert_not_null(o, "not JSON: %s", buf);
    return o;
}

static const char *str(json_object *o, const char *k)
{
    json_object *v;
    cr_assert(json_object_object_get_ex(o, k, &v), "missing %s", k);
    return json_object_get_string(v);
}

static int num(json_object *o, const char *k)
{
    json_object *v;
    cr_assert(json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int), "%s not an int",
              k);
    return json_object_get_int(v);
}

Test(pd_body, keys_types_and_ipc_on_same_host)
{
    shm_instance_t p = inst("10.0.0.1", 7001, SHM_PROTO_IPC | SHM_PROTO_RDMA, 2);
    shm_instance_t d = inst("10.0.0.1", 7002, SHM_PROTO_IPC, 2);
    d.n_rdma_ports = 2;
    snprintf(d.rdma_ports[0], SHM_LIST_ITEM_LEN, "8001");
    snprintf(d.rdma_ports[1], SHM_LIST_ITEM_LEN, "8002");
    json_object *o = info(&p, &d);
    cr_assert_str_eq(str(o, "prefill_ip"), "10.0.0.1");
    cr_assert_str_eq(str(o, "decode_ip"), "10.0.0.1");
    cr_assert_eq(num(o, "prefill_connector_port"), 7001);
    cr_assert_eq(num(o, "decode_connector_port"), 7002);
    cr_assert_eq(num(o, "decode_tp_size"), 2);
    cr_assert_str_eq(str(o, "transfer_protocol"), "ipc");
    json_object *ids, *ports;
    cr_assert(json_object_object_get_ex(o, "decode_device_ids", &ids));
    cr_assert_eq(json_object_array_length(ids), 2);
    cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(ids, 1)), "1");
    cr_assert(json_object_object_get_ex(o, "decode_rdma_ports", &ports));
    cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(ports, 0)), "8001");
    cr_assert_eq(json_object_object_length(o), 8);
    json_object_put(o);
}

Test(pd_body, rdma_rules)
{
    shm_instance_t p = inst("10.0.0.1", 1, SHM_PROTO_IPC, 4);
    shm_instance_t d_other_host = inst("10.0.0.2", 2, SHM_PROTO_IPC, 4);
    shm_instance_t d_no_ipc = inst("10.0.0.1", 2, SHM_PROTO_RDMA, 4);
    shm_instance_t d_tp_mismatch = inst("10.0.0.1", 2, SHM_PROTO_IPC, 2);
    shm_instance_t d_tp_one = inst("10.0.0.1", 2, SHM_PROTO_IPC, 1);
    const shm_instance_t *cases[] = {&d_other_host, &d_no_ipc, &d_tp_mismatch, &d_tp_one};
    const char *want[] = {"rdma", "rdma", "rdma", "ipc"};
    for (int i = 0; i < 4; i++) {
        json_object *o = info(&p, cases[i]);
        cr_assert_str_eq(str(o, "transfer_protocol"), want[i], "case %d", i);
        json_object_put(o);
    }
}

Test(pd_body, absent_lists_are_null_and_tp_at_least_one)
{
    shm_instance_t p = inst("::1", 0, 0, -1), d = inst("::1", 0, 0, -1);
    json_object *o = info(&p, &d), *v;
    cr_assert(json_object_object_get_ex(o, "decode_device_ids", &v) && v == NULL);
    cr_assert(json_object_object_get_ex(o, "decode_rdma_ports", &v) && v == NULL);
    cr_assert_eq(num(o, "decode_tp_size"), 1);
    cr_assert_eq(num(o, "prefill_connector_port"), 0);
    json_object_put(o);
}

/* the body as production builds it: scanned once, then spliced where the scan found the brace */
static h2o_iovec_t splice(const char *body, const char *rid)
{
    shm_instance_t p = inst("10.0.0.1", 1, 0, 1), d = inst("10.0.0.2", 2, 0, 1);
    dp_body_t scan;
    cr_assert_eq(dp_parse_body(&pool, body, strlen(body), false, &scan), 0, "not a JSON object: %s", body);
    return dp_pd_body(&pool, h2o_iovec_init(body, strlen(body)), &scan, &p, &d, rid);
}

static json_object *spliced(const char *body, const char *rid)
{
    h2o_iovec_t out = splice(body, rid);
    char *z = strndup(out.base, out.len);
    json_object *o = json_tokener_parse(z);
    cr_assert_not_null(o, "not JSON: %s", z);
    free(z);
    return o;
}

Test(pd_body, splice_keeps_the_client_text_and_adds_members)
{
    const char *body = "{\"model\":\"m\",\"big\":12345678901234567890,\"x\":0.70} \n";
    h2o_iovec_t out = splice(body, "abc");
    const char *prefix = "{\"model\":\"m\",\"big\":12345678901234567890,\"x\":0.70";
    cr_assert(out.len > strlen(prefix) && memcmp(out.base, prefix, strlen(prefix)) == 0,
              "client text must be kept verbatim (no float64 round trip)");
    json_object *o = spliced(body, "abc");
    cr_assert_str_eq(str(o, "request_id"), "abc");
    cr_assert_str_eq(str(o, "model"), "m");
    json_object *di;
    cr_assert(json_object_object_get_ex(o, "disaggregate_info", &di));
    cr_assert_str_eq(str(di, "decode_ip"), "10.0.0.2");
    json_object_put(o);
}

Test(pd_body, splice_into_empty_object_and_without_request_id)
{
    json_object *o = spliced("{}", "");
    cr_assert(json_object_object_get_ex(o, "disaggregate_info", NULL));
    cr_assert_not(json_object_object_get_ex(o, "request_id", NULL), "no id added when the client had one");
    json_object_put(o);
}

Test(pd_body, uuid4_format_and_uniqueness)
{
    uint64_t rng = 12345;
    char a[DP_UUID_LEN + 1], b[DP_UUID_LEN + 1];
    dp_uuid4(&rng, a);
    dp_uuid4(&rng, b);
    cr_assert_eq(strlen(a), 36);
    cr_assert_str_neq(a, b);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            cr_assert_eq(a[i], '-');
        else
            cr_assert(strchr("0123456789abcdef", a[i]), "bad char %c", a[i]);
    }
    cr_assert_eq(a[14], '4', "version nibble");
    cr_assert(strchr("89ab", a[19]), "variant nibble");
}

/* disaggregate_info longer than the splice's stack buffer (16 device ids and 16 rdma ports of 15
 * characters each, most of them escaped): still whole and valid JSON in the body */
Test(pd_body, long_lists_are_spliced_whole)
{
    shm_instance_t p = inst("10.0.0.1", 1, 0, 1), d = inst("10.0.0.2", 2, 0, SHM_MAX_LIST);
    d.n_rdma_ports = SHM_MAX_LIST;
    for (int i = 0; i < SHM_MAX_LIST; i++) {
        snprintf(d.device_ids[i], SHM_LIST_ITEM_LEN, "%c\"\"\"\"\"\"\"\"\"\"\"\"\"\"", 'a' + i);
        snprintf(d.rdma_ports[i], SHM_LIST_ITEM_LEN, "%s", d.device_ids[i]);
    }
    const char *body = "{\"model\":\"m\"}";
    dp_body_t scan;
    cr_assert_eq(dp_parse_body(&pool, body, strlen(body), false, &scan), 0);
    cr_assert_gt(dp_disaggregate_info(NULL, 0, &p, &d), 1024, "the case this test is for");
    h2o_iovec_t out = dp_pd_body(&pool, h2o_iovec_init(body, strlen(body)), &scan, &p, &d, "r");
    char *z = strndup(out.base, out.len);
    json_object *o = json_tokener_parse(z), *di, *ids;
    cr_assert_not_null(o, "not JSON: %s", z);
    free(z);
    cr_assert(json_object_object_get_ex(o, "disaggregate_info", &di));
    cr_assert(json_object_object_get_ex(di, "decode_device_ids", &ids));
    cr_assert_eq(json_object_array_length(ids), SHM_MAX_LIST);
    cr_assert_str_eq(json_object_get_string(json_object_array_get_idx(ids, 15)), d.device_ids[15]);
    cr_assert_str_eq(str(o, "request_id"), "r");
    json_object_put(o);
}

/* what needs escaping in a JSON string is escaped, the rest copied as it is */
Test(pd_body, strings_are_escaped)
{
    shm_instance_t p = inst("a\"b\\c\x01"
                            "d",
                            1, 0, 1),
                   d = inst("plain", 2, 0, 1);
    json_object *o = info(&p, &d);
    cr_assert_str_eq(str(o, "prefill_ip"), "a\"b\\c\x01"
                                           "d");
    cr_assert_str_eq(str(o, "decode_ip"), "plain");
    json_object_put(o);
}

static int disposed;
static void count_dispose(void *p)
{
    (void)p;
    disposed++;
}

/* the body both legs send is h2o shared memory linked to the request's pool: a reference taken
 * on it (the prefill leg's) keeps it past the pool */
Test(pd_body, the_body_is_shared_memory_of_the_pool)
{
    h2o_iovec_t out = splice("{\"a\":1}", "");
    h2o_mem_addref_shared(out.base);
    h2o_mem_clear_pool(&pool);
    cr_assert_eq(memcmp(out.base, "{\"a\":1,", 7), 0, "still readable after the pool is gone");
    cr_assert_eq(h2o_mem_release_shared(out.base), 1, "the last reference frees it");
    h2o_mem_init_pool(&pool);
    /* and the pool alone frees it (the dispose count shows h2o's linking works as used) */
    disposed = 0;
    void *x = h2o_mem_alloc_shared(&pool, 8, count_dispose);
    (void)x;
    h2o_mem_clear_pool(&pool);
    cr_assert_eq(disposed, 1);
    h2o_mem_init_pool(&pool);
}
