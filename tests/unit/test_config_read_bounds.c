/*
 * tests/unit/test_config_read_bounds.c - the request-read bounds of config.yaml (proxy.
 * max-buffered-body-mb, request-header-timeout-secs, request-body-timeout-secs): defaults,
 * ranges, and what fd_config_to_shm publishes to the data plane (the cap never below one
 * largest body).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"

static char path[64];

static int load(const char *yaml, fd_config_t *c, char *err, size_t errlen)
{
    snprintf(path, sizeof path, "/tmp/fdcfg-bounds-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    fd_config_defaults(c);
    int rc = fd_config_load(c, path, err, errlen);
    unlink(path);
    return rc;
}

Test(config_read_bounds, defaults_are_published)
{
    fd_config_t c;
    shm_config_t s;
    fd_config_defaults(&c);
    fd_config_to_shm(&c, &s);
    cr_expect_eq(s.max_buffered_body_bytes, 256ULL << 20);
    cr_expect_eq(s.request_header_timeout_ms, 10000);
    cr_expect_eq(s.request_body_timeout_ms, 10000);
}

Test(config_read_bounds, keys_are_read_and_published)
{
    fd_config_t c;
    shm_config_t s;
    char err[256];
    cr_assert_eq(load("proxy:\n  max-buffered-body-mb: 1024\n  request-header-timeout-secs: 2.5\n"
                      "  request-body-timeout-secs: 30\n",
                      &c, err, sizeof err),
                 0, "%s", err);
    fd_config_to_shm(&c, &s);
    cr_expect_eq(s.max_buffered_body_bytes, 1024ULL << 20);
    cr_expect_eq(s.request_header_timeout_ms, 2500);
    cr_expect_eq(s.request_body_timeout_ms, 30000);
}

Test(config_read_bounds, the_cap_is_never_below_one_body)
{
    fd_config_t c;
    shm_config_t s;
    char err[256];
    cr_assert_eq(load("proxy:\n  max-body-mb: 100\n  max-buffered-body-mb: 10\n", &c, err, sizeof err), 0,
                 "%s", err);
    fd_config_to_shm(&c, &s);
    cr_expect_eq(s.max_buffered_body_bytes, 100ULL << 20);
}

Test(config_read_bounds, out_of_range_values_are_refused)
{
    static const char *bad[] = {
        "proxy:\n  max-buffered-body-mb: 0\n",        "proxy:\n  max-buffered-body-mb: 65536\n",
        "proxy:\n  request-header-timeout-secs: 0\n", "proxy:\n  request-body-timeout-secs: -1\n",
        "proxy:\n  request-body-timeout-secs: x\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fd_config_t c;
        char err[256];
        cr_expect_eq(load(bad[i], &c, err, sizeof err), -1, "accepted: %s", bad[i]);
    }
}
