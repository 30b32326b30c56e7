/*
 * common/version.h - the fd-router release every binary reports (--version, fd_router_build_info).
 */
#ifndef FD_COMMON_VERSION_H
#define FD_COMMON_VERSION_H

#ifndef FD_ROUTER_VERSION
#define FD_ROUTER_VERSION "0.1.0"
#endif

#endif
