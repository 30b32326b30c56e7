/*
 * shm/proc.c - process identity and liveness for the shared-memory core.
 *
 * Reader slots and DP rows remember {pid, start time}. A pid alone is not an identity: after a
 * process dies its pid can be reused, so the start time (field 22 of /proc/<pid>/stat, in clock
 * ticks since boot) tells the original process from a newcomer. A zombie (killed but not yet
 * waited for by its parent) still answers kill(pid, 0), so its state letter counts as dead too.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm/shm.h"

typedef struct {
    char state;          /* field 3 */
    uint64_t start_time; /* field 22 */
} proc_stat_t;

/* Parse /proc/<pid>/stat. The command name (field 2) may contain spaces and ')', so fields are
 * counted from the LAST ')'. Returns false if the process does not exist or the file is odd. */
static bool read_proc_stat(int pid, proc_stat_t *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || p[2] == '\0')
        return false;
    out->state = p[2];
    p += 2; /* at field 3 */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return false;
        p++;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || end == p)
        return false;
    out->start_time = v;
    return true;
}

uint64_t shm_proc_start_time(int pid)
{
    proc_stat_t st;
    if (pid <= 0 || !read_proc_stat(pid, &st))
        return 0;
    return st.start_time;
}

bool shm_proc_alive(int pid, uint64_t start_time)
{
    if (pid <= 0)
        return false;
    if (kill(pid, 0) == -1 && errno == ESRCH)
        return false;
    proc_stat_t st;
    if (!read_proc_stat(pid, &st))
        return true; /* exists (kill said so) but /proc is hidden from us: cannot tell more */
    if (st.state == 'Z' || st.state == 'X')
        return false;
    return start_time == 0 || st.start_time == start_time;
}

uint64_t shm_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
