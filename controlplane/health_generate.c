/*
 * controlplane/health_generate.c - GET /health_generate (forwarded by the data plane): probe every
 * registered prefill and decode instance at once (mixed ones are skipped, as in the Go router)
 * and answer FastDeploy's body once all probes ended, plus what each probe found:
 *   {"code":200,"msg":"Health check complete","instances":[{"url","role","healthy","status","error"}]}
 * Like the Go router it removes nothing (the health timer owns health state); unlike it, the
 * probes run asynchronously on the CP loop and each is bounded by health-check-timeout-secs.
 */
#include <json-c/json.h>
#include <string.h>

#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/health_generate.h"
#include "controlplane/respond.h"

typedef struct hg_job hg_job_t;

typedef struct {
    hg_job_t *job;
    cp_probe_t *probe; /* NULL once ended */
    cp_slot_ident_t id;
    shm_role_t role;
    cp_probe_result_t res;
} hg_target_t;

struct hg_job {
    cp_t *cp;
    h2o_req_t *req;
    hg_target_t *targets;
    size_t n, pending;
};

static void respond(hg_job_t *job)
{
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < job->n; i++) {
        hg_target_t *t = job->targets + i;
        json_object *o = json_object_new_object();
        json_object_object_add(o, "url", json_object_new_string(t->id.url));
        json_object_object_add(o, "role", json_object_new_string(fd_role_name(t->role)));
        json_object_object_add(o, "healthy", json_object_new_boolean(t->res.ok));
        json_object_object_add(o, "status", json_object_new_int(t->res.status));
        json_object_object_add(o, "error", t->res.ok ? NULL : json_object_new_string(t->res.error));
        json_object_array_add(list, o);
    }
    json_object *out = json_object_new_object();
    json_object_object_add(out, "code", json_object_new_int(200));
    json_object_object_add(out, "msg", json_object_new_string("Health check complete"));
    json_object_object_add(out, "instances", list);
    cp_respond_json(
        job->req, 200,
        json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(out);
}

static void on_probe(void *data, const cp_probe_result_t *res)
{
    hg_target_t *t = data;
    t->probe = NULL;
    t->res = *res;
    t->res.body = NULL;
    shm_instance_t *in = cp_slot_ident_live(&t->job->cp->seg, &t->id);
    if (in)
        cp_slot_count_protocol_error(&t->id, in, res, "health check (GET /health_generate)");
    if (res->ok)
        LOG_INFO("Server %s is healthy", t->id.url);
    else
        LOG_WARN("Server %s is not healthy", t->id.url);
    if (--t->job->pending == 0)
        respond(t->job);
}

/* the DP went away before the answer: stop probing for nobody */
static void on_dispose(void *arg)
{
    hg_job_t *job = *(hg_job_t **)arg;
    for (size_t i = 0; i < job->n; i++)
        if (job->targets[i].probe)
            cp_probe_cancel(job->targets[i].probe);
}

void cp_health_generate(cp_t *cp, h2o_req_t *req)
{
    hg_job_t *job = h2o_mem_alloc_pool(&req->pool, sizeof(*job));
    *job = (hg_job_t){.cp = cp, .req = req};
    job->targets = h2o_mem_alloc_pool(&req->pool, sizeof(*job->targets) * SHM_MAX_INSTANCES);
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        const shm_instance_t *in = shm_instance(&cp->seg, i);
        if (!shm_slot_is_live(in) || in->role == SHM_ROLE_MIXED)
            continue;
        hg_target_t *t = job->targets + job->n++;
        *t = (hg_target_t){.job = job, .role = (shm_role_t)in->role};
        cp_slot_ident_take(&t->id, i, in);
    }
    if (job->n == 0) {
        respond(job);
        return;
    }
    *(hg_job_t **)h2o_mem_alloc_shared(&req->pool, sizeof(hg_job_t *), on_dispose) = job;
    job->pending = job->n;
    for (size_t k = 0, i = 0; i < SHM_MAX_INSTANCES && k < job->n; i++) {
        const shm_instance_t *in = shm_instance(&cp->seg, (unsigned)i);
        if (!shm_slot_is_live(in) || in->role == SHM_ROLE_MIXED)
            continue;
        hg_target_t *t = job->targets + k++;
        t->probe =
            cp_probe_start(&cp->prober, in->host, in->port, cp->cfg.health_check_endpoint, on_probe, t);
    }
}
