/*
 * common/names.c - default names of a router's state (common/names.h). The shared-memory name
 * is shm_default_name() in shm/; this file derives the control socket's path, which the CP,
 * fdctl and the launcher must all compute the same way from the port alone.
 */
#include "common/names.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *runtime_dir(void)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && xdg[0] == '/')
        return xdg;
    if (access("/run", W_OK | X_OK) == 0)
        return "/run";
    return "/tmp";
}

void fd_default_control_socket(char *out, size_t outlen, unsigned port)
{
    if (outlen == 0)
        return;
    /* the systemd unit's RuntimeDirectory= (the service runs unprivileged and cannot write /run) */
    char unit_dir[64];
    snprintf(unit_dir, sizeof(unit_dir), "/run/fd-router-%u", port);
    if (access(unit_dir, X_OK) == 0)
        snprintf(out, outlen, "%s/control.sock", unit_dir);
    else
        snprintf(out, outlen, "%s/fd-router-%u.sock", runtime_dir(), port);
}
