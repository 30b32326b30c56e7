/*
 * controlplane/listen.h - what listen.c offers the rest of the control plane (public listening socket).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_LISTEN_H
#define FD_CP_LISTEN_H

#include "controlplane/cp.h"

/* Bind addr:port (addr "" = every interface), SO_REUSEADDR, listen(backlog 4096), close-on-exec.
 * Returns the fd, or -1 with "listen tcp <addr>:<port>: <call>: <reason>" in err and the failed
 * call's errno in errno. */
int cp_listen_open(const char *addr, unsigned port, char *err, size_t errlen);
/* True if fd is a listening TCP socket bound to `port`. */
bool cp_listen_is_ours(int fd, unsigned port);

#endif
