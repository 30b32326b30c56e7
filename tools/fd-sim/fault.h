/*
 * tools/fd-sim/fault.h - fd-sim's fault injection (fault.c): the failure POST /sim/fail sets,
 * and the decision, request by request, of what to do wrong.
 *
 * Contract: a sim_fault_t is shared by every event-loop thread and guarded by its own mutex;
 * sim_fault_take is the only place a failure is consumed (count) or drawn (error_rate, from a
 * splitmix64 stream that restarts from the seed whenever the mode is set, so a seeded run fails
 * the same requests every time). How a failure is carried out on the wire is the server's part:
 * status and close_before_head in completion.c, hang_before_head and die_mid_stream in call.c.
 */
#ifndef FD_TOOLS_SIM_FAULT_H
#define FD_TOOLS_SIM_FAULT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SIM_FAIL_NONE,
    SIM_FAIL_CLOSE_BEFORE_HEAD,
    SIM_FAIL_HANG_BEFORE_HEAD,
    SIM_FAIL_STATUS,
    SIM_FAIL_DIE_MID_STREAM,
    SIM_FAIL_ERROR_RATE, /* set by /sim/fail; taken as SIM_FAIL_STATUS or SIM_FAIL_NONE */
} sim_fail_mode_t;

/* What to do to one request. */
typedef struct {
    sim_fail_mode_t mode;
    int status;            /* SIM_FAIL_STATUS */
    unsigned after_chunks; /* SIM_FAIL_DIE_MID_STREAM */
} sim_fail_t;

typedef struct {
    pthread_mutex_t lock; /* guards everything below */
    sim_fail_mode_t mode;
    int status;
    long remaining; /* -1 = until reset */
    unsigned after_chunks;
    double rate;
    uint64_t seed, rng; /* error_rate draws; rng restarts from seed when the mode is set */
} sim_fault_t;

void sim_fault_init(sim_fault_t *f, uint64_t seed);
void sim_fault_destroy(sim_fault_t *f);
/* Body {"mode":..., "status":n, "count":n, "after_chunks":k, "error_rate":r, "seed":s};
 * returns 0 or -1 with err. */
int sim_fault_set(sim_fault_t *f, const char *body, size_t len, char *err, size_t errlen);
/* Decide the failure of the current request (consuming one of count). Returns out->mode. */
sim_fail_mode_t sim_fault_take(sim_fault_t *f, sim_fail_t *out);

#endif
