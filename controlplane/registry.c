/*
 * controlplane/registry.c - the instance registry in shared memory, as the CP changes it.
 *
 * Identity is the URL "http://host:port" (the Go router's key). A slot's URL, host and port are
 * written only while it is FREE (shm/layout.h). Changed FastDeploy metadata for a known URL (an
 * instance restarted with other ports, devices or role) rewrites the same slot in place (see
 * update_in_place): a new slot would reset what belongs to the URL - its in-flight counts, its
 * prefix-tree entries (tagged slot + generation), its /metrics series - and a full table would
 * refuse an instance that is already registered. Every change that can alter what is
 * selectable ends with shm_publish_views under the writer lock.
 *
 * Only the CP writes slots, and only from its one thread, so reads here need no lock.
 */
#include <string.h>

#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/registry.h"

static bool same_list(uint8_t na, const char (*a)[SHM_LIST_ITEM_LEN], uint8_t nb,
                      const char (*b)[SHM_LIST_ITEM_LEN])
{
    if (na != nb)
        return false;
    if (na == 0xff)
        return true;
    unsigned n = na < SHM_MAX_LIST ? na : SHM_MAX_LIST;
    for (unsigned i = 0; i < n; i++)
        if (strncmp(a[i], b[i], SHM_LIST_ITEM_LEN) != 0)
            return false;
    return true;
}

bool cp_slot_same_identity(const shm_instance_t *a, const shm_instance_t *b)
{
    return a->role == b->role && a->tp_size == b->tp_size && strncmp(a->url, b->url, SHM_URL_LEN) == 0 &&
           strncmp(a->host, b->host, SHM_HOST_LEN) == 0 && a->port == b->port &&
           a->metrics_port == b->metrics_port && a->connector_port == b->connector_port &&
           a->engine_worker_queue_port == b->engine_worker_queue_port &&
           a->transfer_protocols == b->transfer_protocols &&
           a->has_transfer_protocol == b->has_transfer_protocol &&
           same_list(a->n_transfer_protocol, a->transfer_protocol, b->n_transfer_protocol,
                     b->transfer_protocol) &&
           same_list(a->n_rdma_ports, a->rdma_ports, b->n_rdma_ports, b->rdma_ports) &&
           same_list(a->n_device_ids, a->device_ids, b->n_device_ids, b->device_ids);
}

bool cp_info_matches_slot(const fd_instance_info_t *info, const shm_instance_t *slot)
{
    static shm_instance_t tmp; /* big; the CP is single-threaded */
    memset(&tmp, 0, sizeof(tmp));
    fd_instance_to_slot(info, &tmp);
    return cp_slot_same_identity(&tmp, slot);
}

int cp_registry_heartbeat(cp_t *cp, const fd_instance_info_t *info)
{
    int s = shm_slot_find(&cp->seg, info->url);
    if (s < 0)
        return -1;
    shm_instance_t *in = shm_instance(&cp->seg, (unsigned)s);
    if (!shm_slot_is_live(in) || shm_slot_health(in) != SHM_HEALTH_HEALTHY || !cp_info_matches_slot(info, in))
        return -1;
    shm_slot_heartbeat(in, shm_now_ms());
    return s;
}

/* Writer lock held. A failed publication keeps the old views; the next maintenance retries. */
static void publish(cp_t *cp)
{
    if (shm_publish_views(&cp->seg) != 0) {
        LOG_ERROR("Failed to publish instance views: shared-memory arena exhausted (will retry)");
        cp->views_dirty = true;
        return;
    }
    cp->views_dirty = false;
}

static void apply_health(cp_t *cp, shm_instance_t *in, shm_health_t health, uint64_t now)
{
    uint32_t old = shm_slot_health(in);
    shm_slot_health_set(in, (uint32_t)health);
    if (health == SHM_HEALTH_HEALTHY) {
        in->unhealthy_since_ms = 0;
        in->consecutive_ok =
            (uint32_t)(cp->cfg.health_success_threshold > 0 ? cp->cfg.health_success_threshold : 1);
        in->consecutive_fail = 0;
    } else if (health == SHM_HEALTH_UNHEALTHY && old != SHM_HEALTH_UNHEALTHY) {
        in->unhealthy_since_ms = now;
    }
}

static int insert_new(cp_t *cp, const fd_instance_info_t *info, shm_health_t health, uint64_t now, char *err,
                      size_t errlen)
{
    int s = shm_slot_alloc(&cp->seg);
    if (s < 0) {
        snprintf(err, errlen, "instance table is full (%d slots)", SHM_MAX_INSTANCES);
        return -1;
    }
    shm_instance_t *in = shm_instance(&cp->seg, (unsigned)s);
    fd_instance_to_slot(info, in);
    in->registered_at_ms = now;
    in->last_register_ms = now;
    in->role = (uint32_t)info->role;
    shm_slot_health_set(in, (uint32_t)SHM_HEALTH_UNKNOWN);
    apply_health(cp, in, health, now);
    shm_slot_publish_live(in);
    return s;
}

/*
 * Writer lock held; the slot is LIVE with info's URL. fd_instance_to_slot rewrites url, host and
 * port with the bytes they already hold (same URL), so the address a DP proxies to never
 * changes under it; a new role moves the slot between views at the publication that follows.
 * The drain flag, counters, histograms and prefix-tree tags stay with the slot. A PD request
 * building its disaggregate_info at this very moment may read the old and the new metadata
 * mixed, once: the instance is re-registering because it changed, so a request racing with
 * that change reaches it in a transition either way. The remote metrics were scraped from the
 * old metrics port: dropped until the next poll.
 */
static void update_in_place(cp_t *cp, shm_instance_t *in, const fd_instance_info_t *info, shm_health_t health,
                            uint64_t now)
{
    fd_instance_to_slot(info, in);
    shm_slot_role_set(in, (uint32_t)info->role);
    in->last_register_ms = now;
    shm_metrics_invalidate(in);
    apply_health(cp, in, health, now);
}

int cp_registry_upsert(cp_t *cp, const fd_instance_info_t *info, shm_health_t health, bool keep_existing,
                       cp_upsert_kind_t *kind, char *err, size_t errlen)
{
    if (shm_wlock(&cp->seg) != 0) {
        snprintf(err, errlen, "shared-memory writer lock is unrecoverable");
        return -1;
    }
    uint64_t now = shm_now_ms();
    int old = shm_slot_find(&cp->seg, info->url);
    int s;
    if (old >= 0 && cp_info_matches_slot(info, shm_instance(&cp->seg, (unsigned)old))) {
        shm_instance_t *in = shm_instance(&cp->seg, (unsigned)old);
        in->last_register_ms = now;
        s = old;
        *kind = CP_UPSERT_KEPT;
        if (!keep_existing) {
            *kind = CP_UPSERT_REFRESHED;
            bool was = shm_slot_health(in) == SHM_HEALTH_HEALTHY;
            apply_health(cp, in, health, now);
            if (was != (health == SHM_HEALTH_HEALTHY))
                publish(cp);
        }
    } else if (old >= 0) {
        update_in_place(cp, shm_instance(&cp->seg, (unsigned)old), info, health, now);
        s = old;
        *kind = CP_UPSERT_UPDATED;
        publish(cp);
    } else {
        s = insert_new(cp, info, health, now, err, errlen);
        if (s >= 0) {
            *kind = CP_UPSERT_INSERTED;
            publish(cp);
        }
    }
    shm_wunlock(&cp->seg);
    return s;
}

void cp_registry_set_health(cp_t *cp, unsigned slot, shm_health_t health, uint64_t now_ms)
{
    if (shm_wlock(&cp->seg) != 0) {
        LOG_ERROR("Failed to update instance health: shared-memory writer lock is unrecoverable");
        return;
    }
    shm_instance_t *in = shm_instance(&cp->seg, slot);
    bool was = shm_slot_health(in) == SHM_HEALTH_HEALTHY;
    apply_health(cp, in, health, now_ms);
    if (was != (health == SHM_HEALTH_HEALTHY))
        publish(cp);
    shm_wunlock(&cp->seg);
}

void cp_registry_retire(cp_t *cp, unsigned slot)
{
    if (shm_wlock(&cp->seg) != 0) {
        LOG_ERROR("Failed to remove instance: shared-memory writer lock is unrecoverable");
        return;
    }
    shm_instance_t *in = shm_instance(&cp->seg, slot);
    if (shm_slot_is_live(in)) {
        shm_slot_retire(&cp->seg, slot, shm_now_ms());
        publish(cp);
    }
    shm_wunlock(&cp->seg);
}

int cp_registry_set_drained(cp_t *cp, unsigned slot, bool drained)
{
    if (shm_wlock(&cp->seg) != 0)
        return -1;
    shm_instance_t *in = shm_instance(&cp->seg, slot);
    if (shm_slot_drained(in) != drained) {
        shm_slot_drained_set(in, drained);
        publish(cp);
    }
    shm_wunlock(&cp->seg);
    return 0;
}

void cp_registry_maintain(cp_t *cp)
{
    if (shm_wlock(&cp->seg) != 0) {
        LOG_ERROR("Registry maintenance skipped: shared-memory writer lock is unrecoverable");
        return;
    }
    if (cp->views_dirty)
        publish(cp);
    shm_slot_collect(&cp->seg);
    shm_reclaim(&cp->seg);
    shm_wunlock(&cp->seg);
}

unsigned cp_registry_live_count(const cp_t *cp)
{
    unsigned n = 0;
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++)
        if (shm_slot_is_live(shm_instance(&cp->seg, i)))
            n++;
    return n;
}

void cp_static_add(cp_t *cp, const char *url)
{
    if (cp_static_has(cp, url) || cp->statics.n >= SHM_MAX_INSTANCES)
        return;
    snprintf(cp->statics.urls[cp->statics.n++], SHM_URL_LEN, "%s", url);
}

void cp_static_remove(cp_t *cp, const char *url)
{
    for (unsigned i = 0; i < cp->statics.n; i++) {
        if (strncmp(cp->statics.urls[i], url, SHM_URL_LEN) == 0) {
            memcpy(cp->statics.urls[i], cp->statics.urls[--cp->statics.n], SHM_URL_LEN);
            return;
        }
    }
}

bool cp_static_has(const cp_t *cp, const char *url)
{
    for (unsigned i = 0; i < cp->statics.n; i++)
        if (strncmp(cp->statics.urls[i], url, SHM_URL_LEN) == 0)
            return true;
    return false;
}
