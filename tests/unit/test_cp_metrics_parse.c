/*
 * tests/unit/test_cp_metrics_parse.c - cp_metrics_parse (controlplane/metrics_poll.c), the pure
 * parser of an instance's Prometheus /metrics page: FastDeploy's three gauges with and without
 * labels (summed over label sets), exponent notation, timestamps, comments, CRLF, look-alike
 * names, quoted label values, and every way a page fails (missing gauge, bad value, non-finite
 * value, broken labels, a body cut short).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "controlplane/cp.h"
#include "controlplane/metrics_poll.h"

static cp_metrics_sample_t s;
static char err[160];

static int parse(const char *text)
{
    memset(&s, 0, sizeof(s));
    err[0] = '\0';
    return cp_metrics_parse(text, strlen(text), &s, err, sizeof(err));
}

static void expect(const char *text, double running, double waiting, double blocks)
{
    cr_assert_eq(parse(text), 0, "error: %s", err);
    cr_assert_float_eq(s.running, running, 1e-9, "running %g", s.running);
    cr_assert_float_eq(s.waiting, waiting, 1e-9, "waiting %g", s.waiting);
    cr_assert_float_eq(s.free_blocks, blocks, 1e-9, "free blocks %g", s.free_blocks);
}

static void expect_error(const char *text, const char *part)
{
    cr_assert_eq(parse(text), -1, "parsed: %g %g %g", s.running, s.waiting, s.free_blocks);
    cr_assert(strstr(err, part) != NULL, "error \"%s\" lacks \"%s\"", err, part);
}

Test(cp_metrics_parse, fastdeploy_page_without_labels)
{
    expect("# HELP fastdeploy:num_requests_running Number of requests currently running.\n"
           "# TYPE fastdeploy:num_requests_running gauge\n"
           "fastdeploy:num_requests_running 7\n"
           "# HELP fastdeploy:num_requests_waiting Number of requests waiting.\n"
           "# TYPE fastdeploy:num_requests_waiting gauge\n"
           "fastdeploy:num_requests_waiting 2\n"
           "# TYPE fastdeploy:available_gpu_block_num gauge\n"
           "fastdeploy:available_gpu_block_num 1500\n",
           7, 2, 1500);
}

Test(cp_metrics_parse, labelled_samples_are_summed_over_label_sets)
{
    expect("fastdeploy:num_requests_running{model_name=\"a\",rank=\"0\"} 3\n"
           "fastdeploy:num_requests_running{model_name=\"a\",rank=\"1\"} 4\n"
           "fastdeploy:num_requests_waiting{model_name=\"a\"} 1\n"
           "fastdeploy:num_requests_waiting{model_name=\"b\"} 0.5\n"
           "fastdeploy:available_gpu_block_num{} 10\n"
           "fastdeploy:available_gpu_block_num 5\n",
           7, 1.5, 15);
}

Test(cp_metrics_parse, exponent_notation_and_signs)
{
    expect("fastdeploy:num_requests_running 1.5e1\n"
           "fastdeploy:num_requests_waiting 2E+0\n"
           "fastdeploy:available_gpu_block_num -3.0e-1\n",
           15, 2, -0.3);
}

Test(cp_metrics_parse, timestamps_blanks_crlf_and_no_final_newline)
{
    expect("\r\n"
           "   fastdeploy:num_requests_running\t4 1700000000000\r\n"
           "fastdeploy:num_requests_waiting   {a=\"1\"}   6\r\n"
           "\t# a comment with fastdeploy:num_requests_running 99\r\n"
           "fastdeploy:available_gpu_block_num 8",
           4, 6, 8);
}

Test(cp_metrics_parse, look_alike_names_and_other_metrics_are_ignored)
{
    expect("fastdeploy:num_requests_running_total 100\n"
           "fastdeploy:num_requests_running_bucket{le=\"+Inf\"} 100\n"
           "xfastdeploy:num_requests_waiting 100\n"
           "num_requests_running 100\n"
           "fastdeploy:time_to_first_token_seconds_bucket{le=\"0.1\"} 12\n"
           "some garbage {{ line that is not a sample\n"
           "fastdeploy:num_requests_running 1\n"
           "fastdeploy:num_requests_waiting 0\n"
           "fastdeploy:available_gpu_block_num 0\n",
           1, 0, 0);
}

Test(cp_metrics_parse, quoted_label_values_may_hold_braces_quotes_and_spaces)
{
    expect("fastdeploy:num_requests_running{path=\"a} b\",q=\"x\\\"y}\",r=\"back\\\\\"} 2\n"
           "fastdeploy:num_requests_waiting{s=\"\\n\"} 3\n"
           "fastdeploy:available_gpu_block_num 4\n",
           2, 3, 4);
}

Test(cp_metrics_parse, a_missing_gauge_fails)
{
    expect_error("fastdeploy:num_requests_running 1\nfastdeploy:num_requests_waiting 0\n",
                 "no fastdeploy:available_gpu_block_num sample");
    expect_error("fastdeploy:num_requests_waiting 0\nfastdeploy:available_gpu_block_num 3\n",
                 "no fastdeploy:num_requests_running sample");
    expect_error("# only comments\n# fastdeploy:num_requests_waiting 1\n", "no fastdeploy:");
    expect_error("", "no fastdeploy:num_requests_running sample");
}

Test(cp_metrics_parse, a_bad_value_of_a_wanted_gauge_fails)
{
    const char *tail = "fastdeploy:num_requests_waiting 0\nfastdeploy:available_gpu_block_num 3\n";
    const char *bad[] = {"abc", "1.5x", "NaN", "+Inf", "-Inf", "1e999", "--1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char text[256];
        snprintf(text, sizeof(text), "fastdeploy:num_requests_running %s\n%s", bad[i], tail);
        expect_error(text, "line 1: bad value");
        cr_assert(strstr(err, bad[i]) != NULL, "%s", err);
    }
}

Test(cp_metrics_parse, malformed_samples_of_a_wanted_gauge_fail)
{
    const char *rest = "fastdeploy:num_requests_running 1\nfastdeploy:available_gpu_block_num 3\n";
    char text[256];
    snprintf(text, sizeof(text), "%sfastdeploy:num_requests_waiting{a=\"1\" 2\n", rest);
    expect_error(text, "line 3: unterminated label set of fastdeploy:num_requests_waiting");
    snprintf(text, sizeof(text), "%sfastdeploy:num_requests_waiting{a=\"1\"}2\n", rest);
    expect_error(text, "line 3: malformed sample of fastdeploy:num_requests_waiting");
    snprintf(text, sizeof(text), "%sfastdeploy:num_requests_waiting\n", rest);
    expect_error(text, "line 3: malformed sample");
    snprintf(text, sizeof(text), "%sfastdeploy:num_requests_waiting \n", rest);
    expect_error(text, "line 3: bad value");
}

Test(cp_metrics_parse, only_len_bytes_are_read)
{
    const char *text = "fastdeploy:num_requests_running 1\n"
                       "fastdeploy:num_requests_waiting 2\n"
                       "fastdeploy:available_gpu_block_num 345\n";
    size_t full = strlen(text);
    cr_assert_eq(cp_metrics_parse(text, full, &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_float_eq(s.free_blocks, 345, 1e-9);
    /* cut inside the last value: the number read is the part within len */
    cr_assert_eq(cp_metrics_parse(text, full - 3, &s, err, sizeof(err)), 0, "%s", err);
    cr_assert_float_eq(s.free_blocks, 3, 1e-9);
    /* cut inside the last name: that gauge is missing */
    cr_assert_eq(cp_metrics_parse(text, full - 10, &s, err, sizeof(err)), -1);
    cr_assert(strstr(err, "available_gpu_block_num") != NULL, "%s", err);
}

Test(cp_metrics_parse, a_long_bad_value_is_shown_truncated)
{
    char text[512];
    char junk[201];
    memset(junk, '9', 200);
    junk[200] = '\0';
    junk[0] = 'x';
    snprintf(text, sizeof(text),
             "fastdeploy:num_requests_running %s\nfastdeploy:num_requests_waiting 0\n"
             "fastdeploy:available_gpu_block_num 1\n",
             junk);
    expect_error(text, "bad value \"x999");
    cr_assert_lt(strlen(err), sizeof(err) - 1, "the reason fits: %s", err);
}
