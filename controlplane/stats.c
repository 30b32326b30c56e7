/*
 * controlplane/stats.c - the Go router's periodic [stats] line, every scheduler.stats-interval-secs,
 * at INFO through common/log.h like the Go router (which printed it through its logger, so the
 * line carries the usual "[INFO] date file:line: " prefix and no context tags):
 *
 *   [stats] total_running=<sum>, workers: [<url>: running=<n>, ...], cache_hit_rate=<x.xx>%
 * (hits=<h>/total=<t>)
 *
 * running is the router's own in-flight request count per registered (LIVE) instance, summed
 * over the live data planes' counter rows; workers are listed in URL order (the Go router's came
 * in map order). Operators' log tooling parses this line, so its shape is kept byte for byte.
 *
 * hits/total are the Go router's session-stickiness counts since the previous line (a request
 * with a session_id is a hit when it went to the same prefill instance as that session's
 * previous one). The cache-aware policies count them in shared memory (shm/radix.h); this line
 * shows the difference from the previous reading.
 *
 * The logger bounds a line at 8 KiB. With hundreds of instances the worker list would not fit
 * and the cut would fall on the part the tooling needs most (total_running is first, the hit
 * rate last), so the list is cut instead, ending with "... (N more)".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/stats.h"
#include "shm/radix.h"

#define WORKERS_TEXT_MAX 6144 /* leaves room in the logger's 8 KiB line for everything else */

typedef struct {
    const char *url;
    uint64_t running;
} stats_worker_t;

static int by_url(const void *a, const void *b)
{
    return strcmp(((const stats_worker_t *)a)->url, ((const stats_worker_t *)b)->url);
}

/* "<url>: running=<n>, ..." into out (size WORKERS_TEXT_MAX), cut with "... (N more)". */
static void format_workers(const stats_worker_t *w, unsigned n, char *out)
{
    const size_t reserve = sizeof(", ... (4294967295 more)");
    size_t len = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < n; i++) {
        char item[SHM_URL_LEN + 40];
        int k = snprintf(item, sizeof(item), "%s%s: running=%" PRIu64, i ? ", " : "", w[i].url, w[i].running);
        if (len + (size_t)k + reserve >= WORKERS_TEXT_MAX) {
            snprintf(out + len, WORKERS_TEXT_MAX - len, "%s... (%u more)", i ? ", " : "", n - i);
            return;
        }
        memcpy(out + len, item, (size_t)k + 1);
        len += (size_t)k;
    }
}

static void on_tick(cp_timer_t *t)
{
    cp_t *cp = t->data;
    static stats_worker_t workers[SHM_MAX_INSTANCES];
    static char text[WORKERS_TEXT_MAX];
    unsigned n = 0;
    uint64_t total = 0;
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        const shm_instance_t *in = shm_instance(&cp->seg, i);
        if (!shm_slot_is_live(in))
            continue;
        /* the CP alone frees slots, and not while this runs: the URL stays put */
        workers[n] = (stats_worker_t){.url = in->url, .running = shm_inflight(&cp->seg, i)};
        total += workers[n].running;
        n++;
    }
    qsort(workers, n, sizeof(*workers), by_url);
    format_workers(workers, n, text);
    static uint64_t prev_hits, prev_requests;
    radix_stats_t st;
    radix_stats(&cp->seg, &st);
    uint64_t hits = st.session_hits - prev_hits, requests = st.session_requests - prev_requests;
    prev_hits = st.session_hits;
    prev_requests = st.session_requests;
    double rate = requests ? (double)hits * 100.0 / (double)requests : 0.0;
    LOG_INFO("[stats] total_running=%" PRIu64 ", workers: [%s], cache_hit_rate=%.2f%% (hits=%" PRIu64
             "/total=%" PRIu64 ")",
             total, text, rate, hits, requests);
}

int cp_stats_start(cp_t *cp)
{
    if (cp_timer_init(&cp->stats_timer, (h2o_loop_t *)cp->loop, on_tick, cp) != 0)
        return -1;
    uint64_t period = (uint64_t)(cp->cfg.stats_interval_secs * 1000.0);
    if (period == 0)
        period = 1;
    cp_timer_arm(&cp->stats_timer, period, period);
    return 0;
}

void cp_stats_stop(cp_t *cp)
{
    cp_timer_dispose(&cp->stats_timer);
}
