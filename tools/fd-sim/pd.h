/*
 * tools/fd-sim/pd.h - fd-sim's prefill/decode roles (pd.c), as FastDeploy's splitwise instances
 * behave (docs/fastdeploy.md 12).
 *
 * Contract: a prefill instance answers with at most one token, after its modelled prefill plus
 * --prefill-delay-ms; a decode instance refuses (400) a body without a request_id and a
 * well-formed disaggregate_info (the Go router's keys and types and no other key, so a router
 * that drifts is caught); every role records the request_id and disaggregate_info it was sent
 * for GET /sim/stats. Pure except for that record.
 */
#ifndef FD_TOOLS_SIM_PD_H
#define FD_TOOLS_SIM_PD_H

#include <stdbool.h>
#include <stddef.h>

#include "tools/fd-sim/args.h"
#include "tools/fd-sim/gen.h"
#include "tools/fd-sim/state.h"

struct json_object;

/* A decode instance's check of request_id and disaggregate_info; -1 with the reason in err. */
int sim_check_disaggregate(struct json_object *root, char *err, size_t errlen);
/* The role's check of a parsed body: sim_check_disaggregate for decode, 0 for the others. */
int sim_pd_check(const sim_config_t *cfg, struct json_object *root, char *err, size_t errlen);
/* The prefill role's extra wait before its token (0 for the other roles). */
unsigned sim_pd_prefill_delay_ms(const sim_config_t *cfg);
/* Apply the role to an answer about to be served: prefill keeps one token and, when the fixed
 * delays time it (no engine), waits its prefill delay before it. */
void sim_pd_shape(const sim_config_t *cfg, bool engine, sim_gen_t *g);
/* Remember the request_id and disaggregate_info of root (NULL: a body that did not parse). */
void sim_pd_record(sim_state_t *st, struct json_object *root);

#endif
