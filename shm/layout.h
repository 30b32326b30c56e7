/*
 * shm/layout.h - the whole shared-memory layout of fd-router, in one place.
 *
 * One POSIX segment (/fd-router-<port> by default) is created by the control plane (CP) and
 * mapped by every data plane (DP) process and by fdctl. It is mapped at whatever address the
 * kernel picks, so every reference inside it is an OFFSET from the segment base (0 = none),
 * never a pointer. A process converts offsets with shm_ptr() (shm/shm.h).
 *
 * Layout (all sections at fixed offsets computed from the constants below):
 *
 *   +------------------------------+  0
 *   | shm_header_t                 |  magic, version, config, epoch, writer lock, views
 *   +------------------------------+  hdr.readers_off
 *   | shm_reader_t [SHM_MAX_READERS]  one cache line each: {pid, start time, active epoch}
 *   +------------------------------+  hdr.dps_off
 *   | shm_dp_row_t [SHM_MAX_DPS+1] |  per-DP-process load counters, one row per live DP, + totals
 *   +------------------------------+  hdr.instances_off
 *   | shm_instance_t [SHM_MAX_INSTANCES]  fixed instance slots with generations
 *   +------------------------------+  hdr.radix_off
 *   | shm_radix_hdr_t              |  prefix tree: seed, capacity, lists, counters
 *   +------------------------------+  hdr.radix_buckets_off
 *   | uint32_t [SHM_RADIX_BUCKETS] |  child index: heads of hash chains of nodes
 *   +------------------------------+  hdr.radix_nodes_off
 *   | shm_radix_node_t [SHM_RADIX_MAX_NODES + 2]  node arena (0 = none, 1 = root)
 *   +------------------------------+  hdr.arena_off
 *   | arena: SHM_ARENA_BLOCKS blocks of SHM_ARENA_BLOCK_SIZE bytes, each with a header
 *   +------------------------------+  hdr.size
 *
 * Concurrency rules (the "contract" every module relies on):
 *  - Writers (the CP; later DPs inserting into the prefix tree) hold hdr.wlock, a robust,
 *    process-shared mutex. Only writers allocate from or free to the arena.
 *  - What DPs select from is a "view" per role: an arena block holding the sorted list of
 *    selectable instance slots. A writer builds a new view in a fresh block and publishes it
 *    with ONE release store of its offset into hdr.view_off[role]; the old block goes to the
 *    limbo list tagged with the epoch of the publication and is reused only after a grace
 *    period (every live reader quiescent or past that epoch). Readers never lock.
 *  - Readers bracket their use of a view with shm_read_enter()/shm_read_exit() on their own
 *    reader slot (one per thread). Nothing read from shm may be kept across exit: copy what
 *    a request needs (slot, generation, host, port) into process memory.
 *  - Instance slot identity (url, host, port, role, FD metadata) is written only while the
 *    slot is FREE, before it appears in any view. A slot leaves every view, then becomes
 *    RETIRED; the CP frees it (generation + 1) only when no DP row counts it any more and a
 *    grace period has passed. Mutable fields (health, remote metrics, drain flag) are
 *    single-writer (CP) atomics or seqcount-protected.
 *  - Load counters: a DP increments and decrements only its own row with relaxed atomics, and
 *    by the same amounts the totals row (the extra row after the SHM_MAX_DPS DP rows, never
 *    claimed), which readers load: one load per slot whatever the number of DPs. A request remembers (slot,
 * generation) and decrements only if the generation still matches, so a counter can never wrap below zero.
 * When a DP dies the CP zeroes its row, taking each counter out of the totals as it clears it.
 *  - Outside shm/ nobody applies an atomic operation to segment memory: every access other
 *    modules make goes through an accessor of shm/shm.h that states its order once (slots:
 *    shm_slot_state_of / shm_slot_is_live / shm_slot_generation_of / shm_slot_same_generation /
 *    shm_slot_pinned / shm_slot_still / shm_slot_health(_set) / shm_slot_drained(_set) /
 *    shm_slot_role_set / shm_slot_publish_live / shm_slot_heartbeat / shm_slot_copy /
 *    shm_slot_fleet_health(_set); counters:
 *    shm_dp_inc / shm_dp_dec / shm_inflight / shm_tokens / shm_count_status / shm_status_load /
 *    shm_lat_add / shm_lat_bucket / shm_count_failure / shm_count_outcome; DP rows: shm_dp_row_*,
 *    shm_dp_count_request; header: shm_cp_pid / shm_cp_claim / shm_cp_release / shm_cp_heartbeat /
 *    shm_table_updated_ms / shm_header_info / shm_wlock_owner; the tree: shm/radix.h and
 *    shm/radix_walk.h). Release/acquire for a field whose store publishes others, relaxed for
 *    counters and stamps. tests/lint/shm_owner.sh fails the suite when an atomic appears elsewhere.
 *  - The prefix tree (shm/radix.h) follows the same rules with its own node arena: lookups are
 *    lock-free, every change is made under hdr.wlock, unlinked nodes wait in the tree's limbo
 *    list for a grace period. Its nodes are touched only as they are first used, so the
 *    segment's resident size grows with the tree, up to SHM_RADIX_MAX_NODES nodes.
 */
#ifndef FD_SHM_LAYOUT_H
#define FD_SHM_LAYOUT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm/types.h"

#define SHM_MAGIC          0x5254554f52444600ULL /* "\0FDROUTR" */
#define SHM_LAYOUT_VERSION 13u

#define SHM_CACHELINE   64
#define SHM_MAX_READERS 256

#define SHM_ARENA_BLOCK_SIZE 4096u
#define SHM_ARENA_BLOCKS     256u

/*
 * What the DP needs of the configuration, published by the CP at start (and again when a new
 * CP starts with another configuration). Guarded by hdr.config_seq (seqcount: odd while being
 * written); DPs copy it whole and retry if the sequence moved.
 */
typedef struct {
    uint32_t splitwise;
    uint32_t policy[SHM_ROLE_COUNT]; /* fd_policy_t (common/policies.h) for mixed, prefill, decode */
    double balance_abs_threshold;
    double balance_rel_threshold;
    double hit_ratio_weight;
    double load_balance_weight;
    double waiting_weight;
    uint64_t instance_cache_tokens; /* scheduler.instance-cache-tokens; 0 = unknown */
    uint32_t new_prefix_by_hash;    /* scheduler.new-prefix-placement resolved: shm_placement_t */
    uint32_t cache_block_size;
    uint32_t connect_timeout_ms;
    uint32_t first_byte_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t max_body_bytes;
    uint32_t retry_attempts;     /* instances tried per request before a connect error is final */
    uint32_t metrics_max_age_ms; /* older remote metrics fall back to local counters */
    uint32_t dp_threads;         /* 0 = one per core */
    char tokenizer_url[256];
    uint32_t tokenizer_timeout_ms;
    uint32_t request_header_timeout_ms; /* a client's request head must be complete within this */
    uint32_t request_body_timeout_ms;   /* longest pause between two reads of a request body */
    uint64_t max_buffered_body_bytes;   /* request bodies one DP holds at once; 503 beyond */
} shm_config_t;

/* A reader slot: one per DP thread (and per fdctl invocation). */
typedef struct {
    _Alignas(SHM_CACHELINE) uint64_t active_epoch; /* 0 = quiescent, else the epoch read at enter */
    int32_t pid;                                   /* 0 = slot free */
    uint32_t pad;
    uint64_t start_time; /* field 22 of /proc/pid/stat: detects pid reuse */
} shm_reader_t;

/* Load counters of one DP process: inflight[i] counts requests this DP has in flight to slot i.
 * Row SHM_MAX_DPS holds the totals over every DP row (its pid stays 0). */
typedef struct {
    _Alignas(SHM_CACHELINE) int32_t pid; /* 0 = row free */
    uint32_t state;                      /* SHM_DP_* (shm/types.h) */
    uint64_t start_time;
    uint64_t started_at_ms; /* wall clock */
    uint64_t requests_total;
    uint64_t version_hash; /* build id of the binary, for fdctl status */
    _Alignas(SHM_CACHELINE) uint64_t inflight[SHM_MAX_INSTANCES];
    uint64_t tokens[SHM_MAX_INSTANCES];
} shm_dp_row_t;

/* Last /metrics scrape of an instance (seqcount-protected: odd seq = being written). */
typedef struct {
    uint32_t seq;
    uint32_t valid;
    uint64_t at_ms; /* wall clock of the scrape */
    double running;
    double waiting;
    double free_blocks;
    uint64_t local_inflight; /* this router's requests in flight to it when the scrape was stored */
} shm_remote_metrics_t;

/*
 * Count of proxied requests per upstream status code. A bucket's code is the HTTP status, or
 * SHM_STATUS_TRANSPORT (shm/types.h) for a connect/transport failure (status 0 in shm_count_status: 0 itself
 * marks an unused bucket). When the first SHM_STATUS_BUCKETS - 1 buckets hold other codes, the
 * last bucket counts everything else under code SHM_STATUS_OTHER.
 */
typedef struct {
    uint32_t code; /* 0 = bucket unused */
    uint32_t pad;
    uint64_t count;
} shm_status_bucket_t;

/*
 * The models an instance serves, as its GET /v1/models listed them (seqcount-protected: odd seq =
 * being written; the CP is the only writer). known = 0 until a poll succeeded, and for an
 * instance without /v1/models: such an instance accepts every model name.
 */
typedef struct {
    uint32_t seq;
    uint32_t known;
    uint32_t count;
    uint32_t pad;
    uint64_t at_ms;                       /* wall clock of the poll that listed them */
    uint64_t hash[SHM_INSTANCE_MODELS];   /* shm_model_hash of each id: the request path compares these */
    int64_t created[SHM_INSTANCE_MODELS]; /* the instance's "created" (0 when it gave none) */
    char id[SHM_INSTANCE_MODELS][SHM_MODEL_ID_LEN];
    char owned_by[SHM_INSTANCE_MODELS][SHM_MODEL_OWNER_LEN];
} shm_models_t;

/*
 * The distinct model ids of every LIVE instance whose models are known, rebuilt by the CP after
 * each poll (seqcount). The data plane filters by model only when it holds two or more ids (a
 * fleet serving one model accepts any name, as FastDeploy does) and refuses with 404 a model
 * absent from it when no LIVE instance has unknown models.
 */
typedef struct {
    uint32_t seq;
    uint32_t count;    /* distinct ids in hash[] */
    uint32_t overflow; /* more distinct ids than SHM_MODELS_INDEX: absence proves nothing */
    uint32_t unknown;  /* LIVE instances whose models are not known */
    uint64_t hash[SHM_MODELS_INDEX];
} shm_models_index_t;

/* One instance slot. Identity fields are immutable while the slot is not FREE. */
typedef struct {
    _Alignas(SHM_CACHELINE) uint32_t generation; /* bumped each time the slot is freed */
    uint32_t state;                              /* shm_slot_state_t */
    uint32_t role;                               /* shm_role_t */
    uint32_t health;                             /* shm_health_t (CP writes, atomic) */
    uint32_t drained;                            /* operator drain: not selectable */
    uint32_t consecutive_ok;
    uint32_t consecutive_fail;
    uint32_t tp_size;
    /* In the first cache line with generation because cache_aware reads all three for every
     * candidate of every decision: one line per candidate, not three, at 1,024 instances. */
    uint64_t url_hash; /* XXH3-64 of url: the instance's weight in rendezvous placement */
    /* Prompt units (code points or tokens) this router sent the instance to prefill beyond what
     * it was predicted to hold in cache, added by DPs at each cache_aware decision: how much new
     * content has gone through its cache, the clock by which a prefix tag ages (shm/radix.h) and
     * the measure of cache_aware's content bound. Starts at the live instances' mean. */
    uint64_t cache_inflow;

    /* identity: "http://host:port" is the registry key */
    char url[SHM_URL_LEN];
    char host[SHM_HOST_LEN];
    uint16_t port;
    uint16_t metrics_port;
    uint16_t connector_port;           /* 0 = absent */
    uint16_t engine_worker_queue_port; /* 0 = absent */
    uint32_t transfer_protocols;       /* SHM_PROTO_* bits */
    uint8_t n_transfer_protocol;       /* listed order is kept for /registered */
    uint8_t n_rdma_ports;              /* 0xff = absent (null), else count */
    uint8_t n_device_ids;              /* 0xff = absent (null), else count */
    uint8_t has_transfer_protocol;
    char transfer_protocol[SHM_MAX_LIST][SHM_LIST_ITEM_LEN];
    char rdma_ports[SHM_MAX_LIST][SHM_LIST_ITEM_LEN];
    char device_ids[SHM_MAX_LIST][SHM_LIST_ITEM_LEN];

    uint64_t registered_at_ms;
    uint64_t last_register_ms; /* last /register heartbeat */
    uint64_t last_check_ms;    /* last health probe */
    uint64_t unhealthy_since_ms;
    uint64_t retired_at_ms;
    uint64_t gone_epoch;            /* RETIRED: epoch of the first publication without it (0 = not yet) */
    char last_error[96];            /* last failed probe's reason, for fdctl health */
    uint64_t protocol_errors_total; /* answers that broke HTTP/1.1 (DPs add; never reset) */

    shm_remote_metrics_t metrics;
    shm_status_bucket_t status[SHM_STATUS_BUCKETS];
    uint64_t failures_total; /* upstream attempts that failed before a head */

    /* latencies of requests proxied to this instance, by route, added by DPs (dataplane/stats.c) */
    uint64_t ttfb_hist[SHM_ROUTES][SHM_LAT_BUCKETS];  /* request received -> upstream head */
    uint64_t total_hist[SHM_ROUTES][SHM_LAT_BUCKETS]; /* request received -> answer relayed to its end */
    uint64_t ttfb_sum_ms[SHM_ROUTES];
    uint64_t total_sum_ms[SHM_ROUTES];

    shm_models_t models; /* CP writes (models_poll.c), DPs read (shm_models_accepts) */
    /* registry.backend: etcd: how the fleet's hosts judge the instance (shm_slot_fleet_health);
     * 0 = no fleet view. In the slot's tail padding (zero before): layout version unchanged. */
    uint64_t fleet_health;
} shm_instance_t;

/* A published view: the selectable slots of one role, sorted by URL (the Go router's order). */
typedef struct {
    uint32_t count;
    uint32_t pad;
    uint64_t version;
    uint16_t slot[]; /* count entries */
} shm_view_t;

/* Arena blocks: fixed size, each preceded by this header (inside the block). */
typedef struct {
    uint32_t state; /* SHM_BLK_* */
    uint32_t pad;
    uint64_t next_off;     /* free list or limbo list link */
    uint64_t retire_epoch; /* epoch of the publication that retired it (limbo only) */
    uint64_t pad2;
} shm_block_hdr_t;

enum { SHM_BLK_FREE = 0, SHM_BLK_USED = 1, SHM_BLK_LIMBO = 2 };

#define SHM_VIEW_MAX_SLOTS ((SHM_ARENA_BLOCK_SIZE - sizeof(shm_block_hdr_t) - sizeof(shm_view_t)) / 2)

/*
 * The prefix radix tree of cache_aware (shm/radix.h has the algorithms and their contract).
 *
 * A node is a fixed 256-byte record in the node arena; nodes refer to each other by index into
 * that arena (0 = none, 1 = the permanent root). Each node holds a compressed edge of up to
 * SHM_RADIX_EDGE_MAX block hashes inline: an edge longer than that is a chain of nodes, each
 * but the last with one child. The edge is key[start .. start + len) with (start, len) packed
 * in `span`, so a split shortens a node's edge with one atomic store and never rewrites keys.
 * Children are linked first-child / next-sibling (for walks), and every non-root node is also
 * on one hash chain, keyed by (parent, first hash of its edge), which is what lookups use: a
 * root with thousands of children costs one chain of about one node, not a scan.
 */
#define SHM_RADIX_MAX_NODES 262144u /* compile-time maximum capacity, root excluded */
#define SHM_RADIX_BUCKETS   524288u /* power of two, 2 per node */
#define SHM_RADIX_EDGE_MAX  10      /* block hashes inline per node (fills 256 bytes) */
#define SHM_RADIX_TAGS      8       /* instances remembered per node */
#define SHM_RADIX_SESSIONS  65536u  /* last choice per session_id, for the stickiness rate */
#define SHM_RADIX_NIL       0u
#define SHM_RADIX_ROOT      1u

/* Recent prompts remembered by radix_share, and the head lengths they are remembered by: 1, 2,
 * 4 ... 512 blocks. */
#define SHM_RADIX_RECENT        64u
#define SHM_RADIX_RECENT_LEVELS 10u

/* An instance that was chosen for a prefix: (slot, generation) in one atomic word, so a reader
 * never sees a torn identity; a re-used slot has another generation and does not match. */
#define SHM_RADIX_TAG_VALID (1ULL << 63)
typedef struct {
    uint64_t ident; /* 0 = empty, else VALID | generation << 16 | slot */
    uint32_t
        last_ds; /* when it was last chosen for this prefix: 0.1 s since the tree's creation (writers only) */
    uint32_t stamp; /* the instance's cache_inflow / RADIX_STAMP_UNIT then (atomic: lookups read it) */
} shm_radix_tag_t;

enum { SHM_RADIX_FREE = 0, SHM_RADIX_USED = 1, SHM_RADIX_LIMBO = 2 };

typedef struct {
    /* read by lock-free readers (atomic loads) */
    uint32_t parent;
    uint32_t first_child;
    uint32_t next_sibling;
    uint32_t hnext; /* next node on the same hash chain */
    uint32_t depth; /* blocks from the root to the end of this node's edge; never changes */
    uint32_t span;  /* (first key index << 8) | key count */
    uint64_t last_ms;
    uint64_t key[SHM_RADIX_EDGE_MAX];
    shm_radix_tag_t tag[SHM_RADIX_TAGS];
    /* writers only */
    uint16_t state; /* SHM_RADIX_FREE / USED / LIMBO */
    uint16_t mark;  /* scratch of the recovery walk */
    uint32_t link;  /* free list or limbo list */
    uint64_t retire_epoch;
} shm_radix_node_t;

typedef struct {
    uint64_t bucket_key; /* random at creation: mixed into every hash-chain bucket index */
    uint64_t created_at_ms;
    uint32_t max_nodes; /* SHM_RADIX_MAX_NODES when formatted */
    uint32_t capacity;  /* nodes allowed (reachable + limbo), root excluded */
    uint32_t nodes;     /* reachable nodes, root excluded */
    uint32_t limbo;     /* unlinked nodes waiting for their grace period */
    uint32_t free_head; /* freed nodes */
    uint32_t limbo_head;
    uint32_t high_water;         /* nodes at or above it were never used (zero) */
    uint32_t dirty;              /* a writer is mid-change: whoever finds it set repairs the tree */
    uint64_t evictions_ttl;      /* nodes unlinked because their last access passed the TTL */
    uint64_t evictions_pressure; /* nodes unlinked to make room (least recently used first) */
    uint64_t inserts;            /* records of a choice on a prompt's path */
    uint64_t inserts_truncated;  /* records that stopped early: no node could be had */
    uint64_t recoveries;         /* repairs after a writer died mid-change */
    /* decisions of cache_aware, counted by the DPs with atomic adds */
    _Alignas(SHM_CACHELINE) uint64_t decided_by_cache;
    uint64_t fallback_imbalance;
    uint64_t fallback_no_prompt;
    uint64_t lookups_hit; /* decisions whose prompt matched at least one block */
    uint32_t reuse;       /* radix_reuse() in units of 1/RADIX_REUSE_ONE (radix.c) */
    uint32_t moves;       /* prefixes cache_aware may still re-home (radix_moves_grant/take) */
    /* The heads of the last SHM_RADIX_RECENT prompts decided, for radix_share: recent_at counts
     * the prompts noted (the next entry is recent_at % SHM_RADIX_RECENT), and recent[k][i] is a
     * 32-bit fingerprint of entry i's hash through its first 2^k blocks (0: shorter than that).
     * One row per head length, so a lookup reads one row of SHM_RADIX_RECENT words. */
    _Alignas(SHM_CACHELINE) uint64_t recent_at;
    uint32_t recent[SHM_RADIX_RECENT_LEVELS][SHM_RADIX_RECENT];
    /* Session stickiness (the Go router's "cache hit rate"): of the cache-scored decisions that
     * carried a session_id, how many chose the same instance as that session's previous one.
     * The last choice of each session is kept in a fixed table (SHM_RADIX_SESSIONS entries,
     * overwritten on collision: memory stays bounded, unlike the Go router's map), one atomic
     * word per entry: session hash (high 40 bits) | slot (10 bits) | generation (low 14 bits). */
    _Alignas(SHM_CACHELINE) uint64_t session_requests;
    uint64_t session_hits;
    uint64_t sessions[SHM_RADIX_SESSIONS];
} shm_radix_hdr_t;

typedef struct {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t header_size;
    uint64_t size; /* whole segment */
    uint64_t readers_off, dps_off, instances_off, arena_off;
    uint64_t radix_off, radix_buckets_off, radix_nodes_off; /* prefix tree sections */
    uint64_t created_at_ms;
    char name[64]; /* the segment's own name */

    /* the control plane that owns the segment now */
    int32_t cp_pid;
    uint32_t listen_port;
    uint64_t cp_start_time;
    uint64_t cp_started_at_ms;
    uint64_t cp_heartbeat_ms; /* refreshed every CP timer tick: fail-static age */
    uint64_t table_updated_ms;

    uint32_t config_seq;
    /* shm_fleet_t: whether the instances report requests from senders other than this router
     * (controlplane/sharing.c). It was padding (zero, SHM_FLEET_UNKNOWN) before, so the layout
     * version did not change. */
    uint32_t fleet;
    shm_config_t config;

    /* RCU state */
    _Alignas(SHM_CACHELINE) uint64_t gp_epoch; /* starts at 1; bumped by each publication */
    uint64_t view_off[SHM_ROLE_COUNT];         /* published views (arena offsets) */
    uint64_t view_version;
    uint64_t limbo_head;      /* retired blocks, newest first */
    uint64_t free_head;       /* free arena blocks */
    uint64_t arena_blocks;    /* number of blocks */
    uint64_t arena_used;      /* blocks USED or LIMBO */
    uint64_t wlock_recovered; /* times a dead writer's lock was recovered */

    _Alignas(SHM_CACHELINE) pthread_mutex_t wlock;
    /* pid holding wlock, 0 = free (shm_wlock_owner). In the lock's cache line, which taking the
     * lock writes anyway; it was padding (zero) before, so the layout version did not change. */
    int32_t wlock_owner;

    /* shared round-robin cursors, one per role */
    _Alignas(SHM_CACHELINE) uint64_t rr_cursor[SHM_ROLE_COUNT];

    /* Inference requests by outcome (the data plane's dp_outcome_t), counted by every data plane
     * of every run on this segment with atomic adds: monotonic across upgrades and DP crashes. */
    _Alignas(SHM_CACHELINE) uint64_t outcomes_total[SHM_OUTCOMES];

    /* every model the LIVE instances serve (CP writes, DPs read) */
    _Alignas(SHM_CACHELINE) shm_models_index_t models;
} shm_header_t;

#endif
