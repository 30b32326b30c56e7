/*
 * dataplane/dp.c - the state dp.h declares: the process-wide `dp`, the thread each event loop
 * runs in, and the names of the request outcomes. Kept apart from main.c and server.c so that
 * every file may include dp.h without depending on them.
 */
#include "dataplane/dp.h"

dp_global_t dp = {.drain_lock = PTHREAD_MUTEX_INITIALIZER, .drain_cond = PTHREAD_COND_INITIALIZER};

__thread dp_thread_t *dp_current;

static const char *const outcome_name[DP_OUT_COUNT] = {
    [DP_OUT_OK] = "ok",
    [DP_OUT_BAD_REQUEST] = "bad_request",
    [DP_OUT_NO_INSTANCE] = "no_instance",
    [DP_OUT_UPSTREAM_ERROR] = "upstream_error",
    [DP_OUT_TIMEOUT] = "timeout",
    [DP_OUT_BROKEN] = "broken_stream",
    [DP_OUT_CLIENT_ABORT] = "client_abort",
};

const char *dp_outcome_name(dp_outcome_t o)
{
    return (unsigned)o < DP_OUT_COUNT ? outcome_name[o] : "unknown";
}
