/*
 * dataplane/admin.c - the router's own routes besides inference and /metrics:
 *   GET  /registered         FastDeploy's shape, read from shared memory (works while the CP is down);
 *                            with registry.backend: etcd each entry adds "fleet_health"
 *   GET  /registered_number  {"mixed":n,"prefill":n,"decode":n}, healthy instances only
 *   GET  /health             the router's own liveness
 *   POST /register           forwarded verbatim to the control plane's control socket; the CP's
 *   GET  /health_generate    answer is relayed (503 when no control plane answers), with the
 *                            client's address in FD_CLIENT_ADDR_HEADER for auth.register-allow
 */
#include <arpa/inet.h>
#include <json-c/json.h>
#include <string.h>

#include "common/instance_info.h"
#include "common/ctlproto.h"
#include "dataplane/pools.h"
#include "dataplane/select.h"
#include "dataplane/upstream.h"
#include "dataplane/admin.h"
#include "dataplane/reply.h"

static void send_object(h2o_req_t *req, json_object *o)
{
    size_t len;
    const char *s =
        json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    dp_send_json(req, 200, s, len);
    json_object_put(o);
}

static json_object *port_string(uint16_t port)
{
    char buf[8] = "";
    if (port)
        snprintf(buf, sizeof(buf), "%u", port);
    return json_object_new_string(buf);
}

static json_object *string_list(const char (*items)[SHM_LIST_ITEM_LEN], unsigned n, bool present)
{
    if (!present)
        return NULL; /* json-c serialises a NULL value as null, FastDeploy's "absent" */
    json_object *a = json_object_new_array();
    for (unsigned i = 0; i < n; i++)
        json_object_array_add(a, json_object_new_string(items[i]));
    return a;
}

/* registry.backend: etcd: this host's verdict beside the fleet's, from the counts the control
 * plane publishes (controlplane/etcd.c); an added field, so FastDeploy's clients read on. */
static json_object *fleet_health(const shm_instance_t *in, shm_fleet_health_t f)
{
    uint32_t h = shm_slot_health(in);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "here",
                           json_object_new_string(h == SHM_HEALTH_HEALTHY     ? "healthy"
                                                  : h == SHM_HEALTH_UNHEALTHY ? "unhealthy"
                                                                              : "unknown"));
    json_object_object_add(o, "healthy_hosts", json_object_new_int(f.healthy));
    json_object_object_add(o, "unhealthy_hosts", json_object_new_int(f.unhealthy));
    json_object_object_add(o, "hosts", json_object_new_int(f.hosts));
    json_object_object_add(o, "disagree", json_object_new_boolean(f.healthy > 0 && f.unhealthy > 0));
    return o;
}

static json_object *worker_info(const shm_instance_t *in)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "url", json_object_new_string(in->url));
    json_object_object_add(o, "worker_type", json_object_new_string(fd_role_name((shm_role_t)in->role)));
    json_object_object_add(o, "connector_port", port_string(in->connector_port));
    json_object_object_add(o, "engine_worker_queue_port", port_string(in->engine_worker_queue_port));
    json_object_object_add(o, "metrics_port", port_string(in->metrics_port));
    json_object_object_add(
        o, "transfer_protocol",
        string_list(in->transfer_protocol, in->n_transfer_protocol, in->has_transfer_protocol));
    json_object_object_add(o, "rdma_ports",
                           string_list(in->rdma_ports, in->n_rdma_ports, in->n_rdma_ports != 0xff));
    json_object_object_add(o, "device_ids",
                           string_list(in->device_ids, in->n_device_ids, in->n_device_ids != 0xff));
    json_object_object_add(o, "tp_size", json_object_new_int((int)in->tp_size));
    shm_fleet_health_t f = shm_slot_fleet_health(in);
    if (f.hosts > 0)
        json_object_object_add(o, "fleet_health", fleet_health(in, f));
    return o;
}

static void add_worker(const shm_instance_t *in, unsigned slot, void *arg)
{
    (void)slot;
    json_object **lists = arg;
    json_object_array_add(lists[in->role], worker_info(in));
}

int dp_handle_registered(h2o_req_t *req)
{
    json_object *lists[SHM_ROLE_COUNT];
    for (int r = 0; r < SHM_ROLE_COUNT; r++)
        lists[r] = json_object_new_array();
    dp_for_each_slot(dp_self(req), false, add_worker, lists);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "code", json_object_new_int(200));
    json_object_object_add(o, "msg", json_object_new_string("success"));
    json_object_object_add(o, "prefill", lists[SHM_ROLE_PREFILL]);
    json_object_object_add(o, "decode", lists[SHM_ROLE_DECODE]);
    json_object_object_add(o, "mixed", lists[SHM_ROLE_MIXED]);
    send_object(req, o);
    return 0;
}

/* Healthy instances only: FastDeploy's FAQ reads 0 as "nothing healthy is registered" (the Go
 * router removed an instance at its first failed check; fd-router keeps it for
 * unhealthy-removal-secs, listed by /registered but not counted here). */
static void count_healthy(const shm_instance_t *in, unsigned slot, void *arg)
{
    (void)slot;
    if (shm_slot_health(in) == SHM_HEALTH_HEALTHY)
        ((int *)arg)[in->role]++;
}

int dp_handle_registered_number(h2o_req_t *req)
{
    int n[SHM_ROLE_COUNT] = {0};
    dp_for_each_slot(dp_self(req), false, count_healthy, n);
    char buf[96];
    int len = snprintf(buf, sizeof(buf), "{\"mixed\":%d,\"prefill\":%d,\"decode\":%d}", n[SHM_ROLE_MIXED],
                       n[SHM_ROLE_PREFILL], n[SHM_ROLE_DECODE]);
    dp_send_json(req, 200, buf, (size_t)len);
    return 0;
}

int dp_handle_health(h2o_req_t *req)
{
    dp_send_json(req, 200, H2O_STRLIT("{\"code\":200,\"status\":\"ok\"}"));
    return 0;
}

/*
 * Readiness: in splitwise mode at least one selectable prefill and one selectable decode
 * instance; in mixed mode at least one selectable mixed instance. 200 or 503, the shape of newer
 * FastDeploy builds (docs/fastdeploy.md 4).
 */
int dp_handle_ready(h2o_req_t *req)
{
    dp_thread_t *t = dp_self(req);
    shm_read_enter(&dp.seg, t->reader);
    uint32_t n[SHM_ROLE_COUNT];
    for (int r = 0; r < SHM_ROLE_COUNT; r++) {
        const shm_view_t *v = shm_view(&dp.seg, (shm_role_t)r);
        n[r] = v ? shm_view_len(v) : 0;
    }
    shm_read_exit(&dp.seg, t->reader);
    bool ready = dp.cfg.splitwise ? n[SHM_ROLE_PREFILL] && n[SHM_ROLE_DECODE] : n[SHM_ROLE_MIXED] > 0;
    char buf[160];
    int len = snprintf(buf, sizeof(buf),
                       "{\"code\":%d,\"infer_ready\":%s,\"mixed\":%u,\"prefill\":%u,\"decode\":%u}",
                       ready ? 200 : 503, ready ? "true" : "false", n[SHM_ROLE_MIXED], n[SHM_ROLE_PREFILL],
                       n[SHM_ROLE_DECODE]);
    dp_send_json(req, ready ? 200 : 503, buf, (size_t)len);
    return 0;
}

/* Forwarding to the control socket: one attempt, no load accounting. */
static bool cp_pick(dp_proxy_t *p)
{
    if (p->attempts)
        return false;
    p->pool = dp_pool_acquire_cp(p->t);
    p->authority = h2o_iovec_init(H2O_STRLIT("localhost"));
    return p->pool != NULL;
}

static void cp_noop_failed(dp_proxy_t *p, const char *err, bool connected)
{
    (void)p, (void)err, (void)connected;
}

static void cp_noop_head(dp_proxy_t *p, int status)
{
    (void)p, (void)status;
}

static void cp_noop_done(dp_proxy_t *p, dp_outcome_t o)
{
    (void)p, (void)o;
}

static void cp_fail(dp_proxy_t *p, int attempts, bool timed_out)
{
    (void)attempts, (void)timed_out;
    dp_send_json(p->req, 503, H2O_STRLIT("{\"code\":503,\"msg\":\"control plane unavailable\"}"));
}

static const dp_proxy_ops_t cp_forward_ops = {
    .pick = cp_pick,
    .attempt_failed = cp_noop_failed,
    .on_head = cp_noop_head,
    .done = cp_noop_done,
    .fail = cp_fail,
};

/* Replace whatever FD_CLIENT_ADDR_HEADER the client sent by the address it connects from: the CP
 * judges auth.register-allow by it, and believes it because only we reach the control socket. */
static void set_client_addr(h2o_req_t *req)
{
    ssize_t at;
    while ((at = h2o_find_header_by_str(&req->headers, H2O_STRLIT(FD_CLIENT_ADDR_HEADER), -1)) >= 0)
        h2o_delete_header(&req->headers, at);
    struct sockaddr_storage ss;
    char ip[INET6_ADDRSTRLEN] = "";
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len != 0 && ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
    else if (len != 0 && ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
    else
        snprintf(ip, sizeof ip, "unknown"); /* outside every auth.register-allow list */
    size_t n = strlen(ip);
    char *v = h2o_mem_alloc_pool(&req->pool, n);
    memcpy(v, ip, n);
    h2o_add_header_by_str(&req->pool, &req->headers, H2O_STRLIT(FD_CLIENT_ADDR_HEADER), 0, NULL, v, n);
}

/* POST /register and GET /health_generate belong to the control plane: relayed as they are,
 * plus the client's address */
int dp_handle_to_cp(h2o_req_t *req)
{
    if (req->entity.len > FD_CTL_MAX_BODY) {
        char buf[96];
        int n = snprintf(buf, sizeof buf, "{\"code\":413,\"msg\":\"request body larger than %u bytes\"}",
                         FD_CTL_MAX_BODY);
        dp_send_json(req, 413, buf, (size_t)n);
        return 0;
    }
    set_client_addr(req);
    dp_proxy_t *p = dp_proxy_new(req, &cp_forward_ops, NULL, req->path_normalized, req->entity);
    dp_proxy_start(p);
    return 0;
}
