/*
 * common/names.h - names of a router's state, derived from its port unless set explicitly, so
 * two routers on one host never collide: shared memory "/fd-router-<port>", control socket
 * "/run/fd-router-<port>/control.sock" when that directory exists (the systemd unit creates it),
 * else "<runtime dir>/fd-router-<port>.sock" where the runtime directory is $XDG_RUNTIME_DIR,
 * else /run when writable, else /tmp.
 */
#ifndef FD_COMMON_NAMES_H
#define FD_COMMON_NAMES_H

#include <stddef.h>

void fd_default_control_socket(char *out, size_t outlen, unsigned port);

#endif
