/*
 * controlplane/admit.c - which instance addresses this host routes to, whatever brought the
 * registration (/register, register.yaml, another host through etcd, the registry snapshot):
 * never an address of a class no instance has (fd_host_refusal), only addresses inside
 * auth.instance-allow when it is set. A module of its own so that etcd.c and snapshot.c apply
 * the rules without depending on the /register handler.
 */
#include <stdio.h>

#include "common/netacl.h"
#include "controlplane/admit.h"
#include "controlplane/cp.h"

/* The router probes and proxies to whatever is registered, so an address class no inference
 * server can have (or one outside auth.instance-allow) would turn it into a prober of the
 * operator's network. */
int cp_admit_host(const cp_t *cp, const fd_instance_info_t *info, char *msg, size_t msglen)
{
    const char *why = fd_host_refusal(info->host);
    if (why != NULL) {
        snprintf(msg, msglen, "invalid InstanceInfo format:host_ip %s is a %s address", info->host, why);
        return 400;
    }
    if (!fd_acl_allows(&cp->cfg.instance_allow, info->host)) {
        snprintf(msg, msglen, "invalid InstanceInfo format:host_ip %s is outside auth.instance-allow",
                 info->host);
        return 400;
    }
    return 0;
}
