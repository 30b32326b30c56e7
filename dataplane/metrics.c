/*
 * dataplane/metrics.c - GET /metrics, Prometheus text format.
 *
 * FastDeploy's inference_requests_total (same name and labels) comes from the per-instance
 * status buckets in shared memory, so it survives DP restarts and sums every DP process; so do
 * fd_router_requests_total (outcome counters in the segment's header) and the histograms. The
 * router's own families (fd_router_*) add what an operator needs to see the load and the health
 * of each instance, the request outcomes, and how old the published table is (it keeps being
 * served while the control plane is down).
 *
 * The latency histograms (fd_router_time_to_first_byte_seconds, fd_router_request_duration_seconds)
 * are the per-instance histograms of shared memory (stats.h), so they too survive upgrades and DP
 * crashes. Their buckets are every fourth of the 80 log-scaled ones, whose bounds are exactly
 * 2^k ms: no count is moved across a Prometheus bucket bound. FastDeploy's session counters
 * keep their names and are also given under the fd_router_ prefix.
 */
#include <stdarg.h>
#include <stdio.h>

#include "common/instance_info.h"
#include "common/reply.h"
#include "common/version.h"
#include "dataplane/dp.h"
#include "dataplane/select.h"
#include "dataplane/metrics.h"
#include "shm/radix.h"

typedef struct {
    h2o_buffer_t *buf;
} out_t;

__attribute__((format(printf, 2, 3))) static void put(out_t *o, const char *fmt, ...)
{
    va_list ap;
    for (size_t want = 256;;) {
        h2o_iovec_t dst = h2o_buffer_reserve(&o->buf, want);
        va_start(ap, fmt);
        int n = vsnprintf(dst.base, dst.len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < dst.len) {
            o->buf->size += (size_t)n;
            return;
        }
        want = (size_t)n + 1;
    }
}

static void family(out_t *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *const role_label[SHM_ROLE_COUNT] = {"mixed_worker", "prefill_worker", "decode_worker"};

static void put_requests_total(out_t *o, const shm_instance_t *in)
{
    for (int b = 0; b < SHM_STATUS_BUCKETS; b++) {
        uint32_t code;
        uint64_t n = shm_status_load(in, (unsigned)b, &code);
        if (!code || code == SHM_STATUS_TRANSPORT || !n)
            continue; /* transport failures are fd_router_instance_upstream_failures_total */
        put(o, "inference_requests_total{");
        for (int r = 0; r < SHM_ROLE_COUNT; r++)
            put(o, "%s=\"%s\",", role_label[r], (unsigned)r == in->role ? in->url : "");
        put(o, "status_code=\"%u\"} %llu\n", code, (unsigned long long)n);
    }
}

/* A family's samples: one line per registered instance (dp_for_each_slot). */
typedef void (*per_instance_fn)(out_t *, const shm_instance_t *, unsigned slot);

typedef struct {
    out_t *o;
    per_instance_fn f;
} family_walk_t;

static void put_one(const shm_instance_t *in, unsigned slot, void *arg)
{
    family_walk_t *w = arg;
    w->f(w->o, in, slot);
}

static void for_each_instance(dp_thread_t *t, out_t *o, per_instance_fn f)
{
    family_walk_t w = {o, f};
    dp_for_each_slot(t, true, put_one, &w);
}

static void put_status_counts(out_t *o, const shm_instance_t *in, unsigned slot)
{
    (void)slot;
    put_requests_total(o, in);
}

#define LABELS "{url=\"%s\",role=\"%s\"}"

static void put_inflight(out_t *o, const shm_instance_t *in, unsigned slot)
{
    put(o, "fd_router_instance_inflight_requests" LABELS " %llu\n", in->url,
        fd_role_name((shm_role_t)in->role), (unsigned long long)shm_inflight(&dp.seg, slot));
}

static void put_tokens(out_t *o, const shm_instance_t *in, unsigned slot)
{
    put(o, "fd_router_instance_inflight_tokens" LABELS " %llu\n", in->url, fd_role_name((shm_role_t)in->role),
        (unsigned long long)shm_tokens(&dp.seg, slot));
}

static void put_healthy(out_t *o, const shm_instance_t *in, unsigned slot)
{
    (void)slot;
    int healthy = shm_slot_is_live(in) && shm_slot_health(in) == SHM_HEALTH_HEALTHY;
    put(o, "fd_router_instance_healthy" LABELS " %d\n", in->url, fd_role_name((shm_role_t)in->role), healthy);
}

/* A counter the data planes add to in the instance's slot. */
static void put_slot_counter(out_t *o, const char *name, const shm_instance_t *in, uint64_t v)
{
    put(o, "%s" LABELS " %llu\n", name, in->url, fd_role_name((shm_role_t)in->role), (unsigned long long)v);
}

static void put_failures(out_t *o, const shm_instance_t *in, unsigned slot)
{
    (void)slot;
    put_slot_counter(o, "fd_router_instance_upstream_failures_total", in, shm_failures_total(in));
}

static void put_protocol_errors(out_t *o, const shm_instance_t *in, unsigned slot)
{
    (void)slot;
    put_slot_counter(o, "fd_router_instance_upstream_protocol_errors_total", in,
                     shm_protocol_errors_total(in));
}

static const char *const route_name[SHM_ROUTES] = {"/v1/chat/completions", "/v1/completions"};

/* Cumulative buckets at le = 2^k ms: shm bucket 4k holds latencies in (2^(k-1/4), 2^k] ms. */
static void put_histogram(out_t *o, const char *name, const shm_instance_t *in, unsigned route,
                          shm_lat_t kind)
{
    char labels[160];
    snprintf(labels, sizeof labels, "url=\"%s\",role=\"%s\",route=\"%s\"", in->url,
             fd_role_name((shm_role_t)in->role), route_name[route]);
    uint64_t cum = 0;
    for (unsigned b = 0; b < SHM_LAT_BUCKETS; b++) {
        cum += shm_lat_bucket(in, kind, route, b);
        if (b % 4 == 0 && b < SHM_LAT_BUCKETS - 1)
            put(o, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, (double)(1ull << (b / 4)) / 1000.0,
                (unsigned long long)cum);
    }
    put(o, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
    put(o, "%s_sum{%s} %.3f\n", name, labels, (double)shm_lat_sum_ms(in, kind, route) / 1000.0);
    put(o, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}

static void put_ttfb(out_t *o, const shm_instance_t *in, unsigned slot)
{
    (void)slot;
    for (unsigned r = 0; r < SHM_ROUTES; r++)
        put_histogram(o, "fd_router_time_to_first_byte_seconds", in, r, SHM_LAT_TTFB);
}

static void put_duration(out_t *o, const shm_instance_t *in, unsigned slot)
{
    (void)slot;
    for (unsigned r = 0; r < SHM_ROUTES; r++)
        put_histogram(o, "fd_router_request_duration_seconds", in, r, SHM_LAT_TOTAL);
}

static void put_build_info(out_t *o)
{
    family(o, "fd_router_build_info", "gauge",
           "1, labelled with the release, this data plane's build and the shared-memory layout");
    uint64_t build = shm_dp_row_version_hash(shm_dp_row(&dp.seg, (unsigned)dp.row));
    put(o, "fd_router_build_info{version=\"%s\",build=\"%012llx\",layout=\"%u\"} 1\n", FD_ROUTER_VERSION,
        (unsigned long long)(build >> 16), (unsigned)SHM_LAYOUT_VERSION);
}

static void put_process(out_t *o)
{
    _Static_assert(DP_OUT_COUNT <= SHM_OUTCOMES, "shared memory counts every outcome");
    family(o, "fd_router_requests_total", "counter",
           "Inference requests by outcome, every data plane since the segment was created");
    for (int i = 0; i < DP_OUT_COUNT; i++)
        put(o, "fd_router_requests_total{outcome=\"%s\"} %llu\n", dp_outcome_name((dp_outcome_t)i),
            (unsigned long long)shm_outcome_total(&dp.seg, (unsigned)i));
    uint64_t now = shm_now_ms();
    uint64_t table = shm_table_updated_ms(&dp.seg), beat = shm_cp_heartbeat_ms(&dp.seg);
    family(o, "fd_router_table_age_seconds", "gauge", "Seconds since the instance table was last published");
    put(o, "fd_router_table_age_seconds %.3f\n", table && now > table ? (double)(now - table) / 1000 : 0.0);
    family(o, "fd_router_control_plane_heartbeat_age_seconds", "gauge",
           "Seconds since the control plane last showed it is alive (grows while it is down)");
    put(o, "fd_router_control_plane_heartbeat_age_seconds %.3f\n",
        beat && now > beat ? (double)(now - beat) / 1000 : 0.0);
    shm_fleet_t fleet = shm_fleet(&dp.seg);
    family(o, "fd_router_fleet_verdict", "gauge",
           "1 for the current verdict: do the instances report requests from other senders (shared), only "
           "this router's (alone), or no traffic yet (unknown)");
    for (shm_fleet_t v = SHM_FLEET_UNKNOWN; v <= SHM_FLEET_SHARED; v++)
        put(o, "fd_router_fleet_verdict{verdict=\"%s\"} %d\n", shm_fleet_name(v), fleet == v);
}

static void put_counter(out_t *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, "counter", help);
    put(o, "%s %llu\n", name, (unsigned long long)v);
}

/* FastDeploy's two session counters, and the prefix tree's size, evictions and decisions */
static void put_cache(out_t *o)
{
    radix_stats_t st;
    radix_stats(&dp.seg, &st);
    static const char *const prefix[] = {"", "fd_"};
    for (unsigned i = 0; i < 2; i++) {
        char hit[64], total[64];
        snprintf(hit, sizeof hit, "%srouter_cache_hit_total", prefix[i]);
        snprintf(total, sizeof total, "%srouter_cache_request_total", prefix[i]);
        put_counter(o, hit, "Session requests routed to the instance of the session's previous request",
                    st.session_hits);
        put_counter(o, total, "Cache-scored decisions that carried a session_id", st.session_requests);
    }
    family(o, "fd_router_cache_nodes", "gauge", "Prefix tree nodes in use (reachable and waiting for reuse)");
    put(o, "fd_router_cache_nodes{state=\"reachable\"} %u\nfd_router_cache_nodes{state=\"limbo\"} %u\n",
        st.nodes, st.limbo);
    family(o, "fd_router_cache_capacity_nodes", "gauge", "Prefix tree capacity (radix-capacity-nodes)");
    put(o, "fd_router_cache_capacity_nodes %u\n", st.capacity);
    family(o, "fd_router_cache_evictions_total", "counter", "Prefix tree nodes evicted, by reason");
    put(o,
        "fd_router_cache_evictions_total{reason=\"ttl\"} "
        "%llu\nfd_router_cache_evictions_total{reason=\"pressure\"} %llu\n",
        (unsigned long long)st.evictions_ttl, (unsigned long long)st.evictions_pressure);
    family(o, "fd_router_cache_decisions_total", "counter", "cache_aware decisions by branch");
    put(o, "fd_router_cache_decisions_total{branch=\"cache_scored\"} %llu\n",
        (unsigned long long)st.decided_by_cache);
    put(o, "fd_router_cache_decisions_total{branch=\"fallback_imbalance\"} %llu\n",
        (unsigned long long)st.fallback_imbalance);
    put(o, "fd_router_cache_decisions_total{branch=\"fallback_no_prompt\"} %llu\n",
        (unsigned long long)st.fallback_no_prompt);
    put_counter(o, "fd_router_cache_prefix_hits_total",
                "cache-scored decisions whose prompt matched a cached prefix", st.lookups_hit);
    put_counter(o, "fd_router_cache_inserts_total", "choices recorded in the prefix tree", st.inserts);
    put_counter(o, "fd_router_cache_inserts_truncated_total",
                "records cut short because no node could be had", st.inserts_truncated);
}

int dp_handle_metrics(h2o_req_t *req)
{
    dp_thread_t *t = dp_self(req);
    out_t o;
    h2o_buffer_init(&o.buf, &h2o_socket_buffer_prototype);
    family(&o, "inference_requests_total", "counter",
           "Proxied inference requests by instance and upstream status");
    for_each_instance(t, &o, put_status_counts);
    family(&o, "fd_router_instance_inflight_requests", "gauge",
           "Requests in flight per instance, all data planes");
    for_each_instance(t, &o, put_inflight);
    family(&o, "fd_router_instance_inflight_tokens", "gauge",
           "Estimated prompt tokens in flight per instance");
    for_each_instance(t, &o, put_tokens);
    family(&o, "fd_router_instance_healthy", "gauge", "1 if the instance is healthy and registered");
    for_each_instance(t, &o, put_healthy);
    family(&o, "fd_router_instance_upstream_failures_total", "counter",
           "Attempts that failed before the instance answered (connect, reset, timeout)");
    for_each_instance(t, &o, put_failures);
    family(&o, "fd_router_instance_upstream_protocol_errors_total", "counter",
           "Answers of the instance that broke HTTP/1.1 (malformed head or Content-Length, 101, bad chunk)");
    for_each_instance(t, &o, put_protocol_errors);
    family(&o, "fd_router_time_to_first_byte_seconds", "histogram",
           "From the request's arrival to the instance's response head, per instance and route, all data "
           "planes");
    for_each_instance(t, &o, put_ttfb);
    family(&o, "fd_router_request_duration_seconds", "histogram",
           "From the request's arrival to the end of the relayed answer (successful exchanges), per instance "
           "and route");
    for_each_instance(t, &o, put_duration);
    put_build_info(&o);
    put_process(&o);
    put_cache(&o);
    fd_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", o.buf->bytes, o.buf->size);
    h2o_buffer_dispose(&o.buf);
    return 0;
}
