/*
 * controlplane/registry.h - what registry.c offers the rest of the control plane (registry).
 * Everything runs on the control plane's loop (controlplane/cp.h).
 */
#ifndef FD_CP_REGISTRY_H
#define FD_CP_REGISTRY_H

#include "controlplane/cp.h"

/* Same registry identity and FD metadata (what /registered shows). */
bool cp_slot_same_identity(const shm_instance_t *a, const shm_instance_t *b);
bool cp_info_matches_slot(const fd_instance_info_t *info, const shm_instance_t *slot);

/* If a LIVE, HEALTHY slot with the same identity exists, stamp last_register_ms and return it. */
int cp_registry_heartbeat(cp_t *cp, const fd_instance_info_t *info);

typedef enum {
    CP_UPSERT_REFRESHED, /* same URL and metadata: marked `health` */
    CP_UPSERT_INSERTED,  /* new slot */
    CP_UPSERT_UPDATED,   /* same URL, new metadata: the slot rewritten in place */
    CP_UPSERT_KEPT,      /* keep_existing and the same instance was already there */
} cp_upsert_kind_t;

/*
 * Under the writer lock: insert or refresh `info` with `health` and republish the views. A known
 * URL keeps its slot (new metadata is written in place), so only a new URL can find the table
 * full. With keep_existing (register.yaml), an identical LIVE slot is left exactly as it is.
 * Returns the slot or -1 with a reason (table full, lock unrecoverable).
 */
int cp_registry_upsert(cp_t *cp, const fd_instance_info_t *info, shm_health_t health, bool keep_existing,
                       cp_upsert_kind_t *kind, char *err, size_t errlen);
/* Set health under the writer lock and republish when selectability changes. */
void cp_registry_set_health(cp_t *cp, unsigned slot, shm_health_t health, uint64_t now_ms);
void cp_registry_retire(cp_t *cp, unsigned slot);
/* Operator drain flag: a drained instance leaves the views (its in-flight requests finish). */
int cp_registry_set_drained(cp_t *cp, unsigned slot, bool drained);
/* Periodic housekeeping: free drained retired slots, reclaim arena blocks. */
void cp_registry_maintain(cp_t *cp);
unsigned cp_registry_live_count(const cp_t *cp);

void cp_static_add(cp_t *cp, const char *url);
bool cp_static_has(const cp_t *cp, const char *url);
void cp_static_remove(cp_t *cp, const char *url);

#endif
