/*
 * common/instance_info.c - decoding and validation of FastDeploy's register payload
 * (common/instance_info.h), for POST /register and the items of register.yaml.
 *
 * Two phases, as in the Go router: first "decode" (is every known field of an acceptable JSON
 * type? errors become "Invalid InstanceInfo JSON format: <reason>"), then "validate" (values and
 * ranges in FastDeploy's order; errors become "invalid InstanceInfo format:<reason>" - no space,
 * the Go text), then the mode check, whose messages stand alone. Every failure is HTTP 400; the
 * caller puts `msg` into {"code":400,"msg":...}.
 *
 * Deliberate differences (docs/compat.md): a JSON null is treated as an absent field (Go turns a
 * null port into "0" and a null role into "mixed"); the host is stored in canonical form and
 * the URL is always http:// with IPv6 in brackets; list sizes are bounded by the shm slot.
 */
#include "common/instance_info.h"
#include "shm/shm.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define BODY_MAX_DEPTH 16

static const char *const role_names[SHM_ROLE_COUNT] = {"mixed", "prefill", "decode"};

const char *fd_role_name(shm_role_t r)
{
    return (unsigned)r < SHM_ROLE_COUNT ? role_names[r] : "unknown";
}

static int reply(char *msg, size_t msglen, const char *prefix, const char *fmt, va_list ap)
{
    if (msg && msglen) {
        int n = snprintf(msg, msglen, "%s", prefix);
        if (n >= 0 && (size_t)n < msglen)
            vsnprintf(msg + n, msglen - (size_t)n, fmt, ap);
    }
    return 400;
}

static int decode_error(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int decode_error(char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = reply(msg, msglen, "Invalid InstanceInfo JSON format: ", fmt, ap);
    va_end(ap);
    return rc;
}

static int invalid(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int invalid(char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = reply(msg, msglen, "invalid InstanceInfo format:", fmt, ap);
    va_end(ap);
    return rc;
}

static int plain_error(char *msg, size_t msglen, const char *text)
{
    if (msg && msglen)
        snprintf(msg, msglen, "%s", text);
    return 400;
}

/* A field's value; JSON null counts as absent. */
static struct json_object *field(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

static bool has_nul(struct json_object *s)
{
    return strlen(json_object_get_string(s)) != (size_t)json_object_get_string_len(s);
}

static const char *type_name(struct json_object *v)
{
    return v ? json_type_to_name(json_object_get_type(v)) : "null";
}

/* ---- phase 1: JSON types ---- */

static int decode_port(struct json_object *obj, const char *name, char *msg, size_t msglen)
{
    struct json_object *v = field(obj, name);
    if (!v || json_object_is_type(v, json_type_int))
        return 0;
    if (json_object_is_type(v, json_type_string))
        return has_nul(v) ? decode_error(msg, msglen, "%s: contains a NUL character", name) : 0;
    return decode_error(msg, msglen, "%s: cannot use a JSON %s as a port (integer or string expected)", name,
                        type_name(v));
}

/* Like the Go router's IntToStringList: strings, integers and integral numbers. */
static int decode_list(struct json_object *obj, const char *name, bool strings_only, char *msg, size_t msglen)
{
    struct json_object *v = field(obj, name);
    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_array))
        return decode_error(msg, msglen, "%s: cannot use a JSON %s as a list", name, type_name(v));
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        if (json_object_is_type(e, json_type_string)) {
            if (has_nul(e))
                return decode_error(msg, msglen, "%s: element %zu contains a NUL character", name, i);
            continue;
        }
        if (strings_only)
            return decode_error(msg, msglen, "%s: element %zu: a JSON %s is not a string", name, i,
                                type_name(e));
        if (json_object_is_type(e, json_type_int))
            continue;
        if (json_object_is_type(e, json_type_double)) {
            double d = json_object_get_double(e);
            if (isfinite(d) && d == trunc(d) && fabs(d) < 1e15)
                continue;
            return decode_error(msg, msglen, "%s: element %zu: %s not integer", name, i,
                                json_object_get_string(e));
        }
        return decode_error(msg, msglen, "%s: element %zu: type %s unsupported", name, i, type_name(e));
    }
    return 0;
}

static int decode_types(struct json_object *obj, char *msg, size_t msglen)
{
    struct json_object *role = field(obj, "role");
    if (role && json_object_is_type(role, json_type_int)) {
        int64_t r = json_object_get_int64(role);
        if (r < 0 || r >= SHM_ROLE_COUNT)
            return decode_error(msg, msglen, "invalid role integer: %lld", (long long)r);
    } else if (role && !json_object_is_type(role, json_type_string)) {
        return decode_error(msg, msglen, "role: cannot use a JSON %s as a role", type_name(role));
    } else if (role && has_nul(role)) {
        return decode_error(msg, msglen, "role: contains a NUL character");
    }
    struct json_object *host = field(obj, "host_ip");
    if (host && !json_object_is_type(host, json_type_string))
        return decode_error(msg, msglen, "host_ip: cannot use a JSON %s as a string", type_name(host));
    if (host && has_nul(host))
        return decode_error(msg, msglen, "host_ip: contains a NUL character");
    static const char *const ports[] = {"port", "connector_port", "engine_worker_queue_port", "metrics_port"};
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++)
        if (decode_port(obj, ports[i], msg, msglen))
            return 400;
    if (decode_list(obj, "transfer_protocol", true, msg, msglen) ||
        decode_list(obj, "rdma_ports", false, msg, msglen) ||
        decode_list(obj, "device_ids", false, msg, msglen))
        return 400;
    struct json_object *tp = field(obj, "tp_size");
    if (tp && !json_object_is_type(tp, json_type_int))
        return decode_error(msg, msglen, "tp_size: cannot use a JSON %s as an integer", type_name(tp));
    return 0;
}

/* ---- phase 2: values ---- */

/* Text of a scalar as the Go router would show it: integers in decimal, strings as sent. */
static void scalar_text(struct json_object *v, char *out, size_t outlen)
{
    if (json_object_is_type(v, json_type_int))
        snprintf(out, outlen, "%lld", (long long)json_object_get_int64(v));
    else if (json_object_is_type(v, json_type_double))
        snprintf(out, outlen, "%.0f", json_object_get_double(v) + 0.0); /* -0.0 prints as 0 */
    else
        snprintf(out, outlen, "%s", json_object_get_string(v));
}

/* Go's strconv.Atoi then 1..65535: an optional sign and decimal digits only. Returns the port or -1. */
static int port_of_text(const char *s)
{
    const char *p = s + (*s == '+' || *s == '-');
    if (!*p || strlen(p) > 12)
        return -1;
    long v = 0;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0');
    }
    return s[0] == '-' || v < 1 || v > 65535 ? -1 : (int)v;
}

/* A port field: 0 when absent or "", the port, or -1 when invalid (text gets what was sent). */
static int port_field(struct json_object *obj, const char *name, char *text, size_t textlen)
{
    struct json_object *v = field(obj, name);
    text[0] = '\0';
    if (!v)
        return 0;
    scalar_text(v, text, textlen);
    return text[0] ? port_of_text(text) : 0;
}

static int parse_host(const char *in, char *out, size_t outlen, bool *v6)
{
    if (!strncmp(in, "https://", 8))
        in += 8;
    if (!strncmp(in, "http://", 7))
        in += 7;
    unsigned char addr[16];
    if (inet_pton(AF_INET, in, addr) == 1) {
        *v6 = false;
        return inet_ntop(AF_INET, addr, out, (socklen_t)outlen) ? 0 : -1;
    }
    if (inet_pton(AF_INET6, in, addr) == 1) {
        *v6 = true;
        return inet_ntop(AF_INET6, addr, out, (socklen_t)outlen) ? 0 : -1;
    }
    return -1;
}

/* Copy a list (already type-checked) into items; returns the count or -1 (absent). */
static int take_list(struct json_object *obj, const char *name, char items[][SHM_LIST_ITEM_LEN], int *count,
                     char *msg, size_t msglen)
{
    struct json_object *v = field(obj, name);
    *count = -1;
    if (!v)
        return 0;
    size_t n = json_object_array_length(v);
    if (n > SHM_MAX_LIST)
        return invalid(msg, msglen, "%s: too many items (%zu, at most %d)", name, n, SHM_MAX_LIST);
    for (size_t i = 0; i < n; i++) {
        char text[64];
        scalar_text(json_object_array_get_idx(v, i), text, sizeof text);
        if (strlen(text) >= SHM_LIST_ITEM_LEN)
            return invalid(msg, msglen, "%s[%zu] is longer than %d characters", name, i,
                           SHM_LIST_ITEM_LEN - 1);
        memcpy(items[i], text, strlen(text) + 1);
    }
    *count = (int)n;
    return 0;
}

static int validate_role(struct json_object *obj, fd_instance_info_t *out, char *msg, size_t msglen)
{
    struct json_object *role = field(obj, "role");
    if (!role)
        return invalid(msg, msglen, "role is required");
    if (json_object_is_type(role, json_type_int)) {
        out->role = (shm_role_t)json_object_get_int64(role);
        return 0;
    }
    const char *s = json_object_get_string(role);
    for (int i = 0; i < SHM_ROLE_COUNT; i++)
        if (!strcasecmp(s, role_names[i])) {
            out->role = (shm_role_t)i;
            return 0;
        }
    return invalid(msg, msglen, "invalid role: %s", s);
}

static int validate_address(struct json_object *obj, bool splitwise, fd_instance_info_t *out, char *msg,
                            size_t msglen)
{
    struct json_object *host = field(obj, "host_ip");
    const char *h = host ? json_object_get_string(host) : "";
    bool v6 = false;
    if (!h[0])
        return invalid(msg, msglen, "host_ip is required");
    if (parse_host(h, out->host, sizeof out->host, &v6) != 0)
        return invalid(msg, msglen, "invalid host_ip: %s", h);

    char text[64];
    int port = port_field(obj, "port", text, sizeof text);
    if (!text[0])
        return invalid(msg, msglen, "port is required");
    if (port < 0)
        return invalid(msg, msglen, "invalid port: %s", text);
    out->port = (uint16_t)port;
    snprintf(out->url, sizeof out->url, v6 ? "http://[%s]:%d" : "http://%s:%d", out->host, port);

    static const char *const pd_ports[] = {"connector_port", "engine_worker_queue_port"};
    uint16_t *dst[] = {&out->connector_port, &out->engine_worker_queue_port};
    for (int i = 0; i < 2; i++) {
        int p = port_field(obj, pd_ports[i], text, sizeof text);
        if (splitwise && p < 0)
            return invalid(msg, msglen, "invalid %s: %s", pd_ports[i], text);
        *dst[i] = p > 0 ? (uint16_t)p : 0;
    }
    return 0;
}

static int validate_lists(struct json_object *obj, bool splitwise, fd_instance_info_t *out, char *msg,
                          size_t msglen)
{
    int n;
    if (take_list(obj, "transfer_protocol", out->transfer_protocol, &n, msg, msglen))
        return 400;
    out->has_transfer_protocol = n >= 0;
    out->n_transfer_protocol = (uint8_t)(n > 0 ? n : 0);
    for (int i = 0; i < n; i++)
        if (strcmp(out->transfer_protocol[i], "ipc") && strcmp(out->transfer_protocol[i], "rdma"))
            return invalid(msg, msglen, "invalid protocol: %s", out->transfer_protocol[i]);

    if (take_list(obj, "rdma_ports", out->rdma_ports, &out->n_rdma_ports, msg, msglen))
        return 400;
    for (int i = 0; splitwise && i < out->n_rdma_ports; i++)
        if (port_of_text(out->rdma_ports[i]) < 0)
            return invalid(msg, msglen, "rdma_ports[%d] invalid port: %s", i, out->rdma_ports[i]);

    return take_list(obj, "device_ids", out->device_ids, &out->n_device_ids, msg, msglen);
}

static int validate_rest(struct json_object *obj, fd_instance_info_t *out, char *msg, size_t msglen)
{
    char text[64];
    int mp = port_field(obj, "metrics_port", text, sizeof text);
    if (mp < 0)
        return invalid(msg, msglen, "invalid metrics_port: %s", text);
    out->metrics_port = mp > 0 ? (uint16_t)mp : out->port;

    struct json_object *tp = field(obj, "tp_size");
    int64_t t = tp ? json_object_get_int64(tp) : 0;
    if (t < 0 || t > 65535)
        return invalid(msg, msglen, "invalid tp_size: %lld", (long long)t);
    out->tp_size = (int)t;
    return 0;
}

int fd_instance_parse_object(struct json_object *obj, bool splitwise, fd_instance_info_t *out, char *msg,
                             size_t msglen)
{
    memset(out, 0, sizeof *out);
    out->n_rdma_ports = out->n_device_ids = -1;
    if (msg && msglen)
        msg[0] = '\0';
    if (!obj || !json_object_is_type(obj, json_type_object))
        return decode_error(msg, msglen, "cannot use a JSON %s as an InstanceInfo object", type_name(obj));
    if (decode_types(obj, msg, msglen) || validate_role(obj, out, msg, msglen) ||
        validate_address(obj, splitwise, out, msg, msglen) ||
        validate_lists(obj, splitwise, out, msg, msglen) || validate_rest(obj, out, msg, msglen))
        return 400;
    if (splitwise && out->role == SHM_ROLE_MIXED)
        return plain_error(msg, msglen, "splitwise mode only supports PREFILL/DECODE instances");
    if (!splitwise && out->role != SHM_ROLE_MIXED)
        return plain_error(msg, msglen, "only MIXED instances are allowed");
    return 0;
}

/* One strict parse of s[0..len): the value (NULL for JSON null), the error, and where it stopped. */
static struct json_object *tokenize(struct json_tokener *tok, const char *s, size_t len,
                                    enum json_tokener_error *err, size_t *end)
{
    json_tokener_reset(tok);
    struct json_object *obj = json_tokener_parse_ex(tok, s, (int)len);
    *err = json_tokener_get_error(tok);
    *end = json_tokener_get_parse_end(tok);
    if (*err == json_tokener_continue) {
        /* all input consumed; a bare literal or number ("null", "12") completes only at the end */
        obj = json_tokener_parse_ex(tok, "", 1);
        if (json_tokener_get_error(tok) == json_tokener_success)
            *err = json_tokener_success;
    }
    return obj;
}

/* Parse the whole body as one JSON value; NULL with a decode error in msg otherwise. */
static struct json_object *parse_json(const char *body, size_t len, char *msg, size_t msglen)
{
    if (len > INT32_MAX) {
        decode_error(msg, msglen, "body too large");
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new_ex(BODY_MAX_DEPTH);
    if (!tok) {
        decode_error(msg, msglen, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    enum json_tokener_error err;
    size_t end;
    struct json_object *obj = tokenize(tok, body ? body : "", len, &err, &end);
    if (err == json_tokener_error_parse_unexpected && end > 0) {
        /* strict mode stops at trailing data: name it as such when what precedes is a whole value */
        enum json_tokener_error err2;
        size_t end2;
        json_object_put(tokenize(tok, body, end, &err2, &end2));
        if (err2 == json_tokener_success)
            err = json_tokener_success;
    }
    json_tokener_free(tok);
    if (err == json_tokener_continue) {
        decode_error(msg, msglen, "unexpected end of JSON input");
        return NULL;
    }
    if (err != json_tokener_success) {
        decode_error(msg, msglen, "%s at offset %zu", json_tokener_error_desc(err), end);
        return NULL;
    }
    while (end < len && isspace((unsigned char)body[end]))
        end++;
    if (end < len) {
        unsigned char c = (unsigned char)body[end];
        if (isprint(c))
            decode_error(msg, msglen, "invalid character '%c' after top-level value", c);
        else
            decode_error(msg, msglen, "invalid character '\\x%02x' after top-level value", c);
        json_object_put(obj);
        return NULL;
    }
    if (!obj)
        decode_error(msg, msglen, "cannot use a JSON null as an InstanceInfo object");
    return obj;
}

int fd_instance_parse_body(const char *body, size_t len, bool splitwise, fd_instance_info_t *out, char *msg,
                           size_t msglen)
{
    memset(out, 0, sizeof *out);
    out->n_rdma_ports = out->n_device_ids = -1;
    struct json_object *obj = parse_json(body, len, msg, msglen);
    if (!obj)
        return 400;
    int rc = fd_instance_parse_object(obj, splitwise, out, msg, msglen);
    json_object_put(obj);
    return rc;
}

static uint8_t list_count(int n)
{
    return n < 0 ? 0xff : (uint8_t)n;
}

static int list_len(uint8_t n)
{
    return n == 0xff ? -1 : n;
}

void fd_instance_from_slot(const shm_instance_t *slot, fd_instance_info_t *out)
{
    memset(out, 0, sizeof *out);
    out->role = (shm_role_t)slot->role;
    out->tp_size = (int)slot->tp_size;
    memcpy(out->url, slot->url, sizeof out->url);
    memcpy(out->host, slot->host, sizeof out->host);
    out->port = slot->port;
    out->metrics_port = slot->metrics_port;
    out->connector_port = slot->connector_port;
    out->engine_worker_queue_port = slot->engine_worker_queue_port;
    out->has_transfer_protocol = slot->has_transfer_protocol;
    out->n_transfer_protocol = slot->n_transfer_protocol;
    memcpy(out->transfer_protocol, slot->transfer_protocol, sizeof out->transfer_protocol);
    out->n_rdma_ports = list_len(slot->n_rdma_ports);
    memcpy(out->rdma_ports, slot->rdma_ports, sizeof out->rdma_ports);
    out->n_device_ids = list_len(slot->n_device_ids);
    memcpy(out->device_ids, slot->device_ids, sizeof out->device_ids);
}

static struct json_object *list_json(const char (*items)[SHM_LIST_ITEM_LEN], int n)
{
    struct json_object *a = json_object_new_array();
    for (int i = 0; i < n && i < SHM_MAX_LIST; i++)
        json_object_array_add(a, json_object_new_string(items[i]));
    return a;
}

struct json_object *fd_instance_to_json(const fd_instance_info_t *in)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "role", json_object_new_string(fd_role_name(in->role)));
    json_object_object_add(o, "host_ip", json_object_new_string(in->host));
    json_object_object_add(o, "port", json_object_new_int(in->port));
    json_object_object_add(o, "metrics_port", json_object_new_int(in->metrics_port));
    if (in->connector_port)
        json_object_object_add(o, "connector_port", json_object_new_int(in->connector_port));
    if (in->engine_worker_queue_port)
        json_object_object_add(o, "engine_worker_queue_port",
                               json_object_new_int(in->engine_worker_queue_port));
    if (in->has_transfer_protocol)
        json_object_object_add(o, "transfer_protocol",
                               list_json(in->transfer_protocol, in->n_transfer_protocol));
    if (in->n_rdma_ports >= 0)
        json_object_object_add(o, "rdma_ports", list_json(in->rdma_ports, in->n_rdma_ports));
    if (in->n_device_ids >= 0)
        json_object_object_add(o, "device_ids", list_json(in->device_ids, in->n_device_ids));
    if (in->tp_size)
        json_object_object_add(o, "tp_size", json_object_new_int(in->tp_size));
    return o;
}

void fd_instance_to_slot(const fd_instance_info_t *in, shm_instance_t *slot)
{
    slot->role = in->role;
    slot->tp_size = (uint32_t)in->tp_size;
    memcpy(slot->url, in->url, sizeof slot->url);
    slot->url_hash = shm_url_hash(slot->url);
    memcpy(slot->host, in->host, sizeof slot->host);
    slot->port = in->port;
    slot->metrics_port = in->metrics_port;
    slot->connector_port = in->connector_port;
    slot->engine_worker_queue_port = in->engine_worker_queue_port;

    slot->has_transfer_protocol = in->has_transfer_protocol;
    slot->n_transfer_protocol = in->n_transfer_protocol;
    slot->transfer_protocols = 0;
    for (int i = 0; i < in->n_transfer_protocol; i++)
        slot->transfer_protocols |= strcmp(in->transfer_protocol[i], "ipc") ? SHM_PROTO_RDMA : SHM_PROTO_IPC;
    memcpy(slot->transfer_protocol, in->transfer_protocol, sizeof slot->transfer_protocol);

    slot->n_rdma_ports = list_count(in->n_rdma_ports);
    memcpy(slot->rdma_ports, in->rdma_ports, sizeof slot->rdma_ports);
    slot->n_device_ids = list_count(in->n_device_ids);
    memcpy(slot->device_ids, in->device_ids, sizeof slot->device_ids);
}
