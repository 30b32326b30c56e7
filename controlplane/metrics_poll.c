/*
 * controlplane/metrics_poll.c - remote metrics: every manager.metrics-poll-interval-secs, one
 * GET http://host:metrics_port/metrics per LIVE instance, all concurrently on the CP loop, each
 * with the health-check timeout and a bounded body (CP_METRICS_MAX_BODY).
 *
 * The three FastDeploy gauges the remote policies need are parsed here and published in the
 * instance's slot with a timestamp (shm_metrics_store); a failed poll (no answer in time, a
 * status other than 200, a body that does not parse) invalidates them (shm_metrics_invalidate),
 * so the policies fall back to the router's own counters at once, and stale numbers fall back
 * by age in the DP. The Go router scraped every candidate synchronously inside each selection;
 * here no selection ever waits for the network.
 *
 * A slot's next poll starts only after its previous one ended, so polls of one instance never
 * overlap however slow it is. A streak of failures is logged per instance: its first failure at
 * once (WARN), then at most one line per METRICS_LOG_INTERVAL_MS with how many polls failed since
 * the last line and the latest reason, and its end (INFO) with the streak's count, so a fleet
 * of unreachable /metrics endpoints writes a few lines a minute, not one per instance per poll.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/errmsg.h"
#include "controlplane/metrics_poll.h"

#define METRICS_LOG_INTERVAL_MS 60000u

/* ---- the Prometheus text format (pure) ---- */

enum { M_RUNNING, M_WAITING, M_BLOCKS, M_COUNT };

static const char *const metric_name[M_COUNT] = {
    [M_RUNNING] = "fastdeploy:num_requests_running",
    [M_WAITING] = "fastdeploy:num_requests_waiting",
    [M_BLOCKS] = "fastdeploy:available_gpu_block_num",
};

#define VALUE_MAX 64 /* longest number token accepted */

static bool name_start(char c)
{
    return isalpha((unsigned char)c) || c == '_' || c == ':';
}

static bool name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == ':';
}

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

static int wanted_metric(const char *name, size_t len)
{
    for (int m = 0; m < M_COUNT; m++)
        if (strlen(metric_name[m]) == len && memcmp(metric_name[m], name, len) == 0)
            return m;
    return -1;
}

/* p is at '{': the position after the matching '}', or NULL. Label values are quoted strings in
 * which a backslash escapes the next character, so a '}' or '"' inside a value is not an end. */
static const char *skip_labels(const char *p, const char *end)
{
    bool quoted = false;
    for (p++; p < end; p++) {
        if (quoted && *p == '\\')
            p++;
        else if (*p == '"')
            quoted = !quoted;
        else if (!quoted && *p == '}')
            return p + 1;
    }
    return NULL;
}

/* A finite float (exponent notation allowed) spanning exactly [p, end of its token). */
static bool parse_value(const char *p, const char *end, double *out, const char **tok_end)
{
    const char *q = p;
    while (q < end && !blank(*q))
        q++;
    *tok_end = q;
    size_t n = (size_t)(q - p);
    if (n == 0 || n >= VALUE_MAX)
        return false;
    char buf[VALUE_MAX];
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *stop;
    double v = strtod(buf, &stop);
    if (stop != buf + n || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* One line [p, end) without its newline. Adds a wanted sample to sum[] and sets seen[]. */
static int parse_line(const char *p, const char *end, unsigned lineno, double *sum, bool *seen, char *err,
                      size_t errlen)
{
    while (p < end && blank(*p))
        p++;
    if (p == end || *p == '#' || !name_start(*p))
        return 0; /* blank, comment, or not a sample we could want */
    const char *name = p;
    while (p < end && name_char(*p))
        p++;
    int m = wanted_metric(name, (size_t)(p - name));
    if (m < 0)
        return 0;
    int nlen = (int)(p - name);
    const char *sep = p;
    while (p < end && blank(*p))
        p++;
    if (p < end && *p == '{') {
        if ((p = skip_labels(p, end)) == NULL)
            return cp_errmsg(err, errlen, "line %u: unterminated label set of %.*s", lineno, nlen, name);
        sep = p;
        while (p < end && blank(*p))
            p++;
    }
    if (p == sep) /* the value must be separated from the name or the labels */
        return cp_errmsg(err, errlen, "line %u: malformed sample of %.*s", lineno, nlen, name);
    double v;
    const char *tok_end;
    if (!parse_value(p, end, &v, &tok_end)) {
        int shown = tok_end - p > 40 ? 40 : (int)(tok_end - p);
        return cp_errmsg(err, errlen, "line %u: bad value \"%.*s\" of %.*s", lineno, shown, p, nlen, name);
    }
    sum[m] += v;
    seen[m] = true;
    return 0;
}

int cp_metrics_parse(const char *text, size_t len, cp_metrics_sample_t *out, char *err, size_t errlen)
{
    double sum[M_COUNT] = {0};
    bool seen[M_COUNT] = {false};
    const char *p = text, *end = text + len;
    for (unsigned lineno = 1; p < end; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *content_end = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
        if (parse_line(p, content_end, lineno, sum, seen, err, errlen) != 0)
            return -1;
        p = nl ? nl + 1 : end;
    }
    for (int m = 0; m < M_COUNT; m++) {
        if (!seen[m]) {
            snprintf(err, errlen, "no %s sample", metric_name[m]);
            return -1;
        }
    }
    out->running = sum[M_RUNNING];
    out->waiting = sum[M_WAITING];
    out->free_blocks = sum[M_BLOCKS];
    return 0;
}

/* ---- polling ---- */

static bool in_streak(const cp_t *cp, unsigned slot, uint32_t generation)
{
    return cp->metrics.failing[slot].active && cp->metrics.failing[slot].generation == generation;
}

static void poll_failed(cp_t *cp, unsigned slot, shm_instance_t *in, uint32_t generation, const char *why)
{
    shm_metrics_invalidate(in);
    __typeof__(cp->metrics.failing[0]) *f = &cp->metrics.failing[slot];
    uint64_t now = shm_now_ms();
    if (!in_streak(cp, slot, generation)) {
        *f = (__typeof__(*f)){
            .generation = generation, .active = true, .failed = 1, .logged = 1, .logged_ms = now};
        LOG_WARN("GetRemoteMetrics failed for %s, falling back to local counter: %s", in->url, why);
        return;
    }
    f->failed++;
    if (now - f->logged_ms < METRICS_LOG_INTERVAL_MS)
        return;
    LOG_WARN(
        "GetRemoteMetrics still failing for %s: %llu more failed poll(s) in %llu s (%llu in a row), last: %s",
        in->url, (unsigned long long)(f->failed - f->logged),
        (unsigned long long)((now - f->logged_ms) / 1000), (unsigned long long)f->failed, why);
    f->logged = f->failed;
    f->logged_ms = now;
}

static void poll_succeeded(cp_t *cp, unsigned slot, shm_instance_t *in, uint32_t generation,
                           const cp_metrics_sample_t *s)
{
    shm_metrics_store(&cp->seg, slot, s->running, s->waiting, s->free_blocks, shm_now_ms());
    if (in_streak(cp, slot, generation))
        LOG_INFO("Remote metrics of %s available again after %llu failed poll(s)", in->url,
                 (unsigned long long)cp->metrics.failing[slot].failed);
    cp->metrics.failing[slot].active = false;
}

static void on_poll_done(cp_t *cp, unsigned slot, shm_instance_t *in, const cp_probe_result_t *res)
{
    cp_metrics_sample_t s;
    char why[128];
    uint32_t generation = shm_slot_generation(&cp->seg, slot);
    if (!res->ok)
        poll_failed(cp, slot, in, generation, res->error);
    else if (cp_metrics_parse(res->body, res->body_len, &s, why, sizeof(why)) != 0)
        poll_failed(cp, slot, in, generation, why);
    else
        poll_succeeded(cp, slot, in, generation, &s);
}

static void on_tick(cp_timer_t *t)
{
    cp_t *cp = t->data;
    /* on the round the last tick started */
    cp_sharing_tick(&cp->sharing, &cp->seg, (uint64_t)(cp->cfg.metrics_max_age_secs * 1000.0));
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        shm_instance_t *in = cp_slot_job_prune(&cp->metrics.jobs, i);
        if (in == NULL) {
            cp->metrics.failing[i].active = false;
            continue;
        }
        if (cp_slot_job_busy(&cp->metrics.jobs, i))
            continue; /* still running: never two polls of one instance at once */
        cp_slot_job_start(&cp->metrics.jobs, i, in, in->metrics_port ? in->metrics_port : in->port,
                          "/metrics", CP_METRICS_MAX_BODY);
    }
}

int cp_metrics_start(cp_t *cp)
{
    cp_slot_jobs_init(&cp->metrics.jobs, cp, "GET /metrics", on_poll_done);
    cp->sharing = (cp_sharing_t){.verdict = shm_fleet(&cp->seg)}; /* a restarted CP keeps it */
    if (cp_timer_init(&cp->metrics.timer, (h2o_loop_t *)cp->loop, on_tick, cp) != 0)
        return -1;
    uint64_t period = (uint64_t)(cp->cfg.metrics_poll_interval_secs * 1000.0);
    cp_timer_arm(&cp->metrics.timer, 1, period ? period : 1);
    return 0;
}

void cp_metrics_stop(cp_t *cp)
{
    cp_timer_dispose(&cp->metrics.timer);
    cp_slot_jobs_stop(&cp->metrics.jobs);
}
