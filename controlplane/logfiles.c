/*
 * controlplane/logfiles.c - log.output: file, the Go router's file mode, and log.access-log. The control
 * plane opens
 * ./logs/router.log (relative to its working directory, as the Go router does), passes the path
 * to the data planes it starts (--log_file) so both write the same file, and every
 * log.cleanup-interval-secs deletes the archives older than log.max-age-days, then the oldest
 * while the logs exceed log.max-total-size-mb. Daily rotation happens in common/log.c at the
 * first line of a new day, in whichever process writes it. log.access-log: file is
 * ./logs/access.log beside it, written by the data planes (--access_log), rotated and cleaned up
 * by the same rules.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/logfiles.h"

int cp_logfiles_open(cp_t *cp)
{
    cp->log_file[0] = '\0';
    if (strcmp(cp->cfg.log_output, "file") != 0)
        return 0;
    if (mkdir("logs", 0755) != 0 && errno != EEXIST) {
        LOG_ERROR("Failed to start: cannot create ./logs: %s", strerror(errno));
        return -1;
    }
    char dir[PATH_MAX];
    if (!realpath("logs", dir) ||
        snprintf(cp->log_file, sizeof(cp->log_file), "%s/router.log", dir) >= (int)sizeof(cp->log_file)) {
        LOG_ERROR("Failed to start: cannot resolve ./logs");
        return -1;
    }
    if (fd_log_to_file(cp->log_file) != 0) {
        LOG_ERROR("Failed to start: cannot open %s: %s", cp->log_file, strerror(errno));
        return -1;
    }
    return 0;
}

/* ./logs, created if needed, as an absolute path in dir. */
static int logs_dir(char *dir, char *err, size_t errlen)
{
    if (mkdir("logs", 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create ./logs: %s", strerror(errno));
        return -1;
    }
    if (!realpath("logs", dir)) {
        snprintf(err, errlen, "cannot resolve ./logs: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int cp_access_log_open(cp_t *cp, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    cp->access_log[0] = '\0';
    if (strcmp(cp->cfg.access_log, "stdout") == 0) {
        snprintf(cp->access_log, sizeof(cp->access_log), "-");
    } else if (strcmp(cp->cfg.access_log, "file") == 0) {
        if (logs_dir(dir, err, errlen) != 0)
            return -1;
        if (snprintf(cp->access_log, sizeof(cp->access_log), "%s/access.log", dir) >=
            (int)sizeof(cp->access_log)) {
            snprintf(err, errlen, "path of ./logs/access.log too long");
            cp->access_log[0] = '\0';
            return -1;
        }
        if (fd_access_log_open(cp->access_log) != 0) {
            snprintf(err, errlen, "cannot open %s: %s", cp->access_log, strerror(errno));
            cp->access_log[0] = '\0';
            return -1;
        }
    }
    return 0;
}

static void on_cleanup(cp_timer_t *t)
{
    cp_t *cp = t->data;
    int n = fd_log_cleanup(cp->cfg.log_max_age_days, cp->cfg.log_max_total_size_mb);
    if (n > 0)
        LOG_INFO("log cleanup: removed %d archive(s)", n);
}

int cp_logfiles_start(cp_t *cp)
{
    if (!cp->log_file[0] && strcmp(cp->cfg.access_log, "file") != 0)
        return 0;
    if (cp_timer_init(&cp->log_cleanup_timer, (h2o_loop_t *)cp->loop, on_cleanup, cp) != 0)
        return -1;
    uint64_t period = (uint64_t)(cp->cfg.log_cleanup_interval_secs * 1000.0);
    cp_timer_arm(&cp->log_cleanup_timer, 1, period ? period : 1);
    return 0;
}

void cp_logfiles_stop(cp_t *cp)
{
    cp_timer_dispose(&cp->log_cleanup_timer);
}
