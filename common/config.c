/*
 * common/config.c - strict loader of config.yaml (common/config.h).
 *
 * The control plane calls fd_config_load() once at start; a bad file stops the router with a
 * message naming file, line and key, instead of starting with a silently different setting
 * (the Go router replaces any 0 or "" by the default and maps an unknown policy to random).
 *
 * Every known key is one row of the table below: where it lives in fd_config_t, its type and
 * its range. The file is read with libyaml twice: an event pass that bounds nesting depth,
 * event count and the number of documents (so alias bombs and pathological nesting are refused
 * before anything is built), then the document API to walk the two levels we use. Values are
 * never followed below the second level, so aliases cannot multiply work.
 */
#include "common/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml.h>

#include "common/admintoken.h"
#include "common/log.h"

#define CFG_MAX_FILE_BYTES (1u << 20)
#define CFG_MAX_DEPTH      64
#define CFG_MAX_EVENTS     100000
#define CFG_MAX_SECS       1e6  /* keeps every timeout in uint32 milliseconds */
#define CFG_MIN_PERIOD     0.01 /* a periodic timer firing faster only floods the log and the CPU */

void fd_config_defaults(fd_config_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "0.0.0.0");
    snprintf(c->mode, sizeof c->mode, "release");

    snprintf(c->log_level, sizeof c->log_level, "info");
    snprintf(c->log_output, sizeof c->log_output, "stdout");
    c->log_max_age_days = 7;
    c->log_max_total_size_mb = 500;
    c->log_cleanup_interval_secs = 3600;
    snprintf(c->log_format, sizeof c->log_format, "text");
    snprintf(c->access_log, sizeof c->access_log, "off");

    c->health_failure_threshold = 1;
    c->health_success_threshold = 1;
    c->health_check_timeout_secs = 5;
    c->health_check_interval_secs = 5;
    snprintf(c->health_check_endpoint, sizeof c->health_check_endpoint, "/health");
    c->unhealthy_removal_secs = 60;
    c->metrics_poll_interval_secs = 1;
    c->metrics_max_age_secs = 5;
    c->models_poll_interval_secs = 30;

    c->policy = FD_POL_REQUEST_NUM;
    c->prefill_policy = FD_POL_PROCESS_TOKENS;
    c->decode_policy = FD_POL_REQUEST_NUM;
    c->eviction_interval_secs = 60;
    c->eviction_duration_mins = 30;
    c->cache_block_size = 64;
    c->tokenizer_timeout_secs = 2;
    c->balance_abs_threshold = -1; /* unset: cache_aware weighs load in its cost instead */
    c->balance_rel_threshold = -1;
    c->hit_ratio_weight = 1;
    c->load_balance_weight = 1;
    c->waiting_weight = 1;
    c->stats_interval_secs = 5;

    c->connect_timeout_secs = 3;
    c->first_byte_timeout_secs = 600;
    c->idle_timeout_secs = 300;
    c->max_body_mb = 32;
    c->max_buffered_body_mb = 256;
    c->request_header_timeout_secs = 10; /* h2o's fixed request timeout before it was a key */
    c->request_body_timeout_secs = 10;
    c->retry_attempts = 3;

    snprintf(c->registry_backend, sizeof c->registry_backend, "local");
    snprintf(c->new_prefix_placement, sizeof c->new_prefix_placement, "auto");
    snprintf(c->etcd_endpoints, sizeof c->etcd_endpoints, "http://127.0.0.1:2379");
    snprintf(c->etcd_prefix, sizeof c->etcd_prefix, "/fd-router/default");
    c->etcd_lease_secs = 15;
    c->etcd_timeout_secs = 2;
    c->etcd_retry_secs = 0.5;
}

/* ---- value checks for string keys: return a reason, or NULL when the value is fine ---- */

static const char *check_mode(const char *v)
{
    return strcmp(v, "debug") && strcmp(v, "release") && strcmp(v, "test") ? "must be debug, release or test"
                                                                           : NULL;
}

static const char *check_level(const char *v)
{
    return strcmp(v, "debug") && strcmp(v, "info") && strcmp(v, "warn") && strcmp(v, "error")
               ? "must be debug, info, warn or error"
               : NULL;
}

static const char *check_format(const char *v)
{
    return strcmp(v, "text") && strcmp(v, "json") ? "must be text or json" : NULL;
}

static const char *check_access_log(const char *v)
{
    return strcmp(v, "off") && strcmp(v, "stdout") && strcmp(v, "file") ? "must be off, stdout or file"
                                                                        : NULL;
}

static const char *check_output(const char *v)
{
    return strcmp(v, "stdout") && strcmp(v, "file") ? "must be stdout or file" : NULL;
}

static const char *check_endpoint(const char *v)
{
    return v[0] == '/' ? NULL : "must be a path starting with '/'";
}

static const char *check_ip(const char *v)
{
    unsigned char a[16];
    return inet_pton(AF_INET, v, a) == 1 || inet_pton(AF_INET6, v, a) == 1
               ? NULL
               : "must be an IPv4 or IPv6 address literal";
}

static const char *check_shm_name(const char *v)
{
    return v[0] == '\0' || (v[0] == '/' && v[1] != '\0' && !strchr(v + 1, '/'))
               ? NULL
               : "must look like /name (one leading '/', no other '/')";
}

static const char *check_socket_path(const char *v)
{
    return strlen(v) < sizeof(((struct sockaddr_un *)0)->sun_path)
               ? NULL
               : "is longer than a unix socket path may be";
}

static const char *check_placement(const char *v)
{
    return strcmp(v, "auto") && strcmp(v, "load") && strcmp(v, "hash") ? "must be auto, load or hash" : NULL;
}

static const char *check_backend(const char *v)
{
    return strcmp(v, "local") && strcmp(v, "etcd") ? "must be local or etcd" : NULL;
}

static const char *check_etcd_prefix(const char *v)
{
    size_t n = strlen(v);
    return v[0] == '/' && n > 1 && v[n - 1] != '/' ? NULL : "must start with '/' and not end with '/'";
}

/* ---- the key table ---- */

typedef enum { K_STR, K_LOWER, K_PORT, K_BOOL, K_INT, K_DBL, K_POLICY, K_ACL, K_LIST, K_IGNORED } kind_t;

typedef struct {
    const char *section;
    const char *key;
    kind_t kind;
    size_t off;
    size_t size;                        /* K_STR / K_LOWER: buffer size */
    double min, max;                    /* K_INT / K_DBL */
    bool min_exclusive;                 /* K_DBL: value must be > min */
    const char *(*check)(const char *); /* K_STR / K_LOWER */
} key_spec_t;

/* clang-format off */
#define F(field) offsetof(fd_config_t, field), sizeof(((fd_config_t *)0)->field)
#define STR(s, k, field, chk)       {s, k, K_STR, F(field), 0, 0, false, chk}
#define LOWER(s, k, field, chk)     {s, k, K_LOWER, F(field), 0, 0, false, chk}
#define INT(s, k, field, lo, hi)    {s, k, K_INT, F(field), lo, hi, false, NULL}
#define DBL(s, k, field, lo, hi, x) {s, k, K_DBL, F(field), lo, hi, x, NULL}
#define SECS(s, k, field, lo, x)    DBL(s, k, field, lo, CFG_MAX_SECS, x)
#define NUM(s, k, field)            DBL(s, k, field, 0, 1e12, false)
#define PERIOD(s, k, field)         DBL(s, k, field, CFG_MIN_PERIOD, CFG_MAX_SECS, false)
#define BOOL(s, k, field)           {s, k, K_BOOL, F(field), 0, 0, false, NULL}
#define POLICY(s, k, field)         {s, k, K_POLICY, F(field), 0, 0, false, NULL}
#define ACL(s, k, field)            {s, k, K_ACL, F(field), 0, 0, false, NULL}
/* clang-format on */

static const key_spec_t key_specs[] = {
    STR("server", "name", name, NULL),
    {"server", "port", K_PORT, F(port), 1, 65535, false, NULL},
    STR("server", "host", host, NULL),
    STR("server", "listen", listen, check_ip),
    STR("server", "mode", mode, check_mode),
    BOOL("server", "splitwise", splitwise),

    LOWER("log", "level", log_level, check_level),
    STR("log", "output", log_output, check_output),
    INT("log", "max-age-days", log_max_age_days, 1, INT_MAX),
    INT("log", "max-total-size-mb", log_max_total_size_mb, 1, INT_MAX),
    PERIOD("log", "cleanup-interval-secs", log_cleanup_interval_secs),
    LOWER("log", "format", log_format, check_format),
    LOWER("log", "access-log", access_log, check_access_log),

    STR("manager", "register-path", register_path, NULL),
    INT("manager", "health-failure-threshold", health_failure_threshold, 1, 1000),
    INT("manager", "health-success-threshold", health_success_threshold, 1, 1000),
    SECS("manager", "health-check-timeout-secs", health_check_timeout_secs, 0, true),
    PERIOD("manager", "health-check-interval-secs", health_check_interval_secs),
    STR("manager", "health-check-endpoint", health_check_endpoint, check_endpoint),
    SECS("manager", "unhealthy-removal-secs", unhealthy_removal_secs, 0, false),
    PERIOD("manager", "metrics-poll-interval-secs", metrics_poll_interval_secs),
    SECS("manager", "metrics-max-age-secs", metrics_max_age_secs, 0, true),
    PERIOD("manager", "models-poll-interval-secs", models_poll_interval_secs),

    POLICY("scheduler", "policy", policy),
    POLICY("scheduler", "prefill-policy", prefill_policy),
    POLICY("scheduler", "decode-policy", decode_policy),
    PERIOD("scheduler", "eviction-interval-secs", eviction_interval_secs),
    DBL("scheduler", "eviction-duration-mins", eviction_duration_mins, 0, CFG_MAX_SECS / 60, true),
    INT("scheduler", "cache-block-size", cache_block_size, 1, 1 << 20),
    INT("scheduler", "radix-capacity-nodes", radix_capacity_nodes, 0, (int)SHM_RADIX_MAX_NODES),
    STR("scheduler", "tokenizer-url", tokenizer_url, NULL),
    SECS("scheduler", "tokenizer-timeout-secs", tokenizer_timeout_secs, 0, true),
    NUM("scheduler", "balance-abs-threshold", balance_abs_threshold),
    NUM("scheduler", "balance-rel-threshold", balance_rel_threshold),
    NUM("scheduler", "hit-ratio-weight", hit_ratio_weight),
    NUM("scheduler", "load-balance-weight", load_balance_weight),
    NUM("scheduler", "waiting-weight", waiting_weight),
    NUM("scheduler", "instance-cache-tokens", instance_cache_tokens),
    LOWER("scheduler", "new-prefix-placement", new_prefix_placement, check_placement),
    PERIOD("scheduler", "stats-interval-secs", stats_interval_secs),
    {"scheduler", "interval-cleanup-secs", K_IGNORED, 0, 0, 0, 0, false, NULL},

    SECS("proxy", "connect-timeout-secs", connect_timeout_secs, 0, true),
    SECS("proxy", "first-byte-timeout-secs", first_byte_timeout_secs, 0, true),
    SECS("proxy", "idle-timeout-secs", idle_timeout_secs, 0, true),
    INT("proxy", "max-body-mb", max_body_mb, 1, 4095),
    INT("proxy", "max-buffered-body-mb", max_buffered_body_mb, 1, 65535),
    SECS("proxy", "request-header-timeout-secs", request_header_timeout_secs, 0, true),
    SECS("proxy", "request-body-timeout-secs", request_body_timeout_secs, 0, true),
    INT("proxy", "retry-attempts", retry_attempts, 1, 100),

    INT("router", "dp-threads", dp_threads, 0, 256),
    STR("router", "shm-name", shm_name, check_shm_name),
    STR("router", "control-socket", control_socket, check_socket_path),
    STR("router", "dp-binary", dp_binary, NULL),

    ACL("auth", "register-allow", register_allow),
    ACL("auth", "instance-allow", instance_allow),
    STR("auth", "admin-token-file", admin_token_file, NULL),

    STR("registry", "backend", registry_backend, check_backend),
    {"registry", "etcd-endpoints", K_LIST, F(etcd_endpoints), 0, 0, false, NULL},
    STR("registry", "etcd-prefix", etcd_prefix, check_etcd_prefix),
    INT("registry", "etcd-lease-secs", etcd_lease_secs, 2, 3600),
    SECS("registry", "etcd-timeout-secs", etcd_timeout_secs, 0, true),
    PERIOD("registry", "etcd-retry-secs", etcd_retry_secs),
};

static const char *const sections[] = {"server", "log",    "manager", "scheduler",
                                       "proxy",  "router", "auth",    "registry"};

/* ---- loader state ---- */

typedef struct {
    const char *path;
    yaml_document_t *doc;
    const yaml_node_t *key; /* key of the value being set: errors point at its line */
    fd_config_t *cfg;
    char *err;
    size_t errlen;
} loader_t;

static unsigned node_line(const yaml_node_t *n)
{
    return (unsigned)n->start_mark.line + 1;
}

static int fail(loader_t *L, const yaml_node_t *at, const char *section, const char *key, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

static int fail(loader_t *L, const yaml_node_t *at, const char *section, const char *key, const char *fmt,
                ...)
{
    char reason[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (section && key)
        snprintf(L->err, L->errlen, "%s:%u: %s.%s: %s", L->path, node_line(at), section, key, reason);
    else if (section)
        snprintf(L->err, L->errlen, "%s:%u: %s: %s", L->path, node_line(at), section, reason);
    else
        snprintf(L->err, L->errlen, "%s:%u: %s", L->path, node_line(at), reason);
    return -1;
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* `key:`, `key: ~`, `key: null` and `key: ""` leave the default in place, as a missing key does
 * (the Go router's rule for "" and unset values). */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE)
        return false;
    const char *v = scalar(n);
    if (n->data.scalar.length == 0)
        return true;
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL"));
}

static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(v, yes[i]))
            return *out = true, 0;
        if (!strcasecmp(v, no[i]))
            return *out = false, 0;
    }
    return -1;
}

static int parse_long(const char *v, long *out)
{
    if (!isdigit((unsigned char)v[0]) && !((v[0] == '-' || v[0] == '+') && isdigit((unsigned char)v[1])))
        return -1;
    char *end;
    errno = 0;
    *out = strtol(v, &end, 10);
    return errno == 0 && *end == '\0' ? 0 : -1;
}

/* Decimal numbers only: no hex floats, inf or nan (strtod would take them). */
static int parse_double(const char *v, double *out)
{
    const char *p = v + (v[0] == '-' || v[0] == '+');
    if (!isdigit((unsigned char)p[0]) && !(p[0] == '.' && isdigit((unsigned char)p[1])))
        return -1;
    if (strpbrk(v, "xXpP"))
        return -1;
    char *end;
    errno = 0;
    *out = strtod(v, &end);
    return errno == 0 && *end == '\0' && isfinite(*out) ? 0 : -1;
}

static int set_string(loader_t *L, const key_spec_t *k, const yaml_node_t *v, char *dst)
{
    const char *s = scalar(v);
    if (strlen(s) != v->data.scalar.length)
        return fail(L, L->key, k->section, k->key, "contains a NUL character");
    if (strlen(s) >= k->size)
        return fail(L, L->key, k->section, k->key, "longer than %zu characters", k->size - 1);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", s);
    if (k->kind == K_LOWER)
        for (char *p = tmp; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    const char *why = k->check ? k->check(tmp) : NULL;
    if (why)
        return fail(L, L->key, k->section, k->key, "%s, got '%s'", why, s);
    memcpy(dst, tmp, strlen(tmp) + 1);
    return 0;
}

static int set_int(loader_t *L, const key_spec_t *k, const yaml_node_t *v, void *dst)
{
    const char *s = scalar(v);
    long n;
    if (parse_long(s, &n) != 0)
        return fail(L, L->key, k->section, k->key, "must be an integer, got '%s'", s);
    if (n < (long)k->min || n > (long)k->max)
        return fail(L, L->key, k->section, k->key, "must be in %.0f..%.0f, got %ld", k->min, k->max, n);
    if (k->kind == K_PORT)
        *(unsigned *)dst = (unsigned)n;
    else
        *(int *)dst = (int)n;
    return 0;
}

static int set_double(loader_t *L, const key_spec_t *k, const yaml_node_t *v, double *dst)
{
    const char *s = scalar(v);
    double d;
    if (parse_double(s, &d) != 0)
        return fail(L, L->key, k->section, k->key, "must be a number, got '%s'", s);
    if (k->min_exclusive ? d <= k->min : d < k->min)
        return fail(L, L->key, k->section, k->key, "must be %s %g, got %s",
                    k->min_exclusive ? ">" : ">=", k->min, s);
    if (d > k->max)
        return fail(L, L->key, k->section, k->key, "must be <= %g, got %s", k->max, s);
    *dst = d;
    return 0;
}

static int set_policy(loader_t *L, const key_spec_t *k, const yaml_node_t *v, fd_policy_t *dst)
{
    const char *s = scalar(v);
    int p = fd_policy_from_name(s);
    if (p < 0)
        return fail(L, v, k->section, k->key, "unknown policy '%s' (known: %s)", s, fd_policy_names());
    *dst = (fd_policy_t)p;
    return 0;
}

/* A CIDR list: a YAML list of entries, or one string of comma-separated entries. */
static int set_acl(loader_t *L, const key_spec_t *k, const yaml_node_t *v, fd_acl_t *dst)
{
    char text[FD_ACL_MAX * 48 + 64] = "", why[128];
    size_t used = 0;
    if (v->type == YAML_SCALAR_NODE) {
        used = (size_t)snprintf(text, sizeof text, "%s", scalar(v));
    } else if (v->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            const yaml_node_t *e = yaml_document_get_node(L->doc, *it);
            if (e == NULL || e->type != YAML_SCALAR_NODE)
                return fail(L, L->key, k->section, k->key, "list entries must be addresses or CIDR blocks");
            used +=
                (size_t)snprintf(text + used, used < sizeof text ? sizeof text - used : 0, "%s,", scalar(e));
            if (used >= sizeof text)
                break;
        }
    } else {
        return fail(L, L->key, k->section, k->key, "expected a list of CIDR blocks, found a mapping");
    }
    if (used >= sizeof text)
        return fail(L, L->key, k->section, k->key, "more than %d entries", FD_ACL_MAX);
    if (fd_acl_parse(dst, text, why, sizeof why) != 0)
        return fail(L, L->key, k->section, k->key, "%s", why);
    return 0;
}

/* A YAML list of strings (or one string), kept comma-separated. */
static int set_list(loader_t *L, const key_spec_t *k, const yaml_node_t *v, char *dst)
{
    if (v->type == YAML_SCALAR_NODE)
        return set_string(L, k, v, dst);
    if (v->type != YAML_SEQUENCE_NODE)
        return fail(L, L->key, k->section, k->key, "expected a list, found a mapping");
    size_t used = 0;
    dst[0] = '\0';
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        const yaml_node_t *e = yaml_document_get_node(L->doc, *it);
        if (e == NULL || e->type != YAML_SCALAR_NODE)
            return fail(L, L->key, k->section, k->key, "list entries must be strings");
        used += (size_t)snprintf(dst + used, used < k->size ? k->size - used : 0, "%s%s", used ? "," : "",
                                 scalar(e));
        if (used >= k->size)
            return fail(L, L->key, k->section, k->key, "longer than %zu bytes", k->size - 1);
    }
    return 0;
}

static int set_value(loader_t *L, const key_spec_t *k, const yaml_node_t *v)
{
    if (k->kind == K_IGNORED) {
        LOG_WARN("%s:%u: %s.%s is ignored (the Go router never read it either)", L->path, node_line(v),
                 k->section, k->key);
        return 0;
    }
    if (is_null(v))
        return 0;
    if (k->kind == K_ACL)
        return set_acl(L, k, v, (fd_acl_t *)((char *)L->cfg + k->off));
    if (k->kind == K_LIST)
        return set_list(L, k, v, (char *)L->cfg + k->off);
    if (v->type != YAML_SCALAR_NODE)
        return fail(L, L->key, k->section, k->key, "expected a single value, found a %s",
                    v->type == YAML_MAPPING_NODE ? "mapping" : "list");
    char *dst = (char *)L->cfg + k->off;
    switch (k->kind) {
    case K_STR:
    case K_LOWER:
        return set_string(L, k, v, dst);
    case K_PORT:
    case K_INT:
        return set_int(L, k, v, dst);
    case K_DBL:
        return set_double(L, k, v, (double *)dst);
    case K_POLICY:
        return set_policy(L, k, v, (fd_policy_t *)dst);
    case K_BOOL:
        if (parse_bool(scalar(v), (bool *)dst) != 0)
            return fail(L, L->key, k->section, k->key, "must be true/false (or yes/no, on/off), got '%s'",
                        scalar(v));
        return 0;
    case K_ACL:
    case K_LIST:
    case K_IGNORED:
        break;
    }
    return 0;
}

static const key_spec_t *find_key(const char *section, const char *key)
{
    for (size_t i = 0; i < sizeof key_specs / sizeof key_specs[0]; i++)
        if (!strcmp(key_specs[i].section, section) && !strcmp(key_specs[i].key, key))
            return &key_specs[i];
    return NULL;
}

/* Check the key of pair i of mapping m: a scalar, not a merge key, not seen before in m. */
static int check_key(loader_t *L, const yaml_node_t *m, const yaml_node_pair_t *pair, const char *section)
{
    const yaml_node_t *kn = yaml_document_get_node(L->doc, pair->key);
    if (kn->type != YAML_SCALAR_NODE)
        return fail(L, kn, section, NULL, "keys must be plain names");
    if (!strcmp(scalar(kn), "<<"))
        return fail(L, kn, section, NULL, "merge keys (<<) are not supported");
    for (const yaml_node_pair_t *q = m->data.mapping.pairs.start; q < pair; q++) {
        const yaml_node_t *prev = yaml_document_get_node(L->doc, q->key);
        if (prev->type == YAML_SCALAR_NODE && !strcmp(scalar(prev), scalar(kn))) {
            if (section)
                return fail(L, kn, section, scalar(kn), "duplicate key (first set at line %u)",
                            node_line(prev));
            return fail(L, kn, scalar(kn), NULL, "duplicate section (first at line %u)", node_line(prev));
        }
    }
    return 0;
}

static int load_section(loader_t *L, const char *section, const yaml_node_t *m)
{
    if (is_null(m))
        return 0;
    if (m->type != YAML_MAPPING_NODE)
        return fail(L, m, section, NULL, "expected a mapping of keys");
    for (const yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        if (check_key(L, m, p, section) != 0)
            return -1;
        const yaml_node_t *kn = yaml_document_get_node(L->doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(L->doc, p->value);
        const key_spec_t *k = find_key(section, scalar(kn));
        if (!k) {
            LOG_WARN("%s:%u: unknown key %s.%s (ignored)", L->path, node_line(kn), section, scalar(kn));
            continue;
        }
        L->key = kn;
        if (set_value(L, k, vn) != 0)
            return -1;
    }
    return 0;
}

static int load_root(loader_t *L)
{
    const yaml_node_t *root = yaml_document_get_root_node(L->doc);
    if (!root || is_null(root))
        return 0; /* empty file: all defaults */
    if (root->type != YAML_MAPPING_NODE)
        return fail(L, root, NULL, NULL,
                    "expected a mapping of sections (server, log, manager, scheduler, ...)");
    for (const yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        if (check_key(L, root, p, NULL) != 0)
            return -1;
        const yaml_node_t *kn = yaml_document_get_node(L->doc, p->key);
        bool known = false;
        for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
            known = known || !strcmp(sections[i], scalar(kn));
        if (!known) {
            LOG_WARN("%s:%u: unknown section %s (ignored)", L->path, node_line(kn), scalar(kn));
            continue;
        }
        if (load_section(L, scalar(kn), yaml_document_get_node(L->doc, p->value)) != 0)
            return -1;
    }
    return 0;
}

/* ---- reading the file ---- */

static void syntax_error(const yaml_parser_t *p, const char *path, char *err, size_t errlen)
{
    if (p->error == YAML_MEMORY_ERROR)
        snprintf(err, errlen, "%s: out of memory while parsing", path);
    else if (p->error == YAML_READER_ERROR)
        snprintf(err, errlen, "%s: %s (byte offset %zu)", path, p->problem ? p->problem : "read error",
                 p->problem_offset);
    else if (p->context)
        snprintf(err, errlen, "%s:%zu:%zu: %s (%s at line %zu)", path, p->problem_mark.line + 1,
                 p->problem_mark.column + 1, p->problem ? p->problem : "syntax error", p->context,
                 p->context_mark.line + 1);
    else
        snprintf(err, errlen, "%s:%zu:%zu: %s", path, p->problem_mark.line + 1, p->problem_mark.column + 1,
                 p->problem ? p->problem : "syntax error");
}

/* Event pass: syntax, nesting depth, size of the event stream and number of documents. */
fd_yaml_bound_t fd_yaml_prescan(struct yaml_parser_s *p, int max_depth, size_t max_events, size_t *line)
{
    int depth = 0, docs = 0;
    for (size_t events = 0;; events++) {
        yaml_event_t ev;
        if (!yaml_parser_parse(p, &ev))
            return FD_YB_SYNTAX;
        yaml_event_type_t t = ev.type;
        *line = ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT)
            return FD_YB_OK;
        depth += (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT);
        depth -= (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT);
        if (t == YAML_DOCUMENT_START_EVENT && ++docs > 1)
            return FD_YB_DOCS;
        if (depth > max_depth)
            return FD_YB_DEPTH;
        if (events > max_events)
            return FD_YB_EVENTS;
    }
}

static int prescan(FILE *f, const char *path, char *err, size_t errlen)
{
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    size_t line = 0;
    fd_yaml_bound_t b = fd_yaml_prescan(&p, CFG_MAX_DEPTH, CFG_MAX_EVENTS, &line);
    if (b == FD_YB_SYNTAX)
        syntax_error(&p, path, err, errlen);
    else if (b == FD_YB_DOCS)
        snprintf(err, errlen, "%s:%zu: more than one YAML document in the file", path, line);
    else if (b == FD_YB_DEPTH)
        snprintf(err, errlen, "%s:%zu: nested deeper than %d levels", path, line, CFG_MAX_DEPTH);
    else if (b == FD_YB_EVENTS)
        snprintf(err, errlen, "%s:%zu: more than %d YAML nodes", path, line, CFG_MAX_EVENTS);
    yaml_parser_delete(&p);
    return b == FD_YB_OK ? 0 : -1;
}

static FILE *open_config(const char *path, char *err, size_t errlen)
{
    char why[128];
    int fd = fd_open_regular(path, why, sizeof why);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        return NULL;
    }
    struct stat st;
    FILE *f = NULL;
    if (fstat(fd, &st) != 0 || st.st_size > CFG_MAX_FILE_BYTES)
        snprintf(err, errlen, "%s: larger than %u bytes", path, CFG_MAX_FILE_BYTES);
    else if ((f = fdopen(fd, "rb")) == NULL)
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    if (f == NULL)
        close(fd);
    return f;
}

int fd_open_regular(const char *path, char *why, size_t whylen)
{
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "not a regular file");
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

_Static_assert(sizeof(((fd_config_t *)0)->admin_token) == FD_ADMIN_TOKEN_MAX, "admin token buffer");

static int load_admin_token(fd_config_t *c, const char *path, char *err, size_t errlen)
{
    char why[160];
    c->admin_token[0] = '\0';
    if (c->admin_token_file[0] == '\0')
        return 0;
    if (fd_admin_token_read(c->admin_token_file, c->admin_token, why, sizeof why) == 0)
        return 0;
    snprintf(err, errlen, "%s: auth.admin-token-file: %s: %s", path, c->admin_token_file, why);
    return -1;
}

int fd_config_load(fd_config_t *c, const char *path, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen)
        err = dummy, errlen = sizeof dummy;
    err[0] = '\0';
    if (!path || !path[0])
        return 0;
    FILE *f = open_config(path, err, errlen);
    if (!f)
        return -1;
    int rc = prescan(f, path, err, errlen);
    if (rc == 0) {
        rewind(f);
        yaml_parser_t p;
        yaml_document_t doc;
        yaml_parser_initialize(&p);
        yaml_parser_set_input_file(&p, f);
        if (!yaml_parser_load(&p, &doc)) {
            syntax_error(&p, path, err, errlen);
            rc = -1;
        } else {
            loader_t L = {.path = path, .doc = &doc, .cfg = c, .err = err, .errlen = errlen};
            rc = load_root(&L);
            if (rc == 0)
                rc = load_admin_token(c, path, err, errlen);
            yaml_document_delete(&doc);
        }
        yaml_parser_delete(&p);
    }
    fclose(f);
    return rc;
}

/* Seconds to milliseconds for shm: rounded, never 0 for a positive value, clamped to uint32. */
static uint32_t to_ms(double secs)
{
    if (!(secs > 0))
        return 0;
    double ms = llround(secs * 1000.0);
    if (ms < 1)
        return 1;
    return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

void fd_config_to_shm(const fd_config_t *c, shm_config_t *out)
{
    memset(out, 0, sizeof *out);
    out->splitwise = c->splitwise;
    out->policy[SHM_ROLE_MIXED] = c->policy;
    out->policy[SHM_ROLE_PREFILL] = c->prefill_policy;
    out->policy[SHM_ROLE_DECODE] = c->decode_policy;
    out->balance_abs_threshold = c->balance_abs_threshold;
    out->balance_rel_threshold = c->balance_rel_threshold;
    out->hit_ratio_weight = c->hit_ratio_weight;
    out->load_balance_weight = c->load_balance_weight;
    out->waiting_weight = c->waiting_weight;
    out->instance_cache_tokens = (uint64_t)c->instance_cache_tokens;
    /* auto: by hash where the registry says several router hosts share the fleet, else while
     * the instances report requests from elsewhere (controlplane/sharing.h) */
    bool is_auto = !strcmp(c->new_prefix_placement, "auto");
    out->new_prefix_by_hash = !strcmp(c->new_prefix_placement, "hash") ? SHM_PLACE_BY_HASH
                              : !is_auto                               ? SHM_PLACE_BY_LOAD
                              : !strcmp(c->registry_backend, "etcd")   ? SHM_PLACE_BY_HASH
                                                                       : SHM_PLACE_BY_HASH_WHEN_SHARED;
    out->cache_block_size = (uint32_t)c->cache_block_size;
    out->connect_timeout_ms = to_ms(c->connect_timeout_secs);
    out->first_byte_timeout_ms = to_ms(c->first_byte_timeout_secs);
    out->idle_timeout_ms = to_ms(c->idle_timeout_secs);
    out->max_body_bytes = (uint32_t)c->max_body_mb * 1024u * 1024u;
    out->retry_attempts = (uint32_t)c->retry_attempts;
    out->metrics_max_age_ms = to_ms(c->metrics_max_age_secs);
    out->dp_threads = (uint32_t)c->dp_threads;
    snprintf(out->tokenizer_url, sizeof out->tokenizer_url, "%s", c->tokenizer_url);
    out->tokenizer_timeout_ms = to_ms(c->tokenizer_timeout_secs);
    /* never below one body of the largest size accepted, or such a body could never be read */
    int buffered_mb = c->max_buffered_body_mb > c->max_body_mb ? c->max_buffered_body_mb : c->max_body_mb;
    out->max_buffered_body_bytes = (uint64_t)buffered_mb << 20;
    out->request_header_timeout_ms = to_ms(c->request_header_timeout_secs);
    out->request_body_timeout_ms = to_ms(c->request_body_timeout_secs);
}
