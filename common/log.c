/*
 * common/log.c - the logger behind LOG_ERROR/LOG_WARN/LOG_INFO/LOG_DEBUG (common/log.h).
 *
 * Lines look exactly like the Go router's (Go's log package with LstdFlags|Lshortfile and a
 * "[LEVEL] " prefix), so operators' log tooling keeps working:
 *   [INFO] 2026/01/05 14:03:07 config.c:120: message
 * or, with log.format: json, one JSON object per line ({"time", "level", "file", "line", "msg"}).
 * Each line is formatted into one bounded buffer and emitted with a single write(2), so lines
 * from concurrent threads (and processes sharing the descriptor) never interleave.
 *
 * The access log (log.access-log) is a second sink of the same kind: one JSON line per request,
 * written by the data plane (dataplane/accesslog.c) to stdout or to its own file beside the
 * router's, rotated and cleaned up by the same rules.
 */
#include "common/log.h"
#include "common/clock.h"

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

static _Atomic int g_level = FD_LOG_INFO; /* process memory: typed atomic, plain operators */
static bool g_json;                       /* log.format: json */

/* A destination of whole lines: stdout/stderr (fd < 0) or a file rotated daily to
 * <prefix>-YYYY-MM-DD.log beside it. */
/* fd and day are read without the lock by every logging thread (typed atomics, plain operators);
 * they change only under it. */
typedef struct {
    _Atomic int fd;
    _Atomic int day; /* yyyymmdd of the lines in the current file */
    const char *prefix;
    char path[PATH_MAX];
    char dir[PATH_MAX];
    pthread_mutex_t lock;
} sink_t;

static sink_t g_file = {.fd = -1, .prefix = "router", .lock = PTHREAD_MUTEX_INITIALIZER};
static sink_t g_access = {.fd = -1, .prefix = "access", .lock = PTHREAD_MUTEX_INITIALIZER};
static bool g_access_on;

static const char *const level_tag[] = {"[ERROR] ", "[WARN] ", "[INFO] ", "[DEBUG] "};

void fd_log_set_level(fd_log_level_t lvl)
{
    g_level = (int)lvl;
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
    return (int)lvl <= g_level;
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

static int sink_open(sink_t *k, const char *path)
{
    int fd = open_log(path);
    if (fd < 0)
        return -1;
    struct stat st;
    pthread_mutex_lock(&k->lock);
    snprintf(k->path, sizeof(k->path), "%s", path);
    snprintf(k->dir, sizeof(k->dir), "%s", path);
    char *slash = strrchr(k->dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(k->dir, sizeof(k->dir), ".");
    /* a file left from an earlier day is archived at the first line of today */
    k->day = fstat(fd, &st) == 0 && st.st_size > 0 ? day_of(st.st_mtime) : day_of(time(NULL));
    if (k->fd >= 0) {
        dup2(fd, k->fd);
        close(fd);
    } else {
        k->fd = fd;
    }
    pthread_mutex_unlock(&k->lock);
    return 0;
}

int fd_log_to_file(const char *path)
{
    return sink_open(&g_file, path);
}

/* A new day: archive the current file unless another process already did, then reopen. */
static void rotate(sink_t *k, int today)
{
    pthread_mutex_lock(&k->lock);
    int day = k->day;
    if (day != today) {
        struct stat mine, at_path;
        bool ours = fstat(k->fd, &mine) == 0 && stat(k->path, &at_path) == 0 &&
                    mine.st_ino == at_path.st_ino && mine.st_dev == at_path.st_dev;
        if (ours) {
            char archive[PATH_MAX + 32];
            snprintf(archive, sizeof(archive), "%s/%s-%04d-%02d-%02d.log", k->dir, k->prefix, day / 10000,
                     day / 100 % 100, day % 100);
            for (int n = 1; access(archive, F_OK) == 0 && n < 100; n++)
                snprintf(archive, sizeof(archive), "%s/%s-%04d-%02d-%02d.%d.log", k->dir, k->prefix,
                         day / 10000, day / 100 % 100, day % 100, n);
            rename(k->path, archive);
        }
        int fd = open_log(k->path);
        if (fd >= 0) { /* same descriptor number: a thread writing right now never hits a reused one */
            dup2(fd, k->fd);
            close(fd);
        }
        k->day = today;
    }
    pthread_mutex_unlock(&k->lock);
}

static void sink_emit(sink_t *k, int std_fd, const char *buf, size_t len, time_t now)
{
    if (k->fd < 0) {
        write_all(std_fd, buf, len);
        return;
    }
    int today = day_of(now);
    if (today != k->day)
        rotate(k, today);
    write_all(k->fd, buf, len);
}

static void emit(fd_log_level_t lvl, const char *buf, size_t len, time_t now)
{
    sink_emit(&g_file, lvl == FD_LOG_ERROR ? STDERR_FILENO : STDOUT_FILENO, buf, len, now);
}

int fd_access_log_open(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return 0;
    if (strcmp(path, "-") != 0 && sink_open(&g_access, path) != 0)
        return -1;
    g_access_on = true;
    return 0;
}

bool fd_access_log_enabled(void)
{
    return g_access_on;
}

void fd_access_log_write(const char *line, size_t len)
{
    sink_emit(&g_access, STDOUT_FILENO, line, len, time(NULL));
}

void fd_log_set_format_name(const char *name)
{
    g_json = name != NULL && strcmp(name, "json") == 0;
}

size_t fd_json_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            k = 4;
            esc[k++] = hex[c >> 4];
            esc[k++] = hex[c & 15];
        } else {
            esc[k++] = (char)c;
        }
        if (n + k >= cap)
            break; /* bounded: cut between characters of the escaped text */
        memcpy(out + n, esc, k);
        n += k;
    }
    if (cap)
        out[n] = '\0';
    return n;
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

static int sink_cleanup(const sink_t *k, int max_age_days, int max_total_mb)
{
    if (k->fd < 0)
        return 0;
    DIR *d = opendir(k->dir);
    if (!d)
        return 0;
    archive_t *list = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        struct stat st;
        char full[PATH_MAX + NAME_MAX + 2];
        size_t plen = strlen(k->prefix);
        snprintf(full, sizeof(full), "%s/%s", k->dir, e->d_name);
        if (strncmp(e->d_name, k->prefix, plen) != 0 || e->d_name[plen] != '-' || len < plen + 5 ||
            strcmp(e->d_name + len - 4, ".log") != 0 || stat(full, &st) != 0 || !S_ISREG(st.st_mode))
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
    if (n > 0) /* list is NULL when there is no archive */
        qsort(list, n, sizeof(*list), by_age);
    struct stat cur;
    long long total = stat(k->path, &cur) == 0 ? cur.st_size : 0;
    for (size_t i = 0; i < n; i++)
        total += list[i].size;
    time_t oldest_kept = time(NULL) - (time_t)max_age_days * 86400;
    int deleted = 0;
    for (size_t i = 0; i < n; i++) {
        bool too_old = list[i].mtime<oldest_kept, too_big = total>(long long) max_total_mb * 1024 * 1024;
        if (!too_old && !too_big)
            break; /* sorted by age: the rest are younger, and the total fits */
        char full[PATH_MAX + NAME_MAX + 2];
        snprintf(full, sizeof(full), "%s/%s", k->dir, list[i].name);
        if (unlink(full) == 0) {
            total -= list[i].size;
            deleted++;
        }
    }
    free(list);
    return deleted;
}

int fd_log_cleanup(int max_age_days, int max_total_mb)
{
    return sink_cleanup(&g_file, max_age_days, max_total_mb) +
           sink_cleanup(&g_access, max_age_days, max_total_mb);
}

static const char *const level_name[] = {"error", "warn", "info", "debug"};

/* log.format: json -
 * {"time":"2026-01-05T14:03:07+0100","level":"info","file":"config.c","line":120,"msg":"..."} */
static void emit_json(fd_log_level_t lvl, const struct tm *tm, const char *file, int line, const char *msg,
                      size_t msglen, time_t now)
{
    char out[2 * LOG_LINE_MAX];
    char when[40];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S%z", tm);
    int n =
        snprintf(out, sizeof(out), "{\"time\":\"%s\",\"level\":\"%s\",\"file\":\"", when, level_name[lvl]);
    size_t len = (size_t)n;
    len += fd_json_escape(out + len, 256, file, strlen(file));
    len += (size_t)snprintf(out + len, sizeof(out) - len, "\",\"line\":%d,\"msg\":\"", line);
    len += fd_json_escape(out + len, sizeof(out) - len - 3, msg, msglen);
    memcpy(out + len, "\"}\n", 3);
    emit(lvl, out, len + 3, now);
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
    size_t len = n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap), msg_off = len;

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
    if (g_json) {
        emit_json(lvl, &tm, base, line, buf + msg_off, len - msg_off, now);
    } else {
        /* Like Go's log package: a newline ends every line. */
        buf[len++] = '\n';
        emit(lvl, buf, len, now);
    }
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
    uint64_t now = fd_mono_coarse_ms() + FD_LOG_LIMIT_MS;
    /* +FD_LOG_LIMIT_MS above: the first line (last_ms 0) always passes, even right after boot */
    if (now - lim->last_ms < FD_LOG_LIMIT_MS) {
        lim->suppressed += 1;
        return;
    }
    /* One thread at a time decides (a test-and-set flag is the try-lock; a loser never waits, its
     * line is suppressed), so exactly one line passes per period however many threads race. */
    bool pass = false;
    if (!atomic_flag_test_and_set(&lim->busy)) {
        if (now - lim->last_ms >= FD_LOG_LIMIT_MS) {
            lim->last_ms = now;
            pass = true;
        }
        atomic_flag_clear(&lim->busy);
    }
    if (!pass) {
        lim->suppressed += 1;
        return;
    }
    unsigned long long n = lim->suppressed;
    lim->suppressed -= n; /* what was added meanwhile stays for the next line */
    va_list ap;
    va_start(ap, fmt);
    write_line(lvl, file, line, n, fmt, ap);
    va_end(ap);
}
