/*
 * controlplane/ctlsock.c - the control socket: an HTTP/1.1 server on a unix stream socket, on the
 * CP's h2o loop.
 *
 *   POST /register  the public /register, forwarded verbatim by the DP (register.c)
 *   GET  /status    who runs: the CP, the DP rows in shm, the number of LIVE instances, the upgrade
 *   POST /upgrade   start a hot upgrade: {"dp_binary"?, "drain_secs"?, "ready_timeout_secs"?};
 *                   202 and the upgrade's state (fdctl then polls GET /upgrade), 409 if one runs
 *   GET  /upgrade   the running or last upgrade (upgrade.c)
 *   POST /dp/drained  a draining DP's report: {"pid", "drained", "cut", "idle_closed", "drain_ms"}
 *   POST /instances/drain, /instances/undrain, /instances/remove  {"url": ...} (actions.c)
 *
 * The socket's existence doubles as the "a CP runs here" lock: a second CP that can connect to
 * it refuses to start; a socket file nobody answers on is stale and replaced.
 */
#include <errno.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/admintoken.h"
#include "common/ctlproto.h"
#include "common/log.h"
#include "common/names.h"
#include "controlplane/cp.h"
#include "controlplane/actions.h"
#include "controlplane/ctlsock.h"
#include "controlplane/health_generate.h"
#include "controlplane/register.h"
#include "controlplane/registry.h"
#include "controlplane/respond.h"
#include "controlplane/upgrade.h"
#include "controlplane/etcd.h"

/* A unix socket whose backlog is full refuses connect() at once (EAGAIN), and the DP answers
 * that /register with 503: a fleet restarting together sends every instance's registration at
 * the same moment (of 1,000 at once, over half were refused with a backlog of 128). The kernel
 * caps this at net.core.somaxconn. */
#define CTL_BACKLOG 4096
/* Connections taken per wake-up: a burst drains quickly without starving the loop's other work. */
#define CTL_ACCEPT_BATCH 256

struct ctl_handler {
    h2o_handler_t super;
    cp_t *cp;
};

static struct json_object *status_cp(cp_t *cp)
{
    uint64_t now = shm_now_ms();
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "pid", json_object_new_int64(getpid()));
    json_object_object_add(o, "start_time", json_object_new_int64((int64_t)cp->start_time));
    json_object_object_add(o, "started_at_ms", json_object_new_int64((int64_t)cp->started_at_ms));
    json_object_object_add(
        o, "uptime_s",
        json_object_new_int64(now > cp->started_at_ms ? (int64_t)((now - cp->started_at_ms) / 1000) : 0));
    json_object_object_add(o, "shm_name", json_object_new_string(cp->shm_name));
    json_object_object_add(o, "control_socket", json_object_new_string(cp->control_socket));
    json_object_object_add(o, "port", json_object_new_int((int)cp->port));
    json_object_object_add(o, "splitwise", json_object_new_boolean(cp->splitwise));
    json_object_object_add(o, "dp_pid", json_object_new_int64(cp->dp.cur.pid));
    json_object_object_add(o, "dp_binary", json_object_new_string(cp->dp_binary_running));
    json_object_object_add(o, "dp_restarts", json_object_new_int64(cp->dp.restarts));
    json_object_object_add(o, "dp_adopted",
                           json_object_new_boolean(cp->dp.cur.pid != 0 && !cp->dp.cur.is_child));
    json_object_object_add(o, "dp_candidate_pid", json_object_new_int64(cp->dp.cand.pid));
    struct json_object *ret = json_object_new_array();
    for (unsigned i = 0; i < CP_MAX_RETIRING; i++)
        if (cp->dp.retiring[i].pid)
            json_object_array_add(ret, json_object_new_int64(cp->dp.retiring[i].pid));
    json_object_object_add(o, "dp_retiring", ret);
    return o;
}

static struct json_object *status_dps(cp_t *cp)
{
    struct json_object *arr = json_object_new_array();
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        const shm_dp_row_t *r = shm_dp_row(&cp->seg, i);
        int32_t pid = shm_dp_row_pid(r);
        if (pid == 0)
            continue;
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "pid", json_object_new_int64(pid));
        json_object_object_add(o, "row", json_object_new_int((int)i));
        json_object_object_add(o, "state", json_object_new_string(shm_dp_state_name(shm_dp_row_state(r))));
        json_object_object_add(o, "started_at_ms", json_object_new_int64((int64_t)r->started_at_ms));
        json_object_object_add(o, "requests_total", json_object_new_int64((int64_t)shm_dp_row_requests(r)));
        json_object_array_add(arr, o);
    }
    return arr;
}

struct json_object *cp_status_json(cp_t *cp)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "cp", status_cp(cp));
    json_object_object_add(o, "dp", status_dps(cp));
    json_object_object_add(o, "instances", json_object_new_int((int)cp_registry_live_count(cp)));
    json_object_object_add(o, "registry", cp_etcd_status_json(cp));
    json_object_object_add(o, "upgrade", cp->upg.id ? cp_upgrade_json(cp) : NULL);
    return o;
}

static void respond_obj(h2o_req_t *req, int status, struct json_object *o)
{
    cp_respond_json(
        req, status,
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

/* The request's JSON object body, or NULL after answering 400. An empty body is {}. */
static struct json_object *json_body(h2o_req_t *req)
{
    if (req->entity.base == NULL || req->entity.len == 0)
        return json_object_new_object();
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, req->entity.base, (int)req->entity.len);
    bool whole = json_tokener_get_error(tok) == json_tokener_success &&
                 json_tokener_get_parse_end(tok) == req->entity.len;
    json_tokener_free(tok);
    if (o == NULL || !whole || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        cp_respond_msg(req, 400, "the body must be a JSON object");
        return NULL;
    }
    return o;
}

/* A non-negative integer member (absent: *out untouched). Returns false after answering 400. */
static bool uint_member(h2o_req_t *req, struct json_object *o, const char *key, uint64_t max, uint64_t *out)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || v == NULL)
        return true;
    int64_t n = json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_int) || n < 0 || (uint64_t)n > max) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%s must be an integer from 0 to %llu", key, (unsigned long long)max);
        cp_respond_msg(req, 400, msg);
        return false;
    }
    *out = (uint64_t)n;
    return true;
}

static const char *string_member(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static void handle_upgrade_start(cp_t *cp, h2o_req_t *req)
{
    struct json_object *o = json_body(req);
    if (o == NULL)
        return;
    uint64_t drain = 0, ready = 0;
    struct json_object *bin;
    if (json_object_object_get_ex(o, "dp_binary", &bin) && bin != NULL &&
        !json_object_is_type(bin, json_type_string)) {
        cp_respond_msg(req, 400, "dp_binary must be a string");
    } else if (uint_member(req, o, "drain_secs", 86400, &drain) &&
               uint_member(req, o, "ready_timeout_secs", 3600, &ready)) {
        char err[512];
        int rc = cp_upgrade_start(cp, string_member(o, "dp_binary"), (unsigned)drain, (unsigned)ready * 1000,
                                  "fdctl", err, sizeof(err));
        if (rc == 0)
            respond_obj(req, 202, cp_upgrade_json(cp));
        else
            cp_respond_msg(req, rc, err);
    }
    json_object_put(o);
}

static void handle_drained(cp_t *cp, h2o_req_t *req)
{
    struct json_object *o = json_body(req);
    if (o == NULL)
        return;
    uint64_t pid = 0, drained = 0, cut = 0, idle = 0, ms = 0;
    if (uint_member(req, o, "pid", INT32_MAX, &pid) && uint_member(req, o, "drained", UINT32_MAX, &drained) &&
        uint_member(req, o, "cut", UINT32_MAX, &cut) &&
        uint_member(req, o, "idle_closed", UINT32_MAX, &idle) &&
        uint_member(req, o, "drain_ms", UINT32_MAX, &ms)) {
        cp_upgrade_on_report(cp, (pid_t)pid, drained, cut, idle, ms);
        cp_respond_msg(req, 200, "ok");
    }
    json_object_put(o);
}

static void handle_action(cp_t *cp, h2o_req_t *req, cp_action_t act)
{
    struct json_object *o = json_body(req);
    if (o == NULL)
        return;
    const char *url = string_member(o, "url");
    if (url == NULL || url[0] == '\0') {
        cp_respond_msg(req, 400, "url is required");
    } else {
        char msg[256];
        int status = cp_instance_action(cp, act, url, msg, sizeof(msg));
        cp_respond_msg(req, status, msg);
    }
    json_object_put(o);
}

static bool is_method(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    cp_t *cp = ((struct ctl_handler *)self)->cp;
    h2o_iovec_t path = req->path_normalized;
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/register"))) {
        if (!is_method(req, "POST")) {
            cp_respond_msg(req, 405, "method not allowed");
            return 0;
        }
        cp_register_handle(cp, req, req->entity.base ? req->entity.base : "", req->entity.len);
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/status"))) {
        if (!is_method(req, "GET")) {
            cp_respond_msg(req, 405, "method not allowed");
            return 0;
        }
        struct json_object *st = cp_status_json(cp);
        cp_respond_json(
            req, 200,
            json_object_to_json_string_ext(st, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(st);
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/upgrade"))) {
        if (is_method(req, "POST"))
            handle_upgrade_start(cp, req);
        else if (!is_method(req, "GET"))
            cp_respond_msg(req, 405, "method not allowed");
        else if (cp->upg.id == 0)
            cp_respond_msg(req, 404, "no upgrade has run since this control plane started");
        else
            respond_obj(req, 200, cp_upgrade_json(cp));
        return 0;
    }
    static const struct {
        const char *path;
        cp_action_t act;
        bool drained_report;
    } posts[] = {{"/dp/drained", 0, true},
                 {"/instances/drain", CP_ACT_DRAIN, false},
                 {"/instances/undrain", CP_ACT_UNDRAIN, false},
                 {"/instances/remove", CP_ACT_REMOVE, false}};
    for (size_t i = 0; i < sizeof(posts) / sizeof(posts[0]); i++) {
        if (!h2o_memis(path.base, path.len, posts[i].path, strlen(posts[i].path)))
            continue;
        if (!is_method(req, "POST"))
            cp_respond_msg(req, 405, "method not allowed");
        else if (posts[i].drained_report)
            handle_drained(cp, req);
        else
            handle_action(cp, req, posts[i].act);
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/health_generate")) && is_method(req, "GET")) {
        cp_health_generate(cp, req);
        return 0;
    }
    cp_respond_msg(req, 404, "not found");
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    cp_t *cp = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < CTL_ACCEPT_BATCH; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        h2o_accept(&cp->ctl.accept, sock);
    }
}

static int fill_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -1;
    strcpy(sa->sun_path, path);
    return 0;
}

int cp_ctlsock_in_use(const char *path)
{
    struct sockaddr_un sa;
    if (fill_addr(path, &sa) != 0)
        return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return 0;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    close(fd);
    /* EAGAIN: the listener exists but its backlog is full - alive all the same */
    return rc == 0 || e == EAGAIN;
}

static int bind_socket(const char *path, struct stat *st, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (fill_addr(path, &sa) != 0) {
        snprintf(err, errlen, "control socket path too long: %s", path);
        return -1;
    }
    if (fd_prepare_socket_dir(path, err, errlen) != 0)
        return -1;
    if (cp_ctlsock_in_use(path)) {
        snprintf(err, errlen, "control socket %s is in use by another running fd-router-cp", path);
        return -1;
    }
    if (lstat(path, st) == 0) {
        if (!S_ISSOCK(st->st_mode)) {
            snprintf(err, errlen, "control socket path %s exists and is not a socket", path);
            return -1;
        }
        unlink(path); /* stale: nobody answers on it */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, 0660) != 0 ||
        listen(fd, CTL_BACKLOG) != 0 || stat(path, st) != 0) {
        snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void init_server(cp_t *cp)
{
    /* once per process, before any data plane is started: DPs inherit the token */
    fd_acl_warn_if_register_open(cp->cfg.listen, &cp->cfg.register_allow);
    fd_admin_token_export(cp->cfg.admin_token);
    h2o_config_init(&cp->ctl.conf);
    cp->ctl.conf.max_request_entity_size = FD_CTL_MAX_BODY;
    cp->ctl.conf.server_name = h2o_iovec_init(H2O_STRLIT("fd-router-cp"));
    cp->ctl.conf.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host =
        h2o_config_register_host(&cp->ctl.conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    struct ctl_handler *h = (struct ctl_handler *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->cp = cp;
    h2o_context_init(&cp->ctl.ctx, cp->loop, &cp->ctl.conf);
    cp->ctl.accept.ctx = &cp->ctl.ctx;
    cp->ctl.accept.hosts = cp->ctl.conf.hosts;
    cp->ctl.ctx_ready = true;
}

int cp_ctlsock_open(cp_t *cp, char *err, size_t errlen)
{
    struct stat st;
    int fd = bind_socket(cp->control_socket, &st, err, errlen);
    if (fd < 0)
        return -1;
    cp->ctl.dev = st.st_dev;
    cp->ctl.ino = st.st_ino;
    if (!cp->ctl.ctx_ready)
        init_server(cp);
    cp->ctl.listener = h2o_evloop_socket_create(cp->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    cp->ctl.listener->data = cp;
    h2o_socket_read_start(cp->ctl.listener, on_accept);
    return 0;
}

void cp_ctlsock_close(cp_t *cp)
{
    if (cp->ctl.listener == NULL)
        return;
    h2o_socket_read_stop(cp->ctl.listener);
    h2o_socket_close(cp->ctl.listener);
    cp->ctl.listener = NULL;
    struct stat st;
    if (stat(cp->control_socket, &st) == 0 && st.st_dev == cp->ctl.dev && st.st_ino == cp->ctl.ino)
        unlink(cp->control_socket);
}
