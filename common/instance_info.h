/*
 * common/instance_info.h - the FastDeploy register payload: parsing and validation.
 *
 * One representation for both sources of registrations: the POST /register JSON body and the
 * items of register.yaml (converted to JSON objects first, so both go through the same rules).
 * Accepted forms and error messages are FastDeploy's (docs/fastdeploy.md 5): ports and list
 * items may be ints or numeric strings, unknown fields are ignored, role may be a
 * case-insensitive name or 0/1/2.
 */
#ifndef FD_COMMON_INSTANCE_INFO_H
#define FD_COMMON_INSTANCE_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/shm.h"

struct json_object;

typedef struct {
    shm_role_t role;
    char host[SHM_HOST_LEN]; /* IP literal, without scheme; IPv6 without brackets */
    uint16_t port;
    uint16_t metrics_port; /* defaults to port */
    uint16_t connector_port;
    uint16_t engine_worker_queue_port;
    int tp_size; /* registered tp_size, 0 if absent */
    uint8_t n_transfer_protocol;
    bool has_transfer_protocol;
    char transfer_protocol[SHM_MAX_LIST][SHM_LIST_ITEM_LEN];
    int n_rdma_ports; /* -1 = absent */
    char rdma_ports[SHM_MAX_LIST][SHM_LIST_ITEM_LEN];
    int n_device_ids; /* -1 = absent */
    char device_ids[SHM_MAX_LIST][SHM_LIST_ITEM_LEN];
    char url[SHM_URL_LEN]; /* "http://host:port" ([host] for IPv6) */
} fd_instance_info_t;

/*
 * Parse and validate a /register body. Returns the HTTP status to answer on failure (400) with
 * FastDeploy's message in `msg` (e.g. "Invalid InstanceInfo JSON format: ..." or
 * "invalid InstanceInfo format:invalid port: 70000"), or 0 on success. `splitwise` selects the
 * PD-only rules and the mode check ("splitwise mode only supports PREFILL/DECODE instances",
 * "only MIXED instances are allowed").
 */
int fd_instance_parse_body(const char *body, size_t len, bool splitwise, fd_instance_info_t *out, char *msg,
                           size_t msglen);

/* Same, from an already parsed JSON object (register.yaml items). */
int fd_instance_parse_object(struct json_object *obj, bool splitwise, fd_instance_info_t *out, char *msg,
                             size_t msglen);

/* Copy identity and FD metadata into a FREE shm slot (does not touch state/generation). */
void fd_instance_to_slot(const fd_instance_info_t *in, shm_instance_t *slot);
/* The inverse: what was registered, read back from a slot (its identity fields). */
void fd_instance_from_slot(const shm_instance_t *slot, fd_instance_info_t *out);
/* The registration as a /register payload (a new json-c object; the caller puts it): what
 * fd_instance_parse_object reads back to the same info (registry snapshots, etcd). */
struct json_object *fd_instance_to_json(const fd_instance_info_t *in);

const char *fd_role_name(shm_role_t r); /* "mixed" / "prefill" / "decode" */

#endif
