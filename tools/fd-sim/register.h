/*
 * tools/fd-sim/register.h - fd-sim's registration heartbeat (register.c).
 *
 * Contract: one background thread POSTs the register payload to http://<router>/register once
 * the server listens (after --slow-start-ms), then every --register-interval-secs, each attempt
 * bounded by SIM_REG_TIMEOUT_MS; outcomes are counted in register_ok / register_failed.
 */
#ifndef FD_TOOLS_SIM_REGISTER_H
#define FD_TOOLS_SIM_REGISTER_H

#include "tools/fd-sim/args.h"
#include "tools/fd-sim/state.h"

#define SIM_REG_TIMEOUT_MS 5000

typedef struct sim_registrar sim_registrar_t;

sim_registrar_t *sim_registrar_start(const sim_config_t *cfg, sim_state_t *st, int port, int metrics_port);
/* Wake the heartbeat thread and wait for it (at most one request timeout). */
void sim_registrar_stop(sim_registrar_t *r);

#endif
