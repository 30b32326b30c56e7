/*
 * common/names.c - default names of a router's state (common/names.h). The shared-memory name
 * is shm_default_name() in shm/; this file derives the control socket's path, which the CP,
 * fdctl and the launcher must all compute the same way from the port alone.
 */
#include "common/names.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fd_private_tmp_dir(char *out, size_t outlen)
{
    snprintf(out, outlen, "/tmp/fd-router-%u", (unsigned)geteuid());
}

static void runtime_dir(char *out, size_t outlen)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && xdg[0] == '/')
        snprintf(out, outlen, "%s", xdg);
    else if (access("/run", W_OK | X_OK) == 0)
        snprintf(out, outlen, "/run");
    else
        fd_private_tmp_dir(out, outlen);
}

void fd_default_control_socket(char *out, size_t outlen, unsigned port)
{
    if (outlen == 0)
        return;
    /* the systemd unit's RuntimeDirectory= (the service runs unprivileged and cannot write /run) */
    char unit_dir[64];
    snprintf(unit_dir, sizeof(unit_dir), "/run/fd-router-%u", port);
    char dir[256];
    if (access(unit_dir, X_OK) == 0) {
        snprintf(out, outlen, "%s/control.sock", unit_dir);
        return;
    }
    runtime_dir(dir, sizeof dir);
    snprintf(out, outlen, "%s/fd-router-%u.sock", dir, port);
}

int fd_prepare_socket_dir(const char *sock_path, char *err, size_t errlen)
{
    char dir[64];
    fd_private_tmp_dir(dir, sizeof dir);
    size_t n = strlen(dir);
    if (strncmp(sock_path, dir, n) != 0 || sock_path[n] != '/' || strchr(sock_path + n + 1, '/'))
        return 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(dir, &st) != 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    /* lstat: a symlink planted by another user is refused, not followed */
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
        snprintf(err, errlen,
                 "%s is not a private directory of ours (%s, uid %u, mode %03o; want a directory of uid %u, "
                 "mode 0700): another local user may have planted it; remove it or set router.control-socket",
                 dir, S_ISDIR(st.st_mode) ? "directory" : "not a directory", (unsigned)st.st_uid,
                 (unsigned)(st.st_mode & 0777), (unsigned)geteuid());
        return -1;
    }
    return 0;
}
