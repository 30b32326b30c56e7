/*
 * tools/launcher/fd-router.c - the `fd-router` command: a drop-in for the Go router's binary.
 *
 * It accepts the Go router's flags (plus fd-router's state names), checks them, and replaces
 * itself with the control plane, fd-router-cp from the same directory, which runs in the
 * foreground and spawns the data plane. Keeping the launcher this thin means the process a
 * supervisor (systemd, a container runtime) watches is the CP itself, with its signals and exit
 * status.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef FD_ROUTER_VERSION
#define FD_ROUTER_VERSION "0.1.0"
#endif

#define CP_NAME "fd-router-cp"

static const char *const value_flags[] = {"port", "config_path", "shm_name", "control_socket", NULL};
static const char *const bool_flags[] = {"splitwise", "rebuild_shm", NULL};

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: fd-router --port P [--splitwise] [--config_path F] [--shm_name N] [--control_socket PATH]\n"
        "                 [--rebuild_shm]\n"
        "\n"
        "Starts the fd-router control plane (" CP_NAME ") in the foreground; it spawns the data plane.\n"
        "\n"
        "  --port P               listen port; overrides server.port in the config file\n"
        "  --splitwise            prefill/decode (PD) mode\n"
        "  --config_path F        config.yaml (default: built-in defaults)\n"
        "  --shm_name N           shared-memory segment name (default /fd-router-<port>)\n"
        "  --control_socket PATH  control socket (default <runtime dir>/fd-router-<port>.sock)\n"
        "  --rebuild_shm          replace a shared-memory segment of another layout version (its\n"
        "                         state is lost) instead of refusing to start\n"
        "  --version, -V          print the version and exit\n"
        "  --help, -h             print this help and exit\n");
}

static bool in(const char *name, size_t len, const char *const *set)
{
    for (; *set; set++)
        if (strlen(*set) == len && memcmp(*set, name, len) == 0)
            return true;
    return false;
}

/* Returns 0 to exec, 1 when done (help/version printed), 2 on a usage error. */
static int check_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            fprintf(stderr, "fd-router: unexpected argument: %s\n", a);
            return 2;
        }
        a += a[1] == '-' ? 2 : 1;
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        if (in(a, len, (const char *const[]){"version", "V", NULL})) {
            printf("fd-router %s\n", FD_ROUTER_VERSION);
            return 1;
        }
        if (in(a, len, (const char *const[]){"help", "h", NULL})) {
            usage(stdout);
            return 1;
        }
        if (in(a, len, bool_flags))
            continue;
        if (!in(a, len, value_flags)) {
            fprintf(stderr, "fd-router: flag provided but not defined: %s\n", argv[i]);
            return 2;
        }
        if (eq == NULL && ++i >= argc) {
            fprintf(stderr, "fd-router: flag needs an argument: %s\n", argv[i - 1]);
            return 2;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int rc = check_args(argc, argv);
    if (rc == 1)
        return 0;
    if (rc == 2) {
        usage(stderr);
        return 2;
    }
    char self[4096], cp[4096 + sizeof(CP_NAME)];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        fprintf(stderr, "fd-router: cannot locate itself: %s\n", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    snprintf(cp, sizeof(cp), "%.*s/%s", slash ? (int)(slash - self) : 1, slash ? self : ".", CP_NAME);
    argv[0] = cp;
    execv(cp, argv);
    fprintf(stderr, "fd-router: cannot start %s: %s\n", cp, strerror(errno));
    return 1;
}
