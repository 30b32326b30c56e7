/*
 * controlplane/metrics_poll.h - what metrics_poll.c offers the rest of the control plane (remote metrics).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_METRICS_POLL_H
#define FD_CP_METRICS_POLL_H

#include "controlplane/cp.h"

#define CP_METRICS_MAX_BODY (1024 * 1024)

typedef struct {
    double running;     /* fastdeploy:num_requests_running */
    double waiting;     /* fastdeploy:num_requests_waiting */
    double free_blocks; /* fastdeploy:available_gpu_block_num */
} cp_metrics_sample_t;

/*
 * Parse a Prometheus text exposition (pure). Each of the three gauges is the sum of its samples
 * over every label set; comments and other metrics are ignored. Returns 0, or -1 with the reason
 * in err: a gauge missing, or a sample of one of them malformed or not finite.
 */
int cp_metrics_parse(const char *text, size_t len, cp_metrics_sample_t *out, char *err, size_t errlen);

int cp_metrics_start(cp_t *cp);
void cp_metrics_stop(cp_t *cp);

#endif
