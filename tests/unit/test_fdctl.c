/*
 * tests/unit/test_fdctl.c - fdctl's rendering (durations, JSON field names and types, the
 * human table) and its snapshot of a real shared-memory segment (which slots it shows, summed
 * in-flight counts, live and dead data-plane rows).
 *
 * fdctl is an executable, not a library the unit tests link, so its two non-main sources are
 * compiled into this test directly.
 */
#include <json-c/json.h>
#include <stdlib.h>

#include "test_shm_util.h"
#include "tools/fdctl/format.c"
#include "tools/fdctl/snapshot.c"

static const uint64_t NOW = 1700000000000ull;

Test(format, durations)
{
    static const struct {
        uint64_t ms;
        const char *want;
    } cases[] = {{0, "0ms"},         {850, "850ms"},      {1000, "1.0s"},       {12345, "12.3s"},
                 {59999, "59.9s"},   {60000, "1m00s"},    {245000, "4m05s"},    {3600000, "1h00m"},
                 {7380000, "2h03m"}, {86400000, "1d00h"}, {273600000, "3d04h"}, {UINT64_MAX, "-"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[32];
        fdctl_format_duration(buf, sizeof buf, cases[i].ms);
        cr_expect_str_eq(buf, cases[i].want, "%llu ms", (unsigned long long)cases[i].ms);
    }
}

Test(format, ages_never_negative)
{
    cr_assert_eq(fdctl_age_ms(NOW, NOW - 1500), 1500);
    cr_assert_eq(fdctl_age_ms(NOW, 0), 0, "unset timestamp");
    cr_assert_eq(fdctl_age_ms(NOW, NOW + 10), 0, "clock stepped back");
}

Test(format, names)
{
    cr_assert_str_eq(fdctl_health_name(SHM_HEALTH_UNKNOWN), "unknown");
    cr_assert_str_eq(fdctl_health_name(SHM_HEALTH_HEALTHY), "healthy");
    cr_assert_str_eq(fdctl_health_name(SHM_HEALTH_UNHEALTHY), "unhealthy");
    cr_assert_str_eq(fdctl_health_name(77), "invalid");
    cr_assert_str_eq(shm_slot_state_name(SHM_SLOT_RETIRED), "retired");
    cr_assert_str_eq(shm_dp_state_name(SHM_DP_SERVING), "serving");
    cr_assert_str_eq(shm_dp_state_name(SHM_DP_DRAINING), "draining");
}

static fdctl_instance_t sample(const char *url, uint32_t state, uint32_t health)
{
    fdctl_instance_t in = {
        .slot = 3, .generation = 2, .state = state, .role = SHM_ROLE_DECODE, .health = health};
    snprintf(in.url, sizeof in.url, "%s", url);
    in.selectable = state == SHM_SLOT_LIVE && health == SHM_HEALTH_HEALTHY;
    in.inflight = 4;
    in.tokens = 120;
    in.registered_at_ms = NOW - 65000;
    in.last_check_ms = NOW - 200;
    return in;
}

static json_object *field(json_object *o, const char *key)
{
    json_object *v = NULL;
    cr_assert(json_object_object_get_ex(o, key, &v), "missing key %s", key);
    return v;
}

Test(format, instance_json_fields_and_types)
{
    fdctl_instance_t in[2] = {sample("http://10.0.0.1:8000", SHM_SLOT_LIVE, SHM_HEALTH_HEALTHY),
                              sample("http://10.0.0.2:8000", SHM_SLOT_RETIRED, SHM_HEALTH_UNHEALTHY)};
    in[1].retired_at_ms = NOW - 3000;
    in[1].unhealthy_since_ms = NOW - 9000;
    snprintf(in[1].last_error, sizeof in[1].last_error, "connection refused");
    json_object *o = fdctl_instances_json(in, 2, NOW);
    json_object *list = field(o, "instances");
    cr_assert_eq(json_object_array_length(list), 2);

    json_object *a = json_object_array_get_idx(list, 0);
    cr_assert_str_eq(json_object_get_string(field(a, "url")), "http://10.0.0.1:8000");
    cr_assert_str_eq(json_object_get_string(field(a, "role")), "decode");
    cr_assert_str_eq(json_object_get_string(field(a, "state")), "live");
    cr_assert_str_eq(json_object_get_string(field(a, "health")), "healthy");
    cr_assert(json_object_is_type(field(a, "drained"), json_type_boolean));
    cr_assert(json_object_get_boolean(field(a, "selectable")));
    cr_assert_eq(json_object_get_int64(field(a, "inflight")), 4);
    cr_assert_eq(json_object_get_int64(field(a, "tokens")), 120);
    cr_assert_eq(json_object_get_int64(field(a, "registered_age_ms")), 65000);
    cr_assert_null(field(a, "last_register_age_ms"), "never heartbeated: null, not 0");
    cr_assert_null(field(a, "retired_age_ms"));
    cr_assert_null(field(a, "last_error"));

    json_object *b = json_object_array_get_idx(list, 1);
    cr_assert_str_eq(json_object_get_string(field(b, "state")), "retired");
    cr_assert_not(json_object_get_boolean(field(b, "selectable")));
    cr_assert_eq(json_object_get_int64(field(b, "retired_age_ms")), 3000);
    cr_assert_eq(json_object_get_int64(field(b, "unhealthy_for_ms")), 9000);
    cr_assert_str_eq(json_object_get_string(field(b, "last_error")), "connection refused");
    json_object_put(o);
}

/* Render with `fn` into a string (caller frees). */
static char *render(void (*fn)(FILE *, const void *, unsigned, uint64_t), const void *arg, unsigned n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    fn(f, arg, n, NOW);
    fclose(f);
    return buf;
}

static void table_fn(FILE *f, const void *arg, unsigned n, uint64_t now)
{
    fdctl_instances_table(f, arg, n, now);
}

static void status_fn(FILE *f, const void *arg, unsigned n, uint64_t now)
{
    (void)n;
    fdctl_status_text(f, arg, now);
}

Test(format, table_marks_retired_and_drained)
{
    fdctl_instance_t in[2] = {sample("http://10.0.0.1:8000", SHM_SLOT_LIVE, SHM_HEALTH_HEALTHY),
                              sample("http://10.0.0.2:8000", SHM_SLOT_RETIRED, SHM_HEALTH_HEALTHY)};
    in[0].drained = true;
    char *out = render(table_fn, in, 2);
    cr_assert(strstr(out, "URL") && strstr(out, "INFLIGHT"), "header: %s", out);
    cr_assert(strstr(out, "http://10.0.0.1:8000") && strstr(out, "live,drained"), "%s", out);
    cr_assert(strstr(out, "http://10.0.0.2:8000") && strstr(out, "retired(draining)"), "%s", out);
    cr_assert(strstr(out, "1m05s"), "registered age: %s", out);
    free(out);

    out = render(table_fn, in, 0);
    cr_assert_str_eq(out, "no instances registered\n");
    free(out);
}

static fdctl_status_t sample_status(void)
{
    fdctl_status_t st = {.cp_pid = 100,
                         .cp_alive = false,
                         .cp_started_at_ms = NOW - 10000,
                         .cp_heartbeat_ms = NOW - 2500,
                         .listen_port = 9000,
                         .n_dps = 1,
                         .shm_size = 1 << 20,
                         .layout_version = SHM_LAYOUT_VERSION,
                         .arena_blocks = 256,
                         .arena_used = 3,
                         .instances_live = 2,
                         .table_updated_ms = NOW - 700};
    st.dps[0] = (fdctl_dp_t){.row = 1,
                             .pid = 101,
                             .alive = true,
                             .state = SHM_DP_SERVING,
                             .requests_total = 42,
                             .started_at_ms = NOW - 5000};
    snprintf(st.shm_name, sizeof st.shm_name, "/fd-router-9000");
    st.policy[SHM_ROLE_MIXED] = FD_POL_REQUEST_NUM;
    return st;
}

Test(format, status_json_shape)
{
    fdctl_status_t st = sample_status();
    json_object *o = fdctl_status_json(&st, NOW);
    json_object *cp = field(o, "cp");
    cr_assert_eq(json_object_get_int(field(cp, "pid")), 100);
    cr_assert(json_object_is_type(field(cp, "alive"), json_type_boolean));
    cr_assert_not(json_object_get_boolean(field(cp, "alive")));
    cr_assert_eq(json_object_get_int64(field(cp, "heartbeat_age_ms")), 2500);
    cr_assert_eq(json_object_get_int64(field(cp, "started_at_ms")), (int64_t)(NOW - 10000));
    json_object *dp = field(o, "dp");
    cr_assert_eq(json_object_array_length(dp), 1);
    json_object *d = json_object_array_get_idx(dp, 0);
    cr_assert_eq(json_object_get_int(field(d, "pid")), 101);
    cr_assert_eq(json_object_get_int(field(d, "row")), 1);
    cr_assert_str_eq(json_object_get_string(field(d, "state")), "serving");
    cr_assert_eq(json_object_get_int64(field(d, "requests_total")), 42);
    json_object *shm = field(o, "shm");
    cr_assert_str_eq(json_object_get_string(field(shm, "name")), "/fd-router-9000");
    cr_assert_eq(json_object_get_int64(field(shm, "size")), 1 << 20);
    cr_assert_eq(json_object_get_int64(field(shm, "arena_used")), 3);
    cr_assert_eq(json_object_get_int(field(shm, "instances_live")), 2);
    cr_assert_eq(json_object_get_int64(field(o, "table_age_ms")), 700);
    cr_assert_str_eq(json_object_get_string(field(field(o, "config"), "policy")), "request_num");
    json_object_put(o);
}

Test(format, status_text_says_when_cp_is_down)
{
    fdctl_status_t st = sample_status();
    char *out = render(status_fn, &st, 0);
    cr_assert(strstr(out, "NOT RUNNING"), "%s", out);
    cr_assert(strstr(out, "pid 101 (row 1), serving"), "%s", out);
    cr_assert(strstr(out, "request_num"), "%s", out);
    free(out);
}

/* ---- snapshots of a real segment ---- */

TestSuite(snapshot, .init = seg_setup, .fini = seg_teardown, .timeout = 10.0);

Test(snapshot, shows_live_and_retired_sorted_with_summed_counts)
{
    int b = add_instance(&seg, "http://10.0.0.2:8000", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    int a = add_instance(&seg, "http://10.0.0.1:8000", SHM_ROLE_MIXED, SHM_HEALTH_UNHEALTHY);
    int c = add_instance(&seg, "http://10.0.0.3:8000", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    cr_assert_eq(shm_publish_views(&seg), 0);
    shm_slot_retire(&seg, (unsigned)c, shm_now_ms());
    cr_assert_eq(shm_publish_views(&seg), 0);

    /* two DP rows, each with requests in flight to b: fdctl sums them */
    int r1 = shm_dp_claim(&seg, getpid(), 0);
    int r2 = shm_dp_claim(&seg, getppid(), 0);
    cr_assert(r1 >= 0 && r2 >= 0);
    shm_dp_inc(&seg, r1, (unsigned)b, 10);
    shm_dp_inc(&seg, r2, (unsigned)b, 5);
    shm_dp_inc(&seg, r2, (unsigned)c, 0);

    int reader = shm_reader_register(&seg);
    cr_assert_geq(reader, 0);
    fdctl_instance_t list[8];
    unsigned n = fdctl_snapshot_instances(&seg, reader, list, 8);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(list[0].url, "http://10.0.0.1:8000");
    cr_assert_eq(list[0].slot, (unsigned)a);
    cr_assert_eq(list[0].health, SHM_HEALTH_UNHEALTHY);
    cr_assert_eq(list[1].slot, (unsigned)b);
    cr_assert_eq(list[1].inflight, 2);
    cr_assert_eq(list[1].tokens, 15);
    cr_assert_eq(list[2].slot, (unsigned)c);
    cr_assert_eq(list[2].state, SHM_SLOT_RETIRED);
    cr_assert_eq(list[2].inflight, 1, "a retired slot still draining is shown with its count");
    cr_assert_eq(shm_reader(&seg, (unsigned)reader)->active_epoch, 0, "the read section was left");

    cr_assert_eq(fdctl_snapshot_instances(&seg, reader, list, 1), 1, "bounded by max");
    shm_reader_unregister(&seg, reader);
}

Test(snapshot, status_counts_slots_and_flags_dead_rows)
{
    add_instance(&seg, "http://10.0.0.1:8000", SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    cr_assert_eq(shm_publish_views(&seg), 0);
    int live = shm_dp_claim(&seg, getpid(), 0);
    cr_assert_geq(live, 0);

    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t child = fork();
    if (child == 0) {
        close(fds[1]);
        block_forever(fds[0]);
    }
    close(fds[0]);
    int dead = shm_dp_claim(&seg, child, 0);
    cr_assert_geq(dead, 0);
    kill_and_reap(child);
    close(fds[1]);

    int reader = shm_reader_register(&seg);
    fdctl_status_t st;
    fdctl_snapshot_status(&seg, reader, &st);
    shm_reader_unregister(&seg, reader);
    cr_assert_eq(st.instances_live, 1);
    cr_assert_str_eq(st.shm_name, seg_name);
    cr_assert_eq(st.layout_version, SHM_LAYOUT_VERSION);
    cr_assert_eq(st.arena_blocks, SHM_ARENA_BLOCKS);
    cr_assert_eq(st.n_dps, 2);
    for (unsigned i = 0; i < st.n_dps; i++) {
        if (st.dps[i].row == (unsigned)live)
            cr_assert(st.dps[i].alive);
        else
            cr_assert(!st.dps[i].alive && st.dps[i].pid == child, "a dead, unreaped row is flagged");
    }
    cr_assert_not(st.cp_alive, "no control plane recorded in a bare segment");
}
