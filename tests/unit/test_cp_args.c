/*
 * tests/unit/test_cp_args.c - fd-router-cp's command line (controlplane/args.c): the Go flag
 * forms the Go router's users may type, and the errors that make main print usage and exit 2.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controlplane/cp.h"

#define ARGV(...) ((char *[]){"fd-router-cp", __VA_ARGS__, NULL})
#define ARGC(v)   ((int)(sizeof(v) / sizeof(v[0])) - 1)

static int parse(int argc, char **argv, cp_args_t *a, char *err)
{
    return cp_args_parse(argc, argv, a, err, 256);
}

Test(cp_args, all_value_flags_and_forms)
{
    char *v[] = {"fd-router-cp",  "--port",           "9000",        "-config_path",        "/etc/r.yaml",
                 "--shm_name=/x", "--control_socket", "/tmp/c.sock", "--dp_binary=/bin/dp", NULL};
    cp_args_t a;
    char err[256];
    cr_assert_eq(parse(ARGC(v), v, &a, err), 0, "%s", err);
    cr_assert_str_eq(a.port, "9000");
    cr_assert_str_eq(a.config_path, "/etc/r.yaml");
    cr_assert_str_eq(a.shm_name, "/x");
    cr_assert_str_eq(a.control_socket, "/tmp/c.sock");
    cr_assert_str_eq(a.dp_binary, "/bin/dp");
    cr_assert(!a.splitwise && !a.rebuild_shm && !a.help && !a.version);
}

Test(cp_args, booleans)
{
    char **v = ARGV("--splitwise", "-rebuild_shm");
    cp_args_t a;
    char err[256];
    cr_assert_eq(parse(2, v, &a, err), 0); /* only the first flag */
    cr_assert(a.splitwise && !a.rebuild_shm);
    cr_assert_eq(parse(3, v, &a, err), 0);
    cr_assert(a.splitwise && a.rebuild_shm);

    char **f = ARGV("--splitwise=false", "--rebuild_shm=true");
    cr_assert_eq(parse(3, f, &a, err), 0);
    cr_assert(!a.splitwise && a.rebuild_shm);

    char **bad = ARGV("--splitwise=maybe");
    cr_assert_eq(parse(2, bad, &a, err), -1);
    cr_assert(strstr(err, "maybe") != NULL, "%s", err);
}

Test(cp_args, help_and_version)
{
    cp_args_t a;
    char err[256];
    cr_assert_eq(parse(2, ARGV("--help"), &a, err), 0);
    cr_assert(a.help);
    cr_assert_eq(parse(2, ARGV("-h"), &a, err), 0);
    cr_assert(a.help);
    cr_assert_eq(parse(2, ARGV("-V"), &a, err), 0);
    cr_assert(a.version);
    cr_assert_eq(parse(2, ARGV("--version"), &a, err), 0);
    cr_assert(a.version);
}

Test(cp_args, errors)
{
    cp_args_t a;
    char err[256];
    cr_assert_eq(parse(2, ARGV("--bogus"), &a, err), -1);
    cr_assert(strstr(err, "--bogus") != NULL, "%s", err);
    cr_assert_eq(parse(2, ARGV("--port"), &a, err), -1);
    cr_assert(strstr(err, "needs an argument") != NULL, "%s", err);
    cr_assert_eq(parse(2, ARGV("stray"), &a, err), -1);
    cr_assert_eq(parse(2, ARGV("-"), &a, err), -1);
    /* a prefix of a flag is not that flag */
    cr_assert_eq(parse(3, ARGV("--por", "1"), &a, err), -1);
}

Test(cp_args, empty_value_is_kept)
{
    cp_args_t a;
    char err[256];
    cr_assert_eq(parse(2, ARGV("--config_path="), &a, err), 0);
    cr_assert_str_eq(a.config_path, "");
}

Test(cp_args, port_values)
{
    cr_assert_eq(cp_parse_port("9000"), 9000);
    cr_assert_eq(cp_parse_port("1"), 1);
    cr_assert_eq(cp_parse_port("65535"), 65535);
    cr_assert_eq(cp_parse_port("0"), 0);
    cr_assert_eq(cp_parse_port("65536"), 0);
    cr_assert_eq(cp_parse_port("-1"), 0);
    cr_assert_eq(cp_parse_port("+80"), 0);
    cr_assert_eq(cp_parse_port("80x"), 0);
    cr_assert_eq(cp_parse_port(""), 0);
    cr_assert_eq(cp_parse_port(NULL), 0);
    cr_assert_eq(cp_parse_port("99999999999999999999"), 0);
}

Test(cp_args, usage_documents_every_flag)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cp_usage(f, "fd-router-cp");
    fclose(f);
    const char *flags[] = {"--port",      "--splitwise",   "--config_path", "--shm_name", "--control_socket",
                           "--dp_binary", "--rebuild_shm", "--version",     "--help"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        cr_expect(strstr(buf, flags[i]) != NULL, "usage lacks %s", flags[i]);
    free(buf);
}
