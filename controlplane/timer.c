/*
 * controlplane/timer.c - timers of any period on the CP's h2o loop.
 *
 * h2o 2.2's own timeouts have one fixed duration per list, which suits I/O deadlines but not a
 * health period read from the config or a growing restart backoff. A timerfd watched as an h2o
 * socket gives both, and fires from the same loop as everything else in the CP.
 */
#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/log.h"
#include "controlplane/timer.h"

static void on_expire(h2o_socket_t *sock, const char *err)
{
    cp_timer_t *t = sock->data;
    size_t got = sock->input->size;
    /* the buffer holds the expiration count; only the event matters */
    h2o_buffer_consume(&sock->input, got);
    if (err != NULL) {
        LOG_ERROR("timer: %s", err);
        return;
    }
    if (got == 0) /* re-armed or disarmed after the kernel flagged it readable */
        return;
    t->cb(t);
}

int cp_timer_init(cp_timer_t *t, h2o_loop_t *loop, cp_timer_cb cb, void *data)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) {
        LOG_ERROR("timerfd_create: %s", strerror(errno));
        return -1;
    }
    t->sock = h2o_evloop_socket_create(loop, fd, 0);
    t->sock->data = t;
    t->cb = cb;
    t->data = data;
    h2o_socket_read_start(t->sock, on_expire);
    return 0;
}

static void settime(cp_timer_t *t, uint64_t delay_ms, uint64_t period_ms)
{
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(delay_ms / 1000), .tv_nsec = (long)(delay_ms % 1000) * 1000000},
        .it_interval = {.tv_sec = (time_t)(period_ms / 1000), .tv_nsec = (long)(period_ms % 1000) * 1000000},
    };
    if (timerfd_settime(h2o_socket_get_fd(t->sock), 0, &its, NULL) != 0)
        LOG_ERROR("timerfd_settime: %s", strerror(errno));
}

void cp_timer_arm(cp_timer_t *t, uint64_t delay_ms, uint64_t period_ms)
{
    settime(t, delay_ms ? delay_ms : 1, period_ms);
}

void cp_timer_disarm(cp_timer_t *t)
{
    if (t->sock != NULL)
        settime(t, 0, 0);
}

void cp_timer_dispose(cp_timer_t *t)
{
    if (t->sock == NULL)
        return;
    h2o_socket_read_stop(t->sock);
    h2o_socket_close(t->sock);
    t->sock = NULL;
}
