/*
 * tests/unit/test_log_limit.c - the rate limiter of LOG_RATELIMITED under a race: however many
 * threads hit one call site at once, exactly one line passes per period and every other call is
 * counted as suppressed (none lost), with the limiter's typed atomics (common/log.h).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

#define THREADS 8
#define CALLS   2000

static fd_log_limit_t lim;
static pthread_barrier_t start;

static void *storm(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&start);
    for (int i = 0; i < CALLS; i++)
        fd_log_write_limited(&lim, FD_LOG_WARN, __FILE__, __LINE__, "storm line");
    return NULL;
}

Test(log_limit, one_line_per_period_and_every_other_call_counted)
{
    char path[] = "/tmp/fdlog-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(fd_log_to_file(path), 0);
    fd_log_set_level(FD_LOG_INFO);
    uint64_t t0 = fd_mono_ms();
    pthread_t t[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, storm, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    uint64_t elapsed = fd_mono_ms() - t0;

    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[512];
    unsigned lines = 0;
    while (fgets(line, sizeof line, f))
        lines += strstr(line, "storm line") != NULL;
    fclose(f);
    unlink(path);
    /* One line per period the storm spanned (it takes far less than one unless the machine is
     * very loaded; +1 for the coarse clock's granularity), and no call lost. */
    cr_assert_geq(lines, 1);
    cr_assert_leq(lines, 1 + (elapsed + 20) / FD_LOG_LIMIT_MS, "%u lines in %llu ms", lines,
                  (unsigned long long)elapsed);
    cr_assert_eq(lines + lim.suppressed, (uint64_t)THREADS * CALLS, "%u lines, %llu suppressed", lines,
                 (unsigned long long)lim.suppressed);
    cr_assert(!atomic_flag_test_and_set(&lim.busy), "the try-lock is free after the storm");
}
