/*
 * controlplane/supervise.h - what supervise.c offers the rest of the control plane (data-plane supervision).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_SUPERVISE_H
#define FD_CP_SUPERVISE_H

#include "controlplane/cp.h"

/* --dp_binary, else router.dp-binary, else "fd-router-dp" beside self_exe. */
int cp_dp_resolve_binary(const char *flag, const char *cfg, const char *self_exe, char *out, size_t outlen);
/* Delay before the next start after a DP died having run uptime_ms; updates the backoff. */
uint64_t cp_dp_restart_delay(uint64_t uptime_ms, uint64_t *backoff_ms);

/* Live DPs left by a previous CP, from the rows of shared memory. */
typedef struct {
    pid_t current;           /* the one to keep serving, 0 if none */
    pid_t stop[SHM_MAX_DPS]; /* to be stopped: an interrupted upgrade's other half */
    unsigned nstop;
    pid_t draining[SHM_MAX_DPS]; /* already draining: only watched until they exit */
    unsigned ndraining;
} cp_orphans_t;

typedef struct {
    pid_t pid;
    uint32_t state; /* SHM_DP_* */
    uint64_t started_at_ms;
} cp_dp_row_info_t;

/* Sort live DP rows into what a starting CP keeps, stops and waits for (pure): the newest SERVING
 * DP is kept (an upgrade that was cut short by the CP's death is completed), other SERVING and
 * STARTING ones are stopped; with no SERVING DP the newest STARTING one is kept. */
void cp_dp_classify(const cp_dp_row_info_t *rows, unsigned n, cp_orphans_t *out);
/* The live DP rows of the segment (a process with a --listen_fd argument), classified. */
void cp_dp_find_orphans(cp_t *cp, cp_orphans_t *out);
/* Take over the listening socket of an adopted DP (pidfd_getfd on its --listen_fd); -1 if not possible. */
int cp_dp_steal_listener(pid_t pid, unsigned port);
/* Watch the orphans found at start (the current one, those to stop and those draining). */
int cp_dp_adopt(cp_t *cp, const cp_orphans_t *o, char *err, size_t errlen);
/* No DP yet (before anything else touches cp->dp). */
void cp_dp_init(cp_t *cp);
/* Spawn the DP (as the current one) with the running binary. */
int cp_dp_spawn(cp_t *cp, char *err, size_t errlen);
/* Spawn `binary` as the candidate next to the current DP; the exits that concern it go to on_exit.
 * If it dies before being promoted with no DP serving, the previous binary is restarted. */
int cp_dp_spawn_candidate(cp_t *cp, const char *binary, cp_dp_exit_cb on_exit, char *err, size_t errlen);
/* The candidate serves: it becomes the current DP (running `binary`, which restarts use from now
 * on), the previous one gets SIGTERM with drain_secs (> 0) as the signal's value and is watched
 * until it exits. Returns the previous one's pid, 0 if none. */
pid_t cp_dp_promote(cp_t *cp, unsigned drain_secs, const char *binary);
/* The candidate failed: SIGKILL it (watched until it exits); with no DP serving, restart now. */
void cp_dp_abandon_candidate(cp_t *cp);
/* SIGTERM every DP, wait up to timeout_ms, then SIGKILL. */
void cp_dp_stop(cp_t *cp, unsigned timeout_ms);
/* Restart the current DP after `delay_ms` (0: now), unless one is running or being started. */
void cp_dp_schedule_restart(cp_t *cp, uint64_t delay_ms);

#endif
