/*
 * tools/fd-sim/main.c - entry point of fd-sim, a simulated FastDeploy inference instance for
 * fd-router's demo, integration tests and benchmarks: parse the command line, bind, announce
 * "fd-sim listening on PORT" on stdout, start the event-loop threads and the registration
 * heartbeat, then wait for SIGINT/SIGTERM and exit with 0.
 *
 * The signals are blocked in every thread and taken synchronously here with sigwait(), so no
 * handler ever runs inside an event loop.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "tools/fd-sim/args.h"
#include "tools/fd-sim/register.h"
#include "tools/fd-sim/server.h"
#include "tools/fd-sim/state.h"

/* Process-lifetime objects: static, so whatever is still open at exit stays reachable. */
static sim_config_t cfg;
static sim_state_t state;
static sim_server_t *server;

/* Before any thread starts, so that every thread inherits the mask: the stop signals are taken
 * only by sigwait() in main, and a closed peer is an error return, never SIGPIPE. */
static void block_signals(sigset_t *stop_signals)
{
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(stop_signals);
    sigaddset(stop_signals, SIGINT);
    sigaddset(stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, stop_signals, NULL);
}

/* The lines tests and scripts wait for before they send anything. */
static void announce(int port, int metrics_port)
{
    printf("fd-sim listening on %d\n", port);
    if (metrics_port != port)
        printf("fd-sim metrics listening on %d\n", metrics_port);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    char err[256];
    int rc = sim_parse_args(argc, argv, &cfg, err, sizeof(err));
    if (rc == 1) {
        sim_print_usage(stdout, argv[0]);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "fd-sim: %s (see --help)\n", err);
        return 2;
    }
    sigset_t stop_signals;
    block_signals(&stop_signals);

    int port, metrics_port;
    server = sim_server_create(&cfg, &state, &port, &metrics_port, err, sizeof(err));
    if (!server) {
        fprintf(stderr, "fd-sim: %s\n", err);
        return 1;
    }
    sim_config_finalize(&cfg, port);
    sim_state_init(&state, cfg.name, cfg.seed);
    if (sim_server_start(server) != 0) {
        fprintf(stderr, "fd-sim: cannot start the server threads\n");
        return 1;
    }
    announce(port, metrics_port);

    sim_registrar_t *reg = NULL;
    if (cfg.router[0] && !(reg = sim_registrar_start(&cfg, &state, port, metrics_port)))
        fprintf(stderr, "fd-sim: cannot start the registration thread\n");

    int sig;
    sigwait(&stop_signals, &sig);
    sim_registrar_stop(reg);
    sim_server_stop(server);
    return 0;
}
