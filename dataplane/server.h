/*
 * dataplane/server.h - the event-loop threads and their life (server.c): h2o set-up, the route
 * table, accepting, the request-read bounds, and the drain. Used by main.c only.
 */
#ifndef FD_DP_SERVER_H
#define FD_DP_SERVER_H

#include <stdint.h>

int dp_server_setup(void);
int dp_server_prepare(unsigned nthreads);     /* before the threads start */
void dp_server_wait_ready(unsigned nthreads); /* every thread accepts */
void *dp_thread_main(void *arg);              /* never returns */

/* What a drain did, summed over the threads (read after every thread drained). */
typedef struct {
    uint64_t drained;     /* requests answered after the drain began */
    uint64_t cut;         /* requests still being served at the drain deadline */
    uint64_t idle_closed; /* idle keep-alive connections closed */
} dp_drain_report_t;
void dp_server_drain_report(dp_drain_report_t *out);

#endif
