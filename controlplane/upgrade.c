/*
 * controlplane/upgrade.c - the hot upgrade of the data plane, without dropping a request.
 *
 *   1. The new DP is spawned (the configured binary, or the one the operator names) and inherits
 *      the listening socket like any DP: both DPs now poll the same accept queue.
 *   2. It attaches the segment, takes its own counter row (STARTING) and marks it SERVING once
 *      every thread accepts. The CP polls for that every few milliseconds.
 *   3. Ready: it becomes the current DP, and the old one gets SIGTERM with the drain time as the
 *      signal's value. The old DP stops accepting, closes keep-alive connections after their
 *      current response (idle ones actively), finishes its streams until the drain deadline,
 *      reports what it drained (POST /dp/drained) and exits. Routing state is in shared memory,
 *      so the new DP starts with every instance, counter and prefix tree in place.
 *   4. The upgrade is DONE when the old DP has exited (it is killed if it overstays the deadline
 *      by CP_UPGRADE_KILL_GRACE_MS).
 *
 * Every upgrade first re-reads config.yaml (reload.c): an invalid file refuses the upgrade and
 * changes nothing; a valid one is what the new DP starts with, and the CP applies it too once
 * the new DP serves (a failed upgrade restores the previous one).
 *
 * If the new DP exits or is not ready in time, the upgrade FAILS and the old DP was never touched:
 * it keeps serving. One upgrade runs at a time (another request gets 409). If the old DP dies
 * while the new one starts, the new one simply takes over; if the new one then fails, the normal
 * crash restart brings the old binary back. The state is kept for /upgrade and fdctl.
 */
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/reload.h"
#include "controlplane/supervise.h"
#include "controlplane/upgrade.h"

#define POLL_MS 10

const char *cp_upgrade_state_name(cp_upgrade_state_t s)
{
    switch (s) {
    case CP_UPG_STARTING:
        return "starting";
    case CP_UPG_DRAINING:
        return "draining";
    case CP_UPG_DONE:
        return "done";
    case CP_UPG_FAILED:
        return "failed";
    default:
        return "none";
    }
}

bool cp_upgrade_running(const cp_t *cp)
{
    return cp->upg.state == CP_UPG_STARTING || cp->upg.state == CP_UPG_DRAINING;
}

static void finish(cp_t *cp, cp_upgrade_state_t state)
{
    cp_upgrade_t *u = &cp->upg;
    u->state = state;
    u->finished_mono_ms = fd_mono_ms();
    cp_timer_disarm(&u->timer);
    if (state == CP_UPG_FAILED) {
        LOG_ERROR("Upgrade %u failed: %s", u->id, u->error);
        return;
    }
    if (u->old_pid == 0)
        LOG_INFO("Upgrade %u done: data plane pid %d serves (%s)", u->id, (int)u->new_pid, u->binary);
    else if (u->report)
        LOG_INFO(
            "Upgrade %u done: data plane pid %d replaced pid %d, which drained %llu request(s) in %llu ms, "
            "%llu cut at the deadline",
            u->id, (int)u->new_pid, (int)u->old_pid, (unsigned long long)u->drained,
            (unsigned long long)u->drain_ms, (unsigned long long)u->cut);
    else
        LOG_WARN("Upgrade %u done: data plane pid %d replaced pid %d, which %s without a drain report", u->id,
                 (int)u->new_pid, (int)u->old_pid, u->old_exit);
}

static void fail(cp_t *cp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(cp_t *cp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cp->upg.error, sizeof(cp->upg.error), fmt, ap);
    va_end(ap);
    cp_reload_rollback(cp);
    finish(cp, CP_UPG_FAILED);
}

static bool row_serving(cp_t *cp, pid_t pid)
{
    for (unsigned i = 0; i < SHM_MAX_DPS; i++) {
        const shm_dp_row_t *r = shm_dp_row(&cp->seg, i);
        if (shm_dp_row_pid(r) == pid)
            return shm_dp_row_state(r) == SHM_DP_SERVING;
    }
    return false;
}

/* The new DP serves: it becomes the current one and the old one drains. */
static void promote(cp_t *cp)
{
    cp_upgrade_t *u = &cp->upg;
    u->ready_mono_ms = fd_mono_ms();
    pid_t old = cp_dp_promote(cp, u->drain_secs, u->binary);
    u->old_pid = old;
    cp_reload_commit(cp);
    LOG_INFO("Upgrade %u: data plane pid %d is ready after %llu ms%s", u->id, (int)u->new_pid,
             (unsigned long long)(u->ready_mono_ms - u->started_mono_ms),
             old ? "; the previous one drains" : "");
    if (old == 0) {
        finish(cp, CP_UPG_DONE);
        return;
    }
    u->state = CP_UPG_DRAINING;
    /* unknown drain time (the DP's default): the deadline is only a backstop */
    uint64_t drain_ms = (uint64_t)(u->drain_secs ? u->drain_secs : 600) * 1000;
    u->drain_deadline_mono_ms = u->ready_mono_ms + drain_ms + CP_UPGRADE_KILL_GRACE_MS;
}

static void on_timer(cp_timer_t *t)
{
    cp_t *cp = t->data;
    cp_upgrade_t *u = &cp->upg;
    uint64_t now = fd_mono_ms();
    if (u->state == CP_UPG_STARTING) {
        if (cp->dp.cand.pid != 0 && row_serving(cp, cp->dp.cand.pid)) {
            promote(cp);
        } else if (now - u->started_mono_ms >= u->ready_timeout_ms) {
            pid_t pid = cp->dp.cand.pid;
            fail(cp,
                 "the new data plane (pid %d) was not ready within %u ms; it was stopped and the previous "
                 "one keeps serving",
                 (int)pid, u->ready_timeout_ms);
            cp_dp_abandon_candidate(cp);
        }
    } else if (u->state == CP_UPG_DRAINING && !u->killed && now >= u->drain_deadline_mono_ms) {
        LOG_WARN("Upgrade %u: data plane pid %d still runs %u ms past its drain deadline; killing it", u->id,
                 (int)u->old_pid, CP_UPGRADE_KILL_GRACE_MS);
        u->killed = true;
        kill(u->old_pid, SIGKILL);
    }
}

static int check_binary(const char *path, char *err, size_t errlen)
{
    if (path[0] == '\0') {
        snprintf(err, errlen, "no data-plane binary given");
        return -1;
    }
    if (access(path, X_OK) != 0) {
        snprintf(err, errlen, "data-plane binary %s cannot be executed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static bool on_dp_exit(cp_t *cp, cp_dp_kind_t kind, pid_t pid, const char *how);

int cp_upgrade_start(cp_t *cp, const char *binary, unsigned drain_secs, unsigned ready_timeout_ms,
                     const char *trigger, char *err, size_t errlen)
{
    cp_upgrade_t *u = &cp->upg;
    if (cp->stopping) {
        snprintf(err, errlen, "the control plane is shutting down");
        return 503;
    }
    if (cp_upgrade_running(cp)) {
        snprintf(err, errlen, "upgrade %u is already in progress (%s: old pid %d, new pid %d)", u->id,
                 cp_upgrade_state_name(u->state), (int)u->old_pid ? (int)u->old_pid : (int)cp->dp.cur.pid,
                 (int)u->new_pid);
        return 409;
    }
    if (cp_reload_prepare(cp, err, errlen) != 0)
        return 400;
    const char *bin = binary && binary[0] ? binary : cp->dp_binary;
    int rc = 0;
    if (strlen(bin) >= sizeof(u->binary)) {
        snprintf(err, errlen, "data-plane binary path too long");
        rc = 400;
    } else if (check_binary(bin, err, errlen) != 0) {
        rc = 400;
    } else if (u->timer.sock == NULL && cp_timer_init(&u->timer, cp->loop, on_timer, cp) != 0) {
        snprintf(err, errlen, "cannot create a timer");
        rc = 503;
    }
    if (rc != 0) {
        cp_reload_rollback(cp);
        return rc;
    }
    unsigned id = u->id + 1;
    cp_timer_t timer = u->timer;
    memset(u, 0, sizeof(*u));
    u->timer = timer;
    u->id = id;
    snprintf(u->trigger, sizeof(u->trigger), "%s", trigger);
    snprintf(u->binary, sizeof(u->binary), "%s", bin);
    u->drain_secs = drain_secs;
    u->ready_timeout_ms = ready_timeout_ms ? ready_timeout_ms : CP_UPGRADE_READY_TIMEOUT_MS;
    u->started_at_ms = shm_now_ms();
    u->started_mono_ms = fd_mono_ms();
    LOG_INFO("Upgrade %u (%s): starting data plane %s next to pid %d", id, trigger, bin, (int)cp->dp.cur.pid);
    char why[256];
    if (cp_dp_spawn_candidate(cp, bin, on_dp_exit, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "cannot start the new data plane: %s", why);
        fail(cp, "%s", err);
        return 503;
    }
    u->new_pid = cp->dp.cand.pid;
    u->state = CP_UPG_STARTING;
    cp_timer_arm(&u->timer, POLL_MS, POLL_MS);
    return 0;
}

/* supervise.c's report of a DP that ended while an upgrade may care: the current one while the
 * new one starts, the new one, or a retiring one (true if it was the upgrade's old DP). */
static bool on_dp_exit(cp_t *cp, cp_dp_kind_t kind, pid_t pid, const char *how)
{
    cp_upgrade_t *u = &cp->upg;
    if (kind == CP_DP_CURRENT) { /* the old DP died while the new one starts */
        snprintf(u->note, sizeof(u->note), "the previous data plane (pid %d) %s during the upgrade", (int)pid,
                 how);
        LOG_WARN("Upgrade %u: %s; the new one takes over when ready", u->id, u->note);
        return true;
    }
    if (kind == CP_DP_CANDIDATE) {
        if (u->state == CP_UPG_STARTING)
            fail(cp, "the new data plane (pid %d) %s before it was ready; %s", (int)pid, how,
                 cp->dp.cur.pid ? "the previous one keeps serving" : "restarting the previous binary");
        return true;
    }
    if (u->state == CP_UPG_DRAINING && pid == u->old_pid) {
        snprintf(u->old_exit, sizeof(u->old_exit), "%s%s", how,
                 u->killed ? " (killed at the drain deadline)" : "");
        finish(cp, CP_UPG_DONE);
        return true;
    }
    return false;
}

void cp_upgrade_on_report(cp_t *cp, pid_t pid, uint64_t drained, uint64_t cut, uint64_t idle_closed,
                          uint64_t drain_ms)
{
    cp_upgrade_t *u = &cp->upg;
    LOG_INFO("Data plane (pid %d) drained in %llu ms: %llu request(s) answered, %llu cut at the deadline",
             (int)pid, (unsigned long long)drain_ms, (unsigned long long)drained, (unsigned long long)cut);
    if (u->state != CP_UPG_DRAINING || pid != u->old_pid)
        return;
    u->report = true;
    u->drained = drained;
    u->cut = cut;
    u->idle_closed = idle_closed;
    u->drain_ms = drain_ms;
}

void cp_upgrade_abort(cp_t *cp, const char *why)
{
    if (cp_upgrade_running(cp))
        fail(cp, "%s", why);
    if (cp->upg.timer.sock != NULL)
        cp_timer_dispose(&cp->upg.timer);
}

static json_object *pid_json(pid_t pid)
{
    return pid ? json_object_new_int(pid) : NULL;
}

static json_object *ms_json(uint64_t from, uint64_t to)
{
    return from && to >= from ? json_object_new_int64((int64_t)(to - from)) : NULL;
}

json_object *cp_upgrade_json(const cp_t *cp)
{
    const cp_upgrade_t *u = &cp->upg;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int((int)u->id));
    json_object_object_add(o, "state", json_object_new_string(cp_upgrade_state_name(u->state)));
    json_object_object_add(o, "trigger", json_object_new_string(u->trigger));
    json_object_object_add(o, "binary", json_object_new_string(u->binary));
    json_object_object_add(o, "drain_secs", u->drain_secs ? json_object_new_int((int)u->drain_secs) : NULL);
    json_object_object_add(o, "old_pid", pid_json(u->old_pid));
    json_object_object_add(o, "new_pid", pid_json(u->new_pid));
    json_object_object_add(o, "started_at_ms", json_object_new_int64((int64_t)u->started_at_ms));
    uint64_t end = u->finished_mono_ms ? u->finished_mono_ms : fd_mono_ms();
    json_object_object_add(o, "elapsed_ms", ms_json(u->started_mono_ms, end));
    json_object_object_add(o, "ready_after_ms",
                           u->ready_mono_ms ? ms_json(u->started_mono_ms, u->ready_mono_ms) : NULL);
    bool drained_known = u->report && u->old_pid;
    json_object_object_add(o, "drained", drained_known ? json_object_new_int64((int64_t)u->drained) : NULL);
    json_object_object_add(o, "cut", drained_known ? json_object_new_int64((int64_t)u->cut) : NULL);
    json_object_object_add(o, "idle_closed",
                           drained_known ? json_object_new_int64((int64_t)u->idle_closed) : NULL);
    json_object_object_add(o, "drain_ms", drained_known ? json_object_new_int64((int64_t)u->drain_ms) : NULL);
    json_object_object_add(o, "old_exit", u->old_exit[0] ? json_object_new_string(u->old_exit) : NULL);
    json_object_object_add(o, "note", u->note[0] ? json_object_new_string(u->note) : NULL);
    json_object_object_add(o, "error", u->error[0] ? json_object_new_string(u->error) : NULL);
    return o;
}
