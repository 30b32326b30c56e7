/*
 * tools/fdctl/ctl.c - fdctl's actions, which go through the control plane's control socket
 * (HTTP over a unix socket, common/hclient.h) because only the control plane changes state:
 * upgrade, drain, undrain, remove.
 *
 * `upgrade` starts the upgrade (POST /upgrade answers at once) and then polls GET /upgrade until
 * it is done or failed, so no connection is held open for the length of a drain, and a control
 * plane that dies meanwhile is noticed. Its exit status is 0 only when the upgrade is done.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/hclient.h"
#include "tools/fdctl/fdctl.h"

#define CTL_TIMEOUT_MS 10000
#define CTL_MAX_BODY   (256 * 1024)
#define POLL_MS        100

/* One exchange; on a transport failure prints why and returns -1. */
static int call(const fdctl_ctl_t *c, const char *method, const char *path, const char *body,
                hc_response_t *resp)
{
    char target[PATH_MAX + 8];
    snprintf(target, sizeof target, "unix:%s", c->socket);
    if (hc_request(target, method, path, body ? "application/json" : NULL, body, body ? strlen(body) : 0,
                   CTL_TIMEOUT_MS, CTL_MAX_BODY, resp) == 0)
        return 0;
    if (c->port)
        fprintf(stderr, "fdctl: no fd-router control plane on port %u (control socket %s: %s)\n", c->port,
                c->socket, resp->error);
    else
        fprintf(stderr, "fdctl: no fd-router control plane at %s: %s\n", c->socket, resp->error);
    hc_response_free(resp);
    return -1;
}

static json_object *parse(const hc_response_t *r)
{
    return r->body ? json_tokener_parse(r->body) : NULL;
}

json_object *fdctl_ctl_registry(const fdctl_ctl_t *c, unsigned timeout_ms)
{
    char target[PATH_MAX + 8];
    hc_response_t resp;
    snprintf(target, sizeof target, "unix:%s", c->socket);
    if (hc_request(target, "GET", "/status", NULL, NULL, 0, timeout_ms, CTL_MAX_BODY, &resp) != 0) {
        hc_response_free(&resp);
        return NULL;
    }
    json_object *st = resp.status == 200 ? parse(&resp) : NULL, *reg = NULL;
    if (st && json_object_object_get_ex(st, "registry", &reg))
        json_object_get(reg);
    json_object_put(st);
    hc_response_free(&resp);
    return reg;
}

void fdctl_registry_text(FILE *f, json_object *reg, uint64_t now_ms)
{
    json_object *v;
    const char *backend = json_object_object_get_ex(reg, "backend", &v) ? json_object_get_string(v) : "";
    if (strcmp(backend, "etcd") != 0)
        return;
    const char *state = json_object_object_get_ex(reg, "state", &v) ? json_object_get_string(v) : "?";
    const char *ep = json_object_object_get_ex(reg, "endpoint", &v) ? json_object_get_string(v) : "?";
    int64_t since = json_object_object_get_ex(reg, "state_since_ms", &v) ? json_object_get_int64(v) : 0;
    int64_t rev = json_object_object_get_ex(reg, "revision", &v) ? json_object_get_int64(v) : 0;
    char age[32];
    fdctl_format_duration(age, sizeof age, fdctl_age_ms(now_ms, (uint64_t)since));
    fprintf(f, "registry       etcd %s (", ep);
    json_object *eps;
    if (json_object_object_get_ex(reg, "endpoints", &eps))
        for (size_t i = 0; i < json_object_array_length(eps); i++)
            fprintf(f, "%s%s", i ? ", " : "", json_object_get_string(json_object_array_get_idx(eps, i)));
    fprintf(f, "), %s for %s, revision %" PRId64, state, age, rev);
    if (strcmp(state, "up") != 0 && json_object_object_get_ex(reg, "last_error", &v))
        fprintf(f, ": %s; routing on the last table", json_object_get_string(v));
    fprintf(f, "\n");
    /* where this host's own health checks disagree with the fleet */
    json_object *dis;
    if (json_object_object_get_ex(reg, "not_routable_here", &dis))
        for (size_t i = 0; i < json_object_array_length(dis); i++) {
            json_object *d = json_object_array_get_idx(dis, i), *u, *h;
            if (json_object_object_get_ex(d, "url", &u) && json_object_object_get_ex(d, "here", &h))
                fprintf(f, "  in the fleet, not routable here: %s (%s)\n", json_object_get_string(u),
                        json_object_get_string(h));
        }
}

/* The "msg" of a {"code", "msg"} answer, else the raw body. */
static void print_refusal(const hc_response_t *r)
{
    json_object *o = parse(r), *m;
    if (o && json_object_object_get_ex(o, "msg", &m))
        fprintf(stderr, "fdctl: %s (HTTP %d)\n", json_object_get_string(m), r->status);
    else
        fprintf(stderr, "fdctl: control plane answered HTTP %d: %s\n", r->status, r->body ? r->body : "");
    json_object_put(o);
}

int fdctl_ctl_action(const fdctl_ctl_t *c, const char *action, const char *url)
{
    /* instances are registered as http://host:port; "host:port" names the same one */
    char full[SHM_URL_LEN + 16];
    snprintf(full, sizeof full, "%s%s", strstr(url, "://") ? "" : "http://", url);
    json_object *req = json_object_new_object();
    json_object_object_add(req, "url", json_object_new_string(full));
    char path[64];
    snprintf(path, sizeof path, "/instances/%s", action);
    hc_response_t r;
    int rc = call(c, "POST", path, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN), &r);
    json_object_put(req);
    if (rc != 0)
        return 1;
    int status = r.status;
    if (status != 200) {
        print_refusal(&r);
    } else if (c->json) {
        printf("%s\n", r.body);
    } else {
        json_object *o = parse(&r), *m;
        printf("%s\n", o && json_object_object_get_ex(o, "msg", &m) ? json_object_get_string(m) : r.body);
        json_object_put(o);
    }
    hc_response_free(&r);
    return status == 200 ? 0 : 1;
}

static const char *str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : NULL;
}

static int64_t num(json_object *o, const char *key, int64_t dflt)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && v ? json_object_get_int64(v) : dflt;
}

void fdctl_upgrade_text(FILE *f, json_object *u)
{
    const char *state = str(u, "state");
    int64_t id = num(u, "id", 0), old = num(u, "old_pid", 0), new = num(u, "new_pid", 0);
    if (state && strcmp(state, "failed") == 0) {
        fprintf(f, "upgrade %" PRId64 " FAILED: %s\n", id,
                str(u, "error") ? str(u, "error") : "unknown reason");
        return;
    }
    fprintf(f,
            "upgrade %" PRId64 " %s in %" PRId64 " ms: data plane pid %" PRId64 " -> pid %" PRId64 " (%s)\n",
            id, state ? state : "?", num(u, "elapsed_ms", 0), old, new,
            str(u, "binary") ? str(u, "binary") : "?");
    if (num(u, "ready_after_ms", -1) >= 0)
        fprintf(f, "  new data plane ready after %" PRId64 " ms\n", num(u, "ready_after_ms", 0));
    if (num(u, "drained", -1) >= 0)
        fprintf(f,
                "  old data plane drained %" PRId64 " request(s) in %" PRId64 " ms; %" PRId64
                " cut at the drain deadline; %" PRId64 " idle connection(s) closed\n",
                num(u, "drained", 0), num(u, "drain_ms", 0), num(u, "cut", 0), num(u, "idle_closed", 0));
    else if (old)
        fprintf(f, "  old data plane: no drain report%s%s\n", str(u, "old_exit") ? "; it " : "",
                str(u, "old_exit") ? str(u, "old_exit") : "");
    if (str(u, "note"))
        fprintf(f, "  note: %s\n", str(u, "note"));
}

/* Poll GET /upgrade until upgrade `id` ends; returns its record or NULL (message printed). */
static json_object *wait_upgrade(const fdctl_ctl_t *c, int64_t id, uint64_t deadline)
{
    for (;;) {
        hc_response_t r;
        if (call(c, "GET", "/upgrade", NULL, &r) != 0)
            return NULL;
        json_object *u = r.status == 200 ? parse(&r) : NULL;
        hc_response_free(&r);
        if (u == NULL || num(u, "id", 0) != id) {
            fprintf(stderr, "fdctl: the control plane lost track of upgrade %" PRId64 " (did it restart?)\n",
                    id);
            json_object_put(u);
            return NULL;
        }
        const char *st = str(u, "state");
        if (st && (strcmp(st, "done") == 0 || strcmp(st, "failed") == 0))
            return u;
        json_object_put(u);
        if (fd_mono_ms() >= deadline) {
            fprintf(stderr,
                    "fdctl: upgrade %" PRId64 " still running after the wait limit; see `fdctl status`\n",
                    id);
            return NULL;
        }
        usleep(POLL_MS * 1000);
    }
}

int fdctl_ctl_upgrade(const fdctl_ctl_t *c, const fdctl_upgrade_opts_t *o)
{
    json_object *req = json_object_new_object();
    if (o->dp_binary) {
        char abs[PATH_MAX];
        /* the control plane runs elsewhere: a relative path means ours */
        if (realpath(o->dp_binary, abs) == NULL) {
            fprintf(stderr, "fdctl: data-plane binary %s: %s\n", o->dp_binary, strerror(errno));
            json_object_put(req);
            return 1;
        }
        json_object_object_add(req, "dp_binary", json_object_new_string(abs));
    }
    if (o->drain_secs >= 0)
        json_object_object_add(req, "drain_secs", json_object_new_int(o->drain_secs));
    if (o->ready_timeout_secs >= 0)
        json_object_object_add(req, "ready_timeout_secs", json_object_new_int(o->ready_timeout_secs));
    hc_response_t r;
    int rc = call(c, "POST", "/upgrade", json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN), &r);
    json_object_put(req);
    if (rc != 0)
        return 1;
    if (r.status != 202) {
        print_refusal(&r);
        hc_response_free(&r);
        return 1;
    }
    json_object *started = parse(&r);
    hc_response_free(&r);
    int64_t id = started ? num(started, "id", 0) : 0;
    json_object_put(started);
    /* the drain may legitimately take its whole time; beyond it the CP kills the old DP */
    uint64_t wait_s = o->wait_secs > 0 ? (uint64_t)o->wait_secs
                                       : (uint64_t)(o->drain_secs >= 0 ? o->drain_secs : 600) + 120;
    json_object *u = wait_upgrade(c, id, fd_mono_ms() + wait_s * 1000);
    if (u == NULL)
        return 1;
    bool done = strcmp(str(u, "state"), "done") == 0;
    if (c->json)
        printf("%s\n",
               json_object_to_json_string_ext(u, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    else
        fdctl_upgrade_text(done ? stdout : stderr, u);
    json_object_put(u);
    return done ? 0 : 1;
}
