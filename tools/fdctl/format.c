/*
 * tools/fdctl/format.c - renders fdctl's snapshots (tools/fdctl/fdctl.h) as human tables or as
 * JSON. Pure: no shared memory, no clock (the caller passes `now_ms`), so the unit tests can pin
 * every output. JSON field names are a stable interface for scripts and the integration tests.
 */
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <string.h>

#include "common/config.h"
#include "common/instance_info.h"
#include "tools/fdctl/fdctl.h"

const char *fdctl_health_name(uint32_t health)
{
    switch (health) {
    case SHM_HEALTH_UNKNOWN:
        return "unknown";
    case SHM_HEALTH_HEALTHY:
        return "healthy";
    case SHM_HEALTH_UNHEALTHY:
        return "unhealthy";
    default:
        return "invalid";
    }
}

uint64_t fdctl_age_ms(uint64_t now_ms, uint64_t then_ms)
{
    return then_ms && now_ms > then_ms ? now_ms - then_ms : 0;
}

void fdctl_format_duration(char *out, size_t outlen, uint64_t ms)
{
    uint64_t s = ms / 1000;
    if (ms == UINT64_MAX)
        snprintf(out, outlen, "-");
    else if (ms < 1000)
        snprintf(out, outlen, "%" PRIu64 "ms", ms);
    else if (s < 60)
        snprintf(out, outlen, "%" PRIu64 ".%" PRIu64 "s", s, ms % 1000 / 100);
    else if (s < 3600)
        snprintf(out, outlen, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(out, outlen, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf(out, outlen, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
}

/* An age in the JSON output: null when the event never happened. */
static json_object *age_json(uint64_t now_ms, uint64_t then_ms)
{
    return then_ms ? json_object_new_int64((int64_t)fdctl_age_ms(now_ms, then_ms)) : NULL;
}

static void add(json_object *o, const char *key, json_object *v)
{
    json_object_object_add(o, key, v);
}

static json_object *instance_json(const fdctl_instance_t *in, uint64_t now_ms)
{
    json_object *o = json_object_new_object();
    add(o, "slot", json_object_new_int((int)in->slot));
    add(o, "generation", json_object_new_int64(in->generation));
    add(o, "url", json_object_new_string(in->url));
    add(o, "role", json_object_new_string(fd_role_name((shm_role_t)in->role)));
    add(o, "state", json_object_new_string(shm_slot_state_name(in->state)));
    add(o, "health", json_object_new_string(fdctl_health_name(in->health)));
    add(o, "drained", json_object_new_boolean(in->drained));
    add(o, "selectable", json_object_new_boolean(in->selectable));
    add(o, "inflight", json_object_new_int64((int64_t)in->inflight));
    add(o, "tokens", json_object_new_int64((int64_t)in->tokens));
    add(o, "registered_at_ms", json_object_new_int64((int64_t)in->registered_at_ms));
    add(o, "registered_age_ms", age_json(now_ms, in->registered_at_ms));
    add(o, "last_register_age_ms", age_json(now_ms, in->last_register_ms));
    add(o, "last_check_age_ms", age_json(now_ms, in->last_check_ms));
    add(o, "unhealthy_for_ms",
        in->health == SHM_HEALTH_UNHEALTHY ? age_json(now_ms, in->unhealthy_since_ms) : NULL);
    add(o, "retired_age_ms", in->state == SHM_SLOT_RETIRED ? age_json(now_ms, in->retired_at_ms) : NULL);
    add(o, "failures_total", json_object_new_int64((int64_t)in->failures_total));
    add(o, "last_error", in->last_error[0] ? json_object_new_string(in->last_error) : NULL);
    json_object *models = in->n_models >= 0 ? json_object_new_array() : NULL; /* null: accepts every model */
    for (int i = 0; i < in->n_models; i++)
        json_object_array_add(models, json_object_new_string(in->models[i].id));
    add(o, "models", models);
    return o;
}

json_object *fdctl_instances_json(const fdctl_instance_t *in, unsigned n, uint64_t now_ms)
{
    json_object *list = json_object_new_array();
    for (unsigned i = 0; i < n; i++)
        json_object_array_add(list, instance_json(&in[i], now_ms));
    json_object *o = json_object_new_object();
    add(o, "instances", list);
    return o;
}

/* The state column: "live", "retired" (draining), plus markers a human should notice. */
static void state_label(const fdctl_instance_t *in, char *out, size_t outlen)
{
    if (in->state == SHM_SLOT_RETIRED)
        snprintf(out, outlen, "retired(draining)");
    else
        snprintf(out, outlen, "%s%s", shm_slot_state_name(in->state), in->drained ? ",drained" : "");
}

void fdctl_instances_table(FILE *f, const fdctl_instance_t *in, unsigned n, uint64_t now_ms)
{
    if (n == 0) {
        fprintf(f, "no instances registered\n");
        return;
    }
    fprintf(f, "%-7s  %-40s  %-17s  %-9s  %8s  %8s  %9s\n", "ROLE", "URL", "STATE", "HEALTH", "INFLIGHT",
            "TOKENS", "AGE");
    for (unsigned i = 0; i < n; i++) {
        char state[32], age[32];
        state_label(&in[i], state, sizeof state);
        fdctl_format_duration(age, sizeof age,
                              in[i].registered_at_ms ? fdctl_age_ms(now_ms, in[i].registered_at_ms)
                                                     : UINT64_MAX);
        fprintf(f, "%-7s  %-40s  %-17s  %-9s  %8" PRIu64 "  %8" PRIu64 "  %9s\n",
                fd_role_name((shm_role_t)in[i].role), in[i].url, state, fdctl_health_name(in[i].health),
                in[i].inflight, in[i].tokens, age);
        if (in[i].health == SHM_HEALTH_UNHEALTHY && in[i].last_error[0])
            fprintf(f, "         last error: %s\n", in[i].last_error);
    }
}

static json_object *cp_json(const fdctl_status_t *st, uint64_t now_ms)
{
    json_object *o = json_object_new_object();
    add(o, "pid", json_object_new_int(st->cp_pid));
    add(o, "alive", json_object_new_boolean(st->cp_alive));
    add(o, "port", json_object_new_int((int)st->listen_port));
    add(o, "started_at_ms", json_object_new_int64((int64_t)st->cp_started_at_ms));
    add(o, "heartbeat_age_ms", age_json(now_ms, st->cp_heartbeat_ms));
    return o;
}

static json_object *dp_json(const fdctl_dp_t *d)
{
    json_object *o = json_object_new_object();
    add(o, "pid", json_object_new_int(d->pid));
    add(o, "row", json_object_new_int((int)d->row));
    add(o, "alive", json_object_new_boolean(d->alive));
    add(o, "state", json_object_new_string(shm_dp_state_name(d->state)));
    add(o, "requests_total", json_object_new_int64((int64_t)d->requests_total));
    add(o, "started_at_ms", json_object_new_int64((int64_t)d->started_at_ms));
    char build[24];
    snprintf(build, sizeof build, "%012" PRIx64, d->build >> 16);
    add(o, "build", d->build ? json_object_new_string(build) : NULL);
    return o;
}

static json_object *shm_json(const fdctl_status_t *st)
{
    json_object *o = json_object_new_object();
    add(o, "name", json_object_new_string(st->shm_name));
    add(o, "size", json_object_new_int64((int64_t)st->shm_size));
    add(o, "layout_version", json_object_new_int64(st->layout_version));
    add(o, "arena_blocks", json_object_new_int64((int64_t)st->arena_blocks));
    add(o, "arena_used", json_object_new_int64((int64_t)st->arena_used));
    add(o, "instances_live", json_object_new_int((int)st->instances_live));
    add(o, "instances_retired", json_object_new_int((int)st->instances_retired));
    add(o, "writer_lock_owner", st->wlock_owner ? json_object_new_int(st->wlock_owner) : NULL);
    add(o, "writer_lock_recovered", json_object_new_int64((int64_t)st->wlock_recovered));
    return o;
}

static json_object *config_json(const fdctl_status_t *st)
{
    json_object *o = json_object_new_object();
    add(o, "splitwise", json_object_new_boolean(st->splitwise));
    add(o, "policy", json_object_new_string(fd_policy_name(st->policy[SHM_ROLE_MIXED])));
    add(o, "prefill_policy", json_object_new_string(fd_policy_name(st->policy[SHM_ROLE_PREFILL])));
    add(o, "decode_policy", json_object_new_string(fd_policy_name(st->policy[SHM_ROLE_DECODE])));
    return o;
}

json_object *fdctl_status_json(const fdctl_status_t *st, uint64_t now_ms)
{
    json_object *o = json_object_new_object();
    add(o, "running", json_object_new_boolean(st->running));
    add(o, "cp", cp_json(st, now_ms));
    json_object *dps = json_object_new_array();
    for (unsigned i = 0; i < st->n_dps; i++)
        json_object_array_add(dps, dp_json(&st->dps[i]));
    add(o, "dp", dps);
    add(o, "shm", shm_json(st));
    add(o, "config", config_json(st));
    add(o, "table_age_ms", age_json(now_ms, st->table_updated_ms));
    return o;
}

static void age_text(char *out, size_t outlen, uint64_t now_ms, uint64_t then_ms)
{
    fdctl_format_duration(out, outlen, then_ms ? fdctl_age_ms(now_ms, then_ms) : UINT64_MAX);
}

void fdctl_status_text(FILE *f, const fdctl_status_t *st, uint64_t now_ms)
{
    char a[32], b[32];
    age_text(a, sizeof a, now_ms, st->cp_started_at_ms);
    age_text(b, sizeof b, now_ms, st->cp_heartbeat_ms);
    if (!st->running)
        fprintf(
            f,
            "router         STOPPED: no control plane or data plane is running; below is what its last run "
            "left in shared memory\n");
    if (st->cp_alive)
        fprintf(f, "control plane  pid %d, running, port %u, up %s, last heartbeat %s ago\n", st->cp_pid,
                st->listen_port, a, b);
    else
        fprintf(f, "control plane  NOT RUNNING%s, port %u, last started %s ago, last heartbeat %s ago\n",
                st->running ? " (data plane serves the last table)" : "", st->listen_port, a, b);
    if (st->n_dps == 0)
        fprintf(f, "data plane     none running\n");
    for (unsigned i = 0; i < st->n_dps; i++) {
        const fdctl_dp_t *d = &st->dps[i];
        age_text(a, sizeof a, now_ms, d->started_at_ms);
        fprintf(f,
                "data plane     pid %d (row %u), %s%s, up %s, %" PRIu64 " requests, build %012" PRIx64 "\n",
                d->pid, d->row, shm_dp_state_name(d->state), d->alive ? "" : ", DEAD (row not reaped yet)", a,
                d->requests_total, d->build >> 16);
    }
    if (st->splitwise)
        fprintf(f, "policy         splitwise: prefill %s, decode %s\n",
                fd_policy_name(st->policy[SHM_ROLE_PREFILL]), fd_policy_name(st->policy[SHM_ROLE_DECODE]));
    else
        fprintf(f, "policy         %s\n", fd_policy_name(st->policy[SHM_ROLE_MIXED]));
    age_text(a, sizeof a, now_ms, st->table_updated_ms);
    fprintf(f, "instances      %u live, %u retired (draining); table updated %s ago\n", st->instances_live,
            st->instances_retired, a);
    fprintf(f,
            "shared memory  %s, %" PRIu64 " bytes, layout v%u, arena %" PRIu64 "/%" PRIu64 " blocks used\n",
            st->shm_name, st->shm_size, st->layout_version, st->arena_used, st->arena_blocks);
    fprintf(f, "writer lock    %s; recovered from a dead holder %" PRIu64 " time(s)\n",
            st->wlock_owner ? "held" : "free", st->wlock_recovered);
}

/* ---- health ---- */

void fdctl_fleet_text(char *out, size_t outlen, shm_fleet_health_t f)
{
    if (f.unhealthy == 0)
        snprintf(out, outlen, "healthy on %u of %u hosts", f.healthy, f.hosts);
    else
        snprintf(out, outlen, "healthy on %u of %u hosts, unhealthy on %u%s", f.healthy, f.hosts, f.unhealthy,
                 f.healthy ? ", DISAGREE" : "");
}

static bool fleet_disagrees(shm_fleet_health_t f)
{
    return f.healthy > 0 && f.unhealthy > 0;
}

static const char *reg_string(json_object *reg, const char *key)
{
    json_object *v;
    return reg && json_object_object_get_ex(reg, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* The control plane's record of the hosts behind a disagreement on url, or NULL. */
static json_object *disagreement_of(json_object *reg, const char *url)
{
    json_object *list, *u;
    if (reg == NULL || !json_object_object_get_ex(reg, "health_disagreements", &list) ||
        !json_object_is_type(list, json_type_array))
        return NULL;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *d = json_object_array_get_idx(list, i);
        if (json_object_object_get_ex(d, "url", &u) && json_object_is_type(u, json_type_string) &&
            strcmp(json_object_get_string(u), url) == 0)
            return d;
    }
    return NULL;
}

static json_object *fleet_json(const fdctl_instance_t *in, json_object *reg)
{
    json_object *o = json_object_new_object(), *d = disagreement_of(reg, in->url), *v;
    add(o, "healthy_hosts", json_object_new_int(in->fleet.healthy));
    add(o, "unhealthy_hosts", json_object_new_int(in->fleet.unhealthy));
    add(o, "hosts", json_object_new_int(in->fleet.hosts));
    add(o, "disagree", json_object_new_boolean(fleet_disagrees(in->fleet)));
    if (d && json_object_object_get_ex(d, "healthy_on", &v))
        add(o, "healthy_on", json_object_get(v));
    if (d && json_object_object_get_ex(d, "unhealthy_on", &v))
        add(o, "unhealthy_on", json_object_get(v));
    return o;
}

static json_object *health_entry_json(const fdctl_instance_t *in, uint64_t now_ms, json_object *reg)
{
    json_object *o = json_object_new_object();
    add(o, "url", json_object_new_string(in->url));
    add(o, "role", json_object_new_string(fd_role_name((shm_role_t)in->role)));
    add(o, "state", json_object_new_string(shm_slot_state_name(in->state)));
    add(o, "health", json_object_new_string(fdctl_health_name(in->health)));
    add(o, "drained", json_object_new_boolean(in->drained));
    add(o, "consecutive_ok", json_object_new_int64(in->consecutive_ok));
    add(o, "consecutive_fail", json_object_new_int64(in->consecutive_fail));
    add(o, "last_check_age_ms", age_json(now_ms, in->last_check_ms));
    add(o, "unhealthy_for_ms",
        in->health == SHM_HEALTH_UNHEALTHY ? age_json(now_ms, in->unhealthy_since_ms) : NULL);
    add(o, "last_register_age_ms", age_json(now_ms, in->last_register_ms));
    add(o, "last_error", in->last_error[0] ? json_object_new_string(in->last_error) : NULL);
    if (in->fleet.hosts > 0)
        add(o, "fleet", fleet_json(in, reg));
    return o;
}

json_object *fdctl_health_json(const fdctl_instance_t *in, unsigned n, uint64_t now_ms, json_object *reg)
{
    json_object *list = json_object_new_array();
    for (unsigned i = 0; i < n; i++)
        json_object_array_add(list, health_entry_json(&in[i], now_ms, reg));
    json_object *o = json_object_new_object();
    add(o, "instances", list);
    if (reg_string(reg, "host"))
        add(o, "host", json_object_new_string(reg_string(reg, "host")));
    return o;
}

/* "healthy on a:9000 (this host), b:9000; unhealthy on c:9000" from the control plane's record. */
static void print_hosts(FILE *f, json_object *d, const char *key, const char *self)
{
    json_object *a;
    if (!json_object_object_get_ex(d, key, &a) || !json_object_is_type(a, json_type_array))
        return;
    unsigned shown = 0;
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_object *h = json_object_array_get_idx(a, i);
        if (!json_object_is_type(h, json_type_string)) /* not a host's name: nothing to show */
            continue;
        const char *name = json_object_get_string(h);
        fprintf(f, "%s%s%s", shown++ ? ", " : "", name,
                self && strcmp(name, self) == 0 ? " (this host)" : "");
    }
    if (shown == 0)
        fprintf(f, "none");
}

/* Under the table: each instance the hosts disagree on, with who says what. */
static void disagreements_text(FILE *f, const fdctl_instance_t *in, unsigned n, json_object *reg)
{
    const char *self = reg_string(reg, "host");
    bool unnamed = false;
    for (unsigned i = 0; i < n; i++) {
        if (!fleet_disagrees(in[i].fleet))
            continue;
        json_object *d = disagreement_of(reg, in[i].url);
        if (d == NULL) {
            unnamed = true;
            continue;
        }
        fprintf(f, "hosts disagree on %s: healthy on ", in[i].url);
        print_hosts(f, d, "healthy_on", self);
        fprintf(f, "; unhealthy on ");
        print_hosts(f, d, "unhealthy_on", self);
        fprintf(f, "\n");
    }
    if (unnamed)
        fprintf(f, "(hosts of a disagreement not named: %s)\n",
                reg ? "not in the control plane's list yet" : "no control plane answered");
}

void fdctl_health_table(FILE *f, const fdctl_instance_t *in, unsigned n, uint64_t now_ms, json_object *reg)
{
    if (n == 0) {
        fprintf(f, "no instances registered\n");
        return;
    }
    /* registry.backend: etcd: the fleet's column, as wide as its widest cell, so that LAST ERROR
     * stays aligned whatever the counts ("..., DISAGREE" is the longest text) */
    bool fleet = false;
    int fleet_w = (int)strlen("FLEET");
    for (unsigned i = 0; i < n; i++) {
        if (in[i].fleet.hosts == 0)
            continue;
        char fl[FDCTL_FLEET_TEXT_LEN];
        fdctl_fleet_text(fl, sizeof fl, in[i].fleet);
        fleet = true;
        fleet_w = (int)strlen(fl) > fleet_w ? (int)strlen(fl) : fleet_w;
    }
    if (fleet)
        fprintf(f, "%-40s  %-9s  %6s  %6s  %10s  %-*s  %s\n", "URL", "HEALTH", "OK", "FAIL", "CHECKED",
                fleet_w, "FLEET", "LAST ERROR");
    else
        fprintf(f, "%-40s  %-9s  %6s  %6s  %10s  %s\n", "URL", "HEALTH", "OK", "FAIL", "CHECKED",
                "LAST ERROR");
    for (unsigned i = 0; i < n; i++) {
        char checked[32], fl[FDCTL_FLEET_TEXT_LEN] = "-";
        fdctl_format_duration(checked, sizeof checked,
                              in[i].last_check_ms ? fdctl_age_ms(now_ms, in[i].last_check_ms) : UINT64_MAX);
        if (in[i].fleet.hosts > 0)
            fdctl_fleet_text(fl, sizeof fl, in[i].fleet);
        fprintf(f, "%-40s  %-9s  %6u  %6u  %10s  ", in[i].url, fdctl_health_name(in[i].health),
                in[i].consecutive_ok, in[i].consecutive_fail, checked);
        if (fleet)
            fprintf(f, "%-*s  ", fleet_w, fl);
        fprintf(f, "%s\n", in[i].last_error[0] ? in[i].last_error : "-");
    }
    if (fleet)
        disagreements_text(f, in, n, reg);
}

/* ---- stats ---- */

double fdctl_hist_quantile(const uint64_t *hist, double q)
{
    uint64_t total = 0;
    for (unsigned b = 0; b < SHM_LAT_BUCKETS; b++)
        total += hist[b];
    if (total == 0)
        return -1;
    uint64_t want = (uint64_t)(q * (double)total + 0.999999);
    uint64_t seen = 0;
    for (unsigned b = 0; b < SHM_LAT_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= want && hist[b])
            return b == 0 ? 1.0 : pow(2.0, b / 4.0);
    }
    return pow(2.0, (SHM_LAT_BUCKETS - 1) / 4.0);
}

typedef struct {
    uint64_t requests, ok, errors, answered, completed;
} totals_t;

static totals_t totals_of(const fdctl_instance_t *in)
{
    totals_t t = {0};
    for (unsigned i = 0; i < SHM_STATUS_BUCKETS; i++) {
        if (in->status[i].code == 0)
            continue;
        t.requests += in->status[i].count;
        if (in->status[i].code >= 200 && in->status[i].code < 300)
            t.ok += in->status[i].count;
        else
            t.errors += in->status[i].count;
    }
    for (unsigned b = 0; b < SHM_LAT_BUCKETS; b++) {
        t.answered += in->ttfb_hist[b];
        t.completed += in->total_hist[b];
    }
    return t;
}

static json_object *quantile_json(const uint64_t *hist, double q)
{
    double v = fdctl_hist_quantile(hist, q);
    return v < 0 ? NULL : json_object_new_double(v);
}

static json_object *latency_json(const uint64_t *hist, uint64_t sum, uint64_t n)
{
    json_object *o = json_object_new_object();
    add(o, "count", json_object_new_int64((int64_t)n));
    add(o, "mean_ms", n ? json_object_new_double((double)sum / (double)n) : NULL);
    add(o, "p50_ms", quantile_json(hist, 0.50));
    add(o, "p90_ms", quantile_json(hist, 0.90));
    add(o, "p99_ms", quantile_json(hist, 0.99));
    return o;
}

static json_object *remote_json(const fdctl_instance_t *in, uint64_t now_ms)
{
    if (!in->has_remote)
        return NULL;
    json_object *o = json_object_new_object();
    add(o, "running", json_object_new_double(in->remote.running));
    add(o, "waiting", json_object_new_double(in->remote.waiting));
    add(o, "free_blocks", json_object_new_double(in->remote.free_blocks));
    add(o, "age_ms", json_object_new_int64((int64_t)fdctl_age_ms(now_ms, in->remote.at_ms)));
    return o;
}

static json_object *stats_entry_json(const fdctl_instance_t *in, uint64_t now_ms)
{
    totals_t t = totals_of(in);
    json_object *o = json_object_new_object();
    add(o, "url", json_object_new_string(in->url));
    add(o, "role", json_object_new_string(fd_role_name((shm_role_t)in->role)));
    add(o, "state", json_object_new_string(shm_slot_state_name(in->state)));
    add(o, "requests", json_object_new_int64((int64_t)t.requests));
    add(o, "ok", json_object_new_int64((int64_t)t.ok));
    add(o, "errors", json_object_new_int64((int64_t)t.errors));
    add(o, "failures_before_head", json_object_new_int64((int64_t)in->failures_total));
    add(o, "inflight", json_object_new_int64((int64_t)in->inflight));
    json_object *codes = json_object_new_object();
    for (unsigned i = 0; i < SHM_STATUS_BUCKETS; i++) {
        if (in->status[i].code == 0)
            continue;
        char key[16];
        if (in->status[i].code == SHM_STATUS_TRANSPORT)
            snprintf(key, sizeof key, "transport");
        else if (in->status[i].code == SHM_STATUS_OTHER)
            snprintf(key, sizeof key, "other");
        else
            snprintf(key, sizeof key, "%u", in->status[i].code);
        add(codes, key, json_object_new_int64((int64_t)in->status[i].count));
    }
    add(o, "by_status", codes);
    add(o, "ttfb", latency_json(in->ttfb_hist, in->ttfb_sum_ms, t.answered));
    add(o, "duration", latency_json(in->total_hist, in->total_sum_ms, t.completed));
    add(o, "remote_metrics", remote_json(in, now_ms));
    return o;
}

json_object *fdctl_stats_json(const fdctl_instance_t *in, unsigned n, uint64_t now_ms)
{
    json_object *list = json_object_new_array();
    for (unsigned i = 0; i < n; i++)
        json_object_array_add(list, stats_entry_json(&in[i], now_ms));
    json_object *o = json_object_new_object();
    add(o, "instances", list);
    return o;
}

static void ms_text(char *out, size_t outlen, double ms)
{
    if (ms < 0)
        snprintf(out, outlen, "-");
    else
        fdctl_format_duration(out, outlen, (uint64_t)(ms + 0.5));
}

void fdctl_stats_table(FILE *f, const fdctl_instance_t *in, unsigned n)
{
    if (n == 0) {
        fprintf(f, "no instances registered\n");
        return;
    }
    fprintf(f, "%-40s  %8s  %8s  %8s  %8s  %9s  %9s  %9s  %9s\n", "URL", "REQUESTS", "ERRORS", "FAILED",
            "INFLIGHT", "TTFB p50", "TTFB p99", "TIME p50", "TIME p99");
    for (unsigned i = 0; i < n; i++) {
        totals_t t = totals_of(&in[i]);
        char a[32], b[32], c[32], d[32];
        ms_text(a, sizeof a, fdctl_hist_quantile(in[i].ttfb_hist, 0.50));
        ms_text(b, sizeof b, fdctl_hist_quantile(in[i].ttfb_hist, 0.99));
        ms_text(c, sizeof c, fdctl_hist_quantile(in[i].total_hist, 0.50));
        ms_text(d, sizeof d, fdctl_hist_quantile(in[i].total_hist, 0.99));
        fprintf(f, "%-40s  %8" PRIu64 "  %8" PRIu64 "  %8" PRIu64 "  %8" PRIu64 "  %9s  %9s  %9s  %9s\n",
                in[i].url, t.requests, t.errors, in[i].failures_total, in[i].inflight, a, b, c, d);
    }
    fprintf(f, "(latencies are upper bounds of log-scaled buckets, within about 19%%)\n");
}
