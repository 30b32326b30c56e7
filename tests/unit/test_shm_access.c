/*
 * tests/unit/test_shm_access.c - the field accessors of shm/shm.h that other modules use instead
 * of atomics of their own: slot identity checks, the validated slot copy fdctl reads, the CP's
 * claim and release of the segment, and the writer-lock owner recorded in the segment.
 */
#include "test_shm_util.h"

TestSuite(access, .init = seg_setup, .fini = seg_teardown, .timeout = 10.0);

#define URL "http://10.0.0.1:8000"

Test(access, slot_still_needs_live_same_generation_same_url)
{
    int slot = add_instance(&seg, URL, SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    shm_instance_t *in = shm_instance(&seg, (unsigned)slot);
    uint32_t gen = shm_slot_generation_of(in);
    cr_assert(shm_slot_is_live(in));
    cr_assert(shm_slot_still(&seg, (unsigned)slot, gen, URL));
    cr_assert_not(shm_slot_still(&seg, (unsigned)slot, gen + 1, URL));
    cr_assert_not(shm_slot_still(&seg, (unsigned)slot, gen, "http://10.0.0.2:8000"));
    shm_slot_retire(&seg, (unsigned)slot, 1);
    cr_assert_not(shm_slot_is_live(in));
    cr_assert(shm_slot_same_generation(in, gen), "retired, not yet collected: still pinned");
    cr_assert_not(shm_slot_still(&seg, (unsigned)slot, gen, URL));
}

Test(access, selectable_and_counts_follow_health_drain_and_state)
{
    int a = add_instance(&seg, URL, SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    int b = add_instance(&seg, "http://10.0.0.2:8000", SHM_ROLE_MIXED, SHM_HEALTH_UNHEALTHY);
    shm_instance_t *ia = shm_instance(&seg, (unsigned)a), *ib = shm_instance(&seg, (unsigned)b);
    cr_assert(shm_slot_selectable(ia));
    cr_assert_not(shm_slot_selectable(ib));
    shm_slot_health_set(ib, SHM_HEALTH_HEALTHY);
    cr_assert(shm_slot_selectable(ib));
    shm_slot_drained_set(ia, true);
    cr_assert(shm_slot_drained(ia));
    cr_assert_not(shm_slot_selectable(ia));
    shm_slot_retire(&seg, (unsigned)b, 1);
    cr_assert(shm_slot_listed(ia, false));
    cr_assert_not(shm_slot_listed(ib, false));
    cr_assert(shm_slot_listed(ib, true), "a retired slot is listed with the retired ones");
    unsigned live, retired;
    shm_slot_counts(&seg, &live, &retired);
    cr_assert_eq(live, 1);
    cr_assert_eq(retired, 1);
    cr_assert_str_eq(shm_slot_state_name(shm_slot_state_of(ib)), "retired");
    cr_assert_str_eq(shm_slot_state_name(99), "invalid");
}

Test(access, slot_copy_takes_live_and_retired_slots_and_refuses_free_ones)
{
    int slot = add_instance(&seg, URL, SHM_ROLE_PREFILL, SHM_HEALTH_HEALTHY);
    shm_instance_t *in = shm_instance(&seg, (unsigned)slot);
    shm_lat_add(in, SHM_LAT_TTFB, 1, 3, 42);
    shm_count_status(in, 200);
    static shm_instance_t copy;
    cr_assert(shm_slot_copy(&seg, (unsigned)slot, &copy));
    cr_assert_str_eq(copy.url, URL);
    cr_assert_eq(copy.role, SHM_ROLE_PREFILL);
    cr_assert_eq(shm_lat_bucket(&copy, SHM_LAT_TTFB, 1, 3), 1);
    cr_assert_eq(shm_lat_sum_ms(&copy, SHM_LAT_TTFB, 1), 42);
    cr_assert_eq(shm_lat_sum_ms(&copy, SHM_LAT_TOTAL, 1), 0);
    uint32_t code;
    cr_assert_eq(shm_status_load(&copy, 0, &code), 1);
    cr_assert_eq(code, 200);

    shm_slot_retire(&seg, (unsigned)slot, 1);
    cr_assert(shm_slot_copy(&seg, (unsigned)slot, &copy));
    cr_assert_eq(copy.state, SHM_SLOT_RETIRED);
    cr_assert_eq(shm_publish_views(&seg), 0); /* drops it from the views: collectable once quiet */
    cr_assert_eq(shm_slot_collect(&seg), 1);
    cr_assert_not(shm_slot_copy(&seg, (unsigned)slot, &copy), "a FREE slot is not copied");
}

Test(access, cp_release_only_by_the_owner)
{
    shm_cp_claim(&seg, 4242, 77, 1000, 9000);
    cr_assert_eq(shm_cp_pid(&seg), 4242);
    cr_assert_eq(shm_cp_start_time(&seg), 77);
    cr_assert_eq(shm_cp_heartbeat_ms(&seg), 1000);
    cr_assert_eq(seg.hdr->listen_port, 9000);
    shm_cp_heartbeat(&seg, 2000);
    cr_assert_eq(shm_cp_heartbeat_ms(&seg), 2000);
    cr_assert_not(shm_cp_release(&seg, 4243), "another pid must not release it");
    cr_assert_eq(shm_cp_pid(&seg), 4242);
    cr_assert(shm_cp_release(&seg, 4242));
    cr_assert_eq(shm_cp_pid(&seg), 0);
}

Test(access, dp_row_state_and_requests)
{
    int row = shm_dp_claim(&seg, getpid(), 0xabc);
    cr_assert_geq(row, 0);
    const shm_dp_row_t *r = shm_dp_row(&seg, (unsigned)row);
    cr_assert_eq(shm_dp_row_pid(r), getpid());
    cr_assert_eq(shm_dp_row_state(r), SHM_DP_STARTING);
    cr_assert_eq(shm_dp_row_version_hash(r), 0xabc);
    cr_assert_eq(shm_dp_row_start_time(r), shm_proc_start_time(getpid()));
    shm_dp_row_state_set(&seg, row, SHM_DP_SERVING);
    shm_dp_count_request(&seg, row);
    shm_dp_count_request(&seg, row);
    cr_assert_eq(shm_dp_row_state(r), SHM_DP_SERVING);
    cr_assert_eq(shm_dp_row_requests(r), 2);
    shm_dp_release(&seg, row);
    cr_assert_eq(shm_dp_row_pid(r), 0);
}

Test(access, wlock_owner_is_the_holder_and_survives_its_death_until_recovery)
{
    cr_assert_eq(shm_wlock_owner(&seg), 0);
    cr_assert_eq(shm_wlock(&seg), 0);
    cr_assert_eq(shm_wlock_owner(&seg), getpid());
    shm_wunlock(&seg);
    cr_assert_eq(shm_wlock_owner(&seg), 0);

    int ready[2], hold[2];
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(hold), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        shm_seg_t s;
        if (shm_attach(&s, seg_name, NULL, 0) < 0 || shm_wlock(&s) < 0)
            _exit(2);
        send_byte(ready[1]);
        block_forever(hold[0]);
    }
    cr_assert(wait_byte(ready[0], 5000), "child did not take the lock");
    cr_assert_eq(shm_wlock_owner(&seg), pid);
    kill_and_reap(pid);
    cr_assert_eq(shm_wlock_owner(&seg), pid, "a dead holder stays named until recovery");
    cr_assert_eq(shm_wlock(&seg), 0);
    cr_assert_eq(seg.hdr->wlock_recovered, 1);
    cr_assert_eq(shm_wlock_owner(&seg), getpid());
    shm_wunlock(&seg);
    cr_assert_eq(shm_wlock_owner(&seg), 0);
    close(ready[0]), close(ready[1]), close(hold[0]), close(hold[1]);
}
