/*
 * controlplane/register.c - instance registration: POST /register (public, forwarded by the DP
 * to the control socket verbatim) and the static list in register.yaml.
 *
 * /register keeps FastDeploy's validation, messages and statuses (docs/fastdeploy.md 5). FastDeploy
 * instances repeat their registration every 5 s as a heartbeat; an instance that is already
 * LIVE, HEALTHY and unchanged is answered at once, without a probe (the Go router ran a blocking
 * health check for every heartbeat). Anything else must pass health-success-threshold probes in
 * a row, run asynchronously on the CP loop, before it is upserted.
 *
 * register.yaml items go through the same validation (each YAML mapping becomes a JSON object),
 * are inserted as LIVE with health UNKNOWN - not selectable until the health timer has seen
 * enough successes - and are static: retried forever, never removed (the Go router dropped for
 * good an instance that happened to be down at startup).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/ctlproto.h"
#include "common/log.h"
#include "controlplane/admit.h"
#include "controlplane/cp.h"
#include "controlplane/register.h"
#include "controlplane/registry.h"
#include "controlplane/respond.h"
#include "controlplane/etcd.h"

#define REGISTER_YAML_MAX_BYTES (4u << 20)
#define YAML_MAX_DEPTH          32
#define YAML_MAX_NODES          100000u
#define REGISTER_MAX_PENDING    SHM_MAX_INSTANCES /* registrations probing at once */

typedef struct {
    h2o_linklist_t link;
    cp_t *cp;
    h2o_req_t *req;
    fd_instance_info_t info;
    unsigned probes_left;
    cp_probe_t *probe;
} reg_job_t;

static void job_free(reg_job_t *job)
{
    job->cp->reg_jobs_n--;
    h2o_linklist_unlink(&job->link);
    free(job);
}

static void job_upsert(reg_job_t *job)
{
    cp_t *cp = job->cp;
    char err[160];
    cp_upsert_kind_t kind;
    if (cp_registry_upsert(cp, &job->info, SHM_HEALTH_HEALTHY, false, &kind, err, sizeof(err)) < 0) {
        LOG_ERROR("Failed to register instance: %s", err);
        cp_respond_msg(job->req, 503, err);
        return;
    }
    const char *role = fd_role_name(job->info.role);
    if (kind == CP_UPSERT_INSERTED)
        LOG_INFO("Registered %s instance: %s", role, job->info.url);
    else if (kind == CP_UPSERT_UPDATED)
        LOG_INFO("Re-registered %s instance with new metadata: %s", role, job->info.url);
    else
        LOG_INFO("Re-registered %s instance: %s (healthy)", role, job->info.url);
    if (cp->etcd != NULL)
        cp_etcd_registered(cp, &job->info, false);
    cp_respond_msg(job->req, 200, "Register success");
}

static void start_probe(reg_job_t *job);

static void on_probe_done(void *data, const cp_probe_result_t *res)
{
    reg_job_t *job = data;
    job->probe = NULL;
    if (!res->ok) {
        LOG_ERROR("Failed to register instance: %s service is not healthy (%s)", job->info.url, res->error);
        cp_respond_msg(job->req, 503, "service is not healthy");
        job_free(job);
        return;
    }
    if (--job->probes_left > 0) {
        start_probe(job);
        return;
    }
    job_upsert(job);
    job_free(job);
}

static void start_probe(reg_job_t *job)
{
    cp_t *cp = job->cp;
    job->probe = cp_probe_start(&cp->prober, job->info.host, job->info.port, cp->cfg.health_check_endpoint,
                                on_probe_done, job);
}

/* auth.register-allow, judged on the address the DP saw (FD_CLIENT_ADDR_HEADER). A request
 * without it comes straight from a local process on the private control socket (fdctl). */
static bool client_allowed(const cp_t *cp, h2o_req_t *req, char *msg, size_t msglen)
{
    if (cp->cfg.register_allow.n == 0)
        return true;
    ssize_t at = h2o_find_header_by_str(&req->headers, H2O_STRLIT(FD_CLIENT_ADDR_HEADER), -1);
    if (at < 0)
        return true;
    h2o_iovec_t v = req->headers.entries[at].value;
    char ip[64];
    snprintf(ip, sizeof ip, "%.*s", (int)(v.len < sizeof ip ? v.len : sizeof ip - 1), v.base);
    if (fd_acl_allows(&cp->cfg.register_allow, ip))
        return true;
    snprintf(msg, msglen, "registration from %s is not allowed (auth.register-allow)", ip);
    return false;
}

void cp_register_handle(cp_t *cp, h2o_req_t *req, const char *body, size_t len)
{
    fd_instance_info_t info;
    char msg[256];
    if (!client_allowed(cp, req, msg, sizeof(msg))) {
        LOG_RATELIMITED(FD_LOG_WARN, "Refused registration: %s", msg);
        cp_respond_msg(req, 403, msg);
        return;
    }
    int status = fd_instance_parse_body(body, len, cp->splitwise, &info, msg, sizeof(msg));
    if (status == 0)
        status = cp_admit_host(cp, &info, msg, sizeof(msg));
    if (status != 0) {
        LOG_ERROR("Failed to register instance: %s", msg);
        cp_respond_msg(req, status, msg);
        return;
    }
    if (cp_registry_heartbeat(cp, &info) >= 0) {
        LOG_DEBUG("Heartbeat registration of %s", info.url);
        if (cp->etcd != NULL)
            cp_etcd_registered(cp, &info, false);
        cp_respond_msg(req, 200, "Register success");
        return;
    }
    if (cp->reg_jobs_n >= REGISTER_MAX_PENDING) {
        LOG_ERROR("Failed to register instance: %s: too many registrations in progress", info.url);
        cp_respond_msg(req, 503, "too many registrations in progress, retry later");
        return;
    }
    reg_job_t *job = h2o_mem_alloc(sizeof(*job));
    memset(job, 0, sizeof(*job));
    job->cp = cp;
    job->req = req;
    job->info = info;
    job->probes_left = cp->cfg.health_success_threshold > 0 ? (unsigned)cp->cfg.health_success_threshold : 1;
    h2o_linklist_insert(&cp->reg_jobs, &job->link);
    cp->reg_jobs_n++;
    start_probe(job);
}

void cp_register_abort_all(cp_t *cp)
{
    while (!h2o_linklist_is_empty(&cp->reg_jobs)) {
        reg_job_t *job = H2O_STRUCT_FROM_MEMBER(reg_job_t, link, cp->reg_jobs.next);
        if (job->probe != NULL)
            cp_probe_cancel(job->probe);
        cp_respond_msg(job->req, 503, "router is shutting down");
        job_free(job);
    }
}

/* ---- register.yaml ---- */

static bool is_plain_int(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static bool is_plain_float(const char *s)
{
    char *end;
    if (*s == '\0' || strpbrk(s, "0123456789") == NULL || strpbrk(s, "xXpPnN") != NULL)
        return false;
    errno = 0;
    strtod(s, &end);
    return *end == '\0' && errno == 0;
}

static bool str_in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

/* YAML 1.2 core schema for untagged plain scalars; anything quoted stays a string. *is_null marks
 * a JSON null (json-c represents it as NULL). */
static struct json_object *scalar_to_json(const yaml_node_t *node, bool *is_null)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    const char *s = (const char *)node->data.scalar.value;
    *is_null = false;
    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return json_object_new_string_len(s, (int)node->data.scalar.length);
    if (str_in(s, nulls)) {
        *is_null = true;
        return NULL;
    }
    if (str_in(s, trues))
        return json_object_new_boolean(1);
    if (str_in(s, falses))
        return json_object_new_boolean(0);
    if (is_plain_int(s)) {
        errno = 0;
        long long v = strtoll(s, NULL, 10);
        if (errno == 0)
            return json_object_new_int64(v);
    } else if (is_plain_float(s)) {
        return json_object_new_double_s(strtod(s, NULL), s);
    }
    return json_object_new_string_len(s, (int)node->data.scalar.length);
}

typedef struct {
    yaml_document_t *doc;
    unsigned budget;
    char *err;
    size_t errlen;
} conv_t;

static int node_to_json(conv_t *c, yaml_node_t *node, int depth, struct json_object **out);

static int seq_to_json(conv_t *c, yaml_node_t *node, int depth, struct json_object **out)
{
    struct json_object *arr = json_object_new_array();
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
        struct json_object *v;
        if (node_to_json(c, yaml_document_get_node(c->doc, *it), depth + 1, &v) != 0) {
            json_object_put(arr);
            return -1;
        }
        json_object_array_add(arr, v);
    }
    *out = arr;
    return 0;
}

static int map_to_json(conv_t *c, yaml_node_t *node, int depth, struct json_object **out)
{
    struct json_object *obj = json_object_new_object();
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (k == NULL || k->type != YAML_SCALAR_NODE) {
            snprintf(c->err, c->errlen, "line %zu: mapping key is not a scalar",
                     k ? k->start_mark.line + 1 : (size_t)0);
            goto fail;
        }
        const char *key = (const char *)k->data.scalar.value;
        if (json_object_object_get_ex(obj, key, NULL)) {
            snprintf(c->err, c->errlen, "line %zu: mapping key \"%s\" already defined",
                     k->start_mark.line + 1, key);
            goto fail;
        }
        struct json_object *v;
        if (node_to_json(c, yaml_document_get_node(c->doc, p->value), depth + 1, &v) != 0)
            goto fail;
        json_object_object_add(obj, key, v);
    }
    *out = obj;
    return 0;
fail:
    json_object_put(obj);
    return -1;
}

static int node_to_json(conv_t *c, yaml_node_t *node, int depth, struct json_object **out)
{
    *out = NULL;
    if (node == NULL)
        return 0;
    if (depth > YAML_MAX_DEPTH || c->budget == 0) {
        snprintf(c->err, c->errlen, "line %zu: document nested too deep or too large",
                 node->start_mark.line + 1);
        return -1;
    }
    c->budget--;
    bool is_null;
    switch (node->type) {
    case YAML_SCALAR_NODE:
        *out = scalar_to_json(node, &is_null);
        return 0;
    case YAML_SEQUENCE_NODE:
        return seq_to_json(c, node, depth, out);
    case YAML_MAPPING_NODE:
        return map_to_json(c, node, depth, out);
    default:
        return 0;
    }
}

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k != NULL && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

static cp_register_yaml_rc_t doc_to_items(yaml_document_t *doc, struct json_object **items, char *err,
                                          size_t errlen)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (root == NULL)
        return CP_RY_EMPTY;
    if (root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "line %zu: the document is not a mapping with an instances list",
                 root->start_mark.line + 1);
        return CP_RY_PARSE_ERROR;
    }
    yaml_node_t *list = map_get(doc, root, "instances");
    if (list == NULL || (list->type == YAML_SCALAR_NODE && list->data.scalar.length == 0))
        return CP_RY_EMPTY;
    if (list->type != YAML_SEQUENCE_NODE) {
        snprintf(err, errlen, "line %zu: instances is not a list", list->start_mark.line + 1);
        return CP_RY_PARSE_ERROR;
    }
    conv_t c = {doc, YAML_MAX_NODES, err, errlen};
    if (seq_to_json(&c, list, 1, items) != 0)
        return CP_RY_PARSE_ERROR;
    if (json_object_array_length(*items) == 0) {
        json_object_put(*items);
        *items = NULL;
        return CP_RY_EMPTY;
    }
    return CP_RY_OK;
}

/* Bounds first, in one event pass that stops early: libyaml's loader is quadratic in nesting
 * depth, so a deep file must be refused before it is loaded. */
static int prescan(const char *text, size_t len, char *err, size_t errlen)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    size_t line = 0;
    fd_yaml_bound_t b = fd_yaml_prescan(&parser, YAML_MAX_DEPTH + 2, 2 * YAML_MAX_NODES + 16, &line);
    if (b == FD_YB_SYNTAX)
        snprintf(err, errlen, "%s at line %zu column %zu", parser.problem ? parser.problem : "invalid YAML",
                 parser.problem_mark.line + 1, parser.problem_mark.column + 1);
    else if (b == FD_YB_DOCS)
        snprintf(err, errlen, "line %zu: more than one YAML document", line);
    else if (b != FD_YB_OK)
        snprintf(err, errlen, "line %zu: document nested too deep or too large", line);
    yaml_parser_delete(&parser);
    return b == FD_YB_OK ? 0 : -1;
}

cp_register_yaml_rc_t cp_register_yaml_parse(const char *text, size_t len, struct json_object **items,
                                             char *err, size_t errlen)
{
    *items = NULL;
    if (prescan(text, len, err, errlen) != 0)
        return CP_RY_PARSE_ERROR;
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "out of memory");
        return CP_RY_PARSE_ERROR;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    cp_register_yaml_rc_t rc;
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s at line %zu column %zu", parser.problem ? parser.problem : "invalid YAML",
                 parser.problem_mark.line + 1, parser.problem_mark.column + 1);
        rc = CP_RY_PARSE_ERROR;
    } else {
        rc = doc_to_items(&doc, items, err, errlen);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return rc;
}

cp_register_yaml_rc_t cp_register_yaml_read(const char *path, struct json_object **items, char *err,
                                            size_t errlen)
{
    *items = NULL;
    int fd = fd_open_regular(path, err, errlen);
    if (fd < 0)
        return CP_RY_READ_ERROR;
    /* read(2) directly: its errno is the syscall's own (stdio's can be clobbered by the time
     * ferror() is checked) */
    char *buf = h2o_mem_alloc(REGISTER_YAML_MAX_BYTES + 1);
    size_t n = 0;
    int read_errno = 0;
    while (n <= REGISTER_YAML_MAX_BYTES) {
        ssize_t r = read(fd, buf + n, REGISTER_YAML_MAX_BYTES + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            read_errno = errno;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    cp_register_yaml_rc_t rc;
    if (read_errno != 0) {
        snprintf(err, errlen, "%s", strerror(read_errno));
        rc = CP_RY_READ_ERROR;
    } else if (n > REGISTER_YAML_MAX_BYTES) {
        snprintf(err, errlen, "file larger than %u bytes", REGISTER_YAML_MAX_BYTES);
        rc = CP_RY_READ_ERROR;
    } else {
        rc = cp_register_yaml_parse(buf, n, items, err, errlen);
    }
    free(buf);
    return rc;
}

static void register_static(cp_t *cp, size_t idx, struct json_object *item)
{
    fd_instance_info_t info;
    char msg[256];
    if (!json_object_is_type(item, json_type_object)) {
        LOG_ERROR(
            "Failed to register instance from index %zu: invalid InstanceInfo format:item is not a mapping",
            idx);
        return;
    }
    if (fd_instance_parse_object(item, cp->splitwise, &info, msg, sizeof(msg)) != 0 ||
        cp_admit_host(cp, &info, msg, sizeof(msg)) != 0) {
        LOG_ERROR("Failed to register instance from index %zu: %s", idx, msg);
        return;
    }
    cp_static_add(cp, info.url);
    cp_upsert_kind_t kind;
    if (cp_registry_upsert(cp, &info, SHM_HEALTH_UNKNOWN, true, &kind, msg, sizeof(msg)) < 0) {
        LOG_ERROR("Failed to register instance from index %zu: %s", idx, msg);
        return;
    }
    if (cp->etcd != NULL)
        cp_etcd_registered(cp, &info, true);
    LOG_INFO("Successfully registered instance from index %zu: %s %s (%s)", idx, fd_role_name(info.role),
             info.url, kind == CP_UPSERT_KEPT ? "already registered" : "health check pending");
}

void cp_register_load_file(cp_t *cp, const char *path)
{
    struct json_object *items;
    char err[256];
    switch (cp_register_yaml_read(path, &items, err, sizeof(err))) {
    case CP_RY_READ_ERROR:
        LOG_ERROR("Failed to read YAML file %s: %s", path, err);
        return;
    case CP_RY_PARSE_ERROR:
        LOG_ERROR("Failed to unmarshal YAML file %s: %s", path, err);
        return;
    case CP_RY_EMPTY:
        LOG_WARN("No instances found in config file %s", path);
        return;
    case CP_RY_OK:
        break;
    }
    size_t n = json_object_array_length(items);
    for (size_t i = 0; i < n; i++)
        register_static(cp, i, json_object_array_get_idx(items, i));
    json_object_put(items);
}
