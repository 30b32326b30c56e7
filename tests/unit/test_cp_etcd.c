/*
 * tests/unit/test_cp_etcd.c - the pure parts of registry.backend: etcd: the registry.* keys of
 * config.yaml (common/config.c) and the endpoint list (controlplane/etcd.c). The protocol itself
 * is exercised against a real etcd by tests/integration/test_etcd.py.
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "controlplane/etcd.h"

static char path[64];

static void cleanup(void)
{
    if (path[0])
        unlink(path);
}

static int load(const char *yaml, fd_config_t *c, char *err, size_t errlen)
{
    snprintf(path, sizeof path, "/tmp/fdetcd-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    fd_config_defaults(c);
    return fd_config_load(c, path, err, errlen);
}

TestSuite(cp_etcd, .fini = cleanup);

Test(cp_etcd, defaults_are_the_local_backend)
{
    fd_config_t c;
    fd_config_defaults(&c);
    cr_assert_str_eq(c.registry_backend, "local");
    cr_assert_str_eq(c.etcd_endpoints, "http://127.0.0.1:2379");
    cr_assert_str_eq(c.etcd_prefix, "/fd-router/default");
    cr_assert_eq(c.etcd_lease_secs, 15);
}

Test(cp_etcd, registry_section_with_a_list_of_endpoints)
{
    fd_config_t c;
    char err[512] = "";
    cr_assert_eq(load("registry:\n  backend: etcd\n  etcd-endpoints: [\"http://10.0.0.1:2379\", "
                      "\"http://10.0.0.2:2379\"]\n  etcd-prefix: /fd-router/prod\n  etcd-lease-secs: 9\n"
                      "  etcd-retry-secs: 0.25\n",
                      &c, err, sizeof err),
                 0, "%s", err);
    cr_assert_str_eq(c.registry_backend, "etcd");
    cr_assert_str_eq(c.etcd_endpoints, "http://10.0.0.1:2379,http://10.0.0.2:2379");
    cr_assert_str_eq(c.etcd_prefix, "/fd-router/prod");
    cr_assert_eq(c.etcd_lease_secs, 9);
    cr_assert_float_eq(c.etcd_retry_secs, 0.25, 1e-9);
    cr_assert_eq(load("registry:\n  etcd-endpoints: http://10.0.0.1:2379, http://10.0.0.2:2379\n", &c, err,
                      sizeof err),
                 0, "%s", err);
    cr_assert_str_eq(c.etcd_endpoints, "http://10.0.0.1:2379, http://10.0.0.2:2379");
}

Test(cp_etcd, bad_registry_values_are_startup_errors)
{
    fd_config_t c;
    char err[512];
    cr_assert_eq(load("registry:\n  backend: zookeeper\n", &c, err, sizeof err), -1);
    cr_assert(strstr(err, "registry.backend: must be local or etcd") != NULL, "%s", err);
    cr_assert_eq(load("registry:\n  etcd-prefix: fleet/\n", &c, err, sizeof err), -1);
    cr_assert(strstr(err, "registry.etcd-prefix") != NULL, "%s", err);
    cr_assert_eq(load("registry:\n  etcd-lease-secs: 1\n", &c, err, sizeof err), -1);
    cr_assert(strstr(err, "registry.etcd-lease-secs") != NULL, "%s", err);
    cr_assert_eq(load("registry:\n  etcd-endpoints: {a: 1}\n", &c, err, sizeof err), -1);
    cr_assert(strstr(err, "registry.etcd-endpoints") != NULL, "%s", err);
}

Test(cp_etcd, endpoints)
{
    struct sockaddr_storage ss[4];
    socklen_t lens[4];
    char names[4][64], err[160];
    cr_assert_eq(cp_etcd_parse_endpoints("http://127.0.0.1:2379, http://[::1]:2380", ss, lens, names, 4, err,
                                         sizeof err),
                 2, "%s", err);
    cr_assert_str_eq(names[0], "http://127.0.0.1:2379");
    cr_assert_eq(ss[0].ss_family, AF_INET);
    cr_assert_eq(ntohs(((struct sockaddr_in *)&ss[0])->sin_port), 2379);
    cr_assert_eq(ss[1].ss_family, AF_INET6);
    cr_assert_eq(ntohs(((struct sockaddr_in6 *)&ss[1])->sin6_port), 2380);
    static const char *const bad[] = {"",
                                      "127.0.0.1:2379",
                                      "https://127.0.0.1:2379",
                                      "http://127.0.0.1",
                                      "http://127.0.0.1:0",
                                      "http://127.0.0.1:99999",
                                      "http://127.0.0.1:23x",
                                      "http://etcd.example:2379",
                                      "http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3,"
                                      "http://127.0.0.1:4,http://127.0.0.1:5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(cp_etcd_parse_endpoints(bad[i], ss, lens, names, 4, err, sizeof err), -1,
                     "accepted '%s'", bad[i]);
}
