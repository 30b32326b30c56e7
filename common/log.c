/*
 * common/log.c - the logger behind LOG_ERROR/LOG_WARN/LOG_INFO/LOG_DEBUG (common/log.h).
 *
 * Lines look exactly like the Go router's (Go's log package with LstdFlags|Lshortfile and a
 * "[LEVEL] " prefix), so operators' log tooling keeps working:
 *   [INFO] 2026/01/05 14:03:07 config.c:120: message
 * Each line is formatted into one bounded buffer and emitted with a single write(2), so lines
 * from concurrent threads (and processes sharing the descriptor) never interleave.
 */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192

static int g_level = FD_LOG_INFO;

static const char *const level_tag[] = {"[ERROR] ", "[WARN] ", "[INFO] ", "[DEBUG] "};

void fd_log_set_level(fd_log_level_t lvl)
{
    __atomic_store_n(&g_level, (int)lvl, __ATOMIC_RELAXED);
}

/* The Go router compares the level name exactly; anything unknown (e.g. "error") keeps errors only. */
void fd_log_set_level_name(const char *name)
{
    fd_log_level_t lvl = FD_LOG_ERROR;
    if (name && strcmp(name, "debug") == 0)
        lvl = FD_LOG_DEBUG;
    else if (name && strcmp(name, "info") == 0)
        lvl = FD_LOG_INFO;
    else if (name && strcmp(name, "warn") == 0)
        lvl = FD_LOG_WARN;
    fd_log_set_level(lvl);
}

int fd_log_enabled(fd_log_level_t lvl)
{
    return (int)lvl <= __atomic_load_n(&g_level, __ATOMIC_RELAXED);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

void fd_log_write(fd_log_level_t lvl, const char *file, int line, const char *fmt, ...)
{
    if (lvl < FD_LOG_ERROR || lvl > FD_LOG_DEBUG || !fd_log_enabled(lvl))
        return;
    int saved_errno = errno; /* callers often log and then inspect errno */

    char buf[LOG_LINE_MAX];
    const size_t cap = sizeof buf - 1; /* room for the newline after a full line */
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    const char *base = file ? strrchr(file, '/') : NULL;
    base = base ? base + 1 : (file ? file : "?");

    int n =
        snprintf(buf, cap + 1, "%s%04d/%02d/%02d %02d:%02d:%02d %s:%d: ", level_tag[lvl], tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, base, line);
    size_t len = n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap);

    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + len, cap + 1 - len, fmt, ap);
    va_end(ap);
    if (m > 0 && (size_t)m > cap - len) {
        len = cap; /* truncated: mark it visibly */
        memcpy(buf + len - 3, "...", 3);
    } else if (m > 0) {
        len += (size_t)m;
    }
    /* Like Go's log package: a newline is added unless the message ends with one. */
    if (len == 0 || buf[len - 1] != '\n')
        buf[len++] = '\n';
    write_all(lvl == FD_LOG_ERROR ? STDERR_FILENO : STDOUT_FILENO, buf, len);
    errno = saved_errno;
}
