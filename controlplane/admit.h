/*
 * controlplane/admit.h - what admit.c offers every source of registrations (/register,
 * register.yaml, etcd, the registry snapshot): this host's own rules on an instance's address.
 */
#ifndef FD_CP_ADMIT_H
#define FD_CP_ADMIT_H

#include <stddef.h>

#include "common/instance_info.h"

typedef struct cp cp_t;

/* The host_ip rules beyond the payload's validation (address classes, auth.instance-allow):
 * 0, or 400 with FastDeploy-style text in msg. */
int cp_admit_host(const cp_t *cp, const fd_instance_info_t *info, char *msg, size_t msglen);

#endif
