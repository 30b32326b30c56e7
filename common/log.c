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

#include <stdbool.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192

static int g_level = FD_LOG_INFO;

/* file mode (fd_log_to_file); g_file < 0 = stdout/stderr */
static struct {
    int fd;
    int day; /* yyyymmdd of the lines in the current file */
    char path[PATH_MAX];
    char dir[PATH_MAX];
    pthread_mutex_t lock;
} g_file = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

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

static int day_of(time_t t)
{
    struct tm tm;
    localtime_r(&t, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int fd_log_to_file(const char *path)
{
    int fd = open_log(path);
    if (fd < 0)
        return -1;
    struct stat st;
    pthread_mutex_lock(&g_file.lock);
    snprintf(g_file.path, sizeof(g_file.path), "%s", path);
    snprintf(g_file.dir, sizeof(g_file.dir), "%s", path);
    char *slash = strrchr(g_file.dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(g_file.dir, sizeof(g_file.dir), ".");
    /* a file left from an earlier day is archived at the first line of today */
    g_file.day = fstat(fd, &st) == 0 && st.st_size > 0 ? day_of(st.st_mtime) : day_of(time(NULL));
    if (g_file.fd >= 0) {
        dup2(fd, g_file.fd);
        close(fd);
    } else {
        __atomic_store_n(&g_file.fd, fd, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&g_file.lock);
    return 0;
}

/* A new day: archive the current file unless another process already did, then reopen. */
static void rotate(int today)
{
    pthread_mutex_lock(&g_file.lock);
    if (g_file.day != today) {
        struct stat mine, at_path;
        bool ours = fstat(g_file.fd, &mine) == 0 && stat(g_file.path, &at_path) == 0 &&
                    mine.st_ino == at_path.st_ino && mine.st_dev == at_path.st_dev;
        if (ours) {
            char archive[PATH_MAX + 32];
            snprintf(archive, sizeof(archive), "%s/router-%04d-%02d-%02d.log", g_file.dir, g_file.day / 10000,
                     g_file.day / 100 % 100, g_file.day % 100);
            for (int k = 1; access(archive, F_OK) == 0 && k < 100; k++)
                snprintf(archive, sizeof(archive), "%s/router-%04d-%02d-%02d.%d.log", g_file.dir,
                         g_file.day / 10000, g_file.day / 100 % 100, g_file.day % 100, k);
            rename(g_file.path, archive);
        }
        int fd = open_log(g_file.path);
        if (fd >= 0) { /* same descriptor number: a thread writing right now never hits a reused one */
            dup2(fd, g_file.fd);
            close(fd);
        }
        __atomic_store_n(&g_file.day, today, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&g_file.lock);
}

static void emit(fd_log_level_t lvl, const char *buf, size_t len, time_t now)
{
    if (__atomic_load_n(&g_file.fd, __ATOMIC_ACQUIRE) < 0) {
        write_all(lvl == FD_LOG_ERROR ? STDERR_FILENO : STDOUT_FILENO, buf, len);
        return;
    }
    int today = day_of(now);
    if (today != __atomic_load_n(&g_file.day, __ATOMIC_RELAXED))
        rotate(today);
    write_all(__atomic_load_n(&g_file.fd, __ATOMIC_ACQUIRE), buf, len);
}

typedef struct {
    char name[NAME_MAX + 1];
    time_t mtime;
    off_t size;
} archive_t;

static int by_age(const void *a, const void *b)
{
    const archive_t *x = a, *y = b;
    return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

int fd_log_cleanup(int max_age_days, int max_total_mb)
{
    if (g_file.fd < 0)
        return 0;
    DIR *d = opendir(g_file.dir);
    if (!d)
        return 0;
    archive_t *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        struct stat st;
        char full[PATH_MAX + NAME_MAX + 2];
        snprintf(full, sizeof(full), "%s/%s", g_file.dir, e->d_name);
        if (strncmp(e->d_name, "router-", 7) != 0 || len < 11 || strcmp(e->d_name + len - 4, ".log") != 0 ||
            stat(full, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            archive_t *grown = realloc(list, (cap = cap ? cap * 2 : 16) * sizeof(*list));
            if (!grown)
                break;
            list = grown;
        }
        snprintf(list[n].name, sizeof(list[n].name), "%s", e->d_name);
        list[n].mtime = st.st_mtime;
        list[n++].size = st.st_size;
    }
    closedir(d);
    qsort(list, n, sizeof(*list), by_age);
    struct stat cur;
    long long total = stat(g_file.path, &cur) == 0 ? cur.st_size : 0;
    for (size_t i = 0; i < n; i++)
        total += list[i].size;
    time_t oldest_kept = time(NULL) - (time_t)max_age_days * 86400;
    int deleted = 0;
    for (size_t i = 0; i < n; i++) {
        bool too_old = list[i].mtime<oldest_kept, too_big = total>(long long) max_total_mb * 1024 * 1024;
        if (!too_old && !too_big)
            break; /* sorted by age: the rest are younger, and the total fits */
        char full[PATH_MAX + NAME_MAX + 2];
        snprintf(full, sizeof(full), "%s/%s", g_file.dir, list[i].name);
        if (unlink(full) == 0) {
            total -= list[i].size;
            deleted++;
        }
    }
    free(list);
    return deleted;
}

static void write_line(fd_log_level_t lvl, const char *file, int line, unsigned long long suppressed,
                       const char *fmt, va_list ap)
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

    char tail[48] = "";
    if (suppressed)
        snprintf(tail, sizeof tail, " (%llu similar suppressed)", suppressed);
    size_t room = cap - len - strlen(tail);
    int m = vsnprintf(buf + len, room + 1, fmt, ap);
    if (m > 0 && (size_t)m > room) {
        len += room; /* truncated: mark it visibly */
        memcpy(buf + len - 3, "...", 3);
    } else if (m > 0) {
        len += (size_t)m;
    }
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    memcpy(buf + len, tail, strlen(tail));
    len += strlen(tail);
    /* Like Go's log package: a newline ends every line. */
    buf[len++] = '\n';
    emit(lvl, buf, len, now);
    errno = saved_errno;
}

void fd_log_write(fd_log_level_t lvl, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line(lvl, file, line, 0, fmt, ap);
    va_end(ap);
}

void fd_log_write_limited(fd_log_limit_t *lim, fd_log_level_t lvl, const char *file, int line,
                          const char *fmt, ...)
{
    if (!fd_log_enabled(lvl))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + FD_LOG_LIMIT_MS;
    uint64_t last = __atomic_load_n(&lim->last_ms, __ATOMIC_RELAXED);
    /* +FD_LOG_LIMIT_MS above: the first line (last_ms 0) always passes, even right after boot */
    if (now - last < FD_LOG_LIMIT_MS ||
        !__atomic_compare_exchange_n(&lim->last_ms, &last, now, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
        __atomic_fetch_add(&lim->suppressed, 1, __ATOMIC_RELAXED);
        return;
    }
    unsigned long long n = __atomic_exchange_n(&lim->suppressed, 0, __ATOMIC_RELAXED);
    va_list ap;
    va_start(ap, fmt);
    write_line(lvl, file, line, n, fmt, ap);
    va_end(ap);
}
