/*
 * tests/unit/test_admintoken.c - auth.admin-token-file: reading the file (mode, size, content
 * rules), the config key, and the token comparison.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/admintoken.h"
#include "common/config.h"

static char dir[32], file[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/fdtok-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/token", dir);
}

static void teardown(void)
{
    unlink(file);
    char cfg[80];
    snprintf(cfg, sizeof cfg, "%s/config.yaml", dir);
    unlink(cfg);
    rmdir(dir);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
}

static int read_token(const char *text, mode_t mode, char *tok, char *why)
{
    write_file(file, text, mode);
    return fd_admin_token_read(file, tok, why, 160);
}

TestSuite(admintoken, .init = setup, .fini = teardown);

Test(admintoken, token_is_trimmed)
{
    char tok[FD_ADMIN_TOKEN_MAX], why[160] = "";
    cr_assert_eq(read_token("  s3cret-0123456789abcdef\n\n", 0600, tok, why), 0, "%s", why);
    cr_assert_str_eq(tok, "s3cret-0123456789abcdef");
    cr_assert_eq(read_token("s3cret-0123456789abcdef", 0640, tok, why), 0, "group-readable only warns: %s",
                 why);
}

Test(admintoken, bad_files_are_refused)
{
    char tok[FD_ADMIN_TOKEN_MAX], why[160];
    cr_assert_eq(read_token("s3cret-0123456789abcdef\n", 0604, tok, why), -1);
    cr_assert(strstr(why, "every local user"), "%s", why);
    cr_assert_eq(read_token("short\n", 0600, tok, why), -1);
    cr_assert(strstr(why, "shorter"), "%s", why);
    cr_assert_eq(read_token("two words-0123456789\n", 0600, tok, why), -1);
    cr_assert(strstr(why, "printable"), "%s", why);
    char big[FD_ADMIN_TOKEN_MAX + 8];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(read_token(big, 0600, tok, why), -1);
    cr_assert(strstr(why, "longer"), "%s", why);
    cr_assert_eq(fd_admin_token_read(dir, tok, why, sizeof why), -1);
    cr_assert_str_eq(why, "not a regular file");
}

Test(admintoken, config_key_reads_the_token_or_names_the_problem)
{
    char cfg[80], yaml[200], err[300] = "";
    snprintf(cfg, sizeof cfg, "%s/config.yaml", dir);
    snprintf(yaml, sizeof yaml, "auth:\n  admin-token-file: %s\n", file);
    write_file(cfg, yaml, 0600);
    write_file(file, "s3cret-0123456789abcdef\n", 0600);
    fd_config_t c;
    fd_config_defaults(&c);
    cr_assert_eq(fd_config_load(&c, cfg, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(c.admin_token, "s3cret-0123456789abcdef");
    write_file(file, "s3cret-0123456789abcdef\n", 0644);
    fd_config_defaults(&c);
    cr_assert_eq(fd_config_load(&c, cfg, err, sizeof err), -1);
    cr_assert(strstr(err, "auth.admin-token-file: ") && strstr(err, "every local user"), "%s", err);
    fd_config_defaults(&c);
    cr_assert_str_eq(c.admin_token, "", "no token by default: open, as FastDeploy's router");
}

Test(admintoken, comparison_needs_the_exact_token)
{
    const char *t = "s3cret-0123456789abcdef";
    cr_assert(fd_admin_token_equal(t, t, strlen(t)));
    cr_assert_not(fd_admin_token_equal(t, t, strlen(t) - 1), "a prefix");
    cr_assert_not(fd_admin_token_equal(t, "s3cret-0123456789abcdeg", strlen(t)));
    cr_assert_not(fd_admin_token_equal(t, "s3cret-0123456789abcdefX", strlen(t) + 1), "a longer one");
    cr_assert_not(fd_admin_token_equal(t, "", 0));
}
