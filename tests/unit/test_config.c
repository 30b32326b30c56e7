/*
 * tests/unit/test_config.c - config.yaml loading (common/config.c), plus the two small helpers
 * it relies on: the Go-format logger (common/log.c) and the default state names (common/names.c).
 *
 * Each test writes its YAML to a private temporary file and checks either the loaded values or
 * the exact "<file>:<line>: <section>.<key>: <reason>" error.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/names.h"

static char tmp_path[64];

static void cleanup(void)
{
    if (tmp_path[0])
        unlink(tmp_path);
}

/* One file at a time: a test that loads several documents removes each before the next. */
static const char *write_yaml(const char *text)
{
    cleanup();
    snprintf(tmp_path, sizeof tmp_path, "/tmp/fdcfg-XXXXXX");
    int fd = mkstemp(tmp_path);
    cr_assert(fd >= 0);
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return tmp_path;
}

static int load(const char *yaml, fd_config_t *c, char *err, size_t errlen)
{
    fd_config_defaults(c);
    return fd_config_load(c, write_yaml(yaml), err, errlen);
}

/* Loading `yaml` fails with exactly "<tmpfile>:<suffix>". */
static void expect_error(const char *yaml, const char *suffix)
{
    fd_config_t c;
    char err[512], want[512];
    cr_assert_eq(load(yaml, &c, err, sizeof err), -1, "accepted: %s", yaml);
    snprintf(want, sizeof want, "%s:%s", tmp_path, suffix);
    cr_assert_str_eq(err, want);
}

/* Run fn with stdout (fd 1) or stderr (fd 2) captured into buf. */
static void capture(int fd, void (*fn)(void), char *buf, size_t len)
{
    char path[] = "/tmp/fdcap-XXXXXX";
    int tmp = mkstemp(path);
    cr_assert(tmp >= 0);
    unlink(path);
    fflush(NULL);
    int saved = dup(fd);
    dup2(tmp, fd);
    fn();
    dup2(saved, fd);
    close(saved);
    ssize_t n = pread(tmp, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    close(tmp);
}

TestSuite(config, .fini = cleanup);

Test(config, defaults_match_the_reference)
{
    fd_config_t c;
    fd_config_defaults(&c);
    cr_assert_eq(c.port, 0u);
    cr_assert_str_eq(c.listen, "0.0.0.0");
    cr_assert_str_eq(c.mode, "release");
    cr_assert_not(c.splitwise);
    cr_assert_str_eq(c.log_level, "info");
    cr_assert_str_eq(c.log_output, "stdout");
    cr_assert_eq(c.log_max_age_days, 7);
    cr_assert_eq(c.log_max_total_size_mb, 500);
    cr_assert_eq(c.log_cleanup_interval_secs, 3600);
    cr_assert_str_eq(c.register_path, "");
    cr_assert_eq(c.health_failure_threshold, 1);
    cr_assert_eq(c.health_success_threshold, 1);
    cr_assert_eq(c.health_check_timeout_secs, 5);
    cr_assert_eq(c.health_check_interval_secs, 5);
    cr_assert_str_eq(c.health_check_endpoint, "/health");
    cr_assert_eq(c.unhealthy_removal_secs, 60);
    cr_assert_eq(c.metrics_poll_interval_secs, 1);
    cr_assert_eq(c.metrics_max_age_secs, 5);
    cr_assert_eq(c.policy, FD_POL_REQUEST_NUM);
    cr_assert_eq(c.prefill_policy, FD_POL_PROCESS_TOKENS);
    cr_assert_eq(c.decode_policy, FD_POL_REQUEST_NUM);
    cr_assert_eq(c.eviction_interval_secs, 60);
    cr_assert_eq(c.eviction_duration_mins, 30);
    cr_assert_eq(c.cache_block_size, 64);
    cr_assert_str_eq(c.tokenizer_url, "");
    cr_assert_eq(c.tokenizer_timeout_secs, 2);
    cr_assert_lt(c.balance_abs_threshold, 0, "unset: no imbalance test (docs/config.md)");
    cr_assert_lt(c.balance_rel_threshold, 0);
    cr_assert_eq(c.instance_cache_tokens, 0, "unset: no capacity rule");
    cr_assert_eq(c.hit_ratio_weight, 1);
    cr_assert_eq(c.load_balance_weight, 1);
    cr_assert_eq(c.waiting_weight, 1);
    cr_assert_eq(c.stats_interval_secs, 5);
    cr_assert_eq(c.connect_timeout_secs, 3);
    cr_assert_eq(c.first_byte_timeout_secs, 600);
    cr_assert_eq(c.idle_timeout_secs, 300);
    cr_assert_eq(c.max_body_mb, 32);
    cr_assert_eq(c.retry_attempts, 3);
    cr_assert_eq(c.dp_threads, 0);
    cr_assert_str_eq(c.shm_name, "");
    cr_assert_str_eq(c.control_socket, "");
    cr_assert_str_eq(c.dp_binary, "");
}

Test(config, empty_file_and_comments_only_are_all_defaults)
{
    fd_config_t c, d;
    char err[256];
    fd_config_defaults(&d);
    cr_assert_eq(load("", &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(memcmp(&c, &d, sizeof c), 0);
    cr_assert_eq(load("# nothing here\n\n", &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(memcmp(&c, &d, sizeof c), 0);
    cr_assert_eq(load("---\n...\n", &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(memcmp(&c, &d, sizeof c), 0);
}

Test(config, no_path_means_defaults)
{
    fd_config_t c;
    char err[64];
    fd_config_defaults(&c);
    cr_assert_eq(fd_config_load(&c, NULL, err, sizeof err), 0);
    cr_assert_eq(fd_config_load(&c, "", err, sizeof err), 0);
    cr_assert_eq(c.cache_block_size, 64);
}

Test(config, every_key_is_read)
{
    fd_config_t c;
    char err[256];
    int rc = load("server:\n"
                  "  name: r1\n"
                  "  port: 9000\n"
                  "  host: 0.0.0.0\n"
                  "  listen: \"::1\"\n"
                  "  mode: debug\n"
                  "  splitwise: true\n"
                  "log:\n"
                  "  level: debug\n"
                  "  output: file\n"
                  "  max-age-days: 3\n"
                  "  max-total-size-mb: 100\n"
                  "  cleanup-interval-secs: 60.5\n"
                  "manager:\n"
                  "  register-path: conf/register.yaml\n"
                  "  health-failure-threshold: 3\n"
                  "  health-success-threshold: 2\n"
                  "  health-check-timeout-secs: 1.5\n"
                  "  health-check-interval-secs: 10\n"
                  "  health-check-endpoint: /healthz\n"
                  "  unhealthy-removal-secs: 0\n"
                  "  metrics-poll-interval-secs: 0.5\n"
                  "  metrics-max-age-secs: 2\n"
                  "scheduler:\n"
                  "  policy: power_of_two\n"
                  "  prefill-policy: cache_aware\n"
                  "  decode-policy: fd_remote_metrics_score\n"
                  "  eviction-interval-secs: 30\n"
                  "  eviction-duration-mins: 5\n"
                  "  cache-block-size: 4\n"
                  "  tokenizer-url: http://127.0.0.1:7000/tokenize\n"
                  "  tokenizer-timeout-secs: 0.25\n"
                  "  balance-abs-threshold: 8\n"
                  "  balance-rel-threshold: 0.5\n"
                  "  hit-ratio-weight: 2\n"
                  "  load-balance-weight: 0.05\n"
                  "  waiting-weight: 10\n"
                  "  stats-interval-secs: 15\n"
                  "proxy:\n"
                  "  connect-timeout-secs: 0.5\n"
                  "  first-byte-timeout-secs: 120\n"
                  "  idle-timeout-secs: 60\n"
                  "  max-body-mb: 64\n"
                  "  retry-attempts: 2\n"
                  "router:\n"
                  "  dp-threads: 4\n"
                  "  shm-name: /fd-test\n"
                  "  control-socket: /tmp/fd-test.sock\n"
                  "  dp-binary: /opt/fd/fd-router-dp\n",
                  &c, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(c.name, "r1");
    cr_assert_eq(c.port, 9000u);
    cr_assert_str_eq(c.host, "0.0.0.0");
    cr_assert_str_eq(c.listen, "::1");
    cr_assert_str_eq(c.mode, "debug");
    cr_assert(c.splitwise);
    cr_assert_str_eq(c.log_level, "debug");
    cr_assert_str_eq(c.log_output, "file");
    cr_assert_eq(c.log_max_age_days, 3);
    cr_assert_eq(c.log_max_total_size_mb, 100);
    cr_assert_eq(c.log_cleanup_interval_secs, 60.5);
    cr_assert_str_eq(c.register_path, "conf/register.yaml");
    cr_assert_eq(c.health_failure_threshold, 3);
    cr_assert_eq(c.health_success_threshold, 2);
    cr_assert_eq(c.health_check_timeout_secs, 1.5);
    cr_assert_eq(c.health_check_interval_secs, 10);
    cr_assert_str_eq(c.health_check_endpoint, "/healthz");
    cr_assert_eq(c.unhealthy_removal_secs, 0);
    cr_assert_eq(c.metrics_poll_interval_secs, 0.5);
    cr_assert_eq(c.metrics_max_age_secs, 2);
    cr_assert_eq(c.policy, FD_POL_POWER_OF_TWO);
    cr_assert_eq(c.prefill_policy, FD_POL_CACHE_AWARE);
    cr_assert_eq(c.decode_policy, FD_POL_FD_REMOTE_METRICS_SCORE);
    cr_assert_eq(c.eviction_interval_secs, 30);
    cr_assert_eq(c.eviction_duration_mins, 5);
    cr_assert_eq(c.cache_block_size, 4);
    cr_assert_str_eq(c.tokenizer_url, "http://127.0.0.1:7000/tokenize");
    cr_assert_eq(c.tokenizer_timeout_secs, 0.25);
    cr_assert_eq(c.balance_abs_threshold, 8);
    cr_assert_eq(c.balance_rel_threshold, 0.5);
    cr_assert_eq(c.hit_ratio_weight, 2);
    cr_assert_eq(c.load_balance_weight, 0.05);
    cr_assert_eq(c.waiting_weight, 10);
    cr_assert_eq(c.stats_interval_secs, 15);
    cr_assert_eq(c.connect_timeout_secs, 0.5);
    cr_assert_eq(c.first_byte_timeout_secs, 120);
    cr_assert_eq(c.idle_timeout_secs, 60);
    cr_assert_eq(c.max_body_mb, 64);
    cr_assert_eq(c.retry_attempts, 2);
    cr_assert_eq(c.dp_threads, 4);
    cr_assert_str_eq(c.shm_name, "/fd-test");
    cr_assert_str_eq(c.control_socket, "/tmp/fd-test.sock");
    cr_assert_str_eq(c.dp_binary, "/opt/fd/fd-router-dp");
}

/* The shipped examples must load: they are what operators copy. */
Test(config, shipped_example_loads)
{
    char root[512], path[600], err[512];
    snprintf(root, sizeof root, "%s", __FILE__);
    char *cut = strstr(root, "tests/unit/test_config.c");
    cr_assert_not_null(cut);
    *cut = '\0';
    snprintf(path, sizeof path, "%sconfigs/config.example.yaml", root);
    fd_config_t c;
    fd_config_defaults(&c);
    cr_assert_eq(fd_config_load(&c, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.port, 8080u);
    cr_assert_eq(c.prefill_policy, FD_POL_CACHE_AWARE);
}

Test(config, go_router_spellings_are_accepted)
{
    fd_config_t c;
    char err[256];
    /* server.port is a string in the Go router; quoted numbers, YAML 1.1 booleans, uppercase level */
    cr_assert_eq(
        load("server:\n  port: \"8080\"\n  splitwise: yes\nlog:\n  level: WARN\n", &c, err, sizeof err), 0,
        "%s", err);
    cr_assert_eq(c.port, 8080u);
    cr_assert(c.splitwise);
    cr_assert_str_eq(c.log_level, "warn");
    const char *truthy[] = {"true", "True", "YES", "on", "On"},
               *falsy[] = {"false", "FALSE", "no", "off", "Off"};
    for (int i = 0; i < 5; i++) {
        char y[64];
        snprintf(y, sizeof y, "server:\n  splitwise: %s\n", truthy[i]);
        cr_assert_eq(load(y, &c, err, sizeof err), 0, "%s", err);
        cr_assert(c.splitwise, "%s", truthy[i]);
        snprintf(y, sizeof y, "server:\n  splitwise: %s\n", falsy[i]);
        cr_assert_eq(load(y, &c, err, sizeof err), 0, "%s", err);
        cr_assert_not(c.splitwise, "%s", falsy[i]);
    }
}

Test(config, zero_is_literal_where_meaningful)
{
    fd_config_t c;
    char err[256];
    cr_assert_eq(
        load("scheduler:\n  balance-abs-threshold: 0\n  balance-rel-threshold: 0\n  hit-ratio-weight: 0\n"
             "  load-balance-weight: 0\n  waiting-weight: 0.0\nrouter:\n  dp-threads: 0\n",
             &c, err, sizeof err),
        0, "%s", err);
    cr_assert_eq(c.balance_abs_threshold, 0);
    cr_assert_eq(c.balance_rel_threshold, 0);
    cr_assert_eq(c.hit_ratio_weight, 0);
    cr_assert_eq(c.load_balance_weight, 0);
    cr_assert_eq(c.waiting_weight, 0);
}

Test(config, null_and_empty_values_keep_defaults)
{
    fd_config_t c;
    char err[256];
    cr_assert_eq(load("server:\n  port: \"\"\n  mode: \"\"\n  splitwise: ''\nscheduler:\n  policy: ~\n  "
                      "cache-block-size: null\n"
                      "manager:\n  health-check-endpoint: ''\nlog:\n",
                      &c, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(c.port, 0u);
    cr_assert_not(c.splitwise);
    cr_assert_str_eq(c.mode, "release");
    cr_assert_eq(c.policy, FD_POL_REQUEST_NUM);
    cr_assert_eq(c.cache_block_size, 64);
    cr_assert_str_eq(c.health_check_endpoint, "/health");
}

Test(config, anchors_and_aliases_resolve)
{
    fd_config_t c;
    char err[256];
    cr_assert_eq(
        load(
            "x-timeouts: &t 7\nmanager:\n  health-check-timeout-secs: *t\n  health-check-interval-secs: *t\n",
            &c, err, sizeof err),
        0, "%s", err);
    cr_assert_eq(c.health_check_timeout_secs, 7);
    cr_assert_eq(c.health_check_interval_secs, 7);
}

Test(config, range_errors_name_file_line_and_key)
{
    expect_error("server:\n  port: 70000\n", "2: server.port: must be in 1..65535, got 70000");
    expect_error("server:\n  port: 0\n", "2: server.port: must be in 1..65535, got 0");
    expect_error("server:\n  port: http\n", "2: server.port: must be an integer, got 'http'");
    expect_error("manager:\n  health-failure-threshold: 0\n",
                 "2: manager.health-failure-threshold: must be in 1..1000, got 0");
    expect_error("manager:\n  health-success-threshold: -2\n",
                 "2: manager.health-success-threshold: must be in 1..1000, got -2");
    expect_error("manager:\n\n  health-check-timeout-secs: -1\n",
                 "3: manager.health-check-timeout-secs: must be > 0, got -1");
    expect_error("manager:\n  health-check-interval-secs: 0\n",
                 "2: manager.health-check-interval-secs: must be >= 0.01, got 0");
    expect_error("manager:\n  unhealthy-removal-secs: -0.5\n",
                 "2: manager.unhealthy-removal-secs: must be >= 0, got -0.5");
    expect_error("scheduler:\n  cache-block-size: 0\n",
                 "2: scheduler.cache-block-size: must be in 1..1048576, got 0");
    expect_error("scheduler:\n  cache-block-size: 2.5\n",
                 "2: scheduler.cache-block-size: must be an integer, got '2.5'");
    expect_error("scheduler:\n  waiting-weight: -1\n", "2: scheduler.waiting-weight: must be >= 0, got -1");
    expect_error("proxy:\n  connect-timeout-secs: 0\n", "2: proxy.connect-timeout-secs: must be > 0, got 0");
    expect_error("proxy:\n  max-body-mb: 4096\n", "2: proxy.max-body-mb: must be in 1..4095, got 4096");
    expect_error("proxy:\n  retry-attempts: 0\n", "2: proxy.retry-attempts: must be in 1..100, got 0");
    expect_error("router:\n  dp-threads: -1\n", "2: router.dp-threads: must be in 0..256, got -1");
    expect_error("log:\n  max-age-days: 0\n", "2: log.max-age-days: must be in 1..2147483647, got 0");
    expect_error("proxy:\n  idle-timeout-secs: 2000000\n",
                 "2: proxy.idle-timeout-secs: must be <= 1e+06, got 2000000");
    expect_error("server:\n  port: 99999999999999999999\n",
                 "2: server.port: must be an integer, got '99999999999999999999'");
}

Test(config, numbers_are_decimal_and_finite)
{
    expect_error("scheduler:\n  hit-ratio-weight: .nan\n",
                 "2: scheduler.hit-ratio-weight: must be a number, got '.nan'");
    expect_error("scheduler:\n  hit-ratio-weight: inf\n",
                 "2: scheduler.hit-ratio-weight: must be a number, got 'inf'");
    expect_error("scheduler:\n  hit-ratio-weight: nan\n",
                 "2: scheduler.hit-ratio-weight: must be a number, got 'nan'");
    expect_error("scheduler:\n  hit-ratio-weight: 0x10\n",
                 "2: scheduler.hit-ratio-weight: must be a number, got '0x10'");
    expect_error("scheduler:\n  hit-ratio-weight: 1e999\n",
                 "2: scheduler.hit-ratio-weight: must be a number, got '1e999'");
    expect_error("scheduler:\n  hit-ratio-weight: \" 1\"\n",
                 "2: scheduler.hit-ratio-weight: must be a number, got ' 1'");
    expect_error("scheduler:\n  cache-block-size: 0x10\n",
                 "2: scheduler.cache-block-size: must be an integer, got '0x10'");
    fd_config_t c;
    char err[256];
    cr_assert_eq(
        load("scheduler:\n  hit-ratio-weight: .5\n  load-balance-weight: 1e-2\n", &c, err, sizeof err), 0);
    cr_assert_eq(c.hit_ratio_weight, 0.5);
    cr_assert_eq(c.load_balance_weight, 0.01);
}

Test(config, wrong_types_and_names)
{
    expect_error("server:\n  splitwise: maybe\n",
                 "2: server.splitwise: must be true/false (or yes/no, on/off), got 'maybe'");
    expect_error("server:\n  port: [1, 2]\n", "2: server.port: expected a single value, found a list");
    expect_error("server:\n  name:\n    a: b\n", "2: server.name: expected a single value, found a mapping");
    expect_error(
        "scheduler:\n  policy: least_loaded\n",
        "2: scheduler.policy: unknown policy 'least_loaded' (known: random, round_robin, power_of_two, "
        "request_num, process_tokens, fd_metrics_score, fd_remote_metrics_score, cache_aware, "
        "remote_cache_aware)");
    expect_error(
        "scheduler:\n  decode-policy: Random\n",
        "2: scheduler.decode-policy: unknown policy 'Random' (known: random, round_robin, power_of_two, "
        "request_num, process_tokens, fd_metrics_score, fd_remote_metrics_score, cache_aware, "
        "remote_cache_aware)");
    expect_error("log:\n  level: verbose\n",
                 "2: log.level: must be debug, info, warn or error, got 'verbose'");
    expect_error("log:\n  output: syslog\n", "2: log.output: must be stdout or file, got 'syslog'");
    expect_error("server:\n  mode: prod\n", "2: server.mode: must be debug, release or test, got 'prod'");
    expect_error("server:\n  listen: example.com\n",
                 "2: server.listen: must be an IPv4 or IPv6 address literal, got 'example.com'");
    expect_error("manager:\n  health-check-endpoint: health\n",
                 "2: manager.health-check-endpoint: must be a path starting with '/', got 'health'");
    expect_error("router:\n  shm-name: fd/x\n",
                 "2: router.shm-name: must look like /name (one leading '/', no other '/'), got 'fd/x'");
    expect_error("server:\n  name: \"a\\0b\"\n", "2: server.name: contains a NUL character");
    char longname[200];
    snprintf(longname, sizeof longname, "server:\n  name: %0100d\n", 7);
    expect_error(longname, "2: server.name: longer than 63 characters");
    char longsock[300];
    snprintf(longsock, sizeof longsock, "router:\n  control-socket: /tmp/%0120d\n", 1);
    expect_error(longsock,
                 "2: router.control-socket: is longer than a unix socket path may be, got '/tmp/"
                 "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                 "000000000000000000000000000000001'");
}

Test(config, structure_errors)
{
    expect_error("server:\n  port: 1\n  port: 2\n", "3: server.port: duplicate key (first set at line 2)");
    expect_error("server:\n  port: 1\nlog: {}\nserver:\n  name: x\n",
                 "4: server: duplicate section (first at line 1)");
    expect_error("server: 8080\n", "1: server: expected a mapping of keys");
    expect_error("- a\n- b\n", "1: expected a mapping of sections (server, log, manager, scheduler, ...)");
    expect_error("server:\n  ? [a, b]\n  : 1\n", "2: server: keys must be plain names");
    expect_error("base: &b {port: 1}\nserver:\n  <<: *b\n", "3: server: merge keys (<<) are not supported");
    expect_error("server: {}\n---\nlog: {}\n", "2: more than one YAML document in the file");
}

Test(config, syntax_errors_have_line_and_column)
{
    fd_config_t c;
    char err[512];
    cr_assert_eq(load("server:\n  port: 8080\n  name: [x\n", &c, err, sizeof err), -1);
    char want[128];
    snprintf(want, sizeof want, "%s:4:1: ", tmp_path);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
    cr_assert_eq(load("server:\n\tport: 1\n", &c, err, sizeof err), -1);
    snprintf(want, sizeof want, "%s:2:1: found character that cannot start any token", tmp_path);
    cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
}

Test(config, nesting_and_size_are_bounded)
{
    char deep[400] = "x: ";
    for (int i = 0; i < 70; i++)
        strcat(deep, "[");
    expect_error(deep, "1: nested deeper than 64 levels");

    /* a billion-laughs document: aliases are never expanded, a known key refuses a list */
    fd_config_t c;
    char err[512];
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                       "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
                       "server:\n  name: *h\n";
    cr_assert_eq(load(bomb, &c, err, sizeof err), -1);
    cr_assert(strstr(err, ":10: server.name: expected a single value, found a list"), "%s", err);

    size_t cap = 300 * 1024, n = 0; /* 150k scalars in one flow list, far below the 1 MiB file limit */
    char *many = malloc(cap);
    n += (size_t)snprintf(many, cap, "x: [a");
    while (n + 8 < cap)
        n += (size_t)snprintf(many + n, cap - n, ",a");
    snprintf(many + n, cap - n, "]\n");
    cr_assert_eq(load(many, &c, err, sizeof err), -1);
    free(many);
    cr_assert(strstr(err, "more than 100000 YAML nodes"), "%s", err);
}

Test(config, missing_file_is_an_error)
{
    fd_config_t c;
    char err[256];
    fd_config_defaults(&c);
    cr_assert_eq(fd_config_load(&c, "/nonexistent/fd-router.yaml", err, sizeof err), -1);
    cr_assert_str_eq(err, "/nonexistent/fd-router.yaml: No such file or directory");
    cr_assert_eq(fd_config_load(&c, "/tmp", err, sizeof err), -1);
    cr_assert_str_eq(err, "/tmp: not a regular file");
}

/* Test(.timeout) fails a loader that waits for a FIFO's writer. */
Test(config, fifo_is_refused_without_blocking, .timeout = 5.0)
{
    char dir[] = "/tmp/fdcfg-fifo-XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    fd_config_t c;
    char err[256];
    fd_config_defaults(&c);
    int rc = fd_config_load(&c, path, err, sizeof err);
    unlink(path);
    rmdir(dir);
    cr_assert_eq(rc, -1);
    cr_assert(strstr(err, "not a regular file"), "%s", err);
}

Test(config, periodic_intervals_have_a_minimum)
{
    expect_error("scheduler:\n  stats-interval-secs: 1e-300\n",
                 "2: scheduler.stats-interval-secs: must be >= 0.01, got 1e-300");
    expect_error("manager:\n  metrics-poll-interval-secs: 0.001\n",
                 "2: manager.metrics-poll-interval-secs: must be >= 0.01, got 0.001");
    expect_error("log:\n  cleanup-interval-secs: 0.000001\n",
                 "2: log.cleanup-interval-secs: must be >= 0.01, got 0.000001");
    expect_error("scheduler:\n  eviction-interval-secs: 0\n",
                 "2: scheduler.eviction-interval-secs: must be >= 0.01, got 0");
    fd_config_t c;
    char err[256];
    cr_assert_eq(load("manager:\n  health-check-interval-secs: 0.01\n", &c, err, sizeof err), 0, "%s", err);
}

Test(config, auth_lists_take_yaml_lists_or_strings)
{
    fd_config_t c;
    char err[256];
    cr_assert_eq(
        load("auth:\n  register-allow: [10.0.0.0/8, \"::1\"]\n  instance-allow: 10.1.0.0/16, 127.0.0.1\n", &c,
             err, sizeof err),
        0, "%s", err);
    cr_assert_eq(c.register_allow.n, 2);
    cr_assert(fd_acl_allows(&c.register_allow, "10.9.9.9"));
    cr_assert(fd_acl_allows(&c.register_allow, "::1"));
    cr_assert_not(fd_acl_allows(&c.register_allow, "11.0.0.1"));
    cr_assert_eq(c.instance_allow.n, 2);
    cr_assert(fd_acl_allows(&c.instance_allow, "127.0.0.1"));
    cr_assert_eq(load("auth:\n  register-allow:\n", &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.register_allow.n, 0, "unset by default: open, as FastDeploy's router");
    expect_error(
        "auth:\n  register-allow: [10.0.0.0/8, 10.0.0.1/8]\n",
        "2: auth.register-allow: \"10.0.0.1/8\" is not an address or CIDR block (address/prefix, host "
        "bits zero)");
    expect_error("auth:\n  instance-allow: {a: 1}\n",
                 "2: auth.instance-allow: expected a list of CIDR blocks, found a mapping");
    expect_error("auth:\n  instance-allow: [[10.0.0.0/8]]\n",
                 "2: auth.instance-allow: list entries must be addresses or CIDR blocks");
}

static void load_with_unknown_keys(void)
{
    fd_config_t c;
    char err[256];
    cr_assert_eq(
        load("server:\n  port: 1\n  colour: red\nextras:\n  a: 1\nscheduler:\n  interval-cleanup-secs: 5\n",
             &c, err, sizeof err),
        0, "%s", err);
}

Test(config, unknown_keys_are_warnings)
{
    char out[4096];
    capture(1, load_with_unknown_keys, out, sizeof out);
    char want[256];
    snprintf(want, sizeof want, " config.c:");
    cr_assert(strstr(out, want), "%s", out);
    snprintf(want, sizeof want, ": %s:3: unknown key server.colour (ignored)\n", tmp_path);
    cr_assert(strstr(out, want), "%s", out);
    snprintf(want, sizeof want, ": %s:4: unknown section extras (ignored)\n", tmp_path);
    cr_assert(strstr(out, want), "%s", out);
    snprintf(want, sizeof want, ": %s:7: scheduler.interval-cleanup-secs is ignored", tmp_path);
    cr_assert(strstr(out, want), "%s", out);
    cr_assert_eq(strncmp(out, "[WARN] ", 7), 0, "%s", out);
}

Test(config, policy_names_round_trip)
{
    for (int p = 0; p < FD_POL_COUNT; p++)
        cr_assert_eq(fd_policy_from_name(fd_policy_name((fd_policy_t)p)), p);
    cr_assert_eq(fd_policy_from_name("fd_metrics_score"), FD_POL_FD_METRICS_SCORE);
    cr_assert_eq(fd_policy_from_name("remote_cache_aware"), FD_POL_REMOTE_CACHE_AWARE);
    cr_assert_eq(fd_policy_from_name("bogus"), -1);
    cr_assert_eq(fd_policy_from_name(NULL), -1);
    cr_assert_str_eq(fd_policy_name(FD_POL_COUNT), "unknown");
}

Test(config, shm_view_is_in_ms_and_bytes)
{
    fd_config_t c;
    char err[256];
    cr_assert_eq(
        load("server:\n  splitwise: on\nscheduler:\n  policy: random\n  prefill-policy: cache_aware\n"
             "  decode-policy: round_robin\n  tokenizer-url: http://t\n  tokenizer-timeout-secs: 0.0001\n"
             "  cache-block-size: 16\n  load-balance-weight: 0.05\n  balance-rel-threshold: 0.2\n"
             "  instance-cache-tokens: 65536\nproxy:\n  connect-timeout-secs: 1.5\n"
             "  max-body-mb: 4095\nmanager:\n  metrics-max-age-secs: 2.5\nrouter:\n  dp-threads: 3\n",
             &c, err, sizeof err),
        0, "%s", err);
    shm_config_t s;
    memset(&s, 0xab, sizeof s);
    fd_config_to_shm(&c, &s);
    cr_assert_eq(s.splitwise, 1u);
    cr_assert_eq(s.policy[SHM_ROLE_MIXED], FD_POL_RANDOM);
    cr_assert_eq(s.policy[SHM_ROLE_PREFILL], FD_POL_CACHE_AWARE);
    cr_assert_eq(s.policy[SHM_ROLE_DECODE], FD_POL_ROUND_ROBIN);
    cr_assert_eq(s.connect_timeout_ms, 1500u);
    cr_assert_eq(s.first_byte_timeout_ms, 600000u);
    cr_assert_eq(s.idle_timeout_ms, 300000u);
    cr_assert_eq(s.max_body_bytes, 4095u * 1024 * 1024);
    cr_assert_eq(s.retry_attempts, 3u);
    cr_assert_eq(s.metrics_max_age_ms, 2500u);
    cr_assert_eq(s.dp_threads, 3u);
    cr_assert_eq(s.cache_block_size, 16u);
    cr_assert_eq(s.load_balance_weight, 0.05);
    cr_assert_eq(s.balance_rel_threshold, 0.2);
    cr_assert_lt(s.balance_abs_threshold, 0, "the unset one stays unset");
    cr_assert_eq(s.instance_cache_tokens, 65536u);
    cr_assert_str_eq(s.tokenizer_url, "http://t");
    cr_assert_eq(s.tokenizer_timeout_ms, 1u, "a positive timeout never becomes 0 ms");
    cr_assert_eq(s.new_prefix_by_hash, SHM_PLACE_BY_HASH_WHEN_SHARED,
                 "auto with the local registry: by hash only while others share the instances");
}

/* scheduler.new-prefix-placement: auto is by hash when the registry is etcd (several router
 * hosts), else by hash only while the instances report other senders; an explicit value wins
 * either way. */
Test(config, new_prefix_placement_resolves_auto_by_the_registry)
{
    static const struct {
        const char *yaml;
        unsigned want;
    } cases[] = {
        {"scheduler:\n  policy: cache_aware\n", SHM_PLACE_BY_HASH_WHEN_SHARED},
        {"registry:\n  backend: etcd\n", 1},
        {"scheduler:\n  new-prefix-placement: HASH\n", 1},
        {"scheduler:\n  new-prefix-placement: load\nregistry:\n  backend: etcd\n", 0},
        {"scheduler:\n  new-prefix-placement: auto\nregistry:\n  backend: etcd\n", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fd_config_t c;
        char err[256];
        cr_assert_eq(load(cases[i].yaml, &c, err, sizeof err), 0, "%s", err);
        shm_config_t s;
        fd_config_to_shm(&c, &s);
        cr_assert_eq(s.new_prefix_by_hash, cases[i].want, "case %zu", i);
    }
    expect_error("scheduler:\n  new-prefix-placement: ring\n",
                 "2: scheduler.new-prefix-placement: must be auto, load or hash, got 'ring'");
}

/* ---- log.c ---- */

static void log_some(void)
{
    fd_log_set_level(FD_LOG_INFO);
    LOG_INFO("hello %d", 42);
    LOG_DEBUG("not shown");
    LOG_WARN("ends with newline\n");
    LOG_ERROR("to stderr");
}

Test(log, go_line_format_on_stdout)
{
    char out[1024];
    capture(1, log_some, out, sizeof out);
    regex_t re;
    cr_assert_eq(
        regcomp(&re,
                "^\\[INFO\\] [0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} test_config\\.c:[0-9]+: "
                "hello 42\n"
                "\\[WARN\\] [0-9/]{10} [0-9:]{8} test_config\\.c:[0-9]+: ends with newline\n$",
                REG_EXTENDED),
        0);
    cr_assert_eq(regexec(&re, out, 0, NULL, 0), 0, "got: %s", out);
    regfree(&re);
}

Test(log, errors_go_to_stderr)
{
    char err[1024];
    capture(2, log_some, err, sizeof err);
    cr_assert_eq(strncmp(err, "[ERROR] ", 8), 0, "%s", err);
    cr_assert(strstr(err, " test_config.c:"), "%s", err);
    const char *tail = ": to stderr\n";
    cr_assert_str_eq(err + strlen(err) - strlen(tail), tail);
    cr_assert_null(strstr(err, "hello"));
}

static void log_levels(void)
{
    fd_log_set_level_name("warn");
    LOG_INFO("info-hidden");
    LOG_WARN("warn-shown");
    fd_log_set_level_name("error"); /* the Go router: anything but debug/info/warn keeps errors only */
    LOG_WARN("warn-hidden");
    fd_log_set_level_name("debug");
    LOG_DEBUG("debug-shown");
    fd_log_set_level_name("INFO"); /* exact names only, as in Go */
    LOG_INFO("info-hidden-2");
}

Test(log, levels_filter)
{
    char out[2048];
    capture(1, log_levels, out, sizeof out);
    cr_assert(strstr(out, "warn-shown"));
    cr_assert(strstr(out, "[DEBUG] "));
    cr_assert(strstr(out, "debug-shown"));
    cr_assert_null(strstr(out, "hidden"), "%s", out);
    cr_assert_not(fd_log_enabled(FD_LOG_WARN));
    cr_assert(fd_log_enabled(FD_LOG_ERROR));
}

static void log_long(void)
{
    static char big[20000];
    memset(big, 'x', sizeof big - 1);
    LOG_INFO("%s", big);
}

static void log_storm(void)
{
    for (int i = 0; i < 1000; i++)
        LOG_RATELIMITED(FD_LOG_ERROR, "no selectable instance %d", i);
    struct timespec ts = {.tv_sec = FD_LOG_LIMIT_MS / 1000, .tv_nsec = 50 * 1000000L};
    nanosleep(&ts, NULL); /* the limiter's window is wall time by design */
    LOG_RATELIMITED(FD_LOG_ERROR, "never shown: another call site");
    for (int i = 0; i < 3; i++)
        LOG_RATELIMITED(FD_LOG_ERROR, "site two %d\n", i);
}

Test(log, repeated_lines_are_rate_limited_with_a_count)
{
    static char out[8192];
    capture(2, log_storm, out, sizeof out);
    cr_assert(strstr(out, "no selectable instance 0\n"), "%s", out);
    cr_assert_null(strstr(out, "no selectable instance 1"), "%s", out);
    cr_assert(strstr(out, "never shown: another call site\n"), "each call site has its own window: %s", out);
    cr_assert(strstr(out, "site two 0\n"), "%s", out);
    cr_assert_null(strstr(out, "site two 1"), "%s", out);
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    cr_assert_eq(lines, 3, "%s", out);
}

static void log_after_storm(void)
{
    for (int i = 0; i < 5; i++)
        LOG_RATELIMITED(FD_LOG_ERROR, "poll failed %d", i);
    struct timespec ts = {.tv_sec = FD_LOG_LIMIT_MS / 1000, .tv_nsec = 50 * 1000000L};
    nanosleep(&ts, NULL);
}

static void log_storm_site(void)
{
    for (int i = 0; i < 2; i++)
        log_after_storm();
}

Test(log, the_next_line_counts_what_was_suppressed)
{
    static char out[8192];
    capture(2, log_storm_site, out, sizeof out);
    cr_assert(strstr(out, "poll failed 0\n"), "%s", out);
    cr_assert(strstr(out, "poll failed 0 (4 similar suppressed)\n"), "%s", out);
}

Test(log, long_lines_are_truncated_in_one_line)
{
    static char out[32768];
    capture(1, log_long, out, sizeof out);
    size_t n = strlen(out);
    cr_assert(n > 1000 && n <= 8192, "%zu", n);
    cr_assert_eq(out[n - 1], '\n');
    cr_assert_eq(strchr(out, '\n'), out + n - 1);
    cr_assert_eq(strncmp(out + n - 4, "...", 3), 0);
}

/* ---- names.c ---- */

Test(names, control_socket_follows_runtime_dir)
{
    char p[256];
    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    fd_default_control_socket(p, sizeof p, 9000);
    cr_assert_str_eq(p, "/run/user/1000/fd-router-9000.sock");
    unsetenv("XDG_RUNTIME_DIR");
    fd_default_control_socket(p, sizeof p, 8080);
    char want[96];
    if (access("/run", W_OK | X_OK) == 0)
        snprintf(want, sizeof want, "/run/fd-router-8080.sock");
    else
        snprintf(want, sizeof want, "/tmp/fd-router-%u/fd-router-8080.sock", (unsigned)geteuid());
    cr_assert_str_eq(p, want);
    setenv("XDG_RUNTIME_DIR", "relative/dir", 1); /* the XDG spec says to ignore a relative path */
    fd_default_control_socket(p, sizeof p, 8080);
    cr_assert_str_eq(p, want);
}

Test(names, control_socket_in_the_units_runtime_directory)
{
    char dir[64], p[256];
    unsigned port = 61000 + (unsigned)(getpid() % 4000);
    snprintf(dir, sizeof dir, "/run/fd-router-%u", port);
    if (mkdir(dir, 0755) != 0)
        cr_skip_test("cannot create %s (not root?)", dir);
    fd_default_control_socket(p, sizeof p, port);
    rmdir(dir);
    char want[96];
    snprintf(want, sizeof want, "%s/control.sock", dir);
    cr_assert_str_eq(p, want, "fdctl must find the socket of the systemd unit's control plane");
}

/* The /tmp fallback directory: created private, refused when another user could have made it
 * (here: opened to others, or replaced by a symlink). Paths elsewhere are left alone. */
Test(names, private_tmp_dir_is_created_and_checked)
{
    char dir[64], sock[128], err[400] = "";
    fd_private_tmp_dir(dir, sizeof dir);
    snprintf(sock, sizeof sock, "%s/fd-router-1.sock", dir);
    struct stat st;
    bool existed = lstat(dir, &st) == 0;
    cr_assert_eq(fd_prepare_socket_dir(sock, err, sizeof err), 0, "%s", err);
    cr_assert_eq(lstat(dir, &st), 0);
    cr_assert(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700 && st.st_uid == geteuid());
    cr_assert_eq(chmod(dir, 0777), 0);
    int rc = fd_prepare_socket_dir(sock, err, sizeof err);
    cr_assert_eq(chmod(dir, 0700), 0);
    cr_assert_eq(rc, -1);
    cr_assert(strstr(err, "not a private directory"), "%s", err);
    if (!existed) {
        cr_assert_eq(rmdir(dir), 0);
        cr_assert_eq(symlink("/tmp", dir), 0);
        rc = fd_prepare_socket_dir(sock, err, sizeof err);
        unlink(dir);
        cr_assert_eq(rc, -1, "a symlink is refused, not followed");
    }
    cr_assert_eq(fd_prepare_socket_dir("/tmp/fd-router-elsewhere.sock", err, sizeof err), 0);
}

/* ---- log.output: file ---- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void remove_dir(const char *dir)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static void set_mtime(const char *path, time_t t)
{
    struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};
    cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
}

Test(logfile, lines_go_to_the_file_and_a_new_day_archives_it)
{
    char dir[] = "/tmp/fdlogXXXXXX", path[128], archive[160];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/router.log", dir);
    FILE *f = fopen(path, "w");
    fputs("[INFO] yesterday's line\n", f);
    fclose(f);
    time_t yesterday = time(NULL) - 86400;
    set_mtime(path, yesterday);
    cr_assert_eq(fd_log_to_file(path), 0);
    LOG_ERROR("today %d", 42);
    struct tm tm;
    localtime_r(&yesterday, &tm);
    snprintf(archive, sizeof archive, "%s/router-%04d-%02d-%02d.log", dir, tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday);
    char *old = slurp(archive);
    cr_assert_not_null(old, "yesterday's file archived as %s", archive);
    cr_assert(strstr(old, "yesterday's line") && !strstr(old, "today 42"));
    char *cur = slurp(path);
    cr_assert(cur && strstr(cur, ": today 42\n") && strncmp(cur, "[ERROR] ", 8) == 0, "%s",
              cur ? cur : "(none)");
    cr_assert_null(strstr(cur, "yesterday"));
    remove_dir(dir);
}

Test(logfile, cleanup_by_age_then_total_size)
{
    char dir[] = "/tmp/fdlogXXXXXX", path[128], p[160];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/router.log", dir);
    cr_assert_eq(fd_log_to_file(path), 0);
    LOG_ERROR("current");
    time_t now = time(NULL);
    const int ages[] = {20, 5, 3, 1}; /* days */
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/router-2026-01-%02d.log", dir, 10 + i);
        FILE *f = fopen(p, "w");
        for (int k = 0; k < 600 * 1024; k++)
            fputc('x', f);
        fclose(f);
        set_mtime(p, now - ages[i] * 86400);
    }
    snprintf(p, sizeof p, "%s/other.log", dir);
    fclose(fopen(p, "w"));
    /* max age 7 days: the 20-day one goes; then 3 x 600 KiB > 1 MiB: the oldest go until it fits */
    cr_assert_eq(fd_log_cleanup(7, 1), 3);
    snprintf(p, sizeof p, "%s/router-2026-01-13.log", dir);
    cr_assert_eq(access(p, F_OK), 0, "the newest archive stays");
    snprintf(p, sizeof p, "%s/router-2026-01-11.log", dir);
    cr_assert_neq(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/other.log", dir);
    cr_assert_eq(access(p, F_OK), 0, "only router archives are touched");
    cr_assert_eq(access(path, F_OK), 0, "the current file is never deleted");
    remove_dir(dir);
}
