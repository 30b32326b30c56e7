/*
 * controlplane/probe.h - what probe.c offers: asynchronous "GET http://host:port/path" probes and fetches on
 * the CP loop.
 */
#ifndef FD_CP_PROBE_H
#define FD_CP_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

typedef struct {
    bool ok;             /* status 200 and the whole body read */
    bool protocol_error; /* failed because the answer broke HTTP/1.1 (common/uclient.h), not because
                          * of a connect failure, a timeout or a status */
    int status;          /* 0 if no response head */
    char error[96];
    const char *body; /* cp_fetch_start and ok: the body, NUL-terminated, valid during the callback */
    size_t body_len;
} cp_probe_result_t;

typedef void (*cp_probe_cb)(void *data, const cp_probe_result_t *res);
typedef struct cp_probe cp_probe_t;

typedef struct {
    h2o_loop_t *loop;
    unsigned timeout_ms;
    h2o_timeout_t deadline; /* whole probe */
    h2o_timeout_t deferred; /* 0 ms: completions that must not run inside cp_probe_start */
    h2o_linklist_t probes;
} cp_prober_t;

int cp_prober_init(cp_prober_t *p, h2o_loop_t *loop, unsigned timeout_ms);
/* Cancels every probe in flight (their callbacks are not called). */
void cp_prober_dispose(cp_prober_t *p);
/* Start one probe. The callback runs exactly once, always from the loop, never from inside this
 * call, unless the probe is cancelled first. */
cp_probe_t *cp_probe_start(cp_prober_t *p, const char *host, uint16_t port, const char *path, cp_probe_cb cb,
                           void *data);
/* The same, keeping the body (at most max_body bytes; a longer one fails the fetch). */
cp_probe_t *cp_fetch_start(cp_prober_t *p, const char *host, uint16_t port, const char *path, size_t max_body,
                           cp_probe_cb cb, void *data);
void cp_probe_cancel(cp_probe_t *probe);
size_t cp_prober_inflight(const cp_prober_t *p);

#endif
