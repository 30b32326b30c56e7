/*
 * common/log.h - logging in the Go router's line format, so the operators' tooling that parses
 * FastDeploy router logs works on fd-router too:
 *   [LEVEL] YYYY/MM/DD HH:MM:SS file.c:<line>: <message>
 * INFO/WARN/DEBUG go to stdout, ERROR to stderr. Thread-safe (one write(2) per line). Optionally
 * JSON lines instead (log.format: json), and a separate access log (log.access-log).
 */
#ifndef FD_COMMON_LOG_H
#define FD_COMMON_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { FD_LOG_ERROR = 0, FD_LOG_WARN = 1, FD_LOG_INFO = 2, FD_LOG_DEBUG = 3 } fd_log_level_t;

/* "debug" / "info" / "warn"; anything else prints errors only (the Go router's rule). */
void fd_log_set_level_name(const char *name);
void fd_log_set_level(fd_log_level_t lvl);
int fd_log_enabled(fd_log_level_t lvl);
void fd_log_write(fd_log_level_t lvl, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * log.output: file (the Go router's file mode). Every line goes to `path` (appended) instead of
 * stdout/stderr. At the first line of a new day the file is renamed to router-YYYY-MM-DD.log
 * (the day it covers) beside it and a new one is started; several processes may share the file
 * (the CP and its DP): whoever notices the new day first renames, the others reopen. Returns 0,
 * or -1 with errno.
 */
int fd_log_to_file(const char *path);
/* The control plane's periodic clean-up of the archives beside the log file: those older than
 * max_age_days go, then the oldest while all archives and the current file exceed max_total_mb
 * (the current file itself is never deleted). Returns how many were deleted. */
int fd_log_cleanup(int max_age_days, int max_total_mb);

/* log.format: "json" writes every line as one JSON object ({"time","level","file","line","msg"});
 * anything else keeps the Go router's text lines. */
void fd_log_set_format_name(const char *name);

/*
 * The access log (log.access-log): one line per request, already formatted by the caller (JSON,
 * newline included), written with one write(2). fd_access_log_open(path): "-" = stdout, a path =
 * that file, rotated daily to access-YYYY-MM-DD.log beside it and cleaned up by fd_log_cleanup
 * with the router's archives; NULL or "" leaves it off. Returns 0, or -1 with errno.
 */
int fd_access_log_open(const char *path);
bool fd_access_log_enabled(void);
void fd_access_log_write(const char *line, size_t len);

/* JSON string escaping of s[0..len) into out (NUL-terminated, at most cap - 1 bytes, never cut
 * inside an escape); returns the bytes written. */
size_t fd_json_escape(char *out, size_t cap, const char *s, size_t len);

/*
 * Rate-limited lines, for what an attacker or a failing fleet can repeat at request rate ("no
 * selectable instance", a failed poll): at most one line per call site every FD_LOG_LIMIT_MS;
 * the next line that passes ends with "(N similar suppressed)". Lock-free (never waits), no
 * allocation. Process memory only: C11 _Atomic fields used with plain operators (sequentially
 * consistent), so they cannot be mistaken for shared-memory fields, whose atomics are shm/'s.
 * Zero-initialised (static storage) is the initial state.
 */
#define FD_LOG_LIMIT_MS 1000u
typedef struct {
    _Atomic uint64_t last_ms;    /* monotonic ms (+ FD_LOG_LIMIT_MS) of the last line that passed */
    _Atomic uint64_t suppressed; /* lines held back since */
    atomic_flag busy;            /* try-lock of the thread deciding whether a line passes */
} fd_log_limit_t;
void fd_log_write_limited(fd_log_limit_t *lim, fd_log_level_t lvl, const char *file, int line,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define LOG_RATELIMITED(lvl, ...)                                                                            \
    do {                                                                                                     \
        static fd_log_limit_t fd_log_limit_;                                                                 \
        fd_log_write_limited(&fd_log_limit_, lvl, __FILE__, __LINE__, __VA_ARGS__);                          \
    } while (0)

#define LOG_ERROR(...) fd_log_write(FD_LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define LOG_WARN(...)  fd_log_write(FD_LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define LOG_INFO(...)  fd_log_write(FD_LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define LOG_DEBUG(...)                                                                                       \
    do {                                                                                                     \
        if (fd_log_enabled(FD_LOG_DEBUG))                                                                    \
            fd_log_write(FD_LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__);                                     \
    } while (0)

#endif
