/*
 * common/names.h - names of a router's state, derived from its port unless set explicitly, so
 * two routers on one host never collide: shared memory "/fd-router-<port>", control socket
 * "/run/fd-router-<port>/control.sock" when that directory exists (the systemd unit creates it),
 * else "<runtime dir>/fd-router-<port>.sock" where the runtime directory is $XDG_RUNTIME_DIR,
 * else /run when writable, else the private directory /tmp/fd-router-<euid> (0700, ours: a
 * socket directly in /tmp could be squatted or replaced by any local user).
 */
#ifndef FD_COMMON_NAMES_H
#define FD_COMMON_NAMES_H

#include <stddef.h>

void fd_default_control_socket(char *out, size_t outlen, unsigned port);

/* "/tmp/fd-router-<euid>": the private runtime directory used when no other one is usable. */
void fd_private_tmp_dir(char *out, size_t outlen);

/* Before binding a socket at `sock_path`: when it lies in fd_private_tmp_dir(), create that
 * directory 0700 if missing and refuse one that is not a real directory owned by us with no
 * group/other bits. Other paths are the caller's choice and left alone. 0, or -1 with err. */
int fd_prepare_socket_dir(const char *sock_path, char *err, size_t errlen);

#endif
