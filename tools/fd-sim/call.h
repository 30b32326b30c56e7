/*
 * tools/fd-sim/call.h - one completion being answered (call.c), and the interface of what
 * times it: the fixed delays (call.c) or the engine model (call_engine.h).
 *
 * A call lives in its request's memory pool; the pool's dispose callback is the single place it
 * is torn down, so a client that disconnects (noticed on the next write, or by the liveness
 * probe during long waits) releases everything, including its place in the engine. Without the
 * engine its tokens are paced by h2o timers (never blocking the loop); with it, the driver
 * kicks the owning thread when the engine produced tokens, and the call sends what is there.
 *
 * Contract: a call is used only on its own thread, except `progress`: its token count and
 * abort/done flags share one atomic word, so an abort (sim_call_try_abort, from any thread,
 * registry locked) claims the call and reads exactly the count the client has seen; the owning
 * thread, kicked, then ends the call as aborted. Functions that may end the call (send the last
 * byte, or drop the connection) may dispose of it before they return: touch it no more.
 */
#ifndef FD_TOOLS_SIM_CALL_H
#define FD_TOOLS_SIM_CALL_H

#include <h2o.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "tools/fd-sim/engine.h"
#include "tools/fd-sim/gen.h"
#include "tools/fd-sim/loop.h"

typedef struct sim_call sim_call_t;

/* What paces a call's tokens. Every hook runs on the call's thread, never while a send is in
 * flight, and may end the call; leave is the last one a call calls (it is done or disposed). */
typedef struct {
    void (*advance)(sim_call_t *c); /* nothing in flight: send what is due, or wait for it */
    void (*tick)(sim_call_t *c);    /* the timer the call waited on fired */
    void (*kick)(sim_call_t *c);    /* another thread reported progress; NULL: never */
    void (*leave)(sim_call_t *c);   /* the call ends: give back what the timing holds; NULL: nothing */
} sim_timing_t;

struct sim_call {
    h2o_generator_t super;
    h2o_req_t *req;
    sim_thread_t *th;
    sim_gen_t g;
    unsigned next;  /* next token (chunk) to emit */
    bool started;   /* h2o_start_response called */
    bool sending;   /* an h2o_send is in flight: wait for proceed */
    bool done;      /* answered in full, aborted or deliberately failed: not a cancellation */
    bool counted;   /* still counted in inflight */
    bool chunked;   /* we frame the stream ourselves (see stream_head) */
    bool hang;      /* hang_before_head: only an abort or the client ends it */
    bool held;      /* role prefill with the engine: the prefill delay has passed */
    long die_after; /* die_mid_stream: chunks sent before the connection is closed; -1 = never */
    h2o_timeout_entry_t tick, probe;
    char *out;           /* the buffer of the send in flight */
    char chunk_head[24]; /* its chunk-size line */
    h2o_linklist_t link, reg_link;
    char *key;    /* what abort requests match (pool memory) */
    bool key_raw; /* key is the JSON text of a non-string request_id */
    _Atomic unsigned long progress;
    const sim_timing_t *timing; /* the fixed delays unless the engine model took the call */
    sim_ereq_t *er;             /* with the engine */
};

/* ---- for the request handlers ---- */

/* A new call, counted in flight, findable by abort under key (copied into the pool) and timed by
 * the fixed delays. */
sim_call_t *sim_call_new(sim_thread_t *th, h2o_req_t *req, const sim_gen_t *g, const char *key, bool key_raw);
/* Start answering: a stream sends its head at once, a whole answer waits for its tokens. */
void sim_call_begin(sim_call_t *c);
/* hang_before_head: never answer; only an abort or the client's leaving ends the call. */
void sim_call_hang(sim_call_t *c);
/* A kick reached the call's thread: act on an abort or (with the engine) on new tokens. */
void sim_call_poll(sim_call_t *c);
/* The abort side: claim the call; emitted gets the count the client has seen. False when the
 * call ended or was claimed first. */
bool sim_call_try_abort(sim_call_t *c, unsigned *emitted);

/* ---- for the timings: the steps a call is made of ---- */

/* Claim n more tokens for the client (and with last, the end of the answer). False once an
 * abort claimed the call first: then the call must end as aborted instead. */
bool sim_call_claim(sim_call_t *c, unsigned n, bool last);
/* The abort claimed the call: answer with what was emitted and finish_reason "abort". */
void sim_call_end_aborted(sim_call_t *c);
/* Every token is there: send a whole answer (or die, under die_mid_stream). */
void sim_call_finish_response(sim_call_t *c);
/* Chunks [c->next, to) in one send, with the stream's end when to is the last one. */
void sim_call_send_chunks(sim_call_t *c, unsigned to);
/* die_mid_stream is due before chunk c->next. */
bool sim_call_dies_now(const sim_call_t *c);
/* die_mid_stream: close the connection mid-answer (deliberate, so not a cancellation). */
void sim_call_die(sim_call_t *c);
/* Wait ms on this thread's timer for that duration; false (and the call ended) when none is left. */
bool sim_call_wait(sim_call_t *c, unsigned ms);
/* Watch for the client leaving while the call waits. */
void sim_call_arm_probe(sim_call_t *c);

#endif
