/*
 * controlplane/etcd.c - registry.backend: etcd: the fleet's registry shared by several router
 * hosts through etcd's v3 HTTP/JSON gateway (keys and values base64), on the CP's loop with our
 * own client (common/uclient.h). No consensus of our own: etcd's revision orders every change.
 *
 * Keys under registry.etcd-prefix P:
 *   P/i/<url>  the instance's registration (canonical JSON, as /register takes it), under a
 *              lease of its own (registry.etcd-lease-secs). Whichever host receives the
 *              instance's heartbeats keeps that lease alive (its id comes with the key), so an
 *              instance that stops heartbeating anywhere disappears everywhere when it ends.
 *   P/d/<url>  present = drained by an operator (no lease: operator state outlives instances)
 *   P/h/<host>/<url>  host <host>'s own health verdict on the instance, "healthy" or "unhealthy",
 *              under that host's lease (the section "health verdicts" says when it is written)
 *
 * Every host: writes what it receives (a put only when etcd's value differs: a heartbeat of an
 * unchanged registration is a lease keep-alive, not a write), watches P/ and applies each event
 * to its own table (a new instance is inserted HEALTHY - the host that wrote it probed it; from
 * then on this host's own health checks decide what it routes to). `remove` deletes P/i/<url>.
 *
 * Fail-static: any failed call drops the connection: the watch is cancelled, the table stays
 * as it is (the DP routes on it), /register keeps working locally, and what this host wants
 * in etcd stays in `ents`. Every retry period it syncs again: a range of P/ at revision R is
 * applied both ways (missing keys written, instances etcd no longer has retired, unless this
 * host still receives their heartbeats) and the watch resumes at R + 1. A watch that falls
 * behind compaction is cancelled by etcd and resynced the same way. A restarted host's first
 * sync retires what its reused segment holds and etcd does not (their heartbeats bring the
 * live ones back at once).
 */
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/uclient.h"
#include "controlplane/admit.h"
#include "controlplane/cp.h"
#include "controlplane/registry.h"
#include "controlplane/etcd.h"

#define ETCD_MAX_ENDPOINTS 8
#define ETCD_MAX_BODY      (16u << 20)             /* a range of every key, or one watch message */
#define ETCD_MAX_ENTS      (2 * SHM_MAX_INSTANCES) /* instance keys and drain keys of gone ones */
#define ETCD_MAX_CALLS     4096                    /* calls in flight; more wait for the next sync */
#define ETCD_READD_MS      10000 /* how often instances this host dropped are offered again */
#define ETCD_KEY_LEN       (256 + 2 + SHM_URL_LEN) /* prefix "/", kind "/", url */
#define ETCD_HOST_LEN      80                      /* a host's identity: hostname ":" port */
#define ETCD_MAX_HOSTS     64 /* other hosts whose verdicts are counted (bits of a mask) */
#define ETCD_TXN_OPS       64 /* verdict writes per txn (etcd's --max-txn-ops is 128 by default) */

typedef enum { ST_DOWN, ST_SYNCING, ST_UP } etcd_state_t;
static const char *const state_names[] = {"down", "syncing", "up"};

typedef enum {
    OP_RANGE,
    OP_WATCH,
    OP_GRANT,
    OP_PUT,
    OP_KEEPALIVE,
    OP_DELETE,
    OP_DRAIN_PUT,
    OP_PING,
    OP_HOST_GRANT,     /* this host's own lease, which its verdicts live under */
    OP_HOST_KEEPALIVE, /* ... kept alive every quarter lease while the CP runs */
    OP_VERDICTS        /* a txn of verdict puts and deletes */
} etcd_op_t;

/* What this host knows of one URL in etcd and wants there. */
typedef struct {
    char url[SHM_URL_LEN];
    bool used;
    /* etcd, as last seen */
    bool in_etcd;
    char *val;     /* P/i/<url>'s value (malloc), NULL when absent */
    int64_t lease; /* its lease */
    bool drained;  /* P/d/<url> exists */
    bool seen;     /* sync bookkeeping */
    bool fresh;    /* val is news (new or changed): the host that wrote it has just probed it */
    /* this host */
    char *want;             /* the registration this host received (malloc), NULL if none */
    bool is_static;         /* register.yaml: kept alive as long as this host runs */
    uint64_t last_local_ms; /* last registration received here (mono) */
    unsigned local_count;   /* registrations received here */
    bool written;           /* etcd has held `want` (else it waits for etcd: never given up) */
    uint64_t last_keepalive_ms;
    bool busy;        /* a grant, put or keep-alive in flight for P/i/<url> */
    int drain_want;   /* -1 nothing pending, else the drain state to write */
    bool remove_want; /* delete P/i/<url> at the next chance */
    bool drain_busy;  /* a drain put/delete in flight */
    /* health verdicts, P/h/<host>/<url>: -1 none, 0 unhealthy, 1 healthy */
    int8_t verdict;        /* this host's own (what it routes by) */
    int8_t verdict_etcd;   /* what etcd holds under this host's identity */
    int8_t verdict_sent;   /* in the txn in flight */
    bool verdict_busy;     /* ... which holds this one */
    int64_t verdict_lease; /* the lease of that key (another run's: written again) */
    int64_t verdict_rev;   /* etcd's revision at our last write of it: older events are stale */
    uint64_t hosts_healthy, hosts_unhealthy; /* the other hosts' verdicts: bits of e->hosts */
} ent_t;

typedef struct etcd_call {
    h2o_linklist_t link;
    cp_etcd_t *e;
    etcd_op_t op;
    char url[SHM_URL_LEN];
    int64_t lease;
    uc_client_t *client;
    h2o_timeout_entry_t deadline;
    h2o_iovec_t req;
    char *body;
    size_t len, cap;
    int status;
} etcd_call_t;

struct cp_etcd {
    cp_t *cp;
    struct sockaddr_storage addr[ETCD_MAX_ENDPOINTS];
    socklen_t addrlen[ETCD_MAX_ENDPOINTS];
    char names[ETCD_MAX_ENDPOINTS][64];
    int n_endpoints, cur;
    char prefix[256]; /* P/ */
    size_t prefix_len;
    unsigned lease_secs;
    uint64_t timeout_ms, retry_ms;

    etcd_state_t state;
    int64_t revision;
    uint64_t state_since_ms; /* wall clock */
    uint64_t next_sync_mono;
    uint64_t last_ok_mono; /* last answer from etcd: a quiet host pings to notice a silent etcd */
    uint64_t last_readd_mono;
    bool ping_busy;
    bool synced_once;
    char last_error[160];
    uint64_t puts, deletes, keepalives, grants, syncs;

    h2o_timeout_t timeout;
    h2o_linklist_t calls;
    unsigned ncalls;
    etcd_call_t *watch;
    etcd_call_t *dispatching; /* the call whose callback runs: uclient frees its client itself */
    bool dispatching_freed;   /* ... and it was ended meanwhile */
    cp_timer_t timer;

    /* health verdicts (the section "health verdicts" below) */
    char host_id[ETCD_HOST_LEN];
    int64_t host_lease;
    bool host_lease_busy, host_lease_checked; /* checked: alive since the last sync */
    uint64_t host_keepalive_ms;
    bool verdicts_busy; /* a txn in flight */
    uint64_t verdict_writes, verdict_txns;
    struct {
        char id[ETCD_HOST_LEN];
        unsigned refs; /* verdict bits set for it; 0 = the row is free */
    } hosts[ETCD_MAX_HOSTS];
    struct {
        int ent; /* index into ents of the slot's instance, -1 none */
        uint32_t generation;
    } slot_ent[SHM_MAX_INSTANCES];

    ent_t ents[ETCD_MAX_ENTS];
};

static void call_start(cp_etcd_t *e, etcd_op_t op, const char *url, int64_t lease, const char *path,
                       struct json_object *body);
static void sync_ent(cp_etcd_t *e, ent_t *en);
static void put_registration(cp_etcd_t *e, ent_t *en, int64_t lease);
static void on_verdict_key(cp_etcd_t *e, const char *rest, const char *val, int64_t lease, int64_t mod_rev,
                           bool from_watch);
static void verdicts_scan(cp_etcd_t *e);
static void verdicts_flush(cp_etcd_t *e);
static void verdicts_done(cp_etcd_t *e, const etcd_call_t *c, struct json_object *res);
static void host_lease_done(cp_etcd_t *e, etcd_op_t op, struct json_object *res);
static void host_lease_call(cp_etcd_t *e, etcd_op_t op);

/* ---- small helpers ---- */

static void set_state(cp_etcd_t *e, etcd_state_t s)
{
    if (e->state != s) {
        e->state = s;
        e->state_since_ms = shm_now_ms();
    }
}

static struct json_object *b64(const char *s, size_t n)
{
    char *out = h2o_mem_alloc(h2o_base64_encode_capacity(n));
    size_t len = h2o_base64_encode(out, s, n, 0);
    struct json_object *o = json_object_new_string_len(out, (int)len);
    free(out);
    return o;
}

/* Standard base64 to a NUL-terminated malloc'd string; NULL if it is not base64. */
static char *unb64(const char *s, size_t *outlen)
{
    size_t n = strlen(s);
    if (n % 4 != 0)
        return NULL;
    char *out = h2o_mem_alloc(n / 4 * 3 + 1);
    int len = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n) : 0;
    if (len < 0) {
        free(out);
        return NULL;
    }
    for (size_t i = n; i > 0 && s[i - 1] == '='; i--)
        len--;
    out[len] = '\0';
    *outlen = (size_t)len;
    return out;
}

static const char *member_str(struct json_object *o, const char *k)
{
    struct json_object *v;
    return json_object_object_get_ex(o, k, &v) && v != NULL ? json_object_get_string(v) : NULL;
}

static int64_t member_i64(struct json_object *o, const char *k)
{
    struct json_object *v;
    return json_object_object_get_ex(o, k, &v) && v != NULL ? json_object_get_int64(v) : 0;
}

static bool member_true(struct json_object *o, const char *k)
{
    struct json_object *v;
    return json_object_object_get_ex(o, k, &v) && v != NULL && json_object_get_boolean(v);
}

static void note_revision(cp_etcd_t *e, struct json_object *res)
{
    struct json_object *h;
    if (json_object_object_get_ex(res, "header", &h)) {
        int64_t r = member_i64(h, "revision");
        if (r > e->revision)
            e->revision = r;
    }
}

static ent_t *ent_find(cp_etcd_t *e, const char *url, bool create)
{
    ent_t *free_ent = NULL;
    for (unsigned i = 0; i < ETCD_MAX_ENTS; i++) {
        ent_t *en = &e->ents[i];
        if (en->used && strncmp(en->url, url, SHM_URL_LEN) == 0)
            return en;
        if (!en->used && free_ent == NULL)
            free_ent = en;
    }
    if (!create || free_ent == NULL)
        return NULL;
    memset(free_ent, 0, sizeof(*free_ent));
    free_ent->used = true;
    free_ent->drain_want = -1;
    free_ent->verdict = free_ent->verdict_etcd = free_ent->verdict_sent = -1;
    snprintf(free_ent->url, sizeof free_ent->url, "%s", url);
    return free_ent;
}

/* Still registering itself here (register.yaml, or heartbeats: registered again within half a
 * lease): its key is written again when etcd drops it (a lease that ran out while etcd was
 * away, a remove through another host - its next heartbeat would bring it back, as on one
 * host). An instance that registered once is not heartbeating: a remove anywhere stands. */
static bool ours(const cp_etcd_t *e, const ent_t *en, uint64_t now)
{
    return en->want != NULL && (en->is_static || (en->local_count > 1 &&
                                                  now - en->last_local_ms < (uint64_t)e->lease_secs * 500));
}

static void key_of(const cp_etcd_t *e, char kind, const char *url, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s%c/%s", e->prefix, kind, url);
}

/* ---- the registration as JSON (what /register accepts, so every host parses it alike) ---- */

static char *info_json(const fd_instance_info_t *in)
{
    struct json_object *o = fd_instance_to_json(in);
    char *s =
        strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    if (s == NULL)
        h2o_fatal("no memory");
    return s;
}

/* ---- applying etcd's state to this host's table ---- */

static void apply_drain(cp_etcd_t *e, ent_t *en)
{
    int s = shm_slot_find(&e->cp->seg, en->url);
    if (s < 0)
        return;
    const shm_instance_t *in = shm_instance(&e->cp->seg, (unsigned)s);
    if (shm_slot_drained(in) != en->drained) {
        cp_registry_set_drained(e->cp, (unsigned)s, en->drained);
        LOG_INFO("Instance %s %s (fleet operator state in etcd)", en->url,
                 en->drained ? "drained" : "undrained");
    }
}

static void apply_put(cp_etcd_t *e, ent_t *en)
{
    cp_t *cp = e->cp;
    fd_instance_info_t info;
    char msg[256];
    msg[0] = '\0';
    /* another host may run another configuration: this host's own rules decide what it routes to */
    if (fd_instance_parse_body(en->val, strlen(en->val), cp->splitwise, &info, msg, sizeof msg) != 0 ||
        cp_admit_host(cp, &info, msg, sizeof msg) != 0 || strncmp(info.url, en->url, SHM_URL_LEN) != 0) {
        LOG_RATELIMITED(FD_LOG_WARN, "etcd: ignoring the registration of %s: %s", en->url,
                        msg[0] ? msg : "URL does not match its key");
        return;
    }
    int s = shm_slot_find(&cp->seg, en->url);
    /* A new slot for news is healthy (its writer probed it just now); one this host had dropped
     * itself (its own checks failed for too long) comes back unknown: selectable again once this
     * host's own probes succeed. An existing slot keeps this host's view of its health. */
    bool fresh = en->fresh;
    en->fresh = false;
    if (s < 0 || !cp_info_matches_slot(&info, shm_instance(&cp->seg, (unsigned)s))) {
        shm_health_t h = s >= 0  ? (shm_health_t)shm_slot_health(shm_instance(&cp->seg, (unsigned)s))
                         : fresh ? SHM_HEALTH_HEALTHY
                                 : SHM_HEALTH_UNKNOWN;
        cp_upsert_kind_t kind;
        if (cp_registry_upsert(cp, &info, h, false, &kind, msg, sizeof msg) < 0) {
            LOG_RATELIMITED(FD_LOG_ERROR, "etcd: cannot add %s: %s", en->url, msg);
            return;
        }
        if (kind == CP_UPSERT_INSERTED)
            LOG_INFO("Registered %s instance from the fleet (etcd): %s", fd_role_name(info.role), en->url);
    }
    apply_drain(e, en);
}

static void apply_gone(cp_etcd_t *e, ent_t *en)
{
    if (en->want != NULL && (!en->written || ours(e, en, fd_mono_ms()))) {
        sync_ent(e, en); /* registered here meanwhile, or still heartbeating here: written (again) */
        return;
    }
    free(en->want); /* gone from the fleet, and from here */
    en->want = NULL;
    en->verdict = -1; /* and this host's verdict on it */
    int s = shm_slot_find(&e->cp->seg, en->url);
    if (s >= 0) {
        cp_registry_retire(e->cp, (unsigned)s);
        LOG_INFO("Instance %s removed: gone from the fleet (etcd)", en->url);
    }
}

/* A key of ours changed: kind 'i', 'd' or 'h'; val NULL for a delete. */
static void on_key(cp_etcd_t *e, const char *key, size_t keylen, const char *val, int64_t lease,
                   int64_t mod_rev, bool apply)
{
    if (keylen < e->prefix_len + 3 || memcmp(key, e->prefix, e->prefix_len) != 0 ||
        key[e->prefix_len + 1] != '/')
        return;
    char kind = key[e->prefix_len];
    const char *url = key + e->prefix_len + 2;
    if (kind == 'h') { /* P/h/<host>/<url>: a host's health verdict */
        on_verdict_key(e, url, val, lease, mod_rev, apply);
        return;
    }
    if ((kind != 'i' && kind != 'd') || strlen(url) >= SHM_URL_LEN)
        return;
    ent_t *en = ent_find(e, url, val != NULL);
    if (en == NULL)
        return;
    en->seen = true;
    if (kind == 'd') {
        en->drained = val != NULL;
        if (en->drain_want == (int)en->drained)
            en->drain_want = -1;
        if (apply)
            apply_drain(e, en);
        return;
    }
    en->fresh = val != NULL && (en->val == NULL || strcmp(en->val, val) != 0);
    free(en->val);
    en->val = val ? strdup(val) : NULL;
    en->in_etcd = val != NULL;
    en->lease = val ? lease : 0;
    if (val != NULL && en->want != NULL && strcmp(val, en->want) == 0)
        en->written = true;
    if (!apply)
        return;
    if (val != NULL && !en->remove_want)
        apply_put(e, en);
    else if (val == NULL)
        apply_gone(e, en);
}

/* ---- what this host wants in etcd ---- */

static void sync_ent(cp_etcd_t *e, ent_t *en)
{
    if (e->state != ST_UP)
        return;
    char key[ETCD_KEY_LEN];
    uint64_t now = fd_mono_ms();
    if (en->remove_want && !en->busy) {
        en->remove_want = false;
        if (en->in_etcd) {
            key_of(e, 'i', en->url, key, sizeof key);
            struct json_object *b = json_object_new_object();
            json_object_object_add(b, "key", b64(key, strlen(key)));
            call_start(e, OP_DELETE, en->url, 0, "/v3/kv/deleterange", b);
        }
    }
    if (en->drain_want >= 0 && !en->drain_busy) {
        if (en->drain_want == (int)en->drained) {
            en->drain_want = -1;
        } else {
            key_of(e, 'd', en->url, key, sizeof key);
            struct json_object *b = json_object_new_object();
            json_object_object_add(b, "key", b64(key, strlen(key)));
            en->drain_busy = true;
            if (en->drain_want) {
                json_object_object_add(b, "value", b64("1", 1));
                call_start(e, OP_DRAIN_PUT, en->url, 0, "/v3/kv/put", b);
            } else {
                call_start(e, OP_DRAIN_PUT, en->url, 0, "/v3/kv/deleterange", b);
            }
        }
    }
    if (en->busy || en->want == NULL)
        return;
    if (!en->in_etcd || en->lease == 0) {
        struct json_object *b = json_object_new_object();
        json_object_object_add(b, "TTL", json_object_new_int64(e->lease_secs));
        en->busy = true;
        call_start(e, OP_GRANT, en->url, 0, "/v3/lease/grant", b);
    } else if (strcmp(en->val, en->want) != 0) {
        en->busy = true;
        put_registration(e, en, en->lease);
    } else if (now - en->last_keepalive_ms >= (uint64_t)e->lease_secs * 250) {
        struct json_object *b = json_object_new_object();
        json_object_object_add(b, "ID", json_object_new_int64(en->lease));
        en->busy = true;
        call_start(e, OP_KEEPALIVE, en->url, en->lease, "/v3/lease/keepalive", b);
    }
}

static void put_registration(cp_etcd_t *e, ent_t *en, int64_t lease)
{
    char key[ETCD_KEY_LEN];
    key_of(e, 'i', en->url, key, sizeof key);
    struct json_object *b = json_object_new_object();
    json_object_object_add(b, "key", b64(key, strlen(key)));
    json_object_object_add(b, "value", b64(en->want, strlen(en->want)));
    json_object_object_add(b, "lease", json_object_new_int64(lease));
    call_start(e, OP_PUT, en->url, lease, "/v3/kv/put", b);
}

/* ---- health verdicts ----
 *
 * Each host publishes what it routes by: its own verdict on each instance, P/h/<host>/<url> =
 * "healthy" or "unhealthy", under a lease of the host's own (kept alive every quarter lease
 * while the CP runs), so a host that dies takes its verdicts with it. A verdict is the slot's
 * health here: HEALTHY or UNHEALTHY (an instance learnt from the fleet starts HEALTHY: this host
 * routes to it until its own probes say otherwise); UNKNOWN (a slot re-added after this host
 * dropped it) keeps the last verdict, and so does a slot this host dropped while the fleet keeps
 * the instance; an instance gone from the fleet loses it. Written only when it changes, in txns
 * of up to ETCD_TXN_OPS operations, one txn in flight, so a burst of changes (a host cut off
 * from many instances) costs a few revisions, and a steady fleet none.
 *
 * Every host counts the others' verdicts from the watch (bits of e->hosts per instance) and
 * publishes, per slot, in shared memory, how many hosts see the instance healthy and unhealthy
 * (shm_slot_fleet_health), which /registered and fdctl health show; the hosts' names are in
 * the control socket's /status ("health_disagreements"). */

static int host_index(cp_etcd_t *e, const char *id, bool create)
{
    int free_row = -1;
    for (int h = 0; h < ETCD_MAX_HOSTS; h++) {
        if (e->hosts[h].refs > 0 && strcmp(e->hosts[h].id, id) == 0)
            return h;
        if (e->hosts[h].refs == 0 && free_row < 0)
            free_row = h;
    }
    if (create && free_row >= 0)
        snprintf(e->hosts[free_row].id, sizeof e->hosts[free_row].id, "%s", id);
    return create ? free_row : -1;
}

/* Host h's verdict v (-1: none) on en; a host row lives while one of its bits is set. */
static void host_bit(cp_etcd_t *e, ent_t *en, int h, int v)
{
    uint64_t bit = 1ULL << h;
    bool had = ((en->hosts_healthy | en->hosts_unhealthy) & bit) != 0;
    en->hosts_healthy &= ~bit;
    en->hosts_unhealthy &= ~bit;
    if (v == 1)
        en->hosts_healthy |= bit;
    else if (v == 0)
        en->hosts_unhealthy |= bit;
    if (had && v < 0)
        e->hosts[h].refs--;
    else if (!had && v >= 0)
        e->hosts[h].refs++;
}

static void on_verdict_key(cp_etcd_t *e, const char *rest, const char *val, int64_t lease, int64_t mod_rev,
                           bool from_watch)
{
    const char *slash = strchr(rest, '/');
    if (slash == NULL || slash == rest || (size_t)(slash - rest) >= ETCD_HOST_LEN ||
        strlen(slash + 1) >= SHM_URL_LEN)
        return;
    char host[ETCD_HOST_LEN];
    snprintf(host, sizeof host, "%.*s", (int)(slash - rest), rest);
    int v = val == NULL                     ? -1
            : strcmp(val, "healthy") == 0   ? 1
            : strcmp(val, "unhealthy") == 0 ? 0
                                            : -1; /* not a verdict this build knows: none */
    ent_t *en = ent_find(e, slash + 1, v >= 0);
    if (en == NULL)
        return;
    if (strcmp(host, e->host_id) == 0) { /* ours: what etcd holds, unless we wrote it since */
        if (from_watch && mod_rev < en->verdict_rev)
            return;
        en->verdict_etcd = (int8_t)v;
        en->verdict_lease = v >= 0 ? lease : 0;
        return;
    }
    int h = host_index(e, host, v >= 0);
    if (h < 0) {
        if (v >= 0)
            LOG_RATELIMITED(FD_LOG_WARN, "etcd: more than %d other router hosts; %s's verdicts not counted",
                            ETCD_MAX_HOSTS, host);
        return;
    }
    host_bit(e, en, h, v);
}

/* This host's verdict from its slot's health; UNKNOWN keeps the last one. */
static void own_verdict(ent_t *en, uint32_t health)
{
    if (health == SHM_HEALTH_HEALTHY)
        en->verdict = 1;
    else if (health == SHM_HEALTH_UNHEALTHY)
        en->verdict = 0;
}

/* The slot of en's instance is gone here: dropped by this host (the fleet keeps the instance:
 * the verdict stands) or gone from the fleet (no verdict). */
static void slot_left(ent_t *en)
{
    if (!en->in_etcd)
        en->verdict = -1;
}

/* Every slot: this host's verdict on it, and the fleet's counts into shared memory. Cheap
 * enough for each tick (a few loads per slot; an ent lookup only when a slot changes). */
static void verdicts_scan(cp_etcd_t *e)
{
    uint16_t hosts = 1; /* this one */
    for (int h = 0; h < ETCD_MAX_HOSTS; h++)
        hosts += e->hosts[h].refs > 0;
    for (unsigned s = 0; s < SHM_MAX_INSTANCES; s++) {
        shm_instance_t *in = shm_instance(&e->cp->seg, s);
        bool live = shm_slot_is_live(in);
        uint32_t gen = shm_slot_generation_of(in);
        int *m = &e->slot_ent[s].ent;
        if (*m >= 0 && (!live || e->slot_ent[s].generation != gen)) {
            slot_left(&e->ents[*m]);
            *m = -1;
        }
        if (!live)
            continue;
        if (*m < 0) {
            ent_t *en = ent_find(e, in->url, true);
            if (en == NULL)
                continue;
            *m = (int)(en - e->ents);
            e->slot_ent[s].generation = gen;
        }
        ent_t *en = &e->ents[*m];
        own_verdict(en, shm_slot_health(in));
        shm_fleet_health_t f = {
            .healthy = (uint16_t)(__builtin_popcountll(en->hosts_healthy) + (en->verdict == 1)),
            .unhealthy = (uint16_t)(__builtin_popcountll(en->hosts_unhealthy) + (en->verdict == 0)),
            .hosts = hosts,
        };
        shm_fleet_health_t cur = shm_slot_fleet_health(in);
        if (cur.healthy != f.healthy || cur.unhealthy != f.unhealthy || cur.hosts != f.hosts)
            shm_slot_fleet_health_set(in, f);
    }
}

/* en is forgotten: no slot may point at it any more (its row is reused for another URL). */
static void ent_forget(cp_etcd_t *e, ent_t *en)
{
    en->used = false;
    for (unsigned s = 0; s < SHM_MAX_INSTANCES; s++)
        if (e->slot_ent[s].ent == (int)(en - e->ents))
            e->slot_ent[s].ent = -1;
}

static bool verdict_unwritten(const cp_etcd_t *e, const ent_t *en)
{
    return en->verdict != en->verdict_etcd || (en->verdict >= 0 && en->verdict_lease != e->host_lease);
}

/* Write what changed: one txn of up to ETCD_TXN_OPS puts and deletes. Puts wait for a lease
 * known alive (granted, or kept alive since the last sync). */
static void verdicts_flush(cp_etcd_t *e)
{
    if (e->state != ST_UP || e->verdicts_busy)
        return;
    bool lease_needed = false;
    unsigned n = 0;
    struct json_object *ops = json_object_new_array();
    for (unsigned i = 0; i < ETCD_MAX_ENTS && n < ETCD_TXN_OPS; i++) {
        ent_t *en = &e->ents[i];
        if (!en->used || !verdict_unwritten(e, en))
            continue;
        if (en->verdict >= 0 && (e->host_lease == 0 || !e->host_lease_checked)) {
            lease_needed = true;
            continue;
        }
        char key[ETCD_KEY_LEN + ETCD_HOST_LEN];
        snprintf(key, sizeof key, "%sh/%s/%s", e->prefix, e->host_id, en->url);
        struct json_object *r = json_object_new_object(), *op = json_object_new_object();
        json_object_object_add(r, "key", b64(key, strlen(key)));
        if (en->verdict >= 0) {
            const char *v = en->verdict ? "healthy" : "unhealthy";
            json_object_object_add(r, "value", b64(v, strlen(v)));
            json_object_object_add(r, "lease", json_object_new_int64(e->host_lease));
        }
        json_object_object_add(op, en->verdict >= 0 ? "request_put" : "request_delete_range", r);
        json_object_array_add(ops, op);
        en->verdict_busy = true;
        en->verdict_sent = en->verdict;
        n++;
    }
    if (lease_needed && !e->host_lease_busy)
        host_lease_call(e, e->host_lease == 0 ? OP_HOST_GRANT : OP_HOST_KEEPALIVE);
    if (n == 0 || e->state != ST_UP) {
        json_object_put(ops);
        if (n > 0) /* the lease call failed at once: nothing was sent */
            for (unsigned i = 0; i < ETCD_MAX_ENTS; i++)
                e->ents[i].verdict_busy = false;
        return;
    }
    struct json_object *b = json_object_new_object();
    json_object_object_add(b, "success", ops);
    e->verdicts_busy = true;
    call_start(e, OP_VERDICTS, "", e->host_lease, "/v3/kv/txn", b);
}

/* The txn ended: answered (res) or abandoned (NULL: etcd's state of those keys is unknown, the
 * next sync's range tells). */
static void verdicts_done(cp_etcd_t *e, const etcd_call_t *c, struct json_object *res)
{
    struct json_object *h;
    int64_t rev = res && json_object_object_get_ex(res, "header", &h) ? member_i64(h, "revision") : 0;
    unsigned n = 0;
    for (unsigned i = 0; i < ETCD_MAX_ENTS; i++) {
        ent_t *en = &e->ents[i];
        if (!en->verdict_busy)
            continue;
        en->verdict_busy = false;
        n++;
        if (res == NULL)
            continue;
        en->verdict_etcd = en->verdict_sent;
        en->verdict_lease = en->verdict_sent >= 0 ? c->lease : 0;
        en->verdict_rev = rev;
    }
    e->verdicts_busy = false;
    if (res == NULL)
        return;
    e->verdict_txns++;
    e->verdict_writes += n;
    verdicts_flush(e); /* what changed meanwhile */
}

static void host_lease_call(cp_etcd_t *e, etcd_op_t op)
{
    struct json_object *b = json_object_new_object();
    if (op == OP_HOST_GRANT)
        json_object_object_add(b, "TTL", json_object_new_int64(e->lease_secs));
    else
        json_object_object_add(b, "ID", json_object_new_int64(e->host_lease));
    e->host_lease_busy = true;
    call_start(e, op, "", e->host_lease, op == OP_HOST_GRANT ? "/v3/lease/grant" : "/v3/lease/keepalive", b);
}

static void host_lease_done(cp_etcd_t *e, etcd_op_t op, struct json_object *res)
{
    e->host_lease_busy = false;
    e->host_keepalive_ms = fd_mono_ms();
    if (op == OP_HOST_GRANT) {
        e->grants++;
        e->host_lease = member_i64(res, "ID"); /* 0: none granted, asked again at the next flush */
        e->host_lease_checked = e->host_lease != 0;
    } else {
        struct json_object *r;
        e->keepalives++;
        if (json_object_object_get_ex(res, "result", &r) && member_i64(r, "TTL") > 0) {
            e->host_lease_checked = true;
        } else { /* it ended (etcd was away longer than a lease): so did our verdicts */
            for (unsigned i = 0; i < ETCD_MAX_ENTS; i++)
                if (e->ents[i].used && e->ents[i].verdict_lease == e->host_lease) {
                    e->ents[i].verdict_etcd = -1;
                    e->ents[i].verdict_lease = 0;
                }
            e->host_lease = 0;
            e->host_lease_checked = false;
        }
    }
    verdicts_flush(e);
}

/* ---- connection life ---- */

static void calls_cancel_all(cp_etcd_t *e);
static void sync_start(cp_etcd_t *e);

static void connection_lost(cp_etcd_t *e, const char *why)
{
    if (e->state != ST_DOWN)
        LOG_WARN("etcd %s: %s; serving from the last table, retrying every %llu ms", e->names[e->cur], why,
                 (unsigned long long)e->retry_ms);
    snprintf(e->last_error, sizeof e->last_error, "%s", why);
    set_state(e, ST_DOWN);
    calls_cancel_all(e);
    e->cur = (e->cur + 1) % e->n_endpoints;
    e->next_sync_mono = fd_mono_ms() + e->retry_ms;
}

static void range_done(cp_etcd_t *e, struct json_object *res)
{
    cp_t *cp = e->cp;
    for (unsigned i = 0; i < ETCD_MAX_ENTS; i++) {
        ent_t *en = &e->ents[i];
        en->seen = false;
        en->hosts_healthy = en->hosts_unhealthy = 0; /* the verdicts: as the range has them */
        en->verdict_etcd = -1;
        en->verdict_lease = 0;
    }
    for (int h = 0; h < ETCD_MAX_HOSTS; h++)
        e->hosts[h].refs = 0;
    struct json_object *kvs;
    size_t n = json_object_object_get_ex(res, "kvs", &kvs) ? json_object_array_length(kvs) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *kv = json_object_array_get_idx(kvs, i);
        size_t klen, vlen;
        char *key = unb64(member_str(kv, "key") ? member_str(kv, "key") : "", &klen);
        char *val = unb64(member_str(kv, "value") ? member_str(kv, "value") : "", &vlen);
        if (key != NULL && val != NULL)
            on_key(e, key, klen, val, member_i64(kv, "lease"), member_i64(kv, "mod_revision"), false);
        free(key);
        free(val);
    }
    /* what etcd does not have any more */
    for (unsigned i = 0; i < ETCD_MAX_ENTS; i++) {
        ent_t *en = &e->ents[i];
        if (!en->used || en->seen)
            continue;
        en->drained = false;
        if (en->drain_want == 0)
            en->drain_want = -1;
        free(en->val);
        en->val = NULL;
        en->in_etcd = false;
        en->lease = 0;
        en->remove_want = false;
    }
    /* both ways: etcd's keys into the table, the table's own registrations into etcd */
    set_state(e, ST_UP);
    for (unsigned i = 0; i < ETCD_MAX_ENTS; i++) {
        ent_t *en = &e->ents[i];
        if (!en->used)
            continue;
        if (en->in_etcd && !en->remove_want)
            apply_put(e, en);
        else
            apply_gone(e, en);
        apply_drain(e, en);
        sync_ent(e, en);
        if (!en->in_etcd && en->want == NULL && !en->drained && en->drain_want < 0 && !en->busy &&
            en->verdict < 0 && en->verdict_etcd < 0 && (en->hosts_healthy | en->hosts_unhealthy) == 0)
            ent_forget(e, en); /* forgotten: nothing here or there */
    }
    /* a reused segment (a restarted CP): what etcd does not know and nobody registers here */
    for (unsigned s = 0; s < SHM_MAX_INSTANCES; s++) {
        const shm_instance_t *in = shm_instance(&cp->seg, s);
        if (!shm_slot_is_live(in))
            continue;
        ent_t *en = ent_find(e, in->url, false);
        if (en == NULL) {
            LOG_INFO("Instance %s removed: not in the fleet (etcd) and not registering here", in->url);
            cp_registry_retire(cp, s);
        }
    }
    e->syncs++;
    if (!e->synced_once)
        LOG_INFO("etcd %s: fleet registry synchronised at revision %lld", e->names[e->cur],
                 (long long)e->revision);
    e->synced_once = true;
    if (e->state != ST_UP)
        return; /* a call started above failed at once */
    /* this host's verdicts, as its table has them now, against etcd's; a lease from before is
     * asked whether it still lives before anything is written under it */
    e->host_lease_checked = false;
    verdicts_scan(e);
    verdicts_flush(e);
    if (e->state != ST_UP)
        return;
    /* and follow it from there */
    struct json_object *cr = json_object_new_object();
    char end[sizeof e->prefix];
    memcpy(end, e->prefix, e->prefix_len);
    end[e->prefix_len - 1]++; /* "P/" -> "P0": every key under P/ */
    json_object_object_add(cr, "key", b64(e->prefix, e->prefix_len));
    json_object_object_add(cr, "range_end", b64(end, e->prefix_len));
    json_object_object_add(cr, "start_revision", json_object_new_int64(e->revision + 1));
    struct json_object *b = json_object_new_object();
    json_object_object_add(b, "create_request", cr);
    call_start(e, OP_WATCH, "", 0, "/v3/watch", b);
}

static void sync_start(cp_etcd_t *e)
{
    set_state(e, ST_SYNCING);
    struct json_object *b = json_object_new_object();
    char end[sizeof e->prefix];
    memcpy(end, e->prefix, e->prefix_len);
    end[e->prefix_len - 1]++;
    json_object_object_add(b, "key", b64(e->prefix, e->prefix_len));
    json_object_object_add(b, "range_end", b64(end, e->prefix_len));
    call_start(e, OP_RANGE, "", 0, "/v3/kv/range", b);
}

/* One message of the watch stream. */
static void watch_message(cp_etcd_t *e, const char *line, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
    json_tokener_free(tok);
    struct json_object *res;
    if (o == NULL || !json_object_object_get_ex(o, "result", &res)) {
        json_object_put(o);
        connection_lost(e, "watch stream: not a watch response");
        return;
    }
    note_revision(e, res);
    if (member_i64(res, "compact_revision") > 0 || member_true(res, "canceled")) {
        LOG_WARN("etcd: the watch fell behind compaction (compacted at %lld): resynchronising",
                 (long long)member_i64(res, "compact_revision"));
        json_object_put(o);
        calls_cancel_all(e);
        sync_start(e);
        return;
    }
    struct json_object *evs;
    size_t n = json_object_object_get_ex(res, "events", &evs) ? json_object_array_length(evs) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *ev = json_object_array_get_idx(evs, i), *kv;
        if (!json_object_object_get_ex(ev, "kv", &kv))
            continue;
        const char *type = member_str(ev, "type");
        bool del = type != NULL && strcmp(type, "DELETE") == 0;
        size_t klen, vlen;
        char *key = unb64(member_str(kv, "key") ? member_str(kv, "key") : "", &klen);
        char *val = del ? NULL : unb64(member_str(kv, "value") ? member_str(kv, "value") : "", &vlen);
        if (key != NULL && (del || val != NULL))
            on_key(e, key, klen, val, member_i64(kv, "lease"), member_i64(kv, "mod_revision"), true);
        free(key);
        free(val);
    }
    json_object_put(o);
}

/* ---- calls: one HTTP/1.1 exchange each, on its own connection ---- */

static void call_free(etcd_call_t *c)
{
    if (h2o_timeout_is_linked(&c->deadline))
        h2o_timeout_unlink(&c->deadline);
    h2o_linklist_unlink(&c->link);
    c->e->ncalls--;
    if (c->e->watch == c)
        c->e->watch = NULL;
    if (c->e->dispatching == c) {
        c->e->dispatching = NULL;
        c->e->dispatching_freed = true;
    }
    free(c->req.base);
    free(c->body);
    free(c);
}

/* The ent flags of a call that ends without its answer being applied. */
static void call_abandon(etcd_call_t *c)
{
    if (c->op == OP_PING)
        c->e->ping_busy = false;
    if (c->op == OP_HOST_GRANT || c->op == OP_HOST_KEEPALIVE)
        c->e->host_lease_busy = false;
    if (c->op == OP_VERDICTS)
        verdicts_done(c->e, c, NULL);
    ent_t *en = c->url[0] ? ent_find(c->e, c->url, false) : NULL;
    if (en == NULL)
        return;
    if (c->op == OP_GRANT || c->op == OP_PUT || c->op == OP_KEEPALIVE)
        en->busy = false;
    if (c->op == OP_DRAIN_PUT)
        en->drain_busy = false;
    if (c->op == OP_DELETE)
        en->remove_want = true;
}

/* Nothing else asked etcd anything for a third of a lease: a count-only range, so that an etcd
 * that went silent (no reset, as behind a partition) is noticed like one that refused. */
static void ping(cp_etcd_t *e)
{
    struct json_object *b = json_object_new_object();
    json_object_object_add(b, "key", b64(e->prefix, e->prefix_len));
    json_object_object_add(b, "count_only", json_object_new_boolean(1));
    e->ping_busy = true;
    call_start(e, OP_PING, "", 0, "/v3/kv/range", b);
}

static void calls_cancel_all(cp_etcd_t *e)
{
    while (!h2o_linklist_is_empty(&e->calls)) {
        etcd_call_t *c = H2O_STRUCT_FROM_MEMBER(etcd_call_t, link, e->calls.next);
        if (c->client != NULL && c != e->dispatching)
            uc_cancel(c->client);
        call_abandon(c);
        call_free(c);
    }
}

/* A unary call answered 200 with this JSON. */
static void call_done(etcd_call_t *c, struct json_object *res)
{
    cp_etcd_t *e = c->e;
    note_revision(e, res);
    e->last_ok_mono = fd_mono_ms();
    if (c->op == OP_PING) {
        e->ping_busy = false;
        return;
    }
    if (c->op == OP_RANGE) {
        range_done(e, res);
        return;
    }
    if (c->op == OP_HOST_GRANT || c->op == OP_HOST_KEEPALIVE) {
        host_lease_done(e, c->op, res);
        return;
    }
    if (c->op == OP_VERDICTS) {
        verdicts_done(e, c, res);
        return;
    }
    ent_t *en = ent_find(e, c->url, false);
    if (en == NULL)
        return;
    switch (c->op) {
    case OP_GRANT: {
        int64_t id = member_i64(res, "ID");
        e->grants++;
        if (id == 0 || en->want == NULL) {
            en->busy = false;
            return;
        }
        put_registration(e, en, id);
        return;
    }
    case OP_PUT:
        e->puts++;
        en->busy = false;
        if (en->want != NULL) {
            free(en->val);
            en->val = strdup(en->want);
            en->in_etcd = true;
            en->written = true;
            en->lease = c->lease;
            en->last_keepalive_ms = fd_mono_ms();
        }
        sync_ent(e, en); /* it may have changed meanwhile */
        return;
    case OP_KEEPALIVE: {
        struct json_object *r;
        e->keepalives++;
        en->busy = false;
        en->last_keepalive_ms = fd_mono_ms();
        if (!json_object_object_get_ex(res, "result", &r) || member_i64(r, "TTL") <= 0) {
            en->lease = 0; /* expired: a new lease and a put */
            sync_ent(e, en);
        }
        return;
    }
    case OP_DELETE:
        e->deletes++;
        return;
    case OP_DRAIN_PUT:
        en->drain_busy = false;
        sync_ent(e, en);
        return;
    default:
        return;
    }
}

static void call_failed(etcd_call_t *c, const char *why)
{
    cp_etcd_t *e = c->e;
    char msg[160];
    snprintf(msg, sizeof msg, "%s: %s", c->op == OP_WATCH ? "watch" : "request", why);
    call_abandon(c);
    call_free(c);
    connection_lost(e, msg);
}

/* Append the bytes read to c->body (NUL-terminated); false if that would pass ETCD_MAX_BODY. */
static bool take_input(etcd_call_t *c, uc_client_t *client)
{
    h2o_buffer_t *in = client->sock->input;
    size_t n = in->size;
    if (c->len + n > ETCD_MAX_BODY) {
        h2o_buffer_consume(&client->sock->input, n);
        return false;
    }
    if (c->len + n + 1 > c->cap) {
        c->cap = (c->len + n + 1) * 2;
        c->body = h2o_mem_realloc(c->body, c->cap);
    }
    memcpy(c->body + c->len, in->bytes, n);
    c->len += n;
    c->body[c->len] = '\0';
    h2o_buffer_consume(&client->sock->input, n);
    return true;
}

static int on_watch_body(uc_client_t *client, const char *err)
{
    etcd_call_t *c = client->data;
    cp_etcd_t *e = c->e;
    if (!take_input(c, client)) {
        c->client = NULL;
        call_failed(c, "watch message too large");
        return -1;
    }
    /* newline-delimited JSON messages, those that came with the end too (a cancel, then the
     * close); one may end the watch (a resync, a lost connection) */
    e->dispatching = c;
    e->dispatching_freed = false;
    size_t start = 0;
    for (size_t i = 0; i < c->len; i++) {
        if (c->body[i] != '\n')
            continue;
        if (i > start) {
            watch_message(e, c->body + start, i - start);
            if (e->dispatching_freed)
                return -1; /* uclient closes the connection */
        }
        start = i + 1;
    }
    e->dispatching = NULL;
    memmove(c->body, c->body + start, c->len - start);
    c->len -= start;
    if (err != NULL) {
        c->client = NULL;
        call_failed(c, err == uc_error_is_eos ? "closed by etcd" : err);
        return -1;
    }
    return 0;
}

static int on_body(uc_client_t *client, const char *err)
{
    etcd_call_t *c = client->data;
    if (!take_input(c, client)) {
        c->client = NULL;
        call_failed(c, "response too large");
        return -1;
    }
    if (err == NULL)
        return 0;
    c->client = NULL;
    if (err != uc_error_is_eos) {
        call_failed(c, err);
        return -1;
    }
    struct json_object *res = json_tokener_parse(c->body);
    if (c->status != 200 || res == NULL) {
        char why[96];
        snprintf(why, sizeof why, "%s answered %d", c->op == OP_RANGE ? "range" : "call", c->status);
        json_object_put(res);
        call_failed(c, why);
        return -1;
    }
    /* the call is over before its answer is applied (which may start calls or end them all) */
    etcd_call_t done = {.e = c->e, .op = c->op, .lease = c->lease};
    memcpy(done.url, c->url, sizeof done.url);
    call_free(c);
    call_done(&done, res);
    json_object_put(res);
    return -1;
}

static uc_body_cb on_head(uc_client_t *client, const char *err, int minor_version, int status,
                          h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers)
{
    (void)minor_version, (void)msg, (void)headers, (void)num_headers;
    etcd_call_t *c = client->data;
    if (err != NULL && err != uc_error_is_eos) {
        c->client = NULL;
        call_failed(c, err);
        return NULL;
    }
    c->status = status;
    if (err == uc_error_is_eos) {
        c->client = NULL;
        call_failed(c, "empty answer");
        return NULL;
    }
    if (c->op == OP_WATCH) {
        if (status != 200) {
            c->client = NULL; /* returning NULL: uclient closes it */
            call_failed(c, "watch refused");
            return NULL;
        }
        h2o_timeout_unlink(&c->deadline); /* a watch lasts */
        return on_watch_body;
    }
    return on_body;
}

static uc_head_cb on_connect(uc_client_t *client, const char *err, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                             int *method_is_head)
{
    etcd_call_t *c = client->data;
    if (err != NULL) {
        c->client = NULL;
        call_failed(c, err);
        return NULL;
    }
    *reqbufs = &c->req;
    *reqbufcnt = 1;
    *method_is_head = 0;
    return on_head;
}

static void on_deadline(h2o_timeout_entry_t *t)
{
    etcd_call_t *c = H2O_STRUCT_FROM_MEMBER(etcd_call_t, deadline, t);
    if (c->client != NULL)
        uc_cancel(c->client);
    c->client = NULL;
    call_failed(c, "timed out");
}

/* A connect failure may be reported from inside uc_connect_addr: the connection is then lost
 * before this returns (every caller tolerates the state changing to DOWN under it). */
static void call_start(cp_etcd_t *e, etcd_op_t op, const char *url, int64_t lease, const char *path,
                       struct json_object *body)
{
    if (e->ncalls >= ETCD_MAX_CALLS) {
        json_object_put(body);
        etcd_call_t tmp = {.e = e, .op = op};
        snprintf(tmp.url, sizeof tmp.url, "%s", url);
        call_abandon(&tmp); /* the next sync writes it */
        return;
    }
    etcd_call_t *c = h2o_mem_alloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->e = e;
    c->op = op;
    c->lease = lease;
    snprintf(c->url, sizeof c->url, "%s", url);
    const char *js = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
    size_t jl = strlen(js);
    size_t cap = jl + 256;
    c->req.base = h2o_mem_alloc(cap);
    c->req.len = (size_t)snprintf(c->req.base, cap,
                                  "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                                  "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                  path, e->names[e->cur] + strlen("http://"), jl, js);
    json_object_put(body);
    c->deadline.cb = on_deadline;
    h2o_linklist_insert(&e->calls, &c->link);
    e->ncalls++;
    if (op == OP_WATCH)
        e->watch = c;
    h2o_timeout_link(e->cp->loop, &e->timeout, &c->deadline);
    uc_connect_addr(&c->client, c, e->cp->loop, (struct sockaddr *)&e->addr[e->cur], e->addrlen[e->cur],
                    on_connect);
}

/* ---- the timer: reconnect, keep static instances' leases alive ---- */

static void on_timer(cp_timer_t *t)
{
    cp_etcd_t *e = t->data;
    verdicts_scan(e); /* etcd down too: the health views stay this host's own */
    if (e->state == ST_DOWN) {
        if (fd_mono_ms() >= e->next_sync_mono)
            sync_start(e);
        return;
    }
    if (e->state != ST_UP)
        return;
    uint64_t now = fd_mono_ms();
    if (!e->ping_busy && now - e->last_ok_mono >= (uint64_t)e->lease_secs * 1000 / 3)
        ping(e);
    if (now - e->last_readd_mono >= ETCD_READD_MS) { /* what this host dropped, the fleet still has */
        e->last_readd_mono = now;
        for (unsigned i = 0; i < ETCD_MAX_ENTS; i++)
            if (e->ents[i].used && e->ents[i].in_etcd && !e->ents[i].remove_want &&
                shm_slot_find(&e->cp->seg, e->ents[i].url) < 0)
                apply_put(e, &e->ents[i]);
    }
    for (unsigned i = 0; i < ETCD_MAX_ENTS && e->state == ST_UP; i++)
        if (e->ents[i].used && (e->ents[i].is_static || e->ents[i].drain_want >= 0 || e->ents[i].remove_want))
            sync_ent(e, &e->ents[i]);
    if (e->state == ST_UP && e->host_lease != 0 && !e->host_lease_busy &&
        now - e->host_keepalive_ms >= (uint64_t)e->lease_secs * 250)
        host_lease_call(e, OP_HOST_KEEPALIVE);
    verdicts_flush(e);
}

/* ---- the interface ---- */

int cp_etcd_parse_endpoints(const char *list, struct sockaddr_storage *out, socklen_t *lens,
                            char (*names)[64], int max, char *err, size_t errlen)
{
    int n = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, ", ");
        char item[64], host[64];
        if (len >= sizeof item) {
            snprintf(err, errlen, "endpoint '%.*s...' is too long", 32, p);
            return -1;
        }
        snprintf(item, sizeof item, "%.*s", (int)len, p);
        p += len;
        if (n >= max) {
            snprintf(err, errlen, "more than %d endpoints", max);
            return -1;
        }
        const char *h = strncmp(item, "http://", 7) == 0 ? item + 7 : NULL;
        const char *colon = h ? strrchr(h, ':') : NULL;
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (h == NULL || colon == NULL || end == colon + 1 || *end != '\0' || port < 1 || port > 65535 ||
            (size_t)(colon - h) >= sizeof host) {
            snprintf(err, errlen, "endpoint '%s' is not http://IP:port", item);
            return -1;
        }
        snprintf(host, sizeof host, "%.*s", (int)(colon - h), h);
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
            memmove(host, host + 1, strlen(host));
            host[strlen(host) - 1] = '\0';
        }
        if (uc_make_addr(host, (uint16_t)port, &out[n], &lens[n]) != 0) {
            snprintf(err, errlen, "endpoint '%s': the host must be an IP address literal", item);
            return -1;
        }
        snprintf(names[n], 64, "%s", item);
        n++;
    }
    if (n == 0) {
        snprintf(err, errlen, "no endpoint given");
        return -1;
    }
    return n;
}

int cp_etcd_start(cp_t *cp, char *err, size_t errlen)
{
    cp_etcd_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char why[160];
    e->n_endpoints = cp_etcd_parse_endpoints(cp->cfg.etcd_endpoints, e->addr, e->addrlen, e->names,
                                             ETCD_MAX_ENDPOINTS, why, sizeof why);
    if (e->n_endpoints < 0) {
        snprintf(err, errlen, "registry.etcd-endpoints: %s", why);
        free(e);
        return -1;
    }
    snprintf(e->prefix, sizeof e->prefix, "%s/", cp->cfg.etcd_prefix);
    e->prefix_len = strlen(e->prefix);
    e->cp = cp;
    char hostname[64] = "";
    if (gethostname(hostname, sizeof hostname - 1) != 0 || hostname[0] == '\0')
        snprintf(hostname, sizeof hostname, "localhost");
    for (char *c = hostname; *c; c++)
        if (*c == '/')
            *c = '_'; /* the identity is one key segment */
    snprintf(e->host_id, sizeof e->host_id, "%s:%u", hostname, cp->port);
    for (unsigned s = 0; s < SHM_MAX_INSTANCES; s++)
        e->slot_ent[s].ent = -1;
    e->lease_secs = (unsigned)cp->cfg.etcd_lease_secs;
    e->timeout_ms = (uint64_t)(cp->cfg.etcd_timeout_secs * 1000);
    e->retry_ms = (uint64_t)(cp->cfg.etcd_retry_secs * 1000);
    if (e->timeout_ms == 0)
        e->timeout_ms = 1;
    h2o_timeout_init(cp->loop, &e->timeout, e->timeout_ms);
    h2o_linklist_init_anchor(&e->calls);
    e->state = ST_DOWN;
    e->state_since_ms = shm_now_ms();
    snprintf(e->last_error, sizeof e->last_error, "not connected yet");
    if (cp_timer_init(&e->timer, cp->loop, on_timer, e) != 0) {
        snprintf(err, errlen, "etcd timer: %s", strerror(errno));
        h2o_timeout_dispose(cp->loop, &e->timeout);
        free(e);
        return -1;
    }
    uint64_t period = e->retry_ms < 1000 ? e->retry_ms : 1000;
    cp_timer_arm(&e->timer, 1, period ? period : 1);
    cp->etcd = e;
    LOG_INFO("Registry backend etcd: %s, prefix %s, lease %u s, this host %s", cp->cfg.etcd_endpoints,
             e->prefix, e->lease_secs, e->host_id);
    return 0;
}

void cp_etcd_stop(cp_t *cp)
{
    cp_etcd_t *e = cp->etcd;
    if (e == NULL)
        return;
    cp_timer_dispose(&e->timer);
    calls_cancel_all(e);
    h2o_timeout_dispose(cp->loop, &e->timeout);
    for (unsigned i = 0; i < ETCD_MAX_ENTS; i++) {
        free(e->ents[i].val);
        free(e->ents[i].want);
    }
    free(e);
    cp->etcd = NULL;
}

void cp_etcd_registered(cp_t *cp, const fd_instance_info_t *info, bool is_static)
{
    cp_etcd_t *e = cp->etcd;
    ent_t *en = ent_find(e, info->url, true);
    if (en == NULL) {
        LOG_RATELIMITED(FD_LOG_WARN, "etcd: too many keys tracked; %s stays local", info->url);
        return;
    }
    char *want = info_json(info);
    if (en->want == NULL || strcmp(en->want, want) != 0) {
        free(en->want);
        en->want = want;
        en->written = false;
    } else {
        free(want);
    }
    en->is_static = en->is_static || is_static;
    en->last_local_ms = fd_mono_ms();
    en->local_count++;
    en->remove_want = false;
    apply_drain(e, en); /* a drain set anywhere follows the URL */
    sync_ent(e, en);
}

void cp_etcd_action(cp_t *cp, cp_etcd_action_t act, const char *url)
{
    cp_etcd_t *e = cp->etcd;
    ent_t *en = ent_find(e, url, true);
    if (en == NULL)
        return;
    if (act == CP_ETCD_REMOVE) {
        free(en->want); /* not ours to write back any more: its next heartbeat here would be */
        en->want = NULL;
        en->is_static = false;
        en->remove_want = true;
    } else {
        en->drain_want = act == CP_ETCD_DRAIN;
    }
    sync_ent(e, en);
}

#define ETCD_STATUS_DISAGREEMENTS 64 /* listed in /status; the count says how many there are */

static struct json_object *verdict_hosts(const cp_etcd_t *e, const ent_t *en, int v)
{
    struct json_object *a = json_object_new_array();
    if (en->verdict == v)
        json_object_array_add(a, json_object_new_string(e->host_id));
    uint64_t bits = v ? en->hosts_healthy : en->hosts_unhealthy;
    for (int h = 0; h < ETCD_MAX_HOSTS; h++)
        if (bits & (1ULL << h))
            json_object_array_add(a, json_object_new_string(e->hosts[h].id));
    return a;
}

/* This host's identity, the other hosts with verdicts, the verdict writes, and the instances
 * the hosts disagree on, with who says what. */
static void health_status_json(const cp_etcd_t *e, struct json_object *o)
{
    json_object_object_add(o, "host", json_object_new_string(e->host_id));
    struct json_object *hosts = json_object_new_array();
    for (int h = 0; h < ETCD_MAX_HOSTS; h++)
        if (e->hosts[h].refs > 0)
            json_object_array_add(hosts, json_object_new_string(e->hosts[h].id));
    json_object_object_add(o, "other_hosts", hosts);
    json_object_object_add(o, "verdict_writes", json_object_new_int64((int64_t)e->verdict_writes));
    json_object_object_add(o, "verdict_txns", json_object_new_int64((int64_t)e->verdict_txns));
    struct json_object *dis = json_object_new_array();
    unsigned n = 0;
    for (unsigned i = 0; i < ETCD_MAX_ENTS; i++) {
        const ent_t *en = &e->ents[i];
        bool healthy = en->verdict == 1 || en->hosts_healthy,
             unhealthy = en->verdict == 0 || en->hosts_unhealthy;
        if (!en->used || !healthy || !unhealthy || n++ >= ETCD_STATUS_DISAGREEMENTS)
            continue;
        struct json_object *d = json_object_new_object();
        json_object_object_add(d, "url", json_object_new_string(en->url));
        json_object_object_add(d, "here",
                               json_object_new_string(en->verdict == 1   ? "healthy"
                                                      : en->verdict == 0 ? "unhealthy"
                                                                         : "no verdict"));
        json_object_object_add(d, "healthy_on", verdict_hosts(e, en, 1));
        json_object_object_add(d, "unhealthy_on", verdict_hosts(e, en, 0));
        json_object_array_add(dis, d);
    }
    json_object_object_add(o, "health_disagreements", dis);
    json_object_object_add(o, "health_disagreements_total", json_object_new_int((int)n));
}

struct json_object *cp_etcd_status_json(const cp_t *cp)
{
    const cp_etcd_t *e = cp->etcd;
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "backend", json_object_new_string(e ? "etcd" : "local"));
    if (e == NULL)
        return o;
    struct json_object *eps = json_object_new_array();
    for (int i = 0; i < e->n_endpoints; i++)
        json_object_array_add(eps, json_object_new_string(e->names[i]));
    json_object_object_add(o, "endpoints", eps);
    json_object_object_add(o, "endpoint", json_object_new_string(e->names[e->cur]));
    json_object_object_add(o, "prefix",
                           json_object_new_string_len(e->prefix, (int)e->prefix_len - 1)); /* as started */
    json_object_object_add(o, "state", json_object_new_string(state_names[e->state]));
    json_object_object_add(o, "state_since_ms", json_object_new_int64((int64_t)e->state_since_ms));
    json_object_object_add(o, "revision", json_object_new_int64(e->revision));
    json_object_object_add(o, "last_error", json_object_new_string(e->last_error));
    /* where this host disagrees with the fleet: instances etcd has that this host does not
     * route to (its own probes fail, or it dropped them), with why */
    unsigned in_etcd = 0;
    struct json_object *dis = json_object_new_array();
    for (unsigned i = 0; i < ETCD_MAX_ENTS; i++) {
        const ent_t *en = &e->ents[i];
        if (!en->used || !en->in_etcd)
            continue;
        in_etcd++;
        int s = shm_slot_find(&cp->seg, en->url);
        uint32_t h = s >= 0 ? shm_slot_health(shm_instance(&cp->seg, (unsigned)s)) : 0;
        if (s >= 0 && h == SHM_HEALTH_HEALTHY)
            continue;
        struct json_object *d = json_object_new_object();
        json_object_object_add(d, "url", json_object_new_string(en->url));
        json_object_object_add(d, "here",
                               json_object_new_string(s < 0                       ? "not registered"
                                                      : h == SHM_HEALTH_UNHEALTHY ? "unhealthy"
                                                                                  : "health unknown"));
        json_object_array_add(dis, d);
    }
    json_object_object_add(o, "instances", json_object_new_int((int)in_etcd));
    json_object_object_add(o, "not_routable_here", dis);
    json_object_object_add(o, "lease_secs", json_object_new_int((int)e->lease_secs));
    json_object_object_add(o, "puts", json_object_new_int64((int64_t)e->puts));
    json_object_object_add(o, "keepalives", json_object_new_int64((int64_t)e->keepalives));
    json_object_object_add(o, "syncs", json_object_new_int64((int64_t)e->syncs));
    health_status_json(e, o);
    return o;
}
