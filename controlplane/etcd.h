/*
 * controlplane/etcd.h - registry.backend: etcd. Several router hosts share one fleet: each
 * control plane writes the registrations it receives into etcd, watches the prefix and publishes
 * the union into its own shared memory (controlplane/etcd.c says how).
 *
 * With registry.backend: local (the default) cp->etcd is NULL and none of this runs: callers
 * test cp->etcd before calling in.
 */
#ifndef FD_CP_ETCD_H
#define FD_CP_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/instance_info.h"

typedef struct cp cp_t;
typedef struct cp_etcd cp_etcd_t;
struct json_object;

/* Parse registry.etcd-endpoints (comma-separated http://IP:port) and the prefix (pure).
 * Returns the number of endpoints (>= 1), or -1 with the reason in err. */
int cp_etcd_parse_endpoints(const char *list, struct sockaddr_storage *out, socklen_t *lens,
                            char (*names)[64], int max, char *err, size_t errlen);

/* registry.backend: etcd: allocate cp->etcd and start connecting (the CP serves from its own
 * table meanwhile). Returns 0, or -1 with the reason in err (bad endpoints). */
int cp_etcd_start(cp_t *cp, char *err, size_t errlen);
void cp_etcd_stop(cp_t *cp);

/* A registration this host received and accepted into its table: a /register (heartbeats
 * included) or a register.yaml item (is_static). Written to etcd if etcd does not hold it yet
 * (an unchanged registration is not a write), its lease kept alive otherwise. */
void cp_etcd_registered(cp_t *cp, const fd_instance_info_t *info, bool is_static);

typedef enum { CP_ETCD_DRAIN, CP_ETCD_UNDRAIN, CP_ETCD_REMOVE } cp_etcd_action_t;
/* An operator action applied here: applied on every host through etcd. */
void cp_etcd_action(cp_t *cp, cp_etcd_action_t act, const char *url);

/* {"backend":"etcd","endpoints":[...],"endpoint":..,"state":..,"revision":..,...} for /status. */
struct json_object *cp_etcd_status_json(const cp_t *cp);

#endif
