/*
 * common/uclient.h - the router's own asynchronous HTTP/1.1 client on h2o sockets, used for every
 * outbound call of the data plane (proxy, PD legs, abort fan-out, tokenizer) and the control
 * plane (health probes, metrics polls).
 *
 * Why not h2o 2.2's http1client: it aborts the whole process (an assertion) when an instance
 * answers a malformed Content-Length or Transfer-Encoding, and its socket pool takes every idle
 * socket off its event loop and puts it back for the next request (system calls per request).
 * An instance is untrusted input: here a response that breaks the protocol fails that exchange
 * only, and idle keep-alive sockets stay on their loop.
 *
 * The callback shape is h2o 2.2's (connect -> head -> body) so that callers read alike:
 *  - connect_cb(c, err, ...): err set = could not connect (c is freed after it returns); else the
 *    caller fills the request buffers and returns its head callback.
 *  - head_cb(c, err, ...): err set and != uc_error_is_eos = the exchange failed before a head;
 *    err == uc_error_is_eos = a head without a body. Return the body callback, or NULL to stop.
 *  - body_cb(c, err): new body bytes are in c->sock->input (the caller consumes what it takes);
 *    err == uc_error_is_eos = the body ended as framed; any other err = it broke (truncated, bad
 *    chunk, reset). After a call with err set, c is gone.
 * A callback may run synchronously inside uc_connect (a pooled socket, an immediate connect
 * failure). uc_cancel() may be called at any time before the final callback; no callback follows.
 * A caller pausing a body may h2o_socket_read_stop(c->sock) and later h2o_socket_read_start(c->sock,
 * saved c->sock->_cb.read).
 */
#ifndef FD_COMMON_UCLIENT_H
#define FD_COMMON_UCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <h2o.h>

#include "common/uresp.h"

typedef struct uc_client uc_client_t;
typedef struct uc_pool uc_pool_t;

typedef int (*uc_body_cb)(uc_client_t *c, const char *err);
typedef uc_body_cb (*uc_head_cb)(uc_client_t *c, const char *err, int minor_version, int status,
                                 h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers);
typedef uc_head_cb (*uc_connect_cb)(uc_client_t *c, const char *err, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                    int *method_is_head);

extern const char *const uc_error_is_eos;

#define UC_MAX_HEADERS   100
#define UC_MAX_HEAD_SIZE (64 * 1024) /* a response head beyond this fails the exchange */

/* Keep-alive sockets to one address, owned by one event loop. Idle sockets stay registered with
 * the loop: one that becomes readable (the peer closed it, or sent bytes nobody asked for) is
 * closed at once, and one idle longer than idle_ms is not reused. */
struct uc_pool {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    h2o_loop_t *loop;
    uint64_t idle_ms;
    size_t max_idle;
    size_t nidle;
    h2o_linklist_t idle; /* uc_idle_t, most recently returned first */
};

struct uc_client {
    uc_pool_t *pool; /* NULL: a one-shot connection, closed at the end */
    h2o_socket_t *sock;
    void *data;
    bool reused;         /* the socket came from the pool (a stale keep-alive may fail before a head) */
    bool protocol_error; /* the failure about to be reported: the instance's answer broke HTTP/1.1
                          * (a head uresp refused, a malformed chunk), not a transport failure */
    /* private */
    h2o_loop_t *loop;
    uc_connect_cb on_connect;
    uc_head_cb on_head;
    uc_body_cb on_body;
    int method_is_head;
    int keepalive;
    int writing;
    const char *early_err; /* a read error while the request was still being written */
    uc_framing_t framing;
    uint64_t bytesleft;
    struct phr_chunked_decoder chunked;
    h2o_header_t headers[UC_MAX_HEADERS];
    h2o_iovec_t header_names[UC_MAX_HEADERS];
};

void uc_pool_init(uc_pool_t *p, const struct sockaddr *sa, socklen_t salen, h2o_loop_t *loop,
                  uint64_t idle_ms, size_t max_idle);
/* Closes the idle sockets. Exchanges still running on a socket of this pool keep theirs and
 * close it at their end (no exchange keeps a pointer into a disposed pool: they hold c->pool
 * only until their end, so dispose only when none runs, as dataplane/pools.c does). */
void uc_pool_dispose(uc_pool_t *p);

/* Start an exchange on a pooled socket (or a new connection). *client is set before any callback. */
void uc_connect(uc_client_t **client, void *data, uc_pool_t *pool, uc_connect_cb cb);
/* The same on a new connection that is closed at the end (no pool). */
void uc_connect_addr(uc_client_t **client, void *data, h2o_loop_t *loop, const struct sockaddr *sa,
                     socklen_t salen, uc_connect_cb cb);
void uc_cancel(uc_client_t *c);

/* sockaddr for an IPv4 or IPv6 literal (and "localhost"); -1 if host is not one. */
int uc_make_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len);

#endif
