/*
 * controlplane/slotjob.c - what the per-instance jobs (health checks, /metrics polls, /v1/models
 * polls) share: at most one request in flight per slot, the instance it is about taken when it
 * starts (slot, generation, URL) and checked live when it ends, since the slot may have been
 * retired, or even reused by another instance, meanwhile; an answer that broke HTTP/1.1 counted
 * on the instance. Each job only says what to do with a result.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "controlplane/cp.h"

struct cp_slot_job {
    cp_slot_jobs_t *jobs;
    cp_slot_ident_t id;
    cp_probe_t *probe;
};

void cp_slot_ident_take(cp_slot_ident_t *id, unsigned slot, const shm_instance_t *in)
{
    id->slot = slot;
    id->generation = shm_slot_generation_of(in);
    snprintf(id->url, sizeof(id->url), "%s", in->url);
}

shm_instance_t *cp_slot_ident_live(const shm_seg_t *seg, const cp_slot_ident_t *id)
{
    return shm_slot_still(seg, id->slot, id->generation, id->url) ? shm_instance(seg, id->slot) : NULL;
}

static fd_log_limit_t protocol_log[SHM_MAX_INSTANCES]; /* per slot: one line a second */

void cp_slot_count_protocol_error(const cp_slot_ident_t *id, shm_instance_t *in, const cp_probe_result_t *res,
                                  const char *job)
{
    if (!res->protocol_error || id->slot >= SHM_MAX_INSTANCES)
        return;
    shm_count_protocol_error(in);
    fd_log_write_limited(&protocol_log[id->slot], FD_LOG_WARN, __FILE__, __LINE__,
                         "%s of %s broke HTTP/1.1: %s", job, id->url, res->error);
}

void cp_slot_jobs_init(cp_slot_jobs_t *j, cp_t *cp, const char *what, cp_slot_job_done_cb done)
{
    memset(j, 0, sizeof(*j));
    j->cp = cp;
    j->what = what;
    j->done = done;
}

static void on_done(void *data, const cp_probe_result_t *res)
{
    struct cp_slot_job *job = data;
    cp_slot_jobs_t *j = job->jobs;
    unsigned slot = job->id.slot;
    if (j->inflight[slot] == job)
        j->inflight[slot] = NULL;
    shm_instance_t *in = cp_slot_ident_live(&j->cp->seg, &job->id);
    if (in) {
        cp_slot_count_protocol_error(&job->id, in, res, j->what);
        j->done(j->cp, slot, in, res);
    }
    free(job);
}

void cp_slot_job_start(cp_slot_jobs_t *j, unsigned slot, const shm_instance_t *in, uint16_t port,
                       const char *path, size_t max_body)
{
    struct cp_slot_job *job = h2o_mem_alloc(sizeof(*job));
    job->jobs = j;
    cp_slot_ident_take(&job->id, slot, in);
    j->inflight[slot] = job;
    cp_prober_t *p = &j->cp->prober;
    job->probe = max_body ? cp_fetch_start(p, in->host, port, path, max_body, on_done, job)
                          : cp_probe_start(p, in->host, port, path, on_done, job);
}

bool cp_slot_job_busy(const cp_slot_jobs_t *j, unsigned slot)
{
    return j->inflight[slot] != NULL;
}

void cp_slot_job_forget(cp_slot_jobs_t *j, unsigned slot)
{
    struct cp_slot_job *job = j->inflight[slot];
    if (job == NULL)
        return;
    j->inflight[slot] = NULL;
    cp_probe_cancel(job->probe);
    free(job);
}

shm_instance_t *cp_slot_job_prune(cp_slot_jobs_t *j, unsigned slot)
{
    shm_instance_t *in = shm_instance(&j->cp->seg, slot);
    bool live = shm_slot_is_live(in);
    const struct cp_slot_job *job = j->inflight[slot];
    if (job != NULL && (!live || job->id.generation != shm_slot_generation_of(in)))
        cp_slot_job_forget(j, slot);
    return live ? in : NULL;
}

void cp_slot_jobs_stop(cp_slot_jobs_t *j)
{
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++)
        cp_slot_job_forget(j, i);
}
