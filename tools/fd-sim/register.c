/*
 * tools/fd-sim/register.c - the registration heartbeat of fd-sim, as newest FastDeploy does it
 * (docs/fastdeploy.md 13): a background thread POSTs the register payload to
 * http://<router>/register right after the server listens and then every interval, each attempt
 * bounded by a 5 s timeout. It uses the blocking client of common/hclient.h because it runs on
 * its own thread, away from the event loops. Failures go to stderr; outcomes are counted in the
 * shared state so tests can wait for a registration.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hclient.h"
#include "tools/fd-sim/gen.h"
#include "tools/fd-sim/monotime.h"
#include "tools/fd-sim/register.h"

#define REG_MAX_BODY (64 * 1024)
#define STOP_WAIT_MS 1000.0

struct sim_registrar {
    pthread_t tid;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    bool stop, finished;
    sim_state_t *st;
    char target[SIM_ROUTER_LEN];
    double interval_ms;
    double first_delay_ms; /* --slow-start-ms: FastDeploy registers once its /health is OK */
    char *payload;
    size_t payload_len;
};

static void attempt(sim_registrar_t *r)
{
    hc_response_t resp;
    memset(&resp, 0, sizeof(resp));
    int rc = hc_request(r->target, "POST", "/register", "application/json", r->payload, r->payload_len,
                        SIM_REG_TIMEOUT_MS, REG_MAX_BODY, &resp);
    if (rc == 0 && resp.status == 200) {
        r->st->register_ok++;
    } else {
        r->st->register_failed++;
        if (rc != 0)
            fprintf(stderr, "fd-sim %s: register with %s failed: %s\n", r->st->name, r->target, resp.error);
        else
            fprintf(stderr, "fd-sim %s: register with %s failed: status %d: %.300s\n", r->st->name, r->target,
                    resp.status, resp.body ? resp.body : "");
    }
    hc_response_free(&resp);
}

static void *registrar_main(void *arg)
{
    sim_registrar_t *r = arg;
    pthread_mutex_lock(&r->lock);
    struct timespec ready = sim_deadline_ms(r->first_delay_ms);
    while (!r->stop && r->first_delay_ms > 0 &&
           pthread_cond_timedwait(&r->cond, &r->lock, &ready) != ETIMEDOUT)
        ;
    while (!r->stop) {
        pthread_mutex_unlock(&r->lock);
        attempt(r);
        pthread_mutex_lock(&r->lock);
        struct timespec until = sim_deadline_ms(r->interval_ms);
        while (!r->stop && pthread_cond_timedwait(&r->cond, &r->lock, &until) != ETIMEDOUT)
            ;
    }
    r->finished = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static void registrar_free(sim_registrar_t *r)
{
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r->payload);
    free(r);
}

sim_registrar_t *sim_registrar_start(const sim_config_t *cfg, sim_state_t *st, int port, int metrics_port)
{
    sim_registrar_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->st = st;
    r->interval_ms = cfg->register_interval_secs * 1e3;
    r->first_delay_ms = cfg->slow_start_ms;
    snprintf(r->target, sizeof(r->target), "%s", cfg->router);
    r->payload = sim_register_payload(cfg, port, metrics_port, &r->payload_len);
    sim_cond_init_monotonic(&r->cond);
    pthread_mutex_init(&r->lock, NULL);
    if (!r->payload || pthread_create(&r->tid, NULL, registrar_main, r) != 0) {
        registrar_free(r);
        return NULL;
    }
    return r;
}

/*
 * An attempt in progress may block for up to its 5 s timeout; shutdown waits for it only
 * briefly, so a hung router cannot delay exit. A thread that did not finish in time is left to
 * die with the process (its memory stays referenced from its own stack).
 */
void sim_registrar_stop(sim_registrar_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_broadcast(&r->cond);
    struct timespec until = sim_deadline_ms(STOP_WAIT_MS);
    while (!r->finished && pthread_cond_timedwait(&r->cond, &r->lock, &until) != ETIMEDOUT)
        ;
    bool finished = r->finished;
    pthread_mutex_unlock(&r->lock);
    if (!finished) {
        pthread_detach(r->tid);
        return;
    }
    pthread_join(r->tid, NULL);
    registrar_free(r);
}
