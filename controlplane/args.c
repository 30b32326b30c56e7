/*
 * controlplane/args.c - fd-router-cp's command line.
 *
 * The Go router uses Go's flag package, so its users may write -port 9000, --port 9000,
 * --port=9000 or --splitwise=true; all of these are accepted here too. Parsing only records
 * what was given: main.c decides precedence over config.yaml and validates values.
 */
#include <stdlib.h>
#include <string.h>

#include "controlplane/args.h"

typedef enum { ARG_STRING, ARG_BOOL } arg_kind_t;

typedef struct {
    const char *name;
    arg_kind_t kind;
    size_t offset;
} arg_spec_t;

static const arg_spec_t specs[] = {
    {"port", ARG_STRING, offsetof(cp_args_t, port)},
    {"config_path", ARG_STRING, offsetof(cp_args_t, config_path)},
    {"shm_name", ARG_STRING, offsetof(cp_args_t, shm_name)},
    {"control_socket", ARG_STRING, offsetof(cp_args_t, control_socket)},
    {"dp_binary", ARG_STRING, offsetof(cp_args_t, dp_binary)},
    {"dp_drain_secs", ARG_STRING, offsetof(cp_args_t, dp_drain_secs)},
    {"splitwise", ARG_BOOL, offsetof(cp_args_t, splitwise)},
    {"rebuild_shm", ARG_BOOL, offsetof(cp_args_t, rebuild_shm)},
    {"help", ARG_BOOL, offsetof(cp_args_t, help)},
    {"h", ARG_BOOL, offsetof(cp_args_t, help)},
    {"version", ARG_BOOL, offsetof(cp_args_t, version)},
    {"V", ARG_BOOL, offsetof(cp_args_t, version)},
};

static const arg_spec_t *find_spec(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
        if (strlen(specs[i].name) == len && memcmp(specs[i].name, name, len) == 0)
            return &specs[i];
    return NULL;
}

static int parse_bool(const char *v, bool *out)
{
    static const char *yes[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *no[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(v, yes[i]) == 0)
            return *out = true, 0;
        if (strcmp(v, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}

int cp_args_parse(int argc, char **argv, cp_args_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            snprintf(err, errlen, "unexpected argument: %s", a);
            return -1;
        }
        a += (a[1] == '-') ? 2 : 1;
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const arg_spec_t *s = find_spec(a, nlen);
        if (s == NULL) {
            snprintf(err, errlen, "flag provided but not defined: %s", argv[i]);
            return -1;
        }
        if (s->kind == ARG_BOOL) {
            bool *dst = (bool *)((char *)out + s->offset);
            if (eq == NULL) {
                *dst = true;
            } else if (parse_bool(eq + 1, dst) != 0) {
                snprintf(err, errlen, "invalid boolean value \"%s\" for flag -%s", eq + 1, s->name);
                return -1;
            }
            continue;
        }
        const char **dst = (const char **)((char *)out + s->offset);
        if (eq != NULL) {
            *dst = eq + 1;
        } else if (i + 1 < argc) {
            *dst = argv[++i];
        } else {
            snprintf(err, errlen, "flag needs an argument: -%s", s->name);
            return -1;
        }
    }
    return 0;
}

unsigned cp_parse_port(const char *s)
{
    if (s == NULL || *s < '0' || *s > '9')
        return 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || v == 0 || v > 65535)
        return 0;
    return (unsigned)v;
}

void cp_usage(FILE *f, const char *prog)
{
    fprintf(
        f,
        "Usage: %s --port P [options]\n"
        "\n"
        "The fd-router control plane: owns the shared-memory state, the public listening socket and\n"
        "the control socket; registers and health-checks instances; spawns and supervises the data\n"
        "plane (fd-router-dp), which serves the traffic.\n"
        "\n"
        "Options (-name and --name, value as next argument or after '='):\n"
        "  --port P               public listen port; overrides server.port (one of them is required)\n"
        "  --splitwise            prefill/decode (PD) mode; can only enable (server.splitwise also does)\n"
        "  --config_path F        config.yaml; without it every setting has its default\n"
        "  --shm_name N           shared-memory segment (default router.shm-name, else /fd-router-<port>)\n"
        "  --control_socket PATH  control socket (default router.control-socket, else\n"
        "                         $XDG_RUNTIME_DIR, /run or /tmp + /fd-router-<port>.sock)\n"
        "  --dp_binary PATH       data-plane executable (default router.dp-binary, else fd-router-dp\n"
        "                         in this program's directory); SIGHUP upgrades the running data\n"
        "                         plane to this binary without dropping a request\n"
        "  --dp_drain_secs S      on an upgrade by SIGHUP, how long the old data plane may take to\n"
        "                         finish its requests (default: the data plane's own, 600)\n"
        "  --rebuild_shm          discard an existing segment of an incompatible layout version\n"
        "                         instead of refusing to start\n"
        "  --version, -V          print the version and exit\n"
        "  --help, -h             print this help and exit\n",
        prog);
}
