/*
 * shm/types.h - the constants and enums of the shared-memory contract that other modules need
 * (sizes of what they copy out, roles, slot / health / data-plane states, status-code buckets),
 * without the layout itself. shm/layout.h includes it; code outside shm/ reaches the layout only
 * through shm/shm.h and its accessors.
 */
#ifndef FD_SHM_TYPES_H
#define FD_SHM_TYPES_H

#define SHM_MAX_INSTANCES  1024
#define SHM_MAX_DPS        8
#define SHM_MAX_LIST       16 /* rdma_ports / device_ids / transfer_protocol entries */
#define SHM_LIST_ITEM_LEN  16
#define SHM_URL_LEN        64 /* "http://" + IPv6 literal in brackets + ":65535" fits */
#define SHM_HOST_LEN       48
#define SHM_STATUS_BUCKETS 8 /* distinct upstream status codes counted per instance */
#define SHM_POLICY_LEN     32
/* Latency histograms per instance: bucket b holds latencies up to 2^(b/4) ms, i.e.
 * b = ceil(4 * log2(ms)) (0 for 1 ms or less); the last bucket takes everything longer. */
#define SHM_LAT_BUCKETS 80
#define SHM_ROUTES      2 /* latency histograms per route: 0 /v1/chat/completions, 1 /v1/completions */
#define SHM_OUTCOMES    8 /* request outcome counters in the header (at least dp_outcome_t's count) */
/* Models an instance serves (its GET /v1/models, polled by controlplane/models_poll.c) */
#define SHM_INSTANCE_MODELS 8   /* ids kept per instance; a longer list leaves its models unknown */
#define SHM_MODEL_ID_LEN    128 /* longest id kept, NUL included; a longer one leaves them unknown */
#define SHM_MODEL_OWNER_LEN 64  /* owned_by, NUL included */
#define SHM_MODELS_INDEX    64  /* distinct ids the header's model index holds */

/* Instance roles. The numbering is FastDeploy's (role may be registered as int 0/1/2). */
typedef enum {
    SHM_ROLE_MIXED = 0,
    SHM_ROLE_PREFILL = 1,
    SHM_ROLE_DECODE = 2,
    SHM_ROLE_COUNT = 3,
} shm_role_t;

/* Life of an instance slot. */
typedef enum {
    SHM_SLOT_FREE = 0,    /* unused; identity may be (re)written by the CP */
    SHM_SLOT_LIVE = 1,    /* registered; in its role's view iff health == HEALTHY && !drained */
    SHM_SLOT_RETIRED = 2, /* removed; waits for its in-flight counts to drain to 0 */
} shm_slot_state_t;

typedef enum {
    SHM_HEALTH_UNKNOWN = 0, /* registered from register.yaml, first probe not done yet */
    SHM_HEALTH_HEALTHY = 1,
    SHM_HEALTH_UNHEALTHY = 2,
} shm_health_t;

/* How cache_aware places a prefix no instance holds (shm_config_t.new_prefix_by_hash, resolved
 * from scheduler.new-prefix-placement; dataplane/policy/cache_aware.c gives the why). */
typedef enum {
    SHM_PLACE_BY_LOAD = 0,
    SHM_PLACE_BY_HASH = 1,
    SHM_PLACE_BY_HASH_WHEN_SHARED = 2, /* auto: by hash unless shm_fleet() is SHM_FLEET_ALONE */
} shm_placement_t;

/* Whether other senders share this router's instances (shm_fleet(), controlplane/sharing.h). */
typedef enum {
    SHM_FLEET_UNKNOWN = 0, /* no scrape has yet shown traffic */
    SHM_FLEET_ALONE = 1,   /* the instances report this router's requests and no others */
    SHM_FLEET_SHARED = 2,  /* they report requests this router did not send */
} shm_fleet_t;

/* Bit set of transfer protocols an instance lists. */
#define SHM_PROTO_IPC  1u
#define SHM_PROTO_RDMA 2u

/* Life of a data plane's row (shm_dp_row_t.state). */
enum { SHM_DP_FREE = 0, SHM_DP_STARTING = 1, SHM_DP_SERVING = 2, SHM_DP_DRAINING = 3 };

/* Status-code bucket codes that are not HTTP statuses (shm_status_bucket_t, shm_count_status):
 * a connect/transport failure, and "every other code" once the buckets are taken. */
#define SHM_STATUS_TRANSPORT 1u
#define SHM_STATUS_OTHER     599u

#endif
