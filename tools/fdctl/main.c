/*
 * tools/fdctl/main.c - fdctl, the operator CLI of fd-router: command line, attaching the
 * router's shared memory, dispatch and error messages.
 *
 * Views are read straight from shared memory (shm_default_name(port) or --shm_name), so they
 * keep working while the control plane is down. fdctl takes a reader slot for the duration of
 * the command so the control plane cannot reuse an instance slot under it, and gives the slot
 * back before exiting (a killed fdctl's slot is reaped by the control plane). Actions go to the
 * control plane's control socket (ctl.c; fd_default_control_socket(port) or --control_socket).
 *
 * Exit status: 0 success, 1 runtime error (no router, router stopped, shared memory unreadable,
 * action refused or failed), 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/names.h"
#include "tools/fdctl/fdctl.h"

typedef struct {
    unsigned port;
    char shm_name[64];
    char control_socket[4096];
    bool json;
    const char *command;
    const char *url;  /* drain / undrain / remove */
    const char *body; /* explain */
    fdctl_upgrade_opts_t upgrade;
} fdctl_args_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fdctl --port P [options] COMMAND [URL]\n"
            "The operator's tool for a running fd-router. Views are read from its shared memory (they\n"
            "work while the control plane is down); actions go through the control plane.\n"
            "\n"
            "Views:\n"
            "  registered   every registered instance (and removed ones still draining): role, URL,\n"
            "               health, drain flag, in-flight requests and tokens, age\n"
            "  status       control plane and data plane processes (pids, states, uptime), shared\n"
            "               memory occupancy, table age\n"
            "  health       each instance's health checks: state, consecutive results, last check,\n"
            "               last error\n"
            "  stats        requests, errors and latency (time to first byte, duration) by instance\n"
            "  cache        the shared prefix tree: size, evictions, decisions, what each instance\n"
            "               holds, the largest prefixes\n"
            "  explain --body FILE  what the router would do with that request body now (dry run:\n"
            "               candidates, loads, queued work, cached parts, costs, the choice;\n"
            "               prompts are hashed by code points: the tokenizer service is not asked)\n"
            "Actions:\n"
            "  drain URL    stop sending new requests to an instance; its in-flight ones finish\n"
            "  undrain URL  make it selectable again\n"
            "  remove URL   unregister it (its in-flight requests finish); refused while it still\n"
            "               heartbeats (it would be back at once): drain it instead\n"
            "  upgrade      re-read config.yaml (refused with its file:line if invalid: nothing changes)\n"
            "               and replace the data plane without dropping a request: start a new one\n"
            "               with it, wait until it serves, drain the old one; reports the outcome\n"
            "  help         this text\n"
            "\n"
            "Options:\n"
            "  --port P                the router's port; its shared memory is /fd-router-P\n"
            "  --shm_name NAME         shared memory segment to read instead of /fd-router-P\n"
            "  --control_socket PATH   the control plane's socket (default: from the port, as the\n"
            "                          router derives it)\n"
            "  --json                  machine-readable output\n"
            "  --dp_binary PATH        upgrade: the new data plane's binary (default: the configured one)\n"
            "  --drain_secs N          upgrade: how long the old data plane may take to finish its\n"
            "                          requests (default: its own, 600)\n"
            "  --ready_timeout_secs N  upgrade: how long the new one may take to serve (default 30)\n"
            "  --wait_secs N           upgrade: how long fdctl waits for the outcome (default: the drain\n"
            "                          time + 120)\n"
            "  -h, --help              this text\n"
            "\n"
            "Exit status: 0 success, 1 error (no router on that port, router stopped - registered,\n"
            "health, stats and status still show what its last run left - action refused, upgrade\n"
            "failed), 2 usage error.\n");
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fdctl: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    usage(stderr);
    return 2;
}

static int parse_count(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v > 86400)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_port(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v == 0 || v > 65535)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* Returns -1 to continue, else the exit status. Accepts -opt as well as --opt (Go flag style,
 * like the router's own flags) and options on either side of the command. */
static int parse_args(int argc, char **argv, fdctl_args_t *a)
{
    static const struct option opts[] = {{"port", required_argument, 0, 'p'},
                                         {"shm_name", required_argument, 0, 's'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {"control_socket", required_argument, 0, 'c'},
                                         {"dp_binary", required_argument, 0, 'b'},
                                         {"drain_secs", required_argument, 0, 'd'},
                                         {"ready_timeout_secs", required_argument, 0, 'r'},
                                         {"wait_secs", required_argument, 0, 'w'},
                                         {"body", required_argument, 0, 'B'},
                                         {0, 0, 0, 0}};
    a->upgrade.drain_secs = a->upgrade.ready_timeout_secs = -1;
    int c;
    opterr = 0;
    while ((c = getopt_long_only(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (parse_port(optarg, &a->port) != 0)
                return usage_error("invalid port: %s", optarg);
            break;
        case 's':
            if (optarg[0] != '/' || strlen(optarg) >= sizeof a->shm_name || strchr(optarg + 1, '/'))
                return usage_error("invalid shared memory name (want /name): %s", optarg);
            snprintf(a->shm_name, sizeof a->shm_name, "%s", optarg);
            break;
        case 'j':
            a->json = true;
            break;
        case 'c':
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof a->control_socket)
                return usage_error("invalid control socket path: %s", optarg);
            snprintf(a->control_socket, sizeof a->control_socket, "%s", optarg);
            break;
        case 'b':
            a->upgrade.dp_binary = optarg;
            break;
        case 'd':
            if (parse_count(optarg, &a->upgrade.drain_secs) != 0)
                return usage_error("invalid --drain_secs (0 to 86400): %s", optarg);
            break;
        case 'r':
            if (parse_count(optarg, &a->upgrade.ready_timeout_secs) != 0 ||
                a->upgrade.ready_timeout_secs == 0)
                return usage_error("invalid --ready_timeout_secs (1 to 86400): %s", optarg);
            break;
        case 'w':
            if (parse_count(optarg, &a->upgrade.wait_secs) != 0 || a->upgrade.wait_secs == 0)
                return usage_error("invalid --wait_secs (1 to 86400): %s", optarg);
            break;
        case 'B':
            a->body = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return usage_error("unknown or incomplete option: %s", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return usage_error("%s", "no command given");
    a->command = argv[optind];
    bool wants_url =
        !strcmp(a->command, "drain") || !strcmp(a->command, "undrain") || !strcmp(a->command, "remove");
    if (wants_url && optind + 1 >= argc)
        return usage_error("%s needs the instance's URL (http://host:port, or host:port)", a->command);
    if (wants_url)
        a->url = argv[optind + 1];
    if (!strcmp(a->command, "explain") && !a->body)
        return usage_error("%s", "explain needs --body FILE (a request body)");
    int extra = optind + 1 + (wants_url ? 1 : 0);
    if (extra < argc)
        return usage_error("unexpected argument: %s", argv[extra]);
    return -1;
}

/* Attach the segment; on failure prints the reason and returns false. */
static bool attach(const fdctl_args_t *a, shm_seg_t *seg)
{
    char err[256];
    if (shm_attach(seg, a->shm_name, err, sizeof err) == 0)
        return true;
    int fd = shm_open(a->shm_name, O_RDONLY, 0);
    if (fd >= 0)
        close(fd);
    if (fd < 0 && errno == ENOENT) {
        if (a->port)
            fprintf(stderr, "fdctl: no fd-router on port %u (shared memory %s not found)\n", a->port,
                    a->shm_name);
        else
            fprintf(stderr, "fdctl: no fd-router (shared memory %s not found)\n", a->shm_name);
    } else {
        fprintf(stderr, "fdctl: cannot read shared memory %s: %s\n", a->shm_name, err);
    }
    return false;
}

/* After a clean stop the segment is kept (the next start reuses it): its views are the last
 * run's. Said on stderr; the caller exits 1. */
static bool report_stopped(const fdctl_args_t *a, const shm_seg_t *seg)
{
    if (fdctl_router_running(seg))
        return false;
    if (a->port)
        fprintf(stderr, "fdctl: fd-router on port %u is stopped; shown: what its last run left in %s\n",
                a->port, a->shm_name);
    else
        fprintf(stderr, "fdctl: fd-router is stopped; shown: what its last run left in %s\n", a->shm_name);
    return true;
}

static void print_json(json_object *o)
{
    printf("%s\n",
           json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

/* The router's control socket: --control_socket, else the port's default (empty without either). */
static fdctl_ctl_t ctl_of(const fdctl_args_t *a)
{
    fdctl_ctl_t c = {.port = a->port, .json = a->json};
    if (a->control_socket[0])
        snprintf(c.socket, sizeof c.socket, "%s", a->control_socket);
    else if (a->port)
        fd_default_control_socket(c.socket, sizeof c.socket, a->port);
    return c;
}

typedef enum { VIEW_REGISTERED, VIEW_HEALTH, VIEW_STATS } view_t;

/* The instance views: one snapshot of the slots, rendered as `view` in JSON or as a table. */
static int show_instances(const fdctl_args_t *a, shm_seg_t *seg, int reader, view_t view)
{
    fdctl_instance_t *list = calloc(SHM_MAX_INSTANCES, sizeof *list);
    if (!list) {
        fprintf(stderr, "fdctl: out of memory\n");
        return 1;
    }
    unsigned n = fdctl_snapshot_instances(seg, reader, list, SHM_MAX_INSTANCES);
    uint64_t now = shm_now_ms();
    /* registry.backend: etcd: the names of the hosts behind a disagreement are the control
     * plane's (shared memory holds the counts); asked only when the fleet's view is there */
    bool fleet = false;
    for (unsigned i = 0; view == VIEW_HEALTH && i < n && !fleet; i++)
        fleet = list[i].fleet.hosts > 0;
    fdctl_ctl_t c = ctl_of(a);
    json_object *reg =
        fleet && c.socket[0] && fdctl_router_running(seg) ? fdctl_ctl_registry(&c, 1000) : NULL;
    if (a->json)
        print_json(view == VIEW_REGISTERED ? fdctl_instances_json(list, n, now)
                   : view == VIEW_HEALTH   ? fdctl_health_json(list, n, now, reg)
                                           : fdctl_stats_json(list, n, now));
    else if (view == VIEW_REGISTERED)
        fdctl_instances_table(stdout, list, n, now);
    else if (view == VIEW_HEALTH)
        fdctl_health_table(stdout, list, n, now, reg);
    else
        fdctl_stats_table(stdout, list, n);
    json_object_put(reg);
    free(list);
    return report_stopped(a, seg) ? 1 : 0;
}

static int cmd_registered(const fdctl_args_t *a, shm_seg_t *seg, int reader)
{
    return show_instances(a, seg, reader, VIEW_REGISTERED);
}

static int cmd_health(const fdctl_args_t *a, shm_seg_t *seg, int reader)
{
    return show_instances(a, seg, reader, VIEW_HEALTH);
}

static int cmd_stats(const fdctl_args_t *a, shm_seg_t *seg, int reader)
{
    return show_instances(a, seg, reader, VIEW_STATS);
}

static int cmd_status(const fdctl_args_t *a, shm_seg_t *seg, int reader)
{
    fdctl_status_t st;
    fdctl_snapshot_status(seg, reader, &st);
    uint64_t now = shm_now_ms();
    /* the registry backend's state lives in the control plane, not in shared memory */
    fdctl_ctl_t c = ctl_of(a);
    json_object *reg = st.running && c.socket[0] ? fdctl_ctl_registry(&c, 1000) : NULL;
    if (a->json) {
        json_object *o = fdctl_status_json(&st, now);
        if (reg)
            json_object_object_add(o, "registry", json_object_get(reg));
        print_json(o);
    } else {
        fdctl_status_text(stdout, &st, now);
        if (reg)
            fdctl_registry_text(stdout, reg, now);
    }
    json_object_put(reg);
    return st.running ? 0 : 1;
}

static int cmd_cache(const fdctl_args_t *a, shm_seg_t *seg, int reader)
{
    return fdctl_cmd_cache(a->json, seg, reader);
}

static int cmd_explain(const fdctl_args_t *a, shm_seg_t *seg, int reader)
{
    return fdctl_cmd_explain(a->json, a->body, seg, reader);
}

static int run(const fdctl_args_t *a, int (*cmd)(const fdctl_args_t *, shm_seg_t *, int))
{
    shm_seg_t seg;
    if (!attach(a, &seg))
        return 1;
    int reader = shm_reader_register(&seg);
    if (reader < 0) {
        fprintf(stderr, "fdctl: no free reader slot in shared memory %s\n", a->shm_name);
        shm_detach(&seg);
        return 1;
    }
    int rc = cmd(a, &seg, reader);
    shm_reader_unregister(&seg, reader);
    shm_detach(&seg);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "fdctl: writing output: %s\n", strerror(errno));
        return 1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    fdctl_args_t a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (strcmp(a.command, "help") == 0) {
        usage(stdout);
        return 0;
    }
    int (*cmd)(const fdctl_args_t *, shm_seg_t *, int) = NULL;
    bool action = false;
    if (strcmp(a.command, "registered") == 0)
        cmd = cmd_registered;
    else if (strcmp(a.command, "status") == 0)
        cmd = cmd_status;
    else if (strcmp(a.command, "health") == 0)
        cmd = cmd_health;
    else if (strcmp(a.command, "stats") == 0)
        cmd = cmd_stats;
    else if (strcmp(a.command, "cache") == 0)
        cmd = cmd_cache;
    else if (strcmp(a.command, "explain") == 0)
        cmd = cmd_explain;
    else if (strcmp(a.command, "upgrade") == 0 || a.url != NULL)
        action = true;
    else
        return usage_error("unknown command: %s", a.command);
    if (action) {
        if (!a.port && !a.control_socket[0])
            return usage_error("%s", "--port (or --control_socket) is required");
        fdctl_ctl_t c = ctl_of(&a);
        return a.url ? fdctl_ctl_action(&c, a.command, a.url) : fdctl_ctl_upgrade(&c, &a.upgrade);
    }
    if (!a.port && !a.shm_name[0])
        return usage_error("%s", "--port (or --shm_name) is required");
    if (!a.shm_name[0])
        shm_default_name(a.shm_name, sizeof a.shm_name, a.port);
    return run(&a, cmd);
}
