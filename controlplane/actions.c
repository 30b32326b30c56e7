/*
 * controlplane/actions.c - what an operator does to one instance through the control socket
 * (fdctl drain / undrain / remove).
 *
 *   drain    the instance leaves every view: no new request goes there, those in flight finish;
 *            it stays registered and health-checked, and the flag survives re-registration
 *   undrain  it is selectable again (when healthy)
 *   remove   it is retired like an instance that failed its health checks for too long: out of
 *            /registered at once, its slot freed once its in-flight requests are done. Refused
 *            (409) for an instance that still registers itself (it re-registered within the last
 *            HEARTBEAT_WINDOW_MS): its next heartbeat would bring it back at once; the answer
 *            says to drain it, or to stop it first.
 */
#include <string.h>

#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/actions.h"
#include "controlplane/registry.h"
#include "controlplane/etcd.h"

#define HEARTBEAT_WINDOW_MS 60000

static bool still_heartbeats(const shm_instance_t *in, uint64_t now_ms, uint64_t *age_ms)
{
    uint64_t first = in->registered_at_ms;
    uint64_t last = shm_slot_last_register_ms(in);
    *age_ms = now_ms > last ? now_ms - last : 0;
    return last > first && *age_ms < HEARTBEAT_WINDOW_MS;
}

int cp_instance_action(cp_t *cp, cp_action_t act, const char *url, char *msg, size_t msglen)
{
    int slot = shm_slot_find(&cp->seg, url);
    if (slot < 0) {
        snprintf(msg, msglen, "instance %s is not registered", url);
        return 404;
    }
    uint64_t age_ms;
    if (act == CP_ACT_REMOVE &&
        still_heartbeats(shm_instance(&cp->seg, (unsigned)slot), shm_now_ms(), &age_ms)) {
        snprintf(
            msg, msglen,
            "instance %s still registers itself (last heartbeat %.1f s ago): removed, it would be back at "
            "its next heartbeat; drain it to stop sending it requests (fdctl drain), or stop it first",
            url, (double)age_ms / 1000.0);
        return 409;
    }
    if (act == CP_ACT_REMOVE) {
        cp_registry_retire(cp, (unsigned)slot);
        cp_static_remove(cp, url);
        if (cp->etcd != NULL) /* every host of the fleet */
            cp_etcd_action(cp, CP_ETCD_REMOVE, url);
        LOG_INFO("Instance %s removed by the operator", url);
        snprintf(msg, msglen, "instance %s removed; its in-flight requests finish", url);
        return 200;
    }
    bool drain = act == CP_ACT_DRAIN;
    if (cp_registry_set_drained(cp, (unsigned)slot, drain) != 0) {
        snprintf(msg, msglen, "shared-memory writer lock is unrecoverable");
        return 503;
    }
    if (cp->etcd != NULL) /* every host of the fleet */
        cp_etcd_action(cp, drain ? CP_ETCD_DRAIN : CP_ETCD_UNDRAIN, url);
    LOG_INFO("Instance %s %s by the operator", url, drain ? "drained" : "undrained");
    snprintf(msg, msglen,
             drain ? "instance %s drained: no new requests, in-flight ones finish"
                   : "instance %s undrained: selectable again when healthy",
             url);
    return 200;
}
