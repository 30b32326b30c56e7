/*
 * tests/unit/test_fdctl_fleet.c - fdctl health's view of the fleet (registry.backend: etcd): the
 * FLEET cell's text, the table's FLEET column (only with a fleet view, aligned whatever the
 * counts), the "hosts disagree" lines under it, --json's "fleet" and "host", what a malformed
 * control-plane answer does to them (nothing worse than a host left out), and the snapshot's
 * copy of the slot's fleet word.
 *
 * fdctl is an executable, not a library the unit tests link: its two non-main sources are
 * compiled into this test directly, as test_fdctl.c does.
 */
#include <json-c/json.h>
#include <stdlib.h>

#include "test_shm_util.h"
#include "tools/fdctl/format.c"
#include "tools/fdctl/snapshot.c"

static const uint64_t T = 1700000000000ull;
static const char *const URL_A = "http://10.0.0.1:8000", *const URL_B = "http://10.0.0.2:8000";

static fdctl_instance_t instance(const char *url, uint32_t health, shm_fleet_health_t fleet)
{
    fdctl_instance_t in = {.state = SHM_SLOT_LIVE, .role = SHM_ROLE_MIXED, .health = health, .fleet = fleet};
    snprintf(in.url, sizeof in.url, "%s", url);
    in.last_check_ms = T - 300;
    return in;
}

/* fdctl health's table for in[0..n) with the control plane's answer reg (caller frees). */
static char *health_table(const fdctl_instance_t *in, unsigned n, json_object *reg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    fdctl_health_table(f, in, n, T, reg);
    fclose(f);
    return buf;
}

/* The line of `out` that starts with `prefix` (a pointer into out, up to its newline). */
static const char *line_of(const char *out, const char *prefix)
{
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, prefix, strlen(prefix)) == 0)
            return l;
    cr_assert_fail("no line starting with %s in:\n%s", prefix, out);
    return NULL;
}

static size_t column_of(const char *line, const char *cell)
{
    const char *end = strchr(line, '\n'), *at = strstr(line, cell);
    cr_assert(at != NULL && (end == NULL || at < end), "%s not on the line: %.*s", cell,
              (int)(end ? end - line : (long)strlen(line)), line);
    return (size_t)(at - line);
}

/* The control plane's /status "registry" answer naming the hosts of a disagreement on URL_B. */
static json_object *registry_answer(const char *self)
{
    return json_tokener_parse(
        self && strcmp(self, "b:9000") == 0
            ? "{\"host\":\"b:9000\",\"health_disagreements\":[{\"url\":\"http://10.0.0.2:8000\","
              "\"here\":\"unhealthy\",\"healthy_on\":[\"a:9000\",\"c:9000\"],"
              "\"unhealthy_on\":[\"b:9000\"]}]}"
            : "{\"host\":\"a:9000\",\"health_disagreements\":[{\"url\":\"http://10.0.0.2:8000\","
              "\"here\":\"healthy\",\"healthy_on\":[\"a:9000\",\"c:9000\"],"
              "\"unhealthy_on\":[\"b:9000\"]}]}");
}

static json_object *member(json_object *o, const char *key)
{
    json_object *v = NULL;
    cr_assert(json_object_object_get_ex(o, key, &v), "missing key %s in %s", key,
              json_object_to_json_string(o));
    return v;
}

Test(fleet_text, counts_and_disagreement)
{
    static const struct {
        shm_fleet_health_t f;
        const char *want;
    } cases[] = {
        {{2, 0, 2}, "healthy on 2 of 2 hosts"},
        {{1, 0, 1}, "healthy on 1 of 1 hosts"},
        {{1, 1, 2}, "healthy on 1 of 2 hosts, unhealthy on 1, DISAGREE"},
        {{0, 3, 3}, "healthy on 0 of 3 hosts, unhealthy on 3"},           /* all agree: unhealthy */
        {{1, 1, 3}, "healthy on 1 of 3 hosts, unhealthy on 1, DISAGREE"}, /* a host without a verdict */
        {{2, 0, 3}, "healthy on 2 of 3 hosts"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[FDCTL_FLEET_TEXT_LEN];
        fdctl_fleet_text(buf, sizeof buf, cases[i].f);
        cr_expect_str_eq(buf, cases[i].want, "case %zu", i);
    }
}

Test(fleet_text, bounded)
{
    char buf[FDCTL_FLEET_TEXT_LEN];
    fdctl_fleet_text(buf, sizeof buf, (shm_fleet_health_t){65535, 65535, 65535});
    cr_assert_str_eq(buf, "healthy on 65535 of 65535 hosts, unhealthy on 65535, DISAGREE",
                     "the longest fits");
}

Test(fleet_table, local_backend_has_no_fleet_column)
{
    fdctl_instance_t in[1] = {instance(URL_A, SHM_HEALTH_HEALTHY, (shm_fleet_health_t){0})};
    char *out = health_table(in, 1, NULL);
    cr_assert_null(strstr(out, "FLEET"), "%s", out);
    cr_assert_null(strstr(out, "hosts"), "%s", out);
    char header[160];
    snprintf(header, sizeof header, "%-40s  %-9s  %6s  %6s  %10s  %s\n", "URL", "HEALTH", "OK", "FAIL",
             "CHECKED", "LAST ERROR");
    cr_assert_eq(strncmp(out, header, strlen(header)), 0, "the local backend's header unchanged:\n%s", out);
    free(out);
}

Test(fleet_table, column_aligned_with_disagreement_named)
{
    fdctl_instance_t in[3] = {instance(URL_A, SHM_HEALTH_HEALTHY, (shm_fleet_health_t){3, 0, 3}),
                              instance(URL_B, SHM_HEALTH_HEALTHY, (shm_fleet_health_t){2, 1, 3}),
                              instance("http://10.0.0.3:8000", SHM_HEALTH_UNKNOWN, (shm_fleet_health_t){0})};
    snprintf(in[1].last_error, sizeof in[1].last_error, "status 503");
    json_object *reg = registry_answer("a:9000");
    char *out = health_table(in, 3, reg);
    const char *header = line_of(out, "URL "), *a = line_of(out, URL_A), *b = line_of(out, URL_B),
               *c = line_of(out, "http://10.0.0.3:8000");
    size_t fleet = column_of(header, "FLEET"), last = column_of(header, "LAST ERROR");
    cr_assert_eq(column_of(a, "healthy on 3 of 3 hosts"), fleet, "%s", out);
    cr_assert_eq(column_of(b, "healthy on 2 of 3 hosts, unhealthy on 1, DISAGREE"), fleet, "%s", out);
    cr_assert_eq(c[fleet], '-', "no fleet view yet: '-'\n%s", out);
    cr_assert_eq(column_of(b, "status 503"), last, "LAST ERROR aligned after the longest FLEET cell:\n%s",
                 out);
    cr_assert_eq(a[last], '-', "%s", out);
    cr_assert_str_eq(line_of(out, "hosts disagree"),
                     "hosts disagree on http://10.0.0.2:8000: healthy on a:9000 (this host), c:9000; "
                     "unhealthy on b:9000\n");
    cr_assert_null(strstr(out, "not named"), "%s", out);
    free(out);
    json_object_put(reg);

    reg = registry_answer("b:9000"); /* the same disagreement seen from the other side */
    out = health_table(in, 3, reg);
    cr_assert(strstr(out, "healthy on a:9000, c:9000; unhealthy on b:9000 (this host)\n"), "%s", out);
    free(out);
    json_object_put(reg);
}

Test(fleet_table, disagreement_without_names)
{
    fdctl_instance_t in[1] = {instance(URL_A, SHM_HEALTH_HEALTHY, (shm_fleet_health_t){1, 1, 2})};
    char *out = health_table(in, 1, NULL);
    cr_assert(strstr(out, "DISAGREE"), "%s", out);
    cr_assert_null(strstr(out, "hosts disagree on"), "%s", out);
    cr_assert(strstr(out, "(hosts of a disagreement not named: no control plane answered)\n"), "%s", out);
    free(out);
    json_object *reg = registry_answer("a:9000"); /* names URL_B's, not this one's */
    out = health_table(in, 1, reg);
    cr_assert(strstr(out, "(hosts of a disagreement not named: not in the control plane's list yet)\n"), "%s",
              out);
    free(out);
    json_object_put(reg);

    fdctl_instance_t agree[1] = {instance(URL_A, SHM_HEALTH_UNHEALTHY, (shm_fleet_health_t){0, 2, 2})};
    out = health_table(agree, 1, NULL);
    cr_assert_null(strstr(out, "DISAGREE"), "all hosts unhealthy is no disagreement: %s", out);
    cr_assert_null(strstr(out, "not named"), "%s", out);
    free(out);
}

Test(fleet_table, malformed_answer_leaves_hosts_out)
{
    fdctl_instance_t in[1] = {instance(URL_B, SHM_HEALTH_HEALTHY, (shm_fleet_health_t){1, 1, 2})};
    static const char *const answers[] = {
        "{\"host\":\"a:9000\",\"health_disagreements\":[{\"url\":\"http://10.0.0.2:8000\","
        "\"healthy_on\":[null,\"a:9000\",7],\"unhealthy_on\":{}}]}",
        "{\"health_disagreements\":[{\"url\":null},{\"url\":5},\"x\",null,{\"url\":\"http://10.0.0.2:8000\","
        "\"healthy_on\":[],\"unhealthy_on\":[\"b:9000\"]}]}",
        "{\"host\":7,\"health_disagreements\":{\"url\":\"http://10.0.0.2:8000\"}}",
    };
    static const char *const want[] = {
        "hosts disagree on http://10.0.0.2:8000: healthy on a:9000 (this host); unhealthy on \n",
        "hosts disagree on http://10.0.0.2:8000: healthy on none; unhealthy on b:9000\n",
        "(hosts of a disagreement not named: not in the control plane's list yet)\n",
    };
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        json_object *reg = json_tokener_parse(answers[i]);
        cr_assert_not_null(reg);
        char *out = health_table(in, 1, reg);
        cr_expect(strstr(out, want[i]), "answer %zu:\n%s", i, out);
        free(out);
        json_object *o = fdctl_health_json(in, 1, T, reg);
        cr_assert_not_null(o);
        cr_expect_eq(json_object_object_get_ex(o, "host", NULL), i == 0,
                     "host only when a string (answer %zu)", i);
        json_object_put(o);
        json_object_put(reg);
    }
}

Test(fleet_json, fields_and_names)
{
    fdctl_instance_t in[3] = {instance(URL_A, SHM_HEALTH_HEALTHY, (shm_fleet_health_t){3, 0, 3}),
                              instance(URL_B, SHM_HEALTH_UNHEALTHY, (shm_fleet_health_t){2, 1, 3}),
                              instance("http://10.0.0.3:8000", SHM_HEALTH_UNKNOWN, (shm_fleet_health_t){0})};
    json_object *reg = registry_answer("b:9000");
    json_object *o = fdctl_health_json(in, 3, T, reg);
    cr_assert_str_eq(json_object_get_string(member(o, "host")), "b:9000");
    json_object *list = member(o, "instances");
    cr_assert_eq(json_object_array_length(list), 3);

    json_object *a = member(json_object_array_get_idx(list, 0), "fleet");
    cr_assert_eq(json_object_get_int(member(a, "healthy_hosts")), 3);
    cr_assert_eq(json_object_get_int(member(a, "unhealthy_hosts")), 0);
    cr_assert_eq(json_object_get_int(member(a, "hosts")), 3);
    cr_assert(json_object_is_type(member(a, "disagree"), json_type_boolean));
    cr_assert_not(json_object_get_boolean(member(a, "disagree")));
    cr_assert_not(json_object_object_get_ex(a, "healthy_on", NULL), "no names for an agreement");

    json_object *b = member(json_object_array_get_idx(list, 1), "fleet");
    cr_assert(json_object_get_boolean(member(b, "disagree")));
    cr_assert_eq(json_object_get_int(member(b, "unhealthy_hosts")), 1);
    cr_assert_str_eq(json_object_to_json_string_ext(member(b, "healthy_on"), JSON_C_TO_STRING_PLAIN),
                     "[\"a:9000\",\"c:9000\"]");
    cr_assert_str_eq(json_object_to_json_string_ext(member(b, "unhealthy_on"), JSON_C_TO_STRING_PLAIN),
                     "[\"b:9000\"]");
    cr_assert_str_eq(json_object_get_string(member(json_object_array_get_idx(list, 1), "health")),
                     "unhealthy");

    cr_assert_not(json_object_object_get_ex(json_object_array_get_idx(list, 2), "fleet", NULL),
                  "no fleet view: no fleet key");
    json_object_put(o);
    json_object_put(reg); /* o held its own references to the names */
}

Test(fleet_json, local_backend_unchanged)
{
    fdctl_instance_t in[1] = {instance(URL_A, SHM_HEALTH_HEALTHY, (shm_fleet_health_t){0})};
    json_object *o = fdctl_health_json(in, 1, T, NULL);
    cr_assert_not(json_object_object_get_ex(o, "host", NULL));
    cr_assert_not(
        json_object_object_get_ex(json_object_array_get_idx(member(o, "instances"), 0), "fleet", NULL));
    json_object_put(o);

    fdctl_instance_t split[1] = {instance(URL_A, SHM_HEALTH_HEALTHY, (shm_fleet_health_t){1, 1, 2})};
    o = fdctl_health_json(split, 1, T, NULL); /* etcd, but no control plane answered */
    json_object *f = member(json_object_array_get_idx(member(o, "instances"), 0), "fleet");
    cr_assert(json_object_get_boolean(member(f, "disagree")));
    cr_assert_not(json_object_object_get_ex(f, "healthy_on", NULL), "names only from the control plane");
    json_object_put(o);
}

TestSuite(fleet_snapshot, .init = seg_setup, .fini = seg_teardown, .timeout = 10.0);

Test(fleet_snapshot, copies_the_slots_fleet_word)
{
    int a = add_instance(&seg, URL_A, SHM_ROLE_MIXED, SHM_HEALTH_HEALTHY);
    add_instance(&seg, URL_B, SHM_ROLE_MIXED, SHM_HEALTH_UNHEALTHY);
    cr_assert_eq(shm_publish_views(&seg), 0);
    shm_slot_fleet_health_set(shm_instance(&seg, (unsigned)a), (shm_fleet_health_t){1, 2, 3});
    int reader = shm_reader_register(&seg);
    cr_assert_geq(reader, 0);
    fdctl_instance_t list[4];
    cr_assert_eq(fdctl_snapshot_instances(&seg, reader, list, 4), 2);
    cr_assert_str_eq(list[0].url, URL_A);
    cr_assert_eq(list[0].fleet.hosts, 3);
    cr_assert_eq(list[0].fleet.healthy, 1);
    cr_assert_eq(list[0].fleet.unhealthy, 2);
    cr_assert_eq(list[1].fleet.hosts, 0, "a slot without a fleet view (the local backend)");
    shm_reader_unregister(&seg, reader);
}
