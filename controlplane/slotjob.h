/*
 * controlplane/slotjob.h - what slotjob.c offers the per-instance jobs (health checks, /metrics and
 * /v1/models polls).
 */
#ifndef FD_CP_SLOTJOB_H
#define FD_CP_SLOTJOB_H

#include "controlplane/probe.h"
#include "shm/shm.h"

typedef struct cp cp_t;

/* The instance a per-instance job (health probe, metrics poll, models poll) is about: its slot
 * may be retired, and even reused by another instance, while the job's request runs. */
typedef struct {
    unsigned slot;
    uint32_t generation;
    char url[SHM_URL_LEN];
} cp_slot_ident_t;

void cp_slot_ident_take(cp_slot_ident_t *id, unsigned slot, const shm_instance_t *in);
/* The slot's instance if it is still the one taken (LIVE, same generation and URL), else NULL. */
shm_instance_t *cp_slot_ident_live(const shm_seg_t *seg, const cp_slot_ident_t *id);
/* If `res` failed because the instance's answer broke HTTP/1.1, count it on the instance (the
 * counter the data plane adds its own to: fd_router_instance_upstream_protocol_errors_total) and
 * log it, at most once a second per instance with how many were not logged. `in` is the job's
 * instance, still the one it was started for (cp_slot_ident_live); `job` names the request. */
void cp_slot_count_protocol_error(const cp_slot_ident_t *id, shm_instance_t *in, const cp_probe_result_t *res,
                                  const char *job);

/* A job's result for an instance still in its slot (protocol errors already counted). */
typedef void (*cp_slot_job_done_cb)(cp_t *cp, unsigned slot, shm_instance_t *in,
                                    const cp_probe_result_t *res);
typedef struct {
    cp_t *cp;
    const char *what; /* names the request in the log: "health check", "GET /metrics" */
    cp_slot_job_done_cb done;
    struct cp_slot_job *inflight[SHM_MAX_INSTANCES];
} cp_slot_jobs_t;

void cp_slot_jobs_init(cp_slot_jobs_t *j, cp_t *cp, const char *what, cp_slot_job_done_cb done);
/* GET path on the instance's host at `port`: a probe (max_body 0) or a fetch keeping at most
 * max_body bytes. Replaces nothing: the caller checks that none runs for the slot. */
void cp_slot_job_start(cp_slot_jobs_t *j, unsigned slot, const shm_instance_t *in, uint16_t port,
                       const char *path, size_t max_body);
/* A job's tick, for each slot: cancels the slot's request if its instance has left the slot
 * (retired, or the slot reused by another generation: the answer would be dropped), so that
 * whoever retires an instance need not know about the jobs. Returns the slot's LIVE instance,
 * or NULL when it holds none. */
shm_instance_t *cp_slot_job_prune(cp_slot_jobs_t *j, unsigned slot);
/* A request runs for the slot (after cp_slot_job_prune: for its instance of today). */
bool cp_slot_job_busy(const cp_slot_jobs_t *j, unsigned slot);
/* Cancel the slot's request, if any (its answer no longer matters): no callback follows. */
void cp_slot_job_forget(cp_slot_jobs_t *j, unsigned slot);
void cp_slot_jobs_stop(cp_slot_jobs_t *j);

#endif
