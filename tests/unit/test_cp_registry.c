/*
 * tests/unit/test_cp_registry.c - the CP's registry operations on a real segment
 * (controlplane/registry.c): insert, heartbeat, refresh, in-place update with new metadata, static
 * items that wait for their first health check, health changes and retirement as they show in
 * the published views, and a full slot table.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/instance_info.h"
#include "controlplane/cp.h"
#include "controlplane/registry.h"

static cp_t cp;
static char name[64];

static void setup(void)
{
    char err[256] = "";
    shm_open_result_t how;
    snprintf(name, sizeof(name), "/fdr-cptest-%d", (int)getpid());
    shm_destroy(name);
    cr_assert_eq(shm_open_cp(&cp.seg, name, false, &how, err, sizeof(err)), 0, "%s", err);
    fd_config_defaults(&cp.cfg);
    cp.cfg.health_success_threshold = 2;
}

static void teardown(void)
{
    shm_detach(&cp.seg);
    shm_destroy(name);
}

static fd_instance_info_t info_of(const char *json)
{
    fd_instance_info_t info;
    char msg[256];
    cr_assert_eq(fd_instance_parse_body(json, strlen(json), cp.splitwise, &info, msg, sizeof(msg)), 0, "%s",
                 msg);
    return info;
}

static bool in_view(shm_role_t role, int slot)
{
    const shm_view_t *v = shm_view(&cp.seg, role);
    if (v == NULL)
        return false;
    for (uint32_t i = 0; i < v->count; i++)
        if (v->slot[i] == slot)
            return true;
    return false;
}

static int upsert(const fd_instance_info_t *info, shm_health_t h, bool keep, cp_upsert_kind_t *kind)
{
    char err[256] = "";
    int s = cp_registry_upsert(&cp, info, h, keep, kind, err, sizeof(err));
    cr_assert_geq(s, 0, "%s", err);
    return s;
}

#define A  "{\"role\":\"mixed\",\"host_ip\":\"127.0.0.1\",\"port\":9001}"
#define A2 "{\"role\":\"mixed\",\"host_ip\":\"127.0.0.1\",\"port\":9001,\"metrics_port\":9101}"

TestSuite(cp_registry, .init = setup, .fini = teardown);

Test(cp_registry, insert_publishes_a_healthy_instance)
{
    fd_instance_info_t a = info_of(A);
    cp_upsert_kind_t kind;
    int s = upsert(&a, SHM_HEALTH_HEALTHY, false, &kind);
    cr_assert_eq(kind, CP_UPSERT_INSERTED);
    shm_instance_t *in = shm_instance(&cp.seg, (unsigned)s);
    cr_assert_eq(in->state, SHM_SLOT_LIVE);
    cr_assert_eq(in->health, SHM_HEALTH_HEALTHY);
    cr_assert_str_eq(in->url, "http://127.0.0.1:9001");
    cr_assert_eq(in->consecutive_ok, 2);
    cr_assert_neq(in->registered_at_ms, 0);
    cr_assert(in_view(SHM_ROLE_MIXED, s));
    cr_assert_eq(cp_registry_live_count(&cp), 1);
}

Test(cp_registry, heartbeat_needs_live_healthy_and_identical)
{
    fd_instance_info_t a = info_of(A), a2 = info_of(A2);
    cr_assert_eq(cp_registry_heartbeat(&cp, &a), -1);
    cp_upsert_kind_t kind;
    int s = upsert(&a, SHM_HEALTH_HEALTHY, false, &kind);
    shm_instance(&cp.seg, (unsigned)s)->last_register_ms = 1;
    cr_assert_eq(cp_registry_heartbeat(&cp, &a), s);
    cr_assert_gt(shm_instance(&cp.seg, (unsigned)s)->last_register_ms, 1);
    cr_assert_eq(cp_registry_heartbeat(&cp, &a2), -1, "changed metadata must go through a probe");
    cp_registry_set_health(&cp, (unsigned)s, SHM_HEALTH_UNHEALTHY, shm_now_ms());
    cr_assert_eq(cp_registry_heartbeat(&cp, &a), -1, "an unhealthy instance must be probed again");
}

Test(cp_registry, identical_upsert_refreshes_in_place)
{
    fd_instance_info_t a = info_of(A);
    cp_upsert_kind_t kind;
    int s = upsert(&a, SHM_HEALTH_HEALTHY, false, &kind);
    cp_registry_set_health(&cp, (unsigned)s, SHM_HEALTH_UNHEALTHY, 12345);
    shm_instance_t *in = shm_instance(&cp.seg, (unsigned)s);
    cr_assert_eq(in->unhealthy_since_ms, 12345);
    cr_assert(!in_view(SHM_ROLE_MIXED, s));
    cr_assert_eq(upsert(&a, SHM_HEALTH_HEALTHY, false, &kind), s);
    cr_assert_eq(kind, CP_UPSERT_REFRESHED);
    cr_assert_eq(in->health, SHM_HEALTH_HEALTHY);
    cr_assert_eq(in->unhealthy_since_ms, 0);
    cr_assert(in_view(SHM_ROLE_MIXED, s));
}

Test(cp_registry, new_metadata_updates_the_slot_in_place)
{
    fd_instance_info_t a = info_of(A), a2 = info_of(A2);
    cp_upsert_kind_t kind;
    int s1 = upsert(&a, SHM_HEALTH_HEALTHY, false, &kind);
    shm_instance_t *in = shm_instance(&cp.seg, (unsigned)s1);
    in->drained = 1;
    uint32_t gen = in->generation;
    uint64_t registered = in->registered_at_ms;
    in->status[0].code = 200; /* what /metrics reports for the URL stays one series */
    in->status[0].count = 7;
    int s2 = upsert(&a2, SHM_HEALTH_HEALTHY, false, &kind);
    cr_assert_eq(kind, CP_UPSERT_UPDATED);
    cr_assert_eq(s1, s2, "the URL keeps its slot");
    cr_assert_eq(in->generation, gen, "same generation: in-flight counts and prefix tags stay valid");
    cr_assert_eq(in->state, SHM_SLOT_LIVE);
    cr_assert_eq(in->metrics_port, 9101);
    cr_assert_eq(in->drained, 1, "an operator's drain follows the URL");
    cr_assert_eq(in->registered_at_ms, registered);
    cr_assert_eq(in->status[0].count, 7);
    cr_assert_str_eq(in->url, "http://127.0.0.1:9001");
    cr_assert_eq(cp_registry_live_count(&cp), 1);
    /* and back: an identical registration is a refresh again */
    cr_assert_eq(upsert(&a2, SHM_HEALTH_HEALTHY, false, &kind), s1);
    cr_assert_eq(kind, CP_UPSERT_REFRESHED);
}

Test(cp_registry, role_change_moves_between_views)
{
    fd_instance_info_t m = info_of(A);
    cp_upsert_kind_t kind;
    int s1 = upsert(&m, SHM_HEALTH_HEALTHY, false, &kind);
    cp.splitwise = true;
    fd_instance_info_t p = info_of("{\"role\":\"prefill\",\"host_ip\":\"127.0.0.1\",\"port\":9001}");
    int s2 = upsert(&p, SHM_HEALTH_HEALTHY, false, &kind);
    cr_assert_eq(kind, CP_UPSERT_UPDATED);
    cr_assert_eq(s1, s2);
    cr_assert(!in_view(SHM_ROLE_MIXED, s1));
    cr_assert(in_view(SHM_ROLE_PREFILL, s2));
}

Test(cp_registry, static_items_wait_for_health_and_keep_existing)
{
    fd_instance_info_t a = info_of(A);
    cp_upsert_kind_t kind;
    int s = upsert(&a, SHM_HEALTH_UNKNOWN, true, &kind);
    cr_assert_eq(kind, CP_UPSERT_INSERTED);
    cr_assert_eq(shm_instance(&cp.seg, (unsigned)s)->health, SHM_HEALTH_UNKNOWN);
    cr_assert(!in_view(SHM_ROLE_MIXED, s), "not selectable before a health check");
    cp_registry_set_health(&cp, (unsigned)s, SHM_HEALTH_HEALTHY, shm_now_ms());
    cr_assert(in_view(SHM_ROLE_MIXED, s));
    /* a restarted CP loading the same register.yaml keeps the healthy instance as it is */
    cr_assert_eq(upsert(&a, SHM_HEALTH_UNKNOWN, true, &kind), s);
    cr_assert_eq(kind, CP_UPSERT_KEPT);
    cr_assert_eq(shm_instance(&cp.seg, (unsigned)s)->health, SHM_HEALTH_HEALTHY);
    cr_assert(in_view(SHM_ROLE_MIXED, s));
}

Test(cp_registry, retire_then_collect_frees_the_slot)
{
    fd_instance_info_t a = info_of(A);
    cp_upsert_kind_t kind;
    int s = upsert(&a, SHM_HEALTH_HEALTHY, false, &kind);
    uint32_t gen = shm_instance(&cp.seg, (unsigned)s)->generation;
    cp_registry_retire(&cp, (unsigned)s);
    cr_assert_eq(shm_instance(&cp.seg, (unsigned)s)->state, SHM_SLOT_RETIRED);
    cr_assert(!in_view(SHM_ROLE_MIXED, s));
    cr_assert_eq(cp_registry_live_count(&cp), 0);
    cp_registry_maintain(&cp);
    cr_assert_eq(shm_instance(&cp.seg, (unsigned)s)->state, SHM_SLOT_FREE);
    cr_assert_eq(shm_instance(&cp.seg, (unsigned)s)->generation, gen + 1);
}

Test(cp_registry, full_table_is_a_clear_error)
{
    cp_upsert_kind_t kind;
    char json[128], err[256] = "";
    for (int i = 0; i < SHM_MAX_INSTANCES; i++) {
        snprintf(json, sizeof(json), "{\"role\":\"mixed\",\"host_ip\":\"127.0.%d.%d\",\"port\":80}", i / 250,
                 i % 250 + 1);
        fd_instance_info_t x = info_of(json);
        cr_assert_geq(cp_registry_upsert(&cp, &x, SHM_HEALTH_HEALTHY, false, &kind, err, sizeof(err)), 0,
                      "#%d: %s", i, err);
    }
    fd_instance_info_t a = info_of(A);
    cr_assert_eq(cp_registry_upsert(&cp, &a, SHM_HEALTH_HEALTHY, false, &kind, err, sizeof(err)), -1);
    cr_assert(strstr(err, "full") != NULL, "%s", err);
    cr_assert_eq(shm_view(&cp.seg, SHM_ROLE_MIXED)->count, SHM_MAX_INSTANCES);
    /* an instance already registered is never refused, with or without new metadata */
    fd_instance_info_t known = info_of("{\"role\":\"mixed\",\"host_ip\":\"127.0.0.1\",\"port\":80}");
    int s = cp_registry_upsert(&cp, &known, SHM_HEALTH_HEALTHY, false, &kind, err, sizeof(err));
    cr_assert_geq(s, 0, "%s", err);
    cr_assert_eq(kind, CP_UPSERT_REFRESHED);
    fd_instance_info_t changed =
        info_of("{\"role\":\"mixed\",\"host_ip\":\"127.0.0.1\",\"port\":80,\"metrics_port\":81}");
    cr_assert_eq(cp_registry_upsert(&cp, &changed, SHM_HEALTH_HEALTHY, false, &kind, err, sizeof(err)), s,
                 "%s", err);
    cr_assert_eq(kind, CP_UPSERT_UPDATED);
    cr_assert_eq(cp_registry_live_count(&cp), SHM_MAX_INSTANCES);
}

Test(cp_registry, identity_compares_lists_and_absence)
{
    fd_instance_info_t x =
        info_of("{\"role\":\"mixed\",\"host_ip\":\"127.0.0.1\",\"port\":1,\"device_ids\":[0,1]}");
    fd_instance_info_t y =
        info_of("{\"role\":\"mixed\",\"host_ip\":\"127.0.0.1\",\"port\":1,\"device_ids\":[0,2]}");
    fd_instance_info_t e =
        info_of("{\"role\":\"mixed\",\"host_ip\":\"127.0.0.1\",\"port\":1,\"device_ids\":[]}");
    fd_instance_info_t n = info_of("{\"role\":\"mixed\",\"host_ip\":\"127.0.0.1\",\"port\":1}");
    static shm_instance_t sx;
    memset(&sx, 0, sizeof(sx));
    fd_instance_to_slot(&x, &sx);
    cr_assert(cp_info_matches_slot(&x, &sx));
    cr_assert(!cp_info_matches_slot(&y, &sx));
    cr_assert(!cp_info_matches_slot(&e, &sx));
    cr_assert(!cp_info_matches_slot(&n, &sx));
    static shm_instance_t se;
    memset(&se, 0, sizeof(se));
    fd_instance_to_slot(&e, &se);
    cr_assert(!cp_info_matches_slot(&n, &se), "an empty list is not an absent one");
}

Test(cp_registry, statics)
{
    cr_assert(!cp_static_has(&cp, "http://127.0.0.1:1"));
    cp_static_add(&cp, "http://127.0.0.1:1");
    cp_static_add(&cp, "http://127.0.0.1:1");
    cr_assert(cp_static_has(&cp, "http://127.0.0.1:1"));
    cr_assert(!cp_static_has(&cp, "http://127.0.0.1:10"));
    cr_assert_eq(cp.statics.n, 1);
}
