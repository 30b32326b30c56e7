/*
 * common/policies.h - the names of the selection policies, and the number each one is published
 * under: the one place a policy is named.
 *
 * A policy is its file in dataplane/policy/ (what it needs, select, explain) plus its row here.
 * The rows are data only, so the layers that cannot link the data plane use them too: the config
 * loader (common/config.c) looks names up here for scheduler.*policy, the control plane logs
 * them, fdctl prints them, and the data plane's registry (dataplane/policy/registry.c) pairs
 * each row with its file's operations by the same name.
 *
 * The position of a row is the number the control plane stores in the segment
 * (shm_config_t.policy) and a data plane of another build may read: append new rows, never
 * reorder or remove one without a new SHM_LAYOUT_VERSION.
 */
#ifndef FD_COMMON_POLICIES_H
#define FD_COMMON_POLICIES_H

/* X(ID, name): FD_POL_<ID> is its number, "name" its configuration name, and the data plane's
 * dataplane/policy/<name>.c (or the file it shares) defines `const pol_ops_t pol_<name>_ops`. */
#define FD_POLICIES(X)                                                                                       \
    X(RANDOM, random)                                                                                        \
    X(ROUND_ROBIN, round_robin)                                                                              \
    X(POWER_OF_TWO, power_of_two)                                                                            \
    X(REQUEST_NUM, request_num)                                                                              \
    X(PROCESS_TOKENS, process_tokens)                                                                        \
    X(FD_METRICS_SCORE, fd_metrics_score)                                                                    \
    X(FD_REMOTE_METRICS_SCORE, fd_remote_metrics_score)                                                      \
    X(CACHE_AWARE, cache_aware)                                                                              \
    X(REMOTE_CACHE_AWARE, remote_cache_aware)

#define FD_POLICY_ENUM_ROW(id, name) FD_POL_##id,
typedef enum { FD_POLICIES(FD_POLICY_ENUM_ROW) FD_POL_COUNT } fd_policy_t;
#undef FD_POLICY_ENUM_ROW

/* The number of a configuration name, -1 for an unknown one (or NULL). */
int fd_policy_from_name(const char *name);
/* The configuration name of a number, "unknown" out of range (a segment written by another build). */
const char *fd_policy_name(unsigned p);
/* Every name, in order, comma-separated: "random, round_robin, ...", for error messages. */
const char *fd_policy_names(void);

#endif
